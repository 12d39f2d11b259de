//! One header walk per frame: VLAN tags, L3, extension headers, L4 offset.
//!
//! [`parse()`] runs once per packet at the head of a chain. It does the
//! structural validation every stage would otherwise repeat (tags present,
//! IPv4 version/IHL/total length, IPv6 payload length and extension chain) and
//! records where each layer starts, so stages can build views at known
//! offsets without re-walking. It does *not* verify checksums (stages that
//! forward without touching a header need not pay for that) and it does not
//! validate the L4 header beyond finding where it starts.
//!
//! Outcomes:
//! * `Err(_)` for frames that are broken at a layer we understand: too short
//!   for the Ethernet header or a VLAN tag, or a bad IPv4/IPv6 header or
//!   extension chain. These are drops.
//! * `Ok` with `l3 = L3::Other` for anything we do not parse: unknown
//!   EtherTypes and frames with a third VLAN tag (not an error: a stage may
//!   still bridge or punt them).
//! * `Ok` with `l3 = L3::Arp` without looking inside the ARP packet.

use super::ethernet::{ethertype, HEADER_LEN as ETH_HEADER_LEN};
use super::ipv6::HEADER_LEN as IPV6_HEADER_LEN;
use super::{be16, walk_ext, Error, Ipv4Packet, Ipv6Packet};

/// Errors from [`parse()`]: the shared [`Error`] enum.
pub type ParseError = Error;

/// Most VLAN tags [`parse()`] walks through.
pub const MAX_VLAN_TAGS: usize = 2;

/// The network layer found by [`parse()`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum L3 {
    /// Nothing parsed (the default value).
    #[default]
    None,
    /// IPv4, header validated.
    Ipv4,
    /// IPv6, header and extension chain validated.
    Ipv6,
    /// ARP (contents not validated).
    Arp,
    /// Some other EtherType, or a frame with more than two VLAN tags.
    Other,
}

/// Where the layers of a frame start, as found by [`parse()`].
///
/// Offsets are from the start of the frame. `l4_proto`/`l4_offset` are set
/// for IPv4 and IPv6 only (zero otherwise). For a fragment other than the
/// first (`is_fragment && !first_fragment`), `l4_offset` points at fragment
/// data, not at an L4 header: see [`Parsed::has_l4_header`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Number of VLAN tags walked (0 to 2).
    pub vlan_count: u8,
    /// VLAN ids, outermost first; unused entries are 0.
    pub vlan_ids: [u16; 2],
    /// EtherType after the tags (for `L3::Other` with three tags, the third
    /// tag's TPID).
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: u16,
    /// The L3 protocol.
    pub l3: L3,
    /// IP protocol / IPv6 upper-layer next header.
    pub l4_proto: u8,
    /// Offset of the L4 header (after IPv4 options / IPv6 extension headers).
    pub l4_offset: u16,
    /// True if the datagram is a fragment (IPv4 MF or offset; IPv6 Fragment
    /// header that is not an atomic fragment).
    pub is_fragment: bool,
    /// True if the datagram is the first fragment (offset 0, more to come).
    pub first_fragment: bool,
}

impl Parsed {
    /// True if `l4_offset` points at an L4 header: IP, and not a non-first
    /// fragment.
    #[inline(always)]
    pub fn has_l4_header(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6) && (!self.is_fragment || self.first_fragment)
    }

    /// True for IPv4 or IPv6.
    #[inline(always)]
    pub fn is_ip(&self) -> bool {
        matches!(self.l3, L3::Ipv4 | L3::Ipv6)
    }
}

/// Walk the headers of an Ethernet frame. See the module documentation for
/// what is validated and what is an error.
///
/// Always inlined: the result then stays in registers, where an out-of-line
/// call writes it to memory field by field and the caller's wide reload of
/// it stalls on store forwarding (measured: about 2x the cost of the walk).
/// IPv6 is kept out of line to bound the code size at each call site.
#[inline(always)]
pub fn parse(frame: &[u8]) -> Result<Parsed, ParseError> {
    if frame.len() < ETH_HEADER_LEN {
        return Err(Error::Truncated);
    }
    let mut p = Parsed::default();
    let mut et = be16(frame, 12);
    let mut off = ETH_HEADER_LEN;
    while ethertype::is_vlan(et) {
        if usize::from(p.vlan_count) == MAX_VLAN_TAGS {
            p.ethertype = et;
            p.l3_offset = off as u16;
            p.l3 = L3::Other;
            return Ok(p);
        }
        if frame.len() < off + 4 {
            return Err(Error::Truncated);
        }
        p.vlan_ids[usize::from(p.vlan_count)] = be16(frame, off) & 0x0fff;
        p.vlan_count += 1;
        et = be16(frame, off + 2);
        off += 4;
    }
    p.ethertype = et;
    // `off` is at most 22 here.
    p.l3_offset = off as u16;
    let l3 = &frame[off..];
    match et {
        ethertype::IPV4 => {
            let ip = Ipv4Packet::new_checked(l3)?;
            p.l3 = L3::Ipv4;
            p.l4_proto = ip.protocol();
            // IHL is at most 60 bytes.
            p.l4_offset = (off + ip.header_len()) as u16;
            p.is_fragment = ip.is_fragment();
            p.first_fragment = p.is_fragment && ip.frag_offset() == 0;
        }
        ethertype::IPV6 => {
            let (proto, l4_offset, is_fragment, first_fragment) = parse_ipv6(l3, off)?;
            p.l3 = L3::Ipv6;
            p.l4_proto = proto;
            p.l4_offset = l4_offset;
            p.is_fragment = is_fragment;
            p.first_fragment = first_fragment;
        }
        ethertype::ARP => p.l3 = L3::Arp,
        _ => p.l3 = L3::Other,
    }
    Ok(p)
}

/// The IPv6 part of [`parse()`]: fixed header and extension chain. Returns
/// (upper-layer protocol, L4 offset, is fragment, is first fragment).
///
/// Returns scalars rather than filling a `&mut Parsed`: taking the address of
/// the caller's `Parsed` would keep it in memory on every path, IPv4
/// included, and reloading it after narrow stores stalls.
#[inline(never)]
fn parse_ipv6(l3: &[u8], off: usize) -> Result<(u8, u16, bool, bool), ParseError> {
    let ip = Ipv6Packet::new_checked(l3)?;
    let (proto, upper, frag) = walk_ext(ip.payload(), ip.next_header())?;
    let l4_offset =
        u16::try_from(off + IPV6_HEADER_LEN + upper).map_err(|_| Error::BadExtHeader)?;
    let (is_fragment, first_fragment) = match frag {
        Some(f) if f.is_fragment() => (true, f.offset == 0),
        _ => (false, false),
    };
    Ok((proto, l4_offset, is_fragment, first_fragment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use crate::wire::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_tcp() {
        let f = frame_v4(
            &[],
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            ip_proto::TCP,
            &tcp(1234, 80),
        );
        let p = parse(&f).unwrap();
        assert_eq!(p.vlan_count, 0);
        assert_eq!(p.ethertype, 0x0800);
        assert_eq!(p.l3, L3::Ipv4);
        assert_eq!(p.l3_offset, 14);
        assert_eq!(p.l4_proto, ip_proto::TCP);
        assert_eq!(p.l4_offset, 34);
        assert!(!p.is_fragment && !p.first_fragment);
        assert!(p.has_l4_header() && p.is_ip());
    }

    #[test]
    fn ipv4_options_and_padding() {
        let mut f = frame_v4(
            &[],
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            ip_proto::UDP,
            &udp(1, 2, &[]),
        );
        // Grow IHL to 6 with a 4-byte option (NOPs and an EOL).
        f.splice(34..34, [1, 1, 1, 0]);
        f[14] = 0x46;
        f[17] += 4;
        f.resize(60, 0); // Ethernet minimum-size padding.
        let p = parse(&f).unwrap();
        assert_eq!(p.l4_offset, 38);
        assert_eq!(p.l4_proto, ip_proto::UDP);
    }

    #[test]
    fn vlan_tags() {
        let f = frame_v4(
            &[(0x88a8, 100), (0x8100, 200)],
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            ip_proto::UDP,
            &udp(1, 2, b"x"),
        );
        let p = parse(&f).unwrap();
        assert_eq!(p.vlan_count, 2);
        assert_eq!(p.vlan_ids, [100, 200]);
        assert_eq!(p.ethertype, 0x0800);
        assert_eq!(p.l3_offset, 22);
        assert_eq!(p.l4_offset, 42);

        let f = frame_v4(
            &[(0x9100, 4095)],
            [1; 4],
            [2; 4],
            ip_proto::UDP,
            &udp(1, 2, b""),
        );
        let p = parse(&f).unwrap();
        assert_eq!((p.vlan_count, p.vlan_ids), (1, [4095, 0]));
        assert_eq!(p.l3_offset, 18);
    }

    #[test]
    fn third_tag_is_other() {
        let f = frame_v4(
            &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)],
            [1; 4],
            [2; 4],
            ip_proto::UDP,
            &udp(1, 2, b""),
        );
        let p = parse(&f).unwrap();
        assert_eq!(p.l3, L3::Other);
        assert_eq!(p.vlan_count, 2);
        assert_eq!(p.vlan_ids, [1, 2]);
        assert_eq!(p.ethertype, 0x8100);
        assert_eq!(p.l3_offset, 22);
        assert!(!p.has_l4_header());
    }

    #[test]
    fn ipv4_fragments() {
        let mut f = frame_v4(&[], [1; 4], [2; 4], ip_proto::UDP, &udp(1, 2, &[0; 16]));
        f[20] = 0x20; // MF, offset 0
        let p = parse(&f).unwrap();
        assert!(p.is_fragment && p.first_fragment && p.has_l4_header());
        f[20] = 0x00;
        f[21] = 0x03; // offset 24 bytes, last fragment
        let p = parse(&f).unwrap();
        assert!(p.is_fragment && !p.first_fragment && !p.has_l4_header());
        f[20] = 0x40;
        f[21] = 0x00; // DF only
        let p = parse(&f).unwrap();
        assert!(!p.is_fragment && !p.first_fragment);
    }

    #[test]
    fn ipv6_with_extensions() {
        let mut ext = vec![ip_proto::IPV6_FRAG, 0, 0, 0, 0, 0, 0, 0]; // Hop-by-Hop
        ext.extend_from_slice(&[ip_proto::TCP, 0, 0x00, 0x01, 0, 0, 0, 42]); // first fragment
        ext.extend_from_slice(&tcp(1, 2));
        let f = frame_v6(&[(0x8100, 7)], [1; 16], [2; 16], ip_proto::HOPOPT, &ext);
        let p = parse(&f).unwrap();
        assert_eq!(p.l3, L3::Ipv6);
        assert_eq!(p.ethertype, 0x86dd);
        assert_eq!(p.l3_offset, 18);
        assert_eq!(p.l4_proto, ip_proto::TCP);
        assert_eq!(p.l4_offset, 18 + 40 + 16);
        assert!(p.is_fragment && p.first_fragment);

        // Non-first fragment: stop at the fragment data.
        let mut ext = vec![ip_proto::UDP, 0, 0x00, 0x10, 0, 0, 0, 42];
        ext.extend_from_slice(&[0xaa; 16]);
        let f = frame_v6(&[], [1; 16], [2; 16], ip_proto::IPV6_FRAG, &ext);
        let p = parse(&f).unwrap();
        assert_eq!((p.l4_proto, p.l4_offset), (ip_proto::UDP, 14 + 40 + 8));
        assert!(p.is_fragment && !p.first_fragment && !p.has_l4_header());
    }

    #[test]
    fn arp_and_other() {
        let mut f = eth(ethertype::ARP, &[]);
        f.extend_from_slice(&[0; 28]);
        let p = parse(&f).unwrap();
        assert_eq!((p.l3, p.l3_offset, p.l4_offset), (L3::Arp, 14, 0));
        let f = eth(0x88cc, &[(0x8100, 5)]); // LLDP, tagged
        let p = parse(&f).unwrap();
        assert_eq!((p.l3, p.ethertype, p.l3_offset), (L3::Other, 0x88cc, 18));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&[0; 13]), Err(Error::Truncated));
        let mut f = eth(ethertype::VLAN, &[]);
        f.extend_from_slice(&[0, 5, 8]); // a tag cut one byte short
        assert_eq!(parse(&f), Err(Error::Truncated));
        let f = frame_v4(&[], [1; 4], [2; 4], ip_proto::UDP, &udp(1, 2, b""));
        assert_eq!(parse(&f[..33]), Err(Error::Truncated));
        assert_eq!(parse(&f[..40]), Err(Error::LengthExceedsBuffer));
        let mut bad = f.clone();
        bad[14] = 0x65;
        assert_eq!(parse(&bad), Err(Error::BadVersion));
        bad[14] = 0x43;
        assert_eq!(parse(&bad), Err(Error::BadHeaderLen));
        let f6 = frame_v6(
            &[],
            [1; 16],
            [2; 16],
            ip_proto::HOPOPT,
            &[6, 1, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(parse(&f6), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn never_panics_and_offsets_in_bounds(data in prop::collection::vec(any::<u8>(), 0..160),
                                              et in prop::sample::select(vec![0x0800u16, 0x86dd, 0x8100, 0x0806])) {
            let mut f = data;
            if f.len() >= 14 {
                f[12..14].copy_from_slice(&et.to_be_bytes());
                if f.len() > 14 && et == 0x0800 { f[14] = 0x45; }
                if f.len() > 14 && et == 0x86dd { f[14] = 0x60; }
            }
            if let Ok(p) = parse(&f) {
                prop_assert!(usize::from(p.l3_offset) <= f.len());
                prop_assert!(usize::from(p.l4_offset) <= f.len());
                if p.is_ip() {
                    prop_assert!(p.l4_offset > p.l3_offset);
                }
            }
        }
    }
}
