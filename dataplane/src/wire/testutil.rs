//! Frame builders for the unit tests of this module.

use super::checksum;

/// An Ethernet header with `tags` ((TPID, VID) pairs) and the final EtherType.
pub fn eth(et: u16, tags: &[(u16, u16)]) -> Vec<u8> {
    let mut v = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    for &(tpid, vid) in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&vid.to_be_bytes());
    }
    v.extend_from_slice(&et.to_be_bytes());
    v
}

/// A 20-byte IPv4 header (checksum filled) followed by `l4`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let len = (20 + l4.len()) as u16;
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, proto, 0, 0]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    let c = checksum::checksum(&v);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    v.extend_from_slice(l4);
    v
}

/// A 40-byte IPv6 header followed by `rest` (extension headers and L4).
pub fn ipv6(src: [u8; 16], dst: [u8; 16], nh: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    v.extend_from_slice(&[nh, 64]);
    v.extend_from_slice(&src);
    v.extend_from_slice(&dst);
    v.extend_from_slice(rest);
    v
}

/// An Ethernet frame carrying an IPv4 packet.
pub fn frame_v4(tags: &[(u16, u16)], src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800, tags);
    f.extend_from_slice(&ipv4(src, dst, proto, l4));
    f
}

/// An Ethernet frame carrying an IPv6 packet.
pub fn frame_v6(tags: &[(u16, u16)], src: [u8; 16], dst: [u8; 16], nh: u8, rest: &[u8]) -> Vec<u8> {
    let mut f = eth(0x86dd, tags);
    f.extend_from_slice(&ipv6(src, dst, nh, rest));
    f
}

/// A 20-byte TCP SYN header (checksum not filled).
pub fn tcp(sp: u16, dp: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sp.to_be_bytes());
    v.extend_from_slice(&dp.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    v
}

/// A UDP datagram (checksum not filled).
pub fn udp(sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&sp.to_be_bytes());
    v.extend_from_slice(&dp.to_be_bytes());
    v.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(payload);
    v
}

/// An ICMP header of type `ty` with `id`/`seq` in the rest of header, then
/// `data`.
pub fn icmp(ty: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0, 0, 0];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(data);
    v
}
