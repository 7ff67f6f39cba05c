//! IPv4 and IPv6 fragment reassembly on the worker, before the flow table: a sender that
//! fragments everything (or only its ClientHello) is seen whole, with its ports and its SNI.
//!
//! Owns: one worker's table of datagrams being reassembled (bounded: `max_datagrams` slots,
//! each with a buffer of `max_datagram_bytes` allocated the first time the slot is used and
//! reused after), the policy below, and its counters. Every fragment frame is counted once:
//! in the worker's `decoded` when its datagram completes, or under a drop reason when it is
//! discarded ([`DropReason::FragmentOverlap`], [`DropReason::FragmentTimeout`],
//! [`DropReason::FragmentTableFull`], [`DropReason::FragmentTooBig`]), so `decoded + drops` still
//! equals the frames received once the worker finished (fragments still waiting at the end are
//! counted as timed out).
//!
//! Policy (a hostile sender chooses the fragments):
//! - datagrams are keyed by version, addresses, identification and protocol;
//! - a fragment that overlaps one already held is an attack or a broken sender: the whole
//!   datagram is dropped (RFC 5722 for IPv6; the same for IPv4, where targets disagree on which
//!   copy wins), except an exact duplicate (same offset, same bytes), which is ignored
//!   (RFC 8200 section 4.5 allows this);
//! - inconsistent fragments drop the datagram too: two different ends, bytes past the end, a
//!   non-last fragment whose length is not a multiple of 8, more than [`MAX_PIECES`] pieces;
//! - a first fragment too short to hold the whole TCP/UDP header (RFC 1858, RFC 7112) is counted
//!   as an evasion attempt (`tiny_first`) and still reassembled, so the flow is not hidden;
//! - a datagram not complete within `timeout_us` (capture time) is dropped when its slot is
//!   next looked at, at the worker's expiry, or at the end;
//! - a datagram larger than `max_datagram_bytes` is dropped (`fragment_too_big`); a new datagram
//!   finding every slot busy is dropped (`fragment_table_full`).
//!
//! Why our own and not DPDK's `rte_ip_frag`: `rte_ip_frag` chains mbufs (the reassembled packet
//! is a multi-segment mbuf that the decoder, which reads the first segment, would have to
//! linearise anyway), needs `unsafe` FFI on the hot path and a death row to free mbufs, does not
//! implement RFC 5722 overlap rejection or duplicate detection, and cannot run without the EAL
//! (the worker's tests and the fuzz target feed frames without DPDK). Fragments are rare; a
//! copy into a per-slot buffer costs less than the decode it enables.
//!
//! Must not: allocate per packet (slot buffers are allocated once per slot), panic on any bytes,
//! or hold more than `max_datagrams` datagrams.

use crate::{network_offset, DropReason, LinkType};
use std::net::IpAddr;

/// Disjoint received pieces per datagram.
pub const MAX_PIECES: usize = 16;
/// Room in front of the data for the link-layer and IP headers of the rebuilt frame.
const HEADROOM: usize = 512;
/// IANA protocol numbers.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// IPv6 extension headers walked to find the fragment header.
const V6_HOP_BY_HOP: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_FRAGMENT: u8 = 44;
const V6_DEST_OPTS: u8 = 60;
const V6_AUTH: u8 = 51;
/// Extension headers walked at most.
const MAX_EXT_HEADERS: usize = 8;

/// Bounds of one worker's defragmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragConfig {
    /// Datagrams being reassembled at once. Default 256.
    pub max_datagrams: usize,
    /// Largest reassembled datagram (IP payload bytes). Default 16,384.
    pub max_datagram_bytes: usize,
    /// A datagram not complete this long after its first fragment is dropped (µs of capture
    /// time). Default 30 s (Linux's `ipfrag_time`).
    pub timeout_us: u64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_datagrams: 256,
            max_datagram_bytes: 16_384,
            timeout_us: 30_000_000,
        }
    }
}

/// Counters of one worker's defragmenter (the discarded fragments are counted under drop
/// reasons; these count datagrams and evasion attempts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DefragStats {
    /// Fragment frames received.
    pub fragments: u64,
    /// Datagrams reassembled and decoded.
    pub reassembled: u64,
    /// Datagrams dropped because fragments overlapped or disagreed.
    pub overlapping: u64,
    /// Datagrams dropped incomplete at their timeout (or at the end of input).
    pub timed_out: u64,
    /// First fragments too short to hold the TCP/UDP header: an evasion attempt.
    pub tiny_first: u64,
}

/// What a fragment frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fragment<'a> {
    key: Key,
    /// Offset of the fragment's data in the datagram's payload.
    offset: usize,
    /// More fragments follow.
    more: bool,
    data: &'a [u8],
    /// Bytes of the frame before the data that the rebuilt frame keeps (link layer and the IP
    /// header without the IPv6 fragment header).
    header: &'a [u8],
    /// Where, within `header`, the IP header starts.
    ip_at: usize,
    /// IPv6: position (within `header`) of the next-header byte that named the fragment header.
    v6_nh_at: usize,
    /// The protocol after the fragment (IPv4 protocol; IPv6 fragment header's next header).
    proto: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

/// One datagram being reassembled.
#[derive(Debug, Default)]
struct Slot {
    key: Option<Key>,
    first_us: u64,
    /// Fragment frames held.
    frames: u32,
    /// Sorted, disjoint received byte ranges of the payload.
    pieces: [(u32, u32); MAX_PIECES],
    n: usize,
    /// Payload length, once the last fragment was seen.
    total: Option<u32>,
    /// Length of the saved header (from the offset-0 fragment), 0 until seen.
    header_len: usize,
    ip_at: usize,
    v6_nh_at: usize,
    proto: u8,
    v6: bool,
    buf: Option<Box<[u8]>>,
}

impl Slot {
    fn clear(&mut self) {
        self.key = None;
        self.frames = 0;
        self.n = 0;
        self.total = None;
        self.header_len = 0;
    }

    fn pieces(&self) -> &[(u32, u32)] {
        self.pieces.get(..self.n).unwrap_or(&[])
    }
}

/// What [`Defragmenter::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Not a TCP/UDP fragment: decode the frame as usual.
    NotFragment,
    /// Held (or dropped and counted) until its datagram completes.
    Taken,
    /// The datagram is complete: [`Defragmenter::datagram`] holds the rebuilt frame, standing
    /// for this many fragment frames.
    Complete(u32),
}

/// One worker's defragmenter.
#[derive(Debug)]
pub struct Defragmenter {
    cfg: DefragConfig,
    slots: Vec<Slot>,
    /// The last completed datagram: `(slot, start, end)` into that slot's buffer.
    out: Option<(usize, usize, usize)>,
    stats: DefragStats,
}

impl Defragmenter {
    /// An empty table (slot buffers are allocated when first used).
    pub fn new(cfg: DefragConfig) -> Defragmenter {
        Defragmenter {
            cfg,
            slots: (0..cfg.max_datagrams).map(|_| Slot::default()).collect(),
            out: None,
            stats: DefragStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> DefragStats {
        self.stats
    }

    /// The frame rebuilt by the last [`Pushed::Complete`]: the first fragment's link layer and
    /// IP header (lengths fixed, fragment fields cleared, the IPv6 fragment header removed)
    /// followed by the whole payload.
    pub fn datagram(&self) -> &[u8] {
        self.out
            .and_then(|(s, a, b)| self.slots.get(s)?.buf.as_deref()?.get(a..b))
            .unwrap_or(&[])
    }

    /// Takes one frame of link type `link` seen at `now_us`. Discarded fragments are counted in
    /// `drops` (indexed by [`DropReason`]).
    pub fn push(
        &mut self,
        link: LinkType,
        frame: &[u8],
        now_us: u64,
        drops: &mut [u64; DropReason::COUNT],
    ) -> Pushed {
        self.out = None;
        let Some(frag) = fragment_of(link, frame) else {
            return Pushed::NotFragment;
        };
        self.stats.fragments += 1;
        let mut drop = |reason: DropReason, n: u32| {
            if let Some(c) = drops.get_mut(reason as usize) {
                *c += u64::from(n);
            }
        };
        if frag.offset == 0 && !holds_transport_header(&frag) {
            self.stats.tiny_first += 1;
        }
        // Find the datagram's slot, reclaiming timed-out ones on the way.
        let mut found = None;
        let mut free = None;
        for (i, s) in self.slots.iter_mut().enumerate() {
            match s.key {
                Some(k) if k == frag.key => {
                    if now_us.saturating_sub(s.first_us) > self.cfg.timeout_us {
                        drop(DropReason::FragmentTimeout, s.frames);
                        self.stats.timed_out += 1;
                        s.clear();
                        free.get_or_insert(i);
                    } else {
                        found = Some(i);
                    }
                }
                Some(_) if now_us.saturating_sub(s.first_us) > self.cfg.timeout_us => {
                    drop(DropReason::FragmentTimeout, s.frames);
                    self.stats.timed_out += 1;
                    s.clear();
                    free.get_or_insert(i);
                }
                Some(_) => {}
                None => {
                    free.get_or_insert(i);
                }
            }
        }
        let Some(i) = found.or(free) else {
            drop(DropReason::FragmentTableFull, 1);
            return Pushed::Taken;
        };
        let cap = self.cfg.max_datagram_bytes;
        let Some(slot) = self.slots.get_mut(i) else {
            drop(DropReason::FragmentTableFull, 1);
            return Pushed::Taken;
        };
        if slot.key.is_none() {
            slot.clear();
            slot.key = Some(frag.key);
            slot.first_us = now_us;
            slot.v6 = matches!(frag.key.src, IpAddr::V6(_));
        }
        let mut buf = slot
            .buf
            .take()
            .unwrap_or_else(|| vec![0u8; HEADROOM + cap].into_boxed_slice());
        let step = accept(slot, &mut buf, &frag, cap);
        slot.buf = Some(buf);
        match step {
            Step::Held => Pushed::Taken,
            Step::Drop(reason, frames) => {
                drop(reason, frames);
                if reason == DropReason::FragmentOverlap {
                    self.stats.overlapping += 1;
                }
                slot.clear();
                Pushed::Taken
            }
            Step::Complete { frames, from, to } => {
                slot.clear();
                self.stats.reassembled += 1;
                self.out = Some((i, from, to));
                Pushed::Complete(frames)
            }
        }
    }

    /// Drops every datagram older than the timeout at `now_us` (counted as timed out).
    pub fn expire(&mut self, now_us: u64, drops: &mut [u64; DropReason::COUNT]) {
        for s in &mut self.slots {
            if s.key.is_some() && now_us.saturating_sub(s.first_us) > self.cfg.timeout_us {
                if let Some(c) = drops.get_mut(DropReason::FragmentTimeout as usize) {
                    *c += u64::from(s.frames);
                }
                self.stats.timed_out += 1;
                s.clear();
            }
        }
    }

    /// Drops every datagram still incomplete (end of input), counted as timed out.
    pub fn flush(&mut self, drops: &mut [u64; DropReason::COUNT]) {
        self.expire(u64::MAX, drops);
        for s in &mut self.slots {
            if s.key.is_some() {
                if let Some(c) = drops.get_mut(DropReason::FragmentTimeout as usize) {
                    *c += u64::from(s.frames);
                }
                self.stats.timed_out += 1;
                s.clear();
            }
        }
    }
}

/// What one fragment did to its datagram.
enum Step {
    /// Held (or an exact duplicate): the datagram is not complete yet.
    Held,
    /// The datagram is dropped; this many frames of it are counted under the reason.
    Drop(DropReason, u32),
    /// The datagram is complete: the rebuilt frame is `buf[from..to]`.
    Complete { frames: u32, from: usize, to: usize },
}

/// Adds `frag` to the datagram of `slot` (whose buffer is `buf`, of `HEADROOM + cap` bytes).
fn accept(slot: &mut Slot, buf: &mut [u8], frag: &Fragment<'_>, cap: usize) -> Step {
    let start = frag.offset;
    let end = start + frag.data.len();
    let frames_if_dropped = slot.frames + 1;
    // Consistency: sizes, the end, multiples of 8.
    let inconsistent = Step::Drop(DropReason::FragmentOverlap, frames_if_dropped);
    if end > cap {
        return Step::Drop(DropReason::FragmentTooBig, frames_if_dropped);
    }
    if frag.more && (frag.data.is_empty() || !frag.data.len().is_multiple_of(8)) {
        return inconsistent;
    }
    if !frag.more {
        if slot.total.is_some_and(|t| t as usize != end)
            || slot.pieces().iter().any(|&(_, b)| b as usize > end)
        {
            return inconsistent;
        }
    } else if slot.total.is_some_and(|t| end > t as usize) {
        return inconsistent;
    }
    // Overlaps: an exact duplicate is ignored, anything else drops the datagram (RFC 5722).
    let (s32, e32) = (start as u32, end as u32);
    for &(a, b) in slot.pieces() {
        if a < e32 && s32 < b {
            let same = s32 >= a
                && e32 <= b
                && buf.get(HEADROOM + start..HEADROOM + end) == Some(frag.data);
            if !same {
                return inconsistent;
            }
            slot.frames += 1;
            return Step::Held;
        }
    }
    // Record the piece (merging with neighbours); too many holes is an attack.
    let mut merged = [(0u32, 0u32); MAX_PIECES];
    let mut m = 0usize;
    let mut push = |r: (u32, u32)| -> Option<()> {
        *merged.get_mut(m)? = r;
        m += 1;
        Some(())
    };
    let mut new = (s32, e32);
    let mut placed = false;
    let mut fits = Some(());
    for &(a, b) in slot.pieces() {
        if b < new.0 {
            fits = fits.and_then(|_| push((a, b)));
        } else if a > new.1 {
            if !placed {
                placed = true;
                fits = fits.and_then(|_| push(new));
            }
            fits = fits.and_then(|_| push((a, b)));
        } else {
            new = (new.0.min(a), new.1.max(b));
        }
    }
    if !placed {
        fits = fits.and_then(|_| push(new));
    }
    if fits.is_none() {
        return inconsistent;
    }
    slot.pieces[..m].copy_from_slice(&merged[..m]);
    slot.n = m;
    slot.frames += 1;
    if let Some(dst) = buf.get_mut(HEADROOM + start..HEADROOM + end) {
        dst.copy_from_slice(frag.data);
    }
    if !frag.more {
        slot.total = Some(e32);
    }
    if frag.offset == 0 {
        let h = frag.header.len();
        let Some(dst) = HEADROOM
            .checked_sub(h)
            .and_then(|from| buf.get_mut(from..HEADROOM))
        else {
            return Step::Drop(DropReason::FragmentTooBig, slot.frames);
        };
        dst.copy_from_slice(frag.header);
        slot.header_len = h;
        slot.ip_at = frag.ip_at;
        slot.v6_nh_at = frag.v6_nh_at;
        slot.proto = frag.proto;
    }
    // Complete: one piece from 0 to the known end, and the first fragment's header.
    let Some(total) = slot.total else {
        return Step::Held;
    };
    if slot.header_len == 0 || slot.pieces() != [(0, total)] {
        return Step::Held;
    }
    let total = total as usize;
    let h = slot.header_len;
    let from = HEADROOM - h;
    let ip = from + slot.ip_at;
    let rebuilt = if slot.v6 {
        // Payload length: the unfragmentable extension headers plus the data.
        let unfrag = h.saturating_sub(slot.ip_at + 40);
        let nh_at = from + slot.v6_nh_at;
        u16::try_from(unfrag + total).ok().and_then(|len| {
            buf.get_mut(ip + 4..ip + 6)?
                .copy_from_slice(&len.to_be_bytes());
            *buf.get_mut(nh_at)? = slot.proto;
            Some(())
        })
    } else {
        let ihl = h - slot.ip_at;
        u16::try_from(ihl + total).ok().and_then(|len| {
            buf.get_mut(ip + 2..ip + 4)?
                .copy_from_slice(&len.to_be_bytes());
            // Fragment fields cleared: a whole datagram now.
            buf.get_mut(ip + 6..ip + 8)?.copy_from_slice(&[0, 0]);
            Some(())
        })
    };
    match rebuilt {
        Some(()) => Step::Complete {
            frames: slot.frames,
            from,
            to: HEADROOM + total,
        },
        None => Step::Drop(DropReason::FragmentTooBig, slot.frames),
    }
}

/// True when `frame` is a TCP/UDP fragment (first or not) the defragmenter would take.
pub fn is_fragment(link: LinkType, frame: &[u8]) -> bool {
    fragment_of(link, frame).is_some()
}

/// True when the first fragment holds the whole TCP (20 bytes, or its data offset) or UDP
/// (8 bytes) header.
fn holds_transport_header(f: &Fragment<'_>) -> bool {
    match f.proto {
        IPPROTO_TCP => f
            .data
            .get(12)
            .is_some_and(|&off| f.data.len() >= (usize::from(off >> 4) * 4).max(20)),
        IPPROTO_UDP => f.data.len() >= 8,
        // An IPv6 extension header after the fragment header: the header chain is split.
        _ => false,
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the fragment fields of a TCP/UDP fragment; `None` for anything else (whole datagrams,
/// other protocols, frames too short to tell: the decoder counts those as usual).
fn fragment_of(link: LinkType, frame: &[u8]) -> Option<Fragment<'_>> {
    let at = network_offset(link, frame)?;
    let ip = frame.get(at..)?;
    match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(be16(ip, 2)?);
            let flags = be16(ip, 6)?;
            let offset = usize::from(flags & 0x1fff) * 8;
            let more = flags & 0x2000 != 0;
            if offset == 0 && !more {
                return None;
            }
            let proto = *ip.get(9)?;
            if ihl < 20 || total < ihl || (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
                return None;
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            Some(Fragment {
                key: Key {
                    src: IpAddr::from(src),
                    dst: IpAddr::from(dst),
                    id: u32::from(be16(ip, 4)?),
                    proto,
                },
                offset,
                more,
                data: ip.get(ihl..total)?,
                header: frame.get(..at + ihl)?,
                ip_at: at,
                v6_nh_at: 0,
                proto,
            })
        }
        6 => {
            let payload_len = usize::from(be16(ip, 4)?);
            let end = 40 + payload_len;
            let mut nh = *ip.get(6)?;
            let mut nh_at = 6usize;
            let mut pos = 40usize;
            for _ in 0..MAX_EXT_HEADERS {
                match nh {
                    V6_FRAGMENT => {
                        let inner = *ip.get(pos)?;
                        let off_flags = be16(ip, pos + 2)?;
                        let id = u32::from_be_bytes(ip.get(pos + 4..pos + 8)?.try_into().ok()?);
                        let ok_inner = matches!(
                            inner,
                            IPPROTO_TCP | IPPROTO_UDP | V6_DEST_OPTS | V6_ROUTING | V6_AUTH
                        );
                        if !ok_inner {
                            return None;
                        }
                        let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
                        let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
                        return Some(Fragment {
                            key: Key {
                                src: IpAddr::from(src),
                                dst: IpAddr::from(dst),
                                id,
                                proto: inner,
                            },
                            offset: usize::from(off_flags >> 3) * 8,
                            more: off_flags & 1 != 0,
                            data: ip.get(pos + 8..end)?,
                            header: frame.get(..at + pos)?,
                            ip_at: at,
                            v6_nh_at: at + nh_at,
                            proto: inner,
                        });
                    }
                    V6_HOP_BY_HOP | V6_ROUTING | V6_DEST_OPTS => {
                        let len = (usize::from(*ip.get(pos + 1)?) + 1) * 8;
                        nh = *ip.get(pos)?;
                        nh_at = pos;
                        pos += len;
                    }
                    V6_AUTH => {
                        let len = (usize::from(*ip.get(pos + 1)?) + 2) * 4;
                        nh = *ip.get(pos)?;
                        nh_at = pos;
                        pos += len;
                    }
                    _ => return None,
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_fragment(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = 20 + data.len();
        let flags = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&flags.to_be_bytes());
        f.extend_from_slice(&[64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(data);
        f
    }

    fn udp(payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0x30, 0x39, 0x00, 0x35];
        u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(payload);
        u
    }

    #[test]
    fn any_order_reassembles_to_the_whole_datagram() {
        let dgram = udp(&[0x61; 100]);
        let pieces = [(0, &dgram[..48]), (48, &dgram[48..96]), (96, &dgram[96..])];
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
            let mut d = Defragmenter::new(DefragConfig::default());
            let mut drops = [0u64; DropReason::COUNT];
            let mut last = Pushed::Taken;
            for &k in &order {
                let (off, data) = pieces[k];
                last = d.push(
                    LinkType::Ethernet,
                    &v4_fragment(7, off, off != 96, data),
                    1,
                    &mut drops,
                );
            }
            assert_eq!(last, Pushed::Complete(3), "{order:?}");
            let pkt = crate::parse(LinkType::Ethernet, d.datagram()).expect("decodes");
            assert_eq!(pkt.dst_port, 53);
            assert_eq!(pkt.payload, &[0x61; 100][..]);
            assert!(!pkt.payload_truncated);
            assert_eq!(drops.iter().sum::<u64>(), 0);
        }
    }

    #[test]
    fn overlaps_drop_the_datagram_and_duplicates_are_ignored() {
        let dgram = udp(&[0x61; 100]);
        let mut d = Defragmenter::new(DefragConfig::default());
        let mut drops = [0u64; DropReason::COUNT];
        let e = LinkType::Ethernet;
        d.push(e, &v4_fragment(1, 0, true, &dgram[..48]), 1, &mut drops);
        d.push(e, &v4_fragment(1, 0, true, &dgram[..48]), 1, &mut drops);
        assert_eq!(
            drops.iter().sum::<u64>(),
            0,
            "an exact duplicate is ignored"
        );
        let mut forged = dgram[40..88].to_vec();
        forged[0] ^= 1;
        d.push(e, &v4_fragment(1, 40, true, &forged), 1, &mut drops);
        assert_eq!(drops[DropReason::FragmentOverlap as usize], 3);
        assert_eq!(d.stats().overlapping, 1);
        // The rest arrives: nothing completes.
        let r = d.push(e, &v4_fragment(1, 48, false, &dgram[48..]), 1, &mut drops);
        assert_eq!(r, Pushed::Taken);
        d.flush(&mut drops);
        assert_eq!(drops[DropReason::FragmentTimeout as usize], 1);
    }

    #[test]
    fn timeouts_table_bounds_and_tiny_first_fragments_are_counted() {
        let cfg = DefragConfig {
            max_datagrams: 1,
            ..DefragConfig::default()
        };
        let mut d = Defragmenter::new(cfg);
        let mut drops = [0u64; DropReason::COUNT];
        let e = LinkType::Ethernet;
        let dgram = udp(&[0x62; 40]);
        d.push(e, &v4_fragment(1, 0, true, &dgram[..8]), 1, &mut drops);
        d.push(e, &v4_fragment(2, 0, true, &dgram[..8]), 2, &mut drops);
        assert_eq!(drops[DropReason::FragmentTableFull as usize], 1);
        d.push(
            e,
            &v4_fragment(3, 0, true, &dgram[..8]),
            40_000_000,
            &mut drops,
        );
        assert_eq!(drops[DropReason::FragmentTimeout as usize], 1);
        let tiny = udp(&[]);
        d.push(e, &v4_fragment(4, 0, true, &tiny[..0]), 1, &mut drops);
        let r = d.push(e, &v4_fragment(9, 0, true, &dgram[..0]), 1, &mut drops);
        assert_eq!(r, Pushed::Taken);
        assert!(d.stats().tiny_first >= 1);
    }
}
