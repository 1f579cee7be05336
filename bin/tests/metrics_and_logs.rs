//! The daemon's metrics file, parsed by an independent Prometheus text parser (Python's
//! `prometheus_client`), checked against what the fake agent saw; and its logs: JSON on
//! request, task ids on task lines, no token and no secret value anywhere.

mod support;

use std::{collections::HashMap, time::Duration};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{Environment, Secret, TaskState, environment, secret};
use support::daemon::*;

/// Parses a metrics file with `prometheus_client` (installed by `scripts/test.sh`, or
/// here with pip when missing) into `name{label="v",...}` -> value, leaving out the
/// `framework_id` and `executor_id` labels every series carries (asserted present).
fn parse_with_prometheus_client(path: &std::path::Path) -> HashMap<String, f64> {
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
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        assert "framework_id" in s.labels and "executor_id" in s.labels, s
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()) if k not in ("framework_id", "executor_id"))
        out[s.name + ("{" + labels + "}" if labels else "")] = s.value
print(json.dumps(out))
"#;
    let output = std::process::Command::new("python3").args(["-c", script]).arg(path).output().unwrap();
    assert!(output.status.success(), "the parser refused the file: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_file_matches_what_the_agent_saw() {
    let config =
        AgentConfig { checkpoint: true, reregistration_timeout: Duration::from_millis(500), ..killing_capable() };
    let d = start(config, &["--mode=custom", "--metrics_interval=50ms"]).await;
    let file = d.sandbox.join("mesos-executor.prom");
    d.agent.agent.launch(data_task("good", "true"));
    d.agent.agent.launch(data_task("bad", "exit 2"));
    d.agent.agent.launch(data_task("long", &format!("sleep {}", unique_seconds())));
    d.update("good", TaskState::TaskFinished).await;
    d.update("bad", TaskState::TaskFailed).await;
    d.update("long", TaskState::TaskRunning).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = parse_with_prometheus_client(&file);
    assert_eq!(live["mesos_executor_connected"], 1.0);
    assert_eq!(live["mesos_executor_tasks{state=\"TASK_RUNNING\"}"], 1.0);

    d.agent.agent.restart(Duration::from_millis(100), Duration::from_millis(50)).await;
    d.wait("resubscription", |s| s.subscriptions == 2).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // let the window close
    d.agent.agent.shutdown();
    assert_eq!(d.exit().await, "exited with status 0");

    let m = parse_with_prometheus_client(&file);
    let (subscriptions, acks, launches, accepted_updates) = d.agent.agent.inspect(|s| {
        let acks = s
            .transcript
            .iter()
            .filter(|e| e.to_json()["type"] == "ACKNOWLEDGED" && e.to_json()["stream"].is_u64())
            .count();
        let launches = s.transcript.iter().filter(|e| e.to_json()["type"] == "LAUNCH").count();
        let updates =
            s.transcript.iter().filter(|e| e.to_json()["type"] == "UPDATE" && e.to_json()["status"] == 202).count();
        (s.subscriptions, acks, launches, updates)
    });
    assert_eq!(m["mesos_executor_subscriptions_total"], subscriptions as f64);
    assert!(m["mesos_executor_subscription_attempts_total"] >= subscriptions as f64);
    assert_eq!(m["mesos_executor_disconnects_total"], 1.0);
    assert_eq!(m["mesos_executor_connected"], 0.0, "the final write happens at exit");
    assert_eq!(m["mesos_executor_events_received_total{type=\"LAUNCH\"}"], launches as f64);
    assert_eq!(m["mesos_executor_events_received_total{type=\"SHUTDOWN\"}"], 1.0);
    assert_eq!(m["mesos_executor_status_updates_acknowledged_total"], acks as f64);
    assert_eq!(m["mesos_executor_status_updates_unacknowledged"], 0.0);
    assert_eq!(m["mesos_executor_ack_latency_seconds_count"], acks as f64);
    assert_eq!(m["mesos_executor_calls_total{outcome=\"accepted\",type=\"UPDATE\"}"], accepted_updates as f64);
    assert!(m["mesos_executor_status_updates_total"] >= accepted_updates as f64);
    assert_eq!(m["mesos_executor_tasks{state=\"TASK_FINISHED\"}"], 1.0);
    assert_eq!(m["mesos_executor_tasks{state=\"TASK_FAILED\"}"], 1.0);
    assert_eq!(m["mesos_executor_tasks{state=\"TASK_KILLED\"}"], 1.0);
    assert_eq!(m["mesos_executor_tasks{state=\"TASK_RUNNING\"}"], 0.0);
    assert!(m["mesos_executor_process_start_time_seconds"] > 1.7e9);
    assert_eq!(m[&format!("mesos_executor_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))], 1.0);
    let leftovers: Vec<_> = std::fs::read_dir(&d.sandbox)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_task_ids_and_never_secrets() {
    let token = "tok-3f1e9c2a-never-log-me";
    let secret_value = "s3cr3t-hunter2-value";
    let mut config = AgentConfig { auth_token: Some(token.into()), ..killing_capable() };
    config.executor_environment_variables.insert("RUST_LOG".into(), "trace".into());
    let d = start(config, &["--mode=custom", "--log_format=json"]).await;
    let mut task = data_task("t1", "test \"$DB_PASSWORD\" = s3cr3t-hunter2-value");
    let mut command: mesos_executor::proto::v1::CommandInfo =
        mesos_executor::wire::decode(task.data.as_ref().unwrap(), mesos_executor::ContentType::Json).unwrap();
    command.environment = Some(Environment {
        variables: vec![environment::Variable {
            name: "DB_PASSWORD".into(),
            r#type: Some(environment::variable::Type::Secret as i32),
            secret: Some(Secret {
                r#type: Some(secret::Type::Value as i32),
                value: Some(secret::Value { data: secret_value.as_bytes().to_vec().into() }),
                ..Default::default()
            }),
            ..Default::default()
        }],
    });
    task.data = Some(mesos_executor::wire::to_json_value(&command).unwrap().to_string().into_bytes().into());
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    d.agent.agent.shutdown();
    d.exit().await;

    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap();
    assert!(log.lines().count() > 20, "trace logging was on:\n{log}");
    assert!(!log.contains(token), "the token leaked into the log");
    assert!(!log.contains(secret_value), "a secret value leaked into the log");
    let mut task_lines = 0;
    for line in log.lines() {
        let json: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let message = json["fields"]["message"].as_str().unwrap_or("");
        if ["status update", "task started", "launch", "killing task"].contains(&message) {
            task_lines += 1;
            assert_eq!(json["fields"]["task_id"], "t1", "a line about a task without its id: {line}");
        }
    }
    assert!(task_lines >= 4, "{task_lines} task lines in\n{log}");
}

/// Whether a scrape shows one subscription (the series carries the executor's labels).
fn subscribed(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("mesos_executor_subscriptions_total{") && l.ends_with("} 1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_http_when_asked() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("--metrics_address=127.0.0.1:{port}");
    let d = start(AgentConfig::default(), &["--mode=custom", &address]).await;
    // The daemon counts its subscription when the 200 reaches it, a moment after the
    // agent does: ask until it shows.
    let mut text = String::new();
    for _ in 0..100 {
        text.clear();
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
            stream.read_to_string(&mut text).await.unwrap();
            if subscribed(&text) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-type: text/plain; version=0.0.4"), "{text}");
    assert!(subscribed(&text), "{text}");
    drop(d);
}

/// CPU time (user + system, in clock ticks) a process has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_out_of_descriptors_does_not_spin() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("--metrics_address=127.0.0.1:{port}");
    // The daemon under a small descriptor limit (set by python, then exec: same pid).
    let limit = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)); \
                 os.execv(sys.argv[1], sys.argv[1:])";
    let daemon = env!("CARGO_BIN_EXE_mesos-executor");
    let command = ["python3", "-c", limit, daemon, "--mode=custom", &address].map(str::to_owned);
    let d = start_command(AgentConfig::default(), &command).await;
    let pid = *processes_matching(&address).first().expect("the daemon's pid");
    // More connections than it has descriptors left: the kernel completes them all, the
    // daemon accepts until EMFILE, and every later accept fails at once.
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_ticks(pid) - before;
    // A spinning accept loop burns the whole second (about 100 ticks).
    assert!(used < 20, "the daemon used {used} ticks of CPU in one idle second");
    drop(held);
    drop(d);
}

/// Idle clients of the metrics endpoint cannot starve the daemon of descriptors: with
/// 64 connections held open that never send a request, under a 48-descriptor limit, a
/// LAUNCH still starts its task promptly (it used to wait 12 s for TASK_STARTING and fail
/// with "Too many open files"), and a scrape still gets an answer once the idle
/// connections have timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_metrics_clients_do_not_starve_launches() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("--metrics_address=127.0.0.1:{port}");
    let limit = "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48)); \
                 os.execv(sys.argv[1], sys.argv[1:])";
    let daemon = env!("CARGO_BIN_EXE_mesos-executor");
    let command = ["python3", "-c", limit, daemon, "--mode=custom", &address].map(str::to_owned);
    let d = start_command(AgentConfig::default(), &command).await;
    let mut held = Vec::new();
    for _ in 0..64 {
        held.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let launched = std::time::Instant::now();
    d.agent.agent.launch(data_task("t1", "exit 0"));
    d.update("t1", TaskState::TaskFinished).await;
    let took = launched.elapsed();
    assert!(took < Duration::from_secs(3), "the task took {took:?} to finish under idle metrics clients");
    // A scrape is answered once the idle ones have timed out: a connection over the cap
    // is closed at once, and a scraper tries again (here every 200 ms).
    let asked = std::time::Instant::now();
    let mut text = String::new();
    while asked.elapsed() < Duration::from_secs(12) && !text.starts_with("HTTP/1.1 200") {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        text.clear();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut text)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(text.starts_with("HTTP/1.1 200"), "no scrape answered within 12 s: {text:?}");
    drop(held);
    drop(d);
}
