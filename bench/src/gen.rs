//! The traffic generator: a [`Port`] whose `rx_burst` makes packets, in the spirit of
//! pktgen-dpdk and TRex stateless.
//!
//! What it makes: UDP, TCP (ACK segments) or ICMP echo requests, over IPv4 or IPv6, with an
//! optional 802.1Q tag; a fixed frame size (64 to 1518 bytes) or the simple IMIX 7:4:1
//! (64/594/1518); `flows` flows spread uniformly or by a Zipf law over source addresses, source
//! ports and destination addresses; at full speed or paced by the TSC to a given rate; and in
//! every packet, right after the L4 header, a 4-byte magic and the 8-byte TSC at which the
//! burst was made, so the [`crate::sink`] at the far end measures latency.
//!
//! Why it is cheap. Buffers come from the engine's pool and go back to it, so a buffer holds
//! whatever the last packet left there; the generator cannot rely on earlier contents and writes
//! every header each time. It does so with one copy: at start-up it builds one header template
//! per flow (all checksums valid, for the base frame size) in one table, and per packet it
//! copies that flow's template (64 or 128 bytes, a constant size, so a few vector moves), patches the length fields for the other IMIX sizes (two
//! stores and two RFC 1624 checksum updates) and stores the timestamp (one store and one
//! checksum update). Which flow comes next is read from a pre-drawn sequence (one load), so
//! Zipf costs the same as uniform. The TSC is read once per burst.
//!
//! With many flows the per-flow table would outgrow the caches and cost a miss per packet, so
//! past `max_table_bytes` (256 KiB) the generator keeps one template and patches it per packet:
//! source and destination address, source port (or echo id), and RFC 1624 updates of the IPv4
//! and L4 checksums, from a packed per-flow key read in sequence order (a stream the prefetcher
//! hides). [`rx_cost`] measures what is left: cycles per packet of `rx_burst` with allocation,
//! against the null port's.
//!
//! What it does not do: the payload past the headers is not rewritten (it is whatever the
//! buffer held; `fill_payload` zeroes it at a cost proportional to the size), and L4 checksums
//! are computed over a zero payload, so they verify only when the payload is zero. None of the
//! dataplane's stages verify L4 checksums. Frame sizes are bytes in the buffer (the 4-byte FCS
//! is not there, as with DPDK's `net_null`); a size too small for the headers, the magic and the
//! timestamp is raised to fit (see [`Generator::frame_sizes`]).

use dataplane::wire::checksum;
use pmd::port::{Port, PortDrop, PortError, PortStats};
use pmd::{Burst, PoolCache};

/// Magic written before the timestamp, so the sink can tell a generated packet.
pub const MAGIC: u32 = 0x5047_454e; // "PGEN"

/// Most flows a generator makes (its flow sequence is at least this long when there are this
/// many: 64 MiB of indices, plus 128 MiB of keys in patch mode).
pub const MAX_FLOWS: u32 = 1 << 24;

/// The IMIX 7:4:1 frame sizes (bytes without FCS) and their weights.
pub const IMIX: [(u16, u32); 3] = [(64, 7), (594, 4), (1518, 1)];

/// Order of the IMIX classes in every 12 packets (7 small, 4 medium, 1 large, interleaved).
const IMIX_PATTERN: [u8; 12] = [0, 1, 0, 0, 1, 0, 2, 0, 1, 0, 0, 1];

/// The L4 protocol of generated packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP datagrams (destination port 53).
    Udp,
    /// TCP segments with ACK set (destination port 80).
    Tcp,
    /// ICMP (or ICMPv6) echo requests; the flow's source "port" is the echo identifier.
    Icmp,
}

/// Frame size: fixed, or IMIX 7:4:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    /// Every frame this many bytes (64..=1518).
    Fixed(u16),
    /// 64, 594 and 1518 bytes in the ratio 7:4:1.
    Imix,
}

/// How flows are drawn.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// Every flow equally often.
    Uniform,
    /// Flow `k` (from 0) with probability proportional to `1 / (k + 1)^s`.
    Zipf(f64),
}

/// Generator parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GenConfig {
    /// L4 protocol.
    pub proto: Proto,
    /// IPv6 instead of IPv4.
    pub ipv6: bool,
    /// 802.1Q VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Frame size.
    pub size: Size,
    /// Number of flows (1..=16M: `bench nat` puts 10M sessions in one table).
    pub flows: u32,
    /// How flows are drawn.
    pub spread: Spread,
    /// Distinct source addresses (flow `i` uses address `i % src_ips`).
    pub src_ips: u32,
    /// Distinct destination addresses.
    pub dst_ips: u32,
    /// Packets per second, or `None` for as fast as the caller polls.
    pub rate_pps: Option<f64>,
    /// Stop after this many packets.
    pub limit: Option<u64>,
    /// Zero the payload past the headers in every packet (costs a `memset` of the frame).
    pub fill_payload: bool,
    /// Largest per-flow template table; past it (many flows), one template is patched per
    /// packet instead (addresses, port, three checksum updates), so the generator does not
    /// take a cache miss per packet on a table larger than the caches.
    pub max_table_bytes: usize,
    /// Seed for the flow sequence.
    pub seed: u64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            proto: Proto::Udp,
            ipv6: false,
            vlan: None,
            size: Size::Fixed(64),
            flows: 1024,
            spread: Spread::Uniform,
            src_ips: 256,
            dst_ips: 1,
            rate_pps: None,
            limit: None,
            fill_payload: false,
            max_table_bytes: 256 << 10,
            seed: 1,
        }
    }
}

/// Where things are in a generated frame.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the L4 header.
    pub l4: usize,
    /// Offset of the L4 checksum.
    pub l4_csum: usize,
    /// Offset of the magic; the TSC timestamp (big-endian `u64`) follows it.
    pub magic: usize,
    /// Bytes of headers, magic and timestamp: what is copied per packet.
    pub hdr_len: usize,
}

impl Layout {
    /// The layout of frames made with `cfg`.
    pub fn of(cfg: &GenConfig) -> Layout {
        let l3 = if cfg.vlan.is_some() { 18 } else { 14 };
        let l4 = l3 + if cfg.ipv6 { 40 } else { 20 };
        let (l4_hdr, csum_at) = match cfg.proto {
            Proto::Udp => (8, 6),
            Proto::Tcp => (20, 16),
            Proto::Icmp => (8, 2),
        };
        Layout {
            l3,
            l4,
            l4_csum: l4 + csum_at,
            magic: l4 + l4_hdr,
            hdr_len: l4 + l4_hdr + 12,
        }
    }

    /// Offset of the timestamp.
    pub fn ts(&self) -> usize {
        self.magic + 4
    }
}

/// Per size class: the frame length and the length fields for it.
#[derive(Debug, Clone, Copy, Default)]
struct Class {
    frame: u16,
    /// IPv4 total length, or IPv6 payload length.
    ip_len: u16,
    /// L4 length (UDP length field and pseudo-header length).
    l4_len: u16,
}

/// The generator port.
pub struct Generator {
    name: String,
    id: u16,
    lay: Layout,
    stride: usize,
    /// One header template per flow, `stride` bytes apart, built for `classes[0]`.
    table: Vec<u8>,
    /// Pre-drawn flow indices (power-of-two length).
    seq: Vec<u32>,
    pos: usize,
    classes: [Class; 3],
    imix: bool,
    k: usize,
    v4: bool,
    proto: Proto,
    fill_payload: bool,
    /// Patch mode: one template (flow 0), and per sequence slot the flow's packed key
    /// (source index, source port, destination index), read in order.
    keys: Vec<u64>,
    /// Pacing: TSC ticks per packet as 32.32 fixed point, and the schedule.
    pace: Option<Pace>,
    limit: Option<u64>,
    stats: PortStats,
}

#[derive(Debug, Clone, Copy)]
struct Pace {
    pps: f64,
    hz: f64,
    start: u64,
    emitted: u64,
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// xorshift64*: a small, fast, seeded generator (quality is not an issue here).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Generator {
    /// A generator port `id` named `name`; refuses impossible parameters.
    pub fn new(name: &str, id: u16, cfg: &GenConfig) -> Result<Generator, String> {
        if cfg.flows == 0 || cfg.flows > MAX_FLOWS {
            return Err(format!(
                "flows {} is not between 1 and {MAX_FLOWS}",
                cfg.flows
            ));
        }
        if cfg.src_ips == 0 || cfg.dst_ips == 0 || cfg.dst_ips > 65_536 {
            return Err("src-ips must be at least 1 and dst-ips between 1 and 65536".into());
        }
        if let Size::Fixed(s) = cfg.size {
            if !(64..=1518).contains(&s) {
                return Err(format!("frame size {s} is not between 64 and 1518"));
            }
        }
        if let Some(v) = cfg.vlan {
            if v == 0 || v > 4094 {
                return Err(format!("vlan {v} is not between 1 and 4094"));
            }
        }
        if let Some(r) = cfg.rate_pps {
            if r.is_nan() || r <= 0.0 {
                return Err(format!("rate {r} pps is not positive"));
            }
        }
        let lay = Layout::of(cfg);
        let sizes: Vec<u16> = match cfg.size {
            Size::Fixed(s) => vec![s],
            Size::Imix => IMIX.iter().map(|&(s, _)| s).collect(),
        };
        let mut classes = [Class::default(); 3];
        for (c, &s) in classes.iter_mut().zip(&sizes) {
            let frame = s.max(lay.hdr_len as u16);
            c.frame = frame;
            c.ip_len = if cfg.ipv6 {
                frame - lay.l3 as u16 - 40
            } else {
                frame - lay.l3 as u16
            };
            c.l4_len = frame - lay.l4 as u16;
        }
        // 64 or 128 bytes per template (the bytes past the headers are zero payload), so the
        // per-packet copy has a constant size whenever the frame is at least that long.
        let stride = if lay.hdr_len <= 64 { 64 } else { 128 };
        let patch = stride * cfg.flows as usize > cfg.max_table_bytes;
        let templates = if patch { 1 } else { cfg.flows };
        let mut table = vec![0u8; stride * templates as usize];
        for i in 0..templates {
            let at = i as usize * stride;
            build(&mut table[at..at + lay.hdr_len], cfg, &lay, &classes[0], i);
        }
        let mut seq = draw(cfg);
        let keys = if patch {
            let k = seq.iter().map(|&f| flow_key(cfg, f)).collect();
            seq.iter_mut().for_each(|f| *f = 0);
            k
        } else {
            Vec::new()
        };
        Ok(Generator {
            name: name.into(),
            id,
            lay,
            stride,
            table,
            seq,
            pos: 0,
            classes,
            imix: cfg.size == Size::Imix,
            k: 0,
            v4: !cfg.ipv6,
            proto: cfg.proto,
            fill_payload: cfg.fill_payload,
            keys,
            pace: cfg.rate_pps.map(|pps| Pace {
                pps,
                hz: pmd::cpu::tsc_hz() as f64,
                start: 0,
                emitted: 0,
            }),
            limit: cfg.limit,
            stats: PortStats::default(),
        })
    }

    /// True when one template is patched per packet (many flows), not copied per flow.
    pub fn patches(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Where things are in the frames.
    pub fn layout(&self) -> Layout {
        self.lay
    }

    /// The frame sizes actually made (raised to fit the headers where needed).
    pub fn frame_sizes(&self) -> Vec<u16> {
        let n = if self.imix { 3 } else { 1 };
        self.classes[..n].iter().map(|c| c.frame).collect()
    }

    /// Bytes of the template table.
    pub fn table_bytes(&self) -> usize {
        self.table.len()
    }

    /// Patch mode: turns flow 0's packet in `d` into the flow with `key`.
    #[inline(always)]
    fn patch(&self, d: &mut [u8], key: u64) {
        let (src_n, sport, dst_n) = (key as u32, (key >> 32) as u16, (key >> 48) as u16);
        let lay = &self.lay;
        let udp = self.proto == Proto::Udp;
        let up32 = |c: u16, o: u32, n: u32| {
            if udp {
                checksum::udp_update32(c, o, n)
            } else {
                checksum::update32(c, o, n)
            }
        };
        let mut l4c = get16(d, lay.l4_csum);
        let (s_at, d_at, s_old, d_old) = if self.v4 {
            (lay.l3 + 12, lay.l3 + 16, V4_SRC, V4_DST)
        } else {
            (lay.l3 + 20, lay.l3 + 36, V6_SRC_LOW, V6_DST_LOW)
        };
        let (s_new, d_new) = (s_old.wrapping_add(src_n), d_old.wrapping_add(dst_n as u32));
        d[s_at..s_at + 4].copy_from_slice(&s_new.to_be_bytes());
        d[d_at..d_at + 4].copy_from_slice(&d_new.to_be_bytes());
        if self.v4 {
            let ipc = get16(d, lay.l3 + 10);
            let ipc = checksum::update32(checksum::update32(ipc, s_old, s_new), d_old, d_new);
            put16(d, lay.l3 + 10, ipc);
        }
        if !(self.v4 && self.proto == Proto::Icmp) {
            // The addresses are in the pseudo-header.
            l4c = up32(up32(l4c, s_old, s_new), d_old, d_new);
        }
        let p_at = if self.proto == Proto::Icmp {
            lay.l4 + 4
        } else {
            lay.l4
        };
        put16(d, p_at, sport);
        l4c = up32(l4c, SPORT_BASE as u32, sport as u32);
        put16(d, lay.l4_csum, l4c);
    }

    /// How many packets the pacer allows now (at most `max`).
    #[inline]
    fn due(&mut self, max: usize) -> usize {
        let Some(p) = &mut self.pace else {
            return max;
        };
        let now = pmd::cpu::rdtsc();
        if p.start == 0 {
            p.start = now;
        }
        let due = ((now - p.start) as f64 * p.pps / p.hz) as u64;
        let mut owed = due.saturating_sub(p.emitted);
        if owed > max as u64 {
            // Behind schedule (the core was busy or preempted): give up the debt beyond one
            // burst rather than send a long line of full bursts; the offered rate is measured
            // from what was actually sent.
            p.emitted = due - max as u64;
            owed = max as u64;
        }
        p.emitted += owed;
        owed as usize
    }

    /// Writes one packet of class `c` for flow `f` stamped `ts` into `d` (already sized).
    #[inline(always)]
    fn write(&self, d: &mut [u8], f: usize, c: usize, ts: u64) {
        let lay = &self.lay;
        let h = lay.hdr_len;
        let at = f * self.stride;
        let t = &self.table[at..at + self.stride];
        // A copy of a constant size compiles to a few vector moves; a variable one is a call.
        if self.stride == 64 && d.len() >= 64 {
            copy_fixed::<64>(d, t);
        } else if self.stride == 128 && d.len() >= 128 {
            copy_fixed::<128>(d, t);
        } else {
            d[..h].copy_from_slice(&t[..h]);
        }
        let mut l4c = get16(d, lay.l4_csum);
        if c != 0 {
            let (base, cl) = (&self.classes[0], &self.classes[c]);
            if self.v4 {
                put16(d, lay.l3 + 2, cl.ip_len);
                let ipc = checksum::update16(get16(d, lay.l3 + 10), base.ip_len, cl.ip_len);
                put16(d, lay.l3 + 10, ipc);
            } else {
                put16(d, lay.l3 + 4, cl.ip_len);
            }
            match self.proto {
                Proto::Udp => {
                    put16(d, lay.l4 + 4, cl.l4_len);
                    // The length is in the header and in the pseudo-header.
                    l4c = checksum::udp_update16(l4c, base.l4_len, cl.l4_len);
                    l4c = checksum::udp_update16(l4c, base.l4_len, cl.l4_len);
                }
                Proto::Tcp => l4c = checksum::update16(l4c, base.l4_len, cl.l4_len),
                Proto::Icmp if !self.v4 => l4c = checksum::update16(l4c, base.l4_len, cl.l4_len),
                Proto::Icmp => {}
            }
        }
        let t = lay.ts();
        d[t..t + 8].copy_from_slice(&ts.to_be_bytes());
        l4c = if self.proto == Proto::Udp {
            checksum::udp_update32(
                checksum::udp_update32(l4c, 0, (ts >> 32) as u32),
                0,
                ts as u32,
            )
        } else {
            checksum::update32(checksum::update32(l4c, 0, (ts >> 32) as u32), 0, ts as u32)
        };
        put16(d, lay.l4_csum, l4c);
        if self.fill_payload {
            d[h..].fill(0);
        }
    }
}

#[inline(always)]
fn copy_fixed<const N: usize>(d: &mut [u8], t: &[u8]) {
    if let (Some(d), Some(t)) = (d.first_chunk_mut::<N>(), t.first_chunk::<N>()) {
        *d = *t;
    }
}

/// Flow 0's addresses (the low 32 bits for IPv6) and source port; flow `i` adds to them.
const V4_SRC: u32 = 0x0a00_0001; // 10.0.0.1
const V4_DST: u32 = 0xc0a8_0001; // 192.168.0.1
const V6_SRC_LOW: u32 = 0x0100_0000; // 2001:db8::100:0
const V6_DST_LOW: u32 = 1; // 2001:db8:1::1
const SPORT_BASE: u16 = 1024;

/// Flow `i`'s (source index, source port, destination index).
fn flow_parts(cfg: &GenConfig, i: u32) -> (u32, u16, u32) {
    let src_n = i % cfg.src_ips;
    let rest = i / cfg.src_ips;
    (
        src_n,
        SPORT_BASE + (rest % 64_000) as u16,
        (rest / 64_000) % cfg.dst_ips,
    )
}

/// Flow `i`'s parts packed for [`Generator::patch`].
fn flow_key(cfg: &GenConfig, i: u32) -> u64 {
    let (s, p, d) = flow_parts(cfg, i);
    s as u64 | (p as u64) << 32 | (d as u64) << 48
}

/// Writes flow `i`'s headers (magic included, timestamp zero) for class `c` into `b`.
fn build(b: &mut [u8], cfg: &GenConfig, lay: &Layout, c: &Class, i: u32) {
    b.fill(0);
    b[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    let ethertype: u16 = if cfg.ipv6 { 0x86dd } else { 0x0800 };
    if let Some(v) = cfg.vlan {
        put16(b, 12, 0x8100);
        put16(b, 14, v);
        put16(b, 16, ethertype);
    } else {
        put16(b, 12, ethertype);
    }
    let (src_n, sport, dst_n) = flow_parts(cfg, i);
    let (dport, l4proto) = match cfg.proto {
        Proto::Udp => (53u16, 17u8),
        Proto::Tcp => (80, 6),
        Proto::Icmp => (0, if cfg.ipv6 { 58 } else { 1 }),
    };
    let l3 = lay.l3;
    let pseudo = if cfg.ipv6 {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        src[12..].copy_from_slice(&V6_SRC_LOW.wrapping_add(src_n).to_be_bytes());
        let mut dst = [0u8; 16];
        dst[..6].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        dst[12..].copy_from_slice(&V6_DST_LOW.wrapping_add(dst_n).to_be_bytes());
        b[l3] = 0x60;
        put16(b, l3 + 4, c.ip_len);
        b[l3 + 6] = l4proto;
        b[l3 + 7] = 64;
        b[l3 + 8..l3 + 24].copy_from_slice(&src);
        b[l3 + 24..l3 + 40].copy_from_slice(&dst);
        checksum::pseudo_v6(src, dst, l4proto, c.l4_len as u32)
    } else {
        let src = V4_SRC.wrapping_add(src_n).to_be_bytes();
        let dst = V4_DST.wrapping_add(dst_n).to_be_bytes();
        b[l3] = 0x45;
        put16(b, l3 + 2, c.ip_len);
        put16(b, l3 + 6, 0x4000);
        b[l3 + 8] = 64;
        b[l3 + 9] = l4proto;
        b[l3 + 12..l3 + 16].copy_from_slice(&src);
        b[l3 + 16..l3 + 20].copy_from_slice(&dst);
        let ipc = checksum::checksum(&b[l3..l3 + 20]);
        put16(b, l3 + 10, ipc);
        checksum::pseudo_v4(src, dst, l4proto, c.l4_len as u32)
    };
    let l4 = lay.l4;
    match cfg.proto {
        Proto::Udp => {
            put16(b, l4, sport);
            put16(b, l4 + 2, dport);
            put16(b, l4 + 4, c.l4_len);
        }
        Proto::Tcp => {
            put16(b, l4, sport);
            put16(b, l4 + 2, dport);
            b[l4 + 4..l4 + 8].copy_from_slice(&1u32.to_be_bytes());
            b[l4 + 12] = 0x50;
            b[l4 + 13] = 0x10; // ACK
            put16(b, l4 + 14, 65_535);
        }
        Proto::Icmp => {
            b[l4] = if cfg.ipv6 { 128 } else { 8 };
            put16(b, l4 + 4, sport);
            put16(b, l4 + 6, 1);
        }
    }
    b[lay.magic..lay.magic + 4].copy_from_slice(&MAGIC.to_be_bytes());
    let initial = if cfg.proto == Proto::Icmp && !cfg.ipv6 {
        0
    } else {
        pseudo
    };
    // Over the L4 header, magic and zero timestamp; the payload is taken as zero.
    let mut csum = !checksum::fold(checksum::sum16(&b[l4..lay.hdr_len], initial));
    if cfg.proto == Proto::Udp {
        csum = checksum::udp_nonzero(csum);
    }
    put16(b, lay.l4_csum, csum);
}

/// Draws the sequence of flow indices the generator cycles through.
fn draw(cfg: &GenConfig) -> Vec<u32> {
    let n = cfg.flows as usize;
    let len = n.max(4096).next_power_of_two().min(MAX_FLOWS as usize);
    let mut rng = Rng(cfg.seed.max(1) ^ 0x9e37_79b9_7f4a_7c15);
    let mut seq: Vec<u32> = match cfg.spread {
        Spread::Uniform => (0..len).map(|j| (j % n) as u32).collect(),
        Spread::Zipf(s) => {
            let mut cdf = Vec::with_capacity(n);
            let mut acc = 0.0;
            for k in 0..n {
                acc += 1.0 / ((k + 1) as f64).powf(s);
                cdf.push(acc);
            }
            (0..len)
                .map(|_| {
                    let u = rng.unit() * acc;
                    cdf.partition_point(|&c| c < u).min(n - 1) as u32
                })
                .collect()
        }
    };
    for j in (1..seq.len()).rev() {
        let r = (rng.next() % (j as u64 + 1)) as usize;
        seq.swap(j, r);
    }
    seq
}

impl Port for Generator {
    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn rx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let mut want = self.due(max);
        if let Some(l) = self.limit {
            want = want.min(l.saturating_sub(self.stats.rx_packets) as usize);
        }
        if want == 0 {
            return Ok(0);
        }
        let start = burst.len();
        let got = pool.alloc_burst(burst, want);
        let ts = pmd::cpu::rdtsc();
        let mask = self.seq.len() - 1;
        let mut bytes = 0u64;
        let id = self.id;
        for m in &mut burst.as_mut_slice()[start..] {
            let slot = self.pos & mask;
            let f = self.seq[slot] as usize;
            self.pos = self.pos.wrapping_add(1);
            let c = if self.imix {
                self.k = if self.k == 11 { 0 } else { self.k + 1 };
                IMIX_PATTERN[self.k] as usize
            } else {
                0
            };
            let len = self.classes[c].frame as usize;
            m.set_len(len);
            m.set_port(id);
            self.write(m.data_mut(), f, c, ts);
            if let Some(&key) = self.keys.get(slot) {
                self.patch(m.data_mut(), key);
            }
            bytes += len as u64;
        }
        self.stats.rx_packets += got as u64;
        self.stats.rx_bytes += bytes;
        self.stats.drops[PortDrop::RxNoBuffer as usize] += (want - got) as u64;
        Ok(got)
    }

    #[inline]
    fn tx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        self.stats.tx_packets += n as u64;
        self.stats.tx_bytes += burst.as_slice().iter().map(|m| m.len() as u64).sum::<u64>();
        pool.free_burst(burst);
        Ok(n)
    }

    fn at_end(&self) -> bool {
        self.limit.is_some_and(|l| self.stats.rx_packets >= l)
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// Cycles per packet of `port.rx_burst` (with the pool allocation it does) followed by a
/// free of the burst, over `packets` packets in bursts of `burst`, on the calling thread.
pub fn rx_cost(port: &mut dyn Port, cache: &mut PoolCache, burst: usize, packets: u64) -> f64 {
    let mut b = Burst::new();
    let mut done = 0u64;
    // Warm the caches and the template table.
    for _ in 0..64 {
        let _ = port.rx_burst(0, cache, &mut b, burst);
        cache.free_burst(&mut b);
    }
    let t0 = pmd::cpu::rdtsc();
    while done < packets {
        match port.rx_burst(0, cache, &mut b, burst) {
            Ok(n) => done += n as u64,
            Err(_) => break,
        }
        cache.free_burst(&mut b);
    }
    (pmd::cpu::rdtsc() - t0) as f64 / done.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(cfg: &GenConfig, n: usize) -> Vec<Vec<u8>> {
        let pool = pmd::Pool::new(&pmd::PoolConfig {
            count: 4096,
            huge: pmd::mem::HugePolicy::Never,
            ..Default::default()
        })
        .expect("pool");
        let mut cache = pool.cache();
        let mut g = Generator::new("gen", 0, cfg).expect("gen");
        let mut b = Burst::new();
        let mut out = Vec::new();
        while out.len() < n {
            g.rx_burst(0, &mut cache, &mut b, 32).expect("rx");
            for m in b.as_slice() {
                out.push(m.data().to_vec());
            }
            cache.free_burst(&mut b);
        }
        out
    }

    fn check(cfg: &GenConfig) {
        let lay = Layout::of(cfg);
        for f in frames(cfg, 48) {
            let l3 = lay.l3;
            let l4 = &f[lay.l4..];
            if cfg.ipv6 {
                assert_eq!(get16(&f, l3 + 4) as usize, f.len() - l3 - 40);
                let src: [u8; 16] = f[l3 + 8..l3 + 24].try_into().expect("16");
                let dst: [u8; 16] = f[l3 + 24..l3 + 40].try_into().expect("16");
                let p = checksum::pseudo_v6(src, dst, f[l3 + 6], l4.len() as u32);
                assert!(checksum::verify(&zero_payload(l4, &lay), p), "{cfg:?}");
            } else {
                assert_eq!(get16(&f, l3 + 2) as usize, f.len() - l3);
                assert!(checksum::verify(&f[l3..l3 + 20], 0));
                let src: [u8; 4] = f[l3 + 12..l3 + 16].try_into().expect("4");
                let dst: [u8; 4] = f[l3 + 16..l3 + 20].try_into().expect("4");
                let p = if cfg.proto == Proto::Icmp {
                    0
                } else {
                    checksum::pseudo_v4(src, dst, f[l3 + 9], l4.len() as u32)
                };
                assert!(checksum::verify(&zero_payload(l4, &lay), p), "{cfg:?}");
            }
            if cfg.proto == Proto::Udp {
                assert_eq!(get16(l4, 4) as usize, l4.len());
            }
            assert_eq!(&f[lay.magic..lay.magic + 4], &MAGIC.to_be_bytes());
        }
    }

    fn zero_payload(l4: &[u8], lay: &Layout) -> Vec<u8> {
        let mut v = l4.to_vec();
        let h = lay.hdr_len - lay.l4;
        v[h..].fill(0);
        v
    }

    #[test]
    fn checksums_hold_for_every_template_and_size() {
        for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
            for ipv6 in [false, true] {
                for vlan in [None, Some(7)] {
                    for size in [Size::Fixed(64), Size::Fixed(1518), Size::Imix] {
                        check(&GenConfig {
                            proto,
                            ipv6,
                            vlan,
                            size,
                            flows: 100,
                            ..Default::default()
                        });
                    }
                }
            }
        }
    }

    #[test]
    fn patch_mode_makes_the_same_frames_as_the_table() {
        for proto in [Proto::Udp, Proto::Tcp, Proto::Icmp] {
            for ipv6 in [false, true] {
                for size in [Size::Fixed(64), Size::Imix] {
                    let table = GenConfig {
                        proto,
                        ipv6,
                        vlan: Some(9),
                        size,
                        flows: 70_000, // source ports and addresses both vary
                        src_ips: 300,
                        dst_ips: 3,
                        max_table_bytes: usize::MAX,
                        ..Default::default()
                    };
                    let patch = GenConfig {
                        max_table_bytes: 0,
                        ..table.clone()
                    };
                    assert!(Generator::new("g", 0, &patch).expect("gen").patches());
                    assert!(!Generator::new("g", 0, &table).expect("gen").patches());
                    check(&patch);
                    let lay = Layout::of(&table);
                    let strip = |mut f: Vec<u8>| {
                        f[lay.ts()..lay.ts() + 8].fill(0);
                        f[lay.l4_csum..lay.l4_csum + 2].fill(0);
                        f.truncate(lay.hdr_len);
                        f
                    };
                    let a: Vec<_> = frames(&table, 300).into_iter().map(strip).collect();
                    let b: Vec<_> = frames(&patch, 300).into_iter().map(strip).collect();
                    assert_eq!(a, b, "{proto:?} ipv6={ipv6} {size:?}");
                }
            }
        }
    }

    #[test]
    fn imix_is_seven_four_one() {
        let f = frames(
            &GenConfig {
                size: Size::Imix,
                ..Default::default()
            },
            1200,
        );
        let count = |s: usize| f.iter().take(1200).filter(|x| x.len() == s).count();
        assert_eq!((count(64), count(594), count(1518)), (700, 400, 100));
    }

    #[test]
    fn zipf_favours_the_first_flows() {
        let cfg = GenConfig {
            flows: 1000,
            spread: Spread::Zipf(1.1),
            ..Default::default()
        };
        let s = draw(&cfg);
        let first = s.iter().filter(|&&f| f == 0).count();
        let last = s.iter().filter(|&&f| f == 999).count();
        assert!(first > 50 * last.max(1), "{first} vs {last}");
        let u = draw(&GenConfig::default());
        assert_eq!(u.iter().filter(|&&f| f == 0).count(), 4);
    }

    #[test]
    fn pacing_holds_the_rate() {
        let pool = pmd::Pool::new(&pmd::PoolConfig {
            count: 4096,
            huge: pmd::mem::HugePolicy::Never,
            ..Default::default()
        })
        .expect("pool");
        let mut cache = pool.cache();
        let mut g = Generator::new(
            "gen",
            0,
            &GenConfig {
                rate_pps: Some(100_000.0),
                ..Default::default()
            },
        )
        .expect("gen");
        let mut b = Burst::new();
        let t0 = std::time::Instant::now();
        let mut n = 0;
        while t0.elapsed() < std::time::Duration::from_millis(100) {
            n += g.rx_burst(0, &mut cache, &mut b, 32).expect("rx");
            cache.free_burst(&mut b);
        }
        let secs = t0.elapsed().as_secs_f64();
        // Never faster than asked (plus one burst). Slower only when the thread lost the CPU:
        // the pacer gives up a debt longer than one burst, so on a loaded machine (this one is
        // shared) the count may fall well short; it must not collapse.
        assert!(n as f64 <= 100_000.0 * secs + 32.0, "{n} in {secs} s");
        assert!(n >= 2_000, "{n} in {secs} s");
    }
}
