//! The classification engine: compiled signatures (shared), one [`Classifier`] per worker, and
//! one [`FlowClassification`] per flow.
//!
//! Owns: the decision procedure — Hyperscan prefilter over each direction's first bytes,
//! confirming parsers (pattern hits first, then pattern-less parsers by cost), conflict
//! handling (two confirmed protocols → `unknown`), role correction (reversed patterns and
//! parser-proven senders), the bounded per-direction reassembly buffer used only while a parser
//! answers `NeedMore`, metadata collection after the decision, STARTTLS watching and upgrade
//! watching (`upgrades_to`, e.g. STUN → DTLS). Must not: look at ports to decide, scan a decided
//! flow with Hyperscan again, grow any buffer beyond `max_bytes`, or panic on any bytes.
//!
//! Cost model: an undecided flow costs one Hyperscan block scan of at most `max_bytes` per
//! payload packet (first `max_packets` per direction), plus the parsers of the signatures whose
//! patterns hit. A decided flow costs at most one parser call per packet for its first
//! `max_packets` packets (plus the TLS parser for `starttls` protocols and the target parsers of
//! `upgrades_to` for a bounded number of packets), then nothing.

use std::path::Path;
use std::sync::Arc;

use portolan_packet::Transport;

use crate::app_proto::AppProto;
use crate::database::{CacheDir, DatabaseError, DatabaseReport, PatternDatabase, PatternScratch};
use crate::ports::PortRegistry;
use crate::probe::{HttpMeta, Meta, Probe, ProbeContext, QuicMeta, Side, SshMeta, TlsMeta};
use crate::protocols::dns::{parse_response_answers, DnsAnswers};
use crate::protocols::{self, ProbeFn};
use crate::reassembly::{
    Held, ReassemblyStats, Reorder, ReorderPool, StreamCursor, OVERLAP_MISMATCH_INDICATOR,
};
use crate::signature::{self, Signature, SignatureError, SignatureSet};
use crate::tunnel::{Step, TunnelWatch};
use portolan_model::ProxyTarget;

/// Indicator added when two parsers confirmed different protocols on the same bytes.
pub const CONFLICT_INDICATOR: &str = portolan_model::indicator::CONFLICT;
/// Indicator added when a TLS handshake follows an in-band upgrade (STARTTLS & co).
pub const STARTTLS_INDICATOR: &str = portolan_model::indicator::STARTTLS;
/// Indicator added when a parser claims the roles the other way round on a flow whose start
/// (SYN or SYN-ACK) was seen: transport evidence outranks payload claims, the roles stay.
pub const ROLES_CONFLICT_INDICATOR: &str = portolan_model::indicator::ROLES_CONFLICT;
/// Indicator added when an explicit proxy (HTTP `CONNECT`, SOCKS) opened a tunnel and the flow
/// was classified from the bytes inside it.
pub const PROXY_TUNNEL_INDICATOR: &str = portolan_model::indicator::PROXY_TUNNEL;
/// Indicator added when the proxy refused the client's `CONNECT`.
pub const PROXY_REFUSED_INDICATOR: &str = portolan_model::indicator::PROXY_REFUSED;
/// Indicator added when a proxy exchange that started well broke (malformed, oversized).
pub const PROXY_MALFORMED_INDICATOR: &str = portolan_model::indicator::PROXY_MALFORMED;

/// Below this many bytes, a TCP direction's first bytes are kept and joined with the next
/// segment even when no parser recognised them yet (a hello sent in 1-byte segments).
const MIN_EVIDENCE: usize = 64;

/// Scan budgets. Defaults: 4096 bytes per direction; 4096 TCP segments and 8 UDP datagrams
/// per direction before the decision, 8 packets per direction of metadata reading after it; 24
/// packets of STARTTLS watching, 16 packets of upgrade watching; 256 reorder buffers per
/// worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// Bytes of each direction that are ever scanned; also the reassembly buffer's bound.
    pub max_bytes: u32,
    /// Payload-carrying packets of each direction examined: UDP datagrams before the decision,
    /// and packets the decided parser reads for metadata after it.
    pub max_packets: u16,
    /// TCP segments of each direction examined before the decision. The byte budget is what
    /// limits TCP; this cap is high enough (at least `max_bytes`) that a sender splitting its
    /// first message into 1-byte segments still fills the byte budget.
    pub max_segments: u16,
    /// Out-of-order holding buffers (`max_bytes` each) per worker: how many TCP directions may
    /// hold segments ahead of a gap at once (`crate::reassembly`).
    pub reorder_buffers: u16,
    /// Packets (both directions) watched for a TLS handshake after a `starttls` protocol is
    /// decided.
    pub starttls_packets: u16,
    /// Packets (both directions) watched by the `upgrades_to` targets' parsers after a
    /// protocol with `upgrades_to` is decided (e.g. a DTLS handshake after STUN).
    pub upgrade_packets: u16,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            max_bytes: 4096,
            max_packets: 8,
            max_segments: 4096,
            reorder_buffers: 256,
            starttls_packets: 24,
            upgrade_packets: 16,
        }
    }
}

/// An error loading the signatures or building the database.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A signature file is wrong.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Hyperscan rejected a pattern or failed.
    #[error(transparent)]
    Database(#[from] DatabaseError),
}

/// Signatures plus their compiled database; built once, shared by every worker (`Arc`).
#[derive(Debug)]
pub struct CompiledSignatures {
    set: SignatureSet,
    db: PatternDatabase,
    /// Pattern-less signatures per transport (index 0 TCP, 1 UDP), cheapest first.
    unpatterned: [Vec<usize>; 2],
    /// Signatures per transport, as a bit mask.
    transport_mask: [u128; 2],
    /// Per signature: the indices of its `upgrades_to` targets.
    upgrades: Vec<Vec<usize>>,
}

fn transport_index(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::Udp => 1,
    }
}

impl CompiledSignatures {
    /// Loads every `*.toml` of `dir` and builds (or reads from `cache`) the database.
    pub fn load(
        dir: &Path,
        cache: &CacheDir,
    ) -> Result<(CompiledSignatures, DatabaseReport), LoadError> {
        let set = signature::load_dir(dir)?;
        Ok(CompiledSignatures::from_set(set, cache)?)
    }

    /// Builds the database for an already validated set.
    pub fn from_set(
        set: SignatureSet,
        cache: &CacheDir,
    ) -> Result<(CompiledSignatures, DatabaseReport), DatabaseError> {
        let (db, report) = PatternDatabase::build(&set, cache)?;
        let mut unpatterned: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        let mut transport_mask = [0u128; 2];
        for (i, sig) in set.signatures.iter().enumerate() {
            for t in &sig.transports {
                let ti = transport_index(*t);
                transport_mask[ti] |= 1u128 << i;
                if sig.probe_without_pattern {
                    unpatterned[ti].push(i);
                }
            }
        }
        let upgrades = set
            .signatures
            .iter()
            .map(|sig| {
                sig.upgrades_to
                    .iter()
                    .filter_map(|p| set.signatures.iter().position(|s| s.app_proto == *p))
                    .collect()
            })
            .collect();
        for list in &mut unpatterned {
            list.sort_by_key(|&i| {
                let s = &set.signatures[i];
                (s.probe_cost, s.app_proto)
            });
        }
        Ok((
            CompiledSignatures {
                set,
                db,
                unpatterned,
                transport_mask,
                upgrades,
            },
            report,
        ))
    }

    /// The signatures, in file-name order.
    pub fn signatures(&self) -> &[Signature] {
        &self.set.signatures
    }

    /// SHA-256 of the signature files (the cache key's main part).
    pub fn digest(&self) -> [u8; 32] {
        self.set.digest
    }

    /// A port registry from the signatures' `[ports]` (apply the operator override to it).
    pub fn port_registry(&self) -> PortRegistry {
        PortRegistry::from_signatures(&self.set)
    }

    fn signature(&self, i: usize) -> Option<&Signature> {
        self.set.signatures.get(i)
    }

    fn upgrade_targets(&self, i: usize) -> &[usize] {
        self.upgrades.get(i).map_or(&[], Vec::as_slice)
    }
}

/// One worker's classifier: the shared signatures, Hyperscan scratch allocated once, and the
/// budgets. Not shared between threads; create one per worker.
#[derive(Debug)]
pub struct Classifier {
    sigs: Arc<CompiledSignatures>,
    scratch: PatternScratch,
    config: ClassifyConfig,
    pool: ReorderPool,
}

impl Classifier {
    /// A classifier for one worker (allocates its Hyperscan scratch).
    pub fn new(
        sigs: Arc<CompiledSignatures>,
        config: ClassifyConfig,
    ) -> Result<Classifier, DatabaseError> {
        let scratch = sigs.db.alloc_scratch()?;
        let config = ClassifyConfig {
            max_segments: config.max_segments.max(config.max_packets),
            ..config
        };
        let pool = ReorderPool::new(
            usize::from(config.reorder_buffers),
            usize::try_from(config.max_bytes).unwrap_or(usize::MAX),
        );
        Ok(Classifier {
            sigs,
            scratch,
            config,
            pool,
        })
    }

    /// The stream reassembler's counters (held, dropped at a bound, retransmitted, overlapping
    /// with different bytes, gaps skipped).
    pub fn reassembly_stats(&self) -> ReassemblyStats {
        self.pool.stats
    }

    /// The budgets in force.
    pub fn config(&self) -> &ClassifyConfig {
        &self.config
    }

    /// The shared signatures.
    pub fn signatures(&self) -> &Arc<CompiledSignatures> {
        &self.sigs
    }
}

/// What [`FlowClassification::observe`] settled on a packet: the label when it is first decided,
/// and later at most once more each when an upgrade watch relabels the flow or a parser proves
/// the roles the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The flow's protocol (`Unknown` when the budget ran out or the evidence conflicted).
    pub app_proto: AppProto,
    /// The side taken for the server sent the client's message (e.g. a TLS ClientHello, or an
    /// SSH KEXINIT advertising `ext-info-c`): the caller must swap the flow's roles
    /// (`Flow::swap_roles`) and pass `sender` relative to the new roles from now on. The
    /// engine has already swapped its own state.
    pub swap_roles: bool,
}

/// Metadata and evidence collected for a flow; boxed so an idle flow stays small.
#[derive(Debug, Default, Clone, PartialEq)]
struct FlowExtras {
    /// Per-direction reassembly buffer (client, server), non-empty only while a parser waits
    /// for more bytes.
    buffers: [Vec<u8>; 2],
    /// Per direction: the packet index (within the direction) whose payload starts the buffer;
    /// parsers see it as `ProbeContext::packet_index` of the joined bytes.
    buffer_start: [u16; 2],
    indicators: Vec<&'static str>,
    tls: Option<TlsMeta>,
    http: Option<HttpMeta>,
    quic: Option<QuicMeta>,
    ssh: Option<SshMeta>,
    name: Option<String>,
    /// The first unicast DNS response's name and addresses (boxed: it is large and rare).
    dns_answers: Option<Box<DnsAnswers>>,
    /// `dns_answers` already went to the control plane when the response was seen.
    dns_answers_handed_off: bool,
    /// Per TCP direction: segments held ahead of a gap (`crate::reassembly`).
    held: [Option<Held>; 2],
    /// The proxy handshake being followed (`crate::tunnel`), while [`TunnelPhase::Watching`].
    tunnel: Option<Box<TunnelWatch>>,
    /// The proxy target once the watch ended (established when the tunnel opened).
    proxy: Option<ProxyTarget>,
}

fn fill<T>(dst: &mut Option<T>, src: Option<T>) {
    if dst.is_none() {
        *dst = src;
    }
}

fn fill_vec<T>(dst: &mut Vec<T>, src: Vec<T>) {
    if dst.is_empty() {
        *dst = src;
    }
}

impl FlowExtras {
    fn add_indicator(&mut self, indicator: &'static str) {
        if !self.indicators.contains(&indicator) {
            self.indicators.push(indicator);
        }
    }

    fn merge_tls(&mut self, m: TlsMeta) {
        let dst = self.tls.get_or_insert_with(TlsMeta::default);
        // The server's choice is the flow's version; the client's offer only until then.
        if m.server_version.is_some() {
            dst.version.clone_from(&m.server_version);
        } else {
            fill(&mut dst.version, m.version);
        }
        fill(&mut dst.sni, m.sni);
        fill_vec(&mut dst.client_alpns, m.client_alpns);
        fill_vec(&mut dst.supported_versions, m.supported_versions);
        fill(&mut dst.ja3, m.ja3);
        fill(&mut dst.ja3_string, m.ja3_string);
        fill(&mut dst.ja4, m.ja4);
        fill(&mut dst.server_cipher, m.server_cipher);
        fill(&mut dst.server_version, m.server_version);
    }

    fn merge(&mut self, meta: Meta) {
        match meta {
            Meta::None => {}
            Meta::Tls(m) => self.merge_tls(m),
            Meta::Http(m) => {
                if m.connect {
                    self.add_indicator("http.connect");
                }
                if m.websocket_upgrade {
                    self.add_indicator("http.websocket");
                }
                let dst = self.http.get_or_insert_with(HttpMeta::default);
                fill(&mut dst.hostname, m.hostname);
                fill(&mut dst.url, m.url);
                fill(&mut dst.http_method, m.http_method);
                fill(&mut dst.http_user_agent, m.http_user_agent);
                fill(&mut dst.status, m.status);
                dst.connect |= m.connect;
                dst.websocket_upgrade |= m.websocket_upgrade;
            }
            Meta::Quic(m) => {
                let dst = self.quic.get_or_insert_with(QuicMeta::default);
                fill(&mut dst.version, m.version);
                fill(&mut dst.sni, m.sni);
                fill_vec(&mut dst.client_alpns, m.client_alpns);
            }
            Meta::Ssh(m) => {
                let dst = self.ssh.get_or_insert_with(SshMeta::default);
                fill(&mut dst.client_software, m.client_software);
                fill(&mut dst.server_software, m.server_software);
            }
            Meta::Name(n) => fill(&mut self.name, Some(n)),
        }
    }
}

/// One parser's confirmation during a scan.
struct Confirmation {
    signature: usize,
    indicator: &'static str,
    meta: Meta,
    /// Only a pattern of the opposite direction led here.
    reversed: bool,
    /// The parser proved the sender (`Probe::MatchFrom`): `Some(true)` when it is the other
    /// side than `ctx.sender` said.
    proven_reversed: Option<bool>,
}

/// What one evaluation of a direction's bytes produced.
enum Outcome {
    Confirmed(Vec<Confirmation>),
    NeedMore,
    Nothing,
}

/// Per-flow classification state: `Default`, 64 bytes while nothing was found; metadata lives
/// in a box allocated on the first parser answer that carries some.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlowClassification {
    /// Scanning, decided (with what the decided signature watches), or given up.
    phase: Phase,
    /// A parser proved the roles (reversed pattern or `Probe::MatchFrom`): never swap again.
    roles_proven: bool,
    /// The flow's start (SYN or SYN-ACK) was seen: the roles are the transport's and a parser
    /// claiming otherwise only adds [`ROLES_CONFLICT_INDICATOR`].
    roles_fixed: bool,
    /// Per TCP direction (client, server): where its stream stands.
    streams: [StreamCursor; 2],
    /// The flow is TCP (budgets in segments rather than datagrams).
    tcp: bool,
    /// Payload packets seen per direction (client, server).
    packets: [u16; 2],
    /// Payload bytes seen per direction.
    bytes: [u32; 2],
    /// Where the flow stands with explicit proxies.
    tunnel: TunnelPhase,
    /// What the worker's hand-off already sent of this flow (the engine never reads it).
    handoff: HandoffMark,
    extras: Option<Box<FlowExtras>>,
}

/// What of a flow the worker has handed to the control plane before the flow's end: kept in
/// the flow entry beside the classification, written and read only by the hand-off (the
/// engine never looks at it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum HandoffMark {
    /// Nothing yet: the flow is not identified, or its name not read.
    #[default]
    Pending,
    /// The early event went; the next interim update is due `next_update_s` seconds after the
    /// flow's start.
    Early {
        /// Seconds after the flow's start.
        next_update_s: u32,
    },
    /// Nothing more before the flow ends (unknown protocol, DNS, updates off, or the early
    /// event did not fit the queue: the final record carries everything).
    Done,
}

/// Where a TCP flow stands with explicit proxies (`crate::tunnel`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum TunnelPhase {
    /// No payload seen yet.
    #[default]
    Unseen,
    /// Not a proxy flow, or the watch ended (refused, malformed, abandoned): classified as is.
    Off,
    /// The client's first bytes can start a proxy request: the handshake is followed while
    /// the outer protocol (`http`, `socks`) is classified as usual.
    Watching,
    /// The proxy granted the request: the flow is classified from the tunnel's bytes, which
    /// start undecided with fresh budgets (the stream cursors go on).
    Open,
}

/// Where the engine stands with a flow's label: one phase instead of an optional label, an
/// optional signature and flags that are only meaningful once a label is set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Undecided: each direction's first bytes are scanned (Hyperscan prefilter, confirming
    /// parsers) within the budgets.
    #[default]
    Scanning,
    /// A protocol is decided: its parser reads metadata, the STARTTLS and upgrade watches run.
    Decided(DecidedState),
    /// The engine gave up (budget spent, or two protocols confirmed): `unknown`, nothing more
    /// is read.
    GaveUp,
}

/// What a decided flow keeps about its decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecidedState {
    /// The label.
    proto: AppProto,
    /// Index of the decided signature (fewer than [`crate::signature::MAX_SIGNATURES`], so it
    /// fits).
    signature: u8,
    /// What the decided signature watches for after the decision ([`WATCH_STARTTLS`],
    /// [`WATCH_UPGRADE`], [`WATCH_FIRST_MESSAGE`]): copied from the signature when it is set,
    /// so the per-packet check of a decided flow reads the flow only.
    watch: u8,
    /// Directions (bit 0 client, bit 1 server) whose metadata is complete: the decided
    /// signature has `metadata_in_first_message` and its parser reported metadata from them.
    metadata_done: u8,
    /// A TLS handshake followed the in-band upgrade (`starttls` protocols).
    starttls_found: bool,
    /// Packets watched for STARTTLS or an upgrade so far (kept across an upgrade's relabel).
    watched: u16,
}

/// [`DecidedState::watch`] bit: the decided signature has `starttls`.
const WATCH_STARTTLS: u8 = 1;
/// [`DecidedState::watch`] bit: the decided signature has `upgrades_to` targets.
const WATCH_UPGRADE: u8 = 2;
/// [`DecidedState::watch`] bit: the decided signature has `metadata_in_first_message`.
const WATCH_FIRST_MESSAGE: u8 = 4;

impl DecidedState {
    /// Decided as `proto` by signature `index`, with what that signature watches; the
    /// STARTTLS finding and the watched-packet count carried over from `before` (an upgrade
    /// relabels a decided flow), else fresh.
    fn new(
        classifier: &Classifier,
        proto: AppProto,
        index: usize,
        before: Option<DecidedState>,
    ) -> DecidedState {
        let sig = classifier.sigs.signature(index);
        let starttls = sig.is_some_and(|s| s.starttls);
        let upgrade = !classifier.sigs.upgrade_targets(index).is_empty();
        let first = sig.is_some_and(|s| s.metadata_in_first_message);
        DecidedState {
            proto,
            signature: u8::try_from(index).unwrap_or(u8::MAX),
            watch: u8::from(starttls) * WATCH_STARTTLS
                + u8::from(upgrade) * WATCH_UPGRADE
                + u8::from(first) * WATCH_FIRST_MESSAGE,
            metadata_done: 0,
            starttls_found: before.is_some_and(|b| b.starttls_found),
            watched: before.map_or(0, |b| b.watched),
        }
    }

    /// The decided parser reads packet `index` of what `sender` sends: within `max_packets`, and
    /// that direction's metadata is not complete yet.
    #[inline]
    fn parser_reads(&self, cfg: &ClassifyConfig, sender: Side, index: u16) -> bool {
        index < cfg.max_packets && self.metadata_done & (1 << sender.index()) == 0
    }

    /// Marks `sender`'s metadata complete when the decided signature says the first message
    /// carries all of it and `meta` (what the parser just reported from `sender`) has some.
    fn note_metadata(&mut self, sender: Side, meta: &Meta) {
        if self.watch & WATCH_FIRST_MESSAGE != 0 && *meta != Meta::None {
            self.metadata_done |= 1 << sender.index();
        }
    }

    #[inline]
    fn starttls_wanted(&self, classifier: &Classifier) -> bool {
        self.watch & WATCH_STARTTLS != 0
            && !self.starttls_found
            && self.watched < classifier.config.starttls_packets
    }

    /// An upgrade target is still watched. After an upgrade the decided signature is the
    /// target, which has no `upgrades_to` of its own (validated), so this ends by itself.
    #[inline]
    fn upgrade_wanted(&self, classifier: &Classifier) -> bool {
        self.watch & WATCH_UPGRADE != 0 && self.watched < classifier.config.upgrade_packets
    }

    /// The metadata bits after the roles were proven the other way round.
    fn swap_roles(&mut self) {
        self.metadata_done = ((self.metadata_done & 1) << 1) | ((self.metadata_done >> 1) & 1);
    }
}

impl FlowClassification {
    /// A fresh, undecided flow (same as `Default`).
    pub fn new() -> FlowClassification {
        FlowClassification::default()
    }

    /// The flow's protocol so far: `Unknown` until decided.
    pub fn app_proto(&self) -> AppProto {
        match self.phase {
            Phase::Decided(d) => d.proto,
            Phase::Scanning | Phase::GaveUp => AppProto::Unknown,
        }
    }

    /// True once a label (possibly `Unknown`) is final.
    pub fn is_decided(&self) -> bool {
        self.phase != Phase::Scanning
    }

    /// What the worker's hand-off already sent of this flow.
    pub fn handoff(&self) -> HandoffMark {
        self.handoff
    }

    /// Records what the worker's hand-off sent of this flow.
    pub fn set_handoff(&mut self, mark: HandoffMark) {
        self.handoff = mark;
    }

    /// True once the flow is identified for good and the name attribution needs is read or
    /// given up: a protocol is decided (not `unknown`), no proxy handshake, STARTTLS or
    /// upgrade watch may still change the label or the upgrade flag, and the SNI / Host is
    /// known or the decided parser reads no more of the client's bytes. What an early
    /// hand-off event says then is what the flow's final record will say about its identity.
    pub fn is_settled(&self, classifier: &Classifier) -> bool {
        match self.phase {
            Phase::Scanning | Phase::GaveUp => false,
            Phase::Decided(d) => {
                self.tunnel != TunnelPhase::Watching
                    && !d.starttls_wanted(classifier)
                    && !d.upgrade_wanted(classifier)
                    && (self.has_server_name()
                        || !d.parser_reads(
                            &classifier.config,
                            Side::Client,
                            self.packets[Side::Client.index()],
                        ))
            }
        }
    }

    /// A TLS or QUIC SNI or an HTTP Host was read.
    fn has_server_name(&self) -> bool {
        self.tls().is_some_and(|t| t.sni.is_some())
            || self.quic().is_some_and(|q| q.sni.is_some())
            || self.http().is_some_and(|h| h.hostname.is_some())
    }

    /// Evidence names collected (`tls.client_hello`, `http.request`, `starttls`, ...).
    pub fn indicators(&self) -> &[&'static str] {
        self.extras
            .as_ref()
            .map_or(&[], |e| e.indicators.as_slice())
    }

    /// TLS (or DTLS, or STARTTLS-upgraded) handshake fields.
    pub fn tls(&self) -> Option<&TlsMeta> {
        self.extras.as_ref()?.tls.as_ref()
    }

    /// HTTP/1.x fields.
    pub fn http(&self) -> Option<&HttpMeta> {
        self.extras.as_ref()?.http.as_ref()
    }

    /// QUIC fields.
    pub fn quic(&self) -> Option<&QuicMeta> {
        self.extras.as_ref()?.quic.as_ref()
    }

    /// SSH banner fields.
    pub fn ssh(&self) -> Option<&SshMeta> {
        self.extras.as_ref()?.ssh.as_ref()
    }

    /// The name and A/AAAA addresses of the flow's first unicast DNS response, if any.
    pub fn dns_answers(&self) -> Option<&DnsAnswers> {
        self.extras.as_ref()?.dns_answers.as_deref()
    }

    /// Keeps what a server-to-client packet (seen at `ts_us`) of a flow decided as UDP `dns`
    /// resolved ([`parse_response_answers`]); only the flow's first such response is kept.
    /// Cheap to call on every packet: anything else returns before looking at the payload. Call
    /// it whether or not the flow still [wants payload](FlowClassification::wants_payload).
    #[inline]
    ///
    /// Returns true when this packet's answers were just kept (the caller may hand them to the
    /// control plane at once, [`FlowClassification::mark_dns_answers_handed_off`]).
    pub fn observe_dns_response(
        &mut self,
        transport: Transport,
        sender: Side,
        payload: &[u8],
        ts_us: u64,
    ) -> bool {
        if sender.is_client()
            || transport != Transport::Udp
            || self.app_proto() != AppProto::Dns
            || self.dns_answers().is_some()
        {
            return false;
        }
        match parse_response_answers(payload) {
            Some(answers) => {
                self.extras().dns_answers = Some(Box::new(answers.seen_at(ts_us)));
                true
            }
            None => false,
        }
    }

    /// Records that [`FlowClassification::dns_answers`] reached the control plane before the
    /// flow ended, so the flow's own event need not carry them again.
    pub fn mark_dns_answers_handed_off(&mut self) {
        if let Some(e) = self.extras.as_mut() {
            e.dns_answers_handed_off = true;
        }
    }

    /// True once [`FlowClassification::mark_dns_answers_handed_off`] was called.
    pub fn dns_answers_handed_off(&self) -> bool {
        self.extras
            .as_ref()
            .is_some_and(|e| e.dns_answers_handed_off)
    }

    /// A single name a parser reported (`Meta::Name`, e.g. a DNS query name).
    pub fn name(&self) -> Option<&str> {
        self.extras.as_ref()?.name.as_deref()
    }

    /// The explicit proxy's target, once the client's request was read (`established` once the
    /// proxy granted it and the flow's label became the tunnel's content).
    pub fn proxy(&self) -> Option<&ProxyTarget> {
        let e = self.extras.as_ref()?;
        e.proxy
            .as_ref()
            .or_else(|| e.tunnel.as_ref().and_then(|w| w.target()))
    }

    /// The port the flow's protocol is judged against: the tunnel target's when a proxy
    /// established one, else `server_port`.
    pub fn judged_port(&self, server_port: u16) -> u16 {
        match self.proxy() {
            Some(p) if p.established => p.port,
            _ => server_port,
        }
    }

    /// True while the engine still wants this flow's payloads. A caller may skip `observe`
    /// when this is false (calling it anyway is cheap and changes nothing).
    pub fn wants_payload(&self, classifier: &Classifier) -> bool {
        self.wants_payload_from(classifier, Side::Client)
            || self.wants_payload_from(classifier, Side::Server)
    }

    /// [`FlowClassification::wants_payload`] for one direction: true while the engine still
    /// wants this flow's payloads from `sender` (the client or the server). A caller
    /// may skip `observe` for a packet of a direction that is not wanted; the outcome (protocol,
    /// metadata, roles) is the same as calling it. A decided flow usually stops wanting one
    /// direction long before the other (a download's server side, after `max_packets`), so the
    /// worker's per-packet check is this one.
    #[inline]
    pub fn wants_payload_from(&self, classifier: &Classifier, sender: Side) -> bool {
        if self.tunnel == TunnelPhase::Watching {
            return true;
        }
        match self.phase {
            Phase::Scanning => !self.spent(&classifier.config, sender),
            Phase::GaveUp => false,
            Phase::Decided(d) => {
                d.parser_reads(&classifier.config, sender, self.packets[sender.index()])
                    || d.starttls_wanted(classifier)
                    || d.upgrade_wanted(classifier)
            }
        }
    }

    /// What `sender` sends, on an undecided flow, used up its budget (bytes, or
    /// segments/datagrams).
    #[inline]
    fn spent(&self, cfg: &ClassifyConfig, sender: Side) -> bool {
        let d = sender.index();
        self.bytes[d] >= cfg.max_bytes || self.packets[d] >= self.packet_cap(cfg)
    }

    /// Packets per direction scanned before the decision: TCP segments (the byte budget is
    /// what binds) or UDP datagrams.
    #[inline]
    fn packet_cap(&self, cfg: &ClassifyConfig) -> u16 {
        if self.tcp {
            cfg.max_segments
        } else {
            cfg.max_packets
        }
    }

    /// Takes `sender`'s reassembly buffer (empty when none) and the packet index it starts at.
    fn take_buffer(&mut self, sender: Side) -> (Vec<u8>, u16) {
        let d = sender.index();
        self.extras.as_mut().map_or((Vec::new(), 0), |e| {
            (std::mem::take(&mut e.buffers[d]), e.buffer_start[d])
        })
    }

    /// Keeps `buffer` (starting at packet `start` of what `sender` sends) for the next packet.
    fn put_buffer(&mut self, sender: Side, buffer: Vec<u8>, start: u16) {
        let d = sender.index();
        let e = self.extras();
        e.buffers[d] = buffer;
        e.buffer_start[d] = start;
    }

    /// Swaps the engine's per-direction state and the role-attributed metadata (SSH software
    /// strings) when the roles are proven the other way round.
    fn swap_own_roles(&mut self) {
        self.packets.swap(0, 1);
        self.bytes.swap(0, 1);
        self.streams.swap(0, 1);
        if let Phase::Decided(d) = &mut self.phase {
            d.swap_roles();
        }
        if let Some(e) = self.extras.as_mut() {
            e.buffers.swap(0, 1);
            e.buffer_start.swap(0, 1);
            e.held.swap(0, 1);
            if let Some(ssh) = e.ssh.as_mut() {
                std::mem::swap(&mut ssh.client_software, &mut ssh.server_software);
            }
        }
    }

    fn extras(&mut self) -> &mut FlowExtras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Records that the flow's start (its SYN or SYN-ACK) was seen, so its roles come from the
    /// transport: a parser that claims them the other way round adds
    /// [`ROLES_CONFLICT_INDICATOR`] and the roles stay. Call it before the first `observe`.
    pub fn fix_roles(&mut self) {
        self.roles_fixed = true;
    }

    /// True once [`FlowClassification::fix_roles`] was called.
    pub fn roles_fixed(&self) -> bool {
        self.roles_fixed
    }

    /// A SYN (or SYN-ACK) sent by `sender` with sequence number `seq`: that direction's stream
    /// starts at `seq + 1`.
    pub fn observe_syn(&mut self, sender: Side, seq: u32) {
        if let Some(c) = self.streams.get_mut(sender.index()) {
            c.on_syn(seq);
        }
    }

    /// Feeds one payload-carrying TCP segment (sequence number `seq`): the stream reassembler
    /// (`crate::reassembly`) puts the direction's bytes in order — holding segments that come
    /// ahead of a gap, ignoring retransmissions, keeping the first copy of overlapping bytes —
    /// and [`FlowClassification::observe`] sees them in sequence order. Returns the last
    /// decision, with `swap_roles` set when the roles ended up swapped (honour it as for
    /// `observe`).
    pub fn observe_segment(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        seq: u32,
        payload: &[u8],
    ) -> Option<Decision> {
        if payload.is_empty() {
            return None;
        }
        let d = ctx.sender.index();
        let mut cursor = self.streams[d];
        let mut held = self.extras.as_mut().and_then(|e| e.held[d].take());
        let max_bytes = classifier.config.max_bytes;
        let mut reorder = Reorder {
            cursor: &mut cursor,
            held: &mut held,
        };
        let delivery = reorder.place(&mut classifier.pool, max_bytes, seq, payload);
        self.streams[d] = cursor;
        if delivery.mismatch {
            self.extras().add_indicator(OVERLAP_MISMATCH_INDICATOR);
        }
        let mut ctx = *ctx;
        let mut swapped = false;
        let mut decision = None;
        let direct = payload
            .get(delivery.direct.0..delivery.direct.1)
            .unwrap_or(&[]);
        let held_run = held.as_ref().map(|h| h.bytes(delivery.held)).unwrap_or(&[]);
        for chunk in [held_run, direct] {
            if chunk.is_empty() {
                continue;
            }
            if let Some(dec) = self.observe(classifier, &ctx, chunk) {
                if dec.swap_roles {
                    swapped = !swapped;
                    ctx.sender = ctx.sender.other();
                }
                decision = Some(dec);
            }
        }
        let now = ctx.sender.index();
        if let Some(h) = held {
            let spent = self.streams[now].delivered() >= max_bytes
                || !self.wants_payload_from(classifier, ctx.sender);
            if spent {
                classifier.pool.give_back(h.into_buffer());
            } else {
                self.extras().held[now] = Some(h);
            }
        }
        decision.map(|_| Decision {
            app_proto: self.app_proto(),
            swap_roles: swapped,
        })
    }

    /// Returns the flow's reorder buffers to the worker's pool; call it when the flow ends.
    pub fn release(&mut self, classifier: &mut Classifier) {
        if let Some(e) = self.extras.as_mut() {
            for h in &mut e.held {
                if let Some(h) = h.take() {
                    classifier.pool.give_back(h.into_buffer());
                }
            }
        }
    }

    /// Feeds one payload-carrying packet of the flow. `ctx.sender` says who sent it
    /// (relative to the roles after any swap this engine asked for); `ctx.packet_index` is
    /// ignored (the engine counts per direction itself). Returns a decision on the packet that
    /// settles the label; after that, at most once more each, on the packet where an upgrade
    /// watch relabels the flow (`stun` → `dtls`, `swap_roles` false) and on the packet where a
    /// parser proves the roles the other way round (`swap_roles` true). Honour `swap_roles`
    /// whenever it is set; read [`FlowClassification::app_proto`] when writing the record.
    pub fn observe(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        payload: &[u8],
    ) -> Option<Decision> {
        if payload.is_empty() {
            return None;
        }
        match self.tunnel {
            TunnelPhase::Off | TunnelPhase::Open => self.observe_bytes(classifier, ctx, payload),
            TunnelPhase::Unseen | TunnelPhase::Watching => {
                self.observe_proxied(classifier, ctx, payload)
            }
        }
    }

    /// [`FlowClassification::observe`] while the flow may be (or is) a proxy handshake: the
    /// bytes are classified as usual (the proxy's messages are `http` or `socks`) and fed to the
    /// [`TunnelWatch`]; when the proxy grants the request the flow restarts undecided on the
    /// tunnel's first bytes.
    #[cold]
    fn observe_proxied(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        payload: &[u8],
    ) -> Option<Decision> {
        if self.tunnel == TunnelPhase::Unseen {
            let watch = (ctx.transport == Transport::Tcp && ctx.sender == Side::Client)
                .then(|| TunnelWatch::start(payload))
                .flatten();
            match watch {
                Some(w) => {
                    self.extras().tunnel = Some(Box::new(w));
                    self.tunnel = TunnelPhase::Watching;
                }
                None => {
                    self.tunnel = TunnelPhase::Off;
                    return self.observe_bytes(classifier, ctx, payload);
                }
            }
        }
        let outer = self.observe_bytes(classifier, ctx, payload);
        if outer.is_some_and(|d| d.swap_roles) {
            // The roles were not what the watch assumed: not a proxy exchange as seen.
            self.end_watch(None);
            return outer;
        }
        let step = match self.extras.as_mut().and_then(|e| e.tunnel.as_mut()) {
            Some(w) => w.feed(ctx.sender, payload),
            None => Step::Abandoned,
        };
        match step {
            Step::Watching => outer,
            Step::Open => self.open_tunnel(classifier, ctx),
            Step::Refused => {
                self.end_watch(Some(PROXY_REFUSED_INDICATOR));
                outer
            }
            Step::Malformed => {
                self.end_watch(Some(PROXY_MALFORMED_INDICATOR));
                outer
            }
            Step::Abandoned => {
                self.end_watch(None);
                outer
            }
        }
    }

    /// Ends the proxy watch without a tunnel, keeping the target read (if any) as context.
    fn end_watch(&mut self, indicator: Option<&'static str>) {
        self.tunnel = TunnelPhase::Off;
        if let Some(e) = self.extras.as_mut() {
            if let Some(w) = e.tunnel.take() {
                e.proxy = w.target().cloned();
            }
            if let Some(i) = indicator {
                e.add_indicator(i);
            }
        }
    }

    /// The proxy granted the request: the flow restarts undecided, with fresh budgets, on the
    /// tunnel's bytes (the client's first, then the server's). The proxy exchange proved the
    /// roles as a SYN does: a parser claiming them the other way round only adds
    /// [`ROLES_CONFLICT_INDICATOR`]. The outer protocol's evidence (indicators, the `CONNECT`'s
    /// HTTP fields) stays on the record.
    fn open_tunnel(&mut self, classifier: &mut Classifier, ctx: &ProbeContext) -> Option<Decision> {
        let watch = self.extras.as_mut().and_then(|e| e.tunnel.take());
        let Some(mut watch) = watch else {
            self.tunnel = TunnelPhase::Off;
            return None;
        };
        let ([client, server], target) = watch.take_inner();
        self.tunnel = TunnelPhase::Open;
        self.phase = Phase::Scanning;
        self.roles_fixed = true;
        self.roles_proven = true;
        self.packets = [0, 0];
        self.bytes = [0, 0];
        let e = self.extras();
        e.buffers = [Vec::new(), Vec::new()];
        e.proxy = target;
        // A name the proxy protocol reported (the SOCKS target) is `proxy.host` now, not a
        // name of the tunnel's protocol.
        e.name = None;
        e.add_indicator(PROXY_TUNNEL_INDICATOR);
        for (sender, bytes) in [(Side::Client, client), (Side::Server, server)] {
            if !bytes.is_empty() {
                let inner = ProbeContext { sender, ..*ctx };
                self.observe_bytes(classifier, &inner, &bytes);
            }
        }
        Some(Decision {
            app_proto: self.app_proto(),
            swap_roles: false,
        })
    }

    /// Classifies one payload (the engine proper, proxies aside).
    fn observe_bytes(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        payload: &[u8],
    ) -> Option<Decision> {
        self.tcp = ctx.transport == Transport::Tcp;
        let sender = ctx.sender;
        let d = sender.index();
        let index = self.packets[d];
        self.packets[d] = index.saturating_add(1);
        let bytes_before = self.bytes[d];
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.bytes[d] = bytes_before.saturating_add(len);
        let pctx = ProbeContext {
            packet_index: u32::from(index),
            ..*ctx
        };
        match self.phase {
            Phase::Scanning => self.scan(classifier, &pctx, sender, index, bytes_before, payload),
            Phase::GaveUp => None,
            Phase::Decided(_) => self.enrich(classifier, &pctx, sender, index, payload),
        }
    }

    fn exhausted(&self, cfg: &ClassifyConfig) -> bool {
        let cap = self.packet_cap(cfg);
        (self.spent(cfg, Side::Client) && self.spent(cfg, Side::Server))
            || u32::from(self.packets[0]) + u32::from(self.packets[1]) >= 2 * u32::from(cap)
            || u64::from(self.bytes[0]) + u64::from(self.bytes[1]) >= 2 * u64::from(cfg.max_bytes)
    }

    fn give_up(&mut self) -> Decision {
        self.phase = Phase::GaveUp;
        if let Some(e) = self.extras.as_mut() {
            e.buffers = [Vec::new(), Vec::new()];
        }
        Decision {
            app_proto: AppProto::Unknown,
            swap_roles: false,
        }
    }

    fn scan(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        d: Side,
        index: u16,
        bytes_before: u32,
        payload: &[u8],
    ) -> Option<Decision> {
        let cfg = classifier.config;
        if index >= self.packet_cap(&cfg) || bytes_before >= cfg.max_bytes {
            return self.exhausted(&cfg).then(|| self.give_up());
        }
        // A TCP direction's first bytes, too few for any parser to be sure: kept and joined
        // with what follows even when nothing recognised them (1-byte segments).
        let tcp = self.tcp;
        let keep_short = |len: usize, start: u16| tcp && start == 0 && len < MIN_EVIDENCE;
        let room = usize::try_from(cfg.max_bytes - bytes_before).unwrap_or(usize::MAX);
        let fresh = payload.get(..room).unwrap_or(payload);
        let cap = usize::try_from(cfg.max_bytes).unwrap_or(usize::MAX);
        let (mut buffer, mut start) = self.take_buffer(d);
        let outcome = if buffer.is_empty() {
            let o = evaluate(classifier, ctx, fresh);
            let keep = match o {
                Outcome::NeedMore => true,
                Outcome::Nothing => bytes_before == 0 && keep_short(fresh.len(), index),
                Outcome::Confirmed(_) => false,
            };
            if keep && fresh.len() < cap {
                buffer.extend_from_slice(fresh);
                start = index;
            }
            o
        } else if buffer.len() >= cap {
            // The waiting parser cannot get more bytes: forget the buffer.
            buffer.clear();
            evaluate(classifier, ctx, fresh)
        } else {
            let take = (cap - buffer.len()).min(payload.len());
            buffer.extend_from_slice(payload.get(..take).unwrap_or(payload));
            let joined_ctx = ProbeContext {
                packet_index: u32::from(start),
                ..*ctx
            };
            match evaluate(classifier, &joined_ctx, &buffer) {
                Outcome::Nothing if keep_short(buffer.len(), start) => Outcome::Nothing,
                Outcome::Nothing => {
                    // The joined bytes are not a continuation (loss, retransmission): try the
                    // packet on its own.
                    buffer.clear();
                    let o = evaluate(classifier, ctx, fresh);
                    if matches!(o, Outcome::NeedMore) && fresh.len() < cap {
                        buffer.extend_from_slice(fresh);
                        start = index;
                    }
                    o
                }
                Outcome::NeedMore if buffer.len() >= cap => {
                    buffer.clear();
                    Outcome::NeedMore
                }
                other => other,
            }
        };
        match outcome {
            Outcome::Confirmed(confirmations) => Some(self.decide(classifier, confirmations, d)),
            Outcome::NeedMore | Outcome::Nothing => {
                if !buffer.is_empty() {
                    self.put_buffer(d, buffer, start);
                }
                self.exhausted(&cfg).then(|| self.give_up())
            }
        }
    }

    /// Labels the flow from the confirmations of a packet `sender` sent.
    fn decide(
        &mut self,
        classifier: &Classifier,
        confirmations: Vec<Confirmation>,
        d: Side,
    ) -> Decision {
        let sigs = &classifier.sigs;
        let protos: Vec<AppProto> = confirmations
            .iter()
            .filter_map(|c| sigs.signature(c.signature).map(|s| s.app_proto))
            .collect();
        let overridden = |p: AppProto| {
            confirmations.iter().any(|c| {
                sigs.signature(c.signature)
                    .is_some_and(|s| s.app_proto != p && s.overrides.contains(&p))
            })
        };
        let mut winners: Vec<AppProto> =
            protos.iter().copied().filter(|p| !overridden(*p)).collect();
        winners.sort_unstable();
        winners.dedup();
        let [winner] = winners.as_slice() else {
            self.extras().add_indicator(CONFLICT_INDICATOR);
            return self.give_up();
        };
        let winner = *winner;
        let Some(c) = confirmations.into_iter().find(|c| {
            sigs.signature(c.signature)
                .is_some_and(|s| s.app_proto == winner)
        }) else {
            return self.give_up();
        };
        let mut decided = DecidedState::new(classifier, winner, c.signature, None);
        decided.note_metadata(d, &c.meta);
        self.phase = Phase::Decided(decided);
        let extras = self.extras();
        extras.buffers = [Vec::new(), Vec::new()];
        extras.add_indicator(c.indicator);
        self.extras().merge(c.meta);
        // A proven sender outranks the pattern's direction; the transport outranks both.
        let claims_swap = c.proven_reversed.unwrap_or(c.reversed);
        let swap = claims_swap && !self.roles_fixed;
        if claims_swap && self.roles_fixed {
            self.extras().add_indicator(ROLES_CONFLICT_INDICATOR);
        }
        self.roles_proven = c.proven_reversed.is_some() || c.reversed || self.roles_fixed;
        if swap {
            self.swap_own_roles();
        }
        Decision {
            app_proto: winner,
            swap_roles: swap,
        }
    }

    /// After the decision: the decided parser collects metadata from the first packets (and
    /// may prove the roles, `Probe::MatchFrom`), the TLS parser watches for an in-band upgrade
    /// on `starttls` protocols, and the parsers of the `upgrades_to` targets watch for the
    /// protocol the flow switches to. Returns a decision when the label or the roles change.
    fn enrich(
        &mut self,
        classifier: &mut Classifier,
        ctx: &ProbeContext,
        d: Side,
        index: u16,
        payload: &[u8],
    ) -> Option<Decision> {
        let cfg = classifier.config;
        let Phase::Decided(decided) = self.phase else {
            return None;
        };
        let sig_index = usize::from(decided.signature);
        let sigs: &CompiledSignatures = &classifier.sigs;
        let parser = sigs.signature(sig_index)?.parser;
        // `index` is this packet's (the count was already moved past it).
        let run_decided = decided.parser_reads(&cfg, d, index);
        let watch_tls = decided.starttls_wanted(classifier);
        let watch_upgrade = decided.upgrade_wanted(classifier);
        if !run_decided && !watch_tls && !watch_upgrade {
            return None;
        }
        if watch_tls || watch_upgrade {
            if let Phase::Decided(st) = &mut self.phase {
                st.watched = st.watched.saturating_add(1);
            }
        }
        let cap = usize::try_from(cfg.max_bytes).unwrap_or(usize::MAX);
        let (mut buffer, mut start) = self.take_buffer(d);
        let joined = !buffer.is_empty() && buffer.len() < cap;
        if joined {
            let take = (cap - buffer.len()).min(payload.len());
            buffer.extend_from_slice(payload.get(..take).unwrap_or(payload));
        } else {
            buffer.clear();
            start = index;
        }
        let view: &[u8] = if joined { &buffer } else { payload };
        let joined_ctx = ProbeContext {
            packet_index: u32::from(start),
            ..*ctx
        };
        let mut need_more = false;
        let targets = sigs.upgrade_targets(sig_index);
        // Three fixed slots (decided parser, TLS watch, upgrade watch; `NoMatch` when not run):
        // no allocation per packet.
        let probe_all = |ctx: &ProbeContext, data: &[u8]| -> [(Slot, Probe); 3] {
            let upgrade = if watch_upgrade {
                targets
                    .iter()
                    .filter_map(|&t| sigs.signature(t).map(|s| (t, s)))
                    .filter(|(_, s)| s.runs_over(ctx.transport))
                    .map(|(t, s)| (Slot::Upgrade(t), (s.parser)(ctx, data)))
                    .find(|(_, r)| !matches!(r, Probe::NoMatch))
                    .unwrap_or((Slot::Idle, Probe::NoMatch))
            } else {
                (Slot::Idle, Probe::NoMatch)
            };
            [
                (
                    Slot::Decided,
                    if run_decided {
                        parser(ctx, data)
                    } else {
                        Probe::NoMatch
                    },
                ),
                (
                    Slot::StartTls,
                    if watch_tls {
                        protocols::tls::probe(ctx, data)
                    } else {
                        Probe::NoMatch
                    },
                ),
                upgrade,
            ]
        };
        let mut results = probe_all(&joined_ctx, view);
        if joined && results.iter().all(|(_, r)| matches!(r, Probe::NoMatch)) {
            // Not a continuation: look at the packet alone.
            results = probe_all(ctx, payload);
            buffer.clear();
            start = index;
            if results.iter().any(|(_, r)| matches!(r, Probe::NeedMore)) {
                buffer.extend_from_slice(payload.get(..cap).unwrap_or(payload));
            }
        } else if !joined && results.iter().any(|(_, r)| matches!(r, Probe::NeedMore)) {
            buffer.extend_from_slice(payload.get(..cap).unwrap_or(payload));
        }
        let mut d = d;
        let mut relabelled = false;
        let mut swapped = false;
        for (slot, r) in results {
            let (indicator, meta, sender) = match r {
                Probe::NoMatch => continue,
                Probe::NeedMore => {
                    need_more = true;
                    continue;
                }
                Probe::Match { indicator, meta } => (indicator, meta, None),
                Probe::MatchFrom {
                    indicator,
                    meta,
                    sender,
                } => (indicator, meta, Some(sender)),
            };
            match slot {
                Slot::Idle => {}
                Slot::StartTls => {
                    let extras = self.extras();
                    extras.add_indicator(STARTTLS_INDICATOR);
                    if let Meta::Tls(m) = meta {
                        extras.merge_tls(m);
                    }
                    if let Phase::Decided(st) = &mut self.phase {
                        st.starttls_found = true;
                    }
                }
                Slot::Upgrade(t) => {
                    let Some(target) = classifier.sigs.signature(t) else {
                        continue;
                    };
                    // The flow switched protocols (e.g. STUN then DTLS on one 5-tuple): the
                    // new protocol is the label; the first one's evidence stays. The roles
                    // stay those of the first protocol.
                    let before = match self.phase {
                        Phase::Decided(st) => Some(st),
                        Phase::Scanning | Phase::GaveUp => None,
                    };
                    self.phase =
                        Phase::Decided(DecidedState::new(classifier, target.app_proto, t, before));
                    let extras = self.extras();
                    extras.add_indicator(indicator);
                    extras.merge(meta);
                    relabelled = true;
                }
                Slot::Decided => {
                    let claims_swap = sender.is_some_and(|s| s != ctx.sender);
                    if claims_swap && self.roles_fixed {
                        self.extras().add_indicator(ROLES_CONFLICT_INDICATOR);
                    }
                    let prove = sender.filter(|_| !self.roles_proven && !self.roles_fixed);
                    if let Phase::Decided(st) = &mut self.phase {
                        st.note_metadata(d, &meta);
                    }
                    let extras = self.extras();
                    // After the decision only metadata- or role-bearing answers add evidence
                    // (not every encrypted record of a TLS flow).
                    if meta != Meta::None || prove.is_some() {
                        extras.add_indicator(indicator);
                        extras.merge(meta);
                    }
                    if let Some(sender) = prove {
                        self.roles_proven = true;
                        if sender != ctx.sender {
                            self.swap_own_roles();
                            d = d.other();
                            swapped = true;
                        }
                    }
                }
            }
        }
        if need_more && !buffer.is_empty() && buffer.len() < cap {
            self.put_buffer(d, buffer, start);
        }
        (relabelled || swapped).then(|| Decision {
            app_proto: self.app_proto(),
            swap_roles: swapped,
        })
    }
}

/// Which watch of [`FlowClassification::enrich`] produced an answer.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The decided protocol's parser.
    Decided,
    /// The TLS parser watching a `starttls` protocol.
    StartTls,
    /// The parser of this `upgrades_to` target signature.
    Upgrade(usize),
    /// Nothing ran.
    Idle,
}

/// Scans `view` with the prefilter and runs the candidate parsers.
fn evaluate(classifier: &mut Classifier, ctx: &ProbeContext, view: &[u8]) -> Outcome {
    let sigs = &classifier.sigs;
    let ti = transport_index(ctx.transport);
    let mask = sigs.transport_mask[ti];
    let mut same = 0u128;
    let mut reversed = 0u128;
    sigs.db.scan(&classifier.scratch, view, |id| {
        let Some(owner) = sigs.db.owner(id) else {
            return;
        };
        let bit = 1u128
            .checked_shl(u32::try_from(owner.signature).unwrap_or(u32::MAX))
            .unwrap_or(0);
        let expected = owner.direction.is_none_or(|side| side == ctx.sender);
        if expected {
            same |= bit;
        } else {
            reversed |= bit;
        }
    });
    same &= mask;
    reversed &= mask & !same;
    let mut confirmations = Vec::new();
    let mut need_more = false;
    for (bits, was_reversed) in [(same, false), (reversed, true)] {
        let mut m = bits;
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            run_parser(
                sigs,
                ctx,
                view,
                i,
                was_reversed,
                &mut confirmations,
                &mut need_more,
            );
        }
    }
    if confirmations.is_empty() && !need_more {
        let tried = same | reversed;
        for &i in &sigs.unpatterned[ti] {
            if tried & (1u128 << i) == 0 {
                run_parser(
                    sigs,
                    ctx,
                    view,
                    i,
                    false,
                    &mut confirmations,
                    &mut need_more,
                );
            }
        }
    }
    if !confirmations.is_empty() {
        Outcome::Confirmed(confirmations)
    } else if need_more {
        Outcome::NeedMore
    } else {
        Outcome::Nothing
    }
}

/// Runs signature `i`'s parser on `view` and records its answer.
fn run_parser(
    sigs: &CompiledSignatures,
    ctx: &ProbeContext,
    view: &[u8],
    i: usize,
    reversed: bool,
    confirmations: &mut Vec<Confirmation>,
    need_more: &mut bool,
) {
    let Some(sig) = sigs.signature(i) else {
        return;
    };
    let parser: ProbeFn = sig.parser;
    match parser(ctx, view) {
        Probe::Match { indicator, meta } => confirmations.push(Confirmation {
            signature: i,
            indicator,
            meta,
            reversed,
            proven_reversed: None,
        }),
        Probe::MatchFrom {
            indicator,
            meta,
            sender,
        } => confirmations.push(Confirmation {
            signature: i,
            indicator,
            meta,
            reversed,
            proven_reversed: Some(sender != ctx.sender),
        }),
        Probe::NeedMore => *need_more = true,
        Probe::NoMatch => {}
    }
}
