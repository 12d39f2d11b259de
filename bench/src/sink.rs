//! The sink: a [`Port`] whose `tx_burst` reads each packet's generator timestamp, records the
//! latency in an HdrHistogram and frees the packet.
//!
//! The generator ([`crate::gen`]) stamps every packet of a burst with the same TSC value, so the
//! sink reads the TSC once per burst and records a run of equal stamps with one
//! `record_n`: per packet it costs one load and one compare (the header line is usually still
//! in cache). Packets without the generator's magic at the expected offset (made by a stage, or
//! whose headers a stage resized) are counted, not measured. Latency is kept in TSC cycles and
//! turned into nanoseconds when summarised.
//!
//! The engine owns its ports and does not give them back, so the sink publishes what it saw
//! through a shared [`Latency`] handle when it is dropped (at the end of the run). It also
//! notes the TSC of the first and last packet it took, so throughput is measured over the
//! time packets actually flowed, without start-up or drain.

use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use pmd::port::{Port, PortError, PortStats};
use pmd::{Burst, PoolCache};

use crate::gen::MAGIC;

/// What a sink saw, shared with whoever reads it after the run.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Latency in TSC cycles, one count per timestamped packet.
    pub hist: Histogram<u64>,
    /// Packets taken.
    pub packets: u64,
    /// Packets without a generator timestamp.
    pub unstamped: u64,
    /// TSC of the first and last burst taken (0 if none).
    pub first_tsc: u64,
    /// See `first_tsc`.
    pub last_tsc: u64,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            hist: new_hist(),
            packets: 0,
            unstamped: 0,
            first_tsc: 0,
            last_tsc: 0,
        }
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 cycle to about 40 s at 2.5 GHz, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

impl Seen {
    /// Packets per second between the first and last burst.
    pub fn rate_pps(&self, tsc_hz: u64) -> f64 {
        let dt = self.last_tsc.saturating_sub(self.first_tsc);
        if dt == 0 {
            return 0.0;
        }
        self.packets as f64 * tsc_hz as f64 / dt as f64
    }

    /// Median, p99, p99.9 and max latency in nanoseconds, plus a CDF of up to ~100 points
    /// (nanoseconds, fraction of packets at or below).
    pub fn summary(&self, tsc_hz: u64) -> Option<LatencySummary> {
        if self.hist.is_empty() {
            return None;
        }
        let ns = |c: u64| c as f64 * 1e9 / tsc_hz as f64;
        let q = |x: f64| ns(self.hist.value_at_quantile(x));
        let mut cdf = Vec::new();
        for i in 0..=90 {
            // Denser towards the tail: 0..0.9 in 0.01 steps would waste points; use 1 - 10^-k.
            let x = 1.0 - 10f64.powf(-(i as f64) / 20.0);
            cdf.push([q(x), x]);
        }
        cdf.push([ns(self.hist.max()), 1.0]);
        Some(LatencySummary {
            samples: self.hist.len(),
            median_ns: q(0.5),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: ns(self.hist.max()),
            cdf,
        })
    }
}

/// Latency percentiles of a run, in nanoseconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LatencySummary {
    /// Packets measured.
    pub samples: u64,
    /// Median.
    pub median_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Largest.
    pub max_ns: f64,
    /// (latency ns, quantile) points for the CDF plot.
    pub cdf: Vec<[f64; 2]>,
}

/// The handle a sink publishes to.
pub type Latency = Arc<Mutex<Seen>>;

/// The sink port.
pub struct Sink {
    name: String,
    ts_off: usize,
    seen: Seen,
    out: Latency,
    stats: PortStats,
}

impl Sink {
    /// A sink reading the timestamp at `ts_off` (the magic is the 4 bytes before it),
    /// publishing to `out` when dropped.
    pub fn new(name: &str, ts_off: usize, out: Latency) -> Sink {
        Sink {
            name: name.into(),
            ts_off,
            seen: Seen::default(),
            out,
            stats: PortStats::default(),
        }
    }

    #[inline(always)]
    fn stamp(&self, d: &[u8]) -> Option<u64> {
        let t = self.ts_off;
        let magic = d.get(t - 4..t)?;
        if magic != MAGIC.to_be_bytes() {
            return None;
        }
        let ts = d.get(t..t + 8)?;
        Some(u64::from_be_bytes(ts.try_into().ok()?))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Ok(mut o) = self.out.lock() {
            let _ = o.hist.add(&self.seen.hist);
            o.packets += self.seen.packets;
            o.unstamped += self.seen.unstamped;
            if o.first_tsc == 0 || (self.seen.first_tsc != 0 && self.seen.first_tsc < o.first_tsc) {
                o.first_tsc = self.seen.first_tsc;
            }
            o.last_tsc = o.last_tsc.max(self.seen.last_tsc);
        }
    }
}

impl Port for Sink {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        _queue: u16,
        _pool: &mut PoolCache,
        _burst: &mut Burst,
        _max: usize,
    ) -> Result<usize, PortError> {
        Ok(0)
    }

    #[inline]
    fn tx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        if n == 0 {
            return Ok(0);
        }
        let now = pmd::cpu::rdtsc();
        if self.seen.first_tsc == 0 {
            self.seen.first_tsc = now;
        }
        self.seen.last_tsc = now;
        let mut run_ts = 0u64;
        let mut run_n = 0u64;
        let mut bytes = 0u64;
        for m in burst.as_slice() {
            let d = m.data();
            bytes += d.len() as u64;
            match self.stamp(d) {
                Some(ts) if ts == run_ts => run_n += 1,
                Some(ts) if ts <= now => {
                    if run_n != 0 {
                        self.seen.hist.saturating_record_n(now - run_ts, run_n);
                    }
                    run_ts = ts;
                    run_n = 1;
                }
                _ => self.seen.unstamped += 1,
            }
        }
        if run_n != 0 {
            self.seen.hist.saturating_record_n(now - run_ts, run_n);
        }
        self.seen.packets += n as u64;
        self.stats.tx_packets += n as u64;
        self.stats.tx_bytes += bytes;
        pool.free_burst(burst);
        Ok(n)
    }

    fn at_end(&self) -> bool {
        true
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{GenConfig, Generator, Size};

    #[test]
    fn measures_every_generated_packet_and_counts_the_rest() {
        let pool = pmd::Pool::new(&pmd::PoolConfig {
            count: 4096,
            huge: pmd::mem::HugePolicy::Never,
            ..Default::default()
        })
        .expect("pool");
        let mut cache = pool.cache();
        let cfg = GenConfig {
            size: Size::Imix,
            ..Default::default()
        };
        let mut g = Generator::new("gen", 0, &cfg).expect("gen");
        let lat: Latency = Default::default();
        let mut s = Sink::new("sink", g.layout().ts(), lat.clone());
        let mut b = Burst::new();
        for _ in 0..10 {
            g.rx_burst(0, &mut cache, &mut b, 32).expect("rx");
            s.tx_burst(0, &mut cache, &mut b).expect("tx");
            assert!(b.is_empty());
        }
        // A packet without the magic is counted, not measured.
        cache.alloc_burst(&mut b, 1);
        b.as_mut_slice()[0].set_len(64);
        b.as_mut_slice()[0].data_mut().fill(0);
        s.tx_burst(0, &mut cache, &mut b).expect("tx");
        drop(s);
        let seen = lat.lock().expect("lock").clone();
        assert_eq!(seen.packets, 321);
        assert_eq!(seen.unstamped, 1);
        assert_eq!(seen.hist.len(), 320);
        let sum = seen.summary(pmd::cpu::tsc_hz()).expect("summary");
        assert!(sum.median_ns > 0.0 && sum.median_ns <= sum.p99_ns && sum.p99_ns <= sum.max_ns);
        assert!(seen.last_tsc >= seen.first_tsc && seen.first_tsc > 0);
    }
}
