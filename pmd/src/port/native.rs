//! Cut-through: a burst of a driver's own buffers, passed from port to port untouched.
//!
//! A chain that only forwards (every packet of port A leaves by port B, nothing reads it) has
//! no use for our packet header. Between two ports of one driver that shares its buffers
//! across devices (DPDK: any ethdev sends any `rte_mbuf`), the engine can hand the received
//! buffers straight to the other port's transmit, as `dpdk-testpmd --forward-mode=io` or
//! VPP's `l2patch` do, reading nothing per packet but its length (for the byte counters). [`NativeBurst`] carries them: it is
//! filled only by [`Port::rx_native`](super::Port::rx_native), emptied by
//! [`Port::tx_native`](super::Port::tx_native) of a port of the same [`NativeKind`], and frees
//! whatever it still holds when dropped or [`NativeBurst::free`]d, so no buffer leaks.

// Only DPDK's port fills a burst so far: without the feature the insides go unused.
#![cfg_attr(not(feature = "dpdk"), allow(dead_code))]

use std::ffi::c_void;

use crate::mbuf::BURST_MAX;

/// What kind of buffers a port can receive and send without converting them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeKind {
    /// DPDK `rte_mbuf`s.
    RteMbuf,
}

/// Up to [`BURST_MAX`] buffers of one [`NativeKind`], owned by the holder (the first
/// `len - start` are still to be sent, from `start`).
pub struct NativeBurst {
    pub(crate) kind: Option<NativeKind>,
    pub(crate) ptrs: [*mut c_void; BURST_MAX],
    pub(crate) start: usize,
    pub(crate) len: usize,
    /// Bytes of the buffers held (so a transmit that takes them all need not read them).
    pub(crate) bytes: u64,
}

// SAFETY: the burst owns its buffers outright (nothing else refers to them); moving it to
// another thread moves that ownership, as for `Mbuf`.
unsafe impl Send for NativeBurst {}

impl Default for NativeBurst {
    fn default() -> Self {
        NativeBurst::new()
    }
}

impl NativeBurst {
    /// An empty burst.
    pub fn new() -> NativeBurst {
        NativeBurst {
            kind: None,
            ptrs: [std::ptr::null_mut(); BURST_MAX],
            start: 0,
            len: 0,
            bytes: 0,
        }
    }

    /// Buffers held.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len - self.start
    }

    /// True if it holds none.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.start == self.len
    }

    /// The buffers still held, from the first.
    #[inline(always)]
    pub(crate) fn held(&mut self) -> &mut [*mut c_void] {
        &mut self.ptrs[self.start..self.len]
    }

    /// Marks the first `n` held buffers as given away (sent).
    #[inline(always)]
    pub(crate) fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.len {
            self.start = 0;
            self.len = 0;
        }
    }

    /// Frees every buffer still held back to its pool; returns how many.
    pub fn free(&mut self) -> usize {
        let n = self.len();
        if n == 0 {
            return 0;
        }
        match self.kind {
            #[cfg(feature = "dpdk")]
            Some(NativeKind::RteMbuf) => {
                let held = self.held();
                // SAFETY: only `DpdkPort::rx_native` stores `RteMbuf`s, and every one held is
                // ours alone (received and not given away since).
                unsafe {
                    crate::dpdk::sys::dp_pktmbuf_free_bulk(
                        held.as_mut_ptr().cast(),
                        held.len() as u32,
                    )
                };
            }
            // Without the driver no port can have filled it.
            _ => {}
        }
        self.start = 0;
        self.len = 0;
        self.bytes = 0;
        n
    }
}

impl Drop for NativeBurst {
    fn drop(&mut self) {
        self.free();
    }
}
