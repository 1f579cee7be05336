//! `mesos-executor --fetch_helper`: the process that fetches one task's URIs. The daemon
//! starts it with an empty environment and the [`Spec`] on stdin; as root with a task
//! user, it becomes that user before touching anything (initgroups, setgid, setuid, and
//! a check that root cannot be regained), as upstream's fetcher does with `os::su`
//! (`src/launcher/fetcher.cpp`). So a task reads only what its user may read
//! (`/etc/shadow` is refused), and owns what is fetched and unpacked for it.
//!
//! Memory is capped with `RLIMIT_DATA` rather than `RLIMIT_AS`: the data limit counts
//! what the helper can actually fill (heap, anonymous writable mappings, thread
//! stacks), while the address-space limit also counts glibc's per-thread malloc arena
//! reservations (64 MiB each, mostly never touched), which would fail a healthy fetch.
//! The [`Report`] goes to stdout; on success the exit status is 0, on failure one line
//! naming the URI goes to stderr and the status is 1.

use std::{
    ffi::CString,
    io::{self, Read, Seek, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use nix::{
    sys::resource::{Resource, setrlimit},
    unistd::{Gid, Uid, User, getegid, geteuid, getgid, getuid, initgroups, setgid, setuid},
};

use super::{
    beneath::{Pending, Root, relative},
    download::{self, Http},
    extract::{self, Bounds, Kind},
    spec::{CacheUse, Report, Spec, UriSpec, for_log},
};

/// The largest spec read from stdin.
const MAX_SPEC: u64 = 1 << 20;

/// Runs the helper (argv and environment are not read).
pub fn run() -> ExitCode {
    match fetch() {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&format!("cannot write the report: {e}")),
        },
        Err(e) => {
            // The peak still goes to stdout (the daemon reads it only on success; tests
            // measure hostile archives with it).
            let report = Report { peak_kib: peak_kib(), ..Report::default() };
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            fail(&e)
        }
    }
}

fn fail(error: &str) -> ExitCode {
    let line: String = error.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    eprintln!("{line}");
    ExitCode::from(1)
}

fn fetch() -> Result<Report, String> {
    let mut input = Vec::new();
    io::stdin().take(MAX_SPEC).read_to_end(&mut input).map_err(|e| format!("fetch helper: stdin: {e}"))?;
    let spec: Spec = serde_json::from_slice(&input).map_err(|e| format!("fetch helper: bad spec: {e}"))?;
    if let Some(user) = &spec.user {
        become_user(user)?;
    }
    let memory = spec.limits.memory;
    setrlimit(Resource::RLIMIT_DATA, memory, memory).map_err(|e| format!("fetch helper: RLIMIT_DATA: {e}"))?;
    let root = Root::open(&spec.sandbox)?;
    let cache = spec.cache.as_deref().and_then(|dir| Root::open(dir).ok());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("fetch helper: runtime: {e}"))?;
    let http = Http { ca_file: spec.ca_file.clone(), stall: spec.limits.stall, max_size: spec.limits.max_size };
    let mut client = None;
    let mut report = Report::default();
    for (i, uri) in spec.uris.iter().enumerate() {
        let started = std::time::Instant::now();
        let fetched = runtime
            .block_on(fetch_one(uri, &root, cache.as_ref(), &http, &spec, &mut client))
            .map_err(|e| format!("cannot fetch {:?}: {e}", for_log(&uri.value)))?;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.fetched.push((i, fetched.bytes, millis, fetched.cached));
        if let Some((name, size)) = fetched.stored {
            report.stored.push((i, name, size));
        }
    }
    // Links are checked where they were made and, once everything is unpacked, again.
    root.verify_links()?;
    report.peak_kib = peak_kib();
    Ok(report)
}

/// Becomes `user` if this process is root; otherwise `user` must be who it is.
fn become_user(name: &str) -> Result<(), String> {
    let user = User::from_name(name)
        .map_err(|e| format!("fetch helper: user {name:?}: {e}"))?
        .ok_or_else(|| format!("fetch helper: no user {name:?}"))?;
    if !geteuid().is_root() {
        if user.uid == geteuid() {
            return Ok(());
        }
        return Err(format!("fetch helper: cannot become user {name:?}: the executor is not root"));
    }
    let cname = CString::new(name).map_err(|_| format!("fetch helper: user {name:?} has a NUL byte"))?;
    initgroups(&cname, user.gid).map_err(|e| format!("fetch helper: initgroups for {name:?}: {e}"))?;
    setgid(user.gid).map_err(|e| format!("fetch helper: setgid {}: {e}", user.gid))?;
    setuid(user.uid).map_err(|e| format!("fetch helper: setuid {}: {e}", user.uid))?;
    if !user.uid.is_root() && (setuid(Uid::from_raw(0)).is_ok() || setgid(Gid::from_raw(0)).is_ok()) {
        return Err(format!("fetch helper: could regain root after becoming {name:?}"));
    }
    if getuid() != user.uid || geteuid() != user.uid || getgid() != user.gid || getegid() != user.gid {
        return Err(format!("fetch helper: the switch to {name:?} did not take"));
    }
    Ok(())
}

/// The helper's peak resident memory, from `/proc/self/status`.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Where the URI goes in the sandbox: `output_file`, or the last segment of its path.
fn file_name(uri: &UriSpec) -> Result<PathBuf, String> {
    let name = match &uri.output_file {
        Some(name) => relative(Path::new(name)).map_err(|e| format!("output_file: {e}"))?,
        None => {
            let path = uri.value.split(['?', '#']).next().unwrap_or_default();
            PathBuf::from(path.rsplit('/').next().unwrap_or_default())
        }
    };
    match name.file_name() {
        Some(n) if n != "." && n != ".." => Ok(name),
        _ => Err("the URI names no file (give output_file)".to_owned()),
    }
}

/// What fetching one URI did.
struct Fetched {
    /// The cache file written, if any, and its size.
    stored: Option<(String, u64)>,
    /// The size of the file fetched (before any unpacking).
    bytes: u64,
    /// Copied from the cache.
    cached: bool,
}

/// Fetches one URI.
async fn fetch_one(
    uri: &UriSpec,
    root: &Root,
    cache: Option<&Root>,
    http: &Http,
    spec: &Spec,
    client: &mut Option<reqwest::Client>,
) -> Result<Fetched, String> {
    let name = file_name(uri)?;
    let mut pending = root.create(&name)?;
    let cached = match (&uri.cache, cache) {
        (Some(CacheUse::Hit(file)), Some(cache)) => cache.read(Path::new(file)).ok(),
        _ => None,
    };
    let mut stored = None;
    let from_cache = cached.is_some();
    match cached {
        Some(mut from) => copy_into(&mut from, &mut pending, http.max_size)?,
        None => {
            download_into(&uri.value, &mut pending, http, client).await?;
            if let (Some(CacheUse::Store(file) | CacheUse::Hit(file)), Some(cache)) = (&uri.cache, cache) {
                // A cache that cannot be written costs a later download, not this fetch.
                if let Ok(size) = keep(&mut pending, cache, Path::new(file), http.max_size) {
                    stored = Some((file.clone(), size));
                }
            }
        }
    }
    let bytes = pending.file().metadata().map(|m| m.len()).unwrap_or(0);
    pending.commit(if uri.executable { 0o755 } else { 0o644 })?;
    let kind = name.file_name().and_then(|n| Kind::of(&n.to_string_lossy()));
    if let (false, true, Some(kind)) = (uri.executable, uri.extract, kind) {
        let bounds = Bounds { max_size: spec.limits.max_size, xz_memlimit: spec.limits.xz_memlimit };
        extract::extract(root, &name, kind, bounds)?;
    }
    Ok(Fetched { stored, bytes, cached: from_cache })
}

/// `value` into `pending`: a download, or a copy of a local file (read as this user).
async fn download_into(
    value: &str,
    pending: &mut Pending,
    http: &Http,
    client: &mut Option<reqwest::Client>,
) -> Result<(), String> {
    let local = value.strip_prefix("file://").or(value.starts_with('/').then_some(value));
    if let Some(path) = local {
        let mut from = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        return copy_into(&mut from, pending, http.max_size);
    }
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err("only http://, https://, file:// and absolute paths are supported".to_owned());
    }
    if client.is_none() {
        *client = Some(download::client(http)?);
    }
    match client {
        Some(client) => download::get(client, value, http, pending).await,
        None => Err("no HTTP client".to_owned()),
    }
}

fn copy_into(from: &mut std::fs::File, pending: &mut Pending, max: u64) -> Result<(), String> {
    let copied = io::copy(&mut from.take(max.saturating_add(1)), pending.file()).map_err(|e| e.to_string())?;
    if copied > max {
        return Err(format!("the file passes the {max}-byte cap"));
    }
    Ok(())
}

/// Copies the downloaded file into the cache; its size.
fn keep(pending: &mut Pending, cache: &Root, file: &Path, max: u64) -> Result<u64, String> {
    let mut copy = cache.create(file)?;
    let source = pending.file();
    source.rewind().map_err(|e| e.to_string())?;
    let size = io::copy(&mut source.take(max), copy.file()).map_err(|e| e.to_string())?;
    copy.file().flush().map_err(|e| e.to_string())?;
    copy.commit(0o600)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(value: &str, output: Option<&str>) -> Result<PathBuf, String> {
        let uri = UriSpec {
            value: value.into(),
            output_file: output.map(Into::into),
            executable: false,
            extract: false,
            cache: None,
        };
        file_name(&uri)
    }

    #[test]
    fn names_as_upstream() {
        assert_eq!(named("http://h/a/b/app.tar.gz?x=1", None).unwrap(), PathBuf::from("app.tar.gz"));
        assert!(named("http://h/", None).is_err());
        assert!(named("http://h/x", Some("../x")).unwrap_err().contains("leaves"));
        assert_eq!(named("http://h/x", Some("./a/b")).unwrap(), PathBuf::from("a/b"));
    }
}
