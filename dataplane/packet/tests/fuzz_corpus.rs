//! Replays every committed fuzz seed (`fuzz/seeds/<target>/`) through the same function its
//! cargo-fuzz target runs (`fuzz/src/lib.rs`), in the normal test suite on the stable toolchain:
//! an input fuzzing once found stays a regression test, and a target without seeds, or a fuzz
//! binary without a replayed body, fails here.

#[path = "../fuzz/src/lib.rs"]
mod targets;

#[path = "../../../testkit/src/fuzz_seeds.rs"]
mod fuzz_seeds;

#[test]
fn every_fuzz_target_replays_its_committed_seeds() {
    fuzz_seeds::replay_crate_seeds(env!("CARGO_MANIFEST_DIR"), targets::TARGETS);
}
