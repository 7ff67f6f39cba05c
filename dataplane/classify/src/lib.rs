//! Port-independent protocol identification.
//!
//! Owns: the signature data (Hyperscan prefilter patterns, `dataplane/signatures/*.toml`), the
//! confirming parsers (one module per protocol under [`protocols`]), the port registry, and the
//! per-flow classification state.
//! Must not: look at ports to decide a protocol (ports only feed `port_mismatch`), allocate per
//! packet on an idle path, or panic on any bytes.
//!
//! # Using it from a worker
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use portolan_classify::{
//!     AppRecord, CacheDir, ClassifyConfig, Classifier, CompiledSignatures, FlowClassification,
//!     ProbeContext,
//! };
//! use portolan_packet::Transport;
//! use portolan_model::Side;
//!
//! // Start-up (control plane): load, validate, compile or read the cached database.
//! let (sigs, report) =
//!     CompiledSignatures::load(Path::new("dataplane/signatures"), &CacheDir::Default)?;
//! println!("signature database: {:?}", report.source);
//! let sigs = Arc::new(sigs);
//! let mut ports = sigs.port_registry();
//! // ports.apply_override_file(Path::new("/etc/portolan/ports.toml"))?;
//!
//! // One per worker lcore (allocates Hyperscan scratch once).
//! let mut classifier = Classifier::new(Arc::clone(&sigs), ClassifyConfig::default())?;
//!
//! // One per flow, stored in the flow entry (64 bytes while nothing was found).
//! let mut state = FlowClassification::default();
//!
//! // For each payload-carrying packet of the flow, in arrival order:
//! let payload: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
//! // Sent by the client (relative to the flow's current roles; `.sent_by(Side::Server)` for the
//! // other direction), to a unicast address; the engine counts packets per direction itself.
//! let ctx = ProbeContext::new(Transport::Tcp, 49152, 8080);
//! if state.wants_payload(&classifier) {
//!     if let Some(decision) = state.observe(&mut classifier, &ctx, payload) {
//!         if decision.swap_roles {
//!             // flow.swap_roles(); later packets name their sender by the new roles.
//!         }
//!     }
//! }
//!
//! // When the flow record is written:
//! let app = AppRecord::from_flow(&state, &ports, Transport::Tcp, 8080).to_json_map();
//! assert_eq!(app["app_proto"], "http");
//! assert_eq!(app["portolan"]["port_mismatch"], true);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The decision procedure, its budgets and the "a wrong label is worse than unknown" trade-off
//! are described in `docs/CLASSIFICATION.md`; the signature file format in
//! `dataplane/signatures/README.md`.

/// The application protocols (owned by `portolan-model`).
pub use portolan_model::app_proto;
pub mod database;
pub mod engine;
pub mod ports;
pub mod probe;
pub mod protocols;
pub mod reassembly;
pub mod record;
pub mod signature;
#[cfg(test)]
mod test_support;
mod tls_hello;
pub mod tunnel;

pub use app_proto::AppProto;
pub use database::{CacheDir, DatabaseError, DatabaseReport, DatabaseSource};
pub use engine::{
    Classifier, ClassifyConfig, CompiledSignatures, Decision, FlowClassification, HandoffMark,
    LoadError, CONFLICT_INDICATOR, ROLES_CONFLICT_INDICATOR, STARTTLS_INDICATOR,
};
pub use portolan_model::Side;
pub use portolan_model::{ProxyKind, ProxyTarget};
pub use ports::{PortOverrideError, PortRegistry};
pub use probe::{Meta, Probe, ProbeContext};
pub use protocols::dns::{parse_response_answers, DnsAnswers, MAX_ANSWER_ADDRESSES};
pub use reassembly::{ReassemblyStats, OVERLAP_MISMATCH_INDICATOR};
pub use record::AppRecord;
pub use signature::{Signature, SignatureError, SignatureSet};

/// The signature directory of this source tree (`dataplane/signatures`), for tests and tools
/// run from the repository.
pub fn source_signature_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../signatures")
}
