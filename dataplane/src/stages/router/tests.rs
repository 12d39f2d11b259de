//! Router stage tests: frames built by hand, run through the stage with the engine's own
//! [`ChainRunner`] on a real buffer pool, outputs decoded and checked; the FIB against a slow
//! trie oracle (random tables, and the corpus' full table when it is present).

use std::net::IpAddr;

use pmd::mem::HugePolicy;
use pmd::pool::{Pool, PoolCache, PoolConfig};
use pmd::Burst;

use super::fib::{FibCell, Hop, Prefix, Rib};
use super::stage::drop;
use super::*;
use crate::engine::chain::ChainRunner;
use crate::stage::Stage;
use crate::wire::checksum;

const MACS: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]];
const HOST: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const GW_MAC: [u8; 6] = [2, 0xaa, 0, 0, 0, 1];

struct Harness {
    _pool: Pool,
    cache: PoolCache,
    runner: ChainRunner,
    stages: Vec<Box<dyn Stage>>,
    seq: u64,
    /// The receiving device's checksum verdict given to every packet (`None`: no offload).
    csum_offload: Option<bool>,
}

/// Output: (egress port, frame).
type Out = Vec<(u16, Vec<u8>)>;

impl Harness {
    fn new(cfg: &RouterConfig, rib: &Rib) -> Harness {
        let pool = Pool::new(&PoolConfig {
            count: 1024,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        let cache = pool.cache();
        let cell = FibCell::new(rib.build(1).unwrap());
        let st: Box<dyn Stage> = Box::new(Router::new(cfg, &cell, MACS.to_vec()));
        Harness {
            _pool: pool,
            cache,
            runner: ChainRunner::new(1),
            stages: vec![st],
            seq: 0,
            csum_offload: None,
        }
    }

    /// What leaves, as a port without checksum offload sends it (checksums a packet left to
    /// transmit filled, as the engine does).
    fn collect(&mut self, leaving: &mut Burst) -> Out {
        let mut out = Vec::new();
        while let Some(mut m) = leaving.pop() {
            assert!(m.fill_tx_csum());
            out.push((m.egress(), m.data().to_vec()));
            self.cache.free(m);
        }
        out.reverse();
        out
    }

    fn run(&mut self, now: u64, frames: &[(u16, Vec<u8>)]) -> Out {
        let mut burst = Burst::new();
        for (p, f) in frames {
            let mut m = self.cache.alloc().unwrap();
            assert!(m.copy_from(f));
            m.set_port(*p);
            m.set_seq(self.seq);
            m.set_timestamp(now);
            m.set_ip_csum_offload(self.csum_offload);
            self.seq += 1;
            burst.push(m).unwrap();
        }
        let mut leaving = Burst::new();
        self.runner.run(
            now,
            0,
            &mut self.stages,
            &mut burst,
            &mut leaving,
            &mut self.cache,
            2,
        );
        self.runner
            .finish(&mut burst, &mut leaving, &mut self.cache, 2);
        self.collect(&mut leaving)
    }

    fn poll(&mut self, now: u64) -> Out {
        let mut leaving = Burst::new();
        self.runner
            .poll(now, 0, &mut self.stages, &mut leaving, &mut self.cache, 2);
        self.collect(&mut leaving)
    }

    fn drops(&self, code: u8) -> u64 {
        self.runner.stage_drops[0][code as usize]
    }

    fn counter(&self, name: &str) -> u64 {
        self.stages[0]
            .counters()
            .into_iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| v)
    }
}

fn ip4(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

fn ip6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// An Ethernet + IPv4 frame to the router's inside MAC.
fn v4(src: &str, dst: &str, ttl: u8, proto: u8, df: bool, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + opts.len();
    let mut f = Vec::new();
    f.extend_from_slice(&MACS[0]);
    f.extend_from_slice(&HOST);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (ihl + payload.len()) as u16;
    f.push(0x40 | (ihl / 4) as u8);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0]);
    f.extend_from_slice(&ip4(src));
    f.extend_from_slice(&ip4(dst));
    f.extend_from_slice(opts);
    let c = checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn udp_payload(n: usize) -> Vec<u8> {
    let mut p = vec![0x30, 0x39, 0x00, 0x35, 0, 0, 0, 0];
    p[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    p.resize(n, 0xab);
    p
}

fn echo_payload() -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0, 0x11, 0x22, 0, 1, 1, 2, 3, 4];
    let c = checksum::checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// An Ethernet + IPv6 frame.
fn v6(src: &str, dst: &str, hl: u8, nh: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&MACS[0]);
    f.extend_from_slice(&HOST);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    f.push(nh);
    f.push(hl);
    f.extend_from_slice(&ip6(src));
    f.extend_from_slice(&ip6(dst));
    f.extend_from_slice(payload);
    f
}

fn arp(op: u16, sha: [u8; 6], spa: &str, tpa: &str, eth_dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&ip4(spa));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&ip4(tpa));
    f
}

fn p(s: &str) -> Prefix {
    routes::parse_prefix(s, s.contains(':')).unwrap()
}

/// Port 0 "inside" 10.0.0.1/24 + 2001:db8:0::1/64; port 1 "outside" 192.0.2.2/24 +
/// 2001:db8:1::2/64, MTU 1400; default via 192.0.2.1 (static neighbour) and ::/0 via
/// 2001:db8:1::1 (static); 198.51.100.0/24 via 192.0.2.9 (dynamic, ARP).
fn setup() -> (RouterConfig, Rib) {
    let cfg = RouterConfig {
        ifaces: vec![
            Iface {
                port: 0,
                addr4: Some(("10.0.0.1".parse().unwrap(), 24)),
                addr6: Some(("2001:db8::1".parse().unwrap(), 64)),
                mtu: 1500,
            },
            Iface {
                port: 1,
                addr4: Some(("192.0.2.2".parse().unwrap(), 24)),
                addr6: Some(("2001:db8:1::2".parse().unwrap(), 64)),
                mtu: 1400,
            },
        ],
        neighbours: vec![
            StaticNeighbour {
                ip: "192.0.2.1".parse().unwrap(),
                mac: GW_MAC,
                port: 1,
            },
            StaticNeighbour {
                ip: "2001:db8:1::1".parse().unwrap(),
                mac: GW_MAC,
                port: 1,
            },
            StaticNeighbour {
                ip: "10.0.0.99".parse().unwrap(),
                mac: HOST,
                port: 0,
            },
        ],
        ..RouterConfig::default()
    };
    let mut rib = Rib::new();
    let text = "\
10.0.0.0/24 dev port0
192.0.2.0/24 dev port1
local 10.0.0.1
local 192.0.2.2
local 2001:db8::1
2001:db8::/64 dev port0
2001:db8:1::/64 dev port1
8.0.0.0/8 via 192.0.2.1 dev port1
198.51.100.0/24 via 192.0.2.9 dev port1
blackhole 203.0.113.0/24
prohibit 203.0.114.0/24
2000::/3 via 2001:db8:1::1 dev port1
2001:db8:5::/48 via 2001:db8:1::9 dev port1
";
    let names = |s: &str| {
        ["port0", "port1"]
            .iter()
            .position(|&x| x == s)
            .map(|i| i as u16)
    };
    routes::parse_ip_route("t", text, &names, &mut rib).unwrap();
    (cfg, rib)
}

fn harness() -> Harness {
    let (cfg, rib) = setup();
    Harness::new(&cfg, &rib)
}

fn ipv4_ok(f: &[u8]) -> bool {
    let ihl = usize::from(f[14] & 0xf) * 4;
    checksum::verify(&f[14..14 + ihl], 0)
}

#[test]
fn forwards_with_ttl_decrement_and_macs() {
    let mut h = harness();
    let pl = udp_payload(100);
    let inp = v4("10.0.0.99", "8.8.8.8", 64, 17, true, &[], &pl);
    let out = h.run(1, &[(0, inp.clone())]);
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(f[0..6], GW_MAC);
    assert_eq!(f[6..12], MACS[1]);
    assert_eq!(f[22], 63);
    assert!(ipv4_ok(f));
    assert_eq!(f[34..], inp[34..]);
    // Only TTL and checksum changed in the IP header.
    let mut g = f.clone();
    g[22] = 64;
    g[24..26].copy_from_slice(&inp[24..26]);
    assert_eq!(g[12..], inp[12..]);
}

#[test]
fn options_are_forwarded_intact() {
    let mut h = harness();
    let opts = [0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01]; // record route + EOL padding
    let inp = v4(
        "10.0.0.99",
        "8.8.4.4",
        10,
        17,
        false,
        &opts,
        &udp_payload(20),
    );
    let out = h.run(1, &[(0, inp.clone())]);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!(f[14], 0x47);
    assert_eq!(f[34..42], opts);
    assert_eq!(f[22], 9);
    assert!(ipv4_ok(f));
}

#[test]
fn bad_headers_are_counted() {
    let mut h = harness();
    let good = v4("10.0.0.99", "8.8.8.8", 64, 17, false, &[], &udp_payload(20));
    let mut bad_ver = good.clone();
    bad_ver[14] = 0x55;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    let mut bad_len = good.clone();
    bad_len[16..18].copy_from_slice(&500u16.to_be_bytes());
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0xff;
    let short = good[..30].to_vec();
    let out = h.run(
        1,
        &[
            (0, bad_ver),
            (0, bad_ihl),
            (0, bad_len),
            (0, bad_sum),
            (0, short),
            (0, vec![1, 2, 3]),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(h.drops(drop::BAD_VERSION), 1);
    assert_eq!(h.drops(drop::BAD_IHL), 1);
    assert_eq!(h.drops(drop::BAD_LENGTH), 2);
    assert_eq!(h.drops(drop::BAD_CHECKSUM), 1);
    assert_eq!(h.drops(drop::MALFORMED), 1);
    assert_eq!(h.counter("icmp_sent"), 0);
}

#[test]
fn the_devices_checksum_verdict_is_used_when_there_is_one() {
    let good = v4("10.0.0.99", "8.8.8.8", 64, 17, false, &[], &udp_payload(20));
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0xff;
    // The device said wrong: dropped without summing (even if the sum would pass).
    let mut h = harness();
    h.csum_offload = Some(false);
    assert!(h.run(1, &[(0, good.clone())]).is_empty());
    assert_eq!(h.drops(drop::BAD_CHECKSUM), 1);
    // The device said right: trusted (the sum is not recomputed).
    let mut h = harness();
    h.csum_offload = Some(true);
    assert_eq!(h.run(1, &[(0, bad_sum.clone())]).len(), 1);
    assert_eq!(h.drops(drop::BAD_CHECKSUM), 0);
    // No verdict: summed in software.
    let mut h = harness();
    assert!(h.run(1, &[(0, bad_sum)]).is_empty());
    assert_eq!(h.run(1, &[(0, good)]).len(), 1);
    assert_eq!(h.drops(drop::BAD_CHECKSUM), 1);
}

/// Decodes an ICMPv4 error frame: (type, code, rest, quoted bytes); checks both checksums and
/// the addressing back to the sender.
fn icmp4_of(f: &[u8], to: &str, from: &str) -> (u8, u8, u32, Vec<u8>) {
    assert_eq!(f[12..14], [0x08, 0x00]);
    assert_eq!(f[0..6], HOST);
    assert!(ipv4_ok(f));
    assert_eq!(f[23], 1);
    assert_eq!(f[26..30], ip4(from));
    assert_eq!(f[30..34], ip4(to));
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    assert_eq!(total, f.len() - 14);
    let icmp = &f[34..];
    assert!(checksum::verify(icmp, 0));
    (
        icmp[0],
        icmp[1],
        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        icmp[8..].to_vec(),
    )
}

#[test]
fn ttl_expiry_sends_time_exceeded_with_quote() {
    let mut h = harness();
    let inp = v4("10.0.0.99", "8.8.8.8", 1, 17, false, &[], &udp_payload(40));
    let out = h.run(1, &[(0, inp.clone())]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    let (t, c, _, q) = icmp4_of(&out[0].1, "10.0.0.99", "10.0.0.1");
    assert_eq!((t, c), (11, 0));
    assert_eq!(q, inp[14..]);
    assert_eq!(h.drops(drop::TTL_EXCEEDED), 1);
    // TTL 0 too.
    let out = h.run(
        2,
        &[(0, v4("10.0.0.99", "8.8.8.8", 0, 17, false, &[], &[0; 8]))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(h.drops(drop::TTL_EXCEEDED), 2);
}

#[test]
fn long_datagrams_are_quoted_up_to_576_bytes() {
    let mut h = harness();
    let inp = v4(
        "10.0.0.99",
        "8.8.8.8",
        1,
        17,
        false,
        &[],
        &udp_payload(1000),
    );
    let out = h.run(1, &[(0, inp.clone())]);
    let f = &out[0].1;
    assert_eq!(f.len() - 14, 576);
    let (_, _, _, q) = icmp4_of(f, "10.0.0.99", "10.0.0.1");
    assert_eq!(q, inp[14..14 + 548]);
}

#[test]
fn no_route_blackhole_and_prohibit() {
    let mut h = harness();
    let out = h.run(
        1,
        &[
            (
                0,
                v4(
                    "10.0.0.99",
                    "100.64.0.1",
                    64,
                    17,
                    false,
                    &[],
                    &udp_payload(8),
                ),
            ),
            (
                0,
                v4(
                    "10.0.0.99",
                    "203.0.113.1",
                    64,
                    17,
                    false,
                    &[],
                    &udp_payload(8),
                ),
            ),
            (
                0,
                v4(
                    "10.0.0.99",
                    "203.0.114.1",
                    64,
                    17,
                    false,
                    &[],
                    &udp_payload(8),
                ),
            ),
        ],
    );
    assert_eq!(out.len(), 2);
    let (t, c, _, _) = icmp4_of(&out[0].1, "10.0.0.99", "10.0.0.1");
    assert_eq!((t, c), (3, 0));
    let (t, c, _, _) = icmp4_of(&out[1].1, "10.0.0.99", "10.0.0.1");
    assert_eq!((t, c), (3, 13));
    assert_eq!(h.drops(drop::NO_ROUTE), 1);
    assert_eq!(h.drops(drop::BLACKHOLE), 1);
    assert_eq!(h.drops(drop::UNREACHABLE), 1);
}

#[test]
fn df_and_too_big_gives_frag_needed_with_mtu() {
    let mut h = harness();
    let big = udp_payload(1400); // 1420 > outside MTU 1400
    let out = h.run(
        1,
        &[
            (0, v4("10.0.0.99", "8.8.8.8", 64, 17, true, &[], &big)),
            (
                0,
                v4(
                    "10.0.0.99",
                    "8.8.8.8",
                    64,
                    17,
                    true,
                    &[],
                    &udp_payload(1380),
                ),
            ),
        ],
    );
    assert_eq!(out.len(), 2, "one error and one fitting packet");
    let (t, c, rest, _) = icmp4_of(&out[0].1, "10.0.0.99", "10.0.0.1");
    assert_eq!((t, c, rest & 0xffff), (3, 4, 1400));
    assert_eq!(out[1].0, 1);
    assert_eq!(h.drops(drop::FRAG_NEEDED), 1);
}

#[test]
fn df_clear_and_too_big_is_fragmented() {
    let mut h = harness();
    // Options: a copied one (0x83 loose source route, 7 bytes) and record route (not copied).
    let opts = [0x83, 7, 4, 1, 2, 3, 4, 0x07, 7, 4, 0, 0, 0, 0, 0, 0];
    // A 1450-byte packet for the 1400-byte MTU of the outside port: two fragments.
    let pl: Vec<u8> = (0..1414u32).map(|i| (i * 7) as u8).collect();
    let inp_small = v4("10.0.0.99", "8.8.8.8", 64, 17, false, &opts, &pl);
    let out = h.run(1, &[(0, inp_small.clone())]);
    assert_eq!(out.len(), 2, "{out:?}");
    let mut data = Vec::new();
    for (k, (port, f)) in out.iter().enumerate() {
        assert_eq!(*port, 1);
        assert_eq!(f[0..6], GW_MAC);
        assert!(ipv4_ok(f));
        let ihl = usize::from(f[14] & 0xf) * 4;
        let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
        assert!(total <= 1400);
        assert_eq!(total, f.len() - 14);
        assert_eq!(f[22], 63);
        let fo = u16::from_be_bytes([f[20], f[21]]);
        let off = usize::from(fo & 0x1fff) * 8;
        let mf = fo & 0x2000 != 0;
        assert_eq!(mf, k == 0);
        assert_eq!(off, data.len());
        if k == 0 {
            assert_eq!(f[34..34 + 16], opts);
        } else {
            assert_eq!(ihl, 28);
            assert_eq!(f[34..41], opts[..7]);
        }
        data.extend_from_slice(&f[14 + ihl..]);
    }
    assert_eq!(data, inp_small[14 + 36..]);
    assert_eq!(h.counter("fragments_sent"), 2);
}

#[test]
fn no_icmp_about_icmp_errors_fragments_or_broadcasts() {
    let mut h = harness();
    let mut err = vec![3, 1, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&[0x45; 28]);
    let icmp_err = v4("10.0.0.99", "8.8.8.8", 1, 1, false, &[], &err);
    let mut frag = v4("10.0.0.99", "8.8.8.8", 1, 17, false, &[], &udp_payload(16));
    frag[20..22].copy_from_slice(&0x0010u16.to_be_bytes()); // offset 128 bytes
    frag[24..26].fill(0);
    let c = checksum::checksum(&frag[14..34]);
    frag[24..26].copy_from_slice(&c.to_be_bytes());
    let mut bcast = v4("10.0.0.99", "8.8.8.8", 1, 17, false, &[], &udp_payload(16));
    bcast[0..6].fill(0xff);
    let to_bcast = v4(
        "10.0.0.99",
        "255.255.255.255",
        1,
        17,
        false,
        &[],
        &udp_payload(16),
    );
    let to_mcast = v4(
        "10.0.0.99",
        "224.0.0.5",
        1,
        17,
        false,
        &[],
        &udp_payload(16),
    );
    let echo_ttl1 = v4("10.0.0.99", "8.8.8.8", 1, 1, false, &[], &echo_payload());
    let out = h.run(
        1,
        &[
            (0, icmp_err),
            (0, frag),
            (0, bcast),
            (0, to_bcast),
            (0, to_mcast),
            (0, echo_ttl1),
        ],
    );
    // Only the echo request (an ICMP query, not an error) gets a time exceeded.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(h.drops(drop::TTL_EXCEEDED), 3);
    assert_eq!(h.drops(drop::L2_BROADCAST), 1);
    assert_eq!(h.drops(drop::MULTICAST), 2);
}

#[test]
fn martians_are_dropped() {
    let mut h = harness();
    let pl = udp_payload(8);
    let out = h.run(
        1,
        &[
            (0, v4("127.0.0.1", "8.8.8.8", 64, 17, false, &[], &pl)),
            (0, v4("0.1.2.3", "8.8.8.8", 64, 17, false, &[], &pl)),
            (0, v4("224.1.1.1", "8.8.8.8", 64, 17, false, &[], &pl)),
            (0, v4("240.0.0.1", "8.8.8.8", 64, 17, false, &[], &pl)),
            (0, v4("10.0.0.99", "127.0.0.1", 64, 17, false, &[], &pl)),
            (0, v4("10.0.0.99", "0.0.0.1", 64, 17, false, &[], &pl)),
            (0, v4("10.0.0.99", "250.0.0.1", 64, 17, false, &[], &pl)),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(h.drops(drop::MARTIAN_SOURCE), 4);
    assert_eq!(h.drops(drop::MARTIAN_DESTINATION), 3);
    assert_eq!(h.counter("icmp_sent"), 0);
}

#[test]
fn echo_to_the_router_is_answered() {
    let mut h = harness();
    let req = v4("10.0.0.99", "10.0.0.1", 64, 1, false, &[], &echo_payload());
    let udp = v4("10.0.0.99", "10.0.0.1", 64, 17, false, &[], &udp_payload(8));
    // An address of another interface answers too.
    let req2 = v4("10.0.0.99", "192.0.2.2", 1, 1, false, &[], &echo_payload());
    let out = h.run(1, &[(0, req.clone()), (0, udp), (0, req2)]);
    assert_eq!(out.len(), 2);
    let (port, f) = &out[0];
    assert_eq!(*port, 0);
    assert_eq!(f[0..6], HOST);
    assert_eq!(f[6..12], MACS[0]);
    assert_eq!(f[26..30], ip4("10.0.0.1"));
    assert_eq!(f[30..34], ip4("10.0.0.99"));
    assert!(ipv4_ok(f));
    assert_eq!(f[34], 0);
    assert!(checksum::verify(&f[34..], 0));
    assert_eq!(f[38..], req[38..]);
    assert_eq!(h.drops(drop::LOCAL), 1);
    assert_eq!(h.counter("echo_replies"), 2);
}

#[test]
fn arp_for_the_router_is_answered() {
    let mut h = harness();
    let req = arp(1, HOST, "10.0.0.50", "10.0.0.1", [0xff; 6]);
    let other = arp(1, HOST, "10.0.0.50", "10.0.0.7", [0xff; 6]);
    let out = h.run(1, &[(0, req), (0, other)]);
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 0);
    assert_eq!(f[0..6], HOST);
    assert_eq!(f[6..12], MACS[0]);
    assert_eq!(f[20..22], [0, 2]);
    assert_eq!(f[22..28], MACS[0]);
    assert_eq!(f[28..32], ip4("10.0.0.1"));
    assert_eq!(f[32..38], HOST);
    assert_eq!(f[38..42], ip4("10.0.0.50"));
    assert_eq!(h.drops(drop::ARP), 1);
    // The requester was learned: traffic to it now leaves without ARP.
    let out = h.run(
        2,
        &[(1, {
            let mut f = v4("8.8.8.8", "10.0.0.50", 9, 17, false, &[], &udp_payload(8));
            f[0..6].copy_from_slice(&MACS[1]);
            f
        })],
    );
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, &out[0].1[0..6]), (0, &HOST[..]));
}

#[test]
fn unresolved_next_hop_is_resolved_by_arp_and_held_packets_released() {
    let mut h = harness();
    let pkts: Vec<_> = (0..6)
        .map(|i| {
            (
                0,
                v4(
                    "10.0.0.99",
                    "198.51.100.7",
                    64,
                    17,
                    false,
                    &[],
                    &udp_payload(8 + i),
                ),
            )
        })
        .collect();
    let out = h.run(1_000, &pkts);
    // One ARP request out of port 1; four held (hold = 4); two dropped.
    assert_eq!(out.len(), 1, "{out:?}");
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(f[0..6], [0xff; 6]);
    assert_eq!(f[12..14], [0x08, 0x06]);
    assert_eq!(f[20..22], [0, 1]);
    assert_eq!(f[28..32], ip4("192.0.2.2"));
    assert_eq!(f[38..42], ip4("192.0.2.9"));
    assert_eq!(h.stages[0].held(), 4);
    assert_eq!(h.drops(drop::NEIGHBOUR_UNRESOLVED), 2);
    let nh_mac = [2, 0xbb, 0, 0, 0, 9];
    let reply = arp(2, nh_mac, "192.0.2.9", "192.0.2.2", MACS[1]);
    let out = h.run(2_000, &[(1, reply)]);
    assert_eq!(out.len(), 4);
    for (i, (port, f)) in out.iter().enumerate() {
        assert_eq!(*port, 1);
        assert_eq!(f[0..6], nh_mac);
        assert_eq!(f[6..12], MACS[1]);
        assert_eq!(f[22], 63);
        assert!(ipv4_ok(f));
        assert_eq!(f.len(), 14 + 20 + 8 + i, "in order");
    }
    assert_eq!(h.stages[0].held(), 0);
    // Now resolved: straight through.
    let out = h.run(3_000, &pkts[..1]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1[0..6], nh_mac);
}

#[test]
fn held_packets_are_given_up_after_retries() {
    let mut h = harness();
    let pkt = v4(
        "10.0.0.99",
        "198.51.100.7",
        64,
        17,
        false,
        &[],
        &udp_payload(8),
    );
    let t0 = 1_000_000_000u64;
    assert_eq!(h.run(t0, &[(0, pkt)]).len(), 1);
    assert!(h.poll(t0 + 1).is_empty());
    let mut requests = 1;
    for s in 1..=5u64 {
        requests += h.poll(t0 + s * 1_000_000_000 + 1).len();
    }
    assert_eq!(requests, 3, "three requests in all");
    assert_eq!(h.stages[0].held(), 0);
    assert_eq!(h.drops(drop::NEIGHBOUR_TIMEOUT), 1);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let (mut cfg, rib) = setup();
    cfg.icmp_burst = 5;
    cfg.icmp_rate = 10;
    let mut h = Harness::new(&cfg, &rib);
    let pkts: Vec<_> = (0..20)
        .map(|_| {
            (
                0,
                v4("10.0.0.99", "8.8.8.8", 1, 17, false, &[], &udp_payload(8)),
            )
        })
        .collect();
    assert_eq!(h.run(1, &pkts).len(), 5);
    assert_eq!(h.counter("icmp_rate_limited"), 15);
    // 10 per second: after 0.5 s, five more.
    assert_eq!(h.run(500_000_001, &pkts).len(), 5);
    assert_eq!(h.drops(drop::TTL_EXCEEDED), 40);
}

fn icmp6_ok(f: &[u8]) -> bool {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&f[22..38]);
    dst.copy_from_slice(&f[38..54]);
    let len = f.len() - 54;
    checksum::verify(&f[54..], checksum::pseudo_v6(src, dst, 58, len as u32))
}

#[test]
fn ipv6_forwarding_and_errors() {
    let mut h = harness();
    let pl = udp_payload(100);
    let out = h.run(
        1,
        &[(0, v6("2001:db8::99", "2001:4860::8888", 64, 17, &pl))],
    );
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(
        (*port, &f[0..6], &f[6..12], f[21]),
        (1, &GW_MAC[..], &MACS[1][..], 63)
    );
    // Hop limit 1: time exceeded from the inside address.
    let inp = v6("2001:db8::99", "2001:4860::8888", 1, 17, &pl);
    let out = h.run(2, &[(0, inp.clone())]);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!((f[54], f[55]), (3, 0));
    assert_eq!(f[22..38], ip6("2001:db8::1"));
    assert_eq!(f[38..54], ip6("2001:db8::99"));
    assert!(icmp6_ok(f));
    assert_eq!(f[62..], inp[14..]);
    // Too big: packet too big with the MTU.
    let out = h.run(
        3,
        &[(
            0,
            v6("2001:db8::99", "2001:4860::1", 64, 17, &udp_payload(1400)),
        )],
    );
    let f = &out[0].1;
    assert_eq!((f[54], f[55]), (2, 0));
    assert_eq!(u32::from_be_bytes([f[58], f[59], f[60], f[61]]), 1400);
    assert!(icmp6_ok(f));
    assert_eq!(f.len() - 14, 1280);
    // No route (outside 2000::/3).
    let out = h.run(4, &[(0, v6("2001:db8::99", "4000::1", 64, 17, &pl))]);
    assert_eq!((out[0].1[54], out[0].1[55]), (1, 0));
    // Echo to the router.
    let mut echo = vec![128, 0, 0, 0, 0, 7, 0, 1, 9, 9];
    let src = ip6("2001:db8::99");
    let dst = ip6("2001:db8::1");
    let c = !checksum::fold(checksum::sum16(
        &echo,
        checksum::pseudo_v6(src, dst, 58, echo.len() as u32),
    ));
    echo[2..4].copy_from_slice(&c.to_be_bytes());
    let out = h.run(5, &[(0, v6("2001:db8::99", "2001:db8::1", 64, 58, &echo))]);
    let f = &out[0].1;
    assert_eq!((out[0].0, f[54]), (0, 129));
    assert!(icmp6_ok(f));
    // Martians.
    let out = h.run(
        6,
        &[
            (0, v6("::1", "2001:4860::1", 64, 17, &pl)),
            (0, v6("ff02::1", "2001:4860::1", 64, 17, &pl)),
            (0, v6("2001:db8::99", "ff02::1", 64, 17, &pl)),
            (0, v6("fe80::1", "2001:4860::1", 64, 17, &pl)),
        ],
    );
    assert!(out.is_empty());
    assert_eq!(h.drops(drop::MARTIAN_SOURCE), 3);
    assert_eq!(h.drops(drop::MULTICAST), 1);
}

#[test]
fn ecmp_spreads_flows_over_next_hops() {
    let (mut cfg, mut rib) = setup();
    let gw2 = "192.0.2.3".parse::<IpAddr>().unwrap();
    cfg.neighbours.push(StaticNeighbour {
        ip: gw2,
        mac: [2, 0xcc, 0, 0, 0, 3],
        port: 1,
    });
    rib.insert(
        p("9.0.0.0/8"),
        vec![
            Hop::Via {
                gw: "192.0.2.1".parse().unwrap(),
                port: 1,
            },
            Hop::Via { gw: gw2, port: 1 },
        ],
    );
    let mut h = Harness::new(&cfg, &rib);
    let pkts: Vec<_> = (0..64)
        .map(|i| {
            (
                0,
                v4(
                    "10.0.0.99",
                    &format!("9.0.{i}.1"),
                    9,
                    17,
                    false,
                    &[],
                    &udp_payload(8),
                ),
            )
        })
        .collect();
    let out = h.run(1, &pkts);
    assert_eq!(out.len(), 64);
    let macs: std::collections::HashSet<_> = out.iter().map(|(_, f)| f[0..6].to_vec()).collect();
    assert_eq!(macs.len(), 2);
    // Same flow, same hop.
    let again = h.run(2, &pkts);
    assert_eq!(
        out.iter().map(|o| &o.1[0..6]).collect::<Vec<_>>(),
        again.iter().map(|o| &o.1[0..6]).collect::<Vec<_>>()
    );
}

#[test]
fn config_parses_and_describes() {
    let dir = std::env::temp_dir().join(format!("router-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("r.txt"), "8.0.0.0/8 via 192.0.2.1 dev outside\n").unwrap();
    let text = r#"
[[port]]
name = "inside"
kind = "pcap"
[[port]]
name = "outside"
kind = "pcap"
[[stage]]
kind = "router"
routes = "r.txt"
static_routes = ["blackhole 203.0.113.0/24"]
interfaces = [
  { port = "inside", address = "10.0.0.1/24", mtu = 1500 },
  { port = "outside", address = "192.0.2.2/24", address6 = "2001:db8::2/64" },
]
neighbours = [{ address = "192.0.2.1", mac = "02:00:00:00:01:01", port = "outside" }]
icmp_rate = 100
"#;
    let c = crate::config::Config::parse("t.toml", text, &dir).unwrap();
    let d = c.stages[0].describe(&c.ports);
    assert!(
        d[0].starts_with("2 routes (6 IPv4, 2 IPv6 prefixes)"),
        "{d:?}"
    );
    assert!(d.iter().any(|l| l.contains("neighbour 192.0.2.1")), "{d:?}");
    let good_routes = "8.0.0.0/8 via 192.0.2.1 dev outside\n";
    for (bad, routes, line, key) in [
        (
            text.replace("icmp_rate", "icmp_rat"),
            good_routes,
            17,
            "stage[0].icmp_rat",
        ),
        (
            text.replace("10.0.0.1/24", "10.0.0.1"),
            good_routes,
            13,
            "stage[0].interfaces.address",
        ),
        (
            text.to_string(),
            "\n8.0.0.0/8 via 192.0.2.1 dev nowhere\n",
            10,
            "stage[0].routes",
        ),
        (
            text.replace("blackhole 203", "blackhole 999"),
            good_routes,
            11,
            "stage[0].static_routes",
        ),
        (
            text.replace("port = \"outside\" }]", "port = \"x\" }]"),
            good_routes,
            16,
            "stage[0].neighbours.port",
        ),
    ] {
        std::fs::write(dir.join("r.txt"), routes).unwrap();
        let e = crate::config::Config::parse("t.toml", &bad, &dir).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
        if key == "stage[0].routes" {
            assert!(
                e.msg.contains("r.txt:2:") && e.msg.contains("nowhere"),
                "{e}"
            );
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---- FIB against a slow oracle ----

mod oracle {
    use super::super::lpm4::Lpm4;
    use super::super::lpm6::Lpm6;
    use prefix_trie::PrefixMap;
    use proptest::prelude::*;

    fn check4(routes: &[(u32, u8, u16)], probes: &[u32]) {
        let t = Lpm4::build(routes).unwrap();
        let mut o: PrefixMap<(u32, u8), u16> = PrefixMap::new();
        for &(a, l, nh) in routes {
            o.insert((a & super::super::lpm4::mask(l), l), nh);
        }
        let mut out = vec![0u16; probes.len()];
        t.lookup_burst(probes, &mut out);
        for (&a, &got) in probes.iter().zip(&out) {
            let want = o.get_lpm(&(a, 32)).map_or(0, |(_, &v)| v);
            assert_eq!(got, want, "{}", std::net::Ipv4Addr::from(a));
            assert_eq!(t.lookup(a), want);
        }
    }

    fn check6(routes: &[(u128, u8, u32)], probes: &[u128]) {
        let t = Lpm6::build(routes).unwrap();
        let mut o: PrefixMap<(u128, u8), u32> = PrefixMap::new();
        for &(a, l, nh) in routes {
            o.insert((a & super::super::lpm6::mask(l), l), nh);
        }
        let mut out = vec![0u32; probes.len()];
        t.lookup_burst(probes, &mut out);
        for (&a, &got) in probes.iter().zip(&out) {
            let want = o.get_lpm(&(a, 128)).map_or(0, |(_, &v)| v);
            assert_eq!(got, want, "{}", std::net::Ipv6Addr::from(a));
            assert_eq!(t.lookup(a), want);
            assert_eq!(t.lookup_portable(a), want);
        }
        // Every burst path (scalar, scalar with POPCNT, AVX-512), whichever the CPU picks.
        for path in Lpm6::PATHS {
            let mut by = vec![u32::MAX; probes.len()];
            for (a, b) in probes.chunks(64).zip(by.chunks_mut(64)) {
                t.lookup_burst_by(path, a, b);
            }
            assert!(by == out, "{path:?}");
        }
    }

    /// Probes near each prefix's edges as well as random ones.
    fn probes4(routes: &[(u32, u8, u16)], extra: &[u32]) -> Vec<u32> {
        let mut v = extra.to_vec();
        for &(a, l, _) in routes {
            let a = a & super::super::lpm4::mask(l);
            let last = a | !super::super::lpm4::mask(l);
            v.extend([a, last, a.wrapping_sub(1), last.wrapping_add(1)]);
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn lpm4_matches_a_trie(
            routes in prop::collection::vec((any::<u32>(), 0u8..=32, 1u16..100), 1..200),
            extra in prop::collection::vec(any::<u32>(), 0..200),
        ) {
            // Cluster some prefixes so they nest.
            let routes: Vec<_> = routes
                .iter()
                .map(|&(a, l, nh)| (if nh % 2 == 0 { a & 0x0a0b_ffff | 0x0a00_0000 } else { a }, l, nh))
                .collect();
            check4(&routes, &probes4(&routes, &extra));
        }

        #[test]
        fn lpm6_matches_a_trie(
            routes in prop::collection::vec((any::<u128>(), 0u8..=128, 1u32..100), 1..200),
            extra in prop::collection::vec(any::<u128>(), 0..200),
        ) {
            let routes: Vec<_> = routes
                .iter()
                .map(|&(a, l, nh)| {
                    let a = if nh % 2 == 0 { (a >> 40) | (0x2001_0db8u128 << 96) } else { a };
                    (a, l, nh)
                })
                .collect();
            let mut probes = extra.clone();
            for &(a, l, _) in &routes {
                let a = a & super::super::lpm6::mask(l);
                let last = a | !super::super::lpm6::mask(l);
                probes.extend([a, last, a.wrapping_sub(1), last.wrapping_add(1)]);
            }
            check6(&routes, &probes);
        }
    }

    /// The corpus directory: `DATAPLANE_CORPUS`, else `../shared/corpus` from the workspace.
    pub fn corpus() -> Option<std::path::PathBuf> {
        let dir = std::env::var_os("DATAPLANE_CORPUS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus")
            });
        let f = dir.join("routes/bart_fulltable_v4v6_prefixes.txt.gz");
        if f.exists() {
            Some(f)
        } else {
            println!(
                "skipped: no corpus at {} (set DATAPLANE_CORPUS)",
                dir.display()
            );
            None
        }
    }

    /// The real full table (900k IPv4 + 160k IPv6), synthetic next hops, sampled lookups.
    #[test]
    fn full_table_matches_a_trie() {
        let Some(path) = corpus() else { return };
        let text = super::super::routes::read_text(&path).unwrap();
        let mut r4 = Vec::new();
        let mut r6 = Vec::new();
        super::super::routes::parse_prefix_list("full", &text, |p, _| match p {
            super::Prefix::V4(a, l) => r4.push((a, l, (r4.len() % 32000 + 1) as u16)),
            super::Prefix::V6(a, l) => r6.push((a, l, (r6.len() % 100_000 + 1) as u32)),
        })
        .unwrap();
        assert_eq!((r4.len(), r6.len()), (901_899, 160_147));
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Every 50th prefix's edges, plus random addresses.
        let sample4: Vec<_> = r4.iter().step_by(50).copied().collect();
        let mut probes = probes4(&sample4, &[]);
        probes.extend((0..50_000).map(|_| rnd() as u32));
        // The oracle holds the whole table; the probes are sampled.
        check4(&r4, &probes);
        let mut probes6: Vec<u128> = Vec::new();
        for &(a, l, _) in r6.iter().step_by(10) {
            let last = a | !super::super::lpm6::mask(l);
            probes6.extend([a, last, a.wrapping_sub(1), last.wrapping_add(1)]);
        }
        probes6.extend(
            (0..20_000)
                .map(|_| (0x2000u128 << 112) | (u128::from(rnd()) << 64 | u128::from(rnd())) >> 3),
        );
        check6(&r6, &probes6);
    }
}

/// An ARP reply in the same burst as the packets waiting for it: the packets before it wait
/// (an ARP request goes out), the reply releases them, the packets after it go straight
/// through; the same outcome whatever the burst boundaries.
#[test]
fn arp_in_the_same_burst_is_processed_in_order() {
    let mut h = harness();
    let nh_mac = [2, 0xbb, 0, 0, 0, 9];
    let pkt = |n| {
        (
            0,
            v4(
                "10.0.0.99",
                "198.51.100.7",
                64,
                17,
                false,
                &[],
                &udp_payload(n),
            ),
        )
    };
    let out = h.run(
        1,
        &[
            pkt(8),
            pkt(9),
            (1, arp(2, nh_mac, "192.0.2.9", "192.0.2.2", MACS[1])),
            pkt(10),
        ],
    );
    // ARP request (emitted), then the two released packets and the third, in order.
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(out[0].1[12..14], [0x08, 0x06]);
    for (k, (port, f)) in out[1..].iter().enumerate() {
        assert_eq!((*port, &f[0..6]), (1, &nh_mac[..]));
        assert_eq!(f.len(), 14 + 20 + 8 + k);
    }
    assert_eq!(h.stages[0].held(), 0);
    assert_eq!(h.drops(drop::ARP), 1);
}

/// An ICMPv6 ND message (type 135/136) with a link-layer address option.
#[allow(clippy::too_many_arguments)]
fn nd(
    eth_dst: [u8; 6],
    src: &str,
    dst: &str,
    typ: u8,
    flags: u8,
    target: &str,
    opt: u8,
    mac: [u8; 6],
) -> Vec<u8> {
    let mut icmp = vec![typ, 0, 0, 0, flags, 0, 0, 0];
    icmp.extend_from_slice(&ip6(target));
    icmp.extend_from_slice(&[opt, 1]);
    icmp.extend_from_slice(&mac);
    let c = !checksum::fold(checksum::sum16(
        &icmp,
        checksum::pseudo_v6(ip6(src), ip6(dst), 58, icmp.len() as u32),
    ));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = v6(src, dst, 255, 58, &icmp);
    f[0..6].copy_from_slice(&eth_dst);
    f
}

#[test]
fn neighbour_solicitation_for_the_router_is_answered() {
    let mut h = harness();
    let ns = nd(
        [0x33, 0x33, 0xff, 0, 0, 1],
        "2001:db8::99",
        "ff02::1:ff00:1",
        135,
        0,
        "2001:db8::1",
        1,
        HOST,
    );
    let out = h.run(1, &[(0, ns)]);
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 0);
    assert_eq!((&f[0..6], &f[6..12]), (&HOST[..], &MACS[0][..]));
    assert_eq!(f[22..38], ip6("2001:db8::1"));
    assert_eq!(f[38..54], ip6("2001:db8::99"));
    assert_eq!((f[54], f[58], f[21]), (136, 0xe0, 255));
    assert_eq!(f[62..78], ip6("2001:db8::1"));
    assert_eq!(f[78..80], [2, 1]);
    assert_eq!(f[80..86], MACS[0]);
    assert!(icmp6_ok(f));
    // The solicitor was learned: traffic to it leaves at once.
    let mut back = v6("2001:4860::1", "2001:db8::99", 9, 17, &udp_payload(8));
    back[0..6].copy_from_slice(&MACS[1]);
    let out = h.run(2, &[(1, back)]);
    assert_eq!((out.len(), &out[0].1[0..6]), (1, &HOST[..]));
}

#[test]
fn unresolved_ipv6_next_hop_is_resolved_by_nd() {
    let mut h = harness();
    let pkt = |n| {
        (
            0,
            v6("2001:db8::99", "2001:db8:5::7", 64, 17, &udp_payload(n)),
        )
    };
    let out = h.run(1, &[pkt(8), pkt(9)]);
    assert_eq!(out.len(), 1, "{out:?}");
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(f[0..6], [0x33, 0x33, 0xff, 0, 0, 9]);
    assert_eq!(f[38..54], ip6("ff02::1:ff00:9"));
    assert_eq!((f[54], f[21]), (135, 255));
    assert_eq!(f[62..78], ip6("2001:db8:1::9"));
    assert!(icmp6_ok(f));
    assert_eq!(h.stages[0].held(), 2);
    let nh_mac = [2, 0xbb, 0, 0, 0, 0x19];
    let na = nd(
        MACS[1],
        "2001:db8:1::9",
        "2001:db8:1::2",
        136,
        0x60,
        "2001:db8:1::9",
        2,
        nh_mac,
    );
    let out = h.run(2, &[(1, na), pkt(10)]);
    assert_eq!(out.len(), 3, "{out:?}");
    for (k, (port, f)) in out.iter().enumerate() {
        assert_eq!((*port, &f[0..6], f[21]), (1, &nh_mac[..], 63));
        assert_eq!(f.len(), 14 + 40 + 8 + k);
    }
    assert_eq!(h.stages[0].held(), 0);
}

#[test]
fn config_reads_a_gzipped_prefix_list() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("router-pl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"; header\n1.0.0.0/24\t15169\n2001:200::/32\n")
        .unwrap();
    std::fs::write(dir.join("p.txt.gz"), gz.finish().unwrap()).unwrap();
    let text = r#"
[[port]]
name = "inside"
kind = "pcap"
[[port]]
name = "outside"
kind = "pcap"
[[stage]]
kind = "router"
routes = "p.txt.gz"
routes_format = "prefix-list"
prefix_list_via = "192.0.2.1"
prefix_list_dev = "outside"
"#;
    let c = crate::config::Config::parse("t.toml", text, &dir).unwrap();
    let d = c.stages[0].describe(&c.ports);
    assert!(
        d[0].starts_with("2 routes (1 IPv4, 1 IPv6 prefixes)"),
        "{d:?}"
    );
    let e = crate::config::Config::parse("t.toml", &text.replace("prefix-list\"", "bird\""), &dir)
        .unwrap_err();
    assert_eq!(
        (e.line, e.key.as_str()),
        (11, "stage[0].routes_format"),
        "{e}"
    );
    let e = crate::config::Config::parse(
        "t.toml",
        &text.replace("prefix_list_via = \"192.0.2.1\"\n", ""),
        &dir,
    )
    .unwrap_err();
    assert_eq!(e.key, "stage[0].prefix_list_via", "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    /// A frame: a valid IPv4/IPv6/ARP/ND frame, some of its bytes overwritten, cut short or
    /// padded.
    fn frame() -> impl Strategy<Value = Vec<u8>> {
        (
            0usize..6,
            prop::collection::vec((0usize..120, any::<u8>()), 0..6),
            0usize..140,
            any::<u8>(),
        )
            .prop_map(|(kind, edits, cut, ttl)| {
                let mut f = match kind {
                    0 => v4(
                        "10.0.0.99",
                        "8.8.8.8",
                        ttl,
                        17,
                        ttl & 1 == 0,
                        &[],
                        &udp_payload(40),
                    ),
                    1 => v4(
                        "10.0.0.99",
                        "10.0.0.1",
                        ttl,
                        1,
                        false,
                        &[1, 1, 1, 0],
                        &echo_payload(),
                    ),
                    2 => v6("2001:db8::99", "2001:4860::1", ttl, 17, &udp_payload(30)),
                    3 => arp(1, HOST, "10.0.0.50", "10.0.0.1", [0xff; 6]),
                    4 => nd(
                        [0x33, 0x33, 0xff, 0, 0, 1],
                        "2001:db8::99",
                        "ff02::1:ff00:1",
                        135,
                        0,
                        "2001:db8::1",
                        1,
                        HOST,
                    ),
                    _ => v4(
                        "10.0.0.99",
                        "198.51.100.7",
                        ttl,
                        17,
                        false,
                        &[],
                        &udp_payload(1450),
                    ),
                };
                for (i, b) in edits {
                    if let Some(x) = f.get_mut(i) {
                        *x = b;
                    }
                }
                if cut < f.len() && cut % 3 == 0 {
                    f.truncate(cut);
                }
                f
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever arrives, the stage does not panic and every packet is accounted for.
        #[test]
        fn damaged_frames_never_panic_and_are_counted(
            frames in prop::collection::vec((0u16..2, frame()), 1..40),
            later in 0u64..10_000_000_000,
        ) {
            let mut h = harness();
            let n = frames.len() as u64;
            let out = h.run(1, &frames).len() as u64;
            let out2 = h.poll(later).len() as u64;
            let drops = h.runner.stage_drop_total() + h.runner.drops.total();
            let held = h.stages[0].held() as u64;
            prop_assert_eq!(n + h.runner.created, out + out2 + drops + held);
        }
    }
}

/// A learned neighbour ages out after `reachable_ns`: the next packet asks again.
#[test]
fn learned_neighbours_age_out() {
    let (mut cfg, rib) = setup();
    cfg.reachable_ns = 5_000_000_000;
    let mut h = Harness::new(&cfg, &rib);
    let nh_mac = [2, 0xbb, 0, 0, 0, 9];
    let reply = arp(2, nh_mac, "192.0.2.9", "192.0.2.2", MACS[1]);
    let pkt = (
        0,
        v4(
            "10.0.0.99",
            "198.51.100.7",
            64,
            17,
            false,
            &[],
            &udp_payload(8),
        ),
    );
    assert_eq!(h.run(1_000, std::slice::from_ref(&pkt)).len(), 1); // ARP request, packet held
    assert_eq!(h.run(2_000, &[(1, reply)]).len(), 1); // released
    assert_eq!(h.run(3_000, std::slice::from_ref(&pkt)).len(), 1); // straight through
    assert!(h.poll(4_000_000_000).is_empty());
    assert!(h.poll(6_000_000_000).is_empty()); // aged out, nothing held
    let out = h.run(6_100_000_000, &[pkt]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].1[12..14], [0x08, 0x06], "asks again");
    assert_eq!(h.stages[0].held(), 1);
}
