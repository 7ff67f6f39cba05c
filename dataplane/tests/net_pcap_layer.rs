//! The safe DPDK layer against the real `net_pcap` driver: EAL start-up, port and queue
//! ownership, bursts, timestamps, multi-segment frames, lcore launch and rewind by restart.
//!
//! The EAL starts once per process, so everything runs in one test function.

use portolan_dataplane::dpdk::mempool::DEFAULT_DATA_ROOM;
use portolan_dataplane::dpdk::{
    lcore, DpdkError, Eal, EalConfig, MbufBurst, PktMbufPool, Port, PortConfig, TimestampField,
};
use portolan_packet::capture::PcapWriter;
use portolan_packet::LinkType;

const BASE_TS_US: u64 = 1_700_000_000_123_456;

/// Frame `i`: `60 + i` bytes whose first byte is `i`; frame 50 is 3000 bytes (two mbufs).
fn frame(i: usize) -> Vec<u8> {
    let len = if i == 50 { 3000 } else { 60 + i };
    let mut f = vec![(i % 251) as u8; len];
    f[0] = i as u8;
    f
}

#[test]
fn net_pcap_through_the_safe_layer() {
    const N: usize = 100;
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = dir.path().join("layer.pcap");
    let mut w = PcapWriter::create(&cap, LinkType::Ethernet, 65535).expect("create pcap");
    for i in 0..N {
        let f = frame(i);
        w.write(BASE_TS_US + i as u64 * 1000, f.len() as u32, &f)
            .expect("write");
    }
    w.finish().expect("finish");

    let config = EalConfig {
        lcores: "0@(0),1@0".to_string(),
        memory_mb: 64,
        vdevs: vec![format!("net_pcap_layer,rx_pcap={}", cap.display())],
        ..EalConfig::default()
    };
    let eal = Eal::init(&config).expect("EAL init");
    assert!(matches!(
        Eal::init(&config),
        Err(DpdkError::EalAlreadyInitialised)
    ));
    assert_eq!(eal.port_count(), 1);

    let port_id = Port::id_by_name(&eal, "net_pcap_layer").expect("port by name");
    assert!(Port::id_by_name(&eal, "net_pcap_absent").is_err());
    let info = Port::info_of(&eal, port_id).expect("info");
    assert_eq!(info.driver, "net_pcap");
    assert_eq!(info.name, "net_pcap_layer");

    let pool = PktMbufPool::create(&eal, "layer_pool", 1023, 32, DEFAULT_DATA_ROOM).expect("pool");
    let port = Port::configure(&eal, port_id, &PortConfig::default(), &pool).expect("configure");
    port.start().expect("start");
    let ts_field = TimestampField::lookup(&eal);
    assert!(
        ts_field.is_some(),
        "net_pcap registers the timestamp dynfield"
    );

    let rxq = port.rx_queue(0).expect("queue 0");
    assert!(
        port.rx_queue(0).is_err(),
        "a queue has one handle at a time"
    );
    assert!(port.rx_queue(1).is_err(), "only one queue is configured");
    assert!(matches!(port.stop(), Err(DpdkError::PortBusy(_))));

    let workers = lcore::worker_lcores(&eal);
    assert_eq!(workers, vec![1]);
    let job = lcore::launch(&eal, workers[0], move || {
        let mut rxq = rxq;
        let mut burst = MbufBurst::new(ts_field);
        let mut seen = Vec::new();
        let mut max_burst = 0;
        let mut empty = 0;
        while empty < 4 {
            let n = rxq.rx_burst(&mut burst);
            if n == 0 {
                empty += 1;
                continue;
            }
            max_burst = max_burst.max(n);
            for m in burst.iter() {
                seen.push((
                    m.pkt_len(),
                    m.data().len(),
                    m.nb_segs(),
                    m.timestamp_us(),
                    m.data().first().copied(),
                ));
            }
        }
        (lcore::current_lcore(), max_burst, seen)
    })
    .expect("launch");
    let (ran_on, max_burst, seen) = job.wait().expect("job result");
    assert_eq!(ran_on, Some(1));
    assert!(max_burst <= portolan_dataplane::dpdk::BURST_SIZE);
    assert_eq!(seen.len(), N);
    for (i, &(pkt_len, data_len, segs, ts, first)) in seen.iter().enumerate() {
        let f = frame(i);
        assert_eq!(pkt_len as usize, f.len(), "frame {i} length");
        assert_eq!(
            ts,
            Some(BASE_TS_US + i as u64 * 1000),
            "frame {i} timestamp"
        );
        assert_eq!(first, Some(i as u8), "frame {i} first byte");
        if i == 50 {
            assert!(segs > 1, "3000-byte frame spans mbufs");
            assert!(data_len < f.len());
        } else {
            assert_eq!((segs, data_len), (1, f.len()));
        }
    }
    let stats = port.stats().expect("stats");
    assert_eq!(stats.ipackets, N as u64);
    assert_eq!(stats.q_ipackets, vec![N as u64]);
    assert_eq!(stats.rx_nombuf, 0);
    assert_eq!(
        pool.available(),
        pool.capacity(),
        "every mbuf went back to the pool"
    );

    // The queue handle went away with the job: the port can stop, and restarting rewinds.
    port.stop().expect("stop");
    port.start().expect("restart");
    let mut rxq = port.rx_queue(0).expect("queue 0 again");
    let mut burst = MbufBurst::new(ts_field);
    let mut got = 0;
    while got == 0 {
        got = rxq.rx_burst(&mut burst);
    }
    assert_eq!(
        burst.get(0).map(|m| m.timestamp_us()),
        Some(Some(BASE_TS_US))
    );
    drop(burst);
    drop(rxq);

    // A panic on a worker lcore comes back as an error, and the lcore is reusable.
    let job = lcore::launch(&eal, 1, || -> u32 { panic!("worker boom") }).expect("launch");
    match job.wait() {
        Err(DpdkError::WorkerPanicked { message, .. }) => assert!(message.contains("worker boom")),
        other => panic!("expected a panic error, got {other:?}"),
    }
    let job = lcore::launch(&eal, 1, || 7u32).expect("relaunch");
    assert_eq!(job.wait().expect("result"), 7);
}
