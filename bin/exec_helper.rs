//! `mesos-executor --exec_helper=<spec>`: the last step before a task's program, for
//! what a spawn cannot do safely in the child: capabilities. The supervisor starts it (as
//! root, in the task's process group or session) when the agent asked for capabilities, as upstream's launch helper does
//! (`src/slave/containerizer/mesos/launch.cpp`): it switches to the task's user with its
//! groups keeping its capabilities, sets every capability set as upstream's
//! `calculateCapabilities` computes them, and `exec`s the program, which keeps its pid.
//! A failure is said on stderr (the task's) and exits 127.
//!
//! `main` recognises the helper from its argv before it parses any flag. The helper runs
//! as root until its user switch, so the task's environment never is its environment:
//! the dynamic loader would read `LD_PRELOAD`, `LD_DEBUG_OUTPUT` and the like from it
//! and run or write what the task names, as root. The helper's environment holds only
//! the task's marker (so cleanup finds it) and the task's environment as JSON in
//! [`TASK_ENVIRONMENT`], which the loader does not read; the helper applies it only at
//! `execve`, after the switch, looking the program up in the task's own `PATH`.
//! (`/proc/<pid>/environ` is the owner's alone, so the task's secrets are not shown to
//! other users, as they would be in the world-readable argv.)

use std::{
    collections::HashSet,
    ffi::{CString, OsString},
    process::ExitCode,
    str::FromStr,
};

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid, execve, setgid, setgroups, setuid};
use serde::{Deserialize, Serialize};

/// What the helper does before `exec`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperSpec {
    /// Program (looked up in `PATH` when it has no `/`).
    pub program: String,
    /// Full argv, `argv[0]` included.
    pub argv: Vec<String>,
    /// Switch to this user and group.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// With a user: every group of it (its own from the group database, computed before
    /// the spawn, and `--task_supplementary_groups`).
    pub groups: Vec<u32>,
    /// `--effective_capabilities` (see [`calculate`]).
    pub effective: Option<Vec<String>>,
    /// `--bounding_capabilities` (see [`calculate`]).
    pub bounding: Option<Vec<String>>,
}

/// The flag that makes this program the helper: `argv` is exactly the program and
/// `--exec_helper=<spec>`, as the supervisor writes it.
pub const FLAG: &str = "--exec_helper=";

/// The helper's variable carrying the task's environment (a JSON object), applied at
/// `execve` only.
pub const TASK_ENVIRONMENT: &str = "MESOS_EXECUTOR_HELPER_TASK_ENVIRONMENT";

/// The spec when `argv` is the helper's (see [`FLAG`]), read from nothing else.
pub fn spec_from_argv(argv: impl IntoIterator<Item = OsString>) -> Option<String> {
    let mut argv = argv.into_iter().skip(1);
    let spec = argv.next()?.into_string().ok()?.strip_prefix(FLAG)?.to_owned();
    argv.next().is_none().then_some(spec)
}

/// A process's five capability sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: HashSet<Capability>,
    pub permitted: HashSet<Capability>,
    pub inheritable: HashSet<Capability>,
    pub bounding: HashSet<Capability>,
    pub ambient: HashSet<Capability>,
}

impl CapSets {
    /// This thread's sets.
    fn read() -> Result<CapSets, caps::errors::CapsError> {
        Ok(CapSets {
            effective: caps::read(None, CapSet::Effective)?,
            permitted: caps::read(None, CapSet::Permitted)?,
            inheritable: caps::read(None, CapSet::Inheritable)?,
            bounding: caps::read(None, CapSet::Bounding)?,
            ambient: caps::read(None, CapSet::Ambient).unwrap_or_default(),
        })
    }
}

/// The sets a task gets from the process's `current` ones, as upstream's
/// `calculateCapabilities` (`src/slave/containerizer/mesos/launch.cpp`) computes them:
/// effective capabilities, when given, become all five sets; bounding capabilities,
/// when given, replace the bounding set; and the inheritable set is always the bounding
/// set, so that no file capability grants more than it. Without effective
/// capabilities the effective, permitted and ambient sets stay as they are: a task of
/// another user loses them at exec, one running as root gets its bounding set.
///
/// # Errors
/// Ambient capabilities (the effective ones) outside the inheritable set (the bounding
/// one): effective capabilities that the bounding capabilities do not include.
pub fn calculate(
    current: CapSets,
    effective: Option<&HashSet<Capability>>,
    bounding: Option<&HashSet<Capability>>,
) -> Result<CapSets, String> {
    let mut sets = current;
    if let Some(effective) = effective {
        sets = CapSets {
            effective: effective.clone(),
            permitted: effective.clone(),
            inheritable: effective.clone(),
            bounding: effective.clone(),
            ambient: effective.clone(),
        };
    }
    if let Some(bounding) = bounding {
        sets.bounding = bounding.clone();
    }
    sets.inheritable = sets.bounding.clone();
    // Upstream's Capabilities::set checks the same before it changes anything.
    let mut outside: Vec<String> = sets.ambient.difference(&sets.inheritable).map(ToString::to_string).collect();
    if !outside.is_empty() {
        outside.sort();
        return Err(format!("effective capabilities {outside:?} are not in the bounding capabilities"));
    }
    Ok(sets)
}

/// Makes `target` this thread's sets, in an order the kernel accepts at every step
/// (needs `CAP_SETPCAP` in the effective set and `target.permitted` within the
/// permitted one).
fn apply(target: &CapSets) -> Result<(), String> {
    for cap in caps::runtime::thread_all_supported() {
        if !target.bounding.contains(&cap) && caps::drop(None, CapSet::Bounding, cap).is_err() {
            return Err(format!("cannot drop {cap} from the bounding set"));
        }
    }
    // Inheritable while permitted is still whole; effective before permitted, which it
    // must stay within.
    for (set, value) in [
        (CapSet::Inheritable, &target.inheritable),
        (CapSet::Effective, &target.effective),
        (CapSet::Permitted, &target.permitted),
    ] {
        caps::set(None, set, value).map_err(|e| format!("{set:?}: {e}"))?;
    }
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| format!("ambient: {e}"))?;
        for cap in &target.ambient {
            caps::raise(None, CapSet::Ambient, *cap).map_err(|e| format!("ambient {cap}: {e}"))?;
        }
    }
    Ok(())
}

/// Parses capability names as upstream writes them (`NET_RAW`, or `CAP_NET_RAW`).
///
/// # Errors
/// An unknown name, named.
pub fn parse_caps(names: &[String]) -> Result<HashSet<Capability>, String> {
    names
        .iter()
        .map(|n| {
            let full = if n.to_ascii_uppercase().starts_with("CAP_") {
                n.to_ascii_uppercase()
            } else {
                format!("CAP_{}", n.to_ascii_uppercase())
            };
            Capability::from_str(&full).map_err(|_| format!("unknown capability {n:?}"))
        })
        .collect()
}

fn fail(step: &str, error: impl std::fmt::Display) -> ExitCode {
    eprintln!("mesos-executor exec helper: {step}: {error}");
    ExitCode::from(127)
}

/// Runs the helper; returns only on failure.
pub fn run(spec: &str) -> ExitCode {
    let spec: HelperSpec = match serde_json::from_str(spec) {
        Ok(spec) => spec,
        Err(e) => return fail("bad spec", e),
    };
    let effective = match spec.effective.as_deref().map(parse_caps).transpose() {
        Ok(caps) => caps,
        Err(e) => return fail("--effective_capabilities", e),
    };
    let bounding = match spec.bounding.as_deref().map(parse_caps).transpose() {
        Ok(caps) => caps,
        Err(e) => return fail("--bounding_capabilities", e),
    };
    let set_caps = effective.is_some() || bounding.is_some();
    // Upstream's order: keep capabilities across the user switch, switch (group, groups,
    // user), then set the capabilities.
    if set_caps
        && spec.uid.is_some()
        && let Err(e) = caps::securebits::set_keepcaps(true)
    {
        return fail("keep capabilities across the user switch", e);
    }
    if let (Some(uid), Some(gid)) = (spec.uid, spec.gid) {
        if let Err(e) = setgid(Gid::from_raw(gid)) {
            return fail("setgid", e);
        }
        let groups: Vec<Gid> = spec.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        if let Err(e) = setgroups(&groups) {
            return fail("setgroups", e);
        }
        if let Err(e) = setuid(Uid::from_raw(uid)) {
            return fail("setuid", e);
        }
    }
    if set_caps {
        // The user switch cleared the effective set; changing the bounding set needs
        // CAP_SETPCAP there (as upstream restores it).
        if let Err(e) = caps::raise(None, CapSet::Effective, Capability::CAP_SETPCAP) {
            return fail("CAP_SETPCAP", e);
        }
        let current = match CapSets::read() {
            Ok(current) => current,
            Err(e) => return fail("read capabilities", e),
        };
        let target = match calculate(current, effective.as_ref(), bounding.as_ref()) {
            Ok(target) => target,
            Err(e) => return fail("capabilities", e),
        };
        if let Err(e) = apply(&target) {
            return fail("capabilities", e);
        }
    }
    let env: std::collections::BTreeMap<String, String> = match std::env::var(TASK_ENVIRONMENT)
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()))
    {
        Ok(env) => env,
        Err(e) => return fail("the task's environment", e),
    };
    let program = match resolve(&spec.program, env.get("PATH").map(String::as_str)) {
        Ok(program) => program,
        Err(e) => return fail(&format!("cannot run {:?}", spec.program), e),
    };
    let Ok(program) = CString::new(program) else { return fail("program", "contains a NUL byte") };
    let argv: Result<Vec<CString>, _> = spec.argv.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(argv) = argv else { return fail("argv", "contains a NUL byte") };
    let envp: Result<Vec<CString>, _> = env.iter().map(|(k, v)| CString::new(format!("{k}={v}"))).collect();
    let Ok(envp) = envp else { return fail("the task's environment", "contains a NUL byte") };
    match execve(&program, &argv, &envp) {
        Ok(never) => match never {},
        Err(e) => fail(&format!("cannot run {:?}", spec.program), e),
    }
}

/// `program` itself when it names a path, else the first executable file called
/// `program` in the task's `PATH` (as `execvp` does, but with the task's `PATH`, not
/// ours; an unset `PATH` is execvp's default). Runs after the user switch, so what the
/// task's user cannot execute is passed over.
fn resolve(program: &str, path: Option<&str>) -> Result<String, String> {
    use nix::unistd::{AccessFlags, access};
    if program.contains('/') {
        return Ok(program.to_owned());
    }
    for dir in path.unwrap_or("/bin:/usr/bin").split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{program}");
        let is_file = std::fs::metadata(&candidate).is_ok_and(|m| m.is_file());
        if is_file && access(candidate.as_str(), AccessFlags::X_OK).is_ok() {
            return Ok(candidate);
        }
    }
    Err("not found in the task's PATH".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_as_upstream_writes_them() {
        let caps = parse_caps(&["NET_RAW".into(), "cap_chown".into()]).unwrap();
        assert!(caps.contains(&Capability::CAP_NET_RAW) && caps.contains(&Capability::CAP_CHOWN));
        assert!(parse_caps(&["FLY".into()]).unwrap_err().contains("FLY"));
    }

    fn set(caps: &[Capability]) -> HashSet<Capability> {
        caps.iter().copied().collect()
    }

    /// A root process: everything but inheritable and ambient.
    fn root() -> CapSets {
        let all = caps::all();
        CapSets { effective: all.clone(), permitted: all.clone(), bounding: all, ..CapSets::default() }
    }

    /// The helper after switching to another user keeping its capabilities: permitted
    /// kept, effective cleared but for CAP_SETPCAP (which it raises again).
    fn switched() -> CapSets {
        CapSets { effective: set(&[Capability::CAP_SETPCAP]), ..root() }
    }

    /// The kernel's rules at `exec` of a program without file capabilities (see
    /// capabilities(7)): root gets its bounding and inheritable sets as permitted (and
    /// effective); another user gets its ambient set.
    fn after_exec(sets: &CapSets, as_root: bool) -> CapSets {
        let permitted = if as_root {
            sets.bounding.union(&sets.inheritable).chain(&sets.ambient).copied().collect()
        } else {
            sets.ambient.clone()
        };
        let effective = if as_root { permitted.clone() } else { sets.ambient.clone() };
        CapSets { effective, permitted, ..sets.clone() }
    }

    const NET_RAW: Capability = Capability::CAP_NET_RAW;
    const CHOWN: Capability = Capability::CAP_CHOWN;

    #[test]
    fn effective_alone_is_every_set_for_a_root_task_and_a_nobody_task() {
        let only = set(&[NET_RAW]);
        let expected = CapSets {
            effective: only.clone(),
            permitted: only.clone(),
            inheritable: only.clone(),
            bounding: only.clone(),
            ambient: only.clone(),
        };
        let root_task = calculate(root(), Some(&only), None).unwrap();
        assert_eq!(root_task, expected);
        assert_eq!(after_exec(&root_task, true), expected, "root gets no more than it was given");
        let nobody_task = calculate(switched(), Some(&only), None).unwrap();
        assert_eq!(after_exec(&nobody_task, false), expected);
    }

    #[test]
    fn bounding_alone_bounds_root_and_gives_nobody_nothing() {
        let bounding = set(&[NET_RAW, CHOWN]);
        let root_task = calculate(root(), None, Some(&bounding)).unwrap();
        assert_eq!((&root_task.bounding, &root_task.inheritable), (&bounding, &bounding));
        assert!(root_task.ambient.is_empty());
        let root_exec = after_exec(&root_task, true);
        assert_eq!((&root_exec.permitted, &root_exec.effective), (&bounding, &bounding));
        let nobody_exec = after_exec(&calculate(switched(), None, Some(&bounding)).unwrap(), false);
        assert!(nobody_exec.permitted.is_empty() && nobody_exec.effective.is_empty());
        assert_eq!(nobody_exec.bounding, bounding);
    }

    #[test]
    fn both_give_the_effective_ones_within_the_bounding_ones() {
        let (effective, bounding) = (set(&[NET_RAW]), set(&[NET_RAW, CHOWN]));
        let task = calculate(switched(), Some(&effective), Some(&bounding)).unwrap();
        assert_eq!(task.bounding, bounding);
        assert_eq!(task.inheritable, bounding, "inheritable is the bounding set");
        assert_eq!((&task.ambient, &task.permitted, &task.effective), (&effective, &effective, &effective));
        let nobody = after_exec(&task, false);
        assert_eq!((&nobody.permitted, &nobody.effective), (&effective, &effective));
        // As upstream: a root task gets its bounding set, the bounding flag winning.
        assert_eq!(
            after_exec(&calculate(root(), Some(&effective), Some(&bounding)).unwrap(), true).effective,
            bounding
        );
    }

    #[test]
    fn effective_outside_bounding_is_refused_naming_them() {
        let error = calculate(root(), Some(&set(&[NET_RAW])), Some(&set(&[CHOWN]))).unwrap_err();
        assert!(error.contains("CAP_NET_RAW"), "{error}");
    }

    #[test]
    fn neither_changes_nothing_but_clips_inheritable() {
        let mut current = root();
        current.inheritable = set(&[NET_RAW]);
        current.bounding = set(&[CHOWN]);
        let task = calculate(current.clone(), None, None).unwrap();
        assert_eq!(task, CapSets { inheritable: set(&[CHOWN]), ..current });
    }

    #[test]
    fn the_helper_is_known_by_its_argv_alone() {
        let argv = |args: &[&str]| args.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(spec_from_argv(argv(&["mesos-executor", "--exec_helper={}"])), Some("{}".to_owned()));
        assert_eq!(spec_from_argv(argv(&["mesos-executor"])), None);
        assert_eq!(spec_from_argv(argv(&["mesos-executor", "--mode=custom"])), None);
        assert_eq!(spec_from_argv(argv(&["mesos-executor", "--exec_helper={}", "--mode=custom"])), None);
    }
}
