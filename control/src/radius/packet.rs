//! RADIUS Accounting-Request packets (RFC 2866) from untrusted bytes: the header, the attributes
//! Portolan reads, the Request Authenticator check, and the Accounting-Response.
//!
//! Owns: a bounded cursor over one UDP payload. The header is code (1 octet), identifier (1),
//! length (2, big-endian, 20..=4096) and the 16-octet authenticator; octets beyond `length` are
//! padding and ignored, a payload shorter than `length` is malformed (RFC 2865 §3). Attributes
//! are type (1), length (2..=255, covering type and length) and value; each must fit inside
//! `length`. Read: Acct-Status-Type (40), Acct-Session-Id (44), Calling-Station-Id (31),
//! Framed-IP-Address (8), Framed-IPv6-Prefix (97, RFC 3162), Framed-IPv6-Address (168, RFC 6911),
//! NAS-IP-Address (4), NAS-IPv6-Address (95), NAS-Identifier (32), Event-Timestamp (55),
//! Acct-Delay-Time (41), Acct-Session-Time (46). A read attribute whose value has the wrong size
//! makes the packet malformed; other attributes are skipped. At most [`MAX_ADDRESSES`] framed
//! addresses are kept (more is malformed).
//!
//! Must not: allocate beyond the few strings it returns, panic on any input, or trust a packet
//! whose authenticator was not checked (the caller checks it before acting).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use md5::{Digest, Md5};

/// RADIUS code of an Accounting-Request.
pub const ACCOUNTING_REQUEST: u8 = 4;
/// RADIUS code of an Accounting-Response.
pub const ACCOUNTING_RESPONSE: u8 = 5;
/// Smallest packet: the header.
pub const HEADER_LEN: usize = 20;
/// Largest packet (RFC 2865 §3).
pub const MAX_PACKET_LEN: usize = 4096;
/// Framed addresses and prefixes kept from one packet.
pub const MAX_ADDRESSES: usize = 16;
/// Longest string attribute value kept (Acct-Session-Id, NAS-Identifier, Calling-Station-Id).
pub const MAX_STRING_LEN: usize = 253;

/// Acct-Status-Type (RFC 2866 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusType {
    /// 1: a session started.
    Start,
    /// 2: a session stopped.
    Stop,
    /// 3: a session goes on (periodic update).
    InterimUpdate,
    /// 7: the NAS (re)started: none of its earlier sessions go on.
    AccountingOn,
    /// 8: the NAS is going down: all its sessions end.
    AccountingOff,
    /// Any other value.
    Other(u32),
}

impl StatusType {
    fn from_u32(v: u32) -> StatusType {
        match v {
            1 => StatusType::Start,
            2 => StatusType::Stop,
            3 => StatusType::InterimUpdate,
            7 => StatusType::AccountingOn,
            8 => StatusType::AccountingOff,
            other => StatusType::Other(other),
        }
    }
}

/// A framed address or prefix the NAS assigned to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framed {
    /// The address, or the prefix's first address.
    pub address: IpAddr,
    /// The prefix length of a Framed-IPv6-Prefix (`None` for an address).
    pub prefix_len: Option<u8>,
}

/// The parts of an Accounting-Request Portolan reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountingRequest {
    /// The identifier, echoed in the response.
    pub identifier: u8,
    /// The Request Authenticator.
    pub authenticator: [u8; 16],
    /// Acct-Status-Type (`None` when absent).
    pub status: Option<StatusType>,
    /// Acct-Session-Id (lossy UTF-8).
    pub session_id: Option<String>,
    /// Calling-Station-Id as sent (lossy UTF-8).
    pub calling_station_id: Option<String>,
    /// NAS-IP-Address or NAS-IPv6-Address.
    pub nas_address: Option<IpAddr>,
    /// NAS-Identifier (lossy UTF-8).
    pub nas_identifier: Option<String>,
    /// Framed-IP-Address, Framed-IPv6-Address and Framed-IPv6-Prefix values, in packet order.
    pub framed: Vec<Framed>,
    /// Event-Timestamp, Unix seconds.
    pub event_timestamp: Option<u32>,
    /// Acct-Delay-Time, seconds.
    pub delay_s: Option<u32>,
    /// Acct-Session-Time, seconds.
    pub session_time_s: Option<u32>,
}

/// Why a payload is not a usable Accounting-Request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the 20-octet header.
    #[error("{0} octets, shorter than the 20-octet header")]
    Short(usize),
    /// The length field is outside 20..=4096 or larger than the payload.
    #[error("length field {declared} with {received} octets received (must be 20..=4096 and at most what arrived)")]
    Length {
        /// The header's length.
        declared: usize,
        /// The payload's size.
        received: usize,
    },
    /// Not code 4.
    #[error("code {0} is not Accounting-Request (4)")]
    Code(u8),
    /// An attribute's length is under 2 or runs past the packet.
    #[error("attribute {kind} at offset {offset}: length {len} does not fit")]
    AttributeLength {
        /// The attribute type.
        kind: u8,
        /// Its offset in the packet.
        offset: usize,
        /// Its length field.
        len: usize,
    },
    /// A read attribute's value has the wrong size or content.
    #[error("attribute {kind} at offset {offset}: {message}")]
    AttributeValue {
        /// The attribute type.
        kind: u8,
        /// Its offset in the packet.
        offset: usize,
        /// What is wrong.
        message: &'static str,
    },
    /// More framed addresses than [`MAX_ADDRESSES`].
    #[error("more than {MAX_ADDRESSES} framed addresses")]
    TooManyAddresses,
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

/// The declared packet: `bytes` cut at its length field, checked against the payload.
fn declared(bytes: &[u8]) -> Result<&[u8], PacketError> {
    let head = bytes
        .get(..HEADER_LEN)
        .ok_or(PacketError::Short(bytes.len()))?;
    let declared = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if !(HEADER_LEN..=MAX_PACKET_LEN).contains(&declared) || declared > bytes.len() {
        return Err(PacketError::Length {
            declared,
            received: bytes.len(),
        });
    }
    Ok(&bytes[..declared])
}

/// Parses one UDP payload as an Accounting-Request. The authenticator is not checked here
/// ([`request_authenticator_ok`]).
pub fn parse(bytes: &[u8]) -> Result<AccountingRequest, PacketError> {
    let packet = declared(bytes)?;
    let code = packet[0];
    if code != ACCOUNTING_REQUEST {
        return Err(PacketError::Code(code));
    }
    let mut authenticator = [0u8; 16];
    authenticator.copy_from_slice(&packet[4..HEADER_LEN]);
    let mut req = AccountingRequest {
        identifier: packet[1],
        authenticator,
        status: None,
        session_id: None,
        calling_station_id: None,
        nas_address: None,
        nas_identifier: None,
        framed: Vec::new(),
        event_timestamp: None,
        delay_s: None,
        session_time_s: None,
    };
    let mut offset = HEADER_LEN;
    while offset < packet.len() {
        let kind = packet[offset];
        let len = packet.get(offset + 1).map_or(0, |l| usize::from(*l));
        let value = (if len >= 2 {
            packet.get(offset + 2..offset + len)
        } else {
            None
        })
        .ok_or(PacketError::AttributeLength { kind, offset, len })?;
        let bad = |message| PacketError::AttributeValue {
            kind,
            offset,
            message,
        };
        let int = || be32(value).ok_or_else(|| bad("not a 4-octet integer"));
        let text = || -> Result<String, PacketError> {
            if value.is_empty() || value.len() > MAX_STRING_LEN {
                return Err(bad("empty string"));
            }
            Ok(String::from_utf8_lossy(value).into_owned())
        };
        let mut push = |f: Framed| -> Result<(), PacketError> {
            if req.framed.len() >= MAX_ADDRESSES {
                return Err(PacketError::TooManyAddresses);
            }
            req.framed.push(f);
            Ok(())
        };
        match kind {
            40 => req.status = Some(StatusType::from_u32(int()?)),
            44 => req.session_id = Some(text()?),
            31 => req.calling_station_id = Some(text()?),
            32 => req.nas_identifier = Some(text()?),
            55 => req.event_timestamp = Some(int()?),
            41 => req.delay_s = Some(int()?),
            46 => req.session_time_s = Some(int()?),
            4 => {
                let a: [u8; 4] = value.try_into().map_err(|_| bad("not 4 octets"))?;
                req.nas_address = Some(IpAddr::V4(Ipv4Addr::from(a)));
            }
            95 => {
                let a: [u8; 16] = value.try_into().map_err(|_| bad("not 16 octets"))?;
                req.nas_address = Some(IpAddr::V6(Ipv6Addr::from(a)));
            }
            8 => {
                let a: [u8; 4] = value.try_into().map_err(|_| bad("not 4 octets"))?;
                let address = Ipv4Addr::from(a);
                // 255.255.255.254 (the NAS chooses) and 255.255.255.255 (the user chooses) are
                // placeholders in Access-Accept, never an address in use.
                if u32::from(address) < 0xffff_fffe {
                    push(Framed {
                        address: IpAddr::V4(address),
                        prefix_len: None,
                    })?;
                }
            }
            168 => {
                let a: [u8; 16] = value.try_into().map_err(|_| bad("not 16 octets"))?;
                push(Framed {
                    address: IpAddr::V6(Ipv6Addr::from(a)),
                    prefix_len: None,
                })?;
            }
            97 => {
                // Reserved (1), Prefix-Length (1), Prefix (0..=16 octets, enough for the length).
                let (len, prefix) = match value {
                    [_, len, prefix @ ..] if *len <= 128 && prefix.len() <= 16 => (*len, prefix),
                    _ => return Err(bad("not reserved, prefix length (<= 128), prefix")),
                };
                if prefix.len() * 8 < usize::from(len) {
                    return Err(bad("prefix shorter than its length"));
                }
                let mut full = [0u8; 16];
                full[..prefix.len()].copy_from_slice(prefix);
                let address =
                    crate::inventory::kea_leases::network(IpAddr::V6(Ipv6Addr::from(full)), len);
                push(Framed {
                    address,
                    prefix_len: (len < 128).then_some(len),
                })?;
            }
            _ => {}
        }
        offset += len;
    }
    Ok(req)
}

/// Whether the Request Authenticator of `bytes` (cut at its length field) is
/// MD5(code + identifier + length + 16 zero octets + attributes + secret), RFC 2866 §3. Compared
/// in constant time. `false` for anything that is not a whole packet.
pub fn request_authenticator_ok(bytes: &[u8], secret: &[u8]) -> bool {
    let Ok(packet) = declared(bytes) else {
        return false;
    };
    let mut h = Md5::new();
    h.update(&packet[..4]);
    h.update([0u8; 16]);
    h.update(&packet[HEADER_LEN..]);
    h.update(secret);
    let want = h.finalize();
    let diff = want
        .iter()
        .zip(&packet[4..HEADER_LEN])
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

/// The Accounting-Response (no attributes) to a request with `identifier` and
/// `request_authenticator`: its authenticator is MD5(code + identifier + length + request
/// authenticator + secret).
pub fn accounting_response(
    identifier: u8,
    request_authenticator: &[u8; 16],
    secret: &[u8],
) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = ACCOUNTING_RESPONSE;
    out[1] = identifier;
    out[2..4].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
    let mut h = Md5::new();
    h.update(&out[..4]);
    h.update(request_authenticator);
    h.update(secret);
    out[4..].copy_from_slice(&h.finalize());
    out
}

/// Builds a signed Accounting-Request from `(type, value)` attributes (tests, fuzz seeds and
/// the benchmark's generator; the listener never sends requests).
pub fn build_request(identifier: u8, attributes: &[(u8, &[u8])], secret: &[u8]) -> Vec<u8> {
    let mut out = vec![ACCOUNTING_REQUEST, identifier, 0, 0];
    out.extend_from_slice(&[0u8; 16]);
    for (kind, value) in attributes {
        let value = &value[..value.len().min(253)];
        out.push(*kind);
        out.push(u8::try_from(value.len() + 2).unwrap_or(u8::MAX));
        out.extend_from_slice(value);
    }
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    out[2..4].copy_from_slice(&len.to_be_bytes());
    let mut h = Md5::new();
    h.update(&out);
    h.update(secret);
    let digest = h.finalize();
    out[4..HEADER_LEN].copy_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"testing123";

    fn start() -> Vec<u8> {
        build_request(
            7,
            &[
                (40, &1u32.to_be_bytes()),
                (44, b"5F3A-0001"),
                (31, b"A4-5E-60-C1-00-61"),
                (4, &[192, 0, 2, 10]),
                (8, &[10, 10, 0, 61]),
                (97, &[0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 0x10, 0, 0x61]),
                (
                    168,
                    &"2001:db8:10::61".parse::<Ipv6Addr>().unwrap().octets(),
                ),
                (55, &1_714_471_200u32.to_be_bytes()),
                (26, &[0, 0, 0x37, 0x2b, 1, 6, 0, 0, 0, 1]),
            ],
            SECRET,
        )
    }

    #[test]
    fn reads_a_start() {
        let bytes = start();
        assert!(request_authenticator_ok(&bytes, SECRET));
        assert!(!request_authenticator_ok(&bytes, b"wrong"));
        let req = parse(&bytes).unwrap();
        assert_eq!(req.identifier, 7);
        assert_eq!(req.status, Some(StatusType::Start));
        assert_eq!(req.session_id.as_deref(), Some("5F3A-0001"));
        assert_eq!(req.calling_station_id.as_deref(), Some("A4-5E-60-C1-00-61"));
        assert_eq!(req.nas_address, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(req.event_timestamp, Some(1_714_471_200));
        let framed: Vec<String> = req
            .framed
            .iter()
            .map(|f| match f.prefix_len {
                Some(l) => format!("{}/{l}", f.address),
                None => f.address.to_string(),
            })
            .collect();
        assert_eq!(
            framed,
            ["10.10.0.61", "2001:db8:10:61::/64", "2001:db8:10::61"]
        );
        // Padding after the length field is ignored, by the parser and the authenticator.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0xee; 9]);
        assert!(request_authenticator_ok(&padded, SECRET));
        assert_eq!(parse(&padded).unwrap(), req);
        // One flipped attribute octet breaks the authenticator.
        let mut forged = bytes.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        assert!(!request_authenticator_ok(&forged, SECRET));
    }

    #[test]
    fn response_authenticator() {
        // RFC 2866 §3: MD5(Code + ID + Length + RequestAuth + Attributes + Secret).
        let auth = [0x11u8; 16];
        let r = accounting_response(9, &auth, SECRET);
        assert_eq!(&r[..4], &[5, 9, 0, 20]);
        let mut h = Md5::new();
        h.update([5u8, 9, 0, 20]);
        h.update(auth);
        h.update(SECRET);
        assert_eq!(&r[4..], h.finalize().as_slice());
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(&[4, 1, 0]), Err(PacketError::Short(3)));
        let mut p = start();
        p[2..4].copy_from_slice(&5000u16.to_be_bytes());
        assert!(matches!(
            parse(&p),
            Err(PacketError::Length { declared: 5000, .. })
        ));
        let mut p = start();
        p[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(parse(&p), Err(PacketError::Length { .. })));
        let mut p = start();
        p[0] = 1;
        assert_eq!(parse(&p), Err(PacketError::Code(1)));
        // An attribute of length 1, and one running past the packet.
        let p = build_request(1, &[], SECRET);
        let mut q = p.clone();
        q.extend_from_slice(&[40, 1]);
        q[3] = 22;
        assert!(matches!(
            parse(&q),
            Err(PacketError::AttributeLength { len: 1, .. })
        ));
        let mut q = p.clone();
        q.extend_from_slice(&[40, 6, 0, 0]);
        q[3] = 24;
        assert!(matches!(
            parse(&q),
            Err(PacketError::AttributeLength { len: 6, .. })
        ));
        // Wrong sizes of read attributes.
        for (kind, value) in [
            (40u8, &[0u8, 1][..]),
            (8, &[10, 0, 0][..]),
            (168, &[0; 15][..]),
            (97, &[0, 129, 0][..]),
            (97, &[0, 64, 0x20, 0x01][..]),
            (44, &[][..]),
        ] {
            let p = build_request(1, &[(kind, value)], SECRET);
            assert!(
                matches!(parse(&p), Err(PacketError::AttributeValue { .. })),
                "{kind} {value:?}: {:?}",
                parse(&p)
            );
        }
        let many: Vec<(u8, &[u8])> = (0..=MAX_ADDRESSES)
            .map(|_| (8u8, &[10u8, 0, 0, 1][..]))
            .collect();
        assert_eq!(
            parse(&build_request(1, &many, SECRET)),
            Err(PacketError::TooManyAddresses)
        );
        // Placeholder Framed-IP-Address values are not addresses.
        let p = build_request(1, &[(8, &[255, 255, 255, 254])], SECRET);
        assert!(parse(&p).unwrap().framed.is_empty());
    }
}
