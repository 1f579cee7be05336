//! Downloads over http and https, with the fetcher's own TLS settings and never the
//! agent link's: the system's roots (`rustls-native-certs`) plus an optional bundle
//! (`--fetcher_ca_file`), verification always on, no client certificate. Credentials in
//! the URI (`http://user:pass@host/x`) are sent as `Authorization: Basic` (never in
//! `Host`) and dropped on a redirect to another host; redirects are resolved as RFC
//! 3986 says, at most [`MAX_REDIRECTS`], never from https to http. A download that sends
//! no byte for the stall timeout fails, as upstream's `--fetcher_stall_timeout`
//! (`src/slave/flags.cpp`; its default, one minute, is in `src/slave/constants.hpp`).

use std::{io::Write, path::Path, sync::Arc, time::Duration};

use rustls_pki_types::{CertificateDer, pem::PemObject};

use super::beneath::Pending;

/// Most redirects followed for one URI.
pub const MAX_REDIRECTS: usize = 5;

/// The HTTP settings of one fetch.
#[derive(Debug, Clone)]
pub struct Http {
    /// An extra CA bundle (PEM), trusted besides the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Longest wait for the next byte.
    pub stall: Duration,
    /// Largest download.
    pub max_size: u64,
}

/// The TLS configuration of downloads.
///
/// # Errors
/// The CA bundle cannot be read, or no root at all is trusted.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("--fetcher_ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("--fetcher_ca_file {}: no certificate in it", path.display()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| format!("--fetcher_ca_file {}: {e}", path.display()))?;
        }
    } else if added == 0 {
        return Err("no trusted root: the system has no CA certificates and --fetcher_ca_file is not set".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Whether a redirect from `from` to `to` may be followed.
fn redirect_allowed(from: &reqwest::Url, to: &reqwest::Url) -> Result<(), String> {
    if from.scheme() == "https" && to.scheme() != "https" {
        return Err(format!("a redirect from https to {} ({to}) is refused", to.scheme()));
    }
    if !matches!(to.scheme(), "http" | "https") {
        return Err(format!("a redirect to {to} is not http or https"));
    }
    Ok(())
}

/// The client of one fetch.
///
/// # Errors
/// The TLS settings cannot be built.
pub fn client(http: &Http) -> Result<reqwest::Client, String> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let from = attempt.previous().last().cloned();
        match from.map(|from| redirect_allowed(&from, attempt.url())) {
            Some(Err(e)) => attempt.error(e),
            _ => attempt.follow(),
        }
    });
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(http.ca_file.as_deref())?)
        .redirect(policy)
        .read_timeout(http.stall)
        .connect_timeout(http.stall)
        .no_proxy()
        .http1_only()
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// Downloads `url` into `out`.
///
/// # Errors
/// The server answers anything but 200, the download stalls, breaks off, or passes the
/// size cap; each said in words (the caller names the URI).
pub async fn get(client: &reqwest::Client, url: &str, http: &Http, out: &mut Pending) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URI: {e}"))?;
    let mut response = client.get(parsed).send().await.map_err(|e| describe(e, http))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("the server answered {status}"));
    }
    if let Some(length) = response.content_length()
        && length > http.max_size
    {
        return Err(format!("{length} bytes is over the {}-byte cap", http.max_size));
    }
    let mut written = 0u64;
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(e, http))? {
        written = written.saturating_add(chunk.len() as u64);
        if written > http.max_size {
            return Err(format!("the download passed the {}-byte cap", http.max_size));
        }
        out.file().write_all(&chunk).map_err(|e| format!("writing: {e}"))?;
    }
    Ok(())
}

/// An error of reqwest in words, with its causes (never the URI's credentials).
fn describe(e: reqwest::Error, http: &Http) -> String {
    if e.is_timeout() {
        return format!("the download stalled: no byte for {}", mesos_executor::env::format_duration(http.stall));
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_never_redirects_to_http() {
        let from = reqwest::Url::parse("https://a/x").unwrap();
        let to = reqwest::Url::parse("http://a/y").unwrap();
        assert!(redirect_allowed(&from, &to).unwrap_err().contains("https to http"));
        assert!(redirect_allowed(&to, &from).is_ok());
        let file = reqwest::Url::parse("file:///etc/passwd").unwrap();
        assert!(redirect_allowed(&to, &file).is_err());
    }

    #[test]
    fn the_system_roots_are_trusted() {
        tls_config(None).unwrap();
        let missing = tls_config(Some(Path::new("/no/such/ca.pem"))).unwrap_err();
        assert!(missing.contains("/no/such/ca.pem"), "{missing}");
    }
}
