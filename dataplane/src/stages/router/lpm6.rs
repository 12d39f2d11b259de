//! IPv6 longest-prefix match: a leaf-pushed multibit trie, 16-bit direct root, one plain 8-bit
//! level, then 8-bit nodes compressed to one entry per run of equal slots (poptrie-like),
//! looked up sixteen addresses a vector with AVX-512 gathers where the CPU has them.
//!
//! Why this shape: a full IPv6 table is short (160k prefixes) but deep (mostly /32 to /48), and
//! lookups over it are bound by where the table lives, not by arithmetic. The previous
//! uncompressed DIR-16-8-8-... trie (4-byte entries, 256-entry groups) took 37.5 MiB on the
//! full table, so almost every group read missed to L3 (about 36 M lookups/s, half of DPDK's
//! `rte_fib6` TRIE). Leaf-pushed groups are mostly runs of equal entries (a /40 group holding
//! three /48s is seven runs in 256 slots; 86 % of the full table's groups have at most 9
//! runs), so each group is stored as where its runs start plus one entry per run: 1.8 MiB on
//! the full table, inside the 2 MiB L2.
//!
//! Layout and levels (bits of the address resolved):
//! - **root** (bits 0..16): 2^16 plain `u32` entries (256 KiB, 32 KiB of it for 2000::/3).
//! - **plain groups** (bits 16..24): 256 plain entries per root slot that has longer prefixes
//!   (59 on the full table, 60 KiB). Kept uncompressed: they are few, and a plain read is
//!   cheaper than a node.
//! - **nodes** (8 bits each: 24..32, 32..40, 40..48, ... up to 120..128), back to back in one
//!   `u32` array, each a header then its entries, one per run, in slot order:
//!   - *sparse* (at most 9 runs): 2 header words holding, as 8 bytes, the slots where runs
//!     start (after slot 0) less one, padded with 0xff. Slot `s`'s entry is at
//!     `node + 2 + (number of those bytes below s)`. 8 bytes plus 4 per run.
//!   - *dense*: 8 bitmap words (bit `s` set where slot `s` starts a run) and 2 words of rank
//!     bytes (runs started before each 32-slot word); slot `s`'s entry is at
//!     `node + 9 + rank[s / 32] + popcount(word[s / 32] << (31 - s % 32))`. 40 bytes plus 4
//!     per run.
//!
//!   Either way a level reads two header words, then the entry (usually in the same one or two
//!   cache lines).
//!
//! An entry (at every level) is a next hop (`1..=MAX_NEXT_HOP`), 0 for no route, or `EXT` plus
//! the index of a plain group (in the root) or the offset of a node (plus `SPARSE` for a
//! sparse one). A /48 costs the root, a plain group and three nodes; a /32 one node. Full table
//! (160,147 prefixes, next hops spread over 16 values): 38,155 groups (59 plain, 32.7k sparse
//! nodes, 5.4k dense), 282k entries, 1.84 MiB in all; with 100k distinct next hops about the
//! same.
//!
//! Lookups: [`Lpm6::lookup_burst`] goes level by level across the burst so the reads of
//! different addresses overlap. With AVX-512F, AVX-512BW and VPOPCNTDQ (detected when the table
//! is built), 64 addresses are four vectors of sixteen and every table read is a masked gather
//! (indexes clamped to the table, so no lane reads outside it whatever the table holds); both
//! node kinds are computed and each lane takes its own. Otherwise a scalar loop keeps a list of
//! the addresses still pending, compacted branch-free into a second list (reading and writing
//! the same list made each load wait on the previous packet's store, whose index hangs on a
//! table read). Measured on the full table with destinations drawn from its prefixes (`bench
//! router`: 2 vCPU Sapphire Rapids shared with other builds; bulks of 64, each timed with
//! fence+rdtsc as dpdk-test-fib does): 120-128 M lookups/s in the quieter runs (77-101 M/s
//! while another build ran), against 26-37 M/s for the uncompressed trie and 57-63 M/s for
//! `rte_fib6` TRIE with AVX-512 in the same runs; the scalar path alone (no AVX-512) about
//! 42 M/s.
//!
//! Like [`super::lpm4`], a table is immutable once built and published as a whole. Building
//! first makes the uncompressed trie (prefixes shortest first, so each insert is a range fill),
//! then compresses each group; the full table builds in about 60 ms.

use super::lpm4::LpmError;

/// Flag of an entry that names a child node (the other 31 bits) instead of a next hop.
const EXT: u32 = 0x8000_0000;
/// Bits of the direct first stride.
const ROOT_BITS: u32 = 16;
const ROOT: usize = 1 << ROOT_BITS;
/// Bits of each node's stride (the vector lookup relies on a slot being a byte of the address).
const K: u32 = 8;
/// Slots of a node.
const SLOTS: usize = 1 << K;
/// 32-slot bitmap words of a node.
const WORDS: usize = SLOTS / 32;
/// Header words of a dense node (bitmap and ranks) before its entries.
const HDR: usize = WORDS + WORDS / 4;
/// Flag (with `EXT`) of an entry naming a sparse node.
const SPARSE: u32 = 0x4000_0000;
/// The offset of a node in an entry naming it.
const OFF: u32 = SPARSE - 1;
/// Most runs of a sparse node: the first starts at slot 0, the others are 8 bytes.
const SPARSE_RUNS: usize = 9;
/// Header words of a sparse node.
const SPARSE_HDR: usize = 2;
/// Burst chunk: the pending list holds indexes below this.
const CHUNK: usize = 64;
/// Largest next-hop value an entry holds (0 means "no route").
pub const MAX_NEXT_HOP: u32 = 0x7fff_ffff;
/// Most groups (plain groups and nodes).
pub const MAX_GROUPS: usize = 1 << 22;

/// A built IPv6 table. Lookups return the next hop value, or 0 for no route.
pub struct Lpm6 {
    root: Box<[u32; ROOT]>,
    /// The nodes, back to back (see the module documentation); one last zero word.
    nodes: pmd::mem::HugeArray<u32>,
    /// Plain groups of 256 entries for bits 16..24, below the root (group 0 is all zeros).
    l0: pmd::mem::HugeArray<u32>,
    /// Plain groups and nodes.
    count: usize,
    prefixes: usize,
    /// The CPU has POPCNT, BMI1 and BMI2 (detected at build time).
    popcnt: bool,
    /// The CPU has AVX-512F, AVX-512BW and AVX-512 VPOPCNTDQ (detected at build time).
    avx512: bool,
}

impl std::fmt::Debug for Lpm6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lpm6")
            .field("prefixes", &self.prefixes)
            .field("groups", &self.groups())
            .field("words", &self.nodes.len())
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

/// The `K`-bit slot of `addr` at bit offset `off` (bits past the 128th read as zeros).
#[inline(always)]
fn slot_of(addr: u128, off: u32) -> usize {
    (addr.wrapping_shl(off) >> (128 - K)) as usize
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
        // First the uncompressed trie: groups of SLOTS entries, shortest prefixes first so each
        // insert is a range fill.
        let mut groups: Vec<u32> = Vec::new();
        // Whether each group is a plain one (right below the root).
        let mut plain: Vec<bool> = Vec::new();
        let mut prefixes = 0;
        let mut last = None;
        for &(len, addr, nh, _) in &sorted {
            if last != Some((len, addr)) {
                prefixes += 1;
            }
            last = Some((len, addr));
            if u32::from(len) <= ROOT_BITS {
                let start = (addr >> (128 - ROOT_BITS)) as usize;
                root[start..start + (1usize << (ROOT_BITS - u32::from(len)))].fill(nh);
                continue;
            }
            // Descend, expanding leaves into groups, until the level where the prefix ends.
            let mut slot_root = Some((addr >> (128 - ROOT_BITS)) as usize);
            let mut slot_grp = 0usize;
            let mut depth = ROOT_BITS; // bits resolved above the current group
            loop {
                let e = match slot_root {
                    Some(i) => root[i],
                    None => groups[slot_grp],
                };
                let g = if e & EXT != 0 {
                    (e & !EXT) as usize
                } else {
                    let g = groups.len() / SLOTS;
                    if g >= MAX_GROUPS {
                        return Err(LpmError::TooManyGroups(MAX_GROUPS));
                    }
                    groups.extend(std::iter::repeat_n(e, SLOTS));
                    plain.push(depth == ROOT_BITS);
                    match slot_root {
                        Some(i) => root[i] = EXT | g as u32,
                        None => groups[slot_grp] = EXT | g as u32,
                    }
                    g
                };
                let slot = slot_of(addr, depth);
                depth += K;
                if u32::from(len) <= depth {
                    let start = g * SLOTS + slot;
                    groups[start..start + (1usize << (depth - u32::from(len)))].fill(nh);
                    break;
                }
                slot_root = None;
                slot_grp = g * SLOTS + slot;
            }
        }
        // Then compress each group: one entry per run of equal slots, nodes back to back.
        let runs = |g: &[u32]| 1 + g.windows(2).filter(|w| w[0] != w[1]).count();
        // Where each group goes: a plain group's number (from 1: group 0 is all zeros), or a
        // compressed node's offset.
        let mut at: Vec<u32> = Vec::with_capacity(groups.len() / SLOTS);
        let mut len = 0usize;
        let mut n_plain = 1usize;
        for (g, &p) in groups.chunks_exact(SLOTS).zip(&plain) {
            if p {
                at.push(n_plain as u32);
                n_plain += 1;
                continue;
            }
            let r = runs(g);
            at.push(len as u32 | if r <= SPARSE_RUNS { SPARSE } else { 0 });
            len += r + if r <= SPARSE_RUNS { SPARSE_HDR } else { HDR };
            if len >= SPARSE as usize {
                return Err(LpmError::TooManyGroups(MAX_GROUPS));
            }
        }
        // Root entries name plain groups, the others nodes (flagged SPARSE when sparse).
        let link = |e: u32| {
            if e & EXT != 0 {
                EXT | at[(e & !EXT) as usize]
            } else {
                e
            }
        };
        let mut nodes: Vec<u32> = Vec::with_capacity(len + 1);
        let mut l0: Vec<u32> = vec![0; n_plain * SLOTS];
        for (i, (g, &p)) in groups.chunks_exact(SLOTS).zip(&plain).enumerate() {
            if p {
                let at = at[i] as usize * SLOTS;
                for (d, &e) in l0[at..at + SLOTS].iter_mut().zip(g) {
                    *d = link(e);
                }
                continue;
            }
            let hdr = nodes.len();
            if at[i] & SPARSE != 0 {
                // Slots where runs start, less one, after slot 0; padded with 0xff (which is
                // below no slot).
                let mut starts = [0xffu8; 8];
                let mut k = 0;
                nodes.resize(hdr + SPARSE_HDR, 0);
                nodes.push(link(g[0]));
                for (s, w) in g.windows(2).enumerate() {
                    if w[0] != w[1] {
                        starts[k] = s as u8;
                        k += 1;
                        nodes.push(link(w[1]));
                    }
                }
                let starts = u64::from_le_bytes(starts);
                nodes[hdr] = starts as u32;
                nodes[hdr + 1] = (starts >> 32) as u32;
                continue;
            }
            nodes.resize(hdr + HDR, 0);
            let mut prev = None;
            let mut before = 0u32;
            for (w, q) in g.chunks_exact(32).enumerate() {
                nodes[hdr + WORDS + w / 4] |= before << (8 * (w % 4));
                let mut bits = 0u32;
                for (b, &e) in q.iter().enumerate() {
                    if prev != Some(e) {
                        bits |= 1 << b;
                        nodes.push(link(e));
                        prev = Some(e);
                    }
                }
                before += bits.count_ones();
                nodes[hdr + w] = bits;
            }
        }
        for e in root.iter_mut() {
            if *e & EXT != 0 {
                *e = EXT | at[(*e & !EXT) as usize];
            }
        }
        let count = at.len();
        // Never empty (the vector lookups clamp indexes to the last word).
        nodes.push(0);
        let l0 =
            pmd::mem::HugeArray::from_slice(&l0).map_err(|_| LpmError::Memory(l0.len() * 4))?;
        let nodes = pmd::mem::HugeArray::from_slice(&nodes)
            .map_err(|_| LpmError::Memory(nodes.len() * 4))?;
        Ok(Lpm6 {
            root,
            nodes,
            l0,
            count,
            prefixes,
            popcnt: has_popcnt(),
            avx512: has_avx512(),
        })
    }

    /// The entry for `slot` of the node named by `e` (an `EXT` entry). Both node kinds are
    /// computed and one picked, without a branch (the kind is as random as the addresses).
    #[inline(always)]
    fn step(&self, e: u32, slot: usize) -> u32 {
        let p = (e & OFF) as usize;
        let sparse = e & SPARSE != 0;
        let w = slot / 32 % WORDS;
        let i0 = std::hint::select_unpredictable(sparse, p, p + w);
        let i1 = std::hint::select_unpredictable(sparse, p + 1, p + WORDS + w / 4);
        let (Some(&h0), Some(&h1)) = (self.nodes.get(i0), self.nodes.get(i1)) else {
            return 0;
        };
        // Dense: runs started at or before the slot's bit (shift the later bits out:
        // !slot % 32 is 31 - slot % 32), plus those of the words before.
        let before = (h1 >> (8 * (w % 4))) & 0xff;
        let dense = h0.wrapping_shl(!(slot as u32)).count_ones() + before;
        // Sparse: the start bytes below the slot, four at a time in 16-bit lanes: a lane
        // holding slot + 255 - start keeps bit 8 exactly when start < slot.
        const BYTES: u64 = 0x00ff_00ff_00ff_00ff;
        const BIT8: u64 = 0x0100_0100_0100_0100;
        let starts = u64::from(h0) | u64::from(h1) << 32;
        let s = (slot as u64 + 255) * 0x0001_0001_0001_0001;
        let below = ((s - (starts & BYTES)) & BIT8).count_ones()
            + ((s - (starts >> 8 & BYTES)) & BIT8).count_ones();
        let i = std::hint::select_unpredictable(
            sparse,
            p + SPARSE_HDR + below as usize,
            p + HDR - 1 + dense as usize,
        );
        self.nodes.get(i).copied().unwrap_or(0)
    }

    /// The entry for the first 24 bits: the root's, or the plain group's it names.
    #[inline(always)]
    fn first(&self, addr: u128) -> u32 {
        let e = self.root[(addr >> (128 - ROOT_BITS)) as usize];
        let ext = e & EXT != 0;
        let i = if ext {
            (e & !EXT) as usize * SLOTS + ((addr >> (128 - ROOT_BITS - K)) as usize & (SLOTS - 1))
        } else {
            0
        };
        let e1 = self.l0.get(i).copied().unwrap_or(0);
        if ext {
            e1
        } else {
            e
        }
    }

    #[inline(always)]
    fn lookup_inner(&self, addr: u128) -> u32 {
        let mut e = self.first(addr);
        let mut off = ROOT_BITS + K;
        while e & EXT != 0 && off < 128 {
            e = self.step(e, slot_of(addr, off));
            off += K;
        }
        if e & EXT != 0 {
            0
        } else {
            e
        }
    }

    /// The next hop for `addr` (0: no route).
    #[inline]
    pub fn lookup(&self, addr: u128) -> u32 {
        if self.popcnt {
            lookup_popcnt(self, addr)
        } else {
            self.lookup_inner(addr)
        }
    }

    /// Looks up a whole burst, level by level across the burst so the loads of different
    /// packets overlap.
    #[inline]
    pub fn lookup_burst(&self, addrs: &[u128], out: &mut [u32]) {
        if self.avx512 {
            burst_avx512(self, addrs, out)
        } else if self.popcnt {
            burst_popcnt(self, addrs, out)
        } else {
            self.burst_inner(addrs, out)
        }
    }

    #[inline(always)]
    fn burst_inner(&self, addrs: &[u128], out: &mut [u32]) {
        for (a, o) in addrs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
            self.chunk(a, o);
        }
    }

    /// One chunk of at most [`CHUNK`] addresses: the root for all, then each level for those
    /// still pending (a branch-free compacted list, so no per-packet mispredictions).
    #[inline(always)]
    fn chunk(&self, addrs: &[u128], out: &mut [u32]) {
        let n = addrs.len().min(out.len()).min(CHUNK);
        let (addrs, out) = (&addrs[..n], &mut out[..n]);
        let mut hi = [0u64; CHUNK];
        let mut lo = [0u64; CHUNK];
        let mut res = [0u32; CHUNK];
        let mut list = [0u8; CHUNK];
        let mut pending = 0usize;
        for (i, &a) in addrs.iter().enumerate() {
            let e = self.first(a);
            hi[i] = (a >> 64) as u64;
            lo[i] = a as u64;
            res[i] = e;
            list[pending % CHUNK] = i as u8;
            pending += (e >> 31) as usize;
        }
        // Two lists, read one and write the other: a load from the list being read never
        // waits on a store whose address hangs on a table load (the store's index depends on
        // whether the packets before it are still pending).
        let mut list2 = [0u8; CHUNK];
        let (mut cur, mut nxt) = (&mut list, &mut list2);
        let mut off = ROOT_BITS + K;
        while pending > 0 && off < 128 {
            let half = if off < 64 { &hi } else { &lo };
            let sh = off % 64;
            let mut next = 0usize;
            for &i in &cur[..pending.min(CHUNK)] {
                let i = i as usize % CHUNK;
                let slot = ((half[i] << sh) >> (64 - K)) as usize;
                let e = self.step(res[i], slot);
                res[i] = e;
                nxt[next % CHUNK] = i as u8;
                next += (e >> 31) as usize;
            }
            std::mem::swap(&mut cur, &mut nxt);
            pending = next;
            off += K;
        }
        // Only an inconsistent table leaves EXT set; never hand a node number out as a hop.
        for &i in &cur[..pending.min(CHUNK)] {
            res[i as usize % CHUNK] = 0;
        }
        out.copy_from_slice(&res[..n]);
    }

    /// Distinct prefixes.
    pub fn prefixes(&self) -> usize {
        self.prefixes
    }

    /// Groups below the root: the plain groups (bits 16..24) and the compressed nodes (8 bits
    /// each below), each standing for 256 leaf-pushed entries.
    pub fn groups(&self) -> usize {
        self.count
    }

    /// Bytes of table memory.
    pub fn memory(&self) -> usize {
        ROOT * 4 + self.l0.len() * 4 + self.nodes.len() * 4
    }
}

/// A burst lookup path: tests run each one, whichever the CPU would pick.
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub(crate) enum Path {
    /// The scalar loop compiled for the x86_64 baseline (software popcount).
    Portable,
    /// The scalar loop with POPCNT and BMI2.
    Popcnt,
    /// The AVX-512 gathers.
    Avx512,
}

#[cfg(test)]
impl Lpm6 {
    /// Every path.
    pub(crate) const PATHS: [Path; 3] = [Path::Portable, Path::Popcnt, Path::Avx512];

    /// [`Lpm6::lookup_burst`] by `path` (by the one the CPU picks where it lacks that one).
    pub(crate) fn lookup_burst_by(&self, path: Path, addrs: &[u128], out: &mut [u32]) {
        match path {
            Path::Portable => self.burst_inner(addrs, out),
            Path::Popcnt if self.popcnt => burst_popcnt(self, addrs, out),
            Path::Avx512 if self.avx512 => burst_avx512(self, addrs, out),
            _ => self.lookup_burst(addrs, out),
        }
    }

    /// [`Lpm6::lookup`] compiled for the x86_64 baseline.
    pub(crate) fn lookup_portable(&self, addr: u128) -> u32 {
        self.lookup_inner(addr)
    }
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vpopcntdq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_popcnt() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("popcnt")
            && std::arch::is_x86_feature_detected!("bmi1")
            && std::arch::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
/// # Safety
/// The CPU must have POPCNT, BMI1 and BMI2.
#[target_feature(enable = "popcnt,bmi1,bmi2")]
#[allow(unsafe_code)]
unsafe fn lookup_popcnt_tf(t: &Lpm6, addr: u128) -> u32 {
    t.lookup_inner(addr)
}

#[cfg(target_arch = "x86_64")]
/// # Safety
/// The CPU must have POPCNT, BMI1 and BMI2.
#[target_feature(enable = "popcnt,bmi1,bmi2")]
#[allow(unsafe_code)]
unsafe fn burst_popcnt_tf(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
    t.burst_inner(addrs, out)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn lookup_popcnt(t: &Lpm6, addr: u128) -> u32 {
    // SAFETY: only called when `t.popcnt`, set from `is_x86_feature_detected!("popcnt")`.
    unsafe { lookup_popcnt_tf(t, addr) }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn burst_popcnt(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
    // SAFETY: only called when `t.popcnt`, set from `is_x86_feature_detected!("popcnt")`.
    unsafe { burst_popcnt_tf(t, addrs, out) }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn burst_avx512(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
    for (a, o) in addrs.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
        // SAFETY: only called when `t.avx512`, set from `is_x86_feature_detected!` of the
        // features the function enables.
        unsafe { avx512::chunk(t, a, o) }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn burst_avx512(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
    t.burst_inner(addrs, out)
}

/// The burst lookup on AVX-512: sixteen addresses a vector, four vectors (a chunk of 64)
/// level by level, every table read a masked gather.
///
/// AVX-512 intrinsics and target features are stable since Rust 1.89, the workspace's
/// `rust-version`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use super::{Lpm6, CHUNK, EXT, HDR, K, OFF, ROOT_BITS, SPARSE, SPARSE_HDR, WORDS};
    use std::arch::x86_64::*;

    /// Looks up `addrs[..64]` into `out`.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, AVX-512BW and AVX-512 VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq")]
    pub(super) unsafe fn chunk(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
        const V: usize = CHUNK / 16;
        let n = addrs.len().min(out.len()).min(CHUNK);
        let base = addrs.as_ptr().cast::<i32>();
        let root = t.root.as_ptr().cast::<i32>();
        let l0 = t.l0.as_ptr().cast::<i32>();
        let nodes = t.nodes.as_ptr().cast::<i32>();
        // Largest valid indexes: every gather index is clamped to them, so no lane ever reads
        // outside its table whatever the table holds (both tables are never empty).
        let l0_max = _mm512_set1_epi32((t.l0.len() - 1).min(i32::MAX as usize) as i32);
        let nodes_max = _mm512_set1_epi32((t.nodes.len() - 1).min(i32::MAX as usize) as i32);
        let zero = _mm512_setzero_si512();
        let ext = _mm512_set1_epi32(EXT as i32);
        let low = _mm512_set1_epi32(!EXT as i32);
        let byte = _mm512_set1_epi32(0xff);
        let off_mask = _mm512_set1_epi32(OFF as i32);
        let sparse = _mm512_set1_epi32(SPARSE as i32);
        let one = _mm512_set1_epi32(1);
        // Byte 0 of each dword into its four bytes.
        let spread = _mm512_set4_epi32(0x0c0c_0c0c, 0x0808_0808, 0x0404_0404, 0);
        // Byte offset of each lane's address in a vector of sixteen.
        let lanes = _mm512_setr_epi32(
            0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,
        );
        let mut e = [zero; V];
        let mut pending = [0u16; V];
        let mut valid = [0u16; V];
        // Bits 96..127 and 64..95 of each address (its dwords 3 and 2, little-endian).
        let mut top = [zero; V];
        let mut mid = [zero; V];
        // Dwords 3 of addresses 0..8 then dwords 2 of the same, from two vectors of four.
        let pick = _mm512_setr_epi32(3, 7, 11, 15, 19, 23, 27, 31, 2, 6, 10, 14, 18, 22, 26, 30);
        let lo8 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        let hi8 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        for v in 0..V {
            let m = n.saturating_sub(16 * v).min(16);
            valid[v] = ((1u32 << m) - 1) as u16;
            if m == 0 {
                continue;
            }
            let mut q = [zero; 4];
            for (j, q) in q.iter_mut().enumerate() {
                // Addresses 16 v + 4 j.. (four dwords each) below n.
                let k = (((1u64 << (4 * m.saturating_sub(4 * j).min(4))) - 1) & 0xffff) as u16;
                if k != 0 {
                    // SAFETY: the lanes of `k` are the dwords of addresses below n, inside
                    // `addrs`; masked-off lanes read nothing.
                    *q = unsafe { _mm512_maskz_loadu_epi32(k, base.add(4 * (16 * v + 4 * j))) };
                }
            }
            let a = _mm512_permutex2var_epi32(q[0], pick, q[1]);
            let b = _mm512_permutex2var_epi32(q[2], pick, q[3]);
            top[v] = _mm512_permutex2var_epi32(a, lo8, b);
            mid[v] = _mm512_permutex2var_epi32(a, hi8, b);
            let top = top[v];
            let ri = _mm512_srli_epi32::<{ 32 - ROOT_BITS }>(top);
            // SAFETY: `ri` < 2^16, the root's length.
            let r = unsafe { _mm512_mask_i32gather_epi32::<4>(zero, valid[v], ri, root) };
            let is_ext = _mm512_mask_test_epi32_mask(valid[v], r, ext);
            let gi = _mm512_or_si512(
                _mm512_slli_epi32::<K>(_mm512_and_si512(r, low)),
                _mm512_and_si512(_mm512_srli_epi32::<{ 32 - ROOT_BITS - K }>(top), byte),
            );
            let gi = _mm512_min_epu32(gi, l0_max);
            // SAFETY: indexes clamped to the plain groups' length.
            let r = unsafe { _mm512_mask_i32gather_epi32::<4>(r, is_ext, gi, l0) };
            e[v] = r;
            pending[v] = _mm512_mask_test_epi32_mask(valid[v], r, ext);
        }
        let mut off = ROOT_BITS + K;
        while pending.iter().any(|&k| k != 0) && off < 128 {
            // The slot is the address's byte `off / 8` from the top: byte 15 - off / 8 in
            // memory (≤ 12: a dword read from it stays inside the address).
            let b = 15 - off as i32 / 8;
            for v in 0..V {
                let k = pending[v];
                if k == 0 {
                    continue;
                }
                let d = if b >= 12 {
                    top[v]
                } else if b >= 8 {
                    _mm512_srlv_epi32(mid[v], _mm512_set1_epi32(8 * (b - 8)))
                } else {
                    let so = _mm512_add_epi32(lanes, _mm512_set1_epi32(256 * v as i32 + b));
                    // SAFETY: pending lanes are valid ones (addresses below n); bytes
                    // b..b+4 of an address with b ≤ 12.
                    unsafe { _mm512_mask_i32gather_epi32::<1>(zero, k, so, base) }
                };
                let slot = _mm512_and_si512(d, byte);
                let p = _mm512_and_si512(e[v], off_mask);
                let ks = _mm512_mask_test_epi32_mask(k, e[v], sparse);
                let w = _mm512_srli_epi32::<5>(slot);
                // Dense: the slot's bitmap word and its rank word; sparse: the two words of
                // run starts.
                let bi = _mm512_mask_mov_epi32(_mm512_add_epi32(p, w), ks, p);
                let bi = _mm512_min_epu32(bi, nodes_max);
                let ri = _mm512_add_epi32(p, _mm512_set1_epi32(WORDS as i32));
                let ri = _mm512_add_epi32(ri, _mm512_srli_epi32::<7>(slot));
                let ri = _mm512_mask_mov_epi32(ri, ks, _mm512_add_epi32(p, one));
                let ri = _mm512_min_epu32(ri, nodes_max);
                // SAFETY: indexes clamped to the nodes' length.
                let bm = unsafe { _mm512_mask_i32gather_epi32::<4>(zero, k, bi, nodes) };
                // SAFETY: as above.
                let rk = unsafe { _mm512_mask_i32gather_epi32::<4>(zero, k, ri, nodes) };
                let sh = _mm512_slli_epi32::<3>(_mm512_and_si512(w, _mm512_set1_epi32(3)));
                let before = _mm512_and_si512(_mm512_srlv_epi32(rk, sh), byte);
                let keep = _mm512_andnot_si512(slot, _mm512_set1_epi32(31));
                let rank = _mm512_popcnt_epi32(_mm512_sllv_epi32(bm, keep));
                let ei = _mm512_add_epi32(
                    _mm512_add_epi32(p, _mm512_set1_epi32(HDR as i32 - 1)),
                    _mm512_add_epi32(before, rank),
                );
                // Sparse: count the start bytes below the slot (each lane's matching bytes
                // made 0xff and counted as bits, eight a byte).
                let sb = _mm512_shuffle_epi8(slot, spread);
                let below = _mm512_add_epi32(
                    _mm512_popcnt_epi32(_mm512_movm_epi8(_mm512_cmplt_epu8_mask(bm, sb))),
                    _mm512_popcnt_epi32(_mm512_movm_epi8(_mm512_cmplt_epu8_mask(rk, sb))),
                );
                let si = _mm512_add_epi32(
                    _mm512_add_epi32(p, _mm512_set1_epi32(SPARSE_HDR as i32)),
                    _mm512_srli_epi32::<3>(below),
                );
                let ei = _mm512_mask_mov_epi32(ei, ks, si);
                let ei = _mm512_min_epu32(ei, nodes_max);
                // SAFETY: as above.
                let ne = unsafe { _mm512_mask_i32gather_epi32::<4>(e[v], k, ei, nodes) };
                e[v] = ne;
                pending[v] = _mm512_mask_test_epi32_mask(k, ne, ext);
            }
            off += K;
        }
        let dst = out.as_mut_ptr().cast::<i32>();
        for v in (0..V).filter(|&v| valid[v] != 0) {
            // Only an inconsistent table leaves EXT set; never hand a node number out as a hop.
            let r = _mm512_mask_mov_epi32(e[v], pending[v], zero);
            // SAFETY: the lanes of `valid` write `out[16 v + lane]`, `16 v + lane < n`.
            unsafe { _mm512_mask_storeu_epi32(dst.add(16 * v), valid[v], r) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn lookup_popcnt(t: &Lpm6, addr: u128) -> u32 {
    t.lookup_inner(addr)
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn burst_popcnt(t: &Lpm6, addrs: &[u128], out: &mut [u32]) {
    t.burst_inner(addrs, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    /// Longest match by brute force (the last of duplicates wins).
    fn oracle(routes: &[(u128, u8, u32)], a: u128) -> u32 {
        let mut best: Option<(u8, u32)> = None;
        for &(p, l, nh) in routes {
            if a & mask(l) == p & mask(l) && best.is_none_or(|(bl, _)| l >= bl) {
                best = Some((l, nh));
            }
        }
        best.map_or(0, |(_, nh)| nh)
    }

    /// Every lookup path against the oracle, on each probe and on the edges of each prefix,
    /// in bursts of several lengths (shorter and longer than a vector and a chunk).
    fn check(routes: &[(u128, u8, u32)], extra: &[u128]) {
        let t = Lpm6::build(routes).unwrap();
        let mut probes = extra.to_vec();
        for &(a, l, _) in routes {
            let a = a & mask(l);
            let last = a | !mask(l);
            probes.extend([a, last, a.wrapping_sub(1), last.wrapping_add(1)]);
        }
        let want: Vec<u32> = probes.iter().map(|&a| oracle(routes, a)).collect();
        for (&a, &w) in probes.iter().zip(&want) {
            assert_eq!(t.lookup(a), w, "{}", std::net::Ipv6Addr::from(a));
            assert_eq!(t.lookup_portable(a), w, "{}", std::net::Ipv6Addr::from(a));
        }
        for path in Lpm6::PATHS {
            for burst in [1, 7, 16, 17, 32, 63, 64, 65, 200] {
                let mut out = vec![u32::MAX; probes.len()];
                for (a, o) in probes.chunks(burst).zip(out.chunks_mut(burst)) {
                    t.lookup_burst_by(path, a, o);
                }
                for ((&a, &w), &got) in probes.iter().zip(&want).zip(&out) {
                    assert_eq!(
                        got,
                        w,
                        "{path:?} burst {burst}: {}",
                        std::net::Ipv6Addr::from(a)
                    );
                }
            }
        }
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

    #[test]
    fn empty_default_and_host_routes() {
        check(&[], &[0, u128::MAX, ip("2001:db8::1")]);
        check(&[(0, 0, 9)], &[0, u128::MAX, ip("2001:db8::1")]);
        check(&[(u128::MAX, 128, 3)], &[0, u128::MAX - 1]);
        check(&[(0, 128, 3), (0, 0, 4)], &[1, 2, u128::MAX]);
        check(&[(ip("2001:db8::7"), 128, MAX_NEXT_HOP)], &[]);
        let t = Lpm6::build(&[]).unwrap();
        let mut out = [7u32; 3];
        t.lookup_burst(&[], &mut out);
        t.lookup_burst(&[1, 2, 3], &mut []);
        assert_eq!(out, [7; 3]);
        assert!(Lpm6::build(&[(0, 129, 1)]).is_err());
        assert!(Lpm6::build(&[(0, 8, 0)]).is_err());
        assert!(Lpm6::build(&[(0, 8, MAX_NEXT_HOP + 1)]).is_err());
    }

    /// Prefixes of every length nested on one address, and each on its own; lengths on and
    /// around every stride boundary (16, 24, 32, ... 128).
    #[test]
    fn nested_at_every_length() {
        let a = ip("2001:db8:ffff:5555:aaaa:1234:8765:fedc");
        let all: Vec<_> = (0..=128u8)
            .map(|l| (a & mask(l), l, u32::from(l) + 1))
            .collect();
        check(&all, &[a, a ^ 1, a ^ (1 << 64), a ^ (1 << 100)]);
        // Every other length, then only the boundaries.
        let odd: Vec<_> = all.iter().copied().filter(|r| r.1 % 2 == 1).collect();
        check(&odd, &[a, a ^ 1]);
        let edges: Vec<_> = all.iter().copied().filter(|r| r.1 % 8 == 0).collect();
        check(&edges, &[a, a ^ 1, a ^ 0xff00]);
        for l in [
            15u8, 16, 17, 23, 24, 25, 31, 32, 33, 48, 63, 64, 65, 120, 127, 128,
        ] {
            check(&[(a, l, 5), (a ^ (1u128 << (128 - l)), l, 6)], &[a, !a]);
        }
    }

    /// Runs starting at both sides of each 32-slot bitmap word of a node, so every rank byte
    /// and every bit position is read; a node whose 256 slots are all different.
    #[test]
    fn runs_across_bitmap_words() {
        let base = ip("2400:cb00:2048::");
        let mut routes = vec![(base, 40, 1)];
        for (k, s) in [
            0u128, 1, 30, 31, 32, 33, 63, 64, 95, 96, 127, 128, 200, 254, 255,
        ]
        .iter()
        .enumerate()
        {
            routes.push((base | s << 80, 48, k as u32 + 2));
        }
        let probes: Vec<u128> = (0..256u128).map(|s| base | s << 80 | 0xabc).collect();
        check(&routes, &probes);
        let full: Vec<_> = (0..256u128)
            .map(|s| (base | s << 80, 48, s as u32 + 1))
            .collect();
        check(&full, &probes);
    }

    /// Nodes on both sides of the sparse limit (up to 9 runs: run starts listed as bytes;
    /// more: bitmap), with runs starting at slot 1 and at slot 255.
    #[test]
    fn sparse_and_dense_nodes() {
        let base = ip("2a02:1234:5600::");
        let probes: Vec<u128> = (0..256u128).map(|s| base | s << 80 | 0x77).collect();
        let mut memory = Vec::new();
        for m in 0..=12u128 {
            let mut routes = vec![(base, 40, 1)];
            routes.extend((1..=m).map(|s| (base | s << 80, 48, s as u32 + 10)));
            routes.push((base | 255 << 80, 48, 99));
            check(&routes, &probes);
            // The same without the covering /40: runs of "no route" between.
            check(&routes[1..], &probes);
            let t = Lpm6::build(&routes).unwrap();
            assert_eq!(
                t.groups(),
                4,
                "{m}: a plain group and nodes for /32, /40 and /48"
            );
            memory.push(t.memory());
        }
        // The /48 node has m + 3 runs (2 for m = 0): sparse up to m = 6, dense (a bigger
        // header) from 7.
        let steps: Vec<usize> = memory.windows(2).map(|w| w[1] - w[0]).collect();
        let dense = 4 * (1 + HDR - SPARSE_HDR);
        assert_eq!(steps, [8, 4, 4, 4, 4, 4, dense, 4, 4, 4, 4, 4]);
    }

    /// Many random nested tables, clustered so nodes get dense.
    #[test]
    fn random_clustered_tables() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20 {
            let n = 1 + rnd() as usize % 300;
            let routes: Vec<(u128, u8, u32)> = (0..n)
                .map(|_| {
                    let a = (0x2001_0db8u128 << 96) | u128::from(rnd()) << 40 ^ u128::from(rnd());
                    let a = if rnd() % 4 == 0 { a >> 20 } else { a };
                    let l =
                        [0u8, 16, 24, 29, 32, 40, 44, 47, 48, 56, 64, 96, 128][rnd() as usize % 13];
                    let l = if rnd() % 3 == 0 { rnd() as u8 % 129 } else { l };
                    (a, l, 1 + rnd() as u32 % 5)
                })
                .collect();
            let extra: Vec<u128> = (0..300)
                .map(|_| (0x2001_0db8u128 << 96) | u128::from(rnd()) << 40 | u128::from(rnd()))
                .collect();
            check(&routes, &extra);
        }
    }
}
