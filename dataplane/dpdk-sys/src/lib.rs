//! Raw bindings to the system DPDK (22.11 or newer), generated at build time by bindgen from the
//! headers `pkg-config --cflags libdpdk` points at, plus `portolan_*` wrappers (C shim) for the
//! static-inline fast-path functions and macros bindgen cannot bind.
//!
//! Owns: the FFI surface only. Must not: contain logic; the safe layer lives in
//! `portolan-dataplane`'s `dpdk` module, which is the only user of this crate.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]
#![allow(rustdoc::all)]
#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
