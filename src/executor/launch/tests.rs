//! Where a task's command comes from, how its argv and environment are built, and what
//! is refused.

use super::*;
use crate::proto::v1::{
    ContainerInfo, Environment, Resource, Secret, TaskId,
    container_info::DockerInfo,
    resource::AllocationInfo,
    secret::{Reference, Value as SecretValue},
};

fn task() -> TaskInfo {
    TaskInfo { name: "t".into(), task_id: TaskId { value: "t1".into() }, ..Default::default() }
}

fn shell(value: &str) -> CommandInfo {
    CommandInfo { value: Some(value.into()), ..Default::default() }
}

#[test]
fn command_comes_from_override_then_command_then_data() {
    let mut t = task();
    assert!(matches!(resolve_command(&t, None), Err(LaunchError::NoCommand(m)) if m.contains("TaskInfo.data")));
    let json = wire::to_json_value(&shell("echo from data")).unwrap().to_string();
    t.data = Some(json.into_bytes().into());
    assert_eq!(resolve_command(&t, None).unwrap(), (shell("echo from data"), CommandSource::TaskData));
    t.command = Some(shell("echo from command"));
    assert_eq!(resolve_command(&t, None).unwrap().1, CommandSource::TaskCommand);
    assert_eq!(resolve_command(&t, Some(&shell("override"))).unwrap(), (shell("override"), CommandSource::Override));
    let mut garbage = task();
    garbage.data = Some(b"not json at all".to_vec().into());
    assert!(matches!(resolve_command(&garbage, None), Err(LaunchError::Malformed(m)) if m.contains("TaskInfo.data")));
}

#[test]
fn shell_and_argv_forms() {
    let spec = build(&task(), &shell("echo $HOME"), [], "n/t1").unwrap();
    assert_eq!(spec.program, "/bin/sh");
    assert_eq!(spec.argv, ["sh", "-c", "echo $HOME"]);
    let argv = CommandInfo {
        shell: Some(false),
        value: Some("/usr/bin/env".into()),
        arguments: vec!["env".into(), "-i".into()],
        ..Default::default()
    };
    let spec = build(&task(), &argv, [], "n/t1").unwrap();
    assert_eq!(
        (spec.program.as_str(), spec.argv.as_slice()),
        ("/usr/bin/env", &["env".to_owned(), "-i".to_owned()][..])
    );
    let bare = CommandInfo { shell: Some(false), value: Some("true".into()), ..Default::default() };
    assert_eq!(build(&task(), &bare, [], "m").unwrap().argv, ["true"]);
    assert!(matches!(build(&task(), &CommandInfo::default(), [], "m"), Err(LaunchError::Malformed(_))));
}

#[test]
fn environment_is_merged_over_the_executors() {
    let mut command = shell("env");
    command.environment = Some(Environment {
        variables: vec![
            environment::Variable { name: "A".into(), value: Some("task".into()), ..Default::default() },
            environment::Variable {
                name: "PASSWORD".into(),
                r#type: Some(environment::variable::Type::Secret as i32),
                secret: Some(Secret {
                    r#type: Some(secret::Type::Value as i32),
                    value: Some(SecretValue { data: b"hunter2".to_vec().into() }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ],
    });
    let mut t = task();
    t.resources.push(Resource {
        name: "cpus".into(),
        allocation_info: Some(AllocationInfo { role: Some("eng".into()) }),
        ..Default::default()
    });
    let base = [
        ("A".to_owned(), "executor".to_owned()),
        ("B".to_owned(), "kept".to_owned()),
        ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN".to_owned(), "jwt".to_owned()),
    ];
    let spec = build(&t, &command, base, "nonce/t1").unwrap();
    assert_eq!(spec.env["A"], "task");
    assert_eq!(spec.env["B"], "kept");
    assert_eq!(spec.env["PASSWORD"], "hunter2");
    assert_eq!(spec.env["MESOS_ALLOCATION_ROLE"], "eng");
    assert_eq!(spec.env[TASK_MARKER], "nonce/t1");
    assert!(!spec.env.contains_key("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"), "the token is never inherited");
}

#[test]
fn images_and_secret_references_are_refused() {
    let mut t = task();
    t.container = Some(ContainerInfo {
        r#type: container_info::Type::Docker as i32,
        docker: Some(DockerInfo { image: "nginx".into(), ..Default::default() }),
        ..Default::default()
    });
    assert!(matches!(check_supported(&t, &shell("x")), Err(LaunchError::Unsupported(m)) if m.contains("image")));
    let mut command = shell("x");
    command.environment = Some(Environment {
        variables: vec![environment::Variable {
            name: "DB".into(),
            r#type: Some(environment::variable::Type::Secret as i32),
            secret: Some(Secret {
                r#type: Some(secret::Type::Reference as i32),
                reference: Some(Reference { name: "/db".into(), key: None }),
                ..Default::default()
            }),
            ..Default::default()
        }],
    });
    assert!(matches!(check_supported(&task(), &command), Err(LaunchError::Unsupported(m)) if m.contains("DB")));
    let plain = ContainerInfo { r#type: container_info::Type::Mesos as i32, ..Default::default() };
    let mut t = task();
    t.container = Some(plain);
    assert_eq!(check_supported(&t, &shell("x")), Ok(()), "a MESOS container without an image is fine");
}
