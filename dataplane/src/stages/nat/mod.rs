//! NAT44: carrier-grade source and destination NAT (RFC 4787, 5382, 5508, 7857, 6888).
//!
//! # What it does
//!
//! Packets from an *inside* port have their source `X:x` rewritten to an outside endpoint
//! `X':x'` taken from the pool, and leave by the *outside* port; packets arriving on the outside
//! port for `X':x'` are rewritten back and leave by the inside port the mapping was made on. A
//! later stage (the router) may still choose another egress. TCP and UDP ports and ICMP query
//! identifiers are translated; ICMP errors have the packet they quote translated too (RFC 5508);
//! other IP protocols are dropped and counted; IPv6 and ARP pass untouched.
//!
//! * **Mappings are endpoint-independent** (RFC 4787 REQ-1, RFC 5382 REQ-1): one entry per
//!   inside `(protocol, address, port)`, whatever the destination. **Filtering** is
//!   endpoint-independent by default; `filtering = "address-dependent"` admits only remote
//!   addresses the mapping has sent to (the two most recent ones are kept per mapping).
//! * **Paired pooling**: every mapping of one inside address uses the same outside address,
//!   chosen by a hash of the inside address among the pool addresses with room.
//! * **Ports** are drawn at random in the worker's share of the range (RFC 6056 style random
//!   probes, then a bounded scan), in the class of the inside port (below 1024 or not, when the
//!   range allows); parity is not preserved (RFC 7857 section 8 makes it optional).
//!   `allocation = "sequential"` takes the lowest free port instead: deterministic, for golden
//!   cases and operators who need predictability, at the cost of RFC 6056 randomisation.
//! * **Per-subscriber limit** (RFC 6888): at most `max_ports_per_subscriber` mappings per inside
//!   address. When no mapping can be made (pool, subscriber limit, full table) the packet is
//!   dropped under its reason and answered, rate-limited, by ICMP destination unreachable,
//!   code 13 (RFC 5508 REQ-8).
//! * **Static mappings** (port forwarding) admit unsolicited inbound traffic to a fixed inside
//!   endpoint and are used for that endpoint's own outbound traffic.
//! * **Hairpinning** (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7): a packet from inside to
//!   an outside address of this NAT is source-translated first, then destination-translated
//!   through the target's mapping, so the target sees the sender's *external* address and port.
//! * **Timers**: UDP 300 s (outbound refresh; inbound refresh optional), TCP 7440 s established
//!   and 240 s transitory following both directions' SYN, FIN and RST, ICMP query 60 s, on a
//!   one-second timer wheel driven by `ctx.now` (see [`table`]), expired from `poll` in
//!   bounded batches. An unsolicited inbound SYN (no mapping, or filtered) is held for 6 s
//!   (`Next::HOLD`, at most 64): if an outbound SYN of the same connection is translated
//!   meanwhile it is dropped silently, otherwise it is answered with ICMP port unreachable and
//!   dropped (RFC 5382 REQ-4); both count as `unsolicited_syn`.
//! * **Checksums** are patched incrementally (RFC 1624) for IPv4, TCP, UDP (a zero UDP checksum
//!   stays zero) and ICMP; ICMP errors, rare and short, get their ICMP checksum recomputed.
//! * **Fragments**: an outbound non-first fragment takes the subscriber's paired address (all of
//!   a subscriber's mappings share it, so no per-datagram state is needed). An inbound first
//!   fragment records `(src, dst, proto, IP ID) -> inside address` (or the worker that owns
//!   the mapping, see below) in a small direct-mapped table; later fragments are translated
//!   from it, and fragments that come before their first are held (bounded, 2 s) and released
//!   from `poll`.
//! * **Memory**: 60 bytes per session (32-byte entry, 8 of wheel links, two indexes at load 1/2, free list; the
//!   indexes round up to a power of two, so a 10M table takes 71) plus 28 per subscriber, all
//!   reserved at start-up for `capacity` sessions and as many subscribers per worker (1M
//!   default: about 88 MiB per worker, most of it untouched until used; see
//!   [`Nat44::memory_bytes`]). A full table is counted (`table_full`) and answered like an
//!   exhausted pool.
//! * **Lookups per burst**: before a burst (in chunks of 64) is processed, each packet's index
//!   slot, then the entries it names, then (for likely new mappings: an empty home slot, or
//!   loaded entries with other keys up to an empty slot, [`Table::probe`]) its subscriber
//!   entry are loaded in passes over the whole chunk ([`Table::warm`]), so a table far larger
//!   than the caches costs overlapping misses instead of two or three in a row per packet.
//!   With random allocation, each likely new mapping from inside also has its first two port
//!   draws made then, on its subscriber's paired address (or the one a new subscriber would
//!   get), and the outside-index lines probing them reads loaded too; the allocation takes
//!   those draws first, so only the order of draws changes.
//! * **Observability**: sessions created/expired/active per protocol, subscribers, ports in
//!   use per outside address and protocol (`pool_<addr>_<proto>_ports`), ICMP sent and
//!   rate-limited, fragments, and every drop under [`DROP_REASONS`]. With `log = "file"`,
//!   RFC 6888 create/delete lines are written off the packet path (see [`log`]).
//!
//! # Across workers: who owns a mapping
//!
//! Each worker has its own table; nothing is shared or locked. The symmetric flow hash cannot
//! place NAT traffic (a reply carries `X':x'`, not `X:x`), so the stage supplies a [`Steer`]:
//!
//! * a packet arriving on an **inside** port goes to the worker chosen by a hash of its
//!   **source address**: all of a subscriber's flows meet one worker, which is what makes
//!   endpoint-independent mapping, paired pooling and the per-subscriber limit exact without
//!   sharing anything;
//! * outside ports are **partitioned per worker** in blocks of 64: worker `w` allocates only
//!   ports `p` with `(p / 64) % workers == w` (so every worker has ports in both classes), and a
//!   packet arriving on the **outside** port for a pool address goes to the owner of its
//!   destination port (ICMP: of its identifier; ICMP error: of the quoted source port). A
//!   static mapping's outside endpoint goes to the worker of its inside address;
//! * anything else (not for the pool) falls back to the flow hash.
//!
//! Two kinds of traffic need the state of two workers, and are passed from one to the other
//! with the engine's handoff ([`Next::handoff`]; the packet runs this stage again on the other
//! worker, in order, once):
//!
//! * **Hairpinning** between subscribers of different workers: the sender's worker translates
//!   the source through the sender's mapping, then hands the packet to the worker owning the
//!   target's outside port (or the target static mapping's inside address), which translates
//!   the destination ([`Mbuf::handed_over`] tells it the first half is done). A hairpinned ICMP
//!   error goes the same way, to the owner of the mapping it quotes;
//! * **Inbound fragments** carry no ports past the first, so every fragment of an inbound
//!   datagram to the pool is steered to one worker chosen by `(source, destination, protocol,
//!   IP ID)` ([`fragment_worker`]). If the mapping is another worker's, the first fragment
//!   records "this datagram goes to worker W" and is handed there, and so is every other
//!   fragment, including those held because they came before the first.
//!
//! Known limits: address-dependent filtering remembers the two most recent remote
//! addresses per mapping (stricter than ADF when a mapping talks to more peers); hairpinned
//! ICMP queries are not supported (a NAPT cannot tell which subscriber an identifier sent to a
//! shared address is for) and are dropped as `hairpin_no_mapping`; an outbound non-first
//! fragment always takes the subscriber's paired pool address, so it is wrong for a static
//! mapping on another address and is not hairpinned.

pub mod config;
pub mod log;
pub mod table;

use std::sync::Arc;

use pmd::Mbuf;

pub use config::{parse_config, Filtering, NatConf, NatSpec, StaticMap, Timeouts};
use table::{key, Session, Subscribers, Table, STATIC, WARM_EXT, WARM_NONE};

use crate::engine::Steer;
use crate::stage::{Ctx, Next, Stage};
use crate::wire::checksum::{self, udp_update16, udp_update32, update16, update32};
use crate::wire::parse::{parse, L3};

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

// TCP state bits in `Session::state`.
const SYN_OUT: u8 = 1;
const SYN_IN: u8 = 2;
const FIN_OUT: u8 = 4;
const FIN_IN: u8 = 8;
const RST: u8 = 16;
const TCP_BITS: u8 = 0x1f;

/// The stage's own drop reasons, in [`Stage::drop_reasons`] order.
pub const DROP_REASONS: &[&str] = &[
    "malformed",
    "proto_unsupported",
    "no_mapping",
    "filtered",
    "unsolicited_syn",
    "pool_exhausted",
    "subscriber_limit",
    "table_full",
    "icmp_error_no_mapping",
    "icmp_error_bad",
    "icmp_type_unsupported",
    "hairpin_no_mapping",
    "fragment_no_state",
    "fragment_timeout",
    "fragment_hold_full",
];
const D_MALFORMED: u8 = 0;
const D_PROTO: u8 = 1;
const D_NO_MAPPING: u8 = 2;
const D_FILTERED: u8 = 3;
const D_UNSOL_SYN: u8 = 4;
const D_POOL: u8 = 5;
const D_SUB_LIMIT: u8 = 6;
const D_TABLE_FULL: u8 = 7;
const D_ICMP_ERR_NO_MAPPING: u8 = 8;
const D_ICMP_BAD: u8 = 9;
const D_ICMP_TYPE: u8 = 10;
const D_HAIRPIN: u8 = 11;
const D_FRAG_NO_STATE: u8 = 12;
const D_FRAG_TIMEOUT: u8 = 13;
const D_FRAG_FULL: u8 = 14;

/// Ports per block of the per-worker partition.
pub const PORT_BLOCK_BITS: u32 = 6;
/// Fragments held at most, per worker.
pub const MAX_HELD: usize = 64;
/// Seconds an unsolicited inbound SYN is held before it is answered (RFC 5382 REQ-4).
pub const SYN_HOLD_SECS: u32 = 6;
/// Seconds a held fragment waits for its first fragment.
pub const FRAG_HOLD_SECS: u32 = 2;
const FRAG_SLOTS: usize = 1024;
/// Packets whose table lines are loaded together before they are processed (a burst is
/// taken in chunks of this many).
const WARM: usize = 64;
/// Random port draws made ahead per likely new mapping (see [`Nat44::warm_ports`]).
const DRAWS: usize = 2;

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}
#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
#[inline(always)]
fn put16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_be_bytes());
}
#[inline(always)]
fn put32(b: &mut [u8], i: usize, v: u32) {
    b[i..i + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
fn hash32(x: u32) -> u32 {
    let h = u64::from(x).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32
}

/// The worker that owns inside address `addr` (all its flows meet there).
#[inline]
pub fn subscriber_worker(addr: u32, workers: usize) -> usize {
    ((u64::from(hash32(addr)) * workers as u64) >> 32) as usize
}

/// The worker that owns outside port (or ICMP identifier) `port`.
#[inline]
pub fn port_worker(port: u16, workers: usize) -> usize {
    (usize::from(port) >> PORT_BLOCK_BITS) % workers.max(1)
}

/// The worker that owns outside endpoint `addr:port` of `proto`: a static mapping's belongs
/// to the worker of its inside address, any other to the owner of the port.
#[inline]
fn ext_owner(conf: &NatConf, proto: u8, addr: u32, port: u16, workers: usize) -> usize {
    match conf.static_by_ext(proto, addr, port) {
        Some(s) => subscriber_worker(s.in_addr, workers),
        None => port_worker(port, workers),
    }
}

/// The worker that receives every fragment of an inbound datagram (they carry no ports to
/// steer by, so all of them meet where the datagram's identity says; see the module doc).
#[inline]
pub fn fragment_worker(src: u32, dst: u32, proto: u8, id: u16, workers: usize) -> usize {
    let h = hash32(src ^ dst.rotate_left(13) ^ (u32::from(id) << 8 | u32::from(proto)));
    ((u64::from(h) * workers as u64) >> 32) as usize
}

fn proto_index(p: u8) -> usize {
    match p {
        TCP => 0,
        UDP => 1,
        _ => 2,
    }
}
const PROTO_NAMES: [&str; 3] = ["tcp", "udp", "icmp"];

/// ICMP query types whose identifier is translated: echo and timestamp, request and reply.
fn icmp_query(t: u8) -> Option<bool> {
    match t {
        8 | 13 => Some(true),
        0 | 14 => Some(false),
        _ => None,
    }
}

fn icmp_error(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// The steering rule: inside packets by source address, outside packets for the pool by the
/// owner of their port (see the module doc).
#[derive(Debug)]
pub struct NatSteer {
    /// The shared settings.
    pub conf: Arc<NatConf>,
}

impl NatSteer {
    /// The outside-port worker for an IPv4 packet `ip` (from its header on) sent to the pool.
    fn outside(&self, ip: &[u8], workers: usize) -> Option<usize> {
        let c = &self.conf;
        let proto = *ip.get(9)?;
        let dst = be32(ip.get(..20)?, 16);
        if !c.is_outside_addr(dst) {
            return None;
        }
        if be16(ip, 6) & 0x3fff != 0 {
            // A fragment, first or not: to the datagram's fragment worker.
            return Some(fragment_worker(
                be32(ip, 12),
                dst,
                proto,
                be16(ip, 4),
                workers,
            ));
        }
        Self::owner(c, ip, workers)
    }

    /// The worker owning the mapping an inbound IPv4 packet `ip` to the pool is for (by its
    /// destination port, ICMP identifier, or the quoted source port of an ICMP error).
    fn owner(c: &NatConf, ip: &[u8], workers: usize) -> Option<usize> {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let proto = ip[9];
        let dst = be32(ip, 16);
        let l4 = ip.get(ihl..)?;
        let port = match proto {
            TCP | UDP => be16(l4.get(..4)?, 2),
            ICMP => {
                let t = *l4.first()?;
                if icmp_query(t).is_some() {
                    be16(l4.get(..8)?, 4)
                } else if icmp_error(t) {
                    let inner = l4.get(8..)?;
                    let iihl = usize::from(*inner.first()? & 0x0f) * 4;
                    let ip2 = inner.get(..20)?;
                    let il4 = inner.get(iihl..iihl + 8)?;
                    let (ip_src, p) = match ip2[9] {
                        TCP | UDP => (be32(ip2, 12), be16(il4, 0)),
                        ICMP => (be32(ip2, 12), be16(il4, 4)),
                        _ => return None,
                    };
                    return Some(ext_owner(c, ip2[9], ip_src, p, workers));
                } else {
                    return None;
                }
            }
            _ => return None,
        };
        Some(ext_owner(c, proto, dst, port, workers))
    }
}

impl Steer for NatSteer {
    fn steer(&self, frame: &[u8], port: u16, workers: usize) -> Option<usize> {
        let role = *self.conf.roles.get(port as usize)?;
        if role == 0 || workers <= 1 {
            return None;
        }
        let p = parse(frame).ok()?;
        if p.l3 != L3::Ipv4 {
            return None;
        }
        let ip = frame.get(usize::from(p.l3_offset)..)?;
        if role == 1 {
            Some(subscriber_worker(be32(ip, 12), workers))
        } else {
            self.outside(ip, workers)
        }
    }
}

/// Counters kept by one instance.
#[derive(Debug, Default, Clone)]
struct Stats {
    created: [u64; 3],
    expired: [u64; 3],
    active: [u64; 3],
    translated_out: u64,
    translated_in: u64,
    hairpinned: u64,
    icmp_errors_out: u64,
    icmp_errors_in: u64,
    icmp_prohibited_sent: u64,
    icmp_prohibited_limited: u64,
    icmp_port_unreach_sent: u64,
    passed_through: u64,
    fragments_translated: u64,
    fragments_held: u64,
    fragments_released: u64,
    fragments_handed_over: u64,
    hairpins_handed_over: u64,
    log_lost: u64,
}

/// Where a fragmented inbound datagram goes: recorded from its first fragment.
#[derive(Debug, Clone, Copy, Default)]
struct FragState {
    src: u32,
    dst: u32,
    id: u16,
    proto: u8,
    live: bool,
    in_addr: u32,
    in_if: u16,
    /// The worker that translates the datagram: this one, or the owner of its mapping when
    /// the first fragment was handed over there.
    owner: u16,
    deadline: u32,
}

/// A held fragment, waiting for its first fragment.
struct Held {
    m: Mbuf,
    deadline: u32,
}

/// The NAT44 stage: one instance per run-to-completion worker (per-core state).
pub struct Nat44 {
    conf: Arc<NatConf>,
    worker: usize,
    workers: usize,
    t: Table,
    subs: Subscribers,
    /// Ports held per pool address and protocol by this worker.
    used: Vec<[u32; 3]>,
    rng: u64,
    /// The first random port draws for the packet being processed, made ahead by
    /// [`Self::warm_ports`] (taken by [`Self::alloc_port`]).
    pre: Option<[u32; DRAWS]>,
    /// The session the packet being processed was found at by [`Table::probe`] (`id + 1`; 0:
    /// none), checked against the packet's key before use.
    found: u32,
    /// The IPv4 header offset of the packet being processed when `warm_key` checked it (0:
    /// parse it).
    l3_hint: u16,
    /// The draws [`Self::warm_ports`] made for the chunk being processed (bit `i` of its
    /// result says whether `ahead[i]` holds some).
    ahead: [[u32; DRAWS]; WARM],
    port_macs: Vec<[u8; 6]>,
    icmp_tokens: u32,
    icmp_second: u32,
    frags: Vec<FragState>,
    held: Vec<Held>,
    syns: Vec<Held>,
    now: u32,
    stats: Stats,
    log: Option<Arc<log::Shared>>,
    /// Load each chunk's table lines before processing it (see the module doc).
    warm: bool,
}

impl Nat44 {
    /// An instance for worker `worker` of `workers` (ports of the partition it owns).
    pub fn new(
        conf: Arc<NatConf>,
        worker: usize,
        workers: usize,
        port_macs: Vec<[u8; 6]>,
    ) -> Nat44 {
        // Seed from the standard library's per-process random keys: unpredictable ports
        // (RFC 6056) without a syscall on the packet path.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(worker);
        let seed = h.finish() | 1;
        let cap = conf.capacity;
        Nat44 {
            worker,
            workers: workers.max(1),
            t: Table::new(cap, seed),
            subs: Subscribers::new(cap, seed.rotate_left(31)),
            used: vec![[0; 3]; conf.pool.len()],
            rng: seed,
            pre: None,
            found: 0,
            l3_hint: 0,
            ahead: [[0; DRAWS]; WARM],
            port_macs,
            icmp_tokens: conf.icmp_rate,
            icmp_second: 0,
            frags: vec![FragState::default(); FRAG_SLOTS],
            held: Vec::with_capacity(MAX_HELD),
            syns: Vec::with_capacity(MAX_HELD),
            now: 0,
            stats: Stats::default(),
            log: None,
            warm: true,
            conf,
        }
    }

    /// Writes RFC 6888 create/delete records to `shared` (this worker's ring).
    pub fn set_log(&mut self, shared: Arc<log::Shared>) {
        self.log = Some(shared);
    }

    #[inline]
    fn log(&mut self, s: &Session, create: bool) {
        if let Some(l) = &self.log {
            let r = &l.rings[self.worker.min(l.rings.len() - 1)];
            let rec = log::record(
                self.now,
                create,
                s.proto,
                (s.in_addr, s.in_port),
                (s.ext_addr, s.ext_port),
            );
            if !r.push(rec) {
                self.stats.log_lost += 1;
            }
        }
    }

    /// Sessions in this instance's table.
    pub fn sessions(&self) -> usize {
        self.t.len()
    }

    /// Turns the per-burst loading of table lines on (the default) or off: off only to measure
    /// what it saves (`bench nat`).
    pub fn set_burst_warm(&mut self, on: bool) {
        self.warm = on;
    }

    /// Sessions this instance's table holds at most.
    pub fn capacity(&self) -> usize {
        self.t.capacity()
    }

    /// Bytes reserved at start-up: the session table (entries, free list, both indexes, the
    /// wheel) and the subscriber table (sized for one subscriber per session).
    pub fn memory_bytes(&self) -> (usize, usize) {
        (self.t.memory_bytes(), self.subs.memory_bytes())
    }

    #[inline]
    fn rand(&mut self) -> u32 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// The session [`Table::probe`] found for this packet, if its inside key is `k`.
    #[inline(always)]
    fn found_in(&mut self, k: u64) -> Option<u32> {
        let f = std::mem::take(&mut self.found);
        let id = f.checked_sub(1)?;
        (self.t.s.get(id as usize)?.in_key() == k).then_some(id)
    }

    /// The session [`Table::probe`] found for this packet, if its outside key is `k`.
    #[inline(always)]
    fn found_ext(&mut self, k: u64) -> Option<u32> {
        let f = std::mem::take(&mut self.found);
        let id = f.checked_sub(1)?;
        (self.t.s.get(id as usize)?.ext_key() == k).then_some(id)
    }

    fn owns(&self, port: u16) -> bool {
        port_worker(port, self.workers) == self.worker
    }

    /// The outside ports `(a, b)` a mapping of `proto` from inside port `in_port` takes: the
    /// class of `in_port` (below 1024 or not) when the range allows.
    #[inline]
    fn port_class(&self, proto: u8, in_port: u16) -> (u16, u16) {
        let (lo, hi) = self.conf.ports;
        if proto == ICMP {
            (lo, hi)
        } else if in_port < 1024 && lo < 1024 {
            (lo, hi.min(1023))
        } else if in_port >= 1024 && hi >= 1024 {
            (lo.max(1024), hi)
        } else {
            (lo, hi)
        }
    }

    /// The port random draw `r` names in `a..=b`, moved to the next block this worker owns;
    /// `None` if that lies past `b`.
    #[inline]
    fn candidate(&self, r: u32, a: u16, b: u16) -> Option<u16> {
        let span = u64::from(b - a) + 1;
        // Multiply-shift: uniform in the span like `r % span`, without a division.
        let p = u32::from(a) + ((u64::from(r) * span) >> 32) as u32;
        let p = if self.workers > 1 {
            let w = self.workers as u32;
            let blk = p >> PORT_BLOCK_BITS;
            let shift = (self.worker as u32 + w - blk % w) % w;
            p + (shift << PORT_BLOCK_BITS)
        } else {
            p
        };
        (p <= u32::from(b)).then_some(p as u16)
    }

    /// A free outside port for `proto` on pool address `ext`, in the class of `in_port`. The
    /// first [`DRAWS`] random draws are those [`Self::warm_ports`] made for this packet, if it
    /// did.
    fn alloc_port(&mut self, proto: u8, ext: u32, in_port: u16) -> Option<u16> {
        let (a, b) = self.port_class(proto, in_port);
        let span = u32::from(b - a) + 1;
        if self.conf.sequential {
            return (a..=b)
                .find(|&p| self.owns(p) && self.t.find_ext(key(proto, ext, p)).is_none());
        }
        let ahead = self.pre.take();
        for t in 0..32 {
            let r = match ahead {
                Some(d) if t < DRAWS => d[t],
                _ => self.rand(),
            };
            let Some(p) = self.candidate(r, a, b) else {
                continue;
            };
            if self.t.find_ext(key(proto, ext, p)).is_none() {
                return Some(p);
            }
        }
        // Nearly full: scan from a random point (bounded by the range).
        let start = self.rand() % span;
        for i in 0..span {
            let p = (u32::from(a) + (start + i) % span) as u16;
            if self.owns(p) && self.t.find_ext(key(proto, ext, p)).is_none() {
                return Some(p);
            }
        }
        None
    }

    /// The pool address a new subscriber `src` is paired with: by a hash of its address, among
    /// those with room for `proto`.
    #[inline]
    fn pool_for(&self, src: u32, proto: u8) -> usize {
        let n = self.conf.pool.len();
        let first = hash32(src ^ 0x5a5a_5a5a) as usize % n;
        (0..n)
            .map(|i| (first + i) % n)
            .find(|&i| self.used[i][proto_index(proto)] < 65536 / self.workers as u32)
            .unwrap_or(first)
    }

    /// For the likely new mappings from inside of a chunk (`fresh` bits of `keys`, whose
    /// subscriber entries [`Subscribers::warm`] loaded): makes each one's first [`DRAWS`]
    /// random port draws now (into `ahead`, used by [`Self::alloc_port`]) and loads the
    /// outside-index lines the probes of those ports read, so these misses overlap too. Only
    /// the order of draws and loads changes: draws not used (the packet needed no new port, or
    /// fewer) are dropped. Returns the mask of the packets given draws (bit `i` for
    /// `ahead[i]`).
    fn warm_ports(&mut self, keys: &[u64], fresh: u64) -> u64 {
        if self.conf.pool.is_empty() {
            return 0;
        }
        let mut drawn = 0u64;
        let mut ext = [WARM_NONE; WARM * DRAWS];
        let mut n = 0;
        for (i, &k) in keys.iter().enumerate().take(WARM) {
            if fresh >> i & 1 == 0 || k & WARM_EXT != 0 {
                continue;
            }
            let (proto, src, sp) = ((k >> 48) as u8, (k >> 16) as u32, k as u16);
            let pi = match self.subs.find(src) {
                Some(s) => self.subs.e[s as usize][1] as usize,
                None => self.pool_for(src, proto),
            };
            drawn |= 1 << i;
            let (a, b) = self.port_class(proto, sp);
            for j in 0..DRAWS {
                let r = self.rand();
                self.ahead[i][j] = r;
                if let (Some(p), Some(&addr)) = (self.candidate(r, a, b), self.conf.pool.get(pi)) {
                    ext[n] = key(proto, addr, p);
                    n += 1;
                }
            }
        }
        for c in ext[..n].chunks(64) {
            self.t.warm_ext_runs(c);
        }
        drawn
    }

    /// Creates the mapping for inside endpoint (proto, src, sp): static, else from the pool.
    fn create_out(&mut self, proto: u8, src: u32, sp: u16, in_if: u16) -> Result<u32, u8> {
        if self.t.is_full() {
            return Err(D_TABLE_FULL);
        }
        let now = self.now;
        if let Some(s) = self.conf.static_by_in(proto, src, sp).copied() {
            if self
                .t
                .find_ext(key(proto, s.ext_addr, s.ext_port))
                .is_some()
            {
                return Err(D_POOL);
            }
            return Ok(self.add_static(&s, proto, in_if));
        }
        let (sub, fresh) = match self.subs.find(src) {
            Some(s) => (s, false),
            None => {
                let pi = self.pool_for(src, proto);
                (self.subs.add(src, pi as u32), true)
            }
        };
        let limit = self.conf.max_ports_per_subscriber;
        if limit != 0 && self.subs.e[sub as usize][2] >= limit {
            return Err(D_SUB_LIMIT);
        }
        let pi = self.subs.e[sub as usize][1] as usize;
        let ext = self.conf.pool[pi];
        let Some(port) = self.alloc_port(proto, ext, sp) else {
            if fresh {
                self.subs.remove(sub);
            }
            return Err(D_POOL);
        };
        self.subs.e[sub as usize][2] += 1;
        self.used[pi][proto_index(proto)] += 1;
        Ok(self.add(Session {
            in_addr: src,
            in_port: sp,
            ext_addr: ext,
            ext_port: port,
            proto,
            in_if,
            deadline: now.saturating_add(1),
            ..Session::default()
        }))
    }

    /// Creates the session of static mapping `st` (the inside host behind port `in_if`).
    fn add_static(&mut self, st: &StaticMap, proto: u8, in_if: u16) -> u32 {
        self.add(Session {
            in_addr: st.in_addr,
            in_port: st.in_port,
            ext_addr: st.ext_addr,
            ext_port: st.ext_port,
            proto,
            state: STATIC,
            in_if,
            deadline: self.now.saturating_add(1),
            ..Session::default()
        })
    }

    fn add(&mut self, s: Session) -> u32 {
        let pi = proto_index(s.proto);
        self.stats.created[pi] += 1;
        self.stats.active[pi] += 1;
        self.log(&s, true);
        self.t.add(s, self.now)
    }

    /// Ends a session (timer expiry).
    fn expire(&mut self, id: u32) {
        let s = self.t.s[id as usize];
        let pi = proto_index(s.proto);
        self.stats.expired[pi] += 1;
        self.stats.active[pi] -= 1;
        self.log(&s, false);
        if s.state & STATIC == 0 {
            if let Some(sub) = self.subs.find(s.in_addr) {
                let e = &mut self.subs.e[sub as usize];
                e[2] = e[2].saturating_sub(1);
                if e[2] == 0 {
                    self.subs.remove(sub);
                }
            }
            if let Some(i) = self.conf.pool_index(s.ext_addr) {
                self.used[i][pi] = self.used[i][pi].saturating_sub(1);
            }
        }
        self.t.remove(id);
    }

    /// The deadline a session gets now, after its state changed.
    fn timeout(&self, s: &Session) -> u32 {
        let t = &self.conf.timeouts;
        let secs = match s.proto {
            TCP => {
                let st = s.state;
                let both_syn = st & (SYN_OUT | SYN_IN) == SYN_OUT | SYN_IN;
                let both_fin = st & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN;
                if both_syn && !both_fin && st & RST == 0 {
                    t.tcp_established
                } else {
                    t.tcp_transitory
                }
            }
            UDP => t.udp,
            _ => t.icmp,
        };
        self.now.saturating_add(secs)
    }

    /// Follows TCP flags of a packet (outbound or not) and refreshes the session.
    fn tcp_track(&mut self, id: u32, flags: u8, outbound: bool) {
        let s = &mut self.t.s[id as usize];
        let mut st = s.state;
        let syn = flags & 0x02 != 0;
        let fin = flags & 0x01 != 0;
        let rst = flags & 0x04 != 0;
        if syn
            && flags & 0x10 == 0
            && (st & RST != 0 || st & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN)
        {
            // A new connection on a mapping whose last one closed.
            st &= !TCP_BITS;
        }
        if syn {
            st |= if outbound { SYN_OUT } else { SYN_IN };
        }
        if fin {
            st |= if outbound { FIN_OUT } else { FIN_IN };
        }
        if rst {
            st |= RST;
        }
        s.state = st;
        let d = self.timeout(&self.t.s[id as usize]);
        self.t.set_deadline(id, d);
    }

    fn refresh(&mut self, id: u32) {
        let d = self.timeout(&self.t.s[id as usize]);
        self.t.set_deadline(id, d);
    }

    fn remember_peer(&mut self, id: u32, peer: u32) {
        let s = &mut self.t.s[id as usize];
        if s.peers[0] != peer {
            s.peers[1] = s.peers[0];
            s.peers[0] = peer;
        }
    }

    fn admits(&self, id: u32, peer: u32) -> bool {
        let s = &self.t.s[id as usize];
        self.conf.filtering == Filtering::EndpointIndependent
            || s.state & STATIC != 0
            || s.peers[0] == peer
            || s.peers[1] == peer
    }

    /// Sends ICMP destination unreachable, administratively prohibited (code 13) for `m`
    /// back out of its input port, within the rate limit (RFC 5508 REQ-8).
    fn prohibited(&mut self, ctx: &mut Ctx, m: &Mbuf, l3: usize) {
        if self.unreachable(ctx, m, l3, 13, self.conf.pool[0]) {
            self.stats.icmp_prohibited_sent += 1;
        } else {
            self.stats.icmp_prohibited_limited += 1;
        }
    }

    /// Sends ICMP destination unreachable with `code` from `src` to the sender of `m`, back out
    /// of `m`'s input port, quoting as much of `m` as fits in 576 bytes; false if the rate
    /// limit, the pool or the burst had no room.
    fn unreachable(&mut self, ctx: &mut Ctx, m: &Mbuf, l3: usize, code: u8, src: u32) -> bool {
        if self.icmp_second != self.now {
            self.icmp_second = self.now;
            self.icmp_tokens = self.conf.icmp_rate;
        }
        if self.icmp_tokens == 0 || ctx.emit_room() == 0 {
            return false;
        }
        let d = m.data();
        if d.len() < l3 + 20 || l3 < 12 {
            return false;
        }
        let ip = &d[l3..];
        let tot = usize::from(be16(ip, 2)).min(ip.len());
        let quote = tot.min(576 - 28);
        let mut buf = [0u8; 14 + 576];
        let Some(mac) = self.port_macs.get(m.port() as usize).copied() else {
            return false;
        };
        buf[..6].copy_from_slice(&d[6..12]);
        buf[6..12].copy_from_slice(&mac);
        buf[12..14].copy_from_slice(&[0x08, 0x00]);
        let o = 14;
        let len = 28 + quote;
        buf[o] = 0x45;
        put16(&mut buf, o + 2, len as u16);
        buf[o + 8] = 64;
        buf[o + 9] = ICMP;
        put32(&mut buf, o + 12, src);
        buf[o + 16..o + 20].copy_from_slice(&ip[12..16]);
        let c = checksum::checksum(&buf[o..o + 20]);
        put16(&mut buf, o + 10, c);
        let ic = o + 20;
        buf[ic] = 3;
        buf[ic + 1] = code;
        buf[ic + 8..ic + 8 + quote].copy_from_slice(&ip[..quote]);
        let c = checksum::checksum(&buf[ic..ic + 8 + quote]);
        put16(&mut buf, ic + 2, c);
        let Some(mut n) = ctx.alloc() else {
            return false;
        };
        if !n.copy_from(&buf[..o + len]) {
            ctx.free_created(n);
            return false;
        }
        n.set_seq(m.seq());
        n.set_timestamp(m.timestamp());
        n.set_port(m.port());
        n.set_egress(m.port());
        ctx.emit(n);
        self.icmp_tokens -= 1;
        true
    }

    /// Held unsolicited SYNs (RFC 5382 REQ-4): dropped silently once an outbound SYN of the same
    /// connection was translated; after 6 s answered with ICMP port unreachable and dropped.
    fn poll_syns(&mut self, ctx: &mut Ctx) {
        let mut i = 0;
        while i < self.syns.len() {
            let h = &self.syns[i];
            let d = h.m.data();
            let Some((l3, src, dst, dp)) = parse(d).ok().map(|p| {
                let l3 = usize::from(p.l3_offset);
                let ip = &d[l3..];
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                (l3, be32(ip, 12), be32(ip, 16), be16(ip, ihl + 2))
            }) else {
                let h = self.syns.swap_remove(i);
                ctx.drop_held(h.m, D_UNSOL_SYN);
                continue;
            };
            let answered = self.t.find_ext(key(TCP, dst, dp)).is_some_and(|id| {
                let s = &self.t.s[id as usize];
                s.state & SYN_OUT != 0 && (s.peers[0] == src || s.peers[1] == src)
            });
            if answered {
                let h = self.syns.swap_remove(i);
                ctx.drop_held(h.m, D_UNSOL_SYN);
            } else if h.deadline <= self.now {
                let h = self.syns.swap_remove(i);
                if self.unreachable(ctx, &h.m, l3, 3, dst) {
                    self.stats.icmp_port_unreach_sent += 1;
                }
                ctx.drop_held(h.m, D_UNSOL_SYN);
            } else {
                i += 1;
            }
        }
    }

    /// The session-table key a packet will be looked up by (see [`Table::warm`]): a quick read
    /// of an untagged or single-tagged IPv4 TCP, UDP or ICMP packet that is not a non-first
    /// fragment; anything else, or anything odd, gives [`WARM_NONE`] (the real path decides).
    ///
    /// Also returns the IPv4 header's offset when the header passed every check the full parse
    /// makes (version, header length, total length within the frame), so the packet's own
    /// processing need not parse it again; 0 otherwise.
    #[inline(always)]
    fn warm_key(&self, m: &Mbuf) -> (u64, u16) {
        const NONE: (u64, u16) = (WARM_NONE, 0);
        let role = self.conf.roles.get(m.port() as usize).copied().unwrap_or(0);
        let d = m.data();
        let l3 = match d.get(12..14) {
            Some([8, 0]) => 14,
            Some([0x81, 0]) if d.get(16..18) == Some(&[8, 0]) => 18,
            _ => return NONE,
        };
        let Some(ip) = d.get(l3..l3 + 20) else {
            return NONE;
        };
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let tot = usize::from(be16(ip, 2));
        let proto = ip[9];
        if role == 0 || ip[0] >> 4 != 4 || be16(ip, 6) & 0x1fff != 0 {
            return NONE;
        }
        // What `parse` checks of an IPv4 header (`Ipv4Packet::new_checked`).
        let checked = ihl >= 20 && tot >= ihl && l3 + tot <= d.len();
        let Some(l4) = d.get(l3 + ihl..l3 + ihl + 8) else {
            return NONE;
        };
        let out = role == 1;
        let port = match proto {
            TCP | UDP if out => be16(l4, 0),
            TCP | UDP => be16(l4, 2),
            ICMP if icmp_query(l4[0]).is_some() => be16(l4, 4),
            _ => return NONE,
        };
        let k = if out {
            key(proto, be32(ip, 12), port)
        } else {
            key(proto, be32(ip, 16), port) | WARM_EXT
        };
        (k, if checked { l3 as u16 } else { 0 })
    }

    /// One packet. Returns its next step.
    fn packet(&mut self, ctx: &mut Ctx, m: &mut Mbuf) -> Next {
        let role = self.conf.roles.get(m.port() as usize).copied().unwrap_or(0);
        if role == 0 {
            return Next::CONTINUE;
        }
        let l3 = match std::mem::take(&mut self.l3_hint) {
            0 => match parse(m.data()) {
                Ok(p) if p.l3 == L3::Ipv4 => usize::from(p.l3_offset),
                Ok(_) => return Next::CONTINUE,
                Err(_) => return Next::stage_drop(D_MALFORMED),
            },
            // `warm_key` checked the header as `parse` would.
            h => usize::from(h),
        };
        let r = if role == 1 && m.handed_over() {
            self.hairpin_arrived(m, l3)
        } else if role == 1 {
            self.outbound(m, l3)
        } else {
            self.inbound(m, l3)
        };
        match r {
            Ok(n) => n,
            Err(code @ (D_POOL | D_SUB_LIMIT | D_TABLE_FULL)) => {
                self.prohibited(ctx, m, l3);
                Next::stage_drop(code)
            }
            Err(code) => Next::stage_drop(code),
        }
    }

    /// A packet from an inside port.
    fn outbound(&mut self, m: &mut Mbuf, l3: usize) -> Result<Next, u8> {
        let in_if = m.port();
        let outside = self.conf.outside;
        let d = m.data_mut();
        let ip = &mut d[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let tot = usize::from(be16(ip, 2));
        let ip = &mut ip[..tot];
        let proto = ip[9];
        let src = be32(ip, 12);
        let dst = be32(ip, 16);
        if be16(ip, 6) & 0x1fff != 0 {
            // Non-first fragment: the subscriber's paired address.
            let sub = self.subs.find(src).ok_or(D_FRAG_NO_STATE)?;
            let ext = self.conf.pool[self.subs.e[sub as usize][1] as usize];
            set_addr(ip, 12, ext);
            self.stats.fragments_translated += 1;
            m.set_egress(outside);
            return Ok(Next::CONTINUE);
        }
        let (l4h, l4) = ip.split_at_mut(ihl);
        let (sp, dp, flags) = match proto {
            TCP if l4.len() >= 20 => (be16(l4, 0), be16(l4, 2), l4[13]),
            UDP if l4.len() >= 8 => (be16(l4, 0), be16(l4, 2), 0),
            ICMP if l4.len() >= 8 => {
                let t = l4[0];
                if icmp_error(t) {
                    return self.icmp_error_out(m, l3, in_if);
                }
                match icmp_query(t) {
                    Some(_) => (be16(l4, 4), be16(l4, 4), 0),
                    None => return Err(D_ICMP_TYPE),
                }
            }
            TCP | UDP | ICMP => return Err(D_MALFORMED),
            _ => return Err(D_PROTO),
        };
        let _ = l4h;
        let k = key(proto, src, sp);
        let id = match self.found_in(k).or_else(|| self.t.find_in(k)) {
            Some(id) => id,
            None => {
                if proto == ICMP && icmp_query(l4[0]) == Some(false) {
                    return Err(D_NO_MAPPING);
                }
                self.create_out(proto, src, sp, in_if)?
            }
        };
        match proto {
            TCP => self.tcp_track(id, flags, true),
            _ => self.refresh(id),
        }
        self.remember_peer(id, dst);
        let s = self.t.s[id as usize];
        let d = m.data_mut();
        let ip = &mut d[l3..l3 + tot];
        rewrite(ip, ihl, proto, true, s.ext_addr, s.ext_port);
        if self.conf.is_outside_addr(dst) {
            if self.workers > 1 && proto != ICMP {
                let w = ext_owner(&self.conf, proto, dst, dp, self.workers);
                if w != self.worker {
                    // The target's mapping is another worker's: it finishes the hairpin.
                    self.stats.hairpins_handed_over += 1;
                    return Ok(Next::handoff(w as u16));
                }
            }
            return self.hairpin(m, l3, proto, s.ext_addr, dp);
        }
        self.stats.translated_out += 1;
        m.set_egress(outside);
        Ok(Next::CONTINUE)
    }

    /// The second half of a hairpin another worker began: the packet (or ICMP error) is
    /// already source-translated and addressed to a mapping this worker owns.
    fn hairpin_arrived(&mut self, m: &mut Mbuf, l3: usize) -> Result<Next, u8> {
        let d = m.data();
        let ip = &d[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let (proto, from) = (ip[9], be32(ip, 12));
        let l4 = &ip[ihl..];
        match proto {
            ICMP => self.icmp_error_in(m, l3),
            _ => {
                let dp = l4.get(2..4).ok_or(D_MALFORMED)?;
                let dp = u16::from_be_bytes([dp[0], dp[1]]);
                self.hairpin(m, l3, proto, from, dp)
            }
        }
    }

    /// A source-translated packet addressed to one of our outside endpoints: translate its
    /// destination through the target's mapping and send it back inside.
    fn hairpin(
        &mut self,
        m: &mut Mbuf,
        l3: usize,
        proto: u8,
        from: u32,
        dp: u16,
    ) -> Result<Next, u8> {
        let d = m.data_mut();
        let ip = &mut d[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let tot = usize::from(be16(ip, 2));
        let dst = be32(ip, 16);
        if proto == ICMP {
            // An identifier sent to a shared address names no subscriber (see the module doc).
            return Err(D_HAIRPIN);
        }
        let tid = match self.t.find_ext(key(proto, dst, dp)) {
            Some(t) => t,
            None => match self.conf.static_by_ext(proto, dst, dp).copied() {
                Some(st)
                    if !self.t.is_full()
                        && self.t.find_in(key(proto, st.in_addr, st.in_port)).is_none() =>
                {
                    self.add_static(&st, proto, st.in_if)
                }
                _ => return Err(D_HAIRPIN),
            },
        };
        if !self.admits(tid, from) {
            return Err(D_FILTERED);
        }
        let flags = if proto == TCP { d[l3 + ihl + 13] } else { 0 };
        if proto == TCP {
            self.tcp_track(tid, flags, false);
        }
        let s = self.t.s[tid as usize];
        let d = m.data_mut();
        let ip = &mut d[l3..l3 + tot];
        rewrite(ip, ihl, proto, false, s.in_addr, s.in_port);
        self.stats.hairpinned += 1;
        m.set_egress(s.in_if);
        Ok(Next::CONTINUE)
    }

    /// A packet from the outside port.
    fn inbound(&mut self, m: &mut Mbuf, l3: usize) -> Result<Next, u8> {
        let handed = m.handed_over();
        let d = m.data_mut();
        let ip = &mut d[l3..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let tot = usize::from(be16(ip, 2));
        let ip = &mut ip[..tot];
        let proto = ip[9];
        let src = be32(ip, 12);
        let dst = be32(ip, 16);
        if !self.conf.is_outside_addr(dst) {
            self.stats.passed_through += 1;
            return Ok(Next::CONTINUE);
        }
        let frag = be16(ip, 6);
        let ipid = be16(ip, 4);
        if frag & 0x1fff != 0 {
            return match self.frag_lookup(src, dst, proto, ipid) {
                Some((_, _, owner)) if owner != self.worker => {
                    if handed {
                        // Cannot happen: a datagram has one owner. Never hand over twice.
                        return Err(D_FRAG_NO_STATE);
                    }
                    self.stats.fragments_handed_over += 1;
                    Ok(Next::handoff(owner as u16))
                }
                Some((a, inif, _)) => {
                    set_addr(ip, 16, a);
                    self.stats.fragments_translated += 1;
                    m.set_egress(inif);
                    Ok(Next::CONTINUE)
                }
                None if self.held.len() < MAX_HELD => Ok(Next::HOLD),
                None => Err(D_FRAG_FULL),
            };
        }
        if frag & 0x2000 != 0 && self.workers > 1 && !handed {
            // A first fragment, steered here with the rest of its datagram: its mapping may
            // be another worker's. Then the whole datagram goes there.
            if let Some(w) = NatSteer::owner(&self.conf, ip, self.workers) {
                if w != self.worker {
                    self.frag_record(src, dst, proto, ipid, 0, 0, w);
                    self.stats.fragments_handed_over += 1;
                    return Ok(Next::handoff(w as u16));
                }
            }
        }
        let l4 = &ip[ihl..];
        let (dp, flags) = match proto {
            TCP if l4.len() >= 20 => (be16(l4, 2), l4[13]),
            UDP if l4.len() >= 8 => (be16(l4, 2), 0),
            ICMP if l4.len() >= 8 => {
                let t = l4[0];
                if icmp_error(t) {
                    return self.icmp_error_in(m, l3);
                }
                match icmp_query(t) {
                    Some(_) => (be16(l4, 4), 0),
                    None => return Err(D_ICMP_TYPE),
                }
            }
            TCP | UDP | ICMP => return Err(D_MALFORMED),
            _ => return Err(D_PROTO),
        };
        let unsolicited_syn = proto == TCP && flags & 0x12 == 0x02;
        let k = key(proto, dst, dp);
        let id = match self.found_ext(k).or_else(|| self.t.find_ext(k)) {
            Some(id) => id,
            None => match self.conf.static_by_ext(proto, dst, dp).copied() {
                Some(st) => {
                    if self.t.is_full() {
                        return Err(D_TABLE_FULL);
                    }
                    if self.t.find_in(key(proto, st.in_addr, st.in_port)).is_some() {
                        return Err(D_NO_MAPPING);
                    }
                    self.add_static(&st, proto, st.in_if)
                }
                None if unsolicited_syn && self.syns.len() < MAX_HELD => return Ok(Next::HOLD),
                None if unsolicited_syn => return Err(D_UNSOL_SYN),
                None => return Err(D_NO_MAPPING),
            },
        };
        if !self.admits(id, src) {
            return Err(if unsolicited_syn {
                D_UNSOL_SYN
            } else {
                D_FILTERED
            });
        }
        match proto {
            TCP => self.tcp_track(id, flags, false),
            UDP if self.conf.inbound_refresh => self.refresh(id),
            _ => {}
        }
        let s = self.t.s[id as usize];
        if frag & 0x2000 != 0 {
            self.frag_record(src, dst, proto, ipid, s.in_addr, s.in_if, self.worker);
        }
        let d = m.data_mut();
        let ip = &mut d[l3..l3 + tot];
        rewrite(ip, ihl, proto, false, s.in_addr, s.in_port);
        self.stats.translated_in += 1;
        // A stage after this one that answers the packet (a firewall's reject) answers from
        // the address and port it was sent to.
        m.set_orig_dst(dst, dp);
        m.set_egress(s.in_if);
        Ok(Next::CONTINUE)
    }

    /// Checks an ICMP error's outer checksum and quoted header; returns the quoted packet's
    /// offset in `ip`, its header length and protocol.
    fn icmp_error_check(ip: &[u8]) -> Result<(usize, usize, u8), u8> {
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let icmp = &ip[ihl..];
        if checksum::checksum(icmp) != 0 {
            return Err(D_ICMP_BAD);
        }
        let inner = ihl + 8;
        let q = ip.get(inner..).ok_or(D_ICMP_BAD)?;
        if q.len() < 28 || q[0] >> 4 != 4 {
            return Err(D_ICMP_BAD);
        }
        let qihl = usize::from(q[0] & 0x0f) * 4;
        if qihl < 20 || q.len() < qihl + 8 {
            return Err(D_ICMP_BAD);
        }
        if checksum::checksum(&q[..qihl]) != 0 {
            return Err(D_ICMP_BAD);
        }
        Ok((inner, qihl, q[9]))
    }

    /// An ICMP error from inside about a packet an outside host sent to an inside host: the
    /// quoted destination goes back to the outside endpoint, and the error's source becomes
    /// that outside address (RFC 5508 REQ-5). No session is created or refreshed.
    fn icmp_error_out(&mut self, m: &mut Mbuf, l3: usize, _in_if: u16) -> Result<Next, u8> {
        let outside = self.conf.outside;
        let d = m.data_mut();
        let ip = &mut d[l3..];
        let tot = usize::from(be16(ip, 2));
        let ip = &mut ip[..tot];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let (qo, qihl, qproto) = Self::icmp_error_check(ip)?;
        let q = &ip[qo..];
        let (qdst, qdp) = match qproto {
            TCP | UDP => (be32(q, 16), be16(q, qihl + 2)),
            ICMP => (be32(q, 16), be16(q, qihl + 4)),
            _ => return Err(D_ICMP_ERR_NO_MAPPING),
        };
        let id = self
            .t
            .find_in(key(qproto, qdst, qdp))
            .ok_or(D_ICMP_ERR_NO_MAPPING)?;
        let s = self.t.s[id as usize];
        rewrite_quoted(&mut ip[qo..], qihl, qproto, false, s.ext_addr, s.ext_port);
        set_addr(ip, 12, s.ext_addr);
        fix_icmp(ip, ihl);
        self.stats.icmp_errors_out += 1;
        let outer_dst = be32(ip, 16);
        if self.conf.is_outside_addr(outer_dst) {
            // Hairpinned error (RFC 5508 REQ-7): now translate it as if it came in, on the
            // worker owning the mapping it quotes.
            if self.workers > 1 {
                let q = &ip[qo..];
                let qsp = match qproto {
                    ICMP => be16(q, qihl + 4),
                    _ => be16(q, qihl),
                };
                let w = ext_owner(&self.conf, qproto, be32(q, 12), qsp, self.workers);
                if w != self.worker {
                    self.stats.hairpins_handed_over += 1;
                    return Ok(Next::handoff(w as u16));
                }
            }
            return self.icmp_error_in(m, l3);
        }
        m.set_egress(outside);
        Ok(Next::CONTINUE)
    }

    /// An ICMP error from outside about a packet an inside host sent: the quoted source goes
    /// back to the inside endpoint, and so does the error's destination (RFC 5508 REQ-4).
    fn icmp_error_in(&mut self, m: &mut Mbuf, l3: usize) -> Result<Next, u8> {
        let d = m.data_mut();
        let ip = &mut d[l3..];
        let tot = usize::from(be16(ip, 2));
        let ip = &mut ip[..tot];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let (qo, qihl, qproto) = Self::icmp_error_check(ip)?;
        let q = &ip[qo..];
        let (qsrc, qsp) = match qproto {
            TCP | UDP => (be32(q, 12), be16(q, qihl)),
            ICMP => (be32(q, 12), be16(q, qihl + 4)),
            _ => return Err(D_ICMP_ERR_NO_MAPPING),
        };
        if be32(ip, 16) != qsrc {
            return Err(D_ICMP_ERR_NO_MAPPING);
        }
        let id = self
            .t
            .find_ext(key(qproto, qsrc, qsp))
            .ok_or(D_ICMP_ERR_NO_MAPPING)?;
        let s = self.t.s[id as usize];
        rewrite_quoted(&mut ip[qo..], qihl, qproto, true, s.in_addr, s.in_port);
        set_addr(ip, 16, s.in_addr);
        fix_icmp(ip, ihl);
        self.stats.icmp_errors_in += 1;
        m.set_egress(s.in_if);
        Ok(Next::CONTINUE)
    }

    fn frag_slot(src: u32, dst: u32, proto: u8, id: u16) -> usize {
        let h = hash32(src ^ dst.rotate_left(7) ^ (u32::from(id) << 8) ^ u32::from(proto));
        h as usize % FRAG_SLOTS
    }

    /// Records where the rest of a datagram goes: to inside `(in_addr, in_if)` here, or to
    /// worker `owner` if that is not this one.
    #[allow(clippy::too_many_arguments)]
    fn frag_record(
        &mut self,
        src: u32,
        dst: u32,
        proto: u8,
        id: u16,
        in_addr: u32,
        in_if: u16,
        owner: usize,
    ) {
        let i = Self::frag_slot(src, dst, proto, id);
        self.frags[i] = FragState {
            src,
            dst,
            id,
            proto,
            live: true,
            in_addr,
            in_if,
            owner: owner as u16,
            deadline: self.now.saturating_add(FRAG_HOLD_SECS),
        };
    }

    /// `(inside address, inside port, owning worker)` for a fragment of a datagram whose first
    /// fragment was seen.
    fn frag_lookup(&self, src: u32, dst: u32, proto: u8, id: u16) -> Option<(u32, u16, usize)> {
        let f = &self.frags[Self::frag_slot(src, dst, proto, id)];
        (f.live
            && f.src == src
            && f.dst == dst
            && f.id == id
            && f.proto == proto
            && f.deadline >= self.now)
            .then_some((f.in_addr, f.in_if, usize::from(f.owner)))
    }
}

/// Sets the IPv4 address at `off` (12 source, 16 destination), patching the header checksum.
#[inline]
fn set_addr(ip: &mut [u8], off: usize, new: u32) -> u32 {
    let old = be32(ip, off);
    put32(ip, off, new);
    let c = update32(be16(ip, 10), old, new);
    put16(ip, 10, c);
    old
}

/// Rewrites source (`src`) or destination address and port of an IPv4 packet whose header is
/// `ihl` bytes, patching every checksum incrementally (RFC 1624). The L4 header was checked
/// long enough by the caller; a first fragment's checksum covers the whole datagram and is
/// patched the same way.
#[inline]
fn rewrite(ip: &mut [u8], ihl: usize, proto: u8, src: bool, addr: u32, port: u16) {
    let aoff = if src { 12 } else { 16 };
    let old_addr = set_addr(ip, aoff, addr);
    let l4 = &mut ip[ihl..];
    match proto {
        TCP => {
            let poff = if src { 0 } else { 2 };
            let old_port = be16(l4, poff);
            put16(l4, poff, port);
            let c = update16(update32(be16(l4, 16), old_addr, addr), old_port, port);
            put16(l4, 16, c);
        }
        UDP => {
            let poff = if src { 0 } else { 2 };
            let old_port = be16(l4, poff);
            put16(l4, poff, port);
            let c = udp_update16(udp_update32(be16(l4, 6), old_addr, addr), old_port, port);
            put16(l4, 6, c);
        }
        _ => {
            let old = be16(l4, 4);
            put16(l4, 4, port);
            let c = update16(be16(l4, 2), old, port);
            put16(l4, 2, c);
        }
    }
}

/// Rewrites the quoted packet of an ICMP error: its source (`src`) or destination address and
/// port or identifier, and its IP checksum and, when quoted, its transport checksum.
fn rewrite_quoted(q: &mut [u8], qihl: usize, proto: u8, src: bool, addr: u32, port: u16) {
    let aoff = if src { 12 } else { 16 };
    let old_addr = set_addr(q, aoff, addr);
    let l4 = &mut q[qihl..];
    match proto {
        TCP | UDP => {
            let poff = if src { 0 } else { 2 };
            let old_port = be16(l4, poff);
            put16(l4, poff, port);
            if proto == TCP && l4.len() >= 18 {
                let c = update16(update32(be16(l4, 16), old_addr, addr), old_port, port);
                put16(l4, 16, c);
            } else if proto == UDP {
                let c = udp_update16(udp_update32(be16(l4, 6), old_addr, addr), old_port, port);
                put16(l4, 6, c);
            }
        }
        _ => {
            let old = be16(l4, 4);
            put16(l4, 4, port);
            let c = update16(be16(l4, 2), old, port);
            put16(l4, 2, c);
        }
    }
}

/// Recomputes the checksum of the ICMP message after a `ihl`-byte IP header.
fn fix_icmp(ip: &mut [u8], ihl: usize) {
    let icmp = &mut ip[ihl..];
    put16(icmp, 2, 0);
    let c = checksum::checksum(icmp);
    put16(icmp, 2, c);
}

impl Stage for Nat44 {
    fn name(&self) -> &str {
        "nat44"
    }

    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        self.now = (ctx.now / 1_000_000_000) as u32;
        self.t.sync_empty(self.now);
        if !self.warm {
            for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
                *n = self.packet(ctx, m);
            }
            return;
        }
        let mut keys = [WARM_NONE; WARM];
        let mut l3s = [0u16; WARM];
        for (pc, nc) in pkts.chunks_mut(WARM).zip(nexts.chunks_mut(WARM)) {
            let mut drawn = 0u64;
            // Load every packet's index slot and entry first, so the misses overlap.
            let keys = &mut keys[..pc.len()];
            let mut inside = 0u64;
            for (i, ((k, h), m)) in keys
                .iter_mut()
                .zip(l3s.iter_mut())
                .zip(pc.iter())
                .enumerate()
            {
                (*k, *h) = self.warm_key(m);
                inside |= u64::from(*k & WARM_EXT == 0) << i;
            }
            let mut fresh = self.t.warm(keys);
            // Walk the probe runs `warm` loaded: each packet's session found now saves its own
            // lookup; an inside key found nowhere there is likely new all the same.
            let mut found = [0u32; WARM];
            fresh |= self.t.probe(keys, !fresh, &mut found) & inside;
            if fresh != 0 {
                // Likely new mappings from inside: their subscriber entries too.
                let mut subs = [0u32; WARM];
                let mut n = 0;
                for (i, &k) in keys.iter().enumerate() {
                    if fresh >> i & 1 != 0 && k & WARM_EXT == 0 {
                        subs[n] = (k >> 16) as u32;
                        n += 1;
                    }
                }
                self.subs.warm(&subs[..n]);
                if !self.conf.sequential {
                    // Their first random outside ports, and the lines probing them reads.
                    drawn = self.warm_ports(keys, fresh);
                }
            }
            if drawn == 0 {
                for (((m, n), &f), &h) in pc.iter_mut().zip(nc.iter_mut()).zip(&found).zip(&l3s) {
                    self.found = f;
                    self.l3_hint = h;
                    *n = self.packet(ctx, m);
                }
                self.found = 0;
                self.l3_hint = 0;
                continue;
            }
            for (i, (m, n)) in pc.iter_mut().zip(nc.iter_mut()).enumerate() {
                self.pre = (drawn >> i & 1 != 0).then(|| self.ahead[i]);
                self.found = found[i];
                self.l3_hint = l3s[i];
                *n = self.packet(ctx, m);
            }
            self.pre = None;
            self.found = 0;
            self.l3_hint = 0;
        }
    }

    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        // Fragments waiting for their first fragment, or unsolicited SYNs (RFC 5382 REQ-4).
        let fragment = parse(m.data()).is_ok_and(|p| p.is_fragment && !p.first_fragment);
        let (list, secs) = if fragment {
            (&mut self.held, FRAG_HOLD_SECS)
        } else {
            (&mut self.syns, SYN_HOLD_SECS)
        };
        if list.len() >= MAX_HELD {
            return Err(m);
        }
        list.push(Held {
            m,
            deadline: self.now.saturating_add(secs),
        });
        if fragment {
            self.stats.fragments_held += 1;
        }
        Ok(())
    }

    fn held(&self) -> usize {
        self.held.len() + self.syns.len()
    }

    fn poll(&mut self, ctx: &mut Ctx) {
        self.now = (ctx.now / 1_000_000_000) as u32;
        let now = self.now;
        // Expire sessions, a bounded batch at a time.
        let mut expired = [0u32; 256];
        loop {
            let n = self.t.expired(now, &mut expired);
            for &id in &expired[..n] {
                self.expire(id);
            }
            if n < expired.len() {
                break;
            }
        }
        self.poll_syns(ctx);
        // Release or give up held fragments.
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            let d = h.m.data();
            let found = parse(d).ok().and_then(|p| {
                let ip = &d[usize::from(p.l3_offset)..];
                self.frag_lookup(be32(ip, 12), be32(ip, 16), ip[9], be16(ip, 4))
                    .map(|r| (r, usize::from(p.l3_offset)))
            });
            if let Some(((a, inif, owner), l3)) = found {
                if ctx.emit_room() == 0 {
                    break;
                }
                let mut h = self.held.swap_remove(i);
                if owner != self.worker {
                    if h.m.handed_over() {
                        ctx.drop_held(h.m, D_FRAG_NO_STATE);
                    } else {
                        // Its datagram went to the worker owning the mapping.
                        self.stats.fragments_handed_over += 1;
                        ctx.handoff(h.m, owner as u16);
                    }
                    continue;
                }
                set_addr(&mut h.m.data_mut()[l3..], 16, a);
                h.m.set_egress(inif);
                self.stats.fragments_released += 1;
                self.stats.fragments_translated += 1;
                ctx.emit(h.m);
            } else if h.deadline < now {
                let h = self.held.swap_remove(i);
                ctx.drop_held(h.m, D_FRAG_TIMEOUT);
            } else {
                i += 1;
            }
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        self.poll(ctx);
        while let Some(h) = self.held.pop() {
            ctx.drop_held(h.m, D_FRAG_NO_STATE);
        }
        while let Some(h) = self.syns.pop() {
            ctx.drop_held(h.m, D_UNSOL_SYN);
        }
        // Shutdown only: give the logger up to a second to write this worker's records.
        if let Some(l) = &self.log {
            let r = &l.rings[self.worker.min(l.rings.len() - 1)];
            for _ in 0..200 {
                if r.is_drained() || l.failed() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    fn drop_reasons(&self) -> &[&'static str] {
        DROP_REASONS
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let s = &self.stats;
        let mut v = Vec::new();
        for (i, p) in PROTO_NAMES.iter().enumerate() {
            v.push((format!("sessions_created_{p}"), s.created[i]));
            v.push((format!("sessions_expired_{p}"), s.expired[i]));
            v.push((format!("sessions_active_{p}"), s.active[i]));
        }
        v.push(("subscribers".into(), self.subs.len() as u64));
        v.push(("translated_out".into(), s.translated_out));
        v.push(("translated_in".into(), s.translated_in));
        v.push(("hairpinned".into(), s.hairpinned));
        v.push(("hairpins_handed_over".into(), s.hairpins_handed_over));
        v.push(("fragments_handed_over".into(), s.fragments_handed_over));
        v.push(("icmp_errors_out".into(), s.icmp_errors_out));
        v.push(("icmp_errors_in".into(), s.icmp_errors_in));
        v.push(("icmp_prohibited_sent".into(), s.icmp_prohibited_sent));
        v.push(("icmp_prohibited_limited".into(), s.icmp_prohibited_limited));
        v.push(("icmp_port_unreach_sent".into(), s.icmp_port_unreach_sent));
        v.push(("passed_through".into(), s.passed_through));
        v.push(("fragments_translated".into(), s.fragments_translated));
        v.push(("fragments_held".into(), s.fragments_held));
        v.push(("fragments_released".into(), s.fragments_released));
        if self.log.is_some() {
            v.push(("log_lost".into(), s.log_lost));
        }
        for (i, &a) in self.conf.pool.iter().enumerate() {
            let u = self.used[i];
            if u != [0; 3] {
                let a = std::net::Ipv4Addr::from(a);
                for (j, p) in PROTO_NAMES.iter().enumerate() {
                    v.push((format!("pool_{a}_{p}_ports"), u64::from(u[j])));
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ports drawn ahead for a chunk (as `process` does) obey what the allocation promises:
    /// the class of the inside port, this worker's blocks, the subscriber's paired address, no
    /// outside endpoint twice.
    #[test]
    fn ports_drawn_ahead_keep_class_partition_pairing_and_uniqueness() {
        let pool = [0xc633_6400, 0xc633_6401];
        for workers in [1usize, 3] {
            for worker in 0..workers {
                let mut conf = NatConf::new(&[0], 1, &pool);
                conf.ports = (500, 65535);
                conf.capacity = 1 << 13;
                let mut n = Nat44::new(Arc::new(conf), worker, workers, vec![[0; 6]; 2]);
                let mut seen = HashSet::new();
                let mut made = 0;
                for round in 0..50u32 {
                    let keys: Vec<u64> = (0..64u32)
                        .map(|i| {
                            let j = round * 64 + i;
                            let sp = if i % 16 == 0 {
                                600 + j as u16 % 300
                            } else {
                                5000 + j as u16
                            };
                            key(UDP, 0x0a00_0000 + j % 97, sp)
                        })
                        .collect();
                    assert_eq!(n.warm_ports(&keys, u64::MAX), u64::MAX);
                    for (i, &k) in keys.iter().enumerate() {
                        n.pre = Some(n.ahead[i]);
                        let (src, sp) = ((k >> 16) as u32, k as u16);
                        if n.t.find_in(k).is_some() {
                            continue;
                        }
                        let id = n.create_out(UDP, src, sp, 0).unwrap();
                        assert!(n.pre.is_none(), "the draws made ahead are taken");
                        let s = n.t.s[id as usize];
                        assert_eq!(port_worker(s.ext_port, workers), worker);
                        assert_eq!(s.ext_port < 1024, sp < 1024, "class of {sp}");
                        assert!(s.ext_port >= 500);
                        assert!(seen.insert((s.ext_addr, s.ext_port)));
                        let sub = n.subs.find(src).unwrap() as usize;
                        assert_eq!(pool[n.subs.e[sub][1] as usize], s.ext_addr);
                        made += 1;
                    }
                }
                assert!(made > 3000, "{made}");
            }
        }
    }
}
