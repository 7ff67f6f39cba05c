//! Per-direction TCP stream ordering for inspection: puts each direction's first bytes in
//! sequence order, whatever the segmentation, before the engine sees them.
//!
//! Owns: the per-direction [`StreamCursor`] (inline in the flow), the out-of-order holding area
//! [`Held`] (one per direction, only while a gap is open or after one was), and the per-worker
//! [`ReorderPool`] of holding buffers (allocated once, when the worker's classifier is built) with
//! its counters. Policy:
//! - a direction's stream starts at the SYN's sequence number + 1 when the SYN was seen, else at
//!   the first payload segment of that direction;
//! - in-order bytes go straight to the engine (no copy while no segment is held);
//! - a segment that starts past the next expected byte is held, in a buffer of `max_bytes`
//!   (only bytes inside the inspection budget are ever held), at most [`MAX_RANGES`] disjoint
//!   ranges per direction; a per-worker pool bounds how many directions hold at once. A segment
//!   that finds the pool empty or the ranges full is dropped and counted (`reorder_drops`);
//! - a segment whose bytes were all delivered already (a retransmission) is ignored and counted;
//! - overlaps: the first copy of a byte wins (what most end hosts do); a later copy with
//!   different bytes adds the `tcp.overlap_mismatch` indicator. Bytes are compared wherever the
//!   reassembler still holds them (everything from the moment a direction first held a segment);
//! - a gap that stays open for [`GAP_PATIENCE`] segments (the capture lost a segment) is skipped:
//!   the held bytes are delivered from the first held range on, and counted (`gaps_skipped`).
//!
//! Must not: allocate per packet (the pool's buffers are recycled), hold anything past the
//! inspection budget, or panic on any sequence number (all arithmetic wraps).

/// Indicator added when a segment overlaps bytes already seen with different content.
pub const OVERLAP_MISMATCH_INDICATOR: &str = portolan_model::indicator::OVERLAP_MISMATCH;

/// Disjoint held ranges per direction.
pub const MAX_RANGES: usize = 8;

/// Segments that may arrive while a gap stays open before it is taken as lost and skipped.
pub const GAP_PATIENCE: u16 = 16;

/// Counters of one worker's reassembler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Segments that arrived ahead of a gap and were held.
    pub held_segments: u64,
    /// Out-of-order segments dropped because the worker's pool was empty or the direction's
    /// ranges were full (the per-flow and per-worker bounds).
    pub reorder_drops: u64,
    /// Segments whose bytes had all been delivered already (retransmissions), ignored.
    pub retransmissions: u64,
    /// Segments that overlapped held bytes with different content (first copy kept).
    pub overlap_mismatches: u64,
    /// Gaps given up on after [`GAP_PATIENCE`] segments (a lost segment).
    pub gaps_skipped: u64,
}

/// One worker's holding buffers, allocated once; each direction that holds a segment borrows
/// one and returns it when its budget is spent or the flow ends.
#[derive(Debug)]
pub struct ReorderPool {
    free: Vec<Box<[u8]>>,
    buffer_len: usize,
    /// The counters.
    pub stats: ReassemblyStats,
}

impl ReorderPool {
    /// `buffers` buffers of `buffer_len` bytes each.
    pub fn new(buffers: usize, buffer_len: usize) -> ReorderPool {
        ReorderPool {
            free: (0..buffers)
                .map(|_| vec![0u8; buffer_len].into_boxed_slice())
                .collect(),
            buffer_len,
            stats: ReassemblyStats::default(),
        }
    }

    /// Buffers not lent out.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub(crate) fn take(&mut self) -> Option<Box<[u8]>> {
        self.free.pop()
    }

    pub(crate) fn give_back(&mut self, buf: Box<[u8]>) {
        // A buffer of another size (a pool rebuilt with other budgets) is simply freed.
        if buf.len() == self.buffer_len && self.free.len() < self.free.capacity() {
            self.free.push(buf);
        }
    }
}

/// Where a direction's stream stands: kept inline in the flow (12 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCursor {
    /// Sequence number of the stream's first byte.
    base: u32,
    /// Offset (from `base`) of the next byte the engine expects.
    next: u32,
    /// `base` is set.
    started: bool,
    /// Segments seen while a gap was open.
    waited: u16,
}

impl StreamCursor {
    /// Sets the stream's start from the direction's SYN (data starts at `seq + 1`); ignored once
    /// the stream started.
    pub fn on_syn(&mut self, seq: u32) {
        if !self.started {
            self.base = seq.wrapping_add(1);
            self.next = 0;
            self.started = true;
        }
    }

    /// Bytes delivered in order so far.
    pub fn delivered(&self) -> u32 {
        self.next
    }
}

/// Held bytes of one direction: a buffer covering stream offsets `[0, max_bytes)` and the
/// sorted, disjoint, non-adjacent ranges of it that hold bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    buf: Box<[u8]>,
    ranges: [(u32, u32); MAX_RANGES],
    n: usize,
}

impl Held {
    fn new(buf: Box<[u8]>) -> Held {
        Held {
            buf,
            ranges: [(0, 0); MAX_RANGES],
            n: 0,
        }
    }

    /// The held bytes at stream offsets `[run.0, run.1)` (empty when out of range).
    pub fn bytes(&self, run: (u32, u32)) -> &[u8] {
        self.slice(run.0, run.1)
    }

    /// The buffer, to give back to the pool.
    pub(crate) fn into_buffer(self) -> Box<[u8]> {
        self.buf
    }

    fn ranges(&self) -> &[(u32, u32)] {
        self.ranges.get(..self.n).unwrap_or(&[])
    }

    /// Writes `data` at stream offset `start` (clamped to the buffer): bytes not held yet are
    /// copied, bytes held already are compared (first copy wins). Returns `None` when the union
    /// would need more than [`MAX_RANGES`] ranges (nothing written), else whether some held byte
    /// differed.
    fn write(&mut self, start: u32, data: &[u8]) -> Option<bool> {
        let cap = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let end = start.saturating_add(len).min(cap);
        if start >= end {
            return Some(false);
        }
        // The union, computed first so a refused write changes nothing.
        let mut merged = [(0u32, 0u32); MAX_RANGES];
        let mut m = 0usize;
        let mut push = |r: (u32, u32)| -> Option<()> {
            *merged.get_mut(m)? = r;
            m += 1;
            Some(())
        };
        let mut new = (start, end);
        let mut placed = false;
        for &(a, b) in self.ranges() {
            if b < new.0 {
                push((a, b))?;
            } else if a > new.1 {
                if !placed {
                    push(new)?;
                    placed = true;
                }
                push((a, b))?;
            } else {
                new = (new.0.min(a), new.1.max(b));
            }
        }
        if !placed {
            push(new)?;
        }
        let mut mismatch = false;
        let mut pos = start;
        let old = self.ranges;
        for &(a, b) in old.get(..self.n).unwrap_or(&[]) {
            if b <= pos || a >= end {
                continue;
            }
            if a > pos {
                self.copy_in(pos, a, start, data);
            }
            let (lo, hi) = (a.max(pos), b.min(end));
            mismatch |= self.slice(lo, hi) != slice_of(data, lo - start, hi - start);
            pos = hi;
        }
        if pos < end {
            self.copy_in(pos, end, start, data);
        }
        self.ranges[..m].copy_from_slice(&merged[..m]);
        self.n = m;
        Some(mismatch)
    }

    fn copy_in(&mut self, from: u32, to: u32, start: u32, data: &[u8]) {
        let src = slice_of(data, from - start, to - start);
        if let Some(dst) = self.buf.get_mut(from as usize..to as usize) {
            dst.copy_from_slice(src);
        }
    }

    fn slice(&self, from: u32, to: u32) -> &[u8] {
        self.buf.get(from as usize..to as usize).unwrap_or(&[])
    }

    /// Compares `data` at `start` with the held bytes it overlaps.
    fn differs(&self, start: u32, data: &[u8]) -> bool {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let end = start.saturating_add(len);
        self.ranges().iter().any(|&(a, b)| {
            let (lo, hi) = (a.max(start), b.min(end));
            lo < hi && self.slice(lo, hi) != slice_of(data, lo - start, hi - start)
        })
    }

    /// End of the held run that covers offset `at`, if one does.
    fn run_end(&self, at: u32) -> Option<u32> {
        self.ranges()
            .iter()
            .find(|&&(a, b)| a <= at && at < b)
            .map(|&(_, b)| b)
    }

    /// Start of the first held range at or after `at`.
    fn next_start(&self, at: u32) -> Option<u32> {
        self.ranges()
            .iter()
            .find(|&&(_, b)| b > at)
            .map(|&(a, _)| a.max(at))
    }
}

fn slice_of(data: &[u8], from: u32, to: u32) -> &[u8] {
    data.get(from as usize..to as usize).unwrap_or(&[])
}

/// What the caller must feed the engine for one segment, in order: the held run (stream offsets,
/// bytes from [`Reorder::held_bytes`]; it includes the segment itself once the direction holds
/// bytes) then `direct` (a sub-slice of the segment, zero-copy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Range of the segment's payload to feed after the held run (empty when none).
    pub direct: (usize, usize),
    /// Stream offsets of held bytes to feed first (empty when none).
    pub held: (u32, u32),
    /// The segment overlapped bytes seen before with different content.
    pub mismatch: bool,
}

/// One direction's ordering state, borrowed from the flow for one segment.
pub struct Reorder<'a> {
    /// The cursor (inline in the flow).
    pub cursor: &'a mut StreamCursor,
    /// The holding area (boxed in the flow's extras), if any.
    pub held: &'a mut Option<Held>,
}

impl Reorder<'_> {
    /// Places one segment (`seq`, `payload`), with an inspection budget of `max_bytes` per
    /// direction, and says what to deliver. The cursor moves past whatever is delivered.
    pub fn place(
        &mut self,
        pool: &mut ReorderPool,
        max_bytes: u32,
        seq: u32,
        payload: &[u8],
    ) -> Delivery {
        let c = &mut *self.cursor;
        if !c.started {
            c.base = seq;
            c.next = 0;
            c.started = true;
        }
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        // Offset from the stream start; a segment from before the start reads as negative.
        let rel = seq.wrapping_sub(c.base);
        let rel_signed = rel as i32;
        let mut out = Delivery::default();
        if rel_signed < 0 {
            // Bytes before the stream's start: keep what reaches past it.
            let before = rel_signed.unsigned_abs();
            if before >= len {
                pool.stats.retransmissions += 1;
                return out;
            }
            let base = c.base;
            let mut d = self.place(pool, max_bytes, base, slice_of(payload, before, len));
            let shift = before as usize;
            if d.direct.0 < d.direct.1 {
                d.direct = (d.direct.0 + shift, d.direct.1 + shift);
            }
            return d;
        }
        let end = rel.saturating_add(len);
        if end <= c.next {
            pool.stats.retransmissions += 1;
            if let Some(h) = self.held.as_ref() {
                out.mismatch = h.differs(rel, payload);
            }
            self.count_mismatch(pool, out.mismatch);
            return out;
        }
        if self.held.is_none() {
            if rel <= c.next {
                // In order (possibly repeating some delivered bytes first): straight through.
                let skip = (c.next - rel) as usize;
                out.direct = (skip, payload.len());
                c.next = end;
                return out;
            }
            if rel >= max_bytes || c.next >= max_bytes {
                // Out of order and past the budget: nothing to inspect there.
                return out;
            }
            let Some(buf) = pool.take() else {
                pool.stats.reorder_drops += 1;
                return out;
            };
            *self.held = Some(Held::new(buf));
        }
        let Some(h) = self.held.as_mut() else {
            return out;
        };
        let c = &mut *self.cursor;
        match h.write(rel, payload) {
            None => {
                pool.stats.reorder_drops += 1;
                return out;
            }
            Some(mismatch) => out.mismatch = mismatch,
        }
        let in_order = rel <= c.next;
        if in_order {
            c.waited = 0;
        } else {
            pool.stats.held_segments += 1;
            c.waited = c.waited.saturating_add(1);
            if c.waited >= GAP_PATIENCE {
                if let Some(first) = h.next_start(c.next) {
                    pool.stats.gaps_skipped += 1;
                    c.next = first;
                    c.waited = 0;
                }
            }
        }
        if let Some(run_end) = h.run_end(c.next) {
            out.held = (c.next, run_end);
            c.next = run_end;
        }
        if in_order && end > c.next {
            // The segment runs past the held buffer (past the budget): deliver its tail too,
            // after the held bytes.
            let from = c.next.saturating_sub(rel) as usize;
            out.direct = (from, payload.len());
            c.next = end;
        }
        self.count_mismatch(pool, out.mismatch);
        out
    }

    fn count_mismatch(&self, pool: &mut ReorderPool, mismatch: bool) {
        if mismatch {
            pool.stats.overlap_mismatches += 1;
        }
    }

    /// The held bytes of a [`Delivery::held`] run.
    pub fn held_bytes(&self, run: (u32, u32)) -> &[u8] {
        self.held.as_ref().map_or(&[], |h| h.slice(run.0, run.1))
    }

    /// Returns the holding buffer to the pool (budget spent, or the flow ends).
    pub fn release(&mut self, pool: &mut ReorderPool) {
        if let Some(h) = self.held.take() {
            pool.give_back(h.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds segments and returns the delivered stream.
    fn run(pool: &mut ReorderPool, segs: &[(u32, &[u8])]) -> (Vec<u8>, bool) {
        let mut cursor = StreamCursor::default();
        cursor.on_syn(99);
        let mut held = None;
        let mut out = Vec::new();
        let mut mismatch = false;
        for &(seq, data) in segs {
            let mut r = Reorder {
                cursor: &mut cursor,
                held: &mut held,
            };
            let d = r.place(pool, 64, seq, data);
            out.extend_from_slice(r.held_bytes(d.held));
            out.extend_from_slice(&data[d.direct.0..d.direct.1]);
            mismatch |= d.mismatch;
        }
        (out, mismatch)
    }

    #[test]
    fn in_order_reversed_and_retransmitted() {
        let mut pool = ReorderPool::new(2, 64);
        let (s, m) = run(&mut pool, &[(100, b"abc"), (103, b"def")]);
        assert_eq!(s, b"abcdef");
        assert!(!m);
        let (s, m) = run(&mut pool, &[(103, b"def"), (100, b"abc"), (100, b"abc")]);
        assert_eq!(s, b"abcdef");
        assert!(!m);
        assert_eq!(pool.stats.retransmissions, 1);
        assert_eq!(pool.available(), 1, "the second run still holds its buffer");
    }

    #[test]
    fn first_copy_wins_and_differences_are_flagged() {
        let mut pool = ReorderPool::new(1, 64);
        let (s, m) = run(&mut pool, &[(103, b"def"), (102, b"XYZ"), (100, b"ab")]);
        assert_eq!(s, b"abXdef");
        assert!(m, "Y,Z differ from the held e,f");
    }

    #[test]
    fn bounds_are_counted() {
        let mut pool = ReorderPool::new(0, 64);
        let (s, _) = run(&mut pool, &[(103, b"def"), (100, b"abc")]);
        assert_eq!(s, b"abc");
        assert_eq!(pool.stats.reorder_drops, 1);
        let mut pool = ReorderPool::new(1, 64);
        let segs: Vec<(u32, &[u8])> = (0..10).map(|i| (102 + 2 * i, &b"x"[..])).collect();
        let _ = run(&mut pool, &segs);
        assert_eq!(pool.stats.reorder_drops, 2, "ranges 9 and 10 do not fit");
    }

    #[test]
    fn a_lost_segment_is_skipped_after_patience() {
        let mut pool = ReorderPool::new(1, 64);
        let segs: Vec<(u32, &[u8])> = (0..GAP_PATIENCE as u32)
            .map(|i| (101 + i, &b"x"[..]))
            .collect();
        let (s, _) = run(&mut pool, &segs);
        assert_eq!(s.len(), GAP_PATIENCE as usize);
        assert_eq!(pool.stats.gaps_skipped, 1);
    }

    #[test]
    fn wrapping_sequence_numbers() {
        let mut pool = ReorderPool::new(1, 64);
        let mut cursor = StreamCursor::default();
        cursor.on_syn(u32::MAX - 2);
        let mut held = None;
        let mut r = Reorder {
            cursor: &mut cursor,
            held: &mut held,
        };
        let d = r.place(&mut pool, 64, 1, b"cd");
        assert_eq!(d, Delivery::default());
        let d = r.place(&mut pool, 64, u32::MAX - 1, b"ab");
        assert_eq!(r.held_bytes(d.held), b"ab");
        let d = r.place(&mut pool, 64, u32::MAX - 1, b"abc");
        assert_eq!(r.held_bytes(d.held), b"ccd");
    }
}
