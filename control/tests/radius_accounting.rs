//! RADIUS accounting with real packets: FreeRADIUS's `radclient` (Debian `freeradius-utils`,
//! installed by `scripts/setup`) sends Accounting-Requests over loopback to the listener, which
//! verifies them, answers Accounting-Response (radclient checks its authenticator) and binds the
//! framed addresses to the device whose Wi-Fi MAC is the Calling-Station-Id, for the session's
//! time range: a reused address moves to its new holder, a Stop ends the binding, a wrong secret
//! is dropped and counted.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{at, engine_in, fixture, flow, tempdir};
use portolan_control::attribution::DeviceMethod;
use portolan_control::radius::listener::{ListenerConfig, RadiusListener};
use portolan_control::roles::RoleSet;
use portolan_control::ControlPlane;

const JONAS: &str = "00008110-000C35A13A8A401E"; // Intune, Wi-Fi MAC a4:5e:60:c1:00:61
const SALES_IPAD: &str = "00008027-0019284A2E61002E"; // Intune, Wi-Fi MAC a4:5e:60:c1:00:71
const SECRET: &str = "testing123";

struct Sent {
    ok: bool,
    output: String,
}

/// Sends one request with radclient (one try, 1 s timeout); `ok` when an Accounting-Response
/// whose authenticator radclient accepted came back.
fn radclient(to: SocketAddr, secret: &str, attributes: &str) -> Sent {
    let bin = Path::new("/usr/bin/radclient");
    assert!(
        bin.is_file(),
        "radclient not found: run scripts/setup (Debian package freeradius-utils)"
    );
    let mut child = Command::new(bin)
        .args(["-x", "-r", "1", "-t", "1", &to.to_string(), "acct", secret])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("radclient");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(attributes.as_bytes())
        .expect("write attributes");
    let out = child.wait_with_output().expect("radclient output");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Sent {
        ok: out.status.success() && output.contains("Received Accounting-Response"),
        output,
    }
}

fn accounting(status: &str, session: &str, mac: &str, framed: &[&str], at_s: i64) -> String {
    let mut s = format!(
        "Acct-Status-Type = {status}\nAcct-Session-Id = \"{session}\"\n\
         Calling-Station-Id = \"{mac}\"\nNAS-Identifier = \"wlc-1\"\n\
         NAS-IP-Address = 127.0.0.1\nEvent-Timestamp = {at_s}\n"
    );
    for f in framed {
        let name = if f.contains('/') {
            "Framed-IPv6-Prefix"
        } else if f.contains(':') {
            "Framed-IPv6-Address"
        } else {
            "Framed-IP-Address"
        };
        s.push_str(&format!("{name} = {f}\n"));
    }
    s
}

/// The device and how it was found, as the alert for a port mismatch from `src` at `t` says.
fn alerted_device(
    cp: &mut ControlPlane,
    src: &str,
    t: i64,
) -> (Option<String>, Option<DeviceMethod>) {
    let mut f = flow(src, "203.0.113.80", 8088, "http", t, 5);
    f.port_mismatch = Some(true);
    let alerts = cp.ingest.ingest_flow(&f).expect("ingest");
    let a = alerts.first().expect("a port mismatch alerts");
    if !a.device.in_inventory {
        return (None, None);
    }
    (a.device.udid.clone(), a.device.attribution)
}

#[test]
fn radclient_accounting_binds_addresses_over_time() {
    let dir = tempdir();
    let mut cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    cp.operator
        .import_inventory(
            &[
                fixture("intune_mobile_apps.json"),
                fixture("intune_managed_devices.json"),
            ],
            "test",
        )
        .unwrap();
    let listener = RadiusListener::start(
        ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            secret: SECRET.as_bytes().to_vec(),
            clients: vec!["127.0.0.0/8".parse().unwrap()],
        },
        cp.operator.clone(),
        || {},
    )
    .expect("listener");
    let to = listener.local_addr();
    let counters = listener.counters();
    let t0 = at("2024-04-30T10:00:00Z") / 1_000_000;
    let owner = |cp: &ControlPlane, ip: &str, t_s: i64| {
        cp.ingest
            .device_at(ip.parse::<IpAddr>().unwrap(), t_s * 1_000_000)
            .unwrap()
            .map(|d| d.udid)
    };

    // Before any accounting: the alert calls the IPv4 and IPv6 sources unmanaged.
    assert_eq!(
        alerted_device(&mut cp, "10.10.0.161", (t0 - 60) * 1_000_000).0,
        None
    );

    // Start: IPv4, an IPv6 address (RFC 6911) and a /64 (RFC 3162), RFC 3580's MAC spelling.
    let sent = radclient(
        to,
        SECRET,
        &accounting(
            "Start",
            "81000001",
            "A4-5E-60-C1-00-61",
            &["10.10.0.161", "2001:db8:30::61", "2001:db8:30:61::/64"],
            t0,
        ),
    );
    assert!(sent.ok, "{}", sent.output);
    let (udid, method) = alerted_device(&mut cp, "10.10.0.161", (t0 + 60) * 1_000_000);
    assert_eq!(udid.as_deref(), Some(JONAS));
    assert_eq!(method, Some(DeviceMethod::RadiusAccounting));
    let (udid, _) = alerted_device(&mut cp, "2001:db8:30::61", (t0 + 70) * 1_000_000);
    assert_eq!(
        udid.as_deref(),
        Some(JONAS),
        "IPv6 device not shown as unmanaged"
    );
    assert_eq!(
        owner(&cp, "2001:db8:30:61:aa::1", t0 + 80).as_deref(),
        Some(JONAS),
        "in the /64"
    );
    assert_eq!(
        owner(&cp, "10.10.0.161", t0 - 1),
        None,
        "not before the Start"
    );

    // Interim-Update, Cisco's spelling of the MAC: the session goes on, nothing new.
    let sent = radclient(
        to,
        SECRET,
        &accounting(
            "Interim-Update",
            "81000001",
            "a45e.60c1.0061",
            &["10.10.0.161"],
            t0 + 600,
        ),
    );
    assert!(sent.ok, "{}", sent.output);
    // It no longer lists the IPv6 address and prefix: they end at the update.
    assert_eq!(
        owner(&cp, "2001:db8:30::61", t0 + 599).as_deref(),
        Some(JONAS)
    );
    assert_eq!(owner(&cp, "2001:db8:30::61", t0 + 601), None);

    // The address is reused by another device (its own session): from then on it is the iPad's,
    // before that still Jonas's.
    let sent = radclient(
        to,
        SECRET,
        &accounting(
            "Start",
            "81000002",
            "A4:5E:60:C1:00:71",
            &["10.10.0.161"],
            t0 + 1200,
        ),
    );
    assert!(sent.ok, "{}", sent.output);
    assert_eq!(owner(&cp, "10.10.0.161", t0 + 1199).as_deref(), Some(JONAS));
    assert_eq!(
        owner(&cp, "10.10.0.161", t0 + 1201).as_deref(),
        Some(SALES_IPAD)
    );
    let (udid, _) = alerted_device(&mut cp, "10.10.0.161", (t0 + 1300) * 1_000_000);
    assert_eq!(
        udid.as_deref(),
        Some(SALES_IPAD),
        "a reused address never names the old holder"
    );

    // Jonas's late Stop does not touch the iPad's binding; the iPad's Stop ends it.
    let stop = |session: &str, mac: &str, t| {
        let mut a = accounting("Stop", session, mac, &["10.10.0.161"], t);
        a.push_str("Acct-Session-Time = 1500\nAcct-Terminate-Cause = User-Request\n");
        a
    };
    assert!(
        radclient(
            to,
            SECRET,
            &stop("81000001", "A4-5E-60-C1-00-61", t0 + 1500)
        )
        .ok
    );
    assert_eq!(
        owner(&cp, "10.10.0.161", t0 + 1600).as_deref(),
        Some(SALES_IPAD)
    );
    assert!(
        radclient(
            to,
            SECRET,
            &stop("81000002", "A4-5E-60-C1-00-71", t0 + 1800)
        )
        .ok
    );
    assert_eq!(
        owner(&cp, "10.10.0.161", t0 + 1799).as_deref(),
        Some(SALES_IPAD)
    );
    assert_eq!(owner(&cp, "10.10.0.161", t0 + 1801), None);

    // A wrong shared secret: no answer (radclient gives up), nothing bound, counted.
    let sent = radclient(
        to,
        "not-the-secret",
        &accounting(
            "Start",
            "81000003",
            "A4-5E-60-C1-00-71",
            &["10.10.0.199"],
            t0 + 1900,
        ),
    );
    assert!(!sent.ok, "{}", sent.output);
    assert_eq!(owner(&cp, "10.10.0.199", t0 + 2000), None);

    let snap = counters.snapshot();
    assert_eq!(snap.accepted, 5, "{snap:?}");
    assert_eq!(snap.bad_authenticator, 1, "{snap:?}");
    assert_eq!(snap.malformed, 0, "{snap:?}");
    assert!(
        snap.bindings_opened >= 4 && snap.bindings_closed >= 4,
        "{snap:?}"
    );
    listener.stop();

    // The bindings are in the store: a new control plane over it still knows them.
    drop(cp);
    let store = portolan_control::Store::open(&dir.path().join("portolan.db")).unwrap();
    let cp = ControlPlane::new(
        store,
        RoleSet::shipped_defaults().unwrap(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(owner(&cp, "10.10.0.161", t0 + 60).as_deref(), Some(JONAS));
    assert_eq!(
        owner(&cp, "10.10.0.161", t0 + 1300).as_deref(),
        Some(SALES_IPAD)
    );
}

#[test]
fn malformed_and_foreign_datagrams_are_dropped_and_counted() {
    let dir = tempdir();
    let cp = engine_in(dir.path(), RoleSet::shipped_defaults().unwrap());
    let listener = RadiusListener::start(
        ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            secret: SECRET.as_bytes().to_vec(),
            clients: vec!["192.0.2.0/24".parse().unwrap()],
        },
        cp.operator.clone(),
        || {},
    )
    .expect("listener");
    // Loopback is not among the clients: radclient's packet is dropped unanswered.
    let sent = radclient(
        listener.local_addr(),
        SECRET,
        &accounting(
            "Start",
            "1",
            "A4-5E-60-C1-00-61",
            &["10.10.0.5"],
            1_714_471_200,
        ),
    );
    assert!(!sent.ok);
    let snap = listener.counters().snapshot();
    assert_eq!((snap.unknown_client, snap.accepted), (1, 0), "{snap:?}");
    listener.stop();

    let listener = RadiusListener::start(
        ListenerConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            secret: SECRET.as_bytes().to_vec(),
            clients: vec![],
        },
        cp.operator.clone(),
        || {},
    )
    .expect("listener");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    for junk in [
        &b""[..],
        b"\x04\x01\x00",
        &[4, 1, 0x0f, 0xff, 0, 0, 0, 0][..],
        &[1u8; 40][..],
    ] {
        socket.send_to(junk, listener.local_addr()).unwrap();
        let mut buf = [0u8; 64];
        assert!(socket.recv_from(&mut buf).is_err(), "no answer to {junk:?}");
    }
    let snap = listener.counters().snapshot();
    assert_eq!(snap.malformed, 4, "{snap:?}");
    assert!(snap.last_problem.is_some());
}
