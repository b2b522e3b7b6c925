//! Bounds on a layer's tar stream that the `tar` crate does not enforce.
//!
//! `tar` 0.4 reads a GNU long name (`L`), long link (`K`) or PAX extended
//! header (`x`) into memory whole, whatever size its header declares: a
//! layer could make an import allocate gigabytes for one name. [`TarGuard`]
//! sits between the (decompressed) layer and the `tar` crate, follows the
//! archive's 512-byte blocks exactly as `tar` does (header, data rounded up
//! to a block, a PAX `size` overriding the next entry's, GNU sparse
//! extension blocks, the end at the first all-zero header) and fails the
//! read with a [`Violation`] before such an entry's data is read:
//!
//! * a long name or long link over [`MAX_LONG_NAME`] bytes,
//! * a PAX header (`x` or `g`) over [`MAX_PAX_HEADER`] bytes,
//! * more than [`MAX_TAR_ENTRIES`] headers in one layer.
//!
//! The caller turns the violation into `FlistError::Limit`, naming it.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

/// Longest GNU long name or long link accepted (bytes).
pub const MAX_LONG_NAME: u64 = 8 << 10;
/// Largest PAX extended header accepted (bytes).
pub const MAX_PAX_HEADER: u64 = 256 << 10;
/// Most headers (entries, extension headers included) in one layer.
pub const MAX_TAR_ENTRIES: u64 = 2 << 20;

const BLOCK: usize = 512;

/// What a layer's tar stream exceeded (shared with the caller).
pub type Violation = Rc<RefCell<Option<String>>>;

enum Mode {
    /// Collecting a header block.
    Header,
    /// Skipping `left` bytes of data (and keeping them when `keep`).
    Data { left: u64, keep: bool },
    /// GNU sparse extension blocks, then `data` bytes of data.
    SparseExt { data: u64 },
    /// The end of the archive (or a header `tar` itself refuses): stop.
    Done,
}

/// A `Read` that checks a tar stream's extension headers as it passes.
pub struct TarGuard<R> {
    inner: R,
    mode: Mode,
    block: Vec<u8>,
    pax: Vec<u8>,
    pax_size: Option<u64>,
    headers: u64,
    violation: Violation,
}

impl<R: Read> TarGuard<R> {
    /// Guards `inner`; a violation is also written to the returned cell.
    pub fn new(inner: R) -> (Self, Violation) {
        let violation = Violation::default();
        (
            TarGuard {
                inner,
                mode: Mode::Header,
                block: Vec::with_capacity(BLOCK),
                pax: Vec::new(),
                pax_size: None,
                headers: 0,
                violation: violation.clone(),
            },
            violation,
        )
    }

    /// Feeds bytes that passed through; `Err` when a limit is exceeded.
    fn inspect(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.mode {
                Mode::Done => return Ok(()),
                Mode::Data { left, keep } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if *keep {
                        self.pax.extend_from_slice(&bytes[..n]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if *keep {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.mode = Mode::Header;
                    }
                }
                Mode::Header | Mode::SparseExt { .. } => {
                    let n = (BLOCK - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.block.len() == BLOCK {
                        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
                        self.mode = match self.mode {
                            // More extension blocks while byte 504 is 1.
                            Mode::SparseExt { data } if block[504] != 1 => data_mode(data, false),
                            Mode::SparseExt { data } => Mode::SparseExt { data },
                            _ => self.header(&block)?,
                        };
                    }
                }
            }
        }
        Ok(())
    }

    /// The mode after header `h`.
    fn header(&mut self, h: &[u8]) -> Result<Mode, String> {
        if h.iter().all(|b| *b == 0) {
            // `tar` ends the archive at the first zero block.
            return Ok(Mode::Done);
        }
        self.headers += 1;
        if self.headers > MAX_TAR_ENTRIES {
            return Err(format!(
                "a layer has more than {MAX_TAR_ENTRIES} tar entries (the limit)"
            ));
        }
        let Some(mut size) = size_field(&h[124..136]) else {
            // `tar` refuses the header itself.
            return Ok(Mode::Done);
        };
        let kind = h[156];
        let magic = &h[257..265];
        let recognized = magic == b"ustar\x0000" || magic == b"ustar  \x00";
        // As `tar`: pending PAX records belong to the next header that is
        // not a recognized long name, long link or PAX header (a global
        // header takes them too), and override its size only if its type
        // is not an extension type.
        let extension = matches!(kind, b'L' | b'K' | b'x' | b'g');
        let passes_on = recognized && matches!(kind, b'L' | b'K' | b'x');
        let pending = if passes_on {
            None
        } else {
            self.pax_size.take()
        };
        if let (false, Some(p)) = (extension, pending) {
            size = p;
        }
        match kind {
            b'L' | b'K' if size > MAX_LONG_NAME => {
                return Err(format!(
                    "a tar GNU long {} of {size} bytes (the limit is {MAX_LONG_NAME})",
                    if kind == b'L' { "name" } else { "link" }
                ))
            }
            b'x' | b'g' if size > MAX_PAX_HEADER => {
                return Err(format!(
                    "a tar PAX extended header of {size} bytes (the limit is {MAX_PAX_HEADER})"
                ))
            }
            b'x' if recognized => return Ok(data_mode(size, true)),
            b'S' if magic == b"ustar  \x00" && h[482] == 1 => {
                return Ok(Mode::SparseExt { data: size })
            }
            _ => {}
        }
        Ok(data_mode(size, false))
    }
}

/// Data of `size` bytes, padded to whole blocks.
fn data_mode(size: u64, keep: bool) -> Mode {
    match size.checked_add(BLOCK as u64 - 1) {
        None => Mode::Done,
        Some(_) if size == 0 => Mode::Header,
        Some(n) => Mode::Data {
            left: n - n % BLOCK as u64,
            keep,
        },
    }
}

/// A header's size field as `tar` reads it (octal, or base-256).
fn size_field(f: &[u8]) -> Option<u64> {
    if f[0] & 0x80 != 0 {
        let mut n: u64 = 0;
        for b in &f[4..] {
            n = (n << 8) | u64::from(*b);
        }
        return Some(n);
    }
    let end = f.iter().position(|b| *b == 0).unwrap_or(f.len());
    let text = std::str::from_utf8(&f[..end]).ok()?;
    u64::from_str_radix(text.trim(), 8).ok()
}

/// The `size` record of PAX extended header contents, read as `tar`
/// reads it (lines; a malformed one ends the search).
fn pax_size(data: &[u8]) -> Option<u64> {
    for line in data.split(|b| *b == b'\n') {
        if line.is_empty() {
            return None;
        }
        let sp = line.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
        if line.len() + 1 != len {
            return None;
        }
        let kv = &line[sp + 1..];
        let eq = kv.iter().position(|b| *b == b'=')?;
        if &kv[..eq] == b"size" {
            return std::str::from_utf8(&kv[eq + 1..]).ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(v) = self.violation.borrow().as_ref() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                v.clone(),
            ));
        }
        let n = self.inner.read(buf)?;
        if let Err(why) = self.inspect(&buf[..n]) {
            *self.violation.borrow_mut() = Some(why.clone());
            self.mode = Mode::Done;
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
        }
        Ok(n)
    }
}
