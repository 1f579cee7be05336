//! The daemon reaps orphaned descendants on every SIGCHLD, and must never take the exit
//! status of its own fetch helper: with tasks ending all around it, a fetch used to fail
//! with "the fetch helper: No child processes" (the reaper had waited for it first).

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, TaskState, command_info::Uri};
use support::daemon::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers every GET with a small file after `delay`.
async fn slow_server(delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc").await;
            });
        }
    });
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_survive_the_orphan_reaper() {
    let base = slow_server(Duration::from_millis(20)).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    for i in 0..30 {
        let id = format!("fetching-{i}");
        let mut task = shell_task(&id, "test -f data");
        let uris = vec![Uri { value: format!("{base}/data"), ..Default::default() }];
        task.command = Some(CommandInfo { uris, value: Some("test -f data".into()), ..Default::default() });
        d.agent.agent.launch(task);
        // Children ending while the helpers run: a SIGCHLD each.
        for j in 0..2 {
            d.agent.agent.launch(shell_task(&format!("quick-{i}-{j}"), "true"));
        }
    }
    for i in 0..30 {
        let id = format!("fetching-{i}");
        let done = d.update(&id, TaskState::TaskFinished).await;
        assert_eq!(done.state(), TaskState::TaskFinished);
    }
}
