//! The types that cross the boundary between the dataplane (workers, hand-off) and the control
//! plane (ingest, store, outputs), and later the fleet's messages: one definition each.
//!
//! Owns: [`AppProto`], [`Transport`], [`Side`], [`NameSource`] and the shared indicator names
//! ([`indicator`]), the explicit proxy a flow went through ([`ProxyTarget`]), the observations the control plane is fed ([`FlowObservation`],
//! [`DnsAnswer`]) with their EVE input form, the one EVE header writer ([`eve`]) and the one time
//! module ([`time`]). Every type is
//! serde-serialisable.
//! Must not: depend on another Portolan crate, do I/O, or judge anything.
#![forbid(unsafe_code)]

pub mod app_proto;
pub mod eve;
pub mod names;
pub mod observation;
pub mod proxy;
pub mod side;
pub mod time;
pub mod transport;

pub use app_proto::AppProto;
pub use eve::EveHeader;
pub use names::{indicator, NameSource};
pub use observation::{DnsAnswer, EveInput, FlowObservation, FlowPhase, ObservationError};
pub use proxy::{ProxyKind, ProxyTarget};
pub use side::Side;
pub use transport::Transport;
