//! What several integration tests share: the Internet checksum computed here, sixteen bits at a
//! time the plain way, independently of the dataplane's own (`wire::checksum`), so that the
//! tests check the product's packets against arithmetic of their own.
#![allow(dead_code)] // each test file uses what it needs

/// The Internet checksum of `data` (an odd last byte padded with zero) added to `init`.
pub fn csum(data: &[u8], init: u32) -> u16 {
    let mut s = u64::from(init);
    for c in data.chunks(2) {
        s += u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The IPv4 pseudo-header sum for `len` bytes of protocol `proto`.
pub fn pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u32 {
    let mut s = u32::from(proto) + len as u32;
    for c in src.chunks(2).chain(dst.chunks(2)) {
        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    s
}
