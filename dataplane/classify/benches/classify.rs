//! Classifier cost per protocol on first-flight payloads: one fresh flow per iteration, fed
//! the protocol's first client packet (the path every new flow takes), plus the cost of a
//! payload that matches nothing.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use portolan_classify::{
    CacheDir, Classifier, ClassifyConfig, CompiledSignatures, FlowClassification, ProbeContext,
};
use portolan_packet::Transport;
use portolan_testkit as testkit;

fn bench_first_flights(c: &mut Criterion) {
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &CacheDir::Disabled,
    )
    .expect("signatures load");
    let mut classifier =
        Classifier::new(Arc::new(sigs), ClassifyConfig::default()).expect("scratch");
    let mut flights = testkit::first_flights();
    flights.push((
        "no-match",
        false,
        (0..1200u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8 | 0x80)
            .collect(),
    ));
    let mut group = c.benchmark_group("first_flight");
    for (name, udp, payload) in &flights {
        let ctx = ProbeContext::new(
            if *udp { Transport::Udp } else { Transport::Tcp },
            50000,
            8443,
        );
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut flow = FlowClassification::default();
                black_box(flow.observe(&mut classifier, &ctx, black_box(payload)));
                flow
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_first_flights);
criterion_main!(benches);
