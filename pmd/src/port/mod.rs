//! The `Port` trait: the one interface behind which every packet source and sink sits.
//!
//! Stages never see a port; the engine's workers poll ports for bursts and hand bursts back to
//! them. A pcap file, the benchmark's null port, and (in their own modules) memif, AF_PACKET and
//! DPDK ethdev are all ports, so the offline path is the online path.
//!
//! Bursts are caller-owned arrays ([`Burst`]): `rx_burst` appends freshly filled buffers
//! allocated from the caller's pool cache, `tx_burst` takes buffers from the front and frees
//! them into the cache once sent. A port that cannot take a packet (a full TX ring) leaves it in
//! the burst for the caller to retry or drop; a port that drops a packet itself counts it under
//! a [`PortDrop`] reason. So the counters always balance.

use crate::mbuf::Burst;
use crate::pool::PoolCache;

pub mod afpacket;
pub mod memif;
pub mod native;
pub mod null;
pub mod pcap;

pub use native::{NativeBurst, NativeKind};

/// Why a port dropped a packet. Receive-side reasons count packets that never entered the
/// dataplane; transmit-side reasons ([`PortDrop::is_tx`]) count packets the engine handed to the
/// port, so they take part in the engine's balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PortDrop {
    /// The pool had no free buffer for a received packet.
    RxNoBuffer,
    /// A received packet was longer than a buffer's data room (or chained over several).
    RxOversize,
    /// The transmit side failed to write the packet.
    TxError,
    /// The link (a memif peer) was down: the packet could not be sent.
    TxLinkDown,
    /// Packets still in a shared ring when the peer went away.
    TxLostInRing,
    /// The packet was longer than the peer's buffers.
    TxOversize,
    /// The peer wrote a descriptor outside its shared memory (a broken or hostile peer).
    RxBadDescriptor,
    /// The device dropped the packet before the dataplane polled it (its receive ring was
    /// full: the NIC's `imissed`).
    RxMissed,
}

impl PortDrop {
    /// Number of reasons.
    pub const COUNT: usize = 8;
    /// All reasons, in counter order.
    pub const ALL: [PortDrop; Self::COUNT] = [
        PortDrop::RxNoBuffer,
        PortDrop::RxOversize,
        PortDrop::TxError,
        PortDrop::TxLinkDown,
        PortDrop::TxLostInRing,
        PortDrop::TxOversize,
        PortDrop::RxBadDescriptor,
        PortDrop::RxMissed,
    ];

    /// Stable name for counters and logs.
    pub fn name(self) -> &'static str {
        match self {
            PortDrop::RxNoBuffer => "rx_no_buffer",
            PortDrop::RxOversize => "rx_oversize",
            PortDrop::TxError => "tx_error",
            PortDrop::TxLinkDown => "tx_link_down",
            PortDrop::TxLostInRing => "tx_lost_in_ring",
            PortDrop::TxOversize => "tx_oversize",
            PortDrop::RxBadDescriptor => "rx_bad_descriptor",
            PortDrop::RxMissed => "rx_missed",
        }
    }

    /// True for drops of packets the dataplane handed to the port for transmission.
    pub fn is_tx(self) -> bool {
        matches!(
            self,
            PortDrop::TxError
                | PortDrop::TxLinkDown
                | PortDrop::TxLostInRing
                | PortDrop::TxOversize
        )
    }
}

/// How a port with several queues spreads received packets over them. Either way the spread
/// is symmetric (both directions of a conversation reach one queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Spread {
    /// By addresses and ports: the finest balance. A fragmented datagram (whose fragments
    /// carry no ports, or only in the first) can reach another queue than its connection's
    /// unfragmented packets.
    #[default]
    Flows,
    /// By addresses only: every packet between two hosts, fragments included, reaches one
    /// queue, so a stage tracking connections sees a connection's fragments too.
    Hosts,
}

/// Port counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets handed to the dataplane.
    pub rx_packets: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Packets accepted for transmission.
    pub tx_packets: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Drops by [`PortDrop`] reason.
    pub drops: [u64; PortDrop::COUNT],
}

impl PortStats {
    /// Counts a drop.
    #[inline]
    pub fn drop_one(&mut self, why: PortDrop) {
        self.drops[why as usize] += 1;
    }

    /// Total drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds `o` (another queue's counters of the same port).
    pub fn add(&mut self, o: &PortStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        for (a, b) in self.drops.iter_mut().zip(o.drops) {
            *a += b;
        }
    }
}

/// A fatal port error (the port cannot go on).
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The pcap file is broken.
    #[error(transparent)]
    Pcap(#[from] crate::pcap::PcapError),
    /// Any other I/O failure.
    #[error("{port}: {msg}")]
    Other {
        /// Port name.
        port: String,
        /// What happened.
        msg: String,
    },
}

/// A packet source and/or sink, polled by one worker thread at a time.
pub trait Port: Send {
    /// The port's name (from the configuration).
    fn name(&self) -> &str;

    /// Number of receive queues.
    fn rx_queues(&self) -> u16 {
        1
    }

    /// Number of transmit queues.
    fn tx_queues(&self) -> u16 {
        1
    }

    /// The port's MAC address.
    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }

    /// Receives up to `max` packets into `burst` (appended), allocating buffers from `pool`.
    /// Returns how many were appended.
    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError>;

    /// [`Port::rx_burst`], stopping before the first packet captured after `until`
    /// (nanoseconds): for a port replaying a file, so that several files replay merged by
    /// capture time. Other ports ignore `until`.
    fn rx_burst_until(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
        until: u64,
    ) -> Result<usize, PortError> {
        let _ = until;
        self.rx_burst(queue, pool, burst, max)
    }

    /// For a port replaying a file: the capture time of the next packet it would receive
    /// (reading it ahead); `None` at the end, and for every port that is not a file.
    fn next_timestamp(&mut self) -> Result<Option<u64>, PortError> {
        Ok(None)
    }

    /// Transmits packets from the front of `burst`. Every packet it takes is either sent or
    /// counted as a port drop, and its buffer is freed into `pool`; returns how many it took.
    /// Packets left in `burst` could not be taken now (the caller retries or drops them).
    fn tx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError>;

    /// The kind of buffers the port can receive and send untouched ([`Port::rx_native`]);
    /// `None` for ports that only know [`crate::Mbuf`]s.
    fn native_kind(&self) -> Option<NativeKind> {
        None
    }

    /// Cut-through receive: appends up to `max` of the device's own buffers to `burst`,
    /// counted as received, without making [`crate::Mbuf`]s of them. Only for a port with a
    /// [`Port::native_kind`], and `burst` must be empty or hold that kind; otherwise an error.
    fn rx_native(
        &mut self,
        queue: u16,
        burst: &mut NativeBurst,
        max: usize,
    ) -> Result<usize, PortError> {
        let _ = (queue, burst, max);
        Err(PortError::Other {
            port: self.name().to_string(),
            msg: "this port has no cut-through receive".into(),
        })
    }

    /// Cut-through transmit: sends buffers from the front of `burst` (received by a port of
    /// the same [`Port::native_kind`]) and returns how many; those left could not be taken
    /// now (the caller retries, or frees them with [`NativeBurst::free`] and counts them).
    fn tx_native(&mut self, queue: u16, burst: &mut NativeBurst) -> Result<usize, PortError> {
        let _ = (queue, burst);
        Err(PortError::Other {
            port: self.name().to_string(),
            msg: "this port has no cut-through transmit".into(),
        })
    }

    /// Whether the device fills the checksums a stage left to transmit
    /// ([`crate::Mbuf::request_tx_csum`]); for a port without, the engine fills them in
    /// software ([`crate::csum::fill_ipv4`]) as the packets leave the chain.
    fn tx_csum_offload(&self) -> bool {
        false
    }

    /// Pushes out anything buffered (files, batched doorbells).
    fn flush(&mut self) -> Result<(), PortError> {
        Ok(())
    }

    /// True once the port will never receive again (end of a capture file).
    fn at_end(&self) -> bool {
        false
    }

    /// Splits queue pair `q` (1 or more) off into a port of its own, polled as its queue 0,
    /// with its own counters; this port keeps queue 0. With as many queue pairs as workers,
    /// each run-to-completion worker owns a queue of every port outright (no dispatching
    /// thread), and the device (RSS with a symmetric key, or a symmetric fanout hash) keeps
    /// both directions of a flow on one queue. Queues are taken from the highest down (the
    /// engine takes N-1 first); `None` if there is no such queue.
    fn take_queue(&mut self, q: u16) -> Option<Box<dyn Port>> {
        let _ = q;
        None
    }

    /// Counters.
    fn stats(&self) -> PortStats;
}
