//! IPv4 longest-prefix match: DIR-24-8 with 16-bit entries.
//!
//! Why this shape: a lookup is one load from a 2^24-entry table indexed by the top 24 bits of
//! the address, and for the rare destinations covered by a prefix longer than /24 (961 of the
//! 901,899 prefixes of a full table) a second load from a 256-entry group. Entries are 16 bits
//! (a 15-bit next-hop index, or a flag plus a 15-bit group number), so the first table is
//! 32 MiB, half of DPDK's `rte_lpm` tbl24, and the whole full table fits in about 32.5 MiB.
//!
//! The table is immutable once built: the control plane builds a new one and publishes it (see
//! `fib.rs`), so a worker never sees a half-written entry. Building inserts prefixes shortest
//! first, which makes each insert a plain range fill: a shorter prefix can never land on an
//! entry a longer one has already expanded into a group.
//!
//! Measured (release, reference VM with 2 cores shared with other builds, load 3.6-7, so
//! noisy): building the 900k-prefix full table about 0.3 s; `lookup_burst` in bursts of 32,
//! 52-76 M lookups/s for random destinations and 60-111 M/s for destinations drawn from the
//! table (`cargo test --release -p dataplane --test router_full_table -- --nocapture`).

/// Flag of an entry that points at a group of 256 entries in the second table.
const EXT: u16 = 0x8000;
/// First-table size.
const TBL24: usize = 1 << 24;
/// Largest next-hop value an entry holds (0 means "no route").
pub const MAX_NEXT_HOP: u16 = 0x7fff;
/// Most groups of the second table.
pub const MAX_GROUPS: usize = 0x8000;

/// Why a table could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LpmError {
    /// More next hops than an entry can name.
    #[error("next hop {0} is out of range (at most 32767 distinct next hops)")]
    NextHopRange(u32),
    /// More prefixes longer than the first stride than the groups can hold.
    #[error("too many long prefixes: more than {0} groups of the second table needed")]
    TooManyGroups(usize),
    /// A prefix length beyond the address width.
    #[error("prefix length {0} is too long")]
    BadLength(u8),
    /// The table's memory (this many bytes) could not be mapped.
    #[error("cannot map {0} bytes of table memory")]
    Memory(usize),
}

/// A built DIR-24-8 table. Lookups return the next-hop value (1..=32767) or 0 for no route.
pub struct Lpm4 {
    /// On hugepages where there are free ones (random lookups over 32 MiB would otherwise
    /// miss the TLB on almost every packet).
    tbl24: pmd::mem::HugeArray<u16>,
    tbl8: Vec<u16>,
    prefixes: usize,
}

impl std::fmt::Debug for Lpm4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm4")
            .field("prefixes", &self.prefixes)
            .field("groups", &self.groups())
            .finish()
    }
}

impl Lpm4 {
    /// Builds a table from `(address, length, next hop)`; host bits are ignored, and for
    /// duplicate prefixes the last one wins. Next hops must be 1..=[`MAX_NEXT_HOP`].
    pub fn build(routes: &[(u32, u8, u16)]) -> Result<Lpm4, LpmError> {
        let mut sorted: Vec<(u8, u32, u16, u32)> = Vec::with_capacity(routes.len());
        for (i, &(addr, len, nh)) in routes.iter().enumerate() {
            if len > 32 {
                return Err(LpmError::BadLength(len));
            }
            if nh == 0 || nh > MAX_NEXT_HOP {
                return Err(LpmError::NextHopRange(nh.into()));
            }
            sorted.push((len, addr & mask(len), nh, i as u32));
        }
        // Shortest first; among equal prefixes the later input wins (placed last).
        sorted.sort_unstable_by_key(|&(len, addr, _, i)| (len, addr, i));
        let mut tbl24 =
            pmd::mem::HugeArray::<u16>::zeroed(TBL24).map_err(|_| LpmError::Memory(TBL24 * 2))?;
        let mut tbl8: Vec<u16> = Vec::new();
        let mut count = 0;
        let mut last: Option<(u8, u32)> = None;
        for &(len, addr, nh, _) in &sorted {
            if last != Some((len, addr)) {
                count += 1;
            }
            last = Some((len, addr));
            if len <= 24 {
                let start = (addr >> 8) as usize;
                let n = 1usize << (24 - len);
                tbl24[start..start + n].fill(nh);
            } else {
                let i = (addr >> 8) as usize;
                let e = tbl24[i];
                let g = if e & EXT != 0 {
                    (e & !EXT) as usize
                } else {
                    let g = tbl8.len() / 256;
                    if g >= MAX_GROUPS {
                        return Err(LpmError::TooManyGroups(MAX_GROUPS));
                    }
                    tbl8.extend(std::iter::repeat_n(e, 256));
                    tbl24[i] = EXT | g as u16;
                    g
                };
                let start = g * 256 + (addr & 0xff) as usize;
                let n = 1usize << (32 - len);
                tbl8[start..start + n].fill(nh);
            }
        }
        tbl8.shrink_to_fit();
        Ok(Lpm4 {
            tbl24,
            tbl8,
            prefixes: count,
        })
    }

    /// The first table as an array (its length is TBL24 by construction, so indexes below
    /// 2^24 need no bounds check).
    #[inline(always)]
    fn t24(&self) -> &[u16; TBL24] {
        self.tbl24
            .as_array::<TBL24>()
            .expect("the first table has TBL24 entries")
    }

    /// The next hop for `addr` (0: no route).
    #[inline(always)]
    pub fn lookup(&self, addr: u32) -> u16 {
        let e = self.t24()[(addr >> 8) as usize];
        if e & EXT == 0 {
            e
        } else {
            self.ext(e, addr)
        }
    }

    #[inline(always)]
    fn ext(&self, e: u16, addr: u32) -> u16 {
        let i = ((e & !EXT) as usize) << 8 | (addr & 0xff) as usize;
        self.tbl8.get(i).copied().unwrap_or(0)
    }

    /// Looks up a whole burst: `out[i]` is the next hop for `addrs[i]`.
    ///
    /// In two steps over the burst, so the first-table loads (independent of each other) are
    /// all in flight at once instead of one cache miss after another; the few second-table
    /// loads follow.
    #[inline]
    pub fn lookup_burst(&self, addrs: &[u32], out: &mut [u16]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut any_ext = 0u16;
        let t24 = self.t24();
        for (o, &a) in out.iter_mut().zip(addrs) {
            let e = t24[(a >> 8) as usize];
            any_ext |= e;
            *o = e;
        }
        if any_ext & EXT != 0 {
            for (o, &a) in out.iter_mut().zip(addrs) {
                if *o & EXT != 0 {
                    *o = self.ext(*o, a);
                }
            }
        }
    }

    /// Distinct prefixes in the table.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// Groups in the second table.
    pub fn groups(&self) -> usize {
        self.tbl8.len() / 256
    }

    /// Bytes of table memory.
    pub fn memory(&self) -> usize {
        TBL24 * 2 + self.tbl8.capacity() * 2
    }
}

/// The network mask of a prefix length (`len` ≤ 32).
#[inline]
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }

    #[test]
    fn longest_prefix_wins() {
        let t = Lpm4::build(&[
            (0, 0, 1),
            (ip("10.0.0.0"), 8, 2),
            (ip("10.1.0.0"), 16, 3),
            (ip("10.1.2.0"), 24, 4),
            (ip("10.1.2.128"), 25, 5),
            (ip("10.1.2.200"), 32, 6),
        ])
        .unwrap();
        assert_eq!(t.lookup(ip("11.0.0.1")), 1);
        assert_eq!(t.lookup(ip("10.9.0.1")), 2);
        assert_eq!(t.lookup(ip("10.1.9.1")), 3);
        assert_eq!(t.lookup(ip("10.1.2.1")), 4);
        assert_eq!(t.lookup(ip("10.1.2.129")), 5);
        assert_eq!(t.lookup(ip("10.1.2.200")), 6);
        assert_eq!(t.lookup(ip("10.1.2.201")), 5);
        assert_eq!(t.prefixes(), 6);
        assert_eq!(t.groups(), 1);
        let addrs = [ip("11.0.0.1"), ip("10.1.2.200"), ip("10.1.2.1")];
        let mut out = [0u16; 3];
        t.lookup_burst(&addrs, &mut out);
        assert_eq!(out, [1, 6, 4]);
    }

    #[test]
    fn no_route_is_zero_and_duplicates_take_the_last() {
        let t = Lpm4::build(&[(ip("192.0.2.0"), 24, 1), (ip("192.0.2.77"), 24, 9)]).unwrap();
        assert_eq!(t.lookup(ip("192.0.2.1")), 9);
        assert_eq!(t.lookup(ip("192.0.3.1")), 0);
        assert_eq!(t.prefixes(), 1);
        assert!(Lpm4::build(&[(0, 33, 1)]).is_err());
        assert!(Lpm4::build(&[(0, 8, 0)]).is_err());
        assert!(Lpm4::build(&[(0, 8, 0x8000)]).is_err());
    }
}
