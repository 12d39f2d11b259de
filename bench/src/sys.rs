//! What the machine is: CPU model and frequency, TSC rate, peak memory of this process.
//!
//! Every result records these beside its figures, so a number is never read without the
//! machine that produced it.

/// A `/proc/cpuinfo` field of the first CPU.
fn cpuinfo(field: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// The CPU model name.
pub fn cpu_model() -> String {
    cpuinfo("model name").unwrap_or_else(|| "unknown".into())
}

/// The CPU's current frequency in MHz as the kernel reports it (a VM often reports the base).
pub fn cpu_mhz() -> Option<f64> {
    cpuinfo("cpu MHz").and_then(|s| s.parse().ok())
}

/// Peak resident memory of this process (`VmHWM`), in KiB. Hugepage-backed packet memory is
/// not counted there; the pool's size is in each result's configuration.
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Number of online CPUs.
pub fn online_cpus() -> usize {
    pmd::mem::online_cpus().len().max(1)
}
