//! NAT44 conformance: one named test per requirement of RFC 4787 (REQ-1..14), RFC 5382
//! (REQ-1..10), RFC 5508 (REQ-1..11) and the updates of RFC 7857, driven by packets through the
//! real stage (built from a TOML configuration, run by the engine's own `ChainRunner`) on a
//! virtual clock, so hours of NAT life take milliseconds.
//!
//! A MUST that is not met fails its test. A SHOULD (or RECOMMENDED) that is not met is reported
//! by name on stderr (`SHOULD not met: ...`) and does not fail. Packets are built and read back
//! here with this file's own encoder, decoder and checksum, not the dataplane's.

use std::path::Path;

use dataplane::config::{BuildEnv, Config};
use dataplane::engine::chain::ChainRunner;
use dataplane::stage::Stage;
use pmd::mem::HugePolicy;
use pmd::{Burst, Pool, PoolCache, PoolConfig};

mod common;
use common::{csum, pseudo};

const INSIDE: u16 = 0;
const OUTSIDE: u16 = 1;
const MAC_IN: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_OUT: [u8; 6] = [2, 0, 0, 0, 0, 2];
const HOST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const T0: u64 = 1_700_000_000_000_000_000;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn a(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// Reports a SHOULD that is not met, by name.
fn should(name: &str, met: bool) {
    if !met {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "SHOULD not met: {name}");
    }
}

// ---------------------------------------------------------------------------------------------
// An independent encoder/decoder.

/// An IPv4 packet in an Ethernet frame; `l4` gets its checksum filled (unless UDP with
/// `udp_zero`).
fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, mut l4: Vec<u8>, ipid: u16, frag: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_IN);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x08, 0]);
    let tot = 20 + l4.len();
    let mut ip = vec![0x45, 0, (tot >> 8) as u8, tot as u8];
    ip.extend_from_slice(&ipid.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    if frag & 0x3fff == 0 {
        match proto {
            TCP => {
                l4[16..18].copy_from_slice(&[0, 0]);
                let c = csum(&l4, pseudo(src, dst, TCP, l4.len()));
                l4[16..18].copy_from_slice(&c.to_be_bytes());
            }
            UDP if l4[6..8] != [0xde, 0xad] => {
                l4[6..8].copy_from_slice(&[0, 0]);
                let mut c = csum(&l4, pseudo(src, dst, UDP, l4.len()));
                if c == 0 {
                    c = 0xffff;
                }
                l4[6..8].copy_from_slice(&c.to_be_bytes());
            }
            UDP => l4[6..8].copy_from_slice(&[0, 0]),
            ICMP => {
                l4[2..4].copy_from_slice(&[0, 0]);
                let c = csum(&l4, 0);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
            }
            _ => {}
        }
    }
    f.extend_from_slice(&ip);
    f.extend_from_slice(&l4);
    f
}

fn udp(src: &str, sp: u16, dst: &str, dp: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4.extend_from_slice(b"hello nat");
    let n = l4.len() as u16;
    l4[4..6].copy_from_slice(&n.to_be_bytes());
    frame(a(src), a(dst), UDP, l4, 1, 0)
}

fn udp_nocsum(src: &str, sp: u16, dst: &str, dp: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4.extend_from_slice(b"no checksum");
    let n = l4.len() as u16;
    l4[4..6].copy_from_slice(&n.to_be_bytes());
    l4[6..8].copy_from_slice(&[0xde, 0xad]);
    frame(a(src), a(dst), UDP, l4, 1, 0)
}

fn tcp(src: &str, sp: u16, dst: &str, dp: u16, flags: u8) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
    l4[12] = 0x50;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&8192u16.to_be_bytes());
    frame(a(src), a(dst), TCP, l4, 7, 0)
}

fn ping(src: &str, dst: &str, ty: u8, id: u16) -> Vec<u8> {
    let mut l4 = vec![ty, 0, 0, 0];
    l4.extend_from_slice(&id.to_be_bytes());
    l4.extend_from_slice(&[0, 1]);
    l4.extend_from_slice(b"abcdefgh");
    frame(a(src), a(dst), ICMP, l4, 3, 0)
}

/// An ICMP error from `src` to `dst` quoting the IP packet of `quoted` (a frame).
fn icmp_err(src: &str, dst: &str, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    let mut l4 = vec![ty, code, 0, 0, 0, 0, 0, 0];
    l4.extend_from_slice(&quoted[14..(14 + 28 + 8).min(quoted.len())]);
    frame(a(src), a(dst), ICMP, l4, 9, 0)
}

/// A decoded packet (checksums verified independently).
#[derive(Debug, Clone)]
struct Pkt {
    port: u16,
    raw: Vec<u8>,
}

impl Pkt {
    fn ip(&self) -> &[u8] {
        &self.raw[14..]
    }
    fn src(&self) -> [u8; 4] {
        self.ip()[12..16].try_into().unwrap()
    }
    fn dst(&self) -> [u8; 4] {
        self.ip()[16..20].try_into().unwrap()
    }
    fn l4(&self) -> &[u8] {
        &self.ip()[20..]
    }
    fn sport(&self) -> u16 {
        u16::from_be_bytes([self.l4()[0], self.l4()[1]])
    }
    fn dport(&self) -> u16 {
        u16::from_be_bytes([self.l4()[2], self.l4()[3]])
    }
    fn icmp_id(&self) -> u16 {
        u16::from_be_bytes([self.l4()[4], self.l4()[5]])
    }
    fn proto(&self) -> u8 {
        self.ip()[9]
    }
    /// Every checksum of the packet (and of a quoted packet) recomputed from scratch.
    fn checksums_ok(&self) -> bool {
        let ip = self.ip();
        if csum(&ip[..20], 0) != 0 {
            return false;
        }
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            return true;
        }
        let l4 = self.l4();
        match self.proto() {
            TCP => csum(l4, pseudo(self.src(), self.dst(), TCP, l4.len())) == 0,
            UDP => {
                l4[6..8] == [0, 0] || csum(l4, pseudo(self.src(), self.dst(), UDP, l4.len())) == 0
            }
            ICMP => {
                if csum(l4, 0) != 0 {
                    return false;
                }
                if matches!(l4[0], 3 | 11 | 12) {
                    let qihl = usize::from(l4[8] & 0x0f) * 4;
                    csum(&l4[8..8 + qihl], 0) == 0
                } else {
                    true
                }
            }
            _ => true,
        }
    }
    /// The quoted packet of an ICMP error, as a `Pkt` (no L2).
    fn quoted(&self) -> Pkt {
        let mut raw = vec![0u8; 14];
        raw.extend_from_slice(&self.l4()[8..]);
        Pkt { port: 0, raw }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one NAT stage on a virtual clock.

struct Nat {
    stages: Vec<Box<dyn Stage>>,
    runner: ChainRunner,
    cache: PoolCache,
    _pool: Pool,
    now: u64,
    seq: u64,
}

/// What one packet produced.
#[derive(Debug)]
struct Out {
    pkts: Vec<Pkt>,
    drops: Vec<String>,
}

impl Out {
    fn one(&self) -> &Pkt {
        assert_eq!(self.pkts.len(), 1, "expected one packet out: {self:?}");
        &self.pkts[0]
    }
    fn dropped(&self, reason: &str) -> bool {
        self.pkts.is_empty() && self.drops.iter().any(|d| d == reason)
    }
}

const BASE: &str = "[[port]]\nname = \"inside\"\nkind = \"pcap\"\n[[port]]\nname = \"outside\"\nkind = \"pcap\"\n[[stage]]\nkind = \"nat44\"\ninside = [\"inside\"]\noutside = \"outside\"\npool = [\"198.51.100.0/30\"]\n";

impl Nat {
    fn new(extra: &str) -> Nat {
        Nat::worker(extra, 0, 1)
    }

    /// The instance for worker `worker` of `workers`.
    fn worker(extra: &str, worker: usize, workers: usize) -> Nat {
        let cap = if extra.contains("capacity") {
            ""
        } else {
            "capacity = 4096\n"
        };
        let text = format!("{BASE}{cap}{extra}");
        let cfg = Config::parse("nat.toml", &text, Path::new(".")).unwrap();
        let st = cfg.stages[0].build(&BuildEnv {
            port_macs: vec![MAC_IN, MAC_OUT],
            worker,
            workers,
        });
        let pool = Pool::new(&PoolConfig {
            count: 4096,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        Nat {
            stages: vec![st],
            runner: ChainRunner::new(1),
            cache: pool.cache(),
            _pool: pool,
            now: T0,
            seq: 0,
        }
    }

    fn drops(&self) -> Vec<u64> {
        self.runner.stage_drops[0].to_vec()
    }

    fn collect(&mut self, before: Vec<u64>, leaving: &mut Burst) -> Out {
        let mut pkts = Vec::new();
        while let Some(m) = leaving.pop() {
            pkts.push(Pkt {
                port: m.egress(),
                raw: m.data().to_vec(),
            });
            self.cache.free(m);
        }
        pkts.reverse();
        let names = self.stages[0].drop_reasons();
        let after = self.drops();
        let drops = (0..names.len())
            .filter(|&i| after[i] > before[i])
            .map(|i| names[i].to_string())
            .collect();
        Out { pkts, drops }
    }

    /// Sends a burst of frames in on `port`, then runs the timers.
    fn burst(&mut self, port: u16, frames: &[Vec<u8>]) -> Out {
        let out = self.raw(port, frames);
        for p in &out.pkts {
            assert!(p.checksums_ok(), "bad checksum out: {p:?}");
        }
        out
    }

    /// [`Self::burst`] without checking what comes out.
    fn raw(&mut self, port: u16, frames: &[Vec<u8>]) -> Out {
        let before = self.drops();
        let mut burst = Burst::new();
        for f in frames {
            let mut m = self.cache.alloc().unwrap();
            assert!(m.copy_from(f));
            m.set_port(port);
            m.set_seq(self.seq);
            self.seq += 1;
            burst.push(m).unwrap();
        }
        let mut leaving = Burst::new();
        self.runner.run(
            self.now,
            0,
            &mut self.stages,
            &mut burst,
            &mut leaving,
            &mut self.cache,
            2,
        );
        self.runner.poll(
            self.now,
            0,
            &mut self.stages,
            &mut leaving,
            &mut self.cache,
            2,
        );
        self.runner
            .finish(&mut burst, &mut leaving, &mut self.cache, 2);
        self.collect(before, &mut leaving)
    }

    fn send(&mut self, port: u16, f: Vec<u8>) -> Out {
        self.burst(port, &[f])
    }

    fn out(&mut self, f: Vec<u8>) -> Out {
        self.send(INSIDE, f)
    }

    fn inb(&mut self, f: Vec<u8>) -> Out {
        self.send(OUTSIDE, f)
    }

    /// Moves the clock on by `secs` seconds, running timers; returns what they sent.
    fn wait(&mut self, secs: u64) -> Out {
        self.now += secs * 1_000_000_000;
        let before = self.drops();
        let mut leaving = Burst::new();
        self.runner.poll(
            self.now,
            0,
            &mut self.stages,
            &mut leaving,
            &mut self.cache,
            2,
        );
        self.collect(before, &mut leaving)
    }

    fn counter(&self, name: &str) -> u64 {
        self.stages[0]
            .counters()
            .into_iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| v)
    }
}

const H1: &str = "10.0.0.1";
const H2: &str = "10.0.0.2";
const R1: &str = "203.0.113.1";
const R2: &str = "203.0.113.2";

fn ext_of(p: &Pkt) -> ([u8; 4], u16) {
    (p.src(), p.sport())
}

fn fmt(e: ([u8; 4], u16)) -> String {
    format!("{}:{}", std::net::Ipv4Addr::from(e.0), e.1)
}

// ---------------------------------------------------------------------------------------------
// RFC 4787 (UDP).

#[test]
fn rfc4787_req01_endpoint_independent_mapping() {
    let mut n = Nat::new("");
    let e1 = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    let e2 = ext_of(n.out(udp(H1, 5000, R2, 53)).one());
    let e3 = ext_of(n.out(udp(H1, 5000, R2, 9999)).one());
    assert_eq!(e1, e2, "MUST: same mapping for another destination address");
    assert_eq!(e1, e3, "MUST: same mapping for another destination port");
    assert!(n.out(udp(H1, 5000, R1, 53)).one().port == OUTSIDE);
}

#[test]
fn rfc4787_req02_paired_address_pooling() {
    let mut n = Nat::new("");
    let mut addrs = std::collections::HashSet::new();
    for i in 0..50 {
        addrs.insert(n.out(udp(H1, 6000 + i, R1, 53)).one().src());
    }
    for i in 0..20 {
        addrs.insert(n.out(tcp(H1, 7000 + i, R1, 80, SYN)).one().src());
    }
    for i in 0..5 {
        addrs.insert(n.out(ping(H1, R1, 8, 100 + i)).one().src());
    }
    should("RFC 4787 REQ-2 paired address pooling", addrs.len() == 1);
    assert_eq!(addrs.len(), 1);
}

#[test]
fn rfc4787_req03_no_port_overloading_and_port_class() {
    let mut n = Nat::new("ports = [1, 65535]\n");
    let mut seen = std::collections::HashSet::new();
    for i in 0..200u16 {
        let h = format!("10.0.1.{}", i % 250 + 1);
        let e = ext_of(n.out(udp(&h, 40000, R1, 53)).one());
        assert!(seen.insert(e), "MUST NOT overload ports: {} reused", fmt(e));
    }
    let low = n.out(udp(H1, 123, R1, 123)).one().sport();
    let high = n.out(udp(H1, 40001, R1, 123)).one().sport();
    should(
        "RFC 4787 REQ-3a well-known source port stays below 1024",
        low < 1024,
    );
    should(
        "RFC 4787 REQ-3a ephemeral source port stays at or above 1024",
        high >= 1024,
    );
    assert!(low < 1024 && high >= 1024);
}

#[test]
fn rfc4787_req04_port_parity_optional_rfc7857() {
    // RFC 7857 section 8 makes parity preservation optional; it is not done (ports are random).
    let mut n = Nat::new("");
    let same: usize = (0..200u16)
        .filter(|i| {
            let p = n.out(udp(H1, 10000 + i, R1, 53)).one().sport();
            p % 2 == (10000 + i) % 2
        })
        .count();
    assert!(same < 200, "ports look deterministic, not randomised");
}

#[test]
fn rfc4787_req05_udp_mapping_timer_at_least_2_minutes() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    n.wait(299);
    let r = n.inb(udp(R1, 53, &fmt_addr(e.0), e.1));
    assert_eq!(
        r.one().dst(),
        a(H1),
        "MUST: mapping alive after 299 s idle (default 300 s)"
    );
    n.wait(302);
    assert!(n
        .inb(udp(R1, 53, &fmt_addr(e.0), e.1))
        .dropped("no_mapping"));
    assert_eq!(n.counter("sessions_expired_udp"), 1);
    // A timeout under 2 minutes is refused.
    let bad = format!("{BASE}[stage.timeouts]\nudp = 60\n");
    let err = Config::parse("nat.toml", &bad, Path::new(".")).unwrap_err();
    assert!(err.to_string().contains("timeouts.udp"), "{err}");
}

fn fmt_addr(x: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(x).to_string()
}

#[test]
fn rfc4787_req06_outbound_refresh() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    for _ in 0..10 {
        n.wait(200);
        assert_eq!(ext_of(n.out(udp(H1, 5000, R1, 53)).one()), e);
    }
    n.wait(200);
    assert_eq!(n.inb(udp(R1, 53, &fmt_addr(e.0), e.1)).one().dst(), a(H1));
    // Inbound traffic alone does not keep it (inbound refresh is a MAY, off by default).
    for _ in 0..3 {
        n.wait(100);
        let _ = n.inb(udp(R1, 53, &fmt_addr(e.0), e.1));
    }
    n.wait(100);
    assert!(n
        .inb(udp(R1, 53, &fmt_addr(e.0), e.1))
        .dropped("no_mapping"));
}

#[test]
fn rfc4787_req07_external_addresses_that_collide_with_inside_ones() {
    // An outside host numerically equal to an inside one is still reached and answers back.
    let mut n = Nat::new("");
    let o = n.out(udp(H1, 5000, H2, 53));
    let e = ext_of(o.one());
    assert_eq!(o.one().port, OUTSIDE);
    assert_eq!(o.one().dst(), a(H2));
    let r = n.inb(udp(H2, 53, &fmt_addr(e.0), e.1));
    assert_eq!(
        (r.one().dst(), r.one().dport(), r.one().port),
        (a(H1), 5000, INSIDE)
    );
}

#[test]
fn rfc4787_req08_filtering_eif_default_adf_configurable() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    let r = n.inb(udp(R2, 1234, &fmt_addr(e.0), e.1));
    should(
        "RFC 4787 REQ-8 endpoint-independent filtering by default",
        r.pkts.len() == 1,
    );
    let mut n = Nat::new("filtering = \"address-dependent\"\n");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    assert!(n.inb(udp(R2, 53, &fmt_addr(e.0), e.1)).dropped("filtered"));
    assert_eq!(n.inb(udp(R1, 9999, &fmt_addr(e.0), e.1)).one().dst(), a(H1));
}

#[test]
fn rfc4787_req09_hairpinning_with_external_source() {
    let mut n = Nat::new("");
    let eb = ext_of(n.out(udp(H2, 6000, R1, 53)).one());
    let ea = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    let r = n.out(udp(H1, 5000, &fmt_addr(eb.0), eb.1));
    let p = r.one();
    assert_eq!(p.port, INSIDE, "MUST support hairpinning");
    assert_eq!((p.dst(), p.dport()), (a(H2), 6000));
    assert_eq!(
        ext_of(p),
        ea,
        "MUST: hairpin source is the external address and port"
    );
    assert_eq!(n.counter("hairpinned"), 1);
}

#[test]
fn rfc4787_req10_no_alg_rewrites_payload() {
    let mut n = Nat::new("");
    let mut f = udp(H1, 5060, R1, 5060);
    let payload_at = f.len() - 9;
    let body = f[payload_at..].to_vec();
    let o = n.out(std::mem::take(&mut f));
    assert_eq!(
        &o.one().raw[payload_at..],
        &body[..],
        "payload untouched (no ALG)"
    );
}

#[test]
fn rfc4787_req11_deterministic_behaviour() {
    // Mapping and filtering stay the same however full the pool and table get.
    let mut n = Nat::new("capacity = 300\n");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    for i in 0..400u16 {
        let _ = n.out(udp(H2, 20000 + i, R1, 53));
    }
    assert_eq!(ext_of(n.out(udp(H1, 5000, R2, 53)).one()), e);
    assert_eq!(n.inb(udp(R2, 7, &fmt_addr(e.0), e.1)).one().dst(), a(H1));
}

#[test]
fn rfc4787_req12_icmp_does_not_terminate_mapping() {
    let mut n = Nat::new("");
    let o = n.out(udp(H1, 5000, R1, 53));
    let p = o.one().clone();
    let e = ext_of(&p);
    let err = icmp_err(R1, &fmt_addr(e.0), 3, 3, &p.raw);
    let r = n.inb(err);
    let q = r.one();
    assert_eq!((q.dst(), q.port), (a(H1), INSIDE));
    let quoted = q.quoted();
    assert_eq!((quoted.src(), quoted.sport()), (a(H1), 5000));
    // Still there, and its timer was not touched.
    assert_eq!(n.inb(udp(R1, 53, &fmt_addr(e.0), e.1)).one().dst(), a(H1));
    assert_eq!(n.counter("sessions_expired_udp"), 0);
}

#[test]
fn rfc4787_req13_df_packets_pass_unchanged_in_size() {
    // NAT44 never grows a packet, so it never needs to fragment or send "fragmentation
    // needed"; MTU enforcement belongs to the router stage after it.
    let mut n = Nat::new("");
    let mut l4 = vec![0u8; 1400];
    l4[0..2].copy_from_slice(&5000u16.to_be_bytes());
    l4[2..4].copy_from_slice(&53u16.to_be_bytes());
    l4[4..6].copy_from_slice(&1400u16.to_be_bytes());
    let f = frame(a(H1), a(R1), UDP, l4, 5, 0x4000);
    let len = f.len();
    let o = n.out(f);
    assert_eq!(o.one().raw.len(), len);
    assert_eq!(o.one().ip()[6] & 0x40, 0x40, "DF kept");
}

/// Splits a UDP datagram frame into two fragments (first 16 bytes of L4, then the rest).
fn fragments(f: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ip = &f[14..];
    let src: [u8; 4] = ip[12..16].try_into().unwrap();
    let dst: [u8; 4] = ip[16..20].try_into().unwrap();
    let l4 = &ip[20..];
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let mk = |part: &[u8], off: u16, mf: bool| {
        let mut g = frame(
            src,
            dst,
            UDP,
            part.to_vec(),
            id,
            (off / 8) | if mf { 0x2000 } else { 0 },
        );
        // `frame` fills no L4 checksum for fragments: keep the original bytes.
        let n = g.len();
        g[n - part.len()..].copy_from_slice(part);
        g
    };
    (mk(&l4[..16], 0, true), mk(&l4[16..], 16, false))
}

#[test]
fn rfc4787_req14_out_of_order_fragments() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    // Outbound: non-first fragment first.
    let mut big = udp(H1, 5000, R1, 53);
    big.extend_from_slice(&[7u8; 40]);
    let len = (big.len() - 34) as u16;
    big[38..40].copy_from_slice(&len.to_be_bytes());
    let tot = (big.len() - 14) as u16;
    big[16..18].copy_from_slice(&tot.to_be_bytes());
    let big = frame(a(H1), a(R1), UDP, big[34..].to_vec(), 0x4242, 0);
    let (f1, f2) = fragments(&big);
    let o2 = n.out(f2);
    assert_eq!(
        o2.one().src(),
        e.0,
        "MUST: out-of-order outbound fragment translated"
    );
    let o1 = n.out(f1);
    assert_eq!(ext_of(o1.one()), e);
    // Inbound: non-first before first, in one burst and across bursts.
    let reply = frame(
        a(R1),
        e.0,
        UDP,
        {
            let mut l4 = big[34..].to_vec();
            l4[0..2].copy_from_slice(&53u16.to_be_bytes());
            l4[2..4].copy_from_slice(&e.1.to_be_bytes());
            l4[6..8].copy_from_slice(&[0, 0]);
            l4
        },
        0x77,
        0,
    );
    let (g1, g2) = fragments(&reply);
    let r = n.burst(OUTSIDE, &[g2.clone(), g1.clone()]);
    assert_eq!(r.pkts.len(), 2, "MUST: both fragments out: {r:?}");
    assert!(r.pkts.iter().all(|p| p.dst() == a(H1) && p.port == INSIDE));
    let mut g2b = g2.clone();
    g2b[18..20].copy_from_slice(&0x78u16.to_be_bytes()); // new datagram, same content
    let c = csum(&[0u8; 0], 0);
    let _ = c;
    let mut g1b = g1.clone();
    g1b[18..20].copy_from_slice(&0x78u16.to_be_bytes());
    for g in [&mut g1b, &mut g2b] {
        g[24..26].copy_from_slice(&[0, 0]);
        let c = csum(&g[14..34], 0);
        g[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let r = n.inb(g2b);
    assert!(r.pkts.is_empty() && n.stages[0].held() == 1, "{r:?}");
    let r = n.inb(g1b);
    assert_eq!(r.pkts.len(), 2, "held fragment released: {r:?}");
    assert!(r.pkts.iter().all(|p| p.dst() == a(H1)));
    // An orphan fragment is given up after the hold time.
    let (_, lone) = fragments(&frame(a(R1), e.0, UDP, reply[34..].to_vec(), 0x99, 0));
    assert!(n.inb(lone).pkts.is_empty());
    n.wait(5);
    assert_eq!(n.stages[0].held(), 0);
    assert!(n.runner.stage_drops[0][13] == 1, "fragment_timeout counted");
}

// ---------------------------------------------------------------------------------------------
// RFC 5382 (TCP).

#[test]
fn rfc5382_req01_endpoint_independent_mapping_tcp() {
    let mut n = Nat::new("");
    let e1 = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let e2 = ext_of(n.out(tcp(H1, 40000, R2, 443, SYN)).one());
    assert_eq!(e1, e2);
}

#[test]
fn rfc5382_req02_all_valid_sequences_and_simultaneous_open() {
    let mut n = Nat::new("");
    // Three-way handshake, data, close.
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let ea = fmt_addr(e.0);
    assert_eq!(n.inb(tcp(R1, 80, &ea, e.1, SYN | ACK)).one().dst(), a(H1));
    n.out(tcp(H1, 40000, R1, 80, ACK)).one();
    n.inb(tcp(R1, 80, &ea, e.1, ACK)).one();
    // Established: survives 2 hours idle.
    n.wait(7000);
    n.inb(tcp(R1, 80, &ea, e.1, ACK)).one();
    n.out(tcp(H1, 40000, R1, 80, FIN | ACK)).one();
    n.inb(tcp(R1, 80, &ea, e.1, FIN | ACK)).one();
    n.out(tcp(H1, 40000, R1, 80, ACK)).one();
    // Simultaneous open: both sides send SYN.
    let e = ext_of(n.out(tcp(H2, 41000, R2, 5000, SYN)).one());
    let ea = fmt_addr(e.0);
    let r = n.inb(tcp(R2, 5000, &ea, e.1, SYN));
    assert_eq!(
        r.one().dst(),
        a(H2),
        "MUST: simultaneous open's inbound SYN passes"
    );
    n.out(tcp(H2, 41000, R2, 5000, SYN | ACK)).one();
    n.inb(tcp(R2, 5000, &ea, e.1, SYN | ACK)).one();
    n.wait(7000);
    assert_eq!(
        n.inb(tcp(R2, 5000, &ea, e.1, ACK)).one().dst(),
        a(H2),
        "established after simultaneous open"
    );
}

#[test]
fn rfc5382_req03_filtering_eif_recommended_adf_configurable() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let r = n.inb(tcp(R2, 80, &fmt_addr(e.0), e.1, ACK));
    should(
        "RFC 5382 REQ-3 endpoint-independent filtering",
        r.pkts.len() == 1,
    );
    let mut n = Nat::new("filtering = \"address-dependent\"\n");
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    assert!(n
        .inb(tcp(R2, 80, &fmt_addr(e.0), e.1, ACK))
        .dropped("filtered"));
}

#[test]
fn rfc5382_req04_unsolicited_inbound_syn() {
    let mut n = Nat::new("allocation = \"sequential\"\n");
    // Answered after 6 s with port unreachable, never before.
    let syn = tcp(R1, 5555, "198.51.100.1", 40000, SYN);
    let r = n.inb(syn.clone());
    assert!(r.pkts.is_empty(), "MUST NOT respond at once: {r:?}");
    let r = n.wait(5);
    assert!(r.pkts.is_empty(), "MUST NOT respond within 6 s: {r:?}");
    let r = n.wait(2);
    let icmp = r.one();
    should(
        "RFC 5382 REQ-4 ICMP port unreachable for an unsolicited SYN after 6 s",
        icmp.l4()[..2] == [3, 3] && icmp.dst() == a(R1) && icmp.port == OUTSIDE,
    );
    assert_eq!(&icmp.l4()[8..8 + 20], &syn[14..34], "quotes the SYN");
    assert!(r.drops.contains(&"unsolicited_syn".to_string()));
    // An outbound SYN of the same connection within 6 s: the held SYN is dropped silently.
    let ext = n.out(udp(H1, 1, R2, 1)).one().src();
    let r = n.inb(tcp(R1, 5555, &fmt_addr(ext), 1024, SYN));
    assert!(r.pkts.is_empty());
    let o = n.out(tcp(H1, 40000, R1, 5555, SYN));
    assert_eq!(ext_of(o.one()), (ext, 1024));
    assert!(o.drops.contains(&"unsolicited_syn".to_string()), "{o:?}");
    assert!(
        n.wait(10).pkts.is_empty(),
        "MUST drop the original SYN silently"
    );
    assert_eq!(n.stages[0].held(), 0);
}

#[test]
fn rfc5382_req05_tcp_timeouts() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let ea = fmt_addr(e.0);
    n.inb(tcp(R1, 80, &ea, e.1, SYN | ACK)).one();
    n.out(tcp(H1, 40000, R1, 80, ACK)).one();
    n.wait(7439);
    n.inb(tcp(R1, 80, &ea, e.1, ACK)).one();
    n.wait(7441);
    assert!(n.inb(tcp(R1, 80, &ea, e.1, ACK)).dropped("no_mapping"));
    // Transitory: a SYN never answered lives 4 minutes.
    let e = ext_of(n.out(tcp(H2, 40000, R1, 80, SYN)).one());
    n.wait(239);
    n.inb(tcp(R1, 80, &fmt_addr(e.0), e.1, SYN | ACK)).one();
    let e = ext_of(n.out(tcp(H2, 40001, R1, 80, SYN)).one());
    n.wait(241);
    assert!(n
        .inb(tcp(R1, 80, &fmt_addr(e.0), e.1, SYN | ACK))
        .dropped("no_mapping"));
    for (k, v) in [("tcp_established", 7000), ("tcp_transitory", 100)] {
        let bad = format!("{BASE}[stage.timeouts]\n{k} = {v}\n");
        assert!(Config::parse("nat.toml", &bad, Path::new(".")).is_err());
    }
}

#[test]
fn rfc5382_req06_no_tcp_alg() {
    let mut n = Nat::new("");
    let mut f = tcp(H1, 40000, R1, 21, ACK | 0x08);
    f.extend_from_slice(b"PORT 10,0,0,1,4,1\r\n");
    let tot = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&tot.to_be_bytes());
    let f = frame(a(H1), a(R1), TCP, f[34..].to_vec(), 7, 0);
    let o = n.out(f);
    assert!(o.one().raw.ends_with(b"PORT 10,0,0,1,4,1\r\n"));
}

#[test]
fn rfc5382_req07_no_port_overloading_tcp() {
    let mut n = Nat::new("");
    let mut seen = std::collections::HashSet::new();
    for i in 0..300u16 {
        let h = format!("10.0.2.{}", i % 200 + 1);
        assert!(seen.insert(ext_of(n.out(tcp(&h, 30000 + i, R1, 80, SYN)).one())));
    }
}

#[test]
fn rfc5382_req08_hairpinning_tcp() {
    let mut n = Nat::new("[[stage.static]]\nproto = \"tcp\"\noutside = \"198.51.100.1:80\"\ninside = \"10.0.0.2:8080\"\n");
    let ea = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let r = n.out(tcp(H1, 40000, "198.51.100.1", 80, SYN));
    let p = r.one();
    assert_eq!((p.dst(), p.dport(), p.port), (a(H2), 8080, INSIDE));
    assert_eq!(ext_of(p), ea, "MUST: external source address and port");
    let back = n.out(tcp(H2, 8080, &fmt_addr(ea.0), ea.1, SYN | ACK));
    assert_eq!(
        (back.one().src(), back.one().sport()),
        (a("198.51.100.1"), 80)
    );
    assert_eq!((back.one().dst(), back.one().dport()), (a(H1), 40000));
}

#[test]
fn rfc5382_req09_icmp_dest_unreachable_translated() {
    let mut n = Nat::new("");
    let p = n.out(tcp(H1, 40000, R1, 80, SYN)).one().clone();
    let r = n.inb(icmp_err(R1, &fmt_addr(p.src()), 3, 1, &p.raw));
    let q = r.one();
    should(
        "RFC 5382 REQ-9 ICMP destination unreachable translated",
        q.dst() == a(H1),
    );
    let qq = q.quoted();
    assert_eq!((qq.src(), qq.sport()), (a(H1), 40000));
}

#[test]
fn rfc5382_req10_icmp_does_not_terminate_tcp_mapping() {
    let mut n = Nat::new("");
    let p = n.out(tcp(H1, 40000, R1, 80, SYN)).one().clone();
    let e = ext_of(&p);
    for (t, c) in [(3, 1), (3, 3), (11, 0), (12, 0), (3, 4)] {
        let _ = n.inb(icmp_err(R1, &fmt_addr(e.0), t, c, &p.raw));
    }
    assert_eq!(
        n.inb(tcp(R1, 80, &fmt_addr(e.0), e.1, SYN | ACK))
            .one()
            .dst(),
        a(H1)
    );
}

// ---------------------------------------------------------------------------------------------
// RFC 5508 (ICMP).

#[test]
fn rfc5508_req01_icmp_query_mapping() {
    let mut n = Nat::new("");
    let o = n.out(ping(H1, R1, 8, 777));
    let (ext, id) = (o.one().src(), o.one().icmp_id());
    let o2 = n.out(ping(H1, R2, 8, 777));
    should(
        "RFC 5508 REQ-1 ICMP query mapping external-host independent",
        o2.one().icmp_id() == id,
    );
    let r = n.inb(ping(R1, &fmt_addr(ext), 0, id));
    assert_eq!(
        (r.one().dst(), r.one().icmp_id(), r.one().port),
        (a(H1), 777, INSIDE)
    );
}

#[test]
fn rfc5508_req02_icmp_query_timer_at_least_60s() {
    let mut n = Nat::new("");
    let o = n.out(ping(H1, R1, 8, 777));
    let (ext, id) = (o.one().src(), o.one().icmp_id());
    n.wait(59);
    n.inb(ping(R1, &fmt_addr(ext), 0, id)).one();
    n.wait(2);
    assert!(n.inb(ping(R1, &fmt_addr(ext), 0, id)).dropped("no_mapping"));
    let bad = format!("{BASE}[stage.timeouts]\nicmp = 30\n");
    assert!(Config::parse("nat.toml", &bad, Path::new(".")).is_err());
}

#[test]
fn rfc5508_req03_icmp_error_checks() {
    let mut n = Nat::new("");
    let p = n.out(udp(H1, 5000, R1, 53)).one().clone();
    let mut bad = icmp_err(R1, &fmt_addr(p.src()), 3, 3, &p.raw);
    bad[36] ^= 0xff; // break the ICMP checksum
    should(
        "RFC 5508 REQ-3 drop ICMP error with a bad checksum",
        n.inb(bad).dropped("icmp_error_bad"),
    );
    // Quoted packet with IP options: the transport header is found past them.
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&p.sport().to_be_bytes());
    l4[2..4].copy_from_slice(&53u16.to_be_bytes());
    let mut q = p.ip()[..20].to_vec();
    q[0] = 0x46;
    q[2..4].copy_from_slice(&((24 + 8) as u16).to_be_bytes());
    q.extend_from_slice(&[1, 1, 1, 0]);
    q[10..12].copy_from_slice(&[0, 0]);
    let c = csum(&q, 0);
    q[10..12].copy_from_slice(&c.to_be_bytes());
    q.extend_from_slice(&l4);
    let mut body = vec![3, 3, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&q);
    let r = n.inb(frame(a(R1), p.src(), ICMP, body, 5, 0));
    let qq = r.one().l4()[8..].to_vec();
    assert_eq!(
        &qq[12..16],
        &a(H1),
        "MUST: quoted packet with options translated"
    );
    assert_eq!(u16::from_be_bytes([qq[24], qq[25]]), 5000);
}

#[test]
fn rfc5508_req04_inbound_icmp_error_translation() {
    let mut n = Nat::new("");
    let p = n.out(udp(H1, 5000, R1, 53)).one().clone();
    let r = n.inb(icmp_err(R1, &fmt_addr(p.src()), 3, 3, &p.raw));
    let q = r.one();
    assert_eq!(
        (q.l4()[0], q.l4()[1]),
        (3, 3),
        "MUST: type and code unchanged"
    );
    assert_eq!(q.dst(), a(H1), "MUST: outer destination is the inside host");
    let qq = q.quoted();
    assert_eq!((qq.src(), qq.sport(), qq.dst()), (a(H1), 5000, a(R1)));
    // Without a mapping: dropped.
    assert!(n
        .inb(icmp_err(
            R1,
            "198.51.100.2",
            3,
            3,
            &udp("198.51.100.2", 999, R1, 53)
        ))
        .dropped("icmp_error_no_mapping"));
}

#[test]
fn rfc5508_req05_outbound_icmp_error_translation() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    let inb = n.inb(udp(R1, 53, &fmt_addr(e.0), e.1)).one().clone();
    let r = n.out(icmp_err(H1, R1, 3, 3, &inb.raw));
    let q = r.one();
    assert_eq!((q.l4()[0], q.l4()[1], q.port), (3, 3, OUTSIDE));
    assert_eq!(q.src(), e.0, "MUST: source becomes the public address");
    let qq = q.quoted();
    assert_eq!(
        (qq.dst(), qq.dport()),
        e,
        "MUST: quoted destination reverted"
    );
    assert!(n
        .out(icmp_err(H1, R1, 3, 3, &udp(R2, 53, H1, 1)))
        .dropped("icmp_error_no_mapping"));
}

#[test]
fn rfc5508_req06_icmp_error_never_refreshes() {
    let mut n = Nat::new("");
    let p = n.out(udp(H1, 5000, R1, 53)).one().clone();
    let e = ext_of(&p);
    let inb = n.inb(udp(R1, 53, &fmt_addr(e.0), e.1)).one().clone();
    for _ in 0..4 {
        n.wait(100);
        let _ = n.inb(icmp_err(R1, &fmt_addr(e.0), 3, 3, &p.raw));
        let _ = n.out(icmp_err(H1, R1, 3, 3, &inb.raw));
    }
    assert!(
        n.inb(udp(R1, 53, &fmt_addr(e.0), e.1))
            .dropped("no_mapping"),
        "MUST NOT refresh"
    );
    assert_eq!(n.counter("sessions_created_icmp"), 0, "MUST NOT create");
}

#[test]
fn rfc5508_req07_hairpinned_icmp() {
    let mut n = Nat::new("");
    let eb = ext_of(n.out(udp(H2, 6000, R1, 53)).one());
    let _ = n.out(udp(H1, 5000, R1, 53)).one();
    let hp = n.out(udp(H1, 5000, &fmt_addr(eb.0), eb.1)).one().clone();
    // H2 answers the hairpinned datagram with port unreachable: it must reach H1, quoting
    // H1's own packet.
    let r = n.out(icmp_err(H2, &fmt_addr(hp.src()), 3, 3, &hp.raw));
    let q = r.one();
    assert_eq!(
        (q.dst(), q.port),
        (a(H1), INSIDE),
        "MUST: hairpinned ICMP error"
    );
    let qq = q.quoted();
    assert_eq!((qq.src(), qq.sport()), (a(H1), 5000));
    assert_eq!((qq.dst(), qq.dport()), eb);
    // Hairpinned ICMP query (a MUST for Basic NAT only; a NAPT SHOULD per RFC 7857).
    let r = n.out(ping(H1, &fmt_addr(eb.0), 8, 5));
    should(
        "RFC 7857 / RFC 5508 REQ-7 hairpinned ICMP query",
        r.pkts.len() == 1,
    );
}

#[test]
fn rfc5508_req08_no_session_answers_code_13() {
    let mut n = Nat::new("max_ports_per_subscriber = 2\nicmp_rate = 2\n");
    n.out(udp(H1, 1, R1, 53)).one();
    n.out(udp(H1, 2, R1, 53)).one();
    let r = n.out(udp(H1, 3, R1, 53));
    assert!(r.drops.contains(&"subscriber_limit".to_string()), "{r:?}");
    let icmp = r.one();
    should(
        "RFC 5508 REQ-8 ICMP code 13 when no session can be made",
        icmp.l4()[..2] == [3, 13],
    );
    assert_eq!((icmp.dst(), icmp.port), (a(H1), INSIDE));
    assert_eq!(icmp.quoted().sport(), 3);
    // Rate-limited: two per second.
    let r2 = n.out(udp(H1, 4, R1, 53));
    let r3 = n.out(udp(H1, 5, R1, 53));
    assert_eq!((r2.pkts.len(), r3.pkts.len()), (1, 0));
    assert_eq!(n.counter("icmp_prohibited_limited"), 1);
}

#[test]
fn rfc5508_req09_icmp_policy_control_is_optional() {
    // A MAY: the only ICMP the stage generates is code 13, and `icmp_rate = 0` turns it off.
    let mut n = Nat::new("max_ports_per_subscriber = 1\nicmp_rate = 0\n");
    n.out(udp(H1, 1, R1, 53)).one();
    let r = n.out(udp(H1, 2, R1, 53));
    assert!(r.dropped("subscriber_limit"));
}

#[test]
fn rfc5508_req10_nat_does_not_touch_ttl() {
    // ICMP the NAT would send as a router (TTL exceeded, fragmentation needed) is the router
    // stage's; the NAT neither decrements TTL nor grows packets.
    let mut n = Nat::new("");
    let o = n.out(udp(H1, 5000, R1, 53));
    assert_eq!(o.one().ip()[8], 64);
}

#[test]
fn rfc5508_req11_other_icmp_dropped_and_counted() {
    let mut n = Nat::new("");
    let mut l4 = vec![9u8, 0, 0, 0, 0, 0, 0, 0]; // router advertisement
    l4.extend_from_slice(&[0; 8]);
    assert!(n
        .out(frame(a(H1), a(R1), ICMP, l4, 1, 0))
        .dropped("icmp_type_unsupported"));
}

// ---------------------------------------------------------------------------------------------
// RFC 7857 (updates).

#[test]
fn rfc7857_s2_1_tcp_session_tracking_rst() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let ea = fmt_addr(e.0);
    n.inb(tcp(R1, 80, &ea, e.1, SYN | ACK)).one();
    n.out(tcp(H1, 40000, R1, 80, ACK)).one();
    n.inb(tcp(R1, 80, &ea, e.1, RST)).one();
    n.wait(239);
    n.inb(tcp(R1, 80, &ea, e.1, ACK)).one();
    n.wait(242);
    assert!(
        n.inb(tcp(R1, 80, &ea, e.1, ACK)).dropped("no_mapping"),
        "RST: transitory timeout"
    );
}

#[test]
fn rfc7857_s2_2_both_fins_transitory() {
    let mut n = Nat::new("");
    let e = ext_of(n.out(tcp(H1, 40000, R1, 80, SYN)).one());
    let ea = fmt_addr(e.0);
    n.inb(tcp(R1, 80, &ea, e.1, SYN | ACK)).one();
    n.out(tcp(H1, 40000, R1, 80, FIN | ACK)).one();
    n.inb(tcp(R1, 80, &ea, e.1, FIN | ACK)).one();
    n.wait(241);
    assert!(n.inb(tcp(R1, 80, &ea, e.1, ACK)).dropped("no_mapping"));
}

#[test]
fn rfc7857_s4_paired_pooling_across_protocols() {
    let mut n = Nat::new("");
    let u = n.out(udp(H1, 5000, R1, 53)).one().src();
    let t = n.out(tcp(H1, 5000, R1, 80, SYN)).one().src();
    let i = n.out(ping(H1, R1, 8, 1)).one().src();
    assert!(u == t && t == i);
}

#[test]
fn rfc7857_s8_port_parity_not_required_s9_randomised() {
    let mut n = Nat::new("");
    let ports: Vec<u16> = (0..64)
        .map(|i| n.out(udp(H1, 30000 + i, R1, 53)).one().sport())
        .collect();
    let sequential = ports
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    should("RFC 7857 section 9 port randomisation", sequential < 8);
    assert!(sequential < 8);
}

#[test]
fn rfc7857_s11_icmp_query_mappings_and_zero_udp_checksum() {
    let mut n = Nat::new("");
    let o = n.out(udp_nocsum(H1, 5000, R1, 53));
    assert_eq!(&o.one().l4()[6..8], &[0, 0], "zero UDP checksum stays zero");
    let e = ext_of(o.one());
    let r = n.inb(udp_nocsum(R1, 53, &fmt_addr(e.0), e.1));
    assert_eq!(&r.one().l4()[6..8], &[0, 0]);
}

#[test]
fn counters_and_port_pool_use() {
    let mut n = Nat::new("");
    n.out(udp(H1, 5000, R1, 53)).one();
    n.out(tcp(H1, 5000, R1, 80, SYN)).one();
    assert_eq!(n.counter("sessions_active_udp"), 1);
    assert_eq!(n.counter("sessions_active_tcp"), 1);
    assert_eq!(n.counter("subscribers"), 1);
    let pool_lines: u64 = n.stages[0]
        .counters()
        .iter()
        .filter(|(k, _)| k.starts_with("pool_") && k.ends_with("_udp_ports"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(pool_lines, 1);
    n.wait(7500);
    assert_eq!(
        n.counter("sessions_active_udp") + n.counter("sessions_active_tcp"),
        0
    );
    assert_eq!(n.counter("subscribers"), 0);
}

// ---------------------------------------------------------------------------------------------
// Across workers.

#[test]
fn steer_sends_replies_and_errors_to_the_worker_that_owns_the_mapping() {
    let cfg = Config::parse(
        "nat.toml",
        &format!("{BASE}capacity = 4096\n"),
        Path::new("."),
    )
    .unwrap();
    let steer = cfg.stages[0].steer(2).expect("nat44 steers");
    let mut w: Vec<Nat> = (0..2).map(|i| Nat::worker("", i, 2)).collect();
    let mut used = [0usize; 2];
    for h in 1..=40 {
        let host = format!("10.0.3.{h}");
        for sp in [5000u16, 5001, 80] {
            let f = udp(&host, sp, R1, 53);
            let wi = steer
                .steer(&f, INSIDE, 2)
                .expect("inside packets are steered");
            assert_eq!(
                steer.steer(&udp(&host, 9, R2, 1), INSIDE, 2),
                Some(wi),
                "one worker per subscriber"
            );
            used[wi] += 1;
            let o = w[wi].out(f).one().clone();
            let reply = udp(R1, 53, &fmt_addr(o.src()), o.sport());
            assert_eq!(
                steer.steer(&reply, OUTSIDE, 2),
                Some(wi),
                "reply to {}",
                fmt(ext_of(&o))
            );
            assert_eq!(w[wi].inb(reply).one().dst(), a(&host));
            let err = icmp_err(R1, &fmt_addr(o.src()), 3, 3, &o.raw);
            assert_eq!(steer.steer(&err, OUTSIDE, 2), Some(wi));
        }
        let f = ping(&host, R1, 8, h);
        let wi = steer.steer(&f, INSIDE, 2).unwrap();
        let o = w[wi].out(f).one().clone();
        let reply = ping(R1, &fmt_addr(o.src()), 0, o.icmp_id());
        assert_eq!(steer.steer(&reply, OUTSIDE, 2), Some(wi));
        assert_eq!(w[wi].inb(reply).one().dst(), a(&host));
    }
    assert!(used[0] > 0 && used[1] > 0, "both workers used: {used:?}");
    // Not for the pool: left to the flow hash.
    assert_eq!(steer.steer(&udp(R1, 53, R2, 53), OUTSIDE, 2), None);
}

// ---------------------------------------------------------------------------------------------
// Configuration.

#[test]
fn config_errors_name_file_line_and_key() {
    for (extra, key, line) in [
        ("filtering = \"strict\"\n", "stage[0].filtering", 12),
        ("ports = [1000, 1010]\n", "stage[0].ports", 12),
        ("capacity = 0\n", "stage[0].capacity", 12),
        ("colour = 1\n", "stage[0].colour", 12),
        ("[stage.timeouts]\nudp = 10\n", "stage[0].timeouts.udp", 13),
        (
            "[[stage.static]]\nproto = \"tcp\"\noutside = \"198.51.100.1:2000\"\ninside = \"10.0.0.5:80\"\n",
            "stage[0].static.outside",
            14,
        ),
    ] {
        let e = Config::parse("nat.toml", &format!("{BASE}{extra}"), Path::new(".")).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), (key, line), "{e}");
        assert!(e.to_string().starts_with(&format!("nat.toml:{line}: {key}")), "{e}");
    }
    let e = Config::parse(
        "nat.toml",
        &BASE.replace("198.51.100.0/30", "198.51.100.0/33"),
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(e.key, "stage[0].pool", "{e}");
    let e = Config::parse(
        "nat.toml",
        &BASE.replace("outside = \"outside\"", "outside = \"wan\""),
        Path::new("."),
    )
    .unwrap_err();
    assert_eq!(e.key, "stage[0].outside", "{e}");
}

#[test]
fn describe_states_the_resolved_settings() {
    let cfg = Config::parse(
        "nat.toml",
        &format!("{BASE}[[stage.static]]\nproto = \"tcp\"\noutside = \"198.51.100.1:80\"\ninside = \"10.0.0.5:8080\"\n"),
        Path::new("."),
    )
    .unwrap();
    let d = cfg.stages[0].describe(&cfg.ports);
    assert!(d[0].starts_with("inside -> outside: 4 outside addresses (198.51.100.0 .. 198.51.100.3), ports 1024-65535, endpoint-independent filtering"), "{d:?}");
    assert!(d[1].contains("1048576 sessions per worker"), "{d:?}");
    assert_eq!(
        d[2],
        "static tcp 198.51.100.1:80 -> 10.0.0.5:8080 via inside"
    );
}

// ---------------------------------------------------------------------------------------------
// Robustness.

#[test]
fn mutated_and_truncated_frames_never_panic_and_are_all_accounted() {
    let mut n = Nat::new("max_ports_per_subscriber = 50\n");
    let p = n.out(udp(H1, 5000, R1, 53)).one().clone();
    let t = n.out(tcp(H1, 40000, R1, 80, SYN)).one().clone();
    let seeds = [
        udp(H1, 5000, R1, 53),
        tcp(H1, 40000, R1, 80, SYN),
        ping(H1, R1, 8, 9),
        icmp_err(R1, &fmt_addr(p.src()), 3, 3, &p.raw),
        icmp_err(R1, &fmt_addr(t.src()), 11, 0, &t.raw),
        icmp_err(H1, R1, 3, 3, &udp(R1, 53, H1, 5000)),
        udp(R1, 53, &fmt_addr(p.src()), p.sport()),
    ];
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = n.runner.stage_drop_total() + n.runner.drops.total();
    let base_created = n.runner.created;
    let mut sent = 0u64;
    let mut out = 0u64;
    for i in 0..20_000 {
        let mut f = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rnd() % 4 {
            let at = 14 + (rnd() as usize) % (f.len() - 14);
            f[at] = rnd() as u8;
        }
        if rnd() % 4 == 0 {
            let cut = 14 + (rnd() as usize) % (f.len() - 14);
            f.truncate(cut);
        }
        let port = (rnd() % 2) as u16;
        out += n.raw(port, &[f]).pkts.len() as u64;
        sent += 1;
        if rnd() % 64 == 0 {
            out += n.wait(rnd() % 400).pkts.len() as u64;
        }
    }
    out += n.wait(100_000).pkts.len() as u64;
    let dropped = n.runner.stage_drop_total() + n.runner.drops.total() - base;
    let created = n.runner.created - base_created;
    let held = n.stages[0].held() as u64;
    assert_eq!(
        sent + created,
        out + dropped + held,
        "every packet accounted for"
    );
}

#[test]
fn rfc6888_mapping_log_lines_written_off_the_packet_path() {
    let path = std::env::temp_dir().join(format!("nat-rfc-log-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut n = Nat::new(&format!("log = {:?}\n", path.display().to_string()));
    let e = ext_of(n.out(udp(H1, 5000, R1, 53)).one());
    n.wait(301);
    assert_eq!(n.counter("sessions_expired_udp"), 1);
    let mut leaving = Burst::new();
    n.runner
        .flush(n.now, 0, &mut n.stages, &mut leaving, &mut n.cache, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    let t0 = T0 / 1_000_000_000;
    assert_eq!(
        text,
        format!(
            "{t0} nat44 create udp 10.0.0.1:5000 {}\n{} nat44 delete udp 10.0.0.1:5000 {}\n",
            fmt(e),
            t0 + 301,
            fmt(e)
        )
    );
    assert_eq!(n.counter("log_lost"), 0);
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------------
// Performance (ignored by default):
// cargo test --release -p dataplane --test nat_rfc -- --ignored --nocapture

#[test]
#[ignore = "performance; run with --release -- --ignored --nocapture"]
fn perf_one_million_sessions() {
    let extra = "capacity = 1048576\n";
    let text = format!("{BASE}{extra}").replace("198.51.100.0/30", "198.51.100.0/24");
    let cfg = Config::parse("nat.toml", &text, Path::new(".")).unwrap();
    let mut n = Nat::new("");
    n.stages = vec![cfg.stages[0].build(&BuildEnv {
        port_macs: vec![MAC_IN, MAC_OUT],
        worker: 0,
        workers: 1,
    })];
    let host = |i: u32| format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    let frames: Vec<Vec<u8>> = (0..(1u32 << 20))
        .map(|i| udp(&host(i >> 4), 1024 + (i & 15) as u16 * 7, R1, 53))
        .collect();
    let t = std::time::Instant::now();
    for chunk in frames.chunks(32) {
        let _ = n.raw(INSIDE, chunk);
    }
    let dt = t.elapsed();
    let created = n.counter("sessions_created_udp");
    eprintln!(
        "created {created} sessions in {:?}: {:.0} ns per new session (harness included)",
        dt,
        dt.as_nanos() as f64 / created as f64
    );
    assert!(created > 1_000_000);
    let t = std::time::Instant::now();
    let mut sent = 0u64;
    for round in 0..4 {
        for chunk in frames.chunks(32).skip(round).step_by(3) {
            sent += n.raw(INSIDE, chunk).pkts.len() as u64;
        }
    }
    let dt = t.elapsed();
    eprintln!(
        "translated {sent} packets over {} sessions in {:?}: {:.0} ns per packet (harness included)",
        n.counter("sessions_active_udp"),
        dt,
        dt.as_nanos() as f64 / sent as f64
    );
}

/// Swaps source and destination addresses and ports of an IPv4 TCP/UDP frame in place: every
/// checksum stays valid (the sums are commutative), so a translated packet can be sent back
/// through the NAT as the reply without rebuilding it.
fn swap_endpoints(f: &mut [u8]) {
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    for i in 0..2 {
        f.swap(34 + i, 36 + i);
    }
}

#[test]
#[ignore = "performance; run with --release -- --ignored --nocapture"]
fn perf_translate_both_ways_over_one_million_sessions() {
    let text = format!("{BASE}capacity = 1048576\n").replace("198.51.100.0/30", "198.51.100.0/24");
    let cfg = Config::parse("nat.toml", &text, Path::new(".")).unwrap();
    let mut stages = vec![cfg.stages[0].build(&BuildEnv {
        port_macs: vec![MAC_IN, MAC_OUT],
        worker: 0,
        workers: 1,
    })];
    let pool = Pool::new(&PoolConfig {
        count: 1 << 16,
        data_room: 128,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut cache = pool.cache();
    let mut runner = ChainRunner::new(1);
    let host = |i: u32| format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
    let now = T0;
    // One million sessions.
    let mut leaving = Burst::new();
    // NAT_PERF_SESSIONS (a multiple of 32) for a smaller table (the compute floor).
    let sessions: u32 = std::env::var("NAT_PERF_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    for base in (0..sessions).step_by(32) {
        let mut b = Burst::new();
        for i in base..base + 32 {
            let mut m = cache.alloc().unwrap();
            m.copy_from(&udp(&host(i >> 4), 1024 + (i & 15) as u16 * 7, R1, 53));
            m.set_port(INSIDE);
            b.push(m).unwrap();
        }
        runner.run(now, 0, &mut stages, &mut b, &mut leaving, &mut cache, 2);
        runner.finish(&mut b, &mut leaving, &mut cache, 2);
        cache.free_burst(&mut leaving);
    }
    // 32768 packets spread over the sessions, bounced out and back.
    let nb = 1024usize;
    let mut bursts: Vec<Burst> = (0..nb)
        .map(|k| {
            let mut b = Burst::new();
            for j in 0..32u32 {
                let i = ((k as u32 * 32 + j).wrapping_mul(2_654_435_761)) % sessions;
                let mut m = cache.alloc().unwrap();
                m.copy_from(&udp(&host(i >> 4), 1024 + (i & 15) as u16 * 7, R1, 53));
                m.set_port(INSIDE);
                b.push(m).unwrap();
            }
            b
        })
        .collect();
    let rounds = 20;
    let t = std::time::Instant::now();
    let mut pkts = 0u64;
    for _ in 0..rounds {
        for b in bursts.iter_mut() {
            for dir in [OUTSIDE, INSIDE] {
                runner.run(now, 0, &mut stages, b, &mut leaving, &mut cache, 2);
                pkts += b.len() as u64;
                for m in b.as_mut_slice() {
                    swap_endpoints(m.data_mut());
                    m.set_port(dir);
                }
            }
        }
    }
    let dt = t.elapsed();
    assert_eq!(pkts, rounds * nb as u64 * 64, "no packet dropped");
    assert!(leaving.is_empty());
    eprintln!(
        "{pkts} translations over {} sessions: {:.1} ns per packet ({:.2} Mpps, one core, swap included)",
        stages[0]
            .counters()
            .iter()
            .find(|(k, _)| k == "sessions_active_udp")
            .unwrap()
            .1,
        dt.as_nanos() as f64 / pkts as f64,
        pkts as f64 / dt.as_secs_f64() / 1e6
    );
    for b in bursts.iter_mut() {
        cache.free_burst(b);
    }
}

// ---------------------------------------------------------------------------------------------
// Across workers: the real engine with two run-to-completion workers. Subscribers are placed on
// workers by their address and outside ports by blocks of 64, so a hairpin between subscribers
// on different workers, and an inbound fragmented datagram whose fragments meet on a worker
// other than the mapping's, must be handed from one worker to the other.

/// Replays `inside` and `outside` frames through a NAT on two workers (cores 0 and 1); returns
/// the report and what left by `outside` and by `inside`. `None` when there are not two cores.
fn replay_two_workers(
    tag: &str,
    inside: &[Vec<u8>],
    outside: &[Vec<u8>],
) -> Option<(dataplane::engine::Report, Vec<Pkt>, Vec<Pkt>)> {
    use pmd::pcap::{PcapReader, PcapWriter, LINKTYPE_ETHERNET};
    let online = pmd::mem::online_cpus();
    if !(online.contains(&0) && online.contains(&1)) {
        eprintln!("skipped: needs cores 0 and 1 online (online: {online:?})");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("dp-nat-workers-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, frames: &[Vec<u8>], t: u64| {
        let p = dir.join(name);
        let mut w = PcapWriter::create(&p, LINKTYPE_ETHERNET, 65535, true).unwrap();
        for (i, f) in frames.iter().enumerate() {
            w.write(t + i as u64 * 1000, f, f.len() as u32).unwrap();
        }
        w.flush().unwrap();
        p
    };
    let in_in = write("in-inside.pcap", inside, T0);
    let in_out = write("in-outside.pcap", outside, T0 + 1_000_000);
    let (out_out, out_in) = (dir.join("out-outside.pcap"), dir.join("out-inside.pcap"));
    let text = "[memory]\nbuffers = 16384\nhugepages = \"never\"\n\
        [engine]\nworkers = [0, 1]\nlayout = \"run-to-completion\"\nburst = 32\n\
        [[port]]\nname = \"inside\"\nkind = \"pcap\"\nmac = \"02:00:00:00:00:01\"\n\
        [[port]]\nname = \"outside\"\nkind = \"pcap\"\nmac = \"02:00:00:00:00:02\"\n\
        [[stage]]\nkind = \"nat44\"\ninside = [\"inside\"]\noutside = \"outside\"\n\
        pool = [\"198.51.100.1/32\"]\ncapacity = 4096\nallocation = \"sequential\"\n";
    let cfg = Config::parse("nat-workers.toml", text, Path::new(".")).unwrap();
    let files = dataplane::build::ReplayFiles {
        inputs: vec![
            format!("inside={}", in_in.display()),
            format!("outside={}", in_out.display()),
        ],
        outputs: vec![
            format!("outside={}", out_out.display()),
            format!("inside={}", out_in.display()),
        ],
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = dataplane::build::run(&cfg, Some(&files), &stop).unwrap();
    let read = |p: &Path, port: u16| {
        let mut r = PcapReader::open(p).unwrap();
        let mut v = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            v.push(Pkt {
                port,
                raw: rec.data.to_vec(),
            });
        }
        v
    };
    let (o, i) = (read(&out_out, OUTSIDE), read(&out_in, INSIDE));
    let _ = std::fs::remove_dir_all(&dir);
    Some((report, o, i))
}

/// The NAT's counter `name`, summed over the workers.
fn worker_counter(r: &dataplane::engine::Report, name: &str) -> u64 {
    r.workers
        .iter()
        .flat_map(|w| w.stages.iter())
        .filter(|(st, _)| st == "nat44")
        .flat_map(|(_, c)| c.iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

/// An inside host the NAT places on worker `w` of 2.
fn host_on(w: usize) -> String {
    (2..250)
        .map(|i| format!("10.0.7.{i}"))
        .find(|h| dataplane::stages::nat::subscriber_worker(u32::from_be_bytes(a(h)), 2) == w)
        .expect("a host for each worker")
}

#[test]
fn rfc4787_req09_rfc5382_req08_rfc5508_req07_hairpin_across_workers() {
    let (ha, hb) = (host_on(0), host_on(1));
    const EXT: &str = "198.51.100.1";
    // Sequential allocation: worker 0's first port at or above 1024 is 1024 (block 16),
    // worker 1's is 1088 (block 17), in each protocol's space.
    let (ea, eb) = (1024u16, 1088u16);
    let udp_a = udp(&ha, 5000, R1, 53);
    let hair_udp = udp(&hb, 6000, EXT, ea);
    let hair_tcp = tcp(&hb, 6001, EXT, ea, SYN);
    // What HA receives from the UDP hairpin, as the model says it must look.
    let seen_by_a = udp(EXT, eb, &ha, 5000);
    let err = icmp_err(&ha, EXT, 3, 3, &seen_by_a);
    let inside = vec![udp_a, tcp(&ha, 40000, R1, 80, SYN), hair_udp, hair_tcp, err];
    let Some((r, to_out, to_in)) = replay_two_workers("hairpin", &inside, &[]) else {
        return;
    };
    assert!(r.balanced(), "{}", r.render());
    assert_eq!(
        r.drops().total() + r.stage_drop_total(),
        0,
        "{}",
        r.render()
    );
    assert_eq!(to_out.len(), 2, "{to_out:?}");
    assert_eq!(
        (to_out[0].src(), to_out[0].sport()),
        (a(EXT), ea),
        "HA's UDP mapping on worker 0"
    );
    assert_eq!((to_out[1].proto(), to_out[1].sport()), (TCP, ea));
    assert_eq!(to_in.len(), 3, "{to_in:?}");
    for p in &to_in {
        assert!(p.checksums_ok(), "bad checksum: {p:?}");
    }
    let of = |proto: u8| to_in.iter().find(|p| p.proto() == proto);
    let u = of(UDP).expect("UDP hairpin");
    assert_eq!(
        (u.src(), u.sport(), u.dst(), u.dport()),
        (a(EXT), eb, a(&ha), 5000),
        "MUST (RFC 4787 REQ-9): hairpinned across workers with HB's external address and port"
    );
    let t = of(TCP).expect("TCP hairpin");
    assert_eq!(
        (t.src(), t.sport(), t.dst(), t.dport()),
        (a(EXT), eb, a(&ha), 40000),
        "MUST (RFC 5382 REQ-8): TCP hairpinned across workers"
    );
    let e = of(ICMP).expect("ICMP error");
    assert_eq!(e.dst(), a(&hb), "MUST (RFC 5508 REQ-7): error reaches HB");
    let q = e.quoted();
    assert_eq!(
        (q.src(), q.sport(), q.dst(), q.dport()),
        (a(&hb), 6000, a(EXT), ea),
        "the quoted packet is what HB sent"
    );
    assert_eq!(worker_counter(&r, "hairpins_handed_over"), 3);
    assert_eq!(worker_counter(&r, "hairpinned"), 2);
}

/// A UDP datagram from R1:53 to `dst:dport` in two fragments (first, rest), IP ID `id`.
fn fragmented_reply(dst: &str, dport: u16, id: u16) -> (Vec<u8>, Vec<u8>) {
    let mut l4 = vec![0u8; 8];
    l4[0..2].copy_from_slice(&53u16.to_be_bytes());
    l4[2..4].copy_from_slice(&dport.to_be_bytes());
    l4.extend_from_slice(&[id as u8; 40]);
    let n = l4.len() as u16;
    l4[4..6].copy_from_slice(&n.to_be_bytes());
    fragments(&frame(a(R1), a(dst), UDP, l4, id, 0))
}

#[test]
fn inbound_fragments_reach_the_mapping_owner_in_any_order_across_workers() {
    let ha = host_on(0);
    const EXT: &str = "198.51.100.1";
    let ext = u32::from_be_bytes(a(EXT));
    let r1 = u32::from_be_bytes(a(R1));
    let fw = |id: u16| dataplane::stages::nat::fragment_worker(r1, ext, UDP, id, 2);
    // Two datagrams whose fragments meet on worker 1 (the mapping is worker 0's), one on 0.
    let mut remote = (1..u16::MAX).filter(|&id| fw(id) == 1);
    let (id1, id2) = (remote.next().unwrap(), remote.next().unwrap());
    let id3 = (1..u16::MAX).find(|&id| fw(id) == 0).unwrap();
    let (a1, b1) = fragmented_reply(EXT, 1024, id1);
    let (a2, b2) = fragmented_reply(EXT, 1024, id2);
    let (a3, b3) = fragmented_reply(EXT, 1024, id3);
    let inside = vec![udp(&ha, 5000, R1, 53)];
    // The first datagram's second fragment comes before its first.
    let outside = vec![b1, a1, a2, b2, a3, b3];
    let Some((r, to_out, to_in)) = replay_two_workers("frags", &inside, &outside) else {
        return;
    };
    assert!(r.balanced(), "{}", r.render());
    assert_eq!(
        r.drops().total() + r.stage_drop_total(),
        0,
        "{}",
        r.render()
    );
    assert_eq!((to_out[0].sport(), to_out[0].src()), (1024, a(EXT)));
    assert_eq!(to_in.len(), 6, "every fragment delivered: {to_in:?}");
    for id in [id1, id2, id3] {
        let parts: Vec<&Pkt> = to_in
            .iter()
            .filter(|p| u16::from_be_bytes([p.ip()[4], p.ip()[5]]) == id)
            .collect();
        assert_eq!(parts.len(), 2, "datagram {id:#x}");
        let at = |first: bool| {
            parts
                .iter()
                .find(|p| (u16::from_be_bytes([p.ip()[6], p.ip()[7]]) & 0x1fff == 0) == first)
        };
        let (first, rest) = (
            at(true).expect("first fragment"),
            at(false).expect("second fragment"),
        );
        for p in &parts {
            assert!(p.checksums_ok(), "IPv4 header checksum: {p:?}");
            assert_eq!(p.dst(), a(&ha), "datagram {id:#x} translated");
            assert_eq!(p.port, INSIDE);
        }
        assert_eq!(first.dport(), 5000);
        // The whole datagram's UDP checksum, reassembled here.
        let mut l4 = first.l4().to_vec();
        l4.extend_from_slice(rest.l4());
        assert_eq!(
            csum(&l4, pseudo(a(R1), a(&ha), UDP, l4.len())),
            0,
            "datagram {id:#x}: UDP checksum after translation"
        );
    }
    assert_eq!(worker_counter(&r, "fragments_handed_over"), 4);
}
