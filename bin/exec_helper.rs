//! `mesos-executor --exec_helper=<spec>`: the last step before a task's program, for
//! what a plain spawn cannot do. The supervisor starts it (as root, in the task's process
//! group, with the task's environment) when the agent asked for supplementary groups or
//! capabilities, as upstream's launch helper does: it sets the groups, drops the bounding
//! set, switches to the task's user keeping the asked capabilities, and `exec`s the
//! program, which keeps its pid. A failure is said on stderr (the task's) and exits 127.

use std::{collections::HashSet, ffi::CString, process::ExitCode, str::FromStr};

use caps::{CapSet, Capability};
use nix::unistd::{Gid, Uid, execvp, setgid, setgroups, setuid};
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
    /// Supplementary groups (`--task_supplementary_groups`).
    pub groups: Vec<u32>,
    /// `--effective_capabilities`: the task's permitted, effective, inheritable and
    /// ambient sets.
    pub effective: Option<Vec<String>>,
    /// `--bounding_capabilities`: everything else is dropped from the bounding set.
    pub bounding: Option<Vec<String>>,
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
    if let Some(keep) = &bounding {
        for cap in caps::runtime::thread_all_supported() {
            if !keep.contains(&cap) && caps::drop(None, CapSet::Bounding, cap).is_err() {
                return fail("--bounding_capabilities", format!("cannot drop {cap} from the bounding set"));
            }
        }
    }
    if effective.is_some()
        && let Err(e) = caps::securebits::set_keepcaps(true)
    {
        return fail("keep capabilities across the user switch", e);
    }
    if spec.uid.is_some() || !spec.groups.is_empty() {
        let mut groups: Vec<Gid> = spec.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        if let Some(gid) = spec.gid {
            groups.insert(0, Gid::from_raw(gid));
        }
        if let Err(e) = setgroups(&groups) {
            return fail("--task_supplementary_groups", e);
        }
    }
    if let Some(gid) = spec.gid
        && let Err(e) = setgid(Gid::from_raw(gid))
    {
        return fail("setgid", e);
    }
    if let Some(uid) = spec.uid
        && let Err(e) = setuid(Uid::from_raw(uid))
    {
        return fail("setuid", e);
    }
    if let Some(keep) = &effective {
        // Effective first: it must stay a subset of permitted at every step.
        for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
            if let Err(e) = caps::set(None, set, keep) {
                return fail("--effective_capabilities", format!("{set:?}: {e}"));
            }
        }
        for cap in keep {
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                return fail("--effective_capabilities", format!("ambient {cap}: {e}"));
            }
        }
    }
    let Ok(program) = CString::new(spec.program.clone()) else { return fail("program", "contains a NUL byte") };
    let argv: Result<Vec<CString>, _> = spec.argv.iter().map(|a| CString::new(a.as_str())).collect();
    let Ok(argv) = argv else { return fail("argv", "contains a NUL byte") };
    match execvp(&program, &argv) {
        Ok(never) => match never {},
        Err(e) => fail(&format!("cannot run {:?}", spec.program), e),
    }
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
}
