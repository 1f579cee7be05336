//! Hostile review of issue 21 (item 1): `TaskProcess::wait` promises "when it returns,
//! nothing of the task runs". These tests run as the daemon does, a child subreaper
//! (`process::become_subreaper`, `bin/main.rs`), and try to leave a process of a task
//! that exits 0 running after `wait` has returned.
//!
//! Every test kills what it started (by marker, and by pid for what carries none), even
//! when it fails.

use std::{path::Path, process::Stdio, time::Duration};

use mesos_executor::executor::{
    launch::{LaunchSpec, TASK_MARKER},
    process::{self, Exit},
};

/// Live (not zombie) processes whose command line holds `needle`.
fn running(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            !zombie && String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(needle)
        })
        .collect()
}

/// Kills, by pid, every live process whose command line holds `needle`.
fn kill_all(needle: &str) {
    for pid in running(needle) {
        let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Seconds no other test sleeps, to find a test's own processes by.
fn unique(n: u32) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}.{nanos:09}", 900 + n)
}

fn task(script: &str, marker: &str) -> LaunchSpec {
    let mut spec = LaunchSpec::new("/bin/sh", ["sh", "-c", script]);
    spec.env.insert(TASK_MARKER.to_owned(), marker.to_owned());
    spec.env.insert("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()));
    spec
}

/// Runs `script` as a task marked `marker` as a subreaper would, and returns what of
/// `needle` still runs once `wait` has returned; kills all of it before returning.
async fn left_after_wait(script: &str, marker: &str, needle: &str) -> Vec<u32> {
    process::become_subreaper().expect("PR_SET_CHILD_SUBREAPER");
    let mut task = process::spawn(&task(script, marker), Path::new("/"), Stdio::null(), Stdio::null()).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), task.wait()).await;
    // Let a process that was SIGKILLed finish dying before looking.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = running(needle);
    process::kill_marked_with_prefix(marker);
    kill_all(needle);
    assert_eq!(exit.expect("wait has a deadline").unwrap(), Exit::Code(0));
    left
}

/// The clean-up must not stop at a round that finds no marked child of ours while a
/// killed member of the group has not finished dying: what it started outside the group
/// is still its child, not ours, until it exits (found by the hostile review of #21). A member with a large address space (hundreds of MiB to free
/// before its children are reparented) makes the window wide; a loaded host needs no help.
#[tokio::test]
async fn wait_kills_the_escapee_of_a_group_member_still_dying() {
    let escaped = unique(1);
    let member = format!(
        "import os, subprocess, time\n\
         ballast = b'x' * (768 << 20)\n\
         subprocess.Popen(['setsid', 'sleep', '{escaped}'])\n\
         time.sleep(600)\n"
    );
    let script = format!("python3 -c \"{member}\" & sleep 2; exit 0");
    let left = left_after_wait(&script, "review21/dying-parent", &escaped).await;
    assert!(left.is_empty(), "the escapee {escaped} outlived wait(): {left:?}");
}

/// A subreaper kills one generation of escapees per round (only its own children are
/// looked at): a chain 24 deep needs more rounds than the 20 the clean-up once had; it
/// is bounded by time now (`CLEAN_UP_DEADLINE`).
#[tokio::test]
async fn wait_kills_a_chain_deeper_than_twenty_generations() {
    let leaf = unique(2);
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("chain.sh");
    std::fs::write(
        &chain,
        format!("if [ \"$1\" -gt 0 ]; then setsid sh \"$0\" $(($1 - 1)) & fi\nsleep 0.5\nexec sleep {leaf}\n"),
    )
    .unwrap();
    let script = format!("setsid sh {} 24 & sleep 1; exit 0", chain.display());
    let left = left_after_wait(&script, "review21/chain", &leaf).await;
    assert!(left.is_empty(), "{} of the 25 processes of the chain outlived wait(): {left:?}", left.len());
}

/// The marker is the task's own to keep or drop: a process that leaves the group and
/// drops `MESOS_EXECUTOR_TASK` from its environment is not found by the clean-up, and
/// `wait()`'s "nothing of the task runs" is not so. (As a subreaper the executor has it
/// as its own child, so it could tell.) An open hole, as `attack_root.rs`'s: the docs
/// say what the marker catches and what it cannot.
#[tokio::test]
#[ignore = "open hole: a process that drops its marker and leaves the group outlives its task (README, cleanup)"]
async fn open_hole_wait_kills_a_leftover_that_drops_its_marker() {
    let unmarked = unique(3);
    let script = format!("setsid env -u {TASK_MARKER} sleep {unmarked} & sleep 0.3; exit 0");
    let left = left_after_wait(&script, "review21/unmarked", &unmarked).await;
    assert!(left.is_empty(), "an unmarked leftover outlived wait(): {left:?}");
}
