//! The body of the appliance configuration's fuzz target (`portolan run --config`,
//! `portolan check-config`, `portolan replay --config`).
//!
//! Owns: what the `appliance_config` target feeds to `ApplianceConfig::parse` (the binary's
//! `src/config.rs`, compiled here by path) and the properties it checks ([`TARGETS`]).
//! Must not: depend on libFuzzer: `tests/fuzz_corpus.rs` includes this file in the normal
//! `cargo test` (stable toolchain) and replays every committed seed (`seeds/<target>/`) through it.
//!
//! Run (nightly, from `fuzz/`):
//! `nice -n 19 cargo +nightly fuzz run appliance_config corpus/appliance_config seeds/appliance_config -- -max_total_time=600`

use std::path::Path;

#[allow(dead_code, unused_imports, missing_docs)]
#[path = "../../src/config.rs"]
mod config;

use config::{ApplianceConfig, Overrides};

/// A target: its binary's name and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[("appliance_config", appliance_config)];

/// An appliance configuration file's text, as read from a file that does not exist on this host
/// (so nothing it names is found). Checks that parsing never panics, that a refusal names the
/// file, that an accepted configuration has its paths made absolute, and that parsing is a pure
/// function of the text.
pub fn appliance_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("/nonexistent/portolan-fuzz/portolan.toml");
    let first = ApplianceConfig::parse(text, origin, &Overrides::default());
    match &first {
        Ok(cfg) => {
            assert!(
                cfg.data_dir.is_absolute(),
                "data_dir stays relative: {}",
                cfg.data_dir.display()
            );
            assert!(
                cfg.store.path.is_absolute(),
                "the store path stays relative"
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("portolan.toml"),
                "a refusal must name the file: {message}"
            );
        }
    }
    let again = ApplianceConfig::parse(text, origin, &Overrides::default());
    assert_eq!(first.is_ok(), again.is_ok(), "parsing is not deterministic");
}
