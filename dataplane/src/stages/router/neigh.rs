//! The per-worker neighbour table: next-hop IP to MAC, with packets waiting for resolution.
//!
//! Bounded everywhere, because it sits on the packet path: at most `capacity` entries (the map
//! and the entry array are reserved when the stage is built, so adding an entry allocates
//! nothing), at most `hold_per` packets per neighbour and `hold_total` per worker waiting in one
//! pre-sized list. Entries are never removed, only reset, so an entry's index is stable and a
//! held packet can carry it in its metadata.
//!
//! Keys are hashed with a multiply-shift hasher (the keys are addresses, not attacker-chosen
//! heap data, and SipHash would cost more than the lookup it guards).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use pmd::Mbuf;

/// A cheap hasher for address keys.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut c = bytes.chunks_exact(8);
        for w in &mut c {
            self.write_u64(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
        let mut last = [0u8; 8];
        let r = c.remainder();
        if !r.is_empty() {
            last[..r.len()].copy_from_slice(r);
            self.write_u64(u64::from_le_bytes(last) ^ (r.len() as u64) << 59);
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0 ^ u64::from(v)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64((v >> 64) as u64);
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
}

/// State of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Configured; never ages.
    Static,
    /// Learned; valid until `expires`.
    Reachable,
    /// Being resolved: requests sent, packets may be waiting.
    Incomplete,
    /// Unused (never resolved, aged out, or given up).
    Empty,
}

/// One neighbour.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its address.
    pub ip: IpAddr,
    /// Its MAC (meaningful when `Static` or `Reachable`).
    pub mac: [u8; 6],
    /// State.
    pub state: State,
    /// Port it was resolved on / is asked on.
    pub port: u16,
    /// Reachable: when it ages out. Incomplete: when to retry.
    pub deadline: u64,
    /// Requests sent while incomplete.
    pub tries: u8,
    /// Packets held for it.
    pub held: u16,
}

/// The table.
pub struct Neighbours {
    map: HashMap<IpAddr, u32, BuildHasherDefault<AddrHasher>>,
    /// Entries by index.
    pub entries: Vec<Entry>,
    capacity: usize,
    /// Held packets and the entry each waits for.
    pub held: Vec<(u32, Mbuf)>,
    hold_total: usize,
    /// Most packets held per neighbour.
    pub hold_per: u16,
    /// Places promised to packets marked `HOLD` that the stage's `hold` has not taken yet.
    pub reserved: usize,
}

impl Neighbours {
    /// A table of at most `capacity` neighbours, holding at most `hold_per` packets each and
    /// `hold_total` in all.
    pub fn new(capacity: usize, hold_per: u16, hold_total: usize) -> Neighbours {
        let mut map = HashMap::default();
        map.reserve(capacity);
        Neighbours {
            map,
            entries: Vec::with_capacity(capacity),
            capacity,
            held: Vec::with_capacity(hold_total),
            hold_total,
            hold_per,
            reserved: 0,
        }
    }

    /// The index of `ip`'s entry.
    #[inline]
    pub fn find(&self, ip: IpAddr) -> Option<u32> {
        self.map.get(&ip).copied()
    }

    /// The entry for `ip`, created (empty) if there is room.
    pub fn get_or_add(&mut self, ip: IpAddr, port: u16) -> Option<u32> {
        if let Some(&i) = self.map.get(&ip) {
            return Some(i);
        }
        if self.entries.len() >= self.capacity {
            return None;
        }
        let i = self.entries.len() as u32;
        self.entries.push(Entry {
            ip,
            mac: [0; 6],
            state: State::Empty,
            port,
            deadline: 0,
            tries: 0,
            held: 0,
        });
        self.map.insert(ip, i);
        Some(i)
    }

    /// A static entry.
    pub fn add_static(&mut self, ip: IpAddr, mac: [u8; 6], port: u16) {
        if let Some(i) = self.get_or_add(ip, port) {
            let e = &mut self.entries[i as usize];
            e.mac = mac;
            e.state = State::Static;
            e.port = port;
        }
    }

    /// The MAC of entry `i` if it is usable.
    #[inline]
    pub fn mac(&self, i: u32) -> Option<[u8; 6]> {
        let e = self.entries.get(i as usize)?;
        matches!(e.state, State::Static | State::Reachable).then_some(e.mac)
    }

    /// True if another packet may wait for entry `i`.
    pub fn may_hold(&self, i: u32) -> bool {
        self.held.len() + self.reserved < self.hold_total
            && self
                .entries
                .get(i as usize)
                .is_some_and(|e| e.held < self.hold_per)
    }

    /// Takes the packets held for entry `i`, in arrival order, passing each to `f`.
    pub fn release(&mut self, i: u32, mut f: impl FnMut(Mbuf)) {
        if self.entries.get(i as usize).is_none_or(|e| e.held == 0) {
            return;
        }
        let mut k = 0;
        let mut n = 0;
        while k < self.held.len() {
            if self.held[k].0 == i {
                let (_, m) = self.held.remove(k);
                f(m);
                n += 1;
            } else {
                k += 1;
            }
        }
        let e = &mut self.entries[i as usize];
        e.held = e.held.saturating_sub(n);
    }

    /// Gives back a place reserved for a packet that no longer waits.
    pub fn unreserve(&mut self, i: u32) {
        self.reserved = self.reserved.saturating_sub(1);
        if let Some(e) = self.entries.get_mut(i as usize) {
            e.held = e.held.saturating_sub(1);
        }
    }

    /// Records a resolution learned from the wire (returns the entry's index if it exists).
    pub fn learn(
        &mut self,
        ip: IpAddr,
        mac: [u8; 6],
        port: u16,
        expires: u64,
        create: bool,
    ) -> Option<u32> {
        let i = if create {
            self.get_or_add(ip, port)?
        } else {
            self.find(ip)?
        };
        let e = &mut self.entries[i as usize];
        if e.state != State::Static {
            e.mac = mac;
            e.state = State::Reachable;
            e.port = port;
            e.deadline = expires;
            e.tries = 0;
        }
        Some(i)
    }

    /// Number of entries in use.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != State::Empty)
            .count()
    }
}
