//! Link-Local Multicast Name Resolution identification (RFC 4795): DNS-format messages whose
//! shape is LLMNR.
//!
//! Owns: the LLMNR decision on top of the shared walker in [`super::dns`] (one single-label
//! A/AAAA/ANY question of class IN, LLMNR flag layout; queries carry flags 0 and no records).
//! Must not: use ports or the destination address beyond `dst_multicast`, which only refuses an
//! LLMNR response sent to a multicast group (responses are unicast; see [`super::dns`]).

use super::dns::{probe_flavor, Flavor};
use crate::probe::{Probe, ProbeContext};

/// Probes one datagram (or TCP stream start) for an LLMNR message.
pub fn probe(ctx: &ProbeContext, data: &[u8]) -> Probe {
    probe_flavor(ctx, data, Flavor::Llmnr, "llmnr.query", "llmnr.response")
}

#[cfg(test)]
mod tests {
    use super::super::dns::tests::{a_record_ptr12, message};
    use super::*;
    use crate::probe::Meta;
    use portolan_packet::Transport;
    use crate::test_support::{assert_match, expect_match};

    const UDP: ProbeContext = ProbeContext::new(Transport::Udp, 51000, 5355);

    #[test]
    fn windows_query_matches() {
        let q = message(0x8f3e, 0, &[("wpad", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(
            probe(&UDP, &q),
            Probe::Match {
                indicator: "llmnr.query",
                meta: Meta::Name("wpad".into())
            }
        );
        let q = message(0x8f3f, 0, &[("DESKTOP-3J1K", 28, 1)], (0, 0, 0), &[]);
        expect_match(probe(&UDP, &q));
    }

    #[test]
    fn response_matches() {
        let r = message(
            0x8f3e,
            0x8000,
            &[("fileserver", 1, 1)],
            (1, 0, 0),
            &a_record_ptr12(1),
        );
        assert_match(probe(&UDP, &r), "llmnr.response");
    }

    #[test]
    fn dns_shapes_are_not_llmnr() {
        // Recursive query (RD set).
        let q = message(0x8f3e, 0x0100, &[("wpad", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Multi-label name.
        let q = message(0x8f3e, 0, &[("www.example.com", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // Qname-minimising resolver asking a root server, with EDNS.
        let opt = [0u8, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        let q = message(0x8f3e, 0, &[("com", 1, 1)], (0, 0, 1), &opt);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // NS query.
        let q = message(0x8f3e, 0, &[("com", 2, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
        // mDNS.
        let q = message(0, 0, &[("host.local", 1, 1)], (0, 0, 0), &[]);
        assert_eq!(probe(&UDP, &q), Probe::NoMatch);
    }
}
