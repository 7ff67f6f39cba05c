//! Flow cursors: turn a conversation script into timestamped frames, a window at a time.
//!
//! Owns: TCP mechanics (handshake with options, MSS segmentation, slow-start windows, delayed
//! and piggybacked ACKs, timestamps option, FIN/RST teardown) and the UDP/QUIC equivalents,
//! seen from a capture point next to the devices. A cursor holds at most one window of pending
//! events (tens of descriptors, no payload bytes), so memory is bounded by the number of
//! concurrently open flows, not by their sizes. Must not: look at other flows — the only shared
//! input is [`SizeSteer`], read when a window is planned.

use std::collections::VecDeque;

use crate::quic;
use crate::rng::{BytePool, SynthRng, POOL_LEN};
use crate::script::{
    Close, FlowScript, PayloadReader, TcpScript, UdpScript, UdpStep, QUIC_MAX_PACKET,
};
use crate::wire::{self, Endpoints, IpFields};
use portolan_packet::tcp_flags::{ACK, FIN, PSH, RST, SYN};

/// Steers the average frame size toward a target by choosing how many full segments a
/// receiver acknowledges at once (1: every segment, as some stacks do; 2: RFC 1122 delayed
/// ACK; 3: stretch ACKs, as receive offload produces).
#[derive(Debug, Clone, Default)]
pub struct SizeSteer {
    /// Target average frame size in bytes; `None` always uses delayed ACKs (every 2).
    pub target: Option<f64>,
    /// Frames written so far.
    pub packets: u64,
    /// Frame bytes written so far.
    pub bytes: u64,
}

impl SizeSteer {
    /// Records a written frame.
    pub fn record(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }

    /// Full segments per ACK for the next window.
    pub fn ack_stride(&self) -> u32 {
        let Some(t) = self.target else { return 2 };
        if self.packets < 64 {
            return 2;
        }
        let avg = self.bytes as f64 / self.packets as f64;
        if avg > t {
            1
        } else if avg < t - 40.0 {
            3
        } else {
            2
        }
    }
}

/// Per-flow path characteristics.
#[derive(Debug, Clone, Copy)]
struct Path {
    rtt_us: u64,
    /// Serialisation time per byte, server to client (ns).
    down_ns_per_byte: u64,
    /// Serialisation time per byte, client to server (ns).
    up_ns_per_byte: u64,
    /// How long the device takes to ACK received data (µs).
    client_ack_us: u64,
}

#[derive(Debug)]
enum EvKind {
    Tcp {
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
        syn: bool,
    },
    Datagram(Vec<u8>),
    QuicShort {
        len: u32,
    },
}

#[derive(Debug)]
struct Ev {
    ts: u64,
    from_client: bool,
    kind: EvKind,
}

/// Data being sent in windows (a TCP turn or a QUIC data step).
#[derive(Debug)]
struct Sending {
    from_client: bool,
    left: usize,
    next_start: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum TcpPhase {
    Handshake,
    Turns,
    Teardown,
    Done,
}

#[derive(Debug)]
struct TcpState {
    script: TcpScript,
    phase: TcpPhase,
    /// Next sequence number to send: [client, server].
    snd: [u32; 2],
    ts_base: [u32; 2],
    /// Max payload per segment: [client sends, server sends].
    seg: [usize; 2],
    window: [u16; 2],
    timestamps: bool,
    cwnd: [u32; 2],
    reader: PayloadReader,
    sending: Option<Sending>,
    prev_from_client: Option<bool>,
    /// Time of the last data segment of the previous turn.
    last_data: u64,
}

#[derive(Debug)]
struct UdpState {
    script: UdpScript,
    prev_from_client: Option<bool>,
    last_data: u64,
    sending: Option<Sending>,
    cwnd: [u32; 2],
    spin: bool,
}

#[derive(Debug)]
enum State {
    Tcp(Box<TcpState>),
    Udp(Box<UdpState>),
}

/// One flow being turned into frames.
pub struct FlowCursor {
    ep: Endpoints,
    rng: SynthRng,
    path: Path,
    queue: VecDeque<Ev>,
    /// Time of the latest event generated so far.
    clock: u64,
    start_us: u64,
    server_ttl: u8,
    ident: [u16; 2],
    pool_pos: usize,
    state: State,
}

const IDX_C: usize = 0;
const IDX_S: usize = 1;

fn idx(from_client: bool) -> usize {
    if from_client {
        IDX_C
    } else {
        IDX_S
    }
}

/// Initial congestion window (segments) and its cap.
const CWND_INIT: u32 = 10;
const CWND_MAX: u32 = 64;
/// Delayed-ACK timer.
const DELACK_US: u64 = 40_000;

impl FlowCursor {
    /// A cursor for `script` between `ep`, starting at `start_us`; `seed` fixes its path and
    /// TCP parameters.
    pub fn new(ep: Endpoints, script: FlowScript, start_us: u64, seed: u64) -> FlowCursor {
        let mut rng = SynthRng::new(seed, 0x666c_6f77);
        let path = Path {
            rtt_us: rng.log_range(6_000, 90_000),
            down_ns_per_byte: 8_000 / rng.log_range(20, 400),
            up_ns_per_byte: 8_000 / rng.log_range(10, 100),
            client_ack_us: rng.range(30, 400),
        };
        let pool_pos = rng.below(POOL_LEN as u64) as usize;
        let state = match script {
            FlowScript::Tcp(script) => {
                let timestamps = rng.chance(0.8);
                let mss_c = if ep.is_v6() { 1440 } else { 1460 };
                let mss_s = if rng.chance(0.1) { mss_c - 60 } else { mss_c };
                let opt = if timestamps { 12 } else { 0 };
                State::Tcp(Box::new(TcpState {
                    script,
                    phase: TcpPhase::Handshake,
                    snd: [rng.u32(), rng.u32()],
                    ts_base: [rng.u32() >> 1, rng.u32() >> 1],
                    // The client sends up to the server's MSS and vice versa.
                    seg: [mss_s - opt, mss_c - opt],
                    window: [2048, [501, 502, 509, 1026][rng.below(4) as usize]],
                    timestamps,
                    cwnd: [CWND_INIT, CWND_INIT],
                    reader: PayloadReader::default(),
                    sending: None,
                    prev_from_client: None,
                    last_data: start_us,
                }))
            }
            FlowScript::Udp(script) => State::Udp(Box::new(UdpState {
                script,
                prev_from_client: None,
                last_data: start_us,
                sending: None,
                cwnd: [CWND_INIT, CWND_INIT],
                spin: false,
            })),
        };
        FlowCursor {
            ep,
            path,
            queue: VecDeque::new(),
            clock: start_us,
            start_us,
            server_ttl: rng.range(44, 58) as u8,
            ident: [rng.u16(), rng.u16()],
            pool_pos,
            state,
            rng,
        }
    }

    /// Timestamp of the next frame, planning the next window if needed; `None` when the flow
    /// has nothing more to send.
    pub fn next_ts(&mut self, steer: &SizeSteer) -> Option<u64> {
        let mut guard = 0;
        while self.queue.is_empty() {
            if !self.plan(steer) {
                return None;
            }
            guard += 1;
            if guard > 1_000_000 {
                return None;
            }
        }
        self.queue.front().map(|e| e.ts)
    }

    /// Writes the next frame into `buf` and returns its timestamp. Call after
    /// [`FlowCursor::next_ts`] returned `Some`.
    pub fn emit(&mut self, pool: &BytePool, buf: &mut Vec<u8>) -> Option<u64> {
        let ev = self.queue.pop_front()?;
        let i = idx(ev.from_client);
        let ipf = IpFields {
            from_client: ev.from_client,
            ident: self.ident[i],
            ttl: if ev.from_client { 64 } else { self.server_ttl },
        };
        self.ident[i] = self.ident[i].wrapping_add(1);
        match ev.kind {
            EvKind::Tcp {
                flags,
                seq,
                ack,
                len,
                syn,
            } => {
                let State::Tcp(t) = &mut self.state else {
                    return None;
                };
                let opts = tcp_options(
                    t,
                    &self.path,
                    self.start_us,
                    ev.ts,
                    ev.from_client,
                    syn,
                    flags & ACK != 0,
                );
                let win = if syn { 65535 } else { t.window[i] };
                wire::begin_tcp(buf, &self.ep, ipf, seq, ack, flags, win, &opts);
                if len > 0 {
                    t.reader.read(len as usize, pool, buf);
                }
            }
            EvKind::Datagram(payload) => {
                wire::begin_udp(buf, &self.ep, ipf);
                buf.extend_from_slice(&payload);
            }
            EvKind::QuicShort { len } => {
                let State::Udp(u) = &mut self.state else {
                    return None;
                };
                wire::begin_udp(buf, &self.ep, ipf);
                let (ccid, scid) = u.script.quic_cids.unwrap_or(([0; 8], [0; 8]));
                let dcid = if ev.from_client { scid } else { ccid };
                quic::push_short_header(buf, &dcid, u.spin, self.rng.u32() as u8);
                let body = (len as usize)
                    .saturating_sub(1 + dcid.len())
                    .max(quic::SHORT_MIN_BODY);
                pool.read(self.pool_pos, body, buf);
                self.pool_pos = (self.pool_pos + body) % POOL_LEN;
            }
        }
        wire::finish(buf);
        Some(ev.ts)
    }

    /// Plans the next step; false when the script is exhausted.
    fn plan(&mut self, steer: &SizeSteer) -> bool {
        match &mut self.state {
            State::Tcp(_) => self.plan_tcp(steer),
            State::Udp(_) => self.plan_udp(steer),
        }
    }

    fn push(&mut self, ts: u64, from_client: bool, kind: EvKind) {
        self.queue.push_back(Ev {
            ts,
            from_client,
            kind,
        });
    }

    /// Sorts the freshly planned events by time (stable) and advances the clock.
    fn settle(&mut self) {
        self.queue.make_contiguous().sort_by_key(|e| e.ts);
        if let Some(last) = self.queue.back() {
            self.clock = self.clock.max(last.ts);
        }
    }

    fn plan_tcp(&mut self, steer: &SizeSteer) -> bool {
        let State::Tcp(t) = &mut self.state else {
            return false;
        };
        match t.phase {
            TcpPhase::Handshake => {
                let t0 = self.start_us;
                let (c, s) = (t.snd[IDX_C], t.snd[IDX_S]);
                t.snd = [c.wrapping_add(1), s.wrapping_add(1)];
                t.phase = TcpPhase::Turns;
                t.prev_from_client = Some(true);
                let rtt = self.path.rtt_us;
                let ack_at = t0 + rtt + self.path.client_ack_us;
                t.last_data = ack_at;
                self.push(
                    t0,
                    true,
                    EvKind::Tcp {
                        flags: SYN,
                        seq: c,
                        ack: 0,
                        len: 0,
                        syn: true,
                    },
                );
                self.push(
                    t0 + rtt,
                    false,
                    EvKind::Tcp {
                        flags: SYN | ACK,
                        seq: s,
                        ack: c.wrapping_add(1),
                        len: 0,
                        syn: true,
                    },
                );
                self.push(
                    ack_at,
                    true,
                    EvKind::Tcp {
                        flags: ACK,
                        seq: c.wrapping_add(1),
                        ack: s.wrapping_add(1),
                        len: 0,
                        syn: false,
                    },
                );
                self.settle();
                true
            }
            TcpPhase::Turns => {
                if t.sending.is_none() {
                    let Some(turn) = t.script.turns.pop_front() else {
                        t.phase = TcpPhase::Teardown;
                        return self.plan_tcp(steer);
                    };
                    let answer_rtt = if !turn.from_client && t.prev_from_client == Some(true) {
                        self.path.rtt_us
                    } else {
                        0
                    };
                    let start = (t.last_data + answer_rtt + turn.think_us).max(self.clock + 1);
                    if start > t.last_data + 1_000_000 {
                        // Idle restart (RFC 5681 §4.1).
                        t.cwnd[idx(turn.from_client)] = CWND_INIT;
                    }
                    t.reader = PayloadReader::new(turn.chunks, self.pool_pos);
                    self.pool_pos = (self.pool_pos + 7919) % POOL_LEN;
                    let left = t.reader.remaining();
                    t.prev_from_client = Some(turn.from_client);
                    if left == 0 {
                        return true;
                    }
                    t.sending = Some(Sending {
                        from_client: turn.from_client,
                        left,
                        next_start: start,
                    });
                }
                self.tcp_window(steer);
                true
            }
            TcpPhase::Teardown => {
                t.phase = TcpPhase::Done;
                let close = t.script.close;
                let (c, s) = (t.snd[IDX_C], t.snd[IDX_S]);
                let rtt = self.path.rtt_us;
                let base = t.last_data.max(self.clock);
                match close {
                    Close::Open => return false,
                    Close::ClientFin => {
                        let t1 = base + 200 + self.rng.below(3000);
                        t.snd[IDX_C] = c.wrapping_add(1);
                        t.snd[IDX_S] = s.wrapping_add(1);
                        self.push(
                            t1,
                            true,
                            EvKind::Tcp {
                                flags: FIN | ACK,
                                seq: c,
                                ack: s,
                                len: 0,
                                syn: false,
                            },
                        );
                        self.push(
                            t1 + rtt,
                            false,
                            EvKind::Tcp {
                                flags: FIN | ACK,
                                seq: s,
                                ack: c.wrapping_add(1),
                                len: 0,
                                syn: false,
                            },
                        );
                        let t3 = t1 + rtt + self.path.client_ack_us;
                        self.push(
                            t3,
                            true,
                            EvKind::Tcp {
                                flags: ACK,
                                seq: c.wrapping_add(1),
                                ack: s.wrapping_add(1),
                                len: 0,
                                syn: false,
                            },
                        );
                    }
                    Close::ServerFin => {
                        let t1 = base + 5_000_000 + self.rng.below(55_000_000);
                        self.push(
                            t1,
                            false,
                            EvKind::Tcp {
                                flags: FIN | ACK,
                                seq: s,
                                ack: c,
                                len: 0,
                                syn: false,
                            },
                        );
                        let t2 = t1 + self.path.client_ack_us;
                        self.push(
                            t2,
                            true,
                            EvKind::Tcp {
                                flags: FIN | ACK,
                                seq: c,
                                ack: s.wrapping_add(1),
                                len: 0,
                                syn: false,
                            },
                        );
                        self.push(
                            t2 + rtt,
                            false,
                            EvKind::Tcp {
                                flags: ACK,
                                seq: s.wrapping_add(1),
                                ack: c.wrapping_add(1),
                                len: 0,
                                syn: false,
                            },
                        );
                    }
                    Close::Reset => {
                        let t1 = base + 1000 + self.rng.below(2_000_000);
                        self.push(
                            t1,
                            true,
                            EvKind::Tcp {
                                flags: RST | ACK,
                                seq: c,
                                ack: s,
                                len: 0,
                                syn: false,
                            },
                        );
                    }
                }
                self.settle();
                true
            }
            TcpPhase::Done => false,
        }
    }

    /// Plans one congestion window of the current TCP turn, with the receiver's ACKs.
    fn tcp_window(&mut self, steer: &SizeSteer) {
        let State::Tcp(t) = &mut self.state else {
            return;
        };
        let Some(sending) = t.sending.as_mut() else {
            return;
        };
        let fc = sending.from_client;
        let (si, ri) = (idx(fc), idx(!fc));
        let seg = t.seg[si].max(1);
        let ns_per_byte = if fc {
            self.path.up_ns_per_byte
        } else {
            self.path.down_ns_per_byte
        };
        let hdr = wire::ETH_LEN + self.ep.ip_header_len() + 20 + if t.timestamps { 12 } else { 0 };
        let stride = steer.ack_stride();
        let ack_delay = if fc {
            self.path.rtt_us
        } else {
            self.path.client_ack_us
        };
        let mut ts = sending.next_start;
        let mut first_ack: Option<u64> = None;
        let mut unacked = 0u32;
        let mut last_seg_ts = ts;
        let mut events = Vec::new();
        for _ in 0..t.cwnd[si] {
            if sending.left == 0 {
                break;
            }
            let len = sending.left.min(seg);
            sending.left -= len;
            let flags = if sending.left == 0 { ACK | PSH } else { ACK };
            events.push(Ev {
                ts,
                from_client: fc,
                kind: EvKind::Tcp {
                    flags,
                    seq: t.snd[si],
                    ack: t.snd[ri],
                    len: len as u32,
                    syn: false,
                },
            });
            t.snd[si] = t.snd[si].wrapping_add(len as u32);
            last_seg_ts = ts;
            unacked += 1;
            let full = len == seg;
            if full && unacked >= stride && sending.left > 0 {
                let at = ts + ack_delay;
                events.push(Ev {
                    ts: at,
                    from_client: !fc,
                    kind: EvKind::Tcp {
                        flags: ACK,
                        seq: t.snd[ri],
                        ack: t.snd[si],
                        len: 0,
                        syn: false,
                    },
                });
                first_ack.get_or_insert(at);
                unacked = 0;
            }
            ts += 1 + ((len + hdr) as u64 * ns_per_byte) / 1000;
        }
        t.cwnd[si] = (t.cwnd[si] * 2).min(CWND_MAX);
        let turn_done = sending.left == 0;
        if turn_done {
            t.last_data = last_seg_ts;
            // The receiver's final ACK, unless its own next turn soon carries it.
            let next_by_receiver_soon = t.script.turns.front().is_some_and(|n| {
                n.from_client != fc
                    && n.think_us + if n.from_client { 0 } else { self.path.rtt_us } < DELACK_US
            });
            if unacked > 0 && !next_by_receiver_soon {
                let delay = if fc {
                    self.path.rtt_us + self.rng.below(DELACK_US / 4)
                } else {
                    let cap = t
                        .script
                        .turns
                        .front()
                        .map_or(DELACK_US, |n| (n.think_us / 2).max(1));
                    self.path.client_ack_us.min(cap)
                };
                events.push(Ev {
                    ts: last_seg_ts + delay,
                    from_client: !fc,
                    kind: EvKind::Tcp {
                        flags: ACK,
                        seq: t.snd[ri],
                        ack: t.snd[si],
                        len: 0,
                        syn: false,
                    },
                });
            }
            t.sending = None;
        } else {
            // The next window leaves when the first ACK of this one reaches the sender.
            let ack_back = first_ack.map_or(ts, |a| if fc { a } else { a + self.path.rtt_us });
            sending.next_start = ack_back.max(ts);
        }
        self.queue.extend(events);
        self.settle();
        if let State::Tcp(t) = &mut self.state {
            if let Some(s) = t.sending.as_mut() {
                s.next_start = s.next_start.max(self.clock + 1);
            }
        }
    }

    fn plan_udp(&mut self, steer: &SizeSteer) -> bool {
        let State::Udp(u) = &mut self.state else {
            return false;
        };
        if u.sending.is_none() {
            let Some(step) = u.script.steps.pop_front() else {
                return false;
            };
            match step {
                UdpStep::Datagram {
                    from_client,
                    think_us,
                    payload,
                } => {
                    let rtt = if !from_client && u.prev_from_client == Some(true) {
                        self.path.rtt_us
                    } else {
                        0
                    };
                    let ts = if u.prev_from_client.is_none() {
                        self.start_us
                    } else {
                        (u.last_data + rtt + think_us).max(self.clock + 1)
                    };
                    u.prev_from_client = Some(from_client);
                    u.last_data = ts;
                    self.push(ts, from_client, EvKind::Datagram(payload));
                    self.settle();
                    return true;
                }
                UdpStep::QuicData {
                    from_client,
                    think_us,
                    total,
                } => {
                    let rtt = if !from_client && u.prev_from_client == Some(true) {
                        self.path.rtt_us
                    } else {
                        0
                    };
                    let start = (u.last_data + rtt + think_us).max(self.clock + 1);
                    if start > u.last_data + 1_000_000 {
                        u.cwnd[idx(from_client)] = CWND_INIT;
                    }
                    u.prev_from_client = Some(from_client);
                    u.sending = Some(Sending {
                        from_client,
                        left: total.max(20),
                        next_start: start,
                    });
                }
            }
        }
        let State::Udp(u) = &mut self.state else {
            return false;
        };
        let Some(sending) = u.sending.as_mut() else {
            return false;
        };
        let fc = sending.from_client;
        let si = idx(fc);
        let ns_per_byte = if fc {
            self.path.up_ns_per_byte
        } else {
            self.path.down_ns_per_byte
        };
        let stride = steer.ack_stride();
        let ack_delay = if fc {
            self.path.rtt_us
        } else {
            self.path.client_ack_us
        };
        let mut ts = sending.next_start;
        let mut unacked = 0;
        let mut first_ack = None;
        let mut last = ts;
        let mut events = Vec::new();
        for _ in 0..u.cwnd[si] {
            if sending.left == 0 {
                break;
            }
            let len = sending.left.min(QUIC_MAX_PACKET);
            sending.left -= len;
            events.push(Ev {
                ts,
                from_client: fc,
                kind: EvKind::QuicShort { len: len as u32 },
            });
            last = ts;
            unacked += 1;
            if unacked >= stride && (len == QUIC_MAX_PACKET || sending.left == 0) {
                let at = ts + ack_delay;
                let ack_len = 36 + self.rng.below(16) as u32;
                events.push(Ev {
                    ts: at,
                    from_client: !fc,
                    kind: EvKind::QuicShort { len: ack_len },
                });
                first_ack.get_or_insert(at);
                unacked = 0;
            }
            ts += 1 + ((len + 50) as u64 * ns_per_byte) / 1000;
        }
        u.cwnd[si] = (u.cwnd[si] * 2).min(CWND_MAX);
        if sending.left == 0 {
            if unacked > 0 {
                let at = last + ack_delay.max(1) + self.rng.below(2000);
                events.push(Ev {
                    ts: at,
                    from_client: !fc,
                    kind: EvKind::QuicShort {
                        len: 36 + self.rng.below(16) as u32,
                    },
                });
            }
            u.last_data = last;
            u.sending = None;
            u.spin = !u.spin;
        } else {
            let ack_back = first_ack.map_or(ts, |a| if fc { a } else { a + self.path.rtt_us });
            sending.next_start = ack_back.max(ts);
        }
        self.queue.extend(events);
        self.settle();
        if let State::Udp(u) = &mut self.state {
            if let Some(s) = u.sending.as_mut() {
                s.next_start = s.next_start.max(self.clock + 1);
            }
        }
        true
    }
}

/// TCP options of a segment: iOS's SYN layout, a Linux SYN-ACK, or NOP NOP TS on the rest.
fn tcp_options(
    t: &TcpState,
    path: &Path,
    start_us: u64,
    ts: u64,
    from_client: bool,
    syn: bool,
    has_ack: bool,
) -> Vec<u8> {
    let rel_ms = |at: u64| (at.saturating_sub(start_us) / 1000) as u32;
    let half = path.rtt_us / 2;
    let (val, ecr) = if from_client {
        (
            t.ts_base[IDX_C].wrapping_add(rel_ms(ts)),
            t.ts_base[IDX_S].wrapping_add(rel_ms(ts.saturating_sub(half))),
        )
    } else {
        (
            t.ts_base[IDX_S].wrapping_add(rel_ms(ts.saturating_sub(half))),
            t.ts_base[IDX_C].wrapping_add(rel_ms(ts.saturating_sub(path.rtt_us))),
        )
    };
    let mut o = Vec::with_capacity(24);
    if syn {
        let mss = if from_client {
            t.seg[IDX_S]
        } else {
            t.seg[IDX_C]
        } + if t.timestamps { 12 } else { 0 };
        if from_client {
            // MSS, NOP, WScale 6, NOP, NOP, TS, SACK permitted, EOL, EOL.
            o.extend_from_slice(&[2, 4]);
            o.extend_from_slice(&(mss as u16).to_be_bytes());
            o.extend_from_slice(&[1, 3, 3, 6, 1, 1, 8, 10]);
            o.extend_from_slice(&val.to_be_bytes());
            o.extend_from_slice(&[0, 0, 0, 0, 4, 2, 0, 0]);
        } else {
            // MSS, SACK permitted, TS, NOP, WScale 7 (Linux); without TS: MSS, NOP, NOP, SACK, NOP, WScale.
            o.extend_from_slice(&[2, 4]);
            o.extend_from_slice(&(mss as u16).to_be_bytes());
            if t.timestamps {
                o.extend_from_slice(&[4, 2, 8, 10]);
                o.extend_from_slice(&val.to_be_bytes());
                o.extend_from_slice(&ecr.to_be_bytes());
                o.extend_from_slice(&[1, 3, 3, 7]);
            } else {
                o.extend_from_slice(&[1, 1, 4, 2, 1, 3, 3, 7]);
            }
        }
    } else if t.timestamps {
        o.extend_from_slice(&[1, 1, 8, 10]);
        o.extend_from_slice(&val.to_be_bytes());
        o.extend_from_slice(&(if has_ack { ecr } else { 0 }).to_be_bytes());
    }
    o
}
