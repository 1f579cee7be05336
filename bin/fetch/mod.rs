//! The task URIs (`CommandInfo.uris`), fetched before the task starts with upstream's
//! semantics (`mesos.proto` `CommandInfo.URI`, `src/launcher/fetcher.cpp`): `http://`,
//! `https://`, `file://` and absolute paths; the file is named after the URI's last path
//! segment, or `output_file`; `executable` makes it executable (and is never extracted);
//! `extract` (upstream's default) unpacks archives into the sandbox; `cache` keeps a
//! download for later tasks of the same user.
//!
//! The daemon does none of it itself: each task's fetch runs in a helper process
//! (`child.rs`) as the task's user, with the spec on its stdin, its memory capped, and
//! every path opened beneath the sandbox (`beneath.rs`). This file is the daemon's side:
//! the per-user cache directories and index, starting the helper, and its deadline.
//!
//! Layout: `spec.rs` (what passes between the two), `child.rs` (the helper),
//! `download.rs` (http and https), `extract.rs` (archives), `tar_guard.rs` (tar
//! metadata records), `beneath.rs` (paths).

pub mod beneath;
pub mod child;
pub mod download;
pub mod extract;
pub mod spec;
pub mod tar_guard;

use std::{
    os::unix::fs::DirBuilderExt,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use mesos_executor::proto::v1::command_info;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub use spec::Limits;
use spec::{CacheUse, Report, Spec, UriSpec};

/// The argument that makes this program the fetch helper; `main` looks for it first.
pub const HELPER_FLAG: &str = "--fetch_helper";

/// Fetches URIs; cheap to clone, shared by the tasks of the executor.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// This program, started as the helper.
    helper: PathBuf,
    limits: Limits,
    /// `--fetcher_ca_file`.
    ca_file: Option<PathBuf>,
    /// `<executor sandbox>/.fetcher-cache`, or `None` when caching is off.
    cache_root: Option<PathBuf>,
    /// What is cached, oldest first.
    cache: Arc<Mutex<Vec<CacheEntry>>>,
}

/// One URI fetched, as the log shows it.
#[derive(Debug, Clone)]
pub struct FetchedUri {
    /// The URI without credentials or query ([`spec::for_log`]).
    pub uri: String,
    /// Size of the file fetched (before any unpacking).
    pub bytes: u64,
    /// How long it took.
    pub millis: u64,
    /// Copied from the fetch cache rather than downloaded.
    pub cached: bool,
}

/// A cached download: a file in its user's cache directory.
#[derive(Debug, Clone)]
struct CacheEntry {
    uri: String,
    uid: u32,
    file: String,
    size: u64,
}

impl Fetcher {
    /// A fetcher that runs `helper --fetch_helper`; `cache_root` `None` turns the
    /// cache off.
    pub fn new(helper: PathBuf, limits: Limits, ca_file: Option<PathBuf>, cache_root: Option<PathBuf>) -> Self {
        Fetcher { helper, limits, ca_file, cache_root, cache: Arc::default() }
    }

    /// Fetches every URI into `sandbox`, in order, as `user` (when the daemon is root);
    /// what was fetched, for the log.
    ///
    /// # Errors
    /// The first URI that could not be fetched, named, with why; or the helper could not
    /// run, or passed the fetch timeout.
    ///
    /// # Cancel safety
    /// Dropping the future kills the helper.
    pub async fn fetch_all(
        &self,
        uris: &[command_info::Uri],
        sandbox: &Path,
        user: Option<&str>,
    ) -> Result<Vec<FetchedUri>, String> {
        if uris.is_empty() {
            return Ok(Vec::new());
        }
        let root = nix::unistd::geteuid().is_root();
        let user = user.filter(|u| !u.is_empty());
        // The helper switches users only as root; otherwise it is the executor's user.
        let account = match user.filter(|_| root) {
            Some(name) => Some(
                nix::unistd::User::from_name(name)
                    .map_err(|e| format!("user {name:?}: {e}"))?
                    .ok_or_else(|| format!("no user {name:?}"))?,
            ),
            None => None,
        };
        let (uid, gid) = match &account {
            Some(a) => (a.uid.as_raw(), a.gid.as_raw()),
            None => (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw()),
        };
        let wants_cache = uris.iter().any(|u| u.cache());
        let cache_dir = match (&self.cache_root, wants_cache) {
            (Some(cache_root), true) => user_cache_dir(cache_root, uid, gid).ok(),
            _ => None,
        };
        let uris: Vec<UriSpec> = uris
            .iter()
            .map(|u| UriSpec {
                value: u.value.clone(),
                output_file: u.output_file.clone(),
                executable: u.executable(),
                extract: u.extract(),
                cache: (u.cache() && cache_dir.is_some()).then(|| self.cache_use(&u.value, uid)),
            })
            .collect();
        let spec = Spec {
            user: user.filter(|_| root).map(str::to_owned),
            sandbox: sandbox.to_path_buf(),
            uris: uris.clone(),
            limits: self.limits,
            ca_file: self.ca_file.clone(),
            cache: cache_dir.clone(),
        };
        let run = self.run_helper(&spec);
        let report = tokio::time::timeout(self.limits.timeout, run).await.unwrap_or_else(|_| {
            Err(format!(
                "fetching {} URI(s) took longer than {}",
                uris.len(),
                mesos_executor::env::format_duration(self.limits.timeout)
            ))
        })?;
        tracing::debug!(peak_kib = report.peak_kib, uris = uris.len(), "fetch helper done");
        if cache_dir.is_some() {
            self.remember(&uris, &report, uid);
        }
        let fetched = report.fetched.iter().filter_map(|(index, bytes, millis, cached)| {
            let uri = uris.get(*index)?;
            Some(FetchedUri { uri: spec::for_log(&uri.value), bytes: *bytes, millis: *millis, cached: *cached })
        });
        Ok(fetched.collect())
    }

    fn cache_use(&self, uri: &str, uid: u32) -> CacheUse {
        let cache = self.cache.lock().map(|c| c.clone()).unwrap_or_default();
        match cache.iter().find(|e| e.uri == uri && e.uid == uid) {
            Some(entry) => CacheUse::Hit(entry.file.clone()),
            None => CacheUse::Store(uuid::Uuid::new_v4().simple().to_string()),
        }
    }

    /// Records what the helper cached, and drops the oldest past the cap.
    fn remember(&self, uris: &[UriSpec], report: &Report, uid: u32) {
        let Ok(mut cache) = self.cache.lock() else { return };
        for (index, file, size) in &report.stored {
            let Some(uri) = uris.get(*index) else { continue };
            cache.retain(|e| !(e.uri == uri.value && e.uid == uid));
            cache.push(CacheEntry { uri: uri.value.clone(), uid, file: file.clone(), size: *size });
        }
        while cache.iter().map(|e| e.size).fold(0u64, u64::saturating_add) > self.limits.cache_size && !cache.is_empty()
        {
            let old = cache.remove(0);
            if let Some(root) = &self.cache_root {
                // The user owns its directory but not `.fetcher-cache`, so this is the
                // name in the user's directory, link or not: unlink never follows it.
                let _ = std::fs::remove_file(root.join(old.uid.to_string()).join(&old.file));
            }
        }
    }

    /// Runs the helper with `spec` on its stdin; its report.
    async fn run_helper(&self, spec: &Spec) -> Result<Report, String> {
        let json = serde_json::to_vec(spec).map_err(|e| format!("fetch spec: {e}"))?;
        let mut child = tokio::process::Command::new(&self.helper)
            .arg(HELPER_FLAG)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the fetch helper {}: {e}", self.helper.display()))?;
        // Ours to wait for: the daemon's orphan reaper (it reaps every child it does not
        // know of on SIGCHLD) would otherwise take its exit status first (ECHILD).
        let _owned = child.id().map(mesos_executor::executor::process::OwnChild::register);
        let (mut stdin, stdout, stderr) = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(i), Some(o), Some(e)) => (i, o, e),
            _ => return Err("the fetch helper has no pipes".to_owned()),
        };
        let write = async move {
            let _ = stdin.write_all(&json).await;
            drop(stdin);
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut stdout, mut stderr) = (stdout.take(64 * 1024), stderr.take(64 * 1024));
        let read_out = stdout.read_to_end(&mut out);
        let read_err = stderr.read_to_end(&mut err);
        let ((), _, _, status) = tokio::join!(write, read_out, read_err, child.wait());
        let status = status.map_err(|e| format!("the fetch helper: {e}"))?;
        if !status.success() {
            let said = String::from_utf8_lossy(&err);
            let line = said.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
            let line: String = line.chars().take(1000).collect();
            return Err(if line.is_empty() { format!("the fetch helper ended with {status}") } else { line });
        }
        serde_json::from_slice(&out).map_err(|e| format!("the fetch helper's report: {e}"))
    }
}

/// `<cache root>/<uid>`: the root 0711 and owned by the daemon, the user's directory
/// 0700 and owned by the user (only its own fetches read and write it).
fn user_cache_dir(cache_root: &Path, uid: u32, gid: u32) -> Result<PathBuf, String> {
    use rustix::fs::{Mode, OFlags};
    let make = |dir: &Path, mode: u32| match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("{}: {e}", dir.display())),
    };
    let open = |dir: &Path| {
        rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("{}: {e}", dir.display()))
    };
    make(cache_root, 0o711)?;
    let top = open(cache_root)?;
    // Only the daemon may change what is in it, or a user could swap another user's
    // directory for a link (the helper opens the path it is given).
    let owner = rustix::fs::fstat(&top).map_err(|e| format!("{}: {e}", cache_root.display()))?.st_uid;
    if owner != nix::unistd::geteuid().as_raw() {
        return Err(format!("{} belongs to uid {owner}, not to the executor", cache_root.display()));
    }
    rustix::fs::fchmod(&top, Mode::from_raw_mode(0o711)).map_err(|e| format!("{}: {e}", cache_root.display()))?;
    let dir = cache_root.join(uid.to_string());
    make(&dir, 0o700)?;
    let fd = open(&dir)?;
    let owner = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
    if nix::unistd::geteuid().is_root() {
        rustix::fs::fchown(&fd, owner.0, owner.1).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in helper that records its pid and then hangs.
    fn hanging_helper(dir: &Path) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let (script, pid) = (dir.join("helper.sh"), dir.join("pid"));
        std::fs::write(&script, format!("#!/bin/sh\necho $$ > {}\nexec sleep 30\n", pid.display())).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, pid)
    }

    fn gone(pid: &str) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'))
    }

    async fn pid_of(file: &Path) -> String {
        for _ in 0..100 {
            if let Ok(pid) = std::fs::read_to_string(file)
                && !pid.trim().is_empty()
            {
                return pid.trim().to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the helper did not start");
    }

    fn uris() -> Vec<command_info::Uri> {
        vec![command_info::Uri { value: "http://127.0.0.1:9/x".into(), ..Default::default() }]
    }

    #[tokio::test]
    async fn dropping_the_fetch_kills_the_helper() {
        let dir = tempfile::tempdir().unwrap();
        let (script, pid_file) = hanging_helper(dir.path());
        let fetcher = Fetcher::new(script, Limits::default(), None, None);
        let uris = uris();
        let fetch = fetcher.fetch_all(&uris, dir.path(), None);
        let cut = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            tokio::select! {
                _ = fetch => panic!("the hanging helper finished"),
                pid = pid_of(&pid_file) => pid,
            }
        });
        let pid = cut.await.unwrap();
        for _ in 0..100 {
            if gone(&pid) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("helper {pid} outlived its dropped fetch");
    }

    #[tokio::test]
    async fn a_helper_past_the_timeout_fails_the_fetch_and_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let (script, pid_file) = hanging_helper(dir.path());
        let limits = Limits { timeout: std::time::Duration::from_millis(500), ..Limits::default() };
        let fetcher = Fetcher::new(script, limits, None, None);
        let error = fetcher.fetch_all(&uris(), dir.path(), None).await.unwrap_err();
        assert!(error.contains("took longer than"), "{error}");
        let pid = pid_of(&pid_file).await;
        for _ in 0..100 {
            if gone(&pid) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("helper {pid} outlived the timeout");
    }
}
