//! Fragment tracking: port rules cannot be bypassed by fragmenting.
//!
//! Only the first fragment of a datagram carries the L4 header, so only it can be classified;
//! the verdict it gets is recorded under the datagram's (source, destination, protocol, IP ID)
//! and applied to every other fragment of that datagram. A fragment that arrives before its
//! first one is *held* (`Next::HOLD`) for a bounded time, released when the first fragment's
//! verdict arrives, and dropped (counted) when its time runs out.
//!
//! The classic evasions (RFC 1858, RFC 3128) are refused: a *tiny* first fragment that does not
//! hold the whole transport header the rules look at (TCP ports and flags, UDP and ICMP
//! headers), a TCP fragment at offset 8 (which can only be there to rewrite the flags), and
//! fragments that *overlap* an earlier fragment of the same datagram (an exact duplicate is a
//! retransmission and is let through with the datagram's verdict). Once a datagram has been
//! caught overlapping, the rest of it is dropped too.
//!
//! Memory is fixed at build time: `capacity` datagrams, `max_held` held packets, up to
//! `MAX_RANGES` distinct fragments per datagram (more is refused as an evasion: legitimate
//! datagrams of a 64 KiB maximum over a 1280-byte MTU fit).

use std::collections::HashMap;

use pmd::Mbuf;

use super::classifier::FxBuild;

/// Most distinct fragments recorded per datagram.
pub const MAX_RANGES: usize = 56;

/// Identity of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// IP identification (IPv6: 32 bits).
    pub id: u32,
    /// Protocol.
    pub proto: u8,
    /// IPv6.
    pub v6: bool,
}

/// What happens to a datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// First fragment not seen yet.
    Pending,
    /// Let them through.
    Accept,
    /// Drop them, counted under the stage's reason `code`.
    Drop(u8),
    /// Hand them to this worker: the first fragment went there, to the worker that tracks
    /// its connection, and was classified there.
    Forward(u16),
}

/// Why a fragment was refused on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragError {
    /// It overlaps an earlier fragment (or the datagram already overlapped).
    Overlap,
    /// Too many fragments for one datagram.
    TooMany,
    /// The datagram table is full.
    Full,
}

#[derive(Debug, Clone, Copy)]
struct Dgram {
    key: FragKey,
    verdict: Verdict,
    expires: u64,
    ranges: [(u32, u32); MAX_RANGES],
    n: u8,
    live: bool,
    poisoned: bool,
}

impl Default for Dgram {
    fn default() -> Self {
        Dgram {
            key: FragKey::default(),
            verdict: Verdict::Pending,
            expires: 0,
            ranges: [(0, 0); MAX_RANGES],
            n: 0,
            live: false,
            poisoned: false,
        }
    }
}

/// A held fragment.
struct Held {
    m: Mbuf,
    slot: u32,
    deadline: u64,
}

/// A worker's fragment table and held fragments.
pub struct Frags {
    slots: Vec<Dgram>,
    free: Vec<u32>,
    map: HashMap<FragKey, u32, FxBuild>,
    held: Vec<Held>,
    max_held: usize,
    /// Lifetime of a datagram's record after its last fragment (ns).
    pub timeout: u64,
    /// Longest a fragment is held waiting for its first fragment (ns).
    pub hold_time: u64,
    next_scan: u64,
}

impl Frags {
    /// Allocates everything.
    pub fn new(capacity: usize, max_held: usize, timeout: u64, hold_time: u64) -> Frags {
        let capacity = capacity.clamp(1, 1 << 20);
        let mut map = HashMap::default();
        map.reserve(2 * capacity);
        Frags {
            slots: vec![Dgram::default(); capacity],
            free: (0..capacity as u32).rev().collect(),
            map,
            held: Vec::with_capacity(max_held),
            max_held,
            timeout,
            hold_time,
            next_scan: 0,
        }
    }

    /// Records fragment `[off, end)` of datagram `k`; returns the datagram's slot.
    pub fn note(&mut self, k: &FragKey, off: u32, end: u32, now: u64) -> Result<u32, FragError> {
        let slot = match self.map.get(k) {
            Some(&s) => s,
            None => {
                let s = self.free.pop().ok_or(FragError::Full)?;
                self.slots[s as usize] = Dgram {
                    key: *k,
                    live: true,
                    ..Dgram::default()
                };
                self.map.insert(*k, s);
                s
            }
        };
        let d = &mut self.slots[slot as usize];
        d.expires = now.saturating_add(self.timeout);
        if d.poisoned {
            return Err(FragError::Overlap);
        }
        let mut dup = false;
        for &(a, b) in &d.ranges[..d.n as usize] {
            if a == off && b == end {
                dup = true;
            } else if off < b && a < end {
                d.poisoned = true;
                return Err(FragError::Overlap);
            }
        }
        if !dup {
            if d.n as usize == MAX_RANGES {
                d.poisoned = true;
                return Err(FragError::TooMany);
            }
            d.ranges[d.n as usize] = (off, end);
            d.n += 1;
        }
        Ok(slot)
    }

    /// The verdict for a datagram.
    #[inline]
    pub fn verdict(&self, slot: u32) -> Verdict {
        self.slots[slot as usize].verdict
    }

    /// Sets a datagram's verdict (from its first fragment).
    pub fn set_verdict(&mut self, slot: u32, v: Verdict) {
        self.slots[slot as usize].verdict = v;
    }

    /// Room for another held fragment.
    pub fn can_hold(&self, pending: usize) -> bool {
        self.held.len() + pending < self.max_held
    }

    /// Holds `m` (a fragment of datagram `k`); gives it back if there is no room or no record.
    pub fn hold(&mut self, k: &FragKey, m: Mbuf, now: u64) -> Result<(), Mbuf> {
        let Some(&slot) = self.map.get(k) else {
            return Err(m);
        };
        if self.held.len() >= self.max_held {
            return Err(m);
        }
        self.held.push(Held {
            m,
            slot,
            deadline: now.saturating_add(self.hold_time),
        });
        Ok(())
    }

    /// Packets held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes the held fragments of `slot` (in arrival order), handing each to `f`.
    pub fn release(&mut self, slot: u32, mut f: impl FnMut(Mbuf)) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].slot == slot {
                f(self.held.remove(i).m);
            } else {
                i += 1;
            }
        }
    }

    /// Timer work: held fragments past their deadline go to `expired`; datagram records past
    /// their lifetime are forgotten (scanned at most every 100 ms of `now`).
    pub fn poll(&mut self, now: u64, mut expired: impl FnMut(Mbuf)) {
        let mut i = 0;
        while i < self.held.len() {
            if self.held[i].deadline <= now {
                expired(self.held.remove(i).m);
            } else {
                i += 1;
            }
        }
        if now < self.next_scan {
            return;
        }
        self.next_scan = now.saturating_add(100_000_000);
        if self.free.len() == self.slots.len() {
            return;
        }
        for s in 0..self.slots.len() {
            let d = &self.slots[s];
            if d.live && d.expires <= now && !self.held.iter().any(|h| h.slot as usize == s) {
                let k = d.key;
                self.slots[s].live = false;
                self.map.remove(&k);
                self.free.push(s as u32);
            }
        }
    }

    /// Hands every held fragment to `f` (shutdown).
    pub fn drain(&mut self, mut f: impl FnMut(Mbuf)) {
        for h in self.held.drain(..) {
            f(h.m);
        }
    }

    /// Datagrams tracked.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// True when no datagram is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_duplicate_and_expiry() {
        let mut f = Frags::new(2, 4, 1_000_000_000, 500_000_000);
        let k = FragKey {
            id: 7,
            proto: 17,
            ..FragKey::default()
        };
        let s = f.note(&k, 0, 64, 0).unwrap();
        assert_eq!(f.note(&k, 64, 128, 0), Ok(s));
        assert_eq!(f.note(&k, 64, 128, 0), Ok(s), "exact duplicate");
        assert_eq!(f.note(&k, 100, 200, 0), Err(FragError::Overlap));
        assert_eq!(f.note(&k, 200, 300, 0), Err(FragError::Overlap), "poisoned");
        let k2 = FragKey { id: 8, ..k };
        let k3 = FragKey { id: 9, ..k };
        f.note(&k2, 0, 8, 0).unwrap();
        assert_eq!(f.note(&k3, 0, 8, 0), Err(FragError::Full));
        f.poll(2_000_000_000, |_| {});
        assert_eq!(f.len(), 0);
        assert!(f.note(&k3, 0, 8, 2_000_000_000).is_ok());
    }
}
