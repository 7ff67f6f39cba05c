//! Portolan's fleet on NATS JetStream: each appliance publishes its store's outbox (finding
//! updates, alerts, learning counts; the schema is `portolan_control::fleet`) to one stream, with
//! message ids that make a re-send after any crash a duplicate JetStream drops.
//!
//! Owns: the `[fleet]` configuration section ([`config`]), the publisher ([`publisher`]) and a
//! local `nats-server` process for tests and the demo ([`local_server`]). Must not: judge flows or
//! write findings (the control plane does; the publisher only reads and removes outbox rows).
#![forbid(unsafe_code)]

pub mod config;
pub mod consumer;
pub mod local_server;
pub mod publisher;
mod runtime_thread;
pub mod shared_config;

pub use config::{CentralSection, FleetConfig};
pub use publisher::{Publisher, PublisherCounters};
