//! Build script for `portolan-dpdk-sys`.
//!
//! Owns: asking the `pkg-config` program for DPDK's C flags and link flags, compiling the C shim
//! with all of those flags, generating bindings with bindgen (allowlisted, newtype enums), and
//! telling cargo to link DPDK dynamically. Must not: download or build DPDK, or guess paths.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The DPDK release the bindings are written against.
const DPDK_MIN_VERSION: &str = "22.11";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=src/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");

    let version = pkg_config(&["--modversion", "libdpdk"]);
    let version = version.trim();
    if !version_at_least(version, DPDK_MIN_VERSION) {
        fail(&format!(
            "found DPDK {version} via pkg-config, but portolan needs DPDK {DPDK_MIN_VERSION} or newer"
        ));
    }
    let cflags = split_flags(&pkg_config(&["--cflags", "libdpdk"]));
    let libs = split_flags(&pkg_config(&["--libs", "libdpdk"]));

    // The C shim, compiled with every flag DPDK asks for (the -march flag matters: rte_memcpy.h
    // needs SSSE3 and refuses to compile without it).
    let mut shim = cc::Build::new();
    shim.file("src/shim.c")
        .include("src")
        .warnings(false)
        .opt_level(3);
    for flag in &cflags {
        shim.flag(flag);
    }
    shim.compile("portolan_dpdk_shim");

    // libbpf: the shim reaches the maps of the XDP bypass program (portolan_xdp_map_fd).
    println!("cargo:rustc-link-lib=dylib=bpf");

    // Link DPDK dynamically, in the order pkg-config lists the libraries.
    for flag in &libs {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        } else if flag.starts_with("-Wl,") {
            println!("cargo:rustc-link-arg={flag}");
        }
    }

    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR is not set")));
    let bindings = bindgen::Builder::default()
        .header("src/shim.h")
        .clang_args(&cflags)
        .clang_arg("-Isrc")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .default_enum_style(bindgen::EnumVariation::NewType {
            is_bitfield: false,
            is_global: false,
        })
        .clang_macro_fallback()
        // Its scratch files (`.macro_eval.c`, `-precompile.h.pch`) go to OUT_DIR, not the
        // crate directory.
        .clang_macro_fallback_build_dir(&out)
        .derive_default(true)
        .derive_debug(true)
        .layout_tests(true)
        .generate_comments(false)
        .allowlist_function("portolan_.*")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_.*")
        .allowlist_function("rte_mempool_.*")
        .allowlist_function("rte_mbuf_.*")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_get_.*")
        .allowlist_function("rte_socket_.*")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_dev_probe")
        .allowlist_function("rte_dev_remove")
        .allowlist_function("rte_vdev_.*")
        .allowlist_function("rte_ring_create")
        .allowlist_function("rte_ring_free")
        .allowlist_function("rte_ring_count")
        .allowlist_function("rte_ring_lookup")
        .allowlist_function("rte_flow_(validate|create|destroy|flush)")
        .allowlist_type("rte_flow_attr|rte_flow_item|rte_flow_action|rte_flow_error")
        .allowlist_type("rte_flow_item_(eth|ipv4|ipv6|tcp|udp)|rte_flow_action_(rss|mark)")
        .allowlist_type("rte_eth_conf|rte_eth_stats|rte_eth_dev_info|rte_eth_rxconf|rte_eth_txconf")
        .allowlist_type("rte_mbuf|rte_mempool|rte_ring|rte_lcore_state_t|rte_rmt_call_main_t")
        .allowlist_var("RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RTE_ETHDEV_QUEUE_STAT_CNTRS")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE|RTE_MBUF_DEFAULT_DATAROOM|RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DYNFIELD_TIMESTAMP_NAME|RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME")
        .allowlist_var("RTE_ETH_RSS_.*|RTE_ETH_RX_OFFLOAD_.*|RTE_ETH_TX_OFFLOAD_.*")
        .allowlist_var("RTE_ETH_NAME_MAX_LEN|RTE_DEV_NAME_MAX_LEN|LCORE_ID_ANY|SOCKET_ID_ANY")
        .allowlist_var("RTE_RING_F_.*|RING_F_.*")
        .no_debug("rte_flow_item_gtp_psc")
        .opaque_type("rte_arp_ipv4|rte_arp_hdr")
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen could not generate DPDK bindings: {e}")));

    bindings
        .write_to_file(out.join("bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings.rs: {e}")));
}

/// Runs `pkg-config ARGS` and returns its standard output, or stops the build with advice.
fn pkg_config(args: &[&str]) -> String {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    println!("cargo:rerun-if-env-changed=PKG_CONFIG");
    let output = match Command::new(&program).args(args).output() {
        Ok(o) => o,
        Err(e) => fail(&format!(
            "cannot run `{program}` ({e}); install pkg-config and DPDK {DPDK_MIN_VERSION} \
             (libdpdk-dev): run scripts/setup"
        )),
    };
    if !output.status.success() {
        fail(&format!(
            "`{program} {}` failed: {}DPDK {DPDK_MIN_VERSION} development files (libdpdk-dev) are \
             missing: run scripts/setup",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout).unwrap_or_else(|_| {
        fail(&format!(
            "`{program} {}` printed non-UTF-8 output",
            args.join(" ")
        ))
    })
}

/// Splits pkg-config output into flags, keeping `-include FILE` as two arguments in order.
fn split_flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Compares dotted version numbers numerically (`22.11.4` >= `22.11`).
fn version_at_least(found: &str, wanted: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(found) >= parse(wanted)
}

/// Stops the build with one clear message.
fn fail(msg: &str) -> ! {
    eprintln!("error: portolan-dpdk-sys: {msg}");
    panic!("portolan-dpdk-sys: {msg}");
}
