//! How the driver reaches the agent: https with the CA from `LIBPROCESS_SSL_CA_FILE`
//! (and a clear failure with the wrong CA), and the agent's unix domain socket.

mod support;

use std::{path::Path, time::Duration};

use fake_agent::{AgentConfig, config::AgentTls};
use mesos_executor::{DriverError, DriverHandle, DriverStatus, proto::v1::TaskState};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use support::*;

/// A CA, and an agent certificate for 127.0.0.1 signed by it.
fn pki(dir: &Path, name: &str) -> (AgentTls, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    (
        AgentTls {
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
            ca_file: ca_file.clone(),
            client_ca_pem: None,
        },
        ca_file,
    )
}

/// A client CA (PEM) and, in `dir`, a client certificate and key it signed.
fn client_identity(dir: &Path) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "executor client CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["executor".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_cert.pem(), cert_file, key_file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut tls, _) = pki(dir.path(), "agent");
    let (client_ca, cert_file, key_file) = client_identity(dir.path());
    tls.client_ca_pem = Some(client_ca);
    let h = Harness::start(AgentConfig { tls: Some(tls.clone()), ..AgentConfig::default() }, |c| {
        c.env.tls.cert_file = Some(cert_file);
        c.env.tls.key_file = Some(key_file);
    })
    .await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    drop(h);

    // Without the client certificate the agent refuses the handshake.
    let mut h = Harness::start(AgentConfig { tls: Some(tls), ..AgentConfig::default() }, |_| {}).await;
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    let error = h.log.lines().into_iter().find(|l| l.starts_with("error")).expect("an error callback");
    assert!(error.contains("TLS") && error.contains("CertificateRequired"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_agent_with_the_ca_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = pki(dir.path(), "agent");
    let h = Harness::start(AgentConfig { tls: Some(tls), ..AgentConfig::default() }, |c| {
        assert!(c.env.tls.enabled && c.env.tls.ca_file.is_some());
    })
    .await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    h.wait_all_acked().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_fails_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, _) = pki(dir.path(), "agent");
    let (_, other_ca) = pki(dir.path(), "other");
    let mut h = Harness::start(AgentConfig { tls: Some(tls), ..AgentConfig::default() }, |c| {
        c.env.tls.ca_file = Some(other_ca);
    })
    .await;
    assert_eq!(h.join(Duration::from_secs(5)).await.status, DriverStatus::Stopped);
    let lines = h.log.lines();
    let error = lines.iter().find(|l| l.starts_with("error")).expect("an error callback");
    assert!(error.contains("TLS") && error.contains("UnknownIssuer"), "{error}");
    assert!(h.log.contains("shutdown"));
}

#[tokio::test]
async fn https_without_any_ca_is_refused_at_start() {
    let mut env = mesos_executor::ExecutorEnv::new("fw", "ex", mesos_executor::env::AgentEndpoint::new("127.0.0.1", 1));
    env.tls.enabled = true;
    let mut driver =
        mesos_executor::ExecutorDriver::new(TestExecutor::new(Log::default()), mesos_executor::DriverConfig::new(env));
    let err = driver.start().unwrap_err();
    assert!(matches!(err, DriverError::Transport(_)) && err.to_string().contains("LIBPROCESS_SSL_CA_FILE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_domain_socket_is_used_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let h = Harness::start(AgentConfig { domain_socket: Some(socket.clone()), ..AgentConfig::default() }, |c| {
        assert_eq!(c.env.domain_socket.as_deref(), Some(socket.as_path()));
        // Nothing listens on this TCP port: only the socket can work.
        c.env.agent.port = 1;
    })
    .await;
    h.log.wait_for("registered", Duration::from_secs(5)).await;
    h.agent.agent.launch(task("t1", "finish"));
    h.wait_state("t1", TaskState::TaskFinished).await;
    h.wait_all_acked().await;
}

#[test]
fn handle_and_errors_are_thread_safe() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_send_sync_clone::<DriverHandle>();
    assert_error::<DriverError>();
    assert_error::<mesos_executor::EnvError>();
    assert_error::<mesos_executor::WireError>();
    assert_error::<mesos_executor::driver::RecordIoError>();
    assert_error::<mesos_executor::driver::TransportError>();
}
