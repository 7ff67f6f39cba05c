//! Community ID v1 flow hashing (Corelight community-id-spec).
//!
//! Owns: the v1 hash of a TCP/UDP/SCTP-style 5-tuple. Must not: map ICMP types to ports or
//! handle port-less protocols — Portolan's flows are TCP or UDP only.

use std::net::IpAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Community ID v1 of a flow: `"1:"` + base64(SHA1(seed . ip_a . ip_b . proto . 0 . port_a . port_b)),
/// all fields big-endian, with the endpoints ordered so the numerically smaller `ip:port` comes
/// first (both directions of a flow give the same ID). `seed` is 0 unless the deployment sets one.
pub fn community_id_v1(
    seed: u16,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> String {
    let digest = community_id_v1_digest(seed, src_ip, dst_ip, proto, src_port, dst_port);
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

/// The 20-byte SHA1 digest behind [`community_id_v1`], before base64 encoding.
pub fn community_id_v1_digest(
    seed: u16,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    proto: u8,
    src_port: u16,
    dst_port: u16,
) -> [u8; 20] {
    let (a, b) = if (src_ip, src_port) <= (dst_ip, dst_port) {
        ((src_ip, src_port), (dst_ip, dst_port))
    } else {
        ((dst_ip, dst_port), (src_ip, src_port))
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    update_ip(&mut h, a.0);
    update_ip(&mut h, b.0);
    h.update([proto, 0]);
    h.update(a.1.to_be_bytes());
    h.update(b.1.to_be_bytes());
    h.finalize().into()
}

fn update_ip(h: &mut Sha1, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => h.update(v4.octets()),
        IpAddr::V6(v6) => h.update(v6.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors from the community-id-spec repository's `baseline/` files (default seed 0,
    /// seed 1, and the un-encoded digests), for the entries that carry ports.
    /// Columns: proto, saddr, daddr, sport, dport, seed-0 ID, seed-1 ID.
    const BASELINE: &[(u8, &str, &str, u16, u16, &str, &str)] = &[
        (
            6,
            "128.232.110.120",
            "66.35.250.204",
            34855,
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            6,
            "66.35.250.204",
            "128.232.110.120",
            80,
            34855,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            "8.8.8.8",
            54585,
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            17,
            "8.8.8.8",
            "192.168.1.52",
            53,
            54585,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            6,
            "2607:f8b0:400c:c03::1a",
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            25,
            63943,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            132,
            "192.168.170.8",
            "192.168.170.56",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        (
            132,
            "192.168.170.56",
            "192.168.170.8",
            7,
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
        // ICMP / ICMPv6 rows with their type/code already mapped to ports by the spec's tooling.
        (
            1,
            "192.168.0.89",
            "192.168.0.1",
            8,
            0,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "192.168.0.1",
            "192.168.0.89",
            0,
            8,
            "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            "1:03g6IloqVBdcZlPyX8r0hgoE7kA=",
        ),
        (
            1,
            "10.0.0.1",
            "10.0.0.2",
            11,
            0,
            "1:YHxtAirCG//0OzkcVAukqKQN9xM=",
            "1:XjUibYHaafLQ3pxQeiMI8g25q20=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            136,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            136,
            135,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            135,
            136,
            "1:zavyT/cezQr1fmImYCwYnMXbgck=",
            "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:501:0:1001::2",
            128,
            129,
            "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=",
            "1:GfZxjAkDk2MkegpBYHV6tadtFXQ=",
        ),
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "ff02::2",
            133,
            134,
            "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
            "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8=",
        ),
    ];

    #[test]
    fn matches_spec_baseline_seed_0_and_1() {
        for &(proto, s, d, sp, dp, id0, id1) in BASELINE {
            let (s, d) = (s.parse().unwrap(), d.parse().unwrap());
            assert_eq!(
                community_id_v1(0, s, d, proto, sp, dp),
                id0,
                "{s}:{sp} -> {d}:{dp} seed 0"
            );
            assert_eq!(
                community_id_v1(1, s, d, proto, sp, dp),
                id1,
                "{s}:{sp} -> {d}:{dp} seed 1"
            );
        }
    }

    #[test]
    fn matches_spec_baseline_unencoded_digest() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let digest = community_id_v1_digest(
            0,
            "128.232.110.120".parse().unwrap(),
            "66.35.250.204".parse().unwrap(),
            6,
            34855,
            80,
        );
        assert_eq!(hex(digest), "2d053da9994af81e45dca0e67afea6e4f3226eb8");
        let digest = community_id_v1_digest(
            0,
            "8.8.8.8".parse().unwrap(),
            "192.168.1.52".parse().unwrap(),
            17,
            53,
            54585,
        );
        assert_eq!(hex(digest), "77f14fe445b7c22635bc29dd87095e451287a304");
    }

    #[test]
    fn equal_addresses_are_ordered_by_port() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            community_id_v1(0, ip, ip, 6, 1234, 80),
            community_id_v1(0, ip, ip, 6, 80, 1234)
        );
        assert_ne!(
            community_id_v1(0, ip, ip, 6, 1234, 80),
            community_id_v1(0, ip, ip, 17, 1234, 80)
        );
    }
}
