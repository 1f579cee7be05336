//! The executor's identity and settings, read from the `MESOS_*` variables an agent
//! sets (reference §6, upstream `executorEnvironment()` in `src/slave/slave.cpp`).
//! Lookups go through [`Lookup`], so tests pass a map and never touch the process
//! environment. Durations use the agent's stout grammar (`5secs`, `1500ms`, `1.5mins`).

use std::{collections::BTreeMap, collections::HashMap, fmt, path::PathBuf, time::Duration};

/// Framework id (required).
pub const FRAMEWORK_ID: &str = "MESOS_FRAMEWORK_ID";
/// Executor id (required).
pub const EXECUTOR_ID: &str = "MESOS_EXECUTOR_ID";
/// Agent id, under the name agents set.
pub const SLAVE_ID: &str = "MESOS_SLAVE_ID";
/// Agent id, under the newer name some tools use.
pub const AGENT_ID: &str = "MESOS_AGENT_ID";
/// `slave(1)@<ip>:<port>`: the only source of the agent URL in the upstream library.
pub const SLAVE_PID: &str = "MESOS_SLAVE_PID";
/// The same, under the newer name.
pub const AGENT_PID: &str = "MESOS_AGENT_PID";
/// `<ip>:<port>`: informational upstream; our fallback when no pid is given.
pub const AGENT_ENDPOINT: &str = "MESOS_AGENT_ENDPOINT";
/// Sandbox path on the host.
pub const DIRECTORY: &str = "MESOS_DIRECTORY";
/// Sandbox path as seen inside the container (defaults to [`DIRECTORY`]).
pub const SANDBOX: &str = "MESOS_SANDBOX";
/// `1` when the framework checkpoints: the executor then survives agent restarts.
pub const CHECKPOINT: &str = "MESOS_CHECKPOINT";
/// How long to keep trying to resubscribe after a disconnection (checkpointing only).
pub const RECOVERY_TIMEOUT: &str = "MESOS_RECOVERY_TIMEOUT";
/// The agent's re-registration timeout: the longest gap between resubscribe attempts.
pub const SUBSCRIPTION_BACKOFF_MAX: &str = "MESOS_SUBSCRIPTION_BACKOFF_MAX";
/// How long the agent waits after SHUTDOWN before it kills the executor.
pub const SHUTDOWN_GRACE_PERIOD: &str = "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD";
/// JWT for `Authorization: Bearer`; never inherited by tasks, never logged.
pub const AUTHENTICATION_TOKEN: &str = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN";
/// `1` when the agent runs the HTTP command executor.
pub const HTTP_COMMAND_EXECUTOR: &str = "MESOS_HTTP_COMMAND_EXECUTOR";
/// Path of the agent's unix domain socket for executors.
pub const DOMAIN_SOCKET: &str = "MESOS_DOMAIN_SOCKET";
/// Where to write the metrics file (default: `mesos-executor.prom` in the sandbox).
pub const METRICS_FILE: &str = "MESOS_EXECUTOR_METRICS_FILE";
/// Set by `mesos-local`: no self-kill after SHUTDOWN.
pub const LOCAL: &str = "MESOS_LOCAL";
/// `1`/`true` when libprocess SSL is on: the agent speaks https.
pub const SSL_ENABLED: &str = "LIBPROCESS_SSL_ENABLED";
/// Accepted by the upstream default executor as well.
pub const SSL_ENABLED_SHORT: &str = "SSL_ENABLED";
/// CA bundle that signs the agent's certificate.
pub const SSL_CA_FILE: &str = "LIBPROCESS_SSL_CA_FILE";
/// Directory of CA certificates.
pub const SSL_CA_DIR: &str = "LIBPROCESS_SSL_CA_DIR";
/// Client certificate presented to the agent.
pub const SSL_CERT_FILE: &str = "LIBPROCESS_SSL_CERT_FILE";
/// Key of the client certificate.
pub const SSL_KEY_FILE: &str = "LIBPROCESS_SSL_KEY_FILE";
/// Whether to verify the agent's certificate.
pub const SSL_VERIFY_CERT: &str = "LIBPROCESS_SSL_VERIFY_CERT";

/// Agent default `--recovery_timeout`.
pub const DEFAULT_RECOVERY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Agent default `--executor_reregistration_timeout`.
pub const DEFAULT_SUBSCRIPTION_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Agent default `--executor_shutdown_grace_period`.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Where variables come from.
pub trait Lookup {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Lookup for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

impl<K: std::borrow::Borrow<str> + std::hash::Hash + Eq, V: AsRef<str>> Lookup for HashMap<K, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.as_ref().to_owned())
    }
}

impl<K: std::borrow::Borrow<str> + Ord, V: AsRef<str>> Lookup for BTreeMap<K, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.as_ref().to_owned())
    }
}

/// A missing or malformed variable. Names the variable, the value and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A required variable is absent.
    #[error("{var} is not set: expected {expected}")]
    Missing {
        /// The variable.
        var: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A variable is set to something we cannot use.
    #[error("{var}={value:?} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// The value as found.
        value: String,
        /// What it should hold, and why this value is not that.
        expected: String,
    },
}

/// A value that must never be printed (the executor authentication token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How to reach the agent's executor API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentEndpoint {
    /// The libprocess id of the agent, `slave(1)`: the first segment of the URL path.
    pub process_id: String,
    /// IP address or host name, without IPv6 brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl AgentEndpoint {
    /// The agent at `host:port`, process id `slave(1)` (what every agent uses).
    ///
    /// ```
    /// let agent = mesos_executor::env::AgentEndpoint::new("::1", 5051);
    /// assert_eq!((agent.authority(), agent.path()), ("[::1]:5051".to_owned(), "/slave(1)/api/v1/executor".to_owned()));
    /// ```
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        AgentEndpoint { process_id: "slave(1)".to_owned(), host: host.into(), port }
    }

    /// `host:port` with IPv6 addresses bracketed, as in a URL authority or `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The executor API path: `/slave(1)/api/v1/executor`, as the upstream library
    /// builds it from `MESOS_SLAVE_PID` (parentheses are not percent-encoded).
    pub fn path(&self) -> String {
        format!("/{}/api/v1/executor", self.process_id)
    }

    /// Parses `<id>@<host>:<port>` (`slave(1)@10.0.0.5:5051`, `slave(1)@[::1]:5051`).
    pub fn parse_pid(var: &'static str, value: &str) -> Result<Self, EnvError> {
        let invalid = |why: &str| EnvError::Invalid {
            var,
            value: value.to_owned(),
            expected: format!("<id>@<ip>:<port> such as slave(1)@10.0.0.5:5051 ({why})"),
        };
        let (id, addr) = value.split_once('@').ok_or_else(|| invalid("no '@'"))?;
        if id.is_empty() || id.contains('/') {
            return Err(invalid("bad process id"));
        }
        let (host, port) = split_host_port(addr).map_err(invalid)?;
        Ok(AgentEndpoint { process_id: id.to_owned(), host, port })
    }

    /// Parses `<host>:<port>` (`MESOS_AGENT_ENDPOINT`); the process id is `slave(1)`.
    pub fn parse_endpoint(var: &'static str, value: &str) -> Result<Self, EnvError> {
        let (host, port) = split_host_port(value).map_err(|why| EnvError::Invalid {
            var,
            value: value.to_owned(),
            expected: format!("<ip>:<port> such as 10.0.0.5:5051 or [::1]:5051 ({why})"),
        })?;
        Ok(AgentEndpoint { process_id: "slave(1)".to_owned(), host, port })
    }
}

fn split_host_port(addr: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, rest) = rest.split_once(']').ok_or("unclosed '['")?;
        (host, rest.strip_prefix(':').ok_or("no port after ']'")?)
    } else {
        let (host, port) = addr.rsplit_once(':').ok_or("no port")?;
        if host.contains(':') {
            return Err("IPv6 addresses need brackets");
        }
        (host, port)
    };
    if host.is_empty() {
        return Err("empty host");
    }
    let port = port.parse::<u16>().map_err(|_| "port is not a number from 0 to 65535")?;
    Ok((host.to_owned(), port))
}

/// TLS settings, from the variables libprocess uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsEnv {
    /// Speak https to the agent.
    pub enabled: bool,
    /// CA bundle (PEM) trusted for the agent's certificate.
    pub ca_file: Option<PathBuf>,
    /// Directory of CA certificates (PEM).
    pub ca_dir: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    pub key_file: Option<PathBuf>,
    /// Whether to verify the agent's certificate, when set explicitly.
    pub verify_cert: Option<bool>,
}

/// Everything the agent tells an executor through its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutorEnv {
    /// `MESOS_FRAMEWORK_ID`: put in every call.
    pub framework_id: String,
    /// `MESOS_EXECUTOR_ID`: put in every call and status update.
    pub executor_id: String,
    /// `MESOS_SLAVE_ID`, when set.
    pub agent_id: Option<String>,
    /// Where the agent listens, from `MESOS_SLAVE_PID` (else `MESOS_AGENT_ENDPOINT`).
    pub agent: AgentEndpoint,
    /// `MESOS_DIRECTORY`: the sandbox on the host, when set.
    pub directory: Option<PathBuf>,
    /// `MESOS_SANDBOX`, else `MESOS_DIRECTORY`: the sandbox as the executor sees it.
    pub sandbox: Option<PathBuf>,
    /// `MESOS_CHECKPOINT=1`: resubscribe after a disconnection instead of shutting down.
    pub checkpoint: bool,
    /// `MESOS_RECOVERY_TIMEOUT` (default 15mins): how long to keep resubscribing.
    pub recovery_timeout: Duration,
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX` (default 2secs): longest gap between attempts.
    pub subscription_backoff_max: Duration,
    /// `MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD` (default 5secs).
    pub shutdown_grace_period: Duration,
    /// `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, sent as `Authorization: Bearer`.
    pub auth_token: Option<Secret>,
    /// `MESOS_HTTP_COMMAND_EXECUTOR=1`.
    pub http_command_executor: bool,
    /// `MESOS_DOMAIN_SOCKET`: reach the agent over this unix socket instead of TCP.
    pub domain_socket: Option<PathBuf>,
    /// `MESOS_LOCAL` is set.
    pub local: bool,
    /// `LIBPROCESS_SSL_*`.
    pub tls: TlsEnv,
    /// `MESOS_EXECUTOR_METRICS_FILE`, when set.
    pub metrics_file: Option<PathBuf>,
}

impl ExecutorEnv {
    /// A config for the given ids and agent with upstream defaults everywhere else.
    pub fn new(framework_id: impl Into<String>, executor_id: impl Into<String>, agent: AgentEndpoint) -> Self {
        ExecutorEnv {
            framework_id: framework_id.into(),
            executor_id: executor_id.into(),
            agent_id: None,
            agent,
            directory: None,
            sandbox: None,
            checkpoint: false,
            recovery_timeout: DEFAULT_RECOVERY_TIMEOUT,
            subscription_backoff_max: DEFAULT_SUBSCRIPTION_BACKOFF_MAX,
            shutdown_grace_period: DEFAULT_SHUTDOWN_GRACE_PERIOD,
            auth_token: None,
            http_command_executor: false,
            domain_socket: None,
            local: false,
            tls: TlsEnv::default(),
            metrics_file: None,
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_process() -> Result<Self, EnvError> {
        Self::from_lookup(&ProcessEnv)
    }

    /// Reads the variables from `env` (a map in tests, the process in production).
    ///
    /// ```
    /// use std::{collections::BTreeMap, time::Duration};
    /// use mesos_executor::{EnvError, ExecutorEnv};
    ///
    /// let mut vars = BTreeMap::from([
    ///     ("MESOS_FRAMEWORK_ID", "f1"),
    ///     ("MESOS_EXECUTOR_ID", "e1"),
    ///     ("MESOS_SLAVE_PID", "slave(1)@10.0.0.5:5051"),
    ///     ("MESOS_CHECKPOINT", "1"),
    ///     ("MESOS_RECOVERY_TIMEOUT", "2mins"),
    /// ]);
    /// let env = ExecutorEnv::from_lookup(&vars)?;
    /// assert_eq!(env.agent.authority(), "10.0.0.5:5051");
    /// assert!(env.checkpoint);
    /// assert_eq!(env.recovery_timeout, Duration::from_secs(120));
    /// vars.insert("MESOS_RECOVERY_TIMEOUT", "2 minutes");
    /// let error = ExecutorEnv::from_lookup(&vars).unwrap_err();
    /// assert!(error.to_string().contains("MESOS_RECOVERY_TIMEOUT"), "{error}");
    /// # Ok::<(), EnvError>(())
    /// ```
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_lookup(env: &impl Lookup) -> Result<Self, EnvError> {
        let framework_id = required_id(env, FRAMEWORK_ID, "the framework id")?;
        let executor_id = required_id(env, EXECUTOR_ID, "the executor id")?;
        let agent = match non_empty(env, AGENT_PID)
            .map(|v| (AGENT_PID, v))
            .or_else(|| non_empty(env, SLAVE_PID).map(|v| (SLAVE_PID, v)))
        {
            Some((var, pid)) => AgentEndpoint::parse_pid(var, &pid)?,
            None => match non_empty(env, AGENT_ENDPOINT) {
                Some(endpoint) => AgentEndpoint::parse_endpoint(AGENT_ENDPOINT, &endpoint)?,
                None => {
                    return Err(EnvError::Missing {
                        var: SLAVE_PID,
                        expected: "the agent's pid, such as slave(1)@10.0.0.5:5051 (or MESOS_AGENT_ENDPOINT)",
                    });
                }
            },
        };
        let directory = non_empty(env, DIRECTORY).map(PathBuf::from);
        let sandbox = non_empty(env, SANDBOX).map(PathBuf::from).or_else(|| directory.clone());
        let checkpoint = flag(env, CHECKPOINT)?;
        // Upstream exports these two only when checkpointing (reference §6.1, pitfall 9);
        // when absent we use the agent's defaults.
        let recovery_timeout = duration_or(env, RECOVERY_TIMEOUT, DEFAULT_RECOVERY_TIMEOUT)?;
        let subscription_backoff_max = duration_or(env, SUBSCRIPTION_BACKOFF_MAX, DEFAULT_SUBSCRIPTION_BACKOFF_MAX)?;
        let shutdown_grace_period = duration_or(env, SHUTDOWN_GRACE_PERIOD, DEFAULT_SHUTDOWN_GRACE_PERIOD)?;
        let tls = TlsEnv {
            enabled: flag(env, SSL_ENABLED)? || flag(env, SSL_ENABLED_SHORT)?,
            ca_file: non_empty(env, SSL_CA_FILE).map(PathBuf::from),
            ca_dir: non_empty(env, SSL_CA_DIR).map(PathBuf::from),
            cert_file: non_empty(env, SSL_CERT_FILE).map(PathBuf::from),
            key_file: non_empty(env, SSL_KEY_FILE).map(PathBuf::from),
            verify_cert: match env.var(SSL_VERIFY_CERT) {
                Some(v) if !v.is_empty() => Some(parse_flag(SSL_VERIFY_CERT, &v)?),
                _ => None,
            },
        };
        Ok(ExecutorEnv {
            framework_id,
            executor_id,
            agent_id: non_empty(env, AGENT_ID).or_else(|| non_empty(env, SLAVE_ID)),
            agent,
            directory,
            sandbox,
            checkpoint,
            recovery_timeout,
            subscription_backoff_max,
            shutdown_grace_period,
            auth_token: env.var(AUTHENTICATION_TOKEN).filter(|t| !t.is_empty()).map(Secret),
            http_command_executor: flag(env, HTTP_COMMAND_EXECUTOR)?,
            domain_socket: non_empty(env, DOMAIN_SOCKET).map(PathBuf::from),
            local: env.var(LOCAL).is_some(),
            tls,
            metrics_file: non_empty(env, METRICS_FILE).map(PathBuf::from),
        })
    }
}

fn non_empty(env: &impl Lookup, var: &str) -> Option<String> {
    env.var(var).filter(|v| !v.is_empty())
}

fn required_id(env: &impl Lookup, var: &'static str, expected: &'static str) -> Result<String, EnvError> {
    let value = non_empty(env, var).ok_or(EnvError::Missing { var, expected })?;
    if value.chars().any(char::is_control) {
        return Err(EnvError::Invalid { var, value, expected: format!("{expected} without control characters") });
    }
    Ok(value)
}

fn flag(env: &impl Lookup, var: &'static str) -> Result<bool, EnvError> {
    match env.var(var) {
        None => Ok(false),
        Some(v) if v.is_empty() => Ok(false),
        Some(v) => parse_flag(var, &v),
    }
}

/// Agents write `1`/`0` (the upstream library compares with `"1"`); we also take
/// `true`/`false`, and refuse anything else rather than guess.
fn parse_flag(var: &'static str, value: &str) -> Result<bool, EnvError> {
    match value {
        "1" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(EnvError::Invalid { var, value: value.to_owned(), expected: "1 or 0".to_owned() }),
    }
}

fn duration_or(env: &impl Lookup, var: &'static str, default: Duration) -> Result<Duration, EnvError> {
    match non_empty(env, var) {
        None => Ok(default),
        Some(value) => parse_duration(&value).map_err(|why| EnvError::Invalid {
            var,
            value: value.clone(),
            expected: format!("a duration such as 5secs, 1500ms or 1.5mins ({why})"),
        }),
    }
}

/// Units of the stout duration grammar with their length in nanoseconds, smallest first.
const UNITS: [(&str, u128); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("secs", 1_000_000_000),
    ("mins", 60_000_000_000),
    ("hrs", 3_600_000_000_000),
    ("days", 86_400_000_000_000),
    ("weeks", 604_800_000_000_000),
];

/// Parses a stout duration (`Duration::parse` in upstream `stout/duration.hpp`):
/// digits and at most one `.`, then one of `ns us ms secs mins hrs days weeks`,
/// no sign, no spaces, no exponent. Computed exactly in decimal (stout goes through a
/// double and may be one nanosecond lower), truncated to whole nanoseconds, and at
/// most `i64::MAX` nanoseconds as upstream stores it.
///
/// ```
/// use std::time::Duration;
/// use mesos_executor::env::parse_duration;
/// assert_eq!(parse_duration("5secs"), Ok(Duration::from_secs(5)));
/// assert_eq!(parse_duration("1.5mins"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("5s").is_err(), "stout spells it secs");
/// assert!(parse_duration("16000weeks").is_err(), "past i64 nanoseconds");
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or("no unit")?;
    let (number, unit) = text.split_at(split);
    let factor = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, f)| *f)
        .ok_or("unknown unit; use ns, us, ms, secs, mins, hrs, days or weeks")?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if fraction.contains('.') {
        return Err("more than one '.'");
    }
    if whole.is_empty() && fraction.is_empty() {
        return Err("no number");
    }
    let mut nanos: u128 = 0;
    for digit in whole.bytes() {
        nanos = nanos.checked_mul(10).and_then(|n| n.checked_add(u128::from(digit - b'0'))).ok_or("too large")?;
        if nanos > i64::MAX as u128 {
            return Err("too large");
        }
    }
    nanos = nanos.checked_mul(factor).ok_or("too large")?;
    // Digits past the 22nd are worth less than 1e-7 ns of the largest unit (a week is
    // 6.048e14 ns), and 10^22 times a week still fits in a u128; checked all the same.
    let mut scale: u128 = 1;
    let mut frac: u128 = 0;
    for digit in fraction.bytes().take(22) {
        scale = scale.checked_mul(10).ok_or("too large")?;
        frac = frac.checked_mul(10).and_then(|f| f.checked_add(u128::from(digit - b'0'))).ok_or("too large")?;
    }
    let part = frac.checked_mul(factor).ok_or("too large")? / scale;
    nanos = nanos.checked_add(part).ok_or("too large")?;
    if nanos > i64::MAX as u128 {
        return Err("too large");
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Formats a duration as the agent exports it (stout `stringify(Duration)`):
/// the largest unit the value reaches, or the next smaller one when that makes it whole.
///
/// ```
/// use std::time::Duration;
/// use mesos_executor::env::format_duration;
/// assert_eq!(format_duration(Duration::from_secs(900)), "15mins");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let mut index = UNITS.iter().rposition(|(_, f)| nanos >= *f).unwrap_or(0);
    if index > 0 && !nanos.is_multiple_of(UNITS[index].1) && nanos.is_multiple_of(UNITS[index - 1].1) {
        index -= 1;
    }
    let (name, factor) = UNITS[index];
    if nanos.is_multiple_of(factor) {
        format!("{}{name}", nanos / factor)
    } else {
        format!("{}{name}", nanos as f64 / factor as f64)
    }
}

#[cfg(test)]
mod tests;
