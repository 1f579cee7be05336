//! Per-task log rotation (custom mode, `--task_log_max_size`): a task's stdout and stderr
//! come through pipes, and each is written to `stdout` (or `stderr`) in the task's
//! sandbox until the next write would pass the size; then `stdout` becomes `stdout.1`
//! (`stdout.1` becomes `stdout.2`, ...; past `--task_log_max_files` the oldest goes) and a
//! new `stdout` starts, so the agent's sandbox browser always shows the current one.
//!
//! Files are cut at a line's end, so no line is split across files (a single line
//! longer than the size is the exception: it is cut at the size; and so is one longer
//! than [`CARRY_MAX`], which is not held in memory until its end but written as it
//! comes, starting a new file if it does not fit in the current one). A reader and a writer
//! are joined by a bounded queue of chunks, so a slow disk does not hold the task up
//! until [`QUEUE_CHUNKS`] chunks are waiting. The disk work runs on blocking threads, a
//! batch of chunks at a time, never on the runtime's thread.
//!
//! The task owns the directory: every file is opened and renamed beneath the directory's
//! descriptor, never through a path and never through a symlink (`sandbox.rs`).
//!
//! Nothing ends a log but the end of its pipe: a write that fails (a full disk) is
//! logged once, its chunk dropped (the pipe is still drained, so the task never blocks),
//! and the next chunk tries again, reopening the file; when one succeeds, that is logged.

use std::{fs::File, io, io::Write as _, os::fd::OwnedFd, sync::Arc};

use rustix::fs::AtFlags;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    sync::mpsc,
};
use tracing::{info, warn};

/// Chunks read ahead of the disk (each at most [`CHUNK`] bytes).
pub const QUEUE_CHUNKS: usize = 256;
const CHUNK: usize = 64 * 1024;

/// Most bytes of an unfinished line held back waiting for its end.
pub const CARRY_MAX: usize = 1 << 20;

/// How one log is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Largest size of one file, in bytes.
    pub max_size: u64,
    /// Rotated files kept beside the current one.
    pub max_files: usize,
}

/// Parses a stout byte size: digits, then `B`, `KB`, `MB`, `GB` or `TB` (powers of
/// 1024, as stout's `Bytes::parse`).
///
/// # Errors
/// Anything else, or zero, or a size past `u64`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return Err(format!("{text:?} is not a size such as 10MB (units B, KB, MB, GB, TB)")),
    };
    let number: u64 = number.parse().map_err(|_| format!("{text:?} has no number"))?;
    let bytes = number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes == 0 {
        return Err(format!("{text:?} is zero"));
    }
    Ok(bytes)
}

/// Most chunks written in one trip to a blocking thread.
const BATCH: usize = 16;

/// Where a log goes: a file name beneath a task's directory.
#[derive(Debug, Clone)]
pub struct Target {
    /// The task's directory, opened when it was created.
    pub dir: Arc<OwnedFd>,
    /// `stdout` or `stderr`.
    pub name: &'static str,
    /// For the daemon's own log.
    pub task_id: String,
    /// Who the files it makes belong to (the task's user), when not the daemon.
    pub owner: Option<(rustix::fs::Uid, rustix::fs::Gid)>,
}

/// Copies `pipe` into `target` with rotation until the pipe closes and everything read
/// is on disk. Write errors are logged and survived (see the module docs).
pub async fn pump(pipe: impl AsyncRead + Unpin + Send + 'static, target: Target, rotation: Rotation) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE_CHUNKS);
    let reader = tokio::spawn(read(pipe, tx));
    let mut log = Log::new(target, rotation);
    let mut open = true;
    while open {
        let mut batch = Vec::new();
        match rx.recv().await {
            Some(chunk) => batch.push(chunk),
            None => open = false,
        }
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(chunk) => batch.push(chunk),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let done = tokio::task::spawn_blocking(move || {
            for chunk in &batch {
                log.write(chunk);
            }
            if !open {
                log.finish();
            }
            log
        });
        log = match done.await {
            Ok(log) => log,
            // Only a panic gets here; the pipe is drained so the task does not block.
            Err(e) => {
                warn!(error = %e, "task log writer failed; the rest of this stream is dropped");
                while rx.recv().await.is_some() {}
                break;
            }
        };
    }
    let _ = reader.await;
}

async fn read(mut pipe: impl AsyncRead + Unpin, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The current file and its size.
struct Log {
    target: Target,
    rotation: Rotation,
    /// `None` until opened, and again after an error (reopened by the next write).
    file: Option<File>,
    size: u64,
    /// The start of a line whose end has not come yet: it is written with its end, so
    /// that a rotation never falls inside it. It holds no newline.
    carry: Vec<u8>,
    /// The last write failed (and was logged).
    failing: bool,
}

impl Log {
    fn new(target: Target, rotation: Rotation) -> Log {
        Log { target, rotation, file: None, size: 0, carry: Vec::new(), failing: false }
    }

    fn numbered(&self, n: usize) -> String {
        format!("{}.{n}", self.target.name)
    }

    /// The open file, opened (beneath the task's directory) if need be.
    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let file = crate::sandbox::open_log(&self.target.dir, self.target.name, self.target.owner)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file.as_mut().ok_or_else(|| io::Error::other("the log file is not open"))
    }

    /// `stdout` → `stdout.1` → ... → `stdout.<max_files>` (dropped past it), then a new
    /// empty `stdout`. Renames and unlinks act on names, never through a symlink.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let dir = Arc::clone(&self.target.dir);
        let keep = self.rotation.max_files;
        if keep == 0 {
            let _ = rustix::fs::unlinkat(&*dir, self.target.name, AtFlags::empty());
        } else {
            let _ = rustix::fs::unlinkat(&*dir, self.numbered(keep).as_str(), AtFlags::empty());
            for n in (1..keep).rev() {
                let _ = rustix::fs::renameat(&*dir, self.numbered(n).as_str(), &*dir, self.numbered(n + 1).as_str());
            }
            rustix::fs::renameat(&*dir, self.target.name, &*dir, self.numbered(1).as_str())?;
        }
        self.size = 0;
        self.file().map(|_| ())
    }

    /// Takes a chunk: its whole lines are written now, the start of an unfinished line
    /// waits for its end (unless it is already longer than a file). A failure drops
    /// the chunk and is logged once; the next chunk tries again.
    fn write(&mut self, chunk: &[u8]) {
        let result = self.take(chunk);
        self.note(result);
    }

    fn take(&mut self, chunk: &[u8]) -> io::Result<bool> {
        // The carry holds no newline: only the new bytes are searched (a long line
        // must not be rescanned for every chunk).
        let whole = chunk.iter().rposition(|b| *b == b'\n').map(|i| self.carry.len() + i + 1);
        self.carry.extend_from_slice(chunk);
        let mut wrote = false;
        if let Some(whole) = whole {
            let rest = self.carry.split_off(whole);
            let lines = std::mem::replace(&mut self.carry, rest);
            self.put(&lines)?;
            wrote = true;
        }
        let max = usize::try_from(self.rotation.max_size).unwrap_or(usize::MAX).min(CARRY_MAX);
        while self.carry.len() > max {
            let piece: Vec<u8> = self.carry.drain(..max).collect();
            self.put(&piece)?;
            wrote = true;
        }
        Ok(wrote)
    }

    /// Logs a change between writing and failing.
    fn note(&mut self, result: io::Result<bool>) {
        let Target { task_id, name, .. } = &self.target;
        match result {
            Err(e) => {
                // Reopened (and its size read again) by the next write.
                self.file = None;
                if !self.failing {
                    warn!(task_id, log = name, error = %e, "cannot write the task's log; its output is dropped until a write succeeds");
                    self.failing = true;
                }
            }
            Ok(true) if self.failing => {
                info!(task_id, log = name, "writing the task's log again");
                self.failing = false;
            }
            Ok(_) => {}
        }
    }

    /// The end of the stream: what is left.
    fn finish(&mut self) {
        let rest = std::mem::take(&mut self.carry);
        let result = self.put(&rest).map(|()| !rest.is_empty());
        self.note(result);
    }

    /// Writes `data` (whole lines, or a piece of a line longer than a file), rotating
    /// at line ends.
    fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        let max = self.rotation.max_size;
        while !data.is_empty() {
            self.file()?;
            let room = usize::try_from(max.saturating_sub(self.size)).unwrap_or(usize::MAX);
            if data.len() <= room {
                self.file()?.write_all(data)?;
                self.size = self.size.saturating_add(data.len() as u64);
                return Ok(());
            }
            // Cut after the last whole line that fits; a fresh file takes a line longer
            // than the size in pieces of the size.
            let cut = match data[..room].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if self.size == 0 => room.max(1),
                None => 0,
            };
            if cut > 0 {
                self.file()?.write_all(&data[..cut])?;
                self.size = self.size.saturating_add(cut as u64);
                data = &data[cut..];
            }
            self.rotate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dir: &std::path::Path, name: &'static str) -> Target {
        let flags = rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY;
        let dir = rustix::fs::open(dir, flags, rustix::fs::Mode::empty()).unwrap();
        Target { dir: Arc::new(dir), name, task_id: "t".to_owned(), owner: None }
    }

    #[test]
    fn sizes_as_stout_writes_them() {
        assert_eq!(parse_bytes("10MB"), Ok(10 << 20));
        assert_eq!(parse_bytes("512KB"), Ok(512 << 10));
        assert_eq!(parse_bytes("7B"), Ok(7));
        for bad in ["10", "10mb", "MB", "0MB", "99999999999TB", "1.5MB", ""] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn rotation_keeps_whole_lines_within_the_size_and_the_tail_of_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (1..=5000).map(|n| format!("line {n}\n")).collect();
        let rotation = Rotation { max_size: 4096, max_files: 3 };
        pump(std::io::Cursor::new(text.clone().into_bytes()), target(dir.path(), "stdout"), rotation).await;
        let mut kept = String::new();
        for name in ["stdout.3", "stdout.2", "stdout.1", "stdout"] {
            let part = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(part.len() <= 4096, "{name}: {}", part.len());
            assert!(part.ends_with('\n') || name == "stdout", "{name} ends mid-line");
            kept.push_str(&part);
        }
        assert!(!dir.path().join("stdout.4").exists());
        assert!(text.ends_with(&kept), "the kept files are the tail of what was written");
        assert!(kept.starts_with("line "), "and start at a line");
    }

    #[tokio::test]
    async fn a_chunk_that_fills_the_file_mid_line_does_not_split_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        let mut log = Log::new(target(dir.path(), "stdout"), Rotation { max_size: 7, max_files: 2 });
        // Exactly the size, ending inside "bbb": the line must not be split by the rotation.
        log.write(b"aaaa\nbb");
        log.write(b"b\ncc\n");
        log.finish();
        assert_eq!(std::fs::read_to_string(dir.path().join("stdout.1")).unwrap(), "aaaa\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbb\ncc\n");
    }

    #[test]
    fn a_long_line_is_written_as_it_comes_not_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::new(target(dir.path(), "stdout"), Rotation { max_size: 100 << 20, max_files: 1 });
        log.write(b"first\n");
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..48 {
            log.write(&chunk);
            assert!(log.carry.len() <= CARRY_MAX, "{} bytes held", log.carry.len());
        }
        log.write(b"\nlast\n");
        log.finish();
        let text = std::fs::read(dir.path().join("stdout")).unwrap();
        assert_eq!(text.len(), 6 + 48 * CHUNK + 6, "every byte, in one file");
        assert!(text.starts_with(b"first\nxxx") && text.ends_with(b"xxx\nlast\n"));
    }

    #[tokio::test]
    async fn a_line_longer_than_the_size_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        let rotation = Rotation { max_size: 10, max_files: 5 };
        pump(std::io::Cursor::new(b"0123456789ABCDEFGHIJ\nok\n".to_vec()), target(dir.path(), "stderr"), rotation)
            .await;
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr.2")).unwrap(), "0123456789");
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr.1")).unwrap(), "ABCDEFGHIJ");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\nok\n");
    }
}
