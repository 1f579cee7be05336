//! What an executor on the real agent costs in memory: its own processes found through
//! `/proc` (the executor and the helpers it keeps, never the tasks it runs), and their
//! PSS, USS and RSS from `/proc/PID/smaps_rollup`. Used by the real-agent benchmark
//! (`bin/benches/real.rs`) and available to the tests.

use std::path::Path;

use super::processes_naming;

/// Resident memory of some processes, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Proportional set size: shared pages divided among their mappers.
    pub pss: u64,
    /// Unique set size: pages no other process maps (private clean + private dirty).
    pub uss: u64,
    pub rss: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;
    fn add(self, o: Memory) -> Memory {
        Memory { pss: self.pss + o.pss, uss: self.uss + o.uss, rss: self.rss + o.rss }
    }
}

/// PSS, USS and RSS of `pid`; `None` when it is gone or unreadable.
pub fn of(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some(Memory {
        pss: field("Pss:")?,
        uss: field("Private_Clean:")?.checked_add(field("Private_Dirty:")?)?,
        rss: field("Rss:")?,
    })
}

/// The processes of the executor `executor` (whose environment has
/// `MESOS_EXECUTOR_ID=<executor>`) that run one of `programs` (a resolved
/// `/proc/PID/exe`): the executor and its helpers, such as our watchdog, without the
/// tasks (a task runs its own program, `sleep` in the benchmark). Sorted by pid.
pub fn executor_processes(executor: &str, programs: &[&Path]) -> Vec<u32> {
    let marker = format!("MESOS_EXECUTOR_ID={executor}\0");
    let mut pids: Vec<u32> = processes_naming(&marker)
        .into_iter()
        .map(|(pid, _)| pid)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| programs.iter().any(|p| exe == *p))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The sum over `pids` (those gone are left out).
pub fn total(pids: &[u32]) -> Memory {
    pids.iter().filter_map(|p| of(*p)).fold(Memory::default(), |a, b| a + b)
}
