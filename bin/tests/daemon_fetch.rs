//! Task URIs fetched by the daemon before the task starts: from a local HTTP server on
//! port 0 and from `file://` paths, with `output_file`, `executable`, `extract` (tar.gz,
//! zip), `cache`; a failed fetch fails the task naming the URI and starts nothing; a
//! hostile archive writes nothing outside the sandbox.

mod support;

use std::{
    collections::HashMap,
    convert::Infallible,
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use fake_agent::AgentConfig;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode, service::service_fn};
use mesos_executor::proto::v1::{
    CommandInfo, TaskGroupInfo, TaskInfo, TaskState, command_info::Uri, task_status::Reason,
};
use support::daemon::*;

/// What the test server answers on one path.
#[derive(Clone)]
enum Reply {
    File(Vec<u8>),
    /// A 302 to this `Location`, verbatim.
    Redirect(String),
}

/// The request heads the test server saw, as `name: value` lines.
type Seen = Arc<std::sync::Mutex<Vec<String>>>;

/// Serves `files` at `/<name>` on `127.0.0.1:0` (and `/moved/<name>` as a redirect);
/// counts requests.
async fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let mut replies: HashMap<String, Reply> = HashMap::new();
    for (name, data) in files {
        replies.insert(format!("moved/{name}"), Reply::Redirect(format!("/{name}")));
        replies.insert(name, Reply::File(data));
    }
    let (base, hits, _) = serve_replies(replies).await;
    (base, hits)
}

/// Serves `replies` on `127.0.0.1:0`; counts requests and records their heads.
async fn serve_replies(replies: HashMap<String, Reply>) -> (String, Arc<AtomicUsize>, Seen) {
    serve_replies_over(replies, None).await
}

/// Serves `replies` on `127.0.0.1:0`, over TLS with `tls`.
async fn serve_replies_over(
    replies: HashMap<String, Reply>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, Arc<AtomicUsize>, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base = format!("{scheme}://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let seen: Seen = Arc::default();
    let (replies, counter, heads) = (Arc::new(replies), Arc::clone(&hits), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (replies, counter, heads) = (Arc::clone(&replies), Arc::clone(&counter), Arc::clone(&heads));
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut head = vec![format!("GET {}", request.uri())];
                    for (name, value) in request.headers() {
                        head.push(format!("{name}: {}", value.to_str().unwrap_or("?")));
                    }
                    heads.lock().unwrap().extend(head);
                    let path = request.uri().path().trim_start_matches('/').to_owned();
                    let response: Response<BoxBody> = match replies.get(&path).cloned() {
                        Some(Reply::File(data)) => Response::new(full(data)),
                        Some(Reply::Redirect(location)) => {
                            let mut r = Response::new(full(Vec::new()));
                            *r.status_mut() = StatusCode::FOUND;
                            r.headers_mut().insert(hyper::header::LOCATION, location.parse().unwrap());
                            r
                        }
                        None => {
                            let mut r = Response::new(full(b"no such file".to_vec()));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    async move { Ok::<_, Infallible>(response) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                    Some(tls) => {
                        let Ok(stream) = tls.accept(stream).await else { return };
                        let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    (base, hits, seen)
}

type BoxBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(data: Vec<u8>) -> BoxBody {
    BodyExt::boxed(Full::new(Bytes::from(data)))
}

/// A server on `127.0.0.1:0` that answers any request with a 200 promising 1000 bytes,
/// sends 3, and then nothing for two minutes (a stalled download).
async fn serve_stalling() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc").await;
                tokio::time::sleep(Duration::from_secs(120)).await;
            });
        }
    });
    base
}

/// Where a task's fetched files land in custom mode: its own directory, `tasks/<id>` a
/// link to it (sandbox.rs), owned by the task's user.
fn task_sandbox(sandbox: &Path, task_id: &str) -> PathBuf {
    sandbox.join("tasks").join(task_id)
}

fn as_user(mut task: TaskInfo, user: &str) -> TaskInfo {
    if let Some(command) = task.command.as_mut() {
        command.user = Some(user.into());
    }
    task
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn uri(value: &str) -> Uri {
    Uri { value: value.into(), ..Default::default() }
}

fn fetching(id: &str, uris: Vec<Uri>, command: &str) -> TaskInfo {
    let mut task = shell_task(id, command);
    task.command = Some(CommandInfo { uris, value: Some(command.into()), ..Default::default() });
    task
}

fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (name, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, content.as_bytes()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn zip(files: &[(&str, &str)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content) in files {
        writer.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        writer.write_all(content.as_bytes()).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uris_are_fetched_before_the_task_starts() {
    let files = HashMap::from([
        ("tool.sh".to_owned(), b"#!/bin/sh\necho tool ran\n".to_vec()),
        ("app.tar.gz".to_owned(), tar_gz(&[("app/config.txt", "from the archive")])),
        ("data.bin".to_owned(), vec![7u8; 100_000]),
    ]);
    let (base, hits) = serve(files).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let local = tempfile::tempdir().unwrap();
    let zip_path = local.path().join("bundle.zip");
    std::fs::write(&zip_path, zip(&[("bundle/readme", "from the zip")])).unwrap();
    let uris = vec![
        Uri { executable: Some(true), output_file: Some("bin/tool".into()), ..uri(&format!("{base}/moved/tool.sh")) },
        uri(&format!("{base}/app.tar.gz")),
        uri(&format!("file://{}", zip_path.display())),
        Uri { cache: Some(true), ..uri(&format!("{base}/data.bin")) },
    ];
    let command = "./bin/tool > out.txt && cat app/config.txt bundle/readme >> out.txt && wc -c < data.bin >> out.txt";
    d.agent.agent.launch(fetching("t1", uris, command));
    d.update("t1", TaskState::TaskFinished).await;
    let out = std::fs::read_to_string(task_sandbox(&d.sandbox, "t1").join("out.txt")).unwrap();
    assert_eq!(out, "tool ran\nfrom the archivefrom the zip100000\n");
    assert!(
        task_sandbox(&d.sandbox, "t1").join("app.tar.gz").exists(),
        "the archive stays beside what it held, as upstream"
    );
    // A second task with the same cached URI does not download it again.
    let before = hits.load(Ordering::SeqCst);
    let cached =
        vec![Uri { cache: Some(true), output_file: Some("again.bin".into()), ..uri(&format!("{base}/data.bin")) }];
    d.agent.agent.launch(fetching("t2", cached, "test -s again.bin"));
    d.update("t2", TaskState::TaskFinished).await;
    assert_eq!(hits.load(Ordering::SeqCst), before, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_fails_the_task_naming_the_uri_and_starts_nothing() {
    let (base, _) = serve(HashMap::new()).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let missing = format!("{base}/missing.tar.gz");
    d.agent.agent.launch(fetching("t1", vec![uri(&missing)], "touch ran"));
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ContainerLaunchFailed);
    assert!(failed.message().contains(&missing) && failed.message().contains("404"), "{}", failed.message());
    // In a group, nobody starts when one member's URI fails (the start barrier).
    let ok = fetching("g1", vec![], "touch ran-g1");
    let bad = fetching("g2", vec![uri("file:///no/such/file.txt")], "touch ran-g2");
    d.agent.agent.launch_group(TaskGroupInfo { tasks: vec![ok, bad] });
    let failed = d.update("g1", TaskState::TaskFailed).await;
    assert!(failed.message().contains("/no/such/file.txt"), "{}", failed.message());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for file in ["ran", "ran-g1", "ran-g2"] {
        assert!(!task_sandbox(&d.sandbox, "t1").join(file).exists(), "{file}: a process started");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_archive_writes_nothing_outside_the_sandbox() {
    let marker = format!("escaped-{}", unique_seconds());
    let hostile = tar_gz(&[(&format!("../{marker}"), "gotcha")]);
    let (base, _) = serve(HashMap::from([("evil.tar.gz".to_owned(), hostile)])).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    d.agent.agent.launch(fetching("t1", vec![uri(&format!("{base}/evil.tar.gz"))], "touch ran"));
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert!(failed.message().contains(&marker) && failed.message().contains("leaves"), "{}", failed.message());
    let parent = d.sandbox.parent().unwrap();
    assert!(!parent.join(&marker).exists(), "written outside the sandbox");
    assert!(!task_sandbox(&d.sandbox, "t1").join("ran").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn a_nobody_task_cannot_fetch_files_nobody_cannot_read() {
    assert!(is_root(), "run as root");
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    for (id, value) in [("t1", "/etc/shadow"), ("t2", "file:///etc/shadow")] {
        let task = Uri { output_file: Some(format!("{id}-shadow")), ..uri(value) };
        d.agent.agent.launch(as_user(fetching(id, vec![task], "true"), "nobody"));
        let failed = d.update(id, TaskState::TaskFailed).await;
        assert!(failed.message().contains(value), "{}", failed.message());
        assert!(!task_sandbox(&d.sandbox, id).join(format!("{id}-shadow")).exists(), "{value} was copied");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: the task runs as nobody"]
async fn files_fetched_for_nobody_belong_to_nobody() {
    use std::os::unix::fs::MetadataExt;
    assert!(is_root(), "run as root");
    let files = HashMap::from([("app.tar.gz".to_owned(), tar_gz(&[("app/config.txt", "x")]))]);
    let (base, _) = serve(files).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let task = as_user(fetching("t1", vec![uri(&format!("{base}/app.tar.gz"))], "touch app/new"), "nobody");
    d.agent.agent.launch(task);
    d.update("t1", TaskState::TaskFinished).await;
    let dir = task_sandbox(&d.sandbox, "t1");
    for path in ["app.tar.gz", "app", "app/config.txt", "app/new"] {
        assert_eq!(std::fs::metadata(dir.join(path)).unwrap().uid(), 65534, "{path} is not nobody's");
    }
}

/// A tar of links only: `name -> target`.
fn tar_links(links: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, target) in links {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        header.set_mode(0o777);
        builder.append_link(&mut header, name, target).unwrap();
    }
    builder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_links_leads_nothing_out_of_the_sandbox() {
    // `deep/up` climbs back to the sandbox: lexically inside, and truly inside. `esc`
    // goes through it and one more `..`: lexically inside (it seems to end in d1..d19),
    // but on the file system it is the sandbox's parent.
    let deep: Vec<String> = (1..=20).map(|i| format!("d{i}")).collect();
    let deep = deep.join("/");
    let up = vec![".."; 20].join("/");
    let esc = format!("{deep}/up/..");
    let marker = format!("escaped-{}", unique_seconds());
    let links = tar_links(&[(&format!("{deep}/up"), &up), ("esc", &esc)]);
    let entry = {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(6);
        header.set_mode(0o644);
        builder.append_data(&mut header, format!("esc/{marker}"), &b"gotcha"[..]).unwrap();
        builder.into_inner().unwrap()
    };
    let files = HashMap::from([
        ("links.tar".to_owned(), links),
        ("entry.tar".to_owned(), entry),
        ("plain.txt".to_owned(), b"gotcha".to_vec()),
    ]);
    let (base, _) = serve(files).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let outside = d.sandbox.parent().unwrap().join(&marker);
    // A later URI's output_file through the link, and an archive entry through it.
    let later = Uri { output_file: Some(format!("esc/{marker}")), ..uri(&format!("{base}/plain.txt")) };
    d.agent.agent.launch(fetching("t1", vec![uri(&format!("{base}/links.tar")), later], "true"));
    d.update("t1", TaskState::TaskFailed).await;
    assert!(!outside.exists(), "output_file written outside the sandbox");
    let uris = vec![uri(&format!("{base}/links.tar")), uri(&format!("{base}/entry.tar"))];
    d.agent.agent.launch(fetching("t2", uris, "true"));
    d.update("t2", TaskState::TaskFailed).await;
    assert!(!outside.exists(), "archive entry written outside the sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root: a second user"]
async fn the_cache_is_per_user() {
    assert!(is_root(), "run as root");
    let (base, hits) = serve(HashMap::from([("data.bin".to_owned(), b"secret data".to_vec())])).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let cached =
        |out: &str| Uri { cache: Some(true), output_file: Some(out.into()), ..uri(&format!("{base}/data.bin")) };
    d.agent.agent.launch(fetching("root-task", vec![cached("root.bin")], "true"));
    d.update("root-task", TaskState::TaskFinished).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Every file under the sandbox that holds the cached bytes, other than the task's.
    let mut copies = Vec::new();
    let mut stack = vec![d.sandbox.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "root.bin")
                && std::fs::read(&path).is_ok_and(|b| b == b"secret data")
            {
                copies.push(path.display().to_string());
            }
        }
    }
    assert!(!copies.is_empty(), "nothing was cached");
    let read_any = copies.iter().map(|c| format!("cat '{c}' && exit 1;")).collect::<String>();
    let command = format!("{read_any} true");
    d.agent.agent.launch(as_user(fetching("nobody-task", vec![cached("nobody.bin")], &command), "nobody"));
    d.update("nobody-task", TaskState::TaskFinished).await;
    assert_eq!(hits.load(Ordering::SeqCst), 2, "nobody's fetch was served from root's cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_uri_go_in_authorization_never_in_host() {
    let replies = HashMap::from([("x".to_owned(), Reply::File(b"x".to_vec()))]);
    let (base, _, seen) = serve_replies(replies).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let with_credentials = base.replace("http://", "http://alice:s3cret@");
    d.agent.agent.launch(fetching("t1", vec![uri(&format!("{with_credentials}/x"))], "test -s x"));
    d.update("t1", TaskState::TaskFinished).await;
    let seen = seen.lock().unwrap().clone();
    // base64("alice:s3cret")
    assert!(seen.iter().any(|h| h == "authorization: Basic YWxpY2U6czNjcmV0"), "{seen:?}");
    assert!(!seen.iter().any(|h| h.starts_with("host:") && h.contains("alice")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_resolve_as_rfc_3986_says() {
    let (base, _, _) = serve_replies(HashMap::new()).await;
    let host = base.trim_start_matches("http://").to_owned();
    let replies = HashMap::from([
        ("a/b/parent".to_owned(), Reply::Redirect("../one".into())),
        ("a/b/sibling".to_owned(), Reply::Redirect("two".into())),
        ("scheme-relative".to_owned(), Reply::Redirect(format!("//{host}/a/three"))),
        ("a/one".to_owned(), Reply::File(b"1".to_vec())),
        ("a/b/two".to_owned(), Reply::File(b"2".to_vec())),
        ("loop".to_owned(), Reply::Redirect("loop".into())),
    ]);
    let (base, _, _) = serve_replies(replies).await;
    // The scheme-relative one points at the first (empty) server: give it its own file.
    let third = base.trim_start_matches("http://").to_owned();
    let replies3 = HashMap::from([("scheme-relative".to_owned(), Reply::Redirect(format!("//{third}/a/one")))]);
    let (base3, _, _) = serve_replies(replies3).await;
    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let uris = vec![
        Uri { output_file: Some("one".into()), ..uri(&format!("{base}/a/b/parent")) },
        Uri { output_file: Some("two".into()), ..uri(&format!("{base}/a/b/sibling")) },
        Uri { output_file: Some("three".into()), ..uri(&format!("{base3}/scheme-relative")) },
    ];
    d.agent.agent.launch(fetching("t1", uris, "test \"$(cat one two three)\" = 121"));
    d.update("t1", TaskState::TaskFinished).await;
    let looping = format!("{base}/loop");
    d.agent.agent.launch(fetching("t2", vec![uri(&looping)], "true"));
    let failed = d.update("t2", TaskState::TaskFailed).await;
    assert!(failed.message().contains(&looping) && failed.message().contains("redirect"), "{}", failed.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_fails_naming_the_uri() {
    let base = serve_stalling().await;
    let d = start(AgentConfig::default(), &["--mode=custom", "--fetcher_stall_timeout=1secs"]).await;
    let stalled = format!("{base}/slow.bin");
    d.agent.agent.launch(fetching("t1", vec![uri(&stalled)], "true"));
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert!(failed.message().contains(&stalled) && failed.message().contains("stall"), "{}", failed.message());
}

/// Runs the fetch helper directly on `uris` (JSON `UriSpec`s) into `sandbox`, with
/// `max_size`; its peak memory in KiB, and its report (JSON) or its error line.
fn run_helper(sandbox: &Path, uris: serde_json::Value, max_size: u64) -> (u64, Result<serde_json::Value, String>) {
    let spec = serde_json::json!({
        "user": null,
        "sandbox": sandbox,
        "uris": uris,
        "limits": {
            "max_size": max_size,
            "timeout": {"secs": 120, "nanos": 0},
            "stall": {"secs": 5, "nanos": 0},
            "cache_size": 0,
            "xz_memlimit": 20 << 20,
            "memory": 64 << 20,
        },
        "ca_file": null,
        "cache": null,
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mesos-executor"))
        .arg("--fetch_helper")
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    // The helper has its own deadlines (the stall timeout, the size cap); the test's
    // harness bounds the rest.
    let out = child.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kib = report["peak_kib"].as_u64().unwrap();
    let result = if out.status.success() { Ok(report) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) };
    (kib, result)
}

fn local_uri(path: &Path) -> serde_json::Value {
    serde_json::json!({
        "value": format!("file://{}", path.display()),
        "output_file": null, "executable": false, "extract": true, "cache": null,
    })
}

/// A tar header for one regular file of `size` bytes.
fn file_header(name: &str, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    header.as_bytes().to_vec()
}

/// A raw tar header of `kind` claiming `size` bytes (a metadata record).
fn record_header(kind: u8, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("././@LongLink").unwrap();
    header.set_size(size);
    header.set_entry_type(tar::EntryType::new(kind));
    header.set_cksum();
    header.as_bytes().to_vec()
}

const PEAK_KIB: u64 = 32 * 1024;

/// A gzip stream of `head` then `mib` MiB of `fill`, cut short (no trailer): made in
/// milliseconds by repeating one deflate block (after a MiB of `fill`, its window
/// holds only `fill`, so the same block decodes to the same MiB again).
fn repeated_gz(head: &[u8], fill: u8, mib: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![fill; 1 << 20];
    gz.write_all(head).unwrap();
    gz.write_all(&chunk).unwrap();
    gz.flush().unwrap();
    let mut out = std::mem::take(gz.get_mut());
    gz.write_all(&chunk).unwrap();
    gz.flush().unwrap();
    let block = std::mem::take(gz.get_mut());
    for _ in 1..mib {
        out.extend_from_slice(&block);
    }
    out
}

#[test]
fn hostile_archives_stay_under_32_mib_in_the_fetch_helper() {
    let dir = tempfile::tempdir().unwrap();
    let (work, sandbox) = (dir.path().join("work"), dir.path().join("sandbox"));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&sandbox).unwrap();
    // 1. A .tar.xz of one 96 MiB file of zeros: one xz block (lzma-rs held it whole).
    let xz_path = work.join("zeros.tar.xz");
    {
        let file = std::fs::File::create(&xz_path).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(file, 0);
        xz.write_all(&file_header("zeros", 96 << 20)).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..96 {
            xz.write_all(&zeros).unwrap();
        }
        xz.write_all(&[0u8; 1024]).unwrap();
        xz.finish().unwrap();
    }
    let size = std::fs::metadata(&xz_path).unwrap().len();
    let (kib, report) = run_helper(&sandbox, serde_json::json!([local_uri(&xz_path)]), 1 << 30);
    report.unwrap();
    eprintln!("xz: {size} bytes unpacking to 96 MiB: peak {kib} KiB");
    assert!(kib < PEAK_KIB, "xz: peak {kib} KiB");
    assert_eq!(std::fs::metadata(sandbox.join("zeros")).unwrap().len(), 96 << 20);
    std::fs::remove_file(sandbox.join("zeros")).unwrap();
    // 2. Metadata records claiming 1.2 GB (GNU long name, long link, PAX): refused
    // before they are read, naming them.
    for (kind, says) in [(b'L', "GNU long name"), (b'K', "GNU long link"), (b'x', "PAX header")] {
        let path = work.join(format!("record-{}.tar.gz", kind as char));
        std::fs::write(&path, repeated_gz(&record_header(kind, 1_200_000_000), b'a', 96)).unwrap();
        let (kib, report) = run_helper(&sandbox, serde_json::json!([local_uri(&path)]), 1 << 30);
        let error = report.unwrap_err();
        eprintln!("{says} record of 1.2 GB: peak {kib} KiB");
        assert!(error.contains(says) && error.contains("1200000000"), "{error}");
        assert!(kib < PEAK_KIB, "{says}: peak {kib} KiB");
    }
    // 3. A gzip bomb: a tar whose one file is 4 GiB of zeros, 4 MiB compressed (the
    // same deflate block repeated: zeros stay zeros), stopped by the size cap.
    let bomb = work.join("bomb.tar.gz");
    std::fs::write(&bomb, repeated_gz(&file_header("bomb", 4 << 30), 0, 4096)).unwrap();
    let (kib, report) = run_helper(&sandbox, serde_json::json!([local_uri(&bomb)]), 64 << 20);
    let error = report.unwrap_err();
    eprintln!("4 GiB gzip bomb ({} bytes): peak {kib} KiB", std::fs::metadata(&bomb).unwrap().len());
    assert!(error.contains("cap") && error.contains("bomb"), "{error}");
    assert!(kib < PEAK_KIB, "bomb: peak {kib} KiB");
}

/// Runs a system tool for the test (tar, git), failing the test if it fails.
fn tool(program: &str, args: &[&str], dir: &Path) {
    let status = std::process::Command::new(program).args(args).current_dir(dir).status();
    assert!(status.as_ref().is_ok_and(|s| s.success()), "{program} {args:?}: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_made_by_tar_git_and_zip_are_extracted_as_upstream() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // `tar -C dir .`: a `./` entry first.
    std::fs::create_dir(w.join("dir")).unwrap();
    std::fs::write(w.join("dir/hello.txt"), "hi").unwrap();
    tool("tar", &["-czf", "dot.tar.gz", "-C", "dir", "."], w);
    // `git archive` (as GitHub's tarballs): a PAX global header with the commit id.
    std::fs::create_dir(w.join("repo")).unwrap();
    std::fs::write(w.join("repo/readme"), "from git").unwrap();
    let git = ["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"];
    tool("git", &[&git[..], &["init", "-q"]].concat(), &w.join("repo"));
    tool("git", &[&git[..], &["add", "readme"]].concat(), &w.join("repo"));
    tool("git", &[&git[..], &["commit", "-qm", "x"]].concat(), &w.join("repo"));
    tool("git", &["archive", "--format=tar.gz", "--prefix=proj/", "-o", "../git.tar.gz", "HEAD"], &w.join("repo"));
    // A GNU sparse file: 8 MiB with a hole, then "end".
    let sparse = std::fs::File::create(w.join("sparse.bin")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"end", 8 << 20).unwrap();
    tool("tar", &["--sparse", "--format=gnu", "-cf", "sparse.tar", "sparse.bin"], w);
    std::fs::remove_file(w.join("sparse.bin")).unwrap();
    // A zip with a relative link inside (kept), as `zip --symlinks` makes.
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    writer.start_file("z/target.txt", options).unwrap();
    writer.write_all(b"zip target").unwrap();
    writer.add_symlink("z/link", "target.txt", options).unwrap();
    std::fs::write(w.join("links.zip"), writer.finish().unwrap().into_inner()).unwrap();
    // A bare .gz: gunzipped beside itself without the suffix (upstream runs gunzip).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"plain text").unwrap();
    std::fs::write(w.join("notes.txt.gz"), gz.finish().unwrap()).unwrap();

    let d = start(AgentConfig::default(), &["--mode=custom"]).await;
    let uris = ["dot.tar.gz", "git.tar.gz", "sparse.tar", "links.zip", "notes.txt.gz"]
        .iter()
        .map(|name| uri(&format!("file://{}", w.join(name).display())))
        .collect();
    let command = "test \"$(cat hello.txt)\" = hi && test \"$(cat proj/readme)\" = 'from git' \
        && test $(wc -c < sparse.bin) = 8388611 && test \"$(tail -c 3 sparse.bin)\" = end \
        && test -L z/link && test \"$(cat z/link)\" = 'zip target' && test \"$(cat notes.txt)\" = 'plain text'";
    d.agent.agent.launch(fetching("t1", uris, command));
    let finished = d.update("t1", TaskState::TaskFinished).await;
    assert_eq!(finished.state(), TaskState::TaskFinished);
    assert!(task_sandbox(&d.sandbox, "t1").join("notes.txt.gz").exists());
}

/// A TLS acceptor for 127.0.0.1 with a certificate from a new CA, and that CA's file.
fn test_tls(dir: &Path) -> (tokio_rustls::TlsAcceptor, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "fetch test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
    let ca_file = dir.join("fetch-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_the_fetcher_ca_never_downgrades_and_ignores_the_agent_link_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = test_tls(dir.path());
    let (plain, _, _) = serve_replies(HashMap::from([("x".to_owned(), Reply::File(b"plain".to_vec()))])).await;
    let replies = HashMap::from([
        ("x".to_owned(), Reply::File(b"secure".to_vec())),
        ("down".to_owned(), Reply::Redirect(format!("{plain}/x"))),
    ]);
    let (base, _, _) = serve_replies_over(replies, Some(tls)).await;
    // With --fetcher_ca_file: trusted. A redirect to http is refused, naming it.
    let flag = format!("--fetcher_ca_file={}", ca_file.display());
    let d = start(AgentConfig::default(), &["--mode=custom", &flag]).await;
    d.agent.agent.launch(fetching("t1", vec![uri(&format!("{base}/x"))], "test \"$(cat x)\" = secure"));
    d.update("t1", TaskState::TaskFinished).await;
    let down = format!("{base}/down");
    d.agent.agent.launch(fetching("t2", vec![uri(&down)], "true"));
    let failed = d.update("t2", TaskState::TaskFailed).await;
    assert!(failed.message().contains(&down) && failed.message().contains("https to http"), "{}", failed.message());
    // Without it the server's CA is unknown: the agent link's settings (its CA file,
    // even when it is this CA, and LIBPROCESS_SSL_VERIFY_CERT=false) never reach
    // downloads.
    let link = std::collections::BTreeMap::from([
        ("LIBPROCESS_SSL_CA_FILE".to_owned(), ca_file.display().to_string()),
        ("LIBPROCESS_SSL_VERIFY_CERT".to_owned(), "false".to_owned()),
    ]);
    let config = AgentConfig { executor_environment_variables: link, ..AgentConfig::default() };
    let d = start(config, &["--mode=custom"]).await;
    let secure = format!("{base}/x");
    d.agent.agent.launch(fetching("t1", vec![uri(&secure)], "true"));
    let failed = d.update("t1", TaskState::TaskFailed).await;
    assert!(failed.message().contains(&secure) && failed.message().contains("certificate"), "{}", failed.message());
}
