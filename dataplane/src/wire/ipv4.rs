//! IPv4 headers (RFC 791), options included.
//!
//! `new_checked` validates everything the accessors rely on: version 4, IHL of
//! at least 5 words, the header (options included) inside the buffer, and a
//! total length that covers the header and fits in the buffer. The payload is
//! bounded by the total length, so link-layer padding (a 64-byte Ethernet frame
//! carrying a 40-byte datagram) is excluded. The header checksum is *not*
//! checked by `new_checked`: [`Ipv4Packet::verify_checksum`] is there for the
//! stages that want it.

use std::net::Ipv4Addr;

use super::{array, be16, checksum, clamped, clamped_mut, set_be16, Error};

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), shared by
/// the IPv4 protocol field and the IPv6 next-header field.
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options extension header.
    pub const HOPOPT: u8 = 0;
    /// Internet Control Message Protocol.
    pub const ICMP: u8 = 1;
    /// Internet Group Management Protocol.
    pub const IGMP: u8 = 2;
    /// IPv4 encapsulation (IP-in-IP).
    pub const IPIP: u8 = 4;
    /// Transmission Control Protocol.
    pub const TCP: u8 = 6;
    /// User Datagram Protocol.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing extension header.
    pub const IPV6_ROUTE: u8 = 43;
    /// IPv6 Fragment extension header.
    pub const IPV6_FRAG: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header.
    pub const IPV6_NONXT: u8 = 59;
    /// IPv6 Destination Options extension header.
    pub const IPV6_OPTS: u8 = 60;
    /// Stream Control Transmission Protocol.
    pub const SCTP: u8 = 132;
    /// UDP-Lite.
    pub const UDPLITE: u8 = 136;
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// Don't Fragment flag, in the flags/fragment-offset word.
const DF: u16 = 0x4000;
/// More Fragments flag, in the flags/fragment-offset word.
const MF: u16 = 0x2000;
/// Fragment offset mask, in the flags/fragment-offset word.
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap `buffer` after validating version, IHL, header length and total
    /// length against the buffer (not the checksum).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ver_ihl = b[field::VER_IHL];
        if ver_ihl >> 4 != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(ver_ihl & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if header_len > b.len() {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(be16(b, field::TOTAL_LEN));
        if total_len < header_len {
            return Err(Error::LengthTooShort);
        }
        if total_len > b.len() {
            return Err(Error::LengthExceedsBuffer);
        }
        Ok(Ipv4Packet { buffer })
    }

    /// Give back the buffer.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for a checked packet).
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Internet header length, in 32-bit words.
    #[inline(always)]
    pub fn ihl(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] & 0x0f
    }

    /// Header length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.ihl()) * 4
    }

    /// Differentiated services code point (6 bits).
    #[inline(always)]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline(always)]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length of the datagram (header and payload), in bytes.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    /// Identification.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline(always)]
    fn flags_frag(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLAGS_FRAG)
    }

    /// Don't Fragment flag.
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.flags_frag() & DF != 0
    }

    /// More Fragments flag.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.flags_frag() & MF != 0
    }

    /// Fragment offset, in 8-byte units (the raw 13-bit field).
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        self.flags_frag() & OFFSET_MASK
    }

    /// Fragment offset in bytes.
    #[inline(always)]
    pub fn frag_offset_bytes(&self) -> u16 {
        self.frag_offset() << 3
    }

    /// True if this datagram is a fragment (MF set or a non-zero offset).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.flags_frag() & (MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload, see [`ip_proto`].
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline(always)]
    pub fn src(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    #[inline(always)]
    pub fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::DST))
    }

    /// The options bytes (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// The whole header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, self.header_len())
    }

    /// The payload: from the end of the header to the total length (so any
    /// link-layer padding after the datagram is excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(
            self.buffer.as_ref(),
            self.header_len(),
            usize::from(self.total_len()),
        )
    }

    /// Upper-layer pseudo-header sum for this packet's addresses and protocol,
    /// with `len` as the upper-layer length, for [`checksum::sum16`].
    #[inline]
    pub fn pseudo_header(&self, len: u32) -> u32 {
        let b = self.buffer.as_ref();
        checksum::pseudo_v4(
            array(b, field::SRC),
            array(b, field::DST),
            b[field::PROTOCOL],
            len,
        )
    }

    /// True if the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.header(), 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the version (low 4 bits of `v`).
    #[inline(always)]
    pub fn set_version(&mut self, v: u8) {
        let b = self.buffer.as_mut();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0x0f) | (v << 4);
    }

    /// Set the IHL, in 32-bit words (low 4 bits of `ihl`).
    #[inline(always)]
    pub fn set_ihl(&mut self, ihl: u8) {
        let b = self.buffer.as_mut();
        b[field::VER_IHL] = (b[field::VER_IHL] & 0xf0) | (ihl & 0x0f);
    }

    /// Set the header length in bytes (a multiple of 4, 20 to 60).
    #[inline(always)]
    pub fn set_header_len(&mut self, len: usize) {
        self.set_ihl((len / 4) as u8);
    }

    /// Set the DSCP (low 6 bits of `dscp`).
    #[inline(always)]
    pub fn set_dscp(&mut self, dscp: u8) {
        let b = self.buffer.as_mut();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0x03) | (dscp << 2);
    }

    /// Set the ECN bits (low 2 bits of `ecn`).
    #[inline(always)]
    pub fn set_ecn(&mut self, ecn: u8) {
        let b = self.buffer.as_mut();
        b[field::DSCP_ECN] = (b[field::DSCP_ECN] & 0xfc) | (ecn & 0x03);
    }

    /// Set the total length.
    #[inline(always)]
    pub fn set_total_len(&mut self, len: u16) {
        set_be16(self.buffer.as_mut(), field::TOTAL_LEN, len);
    }

    /// Set the identification.
    #[inline(always)]
    pub fn set_ident(&mut self, id: u16) {
        set_be16(self.buffer.as_mut(), field::IDENT, id);
    }

    #[inline(always)]
    fn set_flags_frag(&mut self, v: u16) {
        set_be16(self.buffer.as_mut(), field::FLAGS_FRAG, v);
    }

    /// Set or clear Don't Fragment.
    #[inline(always)]
    pub fn set_dont_frag(&mut self, df: bool) {
        let v = (self.flags_frag() & !DF) | if df { DF } else { 0 };
        self.set_flags_frag(v);
    }

    /// Set or clear More Fragments.
    #[inline(always)]
    pub fn set_more_frags(&mut self, mf: bool) {
        let v = (self.flags_frag() & !MF) | if mf { MF } else { 0 };
        self.set_flags_frag(v);
    }

    /// Set the fragment offset, in 8-byte units (low 13 bits of `off`).
    #[inline(always)]
    pub fn set_frag_offset(&mut self, off: u16) {
        let v = (self.flags_frag() & !OFFSET_MASK) | (off & OFFSET_MASK);
        self.set_flags_frag(v);
    }

    /// Set the TTL (the checksum is not touched).
    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Set the protocol.
    #[inline(always)]
    pub fn set_protocol(&mut self, proto: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = proto;
    }

    /// Set the header checksum field.
    #[inline(always)]
    pub fn set_checksum(&mut self, csum: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, csum);
    }

    /// Set the source address (the checksum is not touched).
    #[inline(always)]
    pub fn set_src(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC..field::SRC + 4].copy_from_slice(&addr.octets());
    }

    /// Set the destination address (the checksum is not touched).
    #[inline(always)]
    pub fn set_dst(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST..field::DST + 4].copy_from_slice(&addr.octets());
    }

    /// Set the TTL and patch the header checksum incrementally (RFC 1624).
    #[inline]
    pub fn set_ttl_incremental(&mut self, ttl: u8) {
        let b = self.buffer.as_ref();
        let old = be16(b, field::TTL);
        let new = (u16::from(ttl) << 8) | u16::from(b[field::PROTOCOL]);
        let csum = checksum::update16(self.checksum(), old, new);
        self.set_ttl(ttl);
        self.set_checksum(csum);
    }

    /// Set the source address and patch the header checksum incrementally.
    /// Returns the old address (upper-layer checksums that cover it through
    /// the pseudo-header need the same patch).
    #[inline]
    pub fn set_src_incremental(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.src();
        let csum = checksum::update32(self.checksum(), old.to_bits(), addr.to_bits());
        self.set_src(addr);
        self.set_checksum(csum);
        old
    }

    /// Set the destination address and patch the header checksum
    /// incrementally. Returns the old address.
    #[inline]
    pub fn set_dst_incremental(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        let old = self.dst();
        let csum = checksum::update32(self.checksum(), old.to_bits(), addr.to_bits());
        self.set_dst(addr);
        self.set_checksum(csum);
        old
    }

    /// Compute the header checksum from scratch and store it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let csum = checksum::checksum(self.header());
        self.set_checksum(csum);
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamped_mut(self.buffer.as_mut(), field::OPTIONS, hl)
    }

    /// The payload (bounded by the total length), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        clamped_mut(self.buffer.as_mut(), hl, tl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // 192.168.0.1 -> 192.168.0.199, UDP, total length 0x73, DF, TTL 64,
    // checksum 0xb861 (a widely used worked example).
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn packet() -> Vec<u8> {
        let mut v = HEADER.to_vec();
        v.resize(0x73, 0xaa);
        v
    }

    #[test]
    fn read_fields() {
        let buf = packet();
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.ihl(), 5);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 0x73);
        assert_eq!(p.ident(), 0);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), ip_proto::UDP);
        assert_eq!(p.checksum(), 0xb861);
        assert_eq!(p.src(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.verify_checksum());
    }

    #[test]
    fn payload_excludes_padding() {
        // A 28-byte datagram in a 46-byte Ethernet minimum payload.
        let mut buf = [0u8; 46];
        buf[..20].copy_from_slice(&HEADER);
        buf[3] = 28;
        let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn options_and_fragments() {
        // IHL 6 with a 4-byte Router Alert option, MF set, offset 185 (1480 B).
        let mut buf = [0u8; 32];
        buf[..20].copy_from_slice(&HEADER);
        buf[0] = 0x46;
        buf[3] = 32;
        buf[6] = 0x20;
        buf[7] = 0xb9;
        buf[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        let mut p = Ipv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload().len(), 8);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 185);
        assert_eq!(p.frag_offset_bytes(), 1480);
        assert!(p.is_fragment());
        p.options_mut()[0] = 0x01;
        p.payload_mut()[0] = 0x55;
        assert_eq!(buf[20], 0x01);
        assert_eq!(buf[24], 0x55);
    }

    #[test]
    fn validation_errors() {
        let buf = packet();
        let check = |b: &[u8]| Ipv4Packet::new_checked(b).map(|_| ());
        assert_eq!(check(&buf[..19]), Err(Error::Truncated));
        let mut v6 = buf.clone();
        v6[0] = 0x65;
        assert_eq!(check(&v6), Err(Error::BadVersion));
        let mut short_ihl = buf.clone();
        short_ihl[0] = 0x44;
        assert_eq!(check(&short_ihl), Err(Error::BadHeaderLen));
        let mut long_ihl = buf[..40].to_vec();
        long_ihl[0] = 0x4f;
        assert_eq!(check(&long_ihl), Err(Error::Truncated));
        let mut small_total = buf.clone();
        small_total[2] = 0;
        small_total[3] = 19;
        assert_eq!(check(&small_total), Err(Error::LengthTooShort));
        assert_eq!(check(&buf[..0x72]), Err(Error::LengthExceedsBuffer));
        assert_eq!(check(&buf), Ok(()));
    }

    #[test]
    fn setters_and_checksum() {
        let mut buf = [0u8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(0x73);
        p.set_dont_frag(true);
        p.set_ttl(64);
        p.set_protocol(ip_proto::UDP);
        p.set_src(Ipv4Addr::new(192, 168, 0, 1));
        p.set_dst(Ipv4Addr::new(192, 168, 0, 199));
        p.fill_checksum();
        assert_eq!(buf, HEADER);

        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_dscp(46);
        p.set_ecn(2);
        p.set_ident(0xbeef);
        p.set_more_frags(true);
        p.set_frag_offset(0x1fff);
        p.set_dont_frag(false);
        assert_eq!((p.dscp(), p.ecn()), (46, 2));
        assert_eq!(p.ident(), 0xbeef);
        assert!(p.more_frags() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 0x1fff);
        p.set_more_frags(false);
        p.set_frag_offset(0);
        assert!(!p.is_fragment());
        assert_eq!(p.into_inner().len(), 20);
    }

    #[test]
    fn incremental_rewrites() {
        let mut buf = HEADER;
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        p.set_ttl_incremental(63);
        assert!(p.verify_checksum());
        let old = p.set_src_incremental(Ipv4Addr::new(203, 0, 113, 7));
        assert_eq!(old, Ipv4Addr::new(192, 168, 0, 1));
        assert!(p.verify_checksum());
        p.set_dst_incremental(Ipv4Addr::new(198, 51, 100, 1));
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), c);
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in prop::collection::vec(any::<u8>(), 0..100)) {
            if let Ok(p) = Ipv4Packet::new_checked(&data[..]) {
                let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.total_len());
                let _ = (p.ident(), p.dont_frag(), p.more_frags(), p.frag_offset_bytes());
                let _ = (p.ttl(), p.protocol(), p.checksum(), p.src(), p.dst());
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.pseudo_header(8));
                prop_assert!(p.payload().len() + p.header_len() == usize::from(p.total_len()));
            }
        }

        #[test]
        fn incremental_equals_fill(ttl in any::<u8>(), src in any::<u32>(), dst in any::<u32>(),
                                   ident in any::<u16>(), proto in any::<u8>()) {
            let mut buf = HEADER;
            let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
            p.set_ident(ident);
            p.set_protocol(proto);
            p.fill_checksum();
            p.set_ttl_incremental(ttl);
            p.set_src_incremental(Ipv4Addr::from_bits(src));
            p.set_dst_incremental(Ipv4Addr::from_bits(dst));
            let inc = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(inc, p.checksum());
        }
    }
}
