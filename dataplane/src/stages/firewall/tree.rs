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
//! children hold the fewest rules on average), which makes it about three times shallower
//! (depth 3-8 on the ClassBench sets). A node is 8 thresholds, the last `u32::MAX`, and 8
//! children; the child is the number of thresholds the packet's value exceeds: eight
//! independent compares, which the compiler turns into one vector compare. A leaf is a slice
//! of at most a few dozen rules in priority order, each as its five ranges, in the same
//! allocation as its reference counts (one load from the parent); they are checked one after
//! the other and the first that matches is the leaf's answer.
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
//! Nodes and leaves are `Arc`s shared between the writer and every published snapshot. Adding
//! a rule walks down every child its box meets and inserts it in priority order into each leaf
//! reached; deleting removes it from the same leaves. `Arc::make_mut` copies exactly the nodes
//! on those paths and each leaf reached is rebuilt as a new slice (path copying), so a
//! published tree is never written and a new snapshot shares everything the update did not
//! touch. A leaf that an insert grows past [`LEAF_SPLIT`] rules is rebuilt as a subtree over
//! its own box (a local rebuild, proportional to the leaf). Deletes never merge leaves. On the
//! 10K ClassBench sets a single add or delete takes 1-3 µs (median; a rule with wildcards that
//! meets many leaves takes up to a few hundred).
//!
//! # Lookups
//!
//! A burst walks all trees at once in lockstep: every (packet, tree) pair moves down one level
//! per pass, so their loads are independent of each other and overlap in the out-of-order core
//! instead of waiting one after the other. Then one pass reads the first rule's priority of
//! every leaf reached (again independent loads, which bring in the line the scan reads first),
//! and each packet's leaves are scanned with the best priority found so far as the limit,
//! skipping a leaf whose first rule cannot beat it. Entries and nodes are aligned to cache
//! lines (an entry is exactly one line).
//!
//! What was measured (ClassBench sets, bursts of 32, `bench firewall`, a shared 2-vCPU VM):
//! the lockstep walk is 1.6-1.8x faster than descending packet by packet; the pass over the
//! leaves' first priorities gained about 8 %; software prefetches of the next node or leaf in
//! the walk made it 10-30 % slower (the trees fit in L2; the prefetches only cost
//! instructions) and were dropped; 16-way nodes were no faster than 8-way ones and took more
//! memory; stopping the build at 12 rules per leaf instead of 8 halves the memory at the same
//! speed; leaves stored column by column (eight rules per vector compare) were twice as slow
//! (one more dependent load per leaf, and most leaves are short); merging groups into fewer,
//! bigger trees beyond 16 entries per rule made the 10K firewall set slower (the tree leaves
//! L2) and its updates slower.

use std::sync::{Arc, OnceLock};

use super::rules::{ct, prefix_mask, Action, PacketKey, Rule};

/// Dimensions: source, destination, source port, destination port, protocol.
pub const DIMS: usize = 5;
/// Children per node at most.
pub const FANOUT: usize = 8;
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
#[derive(Debug, Clone)]
#[repr(align(64))]
pub struct Entry {
    lo: [u32; DIMS],
    hi: [u32; DIMS],
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
            hi: b.map(|x| x.1),
            prio,
            id: r.id,
            action: r.action,
            full: full.then(|| Arc::new(*r)),
        })
    }

    /// True if the entry's box meets `bx`.
    fn meets(&self, bx: &Bx) -> bool {
        (0..DIMS).all(|d| self.lo[d] <= bx[d].1 && bx[d].0 <= self.hi[d])
    }

    /// True if the entry matches a packet with values `v`; `plain` says the packet is IPv4
    /// with a connection state among [`ct::ANY`]'s (what every entry without `full` needs).
    #[inline(always)]
    fn matches(&self, v: &Vals, plain: bool, k: &PacketKey) -> bool {
        let mut ok = true;
        for ((&lo, &hi), &x) in self.lo.iter().zip(&self.hi).zip(v) {
            ok &= (lo <= x) & (x <= hi);
        }
        ok && match &self.full {
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

/// An inner node: an up to [`FANOUT`]-way split of one dimension. `repr(C)` keeps the
/// thresholds and the dimension at the start, on the line a step reads first.
#[derive(Debug, Clone)]
#[repr(C, align(64))]
pub struct Node {
    /// Child `c` holds the values `v` with `thr[c - 1] < v <= thr[c]`; unused thresholds are
    /// `u32::MAX`, which no value exceeds.
    thr: [u32; FANOUT],
    dim: u8,
    /// Children in use.
    n: u8,
    /// Best priority below.
    best: u32,
    /// Children; those past `n` are a shared empty leaf, never reached.
    kids: [Kid; FANOUT],
}

/// A subtree: an inner node, or a leaf's rules in priority order (in the same allocation as
/// its reference counts, one load away from the parent).
#[derive(Debug, Clone)]
pub enum Kid {
    /// Inner node.
    Node(Arc<Node>),
    /// Leaf.
    Leaf(Arc<[Entry]>),
}

impl Default for Kid {
    fn default() -> Self {
        static EMPTY: OnceLock<Arc<[Entry]>> = OnceLock::new();
        Kid::Leaf(EMPTY.get_or_init(|| Arc::from(Vec::new())).clone())
    }
}

impl Node {
    #[inline(always)]
    fn child(&self, v: &Vals) -> &Kid {
        let x = v[usize::from(self.dim) & 7];
        // Eight independent compares (the last threshold is u32::MAX): vectorizes.
        let c: u32 = self.thr.iter().map(|&t| u32::from(x > t)).sum();
        &self.kids[c as usize % FANOUT]
    }

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

impl Kid {
    /// The best priority below.
    pub fn best(&self) -> u32 {
        match self {
            Kid::Node(n) => n.best,
            Kid::Leaf(l) => l.first().map_or(u32::MAX, |e| e.prio),
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
}

/// The best multi-way cut of `es` (all meeting `bx`) on dimension `d`, if it separates
/// anything: cut points at the quantiles of the rules' weight over the elementary intervals.
fn cut_dim(es: &[Entry], bx: &Bx, d: usize) -> Option<Cut> {
    let (blo, bhi) = bx[d];
    let mut pts: Vec<u32> = Vec::with_capacity(2 * es.len() + 1);
    pts.push(blo);
    for e in es {
        let s = e.lo[d].max(blo);
        let t = e.hi[d].min(bhi);
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
        let t = e.hi[d].min(bhi);
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
    })
}

/// Builds a subtree over `es` (in priority order, all meeting `bx`).
///
/// `budget` is the number of leaf entries the build may still make; once it is spent (below
/// zero) the build stops splitting and the caller is expected to discard the result.
pub fn build(es: Vec<Entry>, bx: &Bx, depth: usize, budget: &mut isize) -> Kid {
    if es.len() <= LEAF_BUILD || depth >= MAX_DEPTH || *budget < 0 {
        *budget -= es.len() as isize;
        return Kid::Leaf(Arc::from(es));
    }
    // The cut with the smallest average child.
    let best = (0..DIMS)
        .filter_map(|d| cut_dim(&es, bx, d))
        .min_by(|a, b| (a.sum * b.kids).cmp(&(b.sum * a.kids)));
    let Some(cut) = best else {
        *budget -= es.len() as isize;
        return Kid::Leaf(Arc::from(es));
    };
    let mut node = Node {
        thr: [u32::MAX; FANOUT],
        dim: cut.dim as u8,
        n: cut.kids as u8,
        best: u32::MAX,
        kids: Default::default(),
    };
    node.thr[..cut.thr.len()].copy_from_slice(&cut.thr);
    for c in 0..cut.kids {
        let cb = node.child_box(bx, c);
        let sub: Vec<Entry> = es.iter().filter(|e| e.meets(&cb)).cloned().collect();
        node.kids[c] = build(sub, &cb, depth + 1, budget);
    }
    node.best = node.kids[..cut.kids]
        .iter()
        .map(|k| k.best())
        .min()
        .unwrap_or(u32::MAX);
    Kid::Node(Arc::new(node))
}

/// Inserts `e` into every leaf of `t` (whose box is `bx`) that its box meets.
pub fn insert(t: &mut Kid, e: &Entry, bx: &Bx, depth: usize) {
    match t {
        Kid::Leaf(l) => {
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
                Kid::Leaf(Arc::from(es))
            };
        }
        Kid::Node(n) => {
            let n = Arc::make_mut(n);
            for c in 0..usize::from(n.n) {
                let cb = n.child_box(bx, c);
                if e.meets(&cb) {
                    insert(&mut n.kids[c], e, &cb, depth + 1);
                }
            }
            n.best = n.best.min(e.prio);
        }
    }
}

/// Removes the entry with `e`'s id from every leaf of `t` that `e`'s box meets; true if any
/// held it.
pub fn remove(t: &mut Kid, e: &Entry, bx: &Bx) -> bool {
    match t {
        Kid::Leaf(l) => {
            if !l.iter().any(|x| x.id == e.id) {
                return false;
            }
            let es: Vec<Entry> = l.iter().filter(|x| x.id != e.id).cloned().collect();
            *t = Kid::Leaf(Arc::from(es));
            true
        }
        Kid::Node(n) => {
            let n = Arc::make_mut(n);
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
            any
        }
    }
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
    match t {
        Kid::Node(n) => {
            // An `Arc`'s allocation: two counts and the value.
            s.bytes += 16 + std::mem::size_of::<Node>();
            s.nodes += 1;
            for k in &n.kids[..usize::from(n.n)] {
                shape(k, depth + 1, s);
            }
        }
        Kid::Leaf(l) => {
            s.leaves += 1;
            s.entries += l.len();
            s.depth = s.depth.max(depth);
            s.bytes += 16
                + std::mem::size_of_val::<[Entry]>(l)
                + l.iter().filter(|e| e.full.is_some()).count()
                    * (16 + std::mem::size_of::<Rule>());
        }
    }
}

/// A match in a tree: (priority, id, action).
pub type Found = (u32, u32, Action);

/// The best match in `t` for one packet better than `lim` (a priority).
#[inline]
pub fn lookup_one(t: &Kid, v: &Vals, plain: bool, k: &PacketKey, lim: u32) -> Option<Found> {
    if t.best() >= lim {
        return None;
    }
    let mut cur = t;
    while let Kid::Node(n) = cur {
        cur = n.child(v);
    }
    scan(cur, v, plain, k, lim)
}

#[inline(always)]
fn scan(t: &Kid, v: &Vals, plain: bool, k: &PacketKey, lim: u32) -> Option<Found> {
    let Kid::Leaf(l) = t else { return None };
    for e in l.iter() {
        if e.prio >= lim {
            break;
        }
        if e.matches(v, plain, k) {
            return Some((e.prio, e.id, e.action));
        }
    }
    None
}

/// Looks up `map.len()` (at most [`LANES`]) packets in the trees `roots` together, in
/// lockstep: lane `j` is the packet `keys[map[j]]` with values `vals[j]`; sets `best[j]` to
/// the best match in any tree (or `None`). Every (packet, tree) pair walks down one level per
/// pass, so the loads of all of them are independent of each other.
#[inline]
pub fn lookup_burst(
    roots: &[&Kid],
    vals: &[Vals],
    plain: &[bool],
    keys: &[PacketKey],
    map: &[u16],
    best: &mut [Option<Found>],
) {
    const MAXW: usize = LANES * MAX_TREES;
    let n = map.len().min(LANES);
    let roots = &roots[..roots.len().min(MAX_TREES)];
    let Some(&first) = roots.first() else {
        best[..n].fill(None);
        return;
    };
    let mut cur: [&Kid; MAXW] = [first; MAXW];
    // (lane, tree) pairs still at an inner node, as `tree * LANES + lane`.
    let mut pend = [0u16; MAXW];
    let mut npend = 0;
    for (t, r) in roots.iter().enumerate() {
        for j in 0..n {
            let w = t * LANES + j;
            cur[w] = r;
            if let Kid::Node(_) = r {
                pend[npend] = w as u16;
                npend += 1;
            }
        }
    }
    // Walk: every pair still at a node moves one level per pass.
    while npend > 0 {
        let mut m = 0;
        for q in 0..npend {
            let w = usize::from(pend[q]);
            if let Kid::Node(nd) = cur[w] {
                cur[w] = nd.child(&vals[w % LANES]);
                pend[m] = pend[q];
                m += 1;
            }
        }
        npend = m;
    }
    // Every leaf's best priority: independent loads of each leaf's first entry, which all
    // overlap (and bring the line the scan reads first); a leaf that cannot beat the packet's
    // best match so far is not scanned.
    let mut first = [u32::MAX; MAXW];
    for t in 0..roots.len() {
        for j in 0..n {
            let w = t * LANES + j;
            first[w] = cur[w].best();
        }
    }
    for j in 0..n {
        let mut b: Option<Found> = None;
        for t in 0..roots.len() {
            let w = t * LANES + j;
            let lim = b.map_or(u32::MAX, |b| b.0);
            if first[w] >= lim {
                continue;
            }
            if let Some(f) = scan(cur[w], &vals[j], plain[j], &keys[usize::from(map[j])], lim) {
                b = Some(f);
            }
        }
        best[j] = b;
    }
}
