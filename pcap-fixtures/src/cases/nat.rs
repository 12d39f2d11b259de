//! Golden cases for the `nat44` stage (owned by the NAT's engineer): its model and its cases,
//! each named `nat-...`. See `pcap-fixtures/README.md` for how to add one.
//!
//! The model: one outside address; mappings are endpoint-independent, one per inside
//! `(protocol, address, port or ICMP identifier)`, given the lowest free outside port from 1024
//! up in each protocol's own space (the stage's `allocation = "sequential"`); an outbound packet
//! leaves by `outside` with its source replaced, a packet from outside for a mapping leaves by
//! `inside` with its destination replaced, a packet from inside to the outside address is
//! hairpinned (source translated, then destination) and leaves by `inside`; an ICMP error from
//! outside about a translated packet reaches the inside host with the packet it quotes put back
//! as the host sent it; a packet from outside with no mapping is dropped (`no_mapping`). Every
//! checksum is computed afresh here.
//!
//! Both subscribers (10.0.0.2 and 10.0.0.3) belong to worker 0 of 2 under the stage's
//! subscriber partition, so the two-worker layout allocates the same ports and its output is
//! the same file: replies from outside reach worker 0 only through the stage's steering rule
//! (the symmetric flow hash would spread them).

use std::collections::HashMap;

use super::{stamp, standard_config, Case, DATA_ROOM, GW_MAC, HOST_MAC, STANDARD_PORTS, T0};
use crate::packet::{internet_checksum, proto, tcp_flags, v4, Eth, Ip, Ipv4Header, TcpSegment};
use crate::Packet;

const EXT: [u8; 4] = v4(198, 51, 100, 1);
const H1: [u8; 4] = v4(10, 0, 0, 2);
const H2: [u8; 4] = v4(10, 0, 0, 3);
const SERVER: [u8; 4] = v4(203, 0, 113, 10);
const DNS: [u8; 4] = v4(203, 0, 113, 53);
const HOP: [u8; 4] = v4(192, 0, 2, 1);

/// The model's mapping table.
#[derive(Default)]
struct Model {
    out: HashMap<(u8, [u8; 4], u16), u16>,
    back: HashMap<(u8, u16), ([u8; 4], u16)>,
}

impl Model {
    /// The outside port of inside endpoint (proto, addr, port), made if new.
    fn map(&mut self, p: u8, addr: [u8; 4], port: u16) -> u16 {
        if let Some(&e) = self.out.get(&(p, addr, port)) {
            return e;
        }
        let e = (1024..=u16::MAX)
            .find(|e| !self.back.contains_key(&(p, *e)))
            .expect("ports left");
        self.out.insert((p, addr, port), e);
        self.back.insert((p, e), (addr, port));
        e
    }

    fn inside(&self, p: u8, ext_port: u16) -> Option<([u8; 4], u16)> {
        self.back.get(&(p, ext_port)).copied()
    }
}

fn eth() -> Eth {
    Eth::new(GW_MAC, HOST_MAC)
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    let ip = Ip::V4 { src, dst };
    eth().ip(&ip, proto::UDP, &ip.udp(sp, dp, payload))
}

/// A TCP segment from `(src, sp)` to `(dst, dp)`.
fn tcp(
    (src, sp): ([u8; 4], u16),
    (dst, dp): ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let ip = Ip::V4 { src, dst };
    let seg = TcpSegment::new(sp, dp, seq, ack, flags).with_payload(payload);
    eth().ip(&ip, proto::TCP, &ip.tcp(&seg))
}

fn echo(src: [u8; 4], dst: [u8; 4], request: bool, id: u16) -> Vec<u8> {
    let ip = Ip::V4 { src, dst };
    let (p, m) = ip.echo(request, id, 1, b"ping payload");
    eth().ip(&ip, p, &m)
}

/// A UDP traceroute probe with TTL 1 (the IP packet only).
fn probe_ip(src: [u8; 4], sp: u16) -> Vec<u8> {
    let ip = Ip::V4 { src, dst: SERVER };
    let mut h = Ipv4Header::new(src, SERVER, proto::UDP);
    h.ttl = 1;
    h.ident = 0x1111;
    h.packet(&ip.udp(sp, 33434, b"traceroute"))
}

/// ICMP time exceeded from `from` to `to`, quoting the first 28 bytes of `quoted` (an IP packet).
fn time_exceeded(from: [u8; 4], to: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![11, 0, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&quoted[..28]);
    let c = internet_checksum(&[&m], 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    eth().frame(0x0800, &Ipv4Header::new(from, to, proto::ICMP).packet(&m))
}

/// The everyday case: DNS over UDP, a TCP session, a ping, a traceroute hop's reply, a hairpin
/// between two subscribers, and an unsolicited datagram.
fn everyday() -> Case {
    let mut m = Model::default();
    let get = b"GET / HTTP/1.0\r\n\r\n";
    let resp = b"HTTP/1.0 200 OK\r\n\r\nhello";
    // Inside packets, and what the model sends out for each (port, frame).
    let mut ins = Vec::new();
    let mut outs: Vec<(&str, Vec<u8>)> = Vec::new();
    let dns_e = m.map(proto::UDP, H1, 33000);
    ins.push(udp(H1, 33000, DNS, 53, b"\x12\x34 query example.org"));
    outs.push((
        "outside",
        udp(EXT, dns_e, DNS, 53, b"\x12\x34 query example.org"),
    ));
    let tcp_e = m.map(proto::TCP, H1, 40000);
    for (seq, ack, fl, pl) in [
        (100, 0, tcp_flags::SYN, &b""[..]),
        (101, 5001, tcp_flags::ACK, &b""[..]),
        (101, 5001, tcp_flags::ACK | tcp_flags::PSH, &get[..]),
    ] {
        ins.push(tcp((H1, 40000), (SERVER, 80), seq, ack, fl, pl));
        outs.push(("outside", tcp((EXT, tcp_e), (SERVER, 80), seq, ack, fl, pl)));
    }
    let ping_e = m.map(proto::ICMP, H1, 0x1234);
    ins.push(echo(H1, SERVER, true, 0x1234));
    outs.push(("outside", echo(EXT, SERVER, true, ping_e)));
    let probe = probe_ip(H1, 45000);
    let probe_e = m.map(proto::UDP, H1, 45000);
    ins.push(eth().frame(0x0800, &probe));
    let probe_out = {
        let ip = Ip::V4 {
            src: EXT,
            dst: SERVER,
        };
        let mut h = Ipv4Header::new(EXT, SERVER, proto::UDP);
        h.ttl = 1;
        h.ident = 0x1111;
        h.packet(&ip.udp(probe_e, 33434, b"traceroute"))
    };
    outs.push(("outside", eth().frame(0x0800, &probe_out)));
    // H2 sends to H1's DNS mapping from outside's point of view: hairpinned.
    let h2_e = m.map(proto::UDP, H2, 5000);
    ins.push(udp(H2, 5000, EXT, dns_e, b"hairpin"));
    let (a, p) = m.inside(proto::UDP, dns_e).expect("mapped");
    outs.push(("inside", udp(EXT, h2_e, a, p, b"hairpin")));
    ins.push(tcp(
        (H1, 40000),
        (SERVER, 80),
        119,
        5026,
        tcp_flags::FIN | tcp_flags::ACK,
        b"",
    ));
    outs.push((
        "outside",
        tcp(
            (EXT, tcp_e),
            (SERVER, 80),
            119,
            5026,
            tcp_flags::FIN | tcp_flags::ACK,
            b"",
        ),
    ));

    // Outside packets, and what reaches the inside.
    let mut from_out = Vec::new();
    let dns_in = m.inside(proto::UDP, dns_e).expect("mapped");
    from_out.push(udp(DNS, 53, EXT, dns_e, b"\x12\x34 answer 192.0.2.80"));
    outs.push((
        "inside",
        udp(DNS, 53, dns_in.0, dns_in.1, b"\x12\x34 answer 192.0.2.80"),
    ));
    let t_in = m.inside(proto::TCP, tcp_e).expect("mapped");
    for (seq, ack, fl, pl) in [
        (5000, 101, tcp_flags::SYN | tcp_flags::ACK, &b""[..]),
        (5001, 119, tcp_flags::ACK | tcp_flags::PSH, &resp[..]),
        (5025, 120, tcp_flags::FIN | tcp_flags::ACK, &b""[..]),
    ] {
        from_out.push(tcp((SERVER, 80), (EXT, tcp_e), seq, ack, fl, pl));
        outs.push((
            "inside",
            tcp((SERVER, 80), (t_in.0, t_in.1), seq, ack, fl, pl),
        ));
    }
    let p_in = m.inside(proto::ICMP, ping_e).expect("mapped");
    from_out.push(echo(SERVER, EXT, false, ping_e));
    outs.push(("inside", echo(SERVER, p_in.0, false, p_in.1)));
    from_out.push(time_exceeded(HOP, EXT, &probe_out));
    outs.push(("inside", time_exceeded(HOP, H1, &probe)));
    // Nobody asked for this one.
    from_out.push(udp(DNS, 53, EXT, 60000, b"unsolicited"));

    let n_in = ins.len();
    let input = stamp(ins, T0, 1_000, 0x5eed_0501);
    let from_outside = stamp(from_out, T0 + 1_000_000, 1_000, 0x5eed_0502);
    // Outputs keep their input's timestamp; inside inputs come first in sequence order.
    let mut ts = input.iter().chain(from_outside.iter()).map(|p| p.ts_ns);
    let mut to_outside = Vec::new();
    let mut to_inside = Vec::new();
    for (port, data) in outs {
        let ts_ns = ts.next().expect("one output per input");
        let p = Packet { ts_ns, data };
        if port == "outside" {
            to_outside.push(p);
        } else {
            to_inside.push(p);
        }
    }
    debug_assert!(
        n_in <= 32,
        "inside input fits one burst, so it is processed first"
    );
    Case::new(
        "nat-everyday",
        "NAT44 everyday traffic: DNS over UDP, a TCP session, a ping, a traceroute hop's time \
         exceeded (quoted probe put back), a hairpin between two subscribers with the sender's \
         external address and port, and an unsolicited datagram dropped.",
    )
    .config(
        standard_config(
            DATA_ROOM,
            &STANDARD_PORTS,
            &["inside", "outside"],
            &["outside", "inside"],
        ) + "[[stage]]\nkind = \"nat44\"\ninside = [\"inside\"]\noutside = \"outside\"\npool = [\"198.51.100.1/32\"]\ncapacity = 65536\nallocation = \"sequential\"\n",
    )
    .input("inside", input)
    .input("outside", from_outside)
    .expect("outside", to_outside)
    .expect("inside", to_inside)
    .drops("nat44.no_mapping", 1)
}

/// Port forwarding: a static mapping admits an outside client to an inside server, whose
/// answers leave from the public endpoint; a SYN to a port nobody forwards is held and, when
/// the run ends before its 6 s are up, dropped (`unsolicited_syn`).
fn port_forward() -> Case {
    const CLIENT: [u8; 4] = v4(203, 0, 113, 7);
    let mut ins = Vec::new();
    let mut outs: Vec<(&str, Vec<u8>)> = Vec::new();
    // Inside first (the replay reads the inside port's burst first): the server's answers.
    for (seq, ack, fl, pl) in [
        (9000, 301, tcp_flags::SYN | tcp_flags::ACK, &b""[..]),
        (
            9001,
            310,
            tcp_flags::ACK | tcp_flags::PSH,
            &b"welcome\r\n"[..],
        ),
    ] {
        ins.push(tcp((H1, 8080), (CLIENT, 50000), seq, ack, fl, pl));
        outs.push(("outside", tcp((EXT, 80), (CLIENT, 50000), seq, ack, fl, pl)));
    }
    let mut from_out = Vec::new();
    for (seq, ack, fl, pl) in [
        (300, 0, tcp_flags::SYN, &b""[..]),
        (
            301,
            9001,
            tcp_flags::ACK | tcp_flags::PSH,
            &b"hello srv"[..],
        ),
    ] {
        from_out.push(tcp((CLIENT, 50000), (EXT, 80), seq, ack, fl, pl));
        outs.push(("inside", tcp((CLIENT, 50000), (H1, 8080), seq, ack, fl, pl)));
    }
    from_out.push(tcp((CLIENT, 50001), (EXT, 81), 1, 0, tcp_flags::SYN, b""));
    let input = stamp(ins, T0, 1_000, 0x5eed_0503);
    let from_outside = stamp(from_out, T0 + 1_000_000, 1_000, 0x5eed_0504);
    let mut ts = input.iter().chain(from_outside.iter()).map(|p| p.ts_ns);
    let (mut to_outside, mut to_inside) = (Vec::new(), Vec::new());
    for (port, data) in outs {
        let p = Packet {
            ts_ns: ts.next().expect("one output per input"),
            data,
        };
        if port == "outside" {
            to_outside.push(p);
        } else {
            to_inside.push(p);
        }
    }
    Case::new(
        "nat-port-forward",
        "NAT44 static mapping 198.51.100.1:80 -> 10.0.0.2:8080: an outside client reaches the \
         inside server and its answers leave from the public endpoint; an unsolicited SYN to \
         another port is held (RFC 5382 REQ-4) and dropped at the end of the run.",
    )
    .config(
        standard_config(
            DATA_ROOM,
            &STANDARD_PORTS,
            &["inside", "outside"],
            &["outside", "inside"],
        ) + "[[stage]]\nkind = \"nat44\"\ninside = [\"inside\"]\noutside = \"outside\"\npool = [\"198.51.100.1/32\"]\ncapacity = 65536\n[[stage.static]]\nproto = \"tcp\"\noutside = \"198.51.100.1:80\"\ninside = \"10.0.0.2:8080\"\n",
    )
    .input("inside", input)
    .input("outside", from_outside)
    .expect("outside", to_outside)
    .expect("inside", to_inside)
    .drops("nat44.unsolicited_syn", 1)
}

/// The NAT44 stage's golden cases.
pub fn cases() -> Vec<Case> {
    vec![everyday(), port_forward()]
}
