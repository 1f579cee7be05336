//! The raw probes behind health checks and general checks: run a command, GET a path on
//! the loopback address, connect to a port. Each reports what it observed; the callers
//! decide what counts as healthy (health checks) or what to report (checks).

use std::{collections::BTreeMap, path::Path};

use crate::proto::v1::{CommandInfo, network_info::Protocol};

use super::process::{Exit, forget_child, own_child};

/// Runs `info` with the task's environment in `cwd` and returns how it ended.
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
/// # Errors
/// The connection is refused or fails.
pub async fn tcp(number: u32, protocol: Protocol) -> Result<(), String> {
    let port = port(number)?;
    tokio::net::TcpStream::connect((loopback(protocol), port))
        .await
        .map(drop)
        .map_err(|e| format!("connect to port {port}: {e}"))
}

/// GETs `path` (default `/`) on `port` of the loopback address and returns the status.
///
/// # Errors
/// The connection or the HTTP exchange fails.
pub async fn http(number: u32, path: Option<&str>, protocol: Protocol) -> Result<u16, String> {
    use http_body_util::{BodyExt, Empty};
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
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| format!("GET {path}: {e}"))?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    driver.abort();
    Ok(status)
}
