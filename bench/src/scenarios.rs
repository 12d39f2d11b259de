//! The scenarios behind `bench NAME`: how each one runs ours, the DPDK peer, and what it
//! records.
//!
//! Throughput with the generator is taken at the sink, between the first and the last burst it
//! took (so start-up and drain are not in it); with the null ports (`io`) it is packets sent
//! over wall time, as before. Cycles per packet are TSC cycles per packet per core at that
//! rate. Each scenario prints its exact configuration, then its figures, then `ratio:` last.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench::gen::{self, GenConfig, Generator, Size};
use bench::results::{self, Peer, Point, RunResult};
use bench::sink::{Latency, LatencySummary, Seen, Sink};
use bench::sys;
use bench::touch::Touch;
use dataplane::build;
use dataplane::config::Config;
use dataplane::engine::chain::ChainRunner;
use dataplane::engine::{ClockMode, Engine, EngineOptions, Layout};
use dataplane::stage::Stage;
use dataplane::stages::forward::Forward;
use pmd::mbuf::buf_spsc;
use pmd::port::null::NullPort;
use pmd::port::Port;
use pmd::{Burst, Pool, PoolConfig};

pub mod chain;
pub mod firewall;
pub mod memif;
pub mod nat;
pub mod router;

type Res<T> = std::result::Result<T, String>;

/// Buffers in the pools the scenarios build.
const BUFFERS: u32 = 16384;

fn peers_dir() -> PathBuf {
    std::env::var_os("DATAPLANE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| results::root().join("../shared/peers"))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// A result with the machine filled in.
fn base(scenario: &str, config: serde_json::Value) -> RunResult {
    RunResult {
        scenario: scenario.into(),
        command: command_line(),
        unix_time: pmd::cpu::unix_ns() / 1_000_000_000,
        cpu: sys::cpu_model(),
        tsc_hz: pmd::cpu::tsc_hz(),
        cpu_mhz: sys::cpu_mhz(),
        config,
        ours_mpps: 0.0,
        ours_runs_mpps: Vec::new(),
        cycles_per_packet: 0.0,
        cores: 1,
        mpps_per_core: None,
        latency: None,
        latency_note: None,
        peak_rss_kib: None,
        gen_cycles_per_packet: None,
        series: Vec::new(),
        peer: None,
        peer_runs_mpps: Vec::new(),
        pair_ratios: Vec::new(),
        ratio: None,
        ratio_note: None,
        rows: Vec::new(),
    }
}

fn print_machine() {
    println!(
        "machine: {} ({} MHz reported, TSC {:.3} GHz), {} online CPUs",
        sys::cpu_model(),
        sys::cpu_mhz().map_or("?".into(), |m| format!("{m:.0}")),
        pmd::cpu::tsc_hz() as f64 / 1e9,
        sys::online_cpus()
    );
}

fn print_latency(l: &Option<LatencySummary>) {
    if let Some(l) = l {
        println!(
            "latency: median {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns, max {:.0} ns ({} packets)",
            l.median_ns, l.p99_ns, l.p999_ns, l.max_ns, l.samples
        );
    }
}

/// Records the peak memory, saves, prints the peak memory and the ratio line (last).
fn finish(mut r: RunResult) -> Res<()> {
    r.peak_rss_kib = sys::peak_rss_kib();
    if let Some(k) = r.peak_rss_kib {
        println!("peak memory: {:.1} MiB (VmHWM)", k as f64 / 1024.0);
    }
    let path = results::save(&r)?;
    eprintln!("saved {}", path.display());
    match (r.ratio, &r.ratio_note) {
        (Some(x), _) => println!("ratio: {x:.3}"),
        (None, Some(n)) => println!("ratio: n/a ({n})"),
        (None, None) => println!("ratio: n/a"),
    }
    Ok(())
}

fn gen_json(g: &GenConfig, frames: &[u16], table_bytes: usize) -> serde_json::Value {
    serde_json::json!({
        "proto": g.proto, "ipv6": g.ipv6, "vlan": g.vlan, "size": g.size,
        "frame_sizes": frames, "flows": g.flows, "spread": g.spread,
        "src_ips": g.src_ips, "dst_ips": g.dst_ips, "fill_payload": g.fill_payload,
        "template_table_bytes": table_bytes,
        "templates": if g.flows > 1 && table_bytes <= 128 {
            "one, patched per packet (addresses, port, checksum updates)"
        } else {
            "one per flow, copied per packet"
        },
    })
}

fn describe_gen(g: &GenConfig) -> Res<(Vec<u16>, usize)> {
    let probe = Generator::new("gen", 0, g)?;
    Ok((probe.frame_sizes(), probe.table_bytes()))
}

fn size_label(s: Size) -> String {
    match s {
        Size::Fixed(n) => format!("{n} B"),
        Size::Imix => "IMIX 64/594/1518 7:4:1".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The peer.

/// Runs a peer script from `../shared/peers` once or more and takes its last line (`Mpps: X`).
fn run_peer(script: &str, tool: &str, runs: usize, secs: f64) -> Res<Peer> {
    let path = peers_dir().join(script);
    if !path.exists() {
        return Err(format!(
            "{} not found (set DATAPLANE_PEERS)",
            path.display()
        ));
    }
    if Command::new("sh")
        .args(["-c", "command -v dpdk-testpmd"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return Err("dpdk-testpmd is not installed (run scripts/setup.sh as root)".into());
    }
    let out = Command::new("bash")
        .arg(&path)
        .env("RUNS", runs.to_string())
        .env("SECS", format!("{}", secs.ceil() as u64))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or("");
    let mpps = last
        .strip_prefix("Mpps:")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("{script} did not end with `Mpps: X`; its output:\n{text}"))?;
    let command = lines
        .iter()
        .rev()
        .skip(1)
        .find(|l| l.contains("dpdk-testpmd"))
        .map_or_else(|| script.to_string(), |s| s.trim().to_string());
    Ok(Peer {
        tool: tool.into(),
        command,
        mpps,
    })
}

// ---------------------------------------------------------------------------------------------
// Running the engine with the generator and the sink.

/// What one run with the generator and the sink saw.
struct Trial {
    /// Packets the generator made.
    offered: u64,
    /// Seconds the generator ran.
    secs: f64,
    /// What the sink saw.
    seen: Seen,
    /// The engine's report, where the trial ran through the engine (its stage counters).
    report: Option<dataplane::engine::Report>,
}

impl Trial {
    fn lost(&self) -> u64 {
        self.offered.saturating_sub(self.seen.packets)
    }
    fn offered_mpps(&self) -> f64 {
        self.offered as f64 / self.secs.max(1e-9) / 1e6
    }
    fn sink_mpps(&self) -> f64 {
        self.seen.rate_pps(pmd::cpu::tsc_hz()) / 1e6
    }
}

fn pool() -> Res<Pool> {
    Pool::new(&PoolConfig {
        name: "bench".into(),
        count: BUFFERS,
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

/// Generator (port 0) → `stages()` → sink (port 1) on one pinned core, through the engine's
/// direct shape, for `secs`.
fn run_direct(
    g: &GenConfig,
    stages: &(dyn Fn() -> Vec<Box<dyn Stage>> + Sync),
    burst: usize,
    core: usize,
    secs: f64,
) -> Res<Trial> {
    let opts = EngineOptions {
        burst,
        worker_cores: vec![Some(core)],
        io_core: None,
        layout: Layout::RunToCompletion,
        clock: ClockMode::Tsc,
        offline: false,
        ring_size: 1024,
        steer: None,
        orders: Vec::new(),
        cut_through: true,
    };
    run_engine(g, stages, opts, secs)
}

/// Generator (port 0) → the chain → sink (port 1) through the engine with `opts`, for `secs`.
fn run_engine(
    g: &GenConfig,
    stages: &(dyn Fn() -> Vec<Box<dyn Stage>> + Sync),
    opts: EngineOptions,
    secs: f64,
) -> Res<Trial> {
    let gen = Generator::new("gen", 0, g)?;
    let ts = gen.layout().ts();
    run_ports(Box::new(gen), ts, stages, opts, secs)
}

/// [`run_engine`] with any source port in place of the generator (one that stamps the
/// generator's timestamps at `ts`, such as a wrapper around it). Runs for `secs`, or less if
/// the engine stops by itself first (a source with a packet limit reaches its end).
fn run_ports(
    source: Box<dyn Port>,
    ts: usize,
    stages: &(dyn Fn() -> Vec<Box<dyn Stage>> + Sync),
    opts: EngineOptions,
    secs: f64,
) -> Res<Trial> {
    let lat: Latency = Default::default();
    let sink = Sink::new("sink", ts, lat.clone());
    let ports: Vec<Box<dyn Port>> = vec![source, Box::new(sink)];
    let engine = Engine::new(ports, pool()?, Box::new(move |_| stages()), opts)
        .map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let (report, elapsed) = std::thread::scope(|s| {
        let t0 = Instant::now();
        let h = s.spawn(|| engine.run(&stop));
        while !h.is_finished() && t0.elapsed().as_secs_f64() < secs {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        let r = h.join().map_err(|_| "engine panicked".to_string());
        (r, t0.elapsed())
    });
    let report = report?.map_err(|e| e.to_string())?;
    if !report.balanced() {
        return Err(format!("counters do not balance:\n{}", report.render()));
    }
    let seen = lat.lock().map_err(|_| "sink lock poisoned")?.clone();
    let t = Trial {
        offered: report.received(),
        secs: elapsed.as_secs_f64(),
        seen,
        report: None,
    };
    if t.offered > t.seen.packets + t.offered / 1000 {
        // More than 0.1 % did not reach the sink: the counters say where they went.
        println!("{}", report.render());
    }
    Ok(Trial {
        report: Some(report),
        ..t
    })
}

/// Cycles per packet of the generator's `rx_burst` (with allocation and free) and of the null
/// port's, measured on `core`.
fn gen_cost(g: &GenConfig, burst: usize, core: usize) -> Res<(f64, f64)> {
    let pool = pool()?;
    let g = g.clone();
    std::thread::scope(|s| {
        s.spawn(|| -> Res<(f64, f64)> {
            pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))?;
            let mut cache = pool.cache();
            let mut gen = Generator::new("gen", 0, &g)?;
            let frame = gen.frame_sizes()[0];
            let mut null = NullPort::new("null", 0, frame, None);
            let n = 4_000_000;
            let ours = gen::rx_cost(&mut gen, &mut cache, burst, n);
            let base = gen::rx_cost(&mut null, &mut cache, burst, n);
            Ok((ours, base))
        })
        .join()
        .map_err(|_| "generator cost thread panicked".to_string())?
    })
}

/// `bench gen-cost`.
pub fn gen_cost_cmd(burst: usize, core: usize, g: &GenConfig) -> Res<()> {
    print_machine();
    let (frames, table) = describe_gen(g)?;
    println!(
        "config: {:?} ipv6={} vlan={:?} frames {:?}, {} flows ({:?}), burst {burst}, core {core}, template table {} KiB",
        g.proto,
        g.ipv6,
        g.vlan,
        frames,
        g.flows,
        g.spread,
        table / 1024
    );
    let (ours, null) = gen_cost(g, burst, core)?;
    println!(
        "generator rx_burst: {ours:.1} cycles/packet; null port rx_burst: {null:.1} cycles/packet; the generator's own work: {:.1} cycles/packet",
        ours - null
    );
    println!("ratio: n/a (no DPDK counterpart: a cost, not a rate)");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// io

/// The `io` configuration: two null ports (ours, or with `dpdk_run = Some(r)` two DPDK
/// `net_null` devices created for run `r`, named apart because DPDK keeps a device's name
/// taken for the life of the process).
fn io_config(
    core: usize,
    burst: usize,
    len: u16,
    dpdk_run: Option<usize>,
    cut_through: bool,
) -> String {
    let ports = match dpdk_run {
        None => format!(
            r#"[[port]]
name = "null0"
kind = "null"
packet_len = {len}
[[port]]
name = "null1"
kind = "null"
packet_len = {len}
"#
        ),
        Some(r) => {
            // No PCI scan (this is about the framework, not a NIC), quiet logs, hugepages when
            // there are some (DPDK's own choice otherwise: see build.rs).
            let mem = if pmd::mem::hugepages_free().unwrap_or(0) >= 256 {
                r#""--in-memory""#.to_string()
            } else {
                r#""--no-huge", "--no-shconf", "-m", "1024""#.to_string()
            };
            format!(
                r#"[dpdk]
eal = [{mem}, "--no-pci", "--no-telemetry", "--log-level", "error"]
[[port]]
name = "null0"
kind = "dpdk"
device = "net_null{a}"
devargs = "size={len}"
[[port]]
name = "null1"
kind = "dpdk"
device = "net_null{b}"
devargs = "size={len}"
"#,
                a = 2 * r,
                b = 2 * r + 1
            )
        }
    };
    format!(
        r#"[memory]
buffers = {BUFFERS}
[engine]
workers = [{core}]
burst = {burst}
cut_through = {cut_through}
{ports}[[stage]]
kind = "forward"
routes = {{ null0 = "null1", null1 = "null0" }}
"#
    )
}

fn io_once(cfg: &Config, secs: f64) -> Res<f64> {
    let stop = AtomicBool::new(false);
    let (report, elapsed) = std::thread::scope(|s| {
        let t0 = Instant::now();
        let h = s.spawn(|| build::run(cfg, None, &stop));
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
        let rep = h.join().map_err(|_| "engine panicked".to_string());
        (rep, t0.elapsed())
    });
    let report = report?.map_err(|e| e.to_string())?;
    if !report.balanced() {
        return Err(format!("counters do not balance:\n{}", report.render()));
    }
    Ok(report.sent() as f64 / elapsed.as_secs_f64() / 1e6)
}

/// What `bench io` and `bench dpdk-io` share on the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct IoArgs {
    /// Seconds per run.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Runs of ours and of the peer, interleaved (the medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Packets per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Core for the worker (testpmd forwards on lcore 1 too).
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Skip the DPDK peer.
    #[arg(long)]
    no_peer: bool,
    /// Run the forward stage on every packet (the engine's general path, `[engine]
    /// cut_through = false`) instead of letting DPDK ports cut through (`dpdk-io` only).
    #[arg(long)]
    no_cut_through: bool,
}

/// `bench io` (`dpdk`: `bench dpdk-io`, the same through the DPDK driver on `net_null`).
pub fn io(a: &IoArgs, len: u16, lat_secs: f64, dpdk: bool) -> Res<()> {
    let (secs, runs, burst, core, peer) = (a.secs, a.runs.max(1), a.burst, a.core, !a.no_peer);
    let scenario = match (dpdk, a.no_cut_through) {
        (false, _) => "io",
        (true, false) => "dpdk-io",
        // The same forwarding through the engine's general path, recorded beside it.
        (true, true) => "dpdk-io-stage",
    };
    let config_of = |r: usize| -> Res<Config> {
        let text = io_config(core, burst, len, dpdk.then_some(r), !a.no_cut_through);
        Config::parse(&format!("<bench {scenario}>"), &text, Path::new("."))
            .map_err(|e| e.to_string())
    };
    let cfg = config_of(0)?;
    let hz = pmd::cpu::tsc_hz();
    print_machine();
    let cut = dpdk && !a.no_cut_through;
    println!(
        "config: 2 {} ports ({len} B, no data touched), forward stage{}, burst {burst}, worker core {core}, {BUFFERS} buffers, {runs} x {secs} s{}",
        if dpdk {
            "DPDK net_null (packets kept in their rte_mbufs)"
        } else {
            "null"
        },
        if cut {
            " (cut-through: bursts of rte_mbufs passed port to port)"
        } else {
            " on every packet"
        },
        if peer { ", interleaved with the peer" } else { "" }
    );
    let peer_secs = secs.max(6.0) + 3.0; // testpmd's first 3 s reading is dropped as warm-up
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut pairs = Vec::new();
    let mut peer_info: Option<Peer> = None;
    let mut peer_err = None;
    for r in 0..runs {
        let cfg = if r == 0 { cfg.clone() } else { config_of(r)? };
        let mpps = io_once(&cfg, secs)?;
        println!("  ours run {}: {mpps:.2} Mpps", r + 1);
        ours.push(mpps);
        if peer && peer_err.is_none() {
            match run_peer(
                "testpmd-null-io.sh",
                "dpdk-testpmd --forward-mode=io, 2 x net_null",
                1,
                peer_secs,
            ) {
                Ok(p) => {
                    println!(
                        "  peer run {}: {:.2} Mpps (pair ratio {:.3})",
                        r + 1,
                        p.mpps,
                        mpps / p.mpps
                    );
                    theirs.push(p.mpps);
                    pairs.push(mpps / p.mpps);
                    peer_info = Some(p);
                }
                Err(e) => {
                    println!("peer: not run: {e}");
                    peer_err = Some(e);
                }
            }
        }
    }
    let ours_m = median(&ours);
    println!(
        "{scenario}: ours {ours_m:.2} Mpps on core {core} (median of {runs} x {secs} s), {:.1} cycles/packet at TSC {:.2} GHz",
        hz as f64 / (ours_m * 1e6),
        hz as f64 / 1e9
    );
    let mut res = base(
        scenario,
        serde_json::json!({
            "worker_core": core, "burst": burst, "packet_len": len, "ports": 2,
            "port_kind": if dpdk { "dpdk net_null" } else { "null" }, "buffers": BUFFERS, "stages": ["forward"], "secs": secs,
            "cut_through": cut,
            "runs": runs, "interleaved": peer,
            "backing": format!("{:?}", pmd::mem::hugepages_free().map(|f| if f > 0 { "hugepages free" } else { "no free hugepages" })),
            "latency_pass": { "secs": lat_secs, "generator": "udp ipv4 1024 flows", "stages": ["forward"] },
        }),
    );
    res.ours_mpps = ours_m;
    res.ours_runs_mpps = ours;
    res.cycles_per_packet = hz as f64 / (ours_m * 1e6);
    res.mpps_per_core = Some(ours_m);
    if dpdk {
        res.latency_note =
            Some("not measured through net_null (it carries no timestamp); see `io`".into());
    }
    if lat_secs > 0.0 && !dpdk {
        let g = GenConfig {
            size: Size::Fixed(len.max(64)),
            ..Default::default()
        };
        let fwd = || vec![Box::new(Forward::new(&[(0, 1)])) as Box<dyn Stage>];
        let t = run_direct(&g, &fwd, burst, core, lat_secs)?;
        res.latency = t.seen.summary(hz);
        res.latency_note = Some(format!(
            "from a separate {lat_secs} s pass, generator → forward → sink on core {core} ({:.2} Mpps there; null ports carry no timestamp)",
            t.sink_mpps()
        ));
        print_latency(&res.latency);
        let (gc, _) = gen_cost(&g, burst, core)?;
        res.gen_cycles_per_packet = Some(gc);
    }
    match peer_info {
        Some(p) if !pairs.is_empty() => {
            let peer_m = median(&theirs);
            let ratio = median(&pairs);
            println!(
                "peer: {} = {:.2} Mpps (median of {}); same-run ratios {:?}",
                p.tool,
                peer_m,
                theirs.len(),
                pairs
                    .iter()
                    .map(|x| (x * 1000.0).round() / 1000.0)
                    .collect::<Vec<_>>()
            );
            res.peer = Some(Peer { mpps: peer_m, ..p });
            res.peer_runs_mpps = theirs;
            res.pair_ratios = pairs;
            res.ratio = Some(ratio);
        }
        _ => {
            res.ratio_note = Some(match peer_err {
                Some(e) => format!("peer not run: {}", e.lines().next().unwrap_or("")),
                None => "peer skipped (--no-peer)".into(),
            });
        }
    }
    finish(res)
}

// ---------------------------------------------------------------------------------------------
// chain-length

fn touches(n: usize) -> Vec<Box<dyn Stage>> {
    (0..n)
        .map(|_| Box::new(Touch::new(1)) as Box<dyn Stage>)
        .collect()
}

/// `bench chain-length`.
pub fn chain_length(
    max: usize,
    secs: f64,
    runs: usize,
    burst: usize,
    core: usize,
    g: &GenConfig,
) -> Res<()> {
    let hz = pmd::cpu::tsc_hz();
    let (frames, table) = describe_gen(g)?;
    print_machine();
    println!(
        "config: generator {:?}{} {} ({:?} in buffers), {} flows {:?} → 1..{max} touch stages → sink, burst {burst}, core {core}, {BUFFERS} buffers, {runs} x {secs} s per length, template table {} KiB",
        g.proto,
        if g.ipv6 { "/IPv6" } else { "/IPv4" },
        size_label(g.size),
        frames,
        g.flows,
        g.spread,
        table / 1024
    );
    let mut series = Vec::new();
    let mut last_lat = None;
    for n in 1..=max {
        let mut rates = Vec::new();
        for _ in 0..runs {
            let f = move || touches(n);
            let t = run_direct(g, &f, burst, core, secs)?;
            rates.push(t.sink_mpps());
            last_lat = t.seen.summary(hz);
        }
        let m = median(&rates);
        let base = series.first().map_or(m, |p: &Point| p.y);
        println!(
            "  {n} stage{}: {m:.2} Mpps, {:.1} cycles/packet, {:.1} % of 1 stage",
            if n == 1 { " " } else { "s" },
            hz as f64 / (m * 1e6),
            100.0 * m / base
        );
        series.push(Point { x: n as f64, y: m });
    }
    let first = series[0].y;
    let lastp = series[series.len() - 1].y;
    println!(
        "chain-length: {first:.2} Mpps with 1 stage, {lastp:.2} Mpps with {max} ({:.1} % kept; the design asks ≥ 90 % at 8)",
        100.0 * lastp / first
    );
    let (gc, null) = gen_cost(g, burst, core)?;
    println!(
        "generator: {gc:.1} cycles/packet for rx_burst with alloc and free (null port: {null:.1}); it runs on the measured core"
    );
    let mut res = base(
        "chain-length",
        serde_json::json!({
            "generator": gen_json(g, &frames, table), "stages": "touch x N", "max_stages": max,
            "burst": burst, "worker_core": core, "buffers": BUFFERS, "secs": secs, "runs": runs,
            "headline": format!("Mpps with {max} stages"),
        }),
    );
    res.ours_mpps = lastp;
    res.ours_runs_mpps = series.iter().map(|p| p.y).collect();
    res.cycles_per_packet = hz as f64 / (lastp * 1e6);
    res.mpps_per_core = Some(lastp);
    res.latency = last_lat;
    res.latency_note = Some(format!(
        "at {max} stages, full rate, one core: the time from the generator's burst to the sink"
    ));
    print_latency(&res.latency);
    res.gen_cycles_per_packet = Some(gc);
    res.series = series;
    res.ratio_note = Some(
        "no DPDK counterpart: testpmd forwards with one fixed mode, it has no chain of N stages"
            .into(),
    );
    finish(res)
}

// ---------------------------------------------------------------------------------------------
// pipeline

/// Parameters of `bench pipeline`.
pub struct PipelineArgs {
    /// Stages in the chain.
    pub stages: usize,
    /// Stages on the first core.
    pub split: usize,
    /// Seconds per trial.
    pub trial_secs: f64,
    /// Search steps.
    pub steps: usize,
    /// Loss tolerance (fraction).
    pub loss: f64,
    /// Burst size.
    pub burst: usize,
    /// Ring slots.
    pub ring: u32,
    /// The two cores.
    pub cores: (usize, usize),
    /// Traffic.
    pub gen: GenConfig,
    /// Run the engine's own pipeline layout instead, its I/O thread (generator and sink) on
    /// this core: three busy threads, so it needs three free cores to mean anything.
    pub engine_io_core: Option<usize>,
}

/// One trial: generator → first segment on core A → ring → second segment → sink on core B.
/// What the ring cannot take is dropped and counted as lost.
fn pipeline_trial(a: &PipelineArgs, rate_pps: Option<f64>) -> Res<Trial> {
    let mut g = a.gen.clone();
    g.rate_pps = rate_pps;
    let (k1, k2) = (a.split.min(a.stages), a.stages - a.split.min(a.stages));
    if let Some(io) = a.engine_io_core {
        let opts = EngineOptions {
            burst: a.burst,
            worker_cores: vec![Some(a.cores.0), Some(a.cores.1)],
            io_core: Some(io),
            layout: Layout::Pipeline {
                segments: vec![k1, k2],
            },
            clock: ClockMode::Tsc,
            offline: false,
            ring_size: a.ring,
            steer: None,
            orders: Vec::new(),
            cut_through: true,
        };
        let n = a.stages;
        return run_engine(&g, &move || touches(n), opts, a.trial_secs);
    }
    let pool = pool()?;
    let mut gen = Generator::new("gen", 0, &g)?;
    let lat: Latency = Default::default();
    let mut sink = Sink::new("sink", gen.layout().ts(), lat.clone());
    let (prod, cons) = buf_spsc(a.ring).map_err(|e| e.to_string())?;
    let stop = AtomicBool::new(false);
    let done = Arc::new(AtomicBool::new(false));
    let burst_n = a.burst;
    let (offered, secs) = std::thread::scope(|s| -> Res<(u64, f64)> {
        let (pool_a, pool_b) = (pool.clone(), pool.clone());
        let done_a = done.clone();
        let stop_r = &stop;
        let ha = s.spawn(move || -> Res<(u64, f64)> {
            let r = (|| {
                pmd::cpu::pin_current_thread(a.cores.0)
                    .map_err(|e| format!("pin to core {}: {e}", a.cores.0))?;
                let mut cache = pool_a.cache();
                let mut stages = touches(k1);
                let mut runner = ChainRunner::new(k1);
                let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
                let mut b = Burst::new();
                let mut leaving = Burst::new();
                let t0 = Instant::now();
                while !stop_r.load(Ordering::Relaxed) {
                    let n = gen
                        .rx_burst(0, &mut cache, &mut b, burst_n)
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        continue;
                    }
                    runner.run(
                        clock.now(),
                        0,
                        &mut stages,
                        &mut b,
                        &mut leaving,
                        &mut cache,
                        2,
                    );
                    // Touch never sends a packet out early; anything that did would be lost.
                    cache.free_burst(&mut leaving);
                    prod.enqueue(&mut b);
                    // What the ring did not take is lost (counted as offered, never received).
                    cache.free_burst(&mut b);
                }
                Ok((gen.stats().rx_packets, t0.elapsed().as_secs_f64()))
            })();
            done_a.store(true, Ordering::Release);
            r
        });
        let hb = s.spawn(move || -> Res<()> {
            pmd::cpu::pin_current_thread(a.cores.1)
                .map_err(|e| format!("pin to core {}: {e}", a.cores.1))?;
            let mut cache = pool_b.cache();
            let mut stages = touches(k2);
            let mut runner = ChainRunner::new(k2);
            let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
            let mut b = Burst::new();
            let mut leaving = Burst::new();
            loop {
                let finished = done.load(Ordering::Acquire);
                if cons.dequeue(&mut b, burst_n) == 0 {
                    if finished {
                        break;
                    }
                    continue;
                }
                if k2 > 0 {
                    runner.run(
                        clock.now(),
                        1,
                        &mut stages,
                        &mut b,
                        &mut leaving,
                        &mut cache,
                        2,
                    );
                }
                runner.finish(&mut b, &mut leaving, &mut cache, 2);
                while !leaving.is_empty() {
                    sink.tx_burst(0, &mut cache, &mut leaving)
                        .map_err(|e| e.to_string())?;
                }
            }
            drop(sink);
            Ok(())
        });
        std::thread::sleep(Duration::from_secs_f64(a.trial_secs));
        stop.store(true, Ordering::Relaxed);
        let ra = ha.join().map_err(|_| "core A panicked".to_string())?;
        let rb = hb.join().map_err(|_| "core B panicked".to_string())?;
        rb?;
        ra
    })?;
    let seen = lat.lock().map_err(|_| "sink lock poisoned")?.clone();
    Ok(Trial {
        offered,
        secs,
        seen,
        report: None,
    })
}

/// The RFC 2544 search over `trial(rate)` (`None`: full rate): a full-rate trial, then halving
/// the window between 0 and its offered rate for up to `steps` trials, a trial passing when it
/// lost at most `loss` of what it offered. `trial` also returns a detail for its line (where the
/// lost packets went), or an empty string. Returns the best passing trial and the steps
/// (offered Mpps, lost packets).
fn zero_loss(
    steps: usize,
    loss: f64,
    mut trial: impl FnMut(Option<f64>) -> Res<(Trial, String)>,
) -> Res<(Option<Trial>, Vec<Point>)> {
    let ok = |t: &Trial| t.lost() as f64 <= loss * t.offered as f64;
    let detail = |d: &str| {
        if d.is_empty() {
            String::new()
        } else {
            format!(" ({d})")
        }
    };
    let (full, d) = trial(None)?;
    println!(
        "  full rate: offered {:.2} Mpps, sink {:.2} Mpps, lost {}{}",
        full.offered_mpps(),
        full.sink_mpps(),
        full.lost(),
        detail(&d)
    );
    let mut points = vec![Point {
        x: full.offered_mpps(),
        y: full.lost() as f64,
    }];
    if ok(&full) {
        return Ok((Some(full), points));
    }
    let mut best = None;
    let (mut lo, mut hi) = (0.0f64, full.offered_mpps());
    for i in 0..steps {
        let mid = (lo + hi) / 2.0;
        let (t, d) = trial(Some(mid * 1e6))?;
        let good = ok(&t);
        println!(
            "  step {}: paced at {mid:.3} Mpps: offered {:.3} Mpps, lost {}{} → {}",
            i + 1,
            t.offered_mpps(),
            t.lost(),
            detail(&d),
            if good { "no loss" } else { "loss" }
        );
        points.push(Point {
            x: t.offered_mpps(),
            y: t.lost() as f64,
        });
        if good {
            lo = mid;
            best = Some(t);
        } else {
            hi = mid;
        }
        if hi - lo < 0.005 * hi {
            break;
        }
    }
    Ok((best, points))
}

/// `bench pipeline`.
pub fn pipeline(a: &PipelineArgs) -> Res<()> {
    let hz = pmd::cpu::tsc_hz();
    if a.cores.0 == a.cores.1 {
        return Err("the two segments need two different cores".into());
    }
    if a.stages == 0 {
        return Err("the chain needs at least one stage".into());
    }
    let (frames, table) = describe_gen(&a.gen)?;
    print_machine();
    let split = a.split.min(a.stages);
    println!(
        "config: generator {:?}{} {} ({:?} in buffers), {} flows {:?} → {split} touch on core {} → ring of {} → {} touch → sink on core {}, burst {}, {BUFFERS} buffers; trials of {} s, {} search steps, loss tolerance {}",
        a.gen.proto,
        if a.gen.ipv6 { "/IPv6" } else { "/IPv4" },
        size_label(a.gen.size),
        frames,
        a.gen.flows,
        a.gen.spread,
        a.cores.0,
        a.ring,
        a.stages - split,
        a.cores.1,
        a.burst,
        a.trial_secs,
        a.steps,
        a.loss
    );
    let (best, steps) = zero_loss(a.steps, a.loss, |r| {
        pipeline_trial(a, r).map(|t| (t, String::new()))
    })?;
    let zl = best.as_ref().map_or(0.0, |t| t.offered_mpps());
    // The engine's layout adds its I/O thread: a third busy core.
    let ncores = if a.engine_io_core.is_some() { 3 } else { 2 };
    println!(
        "pipeline: zero-loss {zl:.2} Mpps over {ncores} cores ({:.2} Mpps per core, {:.1} cycles/packet per core)",
        zl / ncores as f64,
        if zl > 0.0 {
            ncores as f64 * hz as f64 / (zl * 1e6)
        } else {
            0.0
        }
    );
    let mut res = base(
        "pipeline",
        serde_json::json!({
            "generator": gen_json(&a.gen, &frames, table), "stages": a.stages, "split": split,
            "cores": [a.cores.0, a.cores.1], "ring": a.ring, "burst": a.burst, "buffers": BUFFERS,
            "trial_secs": a.trial_secs, "steps": a.steps, "loss_tolerance": a.loss,
            "shape": match a.engine_io_core {
                None => "generator + first segment on core A, ring (pmd buf_spsc), second segment + sink on core B; segments run by the engine's ChainRunner".to_string(),
                Some(io) => format!("the engine's pipeline layout: I/O thread (generator and sink) on core {io}, segments on cores {} and {}", a.cores.0, a.cores.1),
            },
        }),
    );
    res.ours_mpps = zl;
    res.ours_runs_mpps = vec![zl];
    res.cores = ncores;
    res.mpps_per_core = Some(zl / ncores as f64);
    res.cycles_per_packet = if zl > 0.0 {
        ncores as f64 * hz as f64 / (zl * 1e6)
    } else {
        0.0
    };
    match &best {
        Some(t) => {
            res.latency = t.seen.summary(hz);
            res.latency_note = Some(format!(
                "at the zero-loss rate ({zl:.2} Mpps), across the ring"
            ));
        }
        None => {
            res.latency_note = Some("no trial was loss-free".into());
            println!("pipeline: no trial was loss-free (a noisy machine drops at any rate with a tolerance of 0; try --loss)");
        }
    }
    print_latency(&res.latency);
    let (gc, _) = gen_cost(&a.gen, a.burst, a.cores.0)?;
    res.gen_cycles_per_packet = Some(gc);
    res.series = steps;
    res.ratio_note = Some(
        "no DPDK counterpart: testpmd-ring-io.sh forwards on ONE core between net_ring ports that \
loop back to themselves (a ring enqueue and dequeue per packet on the same core, no loss search), \
and dpdk-test-pipeline needs three lcores and real ports; neither is a two-core handoff"
            .into(),
    );
    finish(res)
}
