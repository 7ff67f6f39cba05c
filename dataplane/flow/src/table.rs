//! The per-worker flow table: lookup, creation, idle expiry and eviction.
//!
//! Owns: a slab of preallocated flow slots, an open-addressing hash index over it (linear
//! probing, backward-shift deletion, load factor at most one half), one least-recently-active
//! list per timeout class (its links in a dense array beside the slab, so the per-packet move
//! to the tail stays in cache), and the list of finished flows waiting to be
//! drained. Must not: allocate per packet once warm, lock, or look at payload bytes — it runs on
//! one worker lcore and nothing else touches it.
//!
//! When the table is full a new flow takes the slot of a closed TCP flow if there is one, else of
//! a half-open one (SYN or SYN-ACK seen, no handshake completed), else of the least recently
//! active flow: a SYN flood displaces its own half-open entries, not the established flows, and
//! each eviction is counted by kind ([`FlowTableStats`]).
//!
//! Time is capture time. The table keeps a clock that is the largest timestamp it has seen (from
//! [`FlowTable::update`]), so each list stays sorted by last activity even when packets arrive
//! slightly out of order, and [`FlowTable::expire`] only ever looks at list heads: it costs a
//! few comparisons when nothing is due.

use std::hash::BuildHasher;
use std::net::IpAddr;

use portolan_packet::{Packet, Transport};

use crate::config::{FlowTableConfig, FlowTableConfigError};
use crate::flow::{FinishedFlow, Flow, FlowEndReason, Side, TcpState};

/// No slot / empty list link.
const NIL: u32 = u32::MAX;
/// Empty hash index cell.
const EMPTY: u64 = u64::MAX;
/// Finished flows preallocated for (the list grows past it if the caller drains rarely).
const FINISHED_PREALLOC: usize = 4096;

/// Counters of one flow table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTableStats {
    /// Flows in the table now.
    pub active: usize,
    /// Flows created since the table was made.
    pub created: u64,
    /// Flows finished because they were idle past their timeout.
    pub expired: u64,
    /// Flows finished to make room because the table was full (every kind below).
    pub evicted: u64,
    /// Of `evicted`: TCP flows whose handshake had not completed (SYN or SYN-ACK seen only) — a
    /// SYN flood's entries, finished before any established flow.
    pub evicted_half_open: u64,
    /// Of `evicted`: TCP flows already closed by FIN or RST, waiting out their short timeout.
    pub evicted_closed: u64,
    /// Flows finished because a SYN reopened their 5-tuple after they closed.
    pub reused: u64,
    /// Flows finished by [`FlowTable::finish_all`].
    pub shutdown: u64,
}

/// Bidirectional flow key: the endpoints in a canonical order, so both directions hash alike.
///
/// Plain integers, not `IpAddr`s: comparing and hashing two `u128` addresses and one word of
/// ports and metadata is a handful of instructions, where the derived `Hash`/`Eq` of `IpAddr`
/// walk the enum and its octets (see docs/PERFORMANCE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    /// Address of the lower endpoint (IPv4 as its 32-bit value).
    lo_addr: u128,
    /// Address of the higher endpoint.
    hi_addr: u128,
    /// `lo_port << 48 | hi_port << 32 | meta`, `meta` being bit 0-1 the transport, bit 2 IPv6,
    /// bit 3 a VLAN tag present, bits 16-31 the VLAN value.
    ports_meta: u64,
}

impl FlowKey {
    #[inline]
    fn of(pkt: &Packet<'_>) -> FlowKey {
        let (src_v6, src_addr) = endpoint_addr(pkt.src_ip);
        let (dst_v6, dst_addr) = endpoint_addr(pkt.dst_ip);
        // Endpoints ordered by (family, address, port): the order of `(IpAddr, u16)`.
        let src = (src_v6, src_addr, pkt.src_port);
        let dst = (dst_v6, dst_addr, pkt.dst_port);
        let (lo, hi) = if src <= dst { (src, dst) } else { (dst, src) };
        let transport: u64 = match pkt.transport {
            Transport::Tcp => 1,
            Transport::Udp => 2,
        };
        let family = if lo.0 || hi.0 { 1 << 2 } else { 0 };
        let vlan = pkt.vlan.map_or(0, |v| (1 << 3) | (u64::from(v) << 16));
        FlowKey {
            lo_addr: lo.1,
            hi_addr: hi.1,
            ports_meta: (u64::from(lo.2) << 48)
                | (u64::from(hi.2) << 32)
                | transport
                | family
                | vlan,
        }
    }
}

/// An address as (is IPv6, value): IPv4 sorts before IPv6, then by address value.
#[inline]
fn endpoint_addr(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(a.to_bits())),
        IpAddr::V6(a) => (true, a.to_bits()),
    }
}

/// A packet's flow key and its hash, computed once by [`FlowTable::lookup`] so a burst can be
/// hashed first, the table memory each packet will touch prefetched
/// ([`FlowTable::prefetch_index`], then [`FlowTable::prefetch_slot`]), and the packets then
/// accounted with [`FlowTable::update_prepared`] — the burst-prefetch pattern of DPDK's l3fwd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowLookup {
    key: FlowKey,
    hash: u32,
}

/// Which idle timeout applies to a flow, and which flows a full table evicts first; each class
/// has its own activity list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeoutClass {
    /// TCP picked up without a handshake packet (mid-stream): may be an established connection.
    TcpUnestablished = 0,
    TcpEstablished = 1,
    TcpClosed = 2,
    Udp = 3,
    /// SYN or SYN-ACK seen, handshake not completed (the unestablished timeout applies).
    TcpHalfOpen = 4,
}

const CLASSES: usize = 5;

impl TimeoutClass {
    fn of<A>(flow: &Flow<A>) -> TimeoutClass {
        match flow.transport {
            Transport::Udp => TimeoutClass::Udp,
            Transport::Tcp => match flow.tcp_state {
                TcpState::None => TimeoutClass::TcpUnestablished,
                TcpState::SynSent | TcpState::SynRecv => TimeoutClass::TcpHalfOpen,
                TcpState::Established | TcpState::FinWait => TimeoutClass::TcpEstablished,
                TcpState::Closed | TcpState::Reset => TimeoutClass::TcpClosed,
            },
        }
    }
}

/// Head and tail of one activity list (least recently active at the head).
#[derive(Debug, Clone, Copy)]
struct ActivityList {
    head: u32,
    tail: u32,
}

/// One slab entry. Free slots hold a vacant flow and are on no list.
#[derive(Debug)]
struct Slot<A> {
    flow: Flow<A>,
    key: FlowKey,
    hash: u32,
}

/// A slot's place on its activity list, kept apart from the slots: moving a flow to the tail
/// of its list on every packet touches its neighbours' links, and in this dense array (24 bytes
/// per slot) those stay in cache where the ~200-byte slots would not.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
    class: TimeoutClass,
    /// Table clock at the flow's latest packet (orders the activity lists).
    last_us: u64,
}

impl Link {
    const UNLINKED: Link = Link {
        prev: NIL,
        next: NIL,
        class: TimeoutClass::Udp,
        last_us: 0,
    };
}

/// The flow table of one worker. `A` is the per-flow state the classifier keeps in [`Flow::app`].
pub struct FlowTable<A> {
    cfg: FlowTableConfig,
    timeouts: [u64; CLASSES],
    slots: Vec<Slot<A>>,
    /// Activity-list links, one per slot (same index).
    links: Vec<Link>,
    free: Vec<u32>,
    index: Vec<u64>,
    mask: usize,
    lists: [ActivityList; CLASSES],
    hasher: foldhash::quality::RandomState,
    finished: Vec<FinishedFlow<A>>,
    next_id: u64,
    clock_us: u64,
    stats: FlowTableStats,
}

impl<A: Default> FlowTable<A> {
    /// Makes a table with room for `cfg.capacity` flows, all allocated now.
    ///
    /// # Panics
    /// If `cfg.validate()` fails; check the configuration first, or use [`FlowTable::try_new`].
    pub fn new(cfg: FlowTableConfig) -> Self {
        match FlowTable::try_new(cfg) {
            Ok(table) => table,
            Err(e) => panic!("{e}"),
        }
    }

    /// Makes a table with room for `cfg.capacity` flows, or says which field is bad.
    pub fn try_new(cfg: FlowTableConfig) -> Result<Self, FlowTableConfigError> {
        cfg.validate()?;
        let index_len = (cfg.capacity * 2).next_power_of_two().max(2);
        let mut timeouts = [0; CLASSES];
        timeouts[TimeoutClass::TcpUnestablished as usize] = cfg.tcp_unestablished_timeout_us;
        timeouts[TimeoutClass::TcpHalfOpen as usize] = cfg.tcp_unestablished_timeout_us;
        timeouts[TimeoutClass::TcpEstablished as usize] = cfg.tcp_idle_timeout_us;
        timeouts[TimeoutClass::TcpClosed as usize] = cfg.tcp_closed_timeout_us;
        timeouts[TimeoutClass::Udp as usize] = cfg.udp_idle_timeout_us;
        Ok(FlowTable {
            cfg,
            timeouts,
            slots: Vec::with_capacity(cfg.capacity),
            links: Vec::with_capacity(cfg.capacity),
            free: Vec::with_capacity(cfg.capacity),
            index: vec![EMPTY; index_len],
            mask: index_len - 1,
            lists: [ActivityList {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            hasher: foldhash::quality::RandomState::default(),
            finished: Vec::with_capacity(cfg.capacity.min(FINISHED_PREALLOC)),
            next_id: 1,
            clock_us: 0,
            stats: FlowTableStats::default(),
        })
    }

    /// Accounts one packet: finds or creates its bidirectional flow, updates the counters of the
    /// packet's direction (`frame_len` bytes), the timestamps and the TCP state, and returns the
    /// flow with the packet's direction relative to the flow's roles.
    ///
    /// A flow found idle past its timeout is finished (reason timeout) and a new one started, as
    /// is a closed or reset TCP flow that sees a new SYN (reason reused). When the table is full,
    /// a flow is evicted to make room: closed first, then half-open, then the least recently
    /// active.
    #[inline]
    pub fn update(&mut self, pkt: &Packet<'_>, ts_us: u64, frame_len: u32) -> (&mut Flow<A>, Side) {
        let lookup = self.lookup(pkt);
        self.update_prepared(&lookup, pkt, ts_us, frame_len)
    }

    /// [`FlowTable::update`] with the key and hash already computed by
    /// [`FlowTable::lookup`] for this same `pkt` (a lookup of another packet accounts `pkt` in
    /// the wrong flow). Takes the lookup by reference: the worker keeps a burst's lookups in an
    /// array, and copying one out before the call cost a store-forwarding stall per packet.
    #[inline]
    pub fn update_prepared(
        &mut self,
        lookup: &FlowLookup,
        pkt: &Packet<'_>,
        ts_us: u64,
        frame_len: u32,
    ) -> (&mut Flow<A>, Side) {
        if ts_us > self.clock_us {
            self.clock_us = ts_us;
        }
        let FlowLookup { key, hash } = lookup;
        let hash = *hash;
        let flags = pkt.tcp.map(|t| t.flags);
        // `linked`: the slot is still on its activity list (an existing flow).
        let (slot, linked) = match self.find(key, hash) {
            Some(slot) => {
                let entry = &self.slots[slot];
                let link = self.links[slot];
                let idle = self.clock_us.saturating_sub(link.last_us);
                // A flow bypassed outside the worker (XDP, NIC) sends most of its packets where
                // the table cannot see them: only the expiry pass, which can ask the driver
                // ([`Self::expire_with`]), ends it on idle time.
                if idle > self.timeouts[link.class as usize] && !entry.flow.driver_bypass {
                    self.finish_slot(slot, FlowEndReason::Timeout);
                    self.release(slot);
                    (self.create(*key, hash, pkt, ts_us), false)
                } else if entry.flow.is_reused_by(flags) {
                    self.finish_slot(slot, FlowEndReason::Reused);
                    self.release(slot);
                    (self.create(*key, hash, pkt, ts_us), false)
                } else {
                    (slot, true)
                }
            }
            None => (self.create(*key, hash, pkt, ts_us), false),
        };
        let clock = self.clock_us;
        let entry = &mut self.slots[slot];
        let dir = entry
            .flow
            .account(pkt.src_ip, pkt.src_port, flags, ts_us, frame_len);
        let class = TimeoutClass::of(&entry.flow);
        let link = &mut self.links[slot];
        link.last_us = clock;
        let old_class = link.class;
        // A flow that already is the most recent of its class (a burst of one flow) stays put.
        if !linked {
            self.push_back(class, slot);
        } else if old_class != class || self.lists[class as usize].tail != slot as u32 {
            self.unlink(slot);
            self.push_back(class, slot);
        }
        (&mut self.slots[slot].flow, dir)
    }

    /// Finishes (reason timeout) every flow idle for more than its timeout at `now_us`.
    ///
    /// Looks only at the least-recently-active flow of each timeout class, so it is cheap when
    /// nothing is due; call it often (every RX burst, or when the capture clock moves).
    pub fn expire(&mut self, now_us: u64) {
        self.expire_with(now_us, |_| None);
    }

    /// As [`Self::expire`], but a flow due to expire that is bypassed outside the worker
    /// ([`Flow::driver_bypass`]) is first shown to `seen_elsewhere`, which returns the table
    /// time of its latest packet the worker did not see (the XDP program's last-seen time), if
    /// any: a flow active there within its timeout stays, moved to its place on its activity
    /// list. `seen_elsewhere` runs only for such flows, at most once per flow and pass.
    pub fn expire_with(
        &mut self,
        now_us: u64,
        mut seen_elsewhere: impl FnMut(&Flow<A>) -> Option<u64>,
    ) {
        for class in 0..CLASSES {
            loop {
                let head = self.lists[class].head;
                if head == NIL {
                    break;
                }
                let slot = head as usize;
                if now_us.saturating_sub(self.links[slot].last_us) <= self.timeouts[class] {
                    break;
                }
                if self.slots[slot].flow.driver_bypass {
                    if let Some(seen) = seen_elsewhere(&self.slots[slot].flow) {
                        let seen = seen.min(now_us);
                        if seen > self.links[slot].last_us
                            && now_us.saturating_sub(seen) <= self.timeouts[class]
                        {
                            self.unlink(slot);
                            self.links[slot].last_us = seen;
                            self.insert_by_activity(self.links[slot].class, slot);
                            continue;
                        }
                    }
                }
                self.finish_slot(slot, FlowEndReason::Timeout);
                self.release(slot);
            }
        }
    }

    /// Finishes every active flow with reason shutdown (end of capture).
    pub fn finish_all(&mut self) {
        for class in 0..CLASSES {
            while self.lists[class].head != NIL {
                let slot = self.lists[class].head as usize;
                self.finish_slot(slot, FlowEndReason::Shutdown);
                self.release(slot);
            }
        }
    }

    /// Takes the finished flows, oldest first. Dropping the iterator early drops the rest.
    pub fn drain_finished(&mut self) -> impl Iterator<Item = FinishedFlow<A>> + '_ {
        self.finished.drain(..)
    }

    fn create(&mut self, key: FlowKey, hash: u32, pkt: &Packet<'_>, ts_us: u64) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        let flow = Flow::from_first_packet(id, pkt, ts_us);
        let slot = if let Some(slot) = self.free.pop() {
            let slot = slot as usize;
            self.slots[slot].flow = flow;
            slot
        } else if self.slots.len() < self.cfg.capacity {
            self.slots.push(Slot { flow, key, hash });
            self.links.push(Link::UNLINKED);
            self.slots.len() - 1
        } else {
            match self.eviction_victim() {
                Some(victim) => {
                    self.finish_slot(victim, FlowEndReason::Evicted);
                    self.slots[victim].flow = flow;
                    victim
                }
                // Unreachable: a full slab with no free slot has an active flow on some list.
                // Growing past capacity is the safe fallback.
                None => {
                    self.slots.push(Slot { flow, key, hash });
                    self.links.push(Link::UNLINKED);
                    self.slots.len() - 1
                }
            }
        };
        let entry = &mut self.slots[slot];
        entry.key = key;
        entry.hash = hash;
        let link = &mut self.links[slot];
        link.prev = NIL;
        link.next = NIL;
        self.index_insert(hash, slot);
        self.stats.created += 1;
        self.stats.active += 1;
        slot
    }
}

impl<A> FlowTable<A> {
    /// Number of active flows.
    pub fn len(&self) -> usize {
        self.stats.active
    }

    /// True when no flow is active.
    pub fn is_empty(&self) -> bool {
        self.stats.active == 0
    }

    /// The configuration the table was made with.
    pub fn config(&self) -> &FlowTableConfig {
        &self.cfg
    }

    /// Counters since the table was made.
    pub fn stats(&self) -> FlowTableStats {
        self.stats
    }

    /// The table's clock: the largest packet timestamp it has seen (µs; 0 before any).
    pub fn clock_us(&self) -> u64 {
        self.clock_us
    }

    /// Number of finished flows waiting in [`FlowTable::drain_finished`].
    pub fn finished_len(&self) -> usize {
        self.finished.len()
    }

    /// The active flows, least recently active first within each timeout class.
    pub fn iter(&self) -> impl Iterator<Item = &Flow<A>> + '_ {
        let mut class = 0;
        let mut cur = NIL;
        std::iter::from_fn(move || {
            while cur == NIL {
                if class >= CLASSES {
                    return None;
                }
                cur = self.lists[class].head;
                class += 1;
            }
            let entry = self.slots.get(cur as usize)?;
            cur = self.links.get(cur as usize)?.next;
            Some(&entry.flow)
        })
    }

    /// The flow key and hash of `pkt`, for [`FlowTable::prefetch_index`],
    /// [`FlowTable::prefetch_slot`] and [`FlowTable::update_prepared`].
    #[inline]
    pub fn lookup(&self, pkt: &Packet<'_>) -> FlowLookup {
        let key = FlowKey::of(pkt);
        FlowLookup {
            hash: self.hash(&key),
            key,
        }
    }

    /// Calls `prefetch` with the address of the hash-index cell where the lookup of `lookup`
    /// starts: the first cache miss of an update in a large table. The table itself never
    /// dereferences the address it hands out; `prefetch` is expected to be a prefetch
    /// instruction (which cannot fault), e.g. `rte_prefetch0`.
    #[inline]
    pub fn prefetch_index(&self, lookup: &FlowLookup, prefetch: impl FnOnce(*const u8)) {
        if let Some(cell) = self.index.get(lookup.hash as usize & self.mask) {
            prefetch((cell as *const u64).cast());
        }
    }

    /// Calls `prefetch` with the addresses of the slot the lookup will most likely land on —
    /// the one named by its home index cell when that cell carries the lookup's hash tag —
    /// so the key comparison and the counter update hit the cache. Reads the index cell:
    /// call it some packets after [`FlowTable::prefetch_index`] for the same lookup. Does
    /// nothing for a new flow (empty cell or another flow's tag).
    #[inline]
    pub fn prefetch_slot(&self, lookup: &FlowLookup, mut prefetch: impl FnMut(*const u8)) {
        let Some(&cell) = self.index.get(lookup.hash as usize & self.mask) else {
            return;
        };
        if cell == EMPTY || (cell >> 32) as u32 != lookup.hash {
            return;
        }
        if let Some(slot) = self.slots.get((cell & 0xffff_ffff) as usize) {
            let start = (slot as *const Slot<A>).cast::<u8>();
            let len = std::mem::size_of::<Slot<A>>();
            // Every cache line of the slot (key, counters, state), at most four.
            for offset in (0..len).step_by(64).take(4) {
                prefetch(start.wrapping_add(offset));
            }
        }
    }

    #[inline]
    fn hash(&self, key: &FlowKey) -> u32 {
        let h = self
            .hasher
            .hash_one((key.lo_addr, key.hi_addr, key.ports_meta));
        (h ^ (h >> 32)) as u32
    }

    /// Slot of the flow with `key`, if it is in the table.
    fn find(&self, key: &FlowKey, hash: u32) -> Option<usize> {
        let mut pos = hash as usize & self.mask;
        loop {
            let cell = self.index[pos];
            if cell == EMPTY {
                return None;
            }
            if (cell >> 32) as u32 == hash {
                let slot = (cell & 0xffff_ffff) as usize;
                if self.slots[slot].key == *key {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    fn index_insert(&mut self, hash: u32, slot: usize) {
        let mut pos = hash as usize & self.mask;
        while self.index[pos] != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = (u64::from(hash) << 32) | slot as u64;
    }

    /// Removes `slot` from the hash index, shifting later cells of its probe run back so
    /// lookups never need tombstones.
    fn index_remove(&mut self, slot: usize) {
        let hash = self.slots[slot].hash;
        let want = (u64::from(hash) << 32) | slot as u64;
        let mut hole = hash as usize & self.mask;
        loop {
            let cell = self.index[hole];
            if cell == want {
                break;
            }
            if cell == EMPTY {
                // Not indexed (cannot happen for an active slot); nothing to remove.
                return;
            }
            hole = (hole + 1) & self.mask;
        }
        let mut pos = hole;
        loop {
            pos = (pos + 1) & self.mask;
            let cell = self.index[pos];
            if cell == EMPTY {
                break;
            }
            let home = (cell >> 32) as usize & self.mask;
            // The cell may move into the hole when the hole lies on its probe path [home, pos).
            if pos.wrapping_sub(home) & self.mask >= pos.wrapping_sub(hole) & self.mask {
                self.index[hole] = cell;
                hole = pos;
            }
        }
        self.index[hole] = EMPTY;
    }

    fn push_back(&mut self, class: TimeoutClass, slot: usize) {
        let list = &mut self.lists[class as usize];
        let old_tail = list.tail;
        list.tail = slot as u32;
        if old_tail == NIL {
            list.head = slot as u32;
        } else {
            self.links[old_tail as usize].next = slot as u32;
        }
        let link = &mut self.links[slot];
        link.prev = old_tail;
        link.next = NIL;
        link.class = class;
    }

    /// Links `slot` (unlinked, its `last_us` set) into `class`'s list after the last entry no
    /// more recent than it, walking from the tail: the list stays sorted by activity.
    fn insert_by_activity(&mut self, class: TimeoutClass, slot: usize) {
        let last = self.links[slot].last_us;
        let mut after = self.lists[class as usize].tail;
        while after != NIL && self.links[after as usize].last_us > last {
            after = self.links[after as usize].prev;
        }
        if after == self.lists[class as usize].tail {
            self.push_back(class, slot);
            return;
        }
        let next = if after == NIL {
            self.lists[class as usize].head
        } else {
            self.links[after as usize].next
        };
        // `next` is a linked entry (after was not the tail).
        if after == NIL {
            self.lists[class as usize].head = slot as u32;
        } else {
            self.links[after as usize].next = slot as u32;
        }
        self.links[next as usize].prev = slot as u32;
        let link = &mut self.links[slot];
        link.prev = after;
        link.next = next;
        link.class = class;
    }

    fn unlink(&mut self, slot: usize) {
        let Link {
            prev, next, class, ..
        } = self.links[slot];
        let class = class as usize;
        if prev == NIL {
            self.lists[class].head = next;
        } else {
            self.links[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[class].tail = prev;
        } else {
            self.links[next as usize].prev = prev;
        }
        let e = &mut self.links[slot];
        e.prev = NIL;
        e.next = NIL;
    }

    /// The flow a full table finishes to make room: the least recently active closed TCP flow,
    /// else half-open one, else [`Self::least_recently_active`].
    fn eviction_victim(&self) -> Option<usize> {
        for class in [TimeoutClass::TcpClosed, TimeoutClass::TcpHalfOpen] {
            let head = self.lists[class as usize].head;
            if head != NIL {
                return Some(head as usize);
            }
        }
        self.least_recently_active()
    }

    /// The active flow with the oldest last activity (ties go to the lower timeout class).
    fn least_recently_active(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for list in &self.lists {
            if list.head == NIL {
                continue;
            }
            let slot = list.head as usize;
            let last = self.links[slot].last_us;
            if best.is_none_or(|(b, _)| last < b) {
                best = Some((last, slot));
            }
        }
        best.map(|(_, slot)| slot)
    }

    /// Puts slot `slot` on the free list (after [`Self::finish_slot`]).
    fn release(&mut self, slot: usize) {
        self.free.push(slot as u32);
    }
}

impl<A: Default> FlowTable<A> {
    /// Moves the flow in `slot` to the finished list; the slot is left vacant and unindexed but
    /// not yet on the free list.
    fn finish_slot(&mut self, slot: usize, reason: FlowEndReason) {
        if reason == FlowEndReason::Evicted {
            match self.links[slot].class {
                TimeoutClass::TcpHalfOpen => self.stats.evicted_half_open += 1,
                TimeoutClass::TcpClosed => self.stats.evicted_closed += 1,
                _ => {}
            }
        }
        self.unlink(slot);
        self.index_remove(slot);
        let flow = std::mem::replace(&mut self.slots[slot].flow, Flow::vacant());
        self.finished.push(FinishedFlow { flow, reason });
        self.stats.active -= 1;
        match reason {
            FlowEndReason::Timeout => self.stats.expired += 1,
            FlowEndReason::Evicted => self.stats.evicted += 1,
            FlowEndReason::Reused => self.stats.reused += 1,
            FlowEndReason::Shutdown => self.stats.shutdown += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portolan_packet::TcpHeader;

    impl<A> FlowTable<A> {
        /// Checks the index, the lists and the free list agree with each other.
        fn check_invariants(&self) {
            let mut on_lists = vec![false; self.slots.len()];
            let mut count = 0;
            for (class, list) in self.lists.iter().enumerate() {
                let mut prev = NIL;
                let mut cur = list.head;
                let mut last = 0;
                while cur != NIL {
                    let e = &self.links[cur as usize];
                    let s = &self.slots[cur as usize];
                    assert_eq!(e.prev, prev, "back link of slot {cur}");
                    assert_eq!(e.class as usize, class);
                    assert!(e.last_us >= last, "list {class} sorted by activity");
                    last = e.last_us;
                    assert!(!on_lists[cur as usize], "slot {cur} on two lists");
                    on_lists[cur as usize] = true;
                    assert_eq!(self.find(&s.key, s.hash), Some(cur as usize));
                    count += 1;
                    prev = cur;
                    cur = e.next;
                }
                assert_eq!(list.tail, prev);
            }
            assert_eq!(count, self.stats.active);
            let indexed = self.index.iter().filter(|&&c| c != EMPTY).count();
            assert_eq!(indexed, self.stats.active);
            for &f in &self.free {
                assert!(!on_lists[f as usize], "free slot {f} is active");
            }
            assert_eq!(self.free.len() + count, self.slots.len());
            assert_eq!(self.links.len(), self.slots.len());
        }
    }

    fn pkt(a: u8, port: u16, flags: Option<u8>, reverse: bool) -> Packet<'static> {
        let x = IpAddr::from([10, 0, 0, a]);
        let y = IpAddr::from([10, 0, 1, 1]);
        let (src_ip, dst_ip, src_port, dst_port) = if reverse {
            (y, x, 80, port)
        } else {
            (x, y, port, 80)
        };
        Packet {
            src_ip,
            dst_ip,
            transport: if flags.is_some() {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            src_port,
            dst_port,
            tcp: flags.map(|flags| TcpHeader {
                seq: 0,
                ack: 0,
                flags,
                window: 0,
            }),
            vlan: None,
            payload: &[],
            payload_truncated: false,
        }
    }

    #[test]
    fn a_flow_bypassed_elsewhere_stays_while_the_driver_still_sees_it() {
        let cfg = FlowTableConfig {
            capacity: 64,
            udp_idle_timeout_us: 100,
            ..FlowTableConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        // Flows 1..=4 at times 10, 20, 30, 40; flow 2 is bypassed in the driver.
        let mut id2 = 0;
        for a in 1..=4u8 {
            let f = t
                .update(&pkt(a, 1000, None, false), u64::from(a) * 10, 60)
                .0;
            f.driver_bypass = a == 2;
            if a == 2 {
                id2 = f.id;
            }
        }
        // At 125 flows 1 and 2 are past 100 µs idle; the driver saw flow 2 at 90.
        let mut asked = Vec::new();
        t.expire_with(125, |f| {
            asked.push(f.id);
            Some(90)
        });
        t.check_invariants();
        assert_eq!(asked, vec![id2], "asked only about the bypassed flow");
        let ended: Vec<u64> = t.drain_finished().map(|f| f.flow.id).collect();
        assert_eq!(ended.len(), 1, "flow 1 ended, flow 2 stays");
        assert_ne!(ended[0], id2);
        // Moved behind flows 3 and 4 (last activity 90 > 40): at 135 flows 3 and 4 go first.
        t.expire_with(135, |_| Some(90));
        t.check_invariants();
        assert_eq!(
            t.drain_finished().count(),
            1,
            "flow 3 (30) ends; flow 4 (40) is at 95 idle"
        );
        t.expire_with(145, |_| Some(90));
        t.check_invariants();
        assert_eq!(t.drain_finished().count(), 1, "flow 4 ends");
        // The driver has seen nothing newer: the flow ends 100 µs after 90.
        t.expire_with(190, |_| Some(90));
        assert_eq!(t.drain_finished().count(), 0);
        t.expire_with(191, |_| Some(90));
        let last: Vec<u64> = t.drain_finished().map(|f| f.flow.id).collect();
        assert_eq!(last, vec![id2]);
        t.check_invariants();
        // A packet of a bypassed flow long after its timeout (a FIN the driver let through)
        // still finds the same flow: only the expiry pass ends it.
        let f = t.update(&pkt(5, 1000, None, false), 200, 60).0;
        f.driver_bypass = true;
        let id5 = f.id;
        assert_eq!(t.update(&pkt(5, 1000, None, true), 400, 60).0.id, id5);
        t.check_invariants();
    }

    #[test]
    fn prepared_updates_match_plain_updates_and_prefetch_addresses_are_in_the_table() {
        let cfg = FlowTableConfig {
            capacity: 64,
            ..FlowTableConfig::default()
        };
        let mut plain: FlowTable<()> = FlowTable::new(cfg);
        let mut prepared: FlowTable<()> = FlowTable::new(cfg);
        let index_range = prepared.index.as_ptr_range();
        for step in 0..500u64 {
            let p = pkt(
                (step % 11) as u8,
                1000 + (step % 3) as u16,
                None,
                step % 2 == 0,
            );
            let a = plain.update(&p, step, 60).0.id;
            let lookup = prepared.lookup(&p);
            let mut index_addrs = Vec::new();
            prepared.prefetch_index(&lookup, |a| index_addrs.push(a));
            assert_eq!(index_addrs.len(), 1);
            assert!(index_range.contains(&index_addrs[0].cast()));
            let mut slot_addrs = Vec::new();
            prepared.prefetch_slot(&lookup, |a| slot_addrs.push(a));
            let known = prepared.find(&lookup.key, lookup.hash);
            if let Some(slot) = known {
                let home = prepared.index[lookup.hash as usize & prepared.mask];
                if (home & 0xffff_ffff) as usize == slot {
                    let start = (&prepared.slots[slot] as *const Slot<()>).cast::<u8>();
                    assert_eq!(slot_addrs.first().copied(), Some(start));
                }
            } else {
                assert!(slot_addrs.is_empty(), "no slot to prefetch for a new flow");
            }
            let b = prepared.update_prepared(&lookup, &p, step, 60).0.id;
            assert_eq!(a, b);
        }
        assert_eq!(plain.stats(), prepared.stats());
        prepared.check_invariants();
    }

    #[test]
    fn a_syn_flood_on_a_full_table_evicts_half_open_flows_and_keeps_established_ones() {
        let cfg = FlowTableConfig {
            capacity: 16,
            ..FlowTableConfig::default()
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let mut now = 1_000;
        // Eight established connections, then one closed and two picked up mid-stream.
        for port in 1000..1008 {
            for (flags, reverse) in [(0x02, false), (0x12, true), (0x10, false)] {
                now += 1;
                t.update(&pkt(1, port, Some(flags), reverse), now, 60);
            }
        }
        for (flags, reverse) in [(0x02, false), (0x12, true), (0x10, false), (0x04, true)] {
            now += 1;
            t.update(&pkt(2, 3000, Some(flags), reverse), now, 60);
        }
        for port in [4000, 4001] {
            now += 1;
            t.update(&pkt(3, port, Some(0x10), false), now, 60);
        }
        let established = |t: &FlowTable<()>| {
            t.iter()
                .filter(|f| f.tcp_state == TcpState::Established)
                .count()
        };
        let mid_stream =
            |t: &FlowTable<()>| t.iter().filter(|f| f.tcp_state == TcpState::None).count();
        assert_eq!((t.len(), established(&t), mid_stream(&t)), (11, 8, 2));
        // 10,000 SYNs from new tuples, all more recent than every established flow.
        for i in 0..10_000u16 {
            now += 1;
            t.update(&pkt(9, 10_000 + i, Some(0x02), false), now, 60);
        }
        t.check_invariants();
        let s = t.stats();
        assert_eq!(t.len(), 16);
        assert_eq!(established(&t), 8, "no established flow evicted: {s:?}");
        assert_eq!(mid_stream(&t), 2, "nor one picked up mid-stream: {s:?}");
        assert_eq!(s.evicted, 10_000 - 5, "{s:?}");
        assert_eq!(
            (s.evicted_closed, s.evicted_half_open),
            (1, 10_000 - 6),
            "{s:?}"
        );
        let evicted: Vec<_> = t
            .drain_finished()
            .filter(|f| f.reason == FlowEndReason::Evicted)
            .map(|f| f.flow.tcp_state)
            .collect();
        assert_eq!(evicted.len() as u64, s.evicted);
        assert_eq!(evicted[0], TcpState::Reset, "the closed flow goes first");
        assert!(evicted[1..].iter().all(|s| *s == TcpState::SynSent));
        // With no half-open or closed flow left, the least recently active one goes.
        let mut t: FlowTable<()> = FlowTable::new(FlowTableConfig {
            capacity: 2,
            ..FlowTableConfig::default()
        });
        t.update(&pkt(1, 40_001, Some(0x10), false), 1, 60);
        t.update(&pkt(1, 40_002, Some(0x10), false), 2, 60);
        t.update(&pkt(1, 40_003, None, false), 3, 60);
        let s = t.stats();
        assert_eq!(
            (s.evicted, s.evicted_half_open, s.evicted_closed),
            (1, 0, 0)
        );
        let gone: Vec<_> = t.drain_finished().map(|f| f.flow.id).collect();
        assert_eq!(gone, vec![1], "the least recently active flow");
    }

    #[test]
    fn index_lists_and_free_slots_stay_consistent_under_churn() {
        let cfg = FlowTableConfig {
            capacity: 13,
            tcp_idle_timeout_us: 900,
            tcp_closed_timeout_us: 50,
            udp_idle_timeout_us: 300,
            tcp_unestablished_timeout_us: 200,
        };
        let mut t: FlowTable<()> = FlowTable::new(cfg);
        let flag_cycle = [
            None,
            Some(0x02),
            Some(0x12),
            Some(0x10),
            Some(0x11),
            Some(0x04),
        ];
        let mut x: u32 = 12345;
        for step in 0..20_000u64 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let a = (x >> 8) as u8 % 9;
            let port = 1000 + ((x >> 16) % 4) as u16;
            let flags = flag_cycle[(x >> 20) as usize % flag_cycle.len()];
            let reverse = (x >> 24) & 1 == 1;
            t.update(&pkt(a, port, flags, reverse), step * 7, 60);
            if step % 37 == 0 {
                t.expire(step * 7);
            }
            if step % 101 == 0 {
                t.check_invariants();
                t.drain_finished().for_each(drop);
            }
        }
        t.check_invariants();
        let s = t.stats();
        assert!(s.evicted > 0 && s.expired > 0 && s.reused > 0, "{s:?}");
        t.finish_all();
        t.check_invariants();
        assert!(t.is_empty());
    }
}
