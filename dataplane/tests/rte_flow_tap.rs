//! The DPDK rule table ([`DpdkRuleTable`]) against real PMDs: `net_tap` (a kernel TAP device
//! the test creates; its rte_flow goes through the kernel's TC flower, so it needs root and
//! `/dev/net/tun`) and `net_pcap` (no rte_flow at all). On the Debian 12 kernels this runs on
//! the TAP PMD validates the bypass drop rules but the kernel refuses to create them (the
//! PMD's multiq qdisc is missing); the test checks the driver's answers are carried through
//! as they are, and that the bypass then leaves the flow on the software path.
//!
//! The EAL starts once per process, so everything runs in one test function.

use portolan_dataplane::dpdk::flow_rule;
use portolan_dataplane::dpdk::flow_table::DpdkRuleTable;
use portolan_dataplane::dpdk::mempool::DEFAULT_DATA_ROOM;
use portolan_dataplane::dpdk::{Eal, EalConfig, PktMbufPool, Port, PortConfig};
use portolan_dataplane::nic_bypass::{bypass_rule, BypassedFlow, Installed, NicBypass, RuleTable};
use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;

/// The effective uid is 0 (`Uid:` line of `/proc/self/status`: real, effective, ...).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn rte_flow_rules_on_net_tap_and_net_pcap() {
    if !is_root() || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: net_tap needs root and /dev/net/tun");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("one.pcap");
    let mut w = PcapWriter::create(&cap, LinkType::Ethernet, 65535).expect("pcap");
    w.write(1_700_000_000_000_000, 60, &[0u8; 60])
        .expect("write");
    w.finish().expect("finish");
    let iface = format!("ptlft{}", std::process::id() % 100_000);
    let config = EalConfig {
        lcores: "0@(0),1@0".to_string(),
        memory_mb: 128,
        vdevs: vec![
            format!("net_tap_ft,iface={iface}"),
            format!("net_pcap_ft,rx_pcap={}", cap.display()),
        ],
        ..EalConfig::default()
    };
    let eal = Eal::init(&config).expect("EAL init");
    let pool = PktMbufPool::create(&eal, "ft_pool", 1023, 32, DEFAULT_DATA_ROOM).expect("pool");

    let v4 = bypass_rule(
        "10.20.0.5".parse().unwrap(),
        49152,
        "198.51.100.7".parse().unwrap(),
        443,
    )
    .unwrap();
    let v6 = bypass_rule(
        "2001:db8:20::5".parse().unwrap(),
        49152,
        "2001:db8:ffff::1".parse().unwrap(),
        443,
    )
    .unwrap();

    // net_pcap: no rte_flow. The answer is ENOSYS, for validate and create alike.
    let pcap_id = Port::id_by_name(&eal, "net_pcap_ft").expect("pcap port");
    let pcap = Port::configure(&eal, pcap_id, &PortConfig::default(), &pool).expect("configure");
    pcap.start().expect("start");
    let mut table = DpdkRuleTable::new(&eal, pcap_id, 16).expect("table");
    assert_eq!(table.validate(&v4).unwrap_err().code, -38);
    assert_eq!(
        flow_rule::validate(&eal, pcap_id, &v4)
            .unwrap()
            .unwrap_err()
            .code,
        -38
    );
    let refused = table.create(&v4).unwrap_err();
    assert!(
        refused.code < 0 && !refused.message.is_empty(),
        "{refused:?}"
    );
    assert!(table.is_empty());

    // net_tap: a real PMD with rte_flow.
    let tap_id = Port::id_by_name(&eal, "net_tap_ft").expect("tap port");
    // The TAP PMD wants as many TX queues as RX queues.
    let paired = PortConfig {
        tx_queues: 1,
        ..PortConfig::default()
    };
    let tap = Port::configure(&eal, tap_id, &paired, &pool).expect("configure");
    tap.start().expect("start");
    let mut table = DpdkRuleTable::new(&eal, tap_id, 16).expect("table");
    assert_eq!(
        table.validate(&v4),
        Ok(()),
        "net_tap validates the IPv4 bypass drop rule"
    );
    assert_eq!(
        table.validate(&v6),
        Ok(()),
        "net_tap validates the IPv6 bypass drop rule"
    );
    let flushed = table.flush();
    let created = table.create(&v4);
    eprintln!("net_tap: validate accepted; flush {flushed:?}; create {created:?}");
    let flow = BypassedFlow {
        client_ip: "10.20.0.6".parse().unwrap(),
        client_port: 49153,
        server_ip: "198.51.100.7".parse().unwrap(),
        server_port: 443,
    };
    match created {
        Ok(handle) => {
            // A kernel that lets the PMD install TC flower rules: the rule is real.
            assert_eq!(table.len(), 1);
            table.destroy(handle).expect("destroy");
            assert!(table.destroy(handle).is_err(), "a handle is destroyed once");
            flushed.expect("flush");
            let bypass = NicBypass::start(&iface, Box::new(table), 8).expect("start");
            assert_eq!(bypass.install(&flow), Installed::Yes);
            assert!(bypass.remove(&flow));
            bypass.shutdown().expect("flush at exit");
        }
        Err(e) => {
            // This kernel: the driver's refusal, with its own message.
            assert!(e.code < 0, "{e:?}");
            assert!(!e.message.is_empty(), "{e:?}");
            assert!(table.is_empty());
            if flushed.is_ok() {
                let bypass = NicBypass::start(&iface, Box::new(table), 8).expect("start");
                assert!(
                    matches!(bypass.install(&flow), Installed::Refused(ref r) if r.code < 0),
                    "the refusal reaches the worker, which keeps the flow in software"
                );
                assert_eq!(bypass.stats().refused, 1);
                assert_eq!(bypass.stats().rules, 0);
            }
        }
    }
    drop(tap);
    drop(pcap);
}
