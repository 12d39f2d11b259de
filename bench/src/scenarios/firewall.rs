//! `bench firewall`: the firewall's classifier on ClassBench against `dpdk-test-acl`, its rule
//! updates against rte_acl's rebuild, and the firewall stage's Mpps with 1M connections.
//!
//! The issue asks for classifications per second per core on ClassBench acl1, fw1 and ipc1 at
//! 1K and 10K rules with their traces, side by side with `dpdk-test-acl` (its best algorithm on
//! this CPU) on the same rules and traces in the same run; the time to add or delete one rule at
//! 10K rules against rte_acl's build time; and the stage's Mpps and cycles per packet with 10K
//! rules and 1M tracked connections. Its goal: at least 1.0x the best algorithm on every set, in
//! less memory, with rule updates 1000x faster than a rebuild. This scenario measures exactly
//! that, in three parts:
//!
//! 1. **Classification**, per set (NSLab files: `rules/<set>` and `traces/<set>_trace`): our
//!    classifier (`RuleSet`, the same code the stage runs) over the trace's headers in bursts on
//!    one pinned core, after checking every header's answer against the trace's ground truth;
//!    then `dpdk-test-acl` on the same rule file and the same trace file (it reads the first five
//!    columns; a `--verbose=3` pass checks its answers against the trace too), once per
//!    algorithm, each peer run right after one of ours (ours, scalar, ours, sse, ...: on a noisy
//!    VM only same-moment ratios mean anything). An algorithm this CPU lacks is skipped. The
//!    set's ratio is the median of the same-moment ratios against the algorithm with the best
//!    median.
//! 2. **Updates** (sets of 5000 rules or more): delete one rule and add it back at its place,
//!    for rules spread over the list, each timed on its own (it includes publishing the new
//!    snapshot), against rte_acl's build time read from `dpdk-test-acl`'s own log lines (from
//!    the end of EAL start-up to the build's report: rule file, trace file and `rte_acl_build`).
//!    The trace is checked again after the updates.
//! 3. **The stage**: generator → firewall (a 10K set with its catch-all removed, plus two rules
//!    accepting the generated UDP flows and their replies, default drop, conntrack on) → sink
//!    on one core through the engine. Before the run the stage's own packet path fills the
//!    connection table: each generated flow's packet, its reply (the same packet with addresses
//!    and ports swapped) and the packet again, so every connection is established and both
//!    directions' verdicts are in the flow cache; no packet may be dropped there.
//!
//! The headline (`ours_mpps`, `ratio`) summarises part 1 over the sets: the geometric mean, or
//! the worst set with `--headline worst` (the configuration JSON says which).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, ValueEnum};

use bench::gen::{GenConfig, Generator, Proto, Size, Spread};
use bench::results::{Peer, Row};
use dataplane::engine::chain::ChainRunner;
use dataplane::stage::Stage;
use dataplane::stages::firewall::classifier::{Hit, RuleSet, Snapshot};
use dataplane::stages::firewall::conntrack::Timeouts;
use dataplane::stages::firewall::rules::{ct, parse_rules, v4, Action, Format, PacketKey, Rule};
use dataplane::stages::firewall::{Firewall, Settings};
use dataplane::stages::forward::Forward;
use pmd::port::Port;
use pmd::Burst;

use super::{median, Res};

/// How the headline figure summarises the sets.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headline {
    /// Geometric mean over the sets (of our rate, and of the per-set ratios).
    Geomean,
    /// The set with the lowest ratio (its rate and ratio).
    Worst,
}

/// Options of `bench firewall`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// ClassBench sets (NSLab names: rules/<set> and traces/<set>_trace).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "acl1_1K,fw1_1K,ipc1_1K,acl1_10K,fw1_10K,ipc1_10K"
    )]
    sets: Vec<String>,
    /// dpdk-test-acl algorithms to try; those this CPU lacks are skipped, the best is compared.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "scalar,sse,avx2,avx512x16,avx512x32"
    )]
    algs: Vec<String>,
    /// Rounds per set; each round runs ours and the peer once per algorithm, interleaved.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of each classification run (ours; the peer's passes are sized to about this).
    #[arg(long, default_value_t = 2.0)]
    secs: f64,
    /// Headers per classification call, ours and dpdk-test-acl's `--tracestep`.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Core for our runs, the peer's lcore and the stage's worker.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Skip dpdk-test-acl.
    #[arg(long)]
    no_peer: bool,
    /// Rules deleted and added back, one at a time, per set of 5000 rules or more.
    #[arg(long, default_value_t = 200)]
    updates: usize,
    /// What the headline (`ours_mpps`, `ratio`) is.
    #[arg(long, value_enum, default_value_t = Headline::Geomean)]
    headline: Headline,
    /// The corpus directory (holding classbench/); default `$DATAPLANE_CORPUS`, else
    /// `../shared/corpus` beside the workspace.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Seconds of the stage run (generator → firewall → sink); 0 skips it.
    #[arg(long, default_value_t = 5.0)]
    stage_secs: f64,
    /// Rule set of the stage run.
    #[arg(long, default_value = "acl1_10K")]
    stage_set: String,
    /// Connections the stage tracks (made by its own packet path before the run).
    #[arg(long, default_value_t = 1_000_000)]
    conns: u32,
    /// Flows the generator sends in the stage run (at most `--conns`; default all of them).
    #[arg(long)]
    flows: Option<u32>,
    /// Frame size of the stage run.
    #[arg(long, default_value_t = 64)]
    size: u16,
}

/// The classify methods `dpdk-test-acl --alg` knows (DPDK 22.11).
const ALGS: [&str; 7] = [
    "scalar",
    "sse",
    "avx2",
    "neon",
    "altivec",
    "avx512x16",
    "avx512x32",
];

/// Sets of at least this many rules get the update measurement.
const UPDATE_MIN_RULES: usize = 5000;

/// Longest a `dpdk-test-acl` run may take before it is stopped.
const PEER_TIMEOUT: Duration = Duration::from_secs(600);

// ---------------------------------------------------------------------------------------------
// The corpus.

fn corpus_dir(a: &Args) -> Res<PathBuf> {
    let base = a
        .corpus
        .clone()
        .or_else(|| std::env::var_os("DATAPLANE_CORPUS").map(PathBuf::from))
        .unwrap_or_else(|| bench::results::root().join("../shared/corpus"));
    let dir = base.join("classbench/nslab_pc_plat");
    if dir.join("rules").is_dir() && dir.join("traces").is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "no ClassBench corpus at {} (its rules/ and traces/): the firewall benchmark needs \
             the NSLab sets of ../shared/corpus/classbench; set DATAPLANE_CORPUS or --corpus to \
             the directory holding classbench/",
            dir.display()
        ))
    }
}

/// One ClassBench set: its rules, and its trace's headers with the rule each must hit.
struct Set {
    rules_path: PathBuf,
    trace_path: PathBuf,
    rules: Vec<Rule>,
    keys: Vec<PacketKey>,
    want: Vec<u32>,
}

fn load_rules(path: &Path) -> Res<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rules = parse_rules(
        &path.display().to_string(),
        &text,
        Format::ClassBench,
        &|_| None,
    )
    .map_err(|e| e.to_string())?;
    if rules.is_empty() {
        return Err(format!("{}: no rules", path.display()));
    }
    Ok(rules)
}

fn load_set(dir: &Path, name: &str) -> Res<Set> {
    let rules_path = dir.join("rules").join(name);
    let trace_path = dir.join("traces").join(format!("{name}_trace"));
    let rules = load_rules(&rules_path)?;
    let text = std::fs::read_to_string(&trace_path)
        .map_err(|e| format!("cannot read {}: {e}", trace_path.display()))?;
    let mut keys = Vec::new();
    let mut want = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{}:{}: {why}", trace_path.display(), i + 1);
        let f: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("expected six decimal numbers"))?;
        if f.len() != 6 || f[0] > u32::MAX.into() || f[1] > u32::MAX.into() {
            return Err(bad(
                "expected `src dst sport dport proto rule` (six numbers)",
            ));
        }
        let (Ok(sport), Ok(dport), Ok(proto), Ok(rule)) = (
            u16::try_from(f[2]),
            u16::try_from(f[3]),
            u8::try_from(f[4]),
            u32::try_from(f[5]),
        ) else {
            return Err(bad("a field is out of range"));
        };
        keys.push(PacketKey {
            src: v4((f[0] as u32).to_be_bytes()),
            dst: v4((f[1] as u32).to_be_bytes()),
            sport,
            dport,
            proto,
            has_ports: true,
            ct: ct::NEW,
            ..Default::default()
        });
        want.push(rule);
    }
    if keys.is_empty() {
        return Err(format!("{}: no headers", trace_path.display()));
    }
    Ok(Set {
        rules_path,
        trace_path,
        rules,
        keys,
        want,
    })
}

// ---------------------------------------------------------------------------------------------
// Ours.

/// Classifies all of `keys` in bursts; the number of answers that differ from `want`.
fn wrong_answers(snap: &Snapshot, keys: &[PacketKey], want: &[u32], burst: usize) -> usize {
    let mut out: Vec<Option<Hit>> = vec![None; burst];
    let mut todo: Vec<u16> = Vec::with_capacity(burst);
    let mut bad = 0;
    for (c, w) in keys.chunks(burst).zip(want.chunks(burst)) {
        todo.extend(0..c.len() as u16);
        snap.v4.classify_burst(c, &mut todo, &mut out[..c.len()]);
        bad += out[..c.len()]
            .iter()
            .zip(w)
            .filter(|(h, w)| h.map(|h| h.id) != Some(**w))
            .count();
    }
    bad
}

/// One timed run: passes over `keys` in bursts for at least `secs` on `core`.
/// (M classifications per second, TSC cycles per classification.)
fn ours_rate(
    snap: &Snapshot,
    keys: &[PacketKey],
    burst: usize,
    secs: f64,
    core: usize,
) -> Res<(f64, f64)> {
    std::thread::scope(|s| {
        s.spawn(|| -> Res<(f64, f64)> {
            pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))?;
            let mut out: Vec<Option<Hit>> = vec![None; burst];
            let mut todo: Vec<u16> = Vec::with_capacity(burst);
            let limit = Duration::from_secs_f64(secs);
            let mut n = 0u64;
            let t0 = Instant::now();
            let c0 = pmd::cpu::rdtsc();
            loop {
                for c in keys.chunks(burst) {
                    todo.extend(0..c.len() as u16);
                    snap.v4.classify_burst(c, &mut todo, &mut out[..c.len()]);
                    std::hint::black_box(&mut out);
                }
                n += keys.len() as u64;
                if t0.elapsed() >= limit {
                    break;
                }
            }
            let cycles = pmd::cpu::rdtsc().wrapping_sub(c0);
            let dt = t0.elapsed().as_secs_f64();
            Ok((n as f64 / dt / 1e6, cycles as f64 / n as f64))
        })
        .join()
        .map_err(|_| "classification thread panicked".to_string())?
    })
}

/// Single-rule updates: `count` rules spread over the list (never the last), each deleted and
/// then added back before its successor. Microseconds per delete and per add; the set holds
/// the same rules in the same order afterwards.
fn time_updates(rs: &RuleSet, count: usize) -> Res<(Vec<f64>, Vec<f64>)> {
    let rules = rs.rules();
    if rules.len() < 2 {
        return Ok((Vec::new(), Vec::new()));
    }
    let count = count.clamp(1, rules.len() - 1);
    let mut del = Vec::with_capacity(count);
    let mut add = Vec::with_capacity(count);
    for k in 0..count {
        let i = k * (rules.len() - 1) / count;
        let (r, next) = (rules[i], rules[i + 1].id);
        let t = Instant::now();
        rs.delete(r.id)
            .map_err(|e| format!("delete rule {}: {e}", r.id))?;
        del.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        rs.add(r, Some(next))
            .map_err(|e| format!("add rule {}: {e}", r.id))?;
        add.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((del, add))
}

// ---------------------------------------------------------------------------------------------
// The peer: dpdk-test-acl.

/// What one `dpdk-test-acl` run printed.
#[derive(Debug, Clone, Default)]
struct PeerRun {
    /// Million classifications per second.
    mps: f64,
    /// Cycles per classification, as it printed them.
    cycles: f64,
    /// Seconds from the end of EAL start-up to rte_acl's build report (rule and trace files
    /// read, `rte_acl_build`), from the arrival times of its log lines.
    build_secs: Option<f64>,
    /// rte_acl's runtime memory (`total: N bytes`).
    runtime_bytes: Option<u64>,
    /// Memory the build used (`memory consumed: N`).
    build_bytes: Option<u64>,
    /// Tries it built.
    tries: Option<u64>,
    /// With `--verbose=3`: the result per header (rule index from 0).
    results: Vec<u32>,
}

/// Why a peer run gave nothing.
enum PeerErr {
    /// The algorithm is not available on this CPU (or in this build).
    Unsupported(String),
    /// Anything else.
    Failed(String),
}

fn hugepages_free() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    s.lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The number just before `unit` in `line` (`... 63.17 cycles/pkt, ...`).
fn number_before(line: &str, unit: &str) -> Option<f64> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

fn number_after(line: &str, prefix: &str) -> Option<u64> {
    line.trim()
        .strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The exact command, with `PREFIX` standing for the per-run file prefix.
#[allow(clippy::too_many_arguments)]
fn peer_args(
    set: &Set,
    alg: &str,
    core: usize,
    iter: u64,
    burst: usize,
    verbose: bool,
    prefix: &str,
) -> Vec<String> {
    vec![
        "-l".into(),
        core.to_string(),
        "-n".into(),
        "1".into(),
        "--no-pci".into(),
        "--in-memory".into(),
        "--file-prefix".into(),
        prefix.into(),
        "--force-max-simd-bitwidth=512".into(),
        "--log-level=lib.acl:debug".into(),
        "--".into(),
        format!("--rulesf={}", set.rules_path.display()),
        format!("--tracef={}", set.trace_path.display()),
        format!("--tracenum={}", set.keys.len()),
        "--rulenum=65536".into(),
        format!("--iter={iter}"),
        format!("--tracestep={burst}"),
        format!("--verbose={}", if verbose { 3 } else { 0 }),
        format!("--alg={alg}"),
    ]
}

static PEER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// Runs `dpdk-test-acl` once, timestamping each output line as it arrives.
fn run_test_acl(
    set: &Set,
    alg: &str,
    core: usize,
    iter: u64,
    burst: usize,
    verbose: bool,
) -> Result<PeerRun, PeerErr> {
    let prefix = format!(
        "fwbench{}_{}",
        std::process::id(),
        PEER_RUNS.fetch_add(1, Ordering::Relaxed)
    );
    // Through `sh` only to merge its stderr into its stdout, so every line gets its time.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("command -v dpdk-test-acl >/dev/null || exit 127; exec dpdk-test-acl \"$@\" 2>&1")
        .arg("sh")
        .args(peer_args(set, alg, core, iter, burst, verbose, &prefix))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PeerErr::Failed(format!("cannot run sh for dpdk-test-acl: {e}")))?;
    let t0 = Instant::now();
    let Some(reader) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(PeerErr::Failed("no pipe from dpdk-test-acl".into()));
    };
    let lines = std::thread::spawn(move || {
        let mut v: Vec<(f64, String)> = Vec::new();
        for l in BufReader::new(reader).lines() {
            let Ok(l) = l else { break };
            v.push((t0.elapsed().as_secs_f64(), l));
        }
        v
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if t0.elapsed() > PEER_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "dpdk-test-acl did not finish within {} s (stopped)",
                    PEER_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("waiting for dpdk-test-acl: {e}")),
        }
    };
    let lines = lines.join().unwrap_or_default();
    // EAL leaves its runtime directory behind even with --in-memory.
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&prefix));
    let status = status.map_err(PeerErr::Failed)?;
    if status.code() == Some(127) {
        return Err(PeerErr::Failed(
            "dpdk-test-acl is not installed (Debian's dpdk package; scripts/setup.sh)".into(),
        ));
    }
    let text = || {
        let all: Vec<&str> = lines
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| !l.starts_with("ipv4_5tuple:"))
            .collect();
        all[all.len().saturating_sub(20)..].join("\n")
    };
    let search = lines
        .iter()
        .find(|(_, l)| l.contains("search_ip5tuples") && l.contains("pkt/sec"));
    let Some((_, search)) = search.filter(|_| status.success()) else {
        let t = text();
        return Err(
            if t.contains("failed to setup") || t.contains("not supported") {
                PeerErr::Unsupported(t)
            } else {
                PeerErr::Failed(format!(
                    "dpdk-test-acl --alg={alg} failed ({status}); its output ends:\n{t}"
                ))
            },
        );
    };
    let mut r = PeerRun {
        mps: number_before(search, "pkt/sec").unwrap_or(0.0) / 1e6,
        cycles: number_before(search, "cycles/pkt").unwrap_or(0.0),
        ..PeerRun::default()
    };
    let built = lines
        .iter()
        .find(|(_, l)| l.starts_with("ACL:"))
        .map(|(t, _)| *t);
    let eal_end = built.and_then(|b| {
        lines
            .iter()
            .rev()
            .filter(|(t, l)| *t <= b && (l.starts_with("TELEMETRY:") || l.starts_with("EAL:")))
            .map(|(t, _)| *t)
            .next()
    });
    if let (Some(a), Some(b)) = (eal_end, built) {
        r.build_secs = Some(b - a);
    }
    for (_, l) in &lines {
        if r.runtime_bytes.is_none() {
            r.runtime_bytes = number_after(l, "total:");
        }
        if r.build_bytes.is_none() {
            r.build_bytes = number_after(l, "memory consumed:");
        }
        if l.trim().starts_with("num_tries=") {
            r.tries = l.trim()["num_tries=".len()..].parse().ok();
        }
        if verbose && l.starts_with("ipv4_5tuple:") {
            if let Some(v) = l
                .rsplit("result:")
                .next()
                .and_then(|v| v.trim().parse().ok())
            {
                r.results.push(v);
            }
        }
    }
    if r.mps <= 0.0 {
        return Err(PeerErr::Failed(format!(
            "cannot read the rate from dpdk-test-acl's line {search:?}"
        )));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Part 1 and 2: one set.

/// The peer's best algorithm for a set: (name, median M/s, median cycles per classification,
/// median same-moment ratio ours/its).
type Best<'a> = (&'a str, f64, f64, f64);

/// What one set gave.
struct SetResult {
    name: String,
    rules: usize,
    headers: usize,
    tables: usize,
    ours: Vec<f64>,
    ours_cycles: Vec<f64>,
    ours_bytes: usize,
    index_bytes: usize,
    ours_build_ms: f64,
    /// Per algorithm: runs and same-moment ratios.
    peer: BTreeMap<String, (Vec<PeerRun>, Vec<f64>)>,
    peer_check: Option<String>,
    updates: Option<(Vec<f64>, Vec<f64>)>,
    after_updates_wrong: usize,
}

impl SetResult {
    fn ours_m(&self) -> f64 {
        median(&self.ours)
    }

    /// The algorithm with the best median, its median rate, cycles and the pair ratio.
    fn best(&self) -> Option<Best<'_>> {
        self.peer
            .iter()
            .filter(|(_, (runs, _))| !runs.is_empty())
            .map(|(alg, (runs, pairs))| {
                let m = median(&runs.iter().map(|r| r.mps).collect::<Vec<_>>());
                let c = median(&runs.iter().map(|r| r.cycles).collect::<Vec<_>>());
                (alg.as_str(), m, c, median(pairs))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    fn peer_build_secs(&self) -> Option<f64> {
        let v: Vec<f64> = self
            .peer
            .values()
            .flat_map(|(runs, _)| runs.iter().filter_map(|r| r.build_secs))
            .collect();
        (!v.is_empty()).then(|| median(&v))
    }

    fn peer_first(&self) -> Option<&PeerRun> {
        self.peer.values().find_map(|(runs, _)| runs.first())
    }
}

/// The peer's state across sets: which algorithms work, the iteration count per set and alg.
struct PeerState {
    enabled: bool,
    why_not: Option<String>,
    unsupported: Vec<String>,
    /// Estimated classifications per second per (set, alg), to size `--iter`.
    rate: BTreeMap<(String, String), f64>,
}

fn iters_for(rate: f64, secs: f64, trace: usize) -> u64 {
    ((rate * secs / trace as f64).ceil() as u64).clamp(1, 1_000_000)
}

fn run_set(a: &Args, dir: &Path, name: &str, peer: &mut PeerState) -> Res<SetResult> {
    let set = load_set(dir, name)?;
    let t = Instant::now();
    let rs = RuleSet::new(&set.rules).map_err(|e| format!("{name}: {e}"))?;
    let ours_build_ms = t.elapsed().as_secs_f64() * 1e3;
    let snap = rs.snapshot();
    let wrong = wrong_answers(&snap, &set.keys, &set.want, a.burst);
    if wrong != 0 {
        return Err(format!(
            "{name}: our classifier gave {wrong} of {} trace headers a rule other than the trace's",
            set.keys.len()
        ));
    }
    println!(
        "{name}: {} rules, {} headers; ours: {} trees/tables, {:.2} MiB (+ {:.2} MiB writer index), built in {ours_build_ms:.1} ms, every header's rule right",
        set.rules.len(),
        set.keys.len(),
        snap.v4.tables(),
        snap.memory_bytes() as f64 / 1048576.0,
        rs.index_bytes() as f64 / 1048576.0
    );
    let mut r = SetResult {
        name: name.into(),
        rules: set.rules.len(),
        headers: set.keys.len(),
        tables: snap.v4.tables(),
        ours: Vec::new(),
        ours_cycles: Vec::new(),
        ours_bytes: snap.memory_bytes(),
        index_bytes: rs.index_bytes(),
        ours_build_ms,
        peer: BTreeMap::new(),
        peer_check: None,
        updates: None,
        after_updates_wrong: 0,
    };
    // The peer's answers against the trace, once per set (also warms the files' page cache).
    if peer.enabled {
        let alg = a
            .algs
            .iter()
            .find(|x| !peer.unsupported.contains(x))
            .cloned();
        if let Some(alg) = alg {
            match run_test_acl(&set, &alg, a.core, 1, a.burst, true) {
                Ok(p) => {
                    let bad = set
                        .want
                        .iter()
                        .zip(&p.results)
                        .filter(|(w, g)| **g + 1 != **w)
                        .count();
                    let msg = format!(
                        "dpdk-test-acl --alg={alg} agreed with the trace on {} of {} headers",
                        p.results.len().min(set.want.len()) - bad,
                        set.want.len()
                    );
                    println!("  peer check: {msg}");
                    r.peer_check = Some(msg);
                }
                Err(PeerErr::Unsupported(_)) => {}
                Err(PeerErr::Failed(e)) => {
                    println!("  peer: not run: {e}");
                    peer.enabled = false;
                    peer.why_not = Some(e);
                }
            }
        }
    }
    for round in 0..a.runs {
        let algs: Vec<Option<&String>> = if peer.enabled {
            a.algs
                .iter()
                .filter(|x| !peer.unsupported.contains(x))
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        for alg in algs {
            let (m, c) = ours_rate(&snap, &set.keys, a.burst, a.secs, a.core)?;
            r.ours.push(m);
            r.ours_cycles.push(c);
            let Some(alg) = alg.filter(|_| peer.enabled) else {
                println!("  round {}: ours {m:.2} M/s ({c:.0} cycles)", round + 1);
                continue;
            };
            let key = (name.to_string(), alg.clone());
            let est = peer.rate.get(&key).copied().unwrap_or(10e6);
            let iter = iters_for(est, a.secs, set.keys.len());
            match run_test_acl(&set, alg, a.core, iter, a.burst, false) {
                Ok(p) => {
                    println!(
                        "  round {}: ours {m:.2} M/s ({c:.0} cycles) | dpdk-test-acl {alg:<9} {:.2} M/s ({:.0} cycles, build {}) | pair ratio {:.3}",
                        round + 1,
                        p.mps,
                        p.cycles,
                        p.build_secs.map_or("?".into(), |b| format!("{b:.2} s")),
                        m / p.mps
                    );
                    peer.rate.insert(key, p.mps * 1e6);
                    let e = r.peer.entry(alg.clone()).or_default();
                    e.1.push(m / p.mps);
                    e.0.push(p);
                }
                Err(PeerErr::Unsupported(why)) => {
                    println!(
                        "  dpdk-test-acl --alg={alg}: not available on this CPU, skipped ({})",
                        why.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .unwrap_or("")
                            .trim()
                    );
                    peer.unsupported.push(alg.clone());
                }
                Err(PeerErr::Failed(e)) => {
                    println!("  peer: not run: {e}");
                    peer.enabled = false;
                    peer.why_not = Some(e);
                }
            }
        }
    }
    if set.rules.len() >= UPDATE_MIN_RULES && a.updates > 0 {
        let (del, add) = time_updates(&rs, a.updates)?;
        let snap = rs.snapshot();
        r.after_updates_wrong = wrong_answers(&snap, &set.keys, &set.want, a.burst);
        println!(
            "  updates: {} deletes median {:.1} µs (max {:.1}), {} adds median {:.1} µs (max {:.1}); trace after them: {} wrong",
            del.len(),
            median(&del),
            del.iter().copied().fold(0.0, f64::max),
            add.len(),
            median(&add),
            add.iter().copied().fold(0.0, f64::max),
            r.after_updates_wrong
        );
        if r.after_updates_wrong != 0 {
            return Err(format!(
                "{name}: after {} single-rule updates {} trace headers got the wrong rule",
                del.len(),
                r.after_updates_wrong
            ));
        }
        r.updates = Some((del, add));
    }
    Ok(r)
}

fn mib(b: f64) -> f64 {
    b / 1048576.0
}

fn goal(ok: bool) -> &'static str {
    if ok {
        "goal met"
    } else {
        "goal NOT met"
    }
}

/// The rows of one set.
fn set_rows(s: &SetResult, hz: u64) -> Vec<Row> {
    let mut rows = Vec::new();
    let best = s.best();
    let ours = s.ours_m();
    let peer_mem = s.peer_first().and_then(|p| p.runtime_bytes);
    let others: Vec<String> = s
        .peer
        .iter()
        .filter(|(_, (runs, _))| !runs.is_empty())
        .map(|(alg, (runs, _))| {
            format!(
                "{alg} {:.2}",
                median(&runs.iter().map(|r| r.mps).collect::<Vec<_>>())
            )
        })
        .collect();
    let mut note = format!(
        "{} rules, {}-header trace, {} trees/tables; cycles per classification: ours {:.0} (TSC {:.2} GHz)",
        s.rules,
        s.headers,
        s.tables,
        median(&s.ours_cycles),
        hz as f64 / 1e9
    );
    if let Some((_, _, c, _)) = best {
        note += &format!(", peer {c:.0}");
    }
    note += &format!("; memory: ours {:.2} MiB", mib(s.ours_bytes as f64));
    if let Some(pm) = peer_mem {
        note += &format!(", rte_acl {:.2} MiB", mib(pm as f64));
    }
    if !others.is_empty() {
        note += &format!("; dpdk-test-acl M/s by algorithm: {}", others.join(", "));
    }
    if let Some(c) = &s.peer_check {
        note += &format!("; {c}");
    }
    if let Some((_, _, _, ratio)) = best {
        let mem_ok = peer_mem.is_some_and(|pm| (s.ours_bytes as u64) < pm);
        note += &format!(
            "; {} (≥ 1.0x and less memory)",
            goal(ratio >= 1.0 && mem_ok)
        );
    }
    rows.push(Row {
        what: format!("{}: classifications per second per core", s.name),
        unit: "M/s".into(),
        ours,
        peer: best.map(|b| b.1),
        peer_tool: best.map(|b| format!("dpdk-test-acl --alg={}", b.0)),
        ratio: best.map(|b| b.3),
        note: Some(note),
    });
    rows.push(Row {
        what: format!("{}: classifier memory", s.name),
        unit: "MiB".into(),
        ours: mib(s.ours_bytes as f64),
        peer: peer_mem.map(|p| mib(p as f64)),
        peer_tool: peer_mem.map(|_| "rte_acl runtime (`total:` of its build log)".into()),
        ratio: peer_mem.map(|p| p as f64 / s.ours_bytes.max(1) as f64),
        note: Some(format!(
            "ours: the snapshot workers read (tree nodes, leaves and their rule entries; \
             tuple-space tables, buckets, rules; estimated from capacities), \
             plus {:.2} MiB of writer index on the control side; rte_acl's build used {} transiently{}",
            mib(s.index_bytes as f64),
            s.peer_first()
                .and_then(|p| p.build_bytes)
                .map_or("?".into(), |b| format!("{:.0} MiB", mib(b as f64))),
            s.peer_first()
                .and_then(|p| p.tries)
                .map_or(String::new(), |t| format!(", {t} tries"))
        )),
    });
    if let Some((del, add)) = &s.updates {
        let build_us = s.peer_build_secs().map(|b| b * 1e6);
        for (what, v) in [("delete one rule", del), ("add one rule", add)] {
            let m = median(v);
            let max = v.iter().copied().fold(0.0, f64::max);
            let ratio = build_us.map(|b| b / m.max(1e-3));
            rows.push(Row {
                what: format!("{}: {what} ({} rules)", s.name, s.rules),
                unit: "µs".into(),
                ours: m,
                peer: build_us,
                peer_tool: build_us.map(|_| "rte_acl full rebuild (dpdk-test-acl)".into()),
                ratio,
                note: Some(format!(
                    "median of {} single-rule updates spread over the list (max {max:.1} µs), each \
                     publishing a new snapshot; rte_acl: median of its runs from EAL up to its \
                     build report (rule and trace files read, rte_acl_build); our full build: \
                     {:.1} ms{}",
                    v.len(),
                    s.ours_build_ms,
                    ratio.map_or(String::new(), |r| format!(
                        "; {} (≥ 1000x)",
                        goal(r >= 1000.0)
                    ))
                )),
            });
        }
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Part 3: the stage.

/// What the stage run gave.
struct StageResult {
    trial: super::Trial,
    rules: usize,
    conns: usize,
    flows: u32,
    ct_bytes: usize,
    gen_cycles: f64,
    warm: String,
    config: serde_json::Value,
}

fn stage_gen(a: &Args, flows: u32) -> GenConfig {
    GenConfig {
        proto: Proto::Udp,
        ipv6: false,
        vlan: None,
        size: Size::Fixed(a.size),
        flows,
        spread: Spread::Uniform,
        src_ips: 1024,
        dst_ips: 1,
        rate_pps: None,
        limit: None,
        fill_payload: false,
        max_table_bytes: 256 << 10,
        seed: 1,
    }
}

/// Swaps the addresses and the ports of the generator's IPv4/UDP packets: the reply. Both
/// checksums stay valid (a one's complement sum does not depend on the order).
fn reverse(b: &mut Burst, l3: usize, l4: usize) {
    for m in b.as_mut_slice() {
        let d = m.data_mut();
        if d.len() < l4 + 4 {
            continue;
        }
        for i in 0..4 {
            d.swap(l3 + 12 + i, l3 + 16 + i);
        }
        d.swap(l4, l4 + 2);
        d.swap(l4 + 1, l4 + 3);
    }
}

fn counter(st: &dyn Stage, name: &str) -> u64 {
    st.counters()
        .into_iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, v)| v)
}

/// Fills the stage's connection table through its own packet path: per burst of generated
/// packets, the packets, their replies, and the packets again. Returns a summary line.
fn warm(
    stages: &mut [Box<dyn Stage>],
    g: &GenConfig,
    conns: usize,
    burst: usize,
    core: usize,
    gen_rules: (u32, u32),
) -> Res<String> {
    pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))?;
    let pool = super::pool()?;
    let mut cache = pool.cache();
    let mut gen = Generator::new("warm", 0, g)?;
    let lay = gen.layout();
    let mut runner = ChainRunner::new(stages.len());
    let clock = pmd::cpu::TscClock::new(pmd::cpu::unix_ns());
    let mut b = Burst::new();
    let mut leaving = Burst::new();
    let t0 = Instant::now();
    let mut pulled = 0u64;
    let mut bursts = 0u64;
    let cap = conns as u64 * 8 + 65536;
    let mut made = 0;
    while made < conns {
        if pulled > cap {
            return Err(format!(
                "warm-up: {pulled} packets made only {made} of {conns} connections"
            ));
        }
        let n = gen
            .rx_burst(0, &mut cache, &mut b, burst)
            .map_err(|e| e.to_string())?;
        pulled += n as u64;
        for pass in 0..3 {
            if pass > 0 {
                reverse(&mut b, lay.l3, lay.l4);
            }
            runner.run(clock.now(), 0, stages, &mut b, &mut leaving, &mut cache, 2);
            cache.free_burst(&mut leaving);
        }
        cache.free_burst(&mut b);
        bursts += 1;
        if bursts.is_multiple_of(16) {
            made = stages
                .first()
                .map_or(0, |s| counter(s.as_ref(), "ct_entries")) as usize;
        }
    }
    let dropped = runner.stage_drop_total() + runner.drops.total();
    if dropped != 0 {
        return Err(format!(
            "warm-up: the firewall dropped {dropped} of {} packets (the generated flows must pass)",
            runner.processed
        ));
    }
    let c = stages.first().map_or_else(Vec::new, |s| s.counters());
    let get = |n: &str| c.iter().find(|(k, _)| k == n).map_or(0, |(_, v)| *v);
    let by_gen = get(&format!("rule.{}.packets", gen_rules.0))
        + get(&format!("rule.{}.packets", gen_rules.1));
    let classified = get("classified");
    Ok(format!(
        "{made} connections made and established by the stage itself in {:.1} s ({pulled} generated packets, each sent, answered and sent again: {} packets, none dropped; {classified} classified and {} taken from the flow cache; {} decided by the two generator rules, the rest by ClassBench rules)",
        t0.elapsed().as_secs_f64(),
        runner.processed,
        get("flow_cache_hits"),
        by_gen
    ))
}

fn run_stage(a: &Args, dir: &Path) -> Res<StageResult> {
    let path = dir.join("rules").join(&a.stage_set);
    let mut rules = load_rules(&path)?;
    let catch_all = rules.last().is_some_and(|r| {
        r.src_len == 0
            && r.dst_len == 0
            && r.sport == (0, 65535)
            && r.dport == (0, 65535)
            && r.proto.1 == 0
    });
    if catch_all {
        rules.pop();
    }
    let n = rules.iter().map(|r| r.id).max().unwrap_or(0);
    let gen_rules = (n + 1, n + 2);
    // The generator sends UDP from 10.0.x.y to 192.168.0.1 port 53; these accept it and the
    // replies, after every ClassBench rule (so a packet no ClassBench rule takes walks them all).
    rules.push(Rule {
        id: gen_rules.0,
        src: v4([10, 0, 0, 0]),
        src_len: 8,
        dst: v4([192, 168, 0, 0]),
        dst_len: 16,
        v6: Some(false),
        dport: (53, 53),
        proto: (17, 0xff),
        action: Action::Accept,
        ..Rule::default()
    });
    rules.push(Rule {
        id: gen_rules.1,
        src: v4([192, 168, 0, 0]),
        src_len: 16,
        dst: v4([10, 0, 0, 0]),
        dst_len: 8,
        v6: Some(false),
        sport: (53, 53),
        proto: (17, 0xff),
        action: Action::Accept,
        ..Rule::default()
    });
    let rs = RuleSet::new(&rules).map_err(|e| e.to_string())?;
    let conns = a.conns.max(1);
    let flows = a.flows.unwrap_or(conns).clamp(1, conns);
    let hour = 3600 * 1_000_000_000;
    let settings = Settings {
        default: Action::Drop,
        conntrack: true,
        conntrack_capacity: conns as usize + conns as usize / 8 + 1024,
        early_drop: false,
        timeouts: Timeouts {
            udp: hour,
            udp_stream: hour,
            ..Timeouts::default()
        },
        ..Settings::default()
    };
    let fw = Firewall::new(rs.clone(), settings.clone());
    let ct_bytes = fw.conntrack().map_or(0, |t| t.memory_bytes());
    let ct_cap = fw.conntrack().map_or(0, |t| t.capacity());
    let warm_cfg = stage_gen(a, conns);
    let run_cfg = stage_gen(a, flows);
    let (frames, table) = super::describe_gen(&run_cfg)?;
    println!(
        "stage: generator UDP/IPv4 {} ({frames:?} in buffers), {flows} flows (uniform; of the {conns} connections) → firewall ({} rules: {} {} with its catch-all {}, then 2 accepting the generated flows and their replies; default drop; conntrack capacity {ct_cap}, {:.0} MiB; UDP timeouts 1 h) → sink, burst {}, core {}, {} s",
        super::size_label(run_cfg.size),
        rules.len(),
        rules.len() - 2,
        a.stage_set,
        if catch_all { "removed" } else { "(none found)" },
        mib(ct_bytes as f64),
        a.burst,
        a.core,
        a.stage_secs
    );
    // The firewall sets no egress port: a forward stage sends what it accepts to the sink.
    let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(fw), Box::new(Forward::new(&[(0, 1)]))];
    let warm_msg = std::thread::scope(|s| {
        s.spawn(|| {
            warm(
                &mut stages,
                &warm_cfg,
                conns as usize,
                a.burst,
                a.core,
                gen_rules,
            )
        })
        .join()
        .map_err(|_| "warm-up thread panicked".to_string())?
    })?;
    println!("  warm-up: {warm_msg}");
    let conns_made = stages
        .first()
        .map_or(0, |s| counter(s.as_ref(), "ct_entries")) as usize;
    let before = stages.first().map_or_else(Vec::new, |s| s.counters());
    // Hand the warmed stage to the engine (its chain closure may be called once); its
    // counters come back in the engine's report.
    let first = stages
        .first()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    let slot = Mutex::new(Some(stages));
    let calls = AtomicUsize::new(0);
    let chain = || -> Vec<Box<dyn Stage>> {
        calls.fetch_add(1, Ordering::Relaxed);
        slot.lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_default()
    };
    let trial = super::run_direct(&run_cfg, &chain, a.burst, a.core, a.stage_secs)?;
    if calls.load(Ordering::Relaxed) != 1 {
        return Err("the engine built the chain more than once; the warmed firewall went to one worker only".into());
    }
    let after: Vec<(String, u64)> = trial
        .report
        .as_ref()
        .and_then(|r| r.workers.first())
        .and_then(|w| w.stages.iter().find(|(n, _)| *n == first))
        .map(|(_, c)| c.clone())
        .ok_or("the engine's report has no counters of the firewall stage")?;
    let delta = |n: &str| {
        let get = |c: &[(String, u64)]| c.iter().find(|(k, _)| k == n).map_or(0, |(_, v)| *v);
        get(&after).saturating_sub(get(&before))
    };
    let run_msg = format!(
        "in the run: {} packets from the flow cache, {} classified, {} new connections; {} tracked at the end",
        delta("flow_cache_hits"),
        delta("classified"),
        delta("ct_created"),
        after
            .iter()
            .find(|(k, _)| k == "ct_entries")
            .map_or(0, |(_, v)| *v)
    );
    println!("  {run_msg}");
    let (gen_cycles, _) = super::gen_cost(&run_cfg, a.burst, a.core)?;
    let config = serde_json::json!({
        "generator": super::gen_json(&run_cfg, &frames, table),
        "rules": { "set": a.stage_set, "classbench_rules": rules.len() - 2, "catch_all_removed": catch_all,
                   "generator_rules": 2, "default": "drop" },
        "conntrack": { "capacity": ct_cap, "connections": conns_made, "bytes": ct_bytes,
                       "udp_timeouts_s": 3600, "filled_by": "the stage's own packet path: packet, reply, packet per flow" },
        "flows": flows, "burst": a.burst, "worker_core": a.core, "secs": a.stage_secs,
        "buffers": super::BUFFERS,
    });
    Ok(StageResult {
        trial,
        rules: rules.len(),
        conns: conns_made,
        flows,
        ct_bytes,
        gen_cycles,
        warm: format!("{warm_msg}; {run_msg}"),
        config,
    })
}

// ---------------------------------------------------------------------------------------------
// The scenario.

fn geomean(v: &[f64]) -> f64 {
    if v.is_empty() || v.iter().any(|&x| x <= 0.0) {
        return 0.0;
    }
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// `bench firewall`.
pub fn run(a: &Args) -> Res<()> {
    let dir = corpus_dir(a)?;
    if a.sets.is_empty() {
        return Err("--sets is empty".into());
    }
    if a.burst == 0 || a.burst > pmd::BURST_MAX {
        return Err(format!(
            "--burst must be 1 to {} (the firewall's burst)",
            pmd::BURST_MAX
        ));
    }
    for s in a.sets.iter().chain([&a.stage_set]) {
        if !dir.join("rules").join(s).is_file() {
            return Err(format!(
                "no rule set {s} in {} (the NSLab sets are acl1, fw1, ipc1 with _100, _1K, _10K)",
                dir.join("rules").display()
            ));
        }
    }
    if let Some(x) = a.algs.iter().find(|x| !ALGS.contains(&x.as_str())) {
        return Err(format!(
            "--algs: {x:?} is not one of dpdk-test-acl's algorithms ({})",
            ALGS.join(", ")
        ));
    }
    let hz = pmd::cpu::tsc_hz();
    let runs = a.runs.max(1);
    let a = &Args { runs, ..a.clone() };
    super::print_machine();
    println!(
        "config: ClassBench {} from {}; ours: RuleSet (the stage's classifier) over each trace in bursts of {}, core {}, {} s per run; peer: dpdk-test-acl --tracestep={} -l {} on the same rule and trace files, algorithms {}, the best per set; {} rounds per set, ours before each peer run; single-rule updates: {} per set of ≥ {UPDATE_MIN_RULES} rules; headline: {}",
        a.sets.join(","),
        dir.display(),
        a.burst,
        a.core,
        a.secs,
        a.burst,
        a.core,
        if a.no_peer { "none (--no-peer)".to_string() } else { a.algs.join(",") },
        runs,
        a.updates,
        match a.headline {
            Headline::Geomean => "geometric mean over the sets",
            Headline::Worst => "the set with the lowest ratio",
        }
    );
    let mut peer = PeerState {
        enabled: !a.no_peer,
        why_not: a.no_peer.then(|| "peer skipped (--no-peer)".to_string()),
        unsupported: Vec::new(),
        rate: BTreeMap::new(),
    };
    if peer.enabled {
        match hugepages_free() {
            Some(f) if f >= 64 => {}
            f => {
                let e = format!(
                    "dpdk-test-acl needs free 2 MiB hugepages ({} free; run scripts/setup.sh as root)",
                    f.unwrap_or(0)
                );
                println!("peer: not run: {e}");
                peer.enabled = false;
                peer.why_not = Some(e);
            }
        }
    }
    let mut sets = Vec::new();
    for name in &a.sets {
        sets.push(run_set(a, &dir, name, &mut peer)?);
    }
    let stage = if a.stage_secs > 0.0 {
        Some(run_stage(a, &dir)?)
    } else {
        None
    };

    // Figures.
    let mut rows = Vec::new();
    for s in &sets {
        rows.extend(set_rows(s, hz));
    }
    let mut res_latency = None;
    let mut stage_json = serde_json::Value::Null;
    let mut gen_cycles = None;
    let mut stage_note = None;
    if let Some(st) = &stage {
        let mpps = st.trial.sink_mpps();
        let lat = st.trial.seen.summary(hz);
        let note = format!(
            "{} rules, {} connections tracked ({:.0} MiB), {} flows sent, all on one core with the generator ({:.1} cycles/packet of it) and the sink: {:.1} cycles/packet; {} offered, {} lost; latency {}; warm-up: {}",
            st.rules,
            st.conns,
            mib(st.ct_bytes as f64),
            st.flows,
            st.gen_cycles,
            hz as f64 / (mpps.max(1e-9) * 1e6),
            st.trial.offered,
            st.trial.lost(),
            lat.as_ref().map_or("-".into(), |l| format!(
                "median {:.0} ns, p99 {:.0} ns, p99.9 {:.0} ns",
                l.median_ns, l.p99_ns, l.p999_ns
            )),
            st.warm
        );
        println!(
            "stage: {mpps:.2} Mpps, {:.1} cycles/packet (generator {:.1} of them), {} offered, {} lost",
            hz as f64 / (mpps.max(1e-9) * 1e6),
            st.gen_cycles,
            st.trial.offered,
            st.trial.lost()
        );
        super::print_latency(&lat);
        rows.push(Row {
            what: format!(
                "firewall stage (+ forward), {} + 2 accept rules, {} established connections: Mpps on one core",
                a.stage_set, st.conns
            ),
            unit: "Mpps".into(),
            ours: mpps,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(note.clone()),
        });
        res_latency = lat;
        stage_json = st.config.clone();
        gen_cycles = Some(st.gen_cycles);
        stage_note = Some(note);
    }

    println!("figures:");
    for r in &rows {
        println!(
            "  {}: ours {:.2} {}{}{}",
            r.what,
            r.ours,
            r.unit,
            match (&r.peer_tool, r.peer) {
                (Some(t), Some(p)) => format!(", {t} {p:.2} {}", r.unit),
                _ => String::new(),
            },
            r.ratio.map_or(String::new(), |x| format!(", ratio {x:.3}"))
        );
    }

    // The headline over the sets.
    let with_peer: Vec<(&SetResult, Best)> = sets
        .iter()
        .filter_map(|s| s.best().map(|b| (s, b)))
        .collect();
    let ours_all: Vec<f64> = sets.iter().map(|s| s.ours_m()).collect();
    let mut res = super::base(
        "firewall",
        serde_json::json!({
            "sets": a.sets, "corpus": dir.display().to_string(),
            "rules": sets.iter().map(|s| (s.name.clone(), s.rules)).collect::<BTreeMap<_, _>>(),
            "trace_headers": sets.iter().map(|s| (s.name.clone(), s.headers)).collect::<BTreeMap<_, _>>(),
            "burst": a.burst, "core": a.core, "secs": a.secs, "runs": runs,
            "algs_tried": a.algs, "algs_unavailable": peer.unsupported,
            "updates_per_set": a.updates, "update_min_rules": UPDATE_MIN_RULES,
            "headline": match a.headline {
                Headline::Geomean => "geomean: ours_mpps is the geometric mean over the sets of our M classifications/s per core; ratio is the geometric mean of the per-set ratios (each the median of same-moment pairs against dpdk-test-acl's best algorithm for that set)",
                Headline::Worst => "worst: ours_mpps and ratio are those of the set with the lowest ratio (the median of its same-moment pairs against dpdk-test-acl's best algorithm)",
            },
            "runs_fields": "ours_runs_mpps / peer_runs_mpps / pair_ratios hold one value per set (medians), in the order of `sets`",
            "peer_command": format!("dpdk-test-acl {}", peer_args_display(a)),
            "stage": stage_json,
        }),
    );
    res.ours_runs_mpps = ours_all.clone();
    res.latency = res_latency;
    res.latency_note = stage_note.map(|_| {
        "from the stage run: generator → firewall → sink on one core, full rate".to_string()
    });
    res.gen_cycles_per_packet = gen_cycles;
    let (head_ours, head_ratio, head_peer) = match a.headline {
        Headline::Geomean => (
            geomean(&ours_all),
            (!with_peer.is_empty() && with_peer.len() == sets.len())
                .then(|| geomean(&with_peer.iter().map(|(_, b)| b.3).collect::<Vec<_>>())),
            geomean(&with_peer.iter().map(|(_, b)| b.1).collect::<Vec<_>>()),
        ),
        Headline::Worst => match with_peer
            .iter()
            .min_by(|x, y| x.1 .3.total_cmp(&y.1 .3))
            .filter(|_| with_peer.len() == sets.len())
        {
            Some((s, b)) => (s.ours_m(), Some(b.3), b.1),
            None => (
                ours_all.iter().copied().fold(f64::INFINITY, f64::min),
                None,
                0.0,
            ),
        },
    };
    res.ours_mpps = head_ours;
    res.mpps_per_core = Some(head_ours);
    res.cycles_per_packet = hz as f64 / (head_ours.max(1e-9) * 1e6);
    res.rows = rows;
    if let Some(ratio) = head_ratio {
        res.peer = Some(Peer {
            tool: "dpdk-test-acl (best algorithm per set), M classifications/s".into(),
            command: format!("dpdk-test-acl {}", peer_args_display(a)),
            mpps: head_peer,
        });
        res.peer_runs_mpps = with_peer.iter().map(|(_, b)| b.1).collect();
        res.pair_ratios = with_peer.iter().map(|(_, b)| b.3).collect();
        res.ratio = Some(ratio);
        let worst = with_peer
            .iter()
            .map(|(_, b)| b.3)
            .fold(f64::INFINITY, f64::min);
        println!(
            "classification: ours {head_ours:.2} M/s, dpdk-test-acl best {head_peer:.2} M/s ({}); worst set ratio {worst:.3}: {} (≥ 1.0x on every set)",
            match a.headline {
                Headline::Geomean => "geometric means over the sets",
                Headline::Worst => "the worst set",
            },
            goal(worst >= 1.0)
        );
    } else {
        res.ratio_note = Some(match &peer.why_not {
            Some(e) => format!("peer not run: {}", e.lines().next().unwrap_or("")),
            None => "dpdk-test-acl gave no figure for some set".into(),
        });
        println!("classification: ours {head_ours:.2} M/s (no peer figure for every set)");
    }
    super::finish(res)
}

fn peer_args_display(a: &Args) -> String {
    format!(
        "-l {} -n 1 --no-pci --in-memory --file-prefix X --force-max-simd-bitwidth=512 \
         --log-level=lib.acl:debug -- --rulesf=<corpus>/rules/SET --tracef=<corpus>/traces/SET_trace \
         --tracenum=<trace lines> --rulenum=65536 --iter=<sized to ~{} s> --tracestep={} --verbose=0 \
         --alg=ALG",
        a.core, a.secs, a.burst
    )
}
