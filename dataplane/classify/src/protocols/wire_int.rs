//! Fixed-width integer reads at an offset of a wire buffer, for the binary protocol parsers.
//!
//! Owns: bounds-checked big- and little-endian reads. Must not: panic, allocate, or decide
//! anything about a protocol.

/// The byte at `off`, if present.
pub(crate) fn u8_at(data: &[u8], off: usize) -> Option<u8> {
    data.get(off).copied()
}

/// Big-endian `u16` at `off`, if the two bytes are present.
pub(crate) fn be16(data: &[u8], off: usize) -> Option<u16> {
    let b = data.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Big-endian `u32` at `off`, if the four bytes are present.
pub(crate) fn be32(data: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// Little-endian `u16` at `off`, if the two bytes are present.
pub(crate) fn le16(data: &[u8], off: usize) -> Option<u16> {
    let b = data.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes([*b.first()?, *b.get(1)?]))
}

/// Little-endian `u32` at `off`, if the four bytes are present.
pub(crate) fn le32(data: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_bounds_and_refuses_out_of_bounds() {
        let d = [1u8, 2, 3, 4, 5];
        assert_eq!(be16(&d, 0), Some(0x0102));
        assert_eq!(le16(&d, 3), Some(0x0504));
        assert_eq!(be32(&d, 1), Some(0x0203_0405));
        assert_eq!(le32(&d, 0), Some(0x0403_0201));
        assert_eq!(be16(&d, 4), None);
        assert_eq!(be32(&d, 2), None);
        assert_eq!(be32(&d, usize::MAX), None);
        assert_eq!(u8_at(&d, 5), None);
    }
}
