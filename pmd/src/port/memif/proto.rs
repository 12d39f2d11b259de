//! memif wire constants and control messages, as libmemif and DPDK's `net_memif` lay them out.
//!
//! Messages are 128 bytes: a 16-bit type, then the packed body of that type. They are built and
//! read field by field at fixed offsets (no struct casting), so a short or odd message from a
//! peer reads as zeros, never as undefined memory. Ring and descriptor offsets are here too: the
//! ring header has `cookie` (u32) and `flags` (u16) and `head` (u16) on its first 64-byte cache
//! line, `tail` (u16) alone on the second, and the descriptors from byte 128; a descriptor is 16
//! bytes: flags u16, region u16, length u32, offset u32, metadata u32.

/// Size of every control message.
pub const MSG_SIZE: usize = 128;
/// Ring header cookie.
pub const COOKIE: u32 = 0x3E31F20;
/// Protocol version 2.0.
pub const VERSION: u16 = 2 << 8;
/// Name fields are this long (NUL-padded).
pub const NAME_SZ: usize = 32;
/// Largest ring we accept or offer, as log2.
pub const MAX_LOG2_RING: u8 = 14;

/// Ring header: cookie.
pub const RING_COOKIE: usize = 0;
/// Ring header: flags.
pub const RING_FLAGS: usize = 4;
/// Ring header: head index (written by the side that fills descriptors for the other).
pub const RING_HEAD: usize = 6;
/// Ring header: tail index.
pub const RING_TAIL: usize = 64;
/// First descriptor.
pub const RING_DESC: usize = 128;
/// Ring flag: the owner polls, do not signal its eventfd.
pub const RING_FLAG_MASK_INT: u16 = 1;
/// Descriptor size.
pub const DESC_SIZE: usize = 16;
/// Descriptor: flags.
pub const DESC_FLAGS: usize = 0;
/// Descriptor: region index.
pub const DESC_REGION: usize = 2;
/// Descriptor: length.
pub const DESC_LENGTH: usize = 4;
/// Descriptor: offset in the region.
pub const DESC_OFFSET: usize = 8;
/// Descriptor flag: the packet continues in the next descriptor.
pub const DESC_FLAG_NEXT: u16 = 1;

/// Bytes of a ring with `1 << log2` descriptors.
pub fn ring_bytes(log2: u8) -> usize {
    RING_DESC + (DESC_SIZE << log2)
}

/// Message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    /// Acknowledges INIT, ADD_REGION, ADD_RING.
    Ack = 1,
    /// Server to client, first message.
    Hello = 2,
    /// Client to server: version, interface id, mode, name.
    Init = 3,
    /// Client to server: a shared region (memfd attached).
    AddRegion = 4,
    /// Client to server: a ring (eventfd attached).
    AddRing = 5,
    /// Client to server: all set.
    Connect = 6,
    /// Server to client: connected.
    Connected = 7,
    /// Either way: going away, with a reason.
    Disconnect = 8,
}

impl MsgType {
    /// The type of a received message, if known.
    pub fn of(msg: &[u8; MSG_SIZE]) -> Option<MsgType> {
        Some(match rd16(msg, 0) {
            1 => MsgType::Ack,
            2 => MsgType::Hello,
            3 => MsgType::Init,
            4 => MsgType::AddRegion,
            5 => MsgType::AddRing,
            6 => MsgType::Connect,
            7 => MsgType::Connected,
            8 => MsgType::Disconnect,
            _ => return None,
        })
    }
}

/// Reads a `u16` at `off` (memif fields are host-endian).
pub fn rd16(m: &[u8; MSG_SIZE], off: usize) -> u16 {
    u16::from_ne_bytes([m[off], m[off + 1]])
}
/// Reads a `u32` at `off`.
pub fn rd32(m: &[u8; MSG_SIZE], off: usize) -> u32 {
    u32::from_ne_bytes([m[off], m[off + 1], m[off + 2], m[off + 3]])
}
/// Reads a `u64` at `off`.
pub fn rd64(m: &[u8; MSG_SIZE], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[off..off + 8]);
    u64::from_ne_bytes(b)
}
fn wr16(m: &mut [u8; MSG_SIZE], off: usize, v: u16) {
    m[off..off + 2].copy_from_slice(&v.to_ne_bytes());
}
fn wr32(m: &mut [u8; MSG_SIZE], off: usize, v: u32) {
    m[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn wr64(m: &mut [u8; MSG_SIZE], off: usize, v: u64) {
    m[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}
fn wrname(m: &mut [u8; MSG_SIZE], off: usize, len: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(len - 1);
    m[off..off + n].copy_from_slice(&b[..n]);
}
/// Reads a NUL-padded name field.
pub fn rdname(m: &[u8; MSG_SIZE], off: usize, len: usize) -> String {
    let f = &m[off..off + len];
    let end = f.iter().position(|&b| b == 0).unwrap_or(len);
    String::from_utf8_lossy(&f[..end]).into_owned()
}

fn new(t: MsgType) -> [u8; MSG_SIZE] {
    let mut m = [0u8; MSG_SIZE];
    wr16(&mut m, 0, t as u16);
    m
}

/// HELLO body offsets.
pub mod hello {
    /// Application name.
    pub const NAME: usize = 2;
    /// Lowest version.
    pub const MIN_VERSION: usize = 34;
    /// Highest version.
    pub const MAX_VERSION: usize = 36;
    /// Highest region index.
    pub const MAX_REGION: usize = 38;
    /// Highest server-to-client ring index.
    pub const MAX_S2C_RING: usize = 40;
    /// Highest client-to-server ring index.
    pub const MAX_C2S_RING: usize = 42;
    /// Largest ring (log2).
    pub const MAX_LOG2_RING: usize = 44;
}

/// INIT body offsets.
pub mod init {
    /// Version.
    pub const VERSION: usize = 2;
    /// Interface id.
    pub const ID: usize = 4;
    /// Mode (0 Ethernet).
    pub const MODE: usize = 8;
    /// Secret (24 bytes).
    pub const SECRET: usize = 9;
    /// Client name.
    pub const NAME: usize = 33;
}

/// ADD_RING body offsets.
pub mod add_ring {
    /// Flags (bit 0: client-to-server).
    pub const FLAGS: usize = 2;
    /// Ring index.
    pub const INDEX: usize = 4;
    /// Region holding the ring.
    pub const REGION: usize = 6;
    /// Offset of the ring in the region.
    pub const OFFSET: usize = 8;
    /// Ring size (log2).
    pub const LOG2: usize = 12;
    /// Private header size.
    pub const PRIVATE_HDR: usize = 13;
    /// Flag: the ring carries client-to-server packets.
    pub const FLAG_C2S: u16 = 1;
}

/// HELLO from a server.
pub fn msg_hello(name: &str) -> [u8; MSG_SIZE] {
    let mut m = new(MsgType::Hello);
    wrname(&mut m, hello::NAME, NAME_SZ, name);
    wr16(&mut m, hello::MIN_VERSION, VERSION);
    wr16(&mut m, hello::MAX_VERSION, VERSION);
    wr16(&mut m, hello::MAX_REGION, 15);
    wr16(&mut m, hello::MAX_S2C_RING, 0);
    wr16(&mut m, hello::MAX_C2S_RING, 0);
    m[hello::MAX_LOG2_RING] = MAX_LOG2_RING;
    m
}

/// INIT from a client.
pub fn msg_init(id: u32, name: &str) -> [u8; MSG_SIZE] {
    let mut m = new(MsgType::Init);
    wr16(&mut m, init::VERSION, VERSION);
    wr32(&mut m, init::ID, id);
    m[init::MODE] = 0;
    wrname(&mut m, init::NAME, NAME_SZ, name);
    m
}

/// ADD_REGION (the memfd goes alongside).
pub fn msg_add_region(index: u16, size: u64) -> [u8; MSG_SIZE] {
    let mut m = new(MsgType::AddRegion);
    wr16(&mut m, 2, index);
    wr64(&mut m, 4, size);
    m
}

/// ADD_REGION fields: index, size.
pub fn read_add_region(m: &[u8; MSG_SIZE]) -> (u16, u64) {
    (rd16(m, 2), rd64(m, 4))
}

/// ADD_RING (an eventfd goes alongside).
pub fn msg_add_ring(c2s: bool, index: u16, region: u16, offset: u32, log2: u8) -> [u8; MSG_SIZE] {
    let mut m = new(MsgType::AddRing);
    wr16(
        &mut m,
        add_ring::FLAGS,
        if c2s { add_ring::FLAG_C2S } else { 0 },
    );
    wr16(&mut m, add_ring::INDEX, index);
    wr16(&mut m, add_ring::REGION, region);
    wr32(&mut m, add_ring::OFFSET, offset);
    m[add_ring::LOG2] = log2;
    wr16(&mut m, add_ring::PRIVATE_HDR, 0);
    m
}

/// ACK.
pub fn msg_ack() -> [u8; MSG_SIZE] {
    new(MsgType::Ack)
}

/// CONNECT (client) or CONNECTED (server) with our interface name.
pub fn msg_connect(connected: bool, if_name: &str) -> [u8; MSG_SIZE] {
    let mut m = new(if connected {
        MsgType::Connected
    } else {
        MsgType::Connect
    });
    wrname(&mut m, 2, NAME_SZ, if_name);
    m
}

/// DISCONNECT with a reason.
pub fn msg_disconnect(code: u32, why: &str) -> [u8; MSG_SIZE] {
    let mut m = new(MsgType::Disconnect);
    wr32(&mut m, 2, code);
    wrname(&mut m, 6, 96, why);
    m
}

/// A DISCONNECT's reason.
pub fn read_disconnect(m: &[u8; MSG_SIZE]) -> String {
    rdname(m, 6, 96)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts() {
        let m = msg_add_ring(true, 0, 1, 256, 10);
        assert_eq!(rd16(&m, 0), 5);
        assert_eq!(rd16(&m, 2), 1);
        assert_eq!(rd32(&m, 8), 256);
        assert_eq!(m[12], 10);
        let h = msg_hello("x");
        assert_eq!(rd16(&h, hello::MIN_VERSION), 0x0200);
        assert_eq!(h[44], MAX_LOG2_RING);
        let d = msg_disconnect(3, "gone");
        assert_eq!(read_disconnect(&d), "gone");
        assert_eq!(MsgType::of(&d), Some(MsgType::Disconnect));
        assert_eq!(ring_bytes(10), 128 + 16 * 1024);
    }
}
