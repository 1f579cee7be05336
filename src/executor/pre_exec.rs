//! The one place this crate runs code between `fork` and `exec`: what a task's process
//! must do to itself before it becomes the task, which no safe `Command` method does.
//! Taking a controlling terminal in a session of its own, and switching to the task's
//! user with that user's supplementary groups (std's `CommandExt::groups` is unstable,
//! and `CommandExt::uid` as root calls `setgroups(0)`: the user's groups would be lost).
//!
//! Everything here is computed before the fork; the hook itself only makes system calls
//! on values it owns, and allocates nothing.

// `pre_exec` is `unsafe`: the hook runs in the child of a fork of a multithreaded
// process, where only async-signal-safe operations are allowed.
#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;

use nix::unistd::{Gid, Uid, setgid, setgroups, setsid, setuid};

/// A user to become: its ids and its full supplementary group list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user's id.
    pub uid: u32,
    /// Its primary group's id.
    pub gid: u32,
    /// Every group it belongs to (the primary one included).
    pub groups: Vec<u32>,
}

/// Adds the hook to `command`: with `controlling_tty`, the child starts a session and
/// takes its stdin (a terminal) as its controlling terminal, as upstream's launcher
/// does (`src/slave/containerizer/mesos/launch.cpp`: `setsid`, then `os::setctty` on
/// stdin); then, with an `identity`, it sets its groups, group and user, in upstream's
/// order (groups before the user, as the user could no longer change them).
///
/// The caller must not put the child in a process group of its own when it asks for a
/// terminal: a group leader cannot start a session (the session's process group is the
/// child's pid anyway).
pub(crate) fn install(command: &mut tokio::process::Command, identity: Option<Identity>, controlling_tty: bool) {
    // Converted before the fork: the hook must not allocate.
    let identity = identity.map(|i| {
        (Uid::from_raw(i.uid), Gid::from_raw(i.gid), i.groups.into_iter().map(Gid::from_raw).collect::<Vec<_>>())
    });
    let hook = move || -> std::io::Result<()> {
        if controlling_tty {
            setsid()?;
            // SAFETY: fd 0 is open: std has already made the child's stdin (the
            // terminal) its fd 0 when the hooks run, and nothing closes it before exec.
            let stdin = unsafe { BorrowedFd::borrow_raw(0) };
            rustix::process::ioctl_tiocsctty(stdin)?;
        }
        if let Some((uid, gid, groups)) = &identity {
            setgroups(groups)?;
            setgid(*gid)?;
            setuid(*uid)?;
        }
        Ok(())
    };
    // SAFETY: the hook is async-signal-safe: it calls `setsid`, `ioctl`, `setgroups`,
    // `setgid` and `setuid` (the same calls std itself makes in the child for
    // `CommandExt::uid`) on values moved into it before the fork, allocates nothing
    // (errors are raw OS errors), takes no lock and touches no shared state.
    unsafe {
        command.pre_exec(hook);
    }
}
