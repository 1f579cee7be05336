//! The host's configuration file (issue 22, item 3): the daemon's options written once
//! per host, so that a drop-in, which the agent starts as `mesos-executor
//! --launcher_dir=...` and nothing else, can be configured without a wrapper script.
//!
//! Where: `--config=<path>`; else, outside drop-in mode, `MESOS_EXECUTOR_CONFIG`; else
//! [`DEFAULT_PATH`] when it exists. A drop-in never reads the variable: the agent merges
//! the task's environment into its executor's, and a task must not choose the daemon's
//! configuration. The file itself is host configuration, so a drop-in reads it.
//!
//! What: TOML, one `key = value` per flag, the key being the flag's name without `--`
//! (`log_format = "json"`, `max_tasks = 8`). Each value goes through the flag's own
//! parser and becomes that flag's default: a flag on the command line wins, then its
//! environment form (where read), then the file. `launcher_dir` (the agent's), the
//! flags the agent sets for one task (`task_command`, capabilities, ...) and the
//! internal flags are not options. A malformed file, an unknown key or a bad value is
//! bad usage (exit 64), named with the file and the line.
//!
//! Who may write it: the daemon may run as root and start tasks as other users, so the
//! file is a security boundary. The file and every directory above it (as named, and
//! after links are resolved) must belong to root or to the daemon's own user, and must not be writable
//! by group or others (a directory may be, with the sticky bit, as `/tmp`: others cannot
//! replace what is not theirs there). This is the rule sshd applies to its users'
//! files (`StrictModes`). Anything else is refused, exit 64, saying why.

use std::{
    ffi::OsString,
    fmt,
    io::Read as _,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

/// Where the file is looked for when nothing names one.
pub const DEFAULT_PATH: &str = "/etc/mesos-executor/config.toml";

/// The variable naming the file (not read in drop-in mode).
pub const ENV: &str = "MESOS_EXECUTOR_CONFIG";

/// Flags a file may not set: the agent's own, and the file's.
const NOT_OPTIONS: [&str; 4] = ["launcher_dir", "config", "help", "version"];

/// Flags the agent sets for one task (its command, environment, capabilities, TTY,
/// container): a host's file that set them would do it to every task on the host.
const PER_TASK: [&str; 9] = [
    "task_command",
    "task_environment",
    "task_launch_info",
    "task_supplementary_groups",
    "effective_capabilities",
    "bounding_capabilities",
    "tty_slave_path",
    "rootfs",
    "sandbox_directory",
];

/// The longest file read.
const MAX_LEN: u64 = 1 << 20;

/// One option from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The flag's name, without `--`.
    pub key: String,
    pub value: String,
    /// 1-based.
    pub line: usize,
}

/// Why the file cannot be used; says which file, and the line where there is one.
#[derive(Debug)]
pub struct ConfigError {
    path: PathBuf,
    line: Option<usize>,
    why: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "config file {}, line {line}: {}", self.path.display(), self.why),
            None => write!(f, "config file {}: {}", self.path.display(), self.why),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    fn new(path: &Path, line: Option<usize>, why: impl Into<String>) -> Self {
        ConfigError { path: path.to_owned(), line, why: why.into() }
    }
}

/// The file to read: `--config` from `argv`, else [`ENV`] (unless `drop_in`), else
/// [`DEFAULT_PATH`]; with whether it must exist (it must when named).
pub fn locate(argv: &[String], drop_in: bool, env: impl Fn(&str) -> Option<OsString>) -> (PathBuf, bool) {
    let args = argv.get(1..).unwrap_or_default();
    let flagged = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
        Some(rest) if rest.starts_with('=') => Some(rest[1..].to_owned()),
        Some("") => args.get(i + 1).cloned(),
        _ => None,
    });
    if let Some(path) = flagged {
        return (PathBuf::from(path), true);
    }
    if !drop_in && let Some(path) = env(ENV).filter(|p| !p.is_empty()) {
        return (PathBuf::from(path), true);
    }
    (PathBuf::from(DEFAULT_PATH), false)
}

/// Reads the file at `path` if it may be trusted; `Ok(None)` when it is absent and not
/// `required`.
///
/// # Errors
/// The file is missing (and required), unreadable, writable by others than root and the
/// daemon's user, or not TOML of keys and strings or integers.
pub fn read(path: &Path, required: bool) -> Result<Option<Vec<Entry>>, ConfigError> {
    let canonical = match std::fs::canonicalize(path) {
        Ok(canonical) => canonical,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => return Err(ConfigError::new(path, None, format!("cannot open it: {e}"))),
    };
    let me = nix::unistd::geteuid().as_raw();
    // The directories of the path as named too: a link there, replaced by whoever may
    // write its directory, would name another file.
    let named = std::env::current_dir().map(|cwd| cwd.join(path)).unwrap_or_else(|_| path.to_owned());
    for dir in canonical.ancestors().skip(1).chain(named.ancestors().skip(1)) {
        let meta =
            std::fs::metadata(dir).map_err(|e| ConfigError::new(path, None, format!("{}: {e}", dir.display())))?;
        check_owner(path, dir, &meta, me, true)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&canonical)
        .map_err(|e| ConfigError::new(path, None, format!("cannot open it: {e}")))?;
    let meta = file.metadata().map_err(|e| ConfigError::new(path, None, format!("cannot stat it: {e}")))?;
    if !meta.is_file() {
        return Err(ConfigError::new(path, None, "not a regular file"));
    }
    check_owner(path, &canonical, &meta, me, false)?;
    let mut text = String::new();
    (&mut file)
        .take(MAX_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| ConfigError::new(path, None, format!("cannot read it as UTF-8 text: {e}")))?;
    if text.len() as u64 > MAX_LEN {
        return Err(ConfigError::new(path, None, format!("longer than {MAX_LEN} bytes")));
    }
    parse(path, &text).map(Some)
}

/// Refuses `what` (the file, or a directory above it) unless root or `me` owns it and
/// neither its group nor others may write it (a sticky directory excepted).
fn check_owner(path: &Path, what: &Path, meta: &std::fs::Metadata, me: u32, dir: bool) -> Result<(), ConfigError> {
    const STICKY: u32 = 0o1000;
    if meta.uid() != 0 && meta.uid() != me {
        return Err(ConfigError::new(
            path,
            None,
            format!("{} belongs to uid {}, neither root nor the daemon's user (uid {me})", what.display(), meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 && !(dir && meta.mode() & STICKY != 0) {
        return Err(ConfigError::new(
            path,
            None,
            format!("{} is writable by its group or by others (mode {:o})", what.display(), meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// The entries of `text`, a TOML table of strings and integers.
fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    type Spanned<T> = toml::Spanned<T>;
    let line_of = |offset: usize| text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1);
    let table: std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            let line = e.span().map(|span| line_of(span.start));
            ConfigError::new(path, line, format!("not TOML: {}", e.message()))
        })?;
    let mut entries = Vec::new();
    for (key, value) in table {
        let line = line_of(key.span().start);
        let value = match value.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            other => {
                return Err(ConfigError::new(
                    path,
                    Some(line),
                    format!("{} must be a string or an integer, not a {}", key.get_ref(), other.type_str()),
                ));
            }
        };
        entries.push(Entry { key: key.into_inner(), value, line });
    }
    entries.sort_by_key(|e| e.line);
    Ok(entries)
}

/// `command` with the file's values as its flags' defaults: a flag given on the command
/// line, or its environment form where read, wins. `check` parses what clap keeps as a
/// string (durations, sizes), as the daemon will later: a bad value is found here, where
/// its line is known.
///
/// # Errors
/// An unknown key, or a value the flag's own parser or `check` refuses, with its line.
pub fn apply(
    command: clap::Command,
    path: &Path,
    entries: &[Entry],
    check: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<clap::Command, ConfigError> {
    let mut command = command;
    for entry in entries {
        let known = command.get_arguments().any(|a| {
            a.get_id().as_str() == entry.key
                && a.get_long() == Some(entry.key.as_str())
                && !a.is_hide_set()
                && !NOT_OPTIONS.contains(&entry.key.as_str())
        });
        if NOT_OPTIONS.contains(&entry.key.as_str()) {
            let why = format!("{} is not an option: it is for the command line alone", entry.key);
            return Err(ConfigError::new(path, Some(entry.line), why));
        }
        if PER_TASK.contains(&entry.key.as_str()) {
            let why = format!("{} is the agent's, for one task: a host's file would set it for every task", entry.key);
            return Err(ConfigError::new(path, Some(entry.line), why));
        }
        if !known {
            return Err(ConfigError::new(
                path,
                Some(entry.line),
                format!("unknown option {:?} (the options are the flags' names without --; see --help)", entry.key),
            ));
        }
        // The flag's own parser decides, as on the command line; the environment is not
        // read for this check.
        let probe = command.clone().mut_args(|a| a.env(None::<&'static str>));
        if let Err(e) =
            probe.try_get_matches_from(["mesos-executor".to_owned(), format!("--{}={}", entry.key, entry.value)])
        {
            let why = e.to_string();
            let why = why.lines().next().unwrap_or_default().trim_start_matches("error: ");
            return Err(ConfigError::new(path, Some(entry.line), why.to_owned()));
        }
        check(&entry.key, &entry.value).map_err(|why| ConfigError::new(path, Some(entry.line), why))?;
        command = command.mut_arg(entry.key.as_str(), |a| a.default_value(entry.value.clone()));
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn the_flag_then_the_variable_outside_drop_in_then_the_default() {
        let env = |name: &str| (name == ENV).then(|| OsString::from("/from/env"));
        let none = |_: &str| None;
        assert_eq!(locate(&argv(&["x", "--config=/a"]), true, env), (PathBuf::from("/a"), true));
        assert_eq!(locate(&argv(&["x", "--config", "/b"]), false, env), (PathBuf::from("/b"), true));
        assert_eq!(locate(&argv(&["x"]), false, env), (PathBuf::from("/from/env"), true));
        assert_eq!(locate(&argv(&["x", "--launcher_dir=/l"]), true, env), (PathBuf::from(DEFAULT_PATH), false));
        assert_eq!(locate(&argv(&["x"]), false, none), (PathBuf::from(DEFAULT_PATH), false));
        assert_eq!(locate(&argv(&["--config=/argv0"]), false, none), (PathBuf::from(DEFAULT_PATH), false));
    }

    #[test]
    fn entries_carry_their_lines_and_errors_name_file_and_line() {
        let path = Path::new("/etc/x.toml");
        let entries = parse(path, "# comment\nlog_format = \"json\"\n\nmax_tasks = 3\n").unwrap();
        assert_eq!(
            entries,
            vec![
                Entry { key: "log_format".into(), value: "json".into(), line: 2 },
                Entry { key: "max_tasks".into(), value: "3".into(), line: 4 },
            ]
        );
        let bad = parse(path, "a = \"x\"\nb = \n").unwrap_err().to_string();
        assert!(bad.starts_with("config file /etc/x.toml, line 2: not TOML"), "{bad}");
        let table = parse(path, "a = \"x\"\n[b]\nc = 1\n").unwrap_err().to_string();
        assert!(table.contains("line 2") && table.contains("string or an integer"), "{table}");
    }

    #[test]
    fn a_link_in_a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let (safe, open) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let target = safe.path().join("config.toml");
        std::fs::write(&target, "max_tasks = 2\n").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = open.path().join("config.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link, true).is_ok());
        std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read(&link, true).unwrap_err().to_string();
        assert!(e.contains(&open.path().display().to_string()) && e.contains("writable"), "{e}");
    }

    #[test]
    fn missing_is_fine_unless_named() {
        assert!(read(Path::new("/no/such/config.toml"), false).unwrap().is_none());
        let e = read(Path::new("/no/such/config.toml"), true).unwrap_err().to_string();
        assert!(e.contains("/no/such/config.toml") && e.contains("cannot open"), "{e}");
    }

    #[test]
    fn a_file_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "max_tasks = 2\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read(&path, true).unwrap().unwrap().len(), 1);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = read(&path, true).unwrap_err().to_string();
        assert!(e.contains("writable by its group or by others"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read(&path, true).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()) && e.contains("writable"), "{e}");
    }
}
