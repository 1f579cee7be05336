//! A minimal framework on the v1 scheduler HTTP API (JSON), for what `mesos-execute` cannot
//! send: a task group (LAUNCH_GROUP) for an executor of any type, including a CUSTOM one
//! (`mesos-execute --task_group` always names the DEFAULT executor). The event stream is
//! read through curl (`-N`, no buffering) and framed by the library's RecordIO codec; every
//! update with a uuid is acknowledged.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use mesos_executor::{bytes::BytesMut, driver::recordio::RecordIoCodec};
use serde_json::{Value, json};
use tokio_util::codec::Decoder;

use super::Cluster;

enum Msg {
    StreamId(String),
    /// An event, and when its record was read off the stream.
    Event(Value, Instant),
    End(String),
}

/// A subscribed framework.
pub struct Scheduler {
    url: String,
    stream: Child,
    events: mpsc::Receiver<Msg>,
    stream_id: String,
    pub framework_id: String,
    /// Every status update received, in order.
    pub updates: Vec<Value>,
    /// When each of `updates` was read off the event stream (its record whole).
    pub received: Vec<Instant>,
    /// When the last ACCEPT (LAUNCH or LAUNCH_GROUP) was about to be sent.
    pub accepted: Option<Instant>,
}

impl Scheduler {
    /// Subscribes a framework named `name` (with TASK_KILLING_STATE) to the cluster's master.
    pub fn subscribe(c: &Cluster, name: &str) -> Scheduler {
        Self::subscribe_with(c, name, &["TASK_KILLING_STATE"])
    }

    /// Subscribes a framework named `name` with exactly `capabilities`.
    pub fn subscribe_with(c: &Cluster, name: &str, capabilities: &[&str]) -> Scheduler {
        let url = format!("http://127.0.0.1:{}/api/v1/scheduler", c.master_port);
        let capabilities: Vec<Value> = capabilities.iter().map(|t| json!({"type": t})).collect();
        // Checkpointed, so that its executors survive an agent restart.
        let body = json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": name, "capabilities": capabilities, "checkpoint": true,
        }}});
        let mut stream = Command::new("curl")
            .args(["-sS", "-N", "-i", "--max-time", "300", "-H", "Content-Type: application/json"])
            .args(["-H", "Accept: application/json", "--data-binary"])
            .arg(body.to_string())
            .arg(&url)
            .env("REAL_MESOS_WORK", &c.work)
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start curl for the scheduler's event stream");
        let mut out = stream.stdout.take().expect("curl stdout");
        let (tx, events) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = BytesMut::new();
            let mut head_done = false;
            let mut codec = RecordIoCodec::new(16 << 20);
            let mut chunk = [0u8; 8192];
            loop {
                let n = match out.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Msg::End(format!("read: {e}")));
                        return;
                    }
                };
                buf.extend_from_slice(&chunk[..n]);
                if !head_done {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let _ = buf.split_to(end + 4);
                    head_done = true;
                    if !head.starts_with("HTTP/1.1 200") {
                        let _ = tx.send(Msg::End(format!("SUBSCRIBE answered: {head}")));
                        return;
                    }
                    let id = head.lines().find_map(|l| {
                        l.split_once(':')
                            .filter(|(k, _)| k.eq_ignore_ascii_case("mesos-stream-id"))
                            .map(|(_, v)| v.trim())
                    });
                    let _ = tx.send(Msg::StreamId(id.unwrap_or_default().to_owned()));
                }
                loop {
                    match codec.decode(&mut buf) {
                        Ok(Some(record)) => match serde_json::from_slice(&record) {
                            Ok(v) => {
                                let _ = tx.send(Msg::Event(v, Instant::now()));
                            }
                            Err(e) => {
                                let _ = tx.send(Msg::End(format!("event not JSON: {e}")));
                                return;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            let _ = tx.send(Msg::End(format!("bad RecordIO: {e}")));
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Msg::End("the event stream ended".into()));
        });
        let mut s = Scheduler {
            url,
            stream,
            events,
            stream_id: String::new(),
            framework_id: String::new(),
            updates: Vec::new(),
            received: Vec::new(),
            accepted: None,
        };
        match s.events.recv_timeout(Duration::from_secs(30)) {
            Ok(Msg::StreamId(id)) => s.stream_id = id,
            Ok(Msg::End(e)) => panic!("subscribe: {e}"),
            _ => panic!("subscribe: no answer within 30 s"),
        }
        let subscribed = s.next_event("SUBSCRIBED", Duration::from_secs(30));
        s.framework_id =
            subscribed["subscribed"]["framework_id"]["value"].as_str().expect("SUBSCRIBED framework id").to_owned();
        s
    }

    /// The next event of type `kind` (handling updates and skipping others on the way).
    fn next_event(&mut self, kind: &str, deadline: Duration) -> Value {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (event, at) = match self.events.recv_timeout(left) {
                Ok(Msg::Event(e, at)) => (e, at),
                Ok(Msg::End(e)) => panic!("waiting for {kind}: {e}"),
                Ok(Msg::StreamId(_)) => continue,
                Err(_) => panic!("waiting for {kind}: not within {deadline:?}; updates so far: {:?}", self.updates),
            };
            let t = event["type"].as_str().unwrap_or_default().to_owned();
            if t == "ERROR" {
                panic!("the master sent ERROR: {event}");
            }
            if t == "UPDATE" {
                self.received.push(at);
                self.acknowledge(&event["update"]["status"]);
            }
            if t == kind {
                return event;
            }
        }
    }

    fn acknowledge(&mut self, status: &Value) {
        self.updates.push(status.clone());
        if let Some(uuid) = status["uuid"].as_str() {
            self.call(json!({"type": "ACKNOWLEDGE", "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": uuid,
            }}));
        }
    }

    /// Sends a call (the framework id added); the master must answer 202.
    pub fn call(&self, call: Value) {
        if let Err(e) = self.try_call(call) {
            panic!("{e}");
        }
    }

    fn try_call(&self, mut call: Value) -> Result<(), String> {
        call["framework_id"] = json!({"value": self.framework_id});
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
            .args(["-H", "Content-Type: application/json", "-H"])
            .arg(format!("Mesos-Stream-Id: {}", self.stream_id))
            .arg("--data-binary")
            .arg(call.to_string())
            .arg(&self.url)
            .output()
            .map_err(|e| format!("curl a scheduler call: {e}"))?;
        let code = String::from_utf8_lossy(&out.stdout).to_string();
        if code != "202" {
            return Err(format!("{} answered: {code} {}", call["type"], String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// Takes the first offer and launches `tasks` as one group on `executor` (agent and
    /// framework ids filled in).
    pub fn launch_group(&mut self, mut executor: Value, mut tasks: Vec<Value>) {
        let offers = self.next_event("OFFERS", Duration::from_secs(30));
        let offer = &offers["offers"]["offers"][0];
        executor["framework_id"] = json!({"value": self.framework_id});
        for t in &mut tasks {
            t["agent_id"] = offer["agent_id"].clone();
        }
        self.accepted = Some(Instant::now());
        self.call(json!({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                "executor": executor, "task_group": {"tasks": tasks},
            }}],
            "filters": {"refuse_seconds": 3600.0},
        }}));
    }

    /// Takes the first offer and launches `task` (LAUNCH: the agent's command executor when
    /// it has a command); returns the agent id.
    pub fn launch(&mut self, mut task: Value) -> Value {
        let offers = self.next_event("OFFERS", Duration::from_secs(30));
        let offer = &offers["offers"]["offers"][0];
        task["agent_id"] = offer["agent_id"].clone();
        self.accepted = Some(Instant::now());
        self.call(json!({"type": "ACCEPT", "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
            "filters": {"refuse_seconds": 3600.0},
        }}));
        offer["agent_id"].clone()
    }

    /// Handles updates until `task` has had an update in `state` (at most `deadline`).
    pub fn wait_state(&mut self, task: &str, state: &str, deadline: Duration) {
        let end = Instant::now() + deadline;
        while !self.states(task).iter().any(|s| s == state) {
            let left = end.saturating_duration_since(Instant::now());
            self.next_event("UPDATE", left);
        }
    }

    /// Asks to kill `task` on `agent`.
    pub fn kill(&self, task: &str, agent: &Value) {
        self.call(json!({"type": "KILL", "kill": {"task_id": {"value": task}, "agent_id": agent}}));
    }

    /// Handles updates until every task of `tasks` is terminal (at most `deadline`).
    pub fn wait_terminal(&mut self, tasks: &[&str], deadline: Duration) {
        let end = Instant::now() + deadline;
        while !tasks.iter().all(|t| self.states(t).last().is_some_and(|s| is_terminal(s))) {
            let left = end.saturating_duration_since(Instant::now());
            self.next_event("UPDATE", left);
        }
    }

    /// The states of `task`'s updates, in order.
    pub fn states(&self, task: &str) -> Vec<String> {
        self.updates
            .iter()
            .filter(|u| u["task_id"]["value"] == task)
            .filter_map(|u| u["state"].as_str().map(str::to_owned))
            .collect()
    }

    /// When the first update of `task` in `state` was read off the event stream.
    pub fn received_at(&self, task: &str, state: &str) -> Option<Instant> {
        self.updates
            .iter()
            .zip(&self.received)
            .find(|(u, _)| u["task_id"]["value"] == task && u["state"] == state)
            .map(|(_, at)| *at)
    }

    /// The last update of `task` in `state`.
    pub fn last(&self, task: &str, state: &str) -> &Value {
        self.updates
            .iter()
            .rev()
            .find(|u| u["task_id"]["value"] == task && u["state"] == state)
            .unwrap_or_else(|| panic!("no {state} for {task}: {:?}", self.updates))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // TEARDOWN ends the framework: the agent shuts its executors down.
        if !self.framework_id.is_empty() {
            let _ = self.try_call(json!({"type": "TEARDOWN"}));
        }
        let _ = self.stream.kill();
        let _ = self.stream.wait();
    }
}

fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED" | "TASK_FAILED" | "TASK_KILLED" | "TASK_ERROR" | "TASK_LOST" | "TASK_DROPPED" | "TASK_GONE"
    )
}
