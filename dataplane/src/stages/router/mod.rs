//! IPv4/IPv6 router: full-table LPM, neighbours, the RFC 1812 fast path.
//!
//! The last stage of a chain and the one operators measure first. Per burst it works in
//! steps, like DPDK's l3fwd: classify every packet and validate its IP header (version, IHL,
//! total length, checksum; every failure a named drop), gather the destinations, look them all
//! up in the FIB at once ([`lpm4::Lpm4::lookup_burst`], so the table misses overlap), then
//! rewrite each survivor: TTL/hop limit minus one with an RFC 1624 incremental checksum,
//! source MAC = egress port's MAC, destination MAC from the neighbour table, egress port set.
//!
//! The FIB is an immutable snapshot shared by all workers and swapped RCU-style
//! ([`fib::FibCell`]): a worker checks one generation counter per burst and never locks.
//! Neighbours, ICMP rate limiting and held packets are per worker.
//!
//! What RFC 1812 asks, and where it is done here:
//! * ICMP errors (time exceeded, destination unreachable, fragmentation needed / packet too
//!   big) are new packets from [`Ctx::alloc`](crate::stage::Ctx::alloc), quoting the offending datagram (IPv4: as much as
//!   fits a 576-byte datagram, RFC 1812 4.3.2.3; IPv6: as much as fits 1280 bytes, RFC 4443),
//!   sent back out of the input port to the L2 source of the offending frame, from the input
//!   interface's address, with the offending packet's sequence number and timestamp. They are
//!   never sent about an ICMP error, a non-first fragment, an L2 or IP broadcast/multicast, or a
//!   martian source, and at most `icmp_burst` at once then `icmp_rate` per second per worker
//!   (token bucket on `ctx.now`). The offending packet is always dropped under its reason.
//! * Martian sources and destinations (0/8, 127/8, multicast, class E, limited broadcast; IPv6
//!   unspecified, loopback, multicast source) are dropped. Multicast destinations are not
//!   routed (no multicast routing yet) and are counted separately.
//! * Echo requests to the router's own addresses are answered in place.
//! * IP options are forwarded untouched (only TTL and checksum change).
//! * A packet too big for the egress MTU with DF clear is fragmented (RFC 791; later fragments
//!   carry only the options with the copy flag); with DF set it gets Fragmentation Needed
//!   carrying the egress MTU; IPv6 gets Packet Too Big.
//!
//! Neighbours: static entries from the configuration; ARP requests for the router's addresses
//! are answered in place; an unresolved next hop gets an ARP request (retried from `poll`) and
//! up to `hold` packets wait for it ([`Next::HOLD`](crate::stage::Next::HOLD)); replies release them. IPv6 does the same
//! with neighbour discovery (RFC 4861: solicitations for our addresses answered in place,
//! solicitations sent to the solicited-node multicast address, advertisements learned).
//!
//! With several run-to-completion workers, each next hop is resolved by one worker
//! ([`neighbour_worker`]): another worker routing a packet to a next hop it does not
//! know hands the packet over to that one (its next hop and egress stashed in the metadata
//! line), which asks once and holds; the router's steering rule ([`RouterSteer`]) has ARP and
//! neighbour discovery broadcast to every worker, so every worker learns the answer.

pub mod fib;
pub mod lpm4;
pub mod lpm6;
pub mod routes;

mod config;
mod neigh;
mod stage;

pub use config::{parse_config, RouterSpec};
pub use stage::{neighbour_worker, Iface, Router, RouterConfig, RouterSteer, StaticNeighbour};

#[cfg(test)]
mod tests;
