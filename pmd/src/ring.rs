//! Bounded burst rings of 32-bit buffer handles.
//!
//! Rings join the pieces of the dataplane that run on different cores (or in different
//! processes): the dispatcher hands packets to workers through them, pipeline segments pass
//! bursts along them, and the buffer pool keeps its shared free list in one. They follow the
//! design of DPDK's `rte_ring`: a power-of-two array of slots, a producer head/tail pair and a
//! consumer head/tail pair, each pair on its own cache line so the two sides never write the
//! same line. A single producer (or consumer) moves its head with a plain store; several use a
//! compare-and-swap on the head and then wait for the ones before them to publish their tail.
//!
//! The ring holds `u32` handles, never pointers, and its whole state lives in one `#[repr(C)]`
//! block ([`RingMem`]) that can be placed in memory shared between processes
//! ([`RingMem::init_in`]). Every operation is a burst: it moves as many items as fit (or as
//! are there) up to the slice length and says how many it moved.
//!
//! The safe handles ([`Producer`], [`Consumer`]) encode the synchronisation mode in the type: a
//! single-producer handle cannot be cloned or shared, so the single-producer fast path cannot
//! be misused from safe code. Each single-side handle also caches the other side's last seen
//! tail, so a producer that is far from full touches the consumer's cache line only when its
//! cached view runs out.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::Cell;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const MAGIC: u32 = 0x5249_4e47; // "RING"

/// One side's head and tail, alone on a cache line (two, against adjacent-line prefetch).
#[repr(C, align(128))]
struct HeadTail {
    head: AtomicU32,
    tail: AtomicU32,
}

/// The ring's shared state: a header followed in memory by `capacity` slots.
///
/// This block is position independent (no pointers), so it may live in memory mapped by
/// several processes at different addresses.
#[repr(C)]
pub struct RingMem {
    magic: u32,
    capacity: u32,
    mask: u32,
    _pad: [u32; 29],
    prod: HeadTail,
    cons: HeadTail,
    // `capacity` AtomicU32 slots follow.
}

/// Errors creating or attaching a ring.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// The capacity is not a power of two between 2 and 2^30.
    #[error("ring capacity {0} is not a power of two between 2 and 2^30")]
    BadCapacity(u32),
    /// The memory given is too small or misaligned.
    #[error("ring memory at {addr:#x} ({len} bytes) is too small or not 128-byte aligned")]
    BadMemory {
        /// Address of the memory.
        addr: usize,
        /// Its length.
        len: usize,
    },
    /// The memory does not hold an initialised ring.
    #[error("memory does not hold a ring (bad magic or capacity)")]
    NotARing,
}

impl RingMem {
    /// Bytes needed for a ring of `capacity` slots.
    pub fn bytes_needed(capacity: u32) -> usize {
        std::mem::size_of::<RingMem>() + capacity as usize * 4
    }

    fn check_capacity(capacity: u32) -> Result<(), RingError> {
        if !(2..=1 << 30).contains(&capacity) || !capacity.is_power_of_two() {
            return Err(RingError::BadCapacity(capacity));
        }
        Ok(())
    }

    /// Initialises a ring in caller-provided memory (for example a shared mapping).
    ///
    /// # Safety
    /// `mem` must be valid for reads and writes of `len` bytes for as long as any handle to the
    /// ring is used, aligned to 128 bytes, and not accessed other than through ring handles.
    pub unsafe fn init_in(
        mem: NonNull<u8>,
        len: usize,
        capacity: u32,
    ) -> Result<NonNull<RingMem>, RingError> {
        Self::check_capacity(capacity)?;
        if len < Self::bytes_needed(capacity) || !(mem.as_ptr() as usize).is_multiple_of(128) {
            return Err(RingError::BadMemory {
                addr: mem.as_ptr() as usize,
                len,
            });
        }
        let ring = mem.cast::<RingMem>();
        // SAFETY: the caller guarantees `len` valid, exclusive, aligned bytes; we checked that
        // they hold a header plus `capacity` slots. All fields are plain integers/atomics, so
        // writing them through a raw pointer is sound; slots are zeroed before publication.
        unsafe {
            std::ptr::write_bytes(mem.as_ptr(), 0, Self::bytes_needed(capacity));
            let r = ring.as_ptr();
            (*r).capacity = capacity;
            (*r).mask = capacity - 1;
            (*r).magic = MAGIC;
        }
        Ok(ring)
    }

    /// Attaches to a ring that another party initialised with [`RingMem::init_in`].
    ///
    /// # Safety
    /// As for [`RingMem::init_in`]; additionally the memory must have been initialised.
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<NonNull<RingMem>, RingError> {
        if len < std::mem::size_of::<RingMem>() || !(mem.as_ptr() as usize).is_multiple_of(128) {
            return Err(RingError::BadMemory {
                addr: mem.as_ptr() as usize,
                len,
            });
        }
        let ring = mem.cast::<RingMem>();
        // SAFETY: the header fits in `len` bytes (checked) and the caller guarantees validity.
        let (magic, cap, mask) = unsafe {
            let r = ring.as_ptr();
            ((*r).magic, (*r).capacity, (*r).mask)
        };
        if magic != MAGIC
            || Self::check_capacity(cap).is_err()
            || mask != cap - 1
            || len < Self::bytes_needed(cap)
        {
            return Err(RingError::NotARing);
        }
        Ok(ring)
    }

    #[inline(always)]
    fn slots(&self) -> *const AtomicU32 {
        // SAFETY: the slots follow the header in the same allocation (guaranteed by
        // `init_in`/`attach`, which checked the length).
        unsafe { (self as *const RingMem).add(1).cast::<AtomicU32>() }
    }

    #[inline(always)]
    fn slot(&self, pos: u32) -> &AtomicU32 {
        // SAFETY: `pos & mask` < capacity, and the slot array has `capacity` entries.
        unsafe { &*self.slots().add((pos & self.mask) as usize) }
    }

    /// Number of slots.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Items currently in the ring (a snapshot).
    #[inline]
    pub fn len(&self) -> u32 {
        let t = self.prod.tail.load(Ordering::Acquire);
        let h = self.cons.tail.load(Ordering::Acquire);
        t.wrapping_sub(h).min(self.capacity)
    }

    /// True when the ring holds no item (a snapshot).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Enqueues up to `items.len()` items; returns how many went in.
    ///
    /// # Safety
    /// When `MULTI` is false, no other thread or process may enqueue on this ring concurrently.
    #[inline]
    pub unsafe fn enqueue<const MULTI: bool>(&self, items: &[u32], cached_free: &Cell<u32>) -> u32 {
        let want = items.len().min(u32::MAX as usize) as u32;
        if want == 0 {
            return 0;
        }
        let (head, n) = if MULTI {
            let mut head = self.prod.head.load(Ordering::Relaxed);
            loop {
                let cons_tail = self.cons.tail.load(Ordering::Acquire);
                let free = self.capacity.wrapping_add(cons_tail).wrapping_sub(head);
                let n = want.min(free);
                if n == 0 {
                    return 0;
                }
                match self.prod.head.compare_exchange_weak(
                    head,
                    head.wrapping_add(n),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break (head, n),
                    Err(h) => head = h,
                }
            }
        } else {
            let head = self.prod.head.load(Ordering::Relaxed);
            let mut free = cached_free.get();
            if free < want {
                let cons_tail = self.cons.tail.load(Ordering::Acquire);
                free = self.capacity.wrapping_add(cons_tail).wrapping_sub(head);
            }
            let n = want.min(free);
            if n == 0 {
                cached_free.set(0);
                return 0;
            }
            cached_free.set(free - n);
            self.prod
                .head
                .store(head.wrapping_add(n), Ordering::Relaxed);
            (head, n)
        };
        for (i, &item) in items[..n as usize].iter().enumerate() {
            self.slot(head.wrapping_add(i as u32))
                .store(item, Ordering::Relaxed);
        }
        if MULTI {
            // Wait for producers that reserved slots before us to publish theirs.
            let mut spins = 0u32;
            while self.prod.tail.load(Ordering::Relaxed) != head {
                spin_wait(&mut spins);
            }
        }
        self.prod
            .tail
            .store(head.wrapping_add(n), Ordering::Release);
        n
    }

    /// Dequeues up to `out.len()` items; returns how many came out.
    ///
    /// # Safety
    /// When `MULTI` is false, no other thread or process may dequeue from this ring concurrently.
    #[inline]
    pub unsafe fn dequeue<const MULTI: bool>(
        &self,
        out: &mut [u32],
        cached_avail: &Cell<u32>,
    ) -> u32 {
        let want = out.len().min(u32::MAX as usize) as u32;
        if want == 0 {
            return 0;
        }
        let (head, n) = if MULTI {
            let mut head = self.cons.head.load(Ordering::Relaxed);
            loop {
                let prod_tail = self.prod.tail.load(Ordering::Acquire);
                let avail = prod_tail.wrapping_sub(head);
                let n = want.min(avail);
                if n == 0 {
                    return 0;
                }
                match self.cons.head.compare_exchange_weak(
                    head,
                    head.wrapping_add(n),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break (head, n),
                    Err(h) => head = h,
                }
            }
        } else {
            let head = self.cons.head.load(Ordering::Relaxed);
            let mut avail = cached_avail.get();
            if avail < want {
                let prod_tail = self.prod.tail.load(Ordering::Acquire);
                avail = prod_tail.wrapping_sub(head);
            }
            let n = want.min(avail);
            if n == 0 {
                cached_avail.set(0);
                return 0;
            }
            cached_avail.set(avail - n);
            self.cons
                .head
                .store(head.wrapping_add(n), Ordering::Relaxed);
            (head, n)
        };
        for (i, o) in out[..n as usize].iter_mut().enumerate() {
            *o = self
                .slot(head.wrapping_add(i as u32))
                .load(Ordering::Relaxed);
        }
        if MULTI {
            let mut spins = 0u32;
            while self.cons.tail.load(Ordering::Relaxed) != head {
                spin_wait(&mut spins);
            }
        }
        self.cons
            .tail
            .store(head.wrapping_add(n), Ordering::Release);
        n
    }
}

/// Waits for another producer (or consumer) to publish. Spins briefly, then yields: if that
/// thread was preempted mid-burst (more threads than cores), spinning would only delay it.
#[inline]
fn spin_wait(spins: &mut u32) {
    *spins += 1;
    if *spins < 256 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// A ring in process memory, freed when the last handle goes.
struct OwnedRing {
    ring: NonNull<RingMem>,
    layout: Layout,
}

// SAFETY: the ring's shared state is only accessed through atomics; the handles that use the
// single-side fast paths are `!Sync` and unique by construction.
unsafe impl Send for OwnedRing {}
// SAFETY: as above.
unsafe impl Sync for OwnedRing {}

impl OwnedRing {
    fn new(capacity: u32) -> Result<Arc<Self>, RingError> {
        RingMem::check_capacity(capacity)?;
        let layout = Layout::from_size_align(RingMem::bytes_needed(capacity), 128)
            .map_err(|_| RingError::BadCapacity(capacity))?;
        // SAFETY: the layout has a non-zero size.
        let mem = unsafe { alloc_zeroed(layout) };
        let Some(mem) = NonNull::new(mem) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `mem` is a fresh, exclusive, 128-aligned allocation of `layout.size()` bytes,
        // kept alive by this `OwnedRing` until drop.
        let ring = unsafe { RingMem::init_in(mem, layout.size(), capacity)? };
        Ok(Arc::new(OwnedRing { ring, layout }))
    }

    fn mem(&self) -> &RingMem {
        // SAFETY: the ring memory lives as long as `self`.
        unsafe { self.ring.as_ref() }
    }
}

impl Drop for OwnedRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; no handle outlives the Arc.
        unsafe { dealloc(self.ring.as_ptr().cast(), self.layout) }
    }
}

/// The producing end of a ring. `MULTI = false`: the only producer (not `Clone`, not `Sync`).
/// `MULTI = true`: one of several producers (`Clone`, `Sync`).
pub struct Producer<const MULTI: bool> {
    ring: Arc<OwnedRing>,
    cached: Cell<u32>,
    _not_sync: PhantomData<Cell<()>>,
}

/// The consuming end of a ring; `MULTI` as for [`Producer`].
pub struct Consumer<const MULTI: bool> {
    ring: Arc<OwnedRing>,
    cached: Cell<u32>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: a handle may move to another thread; the single-side handles stay unique because they
// are not Clone, and `!Sync` keeps them from being used from two threads at once.
unsafe impl<const M: bool> Send for Producer<M> {}
// SAFETY: as above.
unsafe impl<const M: bool> Send for Consumer<M> {}
// SAFETY: multi-producer enqueue is safe to run concurrently (CAS on the head); the cached
// value is not used on that path.
unsafe impl Sync for Producer<true> {}
// SAFETY: as above, for multi-consumer dequeue.
unsafe impl Sync for Consumer<true> {}

impl Clone for Producer<true> {
    fn clone(&self) -> Self {
        Producer {
            ring: self.ring.clone(),
            cached: Cell::new(0),
            _not_sync: PhantomData,
        }
    }
}

impl Clone for Consumer<true> {
    fn clone(&self) -> Self {
        Consumer {
            ring: self.ring.clone(),
            cached: Cell::new(0),
            _not_sync: PhantomData,
        }
    }
}

impl<const M: bool> Producer<M> {
    /// Enqueues as many of `items` as fit; returns how many went in (front of the slice).
    #[inline]
    pub fn enqueue_burst(&self, items: &[u32]) -> usize {
        // SAFETY: a single-producer handle is unique and !Sync, so no concurrent enqueue runs
        // through this ring in single mode; multi mode is safe concurrently.
        unsafe { self.ring.mem().enqueue::<M>(items, &self.cached) as usize }
    }

    /// Slots currently free (a snapshot).
    pub fn free_count(&self) -> usize {
        let r = self.ring.mem();
        (r.capacity() - r.len()) as usize
    }

    /// Ring capacity.
    pub fn capacity(&self) -> usize {
        self.ring.mem().capacity() as usize
    }
}

impl<const M: bool> Consumer<M> {
    /// Dequeues up to `out.len()` items into the front of `out`; returns how many.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [u32]) -> usize {
        // SAFETY: as for `Producer::enqueue_burst`, on the consumer side.
        unsafe { self.ring.mem().dequeue::<M>(out, &self.cached) as usize }
    }

    /// Items currently queued (a snapshot).
    pub fn len(&self) -> usize {
        self.ring.mem().len() as usize
    }

    /// True when nothing is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A single-producer, single-consumer ring of `capacity` (a power of two) slots.
pub fn spsc(capacity: u32) -> Result<(Producer<false>, Consumer<false>), RingError> {
    pair(capacity)
}

/// A multi-producer, single-consumer ring.
pub fn mpsc(capacity: u32) -> Result<(Producer<true>, Consumer<false>), RingError> {
    pair(capacity)
}

/// A multi-producer, multi-consumer ring.
pub fn mpmc(capacity: u32) -> Result<(Producer<true>, Consumer<true>), RingError> {
    pair(capacity)
}

fn pair<const P: bool, const C: bool>(
    capacity: u32,
) -> Result<(Producer<P>, Consumer<C>), RingError> {
    let ring = OwnedRing::new(capacity)?;
    Ok((
        Producer {
            ring: ring.clone(),
            cached: Cell::new(0),
            _not_sync: PhantomData,
        },
        Consumer {
            ring,
            cached: Cell::new(0),
            _not_sync: PhantomData,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_checks() {
        assert_eq!(spsc(3).err(), Some(RingError::BadCapacity(3)));
        assert_eq!(spsc(0).err(), Some(RingError::BadCapacity(0)));
        assert!(spsc(2).is_ok());
    }

    #[test]
    fn burst_fill_and_drain_wraps() {
        let (p, c) = spsc(8).unwrap();
        let mut out = [0u32; 8];
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        for round in 0..100 {
            let items: Vec<u32> = (next_in..next_in + 5).collect();
            let n = p.enqueue_burst(&items);
            next_in += n as u32;
            let k = c.dequeue_burst(&mut out[..(round % 7) + 1]);
            for &v in &out[..k] {
                assert_eq!(v, next_out);
                next_out += 1;
            }
        }
        assert!(next_out > 100);
    }

    #[test]
    fn full_ring_refuses_and_reports_partial() {
        let (p, c) = spsc(4).unwrap();
        assert_eq!(p.enqueue_burst(&[1, 2, 3]), 3);
        assert_eq!(p.enqueue_burst(&[4, 5, 6]), 1);
        assert_eq!(p.enqueue_burst(&[7]), 0);
        assert_eq!(c.len(), 4);
        let mut out = [0; 8];
        assert_eq!(c.dequeue_burst(&mut out), 4);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(c.dequeue_burst(&mut out), 0);
    }

    #[test]
    fn attach_validates_memory() {
        let mut buf = vec![0u128; 64];
        let mem = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
        // Vec<u128> is only 16-aligned; find a 128-aligned window.
        let off = (128 - mem.as_ptr() as usize % 128) % 128;
        let len = 64 * 16 - off;
        // SAFETY: the window lies inside `buf`, which outlives the ring use here.
        unsafe {
            let m = NonNull::new(mem.as_ptr().add(off)).unwrap();
            assert_eq!(RingMem::attach(m, len).err(), Some(RingError::NotARing));
            let r = RingMem::init_in(m, len, 16).unwrap();
            let r2 = RingMem::attach(m, len).unwrap();
            assert_eq!(r, r2);
            assert_eq!(r.as_ref().capacity(), 16);
        }
    }
}
