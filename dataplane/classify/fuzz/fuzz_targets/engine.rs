//! Fuzzes the whole engine: the input is split into packets (a length byte each, the top bit
//! of which gives the direction) fed to one flow over TCP and one over UDP.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portolan_classify::{
    CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification, ProbeContext,
    Side,
};
use portolan_packet::Transport;

fn signatures() -> &'static Arc<CompiledSignatures> {
    static SIGS: OnceLock<Arc<CompiledSignatures>> = OnceLock::new();
    SIGS.get_or_init(|| {
        let (s, _) = CompiledSignatures::load(
            &portolan_classify::source_signature_dir(),
            &CacheDir::Disabled,
        )
        .expect("signatures load");
        Arc::new(s)
    })
}

fuzz_target!(|data: &[u8]| {
    let mut classifier =
        Classifier::new(Arc::clone(signatures()), ClassifyConfig::default()).expect("scratch");
    for transport in [Transport::Tcp, Transport::Udp] {
        let mut flow = FlowClassification::default();
        let mut rest = data;
        while let Some((&head, tail)) = rest.split_first() {
            let len = usize::from(head & 0x7f) * 16;
            let (pkt, next) = tail.split_at(len.min(tail.len()));
            rest = next;
            let ctx = ProbeContext::new(transport, 40000, 443).sent_by(if head & 0x80 == 0 {
                Side::Client
            } else {
                Side::Server
            });
            let _ = flow.observe(&mut classifier, &ctx, pkt);
        }
    }
});
