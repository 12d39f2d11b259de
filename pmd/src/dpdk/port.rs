//! DPDK ethdev as a [`Port`], with packets kept in their `rte_mbuf`s end to end.
//!
//! The trick is the buffer layout. A DPDK packet pool is created with a 128-byte private area
//! per mbuf, and that area *is* our buffer header: `[rte_mbuf 128][our header 128][headroom
//! 128][data]`. DPDK's `buf_addr` then points exactly where our data room starts and its
//! `data_off` means what ours means, so a received `rte_mbuf` becomes an [`Mbuf`] by pointer
//! arithmetic and three stores into our header (the data offset and length beside the port,
//! then 32 bytes that are the same for the whole burst), and goes back to DPDK for transmission
//! with two (its `rearm_data` and `ol_flags`, then its lengths); one store per field cost about
//! 10 % of the forwarding rate. The pool ([`DpdkPool`]) is an external pool of ours whose
//! store is the DPDK mempool: stages that allocate (an ICMP error) take DPDK buffers too, and
//! every buffer returns to the mempool.
//! A packet from another pool (a pcap port's) is copied into an `rte_mbuf` on the way out.
//!
//! Where the chain only forwards, not even that conversion is needed: [`Port::rx_native`] and
//! [`Port::tx_native`] hand bursts of `rte_mbuf`s straight from one ethdev to another
//! (cut-through, see `pmd::port::native`), touching nothing per packet but its length for the
//! byte counters. Chained (multi-segment) frames go through untouched there too. Receive side
//! scaling over several queues hashes addresses and ports, or with [`Spread::Hosts`] only the
//! addresses (`RTE_ETH_RSS_IP`), so that a connection's fragments reach its queue.
//!
//! Offloads, where the device has them: the IPv4 header check on receive, the receive
//! timestamp (replay), and IPv4/TCP/UDP checksums on transmit for packets whose checksums a
//! stage left to transmit (`Mbuf::request_tx_csum`: the IPv4 checksum zeroed, the TCP/UDP one
//! set to the pseudo-header sum, `ol_flags` and the L2/L3 lengths set); without the transmit
//! offload those checksums are filled in software.

use std::ffi::CString;
use std::ptr::{null_mut, NonNull};

use super::{sys, DpdkError, Eal};
use crate::mbuf::{
    Burst, Mbuf, MbufHdr, RxTail, BURST_MAX, FLAG_IP_CSUM_BAD, FLAG_IP_CSUM_GOOD, HDR_SIZE,
    INDEX_BITS,
};
use crate::pool::{ExternalStore, Pool, PoolCache};
use crate::port::{NativeBurst, NativeKind, Port, PortDrop, PortError, PortStats, Spread};

/// `RTE_ETH_RX_OFFLOAD_TIMESTAMP` (`RTE_BIT64(14)` in `rte_ethdev.h`, a macro bindgen cannot
/// evaluate).
const RX_OFFLOAD_TIMESTAMP: u64 = 1 << 14;
/// `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM`.
const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;
/// `RTE_MBUF_F_RX_IP_CKSUM_MASK`, `_GOOD` and `_BAD` (`rte_mbuf_core.h`).
const RX_IP_CKSUM_MASK: u64 = (1 << 4) | (1 << 7);
const RX_IP_CKSUM_GOOD: u64 = 1 << 7;
const RX_IP_CKSUM_BAD: u64 = 1 << 4;
/// `RTE_ETH_TX_OFFLOAD_IPV4_CKSUM`, `_UDP_CKSUM` and `_TCP_CKSUM`: the checksum offloads the
/// port turns on when the device has all three.
const TX_OFFLOAD_CSUM: u64 = (1 << 1) | (1 << 2) | (1 << 3);
/// `RTE_MBUF_F_TX_IPV4`, `_IP_CKSUM`, `_TCP_CKSUM` and `_UDP_CKSUM` (`rte_mbuf_core.h`).
const TX_IPV4: u64 = 1 << 55;
const TX_IP_CKSUM: u64 = 1 << 54;
const TX_TCP_CKSUM: u64 = 1 << 52;
const TX_UDP_CKSUM: u64 = 3 << 52;

/// Readies a packet whose checksums were left to transmit ([`Mbuf::request_tx_csum`]) for the
/// device's offload, as DPDK's contract asks: the IPv4 header checksum zeroed, a TCP or UDP
/// checksum set to the pseudo-header sum. Returns the mbuf's `ol_flags` and `tx_offload`
/// (L2 and L3 lengths), or `None` after filling the checksums in software when the headers
/// do not hold or do not fit the offload's length fields.
fn csum_offload(m: &mut Mbuf, l3: u16) -> Option<(u64, u64)> {
    use crate::csum;
    let at = usize::from(l3);
    let layout = csum::ipv4_layout(m.data(), at).filter(|_| at < 128);
    let Some((ihl, tot, l4)) = layout else {
        m.fill_tx_csum();
        return None;
    };
    let ip = &mut m.data_mut()[at..at + tot];
    ip[10..12].fill(0);
    let mut flags = TX_IPV4 | TX_IP_CKSUM;
    if let Some(proto) = l4 {
        let c = ihl + if proto == 6 { 16 } else { 6 };
        let ph = csum::fold(csum::ipv4_pseudo(ip, 0, tot - ihl));
        ip[c..c + 2].copy_from_slice(&ph.to_be_bytes());
        flags |= if proto == 6 {
            TX_TCP_CKSUM
        } else {
            TX_UDP_CKSUM
        };
    }
    Some((flags, u64::from(l3) | (ihl as u64) << 7))
}

const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(sys::rte_mbuf, data_off) == 16);
    assert!(offset_of!(sys::rte_mbuf, refcnt) == 18);
    assert!(offset_of!(sys::rte_mbuf, nb_segs) == 20);
    assert!(offset_of!(sys::rte_mbuf, port) == 22);
    assert!(offset_of!(sys::rte_mbuf, ol_flags) == 24);
    assert!(offset_of!(sys::rte_mbuf, pkt_len) == 36);
    assert!(offset_of!(sys::rte_mbuf, data_len) == 40);
    assert!(offset_of!(sys::rte_mbuf, vlan_tci) == 42);
};

/// Readies one of our single-segment mbufs for transmission in two stores instead of one per
/// field: `rearm_data` (data offset, a reference count of 1, one segment, the port) with
/// `ol_flags`, then the packet and segment lengths (and no VLAN tag to insert).
///
/// # Safety
/// `r` must be an mbuf we own alone (reference count 1), of one segment, whose buffer holds
/// `data_off + len` bytes.
#[inline(always)]
unsafe fn write_tx(r: *mut sys::rte_mbuf, data_off: u16, len: u16, port: u16, ol_flags: u64) {
    let mut a = [0u8; 16];
    a[0..2].copy_from_slice(&data_off.to_ne_bytes());
    a[2..4].copy_from_slice(&1u16.to_ne_bytes());
    a[4..6].copy_from_slice(&1u16.to_ne_bytes());
    a[6..8].copy_from_slice(&port.to_ne_bytes());
    a[8..16].copy_from_slice(&ol_flags.to_ne_bytes());
    let mut b = [0u8; 8];
    b[0..4].copy_from_slice(&u32::from(len).to_ne_bytes());
    b[4..6].copy_from_slice(&len.to_ne_bytes());
    let p = r.cast::<u8>();
    // SAFETY: both runs lie in the mbuf's first cache line (offsets checked above).
    unsafe {
        p.add(16).cast::<[u8; 16]>().write_unaligned(a);
        p.add(36).cast::<[u8; 8]>().write_unaligned(b);
    }
}

thread_local! {
    static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes the calling thread a DPDK lcore, once: a thread DPDK does not know bypasses every
/// mempool's per-lcore cache, so each burst's mbuf allocation (in the driver's receive) and free
/// (after transmit) would hit the shared ring with compare-and-swap.
#[inline]
fn register_thread() {
    REGISTERED.with(|r| {
        if !r.get() {
            // SAFETY: the EAL is up (a port exists only after `Eal::init`); registering the
            // calling thread has no other precondition. On failure (no free lcore) the thread
            // simply keeps working without the per-lcore caches.
            unsafe { sys::rte_thread_register() };
            r.set(true);
        }
    });
}

/// The DPDK mempool as our pool's store.
struct MempoolStore {
    mp: *mut sys::rte_mempool,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer (the default ring ops); threads that
// are not EAL lcores bypass the per-lcore caches and use the ring directly.
unsafe impl Send for MempoolStore {}
// SAFETY: as above.
unsafe impl Sync for MempoolStore {}

// SAFETY: alloc_bulk hands out only mbufs of this mempool (whose private areas are exactly the
// slots the pool was created with), each once until freed; DPDK's mempool guarantees that.
unsafe impl ExternalStore for MempoolStore {
    fn alloc_bulk(&self, out: &mut [NonNull<u8>]) -> usize {
        let mut ms = [null_mut::<sys::rte_mbuf>(); 512];
        let mut n = out.len().min(ms.len());
        // DPDK's bulk get is all or nothing: halve until it succeeds.
        while n > 0 {
            // SAFETY: `ms` has room for n pointers; the mempool lives for the process.
            if unsafe { sys::dp_pktmbuf_alloc_bulk(self.mp, ms.as_mut_ptr(), n as u32) } == 0 {
                break;
            }
            n /= 2;
        }
        for (o, m) in out.iter_mut().zip(&ms[..n]) {
            // SAFETY: a pktmbuf pool object is followed by its private area (our header).
            *o = NonNull::new(unsafe { m.cast::<u8>().add(HDR_SIZE) }).expect("mbuf non-null");
        }
        n
    }

    fn free_bulk(&self, hdrs: &[NonNull<u8>]) {
        let mut ms = [null_mut::<sys::rte_mbuf>(); 512];
        for chunk in hdrs.chunks(ms.len()) {
            for (m, h) in ms.iter_mut().zip(chunk) {
                // SAFETY: each header sits right after its rte_mbuf (see `alloc_bulk`).
                *m = unsafe { h.as_ptr().sub(HDR_SIZE) }.cast();
            }
            // SAFETY: these mbufs came from this mempool and are owned by the caller.
            unsafe { sys::dp_pktmbuf_free_bulk(ms.as_mut_ptr(), chunk.len() as u32) };
        }
    }

    fn available(&self) -> u32 {
        // SAFETY: the mempool lives for the process.
        unsafe { sys::rte_mempool_avail_count(self.mp) }
    }
}

/// A pool whose buffers are a DPDK mempool's mbufs.
#[derive(Debug, Clone)]
pub struct DpdkPool {
    pool: Pool,
    mp: usize,
}

unsafe extern "C" fn collect_obj(
    _mp: *mut sys::rte_mempool,
    opaque: *mut libc::c_void,
    obj: *mut libc::c_void,
    _idx: u32,
) {
    // SAFETY: `opaque` is the `Vec<usize>` passed by `DpdkPool::new`, alive during the iteration.
    let v = unsafe { &mut *opaque.cast::<Vec<usize>>() };
    v.push(obj as usize);
}

impl DpdkPool {
    /// Creates a mempool of `count` mbufs with `data_room` bytes after DPDK's 128-byte headroom,
    /// on NUMA `socket` (`None`: the caller's), and our pool over it.
    pub fn new(
        _eal: &Eal,
        name: &str,
        count: u32,
        data_room: u16,
        socket: Option<u32>,
    ) -> Result<DpdkPool, DpdkError> {
        let fail = |why: String| DpdkError::Pool {
            name: name.to_string(),
            why,
        };
        if std::mem::size_of::<sys::rte_mbuf>() != HDR_SIZE {
            return Err(fail(format!(
                "rte_mbuf is {} bytes; the zero-copy layout needs {HDR_SIZE}",
                std::mem::size_of::<sys::rte_mbuf>()
            )));
        }
        let cname = CString::new(name).map_err(|_| fail("name has a NUL byte".into()))?;
        let headroom = 128u16;
        // SAFETY: the EAL is up (we hold `Eal`); arguments are plain values and a C string.
        let mp = unsafe {
            let sock = socket.map_or(sys::rte_socket_id() as i32, |s| s as i32);
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                256,
                HDR_SIZE as u16,
                headroom + data_room,
                sock,
            )
        };
        if mp.is_null() {
            return Err(fail(super::last_error()));
        }
        let mut objs: Vec<usize> = Vec::with_capacity(count as usize);
        // SAFETY: the callback only pushes into `objs`, which outlives the call.
        unsafe {
            sys::rte_mempool_obj_iter(mp, Some(collect_obj), (&mut objs as *mut Vec<usize>).cast())
        };
        let slots: Vec<NonNull<u8>> = objs
            .iter()
            // SAFETY: each object is an rte_mbuf followed by its 128-byte private area.
            .map(|&o| NonNull::new(unsafe { (o as *mut u8).add(HDR_SIZE) }).expect("non-null"))
            .collect();
        // SAFETY: every slot is a private area of HDR_SIZE followed by the mbuf's buffer of
        // headroom + data_room bytes, 64-aligned (mbufs are cache-line aligned and 128 bytes),
        // valid for the process (the mempool is never freed), handed out only by the store.
        let pool = unsafe {
            Pool::new_external(
                name,
                &slots,
                headroom,
                data_room,
                Box::new(MempoolStore { mp }),
            )
        }
        .map_err(|e| fail(e.to_string()))?;
        Ok(DpdkPool {
            pool,
            mp: mp as usize,
        })
    }

    /// Our pool over the mempool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn mp(&self) -> *mut sys::rte_mempool {
        self.mp as *mut sys::rte_mempool
    }
}

/// How a DPDK port is opened, beyond its device name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkPortOptions {
    /// Receive descriptors.
    pub rx_desc: u16,
    /// Transmit descriptors.
    pub tx_desc: u16,
    /// Arguments of a virtual device to create when the port opens (`rx_pcap=in.pcap` for
    /// `net_pcap0`), removed again when it closes; `None`: the device exists already (a NIC
    /// bound to a DPDK driver, or a `--vdev` of the EAL arguments).
    pub devargs: Option<String>,
    /// The device's input ends (a `net_pcap` reading a file): the first empty receive marks
    /// its end, as for a pcap port, and receive timestamps (the capture's, where the device
    /// offers the timestamp offload) are kept for the replay clock.
    pub ends: bool,
    /// Receive/transmit queue pairs. With more than one, receive side scaling spreads flows
    /// over them with a symmetric key (both directions of a flow reach one queue), where the
    /// device offers RSS; each queue can then be split off for its own worker
    /// ([`Port::take_queue`]).
    pub queues: u16,
    /// What RSS hashes over several queues: addresses and ports, or
    /// ([`Spread::Hosts`]) addresses only, as `dpdk-testpmd --rss-ip` sets it (the hash types
    /// `RTE_ETH_RSS_IP`).
    pub spread: Spread,
}

impl Default for DpdkPortOptions {
    fn default() -> Self {
        DpdkPortOptions {
            rx_desc: 1024,
            tx_desc: 1024,
            devargs: None,
            ends: false,
            queues: 1,
            spread: Spread::Flows,
        }
    }
}

/// `RTE_ETH_RSS_*` bits (macros in `rte_ethdev.h`): IPv4 and IPv6 addresses, fragments, TCP,
/// UDP and other protocols.
const RSS_IP_TCP_UDP: u64 = (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 7)
    | (1 << 8)
    | (1 << 9)
    | (1 << 10)
    | (1 << 11)
    | (1 << 13);

/// `RTE_ETH_RSS_IP`: IPv4 and IPv6 packets, fragments and the rest, hashed by their addresses.
const RSS_IP: u64 = (1 << 2) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 13) | (1 << 15);

/// The symmetric Toeplitz key (`0x6d5a` repeated): the hash of (a, b, pa, pb) equals that of
/// (b, a, pb, pa), so both directions of a connection reach the same queue, which per-worker
/// connection tracking needs.
static SYMMETRIC_RSS_KEY: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// The ethdev itself, shared by the port's queue handles: stopped, closed (and removed, if the
/// port created it) when the last handle goes.
struct Device {
    port_id: u16,
    /// The virtual device the port created, removed after the port is closed (fields drop
    /// after `drop` runs).
    _probed: Option<Probed>,
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: the port was started by `open_with`; stopping and closing it once is allowed.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
    }
}

/// A virtual device created from a port's `devargs`, removed when this is dropped: at once if
/// opening the port fails, or after the port is closed.
struct Probed(CString);

impl Drop for Probed {
    fn drop(&mut self) {
        // SAFETY: EAL is up; we created this vdev in `open_with` and no port of ours is open on
        // it any more.
        unsafe { sys::rte_eal_hotplug_remove(c"vdev".as_ptr(), self.0.as_ptr()) };
    }
}

/// An ethdev port, or one queue pair of it split off for a worker.
pub struct DpdkPort {
    name: String,
    dev: std::sync::Arc<Device>,
    id: u16,
    port_id: u16,
    /// The first queue pair this handle polls (its queue 0).
    base: u16,
    /// Queue pairs this handle holds (from `base`).
    queues: u16,
    pool_id: u32,
    mp: usize,
    stats: PortStats,
    mac: [u8; 6],
    /// See [`DpdkPortOptions::ends`].
    ends: bool,
    /// An empty receive was seen on an `ends` port.
    ended: bool,
    /// Where the receive timestamp sits in the mbuf, and the flag that says it is set.
    rx_ts: Option<(usize, u64)>,
    /// The device checks IPv4 header checksums on receive (its verdict goes to the header).
    rx_csum: bool,
    /// The device fills IPv4, TCP and UDP checksums on transmit (offload turned on).
    tx_csum: bool,
    /// Scratch for bursts of mbuf pointers, kept here so no burst zero-fills a fresh array.
    scratch: Box<[*mut sys::rte_mbuf; BURST_MAX]>,
    copied: Box<[bool; BURST_MAX]>,
}

// SAFETY: the scratch pointers are only meaningful during one rx/tx call on the owning thread;
// moving the port to another thread between calls is fine (DPDK queues may be polled by any one
// thread at a time).
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    /// Opens DPDK device `device` (an ethdev name: `net_null0`, a PCI address, ...) as our
    /// port `id` named `name`, with `rx_desc`/`tx_desc` descriptors, receiving into `pool`.
    pub fn open(
        eal: &Eal,
        name: &str,
        id: u16,
        device: &str,
        pool: &DpdkPool,
        rx_desc: u16,
        tx_desc: u16,
    ) -> Result<DpdkPort, DpdkError> {
        let opts = DpdkPortOptions {
            rx_desc,
            tx_desc,
            ..DpdkPortOptions::default()
        };
        Self::open_with(eal, name, id, device, pool, &opts)
    }

    /// [`DpdkPort::open`] with every option.
    pub fn open_with(
        _eal: &Eal,
        name: &str,
        id: u16,
        device: &str,
        pool: &DpdkPool,
        opts: &DpdkPortOptions,
    ) -> Result<DpdkPort, DpdkError> {
        let fail = |why: String| DpdkError::Port {
            device: device.to_string(),
            why,
        };
        let (rx_desc, tx_desc) = (opts.rx_desc, opts.tx_desc);
        let cdev = CString::new(device).map_err(|_| fail("name has a NUL byte".into()))?;
        let mut probed = None;
        if let Some(args) = &opts.devargs {
            let spec = CString::new(format!("{device},{args}"))
                .map_err(|_| fail("devargs have a NUL byte".into()))?;
            // SAFETY: EAL is up; the C string is valid for the call.
            let r = unsafe { sys::rte_dev_probe(spec.as_ptr()) };
            if r < 0 {
                return Err(fail(format!(
                    "cannot create the device with devargs {args:?}: {}",
                    super::strerror(-r)
                )));
            }
            // From here, returning early removes the device again.
            probed = Some(Probed(cdev.clone()));
        }
        let mut port_id = 0u16;
        // SAFETY: EAL is up; the C string and out-pointer are valid for the call.
        if unsafe { sys::rte_eth_dev_get_port_by_name(cdev.as_ptr(), &mut port_id) } != 0 {
            return Err(fail(
                "no such ethdev (give it with --vdev or devargs, or bind the NIC to a DPDK driver)"
                    .into(),
            ));
        }
        let r = Self::setup(
            port_id,
            pool,
            rx_desc,
            tx_desc,
            opts.ends,
            opts.queues.max(1),
            opts.spread,
        );
        let (mac, rx_ts, rx_csum, tx_csum) = r.map_err(fail)?;
        Ok(DpdkPort {
            name: name.to_string(),
            dev: std::sync::Arc::new(Device {
                port_id,
                _probed: probed,
            }),
            id,
            port_id,
            base: 0,
            queues: opts.queues.max(1),
            pool_id: pool.pool().id(),
            mp: pool.mp,
            stats: PortStats::default(),
            mac: mac.addr_bytes,
            ends: opts.ends,
            ended: false,
            rx_ts,
            rx_csum,
            tx_csum,
            scratch: Box::new([null_mut(); BURST_MAX]),
            copied: Box::new([false; BURST_MAX]),
        })
    }

    /// Configures and starts `port_id` with `queues` queue pairs (RSS with the symmetric key
    /// over several, where the device has it) and the IPv4 header checksum check on receive
    /// where the device has it; with `timestamps`, turns on the receive timestamp offload where
    /// the device has it; turns on IPv4/TCP/UDP checksum offload on transmit where the device
    /// has all three. Returns the MAC, the timestamp field, whether checksums are checked on
    /// receive and whether they are filled on transmit.
    #[allow(clippy::type_complexity)]
    fn setup(
        port_id: u16,
        pool: &DpdkPool,
        rx_desc: u16,
        tx_desc: u16,
        timestamps: bool,
        queues: u16,
        spread: Spread,
    ) -> Result<(sys::rte_ether_addr, Option<(usize, u64)>, bool, bool), String> {
        let check = |what: &str, r: i32| -> Result<(), String> {
            if r < 0 {
                Err(format!("{what}: {}", super::strerror(-r)))
            } else {
                Ok(())
            }
        };
        let mut mac = sys::rte_ether_addr::default();
        let mut rx_ts = None;
        let (rx_csum, tx_csum);
        // SAFETY: port_id exists; every pointer is valid for the call; the mempool lives for
        // the process.
        unsafe {
            let mut conf = sys::rte_eth_conf::default();
            let mut info = sys::rte_eth_dev_info::default();
            check("device info", sys::rte_eth_dev_info_get(port_id, &mut info))?;
            if queues > info.max_rx_queues || queues > info.max_tx_queues {
                return Err(format!(
                    "{queues} queues asked, the device has at most {} rx / {} tx",
                    info.max_rx_queues, info.max_tx_queues
                ));
            }
            let types = match spread {
                Spread::Flows => RSS_IP_TCP_UDP,
                Spread::Hosts => RSS_IP,
            };
            let hf = types & info.flow_type_rss_offloads;
            if queues > 1 && hf != 0 {
                conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = SYMMETRIC_RSS_KEY.as_ptr().cast_mut();
                conf.rx_adv_conf.rss_conf.rss_key_len = SYMMETRIC_RSS_KEY.len() as u8;
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
            }
            rx_csum = info.rx_offload_capa & RX_OFFLOAD_IPV4_CKSUM != 0;
            if rx_csum {
                conf.rxmode.offloads |= RX_OFFLOAD_IPV4_CKSUM;
            }
            tx_csum = info.tx_offload_capa & TX_OFFLOAD_CSUM == TX_OFFLOAD_CSUM;
            if tx_csum {
                conf.txmode.offloads |= TX_OFFLOAD_CSUM;
            }
            if timestamps {
                let ts = RX_OFFLOAD_TIMESTAMP;
                if info.rx_offload_capa & ts != 0 {
                    let (mut off, mut flag) = (0i32, 0u64);
                    if sys::rte_mbuf_dyn_rx_timestamp_register(&mut off, &mut flag) == 0 {
                        conf.rxmode.offloads |= ts;
                        rx_ts = Some((off as usize, flag));
                    }
                }
            }
            check(
                "configure",
                sys::rte_eth_dev_configure(port_id, queues, queues, &conf),
            )?;
            let sock = sys::rte_eth_dev_socket_id(port_id).max(0) as u32;
            for q in 0..queues {
                check(
                    "rx queue",
                    sys::rte_eth_rx_queue_setup(
                        port_id,
                        q,
                        rx_desc,
                        sock,
                        std::ptr::null(),
                        pool.mp(),
                    ),
                )?;
                check(
                    "tx queue",
                    sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, sock, std::ptr::null()),
                )?;
            }
            check("start", sys::rte_eth_dev_start(port_id))?;
            let _ = sys::rte_eth_promiscuous_enable(port_id);
            let _ = sys::rte_eth_macaddr_get(port_id, &mut mac);
        }
        Ok((mac, rx_ts, rx_csum, tx_csum))
    }

    /// The device's own counters (`rte_eth_stats_get`).
    pub fn ethdev_stats(&self) -> sys::rte_eth_stats {
        let mut st = sys::rte_eth_stats::default();
        // SAFETY: the port exists; `st` is a valid out-pointer.
        unsafe { sys::rte_eth_stats_get(self.port_id, &mut st) };
        st
    }

    /// The packet types the device's RSS hashes now (`rss_hf`, the `RTE_ETH_RSS_*` bits);
    /// 0 without RSS (one queue, or a device without it).
    pub fn rss_hash_types(&self) -> u64 {
        let mut conf = sys::rte_eth_rss_conf::default();
        // SAFETY: the port exists; `conf` is a valid out-pointer and its null key pointer asks
        // for no key.
        let r = unsafe { sys::rte_eth_dev_rss_hash_conf_get(self.port_id, &mut conf) };
        if r == 0 {
            conf.rss_hf
        } else {
            0
        }
    }
}

impl Port for DpdkPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    #[inline]
    fn rx_burst(
        &mut self,
        queue: u16,
        _pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        register_thread();
        let want = max.min(burst.room()).min(BURST_MAX);
        let ms = &mut *self.scratch;
        let q = self.base + queue;
        // SAFETY: `ms` has room for `want` pointers; the port and queue exist.
        let n = unsafe { sys::dp_rx_burst(self.port_id, q, ms.as_mut_ptr(), want as u16) };
        if n == 0 && self.ends && want > 0 {
            self.ended = true;
        }
        // Loop invariants in locals (registers), the burst written through its spare room and
        // its length set once: the compiler cannot keep them in registers across the raw
        // header stores otherwise.
        let (id, mp, rx_csum, rx_ts) = (self.id, self.mp, self.rx_csum, self.rx_ts);
        let tail = RxTail::new(q);
        let out = burst.spare_ptr();
        let mut got = 0usize;
        let mut bytes = 0u64;
        let mut oversize = 0u64;
        for &m in &ms[..n as usize] {
            // SAFETY: DPDK hands us ownership of `m`, an mbuf of one of its pools.
            unsafe {
                if (*m).nb_segs != 1 || (*m).pool as usize != mp {
                    // A chained (multi-segment) frame, or one from a pool we did not give
                    // the device: it does not fit one of our buffers.
                    oversize += 1;
                    let mut one = m;
                    sys::dp_pktmbuf_free_bulk(&mut one, 1);
                    continue;
                }
                let h = m.cast::<u8>().add(HDR_SIZE).cast::<MbufHdr>();
                let len = (*m).data_len;
                // DPDK keeps `data_off + data_len <= buf_len` for its single-segment mbufs.
                MbufHdr::write_rx(h, (*m).data_off, len, (*m).buf_len, id, &tail);
                if rx_csum {
                    (*h).flags = match (*m).ol_flags & RX_IP_CKSUM_MASK {
                        RX_IP_CKSUM_GOOD => FLAG_IP_CSUM_GOOD,
                        RX_IP_CKSUM_BAD => FLAG_IP_CSUM_BAD,
                        _ => 0,
                    };
                }
                if let Some((off, flag)) = rx_ts {
                    if (*m).ol_flags & flag != 0 {
                        // The device wrote the timestamp at `off`, a registered dynamic field.
                        (*h).timestamp = m.cast::<u8>().add(off).cast::<u64>().read_unaligned();
                    }
                }
                bytes += u64::from(len);
                // `got < want <= burst.room()`: the slot is in the spare room.
                out.add(got)
                    .write(Mbuf::from_raw(NonNull::new_unchecked(h)));
            }
            got += 1;
        }
        // SAFETY: the `got` slots after the old length were written above.
        unsafe { burst.set_len(burst.len() + got) };
        self.stats.rx_bytes += bytes;
        self.stats.drops[PortDrop::RxOversize as usize] += oversize;
        self.stats.rx_packets += got as u64;
        Ok(got)
    }

    #[inline]
    fn tx_burst(
        &mut self,
        queue: u16,
        cache: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        register_thread();
        let n = burst.len().min(BURST_MAX);
        let ms = &mut *self.scratch;
        let copied = &mut *self.copied;
        let mut k = 0;
        let mut bytes = 0u64;
        let mut any_copy = false;
        let (tx_csum, port_id, pool_id) = (self.tx_csum, self.port_id, self.pool_id);
        for m in &mut burst.as_mut_slice()[..n] {
            let len = m.len();
            // Checksums left to transmit: the device's where it has the offload (the engine
            // fills them in software for a port without it; this covers a direct caller).
            let offload = match m.tx_csum() {
                None => None,
                Some(l3) if tx_csum => csum_offload(m, l3),
                Some(_) => {
                    m.fill_tx_csum();
                    None
                }
            };
            if m.handle() >> INDEX_BITS == pool_id {
                // SAFETY: our buffer of the DPDK pool: its rte_mbuf sits right before it, ours
                // alone, of one segment.
                unsafe {
                    let r = m.as_ptr().cast_mut().sub(HDR_SIZE).cast::<sys::rte_mbuf>();
                    let flags = match offload {
                        Some((flags, lens)) => {
                            (*r).__bindgen_anon_3.tx_offload = lens;
                            flags
                        }
                        None => 0,
                    };
                    write_tx(r, m.headroom() as u16, len as u16, port_id, flags);
                    ms[k] = r;
                }
                copied[k] = false;
            } else {
                // Another pool's buffer: copy it into an mbuf of ours.
                let mut r = null_mut::<sys::rte_mbuf>();
                // SAFETY: one out-pointer; the mempool lives for the process.
                if unsafe { sys::dp_pktmbuf_alloc_bulk(self.mp as *mut _, &mut r, 1) } != 0 {
                    break;
                }
                // SAFETY: a fresh pktmbuf: `buf_addr + data_off` has `len` bytes of room
                // (data room >= any of our packets, checked by the configuration).
                unsafe {
                    let room = ((*r).buf_len - (*r).data_off) as usize;
                    if len > room {
                        sys::dp_pktmbuf_free_bulk(&mut r, 1);
                        break;
                    }
                    let dst = (*r).buf_addr.cast::<u8>().add((*r).data_off as usize);
                    std::ptr::copy_nonoverlapping(m.data().as_ptr(), dst, len);
                    (*r).data_len = len as u16;
                    (*r).pkt_len = len as u32;
                    if let Some((flags, lens)) = offload {
                        (*r).ol_flags = flags;
                        (*r).__bindgen_anon_3.tx_offload = lens;
                    }
                }
                ms[k] = r;
                copied[k] = true;
                any_copy = true;
            }
            bytes += len as u64;
            k += 1;
        }
        // SAFETY: `ms[..k]` are valid mbufs we own; the device takes ownership of those sent.
        let sent =
            unsafe { sys::dp_tx_burst(self.port_id, self.base + queue, ms.as_mut_ptr(), k as u16) }
                as usize;
        for i in sent..k {
            if copied[i] {
                // SAFETY: our unsent copy, still owned by us.
                unsafe { sys::dp_pktmbuf_free_bulk(&mut ms[i], 1) };
            }
        }
        if sent < k {
            bytes = burst.as_slice()[..sent]
                .iter()
                .map(|m| m.len() as u64)
                .sum();
        }
        if !any_copy {
            // The usual case: every mbuf sent is the device's now; the rest stay, in order.
            burst.forget_front(sent);
            self.stats.tx_packets += sent as u64;
            self.stats.tx_bytes += bytes;
            return Ok(sent);
        }
        burst.retain_owned(|i, m| {
            if i >= sent {
                return Some(m);
            }
            if copied[i] {
                cache.free(m);
            } else {
                // The device owns the mbuf now and frees it to the mempool when sent.
                let _ = m.into_handle();
            }
            None
        });
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += bytes;
        Ok(sent)
    }

    fn native_kind(&self) -> Option<NativeKind> {
        Some(NativeKind::RteMbuf)
    }

    #[inline]
    fn rx_native(
        &mut self,
        queue: u16,
        burst: &mut NativeBurst,
        max: usize,
    ) -> Result<usize, PortError> {
        register_thread();
        // `RteMbuf` is the only kind there is: a burst holds `rte_mbuf`s or nothing.
        burst.kind = Some(NativeKind::RteMbuf);
        let at = burst.len;
        let want = max.min(BURST_MAX - at);
        let out = burst.ptrs[at..].as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: `out` has room for `want` pointers; the port and queue exist. DPDK gives us
        // ownership of the mbufs it writes there.
        let n = usize::from(unsafe {
            sys::dp_rx_burst(self.port_id, self.base + queue, out, want as u16)
        });
        if n == 0 && self.ends && want > 0 {
            self.ended = true;
        }
        let mut bytes = 0u64;
        for &m in &burst.ptrs[at..at + n] {
            // SAFETY: a valid mbuf we own (just received).
            bytes += u64::from(unsafe { (*m.cast::<sys::rte_mbuf>()).pkt_len });
        }
        burst.len = at + n;
        burst.bytes += bytes;
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += bytes;
        Ok(n)
    }

    #[inline]
    fn tx_native(&mut self, queue: u16, burst: &mut NativeBurst) -> Result<usize, PortError> {
        if burst.is_empty() {
            return Ok(0);
        }
        if burst.kind != Some(NativeKind::RteMbuf) {
            return Err(PortError::Other {
                port: self.name.clone(),
                msg: "cut-through transmit of buffers that are not rte_mbufs".into(),
            });
        }
        register_thread();
        let held = burst.held();
        // SAFETY: every held pointer is an mbuf we own (`RteMbuf` bursts are filled only by
        // `rx_native`); the device takes ownership of the first `sent`.
        let sent = usize::from(unsafe {
            sys::dp_tx_burst(
                self.port_id,
                self.base + queue,
                held.as_mut_ptr().cast(),
                held.len() as u16,
            )
        });
        // The burst knows its bytes; only those not sent (still ours) are read.
        let mut left = 0u64;
        for &m in &held[sent..] {
            // SAFETY: not sent, so still ours.
            left += u64::from(unsafe { (*m.cast::<sys::rte_mbuf>()).pkt_len });
        }
        self.stats.tx_packets += sent as u64;
        self.stats.tx_bytes += burst.bytes - left;
        burst.bytes = left;
        burst.consume(sent);
        Ok(sent)
    }

    fn at_end(&self) -> bool {
        self.ended
    }

    fn tx_csum_offload(&self) -> bool {
        self.tx_csum
    }

    fn rx_queues(&self) -> u16 {
        self.queues
    }

    fn tx_queues(&self) -> u16 {
        self.queues
    }

    fn take_queue(&mut self, q: u16) -> Option<Box<dyn Port>> {
        if q == 0 || q + 1 != self.queues {
            return None;
        }
        self.queues -= 1;
        Some(Box::new(DpdkPort {
            name: self.name.clone(),
            dev: self.dev.clone(),
            id: self.id,
            port_id: self.port_id,
            base: self.base + q,
            queues: 1,
            pool_id: self.pool_id,
            mp: self.mp,
            stats: PortStats::default(),
            mac: self.mac,
            ends: self.ends,
            ended: false,
            rx_ts: self.rx_ts,
            rx_csum: self.rx_csum,
            tx_csum: self.tx_csum,
            scratch: Box::new([null_mut(); BURST_MAX]),
            copied: Box::new([false; BURST_MAX]),
        }))
    }

    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        if self.base != 0 {
            // The device's own counters are reported once, by the handle of queue 0.
            return s;
        }
        let e = self.ethdev_stats();
        s.drops[PortDrop::RxNoBuffer as usize] += e.rx_nombuf;
        s.drops[PortDrop::RxMissed as usize] += e.imissed;
        s
    }
}
