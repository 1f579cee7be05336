//! One signal per process per step of a kill (issue 22): a task's process group gets
//! SIGTERM once, and a marked process outside the group gets it once too; the group is
//! not signalled a second time through its members' markers. A program that treats a
//! second SIGTERM as "exit now" (Go services commonly do) would otherwise skip its
//! graceful shutdown.

mod support;

use std::time::Duration;

use mesos_executor::proto::v1::TaskState;
use support::daemon::*;

/// Counts the SIGTERMs it gets (each appends a line to `file`), exits 0 after 1.5 s.
fn counter(file: &str) -> String {
    format!(
        "exec python3 -c 'import signal, time\n\
         signal.signal(signal.SIGTERM, lambda *_: open(\"{file}\", \"a\").write(\"TERM\\n\"))\n\
         open(\"{file}.ready\", \"w\").close()\n\
         end = None\n\
         while True:\n\
         \x20   time.sleep(0.01)\n\
         \x20   if open(\"{file}\").read().count(\"TERM\") if __import__(\"os\").path.exists(\"{file}\") else False:\n\
         \x20       end = end or time.time() + 1.5\n\
         \x20   if end and time.time() > end: break\n'"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_sends_sigterm_once() {
    let d = command_executor(killing_capable()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("terms");
    let file = file.display().to_string();
    d.agent.agent.launch(shell_task("t1", &counter(&file)));
    d.update("t1", TaskState::TaskRunning).await;
    for _ in 0..200 {
        if std::path::Path::new(&format!("{file}.ready")).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    d.agent.agent.kill("t1", fake_agent::scenario::kill_policy(Some(5000)));
    d.update("t1", TaskState::TaskKilled).await;
    let terms = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(terms.lines().count(), 1, "SIGTERMs received: {terms:?}");
}
