//! LDAP identification (RFC 4511) over TCP, and CLDAP (connectionless LDAP) over UDP: one
//! `LDAPMessage` — a BER SEQUENCE of a positive message ID and an application-tagged protocol
//! operation, optionally followed by controls.
//!
//! Owns: BER definite-length parsing of the envelope, the operation tag, and the first fields of
//! the common operations (bind, search, result, entry, extended). Must not: accept indefinite
//! lengths, trailing bytes inside the SEQUENCE, or other BER protocols (SNMP, Kerberos), which
//! differ in the element after the integer.

use super::wire_int::u8_at;
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// Largest message accepted (a big search result entry still fits).
const MAX_MESSAGE: usize = 1 << 24;

/// Outcome of reading one BER element header.
enum Tlv {
    /// Tag, header length, content length.
    Header(u8, usize, usize),
    Cut,
    Bad,
}

/// Reads the tag and definite length at `off` (single-byte tags only).
fn tlv(d: &[u8], off: usize) -> Tlv {
    let Some(tag) = u8_at(d, off) else {
        return Tlv::Cut;
    };
    if tag & 0x1f == 0x1f {
        return Tlv::Bad;
    }
    let Some(first) = u8_at(d, off + 1) else {
        return Tlv::Cut;
    };
    if first < 0x80 {
        return Tlv::Header(tag, 2, usize::from(first));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Tlv::Bad;
    }
    let mut len = 0usize;
    for i in 0..n {
        let Some(b) = u8_at(d, off + 2 + i) else {
            return Tlv::Cut;
        };
        len = (len << 8) | usize::from(b);
    }
    Tlv::Header(tag, 2 + n, len)
}

/// Probes one datagram or the first bytes of a TCP direction for an LDAP message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    let (seq_hdr, seq_len) = match tlv(data, 0) {
        Tlv::Header(0x30, h, l) => (h, l),
        Tlv::Cut if data.first() == Some(&0x30) => return Probe::NeedMore,
        _ => return Probe::NoMatch,
    };
    if !(5..=MAX_MESSAGE).contains(&seq_len) {
        return Probe::NoMatch;
    }
    let end = seq_hdr + seq_len;
    let complete = data.len() >= end;
    if ctx.transport == Transport::Udp && data.len() != end {
        return Probe::NoMatch;
    }
    // messageID INTEGER (0 .. maxInt), 1..=4 content bytes, non-negative.
    let id_off = seq_hdr;
    if u8_at(data, id_off).is_some_and(|t| t != 0x02) {
        return Probe::NoMatch;
    }
    let (id_hdr, id_len) = match tlv(data, id_off) {
        Tlv::Header(0x02, h, l) => (h, l),
        Tlv::Cut => return Probe::NeedMore,
        _ => return Probe::NoMatch,
    };
    if !(1..=4).contains(&id_len) || u8_at(data, id_off + id_hdr).is_some_and(|b| b & 0x80 != 0) {
        return Probe::NoMatch;
    }
    let op_off = id_off + id_hdr + id_len;
    if u8_at(data, op_off).is_some_and(|t| op_shape(t, 0).is_none() && op_shape(t, 1).is_none()) {
        return Probe::NoMatch;
    }
    let (op, op_hdr, op_len) = match tlv(data, op_off) {
        Tlv::Header(t, h, l) => (t, h, l),
        Tlv::Cut => return Probe::NeedMore,
        Tlv::Bad => return Probe::NoMatch,
    };
    let op_end = op_off.saturating_add(op_hdr).saturating_add(op_len);
    if op_end > end {
        return Probe::NoMatch;
    }
    let Some(first_ok) = op_shape(op, op_len) else {
        return Probe::NoMatch;
    };
    // The first element inside a constructed operation.
    if let Some(expected) = first_ok {
        match tlv(data, op_off + op_hdr) {
            Tlv::Header(t, h, l)
                if t == expected && (op_off + op_hdr + h).saturating_add(l) <= op_end => {}
            Tlv::Cut if !complete => return Probe::NeedMore,
            _ => return Probe::NoMatch,
        }
        if !first_field_ok(op, data, op_off + op_hdr) {
            return Probe::NoMatch;
        }
    }
    // After the operation: nothing, or controls [0].
    if complete && op_end < end {
        match tlv(data, op_end) {
            Tlv::Header(0xa0, h, l) if (op_end + h).saturating_add(l) == end => {}
            _ => return Probe::NoMatch,
        }
    }
    let indicator = match op {
        0x60 | 0x63 | 0x66 | 0x68 | 0x6c | 0x6e | 0x77 | 0x42 | 0x4a | 0x50 => "ldap.request",
        _ => "ldap.response",
    };
    Probe::Match {
        indicator,
        meta: Meta::None,
    }
}

/// `None` for tags that are not LDAP operations; otherwise the tag the operation's first inner
/// element must have (`None` inside for primitive operations, whose length is checked here).
fn op_shape(op: u8, len: usize) -> Option<Option<u8>> {
    match op {
        0x60 => Some(Some(0x02)), // bindRequest: version
        0x61 | 0x65 | 0x67 | 0x69 | 0x6b | 0x6d | 0x6f | 0x78 => Some(Some(0x0a)), // LDAPResult
        0x63 | 0x64 | 0x66 | 0x68 | 0x6c | 0x6e => Some(Some(0x04)), // DN first
        0x73 => Some(Some(0x04)), // searchResRef: URI
        0x77 => Some(Some(0x80)), // extendedReq: requestName
        0x42 if len == 0 => Some(None), // unbindRequest: NULL
        0x4a if len > 0 && len < 4096 => Some(None), // delRequest: DN
        0x50 if (1..=4).contains(&len) => Some(None), // abandonRequest: ID
        0x79 => Some(None),       // intermediateResponse
        _ => None,
    }
}

/// Field checks beyond the first tag for bind (version 1..=3) and results (result code range).
fn first_field_ok(op: u8, d: &[u8], at: usize) -> bool {
    match op {
        0x60 => {
            u8_at(d, at + 1) == Some(1) && u8_at(d, at + 2).is_none_or(|v| (1..=3).contains(&v))
        }
        0x61 | 0x65 | 0x67 | 0x69 | 0x6b | 0x6d | 0x6f | 0x78 => {
            u8_at(d, at + 1) == Some(1) && u8_at(d, at + 2).is_none_or(|c| c <= 123)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 50000, 389);
    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 50000, 389);

    /// Simple bind as cn=admin,dc=example,dc=com with password "secret".
    fn bind() -> Vec<u8> {
        let dn = b"cn=admin,dc=example,dc=com";
        let mut op = vec![0x02, 0x01, 0x03, 0x04, dn.len() as u8];
        op.extend_from_slice(dn);
        op.extend_from_slice(b"\x80\x06secret");
        let mut msg = vec![0x02, 0x01, 0x01, 0x60, op.len() as u8];
        msg.extend_from_slice(&op);
        let mut full = vec![0x30, msg.len() as u8];
        full.extend_from_slice(&msg);
        full
    }

    #[test]
    fn bind_request_and_response() {
        let b = bind();
        assert_eq!(
            probe(&TCP, &b),
            Probe::Match {
                indicator: "ldap.request",
                meta: Meta::None
            }
        );
        expect_match(probe(&UDP, &b));
        assert_eq!(probe(&TCP, &b[..3]), Probe::NeedMore);
        let r = b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00";
        assert_eq!(
            probe(&TCP, r),
            Probe::Match {
                indicator: "ldap.response",
                meta: Meta::None
            }
        );
    }

    #[test]
    fn cldap_search_with_long_length() {
        // searchRequest for "" (rootDSE), scope base, filter (objectClass=*), long-form lengths.
        let mut op = vec![
            0x04, 0x00, 0x0a, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00,
            0x01, 0x01, 0x00,
        ];
        op.extend_from_slice(b"\x87\x0bobjectClass\x30\x00");
        let mut msg = vec![0x02, 0x02, 0x01, 0x2c, 0x63, 0x81, op.len() as u8];
        msg.extend_from_slice(&op);
        let mut full = vec![0x30, 0x81, msg.len() as u8];
        full.extend_from_slice(&msg);
        assert_eq!(
            probe(&UDP, &full),
            Probe::Match {
                indicator: "ldap.request",
                meta: Meta::None
            }
        );
    }

    #[test]
    fn rejections() {
        let mut trailing = bind();
        trailing.push(0);
        assert_eq!(probe(&UDP, &trailing), Probe::NoMatch);
        let mut bad_version = bind();
        bad_version[9] = 7;
        assert_eq!(probe(&TCP, &bad_version), Probe::NoMatch);
        // SNMPv2c get-request: SEQUENCE, INTEGER version, OCTET STRING community.
        let snmp = b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x04\x12\x34\x56\x78\x02\x01\x00\x02\x01\x00\x30\x0b\x30\x09\x06\x05\x2b\x06\x01\x02\x01\x05\x00";
        assert_eq!(probe(&UDP, snmp), Probe::NoMatch);
        // Negative message ID.
        let neg = b"\x30\x0c\x02\x01\x81\x61\x07\x0a\x01\x00\x04\x00\x04\x00";
        assert_eq!(probe(&TCP, neg), Probe::NoMatch);
        assert_eq!(
            probe(&TCP, b"\x16\x03\x01\x00\x10"),
            Probe::NoMatch
        );
        assert_eq!(probe(&TCP, b"0\r\n"), Probe::NoMatch);
    }
}
