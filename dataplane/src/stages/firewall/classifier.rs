//! The rule classifier: decision trees for IPv4, a TupleMerge-style tuple space for IPv6,
//! published RCU-style.
//!
//! # Why this shape
//!
//! Decision-tree classifiers (HiCuts, HyperSplit, rte_acl's tries) are fast but classically
//! rebuilt when a rule changes; a linear scan is trivially updatable but costs O(rules). Two
//! structures are used here, both updated one rule at a time:
//!
//! - **IPv4** ([`Space4`]): multi-way HyperSplit trees over the 5-tuple ([`super::tree`], whose
//!   module doc has the details), with single-rule updates by path copying: an add or delete
//!   touches only the leaves the rule's box meets. All IPv4 rules share one tree when that tree
//!   holds at most `SINGLE_REPLICATION` copies of each rule on average; otherwise rules are
//!   grouped by which of their addresses are specific (`group`: a /16 or longer source; else
//!   such a destination; else neither; and again with /8, keeping whichever grouping's trees
//!   hold fewer entries), two groups share a tree if that stays small, and the trees are
//!   walked together. The few IPv4 rules a tree cannot hold (family-free rules with
//!   prefixes longer than 32 bits) stay in a tuple space beside them; a lookup takes the best
//!   priority of both. Against the tuple space alone (cycles per classification at bursts of
//!   32, `bench firewall --no-peer`, the best of 3 runs of each on a shared 2-vCPU VM,
//!   2026-12-07): acl1_1K 277 -> 105, ipc1_1K 433 -> 92, acl1_10K 370 -> 135, ipc1_10K 730 ->
//!   172 (2.6-4.7x); the firewall sets, whose many wildcards need two or three trees and
//!   longer leaves, gain least: fw1_1K 273 -> 150, fw1_10K 229 -> 200. The trees take
//!   0.2-2.2 MiB, and a single-rule update went from 25-190 µs to 1.5-3 µs (median at 10K).
//!   (Since then AVX-512 compares, 16-way nodes and a four-entry leaf scan took the trees to
//!   44-120 cycles, 0.3-2.8 MiB and 2-4 µs per update: the tree module's doc.)
//! - **IPv6** ([`Space`]): the tuple space. Rules are grouped into *tables* by a tuple of field
//!   lengths (source prefix length, destination prefix length, exact protocol or not, exact
//!   destination port or not), each table is a hash map from the packet's fields masked to
//!   that tuple to the rules that share those bits, so a lookup is one hash probe per table,
//!   and adding or deleting a rule touches one table. TupleMerge (Daly, Bruschi, Linguaglossa,
//!   Liu, ICNP 2017/ToN 2019) makes the tables few by letting a rule sit in any table whose
//!   tuple is *less specific* than its own (the bucket then holds a short list that is checked
//!   rule by rule) and splits a bucket that collects too many rules into a more specific
//!   table. Tables are visited in order of the best rule priority they hold and the walk stops
//!   as soon as no remaining table can beat the best match so far (priority pruning).
//!
//! A tuple space classifies a burst table by table: every packet still in the running probes
//! the table before the walk moves on, so a table's buckets stay in cache across the burst,
//! and packets drop out of the running as soon as their best match beats the next table's
//! best priority.
//!
//! # Updates without stopping workers
//!
//! The writer ([`RuleSet`]) keeps the master spaces; tree nodes, leaves and tables are `Arc`s,
//! so a published [`Snapshot`] shares all of them with the writer. A single-rule add or delete
//! copies the tree paths or the one table it changes (`Arc::make_mut`), and publishes a new
//! snapshot (`Arc` swap under a mutex only the writer and a worker *that sees a new generation*
//! take); a snapshot is never written after it is published.
//! Workers check one atomic generation number per burst ([`Reader::get`]); the packet path
//! takes no lock while rules do not change. Old snapshots are freed when the last worker lets
//! go of them (RCU by reference counting).
//!
//! Priorities: rule *i* of a loaded list gets priority `i * GAP`, so a rule inserted between
//! two others takes the midpoint; only when no gap is left are priorities renumbered (a full
//! rebuild, after about `log2(GAP)` inserts at one spot; the IPv4 trees are then built in one
//! go, 10-200 ms at 10K rules).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::rules::{prefix_mask, PacketKey, Rule};
use super::tree::{self, Kid};

/// Gap between the priorities of consecutive loaded rules.
pub const GAP: u32 = 1 << 10;

/// Rules one bucket may collect before the newest one moves to a more specific table.
const COLLIDE_LIMIT: usize = 8;

/// A small, fast, non-cryptographic hasher (FxHash's multiply-rotate) for the table keys,
/// which are fixed-size integers.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

const FX_K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline(always)]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for c in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
    }
    #[inline(always)]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline(always)]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline(always)]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline(always)]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }
    #[inline(always)]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `BuildHasher` for [`FxHasher`].
pub type FxBuild = BuildHasherDefault<FxHasher>;

/// The field lengths a table keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuple {
    src_len: u8,
    dst_len: u8,
    proto: bool,
    dport: bool,
}

impl Tuple {
    fn of(r: &Rule) -> Tuple {
        Tuple {
            src_len: r.src_len,
            dst_len: r.dst_len,
            proto: r.proto_exact(),
            dport: r.dport.0 == r.dport.1,
        }
    }

    /// The tuple a new table gets for `r`: TupleMerge's relaxation, prefix lengths rounded
    /// down so that neighbouring lengths share a table.
    fn relaxed(r: &Rule) -> Tuple {
        let t = Tuple::of(r);
        let round = |l: u8| if l <= 32 { l & !3 } else { l & !7 };
        Tuple {
            src_len: round(t.src_len),
            dst_len: round(t.dst_len),
            proto: false,
            dport: false,
        }
    }

    /// True if a rule with tuple `r` may sit in a table with this tuple.
    fn admits(&self, r: &Tuple) -> bool {
        self.src_len <= r.src_len
            && self.dst_len <= r.dst_len
            && (!self.proto || r.proto)
            && (!self.dport || r.dport)
    }

    fn specificity(&self) -> u32 {
        u32::from(self.src_len)
            + u32::from(self.dst_len)
            + 8 * u32::from(self.proto)
            + 16 * u32::from(self.dport)
    }
}

/// A table key: the packet's fields masked to the table's tuple, mixed into 64 bits. Two
/// different masked tuples may share a key; that is harmless, because every rule found in a
/// bucket is checked against the whole packet anyway.
type TKey = u64;

/// The identity hasher for keys that are already mixed.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FX_K);
        }
    }
    #[inline(always)]
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// Bytes a `HashMap` (hashbrown's layout) with room for `capacity` entries of `(K, V)` holds:
/// its buckets (a power of two, at most 7/8 full) and one control byte per bucket plus one
/// group. An estimate from capacities, without the allocator's own overhead; for memory
/// figures, not for anything that must be exact.
pub fn hash_map_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 {
        (capacity + 1).next_power_of_two()
    } else {
        (capacity * 8 / 7).next_power_of_two()
    };
    buckets * (std::mem::size_of::<(K, V)>() + 1) + 16
}

#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

#[inline(always)]
fn mix_key(src: u128, dst: u128, dport: u16, proto: u8) -> TKey {
    let a = ((src >> 64) as u64) ^ (src as u64).rotate_left(23);
    let b = ((dst >> 64) as u64) ^ (dst as u64).rotate_left(41);
    let h = fold_mul(a ^ 0x243f_6a88_85a3_08d3, b ^ 0x1319_8a2e_0370_7344);
    fold_mul(h ^ (u64::from(dport) << 8 | u64::from(proto)), FX_K)
}

/// One entry of a bucket: priority and rule.
#[derive(Debug, Clone, Copy)]
struct Entry {
    prio: u32,
    rule: Rule,
}

/// One tuple table.
#[derive(Debug, Clone)]
struct Table {
    tuple: Tuple,
    smask: u128,
    dmask: u128,
    map: HashMap<TKey, Vec<Entry>, BuildHasherDefault<KeyHasher>>,
    /// Best (lowest) priority in the table.
    best: u32,
    rules: usize,
}

impl Table {
    fn new(tuple: Tuple) -> Table {
        Table {
            tuple,
            smask: prefix_mask(tuple.src_len),
            dmask: prefix_mask(tuple.dst_len),
            map: HashMap::default(),
            best: u32::MAX,
            rules: 0,
        }
    }

    #[inline(always)]
    fn key_of_packet(&self, k: &PacketKey) -> TKey {
        mix_key(
            k.src & self.smask,
            k.dst & self.dmask,
            if self.tuple.dport { k.dport } else { 0 },
            if self.tuple.proto { k.proto } else { 0 },
        )
    }

    fn key_of_rule(&self, r: &Rule) -> TKey {
        mix_key(
            r.src & self.smask,
            r.dst & self.dmask,
            if self.tuple.dport { r.dport.0 } else { 0 },
            if self.tuple.proto { r.proto.0 } else { 0 },
        )
    }

    /// Inserts; returns the bucket's new length.
    fn insert(&mut self, e: Entry) -> usize {
        let b = self.map.entry(self.key_of_rule(&e.rule)).or_default();
        let at = b.partition_point(|x| x.prio < e.prio);
        b.insert(at, e);
        self.best = self.best.min(e.prio);
        self.rules += 1;
        b.len()
    }

    fn remove(&mut self, r: &Rule) -> bool {
        let key = self.key_of_rule(r);
        let Some(b) = self.map.get_mut(&key) else {
            return false;
        };
        let Some(i) = b.iter().position(|x| x.rule.id == r.id) else {
            return false;
        };
        let e = b.remove(i);
        if b.is_empty() {
            self.map.remove(&key);
        }
        self.rules -= 1;
        if e.prio == self.best {
            self.best = self
                .map
                .values()
                .filter_map(|b| b.first())
                .map(|e| e.prio)
                .min()
                .unwrap_or(u32::MAX);
        }
        true
    }

    /// Bytes this table holds: its map and every bucket's rule list (estimated from
    /// capacities, see [`hash_map_bytes`]).
    fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Table>()
            + hash_map_bytes::<TKey, Vec<Entry>>(self.map.capacity())
            + self
                .map
                .values()
                .map(|b| b.capacity() * std::mem::size_of::<Entry>())
                .sum::<usize>()
    }

    #[inline(always)]
    fn lookup(&self, k: &PacketKey) -> Option<&Entry> {
        self.map
            .get(&self.key_of_packet(k))?
            .iter()
            .find(|e| e.rule.matches(k))
    }
}

pub use super::tree::Hit;

/// A tuple space over one family's rules.
#[derive(Debug, Clone, Default)]
pub struct Space {
    tables: Vec<Arc<Table>>,
}

impl Space {
    fn insert(&mut self, prio: u32, rule: Rule) {
        let t = Tuple::of(&rule);
        let e = Entry { prio, rule };
        let home = self
            .tables
            .iter()
            .enumerate()
            .filter(|(_, x)| x.tuple.admits(&t))
            .max_by_key(|(_, x)| (x.tuple.specificity(), x.rules))
            .map(|(i, _)| i);
        let i = match home {
            Some(i) => i,
            None => {
                self.tables
                    .push(Arc::new(Table::new(Tuple::relaxed(&rule))));
                self.tables.len() - 1
            }
        };
        let n = Arc::make_mut(&mut self.tables[i]).insert(e);
        if n > COLLIDE_LIMIT && self.tables[i].tuple != t {
            // Split: the newcomer goes to a table keyed on its own, more specific tuple.
            Arc::make_mut(&mut self.tables[i]).remove(&rule);
            // The relaxed tuple if that is more specific than the crowded table's, else the
            // rule's own.
            let cur = self.tables[i].tuple;
            let r = Tuple::relaxed(&rule);
            let t = if r != cur && cur.admits(&r) { r } else { t };
            let j = match self.tables.iter().position(|x| x.tuple == t) {
                Some(j) => j,
                None => {
                    self.tables.push(Arc::new(Table::new(t)));
                    self.tables.len() - 1
                }
            };
            Arc::make_mut(&mut self.tables[j]).insert(e);
        }
        self.sort();
    }

    fn remove(&mut self, rule: &Rule) -> bool {
        let t = Tuple::of(rule);
        for i in 0..self.tables.len() {
            if self.tables[i].tuple.admits(&t) && Arc::make_mut(&mut self.tables[i]).remove(rule) {
                if self.tables[i].rules == 0 {
                    self.tables.remove(i);
                }
                self.sort();
                return true;
            }
        }
        false
    }

    fn sort(&mut self) {
        self.tables.sort_by_key(|t| t.best);
    }

    /// Number of tables.
    pub fn tables(&self) -> usize {
        self.tables.len()
    }

    /// Bytes the space holds for lookups: its tables (maps, buckets and the rules in them) and
    /// the table list. Estimated from capacities ([`hash_map_bytes`]); a table shared with
    /// another snapshot is counted in each.
    pub fn memory_bytes(&self) -> usize {
        self.tables.capacity() * std::mem::size_of::<Arc<Table>>()
            + self.tables.iter().map(|t| t.memory_bytes()).sum::<usize>()
    }

    /// The first matching rule for one packet.
    #[inline]
    pub fn classify_one(&self, k: &PacketKey) -> Option<Hit> {
        self.refine_one(k, None)
    }

    /// The first matching rule for one packet if it beats `best`, else `best`.
    #[inline]
    pub fn refine_one(&self, k: &PacketKey, mut best: Option<Hit>) -> Option<Hit> {
        for t in &self.tables {
            if best.is_some_and(|b| b.prio <= t.best) {
                break;
            }
            if let Some(e) = t.lookup(k) {
                if best.is_none_or(|b| e.prio < b.prio) {
                    best = Some(Hit {
                        prio: e.prio,
                        id: e.rule.id,
                        action: e.rule.action,
                    });
                }
            }
        }
        best
    }

    /// Classifies `keys[i]` for every `i` in `todo` (indices), writing `out[i]`. `todo` is a
    /// scratch list that is consumed. Table by table, so each table's buckets stay warm.
    #[inline]
    pub fn classify_burst(&self, keys: &[PacketKey], todo: &mut Vec<u16>, out: &mut [Option<Hit>]) {
        for &i in todo.iter() {
            out[i as usize] = None;
        }
        self.refine_burst(keys, todo, out);
    }

    /// As [`Space::classify_burst`], but keeps what `out` holds for each packet and only
    /// replaces it with a better match.
    #[inline]
    pub fn refine_burst(&self, keys: &[PacketKey], todo: &mut Vec<u16>, out: &mut [Option<Hit>]) {
        for t in &self.tables {
            if todo.is_empty() {
                break;
            }
            let tb = t.best;
            todo.retain(|&i| {
                let i = i as usize;
                let cur = out[i];
                if cur.is_some_and(|b| b.prio <= tb) {
                    return false;
                }
                if let Some(e) = t.lookup(&keys[i]) {
                    if cur.is_none_or(|b| e.prio < b.prio) {
                        out[i] = Some(Hit {
                            prio: e.prio,
                            id: e.rule.id,
                            action: e.rule.action,
                        });
                    }
                }
                true
            });
        }
        todo.clear();
    }
}

/// Rule groups of the IPv4 space (see [`group`]); [`PARTITIONS`] says which share a tree.
const GROUPS: usize = 3;

/// Average copies of each rule (leaf entries per rule) up to which all IPv4 rules share one
/// tree; a set that would need more is split into [`GROUPS`] trees. (With 16-way nodes
/// ipc1_1K needs 20 copies in one tree, 1.3 MiB, and is 20 % slower in two trees; the 10K
/// sets split either way.)
const SINGLE_REPLICATION: usize = 32;

/// How groups may share trees, in order of preference (tree of group 0, 1, 2).
const PARTITIONS: [[u8; GROUPS]; 5] = [[0, 0, 0], [0, 1, 1], [0, 1, 0], [0, 0, 1], [0, 1, 2]];

/// The prefix lengths from which an address counts as specific when rules are grouped, tried
/// in turn: the grouping whose trees hold fewer leaf entries is kept. (fw1_1K: 5169 entries
/// with /16, 4084 and 10 % faster with /8; fw1_10K: 12740 with /16, 110734 and 15 % slower
/// with /8.)
const SPECIFIC: [u8; 2] = [16, 8];

/// The tree group of a rule, with prefixes of `specific` bits or longer specific: specific
/// source; else specific destination; else neither. (CutSplit's partition: a rule wide in a
/// field a tree cuts is copied into many leaves, so rules are kept with others that are
/// narrow in the same fields.)
fn group(r: &Rule, specific: u8) -> usize {
    if r.src_len >= specific {
        0
    } else if r.dst_len >= specific {
        1
    } else {
        2
    }
}

/// The IPv4 classifier: decision trees ([`tree`]) over the rules they can hold, and a tuple
/// space for the rest (prefixes longer than 32 bits in family-free rules); a lookup takes the
/// best priority of both.
#[derive(Debug, Clone)]
pub struct Space4 {
    trees: [Kid; GROUPS],
    /// Rules in each tree.
    counts: [usize; GROUPS],
    /// The tree of each [`group`] (several groups may share one), chosen at build time.
    slots: [u8; GROUPS],
    /// The prefix length [`group`] takes as specific, chosen at build time.
    specific: u8,
    rest: Space,
}

impl Default for Space4 {
    fn default() -> Self {
        Space4 {
            trees: std::array::from_fn(|_| Kid::default()),
            counts: [0; GROUPS],
            slots: [0, 1, 2],
            specific: SPECIFIC[0],
            rest: Space::default(),
        }
    }
}

impl Space4 {
    /// Builds from `(priority, rule)` pairs (any order), in as few trees as stay small: all
    /// rules in one tree if that holds at most [`SINGLE_REPLICATION`] leaf entries per rule,
    /// else two groups ([`group`]) merged in one tree and the third in another, else one tree
    /// per group; rules are grouped with each of the [`SPECIFIC`] lengths and the trees with
    /// fewer leaf entries are kept.
    fn build(rules: &[(u32, Rule)]) -> Space4 {
        let mut best: Option<(usize, Space4)> = None;
        for (i, specific) in SPECIFIC.into_iter().enumerate() {
            // One tree for all does not depend on the grouping: only the first try builds it.
            let s = Self::build_grouped(rules, specific, &PARTITIONS[usize::from(i > 0)..]);
            let entries = s.shapes().iter().map(|x| x.entries).sum::<usize>();
            let single = s.slots == PARTITIONS[0];
            if best.as_ref().is_none_or(|(e, _)| entries < *e) {
                best = Some((entries, s));
            }
            if single {
                break;
            }
        }
        best.map(|(_, s)| s).unwrap_or_default()
    }

    /// [`Space4::build`] with one grouping, trying `partitions` in turn (the last always
    /// holds).
    fn build_grouped(rules: &[(u32, Rule)], specific: u8, partitions: &[[u8; GROUPS]]) -> Space4 {
        let mut s = Space4 {
            specific,
            ..Space4::default()
        };
        let mut all = Vec::with_capacity(rules.len());
        for (prio, r) in rules {
            match tree::Entry::of(*prio, r) {
                Some(e) => all.push((group(r, specific), e)),
                None => s.rest.insert(*prio, *r),
            }
        }
        all.sort_by_key(|(_, e)| e.prio);
        'partition: for &slots in partitions {
            let trees = usize::from(slots.iter().copied().max().unwrap_or(0)) + 1;
            let mut built: [Kid; GROUPS] = Default::default();
            let mut counts = [0; GROUPS];
            for (t, kid) in built.iter_mut().enumerate().take(trees) {
                let es: Vec<tree::Entry> = all
                    .iter()
                    .filter(|(g, _)| usize::from(slots[*g]) == t)
                    .map(|(_, e)| e.clone())
                    .collect();
                // A tree of several groups must stay small; one group's tree is what it is.
                let merged = slots.iter().filter(|&&x| usize::from(x) == t).count() > 1;
                let mut budget = if merged {
                    (es.len() * SINGLE_REPLICATION + 64) as isize
                } else {
                    isize::MAX
                };
                counts[t] = es.len();
                *kid = tree::build(es, &tree::WHOLE, 0, &mut budget);
                if budget < 0 {
                    continue 'partition;
                }
            }
            s.trees = built;
            s.counts = counts;
            s.slots = slots;
            break;
        }
        s
    }

    /// The tree a rule goes to.
    fn group(&self, r: &Rule) -> usize {
        usize::from(self.slots[group(r, self.specific)])
    }

    fn insert(&mut self, prio: u32, rule: Rule) {
        match tree::Entry::of(prio, &rule) {
            Some(e) => {
                let g = self.group(&rule);
                tree::insert(&mut self.trees[g], &e, &tree::WHOLE, 0);
                self.counts[g] += 1;
            }
            None => self.rest.insert(prio, rule),
        }
    }

    fn remove(&mut self, rule: &Rule) -> bool {
        match tree::Entry::of(0, rule) {
            Some(e) => {
                let g = self.group(rule);
                let found = tree::remove(&mut self.trees[g], &e, &tree::WHOLE);
                if found {
                    self.counts[g] -= 1;
                }
                found
            }
            None => self.rest.remove(rule),
        }
    }

    /// Lookup structures: trees holding rules, plus the tuple space's tables.
    pub fn tables(&self) -> usize {
        self.trees_used() + self.rest.tables()
    }

    /// Decision trees holding rules.
    pub fn trees_used(&self) -> usize {
        self.counts.iter().filter(|&&c| c > 0).count()
    }

    /// Tuple-space tables of the rules no tree holds.
    pub fn rest_tables(&self) -> usize {
        self.rest.tables()
    }

    /// The trees' shapes (for tests and tuning).
    pub fn shapes(&self) -> Vec<tree::Shape> {
        self.trees
            .iter()
            .map(|t| {
                let mut s = tree::Shape::default();
                tree::shape(t, 0, &mut s);
                s
            })
            .collect()
    }

    /// Bytes the space holds for lookups: every node, leaf and entry of the trees (a subtree
    /// shared with another snapshot is counted in each) and the tuple space.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Space4>()
            + self.shapes().iter().map(|s| s.bytes).sum::<usize>()
            + self.rest.memory_bytes()
    }

    /// Trees in order of their best priority.
    #[inline(always)]
    fn order(&self) -> [usize; GROUPS] {
        let mut o: [usize; GROUPS] = std::array::from_fn(|g| g);
        o.sort_unstable_by_key(|&g| self.trees[g].best());
        o
    }

    /// The first matching rule for one (IPv4) packet.
    #[inline]
    pub fn classify_one(&self, k: &PacketKey) -> Option<Hit> {
        let (v, plain) = tree::values(k);
        let mut hit: Option<Hit> = None;
        for g in self.order() {
            let lim = hit.map_or(u32::MAX, |b| b.prio);
            if let Some(f) = tree::lookup_one(&self.trees[g], &v, plain, k, lim) {
                hit = Some(f);
            }
        }
        if self.rest.tables() == 0 {
            hit
        } else {
            self.rest.refine_one(k, hit)
        }
    }

    /// Classifies `keys[i]` (IPv4 packets) for every `i` in `todo` (indices), writing `out[i]`.
    /// `todo` is a scratch list that is consumed. Up to [`tree::LANES`] packets at a time walk
    /// each tree in lockstep.
    #[inline]
    pub fn classify_burst(&self, keys: &[PacketKey], todo: &mut Vec<u16>, out: &mut [Option<Hit>]) {
        self.classify_burst_by(keys, todo, out, tree::lookup_burst);
    }

    /// [`Space4::classify_burst`] with the trees' portable kernel (for tests: the CPU's best
    /// kernel is what `classify_burst` runs).
    #[cfg(test)]
    pub fn classify_burst_scalar(
        &self,
        keys: &[PacketKey],
        todo: &mut Vec<u16>,
        out: &mut [Option<Hit>],
    ) {
        self.classify_burst_by(keys, todo, out, tree::lookup_burst_scalar);
    }

    #[inline(always)]
    fn classify_burst_by(
        &self,
        keys: &[PacketKey],
        todo: &mut Vec<u16>,
        out: &mut [Option<Hit>],
        lookup: tree::BurstFn,
    ) {
        let mut roots: [&Kid; GROUPS] = [&self.trees[0]; GROUPS];
        let mut nr = 0;
        for t in &self.trees {
            if t.best() != u32::MAX {
                roots[nr] = t;
                nr += 1;
            }
        }
        for map in todo.chunks(tree::LANES) {
            lookup(&roots[..nr], keys, map, out);
        }
        if self.rest.tables() > 0 {
            self.rest.refine_burst(keys, todo, out);
        }
        todo.clear();
    }
}

/// One published version of the rules: what workers classify against.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// IPv4 rules (and family-free ones).
    pub v4: Space4,
    /// IPv6 rules (and family-free ones).
    pub v6: Space,
    /// Generation (increases with every publish).
    pub gen: u64,
    /// Largest rule id present plus one (per-rule counters are sized by it).
    pub id_bound: u32,
    /// Number of rules.
    pub rules: usize,
}

impl Snapshot {
    /// Bytes a worker classifies against: both families' spaces ([`Space::memory_bytes`]).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Snapshot>() + self.v4.memory_bytes() + self.v6.memory_bytes()
    }

    /// The first matching rule.
    #[inline]
    pub fn classify(&self, k: &PacketKey) -> Option<Hit> {
        if k.v6 {
            self.v6.classify_one(k)
        } else {
            self.v4.classify_one(k)
        }
    }
}

/// The writer's state: the master spaces and where every rule is.
#[derive(Debug)]
struct Writer {
    snap: Snapshot,
    /// id -> (priority, rule).
    by_id: HashMap<u32, (u32, Rule), FxBuild>,
    /// Priorities in order, with their ids.
    order: std::collections::BTreeMap<u32, u32>,
}

/// The rule set as the control plane sees it: load, add, delete, publish.
#[derive(Debug)]
pub struct RuleSet {
    writer: Mutex<Writer>,
    current: Mutex<Arc<Snapshot>>,
    gen: AtomicU64,
}

/// Why an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The rule id is taken.
    #[error("rule id {0} already exists")]
    DuplicateId(u32),
    /// No rule has that id.
    #[error("no rule with id {0}")]
    NoSuchRule(u32),
}

fn place(snap: &mut Snapshot, prio: u32, r: &Rule) {
    if r.v6 != Some(true) {
        snap.v4.insert(prio, *r);
    }
    if r.v6 != Some(false) {
        snap.v6.insert(prio, *r);
    }
}

fn unplace(snap: &mut Snapshot, r: &Rule) {
    if r.v6 != Some(true) {
        snap.v4.remove(r);
    }
    if r.v6 != Some(false) {
        snap.v6.remove(r);
    }
}

impl RuleSet {
    /// Builds from an ordered list (first rule wins). Ids must be distinct.
    pub fn new(rules: &[Rule]) -> Result<Arc<RuleSet>, UpdateError> {
        let mut w = Writer {
            snap: Snapshot::default(),
            by_id: HashMap::default(),
            order: Default::default(),
        };
        Self::fill(&mut w, rules.iter().copied())?;
        let snap = Arc::new(w.snap.clone());
        Ok(Arc::new(RuleSet {
            writer: Mutex::new(w),
            current: Mutex::new(snap),
            gen: AtomicU64::new(0),
        }))
    }

    /// Loads `rules` into an empty writer: the IPv6 space rule by rule, the IPv4 trees in
    /// one build.
    fn fill(w: &mut Writer, rules: impl Iterator<Item = Rule>) -> Result<(), UpdateError> {
        let mut v4 = Vec::new();
        for (i, r) in rules.enumerate() {
            let prio = (i as u32 + 1).saturating_mul(GAP);
            if w.by_id.insert(r.id, (prio, r)).is_some() {
                return Err(UpdateError::DuplicateId(r.id));
            }
            w.order.insert(prio, r.id);
            if r.v6 != Some(true) {
                v4.push((prio, r));
            }
            if r.v6 != Some(false) {
                w.snap.v6.insert(prio, r);
            }
            w.snap.id_bound = w.snap.id_bound.max(r.id + 1);
            w.snap.rules += 1;
        }
        w.snap.v4 = Space4::build(&v4);
        Ok(())
    }

    fn publish(&self, w: &mut Writer) {
        w.snap.gen += 1;
        let s = Arc::new(w.snap.clone());
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *cur = s;
        self.gen.store(w.snap.gen, Ordering::Release);
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A worker's handle.
    pub fn reader(self: &Arc<Self>) -> Reader {
        let snap = self.snapshot();
        Reader {
            gen: snap.gen,
            snap,
            set: self.clone(),
        }
    }

    /// Adds `rule` just before the rule with id `before` (or at the end), and publishes.
    pub fn add(&self, rule: Rule, before: Option<u32>) -> Result<(), UpdateError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if w.by_id.contains_key(&rule.id) {
            return Err(UpdateError::DuplicateId(rule.id));
        }
        let hi = match before {
            Some(b) => w.by_id.get(&b).ok_or(UpdateError::NoSuchRule(b))?.0,
            None => u32::MAX,
        };
        let lo = w.order.range(..hi).next_back().map_or(0, |(&p, _)| p);
        let prio = if hi == u32::MAX {
            lo.checked_add(GAP).filter(|&p| p < u32::MAX)
        } else {
            Some(lo + (hi - lo) / 2).filter(|&p| p > lo)
        };
        match prio {
            Some(prio) => {
                w.by_id.insert(rule.id, (prio, rule));
                w.order.insert(prio, rule.id);
                place(&mut w.snap, prio, &rule);
                w.snap.id_bound = w.snap.id_bound.max(rule.id + 1);
                w.snap.rules += 1;
            }
            None => {
                // No room between the neighbours: renumber everything (a full rebuild).
                let mut list: Vec<Rule> = w.order.values().map(|id| w.by_id[id].1).collect();
                let at = before
                    .and_then(|b| list.iter().position(|r| r.id == b))
                    .unwrap_or(list.len());
                list.insert(at, rule);
                let gen = w.snap.gen;
                *w = Writer {
                    snap: Snapshot {
                        gen,
                        ..Snapshot::default()
                    },
                    by_id: HashMap::default(),
                    order: Default::default(),
                };
                Self::fill(&mut w, list.into_iter())?;
            }
        }
        self.publish(&mut w);
        Ok(())
    }

    /// Deletes the rule with id `id`, and publishes.
    pub fn delete(&self, id: u32) -> Result<(), UpdateError> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (prio, r) = w.by_id.remove(&id).ok_or(UpdateError::NoSuchRule(id))?;
        w.order.remove(&prio);
        unplace(&mut w.snap, &r);
        w.snap.rules -= 1;
        self.publish(&mut w);
        Ok(())
    }

    /// Bytes of the writer's own index beside the snapshot (rule by id, priority order):
    /// what the control side keeps to place updates, which workers never read. Estimated from
    /// capacities; a B-tree entry is counted at its key and value plus half again for its nodes.
    pub fn index_bytes(&self) -> usize {
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        hash_map_bytes::<u32, (u32, Rule)>(w.by_id.capacity()) + w.order.len() * 8 * 3 / 2
    }

    /// The rules in order (for the oracle and for `describe`).
    pub fn rules(&self) -> Vec<Rule> {
        let w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.order.values().map(|id| w.by_id[id].1).collect()
    }
}

/// A worker's view of a [`RuleSet`]: the snapshot it classifies against, refreshed when the
/// generation moves.
#[derive(Debug)]
pub struct Reader {
    set: Arc<RuleSet>,
    snap: Arc<Snapshot>,
    gen: u64,
}

impl Reader {
    /// The current snapshot: one atomic load when nothing changed.
    #[inline]
    pub fn get(&mut self) -> &Arc<Snapshot> {
        let g = self.set.gen.load(Ordering::Acquire);
        if g != self.gen {
            self.snap = self.set.snapshot();
            self.gen = self.snap.gen;
        }
        &self.snap
    }
}

#[cfg(test)]
mod tests {
    use super::super::rules::{ct, linear_first_match, v4, Action};
    use super::*;
    use proptest::prelude::*;

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (
            (0u32..16, 0u8..=32, 0u32..16, 0u8..=32),
            (0u16..6, 0u16..6, 0u16..6, 0u16..6),
            (prop::bool::ANY, 0u8..3, prop::bool::ANY),
            prop::sample::select(vec![Action::Accept, Action::Drop, Action::Reject]),
        )
            .prop_map(|((s, sl, d, dl), (a, b, c, e), (pe, p, v6), action)| {
                let addr = |x: u32, l: u8| (u128::from(x) << 124) & prefix_mask(l);
                let (sp, dp) = ((a.min(b), a.max(b)), (c.min(e), c.max(e)));
                let sp = if sp == (0, 5) { (0, 65535) } else { sp };
                Rule {
                    src: addr(s, sl),
                    src_len: sl,
                    dst: addr(d, dl),
                    dst_len: dl,
                    sport: sp,
                    dport: dp,
                    proto: if pe { (6 + p * 11, 0xff) } else { (0, 0) },
                    v6: if v6 { None } else { Some(false) },
                    action,
                    ..Rule::default()
                }
            })
    }

    fn arb_key() -> impl Strategy<Value = PacketKey> {
        (0u32..16, 0u32..16, 0u16..7, 0u16..7, 0u8..3).prop_map(|(s, d, sp, dp, p)| PacketKey {
            src: u128::from(s) << 124,
            dst: u128::from(d) << 124,
            sport: sp,
            dport: dp,
            proto: 6 + p * 11,
            has_ports: true,
            ct: ct::NEW,
            ..Default::default()
        })
    }

    fn check(set: &RuleSet, keys: &[PacketKey]) {
        check_snap(&set.snapshot(), &set.rules(), keys);
    }

    fn check_snap(snap: &Snapshot, rules: &[Rule], keys: &[PacketKey]) {
        let mut todo: Vec<u16> = (0..keys.len() as u16).collect();
        let mut out = vec![None; keys.len()];
        snap.v4.classify_burst(keys, &mut todo, &mut out);
        let mut todo: Vec<u16> = (0..keys.len() as u16).collect();
        let mut out_scalar = vec![None; keys.len()];
        snap.v4
            .classify_burst_scalar(keys, &mut todo, &mut out_scalar);
        for ((k, o), s) in keys.iter().zip(&out).zip(&out_scalar) {
            let want = linear_first_match(rules, k).map(|r| r.id);
            assert_eq!(snap.classify(k).map(|h| h.id), want, "{k:?}");
            assert_eq!(o.map(|h| h.id), want, "burst {k:?}");
            assert_eq!(s.map(|h| h.id), want, "portable burst {k:?}");
        }
    }

    /// Rules with everything the trees must get right: prefixes anywhere in the 32 bits,
    /// port ranges near both ends, protocol masks, ICMP, TCP flags, connection states, input
    /// ports, and family-free rules with prefixes longer than 32 bits (the tuple space's).
    fn arb_rich_rule() -> impl Strategy<Value = Rule> {
        (
            (0u32..8, 0u8..=34, 0u32..8, 0u8..=32),
            (0u16..4, 0u16..4, 0u16..4, 0u16..4),
            (0u8..4, 0u8..3, 0u8..8),
            (
                0u8..6,
                0u8..4,
                prop::sample::select(vec![Action::Accept, Action::Drop, Action::Reject]),
            ),
        )
            .prop_map(
                |((s, sl, d, dl), (a, b, c, e), (pm, p, extra), (ctv, inp, action))| {
                    // Addresses vary in the top 3 bits and around bit 31, so prefixes of /1 to /32
                    // all split them somewhere.
                    let addr = |x: u32, l: u8| {
                        let a = (u128::from(x & 3) << 126) | (u128::from(x >> 2) << 96);
                        a & prefix_mask(l)
                    };
                    let port = |x: u16| [0, 1, 65534, 65535][usize::from(x)];
                    let (sp, dp) = (
                        (port(a.min(b)), port(a.max(b))),
                        (port(c.min(e)), port(c.max(e))),
                    );
                    let pv = [6, 17, 1][usize::from(p)];
                    Rule {
                        src: addr(s, sl),
                        src_len: sl,
                        dst: addr(d, dl),
                        dst_len: dl,
                        sport: sp,
                        dport: dp,
                        proto: match pm {
                            0 => (0, 0),
                            1 | 2 => (pv, 0xff),
                            _ => (pv & 0x0f, 0x0f),
                        },
                        v6: if sl > 32 { None } else { Some(false) },
                        icmp_type: (extra == 1).then_some(8),
                        icmp_code: (extra == 2).then_some(0),
                        tcp_flags: if extra == 3 { (2, 18) } else { (0, 0) },
                        ct: [
                            ct::ANY,
                            ct::ANY,
                            ct::ANY,
                            ct::NEW,
                            ct::ESTABLISHED | ct::RELATED,
                            0x1f,
                        ][usize::from(ctv)],
                        in_port: (inp == 3).then_some(1),
                        action,
                        ..Rule::default()
                    }
                },
            )
    }

    fn arb_rich_key() -> impl Strategy<Value = PacketKey> {
        (
            (0u32..8, 0u32..8, 0u16..4, 0u16..4, 0u8..3),
            (prop::bool::ANY, 0u8..3, 0u8..4, 0u8..2),
        )
            .prop_map(|((s, d, sp, dp, p), (ports, flags, ctv, inp))| {
                let addr = |x: u32| (u128::from(x & 3) << 126) | (u128::from(x >> 2) << 96);
                let proto = [6, 17, 1][usize::from(p)];
                let port = |x: u16| [0, 1, 65534, 65535][usize::from(x)];
                PacketKey {
                    src: addr(s),
                    dst: addr(d),
                    sport: if ports { port(sp) } else { 0 },
                    dport: if ports { port(dp) } else { 0 },
                    proto,
                    has_ports: ports,
                    has_icmp: proto == 1,
                    icmp_type: if flags == 0 { 8 } else { 0 },
                    icmp_code: 0,
                    tcp_flags: [0, 2, 18][usize::from(flags)],
                    ct: [ct::NEW, ct::ESTABLISHED, ct::RELATED, 0x10][usize::from(ctv)],
                    in_port: u16::from(inp),
                    ..Default::default()
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn rich_rules_agree_with_linear_scan_through_updates(
            rules in prop::collection::vec(arb_rich_rule(), 1..150),
            keys in prop::collection::vec(arb_rich_key(), 1..100),
            ops in prop::collection::vec((prop::bool::ANY, arb_rich_rule(), 0usize..400), 0..120),
        ) {
            let rules: Vec<Rule> = rules.into_iter().enumerate()
                .map(|(i, r)| Rule { id: i as u32 + 1, ..r }).collect();
            let set = RuleSet::new(&rules).unwrap();
            check(&set, &keys);
            // A published snapshot is never written: it must answer as before at the end.
            let (old, old_rules) = (set.snapshot(), set.rules());
            // Random interleaved deletes and adds (adds at random places, so leaves grow past
            // their split limit and priorities are inserted between others).
            for (i, (del, r, at)) in ops.into_iter().enumerate() {
                let ids: Vec<u32> = set.rules().iter().map(|r| r.id).collect();
                if del && !ids.is_empty() {
                    set.delete(ids[at % ids.len()]).unwrap();
                } else {
                    set.add(Rule { id: 10_000 + i as u32, ..r }, ids.get(at).copied()).unwrap();
                }
                if i % 16 == 0 {
                    check(&set, &keys);
                }
            }
            check(&set, &keys);
            check_snap(&old, &old_rules, &keys);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn agrees_with_linear_scan(
            rules in prop::collection::vec(arb_rule(), 1..120),
            keys in prop::collection::vec(arb_key(), 1..200),
            dels in prop::collection::vec(0usize..120, 0..30),
            adds in prop::collection::vec((arb_rule(), 0usize..130), 0..30),
        ) {
            let rules: Vec<Rule> = rules.into_iter().enumerate()
                .map(|(i, r)| Rule { id: i as u32 + 1, ..r }).collect();
            let set = RuleSet::new(&rules).unwrap();
            check(&set, &keys);
            for d in dels {
                let _ = set.delete(d as u32 + 1);
            }
            check(&set, &keys);
            for (i, (r, before)) in adds.into_iter().enumerate() {
                let ids: Vec<u32> = set.rules().iter().map(|r| r.id).collect();
                let before = ids.get(before).copied();
                set.add(Rule { id: 1000 + i as u32, ..r }, before).unwrap();
            }
            check(&set, &keys);
        }
    }

    #[test]
    fn add_delete_publish_and_readers_follow() {
        let r1 = Rule {
            id: 1,
            dst: v4([10, 0, 0, 0]),
            dst_len: 8,
            action: Action::Drop,
            ..Rule::default()
        };
        let set = RuleSet::new(&[r1]).unwrap();
        let mut rd = set.reader();
        let k = PacketKey {
            dst: v4([10, 1, 1, 1]),
            ct: ct::NEW,
            ..Default::default()
        };
        assert_eq!(rd.get().classify(&k).map(|h| h.id), Some(1));
        let r2 = Rule {
            id: 2,
            dst: v4([10, 1, 0, 0]),
            dst_len: 16,
            ..Rule::default()
        };
        set.add(r2, Some(1)).unwrap();
        assert_eq!(rd.get().classify(&k).map(|h| h.id), Some(2));
        assert_eq!(set.add(r2, None), Err(UpdateError::DuplicateId(2)));
        set.delete(2).unwrap();
        assert_eq!(rd.get().classify(&k).map(|h| h.id), Some(1));
        assert_eq!(set.delete(2), Err(UpdateError::NoSuchRule(2)));
        // Repeated inserts at one spot exhaust the gap and renumber; order stays right.
        for i in 0..40 {
            let r = Rule {
                id: 100 + i,
                dst: v4([10, 9, 9, 9]),
                dst_len: 32,
                ..Rule::default()
            };
            set.add(r, Some(1)).unwrap();
        }
        let ids: Vec<u32> = set.rules().iter().map(|r| r.id).collect();
        assert_eq!(ids.first(), Some(&100));
        assert_eq!(ids.last(), Some(&1));
        assert_eq!(rd.get().classify(&k).map(|h| h.id), Some(1));
    }
}
