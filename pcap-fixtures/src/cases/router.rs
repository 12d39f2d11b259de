//! Golden cases for the `router` stage (owned by the router's engineer): its model and its
//! cases, each named `router-...`. See `pcap-fixtures/README.md` for how to add one.
//!
//! The model (RFC 1812 / RFC 4443 as the router states it): the router has `inside`
//! (10.0.0.1/24, 2001:db8::1/64) and `outside` (192.0.2.2/24, 2001:db8:1::2/64, MTU 1400).
//! A routed packet leaves with TTL/hop limit one less, source MAC = egress port's MAC and
//! destination MAC = the next hop's; nothing else changes (options, padding). An ICMP error
//! goes back out of the input port to the offending frame's source MAC, from the input
//! interface's address, TTL/hop limit 64, IPv4 TOS 0xc0, identification 0, no DF, quoting the
//! offending IP packet up to a 576-byte (IPv4) or 1280-byte (IPv6) error, with the trigger's
//! timestamp. Every frame here is built from its fields, never by rewriting the input.

use super::{
    mac_str, pattern, stamp, standard_config, Case, DATA_ROOM, HOST_MAC, INSIDE_MAC, NEXT_HOP_MAC,
    OUTSIDE_MAC, STANDARD_PORTS, T0,
};
use crate::packet::{arp, internet_checksum, ipv6, proto, v4, v6, Eth, Ip, Ipv4Header};
use crate::Packet;

const IN4: [u8; 4] = v4(10, 0, 0, 1);
const OUT4: [u8; 4] = v4(192, 0, 2, 2);
const HOST4: [u8; 4] = v4(10, 0, 0, 2);
const FAR4: [u8; 4] = v4(8, 8, 8, 8);
const OUT_MTU: usize = 1400;

fn in6() -> [u8; 16] {
    v6(0x2001_0db8, 0, 1)
}
fn host6() -> [u8; 16] {
    v6(0x2001_0db8, 0, 2)
}
fn far6() -> [u8; 16] {
    v6(0x2001_4860, 0, 0x8888)
}

/// The router table shared by every case.
fn config(extra: &str) -> String {
    standard_config(
        DATA_ROOM,
        &STANDARD_PORTS,
        &["inside"],
        &["outside", "inside"],
    ) + &format!(
        r#"[[stage]]
kind = "router"
static_routes = [
  "8.0.0.0/8 via 192.0.2.1 dev outside",
  "blackhole 203.0.113.0/24",
  "2000::/3 via 2001:db8:1::1 dev outside",
]
interfaces = [
  {{ port = "inside", address = "10.0.0.1/24", address6 = "2001:db8::1/64" }},
  {{ port = "outside", address = "192.0.2.2/24", address6 = "2001:db8:1::2/64", mtu = {OUT_MTU} }},
]
neighbours = [
  {{ address = "192.0.2.1", mac = "{nh}", port = "outside" }},
  {{ address = "2001:db8:1::1", mac = "{nh}", port = "outside" }},
]
{extra}"#,
        nh = mac_str(NEXT_HOP_MAC)
    )
}

fn from_host() -> Eth {
    Eth::new(INSIDE_MAC, HOST_MAC)
}

/// An IPv4 frame from the host with header `h` and L4 bytes `l4`.
fn frame4(h: &Ipv4Header, l4: &[u8]) -> Vec<u8> {
    from_host().frame(0x0800, &h.packet(l4))
}

fn udp4(dst: [u8; 4], ttl: u8, len: usize) -> (Ipv4Header, Vec<u8>) {
    let mut h = Ipv4Header::new(HOST4, dst, proto::UDP);
    h.ttl = ttl;
    h.ident = 0x1234;
    let l4 = Ip::V4 { src: HOST4, dst }.udp(40000, 53, &pattern(len, 7));
    (h, l4)
}

/// The model of forwarding: the same packet, TTL one less, out of `outside` to the next hop.
fn routed4(h: &Ipv4Header, l4: &[u8]) -> Vec<u8> {
    let mut h = h.clone();
    h.ttl -= 1;
    Eth::new(NEXT_HOP_MAC, OUTSIDE_MAC).frame(0x0800, &h.packet(l4))
}

fn routed6(src: [u8; 16], dst: [u8; 16], next: u8, hl: u8, payload: &[u8]) -> Vec<u8> {
    Eth::new(NEXT_HOP_MAC, OUTSIDE_MAC).frame(0x86dd, &ipv6(src, dst, next, hl - 1, 0, payload))
}

/// The model of an ICMPv4 error about IP packet `offending` (bytes from the IP header on,
/// without Ethernet padding) received on `inside`.
fn icmp4_error(ty: u8, code: u8, rest: u32, offending: &[u8]) -> Vec<u8> {
    let quote = &offending[..offending.len().min(576 - 28)];
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    let c = internet_checksum(&[&m], 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut h = Ipv4Header::new(IN4, HOST4, proto::ICMP);
    h.tos = 0xc0;
    h.df = false;
    Eth::new(HOST_MAC, INSIDE_MAC).frame(0x0800, &h.packet(&m))
}

fn icmp6_error(ty: u8, code: u8, rest: u32, offending: &[u8]) -> Vec<u8> {
    let quote = &offending[..offending.len().min(1280 - 48)];
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest.to_be_bytes());
    m.extend_from_slice(quote);
    let ip = Ip::V6 {
        src: in6(),
        dst: host6(),
    };
    let c = internet_checksum(&[&m], ip.pseudo_sum(proto::ICMPV6, m.len()));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    Eth::new(HOST_MAC, INSIDE_MAC).frame(0x86dd, &ipv6(in6(), host6(), 58, 64, 0, &m))
}

/// The IP packet inside a frame built here (Ethernet header and padding removed).
fn ip_of(frame: &[u8]) -> Vec<u8> {
    let ip = &frame[14..];
    let len = if ip[0] >> 4 == 4 {
        usize::from(u16::from_be_bytes([ip[2], ip[3]]))
    } else {
        40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]))
    };
    ip[..len].to_vec()
}

/// Timestamped input, and outputs stamped with the timestamp of the input that caused them.
struct Io {
    input: Vec<Vec<u8>>,
    out: Vec<(usize, Vec<u8>)>,
    back: Vec<(usize, Vec<u8>)>,
}

impl Io {
    fn new() -> Io {
        Io {
            input: Vec::new(),
            out: Vec::new(),
            back: Vec::new(),
        }
    }
    fn send(&mut self, f: Vec<u8>) -> usize {
        self.input.push(f);
        self.input.len() - 1
    }
    fn case(self, name: &str, about: &str, seed: u64, extra: &str) -> Case {
        let input = stamp(self.input, T0, 1_000, seed);
        let at = |v: Vec<(usize, Vec<u8>)>| -> Vec<Packet> {
            v.into_iter()
                .map(|(i, data)| Packet {
                    ts_ns: input[i].ts_ns,
                    data,
                })
                .collect()
        };
        let (out, back) = (at(self.out), at(self.back));
        Case::new(name, about)
            .config(config(extra))
            .input("inside", input)
            .expect("outside", out)
            .expect("inside", back)
    }
}

/// Plain forwarding: UDP, TCP-sized and optioned IPv4, IPv6.
fn forward() -> Case {
    let mut io = Io::new();
    for (ttl, len) in [(64u8, 20usize), (2, 200), (255, 1000)] {
        let (h, l4) = udp4(FAR4, ttl, len);
        let i = io.send(frame4(&h, &l4));
        io.out.push((i, routed4(&h, &l4)));
    }
    // Record route + loose source route options: forwarded untouched.
    let (mut h, l4) = udp4(v4(8, 1, 2, 3), 30, 40);
    h.options = vec![
        0x07, 0x07, 0x04, 0, 0, 0, 0, 0x01, 0x83, 0x07, 0x04, 1, 2, 3, 4, 0,
    ];
    let i = io.send(frame4(&h, &l4));
    io.out.push((i, routed4(&h, &l4)));
    let u6 = Ip::V6 {
        src: host6(),
        dst: far6(),
    }
    .udp(40000, 443, &pattern(60, 3));
    let i = io.send(from_host().frame(0x86dd, &ipv6(host6(), far6(), 17, 64, 0, &u6)));
    io.out.push((i, routed6(host6(), far6(), 17, 64, &u6)));
    io.case(
        "router-forward",
        "IPv4 and IPv6 forwarding: TTL/hop limit minus one with the checksum patched \
         incrementally, source MAC = the outside port's, destination MAC = the static next hop's; \
         IPv4 options are forwarded intact.",
        0x5eed_0301,
        "",
    )
}

/// TTL / hop limit expiry.
fn ttl() -> Case {
    let mut io = Io::new();
    for ttl in [1u8, 0] {
        let (h, l4) = udp4(FAR4, ttl, 30);
        let f = frame4(&h, &l4);
        let i = io.send(f.clone());
        io.back.push((i, icmp4_error(11, 0, 0, &ip_of(&f))));
    }
    let (h, l4) = udp4(FAR4, 2, 30);
    let i = io.send(frame4(&h, &l4));
    io.out.push((i, routed4(&h, &l4)));
    // A long datagram is quoted up to a 576-byte error.
    let (h, l4) = udp4(FAR4, 1, 1000);
    let f = frame4(&h, &l4);
    let i = io.send(f.clone());
    io.back.push((i, icmp4_error(11, 0, 0, &ip_of(&f))));
    let u6 = Ip::V6 {
        src: host6(),
        dst: far6(),
    }
    .udp(40000, 443, &pattern(30, 4));
    let f = from_host().frame(0x86dd, &ipv6(host6(), far6(), 17, 1, 0, &u6));
    let i = io.send(f.clone());
    io.back.push((i, icmp6_error(3, 0, 0, &ip_of(&f))));
    io.case(
        "router-ttl-expired",
        "TTL 1 and 0 and hop limit 1 are answered with ICMP time exceeded from the input \
         interface's address, quoting the packet (at most 576 bytes in all for IPv4); TTL 2 is \
         forwarded with TTL 1.",
        0x5eed_0302,
        "",
    )
    .drops("router.ttl_exceeded", 4)
    .created(4)
}

/// Header validation.
fn bad_headers() -> Case {
    let mut io = Io::new();
    let (h, l4) = udp4(FAR4, 64, 30);
    let good = frame4(&h, &l4);
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0x5a;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x44;
    let mut bad_ver = good.clone();
    bad_ver[14] = 0x65;
    let mut long = good.clone();
    long[16..18].copy_from_slice(&2000u16.to_be_bytes());
    let mut short = good.clone();
    short[16..18].copy_from_slice(&12u16.to_be_bytes());
    for f in [bad_sum, bad_ihl, bad_ver, long, short] {
        io.send(f);
    }
    let mut v6_long = from_host().frame(0x86dd, &ipv6(host6(), far6(), 17, 64, 0, &[0; 16]));
    v6_long[18..20].copy_from_slice(&500u16.to_be_bytes());
    io.send(v6_long);
    io.case(
        "router-bad-headers",
        "Header validation: a bad IPv4 checksum, IHL below 5, a wrong version, total length \
         beyond the frame or below the header, and an IPv6 payload length beyond the frame are \
         dropped and counted, never answered.",
        0x5eed_0303,
        "",
    )
    .drops("router.bad_checksum", 1)
    .drops("router.bad_ihl", 1)
    .drops("router.bad_version", 1)
    .drops("router.bad_length", 3)
    .created(0)
}

/// No route, blackhole.
fn no_route() -> Case {
    let mut io = Io::new();
    let (h, l4) = udp4(v4(100, 64, 0, 1), 64, 30);
    let f = frame4(&h, &l4);
    let i = io.send(f.clone());
    io.back.push((i, icmp4_error(3, 0, 0, &ip_of(&f))));
    let (h, l4) = udp4(v4(203, 0, 113, 5), 64, 30);
    io.send(frame4(&h, &l4));
    let dst = v6(0x4000, 0, 1);
    let u6 = Ip::V6 { src: host6(), dst }.udp(40000, 443, &pattern(30, 5));
    let f = from_host().frame(0x86dd, &ipv6(host6(), dst, 17, 64, 0, &u6));
    let i = io.send(f.clone());
    io.back.push((i, icmp6_error(1, 0, 0, &ip_of(&f))));
    io.case(
        "router-no-route",
        "A destination with no route gets ICMP destination unreachable (net; IPv6 no route); a \
         blackhole route drops silently.",
        0x5eed_0304,
        "",
    )
    .drops("router.no_route", 2)
    .drops("router.blackhole", 1)
    .created(2)
}

/// The egress MTU: fragmentation needed, fragmentation, packet too big.
fn mtu() -> Case {
    let mut io = Io::new();
    // 1420 bytes with DF: fragmentation needed carrying the outside MTU.
    let (h, l4) = udp4(FAR4, 64, 1392);
    let f = frame4(&h, &l4);
    let i = io.send(f.clone());
    io.back
        .push((i, icmp4_error(3, 4, OUT_MTU as u32, &ip_of(&f))));
    // The same without DF: two fragments (1376 + 24 bytes of the 1400-byte payload).
    let (mut h, l4) = udp4(FAR4, 64, 1392);
    h.df = false;
    h.ident = 0x4242;
    let i = io.send(frame4(&h, &l4));
    let first = (OUT_MTU - 20) & !7;
    let mut f1 = h.clone();
    f1.ttl -= 1;
    f1.mf = true;
    io.out.push((
        i,
        Eth::new(NEXT_HOP_MAC, OUTSIDE_MAC).frame(0x0800, &f1.packet(&l4[..first])),
    ));
    let mut f2 = h.clone();
    f2.ttl -= 1;
    f2.frag_offset = (first / 8) as u16;
    io.out.push((
        i,
        Eth::new(NEXT_HOP_MAC, OUTSIDE_MAC).frame(0x0800, &f2.packet(&l4[first..])),
    ));
    // Exactly the MTU: forwarded.
    let (h, l4) = udp4(FAR4, 64, 1372);
    let i = io.send(frame4(&h, &l4));
    io.out.push((i, routed4(&h, &l4)));
    // IPv6, 1460 bytes: packet too big (the quote fills a 1280-byte error).
    let u6 = Ip::V6 {
        src: host6(),
        dst: far6(),
    }
    .udp(40000, 443, &pattern(1412, 6));
    let f = from_host().frame(0x86dd, &ipv6(host6(), far6(), 17, 64, 0, &u6));
    let i = io.send(f.clone());
    io.back
        .push((i, icmp6_error(2, 0, OUT_MTU as u32, &ip_of(&f))));
    io.case(
        "router-mtu",
        "Egress MTU 1400: DF set and too big gets ICMP fragmentation needed with the next-hop \
         MTU; DF clear is cut into RFC 791 fragments; exactly 1400 passes; IPv6 too big gets \
         packet too big with the MTU.",
        0x5eed_0305,
        "",
    )
    .drops("router.frag_needed", 2)
    .created(3)
}

/// Martians, and the packets ICMP errors are never sent about.
fn martians() -> Case {
    let mut io = Io::new();
    let udp_from = |src: [u8; 4], dst: [u8; 4], ttl: u8| {
        let mut h = Ipv4Header::new(src, dst, proto::UDP);
        h.ttl = ttl;
        frame4(&h, &Ip::V4 { src, dst }.udp(1000, 2000, b"martian"))
    };
    for src in [
        v4(127, 0, 0, 1),
        v4(0, 0, 0, 5),
        v4(224, 0, 0, 9),
        v4(240, 0, 0, 1),
    ] {
        io.send(udp_from(src, FAR4, 64));
    }
    for dst in [v4(127, 0, 0, 1), v4(0, 1, 2, 3), v4(250, 0, 0, 1)] {
        io.send(udp_from(HOST4, dst, 64));
    }
    for dst in [v4(224, 0, 0, 5), v4(255, 255, 255, 255)] {
        io.send(udp_from(HOST4, dst, 64));
    }
    // A unicast packet in an L2 broadcast frame (RFC 1812 5.3.4).
    let mut b = udp_from(HOST4, FAR4, 64);
    b[0..6].fill(0xff);
    io.send(b);
    // TTL 1, but no ICMP error: about an ICMP error, and a non-first fragment.
    let mut err = vec![3, 1, 0, 0, 0, 0, 0, 0];
    err.extend_from_slice(&Ipv4Header::new(FAR4, HOST4, proto::UDP).packet(&[0; 8]));
    let c = internet_checksum(&[&err], 0);
    err[2..4].copy_from_slice(&c.to_be_bytes());
    let mut h = Ipv4Header::new(HOST4, FAR4, proto::ICMP);
    h.ttl = 1;
    io.send(frame4(&h, &err));
    let mut h = Ipv4Header::new(HOST4, FAR4, proto::UDP);
    h.ttl = 1;
    h.df = false;
    h.frag_offset = 100;
    io.send(frame4(&h, &pattern(32, 9)));
    // IPv6: loopback and link-local sources, a multicast destination.
    let l = v6(0, 0, 0);
    let mut lo = l;
    lo[15] = 1;
    let mut ll = l;
    ll[0] = 0xfe;
    ll[1] = 0x80;
    ll[15] = 7;
    let mut mc = l;
    mc[0] = 0xff;
    mc[1] = 0x02;
    mc[15] = 1;
    for (s, d) in [(lo, far6()), (ll, far6()), (host6(), mc)] {
        io.send(from_host().frame(0x86dd, &ipv6(s, d, 17, 64, 0, &[0; 8])));
    }
    io.case(
        "router-martians",
        "Martian sources (0/8, 127/8, multicast, class E; IPv6 loopback and link-local) and \
         destinations (0/8, 127/8, class E) are dropped; multicast and broadcast destinations are \
         not routed; a unicast packet in an L2 broadcast is dropped. No ICMP error is sent about \
         any of them, nor about an expiring ICMP error or non-first fragment.",
        0x5eed_0306,
        "",
    )
    .drops("router.martian_source", 6)
    .drops("router.martian_destination", 3)
    .drops("router.multicast", 3)
    .drops("router.l2_broadcast", 1)
    .drops("router.ttl_exceeded", 2)
    .created(0)
}

/// Echo requests to the router's addresses; other traffic to it.
fn echo() -> Case {
    let mut io = Io::new();
    for (dst, id) in [(IN4, 7u16), (OUT4, 8)] {
        let ip = Ip::V4 { src: HOST4, dst };
        let (p, m) = ip.echo(true, id, 1, b"are you there?");
        io.send(frame4(&Ipv4Header::new(HOST4, dst, p), &m));
        let (p, r) = ip.reversed().echo(false, id, 1, b"are you there?");
        io.back.push((
            io.input.len() - 1,
            Eth::new(HOST_MAC, INSIDE_MAC)
                .frame(0x0800, &Ipv4Header::new(dst, HOST4, p).packet(&r)),
        ));
    }
    let ip6 = Ip::V6 {
        src: host6(),
        dst: in6(),
    };
    let (p, m) = ip6.echo(true, 9, 2, b"hello router");
    io.send(from_host().frame(0x86dd, &ipv6(host6(), in6(), p, 64, 0, &m)));
    let (p, r) = ip6.reversed().echo(false, 9, 2, b"hello router");
    io.back.push((
        io.input.len() - 1,
        Eth::new(HOST_MAC, INSIDE_MAC).frame(0x86dd, &ipv6(in6(), host6(), p, 64, 0, &r)),
    ));
    // Not an echo request: for the router, dropped.
    let (h, l4) = udp4(IN4, 64, 10);
    io.send(frame4(&h, &l4));
    io.case(
        "router-echo",
        "ICMP echo requests to the router's own addresses (IPv4 on either interface, IPv6) are \
         answered out of the input port; other packets for the router are dropped.",
        0x5eed_0307,
        "",
    )
    .drops("router.local", 1)
    .created(0)
}

/// ARP and IPv6 neighbour discovery: answering for our address, resolving a next hop and
/// releasing the packets held for it.
fn arp_case() -> Case {
    let mut io = Io::new();
    let bcast = [0xff; 6];
    let h50 = v4(10, 0, 0, 50);
    let mac50 = [0x52, 0x54, 0, 0, 0, 0x50];
    let arp_frame = |dst, src, body: Vec<u8>| Eth::new(dst, src).frame(0x0806, &body);
    // Who has 10.0.0.1? Answered.
    let i = io.send(arp_frame(
        bcast,
        HOST_MAC,
        arp(1, HOST_MAC, HOST4, [0; 6], IN4),
    ));
    io.back.push((
        i,
        arp_frame(
            HOST_MAC,
            INSIDE_MAC,
            arp(2, INSIDE_MAC, IN4, HOST_MAC, HOST4),
        ),
    ));
    // Who has 10.0.0.7? Not us.
    io.send(arp_frame(
        bcast,
        HOST_MAC,
        arp(1, HOST_MAC, HOST4, [0; 6], v4(10, 0, 0, 7)),
    ));
    // Two packets to 10.0.0.50 (connected, unknown): an ARP request, both held.
    let (h, l4) = udp4(h50, 64, 12);
    let i = io.send(frame4(&h, &l4));
    io.back.push((
        i,
        arp_frame(bcast, INSIDE_MAC, arp(1, INSIDE_MAC, IN4, [0; 6], h50)),
    ));
    let (h2, l42) = udp4(h50, 64, 13);
    let j = io.send(frame4(&h2, &l42));
    // The reply releases them, in order, to 10.0.0.50's MAC.
    io.send(arp_frame(
        INSIDE_MAC,
        mac50,
        arp(2, mac50, h50, INSIDE_MAC, IN4),
    ));
    let to50 = |h: &Ipv4Header, l4: &[u8]| {
        let mut h = h.clone();
        h.ttl -= 1;
        Eth::new(mac50, INSIDE_MAC).frame(0x0800, &h.packet(l4))
    };
    io.back.push((i, to50(&h, &l4)));
    io.back.push((j, to50(&h2, &l42)));
    // Now resolved: straight through.
    let (h3, l43) = udp4(h50, 64, 14);
    let k = io.send(frame4(&h3, &l43));
    io.back.push((k, to50(&h3, &l43)));
    // IPv6 neighbour discovery, the same way: a solicitation for our address is answered...
    let sn = |a: [u8; 16]| {
        let mut m = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
        m[13..16].copy_from_slice(&a[13..16]);
        m
    };
    let nd_msg =
        |src: [u8; 16], dst: [u8; 16], ty: u8, flags: u8, target: [u8; 16], mac: [u8; 6]| {
            let mut m = vec![ty, 0, 0, 0, flags, 0, 0, 0];
            m.extend_from_slice(&target);
            m.extend_from_slice(&[if ty == 135 { 1 } else { 2 }, 1]);
            m.extend_from_slice(&mac);
            let c = internet_checksum(
                &[&m],
                Ip::V6 { src, dst }.pseudo_sum(proto::ICMPV6, m.len()),
            );
            m[2..4].copy_from_slice(&c.to_be_bytes());
            ipv6(src, dst, proto::ICMPV6, 255, 0, &m)
        };
    let mcast = |a: [u8; 16]| [0x33, 0x33, 0xff, a[13], a[14], a[15]];
    let i = io.send(
        Eth::new(mcast(in6()), HOST_MAC)
            .frame(0x86dd, &nd_msg(host6(), sn(in6()), 135, 0, in6(), HOST_MAC)),
    );
    io.back.push((
        i,
        Eth::new(HOST_MAC, INSIDE_MAC).frame(
            0x86dd,
            &nd_msg(in6(), host6(), 136, 0xe0, in6(), INSIDE_MAC),
        ),
    ));
    // ...and a packet for an unknown neighbour waits for its advertisement.
    let n50 = v6(0x2001_0db8, 0, 0x50);
    let u6 = Ip::V6 {
        src: host6(),
        dst: n50,
    }
    .udp(40000, 443, &pattern(20, 8));
    let i = io.send(from_host().frame(0x86dd, &ipv6(host6(), n50, 17, 64, 0, &u6)));
    io.back.push((
        i,
        Eth::new(mcast(n50), INSIDE_MAC)
            .frame(0x86dd, &nd_msg(in6(), sn(n50), 135, 0, n50, INSIDE_MAC)),
    ));
    io.send(Eth::new(INSIDE_MAC, mac50).frame(0x86dd, &nd_msg(n50, in6(), 136, 0x60, n50, mac50)));
    io.back.push((
        i,
        Eth::new(mac50, INSIDE_MAC).frame(0x86dd, &ipv6(host6(), n50, 17, 63, 0, &u6)),
    ));
    io.case(
        "router-arp",
        "ARP: a request for the router's address is answered; one for another address is \
         dropped; packets for an unresolved neighbour trigger an ARP request and wait; the reply \
         releases them in order, and later packets go straight through. IPv6 neighbour \
         discovery the same way: solicitation answered, solicitation sent, advertisement \
         releases the packet.",
        0x5eed_0308,
        "",
    )
    .drops("router.arp_nd", 3)
    .created(2)
    .layouts(
        &["rtc-1", "pipeline-2"],
        "in replay the captured ARP reply may reach the worker that resolves the next hop \
         before the packets that asked for it are handed there (a capture cannot keep a \
         request ahead of its reply across workers); tests/router_workers.rs checks two \
         workers online",
    )
}

/// The router's golden cases.
pub fn cases() -> Vec<Case> {
    vec![
        forward(),
        ttl(),
        bad_headers(),
        no_route(),
        mtu(),
        martians(),
        echo(),
        arp_case(),
    ]
}
