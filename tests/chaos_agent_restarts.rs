//! Chaos: thousands of status updates from many tasks while the fake agent restarts
//! dozens of times at random moments and delays, withholds and drops acknowledgements.
//! Checked at the agent: every update arrives at least once; no update is resent well
//! after its ACKNOWLEDGED went out on a stream that stayed live; the first arrivals of a
//! task's updates are in the order they were produced; every terminal update is
//! acknowledged before the driver ends. Prints its counts. Bounded to about 30 s.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fake_agent::{AckPolicy, AgentConfig, FakeAgent, transcript::Record};
use mesos_executor::{
    DriverConfig, DriverHandle, DriverStatus, Executor, ExecutorDriver, ExecutorEnv,
    proto::v1::{KillPolicy, TaskId, TaskInfo, TaskState, TaskStatus},
};

const TASKS: usize = 24;
const UPDATES_PER_TASK: usize = 150;
const RESTARTS: usize = 30;

/// What the executor produced: per task, the uuids in order.
type Produced = Arc<Mutex<HashMap<String, Vec<[u8; 16]>>>>;

struct Chatty {
    produced: Produced,
    finished: Arc<Mutex<usize>>,
}

impl Executor for Chatty {
    fn launch_task(&mut self, driver: &DriverHandle, task: TaskInfo) {
        let (driver, produced, finished) = (driver.clone(), self.produced.clone(), self.finished.clone());
        std::thread::spawn(move || {
            let id = task.task_id;
            for n in 0..UPDATES_PER_TASK {
                let last = n + 1 == UPDATES_PER_TASK;
                let state = if last { TaskState::TaskFinished } else { TaskState::TaskRunning };
                let status = TaskStatus {
                    task_id: id.clone(),
                    state: state as i32,
                    message: Some(n.to_string()),
                    ..Default::default()
                };
                match driver.send_status_update(status) {
                    Ok(uuid) => produced.lock().unwrap().entry(id.value.clone()).or_default().push(uuid),
                    Err(e) => panic!("update {n} of {} refused: {e}", id.value),
                }
                // Spread over the whole run, so that restarts hit updates in flight.
                std::thread::sleep(Duration::from_millis(25));
            }
            *finished.lock().unwrap() += 1;
        });
    }
    fn kill_task(&mut self, _: &DriverHandle, _: TaskId, _: Option<KillPolicy>) {}
    fn shutdown(&mut self, driver: &DriverHandle, _reason: mesos_executor::ShutdownReason) {
        driver.stop();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_of_agent_restarts_and_lost_acknowledgements() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("chaos seed {seed}");
    let mut rng = Rng(seed);
    let config = AgentConfig {
        checkpoint: true,
        reregistration_timeout: Duration::from_millis(400),
        ack_policy: AckPolicy::Immediate,
        ..AgentConfig::default()
    };
    let agent = FakeAgent::new(config).start().await.unwrap();
    let sandbox = tempfile::tempdir().unwrap();
    agent.expect_executor(sandbox.path());
    let env = ExecutorEnv::from_lookup(&agent.executor_env(sandbox.path())).unwrap();
    let mut driver_config = DriverConfig::new(env);
    driver_config.resend_after = Duration::from_millis(300);
    driver_config.stop_timeout = Duration::from_secs(30);
    driver_config.metrics_file = None;
    let metrics = driver_config.metrics.clone();
    let produced = Produced::default();
    let finished = Arc::new(Mutex::new(0));
    let mut driver =
        ExecutorDriver::new(Chatty { produced: produced.clone(), finished: finished.clone() }, driver_config);
    let handle = driver.handle();
    driver.start().unwrap();
    let driver = tokio::task::spawn_blocking(move || driver.join());
    agent
        .agent
        .wait_for("subscription", Duration::from_secs(5), |s| s.subscriptions > 0, |_| String::new())
        .await
        .unwrap();

    let started = Instant::now();
    for t in 0..TASKS {
        agent.agent.launch(support::task(&format!("task-{t}"), "chatty"));
    }
    let policies = [AckPolicy::Immediate, AckPolicy::DelayMs(20), AckPolicy::Withhold, AckPolicy::Drop(0.3)];
    let mut restarts = 0;
    while *finished.lock().unwrap() < TASKS || restarts < RESTARTS {
        assert!(started.elapsed() < Duration::from_secs(40), "chaos did not settle (seed {seed})");
        tokio::time::sleep(Duration::from_millis(20 + rng.below(120))).await;
        let policy = policies[rng.below(policies.len() as u64) as usize].clone();
        agent.agent.set_ack_policy(policy);
        if rng.below(3) == 0 {
            agent.agent.release_withheld_acks();
        }
        if restarts < RESTARTS {
            restarts += 1;
            agent.agent.restart(Duration::from_millis(10 + rng.below(100)), Duration::from_millis(rng.below(40))).await;
            agent
                .agent
                .wait_for(
                    "resubscription",
                    Duration::from_secs(5),
                    |s| s.executor == fake_agent::ExecutorState::Running,
                    |s| format!("{:?}", s.executor),
                )
                .await
                .unwrap_or_else(|e| panic!("{e} (seed {seed})"));
        }
    }
    // Calm down and let everything be acknowledged, then stop: the driver must end
    // because every update was acknowledged, not because the stop timeout passed.
    agent.agent.set_ack_policy(AckPolicy::Immediate);
    agent.agent.release_withheld_acks();
    agent
        .agent
        .wait_for(
            "the re-registration window to close",
            Duration::from_secs(2),
            |s| s.phase == fake_agent::Phase::Running,
            |_| String::new(),
        )
        .await
        .unwrap();
    let stopping = Instant::now();
    handle.stop();
    let status = tokio::time::timeout(Duration::from_secs(35), driver).await.unwrap().unwrap();
    assert_eq!(status.status, DriverStatus::Stopped);
    assert!(
        stopping.elapsed() < Duration::from_secs(20),
        "stop waited {:?}: acknowledgements never came",
        stopping.elapsed()
    );
    assert_eq!(metrics.updates_unacknowledged.get(), 0, "the driver ended with unacknowledged updates");

    // Analyse what the agent saw.
    let transcript = agent.agent.transcript();
    let produced = produced.lock().unwrap().clone();
    let mut first_arrival: HashMap<[u8; 16], (usize, f64)> = HashMap::new();
    let mut arrivals: HashMap<[u8; 16], Vec<f64>> = HashMap::new();
    let mut acked_live: HashMap<[u8; 16], f64> = HashMap::new();
    // When each stream stopped being the live one (next restart or next subscription).
    let mut ends: Vec<f64> = Vec::new();
    for e in &transcript {
        match &e.record {
            Record::Note { what } if what.starts_with("agent restarting") => ends.push(e.at.as_secs_f64()),
            Record::Event { event, .. } if event.subscribed.is_some() => ends.push(e.at.as_secs_f64()),
            _ => {}
        }
    }
    let stays_live = |t: f64| ends.iter().all(|end| *end <= t || *end > t + 0.1);
    for (i, e) in transcript.iter().enumerate() {
        let t = e.at.as_secs_f64();
        let status = match &e.record {
            Record::Call { call, status: 202, .. } => call.update.as_ref().map(|u| &u.status),
            Record::Replayed { status, .. } => Some(status.as_ref()),
            Record::Event { event, stream: Some(_) } => {
                if let Some(ack) = &event.acknowledged
                    && let Ok(uuid) = <[u8; 16]>::try_from(&ack.uuid[..])
                    && stays_live(t)
                {
                    acked_live.entry(uuid).or_insert(t);
                }
                None
            }
            _ => None,
        };
        if let Some(status) = status {
            let uuid: [u8; 16] = status.uuid.as_deref().unwrap().try_into().unwrap();
            first_arrival.entry(uuid).or_insert((i, t));
            arrivals.entry(uuid).or_default().push(t);
        }
    }
    let total: usize = produced.values().map(Vec::len).sum();
    let mut duplicates = 0;
    let mut late_resends = Vec::new();
    for (task, uuids) in &produced {
        let mut last_index = 0;
        for (n, uuid) in uuids.iter().enumerate() {
            let (index, _) =
                *first_arrival.get(uuid).unwrap_or_else(|| panic!("update {n} of {task} never arrived (seed {seed})"));
            assert!(index > last_index || n == 0, "update {n} of {task} arrived before an earlier one (seed {seed})");
            last_index = index;
            let times = &arrivals[uuid];
            duplicates += times.len() - 1;
            if let Some(acked) = acked_live.get(uuid) {
                late_resends.extend(times.iter().filter(|t| **t > acked + 0.1).map(|t| (task.clone(), n, t - acked)));
            }
        }
    }
    assert!(
        late_resends.is_empty(),
        "resent after an ACKNOWLEDGED on a live stream: {:?} (seed {seed})",
        &late_resends[..late_resends.len().min(5)]
    );
    let unacked_terminal: Vec<String> = agent.agent.inspect(|s| {
        s.unacked.values().filter(|task| s.task(task).is_some_and(|t| t.is_terminal())).cloned().collect()
    });
    let terminal = agent.agent.inspect(|s| s.tasks.iter().filter(|t| t.state == TaskState::TaskFinished).count());
    assert_eq!(terminal, TASKS, "every task finished at the agent");
    let dropped = transcript
        .iter()
        .filter(|e| matches!(&e.record, Record::Note { what } if what.starts_with("acknowledgement for")))
        .count();
    println!(
        "chaos: {total} updates from {TASKS} tasks, {restarts} agent restarts, {} subscriptions, {duplicates} duplicate arrivals \
         (resends), {dropped} acknowledgements dropped, resent counter {}, {} s",
        agent.agent.inspect(|s| s.subscriptions),
        metrics.updates_resent.get(),
        started.elapsed().as_secs()
    );
    assert_eq!(total, TASKS * UPDATES_PER_TASK);
    assert!(unacked_terminal.is_empty(), "terminal updates never acknowledged on a live stream: {unacked_terminal:?}");
    assert!(restarts >= RESTARTS && duplicates > 0, "the chaos must have bitten");
}
