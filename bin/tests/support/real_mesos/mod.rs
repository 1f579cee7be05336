//! A real Apache Mesos master and agent for tests: found through `MESOS_HOME` (an unpacked
//! install with `sbin/`, `bin/`, `libexec/mesos/`), started on loopback ports chosen free at
//! run time, with a launcher directory whose `mesos-executor` and `mesos-default-executor`
//! are either our daemon (drop-in for both) or upstream's command and default executors
//! (the control). Tasks go through upstream's
//! `mesos-execute`, whose printed status updates are parsed into [`Update`]s.
//!
//! Clean-up does not depend on destructors (a cluster lives in a `static`, whose `Drop`
//! never runs): a reaper shell started with every cluster waits for its stdin to close,
//! which happens when the test process ends in any way, then SIGTERMs and SIGKILLs every
//! process whose command line or environment names the cluster's work directory (master,
//! agent, executors, tasks, `mesos-execute`) and removes that directory (kept when
//! `REAL_MESOS_KEEP` is set, for a post-mortem: its path is printed at start).

#![allow(dead_code)]

pub mod memory;
pub mod scheduler;

use std::{
    io::{BufRead, BufReader, Read},
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// `MESOS_HOME`, or `None` after printing why the calling test is skipped.
pub fn mesos_home(test: &str) -> Option<PathBuf> {
    let Some(home) = std::env::var_os("MESOS_HOME").filter(|h| !h.is_empty()) else {
        eprintln!("SKIPPED (MESOS_HOME unset): {test}");
        return None;
    };
    if !nix_is_root() {
        eprintln!("SKIPPED (not root: the agent needs a private mount namespace): {test}");
        return None;
    }
    Some(PathBuf::from(home))
}

fn nix_is_root() -> bool {
    // The uid from /proc: no libc call needed.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Which programs the agent runs as its command executor (`<launcher_dir>/mesos-executor`)
/// and its default executor (`<launcher_dir>/mesos-default-executor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Our daemon, drop-in, under both names.
    Ours,
    /// Upstream's `libexec/mesos/mesos-executor` and `mesos-default-executor`, the control.
    Upstream,
}

/// Our daemon's binary.
pub fn our_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mesos-executor"))
}

/// A master and an agent, and what is needed to restart the agent.
pub struct Cluster {
    pub home: PathBuf,
    pub flavour: Flavour,
    pub work: PathBuf,
    pub master_port: u16,
    pub agent_port: u16,
    master: Child,
    agent: Child,
    reaper: Option<(Child, ChildStdin)>,
    runs: AtomicUsize,
}

/// A cluster shared by the tests of one binary, used by one test at a time.
pub struct Shared(Mutex<Option<Result<Cluster, String>>>);

impl Shared {
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// The cluster of `flavour` (started on first use), locked for the caller.
    pub fn get(&self, home: &Path, flavour: Flavour) -> ClusterGuard<'_> {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            let started = Instant::now();
            // Once more on failure: a port chosen free may have been taken meanwhile. (A
            // failed start's processes go with its reaper's pipe.)
            let cluster = Cluster::start(home, flavour)
                .or_else(|first| Cluster::start(home, flavour).map_err(|again| format!("{first}\nand again: {again}")));
            eprintln!("TIMING cluster start ({flavour:?}): {:.1}s", started.elapsed().as_secs_f64());
            if let Ok(c) = &cluster {
                eprintln!("cluster {flavour:?}: work directory {}", c.work.display());
            }
            *guard = Some(cluster);
        }
        if let Some(Err(e)) = guard.as_ref() {
            panic!("the {flavour:?} cluster did not start: {e}");
        }
        ClusterGuard(guard)
    }
}

pub struct ClusterGuard<'a>(MutexGuard<'a, Option<Result<Cluster, String>>>);

impl std::ops::Deref for ClusterGuard<'_> {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        match self.0.as_ref() {
            Some(Ok(c)) => c,
            _ => unreachable!("checked in Shared::get"),
        }
    }
}

impl std::ops::DerefMut for ClusterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Cluster {
        match self.0.as_mut() {
            Some(Ok(c)) => c,
            _ => unreachable!("checked in Shared::get"),
        }
    }
}

/// A loopback port free now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A port inside the agent's `ports:[31000-32000]` that nothing listens on now.
pub fn free_task_port() -> u16 {
    let start = 31000 + (std::process::id() % 500) as u16;
    (start..32000).chain(31000..start).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()).expect("a free port")
}

const REAPER: &str = r#"
W="$1"
cat >/dev/null
reap() {
  for d in /proc/[0-9]*; do
    p="${d#/proc/}"
    [ "$p" = "$$" ] && continue
    if grep -qsF -- "$W" "$d/cmdline" "$d/environ"; then kill "-$1" "$p" 2>/dev/null; fi
  done
}
reap TERM
sleep 1
reap KILL
sleep 0.3
[ -n "$REAL_MESOS_KEEP" ] || rm -rf "$W"
"#;

impl Cluster {
    fn start(home: &Path, flavour: Flavour) -> Result<Cluster, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let work = std::env::temp_dir().join(format!("real-mesos-{flavour:?}-{}-{nanos}", std::process::id()));
        let launcher = work.join("launcher");
        std::fs::create_dir_all(&launcher).map_err(|e| format!("create {}: {e}", launcher.display()))?;
        // The reaper first, so nothing started below can outlive this process.
        let mut reaper = Command::new("sh")
            .args(["-c", REAPER, "reaper"])
            .arg(&work)
            .stdin(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start the reaper: {e}"))?;
        let reaper_stdin = reaper.stdin.take().ok_or("reaper stdin")?;
        // The launcher directory: upstream's helpers linked in, the executor under test as
        // `mesos-executor` and `mesos-default-executor`.
        let libexec = home.join("libexec/mesos");
        for entry in std::fs::read_dir(&libexec).map_err(|e| format!("read {}: {e}", libexec.display()))? {
            let entry = entry.map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink(entry.path(), launcher.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
        if flavour == Flavour::Ours {
            for name in ["mesos-executor", "mesos-default-executor"] {
                let exe = launcher.join(name);
                std::fs::remove_file(&exe).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(our_binary(), &exe).map_err(|e| e.to_string())?;
            }
        }
        let master_port = free_port();
        let agent_port = free_port();
        let log = |name: &str| {
            std::fs::File::create(work.join(name)).map_err(|e| format!("create {name}: {e}")).map(Stdio::from)
        };
        let master = Command::new(home.join("sbin/mesos-master"))
            .arg("--ip=127.0.0.1")
            .arg(format!("--port={master_port}"))
            .arg(format!("--work_dir={}", work.join("master").display()))
            .args(["--no-hostname_lookup", "--registry=in_memory"])
            .stdout(log("master.log")?)
            .stderr(log("master.err")?)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start mesos-master: {e}"))?;
        let mut cluster = Cluster {
            home: home.to_owned(),
            flavour,
            work,
            master_port,
            agent_port,
            master,
            // Replaced at once below.
            agent: Command::new("true").spawn().map_err(|e| e.to_string())?,
            reaper: Some((reaper, reaper_stdin)),
            runs: AtomicUsize::new(0),
        };
        let _ = cluster.agent.wait();
        cluster.agent = cluster.spawn_agent()?;
        cluster.wait_until("the agent registered with the master", Duration::from_secs(60), |c| {
            c.master_state().ok().and_then(|s| s["activated_slaves"].as_f64()) == Some(1.0)
        })?;
        Ok(cluster)
    }

    fn spawn_agent(&self) -> Result<Child, String> {
        let agent = self.home.join("sbin/mesos-agent");
        let mut command;
        // The agent refuses a cgroup2 hierarchy mounted at a non-standard place: start it in
        // a private mount namespace without that mount (see /work/shared/mesos/README.md).
        if is_mount_point("/sys/fs/cgroup/unified") {
            command = Command::new("unshare");
            command.args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "umount /sys/fs/cgroup/unified; exec \"$0\" \"$@\"",
            ]);
            command.arg(agent);
        } else {
            command = Command::new(agent);
        }
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        command
            .arg(format!("--master=127.0.0.1:{}", self.master_port))
            .arg("--ip=127.0.0.1")
            .arg(format!("--port={}", self.agent_port))
            .arg(format!("--work_dir={}", self.work.join("agent").display()))
            .args(["--no-hostname_lookup", "--launcher=posix", "--isolation=posix/cpu,posix/mem"])
            .args(["--containerizers=mesos", "--no-systemd_enable_support"])
            .arg(format!("--launcher_dir={}", self.work.join("launcher").display()))
            .args([
                "--executor_registration_timeout=30secs",
                "--resources=cpus:8;mem:8192;disk:10000;ports:[31000-32000]",
            ])
            .stdout(Stdio::from(
                std::fs::File::create(self.work.join(format!("agent.{n}.log"))).map_err(|e| e.to_string())?,
            ))
            .stderr(Stdio::from(
                std::fs::File::create(self.work.join(format!("agent.{n}.err"))).map_err(|e| e.to_string())?,
            ))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start mesos-agent: {e}"))
    }

    /// SIGKILLs the agent (its executors and tasks stay) and starts it again with the same
    /// flags and work directory; returns when it serves `/state` again as registered.
    pub fn restart_agent(&mut self) {
        let _ = self.agent.kill();
        let _ = self.agent.wait();
        self.agent = self.spawn_agent().expect("restart the agent");
        self.wait_until("the restarted agent re-registered", Duration::from_secs(60), |c| {
            c.agent_state().ok().is_some_and(|s| s["master_hostname"].is_string() && s["frameworks"].is_array())
        })
        .expect("the agent came back");
    }

    fn wait_until(&self, what: &str, deadline: Duration, done: impl Fn(&Self) -> bool) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if done(self) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(200));
        }
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.work.join(name)).unwrap_or_default();
            text.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        };
        Err(format!(
            "{what}: not within {deadline:?}\n--- master.err:\n{}\n--- agent.0.err:\n{}",
            tail("master.err"),
            tail("agent.0.err")
        ))
    }

    /// Whether the log of any run of the agent holds a line containing all of `needles`.
    pub fn agent_logged(&self, needles: &[&str]) -> bool {
        (0..self.runs.load(Ordering::Relaxed)).any(|n| {
            std::fs::read_to_string(self.work.join(format!("agent.{n}.err")))
                .is_ok_and(|log| log.lines().any(|l| needles.iter().all(|x| l.contains(x))))
        })
    }

    /// Waits (at most `deadline`) until the agent logs a line containing all of `needles`.
    pub fn wait_agent_logged(&self, needles: &[&str], deadline: Duration) {
        let what = format!("the agent logged {needles:?}");
        self.wait_until(&what, deadline, |c| c.agent_logged(needles)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// When (seconds into the day, from the agent's log) the agent first handled an update
    /// of `task` in `state`: independent of how `mesos-execute` buffers its output.
    pub fn agent_update_time(&self, task: &str, state: &str) -> Option<f64> {
        let what = format!("Handling status update {state} ");
        let whose = format!(" for task {task} of framework");
        self.agent_log_time(&[&what, &whose])
    }

    /// When (seconds into the day, from the agent's log) the agent first logged a line
    /// containing all of `needles`.
    pub fn agent_log_time(&self, needles: &[&str]) -> Option<f64> {
        (0..self.runs.load(Ordering::Relaxed)).find_map(|n| {
            let log = std::fs::read_to_string(self.work.join(format!("agent.{n}.err"))).ok()?;
            let line = log.lines().find(|l| needles.iter().all(|x| l.contains(x)))?;
            // "I20261204 17:41:22.034483  2394 slave.cpp:5992] ..."
            let time = line.split_whitespace().nth(1)?;
            let mut parts = time.split(':');
            let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
            Some(h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
        })
    }

    /// Waits until the agent logs how the executor `executor` of `framework` ended, and
    /// returns that (`exited with status 0`, `terminated with signal ...`), as
    /// `src/slave/slave.cpp` (`executorTerminated`) words it.
    pub fn executor_end(&self, framework: &str, executor: &str) -> String {
        let head = format!("Executor '{executor}' of framework {framework} ");
        let find = |c: &Self| {
            (0..c.runs.load(Ordering::Relaxed)).find_map(|n| {
                let log = std::fs::read_to_string(c.work.join(format!("agent.{n}.err"))).ok()?;
                log.lines().find_map(|l| {
                    l.split_once(&head)
                        .map(|(_, rest)| rest.to_owned())
                        .filter(|r| r.starts_with("exited") || r.starts_with("terminated"))
                })
            })
        };
        self.wait_until(&format!("the agent saw the executor {executor} end"), Duration::from_secs(30), |c| {
            find(c).is_some()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        find(self).unwrap_or_default()
    }

    /// `POST /master/teardown` of `framework` (the operator's endpoint): the master removes
    /// the framework and the agent shuts its executors down.
    pub fn teardown(&self, framework: &str) {
        let url = format!("http://127.0.0.1:{}/master/teardown", self.master_port);
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-X", "POST"])
            .arg("--data")
            .arg(format!("frameworkId={framework}"))
            .arg(&url)
            .output()
            .expect("curl /master/teardown");
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(code, "200", "/master/teardown answered {code}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn master_state(&self) -> Result<Value, String> {
        get_json(&format!("http://127.0.0.1:{}/master/state", self.master_port))
    }

    pub fn agent_state(&self) -> Result<Value, String> {
        get_json(&format!("http://127.0.0.1:{}/state", self.agent_port))
    }

    pub fn agent_containers(&self) -> Result<Value, String> {
        get_json(&format!("http://127.0.0.1:{}/containers", self.agent_port))
    }

    /// The state the agent's `/state` gives the task `id` (any framework, any executor).
    pub fn agent_task_state(&self, id: &str) -> Option<String> {
        let state = self.agent_state().ok()?;
        find_task(&state, id).and_then(|t| t["state"].as_str().map(str::to_owned))
    }

    /// Writes `json` under the work directory and returns its `file://` URL.
    pub fn json_file(&self, name: &str, json: &Value) -> String {
        let dir = self.work.join("json");
        std::fs::create_dir_all(&dir).expect("json dir");
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, json.to_string()).expect("write json");
        format!("file://{}", path.display())
    }

    /// Starts `mesos-execute` against the master with `args`.
    pub fn execute(&self, args: &[String]) -> Execution {
        let mut child = Command::new(self.home.join("bin/mesos-execute"))
            .arg(format!("--master=127.0.0.1:{}", self.master_port))
            .args(args)
            // Names the work directory so that the reaper finds it too.
            .env("REAL_MESOS_WORK", &self.work)
            .env("GLOG_minloglevel", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start mesos-execute");
        let output = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let mut readers = Vec::new();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            readers.push(thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    output.lock().unwrap_or_else(|p| p.into_inner()).push((started.elapsed(), line));
                }
            }));
        }
        Execution { child, output, readers, started }
    }

    /// Runs `mesos-execute` to its end (at most `deadline`) and returns what it printed.
    pub fn run(&self, args: &[String], deadline: Duration) -> Outcome {
        self.execute(args).wait(deadline)
    }

    /// The sandbox (`runs/latest`) of `executor` of `framework`.
    pub fn sandbox(&self, framework: &str, executor: &str) -> PathBuf {
        let slaves = self.work.join("agent/slaves");
        let agent = std::fs::read_dir(&slaves)
            .expect("agent slaves dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.join("frameworks").join(framework).exists())
            .unwrap_or_else(|| panic!("no agent dir holds framework {framework}"));
        agent.join("frameworks").join(framework).join("executors").join(executor).join("runs/latest")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the reaper's stdin makes it clean up; wait for it (bounded).
        if let Some((mut reaper, stdin)) = self.reaper.take() {
            drop(stdin);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if reaper.try_wait().ok().flatten().is_some() {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.master.wait();
        let _ = self.agent.wait();
    }
}

fn is_mount_point(path: &str) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(4) == Some(path)))
        .unwrap_or(false)
}

/// GETs `url` with curl (bounded to 5 s) and parses the body as JSON.
pub fn get_json(url: &str) -> Result<Value, String> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "5", url])
        .output()
        .map_err(|e| format!("curl {url}: {e}"))?;
    if !out.status.success() {
        return Err(format!("curl {url}: {} {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{url}: not JSON: {e}"))
}

/// The object with `"id": id` and a `"state"` anywhere in `v` (a task in an agent's state).
pub fn find_task<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => {
            if m.get("id").and_then(Value::as_str) == Some(id) && m.contains_key("state") {
                return Some(v);
            }
            m.values().find_map(|x| find_task(x, id))
        }
        Value::Array(a) => a.iter().find_map(|x| find_task(x, id)),
        _ => None,
    }
}

/// A `mesos-execute` run in progress.
pub struct Execution {
    child: Child,
    /// Every line printed, with when (since the start).
    output: Arc<Mutex<Vec<(Duration, String)>>>,
    readers: Vec<thread::JoinHandle<()>>,
    started: Instant,
}

impl Execution {
    /// What it printed so far, parsed.
    pub fn so_far(&self) -> Outcome {
        Outcome::parse(&self.output.lock().unwrap_or_else(|p| p.into_inner()), None, self.started.elapsed())
    }

    /// Waits until `done` holds for the output so far (at most `deadline`).
    pub fn wait_for(&self, what: &str, deadline: Duration, done: impl Fn(&Outcome) -> bool) -> Outcome {
        let start = Instant::now();
        loop {
            let o = self.so_far();
            if done(&o) {
                return o;
            }
            assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}; mesos-execute printed:\n{}", o.text);
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the end (SIGKILLing its process group at `deadline`).
    pub fn wait(mut self, deadline: Duration) -> Outcome {
        let mut status = None;
        while self.started.elapsed() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if status.is_none() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        let lines = self.output.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let outcome = Outcome::parse(&lines, status.and_then(|s| s.code()), self.started.elapsed());
        assert!(status.is_some(), "mesos-execute did not end within {deadline:?}; it printed:\n{}", outcome.text);
        outcome
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
            let _ = self.child.wait();
        }
    }
}

/// One status update as `mesos-execute` printed it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Update {
    pub task: String,
    pub state: String,
    pub message: Option<String>,
    pub source: Option<String>,
    pub reason: Option<String>,
    pub healthy: Option<bool>,
    /// When `mesos-execute` printed it, since it started.
    pub at: Duration,
}

/// What a `mesos-execute` run printed.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub framework: Option<String>,
    pub updates: Vec<Update>,
    pub exit: Option<i32>,
    pub elapsed: Duration,
}

impl Outcome {
    fn parse(lines: &[(Duration, String)], exit: Option<i32>, elapsed: Duration) -> Outcome {
        let mut updates: Vec<Update> = Vec::new();
        let mut framework = None;
        let mut text = String::new();
        for (at, line) in lines {
            text.push_str(line);
            text.push('\n');
            if let Some(rest) = line.strip_prefix("Subscribed with ID ") {
                framework = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("Received status update ") {
                // "TASK_X for task 'id'"
                let (state, task) = rest.split_once(" for task ").unwrap_or((rest, ""));
                updates.push(Update {
                    task: task.trim().trim_matches('\'').to_owned(),
                    state: state.trim().to_owned(),
                    at: *at,
                    ..Update::default()
                });
            } else if let (Some(u), Some(field)) = (updates.last_mut(), line.strip_prefix("  ")) {
                let (key, value) = field.split_once(": ").unwrap_or((field, ""));
                match key {
                    "message" => u.message = Some(value.trim_matches('\'').to_owned()),
                    "source" => u.source = Some(value.to_owned()),
                    "reason" => u.reason = Some(value.to_owned()),
                    "healthy?" => u.healthy = Some(value.trim() == "1"),
                    _ => {}
                }
            }
        }
        Outcome { text, framework, updates, exit, elapsed }
    }

    /// The states of `task`'s updates, in order.
    pub fn states(&self, task: &str) -> Vec<&str> {
        self.updates.iter().filter(|u| u.task == task).map(|u| u.state.as_str()).collect()
    }

    /// The last update of `task` in `state`.
    pub fn last(&self, task: &str, state: &str) -> &Update {
        self.updates
            .iter()
            .rev()
            .find(|u| u.task == task && u.state == state)
            .unwrap_or_else(|| panic!("no {state} for {task}; mesos-execute printed:\n{}", self.text))
    }

    pub fn framework(&self) -> &str {
        self.framework.as_deref().unwrap_or_else(|| panic!("no framework id; mesos-execute printed:\n{}", self.text))
    }
}

/// A local HTTP server on port 0 that serves `body` at every path and counts GETs (and
/// keeps each GET's User-Agent: who fetched).
pub struct CountingServer {
    pub port: u16,
    gets: Arc<AtomicUsize>,
    agents: Arc<Mutex<Vec<String>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl CountingServer {
    pub fn start(body: &'static str) -> CountingServer {
        use hyper::{Response, body::Bytes, server::conn::http1, service::service_fn};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let gets = Arc::new(AtomicUsize::new(0));
        let agents = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let counter = Arc::clone(&gets);
        let user_agents = Arc::clone(&agents);
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let counter = Arc::clone(&counter);
                            let user_agents = Arc::clone(&user_agents);
                            tokio::spawn(async move {
                                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                    if req.method() == hyper::Method::GET {
                                        counter.fetch_add(1, Ordering::SeqCst);
                                        let ua = req.headers().get(hyper::header::USER_AGENT);
                                        let ua = ua.map_or("(none)".into(), |v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                                        user_agents.lock().unwrap_or_else(|p| p.into_inner()).push(ua);
                                    }
                                    async move {
                                        Ok::<_, std::convert::Infallible>(Response::new(
                                            http_body_util::Full::new(Bytes::from_static(body.as_bytes())),
                                        ))
                                    }
                                });
                                let _ = http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        CountingServer { port, gets, agents, _shutdown: tx }
    }

    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// The User-Agent of each GET, in order.
    pub fn user_agents(&self) -> Vec<String> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `mesos-execute --task` JSON resources: a little cpu and memory, and `ports` if any.
pub fn resources(ports: &[u16]) -> Value {
    let mut r = vec![
        serde_json::json!({"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}),
        serde_json::json!({"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}),
    ];
    if !ports.is_empty() {
        let ranges: Vec<Value> = ports.iter().map(|p| serde_json::json!({"begin": p, "end": p})).collect();
        r.push(serde_json::json!({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}}));
    }
    Value::Array(r)
}

/// Base64 (standard alphabet, padded) as the JSON mapping of `bytes` fields wants, through
/// the library's own JSON mapping of a TaskInfo's `data`.
pub fn base64(bytes: &[u8]) -> String {
    let task = mesos_executor::proto::v1::TaskInfo { data: Some(bytes.to_vec().into()), ..Default::default() };
    let json = mesos_executor::wire::to_json_value(&task).expect("TaskInfo to JSON");
    json["data"].as_str().expect("data as a string").to_owned()
}

/// Live processes (not this one, not zombies) whose command line or environment contains
/// `needle`, with their command lines.
pub fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
            let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
                .replace('\0', " ");
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let named = cmdline.contains(needle) || String::from_utf8_lossy(&environ).contains(needle);
            (named && !zombie).then_some((pid, cmdline))
        })
        .collect()
}

/// VmRSS and PSS (kB) of the process whose environment has `MESOS_EXECUTOR_ID=<executor>`
/// and whose command line contains `program`.
pub fn executor_memory(executor: &str, program: &str) -> Option<(u64, u64)> {
    let marker = format!("MESOS_EXECUTOR_ID={executor}");
    let pid = processes_naming(&marker).into_iter().find(|(_, cmd)| cmd.contains(program))?.0;
    let field = |file: &str, name: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok().and_then(|t| {
            t.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
    };
    Some((field("status", "VmRSS:")?, field("smaps_rollup", "Pss:")?))
}
