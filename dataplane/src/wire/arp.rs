//! ARP (RFC 826) for Ethernet and IPv4, the only combination a router needs.
//!
//! `new_checked` rejects any other hardware/protocol pairing with
//! [`Error::Unsupported`], so the fixed offsets below hold for every accepted
//! packet.

use std::net::Ipv4Addr;

use super::{array, be16, ethernet::MacAddr, ethertype, set_be16, Error};

/// ARP operation codes.
pub mod op {
    /// Request ("who has").
    pub const REQUEST: u16 = 1;
    /// Reply ("is at").
    pub const REPLY: u16 = 2;
}

/// Hardware type for Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const LEN: usize = 28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::LEN;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wrap `buffer` after checking its length (28 bytes) and that it is ARP
    /// for Ethernet (htype 1, hlen 6) and IPv4 (ptype 0x0800, plen 4).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < field::LEN {
            return Err(Error::Truncated);
        }
        if be16(b, field::HTYPE) != HTYPE_ETHERNET
            || be16(b, field::PTYPE) != ethertype::IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpPacket { buffer })
    }

    /// Give back the buffer.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    #[inline(always)]
    pub fn htype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline(always)]
    pub fn ptype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length (6).
    #[inline(always)]
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    #[inline(always)]
    pub fn plen(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation, see [`op`].
    #[inline(always)]
    pub fn operation(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline(always)]
    pub fn sender_hw(&self) -> MacAddr {
        MacAddr(array(self.buffer.as_ref(), field::SHA))
    }

    /// Sender protocol address.
    #[inline(always)]
    pub fn sender_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::SPA))
    }

    /// Target hardware address.
    #[inline(always)]
    pub fn target_hw(&self) -> MacAddr {
        MacAddr(array(self.buffer.as_ref(), field::THA))
    }

    /// Target protocol address.
    #[inline(always)]
    pub fn target_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(array::<4>(self.buffer.as_ref(), field::TPA))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Write the fixed Ethernet/IPv4 preamble (htype, ptype, hlen, plen).
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        set_be16(b, field::HTYPE, HTYPE_ETHERNET);
        set_be16(b, field::PTYPE, ethertype::IPV4);
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    /// Set the operation.
    #[inline(always)]
    pub fn set_operation(&mut self, op: u16) {
        set_be16(self.buffer.as_mut(), field::OPER, op);
    }

    /// Set the sender hardware address.
    #[inline(always)]
    pub fn set_sender_hw(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA..field::SHA + 6].copy_from_slice(&mac.0);
    }

    /// Set the sender protocol address.
    #[inline(always)]
    pub fn set_sender_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA..field::SPA + 4].copy_from_slice(&ip.octets());
    }

    /// Set the target hardware address.
    #[inline(always)]
    pub fn set_target_hw(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA..field::THA + 6].copy_from_slice(&mac.0);
    }

    /// Set the target protocol address.
    #[inline(always)]
    pub fn set_target_ip(&mut self, ip: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA..field::TPA + 4].copy_from_slice(&ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // "Who has 192.168.1.1? Tell 192.168.1.100" from 00:1b:21:3c:9d:f8.
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x00, 0x1b, 0x21, 0x3c, 0x9d, 0xf8, 0xc0,
        0xa8, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xa8, 0x01, 0x01,
    ];

    #[test]
    fn read_request() {
        let a = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(a.htype(), 1);
        assert_eq!(a.ptype(), 0x0800);
        assert_eq!((a.hlen(), a.plen()), (6, 4));
        assert_eq!(a.operation(), op::REQUEST);
        assert_eq!(a.sender_hw(), MacAddr([0x00, 0x1b, 0x21, 0x3c, 0x9d, 0xf8]));
        assert_eq!(a.sender_ip(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(a.target_hw(), MacAddr::ZERO);
        assert_eq!(a.target_ip(), Ipv4Addr::new(192, 168, 1, 1));
    }

    #[test]
    fn build_reply() {
        let mut buf = [0u8; 28];
        let mut a = ArpPacket::new_unchecked(&mut buf[..]);
        a.set_ethernet_ipv4();
        a.set_operation(op::REPLY);
        a.set_sender_hw(MacAddr([2, 0, 0, 0, 0, 1]));
        a.set_sender_ip(Ipv4Addr::new(192, 168, 1, 1));
        a.set_target_hw(MacAddr([0x00, 0x1b, 0x21, 0x3c, 0x9d, 0xf8]));
        a.set_target_ip(Ipv4Addr::new(192, 168, 1, 100));
        let a = ArpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(a.operation(), op::REPLY);
        assert_eq!(a.target_ip(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(&buf[..8], &[0, 1, 8, 0, 6, 4, 0, 2]);
    }

    #[test]
    fn rejects() {
        assert_eq!(
            ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(),
            Error::Truncated
        );
        let mut ipv6ish = REQUEST;
        ipv6ish[2] = 0x86;
        ipv6ish[3] = 0xdd;
        assert_eq!(
            ArpPacket::new_checked(&ipv6ish[..]).unwrap_err(),
            Error::Unsupported
        );
        let mut bad_hlen = REQUEST;
        bad_hlen[4] = 8;
        assert_eq!(
            ArpPacket::new_checked(&bad_hlen[..]).unwrap_err(),
            Error::Unsupported
        );
    }
}
