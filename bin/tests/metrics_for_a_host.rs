//! Metrics for a host (issue 22, item 4): many executors write into one shared directory
//! (node_exporter's textfile collector), each under a name of its own that hostile ids
//! cannot steer out of it, every series labelled with the executor's framework and
//! executor ids, the file gone when the executor ends (even by SIGKILL); the endpoint on
//! a port the system chooses (logged) or on a unix socket.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

/// Every sample of a metrics file, parsed by `prometheus_client` (installed with pip
/// when missing), as (name, labels as JSON object).
fn samples(path: &Path) -> Vec<(String, serde_json::Value)> {
    let probe = std::process::Command::new("python3").args(["-c", "import prometheus_client"]).status().unwrap();
    if !probe.success() {
        let pip = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "prometheus_client"])
            .status()
            .unwrap();
        assert!(pip.success(), "cannot install prometheus_client with pip");
    }
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        out.append([s.name, s.labels])
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3").args(["-c", script]).arg(path).output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The entries of `dir`, by name.
fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn agent(framework_id: &str, executor_id: &str) -> AgentConfig {
    AgentConfig { framework_id: framework_id.into(), executor_id: executor_id.into(), ..killing_capable() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_executors_share_one_directory_with_labelled_files_gone_at_exit() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let flag = format!("--metrics_dir={}", dir.display());
    // Hostile ids: a way out of the directory, a slash, quotes and backslashes for the
    // label values, and a name far longer than a file name may be.
    let ids = [("fw-1", "../escape/\"quoted\"\\back".to_owned()), ("fw-2/../..", "x".repeat(400))];
    let a = start(agent(ids[0].0, &ids[0].1), &["--mode=custom", &flag, "--metrics_interval=50ms"]).await;
    let b = start(agent(ids[1].0, &ids[1].1), &["--mode=custom", &flag, "--metrics_interval=50ms"]).await;
    for d in [&a, &b] {
        d.agent.agent.launch(data_task("t1", "true"));
        d.update("t1", TaskState::TaskFinished).await;
    }
    wait_until("two metrics files", || entries(&dir).iter().filter(|n| n.ends_with(".prom")).count() == 2).await;
    let names = entries(&dir);
    assert_eq!(names.len(), 2, "only the two files are in the directory: {names:?}");
    assert_eq!(entries(shared.path()), BTreeSet::from(["textfile".to_owned()]), "nothing escaped the directory");
    let mut label_sets = BTreeSet::new();
    for name in &names {
        assert!(!name.starts_with('.') && name.len() <= 255, "{name}");
        let samples = samples(&dir.join(name));
        assert!(samples.len() > 10, "{name}: {samples:?}");
        let mut ids_here = BTreeSet::new();
        for (sample, labels) in &samples {
            let (Some(fw), Some(ex)) = (labels["framework_id"].as_str(), labels["executor_id"].as_str()) else {
                panic!("{name}: {sample} has no framework_id and executor_id labels: {labels}");
            };
            ids_here.insert((fw.to_owned(), ex.to_owned()));
        }
        assert_eq!(ids_here.len(), 1, "{name}: one executor's ids on every series: {ids_here:?}");
        label_sets.extend(ids_here);
    }
    let expected: BTreeSet<_> = ids.iter().map(|(fw, ex)| ((*fw).to_owned(), ex.clone())).collect();
    assert_eq!(label_sets, expected, "each file carries its own executor's ids, escaped and read back whole");
    for d in [&a, &b] {
        d.agent.agent.shutdown();
        assert_eq!(d.exit().await, "exited with status 0");
    }
    let left = entries(&dir);
    assert!(left.is_empty(), "files left after both executors ended: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_executor_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let flag = format!("--metrics_dir={}", dir.path().display());
    let d = start(agent("fw-k", "ex-k"), &["--mode=custom", &flag, "--metrics_interval=50ms"]).await;
    wait_until("the metrics file", || entries(dir.path()).iter().any(|n| n.ends_with(".prom"))).await;
    // The daemon alone has the flag on its command line (its watchdog has the file's path).
    let pids = processes_matching(&flag);
    assert_eq!(pids.len(), 1, "{pids:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0] as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let how = d.exit().await;
    assert!(how.contains("signal"), "{how}");
    // Nothing in the daemon ran after SIGKILL: the watchdog removed it.
    wait_until("the file to go", || entries(dir.path()).is_empty()).await;
}

/// Two executors with the same ids on one host (two agents, or a relaunch racing a
/// watchdog) share one file name: the second says so at start, and when it ends the
/// first's file comes back at the first's next write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_executor_with_the_same_ids_says_it_shares_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let flag = format!("--metrics_dir={}", dir.path().display());
    let a = start(agent("fw-t", "ex-t"), &["--mode=custom", &flag, "--metrics_interval=50ms"]).await;
    wait_until("the first's file", || entries(dir.path()).iter().any(|n| n.ends_with(".prom"))).await;
    let b = start(agent("fw-t", "ex-t"), &["--mode=custom", &flag, "--metrics_interval=50ms"]).await;
    b.agent.agent.shutdown();
    assert_eq!(b.exit().await, "exited with status 0");
    let log = std::fs::read_to_string(b.sandbox.join("stderr")).unwrap_or_default();
    assert!(log.lines().any(|l| l.contains("WARN") && l.contains("same ids")), "nothing said:\n{log}");
    wait_until("the first's file again", || entries(dir.path()).iter().any(|n| n.ends_with(".prom"))).await;
    a.agent.agent.shutdown();
    assert_eq!(a.exit().await, "exited with status 0");
    assert!(entries(dir.path()).is_empty());
}

/// GET /metrics over `stream`; the whole answer.
async fn scrape<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut stream: S) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_is_chosen_by_the_system_and_logged() {
    let a = start(agent("fw-p", "ex-a"), &["--mode=custom", "--metrics_address=127.0.0.1:0"]).await;
    let b = start(agent("fw-p", "ex-b"), &["--mode=custom", "--metrics_address=127.0.0.1:0"]).await;
    let mut addresses = BTreeSet::new();
    for (d, id) in [(&a, "ex-a"), (&b, "ex-b")] {
        let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
        let line = log.lines().find(|l| l.contains("serving metrics")).unwrap_or_else(|| panic!("not logged:\n{log}"));
        let address = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("address="))
            .unwrap_or_else(|| panic!("no address in {line}"))
            .to_owned();
        assert!(!address.ends_with(":0"), "the chosen port is logged, not 0: {line}");
        let text = scrape(tokio::net::TcpStream::connect(&address).await.unwrap()).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.contains(&format!("executor_id=\"{id}\"")), "{text}");
        addresses.insert(address);
    }
    assert_eq!(addresses.len(), 2, "two executors, two addresses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_serves_on_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket: PathBuf = dir.path().join("metrics.sock");
    let flag = format!("--metrics_address=unix:{}", socket.display());
    let d = start(agent("fw-u", "ex-u"), &["--mode=custom", &flag]).await;
    wait_until("the socket", || socket.exists()).await;
    let text = scrape(tokio::net::UnixStream::connect(&socket).await.unwrap()).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let line = text.lines().find(|l| l.starts_with("mesos_executor_connected{")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("executor_id=\"ex-u\"") && line.contains("framework_id=\"fw-u\""), "{line}");
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");
    assert!(!socket.exists(), "the socket outlived the executor");
}
