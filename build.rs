//! Build script of the `portolan` binary: records what the build is made of for `--version` and
//! the `portolan_build_info` metric.
//!
//! Owns: `PORTOLAN_GIT_REVISION` (from `$PORTOLAN_GIT_REVISION` when set — a release tarball sets
//! it —, else `git rev-parse` in the source tree, else `unknown`), `PORTOLAN_DPDK_VERSION` and
//! `PORTOLAN_HYPERSCAN_VERSION` (what `pkg-config` reports for `libdpdk` and `libhs`, else
//! `unknown`); `$OUT_DIR/embedded_signatures.rs`, the signature files of `dataplane/signatures`
//! built into the binary (`src/signatures.rs`, the last place the search looks). Must not: fail
//! the build when git or a `.git` folder is missing (a tarball or an exported tree has none), or
//! download anything.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PORTOLAN_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    let revision = std::env::var("PORTOLAN_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PORTOLAN_GIT_REVISION={}", revision.trim());
    for (var, module) in [
        ("PORTOLAN_DPDK_VERSION", "libdpdk"),
        ("PORTOLAN_HYPERSCAN_VERSION", "libhs"),
    ] {
        let v = output("pkg-config", &["--modversion", module]).unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env={var}={v}");
    }
    embed_signatures();
}

/// Writes `$OUT_DIR/embedded_signatures.rs`: a slice of `(file name, include_str!(file))` for
/// every `*.toml` of `dataplane/signatures`, in file-name order (the order `load_dir` uses).
fn embed_signatures() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("dataplane/signatures");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file name");
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            f.display().to_string()
        ));
    }
    out.push_str("]\n");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("embedded_signatures.rs"), out)
        .expect("write embedded_signatures.rs");
}

/// Runs `program args` and returns its trimmed stdout when it succeeds and says something.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_string())
}

/// The checked-out commit (12 hex digits), and a rebuild when HEAD or the branch moves.
fn git_revision() -> Option<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    let git = |args: &[&str]| {
        let mut all = vec!["-C", dir.as_str()];
        all.extend_from_slice(args);
        output("git", &all)
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves: HEAD itself (checkout) and the ref it points to (commit).
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watch(&dir, &head);
    }
    if let Some(name) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(r) = git(&["rev-parse", "--git-path", &name]) {
            watch(&dir, &r);
        }
        if let Some(packed) = git(&["rev-parse", "--git-path", "packed-refs"]) {
            watch(&dir, &packed);
        }
    }
    Some(rev)
}

fn watch(dir: &str, path: &str) {
    let p = Path::new(path);
    let p: PathBuf = if p.is_absolute() {
        p.to_path_buf()
    } else {
        Path::new(dir).join(p)
    };
    if p.exists() {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
