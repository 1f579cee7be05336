//! Trimming the daemon's resident memory once it is idle.
//!
//! The kernel maps code in 64 KiB "fault-around" chunks, so after start-up most of our
//! executable's text and of libc is resident although an idle executor runs almost
//! none of it: 4.2 MiB of clean, shared, file-backed pages against 0.5 MiB of our own
//! memory. `MADV_DONTNEED` on read-only, file-backed mappings without private modified
//! pages drops those page-table entries; code still in use comes back as minor faults
//! from the page cache. This is the only `unsafe` of the daemon.

use std::ops::Range;

/// Read-only, private, file-backed mappings with no anonymous (modified) pages, as
/// listed in `/proc/self/smaps`.
fn clean_file_mappings(smaps: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut current: Option<(Range<usize>, bool)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|(s, _)| s.chars().all(|c| c.is_ascii_hexdigit())) {
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let eligible = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
            let range =
                usize::from_str_radix(start, 16).ok().zip(usize::from_str_radix(end, 16).ok()).map(|(s, e)| s..e);
            current = range.map(|r| (r, eligible));
        } else if first == "Anonymous:" {
            let anonymous_kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
            if let Some((range, true)) = current.take()
                && anonymous_kib == 0
            {
                out.push(range);
            }
        }
    }
    out
}

/// Drops the page-table entries of clean, read-only file mappings. Returns the bytes
/// of address space advised.
pub fn trim() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return 0 };
    let mut advised = 0;
    for range in clean_file_mappings(&smaps) {
        let Some(start) = std::ptr::NonNull::new(range.start as *mut std::ffi::c_void) else { continue };
        let len = range.end - range.start;
        // SAFETY: the range is a whole mapping that is read-only, private, backed by a
        // file, and holds no anonymous page (smaps `Anonymous: 0 kB`), so nothing in it
        // differs from the file. MADV_DONTNEED only drops page-table entries: the next
        // access maps the same bytes again from the page cache. No Rust reference sees
        // different contents, and the daemon is single-threaded, so no other thread
        // can write (or mprotect) the mapping meanwhile.
        let result = unsafe { nix::sys::mman::madvise(start, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED) };
        if result.is_ok() {
            advised += len;
        }
    }
    advised
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_qualify() {
        let smaps = "\
5600-5700 r-xp 00000000 fe:01 12 /usr/bin/x
Rss:                  64 kB
Anonymous:             0 kB
5700-5800 r--p 00000000 fe:01 12 /usr/bin/x
Anonymous:             4 kB
5800-5900 rw-p 00000000 fe:01 12 /usr/bin/x
Anonymous:             0 kB
5900-5a00 r--p 00000000 00:00 0
Anonymous:             0 kB
7f00-7f10 r--p 00000000 fe:01 13 /usr/lib/libc.so.6
Anonymous:             0 kB
";
        assert_eq!(clean_file_mappings(smaps), vec![0x5600..0x5700, 0x7f00..0x7f10]);
    }
}
