//! The buffer pool: a fixed set of packet buffers carved out of one region at start-up.
//!
//! Nothing is allocated after start-up: a pool of `count` slots is laid out once in a
//! hugepage region on the NUMA node of the cores that use it, and every slot's header is
//! written then. Free slots live in a shared multi-producer/multi-consumer ring of handles;
//! each worker takes them through its own [`PoolCache`], a plain array used as a stack, so the
//! common case (alloc or free of a burst) touches no shared cache line and no atomic. The
//! cache refills from, and spills to, the shared ring in large bulks.
//!
//! Pools are registered in a small process-wide table so a 32-bit handle (8 bits of pool id,
//! 24 of slot index) names any buffer of any pool; that is what lets rings carry handles rather
//! than pointers. A pool dropped while buffers are still out keeps its memory mapped (and says
//! so) rather than leave those buffers dangling.
//!
//! Exhaustion is not an error path: `alloc_burst` returns fewer buffers, and the caller counts
//! the shortfall as a drop.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::mbuf::{Burst, Mbuf, MbufHdr, BURST_MAX, HDR_SIZE, INDEX_BITS, INDEX_MASK};
use crate::mem::{HugePolicy, MemError, Region};
use crate::ring::{RingError, RingMem};

/// Pool parameters.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Name used in messages.
    pub name: String,
    /// Number of buffers.
    pub count: u32,
    /// Bytes of data room (default 2048).
    pub data_room: u16,
    /// Bytes of headroom before the data (default 128).
    pub headroom: u16,
    /// NUMA node to place the memory on.
    pub numa_node: Option<u32>,
    /// Hugepage policy.
    pub huge: HugePolicy,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "pool".into(),
            count: 8192,
            data_room: 2048,
            headroom: 128,
            numa_node: None,
            huge: HugePolicy::Prefer,
        }
    }
}

/// Errors creating a pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Bad parameters.
    #[error("pool {name}: {why}")]
    Config {
        /// Pool name.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// Memory could not be mapped.
    #[error("pool {name}: {source}")]
    Mem {
        /// Pool name.
        name: String,
        /// Cause.
        source: MemError,
    },
    /// Ring creation failed.
    #[error("pool {name}: {source}")]
    Ring {
        /// Pool name.
        name: String,
        /// Cause.
        source: RingError,
    },
    /// All pool ids are in use.
    #[error("pool {0}: too many pools (at most 256 per process)")]
    TooMany(String),
}

/// The immutable facts about a pool, reachable from a handle through the registry.
pub(crate) struct PoolCore {
    base: *mut u8,
    stride: usize,
    count: u32,
    id: u32,
    headroom: u16,
    buf_len: u16,
    common: NonNull<RingMem>,
    slow_frees: AtomicU64,
    /// External pools: slot headers by index (their memory is not one strided region).
    table: Option<Box<[NonNull<MbufHdr>]>>,
    /// External pools: where free buffers live instead of `common`.
    external: Option<Box<dyn ExternalStore>>,
}

/// Where an external pool keeps its free buffers (a DPDK mempool): the pool's caches refill
/// from it and spill to it in bulk, so the per-packet alloc and free stay the same code.
///
/// # Safety
/// `alloc_bulk` must hand out only headers of the slots the pool was created with, each at most
/// once until it comes back through `free_bulk`.
pub unsafe trait ExternalStore: Send + Sync {
    /// Takes up to `out.len()` free buffers; writes their header addresses; returns how many.
    fn alloc_bulk(&self, out: &mut [NonNull<u8>]) -> usize;
    /// Gives buffers back (header addresses).
    fn free_bulk(&self, hdrs: &[NonNull<u8>]);
    /// Free buffers in the store now (a snapshot).
    fn available(&self) -> u32;
}

// SAFETY: the core is immutable after construction except through atomics (ring, counter).
unsafe impl Send for PoolCore {}
// SAFETY: as above.
unsafe impl Sync for PoolCore {}

const MAX_POOLS: usize = 256;
static REGISTRY: [AtomicPtr<PoolCore>; MAX_POOLS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; MAX_POOLS];
static REGISTRY_LOCK: Mutex<()> = Mutex::new(());

impl PoolCore {
    #[inline(always)]
    fn slot(&self, index: u32) -> NonNull<MbufHdr> {
        if let Some(t) = &self.table {
            return t[index as usize];
        }
        // SAFETY: callers pass index < count; the slot lies inside the region.
        unsafe { NonNull::new_unchecked(self.base.add(index as usize * self.stride).cast()) }
    }

    #[inline(always)]
    fn ring(&self) -> &RingMem {
        // SAFETY: the ring memory lives as long as the core (both are leaked or freed together
        // only when no buffer is out).
        unsafe { self.common.as_ref() }
    }

    #[inline(always)]
    fn reset(&self, h: &mut MbufHdr) {
        h.data_off = self.headroom;
        h.data_len = 0;
        h.flags = 0;
        h.port = 0;
        h.queue = 0;
        h.seq = 0;
        h.timestamp = 0;
        h.snap_cut = 0;
        h.egress = crate::mbuf::NO_EGRESS;
    }
}

/// Takes ownership of the buffer named by `handle`.
///
/// # Safety
/// See [`Mbuf::from_handle`].
#[inline(always)]
pub(crate) unsafe fn mbuf_from_handle(handle: u32) -> Mbuf {
    let core = REGISTRY[(handle >> INDEX_BITS) as usize].load(Ordering::Acquire);
    // SAFETY: the caller guarantees the handle belongs to a live registered pool, so `core` is
    // non-null and points at its leaked `PoolCore`; the slot index is within the pool.
    unsafe { Mbuf::from_raw((*core).slot(handle & INDEX_MASK)) }
}

/// Returns one buffer to its pool's shared ring (the path `Drop for Mbuf` takes).
pub(crate) fn free_slow(handle: u32) {
    let core = REGISTRY[(handle >> INDEX_BITS) as usize].load(Ordering::Acquire);
    if core.is_null() {
        return;
    }
    // SAFETY: a registered core stays valid while any of its buffers is out.
    let core = unsafe { &*core };
    core.slow_frees.fetch_add(1, Ordering::Relaxed);
    if let Some(ext) = &core.external {
        ext.free_bulk(&[core.slot(handle & INDEX_MASK).cast()]);
        return;
    }
    let dummy = std::cell::Cell::new(0);
    // SAFETY: multi-producer enqueue is safe concurrently.
    unsafe { core.ring().enqueue::<true>(&[handle], &dummy) };
}

struct PoolOwner {
    core: &'static PoolCore,
    name: String,
    region: Option<Region>,
    ring_region: Option<Region>,
}

impl Drop for PoolOwner {
    fn drop(&mut self) {
        if self.core.external.is_some() {
            // The external store owns the memory and outlives us; keep the registration.
            return;
        }
        let free = self.core.ring().len();
        if free == self.core.count {
            REGISTRY[self.core.id as usize].store(std::ptr::null_mut(), Ordering::Release);
            // Region and ring memory are unmapped with the fields; the 100-byte core leaks.
        } else {
            eprintln!(
                "warning: pool {} dropped with {} of {} buffers still in use; keeping its memory",
                self.name,
                self.core.count - free,
                self.core.count
            );
            std::mem::forget(self.region.take());
            std::mem::forget(self.ring_region.take());
        }
    }
}

/// A buffer pool (cheap to clone; all clones share the buffers).
#[derive(Clone)]
pub struct Pool {
    owner: Arc<PoolOwner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.owner.name)
            .field("count", &self.owner.core.count)
            .finish()
    }
}

impl Pool {
    /// Creates a pool: maps its memory and writes every slot's header.
    pub fn new(cfg: &PoolConfig) -> Result<Pool, PoolError> {
        let err = |why: String| PoolError::Config {
            name: cfg.name.clone(),
            why,
        };
        if cfg.count == 0 || cfg.count > INDEX_MASK {
            return Err(err(format!(
                "buffer count {} is not between 1 and {}",
                cfg.count, INDEX_MASK
            )));
        }
        if cfg.headroom < 64 {
            return Err(err(format!("headroom {} is below 64 bytes", cfg.headroom)));
        }
        let buf_len = cfg.headroom as usize + cfg.data_room as usize;
        if cfg.data_room < 64 || buf_len > u16::MAX as usize {
            return Err(err(format!(
                "data room {} with headroom {} must be at least 64 and total at most 65535",
                cfg.data_room, cfg.headroom
            )));
        }
        let stride = (HDR_SIZE + buf_len).div_ceil(64) * 64;
        let mem_err = |source| PoolError::Mem {
            name: cfg.name.clone(),
            source,
        };
        let region =
            Region::new(stride * cfg.count as usize, cfg.numa_node, cfg.huge).map_err(mem_err)?;
        let ring_cap = (cfg.count + 1).next_power_of_two().max(2);
        let ring_region = Region::new(RingMem::bytes_needed(ring_cap), cfg.numa_node, cfg.huge)
            .map_err(mem_err)?;
        // SAFETY: `ring_region` is a fresh mapping (page aligned, so 128-aligned) of enough
        // bytes, owned by the pool for as long as the core is registered.
        let common = unsafe {
            RingMem::init_in(
                NonNull::new(ring_region.as_ptr()).expect("mmap never returns null"),
                ring_region.len(),
                ring_cap,
            )
        }
        .map_err(|source| PoolError::Ring {
            name: cfg.name.clone(),
            source,
        })?;

        let _g = REGISTRY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let id = REGISTRY
            .iter()
            .position(|r| r.load(Ordering::Acquire).is_null())
            .ok_or_else(|| PoolError::TooMany(cfg.name.clone()))? as u32;
        let core: &'static PoolCore = Box::leak(Box::new(PoolCore {
            base: region.as_ptr(),
            stride,
            count: cfg.count,
            id,
            headroom: cfg.headroom,
            buf_len: buf_len as u16,
            common,
            slow_frees: AtomicU64::new(0),
            table: None,
            external: None,
        }));
        let mut handles = [0u32; BURST_MAX];
        let dummy = std::cell::Cell::new(0);
        let mut i = 0;
        while i < cfg.count {
            let n = (cfg.count - i).min(BURST_MAX as u32);
            for (k, h) in handles[..n as usize].iter_mut().enumerate() {
                let idx = i + k as u32;
                let handle = (id << INDEX_BITS) | idx;
                // SAFETY: the slot is inside our fresh region and nobody else sees it yet.
                unsafe {
                    let hdr = core.slot(idx).as_ptr();
                    hdr.write(MbufHdr {
                        handle,
                        data_off: cfg.headroom,
                        data_len: 0,
                        buf_len: buf_len as u16,
                        port: 0,
                        queue: 0,
                        flags: 0,
                        flow_hash: 0,
                        snap_cut: 0,
                        seq: 0,
                        timestamp: 0,
                        egress: crate::mbuf::NO_EGRESS,
                        handoff_stage: 0,
                        tx_l3: 0,
                        _pad16: 0,
                        orig_dst: 0,
                        _pad: [0; 1],
                        meta: [0; 8],
                    });
                }
                *h = handle;
            }
            // SAFETY: no other user of the ring exists yet.
            unsafe { core.ring().enqueue::<true>(&handles[..n as usize], &dummy) };
            i += n;
        }
        REGISTRY[id as usize].store(core as *const PoolCore as *mut PoolCore, Ordering::Release);
        Ok(Pool {
            owner: Arc::new(PoolOwner {
                core,
                name: cfg.name.clone(),
                region: Some(region),
                ring_region: Some(ring_region),
            }),
        })
    }

    /// A pool over buffers that live in an external store (a DPDK mempool), so packets can stay
    /// in the store's buffers through the whole chain. Writes every slot's header.
    ///
    /// # Safety
    /// Each pointer in `slots` must be the start of `HDR_SIZE + headroom + data_room` bytes,
    /// 64-byte aligned, valid for the rest of the process, and handed out only by `store`
    /// (which must uphold [`ExternalStore`]'s contract for exactly these slots).
    pub unsafe fn new_external(
        name: &str,
        slots: &[NonNull<u8>],
        headroom: u16,
        data_room: u16,
        store: Box<dyn ExternalStore>,
    ) -> Result<Pool, PoolError> {
        let err = |why: String| PoolError::Config {
            name: name.to_string(),
            why,
        };
        if slots.is_empty() || slots.len() > INDEX_MASK as usize {
            return Err(err(format!("{} buffers is out of range", slots.len())));
        }
        let buf_len = headroom as usize + data_room as usize;
        if buf_len > u16::MAX as usize {
            return Err(err("headroom + data room above 65535".into()));
        }
        if slots
            .iter()
            .any(|p| !(p.as_ptr() as usize).is_multiple_of(64))
        {
            return Err(err("a buffer header is not 64-byte aligned".into()));
        }
        let ring_region =
            Region::new(RingMem::bytes_needed(2), None, HugePolicy::Never).map_err(|source| {
                PoolError::Mem {
                    name: name.to_string(),
                    source,
                }
            })?;
        // SAFETY: a fresh page-aligned mapping, large enough; it is leaked with the core (an
        // external pool is never unregistered).
        let common = unsafe {
            RingMem::init_in(
                NonNull::new(ring_region.as_ptr()).expect("mmap never returns null"),
                ring_region.len(),
                2,
            )
        }
        .map_err(|source| PoolError::Ring {
            name: name.to_string(),
            source,
        })?;
        std::mem::forget(ring_region);
        let _g = REGISTRY_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let id = REGISTRY
            .iter()
            .position(|r| r.load(Ordering::Acquire).is_null())
            .ok_or_else(|| PoolError::TooMany(name.to_string()))? as u32;
        let table: Box<[NonNull<MbufHdr>]> = slots.iter().map(|p| p.cast()).collect();
        for (idx, hdr) in table.iter().enumerate() {
            // SAFETY: the caller guarantees each slot is valid, exclusive memory of at least a
            // header's size; nobody else reads our header area.
            unsafe {
                hdr.as_ptr().write(MbufHdr {
                    handle: (id << INDEX_BITS) | idx as u32,
                    data_off: headroom,
                    data_len: 0,
                    buf_len: buf_len as u16,
                    port: 0,
                    queue: 0,
                    flags: 0,
                    flow_hash: 0,
                    snap_cut: 0,
                    seq: 0,
                    timestamp: 0,
                    egress: crate::mbuf::NO_EGRESS,
                    handoff_stage: 0,
                    tx_l3: 0,
                    _pad16: 0,
                    orig_dst: 0,
                    _pad: [0; 1],
                    meta: [0; 8],
                });
            }
        }
        let core: &'static PoolCore = Box::leak(Box::new(PoolCore {
            base: std::ptr::null_mut(),
            stride: 0,
            count: slots.len() as u32,
            id,
            headroom,
            buf_len: buf_len as u16,
            common,
            slow_frees: AtomicU64::new(0),
            table: Some(table),
            external: Some(store),
        }));
        REGISTRY[id as usize].store(core as *const PoolCore as *mut PoolCore, Ordering::Release);
        Ok(Pool {
            owner: Arc::new(PoolOwner {
                core,
                name: name.to_string(),
                region: None,
                ring_region: None,
            }),
        })
    }

    /// This pool's id (the top bits of its buffers' handles).
    pub fn id(&self) -> u32 {
        self.owner.core.id
    }

    /// A per-core cache in front of this pool.
    pub fn cache(&self) -> PoolCache {
        PoolCache {
            owner: self.owner.clone(),
            core: self.owner.core,
            stack: vec![0; CACHE_CAP].into_boxed_slice(),
            len: 0,
            alloc_fails: 0,
        }
    }

    /// Total buffers.
    pub fn count(&self) -> u32 {
        self.owner.core.count
    }

    /// Buffers in the shared ring now (not counting those parked in caches).
    pub fn shared_free(&self) -> u32 {
        match &self.owner.core.external {
            Some(ext) => ext.available(),
            None => self.owner.core.ring().len(),
        }
    }

    /// Buffers freed one at a time by `Drop` (should stay near zero on the packet path).
    pub fn slow_frees(&self) -> u64 {
        self.owner.core.slow_frees.load(Ordering::Relaxed)
    }

    /// Bytes of data room after the default headroom.
    pub fn data_room(&self) -> usize {
        (self.owner.core.buf_len - self.owner.core.headroom) as usize
    }

    /// How the pool's memory is backed.
    pub fn backing(&self) -> crate::mem::Backing {
        self.owner
            .region
            .as_ref()
            .map_or(crate::mem::Backing::Normal, |r| r.backing())
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.owner.name
    }
}

const CACHE_CAP: usize = 1024;
const CACHE_REFILL: usize = 512;

/// A per-worker cache of free buffers; no atomics unless it refills or spills.
pub struct PoolCache {
    owner: Arc<PoolOwner>,
    core: &'static PoolCore,
    stack: Box<[u32]>,
    len: usize,
    alloc_fails: u64,
}

impl PoolCache {
    fn refill(&mut self) {
        let room = CACHE_REFILL.min(CACHE_CAP - self.len);
        if let Some(ext) = &self.core.external {
            let mut hdrs = [NonNull::<u8>::dangling(); CACHE_REFILL];
            let n = ext.alloc_bulk(&mut hdrs[..room]);
            for h in &hdrs[..n] {
                // SAFETY: the store hands out headers of our registered, initialised slots.
                self.stack[self.len] = unsafe { (*h.as_ptr().cast::<MbufHdr>()).handle };
                self.len += 1;
            }
            return;
        }
        let dummy = std::cell::Cell::new(0);
        // SAFETY: multi-consumer dequeue is safe concurrently.
        let n = unsafe {
            self.core
                .ring()
                .dequeue::<true>(&mut self.stack[self.len..self.len + room], &dummy)
        };
        self.len += n as usize;
    }

    fn spill(&mut self, keep: usize) {
        if let Some(ext) = &self.core.external {
            while self.len > keep {
                let n = (self.len - keep).min(CACHE_REFILL);
                let mut hdrs = [NonNull::<u8>::dangling(); CACHE_REFILL];
                for (h, &handle) in hdrs.iter_mut().zip(&self.stack[self.len - n..self.len]) {
                    *h = self.core.slot(handle & INDEX_MASK).cast();
                }
                ext.free_bulk(&hdrs[..n]);
                self.len -= n;
            }
            return;
        }
        let dummy = std::cell::Cell::new(0);
        while self.len > keep {
            // SAFETY: multi-producer enqueue is safe concurrently.
            let n = unsafe {
                self.core
                    .ring()
                    .enqueue::<true>(&self.stack[keep..self.len], &dummy)
            };
            // The ring has room for every buffer of the pool, so this always makes progress.
            self.len -= n as usize;
            if n == 0 {
                break;
            }
        }
    }

    #[inline(always)]
    fn take(&mut self) -> Mbuf {
        self.len -= 1;
        let h = self.stack[self.len];
        let p = self.core.slot(h & INDEX_MASK);
        // SAFETY: the handle came from our pool's free list, so the slot is initialised and
        // unowned; we reset the per-packet fields before handing it out.
        unsafe {
            self.core.reset(&mut *p.as_ptr());
            Mbuf::from_raw(p)
        }
    }

    /// One buffer, or `None` when the pool is exhausted (counted in [`Self::alloc_fails`]).
    #[inline]
    pub fn alloc(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            self.refill();
            if self.len == 0 {
                self.alloc_fails += 1;
                return None;
            }
        }
        Some(self.take())
    }

    /// Appends up to `n` fresh buffers to `burst`; returns how many (fewer when exhausted;
    /// the shortfall is counted in [`Self::alloc_fails`]).
    #[inline]
    pub fn alloc_burst(&mut self, burst: &mut Burst, n: usize) -> usize {
        let n = n.min(burst.room());
        if self.len < n {
            self.refill();
        }
        let k = n.min(self.len);
        for _ in 0..k {
            let m = self.take();
            // `k` <= room, checked above.
            let _ = burst.push(m);
        }
        self.alloc_fails += (n - k) as u64;
        k
    }

    /// Returns one buffer.
    #[inline]
    pub fn free(&mut self, m: Mbuf) {
        let h = m.handle();
        if h >> INDEX_BITS != self.core.id {
            drop(m); // another pool's buffer: its own Drop returns it there
            return;
        }
        std::mem::forget(m);
        if self.len == CACHE_CAP {
            self.spill(CACHE_REFILL);
        }
        self.stack[self.len] = h;
        self.len += 1;
    }

    /// Returns every buffer of `burst` and leaves it empty.
    #[inline]
    pub fn free_burst(&mut self, burst: &mut Burst) {
        if self.len + burst.len() > CACHE_CAP {
            self.spill(CACHE_REFILL.saturating_sub(burst.len()));
        }
        let core_id = self.core.id;
        let stack = &mut self.stack;
        let len = &mut self.len;
        burst.retain_owned(|_, m| {
            let h = m.handle();
            if h >> INDEX_BITS == core_id {
                std::mem::forget(m);
                stack[*len] = h;
                *len += 1;
            }
            // another pool's buffer: dropped here, its Drop returns it
            None
        });
    }

    /// Allocations that found the pool empty.
    pub fn alloc_fails(&self) -> u64 {
        self.alloc_fails
    }

    /// Buffers parked in this cache.
    pub fn cached(&self) -> usize {
        self.len
    }

    /// The pool behind this cache.
    pub fn pool(&self) -> Pool {
        Pool {
            owner: self.owner.clone(),
        }
    }
}

impl Drop for PoolCache {
    fn drop(&mut self) {
        self.spill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(count: u32) -> Pool {
        Pool::new(&PoolConfig {
            name: "t".into(),
            count,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn alloc_until_exhausted_then_counted() {
        let pool = small(100);
        let mut c = pool.cache();
        let mut b = Burst::new();
        assert_eq!(c.alloc_burst(&mut b, 64), 64);
        let mut b2 = Burst::new();
        assert_eq!(c.alloc_burst(&mut b2, 64), 36);
        assert_eq!(c.alloc_fails(), 28);
        assert!(c.alloc().is_none());
        c.free_burst(&mut b);
        c.free_burst(&mut b2);
        assert!(b.is_empty());
        drop(c);
        assert_eq!(pool.shared_free(), 100);
    }

    #[test]
    fn append_to_moves_all_in_order_or_nothing() {
        let pool = small(600);
        let mut c = pool.cache();
        let mut a = Burst::new();
        let mut b = Burst::new();
        assert_eq!(c.alloc_burst(&mut a, 10), 10);
        assert_eq!(c.alloc_burst(&mut b, 5), 5);
        let want: Vec<u32> = b
            .as_slice()
            .iter()
            .chain(a.as_slice())
            .map(|m| m.handle())
            .collect();
        assert!(a.append_to(&mut b));
        assert!(a.is_empty());
        let got: Vec<u32> = b.as_slice().iter().map(|m| m.handle()).collect();
        assert_eq!(got, want);
        // No room for all: nothing moves.
        let mut full = Burst::new();
        assert_eq!(c.alloc_burst(&mut full, BURST_MAX), BURST_MAX);
        assert!(!b.append_to(&mut full));
        assert_eq!((b.len(), full.len()), (15, BURST_MAX));
        c.free_burst(&mut b);
        c.free_burst(&mut full);
        drop(c);
        assert_eq!(pool.shared_free(), 600, "nothing lost or freed twice");
    }

    #[test]
    fn buffer_geometry_and_reset() {
        let pool = small(4);
        let mut c = pool.cache();
        let mut m = c.alloc().unwrap();
        assert_eq!(m.headroom(), 128);
        assert_eq!(m.tailroom(), 2048);
        assert!(m.append(60).is_some());
        m.data_mut().fill(0xab);
        assert!(m.prepend(4).is_some());
        assert_eq!(m.len(), 64);
        assert!(m.prepend(200).is_none());
        assert!(!m.set_len(5000));
        m.set_port(3);
        m.set_flow_hash(9);
        m.set_egress(1);
        c.free(m);
        let m = c.alloc().unwrap();
        assert_eq!(
            (m.len(), m.port(), m.flow_hash(), m.egress()),
            (0, 0, None, crate::mbuf::NO_EGRESS)
        );
        c.free(m);
    }

    #[test]
    fn handles_round_trip_and_drop_returns() {
        let pool = small(8);
        let mut c = pool.cache();
        let m = c.alloc().unwrap();
        let h = m.into_handle();
        // SAFETY: we just gave up this handle.
        let m = unsafe { Mbuf::from_handle(h) };
        assert_eq!(m.handle(), h);
        drop(m);
        assert_eq!(pool.slow_frees(), 1);
        drop(c);
        assert_eq!(pool.shared_free(), 8);
    }

    #[test]
    fn caches_on_threads_share_one_pool() {
        let pool = small(4096);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = pool.clone();
                std::thread::spawn(move || {
                    let mut c = p.cache();
                    let mut b = Burst::new();
                    for _ in 0..2000 {
                        c.alloc_burst(&mut b, 32);
                        c.free_burst(&mut b);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.shared_free(), 4096);
    }

    /// A store over plain memory, standing in for a DPDK mempool.
    struct TestStore(Mutex<Vec<usize>>);
    // SAFETY: it hands out each address it holds once, and only the slots it was built with.
    unsafe impl ExternalStore for TestStore {
        fn alloc_bulk(&self, out: &mut [NonNull<u8>]) -> usize {
            let mut v = self.0.lock().unwrap();
            let n = out.len().min(v.len());
            for o in out[..n].iter_mut() {
                *o = NonNull::new(v.pop().unwrap() as *mut u8).unwrap();
            }
            n
        }
        fn free_bulk(&self, hdrs: &[NonNull<u8>]) {
            self.0
                .lock()
                .unwrap()
                .extend(hdrs.iter().map(|h| h.as_ptr() as usize));
        }
        fn available(&self) -> u32 {
            self.0.lock().unwrap().len() as u32
        }
    }

    #[test]
    fn external_pool_refills_spills_and_resolves_handles() {
        let stride = HDR_SIZE + 128 + 512;
        let region = Region::new(stride * 3000, None, HugePolicy::Never).unwrap();
        // Slots in reverse order, so the table (not a stride) must be what resolves handles.
        let slots: Vec<NonNull<u8>> = (0..3000)
            .rev()
            // SAFETY: inside the region, which we leak below for the pool's lifetime.
            .map(|i| NonNull::new(unsafe { region.as_ptr().add(i * stride) }).unwrap())
            .collect();
        let store = TestStore(Mutex::new(
            slots.iter().map(|p| p.as_ptr() as usize).collect(),
        ));
        // SAFETY: every slot is 64-aligned (stride is a multiple of 64), valid while the region
        // lives (leaked), and only the store hands them out.
        let pool = unsafe { Pool::new_external("ext", &slots, 128, 512, Box::new(store)) }.unwrap();
        std::mem::forget(region);
        let mut c = pool.cache();
        let mut b = Burst::new();
        assert_eq!(c.alloc_burst(&mut b, 200), 200);
        assert!(pool.shared_free() <= 2800);
        for m in b.as_mut_slice() {
            assert_eq!(m.headroom(), 128);
            assert_eq!(m.tailroom(), 512);
            m.set_len(64);
        }
        let m = b.pop().unwrap();
        let h = m.into_handle();
        // SAFETY: we just gave up this handle.
        let m = unsafe { Mbuf::from_handle(h) };
        assert_eq!(m.handle(), h);
        assert_eq!(m.len(), 64);
        drop(m); // slow path: straight back to the store
        assert_eq!(pool.slow_frees(), 1);
        c.free_burst(&mut b);
        drop(c);
        assert_eq!(pool.shared_free(), 3000, "every buffer back in the store");
    }
}
