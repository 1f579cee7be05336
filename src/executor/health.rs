//! Health checks from `TaskInfo.health_check` (COMMAND, HTTP, TCP), with the upstream
//! rules (reference §9.3): first check after `delay_seconds`, then every
//! `interval_seconds`, each bounded by `timeout_seconds`; failures ignored during
//! `grace_period_seconds` before the first success; `consecutive_failures` kills.

use std::time::Duration;

use tokio::time::Instant;

use super::{probe, process::Exit};
use crate::proto::v1::{HealthCheck, health_check};

/// What a check result calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Nothing to report.
    Quiet,
    /// Send an update with `healthy` set to this.
    Report(bool),
    /// The consecutive-failure limit is reached: kill the task.
    Kill,
}

/// Counts results as upstream does.
///
/// ```
/// use mesos_executor::{executor::health::{Tracker, Verdict}, proto::v1::HealthCheck};
/// use tokio::time::{Duration, Instant};
///
/// let check = HealthCheck { consecutive_failures: Some(2), grace_period_seconds: Some(10.0), ..Default::default() };
/// let start = Instant::now();
/// let mut tracker = Tracker::new(&check, start);
/// assert_eq!(tracker.observe(false, start + Duration::from_secs(1)), Verdict::Quiet, "in the grace period");
/// assert_eq!(tracker.observe(true, start + Duration::from_secs(2)), Verdict::Report(true));
/// assert_eq!(tracker.observe(false, start + Duration::from_secs(3)), Verdict::Report(false));
/// assert_eq!(tracker.observe(false, start + Duration::from_secs(4)), Verdict::Kill, "two in a row");
/// ```
#[derive(Debug, Clone)]
pub struct Tracker {
    started: Instant,
    grace: Duration,
    limit: u32,
    failures: u32,
    seen_success: bool,
    healthy: Option<bool>,
}

impl Tracker {
    /// A tracker for `check`, for a task started at `started`.
    pub fn new(check: &HealthCheck, started: Instant) -> Self {
        Tracker {
            started,
            grace: seconds(check.grace_period_seconds()),
            limit: check.consecutive_failures().max(1),
            failures: 0,
            seen_success: false,
            healthy: None,
        }
    }

    /// Failures counted in a row so far (those in the grace period are not counted).
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// The latest verdict: `None` before the first counted result.
    pub fn healthy(&self) -> Option<bool> {
        self.healthy
    }

    /// Takes one result.
    pub fn observe(&mut self, ok: bool, now: Instant) -> Verdict {
        if ok {
            self.failures = 0;
            self.seen_success = true;
            if self.healthy == Some(true) {
                return Verdict::Quiet;
            }
            self.healthy = Some(true);
            return Verdict::Report(true);
        }
        if !self.seen_success && now.saturating_duration_since(self.started) < self.grace {
            return Verdict::Quiet;
        }
        self.failures += 1;
        self.healthy = Some(false);
        if self.failures >= self.limit { Verdict::Kill } else { Verdict::Report(false) }
    }
}

/// Seconds from a proto double: negative and NaN read as zero, and more than a
/// `Duration` holds (1e300, infinity) as the longest one, never as zero (an interval of
/// 1e300 s is not "run every 10 ms").
///
/// ```
/// use std::time::Duration;
/// use mesos_executor::executor::health::seconds;
/// assert_eq!(seconds(1.5), Duration::from_millis(1500));
/// assert_eq!(seconds(-1.0), Duration::ZERO);
/// assert_eq!(seconds(f64::NAN), Duration::ZERO);
/// assert_eq!(seconds(1e300), Duration::MAX);
/// assert_eq!(seconds(f64::INFINITY), Duration::MAX);
/// ```
pub fn seconds(value: f64) -> Duration {
    match Duration::try_from_secs_f64(value) {
        Ok(duration) => duration,
        Err(_) if value > 0.0 => Duration::MAX,
        Err(_) => Duration::ZERO,
    }
}

/// Runs one health check; `env` is the task's environment and `user` its user (`None`:
/// the executor's) for COMMAND checks, which run as that user, as upstream's. Healthy
/// is: exit code 0, an HTTP status in [200, 400) (upstream), a TCP connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mesos_executor::{executor::health::probe, proto::v1::{health_check, CommandInfo, HealthCheck}};
///
/// let check = HealthCheck {
///     r#type: Some(health_check::Type::Command as i32),
///     command: Some(CommandInfo { value: Some("exit 1".into()), ..Default::default() }),
///     ..Default::default()
/// };
/// let result = probe(&check, &Default::default(), std::path::Path::new("/"), None).await;
/// assert!(result.unwrap_err().contains("status 1"));
/// # }
/// ```
pub async fn probe(
    check: &HealthCheck,
    env: &std::collections::BTreeMap<String, String>,
    cwd: &std::path::Path,
    user: Option<&str>,
) -> Result<(), String> {
    let timeout = timeout(check.timeout_seconds());
    let run = async {
        match check.r#type() {
            health_check::Type::Command => {
                let info = check.command.as_ref().ok_or("COMMAND health check without a command")?;
                match probe::command(info, env, cwd, user).await? {
                    Exit::Code(0) => Ok(()),
                    exit => Err(format!("{:?} {}", info.value(), exit.message())),
                }
            }
            health_check::Type::Http => {
                let http = check.http.as_ref().ok_or("HTTP health check without 'http'")?;
                let scheme = http.scheme.as_deref().filter(|s| !s.is_empty()).unwrap_or("http");
                let status = probe::http_scheme(scheme, http.port, http.path.as_deref(), http.protocol()).await?;
                if (200..400).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("GET {} answered {status}", http.path()))
                }
            }
            health_check::Type::Tcp => {
                let tcp = check.tcp.as_ref().ok_or("TCP health check without 'tcp'")?;
                probe::tcp(tcp.port, tcp.protocol()).await
            }
            health_check::Type::Unknown => Err("health check has no type".to_owned()),
        }
    };
    let Some(timeout) = timeout else { return run.await };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

/// A check's `timeout_seconds`: zero (or negative, or NaN) means no timeout, as
/// upstream's `CheckerProcess` reads it ("Zero value means infinite timeout").
///
/// ```
/// use std::time::Duration;
/// use mesos_executor::executor::health::timeout;
/// assert_eq!(timeout(0.0), None);
/// assert_eq!(timeout(1.5), Some(Duration::from_millis(1500)));
/// ```
pub fn timeout(value: f64) -> Option<Duration> {
    Some(seconds(value)).filter(|t| !t.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(grace: f64, limit: u32) -> HealthCheck {
        HealthCheck { grace_period_seconds: Some(grace), consecutive_failures: Some(limit), ..Default::default() }
    }

    #[test]
    fn failures_in_the_grace_period_before_a_success_are_ignored() {
        let start = Instant::now();
        let mut t = Tracker::new(&check(10.0, 3), start);
        assert_eq!(t.observe(false, start + Duration::from_secs(1)), Verdict::Quiet);
        assert_eq!(t.observe(false, start + Duration::from_secs(9)), Verdict::Quiet);
        assert_eq!(t.observe(false, start + Duration::from_secs(11)), Verdict::Report(false));
        assert_eq!(t.observe(false, start + Duration::from_secs(12)), Verdict::Report(false));
        assert_eq!(t.observe(false, start + Duration::from_secs(13)), Verdict::Kill);
    }

    #[test]
    fn after_a_success_failures_count_at_once_and_a_success_resets() {
        let start = Instant::now();
        let mut t = Tracker::new(&check(10.0, 2), start);
        assert_eq!(t.observe(true, start), Verdict::Report(true));
        assert_eq!(t.observe(true, start), Verdict::Quiet, "no update while nothing changes");
        assert_eq!(
            t.observe(false, start + Duration::from_secs(1)),
            Verdict::Report(false),
            "grace ends at the first success"
        );
        assert_eq!(t.observe(true, start + Duration::from_secs(2)), Verdict::Report(true));
        assert_eq!(t.observe(false, start + Duration::from_secs(3)), Verdict::Report(false));
        assert_eq!(t.observe(false, start + Duration::from_secs(4)), Verdict::Kill);
    }

    #[test]
    fn proto_defaults_are_upstreams() {
        let c = HealthCheck::default();
        assert_eq!((c.delay_seconds(), c.interval_seconds(), c.timeout_seconds()), (15.0, 10.0, 20.0));
        assert_eq!((c.consecutive_failures(), c.grace_period_seconds()), (3, 10.0));
        assert_eq!(seconds(-1.0), Duration::ZERO);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
    }

    #[tokio::test]
    async fn tcp_and_http_probes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ");
                    let reply: &[u8] = if ok {
                        b"HTTP/1.1 204 No Content\r\n\r\n"
                    } else {
                        b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n"
                    };
                    let _ = s.write_all(reply).await;
                });
            }
        });
        let env = Default::default();
        let cwd = std::env::temp_dir();
        let tcp = HealthCheck {
            r#type: Some(health_check::Type::Tcp as i32),
            tcp: Some(health_check::TcpCheckInfo { port: port.into(), ..Default::default() }),
            timeout_seconds: Some(2.0),
            ..Default::default()
        };
        assert_eq!(probe(&tcp, &env, &cwd, None).await, Ok(()));
        let http = |path: &str| HealthCheck {
            r#type: Some(health_check::Type::Http as i32),
            http: Some(health_check::HttpCheckInfo {
                port: port.into(),
                path: Some(path.into()),
                ..Default::default()
            }),
            timeout_seconds: Some(2.0),
            ..Default::default()
        };
        assert_eq!(probe(&http("/ok"), &env, &cwd, None).await, Ok(()));
        assert!(probe(&http("/bad"), &env, &cwd, None).await.unwrap_err().contains("503"));
        let closed = HealthCheck {
            r#type: Some(health_check::Type::Tcp as i32),
            tcp: Some(health_check::TcpCheckInfo { port: 1, ..Default::default() }),
            timeout_seconds: Some(2.0),
            ..Default::default()
        };
        assert!(probe(&closed, &env, &cwd, None).await.is_err());
        let command = |value: &str| HealthCheck {
            r#type: Some(health_check::Type::Command as i32),
            command: Some(crate::proto::v1::CommandInfo { value: Some(value.into()), ..Default::default() }),
            timeout_seconds: Some(0.5),
            ..Default::default()
        };
        assert_eq!(probe(&command("true"), &env, &cwd, None).await, Ok(()));
        assert!(probe(&command("exit 4"), &env, &cwd, None).await.unwrap_err().contains("status 4"));
        assert!(probe(&command("sleep 5"), &env, &cwd, None).await.unwrap_err().contains("timed out"));
        // Zero means no timeout (it used to time out at once and kill healthy tasks).
        let mut unbounded = command("sleep 0.2");
        unbounded.timeout_seconds = Some(0.0);
        assert_eq!(probe(&unbounded, &env, &cwd, None).await, Ok(()));
    }
}
