//! The forwarding table as workers see it: an immutable snapshot (both LPM tables plus the
//! next-hop table), published RCU-style so a worker never locks and never sees a half-made
//! table.
//!
//! Publication: the control plane builds a whole new [`Fib`] from its route set ([`Rib`]) and
//! calls [`FibCell::publish`], which swaps the shared pointer (`arc-swap`, lock-free) and then
//! bumps a generation counter. A worker keeps its own `Arc<Fib>` ([`FibReader`]) and, once per
//! burst, compares one shared counter with the generation it holds: the common case is one
//! load of a read-mostly cache line. Only when it changed does the worker take the new `Arc`.
//! Old snapshots are retired by the publisher, which frees them once no worker holds them, so
//! a worker never pays for freeing 32 MiB on the packet path.
//!
//! The LPM tables map a prefix to an *action* index; an action is one next hop or an ECMP set
//! of them (chosen per packet by the flow hash). Identical actions share one index, so a full
//! table with one next hop needs one action.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::lpm4::{Lpm4, LpmError};
use super::lpm6::Lpm6;
use super::neigh::AddrHasher;

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<AddrHasher>>;

/// A prefix (address with host bits cleared, and length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// IPv4.
    V4(u32, u8),
    /// IPv6.
    V6(u128, u8),
}

impl Prefix {
    /// A canonical prefix (host bits cleared), or `None` if the length is too long.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        match addr {
            IpAddr::V4(a) if len <= 32 => {
                Some(Prefix::V4(u32::from(a) & super::lpm4::mask(len), len))
            }
            IpAddr::V6(a) if len <= 128 => {
                Some(Prefix::V6(u128::from(a) & super::lpm6::mask(len), len))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Prefix::V4(a, l) => write!(f, "{}/{l}", std::net::Ipv4Addr::from(a)),
            Prefix::V6(a, l) => write!(f, "{}/{l}", std::net::Ipv6Addr::from(a)),
        }
    }
}

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hop {
    /// To a gateway on an egress port.
    Via {
        /// The gateway (its MAC comes from the neighbour table).
        gw: IpAddr,
        /// Egress port.
        port: u16,
    },
    /// Directly connected: the destination itself is the neighbour.
    Connected {
        /// Egress port.
        port: u16,
    },
    /// Silently dropped (`blackhole`).
    Blackhole,
    /// Dropped with ICMP destination unreachable, host unreachable (`unreachable`).
    Unreachable,
    /// Dropped with ICMP destination unreachable, administratively prohibited (`prohibit`).
    Prohibit,
    /// One of the router's own addresses.
    Local,
}

/// The route set the control plane edits; [`Rib::build`] turns it into a [`Fib`].
#[derive(Debug, Clone, Default)]
pub struct Rib {
    routes: FastMap<Prefix, Vec<Hop>>,
}

impl Rib {
    /// An empty route set.
    pub fn new() -> Rib {
        Rib::default()
    }

    /// Makes room for `n` more routes (a table load knows its line count).
    pub fn reserve(&mut self, n: usize) {
        self.routes.reserve(n);
    }

    /// Adds or replaces a route; several hops make an ECMP route.
    pub fn insert(&mut self, p: Prefix, hops: Vec<Hop>) {
        self.routes.insert(p, hops);
    }

    /// Adds a hop to a route (ECMP), creating it if needed.
    pub fn append(&mut self, p: Prefix, hop: Hop) {
        let v = self.routes.entry(p).or_default();
        if !v.contains(&hop) {
            v.push(hop);
        }
    }

    /// Removes a route.
    pub fn remove(&mut self, p: &Prefix) -> Option<Vec<Hop>> {
        self.routes.remove(p)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Routes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Prefix, &Vec<Hop>)> {
        self.routes.iter()
    }

    /// Builds the snapshot workers use.
    pub fn build(&self, version: u64) -> Result<Fib, LpmError> {
        let mut actions: Vec<Action> = vec![Action {
            hop: Hop::Blackhole,
            first: 0,
            count: 0,
        }];
        let mut members: Vec<Hop> = Vec::new();
        let mut ids: FastMap<&[Hop], u32> = FastMap::default();
        let mut v4 = Vec::with_capacity(self.routes.len());
        let mut v6 = Vec::new();
        for (p, hops) in &self.routes {
            if hops.is_empty() {
                continue;
            }
            let id = *ids.entry(hops.as_slice()).or_insert_with(|| {
                let id = actions.len() as u32;
                if hops.len() == 1 {
                    actions.push(Action {
                        hop: hops[0],
                        first: 0,
                        count: 1,
                    });
                } else {
                    actions.push(Action {
                        hop: hops[0],
                        first: members.len() as u32,
                        count: hops.len() as u32,
                    });
                    members.extend_from_slice(hops);
                }
                id
            });
            match *p {
                Prefix::V4(a, l) => {
                    let id = u16::try_from(id).map_err(|_| LpmError::NextHopRange(id))?;
                    v4.push((a, l, id))
                }
                Prefix::V6(a, l) => v6.push((a, l, id)),
            }
        }
        Ok(Fib {
            v4: Lpm4::build(&v4)?,
            v6: Lpm6::build(&v6)?,
            actions,
            members,
            version,
        })
    }
}

/// What an LPM entry points at: one hop, or an ECMP set of `count` hops in `members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The hop (the first one of an ECMP set).
    pub hop: Hop,
    /// First member, for `count > 1`.
    pub first: u32,
    /// Number of hops (0 for the "no route" action 0).
    pub count: u32,
}

/// An immutable forwarding table.
#[derive(Debug)]
pub struct Fib {
    /// IPv4 LPM: address -> action index (0: no route).
    pub v4: Lpm4,
    /// IPv6 LPM: address -> action index (0: no route).
    pub v6: Lpm6,
    actions: Vec<Action>,
    members: Vec<Hop>,
    /// The version it was built as.
    pub version: u64,
}

impl Fib {
    /// An empty table.
    pub fn empty() -> Fib {
        Rib::new().build(0).expect("an empty table builds")
    }

    /// The hop of action `id` for a packet with flow hash `hash`; `None` for no route.
    #[inline(always)]
    pub fn hop(&self, id: u32, hash: u32) -> Option<Hop> {
        let a = self.actions.get(id as usize)?;
        match a.count {
            0 => None,
            1 => Some(a.hop),
            n => {
                // Multiply-shift instead of a modulo: the flow hash spread over n members.
                let k = ((u64::from(hash) * u64::from(n)) >> 32) as u32;
                self.members.get((a.first + k) as usize).copied()
            }
        }
    }

    /// Longest-prefix match for one address (slow path and tests).
    pub fn lookup(&self, addr: IpAddr, hash: u32) -> Option<Hop> {
        let id = match addr {
            IpAddr::V4(a) => u32::from(self.v4.lookup(u32::from(a))),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        };
        self.hop(id, hash)
    }

    /// Distinct actions (next hops and ECMP sets), including "no route".
    pub fn actions(&self) -> usize {
        self.actions.len()
    }

    /// Bytes of table memory (both LPMs).
    pub fn memory(&self) -> usize {
        self.v4.memory() + self.v6.memory()
    }
}

/// The shared, swappable pointer to the current [`Fib`].
pub struct FibCell {
    cur: ArcSwap<Fib>,
    generation: AtomicU64,
    retired: Mutex<Vec<Arc<Fib>>>,
}

impl std::fmt::Debug for FibCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FibCell")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl FibCell {
    /// A cell holding `fib`.
    pub fn new(fib: Fib) -> Arc<FibCell> {
        Arc::new(FibCell {
            cur: ArcSwap::from_pointee(fib),
            generation: AtomicU64::new(1),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// Publishes a new table; workers pick it up at their next burst. Control plane only (it
    /// takes a lock that workers never touch). Frees earlier tables no worker holds any more.
    pub fn publish(&self, fib: Fib) {
        let old = self.cur.swap(Arc::new(fib));
        self.generation.fetch_add(1, Ordering::Release);
        let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
        retired.push(old);
        retired.retain(|f| Arc::strong_count(f) > 1);
    }

    /// The current table (control plane and tests).
    pub fn current(&self) -> Arc<Fib> {
        self.cur.load_full()
    }

    /// A worker's reader.
    pub fn reader(self: &Arc<Self>) -> FibReader {
        FibReader {
            generation: self.generation.load(Ordering::Acquire),
            fib: self.cur.load_full(),
            cell: Arc::clone(self),
        }
    }
}

/// A worker's view of the [`FibCell`]: its own reference to one snapshot.
#[derive(Debug)]
pub struct FibReader {
    cell: Arc<FibCell>,
    fib: Arc<Fib>,
    generation: u64,
}

impl FibReader {
    /// The newest table (call once per burst and use it for the whole burst). Lock-free: one
    /// atomic load when nothing changed.
    #[inline]
    pub fn get(&mut self) -> &Fib {
        let g = self.cell.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.refresh(g);
        }
        &self.fib
    }

    #[cold]
    fn refresh(&mut self, g: u64) {
        // The old snapshot stays alive in the cell's retired list, so dropping our reference
        // never frees a table here.
        self.fib = self.cell.cur.load_full();
        self.generation = g;
    }

    /// The table this worker holds now, without checking for a newer one.
    pub fn held(&self) -> &Fib {
        &self.fib
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        let (a, l) = s.split_once('/').unwrap();
        Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn actions_are_shared_and_ecmp_spreads() {
        let gw1: IpAddr = "192.0.2.1".parse().unwrap();
        let gw2: IpAddr = "192.0.2.2".parse().unwrap();
        let h1 = Hop::Via { gw: gw1, port: 1 };
        let h2 = Hop::Via { gw: gw2, port: 1 };
        let mut rib = Rib::new();
        rib.insert(p("10.0.0.0/8"), vec![h1]);
        rib.insert(p("11.0.0.0/8"), vec![h1]);
        rib.insert(p("12.0.0.0/8"), vec![h1, h2]);
        rib.insert(p("2001:db8::/32"), vec![Hop::Blackhole]);
        let fib = rib.build(1).unwrap();
        assert_eq!(fib.actions(), 4);
        assert_eq!(fib.lookup("10.1.1.1".parse().unwrap(), 0), Some(h1));
        assert_eq!(fib.lookup("9.1.1.1".parse().unwrap(), 0), None);
        assert_eq!(
            fib.lookup("2001:db8::1".parse().unwrap(), 0),
            Some(Hop::Blackhole)
        );
        let picks: std::collections::HashSet<_> = (0..64u32)
            .map(|i| fib.lookup("12.0.0.1".parse().unwrap(), i.wrapping_mul(0x9e37_79b9)))
            .collect();
        assert_eq!(picks.len(), 2);
    }

    /// Routes change while readers look up: every burst a reader looks up must come entirely
    /// from one published version (no half-written table is ever seen).
    #[test]
    fn readers_never_see_a_half_written_table() {
        fn table(version: u64) -> Fib {
            let mut rib = Rib::new();
            let port = (version % 7) as u16;
            for i in 0..64u32 {
                rib.insert(Prefix::V4(i << 24, 8), vec![Hop::Connected { port }]);
                rib.insert(
                    Prefix::V4(i << 24 | 0x0101_0100, 30),
                    vec![Hop::Connected { port }],
                );
                rib.insert(
                    Prefix::V6(u128::from(i) << 100, 28),
                    vec![Hop::Connected { port }],
                );
            }
            rib.build(version).unwrap()
        }
        let cell = FibCell::new(table(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let mut r = cell.reader();
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut seen = std::collections::BTreeSet::new();
                    let addrs: Vec<u32> = (0..64u32).map(|i| i << 24 | 0x0101_0102).collect();
                    let addrs6: Vec<u128> = (0..64u128).map(|i| i << 100 | 5).collect();
                    let mut out = vec![0u16; 64];
                    let mut out6 = vec![0u32; 64];
                    while !stop.load(Ordering::Relaxed) {
                        let fib = r.get();
                        let want = Some(Hop::Connected {
                            port: (fib.version % 7) as u16,
                        });
                        fib.v4.lookup_burst(&addrs, &mut out);
                        fib.v6.lookup_burst(&addrs6, &mut out6);
                        for &id in &out {
                            assert_eq!(fib.hop(id.into(), 0), want, "v{}", fib.version);
                        }
                        for &id in &out6 {
                            assert_eq!(fib.hop(id, 0), want, "v{}", fib.version);
                        }
                        seen.insert(fib.version);
                    }
                    seen.len()
                })
            })
            .collect();
        for v in 1..=20 {
            cell.publish(table(v));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() >= 2);
        }
        assert_eq!(cell.current().version, 20);
    }
}
