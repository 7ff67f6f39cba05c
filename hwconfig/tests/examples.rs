//! The shipped example hardware descriptions load, validate and plan as documented.

use portolan_hwconfig::plan::rss_types;
use portolan_hwconfig::{
    plan_offloads, FlowRuleKind, HardwareDescription, Offload, Placement, PortCapabilities,
};
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn net_pcap_example() {
    let hw = HardwareDescription::load(&example("net_pcap.toml")).unwrap();
    assert_eq!(hw.ports.len(), 1);
    let port = &hw.ports[0];
    assert_eq!(
        port.vdev.as_deref(),
        Some("net_pcap0,rx_pcap=samples/egress-sample.pcap")
    );
    assert_eq!(hw.worker_lcores(), vec![1]);
    assert_eq!(hw.cores.main, 0);
    assert!(!hw.memory.hugepages);
    assert_eq!(
        hw.eal_args().join(" "),
        "-l 0-1 --main-lcore 0 --no-huge -m 256 --vdev net_pcap0,rx_pcap=samples/egress-sample.pcap --no-pci"
    );

    // What DPDK 22.11 reports for net_pcap: no RSS, and -ENOSYS from rte_flow_validate.
    let caps = PortCapabilities {
        driver_name: "net_pcap".to_string(),
        max_rx_queues: 16,
        flow_type_rss_offloads: 0,
        hash_key_size: 0,
        reta_size: 0,
        rx_offload_capa: 0,
        rte_flow_validate: FlowRuleKind::ALL
            .iter()
            .map(|&k| (k, Err((-38, "Function not implemented".to_string()).into())))
            .collect(),
    };
    let plan = plan_offloads(&hw, &[caps]).unwrap();
    println!("{plan}");
    for offload in [
        Offload::SymmetricRss,
        Offload::PrefilterManagedSubnets,
        Offload::BypassJudgedFlows,
    ] {
        assert_eq!(
            plan.decision(0, offload).unwrap().placement,
            Placement::SoftwareFallback
        );
    }
    assert!(plan.is_startable());
}

#[test]
fn x710_example() {
    let hw = HardwareDescription::load(&example("x710.toml")).unwrap();
    let port = &hw.ports[0];
    assert_eq!(port.pci.as_deref(), Some("0000:3b:00.0"));
    assert_eq!(port.rx_queues, 2);
    assert!(hw.memory.hugepages);
    assert_eq!(hw.control_cores(), vec![4, 5]);
    assert_eq!(hw.flow_table_config().capacity, 1 << 20);
    let args = hw.eal_args().join(" ");
    assert!(
        args.contains("-a 0000:3b:00.0") && !args.contains("--no-huge"),
        "{args}"
    );

    let caps = PortCapabilities {
        driver_name: "net_i40e".to_string(),
        max_rx_queues: 192,
        flow_type_rss_offloads: rss_types::WANTED,
        hash_key_size: 52,
        reta_size: 512,
        rx_offload_capa: 0,
        rte_flow_validate: FlowRuleKind::ALL.iter().map(|&k| (k, Ok(()))).collect(),
    };
    let plan = plan_offloads(&hw, &[caps]).unwrap();
    println!("{plan}");
    assert_eq!(
        plan.decision(0, Offload::SymmetricRss).unwrap().placement,
        Placement::Hardware
    );
    assert_eq!(plan.ports[0].reta_size, 512);
}

#[test]
fn a_missing_file_is_named() {
    let err = HardwareDescription::load(&example("nope.toml")).unwrap_err();
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn a_description_over_the_size_limit_is_refused_naming_the_limit() {
    use portolan_hwconfig::MAX_DESCRIPTION_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.toml");
    // Valid TOML (a comment) one byte past the limit: refused before parsing.
    let mut text = std::fs::read_to_string(example("net_pcap.toml")).unwrap();
    text.push('#');
    text.push_str(&"x".repeat(MAX_DESCRIPTION_BYTES as usize + 1 - text.len()));
    std::fs::write(&path, &text).unwrap();
    let err = HardwareDescription::load(&path).unwrap_err().to_string();
    assert!(
        err.contains(&format!("limit of {MAX_DESCRIPTION_BYTES} bytes")),
        "{err}"
    );
    // At the limit it loads.
    text.pop();
    std::fs::write(&path, &text).unwrap();
    HardwareDescription::load(&path).unwrap();
}
