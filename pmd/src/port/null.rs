//! The null port: hands out and takes back buffers without touching their data.
//!
//! The benchmark's memory-backed port, the counterpart of DPDK's `net_null`: `rx_burst` takes
//! buffers from the pool and gives them a fixed length, `tx_burst` frees them. What is left to
//! measure is the framework itself: pool, bursts, stage calls and scatter.

use super::{Port, PortError, PortStats};
use crate::mbuf::Burst;
use crate::pool::PoolCache;

/// A port that receives empty packets of a fixed length and discards what it is sent.
pub struct NullPort {
    name: String,
    id: u16,
    pkt_len: u16,
    stats: PortStats,
    limit: Option<u64>,
}

impl NullPort {
    /// A null port `id` producing packets of `pkt_len` bytes, forever or up to `limit` packets.
    pub fn new(name: &str, id: u16, pkt_len: u16, limit: Option<u64>) -> NullPort {
        NullPort {
            name: name.into(),
            id,
            pkt_len,
            stats: PortStats::default(),
            limit,
        }
    }
}

impl Port for NullPort {
    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn rx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let max = match self.limit {
            Some(l) => max.min((l - self.stats.rx_packets) as usize),
            None => max,
        };
        let start = burst.len();
        let got = pool.alloc_burst(burst, max);
        for m in &mut burst.as_mut_slice()[start..] {
            m.set_len(self.pkt_len as usize);
            m.set_port(self.id);
        }
        self.stats.rx_packets += got as u64;
        self.stats.rx_bytes += got as u64 * self.pkt_len as u64;
        self.stats.drops[super::PortDrop::RxNoBuffer as usize] += (max - got) as u64;
        Ok(got)
    }

    #[inline]
    fn tx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        let bytes: usize = burst.as_slice().iter().map(|m| m.len()).sum();
        self.stats.tx_packets += n as u64;
        self.stats.tx_bytes += bytes as u64;
        pool.free_burst(burst);
        Ok(n)
    }

    fn at_end(&self) -> bool {
        self.limit.is_some_and(|l| self.stats.rx_packets >= l)
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}
