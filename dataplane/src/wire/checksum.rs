//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The checksum is the ones-complement of the ones-complement sum of the data
//! taken as big-endian 16-bit words. Ones-complement addition is "add, then add
//! the carry back in" (end-around carry), and it has two useful properties:
//! it is associative and commutative, and since `2^64 ≡ 1 (mod 2^16 - 1)` a sum
//! taken 64 bits at a time and folded down at the end equals the sum taken 16
//! bits at a time. [`sum16`] uses that to consume 8 bytes per addition.
//!
//! Sums in this module are carried as `u32` values already folded to at most
//! `0xFFFF`, so any handful of them (a pseudo-header sum and a data sum, say)
//! can be added with plain `+` and folded once with [`fold`]. A folded sum is
//! `0` only when every input was zero; any non-zero input folds into
//! `1..=0xFFFF`, so a freshly computed checksum is never `0xFFFF`.
//!
//! NAT and TTL rewrites must not re-sum whole packets: [`update16`],
//! [`update32`] and [`update_bytes`] patch a checksum for a changed field with
//! RFC 1624's eqn. 3, `HC' = ~(~HC + ~m + m')`, which (unlike RFC 1141's
//! eqn. 2) gives exactly the value a full recompute gives, including the
//! `0x0000` result. UDP adds one rule on top: a transmitted checksum of zero
//! means "no checksum", so a computed zero is sent as `0xFFFF`, and a datagram
//! sent without a checksum keeps none. The `udp_*` helpers apply that rule.

// The primitives live in `pmd` (its ports fill checksums a stage left to transmit time) and
// are the same functions here.
pub use pmd::csum::{checksum, fold, fold64, pseudo_v4, sum16, verify};

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1): source, destination,
/// 32-bit upper-layer length, three zero bytes + next header.
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, len: u32) -> u32 {
    let s = u64::from(sum16(&src, 0))
        + u64::from(sum16(&dst, 0))
        + u64::from(next_header)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff);
    u32::from(fold64(s))
}

/// RFC 1624 eqn. 3: the checksum `csum` updated for one 16-bit word (at an
/// even offset of the checksummed data) changing from `old` to `new`.
///
/// `HC' = ~(~HC + ~m + m')`. The result equals a full recompute whenever the
/// updated data is not all zeros (always true for real headers).
#[inline(always)]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let s = u32::from(!csum) + u32::from(!old) + u32::from(new);
    !fold(s)
}

/// [`update16`] for a 32-bit field at an even offset (two words at once), e.g.
/// an IPv4 address or a TCP sequence number.
#[inline(always)]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let s = u32::from(!csum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

/// [`update16`] for a run of bytes (e.g. a 4- or 16-byte address) that starts
/// at an even offset of the checksummed data and changes from `old` to `new`.
///
/// The two runs must have equal length; otherwise the result has no meaning
/// (it still never panics).
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    // The ones-complement sum of the complemented old words is the complement
    // of their sum.
    let s = u32::from(!csum) + u32::from(!fold(sum16(old, 0))) + sum16(new, 0);
    !fold(s)
}

/// The UDP transmit rule: a computed checksum of `0x0000` is sent as `0xFFFF`,
/// because zero on the wire means "no checksum" (RFC 768).
#[inline(always)]
pub fn udp_nonzero(csum: u16) -> u16 {
    if csum == 0 {
        0xffff
    } else {
        csum
    }
}

/// [`update16`] for a UDP checksum: a zero checksum ("none") stays zero, and
/// an updated checksum of `0x0000` becomes `0xFFFF`.
#[inline(always)]
pub fn udp_update16(csum: u16, old: u16, new: u16) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_nonzero(update16(csum, old, new))
    }
}

/// [`update32`] with the UDP zero rule of [`udp_update16`].
#[inline(always)]
pub fn udp_update32(csum: u16, old: u32, new: u32) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_nonzero(update32(csum, old, new))
    }
}

/// [`update_bytes`] with the UDP zero rule of [`udp_update16`].
#[inline]
pub fn udp_update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    if csum == 0 {
        0
    } else {
        udp_nonzero(update_bytes(csum, old, new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The slow, obvious RFC 1071 sum: one 16-bit word at a time.
    fn naive_sum(data: &[u8], initial: u32) -> u16 {
        let mut s = u64::from(initial);
        let mut i = 0;
        while i + 1 < data.len() {
            s += u64::from(u16::from_be_bytes([data[i], data[i + 1]]));
            i += 2;
        }
        if i < data.len() {
            s += u64::from(data[i]) << 8;
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    fn set_word(data: &mut [u8], i: usize, v: u16) {
        data[2 * i..2 * i + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn word(data: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([data[2 * i], data[2 * i + 1]])
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 0001 + f203 + f4f5 + f6f7 = 2ddf0 -> ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum16(&data, 0), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn known_ipv4_header() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&h, 0));
        h[10] = 0;
        h[11] = 0;
        assert_eq!(checksum(&h), 0xb861);
    }

    #[test]
    fn all_zero_and_empty() {
        assert_eq!(sum16(&[], 0), 0);
        assert_eq!(checksum(&[]), 0xffff);
        assert_eq!(checksum(&[0; 40]), 0xffff);
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(u32::MAX), 0xffff);
        assert_eq!(fold64(u64::MAX), 0xffff);
    }

    #[test]
    fn odd_length() {
        assert_eq!(sum16(&[0xab], 0), 0xab00);
        assert_eq!(sum16(&[0x12, 0x34, 0x56], 0), 0x1234 + 0x5600);
    }

    #[test]
    fn rfc1624_section4_example() {
        // The sum of the other header words is 0xCD7A; m = 0x5555 -> 0x3285.
        let c = 0xcd7a_u32;
        let hc = !fold(c + 0x5555);
        assert_eq!(hc, 0xdd2f);
        // Recompute gives ~0xFFFF = 0x0000 ...
        assert_eq!(!fold(c + 0x3285), 0x0000);
        // ... and so does eqn. 3 (RFC 1141's eqn. 2 would give 0xFFFF).
        assert_eq!(update16(hc, 0x5555, 0x3285), 0x0000);
        // UDP must send that zero as 0xFFFF.
        assert_eq!(udp_update16(hc, 0x5555, 0x3285), 0xffff);
    }

    #[test]
    fn rfc1624_errata_4782_unchanged_field() {
        // HC = 0x0000 and the field does not change: eqn. 3 with end-around
        // carry keeps 0x0000 (the errata's 0xFFFF comes from dropping the carry).
        assert_eq!(update16(0x0000, 0x5555, 0x5555), 0x0000);
        assert_eq!(update32(0x0000, 0x5555_1234, 0x5555_1234), 0x0000);
        assert_eq!(update_bytes(0x0000, &[1, 2, 3, 4], &[1, 2, 3, 4]), 0x0000);
        // And an unchanged field leaves any checksum alone.
        assert_eq!(update16(0xb861, 0x1234, 0x1234), 0xb861);
    }

    #[test]
    fn udp_zero_means_none() {
        assert_eq!(udp_update16(0, 0x1234, 0x4321), 0);
        assert_eq!(udp_update32(0, 1, 2), 0);
        assert_eq!(udp_update_bytes(0, &[10, 0, 0, 1], &[192, 168, 0, 1]), 0);
        assert_eq!(udp_nonzero(0), 0xffff);
        assert_eq!(udp_nonzero(0x1234), 0x1234);
    }

    #[test]
    fn pseudo_headers() {
        // 192.168.0.1 -> 192.168.0.199, UDP, length 0x5f.
        let s = pseudo_v4([192, 168, 0, 1], [192, 168, 0, 199], 17, 0x5f);
        assert_eq!(
            s,
            u32::from(fold(0xc0a8 + 0x0001 + 0xc0a8 + 0x00c7 + 17 + 0x5f))
        );
        let mut a = [0u8; 16];
        a[0] = 0xfe;
        a[1] = 0x80;
        a[15] = 1;
        let mut b = a;
        b[15] = 2;
        let s6 = pseudo_v6(a, b, 58, 0x0001_0008);
        assert_eq!(
            s6,
            u32::from(fold(0xfe80 + 1 + 0xfe80 + 2 + 58 + 0x0001 + 0x0008))
        );
    }

    /// Data of even length whose first word is non-zero, as in every real
    /// header (IPv4 version nibble, pseudo-header protocol).
    fn header() -> impl Strategy<Value = Vec<u8>> {
        (1u16..=0xffff, prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(w0, mut rest)| {
            if rest.len() % 2 == 1 {
                rest.push(0);
            }
            let mut v = w0.to_be_bytes().to_vec();
            v.extend(rest);
            v
        })
    }

    proptest! {
        #[test]
        fn sum16_matches_naive(data in prop::collection::vec(any::<u8>(), 0..300),
                               initial in any::<u32>(), skip in 0usize..8) {
            let d = &data[skip.min(data.len())..];
            prop_assert_eq!(sum16(d, initial), u32::from(naive_sum(d, initial)));
        }

        #[test]
        fn sum16_chains_on_even_split(data in prop::collection::vec(any::<u8>(), 0..200),
                                      split in 0usize..100) {
            let split = (split * 2).min(data.len() & !1);
            let (a, b) = data.split_at(split);
            prop_assert_eq!(fold(sum16(b, sum16(a, 0))), fold(sum16(&data, 0)));
        }

        #[test]
        fn update16_equals_recompute(mut data in header(), idx in any::<prop::sample::Index>(),
                                     new in any::<u16>()) {
            let words = data.len() / 2;
            // Never touch word 0, which keeps the data non-zero.
            let i = 1 + idx.index(words - 1);
            let hc = checksum(&data);
            let old = word(&data, i);
            set_word(&mut data, i, new);
            prop_assert_eq!(update16(hc, old, new), checksum(&data));
        }

        #[test]
        fn update16_hits_zero_checksum(mut data in header(), idx in any::<prop::sample::Index>()) {
            // Choose the new value so that the recomputed checksum is 0x0000.
            let words = data.len() / 2;
            let i = 1 + idx.index(words - 1);
            let hc = checksum(&data);
            let old = word(&data, i);
            set_word(&mut data, i, 0);
            let rest = fold(sum16(&data, 0));
            let new = !rest;
            set_word(&mut data, i, new);
            prop_assert_eq!(checksum(&data), 0x0000);
            prop_assert_eq!(update16(hc, old, new), 0x0000);
            prop_assert_eq!(udp_update16(udp_nonzero(hc), old, new), 0xffff);
            // And from that 0x0000 checksum, a further change is still exact.
            let j = 1 + (i % (words - 1));
            let old2 = word(&data, j);
            set_word(&mut data, j, old2.wrapping_add(0x1111));
            prop_assert_eq!(update16(0x0000, old2, old2.wrapping_add(0x1111)), checksum(&data));
        }

        #[test]
        fn update32_equals_recompute(mut data in header(), idx in any::<prop::sample::Index>(),
                                     new in any::<u32>()) {
            prop_assume!(data.len() >= 6);
            let words = data.len() / 2;
            let i = 1 + idx.index(words - 2);
            let hc = checksum(&data);
            let old = u32::from_be_bytes([data[2 * i], data[2 * i + 1], data[2 * i + 2], data[2 * i + 3]]);
            data[2 * i..2 * i + 4].copy_from_slice(&new.to_be_bytes());
            prop_assert_eq!(update32(hc, old, new), checksum(&data));
        }

        #[test]
        fn update_bytes_equals_recompute(mut data in header(), idx in any::<prop::sample::Index>(),
                                         new in prop::array::uniform16(any::<u8>()),
                                         long in any::<bool>()) {
            let n = if long { 16 } else { 4 };
            prop_assume!(data.len() >= 2 + n);
            let words = data.len() / 2;
            let i = 1 + idx.index(words - n / 2);
            let hc = checksum(&data);
            let old = data[2 * i..2 * i + n].to_vec();
            data[2 * i..2 * i + n].copy_from_slice(&new[..n]);
            prop_assert_eq!(update_bytes(hc, &old, &new[..n]), checksum(&data));
        }

        #[test]
        fn udp_update_equals_full_fill(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                                       new_src in any::<[u8; 4]>(), new_port in any::<u16>(),
                                       payload in prop::collection::vec(any::<u8>(), 0..64),
                                       disabled in any::<bool>()) {
            // A UDP datagram: ports, length, checksum, payload.
            let len = 8 + payload.len();
            let mut dgram = vec![0x30, 0x39, 0x00, 0x35];
            dgram.extend_from_slice(&(len as u16).to_be_bytes());
            dgram.extend_from_slice(&[0, 0]);
            dgram.extend_from_slice(&payload);
            let fill = |d: &[u8], s: [u8; 4]| {
                let p = pseudo_v4(s, dst, 17, len as u32);
                udp_nonzero(!fold(sum16(d, p)))
            };
            let csum = if disabled { 0 } else { fill(&dgram, src) };
            // SNAT: rewrite the source address (in the pseudo-header) and port.
            let c = udp_update_bytes(csum, &src, &new_src);
            let c = udp_update16(c, 0x3039, new_port);
            dgram[0..2].copy_from_slice(&new_port.to_be_bytes());
            if disabled {
                prop_assert_eq!(c, 0);
            } else {
                prop_assert_eq!(c, fill(&dgram, new_src));
                // The receiver's check passes.
                dgram[6..8].copy_from_slice(&c.to_be_bytes());
                prop_assert!(verify(&dgram, pseudo_v4(new_src, dst, 17, len as u32)));
            }
        }
    }
}
