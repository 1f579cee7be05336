//! What the fake agent pretends to be: the framework, executor and agent it describes
//! in SUBSCRIBED, and the timeouts an upstream agent applies (shortened for tests).

use std::time::Duration;

use mesos_executor::proto::v1::{
    AgentId, AgentInfo, DurationInfo, ExecutorId, ExecutorInfo, FrameworkId, FrameworkInfo, executor_info,
    framework_info::{Capability, capability},
};
use serde::Deserialize;

/// How the agent acknowledges status updates.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AckPolicy {
    /// ACKNOWLEDGED right after the update is accepted, as upstream does.
    #[default]
    Immediate,
    /// ACKNOWLEDGED after this many milliseconds.
    DelayMs(u64),
    /// No ACKNOWLEDGED until the policy changes or [`crate::Agent::release_withheld_acks`].
    Withhold,
    /// Each ACKNOWLEDGED is lost with this probability (0.0 to 1.0), as on a broken stream.
    Drop(f64),
}

/// The fake agent's identity and timeouts.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Framework id given to the executor and expected in every call.
    pub framework_id: String,
    /// Executor id given to the executor and expected in every call.
    pub executor_id: String,
    /// Agent id (`MESOS_SLAVE_ID`, `AgentInfo.id`).
    pub agent_id: String,
    /// `AgentInfo.hostname`.
    pub hostname: String,
    /// `FrameworkInfo.checkpoint`: without it the executor is not recovered across restarts.
    pub checkpoint: bool,
    /// `FrameworkInfo.capabilities`.
    pub capabilities: Vec<capability::Type>,
    /// Period of HEARTBEAT events (upstream: 30 minutes).
    pub heartbeat_interval: Duration,
    /// `--executor_registration_timeout` (upstream default 1 minute).
    pub registration_timeout: Duration,
    /// `--executor_reregistration_timeout` (upstream default 2 s), also exported as
    /// `MESOS_SUBSCRIPTION_BACKOFF_MAX`.
    pub reregistration_timeout: Duration,
    /// `--recovery_timeout` (upstream default 15 minutes).
    pub recovery_timeout: Duration,
    /// `--executor_shutdown_grace_period` (upstream default 5 s).
    pub shutdown_grace_period: Duration,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// How updates are acknowledged.
    pub ack_policy: AckPolicy,
    /// Agent flag `--executor_environment_variables`: extra variables for the executor,
    /// overridden by the `MESOS_*` ones (reference §6.1).
    pub executor_environment_variables: std::collections::BTreeMap<String, String>,
    /// Serve https with this identity (and tell the executor to use TLS).
    pub tls: Option<AgentTls>,
    /// Also listen on this unix socket, exported as `MESOS_DOMAIN_SOCKET`
    /// (agent flag `--http_executor_domain_sockets`).
    pub domain_socket: Option<std::path::PathBuf>,
}

/// The agent's TLS identity.
#[derive(Debug, Clone)]
pub struct AgentTls {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// A file holding the CA that signed the certificate, exported to the executor as
    /// `LIBPROCESS_SSL_CA_FILE`.
    pub ca_file: std::path::PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca_pem: Option<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            framework_id: "fake-framework-0001".to_owned(),
            executor_id: "fake-executor-0001".to_owned(),
            agent_id: "fake-agent-S0".to_owned(),
            hostname: "localhost".to_owned(),
            checkpoint: true,
            capabilities: vec![capability::Type::TaskKillingState, capability::Type::MultiRole],
            heartbeat_interval: Duration::from_secs(30 * 60),
            registration_timeout: Duration::from_secs(60),
            reregistration_timeout: Duration::from_secs(2),
            recovery_timeout: Duration::from_secs(15 * 60),
            shutdown_grace_period: Duration::from_secs(5),
            auth_token: None,
            ack_policy: AckPolicy::Immediate,
            executor_environment_variables: Default::default(),
            tls: None,
            domain_socket: None,
        }
    }
}

impl AgentConfig {
    /// Whether the framework declared `capability`.
    pub fn has_capability(&self, capability: capability::Type) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Upstream uses TASK_DROPPED/TASK_GONE only for partition-aware frameworks.
    pub fn partition_aware(&self) -> bool {
        self.has_capability(capability::Type::PartitionAware)
    }

    /// The FrameworkInfo sent in SUBSCRIBED, with `id` set as the agent sets it.
    pub fn framework_info(&self) -> FrameworkInfo {
        FrameworkInfo {
            user: "root".to_owned(),
            name: "fake-agent".to_owned(),
            id: Some(FrameworkId { value: self.framework_id.clone() }),
            failover_timeout: Some(0.0),
            checkpoint: Some(self.checkpoint),
            roles: vec!["*".to_owned()],
            capabilities: self.capabilities.iter().map(|c| Capability { r#type: Some(*c as i32) }).collect(),
            ..Default::default()
        }
    }

    /// The ExecutorInfo sent in SUBSCRIBED.
    pub fn executor_info(&self, command: &str) -> ExecutorInfo {
        ExecutorInfo {
            r#type: Some(executor_info::Type::Custom as i32),
            executor_id: ExecutorId { value: self.executor_id.clone() },
            framework_id: Some(FrameworkId { value: self.framework_id.clone() }),
            command: Some(mesos_executor::proto::v1::CommandInfo {
                shell: Some(true),
                value: Some(command.to_owned()),
                ..Default::default()
            }),
            name: Some("fake-agent executor".to_owned()),
            shutdown_grace_period: Some(DurationInfo { nanoseconds: self.shutdown_grace_period.as_nanos() as i64 }),
            ..Default::default()
        }
    }

    /// The AgentInfo sent in SUBSCRIBED.
    pub fn agent_info(&self, port: u16) -> AgentInfo {
        AgentInfo {
            hostname: self.hostname.clone(),
            port: Some(i32::from(port)),
            id: Some(AgentId { value: self.agent_id.clone() }),
            ..Default::default()
        }
    }
}
