//! Reading and writing capture files: classic libpcap and pcapng.
//!
//! The dataplane replays captures into its ports and records what leaves them, and the test
//! suites compare packets against captures taken by other tools. This module is the format
//! layer only: it turns a byte stream into timestamped records (and records back into a byte
//! stream) and knows nothing about packet buffers or protocols.
//!
//! * [`PcapReader`] reads classic pcap (either byte order, microsecond or nanosecond magic,
//!   version 2.4) and pcapng (several sections of either byte order, any number of interfaces,
//!   enhanced, simple and obsolete packet blocks; every other block type is skipped). It reuses
//!   one internal buffer, so a [`Record`] borrows the reader until the next call.
//! * [`PcapWriter`] writes classic little-endian pcap with a microsecond or nanosecond magic.
//!
//! Input is untrusted: every length is checked before it is used, buffers grow only as data
//! actually arrives (and never past [`MAX_BLOCK_LEN`]), and malformed input yields a
//! [`PcapError`] that names the file and the byte offset, never a panic.

mod ng;
mod reader;
mod writer;

pub use reader::PcapReader;
pub use writer::PcapWriter;

/// Link type number of Ethernet (`LINKTYPE_ETHERNET`).
pub const LINKTYPE_ETHERNET: u32 = 1;

/// Largest captured length accepted in a record (256 KiB, libpcap's maximum snapshot length).
/// Classic pcap records claiming more are [`PcapError::Corrupt`]; the writer refuses more.
pub const MAX_CAPLEN: u32 = 0x4_0000;

/// Largest pcapng block accepted (16 MiB); longer blocks are [`PcapError::Corrupt`].
pub const MAX_BLOCK_LEN: u32 = 16 << 20;

/// Why a capture file could not be read or written. Every message starts with the file name.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The underlying reader or writer failed (a short read is [`PcapError::Truncated`]).
    #[error("{path}: {source}")]
    Io {
        /// File name.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("{path}: not a pcap or pcapng file (magic {magic:#010x})")]
    BadMagic {
        /// File name.
        path: String,
        /// The first four bytes of the file, in file order (big-endian).
        magic: u32,
    },
    /// A classic pcap version other than 2.4, or a pcapng major version other than 1.
    #[error(
        "{path}: unsupported format version {major}.{minor} (pcap 2.4 and pcapng 1.x are read)"
    )]
    UnsupportedVersion {
        /// File name.
        path: String,
        /// Major version from the file or section header.
        major: u16,
        /// Minor version from the file or section header.
        minor: u16,
    },
    /// The file ends inside a header, record or block.
    #[error("{path}: byte {offset}: {what} truncated (need {need} bytes, have {have})")]
    Truncated {
        /// File name.
        path: String,
        /// Offset of the first byte of the truncated item.
        offset: u64,
        /// The truncated item, e.g. "record header", "record data", "block".
        what: &'static str,
        /// Bytes the item needs.
        need: u64,
        /// Bytes the file still had.
        have: u64,
    },
    /// A header field is impossible (absurd length, bad byte-order magic, unknown interface...).
    #[error("{path}: byte {offset}: {why}")]
    Corrupt {
        /// File name.
        path: String,
        /// Offset of the record or block holding the bad field.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A record's interface has a link type other than the one required with
    /// [`PcapReader::require_linktype`].
    #[error("{path}: interface {interface} has link type {linktype}, expected {expected}")]
    LinkType {
        /// File name.
        path: String,
        /// The interface's link type.
        linktype: u32,
        /// The interface (as in [`Record::interface`]).
        interface: u32,
        /// The required link type.
        expected: u32,
    },
    /// A record cannot be represented in the output format.
    #[error("{path}: byte {offset}: cannot write record: {why}")]
    Unwritable {
        /// File name.
        path: String,
        /// Offset at which the record would have been written.
        offset: u64,
        /// What does not fit.
        why: String,
    },
}

/// One packet record as read; `data` borrows the reader's internal buffer until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Timestamp in nanoseconds since the Unix epoch (0 for pcapng simple packet blocks).
    pub ts_ns: u64,
    /// Original length of the packet on the wire.
    pub orig_len: u32,
    /// Link type of this record's interface.
    pub linktype: u32,
    /// Interface index, unique across pcapng sections (interfaces are numbered in the order
    /// their description blocks appear in the file); always 0 for classic pcap.
    pub interface: u32,
    /// Captured bytes (the captured length may be less than `orig_len`).
    pub data: &'a [u8],
}

/// Container format and byte order of a capture file (for pcapng: of the current section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap, little-endian, microsecond timestamps.
    PcapLeUsec,
    /// Classic pcap, big-endian, microsecond timestamps.
    PcapBeUsec,
    /// Classic pcap, little-endian, nanosecond timestamps.
    PcapLeNsec,
    /// Classic pcap, big-endian, nanosecond timestamps.
    PcapBeNsec,
    /// pcapng, little-endian section.
    PcapNgLe,
    /// pcapng, big-endian section.
    PcapNgBe,
}

impl Format {
    /// Whether multi-byte fields are big-endian.
    fn big_endian(self) -> bool {
        matches!(self, Self::PcapBeUsec | Self::PcapBeNsec | Self::PcapNgBe)
    }
}

/// Reads a `u16` at `at` in the given byte order; the caller has checked the length.
fn get_u16(be: bool, b: &[u8], at: usize) -> u16 {
    let v = [b[at], b[at + 1]];
    if be {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

/// Reads a `u32` at `at` in the given byte order; the caller has checked the length.
fn get_u32(be: bool, b: &[u8], at: usize) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if be {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

/// Reads a `u64` at `at` in the given byte order; the caller has checked the length.
fn get_u64(be: bool, b: &[u8], at: usize) -> u64 {
    let (hi, lo) = if be { (at, at + 4) } else { (at + 4, at) };
    (u64::from(get_u32(be, b, hi)) << 32) | u64::from(get_u32(be, b, lo))
}
