//! Plain byte builders for the frames the golden cases feed the dataplane.
//!
//! These are deliberately written from the RFCs and nothing else: they share no code with
//! `dataplane::wire`, so a fixture built here is an independent witness of what a correct frame
//! looks like (the unit tests at the bottom then check the two agree). Every builder returns an
//! owned `Vec<u8>` with all lengths and checksums filled in; layering is by concatenation
//! (an L4 segment goes into [`Ipv4Header::packet`] or [`ipv6`], which goes into
//! [`Eth::frame`]).
//!
//! Checksums: IPv4 header, UDP (a computed zero is sent as `0xffff`), TCP, ICMPv4 and ICMPv6,
//! with the IPv4/IPv6 pseudo-headers of RFC 768/793/8200.

/// An Ethernet MAC address.
pub type Mac = [u8; 6];

/// EtherType numbers used by the builders.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q customer VLAN tag.
    pub const DOT1Q: u16 = 0x8100;
    /// 802.1ad service VLAN tag (QinQ outer tag).
    pub const DOT1AD: u16 = 0x88a8;
}

/// IP protocol numbers used by the builders.
pub mod proto {
    /// IPv6 Hop-by-Hop options header.
    pub const HOPOPT: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// TCP flag bits.
pub mod tcp_flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
}

/// Shortest Ethernet frame on the wire without the FCS; shorter frames are padded with zeros.
pub const ETH_MIN_LEN: usize = 60;

/// The Internet checksum (RFC 1071) of the concatenation of `parts`, plus `initial` (an
/// unfolded ones-complement sum, e.g. of a pseudo-header).
pub fn internet_checksum(parts: &[&[u8]], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u64::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u64::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One VLAN tag: its TPID (0x8100 or 0x88a8) and TCI (priority, DEI, VLAN id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Tag protocol identifier.
    pub tpid: u16,
    /// Tag control information.
    pub tci: u16,
}

impl Tag {
    /// An 802.1Q (customer) tag with priority 0.
    pub fn dot1q(vid: u16) -> Tag {
        Tag {
            tpid: ethertype::DOT1Q,
            tci: vid & 0x0fff,
        }
    }

    /// An 802.1ad (service) tag with priority 0.
    pub fn dot1ad(vid: u16) -> Tag {
        Tag {
            tpid: ethertype::DOT1AD,
            tci: vid & 0x0fff,
        }
    }
}

/// An Ethernet header: addresses and VLAN tags, outermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eth {
    /// Destination MAC.
    pub dst: Mac,
    /// Source MAC.
    pub src: Mac,
    /// VLAN tags, outermost first.
    pub tags: Vec<Tag>,
}

impl Eth {
    /// An untagged header.
    pub fn new(dst: Mac, src: Mac) -> Eth {
        Eth {
            dst,
            src,
            tags: Vec::new(),
        }
    }

    /// The same header with `tag` added inside the existing ones.
    pub fn tagged(mut self, tag: Tag) -> Eth {
        self.tags.push(tag);
        self
    }

    /// The frame: header, tags, `ethertype`, `payload`, zero-padded to [`ETH_MIN_LEN`].
    pub fn frame(&self, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(18 + 4 * self.tags.len() + payload.len());
        f.extend_from_slice(&self.dst);
        f.extend_from_slice(&self.src);
        for t in &self.tags {
            f.extend_from_slice(&t.tpid.to_be_bytes());
            f.extend_from_slice(&t.tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        if f.len() < ETH_MIN_LEN {
            f.resize(ETH_MIN_LEN, 0);
        }
        f
    }

    /// The frame carrying an IP packet built by [`Ip::packet`].
    pub fn ip(&self, ip: &Ip, proto: u8, l4: &[u8]) -> Vec<u8> {
        self.frame(ip.ethertype(), &ip.packet(proto, l4))
    }
}

/// The source and destination of an IP packet; decides the pseudo-header of its L4 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    /// IPv4 addresses.
    V4 {
        /// Source.
        src: [u8; 4],
        /// Destination.
        dst: [u8; 4],
    },
    /// IPv6 addresses.
    V6 {
        /// Source.
        src: [u8; 16],
        /// Destination.
        dst: [u8; 16],
    },
}

impl Ip {
    /// The same pair, source and destination swapped.
    pub fn reversed(self) -> Ip {
        match self {
            Ip::V4 { src, dst } => Ip::V4 { src: dst, dst: src },
            Ip::V6 { src, dst } => Ip::V6 { src: dst, dst: src },
        }
    }

    /// The EtherType of this IP version.
    pub fn ethertype(&self) -> u16 {
        match self {
            Ip::V4 { .. } => ethertype::IPV4,
            Ip::V6 { .. } => ethertype::IPV6,
        }
    }

    /// Unfolded ones-complement sum of the pseudo-header for an upper-layer packet of
    /// protocol `proto` and length `len`.
    pub fn pseudo_sum(&self, proto: u8, len: usize) -> u32 {
        let words = |b: &[u8]| -> u32 {
            b.chunks(2)
                .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                .sum()
        };
        let len = len as u32;
        match self {
            Ip::V4 { src, dst } => words(src) + words(dst) + u32::from(proto) + len,
            Ip::V6 { src, dst } => {
                words(src) + words(dst) + (len >> 16) + (len & 0xffff) + u32::from(proto)
            }
        }
    }

    /// An IP packet with default header fields (IPv4: TTL 64, DF, identification 0; IPv6:
    /// hop limit 64, flow label 0) carrying `l4` as protocol `proto`.
    pub fn packet(&self, proto: u8, l4: &[u8]) -> Vec<u8> {
        match *self {
            Ip::V4 { src, dst } => Ipv4Header::new(src, dst, proto).packet(l4),
            Ip::V6 { src, dst } => ipv6(src, dst, proto, 64, 0, l4),
        }
    }

    /// A UDP datagram between these addresses, checksum filled.
    pub fn udp(&self, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = 8 + payload.len();
        let mut d = Vec::with_capacity(len);
        d.extend_from_slice(&sport.to_be_bytes());
        d.extend_from_slice(&dport.to_be_bytes());
        d.extend_from_slice(&(len as u16).to_be_bytes());
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(payload);
        let c = match internet_checksum(&[&d], self.pseudo_sum(proto::UDP, len)) {
            0 => 0xffff,
            c => c,
        };
        d[6..8].copy_from_slice(&c.to_be_bytes());
        d
    }

    /// A TCP segment between these addresses, checksum filled.
    pub fn tcp(&self, seg: &TcpSegment<'_>) -> Vec<u8> {
        assert!(seg.options.len().is_multiple_of(4) && seg.options.len() <= 40);
        let hlen = 20 + seg.options.len();
        let mut d = Vec::with_capacity(hlen + seg.payload.len());
        d.extend_from_slice(&seg.sport.to_be_bytes());
        d.extend_from_slice(&seg.dport.to_be_bytes());
        d.extend_from_slice(&seg.seq.to_be_bytes());
        d.extend_from_slice(&seg.ack.to_be_bytes());
        d.push(((hlen / 4) as u8) << 4);
        d.push(seg.flags);
        d.extend_from_slice(&seg.window.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
        d.extend_from_slice(seg.options);
        d.extend_from_slice(seg.payload);
        let c = internet_checksum(&[&d], self.pseudo_sum(proto::TCP, d.len()));
        d[16..18].copy_from_slice(&c.to_be_bytes());
        d
    }

    /// An ICMP echo request or reply (ICMPv4 type 8/0, ICMPv6 type 128/129), checksum
    /// filled. Returns the protocol number to carry it under and the message.
    pub fn echo(&self, request: bool, id: u16, seq: u16, payload: &[u8]) -> (u8, Vec<u8>) {
        let (proto, ty, pseudo) = match self {
            Ip::V4 { .. } => (proto::ICMP, if request { 8 } else { 0 }, 0),
            Ip::V6 { .. } => (
                proto::ICMPV6,
                if request { 128 } else { 129 },
                self.pseudo_sum(proto::ICMPV6, 8 + payload.len()),
            ),
        };
        let mut d = vec![ty, 0, 0, 0];
        d.extend_from_slice(&id.to_be_bytes());
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(payload);
        let c = internet_checksum(&[&d], pseudo);
        d[2..4].copy_from_slice(&c.to_be_bytes());
        (proto, d)
    }
}

/// The fields of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags ([`tcp_flags`]).
    pub flags: u8,
    /// Receive window.
    pub window: u16,
    /// Options, a multiple of 4 bytes.
    pub options: &'a [u8],
    /// Payload.
    pub payload: &'a [u8],
}

impl<'a> TcpSegment<'a> {
    /// A segment with window 65535, no options and no payload.
    pub fn new(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> TcpSegment<'a> {
        TcpSegment {
            sport,
            dport,
            seq,
            ack,
            flags,
            window: 65535,
            options: &[],
            payload: &[],
        }
    }

    /// The same segment carrying `payload`.
    pub fn with_payload(self, payload: &'a [u8]) -> TcpSegment<'a> {
        TcpSegment { payload, ..self }
    }

    /// The same segment with `options` (a multiple of 4 bytes).
    pub fn with_options(self, options: &'a [u8]) -> TcpSegment<'a> {
        TcpSegment { options, ..self }
    }
}

/// The fields of an IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: [u8; 4],
    /// Destination address.
    pub dst: [u8; 4],
    /// Protocol of the payload.
    pub proto: u8,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// DSCP and ECN byte.
    pub tos: u8,
    /// Don't-fragment flag.
    pub df: bool,
    /// More-fragments flag.
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub frag_offset: u16,
    /// Options, a multiple of 4 bytes (at most 40).
    pub options: Vec<u8>,
}

impl Ipv4Header {
    /// A header with TTL 64, DF set, identification 0 and no options.
    pub fn new(src: [u8; 4], dst: [u8; 4], proto: u8) -> Ipv4Header {
        Ipv4Header {
            src,
            dst,
            proto,
            ttl: 64,
            ident: 0,
            tos: 0,
            df: true,
            mf: false,
            frag_offset: 0,
            options: Vec::new(),
        }
    }

    /// The packet: header (checksum filled) followed by `payload`.
    pub fn packet(&self, payload: &[u8]) -> Vec<u8> {
        assert!(self.options.len().is_multiple_of(4) && self.options.len() <= 40);
        let hlen = 20 + self.options.len();
        let total = hlen + payload.len();
        assert!(total <= 0xffff, "IPv4 packet of {total} bytes");
        let mut d = Vec::with_capacity(total);
        d.push(0x40 | (hlen / 4) as u8);
        d.push(self.tos);
        d.extend_from_slice(&(total as u16).to_be_bytes());
        d.extend_from_slice(&self.ident.to_be_bytes());
        let flags = if self.df { 0x4000u16 } else { 0 } | if self.mf { 0x2000 } else { 0 };
        d.extend_from_slice(&(flags | (self.frag_offset & 0x1fff)).to_be_bytes());
        d.push(self.ttl);
        d.push(self.proto);
        d.extend_from_slice(&[0, 0]);
        d.extend_from_slice(&self.src);
        d.extend_from_slice(&self.dst);
        d.extend_from_slice(&self.options);
        let c = internet_checksum(&[&d], 0);
        d[10..12].copy_from_slice(&c.to_be_bytes());
        d.extend_from_slice(payload);
        d
    }
}

/// An IPv6 packet: fixed header then `payload` (extension headers, if any, are part of the
/// payload; `next` names the first one).
pub fn ipv6(
    src: [u8; 16],
    dst: [u8; 16],
    next: u8,
    hop_limit: u8,
    flow_label: u32,
    payload: &[u8],
) -> Vec<u8> {
    assert!(payload.len() <= 0xffff);
    let mut d = Vec::with_capacity(40 + payload.len());
    d.extend_from_slice(&(0x6000_0000 | (flow_label & 0x000f_ffff)).to_be_bytes());
    d.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    d.push(next);
    d.push(hop_limit);
    d.extend_from_slice(&src);
    d.extend_from_slice(&dst);
    d.extend_from_slice(payload);
    d
}

/// An Ethernet/IPv4 ARP packet (28 bytes): `op` 1 is a request, 2 a reply.
pub fn arp(op: u16, sha: Mac, spa: [u8; 4], tha: Mac, tpa: [u8; 4]) -> Vec<u8> {
    let mut d = Vec::with_capacity(28);
    d.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    d.extend_from_slice(&ethertype::IPV4.to_be_bytes());
    d.extend_from_slice(&[6, 4]);
    d.extend_from_slice(&op.to_be_bytes());
    d.extend_from_slice(&sha);
    d.extend_from_slice(&spa);
    d.extend_from_slice(&tha);
    d.extend_from_slice(&tpa);
    d
}

/// An IPv4 address `10.a.b.c`-style helper: the four octets.
pub const fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 4] {
    [a, b, c, d]
}

/// An IPv6 address from a 32-bit prefix word (e.g. `0x2001_0db8`) and a 16-bit host part.
pub fn v6(prefix: u32, subnet: u16, host: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[0..4].copy_from_slice(&prefix.to_be_bytes());
    a[4..6].copy_from_slice(&subnet.to_be_bytes());
    a[14..16].copy_from_slice(&host.to_be_bytes());
    a
}

#[cfg(test)]
pub(crate) mod tests {
    //! The builders checked against an independent implementation: `dataplane::wire`.

    use super::*;
    use dataplane::wire::{self, parse::L3};

    /// Parses `f` with `dataplane::wire` and verifies every checksum it carries (the L4
    /// checksum only for unfragmented packets).
    pub(crate) fn check_frame(f: &[u8]) -> wire::Parsed {
        let p = wire::parse(f).expect("frame parses");
        let l3 = &f[usize::from(p.l3_offset)..];
        let l4 = usize::from(p.l4_offset);
        if p.is_fragment {
            let ip = wire::Ipv4Packet::new_checked(l3).unwrap();
            assert!(ip.verify_checksum(), "IPv4 header checksum");
            return p;
        }
        match p.l3 {
            L3::Ipv4 => {
                let ip = wire::Ipv4Packet::new_checked(l3).unwrap();
                assert!(ip.verify_checksum(), "IPv4 header checksum");
                let seg = &f[l4..usize::from(p.l3_offset) + usize::from(ip.total_len())];
                let (s, d) = (ip.src(), ip.dst());
                match p.l4_proto {
                    proto::UDP => assert!(wire::UdpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v4(&s, &d)),
                    proto::TCP => assert!(wire::TcpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v4(&s, &d)),
                    proto::ICMP => assert!(wire::Icmpv4Packet::new_checked(seg)
                        .unwrap()
                        .verify_checksum()),
                    other => panic!("unexpected protocol {other}"),
                }
            }
            L3::Ipv6 => {
                let ip = wire::Ipv6Packet::new_checked(l3).unwrap();
                let seg = &f[l4..usize::from(p.l3_offset) + 40 + usize::from(ip.payload_len())];
                let (s, d) = (ip.src(), ip.dst());
                match p.l4_proto {
                    proto::UDP => assert!(wire::UdpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v6(&s, &d)),
                    proto::TCP => assert!(wire::TcpPacket::new_checked(seg)
                        .unwrap()
                        .verify_checksum_v6(&s, &d)),
                    proto::ICMPV6 => assert!(wire::Icmpv6Packet::new_checked(seg)
                        .unwrap()
                        .verify_checksum(&s, &d)),
                    other => panic!("unexpected protocol {other}"),
                }
            }
            L3::Arp => {
                wire::ArpPacket::new_checked(l3).unwrap();
            }
            L3::Other => {}
            L3::None => panic!("parse left L3 unset"),
        }
        p
    }

    const A: Mac = [2, 0, 0, 0, 0, 0xa];
    const B: Mac = [2, 0, 0, 0, 0, 0xb];

    #[test]
    fn checksum_known_values() {
        // RFC 1071 section 3 example words.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(internet_checksum(&[&data], 0), !0xddf2);
        // Split across an odd boundary gives the same result.
        assert_eq!(internet_checksum(&[&data[..3], &data[3..]], 0), !0xddf2);
        // A header from Wikipedia's IPv4 checksum example.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&[&hdr], 0), 0xb861);
    }

    #[test]
    fn ipv4_frames_verify() {
        let ip = Ip::V4 {
            src: v4(10, 0, 0, 1),
            dst: v4(192, 0, 2, 7),
        };
        let eth = Eth::new(A, B);
        let f = eth.ip(&ip, proto::UDP, &ip.udp(1234, 53, b"hello"));
        assert_eq!(f.len(), ETH_MIN_LEN);
        assert_eq!(check_frame(&f).l4_offset, 34);
        let syn = TcpSegment::new(40000, 80, 7, 0, tcp_flags::SYN).with_options(&[2, 4, 5, 0xb4]);
        let f = eth.ip(&ip, proto::TCP, &ip.tcp(&syn));
        check_frame(&f);
        let (p, icmp) = ip.echo(true, 9, 1, &[0x55; 33]);
        check_frame(&eth.ip(&ip, p, &icmp));
        let mut h = Ipv4Header::new(v4(1, 2, 3, 4), v4(5, 6, 7, 8), proto::UDP);
        h.options = vec![148, 4, 0, 0]; // router alert
        let f = eth.frame(ethertype::IPV4, &h.packet(&ip.udp(1, 2, &[])));
        // The UDP checksum was computed for other addresses: only check the layout.
        let p = wire::parse(&f).unwrap();
        assert_eq!(p.l4_offset, 38);
    }

    #[test]
    fn ipv6_and_tagged_frames_verify() {
        let ip = Ip::V6 {
            src: v6(0x2001_0db8, 1, 1),
            dst: v6(0x2001_0db8, 2, 0x99),
        };
        let eth = Eth::new(A, B)
            .tagged(Tag::dot1ad(100))
            .tagged(Tag::dot1q(200));
        let p = check_frame(&eth.ip(&ip, proto::UDP, &ip.udp(5353, 5353, &[1; 100])));
        assert_eq!((p.vlan_count, p.vlan_ids), (2, [100, 200]));
        let seg = TcpSegment::new(1, 2, 3, 4, tcp_flags::ACK).with_payload(b"odd");
        check_frame(&eth.ip(&ip, proto::TCP, &ip.tcp(&seg)));
        let (p, icmp) = ip.echo(false, 1, 2, b"ping");
        check_frame(&eth.ip(&ip, p, &icmp));
        let f = Eth::new(A, B).frame(
            ethertype::ARP,
            &arp(1, A, v4(10, 0, 0, 1), [0; 6], v4(10, 0, 0, 2)),
        );
        assert_eq!(check_frame(&f).l3, L3::Arp);
    }
}
