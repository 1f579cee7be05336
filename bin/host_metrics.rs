//! Metrics for a host (issue 22, item 4): where many executors on one host put their
//! metrics without clashing. `--metrics_dir` names a shared directory (node_exporter's
//! textfile collector); each executor writes one file there, named for its framework and
//! executor ids ([`file_name`]), and removes it when it ends (its watchdog does, when the
//! daemon is killed). Two executors with the same ids on one host share that name: the
//! same labels, whichever wrote last; when one ends the file is gone until the other's
//! next write (every `--metrics_interval`). `--metrics_address` takes `host:port` (port 0: the system chooses,
//! and the daemon logs what it chose) or `unix:<path>`, a unix socket: a relative path is
//! one file name in the sandbox, and a path ending in `/` is a directory where the socket
//! gets a name of this executor's own ([`socket_name`]). A socket is bound before the
//! watchdog starts, and the watchdog is given it only if this daemon made it: the same
//! ids, or the same path, make a second daemon's bind fail, and the first's socket is
//! left alone.
//!
//! The ids come from the agent's environment and are not trusted to make a path: a name
//! keeps only `[A-Za-z0-9_.-]` of each id, cut short, plus a digest of both ids whole, so
//! `../`, slashes and long ids stay one file name inside the directory, and two executors
//! whose ids differ only in what was cut or replaced still get two names.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// Where the metrics endpoint listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsAddress {
    Tcp(SocketAddr),
    /// A unix socket; relative to the sandbox, or a directory when it ends in `/`.
    Unix(PathBuf),
}

/// Parses `--metrics_address` (clap's value parser). A relative socket path must be one
/// file name: the sandbox holds what the task's URIs brought, links included, and the
/// daemon (maybe root) must not follow one of them to bind elsewhere.
///
/// # Errors
/// Neither `host:port` nor `unix:<path>`, or a relative path of more than a name.
pub fn parse_address(value: &str) -> Result<MetricsAddress, String> {
    match value.strip_prefix("unix:") {
        Some("") => Err("unix: needs a path".to_owned()),
        Some(path) if !path.starts_with('/') && (path.contains('/') || path == "." || path == "..") => {
            Err(format!("unix:{path}: a relative socket path is one file name in the sandbox"))
        }
        Some(path) => Ok(MetricsAddress::Unix(PathBuf::from(path))),
        None => value
            .parse()
            .map(MetricsAddress::Tcp)
            .map_err(|e| format!("{e}: want an address such as 127.0.0.1:9105 (port 0: any) or unix:<path>")),
    }
}

impl MetricsAddress {
    /// The address to bind: a relative socket path is in `sandbox`, a directory gets
    /// this executor's socket name.
    pub fn resolve(self, sandbox: &Path, framework_id: &str, executor_id: &str) -> MetricsAddress {
        match self {
            MetricsAddress::Tcp(address) => MetricsAddress::Tcp(address),
            MetricsAddress::Unix(path) => {
                let path = sandbox.join(path);
                if path.as_os_str().to_string_lossy().ends_with('/') {
                    MetricsAddress::Unix(path.join(socket_name(framework_id, executor_id)))
                } else {
                    MetricsAddress::Unix(path)
                }
            }
        }
    }
}

/// At most this many characters of each id in a file name.
const ID_CHARS: usize = 60;

/// `[A-Za-z0-9_.-]` of `id` (anything else `_`), at most [`ID_CHARS`] of it.
fn sanitize(id: &str) -> String {
    id.chars()
        .take(ID_CHARS)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' })
        .collect()
}

/// 16 hex digits of a SHA-256 of both ids, length-prefixed (`ab`,`c` and `a`,`bc` differ).
fn digest(framework_id: &str, executor_id: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for id in [framework_id, executor_id] {
        context.update(&(id.len() as u64).to_be_bytes());
        context.update(id.as_bytes());
    }
    context.finish().as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The executor's metrics file name in a shared directory: one component, never hidden,
/// at most 160 bytes, ending in `.prom` (what the textfile collector reads).
pub fn file_name(framework_id: &str, executor_id: &str) -> String {
    format!(
        "mesos-executor_{}_{}_{}.prom",
        sanitize(framework_id),
        sanitize(executor_id),
        digest(framework_id, executor_id)
    )
}

/// The executor's socket name in a directory: short, as a socket path must be (108
/// bytes in all).
pub fn socket_name(framework_id: &str, executor_id: &str) -> String {
    format!("mesos-executor-{}.sock", digest(framework_id, executor_id))
}

/// Removes `path` (a file this daemon made) if it is there; says so when it cannot.
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove a file at exit"),
    }
    // A write cut short by a SIGKILL leaves its temporary file beside it: the writer's
    // `.<name>.<32 hex>.tmp`, and nothing else, goes too (unlinked, never followed).
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(random) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        if random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_takes_a_write_cut_short_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mesos-executor_fw_ex_0123456789abcdef.prom");
        let cut = dir.path().join(format!(".mesos-executor_fw_ex_0123456789abcdef.prom.{}.tmp", "a1".repeat(16)));
        let others = [
            dir.path().join("node.prom"),
            dir.path().join(".mesos-executor_fw_ex_0123456789abcdef.prom.not-ours.tmp"),
            dir.path().join(format!(".other.prom.{}.tmp", "a1".repeat(16))),
        ];
        for f in others.iter().chain([&file, &cut]) {
            std::fs::write(f, "x").unwrap();
        }
        remove(&file);
        assert!(!file.exists() && !cut.exists());
        assert!(others.iter().all(|f| f.exists()), "only the executor's own files go");
    }

    #[test]
    fn hostile_ids_make_one_plain_name() {
        for (fw, ex) in [("../..", "/etc/passwd"), ("a/b", "."), ("", ""), ("fw", &"é".repeat(500)), ("x\0y", "\n")] {
            let name = file_name(fw, ex);
            assert!(!name.contains('/') && !name.starts_with('.') && name.ends_with(".prom"), "{name}");
            assert!(name.len() <= 160, "{} bytes: {name}", name.len());
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)), "{name}");
        }
        assert_eq!(file_name("fw", "ex"), file_name("fw", "ex"), "the same executor, the same name");
    }

    #[test]
    fn ids_that_sanitize_alike_still_differ() {
        assert_ne!(file_name("a/b", "c"), file_name("a_b", "c"));
        assert_ne!(file_name("ab", "c"), file_name("a", "bc"));
        let long = "x".repeat(100);
        assert_ne!(file_name("fw", &format!("{long}1")), file_name("fw", &format!("{long}2")));
        assert_ne!(socket_name("a/b", "c"), socket_name("a_b", "c"));
    }

    #[test]
    fn addresses_are_tcp_or_unix_sockets_beneath_the_sandbox_or_in_a_directory() {
        let sandbox = Path::new("/sandbox");
        assert_eq!(parse_address("127.0.0.1:0"), Ok(MetricsAddress::Tcp("127.0.0.1:0".parse().unwrap())));
        assert!(parse_address("localhost").is_err() && parse_address("unix:").is_err());
        for beneath in ["unix:fetched/link/m.sock", "unix:..", "unix:./m.sock"] {
            assert!(parse_address(beneath).is_err(), "{beneath}");
        }
        let unix = |p: &str| parse_address(p).unwrap().resolve(sandbox, "fw", "ex");
        assert_eq!(unix("unix:/run/m.sock"), MetricsAddress::Unix("/run/m.sock".into()));
        assert_eq!(unix("unix:m.sock"), MetricsAddress::Unix("/sandbox/m.sock".into()));
        assert_eq!(unix("unix:/run/me/"), MetricsAddress::Unix(Path::new("/run/me").join(socket_name("fw", "ex"))));
    }
}
