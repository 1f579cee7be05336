//! Replays every input kept under `tests/fuzz_regressions/<target>/` (crashes found by
//! `scripts/fuzz.sh`, and seeds) through the fuzz targets' own checks
//! (`fuzz/checks.rs`), so that a fixed finding stays fixed.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

use mesos_executor::ContentType;

fn replay(target: &str, check: impl Fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions").join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no inputs in {}", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(outcome.is_ok(), "{} fails again", input.display());
    }
}

#[test]
fn recordio_inputs() {
    replay("recordio", checks::recordio);
}

#[test]
fn event_protobuf_inputs() {
    replay("event_protobuf", |d| checks::event(d, ContentType::Protobuf));
}

#[test]
fn event_json_inputs() {
    replay("event_json", |d| checks::event(d, ContentType::Json));
}

#[test]
fn agent_answer_call_inputs() {
    replay("agent_answer_call", checks::call_answer);
}

#[test]
fn agent_answer_subscribe_inputs() {
    replay("agent_answer_subscribe", checks::subscribe_answer);
}
