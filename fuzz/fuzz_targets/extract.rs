//! The fetcher's extractor (`bin/fetch/extract.rs`) on arbitrary bytes as each archive
//! kind (the first byte picks it), into a fresh directory: never panics, and writes
//! nothing beside the sandbox directory. Run with a memory cap (`-rss_limit_mb`, see
//! `scripts/fuzz.sh`): a bomb must stop at the size cap or the xz memory limit.
#![no_main]

#[path = "../../bin/fetch/beneath.rs"]
mod beneath;
#[path = "../../bin/fetch/extract.rs"]
mod extract;
#[path = "../../bin/fetch/tar_guard.rs"]
mod tar_guard;

use std::path::Path;

use extract::{Bounds, Kind};

const NAMES: [&str; 6] = ["a.tar", "a.tar.gz", "a.tar.bz2", "a.tar.xz", "a.zip", "a.txt.gz"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else { return };
    let name = NAMES[usize::from(which) % NAMES.len()];
    let kind = Kind::of(name).expect("an archive name");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sandbox = dir.path().join("sandbox");
    std::fs::create_dir(&sandbox).expect("the sandbox");
    std::fs::write(sandbox.join(name), data).expect("the archive");
    let root = beneath::Root::open(&sandbox).expect("the sandbox opens");
    let bounds = Bounds { max_size: 16 << 20, xz_memlimit: 8 << 20 };
    let _ = extract::extract(&root, Path::new(name), kind, bounds);
    let beside: Vec<_> = std::fs::read_dir(dir.path()).expect("the directory").flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, ["sandbox"], "written outside the sandbox");
});
