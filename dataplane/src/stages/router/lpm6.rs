//! IPv6 longest-prefix match: a multibit trie with a 16-bit first stride and 8-bit strides
//! below, leaf-pushed (DIR-16-8-8-...).
//!
//! Why this shape: IPv6 tables are short (160k prefixes in a full table) but deep (mostly /32
//! to /48), so a DIR-24 first table would be mostly empty. A 64k-entry root (256 KiB, hot in
//! cache for the common 2000::/3 region) resolves the first 16 bits; each further byte of the
//! prefix is one 256-entry group. A /48 costs four dependent loads at most, most lookups three.
//! Each entry is 32 bits: a next hop, or a flag plus a group number.
//!
//! Like [`super::lpm4`], a table is immutable once built and published as a whole; building
//! inserts prefixes shortest first so each insert is a range fill.

use super::lpm4::LpmError;

const EXT: u32 = 0x8000_0000;
const ROOT: usize = 1 << 16;
/// Largest next-hop value an entry holds (0 means "no route").
pub const MAX_NEXT_HOP: u32 = 0x7fff_ffff;
/// Most groups.
pub const MAX_GROUPS: usize = 1 << 22;

/// A built IPv6 table. Lookups return the next hop value, or 0 for no route.
pub struct Lpm6 {
    root: Box<[u32; ROOT]>,
    /// The groups, copied onto hugepages (where there are free ones) once built.
    groups: pmd::mem::HugeArray<u32>,
    prefixes: usize,
}

impl std::fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm6")
            .field("prefixes", &self.prefixes)
            .field("groups", &self.groups())
            .finish()
    }
}

/// The network mask of a prefix length (`len` ≤ 128).
#[inline]
pub fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

impl Lpm6 {
    /// Builds a table from `(address, length, next hop)`; host bits are ignored, and for
    /// duplicate prefixes the last one wins.
    pub fn build(routes: &[(u128, u8, u32)]) -> Result<Lpm6, LpmError> {
        let mut sorted: Vec<(u8, u128, u32, u32)> = Vec::with_capacity(routes.len());
        for (i, &(addr, len, nh)) in routes.iter().enumerate() {
            if len > 128 {
                return Err(LpmError::BadLength(len));
            }
            if nh == 0 || nh > MAX_NEXT_HOP {
                return Err(LpmError::NextHopRange(nh));
            }
            sorted.push((len, addr & mask(len), nh, i as u32));
        }
        sorted.sort_unstable_by_key(|&(len, addr, _, i)| (len, addr, i));
        let mut root: Box<[u32; ROOT]> = vec![0u32; ROOT]
            .into_boxed_slice()
            .try_into()
            .expect("length is ROOT");
        let mut groups: Vec<u32> = Vec::new();
        let mut count = 0;
        let mut last = None;
        for &(len, addr, nh, _) in &sorted {
            if last != Some((len, addr)) {
                count += 1;
            }
            last = Some((len, addr));
            if len <= 16 {
                let start = (addr >> 112) as usize;
                root[start..start + (1usize << (16 - len))].fill(nh);
                continue;
            }
            // Descend, expanding leaves into groups, until the level where the prefix ends.
            let mut slot_root = Some((addr >> 112) as usize);
            let mut slot_grp = 0usize;
            let mut depth = 16u32; // bits resolved above the current group
            loop {
                let e = match slot_root {
                    Some(i) => root[i],
                    None => groups[slot_grp],
                };
                let g = if e & EXT != 0 {
                    (e & !EXT) as usize
                } else {
                    let g = groups.len() / 256;
                    if g >= MAX_GROUPS {
                        return Err(LpmError::TooManyGroups(MAX_GROUPS));
                    }
                    groups.extend(std::iter::repeat_n(e, 256));
                    match slot_root {
                        Some(i) => root[i] = EXT | g as u32,
                        None => groups[slot_grp] = EXT | g as u32,
                    }
                    g
                };
                let byte = ((addr >> (120 - depth)) & 0xff) as usize;
                depth += 8;
                if u32::from(len) <= depth {
                    let start = g * 256 + byte;
                    groups[start..start + (1usize << (depth - u32::from(len)))].fill(nh);
                    break;
                }
                slot_root = None;
                slot_grp = g * 256 + byte;
            }
        }
        let groups = pmd::mem::HugeArray::from_slice(&groups)
            .map_err(|_| LpmError::Memory(groups.len() * 4))?;
        Ok(Lpm6 {
            root,
            groups,
            prefixes: count,
        })
    }

    /// The next hop for `addr` (0: no route).
    #[inline(always)]
    pub fn lookup(&self, addr: u128) -> u32 {
        let mut e = self.root[(addr >> 112) as usize];
        let mut shift = 104u32;
        while e & EXT != 0 {
            let i = ((e & !EXT) as usize) << 8 | ((addr >> shift) & 0xff) as usize;
            e = self.groups.get(i).copied().unwrap_or(0);
            shift = shift.wrapping_sub(8);
        }
        e
    }

    /// Looks up a whole burst, level by level across the burst so the loads of different
    /// packets overlap.
    #[inline]
    pub fn lookup_burst(&self, addrs: &[u128], out: &mut [u32]) {
        let n = addrs.len().min(out.len());
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut pending = 0u32;
        for (o, &a) in out.iter_mut().zip(addrs) {
            *o = self.root[(a >> 112) as usize];
            pending |= *o;
        }
        let mut shift = 104u32;
        while pending & EXT != 0 && shift < 128 {
            pending = 0;
            for (o, &a) in out.iter_mut().zip(addrs) {
                if *o & EXT != 0 {
                    let i = ((*o & !EXT) as usize) << 8 | ((a >> shift) & 0xff) as usize;
                    *o = self.groups.get(i).copied().unwrap_or(0);
                    pending |= *o;
                }
            }
            shift = shift.wrapping_sub(8);
        }
    }

    /// Distinct prefixes.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// Groups of 256 entries.
    pub fn groups(&self) -> usize {
        self.groups.len() / 256
    }

    /// Bytes of table memory.
    pub fn memory(&self) -> usize {
        ROOT * 4 + self.groups.len() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    #[test]
    fn longest_prefix_wins() {
        let t = Lpm6::build(&[
            (0, 0, 1),
            (ip("2001:db8::"), 32, 2),
            (ip("2001:db8:1::"), 48, 3),
            (ip("2001:db8:1:2::"), 64, 4),
            (ip("2001:db8:1:2::1"), 128, 5),
            (ip("2001::"), 12, 6),
            (ip("2001:db8:1:2:8000::"), 65, 7),
        ])
        .unwrap();
        assert_eq!(t.lookup(ip("3000::1")), 1);
        assert_eq!(t.lookup(ip("2001:db9::1")), 6);
        assert_eq!(t.lookup(ip("2001:db8:9::1")), 2);
        assert_eq!(t.lookup(ip("2001:db8:1:9::1")), 3);
        assert_eq!(t.lookup(ip("2001:db8:1:2::2")), 4);
        assert_eq!(t.lookup(ip("2001:db8:1:2::1")), 5);
        assert_eq!(t.lookup(ip("2001:db8:1:2:8000::1")), 7);
        let a = [ip("3000::1"), ip("2001:db8:1:2::1"), ip("2001:db8:1:2::2")];
        let mut out = [0; 3];
        t.lookup_burst(&a, &mut out);
        assert_eq!(out, [1, 5, 4]);
        let e = Lpm6::build(&[(ip("2001:db8::"), 32, 2)]).unwrap();
        assert_eq!(e.lookup(ip("2001:db9::")), 0);
    }
}
