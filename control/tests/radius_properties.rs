//! Property tests of the RADIUS accounting path: the packet parser on arbitrary and on signed
//! packets, and the binding rules on random sessions (an address is never held by two bindings
//! at once; a stopped session binds nothing after its Stop).

use std::net::IpAddr;

use portolan_control::radius::packet::{self, build_request, StatusType};
use portolan_control::radius::AccountingEvent;
use portolan_control::Store;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any bytes: no panic; an accepted packet's length field fits what arrived.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = packet::request_authenticator_ok(&bytes, b"s");
        if packet::parse(&bytes).is_ok() {
            let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            prop_assert!(declared >= packet::HEADER_LEN && declared <= bytes.len());
        }
    }

    /// A signed request verifies with its secret only, parses back to what was put in, and any
    /// changed octet inside its length fails the check.
    #[test]
    fn signed_requests_round_trip(
        id in any::<u8>(),
        status in 1u32..=3,
        session in "[A-Za-z0-9-]{1,40}",
        mac in proptest::array::uniform6(any::<u8>()),
        v4 in any::<[u8; 4]>(),
        v6 in any::<[u8; 16]>(),
        prefix_len in 1u8..=128,
        flip in any::<proptest::sample::Index>(),
    ) {
        let mac_text = mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join("-");
        let prefix_octets = usize::from(prefix_len).div_ceil(8);
        let mut prefix = vec![0u8, prefix_len];
        prefix.extend_from_slice(&v6[..prefix_octets]);
        let v4_usable = u32::from_be_bytes(v4) < 0xffff_fffe;
        let bytes = build_request(
            id,
            &[
                (40, &status.to_be_bytes()),
                (44, session.as_bytes()),
                (31, mac_text.as_bytes()),
                (8, &v4),
                (168, &v6),
                (97, &prefix),
            ],
            b"secret",
        );
        prop_assert!(packet::request_authenticator_ok(&bytes, b"secret"));
        prop_assert!(!packet::request_authenticator_ok(&bytes, b"secreT"));
        let req = packet::parse(&bytes).unwrap();
        prop_assert_eq!(req.identifier, id);
        prop_assert_eq!(req.session_id.as_deref(), Some(session.as_str()));
        prop_assert_eq!(req.framed.len(), if v4_usable { 3 } else { 2 });
        let ev = AccountingEvent::from_request(&req, IpAddr::from([192, 0, 2, 1]), 0);
        let want_mac = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
        prop_assert_eq!(ev.hwaddr.as_deref(), Some(want_mac.as_str()));
        let mut forged = bytes.clone();
        let i = flip.index(forged.len());
        forged[i] ^= 0x01;
        prop_assert!(!packet::request_authenticator_ok(&forged, b"secret"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random Start / Interim-Update / Stop records of a few sessions (each its own MAC) over a
    /// few addresses, in time order: no address is held by two bindings over any instant, and no
    /// binding of a stopped session lasts past its Stop.
    #[test]
    fn bindings_never_overlap(
        steps in proptest::collection::vec((0usize..4, 0u8..3, proptest::collection::vec(0usize..3, 0..3), 1i64..500), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("p.db")).unwrap();
        let addresses = ["10.0.0.1", "10.0.0.2", "2001:db8::/64"];
        let mut t = 1_000_000i64;
        for (session, kind, addrs, dt) in steps {
            t += dt * 1_000_000;
            let status = [StatusType::Start, StatusType::InterimUpdate, StatusType::Stop][usize::from(kind)];
            let framed = addrs
                .iter()
                .map(|i| {
                    let a = addresses[*i];
                    match a.split_once('/') {
                        Some((net, len)) => packet::Framed { address: net.parse().unwrap(), prefix_len: Some(len.parse().unwrap()) },
                        None => packet::Framed { address: a.parse().unwrap(), prefix_len: None },
                    }
                })
                .collect();
            let ev = AccountingEvent {
                status,
                nas: "nas".into(),
                session_id: Some(format!("s{session}")),
                hwaddr: Some(format!("a4:5e:60:00:00:0{session}")),
                calling_station_id: None,
                framed,
                at_us: t,
                session_time_s: Some(10),
            };
            store.apply_accounting(&ev).unwrap();
            if status == StatusType::Stop {
                let mac = format!("a4:5e:60:00:00:0{session}");
                let open = store
                    .radius_bindings(None)
                    .unwrap()
                    .into_iter()
                    .filter(|b| b.hwaddr == mac && b.valid_until_us.is_none_or(|u| u > t))
                    .count();
                prop_assert_eq!(open, 0, "session s{} still bound after its Stop", session);
            }
        }
        let all = store.radius_bindings(None).unwrap();
        for a in &all {
            if let Some(u) = a.valid_until_us {
                prop_assert!(u >= a.valid_from_us);
            }
        }
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                if (a.address, a.prefix_len) != (b.address, b.prefix_len) {
                    continue;
                }
                let a_end = a.valid_until_us.unwrap_or(i64::MAX);
                let b_end = b.valid_until_us.unwrap_or(i64::MAX);
                let overlap = a.valid_from_us < b_end && b.valid_from_us < a_end;
                prop_assert!(!overlap, "{a:?} overlaps {b:?}");
            }
        }
    }
}
