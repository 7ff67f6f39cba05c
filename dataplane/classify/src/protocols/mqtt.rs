//! MQTT identification (MQTT 3.1, 3.1.1, 5.0): the client's CONNECT packet and the server's
//! CONNACK.
//!
//! Owns: validating the CONNECT fixed header, remaining length, protocol name/level, connect
//! flags and client identifier, and the exact CONNACK shape. Must not: accept other packet types
//! (they are too short to tell apart from other binary protocols), or a CONNACK that is not the
//! whole payload.

use super::wire_int::{be16, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};

/// Largest value the 4-byte remaining-length encoding can carry.
const MAX_REMAINING: usize = 268_435_455;

/// Probes the first bytes of one direction for a CONNECT or CONNACK packet.
pub fn probe(_ctx: &ProbeContext, data: &[u8]) -> Probe {
    match u8_at(data, 0) {
        Some(0x10) => connect(data),
        Some(0x20) => connack(data),
        _ => Probe::NoMatch,
    }
}

/// Outcome of reading a variable-length integer.
enum VarInt {
    /// Value and number of bytes used.
    Value(usize, usize),
    /// The bytes end inside the integer.
    Cut,
    /// More than four bytes.
    Bad,
}

/// Reads an MQTT variable byte integer at `off`.
fn varint(data: &[u8], off: usize) -> VarInt {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(b) = u8_at(data, off + i) else {
            return VarInt::Cut;
        };
        value |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return VarInt::Value(value, i + 1);
        }
    }
    VarInt::Bad
}

/// CONNECT: `0x10`, remaining length, `MQTT`/`MQIsdp`, level, flags, keep-alive, client id.
fn connect(data: &[u8]) -> Probe {
    let (remaining, used) = match varint(data, 1) {
        VarInt::Value(v, n) => (v, n),
        VarInt::Cut => return Probe::NeedMore,
        VarInt::Bad => return Probe::NoMatch,
    };
    if !(12..=MAX_REMAINING).contains(&remaining) {
        return Probe::NoMatch;
    }
    let vh = 1 + used;
    let end = vh + remaining;
    let (Some(name_len), Some(flags_at)) = (be16(data, vh), vh.checked_add(2)) else {
        return need_more_if_prefix(data, vh);
    };
    let (name, level_at) = match name_len {
        4 => (&b"MQTT"[..], flags_at + 4),
        6 => (&b"MQIsdp"[..], flags_at + 6),
        _ => return Probe::NoMatch,
    };
    let Some(got) = data.get(flags_at..level_at) else {
        return need_more_if_prefix(data, vh);
    };
    if got != name {
        return Probe::NoMatch;
    }
    let (Some(level), Some(flags), Some(_keepalive)) = (
        u8_at(data, level_at),
        u8_at(data, level_at + 1),
        be16(data, level_at + 2),
    ) else {
        return need_more_if_prefix(data, vh);
    };
    let level = level & 0x7f; // bit 7: bridge flag (mosquitto)
    let level_ok = if name_len == 4 {
        matches!(level, 4 | 5)
    } else {
        level == 3
    };
    if !level_ok || !flags_ok(flags, level) {
        return Probe::NoMatch;
    }
    let mut off = level_at + 4;
    if level == 5 {
        match varint(data, off) {
            VarInt::Value(v, n) => off += n + v,
            VarInt::Cut => return Probe::NeedMore,
            VarInt::Bad => return Probe::NoMatch,
        }
    }
    if off + 2 > end {
        return Probe::NoMatch;
    }
    // Client identifier, when present in the bytes: a UTF-8 string inside the packet.
    if let Some(id_len) = be16(data, off) {
        let id_end = off + 2 + usize::from(id_len);
        if id_end > end {
            return Probe::NoMatch;
        }
        if let Some(id) = data.get(off + 2..id_end) {
            if std::str::from_utf8(id).is_err() || id.contains(&0) {
                return Probe::NoMatch;
            }
        }
    }
    Probe::Match {
        indicator: "mqtt.connect",
        meta: Meta::None,
    }
}

/// Connect flags: reserved bit clear, will QoS/retain only with the will flag, QoS < 3, and (before
/// 5.0) a password only with a user name.
fn flags_ok(flags: u8, level: u8) -> bool {
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & 0x20 != 0;
    let password = flags & 0x40 != 0;
    let username = flags & 0x80 != 0;
    flags & 0x01 == 0
        && will_qos != 3
        && (will || (will_qos == 0 && !will_retain))
        && (level == 5 || !password || username)
}

/// The packet is cut before its protocol name could be checked: need more if what is there is a
/// prefix of a valid header.
fn need_more_if_prefix(data: &[u8], vh: usize) -> Probe {
    let rest = data.get(vh..).unwrap_or_default();
    let ok = [&b"\x00\x04MQTT"[..], b"\x00\x06MQIsdp"]
        .iter()
        .any(|p| p.starts_with(rest) || rest.starts_with(p));
    if ok {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// CONNACK that is the whole payload: 3.1/3.1.1 `20 02 flags rc`, or 5.0 with properties.
fn connack(data: &[u8]) -> Probe {
    let (remaining, used) = match varint(data, 1) {
        VarInt::Value(v, n) => (v, n),
        _ => return Probe::NoMatch,
    };
    if data.len() != 1 + used + remaining || remaining < 2 {
        return Probe::NoMatch;
    }
    let at = 1 + used;
    let (Some(ack_flags), Some(code)) = (u8_at(data, at), u8_at(data, at + 1)) else {
        return Probe::NoMatch;
    };
    if ack_flags > 1 {
        return Probe::NoMatch;
    }
    let ok = if remaining == 2 {
        code <= 5
    } else {
        let v5_code = matches!(code, 0x00 | 0x80..=0x8a | 0x8c | 0x90 | 0x95 | 0x97 | 0x99..=0x9f);
        v5_code
            && matches!(varint(data, at + 2), VarInt::Value(v, n) if at + 2 + n + v == data.len())
    };
    if ok {
        Probe::Match {
            indicator: "mqtt.connack",
            meta: Meta::None,
        }
    } else {
        Probe::NoMatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match, expect_match};

    const CTX: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 1883);

    /// CONNECT 3.1.1, clean session, keep-alive 60, client id "mosq-abc".
    const CONNECT_311: &[u8] = b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08mosq-abc";

    #[test]
    fn connect_versions() {
        assert_eq!(
            probe(&CTX, CONNECT_311),
            Probe::Match {
                indicator: "mqtt.connect",
                meta: Meta::None
            }
        );
        let v31 = b"\x10\x16\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x08mosq-abc";
        expect_match(probe(&CTX, v31));
        // 5.0 with empty properties, user name and password.
        let v5 = b"\x10\x1c\x00\x04MQTT\x05\xc2\x00\x3c\x00\x00\x03abc\x00\x04user\x00\x04pass";
        expect_match(probe(&CTX, v5));
    }

    #[test]
    fn connect_cut_short() {
        assert_eq!(probe(&CTX, &CONNECT_311[..5]), Probe::NeedMore);
        assert_eq!(probe(&CTX, &CONNECT_311[..1]), Probe::NeedMore);
        // Past the header the rest may come later.
        expect_match(probe(&CTX, &CONNECT_311[..14]));
    }

    #[test]
    fn connack() {
        assert_match(probe(&CTX, b"\x20\x02\x00\x00"), "mqtt.connack");
        expect_match(probe(&CTX, b"\x20\x03\x00\x00\x00"));
        assert_eq!(probe(&CTX, b"\x20\x02\x00\x07"), Probe::NoMatch);
        assert_eq!(probe(&CTX, b"\x20\x02\x00\x00\x00"), Probe::NoMatch);
    }

    #[test]
    fn rejections() {
        let mut bad_level = CONNECT_311.to_vec();
        bad_level[8] = 9;
        let mut reserved = CONNECT_311.to_vec();
        reserved[9] = 0x03;
        let mut pw_without_user = CONNECT_311.to_vec();
        pw_without_user[9] = 0x42;
        let mut id_too_long = CONNECT_311.to_vec();
        id_too_long[13] = 0x40;
        for d in [
            &bad_level[..],
            &reserved,
            &pw_without_user,
            &id_too_long,
            b"\x10\x14\x00\x04MQTX\x04\x02\x00\x3c\x00\x08mosq-abc",
            b"\x10\xff\xff\xff\xff\x7f",
            b"\x30\x0b\x00\x04test hello",
            b"\x16\x03\x01\x00\x10",
            b"GET / HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(probe(&CTX, d), Probe::NoMatch, "{d:?}");
        }
    }
}
