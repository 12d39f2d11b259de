//! Zero-copy views over wire formats, and the Internet checksum.
//!
//! Every protocol header here is a *view*: a thin wrapper around a byte buffer
//! (`EthernetFrame<T>`, `Ipv4Packet<T>`, ...) whose accessors read and write
//! fields in place, at fixed offsets, in network byte order. Nothing is copied
//! into a struct and nothing is cast: a `&[u8]` from a packet buffer, a
//! `&mut [u8]` for rewriting, or an owned `Vec<u8>` in a test all work the same,
//! because a view only asks for `T: AsRef<[u8]>` (and `AsMut<[u8]>` for the
//! setters, which live in their own `impl` block). Reading fields by offset,
//! rather than transmuting bytes into `#[repr(C, packed)]` structs, needs no
//! `unsafe`, has no alignment traps, and compiles to the same loads.
//!
//! # The contract
//!
//! * `new_unchecked(buf)` wraps any buffer and checks nothing. Use it only on
//!   bytes you built yourself or already validated; accessors may panic on a
//!   buffer that is too short.
//! * `new_checked(buf)` validates the buffer against the header's own length
//!   fields (fixed header present, header-length field sane, header fits, and
//!   where the protocol has a total-length field, that it fits in the buffer).
//!   **After `new_checked` succeeds, no accessor of that view panics**, whatever
//!   the bytes are. Variable-length slices (options, payload) are additionally
//!   clamped to the buffer, so even a setter that later writes an inconsistent
//!   length field cannot make a getter panic.
//! * Payloads are bounded by the protocol's own length field where it has one
//!   (IPv4 total length, IPv6 payload length, UDP length), so Ethernet padding
//!   never leaks into an upper layer.
//!
//! There is no IO here, no allocation, no `unsafe`, and no logging: this module
//! runs on the packet path at tens of millions of packets per second. The hot
//! entry points are [`parse()`] (one header walk per frame, producing offsets
//! that the stages reuse), [`symmetric_hash`] (worker steering) and the
//! incremental checksum updates in [`checksum`] (NAT and TTL rewrites).
//!
//! Errors are a small `Copy` enum, [`Error`], so that a stage can turn one into
//! a drop reason with a counter without formatting anything.

#![forbid(unsafe_code)]

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod flow;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod parse;
pub mod tcp;
pub mod udp;
pub mod vlan;

#[cfg(test)]
mod testutil;

pub use arp::ArpPacket;
pub use ethernet::{ethertype, EthernetFrame, MacAddr};
pub use flow::{symmetric_hash, FlowKey};
pub use icmp::{Icmpv4Packet, Icmpv6Packet};
pub use ipv4::{ip_proto, Ipv4Packet};
pub use ipv6::{walk_ext, Ipv6FragInfo, Ipv6Packet};
pub use parse::{parse, ParseError, Parsed, L3};
pub use tcp::TcpPacket;
pub use udp::UdpPacket;
pub use vlan::VlanHeader;

/// Why a buffer was rejected by a `new_checked` constructor or by [`parse()`].
///
/// Each variant is a distinct reason so that the packet path can count them as
/// separate drop reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (fixed part, or the length the
    /// header's own length field announces).
    #[error("buffer too short for the header")]
    Truncated,
    /// The IP version field does not match the view (4 for IPv4, 6 for IPv6).
    #[error("wrong IP version")]
    BadVersion,
    /// A header-length field is below the protocol minimum (IPv4 IHL < 5, TCP
    /// data offset < 5).
    #[error("header length field below the minimum")]
    BadHeaderLen,
    /// A length field is smaller than the header it covers (IPv4 total length
    /// below the header length, UDP length below 8).
    #[error("length field smaller than the header")]
    LengthTooShort,
    /// A length field claims more bytes than the buffer holds.
    #[error("length field exceeds the buffer")]
    LengthExceedsBuffer,
    /// A well-formed header of a kind this view does not handle (ARP other than
    /// Ethernet/IPv4).
    #[error("unsupported header format")]
    Unsupported,
    /// An IPv6 extension-header chain is malformed (Hop-by-Hop not first, or a
    /// chain longer than the offsets can express).
    #[error("malformed IPv6 extension header chain")]
    BadExtHeader,
    /// An IPv6 extension-header chain is longer than the walker's bound.
    #[error("too many IPv6 extension headers")]
    TooManyExtHeaders,
}

/// Read a big-endian `u16` at `i`.
#[inline(always)]
pub(crate) fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Read a big-endian `u32` at `i`.
#[inline(always)]
pub(crate) fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Write a big-endian `u16` at `i`.
#[inline(always)]
pub(crate) fn set_be16(b: &mut [u8], i: usize, v: u16) {
    b[i..i + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian `u32` at `i`.
#[inline(always)]
pub(crate) fn set_be32(b: &mut [u8], i: usize, v: u32) {
    b[i..i + 4].copy_from_slice(&v.to_be_bytes());
}

/// Copy `N` bytes at `i` into an array.
#[inline(always)]
pub(crate) fn array<const N: usize>(b: &[u8], i: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[i..i + N]);
    out
}

/// `&b[start..end]`, with both ends clamped to the buffer so it cannot panic.
#[inline(always)]
pub(crate) fn clamped(b: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(b.len());
    let start = start.min(end);
    &b[start..end]
}

/// Mutable twin of [`clamped`].
#[inline(always)]
pub(crate) fn clamped_mut(b: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(b.len());
    let start = start.min(end);
    &mut b[start..end]
}
