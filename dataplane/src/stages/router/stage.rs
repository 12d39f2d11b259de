//! The router stage itself: the per-burst fast path, ICMP errors, ARP, held packets.
//!
//! See the module documentation of [`super`] for what it does and why; this file is the code.
//! Hot-path shape: one pass classifies and validates (and prefetches packets a few ahead),
//! one FIB call looks up all IPv4 destinations and one all IPv6 ones, one pass rewrites.
//! Everything that is not plain forwarding (ICMP, ARP, holding) is out of line.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use pmd::{Mbuf, BURST_MAX};

use super::fib::{Fib, FibCell, FibReader, Hop};
use super::neigh::{Neighbours, State};
use crate::stage::{Ctx, Next, Stage};
use crate::wire::checksum;

/// The router's own drop reasons (`Next::stage_drop(code)`), in counter order.
pub mod drop {
    /// IP version field wrong for the EtherType.
    pub const BAD_VERSION: u8 = 0;
    /// IPv4 IHL below 5.
    pub const BAD_IHL: u8 = 1;
    /// Header or total/payload length inconsistent with the frame.
    pub const BAD_LENGTH: u8 = 2;
    /// IPv4 header checksum wrong.
    pub const BAD_CHECKSUM: u8 = 3;
    /// Martian source address.
    pub const MARTIAN_SOURCE: u8 = 4;
    /// Martian destination address.
    pub const MARTIAN_DESTINATION: u8 = 5;
    /// Multicast or broadcast destination (not routed).
    pub const MULTICAST: u8 = 6;
    /// Unicast IP in an L2 broadcast/multicast frame (RFC 1812 5.3.4).
    pub const L2_BROADCAST: u8 = 7;
    /// TTL / hop limit expired.
    pub const TTL_EXCEEDED: u8 = 8;
    /// No route.
    pub const NO_ROUTE: u8 = 9;
    /// A blackhole route.
    pub const BLACKHOLE: u8 = 10;
    /// An unreachable or prohibit route.
    pub const UNREACHABLE: u8 = 11;
    /// Too big for the egress MTU with DF set (or IPv6).
    pub const FRAG_NEEDED: u8 = 12;
    /// Too big for the egress MTU with DF clear, and could not be fragmented (no buffer, no
    /// room to emit, or an MTU too small for the header).
    pub const FRAGMENTATION_FAILED: u8 = 13;
    /// Next hop not resolved and no room to hold the packet.
    pub const NEIGHBOUR_UNRESOLVED: u8 = 14;
    /// Held for a neighbour that never answered.
    pub const NEIGHBOUR_TIMEOUT: u8 = 15;
    /// For the router, and not something it answers.
    pub const LOCAL: u8 = 16;
    /// ARP or IPv6 neighbour discovery, consumed (learned from, not for us, or malformed).
    pub const ARP: u8 = 17;
    /// Not IPv4, IPv6 or ARP.
    pub const NOT_IP: u8 = 18;
    /// Ethernet/VLAN header truncated, or bad IPv6 extension chain.
    pub const MALFORMED: u8 = 19;
    /// Held at shutdown.
    pub const SHUTDOWN: u8 = 20;
}

const DROP_NAMES: &[&str] = &[
    "bad_version",
    "bad_ihl",
    "bad_length",
    "bad_checksum",
    "martian_source",
    "martian_destination",
    "multicast",
    "l2_broadcast",
    "ttl_exceeded",
    "no_route",
    "blackhole",
    "unreachable",
    "frag_needed",
    "fragmentation_failed",
    "neighbour_unresolved",
    "neighbour_timeout",
    "local",
    "arp_nd",
    "not_ip",
    "malformed",
    "shutdown",
];

/// A routed interface: a port with addresses and an MTU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Port number.
    pub port: u16,
    /// IPv4 address and prefix length.
    pub addr4: Option<(Ipv4Addr, u8)>,
    /// IPv6 address and prefix length.
    pub addr6: Option<(Ipv6Addr, u8)>,
    /// IP MTU (largest IP packet sent).
    pub mtu: u16,
}

/// A configured neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNeighbour {
    /// Address.
    pub ip: IpAddr,
    /// MAC.
    pub mac: [u8; 6],
    /// Port.
    pub port: u16,
}

/// Per-worker settings of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Interfaces.
    pub ifaces: Vec<Iface>,
    /// Static neighbours.
    pub neighbours: Vec<StaticNeighbour>,
    /// ICMP errors per second per worker.
    pub icmp_rate: u32,
    /// ICMP errors sent back to back before the rate applies.
    pub icmp_burst: u32,
    /// Packets held per unresolved neighbour.
    pub hold: u16,
    /// Packets held per worker in all.
    pub hold_total: usize,
    /// Neighbour entries per worker.
    pub neighbour_capacity: usize,
    /// How long a learned neighbour stays valid (ns).
    pub reachable_ns: u64,
    /// Interval between ARP requests (ns).
    pub retry_ns: u64,
    /// ARP requests before held packets are given up.
    pub retries: u8,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            ifaces: Vec::new(),
            neighbours: Vec::new(),
            icmp_rate: 1000,
            icmp_burst: 50,
            hold: 4,
            hold_total: 1024,
            neighbour_capacity: 4096,
            reachable_ns: 300_000_000_000,
            retry_ns: 1_000_000_000,
            retries: 3,
        }
    }
}

const HOLD_TAG: u64 = 0x524f_5554_0000_0000;
/// `meta[1]` of a packet handed to the worker that resolves its next hop: this tag, the
/// egress port in bits 16..32 and the address family in bit 0; the next hop's address is in
/// `meta[2..4]`.
const NH_TAG: u64 = 0x4e48_4f50_0000_0000;

/// The worker that resolves next hop `ip` among `workers`: one worker per neighbour sends its
/// ARP requests or solicitations and holds the packets waiting for it, whatever worker routed
/// them (the others hand such packets over to it).
pub fn neighbour_worker(ip: IpAddr, workers: usize) -> usize {
    let x = match ip {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b ^ (b >> 64)) as u64
        }
    };
    let h = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
    ((h * workers as u64) >> 32) as usize
}
const NS: u64 = 1_000_000_000;

/// Per-worker ICMP error budget.
#[derive(Debug)]
struct Bucket {
    /// Tokens in nanosecond-units (one error = `NS`).
    tokens: u64,
    last: u64,
    rate: u64,
    cap: u64,
}

impl Bucket {
    fn take(&mut self, now: u64) -> bool {
        let dt = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.tokens = self
            .tokens
            .saturating_add(dt.saturating_mul(self.rate))
            .min(self.cap);
        if self.tokens >= NS {
            self.tokens -= NS;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    icmp_sent: u64,
    icmp_rate_limited: u64,
    icmp_no_buffer: u64,
    echo_replies: u64,
    arp_replies: u64,
    arp_requests: u64,
    neighbours_learned: u64,
    /// Packets handed to the worker resolving their next hop.
    neighbour_handoffs: u64,
    held: u64,
    fragments: u64,
}

/// Everything but the FIB (so the FIB snapshot can be borrowed alongside).
struct Work {
    port_macs: Vec<[u8; 6]>,
    mtu: Vec<u16>,
    addr4: Vec<Option<Ipv4Addr>>,
    addr6: Vec<Option<Ipv6Addr>>,
    neigh: Neighbours,
    bucket: Bucket,
    cfg: RouterConfig,
    c: Counters,
    next_poll: u64,
    last_nip: Option<IpAddr>,
    last_idx: u32,
    l3: [u16; BURST_MAX],
    idx4: [u16; BURST_MAX],
    dst4: [u32; BURST_MAX],
    res4: [u16; BURST_MAX],
    idx6: [u16; BURST_MAX],
    dst6: [u128; BURST_MAX],
    res6: [u32; BURST_MAX],
    /// This instance's worker and the number of run-to-completion workers.
    worker: usize,
    workers: usize,
}

/// The router stage (one per worker).
pub struct Router {
    fib: FibReader,
    w: Box<Work>,
}

impl Router {
    /// A router reading `fib`, with port MACs `port_macs`.
    pub fn new(cfg: &RouterConfig, fib: &Arc<FibCell>, port_macs: Vec<[u8; 6]>) -> Router {
        let nports = port_macs.len();
        let mut mtu = vec![1500u16; nports];
        let mut addr4 = vec![None; nports];
        let mut addr6 = vec![None; nports];
        for i in &cfg.ifaces {
            let p = i.port as usize;
            if p < nports {
                mtu[p] = i.mtu;
                addr4[p] = i.addr4.map(|a| a.0);
                addr6[p] = i.addr6.map(|a| a.0);
            }
        }
        let mut neigh = Neighbours::new(cfg.neighbour_capacity, cfg.hold, cfg.hold_total);
        for n in &cfg.neighbours {
            neigh.add_static(n.ip, n.mac, n.port);
        }
        let cap = u64::from(cfg.icmp_burst.max(1)) * NS;
        Router {
            fib: fib.reader(),
            w: Box::new(Work {
                port_macs,
                mtu,
                addr4,
                addr6,
                neigh,
                bucket: Bucket {
                    tokens: cap,
                    last: 0,
                    rate: u64::from(cfg.icmp_rate),
                    cap,
                },
                cfg: cfg.clone(),
                c: Counters::default(),
                next_poll: 0,
                last_nip: None,
                last_idx: 0,
                l3: [0; BURST_MAX],
                idx4: [0; BURST_MAX],
                dst4: [0; BURST_MAX],
                res4: [0; BURST_MAX],
                idx6: [0; BURST_MAX],
                dst6: [0; BURST_MAX],
                res6: [0; BURST_MAX],
                worker: 0,
                workers: 1,
            }),
        }
    }

    /// Makes this the instance of worker `worker` of `workers` run-to-completion workers:
    /// packets for a next hop another worker resolves ([`neighbour_worker`]) are handed to it.
    pub fn set_workers(&mut self, worker: usize, workers: usize) {
        self.w.worker = worker;
        self.w.workers = workers.max(1);
    }
}

/// The router's steering rule: every worker sees ARP and neighbour discovery (copies for all
/// but one), so each learns every neighbour another worker resolved.
#[derive(Debug)]
pub struct RouterSteer;

impl crate::engine::Steer for RouterSteer {
    fn steer(&self, _frame: &[u8], _port: u16, _workers: usize) -> Option<usize> {
        None
    }

    fn places(&self) -> bool {
        false
    }

    /// Asked of every packet the I/O thread dispatches, so it reads the ethertype (after at
    /// most two VLAN tags) and no more for anything but ARP and IPv6; neighbour discovery is
    /// what the router's own classification takes for it (ICMPv6 135 or 136 with hop limit 255
    /// right after the fixed header).
    fn broadcast(&self, frame: &[u8], _port: u16) -> bool {
        let et = |off: usize| {
            frame
                .get(off..off + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
        };
        let mut off = 12;
        for _ in 0..2 {
            if matches!(et(off), Some(0x8100 | 0x88a8)) {
                off += 4;
            }
        }
        match et(off) {
            Some(0x0806) => true,
            Some(0x86dd) => frame.get(off + 2..off + 2 + 64).is_some_and(|ip| {
                ip[0] >> 4 == 6 && ip[6] == 58 && ip[7] == 255 && matches!(ip[40], 135 | 136)
            }),
            _ => false,
        }
    }
}

#[inline(always)]
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

#[inline(always)]
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// IPv4 sources that must never be forwarded (RFC 1812 5.3.7, 4.2.2.11).
#[inline(always)]
fn martian_src4(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || top >= 224
}

/// IPv4 destinations that are never routed: 0/8, 127/8, class E (multicast and limited
/// broadcast are counted apart).
#[inline(always)]
fn martian_dst4(a: u32) -> bool {
    let top = a >> 24;
    top == 0 || top == 127 || (top >= 240 && a != u32::MAX)
}

#[inline(always)]
fn martian_src6(a: u128) -> bool {
    a == 0 || a == 1 || (a >> 120) == 0xff
}

#[inline(always)]
fn hash2(a: u64, b: u64) -> u32 {
    ((a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)) >> 32) as u32
}

/// What the classify pass decided for one packet.
enum Class {
    Done,
    V4,
    V6,
    Arp,
    Nd,
}

impl Work {
    /// Validates one frame; IP packets to route are queued for the lookup.
    #[inline(always)]
    fn classify(&mut self, i: usize, m: &mut Mbuf, n: &mut Next) -> Class {
        let d = m.data();
        if d.len() < 14 {
            *n = Next::stage_drop(drop::MALFORMED);
            return Class::Done;
        }
        let mut et = be16(d, 12);
        let mut off = 14;
        for _ in 0..2 {
            if et == 0x8100 || et == 0x88a8 || et == 0x9100 {
                if d.len() < off + 4 {
                    *n = Next::stage_drop(drop::MALFORMED);
                    return Class::Done;
                }
                et = be16(d, off + 2);
                off += 4;
            }
        }
        self.l3[i] = off as u16;
        let l2_group = d[0] & 1 != 0;
        match et {
            0x0800 => {
                let ip = &d[off..];
                if ip.len() < 20 {
                    *n = Next::stage_drop(drop::BAD_LENGTH);
                    return Class::Done;
                }
                if ip[0] >> 4 != 4 {
                    *n = Next::stage_drop(drop::BAD_VERSION);
                    return Class::Done;
                }
                let ihl = usize::from(ip[0] & 0xf) * 4;
                if ihl < 20 {
                    *n = Next::stage_drop(drop::BAD_IHL);
                    return Class::Done;
                }
                let total = usize::from(be16(ip, 2));
                if ihl > ip.len() || total < ihl || total > ip.len() {
                    *n = Next::stage_drop(drop::BAD_LENGTH);
                    return Class::Done;
                }
                // The receiving device's checksum offload, where it has one, spares the sum.
                let csum_ok = match m.ip_csum_offload() {
                    Some(v) => v,
                    None => checksum::verify(&ip[..ihl], 0),
                };
                if !csum_ok {
                    *n = Next::stage_drop(drop::BAD_CHECKSUM);
                    return Class::Done;
                }
                let src = be32(ip, 12);
                let dst = be32(ip, 16);
                if martian_src4(src) {
                    *n = Next::stage_drop(drop::MARTIAN_SOURCE);
                    return Class::Done;
                }
                if dst >> 28 == 0xe || dst == u32::MAX {
                    *n = Next::stage_drop(drop::MULTICAST);
                    return Class::Done;
                }
                if martian_dst4(dst) {
                    *n = Next::stage_drop(drop::MARTIAN_DESTINATION);
                    return Class::Done;
                }
                if l2_group {
                    *n = Next::stage_drop(drop::L2_BROADCAST);
                    return Class::Done;
                }
                Class::V4
            }
            0x86dd => {
                let ip = &d[off..];
                if ip.len() < 40 {
                    *n = Next::stage_drop(drop::BAD_LENGTH);
                    return Class::Done;
                }
                if ip[0] >> 4 != 6 {
                    *n = Next::stage_drop(drop::BAD_VERSION);
                    return Class::Done;
                }
                if usize::from(be16(ip, 4)) + 40 > ip.len() {
                    *n = Next::stage_drop(drop::BAD_LENGTH);
                    return Class::Done;
                }
                let src = u128::from_be_bytes(ip[8..24].try_into().unwrap_or([0; 16]));
                let dst = u128::from_be_bytes(ip[24..40].try_into().unwrap_or([0; 16]));
                // Neighbour solicitations/advertisements (ICMPv6 135/136, hop limit 255, no
                // extension headers) go to the ND code, like ARP.
                if ip[6] == 58 && ip[7] == 255 && ip.len() >= 64 && matches!(ip[40], 135 | 136) {
                    return Class::Nd;
                }
                if martian_src6(src) {
                    *n = Next::stage_drop(drop::MARTIAN_SOURCE);
                    return Class::Done;
                }
                if dst >> 120 == 0xff {
                    *n = Next::stage_drop(drop::MULTICAST);
                    return Class::Done;
                }
                if (src >> 118) == 0x3fa {
                    // Link-local sources are never forwarded (RFC 4291 2.5.6).
                    *n = Next::stage_drop(drop::MARTIAN_SOURCE);
                    return Class::Done;
                }
                if dst == 0 || dst == 1 || (dst >> 118) == 0x3fa {
                    // Unspecified, loopback, or link-local.
                    *n = Next::stage_drop(drop::MARTIAN_DESTINATION);
                    return Class::Done;
                }
                if l2_group {
                    *n = Next::stage_drop(drop::L2_BROADCAST);
                    return Class::Done;
                }
                Class::V6
            }
            0x0806 => Class::Arp,
            _ => {
                *n = Next::stage_drop(drop::NOT_IP);
                Class::Done
            }
        }
    }

    /// Looks up and routes the `c4` IPv4 and `c6` IPv6 packets gathered so far.
    #[inline(always)]
    fn route_pending(
        &mut self,
        ctx: &mut Ctx,
        fib: &Fib,
        pkts: &mut [Mbuf],
        nexts: &mut [Next],
        c4: usize,
        c6: usize,
    ) {
        if c4 > 0 {
            fib.v4.lookup_burst(&self.dst4[..c4], &mut self.res4[..c4]);
            for k in 0..c4 {
                let i = usize::from(self.idx4[k]);
                let l3 = usize::from(self.l3[i]);
                nexts[i] = self.route4(ctx, fib, &mut pkts[i], l3, self.res4[k]);
            }
        }
        if c6 > 0 {
            fib.v6.lookup_burst(&self.dst6[..c6], &mut self.res6[..c6]);
            for k in 0..c6 {
                let i = usize::from(self.idx6[k]);
                let l3 = usize::from(self.l3[i]);
                nexts[i] = self.route6(ctx, fib, &mut pkts[i], l3, self.res6[k]);
            }
        }
    }

    /// Acts on a looked-up IPv4 packet.
    #[inline(always)]
    fn route4(&mut self, ctx: &mut Ctx, fib: &Fib, m: &mut Mbuf, l3: usize, id: u16) -> Next {
        let d = m.data();
        let ip = &d[l3..];
        let (src, dst) = (be32(ip, 12), be32(ip, 16));
        let hop = fib.hop(id.into(), hash2(src.into(), dst.into()));
        let (port, nip) = match hop {
            Some(Hop::Via { gw, port }) => (port, gw),
            Some(Hop::Connected { port }) => (port, IpAddr::V4(Ipv4Addr::from(dst))),
            None => {
                self.icmp4(ctx, m, l3, 3, 0, 0);
                return Next::stage_drop(drop::NO_ROUTE);
            }
            Some(Hop::Blackhole) => return Next::stage_drop(drop::BLACKHOLE),
            Some(Hop::Unreachable) => {
                self.icmp4(ctx, m, l3, 3, 1, 0);
                return Next::stage_drop(drop::UNREACHABLE);
            }
            Some(Hop::Prohibit) => {
                self.icmp4(ctx, m, l3, 3, 13, 0);
                return Next::stage_drop(drop::UNREACHABLE);
            }
            Some(Hop::Local) => return self.local4(m, l3),
        };
        let ttl = ip[8];
        if ttl <= 1 {
            self.icmp4(ctx, m, l3, 11, 0, 0);
            return Next::stage_drop(drop::TTL_EXCEEDED);
        }
        let total = be16(ip, 2);
        let mtu = self.mtu.get(port as usize).copied().unwrap_or(0);
        let too_big = total > mtu;
        if too_big {
            if ip[6] & 0x40 != 0 {
                self.icmp4(ctx, m, l3, 3, 4, u32::from(mtu));
                return Next::stage_drop(drop::FRAG_NEEDED);
            }
            if self
                .neigh
                .find(nip)
                .and_then(|i| self.neigh.mac(i))
                .is_none()
            {
                // Fragments are cut once the next hop is known; ask for it meanwhile.
                self.start_resolution(ctx, port, nip, m.seq(), m.timestamp());
                return Next::stage_drop(drop::NEIGHBOUR_UNRESOLVED);
            }
        }
        // RFC 1624: the TTL/protocol word goes down by 0x0100.
        let d = m.data_mut();
        let old = be16(d, l3 + 8);
        let csum = checksum::update16(be16(d, l3 + 10), old, old - 0x0100);
        d[l3 + 8] = ttl - 1;
        d[l3 + 10..l3 + 12].copy_from_slice(&csum.to_be_bytes());
        let next = self.send_to_neighbour(ctx, m, port, nip);
        if too_big && next == Next::CONTINUE {
            return self.fragment(ctx, m, l3, usize::from(mtu));
        }
        next
    }

    /// Cuts an IPv4 packet (DF clear, headers already rewritten) into fragments that fit
    /// `mtu` (RFC 791): all but the last are new buffers, emitted in order; the packet itself
    /// becomes the last fragment and carries on. Later fragments carry only the options with
    /// the copy flag.
    #[cold]
    fn fragment(&mut self, ctx: &mut Ctx, m: &mut Mbuf, l3: usize, mtu: usize) -> Next {
        let d = m.data();
        let ihl = usize::from(d[l3] & 0xf) * 4;
        let total = usize::from(be16(d, l3 + 2));
        let payload = total - ihl;
        let mut later = [0u8; 60];
        later[..20].copy_from_slice(&d[l3..l3 + 20]);
        let mut lh = 20;
        let opts = &d[l3 + 20..l3 + ihl];
        let mut k = 0;
        while k < opts.len() {
            let t = opts[k];
            if t == 0 {
                break;
            }
            if t == 1 {
                k += 1;
                continue;
            }
            let ol = usize::from(*opts.get(k + 1).unwrap_or(&0));
            if ol < 2 || k + ol > opts.len() {
                break;
            }
            if t & 0x80 != 0 {
                later[lh..lh + ol].copy_from_slice(&opts[k..k + ol]);
                lh += ol;
            }
            k += ol;
        }
        lh = lh.div_ceil(4) * 4;
        later[0] = 0x40 | (lh / 4) as u8;
        let first = mtu.saturating_sub(ihl) & !7;
        let rest = mtu.saturating_sub(lh) & !7;
        if first == 0 || rest == 0 || payload <= first {
            return Next::stage_drop(drop::FRAGMENTATION_FAILED);
        }
        let nfrag = 1 + (payload - first).div_ceil(rest);
        if ctx.emit_room() < nfrag - 1 {
            return Next::stage_drop(drop::FRAGMENTATION_FAILED);
        }
        let flags = be16(d, l3 + 6);
        let base = usize::from(flags & 0x1fff) * 8;
        let last_mf = flags & 0x2000;
        // Each fragment's header checksum is left to transmit: the device's offload where the
        // port has it, software otherwise (`Mbuf::request_tx_csum`).
        let set_hdr = |h: &mut [u8], len: usize, off: usize, mf: u16| {
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            h[6..8].copy_from_slice(&((mf | (off / 8) as u16) & 0x3fff).to_be_bytes());
            h[10..12].fill(0);
        };
        let mut start = 0;
        for j in 0..nfrag - 1 {
            let (hdr, hl): (&[u8], usize) = if j == 0 {
                (&d[l3..l3 + ihl], ihl)
            } else {
                (&later[..lh], lh)
            };
            let len = if j == 0 { first } else { rest };
            let Some(mut out) = ctx.alloc() else {
                self.c.icmp_no_buffer += 1;
                return Next::stage_drop(drop::FRAGMENTATION_FAILED);
            };
            let Some(b) = out.append((l3 + hl + len).max(60)) else {
                ctx.free_created(out);
                return Next::stage_drop(drop::FRAGMENTATION_FAILED);
            };
            b[..l3].copy_from_slice(&d[..l3]);
            b[l3..l3 + hl].copy_from_slice(hdr);
            set_hdr(&mut b[l3..l3 + hl], hl + len, base + start, 0x2000);
            let src = l3 + ihl + start;
            b[l3 + hl..l3 + hl + len].copy_from_slice(&d[src..src + len]);
            b[l3 + hl + len..].fill(0);
            out.set_port(m.port());
            out.set_egress(m.egress());
            out.set_seq(m.seq());
            out.set_timestamp(m.timestamp());
            out.request_tx_csum(l3 as u16);
            ctx.emit(out);
            self.c.fragments += 1;
            start += len;
        }
        // The packet itself becomes the last fragment: new headers in front of its tail.
        let mut front = [0u8; 22 + 60];
        front[..l3].copy_from_slice(&d[..l3]);
        front[l3..l3 + lh].copy_from_slice(&later[..lh]);
        let tail = payload - start;
        set_hdr(&mut front[l3..l3 + lh], lh + tail, base + start, last_mf);
        let cut = ihl + start - lh;
        let len = l3 + lh + tail;
        if !m.adj(cut) || !m.set_len(len.max(60)) {
            return Next::stage_drop(drop::FRAGMENTATION_FAILED);
        }
        let d = m.data_mut();
        d[..l3 + lh].copy_from_slice(&front[..l3 + lh]);
        // A short last fragment is padded to the Ethernet minimum.
        d[len..].fill(0);
        m.request_tx_csum(l3 as u16);
        self.c.fragments += 1;
        Next::CONTINUE
    }

    /// Acts on a looked-up IPv6 packet.
    #[inline(always)]
    fn route6(&mut self, ctx: &mut Ctx, fib: &Fib, m: &mut Mbuf, l3: usize, id: u32) -> Next {
        let d = m.data();
        let ip = &d[l3..];
        let src = u128::from_be_bytes(ip[8..24].try_into().unwrap_or([0; 16]));
        let dst = u128::from_be_bytes(ip[24..40].try_into().unwrap_or([0; 16]));
        let hop = fib.hop(
            id,
            hash2((src ^ (src >> 64)) as u64, (dst ^ (dst >> 64)) as u64),
        );
        let (port, nip) = match hop {
            Some(Hop::Via { gw, port }) => (port, gw),
            Some(Hop::Connected { port }) => (port, IpAddr::V6(Ipv6Addr::from(dst))),
            None => {
                self.icmp6(ctx, m, l3, 1, 0, 0);
                return Next::stage_drop(drop::NO_ROUTE);
            }
            Some(Hop::Blackhole) => return Next::stage_drop(drop::BLACKHOLE),
            Some(Hop::Unreachable) => {
                self.icmp6(ctx, m, l3, 1, 3, 0);
                return Next::stage_drop(drop::UNREACHABLE);
            }
            Some(Hop::Prohibit) => {
                self.icmp6(ctx, m, l3, 1, 1, 0);
                return Next::stage_drop(drop::UNREACHABLE);
            }
            Some(Hop::Local) => return self.local6(m, l3),
        };
        let hl = ip[7];
        if hl <= 1 {
            self.icmp6(ctx, m, l3, 3, 0, 0);
            return Next::stage_drop(drop::TTL_EXCEEDED);
        }
        let total = u32::from(be16(ip, 4)) + 40;
        let mtu = u32::from(self.mtu.get(port as usize).copied().unwrap_or(0));
        if total > mtu {
            self.icmp6(ctx, m, l3, 2, 0, mtu);
            return Next::stage_drop(drop::FRAG_NEEDED);
        }
        m.data_mut()[l3 + 7] = hl - 1;
        self.send_to_neighbour(ctx, m, port, nip)
    }

    /// MACs and egress for a routed packet; holds it if the neighbour is not resolved.
    #[inline(always)]
    fn send_to_neighbour(&mut self, ctx: &mut Ctx, m: &mut Mbuf, port: u16, nip: IpAddr) -> Next {
        let Some(&src_mac) = self.port_macs.get(port as usize) else {
            return Next::stage_drop(drop::NO_ROUTE);
        };
        m.set_egress(port);
        let d = m.data_mut();
        d[6..12].copy_from_slice(&src_mac);
        // Consecutive packets mostly share a next hop: remember the last one found.
        let idx = if self.last_nip == Some(nip) {
            Some(self.last_idx)
        } else {
            let i = self.neigh.find(nip);
            if let Some(i) = i {
                (self.last_nip, self.last_idx) = (Some(nip), i);
            }
            i
        };
        if let Some(mac) = idx.and_then(|i| self.neigh.mac(i)) {
            d[0..6].copy_from_slice(&mac);
            return Next::CONTINUE;
        }
        self.unresolved(ctx, m, port, nip)
    }

    #[cold]
    fn unresolved(&mut self, ctx: &mut Ctx, m: &mut Mbuf, port: u16, nip: IpAddr) -> Next {
        if self.workers > 1 && ctx.can_handoff() && !m.handed_over() {
            let owner = neighbour_worker(nip, self.workers);
            if owner != ctx.worker {
                // That worker asks and holds; the answer, broadcast, teaches this one too.
                let meta = m.meta_mut();
                let (bits, v6) = match nip {
                    IpAddr::V4(a) => (u128::from(a.to_bits()), 0),
                    IpAddr::V6(a) => (a.to_bits(), 1),
                };
                meta[1] = NH_TAG | u64::from(port) << 16 | v6;
                meta[2] = bits as u64;
                meta[3] = (bits >> 64) as u64;
                self.c.neighbour_handoffs += 1;
                return Next::handoff(owner as u16);
            }
        }
        let Some(i) = self.neigh.get_or_add(nip, port) else {
            return Next::stage_drop(drop::NEIGHBOUR_UNRESOLVED);
        };
        self.start_resolution(ctx, port, nip, m.seq(), m.timestamp());
        if !self.neigh.may_hold(i) {
            return Next::stage_drop(drop::NEIGHBOUR_UNRESOLVED);
        }
        // Reserve the place now: several packets of one burst may wait for the same neighbour
        // before `hold` sees any of them.
        self.neigh.entries[i as usize].held += 1;
        self.neigh.reserved += 1;
        m.meta_mut()[0] = HOLD_TAG | u64::from(i);
        Next::HOLD
    }

    /// A packet another worker routed and handed over for its next hop (see `unresolved`):
    /// already forwarded (TTL, checksum, source MAC), it only needs the neighbour.
    #[cold]
    fn arrived(&mut self, ctx: &mut Ctx, m: &mut Mbuf) -> Next {
        let meta = m.meta();
        if meta[1] & 0xffff_ffff_0000_0000 != NH_TAG {
            return Next::stage_drop(drop::NEIGHBOUR_UNRESOLVED);
        }
        let port = (meta[1] >> 16) as u16;
        let bits = u128::from(meta[2]) | u128::from(meta[3]) << 64;
        let nip = if meta[1] & 1 == 0 {
            IpAddr::V4(Ipv4Addr::from_bits(bits as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from_bits(bits))
        };
        m.meta_mut()[1] = 0;
        self.send_to_neighbour(ctx, m, port, nip)
    }

    /// Starts resolving `nip` (an ARP request now, retries from `poll`) unless already under
    /// way. Returns its entry.
    fn start_resolution(
        &mut self,
        ctx: &mut Ctx,
        port: u16,
        nip: IpAddr,
        seq: u64,
        ts: u64,
    ) -> Option<u32> {
        let i = self.neigh.get_or_add(nip, port)?;
        let e = &mut self.neigh.entries[i as usize];
        if e.state == State::Empty {
            e.state = State::Incomplete;
            e.port = port;
            e.tries = 1;
            e.deadline = ctx.now.saturating_add(self.cfg.retry_ns);
            self.solicit(ctx, port, nip, seq, ts);
        }
        Some(i)
    }

    /// Asks for `ip`'s MAC: an ARP request or an IPv6 neighbour solicitation.
    fn solicit(&mut self, ctx: &mut Ctx, port: u16, ip: IpAddr, seq: u64, ts: u64) {
        match ip {
            IpAddr::V4(t) => self.arp_request(ctx, port, t, seq, ts),
            IpAddr::V6(t) => self.neighbour_solicit(ctx, port, t, seq, ts),
        }
    }

    /// Sends a neighbour solicitation for `target` to its solicited-node multicast address
    /// (RFC 4861 7.2.2), with our link-layer address.
    fn neighbour_solicit(&mut self, ctx: &mut Ctx, port: u16, target: Ipv6Addr, seq: u64, ts: u64) {
        let (Some(mac), Some(own)) = (
            self.port_macs.get(port as usize).copied(),
            self.addr6.get(port as usize).copied().flatten(),
        ) else {
            return;
        };
        if ctx.emit_room() == 0 {
            return;
        }
        let Some(mut out) = ctx.alloc() else {
            self.c.icmp_no_buffer += 1;
            return;
        };
        let Some(b) = out.append(14 + 40 + 32) else {
            ctx.free_created(out);
            return;
        };
        let t = target.octets();
        let mut dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
        dst[13..16].copy_from_slice(&t[13..16]);
        b[0..6].copy_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
        b[6..12].copy_from_slice(&mac);
        b[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        let ip = &mut b[14..];
        ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        ip[4..6].copy_from_slice(&32u16.to_be_bytes());
        ip[6] = 58;
        ip[7] = 255;
        ip[8..24].copy_from_slice(&own.octets());
        ip[24..40].copy_from_slice(&dst);
        let icmp = &mut ip[40..72];
        icmp[0..8].copy_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        icmp[8..24].copy_from_slice(&t);
        icmp[24..26].copy_from_slice(&[1, 1]);
        icmp[26..32].copy_from_slice(&mac);
        let ph = checksum::pseudo_v6(own.octets(), dst, 58, 32);
        let c = !checksum::fold(checksum::sum16(icmp, ph));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        out.set_port(port);
        out.set_egress(port);
        out.set_seq(seq);
        out.set_timestamp(ts);
        ctx.emit(out);
        self.c.arp_requests += 1;
    }

    /// Neighbour discovery (RFC 4861): answers solicitations for our address with an
    /// advertisement in place, learns from solicitations and advertisements, releases held
    /// packets.
    #[cold]
    fn nd(
        &mut self,
        ctx: &mut Ctx,
        m: &mut Mbuf,
        l3: usize,
        before: &mut [Mbuf],
        nbefore: &mut [Next],
    ) -> Next {
        let in_port = m.port();
        let d = m.data();
        let plen = usize::from(be16(d, l3 + 4));
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&d[l3 + 8..l3 + 24]);
        dst.copy_from_slice(&d[l3 + 24..l3 + 40]);
        let icmp = &d[l3 + 40..l3 + 40 + plen];
        if plen < 24
            || icmp[1] != 0
            || !checksum::verify(icmp, checksum::pseudo_v6(src, dst, 58, plen as u32))
        {
            return Next::stage_drop(drop::ARP);
        }
        let typ = icmp[0];
        let mut target = [0u8; 16];
        target.copy_from_slice(&icmp[8..24]);
        let target = Ipv6Addr::from(target);
        // The link-layer address option: source (1) in a solicitation, target (2) in an
        // advertisement.
        let want = if typ == 135 { 1 } else { 2 };
        let mut lla: Option<[u8; 6]> = None;
        let mut k = 24;
        while k + 8 <= icmp.len() {
            let (t, l) = (icmp[k], usize::from(icmp[k + 1]) * 8);
            if l == 0 || k + l > icmp.len() {
                break;
            }
            if t == want && l == 8 {
                let mut a = [0u8; 6];
                a.copy_from_slice(&icmp[k + 2..k + 8]);
                lla = Some(a);
            }
            k += l;
        }
        let own = self.addr6.get(in_port as usize).copied().flatten();
        let for_us = own == Some(target);
        let (who, create) = if typ == 135 {
            (Ipv6Addr::from(src), for_us)
        } else {
            // An advertisement creates no entry (RFC 4861 7.2.5), except a solicited one
            // another worker's solicitation brought (seen here as a broadcast copy).
            (target, m.is_copy() && icmp[4] & 0x40 != 0)
        };
        if let Some(mac) = lla.filter(|a| a[0] & 1 == 0) {
            if !who.is_unspecified() {
                let expires = ctx.now.saturating_add(self.cfg.reachable_ns);
                if let Some(i) = self
                    .neigh
                    .learn(IpAddr::V6(who), mac, in_port, expires, create)
                {
                    self.c.neighbours_learned += 1;
                    self.release_to(ctx, i, mac, before, nbefore);
                }
            }
        }
        if typ != 135 || !for_us || Ipv6Addr::from(src).is_unspecified() || m.is_copy() {
            return Next::stage_drop(drop::ARP);
        }
        let Some(&mac) = self.port_macs.get(in_port as usize) else {
            return Next::stage_drop(drop::ARP);
        };
        // The advertisement, in place: solicited + override + router, with our address.
        if !m.set_len(l3 + 40 + 32) {
            return Next::stage_drop(drop::ARP);
        }
        let d = m.data_mut();
        let mut peer_mac = [0u8; 6];
        peer_mac.copy_from_slice(&d[6..12]);
        d[0..6].copy_from_slice(&lla.unwrap_or(peer_mac));
        d[6..12].copy_from_slice(&mac);
        let ip = &mut d[l3..];
        ip[4..6].copy_from_slice(&32u16.to_be_bytes());
        ip[7] = 255;
        ip[8..24].copy_from_slice(&target.octets());
        ip[24..40].copy_from_slice(&src);
        let icmp = &mut ip[40..72];
        icmp[0..8].copy_from_slice(&[136, 0, 0, 0, 0xe0, 0, 0, 0]);
        icmp[8..24].copy_from_slice(&target.octets());
        icmp[24..26].copy_from_slice(&[2, 1]);
        icmp[26..32].copy_from_slice(&mac);
        let ph = checksum::pseudo_v6(target.octets(), src, 58, 32);
        let c = !checksum::fold(checksum::sum16(icmp, ph));
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        self.c.arp_replies += 1;
        Next::port(in_port)
    }

    /// Sends on the packets waiting for neighbour `i`, now at `mac`: those held from earlier
    /// bursts, and those of this burst marked to wait.
    fn release_to(
        &mut self,
        ctx: &mut Ctx,
        i: u32,
        mac: [u8; 6],
        before: &mut [Mbuf],
        nbefore: &mut [Next],
    ) {
        self.neigh.release(i, |mut h| {
            h.data_mut()[0..6].copy_from_slice(&mac);
            ctx.emit(h);
        });
        let tag = HOLD_TAG | u64::from(i);
        for (pm, pn) in before.iter_mut().zip(nbefore.iter_mut()) {
            if *pn == Next::HOLD && pm.meta()[0] == tag {
                pm.meta_mut()[0] = 0;
                pm.data_mut()[0..6].copy_from_slice(&mac);
                *pn = Next::CONTINUE;
                self.neigh.unreserve(i);
            }
        }
    }

    /// Sends an ARP request for `target` out of `port`.
    fn arp_request(&mut self, ctx: &mut Ctx, port: u16, target: Ipv4Addr, seq: u64, ts: u64) {
        let (Some(&mac), Some(Some(own))) = (
            self.port_macs.get(port as usize),
            self.addr4.get(port as usize),
        ) else {
            return;
        };
        if ctx.emit_room() == 0 {
            return;
        }
        let Some(mut out) = ctx.alloc() else {
            self.c.icmp_no_buffer += 1;
            return;
        };
        // Padded to the Ethernet minimum, as a NIC would send it.
        let Some(b) = out.append(60) else {
            ctx.free_created(out);
            return;
        };
        b[42..].fill(0);
        b[0..6].fill(0xff);
        b[6..12].copy_from_slice(&mac);
        b[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        b[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        b[22..28].copy_from_slice(&mac);
        b[28..32].copy_from_slice(&own.octets());
        b[32..38].fill(0);
        b[38..42].copy_from_slice(&target.octets());
        out.set_port(port);
        out.set_egress(port);
        out.set_seq(seq);
        out.set_timestamp(ts);
        ctx.emit(out);
        self.c.arp_requests += 1;
    }

    /// ARP: answer requests for our address in place, learn senders, release held packets.
    #[cold]
    fn arp(
        &mut self,
        ctx: &mut Ctx,
        m: &mut Mbuf,
        off: usize,
        before: &mut [Mbuf],
        nbefore: &mut [Next],
    ) -> Next {
        let in_port = m.port();
        let d = m.data();
        if d.len() < off + 28 || d[off..off + 6] != [0, 1, 8, 0, 6, 4] {
            return Next::stage_drop(drop::ARP);
        }
        let a = off;
        let op = be16(d, a + 6);
        let mut sha = [0u8; 6];
        sha.copy_from_slice(&d[a + 8..a + 14]);
        let spa = Ipv4Addr::from(be32(d, a + 14));
        let tpa = Ipv4Addr::from(be32(d, a + 24));
        let own = self.addr4.get(in_port as usize).copied().flatten();
        let for_us = own == Some(tpa);
        if sha[0] & 1 == 0 && !martian_src4(spa.to_bits()) {
            let expires = ctx.now.saturating_add(self.cfg.reachable_ns);
            if let Some(i) = self
                .neigh
                .learn(IpAddr::V4(spa), sha, in_port, expires, for_us)
            {
                self.c.neighbours_learned += 1;
                self.release_to(ctx, i, sha, before, nbefore);
            }
        }
        if op == 1 && for_us && !m.is_copy() {
            let Some(&mac) = self.port_macs.get(in_port as usize) else {
                return Next::stage_drop(drop::ARP);
            };
            let d = m.data_mut();
            d[0..6].copy_from_slice(&sha);
            d[6..12].copy_from_slice(&mac);
            d[a + 6..a + 8].copy_from_slice(&2u16.to_be_bytes());
            d[a + 18..a + 24].copy_from_slice(&sha);
            d[a + 24..a + 28].copy_from_slice(&spa.octets());
            d[a + 8..a + 14].copy_from_slice(&mac);
            d[a + 14..a + 18].copy_from_slice(&tpa.octets());
            self.c.arp_replies += 1;
            return Next::port(in_port);
        }
        Next::stage_drop(drop::ARP)
    }

    /// A packet for one of our IPv4 addresses: echo requests are answered in place.
    #[cold]
    fn local4(&mut self, m: &mut Mbuf, l3: usize) -> Next {
        let in_port = m.port();
        let d = m.data();
        let ihl = usize::from(d[l3] & 0xf) * 4;
        let total = usize::from(be16(d, l3 + 2));
        let frag = be16(d, l3 + 6) & 0x3fff != 0;
        let Some(&mac) = self.port_macs.get(in_port as usize) else {
            return Next::stage_drop(drop::LOCAL);
        };
        if d[l3 + 9] != 1 || frag || total < ihl + 8 || d[l3 + ihl] != 8 {
            return Next::stage_drop(drop::LOCAL);
        }
        let d = m.data_mut();
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&d[6..12]);
        d[0..6].copy_from_slice(&src_mac);
        d[6..12].copy_from_slice(&mac);
        let mut s = [0u8; 4];
        s.copy_from_slice(&d[l3 + 12..l3 + 16]);
        d.copy_within(l3 + 16..l3 + 20, l3 + 12);
        d[l3 + 16..l3 + 20].copy_from_slice(&s);
        d[l3 + 8] = 64;
        d[l3 + 10..l3 + 12].fill(0);
        let c = checksum::checksum(&d[l3..l3 + ihl]);
        d[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        let t = l3 + ihl;
        let old = u16::from_be_bytes([d[t], d[t + 1]]);
        let new = u16::from(d[t + 1]);
        let c = checksum::update16(be16(d, t + 2), old, new);
        d[t] = 0;
        d[t + 2..t + 4].copy_from_slice(&c.to_be_bytes());
        self.c.echo_replies += 1;
        Next::port(in_port)
    }

    /// A packet for one of our IPv6 addresses: echo requests are answered in place.
    #[cold]
    fn local6(&mut self, m: &mut Mbuf, l3: usize) -> Next {
        let in_port = m.port();
        let d = m.data();
        let Some(&mac) = self.port_macs.get(in_port as usize) else {
            return Next::stage_drop(drop::LOCAL);
        };
        let plen = usize::from(be16(d, l3 + 4));
        if d[l3 + 6] != 58 || plen < 8 || d[l3 + 40] != 128 {
            return Next::stage_drop(drop::LOCAL);
        }
        let d = m.data_mut();
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&d[6..12]);
        d[0..6].copy_from_slice(&src_mac);
        d[6..12].copy_from_slice(&mac);
        let mut s = [0u8; 16];
        s.copy_from_slice(&d[l3 + 8..l3 + 24]);
        d.copy_within(l3 + 24..l3 + 40, l3 + 8);
        d[l3 + 24..l3 + 40].copy_from_slice(&s);
        d[l3 + 7] = 64;
        let t = l3 + 40;
        let old = be16(d, t);
        let new = (129u16 << 8) | u16::from(d[t + 1]);
        let c = checksum::update16(be16(d, t + 2), old, new);
        d[t] = 129;
        d[t + 2..t + 4].copy_from_slice(&c.to_be_bytes());
        self.c.echo_replies += 1;
        Next::port(in_port)
    }

    /// May an ICMP error be sent about this frame? (Not about an ICMP error, a non-first
    /// fragment, an L2 group frame, or a martian or unspecified source; and within the rate.)
    fn icmp_allowed(&mut self, now: u64, d: &[u8]) -> bool {
        let Ok(p) = crate::wire::parse(d) else {
            return false;
        };
        if d[0] & 1 != 0 || (p.is_fragment && !p.first_fragment) {
            return false;
        }
        let l4 = usize::from(p.l4_offset);
        let l3 = usize::from(p.l3_offset);
        match p.l3 {
            crate::wire::L3::Ipv4 => {
                if martian_src4(be32(d, l3 + 12)) {
                    return false;
                }
                if p.l4_proto == 1
                    && d.get(l4)
                        .is_none_or(|&t| crate::wire::icmp::icmpv4_type::is_error(t))
                {
                    return false;
                }
            }
            crate::wire::L3::Ipv6 => {
                let src = u128::from_be_bytes(d[l3 + 8..l3 + 24].try_into().unwrap_or([0; 16]));
                if martian_src6(src) {
                    return false;
                }
                if p.l4_proto == 58 && d.get(l4).is_none_or(|&t| t < 128) {
                    return false;
                }
            }
            _ => return false,
        }
        if !self.bucket.take(now) {
            self.c.icmp_rate_limited += 1;
            return false;
        }
        true
    }

    /// Sends an ICMPv4 error about `m` back out of its input port.
    #[cold]
    fn icmp4(&mut self, ctx: &mut Ctx, m: &Mbuf, l3: usize, typ: u8, code: u8, rest: u32) {
        let in_port = m.port();
        let (Some(mac), Some(own)) = (
            self.port_macs.get(in_port as usize).copied(),
            self.addr4.get(in_port as usize).copied().flatten(),
        ) else {
            return;
        };
        let d = m.data();
        if ctx.emit_room() == 0 || !self.icmp_allowed(ctx.now, d) {
            return;
        }
        let total = usize::from(be16(d, l3 + 2)).min(d.len() - l3);
        let quote = total.min(576 - 28);
        let Some(mut out) = ctx.alloc() else {
            self.c.icmp_no_buffer += 1;
            return;
        };
        let Some(b) = out.append(l3 + 28 + quote) else {
            ctx.free_created(out);
            return;
        };
        b[0..6].copy_from_slice(&d[6..12]);
        b[6..12].copy_from_slice(&mac);
        b[12..l3].copy_from_slice(&d[12..l3]);
        let ip = &mut b[l3..];
        ip[0] = 0x45;
        ip[1] = 0xc0;
        ip[2..4].copy_from_slice(&((28 + quote) as u16).to_be_bytes());
        ip[4..8].fill(0);
        ip[8] = 64;
        ip[9] = 1;
        ip[10..12].fill(0);
        ip[12..16].copy_from_slice(&own.octets());
        ip[16..20].copy_from_slice(&d[l3 + 12..l3 + 16]);
        let icmp = &mut ip[20..];
        icmp[0] = typ;
        icmp[1] = code;
        icmp[2..4].fill(0);
        icmp[4..8].copy_from_slice(&rest.to_be_bytes());
        icmp[8..8 + quote].copy_from_slice(&d[l3..l3 + quote]);
        let c = checksum::checksum(&icmp[..8 + quote]);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        // The IPv4 header's checksum is left to transmit (the device's where it offloads).
        out.request_tx_csum(l3 as u16);
        self.send_error(ctx, out, m, in_port);
    }

    /// Sends an ICMPv6 error about `m` back out of its input port.
    #[cold]
    fn icmp6(&mut self, ctx: &mut Ctx, m: &Mbuf, l3: usize, typ: u8, code: u8, rest: u32) {
        let in_port = m.port();
        let (Some(mac), Some(own)) = (
            self.port_macs.get(in_port as usize).copied(),
            self.addr6.get(in_port as usize).copied().flatten(),
        ) else {
            return;
        };
        let d = m.data();
        if ctx.emit_room() == 0 || !self.icmp_allowed(ctx.now, d) {
            return;
        }
        let total = (usize::from(be16(d, l3 + 4)) + 40).min(d.len() - l3);
        let quote = total.min(1280 - 48);
        let Some(mut out) = ctx.alloc() else {
            self.c.icmp_no_buffer += 1;
            return;
        };
        let Some(b) = out.append(l3 + 48 + quote) else {
            ctx.free_created(out);
            return;
        };
        b[0..6].copy_from_slice(&d[6..12]);
        b[6..12].copy_from_slice(&mac);
        b[12..l3].copy_from_slice(&d[12..l3]);
        let ip = &mut b[l3..];
        ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        ip[4..6].copy_from_slice(&((8 + quote) as u16).to_be_bytes());
        ip[6] = 58;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&own.octets());
        ip[24..40].copy_from_slice(&d[l3 + 8..l3 + 24]);
        let (hdr, icmp) = ip.split_at_mut(40);
        icmp[0] = typ;
        icmp[1] = code;
        icmp[2..4].fill(0);
        icmp[4..8].copy_from_slice(&rest.to_be_bytes());
        icmp[8..8 + quote].copy_from_slice(&d[l3..l3 + quote]);
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&hdr[8..24]);
        dst.copy_from_slice(&hdr[24..40]);
        let ph = checksum::pseudo_v6(src, dst, 58, (8 + quote) as u32);
        let c = checksum::fold(checksum::sum16(&icmp[..8 + quote], ph));
        icmp[2..4].copy_from_slice(&(!c).to_be_bytes());
        self.send_error(ctx, out, m, in_port);
    }

    fn send_error(&mut self, ctx: &mut Ctx, mut out: Mbuf, trigger: &Mbuf, port: u16) {
        out.set_port(port);
        out.set_egress(port);
        out.set_seq(trigger.seq());
        out.set_timestamp(trigger.timestamp());
        ctx.emit(out);
        self.c.icmp_sent += 1;
    }
}

impl Stage for Router {
    fn name(&self) -> &str {
        "router"
    }

    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        let fib = self.fib.get();
        let w = &mut *self.w;
        let n = pkts.len().min(nexts.len()).min(BURST_MAX);
        let (mut c4, mut c6) = (0usize, 0usize);
        for i in 0..n {
            if let Some(p) = pkts.get(i + 4) {
                p.prefetch_data();
            }
            if pkts[i].handed_over() {
                // Routed by another worker, for a next hop this one resolves: packets before
                // it go first, as for ARP.
                w.route_pending(ctx, fib, pkts, nexts, c4, c6);
                (c4, c6) = (0, 0);
                nexts[i] = w.arrived(ctx, &mut pkts[i]);
                continue;
            }
            match w.classify(i, &mut pkts[i], &mut nexts[i]) {
                Class::Done => {}
                Class::V4 => {
                    let l3 = usize::from(w.l3[i]);
                    w.dst4[c4] = be32(pkts[i].data(), l3 + 16);
                    w.idx4[c4] = i as u16;
                    c4 += 1;
                }
                Class::V6 => {
                    let l3 = usize::from(w.l3[i]);
                    let d = pkts[i].data();
                    w.dst6[c6] =
                        u128::from_be_bytes(d[l3 + 24..l3 + 40].try_into().unwrap_or([0; 16]));
                    w.idx6[c6] = i as u16;
                    c6 += 1;
                }
                Class::Nd => {
                    w.route_pending(ctx, fib, pkts, nexts, c4, c6);
                    (c4, c6) = (0, 0);
                    let (before, rest) = pkts.split_at_mut(i);
                    let (nbefore, nrest) = nexts.split_at_mut(i);
                    let off = usize::from(w.l3[i]);
                    nrest[0] = w.nd(ctx, &mut rest[0], off, before, nbefore);
                }
                Class::Arp => {
                    // ARP changes the neighbour table: packets before it in the burst are
                    // routed first, so the result does not depend on where bursts are cut.
                    w.route_pending(ctx, fib, pkts, nexts, c4, c6);
                    (c4, c6) = (0, 0);
                    let (before, rest) = pkts.split_at_mut(i);
                    let (nbefore, nrest) = nexts.split_at_mut(i);
                    let off = usize::from(w.l3[i]);
                    nrest[0] = w.arp(ctx, &mut rest[0], off, before, nbefore);
                }
            }
        }
        w.route_pending(ctx, fib, pkts, nexts, c4, c6);
    }

    fn hold(&mut self, mut m: Mbuf) -> Result<(), Mbuf> {
        let tag = m.meta()[0];
        if tag & 0xffff_ffff_0000_0000 != HOLD_TAG {
            return Err(m);
        }
        m.meta_mut()[0] = 0;
        let i = tag as u32;
        self.w.neigh.reserved = self.w.neigh.reserved.saturating_sub(1);
        self.w.neigh.held.push((i, m));
        self.w.c.held += 1;
        if self.w.neigh.mac(i).is_some() {
            // Resolved in the same burst that asked to hold it: `poll` sends it on.
            self.w.next_poll = 0;
        }
        Ok(())
    }

    fn held(&self) -> usize {
        self.w.neigh.held.len()
    }

    fn poll(&mut self, ctx: &mut Ctx) {
        let w = &mut *self.w;
        if ctx.now < w.next_poll {
            return;
        }
        w.next_poll = ctx.now.saturating_add(10_000_000);
        for i in 0..w.neigh.entries.len() {
            let e = &w.neigh.entries[i];
            if e.held > 0 {
                if let Some(mac) = w.neigh.mac(i as u32) {
                    w.neigh.release(i as u32, |mut m| {
                        m.data_mut()[0..6].copy_from_slice(&mac);
                        ctx.emit(m);
                    });
                    continue;
                }
            }
            let e = &w.neigh.entries[i];
            if ctx.now < e.deadline {
                continue;
            }
            match e.state {
                State::Incomplete if e.tries >= w.cfg.retries => {
                    w.neigh.entries[i].state = State::Empty;
                    w.neigh
                        .release(i as u32, |m| ctx.drop_held(m, drop::NEIGHBOUR_TIMEOUT));
                }
                State::Incomplete => {
                    let (port, ip) = (e.port, e.ip);
                    let (seq, ts) = w
                        .neigh
                        .held
                        .iter()
                        .find(|(k, _)| *k == i as u32)
                        .map_or((0, ctx.now), |(_, m)| (m.seq(), m.timestamp()));
                    let e = &mut w.neigh.entries[i];
                    e.tries += 1;
                    e.deadline = ctx.now.saturating_add(w.cfg.retry_ns);
                    w.solicit(ctx, port, ip, seq, ts);
                }
                State::Reachable => w.neigh.entries[i].state = State::Empty,
                _ => {}
            }
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        let nb = &mut self.w.neigh;
        for (_, m) in nb.held.drain(..) {
            ctx.drop_held(m, drop::SHUTDOWN);
        }
        nb.reserved = 0;
        for e in &mut nb.entries {
            e.held = 0;
        }
    }

    fn drop_reasons(&self) -> &[&'static str] {
        DROP_NAMES
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let c = &self.w.c;
        let fib = self.fib.held();
        [
            ("icmp_sent", c.icmp_sent),
            ("icmp_rate_limited", c.icmp_rate_limited),
            ("icmp_no_buffer", c.icmp_no_buffer),
            ("echo_replies", c.echo_replies),
            ("arp_nd_replies", c.arp_replies),
            ("arp_nd_requests", c.arp_requests),
            ("neighbours_learned", c.neighbours_learned),
            ("neighbour_handoffs", c.neighbour_handoffs),
            ("packets_held", c.held),
            ("fragments_sent", c.fragments),
            ("neighbours", self.w.neigh.len() as u64),
            ("fib_version", fib.version),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
