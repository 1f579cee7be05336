//! A task group's members fetch their URIs concurrently, a few at once, each its own
//! URIs into its own sandbox, and the group starts once every member has them (issue 19).

mod support;

use fake_agent::AgentConfig;
use mesos_executor::proto::v1::{CommandInfo, TaskGroupInfo, TaskState, command_info::Uri};
use support::daemon::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_large_group_gets_its_own_uris() {
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let local = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    let tasks = ids
        .iter()
        .map(|id| {
            let path = local.path().join(format!("{id}.txt"));
            std::fs::write(&path, id.as_bytes()).unwrap();
            let mut task = shell_task(id, "");
            let uris = vec![Uri { value: format!("file://{}", path.display()), ..Default::default() }];
            // Its own file, and no other member's.
            let command = format!("test \"$(cat {id}.txt)\" = {id} && test $(ls *.txt | wc -l) -eq 1");
            task.command = Some(CommandInfo { uris, value: Some(command), ..Default::default() });
            task
        })
        .collect();
    d.agent.agent.launch_group(TaskGroupInfo { tasks });
    for id in &ids {
        let end = d.update(id, TaskState::TaskFinished).await;
        assert_eq!(end.state(), TaskState::TaskFinished, "{id}: {}", end.message());
    }
}
