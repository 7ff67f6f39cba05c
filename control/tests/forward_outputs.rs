//! The alert outputs against the real receivers (issue 14): Debian's `redis-server` (EVE into a
//! list and onto a channel, as Suricata's `redis` output) and Debian's `rsyslogd` (RFC 5424 over
//! UDP and over TCP with TLS), each started by the test on free loopback ports with its own
//! configuration, then read back. Also: with the receiver down, events queue up to the limit,
//! the rest are counted as dropped, and once it is up the queued ones arrive. Skips, saying so,
//! when a server binary is absent (`scripts/setup` installs them).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portolan_control::output::forward::{resp_command, ForwardTarget, Forwarder, SyslogTransport};
use serde_json::{json, Value};

/// A server process the test started; killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn installed(bin: &str) -> Option<PathBuf> {
    ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

fn wait_for_tcp(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "server on {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn redis(bin: &Path, dir: &Path, port: u16) -> Server {
    let child = Command::new(bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "no", "--daemonize", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    wait_for_tcp(port);
    Server(child)
}

/// One RESP command and its reply's lines (enough for LRANGE of short JSON values).
fn redis_query(port: u16, parts: &[&[u8]]) -> Vec<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect redis");
    s.write_all(&resp_command(parts)).expect("write");
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).expect("reply");
    let n: usize = head.trim_start_matches('*').trim().parse().unwrap_or(0);
    let mut out = Vec::new();
    for _ in 0..n {
        let (mut len, mut val) = (String::new(), String::new());
        r.read_line(&mut len).expect("bulk length");
        r.read_line(&mut val).expect("bulk value");
        out.push(val.trim_end().to_string());
    }
    out
}

fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"timestamp": "2024-03-12T09:03:15.247432+0000", "event_type": "alert",
                        "flow_id": i, "alert": {"signature_id": 1509002, "severity": 3}})
        })
        .collect()
}

#[test]
fn redis_list_and_channel_receive_every_event() {
    let Some(bin) = installed("redis-server") else {
        eprintln!("SKIPPED: redis-server is not installed (scripts/setup installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _server = redis(&bin, dir.path(), port);
    let address = format!("127.0.0.1:{port}");

    // Pub/sub: a subscriber first, then the events.
    let mut sub = TcpStream::connect(("127.0.0.1", port)).expect("subscriber");
    sub.write_all(&resp_command(&[b"SUBSCRIBE", b"portolan-eve"]))
        .expect("subscribe");
    sub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sub = BufReader::new(sub);
    let mut confirm = String::new();
    for _ in 0..6 {
        sub.read_line(&mut confirm).expect("subscribe confirmation");
    }
    assert!(confirm.contains("subscribe"), "{confirm}");

    let list = Forwarder::start(
        ForwardTarget::Redis {
            address: address.clone(),
            key: "portolan-eve".into(),
            publish: false,
        },
        64,
    )
    .expect("list output");
    let channel = Forwarder::start(
        ForwardTarget::Redis {
            address,
            key: "portolan-eve".into(),
            publish: true,
        },
        64,
    )
    .expect("channel output");
    let evs = events(5);
    for e in &evs {
        assert!(list.send(e, 4, 0));
        assert!(channel.send(e, 4, 0));
    }
    let lc = list.close(Duration::from_secs(10));
    let cc = channel.close(Duration::from_secs(10));
    assert_eq!((lc.sent, lc.dropped), (5, 0), "{lc:?}");
    assert_eq!((cc.sent, cc.dropped), (5, 0), "{cc:?}");

    let stored = redis_query(port, &[b"LRANGE", b"portolan-eve", b"0", b"-1"]);
    let parsed: Vec<Value> = stored
        .iter()
        .map(|s| serde_json::from_str(s).expect("each list item is one JSON event"))
        .collect();
    assert_eq!(parsed, evs, "the list holds the events in order");

    // Each published message: *3, $7 message, $12 channel, $n payload.
    for e in &evs {
        let mut lines = Vec::new();
        for _ in 0..7 {
            let mut l = String::new();
            sub.read_line(&mut l).expect("published message");
            lines.push(l.trim_end().to_string());
        }
        assert_eq!(lines[2], "message");
        assert_eq!(lines[4], "portolan-eve");
        let got: Value = serde_json::from_str(&lines[6]).expect("JSON payload");
        assert_eq!(&got, e);
    }
}

#[test]
fn events_queue_while_redis_is_down_then_arrive_and_overflow_is_counted() {
    let Some(bin) = installed("redis-server") else {
        eprintln!("SKIPPED: redis-server is not installed (scripts/setup installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = Forwarder::start(
        ForwardTarget::Redis {
            address: format!("127.0.0.1:{port}"),
            key: "q".into(),
            publish: false,
        },
        8,
    )
    .expect("output");
    let evs = events(30);
    let t = Instant::now();
    let accepted = evs.iter().filter(|e| out.send(e, 4, 0)).count();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "sending never waits"
    );
    // The queue holds 8; the sender thread may hold one more in hand.
    assert!((8..=9).contains(&accepted), "{accepted} accepted");
    assert_eq!(out.counts().dropped, (30 - accepted) as u64);
    let _server = redis(&bin, dir.path(), port);
    let c = out.close(Duration::from_secs(15));
    assert_eq!(c.sent, accepted as u64, "{c:?}");
    assert!(c.errors >= 1, "the refused connections are counted");
    assert_eq!(
        redis_query(port, &[b"LRANGE", b"q", b"0", b"-1"]).len(),
        accepted
    );
}

#[test]
fn rsyslog_receives_rfc5424_over_udp_and_tls() {
    let Some(bin) = installed("rsyslogd") else {
        eprintln!("SKIPPED: rsyslogd is not installed (scripts/setup installs it)");
        return;
    };
    if !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").is_file()
        && !Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").is_file()
    {
        eprintln!("SKIPPED: rsyslog's TLS driver (rsyslog-gnutls) is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let (udp, tcp) = (free_port(), free_port());
    let out_log = d.join("out.log");
    let conf = format!(
        r#"global(workDirectory="{d}" defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{d}/cert.pem" defaultNetstreamDriverCertFile="{d}/cert.pem"
       defaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="imudp")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imudp" address="127.0.0.1" port="{udp}")
input(type="imtcp" address="127.0.0.1" port="{tcp}")
template(name="t" type="string" string="%app-name% %msgid% %syslogseverity% %msg%\n")
action(type="omfile" file="{log}" template="t")
"#,
        d = d.display(),
        log = out_log.display()
    );
    std::fs::write(d.join("rsyslog.conf"), conf).unwrap();
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(d.join("rsyslog.conf"))
        .arg("-i")
        .arg(d.join("rsyslog.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rsyslogd");
    let _server = Server(child);
    wait_for_tcp(tcp);

    let udp_out = Forwarder::start(
        ForwardTarget::Syslog {
            address: format!("127.0.0.1:{udp}"),
            transport: SyslogTransport::Udp,
            facility: 13,
            hostname: "sensor-1".into(),
            app_name: "portolan".into(),
        },
        64,
    )
    .expect("udp output");
    let tls_out = Forwarder::start(
        ForwardTarget::Syslog {
            address: format!("127.0.0.1:{tcp}"),
            transport: SyslogTransport::Tls {
                ca_file: d.join("cert.pem"),
                server_name: "localhost".into(),
            },
            facility: 13,
            hostname: "sensor-1".into(),
            app_name: "portolan".into(),
        },
        64,
    )
    .expect("tls output");
    // A sender trusting another CA: the handshake with rsyslog fails, nothing is sent.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    std::fs::write(d.join("other.pem"), other.cert.pem()).unwrap();
    let untrusting = Forwarder::start(
        ForwardTarget::Syslog {
            address: format!("127.0.0.1:{tcp}"),
            transport: SyslogTransport::Tls {
                ca_file: d.join("other.pem"),
                server_name: "localhost".into(),
            },
            facility: 13,
            hostname: "sensor-1".into(),
            app_name: "portolan".into(),
        },
        4,
    )
    .expect("output");
    assert!(untrusting.send(&json!({"event_type": "alert", "via": "untrusted"}), 3, 0));
    let evs = events(4);
    for (i, e) in evs.iter().enumerate() {
        let mut u = e.clone();
        u["via"] = json!("udp");
        assert!(udp_out.send(&u, 3, 1_710_234_195_247_432 + i as i64));
        let mut t = e.clone();
        t["via"] = json!("tls");
        assert!(tls_out.send(&t, 3, 1_710_234_195_247_432 + i as i64));
    }
    let uc = udp_out.close(Duration::from_secs(10));
    let tc = tls_out.close(Duration::from_secs(10));
    assert_eq!(uc.sent, 4, "{uc:?}");
    assert_eq!((tc.sent, tc.dropped), (4, 0), "{tc:?}");
    let xc = untrusting.close(Duration::from_millis(500));
    assert_eq!((xc.sent, xc.dropped), (0, 1), "{xc:?}");
    assert!(xc.errors >= 1, "the refused handshake is counted");

    // rsyslog writes asynchronously: wait for all eight lines.
    let t = Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&out_log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= 8 || t.elapsed() > Duration::from_secs(15) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 8, "rsyslog wrote: {lines:?}");
    let mut via = Vec::new();
    for l in &lines {
        // rsyslog parsed the RFC 5424 header: APP-NAME, MSGID and severity are its fields.
        let rest = l
            .strip_prefix("portolan alert 3 ")
            .unwrap_or_else(|| panic!("header not parsed as RFC 5424: {l}"));
        let ev: Value = serde_json::from_str(rest.trim()).expect("MSG is one JSON event");
        assert_eq!(ev["event_type"], "alert");
        via.push(ev["via"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(via.iter().filter(|v| *v == "udp").count(), 4);
    assert_eq!(via.iter().filter(|v| *v == "tls").count(), 4);
}
