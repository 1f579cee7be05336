//! Each task's own sandbox (custom mode), laid out as upstream's default executor lays
//! out its tasks' (`src/launcher/default_executor.cpp`): the real directory
//! `<executor sandbox>/containers/<uuid>`, owned by the task's user with mode 0750 (as
//! `src/slave/paths.cpp` makes a sandbox), and `<executor sandbox>/tasks/<task id>`, a
//! symbolic link to it for people and the agent's sandbox browser.
//!
//! The task owns its directory and may plant anything in it (a symlink named `stdout`
//! to `/etc/shadow`, a FIFO, a hard link). The daemon runs as root, so everything it
//! opens or creates there goes through the directory's descriptor, held from the moment
//! the daemon created the directory, and never follows a symlink ([`open_log`]).

use std::{
    fs::File,
    io,
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustix::{
    fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid},
    io::Errno,
};

/// Longest link name kept from a task id: a file name's limit (NAME_MAX), which is also
/// the longest id the master accepts (`common/validation.cpp` `validateID`), so every
/// valid id is linked whole, as upstream's default executor links it.
const MAX_LINK_NAME: usize = 255;

/// One task's directory.
#[derive(Debug)]
pub struct TaskSandbox {
    /// `<executor sandbox>/containers/<uuid>`: the task's `MESOS_SANDBOX`.
    pub path: PathBuf,
    /// `<executor sandbox>/tasks/<name>`, the link to `path`.
    pub link: PathBuf,
    /// The directory, opened when the daemon created it: what the daemon writes there
    /// later (logs, rotations) is opened beneath it.
    pub dir: Arc<OwnedFd>,
    /// Who owns the directory (when not the daemon's own user), and so the task's logs.
    pub owner: Option<(Uid, Gid)>,
}

/// Who should own a task's directory: `Some` when the daemon is root and the task runs
/// as another user.
///
/// # Errors
/// The user does not exist, or cannot be looked up.
pub fn owner_of(user: Option<&str>) -> io::Result<Option<(Uid, Gid)>> {
    let Some(name) = user else { return Ok(None) };
    let me = nix::unistd::geteuid();
    if !me.is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| io::Error::other(format!("cannot look up user {name:?}: {e}")))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no such user {name:?}")))?;
    if user.uid == me {
        return Ok(None);
    }
    Ok(Some((Uid::from_raw(user.uid.as_raw()), Gid::from_raw(user.gid.as_raw()))))
}

impl TaskSandbox {
    /// Creates the task's directory under `sandbox` (the executor's), owned by `owner`,
    /// and its link `tasks/<name>`; a name another task's link already holds gets the
    /// directory's uuid appended.
    ///
    /// # Errors
    /// Any step that fails, naming the path.
    pub fn create(sandbox: &Path, task_id: &str, owner: Option<(Uid, Gid)>) -> io::Result<TaskSandbox> {
        let sandbox = std::fs::canonicalize(sandbox).map_err(|e| context(e, "the executor sandbox", sandbox))?;
        let top = rustix::fs::open(&sandbox, OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY, Mode::empty())
            .map_err(|e| context(e.into(), "the executor sandbox", &sandbox))?;
        let containers = subdir(&top, "containers", Mode::from_raw_mode(0o755), &sandbox)?;
        let tasks = subdir(&top, "tasks", Mode::from_raw_mode(0o755), &sandbox)?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let path = sandbox.join("containers").join(&id);
        rustix::fs::mkdirat(&containers, id.as_str(), Mode::from_raw_mode(0o750))
            .map_err(|e| context(e.into(), "the task's directory", &path))?;
        let dir = open_dir(&containers, &id).map_err(|e| context(e.into(), "the task's directory", &path))?;
        // The mode without the umask, then the owner (upstream: chmod 0750, chown).
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o750))
            .map_err(|e| context(e.into(), "chmod of the task's directory", &path))?;
        if let Some((uid, gid)) = owner {
            rustix::fs::fchown(&dir, Some(uid), Some(gid))
                .map_err(|e| context(e.into(), "chown of the task's directory", &path))?;
        }
        // An absolute target, as upstream's default executor links its tasks.
        let name = link_name(task_id);
        let link = match rustix::fs::symlinkat(&path, &tasks, name.as_str()) {
            Ok(()) => name,
            Err(Errno::EXIST) => {
                // Two ids that read the same once sanitised ("a/b", "a_b") never share.
                // The uuid's 37 bytes (".<uuid>") fit within the file name's limit.
                let unique = format!("{}.{id}", truncated(&name, MAX_LINK_NAME - 37));
                rustix::fs::symlinkat(&path, &tasks, unique.as_str())
                    .map_err(|e| context(e.into(), "the task's link", &sandbox.join("tasks").join(&unique)))?;
                tracing::info!(task_id, link = unique, "the task's link name was taken; using another");
                unique
            }
            Err(e) => return Err(context(e.into(), "the task's link", &sandbox.join("tasks").join(&name))),
        };
        Ok(TaskSandbox { link: sandbox.join("tasks").join(link), path, dir: Arc::new(dir), owner })
    }
}

/// The link's name for `task_id`: `/` and control characters become `_`, and so do
/// names the file system gives a meaning (`.`, `..`, empty); at most
/// [`MAX_LINK_NAME`] bytes.
fn link_name(task_id: &str) -> String {
    let mut safe = String::new();
    for c in task_id.chars() {
        if safe.len() + c.len_utf8() > MAX_LINK_NAME {
            break;
        }
        safe.push(if c == '/' || c.is_control() { '_' } else { c });
    }
    match safe.as_str() {
        "" | "." | ".." => safe.replace('.', "_") + "_",
        _ => safe,
    }
}

/// `name` cut to at most `max` bytes, on a character boundary.
fn truncated(name: &str, max: usize) -> &str {
    let mut end = name.len().min(max);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// `name` beneath `parent`, created when missing; a symlink there is refused.
fn subdir(parent: &OwnedFd, name: &str, mode: Mode, at: &Path) -> io::Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, mode) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(context(e.into(), "a directory", &at.join(name))),
    }
    open_dir(parent, name).map_err(|e| context(e.into(), "a directory", &at.join(name)))
}

fn open_dir(parent: &OwnedFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::RDONLY,
        Mode::empty(),
    )
}

/// Opens `name` beneath `dir` for appending, as a regular file of its own: an existing
/// regular file with one link is kept; anything else there (a symlink, a FIFO, a hard
/// link to a file elsewhere, a directory) is removed and a new file made in its place.
/// Never follows a symlink, never blocks on a FIFO. A file it makes belongs to `owner`
/// (the task's user, as upstream's sandbox files do: its disk quota, not root's
/// reserved blocks).
///
/// # Errors
/// The file cannot be opened or made (the task keeps replacing it, the disk is full).
pub fn open_log(dir: &OwnedFd, name: &str, owner: Option<(Uid, Gid)>) -> io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::APPEND | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    // Missing; or a symlink (ELOOP), a FIFO without a reader (ENXIO), ...: replaced below.
    if let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) {
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile && stat.st_nlink == 1 {
            return blocking(fd);
        }
    }
    let mut last = Errno::EXIST;
    for _ in 0..3 {
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => {
                let _ = rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR);
            }
            Err(_) => {}
        }
        match rustix::fs::openat(dir, name, flags | OFlags::CREATE | OFlags::EXCL, Mode::from_raw_mode(0o644)) {
            Ok(fd) => {
                if let Some((uid, gid)) = owner {
                    rustix::fs::fchown(&fd, Some(uid), Some(gid))?;
                }
                return blocking(fd);
            }
            // Someone made it again between the two calls: once more.
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(io::Error::from(last).kind(), format!("cannot create the log file {name:?}: {last}")))
}

/// Clears `O_NONBLOCK` (only there so that opening a FIFO cannot block).
fn blocking(fd: OwnedFd) -> io::Result<File> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    Ok(File::from(fd))
}

fn context(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::{io::Write, os::unix::fs::PermissionsExt};

    use super::*;

    #[test]
    fn names_that_mean_something_to_the_file_system_are_made_plain() {
        assert_eq!(link_name("web/1"), "web_1");
        assert_eq!(link_name("a\nb"), "a_b");
        assert_eq!(link_name("."), "__");
        assert_eq!(link_name(".."), "___");
        assert_eq!(link_name(""), "_");
        assert_eq!(link_name(&"é".repeat(300)).len(), MAX_LINK_NAME - 1, "cut on a character boundary");
    }

    #[test]
    fn two_ids_that_sanitise_alike_get_their_own_directories_and_links() {
        let sandbox = tempfile::tempdir().unwrap();
        let a = TaskSandbox::create(sandbox.path(), "a/b", None).unwrap();
        let b = TaskSandbox::create(sandbox.path(), "a_b", None).unwrap();
        assert_ne!(a.path, b.path);
        assert_ne!(a.link, b.link);
        assert_eq!(std::fs::canonicalize(&a.link).unwrap(), a.path);
        assert_eq!(std::fs::canonicalize(&b.link).unwrap(), b.path);
        let mode = std::fs::metadata(&a.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn a_planted_symlink_fifo_or_hard_link_is_replaced_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let sandbox = tempfile::tempdir().unwrap();
        let task = TaskSandbox::create(sandbox.path(), "t", None).unwrap();
        std::os::unix::fs::symlink(&victim, task.path.join("stdout")).unwrap();
        std::fs::hard_link(&victim, task.path.join("stderr")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(task.path.join("fifo")).status().unwrap().success());
        for name in ["stdout", "stderr", "fifo"] {
            let mut file = open_log(&task.dir, name, None).unwrap();
            file.write_all(b"log\n").unwrap();
            assert_eq!(std::fs::read(task.path.join(name)).unwrap(), b"log\n", "{name}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        // A log of its own is kept and appended to.
        open_log(&task.dir, "stdout", None).unwrap().write_all(b"more\n").unwrap();
        assert_eq!(std::fs::read(task.path.join("stdout")).unwrap(), b"log\nmore\n");
    }

    /// review20: upstream's default executor links `tasks/<task id>` with the whole id
    /// (`src/launcher/default_executor.cpp`, `_launchGroup`: `path::join("tasks",
    /// taskId.value())`), and the master accepts ids up to NAME_MAX (255) bytes
    /// (`src/common/validation.cpp`, `validateID`). Tools that find a member's sandbox
    /// by upstream's `tasks/<task id>` find nothing
    /// here for an id of 201 to 255 bytes: the link is cut at 200.
    #[test]
    fn a_valid_task_id_of_up_to_255_bytes_is_linked_by_its_whole_id() {
        let sandbox = tempfile::tempdir().unwrap();
        let id = "t".repeat(255);
        let task = TaskSandbox::create(sandbox.path(), &id, None).unwrap();
        let canonical = std::fs::canonicalize(sandbox.path()).unwrap();
        assert_eq!(task.link, canonical.join("tasks").join(&id), "tasks/<the whole id>");
        // Another id that reads the same once sanitised still gets a link within NAME_MAX.
        let other = format!("{}/{}", "t".repeat(127), "t".repeat(127));
        let twin = format!("{}_{}", "t".repeat(127), "t".repeat(127));
        TaskSandbox::create(sandbox.path(), &other, None).unwrap();
        let task = TaskSandbox::create(sandbox.path(), &twin, None).unwrap();
        let name = task.link.file_name().unwrap().len();
        assert!(name <= 255 && std::fs::symlink_metadata(&task.link).is_ok(), "a {name}-byte link");
    }
}
