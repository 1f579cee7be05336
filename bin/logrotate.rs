//! Per-task log rotation (custom mode, `--task_log_max_size`): a task's stdout and stderr
//! come through pipes, and each is written to `tasks/<id>/stdout` (or `stderr`) in the
//! sandbox until the next write would pass the size; then `stdout` becomes `stdout.1`
//! (`stdout.1` becomes `stdout.2`, ...; past `--task_log_max_files` the oldest goes) and a
//! new `stdout` starts, so the agent's sandbox browser always shows the current one.
//!
//! Files are cut at a line's end, so no line is split across files (a single line
//! longer than the size is the exception: it is cut at the size). A reader and a writer
//! are joined by a bounded queue of chunks, so a slow disk does not hold the task up
//! until [`QUEUE_CHUNKS`] chunks are waiting.

use std::{io, path::PathBuf};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

/// Chunks read ahead of the disk (each at most [`CHUNK`] bytes).
pub const QUEUE_CHUNKS: usize = 256;
const CHUNK: usize = 64 * 1024;

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

/// Copies `pipe` into `path` with rotation until the pipe closes. Errors end the copy
/// (logged by the caller); the task is never blocked by them, its pipe is drained.
pub async fn pump(pipe: impl AsyncRead + Unpin + Send + 'static, path: PathBuf, rotation: Rotation) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE_CHUNKS);
    let reader = tokio::spawn(read(pipe, tx));
    let mut log = Log::open(path, rotation).await?;
    let mut result = Ok(());
    while let Some(chunk) = rx.recv().await {
        if result.is_ok() {
            result = log.write(&chunk).await;
        }
        // After a write error the pipe is still drained, so the task does not block.
    }
    let _ = reader.await;
    result.and(log.finish().await)
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
    path: PathBuf,
    rotation: Rotation,
    file: tokio::fs::File,
    size: u64,
    /// The start of a line whose end has not come yet: it is written with its end, so
    /// that a rotation never falls inside it.
    carry: Vec<u8>,
}

impl Log {
    async fn open(path: PathBuf, rotation: Rotation) -> io::Result<Log> {
        let file = tokio::fs::OpenOptions::new().create(true).append(true).open(&path).await?;
        let size = file.metadata().await?.len();
        Ok(Log { path, rotation, file, size, carry: Vec::new() })
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// `stdout` → `stdout.1` → ... → `stdout.<max_files>` (dropped past it), then a new
    /// empty `stdout`.
    async fn rotate(&mut self) -> io::Result<()> {
        self.file.flush().await?;
        let keep = self.rotation.max_files;
        if keep == 0 {
            let _ = tokio::fs::remove_file(&self.path).await;
        } else {
            let _ = tokio::fs::remove_file(self.numbered(keep)).await;
            for n in (1..keep).rev() {
                let _ = tokio::fs::rename(self.numbered(n), self.numbered(n + 1)).await;
            }
            tokio::fs::rename(&self.path, self.numbered(1)).await?;
        }
        self.file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await?;
        self.size = 0;
        Ok(())
    }

    /// Takes a chunk: its whole lines are written now, the start of an unfinished line
    /// waits for its end (unless it is already longer than a file).
    async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.carry.extend_from_slice(chunk);
        let whole = self.carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let rest = self.carry.split_off(whole);
        let lines = std::mem::replace(&mut self.carry, rest);
        self.put(&lines).await?;
        let max = usize::try_from(self.rotation.max_size).unwrap_or(usize::MAX);
        while self.carry.len() > max {
            let piece: Vec<u8> = self.carry.drain(..max).collect();
            self.put(&piece).await?;
        }
        Ok(())
    }

    /// The end of the stream: what is left, then everything on disk (a tokio file hands
    /// writes to a thread, so they are there only once flushed).
    async fn finish(&mut self) -> io::Result<()> {
        let rest = std::mem::take(&mut self.carry);
        self.put(&rest).await?;
        self.file.flush().await
    }

    /// Writes `data` (whole lines, or a piece of a line longer than a file), rotating
    /// at line ends.
    async fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        let max = self.rotation.max_size;
        while !data.is_empty() {
            let room = usize::try_from(max.saturating_sub(self.size)).unwrap_or(usize::MAX);
            if data.len() <= room {
                self.file.write_all(data).await?;
                self.size += data.len() as u64;
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
                self.file.write_all(&data[..cut]).await?;
                self.size += cut as u64;
                data = &data[cut..];
            }
            self.rotate().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let path = dir.path().join("stdout");
        let text: String = (1..=5000).map(|n| format!("line {n}\n")).collect();
        let rotation = Rotation { max_size: 4096, max_files: 3 };
        pump(std::io::Cursor::new(text.clone().into_bytes()), path.clone(), rotation).await.unwrap();
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
        let mut log = Log::open(path.clone(), Rotation { max_size: 7, max_files: 2 }).await.unwrap();
        // Exactly the size, ending inside "bbb": the line must not be split by the rotation.
        log.write(b"aaaa\nbb").await.unwrap();
        log.write(b"b\ncc\n").await.unwrap();
        log.finish().await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("stdout.1")).unwrap(), "aaaa\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bbb\ncc\n");
    }

    #[tokio::test]
    async fn a_line_longer_than_the_size_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        let rotation = Rotation { max_size: 10, max_files: 5 };
        pump(std::io::Cursor::new(b"0123456789ABCDEFGHIJ\nok\n".to_vec()), path.clone(), rotation).await.unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr.2")).unwrap(), "0123456789");
        assert_eq!(std::fs::read_to_string(dir.path().join("stderr.1")).unwrap(), "ABCDEFGHIJ");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\nok\n");
    }
}
