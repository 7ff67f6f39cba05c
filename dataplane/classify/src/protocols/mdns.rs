//! Multicast DNS identification (RFC 6762): DNS-format messages whose shape is mDNS.
//!
//! Owns: the mDNS decision on top of the shared walker in [`super::dns`] (ID 0, RD clear, and a
//! `.local` name, a reverse-lookup name, or a QU/cache-flush class bit). Must not: use ports or
//! the destination address (`dst_multicast` never makes a message mDNS; see [`super::dns`]).

use super::dns::{probe_flavor, Flavor};
use crate::probe::{Probe, ProbeContext};

/// Probes one datagram (or TCP stream start) for an mDNS message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    probe_flavor(ctx, data, Flavor::Mdns, "mdns.query", "mdns.response")
}

#[cfg(test)]
mod tests {
    use super::super::dns::tests::{a_record_ptr12, encode_name, message};
    use super::*;
    use crate::probe::Meta;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match, expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 5353, 5353);

    #[test]
    fn service_browse_query_matches() {
        let q = message(
            0,
            0,
            &[
                ("_companion-link._tcp.local", 12, 0x8001),
                ("_airplay._tcp.local", 12, 1),
            ],
            (0, 0, 0),
            &[],
        );
        assert_eq!(
            probe(&UDP, &q),
            Probe::Match {
                indicator: "mdns.query",
                meta: Meta::Name("_companion-link._tcp.local".into())
            }
        );
    }

    #[test]
    fn announcement_without_questions_matches() {
        let mut rec = encode_name("iPhone.local");
        rec.extend_from_slice(&[0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 192, 168, 1, 20]);
        let r = message(0, 0x8400, &[], (1, 0, 0), &rec);
        assert_match(probe(&UDP, &r), "mdns.response");
    }

    #[test]
    fn chromium_numbered_query_matches() {
        let q = message(
            4,
            0,
            &[
                ("_805741C9._sub._googlecast._tcp.local", 12, 1),
                ("_googlecast._tcp.local", 12, 1),
            ],
            (0, 0, 0),
            &[],
        );
        assert_match(probe(&UDP, &q), "mdns.query");
    }

    #[test]
    fn reverse_lookup_with_id_zero() {
        let q = message(
            0,
            0,
            &[("20.1.168.192.in-addr.arpa", 12, 1)],
            (0, 0, 0),
            &[],
        );
        expect_match(probe(&UDP, &q));
    }

    #[test]
    fn unicast_dns_is_not_mdns() {
        let q = message(0x1234, 0x0100, &[("www.example.com", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        let r = message(
            0x1234,
            0x8180,
            &[("printer.local", 1, 1)],
            (1, 0, 0),
            &a_record_ptr12(1),
        );
        assert_eq!(probe(&UDP, &r), Probe::NoMatch);
        // A recursive `.local` query (Active Directory) stays DNS.
        let q = message(0x1234, 0x0100, &[("dc1.corp.local", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // ID 0 without any mDNS marker stays DNS.
        let q = message(0, 0, &[("www.example.com", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        assert_eq!(
            probe(
                &UDP,
                b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\r\n"
            ),
            Probe::NoMatch
        );
    }
}
