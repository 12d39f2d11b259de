//! IEEE 802.1Q (C-tag) and 802.1ad (S-tag) VLAN tags.
//!
//! A tag is four bytes: the TPID (0x8100, 0x88a8 or 0x9100), which sits where
//! the EtherType would and is therefore read by whoever found the tag, then
//! the 16-bit TCI (priority code point, drop-eligible indicator, VLAN id) and
//! the inner EtherType. This view starts *after* the TPID, at the TCI, so that
//! it lines up with [`EthernetFrame::payload`](super::EthernetFrame::payload)
//! or with the payload of an outer tag.

use super::{be16, set_be16, Error};

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const HEADER_LEN: usize = 4;
}

/// Length of the part of a tag this view covers (TCI + inner EtherType).
pub const HEADER_LEN: usize = field::HEADER_LEN;

/// A view of a VLAN tag's TCI and inner EtherType, followed by the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    /// Wrap `buffer` without any check.
    #[inline(always)]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanHeader { buffer }
    }

    /// Wrap `buffer` after checking that it holds the 4 bytes of the tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < field::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(VlanHeader { buffer })
    }

    /// Give back the buffer.
    #[inline(always)]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The raw tag control information.
    #[inline(always)]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI)
    }

    /// Priority code point (3 bits).
    #[inline(always)]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop-eligible indicator.
    #[inline(always)]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    #[inline(always)]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// EtherType of what follows the tag (possibly another tag's TPID).
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the tag.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    /// Set the raw tag control information.
    #[inline(always)]
    pub fn set_tci(&mut self, tci: u16) {
        set_be16(self.buffer.as_mut(), field::TCI, tci);
    }

    /// Set the priority code point (low 3 bits of `pcp` are used).
    #[inline(always)]
    pub fn set_pcp(&mut self, pcp: u8) {
        let tci = (self.tci() & 0x1fff) | (u16::from(pcp & 0x7) << 13);
        self.set_tci(tci);
    }

    /// Set the drop-eligible indicator.
    #[inline(always)]
    pub fn set_dei(&mut self, dei: bool) {
        let tci = (self.tci() & !0x1000) | if dei { 0x1000 } else { 0 };
        self.set_tci(tci);
    }

    /// Set the VLAN identifier (low 12 bits of `vid` are used).
    #[inline(always)]
    pub fn set_vid(&mut self, vid: u16) {
        let tci = (self.tci() & 0xf000) | (vid & 0x0fff);
        self.set_tci(tci);
    }

    /// Set the inner EtherType.
    #[inline(always)]
    pub fn set_ethertype(&mut self, t: u16) {
        set_be16(self.buffer.as_mut(), field::ETHERTYPE, t);
    }

    /// Everything after the tag, mutable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethertype;

    #[test]
    fn read_tag() {
        // PCP 5, DEI 1, VID 100 (0x064), inner IPv4.
        let bytes = [0xb0, 0x64, 0x08, 0x00, 0x45];
        let t = VlanHeader::new_checked(&bytes[..]).unwrap();
        assert_eq!(t.tci(), 0xb064);
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.vid(), 100);
        assert_eq!(t.ethertype(), ethertype::IPV4);
        assert_eq!(t.payload(), &[0x45]);
    }

    #[test]
    fn write_tag() {
        let mut bytes = [0u8; 4];
        let mut t = VlanHeader::new_checked(&mut bytes[..]).unwrap();
        t.set_vid(0xfff);
        t.set_pcp(7);
        t.set_dei(false);
        t.set_ethertype(ethertype::VLAN);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (7, false, 0xfff));
        t.set_vid(0x1001);
        t.set_dei(true);
        assert_eq!((t.pcp(), t.dei(), t.vid()), (7, true, 1));
        assert_eq!(bytes, [0xf0, 0x01, 0x81, 0x00]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            VlanHeader::new_checked(&[0u8; 3][..]).unwrap_err(),
            Error::Truncated
        );
    }
}
