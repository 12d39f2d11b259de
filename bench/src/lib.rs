//! The `bench` crate's library: the pieces a benchmark is built from.
//!
//! The `bench` binary (`src/main.rs`) runs named scenarios; the criterion micro-benchmarks in
//! `benches/` and the scenarios share what lives here:
//!
//! * [`gen`]: a traffic-generator [`pmd::port::Port`] in the spirit of pktgen and TRex
//!   stateless (templates, sizes and IMIX, N flows with uniform or Zipf spread, TSC pacing, a
//!   TSC timestamp in every packet);
//! * [`sink`]: the port at the far end, which reads those timestamps into an HdrHistogram;
//! * [`touch`]: a trivial forward-like stage for the chain-length curve;
//! * [`sys`]: what the machine is (CPU model and frequency, TSC, peak memory);
//! * [`results`]: the JSON stored per run, `BENCHMARKS.md` and the PNG plots.

pub mod gen;
pub mod results;
pub mod sink;
pub mod sys;
pub mod touch;
