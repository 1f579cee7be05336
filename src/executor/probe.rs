//! The raw probes behind health checks and general checks: run a command, GET a path on
//! the loopback address, connect to a port. Each reports what it observed; the callers
//! decide what counts as healthy (health checks) or what to report (checks).

use std::{collections::BTreeMap, path::Path};

use crate::proto::v1::{CommandInfo, network_info::Protocol};

use super::process::{Exit, OwnChild};

mod insecure_tls;

/// Runs `info` in `cwd` as `user` (the task's: upstream runs a task's check commands as
/// the task's user; `None` runs it as the executor's own) with the task's environment and
/// the command's own variables over it (upstream's checker gives a check command its
/// `CommandInfo.environment` on top of the task's), and returns how it ended.
///
/// The command runs in a process group of its own. Cancel safety: dropping the future
/// before the command ends (a check's timeout) SIGKILLs that whole group, as upstream's
/// checker kills the check's process tree, not just the shell.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::{probe, process::Exit}, proto::v1::CommandInfo};
/// let info = CommandInfo { value: Some("exit 2".into()), ..Default::default() };
/// let exit = probe::command(&info, &Default::default(), std::path::Path::new("/"), None).await;
/// assert_eq!(exit, Ok(Exit::Code(2)));
/// # }
/// ```
///
/// # Errors
/// The command cannot be started (no such user, or the executor cannot switch to it)
/// or waited for.
pub async fn command(
    info: &CommandInfo,
    env: &BTreeMap<String, String>,
    cwd: &Path,
    user: Option<&str>,
) -> Result<Exit, String> {
    let value = info.value.clone().unwrap_or_default();
    let (program, argv) = if info.shell() {
        ("/bin/sh".to_owned(), vec!["sh".to_owned(), "-c".to_owned(), value.clone()])
    } else {
        let argv = if info.arguments.is_empty() { vec![value.clone()] } else { info.arguments.clone() };
        (value.clone(), argv)
    };
    let mut env = env.clone();
    if let Some(own) = &info.environment {
        super::launch::apply_environment(&mut env, own);
    }
    let spec = super::launch::LaunchSpec { program, argv, env, user: user.map(str::to_owned) };
    let mut cmd = super::process::command_for(&spec, cwd, &Default::default())
        .map_err(|e| format!("cannot run {value:?}: {e}"))?;
    cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {value:?}: {e}"))?;
    let pid = child.id();
    // Declared after `child`, so dropped before it: the group is killed while its leader
    // is still unreaped, so its id cannot have been reused.
    let mut group = GroupGuard { pgid: pid };
    let own = pid.map(OwnChild::register);
    let status = child.wait().await;
    group.pgid = None;
    drop(own);
    status.map(Exit::from_status).map_err(|e| format!("cannot wait for {value:?}: {e}"))
}

/// SIGKILLs a probe command's process group when dropped before the command was waited
/// for.
struct GroupGuard {
    pgid: Option<u32>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        super::process::kill_group(self.pgid.take());
    }
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

/// Most redirects followed (curl's default for `-L`).
const MAX_REDIRECTS: usize = 50;

/// GETs `path` (default `/`) on `port` of the loopback address over plain HTTP and
/// returns the final status, following redirects; the body is not read. Same as
/// [`http_scheme`] with `"http"`.
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
    http_scheme("http", number, path, protocol).await
}

/// GETs `path` on `port` of the loopback address with `scheme` (`http` or `https`) as
/// upstream's checker does with `curl -s -S -L -k`: redirects are followed (up to 50,
/// wherever they lead), and https is spoken without checking the server's certificate
/// (a task's own certificate rarely names the loopback address). Returns the final
/// status; bodies are never read, so an endless one costs nothing.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::probe, proto::v1::network_info::Protocol};
/// let status = probe::http_scheme("https", 8443, Some("/health"), Protocol::IPv4).await;
/// assert!(status.is_ok_and(|s| (200..400).contains(&s)), "healthy");
/// # }
/// ```
///
/// # Errors
/// Another scheme; the connection, the TLS handshake or the HTTP exchange fails; a
/// redirect that cannot be followed.
pub async fn http_scheme(scheme: &str, number: u32, path: Option<&str>, protocol: Protocol) -> Result<u16, String> {
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is neither http nor https"));
    }
    let port = port(number)?;
    let host = loopback(protocol);
    let host = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let path = path.filter(|p| !p.is_empty()).unwrap_or("/");
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    let mut url =
        url::Url::parse(&format!("{scheme}://{host}:{port}{path}")).map_err(|e| format!("bad check URL: {e}"))?;
    for _ in 0..=MAX_REDIRECTS {
        let (status, location) = get(&url).await?;
        match location {
            Some(location) if matches!(status, 301 | 302 | 303 | 307 | 308) => {
                url = url.join(&location).map_err(|e| format!("bad redirect {location:?}: {e}"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!("redirect to {url} is neither http nor https"));
                }
            }
            _ => return Ok(status),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

/// A transport for one GET.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// One GET of `url`: its status and `Location`, if any.
async fn get(url: &url::Url) -> Result<(u16, Option<String>), String> {
    use http_body_util::Empty;
    let host = url.host_str().ok_or_else(|| format!("{url} names no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().ok_or_else(|| format!("{url} names no port"))?;
    let stream =
        tokio::net::TcpStream::connect((bare, port)).await.map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let io: Box<dyn Io> =
        if url.scheme() == "https" { Box::new(insecure_tls::connect(bare, stream).await?) } else { Box::new(stream) };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let request = hyper::Request::get(target)
        .header(hyper::header::HOST, authority)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await;
    driver.abort();
    let response = response.map_err(|e| format!("GET {target}: {e}"))?;
    let location = response.headers().get(hyper::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
    Ok((response.status().as_u16(), location))
}

#[cfg(test)]
mod tests;
