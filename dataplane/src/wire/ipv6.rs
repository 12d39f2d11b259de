//! IPv6 headers (RFC 8200) and a bounded extension-header walker.
//!
//! The fixed 40-byte header is a view like the others; its payload is bounded
//! by the payload-length field. Jumbograms (payload length 0 with a Jumbo
//! Payload option) are not supported: their payload reads as empty.
//!
//! [`walk_ext`] follows the next-header chain through Hop-by-Hop, Routing,
//! Fragment, Destination Options, AH (and the rarer Mobility, HIP and Shim6
//! headers, which share the options layout), at most [`MAX_EXT_HEADERS`] of
//! them, and stops at the first upper-layer protocol, at ESP (opaque) or at No
//! Next Header. An attacker controls the chain, hence the bound and the strict
//! length checks: a chain that runs past the buffer is an error, not a guess.

use std::net::Ipv6Addr;

use super::{array, be16, be32, checksum, clamped, clamped_mut, ip_proto, set_be16, Error};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const HEADER_LEN: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// Most extension headers [`walk_ext`] follows before giving up.
pub const MAX_EXT_HEADERS: usize = 16;

/// Mobility header (RFC 6275); options layout.
const MOBILITY: u8 = 135;
/// Host Identity Protocol (RFC 7401); options layout.
const HIP: u8 = 139;
/// Shim6 (RFC 5533); options layout.
const SHIM6: u8 = 140;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap `buffer` after checking the fixed header fits, the version is 6
    /// and the payload length fits in the buffer.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[field::VER_TC_FLOW] >> 4 != 6 {
            return Err(Error::BadVersion);
        }
        if field::HEADER_LEN + usize::from(be16(b, field::PAYLOAD_LEN)) > b.len() {
            return Err(Error::LengthExceedsBuffer);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Give back the buffer.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (6 for a checked packet).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4) as u8
    }

    /// Flow label (20 bits).
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        super::be32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (extension headers included), in bytes.
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// Next header of the fixed header (an extension header or upper layer).
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline(always)]
    pub fn src(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst(&self) -> Ipv6Addr {
        Ipv6Addr::from(array::<16>(self.buffer.as_ref(), field::DST))
    }

    /// The payload after the fixed header, bounded by the payload length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            field::HEADER_LEN,
            field::HEADER_LEN + usize::from(self.payload_len()),
        )
    }

    /// Walk the extension headers of the payload, see [`walk_ext`]. The
    /// returned offset is relative to [`payload`](Self::payload).
    #[inline]
    pub fn walk_ext(&self) -> Result<(u8, usize, Option<Ipv6FragInfo>), Error> {
        walk_ext(self.payload(), self.next_header())
    }

    /// Upper-layer pseudo-header sum for this packet's addresses, with the
    /// given upper-layer protocol and length, for [`checksum::sum16`].
    #[inline]
    pub fn pseudo_header(&self, next_header: u8, len: u32) -> u32 {
        let b = self.buffer.as_ref();
        checksum::pseudo_v6(array(b, field::SRC), array(b, field::DST), next_header, len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set the version (low 4 bits of `v`).
    #[inline(always)]
    pub fn set_version(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[0] = (b[0] & 0x0f) | (v << 4);
    }

    /// Set the traffic class.
    #[inline(always)]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        let w = (be16(b, 0) & 0xf00f) | (u16::from(tc) << 4);
        set_be16(b, 0, w);
    }

    /// Set the flow label (low 20 bits of `label`).
    #[inline(always)]
    pub fn set_flow_label(&mut self, label: u32) {
        let b = self.buffer.as_mut();
        let w = (be32(b, 0) & 0xfff0_0000) | (label & 0x000f_ffff);
        super::set_be32(b, 0, w);
    }

    /// Set the payload length.
    #[inline(always)]
    pub fn set_payload_len(&mut self, len: u16) {
        set_be16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }

    /// Set the next header.
    #[inline(always)]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh;
    }

    /// Set the hop limit.
    #[inline(always)]
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }

    /// Set the source address.
    #[inline(always)]
    pub fn set_src(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 16].copy_from_slice(&addr.octets());
    }

    /// Set the destination address.
    #[inline(always)]
    pub fn set_dst(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 16].copy_from_slice(&addr.octets());
    }

    /// The payload (bounded by the payload length), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::HEADER_LEN + usize::from(self.payload_len());
        clamped_mut(self.buffer.as_mut(), field::HEADER_LEN, end)
    }
}

/// What an IPv6 Fragment header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ipv6FragInfo {
    /// Fragment offset in 8-byte units (the raw 13-bit field).
    pub offset: u16,
    /// M flag: more fragments follow.
    pub more_fragments: bool,
    /// Identification shared by all fragments of the datagram.
    pub identification: u32,
}

impl Ipv6FragInfo {
    /// Fragment offset in bytes.
    #[inline(always)]
    pub fn offset_bytes(&self) -> u16 {
        self.offset << 3
    }

    /// True unless this is an atomic fragment (offset 0, M clear), which
    /// carries a whole datagram (RFC 6946).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.offset != 0 || self.more_fragments
    }
}

/// Walk an IPv6 extension-header chain.
///
/// `buf` is the IPv6 payload (the bytes after the fixed header, bounded by the
/// payload length) and `first_next_header` the fixed header's next-header
/// field. Returns `(upper_proto, upper_offset, frag)`: the first protocol that
/// is not a walkable extension header, the offset of its header in `buf`, and
/// the Fragment header's contents if one was crossed.
///
/// The walk stops at an upper-layer protocol, at ESP (50, opaque) and at No
/// Next Header (59, returned as the protocol). It also stops right after a
/// Fragment header whose offset is non-zero, since the rest of the chain is
/// then in the first fragment, not here: for such a packet `upper_proto` is
/// the Fragment header's next header and `upper_offset` points at fragment
/// data, not at a header.
///
/// Errors: [`Error::Truncated`] if a header runs past `buf`,
/// [`Error::BadExtHeader`] for a Hop-by-Hop header that is not first or a
/// second Fragment header, [`Error::TooManyExtHeaders`] past
/// [`MAX_EXT_HEADERS`].
pub fn walk_ext(
    buf: &[u8],
    first_next_header: u8,
) -> Result<(u8, usize, Option<Ipv6FragInfo>), Error> {
    let mut nh = first_next_header;
    let mut off = 0usize;
    let mut frag: Option<Ipv6FragInfo> = None;
    let mut count = 0usize;
    loop {
        let len = match nh {
            ip_proto::HOPOPT
            | ip_proto::IPV6_ROUTE
            | ip_proto::IPV6_OPTS
            | MOBILITY
            | HIP
            | SHIM6 => {
                if nh == ip_proto::HOPOPT && count != 0 {
                    return Err(Error::BadExtHeader);
                }
                match buf.get(off + 1) {
                    Some(&l) => (usize::from(l) + 1) * 8,
                    None => return Err(Error::Truncated),
                }
            }
            ip_proto::AH => match buf.get(off + 1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return Err(Error::Truncated),
            },
            ip_proto::IPV6_FRAG => {
                if frag.is_some() {
                    return Err(Error::BadExtHeader);
                }
                8
            }
            _ => return Ok((nh, off, frag)),
        };
        if count == MAX_EXT_HEADERS {
            return Err(Error::TooManyExtHeaders);
        }
        if buf.len() < off + len {
            return Err(Error::Truncated);
        }
        let next = buf[off];
        if nh == ip_proto::IPV6_FRAG {
            let fo = be16(buf, off + 2);
            let info = Ipv6FragInfo {
                offset: fo >> 3,
                more_fragments: fo & 1 != 0,
                identification: be32(buf, off + 4),
            };
            frag = Some(info);
            off += len;
            if info.offset != 0 {
                return Ok((next, off, frag));
            }
        } else {
            off += len;
        }
        nh = next;
        count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // fe80::1 -> ff02::1:ff00:2, ICMPv6 neighbour solicitation, hop limit 255,
    // traffic class 0xb8, flow label 0x12345.
    fn packet() -> Vec<u8> {
        let mut v = vec![0x6b, 0x81, 0x23, 0x45, 0x00, 0x20, 58, 255];
        v.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 2]);
        v.extend_from_slice(&[0u8; 32]);
        v
    }

    #[test]
    fn read_fields() {
        let buf = packet();
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 32);
        assert_eq!(p.next_header(), ip_proto::ICMPV6);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst(), "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 32);
        assert_eq!(p.walk_ext(), Ok((ip_proto::ICMPV6, 0, None)));
    }

    #[test]
    fn write_fields() {
        let mut buf = [0u8; 48];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        p.set_payload_len(8);
        p.set_next_header(ip_proto::UDP);
        p.set_hop_limit(64);
        p.set_src("2001:db8::1".parse().unwrap());
        p.set_dst("2001:db8::2".parse().unwrap());
        p.payload_mut()[0] = 7;
        assert_eq!(&buf[..8], &[0x6b, 0x81, 0x23, 0x45, 0, 8, 17, 64]);
        let p = Ipv6Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.traffic_class(), p.flow_label()), (0xb8, 0x12345));
        assert_eq!(p.payload(), &[7, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn validation_errors() {
        let buf = packet();
        let check = |b: &[u8]| Ipv6Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&buf[..39]), Err(Error::Truncated));
        let mut v4 = buf.clone();
        v4[0] = 0x45;
        assert_eq!(check(&v4), Err(Error::BadVersion));
        assert_eq!(check(&buf[..71]), Err(Error::LengthExceedsBuffer));
        // Trailing padding is fine and excluded from the payload.
        let mut padded = buf.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(
            Ipv6Packet::new_checked(&padded[..])
                .unwrap()
                .payload()
                .len(),
            32
        );
    }

    #[test]
    fn walk_chain() {
        // HBH (8 B) -> Dest opts (16 B) -> Routing (8 B) -> Fragment -> AH (12 B) -> TCP
        let mut b = vec![ip_proto::IPV6_OPTS, 0, 1, 4, 0, 0, 0, 0];
        b.extend_from_slice(&[ip_proto::IPV6_ROUTE, 1]);
        b.extend_from_slice(&[0; 14]);
        b.extend_from_slice(&[ip_proto::IPV6_FRAG, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[ip_proto::AH, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        b.extend_from_slice(&[ip_proto::TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0; 20]);
        let (proto, off, frag) = walk_ext(&b, ip_proto::HOPOPT).unwrap();
        assert_eq!(proto, ip_proto::TCP);
        assert_eq!(off, 8 + 16 + 8 + 8 + 12);
        let frag = frag.unwrap();
        assert_eq!(frag.offset, 0);
        assert!(frag.more_fragments);
        assert_eq!(frag.identification, 0xdeadbeef);
        assert!(frag.is_fragment());
    }

    #[test]
    fn walk_non_first_fragment_stops() {
        // Fragment at offset 1480 bytes (185 units), M clear, next header UDP.
        let b = [ip_proto::UDP, 0, 0x05, 0xc8, 0, 0, 0, 9, 0xaa, 0xbb];
        let (proto, off, frag) = walk_ext(&b, ip_proto::IPV6_FRAG).unwrap();
        assert_eq!((proto, off), (ip_proto::UDP, 8));
        let frag = frag.unwrap();
        assert_eq!(frag.offset, 185);
        assert_eq!(frag.offset_bytes(), 1480);
        assert!(!frag.more_fragments);
        assert_eq!(frag.identification, 9);
    }

    #[test]
    fn walk_atomic_fragment() {
        let b = [ip_proto::ICMPV6, 0, 0, 0, 0, 0, 0, 1, 128, 0];
        let (proto, off, frag) = walk_ext(&b, ip_proto::IPV6_FRAG).unwrap();
        assert_eq!((proto, off), (ip_proto::ICMPV6, 8));
        assert!(!frag.unwrap().is_fragment());
    }

    #[test]
    fn walk_stops_at_esp_and_no_next() {
        assert_eq!(walk_ext(&[], ip_proto::ESP), Ok((ip_proto::ESP, 0, None)));
        let b = [ip_proto::IPV6_NONXT, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            walk_ext(&b, ip_proto::IPV6_OPTS),
            Ok((ip_proto::IPV6_NONXT, 8, None))
        );
    }

    #[test]
    fn walk_errors() {
        assert_eq!(walk_ext(&[], ip_proto::HOPOPT), Err(Error::Truncated));
        assert_eq!(
            walk_ext(&[6, 1, 0, 0], ip_proto::HOPOPT),
            Err(Error::Truncated)
        );
        assert_eq!(
            walk_ext(&[6, 0, 0, 0], ip_proto::IPV6_FRAG),
            Err(Error::Truncated)
        );
        assert_eq!(walk_ext(&[6], ip_proto::AH), Err(Error::Truncated));
        // Hop-by-Hop in second place.
        let b = [
            ip_proto::HOPOPT,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            6,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(walk_ext(&b, ip_proto::IPV6_OPTS), Err(Error::BadExtHeader));
        // Two fragment headers.
        let b = [
            ip_proto::IPV6_FRAG,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            6,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        assert_eq!(walk_ext(&b, ip_proto::IPV6_FRAG), Err(Error::BadExtHeader));
        // An endless chain of destination options.
        let mut b = Vec::new();
        for _ in 0..=MAX_EXT_HEADERS {
            b.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert_eq!(
            walk_ext(&b, ip_proto::IPV6_OPTS),
            Err(Error::TooManyExtHeaders)
        );
        // Exactly the bound is fine.
        let n = MAX_EXT_HEADERS * 8;
        b[n - 8] = ip_proto::UDP;
        assert_eq!(
            walk_ext(&b[..n], ip_proto::IPV6_OPTS),
            Ok((ip_proto::UDP, n, None))
        );
    }

    proptest! {
        #[test]
        fn walk_never_panics_and_stays_in_bounds(
            data in prop::collection::vec(any::<u8>(), 0..200), nh in any::<u8>()) {
            if let Ok((_, off, _)) = walk_ext(&data, nh) {
                prop_assert!(off <= data.len());
            }
        }

        #[test]
        fn checked_never_panics(data in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(p) = Ipv6Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.traffic_class(), p.flow_label(), p.payload_len());
                let _ = (p.next_header(), p.hop_limit(), p.src(), p.dst(), p.walk_ext());
                let _ = p.pseudo_header(6, 20);
                prop_assert_eq!(p.payload().len(), usize::from(p.payload_len()));
            }
        }
    }
}
