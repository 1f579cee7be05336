//! `--tty_slave_path`: the task gets the terminal on stdin, stdout and stderr as its
//! controlling terminal, in a session of its own, and the executor keeps none (upstream:
//! `src/slave/containerizer/mesos/launch.cpp`). The daemon runs as a session leader, as
//! the agent starts it (`setsid`): a terminal it opened without `O_NOCTTY` would become
//! its own, stopping a task that sets the terminal (SIGTTOU) and killing the daemon on
//! a hang-up (SIGHUP).

mod support;

use std::{
    io::Read,
    os::fd::{AsFd, OwnedFd},
    os::unix::fs::OpenOptionsExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::TaskState;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use support::daemon::*;

const DROP_IN: &str = "--launcher_dir=/usr/libexec/mesos";

/// A pseudo-terminal made for one test.
struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    path: PathBuf,
}

impl Pty {
    /// Both ends close on exec: tests run in parallel, and a daemon that inherited
    /// another test's master would keep its terminal from hanging up.
    fn open() -> Pty {
        use nix::{fcntl::OFlag, pty};
        let master = pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
        pty::grantpt(&master).unwrap();
        pty::unlockpt(&master).unwrap();
        let path = PathBuf::from(pty::ptsname_r(&master).unwrap());
        // std opens with O_CLOEXEC; this process is no session leader, but be explicit.
        let slave =
            std::fs::OpenOptions::new().read(true).write(true).custom_flags(nix::libc::O_NOCTTY).open(&path).unwrap();
        Pty { master: master.into(), _slave: slave.into(), path }
    }

    /// `/proc/<pid>/stat`'s `tty_nr` for this terminal (the kernel's device encoding).
    fn tty_nr(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.path).unwrap().rdev();
        let (major, minor) = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff), (rdev & 0xff) | ((rdev >> 12) & !0xff));
        (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
    }

    /// What the task wrote, read from the master until `needle` shows (or 10 s pass).
    fn read_until(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        let mut master = std::fs::File::from(self.master.try_clone().unwrap());
        while !String::from_utf8_lossy(&seen).contains(needle) && Instant::now() < deadline {
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(100u16)).unwrap() == 0 {
                continue;
            }
            let mut buf = [0u8; 1024];
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }
}

/// The daemon as a session leader with `--tty_slave_path` and `args`.
async fn start_on(pty: &Pty, args: &[&str]) -> Daemon {
    let mut command = vec!["setsid".to_owned(), "-w".to_owned(), env!("CARGO_BIN_EXE_mesos-executor").to_owned()];
    command.push(format!("--tty_slave_path={}", pty.path.display()));
    command.extend(args.iter().map(|a| (*a).to_owned()));
    start_command(AgentConfig::default(), &command).await
}

/// `/proc/<pid>/stat` field 7 (`tty_nr`).
fn tty_nr_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(4).unwrap().parse().unwrap()
}

/// The daemon's pid (not its `setsid` parent, not its watchdog).
fn daemon_pid(d: &Daemon) -> u32 {
    let binary = env!("CARGO_BIN_EXE_mesos-executor");
    let marker = format!("MESOS_SANDBOX={}", d.sandbox.display());
    let pids: Vec<u32> = processes_matching(binary)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            args.first() == Some(&binary.as_bytes())
                && !args.iter().any(|a| a.starts_with(b"--watchdog"))
                && environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        })
        .collect();
    assert_eq!(pids.len(), 1, "one daemon: {pids:?}");
    pids[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_may_set_its_terminal() {
    let pty = Pty::open();
    let d = start_on(&pty, &[DROP_IN]).await;
    d.agent.agent.launch(shell_task("t1", "stty -echo && echo done"));
    d.update("t1", TaskState::TaskFinished).await;
    let seen = pty.read_until("done");
    assert!(seen.contains("done"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_is_the_tasks_alone() {
    let pty = Pty::open();
    let d = start_on(&pty, &[DROP_IN]).await;
    d.agent.agent.launch(shell_task("t1", "awk '{print $7}' /proc/$$/stat > tty_nr.txt; exec sleep 30"));
    d.update("t1", TaskState::TaskRunning).await;
    let file = d.sandbox.join("tty_nr.txt");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&file).unwrap_or_default().trim().is_empty() {
        assert!(Instant::now() < deadline, "the task wrote no tty_nr");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let task: u64 = std::fs::read_to_string(&file).unwrap().trim().parse().unwrap();
    assert_eq!(task, pty.tty_nr(), "the task's controlling terminal is the pty");
    assert_eq!(tty_nr_of(daemon_pid(&d)), 0, "the daemon has no controlling terminal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_up_ends_the_task_not_the_daemon() {
    let pty = Pty::open();
    let d = start_on(&pty, &[DROP_IN]).await;
    d.agent.agent.launch(shell_task("t1", "exec sleep 30"));
    d.update("t1", TaskState::TaskRunning).await;
    // The terminal goes away: its session (the task's) is hung up.
    drop(pty);
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert!(failed.message().contains("Hangup"), "{}", failed.message());
    assert_eq!(d.exit().await, "exited with status 0", "the daemon reported and ended as usual");
}
