//! Results: one JSON file per run in `bench/results/`, `BENCHMARKS.md` regenerated from the
//! newest result of each scenario, and the PNG plots it links.
//!
//! The JSON is the record: what ran (the command line and the full configuration), on what
//! (CPU model, frequency, TSC rate), and what it gave (Mpps, Mpps per core, cycles per packet,
//! latency percentiles and CDF, peak memory, the generator's own cost, the DPDK peer's figure
//! and the same-run ratio). Fields added since the first results are optional, so older files
//! still load. `BENCHMARKS.md` and the plots are derived and can be regenerated at any time
//! (`bench report`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sink::LatencySummary;

/// One run's result, as stored in `bench/results/<scenario>-<unix time>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Scenario name (`io`, `chain-length`, `pipeline`, ...).
    pub scenario: String,
    /// The command line that produced it.
    pub command: String,
    /// When (seconds since the Unix epoch).
    pub unix_time: u64,
    /// CPU model.
    pub cpu: String,
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// CPU frequency the kernel reported, MHz.
    #[serde(default)]
    pub cpu_mhz: Option<f64>,
    /// Everything that shaped the run (sizes, flows, burst, cores, tables).
    pub config: serde_json::Value,
    /// The headline figure, Mpps (for `pipeline`: the zero-loss rate).
    pub ours_mpps: f64,
    /// Per-run figures behind it.
    pub ours_runs_mpps: Vec<f64>,
    /// TSC cycles per packet per core at the headline rate.
    pub cycles_per_packet: f64,
    /// Cores the figure used.
    #[serde(default = "one")]
    pub cores: usize,
    /// Mpps per core.
    #[serde(default)]
    pub mpps_per_core: Option<f64>,
    /// Latency from generator to sink, where measured.
    #[serde(default)]
    pub latency: Option<LatencySummary>,
    /// Why latency is absent, where it is.
    #[serde(default)]
    pub latency_note: Option<String>,
    /// Peak resident memory of the benchmark process, KiB.
    #[serde(default)]
    pub peak_rss_kib: Option<u64>,
    /// Cycles per packet of the generator's `rx_burst` alone (with allocation and free).
    #[serde(default)]
    pub gen_cycles_per_packet: Option<f64>,
    /// A curve: chain-length (stages, Mpps) or the pipeline's search steps (offered Mpps,
    /// lost packets).
    #[serde(default)]
    pub series: Vec<Point>,
    /// The DPDK peer, if it ran.
    pub peer: Option<Peer>,
    /// The peer's per-run figures (interleaved with ours).
    #[serde(default)]
    pub peer_runs_mpps: Vec<f64>,
    /// Ours over theirs for each interleaved pair.
    #[serde(default)]
    pub pair_ratios: Vec<f64>,
    /// Ours over theirs (the median of the pair ratios where runs were interleaved).
    pub ratio: Option<f64>,
    /// Why there is no ratio, where there is none.
    #[serde(default)]
    pub ratio_note: Option<String>,
    /// Scenarios with several figures (router: lookups on random and on table destinations,
    /// IPv6, the stage; firewall: one row per rule set...) put each one here, with its own
    /// peer figure and ratio where a peer measured the same thing in the same run.
    #[serde(default)]
    pub rows: Vec<Row>,
}

/// One figure of a scenario that has several.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// What was measured (`IPv4 lookups, full table, random destinations`).
    pub what: String,
    /// Unit of `ours` and `peer` (`M lookups/s`, `Mpps`, `us`, `MiB`...).
    pub unit: String,
    /// Our figure.
    pub ours: f64,
    /// The peer's figure for the same thing in the same run, if any.
    #[serde(default)]
    pub peer: Option<f64>,
    /// The peer tool and mode (`dpdk-test-fib dir24_8`).
    #[serde(default)]
    pub peer_tool: Option<String>,
    /// Ours over theirs, oriented so that higher is better (for times: theirs over ours).
    #[serde(default)]
    pub ratio: Option<f64>,
    /// Anything the figure needs to be read right (cycles per packet, memory, goal met or not).
    #[serde(default)]
    pub note: Option<String>,
}

fn one() -> usize {
    1
}

/// One point of a curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// X (stages, or offered Mpps).
    pub x: f64,
    /// Y (Mpps, or lost packets).
    pub y: f64,
}

/// The DPDK tool that ran beside ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Peer {
    /// What it is.
    pub tool: String,
    /// The exact command.
    pub command: String,
    /// Its figure (median of its runs), Mpps.
    pub mpps: f64,
}

/// The workspace root.
pub fn root() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// `bench/results/`.
pub fn results_dir() -> PathBuf {
    root().join("bench/results")
}

/// Writes `r` to `bench/results/<scenario>-<unix time>.json`.
pub fn save(r: &RunResult) -> Result<PathBuf, String> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join(format!("{}-{}.json", r.scenario, r.unix_time));
    let text = serde_json::to_string_pretty(r).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The newest result of each scenario in `dir`.
pub fn newest(dir: &Path) -> Result<BTreeMap<String, RunResult>, String> {
    let mut newest: BTreeMap<String, RunResult> = BTreeMap::new();
    for e in std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
    {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let r: RunResult =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
            if newest
                .get(&r.scenario)
                .is_none_or(|o| o.unix_time < r.unix_time)
            {
                newest.insert(r.scenario.clone(), r);
            }
        }
    }
    Ok(newest)
}

fn f2(x: f64) -> String {
    format!("{x:.2}")
}

fn lat(r: &RunResult) -> String {
    match &r.latency {
        Some(l) => format!("{:.0} / {:.0} / {:.0} ns", l.median_ns, l.p99_ns, l.p999_ns),
        None => "-".into(),
    }
}

/// Regenerates `BENCHMARKS.md` and the plots from the newest result of each scenario.
pub fn report() -> Result<(), String> {
    let dir = results_dir();
    let newest = newest(&dir)?;
    let plots = match draw_plots(&newest, &dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plots not drawn: {e}");
            Vec::new()
        }
    };
    let mut md = String::from(
        "# Benchmarks\n\n\
Generated by `cargo run --release -p bench -- report` from the newest JSON of each scenario in\n\
`bench/results/`. Where a DPDK tool does the same job, the scenario runs it in the same run on the\n\
same machine, interleaved with ours (ours, peer, ours, peer, ...), and the ratio is ours over theirs\n\
(higher is better; the median of the per-pair ratios, because on a shared VM only the same-moment\n\
comparison means anything). Reproduce a row with its command (as root, after `scripts/setup.sh`), or\n\
`scripts/bench.sh NAME`. Latency is generator to sink (TSC stamp in the packet), median / p99 /\n\
p99.9. Peak memory is the process's `VmHWM` (hugepage packet memory is not in it; the pool size\n\
is in the configuration).\n\n\
| scenario | ours | Mpps/core | cycles/pkt | latency | peak RSS | peer | peer figure | ratio | machine | when (unix) |\n\
|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in newest.values() {
        md += &format!(
            "| {} | {:.2} {}{} | {} | {:.1} | {} | {} | {} | {} | {} | {} ({:.2} GHz TSC) | {} |\n",
            r.scenario,
            r.ours_mpps,
            match r.scenario.as_str() {
                "router" =>
                    "M lookups/s (IPv4, random destinations; Mpps/core and cycles: the stage)",
                "firewall" => "M classifications/s (geometric mean over the ClassBench sets)",
                _ => "Mpps",
            },
            match r.scenario.as_str() {
                "chain-length" => format!(" at {} stages", r.series.last().map_or(0.0, |p| p.x)),
                "pipeline" => format!(" zero-loss, {} cores", r.cores),
                _ => String::new(),
            },
            r.mpps_per_core
                .map_or_else(|| f2(r.ours_mpps / r.cores.max(1) as f64), f2),
            r.cycles_per_packet,
            lat(r),
            r.peak_rss_kib
                .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
            r.peer.as_ref().map_or("-".into(), |p| p.tool.clone()),
            r.peer
                .as_ref()
                .map_or("-".into(), |p| format!("{:.2} Mpps", p.mpps)),
            r.ratio
                .map_or_else(|| "n/a (see below)".into(), |x| format!("{x:.3}")),
            r.cpu,
            r.tsc_hz as f64 / 1e9,
            r.unix_time
        );
    }
    if !plots.is_empty() {
        md += "\n## Plots\n\n";
        for (title, file) in &plots {
            md += &format!("![{title}](bench/results/{file})\n\n");
        }
    }
    md += "## Commands and configurations\n\n";
    for r in newest.values() {
        md += &format!(
            "### {}\n\nOurs (runs: {:?} Mpps):\n\n```\n{}\n```\n\n",
            r.scenario,
            r.ours_runs_mpps
                .iter()
                .map(|x| (x * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            r.command,
        );
        if let Some(g) = r.gen_cycles_per_packet {
            md += &format!(
                "Generator cost (`rx_burst` with allocation and free): {g:.1} cycles/packet.\n\n"
            );
        }
        if let Some(n) = &r.latency_note {
            md += &format!("Latency: {n}\n\n");
        }
        if r.scenario == "chain-length" && !r.series.is_empty() {
            md += "| stages | Mpps | of 1 stage |\n|---|---|---|\n";
            let base = r.series[0].y;
            for p in &r.series {
                md += &format!(
                    "| {} | {:.2} | {:.1} % |\n",
                    p.x,
                    p.y,
                    100.0 * p.y / base.max(1e-9)
                );
            }
            md += "\n";
        }
        if r.scenario == "pipeline" && !r.series.is_empty() {
            md += "Search (offered Mpps → packets lost): ";
            md += &r
                .series
                .iter()
                .map(|p| format!("{:.2} → {}", p.x, p.y))
                .collect::<Vec<_>>()
                .join(", ");
            md += "\n\n";
        }
        if !r.rows.is_empty() {
            md +=
                "| what | ours | peer | peer figure | ratio | note |\n|---|---|---|---|---|---|\n";
            for row in &r.rows {
                md += &format!(
                    "| {} | {:.2} {} | {} | {} | {} | {} |\n",
                    row.what,
                    row.ours,
                    row.unit,
                    row.peer_tool.as_deref().unwrap_or("-"),
                    row.peer
                        .map_or("-".into(), |p| format!("{p:.2} {}", row.unit)),
                    row.ratio.map_or("-".into(), |x| format!("{x:.3}")),
                    row.note.as_deref().unwrap_or(""),
                );
            }
            md += "\n";
        }
        md += &format!("Configuration: `{}`\n\n", r.config);
        if let Some(p) = &r.peer {
            let runs = if r.peer_runs_mpps.is_empty() {
                String::new()
            } else {
                format!(
                    " (runs: {:?} Mpps; same-run ratios: {:?})",
                    r.peer_runs_mpps,
                    r.pair_ratios
                        .iter()
                        .map(|x| (x * 1000.0).round() / 1000.0)
                        .collect::<Vec<_>>()
                )
            };
            md += &format!("Peer{runs}:\n\n```\n{}\n```\n\n", p.command);
        } else if let Some(n) = &r.ratio_note {
            md += &format!("No peer: {n}.\n\n");
        }
    }
    // Measurements not yet driven by a `bench` scenario (each says how it was taken) are kept
    // by hand in bench/MEASURED.md and carried over verbatim.
    let manual = root().join("bench/MEASURED.md");
    if let Ok(text) = std::fs::read_to_string(&manual) {
        md += "\n";
        md += &text;
    }
    let path = root().join("BENCHMARKS.md");
    std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    for (_, f) in &plots {
        println!("wrote {}", dir.join(f).display());
    }
    Ok(())
}

/// Registers a TrueType font for the plots' text (plotters' pure-Rust `ab_glyph` backend needs
/// one; DejaVu Sans from `fonts-dejavu-core` or `$BENCH_FONT`).
fn load_font() -> Result<(), String> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("BENCH_FONT") {
        candidates.push(p.into());
    }
    for p in [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ] {
        candidates.push(p.into());
    }
    for p in &candidates {
        if let Ok(bytes) = std::fs::read(p) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err("no TrueType font found (install fonts-dejavu-core or set BENCH_FONT)".into())
}

type Plots = Vec<(String, String)>;

fn draw_plots(newest: &BTreeMap<String, RunResult>, dir: &Path) -> Result<Plots, String> {
    load_font()?;
    let mut out = Vec::new();
    if !newest.is_empty() {
        let f = "mpps.png";
        plot_mpps(newest, &dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        out.push((
            "Headline figure per scenario, ours next to the DPDK peer".into(),
            f.into(),
        ));
    }
    let ratios = ratio_bars(newest);
    if !ratios.is_empty() {
        let f = "ratios.png";
        plot_ratios(&ratios, &dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        out.push((
            "Same-run ratio to the DPDK peer, every figure that has one (right of 1.0: ours ahead)"
                .into(),
            f.into(),
        ));
    }
    if newest.values().any(|r| r.latency.is_some()) {
        let f = "latency-cdf.png";
        plot_cdf(newest, &dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        out.push(("Latency CDF, generator to sink".into(), f.into()));
    }
    if let Some(r) = newest.get("chain-length").filter(|r| !r.series.is_empty()) {
        let f = "chain-length.png";
        plot_chain(r, &dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
        out.push(("Mpps against chain length".into(), f.into()));
    }
    Ok(out)
}

type DynErr = Box<dyn std::error::Error>;

/// `850 ns`, `12 µs`, `3.4 ms`.
fn human_ns(x: f64) -> String {
    let (v, unit) = if x < 1e3 {
        (x, "ns")
    } else if x < 1e6 {
        (x / 1e3, "µs")
    } else if x < 1e9 {
        (x / 1e6, "ms")
    } else {
        (x / 1e9, "s")
    };
    if v < 10.0 && v.fract().abs() > 0.05 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

const OURS: RGBColor = RGBColor(31, 119, 180);
const THEIRS: RGBColor = RGBColor(255, 127, 14);

fn plot_mpps(newest: &BTreeMap<String, RunResult>, path: &Path) -> Result<(), DynErr> {
    let rows: Vec<&RunResult> = newest.values().collect();
    let top = rows
        .iter()
        .map(|r| r.ours_mpps.max(r.peer.as_ref().map_or(0.0, |p| p.mpps)))
        .fold(1.0f64, f64::max)
        * 1.2;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Headline figure per scenario, millions per second (router: lookups, firewall: classifications)",
            ("sans-serif", 17),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)?;
    let names: Vec<String> = rows.iter().map(|r| r.scenario.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc("Mpps")
        .label_style(("sans-serif", 16))
        .draw()?;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let x = i as f64;
        ours.push(Rectangle::new(
            [(x + 0.1, 0.0), (x + 0.48, r.ours_mpps)],
            OURS.filled(),
        ));
        if let Some(p) = &r.peer {
            theirs.push(Rectangle::new(
                [(x + 0.52, 0.0), (x + 0.9, p.mpps)],
                THEIRS.filled(),
            ));
        }
    }
    chart
        .draw_series(ours)?
        .label("ours")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], OURS.filled()));
    chart
        .draw_series(theirs)?
        .label("DPDK peer")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], THEIRS.filled()));
    chart.draw_series(rows.iter().enumerate().map(|(i, r)| {
        Text::new(
            format!("{:.1}", r.ours_mpps),
            (i as f64 + 0.15, r.ours_mpps + top * 0.02),
            ("sans-serif", 14),
        )
    }))?;
    chart.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
        r.peer.as_ref().map(|p| {
            Text::new(
                format!("{:.1}", p.mpps),
                (i as f64 + 0.57, p.mpps + top * 0.02),
                ("sans-serif", 14),
            )
        })
    }))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_cdf(newest: &BTreeMap<String, RunResult>, path: &Path) -> Result<(), DynErr> {
    let curves: Vec<(&String, &LatencySummary)> = newest
        .iter()
        .filter_map(|(k, r)| r.latency.as_ref().map(|l| (k, l)))
        .collect();
    let lo = curves
        .iter()
        .flat_map(|(_, l)| l.cdf.iter().map(|p| p[0]))
        .fold(f64::MAX, f64::min)
        .max(1.0);
    let hi = curves
        .iter()
        .flat_map(|(_, l)| l.cdf.iter().map(|p| p[0]))
        .fold(1.0f64, f64::max)
        * 1.5;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency CDF, generator to sink", ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((lo * 0.8..hi).log_scale(), 0f64..1.0)?;
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .x_label_formatter(&|x| human_ns(*x))
        .y_desc("fraction of packets")
        .label_style(("sans-serif", 16))
        .draw()?;
    for (i, (name, l)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                l.cdf.iter().map(|p| (p[0].max(lo), p[1])),
                color.stroke_width(2),
            ))?
            .label(format!(
                "{name}: p50 {:.0}, p99 {:.0}, p99.9 {:.0} ns",
                l.median_ns, l.p99_ns, l.p999_ns
            ))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Every ratio to a DPDK peer: a scenario's rows that have one, or its headline.
fn ratio_bars(newest: &BTreeMap<String, RunResult>) -> Vec<(String, f64)> {
    let mut v = Vec::new();
    for r in newest.values() {
        let rows: Vec<&Row> = r
            .rows
            .iter()
            .filter(|x| x.ratio.is_some() && x.peer.is_some())
            .collect();
        if rows.is_empty() {
            if let Some(x) = r.ratio {
                v.push((r.scenario.clone(), x));
            }
        }
        for row in rows {
            let what: String = row.what.chars().take(46).collect();
            v.push((format!("{}: {what}", r.scenario), row.ratio.unwrap_or(0.0)));
        }
    }
    v
}

fn plot_ratios(bars: &[(String, f64)], path: &Path) -> Result<(), DynErr> {
    let n = bars.len();
    // A log scale: rule updates are thousands of times faster, classification a fraction.
    let top = bars.iter().map(|b| b.1).fold(2.0f64, f64::max) * 3.0;
    let low = bars
        .iter()
        .map(|b| b.1)
        .filter(|x| *x > 0.0)
        .fold(0.5f64, f64::min)
        / 2.0;
    let root = BitMapBackend::new(path, (1100, 120 + 28 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Ours over the DPDK peer, same run (higher is better; memory and update time: theirs over ours)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(430)
        .build_cartesian_2d((low..top).log_scale(), 0f64..n as f64)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&|y| {
            let i = y.floor() as usize;
            if (y - y.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[n - 1 - i].clone()
            } else {
                String::new()
            }
        })
        .x_desc("ratio (log scale; the line is 1.0)")
        .label_style(("sans-serif", 13))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, x))| {
        let y = (n - 1 - i) as f64;
        let c = if *x >= 1.0 { OURS } else { THEIRS };
        Rectangle::new([(low, y + 0.15), (x.clamp(low, top), y + 0.85)], c.filled())
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, x))| {
        Text::new(
            format!("{x:.2}"),
            (x.clamp(low, top) * 1.08, (n - 1 - i) as f64 + 0.7),
            ("sans-serif", 13),
        )
    }))?;
    chart.draw_series(LineSeries::new(
        [(1.0, 0.0), (1.0, n as f64)],
        BLACK.stroke_width(1),
    ))?;
    root.present()?;
    Ok(())
}

fn plot_chain(r: &RunResult, path: &Path) -> Result<(), DynErr> {
    let top = r.series.iter().map(|p| p.y).fold(1.0f64, f64::max) * 1.2;
    let xmax = r.series.iter().map(|p| p.x).fold(1.0f64, f64::max);
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput against chain length (one core)",
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..xmax + 0.5, 0f64..top)?;
    chart
        .configure_mesh()
        .x_labels(xmax as usize)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("stages in the chain (touch)")
        .y_desc("Mpps")
        .label_style(("sans-serif", 16))
        .draw()?;
    let base = r.series[0].y;
    chart
        .draw_series(LineSeries::new(
            [(0.5, base * 0.9), (xmax + 0.5, base * 0.9)],
            RED.mix(0.6).stroke_width(1),
        ))?
        .label("90 % of 1 stage (design target for 8)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.mix(0.6)));
    chart
        .draw_series(LineSeries::new(
            r.series.iter().map(|p| (p.x, p.y)),
            OURS.stroke_width(2),
        ))?
        .label("ours, Mpps")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], OURS.stroke_width(2)));
    chart.draw_series(
        r.series
            .iter()
            .map(|p| Circle::new((p.x, p.y), 4, OURS.filled())),
    )?;
    chart.draw_series(r.series.iter().map(|p| {
        Text::new(
            format!("{:.1}", p.y),
            (p.x - 0.15, p.y + top * 0.03),
            ("sans-serif", 14),
        )
    }))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
