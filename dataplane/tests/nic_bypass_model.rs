//! The NIC bypass against the software model of a NIC's rule table: the sample capture goes
//! through the model NIC (which drops what its rules match) and then a classifying worker that
//! installs drop rules for judged TCP flows. Checks install, the cap, removal at flow end and
//! that the port is left without rules, and that the NIC keeps packets from the worker without
//! changing what the flows are.

mod common;

use common::{classifier_parts, observer};
use portolan_dataplane::nic_bypass::model::ModelNic;
use portolan_dataplane::nic_bypass::NicBypass;
use portolan_dataplane::worker::StopCause;
use portolan_dataplane::{ClassificationReport, Worker, WorkerConfig, WorkerCounters};
use portolan_packet::capture::CaptureReader;
use portolan_packet::{parse, LinkType, Transport};
use std::path::Path;
use std::sync::Arc;

struct Run {
    counters: WorkerCounters,
    report: ClassificationReport,
    frames: u64,
    flows: usize,
}

/// Replays the sample through `nic` (if any) and a worker with the NIC bypass on it.
fn run(nic: Option<(&ModelNic, usize)>) -> (Run, Option<Arc<NicBypass>>) {
    let (sigs, ports) = classifier_parts();
    let mut w = Worker::new(
        WorkerConfig::new(LinkType::Ethernet),
        observer(&sigs, &ports, None),
    )
    .expect("worker");
    let bypass = nic.map(|(m, max_rules)| {
        Arc::new(NicBypass::start("model0", Box::new(m.clone()), max_rules).expect("flush"))
    });
    if let Some(b) = &bypass {
        w = w.with_nic_bypass(Arc::clone(b));
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/egress-sample.pcap");
    let mut reader = CaptureReader::open(&path).expect("sample capture");
    let mut frames = 0u64;
    let mut sink = Vec::new();
    while let Some(rec) = reader.next_record().expect("record") {
        frames += 1;
        if let (Some((m, _)), Ok(p)) = (nic, parse(LinkType::Ethernet, &rec.data)) {
            if p.transport == Transport::Tcp
                && m.drops_tcp(p.src_ip, p.src_port, p.dst_ip, p.dst_port)
            {
                continue;
            }
        }
        w.process_frame(&rec.data, rec.orig_len, Some(rec.ts_us));
        w.after_burst(&mut sink);
    }
    let out = w.finish(&mut sink, StopCause::EndOfInput);
    (
        Run {
            counters: out.counters,
            report: out.observer.report(),
            frames,
            flows: sink.len(),
        },
        bypass,
    )
}

#[test]
fn judged_flows_are_dropped_by_the_model_nic_and_their_rules_removed_at_flow_end() {
    let (plain, _) = run(None);
    assert_eq!(plain.counters.packets, plain.frames);
    assert_eq!(plain.counters.nic_bypass_flows, 0);

    let nic = ModelNic::new(65_536);
    let (by, bypass) = run(Some((&nic, 4096)));
    let bypass = bypass.expect("bypass");
    let st = bypass.stats();
    assert!(by.counters.nic_bypass_flows > 50, "{:?}", by.counters);
    assert_eq!(st.flows_installed, by.counters.nic_bypass_flows);
    assert_eq!(
        (by.counters.nic_bypass_full, by.counters.nic_bypass_refused),
        (0, 0)
    );
    // Everything the NIC dropped never reached the worker; the rest did.
    assert!(nic.dropped() > 0);
    assert_eq!(by.counters.packets + nic.dropped(), by.frames);
    // Every bypassed flow ended (FIN/RST seen before the rule, idle timeout, or the end of the
    // run), and its two rules were destroyed with it: the port is left with none.
    assert_eq!(st.flows_removed, st.flows_installed);
    assert_eq!(nic.rule_count(), 0);
    assert_eq!(
        nic.created_destroyed(),
        (2 * st.flows_installed, 2 * st.flows_installed)
    );
    assert!(st.rules_peak >= 2 && st.rules_peak <= 4096);
    // Judged flows keep their protocol: the same flows per protocol as without the NIC.
    assert_eq!(by.report.app_protos, plain.report.app_protos);
    assert_eq!(by.flows, plain.flows);
    eprintln!(
        "sample: {} frames, {} reach the worker with the NIC bypass ({} dropped by the model NIC, {:.1}%), {} flows bypassed, peak {} rules",
        by.frames,
        by.counters.packets,
        nic.dropped(),
        100.0 * nic.dropped() as f64 / by.frames as f64,
        st.flows_installed,
        st.rules_peak
    );
}

#[test]
fn the_rule_cap_leaves_the_rest_on_the_software_path_and_counts_it() {
    let nic = ModelNic::new(65_536);
    let (by, bypass) = run(Some((&nic, 6)));
    let st = bypass.expect("bypass").stats();
    assert!(st.rules_peak <= 6, "{st:?}");
    assert!(by.counters.nic_bypass_full > 0, "{:?}", by.counters);
    assert_eq!(st.full, by.counters.nic_bypass_full);
    assert_eq!(nic.rule_count(), 0);

    // A NIC whose own table is smaller than the cap: its refusals are counted as refused.
    let small = ModelNic::new(2);
    let (by, bypass) = run(Some((&small, 4096)));
    let st = bypass.expect("bypass").stats();
    assert!(by.counters.nic_bypass_refused > 0, "{:?}", by.counters);
    assert_eq!(st.refused, by.counters.nic_bypass_refused);
    assert!(st.rules_peak <= 2);
    assert_eq!(small.rule_count(), 0);
}
