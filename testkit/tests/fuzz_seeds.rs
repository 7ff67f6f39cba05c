//! The seed replay ([`portolan_testkit::fuzz_seeds`]) fails where it must: a seed its target
//! panics on (named), a target without seeds, a fuzz binary without a replayed body.

use std::path::{Path, PathBuf};

use portolan_testkit::fuzz_seeds::{fuzz_binaries, replay, FuzzTarget};

fn fuzz_dir(name: &str, bins: &[&str], seeds: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuzz-seeds-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest: String = bins
        .iter()
        .map(|b| format!("[[bin]]\nname = \"{b}\"\n"))
        .collect();
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    for (target, data) in seeds {
        let seeds = dir.join("seeds").join(target);
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::write(seeds.join(format!("seed{}", data.len())), data).unwrap();
    }
    dir
}

fn refuses_boom(data: &[u8]) {
    assert_ne!(data, b"boom", "boom");
}

fn message(dir: &Path, targets: &[FuzzTarget]) -> String {
    let panic = std::panic::catch_unwind(|| replay(dir, targets)).unwrap_err();
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn reads_the_bin_names_only() {
    let manifest = "[package]\nname = \"crate-fuzz\"\n\n[[bin]]\nname = \"decode\"\npath = \"x.rs\"\n\n[dependencies]\nname = \"not-a-bin\"\n\n[[bin]]\nname=\"defrag\"\n";
    assert_eq!(fuzz_binaries(manifest), ["decode", "defrag"]);
}

#[test]
fn replays_each_seed_and_names_the_one_that_fails() {
    let ok = fuzz_dir("ok", &["t"], &[("t", b"fine"), ("t", b"also fine")]);
    assert_eq!(replay(&ok, &[("t", refuses_boom)]), [("t".to_string(), 2)]);
    let bad = fuzz_dir("bad", &["t"], &[("t", b"fine"), ("t", b"boom")]);
    let text = message(&bad, &[("t", refuses_boom)]);
    assert!(
        text.contains("fuzz target t panicked on") && text.contains("seed4"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(ok);
    let _ = std::fs::remove_dir_all(bad);
}

#[test]
fn a_target_without_seeds_or_without_a_body_fails() {
    let unseeded = fuzz_dir("unseeded", &["t", "u"], &[("t", b"fine")]);
    let text = message(&unseeded, &[("t", refuses_boom), ("u", refuses_boom)]);
    assert!(text.contains("every fuzz target needs seeds"), "{text}");
    let text = message(&unseeded, &[("t", refuses_boom)]);
    assert!(text.contains("differ"), "{text}");
    let _ = std::fs::remove_dir_all(unseeded);
}
