//! `bench`: measures the dataplane and, in the same run, the DPDK tool a user would otherwise
//! pick, and prints the ratio.
//!
//! Every figure this project claims comes from here, with its command line, and goes to
//! `bench/results/<scenario>-<unix time>.json`; `bench report` regenerates `BENCHMARKS.md`
//! from the newest result of each scenario. Scenarios so far:
//!
//! * `io`: forward-only between two null ports on one pinned core (the port hands out and
//!   takes back buffers without touching their data), against `dpdk-testpmd
//!   --forward-mode=io` over two `net_null` vdevs. What it measures is the framework's own cost:
//!   pool, bursts, stage call, scatter and transmit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dataplane::build;
use dataplane::config::Config;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Dataplane benchmarks, side by side with DPDK's tools"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward-only between two null ports, against dpdk-testpmd io on net_null.
    Io {
        /// Seconds per run.
        #[arg(long, default_value_t = 10)]
        secs: u64,
        /// Runs (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Packets per burst.
        #[arg(long, default_value_t = 32)]
        burst: usize,
        /// Core for the worker (testpmd forwards on lcore 1 too).
        #[arg(long, default_value_t = 1)]
        core: usize,
        /// Packet length.
        #[arg(long, default_value_t = 64)]
        len: u16,
        /// Skip the DPDK peer.
        #[arg(long)]
        no_peer: bool,
    },
    /// Regenerate BENCHMARKS.md from the newest result of each scenario.
    Report,
}

/// One run's result, as stored in `bench/results/`.
#[derive(Debug, Serialize, Deserialize)]
struct Result {
    scenario: String,
    command: String,
    unix_time: u64,
    cpu: String,
    tsc_hz: u64,
    config: serde_json::Value,
    ours_mpps: f64,
    ours_runs_mpps: Vec<f64>,
    cycles_per_packet: f64,
    peer: Option<Peer>,
    ratio: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Peer {
    tool: String,
    command: String,
    mpps: f64,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn peers_dir() -> PathBuf {
    std::env::var_os("DATAPLANE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/peers"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs a peer script from `../shared/peers` and takes its last line (`Mpps: X`).
fn run_peer(script: &str, runs: usize, secs: u64) -> std::result::Result<Peer, String> {
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
        .env("SECS", secs.to_string())
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
        tool: "dpdk-testpmd --forward-mode=io, 2 x net_null".into(),
        command,
        mpps,
    })
}

fn io_config(core: usize, burst: usize, len: u16) -> String {
    format!(
        r#"[memory]
buffers = 16384
[engine]
workers = [{core}]
burst = {burst}
[[port]]
name = "null0"
kind = "null"
packet_len = {len}
[[port]]
name = "null1"
kind = "null"
packet_len = {len}
[[stage]]
kind = "forward"
routes = {{ null0 = "null1", null1 = "null0" }}
"#
    )
}

fn run_io(
    secs: u64,
    runs: usize,
    burst: usize,
    core: usize,
    len: u16,
    peer: bool,
) -> std::result::Result<(), String> {
    let text = io_config(core, burst, len);
    let cfg = Config::parse("<bench io>", &text, Path::new(".")).map_err(|e| e.to_string())?;
    let hz = pmd::cpu::tsc_hz();
    let mut rates = Vec::new();
    for r in 0..runs {
        let stop = AtomicBool::new(false);
        let (report, elapsed) = std::thread::scope(|s| {
            let t0 = Instant::now();
            let h = s.spawn(|| build::run(&cfg, None, &stop));
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
            let rep = h.join().map_err(|_| "engine panicked".to_string());
            (rep, t0.elapsed())
        });
        let report = report?.map_err(|e| e.to_string())?;
        if !report.balanced() {
            return Err(format!("counters do not balance:\n{}", report.render()));
        }
        let mpps = report.sent() as f64 / elapsed.as_secs_f64() / 1e6;
        eprintln!(
            "  ours run {}: {:.2} Mpps ({} packets in {:.2} s)",
            r + 1,
            mpps,
            report.sent(),
            elapsed.as_secs_f64()
        );
        rates.push(mpps);
    }
    let ours = median(&mut rates.clone());
    let cpp = hz as f64 / (ours * 1e6);
    println!(
        "io: ours {ours:.2} Mpps on core {core} (median of {runs} x {secs} s), {cpp:.1} cycles/packet at TSC {:.2} GHz, burst {burst}, {len} B",
        hz as f64 / 1e9
    );
    let peer = if peer {
        match run_peer("testpmd-null-io.sh", runs, secs + 3) {
            Ok(p) => {
                println!("peer: {} = {:.2} Mpps", p.tool, p.mpps);
                Some(p)
            }
            Err(e) => {
                println!("peer: not run: {e}");
                None
            }
        }
    } else {
        None
    };
    let ratio = peer.as_ref().map(|p| ours / p.mpps);
    let res = Result {
        scenario: "io".into(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        unix_time: pmd::cpu::unix_ns() / 1_000_000_000,
        cpu: cpu_model(),
        tsc_hz: hz,
        config: serde_json::json!({
            "worker_core": core, "burst": burst, "packet_len": len, "ports": 2,
            "port_kind": "null", "buffers": 16384, "stages": ["forward"], "secs": secs, "runs": runs,
            "backing": format!("{:?}", pmd::mem::hugepages_free().map(|f| if f > 0 { "hugepages free" } else { "no free hugepages" })),
        }),
        ours_mpps: ours,
        ours_runs_mpps: rates,
        cycles_per_packet: cpp,
        peer,
        ratio,
    };
    let path = save(&res)?;
    eprintln!("saved {}", path.display());
    match ratio {
        Some(r) => println!("ratio: {r:.3}"),
        None => println!("ratio: n/a (peer not run)"),
    }
    Ok(())
}

fn save(r: &Result) -> std::result::Result<PathBuf, String> {
    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{}-{}.json", r.scenario, r.unix_time));
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn report() -> std::result::Result<(), String> {
    let dir = root().join("bench/results");
    let mut newest: std::collections::BTreeMap<String, Result> = Default::default();
    for e in std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let r: Result =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            if newest
                .get(&r.scenario)
                .is_none_or(|o| o.unix_time < r.unix_time)
            {
                newest.insert(r.scenario.clone(), r);
            }
        }
    }
    let mut md = String::from(
        "# Benchmarks\n\nGenerated by `cargo run --release -p bench -- report` from the newest JSON of each scenario in\n`bench/results/`. Each scenario runs our dataplane and then the DPDK tool a user would otherwise pick,\nin the same run on the same machine; the ratio is ours over theirs (higher is better). Reproduce a row\nwith its command (as root, after `scripts/setup.sh`).\n\n| scenario | ours | cycles/pkt | peer | peer figure | ratio | machine | when (unix) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in newest.values() {
        md += &format!(
            "| {} | {:.2} Mpps | {:.1} | {} | {} | {} | {} ({:.2} GHz TSC) | {} |\n",
            r.scenario,
            r.ours_mpps,
            r.cycles_per_packet,
            r.peer.as_ref().map_or("not run".into(), |p| p.tool.clone()),
            r.peer
                .as_ref()
                .map_or("-".into(), |p| format!("{:.2} Mpps", p.mpps)),
            r.ratio.map_or("-".into(), |x| format!("{x:.3}")),
            r.cpu,
            r.tsc_hz as f64 / 1e9,
            r.unix_time
        );
    }
    md += "\n## Commands\n\n";
    for r in newest.values() {
        md += &format!(
            "### {}\n\nOurs (runs: {:?} Mpps):\n\n```\n{}\n```\n\nConfiguration: `{}`\n\n",
            r.scenario,
            r.ours_runs_mpps
                .iter()
                .map(|x| (x * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            r.command,
            r.config
        );
        if let Some(p) = &r.peer {
            md += &format!("Peer:\n\n```\n{}\n```\n\n", p.command);
        }
    }
    let path = root().join("BENCHMARKS.md");
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Io {
            secs,
            runs,
            burst,
            core,
            len,
            no_peer,
        } => run_io(secs, runs.max(1), burst, core, len, !no_peer),
        Cmd::Report => report(),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
