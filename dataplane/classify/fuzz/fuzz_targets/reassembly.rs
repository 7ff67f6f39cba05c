//! Fuzzes the TCP stream reassembler: the input is a list of segments (a 2-byte sequence offset,
//! a length byte, then the bytes) placed on one direction with a small budget and pool, then the
//! same segments fed through the engine's `observe_segment` on both directions. Checks: no
//! panic, the delivered stream is exactly as long as the cursor says, every delivered byte is
//! the first copy that reached the reassembler at that offset when the direction never dropped
//! a segment, and every pool buffer comes back.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use portolan_classify::reassembly::{Reorder, ReorderPool, StreamCursor};
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

const BASE: u32 = u32::MAX - 300; // the stream wraps inside the budget

fn segments(mut data: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 {
        let off = u32::from(u16::from_be_bytes([data[0], data[1]])) % 1024;
        let len = usize::from(data[2]) % 96;
        let rest = &data[3..];
        let (seg, next) = rest.split_at(len.min(rest.len()));
        out.push((BASE.wrapping_add(off).wrapping_sub(64), seg));
        data = next;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let segs = segments(data);
    let budget = 512u32;
    let mut pool = ReorderPool::new(1, budget as usize);
    let mut cursor = StreamCursor::default();
    cursor.on_syn(BASE.wrapping_sub(1));
    let mut held = None;
    let mut stream = Vec::new();
    // First copy of each offset that reached the reassembler (offsets inside the budget).
    let mut first: Vec<Option<u8>> = vec![None; budget as usize];
    for &(seq, seg) in &segs {
        let before = pool.stats.reorder_drops;
        let mut r = Reorder {
            cursor: &mut cursor,
            held: &mut held,
        };
        let d = r.place(&mut pool, budget, seq, seg);
        let run = r.held_bytes(d.held).to_vec();
        assert_eq!(run.len() as u32, d.held.1 - d.held.0);
        stream.extend_from_slice(&run);
        stream.extend_from_slice(&seg[d.direct.0..d.direct.1]);
        if pool.stats.reorder_drops == before {
            let rel = seq.wrapping_sub(BASE) as i32;
            for (i, &b) in seg.iter().enumerate() {
                let at = rel as i64 + i as i64;
                if (0..i64::from(budget)).contains(&at) {
                    first[at as usize].get_or_insert(b);
                }
            }
        }
    }
    if pool.stats.reorder_drops == 0 && pool.stats.gaps_skipped == 0 {
        assert_eq!(stream.len() as u32, cursor.delivered());
        for (at, b) in stream.iter().enumerate().take(budget as usize) {
            if let Some(f) = first[at] {
                assert_eq!(*b, f, "offset {at} is not the first copy");
            }
        }
    }
    Reorder {
        cursor: &mut cursor,
        held: &mut held,
    }
    .release(&mut pool);
    assert_eq!(pool.available(), 1);

    // The same segments through the engine, alternating directions.
    let mut classifier = Classifier::new(
        Arc::clone(signatures()),
        ClassifyConfig {
            reorder_buffers: 1,
            ..ClassifyConfig::default()
        },
    )
    .expect("scratch");
    let mut flow = FlowClassification::default();
    flow.observe_syn(Side::Client, BASE.wrapping_sub(1));
    for (i, &(seq, seg)) in segs.iter().enumerate() {
        let ctx = ProbeContext::new(Transport::Tcp, 40000, 443).sent_by(if i % 3 != 2 {
            Side::Client
        } else {
            Side::Server
        });
        let _ = flow.observe_segment(&mut classifier, &ctx, seq, seg);
    }
    flow.release(&mut classifier);
});
