//! First flights of the protocols the classifier confirms without a builder of their own: an
//! SSH `KEXINIT`, a DNS response, one payload per parser for benchmarks and seeds, and a
//! deterministic generator of pseudo-random bytes for negative tests.
//!
//! Owns: those payloads' bytes. Must not: frame them (see [`crate::frame`]).

use portolan_synth::quic::QUIC_V1;

use crate::quic::quic_initial;
use crate::tls::{
    client_hello_message, dtls_client_hello_record, tls_client_hello_record, ClientHelloSpec,
};

/// An unencrypted `SSH_MSG_KEXINIT` packet (RFC 4253 sections 6 and 7.1, block size 8) whose
/// `kex_algorithms` name-list is `kex_algorithms`, with OpenSSH-like other lists.
pub fn ssh_kexinit(kex_algorithms: &str) -> Vec<u8> {
    let mut payload = vec![20];
    payload.extend_from_slice(&[0x5a; 16]);
    let lists = [
        kex_algorithms,
        "ssh-ed25519,rsa-sha2-512",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "chacha20-poly1305@openssh.com,aes128-ctr",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "none,zlib@openssh.com",
        "none,zlib@openssh.com",
        "",
        "",
    ];
    for l in lists {
        payload.extend_from_slice(&u32::try_from(l.len()).expect("fits").to_be_bytes());
        payload.extend_from_slice(l.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut padding = 8 - (4 + 1 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let len = u32::try_from(1 + payload.len() + padding).expect("fits");
    let mut pkt = len.to_be_bytes().to_vec();
    pkt.push(u8::try_from(padding).expect("fits"));
    pkt.extend_from_slice(&payload);
    pkt.resize(pkt.len() + padding, 0x11);
    pkt
}

/// A first flight per protocol this crate's own parsers confirm, for benchmarks and seeds:
/// `(parser name, transport is UDP, payload)`.
pub fn first_flights() -> Vec<(&'static str, bool, Vec<u8>)> {
    let chrome = ClientHelloSpec::chrome_like("www.example.com");
    let hello = client_hello_message(&chrome);
    vec![
        ("tls", false, tls_client_hello_record(&chrome)),
        (
            "http",
            false,
            b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)\r\nAccept: */*\r\n\r\n".to_vec(),
        ),
        ("http2", false, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec()),
        (
            "quic",
            true,
            quic_initial(QUIC_V1, &[0x5c; 8], 0, &[(0, &hello)], 1200),
        ),
        (
            "dtls",
            true,
            dtls_client_hello_record(&ClientHelloSpec::minimal("webrtc.example"), None),
        ),
    ]
}

/// A unicast DNS response (RD, RA, NOERROR) to one `IN` question for `name`: a CNAME to
/// `cname` first when given, then one A or AAAA record (TTL 300) per address, owned by the
/// last name in the chain; names after the question are compression pointers to it.
pub fn dns_response(
    id: u16,
    name: &str,
    cname: Option<&str>,
    addresses: &[std::net::IpAddr],
) -> Vec<u8> {
    fn encode(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(u8::try_from(label.len()).expect("label over 255 bytes"));
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }
    let ancount = addresses.len() + usize::from(cname.is_some());
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x8180u16.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(
        &u16::try_from(ancount)
            .expect("too many records")
            .to_be_bytes(),
    );
    m.extend_from_slice(&[0, 0, 0, 0]);
    let qtype: u16 = if addresses.first().is_some_and(|a| a.is_ipv6()) {
        28
    } else {
        1
    };
    m.extend_from_slice(&encode(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    // Pointer to the question name (offset 12).
    let mut owner = vec![0xC0, 0x0C];
    if let Some(c) = cname {
        let target = encode(c);
        m.extend_from_slice(&owner);
        m.extend_from_slice(&[0, 5, 0, 1, 0, 0, 1, 44]);
        m.extend_from_slice(
            &u16::try_from(target.len())
                .expect("long name")
                .to_be_bytes(),
        );
        let at = m.len();
        m.extend_from_slice(&target);
        owner = vec![
            0xC0 | u8::try_from(at >> 8).expect("offset"),
            (at & 0xFF) as u8,
        ];
    }
    for a in addresses {
        m.extend_from_slice(&owner);
        match a {
            std::net::IpAddr::V4(v4) => {
                m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
                m.extend_from_slice(&v4.octets());
            }
            std::net::IpAddr::V6(v6) => {
                m.extend_from_slice(&[0, 28, 0, 1, 0, 0, 1, 44, 0, 16]);
                m.extend_from_slice(&v6.octets());
            }
        }
    }
    m
}

/// A deterministic xorshift64* generator for negative tests ("random bytes never confirm"):
/// the same seed gives the same sequence, so a failure is reproducible.
pub fn xorshift64_star(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
