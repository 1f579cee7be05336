//! The probes as upstream's checker runs them: `curl -s -S -L -k` for HTTP (redirects
//! followed, https without certificate checks), the check's own environment on top of the
//! task's, and a timed-out command's whole process group killed.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::proto::v1::{Environment, environment};

/// Answers `GET /ok` with 204, `GET /old` with a redirect to `/ok`, anything else 503.
async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut s: S) {
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let reply: &[u8] = if head.starts_with("GET /ok ") {
        b"HTTP/1.1 204 No Content\r\n\r\n"
    } else if head.starts_with("GET /old ") {
        b"HTTP/1.1 302 Found\r\nlocation: ok\r\ncontent-length: 0\r\n\r\n"
    } else {
        b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n"
    };
    let _ = s.write_all(reply).await;
    let _ = s.shutdown().await;
}

#[tokio::test]
async fn http_follows_redirects_as_curl_l_does() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = u32::from(listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(answer(s));
        }
    });
    assert_eq!(http(port, Some("/old"), Protocol::IPv4).await, Ok(204));
}

#[tokio::test]
async fn https_is_checked_without_verifying_the_certificate_as_curl_k_does() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["not-localhost.example".to_owned()]).unwrap().self_signed(&key).unwrap();
    let certs = vec![cert.der().clone()];
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = u32::from(listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    answer(tls).await;
                }
            });
        }
    });
    assert_eq!(http_scheme("https", port, Some("/ok"), Protocol::IPv4).await, Ok(204));
    assert_eq!(http_scheme("https", port, Some("/old"), Protocol::IPv4).await, Ok(204));
    assert!(http_scheme("gopher", port, Some("/ok"), Protocol::IPv4).await.unwrap_err().contains("gopher"));
}

#[tokio::test]
async fn a_command_gets_its_own_environment_over_the_tasks() {
    let info = CommandInfo {
        value: Some(r#"test "$MINE" = check && test "$SHARED" = check && test "$TASKS" = task"#.into()),
        environment: Some(Environment {
            variables: vec![
                environment::Variable { name: "MINE".into(), value: Some("check".into()), ..Default::default() },
                environment::Variable { name: "SHARED".into(), value: Some("check".into()), ..Default::default() },
            ],
        }),
        ..Default::default()
    };
    let task: BTreeMap<String, String> =
        [("SHARED", "task"), ("TASKS", "task")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
    assert_eq!(command(&info, &task, Path::new("/"), None).await, Ok(Exit::Code(0)));
}

#[tokio::test]
async fn a_command_that_times_out_loses_its_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
    let info = CommandInfo { value: Some(script), ..Default::default() };
    let ran =
        tokio::time::timeout(Duration::from_millis(500), command(&info, &BTreeMap::new(), dir.path(), None)).await;
    assert!(ran.is_err(), "the command should still be running");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let mut gone = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rfind(')').is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        if stat.is_empty() || zombie {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !gone {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(gone, "the background sleep {pid} outlived its timed-out check");
}
