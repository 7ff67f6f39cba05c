//! Cleartext application messages: HTTP/1.1, DNS, SSH, MQTT, IMAP, SMTP, NTP and STUN.
//!
//! Owns: the byte layout of each message as real clients and servers send it, so that protocol
//! parsers recognise them. Must not: decide sizes, timing or ordering of a conversation (that
//! is `script`), or build TLS/QUIC (that is `tls`/`quic`).

use crate::rng::SynthRng;
use std::net::IpAddr;

/// An HTTP/1.1 request head (and body for POST).
pub struct HttpRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// Request target.
    pub path: &'a str,
    /// Host header.
    pub host: &'a str,
    /// User-Agent header.
    pub user_agent: &'a str,
    /// Body length for POST (JSON); 0 for none.
    pub body_len: usize,
}

/// The request's bytes: head plus a JSON body of `body_len` bytes.
pub fn http_request(r: &HttpRequest<'_>, rng: &mut SynthRng) -> Vec<u8> {
    let mut s = format!("{} {} HTTP/1.1\r\nHost: {}\r\n", r.method, r.path, r.host);
    if r.body_len > 0 {
        s.push_str("Content-Type: application/json\r\n");
        s.push_str(&format!("Content-Length: {}\r\n", r.body_len));
    }
    s.push_str(
        "Accept: */*\r\nAccept-Language: en-GB,en;q=0.9\r\nAccept-Encoding: gzip, deflate\r\n",
    );
    s.push_str(&format!(
        "User-Agent: {}\r\nConnection: keep-alive\r\n\r\n",
        r.user_agent
    ));
    let mut out = s.into_bytes();
    if r.body_len > 0 {
        json_text(r.body_len, rng, &mut out);
    }
    out
}

/// Content type of a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`.
    Json,
    /// `text/html`.
    Html,
    /// `image/jpeg` (binary).
    Jpeg,
    /// `application/octet-stream` (binary).
    Binary,
}

impl BodyKind {
    /// The Content-Type value.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyKind::Json => "application/json; charset=utf-8",
            BodyKind::Html => "text/html; charset=utf-8",
            BodyKind::Jpeg => "image/jpeg",
            BodyKind::Binary => "application/octet-stream",
        }
    }
}

/// An HTTP/1.1 response head announcing a `body_len`-byte body.
pub fn http_response_head(
    status: u16,
    kind: BodyKind,
    body_len: usize,
    server: &str,
    close: bool,
    date: &str,
) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        _ => "OK",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nDate: {date}\r\nServer: {server}\r\nContent-Type: {}\r\nContent-Length: {body_len}\r\nCache-Control: max-age=0, private\r\nConnection: {}\r\n\r\n",
        kind.content_type(),
        if close { "close" } else { "keep-alive" }
    )
    .into_bytes()
}

const WORDS: [&str; 16] = [
    "account", "contact", "order", "status", "region", "north", "south", "pending", "closed",
    "priority", "owner", "updated", "amount", "currency", "EUR", "notes",
];

/// Appends `len` bytes of JSON-looking text (an array of small records, cut to length).
pub fn json_text(len: usize, rng: &mut SynthRng, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"{\"items\":[");
    let mut id = rng.range(1000, 90000);
    while out.len() - start < len {
        let w1 = WORDS[rng.below(WORDS.len() as u64) as usize];
        let w2 = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(
            format!(
                "{{\"id\":{id},\"{w1}\":\"{w2}\",\"v\":{}}},",
                rng.below(100000)
            )
            .as_bytes(),
        );
        id += 1;
    }
    out.truncate(start + len);
    if len >= 2 {
        let n = out.len();
        out[n - 2] = b']';
        out[n - 1] = b'}';
    }
}

/// Appends `len` bytes of HTML-looking text.
pub fn html_text(len: usize, rng: &mut SynthRng, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>News</title></head><body>");
    while out.len() - start < len {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(
            format!("<p class=\"s{}\">The {w} was updated.</p>\n", rng.below(9)).as_bytes(),
        );
    }
    out.truncate(start + len);
}

/// The start of a baseline JPEG file up to the start of its entropy-coded scan: SOI, JFIF
/// APP0, one quantisation table, SOF0 (640x480, 3 components) and SOS. Random bytes follow.
pub const JPEG_MAGIC: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00\
\xff\xdb\x00\x43\x00\x08\x06\x06\x07\x06\x05\x08\x07\x07\x07\x09\x09\x08\x0a\x0c\x14\x0d\x0c\x0b\x0b\x0c\x19\x12\x13\x0f\
\x14\x1d\x1a\x1f\x1e\x1d\x1a\x1c\x1c\x20\x24\x2e\x27\x20\x22\x2c\x23\x1c\x1c\x28\x37\x29\x2c\x30\x31\x34\x34\x34\x1f\x27\x39\x3d\
\x38\x32\x3c\x2e\x33\x34\x32\
\xff\xc0\x00\x11\x08\x01\xe0\x02\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\
\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00";

/// Encodes a DNS name in wire format.
fn dns_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// A recursive DNS query for `name` of type `qtype` (1 = A, 28 = AAAA).
pub fn dns_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(name.len() + 18);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    dns_name(name, &mut m);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

/// The resolver's answer to [`dns_query`]: the question echoed and one record per address of
/// the matching family, names compressed to the question.
pub fn dns_response(id: u16, name: &str, qtype: u16, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
    let answers: Vec<&IpAddr> = addrs
        .iter()
        .filter(|a| a.is_ipv6() == (qtype == 28))
        .collect();
    let mut m = Vec::with_capacity(name.len() + 18 + answers.len() * 28);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x81, 0x80, 0, 1]);
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    dns_name(name, &mut m);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    for a in answers {
        m.extend_from_slice(&[0xc0, 0x0c]);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m.extend_from_slice(&ttl.to_be_bytes());
        match a {
            IpAddr::V4(v) => {
                m.extend_from_slice(&[0, 4]);
                m.extend_from_slice(&v.octets());
            }
            IpAddr::V6(v) => {
                m.extend_from_slice(&[0, 16]);
                m.extend_from_slice(&v.octets());
            }
        }
    }
    m
}

/// An SSH identification line (`SSH-2.0-...\r\n`).
pub fn ssh_banner(software: &str) -> Vec<u8> {
    format!("SSH-2.0-{software}\r\n").into_bytes()
}

/// An unencrypted SSH binary packet around `payload` (RFC 4253 §6), padded to 8 bytes.
fn ssh_packet(payload: &[u8], rng: &mut SynthRng) -> Vec<u8> {
    let mut pad = 8 - ((5 + payload.len()) % 8);
    if pad < 4 {
        pad += 8;
    }
    let len = 1 + payload.len() + pad;
    let mut p = Vec::with_capacity(4 + len);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.push(pad as u8);
    p.extend_from_slice(payload);
    let at = p.len();
    p.resize(at + pad, 0);
    rng.fill(&mut p[at..]);
    p
}

fn name_list(out: &mut Vec<u8>, names: &str) {
    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
    out.extend_from_slice(names.as_bytes());
}

/// SSH_MSG_KEXINIT as a client (`server == false`) or OpenSSH server offers it.
pub fn ssh_kexinit(server: bool, rng: &mut SynthRng) -> Vec<u8> {
    let mut m = vec![20u8];
    m.extend_from_slice(&rng.bytes::<16>());
    let kex = if server {
        "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com"
    } else {
        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,diffie-hellman-group16-sha512,diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com"
    };
    let hostkey = if server {
        "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    } else {
        "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256"
    };
    let ciphers = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com";
    let macs = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";
    let comp = "none,zlib@openssh.com";
    for l in [
        kex, hostkey, ciphers, ciphers, macs, macs, comp, comp, "", "",
    ] {
        name_list(&mut m, l);
    }
    m.extend_from_slice(&[0, 0, 0, 0, 0]);
    ssh_packet(&m, rng)
}

/// SSH_MSG_KEX_ECDH_INIT (client's curve25519 key).
pub fn ssh_ecdh_init(rng: &mut SynthRng) -> Vec<u8> {
    let mut m = vec![30u8, 0, 0, 0, 32];
    m.extend_from_slice(&rng.bytes::<32>());
    ssh_packet(&m, rng)
}

/// SSH_MSG_KEX_ECDH_REPLY (ed25519 host key, server key, signature) followed by SSH_MSG_NEWKEYS.
pub fn ssh_ecdh_reply_newkeys(rng: &mut SynthRng) -> Vec<u8> {
    let mut m = vec![31u8];
    let mut hostkey = Vec::new();
    name_list(&mut hostkey, "ssh-ed25519");
    hostkey.extend_from_slice(&32u32.to_be_bytes());
    hostkey.extend_from_slice(&rng.bytes::<32>());
    m.extend_from_slice(&(hostkey.len() as u32).to_be_bytes());
    m.extend_from_slice(&hostkey);
    m.extend_from_slice(&32u32.to_be_bytes());
    m.extend_from_slice(&rng.bytes::<32>());
    let mut sig = Vec::new();
    name_list(&mut sig, "ssh-ed25519");
    sig.extend_from_slice(&64u32.to_be_bytes());
    sig.extend_from_slice(&rng.bytes::<64>());
    m.extend_from_slice(&(sig.len() as u32).to_be_bytes());
    m.extend_from_slice(&sig);
    let mut out = ssh_packet(&m, rng);
    out.extend_from_slice(&ssh_newkeys(rng));
    out
}

/// SSH_MSG_NEWKEYS.
pub fn ssh_newkeys(rng: &mut SynthRng) -> Vec<u8> {
    ssh_packet(&[21], rng)
}

/// The length an encrypted SSH packet (chacha20-poly1305: 4-byte length, payload padded to 8,
/// 16-byte tag) has for `n` payload bytes.
pub fn ssh_encrypted_len(n: usize) -> usize {
    let body = 1 + n;
    let padded = (body + 4).div_ceil(8) * 8;
    4 + padded + 16
}

fn mqtt_remaining_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn mqtt_packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    mqtt_remaining_len(&mut p, body.len());
    p.extend_from_slice(body);
    p
}

fn mqtt_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// MQTT 3.1.1 CONNECT with clean session, username/password and a keep-alive of 60 s.
pub fn mqtt_connect(client_id: &str, username: &str, rng: &mut SynthRng) -> Vec<u8> {
    let mut b = Vec::new();
    mqtt_str(&mut b, "MQTT");
    b.extend_from_slice(&[4, 0xc2, 0, 60]);
    mqtt_str(&mut b, client_id);
    mqtt_str(&mut b, username);
    let token: String = (0..24)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    mqtt_str(&mut b, &token);
    mqtt_packet(0x10, &b)
}

/// CONNACK (session not present, accepted).
pub fn mqtt_connack() -> Vec<u8> {
    vec![0x20, 0x02, 0x00, 0x00]
}

/// SUBSCRIBE to `topic` at QoS 1.
pub fn mqtt_subscribe(packet_id: u16, topic: &str) -> Vec<u8> {
    let mut b = packet_id.to_be_bytes().to_vec();
    mqtt_str(&mut b, topic);
    b.push(1);
    mqtt_packet(0x82, &b)
}

/// SUBACK granting QoS 1.
pub fn mqtt_suback(packet_id: u16) -> Vec<u8> {
    let mut b = packet_id.to_be_bytes().to_vec();
    b.push(1);
    mqtt_packet(0x90, &b)
}

/// PUBLISH of a JSON payload of about `len` bytes (QoS 1 when `packet_id` is set).
pub fn mqtt_publish(
    topic: &str,
    packet_id: Option<u16>,
    len: usize,
    rng: &mut SynthRng,
) -> Vec<u8> {
    let mut b = Vec::new();
    mqtt_str(&mut b, topic);
    if let Some(id) = packet_id {
        b.extend_from_slice(&id.to_be_bytes());
    }
    json_text(len.max(16), rng, &mut b);
    mqtt_packet(if packet_id.is_some() { 0x32 } else { 0x30 }, &b)
}

/// PUBACK.
pub fn mqtt_puback(packet_id: u16) -> Vec<u8> {
    let mut p = vec![0x40, 0x02];
    p.extend_from_slice(&packet_id.to_be_bytes());
    p
}

/// PINGREQ.
pub const MQTT_PINGREQ: [u8; 2] = [0xc0, 0x00];
/// PINGRESP.
pub const MQTT_PINGRESP: [u8; 2] = [0xd0, 0x00];
/// DISCONNECT.
pub const MQTT_DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// NTP timestamp (seconds since 1900 and a 32-bit fraction) for a Unix time in microseconds.
fn ntp_ts(unix_us: u64) -> [u8; 8] {
    let secs = unix_us / 1_000_000 + 2_208_988_800;
    let frac = ((unix_us % 1_000_000) << 32) / 1_000_000;
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&(secs as u32).to_be_bytes());
    b[4..].copy_from_slice(&(frac as u32).to_be_bytes());
    b
}

/// An NTPv4 client request (mode 3) sent at `unix_us`.
pub fn ntp_request(unix_us: u64) -> Vec<u8> {
    let mut m = vec![0u8; 48];
    m[0] = 0x23; // LI 0, VN 4, mode 3
    m[2] = 6;
    m[3] = 0xe9;
    m[40..48].copy_from_slice(&ntp_ts(unix_us));
    m
}

/// The stratum-1 server's reply (mode 4) to a request sent at `sent_us`, answered at `reply_us`.
pub fn ntp_response(sent_us: u64, reply_us: u64) -> Vec<u8> {
    let mut m = vec![0u8; 48];
    m[0] = 0x24; // LI 0, VN 4, mode 4
    m[1] = 1;
    m[2] = 6;
    m[3] = 0xe9;
    m[4..8].copy_from_slice(&[0, 0, 0, 0x10]);
    m[8..12].copy_from_slice(&[0, 0, 0, 0x20]);
    m[12..16].copy_from_slice(b"GPSs");
    m[16..24].copy_from_slice(&ntp_ts(reply_us.saturating_sub(8_000_000)));
    m[24..32].copy_from_slice(&ntp_ts(sent_us));
    m[32..40].copy_from_slice(&ntp_ts(reply_us.saturating_sub(40)));
    m[40..48].copy_from_slice(&ntp_ts(reply_us));
    m
}

const STUN_COOKIE: u32 = 0x2112_a442;

/// CRC-32 (IEEE) for the STUN FINGERPRINT attribute.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn stun_message(msg_type: u16, tid: &[u8; 12], attrs: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(20 + attrs.len() + 8);
    m.extend_from_slice(&msg_type.to_be_bytes());
    m.extend_from_slice(&((attrs.len() + 8) as u16).to_be_bytes());
    m.extend_from_slice(&STUN_COOKIE.to_be_bytes());
    m.extend_from_slice(tid);
    m.extend_from_slice(attrs);
    let fp = crc32(&m) ^ 0x5354_554e;
    m.extend_from_slice(&[0x80, 0x28, 0, 4]);
    m.extend_from_slice(&fp.to_be_bytes());
    m
}

/// A STUN Binding Request with a FINGERPRINT.
pub fn stun_binding_request(tid: &[u8; 12]) -> Vec<u8> {
    stun_message(0x0001, tid, &[])
}

/// A Binding Success Response reporting `mapped` as XOR-MAPPED-ADDRESS.
pub fn stun_binding_response(tid: &[u8; 12], mapped: std::net::Ipv4Addr, port: u16) -> Vec<u8> {
    let mut a = vec![0x00, 0x20, 0x00, 0x08, 0x00, 0x01];
    a.extend_from_slice(&(port ^ (STUN_COOKIE >> 16) as u16).to_be_bytes());
    a.extend_from_slice(&(u32::from(mapped) ^ STUN_COOKIE).to_be_bytes());
    stun_message(0x0101, tid, &a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_answer_counts_match_family() {
        let addrs: Vec<IpAddr> = vec![
            "17.57.144.10".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            "2620:149:a44::1".parse().unwrap_or(IpAddr::from([0; 16])),
        ];
        let r = dns_response(7, "courier.push.apple.com", 1, &addrs, 60);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        let q = dns_query(7, "courier.push.apple.com", 28);
        assert_eq!(q.len(), 12 + 24 + 4);
    }

    #[test]
    fn ssh_packets_are_block_aligned() {
        let mut rng = SynthRng::new(1, 1);
        for p in [
            ssh_kexinit(false, &mut rng),
            ssh_kexinit(true, &mut rng),
            ssh_ecdh_init(&mut rng),
        ] {
            let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
            assert_eq!(len + 4, p.len());
            assert_eq!(p.len() % 8, 0);
            assert!(p[4] >= 4);
        }
    }

    #[test]
    fn stun_fingerprint_matches_rfc5769_style_check() {
        let tid = [1u8; 12];
        let m = stun_binding_request(&tid);
        assert_eq!(m.len(), 28);
        let fp = u32::from_be_bytes([m[24], m[25], m[26], m[27]]);
        assert_eq!(fp, crc32(&m[..20]) ^ 0x5354_554e);
        // CRC-32 check value.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn mqtt_connect_is_well_formed() {
        let mut rng = SynthRng::new(1, 1);
        let c = mqtt_connect("ios-1234", "device", &mut rng);
        assert_eq!(c[0], 0x10);
        assert_eq!(c[1] as usize, c.len() - 2);
        assert_eq!(&c[2..8], b"\x00\x04MQTT");
    }
}
