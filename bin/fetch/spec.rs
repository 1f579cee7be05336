//! What the daemon tells the fetch helper (JSON on its stdin, never in argv: URIs may
//! carry credentials, and argv is world-readable in `/proc`) and what the helper
//! answers (JSON on its stdout; a failure is one line on stderr and exit status 1).

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// Limits of fetching.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Largest download, and largest total unpacked from one archive.
    pub max_size: u64,
    /// Longest all the URIs of one task may take, downloads and unpacking included.
    pub timeout: Duration,
    /// Longest wait for the next byte of a download (upstream's
    /// `--fetcher_stall_timeout`, 60 s).
    pub stall: Duration,
    /// Largest total kept in the cache (per executor, all users).
    pub cache_size: u64,
    /// The xz decoder's memory limit: 72 MiB decodes what `xz -0` to `xz -9` (64 MiB
    /// dictionary, about 65 MiB to decode) make, as upstream's libarchive does; a
    /// header asking for more is refused naming the limit.
    pub xz_memlimit: u64,
    /// The helper's `RLIMIT_DATA` (see `child.rs` for why this limit). 128 MiB: the
    /// helper peaks at about 12.5 MiB resident (most of it the program's own pages)
    /// through every hostile archive in the tests, the xz decoder may take its 72 MiB
    /// limit, and the rest is headroom for TLS, buffers and the resolver's thread. An
    /// unguarded tar crate reading a 1.2 GB long name fails here with "out of memory"
    /// at 28 MiB under a 32 MiB limit (measured), instead of taking the host's memory.
    pub memory: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 4 << 30,
            timeout: Duration::from_secs(600),
            stall: Duration::from_secs(60),
            cache_size: 8 << 30,
            xz_memlimit: 72 << 20,
            memory: 128 << 20,
        }
    }
}

/// One fetch: a task's URIs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    /// Become this user first (when the helper runs as root).
    pub user: Option<String>,
    /// Where the files go: the task's sandbox.
    pub sandbox: PathBuf,
    pub uris: Vec<UriSpec>,
    pub limits: Limits,
    /// An extra CA bundle for https (`--fetcher_ca_file`).
    pub ca_file: Option<PathBuf>,
    /// The user's cache directory, when caching is on.
    pub cache: Option<PathBuf>,
}

/// One URI, as `CommandInfo.URI` says, with what to do with the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UriSpec {
    pub value: String,
    pub output_file: Option<String>,
    pub executable: bool,
    pub extract: bool,
    pub cache: Option<CacheUse>,
}

/// The cache for one URI: a file in the user's cache directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CacheUse {
    /// Copy from this file if it is there (else download, and keep it there).
    Hit(String),
    /// Download, and keep a copy in this file.
    Store(String),
}

/// The helper's answer on success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Cache files written: (index of the URI, file name, size).
    pub stored: Vec<(usize, String, u64)>,
    /// The helper's peak resident memory (`VmHWM`), in KiB.
    pub peak_kib: u64,
    /// Each URI fetched, in order: (index of the URI, bytes, milliseconds, from the cache).
    #[serde(default)]
    pub fetched: Vec<(usize, u64, u64, bool)>,
}

/// `value` as the log shows it: [`redact`]ed, and without its query and fragment (a
/// presigned URL's signature is a credential too).
pub fn for_log(value: &str) -> String {
    let redacted = redact(value);
    match redacted.find(['?', '#']) {
        Some(at) => format!("{}?...", &redacted[..at]),
        None => redacted,
    }
}

/// `value` with its whole user information (a user name is often a token, as in
/// `https://TOKEN@host/`) replaced by `***`, for messages, logs and the state file. Done
/// on the text, not through a URL parser, so a URI that does not parse (a port past
/// 65535) is redacted too: everything between `://` and the last `@` of the authority.
pub fn redact(value: &str) -> String {
    let Some(scheme) = value.find("://") else { return value.to_owned() };
    let start = scheme + 3;
    let rest = &value[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}***@{}", &value[..start], &rest[at + 1..]),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_shows_neither_user_information_nor_query() {
        assert_eq!(for_log("https://u:p@h/a/b.tgz?X-Amz-Signature=s#f"), "https://***@h/a/b.tgz?...");
        assert_eq!(for_log("/srv/app.tar.gz"), "/srv/app.tar.gz");
    }

    #[test]
    fn user_information_is_hidden_whole_even_when_the_uri_does_not_parse() {
        assert_eq!(redact("http://u:p@h/x"), "http://***@h/x");
        assert_eq!(redact("https://TOKEN@h:1/x?a@b"), "https://***@h:1/x?a@b");
        assert_eq!(redact("http://u:p@h:99999/x"), "http://***@h:99999/x");
        assert_eq!(redact("http://a@b@h"), "http://***@h");
        assert_eq!(redact("http://h/x@y"), "http://h/x@y");
        assert_eq!(redact("/etc/hostname"), "/etc/hostname");
    }
}
