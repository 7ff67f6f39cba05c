//! Build script for `portolan-dataplane`: compiles the XDP bypass program
//! (`xdp/bypass.c`, loaded by the AF_XDP PMD through `xdp_prog=`) with clang's BPF target into
//! `OUT_DIR/ptl_xdp_bypass.o`, which `dpdk::xdp` embeds. Must not: load or attach it.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=xdp/bypass.c");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let target = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // Debian keeps <asm/types.h> under the multiarch include directory.
    let multiarch = format!("-I/usr/include/{target}-linux-gnu");
    let object = out.join("ptl_xdp_bypass.o");
    let status = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            &multiarch,
            "-c",
            "xdp/bypass.c",
            "-o",
        ])
        .arg(&object)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} -target bpf failed ({s}) on xdp/bypass.c: libbpf-dev is needed (scripts/setup)"),
        Err(e) => panic!("cannot run {clang} ({e}): install clang (scripts/setup)"),
    }
}
