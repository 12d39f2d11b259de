//! Cores and time: thread pinning and the TSC clock workers read on the packet path.
//!
//! A poll-mode worker owns one core: it is pinned with `sched_setaffinity` so the scheduler never
//! moves it (and its caches) elsewhere. Time on the packet path must cost a few cycles, not a
//! syscall, so workers read the TSC and convert it to nanoseconds with a multiplier calibrated
//! once against `CLOCK_MONOTONIC` at start-up.

use std::io;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::other(format!("cpu {cpu} is out of range")));
    }
    // SAFETY: cpu_set_t is a plain bitmask; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the CPU to bring the cache line holding `r` into its caches, without waiting for it:
/// a burst's table lookups issue these for every packet first, so the misses overlap instead
/// of following one another. A hint: it never faults and changes nothing observable.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint on any address (no fault, no side effect); SSE, which it
    // needs, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (r as *const T).cast(),
        )
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86_64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// TSC ticks per second, calibrated once (about 20 ms) against the monotonic clock.
pub fn tsc_hz() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    *HZ.get_or_init(|| {
        if cfg!(not(target_arch = "x86_64")) {
            return 1_000_000_000;
        }
        let t0 = Instant::now();
        let c0 = rdtsc();
        while t0.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let c1 = rdtsc();
        let ns = t0.elapsed().as_nanos() as u64;
        ((c1 - c0) as u128 * 1_000_000_000 / ns.max(1) as u128) as u64
    })
}

/// Converts TSC readings to nanoseconds on a fixed epoch without division on the fast path.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    tsc0: u64,
    ns0: u64,
    mult: u64,
}

const SHIFT: u32 = 32;

impl TscClock {
    /// A clock whose `now()` reads `epoch_ns` at this moment.
    pub fn new(epoch_ns: u64) -> TscClock {
        let hz = tsc_hz().max(1);
        TscClock {
            tsc0: rdtsc(),
            ns0: epoch_ns,
            mult: ((1_000_000_000u128 << SHIFT) / hz as u128) as u64,
        }
    }

    /// Nanoseconds now.
    #[inline(always)]
    pub fn now(&self) -> u64 {
        let d = rdtsc().wrapping_sub(self.tsc0);
        self.ns0 + ((d as u128 * self.mult as u128) >> SHIFT) as u64
    }
}

/// Wall-clock nanoseconds since the Unix epoch (slow; for start-up and logs).
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_clock_tracks_monotonic() {
        let c = TscClock::new(1_000);
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let ns = c.now() - 1_000;
        let real = t0.elapsed().as_nanos() as u64;
        let err = ns.abs_diff(real);
        assert!(err < real / 5, "tsc {ns} ns vs monotonic {real} ns");
    }

    #[test]
    fn pin_to_first_online_cpu() {
        let cpu = crate::mem::online_cpus()[0];
        pin_current_thread(cpu).unwrap();
        assert!(pin_current_thread(1 << 20).is_err());
    }
}
