//! TLS to an https agent, configured from the variables libprocess reads
//! (`LIBPROCESS_SSL_CA_FILE`, `_CA_DIR`, `_CERT_FILE`, `_KEY_FILE`, `_VERIFY_CERT`).
//!
//! The agent's certificate is verified against the configured CAs. libprocess defaults
//! to not verifying; we only skip verification when `LIBPROCESS_SSL_VERIFY_CERT=false`
//! says so explicitly, and refuse to guess when no CA is configured.

use std::{path::Path, sync::Arc};

use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};

use crate::env::TlsEnv;

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file is missing or not PEM.
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        /// Which setting.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// https without any CA to verify the agent against.
    #[error(
        "LIBPROCESS_SSL_ENABLED is set but no CA is configured: set LIBPROCESS_SSL_CA_FILE or LIBPROCESS_SSL_CA_DIR, or LIBPROCESS_SSL_VERIFY_CERT=false to skip verification"
    )]
    NoCa,
    /// A client certificate without its key, or the reverse.
    #[error("LIBPROCESS_SSL_CERT_FILE and LIBPROCESS_SSL_KEY_FILE must be set together")]
    HalfClientIdentity,
    /// rustls refused the configuration (the source is rustls's error, opaque: rustls
    /// is not part of our API).
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

fn rustls_error(error: rustls::Error) -> TlsError {
    TlsError::Rustls(Box::new(error))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File { what, path: path.display().to_string(), reason: reason.to_string() }
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The rustls client configuration for `tls`.
///
/// # Errors
/// A file cannot be read, no CA is configured while verification is on, or rustls
/// rejects the result.
pub fn client_config(tls: &TlsEnv) -> Result<ClientConfig, TlsError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(rustls_error)?;
    let verify = tls.verify_cert != Some(false);
    let builder = if verify {
        let mut roots = RootCertStore::empty();
        if let Some(file) = &tls.ca_file {
            for cert in read_certs("CA certificates", file)? {
                roots.add(cert).map_err(|e| file_error("CA certificates", file, e))?;
            }
        }
        if let Some(dir) = &tls.ca_dir {
            let entries = std::fs::read_dir(dir).map_err(|e| file_error("CA directory", dir, e))?;
            for entry in entries.flatten() {
                if let Ok(certs) = read_certs("CA certificates", &entry.path()) {
                    for cert in certs {
                        let _ = roots.add(cert);
                    }
                }
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoCa);
        }
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("client certificate", cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("client key", key, e))?;
            builder.with_client_auth_cert(chain, key).map_err(rustls_error)
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(TlsError::HalfClientIdentity),
    }
}

/// The name to verify the agent's certificate against: its IP address or host name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|e| rustls_error(rustls::Error::General(e.to_string())))
}

/// Accepts any certificate (only with `LIBPROCESS_SSL_VERIFY_CERT=false`, and for HTTP
/// checks as upstream's `curl -k`), but still checks the handshake signatures.
#[derive(Debug)]
pub(crate) struct NoVerification(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
