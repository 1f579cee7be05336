//! A reader in front of the `tar` crate that refuses oversized metadata records before
//! the crate reads them: the crate reads a GNU long name or link (`L`, `K`) and a PAX
//! header (`x`, `g`) whole into memory, whatever size the header claims, so a 1.3 MB
//! `.tar.gz` could make it hold 1.2 GB. This reader follows the archive's 512-byte
//! blocks (headers, GNU sparse extension blocks, data padded to 512, and a PAX `size`
//! that overrides the next header's) and fails, naming the record, when one is larger
//! than [`MAX_RECORD`].

use std::io::{self, Read};

/// The largest metadata record accepted: a long name is at most `PATH_MAX` (4 KiB), and
/// PAX headers in the wild (`git archive`'s comment, long names, times) are far smaller.
pub const MAX_RECORD: u64 = 16 * 1024;

const BLOCK: usize = 512;

/// See the module docs.
pub struct TarGuard<R> {
    inner: R,
    /// A header or extension block being read, and how much of it is here.
    block: [u8; BLOCK],
    filled: usize,
    /// Bytes of `block` already handed out (the block is passed on once whole).
    given: usize,
    /// Data bytes (padding included) left before the next header.
    skip: u64,
    /// GNU sparse extension blocks follow the header.
    extension: bool,
    /// The data (padded) after the extension blocks.
    pending_data: u64,
    /// The data of a PAX header being collected, to find its `size`.
    pax: Option<Vec<u8>>,
    /// A PAX `size` for the next entry.
    next_size: Option<u64>,
    /// The first of two zero blocks was seen: what follows is not read as headers.
    ended: bool,
}

impl<R: Read> TarGuard<R> {
    pub fn new(inner: R) -> Self {
        TarGuard {
            inner,
            block: [0; BLOCK],
            filled: 0,
            given: BLOCK,
            skip: 0,
            extension: false,
            pending_data: 0,
            pax: None,
            next_size: None,
            ended: false,
        }
    }

    /// Reads the header (or extension) block now whole in `self.block`.
    fn inspect(&mut self) -> io::Result<()> {
        let block = &self.block;
        if self.extension {
            // An `oldgnu_sparse_header` extension: 21 entries, then `isextended` at 504.
            self.extension = block[504] != 0;
            if !self.extension {
                self.skip = self.pending_data;
            }
            return Ok(());
        }
        if block.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let kind = block[156];
        let stated =
            octal_or_binary(&block[124..136]).ok_or_else(|| io::Error::other("a tar header with a bad size field"))?;
        let size =
            if matches!(kind, b'x' | b'g' | b'L' | b'K') { stated } else { self.next_size.take().unwrap_or(stated) };
        if matches!(kind, b'x' | b'g' | b'L' | b'K') && size > MAX_RECORD {
            let what = match kind {
                b'L' => "a GNU long name",
                b'K' => "a GNU long link name",
                b'x' => "a PAX header",
                _ => "a PAX global header",
            };
            return Err(io::Error::other(format!(
                "{what} record of {size} bytes (over the {MAX_RECORD}-byte limit) after entry {:?}",
                String::from_utf8_lossy(&block[..100]).trim_end_matches('\0')
            )));
        }
        if kind == b'x' {
            self.pax = Some(Vec::with_capacity(usize::try_from(size).unwrap_or(0)));
        }
        let padded = size.checked_add(511).map(|s| s & !511).ok_or_else(|| io::Error::other("a tar size overflows"))?;
        if kind == b'S' && block[482] != 0 {
            self.extension = true;
            self.pending_data = padded;
        } else {
            self.skip = padded;
        }
        Ok(())
    }
}

/// A tar numeric field: octal digits (spaces and NULs around), or base-256 when the
/// first byte has its high bit set.
fn octal_or_binary(field: &[u8]) -> Option<u64> {
    if field.first()? & 0x80 != 0 {
        let mut value: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?.trim_matches(|c| c == ' ' || c == '\0');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// The `size` record of a PAX header (`<len> size=<n>\n`), if any.
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        if let Some(value) = record.strip_prefix(b"size=") {
            return std::str::from_utf8(value).ok()?.trim_end_matches('\n').parse().ok();
        }
        rest = &rest[len..];
    }
    None
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.given < BLOCK {
            let n = out.len().min(BLOCK - self.given);
            out[..n].copy_from_slice(&self.block[self.given..self.given + n]);
            self.given += n;
            return Ok(n);
        }
        if self.ended {
            return self.inner.read(out);
        }
        if self.skip > 0 {
            let want = out.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
            let n = self.inner.read(&mut out[..want])?;
            self.skip = self.skip.saturating_sub(n as u64);
            if let Some(pax) = &mut self.pax {
                pax.extend_from_slice(&out[..n]);
                if self.skip == 0 {
                    self.next_size = pax_size(pax);
                    self.pax = None;
                }
            }
            return Ok(n);
        }
        // At a block boundary: read a whole block before passing any of it on.
        while self.filled < BLOCK {
            let n = self.inner.read(&mut self.block[self.filled..])?;
            if n == 0 {
                if self.filled == 0 {
                    return Ok(0);
                }
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the archive ends inside a tar header"));
            }
            self.filled += n;
        }
        self.filled = 0;
        self.given = 0;
        self.inspect()?;
        self.read(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u8, size: u64) -> [u8; 512] {
        let mut block = [0u8; 512];
        block[..4].copy_from_slice(b"name");
        block[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        block[156] = kind;
        block
    }

    #[test]
    fn an_oversized_long_name_is_refused_before_it_is_read() {
        let mut data = header(b'L', 1 << 30).to_vec();
        data.extend(std::iter::repeat_n(b'a', 4096));
        let mut out = Vec::new();
        let error = TarGuard::new(&data[..]).read_to_end(&mut out).unwrap_err();
        assert!(error.to_string().contains("GNU long name record of 1073741824 bytes"), "{error}");
    }

    #[test]
    fn a_small_archive_passes_through_unchanged() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        builder.append_data(&mut h, "x".repeat(200), &b"abc"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(600);
        builder.append_data(&mut h, "y", &[1u8; 600][..]).unwrap();
        let data = builder.into_inner().unwrap();
        let mut out = Vec::new();
        TarGuard::new(&data[..]).read_to_end(&mut out).unwrap();
        let first_difference = out.iter().zip(&data).position(|(a, b)| a != b);
        assert_eq!((out.len(), first_difference), (data.len(), None));
        assert_eq!(pax_size(b"11 size=42\n"), Some(42));
        assert_eq!(octal_or_binary(b"0000644 \0"), Some(0o644));
    }
}
