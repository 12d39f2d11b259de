//! Memory shared with a memif peer: a mapping that is never a Rust slice.
//!
//! A memif region is mapped in two processes at once and the peer writes it while we read it
//! (descriptors, ring indices, packet bytes). Turning it into `&[u8]` or `&mut [u8]` would tell
//! the compiler nobody else changes it, which is false, so this module hands out only what is
//! sound on memory another process writes: atomics for the ring indices, volatile loads and
//! stores for descriptor fields, and bulk copies into or out of our own private buffers. Every
//! access is bounds- and alignment-checked against the mapping and fails with [`ShmError`]
//! instead of reaching outside it (the model is vm-memory's `VolatileSlice`). A peer that
//! writes garbage can make us read garbage values, never read or write outside the region.

use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, AtomicU32};

/// An out-of-bounds or misaligned access to a shared region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShmError {
    /// `offset + len` is past the end of the region.
    #[error("offset {offset} + {len} bytes is outside a region of {size} bytes")]
    OutOfBounds {
        /// Offset asked for.
        offset: usize,
        /// Length asked for.
        len: usize,
        /// Region size.
        size: usize,
    },
    /// The offset is not aligned for the type.
    #[error("offset {offset} is not aligned to {align}")]
    Misaligned {
        /// Offset asked for.
        offset: usize,
        /// Alignment needed.
        align: usize,
    },
}

/// A shared mapping of a memfd (ours or the peer's) or of a kernel ring (AF_PACKET), unmapped
/// on drop.
#[derive(Debug)]
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
    fd: Option<OwnedFd>,
}

// SAFETY: the mapping is owned by this value and only reached through the checked accessors
// below, which use atomics, volatile accesses or copies; moving it to another thread is sound.
unsafe impl Send for Shm {}

impl Shm {
    /// Creates a fresh memfd of `len` bytes (zero-filled) and maps it.
    pub fn create(name: &str, len: usize) -> std::io::Result<Shm> {
        let cname = std::ffi::CString::new(name.replace('\0', "")).unwrap_or_default();
        // SAFETY: `cname` is a valid NUL-terminated string; the flags are plain constants.
        let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        // SAFETY: ftruncate on a descriptor we own.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The peer may not shrink it under us (a shrunk memfd would SIGBUS on access).
        // SAFETY: fcntl on a descriptor we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK) };
        Shm::map(fd, len)
    }

    /// Maps `len` bytes of the memfd `fd` (the peer's region) shared, read-write.
    ///
    /// The file must be at least `len` bytes long; it is checked here, so that a short file
    /// cannot turn an in-bounds access into SIGBUS.
    pub fn map(fd: OwnedFd, len: usize) -> std::io::Result<Shm> {
        if len == 0 {
            return Err(std::io::Error::other("empty region"));
        }
        // SAFETY: `st` is plain data filled in by fstat on a descriptor we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if (st.st_size as u64) < len as u64 {
            return Err(std::io::Error::other(format!(
                "region file is {} bytes, the peer announced {len}",
                st.st_size
            )));
        }
        let mut s = Shm::map_raw(fd.as_raw_fd(), len)?;
        s.fd = Some(fd);
        Ok(s)
    }

    /// Maps `len` bytes of a kernel object `fd` exposes (an AF_PACKET ring), shared,
    /// read-write. The descriptor stays the caller's and must outlive the mapping's use.
    pub fn map_raw(fd: std::os::fd::RawFd, len: usize) -> std::io::Result<Shm> {
        if len == 0 {
            return Err(std::io::Error::other("empty region"));
        }
        // SAFETY: a fresh shared mapping; the kernel picks the address and checks `fd`.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shm {
            ptr: NonNull::new(p.cast()).expect("mmap does not return null on success"),
            len,
            fd: None,
        })
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty region (never: mapping refuses it).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd (to pass to the peer), if this mapping owns one.
    pub fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    #[inline(always)]
    fn check(&self, offset: usize, len: usize, align: usize) -> Result<*mut u8, ShmError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => {
                return Err(ShmError::OutOfBounds {
                    offset,
                    len,
                    size: self.len,
                })
            }
        }
        if !offset.is_multiple_of(align) {
            return Err(ShmError::Misaligned { offset, align });
        }
        // SAFETY: `offset + len <= self.len`, so the pointer stays inside the mapping.
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    /// The 16-bit atomic at `offset` (ring head/tail).
    #[inline(always)]
    pub fn atomic_u16(&self, offset: usize) -> Result<&AtomicU16, ShmError> {
        let p = self.check(offset, 2, 2)?;
        // SAFETY: in bounds and aligned (checked); an atomic may be shared with another process
        // that writes it, and the reference lives no longer than the mapping (`&self`).
        Ok(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    /// The 32-bit atomic at `offset`.
    #[inline(always)]
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, ShmError> {
        let p = self.check(offset, 4, 4)?;
        // SAFETY: as for `atomic_u16`.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    /// Volatile read of a `u16`.
    #[inline(always)]
    pub fn read_u16(&self, offset: usize) -> Result<u16, ShmError> {
        let p = self.check(offset, 2, 2)?;
        // SAFETY: in bounds and aligned (checked); volatile because the peer may write it.
        Ok(unsafe { p.cast::<u16>().read_volatile() })
    }

    /// Volatile read of a `u32`.
    #[inline(always)]
    pub fn read_u32(&self, offset: usize) -> Result<u32, ShmError> {
        let p = self.check(offset, 4, 4)?;
        // SAFETY: as for `read_u16`.
        Ok(unsafe { p.cast::<u32>().read_volatile() })
    }

    /// Volatile write of a `u16`.
    #[inline(always)]
    pub fn write_u16(&self, offset: usize, v: u16) -> Result<(), ShmError> {
        let p = self.check(offset, 2, 2)?;
        // SAFETY: in bounds and aligned (checked); the mapping is writable.
        unsafe { p.cast::<u16>().write_volatile(v) };
        Ok(())
    }

    /// Volatile write of a `u32`.
    #[inline(always)]
    pub fn write_u32(&self, offset: usize, v: u32) -> Result<(), ShmError> {
        let p = self.check(offset, 4, 4)?;
        // SAFETY: as for `write_u16`.
        unsafe { p.cast::<u32>().write_volatile(v) };
        Ok(())
    }

    /// Copies `dst.len()` bytes from `offset` into our private `dst`.
    ///
    /// By protocol the peer does not write a buffer it has handed to us; if it does anyway the
    /// copy holds garbage bytes, which is all a packet's bytes ever are to this layer.
    #[inline(always)]
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        let p = self.check(offset, dst.len(), 1)?;
        // SAFETY: the source range is inside the mapping (checked) and cannot overlap `dst`,
        // which is our own memory borrowed mutably.
        unsafe { std::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies our private `src` into the region at `offset`.
    #[inline(always)]
    pub fn copy_in(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        let p = self.check(offset, src.len(), 1)?;
        // SAFETY: the destination range is inside the writable mapping (checked) and cannot
        // overlap `src`, our own memory.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        Ok(())
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `map` with this length and no reference into it
        // outlives `self` (accessors borrow `&self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_are_bounds_checked() {
        let s = Shm::create("t", 4096).unwrap();
        s.write_u32(8, 7).unwrap();
        assert_eq!(s.read_u32(8).unwrap(), 7);
        assert!(matches!(
            s.read_u32(4094),
            Err(ShmError::OutOfBounds { .. })
        ));
        assert!(matches!(s.read_u32(6), Err(ShmError::Misaligned { .. })));
        assert!(s.copy_in(usize::MAX - 1, &[1, 2, 3]).is_err());
        let mut b = [0u8; 4];
        s.copy_out(8, &mut b).unwrap();
        assert_eq!(u32::from_ne_bytes(b), 7);
        s.atomic_u16(100)
            .unwrap()
            .store(5, std::sync::atomic::Ordering::Release);
        assert_eq!(s.read_u16(100).unwrap(), 5);
    }
}
