//! The executor's metrics in Prometheus text format: a registry of counters, gauges and
//! a histogram (the `prometheus` crate's encoder), and a writer that replaces a file
//! atomically (temporary file in the same directory, then rename), as node_exporter's
//! textfile collector expects. Writes happen on an interval, on every subscription
//! change, and at exit; a failed write is logged and retried, never fatal.

/// The metrics library underneath, for executors that add families of their own.
pub use prometheus;

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::Notify;

/// Default file name, in the sandbox.
pub const DEFAULT_FILE_NAME: &str = "mesos-executor.prom";
/// Default interval between writes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Every figure the executor reports. Cheap to update (atomics); shared by the driver,
/// its call pipeline and the daemon's supervisor.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// SUBSCRIBE calls sent.
    pub subscription_attempts: IntCounter,
    /// SUBSCRIBE calls answered with an event stream.
    pub subscriptions: IntCounter,
    /// Subscribed sessions lost.
    pub disconnects: IntCounter,
    /// 1 while subscribed.
    pub connected: IntGauge,
    /// Events received, by type.
    pub events: IntCounterVec,
    /// Calls sent, by type and outcome (`accepted`, `retried`, `refused`, `connection_error`).
    pub calls: IntCounterVec,
    /// Status updates produced by the executor.
    pub updates_sent: IntCounter,
    /// Status updates acknowledged by the agent.
    pub updates_acknowledged: IntCounter,
    /// Status updates sent again (on a live stream or in a SUBSCRIBE).
    pub updates_resent: IntCounter,
    /// Status updates not acknowledged yet.
    pub updates_unacknowledged: IntGauge,
    /// Time from producing an update to its acknowledgement.
    pub ack_latency: Histogram,
    changed: Arc<Notify>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric name");
    registry.register(Box::new(c.clone())).expect("unique metric name");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric name");
    registry.register(Box::new(g.clone())).expect("unique metric name");
    g
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero, plus build info and start time.
    pub fn new() -> Self {
        Self::with_labels(&[]).expect("no labels")
    }

    /// As [`Metrics::new`], with `labels` on every series, families registered later
    /// included (many executors' files in one directory need their ids on each series;
    /// the text encoder escapes the values).
    ///
    /// # Errors
    /// A label name that Prometheus does not allow.
    ///
    /// # Examples
    /// ```
    /// let metrics = mesos_executor::metrics::Metrics::with_labels(&[("executor_id", "a\"b")])?;
    /// assert!(metrics.encode().contains("mesos_executor_connected{executor_id=\"a\\\"b\"} 0"));
    /// # Ok::<(), mesos_executor::metrics::prometheus::Error>(())
    /// ```
    pub fn with_labels(labels: &[(&str, &str)]) -> Result<Self, prometheus::Error> {
        let labels =
            (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        // Names are constants of ours: a failure below is a programming error.
        let registry = Registry::new_custom(Some("mesos_executor".to_owned()), labels)?;
        let r = &registry;
        let events = IntCounterVec::new(
            Opts::new("events_received_total", "Events received from the agent, by type."),
            &["type"],
        )
        .expect("valid metric");
        r.register(Box::new(events.clone())).expect("unique metric name");
        let calls = IntCounterVec::new(
            Opts::new("calls_total", "Calls sent to the agent, by type and outcome."),
            &["type", "outcome"],
        )
        .expect("valid metric");
        r.register(Box::new(calls.clone())).expect("unique metric name");
        let buckets = vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let ack_latency = Histogram::with_opts(
            HistogramOpts::new("ack_latency_seconds", "Seconds from producing a status update to its acknowledgement.")
                .buckets(buckets),
        )
        .expect("valid metric");
        r.register(Box::new(ack_latency.clone())).expect("unique metric name");
        let build =
            IntGaugeVec::new(Opts::new("build_info", "Version of the executor library, always 1."), &["version"])
                .expect("valid metric");
        r.register(Box::new(build.clone())).expect("unique metric name");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let start =
            prometheus::Gauge::new("process_start_time_seconds", "Start time of the process, seconds since the epoch.")
                .expect("valid metric");
        r.register(Box::new(start.clone())).expect("unique metric name");
        start.set(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64()));
        Ok(Metrics {
            subscription_attempts: counter(r, "subscription_attempts_total", "SUBSCRIBE calls sent."),
            subscriptions: counter(r, "subscriptions_total", "SUBSCRIBE calls answered with an event stream."),
            disconnects: counter(r, "disconnects_total", "Subscribed sessions lost."),
            connected: gauge(r, "connected", "1 while subscribed to the agent, else 0."),
            updates_sent: counter(r, "status_updates_total", "Status updates produced by the executor."),
            updates_acknowledged: counter(
                r,
                "status_updates_acknowledged_total",
                "Status updates acknowledged by the agent.",
            ),
            updates_resent: counter(r, "status_updates_resent_total", "Status updates sent again."),
            updates_unacknowledged: gauge(r, "status_updates_unacknowledged", "Status updates not acknowledged yet."),
            events,
            calls,
            ack_latency,
            registry,
            changed: Arc::new(Notify::new()),
        })
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into memory does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Registers an executor's own metric family beside the driver's, under the same
    /// `mesos_executor_` prefix, in the same file and endpoint.
    ///
    /// # Errors
    /// A family of that name is registered already, or its description is invalid.
    ///
    /// # Examples
    /// ```
    /// let metrics = mesos_executor::metrics::Metrics::new();
    /// use mesos_executor::metrics::prometheus::{IntGaugeVec, Opts};
    ///
    /// let tasks = IntGaugeVec::new(Opts::new("tasks", "Tasks by state."), &["state"])?;
    /// metrics.register(Box::new(tasks.clone()))?;
    /// tasks.with_label_values(&["TASK_RUNNING"]).set(2);
    /// assert!(metrics.encode().contains("mesos_executor_tasks{state=\"TASK_RUNNING\"} 2"));
    /// # Ok::<(), mesos_executor::metrics::prometheus::Error>(())
    /// ```
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Asks the writer for a write now (on subscription changes).
    pub fn flush_soon(&self) {
        self.changed.notify_one();
    }

    /// Counts a call's outcome.
    pub fn call(&self, kind: &str, outcome: &str) {
        self.calls.with_label_values(&[kind, outcome]).inc();
    }
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a
/// rename, so a reader never sees half a file.
///
/// The directory may be writable by others (a task's user may share it): the temporary
/// file has an unpredictable name and is created with `O_EXCL | O_NOFOLLOW`, so a planted
/// file or link is never opened, and the rename replaces a link at `path` instead of
/// following it.
///
/// # Errors
/// The directory is not writable, or the rename fails.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        // No fsync: a reader never sees half a file, and these files are rewritten often
        // (an fsync per write cost a daemon 2 ms per task launch); a crash may lose the
        // last write, which the next one replaces.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the metrics file every `interval` and whenever [`Metrics::flush_soon`] is
/// called, until `stop` resolves; then once more.
pub async fn run_writer(
    metrics: Metrics,
    path: PathBuf,
    interval: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let changed = Arc::clone(&metrics.changed);
    let mut failing = false;
    loop {
        let result = write_atomically(&path, &metrics.encode());
        match (&result, failing) {
            (Err(error), false) => {
                tracing::warn!(path = %path.display(), %error, "cannot write the metrics file; will retry")
            }
            (Ok(()), true) => tracing::info!(path = %path.display(), "metrics file written again"),
            _ => {}
        }
        failing = result.is_err();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = changed.notified() => {}
            _ = &mut stop => break,
        }
    }
    if let Err(error) = write_atomically(&path, &metrics.encode()) {
        tracing::warn!(path = %path.display(), %error, "cannot write the final metrics file");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_prefix_types_and_units() {
        let m = Metrics::new();
        m.subscriptions.inc();
        m.events.with_label_values(&["LAUNCH"]).inc();
        m.call("UPDATE", "accepted");
        m.ack_latency.observe(0.002);
        let text = m.encode();
        for expected in [
            "# TYPE mesos_executor_subscriptions_total counter",
            "mesos_executor_subscriptions_total 1",
            "mesos_executor_events_received_total{type=\"LAUNCH\"} 1",
            "mesos_executor_calls_total{outcome=\"accepted\",type=\"UPDATE\"} 1",
            "# TYPE mesos_executor_ack_latency_seconds histogram",
            "mesos_executor_ack_latency_seconds_bucket{le=\"0.0025\"} 1",
            "mesos_executor_connected 0",
            &format!("mesos_executor_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION")),
            "# TYPE mesos_executor_process_start_time_seconds gauge",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn writes_replace_the_file_atomically_and_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        write_atomically(&path, "a 1\n").unwrap();
        write_atomically(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        assert!(write_atomically(&dir.path().join("missing/m.prom"), "x").is_err());
    }

    /// A writer of the directory plants links where the temporary file would go (the
    /// name used to be `.<name>.<pid>.tmp`) and where the file itself goes: the files they
    /// point at are never written, and the link at the file's name is replaced.
    #[test]
    fn planted_links_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("m.prom");
        for guess in [format!(".m.prom.{}.tmp", std::process::id()), "m.prom".to_owned()] {
            std::os::unix::fs::symlink(&victim, dir.path().join(guess)).unwrap();
        }
        write_atomically(&path, "a 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 1\n");
    }
}
