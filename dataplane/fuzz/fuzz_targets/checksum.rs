//! RFC 1624 incremental updates against a full recompute.
//!
//! Input layout: byte 0 picks the word to change, bytes 1..3 are a 16-bit
//! selector / new value, bytes 3..19 new bytes for the 32-bit and 16-byte
//! updates, the rest is the "header" (its first word forced non-zero, as in
//! every real header, since an all-zero buffer has the two-zeros ambiguity of
//! ones-complement arithmetic).

#![no_main]

use dataplane::wire::checksum::{
    checksum, fold, pseudo_v4, sum16, udp_nonzero, udp_update16, udp_update_bytes, update16,
    update32, update_bytes, verify,
};
use libfuzzer_sys::fuzz_target;

fn naive(data: &[u8], initial: u32) -> u16 {
    let mut s = u64::from(initial);
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        s += u64::from(w);
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 19 {
        return;
    }
    let (ctl, rest) = data.split_at(19);
    let initial = u32::from_be_bytes([ctl[0], ctl[1], ctl[2], ctl[3]]);
    assert_eq!(fold(sum16(rest, initial)), naive(rest, initial));
    assert_eq!(fold(sum16(data, 0)), naive(data, 0));

    // An even-length header with a non-zero first word.
    let mut h = rest.to_vec();
    if h.len() % 2 == 1 {
        h.pop();
    }
    if h.len() < 4 {
        return;
    }
    if h[0] == 0 && h[1] == 0 {
        h[0] = 0x45;
    }
    let words = h.len() / 2;
    let i = 1 + usize::from(ctl[0]) % (words - 1);
    let new16 = u16::from_be_bytes([ctl[1], ctl[2]]);

    // 16-bit update.
    let hc = checksum(&h);
    let old = u16::from_be_bytes([h[2 * i], h[2 * i + 1]]);
    h[2 * i..2 * i + 2].copy_from_slice(&new16.to_be_bytes());
    let full = checksum(&h);
    assert_eq!(update16(hc, old, new16), full);
    assert!(verify(
        &{
            let mut with = h.clone();
            with.extend_from_slice(&full.to_be_bytes());
            with
        },
        0
    ));
    // UDP rule on the same change.
    assert_eq!(udp_update16(udp_nonzero(hc), old, new16), udp_nonzero(full));
    assert_eq!(udp_update16(0, old, new16), 0);

    // 32-bit update.
    if words >= 3 {
        let j = 1 + usize::from(ctl[0]) % (words - 2);
        let hc = checksum(&h);
        let old = u32::from_be_bytes([h[2 * j], h[2 * j + 1], h[2 * j + 2], h[2 * j + 3]]);
        let new = u32::from_be_bytes([ctl[3], ctl[4], ctl[5], ctl[6]]);
        h[2 * j..2 * j + 4].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update32(hc, old, new), checksum(&h));
    }

    // 16-byte (IPv6 address) update.
    if words >= 9 {
        let j = 1 + usize::from(ctl[0]) % (words - 8);
        let hc = checksum(&h);
        let old = h[2 * j..2 * j + 16].to_vec();
        h[2 * j..2 * j + 16].copy_from_slice(&ctl[3..19]);
        assert_eq!(update_bytes(hc, &old, &ctl[3..19]), checksum(&h));
    }

    // Force a recompute of exactly 0x0000 and check both paths agree.
    let hc = checksum(&h);
    let old = u16::from_be_bytes([h[2 * i], h[2 * i + 1]]);
    h[2 * i..2 * i + 2].copy_from_slice(&[0, 0]);
    let new = !fold(sum16(&h, 0));
    h[2 * i..2 * i + 2].copy_from_slice(&new.to_be_bytes());
    assert_eq!(checksum(&h), 0);
    assert_eq!(update16(hc, old, new), 0);
    assert_eq!(udp_update16(udp_nonzero(hc), old, new), 0xffff);

    // Pseudo-header address rewrite, as NAT does it, with the UDP rule.
    let src = [ctl[3], ctl[4], ctl[5], ctl[6]];
    let dst = [ctl[7], ctl[8], ctl[9], ctl[10]];
    let nsrc = [ctl[11], ctl[12], ctl[13], ctl[14]];
    let len = h.len() as u32;
    let c0 = udp_nonzero(!fold(sum16(&h, pseudo_v4(src, dst, 17, len))));
    let c1 = udp_nonzero(!fold(sum16(&h, pseudo_v4(nsrc, dst, 17, len))));
    assert_eq!(udp_update_bytes(c0, &src, &nsrc), c1);
});
