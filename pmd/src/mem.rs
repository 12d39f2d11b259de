//! Packet memory: hugepage-backed regions placed on the right NUMA node.
//!
//! Buffer pools and rings live in large regions mapped once at start-up. On 2 MiB hugepages a
//! pool of tens of thousands of buffers needs a handful of TLB entries instead of thousands, and
//! binding the region to the NUMA node of the core that uses it keeps every buffer access local.
//! When no hugepages are free (a fresh machine, a container without a reservation) the region
//! falls back to ordinary pages with transparent-hugepage advice, and says so once, clearly:
//! the dataplane still runs, only slower.
//!
//! Topology comes from sysfs (`/sys/devices/system/cpu`, `/sys/devices/system/node`), so there
//! is no dependency on libnuma.

use std::io;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// Size of a standard hugepage.
pub const HUGEPAGE_2M: usize = 2 << 20;

/// How a region is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// Explicit 2 MiB hugepages (`MAP_HUGETLB`).
    Huge2M,
    /// Ordinary pages (with `MADV_HUGEPAGE` advice).
    Normal,
}

/// A page-aligned anonymous memory region, unmapped on drop.
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
    node: Option<u32>,
}

// SAFETY: a region is plain memory owned by this value; sharing its address across threads is
// safe, and what is stored in it is synchronised by its users (pools and rings).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

/// Where regions should come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePolicy {
    /// Hugepages if free, otherwise ordinary pages with one warning.
    #[default]
    Prefer,
    /// Hugepages or an error.
    Require,
    /// Ordinary pages only.
    Never,
}

/// Errors allocating memory.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    /// mmap failed.
    #[error("cannot map {len} bytes of {what} memory: {source}")]
    Map {
        /// Requested size.
        len: usize,
        /// "hugepage" or "ordinary".
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

static FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

impl Region {
    /// Maps `len` bytes (rounded up to 2 MiB), bound to `node` when given, pre-faulted.
    pub fn new(len: usize, node: Option<u32>, policy: HugePolicy) -> Result<Region, MemError> {
        let len = len.max(1).div_ceil(HUGEPAGE_2M) * HUGEPAGE_2M;
        if policy != HugePolicy::Never {
            match map(len, true) {
                Ok(ptr) => return Ok(Region::finish(ptr, len, Backing::Huge2M, node)),
                Err(e) if policy == HugePolicy::Require => {
                    return Err(MemError::Map {
                        len,
                        what: "hugepage",
                        source: e,
                    })
                }
                Err(_) => {
                    if !FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
                        eprintln!(
                            "warning: no free 2 MiB hugepages for {} MiB of packet or table memory \
                             ({} free); using ordinary pages, expect lower throughput. \
                             Reserve some with scripts/setup-hugepages.sh",
                            len >> 20,
                            hugepages_free().unwrap_or(0)
                        );
                    }
                }
            }
        }
        let ptr = map(len, false).map_err(|e| MemError::Map {
            len,
            what: "ordinary",
            source: e,
        })?;
        Ok(Region::finish(ptr, len, Backing::Normal, node))
    }

    fn finish(ptr: NonNull<u8>, len: usize, backing: Backing, node: Option<u32>) -> Region {
        if backing == Backing::Normal {
            // SAFETY: advice on a range we just mapped; failure is harmless.
            unsafe { libc::madvise(ptr.as_ptr().cast(), len, libc::MADV_HUGEPAGE) };
        }
        let node = node.filter(|&n| bind(ptr, len, n).is_ok());
        // Pre-fault now (after binding) so no page fault lands on the packet path.
        // SAFETY: the range was mapped read-write by us and nothing else references it yet.
        unsafe {
            let p = ptr.as_ptr();
            let step = if backing == Backing::Huge2M {
                HUGEPAGE_2M
            } else {
                4096
            };
            let mut off = 0;
            while off < len {
                p.add(off).write_volatile(0);
                off += step;
            }
        }
        Region {
            ptr,
            len,
            backing,
            node,
        }
    }

    /// Start of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Regions are never empty; present for API completeness.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the region is backed.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// The NUMA node the region is bound to, if binding succeeded.
    pub fn node(&self) -> Option<u32> {
        self.node
    }
}

/// Advises the kernel to back `mem` with transparent hugepages (`MADV_HUGEPAGE` on the 2 MiB
/// pages wholly inside it): for big tables allocated by `Vec::with_capacity` and filled later
/// (a NAT's sessions, a connection table), whose random lookups would otherwise miss the TLB
/// almost every time. Call it before the memory is first written: pages already faulted in stay
/// small until the kernel collapses them (`Vec::spare_capacity_mut` gives the not-yet-written
/// part of a vector). A hint: nothing changes if the kernel declines.
pub fn advise_huge<T>(mem: &mut [T]) {
    let start = mem.as_ptr() as usize;
    let end = start + std::mem::size_of_val(mem);
    let a = start.next_multiple_of(HUGEPAGE_2M);
    let b = end & !(HUGEPAGE_2M - 1);
    if b > a {
        // SAFETY: advice on pages inside memory we hold `&mut` to; it changes no contents.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
    }
}

/// Plain integer types: every bit pattern, all zeros included, is a valid value, so a freshly
/// mapped (zeroed) region holds valid elements.
///
/// # Safety
/// Implementors must be `Copy` types without padding, for which any bit pattern is valid.
pub unsafe trait Plain: Copy + Send + Sync + 'static {}
// SAFETY: primitive integers: no padding, any bit pattern is a value.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl Plain for u64 {}
// SAFETY: as above.
unsafe impl Plain for u128 {}

/// A zero-initialised array of plain integers in its own [`Region`]: big lookup tables (the
/// router's 32 MiB first-level table) on 2 MiB hugepages when some are free, so that random
/// lookups miss the TLB far less often (DPDK puts its tables on hugepages too). Without free
/// hugepages it falls back to ordinary pages with transparent-hugepage advice, and says so once.
pub struct HugeArray<T: Plain> {
    region: Region,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Plain> HugeArray<T> {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Result<HugeArray<T>, MemError> {
        let bytes = len.max(1) * std::mem::size_of::<T>();
        let region = Region::new(bytes, None, HugePolicy::Prefer)?;
        Ok(HugeArray {
            region,
            len,
            _t: std::marker::PhantomData,
        })
    }

    /// A copy of `v`.
    pub fn from_slice(v: &[T]) -> Result<HugeArray<T>, MemError> {
        let mut a = Self::zeroed(v.len())?;
        a.copy_from_slice(v);
        Ok(a)
    }

    /// How the memory is backed.
    pub fn backing(&self) -> Backing {
        self.region.backing()
    }

    /// The whole array as a fixed-size array, when its length is `N` (lets the compiler drop
    /// bounds checks for indexes it can prove below `N`).
    #[inline(always)]
    pub fn as_array<const N: usize>(&self) -> Option<&[T; N]> {
        <&[T; N]>::try_from(&**self).ok()
    }
}

impl<T: Plain> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: the region holds at least `len * size_of::<T>()` bytes, page-aligned (so
        // aligned for T), zero-initialised by the kernel and only ever written as T (Plain: any
        // bit pattern is valid); it lives as long as self.
        unsafe { std::slice::from_raw_parts(self.region.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> std::ops::DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, with `&mut self` giving exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.region.as_ptr().cast::<T>(), self.len) }
    }
}

impl<T: Plain> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("backing", &self.region.backing())
            .finish()
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `map` with this exact length and is owned by self.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn map(len: usize, huge: bool) -> io::Result<NonNull<u8>> {
    let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    if huge {
        flags |= libc::MAP_HUGETLB;
        flags &= !libc::MAP_NORESERVE;
    }
    // SAFETY: an anonymous mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// Binds `[ptr, ptr+len)` to NUMA node `node` (MPOL_PREFERRED, so a full node still works).
fn bind(ptr: NonNull<u8>, len: usize, node: u32) -> io::Result<()> {
    if node >= 64 {
        return Err(io::Error::other("node number above 63"));
    }
    const MPOL_PREFERRED: libc::c_long = 1;
    let mask: u64 = 1 << node;
    // SAFETY: mbind reads `maxnode` bits from `mask`, which is a live u64 on our stack; the
    // address range is a mapping we own.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mbind,
            ptr.as_ptr(),
            len,
            MPOL_PREFERRED,
            &mask as *const u64,
            64 as libc::c_ulong,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Free 2 MiB hugepages system-wide, from sysfs.
pub fn hugepages_free() -> Option<u64> {
    read_u64("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
}

/// The NUMA node of a CPU, from sysfs (`None` on a machine without NUMA information).
pub fn numa_node_of_cpu(cpu: usize) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}")).ok()?;
    for e in dir.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_prefix("node") {
            if let Ok(n) = n.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// Online CPUs, from `/sys/devices/system/cpu/online` (a list like `0-3,6`).
pub fn online_cpus() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
        })
}

/// Parses a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse().ok()?),
        }
    }
    Some(v)
}

fn read_u64(p: impl AsRef<Path>) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6"), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn region_maps_and_is_writable() {
        let r = Region::new(3 << 20, numa_node_of_cpu(0), HugePolicy::Prefer).unwrap();
        assert_eq!(r.len(), 4 << 20);
        // SAFETY: inside the region we own.
        unsafe {
            r.as_ptr().add(r.len() - 1).write(7);
            assert_eq!(r.as_ptr().add(r.len() - 1).read(), 7);
        }
        let n = Region::new(1, None, HugePolicy::Never).unwrap();
        assert_eq!(n.backing(), Backing::Normal);
    }
}
