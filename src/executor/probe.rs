//! The raw probes behind health checks and general checks: run a command, GET a path on
//! the loopback address, connect to a port. Each reports what it observed; the callers
//! decide what counts as healthy (health checks) or what to report (checks).

use std::{collections::BTreeMap, path::Path};

use crate::proto::v1::{CommandInfo, network_info::Protocol};

use super::process::{Exit, forget_child, own_child};

/// Runs `info` with the task's environment in `cwd` and returns how it ended.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::{probe, process::Exit}, proto::v1::CommandInfo};
/// let info = CommandInfo { value: Some("exit 2".into()), ..Default::default() };
/// assert_eq!(probe::command(&info, &Default::default(), std::path::Path::new("/")).await, Ok(Exit::Code(2)));
/// # }
/// ```
///
/// # Errors
/// The command cannot be started or waited for.
pub async fn command(info: &CommandInfo, env: &BTreeMap<String, String>, cwd: &Path) -> Result<Exit, String> {
    let value = info.value.clone().unwrap_or_default();
    let mut cmd = if info.shell() {
        let mut c = tokio::process::Command::new("/bin/sh");
        c.arg("-c").arg(&value);
        c
    } else {
        let mut c = tokio::process::Command::new(&value);
        c.args(info.arguments.iter().skip(1));
        c
    };
    cmd.env_clear().envs(env).current_dir(cwd).stdin(std::process::Stdio::null());
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {value:?}: {e}"))?;
    let pid = child.id();
    if let Some(pid) = pid {
        own_child(pid);
    }
    let status = child.wait().await;
    if let Some(pid) = pid {
        forget_child(pid);
    }
    status.map(Exit::from_status).map_err(|e| format!("cannot wait for {value:?}: {e}"))
}

/// The loopback address of the protocol (upstream checks target 127.0.0.1 or ::1).
fn loopback(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::IPv6 => "::1",
        Protocol::IPv4 => "127.0.0.1",
    }
}

fn port(number: u32) -> Result<u16, String> {
    u16::try_from(number).map_err(|_| format!("port {number} out of range"))
}

/// Connects to `port` on the loopback address.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::probe, proto::v1::network_info::Protocol};
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let port = u32::from(listener.local_addr().unwrap().port());
/// assert!(probe::tcp(port, Protocol::IPv4).await.is_ok());
/// assert!(probe::tcp(70_000, Protocol::IPv4).await.unwrap_err().contains("out of range"));
/// # }
/// ```
///
/// # Errors
/// The connection is refused or fails.
pub async fn tcp(number: u32, protocol: Protocol) -> Result<(), String> {
    let port = port(number)?;
    tokio::net::TcpStream::connect((loopback(protocol), port))
        .await
        .map(drop)
        .map_err(|e| format!("connect to port {port}: {e}"))
}

/// GETs `path` (default `/`) on `port` of the loopback address and returns the status;
/// the body is not read.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::probe, proto::v1::network_info::Protocol};
/// let status = probe::http(8080, Some("/health"), Protocol::IPv4).await;
/// assert!(status.is_ok_and(|s| (200..400).contains(&s)), "healthy");
/// # }
/// ```
///
/// # Errors
/// The connection or the HTTP exchange fails.
pub async fn http(number: u32, path: Option<&str>, protocol: Protocol) -> Result<u16, String> {
    use http_body_util::Empty;
    let port = port(number)?;
    let host = loopback(protocol);
    let stream =
        tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("connect to port {port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let path = path.filter(|p| !p.is_empty()).unwrap_or("/");
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let request = hyper::Request::get(&path)
        .header(
            hyper::header::HOST,
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") },
        )
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("GET {path}: {e}"))?;
    // Only the status counts; the body is never read, so an endless one costs nothing.
    let status = response.status().as_u16();
    driver.abort();
    Ok(status)
}
