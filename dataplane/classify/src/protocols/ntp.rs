//! NTP identification (RFC 5905 and earlier versions; control messages, mode 6, RFC 9327) over
//! UDP.
//!
//! Owns: checking the first byte (version 1..=4, mode 1..=7), and for modes 1..=5 the stratum,
//! poll, precision, root delay/dispersion ranges, and (for server-side modes) plausible
//! timestamps; for mode 6 (control, RFC 9327) and mode 7 (ntpd's private `ntpdc` requests such
//! as `monlist`) the header fields and the item counts against the datagram length. Must not:
//! accept time messages whose length is not 48 plus 4-byte multiples.

use super::wire_int::{be16, be32, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// NTP seconds for 1990-01-01: server timestamps older than this are not plausible (era 0).
const TS_MIN: u32 = 0xa949_1c00;
/// Era-1 seconds up to 2040 (the era rolls over in February 2036).
const TS_ERA1_MAX: u32 = 0x0800_0000;
const MAX_LEN: usize = 1024;

/// Probes one UDP datagram for an NTP message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    if ctx.transport != Transport::Udp {
        return Probe::NoMatch;
    }
    let Some(b0) = u8_at(data, 0) else {
        return Probe::NoMatch;
    };
    let (vn, mode) = ((b0 >> 3) & 0x07, b0 & 0x07);
    if !(1..=4).contains(&vn) {
        return Probe::NoMatch;
    }
    let ok = match mode {
        1..=5 => time_message(data, mode),
        6 => control_message(data),
        7 => private_message(data),
        _ => false,
    };
    if !ok {
        return Probe::NoMatch;
    }
    let indicator = match mode {
        3 => "ntp.client",
        4 => "ntp.server",
        6 => "ntp.control",
        7 => "ntp.private",
        _ => "ntp.peer",
    };
    Probe::Match {
        indicator,
        meta: Meta::None,
    }
}

/// Modes 1..=5: the 48-byte header plus optional extension fields / MAC.
fn time_message(d: &[u8], mode: u8) -> bool {
    if d.len() < 48 || !d.len().is_multiple_of(4) || d.len() > MAX_LEN {
        return false;
    }
    let (Some(stratum), Some(poll), Some(precision)) = (u8_at(d, 1), u8_at(d, 2), u8_at(d, 3))
    else {
        return false;
    };
    let precision = precision as i8;
    let (Some(delay), Some(disp)) = (be32(d, 4), be32(d, 8)) else {
        return false;
    };
    // Poll exponent 0..=17 (RFC 5905 allows 4..=17; SNTP clients send 0), precision -32..=0,
    // root delay and dispersion below 16 s (16.16 fixed point).
    if stratum > 16
        || poll > 17
        || !(-32..=0).contains(&precision)
        || delay >= 0x0010_0000
        || disp >= 0x0010_0000
    {
        return false;
    }
    if mode == 3 {
        return true;
    }
    // Server-side modes: transmit time must be a real time; receive time real or zero (broadcast).
    let (Some(recv), Some(xmit)) = (be32(d, 32), be32(d, 40)) else {
        return false;
    };
    let real = |t: u32| t >= TS_MIN || (t > 0 && t < TS_ERA1_MAX);
    if !real(xmit) || !(recv == 0 || real(recv)) {
        return false;
    }
    if stratum == 0 {
        // Kiss-o'-Death: the reference ID is four upper-case ASCII letters.
        return d
            .get(12..16)
            .is_some_and(|k| k.iter().all(|&b| b.is_ascii_uppercase() || b == 0));
    }
    true
}

/// Mode 6 control message: 12-byte header, a defined opcode, the data count within bounds, and
/// the datagram exactly the header plus the data padded to 4 bytes. A request (response bit
/// clear) has no error/more bits, status and offset 0, and may carry a key ID and MAC.
fn control_message(d: &[u8]) -> bool {
    let (Some(b1), Some(status), Some(offset), Some(count)) =
        (u8_at(d, 1), be16(d, 4), be16(d, 8), be16(d, 10))
    else {
        return false;
    };
    let opcode = b1 & 0x1f;
    let count = usize::from(count);
    if !matches!(opcode, 1..=12 | 31) || count > 468 {
        return false;
    }
    let padded = 12 + ((count + 3) & !3);
    if b1 & 0x80 == 0 {
        b1 & 0x60 == 0
            && status == 0
            && offset == 0
            && (d.len() == padded || d.len() == padded + 20 || d.len() == padded + 24)
    } else {
        d.len() == padded
    }
}

/// Mode 7 private message (ntpd `ntpdc`): implementation 0/2/3, a request code ntpd defines, and
/// either a response whose items fill the datagram exactly or a 48-byte request.
fn private_message(d: &[u8]) -> bool {
    let (Some(b0), Some(imp), Some(code), Some(err_items), Some(size)) = (
        u8_at(d, 0),
        u8_at(d, 2),
        u8_at(d, 3),
        be16(d, 4),
        be16(d, 6),
    ) else {
        return false;
    };
    let (err, items, item_size) = (
        err_items >> 12,
        usize::from(err_items & 0x0fff),
        usize::from(size & 0x0fff),
    );
    if !matches!(imp, 0 | 2 | 3) || code > 45 || err > 7 || size & 0xf000 != 0 {
        return false;
    }
    if b0 & 0x80 != 0 {
        item_size <= 500 && items <= 500 && d.len() == 8 + items * item_size
    } else {
        err == 0 && items * item_size <= 40 && d.len() == 48
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Udp, 123, 123);

    fn client() -> Vec<u8> {
        let mut d = vec![0xe3, 0x00, 0x06, 0xec, 0, 0, 0, 0, 0, 0, 0, 0];
        d.resize(40, 0);
        d.extend_from_slice(&[0xea, 0x1b, 0x2c, 0x3d, 0x11, 0x22, 0x33, 0x44]);
        d
    }

    fn server() -> Vec<u8> {
        let mut d = vec![
            0x24, 0x02, 0x06, 0xe9, 0x00, 0x00, 0x01, 0x2a, 0x00, 0x00, 0x02, 0x10,
        ];
        d.extend_from_slice(&[0xc0, 0xa8, 0x01, 0x01]);
        for _ in 0..4 {
            d.extend_from_slice(&[0xea, 0x1b, 0x2c, 0x3d, 0x11, 0x22, 0x33, 0x44]);
        }
        d
    }

    #[test]
    fn client_and_server() {
        assert_eq!(
            probe(&CTX, &client()),
            Probe::Match {
                indicator: "ntp.client",
                meta: Meta::None
            }
        );
        assert_eq!(
            probe(&CTX, &server()),
            Probe::Match {
                indicator: "ntp.server",
                meta: Meta::None
            }
        );
        // SNTP request: only the first byte set.
        let mut sntp = vec![0x1b];
        sntp.resize(48, 0);
        expect_match(probe(&CTX, &sntp));
        // With a 20-byte MAC (key ID + MD5).
        let mut mac = server();
        mac.extend_from_slice(&[0x5a; 20]);
        expect_match(probe(&CTX, &mac));
    }

    #[test]
    fn control() {
        // ntpq "rv" request: version 2, mode 6, opcode 2, count 0.
        let d = [0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_match(probe(&CTX, &d), "ntp.control");
    }

    #[test]
    fn private_monlist() {
        // ntpdc monlist request: version 2, mode 7, implementation 3, request 42, 40 zero bytes.
        let mut req = vec![0x17, 0x00, 0x03, 0x2a, 0, 0, 0, 0];
        req.resize(48, 0);
        assert_match(probe(&CTX, &req), "ntp.private");
        // Response: 2 items of 72 bytes.
        let mut resp = vec![0x97, 0x0e, 0x03, 0x2a, 0x00, 0x02, 0x00, 0x48];
        resp.resize(8 + 2 * 72, 0x11);
        expect_match(probe(&CTX, &resp));
        resp.push(0);
        assert_eq!(probe(&CTX, &resp), Probe::NoMatch);
    }

    #[test]
    fn dns_query_is_not_a_control_message() {
        // Query ID 0x1e09 reads as version 3, mode 6, opcode 9; its QDCOUNT is the status word.
        let q = b"\x1e\x09\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x06amazon\x03com\x00\x00\x01\x00\x01";
        assert_eq!(probe(&CTX, q), Probe::NoMatch);
    }

    #[test]
    fn rejections() {
        let mut bad_version = client();
        bad_version[0] = 0x2b & !0x38; // version 0
        let mut stale = server();
        stale[40..44].copy_from_slice(&[0x10, 0, 0, 0]);
        let mut odd = client();
        odd.push(0);
        let mut deep = client();
        deep[1] = 99;
        let mut private = client();
        private[0] = 0x17; // mode 7 with a time-message body
        for d in [
            &bad_version[..],
            &stale,
            &odd,
            &deep,
            &private,
            &[0x1b; 20][..],
            &[0x5a; 48][..],
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
        let tcp = ProbeContext::new(Transport::Tcp, 123, 123);
        assert_eq!(probe(&tcp, &client()), Probe::NoMatch);
        assert_eq!(
            probe(
                &CTX,
                b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n\r\n\r\n\r\n\r\n"
            ),
            Probe::NoMatch
        );
    }
}
