//! The engine: ports, workers, dispatch and the two chain layouts.
//!
//! One configuration gives one of two shapes.
//!
//! * **Direct** (one run-to-completion worker): the worker owns every port, polls them for
//!   bursts, runs each burst through the whole chain and transmits it. Nothing crosses a core;
//!   this is the fast path the forwarding benchmark measures.
//! * **Handoff** (several run-to-completion workers, or a pipeline): an I/O thread owns the
//!   ports (they have one queue each here). It stamps each received packet with a sequence
//!   number and hands it over a single-producer ring: in run-to-completion, to the worker
//!   chosen by the packet's *symmetric* flow hash (both directions of a connection reach the
//!   same worker and so the same conntrack/NAT state); in a pipeline, to the first segment,
//!   whose survivors go by ring to the next segment on the next core. Packets leaving the chain
//!   come back to the I/O thread over one ring per worker.
//!
//! In replay the I/O thread puts output back in input order (see [`egress`]), so every layout
//! produces the same output file. Online, it transmits as packets come.
//!
//! **Handoffs between workers.** Some state cannot be placed by any hash of the packet: a NAT
//! packet hairpinned from one subscriber to another must be translated twice, by the worker
//! owning the sender's mapping and then by the one owning the target's. A stage returns
//! [`Next::handoff`](crate::stage::Next::handoff)`(w)` (or calls `Ctx::handoff` for a packet it
//! held); the packet goes back to the I/O thread with its egress naming worker `w`, which
//! queues it into `w`'s input ring, and `w` runs it from that same stage on, where the stage
//! sees [`pmd::Mbuf::handed_over`]. A packet is handed over at most once. In replay a handed
//! packet keeps its sequence number and holds back the release of everything after it until
//! it has run (the worker publishes a count of handoffs run; the I/O thread keeps their
//! sequence numbers in flight), so output order is the same as with one worker. At the end of
//! input the I/O thread tells the workers to stop only once they have processed everything and
//! no handoff is waiting or running.
//!
//! **Cut-through.** A chain that only patches ports together (one `forward` stage: every
//! packet of port A leaves by port B, nothing reads it) needs none of the engine's per-packet
//! work. When a direct worker online has such a chain and all its ports keep their packets in
//! buffers of one driver that any of them can send (DPDK's `rte_mbuf`s), it moves each received
//! burst straight to the other port's transmit ([`pmd::port::NativeBurst`]), as
//! `dpdk-testpmd --forward-mode=io` or VPP's `l2patch` do: the framework's only per-packet
//! work is then reading each packet's length for the byte counters. `[engine] cut_through = false` turns it off (the stage then runs as any other).
//!
//! Counters always balance: packets received by ports plus packets created by stages equal
//! packets sent plus packets dropped, by reason. [`Report::balanced`] checks it and tests
//! assert it.

pub mod chain;
pub mod egress;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use pmd::cpu::{self, TscClock};
use pmd::mbuf::{buf_spsc, BufConsumer, BufProducer};
use pmd::port::{NativeBurst, Port, PortDrop, PortError, PortStats};
use pmd::{Burst, Mbuf, Pool, PoolCache, BURST_MAX};

use crate::stage::{DropCounters, DropReason, Stage};
use chain::ChainRunner;
pub use chain::Orders;
use egress::Reorder;

/// How workers tell time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// TSC, calibrated to wall-clock nanoseconds (online).
    Tsc,
    /// The timestamps of the packets (offline replay): `now` is the newest timestamp seen.
    Capture,
}

/// How the chain is laid over cores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Every stage on the worker that received the packet; one worker per core.
    RunToCompletion,
    /// The chain cut into segments, one per core; `segments[i]` is the number of stages on core
    /// `i` (a segment may be empty).
    Pipeline {
        /// Stage count per segment.
        segments: Vec<usize>,
    },
}

/// Engine parameters.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Packets per burst (1..=256).
    pub burst: usize,
    /// Cores for the workers (`None`: not pinned). Pipeline: one per segment.
    pub worker_cores: Vec<Option<usize>>,
    /// Core for the I/O thread in the handoff shape (`None`: not pinned).
    pub io_core: Option<usize>,
    /// Chain layout.
    pub layout: Layout,
    /// Clock.
    pub clock: ClockMode,
    /// Offline: keep output in input order and wait on full rings instead of dropping.
    pub offline: bool,
    /// Capacity of each ring between threads.
    pub ring_size: u32,
    /// Chooses the worker for packets the flow hash cannot place (see [`Steer`]).
    pub steer: Option<Arc<dyn Steer>>,
    /// Input ports whose packets meet the stages in another order: `(port, stage indexes)`,
    /// each a permutation of the chain (see [`chain::Orders`]). Run-to-completion only.
    pub orders: Vec<(u16, Vec<usize>)>,
    /// Lets a direct worker whose chain only patches ports together (one stage with a
    /// [`Stage::patch`] map covering every port) pass bursts of the driver's own buffers from
    /// port to port without running the chain, where all its ports share a
    /// [`pmd::port::NativeKind`] (DPDK ports). Online only. See "Cut-through" above.
    pub cut_through: bool,
}

/// Picks the worker for a received packet when the symmetric flow hash is not enough: a NAT's
/// replies from outside carry the public address and port, not the inside tuple, so they must
/// be steered to the worker that owns that public port. `None` falls back to the flow hash.
pub trait Steer: Send + Sync + std::fmt::Debug {
    /// The worker (below `workers`) for `frame` received on `port`, or `None`.
    fn steer(&self, frame: &[u8], port: u16, workers: usize) -> Option<usize>;

    /// Whether every worker must see `frame` (a neighbour's ARP reply, which teaches every
    /// worker's router): the worker chosen as usual gets the packet, every other worker a copy
    /// ([`pmd::Mbuf::is_copy`]) that the engine consumes after the chain, counted apart from
    /// packets ([`Report::copies`]).
    fn broadcast(&self, frame: &[u8], port: u16) -> bool {
        let _ = (frame, port);
        false
    }

    /// Whether the rule places packets that would go wrong elsewhere (a NAT's replies), so
    /// the engine must dispatch; `false` for a rule that only broadcasts, which workers owning
    /// their queues directly can do without.
    fn places(&self) -> bool {
        true
    }
}

/// Several stages' steering rules: the first that places a packet wins; a packet is
/// broadcast if any rule says so.
#[derive(Debug)]
pub struct Steers(pub Vec<Arc<dyn Steer>>);

impl Steer for Steers {
    fn steer(&self, frame: &[u8], port: u16, workers: usize) -> Option<usize> {
        self.0.iter().find_map(|s| s.steer(frame, port, workers))
    }
    fn broadcast(&self, frame: &[u8], port: u16) -> bool {
        self.0.iter().any(|s| s.broadcast(frame, port))
    }
    fn places(&self) -> bool {
        self.0.iter().any(|s| s.places())
    }
}

/// Builds one chain instance (run-to-completion builds one per worker: per-core state).
pub type ChainFactory<'a> = dyn Fn(usize) -> Vec<Box<dyn Stage>> + Send + Sync + 'a;

/// Errors that stop the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// Bad parameters.
    #[error("{0}")]
    Config(String),
    /// Could not pin a thread.
    #[error("cannot pin {what} to core {core}: {err}")]
    Pin {
        /// Which thread.
        what: String,
        /// The core.
        core: usize,
        /// The OS error.
        err: std::io::Error,
    },
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    /// Core it ran on.
    pub core: Option<usize>,
    /// Packets that entered its stages.
    pub processed: u64,
    /// Its drops, by engine-wide reason.
    pub drops: DropCounters,
    /// Packets its stages created.
    pub created: u64,
    /// Packets its stages still held at the end.
    pub held: u64,
    /// Its stages' own drops: (stage, reason, count), non-zero only.
    pub stage_drops: Vec<(String, String, u64)>,
    /// Broadcast copies its chain consumed.
    pub copies_consumed: u64,
    /// Stage counters, by stage.
    pub stages: Vec<(String, Vec<(String, u64)>)>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per port: name and counters.
    pub ports: Vec<(String, PortStats)>,
    /// Per worker.
    pub workers: Vec<WorkerReport>,
    /// Drops on the I/O thread (handoff).
    pub io_drops: DropCounters,
    /// Copies the I/O thread made of broadcast packets ([`Steer::broadcast`]); workers consume
    /// each one ([`WorkerReport::copies_consumed`]).
    pub copies: u64,
}

impl Report {
    /// Sum of the stages' own drops.
    pub fn stage_drop_total(&self) -> u64 {
        self.workers
            .iter()
            .flat_map(|w| w.stage_drops.iter())
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Sum of all engine-wide drops.
    pub fn drops(&self) -> DropCounters {
        let mut d = self.io_drops;
        for w in &self.workers {
            d.add(&w.drops);
        }
        d
    }

    /// Packets received by all ports.
    pub fn received(&self) -> u64 {
        self.ports.iter().map(|(_, s)| s.rx_packets).sum()
    }

    /// Packets sent by all ports.
    pub fn sent(&self) -> u64 {
        self.ports.iter().map(|(_, s)| s.tx_packets).sum()
    }

    /// Packets the ports dropped on transmit (every transmit-side reason).
    pub fn tx_port_drops(&self) -> u64 {
        self.ports
            .iter()
            .flat_map(|(_, s)| {
                PortDrop::ALL
                    .iter()
                    .filter(|r| r.is_tx())
                    .map(move |&r| s.drops[r as usize])
            })
            .sum()
    }

    /// Packets created by stages.
    pub fn created(&self) -> u64 {
        self.workers.iter().map(|w| w.created).sum()
    }

    /// Packets still held by stages.
    pub fn held(&self) -> u64 {
        self.workers.iter().map(|w| w.held).sum()
    }

    /// received + created == sent + dropped (engine, stages, port transmit) + held, and
    /// every broadcast copy made was consumed.
    pub fn balanced(&self) -> bool {
        self.received() + self.created()
            == self.sent()
                + self.drops().total()
                + self.stage_drop_total()
                + self.tx_port_drops()
                + self.held()
            && self.copies == self.workers.iter().map(|w| w.copies_consumed).sum::<u64>()
    }

    /// Human-readable counters.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for (name, st) in &self.ports {
            let _ = write!(
                s,
                "port {name}: rx {} pkts {} bytes, tx {} pkts {} bytes",
                st.rx_packets, st.rx_bytes, st.tx_packets, st.tx_bytes
            );
            for r in PortDrop::ALL {
                if st.drops[r as usize] != 0 {
                    let _ = write!(s, ", {} {}", r.name(), st.drops[r as usize]);
                }
            }
            s.push('\n');
        }
        for (i, w) in self.workers.iter().enumerate() {
            let core = w.core.map_or("any".to_string(), |c| c.to_string());
            let _ = write!(s, "worker {i} (core {core}): processed {}", w.processed);
            for (n, v) in w.drops.nonzero() {
                let _ = write!(s, ", drop {n} {v}");
            }
            for (st, r, n) in &w.stage_drops {
                let _ = write!(s, ", drop {st}.{r} {n}");
            }
            s.push('\n');
            for (st, cs) in &w.stages {
                for (n, v) in cs {
                    let _ = writeln!(s, "  {st}.{n} {v}");
                }
            }
        }
        for (n, v) in self.io_drops.nonzero() {
            let _ = writeln!(s, "io: drop {n} {v}");
        }
        if self.copies != 0 {
            let consumed: u64 = self.workers.iter().map(|w| w.copies_consumed).sum();
            let _ = writeln!(
                s,
                "broadcast copies: made {}, consumed {consumed}",
                self.copies
            );
        }
        let d = self.drops();
        let _ = writeln!(
            s,
            "total: received {} + created {} = sent {} + dropped {} (engine) + {} (stages) + {} (port tx) + held {}: {}",
            self.received(),
            self.created(),
            self.sent(),
            d.total(),
            self.stage_drop_total(),
            self.tx_port_drops(),
            self.held(),
            if self.balanced() {
                "balanced"
            } else {
                "NOT BALANCED"
            }
        );
        s
    }
}

/// The engine, ready to run.
pub struct Engine<'a> {
    ports: Vec<Box<dyn Port>>,
    pool: Pool,
    chain: Box<ChainFactory<'a>>,
    opts: EngineOptions,
}

impl<'a> Engine<'a> {
    /// An engine over `ports` (port `i` is `ports[i]`), buffers from `pool`.
    pub fn new(
        ports: Vec<Box<dyn Port>>,
        pool: Pool,
        chain: Box<ChainFactory<'a>>,
        opts: EngineOptions,
    ) -> Result<Engine<'a>, EngineError> {
        if opts.burst == 0 || opts.burst > BURST_MAX {
            return Err(EngineError::Config(format!(
                "burst {} is not between 1 and {BURST_MAX}",
                opts.burst
            )));
        }
        if !opts.orders.is_empty() && matches!(opts.layout, Layout::Pipeline { .. }) {
            return Err(EngineError::Config(
                "per-port stage orders need the run-to-completion layout (a pipeline splits one order over its cores)".into(),
            ));
        }
        if opts.worker_cores.is_empty() {
            return Err(EngineError::Config("at least one worker is needed".into()));
        }
        if ports.is_empty() || ports.len() > 1024 {
            return Err(EngineError::Config(
                "between 1 and 1024 ports are needed".into(),
            ));
        }
        if let Layout::Pipeline { segments } = &opts.layout {
            if segments.len() != opts.worker_cores.len() {
                return Err(EngineError::Config(format!(
                    "pipeline has {} segments but {} worker cores",
                    segments.len(),
                    opts.worker_cores.len()
                )));
            }
        }
        // Buffers parked in per-thread caches and rings must leave enough for the receivers.
        // The direct shape (run-to-completion workers owning their queues) has no rings.
        let direct = Self::is_direct(&ports, &opts);
        if let Some(p) = ports
            .iter()
            .find(|p| p.rx_queues() > 1 || p.tx_queues() > 1)
        {
            let n = opts.worker_cores.len();
            if !direct || n == 1 {
                return Err(EngineError::Config(format!(
                    "port {} has {} queues: they need as many run-to-completion workers, online, and no steering stage (a NAT); here {n} worker(s){}{}",
                    p.name(),
                    p.rx_queues().max(p.tx_queues()),
                    if opts.offline { ", replay" } else { "" },
                    if opts.steer.as_ref().is_some_and(|s| s.places()) {
                        ", a steering stage"
                    } else {
                        ""
                    },
                )));
            }
        }
        let (threads, rings) = if direct {
            (opts.worker_cores.len() as u64, 0u64)
        } else {
            let t = opts.worker_cores.len() as u64 + 1;
            (t, 2 * t)
        };
        let need = threads * 1024 + rings * opts.ring_size as u64 + 4 * BURST_MAX as u64;
        if !opts.ring_size.is_power_of_two() || opts.ring_size < 2 * BURST_MAX as u32 {
            return Err(EngineError::Config(format!(
                "ring size {} must be a power of two of at least {}",
                opts.ring_size,
                2 * BURST_MAX
            )));
        }
        if (pool.count() as u64) < need {
            return Err(EngineError::Config(format!(
                "{} buffers are too few for {} threads with rings of {} (need at least {need})",
                pool.count(),
                threads,
                opts.ring_size
            )));
        }
        Ok(Engine {
            ports,
            pool,
            chain,
            opts,
        })
    }

    /// Runs until every input is exhausted (replay) or `stop` is set, then drains what is in
    /// flight, flushes outputs and reports.
    pub fn run(self, stop: &AtomicBool) -> Result<Report, EngineError> {
        if Self::is_direct(&self.ports, &self.opts) {
            self.run_direct(stop)
        } else {
            self.run_handoff(stop)
        }
    }

    /// The direct shape: run-to-completion workers that own their ports' queues, with no
    /// thread between the ports and the chain. One worker always; N workers online when every
    /// port has N queues (RSS or fanout places the flows) and no stage steers packets the
    /// device's hash cannot place (a NAT's replies). Replay keeps the dispatching I/O thread,
    /// which puts output back in input order.
    fn is_direct(ports: &[Box<dyn Port>], opts: &EngineOptions) -> bool {
        let n = opts.worker_cores.len();
        opts.layout == Layout::RunToCompletion
            && (n == 1
                || (!opts.offline
                    && !opts.steer.as_ref().is_some_and(|s| s.places())
                    && ports.iter().all(|p| {
                        usize::from(p.rx_queues()) == n && usize::from(p.tx_queues()) == n
                    })))
    }

    fn run_direct(self, stop: &AtomicBool) -> Result<Report, EngineError> {
        let Engine {
            mut ports,
            pool,
            chain,
            opts,
        } = self;
        let n = opts.worker_cores.len();
        let names: Vec<String> = ports.iter().map(|p| p.name().to_string()).collect();
        // Worker w owns queue w of every port (split off from the highest down).
        let mut sets: Vec<Vec<Box<dyn Port>>> = Vec::with_capacity(n);
        for w in (1..n).rev() {
            let mut set = Vec::with_capacity(ports.len());
            for p in ports.iter_mut() {
                let q = p.take_queue(w as u16).ok_or_else(|| {
                    EngineError::Config(format!("port {}: cannot take queue {w}", p.name()))
                })?;
                set.push(q);
            }
            sets.push(set);
        }
        sets.push(ports);
        sets.reverse();
        let mut chains: Vec<Vec<Box<dyn Stage>>> = (0..n).map(chain).collect();
        let results: Vec<Result<WorkerReport, EngineError>> = std::thread::scope(|s| {
            let handles: Vec<_> = sets
                .iter_mut()
                .zip(chains.iter_mut())
                .enumerate()
                .map(|(i, (ports, stages))| {
                    let core = opts.worker_cores[i];
                    let (pool, opts) = (&pool, &opts);
                    s.spawn(move || -> Result<WorkerReport, EngineError> {
                        pin(core, &format!("worker {i}"))?;
                        let mut runner = ChainRunner::new(stages.len());
                        runner.orders =
                            Orders::new(stages.len(), &opts.orders).map_err(EngineError::Config)?;
                        runner.offload_csum = ports.iter().map(|p| p.tx_csum_offload()).collect();
                        let mut w = Direct {
                            offline: opts.offline,
                            cut_through: opts.cut_through,
                            seq: 0,
                            cache: pool.cache(),
                            runner,
                            clock: Clock::new(opts.clock),
                            txbufs: (0..ports.len()).map(|_| Burst::new()).collect(),
                        };
                        let r = w.run(ports, stages, opts.burst, stop);
                        if r.is_err() {
                            // One worker failing stops the others.
                            stop.store(true, Ordering::Relaxed);
                        }
                        r?;
                        Ok(WorkerReport {
                            core,
                            processed: w.runner.processed,
                            drops: w.runner.drops,
                            stage_drops: stage_drops(stages, &w.runner),
                            created: w.runner.created,
                            held: stages.iter().map(|s| s.held() as u64).sum(),
                            stages: stage_counters(stages),
                            copies_consumed: w.runner.copies_consumed,
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    h.join().unwrap_or_else(|_| {
                        Err(EngineError::Config(format!("worker {i} panicked")))
                    })
                })
                .collect()
        });
        let mut workers = Vec::with_capacity(n);
        for r in results {
            workers.push(r?);
        }
        // A port's counters are the sum over its queues.
        let ports = names
            .into_iter()
            .enumerate()
            .map(|(p, name)| {
                let mut st = PortStats::default();
                for set in &sets {
                    st.add(&set[p].stats());
                }
                (name, st)
            })
            .collect();
        Ok(Report {
            ports,
            workers,
            io_drops: DropCounters::default(),
            copies: 0,
        })
    }

    fn run_handoff(self, stop: &AtomicBool) -> Result<Report, EngineError> {
        let Engine {
            mut ports,
            pool,
            chain,
            opts,
        } = self;
        let nworkers = opts.worker_cores.len();
        let nports = ports.len() as u16;
        // Which ports' devices fill the checksums stages leave to transmit.
        let offload_csum: Vec<bool> = ports.iter().map(|p| p.tx_csum_offload()).collect();
        // Stage sets: one chain per worker (run-to-completion) or one chain cut in segments.
        let mut sets: Vec<Vec<Box<dyn Stage>>> = Vec::with_capacity(nworkers);
        let pipeline = match &opts.layout {
            Layout::RunToCompletion => {
                for i in 0..nworkers {
                    sets.push(chain(i));
                }
                false
            }
            Layout::Pipeline { segments } => {
                let mut all = chain(0).into_iter();
                for &n in segments {
                    sets.push(all.by_ref().take(n).collect());
                }
                let rest: Vec<_> = all.collect();
                if !rest.is_empty() {
                    return Err(EngineError::Config(format!(
                        "pipeline segments cover {} stages but the chain has {}",
                        segments.iter().sum::<usize>(),
                        segments.iter().sum::<usize>() + rest.len()
                    )));
                }
                true
            }
        };
        let ring = |_| buf_spsc(opts.ring_size).map_err(|e| EngineError::Config(e.to_string()));
        // Input rings: from the I/O thread to each worker (rtc) or to segment 0 and from each
        // segment to the next (pipeline).
        let mut inputs: Vec<(Option<BufProducer<false>>, Option<BufConsumer<false>>)> = Vec::new();
        for i in 0..nworkers {
            let (p, c) = ring(i)?;
            inputs.push((Some(p), Some(c)));
        }
        let mut outputs = Vec::new();
        for i in 0..nworkers {
            outputs.push(ring(i)?);
        }
        let marks: Vec<Arc<Progress>> = (0..=nworkers)
            .map(|_| Arc::new(Progress::default()))
            .collect();
        // marks[0] is the I/O thread's; marks[i+1] worker i's.
        let mut io_to_workers = Vec::new();
        let mut worker_inputs = Vec::new();
        let mut worker_next = Vec::new();
        if pipeline {
            io_to_workers.push(inputs[0].0.take().expect("ring"));
            for i in 0..nworkers {
                worker_inputs.push(inputs[i].1.take().expect("ring"));
                worker_next.push(if i + 1 < nworkers {
                    inputs[i + 1].0.take()
                } else {
                    None
                });
            }
        } else {
            for inp in inputs.iter_mut() {
                io_to_workers.push(inp.0.take().expect("ring"));
                worker_inputs.push(inp.1.take().expect("ring"));
                worker_next.push(None);
            }
        }
        let (out_prod, out_cons): (Vec<_>, Vec<_>) = outputs.into_iter().unzip();

        std::thread::scope(|s| -> Result<Report, EngineError> {
            let mut handles = Vec::new();
            let mut stage_sets = sets.into_iter();
            let mut wi = worker_inputs.into_iter();
            let mut wn = worker_next.into_iter();
            let mut wo = out_prod.into_iter();
            for i in 0..nworkers {
                let mut stages = stage_sets.next().expect("one set per worker");
                let input = wi.next().expect("input");
                let next = wn.next().expect("next");
                let out = wo.next().expect("out");
                let upstream = if pipeline && i > 0 {
                    marks[i].clone()
                } else {
                    marks[0].clone()
                };
                let mine = marks[i + 1].clone();
                let pool = pool.clone();
                let core = opts.worker_cores[i];
                let opts = &opts;
                let last = !pipeline || i + 1 == nworkers;
                let offload_csum = offload_csum.clone();
                handles.push(s.spawn(move || -> Result<WorkerReport, EngineError> {
                    pin(core, &format!("worker {i}"))?;
                    let mut runner = ChainRunner::new(stages.len());
                    // Handoffs go between run-to-completion workers, through the I/O thread.
                    runner.can_handoff = !pipeline;
                    // Where the flow hash alone places packets, stages may ask it where a
                    // flow lives (`Ctx::flow_placer`).
                    if !pipeline && !opts.steer.as_ref().is_some_and(|s| s.places()) {
                        runner.flow_workers = nworkers;
                    }
                    runner.offload_csum = offload_csum;
                    if !pipeline {
                        let orders = Orders::new(stages.len(), &opts.orders);
                        runner.orders = match orders {
                            Ok(o) => o,
                            Err(e) => {
                                mine.done.store(true, Ordering::Release);
                                return Err(EngineError::Config(e));
                            }
                        };
                    }
                    let mut w = HandoffWorker {
                        index: i,
                        cache: pool.cache(),
                        runner,
                        clock: Clock::new(opts.clock),
                        input,
                        next,
                        out,
                        upstream,
                        mine,
                        last,
                        nports,
                        offline: opts.offline,
                    };
                    let r = w.run(&mut stages, opts.burst, stop);
                    // Always say we are done, so nobody waits for us after an error.
                    w.mine.done.store(true, Ordering::Release);
                    r?;
                    Ok(WorkerReport {
                        core,
                        processed: w.runner.processed,
                        drops: w.runner.drops,
                        stage_drops: stage_drops(&stages, &w.runner),
                        created: w.runner.created,
                        held: stages.iter().map(|s| s.held() as u64).sum(),
                        stages: stage_counters(&stages),
                        copies_consumed: w.runner.copies_consumed,
                    })
                }));
            }
            pin(opts.io_core, "the I/O thread")?;
            let mut io = IoThread {
                steer: opts.steer.clone(),
                cache: pool.cache(),
                drops: DropCounters::default(),
                to_workers: io_to_workers,
                from_workers: out_cons,
                progress: marks[0].clone(),
                worker_marks: marks[1..].to_vec(),
                pipeline,
                offline: opts.offline,
                burst: opts.burst,
                seq: 0,
                reorder: Reorder::new(pool.count() as usize),
                txbufs: (0..ports.len()).map(|_| Burst::new()).collect(),
                handoffs: (0..nworkers)
                    .map(|_| VecDeque::with_capacity(BURST_MAX))
                    .collect(),
                in_flight: (0..nworkers)
                    .map(|_| VecDeque::with_capacity(BURST_MAX))
                    .collect(),
                handoffs_ran: vec![0; nworkers],
                caught_up: false,
                done_published: false,
                copies: 0,
            };
            let io_result = io.run(&mut ports, stop);
            io.progress.done.store(true, Ordering::Release);
            let mut workers = Vec::new();
            let mut first_err = io_result.err();
            for h in handles {
                match h.join() {
                    Ok(Ok(r)) => workers.push(r),
                    Ok(Err(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(_) => {
                        first_err.get_or_insert(EngineError::Config("a worker panicked".into()));
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            Ok(Report {
                ports: ports
                    .iter()
                    .map(|p| (p.name().to_string(), p.stats()))
                    .collect(),
                workers,
                io_drops: io.drops,
                copies: io.copies,
            })
        })
    }
}

fn stage_drops(stages: &[Box<dyn Stage>], runner: &ChainRunner) -> Vec<(String, String, u64)> {
    let mut v = Vec::new();
    for (st, counts) in stages.iter().zip(&runner.stage_drops) {
        let names = st.drop_reasons();
        for (code, &n) in counts.iter().enumerate() {
            if n != 0 {
                let r = names
                    .get(code)
                    .map_or_else(|| format!("reason{code}"), |s| s.to_string());
                v.push((st.name().to_string(), r, n));
            }
        }
    }
    v
}

fn stage_counters(stages: &[Box<dyn Stage>]) -> Vec<(String, Vec<(String, u64)>)> {
    stages
        .iter()
        .map(|s| (s.name().to_string(), s.counters()))
        .filter(|(_, c)| !c.is_empty())
        .collect()
}

fn pin(core: Option<usize>, what: &str) -> Result<(), EngineError> {
    if let Some(c) = core {
        cpu::pin_current_thread(c).map_err(|err| EngineError::Pin {
            what: what.into(),
            core: c,
            err,
        })?;
    }
    Ok(())
}

/// A worker's clock.
struct Clock {
    mode: ClockMode,
    tsc: TscClock,
    now: u64,
}

impl Clock {
    fn new(mode: ClockMode) -> Clock {
        Clock {
            mode,
            tsc: TscClock::new(cpu::unix_ns()),
            now: 0,
        }
    }

    /// `now` between bursts: TSC time, or the newest capture timestamp seen.
    #[inline]
    fn current(&mut self) -> u64 {
        if self.mode == ClockMode::Tsc {
            self.now = self.tsc.now();
        }
        self.now
    }

    /// `now` for a burst: TSC time, or the newest capture timestamp so far.
    #[inline(always)]
    fn tick(&mut self, burst: &Burst) -> u64 {
        match self.mode {
            ClockMode::Tsc => self.now = self.tsc.now(),
            ClockMode::Capture => {
                if let Some(m) = burst.as_slice().last() {
                    self.now = self.now.max(m.timestamp());
                }
            }
        }
        self.now
    }
}

/// The single run-to-completion worker that owns the ports.
struct Direct {
    offline: bool,
    cut_through: bool,
    seq: u64,
    cache: PoolCache,
    runner: ChainRunner,
    clock: Clock,
    txbufs: Vec<Burst>,
}

impl Direct {
    fn run(
        &mut self,
        ports: &mut [Box<dyn Port>],
        stages: &mut [Box<dyn Stage>],
        burst_size: usize,
        stop: &AtomicBool,
    ) -> Result<(), EngineError> {
        if let Some(map) = self.patch_map(ports, stages) {
            return self.run_cut_through(ports, &map, burst_size, stop);
        }
        let nports = ports.len() as u16;
        let mut burst = Burst::new();
        let mut leaving = Burst::new();
        let mut idle = 0u32;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut got_any = false;
            // Online, one reading of the clock serves every burst of a pass over the ports.
            let mut ticked = false;
            let (range, until) = match self.offline {
                true => replay_next(ports)?.map_or((0..ports.len(), u64::MAX), |(pi, until)| {
                    (pi..pi + 1, until)
                }),
                false => (0..ports.len(), u64::MAX),
            };
            for pi in range {
                let n =
                    ports[pi].rx_burst_until(0, &mut self.cache, &mut burst, burst_size, until)?;
                if n == 0 {
                    continue;
                }
                got_any = true;
                if self.offline {
                    for m in burst.as_mut_slice() {
                        m.set_seq(self.seq);
                        self.seq += 1;
                    }
                }
                let now = if self.offline || !ticked {
                    ticked = true;
                    self.clock.tick(&burst)
                } else {
                    self.clock.now
                };
                self.runner.run(
                    now,
                    0,
                    stages,
                    &mut burst,
                    &mut leaving,
                    &mut self.cache,
                    nports,
                );
                if self.offline {
                    self.runner
                        .finish(&mut burst, &mut leaving, &mut self.cache, nports);
                } else if let Some(e) =
                    self.runner
                        .finish_one_port(&mut burst, &mut leaving, &mut self.cache, nports)
                {
                    // The usual burst: all of it out of one port, sent from where it is.
                    send(
                        &mut *ports[usize::from(e)],
                        &mut burst,
                        &mut self.cache,
                        &mut self.runner.drops,
                    )?;
                }
                self.runner
                    .poll(now, 0, stages, &mut leaving, &mut self.cache, nports);
                if self.offline {
                    // Packets a stage sent out mid-chain are ahead of the rest of their burst:
                    // put input order back, so replay output is the same in every layout.
                    sort_by_seq(leaving.as_mut_slice());
                }
                self.transmit(ports, &mut leaving)?;
            }
            if ports.iter().all(|p| p.at_end()) {
                break;
            }
            if got_any {
                idle = 0;
            } else {
                idle += 1;
                if idle.is_multiple_of(64) {
                    let now = self.clock.current();
                    self.runner
                        .poll(now, 0, stages, &mut leaving, &mut self.cache, nports);
                    self.transmit(ports, &mut leaving)?;
                    std::thread::yield_now();
                }
            }
        }
        let now = self.clock.current();
        self.runner
            .flush(now, 0, stages, &mut leaving, &mut self.cache, nports);
        self.transmit(ports, &mut leaving)?;
        for p in ports.iter_mut() {
            p.flush()?;
        }
        Ok(())
    }

    /// Where each port's packets go when this worker can cut through (see [`Direct::run_cut_through`]):
    /// online, a chain of one stage whose [`Stage::patch`] map sends every port to a port, and
    /// all ports of one [`pmd::port::NativeKind`].
    fn patch_map(&self, ports: &[Box<dyn Port>], stages: &[Box<dyn Stage>]) -> Option<Vec<usize>> {
        if !self.cut_through || self.offline {
            return None;
        }
        let [stage] = stages else { return None };
        let map = stage.patch()?;
        let kind = ports.first()?.native_kind()?;
        if ports.iter().any(|p| p.native_kind() != Some(kind)) {
            return None;
        }
        (0..ports.len())
            .map(|p| {
                map.get(p)
                    .map(|&to| usize::from(to))
                    .filter(|&to| to < ports.len())
            })
            .collect()
    }

    /// Cut-through: each burst received on port `p` goes to `map[p]`'s transmit as the
    /// driver's own buffers, with no per-packet work but the ports' byte counts (what `dpdk-testpmd --forward-mode=io`
    /// does). The counters are the chain's: received, processed, sent, and what the transmit
    /// will not take after a few tries freed and dropped as `TxFull`.
    fn run_cut_through(
        &mut self,
        ports: &mut [Box<dyn Port>],
        map: &[usize],
        burst_size: usize,
        stop: &AtomicBool,
    ) -> Result<(), EngineError> {
        let mut b = NativeBurst::new();
        let mut idle = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let mut got_any = false;
            for (pi, &to) in map.iter().enumerate() {
                let n = ports[pi].rx_native(0, &mut b, burst_size)?;
                if n == 0 {
                    continue;
                }
                got_any = true;
                self.runner.processed += n as u64;
                let mut tries = 0;
                while !b.is_empty() {
                    ports[to].tx_native(0, &mut b)?;
                    tries += 1;
                    if tries >= 8 && !b.is_empty() {
                        self.runner.drops.0[DropReason::TxFull as usize] += b.free() as u64;
                    }
                }
            }
            if got_any {
                idle = 0;
            } else {
                if ports.iter().all(|p| p.at_end()) {
                    break;
                }
                idle += 1;
                if idle.is_multiple_of(64) {
                    std::thread::yield_now();
                }
            }
        }
        for p in ports.iter_mut() {
            p.flush()?;
        }
        Ok(())
    }

    /// Sends `leaving` out, grouped by egress port.
    #[inline]
    fn transmit(
        &mut self,
        ports: &mut [Box<dyn Port>],
        leaving: &mut Burst,
    ) -> Result<(), EngineError> {
        let Some(first) = leaving.as_slice().first().map(|m| m.egress()) else {
            return Ok(());
        };
        if leaving.as_slice().iter().all(|m| m.egress() == first) {
            return send(
                &mut *ports[first as usize],
                leaving,
                &mut self.cache,
                &mut self.runner.drops,
            );
        }
        let txbufs = &mut self.txbufs;
        leaving.retain_owned(|_, m| {
            let e = m.egress() as usize;
            let _ = txbufs[e].push(m);
            None
        });
        for (pi, b) in self.txbufs.iter_mut().enumerate() {
            if !b.is_empty() {
                send(&mut *ports[pi], b, &mut self.cache, &mut self.runner.drops)?;
            }
        }
        Ok(())
    }
}

/// Stable insertion sort by sequence number: no allocation, linear on sorted input.
fn sort_by_seq(v: &mut [pmd::Mbuf]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1].seq() > v[j].seq() {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Transmits a burst; what the port will not take after a few tries is dropped as `TxFull`.
#[inline]
fn send(
    port: &mut dyn Port,
    b: &mut Burst,
    cache: &mut PoolCache,
    drops: &mut DropCounters,
) -> Result<(), EngineError> {
    let mut tries = 0;
    while !b.is_empty() {
        port.tx_burst(0, cache, b)?;
        tries += 1;
        if tries >= 8 && !b.is_empty() {
            for _ in 0..b.len() {
                drops.count(DropReason::TxFull);
            }
            cache.free_burst(b);
        }
    }
    Ok(())
}

/// A thread's published progress: every packet with a sequence number below `mark` that was
/// handed to this thread has been processed, and whatever it produced has been passed on.
#[derive(Default)]
pub(crate) struct Progress {
    mark: AtomicU64,
    done: AtomicBool,
    /// Packets handed over from other workers that this worker has run, their output passed
    /// on (see [`IoThread::collect`]).
    handoffs: AtomicU64,
}

/// A worker in the handoff shape.
struct HandoffWorker {
    index: usize,
    cache: PoolCache,
    runner: ChainRunner,
    clock: Clock,
    input: BufConsumer<false>,
    next: Option<BufProducer<false>>,
    out: BufProducer<false>,
    upstream: Arc<Progress>,
    mine: Arc<Progress>,
    last: bool,
    nports: u16,
    offline: bool,
}

impl HandoffWorker {
    /// Runs the stages' timer work (or, at shutdown, their flush) and passes on what they emit.
    fn timers(
        &mut self,
        stages: &mut [Box<dyn Stage>],
        leaving: &mut Burst,
        stop: &AtomicBool,
        shutdown: bool,
    ) {
        let now = self.clock.current();
        let (w, n) = (self.index, self.nports);
        if shutdown {
            self.runner
                .flush(now, w, stages, leaving, &mut self.cache, n);
        } else {
            self.runner
                .poll(now, w, stages, leaving, &mut self.cache, n);
        }
        push_all(
            &self.out,
            leaving,
            self.offline,
            stop,
            &mut self.runner.drops,
            &mut self.cache,
        );
    }

    /// Runs a dequeued burst that holds packets other workers handed over as well as fresh
    /// ones, in ring order: each run of fresh packets through the whole chain, each run of
    /// handed-over ones from the stage that asked (a handoff must not overtake a packet queued
    /// before it: it may need the state that packet creates). Passes the output on, then
    /// publishes how many handed-over packets ran.
    fn run_mixed(
        &mut self,
        now: u64,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        part: &mut Burst,
        leaving: &mut Burst,
        stop: &AtomicBool,
    ) {
        let kind = |m: &Mbuf| m.handoff().map(|h| h.1);
        let mut ran = 0u64;
        while let Some(k) = burst.as_slice().first().map(kind) {
            let n = burst.move_run_to(part, |m| kind(m) == k);
            if k.is_some() {
                for m in part.as_mut_slice() {
                    m.arrive();
                }
            }
            let (w, np) = (self.index, self.nports);
            match k {
                None => self
                    .runner
                    .run(now, w, stages, part, leaving, &mut self.cache, np),
                Some(stage) => {
                    ran += n as u64;
                    self.runner.run_from(
                        usize::from(stage),
                        now,
                        w,
                        stages,
                        part,
                        leaving,
                        &mut self.cache,
                        np,
                    );
                }
            }
            self.runner.finish(part, leaving, &mut self.cache, np);
            push_all(
                &self.out,
                leaving,
                self.offline,
                stop,
                &mut self.runner.drops,
                &mut self.cache,
            );
        }
        self.mine.handoffs.fetch_add(ran, Ordering::Release);
    }

    fn run(
        &mut self,
        stages: &mut [Box<dyn Stage>],
        burst_size: usize,
        stop: &AtomicBool,
    ) -> Result<(), EngineError> {
        let mut burst = Burst::new();
        let mut leaving = Burst::new();
        let mut part = Burst::new();
        let mut idle = 0u32;
        loop {
            // Read upstream's progress *before* draining: everything below it is in our ring.
            let up_done = self.upstream.done.load(Ordering::Acquire);
            let up = self.upstream.mark.load(Ordering::Acquire);
            let mut worked = false;
            while self.input.dequeue(&mut burst, burst_size) > 0 {
                worked = true;
                let now = self.clock.tick(&burst);
                if burst.as_slice().iter().any(|m| m.handoff().is_some()) {
                    // Only run-to-completion workers (the last and only segment) get these.
                    self.run_mixed(now, stages, &mut burst, &mut part, &mut leaving, stop);
                }
                self.runner.run(
                    now,
                    self.index,
                    stages,
                    &mut burst,
                    &mut leaving,
                    &mut self.cache,
                    self.nports,
                );
                self.runner.poll(
                    now,
                    self.index,
                    stages,
                    &mut leaving,
                    &mut self.cache,
                    self.nports,
                );
                if self.last {
                    self.runner
                        .finish(&mut burst, &mut leaving, &mut self.cache, self.nports);
                } else if let Some(next) = &self.next {
                    push_all(
                        next,
                        &mut burst,
                        self.offline,
                        stop,
                        &mut self.runner.drops,
                        &mut self.cache,
                    );
                }
                push_all(
                    &self.out,
                    &mut leaving,
                    self.offline,
                    stop,
                    &mut self.runner.drops,
                    &mut self.cache,
                );
            }
            if up_done {
                self.timers(stages, &mut leaving, stop, true);
                self.mine.mark.store(up, Ordering::Release);
                break;
            }
            self.mine.mark.store(up, Ordering::Release);
            if worked {
                idle = 0;
            } else {
                idle += 1;
                if idle.is_multiple_of(64) {
                    self.timers(stages, &mut leaving, stop, false);
                    std::thread::yield_now();
                }
            }
        }
        Ok(())
    }
}

/// Pushes a whole burst into a ring. Offline it waits for room (the consumer always drains);
/// online it drops what does not fit after a few tries, counted as `HandoffFull`.
#[inline]
fn push_all<const M: bool>(
    ring: &BufProducer<M>,
    b: &mut Burst,
    offline: bool,
    stop: &AtomicBool,
    drops: &mut DropCounters,
    cache: &mut PoolCache,
) {
    let mut tries = 0u32;
    while !b.is_empty() {
        ring.enqueue(b);
        if b.is_empty() {
            break;
        }
        tries += 1;
        if (!offline && tries > 16) || (offline && stop.load(Ordering::Relaxed) && tries > 1 << 20)
        {
            for _ in 0..b.len() {
                drops.count(DropReason::HandoffFull);
            }
            cache.free_burst(b);
            break;
        }
        std::hint::spin_loop();
        if tries.is_multiple_of(64) {
            std::thread::yield_now();
        }
    }
}

/// The I/O thread of the handoff shape: owns the ports, dispatches, reorders, transmits.
struct IoThread {
    steer: Option<Arc<dyn Steer>>,
    cache: PoolCache,
    drops: DropCounters,
    to_workers: Vec<BufProducer<false>>,
    from_workers: Vec<BufConsumer<false>>,
    progress: Arc<Progress>,
    worker_marks: Vec<Arc<Progress>>,
    pipeline: bool,
    offline: bool,
    burst: usize,
    seq: u64,
    reorder: Reorder,
    txbufs: Vec<Burst>,
    /// Handoffs between workers, per target worker: waiting for room in its ring.
    handoffs: Vec<VecDeque<Mbuf>>,
    /// Sequence numbers of the handoffs each worker was given and has not yet run.
    in_flight: Vec<VecDeque<u64>>,
    /// Handoffs each worker has reported run (its [`Progress::handoffs`] as last applied).
    handoffs_ran: Vec<u64>,
    /// At the start of the last [`IoThread::collect`], every worker had processed everything
    /// dispatched so far.
    caught_up: bool,
    /// `progress.done` is published: workers may have stopped, handoffs are late.
    done_published: bool,
    /// Broadcast copies made.
    copies: u64,
}

/// Handoffs waiting for one worker beyond which more are dropped online (`handoff_full`).
const HANDOFF_BACKLOG: usize = 4 * BURST_MAX;

impl IoThread {
    fn run(&mut self, ports: &mut [Box<dyn Port>], stop: &AtomicBool) -> Result<(), EngineError> {
        let nw = self.to_workers.len();
        let mut staging: Vec<Burst> = (0..nw).map(|_| Burst::new()).collect();
        let mut burst = Burst::new();
        let mut rx_done = false;
        let mut idle = 0u32;
        loop {
            let mut worked = false;
            if !rx_done {
                let (range, until) = match self.offline {
                    true => replay_next(ports)?
                        .map_or((0..ports.len(), u64::MAX), |(pi, until)| {
                            (pi..pi + 1, until)
                        }),
                    false => (0..ports.len(), u64::MAX),
                };
                for pi in range {
                    let n = ports[pi].rx_burst_until(
                        0,
                        &mut self.cache,
                        &mut burst,
                        self.burst,
                        until,
                    )?;
                    if n == 0 {
                        continue;
                    }
                    worked = true;
                    self.dispatch(&mut burst, &mut staging, ports, stop)?;
                }
                let all_done = ports.iter().all(|p| p.at_end());
                self.progress.mark.store(self.seq, Ordering::Release);
                if all_done || stop.load(Ordering::Relaxed) {
                    rx_done = true;
                }
            }
            let all_workers_done = self
                .worker_marks
                .iter()
                .all(|m| m.done.load(Ordering::Acquire));
            worked |= self.collect(ports, all_workers_done)?;
            // Workers stop once told input is over: only when they have processed all of it
            // and no handoff between them is pending, so none can arise after they stop.
            if rx_done && !self.done_published && (self.quiescent() || all_workers_done) {
                self.done_published = true;
                self.progress.done.store(true, Ordering::Release);
            }
            if self.done_published && all_workers_done {
                // One last sweep after the workers' final pushes.
                self.collect(ports, true)?;
                break;
            }
            if worked {
                idle = 0;
            } else {
                idle += 1;
                if idle > 64 {
                    std::thread::yield_now();
                }
            }
        }
        for p in ports.iter_mut() {
            p.flush()?;
        }
        Ok(())
    }

    /// Stamps and hands a received burst to the workers.
    fn dispatch(
        &mut self,
        burst: &mut Burst,
        staging: &mut [Burst],
        ports: &mut [Box<dyn Port>],
        stop: &AtomicBool,
    ) -> Result<(), EngineError> {
        let nw = staging.len();
        let mut seq = self.seq;
        for m in burst.as_mut_slice() {
            m.set_seq(seq);
            seq += 1;
        }
        self.seq = seq;
        if self.pipeline || nw == 1 {
            std::mem::swap(burst, &mut staging[0]);
        } else {
            let steer = self.steer.as_deref();
            let (cache, copies, drops) = (&mut self.cache, &mut self.copies, &mut self.drops);
            burst.retain_owned(|_, mut m| {
                let h = flow_hash(m.data());
                m.set_flow_hash(h);
                let by_hash = worker_for_hash(h, nw);
                let w = steer
                    .and_then(|s| s.steer(m.data(), m.port(), nw))
                    .filter(|&w| w < nw)
                    .unwrap_or(by_hash);
                if steer.is_some_and(|s| s.broadcast(m.data(), m.port())) {
                    for (o, b) in staging.iter_mut().enumerate() {
                        if o == w {
                            continue;
                        }
                        // A copy that cannot be made (no buffer, no room) only means that
                        // worker does not learn from this one.
                        if let Some(mut c) = cache.alloc() {
                            if c.copy_from(m.data()) {
                                c.set_port(m.port());
                                c.set_seq(m.seq());
                                c.set_timestamp(m.timestamp());
                                c.set_flow_hash(h);
                                c.set_copy();
                                match b.push(c) {
                                    Ok(()) => *copies += 1,
                                    Err(c) => cache.free(c),
                                }
                            } else {
                                cache.free(c);
                            }
                        }
                    }
                }
                if let Err(m) = staging[w].push(m) {
                    drops.count(DropReason::HandoffFull);
                    cache.free(m);
                }
                None
            });
        }
        for (w, b) in staging.iter_mut().enumerate() {
            // While a worker's ring is full, keep draining their output so nobody deadlocks.
            let mut tries = 0u32;
            while !b.is_empty() {
                self.to_workers[w].enqueue(b);
                if b.is_empty() {
                    break;
                }
                tries += 1;
                if !self.offline && tries > 16 {
                    for _ in 0..b.len() {
                        self.drops.count(DropReason::HandoffFull);
                    }
                    self.cache.free_burst(b);
                    break;
                }
                if self.offline && stop.load(Ordering::Relaxed) && tries > 1 << 20 {
                    for _ in 0..b.len() {
                        self.drops.count(DropReason::HandoffFull);
                    }
                    self.cache.free_burst(b);
                    break;
                }
                self.collect(ports, false)?;
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Drains the workers' output rings and transmits. Offline, output goes through the
    /// reorder buffer and leaves in input order once every worker has moved past it.
    fn collect(
        &mut self,
        ports: &mut [Box<dyn Port>],
        final_sweep: bool,
    ) -> Result<bool, EngineError> {
        // Read the marks and handoff counts before draining (see `Progress`).
        let mut low = u64::MAX;
        self.caught_up = true;
        for (w, m) in self.worker_marks.iter().enumerate() {
            let mark = m.mark.load(Ordering::Acquire);
            low = low.min(mark);
            self.caught_up &= mark >= self.seq || m.done.load(Ordering::Acquire);
            // Every handoff a worker runs was queued here first: none in flight, none to count.
            if !self.in_flight[w].is_empty() {
                let ran = m.handoffs.load(Ordering::Acquire);
                while self.handoffs_ran[w] < ran {
                    self.in_flight[w].pop_front();
                    self.handoffs_ran[w] += 1;
                }
            }
        }
        if self.worker_marks.is_empty() {
            low = 0;
        }
        let mut got = false;
        let mut b = Burst::new();
        for ring in &self.from_workers {
            while ring.dequeue(&mut b, BURST_MAX) > 0 {
                got = true;
                if b.as_slice().iter().any(|m| m.handoff().is_some()) {
                    let (handoffs, drops, cache) =
                        (&mut self.handoffs, &mut self.drops, &mut self.cache);
                    let (late, offline) = (self.done_published, self.offline);
                    b.retain_owned(|_, m| {
                        let Some((w, _)) = m.handoff() else {
                            return Some(m);
                        };
                        match handoffs.get_mut(usize::from(w)) {
                            Some(q) if !late && (offline || q.len() < HANDOFF_BACKLOG) => {
                                q.push_back(m)
                            }
                            Some(_) if !late => {
                                drops.count(DropReason::HandoffFull);
                                cache.free(m);
                            }
                            Some(_) => {
                                drops.count(DropReason::HandoffLate);
                                cache.free(m);
                            }
                            None => {
                                drops.count(DropReason::BadPort);
                                cache.free(m);
                            }
                        }
                        None
                    });
                }
                if self.offline {
                    let r = &mut self.reorder;
                    b.retain_owned(|_, m| {
                        r.push(m);
                        None
                    });
                } else {
                    route(&mut b, &mut self.txbufs);
                    flush_txbufs(ports, &mut self.txbufs, &mut self.cache, &mut self.drops)?;
                }
            }
        }
        self.send_handoffs();
        if self.offline {
            // A handed-over packet keeps its sequence number: nothing after it leaves before
            // it has run on its new worker.
            let pending = self
                .handoffs
                .iter()
                .flat_map(|q| q.iter().map(|m| m.seq()))
                .chain(self.in_flight.iter().flat_map(|q| q.iter().copied()))
                .min()
                .unwrap_or(u64::MAX);
            let limit = if final_sweep {
                u64::MAX
            } else {
                low.min(pending)
            };
            while let Some(m) = self.reorder.pop_below(limit) {
                let e = m.egress() as usize;
                if let Err(m) = self.txbufs[e].push(m) {
                    // Unreachable: a full buffer is flushed right below.
                    self.drops.count(DropReason::Internal);
                    self.cache.free(m);
                }
                if self.txbufs[e].room() == 0 {
                    flush_txbufs(ports, &mut self.txbufs, &mut self.cache, &mut self.drops)?;
                }
            }
            flush_txbufs(ports, &mut self.txbufs, &mut self.cache, &mut self.drops)?;
        }
        Ok(got)
    }
}

impl IoThread {
    /// Moves waiting handoffs into their workers' rings, as far as there is room.
    fn send_handoffs(&mut self) {
        let mut b = Burst::new();
        for (w, q) in self.handoffs.iter_mut().enumerate() {
            while !q.is_empty() {
                let mut seqs = [0u64; BURST_MAX];
                let mut n = 0;
                while let Some(m) = q.pop_front() {
                    seqs[n] = m.seq();
                    n += 1;
                    if let Err(m) = b.push(m) {
                        // Unreachable: at most BURST_MAX are taken.
                        q.push_front(m);
                        n -= 1;
                        break;
                    }
                    if n == BURST_MAX {
                        break;
                    }
                }
                self.to_workers[w].enqueue(&mut b);
                let sent = n - b.len();
                self.in_flight[w].extend(&seqs[..sent]);
                // What did not fit goes back in front, in order.
                while let Some(m) = b.pop() {
                    q.push_front(m);
                }
                if sent < n {
                    break;
                }
            }
        }
    }

    /// Every worker has processed all input and no handoff is waiting or running.
    fn quiescent(&self) -> bool {
        self.caught_up
            && self.handoffs.iter().all(VecDeque::is_empty)
            && self.in_flight.iter().all(VecDeque::is_empty)
    }
}

fn route(b: &mut Burst, txbufs: &mut [Burst]) {
    b.retain_owned(|_, m| {
        let e = m.egress() as usize;
        txbufs[e].push(m).err()
    });
}

fn flush_txbufs(
    ports: &mut [Box<dyn Port>],
    txbufs: &mut [Burst],
    cache: &mut PoolCache,
    drops: &mut DropCounters,
) -> Result<(), EngineError> {
    for (pi, b) in txbufs.iter_mut().enumerate() {
        if !b.is_empty() {
            send(&mut *ports[pi], b, cache, drops)?;
        }
    }
    Ok(())
}

/// Offline replay from several files: the port to read next, and the capture time up to which
/// to read it, so that packets enter in capture-time order across ports (equal times in port
/// order). `None` (read every port in turn) unless every port still receiving is a file.
fn replay_next(ports: &mut [Box<dyn Port>]) -> Result<Option<(usize, u64)>, EngineError> {
    if ports.len() < 2 {
        return Ok(None);
    }
    let mut best: Option<(usize, u64)> = None;
    let mut until = u64::MAX;
    for (i, p) in ports.iter_mut().enumerate() {
        match p.next_timestamp()? {
            Some(ts) => match best {
                Some((_, b)) if b <= ts => until = until.min(ts),
                Some((_, b)) => {
                    until = until.min(b);
                    best = Some((i, ts));
                }
                None => best = Some((i, ts)),
            },
            None if p.at_end() => {}
            // A port that is not a file (or not at its end): nothing to merge by.
            None => return Ok(None),
        }
    }
    Ok(best.map(|(i, _)| (i, until)))
}

/// The worker, of `workers`, that the I/O thread dispatches a packet with flow hash `h` to
/// when no stage steers it.
#[inline(always)]
pub fn worker_for_hash(h: u32, workers: usize) -> usize {
    ((u64::from(h) * workers as u64) >> 32) as usize
}

/// The flow hash the packets of a fragment's flow get when they are not fragmented: a first
/// fragment hashed with its ports (or ICMP identifier), where [`flow_hash`] gives every
/// fragment of a datagram the same hash without them. `None` for a frame that does not parse.
pub fn unfragmented_flow_hash(frame: &[u8]) -> Option<u32> {
    let mut p = crate::wire::parse::parse(frame).ok()?;
    if p.is_fragment && !p.first_fragment {
        return None;
    }
    p.is_fragment = false;
    p.first_fragment = false;
    Some(crate::wire::flow::symmetric_hash(frame, &p))
}

/// The symmetric flow hash of a frame (0 for frames whose headers do not parse: they all go to
/// one worker, which drops or forwards them as its stages decide).
#[inline]
pub fn flow_hash(frame: &[u8]) -> u32 {
    match crate::wire::parse::parse(frame) {
        Ok(p) => crate::wire::flow::symmetric_hash(frame, &p),
        Err(_) => 0,
    }
}
