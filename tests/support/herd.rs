//! A herd of in-process drivers against one [`HerdAgent`] that restarts: how quickly
//! every executor is back, and how often each one knocked while the agent was away.
//! Shared by `tests/herd_restart.rs` (which asserts) and `benches/targets.rs` (which
//! prints).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fake_agent::{AgentConfig, herd::HerdAgent};
use mesos_executor::{
    DriverConfig, DriverHandle, Executor, ExecutorDriver, ExecutorEnv, ShutdownReason,
    metrics::Metrics,
    proto::v1::{AgentInfo, KillPolicy, TaskId, TaskInfo},
};

/// An executor that only notes when it is back.
struct Member {
    back: Arc<Mutex<Option<Instant>>>,
}

impl Executor for Member {
    fn reregistered(&mut self, _: &DriverHandle, _: &AgentInfo) {
        *self.back.lock().unwrap() = Some(Instant::now());
    }
    fn launch_task(&mut self, _: &DriverHandle, _: TaskInfo) {}
    fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    fn shutdown(&mut self, driver: &DriverHandle, _: ShutdownReason) {
        driver.stop();
    }
}

/// What the herd did.
pub struct HerdReport {
    /// From the agent accepting SUBSCRIBE again to each executor's SUBSCRIBED, sorted;
    /// one entry per executor that came back within `wait`.
    pub back: Vec<Duration>,
    /// Executors that did not come back within `wait`.
    pub missing: usize,
    /// Per executor: SUBSCRIBE attempts (each a connection attempt) while the agent was
    /// away, divided by how long it was away.
    pub attempts_per_second: Vec<f64>,
    /// How long the agent was away (down, then answering 503).
    pub outage: Duration,
}

/// Runs `n` drivers, restarts the agent (down for `down`, 503 for `recovering`), and
/// waits up to `wait` for every executor to be back.
pub async fn run(n: usize, down: Duration, recovering: Duration, wait: Duration) -> HerdReport {
    let config = AgentConfig { checkpoint: true, recovery_timeout: Duration::from_secs(60), ..AgentConfig::default() };
    let herd = HerdAgent::start(config).await.unwrap();
    let sandbox = tempfile::tempdir().unwrap();
    let mut members = Vec::new();
    for i in 0..n {
        let id = format!("herd-{i:04}");
        let env = ExecutorEnv::from_lookup(&herd.executor_env(&id, sandbox.path())).unwrap();
        let mut config = DriverConfig::new(env);
        config.metrics_file = None;
        config.metrics = Metrics::new();
        let metrics = config.metrics.clone();
        let back = Arc::new(Mutex::new(None));
        let driver = ExecutorDriver::new(Member { back: Arc::clone(&back) }, config);
        let handle = driver.handle();
        let task = tokio::spawn(driver.run_async());
        members.push((id, metrics, back, handle, task));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while herd.seen().values().filter(|s| s.subscribed_at.is_some()).count() < n {
        assert!(Instant::now() < deadline, "the herd did not subscribe in the first place");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before: Vec<u64> = members.iter().map(|m| m.1.subscription_attempts.get()).collect();
    let away = Instant::now();
    herd.restart(down, recovering).await;
    let outage = away.elapsed();
    let accepted = herd.accepting_since().unwrap_or_else(Instant::now);
    let during: Vec<u64> = members.iter().map(|m| m.1.subscription_attempts.get()).collect();
    let until = accepted + wait;
    while Instant::now() < until && members.iter().any(|m| m.2.lock().unwrap().is_none()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut back: Vec<Duration> =
        members.iter().filter_map(|m| m.2.lock().unwrap().map(|t| t.saturating_duration_since(accepted))).collect();
    back.sort();
    let missing = n - back.len();
    let attempts_per_second =
        before.iter().zip(&during).map(|(b, d)| (d - b) as f64 / outage.as_secs_f64()).collect::<Vec<_>>();
    for (_, _, _, handle, task) in members {
        handle.abort();
        let _ = task.await;
    }
    HerdReport { back, missing, attempts_per_second, outage }
}

/// The `p` quantile of sorted durations.
pub fn quantile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
