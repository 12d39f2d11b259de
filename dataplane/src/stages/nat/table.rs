//! The per-worker session table: fixed capacity, open addressing, a timer wheel, no allocation
//! after start-up.
//!
//! A NAT44 holds millions of mappings per core and looks one up for every packet, so the table
//! is laid out for one or two cache misses and never grows:
//!
//! * [`Session`] entries live in one array reserved at start-up (`capacity` entries); free
//!   entries are recycled through a free list reserved at the same time.
//! * Two open-addressing indexes of `u32` entry numbers (linear probing, load at most 1/2,
//!   backward-shift deletion, so no tombstones ever accumulate) find an entry by its inside
//!   key `(proto, inside address, inside port)` and by its outside key `(proto, outside
//!   address, outside port)`. A slot holds the entry number and a 6-bit tag of the key's
//!   hash; the key is compared against the entry itself (which the packet path reads anyway)
//!   only where the tag matches, so other keys' entries in a probe run are never read.
//! * A timer wheel of one-second buckets, 8192 of them (2 h 16 min, longer than the longest
//!   default timeout), links entries through a parallel array of `prev`/`next` links, kept
//!   out of the 32-byte entry the packet path reads (one cache line, never two). A refresh only moves
//!   the deadline; an entry found in its bucket before its deadline is put back where the
//!   deadline falls (the lazy scheme VPP uses), so a busy flow costs no list work. Shortening
//!   a deadline (RST, both FINs) moves the entry at once.
//!
//! Memory per session: 32 bytes of entry, 8 of wheel links, 2 indexes × 2 slots × 4 bytes and
//! 4 bytes of free list = 60 bytes, plus 28 bytes per subscriber (see [`Subscribers`]). A 1M-session table is
//! about 60 MiB per worker.

/// No entry.
pub const NIL: u32 = u32::MAX;
/// [`Table::warm`]: the key is looked up in the outside index.
pub const WARM_EXT: u64 = 1 << 63;
/// [`Table::warm`]: nothing to warm for this packet.
pub const WARM_NONE: u64 = u64::MAX;
/// Bytes of memory per session (entry plus index slots), as stated in the module doc.
pub const BYTES_PER_SESSION: usize = 60;
/// Buckets in the timer wheel (seconds).
pub const WHEEL: u32 = 8192;

/// The 56-bit key of a mapping endpoint: protocol, IPv4 address, port (or ICMP identifier).
#[inline(always)]
pub fn key(proto: u8, addr: u32, port: u16) -> u64 {
    (u64::from(proto) << 48) | (u64::from(addr) << 16) | u64::from(port)
}

#[inline(always)]
fn mix(k: u64, seed: u64) -> u64 {
    let h = (k ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// One mapping (endpoint-independent: one per inside endpoint and protocol): everything a
/// packet reads or writes, in 32 bytes aligned to 32, so an entry never straddles two cache
/// lines (a 40-byte entry did for 3 in 8 sessions: a second miss). The wheel's list links,
/// touched only when a session is made, expires or has its deadline shortened, live apart
/// (a parallel array).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(32))]
pub struct Session {
    /// Inside address.
    pub in_addr: u32,
    /// Outside (pool) address.
    pub ext_addr: u32,
    /// The two most recent remote addresses (address-dependent filtering).
    pub peers: [u32; 2],
    /// Inside port or ICMP identifier.
    pub in_port: u16,
    /// Outside port or ICMP identifier.
    pub ext_port: u16,
    /// IP protocol.
    pub proto: u8,
    /// TCP state bits (`tcp::*`) and [`STATIC`].
    pub state: u8,
    /// Inside port (interface) the mapping's host sits behind.
    pub in_if: u16,
    /// Expiry, in seconds of the worker clock.
    pub deadline: u32,
    /// The wheel slot (second) the entry is linked at.
    pub sched: u32,
}

const _: () = assert!(std::mem::size_of::<Session>() == 32);

/// A session's links in its wheel bucket's list.
#[derive(Debug, Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// `Session::state` bit: created from a static mapping (its port is not from the pool).
pub const STATIC: u8 = 0x80;

impl Session {
    /// The inside key.
    #[inline(always)]
    pub fn in_key(&self) -> u64 {
        key(self.proto, self.in_addr, self.in_port)
    }
    /// The outside key.
    #[inline(always)]
    pub fn ext_key(&self) -> u64 {
        key(self.proto, self.ext_addr, self.ext_port)
    }
}

/// `n` zeros, advised onto transparent hugepages before the kernel maps them (a big index is
/// probed at random).
fn huge_zeroed(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::with_capacity(n);
    pmd::mem::advise_huge(v.spare_capacity_mut());
    v.resize(n, 0);
    v
}

/// Bits of an index slot that hold the entry number (plus one); the 6 above hold a tag.
const ID_BITS: u32 = 26;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
/// Most entries an [`Index`] (so a table, or a subscriber set) can number.
pub const MAX_ENTRIES: usize = ID_MASK as usize;

/// An open-addressing index of entry numbers. A slot is 0 when empty, else the entry number
/// plus one in its low 26 bits and a 6-bit tag of the key's hash above: a lookup skips, without
/// reading the entry, the slots whose tag differs (63 in 64 of the other keys), so a probe run
/// costs the entry line only where the key is likely to be.
#[derive(Debug)]
pub struct Index {
    slots: Vec<u32>,
    mask: usize,
    seed: u64,
}

impl Index {
    /// An index for up to `capacity` entries (at most half full).
    pub fn new(capacity: usize, seed: u64) -> Index {
        let n = Self::slots_for(capacity);
        Index {
            slots: huge_zeroed(n),
            mask: n - 1,
            seed,
        }
    }

    /// Slots an index for `capacity` entries has (a power of two, at least twice `capacity`).
    pub fn slots_for(capacity: usize) -> usize {
        (capacity.max(8) * 2).next_power_of_two()
    }

    /// Bytes of the slot array.
    pub fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<u32>()
    }

    /// `k`'s home slot and tag.
    #[inline(always)]
    fn place(&self, k: u64) -> (usize, u32) {
        let h = mix(k, self.seed);
        (h as usize & self.mask, ((h >> 58) as u32) << ID_BITS)
    }

    #[inline(always)]
    fn home(&self, k: u64) -> usize {
        self.place(k).0
    }

    /// The entry number a slot holds, if it is not empty and carries tag `tag`.
    #[inline(always)]
    fn entry(s: u32, tag: u32) -> Option<u32> {
        (s != 0 && s & !ID_MASK == tag).then(|| (s & ID_MASK) - 1)
    }

    /// The entry with key `k` (`key_of` gives an entry's key).
    #[inline]
    pub fn find(&self, k: u64, key_of: impl Fn(u32) -> u64) -> Option<u32> {
        let (mut i, tag) = self.place(k);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if let Some(id) = Self::entry(s, tag) {
                if key_of(id) == k {
                    return Some(id);
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Adds entry `id` (below [`MAX_ENTRIES`]) under `k` (not present; the caller keeps the
    /// load at most 1/2).
    #[inline]
    pub fn insert(&mut self, k: u64, id: u32) {
        debug_assert!((id as usize) < MAX_ENTRIES);
        let (mut i, tag) = self.place(k);
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = tag | (id + 1);
    }

    /// Removes entry `id` (stored under `k`), shifting later entries of its probe run back.
    pub fn remove(&mut self, k: u64, id: u32, key_of: impl Fn(u32) -> u64) {
        let mut i = self.home(k);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return;
            }
            if s & ID_MASK == id + 1 {
                break;
            }
            i = (i + 1) & self.mask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let home = self.home(key_of((s & ID_MASK) - 1));
            // Move `s` into the hole unless its home lies cyclically in (i, j].
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(i) & self.mask;
            if dist_home >= dist_hole {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
    }
}

/// Sessions: entries, both indexes and the wheel.
#[derive(Debug)]
pub struct Table {
    /// The entries (indexed by entry number).
    pub s: Vec<Session>,
    /// The wheel links of `s[i]`.
    links: Vec<Link>,
    free: Vec<u32>,
    cap: usize,
    by_in: Index,
    by_ext: Index,
    heads: Vec<u32>,
    /// Next wheel second to process.
    cur: u32,
    started: bool,
}

impl Table {
    /// A table of `capacity` sessions.
    pub fn new(capacity: usize, seed: u64) -> Table {
        let capacity = capacity.min(MAX_ENTRIES);
        let mut s = Vec::with_capacity(capacity);
        pmd::mem::advise_huge(s.spare_capacity_mut());
        let mut links = Vec::with_capacity(capacity);
        pmd::mem::advise_huge(links.spare_capacity_mut());
        let mut free = Vec::with_capacity(capacity);
        pmd::mem::advise_huge(free.spare_capacity_mut());
        Table {
            s,
            links,
            free,
            cap: capacity,
            by_in: Index::new(capacity, seed),
            by_ext: Index::new(capacity, seed.rotate_left(17) ^ 0x5bd1_e995),
            heads: vec![NIL; WHEEL as usize],
            cur: 0,
            started: false,
        }
    }

    /// Sessions in use.
    pub fn len(&self) -> usize {
        self.s.len() - self.free.len()
    }

    /// Sessions the table holds at most.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes reserved at start-up for a table of `capacity` sessions: the entries, the free
    /// list, both indexes (rounded up to a power of two) and the wheel.
    pub fn reserved_bytes(capacity: usize) -> usize {
        capacity
            * (std::mem::size_of::<Session>()
                + std::mem::size_of::<Link>()
                + std::mem::size_of::<u32>())
            + 2 * Index::slots_for(capacity) * std::mem::size_of::<u32>()
            + WHEEL as usize * std::mem::size_of::<u32>()
    }

    /// Bytes this table reserved (what [`Self::reserved_bytes`] predicts; pages are touched
    /// as sessions are made, so the resident share grows with use).
    pub fn memory_bytes(&self) -> usize {
        self.s.capacity() * std::mem::size_of::<Session>()
            + self.links.capacity() * std::mem::size_of::<Link>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + self.by_in.memory_bytes()
            + self.by_ext.memory_bytes()
            + self.heads.len() * std::mem::size_of::<u32>()
    }

    /// True when no session is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when no session can be added.
    pub fn is_full(&self) -> bool {
        self.len() >= self.cap
    }

    /// The session with inside key `k`.
    #[inline]
    pub fn find_in(&self, k: u64) -> Option<u32> {
        let s = &self.s;
        self.by_in.find(k, |i| s[i as usize].in_key())
    }

    /// The session with outside key `k`.
    #[inline]
    pub fn find_ext(&self, k: u64) -> Option<u32> {
        let s = &self.s;
        self.by_ext.find(k, |i| s[i as usize].ext_key())
    }

    /// Prefetches, for a burst of lookups, the lines they will read: every key's home index
    /// slot (all keys first), then the entries that slot and the next one name (at load 1/2 a
    /// key sits in one of the two most of the time). The misses of different keys overlap (a
    /// few dozen in flight) instead of following one another as they do when each packet is
    /// looked up in turn; the lookups that follow then hit the cache.
    ///
    /// `keys[i]` (at most 64) is a key as [`key`] makes it, with [`WARM_EXT`] set for the
    /// outside index, or [`WARM_NONE`]. Only a hint: nothing changes. Returns a mask of the
    /// keys whose home slot is empty (bit `i` for `keys[i]`): most likely new mappings.
    #[inline]
    pub fn warm(&self, keys: &[u64]) -> u64 {
        let keys = &keys[..keys.len().min(64)];
        let mut at = [(0usize, 0u32); 64];
        for (k, a) in keys.iter().zip(at.iter_mut()) {
            if *k != WARM_NONE {
                let idx = self.index_of(*k);
                *a = idx.place(*k & !WARM_EXT);
                pmd::cpu::prefetch(&idx.slots[a.0]);
            }
        }
        let mut empty = 0u64;
        for (i, (k, &(a, tag))) in keys.iter().zip(at.iter()).enumerate() {
            if *k == WARM_NONE {
                continue;
            }
            let idx = self.index_of(*k);
            let first = idx.slots[a];
            empty |= u64::from(first == 0) << i;
            for s in [first, idx.slots[(a + 1) & idx.mask]] {
                if let Some(e) = Index::entry(s, tag).and_then(|id| self.s.get(id as usize)) {
                    pmd::cpu::prefetch(e);
                }
            }
        }
        empty
    }

    /// Like [`Self::warm`] for keys of the outside index only (`keys` without [`WARM_EXT`], at
    /// most 64), for lookups expected to miss: loads every key's home slot, then the entries of
    /// its probe run up to the first empty slot (at most three), which is what such a lookup
    /// compares. Only a hint: nothing changes.
    #[inline]
    pub fn warm_ext_runs(&self, keys: &[u64]) {
        let keys = &keys[..keys.len().min(64)];
        let idx = &self.by_ext;
        let mut at = [(0usize, 0u32); 64];
        for (&k, a) in keys.iter().zip(at.iter_mut()) {
            *a = idx.place(k);
            pmd::cpu::prefetch(&idx.slots[a.0]);
        }
        for &(a, tag) in &at[..keys.len()] {
            let mut a = a;
            for _ in 0..3 {
                let s = idx.slots[a];
                if s == 0 {
                    break;
                }
                // Only entries with the key's tag are read by the lookup.
                if let Some(e) = Index::entry(s, tag).and_then(|id| self.s.get(id as usize)) {
                    pmd::cpu::prefetch(e);
                }
                a = (a + 1) & idx.mask;
            }
        }
    }

    /// After [`Self::warm`], for the keys in `ask`: walks each key's probe run over the lines
    /// `warm` loaded (at most three slots) and records the entry found as `found[i] = id + 1`
    /// (0: not found there), so the packet's own lookup need not walk it again. Returns the
    /// keys certainly absent (bit `i` for `keys[i]`), found so from those lines alone: their
    /// home slot is empty, or the entries before the first empty slot have other keys. A key
    /// whose run goes on further is neither found nor reported (the real lookup decides).
    /// Nothing changes.
    #[inline]
    pub fn probe(&self, keys: &[u64], ask: u64, found: &mut [u32; 64]) -> u64 {
        let mut out = 0u64;
        for (i, &k) in keys.iter().enumerate().take(64) {
            found[i] = 0;
            if ask >> i & 1 == 0 || k == WARM_NONE {
                continue;
            }
            let ext = k & WARM_EXT != 0;
            let k = k & !WARM_EXT;
            let idx = if ext { &self.by_ext } else { &self.by_in };
            let (mut a, tag) = idx.place(k);
            for _ in 0..3 {
                let s = idx.slots[a];
                if s == 0 {
                    out |= 1 << i;
                    break;
                }
                if let Some(id) = Index::entry(s, tag) {
                    let Some(e) = self.s.get(id as usize) else {
                        break;
                    };
                    if (if ext { e.ext_key() } else { e.in_key() }) == k {
                        found[i] = id + 1;
                        break;
                    }
                }
                a = (a + 1) & idx.mask;
            }
        }
        out
    }

    #[inline(always)]
    fn index_of(&self, k: u64) -> &Index {
        if k & WARM_EXT != 0 {
            &self.by_ext
        } else {
            &self.by_in
        }
    }

    /// Adds a session (the caller checked [`Self::is_full`] and that both keys are free).
    pub fn add(&mut self, e: Session, now: u32) -> u32 {
        self.start(now);
        let id = match self.free.pop() {
            Some(id) => {
                self.s[id as usize] = e;
                self.links[id as usize] = UNLINKED;
                id
            }
            None => {
                self.s.push(e);
                self.links.push(UNLINKED);
                (self.s.len() - 1) as u32
            }
        };
        self.by_in.insert(e.in_key(), id);
        self.by_ext.insert(e.ext_key(), id);
        self.link(id);
        id
    }

    /// Sets a session's deadline; moves it on the wheel only if the deadline came earlier.
    #[inline]
    pub fn set_deadline(&mut self, id: u32, deadline: u32) {
        let e = &mut self.s[id as usize];
        let old = e.sched;
        e.deadline = deadline;
        if deadline < old {
            self.unlink(id);
            self.link(id);
        }
    }

    /// Moves an empty wheel to `now` (so the first sessions after a clock jump are linked at
    /// the right slot); a wheel with sessions is advanced only by [`Self::expired`].
    #[inline]
    pub fn sync_empty(&mut self, now: u32) {
        if self.is_empty() {
            self.started = true;
            self.cur = now;
        }
    }

    fn start(&mut self, now: u32) {
        if !self.started {
            self.started = true;
            self.cur = now;
        }
    }

    fn link(&mut self, id: u32) {
        let cur = self.cur;
        let e = &mut self.s[id as usize];
        let slot = e.deadline.clamp(cur, cur.saturating_add(WHEEL - 1));
        e.sched = slot;
        let b = (slot % WHEEL) as usize;
        let head = self.heads[b];
        self.links[id as usize] = Link {
            prev: NIL,
            next: head,
        };
        if head != NIL {
            self.links[head as usize].prev = id;
        }
        self.heads[b] = id;
    }

    fn unlink(&mut self, id: u32) {
        let l = self.links[id as usize];
        if l.prev != NIL {
            self.links[l.prev as usize].next = l.next;
        } else {
            let b = (self.s[id as usize].sched % WHEEL) as usize;
            if self.heads[b] == id {
                self.heads[b] = l.next;
            }
        }
        if l.next != NIL {
            self.links[l.next as usize].prev = l.prev;
        }
    }

    /// Removes a session.
    pub fn remove(&mut self, id: u32) {
        self.unlink(id);
        let e = self.s[id as usize];
        let s = &self.s;
        self.by_in
            .remove(e.in_key(), id, |i| s[i as usize].in_key());
        self.by_ext
            .remove(e.ext_key(), id, |i| s[i as usize].ext_key());
        self.free.push(id);
    }

    /// Advances the wheel towards `now`, moving up to `out.len()` sessions whose deadline has
    /// passed into `out` (unlinked from the wheel; the caller ends each with [`Self::remove`])
    /// and re-linking those found early. Returns how many; call again while it fills `out`.
    pub fn expired(&mut self, now: u32, out: &mut [u32]) -> usize {
        self.start(now);
        let mut n = 0;
        if now < self.cur {
            return 0;
        }
        if now - self.cur >= WHEEL {
            self.cur = now - WHEEL + 1;
        }
        while self.cur <= now {
            let b = (self.cur % WHEEL) as usize;
            loop {
                let id = self.heads[b];
                if id == NIL {
                    break;
                }
                if self.s[id as usize].deadline <= now && n == out.len() {
                    return n;
                }
                let next = self.links[id as usize].next;
                self.heads[b] = next;
                if next != NIL {
                    self.links[next as usize].prev = NIL;
                }
                self.links[id as usize] = UNLINKED;
                let e = &mut self.s[id as usize];
                if e.deadline <= now {
                    // Detached: `remove`'s unlink finds it in no list and leaves the lists alone.
                    e.sched = self.cur.wrapping_add(1);
                    out[n] = id;
                    n += 1;
                } else {
                    self.link(id);
                }
            }
            self.cur += 1;
        }
        n
    }
}

/// Subscribers (inside addresses with at least one mapping): their paired outside address
/// and how many ports they hold (RFC 6888 per-subscriber limit). 16 bytes each, plus 8 of index
/// and 4 of free list.
#[derive(Debug)]
pub struct Subscribers {
    /// Entries: (inside address, pool address index, ports held, unused).
    pub e: Vec<[u32; 4]>,
    free: Vec<u32>,
    idx: Index,
}

impl Subscribers {
    /// Room for `capacity` subscribers.
    pub fn new(capacity: usize, seed: u64) -> Subscribers {
        let capacity = capacity.min(MAX_ENTRIES);
        Subscribers {
            e: {
                let mut e = Vec::with_capacity(capacity);
                pmd::mem::advise_huge(e.spare_capacity_mut());
                e
            },
            free: Vec::with_capacity(capacity),
            idx: Index::new(capacity, seed ^ 0x27d4_eb2f_1656_67c5),
        }
    }

    /// The subscriber entry of `addr`.
    #[inline]
    pub fn find(&self, addr: u32) -> Option<u32> {
        let e = &self.e;
        self.idx
            .find(u64::from(addr), |i| u64::from(e[i as usize][0]))
    }

    /// Adds a subscriber (the caller keeps the count within capacity).
    pub fn add(&mut self, addr: u32, pool_idx: u32) -> u32 {
        let v = [addr, pool_idx, 0, 0];
        let id = match self.free.pop() {
            Some(id) => {
                self.e[id as usize] = v;
                id
            }
            None => {
                self.e.push(v);
                (self.e.len() - 1) as u32
            }
        };
        self.idx.insert(u64::from(addr), id);
        id
    }

    /// Removes a subscriber.
    pub fn remove(&mut self, id: u32) {
        let addr = self.e[id as usize][0];
        let e = &self.e;
        self.idx
            .remove(u64::from(addr), id, |i| u64::from(e[i as usize][0]));
        self.free.push(id);
    }

    /// Prefetches the index slot and then the entry each of `addrs` (at most 64) will be looked up
    /// by, all slots first, so the misses overlap (see [`Table::warm`]). Only a hint.
    #[inline]
    pub fn warm(&self, addrs: &[u32]) {
        let addrs = &addrs[..addrs.len().min(64)];
        let mut at = [(0usize, 0u32); 64];
        for (&a, h) in addrs.iter().zip(at.iter_mut()) {
            *h = self.idx.place(u64::from(a));
            pmd::cpu::prefetch(&self.idx.slots[h.0]);
        }
        for &(h, tag) in &at[..addrs.len()] {
            let s = self.idx.slots[h];
            if let Some(e) = Index::entry(s, tag).and_then(|id| self.e.get(id as usize)) {
                pmd::cpu::prefetch(e);
            }
        }
    }

    /// Bytes reserved at start-up for `capacity` subscribers (entries, free list, index).
    pub fn reserved_bytes(capacity: usize) -> usize {
        capacity * (16 + 4) + Index::slots_for(capacity) * std::mem::size_of::<u32>()
    }

    /// Bytes these subscribers reserved.
    pub fn memory_bytes(&self) -> usize {
        self.e.capacity() * 16 + self.free.capacity() * 4 + self.idx.memory_bytes()
    }

    /// Subscribers present.
    pub fn len(&self) -> usize {
        self.e.len() - self.free.len()
    }

    /// True when none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sess(i: u32) -> Session {
        Session {
            in_addr: 0x0a00_0000 | (i >> 8),
            in_port: (i & 0xff) as u16 + 1000,
            ext_addr: 0xc633_6401,
            ext_port: i as u16,
            proto: 17,
            deadline: 100 + i % 50,
            ..Session::default()
        }
    }

    #[test]
    fn a_million_sessions_fill_find_and_expire() {
        let cap = 1usize << 20;
        let mut t = Table::new(cap, 3);
        let s = |i: u32| Session {
            in_addr: 0x0a00_0000 + (i >> 6),
            in_port: 1024 + (i & 63) as u16,
            ext_addr: 0xc633_6400 + (i >> 16),
            ext_port: i as u16,
            proto: 6,
            deadline: 100 + i % 7000,
            ..Session::default()
        };
        for i in 0..cap as u32 {
            t.add(s(i), 0);
        }
        assert!(t.is_full());
        for i in (0..cap as u32).step_by(7) {
            let id = t.find_in(s(i).in_key()).unwrap();
            assert_eq!(t.find_ext(s(i).ext_key()), Some(id));
        }
        let mut out = vec![0u32; 4096];
        let mut gone = 0;
        loop {
            let n = t.expired(8000, &mut out);
            for &id in &out[..n] {
                t.remove(id);
            }
            gone += n;
            if n < out.len() {
                break;
            }
        }
        assert_eq!(gone, cap);
        assert!(t.is_empty());
    }

    #[test]
    fn a_session_is_32_bytes_and_never_straddles_two_lines() {
        assert_eq!(std::mem::size_of::<Session>(), 32);
        let t = Table::new(1000, 1);
        assert_eq!(t.s.as_ptr() as usize % 32, 0);
        assert_eq!(
            Table::reserved_bytes(1 << 20) / (1 << 20),
            BYTES_PER_SESSION,
            "the stated bytes per session (at a power-of-two capacity)"
        );
    }

    #[test]
    fn warm_flags_the_keys_whose_home_slot_is_empty() {
        let mut t = Table::new(1024, 5);
        let a = sess(1);
        t.add(a, 0);
        let keys = [
            a.in_key(),
            sess(2).in_key(),
            WARM_NONE,
            a.ext_key() | WARM_EXT,
        ];
        assert_eq!(t.warm(&keys), 0b0010);
        assert_eq!(Table::new(16, 1).warm(&keys), 0b1011);
    }

    #[test]
    fn probe_finds_present_keys_and_reports_only_keys_certainly_missing() {
        let mut t = Table::new(4096, 9);
        let all: Vec<Session> = (0..3000).map(sess).collect();
        for s in &all[..2000] {
            t.add(*s, 0);
        }
        let (mut seen_absent, mut seen_found) = (0, 0);
        for chunk in all.chunks(64) {
            let keys: Vec<u64> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if i % 2 == 0 {
                        s.in_key()
                    } else {
                        s.ext_key() | WARM_EXT
                    }
                })
                .collect();
            t.warm(&keys);
            let mut found = [0u32; 64];
            let got = t.probe(&keys, u64::MAX, &mut found);
            for (i, &k) in keys.iter().enumerate() {
                let present = if k & WARM_EXT != 0 {
                    t.find_ext(k & !WARM_EXT)
                } else {
                    t.find_in(k)
                };
                if got >> i & 1 != 0 {
                    assert!(present.is_none(), "key {k:#x} reported absent");
                    seen_absent += 1;
                }
                if found[i] != 0 {
                    assert_eq!(Some(found[i] - 1), present, "key {k:#x} found elsewhere");
                    seen_found += 1;
                }
            }
            assert_eq!(t.probe(&keys, 0, &mut found), 0);
            assert!(found.iter().all(|&f| f == 0));
        }
        // Most of the 1000 missing keys are found missing, and most of the 2000 present ones
        // found, from the loaded lines alone.
        assert!(seen_absent > 800, "{seen_absent}");
        assert!(seen_found > 1800, "{seen_found}");
    }

    #[test]
    fn memory_is_what_the_doc_says() {
        let cap = 1usize << 20;
        let t = Table::new(cap, 1);
        assert_eq!(t.memory_bytes(), Table::reserved_bytes(cap));
        // 60 bytes per session (the wheel adds 32 KiB per table).
        assert_eq!(
            t.memory_bytes() - WHEEL as usize * 4,
            cap * BYTES_PER_SESSION
        );
        let s = Subscribers::new(cap, 1);
        assert_eq!(s.memory_bytes(), Subscribers::reserved_bytes(cap));
        assert_eq!(s.memory_bytes(), cap * 28);
    }

    #[test]
    fn index_matches_a_hashmap_under_churn() {
        let mut t = Table::new(4096, 7);
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x = 12345u64;
        for round in 0..40_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % 6000) as u32;
            let s = sess(i);
            match t.find_in(s.in_key()) {
                Some(id) => {
                    assert_eq!(model.get(&s.in_key()), Some(&id));
                    assert_eq!(t.find_ext(s.ext_key()), Some(id));
                    if round % 3 == 0 {
                        t.remove(id);
                        model.remove(&s.in_key());
                    }
                }
                None => {
                    assert!(!model.contains_key(&s.in_key()));
                    if !t.is_full() {
                        let id = t.add(s, 0);
                        model.insert(s.in_key(), id);
                    }
                }
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, id) in &model {
            assert_eq!(t.find_in(*k), Some(*id));
        }
    }

    #[test]
    fn wheel_expires_at_deadline_and_honours_refresh_and_shortening() {
        let mut t = Table::new(16, 1);
        let a = t.add(
            Session {
                deadline: 10,
                ..sess(1)
            },
            0,
        );
        let b = t.add(
            Session {
                deadline: 20_000,
                ..sess(2)
            },
            0,
        );
        let c = t.add(
            Session {
                deadline: 300,
                ..sess(3)
            },
            0,
        );
        let mut gone = Vec::new();
        let run = |t: &mut Table, now: u32, gone: &mut Vec<u32>| {
            let mut out = [0u32; 1];
            loop {
                let n = t.expired(now, &mut out);
                for &id in &out[..n] {
                    gone.push(id);
                    t.remove(id);
                }
                if n < out.len() {
                    break;
                }
            }
        };
        run(&mut t, 9, &mut gone);
        assert!(gone.is_empty());
        t.set_deadline(a, 50); // refresh: later
        run(&mut t, 10, &mut gone);
        assert!(gone.is_empty());
        t.set_deadline(c, 40); // shortened
        run(&mut t, 45, &mut gone);
        assert_eq!(gone, vec![c]);
        run(&mut t, 50, &mut gone);
        assert_eq!(gone, vec![c, a]);
        run(&mut t, 19_999, &mut gone);
        assert_eq!(gone.len(), 2);
        run(&mut t, 20_000, &mut gone);
        assert_eq!(gone, vec![c, a, b]);
        assert!(t.is_empty());
    }
}
