//! The central's store: messages from two appliances that saw the same device (a device roaming
//! between sites) merge into one finding with one score; applying a message again changes
//! nothing; the appliances are listed with what was applied.

mod common;

use common::{engine_in, mail_beacon, tempdir};
use portolan_control::fleet::{self, Origin};
use portolan_control::roles::RoleSet;
use portolan_control::store::{Applied, OutboxReader};
use portolan_control::Store;

fn beacon(i: i64) -> portolan_control::FlowObservation {
    mail_beacon(i, 3)
}

/// The messages an appliance named `appliance` sends after judging `sessions`.
fn messages(appliance: &str, sessions: std::ops::Range<i64>) -> (Vec<Vec<u8>>, u64) {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    cp.core().lock().unwrap().enable_outbox(1000);
    for i in sessions {
        cp.ingest.ingest_flow(&beacon(i)).unwrap();
    }
    cp.ingest.flush().unwrap();
    let total = cp.ingest.findings()[0].sessions;
    let origin = Origin {
        site: format!("site-{appliance}"),
        appliance: appliance.into(),
        version: "0.1.0".into(),
    };
    let rows = OutboxReader::open(&dir.path().join("portolan.db"))
        .unwrap()
        .batch(0, 1000)
        .unwrap();
    let out = rows
        .iter()
        .map(|r| fleet::encode(&origin, r, 0).unwrap())
        .collect();
    (out, total)
}

#[test]
fn a_roaming_device_keeps_one_finding_and_messages_apply_once() {
    // Sessions 0..4 at one site, 4..7 at the other: the device roamed.
    let (a, sessions_a) = messages("edge-1", 0..4);
    let (b, sessions_b) = messages("edge-2", 4..7);
    let dir = tempdir();
    let mut central = Store::open(&dir.path().join("central.db")).unwrap();
    let apply_all = |central: &mut Store, msgs: &[Vec<u8>]| -> Vec<Applied> {
        msgs.iter()
            .map(|m| {
                central
                    .apply_fleet_message(&fleet::decode(m).unwrap(), 1)
                    .unwrap()
            })
            .collect()
    };
    assert!(apply_all(&mut central, &a)
        .iter()
        .all(|x| *x == Applied::New));
    assert!(apply_all(&mut central, &b)
        .iter()
        .all(|x| *x == Applied::New));
    let findings = central.findings().unwrap();
    assert_eq!(findings.len(), 1, "one record for the roaming device");
    let f = &findings[0];
    assert_eq!(f.sessions, sessions_a + sessions_b);
    assert_eq!(f.session_starts.len(), 7);
    assert!(
        (f.intervals.mean().unwrap() - 900.0).abs() < 1e-6,
        "{:?}",
        f.intervals
    );
    let alerts = central.alerts().unwrap().len();
    assert!(alerts > 0);

    // Everything again (a redelivery after a crash): nothing changes.
    assert!(apply_all(&mut central, &a)
        .iter()
        .chain(apply_all(&mut central, &b).iter())
        .all(|x| *x == Applied::Duplicate));
    assert_eq!(central.findings().unwrap(), findings);
    assert_eq!(central.alerts().unwrap().len(), alerts);

    let appliances = central.fleet_appliances().unwrap();
    assert_eq!(appliances.len(), 2);
    assert_eq!(appliances[0].appliance, "edge-1");
    assert_eq!(appliances[0].last_seq as usize, a.len());
    assert_eq!(appliances[0].messages as usize, a.len());
    assert_eq!(appliances[0].duplicates as usize, a.len());
    assert_eq!((appliances[0].gaps, appliances[1].gaps), (0, 0));
}
