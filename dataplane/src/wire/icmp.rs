//! ICMP for IPv4 (RFC 792) and IPv6 (RFC 4443), and the message type numbers.
//!
//! Both views cover a whole ICMP message (the IP payload): type, code,
//! checksum, the 4-byte "rest of header" (identifier and sequence for echo,
//! MTU for Packet Too Big, pointer for Parameter Problem, ...), then data,
//! which for error messages begins with the offending packet's header. The
//! ICMPv4 checksum covers the message alone; the ICMPv6 checksum also covers
//! the IPv6 pseudo-header.
//!
//! `is_error()` exists for the rule that an ICMP error is never sent about an
//! ICMP error (RFC 1122 3.2.2, RFC 4443 2.4).

use std::net::Ipv6Addr;

use super::{array, be16, be32, checksum, ip_proto, set_be16, set_be32, Error};

/// ICMPv4 message types.
pub mod icmpv4_type {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 3;
    /// Source quench (deprecated, still an error message).
    pub const SOURCE_QUENCH: u8 = 4;
    /// Redirect.
    pub const REDIRECT: u8 = 5;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 9;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 10;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 12;
    /// Timestamp request.
    pub const TIMESTAMP: u8 = 13;
    /// Timestamp reply.
    pub const TIMESTAMP_REPLY: u8 = 14;

    /// True for the error messages (destination unreachable, source quench,
    /// redirect, time exceeded, parameter problem).
    #[inline(always)]
    pub const fn is_error(t: u8) -> bool {
        matches!(
            t,
            DEST_UNREACH | SOURCE_QUENCH | REDIRECT | TIME_EXCEEDED | PARAM_PROBLEM
        )
    }
}

/// ICMPv4 codes for the common error types.
pub mod icmpv4_code {
    /// Destination unreachable: network unreachable.
    pub const NET_UNREACH: u8 = 0;
    /// Destination unreachable: host unreachable.
    pub const HOST_UNREACH: u8 = 1;
    /// Destination unreachable: protocol unreachable.
    pub const PROTO_UNREACH: u8 = 2;
    /// Destination unreachable: port unreachable.
    pub const PORT_UNREACH: u8 = 3;
    /// Destination unreachable: fragmentation needed and DF set.
    pub const FRAG_NEEDED: u8 = 4;
    /// Destination unreachable: communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 13;
    /// Time exceeded: TTL exceeded in transit.
    pub const TTL_EXCEEDED: u8 = 0;
    /// Time exceeded: fragment reassembly time exceeded.
    pub const REASSEMBLY_EXCEEDED: u8 = 1;
}

/// ICMPv6 message types.
pub mod icmpv6_type {
    /// Destination unreachable.
    pub const DEST_UNREACH: u8 = 1;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Multicast listener query.
    pub const MLD_QUERY: u8 = 130;
    /// Multicast listener report (v1).
    pub const MLD_REPORT: u8 = 131;
    /// Multicast listener done.
    pub const MLD_DONE: u8 = 132;
    /// Router solicitation.
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router advertisement.
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect.
    pub const REDIRECT: u8 = 137;
    /// Multicast listener report (v2).
    pub const MLDV2_REPORT: u8 = 143;

    /// True for error messages (types 0 to 127).
    #[inline(always)]
    pub const fn is_error(t: u8) -> bool {
        t < 128
    }
}

/// ICMPv6 codes for the common error types.
pub mod icmpv6_code {
    /// Destination unreachable: no route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Destination unreachable: administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Destination unreachable: address unreachable.
    pub const ADDR_UNREACH: u8 = 3;
    /// Destination unreachable: port unreachable.
    pub const PORT_UNREACH: u8 = 4;
    /// Time exceeded: hop limit exceeded in transit.
    pub const HOP_LIMIT_EXCEEDED: u8 = 0;
    /// Time exceeded: fragment reassembly time exceeded.
    pub const REASSEMBLY_EXCEEDED: u8 = 1;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: usize = 8;
    pub const ND_TARGET: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = field::DATA;

macro_rules! icmp_common {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Wrap `buffer` without any check.
            #[inline(always)]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wrap `buffer` after checking that it holds the 8-byte header.
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Self, Error> {
                if buffer.as_ref().len() < HEADER_LEN {
                    return Err(Error::Truncated);
                }
                Ok($name { buffer })
            }

            /// Give back the buffer.
            #[inline(always)]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// Message type.
            #[inline(always)]
            pub fn msg_type(&self) -> u8 {
                self.buffer.as_ref()[field::TYPE]
            }

            /// Message code.
            #[inline(always)]
            pub fn code(&self) -> u8 {
                self.buffer.as_ref()[field::CODE]
            }

            /// Checksum field.
            #[inline(always)]
            pub fn checksum(&self) -> u16 {
                be16(self.buffer.as_ref(), field::CHECKSUM)
            }

            /// The 4-byte rest of header, as a big-endian word.
            #[inline(always)]
            pub fn rest_of_header(&self) -> u32 {
                be32(self.buffer.as_ref(), field::REST)
            }

            /// Echo identifier (bytes 4-5).
            #[inline(always)]
            pub fn identifier(&self) -> u16 {
                be16(self.buffer.as_ref(), field::IDENT)
            }

            /// Echo sequence number (bytes 6-7).
            #[inline(always)]
            pub fn sequence(&self) -> u16 {
                be16(self.buffer.as_ref(), field::SEQ)
            }

            /// Everything after the 8-byte header (for errors: the offending
            /// packet, starting at its IP header).
            #[inline(always)]
            pub fn data(&self) -> &[u8] {
                &self.buffer.as_ref()[field::DATA..]
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Set the message type.
            #[inline(always)]
            pub fn set_msg_type(&mut self, t: u8) {
                self.buffer.as_mut()[field::TYPE] = t;
            }

            /// Set the message code.
            #[inline(always)]
            pub fn set_code(&mut self, c: u8) {
                self.buffer.as_mut()[field::CODE] = c;
            }

            /// Set the checksum field.
            #[inline(always)]
            pub fn set_checksum(&mut self, c: u16) {
                set_be16(self.buffer.as_mut(), field::CHECKSUM, c);
            }

            /// Set the 4-byte rest of header.
            #[inline(always)]
            pub fn set_rest_of_header(&mut self, v: u32) {
                set_be32(self.buffer.as_mut(), field::REST, v);
            }

            /// Set the echo identifier.
            #[inline(always)]
            pub fn set_identifier(&mut self, id: u16) {
                set_be16(self.buffer.as_mut(), field::IDENT, id);
            }

            /// Set the echo sequence number.
            #[inline(always)]
            pub fn set_sequence(&mut self, seq: u16) {
                set_be16(self.buffer.as_mut(), field::SEQ, seq);
            }

            /// Everything after the 8-byte header, mutable.
            #[inline(always)]
            pub fn data_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[field::DATA..]
            }
        }
    };
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

icmp_common!(Icmpv4Packet);

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// True for error messages, see [`icmpv4_type::is_error`].
    #[inline(always)]
    pub fn is_error(&self) -> bool {
        icmpv4_type::is_error(self.msg_type())
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline(always)]
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// True if the checksum over the whole message is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.buffer.as_ref(), 0)
    }

    #[cold]
    fn is_all_zero_but_checksum(&self) -> bool {
        let b = self.buffer.as_ref();
        b[..field::CHECKSUM].iter().all(|&x| x == 0)
            && b[field::CHECKSUM + 2..].iter().all(|&x| x == 0)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Set the echo identifier and patch the checksum incrementally (the
    /// identifier is what NAPT rewrites for echo). Returns the old identifier.
    ///
    /// ICMPv4 has no pseudo-header, so a message can be all zeros (an echo
    /// reply with identifier, sequence and data all 0), whose checksum is
    /// `0xFFFF`; RFC 1624's update cannot tell that from a message summing
    /// to `0xFFFF` (checksum `0x0000`), so that rare result is checked by
    /// scanning the message.
    #[inline]
    pub fn set_identifier_incremental(&mut self, id: u16) -> u16 {
        let old = self.identifier();
        let mut c = checksum::update16(self.checksum(), old, id);
        self.set_identifier(id);
        if c == 0 && id == 0 && self.is_all_zero_but_checksum() {
            c = 0xffff;
        }
        self.set_checksum(c);
        old
    }

    /// Compute the checksum over the whole message and store it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

icmp_common!(Icmpv6Packet);

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// True for error messages (types below 128).
    #[inline(always)]
    pub fn is_error(&self) -> bool {
        icmpv6_type::is_error(self.msg_type())
    }

    /// MTU of a Packet Too Big message (bytes 4-7).
    #[inline(always)]
    pub fn mtu(&self) -> u32 {
        self.rest_of_header()
    }

    /// Target address of a neighbour solicitation/advertisement or redirect,
    /// if the message is long enough to hold one.
    #[inline]
    pub fn nd_target(&self) -> Option<Ipv6Addr> {
        let b = self.buffer.as_ref();
        if b.len() < field::ND_TARGET + 16 {
            return None;
        }
        Some(Ipv6Addr::from(array::<16>(b, field::ND_TARGET)))
    }

    #[inline]
    fn pseudo(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u32 {
        let len = self.buffer.as_ref().len() as u32;
        checksum::pseudo_v6(src.octets(), dst.octets(), ip_proto::ICMPV6, len)
    }

    /// True if the checksum over the pseudo-header (`src`, `dst`, this
    /// message's length) and the message is correct.
    #[inline]
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        checksum::verify(self.buffer.as_ref(), self.pseudo(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Set the echo identifier and patch the checksum incrementally. Returns
    /// the old identifier. (The pseudo-header's next-header field is never
    /// zero, so the RFC 1624 update is exact here.)
    #[inline]
    pub fn set_identifier_incremental(&mut self, id: u16) -> u16 {
        let old = self.identifier();
        let c = checksum::update16(self.checksum(), old, id);
        self.set_identifier(id);
        self.set_checksum(c);
        old
    }

    /// Compute the checksum over pseudo-header and message and store it.
    #[inline]
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let p = self.pseudo(src, dst);
        let c = !checksum::fold(checksum::sum16(self.buffer.as_ref(), p));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // `ping` echo request: id 0x1f2e, seq 1, 8 bytes of data.
    const ECHO: [u8; 16] = [
        0x08, 0x00, 0x00, 0x00, 0x1f, 0x2e, 0x00, 0x01, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67,
        0x68,
    ];

    #[test]
    fn icmpv4_echo() {
        let mut buf = ECHO;
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        // 0x0800 + 0x1f2e + 0x0001 + 0x6162 + 0x6364 + 0x6566 + 0x6768 = 0x1_b8c3
        // -> folded 0xb8c4 -> checksum 0x473b.
        assert_eq!(p.checksum(), 0x473b);
        assert!(p.verify_checksum());
        assert_eq!(p.msg_type(), icmpv4_type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.identifier(), 0x1f2e);
        assert_eq!(p.sequence(), 1);
        assert_eq!(p.rest_of_header(), 0x1f2e_0001);
        assert_eq!(p.data(), b"abcdefgh");
        assert!(!p.is_error());
        let old = p.set_identifier_incremental(0x4000);
        assert_eq!(old, 0x1f2e);
        assert!(p.verify_checksum());
        p.set_msg_type(icmpv4_type::ECHO_REPLY);
        p.fill_checksum();
        assert!(p.verify_checksum());
        p.data_mut()[0] = b'z';
        assert!(!p.verify_checksum());
    }

    #[test]
    fn icmpv4_all_zero_echo_reply() {
        // Echo reply, id 0, seq 0, zero data: checksum 0xFFFF. Rewriting the
        // id to 0 (or keeping it) must keep 0xFFFF, not flip to 0x0000.
        // (Found by the `parse` fuzz target.)
        let mut buf = [0u8; 12];
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.checksum(), 0xffff);
        p.set_identifier_incremental(0);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum());
        p.set_identifier_incremental(7);
        assert!(p.verify_checksum());
        p.set_identifier_incremental(0);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum());
        // A message that merely sums to 0xFFFF keeps its 0x0000 checksum.
        let mut buf = [0u8; 12];
        buf[8] = 0xff;
        buf[9] = 0xff;
        let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.checksum(), 0x0000);
        p.set_identifier_incremental(0);
        assert_eq!(p.checksum(), 0x0000);
        assert!(p.verify_checksum());
    }

    #[test]
    fn icmpv4_frag_needed() {
        let mut buf = [0u8; 36];
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(icmpv4_type::DEST_UNREACH);
        p.set_code(icmpv4_code::FRAG_NEEDED);
        p.set_rest_of_header(1400);
        p.fill_checksum();
        assert!(p.is_error());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(p.data().len(), 28);
        assert!(p.verify_checksum());
    }

    #[test]
    fn error_classification() {
        for t in 0..=255u8 {
            let v4 = matches!(t, 3 | 4 | 5 | 11 | 12);
            assert_eq!(icmpv4_type::is_error(t), v4, "v4 type {t}");
            assert_eq!(icmpv6_type::is_error(t), t < 128, "v6 type {t}");
        }
    }

    #[test]
    fn icmpv6_neighbor_solicitation() {
        // fe80::1 -> ff02::1:ff00:2, NS for fe80::2, no options.
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
        let target: Ipv6Addr = "fe80::2".parse().unwrap();
        let mut buf = [0u8; 24];
        buf[0] = icmpv6_type::NEIGHBOR_SOLICIT;
        buf[8..24].copy_from_slice(&target.octets());
        let mut p = Icmpv6Packet::new_checked(&mut buf[..]).unwrap();
        p.fill_checksum(&src, &dst);
        // By hand: pseudo-header fe80+1 + ff02+1+ff00+2 + 0x18 + 0x3a = 0x2_fcd8,
        // message 8700+fe80+2 = 0x1_8582; total 0x4_825a -> 0x825e -> !0x825e.
        assert_eq!(p.checksum(), 0x7da1);
        assert!(p.verify_checksum(&src, &dst));
        // (The pseudo-header sum is order-blind, so swapping src and dst would
        // still verify; a different address must not.)
        assert!(!p.verify_checksum(&target, &dst));
        assert_eq!(p.nd_target(), Some(target));
        assert!(!p.is_error());
        let short = Icmpv6Packet::new_checked(&buf[..8]).unwrap();
        assert_eq!(short.nd_target(), None);
    }

    #[test]
    fn icmpv6_packet_too_big() {
        let mut buf = [0u8; 48];
        let mut p = Icmpv6Packet::new_unchecked(&mut buf[..]);
        p.set_msg_type(icmpv6_type::PACKET_TOO_BIG);
        p.set_rest_of_header(1280);
        assert!(p.is_error());
        assert_eq!(p.mtu(), 1280);
        p.set_sequence(7);
        p.set_code(1);
        assert_eq!((p.code(), p.sequence()), (1, 7));
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Icmpv4Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Icmpv6Packet::new_checked(&ECHO[..7]).unwrap_err(),
            Error::Truncated
        );
    }

    proptest! {
        #[test]
        fn identifier_rewrite_equals_fill(data in prop::collection::vec(any::<u8>(), 8..40),
                                          id in any::<u16>(), zero_rest in any::<bool>()) {
            let mut buf = data;
            if zero_rest {
                buf.iter_mut().for_each(|b| *b = 0);
            }
            let mut p = Icmpv4Packet::new_checked(&mut buf[..]).unwrap();
            p.fill_checksum();
            p.set_identifier_incremental(id);
            let inc = p.checksum();
            p.fill_checksum();
            prop_assert_eq!(inc, p.checksum());
        }

        #[test]
        fn checked_never_panics(data in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Icmpv4Packet::new_checked(&data[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
                let _ = (p.identifier(), p.sequence(), p.data(), p.is_error());
                let _ = (p.next_hop_mtu(), p.verify_checksum());
            }
            if let Ok(p) = Icmpv6Packet::new_checked(&data[..]) {
                let a = Ipv6Addr::LOCALHOST;
                let _ = (p.mtu(), p.nd_target(), p.verify_checksum(&a, &a), p.is_error());
            }
        }
    }
}
