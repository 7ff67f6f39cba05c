//! Property tests: no parser and no engine path panics on arbitrary or mutated bytes.

mod common;

use std::sync::Arc;

use portolan_classify::protocols::PARSERS;
use portolan_classify::{
    CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification, Probe,
    ProbeContext,
};
use portolan_packet::Transport;
use portolan_testkit as testkit;
use proptest::prelude::*;

/// The context of bytes on a UDP (`udp`) or TCP flow, from the client or the server, starting at
/// the direction's packet `index`.
fn ctx(udp: bool, from_client: bool, index: u32) -> ProbeContext {
    let transport = if udp { Transport::Udp } else { Transport::Tcp };
    common::ctx(transport, from_client).at_packet(index)
}

/// Valid first flights with a byte flipped and the tail cut: reaches deep parser states.
fn mutated_flight() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let flights = testkit::first_flights();
    (
        0..flights.len(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(i, at, x, cut)| {
            let (_, udp, mut bytes) = flights[i].clone();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] ^= x;
                let cut = cut.index(bytes.len() + 1);
                bytes.truncate(cut.max(1));
            }
            (udp, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_parser_survives_arbitrary_bytes(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        udp in any::<bool>(),
        from_client in any::<bool>(),
        index in 0u32..16,
    ) {
        for (name, probe) in PARSERS {
            let r = probe(&ctx(udp, from_client, index), &data);
            if let Probe::Match { indicator, .. } | Probe::MatchFrom { indicator, .. } = r {
                prop_assert!(!indicator.is_empty(), "{name}");
            }
        }
    }

    #[test]
    fn every_parser_survives_mutated_first_flights((udp, data) in mutated_flight()) {
        for (_, probe) in PARSERS {
            let _ = probe(&ctx(udp, true, 0), &data);
            let _ = probe(&ctx(udp, false, 1), &data);
        }
    }
}

fn classifier() -> Classifier {
    static SIGS: std::sync::OnceLock<Arc<CompiledSignatures>> = std::sync::OnceLock::new();
    let sigs = SIGS.get_or_init(|| {
        let (s, _) = CompiledSignatures::load(
            &portolan_classify::source_signature_dir(),
            &CacheDir::Disabled,
        )
        .unwrap();
        Arc::new(s)
    });
    Classifier::new(Arc::clone(sigs), ClassifyConfig::default()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn engine_survives_arbitrary_flows(
        packets in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(any::<u8>(), 0..1600)), 0..24),
        udp in any::<bool>(),
        prefix in 0usize..5,
    ) {
        let mut c = classifier();
        let mut flow = FlowClassification::default();
        let flights = testkit::first_flights();
        let mut decisions = 0;
        for (i, (from_client, mut bytes)) in packets.into_iter().enumerate() {
            // Some flows start with a real first flight, split at a random point.
            if i == 0 && prefix < flights.len() {
                let real = &flights[prefix].2;
                let cut = bytes.len().min(real.len());
                bytes = real[..cut.max(1).min(real.len())].to_vec();
            }
            if flow.observe(&mut c, &ctx(udp, from_client, 0), &bytes).is_some() {
                decisions += 1;
            }
        }
        prop_assert!(decisions <= 1, "a flow is decided at most once");
    }
}
