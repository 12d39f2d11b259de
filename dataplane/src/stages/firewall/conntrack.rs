//! Connection tracking: one fixed-capacity table per worker.
//!
//! The engine's symmetric flow hash brings both directions of a connection (and ICMP errors
//! about it) to one worker, so each worker owns its connections outright: no sharing, no
//! atomics. Everything is allocated when the stage is built and never grows, rehashes or
//! moves afterwards; the packet path allocates nothing.
//!
//! # Layout
//!
//! Three flat arrays of `u64` words, each aligned to a cache line (on 2 MiB hugepages when an
//! array is large, [`pmd::mem::HugeArray`], so that random lookups do not also miss the TLB):
//!
//! * **Buckets**: an open-addressing index of 64-byte buckets, one cache line each, at least
//!   twice as many slots as connections (a power of two of buckets). A bucket holds seven
//!   slots, each one word: the top 32 bits of the key's hash (the signature) and the entry
//!   index plus one (0: empty); its eighth word counts the entries that wanted this bucket (or
//!   an earlier one) but found it full and went on to the next (F14's overflow count), so a
//!   lookup stops at the first bucket whose count is 0 and a delete leaves no tombstone. The
//!   hash is **symmetric** (both directions of a connection hash alike), so a connection has
//!   one slot, and the key comparison tells the direction.
//! * **Entries, hot line**: eight words per connection, one cache line: the key (five words:
//!   the two addresses, then ports, protocol and family, whose spare high bits hold the state,
//!   `replied` and the flow cache's two verdicts), the expiry, the two cached rule ids and the
//!   rule generation of the cached verdicts. An established packet answered from the flow
//!   cache touches one bucket line and this line, nothing else.
//! * **Entries, cold line**: eight words per connection: TCP's per-direction sequence windows
//!   and the timer wheel's links. Only TCP tracking and timer work read it.
//!
//! [`Table::prefetch`] takes a burst's hashes (the stage computes them for all its packets
//! first) and touches their buckets, then the entries their signatures point to, so the cache
//! misses of a burst overlap instead of following one another (safe code has no prefetch
//! instruction: plain loads whose results are discarded do the same job).
//!
//! # Tracking
//!
//! TCP follows the states of a connection (SYN sent, SYN received, established, FIN wait,
//! close wait, last ACK, TIME_WAIT, closed by RST) with the sequence-window checks of Guido
//! van Rooij's "Real Stateful TCP Packet Filtering in IP Filter" (as netfilter does them): a
//! segment must start at or before the right edge the peer has opened, must not end before what
//! the peer may still need, and may only acknowledge data that was sent. A segment that fails
//! them, a SYN-ACK without a SYN, or a mid-stream packet of an unknown connection is
//! `invalid`: the rules decide what to do with it (`ct invalid drop` is the usual first rule).
//! UDP and other protocols get pseudo-connections (established once the reply direction is
//! seen); ICMP echo requests open one keyed by their identifier, which the echo reply matches.
//!
//! Timeouts per state run on a hashed timer wheel of `WHEEL_SLOTS` slots of `TICK_NS`:
//! entries sit in the slot of their expiry; refreshing an entry only moves its expiry later
//! (the wheel finds it still alive when the slot comes round and re-files it), so the packet
//! path does no list work unless the timeout shrinks (FIN, RST). `poll` turns the wheel from
//! the last tick to `now`, visiting only the entries filed in the slots it passes; when
//! nothing is due it costs one comparison.
//!
//! When the table is full a new connection is refused (counted by the stage), or, with early
//! drop, the closest-to-expiry connection that never saw a reply is evicted for it: a SYN
//! flood then recycles its own half-open entries and never pushes out established ones.

use crate::wire::FlowKey;

/// Timer wheel slots.
pub const WHEEL_SLOTS: usize = 4096;
/// Timer wheel tick (100 ms).
pub const TICK_NS: u64 = 100_000_000;
const NIL: u32 = u32::MAX;
const SEC: u64 = 1_000_000_000;

/// Words per bucket (one cache line): `SLOTS` slots and the overflow count.
const BUCKET_WORDS: usize = 8;
/// Slots per bucket.
const SLOTS: usize = 7;
/// Words of an entry's hot line.
const HOT_WORDS: usize = 8;
/// Words of an entry's cold line.
const COLD_WORDS: usize = 8;
/// Arrays at least this large go on hugepages (smaller ones fit the TLB's reach anyway).
const HUGE_MIN: usize = 8 << 20;

// Hot line: words 0-4 the key, 5 the expiry, 6 the cached rule ids (direction 0 low), 7 the
// rule generation of the cached verdicts.
const H_KEY4: usize = 4;
const H_EXPIRES: usize = 5;
const H_RULES: usize = 6;
const H_GEN: usize = 7;
/// Key word 4: source port (bits 0-15), destination port (16-31), protocol (32-39), IPv6 (40).
const KEY4_MASK: u64 = (1 << 41) - 1;
/// Key word 4, above the key: the state (4 bits), replied, then per direction a cached verdict
/// (3 bits: 4 set, action in the low 2).
const STATE_SHIFT: u32 = 48;
const REPLIED: u64 = 1 << 52;
const CACHE_SHIFT: [u32; 2] = [53, 56];
const CACHE_SET: u64 = 4;

// Cold line: words 0-1 direction 0's window, 2-3 direction 1's, 4 the wheel links (prev low,
// next high), 5 the wheel slot, 6 both directions' window scale and FIN flag.
const C_LINKS: usize = 4;
const C_SLOT: usize = 5;
const C_FLAGS: usize = 6;

/// Timeouts per state, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP: SYN seen, no reply.
    pub syn_sent: u64,
    /// TCP: SYN-ACK seen.
    pub syn_recv: u64,
    /// TCP: established.
    pub established: u64,
    /// TCP: one side sent FIN.
    pub fin_wait: u64,
    /// TCP: both FINs seen, last ACK outstanding.
    pub last_ack: u64,
    /// TCP: both FINs acknowledged.
    pub time_wait: u64,
    /// TCP: reset.
    pub close: u64,
    /// UDP and other protocols, before a reply.
    pub udp: u64,
    /// UDP and other protocols, after a reply.
    pub udp_stream: u64,
    /// ICMP echo.
    pub icmp: u64,
}

impl Default for Timeouts {
    /// Linux's defaults.
    fn default() -> Self {
        Timeouts {
            syn_sent: 120 * SEC,
            syn_recv: 60 * SEC,
            established: 432_000 * SEC,
            fin_wait: 120 * SEC,
            last_ack: 30 * SEC,
            time_wait: 120 * SEC,
            close: 10 * SEC,
            udp: 30 * SEC,
            udp_stream: 120 * SEC,
            icmp: 30 * SEC,
        }
    }
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// TCP SYN sent.
    SynSent,
    /// TCP SYN-ACK seen.
    SynRecv,
    /// TCP established.
    Established,
    /// TCP: one FIN seen.
    FinWait,
    /// TCP: both FINs seen.
    LastAck,
    /// TCP: both FINs acknowledged.
    TimeWait,
    /// TCP: reset.
    Close,
    /// UDP/other pseudo-connection.
    Udp,
    /// ICMP echo pseudo-connection.
    Icmp,
}

impl State {
    #[inline(always)]
    fn bits(self) -> u64 {
        self as u64
    }

    #[inline(always)]
    fn from_bits(b: u64) -> State {
        match b & 0xf {
            0 => State::SynSent,
            1 => State::SynRecv,
            2 => State::Established,
            3 => State::FinWait,
            4 => State::LastAck,
            5 => State::TimeWait,
            6 => State::Close,
            8 => State::Icmp,
            _ => State::Udp,
        }
    }
}

/// One direction of a TCP connection.
#[derive(Debug, Clone, Copy, Default)]
struct Dir {
    /// Highest sequence number sent plus one (seq + len).
    end: u32,
    /// Right edge the peer has opened for this direction (ack + window).
    maxend: u32,
    /// Largest (scaled) window this direction advertised.
    maxwin: u32,
    /// Window scale (0xff: none offered).
    wscale: u8,
    /// A FIN was sent; `fin_seq` is its sequence number + 1.
    fin: bool,
    fin_seq: u32,
}

/// What TCP tracking works on: a connection's state and windows, copied out of its lines and
/// written back.
#[derive(Debug, Clone, Copy)]
struct Tcb {
    state: State,
    replied: bool,
    dirs: [Dir; 2],
}

/// A cached verdict for one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    /// Snapshot generation it was computed with.
    pub gen: u64,
    /// Rule id (or `u32::MAX`: the default policy).
    pub rule: u32,
    /// 0 accept, 1 drop, 2 reject.
    pub action: u8,
}

/// A tracked connection, as [`Table::get`] reads it out of the table.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Key of the first packet (the originating direction).
    pub key: FlowKey,
    /// State.
    pub state: State,
    /// The reply direction has been seen.
    pub replied: bool,
    /// Established-state verdict per direction (the flow cache).
    pub cached: [Option<Cached>; 2],
}

/// The TCP fields conntrack needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window (unscaled).
    pub win: u16,
    /// Payload length.
    pub payload: u32,
    /// Window-scale option (SYN only), if present.
    pub wscale: Option<u8>,
    /// A first fragment: the payload length is not the segment's, so the window checks are
    /// skipped (the fragment rules guard fragments).
    pub fragmented: bool,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Outcome of tracking one packet of a known connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Fits the connection; `established` once the reply direction has been seen.
    Ok {
        /// The connection has seen traffic both ways.
        established: bool,
    },
    /// A new connection reusing the 5-tuple of a closed one (SYN in TIME_WAIT or after RST).
    Reopen,
    /// Does not fit.
    Invalid,
}

#[inline(always)]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline(always)]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// Counters of the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct CtCounters {
    /// Connections created.
    pub created: u64,
    /// Connections expired by their timeout.
    pub expired: u64,
    /// Connections evicted to make room (early drop).
    pub early_drops: u64,
}

#[inline(always)]
fn word(b: &[u8; 16], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The five key words of `k`.
#[inline(always)]
fn key_words(k: &FlowKey) -> [u64; 5] {
    [
        word(&k.src, 0),
        word(&k.src, 8),
        word(&k.dst, 0),
        word(&k.dst, 8),
        u64::from(k.src_port)
            | (u64::from(k.dst_port) << 16)
            | (u64::from(k.proto) << 32)
            | (u64::from(k.is_v6) << 40),
    ]
}

/// The key words of the reverse direction.
#[inline(always)]
fn reversed_words(w: &[u64; 5]) -> [u64; 5] {
    let ports = ((w[4] & 0xffff) << 16) | ((w[4] >> 16) & 0xffff);
    [w[2], w[3], w[0], w[1], (w[4] & !0xffff_ffff) | ports]
}

#[inline(always)]
fn key_matches(e: &[u64], w: &[u64; 5]) -> bool {
    ((e[0] ^ w[0]) | (e[1] ^ w[1]) | (e[2] ^ w[2]) | (e[3] ^ w[3]) | ((e[4] ^ w[4]) & KEY4_MASK))
        == 0
}

fn key_of(e: &[u64]) -> FlowKey {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..8].copy_from_slice(&e[0].to_le_bytes());
    src[8..].copy_from_slice(&e[1].to_le_bytes());
    dst[..8].copy_from_slice(&e[2].to_le_bytes());
    dst[8..].copy_from_slice(&e[3].to_le_bytes());
    FlowKey {
        src,
        dst,
        src_port: e[4] as u16,
        dst_port: (e[4] >> 16) as u16,
        proto: (e[4] >> 32) as u8,
        is_v6: (e[4] >> 40) & 1 != 0,
    }
}

/// Where a word array lives.
enum Mem {
    Heap(Vec<u64>),
    Huge(pmd::mem::HugeArray<u64>),
}

/// A zeroed array of words whose first word is cache-line aligned.
struct Words {
    mem: Mem,
    /// Words skipped at the start of a heap allocation to align it.
    base: usize,
    len: usize,
}

impl Words {
    fn new(len: usize) -> Words {
        if len * 8 >= HUGE_MIN {
            if let Ok(a) = pmd::mem::HugeArray::<u64>::zeroed(len) {
                return Words {
                    mem: Mem::Huge(a),
                    base: 0,
                    len,
                };
            }
        }
        let v = vec![0u64; len + 7];
        let base = (v.as_ptr() as usize).wrapping_neg() % 64 / 8;
        Words {
            mem: Mem::Heap(v),
            base,
            len,
        }
    }

    fn bytes(&self) -> usize {
        match &self.mem {
            Mem::Heap(v) => v.capacity() * 8,
            Mem::Huge(a) => a.len() * 8,
        }
    }
}

impl std::ops::Deref for Words {
    type Target = [u64];
    #[inline(always)]
    fn deref(&self) -> &[u64] {
        let s: &[u64] = match &self.mem {
            Mem::Heap(v) => v,
            Mem::Huge(a) => a,
        };
        &s[self.base..self.base + self.len]
    }
}

impl std::ops::DerefMut for Words {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [u64] {
        let s: &mut [u64] = match &mut self.mem {
            Mem::Heap(v) => v,
            Mem::Huge(a) => a,
        };
        &mut s[self.base..self.base + self.len]
    }
}

/// A worker's connection table.
pub struct Table {
    buckets: Words,
    mask: usize,
    hot: Words,
    cold: Words,
    cap: usize,
    free: Vec<u32>,
    wheel: Vec<u32>,
    tick: u64,
    started: bool,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Evict a never-replied connection when full.
    pub early_drop: bool,
    /// Counters.
    pub counters: CtCounters,
}

impl Table {
    /// A table for `capacity` connections (all memory allocated here).
    pub fn new(capacity: usize, timeouts: Timeouts, early_drop: bool) -> Table {
        let capacity = capacity.clamp(1, 1 << 26);
        let nb = (2 * capacity).div_ceil(SLOTS).next_power_of_two();
        Table {
            buckets: Words::new(nb * BUCKET_WORDS),
            mask: nb - 1,
            hot: Words::new(capacity * HOT_WORDS),
            cold: Words::new(capacity * COLD_WORDS),
            cap: capacity,
            free: (0..capacity as u32).rev().collect(),
            wheel: vec![NIL; WHEEL_SLOTS],
            tick: 0,
            started: false,
            timeouts,
            early_drop,
            counters: CtCounters::default(),
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.cap - self.free.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes the table holds, all of it allocated when it was built: the buckets, the entries'
    /// hot and cold lines, the free list and the timer wheel.
    pub fn memory_bytes(&self) -> usize {
        self.buckets.bytes()
            + self.hot.bytes()
            + self.cold.bytes()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + self.wheel.capacity() * std::mem::size_of::<u32>()
    }

    #[inline(always)]
    fn bucket(&self, b: usize) -> &[u64; BUCKET_WORDS] {
        let at = b * BUCKET_WORDS;
        match self.buckets[at..at + BUCKET_WORDS].try_into() {
            Ok(l) => l,
            Err(_) => unreachable!(),
        }
    }

    #[inline(always)]
    fn hot_line(&self, i: u32) -> &[u64] {
        let at = i as usize * HOT_WORDS;
        &self.hot[at..at + HOT_WORDS]
    }

    /// Prefetches the buckets of a burst's `hashes`, then the entries their signatures point at,
    /// so that the lookups that follow find them in cache.
    #[inline]
    pub fn prefetch(&self, hashes: &[u64]) {
        for &h in hashes {
            pmd::cpu::prefetch(&self.buckets[(h as usize & self.mask) * BUCKET_WORDS]);
        }
        for &h in hashes {
            let line = self.bucket(h as usize & self.mask);
            let sig = h >> 32;
            let mut cand = 0u32;
            for &w in &line[..SLOTS] {
                if w >> 32 == sig && w as u32 != 0 {
                    cand = w as u32;
                }
            }
            if let Some(w) = (cand != 0)
                .then(|| self.hot.get((cand as usize - 1) * HOT_WORDS + H_KEY4))
                .flatten()
            {
                pmd::cpu::prefetch(w);
            }
        }
    }

    /// Finds `k`: (entry index, direction: 0 originating, 1 reply).
    #[inline]
    pub fn lookup(&self, k: &FlowKey) -> Option<(u32, usize)> {
        self.lookup_hashed(k.symmetric_hash64(), k)
    }

    /// [`lookup`](Self::lookup) with `h` = `k.symmetric_hash64()` already computed.
    #[inline]
    pub fn lookup_hashed(&self, h: u64, k: &FlowKey) -> Option<(u32, usize)> {
        let kw = key_words(k);
        let rw = reversed_words(&kw);
        let sig = h >> 32;
        let mut b = h as usize & self.mask;
        loop {
            let line = self.bucket(b);
            for &w in &line[..SLOTS] {
                if w >> 32 == sig && w as u32 != 0 {
                    let i = w as u32 - 1;
                    let e = self.hot_line(i);
                    if key_matches(e, &kw) {
                        return Some((i, 0));
                    }
                    if key_matches(e, &rw) {
                        return Some((i, 1));
                    }
                }
            }
            if line[SLOTS] == 0 {
                return None;
            }
            b = (b + 1) & self.mask;
        }
    }

    /// Files entry `i` under hash `h`.
    fn insert(&mut self, i: u32, h: u64) {
        let v = (h & !0xffff_ffff) | u64::from(i + 1);
        let mut b = h as usize & self.mask;
        loop {
            let at = b * BUCKET_WORDS;
            let line = &mut self.buckets[at..at + BUCKET_WORDS];
            if let Some(s) = line[..SLOTS].iter().position(|&w| w as u32 == 0) {
                line[s] = v;
                return;
            }
            line[SLOTS] += 1;
            b = (b + 1) & self.mask;
        }
    }

    /// Takes entry `i`, filed under hash `h`, out of the buckets.
    fn erase(&mut self, i: u32, h: u64) {
        let mut b = h as usize & self.mask;
        for _ in 0..=self.mask {
            let at = b * BUCKET_WORDS;
            let line = &mut self.buckets[at..at + BUCKET_WORDS];
            if let Some(s) = line[..SLOTS].iter().position(|&w| w as u32 == i + 1) {
                line[s] = 0;
                return;
            }
            line[SLOTS] -= 1;
            b = (b + 1) & self.mask;
        }
        debug_assert!(false, "entry {i} not in the buckets");
    }

    /// The entry at `i`, read out of the table.
    pub fn get(&self, i: u32) -> Conn {
        let e = self.hot_line(i);
        Conn {
            key: key_of(e),
            state: State::from_bits(e[H_KEY4] >> STATE_SHIFT),
            replied: e[H_KEY4] & REPLIED != 0,
            cached: [self.cached(i, 0), self.cached(i, 1)],
        }
    }

    /// The flow cache's verdict for direction `dir` of connection `i`, if any.
    #[inline]
    pub fn cached(&self, i: u32, dir: usize) -> Option<Cached> {
        let e = self.hot_line(i);
        let bits = (e[H_KEY4] >> CACHE_SHIFT[dir & 1]) & 7;
        (bits & CACHE_SET != 0).then(|| Cached {
            gen: e[H_GEN],
            rule: (e[H_RULES] >> (32 * (dir & 1))) as u32,
            action: (bits & 3) as u8,
        })
    }

    /// Stores the flow cache's verdict for direction `dir` of connection `i`. The two
    /// directions share one generation: generations only grow, so a verdict of an older one
    /// can never match again and is dropped when the other direction stores a newer one.
    #[inline]
    pub fn set_cached(&mut self, i: u32, dir: usize, v: Cached) {
        let at = i as usize * HOT_WORDS;
        let e = &mut self.hot[at..at + HOT_WORDS];
        let d = dir & 1;
        if e[H_GEN] != v.gen {
            e[H_GEN] = v.gen;
            e[H_KEY4] &= !((7 << CACHE_SHIFT[0]) | (7 << CACHE_SHIFT[1]));
        }
        e[H_KEY4] = (e[H_KEY4] & !(7 << CACHE_SHIFT[d]))
            | ((CACHE_SET | u64::from(v.action & 3)) << CACHE_SHIFT[d]);
        e[H_RULES] = (e[H_RULES] & !(0xffff_ffff << (32 * d))) | (u64::from(v.rule) << (32 * d));
    }

    #[inline(always)]
    fn flags(&self, i: u32) -> (State, bool) {
        let w = self.hot[i as usize * HOT_WORDS + H_KEY4];
        (State::from_bits(w >> STATE_SHIFT), w & REPLIED != 0)
    }

    #[inline(always)]
    fn set_flags(&mut self, i: u32, state: State, replied: bool) {
        let w = &mut self.hot[i as usize * HOT_WORDS + H_KEY4];
        *w = (*w & !((0xf << STATE_SHIFT) | REPLIED))
            | (state.bits() << STATE_SHIFT)
            | if replied { REPLIED } else { 0 };
    }

    #[inline(always)]
    fn expires(&self, i: u32) -> u64 {
        self.hot[i as usize * HOT_WORDS + H_EXPIRES]
    }

    fn load_dirs(&self, i: u32) -> [Dir; 2] {
        let at = i as usize * COLD_WORDS;
        let c = &self.cold[at..at + COLD_WORDS];
        let dir = |d: usize| Dir {
            end: c[2 * d] as u32,
            maxend: (c[2 * d] >> 32) as u32,
            maxwin: c[2 * d + 1] as u32,
            fin_seq: (c[2 * d + 1] >> 32) as u32,
            wscale: (c[C_FLAGS] >> (16 * d)) as u8,
            fin: (c[C_FLAGS] >> (16 * d + 8)) & 1 != 0,
        };
        [dir(0), dir(1)]
    }

    fn store_dirs(&mut self, i: u32, dirs: &[Dir; 2]) {
        let at = i as usize * COLD_WORDS;
        let c = &mut self.cold[at..at + COLD_WORDS];
        let mut flags = 0;
        for (d, x) in dirs.iter().enumerate() {
            c[2 * d] = u64::from(x.end) | (u64::from(x.maxend) << 32);
            c[2 * d + 1] = u64::from(x.maxwin) | (u64::from(x.fin_seq) << 32);
            flags |= (u64::from(x.wscale) | (u64::from(x.fin) << 8)) << (16 * d);
        }
        c[C_FLAGS] = flags;
    }

    #[inline(always)]
    fn slot(&self, i: u32) -> u32 {
        self.cold[i as usize * COLD_WORDS + C_SLOT] as u32
    }

    #[inline(always)]
    fn prev_next(&self, i: u32) -> (u32, u32) {
        let w = self.cold[i as usize * COLD_WORDS + C_LINKS];
        (w as u32, (w >> 32) as u32)
    }

    #[inline(always)]
    fn set_links(&mut self, i: u32, slot: u32, prev: u32, next: u32) {
        let at = i as usize * COLD_WORDS;
        self.cold[at + C_LINKS] = u64::from(prev) | (u64::from(next) << 32);
        self.cold[at + C_SLOT] = u64::from(slot);
    }

    #[inline(always)]
    fn set_prev(&mut self, i: u32, prev: u32) {
        let w = &mut self.cold[i as usize * COLD_WORDS + C_LINKS];
        *w = (*w & !0xffff_ffff) | u64::from(prev);
    }

    #[inline(always)]
    fn set_next(&mut self, i: u32, next: u32) {
        let w = &mut self.cold[i as usize * COLD_WORDS + C_LINKS];
        *w = (*w & 0xffff_ffff) | (u64::from(next) << 32);
    }

    #[inline(always)]
    fn timeout(&self, state: State, replied: bool) -> u64 {
        let t = &self.timeouts;
        match state {
            State::SynSent => t.syn_sent,
            State::SynRecv => t.syn_recv,
            State::Established => t.established,
            State::FinWait => t.fin_wait,
            State::LastAck => t.last_ack,
            State::TimeWait => t.time_wait,
            State::Close => t.close,
            State::Udp if replied => t.udp_stream,
            State::Udp => t.udp,
            State::Icmp => t.icmp,
        }
    }

    fn slot_of(&self, expires: u64) -> u32 {
        ((expires / TICK_NS) % WHEEL_SLOTS as u64) as u32
    }

    fn link(&mut self, i: u32) {
        let s = self.slot_of(self.expires(i));
        let head = self.wheel[s as usize];
        self.set_links(i, s, NIL, head);
        if head != NIL {
            self.set_prev(head, i);
        }
        self.wheel[s as usize] = i;
    }

    fn unlink(&mut self, i: u32) {
        let s = self.slot(i);
        let (p, n) = self.prev_next(i);
        if s == NIL {
            return;
        }
        if p != NIL {
            self.set_next(p, n);
        } else {
            self.wheel[s as usize] = n;
        }
        if n != NIL {
            self.set_prev(n, p);
        }
        self.set_links(i, NIL, NIL, NIL);
    }

    /// Sets the expiry from the state; re-files the entry only if it moved earlier. (A live
    /// entry is always filed: `create` files it, and only `poll` unfiles one, to re-file it.)
    #[inline]
    fn refresh(&mut self, i: u32, now: u64) {
        let (state, replied) = self.flags(i);
        let t = now.saturating_add(self.timeout(state, replied));
        let at = i as usize * HOT_WORDS + H_EXPIRES;
        let old = std::mem::replace(&mut self.hot[at], t);
        if t < old {
            self.unlink(i);
            self.link(i);
        }
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let h = key_of(self.hot_line(i)).symmetric_hash64();
        self.erase(i, h);
        self.free.push(i);
    }

    /// Evicts the never-replied connection nearest to expiry, looking a bounded distance
    /// ahead on the wheel. True if one was evicted.
    fn evict_one(&mut self) -> bool {
        let mut looked = 0;
        for d in 0..WHEEL_SLOTS as u64 {
            let s = ((self.tick + d) % WHEEL_SLOTS as u64) as usize;
            let mut i = self.wheel[s];
            while i != NIL {
                if !self.flags(i).1 {
                    self.remove(i);
                    self.counters.early_drops += 1;
                    return true;
                }
                i = self.prev_next(i).1;
                looked += 1;
                if looked > 1024 {
                    return false;
                }
            }
        }
        false
    }

    /// Starts tracking a connection whose first packet has key `k` (and, for TCP, `tcp`).
    /// `None` when the table is full (and early drop found nothing to evict).
    pub fn create(
        &mut self,
        k: &FlowKey,
        state: State,
        tcp: Option<&TcpInfo>,
        now: u64,
    ) -> Option<u32> {
        if !self.started {
            self.started = true;
            self.tick = now / TICK_NS;
        }
        let h = k.symmetric_hash64();
        if let Some((i, _)) = self.lookup_hashed(h, k) {
            // Opened by an earlier packet of the same burst.
            return Some(i);
        }
        if self.free.is_empty() && !(self.early_drop && self.evict_one()) {
            return None;
        }
        let i = self.free.pop()?;
        let mut dirs = [Dir::default(); 2];
        if let Some(t) = tcp {
            let end = t.seq.wrapping_add(t.payload).wrapping_add(1);
            dirs[0] = Dir {
                end,
                maxend: end,
                maxwin: u32::from(t.win).max(1),
                wscale: t.wscale.unwrap_or(0xff),
                ..Dir::default()
            };
        }
        let kw = key_words(k);
        let expires = now.saturating_add(self.timeout(state, false));
        {
            let at = i as usize * HOT_WORDS;
            let e = &mut self.hot[at..at + HOT_WORDS];
            e[..5].copy_from_slice(&kw);
            e[H_KEY4] |= state.bits() << STATE_SHIFT;
            e[H_EXPIRES] = expires;
            e[H_RULES] = 0;
            e[H_GEN] = 0;
        }
        self.store_dirs(i, &dirs);
        self.set_links(i, NIL, NIL, NIL);
        self.insert(i, h);
        self.link(i);
        self.counters.created += 1;
        Some(i)
    }

    /// Tracks a packet of connection `i` in direction `dir` (`tcp` for TCP packets).
    #[inline]
    pub fn track(&mut self, i: u32, dir: usize, tcp: Option<&TcpInfo>, now: u64) -> Track {
        let (state, replied) = self.flags(i);
        let r = match (state, tcp) {
            (State::Udp | State::Icmp, _) => {
                if dir == 1 && !replied {
                    self.set_flags(i, state, true);
                }
                Track::Ok {
                    established: replied || dir == 1,
                }
            }
            (_, None) => Track::Invalid,
            (_, Some(t)) => {
                let mut c = Tcb {
                    state,
                    replied,
                    dirs: self.load_dirs(i),
                };
                let r = tcp_track(&mut c, dir, t);
                self.set_flags(i, c.state, c.replied);
                self.store_dirs(i, &c.dirs);
                r
            }
        };
        match r {
            Track::Ok { .. } => self.refresh(i, now),
            Track::Reopen => self.remove(i),
            Track::Invalid => {}
        }
        r
    }

    /// Timer work: expires what is due up to `now`.
    pub fn poll(&mut self, now: u64) {
        let target = now / TICK_NS;
        if !self.started || target <= self.tick {
            return;
        }
        let steps = (target - self.tick).min(WHEEL_SLOTS as u64);
        let first = target + 1 - steps;
        for t in first..=target {
            let s = (t % WHEEL_SLOTS as u64) as usize;
            let mut i = std::mem::replace(&mut self.wheel[s], NIL);
            while i != NIL {
                let next = self.prev_next(i).1;
                self.set_links(i, NIL, NIL, NIL);
                if self.expires(i) <= now {
                    self.remove(i);
                    self.counters.expired += 1;
                } else {
                    self.link(i);
                }
                i = next;
            }
        }
        self.tick = target;
    }
}

/// TCP state and window tracking for a packet of a known connection.
fn tcp_track(c: &mut Tcb, dir: usize, t: &TcpInfo) -> Track {
    let f = t.flags;
    let syn = f & SYN != 0;
    let ackf = f & ACK != 0;
    // A fresh SYN on a finished connection starts a new one.
    if dir == 0 && syn && !ackf && matches!(c.state, State::TimeWait | State::Close) {
        return Track::Reopen;
    }
    match c.state {
        State::SynSent => {
            if dir == 0 {
                // Retransmitted SYN (same sequence number) only.
                return if syn && !ackf && t.seq.wrapping_add(1) == c.dirs[0].end {
                    Track::Ok { established: false }
                } else {
                    Track::Invalid
                };
            }
            if f & RST != 0 {
                if ackf && t.ack == c.dirs[0].end {
                    c.state = State::Close;
                    c.replied = true;
                    return Track::Ok { established: true };
                }
                return Track::Invalid;
            }
            if !(syn && ackf) || t.ack != c.dirs[0].end {
                return Track::Invalid;
            }
            let both = c.dirs[0].wscale != 0xff && t.wscale.is_some();
            if !both {
                c.dirs[0].wscale = 0;
            }
            let ws = if both {
                t.wscale.unwrap_or(0).min(14)
            } else {
                0
            };
            let end = t.seq.wrapping_add(t.payload).wrapping_add(1);
            let win = u32::from(t.win).max(1);
            c.dirs[1] = Dir {
                end,
                maxend: end.wrapping_add(c.dirs[0].maxwin),
                maxwin: win,
                wscale: ws,
                ..Dir::default()
            };
            c.dirs[0].maxend = t.ack.wrapping_add(win);
            c.dirs[0].wscale = c.dirs[0].wscale.min(14);
            c.state = State::SynRecv;
            c.replied = true;
            Track::Ok { established: true }
        }
        _ => {
            if syn {
                // A retransmitted SYN-ACK is fine; any other SYN on a live connection is not.
                return if dir == 1
                    && ackf
                    && c.state == State::SynRecv
                    && t.seq.wrapping_add(1) == c.dirs[1].end
                {
                    Track::Ok { established: true }
                } else {
                    Track::Invalid
                };
            }
            if !in_window(c, dir, t) {
                return Track::Invalid;
            }
            let o = 1 - dir;
            if f & RST != 0 {
                c.state = State::Close;
                return Track::Ok {
                    established: c.replied,
                };
            }
            if c.state == State::SynRecv && dir == 0 && ackf {
                c.state = State::Established;
            }
            if f & FIN != 0 && !c.dirs[dir].fin {
                c.dirs[dir].fin = true;
                c.dirs[dir].fin_seq = t.seq.wrapping_add(t.payload).wrapping_add(1);
                c.state = if c.dirs[o].fin {
                    State::LastAck
                } else {
                    State::FinWait
                };
            } else if ackf
                && c.state == State::LastAck
                && c.dirs[o].fin
                && !after(c.dirs[o].fin_seq, t.ack)
            {
                c.state = State::TimeWait;
            }
            Track::Ok {
                established: c.replied,
            }
        }
    }
}

/// Rooij's four window checks, then the window bookkeeping.
fn in_window(c: &mut Tcb, dir: usize, t: &TcpInfo) -> bool {
    if t.fragmented {
        return true;
    }
    let o = 1 - dir;
    let (s, r) = (c.dirs[dir], c.dirs[o]);
    let len = t.payload + u32::from(t.flags & FIN != 0);
    let seq = t.seq;
    let end = seq.wrapping_add(len);
    let win = u32::from(t.win) << s.wscale.min(14);
    let maxack = s.maxwin.max(66_000);
    let ok_upper = !after(seq, s.maxend);
    let ok_lower = !before(end, s.end.wrapping_sub(r.maxwin).wrapping_sub(1));
    let ack_ok = t.flags & ACK == 0
        || (!after(t.ack, r.end.wrapping_add(1)) && !before(t.ack, r.end.wrapping_sub(maxack)));
    if !(ok_upper && ok_lower && ack_ok) {
        return false;
    }
    let d = &mut c.dirs[dir];
    if after(end, d.end) {
        d.end = end;
    }
    if win > d.maxwin {
        d.maxwin = win;
    }
    if t.flags & ACK != 0 {
        let edge = t.ack.wrapping_add(win.max(1));
        let od = &mut c.dirs[o];
        if after(edge, od.maxend) {
            od.maxend = edge;
        }
    }
    let d = &mut c.dirs[dir];
    if after(d.end, d.maxend) {
        d.maxend = d.end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key() -> FlowKey {
        FlowKey::v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            40000,
            80,
            6,
        )
    }

    fn tcp(seq: u32, ack: u32, flags: u8, payload: u32) -> TcpInfo {
        TcpInfo {
            seq,
            ack,
            flags,
            win: 65535,
            payload,
            wscale: None,
            fragmented: false,
        }
    }

    #[test]
    fn tcp_handshake_data_teardown() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(100, 0, SYN, 0)), 0)
            .unwrap();
        assert_eq!(t.lookup(&k), Some((i, 0)));
        assert_eq!(t.lookup(&k.reversed()), Some((i, 1)));
        // Retransmitted SYN.
        assert_eq!(
            t.track(i, 0, Some(&tcp(100, 0, SYN, 0)), 1),
            Track::Ok { established: false }
        );
        // SYN-ACK acking the wrong number is invalid; the right one establishes.
        assert_eq!(
            t.track(i, 1, Some(&tcp(500, 99, SYN | ACK, 0)), 2),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(500, 101, SYN | ACK, 0)), 2),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::SynRecv);
        assert_eq!(
            t.track(i, 0, Some(&tcp(101, 501, ACK, 0)), 3),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::Established);
        assert_eq!(
            t.track(i, 0, Some(&tcp(101, 501, ACK, 1000)), 4),
            Track::Ok { established: true }
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 1101, ACK, 0)), 5),
            Track::Ok { established: true }
        );
        // Far outside the window: invalid; acking unsent data: invalid.
        assert_eq!(
            t.track(i, 0, Some(&tcp(101 + 3_000_000, 501, ACK, 10)), 6),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 1101 + 5000, ACK, 0)), 6),
            Track::Invalid
        );
        // A SYN on an established connection is invalid.
        assert_eq!(t.track(i, 0, Some(&tcp(7, 0, SYN, 0)), 6), Track::Invalid);
        // Teardown.
        t.track(i, 0, Some(&tcp(1101, 501, FIN | ACK, 0)), 7);
        assert_eq!(t.get(i).state, State::FinWait);
        t.track(i, 1, Some(&tcp(501, 1102, FIN | ACK, 0)), 8);
        assert_eq!(t.get(i).state, State::LastAck);
        t.track(i, 0, Some(&tcp(1102, 502, ACK, 0)), 9);
        assert_eq!(t.get(i).state, State::TimeWait);
        // TIME_WAIT expires after its timeout, on the virtual clock.
        t.poll(9 + Timeouts::default().time_wait - SEC);
        assert_eq!(t.len(), 1);
        t.poll(10 + Timeouts::default().time_wait + SEC);
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup(&k), None);
        assert_eq!(t.counters.expired, 1);
    }

    #[test]
    fn rst_in_window_closes_out_of_window_is_invalid() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(100, 0, SYN, 0)), 0)
            .unwrap();
        t.track(i, 1, Some(&tcp(500, 101, SYN | ACK, 0)), 1);
        t.track(i, 0, Some(&tcp(101, 501, ACK, 0)), 2);
        assert_eq!(
            t.track(i, 1, Some(&tcp(501 + 4_000_000, 0, RST, 0)), 3),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 0, RST, 0)), 3),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::Close);
        // A new SYN reuses the tuple.
        assert_eq!(t.track(i, 0, Some(&tcp(9000, 0, SYN, 0)), 4), Track::Reopen);
        assert_eq!(t.lookup(&k), None);
    }

    #[test]
    fn established_lives_long_unreplied_udp_expires() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let u = FlowKey::v4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            5,
            53,
            17,
        );
        let i = t.create(&u, State::Udp, None, 0).unwrap();
        let u2 = FlowKey { src_port: 6, ..u };
        let j = t.create(&u2, State::Udp, None, 0).unwrap();
        assert_eq!(t.track(j, 1, None, SEC), Track::Ok { established: true });
        t.poll(31 * SEC);
        assert_eq!(
            t.len(),
            1,
            "unreplied UDP gone after 30 s, replied one stays"
        );
        assert!(t.lookup(&u).is_none());
        let _ = i;
        t.poll(200 * SEC);
        assert_eq!(t.len(), 0);
        // A two-hour jump on the virtual clock with a long-lived entry.
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(1, 0, SYN, 0)), 300 * SEC)
            .unwrap();
        t.track(i, 1, Some(&tcp(9, 2, SYN | ACK, 0)), 300 * SEC);
        t.track(i, 0, Some(&tcp(2, 10, ACK, 0)), 300 * SEC);
        t.poll(7200 * SEC);
        assert_eq!(t.len(), 1);
        t.poll(300 * SEC + Timeouts::default().established + SEC);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_table_refuses_or_early_drops() {
        let mut t = Table::new(2, Timeouts::default(), false);
        let k = |p| {
            FlowKey::v4(
                Ipv4Addr::new(1, 1, 1, 1),
                Ipv4Addr::new(2, 2, 2, 2),
                p,
                80,
                6,
            )
        };
        let a = t
            .create(&k(1), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .unwrap();
        t.track(a, 1, Some(&tcp(9, 2, SYN | ACK, 0)), 0);
        t.create(&k(2), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .unwrap();
        assert!(t
            .create(&k(3), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .is_none());
        t.early_drop = true;
        assert!(t
            .create(&k(3), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .is_some());
        assert!(t.lookup(&k(2)).is_none(), "the half-open one was evicted");
        assert!(t.lookup(&k(1)).is_some(), "the replied one stays");
        assert_eq!(t.counters.early_drops, 1);
    }

    #[test]
    fn index_matches_a_model_through_overflow_and_deletes() {
        // Small tables overflow buckets often; random opens and closes against a map.
        for cap in [1usize, 3, 8, 50, 300] {
            let mut t = Table::new(cap, Timeouts::default(), false);
            let mut model: std::collections::HashMap<FlowKey, u32> = Default::default();
            let mut x = 0x1234_5678_9abc_def0u64 ^ cap as u64;
            let mut rnd = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            for step in 0..20_000u64 {
                let r = rnd();
                let p = (r % (3 * cap as u64 + 5)) as u16;
                let v6 = r & (1 << 20) != 0;
                let k = if v6 {
                    FlowKey::v6(
                        std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, p),
                        std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
                        p,
                        53,
                        17,
                    )
                } else {
                    FlowKey::v4(
                        Ipv4Addr::new(10, 0, (p >> 8) as u8, p as u8),
                        Ipv4Addr::new(10, 9, 9, 9),
                        p,
                        53,
                        17,
                    )
                };
                let k = if r & (1 << 21) != 0 { k.reversed() } else { k };
                let want = model
                    .get(&k)
                    .map(|&i| (i, 0))
                    .or_else(|| model.get(&k.reversed()).map(|&i| (i, 1)));
                assert_eq!(t.lookup(&k), want, "cap {cap} step {step}");
                match want {
                    Some((i, _)) if r & (1 << 22) != 0 => {
                        // Close it: a reused TCP tuple is the packet path's way to delete.
                        let key = t.get(i).key;
                        t.remove(i);
                        model.remove(&key);
                    }
                    Some(_) => {}
                    None => {
                        if let Some(i) = t.create(&k, State::Udp, None, step) {
                            assert_eq!(t.get(i).key, k);
                            model.insert(k, i);
                        } else {
                            assert_eq!(model.len(), cap);
                        }
                    }
                }
                assert_eq!(t.len(), model.len());
            }
        }
    }

    #[test]
    fn flow_cache_generations() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let i = t.create(&key(), State::Udp, None, 0).unwrap();
        assert_eq!(t.cached(i, 0), None);
        let v = |gen, rule, action| Cached { gen, rule, action };
        t.set_cached(i, 0, v(3, 7, 0));
        t.set_cached(i, 1, v(3, u32::MAX, 2));
        assert_eq!(t.cached(i, 0), Some(v(3, 7, 0)));
        assert_eq!(t.cached(i, 1), Some(v(3, u32::MAX, 2)));
        // A newer generation in one direction: the other's older verdict could never match.
        t.set_cached(i, 1, v(4, 9, 1));
        assert_eq!(t.cached(i, 0), None);
        assert_eq!(t.cached(i, 1), Some(v(4, 9, 1)));
        assert_eq!(t.get(i).key, key());
        assert_eq!(t.get(i).state, State::Udp);
    }
}
