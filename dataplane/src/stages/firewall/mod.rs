//! Stateful firewall: multi-field classification, connection tracking, fragments.
//!
//! The first stage of a chain. Per burst it works in three passes, like a VPP node:
//!
//! 1. **Inspect** each packet: parse, fragment bookkeeping ([`frag`]), the fields the rules
//!    match on ([`rules::PacketKey`]), and connection tracking ([`conntrack`]): a packet of a
//!    tracked connection whose direction already has a verdict for the current rule
//!    generation takes it from the flow cache and is done here, skipping classification.
//!    It runs in chunks of 32 packets: all their headers are read first, then their
//!    connection-table hashes are computed and their buckets and entries touched at once
//!    ([`conntrack::Table::prefetch`]), so a burst's cache misses overlap; then each packet
//!    is tracked in order. A fragment keeps its exact place: the chunk's packets before it
//!    go through first, then it is inspected and tracked alone.
//! 2. **Classify** the rest, the whole burst at once, per family ([`classifier`]).
//! 3. **Act**: accept (and start tracking a new connection), drop, or reject (a TCP RST or
//!    an ICMP administratively-prohibited unreachable, built with `ctx.alloc()` and sent back
//!    out of the input port with `ctx.emit()`, rate-limited per worker); count the packet and
//!    its bytes on the rule that decided; record a first fragment's verdict for the rest of
//!    its datagram and release the fragments held waiting for it.
//!
//! Policy semantics, in short: rules are ordered and the first match wins; no match means the
//! default policy. The connection state a rule sees is `new` for packets that may open a
//! connection (a TCP SYN, any UDP datagram, an ICMP echo request) and for the originator's
//! packets before any reply; `established` once the connection has seen both directions;
//! `related` for an ICMP error quoting a tracked connection; `invalid` for what does not fit
//! (a TCP packet of no known connection other than a SYN, an echo reply without a request, an
//! out-of-window segment, an ICMP error about nothing tracked). Connections are tracked only
//! once accepted. With `conntrack = false` every packet is `new` and nothing is tracked.
//!
//! The flow cache: the first `established` packet of each direction is classified as usual
//! and its verdict is stored on the connection with the rule generation; later packets of that
//! direction reuse it until the rules change. Rules that look at per-packet fields (TCP flags)
//! of established traffic therefore see only that first packet: put such rules on `new`.
//!
//! Non-IP frames (ARP) are not the firewall's business and carry on untouched (counted).
//! IP packets whose headers do not parse are dropped as `malformed`.
//!
//! The rule text format is described in [`rules`]. Configuration:
//!
//! ```toml
//! [[stage]]
//! kind = "firewall"
//! rules = "policy.rules"        # relative to the configuration file
//! format = "rules"              # or "classbench"
//! inline = ["ct established,related accept"]  # rules written here (before the file's)
//! default = "drop"              # or "accept" (the default)
//! conntrack = true
//! conntrack_capacity = 65536    # connections per worker
//! early_drop = false            # when full, evict a never-replied connection for a new one
//! timeouts = { tcp_established = 432000, udp = 30 }   # seconds, per state
//! fragment_capacity = 1024      # datagrams tracked per worker
//! fragment_timeout_ms = 30000   # lifetime of a datagram's record
//! fragment_hold_ms = 1000       # longest a fragment waits for its first fragment
//! max_held = 256                # fragments held per worker
//! reject_rate = 100             # rejects sent per second per worker
//! release = { lan = "wan" }     # optional: egress port set on released held fragments
//! ```
//!
//! A held fragment, once its first fragment is accepted, goes back into the chain with
//! `Ctx::resume`: it continues at the next stage with the burst being processed, so NAT and
//! the router see it like any other packet (it is never sent out untranslated). `release`, if
//! given, also sets its egress port (a chain whose later stages set none).
//!
//! # Notes on the engine API
//!
//! * `Stage::hold` is not given the clock; the stage keeps the `now` of the last burst (and
//!   prefers the packet's timestamp when it is on that clock).
//! * The worker's symmetric hash gives every fragment ports 0, so all fragments of a datagram
//!   meet on one worker, but a first fragment's connection lives on the worker of its 5-tuple.
//!   Where the flow hash alone places packets (`Ctx::flow_placer`: several run-to-completion
//!   workers behind the I/O thread, no steering stage), a first fragment that meets on another
//!   worker than its connection's is handed there ([`frag::Verdict::Forward`]) and tracked
//!   and classified there; the rest of its datagram follows it (counted as
//!   `fragments_forwarded`), and the connection's worker applies the verdict to them as usual.
//!   Where workers own their queues, the device's hash places fragments, and a stage cannot
//!   tell where their connection lives; so this stage, tracking connections, makes ports with
//!   several queues spread packets by addresses only ([`StageSpec::fragments_follow_flows`],
//!   `spread = "hosts"`), which keeps a connection's fragments on its worker.
//!
//! # Costs
//!
//! Classifier alone, ClassBench NSLab sets with their own traces, bursts of 32, release build,
//! one core of the shared 2-vCPU VM (other engineers' builds running, load average about 4;
//! repeated runs vary by up to 2x), `cargo test --release -p dataplane --test
//! firewall_classbench -- --ignored --nocapture`, beside `dpdk-test-acl` (DPDK 22.11, median
//! of 3 runs of `/work/shared/peers/acl_run.py` on the same rules and traces, minutes apart;
//! AVX-512 is not available on this CPU), 2026-11-22, in M classifications/s:
//!
//! | set | rules | tables | firewall | rte_acl sse | rte_acl avx2 | rte_acl memory |
//! |---|---|---|---|---|---|---|
//! | acl1_1K | 917 | 18 | 7.9 | 13.3 | 8.4 | 0.9 MB |
//! | fw1_1K | 792 | 15 | 7.7 | 12.6 | 12.9 | 5.9 MB |
//! | ipc1_1K | 938 | 24 | 4.7 | 8.0 | 28.2 | 4.7 MB |
//! | acl1_10K | 9603 | 19 | 5.9 | 6.8 | 4.4 | 16.8 MB |
//! | fw1_10K | 9311 | 16 | 8.6 | 2.2 | 3.5 | 91.7 MB |
//! | ipc1_10K | 9037 | 35 | 3.0 | 3.5 | 3.2 | 80.0 MB |
//!
//! Deleting and re-adding one rule at 10K: 5-230 µs (the table it lives in is copied);
//! rte_acl rebuilds in 1-5 s of wall time for these sets. New tables key on the two prefix
//! lengths only (rounded down to a multiple of 4), and a bucket that collects more than 8 rules
//! sends the newcomer to a table keyed on its own tuple (with exact protocol and destination
//! port): that halved the tables (acl1_10K 45 -> 19) and doubled the rate on most sets.
//!
//! Since 2026-12-07 IPv4 rules are classified by decision trees ([`tree`]; the tuple space
//! above keeps IPv6): `bench firewall --no-peer`, cycles per classification at bursts of 32,
//! tuple space then trees: acl1_1K 277 -> 105, fw1_1K 273 -> 150, ipc1_1K 433 -> 92,
//! acl1_10K 370 -> 135, fw1_10K 229 -> 200, ipc1_10K 730 -> 172 (rte_acl avx512x32: 37, 73,
//! 42, 72, 128, 137); a single-rule add or delete at 10K rules takes 1.5-3 µs (median).

pub mod classifier;
pub mod conntrack;
pub mod frag;
pub mod rules;
pub mod tree;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::Arc;

use pmd::mbuf::NO_EGRESS;
use pmd::Mbuf;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{BuildEnv, ConfigError, PortConfig, StageSpec, StageTable};
use crate::stage::{Ctx, FlowPlacer, Next, Stage};
use crate::wire::icmp::{icmpv4_type, icmpv6_type};
use crate::wire::{
    ip_proto, parse, FlowKey, Icmpv4Packet, Icmpv6Packet, Ipv4Packet, TcpPacket, L3,
};

use classifier::{Hit, Reader, RuleSet};
use conntrack::{Cached, State, TcpInfo, Timeouts, Track};
use frag::{FragError, FragKey, Frags, Verdict};
use rules::{ct, Action, PacketKey, Rule};

/// The stage's drop reasons, in [`Stage::drop_reasons`] order.
pub mod reason {
    /// IP headers that do not parse (or an L4 header too short for its fields).
    pub const MALFORMED: u8 = 0;
    /// A `drop` rule matched.
    pub const RULE_DROP: u8 = 1;
    /// A `reject` rule matched (the packet is dropped; an answer may be sent).
    pub const RULE_REJECT: u8 = 2;
    /// No rule matched and the default policy is drop.
    pub const DEFAULT_DROP: u8 = 3;
    /// A new connection found the table full.
    pub const CT_TABLE_FULL: u8 = 4;
    /// A fragment overlapping an earlier one, or of a datagram that did.
    pub const FRAGMENT_OVERLAP: u8 = 5;
    /// A first fragment too small for the transport header, or a TCP fragment at offset 8.
    pub const FRAGMENT_TINY: u8 = 6;
    /// A fragment held too long without its first fragment.
    pub const FRAGMENT_TIMEOUT: u8 = 7;
    /// No room to record another fragmented datagram.
    pub const FRAGMENT_TABLE_FULL: u8 = 8;
    /// A fragment of a datagram whose first fragment was dropped.
    pub const FRAGMENT_DENIED: u8 = 9;
    /// No room to hold another early fragment.
    pub const FRAGMENT_HOLD_FULL: u8 = 10;
    /// Held at shutdown.
    pub const FRAGMENT_FLUSHED: u8 = 11;
}

const DROP_NAMES: &[&str] = &[
    "malformed",
    "rule_drop",
    "rule_reject",
    "default_drop",
    "ct_table_full",
    "fragment_overlap",
    "fragment_tiny",
    "fragment_timeout",
    "fragment_table_full",
    "fragment_denied",
    "fragment_hold_full",
    "fragment_flushed",
];

/// Rule id standing for the default policy.
pub const DEFAULT_RULE: u32 = u32::MAX;

const BURST: usize = pmd::BURST_MAX;
/// Packets whose headers are read, hashed and whose connections are touched before any of
/// them is tracked.
const CHUNK: usize = 32;
const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// Settings the stage is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Policy when no rule matches (`Accept` or `Drop`).
    pub default: Action,
    /// Track connections.
    pub conntrack: bool,
    /// Connections per worker.
    pub conntrack_capacity: usize,
    /// Evict a never-replied connection when full.
    pub early_drop: bool,
    /// Timeouts per state.
    pub timeouts: Timeouts,
    /// Datagrams tracked per worker.
    pub fragment_capacity: usize,
    /// Lifetime of a datagram record (ns).
    pub fragment_timeout: u64,
    /// Longest hold of an early fragment (ns).
    pub fragment_hold: u64,
    /// Fragments held per worker.
    pub max_held: usize,
    /// Rejects per second per worker.
    pub reject_rate: u64,
    /// Egress of released held fragments, by input port.
    pub release: Vec<(u16, u16)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default: Action::Accept,
            conntrack: true,
            conntrack_capacity: 65536,
            early_drop: false,
            timeouts: Timeouts::default(),
            fragment_capacity: 1024,
            fragment_timeout: 30_000_000_000,
            fragment_hold: 1_000_000_000,
            max_held: 256,
            reject_rate: 100,
            release: Vec::new(),
        }
    }
}

/// Where a packet is in the burst's three passes.
#[derive(Debug, Clone, Copy, Default)]
struct Info {
    key: PacketKey,
    flow: FlowKey,
    tcp: Option<TcpInfo>,
    conn: Option<(u32, usize)>,
    create: Option<State>,
    frag_slot: Option<u32>,
    /// For an ICMP error: the key of the packet it quotes (`None` inside: unreadable).
    quoted: Option<Option<FlowKey>>,
    /// ICMP echo: request (true) or reply.
    echo: Option<bool>,
    l3: u16,
    len: u32,
}

/// Per-worker counters that are not drops.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    classified: u64,
    cache_hits: u64,
    non_ip: u64,
    rejects_sent: u64,
    rejects_limited: u64,
    fragments_released: u64,
    fragments_forwarded: u64,
    default_packets: u64,
    default_bytes: u64,
}

/// The firewall stage (one per worker).
pub struct Firewall {
    reader: Reader,
    set: Arc<RuleSet>,
    s: Settings,
    ct: Option<conntrack::Table>,
    frags: Frags,
    /// Packets and bytes per rule id.
    rule_counts: Vec<[u64; 2]>,
    info: Vec<Info>,
    keys: Vec<PacketKey>,
    hits: Vec<Option<Hit>>,
    todo4: Vec<u16>,
    todo6: Vec<u16>,
    classify: Vec<u16>,
    /// Packets of this burst waiting to open a connection: (flow hash, index).
    pending: Vec<(u32, u16)>,
    release: [u16; 64],
    credit: u64,
    credit_at: u64,
    /// `now` of the last burst (for `hold`, which is not given the clock).
    last_now: u64,
    /// This burst's worker, and where the flow hash places flows (see `inspect`).
    worker: usize,
    placer: Option<FlowPlacer>,
    /// Datagrams whose first fragment this burst handed to another worker: their held
    /// fragments follow it there.
    forwarded: Vec<u32>,
    stats: Stats,
}

impl Firewall {
    /// A firewall over `set` (shared with the control side, which may change it live).
    pub fn new(set: Arc<RuleSet>, s: Settings) -> Firewall {
        let mut release = [NO_EGRESS; 64];
        for &(a, b) in &s.release {
            if let Some(r) = release.get_mut(a as usize) {
                *r = b;
            }
        }
        let reader = set.reader();
        let bound = set.snapshot().id_bound as usize;
        Firewall {
            ct: s
                .conntrack
                .then(|| conntrack::Table::new(s.conntrack_capacity, s.timeouts, s.early_drop)),
            frags: Frags::new(
                s.fragment_capacity,
                s.max_held,
                s.fragment_timeout,
                s.fragment_hold,
            ),
            rule_counts: vec![[0; 2]; bound],
            info: vec![Info::default(); BURST],
            keys: vec![PacketKey::default(); BURST],
            hits: vec![None; BURST],
            todo4: Vec::with_capacity(BURST),
            todo6: Vec::with_capacity(BURST),
            classify: Vec::with_capacity(BURST),
            pending: Vec::with_capacity(BURST),
            release,
            credit: s.reject_rate.max(1).saturating_mul(1_000_000_000),
            credit_at: 0,
            last_now: 0,
            worker: 0,
            placer: None,
            forwarded: Vec::with_capacity(BURST),
            stats: Stats::default(),
            reader,
            set,
            s,
        }
    }

    /// The rule set this stage classifies against.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// Connections tracked now.
    pub fn connections(&self) -> usize {
        self.ct.as_ref().map_or(0, |t| t.len())
    }

    /// This worker's connection table (`None` with `conntrack = false`), read-only: for
    /// reports and benchmarks (its size, capacity, [`conntrack::Table::memory_bytes`]).
    pub fn conntrack(&self) -> Option<&conntrack::Table> {
        self.ct.as_ref()
    }

    fn count_rule(&mut self, id: u32, len: u32) {
        if id == DEFAULT_RULE {
            self.stats.default_packets += 1;
            self.stats.default_bytes += u64::from(len);
        } else if let Some(c) = self.rule_counts.get_mut(id as usize) {
            c[0] += 1;
            c[1] += u64::from(len);
        }
    }

    fn reject_allowed(&mut self, now: u64) -> bool {
        let rate = self.s.reject_rate;
        let cap = rate.max(1).saturating_mul(1_000_000_000);
        let dt = now.saturating_sub(self.credit_at);
        self.credit_at = self.credit_at.max(now);
        self.credit = self.credit.saturating_add(dt.saturating_mul(rate)).min(cap);
        if self.credit >= 1_000_000_000 {
            self.credit -= 1_000_000_000;
            true
        } else {
            false
        }
    }

    fn release_held(&mut self, ctx: &mut Ctx, slot: u32, v: Verdict) {
        let release = &self.release;
        let stats = &mut self.stats;
        self.frags.release(slot, |mut m| match v {
            Verdict::Accept => {
                let e = release.get(m.port() as usize).copied().unwrap_or(NO_EGRESS);
                if e != NO_EGRESS {
                    m.set_egress(e);
                }
                stats.fragments_released += 1;
                ctx.resume(m);
            }
            Verdict::Drop(code) => ctx.drop_held(m, code),
            Verdict::Pending => ctx.drop_held(m, reason::FRAGMENT_DENIED),
            Verdict::Forward(w) => {
                stats.fragments_forwarded += 1;
                ctx.handoff(m, w);
            }
        });
    }
}

/// Smallest first fragment that holds the transport fields the rules look at.
fn min_l4(proto: u8) -> u32 {
    match proto {
        ip_proto::TCP => 20,
        ip_proto::UDP | ip_proto::UDPLITE | ip_proto::ICMP | ip_proto::ICMPV6 | ip_proto::SCTP => 8,
        _ => 0,
    }
}

fn addr128(b: &[u8; 16], v6: bool) -> u128 {
    if v6 {
        u128::from_be_bytes(*b)
    } else {
        rules::v4([b[0], b[1], b[2], b[3]])
    }
}

/// The window-scale option of a SYN.
fn wscale(opts: &[u8]) -> Option<u8> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            k => {
                let l = *opts.get(i + 1)? as usize;
                if l < 2 {
                    return None;
                }
                if k == 3 && l == 3 {
                    return opts.get(i + 2).copied();
                }
                i += l;
            }
        }
    }
    None
}

/// What pass 1 decided for a packet.
enum First {
    /// Final: this next step.
    Done(Next),
    /// Classify it.
    Classify,
    /// A fragment, left alone for now (`defer_fragments`): nothing was recorded.
    Fragment,
}

impl Firewall {
    /// Pass 1, first half: headers, fragments and the fields the rules match on.
    ///
    /// With `defer_fragments` a fragment is left untouched (`First::Fragment`): up to that
    /// point the function only reads the packet and writes `info[i]`, so the packets before a
    /// fragment can be inspected ahead of their connection tracking.
    fn inspect(
        &mut self,
        i: usize,
        m: &Mbuf,
        pending_holds: &mut usize,
        now: u64,
        defer_fragments: bool,
    ) -> First {
        use reason::*;
        let frame = m.data();
        let Ok(p) = parse(frame) else {
            return First::Done(Next::stage_drop(MALFORMED));
        };
        if !p.is_ip() {
            self.stats.non_ip += 1;
            return First::Done(Next::CONTINUE);
        }
        let l3 = usize::from(p.l3_offset);
        let l4 = usize::from(p.l4_offset);
        let v6 = p.l3 == L3::Ipv6;
        let ip = &frame[l3..];
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        let (l3_end, id, off) = if v6 {
            if ip.len() < 40 {
                return First::Done(Next::stage_drop(MALFORMED));
            }
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            let end = l3 + 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let fi = if p.is_fragment {
                crate::wire::walk_ext(ip.get(40..end - l3).unwrap_or(&[]), ip[6])
                    .ok()
                    .and_then(|(_, _, f)| f)
            } else {
                None
            };
            (
                end,
                fi.map_or(0, |f| f.identification),
                fi.map_or(0, |f| u32::from(f.offset_bytes())),
            )
        } else {
            let h = Ipv4Packet::new_unchecked(ip);
            if ip.len() < 20 {
                return First::Done(Next::stage_drop(MALFORMED));
            }
            src[..4].copy_from_slice(&ip[12..16]);
            dst[..4].copy_from_slice(&ip[16..20]);
            (
                l3 + usize::from(h.total_len()),
                u32::from(h.ident()),
                u32::from(h.frag_offset_bytes()),
            )
        };
        let l3_end = l3_end.min(frame.len());
        let proto = p.l4_proto;
        let l4b = frame.get(l4..l3_end).unwrap_or(&[]);
        let info = &mut self.info[i];
        *info = Info {
            l3: p.l3_offset,
            len: m.len() as u32,
            ..Info::default()
        };
        info.key = PacketKey {
            src: addr128(&src, v6),
            dst: addr128(&dst, v6),
            proto,
            v6,
            in_port: m.port(),
            ct: ct::NEW,
            ..PacketKey::default()
        };

        // Fragments.
        if p.is_fragment {
            if defer_fragments {
                return First::Fragment;
            }
            let fk = FragKey {
                src,
                dst,
                id,
                proto,
                v6,
            };
            if !v6 && proto == ip_proto::TCP && off == 8 {
                return First::Done(Next::stage_drop(FRAGMENT_TINY));
            }
            let slot = match self.frags.note(&fk, off, off + l4b.len() as u32, now) {
                Ok(s) => s,
                Err(FragError::Full) => return First::Done(Next::stage_drop(FRAGMENT_TABLE_FULL)),
                Err(_) => return First::Done(Next::stage_drop(FRAGMENT_OVERLAP)),
            };
            if !p.first_fragment {
                return First::Done(match self.frags.verdict(slot) {
                    Verdict::Accept => Next::CONTINUE,
                    Verdict::Drop(_) => Next::stage_drop(FRAGMENT_DENIED),
                    Verdict::Forward(w) => {
                        self.stats.fragments_forwarded += 1;
                        Next::handoff(w)
                    }
                    Verdict::Pending => {
                        if self.frags.can_hold(*pending_holds) {
                            *pending_holds += 1;
                            self.info[i].frag_slot = Some(slot);
                            Next::HOLD
                        } else {
                            Next::stage_drop(FRAGMENT_HOLD_FULL)
                        }
                    }
                });
            }
            if (l4b.len() as u32) < min_l4(proto) {
                self.frags.set_verdict(slot, Verdict::Drop(FRAGMENT_DENIED));
                return First::Done(Next::stage_drop(FRAGMENT_TINY));
            }
            // The dispatch places every fragment of a datagram by addresses and protocol, but
            // the connection lives on the worker of its whole flow: a first fragment that met
            // here goes there to be tracked and classified, and the rest of its datagram after
            // it (held ones when this burst ends, later ones as they come). Without connection
            // tracking any worker classifies it the same.
            if !m.handed_over() && self.ct.is_some() {
                if let Some(w) = self.placer.and_then(|p| p.worker(frame)) {
                    if w != self.worker {
                        let w = w as u16;
                        self.frags.set_verdict(slot, Verdict::Forward(w));
                        if self.forwarded.len() < self.forwarded.capacity() {
                            self.forwarded.push(slot);
                        }
                        self.stats.fragments_forwarded += 1;
                        return First::Done(Next::handoff(w));
                    }
                }
            }
            self.info[i].frag_slot = Some(slot);
        }

        // Transport fields.
        let info = &mut self.info[i];
        let mut echo = None;
        match proto {
            ip_proto::TCP => {
                let Ok(t) = TcpPacket::new_checked(l4b) else {
                    return First::Done(Next::stage_drop(MALFORMED));
                };
                info.key.sport = t.src_port();
                info.key.dport = t.dst_port();
                info.key.has_ports = true;
                info.key.tcp_flags = t.flags();
                info.tcp = Some(TcpInfo {
                    seq: t.seq(),
                    ack: t.ack(),
                    flags: t.flags(),
                    win: t.window(),
                    payload: (l4b.len() - t.header_len()) as u32,
                    wscale: if t.syn() { wscale(t.options()) } else { None },
                    fragmented: p.is_fragment,
                });
            }
            ip_proto::UDP | ip_proto::UDPLITE | ip_proto::SCTP => {
                if l4b.len() < 4 {
                    return First::Done(Next::stage_drop(MALFORMED));
                }
                info.key.sport = u16::from_be_bytes([l4b[0], l4b[1]]);
                info.key.dport = u16::from_be_bytes([l4b[2], l4b[3]]);
                info.key.has_ports = true;
            }
            ip_proto::ICMP | ip_proto::ICMPV6 if (proto == ip_proto::ICMPV6) == v6 => {
                if l4b.len() < 8 {
                    return First::Done(Next::stage_drop(MALFORMED));
                }
                info.key.has_icmp = true;
                info.key.icmp_type = l4b[0];
                info.key.icmp_code = l4b[1];
                let id = u16::from_be_bytes([l4b[4], l4b[5]]);
                let (req, rep) = if v6 {
                    (icmpv6_type::ECHO_REQUEST, icmpv6_type::ECHO_REPLY)
                } else {
                    (icmpv4_type::ECHO_REQUEST, icmpv4_type::ECHO_REPLY)
                };
                if l4b[0] == req || l4b[0] == rep {
                    echo = Some((id, l4b[0] == req));
                }
            }
            _ => {}
        }
        let (sp, dp) = match echo {
            Some((id, _)) => (id, id),
            None => (info.key.sport, info.key.dport),
        };
        info.flow = FlowKey {
            src,
            dst,
            src_port: sp,
            dst_port: dp,
            proto,
            is_v6: v6,
        };

        let icmp_error = info.key.has_icmp
            && if v6 {
                icmpv6_type::is_error(info.key.icmp_type)
            } else {
                icmpv4_type::is_error(info.key.icmp_type)
            };
        if icmp_error {
            info.quoted = Some(FlowKey::from_icmp_error(frame, &p));
        }
        if let Some((_, req)) = echo {
            info.echo = Some(req);
        }
        First::Classify
    }

    /// Pass 1, second half: connection tracking (after the headers of packet `i` are read).
    fn inspect_ct(&mut self, i: usize, gen: u64, now: u64, hash: Option<u64>) -> First {
        use reason::*;
        let info = &mut self.info[i];
        let Some(table) = self.ct.as_mut() else {
            return First::Classify;
        };
        if let Some(q) = info.quoted {
            info.key.ct = match q.and_then(|q| table.lookup(&q)) {
                Some(_) => ct::RELATED,
                None => ct::INVALID,
            };
            return First::Classify;
        }
        let mut found = match hash {
            Some(h) => table.lookup_hashed(h, &info.flow),
            None => table.lookup(&info.flow),
        };
        if let Some((c, dir)) = found {
            match table.track(c, dir, info.tcp.as_ref(), now) {
                Track::Ok { established } => {
                    info.conn = Some((c, dir));
                    if established {
                        info.key.ct = ct::ESTABLISHED;
                        if let Some(v) = table.cached(c, dir) {
                            if v.gen == gen {
                                let next = match v.action {
                                    0 => Next::CONTINUE,
                                    _ if v.rule == DEFAULT_RULE => Next::stage_drop(DEFAULT_DROP),
                                    _ => Next::stage_drop(RULE_DROP),
                                };
                                self.stats.cache_hits += 1;
                                let len = info.len;
                                let slot = info.frag_slot;
                                self.count_rule(v.rule, len);
                                if let Some(s) = slot {
                                    self.frags.set_verdict(
                                        s,
                                        if v.action == 0 {
                                            Verdict::Accept
                                        } else {
                                            Verdict::Drop(FRAGMENT_DENIED)
                                        },
                                    );
                                    self.info[i].conn = None;
                                    return First::Classify;
                                }
                                return First::Done(next);
                            }
                        }
                    }
                    return First::Classify;
                }
                Track::Reopen => found = None,
                Track::Invalid => {
                    info.key.ct = ct::INVALID;
                    return First::Classify;
                }
            }
        }
        debug_assert!(found.is_none());
        info.key.ct = ct::NEW;
        match info.key.proto {
            ip_proto::TCP => {
                let f = info.tcp.map_or(0, |t| t.flags);
                if f & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN {
                    info.create = Some(State::SynSent);
                } else {
                    info.key.ct = ct::INVALID;
                }
            }
            _ if info.key.has_icmp => match info.echo {
                Some(true) => info.create = Some(State::Icmp),
                Some(false) => info.key.ct = ct::INVALID,
                None => {}
            },
            ip_proto::ICMP | ip_proto::ICMPV6 => {}
            _ => info.create = Some(State::Udp),
        }
        First::Classify
    }

    /// Builds a reject answer to `frame` into `out`: its length, and for IPv4 where its header
    /// starts (its IPv4 and TCP checksums are left to transmit, `Mbuf::request_tx_csum`; an
    /// ICMP checksum is filled here); `None` when the packet gets no answer (a RST, an ICMP
    /// error, no room). `orig`: the IPv4 destination and port
    /// the packet arrived with before a NAT earlier in the chain translated it
    /// ([`pmd::Mbuf::orig_dst`]): the answer comes from there, and quotes the packet as it was
    /// sent, so no inside address leaves by the outside port (as netfilter translates a
    /// REJECT's answer back through the connection's NAT).
    fn build_reject(
        frame: &[u8],
        info: &Info,
        orig: Option<(u32, u16)>,
        out: &mut [u8; 256],
    ) -> Option<(usize, Option<u16>)> {
        let l3 = usize::from(info.l3);
        let k = &info.key;
        if l3 + 60 > out.len() || frame.len() < l3 {
            return None;
        }
        out[..l3].copy_from_slice(&frame[..l3]);
        out[..6].copy_from_slice(&frame[6..12]);
        out[6..12].copy_from_slice(&frame[..6]);
        let (mut src, dst) = (info.flow.dst, info.flow.src);
        let orig = if k.v6 { None } else { orig };
        if let Some((a, _)) = orig {
            src[..4].copy_from_slice(&a.to_be_bytes());
        }
        let ip_len = if k.v6 { 40 } else { 20 };
        let l4 = l3 + ip_len;
        let total;
        if let Some(t) = info.tcp {
            if t.flags & TCP_RST != 0 {
                return None;
            }
            let seg = &mut out[l4..l4 + 20];
            seg.fill(0);
            seg[0..2].copy_from_slice(&orig.map_or(k.dport, |o| o.1).to_be_bytes());
            seg[2..4].copy_from_slice(&k.sport.to_be_bytes());
            let (seq, ack, flags) = if t.flags & TCP_ACK != 0 {
                (t.ack, 0, TCP_RST)
            } else {
                let n = t.payload
                    + u32::from(t.flags & TCP_SYN != 0)
                    + u32::from(t.flags & TCP_FIN != 0);
                (0, t.seq.wrapping_add(n), TCP_RST | TCP_ACK)
            };
            seg[4..8].copy_from_slice(&seq.to_be_bytes());
            seg[8..12].copy_from_slice(&ack.to_be_bytes());
            seg[12] = 5 << 4;
            seg[13] = flags;
            total = l4 + 20;
        } else {
            if k.has_icmp
                && (if k.v6 {
                    icmpv6_type::is_error(k.icmp_type)
                } else {
                    icmpv4_type::is_error(k.icmp_type)
                })
            {
                return None;
            }
            let quote_max = out.len() - l4 - 8;
            let q = &frame[l3..];
            let qlen = if k.v6 {
                q.len().min(quote_max)
            } else {
                let ihl = usize::from(q.first().map_or(5, |b| b & 0x0f)) * 4;
                q.len().min(ihl + 8).min(quote_max)
            };
            let msg = &mut out[l4..l4 + 8 + qlen];
            msg.fill(0);
            if k.v6 {
                msg[0] = icmpv6_type::DEST_UNREACH;
                msg[1] = crate::wire::icmp::icmpv6_code::ADMIN_PROHIBITED;
            } else {
                msg[0] = icmpv4_type::DEST_UNREACH;
                msg[1] = crate::wire::icmp::icmpv4_code::ADMIN_PROHIBITED;
            }
            msg[8..].copy_from_slice(&q[..qlen]);
            if let Some(o) = orig {
                Self::quote_as_sent(&mut msg[8..], k.proto, o);
            }
            total = l4 + 8 + qlen;
        }
        let payload = (total - l4) as u16;
        let proto = if info.tcp.is_some() {
            ip_proto::TCP
        } else if k.v6 {
            ip_proto::ICMPV6
        } else {
            ip_proto::ICMP
        };
        if k.v6 {
            let h = &mut out[l3..l4];
            h.fill(0);
            h[0] = 0x60;
            h[4..6].copy_from_slice(&payload.to_be_bytes());
            h[6] = proto;
            h[7] = 64;
            h[8..24].copy_from_slice(&src);
            h[24..40].copy_from_slice(&dst);
            let (s6, d6) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            if proto == ip_proto::TCP {
                TcpPacket::new_unchecked(&mut out[l4..total]).fill_checksum_v6(&s6, &d6);
            } else {
                Icmpv6Packet::new_unchecked(&mut out[l4..total]).fill_checksum(&s6, &d6);
            }
        } else {
            let h = &mut out[l3..l4];
            h.fill(0);
            h[0] = 0x45;
            h[2..4].copy_from_slice(&(payload + 20).to_be_bytes());
            h[8] = 64;
            h[9] = proto;
            h[12..16].copy_from_slice(&src[..4]);
            h[16..20].copy_from_slice(&dst[..4]);
            if proto != ip_proto::TCP {
                Icmpv4Packet::new_unchecked(&mut out[l4..total]).fill_checksum();
            }
        }
        // Zero padding up to the 60-byte Ethernet minimum.
        let padded = total.max(60);
        out[total..padded].fill(0);
        Some((padded, (!k.v6).then_some(l3 as u16)))
    }
}

impl Firewall {
    /// Puts back, in a quoted IPv4 packet `q`, the destination address and port (ICMP: query
    /// id) a NAT translated, with the checksums the quote holds (its IPv4 header's; UDP's and
    /// ICMP's when the 8 quoted bytes hold them) updated to match (RFC 1624).
    fn quote_as_sent(q: &mut [u8], proto: u8, (addr, port): (u32, u16)) {
        use crate::wire::checksum::{update16, update32};
        let ihl = usize::from(q.first().map_or(0, |b| b & 0x0f)) * 4;
        if ihl < 20 || q.len() < ihl {
            return;
        }
        let be16 = |q: &[u8], i: usize| u16::from_be_bytes([q[i], q[i + 1]]);
        let old = u32::from_be_bytes([q[16], q[17], q[18], q[19]]);
        q[16..20].copy_from_slice(&addr.to_be_bytes());
        let c = update32(be16(q, 10), old, addr);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        let l4 = &mut q[ihl..];
        match proto {
            ip_proto::TCP | ip_proto::UDP if l4.len() >= 4 => {
                let old_port = be16(l4, 2);
                l4[2..4].copy_from_slice(&port.to_be_bytes());
                if proto == ip_proto::UDP && l4.len() >= 8 && be16(l4, 6) != 0 {
                    let c = update16(update32(be16(l4, 6), old, addr), old_port, port);
                    l4[6..8].copy_from_slice(&c.to_be_bytes());
                }
            }
            ip_proto::ICMP if l4.len() >= 6 => {
                let old_id = be16(l4, 4);
                l4[4..6].copy_from_slice(&port.to_be_bytes());
                let c = update16(be16(l4, 2), old_id, port);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
            }
            _ => {}
        }
    }

    /// Pass 1 for packet `i`, whose headers are read: connection tracking (`hash`: its flow
    /// key's `symmetric_hash64`, when computed already), then the flow cache or the list to
    /// classify. A packet of a flow whose first packet is waiting in this burst to open a
    /// connection must see that connection: what is pending is classified first.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn track_one(
        &mut self,
        ctx: &mut Ctx,
        pkts: &[Mbuf],
        nexts: &mut [Next],
        i: usize,
        gen: u64,
        now: u64,
        hash: Option<u64>,
    ) {
        if !self.pending.is_empty() {
            let f = self.info[i].flow;
            let h = f.symmetric_hash();
            let q = self.info[i].quoted.flatten();
            let qh = q.map(|q| q.symmetric_hash());
            let dep = self.pending.iter().any(|&(ph, j)| {
                let g = self.info[j as usize].flow;
                (ph == h && (g == f || g == f.reversed()))
                    || (Some(ph) == qh && q.is_some_and(|q| g == q || g == q.reversed()))
            });
            if dep {
                self.finish(ctx, pkts, nexts, gen);
            }
        }
        match self.inspect_ct(i, gen, now, hash) {
            First::Done(next) => nexts[i] = next,
            _ => {
                self.keys[i] = self.info[i].key;
                self.classify.push(i as u16);
                if self.info[i].key.v6 {
                    self.todo6.push(i as u16);
                } else {
                    self.todo4.push(i as u16);
                }
                if self.info[i].create.is_some() {
                    let h = self.info[i].flow.symmetric_hash();
                    self.pending.push((h, i as u16));
                }
            }
        }
    }

    /// Passes 2 and 3 for the packets collected so far: classify them as a burst, then act.
    fn finish(&mut self, ctx: &mut Ctx, pkts: &[Mbuf], nexts: &mut [Next], gen: u64) {
        let now = ctx.now;
        self.pending.clear();
        if self.classify.is_empty() {
            return;
        }
        let n = pkts.len().min(BURST);
        {
            let snap = self.reader.get();
            snap.v4
                .classify_burst(&self.keys[..n], &mut self.todo4, &mut self.hits[..n]);
            snap.v6
                .classify_burst(&self.keys[..n], &mut self.todo6, &mut self.hits[..n]);
        }
        let mut buf = [0u8; 256];
        for c in 0..self.classify.len() {
            let i = self.classify[c] as usize;
            let info = self.info[i];
            self.stats.classified += 1;
            let (rule, mut action) = match self.hits[i] {
                Some(h) => (h.id, h.action),
                None => (DEFAULT_RULE, self.s.default),
            };
            if action == Action::Accept {
                if let (Some(state), Some(t)) = (info.create, self.ct.as_mut()) {
                    if t.create(&info.flow, state, info.tcp.as_ref(), now)
                        .is_none()
                    {
                        nexts[i] = Next::stage_drop(reason::CT_TABLE_FULL);
                        if let Some(s) = info.frag_slot {
                            let v = Verdict::Drop(reason::FRAGMENT_DENIED);
                            self.frags.set_verdict(s, v);
                            self.release_held(ctx, s, v);
                        }
                        continue;
                    }
                }
            }
            self.count_rule(rule, info.len);
            if let (Some((c, dir)), Some(t)) = (info.conn, self.ct.as_mut()) {
                if info.key.ct == ct::ESTABLISHED {
                    t.set_cached(
                        c,
                        dir,
                        Cached {
                            gen,
                            rule,
                            action: match action {
                                Action::Accept => 0,
                                Action::Drop => 1,
                                Action::Reject => 2,
                            },
                        },
                    );
                }
            }
            if action == Action::Reject {
                action = Action::Drop;
                nexts[i] = Next::stage_drop(reason::RULE_REJECT);
                if self.reject_allowed(now) {
                    let orig = pkts[i].orig_dst();
                    let answer = Self::build_reject(pkts[i].data(), &info, orig, &mut buf);
                    if let Some((len, tx_csum)) = answer {
                        if let Some(mut r) = ctx.alloc() {
                            if r.copy_from(&buf[..len]) {
                                if let Some(l3) = tx_csum {
                                    r.request_tx_csum(l3);
                                }
                                r.set_egress(pkts[i].port());
                                r.set_seq(pkts[i].seq());
                                r.set_timestamp(pkts[i].timestamp());
                                self.stats.rejects_sent += 1;
                                ctx.emit(r);
                            } else {
                                ctx.free_created(r);
                            }
                        }
                    }
                } else {
                    self.stats.rejects_limited += 1;
                }
            } else if action == Action::Drop {
                nexts[i] = Next::stage_drop(if rule == DEFAULT_RULE {
                    reason::DEFAULT_DROP
                } else {
                    reason::RULE_DROP
                });
            }
            if let Some(s) = info.frag_slot {
                let v = if action == Action::Accept {
                    Verdict::Accept
                } else {
                    Verdict::Drop(reason::FRAGMENT_DENIED)
                };
                self.frags.set_verdict(s, v);
                self.release_held(ctx, s, v);
            }
        }
        self.classify.clear();
        self.todo4.clear();
        self.todo6.clear();
    }
}

impl Stage for Firewall {
    fn name(&self) -> &str {
        "firewall"
    }

    fn drop_reasons(&self) -> &[&'static str] {
        DROP_NAMES
    }

    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        let now = ctx.now;
        self.last_now = now;
        self.worker = ctx.worker;
        self.placer = ctx.flow_placer();
        let (gen, bound) = {
            let s = self.reader.get();
            (s.gen, s.id_bound as usize)
        };
        if bound > self.rule_counts.len() {
            // Only when the rules changed and gained a larger id (not per packet).
            self.rule_counts.resize(bound, [0; 2]);
        }
        let n = pkts.len().min(BURST);
        let mut pending_holds = 0;
        self.classify.clear();
        self.todo4.clear();
        self.todo6.clear();

        // Pass 1: inspect, in chunks: the headers of a chunk's packets (up to its first
        // fragment, whose bookkeeping must keep its place in the order), their connection
        // table hashes and a touch of their buckets and entries so the misses overlap, then
        // connection tracking packet by packet.
        let mut i = 0;
        while i < n {
            let end = (i + CHUNK).min(n);
            let mut split = end;
            let mut ready = [false; CHUNK];
            for j in i..end {
                match self.inspect(j, &pkts[j], &mut pending_holds, now, true) {
                    First::Done(next) => nexts[j] = next,
                    First::Classify => ready[j - i] = true,
                    First::Fragment => {
                        split = j;
                        break;
                    }
                }
            }
            let mut hashes = [None; CHUNK];
            if let Some(t) = self.ct.as_ref() {
                let mut burst = [0u64; CHUNK];
                let mut m = 0;
                for j in i..split {
                    if ready[j - i] && self.info[j].quoted.is_none() {
                        let h = self.info[j].flow.symmetric_hash64();
                        hashes[j - i] = Some(h);
                        burst[m] = h;
                        m += 1;
                    }
                }
                t.prefetch(&burst[..m]);
            }
            for j in i..split {
                if ready[j - i] {
                    self.track_one(ctx, pkts, nexts, j, gen, now, hashes[j - i]);
                }
            }
            if split < end {
                match self.inspect(split, &pkts[split], &mut pending_holds, now, false) {
                    First::Done(next) => nexts[split] = next,
                    _ => self.track_one(ctx, pkts, nexts, split, gen, now, None),
                }
                i = split + 1;
            } else {
                i = end;
            }
        }
        for n in nexts.iter_mut().skip(n) {
            *n = Next::stage_drop(reason::MALFORMED);
        }
        self.finish(ctx, pkts, nexts, gen);

        // Fragments of this burst marked HOLD whose first fragment came later in the burst.
        if pending_holds > 0 {
            for (next, info) in nexts.iter_mut().zip(&self.info).take(n) {
                if *next != Next::HOLD {
                    continue;
                }
                if let Some(s) = info.frag_slot {
                    match self.frags.verdict(s) {
                        Verdict::Accept => *next = Next::CONTINUE,
                        Verdict::Drop(code) => *next = Next::stage_drop(code),
                        Verdict::Forward(w) => {
                            self.stats.fragments_forwarded += 1;
                            *next = Next::handoff(w);
                        }
                        Verdict::Pending => {}
                    }
                }
            }
        }
        // Fragments held from earlier bursts follow their first fragment to its worker.
        for k in 0..self.forwarded.len() {
            let s = self.forwarded[k];
            let v = self.frags.verdict(s);
            self.release_held(ctx, s, v);
        }
        self.forwarded.clear();
    }

    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        let Ok(p) = parse(m.data()) else {
            return Err(m);
        };
        let l3 = usize::from(p.l3_offset);
        let ip = m.data().get(l3..).unwrap_or(&[]);
        let mut k = FragKey {
            proto: p.l4_proto,
            v6: p.l3 == L3::Ipv6,
            ..FragKey::default()
        };
        if k.v6 && ip.len() >= 40 {
            k.src.copy_from_slice(&ip[8..24]);
            k.dst.copy_from_slice(&ip[24..40]);
            let end = (40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))).min(ip.len());
            k.id = crate::wire::walk_ext(&ip[40..end], ip[6])
                .ok()
                .and_then(|(_, _, f)| f)
                .map_or(0, |f| f.identification);
        } else if !k.v6 && ip.len() >= 20 {
            k.src[..4].copy_from_slice(&ip[12..16]);
            k.dst[..4].copy_from_slice(&ip[16..20]);
            k.id = u32::from(u16::from_be_bytes([ip[4], ip[5]]));
        } else {
            return Err(m);
        }
        // `hold` gets no clock: the deadline runs from the packet's own timestamp when that is
        // on the worker's clock (replay: capture time, never ahead of `now`), else from the
        // `now` of the burst that held it.
        let t = m.timestamp();
        let base = if t != 0 && t <= self.last_now {
            t
        } else {
            self.last_now
        };
        self.frags.hold(&k, m, base)
    }

    fn held(&self) -> usize {
        self.frags.held()
    }

    fn poll(&mut self, ctx: &mut Ctx) {
        let now = ctx.now;
        if let Some(t) = self.ct.as_mut() {
            t.poll(now);
        }
        self.frags
            .poll(now, |m| ctx.drop_held(m, reason::FRAGMENT_TIMEOUT));
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        self.frags
            .drain(|m| ctx.drop_held(m, reason::FRAGMENT_FLUSHED));
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let s = &self.stats;
        let mut v = vec![
            ("classified".to_string(), s.classified),
            ("flow_cache_hits".to_string(), s.cache_hits),
            ("non_ip_passed".to_string(), s.non_ip),
            ("rejects_sent".to_string(), s.rejects_sent),
            ("rejects_rate_limited".to_string(), s.rejects_limited),
            ("fragments_released".to_string(), s.fragments_released),
            ("fragments_forwarded".to_string(), s.fragments_forwarded),
            ("default.packets".to_string(), s.default_packets),
            ("default.bytes".to_string(), s.default_bytes),
        ];
        if let Some(t) = &self.ct {
            v.push(("ct_entries".to_string(), t.len() as u64));
            v.push(("ct_created".to_string(), t.counters.created));
            v.push(("ct_expired".to_string(), t.counters.expired));
            v.push(("ct_early_drops".to_string(), t.counters.early_drops));
        }
        for (id, c) in self.rule_counts.iter().enumerate() {
            if c[0] != 0 {
                v.push((format!("rule.{id}.packets"), c[0]));
                v.push((format!("rule.{id}.bytes"), c[1]));
            }
        }
        v
    }
}

/// `[[stage]] kind = "firewall"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirewallToml {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    rules: Option<Spanned<String>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    inline: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    default: Option<Spanned<String>>,
    #[serde(default)]
    conntrack: Option<bool>,
    #[serde(default)]
    conntrack_capacity: Option<Spanned<u64>>,
    #[serde(default)]
    early_drop: Option<bool>,
    #[serde(default)]
    timeouts: Option<TimeoutsToml>,
    #[serde(default)]
    fragment_capacity: Option<Spanned<u64>>,
    #[serde(default)]
    fragment_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    fragment_hold_ms: Option<Spanned<u64>>,
    #[serde(default)]
    max_held: Option<Spanned<u64>>,
    #[serde(default)]
    reject_rate: Option<Spanned<u64>>,
    #[serde(default)]
    release: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
}

/// Timeouts in seconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsToml {
    tcp_syn_sent: Option<u64>,
    tcp_syn_recv: Option<u64>,
    tcp_established: Option<u64>,
    tcp_fin_wait: Option<u64>,
    tcp_last_ack: Option<u64>,
    tcp_time_wait: Option<u64>,
    tcp_close: Option<u64>,
    udp: Option<u64>,
    udp_stream: Option<u64>,
    icmp: Option<u64>,
}

/// Resolved firewall settings and the shared rule set.
#[derive(Debug)]
pub struct FirewallSpec {
    /// The rules (shared by every worker's stage; change them here, live).
    pub rules: Arc<RuleSet>,
    /// Everything else.
    pub settings: Settings,
    /// Where the rules came from (for `describe`).
    pub source: String,
}

impl StageSpec for FirewallSpec {
    fn kind(&self) -> &'static str {
        "firewall"
    }
    fn fragments_follow_flows(&self) -> bool {
        self.settings.conntrack
    }
    fn build(&self, _env: &BuildEnv) -> Box<dyn Stage> {
        Box::new(Firewall::new(self.rules.clone(), self.settings.clone()))
    }
    fn describe(&self, ports: &[PortConfig]) -> Vec<String> {
        let s = &self.settings;
        let snap = self.rules.snapshot();
        let name = |p: u16| {
            ports
                .get(p as usize)
                .map_or("?", |p| p.name.as_str())
                .to_string()
        };
        let mut v = vec![
            format!(
                "{} rules from {}, default {}; classifier: IPv4 {} decision trees + {} tuple-space tables, IPv6 {} tables",
                snap.rules,
                self.source,
                if s.default == Action::Drop { "drop" } else { "accept" },
                snap.v4.trees_used(),
                snap.v4.rest_tables(),
                snap.v6.tables()
            ),
            if s.conntrack {
                format!(
                    "conntrack: {} connections per worker, {} when full; tcp established {} s, udp {} s",
                    s.conntrack_capacity,
                    if s.early_drop { "early drop of a never-replied connection" } else { "new connections dropped" },
                    s.timeouts.established / 1_000_000_000,
                    s.timeouts.udp / 1_000_000_000
                )
            } else {
                "conntrack: off (every packet is `new`)".to_string()
            },
            format!(
                "fragments: {} datagrams, held up to {} ms (max {} held), records kept {} ms; rejects {}/s",
                s.fragment_capacity,
                s.fragment_hold / 1_000_000,
                s.max_held,
                s.fragment_timeout / 1_000_000,
                s.reject_rate
            ),
        ];
        for &(a, b) in &s.release {
            v.push(format!("released fragments: {} -> {}", name(a), name(b)));
        }
        v
    }
}

/// Parses a `firewall` stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    let c: FirewallToml = t.parse()?;
    let mut s = Settings::default();
    let port = |name: &str| t.port(&Spanned::new(0..0, name.to_string()), "rules").ok();
    let format = match &c.format {
        None => rules::Format::Rules,
        Some(f) => match f.get_ref().as_str() {
            "rules" => rules::Format::Rules,
            "classbench" => rules::Format::ClassBench,
            other => {
                return Err(t.err(
                    f.span(),
                    "format",
                    format!("expected \"rules\" or \"classbench\", not {other:?}"),
                ))
            }
        },
    };
    let mut list: Vec<Rule> = Vec::new();
    let mut source = Vec::new();
    if let Some(inl) = &c.inline {
        for (n, line) in inl.get_ref().iter().enumerate() {
            let id = list.len() as u32 + 1;
            match rules::parse_rule_line(line, id, &port) {
                Ok(Some(r)) => list.push(r),
                Ok(None) => {}
                Err(e) => {
                    return Err(t.err(inl.span(), "inline", format!("rule {}: {e}", n + 1)));
                }
            }
        }
        source.push(format!("{} inline", inl.get_ref().len()));
    }
    if let Some(f) = &c.rules {
        let path = t.base.join(f.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            t.err(
                f.span(),
                "rules",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let file_rules = rules::parse_rules(&path.display().to_string(), &text, format, &port)
            .map_err(|e| t.err(f.span(), "rules", e.to_string()))?;
        let base = list.len() as u32;
        list.extend(file_rules.into_iter().map(|r| Rule {
            id: r.id + base,
            ..r
        }));
        source.push(path.display().to_string());
    }
    if source.is_empty() {
        source.push("nowhere (no rules)".to_string());
    }
    if let Some(d) = &c.default {
        s.default = match d.get_ref().as_str() {
            "accept" => Action::Accept,
            "drop" => Action::Drop,
            other => {
                return Err(t.err(
                    d.span(),
                    "default",
                    format!("expected \"accept\" or \"drop\", not {other:?}"),
                ))
            }
        };
    }
    s.conntrack = c.conntrack.unwrap_or(true);
    s.early_drop = c.early_drop.unwrap_or(false);
    let range = |v: &Option<Spanned<u64>>,
                 key: &str,
                 lo: u64,
                 hi: u64,
                 dflt: u64|
     -> Result<u64, ConfigError> {
        match v {
            None => Ok(dflt),
            Some(x) if (lo..=hi).contains(x.get_ref()) => Ok(*x.get_ref()),
            Some(x) => Err(t.err(x.span(), key, format!("expected {lo} to {hi}"))),
        }
    };
    s.conntrack_capacity = range(
        &c.conntrack_capacity,
        "conntrack_capacity",
        1,
        1 << 26,
        65536,
    )? as usize;
    s.fragment_capacity =
        range(&c.fragment_capacity, "fragment_capacity", 1, 1 << 20, 1024)? as usize;
    s.fragment_timeout = range(
        &c.fragment_timeout_ms,
        "fragment_timeout_ms",
        1,
        600_000,
        30_000,
    )? * 1_000_000;
    s.fragment_hold = range(&c.fragment_hold_ms, "fragment_hold_ms", 1, 600_000, 1000)? * 1_000_000;
    s.max_held = range(&c.max_held, "max_held", 0, 65536, 256)? as usize;
    s.reject_rate = range(&c.reject_rate, "reject_rate", 0, 10_000_000, 100)?;
    if let Some(to) = &c.timeouts {
        let sec = |v: Option<u64>, d: &mut u64| {
            if let Some(v) = v {
                *d = v.saturating_mul(1_000_000_000);
            }
        };
        let tt = &mut s.timeouts;
        sec(to.tcp_syn_sent, &mut tt.syn_sent);
        sec(to.tcp_syn_recv, &mut tt.syn_recv);
        sec(to.tcp_established, &mut tt.established);
        sec(to.tcp_fin_wait, &mut tt.fin_wait);
        sec(to.tcp_last_ack, &mut tt.last_ack);
        sec(to.tcp_time_wait, &mut tt.time_wait);
        sec(to.tcp_close, &mut tt.close);
        sec(to.udp, &mut tt.udp);
        sec(to.udp_stream, &mut tt.udp_stream);
        sec(to.icmp, &mut tt.icmp);
    }
    if let Some(r) = &c.release {
        for (from, to) in r.get_ref() {
            let a = t.port(&Spanned::new(r.span(), from.clone()), "release")?;
            let b = t.port(to, "release")?;
            s.release.push((a, b));
        }
    }
    let set = RuleSet::new(&list).map_err(|e| t.err(0..0, "rules", e.to_string()))?;
    Ok(Box::new(FirewallSpec {
        rules: set,
        settings: s,
        source: source.join(" + "),
    }))
}

#[cfg(test)]
mod tests;
