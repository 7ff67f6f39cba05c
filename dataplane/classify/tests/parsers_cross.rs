//! Cross-protocol checks for the confirming parsers of the line, mail, VPN, naming and
//! file-sharing protocols: every realistic sample is confirmed by its own parser and by no other
//! registered parser, bytes of other protocols and pseudo-random bytes are confirmed by none of
//! them, and no parser panics on arbitrary or mutated bytes (proptest).

mod common;

use common::{ctx, COVERED};
use portolan_classify::protocols::PARSERS;
use portolan_classify::ProbeContext;
use portolan_model::Side;
use portolan_packet::Transport;
use proptest::prelude::*;

/// One payload as seen at the start of a flow direction.
struct Sample {
    proto: &'static str,
    transport: Transport,
    from_client: bool,
    bytes: Vec<u8>,
}

fn s(proto: &'static str, transport: Transport, from_client: bool, bytes: &[u8]) -> Sample {
    Sample {
        proto,
        transport,
        from_client,
        bytes: bytes.to_vec(),
    }
}

fn dns_message(
    id: u16,
    flags: u16,
    questions: &[(&str, u16, u16)],
    answers: &[u8],
    an: u16,
) -> Vec<u8> {
    let mut m = Vec::new();
    for v in [id, flags, questions.len() as u16, an, 0, 0] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    for (name, t, c) in questions {
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&t.to_be_bytes());
        m.extend_from_slice(&c.to_be_bytes());
    }
    m.extend_from_slice(answers);
    m
}

fn ldap_bind() -> Vec<u8> {
    let dn = b"cn=reader,dc=corp,dc=example";
    let mut op = vec![0x02, 0x01, 0x03, 0x04, dn.len() as u8];
    op.extend_from_slice(dn);
    op.extend_from_slice(b"\x80\x08p4ssw0rd");
    let mut msg = vec![0x02, 0x01, 0x01, 0x60, op.len() as u8];
    msg.extend_from_slice(&op);
    let mut full = vec![0x30, msg.len() as u8];
    full.extend_from_slice(&msg);
    full
}

fn samples() -> Vec<Sample> {
    use Transport::{Tcp, Udp};
    let a_answer = [
        0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
    ];
    let dns_q = dns_message(0xbeef, 0x0100, &[("www.example.com", 1, 1)], &[], 0);
    let mut dns_tcp = (dns_q.len() as u16).to_be_bytes().to_vec();
    dns_tcp.extend_from_slice(&dns_q);
    let mut mdns_answer = vec![6];
    mdns_answer.extend_from_slice(b"iPhone");
    mdns_answer.push(5);
    mdns_answer.extend_from_slice(b"local");
    mdns_answer.extend_from_slice(&[0, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 20]);

    let mut stun = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    stun.extend_from_slice(&[
        0x6b, 0x31, 0x9e, 0x02, 0x47, 0xaa, 0x10, 0x3c, 0x55, 0x01, 0xfe, 0x77,
    ]);
    stun.extend_from_slice(&[0x80, 0x28, 0x00, 0x04, 0x1c, 0x2b, 0x3a, 0x49]);

    let mut ovpn = vec![0x38, 0x91, 0x2e, 0x4c, 0x07, 0xd3, 0x5a, 0x66, 0x1f];
    ovpn.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut ovpn_tcp = (ovpn.len() as u16).to_be_bytes().to_vec();
    ovpn_tcp.extend_from_slice(&ovpn);

    let mut wg_init = vec![1, 0, 0, 0, 0x8d, 0x2f, 0x11, 0x6a];
    wg_init.extend((0..140u32).map(|i| (i * 37 + 11) as u8));

    let mut ike = vec![
        0x71, 0x3c, 0x09, 0xaa, 0x52, 0x10, 0xe4, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    ike.extend_from_slice(&[33, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    ike.extend_from_slice(&[40, 0, 0, 48]);
    ike.extend((0..44u32).map(|i| (i * 7) as u8));
    ike.extend_from_slice(&[0, 0, 0, 36]);
    ike.extend((0..32u32).map(|i| (i * 13 + 1) as u8));
    let len = ike.len() as u32;
    ike[24..28].copy_from_slice(&len.to_be_bytes());
    let mut ike_natt = vec![0, 0, 0, 0];
    ike_natt.extend_from_slice(&ike);

    let mut bt = b"\x13BitTorrent protocol".to_vec();
    bt.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 5]);
    bt.extend((0..20u8).map(|i| i.wrapping_mul(29)));
    bt.extend_from_slice(b"-TR3000-a1b2c3d4e5f6");

    let mut rdp =
        b"\x03\x00\x00\x2f\x2a\xe0\x00\x00\x00\x00\x00Cookie: mstshash=administrator\r\n".to_vec();
    rdp.extend_from_slice(b"\x01\x00\x08\x00\x03\x00\x00\x00");
    let rdp_len = rdp.len();
    rdp[3] = rdp_len as u8;
    rdp[4] = (rdp_len - 5) as u8;

    let mut smb2 = vec![0x00, 0x00, 0x00, 0x68];
    smb2.extend_from_slice(b"\xfeSMB\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    smb2.resize(4 + 0x68, 0);
    let mut smb1 = vec![0x00, 0x00, 0x00, 0x54];
    smb1.extend_from_slice(b"\xffSMB\x72\x00\x00\x00\x00\x18\x53\xc8");
    smb1.resize(4 + 0x54, 0);

    let mut ntp_client = vec![0x23, 0x00, 0x06, 0x20 | 0xc0, 0, 0, 0, 0, 0, 0, 0, 0];
    ntp_client[3] = 0xe9;
    ntp_client.resize(40, 0);
    ntp_client.extend_from_slice(&[0xea, 0x8b, 0x1c, 0x2d, 0x3e, 0x4f, 0x50, 0x61]);
    let mut ntp_server = vec![
        0x24, 0x02, 0x03, 0xe8, 0, 0, 0x02, 0x10, 0, 0, 0x05, 0x20, 0x0a, 0, 0, 1,
    ];
    for _ in 0..4 {
        ntp_server.extend_from_slice(&[0xea, 0x8b, 0x1c, 0x2d, 0x3e, 0x4f, 0x50, 0x61]);
    }

    let mut dhcp = vec![1, 1, 6, 0, 0x39, 0x03, 0xf3, 0x26, 0, 0, 0, 0];
    dhcp.resize(28, 0);
    dhcp.extend_from_slice(&[0xa4, 0x83, 0xe7, 0x12, 0x34, 0x56]);
    dhcp.resize(236, 0);
    dhcp.extend_from_slice(&[0x63, 0x82, 0x53, 0x63, 53, 1, 3, 12, 6]);
    dhcp.extend_from_slice(b"iPhone");
    dhcp.extend_from_slice(&[55, 4, 1, 3, 6, 15, 255]);

    let mut rdp_udp_syn = vec![
        0xff, 0xff, 0xff, 0xff, 0x00, 0x40, 0x18, 0x01, 0x5e, 0x11, 0x07, 0x93, 0x04, 0xd0, 0x04,
        0xd0,
    ];
    rdp_udp_syn.resize(1232, 0);
    let mut ntp_monlist = vec![0x97, 0x00, 0x03, 0x2a, 0x00, 0x03, 0x00, 0x48];
    ntp_monlist.extend((0..3 * 72u32).map(|i| (i % 251) as u8));

    let mut ssh_with_kexinit = b"SSH-2.0-OpenSSH_9.6\r\n".to_vec();
    ssh_with_kexinit.extend_from_slice(&portolan_testkit::ssh_kexinit(
        "curve25519-sha256,ext-info-c,kex-strict-c-v00@openssh.com",
    ));
    let ssh_server_kexinit =
        portolan_testkit::ssh_kexinit("curve25519-sha256,kex-strict-s-v00@openssh.com");

    vec![
        s("ssh", Tcp, true, b"SSH-2.0-OpenSSH_9.6\r\n"),
        s("ssh", Tcp, true, &ssh_with_kexinit),
        s("ssh", Tcp, false, &ssh_server_kexinit),
        s("ssh", Tcp, false, b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n"),
        s("dns", Udp, true, &dns_q),
        s("dns", Tcp, true, &dns_tcp),
        s("dns", Udp, false, &dns_message(0xbeef, 0x8180, &[("example.com", 1, 1)], &a_answer, 1)),
        s("mdns", Udp, true, &dns_message(0, 0, &[("_airplay._tcp.local", 12, 1), ("_raop._tcp.local", 12, 0x8001)], &[], 0)),
        s("mdns", Udp, false, &dns_message(0, 0x8400, &[], &mdns_answer, 1)),
        s("llmnr", Udp, true, &dns_message(0x5d2a, 0, &[("wpad", 1, 1)], &[], 0)),
        s("smtp", Tcp, false, b"220 smtp.example.com ESMTP Postfix (Ubuntu)\r\n"),
        s("smtp", Tcp, true, b"EHLO laptop.example.org\r\n"),
        s("smtp", Tcp, true, b"STARTTLS\r\n"),
        s("imap", Tcp, false, b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE STARTTLS AUTH=PLAIN] Dovecot (Ubuntu) ready.\r\n"),
        s("imap", Tcp, true, b"a1 CAPABILITY\r\n"),
        s("imap", Tcp, true, b"A002 STARTTLS\r\n"),
        s("pop3", Tcp, false, b"+OK Dovecot (Ubuntu) ready.\r\n"),
        s("pop3", Tcp, true, b"CAPA\r\n"),
        s("pop3", Tcp, true, b"STLS\r\n"),
        s("ftp", Tcp, false, b"220 (vsFTPd 3.0.5)\r\n"),
        s("ftp", Tcp, false, b"220-FileZilla Server 1.8.0\r\n220 Please visit https://filezilla-project.org/\r\n"),
        s("ftp", Tcp, true, b"AUTH TLS\r\n"),
        s("mqtt", Tcp, true, b"\x10\x18\x00\x04MQTT\x04\x02\x00\x3c\x00\x0cpaho-1234567"),
        s("mqtt", Tcp, false, b"\x20\x02\x00\x00"),
        s("xmpp", Tcp, true, b"<?xml version='1.0'?><stream:stream to='jabber.example.org' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"),
        s("rtsp", Tcp, true, b"OPTIONS rtsp://10.0.0.64:554/stream1 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: LibVLC/3.0.20\r\n\r\n"),
        s("rtsp", Tcp, false, b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, TEARDOWN, PLAY\r\n\r\n"),
        s("sip", Udp, true, b"REGISTER sip:sip.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\n\r\n"),
        s("sip", Tcp, false, b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/TCP 192.168.1.5:5060\r\n\r\n"),
        s("stun", Udp, true, &stun),
        s("openvpn", Udp, true, &ovpn),
        s("openvpn", Tcp, true, &ovpn_tcp),
        s("wireguard", Udp, true, &wg_init),
        s("ike", Udp, true, &ike),
        s("ike", Udp, true, &ike_natt),
        s("socks", Tcp, true, b"\x05\x02\x00\x02"),
        s("socks", Tcp, true, b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00tor.example.net\x00"),
        s("irc", Tcp, true, b"CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n"),
        s("irc", Tcp, false, b":irc.example.net NOTICE * :*** Looking up your hostname...\r\n"),
        s("bittorrent", Tcp, true, &bt),
        s("bittorrent", Udp, true, b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"),
        s("telnet", Tcp, false, b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"),
        s("rdp", Tcp, true, &rdp),
        s("smb", Tcp, true, &smb2),
        s("smb", Tcp, true, &smb1),
        s("ntp", Udp, true, &ntp_client),
        s("ntp", Udp, false, &ntp_server),
        s("dhcp", Udp, true, &dhcp),
        s("xmpp", Tcp, true, b"<iq type='get' id='purple9f2' to='conference.example.lan'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>"),
        s("bittorrent", Udp, true, b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: 5d4c3b2a19080706050403020100ffeeddccbbaa\r\n\r\n\r\n"),
        s("rdp", Udp, true, &rdp_udp_syn),
        s("ntp", Udp, false, &ntp_monlist),
        s("ldap", Tcp, true, &ldap_bind()),
        s("ldap", Udp, true, &ldap_bind()),
    ]
}

/// Payloads of protocols outside [`COVERED`] (or generic bytes): none of the covered parsers may
/// confirm them.
fn foreign() -> Vec<(Transport, Vec<u8>)> {
    use Transport::{Tcp, Udp};
    let mut tls = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    tls.extend((0..32u8).map(|i| i.wrapping_mul(7)));
    tls.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x00]);
    let mut quic = vec![0xc3, 0x00, 0x00, 0x00, 0x01, 0x08];
    quic.extend((0..1200u32).map(|i| (i * 31 + 7) as u8));
    let nbns = {
        let mut m = vec![0x8a, 0x01, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0, 32];
        m.extend_from_slice(b"FHEPFCELEHFCEPFFFACACACACACACABL");
        m.extend_from_slice(&[0, 0, 0x20, 0, 1]);
        m
    };
    use portolan_testkit::{self as testkit, ClientHelloSpec};
    let dtls = testkit::dtls_client_hello_record(&ClientHelloSpec::minimal("webrtc.example"), None);
    let gquic_rej = testkit::gquic_server_handshake(b"REJ\0", b"Server");
    let mut bad_hello = testkit::tls_client_hello_record(&ClientHelloSpec::minimal("x.example"));
    bad_hello[76..78].copy_from_slice(&0x0086u16.to_be_bytes());
    // The binary framing on tcp/5223 in `jabber.pcap` (type byte, 16-bit total length): not
    // XMPP, and not any protocol here.
    let framed_5223 = |typ: u8, len: usize| {
        let mut m = vec![typ, 0, len as u8];
        m.extend((3..len as u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
        m
    };
    vec![
        (Tcp, tls),
        (Tcp, bad_hello),
        (Udp, quic),
        (Udp, dtls),
        (Udp, gquic_rej),
        (Tcp, framed_5223(0x25, 69)),
        (Tcp, framed_5223(0x26, 16)),
        (Tcp, framed_5223(0x30, 167)),
        (Tcp, b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n".to_vec()),
        (Tcp, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()),
        (Tcp, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        (Udp, b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n".to_vec()),
        (Udp, nbns),
        // RTP (PCMU), version 2.
        (Udp, [&[0x80u8, 0x00, 0x1c, 0x2d, 0x00, 0x01, 0x5f, 0x90, 0x12, 0x34, 0x56, 0x78][..], &[0xff; 160]].concat()),
        // SNMPv2c get-request.
        (Udp, b"\x30\x26\x02\x01\x01\x04\x06public\xa0\x19\x02\x04\x12\x34\x56\x78\x02\x01\x00\x02\x01\x00\x30\x0b\x30\x09\x06\x05\x2b\x06\x01\x02\x01\x05\x00".to_vec()),
        // S7comm COTP connection request.
        (Tcp, b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00\xc0\x01\x0a\xc1\x02\x01\x00\xc2\x02\x01\x02".to_vec()),
        // Redis.
        (Tcp, b"+OK\r\n".to_vec()),
        (Tcp, b"*1\r\n$4\r\nPING\r\n".to_vec()),
        // NetBIOS session request.
        (Tcp, b"\x81\x00\x00\x44\x20CKFDENECFDEFFCFGEFFCCACACACACACA\x00\x20EMEPEDEBEMEIEPFDFECACACACACACAAA\x00".to_vec()),
        // ESP-in-UDP and NAT keep-alive.
        (Udp, [&[0x0a, 0x1b, 0x2c, 0x3d, 0, 0, 0, 1][..], &[0x5e; 96]].concat()),
        (Udp, vec![0xff]),
        (Tcp, vec![0; 64]),
        (Udp, vec![0; 64]),
        (Tcp, b"USER anonymous\r\n".to_vec()),
        (Tcp, b"PASS secret\r\n".to_vec()),
    ]
}

fn covered() -> impl Iterator<Item = &'static (&'static str, portolan_classify::protocols::ProbeFn)>
{
    PARSERS.iter().filter(|(n, _)| COVERED.contains(n))
}

#[test]
fn every_covered_parser_is_registered() {
    for name in COVERED {
        assert!(
            PARSERS.iter().any(|(n, _)| n == name),
            "parser {name} is not in protocols::PARSERS"
        );
    }
}

#[test]
fn each_sample_is_confirmed_by_its_parser_only() {
    let mut failures = Vec::new();
    for sample in samples() {
        let c = ctx(sample.transport, sample.from_client);
        for (name, probe) in PARSERS {
            let got = probe(&c, &sample.bytes);
            let matched = got.is_match();
            if *name == sample.proto && !matched {
                failures.push(format!(
                    "{}: own parser answered {got:?} for {:?}",
                    sample.proto, sample.bytes
                ));
            }
            if *name != sample.proto && matched {
                failures.push(format!(
                    "{} sample also confirmed by {name}: {got:?}",
                    sample.proto
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn foreign_payloads_are_confirmed_by_none() {
    let mut failures = Vec::new();
    for (transport, bytes) in foreign() {
        for from_client in [true, false] {
            for (name, probe) in covered() {
                let got = probe(&ctx(transport, from_client), &bytes);
                if got.is_match() {
                    failures.push(format!(
                        "{name} confirmed foreign bytes {:?}: {got:?}",
                        &bytes[..bytes.len().min(24)]
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pseudo_random_payloads_are_confirmed_by_none() {
    // xorshift64*: deterministic, so a failure is reproducible.
    let mut next = portolan_testkit::xorshift64_star(0x9e37_79b9_7f4a_7c15);
    let mut hits = Vec::new();
    for _ in 0..3000 {
        let len = 16 + (next() % 600) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let transport = if next().is_multiple_of(2) {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        for (name, probe) in covered() {
            for from_client in [true, false] {
                let m = probe(&ctx(transport, from_client), &bytes);
                if m.is_match() {
                    hits.push(format!("{name}: {m:?} on {:?}", &bytes[..16]));
                }
            }
        }
    }
    assert!(hits.is_empty(), "{}", hits.join("\n"));
}

fn any_ctx() -> impl Strategy<Value = ProbeContext> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<u16>(),
        any::<u16>(),
        0u32..8,
    )
        .prop_map(|(tcp, from_client, cp, sp, idx)| ProbeContext {
            transport: if tcp { Transport::Tcp } else { Transport::Udp },
            sender: Side::from_client(from_client),
            client_port: cp,
            server_port: sp,
            packet_index: idx,
            dst_multicast: false,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes never make a parser panic.
    #[test]
    fn arbitrary_bytes_never_panic(c in any_ctx(), data in proptest::collection::vec(any::<u8>(), 0..1600)) {
        for (_, probe) in covered() {
            let _ = probe(&c, &data);
        }
    }

    /// Mutated and truncated real samples (which reach the deep parts of each parser) never
    /// make a parser panic.
    #[test]
    fn mutated_samples_never_panic(
        c in any_ctx(),
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let all = samples();
        let mut bytes = all[pick.index(all.len())].bytes.clone();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let end = cut.index(bytes.len() + 1);
        bytes.truncate(end);
        for (_, probe) in covered() {
            let _ = probe(&c, &bytes);
        }
    }
}
