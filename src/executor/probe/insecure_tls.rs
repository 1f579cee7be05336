//! TLS for HTTP checks, as upstream's `curl -k`: the handshake is real (the server proves
//! it holds the key of the certificate it shows), but the certificate is not checked
//! against any root or name. A health check asks "does the task answer", and the task's
//! certificate rarely names the loopback address it is reached on. Never used for
//! anything but checks of a task by its own executor.

use std::sync::{Arc, OnceLock};

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(crate::driver::tls::NoVerification(Arc::clone(&provider)));
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| {
                    Arc::new(builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
                })
                .map_err(|e| format!("TLS settings: {e}"))
        })
        .clone()
}

/// TLS over `tcp` to `host` (for SNI when it is a name), certificate unchecked.
pub(super) async fn connect(host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("TLS name {host:?}: {e}"))?;
    tokio_rustls::TlsConnector::from(config()?).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))
}
