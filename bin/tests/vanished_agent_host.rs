//! An agent host that stops answering without closing anything: the daemon runs in a
//! network namespace of its own and reaches the fake agent over a veth pair; taking the
//! link down drops every packet, with no FIN and no RST. TCP keepalive (not a read
//! timeout: agents send HEARTBEAT only every 30 minutes) must notice it in bounded time,
//! then the daemon retries until the recovery timeout and shuts down. Needs root and
//! iproute2 (`ip netns`), as CI has.

mod support;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use fake_agent::{AgentConfig, FakeAgent, process::Output};
use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap_or_else(|e| panic!("ip {args:?}: {e} (needs iproute2)"));
    assert!(status.success(), "ip {args:?} failed (this test needs root)");
}

/// A namespace with one end of a veth pair; removed on drop, even when the test fails.
struct Namespace {
    name: String,
    host_link: String,
}

impl Namespace {
    fn new() -> Self {
        let n = std::process::id() % 100_000;
        let ns = Namespace { name: format!("mx-exec-{n}"), host_link: format!("mxh{n}") };
        let peer = format!("mxe{n}");
        ip(&["netns", "add", &ns.name]);
        ip(&["link", "add", &ns.host_link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &ns.name]);
        ip(&["addr", "add", "169.254.77.1/30", "dev", &ns.host_link]);
        ip(&["link", "set", &ns.host_link, "up"]);
        ip(&["netns", "exec", &ns.name, "ip", "addr", "add", "169.254.77.2/30", "dev", &peer]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &peer, "up"]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_link]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and iproute2 (scripts/test.sh includes it when run as root)"]
async fn a_host_that_stops_answering_is_noticed_by_keepalive() {
    assert!(nix::unistd::geteuid().is_root(), "network namespaces need root");
    let ns = Namespace::new();
    let config = AgentConfig { checkpoint: true, recovery_timeout: Duration::from_secs(3), ..AgentConfig::default() };
    let mut agent = FakeAgent::new(config).start_on("169.254.77.1:0".parse().unwrap()).await.unwrap();
    let daemon = env!("CARGO_BIN_EXE_mesos-executor").to_owned();
    let command: Vec<String> = ["ip", "netns", "exec", &ns.name, &daemon, "--mode=custom", "--keepalive_idle=1secs"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let sandbox = agent.launch_executor(&command, Output::SandboxFiles).unwrap();
    let d = Daemon { agent, sandbox };
    d.wait("subscription across the veth", |s| s.subscriptions > 0).await;
    let marker = unique_seconds();
    d.agent.agent.launch(data_task("t1", &format!("sleep {marker}")));
    d.update("t1", TaskState::TaskRunning).await;

    // The host vanishes: packets are dropped, nothing is closed.
    let cut = Instant::now();
    ip(&["link", "set", &ns.host_link, "down"]);
    let exit = d.exit().await;
    let took = cut.elapsed();
    let log = std::fs::read_to_string(d.sandbox.join("stderr")).unwrap_or_default();
    let noticed = log
        .lines()
        .find(|l| l.contains("disconnected from the agent"))
        .unwrap_or_else(|| panic!("no disconnection in\n{log}"));
    assert!(noticed.contains("timed out"), "noticed by a timeout of the connection: {noticed}");
    assert_eq!(exit, "exited with status 1", "giving up on the agent is a failure exit\n{log}");
    // Keepalive: 1 s idle + 3 probes 1 s apart; then 3 s of recovery attempts.
    assert!(
        took > Duration::from_secs(3) && took < Duration::from_secs(15),
        "the executor ended {took:?} after the host vanished"
    );
    assert!(processes_matching(&marker).is_empty(), "the task outlived its executor");
    println!("vanished host noticed; executor ended {:.1} s after the link went down", took.as_secs_f64());
}
