//! `bench`: measures the dataplane and, in the same run, the DPDK tool a user would otherwise
//! pick, and prints the ratio.
//!
//! Every figure this project claims comes from here, with its command line, and goes to
//! `bench/results/<scenario>-<unix time>.json`; `bench report` regenerates `BENCHMARKS.md` and
//! the plots from the newest result of each scenario. The last line of every scenario is
//! `ratio: X` (ours over the DPDK peer, higher is better) or `ratio: n/a (why)`.
//!
//! * `io`: forward-only between two null ports on one pinned core, against `dpdk-testpmd
//!   --forward-mode=io` over two `net_null` vdevs, runs interleaved (ours, peer, ours, peer...)
//!   because on a shared VM only a same-moment ratio means anything; then a short pass with the
//!   generator and the sink for latency. What it measures is the framework's own cost: pool,
//!   bursts, stage call, scatter and transmit.
//! * `chain-length`: generator → 1..N `touch` stages → sink on one core: what each stage in the
//!   chain costs. DPDK has no counterpart (testpmd forwards with one fixed mode).
//! * `pipeline`: the same chain cut over two cores with a handoff ring; the zero-loss rate is
//!   found by binary search on the generator's paced rate (RFC 2544 style).
//! * `dpdk-io`: `io` through our DPDK driver (two `net_null` devices, packets kept in their
//!   `rte_mbuf`s) against the same testpmd run; built with `--features dpdk`. A forward-only
//!   chain on DPDK ports cuts through (bursts of `rte_mbuf`s passed port to port, as testpmd
//!   does); `--no-cut-through` runs the forward stage on every packet instead and is recorded
//!   as `dpdk-io-stage`.
//! * `router`: full-BGP-table lookups (random and table-drawn IPv4, IPv6) against
//!   `dpdk-test-fib` on the same prefixes and traces, both FIBs' memory, the router stage's Mpps.
//! * `firewall`: ClassBench acl1/fw1/ipc1 at 1K and 10K against every `dpdk-test-acl` algorithm
//!   on the same rules and traces, single-rule add/delete against rte_acl's rebuild, memory, the
//!   stage with 1M tracked connections.
//! * `nat`: the NAT44 stage at 1M and 10M sessions, new sessions per second, bytes per
//!   session (no DPDK counterpart: the figures are set against the goals).
//! * `chain`: firewall → NAT44 → router from one configuration, on one core and split over two
//!   (zero-loss search).
//! * `memif`: two dataplane processes over memif against a `dpdk-testpmd` memif pair; AF_PACKET
//!   on a veth pair against testpmd's `net_af_packet`.

mod scenarios;

use clap::{Args, Parser, Subcommand};

use bench::gen::{GenConfig, Proto, Size, Spread};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Dataplane benchmarks, side by side with DPDK's tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Traffic the generator makes.
#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// L4 protocol: udp, tcp or icmp.
    #[arg(long, default_value = "udp", value_parser = parse_proto)]
    proto: Proto,
    /// IPv6 instead of IPv4.
    #[arg(long)]
    ipv6: bool,
    /// Tag frames with this 802.1Q VLAN id.
    #[arg(long)]
    vlan: Option<u16>,
    /// Frame size in bytes (64..1518, without FCS) or `imix` (64/594/1518 at 7:4:1).
    #[arg(long, default_value = "64", value_parser = parse_size)]
    size: Size,
    /// Number of flows.
    #[arg(long, default_value_t = 1024)]
    flows: u32,
    /// Draw flows by a Zipf law with this exponent (default: uniform).
    #[arg(long)]
    zipf: Option<f64>,
    /// Distinct source addresses.
    #[arg(long, default_value_t = 256)]
    src_ips: u32,
    /// Distinct destination addresses.
    #[arg(long, default_value_t = 1)]
    dst_ips: u32,
    /// Zero the payload past the headers in every packet (L4 checksums then verify).
    #[arg(long)]
    fill_payload: bool,
    /// Largest per-flow template table (KiB); more flows patch one template per packet.
    #[arg(long, default_value_t = 256)]
    max_table_kib: usize,
}

impl GenArgs {
    fn config(&self) -> GenConfig {
        GenConfig {
            proto: self.proto,
            ipv6: self.ipv6,
            vlan: self.vlan,
            size: self.size,
            flows: self.flows,
            spread: self.zipf.map_or(Spread::Uniform, Spread::Zipf),
            src_ips: self.src_ips,
            dst_ips: self.dst_ips,
            rate_pps: None,
            limit: None,
            fill_payload: self.fill_payload,
            max_table_bytes: self.max_table_kib << 10,
            seed: 1,
        }
    }
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s {
        "udp" => Ok(Proto::Udp),
        "tcp" => Ok(Proto::Tcp),
        "icmp" => Ok(Proto::Icmp),
        _ => Err(format!("`{s}` is not udp, tcp or icmp")),
    }
}

fn parse_size(s: &str) -> Result<Size, String> {
    if s == "imix" {
        return Ok(Size::Imix);
    }
    let n: u16 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a size or `imix`"))?;
    if !(64..=1518).contains(&n) {
        return Err(format!("size {n} is not between 64 and 1518"));
    }
    Ok(Size::Fixed(n))
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward-only between two null ports, against dpdk-testpmd io on net_null (interleaved).
    Io {
        #[command(flatten)]
        run: scenarios::IoArgs,
        /// Packet length.
        #[arg(long, default_value_t = 64)]
        len: u16,
        /// Seconds of the latency pass (generator → forward → sink); 0 skips it.
        #[arg(long, default_value_t = 2.0)]
        lat_secs: f64,
    },
    /// Generator → 1..N touch stages → sink on one core: Mpps against chain length.
    ChainLength {
        /// Longest chain.
        #[arg(long, default_value_t = 8)]
        max_stages: usize,
        /// Seconds per chain length and run.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Runs per chain length (the median is reported).
        #[arg(long, default_value_t = 1)]
        runs: usize,
        /// Packets per burst.
        #[arg(long, default_value_t = 32)]
        burst: usize,
        /// Core for the worker.
        #[arg(long, default_value_t = 1)]
        core: usize,
        #[command(flatten)]
        gen: GenArgs,
    },
    /// The touch chain split over two cores with a ring; zero-loss rate by binary search.
    Pipeline {
        /// Stages in the chain.
        #[arg(long, default_value_t = 4)]
        stages: usize,
        /// Stages on the first core (the rest run on the second).
        #[arg(long, default_value_t = 2)]
        split: usize,
        /// Seconds per trial.
        #[arg(long, default_value_t = 2.0)]
        trial_secs: f64,
        /// Search steps after the full-rate trial.
        #[arg(long, default_value_t = 8)]
        steps: usize,
        /// Lost fraction still counted as no loss (RFC 2544: 0).
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Packets per burst.
        #[arg(long, default_value_t = 32)]
        burst: usize,
        /// Slots of the ring between the cores.
        #[arg(long, default_value_t = 1024)]
        ring: u32,
        /// Core of the first segment (and the generator).
        #[arg(long, default_value_t = 0)]
        core_a: usize,
        /// Core of the second segment (and the sink).
        #[arg(long, default_value_t = 1)]
        core_b: usize,
        /// Use the engine's own pipeline layout, with its I/O thread (generator and sink) on
        /// this core: a third busy thread, so give it a third free core.
        #[arg(long)]
        engine_io_core: Option<usize>,
        #[command(flatten)]
        gen: GenArgs,
    },
    /// Forward-only through the DPDK driver (two net_null devices, packets kept in their
    /// rte_mbufs), against dpdk-testpmd io on net_null (interleaved); needs `--features dpdk`.
    DpdkIo(scenarios::IoArgs),
    /// Router: FIB lookups on the full BGP table against dpdk-test-fib; the stage's Mpps.
    Router(scenarios::router::Args),
    /// Firewall: ClassBench against dpdk-test-acl; rule updates; the stage's Mpps.
    Firewall(scenarios::firewall::Args),
    /// NAT44: Mpps at 1M and 10M sessions; new sessions per second; memory per session.
    Nat(scenarios::nat::Args),
    /// Firewall → NAT44 → router on one core, and split over two.
    Chain(scenarios::chain::Args),
    /// memif between two dataplane processes against a dpdk-testpmd memif pair.
    Memif(scenarios::memif::Args),
    /// Cycles per packet of the generator's rx_burst alone, against the null port's.
    GenCost {
        /// Packets per burst.
        #[arg(long, default_value_t = 32)]
        burst: usize,
        /// Core to measure on.
        #[arg(long, default_value_t = 1)]
        core: usize,
        #[command(flatten)]
        gen: GenArgs,
    },
    /// Regenerate BENCHMARKS.md and the plots from the newest result of each scenario.
    Report,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Io { run, len, lat_secs } => scenarios::io(&run, len, lat_secs, false),
        Cmd::DpdkIo(run) => {
            if cfg!(feature = "dpdk") {
                scenarios::io(&run, 64, 0.0, true)
            } else {
                Err("dpdk-io needs the DPDK driver: build bench with `--features dpdk` (scripts/bench.sh dpdk-io does)".into())
            }
        }
        Cmd::ChainLength {
            max_stages,
            secs,
            runs,
            burst,
            core,
            gen,
        } => scenarios::chain_length(
            max_stages.clamp(1, 64),
            secs,
            runs.max(1),
            burst,
            core,
            &gen.config(),
        ),
        Cmd::Pipeline {
            stages,
            split,
            trial_secs,
            steps,
            loss,
            burst,
            ring,
            core_a,
            core_b,
            engine_io_core,
            gen,
        } => scenarios::pipeline(&scenarios::PipelineArgs {
            stages,
            split,
            trial_secs,
            steps,
            loss,
            burst,
            ring,
            cores: (core_a, core_b),
            gen: gen.config(),
            engine_io_core,
        }),
        Cmd::Router(a) => scenarios::router::run(&a),
        Cmd::Firewall(a) => scenarios::firewall::run(&a),
        Cmd::Nat(a) => scenarios::nat::run(&a),
        Cmd::Chain(a) => scenarios::chain::run(&a),
        Cmd::Memif(a) => scenarios::memif::run(&a),
        Cmd::GenCost { burst, core, gen } => scenarios::gen_cost_cmd(burst, core, &gen.config()),
        Cmd::Report => bench::results::report(),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
