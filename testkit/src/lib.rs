//! The one place tests, benchmarks and fuzz seeds build their inputs from: Ethernet frames
//! ([`frame`]) and their IP fragments ([`fragments`]), TLS and DTLS hellos ([`tls`]), protected QUIC Initials and a Google QUIC server
//! packet ([`quic`]), an SSH `KEXINIT` and a DNS response ([`flights`]); and the replay of every
//! fuzz crate's committed seeds in the normal test suite ([`fuzz_seeds`]).
//!
//! Owns: well-formed wire bytes for inputs, on top of `portolan-synth`'s `wire`, `tls` and
//! `quic` modules (framing, checksums, record and handshake headers, Initial keys). Must not:
//! be a dependency of anything shipped (it is a dev-dependency only), decide or assert anything
//! about Portolan's behaviour, or use the parsers it feeds (QUIC keys come from `synth`, not
//! from the classifier's own derivation). It allocates freely and panics on impossible specs
//! (lengths that do not fit their fields).

pub mod flights;
pub mod fragments;
pub mod frame;
pub mod fuzz_seeds;
pub mod quic;
pub mod tls;

pub use flights::{dns_response, first_flights, ssh_kexinit, xorshift64_star};
pub use fragments::{ipv4_fragments, ipv6_fragments};
pub use frame::{ethernet, next_seq, numbered, numbered_at, vlan_tagged, Frame};
pub use quic::{gquic_server_handshake, quic_initial, quic_initial_with_keys_of};
pub use tls::{
    client_hello_message, dtls_client_hello_record, dtls_server_hello_record,
    tls_client_hello_record, tls_pq_client_hello_record, tls_server_hello_record, ClientHelloSpec,
};
