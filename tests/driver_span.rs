//! One span per driver: the driver's lines are inside `executor_driver{...}`, and lines
//! of any other task polled on the same thread are not (the driver used to enter its
//! span and hold it across `.await`, so on a current-thread runtime everything else
//! logged inside it too).

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use fake_agent::{AgentConfig, FakeAgent};
use mesos_executor::{DriverConfig, ExecutorDriver, env::ExecutorEnv};
use support::{Log, TestExecutor};
use tracing::{
    Event, Metadata, Subscriber,
    span::{Attributes, Id, Record},
};

/// An event's message, with the names of the spans entered on its thread.
type Seen = (String, Vec<&'static str>);

/// Records each event's message with the names of the spans entered on its thread.
#[derive(Default, Clone)]
struct Recorder {
    next: Arc<AtomicU64>,
    names: Arc<Mutex<std::collections::HashMap<u64, &'static str>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

thread_local! {
    static ENTERED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.names.lock().unwrap().insert(id, span.metadata().name());
        Id::from_u64(id)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let names = self.names.lock().unwrap();
        let spans = ENTERED.with(|e| e.borrow().iter().filter_map(|id| names.get(id).copied()).collect());
        self.events.lock().unwrap().push((message.0, spans));
    }
    fn enter(&self, span: &Id) {
        ENTERED.with(|e| e.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        ENTERED.with(|e| {
            let mut entered = e.borrow_mut();
            if let Some(at) = entered.iter().rposition(|id| *id == span.into_u64()) {
                entered.remove(at);
            }
        });
    }
}

#[test]
fn only_the_drivers_lines_are_in_its_span() {
    let recorder = Recorder::default();
    let events = Arc::clone(&recorder.events);
    let _default = tracing::subscriber::set_default(recorder);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let agent = FakeAgent::new(AgentConfig::default()).start().await.unwrap();
        let sandbox = tempfile::tempdir().unwrap();
        agent.expect_executor(sandbox.path());
        let env = ExecutorEnv::from_lookup(&agent.executor_env(sandbox.path())).unwrap();
        let driver = ExecutorDriver::new(TestExecutor::new(Log::default()), DriverConfig::new(env));
        let driver = tokio::spawn(driver.run_async());
        let other = tokio::spawn(async {
            for _ in 0..30 {
                tracing::info!("another task ticks");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        other.await.unwrap();
        agent.agent.shutdown();
        let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
        assert!(ended.is_ok(), "the driver ended after SHUTDOWN");
    });
    let events = events.lock().unwrap();
    assert!(
        events.iter().any(|(_, spans)| spans.contains(&"executor_driver")),
        "the driver logs inside its span: {events:?}"
    );
    let ticks: Vec<_> = events.iter().filter(|(m, _)| m.contains("another task ticks")).collect();
    assert_eq!(ticks.len(), 30);
    let inside: Vec<_> = ticks.iter().filter(|(_, spans)| spans.contains(&"executor_driver")).collect();
    assert!(inside.is_empty(), "{} of another task's lines were in the driver's span", inside.len());
}
