//! What the handle answers about the framework: TASK_KILLING_STATE, once subscribed.

mod support;

use std::time::Duration;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::framework_info::capability::Type;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handle_says_whether_the_framework_takes_task_killing() {
    for (capabilities, expected) in [(vec![Type::TaskKillingState], true), (vec![], false)] {
        let h = Harness::start(AgentConfig { capabilities, ..AgentConfig::default() }, |_| {}).await;
        h.log.wait_for("registered", Duration::from_secs(5)).await;
        assert_eq!(h.handle.task_killing_state(), expected);
    }
}
