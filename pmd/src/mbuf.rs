//! Packet buffers (`Mbuf`) and fixed-size bursts of them.
//!
//! Each buffer is a slot in a pool's region: a 128-byte header (one cache line of engine
//! metadata, one of stage metadata), then headroom (so a stage can prepend a VLAN tag or an
//! encapsulation without copying), then the data room. An [`Mbuf`] is an owning handle: a
//! pointer to its header, movable between threads, never copied. Its 32-bit *handle* (pool id
//! and slot index) is what travels through rings, so rings never hold pointers.
//!
//! Dropping an `Mbuf` returns it to its pool through the pool's shared ring: correct, but the
//! slow way. The packet path frees whole bursts into the worker's [`crate::pool::PoolCache`].
//!
//! A [`Burst`] is a fixed array of up to [`BURST_MAX`] buffers owned by the caller and reused
//! for every burst (DPDK's `mbuf_table`, VPP's vector): no `Vec` is built per burst.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::pool;
use crate::ring::{self, Consumer, Producer, RingError};

/// Bytes of header before each buffer's headroom.
pub const HDR_SIZE: usize = 128;
/// Largest burst a [`Burst`] holds.
pub const BURST_MAX: usize = 256;

/// Bits of a handle that index the slot; the rest name the pool.
pub(crate) const INDEX_BITS: u32 = 24;
pub(crate) const INDEX_MASK: u32 = (1 << INDEX_BITS) - 1;

/// The per-buffer header. Line 0 is the engine's, line 1 ([`Mbuf::meta`]) belongs to stages.
#[repr(C, align(64))]
pub(crate) struct MbufHdr {
    pub(crate) handle: u32,
    pub(crate) data_off: u16,
    pub(crate) data_len: u16,
    pub(crate) buf_len: u16,
    pub(crate) port: u16,
    pub(crate) queue: u16,
    pub(crate) flags: u16,
    pub(crate) flow_hash: u32,
    pub(crate) snap_cut: u32,
    pub(crate) seq: u64,
    pub(crate) timestamp: u64,
    pub(crate) egress: u16,
    pub(crate) handoff_stage: u16,
    /// With [`FLAG_TX_CSUM`]: where the IPv4 header starts.
    pub(crate) tx_l3: u16,
    pub(crate) _pad16: u16,
    /// With [`FLAG_ORIG_DST`]: the IPv4 destination and port a NAT rewrote (address << 16 |
    /// port).
    pub(crate) orig_dst: u64,
    pub(crate) _pad: [u64; 1],
    pub(crate) meta: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<MbufHdr>() == HDR_SIZE);

/// What a receive writes into a header, in two runs of bytes: 8 bytes from `data_off` to
/// `port`, then the 32 from `queue` to `handoff_stage`, which are the same for every packet of
/// a burst ([`RxTail`]). A driver that converts another library's buffer into ours (DPDK's
/// `rte_mbuf`) writes them with three stores instead of one per field.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(MbufHdr, data_off) == 4);
    assert!(offset_of!(MbufHdr, data_len) == 6);
    assert!(offset_of!(MbufHdr, buf_len) == 8);
    assert!(offset_of!(MbufHdr, port) == 10);
    assert!(offset_of!(MbufHdr, queue) == 12);
    assert!(offset_of!(MbufHdr, flags) == 14);
    assert!(offset_of!(MbufHdr, flow_hash) == 16);
    assert!(offset_of!(MbufHdr, snap_cut) == 20);
    assert!(offset_of!(MbufHdr, seq) == 24);
    assert!(offset_of!(MbufHdr, timestamp) == 32);
    assert!(offset_of!(MbufHdr, egress) == 40);
    assert!(offset_of!(MbufHdr, handoff_stage) == 42);
};

/// The header bytes from `queue` to `handoff_stage` of a freshly received packet: its queue,
/// no flags, no flow hash, no snap cut, sequence 0, timestamp 0, no egress, no handoff.
#[cfg(feature = "dpdk")]
#[derive(Clone, Copy)]
pub(crate) struct RxTail([u8; 32]);

#[cfg(feature = "dpdk")]
impl RxTail {
    /// The tail for packets received on `queue`.
    #[inline(always)]
    pub(crate) fn new(queue: u16) -> RxTail {
        let mut b = [0u8; 32];
        b[0..2].copy_from_slice(&queue.to_ne_bytes());
        b[28..30].copy_from_slice(&NO_EGRESS.to_ne_bytes());
        RxTail(b)
    }
}

#[cfg(feature = "dpdk")]
impl MbufHdr {
    /// Writes a received packet's header: where its data is (`data_off`, `data_len`), the
    /// buffer's length (`buf_len`, as the pool set it), the input `port`, and `tail`; the
    /// handle and the stage metadata are left as they are.
    ///
    /// # Safety
    /// `h` must point at a header we own, and `data_off + data_len <= buf_len` must hold.
    #[inline(always)]
    pub(crate) unsafe fn write_rx(
        h: *mut MbufHdr,
        data_off: u16,
        data_len: u16,
        buf_len: u16,
        port: u16,
        tail: &RxTail,
    ) {
        let mut head = [0u8; 8];
        head[0..2].copy_from_slice(&data_off.to_ne_bytes());
        head[2..4].copy_from_slice(&data_len.to_ne_bytes());
        head[4..6].copy_from_slice(&buf_len.to_ne_bytes());
        head[6..8].copy_from_slice(&port.to_ne_bytes());
        let b = h.cast::<u8>();
        // SAFETY: both runs lie inside the header (offsets checked above); unaligned writes.
        unsafe {
            b.add(4).cast::<[u8; 8]>().write_unaligned(head);
            b.add(12).cast::<[u8; 32]>().write_unaligned(tail.0);
        }
    }
}

/// [`Mbuf::egress`] when no stage has chosen an egress port.
pub const NO_EGRESS: u16 = u16::MAX;

/// Flag: `flow_hash` holds a valid symmetric flow hash.
pub const FLAG_HASH_VALID: u16 = 1;
/// Flag: the device checked the IPv4 header checksum on receive and found it right.
pub const FLAG_IP_CSUM_GOOD: u16 = 2;
/// Flag: the device checked the IPv4 header checksum on receive and found it wrong.
pub const FLAG_IP_CSUM_BAD: u16 = 4;
/// Flag: the packet is on its way to another worker; `egress` names the worker (see
/// [`Mbuf::set_handoff`]).
pub const FLAG_HANDOFF: u16 = 8;
/// Flag: the packet was handed over by another worker and is running the rest of its chain
/// here (see [`Mbuf::handed_over`]).
pub const FLAG_HANDED: u16 = 16;
/// Flag: an engine-made copy of a received packet for another worker to learn from (see
/// [`Mbuf::is_copy`]).
pub const FLAG_COPY: u16 = 32;
/// Flag: a NAT rewrote the packet's destination on its way in; see [`Mbuf::orig_dst`].
pub const FLAG_ORIG_DST: u16 = 64;
/// Flag: the IPv4 header and TCP/UDP checksums are to be filled at transmit; see
/// [`Mbuf::request_tx_csum`].
pub const FLAG_TX_CSUM: u16 = 128;

/// An owned packet buffer.
pub struct Mbuf(NonNull<MbufHdr>);

// SAFETY: an Mbuf is the unique owner of its slot; moving it to another thread moves that
// ownership. The slot memory lives as long as its pool (pools leak their region rather than
// unmap it while buffers are out).
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline(always)]
    fn hdr(&self) -> &MbufHdr {
        // SAFETY: self owns a live slot whose header was initialised by the pool.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn hdr_mut(&mut self) -> &mut MbufHdr {
        // SAFETY: as for `hdr`, and `&mut self` gives exclusive access.
        unsafe { self.0.as_mut() }
    }

    #[inline(always)]
    fn room(&self) -> *mut u8 {
        // SAFETY: the room follows the header inside the same slot.
        unsafe { self.0.as_ptr().cast::<u8>().add(HDR_SIZE) }
    }

    /// Wraps a raw slot pointer.
    ///
    /// # Safety
    /// `p` must point at an initialised header of a slot that nobody else owns.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(p: NonNull<MbufHdr>) -> Mbuf {
        Mbuf(p)
    }

    /// The packet bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let h = self.hdr();
        // SAFETY: data_off + data_len <= buf_len is an invariant kept by every setter.
        unsafe {
            std::slice::from_raw_parts(self.room().add(h.data_off as usize), h.data_len as usize)
        }
    }

    /// The packet bytes, writable.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (off, len) = (self.hdr().data_off as usize, self.hdr().data_len as usize);
        // SAFETY: as for `data`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.room().add(off), len) }
    }

    /// Packet length in bytes.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.hdr().data_len as usize
    }

    /// True for a zero-length packet.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.hdr().data_len == 0
    }

    /// Free bytes before the packet.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.hdr().data_off as usize
    }

    /// Free bytes after the packet.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        h.buf_len as usize - h.data_off as usize - h.data_len as usize
    }

    /// Sets the packet length (bytes after the start); false if it does not fit the room.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        let h = self.hdr_mut();
        if h.data_off as usize + len > h.buf_len as usize {
            return false;
        }
        h.data_len = len as u16;
        true
    }

    /// Grows the packet at the front by `n` bytes and returns the new front bytes.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.hdr_mut();
        if n > h.data_off as usize {
            return None;
        }
        h.data_off -= n as u16;
        h.data_len += n as u16;
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front; false if the packet is shorter.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let h = self.hdr_mut();
        if n > h.data_len as usize {
            return false;
        }
        h.data_off += n as u16;
        h.data_len -= n as u16;
        true
    }

    /// Grows the packet at the end by `n` bytes and returns them.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let old = self.len();
        self.hdr_mut().data_len += n as u16;
        Some(&mut self.data_mut()[old..])
    }

    /// Removes `n` bytes from the end; false if the packet is shorter.
    #[inline]
    pub fn trim(&mut self, n: usize) -> bool {
        let h = self.hdr_mut();
        if n > h.data_len as usize {
            return false;
        }
        h.data_len -= n as u16;
        true
    }

    /// Replaces the packet with `bytes` (starting after the default headroom kept as is);
    /// false if they do not fit.
    #[inline]
    pub fn copy_from(&mut self, bytes: &[u8]) -> bool {
        if !self.set_len(bytes.len()) {
            return false;
        }
        self.data_mut().copy_from_slice(bytes);
        true
    }

    /// Capacity of headroom plus data room.
    #[inline]
    pub fn buf_len(&self) -> usize {
        self.hdr().buf_len as usize
    }

    /// Input port.
    #[inline(always)]
    pub fn port(&self) -> u16 {
        self.hdr().port
    }
    /// Sets the input port.
    #[inline(always)]
    pub fn set_port(&mut self, p: u16) {
        self.hdr_mut().port = p;
    }
    /// Egress port chosen by a stage, taken when the packet reaches the end of the chain
    /// (`NO_EGRESS` when none was chosen).
    #[inline(always)]
    pub fn egress(&self) -> u16 {
        self.hdr().egress
    }
    /// Chooses the egress port.
    #[inline(always)]
    pub fn set_egress(&mut self, p: u16) {
        self.hdr_mut().egress = p;
    }
    /// Input queue.
    #[inline(always)]
    pub fn queue(&self) -> u16 {
        self.hdr().queue
    }
    /// Sets the input queue.
    #[inline(always)]
    pub fn set_queue(&mut self, q: u16) {
        self.hdr_mut().queue = q;
    }
    /// Symmetric flow hash, if one was computed.
    #[inline(always)]
    pub fn flow_hash(&self) -> Option<u32> {
        let h = self.hdr();
        (h.flags & FLAG_HASH_VALID != 0).then_some(h.flow_hash)
    }
    /// Records the flow hash.
    #[inline(always)]
    pub fn set_flow_hash(&mut self, hash: u32) {
        let h = self.hdr_mut();
        h.flow_hash = hash;
        h.flags |= FLAG_HASH_VALID;
    }
    /// What the receiving device's checksum offload said of the IPv4 header checksum:
    /// `Some(true)` right, `Some(false)` wrong, `None` not checked (no offload, not IPv4).
    /// Stages that rewrite the header update the checksum incrementally, which keeps a right
    /// one right and a wrong one wrong, so the verdict holds along the chain.
    #[inline(always)]
    pub fn ip_csum_offload(&self) -> Option<bool> {
        let f = self.hdr().flags;
        if f & FLAG_IP_CSUM_GOOD != 0 {
            Some(true)
        } else if f & FLAG_IP_CSUM_BAD != 0 {
            Some(false)
        } else {
            None
        }
    }
    /// Records the device's verdict on the IPv4 header checksum (see [`Mbuf::ip_csum_offload`]).
    #[inline(always)]
    pub fn set_ip_csum_offload(&mut self, v: Option<bool>) {
        let h = self.hdr_mut();
        h.flags &= !(FLAG_IP_CSUM_GOOD | FLAG_IP_CSUM_BAD);
        h.flags |= match v {
            Some(true) => FLAG_IP_CSUM_GOOD,
            Some(false) => FLAG_IP_CSUM_BAD,
            None => 0,
        };
    }
    /// Marks the packet for worker `worker`, which runs it from stage `stage` of its chain on.
    /// The engine sets this when a stage asks for a handoff; until the packet arrives, its
    /// egress names the worker, not a port.
    #[inline]
    pub fn set_handoff(&mut self, worker: u16, stage: u16) {
        let h = self.hdr_mut();
        h.flags |= FLAG_HANDOFF;
        h.egress = worker;
        h.handoff_stage = stage;
    }
    /// The `(worker, stage)` this packet is on its way to, if it is being handed over.
    #[inline(always)]
    pub fn handoff(&self) -> Option<(u16, u16)> {
        let h = self.hdr();
        (h.flags & FLAG_HANDOFF != 0).then_some((h.egress, h.handoff_stage))
    }
    /// Arrival at the worker it was handed to: the handoff mark becomes [`Mbuf::handed_over`]
    /// and the egress is cleared. Returns the stage to run it from.
    #[inline]
    pub fn arrive(&mut self) -> u16 {
        let h = self.hdr_mut();
        h.flags = (h.flags & !FLAG_HANDOFF) | FLAG_HANDED;
        h.egress = NO_EGRESS;
        h.handoff_stage
    }
    /// Whether another worker handed this packet over (so the stage that asked for it sees the
    /// packet for the second time, and must not hand it over again).
    #[inline(always)]
    pub fn handed_over(&self) -> bool {
        self.hdr().flags & FLAG_HANDED != 0
    }
    /// Marks the packet as a copy the engine made of a received packet so that every worker
    /// sees it (a neighbour's ARP reply): stages learn from a copy, and the engine consumes
    /// it whatever they answer; it never leaves by a port.
    #[inline]
    pub fn set_copy(&mut self) {
        self.hdr_mut().flags |= FLAG_COPY;
    }
    /// Whether this is such a copy.
    #[inline(always)]
    pub fn is_copy(&self) -> bool {
        self.hdr().flags & FLAG_COPY != 0
    }
    /// Receive (or capture) timestamp, nanoseconds.
    #[inline(always)]
    pub fn timestamp(&self) -> u64 {
        self.hdr().timestamp
    }
    /// Sets the timestamp.
    #[inline(always)]
    pub fn set_timestamp(&mut self, ns: u64) {
        self.hdr_mut().timestamp = ns;
    }
    /// Input sequence number (order of arrival at the dataplane; used to keep replay output
    /// in input order when several cores process a capture).
    #[inline(always)]
    pub fn seq(&self) -> u64 {
        self.hdr().seq
    }
    /// Sets the sequence number.
    #[inline(always)]
    pub fn set_seq(&mut self, seq: u64) {
        self.hdr_mut().seq = seq;
    }
    /// Bytes of the original frame missing from the buffer (a capture cut short by its
    /// snaplen); written back as the record's original length when the packet is captured.
    #[inline(always)]
    pub fn snap_cut(&self) -> u32 {
        self.hdr().snap_cut
    }
    /// Sets the missing byte count.
    #[inline(always)]
    pub fn set_snap_cut(&mut self, n: u32) {
        self.hdr_mut().snap_cut = n;
    }
    /// Records the IPv4 destination address and port (ICMP: query id) the packet arrived
    /// with, before a NAT translated them to an inside host's. A stage that answers the packet
    /// later in the chain (a firewall's reject) answers from there, as the NAT would have
    /// translated an answer on its way out.
    #[inline]
    pub fn set_orig_dst(&mut self, addr: u32, port: u16) {
        let h = self.hdr_mut();
        h.orig_dst = u64::from(addr) << 16 | u64::from(port);
        h.flags |= FLAG_ORIG_DST;
    }
    /// The destination recorded by [`Mbuf::set_orig_dst`], if any.
    #[inline]
    pub fn orig_dst(&self) -> Option<(u32, u16)> {
        let h = self.hdr();
        (h.flags & FLAG_ORIG_DST != 0).then_some(((h.orig_dst >> 16) as u32, h.orig_dst as u16))
    }
    /// Leaves the checksums of the IPv4 packet at `l3` (its header's, and its TCP or UDP one
    /// when it is not a fragment) to transmit time: the port's device fills them where it has
    /// checksum offload, the engine in software ([`crate::csum::fill_ipv4`]) for every other
    /// port. For packets a stage builds whole (a reject's RST, fragments); a stage that changes
    /// a packet in passing updates its checksums incrementally instead. Stages after this one
    /// must not rely on those checksums.
    #[inline]
    pub fn request_tx_csum(&mut self, l3: u16) {
        let h = self.hdr_mut();
        h.tx_l3 = l3;
        h.flags |= FLAG_TX_CSUM;
    }
    /// Where the IPv4 header of a packet with checksums left to transmit starts
    /// ([`Mbuf::request_tx_csum`]), if any.
    #[inline(always)]
    pub fn tx_csum(&self) -> Option<u16> {
        let h = self.hdr();
        (h.flags & FLAG_TX_CSUM != 0).then_some(h.tx_l3)
    }
    /// Fills the checksums [`Mbuf::request_tx_csum`] left to transmit now, in software, and
    /// clears the request. False when the headers do not hold (nothing changed).
    #[inline]
    pub fn fill_tx_csum(&mut self) -> bool {
        let Some(l3) = self.tx_csum() else {
            return true;
        };
        self.hdr_mut().flags &= !FLAG_TX_CSUM;
        crate::csum::fill_ipv4(self.data_mut(), usize::from(l3))
    }
    /// Whether any of the `mask` flags (`FLAG_*`) is set: one read for several checks on a
    /// fast path.
    #[inline(always)]
    pub fn has_any_flag(&self, mask: u16) -> bool {
        self.hdr().flags & mask != 0
    }
    /// The stage metadata cache line (64 bytes). Not cleared on allocation (that would cost a
    /// cache line per packet): a stage writes what it later reads.
    #[inline(always)]
    pub fn meta(&self) -> &[u64; 8] {
        &self.hdr().meta
    }
    /// The stage metadata, writable.
    #[inline(always)]
    pub fn meta_mut(&mut self) -> &mut [u64; 8] {
        &mut self.hdr_mut().meta
    }

    /// This buffer's 32-bit handle (pool id and slot).
    #[inline(always)]
    pub fn handle(&self) -> u32 {
        self.hdr().handle
    }

    /// Gives up ownership and returns the handle (to pass through a ring).
    #[inline(always)]
    pub fn into_handle(self) -> u32 {
        let h = self.handle();
        std::mem::forget(self);
        h
    }

    /// Takes ownership of the buffer named by `handle`.
    ///
    /// # Safety
    /// `handle` must come from [`Mbuf::into_handle`] (or a pool) of a live pool in this process,
    /// and ownership must be transferred: nobody else may use the handle afterwards.
    #[inline(always)]
    pub unsafe fn from_handle(handle: u32) -> Mbuf {
        // SAFETY: forwarded to the caller.
        unsafe { pool::mbuf_from_handle(handle) }
    }

    /// Address of the header (for prefetching).
    #[inline(always)]
    pub fn as_ptr(&self) -> *const u8 {
        self.0.as_ptr().cast()
    }

    /// Prefetches the first data cache line (for the next few packets of a burst).
    #[inline(always)]
    pub fn prefetch_data(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetch is a hint and never faults; the address is inside the slot.
        unsafe {
            use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch(
                self.room().add(self.hdr().data_off as usize).cast::<i8>(),
                _MM_HINT_T0,
            );
        }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        pool::free_slow(self.handle());
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("handle", &self.handle())
            .field("len", &self.len())
            .field("port", &self.port())
            .finish()
    }
}

/// A caller-owned array of up to [`BURST_MAX`] buffers, reused burst after burst.
pub struct Burst {
    len: usize,
    bufs: [MaybeUninit<Mbuf>; BURST_MAX],
}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl Burst {
    /// An empty burst.
    pub fn new() -> Burst {
        Burst {
            len: 0,
            bufs: [const { MaybeUninit::uninit() }; BURST_MAX],
        }
    }

    /// Number of buffers held.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Room left.
    #[inline(always)]
    pub fn room(&self) -> usize {
        BURST_MAX - self.len
    }

    /// Appends a buffer, or gives it back when full.
    #[inline(always)]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST_MAX {
            return Err(m);
        }
        self.bufs[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes the last buffer.
    #[inline(always)]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside the live range.
        Some(unsafe { self.bufs[self.len].assume_init_read() })
    }

    /// The buffers.
    #[inline(always)]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: the first `len` slots are initialised; MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(self.bufs.as_ptr().cast(), self.len) }
    }

    /// The buffers, writable.
    #[inline(always)]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as for `as_slice`, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_mut_ptr().cast(), self.len) }
    }

    /// Visits every buffer in order, handing over ownership; buffers `f` gives back stay (in
    /// order, compacted at the front), the others are the closure's to keep or free.
    #[inline]
    pub fn retain_owned(&mut self, mut f: impl FnMut(usize, Mbuf) -> Option<Mbuf>) {
        let n = self.len;
        // Panic safety: if `f` panics the not-yet-visited buffers leak (never double-free).
        self.len = 0;
        let mut kept = 0;
        for i in 0..n {
            // SAFETY: slot i < n was initialised and is read exactly once.
            let m = unsafe { self.bufs[i].assume_init_read() };
            if let Some(m) = f(i, m) {
                self.bufs[kept].write(m);
                kept += 1;
                self.len = kept;
            }
        }
    }

    /// Moves the leading run of buffers for which `same` holds to the end of `dst`, in order,
    /// as far as `dst` has room; the rest stay, in order. Returns how many moved.
    #[inline]
    pub fn move_run_to(&mut self, dst: &mut Burst, mut same: impl FnMut(&Mbuf) -> bool) -> usize {
        let n = self
            .as_slice()
            .iter()
            .take_while(|m| same(m))
            .count()
            .min(dst.room());
        // `n` fits `dst`: every push succeeds (a failed one would keep its buffer here).
        self.retain_owned(|i, m| if i < n { dst.push(m).err() } else { Some(m) });
        n
    }

    /// Where the next pushed buffer goes: `room()` slots from here are free. For a driver's
    /// receive loop, which writes buffers there and then calls [`Burst::set_len`] once.
    #[inline(always)]
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) fn spare_ptr(&mut self) -> *mut Mbuf {
        // SAFETY: `len <= BURST_MAX`, so the pointer is within (or one past) the array.
        unsafe { self.bufs.as_mut_ptr().add(self.len).cast() }
    }

    /// Sets the length after buffers were written through [`Burst::spare_ptr`].
    ///
    /// # Safety
    /// `n <= BURST_MAX`, and every slot below `n` holds an initialised buffer owned by the
    /// burst.
    #[inline(always)]
    #[cfg_attr(not(feature = "dpdk"), allow(dead_code))]
    pub(crate) unsafe fn set_len(&mut self, n: usize) {
        self.len = n;
    }

    /// Moves every buffer to the end of `dst`, in order, with one copy of the pointers; if
    /// `dst` has no room for them all, moves nothing and returns false.
    #[inline]
    pub fn append_to(&mut self, dst: &mut Burst) -> bool {
        let n = self.len;
        if dst.room() < n {
            return false;
        }
        // SAFETY: slots [0, n) of self are initialised and [dst.len, dst.len + n) of dst are
        // free (room checked); the two bursts are distinct (`&mut`), so the ranges do not
        // overlap. Ownership moves: self forgets the buffers (len = 0) as dst takes them.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.bufs.as_ptr(),
                dst.bufs.as_mut_ptr().add(dst.len),
                n,
            );
        }
        dst.len += n;
        self.len = 0;
        true
    }

    /// Removes the first `n` buffers without freeing them (their ownership has moved on).
    #[inline]
    pub(crate) fn forget_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let rest = self.len - n;
        // SAFETY: moves initialised slots [n, len) to [0, rest); the first n are forgotten
        // (their owner is elsewhere now), so nothing is dropped twice.
        unsafe {
            let p = self.bufs.as_mut_ptr();
            std::ptr::copy(p.add(n), p, rest);
        }
        self.len = rest;
    }

    /// Takes the first `n` buffers out as handles (written to `out`), giving up ownership.
    pub(crate) fn handles_into(&self, out: &mut [u32]) -> usize {
        let n = out.len().min(self.len);
        for (o, m) in out.iter_mut().zip(self.as_slice()) {
            *o = m.handle();
        }
        n
    }

    /// Drops every buffer (slow path: each goes back to its pool's shared ring).
    pub fn clear(&mut self) {
        while self.pop().is_some() {}
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The producing end of a ring of buffers (handles inside, ownership moves with them).
pub struct BufProducer<const MULTI: bool>(Producer<MULTI>);
/// The consuming end of a ring of buffers.
pub struct BufConsumer<const MULTI: bool>(Consumer<MULTI>);

impl Clone for BufProducer<true> {
    fn clone(&self) -> Self {
        BufProducer(self.0.clone())
    }
}

/// A single-producer single-consumer ring of buffers.
pub fn buf_spsc(capacity: u32) -> Result<(BufProducer<false>, BufConsumer<false>), RingError> {
    let (p, c) = ring::spsc(capacity)?;
    Ok((BufProducer(p), BufConsumer(c)))
}

/// A multi-producer single-consumer ring of buffers.
pub fn buf_mpsc(capacity: u32) -> Result<(BufProducer<true>, BufConsumer<false>), RingError> {
    let (p, c) = ring::mpsc(capacity)?;
    Ok((BufProducer(p), BufConsumer(c)))
}

impl<const M: bool> BufProducer<M> {
    /// Moves as many buffers as fit from the front of `burst` into the ring; returns how many.
    #[inline]
    pub fn enqueue(&self, burst: &mut Burst) -> usize {
        let mut hs = [0u32; BURST_MAX];
        let n = burst.handles_into(&mut hs);
        let k = self.0.enqueue_burst(&hs[..n]);
        burst.forget_front(k);
        k
    }

    /// Free slots (a snapshot).
    pub fn free_count(&self) -> usize {
        self.0.free_count()
    }
}

impl<const M: bool> BufConsumer<M> {
    /// Appends up to `max` buffers from the ring to `burst`; returns how many came.
    #[inline]
    pub fn dequeue(&self, burst: &mut Burst, max: usize) -> usize {
        let mut hs = [0u32; BURST_MAX];
        let want = max.min(burst.room());
        let k = self.0.dequeue_burst(&mut hs[..want]);
        for &h in &hs[..k] {
            // SAFETY: only `BufProducer::enqueue` fills this ring, with handles of live buffers
            // whose ownership it gave up; each handle is dequeued exactly once.
            let m = unsafe { Mbuf::from_handle(h) };
            if let Err(m) = burst.push(m) {
                // Unreachable: `want` <= room. Free rather than leak.
                drop(m);
            }
        }
        k
    }

    /// Buffers queued (a snapshot).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
