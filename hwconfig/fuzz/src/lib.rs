//! The body of the hardware description's fuzz target.
//!
//! Owns: what the `hardware` target feeds to [`HardwareDescription::from_toml_str`] and the
//! property it checks ([`TARGETS`]).
//! Must not: depend on libFuzzer: `hwconfig/tests/fuzz_corpus.rs` includes this file in the normal
//! `cargo test` (stable toolchain) and replays every committed seed (`seeds/<target>/`) through it.
//!
//! Run (nightly, from `hwconfig/fuzz/`):
//! `nice -n 19 cargo +nightly fuzz run hardware corpus/hardware seeds/hardware -- -max_total_time=600`

use portolan_hwconfig::HardwareDescription;

/// A target: its binary's name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[("hardware", hardware)];

/// A hardware description (TOML, `portolan hwcheck` and the appliance's `[hardware]`). Checks that
/// parsing is a pure function of the text (the same text, the same answer).
pub fn hardware(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let first = HardwareDescription::from_toml_str(text);
        let again = HardwareDescription::from_toml_str(text);
        assert_eq!(first.is_ok(), again.is_ok(), "parsing is not deterministic");
    }
}
