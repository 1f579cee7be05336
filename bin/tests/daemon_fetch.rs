//! Task URIs fetched by the daemon before the task starts: from a local HTTP server on
//! port 0 and from `file://` paths, with `output_file`, `executable`, `extract` (tar.gz,
//! zip), `cache`; a failed fetch fails the task naming the URI and starts nothing; a
//! hostile archive writes nothing outside the sandbox.

mod support;

use std::{
    collections::HashMap,
    convert::Infallible,
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use fake_agent::AgentConfig;
use http_body_util::Full;
use hyper::{Response, StatusCode, service::service_fn};
use mesos_executor::proto::v1::{
    CommandInfo, TaskGroupInfo, TaskInfo, TaskState, command_info::Uri, task_status::Reason,
};
use support::daemon::*;

/// Serves `files` at `/<name>` on `127.0.0.1:0` (and `/moved/<name>` as a redirect);
/// counts requests.
async fn serve(files: HashMap<String, Vec<u8>>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let (files, counter) = (Arc::new(files), Arc::clone(&hits));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (files, counter) = (Arc::clone(&files), Arc::clone(&counter));
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let path = request.uri().path().trim_start_matches('/').to_owned();
                    let mut response = match (path.strip_prefix("moved/"), files.get(&path)) {
                        (Some(name), _) => {
                            let mut r = Response::new(Full::new(Bytes::new()));
                            *r.status_mut() = StatusCode::FOUND;
                            r.headers_mut().insert(hyper::header::LOCATION, format!("/{name}").parse().unwrap());
                            r
                        }
                        (None, Some(data)) => Response::new(Full::new(Bytes::from(data.clone()))),
                        (None, None) => Response::new(Full::new(Bytes::from_static(b"no such file"))),
                    };
                    if path.strip_prefix("moved/").is_none() && !files.contains_key(&path) {
                        *response.status_mut() = StatusCode::NOT_FOUND;
                    }
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (base, hits)
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
    let out = std::fs::read_to_string(d.sandbox.join("out.txt")).unwrap();
    assert_eq!(out, "tool ran\nfrom the archivefrom the zip100000\n");
    assert!(d.sandbox.join("app.tar.gz").exists(), "the archive stays beside what it held, as upstream");
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
        assert!(!d.sandbox.join(file).exists(), "{file}: a process started");
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
    assert!(!d.sandbox.join("ran").exists());
}
