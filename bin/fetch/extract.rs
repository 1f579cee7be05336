//! Unpacking a fetched archive into the task's sandbox, as upstream's fetcher does with
//! libarchive (`src/launcher/fetcher.cpp`, `extract`): `.tar`, `.tar.gz`/`.tgz`,
//! `.tar.bz2`/`.tbz2`, `.tar.xz`/`.txz` and `.zip` into the sandbox; a bare `.gz` is
//! gunzipped into the sandbox under its name without the suffix.
//!
//! Streaming and bounded: decompressors read entry by entry (xz under a memory limit),
//! tar metadata records pass a [`TarGuard`] first, and the total written (holes of
//! sparse files included) stops at the size cap. Every path is opened beneath the
//! sandbox ([`Root`]): absolute names and `..` are refused naming the entry, a link is
//! kept only if it resolves inside, and nothing is written through a link that leads
//! out. A `./` entry (`tar -C dir .`) and PAX global headers (`git archive`) are skipped.

use std::{
    fs::File,
    io::{self, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use super::{
    beneath::{Root, relative},
    tar_guard::TarGuard,
};

/// What an archive is, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tar,
    TarGz,
    TarBz2,
    TarXz,
    Zip,
    /// A single gzipped file (not a tar).
    Gz,
}

impl Kind {
    /// The kind that `name` says, as upstream reads suffixes.
    pub fn of(name: &str) -> Option<Kind> {
        let name = name.to_ascii_lowercase();
        let ends = |suffixes: &[&str]| suffixes.iter().any(|s| name.ends_with(s));
        if ends(&[".tar.gz", ".tgz"]) {
            Some(Kind::TarGz)
        } else if ends(&[".tar.bz2", ".tbz2"]) {
            Some(Kind::TarBz2)
        } else if ends(&[".tar.xz", ".txz"]) {
            Some(Kind::TarXz)
        } else if ends(&[".tar"]) {
            Some(Kind::Tar)
        } else if ends(&[".zip"]) {
            Some(Kind::Zip)
        } else if ends(&[".gz"]) {
            Some(Kind::Gz)
        } else {
            None
        }
    }
}

/// Limits of one extraction.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Largest total written (all entries, holes included).
    pub max_size: u64,
    /// The xz decoder's memory limit (dictionary and buffers).
    pub xz_memlimit: u64,
}

/// Unpacks the archive at `archive` (beneath `root`) into `root`.
///
/// # Errors
/// The archive is damaged, an entry is refused (named), or the size cap is passed.
pub fn extract(root: &Root, archive: &Path, kind: Kind, bounds: Bounds) -> Result<(), String> {
    let file = root.read(archive)?;
    let name = archive.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut left = bounds.max_size;
    let reader = BufReader::new(file);
    let result = match kind {
        Kind::Tar => untar(reader, root, &mut left),
        Kind::TarGz => untar(flate2::bufread::MultiGzDecoder::new(reader), root, &mut left),
        Kind::TarBz2 => untar(bzip2::bufread::MultiBzDecoder::new(reader), root, &mut left),
        Kind::TarXz => xz(reader, bounds.xz_memlimit).and_then(|r| untar(r, root, &mut left)),
        Kind::Zip => unzip(reader.into_inner(), root, &mut left),
        Kind::Gz => {
            // Upstream: `gunzip -d -c` into the sandbox under the name less `.gz`.
            let stem = name.get(..name.len().saturating_sub(3)).unwrap_or_default();
            let target = PathBuf::from(stem);
            write_file(root, &target, flate2::bufread::MultiGzDecoder::new(reader), 0o644, &mut left)
        }
    };
    result.map_err(|e| format!("cannot extract {name}: {e}"))
}

fn xz(reader: impl io::BufRead, memlimit: u64) -> Result<impl Read, String> {
    let stream = liblzma::stream::Stream::new_stream_decoder(memlimit, liblzma::stream::CONCATENATED)
        .map_err(|e| format!("xz: {e}"))?;
    Ok(liblzma::bufread::XzDecoder::new_stream(reader, stream))
}

/// Writes `data` to `path` beneath `root` (through a temporary file), counting against
/// `left`.
fn write_file(root: &Root, path: &Path, mut data: impl Read, mode: u32, left: &mut u64) -> Result<(), String> {
    let mut pending = root.create(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let file: &mut File = pending.file();
    loop {
        let n = data.read(&mut buf).map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        *left = left
            .checked_sub(n as u64)
            .ok_or_else(|| format!("{}: the archive unpacks past the size cap", path.display()))?;
        file.write_all(&buf[..n]).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    pending.commit(mode)
}

/// What every entry costs against the size cap besides its data, as a file system
/// charges a block (an inode) for it: without it an archive of empty entries (a few
/// bytes each, gzipped) made inodes for free until the fetch timeout. 4 GiB of cap
/// allows a million entries.
const ENTRY_COST: u64 = 4096;

/// Charges one entry against `left`.
fn charge_entry(name: &Path, left: &mut u64) -> Result<(), String> {
    *left = left.checked_sub(ENTRY_COST).ok_or_else(|| {
        format!("{}: the archive unpacks past the size cap (each entry counts {ENTRY_COST} bytes)", name.display())
    })?;
    Ok(())
}

fn entry_path(name: &Path) -> Result<PathBuf, String> {
    relative(name).map_err(|e| format!("entry {e}"))
}

fn untar(reader: impl Read, root: &Root, left: &mut u64) -> Result<(), String> {
    use tar::EntryType;
    let mut archive = tar::Archive::new(TarGuard::new(reader));
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            continue;
        }
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        let path = entry_path(&name)?;
        if path.as_os_str().is_empty() {
            continue; // `./`, the sandbox itself
        }
        charge_entry(&name, left)?;
        if kind.is_dir() {
            root.dir(&path)?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry.link_name().map_err(|e| e.to_string())?;
            let link = link.ok_or_else(|| format!("entry {} is a link without a target", name.display()))?;
            if kind.is_symlink() {
                root.symlink(&path, &link)?;
            } else {
                root.hard_link(&path, &entry_path(&link)?)?;
            }
            continue;
        }
        if !(kind.is_file() || kind == EntryType::Continuous || kind.is_gnu_sparse()) {
            return Err(format!("entry {} is a {kind:?}, which is not unpacked", name.display()));
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        write_file(root, &path, &mut entry, mode, left)?;
    }
    Ok(())
}

fn unzip(file: File, root: &Root, left: &mut u64) -> Result<(), String> {
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = PathBuf::from(entry.name().map_err(|e| e.to_string())?.as_ref());
        let path = entry_path(&name)?;
        if path.as_os_str().is_empty() {
            continue;
        }
        charge_entry(&name, left)?;
        if entry.is_dir() {
            root.dir(&path)?;
        } else if entry.is_symlink() {
            let mut target = Vec::new();
            (&mut entry).take(4096).read_to_end(&mut target).map_err(|e| format!("entry {}: {e}", name.display()))?;
            let target = PathBuf::from(std::ffi::OsString::from(String::from_utf8_lossy(&target).into_owned()));
            root.symlink(&path, &target)?;
        } else {
            let mode = entry.unix_mode().unwrap_or(0o644);
            write_file(root, &path, &mut entry, mode, left)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(Kind::of("x.TGZ"), Some(Kind::TarGz));
        assert_eq!(Kind::of("x.json.gz"), Some(Kind::Gz));
        assert_eq!(Kind::of("x.txt"), None);
    }

    fn extract_tar(data: Vec<u8>) -> (tempfile::TempDir, Result<(), String>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.tar"), data).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let bounds = Bounds { max_size: 1 << 20, xz_memlimit: 16 << 20 };
        let result = extract(&root, Path::new("a.tar"), Kind::Tar, bounds);
        (dir, result)
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            let body: &[u8] = if kind.is_symlink() { &[] } else { content.as_bytes() };
            if kind.is_symlink() {
                header.set_link_name(content).unwrap();
            }
            header.set_size(body.len() as u64);
            // Names with `..` cannot be set through the checked setter.
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            builder.append(&header, body).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn hostile_entries_are_refused_naming_them() {
        use tar::EntryType::{Regular, Symlink};
        type Entries<'a> = &'a [(&'a str, tar::EntryType, &'a str)];
        let cases: [(Entries<'_>, &str); 4] = [
            (&[("../evil", Regular, "x")], "../evil"),
            (&[("/tmp/evil", Regular, "x")], "/tmp/evil"),
            (&[("link", Symlink, "/etc")], "links outside"),
            (&[("up", Symlink, ".."), ("up/evil", Regular, "x")], "links outside"),
        ];
        for (entries, says) in cases {
            let (_dir, result) = extract_tar(raw_tar(entries));
            let error = result.unwrap_err();
            assert!(error.contains(says), "{error:?} should say {says:?}");
        }
        // A link inside is kept, and what is written through it stays inside.
        let (dir, result) = extract_tar(raw_tar(&[
            ("./", tar::EntryType::Directory, ""),
            ("d/f", Regular, "x"),
            ("l", Symlink, "d"),
            ("l/g", Regular, "y"),
        ]));
        result.unwrap();
        assert_eq!(std::fs::read(dir.path().join("d/g")).unwrap(), b"y");
    }

    #[test]
    fn zip_links_are_kept_only_inside() {
        let zip_with = |target: &str| {
            let mut writer = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default();
            writer.start_file("z/f", options).unwrap();
            writer.write_all(b"x").unwrap();
            writer.add_symlink("z/link", target, options).unwrap();
            writer.finish().unwrap().into_inner()
        };
        let bounds = Bounds { max_size: 1 << 20, xz_memlimit: 16 << 20 };
        for (target, ok) in [("f", true), ("../z/f", true), ("../..", false), ("/etc/passwd", false)] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("a.zip"), zip_with(target)).unwrap();
            let root = Root::open(dir.path()).unwrap();
            let result = extract(&root, Path::new("a.zip"), Kind::Zip, bounds);
            assert_eq!(result.is_ok(), ok, "{target}: {result:?}");
            if !ok {
                assert!(result.unwrap_err().contains("z/link links outside"));
            }
        }
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let big = "x".repeat(2 << 20);
        let (_dir, result) = extract_tar(raw_tar(&[("big", tar::EntryType::Regular, &big)]));
        assert!(result.unwrap_err().contains("cap"));
    }

    /// `xz -9` (a 64 MiB dictionary) is what many release tarballs use; upstream's
    /// libarchive unpacks it, so the default limits must too. A header asking for more
    /// than the limit is refused naming it.
    #[test]
    fn xz_9_archives_extract_with_the_default_limits() {
        let tar = raw_tar(&[("f", tar::EntryType::Regular, "hello")]);
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 9);
        io::Write::write_all(&mut encoder, &tar).unwrap();
        let xz = encoder.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.tar.xz"), &xz).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let limits = crate::fetch::spec::Limits::default();
        let bounds = Bounds { max_size: 1 << 20, xz_memlimit: limits.xz_memlimit };
        extract(&root, Path::new("a.tar.xz"), Kind::TarXz, bounds).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("f")).unwrap(), "hello");
        let small = Bounds { max_size: 1 << 20, xz_memlimit: 16 << 20 };
        let error = extract(&root, Path::new("a.tar.xz"), Kind::TarXz, small).unwrap_err();
        assert!(error.contains("limit"), "{error}");
    }
}
