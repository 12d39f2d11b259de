//! `bench chain`: the three VNF stages together (stateful firewall → NAT44 → router), first on
//! one core run to completion, then cut over two cores as a pipeline.
//!
//! Each stage has its own scenario; this one exists because what an operator deploys is the
//! chain, and the chain costs more than the sum of its parts only if something between the
//! stages does (burst scatter, cache pressure from three sets of tables on one core, the
//! handoff ring). It answers two questions: how many Mpps one core gives for the whole chain
//! (with cycles per packet and latency), and what the zero-loss rate is when the chain is split
//! over two cores (RFC 2544 binary search on the generator's paced rate).
//!
//! The chain is built the way the `dataplane` binary builds it: a TOML configuration (printed
//! with `--dump-config`, so `dataplane check --config` can read the very same chain) goes
//! through [`dataplane::config::Config::parse`] and [`dataplane::build::build_chain`]. Its two
//! ports (`inside`, `outside`) are only names and MAC addresses here: the generator stands in
//! for `inside` (port 0) and the sink for `outside` (port 1). What it holds:
//!
//! * **firewall**, stateful: `ct established,related accept`, `ct invalid drop`, a few hundred
//!   generated rules that never match the test traffic (block lists, port rules, IPv6), then
//!   the accept rules for the subscribers' traffic and a default drop. Rules are generated from
//!   a fixed seed, so a run is repeatable.
//! * **NAT44**: the subscribers (`10.0.0.0/8`, the generator's sources) behind `inside`, an
//!   outside pool (`198.51.100.0/28` by default), sessions sized for the flows.
//! * **router**: a generated table of a few thousand IPv4 prefixes over four next hops, with
//!   `192.168.0.0/15` and the 256 `/24`s of 192.168/16 (the generator's destinations) among
//!   them, or the full BGP table from `../shared/corpus/routes` (`--full-table`); static
//!   neighbours, so nothing waits for ARP; MTU 9000.
//!
//! The generator sends from the inside: `02:00:00:00:00:01` to `02:00:00:00:00:02` (the
//! `inside` port's MAC here), `10.0.0.1`.. to `192.168.0.1`.., UDP to port 53 by default. Every
//! packet must reach the sink: a run where the counters do not balance, or where any packet is
//! dropped inside the chain, fails instead of printing a rate.
//!
//! No DPDK counterpart: DPDK ships no firewall + NAT + router chain (VPP would be the peer).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;

use bench::gen::{GenConfig, Generator, Proto};
use bench::results::Row;
use bench::sink::{Latency, Sink};
use dataplane::build;
use dataplane::config::Config;
use dataplane::engine::chain::ChainRunner;
use dataplane::stage::Stage;
use pmd::mbuf::buf_spsc;
use pmd::port::Port;
use pmd::Burst;

use super::{Res, Trial, BUFFERS};

/// Where `--full-table` reads the BGP table from, relative to the workspace root.
const FULL_TABLE: &str = "../shared/corpus/routes/bart_fulltable_v4v6_prefixes.txt.gz";

/// The next hops on the outside link (static neighbours).
const GATEWAYS: [(&str, &str); 4] = [
    ("192.0.2.1", "02:aa:00:00:00:01"),
    ("192.0.2.2", "02:aa:00:00:00:02"),
    ("192.0.2.3", "02:aa:00:00:00:03"),
    ("192.0.2.4", "02:aa:00:00:00:04"),
];

/// The seed of the generated firewall rules and routes.
const SEED: u64 = 0x00c4_a17e_5eed;

/// Options of `bench chain`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Seconds per run-to-completion run.
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Run-to-completion runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Packets per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Core of the run-to-completion worker (generator and sink run on it too).
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Generated firewall rules before the accept rules (none of them matches the traffic).
    #[arg(long, default_value_t = 300)]
    fw_rules: usize,
    /// Generated IPv4 prefixes in the router's table (ignored with --full-table).
    #[arg(long, default_value_t = 4000)]
    prefixes: usize,
    /// Load the full BGP table (../shared/corpus/routes) into the router instead.
    #[arg(long)]
    full_table: bool,
    /// A prefix list (one CIDR per line, .gz is fine) for the router instead of the generated
    /// table; implies --full-table.
    #[arg(long)]
    routes_file: Option<PathBuf>,
    /// The NAT's outside pool (an IPv4 prefix of /20 or longer).
    #[arg(long, default_value = "198.51.100.0/28")]
    pool: String,
    /// Skip the two-core pipeline.
    #[arg(long)]
    no_pipeline: bool,
    /// Stages on the first pipeline core (1: firewall | NAT + router; 2: firewall + NAT |
    /// router).
    #[arg(long, default_value_t = 1)]
    split: usize,
    /// Seconds per pipeline trial.
    #[arg(long, default_value_t = 2.0)]
    trial_secs: f64,
    /// Search steps after the full-rate pipeline trial.
    #[arg(long, default_value_t = 8)]
    steps: usize,
    /// Lost fraction still counted as no loss (RFC 2544: 0).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Slots of the ring between the pipeline cores.
    #[arg(long, default_value_t = 1024)]
    ring: u32,
    /// Core of the first pipeline segment (and the generator).
    #[arg(long, default_value_t = 0)]
    core_a: usize,
    /// Core of the second pipeline segment (and the sink).
    #[arg(long, default_value_t = 1)]
    core_b: usize,
    /// Write the generated dataplane configuration to this file too.
    #[arg(long)]
    dump_config: Option<PathBuf>,
    #[command(flatten)]
    gen: crate::GenArgs,
}

// ---------------------------------------------------------------------------------------------
// The configuration.

/// xorshift64*: deterministic filler for the rule set and the table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A public unicast IPv4 address well away from the test traffic (10/8, 192.168/16), the
    /// NAT pool and the outside link (198.51.100/24, 192.0.2/24) and the martians.
    fn public(&mut self) -> u32 {
        loop {
            let a = self.next() as u32;
            let first = a >> 24;
            if (1..224).contains(&first) && ![10, 100, 127, 169, 172, 192, 198].contains(&first) {
                return a;
            }
        }
    }
}

fn prefix(a: u32, len: u32) -> String {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    format!("{}/{len}", Ipv4Addr::from(a & mask))
}

/// The firewall's rules: stateful head, `n` generated rules that do not match the generator's
/// traffic, the accept rules for it. `tcp`: the generator's TCP segments are ACKs of no opened
/// connection, which conntrack calls invalid, so `ct invalid drop` is left out and the TCP
/// accept rule does not ask for a state.
fn firewall_rules(n: usize, tcp: bool) -> Vec<String> {
    let mut r = Rng(SEED);
    let mut v = vec!["ct established,related accept".to_string()];
    if !tcp {
        v.push("ct invalid drop".into());
    }
    let lens = [16, 20, 22, 24, 24, 24, 28, 32];
    for i in 0..n {
        let len = lens[r.below(lens.len() as u64) as usize];
        let rule = match i % 6 {
            0 => format!("saddr {} drop", prefix(r.public(), len)),
            1 => format!(
                "in outside tcp dport {} daddr {} ct new accept",
                1 + r.below(1023),
                prefix(0xc633_6400 | r.below(256) as u32, 32)
            ),
            2 => format!(
                "in inside daddr {} tcp dport {} reject",
                prefix(r.public(), len),
                1 + r.below(65535)
            ),
            3 => {
                let p = loop {
                    let p = 1 + r.below(1023);
                    if p != 53 {
                        break p;
                    }
                };
                format!("udp dport {p} daddr {} drop", prefix(r.public(), 24))
            }
            4 => format!(
                "in inside saddr 10.{}.{}.0/24 tcp dport 25 drop",
                1 + r.below(255),
                r.below(256)
            ),
            _ => format!("ip6 saddr 2001:db8:{:x}::/48 drop", r.below(0xffff)),
        };
        v.push(rule);
    }
    v.push("in inside saddr 10.0.0.0/8 udp dport 53 ct new accept".into());
    v.push(if tcp {
        "in inside saddr 10.0.0.0/8 tcp dport 80 accept".into()
    } else {
        "in inside saddr 10.0.0.0/8 tcp dport 80 flags S/SAFR ct new accept".into()
    });
    v.push("in inside saddr 10.0.0.0/8 icmp type 8 ct new accept".into());
    v
}

/// `ip route` lines: the generator's destinations (192.168.0.1 onwards: a /15, since 65536
/// destinations end at 192.169.0.0, and the /24s of 192.168/16), then random
/// public prefixes with a BGP-like spread of lengths, `n` in all, over the four gateways.
fn routes(n: usize) -> Vec<String> {
    let gw = |i: u64| GATEWAYS[(i % GATEWAYS.len() as u64) as usize].0;
    let mut out = vec![format!("192.168.0.0/15 via {} dev outside", gw(0))];
    for x in 0..256u64 {
        out.push(format!("192.168.{x}.0/24 via {} dev outside", gw(x)));
    }
    // Roughly the full table's histogram: 60 % /24, the rest /16 to /23, a few longer.
    let lens = [
        24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 23, 23, 22, 22, 22, 21, 20, 19, 16, 25,
    ];
    let mut r = Rng(SEED ^ 0x5151);
    let mut seen = HashSet::new();
    while out.len() < n {
        let len = lens[r.below(lens.len() as u64) as usize];
        let p = prefix(r.public(), len);
        if seen.insert(p.clone()) {
            out.push(format!("{p} via {} dev outside", gw(r.next())));
        }
    }
    out
}

/// FNV-1a, 64 bits: names the generated configuration in the result (`--dump-config` writes
/// the text itself; the same options give the same text).
fn fnv1a64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn toml_list(items: &[String]) -> String {
    let mut s = String::from("[\n");
    for i in items {
        s.push_str("  \"");
        s.push_str(i);
        s.push_str("\",\n");
    }
    s.push(']');
    s
}

/// The router's table: a file, or the generated lines.
enum Table {
    Generated(usize),
    File(PathBuf),
}

/// The dataplane configuration of the chain.
fn chain_toml(a: &Args, table: &Table, tcp: bool) -> String {
    let flows = a.gen.config().flows as u64;
    let sessions = (2 * flows).max(65536);
    let rules = toml_list(&firewall_rules(a.fw_rules, tcp));
    let neighbours: Vec<String> = GATEWAYS
        .iter()
        .map(|(ip, mac)| format!("{{ address = \"{ip}\", mac = \"{mac}\", port = \"outside\" }}"))
        .collect();
    let routes = match table {
        Table::Generated(n) => format!("static_routes = {}", toml_list(&routes(*n))),
        Table::File(p) => format!(
            "routes = {:?}\nroutes_format = \"prefix-list\"\nprefix_list_via = \"{}\"\nprefix_list_dev = \"outside\"\nstatic_routes = [\"192.168.0.0/15 via {} dev outside\"]",
            p.display().to_string(),
            GATEWAYS[1].0,
            GATEWAYS[0].0
        ),
    };
    format!(
        r#"# bench chain: firewall -> NAT44 -> router. The generator stands in for `inside`, the sink
# for `outside`.
[memory]
buffers = {BUFFERS}

[engine]
workers = [{core}]
burst = {burst}

[[port]]
name = "inside"
kind = "null"
mac = "02:00:00:00:00:02"

[[port]]
name = "outside"
kind = "null"
mac = "02:00:00:00:00:03"

[[stage]]
kind = "firewall"
default = "drop"
conntrack = true
conntrack_capacity = {sessions}
inline = {rules}

[[stage]]
kind = "nat44"
inside = ["inside"]
outside = "outside"
pool = [{pool:?}]
capacity = {sessions}

# MTU 9000: the generator's 1518-byte frames are counted without FCS, so they carry
# 1504-byte IP packets, which a 1500 MTU would refuse.
[[stage]]
kind = "router"
interfaces = [
  {{ port = "inside", address = "10.255.255.254/8", mtu = 9000 }},
  {{ port = "outside", address = "192.0.2.254/24", mtu = 9000 }},
]
neighbours = [
  {n},
]
{routes}
"#,
        core = a.core,
        burst = a.burst,
        pool = a.pool,
        n = neighbours.join(",\n  "),
    )
}

// ---------------------------------------------------------------------------------------------
// The learning phase.

/// A chain that has seen every flow once (RFC 2544's learning phase: the firewall's
/// connections and the NAT's sessions exist before anything is measured).
struct Learned {
    stages: Vec<Box<dyn Stage>>,
    /// Packets sent through it.
    packets: u64,
    /// Seconds it took.
    secs: f64,
}

/// Builds the chain on `core` and sends it one pass of the generator's flow sequence (every
/// flow at least once with a uniform spread; with Zipf the rarest flows may be left for the
/// measurement to create). Fails, naming the counters, if any packet does not come out towards
/// the outside port.
fn learn(cfg: &Config, g: &GenConfig, burst: usize, core: usize) -> Res<Learned> {
    let mut g = g.clone();
    g.rate_pps = None;
    // The generator's pre-drawn sequence: every flow once or more, this long.
    g.limit = Some((g.flows.max(4096) as u64).next_power_of_two().min(1 << 22));
    let pool = super::pool()?;
    std::thread::scope(|s| {
        s.spawn(|| -> Res<Learned> {
            pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))?;
            let mut cache = pool.cache();
            let mut gen = Generator::new("gen", 0, &g)?;
            let mut stages = build::build_chain(cfg, 0, 1);
            let nports = cfg.ports.len() as u16;
            let mut runner = ChainRunner::new(stages.len());
            let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
            let (mut b, mut leaving) = (Burst::new(), Burst::new());
            let mut c = PipeCounts::default();
            let t0 = Instant::now();
            while !gen.at_end() {
                let n = gen
                    .rx_burst(0, &mut cache, &mut b, burst)
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    continue;
                }
                let now = clock.now();
                runner.run(now, 0, &mut stages, &mut b, &mut leaving, &mut cache, nports);
                runner.finish(&mut b, &mut leaving, &mut cache, nports);
                runner.poll(now, 0, &mut stages, &mut leaving, &mut cache, nports);
                for m in leaving.as_slice() {
                    if m.egress() == 1 {
                        c.sink += 1;
                    } else {
                        c.to_inside += 1;
                    }
                }
                cache.free_burst(&mut leaving);
            }
            let secs = t0.elapsed().as_secs_f64();
            c.add_runner(&stages, &runner);
            let packets = gen.stats().rx_packets;
            if c.sink != packets || c.dropped() > 0 || c.held > 0 {
                return Err(format!(
                    "learning phase: {packets} packets in, {} out towards the sink, created {}, held {}; dropped: {}",
                    c.sink,
                    c.created,
                    c.held,
                    c.render()
                ));
            }
            Ok(Learned {
                stages,
                packets,
                secs,
            })
        })
        .join()
        .map_err(|_| "the learning phase panicked".to_string())?
    })
}

// ---------------------------------------------------------------------------------------------
// The pipeline: generator + first segment on core A, a ring, second segment + sink on core B.

/// Counters of one pipeline trial, besides the sink's.
#[derive(Default)]
struct PipeCounts {
    /// Packets the stages created (rejects, ICMP errors).
    created: u64,
    /// Engine-wide drops, by reason.
    drops: Vec<(&'static str, u64)>,
    /// Stage drops: (stage, reason, count).
    stage_drops: Vec<(String, String, u64)>,
    /// Packets the ring between the cores did not take.
    ring_full: u64,
    /// Packets sent back towards the generator (an ICMP error, a reject): not forwarded.
    to_inside: u64,
    /// Packets still held by a stage at the end.
    held: u64,
    /// Packets the sink took (its port counter).
    sink: u64,
}

impl PipeCounts {
    fn add_runner(&mut self, stages: &[Box<dyn Stage>], r: &ChainRunner) {
        self.created += r.created;
        self.drops.extend(r.drops.nonzero());
        for (st, counts) in stages.iter().zip(&r.stage_drops) {
            let names = st.drop_reasons();
            for (code, &n) in counts.iter().enumerate() {
                if n != 0 {
                    let why = names
                        .get(code)
                        .map_or_else(|| format!("reason{code}"), |s| s.to_string());
                    self.stage_drops.push((st.name().to_string(), why, n));
                }
            }
        }
        self.held += stages.iter().map(|s| s.held() as u64).sum::<u64>();
    }

    /// Packets that did not reach the sink, by counter.
    fn dropped(&self) -> u64 {
        self.drops.iter().map(|d| d.1).sum::<u64>()
            + self.stage_drops.iter().map(|d| d.2).sum::<u64>()
            + self.ring_full
            + self.to_inside
    }

    fn render(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        if self.ring_full > 0 {
            v.push(format!("ring full {}", self.ring_full));
        }
        v.extend(self.drops.iter().map(|(n, c)| format!("{n} {c}")));
        v.extend(
            self.stage_drops
                .iter()
                .map(|(s, r, c)| format!("{s}.{r} {c}")),
        );
        if self.to_inside > 0 {
            v.push(format!("sent back inside {}", self.to_inside));
        }
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    }
}

/// What the two-core pipeline needs.
struct Pipe<'a> {
    cfg: &'a Config,
    gen: &'a GenConfig,
    split: usize,
    burst: usize,
    ring: u32,
    cores: (usize, usize),
    secs: f64,
}

/// One trial of the pipeline at `rate_pps` (or as fast as core A goes). The counters must
/// balance: generated + created = sink + every counted drop + held.
fn pipeline_trial(p: &Pipe, rate_pps: Option<f64>) -> Res<(Trial, PipeCounts)> {
    let mut g = p.gen.clone();
    g.rate_pps = rate_pps;
    let pool = super::pool()?;
    let mut gen = Generator::new("gen", 0, &g)?;
    let lat: Latency = Default::default();
    let mut sink = Sink::new("sink", gen.layout().ts(), lat.clone());
    let mut stages_a = learn(p.cfg, p.gen, p.burst, p.cores.0)?.stages;
    let mut stages_b = stages_a.split_off(p.split.min(stages_a.len()));
    let nports = p.cfg.ports.len() as u16;
    let (prod, cons) = buf_spsc(p.ring).map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let burst_n = p.burst;
    let (ra, rb) = std::thread::scope(|s| {
        let (pool_a, pool_b) = (pool.clone(), pool.clone());
        let (stop, done) = (&stop, &done);
        let ha = s.spawn(move || -> Res<(u64, f64, PipeCounts)> {
            let r = (|| {
                pmd::cpu::pin_current_thread(p.cores.0)
                    .map_err(|e| format!("pin to core {}: {e}", p.cores.0))?;
                let mut cache = pool_a.cache();
                let mut runner = ChainRunner::new(stages_a.len());
                let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
                let mut b = Burst::new();
                let mut leaving = Burst::new();
                let mut c = PipeCounts::default();
                let mut idle = 0u32;
                let t0 = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let n = gen
                        .rx_burst(0, &mut cache, &mut b, burst_n)
                        .map_err(|e| e.to_string())?;
                    let now = clock.now();
                    if n == 0 {
                        idle += 1;
                        if idle.is_multiple_of(64) {
                            runner.poll(now, 0, &mut stages_a, &mut leaving, &mut cache, nports);
                        }
                    } else {
                        idle = 0;
                        runner.run(
                            now,
                            0,
                            &mut stages_a,
                            &mut b,
                            &mut leaving,
                            &mut cache,
                            nports,
                        );
                        runner.poll(now, 0, &mut stages_a, &mut leaving, &mut cache, nports);
                        prod.enqueue(&mut b);
                        c.ring_full += b.len() as u64;
                        cache.free_burst(&mut b);
                    }
                    // Rejects go back out of the inside port: the generator takes nothing.
                    c.to_inside += leaving.len() as u64;
                    cache.free_burst(&mut leaving);
                }
                let secs = t0.elapsed().as_secs_f64();
                runner.flush(
                    clock.now(),
                    0,
                    &mut stages_a,
                    &mut leaving,
                    &mut cache,
                    nports,
                );
                c.to_inside += leaving.len() as u64;
                cache.free_burst(&mut leaving);
                c.add_runner(&stages_a, &runner);
                Ok((gen.stats().rx_packets, secs, c))
            })();
            done.store(true, Ordering::Release);
            r
        });
        let hb = s.spawn(move || -> Res<PipeCounts> {
            pmd::cpu::pin_current_thread(p.cores.1)
                .map_err(|e| format!("pin to core {}: {e}", p.cores.1))?;
            let mut cache = pool_b.cache();
            let mut runner = ChainRunner::new(stages_b.len());
            let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
            let mut b = Burst::new();
            let mut leaving = Burst::new();
            let mut c = PipeCounts::default();
            let mut idle = 0u32;
            let mut out =
                |leaving: &mut Burst, cache: &mut pmd::PoolCache, c: &mut PipeCounts| -> Res<()> {
                    leaving.retain_owned(|_, m| {
                        if m.egress() == 1 {
                            Some(m)
                        } else {
                            c.to_inside += 1;
                            cache.free(m);
                            None
                        }
                    });
                    while !leaving.is_empty() {
                        sink.tx_burst(0, cache, leaving)
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                };
            loop {
                let finished = done.load(Ordering::Acquire);
                let now = clock.now();
                if cons.dequeue(&mut b, burst_n) == 0 {
                    if finished {
                        break;
                    }
                    idle += 1;
                    if idle.is_multiple_of(64) {
                        runner.poll(now, 1, &mut stages_b, &mut leaving, &mut cache, nports);
                        out(&mut leaving, &mut cache, &mut c)?;
                    }
                    continue;
                }
                idle = 0;
                runner.run(
                    now,
                    1,
                    &mut stages_b,
                    &mut b,
                    &mut leaving,
                    &mut cache,
                    nports,
                );
                runner.finish(&mut b, &mut leaving, &mut cache, nports);
                runner.poll(now, 1, &mut stages_b, &mut leaving, &mut cache, nports);
                out(&mut leaving, &mut cache, &mut c)?;
            }
            runner.flush(
                clock.now(),
                1,
                &mut stages_b,
                &mut leaving,
                &mut cache,
                nports,
            );
            out(&mut leaving, &mut cache, &mut c)?;
            c.add_runner(&stages_b, &runner);
            c.sink = sink.stats().tx_packets;
            drop(sink);
            Ok(c)
        });
        std::thread::sleep(Duration::from_secs_f64(p.secs));
        stop.store(true, Ordering::Relaxed);
        let ra = ha.join().map_err(|_| "core A panicked".to_string());
        let rb = hb.join().map_err(|_| "core B panicked".to_string());
        (ra, rb)
    });
    let (offered, secs, mut c) = ra??;
    let cb = rb??;
    c.created += cb.created;
    c.drops.extend(cb.drops);
    c.stage_drops.extend(cb.stage_drops);
    c.to_inside += cb.to_inside;
    c.held += cb.held;
    c.sink = cb.sink;
    if offered + c.created != c.sink + c.dropped() + c.held {
        return Err(format!(
            "pipeline counters do not balance: generated {offered} + created {} != sink {} + dropped {} ({}) + held {}",
            c.created,
            c.sink,
            c.dropped(),
            c.render(),
            c.held
        ));
    }
    let seen = lat.lock().map_err(|_| "sink lock poisoned")?.clone();
    Ok((
        Trial {
            offered,
            secs,
            seen,
            report: None,
        },
        c,
    ))
}

// ---------------------------------------------------------------------------------------------
// The scenario.

/// `bench chain`.
pub fn run(a: &Args) -> Res<()> {
    let hz = pmd::cpu::tsc_hz();
    let g = a.gen.config();
    if g.ipv6 {
        return Err("the chain has a NAT44: IPv4 traffic only (drop --ipv6)".into());
    }
    let positive = |x: f64| x > 0.0 && x < 1e6;
    if a.runs == 0 || !positive(a.secs) || !positive(a.trial_secs) {
        return Err(
            "--runs, --secs and --trial-secs must be positive (and seconds below 1e6)".into(),
        );
    }
    if a.prefixes > 2_000_000 {
        return Err(
            "--prefixes: at most 2000000 generated routes (--full-table loads the real one)".into(),
        );
    }
    if !(1..=2).contains(&a.split) {
        return Err(
            "--split must be 1 (firewall | NAT + router) or 2 (firewall + NAT | router)".into(),
        );
    }
    if !a.no_pipeline && a.core_a == a.core_b {
        return Err("the two pipeline segments need two different cores".into());
    }
    let table = match (&a.routes_file, a.full_table) {
        (Some(p), _) => Table::File(p.clone()),
        (None, true) => Table::File(bench::results::root().join(FULL_TABLE)),
        (None, false) => Table::Generated(a.prefixes.max(257)),
    };
    if let Table::File(p) = &table {
        if !p.exists() {
            return Err(format!(
                "{} not found (the full table lives in ../shared/corpus/routes; or give --routes-file)",
                p.display()
            ));
        }
    }
    let tcp = g.proto == Proto::Tcp;
    let text = chain_toml(a, &table, tcp);
    if let Some(path) = &a.dump_config {
        std::fs::write(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("wrote the chain's configuration to {}", path.display());
    }
    let t0 = Instant::now();
    let cfg = Config::parse("<bench chain>", &text, Path::new(".")).map_err(|e| e.to_string())?;
    let load_secs = t0.elapsed().as_secs_f64();
    let (frames, table_bytes) = super::describe_gen(&g)?;

    super::print_machine();
    println!(
        "config: generator {:?}/IPv4 {} ({:?} in buffers), {} flows {:?} from {} inside addresses (10.0.0.1..) to {} destinations (192.168.0.1..), template table {} KiB; burst {}, {BUFFERS} buffers",
        g.proto,
        super::size_label(g.size),
        frames,
        g.flows,
        g.spread,
        g.src_ips,
        g.dst_ips,
        table_bytes / 1024,
        a.burst
    );
    let mut stage_lines = Vec::new();
    for (i, s) in cfg.stages.iter().enumerate() {
        for l in s.describe(&cfg.ports) {
            stage_lines.push(format!("stage {i} {}: {l}", s.kind()));
        }
    }
    println!(
        "config: chain firewall → nat44 → router, built from {} bytes of TOML (FNV-1a {:016x}; --dump-config FILE writes it) in {load_secs:.2} s:",
        text.len(),
        fnv1a64(text.as_bytes())
    );
    for l in &stage_lines {
        println!("  {l}");
    }
    println!(
        "  firewall policy: ct established,related accept{}; {} generated rules that never match the traffic (seed {SEED:#x}); accept udp 53 / tcp 80{} / icmp echo from 10.0.0.0/8 on inside; default drop",
        if tcp { "" } else { "; ct invalid drop" },
        a.fw_rules,
        if tcp {
            " (any state: the generator's TCP segments are ACKs of no opened connection, invalid to conntrack)"
        } else {
            " (SYN, new)"
        },
    );
    match &table {
        Table::Generated(n) => println!(
            "  router table: {n} generated IPv4 routes (192.168.0.0/15, the 256 /24s of 192.168/16, the rest random public prefixes, BGP-like lengths) over {} static next hops",
            GATEWAYS.len()
        ),
        Table::File(p) => println!(
            "  router table: prefix list {} via {} (+ 192.168.0.0/15 via {})",
            p.display(),
            GATEWAYS[1].0,
            GATEWAYS[0].0
        ),
    }
    println!(
        "  router MTU 9000 on both interfaces: the generator's 1518-byte frames are counted without FCS and carry 1504-byte IP packets"
    );
    println!(
        "  learning phase before every run and trial: one pass of the generator's flow sequence (every flow once), not measured"
    );
    println!(
        "  run to completion: generator → chain → sink on core {}, {} x {} s; pipeline: {}",
        a.core,
        a.runs,
        a.secs,
        if a.no_pipeline {
            "skipped".to_string()
        } else {
            format!(
                "generator + {} on core {} → ring of {} → {} + sink on core {}, trials of {} s, {} search steps, loss tolerance {}",
                if a.split == 1 { "firewall" } else { "firewall + nat44" },
                a.core_a,
                a.ring,
                if a.split == 1 { "nat44 + router" } else { "router" },
                a.core_b,
                a.trial_secs,
                a.steps,
                a.loss
            )
        }
    );

    // One core, run to completion, through the engine's direct shape.
    let mut rates = Vec::new();
    let mut last = None;
    for r in 0..a.runs {
        let l = learn(&cfg, &g, a.burst, a.core)?;
        println!(
            "  run {}: learning phase: {} packets (every flow once) in {:.3} s, {:.2} Mpps",
            r + 1,
            l.packets,
            l.secs,
            l.packets as f64 / l.secs.max(1e-9) / 1e6
        );
        // The engine asks its factory for the chain once: it gets the learned one.
        let learned = Mutex::new(Some(l.stages));
        let chain = || {
            learned
                .lock()
                .ok()
                .and_then(|mut s| s.take())
                .unwrap_or_else(|| build::build_chain(&cfg, 0, 1))
        };
        let t = super::run_direct(&g, &chain, a.burst, a.core, a.secs)?;
        if t.lost() > 0 || t.seen.packets != t.offered {
            return Err(format!(
                "run {}: the generator made {} packets and the sink took {}, but every packet must come out (the engine's counters balanced, so the difference is counted drops or packets the stages made; check the configuration with --dump-config and `dataplane check`)",
                r + 1,
                t.offered,
                t.seen.packets
            ));
        }
        println!(
            "  run {}: {:.2} Mpps at the sink, {:.1} cycles/packet; generated {}, sink {}, dropped 0",
            r + 1,
            t.sink_mpps(),
            hz as f64 / (t.sink_mpps() * 1e6).max(1.0),
            t.offered,
            t.seen.packets
        );
        rates.push(t.sink_mpps());
        last = Some(t);
    }
    let rtc = super::median(&rates);
    let rtc_cpp = hz as f64 / (rtc * 1e6).max(1.0);
    let rtc_lat = last.as_ref().and_then(|t| t.seen.summary(hz));
    println!(
        "chain, 1 core run to completion: {rtc:.2} Mpps ({rtc:.2} Mpps per core), {rtc_cpp:.1} cycles/packet at TSC {:.2} GHz (generator and sink included)",
        hz as f64 / 1e9
    );
    super::print_latency(&rtc_lat);
    let (gc, null) = super::gen_cost(&g, a.burst, a.core)?;
    println!(
        "generator: {gc:.1} cycles/packet for rx_burst with alloc and free (null port: {null:.1}); it runs on the measured core"
    );

    // Two cores, pipeline.
    let mut pipe_res = None;
    if !a.no_pipeline {
        let p = Pipe {
            cfg: &cfg,
            gen: &g,
            split: a.split,
            burst: a.burst,
            ring: a.ring,
            cores: (a.core_a, a.core_b),
            secs: a.trial_secs,
        };
        let (best, points) = super::zero_loss(a.steps, a.loss, |r| {
            pipeline_trial(&p, r).map(|(t, c)| (t, c.render()))
        })?;
        let zl = best.as_ref().map_or(0.0, |t| t.offered_mpps());
        let lat = best.as_ref().and_then(|t| t.seen.summary(hz));
        match &best {
            Some(_) => println!(
                "chain, 2-core pipeline: zero-loss {zl:.2} Mpps ({:.2} Mpps per core, {:.1} cycles/packet per core)",
                zl / 2.0,
                if zl > 0.0 { 2.0 * hz as f64 / (zl * 1e6) } else { 0.0 }
            ),
            None => println!(
                "chain, 2-core pipeline: no trial stayed within the loss tolerance (a noisy machine drops at any rate with a tolerance of 0; try --loss or more --steps)"
            ),
        }
        super::print_latency(&lat);
        pipe_res = Some((zl, lat, points));
    }

    let mut res = super::base(
        "chain",
        serde_json::json!({
            "generator": super::gen_json(&g, &frames, table_bytes),
            "stages": ["firewall", "nat44", "router"],
            "stage_config": stage_lines,
            "firewall": {
                "generated_rules": a.fw_rules, "seed": SEED, "stateful": true,
                "ct_invalid_drop": !tcp, "default": "drop",
                "accept": "udp dport 53 / tcp dport 80 / icmp type 8 from 10.0.0.0/8 on inside",
            },
            "nat44": { "pool": a.pool, "capacity": (2 * g.flows as u64).max(65536) },
            "learning_phase": "before every run and trial: one pass of the generator's flow sequence (every flow once), not measured",
            "router": match &table {
                Table::Generated(n) => serde_json::json!({ "generated_routes": n, "seed": SEED, "next_hops": GATEWAYS.len() }),
                Table::File(p) => serde_json::json!({ "prefix_list": p.display().to_string() }),
            },
            "config_toml_fnv1a64": format!("{:016x}", fnv1a64(text.as_bytes())),
            "config_toml_bytes": text.len(),
            "burst": a.burst, "buffers": BUFFERS,
            "run_to_completion": { "core": a.core, "secs": a.secs, "runs": a.runs },
            "pipeline": if a.no_pipeline { serde_json::Value::Null } else { serde_json::json!({
                "cores": [a.core_a, a.core_b], "split": a.split, "ring": a.ring,
                "trial_secs": a.trial_secs, "steps": a.steps, "loss_tolerance": a.loss,
                "shape": "generator + first segment on core A, ring (pmd buf_spsc), second segment + sink on core B; segments run by the engine's ChainRunner",
            }) },
            "headline": "Mpps on one core, run to completion",
        }),
    );
    res.ours_mpps = rtc;
    res.ours_runs_mpps = rates;
    res.cycles_per_packet = rtc_cpp;
    res.cores = 1;
    res.mpps_per_core = Some(rtc);
    res.latency = rtc_lat;
    res.latency_note = Some(format!(
        "run to completion on core {}, full rate: from the generator's burst to the sink",
        a.core
    ));
    res.gen_cycles_per_packet = Some(gc);
    res.rows.push(Row {
        what: "firewall → NAT44 → router, 1 core run to completion".into(),
        unit: "Mpps".into(),
        ours: rtc,
        peer: None,
        peer_tool: None,
        ratio: None,
        note: Some(format!(
            "{rtc_cpp:.1} cycles/packet (generator and sink on the same core; generator alone {gc:.1})"
        )),
    });
    if let Some((zl, lat, points)) = pipe_res {
        let lat_note = lat.as_ref().map_or_else(
            || "no loss-free trial".to_string(),
            |l| {
                format!(
                    "latency median {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns",
                    l.median_ns, l.p99_ns, l.p999_ns
                )
            },
        );
        res.rows.push(Row {
            what: format!(
                "firewall → NAT44 → router, 2-core pipeline (split {}|{}), zero-loss",
                a.split,
                3 - a.split
            ),
            unit: "Mpps".into(),
            ours: zl,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!("loss tolerance {}; {lat_note}", a.loss)),
        });
        res.rows.push(Row {
            what: "firewall → NAT44 → router, 2-core pipeline, per core".into(),
            unit: "Mpps".into(),
            ours: zl / 2.0,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!(
                "{:.1} cycles/packet per core",
                if zl > 0.0 {
                    2.0 * hz as f64 / (zl * 1e6)
                } else {
                    0.0
                }
            )),
        });
        res.series = points;
    }
    res.ratio_note = Some(
        "no DPDK counterpart: DPDK ships no firewall + NAT + router chain (its examples are single \
functions); VPP would be the peer and is not installable here"
            .into(),
    );
    super::finish(res)
}
