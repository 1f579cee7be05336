//! The state file for operators: `mesos-executor-state.json` in the sandbox (or
//! `--state_file`), replaced atomically (a temporary file, then a rename) whenever
//! something changes, so `jq` or a person can look at any moment. It keeps the live
//! tasks, those whose last update is unacknowledged, and the last [`MAX_ENDED`] that
//! ended and were acknowledged.
//! `mesos-executor state --sandbox DIR` prints it as a table.
//!
//! # Schema
//! ```json
//! {
//!   "executor_id": "my-executor", "framework_id": "fw-1",
//!   "updated_at": 1733067000.5,          // seconds since the epoch
//!   "tasks": [{
//!     "task_id": "web-1",
//!     "state": "TASK_RUNNING",           // latest state reported
//!     "message": null, "reason": null,   // of that update (reason by name)
//!     "healthy": true,                   // latest health check result, if any
//!     "check_status": {"type": "HTTP", "http": {"status_code": 200}},  // latest check, if any
//!     "acknowledged": false,             // whether the agent acknowledged that update
//!     "pid": 4242,                       // process (group leader), once started
//!     "started_at": 1733066990.1,        // when it started
//!     "exit": null                       // how its process ended: "Command exited with status 0", ...
//!   }]
//! }
//! ```

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use mesos_executor::{executor::process::Exit, wire};
use serde::{Deserialize, Serialize};

use crate::book::Report;

/// The file's name in the sandbox.
pub const FILE_NAME: &str = "mesos-executor-state.json";

/// How many ended tasks (terminal, acknowledged) the file keeps, the oldest forgotten
/// first: a custom executor lives for as long as its framework and may run millions.
pub const MAX_ENDED: usize = 256;

/// Shortest time between two writes; changes in between are written together.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// One task, as the file shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task_id: String,
    pub state: String,
    pub message: Option<String>,
    pub reason: Option<String>,
    pub healthy: Option<bool>,
    pub check_status: Option<serde_json::Value>,
    pub acknowledged: bool,
    pub pid: Option<u32>,
    pub started_at: Option<f64>,
    pub exit: Option<String>,
    /// The latest update's uuid (hex), to match its acknowledgement.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uuid: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateDoc {
    pub executor_id: String,
    pub framework_id: String,
    pub updated_at: f64,
    pub tasks: Vec<TaskRecord>,
}

/// The file and what it holds.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    executor_id: String,
    framework_id: String,
    tasks: BTreeMap<String, TaskRecord>,
    /// Ended tasks in the order they ended, at most [`MAX_ENDED`].
    ended: VecDeque<String>,
    dirty: bool,
    /// The last write failed (said once, not on every change).
    failing: bool,
    last_write: Option<std::time::Instant>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StateFile {
    /// A state file at `path` for this executor.
    pub fn new(path: PathBuf, executor_id: String, framework_id: String) -> Self {
        StateFile {
            path,
            executor_id,
            framework_id,
            tasks: BTreeMap::new(),
            ended: VecDeque::new(),
            dirty: true,
            failing: false,
            last_write: None,
        }
    }

    fn task(&mut self, task_id: &str) -> &mut TaskRecord {
        self.dirty = true;
        self.tasks
            .entry(task_id.to_owned())
            .or_insert_with(|| TaskRecord { task_id: task_id.to_owned(), ..Default::default() })
    }

    /// An update was sent, with this uuid.
    pub fn reported(&mut self, report: &Report, uuid: [u8; 16]) {
        let record = self.task(&report.task_id);
        record.state = report.state.as_str_name().to_owned();
        record.message.clone_from(&report.message);
        record.reason = report.reason.map(|r| r.as_str_name().to_owned());
        if report.healthy.is_some() {
            record.healthy = report.healthy;
        }
        record.check_status = report.check_status.as_ref().and_then(|c| wire::to_json_value(c).ok());
        record.acknowledged = false;
        record.uuid = Some(hex(&uuid));
    }

    /// The agent acknowledged the update with `uuid`.
    pub fn acknowledged(&mut self, task_id: &str, uuid: &[u8]) {
        let uuid = hex(uuid);
        if let Some(record) = self.tasks.get_mut(task_id)
            && record.uuid.as_deref() == Some(uuid.as_str())
        {
            record.acknowledged = true;
            self.dirty = true;
            let terminal = mesos_executor::TaskState::from_str_name(&record.state).is_some_and(|s| s.is_terminal());
            if terminal && !self.ended.contains(&record.task_id) {
                self.ended.push_back(task_id.to_owned());
            }
            while self.ended.len() > MAX_ENDED {
                if let Some(oldest) = self.ended.pop_front() {
                    self.tasks.remove(&oldest);
                }
            }
        }
    }

    /// The task's process started.
    pub fn started(&mut self, task_id: &str, pid: Option<u32>) {
        let record = self.task(task_id);
        record.pid = pid;
        record.started_at = Some(now());
    }

    /// The task's process ended.
    pub fn exited(&mut self, task_id: &str, exit: &Result<Exit, String>) {
        let record = self.task(task_id);
        record.exit = Some(match exit {
            Ok(exit) => exit.message(),
            Err(e) => format!("unknown: {e}"),
        });
    }

    /// Whether anything changed since the last write.
    pub fn dirty(&self) -> bool {
        self.dirty
    }

    /// Whether a write now would come less than [`MIN_INTERVAL`] after the last one (a
    /// burst of a thousand changes is a few writes, not a thousand).
    pub fn too_soon(&self) -> bool {
        self.last_write.is_some_and(|t| t.elapsed() < MIN_INTERVAL)
    }

    /// What the file holds now, when anything changed; the changes count as written
    /// from here on. The caller writes it ([`Snapshot::write`]) wherever it likes (the
    /// supervisor: on the blocking pool, never on the loop that sends updates) and says
    /// how that went ([`written`](Self::written)).
    pub fn take(&mut self) -> Option<Snapshot> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        self.last_write = Some(std::time::Instant::now());
        let doc = StateDoc {
            executor_id: self.executor_id.clone(),
            framework_id: self.framework_id.clone(),
            updated_at: now(),
            tasks: self.tasks.values().cloned().collect(),
        };
        Some(Snapshot { path: self.path.clone(), doc })
    }

    /// How the write of [`take`](Self::take)'s text went. A failure is logged once (not
    /// at every change) and the changes wait for the next write; it never stops the
    /// executor.
    pub fn written(&mut self, result: std::io::Result<()>) {
        match result {
            Ok(()) => self.failing = false,
            Err(e) => {
                self.dirty = true;
                if !self.failing {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write the state file");
                }
                self.failing = true;
            }
        }
    }

    /// Writes the file here and now if anything changed ([`take`](Self::take), then
    /// [`write_atomically`]: a reader never
    /// sees half a file).
    pub fn flush(&mut self) {
        if let Some(snapshot) = self.take() {
            let result = snapshot.write();
            self.written(result);
        }
    }
}

/// The file's contents at one moment, to be written.
#[derive(Debug)]
pub struct Snapshot {
    pub path: PathBuf,
    pub doc: StateDoc,
}

impl Snapshot {
    /// Serialises and writes the file
    /// ([`write_atomically`]: a reader never
    /// sees half a file). Both take their time with thousands of tasks on a busy disk.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(self) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.doc).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &text)
    }
}

/// Who reads the directory holding a file for operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// The file's name alone (the state file, the sandbox's metrics file): a sticky
    /// directory keeps others from replacing it.
    ItsName,
    /// Every file there (node_exporter's textfile collector reads each `*.prom` of
    /// `--metrics_dir`): whoever may add a file forges series, sticky bit or not.
    EveryFile,
}

/// Whether another user than the daemon's may put a file of its own at `path` (a task
/// forging the state or metrics file), or beside it where `read` is
/// [`ReadBy::EveryFile`]: the directory holding it belongs to someone else, or is
/// writable by its group or by all (without the sticky bit, for [`ReadBy::ItsName`]).
/// `None` when the directory cannot be looked at.
pub fn forgeable_by_others(path: &Path, read: ReadBy) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let meta = std::fs::metadata(dir).ok()?;
    let sticky = meta.mode() & 0o1000 != 0 && read == ReadBy::ItsName;
    let shared = meta.mode() & 0o022 != 0 && !sticky;
    Some(meta.uid() != nix::unistd::geteuid().as_raw() || shared)
}

/// The state file of the executor whose sandbox is `sandbox` (or at `file`), as a table.
///
/// # Errors
/// The file cannot be read or is not a state file; the message names it.
pub fn table(sandbox: Option<&Path>, file: Option<&Path>) -> Result<String, String> {
    let path = match (file, sandbox) {
        (Some(file), _) => file.to_path_buf(),
        (None, Some(sandbox)) => sandbox.join(FILE_NAME),
        (None, None) => PathBuf::from(FILE_NAME),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: StateDoc =
        serde_json::from_str(&text).map_err(|e| format!("{} is not a state file: {e}", path.display()))?;
    let mut rows = vec![["TASK", "STATE", "HEALTHY", "ACKED", "PID", "EXIT"].map(str::to_owned).to_vec()];
    for t in &doc.tasks {
        rows.push(vec![
            t.task_id.clone(),
            t.state.trim_start_matches("TASK_").to_owned(),
            t.healthy.map_or("-".to_owned(), |h| if h { "yes" } else { "no" }.to_owned()),
            if t.acknowledged { "yes" } else { "no" }.to_owned(),
            t.pid.map_or("-".to_owned(), |p| p.to_string()),
            t.exit.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out =
        format!("executor {} of framework {}, {} tasks\n", doc.executor_id, doc.framework_id, doc.tasks.len());
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Writes `text` to `path` atomically: a temporary file in the same directory, then a
/// rename, so a reader never sees half a file (the state file, a group's hosts file).
///
/// The directory may be writable by others (a task's user may share it): the temporary
/// file has an unpredictable name and is created with `O_EXCL | O_NOFOLLOW`, so a planted
/// file or link is never opened, and the rename replaces a link at `path` instead of
/// following it. (The library writes its metrics file the same way, privately.)
///
/// # Errors
/// The directory is not writable, or the rename fails.
pub(crate) fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt};
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        // No fsync: a reader never sees half a file, and these files are rewritten often;
        // a crash may lose the last write, which the next one replaces.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use mesos_executor::proto::v1::TaskState;

    use super::*;

    #[test]
    fn updates_acknowledgements_and_exits_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut file = StateFile::new(path.clone(), "e1".into(), "f1".into());
        let report = |state, message: Option<&str>| Report {
            task_id: "t1".into(),
            state,
            message: message.map(Into::into),
            reason: None,
            healthy: None,
            check_status: None,
        };
        file.reported(&report(TaskState::TaskRunning, None), [1; 16]);
        file.started("t1", Some(42));
        file.flush();
        let doc: StateDoc = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            (doc.tasks[0].state.as_str(), doc.tasks[0].pid, doc.tasks[0].acknowledged),
            ("TASK_RUNNING", Some(42), false)
        );
        file.acknowledged("t1", &[2; 16]);
        file.flush();
        assert!(
            !serde_json::from_str::<StateDoc>(&std::fs::read_to_string(&path).unwrap()).unwrap().tasks[0].acknowledged,
            "another update's ack"
        );
        file.acknowledged("t1", &[1; 16]);
        file.exited("t1", &Ok(Exit::Code(0)));
        file.reported(&report(TaskState::TaskFinished, Some("done")), [3; 16]);
        file.flush();
        let shown = table(Some(dir.path()), None).unwrap();
        assert!(shown.contains("t1    FINISHED  -        no     42   Command exited with status 0"), "{shown}");
        assert!(table(Some(&dir.path().join("missing")), None).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn a_directory_others_may_write_is_told_apart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        let mode = |m: u32| std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(m)).unwrap();
        mode(0o755);
        let (name, every) = (ReadBy::ItsName, ReadBy::EveryFile);
        assert_eq!(forgeable_by_others(&file, name), Some(false));
        assert_eq!(forgeable_by_others(&file, every), Some(false));
        mode(0o777);
        assert_eq!(forgeable_by_others(&file, name), Some(true));
        mode(0o775);
        assert_eq!(forgeable_by_others(&file, name), Some(true), "its group may write");
        mode(0o1777);
        assert_eq!(forgeable_by_others(&file, name), Some(false), "sticky: others cannot replace our file");
        assert_eq!(forgeable_by_others(&file, every), Some(true), "sticky: others still add files beside it");
        mode(0o1755);
        assert_eq!(forgeable_by_others(&file, every), Some(false));
        assert_eq!(forgeable_by_others(Path::new("/"), name), Some(!nix::unistd::geteuid().is_root()));
        assert_eq!(forgeable_by_others(&dir.path().join("missing/x"), name), None);
    }

    #[test]
    fn taken_changes_count_as_written_until_the_write_fails() {
        let mut file = StateFile::new(PathBuf::from("/nonexistent-dir/state.json"), "e".into(), "f".into());
        file.started("t", Some(7));
        let snapshot = file.take().unwrap();
        assert_eq!(snapshot.path, PathBuf::from("/nonexistent-dir/state.json"));
        assert_eq!(snapshot.doc.tasks[0].pid, Some(7));
        assert!(file.take().is_none(), "nothing changed since");
        assert!(file.too_soon(), "a write just now");
        file.written(Err(std::io::Error::other("disk full")));
        assert!(file.dirty() && file.failing, "the changes wait for the next write");
        assert!(file.take().is_some());
        file.written(Ok(()));
        assert!(!file.dirty() && !file.failing);
    }

    #[test]
    fn it_keeps_the_live_tasks_and_the_last_ended_ones() {
        use mesos_executor::proto::v1::TaskState;
        let mut file = StateFile::new(PathBuf::from("/nonexistent-dir/state.json"), "e".into(), "f".into());
        let report = |id: &str, state| Report {
            task_id: id.to_owned(),
            state,
            message: None,
            reason: None,
            healthy: None,
            check_status: None,
        };
        file.reported(&report("live", TaskState::TaskRunning), [0; 16]);
        file.acknowledged("live", &[0; 16]);
        file.reported(&report("unacked", TaskState::TaskFinished), [1; 16]);
        for n in 0..MAX_ENDED + 10 {
            let id = format!("done-{n}");
            file.reported(&report(&id, TaskState::TaskFinished), [2; 16]);
            file.acknowledged(&id, &[2; 16]);
        }
        assert_eq!(file.tasks.len(), MAX_ENDED + 2, "the ended ones beyond the last {MAX_ENDED} are forgotten");
        assert!(file.tasks.contains_key("live") && file.tasks.contains_key("unacked"));
        assert!(!file.tasks.contains_key("done-0") && file.tasks.contains_key(&format!("done-{}", MAX_ENDED + 9)));
    }

    #[test]
    fn a_write_that_fails_is_kept_for_the_next_change() {
        let mut file = StateFile::new(PathBuf::from("/nonexistent-dir/state.json"), "e".into(), "f".into());
        file.started("t", None);
        file.flush();
        assert!(file.dirty && file.failing);
    }

    /// The copy of the library's writer keeps its guarantees: a link planted at the
    /// file's name is replaced, never written through, and no temporary file is left.
    #[test]
    fn write_atomically_never_writes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, "{}").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left");
        assert!(write_atomically(&dir.path().join("missing/state.json"), "{}").is_err());
    }
}
