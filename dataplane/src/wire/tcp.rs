//! TCP segment headers (RFC 9293).
//!
//! The view covers one segment: the IP payload, header through data. TCP has
//! no length field of its own, so the segment length (for the pseudo-header
//! and the checksum) is the length of the buffer the view wraps; wrap exactly
//! the IP payload ([`Ipv4Packet::payload`](super::Ipv4Packet::payload) already
//! excludes link padding).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, be32, checksum, clamped, clamped_mut, ip_proto, set_be16, set_be32, Error};

/// TCP flag bits, as found in byte 13 of the header ([`TcpPacket::flags`]).
pub mod flags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN-Echo.
    pub const ECE: u8 = 0x40;
    /// Congestion Window Reduced.
    pub const CWR: u8 = 0x80;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of a TCP header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wrap `buffer` after checking the fixed header fits, the data offset is
    /// at least 5 words and the header (options included) fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(b[field::DATA_OFFSET] >> 4) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if hl > b.len() {
            return Err(Error::Truncated);
        }
        Ok(TcpPacket { buffer })
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

    /// Sequence number.
    #[inline(always)]
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgment number.
    #[inline(always)]
    pub fn ack(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Data offset, in 32-bit words.
    #[inline(always)]
    pub fn data_offset(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] >> 4
    }

    /// Header length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.data_offset()) * 4
    }

    /// The eight flag bits, see [`flags`].
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    #[inline(always)]
    pub fn fin(&self) -> bool {
        self.flags() & flags::FIN != 0
    }

    /// SYN flag.
    #[inline(always)]
    pub fn syn(&self) -> bool {
        self.flags() & flags::SYN != 0
    }

    /// RST flag.
    #[inline(always)]
    pub fn rst(&self) -> bool {
        self.flags() & flags::RST != 0
    }

    /// ACK flag.
    #[inline(always)]
    pub fn ack_flag(&self) -> bool {
        self.flags() & flags::ACK != 0
    }

    /// Receive window.
    #[inline(always)]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline(always)]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len())
    }

    /// The segment data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamped(b, self.header_len(), b.len())
    }

    /// Segment length (header and data) as used in the pseudo-header.
    #[inline(always)]
    pub fn segment_len(&self) -> u32 {
        self.buffer.as_ref().len() as u32
    }

    /// True if the checksum is correct, given the pseudo-header sum `pseudo`
    /// (from [`checksum::pseudo_v4`] / [`checksum::pseudo_v6`] with protocol 6
    /// and length [`segment_len`](Self::segment_len)).
    #[inline]
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::verify(self.buffer.as_ref(), pseudo)
    }

    /// [`verify_checksum`](Self::verify_checksum) over an IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        self.verify_checksum(self.pseudo_v4(src, dst))
    }

    /// [`verify_checksum`](Self::verify_checksum) over an IPv6 pseudo-header.
    #[inline]
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.verify_checksum(self.pseudo_v6(src, dst))
    }

    #[inline]
    fn pseudo_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> u32 {
        checksum::pseudo_v4(
            src.octets(),
            dst.octets(),
            ip_proto::TCP,
            self.segment_len(),
        )
    }

    #[inline]
    fn pseudo_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u32 {
        checksum::pseudo_v6(
            src.octets(),
            dst.octets(),
            ip_proto::TCP,
            self.segment_len(),
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Set the sequence number.
    #[inline(always)]
    pub fn set_seq(&mut self, seq: u32) {
        set_be32(self.buffer.as_mut(), field::SEQ, seq);
    }

    /// Set the acknowledgment number.
    #[inline(always)]
    pub fn set_ack(&mut self, ack: u32) {
        set_be32(self.buffer.as_mut(), field::ACK, ack);
    }

    /// Set the data offset in 32-bit words (low 4 bits of `words`); the
    /// reserved bits and the AE bit in the same byte are kept.
    #[inline(always)]
    pub fn set_data_offset(&mut self, words: u8) {
        let b = self.buffer.as_mut();
        b[field::DATA_OFFSET] = (b[field::DATA_OFFSET] & 0x0f) | (words << 4);
    }

    /// Set the header length in bytes (a multiple of 4, 20 to 60).
    #[inline(always)]
    pub fn set_header_len(&mut self, len: usize) {
        self.set_data_offset((len / 4) as u8);
    }

    /// Set the eight flag bits.
    #[inline(always)]
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    /// Set the receive window.
    #[inline(always)]
    pub fn set_window(&mut self, w: u16) {
        set_be16(self.buffer.as_mut(), field::WINDOW, w);
    }

    /// Set the checksum field.
    #[inline(always)]
    pub fn set_checksum(&mut self, c: u16) {
        set_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Set the urgent pointer.
    #[inline(always)]
    pub fn set_urgent(&mut self, u: u16) {
        set_be16(self.buffer.as_mut(), field::URGENT, u);
    }

    /// Compute the checksum from the pseudo-header sum `pseudo` and store it.
    #[inline]
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = !checksum::fold(checksum::sum16(self.buffer.as_ref(), pseudo));
        self.set_checksum(c);
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

    /// Set the source port and patch the checksum incrementally. Returns the
    /// old port.
    #[inline]
    pub fn set_src_port_incremental(&mut self, port: u16) -> u16 {
        let old = self.src_port();
        let c = checksum::update16(self.checksum(), old, port);
        self.set_src_port(port);
        self.set_checksum(c);
        old
    }

    /// Set the destination port and patch the checksum incrementally. Returns
    /// the old port.
    #[inline]
    pub fn set_dst_port_incremental(&mut self, port: u16) -> u16 {
        let old = self.dst_port();
        let c = checksum::update16(self.checksum(), old, port);
        self.set_dst_port(port);
        self.set_checksum(c);
        old
    }

    /// Patch the checksum for a pseudo-header change, e.g. an IP address
    /// rewritten by NAT from `old` to `new` (4 or 16 bytes).
    #[inline]
    pub fn patch_checksum(&mut self, old: &[u8], new: &[u8]) {
        let c = checksum::update_bytes(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamped_mut(self.buffer.as_mut(), field::OPTIONS, hl)
    }

    /// The segment data, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        let len = b.len();
        clamped_mut(b, hl, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    // SYN 10.0.0.1:54321 -> 10.0.0.2:80, seq 0x12345678, window 64240,
    // options MSS 1460, SACK permitted, NOP, NOP... (12 bytes).
    const SYN: [u8; 32] = [
        0xd4, 0x31, 0x00, 0x50, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00, 0x80, 0x02, 0xfa,
        0xf0, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x01, 0x01, 0x01, 0x03,
        0x03, 0x07,
    ];

    #[test]
    fn read_syn() {
        let t = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(t.src_port(), 54321);
        assert_eq!(t.dst_port(), 80);
        assert_eq!(t.seq(), 0x1234_5678);
        assert_eq!(t.ack(), 0);
        assert_eq!(t.data_offset(), 8);
        assert_eq!(t.header_len(), 32);
        assert_eq!(t.flags(), flags::SYN);
        assert!(t.syn() && !t.ack_flag() && !t.fin() && !t.rst());
        assert_eq!(t.window(), 64240);
        assert_eq!(t.urgent(), 0);
        assert_eq!(t.options().len(), 12);
        assert_eq!(&t.options()[..4], &[2, 4, 0x05, 0xb4]);
        assert!(t.payload().is_empty());
        assert_eq!(t.segment_len(), 32);
    }

    #[test]
    fn checksum_v4() {
        let mut buf = SYN;
        let mut t = TcpPacket::new_checked(&mut buf[..]).unwrap();
        t.fill_checksum_v4(&SRC, &DST);
        // By hand: pseudo 0a00+0001+0a00+0002+6+0x20 = 0x1429, header words
        // d431+0050+1234+5678+0000+0000+8002+faf0+0000+0000+0204+05b4+0402
        // +0101+0103+0307 = 0x2_c8e4; 0x1429 + 0x2_c8e4 = 0x2_dd0d -> 0xdd0f.
        assert_eq!(t.checksum(), !0xdd0f);
        assert!(t.verify_checksum_v4(&SRC, &DST));
        assert!(!t.verify_checksum_v4(&SRC, &Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn checksum_v6() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut buf = SYN;
        let mut t = TcpPacket::new_checked(&mut buf[..]).unwrap();
        t.fill_checksum_v6(&s, &d);
        assert!(t.verify_checksum_v6(&s, &d));
        let p = checksum::pseudo_v6(s.octets(), d.octets(), 6, 32);
        assert!(t.verify_checksum(p));
    }

    #[test]
    fn nat_rewrite() {
        let mut buf = SYN;
        let mut t = TcpPacket::new_checked(&mut buf[..]).unwrap();
        t.fill_checksum_v4(&SRC, &DST);
        let new_src = Ipv4Addr::new(203, 0, 113, 9);
        assert_eq!(t.set_src_port_incremental(40000), 54321);
        t.patch_checksum(&SRC.octets(), &new_src.octets());
        assert!(t.verify_checksum_v4(&new_src, &DST));
        assert_eq!(t.set_dst_port_incremental(8080), 80);
        assert!(t.verify_checksum_v4(&new_src, &DST));
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 24];
        let mut t = TcpPacket::new_unchecked(&mut buf[..]);
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_seq(3);
        t.set_ack(4);
        t.set_header_len(20);
        t.set_flags(flags::ACK | flags::PSH | flags::FIN);
        t.set_window(5);
        t.set_urgent(6);
        t.payload_mut().copy_from_slice(b"data");
        assert!(t.options_mut().is_empty());
        let t = TcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!((t.src_port(), t.dst_port(), t.seq(), t.ack()), (1, 2, 3, 4));
        assert_eq!((t.window(), t.urgent()), (5, 6));
        assert!(t.fin() && t.ack_flag() && !t.syn());
        assert_eq!(t.flags() & flags::PSH, flags::PSH);
        assert_eq!(t.payload(), b"data");
    }

    #[test]
    fn validation_errors() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TcpPacket::new_checked(&SYN[..31]).unwrap_err(),
            Error::Truncated
        );
        let mut bad = SYN;
        bad[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bad[..]).unwrap_err(),
            Error::BadHeaderLen
        );
    }

    proptest! {
        #[test]
        fn checked_never_panics(data in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(t) = TcpPacket::new_checked(&data[..]) {
                let _ = (t.src_port(), t.dst_port(), t.seq(), t.ack(), t.flags());
                let _ = (t.window(), t.checksum(), t.urgent(), t.options(), t.payload());
                let _ = t.verify_checksum_v4(&SRC, &DST);
                prop_assert_eq!(t.header_len() + t.payload().len(), data.len());
            }
        }

        #[test]
        fn incremental_equals_fill(sp in any::<u16>(), dp in any::<u16>(), a in any::<[u8; 4]>(),
                                   payload in prop::collection::vec(any::<u8>(), 0..30)) {
            let mut buf = SYN.to_vec();
            buf.extend_from_slice(&payload);
            let mut t = TcpPacket::new_checked(&mut buf[..]).unwrap();
            t.fill_checksum_v4(&SRC, &DST);
            t.set_src_port_incremental(sp);
            t.set_dst_port_incremental(dp);
            t.patch_checksum(&DST.octets(), &a);
            let inc = t.checksum();
            t.fill_checksum_v4(&SRC, &Ipv4Addr::from(a));
            prop_assert_eq!(inc, t.checksum());
        }
    }
}
