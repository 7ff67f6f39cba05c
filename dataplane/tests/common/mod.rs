//! What the dataplane's worker tests share: Ethernet + IPv4 + TCP/UDP frames (numbered TCP
//! segments on `portolan_testkit::Frame`), the classifier
//! built from the repository's real signatures, and feeding frames to a `Worker`.
//!
//! It builds inputs only; it must not assert anything about the worker or the classifier.
//! Each test binary uses a subset, hence the allow.
#![allow(dead_code)]

use portolan_classify::{Classifier, ClassifyConfig, CompiledSignatures, PortRegistry};
use portolan_dataplane::{ClassifyObserver, FlowEventSender, Worker};
use std::sync::Arc;

#[allow(unused_imports)] // each test binary uses a subset
pub use portolan_testkit::{numbered as frame, numbered_at as tcp_frame_at};

/// The repository's signatures, compiled (no cache), and their port registry.
pub fn classifier_parts() -> (Arc<CompiledSignatures>, Arc<PortRegistry>) {
    let (sigs, _) = CompiledSignatures::load(
        &portolan_classify::source_signature_dir(),
        &portolan_classify::CacheDir::Disabled,
    )
    .expect("the repository's signatures load");
    let ports = Arc::new(sigs.port_registry());
    (Arc::new(sigs), ports)
}

/// A classifying observer for worker 0, handing flow events to `events` if given.
pub fn observer(
    sigs: &Arc<CompiledSignatures>,
    ports: &Arc<PortRegistry>,
    events: Option<FlowEventSender>,
) -> ClassifyObserver {
    let classifier = Classifier::new(Arc::clone(sigs), ClassifyConfig::default()).expect("scratch");
    ClassifyObserver::new(0, classifier, Arc::clone(ports), events)
}

/// Feeds `frames` to `w`, each one µs after the last (`t` is the running capture time).
pub fn feed(w: &mut Worker<ClassifyObserver>, frames: &[Vec<u8>], t: &mut u64) {
    for f in frames {
        *t += 1;
        w.process_frame(f, f.len() as u32, Some(*t));
    }
}
