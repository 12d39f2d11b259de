//! The IPv4 5-tuple decision tree: a multi-way HyperSplit, updated in place by path copying.
//!
//! # Why this structure
//!
//! The tuple space (`classifier.rs`) probes one hash table per tuple, and ClassBench sets need
//! 15-35 of them: 250-1000 cycles a packet. A decision tree answers in a handful of dependent
//! loads. HyperSplit (Qi, Xu, Yang, Li, Infocom 2009) cuts the rule space with binary splits at
//! rule boundaries chosen so that both halves get about the same weight of rules; this tree
//! makes each node an up to [`FANOUT`]-way split of one dimension instead (the cut points are
//! the weight quantiles of the node's elementary intervals, the dimension the one whose
//! largest child plus twice its average child holds the fewest rules), which makes it
//! several times shallower
//! (depth 3-7 on the ClassBench sets). A node is 16 thresholds, the last `u32::MAX` (one
//! line), and its children, one 8-byte word each (two lines); the child is the number of
//! thresholds the packet's value exceeds: sixteen independent compares, one 512-bit compare
//! and a population count with AVX-512. A child's word ([`Kid`]) is a tagged pointer: to an
//! inner node, with the node's dimension in its low bits, or to a leaf, with its number of
//! rules. A leaf is at most a few dozen rules in priority order, each as its five ranges, in
//! one allocation after two head lines laid out like a node's first two: sixteen thresholds
//! that no value exceeds and, where a node's first child is, the leaf's own word (then its
//! reference count), so a walk's step reads a leaf as a node whose child is the leaf itself.
//! A leaf of fewer than four rules is padded to four with entries no packet matches. Its
//! rules are checked in priority order and the first that matches is the leaf's answer.
//!
//! Dimensions are `[src, dst, sport, dport, proto]` as `u32` ranges. Ports take one extra value,
//! [`PORTLESS`] (65536): a packet without ports looks up with it, and only a rule whose port
//! range is the whole space extends to it, which is exactly [`Rule::matches`]'s rule for
//! port-less packets. A rule whose other conditions (ICMP type or code, TCP flags, connection
//! state other than any, input port, a protocol mask other than none or all) do not fit the
//! five ranges keeps its whole [`Rule`] in its leaf entries and is checked with
//! [`Rule::matches`] once its ranges match; every other entry needs only a "plain" packet
//! (IPv4, a connection state among [`ct::ANY`]'s), so the result is exactly the linear scan's.
//!
//! The classifier (`Space4` in `classifier.rs`) puts all rules in one tree when that stays
//! small, and otherwise splits them by which addresses are specific, as CutSplit (Li, Yang,
//! Xie, Li, Infocom 2018) does: a rule with a wildcard source is copied into every leaf that
//! cuts the source, so keeping wide rules apart from narrow ones keeps each tree small. A
//! build is given a budget of leaf entries and gives up (the caller tries the next grouping)
//! once it is spent.
//!
//! # Updates
//!
//! Nodes (`Arc`s) and leaves (reference-counted like them) are shared between the writer and
//! every published snapshot. Adding
//! a rule walks down every child its box meets and inserts it in priority order into each leaf
//! reached; deleting removes it from the same leaves. `Arc::make_mut` copies exactly the nodes
//! on those paths and each leaf reached is rebuilt as a new slice (path copying), so a
//! published tree is never written and a new snapshot shares everything the update did not
//! touch. A leaf that an insert grows past [`LEAF_SPLIT`] rules is rebuilt as a subtree over
//! its own box (a local rebuild, proportional to the leaf). Deletes never merge leaves. On the
//! 10K ClassBench sets a single add or delete takes 2-4 µs (median; a rule with wildcards that
//! meets many leaves takes up to a few hundred).
//!
//! # Lookups
//!
//! A burst walks each tree in lockstep: every packet moves down one level per pass, so their
//! loads are independent of each other and overlap in the out-of-order core instead of
//! waiting one after the other. The first pass is at the root, where every packet is. The next passes step every packet, those already at their leaves too (a leaf steps to
//! itself), so no branch depends on where a packet is; once at most half of the packets are
//! still at nodes, the passes go over a list of those instead, rebuilt whenever half of it has
//! arrived, until the root's height of passes is done. A step reads the node's thresholds'
//! line, the packet's value in the dimension its word names, and the one child word it picks.
//!
//! With one tree, each packet then checks the first four entries of its leaf, whatever they
//! hold (four independent compares, their failing lanes side by side in one 64-bit mask, the
//! first all-zero group found without a branch); the first that passed is the answer when the
//! packet is plain and the entry needs nothing more, and it goes straight to the caller's
//! output. Otherwise (a whole rule to check, a packet that is not plain, or nothing in the
//! first four and more rules after them) the leaf is scanned as below. With several trees the
//! first tree's first four entries are checked the same way for every packet, then one pass
//! reads the first rule's priority of every other tree's leaf, and each packet's other leaves
//! are scanned with the best priority found so far as the limit, skipping a leaf whose first
//! rule cannot beat it. A scan checks four entries at a time (their four lines load together,
//! and their results become four bits) and costs one branch per four entries unless one of
//! them matched, plus one that stops it once a chunk's first priority cannot beat the limit.
//! Entries and nodes are aligned to cache lines (an entry is exactly one line).
//!
//! On a CPU with AVX-512 (checked at run time; the portable code is the fallback and the tests
//! compare both with the linear scan) an entry check is one 512-bit compare: an entry's first
//! eleven words are its five `lo`, its five upper ends complemented (`nhi`, so that `v <= hi`
//! is `nhi <= !v`, the same direction of compare) and its priority, and the packet's are `v`,
//! `!v` and the priority limit minus one, so "every lane of the entry is at most the packet's"
//! is "the ranges hold the packet and the priority beats the limit".
//!
//! What was measured (ClassBench sets, bursts of 32, `bench firewall`, a shared 2-vCPU VM):
//! the lockstep walk is 1.6-1.8x faster than descending packet by packet; the pass over the
//! leaves' first priorities gained about 8 % with 8-way nodes and one entry per check, but
//! with the four-entry scan it costs more than it saves when there is one tree (acl1_1K 60
//! against 63-66 cycles without and with it; fw1_10K, three trees, 150 against 133 with it), so
//! only bursts over several trees take it; software prefetches of the next node or leaf in the
//! walk made it 10-30 % slower (the trees fit in L2; the prefetches only cost instructions)
//! and were dropped; 16-way nodes were no faster than 8-way ones while their compares were SSE2
//! (see below for AVX-512); stopping the build at 12 rules per leaf instead of 8 halves the
//! memory at the same speed (8-way nodes); leaves stored column by column (eight rules per
//! vector compare) were twice as slow (one more dependent load per leaf, and most leaves are
//! short).
//!
//! Then, on 2026-12-07 (`bench firewall --algs avx512x32 --runs 3 --stage-secs 0`, the new
//! and the old binary one after the other; median Mpps, cycles per classification, and the
//! ratio to rte_acl's avx512x32 in the same run; before -> after): acl1_1K 25.1 (104) 0.32 ->
//! 53.0 (49) 0.63, fw1_1K 18.3 (142) 0.45 -> 30.9 (84) 0.72, ipc1_1K 29.0 (90) 0.40 -> 59.3
//! (44) 0.77, acl1_10K 21.4 (121) 0.50 -> 38.8 (67) 0.91, fw1_10K 15.4 (169) 0.65 -> 22.4
//! (116) 0.97, ipc1_10K 15.9 (164) 0.73 -> 21.7 (120) 0.97; geometric mean of the ratios
//! 0.49 -> 0.82 (rte_acl: 31-34 cycles on the 1K sets, 60-119 on the 10K ones). Each step,
//! against the one before it (ours only, interleaved): AVX-512 node and entry compares (the
//! build enables no AVX: the portable code compiles to SSE2) 5-15 %; 16-way nodes (one
//! 512-bit compare, as cheap as 8-way) 5-20 % on acl1 and fw1, but ipc1_1K then needed two
//! trees under the old limit of 16 entries per rule for one tree and got 20 % slower, so the
//! limit became 32 (ipc1_1K: one tree of 1.3 MiB, a little faster than before); the
//! four-entry scan 15-25 % on acl1, ipc1 and acl1_10K, nothing on fw1 (eight entries at a time
//! and two were both slower than four); walking every pair in each pass and stopping after a
//! pass that moved none, instead of keeping a list of the pairs still at a node, 3-8 %; the
//! first-priority pass only with several trees, 0-8 %; grouping rules by /8 as well as /16
//! and keeping the trees with fewer entries (`classifier.rs`) 15 % on fw1_1K. Memory grew by
//! a sixth to two thirds (acl1_10K 2.1 -> 2.7 MiB, fw1_10K 0.7 -> 1.1 MiB, still 3-77x less
//! than rte_acl's), single-rule updates at 10K rules slowed a little (medians 2.0-3.6 µs,
//! from 1.3-3.5; the worst of 200 64-158 µs, from 45-154), because a node is now 512 bytes,
//! and a full build of a set that needs several trees takes about twice as long (fw1_10K 98
//! -> 188 ms: two groupings are built).
//!
//! What did not work: removing mispredicted branches from the walk and the scan by rewriting
//! the list of pairs still walking (or packets still scanning) without a branch (its length
//! grows by a condition) was 15-40 % slower: each step's store address then waits for the
//! step before it, which serializes the lockstep passes; scanning the leaves in lockstep too
//! (one entry of every packet per pass) was slower for the same reason; a walk without any
//! branch (a pair at its leaf steps through a node without thresholds and keeps its leaf,
//! every choice a `select_unpredictable`) was 5-10 % slower (the passes over pairs already at
//! their leaves cost more than the mispredictions they save); keeping a node's dimension in its
//! thresholds' line (fifteen thresholds and the dimension in one 512-bit load, so a step reads
//! one line of the node instead of two) changed nothing measurable; stopping the build at 8
//! or 16 rules per leaf instead of 12 was faster on some sets and slower on others; 32-way
//! nodes (two 512-bit compares) made acl1 and ipc1_1K 5 % faster but fw1_10K 17 % and
//! ipc1_10K 5 % slower, in more memory.
//!
//! Later on 2026-12-07 (same command with `--core 0`, the new binary and then the old one;
//! median Mpps, cycles, ratio to rte_acl; before -> after): acl1_1K 49.8 (52) 0.62 -> 58.4
//! (45) 0.73, fw1_1K 30.2 (86) 0.73 -> 34.1 (76) 0.82, ipc1_1K 55.2 (47) 0.77 -> 65.8 (40)
//! 0.87, acl1_10K 36.8 (71) 0.89 -> 41.2 (63) 0.99, fw1_10K 21.4 (122) 1.04 -> 29.8 (87)
//! 1.33, ipc1_10K 22.5 (116) 1.05 -> 26.6 (98) 1.18; geometric mean of the ratios 0.83 ->
//! 0.96 (rte_acl: 32-36 cycles on the 1K sets, 62-63 on acl1_10K, 114-127 on the others).
//! Each step against the one before (ours only, interleaved, the least cycles of five runs of
//! 0.5 s; acl1_1K, fw1_1K, ipc1_1K, acl1_10K, fw1_10K, ipc1_10K): children as 8-byte tagged
//! words instead of 24-byte enums of fat `Arc`s, the node's dimension in the word (a node 4
//! lines instead of 8, a step reading 2 of them instead of 3-4) 50 81 45 67 95 99 from 50 87 45
//! 70 114 111; the four-entry scan making four bits (one compare and one `sete` per entry)
//! instead of the carry trick over the four 16-bit results, with a stop once a chunk's first
//! priority cannot beat the limit, 5-17 %; the walk's root pass on its own (every packet is
//! there) and at most the root's height of passes, 5-11 % on fw1 (bounding the passes alone,
//! without also stopping after a pass that moved none, was 4 % slower on acl1_1K and ipc1_1K,
//! so such a pass still ends the walk); seventeen children so the population count needs no
//! mask, within the noise (one instruction fewer per step). Memory: a node's allocation is 320
//! bytes instead of 576, a leaf's the same; the figures grew (acl1_10K 2.74 -> 3.01 MiB,
//! fw1_10K 1.13 -> 1.46, ipc1_1K 1.29 -> 1.38) only because `shape` now counts the whole line
//! before a leaf's entries, which the `Arc<[Entry]>` of before had as well (its two counts
//! padded to the entries' alignment) but counted as 16 bytes. Updates are unchanged
//! (acl1_10K, 500 of each, three runs: deletes 2.9-3.2 µs median against 2.9-3.0, adds 2.2-2.4
//! against 2.2-2.3).
//!
//! What did not work then: stopping the build at 8 or 16 rules per leaf again, now that nodes
//! are cheaper (8: ipc1_1K needs two trees and takes 80 cycles instead of 45, the rest 0-10 %
//! slower; 16: acl1_1K 1 cycle faster, fw1_1K, ipc1_1K and fw1_10K 5-10 % slower); eight
//! entries per scan chunk with the four-bit scheme (20-25 % slower); a packet's values and its
//! position in one 40-byte lane, so that a step addresses both from one register (one
//! instruction fewer per step, but the copies made it 2-4 % slower); a scan loop of its own for
//! one tree (no limit, the key fetched only for whole rules): mixed, within 5 % either way;
//! prefetching the first two lines of every leaf before a one-tree scan (acl1_10K 63 -> 61,
//! acl1_1K 44 -> 45, within the noise); masking the node compare to fifteen lanes to drop the
//! mask after the population count (LLVM masks the compare's result instead); allowing 64
//! entries per rule in one tree (fw1_1K still needs two); 32-way nodes again, now that a child
//! is one word (two threshold lines, 33 children): acl1_10K 7 % and ipc1_1K 2 % faster, fw1_1K
//! 11 % and fw1_10K 15 % slower, memory up by a third to double (fw1_1K 0.33 -> 0.70 MiB,
//! ipc1_10K 3.06 -> 4.58), single-rule updates a little slower (acl1_10K deletes 4.9 µs).
//!
//! A third round on 2026-12-07 (interleaved runs of the bench binary, `bench firewall --algs
//! avx512x32 --secs 0.3 --core 0 --no-peer`, the least cycles per classification of seven
//! runs; acl1_1K, fw1_1K, ipc1_1K, acl1_10K, fw1_10K, ipc1_10K; the machine's speed drifted by
//! up to 15 % over the hour, so each step is against the one before it in the same runs). A
//! profile of acl1_1K (2.8 levels and 2.2 entries a packet on average, the tree 5 levels
//! high) put 43 % of the time in the walk, mostly in its branch on whether a packet was at a
//! leaf yet, 30 % in the scans and 13 % in the caller's copying of keys and answers. Each
//! step: the leaf read as a node whose child is itself, every packet stepped in every pass,
//! and a list of the packets still walking once half have arrived: 43 75 39 59 83 91 -> 40 66
//! 37 56 88 82 (the list is what wins: stepping every packet until the end alone gained
//! nothing on the 10K sets); the burst reading the keys and writing the answers itself (one
//! copy fewer each): 45 78 40 63 86 98 -> 37 66 35 57 85 82; the first four entries of a
//! one-tree leaf read unconditionally (leaves padded to four) and the answer written from
//! that loop: 42 75 40 62 94 91 -> 38 69 36 57 100 85 (reading the first four of every tree's
//! leaf was 10-15 % slower on fw1_10K and ipc1_10K, so only the first tree's are); the first
//! passing entry of four found from one 64-bit mask: 1-2 cycles on the 1K sets; two packets
//! per iteration in the full passes, counting those still walking afterwards: 35 65 33 57
//! 100 89 -> 35 66 33 49 97 82; each node's dimension chosen by its largest child plus twice
//! its average child instead of the average alone (the passes follow the deepest path): 37
//! 69 36 55 100 92 -> 34 69 36 58 100 94. Together, `bench firewall --runs 3` against
//! rte_acl's avx512x32 in the same run went from 0.717 0.834 0.878 0.953 1.298 1.170
//! (geometric mean 0.955) to 1.060 1.070 1.158 1.194 1.262 1.474 (1.195). Memory grew by the
//! leaves' second head line and the padding, and by the deeper trees' choice: acl1_1K 0.31 ->
//! 0.44 MiB, acl1_10K 3.01 -> 4.96, fw1_10K 1.46 -> 3.27, ipc1_10K 3.06 -> 3.67.
//!
//! What did not work in that round: reading each key's values with one AVX-512 masked load
//! and permute (no change, and it needed a fixed layout of `PacketKey`); switching to the
//! list when two thirds instead of half have arrived, or only at an eighth, or never (no
//! change on the 1K sets, the last 5-15 % slower on the 10K ones); masked loads for the first
//! four entries instead of padding short leaves (4-6 cycles slower on every set); checking
//! the first eight entries unconditionally (fw1 25 % slower, the rest no faster); the
//! remaining passes over the list without any test of whether they are done, the packets
//! already at leaves scanned first so as to overlap with them (10K sets 7-12 % slower);
//! 32-way nodes again (acl1_1K 35 against 32, fw1_1K 71 against 58, memory up to double);
//! stopping the build at 8 rules per leaf (ipc1_1K needs two trees, 64 cycles against 35);
//! leaves of up to 24 rules below depth 3 or 4 (within the noise, memory down by a third).
//! Choosing each node's dimension by its largest child plus the average (not twice it):
//! acl1_10K 63 cycles against 58, in 8.2 MiB.

use std::sync::Arc;

use super::rules::{ct, prefix_mask, Action, PacketKey, Rule};

/// Dimensions: source, destination, source port, destination port, protocol.
pub const DIMS: usize = 5;
/// Children per node at most.
pub const FANOUT: usize = 16;
/// A build stops splitting a node with this many rules or fewer.
const LEAF_BUILD: usize = 12;
/// An insert rebuilds a leaf that grows past this many rules.
pub const LEAF_SPLIT: usize = 24;
/// Levels below the root at most (a leaf there is never split).
const MAX_DEPTH: usize = 16;
/// The port value of a packet without ports.
pub const PORTLESS: u32 = 65536;
/// The largest value of each dimension.
const DOM_HI: [u32; DIMS] = [u32::MAX, u32::MAX, PORTLESS, PORTLESS, 255];
/// Packets walked together at most.
pub const LANES: usize = 32;
/// Trees walked together at most.
pub const MAX_TREES: usize = 4;

/// A packet's values, one per dimension, padded to 8 so that a node's dimension indexes them
/// with a mask instead of a bounds check.
pub type Vals = [u32; 8];

/// A box: an inclusive range per dimension.
pub type Bx = [(u32, u32); DIMS];

/// The whole space.
pub const WHOLE: Bx = [
    (0, DOM_HI[0]),
    (0, DOM_HI[1]),
    (0, DOM_HI[2]),
    (0, DOM_HI[3]),
    (0, DOM_HI[4]),
];

/// One rule as a leaf holds it: 64 bytes, aligned so that each is exactly one cache line.
/// `repr(C)`: the AVX-512 scan reads the first eleven words (`lo`, `nhi`, `prio`) as lanes of
/// one vector and compares them with the packet's in one instruction.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Entry {
    lo: [u32; DIMS],
    /// The ranges' upper ends, complemented: `x <= hi` is `nhi <= !x`, the same direction of
    /// compare as `lo <= x`.
    nhi: [u32; DIMS],
    /// Priority (lower wins).
    pub prio: u32,
    /// Rule id.
    pub id: u32,
    /// Action.
    pub action: Action,
    /// The whole rule, when conditions outside the five ranges must be checked too.
    full: Option<Arc<Rule>>,
}

impl Entry {
    /// The entry of `r`, or `None` if a tree cannot hold it (an IPv6-only rule, or a prefix
    /// longer than 32 bits).
    pub fn of(prio: u32, r: &Rule) -> Option<Entry> {
        if r.src_len > 32 || r.dst_len > 32 || r.v6 == Some(true) {
            return None;
        }
        let ip = |a: u128, l: u8| {
            let m = (prefix_mask(l) >> 96) as u32;
            let lo = ((a >> 96) as u32) & m;
            (lo, lo | !m)
        };
        let port = |(lo, hi): (u16, u16)| {
            if lo == 0 && hi == 65535 {
                (0, PORTLESS)
            } else {
                (u32::from(lo), u32::from(hi))
            }
        };
        let (proto, odd_proto) = match r.proto.1 {
            0 => ((0, 255), false),
            0xff => ((u32::from(r.proto.0), u32::from(r.proto.0)), false),
            _ => ((0, 255), true),
        };
        let full = odd_proto
            || r.icmp_type.is_some()
            || r.icmp_code.is_some()
            || r.tcp_flags != (0, 0)
            || r.ct != ct::ANY
            || r.in_port.is_some();
        let b = [
            ip(r.src, r.src_len),
            ip(r.dst, r.dst_len),
            port(r.sport),
            port(r.dport),
            proto,
        ];
        Some(Entry {
            lo: b.map(|x| x.0),
            nhi: b.map(|x| !x.1),
            prio,
            id: r.id,
            action: r.action,
            full: full.then(|| Arc::new(*r)),
        })
    }

    /// The upper end of the range of dimension `d`.
    #[inline(always)]
    fn hi(&self, d: usize) -> u32 {
        !self.nhi[d]
    }

    /// True if the entry's box meets `bx`.
    fn meets(&self, bx: &Bx) -> bool {
        (0..DIMS).all(|d| self.lo[d] <= bx[d].1 && bx[d].0 <= self.hi(d))
    }

    /// True if the entry matches a packet with values `v`; `plain` says the packet is IPv4
    /// with a connection state among [`ct::ANY`]'s (what every entry without `full` needs).
    #[inline(always)]
    fn matches(&self, v: &Vals, plain: bool, k: &PacketKey) -> bool {
        let mut ok = true;
        for ((&lo, &nhi), &x) in self.lo.iter().zip(&self.nhi).zip(v) {
            ok &= (lo <= x) & (nhi <= !x);
        }
        ok && self.rest_matches(plain, k)
    }

    /// What the five ranges leave: `plain`, or the whole rule.
    #[inline(always)]
    fn rest_matches(&self, plain: bool, k: &PacketKey) -> bool {
        match &self.full {
            None => plain,
            Some(r) => r.matches(k),
        }
    }
}

/// A packet's values in the tree's dimensions, and whether it is plain (see
/// `Entry::matches`).
#[inline(always)]
pub fn values(k: &PacketKey) -> (Vals, bool) {
    let (sp, dp) = if k.has_ports {
        (u32::from(k.sport), u32::from(k.dport))
    } else {
        (PORTLESS, PORTLESS)
    };
    (
        [
            (k.src >> 96) as u32,
            (k.dst >> 96) as u32,
            sp,
            dp,
            u32::from(k.proto),
            0,
            0,
            0,
        ],
        !k.v6 && k.ct & ct::ANY != 0,
    )
}

/// An inner node: an up to [`FANOUT`]-way split of one dimension. `repr(C)`: the thresholds
/// are its first line and the children its next two (a step reads the first and one word of
/// the others); its dimension is also in the word of its parent that points to it.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Node {
    /// Child `c` holds the values `v` with `thr[c - 1] < v <= thr[c]`; unused thresholds are
    /// `u32::MAX`, which no value exceeds.
    thr: [u32; FANOUT],
    /// Children; those past `n` are the shared empty leaf, never reached. One more than
    /// [`FANOUT`]: a population count of sixteen bits is at most 16, so it indexes them without
    /// a mask or a bounds check (the node's size is the same).
    kids: [Kid; FANOUT + 1],
    dim: u8,
    /// Children in use.
    n: u8,
    /// Levels of inner nodes from this one down to its deepest leaf (1: its children are
    /// leaves); a burst walks a tree in exactly its root's height of passes.
    height: u8,
    /// Best priority below.
    best: u32,
}

/// The child of a node with thresholds `thr` that holds `x` (portable; the thresholds are
/// independent compares, the last `u32::MAX`, which vectorize).
#[inline(always)]
fn child_index(thr: &[u32; FANOUT], x: u32) -> usize {
    thr.iter().map(|&t| usize::from(x > t)).sum::<usize>() % FANOUT
}

impl Node {
    /// The box of child `c` within `bx`.
    fn child_box(&self, bx: &Bx, c: usize) -> Bx {
        let d = usize::from(self.dim);
        let mut b = *bx;
        if c > 0 {
            b[d].0 = self.thr[c - 1] + 1;
        }
        if c + 1 < usize::from(self.n) {
            b[d].1 = self.thr[c];
        }
        b
    }
}

pub use kid::{Kid, KidRef};

/// Subtrees as one tagged word each (an 8-byte child, so a node's sixteen children fill two
/// lines): an inner node's `Arc` (its data pointer, aligned to 64, with its dimension in bits
/// 1-3), or a leaf (bit 0 set, its number of rules in bits 1-5 when below 31, so a lookup never
/// reads its head for it). A leaf is one allocation: a line of thresholds no value exceeds,
/// a line holding its own word and its reference count, then its rules in priority order. It
/// is laid out like a node, so a walk's step reads a leaf as a node whose only child is the
/// leaf itself and needs no branch on which one it is. A leaf without rules is one shared
/// static.
#[allow(unsafe_code)]
mod kid {
    use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
    use std::fmt;
    use std::marker::PhantomData;
    use std::mem::ManuallyDrop;
    use std::sync::atomic::{fence, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::{Action, Entry, Kernel, Node, Vals, CHUNK, DIMS, FANOUT};

    /// Bit 0 of a leaf's word.
    const LEAF: usize = 1;
    /// Bits 1-5 of a leaf's word: its number of rules, or this for "see its head".
    const LEN_MAX: usize = 31;
    /// The low bits of a word that are not the pointer.
    const TAG: usize = 63;
    /// Bytes before a leaf's first rule.
    const HEAD: usize = std::mem::size_of::<Head>();

    /// The pointer in a word, without its tag bits (keeping the word's provenance).
    #[inline(always)]
    fn untag<T>(w: *const u8) -> *const T {
        w.map_addr(|a| a & !TAG).cast()
    }

    /// A leaf's first two lines: where a node has its thresholds and its first child, the
    /// thresholds no value exceeds and the leaf's own word; then its count and length.
    #[repr(C, align(64))]
    struct Head {
        thr: [u32; FANOUT],
        me: *const u8,
        refs: AtomicUsize,
        len: usize,
    }

    // `Node` and a leaf's `Head` agree on where the thresholds and the first child are.
    const _: () = assert!(std::mem::offset_of!(Head, me) == std::mem::offset_of!(Node, kids));
    const _: () = assert!(std::mem::offset_of!(Node, thr) == 0 && HEAD == 128);

    // SAFETY: `me` is only the leaf's own address (never written through); the rest is
    // plain data and an atomic.
    unsafe impl Sync for Head {}
    // SAFETY: as for `Sync`.
    unsafe impl Send for Head {}

    /// An entry no packet matches: it pads a leaf to [`CHUNK`] entries.
    const SENTINEL: Entry = Entry {
        lo: [u32::MAX; DIMS],
        nhi: [u32::MAX; DIMS],
        prio: u32::MAX,
        id: u32::MAX,
        action: Action::Drop,
        full: None,
    };

    /// The leaf without rules: only padding, so that a leaf's first priority is always its
    /// first entry's and every leaf has at least [`CHUNK`] entries to read.
    #[repr(C)]
    struct Empty {
        head: Head,
        sentinel: [Entry; CHUNK],
    }

    static EMPTY: Empty = Empty {
        head: Head {
            thr: [u32::MAX; FANOUT],
            me: (&raw const EMPTY).cast::<u8>().wrapping_add(LEAF),
            refs: AtomicUsize::new(1),
            len: 0,
        },
        sentinel: [SENTINEL; CHUNK],
    };

    /// Bytes of the allocation of a leaf of `n` rules.
    pub(super) fn leaf_bytes(n: usize) -> usize {
        layout(n).size()
    }

    /// Entries a leaf of `n` rules holds: its rules, padded to at least [`CHUNK`].
    fn padded(n: usize) -> usize {
        n.max(CHUNK)
    }

    /// The allocation of a leaf of `n` rules: its head and its (padded) entries.
    fn layout(n: usize) -> Layout {
        Layout::from_size_align(HEAD + 64 * padded(n), 64).unwrap_or_else(|_| Layout::new::<Head>())
    }

    /// A subtree (owning: a clone shares it, as an `Arc` does). `repr(transparent)`: a node's
    /// children are read as words by [`KidRef::step`].
    #[repr(transparent)]
    pub struct Kid {
        w: *const u8,
        _own: PhantomData<(Arc<Node>, Arc<Entry>)>,
    }

    // SAFETY: a `Kid` owns a count of an `Arc<Node>` or of a leaf whose count is atomic, and
    // gives out only shared access to what it points at (`node_mut` copies first when shared),
    // exactly as `Arc<Node>` and `Arc<[Entry]>` do; `Node` and `Entry` are `Send + Sync`.
    unsafe impl Send for Kid {}
    // SAFETY: as for `Send`.
    unsafe impl Sync for Kid {}

    /// What the two impls above rely on, checked at compile time.
    const _: fn() = || {
        fn is<T: Send + Sync>() {}
        is::<Entry>();
        is::<Arc<Node>>();
    };

    /// A borrowed subtree: the word only.
    #[derive(Clone, Copy)]
    pub struct KidRef<'a> {
        w: *const u8,
        _b: PhantomData<&'a Kid>,
    }

    impl Kid {
        /// A leaf of `es`.
        pub fn leaf(es: Vec<Entry>) -> Kid {
            let n = es.len();
            if n == 0 {
                return Kid::default();
            }
            let lay = layout(n);
            if lay.size() != HEAD + 64 * padded(n) {
                // Unreachable: no leaf is near `isize::MAX` bytes.
                handle_alloc_error(lay);
            }
            // SAFETY: the layout's size is not zero.
            let p = unsafe { alloc(lay) };
            if p.is_null() {
                handle_alloc_error(lay);
            }
            let w = p
                .cast_const()
                .map_addr(|a| a | LEAF | (n.min(LEN_MAX) << 1));
            // SAFETY: `p` is valid for `HEAD + 64 * padded(n)` bytes aligned to 64: the head,
            // then `padded(n)` entries of 64 bytes each; `es` yields exactly `n`, padding the
            // rest.
            unsafe {
                p.cast::<Head>().write(Head {
                    thr: [u32::MAX; FANOUT],
                    me: w,
                    refs: AtomicUsize::new(1),
                    len: n,
                });
                let ep = p.add(HEAD).cast::<Entry>();
                for (i, e) in es.into_iter().take(n).enumerate() {
                    ep.add(i).write(e);
                }
                for i in n..padded(n) {
                    ep.add(i).write(SENTINEL);
                }
            }
            Kid {
                w,
                _own: PhantomData,
            }
        }

        /// An inner node.
        pub fn node(n: Node) -> Kid {
            let dim = usize::from(n.dim) & 7;
            let p = Arc::into_raw(Arc::new(n));
            Kid {
                w: p.cast::<u8>().map_addr(|a| a | (dim << 1)),
                _own: PhantomData,
            }
        }

        /// Borrows it.
        #[inline(always)]
        pub fn as_ref(&self) -> KidRef<'_> {
            KidRef {
                w: self.w,
                _b: PhantomData,
            }
        }

        /// The inner node, if it is one.
        #[inline]
        pub fn as_node(&self) -> Option<&Node> {
            self.as_ref().node().map(|(n, _)| n)
        }

        /// The leaf's rules, if it is a leaf.
        #[inline]
        pub fn as_leaf(&self) -> Option<&[Entry]> {
            self.as_ref().leaf()
        }

        /// The best priority below.
        #[inline]
        pub fn best(&self) -> u32 {
            self.as_ref().best()
        }

        /// Levels of inner nodes down to the deepest leaf (0 for a leaf).
        #[inline]
        pub fn height(&self) -> u8 {
            self.as_node().map_or(0, |n| n.height)
        }

        /// The inner node to change, copied first if it is shared (`Arc::make_mut`).
        pub fn node_mut(&mut self) -> Option<&mut Node> {
            if self.w.addr() & LEAF != 0 {
                return None;
            }
            // SAFETY: a node's word holds the pointer from `Arc::into_raw` and one count of
            // it, which `a` takes over (the word is rewritten below to whatever `a` holds).
            let mut a = ManuallyDrop::new(unsafe { Arc::from_raw(untag::<Node>(self.w)) });
            Arc::make_mut(&mut a);
            // The pointer as `Arc::into_raw` gives it (it reaches the counts too, which the
            // word needs to give its count back), not the `&mut` that `make_mut` returns.
            let p = Arc::as_ptr(&a);
            let tag = self.w.addr() & TAG;
            self.w = p.cast::<u8>().map_addr(|a| a | tag);
            // SAFETY: `a` is now the only count of its node (`make_mut`), held by the word,
            // which `&mut self` borrows for the result's lifetime; `as_ptr` of a unique `Arc`
            // may be written through, as `Arc::get_mut` does.
            Some(unsafe { &mut *p.cast_mut() })
        }

        /// A leaf's head, unless it is the static empty leaf.
        fn head(&self) -> Option<&Head> {
            if self.w.addr() & LEAF == 0 || (self.w.addr() >> 1) & LEN_MAX == 0 {
                return None;
            }
            // SAFETY: an allocated leaf's word points at its head.
            Some(unsafe { &*untag::<Head>(self.w) })
        }
    }

    impl Default for Kid {
        /// The empty leaf.
        fn default() -> Kid {
            Kid {
                w: EMPTY.head.me,
                _own: PhantomData,
            }
        }
    }

    impl Clone for Kid {
        fn clone(&self) -> Kid {
            if self.w.addr() & LEAF == 0 {
                // SAFETY: the word holds a count of this `Arc` (from `Arc::into_raw`).
                unsafe { Arc::increment_strong_count(untag::<Node>(self.w)) };
            } else if let Some(h) = self.head() {
                h.refs.fetch_add(1, Ordering::Relaxed);
            }
            Kid {
                w: self.w,
                _own: PhantomData,
            }
        }
    }

    impl Drop for Kid {
        fn drop(&mut self) {
            if self.w.addr() & LEAF == 0 {
                // SAFETY: the word holds a count of this `Arc` (from `Arc::into_raw`), given
                // back here.
                unsafe { Arc::decrement_strong_count(untag::<Node>(self.w)) };
                return;
            }
            let Some(h) = self.head() else { return };
            if h.refs.fetch_sub(1, Ordering::Release) != 1 {
                return;
            }
            fence(Ordering::Acquire);
            let n = h.len;
            // The allocation's start, from the word (not from `h`, a reference to the head
            // alone, which may not reach the entries).
            let hp = untag::<u8>(self.w).cast_mut();
            // SAFETY: this was the last count: nothing else reads the leaf. Its `padded(n)`
            // entries were written by `Kid::leaf` with the allocation's layout.
            unsafe {
                std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                    hp.add(HEAD).cast::<Entry>(),
                    padded(n),
                ));
                dealloc(hp, layout(n));
            }
        }
    }

    impl fmt::Debug for Kid {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.as_ref().node() {
                Some((n, _)) => f.debug_tuple("Node").field(n).finish(),
                None => f
                    .debug_tuple("Leaf")
                    .field(&self.as_leaf().unwrap_or_default())
                    .finish(),
            }
        }
    }

    impl<'a> KidRef<'a> {
        /// One step of a walk: the child of this node that holds the packet with values `v`,
        /// or this leaf itself. No branch: a leaf's head reads as a node's thresholds (none
        /// that a value exceeds) and first child (the leaf's own word).
        #[inline(always)]
        pub(super) fn step<K: Kernel>(self, kern: K, v: &Vals) -> KidRef<'a> {
            let base = untag::<[u32; FANOUT]>(self.w);
            // A node's dimension; a leaf's length bits pick some value, which no threshold
            // of its head is below.
            let d = (self.w.addr() >> 1) & 7;
            // SAFETY: the word points at a node or a leaf's head that the `Kid` it borrows
            // keeps alive; both start with `FANOUT` thresholds.
            let c = kern.child(unsafe { &*base }, v[d]);
            // SAFETY: a node has `FANOUT + 1` children after its thresholds' line (`Kid` is
            // `repr(transparent)` over its word) and `c` is at most `FANOUT`; a leaf's head has
            // its own word there, and `c` is 0 for it.
            let w = unsafe {
                base.cast::<u8>()
                    .add(std::mem::offset_of!(Node, kids))
                    .cast::<*const u8>()
                    .add(c)
                    .read()
            };
            KidRef { w, _b: PhantomData }
        }

        /// A leaf's first [`CHUNK`] entries (padding among them when it has fewer rules), and
        /// whether it has more rules than those; `None` for a node.
        #[inline(always)]
        pub(super) fn first_chunk(self) -> Option<(&'a [Entry; CHUNK], bool)> {
            if self.w.addr() & LEAF == 0 {
                return None;
            }
            let h = untag::<Head>(self.w);
            // The word's count, or `LEN_MAX` for that many or more.
            let more = (self.w.addr() >> 1) & LEN_MAX > CHUNK;
            // SAFETY: every leaf has at least `CHUNK` entries after its head (`padded`; the
            // empty one its sentinels), alive while the `Kid` it borrows is.
            let c = unsafe { &*h.cast::<u8>().wrapping_add(HEAD).cast::<[Entry; CHUNK]>() };
            Some((c, more))
        }

        /// True if it is an inner node.
        #[inline(always)]
        pub(super) fn is_node(self) -> bool {
            self.w.addr() & LEAF == 0
        }

        /// The inner node and its dimension, if it is one.
        #[inline(always)]
        pub fn node(self) -> Option<(&'a Node, usize)> {
            if self.w.addr() & LEAF != 0 {
                return None;
            }
            // SAFETY: a node's word is its `Arc`'s data pointer and the `Kid` it borrows
            // holds a count of it.
            Some((unsafe { &*untag::<Node>(self.w) }, (self.w.addr() >> 1) & 7))
        }

        /// The leaf's rules, if it is a leaf.
        #[inline(always)]
        pub fn leaf(self) -> Option<&'a [Entry]> {
            if self.w.addr() & LEAF == 0 {
                return None;
            }
            let h = untag::<Head>(self.w);
            let mut n = (self.w.addr() >> 1) & LEN_MAX;
            if n == LEN_MAX {
                // SAFETY: a leaf of `LEN_MAX` rules or more is allocated, with its head.
                n = unsafe { (*h).len };
            }
            let p = h.cast::<u8>().wrapping_add(HEAD).cast::<Entry>();
            // SAFETY: the leaf's `n` entries follow its head (the `Kid` it borrows holds a
            // count of it).
            Some(unsafe { std::slice::from_raw_parts(p, n) })
        }

        /// The best priority below: a node's, or a leaf's first entry's (the empty leaf's
        /// is `u32::MAX`).
        #[inline(always)]
        pub fn best(self) -> u32 {
            match self.node() {
                Some((n, _)) => n.best,
                // SAFETY: every leaf has a first entry after its head (the empty one its
                // sentinel).
                None => unsafe { (*untag::<u8>(self.w).add(HEAD).cast::<Entry>()).prio },
            }
        }
    }
}

/// One split candidate: dimension, thresholds, and its cost.
struct Cut {
    dim: usize,
    thr: Vec<u32>,
    /// Sum of the children's rule counts, and children.
    sum: usize,
    kids: usize,
    /// The largest child's rule count.
    max: usize,
}

/// The best multi-way cut of `es` (all meeting `bx`) on dimension `d`, if it separates
/// anything: cut points at the quantiles of the rules' weight over the elementary intervals.
fn cut_dim(es: &[Entry], bx: &Bx, d: usize) -> Option<Cut> {
    let (blo, bhi) = bx[d];
    let mut pts: Vec<u32> = Vec::with_capacity(2 * es.len() + 1);
    pts.push(blo);
    for e in es {
        let s = e.lo[d].max(blo);
        let t = e.hi(d).min(bhi);
        if s > blo {
            pts.push(s);
        }
        if t < bhi {
            pts.push(t + 1);
        }
    }
    pts.sort_unstable();
    pts.dedup();
    let m = pts.len();
    if m < 2 {
        return None;
    }
    // Interval index of each rule's ends.
    let span = |e: &Entry| {
        let s = e.lo[d].max(blo);
        let t = e.hi(d).min(bhi);
        let ks = pts.partition_point(|&p| p <= s) - 1;
        let kt = pts.partition_point(|&p| p <= t) - 1;
        (ks, kt)
    };
    let mut diff = vec![0i64; m + 1];
    for e in es {
        let (ks, kt) = span(e);
        diff[ks] += 1;
        diff[kt + 1] -= 1;
    }
    let mut cov = Vec::with_capacity(m);
    let mut run = 0i64;
    for x in &diff[..m] {
        run += x;
        cov.push(run as u64);
    }
    let total: u64 = cov.iter().sum();
    let k = FANOUT.min(m);
    // Child of each interval, cut greedily at the weight quantiles.
    let mut child_of = vec![0usize; m];
    let mut thr = Vec::with_capacity(k - 1);
    let mut acc = 0u64;
    let mut c = 0usize;
    for i in 0..m {
        child_of[i] = c;
        acc += cov[i];
        if c + 1 < k && i + 1 < m && acc * k as u64 >= total * (c as u64 + 1) {
            thr.push(pts[i + 1] - 1);
            c += 1;
        }
    }
    let kids = c + 1;
    if kids < 2 {
        return None;
    }
    let mut per = vec![0i64; kids + 1];
    let mut sum = 0usize;
    for e in es {
        let (ks, kt) = span(e);
        let (cs, ct) = (child_of[ks], child_of[kt]);
        per[cs] += 1;
        per[ct + 1] -= 1;
        sum += ct - cs + 1;
    }
    let mut run = 0i64;
    let mut max = 0i64;
    for x in &per[..kids] {
        run += x;
        max = max.max(run);
    }
    if max as usize >= es.len() {
        return None;
    }
    Some(Cut {
        dim: d,
        thr,
        sum,
        kids,
        max: max as usize,
    })
}

/// Builds a subtree over `es` (in priority order, all meeting `bx`).
///
/// `budget` is the number of leaf entries the build may still make; once it is spent (below
/// zero) the build stops splitting and the caller is expected to discard the result.
pub fn build(es: Vec<Entry>, bx: &Bx, depth: usize, budget: &mut isize) -> Kid {
    if es.len() <= LEAF_BUILD || depth >= MAX_DEPTH || *budget < 0 {
        *budget -= es.len() as isize;
        return Kid::leaf(es);
    }
    // The cut with the smallest largest child plus twice the average one (a burst walks as
    // many passes as the tree is high, so the deepest paths count), then the smallest average.
    let best = (0..DIMS)
        .filter_map(|d| cut_dim(&es, bx, d))
        .min_by(|a, b| {
            (a.max + 2 * a.sum / a.kids)
                .cmp(&(b.max + 2 * b.sum / b.kids))
                .then((a.sum * b.kids).cmp(&(b.sum * a.kids)))
        });
    let Some(cut) = best else {
        *budget -= es.len() as isize;
        return Kid::leaf(es);
    };
    let mut node = Node {
        thr: [u32::MAX; FANOUT],
        kids: Default::default(),
        dim: cut.dim as u8,
        n: cut.kids as u8,
        height: 1,
        best: u32::MAX,
    };
    node.thr[..cut.thr.len()].copy_from_slice(&cut.thr);
    for c in 0..cut.kids {
        let cb = node.child_box(bx, c);
        let sub: Vec<Entry> = es.iter().filter(|e| e.meets(&cb)).cloned().collect();
        node.kids[c] = build(sub, &cb, depth + 1, budget);
        node.height = node.height.max(node.kids[c].height().saturating_add(1));
    }
    node.best = node.kids[..cut.kids]
        .iter()
        .map(|k| k.best())
        .min()
        .unwrap_or(u32::MAX);
    Kid::node(node)
}

/// Inserts `e` into every leaf of `t` (whose box is `bx`) that its box meets.
pub fn insert(t: &mut Kid, e: &Entry, bx: &Bx, depth: usize) {
    if let Some(n) = t.node_mut() {
        for c in 0..usize::from(n.n) {
            let cb = n.child_box(bx, c);
            if e.meets(&cb) {
                insert(&mut n.kids[c], e, &cb, depth + 1);
                n.height = n.height.max(n.kids[c].height().saturating_add(1));
            }
        }
        n.best = n.best.min(e.prio);
        return;
    }
    let l = t.as_leaf().unwrap_or_default();
    let mut es = Vec::with_capacity(l.len() + 1);
    let at = l.partition_point(|x| x.prio < e.prio);
    es.extend_from_slice(&l[..at]);
    es.push(e.clone());
    es.extend_from_slice(&l[at..]);
    *t = if es.len() > LEAF_SPLIT && depth < MAX_DEPTH {
        // A local rebuild of this leaf's box, without a budget.
        let mut unlimited = isize::MAX;
        build(es, bx, depth, &mut unlimited)
    } else {
        Kid::leaf(es)
    };
}

/// Removes the entry with `e`'s id from every leaf of `t` that `e`'s box meets; true if any
/// held it.
pub fn remove(t: &mut Kid, e: &Entry, bx: &Bx) -> bool {
    if let Some(n) = t.node_mut() {
        let mut any = false;
        for c in 0..usize::from(n.n) {
            let cb = n.child_box(bx, c);
            if e.meets(&cb) {
                any |= remove(&mut n.kids[c], e, &cb);
            }
        }
        n.best = n.kids[..usize::from(n.n)]
            .iter()
            .map(|k| k.best())
            .min()
            .unwrap_or(u32::MAX);
        return any;
    }
    let l = t.as_leaf().unwrap_or_default();
    if !l.iter().any(|x| x.id == e.id) {
        return false;
    }
    let es: Vec<Entry> = l.iter().filter(|x| x.id != e.id).cloned().collect();
    *t = Kid::leaf(es);
    true
}

/// Shape of a tree: (nodes, leaves, entries, deepest level), and its bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// Inner nodes.
    pub nodes: usize,
    /// Leaves.
    pub leaves: usize,
    /// Leaf entries (rules times their replication).
    pub entries: usize,
    /// Deepest leaf's level.
    pub depth: usize,
    /// Bytes: nodes, leaves and entries (their capacities), whole rules of `full` entries.
    pub bytes: usize,
}

/// Measures a tree.
pub fn shape(t: &Kid, depth: usize, s: &mut Shape) {
    if let Some(n) = t.as_node() {
        // An `Arc`'s allocation: two counts (padded to the node's alignment) and the value.
        s.bytes += 64 + std::mem::size_of::<Node>();
        s.nodes += 1;
        for k in &n.kids[..usize::from(n.n)] {
            shape(k, depth + 1, s);
        }
        return;
    }
    let l = t.as_leaf().unwrap_or_default();
    s.leaves += 1;
    s.entries += l.len();
    s.depth = s.depth.max(depth);
    if !l.is_empty() {
        // The allocation (the head's two lines and the entries, padded to a chunk) and the
        // whole rules.
        s.bytes += kid::leaf_bytes(l.len())
            + l.iter().filter(|e| e.full.is_some()).count() * (16 + std::mem::size_of::<Rule>());
    }
}

/// A match: which rule, its priority and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Priority (lower wins).
    pub prio: u32,
    /// Rule id.
    pub id: u32,
    /// Action.
    pub action: Action,
}

impl Hit {
    /// The match of `e`.
    #[inline(always)]
    fn of(e: &Entry) -> Hit {
        Hit {
            prio: e.prio,
            id: e.id,
            action: e.action,
        }
    }
}

/// The best match in `t` for one packet better than `lim` (a priority).
#[inline]
pub fn lookup_one(t: &Kid, v: &Vals, plain: bool, k: &PacketKey, lim: u32) -> Option<Hit> {
    if t.best() >= lim {
        return None;
    }
    let mut cur = t.as_ref();
    while let Some((n, d)) = cur.node() {
        cur = n.kids[child_index(&n.thr, v[d])].as_ref();
    }
    scan(cur.leaf().unwrap_or_default(), v, plain, k, lim)
}

#[inline(always)]
fn scan(l: &[Entry], v: &Vals, plain: bool, k: &PacketKey, lim: u32) -> Option<Hit> {
    for e in l {
        if e.prio >= lim {
            break;
        }
        if e.matches(v, plain, k) {
            return Some(Hit::of(e));
        }
    }
    None
}

/// Bit of a [`Kernel::test`] result: the entry's priority is not below the limit.
const PRIO_FAIL: u16 = 1 << 10;

/// How a burst computes a node's child and checks a leaf entry: portable code, or AVX-512.
trait Kernel: Copy {
    /// A packet as [`Kernel::test`] wants it: its values and a priority limit.
    type Pkt: Copy;
    /// The packet with values `v` and priority limit `lim` (at least 1).
    fn pkt(self, v: &Vals, lim: u32) -> Self::Pkt;
    /// `p` with priority limit `lim` (at least 1).
    fn with_lim(self, p: Self::Pkt, lim: u32) -> Self::Pkt;
    /// The child of a node with thresholds `thr` that holds `x`.
    fn child(self, thr: &[u32; FANOUT], x: u32) -> usize;
    /// 0 if `e`'s five ranges hold `p` and its priority is below `p`'s limit; else bits of
    /// what failed, [`PRIO_FAIL`] among them if the priority is not below the limit.
    fn test(self, e: &Entry, p: &Self::Pkt) -> u16;
    /// The first entry of `c` that [`Kernel::test`] passes, or [`CHUNK`] if none does.
    #[inline(always)]
    fn first(self, c: &[Entry; CHUNK], p: &Self::Pkt) -> usize {
        let mut m = CHUNK;
        for (k, e) in c.iter().enumerate().rev() {
            if self.test(e, p) == 0 {
                m = k;
            }
        }
        m
    }
}

/// The portable kernel.
#[derive(Clone, Copy)]
struct Scalar;

impl Kernel for Scalar {
    type Pkt = (Vals, u32);
    #[inline(always)]
    fn pkt(self, v: &Vals, lim: u32) -> (Vals, u32) {
        (*v, lim)
    }
    #[inline(always)]
    fn with_lim(self, p: (Vals, u32), lim: u32) -> (Vals, u32) {
        (p.0, lim)
    }
    #[inline(always)]
    fn child(self, thr: &[u32; FANOUT], x: u32) -> usize {
        child_index(thr, x)
    }
    #[inline(always)]
    fn test(self, e: &Entry, p: &(Vals, u32)) -> u16 {
        let mut ok = true;
        for ((&lo, &nhi), &x) in e.lo.iter().zip(&e.nhi).zip(&p.0) {
            ok &= (lo <= x) & (nhi <= !x);
        }
        u16::from(!ok) | (u16::from(e.prio >= p.1) * PRIO_FAIL)
    }
}

/// The AVX-512 kernel: a node's child is one vector compare of its thresholds and a
/// population count; a leaf entry is one compare of its first eleven words (`lo`, `nhi`,
/// `prio`) with the packet's (`v`, `!v`, the priority limit minus one).
///
/// AVX-512 intrinsics and target features are stable since Rust 1.89, the workspace's
/// `rust-version`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{Entry, Hit, Kernel, Kid, PacketKey, Vals, CHUNK, FANOUT, PRIO_FAIL};

    /// Proof that the CPU has the features below (only [`Avx512::detect`] makes one).
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(());

    impl Avx512 {
        /// The kernel, if this CPU can run it.
        #[inline]
        pub(super) fn detect() -> Option<Avx512> {
            (is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("popcnt"))
            .then_some(Avx512(()))
        }
    }

    // `child` is written for 8- and 16-way nodes.
    const _: () = assert!(FANOUT == 8 || FANOUT == 16);
    // `first` is written for chunks of four entries.
    const _: () = assert!(CHUNK == 4);

    /// Lanes of the entry compare: five `lo`, five `nhi`, the priority.
    const CMP_LANES: u16 = 0x7ff;

    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    #[inline]
    fn pkt(v: &Vals, lim: u32) -> __m512i {
        // SAFETY: `Vals` is 32 bytes; an unaligned load reads exactly them.
        let x = unsafe { _mm256_loadu_si256(v.as_ptr().cast()) };
        let x = _mm512_castsi256_si512(x);
        // Lanes 0-4: v; 5-9: !v; the rest zero (the priority limit's is set below).
        let idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0);
        let y = _mm512_maskz_permutexvar_epi32(0x3ff, idx, x);
        with_lim(
            _mm512_mask_xor_epi32(y, 0x3e0, y, _mm512_set1_epi32(-1)),
            lim,
        )
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    #[inline]
    fn with_lim(p: __m512i, lim: u32) -> __m512i {
        // A priority is below `lim` when it is at most `lim - 1`. (`lim` is at least 1: it is
        // a priority, and priorities are at least 1.)
        _mm512_mask_set1_epi32(p, PRIO_FAIL, lim.saturating_sub(1) as i32)
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    #[inline]
    fn child(thr: &[u32; FANOUT], x: u32) -> usize {
        let c = if FANOUT == 16 {
            // SAFETY: `thr` is sixteen u32s, 64 bytes; an unaligned load reads exactly them.
            let t = unsafe { _mm512_loadu_si512(thr.as_ptr().cast()) };
            _mm512_cmpgt_epu32_mask(_mm512_set1_epi32(x as i32), t).count_ones()
        } else {
            // SAFETY: `thr` is at least eight u32s, 32 bytes; an unaligned load reads the
            // first eight (all of them: the fanout is 8 or 16).
            let t = unsafe { _mm256_loadu_si256(thr.as_ptr().cast()) };
            _mm256_cmpgt_epu32_mask(_mm256_set1_epi32(x as i32), t).count_ones()
        };
        c as usize
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    #[inline]
    fn first(c: &[Entry; CHUNK], p: &__m512i) -> usize {
        // Each entry's failing lanes, sixteen bits each (the top five always clear), side by
        // side in one 64-bit mask; the first entry without any is the first group of zeros.
        let f = |k: usize| _mm512_kunpackw(test(&c[k + 1], p).into(), test(&c[k], p).into());
        let m: u64 = _mm512_kunpackd(f(2).into(), f(0).into());
        const ONES: u64 = 0x0001_0001_0001_0001;
        // The lowest group that is zero has its top bit set here (a borrow only runs upward
        // from a zero group, past the first one).
        let z = m.wrapping_sub(ONES) & !m & (ONES << 15);
        (z.trailing_zeros() / 16) as usize
    }

    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    #[inline]
    fn test(e: &Entry, p: &__m512i) -> u16 {
        // SAFETY: an `Entry` is `repr(C, align(64))` and 64 bytes: one aligned 512-bit load
        // reads exactly it (the lanes past the priority are masked off below).
        let ev = unsafe { _mm512_load_si512((e as *const Entry).cast()) };
        // Lanes that fail: lo > v, nhi > !v (that is v > hi), prio > lim - 1.
        _mm512_mask_cmpgt_epu32_mask(CMP_LANES, ev, *p)
    }

    impl Kernel for Avx512 {
        type Pkt = __m512i;

        #[inline(always)]
        fn pkt(self, v: &Vals, lim: u32) -> __m512i {
            // SAFETY: `self` exists only if the CPU has the features `pkt` enables.
            unsafe { pkt(v, lim) }
        }
        #[inline(always)]
        fn with_lim(self, p: __m512i, lim: u32) -> __m512i {
            // SAFETY: as in `pkt`.
            unsafe { with_lim(p, lim) }
        }
        #[inline(always)]
        fn child(self, thr: &[u32; FANOUT], x: u32) -> usize {
            // SAFETY: as in `pkt`.
            unsafe { child(thr, x) }
        }
        #[inline(always)]
        fn test(self, e: &Entry, p: &__m512i) -> u16 {
            // SAFETY: as in `pkt`.
            unsafe { test(e, p) }
        }
        #[inline(always)]
        fn first(self, c: &[Entry; CHUNK], p: &__m512i) -> usize {
            // SAFETY: as in `pkt`.
            unsafe { first(c, p) }
        }
    }

    /// [`super::lookup_burst`] with this kernel, compiled for the features it checks.
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,popcnt")]
    pub(super) fn lookup_burst(
        kern: Avx512,
        roots: &[&Kid],
        keys: &[PacketKey],
        map: &[u16],
        out: &mut [Option<Hit>],
    ) {
        super::burst(kern, roots, keys, map, out);
    }
}

/// The signature of [`lookup_burst`].
pub type BurstFn = fn(&[&Kid], &[PacketKey], &[u16], &mut [Option<Hit>]);

/// Looks up `map.len()` (at most [`LANES`]) packets in the trees `roots` together, in
/// lockstep: for each `i` in `map`, sets `out[i]` to the best match of `keys[i]` in any tree
/// (or `None`). Uses AVX-512 when the CPU has it.
#[inline]
#[allow(unsafe_code)]
pub fn lookup_burst(roots: &[&Kid], keys: &[PacketKey], map: &[u16], out: &mut [Option<Hit>]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(kern) = avx512::Avx512::detect() {
        // SAFETY: `detect` checked that the CPU has the features the function enables.
        unsafe { avx512::lookup_burst(kern, roots, keys, map, out) };
        return;
    }
    burst(Scalar, roots, keys, map, out);
}

/// The portable [`lookup_burst`] (for tests comparing the kernels).
#[cfg(test)]
pub fn lookup_burst_scalar(
    roots: &[&Kid],
    keys: &[PacketKey],
    map: &[u16],
    out: &mut [Option<Hit>],
) {
    burst(Scalar, roots, keys, map, out);
}

/// Leaf entries a scan checks together.
const CHUNK: usize = 4;

/// The first entry of `l` that matches the packet `p` (whose whole key is `key`, and that is
/// `plain` or not) with a priority below `p`'s limit. Entries are checked [`CHUNK`] at a
/// time: their loads are independent, so the lines come in together, and a chunk costs one
/// branch unless something in it matched.
#[inline(always)]
fn scan_leaf<'a, K: Kernel>(
    kern: K,
    l: &'a [Entry],
    p: &K::Pkt,
    lim: u32,
    plain: bool,
    key: Option<&PacketKey>,
) -> Option<&'a Entry> {
    // What an entry whose ranges and priority pass needs besides: the packet plain, or its
    // whole rule matching.
    let rest = |e: &Entry| match &e.full {
        None => plain,
        Some(r) => key.is_some_and(|k| r.matches(k)),
    };
    let mut chunks = l.chunks_exact(CHUNK);
    for ch in &mut chunks {
        // Priorities grow along a leaf: once a chunk's first cannot beat the limit, no later
        // entry can. (Only an early stop: the test checks every entry's priority too.)
        if ch.first().is_none_or(|e| e.prio >= lim) {
            return None;
        }
        // Bit k: entry k's ranges hold the packet and its priority beats the limit.
        let mut pass = 0u32;
        for (k, e) in ch.iter().enumerate() {
            pass |= u32::from(kern.test(e, p) == 0) << k;
        }
        while pass != 0 {
            let e = ch.get(pass.trailing_zeros() as usize)?;
            if rest(e) {
                return Some(e);
            }
            pass &= pass - 1;
        }
    }
    for e in chunks.remainder() {
        let f = kern.test(e, p);
        // One branch for both "all lanes pass" (0) and "priority too high".
        if f.wrapping_sub(1) >= PRIO_FAIL - 1 {
            if f != 0 {
                // Priorities grow along a leaf: no later entry can beat the limit either.
                return None;
            }
            if rest(e) {
                return Some(e);
            }
        }
    }
    None
}

/// Walks lanes `..n` of `tree` (each at a node or a leaf of one tree whose root is `height`
/// levels high) down to their leaves, one level per pass, every lane in each pass (a step
/// at a leaf keeps it there: see [`KidRef::step`]), so that the passes have no branch that
/// depends on the packets. Once at most half of the lanes are still at nodes, the passes go
/// over a list of those instead, rebuilt whenever half of its lanes have reached leaves.
#[inline(always)]
fn walk<K: Kernel>(
    kern: K,
    tree: &mut [KidRef; LANES],
    n: usize,
    vals: &[Vals; LANES],
    height: u8,
) {
    let n = n.min(LANES);
    let mut pass = 0;
    let mut left = tree[..n].iter().filter(|c| c.is_node()).count();
    while pass < height && left * 2 > n {
        pass += 1;
        // Two lanes per iteration (half the loop's own instructions); the lanes still at
        // nodes are counted afterwards, in a loop that vectorizes.
        let (pairs, rest) = tree[..n].as_chunks_mut::<2>();
        let (vpairs, vrest) = vals[..n].as_chunks::<2>();
        for ([a, b], [va, vb]) in pairs.iter_mut().zip(vpairs) {
            *a = a.step(kern, va);
            *b = b.step(kern, vb);
        }
        for (c, v) in rest.iter_mut().zip(vrest) {
            *c = c.step(kern, v);
        }
        left = tree[..n].iter().filter(|c| c.is_node()).count();
    }
    if left == 0 || pass >= height {
        return;
    }
    let mut act = [0u8; LANES];
    let mut m = 0;
    for (j, c) in tree[..n].iter().enumerate() {
        act[m % LANES] = j as u8;
        m += usize::from(c.is_node());
    }
    while pass < height && m > 0 {
        pass += 1;
        left = 0;
        for &j in &act[..m] {
            let j = usize::from(j) % LANES;
            tree[j] = tree[j].step(kern, &vals[j]);
            left += usize::from(tree[j].is_node());
        }
        if left * 2 <= m {
            let mut k = 0;
            for i in 0..m {
                let j = act[i];
                act[k % LANES] = j;
                k += usize::from(tree[usize::from(j) % LANES].is_node());
            }
            m = k;
        }
    }
}

/// The burst lookup: every (packet, tree) pair walks down one level per pass, so the loads of
/// all of them are independent of each other; then each packet scans its leaves, trees in
/// order of their best priority, with the best match so far as the limit.
#[inline(always)]
fn burst<K: Kernel>(
    kern: K,
    roots: &[&Kid],
    keys: &[PacketKey],
    map: &[u16],
    out: &mut [Option<Hit>],
) {
    const MAXW: usize = LANES * MAX_TREES;
    let map = &map[..map.len().min(LANES)];
    let n = map.len();
    let Some(&first) = roots.first() else {
        for &i in map {
            if let Some(o) = out.get_mut(usize::from(i)) {
                *o = None;
            }
        }
        return;
    };
    let mut vals = [[0u32; 8]; LANES];
    let mut plain = [false; LANES];
    for ((v, p), &i) in vals.iter_mut().zip(&mut plain).zip(map) {
        if let Some(k) = keys.get(usize::from(i)) {
            (*v, *p) = values(k);
        }
    }
    let vals = &vals;
    let mut roots_by: [KidRef; MAX_TREES] = [first.as_ref(); MAX_TREES];
    let nt = roots.len().min(MAX_TREES);
    for (r, t) in roots_by.iter_mut().zip(roots) {
        *r = t.as_ref();
    }
    // Trees in order of their best priority, so later ones are pruned by earlier matches.
    roots_by[..nt].sort_unstable_by_key(|r| r.best());
    let roots = &roots_by[..nt];
    let mut cur: [KidRef; MAXW] = [first.as_ref(); MAXW];
    for (t, r) in roots.iter().enumerate() {
        cur[t * LANES..t * LANES + n].fill(*r);
    }
    // Walk: each tree in its root's height of passes, every packet still at a node moving
    // one level per pass. The first pass is at the root, where every packet is.
    for (t, r) in roots.iter().enumerate() {
        let Some((nd, d)) = r.node() else { continue };
        let Ok(tree) = <&mut [KidRef; LANES]>::try_from(&mut cur[t * LANES..(t + 1) * LANES])
        else {
            continue;
        };
        // The root's pass on its own: every packet is there.
        for (c, v) in tree[..n].iter_mut().zip(vals) {
            *c = nd.kids[kern.child(&nd.thr, v[d])].as_ref();
        }
        walk(kern, tree, n, vals, nd.height - 1);
    }
    if nt == 1 {
        // One tree: no limit, and each packet's answer goes straight out. The first chunk of
        // its leaf is read whatever it holds (leaves are padded to a chunk); the leaf's first
        // match is there for most packets, and then it is the answer unless it needs its
        // whole rule checked or the packet is not plain.
        let lanes = cur[..n].iter().zip(vals).zip(&plain).zip(map);
        for (((w, v), &plain), &i) in lanes {
            let Some((c, more)) = w.first_chunk() else {
                continue;
            };
            let p = kern.pkt(v, u32::MAX);
            let k = kern.first(c, &p);
            let e = &c[k % CHUNK];
            let hit = if k < CHUNK && plain && e.full.is_none() {
                Some(e)
            } else if k >= CHUNK && !more {
                None
            } else {
                let from = if k >= CHUNK { CHUNK } else { 0 };
                let l = w.leaf().unwrap_or_default();
                let key = keys.get(usize::from(i));
                scan_leaf(
                    kern,
                    l.get(from..).unwrap_or_default(),
                    &p,
                    u32::MAX,
                    plain,
                    key,
                )
            };
            if let Some(o) = out.get_mut(usize::from(i)) {
                *o = hit.map(Hit::of);
            }
        }
        return;
    }
    // Every (packet, tree) pair's first chunk of its leaf, in one pass without a branch
    // that depends on the packets (leaves are padded to a chunk): the loads of all pairs
    // overlap, and the leaf's first match is in its first chunk for most packets.
    let pk: [K::Pkt; LANES] = std::array::from_fn(|j| kern.pkt(&vals[j], u32::MAX));
    let mut hits = [0u8; LANES];
    for ((h, c), p) in hits.iter_mut().zip(&cur[..n]).zip(&pk) {
        if let Some((c, _)) = c.first_chunk() {
            *h = kern.first(c, p) as u8;
        }
    }
    // With several trees, the leaves of the others: their best priorities, independent loads
    // which all overlap (and bring the line a scan reads first); a leaf that cannot beat the
    // packet's best match so far is not scanned.
    let mut first = [0u32; MAXW];
    for t in 1..nt {
        for j in 0..n {
            let w = t * LANES + j;
            first[w] = cur[w].best();
        }
    }
    // Then each packet: a tree's answer is the first entry that passed in its chunk, when
    // the packet is plain and the entry needs nothing more; otherwise (a whole rule to
    // check, or nothing in the chunk and more rules after it) its leaf is scanned, with the
    // best match so far as the limit.
    let mut bent: [Option<&Entry>; LANES] = [None; LANES];
    for (j, be) in bent.iter_mut().enumerate().take(n) {
        let mut lim = u32::MAX;
        for t in 0..nt {
            let w = t * LANES + j;
            let Some((c, more)) = cur[w].first_chunk() else {
                continue;
            };
            let k = usize::from(hits[j]);
            let from = if t > 0 {
                if first[w] >= lim {
                    continue;
                }
                0
            } else if k < CHUNK {
                let e = &c[k % CHUNK];
                if plain[j] && e.full.is_none() {
                    if e.prio < lim {
                        lim = e.prio;
                        *be = Some(e);
                    }
                    continue;
                }
                0
            } else if more {
                CHUNK
            } else {
                continue;
            };
            let Some(l) = cur[w].leaf() else { continue };
            let l = l.get(from..).unwrap_or_default();
            let key = keys.get(usize::from(map[j]));
            let p = kern.with_lim(pk[j], lim);
            if let Some(e) = scan_leaf(kern, l, &p, lim, plain[j], key) {
                lim = e.prio;
                *be = Some(e);
            }
        }
    }
    for (e, &i) in bent.iter().zip(map) {
        if let Some(o) = out.get_mut(usize::from(i)) {
            *o = e.map(Hit::of);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A leaf too long for its word's count (rules no cut separates), shared between two
    /// versions of the tree while one of them changes.
    #[test]
    fn long_leaf_shared_through_updates() {
        let key = PacketKey {
            src: 10u128 << 120,
            dst: 20u128 << 120,
            sport: 1000,
            dport: 80,
            proto: 6,
            has_ports: true,
            ct: ct::NEW,
            ..PacketKey::default()
        };
        let (v, plain) = values(&key);
        let rule = |id: u32| Rule {
            id,
            proto: (6, 0xff),
            ..Rule::default()
        };
        let es: Vec<Entry> = (1..=40).filter_map(|i| Entry::of(i, &rule(i))).collect();
        let mut budget = isize::MAX;
        let mut t = build(es, &WHOLE, 0, &mut budget);
        assert_eq!(t.as_leaf().map(<[Entry]>::len), Some(40));
        let old = t.clone();
        for id in 1..=35 {
            let e = Entry::of(id, &rule(id)).unwrap_or_else(|| unreachable!());
            assert!(remove(&mut t, &e, &WHOLE));
        }
        let e = Entry::of(50, &rule(50)).unwrap_or_else(|| unreachable!());
        insert(&mut t, &e, &WHOLE, 0);
        let one = |t: &Kid| lookup_one(t, &v, plain, &key, u32::MAX).map(|f| f.id);
        assert_eq!(one(&old), Some(1));
        assert_eq!(one(&t), Some(36));
        assert_eq!(old.as_leaf().map(<[Entry]>::len), Some(40));
        assert_eq!(t.as_leaf().map(<[Entry]>::len), Some(6));
        for (tree, want) in [(&old, 1), (&t, 36)] {
            let mut out = [None];
            lookup_burst(&[tree], &[key], &[0], &mut out);
            assert_eq!(out[0].map(|f| f.id), Some(want));
            out = [None];
            lookup_burst_scalar(&[tree], &[key], &[0], &mut out);
            assert_eq!(out[0].map(|f| f.id), Some(want));
        }
        drop(old);
        assert_eq!(one(&t), Some(36));
    }
}
