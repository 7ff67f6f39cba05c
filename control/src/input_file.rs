//! Reading an operator's input file (leases, device states, roles, control configuration, app
//! catalogue) into memory within a size bound.
//!
//! Owns: [`MAX_INPUT_FILE_BYTES`] and the bounded reads [`read_bounded`] and
//! [`read_to_string_bounded`].
//! Must not: parse what it reads (each loader does), or read past the bound: a file whose size
//! is known is refused before it is read, and any other (a pipe, a file still growing) is read
//! at most one byte past the bound.
//!
//! Inventory documents have their own bound ([`crate::inventory::MAX_DOCUMENT_BYTES`]).

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// Largest input file read (256 MiB): far above any real roles file, lease file or year of
/// device-state reports, far below what would exhaust the appliance's memory.
pub const MAX_INPUT_FILE_BYTES: u64 = 256 * 1024 * 1024;

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::FileTooLarge,
        format!("larger than the input file limit of {limit} bytes"),
    )
}

/// The whole file, or a [`ErrorKind::FileTooLarge`] error naming `limit` when it holds more.
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if meta.is_file() && meta.len() > limit {
        return Err(too_large(limit));
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(limit));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text ([`ErrorKind::InvalidData`] otherwise, as
/// `std::fs::read_to_string` says).
pub fn read_to_string_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_over_the_limit_are_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "12345").unwrap();
        assert_eq!(read_to_string_bounded(&path, 5).unwrap(), "12345");
        let e = read_to_string_bounded(&path, 4).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("limit of 4 bytes"), "{e}");
        // A sparse file far over the limit is refused from its size, without reading it.
        let big = std::fs::File::create(&path).unwrap();
        big.set_len(MAX_INPUT_FILE_BYTES * 8).unwrap();
        let e = read_bounded(&path, MAX_INPUT_FILE_BYTES).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::FileTooLarge);
    }

    #[test]
    fn streams_are_read_at_most_one_byte_past_the_limit() {
        // /dev/zero has no size: the bound is what stops the read.
        let e = read_bounded(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("limit of 1024 bytes"), "{e}");
        assert_eq!(read_bounded(Path::new("/dev/null"), 0).unwrap(), b"");
    }
}
