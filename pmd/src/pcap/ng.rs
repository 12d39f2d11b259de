//! pcapng block layout: block type numbers, minimum block lengths, interface options and
//! timestamp conversion.
//!
//! Kept apart from the reader's I/O so the arithmetic on untrusted fields (option walking,
//! resolutions such as 10^-127 or 2^-100, signed offsets) is pure and tested on its own.

use super::{get_u16, get_u64};

/// Section Header Block type; its bytes read the same in both byte orders.
pub(super) const SHB: u32 = 0x0A0D_0D0A;
/// Interface Description Block.
pub(super) const IDB: u32 = 1;
/// Obsolete Packet Block.
pub(super) const PB: u32 = 2;
/// Simple Packet Block.
pub(super) const SPB: u32 = 3;
/// Enhanced Packet Block.
pub(super) const EPB: u32 = 6;

/// Byte-order magic of a section header, as the bytes appear in a big-endian section.
pub(super) const BOM_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
/// Byte-order magic of a section header, as the bytes appear in a little-endian section.
pub(super) const BOM_LE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];

/// Smallest valid total length (header, fixed fields and trailer) of a block of type `ty`.
pub(super) fn min_block_len(ty: u32) -> u32 {
    match ty {
        SHB => 28,
        IDB => 20,
        PB | EPB => 32,
        SPB => 16,
        _ => 12,
    }
}

/// Per-interface state from an Interface Description Block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Iface {
    /// Link type.
    pub linktype: u32,
    /// Snapshot length (0: unlimited).
    pub snaplen: u32,
    /// `if_tsresol`: bit 7 clear, 10^-n seconds; set, 2^-n seconds. Default 6 (microseconds).
    pub tsresol: u8,
    /// `if_tsoffset`: seconds added to every timestamp.
    pub tsoffset: i64,
}

/// Option code `if_tsresol`.
const OPT_TSRESOL: u16 = 9;
/// Option code `if_tsoffset`.
const OPT_TSOFFSET: u16 = 14;

/// Parses an IDB body (after the block header, before the trailer).
pub(super) fn parse_idb(be: bool, body: &[u8]) -> Result<Iface, String> {
    if body.len() < 8 {
        return Err(format!(
            "interface description block body of {} bytes",
            body.len()
        ));
    }
    let mut iface = Iface {
        linktype: u32::from(get_u16(be, body, 0)),
        snaplen: super::get_u32(be, body, 4),
        tsresol: 6,
        tsoffset: 0,
    };
    let mut rest = &body[8..];
    while rest.len() >= 4 {
        let code = get_u16(be, rest, 0);
        let len = usize::from(get_u16(be, rest, 2));
        if code == 0 {
            break; // opt_endofopt
        }
        let Some(value) = rest.get(4..4 + len) else {
            return Err(format!(
                "interface option {code} of {len} bytes overruns the block"
            ));
        };
        match (code, len) {
            (OPT_TSRESOL, 1) => iface.tsresol = value[0],
            (OPT_TSOFFSET, 8) => iface.tsoffset = get_u64(be, value, 0) as i64,
            (OPT_TSRESOL | OPT_TSOFFSET, _) => {
                return Err(format!("interface option {code} has bad length {len}"));
            }
            _ => {}
        }
        // Values are padded to 32 bits; a missing final pad simply ends the list.
        rest = rest.get(4 + len.next_multiple_of(4)..).unwrap_or_default();
    }
    Ok(iface)
}

/// Converts a raw 64-bit pcapng timestamp to nanoseconds since the epoch, saturating at the
/// ends of the `u64` range.
pub(super) fn ts_to_ns(ts: u64, iface: &Iface) -> u64 {
    const NS: u128 = 1_000_000_000;
    let exp = u32::from(iface.tsresol & 0x7f);
    let ns: u128 = if iface.tsresol & 0x80 != 0 {
        (u128::from(ts) * NS) >> exp
    } else if exp <= 9 {
        u128::from(ts) * 10u128.pow(9 - exp)
    } else {
        // ts < 10^20, so any divisor of 10^20 or more leaves 0.
        10u128
            .checked_pow(exp - 9)
            .map_or(0, |d| u128::from(ts) / d)
    };
    let ns = ns as i128 + i128::from(iface.tsoffset) * NS as i128;
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(tsresol: u8, tsoffset: i64) -> Iface {
        Iface {
            linktype: 1,
            snaplen: 0,
            tsresol,
            tsoffset,
        }
    }

    #[test]
    fn timestamp_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, &iface(6, 0)), 1_500_000_000);
        assert_eq!(ts_to_ns(7, &iface(9, 0)), 7);
        assert_eq!(ts_to_ns(3, &iface(0, 0)), 3_000_000_000);
        assert_eq!(ts_to_ns(12_345, &iface(12, 0)), 12);
        assert_eq!(ts_to_ns(u64::MAX, &iface(127, 0)), 0);
        assert_eq!(ts_to_ns(u64::MAX, &iface(29, 0)), 0);
        assert_eq!(ts_to_ns(u64::MAX, &iface(28, 0)), 1);
        assert_eq!(ts_to_ns(u64::MAX, &iface(10, 0)), u64::MAX / 10);
        // 2^-10 s: 1024 ticks per second.
        assert_eq!(ts_to_ns(1536, &iface(0x8a, 0)), 1_500_000_000);
        assert_eq!(ts_to_ns(u64::MAX, &iface(0xff, 0)), 0);
        assert_eq!(ts_to_ns(5, &iface(0x80, 0)), 5_000_000_000);
        // Saturation both ways.
        assert_eq!(ts_to_ns(u64::MAX, &iface(0, 0)), u64::MAX);
        assert_eq!(ts_to_ns(1, &iface(0, -2)), 0);
        assert_eq!(ts_to_ns(1, &iface(0, i64::MIN)), 0);
        assert_eq!(ts_to_ns(0, &iface(0, i64::MAX)), u64::MAX);
        assert_eq!(ts_to_ns(1_000_000, &iface(6, 100)), 101_000_000_000);
    }

    fn opt(be: bool, code: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [code, value.len() as u16] {
            v.extend(if be { x.to_be_bytes() } else { x.to_le_bytes() });
        }
        v.extend(value);
        v.resize(v.len().next_multiple_of(4), 0);
        v
    }

    #[test]
    fn idb_options() {
        for be in [false, true] {
            let mut body = if be {
                [0, 1, 0, 0, 0, 0, 0x10, 0]
            } else {
                [1, 0, 0, 0, 0, 0x10, 0, 0]
            }
            .to_vec();
            body.extend(opt(be, 2, b"eth0"));
            body.extend(opt(be, OPT_TSRESOL, &[9]));
            let off = if be {
                (-5i64).to_be_bytes()
            } else {
                (-5i64).to_le_bytes()
            };
            body.extend(opt(be, OPT_TSOFFSET, &off));
            body.extend(opt(be, 0, &[]));
            body.extend(opt(be, OPT_TSRESOL, &[3])); // after end of options: ignored
            assert_eq!(
                parse_idb(be, &body),
                Ok(Iface {
                    linktype: 1,
                    snaplen: 4096,
                    tsresol: 9,
                    tsoffset: -5
                })
            );

            let mut bad = body[..8].to_vec();
            bad.extend(opt(be, OPT_TSRESOL, &[9, 9]));
            assert!(parse_idb(be, &bad).unwrap_err().contains("bad length 2"));
            let mut overrun = body[..8].to_vec();
            overrun.extend(&opt(be, 2, b"eth0")[..6]);
            assert!(parse_idb(be, &overrun).unwrap_err().contains("overruns"));
        }
        assert!(parse_idb(false, &[1, 0, 0]).is_err());
        // No options, and a trailing fragment too short for an option header.
        assert_eq!(
            parse_idb(false, &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0])
                .unwrap()
                .tsresol,
            6
        );
    }
}
