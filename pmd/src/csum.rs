//! The Internet checksum (RFC 1071): the primitives, and filling an IPv4 packet's checksums at
//! transmit time.
//!
//! A stage that builds a packet may leave its IPv4 header and TCP/UDP checksums to the port
//! ([`crate::Mbuf::request_tx_csum`]): a device with checksum offload fills them (DPDK's
//! `RTE_MBUF_F_TX_*_CKSUM`), and for every other port the engine fills them here in software
//! before the packet leaves ([`fill_ipv4`]). The arithmetic is documented in the dataplane's
//! `wire::checksum`, which re-exports these functions and adds the incremental updates.

/// Fold a 64-bit ones-complement accumulator down to 16 bits.
#[inline(always)]
pub fn fold64(mut s: u64) -> u16 {
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Fold a 32-bit ones-complement accumulator down to 16 bits (end-around
/// carry). The result is `0` only if `sum` is `0`.
#[inline(always)]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xffff) + (sum >> 16);
    let s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Add `w` to the 64-bit ones-complement accumulator `acc` (end-around carry).
#[inline(always)]
fn add64(acc: u64, w: u64) -> u64 {
    let (s, carry) = acc.overflowing_add(w);
    s + u64::from(carry)
}

#[inline(always)]
fn be64(c: &[u8]) -> u64 {
    u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
}

/// Ones-complement sum of `data` as big-endian 16-bit words, added to
/// `initial`, returned folded to at most `0xFFFF`.
///
/// An odd final byte is taken as the high byte of a word padded with zero.
/// Sums can be chained (`sum16(b, sum16(a, 0))` is the sum of `a` then `b`)
/// only when `a` has even length, since words are aligned to the start of each
/// slice.
#[inline]
pub fn sum16(data: &[u8], initial: u32) -> u32 {
    // Two independent accumulators so consecutive add-with-carry chains can
    // overlap in the pipeline.
    let mut a = u64::from(initial);
    let mut b = 0u64;
    let mut blocks = data.chunks_exact(16);
    for c in &mut blocks {
        a = add64(a, be64(&c[0..8]));
        b = add64(b, be64(&c[8..16]));
    }
    let mut rest = blocks.remainder();
    if rest.len() >= 8 {
        a = add64(a, be64(&rest[0..8]));
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        b = add64(
            b,
            u64::from(u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]])),
        );
        rest = &rest[4..];
    }
    if rest.len() >= 2 {
        a = add64(a, u64::from(u16::from_be_bytes([rest[0], rest[1]])));
        rest = &rest[2..];
    }
    if let Some(&last) = rest.first() {
        b = add64(b, u64::from(last) << 8);
    }
    u32::from(fold64(add64(a, b)))
}

/// The Internet checksum of `data`: `!fold(sum16(data, 0))`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum16(data, 0))
}

/// True if `data` (which contains its checksum field) sums, together with
/// `initial` (a pseudo-header sum, or 0), to the ones-complement zero.
#[inline]
pub fn verify(data: &[u8], initial: u32) -> bool {
    fold(sum16(data, initial)) == 0xffff
}

/// Sum of the IPv4 pseudo-header used by TCP, UDP and other upper layers:
/// source, destination, zero byte + protocol, and upper-layer length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u32) -> u32 {
    let s = u32::from(u16::from_be_bytes([src[0], src[1]]))
        + u32::from(u16::from_be_bytes([src[2], src[3]]))
        + u32::from(u16::from_be_bytes([dst[0], dst[1]]))
        + u32::from(u16::from_be_bytes([dst[2], dst[3]]))
        + u32::from(proto)
        + (len >> 16)
        + (len & 0xffff);
    u32::from(fold(s))
}

/// What [`fill_ipv4`] and the DPDK offload need of an IPv4 packet at `l3`: its header length,
/// total length and the transport it carries (`Some(6 | 17)` with a whole TCP or UDP header in
/// an unfragmented packet), or `None` when the headers do not hold.
pub fn ipv4_layout(frame: &[u8], l3: usize) -> Option<(usize, usize, Option<u8>)> {
    let ip = frame.get(l3..)?;
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || tot < ihl || tot > ip.len() {
        return None;
    }
    let fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0;
    let l4 = match ip[9] {
        6 if !fragment && tot >= ihl + 20 => Some(6),
        17 if !fragment && tot >= ihl + 8 => Some(17),
        _ => None,
    };
    Some((ihl, tot, l4))
}

/// The IPv4 pseudo-header sum of the packet at `l3` (as [`pseudo_v4`]), for a transport of
/// `len` bytes.
pub fn ipv4_pseudo(frame: &[u8], l3: usize, len: usize) -> u32 {
    let ip = &frame[l3..l3 + 20];
    pseudo_v4(
        [ip[12], ip[13], ip[14], ip[15]],
        [ip[16], ip[17], ip[18], ip[19]],
        ip[9],
        len as u32,
    )
}

/// Fills the IPv4 header checksum of the packet at `l3` in `frame`, and its TCP or UDP checksum
/// when it carries a whole one unfragmented (a UDP checksum that computes to zero is sent as
/// `0xFFFF`). Returns false, changing nothing, when the headers do not hold.
pub fn fill_ipv4(frame: &mut [u8], l3: usize) -> bool {
    let Some((ihl, tot, l4)) = ipv4_layout(frame, l3) else {
        return false;
    };
    let ip = &mut frame[l3..l3 + tot];
    ip[10..12].fill(0);
    let c = checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    if let Some(proto) = l4 {
        let at = ihl + if proto == 6 { 16 } else { 6 };
        ip[at..at + 2].fill(0);
        let ph = ipv4_pseudo(ip, 0, tot - ihl);
        let mut c = !fold(sum16(&ip[ihl..], ph));
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        ip[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum of `data` summed 16 bits at a time, the plain way.
    fn slow(data: &[u8], init: u32) -> u16 {
        let mut s = init;
        for c in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn packet(proto: u8, payload: usize, frag: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        let l4 = if proto == 6 { 20 } else { 8 } + payload;
        let mut ip = vec![
            0x45,
            0,
            0,
            0,
            0xab,
            0xcd,
            (frag >> 8) as u8,
            frag as u8,
            9,
            proto,
        ];
        ip.extend_from_slice(&[0xee, 0xee, 10, 1, 2, 3, 192, 0, 2, 77]);
        ip[2..4].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
        f.extend(ip);
        f.extend((0..l4).map(|i| (i * 37 + 11) as u8));
        f
    }

    #[test]
    fn fills_what_a_from_scratch_sum_gives() {
        for proto in [6u8, 17, 1] {
            for payload in [0usize, 1, 7, 64, 1001] {
                let mut f = packet(proto, payload, 0);
                assert!(fill_ipv4(&mut f, 14));
                let ip = &f[14..];
                assert_eq!(slow(&ip[..20], 0), 0, "header");
                let tot = ip.len();
                let ph = {
                    let mut s = u32::from(proto) + (tot - 20) as u32;
                    for c in ip[12..20].chunks(2) {
                        s += u32::from(u16::from_be_bytes([c[0], c[1]]));
                    }
                    s
                };
                match proto {
                    6 | 17 => assert_eq!(slow(&ip[20..], ph), 0, "{proto} {payload}"),
                    // Not TCP or UDP: the transport is left as it was.
                    _ => assert_eq!(ip[20..], packet(1, payload, 0)[34..]),
                }
            }
        }
    }

    #[test]
    fn fragments_get_only_their_header_and_bad_headers_nothing() {
        let mut f = packet(17, 100, 0x2000);
        let before = f.clone();
        assert!(fill_ipv4(&mut f, 14));
        assert_eq!(slow(&f[14..34], 0), 0);
        assert_eq!(
            f[34..],
            before[34..],
            "a fragment's transport is not summed"
        );
        for bad in [
            {
                let mut b = packet(6, 10, 0);
                b[14] = 0x65; // version 6
                b
            },
            {
                let mut b = packet(6, 10, 0);
                b[14] = 0x44; // IHL 4
                b
            },
            {
                let mut b = packet(6, 10, 0);
                b[17] = 0xff; // longer than the frame
                b
            },
            packet(6, 10, 0)[..30].to_vec(),
        ] {
            let mut c = bad.clone();
            assert!(!fill_ipv4(&mut c, 14));
            assert_eq!(c, bad);
        }
    }
}
