//! UDP datagram headers (RFC 768), with the "zero checksum means none" rule.
//!
//! The payload is bounded by the UDP length field, which `new_checked` checks
//! against the buffer. Over IPv4 a checksum of zero means the sender computed
//! none, so verification passes and incremental updates keep it zero; a
//! computed zero is transmitted as `0xFFFF`. Over IPv6 the checksum is
//! mandatory (RFC 8200 8.1), so [`UdpPacket::verify_checksum_v6`] rejects zero.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, checksum, clamped, clamped_mut, ip_proto, set_be16, Error};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wrap `buffer` after checking the header fits and the length field
    /// covers the header and fits in the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(be16(b, field::LENGTH));
        if len < HEADER_LEN {
            return Err(Error::LengthTooShort);
        }
        if len > b.len() {
            return Err(Error::LengthExceedsBuffer);
        }
        Ok(UdpPacket { buffer })
    }

    /// Give back the buffer.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header and payload), in bytes.
    #[inline(always)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if the length field says the payload is empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field (0 means none, over IPv4).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as the length field delimits it (header and payload).
    #[inline]
    pub fn datagram(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, usize::from(self.len()))
    }

    /// The payload, bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), HEADER_LEN, usize::from(self.len()))
    }

    /// True if the checksum field is zero (the sender computed none) or the
    /// checksum is correct, given the pseudo-header sum `pseudo` (protocol 17,
    /// length [`len`](Self::len)).
    #[inline]
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        self.checksum() == 0 || checksum::verify(self.datagram(), pseudo)
    }

    /// [`verify_checksum`](Self::verify_checksum) over an IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        self.verify_checksum(self.pseudo_v4(src, dst))
    }

    /// Checksum verification over an IPv6 pseudo-header, where a zero
    /// checksum is invalid.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.checksum() != 0 && checksum::verify(self.datagram(), self.pseudo_v6(src, dst))
    }

    #[inline]
    fn pseudo_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> u32 {
        checksum::pseudo_v4(src.octets(), dst.octets(), ip_proto::UDP, self.len().into())
    }

    #[inline]
    fn pseudo_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u32 {
        checksum::pseudo_v6(src.octets(), dst.octets(), ip_proto::UDP, self.len().into())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Set the source port.
    #[inline(always)]
    pub fn set_src_port(&mut self, port: u16) {
        set_be16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Set the destination port.
    #[inline(always)]
    pub fn set_dst_port(&mut self, port: u16) {
        set_be16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Set the length field.
    #[inline(always)]
    pub fn set_len(&mut self, len: u16) {
        set_be16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the checksum field.
    #[inline(always)]
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Compute the checksum from the pseudo-header sum `pseudo` and store it,
    /// writing `0xFFFF` for a computed zero.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum16(self.datagram(), pseudo));
        self.set_checksum(checksum::udp_nonzero(c));
    }

    /// [`fill_checksum`](Self::fill_checksum) over an IPv4 pseudo-header.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        let p = self.pseudo_v4(src, dst);
        self.fill_checksum(p);
    }

    /// [`fill_checksum`](Self::fill_checksum) over an IPv6 pseudo-header.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let p = self.pseudo_v6(src, dst);
        self.fill_checksum(p);
    }

    /// Set the source port and patch the checksum incrementally, keeping a
    /// zero checksum zero. Returns the old port.
    #[inline]
    pub fn set_src_port_incremental(&mut self, port: u16) -> u16 {
        let old = self.src_port();
        let c = checksum::udp_update16(self.checksum(), old, port);
        self.set_src_port(port);
        self.set_checksum(c);
        old
    }

    /// Set the destination port and patch the checksum incrementally, keeping
    /// a zero checksum zero. Returns the old port.
    #[inline]
    pub fn set_dst_port_incremental(&mut self, port: u16) -> u16 {
        let old = self.dst_port();
        let c = checksum::udp_update16(self.checksum(), old, port);
        self.set_dst_port(port);
        self.set_checksum(c);
        old
    }

    /// Patch the checksum for a pseudo-header change, e.g. an IP address
    /// rewritten by NAT from `old` to `new`, with the UDP zero rule.
    #[inline]
    pub fn patch_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::udp_update_bytes(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// The payload (bounded by the length field), mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        clamped_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);

    // DNS query header fragment: 192.168.0.1:53000 -> 8.8.8.8:53, 12-byte
    // payload, then 2 bytes of link padding past the length field.
    fn datagram() -> Vec<u8> {
        let mut v = vec![0xcf, 0x08, 0x00, 0x35, 0x00, 0x14, 0x00, 0x00];
        v.extend_from_slice(&[0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xee, 0xee]);
        v
    }

    #[test]
    fn read_fields() {
        let buf = datagram();
        let u = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(u.src_port(), 53000);
        assert_eq!(u.dst_port(), 53);
        assert_eq!(u.len(), 20);
        assert!(!u.is_empty());
        assert_eq!(u.checksum(), 0);
        assert_eq!(u.payload().len(), 12);
        assert_eq!(u.datagram().len(), 20);
        // No checksum: accepted over IPv4, rejected over IPv6.
        assert!(u.verify_checksum_v4(&SRC, &DST));
        let a = Ipv6Addr::LOCALHOST;
        assert!(!u.verify_checksum_v6(&a, &a));
    }

    #[test]
    fn fill_and_verify() {
        let mut buf = datagram();
        let mut u = UdpPacket::new_checked(&mut buf[..]).unwrap();
        u.fill_checksum_v4(&SRC, &DST);
        // By hand: pseudo c0a8+0001+0808+0808+0011+0014 = 0xd0de; datagram
        // cf08+0035+0014+1234+0100+0001 = 0xe286; total 0x1_b364 -> 0xb365.
        assert_eq!(u.checksum(), !0xb365);
        assert!(u.verify_checksum_v4(&SRC, &DST));
        // Padding is outside the checksum.
        buf[20] = 0;
        let u = UdpPacket::new_checked(&buf[..]).unwrap();
        assert!(u.verify_checksum_v4(&SRC, &DST));

        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let mut buf = datagram();
        let mut u = UdpPacket::new_checked(&mut buf[..]).unwrap();
        u.fill_checksum_v6(&s, &s);
        assert!(u.verify_checksum_v6(&s, &s));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the last payload word so that the checksum computes to zero.
        let mut buf = datagram();
        let mut u = UdpPacket::new_checked(&mut buf[..]).unwrap();
        let p = checksum::pseudo_v4(SRC.octets(), DST.octets(), 17, 20);
        let rest = checksum::fold(checksum::sum16(u.datagram(), p));
        u.payload_mut()[10..12].copy_from_slice(&(!rest).to_be_bytes());
        u.fill_checksum(p);
        assert_eq!(u.checksum(), 0xffff);
        assert!(u.verify_checksum(p));
    }

    #[test]
    fn nat_rewrite_keeps_zero_rule() {
        let new_src = Ipv4Addr::new(203, 0, 113, 1);
        // No checksum: stays zero through rewrites.
        let mut buf = datagram();
        let mut u = UdpPacket::new_checked(&mut buf[..]).unwrap();
        u.set_src_port_incremental(1024);
        u.patch_checksum(&SRC.octets(), &new_src.octets());
        assert_eq!(u.checksum(), 0);
        // With a checksum: exact.
        u.set_src_port(53000);
        u.fill_checksum_v4(&SRC, &DST);
        assert_eq!(u.set_src_port_incremental(1024), 53000);
        u.patch_checksum(&SRC.octets(), &new_src.octets());
        assert!(u.verify_checksum_v4(&new_src, &DST));
        assert_eq!(u.set_dst_port_incremental(5353), 53);
        assert!(u.verify_checksum_v4(&new_src, &DST));
    }

    #[test]
    fn validation_errors() {
        let buf = datagram();
        let check = |b: &[u8]| UdpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&buf[..7]), Err(Error::Truncated));
        assert_eq!(check(&buf[..19]), Err(Error::LengthExceedsBuffer));
        let mut short = buf.clone();
        short[5] = 7;
        assert_eq!(check(&short), Err(Error::LengthTooShort));
        let mut empty = buf.clone();
        empty[5] = 8;
        let u = UdpPacket::new_checked(&empty[..]).unwrap();
        assert!(u.is_empty() && u.payload().is_empty());
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 10];
        let mut u = UdpPacket::new_unchecked(&mut buf[..]);
        u.set_src_port(1);
        u.set_dst_port(2);
        u.set_len(10);
        u.set_checksum(3);
        u.payload_mut().copy_from_slice(&[4, 5]);
        assert_eq!(buf, [0, 1, 0, 2, 0, 10, 0, 3, 4, 5]);
        assert_eq!(UdpPacket::new_unchecked(&buf[..]).into_inner().len(), 10);
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(u) = UdpPacket::new_checked(&data[..]) {
                let _ = (u.src_port(), u.dst_port(), u.checksum(), u.datagram());
                let _ = (u.verify_checksum_v4(&SRC, &DST), u.is_empty());
                prop_assert_eq!(u.payload().len() + 8, usize::from(u.len()));
            }
        }

        #[test]
        fn incremental_equals_fill(sp in any::<u16>(), a in any::<[u8; 4]>(),
                                   payload in prop::collection::vec(any::<u8>(), 0..30)) {
            let mut buf = vec![0xcf, 0x08, 0x00, 0x35, 0, 0, 0, 0];
            buf.extend_from_slice(&payload);
            let len = buf.len() as u16;
            let mut u = UdpPacket::new_unchecked(&mut buf[..]);
            u.set_len(len);
            u.fill_checksum_v4(&SRC, &DST);
            u.set_src_port_incremental(sp);
            u.patch_checksum(&SRC.octets(), &a);
            let inc = u.checksum();
            u.fill_checksum_v4(&Ipv4Addr::from(a), &DST);
            prop_assert_eq!(inc, u.checksum());
        }
    }
}
