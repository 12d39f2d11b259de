//! The forward and mac-rewrite cases: their inputs, their configurations, and the model that
//! predicts their output.
//!
//! Every case here runs the same two-port setup (`inside` → `outside`, both pcap ports) with a
//! [`Setup`] that picks the data room and whether a MAC rewrite follows the forward stage. The
//! expected output and counters come from [`Setup::model`], a few lines that state what the
//! dataplane must do (drop at the port what does not fit a buffer, send everything else out of
//! `outside`, rewrite both MACs if asked, drop frames too short for an Ethernet header there),
//! never from running the dataplane itself. The frame generators ([`mixed_frames`] and
//! friends) are public so other stages' cases can reuse them.

use super::{
    pattern, stamp, standard_config, Case, Counters, PortCounters, DATA_ROOM, GW_MAC, HOST_MAC,
    NEXT_HOP_MAC, OUTSIDE_MAC, STANDARD_PORTS, T0,
};
use crate::packet::{arp, ipv6, TcpSegment};
use crate::packet::{ethertype, proto, tcp_flags, v4, v6, Eth, Ip, Ipv4Header, Mac, Tag};
use crate::{Packet, Rng};

/// What one forward case configures: the part of the configuration the model depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// `memory.data_room`: frames longer than this are dropped by the port (`rx_oversize`).
    pub data_room: u32,
    /// A `mac-rewrite` stage after `forward`, writing this destination MAC and the egress
    /// port's MAC as source.
    pub rewrite_dst: Option<Mac>,
}

impl Setup {
    /// The model: what leaves `outside`, in order, and the counters, for `input`.
    pub fn model(&self, input: &[Packet]) -> (Vec<Packet>, Counters) {
        let mut out = Vec::new();
        let (mut rx, mut oversize, mut malformed) = (0, 0, 0);
        for p in input {
            // The port: a frame that does not fit one buffer never enters the engine.
            if p.data.len() > self.data_room as usize {
                oversize += 1;
                continue;
            }
            rx += 1;
            // forward: inside -> outside, unchanged.
            let mut data = p.data.clone();
            // mac-rewrite: needs a whole Ethernet header.
            if let Some(dst) = self.rewrite_dst {
                if data.len() < 14 {
                    malformed += 1;
                    continue;
                }
                data[0..6].copy_from_slice(&dst);
                data[6..12].copy_from_slice(&OUTSIDE_MAC);
            }
            out.push(Packet {
                ts_ns: p.ts_ns,
                data,
            });
        }
        let mut c = Counters {
            ports: vec![
                PortCounters::new("inside", rx, oversize, 0),
                PortCounters::new("outside", 0, 0, out.len() as u64),
            ],
            ..Counters::default()
        };
        if self.rewrite_dst.is_some() {
            c.drops.push(("malformed".into(), malformed));
        }
        (out, c)
    }

    /// The configuration (after the header comment).
    pub fn config(&self) -> String {
        let mut s = standard_config(self.data_room, &STANDARD_PORTS, &["inside"], &["outside"]);
        s.push_str("[[stage]]\nkind = \"forward\"\nroutes = { inside = \"outside\" }\n");
        if let Some(dst) = self.rewrite_dst {
            s.push_str(&format!(
                "\n[[stage]]\nkind = \"mac-rewrite\"\ndst = \"{}\"\nsrc = \"egress-port\"\n",
                super::mac_str(dst)
            ));
        }
        s
    }

    /// The case `name` checking `about` that feeds `input` to `inside`.
    pub fn case(&self, name: &str, about: &str, input: Vec<Packet>) -> Case {
        let (out, counters) = self.model(&input);
        Case::new(name, about)
            .config(self.config())
            .input("inside", input)
            .expect("outside", out)
            .counters(counters)
    }
}

/// The forward cases, in a fixed order.
pub fn cases() -> Vec<Case> {
    let plain = Setup {
        data_room: DATA_ROOM,
        rewrite_dst: None,
    };
    let rewrite = Setup {
        data_room: DATA_ROOM,
        rewrite_dst: Some(NEXT_HOP_MAC),
    };
    let oversize = Setup {
        data_room: 1024,
        rewrite_dst: None,
    };
    vec![
        plain.case(
            "forward-mixed",
            "Every kind of frame (ARP; IPv4 UDP/TCP/ICMP, with options and fragments; \
             IPv6 UDP/TCP/ICMPv6 and a Hop-by-Hop header; one 802.1Q tag; 802.1ad+802.1Q \
             QinQ; an unknown EtherType; 60-byte minimum frames with padding; 1514 to \
             1522-byte full-size frames) forwarded inside -> outside: the output is the \
             input, byte for byte, with the same timestamps.",
            stamp(mixed_frames(), T0, 1_000_137, 0x5eed_0001),
        ),
        rewrite.case(
            "mac-rewrite",
            "The forward-mixed frames through forward + mac-rewrite (dst = \
             02:aa:bb:cc:dd:ee, src = egress-port): every frame leaves outside with the \
             destination MAC replaced by the next hop's and the source MAC by the outside \
             port's (02:00:00:00:00:02), VLAN tags and everything after untouched.",
            stamp(mixed_frames(), T0 + 3_600_000_000_000, 250_000, 0x5eed_0002),
        ),
        rewrite.case(
            "malformed-short",
            "Frames of 0 to 13 bytes (too short for an Ethernet header) mixed with good \
             frames and a bare 14-byte header, through forward + mac-rewrite: the short \
             ones are dropped and counted as malformed, the rest rewritten.",
            stamp(short_mix(), T0, 10_000, 0x5eed_0003),
        ),
        oversize.case(
            "oversize",
            "memory.data_room = 1024 and frames of 1000, 1023, 1024, 1025 and 1500 bytes \
             among small ones: frames longer than 1024 bytes are dropped by the inside \
             port (rx_oversize), all others forwarded unchanged.",
            stamp(oversize_mix(), T0, 1_000, 0x5eed_0004),
        ),
        plain.case(
            "many-flows-order",
            "2000 frames over 300 UDP and TCP flows (IPv4, IPv6, some VLAN-tagged), both \
             directions, random but seeded: forwarded unchanged and in input order. With \
             several workers the flows spread over them, so this is the case that proves \
             replay output keeps input order in every layout.",
            many_flows(),
        ),
        plain.case(
            "timestamps",
            "Irregular timestamps: the Unix epoch, single nanoseconds, runs of equal \
             values, second boundaries, a step backwards, hour-long gaps and the last \
             nanosecond a pcap file can hold (2106): every frame keeps its timestamp to \
             the nanosecond.",
            timestamps(),
        ),
    ]
}

/// The addresses most frames use.
struct Hosts {
    eth: Eth,
    v4: Ip,
    v6: Ip,
}

fn hosts() -> Hosts {
    Hosts {
        eth: Eth::new(GW_MAC, HOST_MAC),
        v4: Ip::V4 {
            src: v4(10, 0, 0, 2),
            dst: v4(198, 51, 100, 10),
        },
        v6: Ip::V6 {
            src: v6(0x2001_0db8, 0x0a, 2),
            dst: v6(0x2001_0db8, 0xff, 0x10),
        },
    }
}

/// About forty frames of every kind the dataplane meets.
pub fn mixed_frames() -> Vec<Vec<u8>> {
    let Hosts {
        eth,
        v4: ip4,
        v6: ip6,
    } = hosts();
    let back = Eth::new(HOST_MAC, GW_MAC);
    let (r4, r6) = (ip4.reversed(), ip6.reversed());
    // ARP: a broadcast request and its reply.
    let mut f = vec![
        Eth::new([0xff; 6], HOST_MAC).frame(
            ethertype::ARP,
            &arp(1, HOST_MAC, v4(10, 0, 0, 2), [0; 6], v4(10, 0, 0, 1)),
        ),
        back.frame(
            ethertype::ARP,
            &arp(2, GW_MAC, v4(10, 0, 0, 1), HOST_MAC, v4(10, 0, 0, 2)),
        ),
    ];

    // IPv4 UDP: a DNS-sized query and answer, an empty datagram and a 1-byte one (both padded
    // to 60 bytes), and a broadcast.
    f.push(eth.ip(&ip4, proto::UDP, &ip4.udp(53124, 53, &pattern(29, 1))));
    f.push(back.ip(&r4, proto::UDP, &r4.udp(53, 53124, &pattern(93, 2))));
    f.push(eth.ip(&ip4, proto::UDP, &ip4.udp(40000, 9, &[])));
    f.push(eth.ip(&ip4, proto::UDP, &ip4.udp(40001, 9, &[0x42])));
    let bcast = Ip::V4 {
        src: v4(0, 0, 0, 0),
        dst: v4(255, 255, 255, 255),
    };
    f.push(Eth::new([0xff; 6], HOST_MAC).ip(
        &bcast,
        proto::UDP,
        &bcast.udp(68, 67, &pattern(244, 3)),
    ));

    // IPv4 TCP: a connection from handshake (with options) to close, and a reset.
    let syn_opts = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    let tcp4 = |ip: &Ip, e: &Eth, seg: TcpSegment<'_>| e.ip(ip, proto::TCP, &ip.tcp(&seg));
    f.push(tcp4(
        &ip4,
        &eth,
        TcpSegment::new(51000, 80, 1000, 0, tcp_flags::SYN).with_options(&syn_opts),
    ));
    f.push(tcp4(
        &r4,
        &back,
        TcpSegment::new(80, 51000, 9000, 1001, tcp_flags::SYN | tcp_flags::ACK)
            .with_options(&[2, 4, 0x05, 0x84]),
    ));
    f.push(tcp4(
        &ip4,
        &eth,
        TcpSegment::new(51000, 80, 1001, 9001, tcp_flags::ACK),
    ));
    let get = b"GET / HTTP/1.1\r\nHost: example.net\r\n\r\n";
    f.push(tcp4(
        &ip4,
        &eth,
        TcpSegment::new(51000, 80, 1001, 9001, tcp_flags::PSH | tcp_flags::ACK).with_payload(get),
    ));
    let body = pattern(700, 4);
    f.push(tcp4(
        &r4,
        &back,
        TcpSegment::new(
            80,
            51000,
            9001,
            1001 + get.len() as u32,
            tcp_flags::PSH | tcp_flags::ACK,
        )
        .with_payload(&body),
    ));
    f.push(tcp4(
        &ip4,
        &eth,
        TcpSegment::new(51000, 80, 1038, 9701, tcp_flags::FIN | tcp_flags::ACK),
    ));
    f.push(tcp4(
        &r4,
        &back,
        TcpSegment::new(80, 51001, 0, 0, tcp_flags::RST),
    ));

    // ICMP echo request and reply; an echo with no data (42 bytes, padded to 60).
    let (p, m) = ip4.echo(true, 0x1234, 1, &pattern(56, 5));
    f.push(eth.ip(&ip4, p, &m));
    let (p, m) = r4.echo(false, 0x1234, 1, &pattern(56, 5));
    f.push(back.ip(&r4, p, &m));
    let (p, m) = ip4.echo(true, 0x1234, 2, &[]);
    f.push(eth.ip(&ip4, p, &m));

    // IPv4 with options: Router Alert (4 bytes) and Record Route (12 bytes incl. padding).
    let (src, dst) = (v4(10, 0, 0, 2), v4(198, 51, 100, 10));
    let mut h = Ipv4Header::new(src, dst, proto::UDP);
    h.options = vec![148, 4, 0, 0];
    h.ttl = 1;
    f.push(eth.frame(
        ethertype::IPV4,
        &h.packet(&ip4.udp(5000, 5001, &pattern(20, 6))),
    ));
    let mut h = Ipv4Header::new(src, dst, proto::TCP);
    h.options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    h.ident = 0xbeef;
    h.tos = 0xb8;
    let seg = TcpSegment::new(51002, 443, 77, 88, tcp_flags::ACK).with_payload(b"opt");
    f.push(eth.frame(ethertype::IPV4, &h.packet(&ip4.tcp(&seg))));

    // IPv4 fragments: a first fragment (UDP header inside) and the last one.
    let whole = ip4.udp(6000, 6001, &pattern(1200, 7));
    let mut h = Ipv4Header::new(src, dst, proto::UDP);
    h.df = false;
    h.ident = 0x4242;
    h.mf = true;
    f.push(eth.frame(ethertype::IPV4, &h.packet(&whole[..800])));
    h.mf = false;
    h.frag_offset = 100;
    f.push(eth.frame(ethertype::IPV4, &h.packet(&whole[800..])));

    // IPv6: UDP both ways, TCP handshake and data, ICMPv6 echo, a Hop-by-Hop header.
    f.push(eth.ip(&ip6, proto::UDP, &ip6.udp(53125, 53, &pattern(33, 8))));
    f.push(back.ip(&r6, proto::UDP, &r6.udp(53, 53125, &pattern(121, 9))));
    f.push(eth.ip(
        &ip6,
        proto::TCP,
        &ip6.tcp(&TcpSegment::new(52000, 443, 5, 0, tcp_flags::SYN).with_options(&syn_opts)),
    ));
    f.push(back.ip(
        &r6,
        proto::TCP,
        &r6.tcp(&TcpSegment::new(
            443,
            52000,
            50,
            6,
            tcp_flags::SYN | tcp_flags::ACK,
        )),
    ));
    let data = pattern(333, 10);
    f.push(eth.ip(
        &ip6,
        proto::TCP,
        &ip6.tcp(&TcpSegment::new(52000, 443, 6, 51, tcp_flags::ACK).with_payload(&data)),
    ));
    let (p, m) = ip6.echo(true, 7, 1, &pattern(16, 11));
    f.push(eth.ip(&ip6, p, &m));
    let (p, m) = r6.echo(false, 7, 1, &pattern(16, 11));
    f.push(back.ip(&r6, p, &m));
    if let Ip::V6 { src, dst } = ip6 {
        // Hop-by-Hop: next = UDP, length 0 (8 bytes), a Router Alert option and PadN.
        let mut payload = vec![proto::UDP, 0, 5, 2, 0, 0, 1, 0];
        payload.extend(ip6.udp(521, 521, &pattern(24, 12)));
        f.push(eth.frame(
            ethertype::IPV6,
            &ipv6(src, dst, proto::HOPOPT, 1, 0xabcde, &payload),
        ));
    }

    // One 802.1Q tag: UDP, TCP, ARP.
    let q = eth.clone().tagged(Tag::dot1q(100));
    f.push(q.ip(&ip4, proto::UDP, &ip4.udp(7000, 7001, &pattern(64, 13))));
    f.push(q.ip(
        &ip4,
        proto::TCP,
        &ip4.tcp(&TcpSegment::new(7002, 22, 1, 2, tcp_flags::ACK)),
    ));
    f.push(Eth::new([0xff; 6], HOST_MAC).tagged(Tag::dot1q(100)).frame(
        ethertype::ARP,
        &arp(1, HOST_MAC, v4(10, 0, 100, 2), [0; 6], v4(10, 0, 100, 1)),
    ));

    // Two tags (802.1ad outer, 802.1Q inner): IPv4 UDP, IPv6 TCP, ICMP.
    let qq = eth
        .clone()
        .tagged(Tag::dot1ad(300))
        .tagged(Tag::dot1q(4094));
    f.push(qq.ip(&ip4, proto::UDP, &ip4.udp(8000, 8001, &pattern(10, 14))));
    f.push(qq.ip(
        &ip6,
        proto::TCP,
        &ip6.tcp(&TcpSegment::new(8002, 8003, 9, 10, tcp_flags::ACK).with_payload(b"qinq")),
    ));
    let (p, m) = ip4.echo(true, 0x99, 3, &pattern(8, 15));
    f.push(qq.ip(&ip4, p, &m));

    // An EtherType nobody parses (LLDP), padded.
    f.push(Eth::new([0x01, 0x80, 0xc2, 0, 0, 0x0e], HOST_MAC).frame(0x88cc, &pattern(20, 16)));

    // Full-size frames: 1514 bytes untagged (IPv4 UDP, IPv6 TCP), 1518 with one tag, 1522
    // with two.
    f.push(eth.ip(&ip4, proto::UDP, &ip4.udp(9000, 9001, &pattern(1472, 17))));
    f.push(eth.ip(
        &ip6,
        proto::TCP,
        &ip6.tcp(
            &TcpSegment::new(9002, 9003, 1, 1, tcp_flags::ACK).with_payload(&pattern(1440, 18)),
        ),
    ));
    f.push(q.ip(
        &ip4,
        proto::TCP,
        &ip4.tcp(
            &TcpSegment::new(9004, 9005, 1, 1, tcp_flags::ACK).with_payload(&pattern(1460, 19)),
        ),
    ));
    f.push(qq.ip(&ip4, proto::UDP, &ip4.udp(9006, 9007, &pattern(1472, 20))));
    f
}

/// Frames of 0 to 13 bytes interleaved with good frames, and a bare Ethernet header.
pub fn short_mix() -> Vec<Vec<u8>> {
    let Hosts {
        eth,
        v4: ip4,
        v6: ip6,
    } = hosts();
    let mut rng = Rng::new(0x5407);
    let mut f = Vec::new();
    for len in 0..=13usize {
        let good = if len % 2 == 0 {
            eth.ip(
                &ip4,
                proto::UDP,
                &ip4.udp(1000 + len as u16, 53, &pattern(len * 3, len as u8)),
            )
        } else {
            eth.clone().tagged(Tag::dot1q(len as u16)).ip(
                &ip6,
                proto::UDP,
                &ip6.udp(2000 + len as u16, 53, &pattern(len * 5, len as u8)),
            )
        };
        f.push(good);
        // The short frame: the start of a real frame (so a naive parser would go on), or noise.
        let short = if len % 3 == 0 {
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            eth.ip(&ip4, proto::UDP, &ip4.udp(1, 2, &[]))[..len].to_vec()
        };
        f.push(short);
    }
    // Exactly an Ethernet header and nothing else: the smallest frame that is not malformed.
    let mut header = Eth::new(GW_MAC, HOST_MAC).frame(ethertype::IPV4, &[]);
    header.truncate(14);
    f.push(header);
    f.push(eth.ip(&ip4, proto::UDP, &ip4.udp(3000, 3001, &pattern(100, 99))));
    f
}

/// Frames around a 1024-byte data room.
pub fn oversize_mix() -> Vec<Vec<u8>> {
    let Hosts { eth, v4: ip4, .. } = hosts();
    // Frame length = 42 + UDP payload for untagged IPv4 UDP.
    let udp_frame = |len: usize, seed: u8| {
        eth.ip(
            &ip4,
            proto::UDP,
            &ip4.udp(4000, 4001, &pattern(len - 42, seed)),
        )
    };
    let mut f = Vec::new();
    for (i, len) in [
        64, 1000, 1023, 1024, 1025, 128, 1500, 1024, 1025, 1514, 60, 1000, 1500,
    ]
    .into_iter()
    .enumerate()
    {
        f.push(udp_frame(len, i as u8));
    }
    f
}

/// One flow of the many-flows case.
struct Flow {
    eth: Eth,
    ip: Ip,
    tcp: bool,
    sport: u16,
    dport: u16,
    /// Next sequence number, per direction.
    seq: [u32; 2],
}

/// 2000 frames over 300 flows, both directions, seeded.
pub fn many_flows() -> Vec<Packet> {
    let mut rng = Rng::new(0x300_f10a);
    let mut flows: Vec<Flow> = (0..300u32)
        .map(|i| {
            let mut eth = Eth::new(GW_MAC, HOST_MAC);
            if rng.below(5) == 0 {
                eth = eth.tagged(Tag::dot1q(10 + rng.below(20) as u16));
            }
            let ip = if rng.below(4) == 0 {
                Ip::V6 {
                    src: v6(0x2001_0db8, 0x10, 1 + (i as u16)),
                    dst: v6(
                        0x2001_0db8,
                        0x20 + rng.below(8) as u16,
                        rng.below(1000) as u16,
                    ),
                }
            } else {
                Ip::V4 {
                    src: v4(10, 1, (i / 250) as u8, 1 + (i % 250) as u8),
                    dst: v4(203, 0, 113, rng.below(64) as u8),
                }
            };
            Flow {
                eth,
                ip,
                tcp: rng.below(2) == 0,
                sport: 1024 + rng.below(60000) as u16,
                dport: [53, 80, 123, 443, 5060, 8080][rng.below(6) as usize],
                seq: [rng.next() as u32, rng.next() as u32],
            }
        })
        .collect();
    let mut t = T0 + 86_400_000_000_000;
    let mut out = Vec::with_capacity(2000);
    let mut opened = 0usize;
    for i in 0..2000usize {
        // New flows open at random moments, early enough that all 300 are used; otherwise an
        // open flow is picked with a skew (a few chatty, most quiet), in either direction.
        let new = opened == 0
            || opened < flows.len() && rng.below((2000 - i) as u64) < (flows.len() - opened) as u64;
        let (k, dir) = if new {
            opened += 1;
            (opened - 1, 0)
        } else {
            let a = rng.below(opened as u64) as usize;
            let b = rng.below(opened as u64) as usize;
            (a.min(b), rng.below(2) as usize)
        };
        let fl = &mut flows[k];
        let payload = if new && fl.tcp {
            Vec::new()
        } else {
            pattern(rng.below(300) as usize, rng.next() as u8)
        };
        let (eth, ip, sport, dport) = if dir == 0 {
            (fl.eth.clone(), fl.ip, fl.sport, fl.dport)
        } else {
            let mut e = fl.eth.clone();
            std::mem::swap(&mut e.src, &mut e.dst);
            (e, fl.ip.reversed(), fl.dport, fl.sport)
        };
        let data = if fl.tcp {
            let flags = if new {
                tcp_flags::SYN
            } else {
                tcp_flags::ACK | tcp_flags::PSH
            };
            let seg = TcpSegment::new(sport, dport, fl.seq[dir], fl.seq[1 - dir], flags)
                .with_payload(&payload);
            fl.seq[dir] = fl.seq[dir].wrapping_add(payload.len() as u32 + u32::from(new));
            eth.ip(&ip, proto::TCP, &ip.tcp(&seg))
        } else {
            eth.ip(&ip, proto::UDP, &ip.udp(sport, dport, &payload))
        };
        out.push(Packet { ts_ns: t, data });
        t += rng.below(40_000);
    }
    assert_eq!(opened, flows.len());
    out
}

/// Frames with awkward timestamps.
pub fn timestamps() -> Vec<Packet> {
    const S: u64 = 1_000_000_000;
    let stamps: [u64; 24] = [
        0,
        1,
        1,
        1,
        999_999_999,
        S,
        S + 1,
        T0,
        T0,
        T0 + 1,
        T0 + 123_456_789,
        T0 + 123_456_789,
        T0 + S - 1,
        T0 + S,
        T0 + S,
        T0 - 5 * S + 7, // a step backwards
        T0 + 2 * S + 3,
        T0 + 3600 * S + 999_999_999,
        T0 + 3600 * S + 999_999_999,
        T0 + 7200 * S + 500,
        T0 + 7200 * S + 501,
        T0 + 7200 * S + 499, // one nanosecond back
        4_294_967_295 * S + 999_999_998,
        4_294_967_295 * S + 999_999_999,
    ];
    let Hosts {
        eth,
        v4: ip4,
        v6: ip6,
    } = hosts();
    stamps
        .iter()
        .enumerate()
        .map(|(i, &ts_ns)| {
            let port = 20000 + i as u16;
            let data = match i % 3 {
                0 => eth.ip(&ip4, proto::UDP, &ip4.udp(port, 123, &pattern(48, i as u8))),
                1 => eth.ip(
                    &ip6,
                    proto::TCP,
                    &ip6.tcp(&TcpSegment::new(port, 443, i as u32, 0, tcp_flags::ACK)),
                ),
                _ => {
                    let r = ip4.reversed();
                    Eth::new(HOST_MAC, GW_MAC).ip(
                        &r,
                        proto::UDP,
                        &r.udp(123, port, &pattern(48, 0)),
                    )
                }
            };
            Packet { ts_ns, data }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_have_the_promised_shape() {
        let cases = cases();
        let names: Vec<_> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "forward-mixed",
                "mac-rewrite",
                "malformed-short",
                "oversize",
                "many-flows-order",
                "timestamps"
            ]
        );
        for c in &cases {
            assert_eq!(c.validate(), Ok(()));
            assert_eq!(c.inputs.len(), 1);
            assert_eq!(c.expected.len(), 1);
            assert!(c.layouts.is_empty());
        }
        let input = |i: usize| &cases[i].inputs[0].1;
        let mixed = input(0);
        assert!((38..=45).contains(&mixed.len()), "{}", mixed.len());
        let lens: Vec<usize> = mixed.iter().map(|p| p.data.len()).collect();
        for want in [60, 1514, 1518, 1522] {
            assert!(lens.contains(&want), "no {want}-byte frame");
        }
        assert_eq!(cases[2].counters.drops, [("malformed".to_string(), 14)]);
        let over = &cases[3].counters.ports[0];
        assert_eq!((over.rx_packets, over.rx_oversize), (8, 5));
        assert_eq!(input(4).len(), 2000);
        assert_eq!(input(5).len(), 24);
    }

    #[test]
    fn every_frame_verifies_with_dataplane_wire() {
        let mut checked = 0;
        for c in cases() {
            for p in &c.inputs[0].1 {
                if p.data.len() > 14 {
                    crate::packet::tests::check_frame(&p.data);
                    checked += 1;
                }
            }
        }
        assert!(checked > 2100, "{checked}");
    }

    #[test]
    fn many_flows_cover_300_flows() {
        let pkts = many_flows();
        let mut keys = std::collections::HashSet::new();
        for p in &pkts {
            let f = &p.data;
            let parsed = dataplane::wire::parse(f).unwrap();
            assert!(parsed.has_l4_header());
            // Direction-independent flow key: sorted (address, port) ends.
            let l3 = usize::from(parsed.l3_offset);
            let l4 = usize::from(parsed.l4_offset);
            let (a, b) = if f[l3] >> 4 == 4 {
                (f[l3 + 12..l3 + 16].to_vec(), f[l3 + 16..l3 + 20].to_vec())
            } else {
                (f[l3 + 8..l3 + 24].to_vec(), f[l3 + 24..l3 + 40].to_vec())
            };
            let x = (a, f[l4..l4 + 2].to_vec());
            let y = (b, f[l4 + 2..l4 + 4].to_vec());
            keys.insert((parsed.l4_proto, x.clone().min(y.clone()), x.max(y)));
        }
        assert_eq!(keys.len(), 300);
    }
}
