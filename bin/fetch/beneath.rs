//! Files beneath one directory, and never outside it: every path the fetcher writes
//! (downloads, `output_file`, archive entries, the cache) is resolved with `openat2`
//! and `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so that no link, `..` or race can
//! lead a write out of the directory; modes are set on the opened descriptor
//! (`fchmod`), never by path. A file is written to a fresh name (`O_EXCL`) and renamed
//! over its target only once complete, so a failed fetch never replaces a good file.

use std::{
    ffi::OsString,
    fs::File,
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
    path::{Component, Path, PathBuf},
};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

/// How many links one path may pass through, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// A directory that everything is opened beneath.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Every link made beneath it, checked again once the fetch is done
    /// ([`Root::verify_links`]): a later entry may replace a link an earlier one
    /// resolved through.
    links: std::cell::RefCell<Vec<PathBuf>>,
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// `path` as a relative path of plain names (`.` dropped); an error names it if it is
/// absolute or climbs with `..`.
pub fn relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(format!("{} leaves the directory", path.display())),
        }
    }
    Ok(out)
}

impl Root {
    /// Opens `dir` (an absolute path the caller trusts: the task's sandbox).
    ///
    /// # Errors
    /// `dir` cannot be opened as a directory.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Root { fd, links: Default::default() })
    }

    fn open_at(&self, path: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        Ok(rustix::fs::openat2(&self.fd, path, flags | OFlags::CLOEXEC, mode, resolve())?)
    }

    /// Opens the directory `dir` beneath the root, creating what is missing (0755).
    ///
    /// # Errors
    /// A part of the way is not a directory, leads out, or cannot be made.
    pub fn dir(&self, dir: &Path) -> Result<OwnedFd, String> {
        let dir = relative(dir)?;
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        let mut at = self.open_at(Path::new(""), flags, Mode::empty()).map_err(|e| e.to_string())?;
        let mut so_far = PathBuf::new();
        for part in dir.components() {
            so_far.push(part);
            at = match self.open_at(&so_far, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match rustix::fs::mkdirat(&at, part.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => return Err(format!("{}: {e}", so_far.display())),
                    }
                    self.open_at(&so_far, flags, Mode::empty()).map_err(|e| format!("{}: {e}", so_far.display()))?
                }
                Err(e) => return Err(format!("{}: {}", so_far.display(), why(&e))),
            };
        }
        Ok(at)
    }

    /// Opens `path` beneath the root for reading.
    ///
    /// # Errors
    /// It is missing, leads out, or cannot be read.
    pub fn read(&self, path: &Path) -> Result<File, String> {
        let fd = self
            .open_at(path, OFlags::RDONLY, Mode::empty())
            .map_err(|e| format!("{}: {}", path.display(), why(&e)))?;
        Ok(File::from(fd))
    }

    /// A new file beside `path` (in its directory, created if missing) under a random
    /// name, to be [`Pending::commit`]ted over `path` once written.
    ///
    /// # Errors
    /// The directory cannot be opened beneath the root, or the file cannot be made.
    pub fn create(&self, path: &Path) -> Result<Pending, String> {
        let path = relative(path)?;
        let name = path.file_name().ok_or_else(|| format!("{} names no file", path.display()))?.to_owned();
        let dir = self.dir(path.parent().unwrap_or(Path::new("")))?;
        for _ in 0..8 {
            let temp = OsString::from(format!(".fetch-{}.partial", uuid::Uuid::new_v4().simple()));
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir, temp.as_os_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok(Pending { dir, temp, name, file: File::from(fd), shown: path }),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        Err(format!("{}: no free temporary name", path.display()))
    }

    /// Makes the link `path -> target` if `target`, resolved from where the link stands
    /// against the file system as it is, stays beneath the root.
    ///
    /// # Errors
    /// The target leads out (the error says "links outside"), or the link cannot be made.
    pub fn symlink(&self, path: &Path, target: &Path) -> Result<(), String> {
        let path = relative(path)?;
        let name = path.file_name().ok_or_else(|| format!("{} names no file", path.display()))?;
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        if self.stays_inside(&parent, target).is_err() {
            return Err(format!("{} links outside the directory ({})", path.display(), target.display()));
        }
        let dir = self.dir(&parent)?;
        let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
        rustix::fs::symlinkat(target, &dir, name).map_err(|e| format!("{}: {e}", path.display()))?;
        self.links.borrow_mut().push(path);
        Ok(())
    }

    /// Checks every link made beneath the root again, against the file system as the
    /// fetch left it: `b -> d`, `a -> b/..` (inside), then `b -> .` makes `a` lead out.
    /// A link that now leads out is removed, and the fetch fails naming it.
    ///
    /// # Errors
    /// The first link that leads out.
    pub fn verify_links(&self) -> Result<(), String> {
        let links = std::mem::take(&mut *self.links.borrow_mut());
        let mut outside = None;
        for path in links {
            let Some(target) = self.read_link(&path) else { continue };
            let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
            if self.stays_inside(&parent, &target).is_err() {
                if let (Ok(dir), Some(name)) = (self.dir(&parent), path.file_name()) {
                    let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
                }
                outside.get_or_insert_with(|| {
                    format!("{} links outside the directory once unpacked ({})", path.display(), target.display())
                });
            }
        }
        outside.map_or(Ok(()), Err)
    }

    /// Makes `path` a hard link to `existing` (both beneath the root).
    ///
    /// # Errors
    /// Either leads out, or the link cannot be made.
    pub fn hard_link(&self, path: &Path, existing: &Path) -> Result<(), String> {
        let (path, existing) = (relative(path)?, relative(existing)?);
        let name = path.file_name().ok_or_else(|| format!("{} names no file", path.display()))?;
        let old_name = existing.file_name().ok_or_else(|| format!("{} names no file", existing.display()))?;
        let old_dir = self
            .open_at(existing.parent().unwrap_or(Path::new("")), OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(|e| format!("{}: {}", existing.display(), why(&e)))?;
        // A link's target is relative to where it stands: another name for it elsewhere
        // could point somewhere else, so links are not hard-linked.
        let stat = rustix::fs::statat(&old_dir, old_name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| format!("{}: {e}", existing.display()))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(format!("{} is a hard link to {}, which is not a file", path.display(), existing.display()));
        }
        let dir = self.dir(path.parent().unwrap_or(Path::new("")))?;
        let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
        rustix::fs::linkat(&old_dir, old_name, &dir, name, AtFlags::empty())
            .map_err(|e| format!("{} -> {}: {e}", path.display(), existing.display()))
    }

    /// Whether `target`, seen from the directory `from`, resolves beneath the root,
    /// following the links that exist now (at most [`MAX_LINKS`]).
    fn stays_inside(&self, from: &Path, target: &Path) -> Result<(), ()> {
        if target.is_absolute() {
            return Err(());
        }
        // The link's own directory is resolved too: it may be reached through links.
        let from = relative(from).map_err(drop)?;
        let mut at: Vec<OsString> = Vec::new();
        let mut rest: Vec<OsString> = from.iter().chain(target.iter()).rev().map(OsString::from).collect();
        let mut links = 0;
        while let Some(part) = rest.pop() {
            match part.as_bytes() {
                b"." | b"" => {}
                b".." => {
                    at.pop().ok_or(())?;
                }
                _ => {
                    let here: PathBuf = at.iter().chain(std::iter::once(&part)).collect();
                    match self.read_link(&here) {
                        Some(next) => {
                            links += 1;
                            if links > MAX_LINKS || next.is_absolute() {
                                return Err(());
                            }
                            rest.extend(next.iter().rev().map(OsString::from));
                        }
                        None => at.push(part),
                    }
                }
            }
        }
        Ok(())
    }

    /// The target of `path` if it is a link beneath the root.
    fn read_link(&self, path: &Path) -> Option<PathBuf> {
        let parent = self.open_at(path.parent()?, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).ok()?;
        let target = rustix::fs::readlinkat(&parent, path.file_name()?, Vec::new()).ok()?;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(target.as_bytes())))
    }
}

/// What an `openat2` refusal means, in words.
fn why(e: &io::Error) -> String {
    if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) {
        "leads outside the directory".to_owned()
    } else if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) {
        "a part of the way is not a directory".to_owned()
    } else {
        e.to_string()
    }
}

/// A file being written under a temporary name; dropped without [`Pending::commit`], it
/// is removed.
#[derive(Debug)]
pub struct Pending {
    dir: OwnedFd,
    temp: OsString,
    name: OsString,
    file: File,
    shown: PathBuf,
}

impl Pending {
    /// The open file, to write.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Sets the mode (on the descriptor; no set-id bits), and renames the file over its
    /// target.
    ///
    /// # Errors
    /// The mode cannot be set or the rename fails.
    pub fn commit(mut self, mode: u32) -> Result<(), String> {
        rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode & 0o777))
            .map_err(|e| format!("{}: {e}", self.shown.display()))?;
        rustix::fs::renameat(&self.dir, &self.temp, &self.dir, &self.name)
            .map_err(|e| format!("{}: {e}", self.shown.display()))?;
        self.temp.clear();
        Ok(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.temp.is_empty() {
            let _ = rustix::fs::unlinkat(&self.dir, &self.temp, AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_opened_through_a_link_that_leads_out() {
        let outer = tempfile::tempdir().unwrap();
        let sandbox = outer.path().join("sandbox");
        std::fs::create_dir(&sandbox).unwrap();
        let root = Root::open(&sandbox).unwrap();
        std::os::unix::fs::symlink("..", sandbox.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc", sandbox.join("etc")).unwrap();
        assert!(root.create(Path::new("up/x")).unwrap_err().contains("outside"));
        assert!(root.read(Path::new("etc/passwd")).is_err());
        assert!(root.symlink(Path::new("l"), Path::new("up/sandbox/../..")).unwrap_err().contains("links outside"));
        root.symlink(Path::new("d/in"), Path::new("..")).unwrap();
        assert!(root.symlink(Path::new("d/out"), Path::new("in/..")).is_err());
        // Reached through a link to the root, `x/d/..` is the root's parent.
        root.symlink(Path::new("x"), Path::new(".")).unwrap();
        assert!(root.symlink(Path::new("x/d/l"), Path::new("../..")).unwrap_err().contains("links outside"));
        // A link is not hard-linked elsewhere (its relative target would change).
        root.symlink(Path::new("d/deep/up"), Path::new("../..")).unwrap();
        assert!(root.hard_link(Path::new("h"), Path::new("d/deep/up")).unwrap_err().contains("not a file"));
        let mut pending = root.create(Path::new("a/b/f")).unwrap();
        io::Write::write_all(pending.file(), b"x").unwrap();
        pending.commit(0o640).unwrap();
        assert_eq!(std::fs::read(sandbox.join("a/b/f")).unwrap(), b"x");
        let dropped = root.create(Path::new("a/b/f")).unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(sandbox.join("a/b")).unwrap().count(), 1, "the temporary file is gone");
    }
}
