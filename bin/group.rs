//! Peer discovery for task groups: what every member of a LAUNCH_GROUP learns about the
//! whole group, without DNS. Each task gets environment variables and the path of a JSON
//! file in the sandbox describing every member: ids, names, ports (from its `ports`
//! resources) and addresses on the agent host.
//!
//! | variable | value |
//! |---|---|
//! | `MESOS_GROUP_SIZE` | how many members the group has |
//! | `MESOS_GROUP_TASK_IDS` | every member's task id, comma-separated, in launch order |
//! | `MESOS_GROUP_TASK_NAMES` | every member's name, likewise |
//! | `MESOS_GROUP_MEMBER_<i>_ID`, `_NAME` | the id and name of the member at place `<i>` (from 0, launch order) |
//! | `MESOS_GROUP_MEMBER_<i>_PORTS`, `_ADDRESSES` | its ports and `host:port` addresses |
//! | `MESOS_GROUP_<NAME>_PORTS` | that member's ports, comma-separated (unique names only) |
//! | `MESOS_GROUP_<NAME>_ADDRESSES` | `host:port` for each of them, on the agent host |
//! | `MESOS_GROUP_FILE` | the JSON file describing the group |
//! | `MESOS_CONTAINER_IP` | the executor's IP address, as upstream's default executor gives its tasks ([`container_ip`]) |
//!
//! `<NAME>` is the member's name (its task id when it has none), upper-cased, with
//! every character that is not an ASCII letter or digit turned into `_`.

use std::{
    net::{IpAddr, Ipv4Addr, ToSocketAddrs},
    path::{Path, PathBuf},
    time::Duration,
};

use mesos_executor::proto::v1::{TaskInfo, value};
use serde::Serialize;

/// Most ports taken from one task's `ports` resources: a hostile range of 2^64 ports
/// must not become a 2^64-entry list.
const MAX_PORTS: usize = 1024;

/// One member, as the group file and the variables describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Task id.
    pub id: String,
    /// Name (the id when the task has none).
    pub name: String,
    /// Ports from its `ports` resources, in order.
    pub ports: Vec<u16>,
    /// `host:port` for each port, on the agent host.
    pub addresses: Vec<String>,
    /// Its labels, `key` to `value` (empty string when a label has no value).
    pub labels: std::collections::BTreeMap<String, String>,
}

/// The whole group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The agent host the addresses are on.
    pub host: String,
    /// Every member, in launch order.
    pub tasks: Vec<Member>,
}

/// A group file to write before any member starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFile {
    /// Where.
    pub path: PathBuf,
    /// The JSON.
    pub contents: String,
}

/// The ports of a task's `ports` resources (ranges expanded, at most [`MAX_PORTS`];
/// values past 65535 ignored).
pub fn ports(task: &TaskInfo) -> Vec<u16> {
    let ranges = task
        .resources
        .iter()
        .filter(|r| r.name == "ports" && r.r#type == value::Type::Ranges as i32)
        .filter_map(|r| r.ranges.as_ref())
        .flat_map(|r| r.range.iter());
    let mut out = Vec::new();
    for range in ranges {
        let (Ok(begin), end) = (u16::try_from(range.begin), u16::try_from(range.end).unwrap_or(u16::MAX)) else {
            continue;
        };
        for port in begin..=end {
            if out.len() >= MAX_PORTS {
                return out;
            }
            out.push(port);
        }
    }
    out
}

/// `NAME` in `MESOS_GROUP_<NAME>_PORTS`.
pub fn variable_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Describes `tasks` on agent host `host`.
pub fn describe(tasks: &[TaskInfo], host: &str) -> Group {
    let host_part = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    let tasks = tasks
        .iter()
        .map(|task| {
            let ports = ports(task);
            let name = if task.name.is_empty() { task.task_id.value.clone() } else { task.name.clone() };
            Member {
                id: task.task_id.value.clone(),
                addresses: ports.iter().map(|p| format!("{host_part}:{p}")).collect(),
                ports,
                name,
                labels: task
                    .labels
                    .iter()
                    .flat_map(|l| l.labels.iter())
                    .map(|l| (l.key.clone(), l.value.clone().unwrap_or_default()))
                    .collect(),
            }
        })
        .collect();
    Group { host: host.to_owned(), tasks }
}

/// The variables every member gets.
///
/// Every member is visible by its place in the group (`MESOS_GROUP_MEMBER_<i>_*`), which
/// never collides. The shorter `MESOS_GROUP_<NAME>_*` are given only for names that are
/// unique in the group once turned into a variable name (Mesos does not make names
/// unique: two members named `web`, or `web.a` and `web-a`, get none rather than one of
/// them), and never for a name of the form `MEMBER_<digits>`, which would shadow a place.
pub fn env(group: &Group, file: &Path) -> Vec<(String, String)> {
    let join = |items: Vec<String>| items.join(",");
    let mut vars = vec![
        ("MESOS_GROUP_SIZE".to_owned(), group.tasks.len().to_string()),
        ("MESOS_GROUP_TASK_IDS".to_owned(), join(group.tasks.iter().map(|m| m.id.clone()).collect())),
        ("MESOS_GROUP_TASK_NAMES".to_owned(), join(group.tasks.iter().map(|m| m.name.clone()).collect())),
        ("MESOS_GROUP_FILE".to_owned(), file.display().to_string()),
    ];
    let mut names: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for member in &group.tasks {
        *names.entry(variable_name(&member.name)).or_default() += 1;
    }
    for (i, member) in group.tasks.iter().enumerate() {
        let ports = join(member.ports.iter().map(u16::to_string).collect());
        let addresses = join(member.addresses.clone());
        let place = format!("MESOS_GROUP_MEMBER_{i}");
        vars.push((format!("{place}_ID"), member.id.clone()));
        vars.push((format!("{place}_NAME"), member.name.clone()));
        vars.push((format!("{place}_PORTS"), ports.clone()));
        vars.push((format!("{place}_ADDRESSES"), addresses.clone()));
        let name = variable_name(&member.name);
        if names.get(&name) == Some(&1) && !is_place(&name) {
            vars.push((format!("MESOS_GROUP_{name}_PORTS"), ports));
            vars.push((format!("MESOS_GROUP_{name}_ADDRESSES"), addresses));
        }
    }
    vars
}

/// `MESOS_CONTAINER_IP`, set for every member.
pub const CONTAINER_IP: &str = "MESOS_CONTAINER_IP";

/// How long the host name may take to resolve when the agent gave no address.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(2);

/// The address upstream's default executor gives its tasks as `MESOS_CONTAINER_IP`:
/// its own libprocess address (`src/launcher/default_executor.cpp`, `_launchGroup`),
/// which is `LIBPROCESS_ADVERTISE_IP`, else `LIBPROCESS_IP` (the agent passes its own
/// `--ip` on), and when that is missing or `0.0.0.0`, the host name's first IPv4
/// address (`3rdparty/libprocess/src/process.cpp`, `initialize`). `var` reads the
/// executor's environment, `resolve` the host name; `None` when nothing gives one
/// (upstream's executor would not start).
pub fn container_ip(var: impl Fn(&str) -> Option<String>, resolve: impl FnOnce() -> Option<IpAddr>) -> Option<IpAddr> {
    let parse = |name: &str| var(name).and_then(|v| v.trim().parse::<IpAddr>().ok());
    let ip = parse("LIBPROCESS_ADVERTISE_IP").or_else(|| parse("LIBPROCESS_IP"));
    match ip {
        Some(ip) if !ip.is_unspecified() => Some(ip),
        _ => resolve(),
    }
}

/// The host name's first IPv4 address, resolved within [`RESOLVE_DEADLINE`] (a lookup
/// still running then is left to end on its own thread).
pub fn resolve_host_name() -> Option<IpAddr> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?.trim().to_owned();
    if host.is_empty() {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("resolve-host-name".into())
        .spawn(move || {
            let first = (host.as_str(), 0).to_socket_addrs().ok().and_then(|mut a| a.find(|a| a.is_ipv4()));
            let _ = tx.send(first.map(|a| a.ip()));
        })
        .ok()?;
    rx.recv_timeout(RESOLVE_DEADLINE).ok().flatten().filter(|ip| *ip != IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// `MEMBER_<digits>`: a variable name taken by a member's place.
fn is_place(name: &str) -> bool {
    name.strip_prefix("MEMBER_").is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

/// The group file for `group`, under `sandbox/groups/`, named by a digest of every
/// member's id: two groups never share a file (ids are unique among live tasks), and any
/// id length fits a file name.
pub fn file(group: &Group, sandbox: &Path) -> GroupFile {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for member in &group.tasks {
        // Length-prefixed, so `ab`,`c` and `a`,`bc` differ.
        context.update(&(member.id.len() as u64).to_be_bytes());
        context.update(member.id.as_bytes());
    }
    let digest = context.finish();
    let name: String = digest.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
    let contents = serde_json::to_string_pretty(group).unwrap_or_else(|_| "{}".to_owned());
    GroupFile { path: sandbox.join("groups").join(format!("{name}.json")), contents }
}

#[cfg(test)]
mod tests {
    use mesos_executor::proto::v1::{Label, Labels, Resource, TaskId};

    use super::*;

    fn task(id: &str, name: &str, ranges: &[(u64, u64)]) -> TaskInfo {
        let range = ranges.iter().map(|(b, e)| value::Range { begin: *b, end: *e }).collect();
        TaskInfo {
            name: name.into(),
            task_id: TaskId::from(id),
            resources: vec![Resource {
                name: "ports".into(),
                r#type: value::Type::Ranges as i32,
                ranges: Some(value::Ranges { range }),
                ..Default::default()
            }],
            labels: Some(Labels { labels: vec![Label { key: "role".into(), value: Some(id.into()) }] }),
            ..Default::default()
        }
    }

    #[test]
    fn every_member_sees_every_other() {
        let tasks = [task("db-1", "db", &[(31000, 31001)]), task("web-1", "web.front", &[(31002, 31002)])];
        let group = describe(&tasks, "agent-7");
        let vars: std::collections::BTreeMap<_, _> =
            env(&group, Path::new("/s/groups/db-1.json")).into_iter().collect();
        assert_eq!(vars["MESOS_GROUP_TASK_IDS"], "db-1,web-1");
        assert_eq!(vars["MESOS_GROUP_TASK_NAMES"], "db,web.front");
        assert_eq!(vars["MESOS_GROUP_DB_PORTS"], "31000,31001");
        assert_eq!(vars["MESOS_GROUP_DB_ADDRESSES"], "agent-7:31000,agent-7:31001");
        assert_eq!(vars["MESOS_GROUP_WEB_FRONT_ADDRESSES"], "agent-7:31002");
        assert_eq!(vars["MESOS_GROUP_FILE"], "/s/groups/db-1.json");
        let file = file(&group, Path::new("/s"));
        let json: serde_json::Value = serde_json::from_str(&file.contents).unwrap();
        assert_eq!(json["tasks"][1]["labels"]["role"], "web-1");
        assert_eq!(json["tasks"][0]["ports"], serde_json::json!([31000, 31001]));
    }

    #[test]
    fn hostile_ranges_are_bounded() {
        assert_eq!(ports(&task("t", "t", &[(0, u64::MAX)])).len(), MAX_PORTS);
        assert!(ports(&task("t", "t", &[(70_000, 70_001)])).is_empty());
        assert_eq!(ports(&task("t", "t", &[(65_535, 70_000)])), [65_535]);
        assert!(ports(&task("t", "t", &[(10, 5)])).is_empty(), "an empty range");
        let ipv6 = describe(&[task("t", "t", &[(80, 80)])], "::1");
        assert_eq!(ipv6.tasks[0].addresses, ["[::1]:80"]);
        assert_eq!(variable_name("my-db.0"), "MY_DB_0");
    }

    /// Ids that differ only in punctuation used to share `groups/<id>.json` (one group's
    /// file replaced another's), and a 250-character first id made a name too long for
    /// the file system, failing the whole group.
    #[test]
    fn group_files_never_collide_and_long_ids_fit() {
        let one = describe(&[task("a/b", "x", &[])], "h");
        let other = describe(&[task("a_b", "x", &[])], "h");
        let sandbox = Path::new("/s");
        assert_ne!(file(&one, sandbox).path, file(&other, sandbox).path);
        // Same first member, different rest: different groups.
        let longer = describe(&[task("a/b", "x", &[]), task("c", "y", &[])], "h");
        assert_ne!(file(&one, sandbox).path, file(&longer, sandbox).path);
        // Splitting ids differently is another group too.
        let split = describe(&[task("ab", "x", &[]), task("c", "y", &[])], "h");
        let joined = describe(&[task("a", "x", &[]), task("bc", "y", &[])], "h");
        assert_ne!(file(&split, sandbox).path, file(&joined, sandbox).path);
        let long = describe(&[task(&"x".repeat(250), "x", &[])], "h");
        let name = file(&long, sandbox).path.file_name().unwrap().len();
        assert!(name <= 64, "a {name}-byte file name");
    }

    #[test]
    fn the_container_ip_is_the_executor_s_libprocess_address() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let resolved = || Some(IpAddr::from([10, 0, 0, 7]));
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert_eq!(container_ip(env(&[("LIBPROCESS_IP", "127.0.0.1")]), resolved), ip("127.0.0.1"));
        let both = env(&[("LIBPROCESS_IP", "127.0.0.1"), ("LIBPROCESS_ADVERTISE_IP", "192.0.2.5")]);
        assert_eq!(container_ip(both, resolved), ip("192.0.2.5"), "the advertised address wins");
        assert_eq!(container_ip(env(&[("LIBPROCESS_IP", "0.0.0.0")]), resolved), ip("10.0.0.7"), "any: the host's");
        assert_eq!(container_ip(env(&[]), resolved), ip("10.0.0.7"));
        assert_eq!(container_ip(env(&[("LIBPROCESS_IP", "not an address")]), || None), None);
    }

    /// Names are not unique in Mesos: two members named `web` (or `web.a` and `web-a`)
    /// each stay visible, by their place in the group; names that would collide get no
    /// name variables at all rather than one member's.
    #[test]
    fn members_with_equal_names_are_each_visible() {
        let tasks = [task("w1", "web", &[(1, 1)]), task("w2", "web", &[(2, 2)]), task("c", "web-a", &[(3, 3)])];
        let tasks = [tasks[0].clone(), tasks[1].clone(), tasks[2].clone(), task("d", "web.a", &[(4, 4)])];
        let vars: std::collections::BTreeMap<_, _> = env(&describe(&tasks, "h"), Path::new("/f")).into_iter().collect();
        assert_eq!(vars["MESOS_GROUP_SIZE"], "4");
        for (i, (id, port)) in [("w1", "1"), ("w2", "2"), ("c", "3"), ("d", "4")].into_iter().enumerate() {
            assert_eq!(vars[&format!("MESOS_GROUP_MEMBER_{i}_ID")], id);
            assert_eq!(vars[&format!("MESOS_GROUP_MEMBER_{i}_PORTS")], port);
            assert_eq!(vars[&format!("MESOS_GROUP_MEMBER_{i}_ADDRESSES")], format!("h:{port}"));
        }
        assert_eq!(vars["MESOS_GROUP_MEMBER_1_NAME"], "web");
        assert!(!vars.contains_key("MESOS_GROUP_WEB_PORTS"), "ambiguous: {vars:?}");
        assert!(!vars.contains_key("MESOS_GROUP_WEB_A_PORTS"), "ambiguous: {vars:?}");
        // A name that looks like a member's place cannot shadow that member.
        let tricky = [task("m", "member_1", &[(5, 5)]), task("n", "n", &[(6, 6)])];
        let vars: std::collections::BTreeMap<_, _> =
            env(&describe(&tricky, "h"), Path::new("/f")).into_iter().collect();
        assert_eq!(vars["MESOS_GROUP_MEMBER_1_PORTS"], "6");
        assert_eq!(vars["MESOS_GROUP_N_PORTS"], "6");
    }
}
