//! `pmd`: everything that touches memory, cores and packet I/O.
//!
//! This crate is the dataplane's floor. It owns packet memory (hugepage regions placed on the
//! right NUMA node, a fixed buffer pool with per-core caches), the burst rings that join cores
//! and processes, the `Port` trait behind which every packet source and sink sits (pcap files,
//! an in-memory port for benchmarks, and later memif, AF_PACKET and DPDK), and core pinning and
//! the TSC clock. It is the only crate of the workspace with real `unsafe`; every block says why
//! it is sound. Nothing here knows about protocols beyond filling an IPv4 packet's checksums at transmit
//! time (`csum`, for ports without the offload): that is the `dataplane` crate's business.

pub mod cpu;
pub mod csum;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod mbuf;
pub mod mem;
pub mod pcap;
pub mod pool;
pub mod port;
pub mod ring;

pub use mbuf::{Burst, Mbuf, BURST_MAX};
pub use pool::{Pool, PoolCache, PoolConfig};
