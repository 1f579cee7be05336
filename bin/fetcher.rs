//! The task URIs (`CommandInfo.uris`), fetched by the executor into the task's
//! directory before the task starts, with upstream's semantics (`mesos.proto`
//! `CommandInfo.URI`, the agent's fetcher): `http://`, `https://` (trusting the CA of
//! `LIBPROCESS_SSL_CA_FILE`/`CA_DIR`, else the system's bundle), `file://` and absolute
//! paths; the file is named after the URI's last path segment, or `output_file`;
//! `executable` makes it executable (and is never extracted); `extract` (upstream's
//! default) unpacks `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`/`.tbz2`, `.tar.xz`/`.txz` and
//! `.zip` next to it; `cache` keeps a download for later tasks of this executor, keyed by
//! URI and user.
//!
//! Nothing is held in memory whole: downloads stream to disk under a size cap and a
//! deadline, and archives are unpacked entry by entry under the same cap. An archive may
//! not write outside the directory: absolute paths, `..`, links that point out, and
//! writes through a link are refused, naming the entry.

use std::{
    io::{self, Read},
    path::{Component, Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use http_body_util::{BodyExt, Empty};
use hyper::{StatusCode, Uri};
use hyper_util::rt::TokioIo;
use mesos_executor::{env::TlsEnv, proto::v1::command_info};
use tokio::io::AsyncWriteExt;

/// Limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest download, and largest total unpacked from one archive.
    pub max_size: u64,
    /// Longest one URI may take, download and unpacking included.
    pub timeout: Duration,
    /// Largest total kept in the cache.
    pub cache_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_size: 4 << 30, timeout: Duration::from_secs(600), cache_size: 8 << 30 }
    }
}

/// Fetches URIs; cheap to clone, shared by the tasks of the executor.
#[derive(Debug, Clone)]
pub struct Fetcher {
    tls: Arc<Option<TlsEnv>>,
    limits: Limits,
    cache_dir: PathBuf,
    /// (URI, user) → cached file, with its size, oldest first.
    cache: Arc<Mutex<Vec<CacheEntry>>>,
}

impl Fetcher {
    /// A fetcher whose cache lives in `cache_dir`; https trusts `tls`'s CA when set.
    pub fn new(tls: Option<TlsEnv>, limits: Limits, cache_dir: PathBuf) -> Self {
        Fetcher { tls: Arc::new(tls), limits, cache_dir, cache: Arc::default() }
    }

    /// Fetches every URI into `dir` (as `user`, for the cache key), in order.
    ///
    /// # Errors
    /// The first URI that could not be fetched, named, with why.
    pub async fn fetch_all(&self, uris: &[command_info::Uri], dir: &Path, user: &str) -> Result<(), String> {
        for uri in uris {
            let fetched = tokio::time::timeout(self.limits.timeout, self.fetch(uri, dir, user)).await;
            let result = fetched.unwrap_or_else(|_| {
                Err(format!("no result within {}", mesos_executor::env::format_duration(self.limits.timeout)))
            });
            result.map_err(|e| format!("cannot fetch {:?}: {e}", uri.value))?;
        }
        Ok(())
    }

    async fn fetch(&self, uri: &command_info::Uri, dir: &Path, user: &str) -> Result<(), String> {
        let name = match &uri.output_file {
            Some(name) => safe_relative(Path::new(name)).map_err(|e| format!("output_file: {e}"))?,
            None => PathBuf::from(basename(&uri.value)?),
        };
        let target = dir.join(&name);
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| e.to_string())?;
        }
        let key = (uri.value.clone(), user.to_owned());
        let cached = self.cached(&key);
        match cached {
            Some(path) => copy(&path, &target).await?,
            None => {
                self.download(&uri.value, &target).await?;
                if uri.cache() {
                    self.keep(key, &target).await;
                }
            }
        }
        if uri.executable() {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o755);
            tokio::fs::set_permissions(&target, mode).await.map_err(|e| e.to_string())?;
        } else if uri.extract() && archive_kind(&target).is_some() {
            let (target, dir, max) = (target.clone(), dir.to_path_buf(), self.limits.max_size);
            tokio::task::spawn_blocking(move || extract(&target, &dir, max)).await.map_err(|e| e.to_string())??;
        }
        Ok(())
    }

    fn cached(&self, key: &(String, String)) -> Option<PathBuf> {
        let cache = self.cache.lock().ok()?;
        cache.iter().find(|(k, path, _)| k == key && path.exists()).map(|(_, path, _)| path.clone())
    }

    /// Keeps a copy of `file` in the cache, dropping the oldest past the cap.
    async fn keep(&self, key: (String, String), file: &Path) {
        let Ok(size) = tokio::fs::metadata(file).await.map(|m| m.len()) else { return };
        if size > self.limits.cache_size || tokio::fs::create_dir_all(&self.cache_dir).await.is_err() {
            return;
        }
        let path = self.cache_dir.join(uuid::Uuid::new_v4().simple().to_string());
        if copy(file, &path).await.is_err() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else { return };
        cache.push((key, path, size));
        while cache.iter().map(|(_, _, s)| s).sum::<u64>() > self.limits.cache_size && !cache.is_empty() {
            let (_, old, _) = cache.remove(0);
            let _ = std::fs::remove_file(old);
        }
    }

    /// `value` into `target`: a download, or a copy of a local file.
    async fn download(&self, value: &str, target: &Path) -> Result<(), String> {
        if let Some(path) = value.strip_prefix("file://") {
            return copy(Path::new(path), target).await;
        }
        if value.starts_with('/') {
            return copy(Path::new(value), target).await;
        }
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return Err("only http://, https://, file:// and absolute paths are supported".to_owned());
        }
        let mut url: Uri = value.parse().map_err(|e| format!("not a URI: {e}"))?;
        for _ in 0..5 {
            match self.get(&url, target).await? {
                None => return Ok(()),
                Some(next) => url = next,
            }
        }
        Err("more than 5 redirects".to_owned())
    }

    /// One GET; `Some` with the next URI on a redirect.
    async fn get(&self, url: &Uri, target: &Path) -> Result<Option<Uri>, String> {
        let https = url.scheme_str() == Some("https");
        let host = url.host().ok_or("no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("connect: {e}"))?;
        let io: Box<dyn Io> = if https {
            let config = self.tls_config()?;
            let name = mesos_executor::driver::tls::server_name(&host).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config));
            Box::new(tls.connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(64 * 1024)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let path = url.path_and_query().map_or("/", |p| p.as_str());
        let authority = url.authority().map_or(host.clone(), |a| a.to_string());
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_redirection() {
            driver.abort();
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or("a redirect without a Location")?;
            let next = if location.starts_with('/') {
                format!(
                    "{}://{}{location}",
                    url.scheme_str().unwrap_or("http"),
                    url.authority().map_or("", |a| a.as_str())
                )
            } else {
                location.to_owned()
            };
            return next.parse().map(Some).map_err(|e| format!("bad redirect {location:?}: {e}"));
        }
        if status != StatusCode::OK {
            driver.abort();
            return Err(format!("the server answered {status}"));
        }
        if let Some(length) =
            response.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && length > self.limits.max_size
        {
            driver.abort();
            return Err(format!("{length} bytes is over the {}-byte cap", self.limits.max_size));
        }
        let mut file = tokio::fs::File::create(target).await.map_err(|e| e.to_string())?;
        let mut body = response.into_body();
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("download broke off: {e}"))?;
            if let Some(data) = frame.data_ref() {
                written = written.saturating_add(data.len() as u64);
                if written > self.limits.max_size {
                    driver.abort();
                    return Err(format!("the download passed the {}-byte cap", self.limits.max_size));
                }
                file.write_all(data).await.map_err(|e| e.to_string())?;
            }
        }
        file.flush().await.map_err(|e| e.to_string())?;
        driver.abort();
        Ok(None)
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        let mut env = (*self.tls).clone().unwrap_or_default();
        if env.ca_file.is_none() && env.ca_dir.is_none() {
            // The agent's CA is not set: the system's bundle.
            env.ca_dir = Some(PathBuf::from("/etc/ssl/certs"));
        }
        mesos_executor::driver::tls::client_config(&env).map_err(|e| format!("TLS settings: {e}"))
    }
}

/// A cached download: its (URI, user) key, where it is, its size.
type CacheEntry = ((String, String), PathBuf, u64);

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

async fn copy(from: &Path, to: &Path) -> Result<(), String> {
    tokio::fs::copy(from, to).await.map(drop).map_err(|e| format!("{}: {e}", from.display()))
}

/// The last segment of the URI's path, as upstream names the fetched file.
fn basename(value: &str) -> Result<String, String> {
    let path = value.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    if name.is_empty() || name == "." || name == ".." {
        return Err("the URI names no file (give output_file)".to_owned());
    }
    Ok(name.to_owned())
}

/// `path` if it stays inside the directory it is joined to.
fn safe_relative(path: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(format!("{} leaves the directory", path.display())),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("an empty path".to_owned());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tar,
    TarGz,
    TarBz2,
    TarXz,
    Zip,
}

fn archive_kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
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
    } else {
        None
    }
}

/// A reader that fails past `left` bytes (a decompression bomb stops at the cap).
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left =
            self.left.checked_sub(n as u64).ok_or_else(|| io::Error::other("the archive unpacks past the size cap"))?;
        Ok(n)
    }
}

/// Unpacks `archive` into `dir`, refusing anything that would land outside it.
fn extract(archive: &Path, dir: &Path, max: u64) -> Result<(), String> {
    let kind = archive_kind(archive).ok_or("not an archive")?;
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let reader = io::BufReader::new(file);
    let result = match kind {
        Kind::Tar => untar(Capped { inner: reader, left: max }, dir),
        Kind::TarGz => untar(Capped { inner: flate2::read::GzDecoder::new(reader), left: max }, dir),
        Kind::TarBz2 => untar(Capped { inner: bzip2::read::BzDecoder::new(reader), left: max }, dir),
        Kind::TarXz => {
            // lzma-rs writes what it decompresses: to a capped temporary file, then untar.
            let tmp = tempfile::tempfile_in(dir).map_err(|e| e.to_string())?;
            let mut out = CappedWrite { inner: io::BufWriter::new(tmp), left: max };
            lzma_rs::xz_decompress(&mut io::BufReader::new(reader), &mut out).map_err(|e| format!("xz: {e}"))?;
            let mut tmp = out.inner.into_inner().map_err(|e| e.to_string())?;
            io::Seek::rewind(&mut tmp).map_err(|e| e.to_string())?;
            untar(Capped { inner: io::BufReader::new(tmp), left: max }, dir)
        }
        Kind::Zip => unzip(archive, dir, max),
    };
    result.map_err(|e| {
        format!(
            "cannot extract {}: {e}",
            archive.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        )
    })
}

struct CappedWrite<W> {
    inner: W,
    left: u64,
}

impl<W: io::Write> io::Write for CappedWrite<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.left = self
            .left
            .checked_sub(buf.len() as u64)
            .ok_or_else(|| io::Error::other("the archive unpacks past the size cap"))?;
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where an entry named `name` goes in `dir`, if it stays inside and no part of the way
/// is a link (an earlier entry could have made one to lead writes out).
fn destination(dir: &Path, name: &Path) -> Result<PathBuf, String> {
    let relative = safe_relative(name).map_err(|e| format!("entry {}: {e}", name.display()))?;
    let mut at = dir.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        if i + 1 < parts.len() && std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("entry {} would be written through a link", name.display()));
        }
    }
    Ok(at)
}

fn untar(reader: impl Read, dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        let target = destination(dir, &name)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry.link_name().map_err(|e| e.to_string())?.ok_or("a link without a target")?.into_owned();
            // The link must resolve inside the directory, from where it stands.
            let base = if kind.is_symlink() {
                name.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                PathBuf::new()
            };
            let resolved = lexical(&base.join(&link));
            if link.is_absolute() || resolved.is_none() {
                return Err(format!("entry {} links outside the directory ({})", name.display(), link.display()));
            }
            let _ = std::fs::remove_file(&target);
            if kind.is_symlink() {
                std::os::unix::fs::symlink(&link, &target).map_err(|e| e.to_string())?;
            } else {
                let source = destination(dir, &link)?;
                std::fs::hard_link(source, &target).map_err(|e| e.to_string())?;
            }
            continue;
        }
        if !kind.is_file() && kind != tar::EntryType::Continuous {
            return Err(format!("entry {} is a {kind:?}, which is not unpacked", name.display()));
        }
        let _ = std::fs::remove_file(&target);
        let mut out = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        io::copy(&mut entry, &mut out).map_err(|e| e.to_string())?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `path` with `.` and `..` resolved without the file system; `None` if it climbs out.
fn lexical(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn unzip(archive: &Path, dir: &Path, max: u64) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let file = std::fs::File::open(archive).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| e.to_string())?;
    let mut left = max;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let name = PathBuf::from(entry.name().map_err(|e| e.to_string())?.as_ref());
        let target = destination(dir, &name)?;
        if entry.is_symlink() {
            return Err(format!("entry {} is a link, which is not unpacked from zip", name.display()));
        }
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut out = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        let mut capped = Capped { inner: &mut entry, left };
        io::copy(&mut capped, &mut out).map_err(|e| e.to_string())?;
        left = capped.left;
        if let Some(mode) = entry.unix_mode() {
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode & 0o777));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(basename("http://h/a/b/app.tar.gz?x=1").unwrap(), "app.tar.gz");
        assert!(basename("http://h/").is_err());
        assert!(safe_relative(Path::new("../x")).is_err());
        assert!(safe_relative(Path::new("/etc/passwd")).is_err());
        assert_eq!(safe_relative(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
        assert_eq!(archive_kind(Path::new("x.TGZ")), Some(Kind::TarGz));
        assert_eq!(archive_kind(Path::new("x.txt")), None);
        assert_eq!(lexical(Path::new("a/../b")), Some(PathBuf::from("b")));
        assert_eq!(lexical(Path::new("a/../../b")), None);
    }

    fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, content) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                header.set_link_name(content).unwrap();
                // Names with `..` cannot be set through the checked setter.
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, &[][..]).unwrap();
            } else {
                header.set_size(content.len() as u64);
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, content.as_bytes()).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn hostile_archives_are_refused_naming_the_entry() {
        type Entries<'a> = &'a [(&'a str, tar::EntryType, &'a str)];
        let cases: [(Entries<'_>, &str); 4] = [
            (&[("../evil", tar::EntryType::Regular, "x")], "../evil"),
            (&[("/tmp/evil", tar::EntryType::Regular, "x")], "/tmp/evil"),
            (&[("link", tar::EntryType::Symlink, "/etc")], "links outside"),
            (&[("up", tar::EntryType::Symlink, ".."), ("up/evil", tar::EntryType::Regular, "x")], "links outside"),
        ];
        for (entries, says) in cases {
            let dir = tempfile::tempdir().unwrap();
            let sandbox = dir.path().join("sandbox");
            std::fs::create_dir(&sandbox).unwrap();
            let error = untar(&tar_with(entries)[..], &sandbox).unwrap_err();
            assert!(error.contains(says), "{error:?} should say {says:?}");
            assert!(!dir.path().join("evil").exists());
        }
        // A link inside is fine, but nothing is written through a link.
        let dir = tempfile::tempdir().unwrap();
        let inside = tar_with(&[("d/f", tar::EntryType::Regular, "x"), ("l", tar::EntryType::Symlink, "d")]);
        untar(&inside[..], dir.path()).unwrap();
        let through = tar_with(&[("l/g", tar::EntryType::Regular, "y")]);
        assert!(untar(&through[..], dir.path()).unwrap_err().contains("through a link"));
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let big = "x".repeat(100_000);
        let data = tar_with(&[("big", tar::EntryType::Regular, &big)]);
        let error = untar(Capped { inner: &data[..], left: 10_000 }, dir.path()).unwrap_err();
        assert!(error.contains("cap"), "{error}");
    }
}
