//! Hostile review of issue 21 (item 2): "Public signatures use our own types or
//! re-exported ones, never a crate the user has to guess"; the README says "no public
//! signature names another crate". This reads the public modules' sources and lists every
//! public signature (a `pub fn`, a public field, a field of a public enum's variant) that
//! names a crate the library depends on without re-exporting it, by path
//! (`serde_json::Value`) or by a name imported from it (`DescriptorPool`).

use std::path::Path;

/// Dependencies that are not re-exported (`bytes`, `prost`, `tokio`, `prometheus` and
/// `tokio_util`'s codec traits are).
const UNEXPORTED: &[&str] = &[
    "nix",
    "rustix",
    "futures_util",
    "http_body_util",
    "hyper",
    "hyper_util",
    "rustls",
    "rustls_pki_types",
    "url",
    "socket2",
    "tokio_rustls",
    "uuid",
    "serde",
    // `serde_json` and `prost_reflect` are re-exported (`mesos_executor::{serde_json,
    // prost_reflect}`) for `wire`'s signatures.
];

/// The sources of public modules (private ones: only their re-exported error enums
/// would matter, and those are checked through the enum rule below).
const PUBLIC: &[&str] = &[
    "src/lib.rs",
    "src/env.rs",
    "src/metrics.rs",
    "src/proto.rs",
    "src/wire.rs",
    "src/driver/mod.rs",
    "src/driver/events.rs",
    "src/driver/outcome.rs",
    "src/driver/recordio.rs",
    "src/executor/mod.rs",
    "src/executor/check.rs",
    "src/executor/health.rs",
    "src/executor/kill.rs",
    "src/executor/launch.rs",
    "src/executor/probe.rs",
    "src/executor/process.rs",
    "src/executor/task_process.rs",
];

/// Re-exported enums of private modules (`driver::{TlsError, TransportError}`).
const REEXPORTED_ENUMS: &[&str] = &["src/driver/tls.rs", "src/driver/transport.rs"];

/// Names a file imports from an unexported crate (`use prost_reflect::{DescriptorPool, ..}`).
fn imported_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for statement in source.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement.strip_prefix("use ") else { continue };
        let Some(krate) = rest.split("::").next() else { continue };
        if !UNEXPORTED.contains(&krate.trim()) {
            continue;
        }
        let list = rest.rsplit("::").next().unwrap_or_default();
        for name in list.split([',', '{', '}', ' ', '\n']) {
            let name = name.trim();
            if name.chars().next().is_some_and(char::is_uppercase) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// Public signatures of `source`: `pub fn` and `pub async fn` (up to their body), public
/// fields, and the fields of a `pub enum`'s variants.
fn signatures(source: &str, only_enums: bool) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = source.lines().collect();
    let mut i = 0;
    let mut in_test = false;
    while i < lines.len() {
        let line = lines[i].trim();
        if line.starts_with("#[cfg(test)]") {
            in_test = true;
        }
        if in_test {
            break;
        }
        if line.starts_with("pub enum ") {
            let mut j = i + 1;
            while j < lines.len() && lines[j] != "}" {
                let field = lines[j].trim();
                if !field.starts_with("//") && !field.starts_with("#[error") {
                    out.push(format!("{}: {field}", lines[i].trim()));
                }
                j += 1;
            }
            i = j;
        } else if !only_enums && (line.starts_with("pub fn ") || line.starts_with("pub async fn ")) {
            let mut signature = String::new();
            let mut j = i;
            while j < lines.len() {
                signature.push_str(lines[j].trim());
                signature.push(' ');
                if lines[j].trim_end().ends_with('{') || lines[j].trim_end().ends_with(';') {
                    break;
                }
                j += 1;
            }
            out.push(signature);
            i = j;
        } else if !only_enums
            && line.starts_with("pub ")
            && !line.starts_with("pub(")
            && line.split_whitespace().nth(1).is_some_and(|w| w.ends_with(':'))
        {
            out.push(line.to_owned());
        }
        i += 1;
    }
    out
}

fn offending(signature: &str, names: &[String]) -> bool {
    let words: Vec<&str> =
        signature.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).filter(|w| !w.is_empty()).collect();
    words.iter().any(|w| {
        UNEXPORTED.iter().any(|k| w.starts_with(&format!("{k}::")))
            || names.iter().any(|n| w == n || w.ends_with(&format!("::{n}")))
    })
}

#[test]
fn no_public_signature_names_a_crate_that_is_not_re_exported() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for (files, only_enums) in [(PUBLIC, false), (REEXPORTED_ENUMS, true)] {
        for file in files {
            let source = std::fs::read_to_string(root.join(file)).unwrap();
            let names = imported_names(&source);
            for signature in signatures(&source, only_enums) {
                if offending(&signature, &names) {
                    found.push(format!("{file}: {signature}"));
                }
            }
        }
    }
    assert!(found.is_empty(), "public signatures naming a crate users must add themselves:\n{}", found.join("\n"));
}

/// The scan finds what it is meant to find (a test of the test).
#[test]
fn the_scan_sees_an_unexported_type() {
    let source = "use hyper_util::{Connector, Other};\npub fn connector() -> &'static Connector {\n";
    let names = imported_names(source);
    assert!(signatures(source, false).iter().any(|s| offending(s, &names)));
    assert!(offending("pub fn f() -> hyper::StatusCode {", &[]));
    assert!(!offending("pub fn f() -> prost::DecodeError {", &[]));
}
