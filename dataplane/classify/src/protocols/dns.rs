//! DNS identification (RFC 1035) over UDP and over TCP (2-byte length framing, RFC 7766), and
//! the message walker shared with [`super::mdns`] and [`super::llmnr`], which use the same
//! wire format.
//!
//! Owns: validating the header, every question and every resource record of a message, and
//! telling unicast DNS, mDNS (RFC 6762) and LLMNR (RFC 4795) apart by message shape alone.
//! Also owns [`parse_response_answers`]: the name and A/AAAA addresses a unicast DNS response
//! resolved (fixed-size [`DnsAnswers`], for DNS-answer attribution in the control plane).
//! Must not: use ports or addresses (the probe contract carries only `dst_multicast`), follow
//! compression pointers in the identification walk (only their direction is checked; the answer
//! extractor follows backward pointers only, at most 16 per name), or accept a message whose
//! counts and bytes disagree.
//!
//! Shape rules for the three flavours (a message gets exactly one):
//! * mDNS: RD clear, opcode QUERY, and a name ending in `local` or a class with the top bit set
//!   (QU question / cache-flush record), or ID 0 with a reverse-lookup name. The ID is not
//!   required to be 0: Chromium's mDNS client numbers its queries. Stub resolvers always set RD,
//!   so a `.local` query with RD (Active Directory domains) stays DNS.
//! * LLMNR: one question with a single-label name, class IN, type A/AAAA/ANY, no authority
//!   records, the LLMNR Z bits zero; a query has flags 0 and no other records.
//! * DNS: everything else that walks cleanly, with 1..=4 questions (0 only in a response that
//!   carries answers, or in an inverse query carrying one answer) and query-side counts as
//!   RFC 1035 and its update/notify extensions allow; also a bare 12-byte error response
//!   (NOTIMP, REFUSED, ...) with no records.
//! * NetBIOS name service messages (same format, 32-letter encoded names) are none of the three.
//!
//! The destination (`ProbeContext::dst_multicast`) only ever removes a flavour: unicast DNS is
//! never sent to a multicast group (RFC 1035 servers and resolvers are unicast), and LLMNR
//! responses are always unicast (RFC 4795 section 2: "Responses MUST be sent to the sender via
//! unicast"). Such a message is none of the three. mDNS is multicast by design and accepts both
//! (a QU question is answered by unicast).

use super::wire_int::{be16, u8_at};
use crate::probe::{Meta, Probe, ProbeContext};
use portolan_packet::Transport;

/// Which protocol a well-formed DNS-format message belongs to, by shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Unicast DNS.
    Dns,
    /// Multicast DNS.
    Mdns,
    /// Link-Local Multicast Name Resolution.
    Llmnr,
}

/// A DNS-format message that passed the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    /// The protocol its shape says.
    pub(crate) flavor: Flavor,
    /// QR bit.
    pub(crate) is_response: bool,
    /// The first question's name (or the first record's, when there is no question).
    pub(crate) name: Option<String>,
}

/// Result of inspecting bytes as a DNS-format message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A valid message.
    Message(Message),
    /// A plausible start of a TCP-framed message that is cut short.
    NeedMore,
    /// Not a DNS-format message.
    NotDns,
}

const HEADER: usize = 12;
/// Largest TCP length prefix for which a cut-short header is worth waiting for.
const MAX_PARTIAL_TCP: usize = 16 * 1024;
const MAX_NAME: usize = 255;

/// Probes one UDP datagram or the start of a TCP stream for a unicast DNS message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    probe_flavor(ctx, data, Flavor::Dns, "dns.query", "dns.response")
}

/// Shared probe body for the three flavours.
pub(crate) fn probe_flavor(
    ctx: &ProbeContext,
    data: &[u8],
    want: Flavor,
    query_indicator: &'static str,
    response_indicator: &'static str,
) -> Probe {
    match inspect(ctx.transport, data) {
        Shape::Message(m) if m.flavor == want && destination_fits(ctx, &m) => Probe::Match {
            indicator: if m.is_response {
                response_indicator
            } else {
                query_indicator
            },
            meta: m.name.map(Meta::Name).unwrap_or_default(),
        },
        Shape::Message(_) | Shape::NotDns => Probe::NoMatch,
        Shape::NeedMore => Probe::NeedMore,
    }
}

/// False when the message's flavour is never sent to such a destination: unicast DNS to a
/// multicast group, or an LLMNR response to one.
fn destination_fits(ctx: &ProbeContext, m: &Message) -> bool {
    match m.flavor {
        Flavor::Dns => !ctx.dst_multicast,
        Flavor::Llmnr => !(ctx.dst_multicast && m.is_response),
        Flavor::Mdns => true,
    }
}

/// Inspects a UDP datagram, or a TCP stream start with its 2-byte length prefix.
pub(crate) fn inspect(transport: Transport, data: &[u8]) -> Shape {
    match transport {
        Transport::Udp => inspect_message(data, true),
        Transport::Tcp => {
            let Some(len) = be16(data, 0) else {
                return if data.is_empty() {
                    Shape::NotDns
                } else {
                    Shape::NeedMore
                };
            };
            let len = usize::from(len);
            if len < HEADER {
                return Shape::NotDns;
            }
            let body = data.get(2..).unwrap_or_default();
            let complete = body.len() >= len;
            let msg = body.get(..len).unwrap_or(body);
            if msg.len() < HEADER {
                // Text protocols read as a huge length; a first message is never that large.
                let plausible = len <= MAX_PARTIAL_TCP && header_plausible(msg);
                return if plausible {
                    Shape::NeedMore
                } else {
                    Shape::NotDns
                };
            }
            inspect_message(msg, complete)
        }
    }
}

/// The header bytes present so far do not already rule DNS out.
fn header_plausible(partial: &[u8]) -> bool {
    match u8_at(partial, 2) {
        None => true,
        Some(f) => matches!((f >> 3) & 0x0f, 0 | 1 | 2 | 4 | 5),
    }
}

/// Facts gathered while walking a message.
#[derive(Default)]
struct Walk {
    /// A name's last inline label is `local`.
    local: bool,
    /// A name ends in `in-addr.arpa` or `ip6.arpa`.
    reverse: bool,
    /// A question or record class has its top bit set (mDNS QU / cache-flush).
    class_top_bit: bool,
    /// Labels of the first name.
    first_labels: usize,
    /// The first name looks like a NetBIOS first-level encoded name.
    netbios_name: bool,
    /// Span of the first name's labels (start offset), for extraction.
    first_name_at: Option<usize>,
    /// First question type and class (if there is a question).
    first_qtype: u16,
    first_qclass: u16,
}

/// Walks one message. `complete` says the bytes hold the whole message (always for UDP).
fn inspect_message(msg: &[u8], complete: bool) -> Shape {
    let (Some(id), Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) = (
        be16(msg, 0),
        be16(msg, 2),
        be16(msg, 4),
        be16(msg, 6),
        be16(msg, 8),
        be16(msg, 10),
    ) else {
        return Shape::NotDns;
    };
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0x0f;
    let rcode = flags & 0x000f;
    if !matches!(opcode, 0 | 1 | 2 | 4 | 5) || flags & 0x0040 != 0 {
        return Shape::NotDns;
    }
    if !is_response && rcode != 0 {
        return Shape::NotDns;
    }
    if is_response && rcode > 10 {
        return Shape::NotDns;
    }
    if u32::from(qd) + u32::from(an) + u32::from(ns) + u32::from(ar) == 0 {
        // A bare error response (FORMERR, SERVFAIL, NOTIMP, REFUSED) to a query it did not echo.
        return if is_response && (1..=5).contains(&rcode) && msg.len() == HEADER && complete {
            Shape::Message(Message {
                flavor: Flavor::Dns,
                is_response,
                name: None,
            })
        } else {
            Shape::NotDns
        };
    }
    if qd > 64 {
        return Shape::NotDns;
    }

    let mut walk = Walk::default();
    let mut off = HEADER;
    for i in 0..qd {
        match walk_name(msg, off, &mut walk, i == 0) {
            NameEnd::At(next) => off = next,
            NameEnd::Cut if !complete => return Shape::NeedMore,
            _ => return Shape::NotDns,
        }
        let (Some(qtype), Some(qclass)) = (be16(msg, off), be16(msg, off + 2)) else {
            return if complete {
                Shape::NotDns
            } else {
                Shape::NeedMore
            };
        };
        if !qtype_ok(qtype) || !class_ok(qclass & 0x7fff) {
            return Shape::NotDns;
        }
        if qclass & 0x8000 != 0 {
            walk.class_top_bit = true;
        }
        if i == 0 {
            walk.first_qtype = qtype;
            walk.first_qclass = qclass;
        }
        off += 4;
    }
    let records = u32::from(an) + u32::from(ns) + u32::from(ar);
    for r in 0..records {
        match walk_name(msg, off, &mut walk, qd == 0 && r == 0) {
            NameEnd::At(next) => off = next,
            NameEnd::Cut if !complete => break,
            _ => return Shape::NotDns,
        }
        let (Some(rtype), Some(rclass), Some(rdlen)) =
            (be16(msg, off), be16(msg, off + 2), be16(msg, off + 8))
        else {
            if complete {
                return Shape::NotDns;
            }
            break;
        };
        // OPT (41) carries the UDP payload size in its class field.
        if rtype == 0 || (rtype != 41 && !class_ok(rclass & 0x7fff)) {
            return Shape::NotDns;
        }
        if rtype != 41 && rclass & 0x8000 != 0 {
            walk.class_top_bit = true;
        }
        let end = off + 10 + usize::from(rdlen);
        if end > msg.len() {
            if complete {
                return Shape::NotDns;
            }
            break;
        }
        off = end;
    }
    // A complete message must end where its last record ends (zero padding tolerated).
    if complete && !msg.get(off..).unwrap_or_default().iter().all(|&b| b == 0) {
        return Shape::NotDns;
    }
    if walk.netbios_name {
        return Shape::NotDns;
    }

    let mdns_marker = walk.local || walk.class_top_bit || (walk.reverse && id == 0);
    let flavor = if flags & 0x0100 == 0 && opcode == 0 && mdns_marker {
        Flavor::Mdns
    } else if is_llmnr(flags, qd, an, ns, ar, &walk) {
        Flavor::Llmnr
    } else if dns_counts_ok(is_response, opcode, qd, an, ns, ar) && !walk.class_top_bit {
        Flavor::Dns
    } else {
        return Shape::NotDns;
    };
    let name = walk.first_name_at.and_then(|at| decode_name(msg, at));
    Shape::Message(Message {
        flavor,
        is_response,
        name,
    })
}

/// Question and record counts a unicast DNS message may carry.
fn dns_counts_ok(is_response: bool, opcode: u16, qd: u16, an: u16, ns: u16, ar: u16) -> bool {
    if is_response {
        (1..=4).contains(&qd) || (qd == 0 && an > 0)
    } else {
        let inverse = opcode == 1 && qd == 0 && an == 1;
        ((1..=4).contains(&qd) || inverse)
            && (an == 0 || inverse || matches!(opcode, 4 | 5))
            && (ns == 0 || opcode == 5)
            && (ar <= 3 || opcode == 5)
    }
}

/// LLMNR shape (see the module doc).
fn is_llmnr(flags: u16, qd: u16, an: u16, ns: u16, ar: u16, walk: &Walk) -> bool {
    let is_response = flags & 0x8000 != 0;
    let base = qd == 1
        && ns == 0
        && flags & 0x78f0 == 0
        && walk.first_labels == 1
        && !walk.local
        && !walk.class_top_bit
        && walk.first_qclass == 1
        && matches!(walk.first_qtype, 1 | 28 | 255);
    if !base {
        return false;
    }
    if is_response {
        an <= 16 && ar <= 1
    } else {
        flags == 0 && an == 0 && ar == 0
    }
}

/// Registered query types: 1..=262 and TA/DLV (32768, 32769).
fn qtype_ok(t: u16) -> bool {
    (1..=262).contains(&t) || t == 32768 || t == 32769
}

/// IN, CH, HS, NONE, ANY.
fn class_ok(c: u16) -> bool {
    matches!(c, 1 | 3 | 4 | 254 | 255)
}

/// Where a name walk ended.
enum NameEnd {
    /// The name ends before this offset.
    At(usize),
    /// The bytes end inside the name.
    Cut,
    /// Not a valid name.
    Bad,
}

/// Walks one name at `start`, recording markers; pointers must point backwards into the message.
fn walk_name(msg: &[u8], start: usize, walk: &mut Walk, first: bool) -> NameEnd {
    let mut off = start;
    let mut total = 0usize;
    let mut labels = 0usize;
    let mut last: &[u8] = &[];
    let mut second_last: &[u8] = &[];
    loop {
        let Some(len) = u8_at(msg, off) else {
            return NameEnd::Cut;
        };
        match len & 0xc0 {
            0x00 if len == 0 => {
                off += 1;
                break;
            }
            0x00 => {
                let n = usize::from(len);
                let Some(label) = msg.get(off + 1..off + 1 + n) else {
                    return NameEnd::Cut;
                };
                if !label.iter().all(|&b| b >= 0x20 && b != 0x7f) {
                    return NameEnd::Bad;
                }
                total += n + 1;
                if total > MAX_NAME {
                    return NameEnd::Bad;
                }
                labels += 1;
                second_last = last;
                last = label;
                off += 1 + n;
            }
            0xc0 => {
                let Some(ptr) = be16(msg, off) else {
                    return NameEnd::Cut;
                };
                let target = usize::from(ptr & 0x3fff);
                if target < HEADER || target >= start {
                    return NameEnd::Bad;
                }
                off += 2;
                // The suffix is elsewhere: do not judge `local`/reverse markers on this name
                // unless its inline labels already show them.
                labels += 1;
                last = &[];
                second_last = &[];
                break;
            }
            _ => return NameEnd::Bad,
        }
    }
    if last.eq_ignore_ascii_case(b"local") {
        walk.local = true;
    }
    if last.eq_ignore_ascii_case(b"arpa")
        && (second_last.eq_ignore_ascii_case(b"in-addr")
            || second_last.eq_ignore_ascii_case(b"ip6"))
    {
        walk.reverse = true;
    }
    if first {
        walk.first_labels = labels;
        walk.first_name_at = Some(start);
        // NetBIOS name service: one 32-byte label of letters A..P (first-level encoding).
        walk.netbios_name = u8_at(msg, start) == Some(32)
            && msg
                .get(start + 1..start + 33)
                .is_some_and(|l| l.iter().all(|b| (b'A'..=b'P').contains(b)));
    }
    NameEnd::At(off)
}

/// The dotted form of the inline labels of the name at `at` (`.` for the root).
fn decode_name(msg: &[u8], at: usize) -> Option<String> {
    let mut out = String::new();
    let mut off = at;
    loop {
        let len = u8_at(msg, off)?;
        if len == 0 || len & 0xc0 != 0 {
            break;
        }
        let label = msg.get(off + 1..off + 1 + usize::from(len))?;
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(&String::from_utf8_lossy(label));
        off += 1 + usize::from(len);
    }
    if out.is_empty() {
        out.push('.');
    }
    Some(out)
}

/// Most A/AAAA addresses kept from one DNS response.
pub const MAX_ANSWER_ADDRESSES: usize = 4;
/// Most compression pointers followed while reading one name.
const MAX_POINTER_HOPS: usize = 16;
/// Most resource records walked in one response.
const MAX_ANSWER_RECORDS: usize = 64;

/// What one unicast DNS response resolved: the first question's name and up to
/// [`MAX_ANSWER_ADDRESSES`] A/AAAA addresses of its answer section. Fixed size (no heap), so it
/// can be kept per flow and moved through the hand-off queue as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAnswers {
    name: [u8; MAX_NAME],
    name_len: u8,
    addresses: [Option<std::net::IpAddr>; MAX_ANSWER_ADDRESSES],
    ttl_s: Option<u32>,
    seen_us: u64,
}

impl DnsAnswers {
    /// The queried name: lowercase ASCII, dot-separated, no trailing dot.
    pub fn name(&self) -> &str {
        let n = self.name.get(..usize::from(self.name_len)).unwrap_or(&[]);
        std::str::from_utf8(n).unwrap_or("")
    }

    /// The A/AAAA addresses, in answer order.
    pub fn addresses(&self) -> impl Iterator<Item = std::net::IpAddr> + '_ {
        self.addresses.iter().flatten().copied()
    }

    /// Smallest TTL among the kept address records, seconds.
    pub fn ttl_s(&self) -> Option<u32> {
        self.ttl_s
    }

    /// When the response was seen, µs since the epoch (0 unless the flow engine stamped it).
    pub fn seen_us(&self) -> u64 {
        self.seen_us
    }

    /// The same answers stamped with the time the response was seen.
    pub fn seen_at(mut self, ts_us: u64) -> DnsAnswers {
        self.seen_us = ts_us;
        self
    }
}

/// Reads the name at `off` into `out` (lowercase, dot-separated), following compression
/// pointers backwards only and at most [`MAX_POINTER_HOPS`] times. Returns the name's length in
/// `out` and the offset just after the name in place (after the first pointer, if any). `None`
/// for a malformed name, a name over 255 bytes, or a label with bytes outside printable ASCII.
fn read_name(msg: &[u8], off: usize, out: &mut [u8; MAX_NAME]) -> Option<(usize, usize)> {
    let mut pos = off;
    let mut after: Option<usize> = None;
    let mut hops = 0;
    let mut len = 0usize;
    loop {
        let l = u8_at(msg, pos)?;
        match l & 0xC0 {
            0x00 => {
                if l == 0 {
                    return Some((len, after.unwrap_or(pos + 1)));
                }
                let label = msg.get(pos + 1..pos + 1 + usize::from(l))?;
                let extra = usize::from(len > 0);
                if len + extra + label.len() > MAX_NAME {
                    return None;
                }
                if extra == 1 {
                    *out.get_mut(len)? = b'.';
                    len += 1;
                }
                for &b in label {
                    if !(0x21..0x7F).contains(&b) || b == b'.' {
                        return None;
                    }
                    *out.get_mut(len)? = b.to_ascii_lowercase();
                    len += 1;
                }
                pos += 1 + usize::from(l);
            }
            0xC0 => {
                let target = usize::from(be16(msg, pos)? & 0x3FFF);
                hops += 1;
                if hops > MAX_POINTER_HOPS || target >= pos {
                    return None;
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Extracts the resolved name and addresses from a unicast DNS response carried in one UDP
/// datagram. `None` unless the message is a response (QR set, opcode QUERY, RCODE NOERROR) with
/// exactly one question of class IN and at least one A/AAAA record in the answer section. Only
/// records whose owner is the question or a CNAME target in the chain from it count. Bounded:
/// at most 64 records, 16 pointers per name; no panics.
pub fn parse_response_answers(msg: &[u8]) -> Option<DnsAnswers> {
    let flags = be16(msg, 2)?;
    if flags & 0x8000 == 0 || (flags >> 11) & 0x0F != 0 || flags & 0x000F != 0 {
        return None;
    }
    if be16(msg, 4)? != 1 {
        return None;
    }
    let ancount = usize::from(be16(msg, 6)?);
    if ancount == 0 || ancount > MAX_ANSWER_RECORDS {
        return None;
    }
    let mut out = DnsAnswers {
        name: [0; MAX_NAME],
        name_len: 0,
        addresses: [None; MAX_ANSWER_ADDRESSES],
        ttl_s: None,
        seen_us: 0,
    };
    let (qlen, mut pos) = read_name(msg, HEADER, &mut out.name)?;
    if qlen == 0 || be16(msg, pos + 2)? != 1 {
        return None;
    }
    out.name_len = u8::try_from(qlen).ok()?;
    pos += 4;
    // The name records must be owned by: the question, then each CNAME target in turn.
    let mut owner = [0u8; MAX_NAME];
    let mut owner_len = qlen;
    owner.copy_from_slice(&out.name);
    let mut scratch = [0u8; MAX_NAME];
    let mut kept = 0usize;
    for _ in 0..ancount {
        let (rlen, p) = read_name(msg, pos, &mut scratch)?;
        let rtype = be16(msg, p)?;
        let class = be16(msg, p + 2)?;
        let ttl = super::wire_int::be32(msg, p + 4)?;
        let rdlen = usize::from(be16(msg, p + 8)?);
        let rdata_at = p + 10;
        let rdata = msg.get(rdata_at..rdata_at + rdlen)?;
        pos = rdata_at + rdlen;
        let owned = scratch.get(..rlen) == owner.get(..owner_len);
        if class != 1 || !owned {
            continue;
        }
        let ip = match (rtype, rdata) {
            (1, &[a, b, c, d]) => std::net::IpAddr::from([a, b, c, d]),
            (28, r) if r.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(r);
                std::net::IpAddr::from(o)
            }
            (5, _) => {
                let (tlen, _) = read_name(msg, rdata_at, &mut scratch)?;
                owner = scratch;
                owner_len = tlen;
                continue;
            }
            _ => continue,
        };
        if let Some(slot) = out.addresses.get_mut(kept) {
            *slot = Some(ip);
            kept += 1;
            out.ttl_s = Some(out.ttl_s.map_or(ttl, |t| t.min(ttl)));
        }
    }
    if kept == 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_support::{assert_match, expect_match};

    /// Builds a DNS message: header fields, then questions `(name, type, class)`, then raw
    /// record bytes.
    pub(crate) fn message(
        id: u16,
        flags: u16,
        questions: &[(&str, u16, u16)],
        counts: (u16, u16, u16),
        records: &[u8],
    ) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [
            id,
            flags,
            questions.len() as u16,
            counts.0,
            counts.1,
            counts.2,
        ] {
            m.extend_from_slice(&v.to_be_bytes());
        }
        for (name, t, c) in questions {
            m.extend_from_slice(&encode_name(name));
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&c.to_be_bytes());
        }
        m.extend_from_slice(records);
        m
    }

    /// Encodes a dotted name as labels.
    pub(crate) fn encode_name(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    /// An A record pointing its name at offset 12, with the given class.
    pub(crate) fn a_record_ptr12(class: u16) -> Vec<u8> {
        let mut r = vec![0xc0, 0x0c, 0x00, 0x01];
        r.extend_from_slice(&class.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34]);
        r
    }

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 40000, 53);

    const TCP: ProbeContext = ProbeContext::new(Transport::Tcp, 40000, 53);

    const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn multicast_destination_only_removes_flavours() {
        let to_group = UDP.to_multicast();
        let dns_q = message(0x1a2b, 0x0100, &[("www.example.com", 1, 1)], (0, 0, 0), &[]);
        let mdns_q = message(0, 0, &[("_airplay._tcp.local", 12, 1)], (0, 0, 0), &[]);
        let llmnr_q = message(0x8f3e, 0, &[("wpad", 1, 1)], (0, 0, 0), &[]);
        let llmnr_r = message(
            0x8f3e,
            0x8000,
            &[("wpad", 1, 1)],
            (1, 0, 0),
            &a_record_ptr12(1),
        );
        let flavors = |ctx: &ProbeContext, m: &[u8]| -> Vec<&'static str> {
            crate::protocols::PARSERS
                .iter()
                .filter(|(n, _)| matches!(*n, "dns" | "mdns" | "llmnr"))
                .filter(|(_, f)| f(ctx, m).is_match())
                .map(|(n, _)| *n)
                .collect()
        };
        // Unicast: each message is its own flavour.
        assert_eq!(flavors(&UDP, &dns_q), ["dns"]);
        assert_eq!(flavors(&UDP, &mdns_q), ["mdns"]);
        assert_eq!(flavors(&UDP, &llmnr_q), ["llmnr"]);
        assert_eq!(flavors(&UDP, &llmnr_r), ["llmnr"]);
        // To a multicast group: unicast DNS and an LLMNR response are nothing; mDNS and an
        // LLMNR query are unchanged. Nothing gains a label.
        assert!(flavors(&to_group, &dns_q).is_empty());
        assert!(flavors(&to_group, &llmnr_r).is_empty());
        assert_eq!(flavors(&to_group, &mdns_q), ["mdns"]);
        assert_eq!(flavors(&to_group, &llmnr_q), ["llmnr"]);
    }

    #[test]
    fn query_with_edns_matches_with_name() {
        let q = message(
            0x1a2b,
            0x0120,
            &[("www.example.com", 1, 1)],
            (0, 0, 1),
            &OPT,
        );
        let p = probe(&UDP, &q);
        assert_eq!(
            p,
            Probe::Match {
                indicator: "dns.query",
                meta: Meta::Name("www.example.com".into())
            }
        );
    }

    #[test]
    fn response_with_compressed_answer_matches() {
        let r = message(
            0x1a2b,
            0x8180,
            &[("example.com", 1, 1)],
            (1, 0, 0),
            &a_record_ptr12(1),
        );
        assert_match(probe(&UDP, &r), "dns.response");
    }

    #[test]
    fn tcp_framing() {
        let q = message(7, 0x0100, &[("example.org", 28, 1)], (0, 0, 0), &[]);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        expect_match(probe(&TCP, &framed));
        // Cut inside the question: need more.
        assert_eq!(probe(&TCP, &framed[..framed.len() - 6]), Probe::NeedMore);
        assert_eq!(probe(&TCP, &framed[..1]), Probe::NeedMore);
        // The unframed message over TCP is not DNS.
        assert_eq!(probe(&TCP, &q), Probe::NoMatch);
    }

    #[test]
    fn rejects_bad_shapes() {
        // Trailing garbage.
        let mut q = message(1, 0x0100, &[("example.com", 1, 1)], (0, 0, 0), &[]);
        q.push(0x41);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Count says one answer, none present.
        let q = message(1, 0x8180, &[("example.com", 1, 1)], (1, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Bad class.
        let q = message(1, 0x0100, &[("example.com", 1, 9)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Forward pointer in the first question.
        let mut q = message(1, 0x0100, &[], (0, 0, 0), &[]);
        q[5] = 1;
        q.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Query carrying an answer.
        let q = message(
            1,
            0x0100,
            &[("example.com", 1, 1)],
            (1, 0, 0),
            &a_record_ptr12(1),
        );
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Z bit set.
        let q = message(1, 0x0140, &[("example.com", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
    }

    #[test]
    fn inverse_query_and_bare_error_response() {
        // IQUERY (opcode 1): no question, one answer naming the address.
        let mut rec = encode_name("216.58.202.4");
        rec.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        let q = message(0x77fc, 0x0900, &[], (1, 0, 0), &rec);
        assert_match(probe(&UDP, &q), "dns.query");
        // NOTIMP with no records.
        let r = message(0x77fc, 0x8984, &[], (0, 0, 0), &[]);
        assert!(matches!(
            probe(&UDP, &r),
            Probe::Match {
                indicator: "dns.response",
                meta: Meta::None
            }
        ));
        // A 12-byte all-zero-count query is not DNS.
        let q = message(0x77fc, 0x0100, &[], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
    }

    #[test]
    fn text_over_tcp_is_not_worth_waiting_for() {
        assert_eq!(probe(&TCP, b"PASS x\r\n"), Probe::NoMatch);
        assert_eq!(probe(&TCP, b"PWD\r\n"), Probe::NoMatch);
    }

    #[test]
    fn netbios_name_service_is_not_dns() {
        // NBNS name query for "WORKGROUP<1b>" style encoded name.
        let q = message(
            0x8a01,
            0x0110,
            &[("FHEPFCELEHFCEPFFFACACACACACACABL", 0x20, 1)],
            (0, 0, 0),
            &[],
        );
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
    }

    #[test]
    fn mdns_and_llmnr_shapes_are_not_dns() {
        let m = message(0, 0, &[("_airplay._tcp.local", 12, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &m), Probe::NoMatch);
        let l = message(0x4c2f, 0, &[("wpad", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &l), Probe::NoMatch);
        // The same single-label name with RD set is a DNS query.
        let d = message(0x4c2f, 0x0100, &[("wpad", 1, 1)], (0, 0, 0), &[]);
        expect_match(probe(&UDP, &d));
        // A `.local` query with a random ID and RD set (Active Directory domains) is DNS.
        let d = message(0x4c2f, 0x0100, &[("dc1.corp.local", 1, 1)], (0, 0, 0), &[]);
        expect_match(probe(&UDP, &d));
    }

    #[test]
    fn rejects_other_protocols() {
        for d in [
            &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00",
            &[0x1b; 48],
            b"",
        ] {
            assert_eq!(probe(&UDP, d), Probe::NoMatch);
        }
    }

    #[test]
    fn response_answers_follow_the_cname_chain() {
        use std::net::IpAddr;
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "2001:db8::7".parse().unwrap();
        let m = portolan_testkit::dns_response(7, "API.Example.com", Some("edge.cdn.net"), &[a, b]);
        let got = parse_response_answers(&m).unwrap();
        assert_eq!(got.name(), "api.example.com");
        assert_eq!(got.addresses().collect::<Vec<_>>(), vec![a, b]);
        assert_eq!(got.ttl_s(), Some(300));
        // A query (QR clear) yields nothing.
        let mut q = m.clone();
        q[2] &= 0x7F;
        assert!(parse_response_answers(&q).is_none());
        // NXDOMAIN yields nothing.
        let mut nx = m.clone();
        nx[3] = (nx[3] & 0xF0) | 3;
        assert!(parse_response_answers(&nx).is_none());
    }

    #[test]
    fn response_answers_keep_at_most_four_and_skip_foreign_owners() {
        use std::net::IpAddr;
        let addrs: Vec<IpAddr> = (1..=6u8).map(|i| IpAddr::from([198, 51, 100, i])).collect();
        let m = portolan_testkit::dns_response(1, "a.example", None, &addrs);
        let got = parse_response_answers(&m).unwrap();
        assert_eq!(got.addresses().count(), MAX_ANSWER_ADDRESSES);
        // A CNAME target never reached: records owned by another name are not credited.
        let mut m2 = portolan_testkit::dns_response(1, "a.example", Some("b.example"), &addrs[..1]);
        // Turn the CNAME into a TXT record: the A record's owner (b.example) is now foreign.
        let cname_type_at = 12 + 11 + 4 + 2 + 1;
        assert_eq!(m2[cname_type_at], 5);
        m2[cname_type_at] = 16;
        assert!(parse_response_answers(&m2).is_none());
    }

    #[test]
    fn response_answers_reject_pointer_loops_and_truncation() {
        use std::net::IpAddr;
        let m = portolan_testkit::dns_response(
            1,
            "a.example",
            None,
            &["192.0.2.1".parse::<IpAddr>().unwrap()],
        );
        // A forward pointer (to itself) in the answer owner is refused.
        let mut looped = m.clone();
        let owner_at = 12 + 11 + 4;
        assert_eq!(looped[owner_at], 0xC0);
        looped[owner_at + 1] = u8::try_from(owner_at).unwrap();
        assert!(parse_response_answers(&looped).is_none());
        for cut in 0..m.len() {
            assert!(parse_response_answers(&m[..cut]).is_none(), "cut at {cut}");
        }
    }

    proptest::proptest! {
        #[test]
        fn response_answers_never_panic(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            if let Some(a) = parse_response_answers(&data) {
                proptest::prop_assert!(a.addresses().count() <= MAX_ANSWER_ADDRESSES);
                proptest::prop_assert!(a.name().len() <= MAX_NAME);
                proptest::prop_assert!(!a.name().is_empty());
            }
        }

        #[test]
        fn response_answers_survive_mutations(
            flips in proptest::collection::vec((0usize..80, proptest::num::u8::ANY), 0..6),
        ) {
            let mut m = portolan_testkit::dns_response(
                9,
                "x.example.org",
                Some("y.example.net"),
                &[std::net::IpAddr::from([192, 0, 2, 9])],
            );
            for (at, v) in flips {
                if let Some(b) = m.get_mut(at) {
                    *b = v;
                }
            }
            let _ = parse_response_answers(&m);
        }
    }
}
