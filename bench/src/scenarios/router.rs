//! `bench router`: the router's FIB on the full Internet table against `dpdk-test-fib`, and the
//! router stage's packet rate with that table.
//!
//! Why it exists: the router is the stage operators measure first, and the question the
//! project's issue asks is whether our LPM keeps up with DPDK's (`rte_fib` DIR-24-8 and
//! `rte_lpm` for IPv4, `rte_fib6` TRIE for IPv6) on the same prefixes, with less memory. Only a
//! same-run comparison means anything on a shared VM, so every figure here is a pair: ours, then
//! the peer, on the same core, the same prefixes and the same destination trace, repeated
//! `--runs` times (ours, peer, ours, peer...), and the ratio is the median of the pair ratios.
//!
//! What runs:
//!
//! * The table: `routes/bart_fulltable_v4v6_prefixes.txt.gz` from the corpus (`DATAPLANE_CORPUS`,
//!   default `<workspace>/../shared/corpus`, as `dataplane/tests/router_full_table.rs`), every
//!   prefix with one of 16 next hops (line number mod 16). The same prefixes and next hops are
//!   written to a scratch file as `prefix/len nexthop` for `dpdk-test-fib -f`.
//! * Traces: `--lookups` addresses, uniformly random over the whole IPv4 space, and drawn from
//!   the table (a prefix picked at random, random host bits), written for `dpdk-test-fib -t`.
//!   DPDK 22.11's test-fib reads IPv4 `-t` addresses in network byte order into a FIB keyed in
//!   host order (it looks `10.1.2.3` up as `3.2.1.10`; its own `-u` dump shows it), so the
//!   IPv4 trace is written octet-reversed to make it look up exactly our addresses.
//! * Lookups: ours is timed exactly as test-fib times itself: bulks of 64 (`--lookup-burst`),
//!   `mfence; rdtsc` before and after each bulk (`rte_rdtsc_precise`), cycles summed over one
//!   pass of the trace, one pinned core; both cycle counts become rates with the same TSC rate.
//!   test-fib is run with `-b dir -e 4` (and `-c`, which also builds `rte_lpm` from the same
//!   routes and times `rte_lpm_lookup_bulk` on the same trace) for IPv4 and `-6 -b trie -e 4`
//!   for IPv6, with EAL's `--force-max-simd-bitwidth=512` so it picks its AVX-512 lookup where
//!   the CPU has one. It is stopped once it has printed its lookup figures (the route deletes
//!   that follow take minutes for `rte_lpm` and measure nothing asked here).
//! * Memory: ours is the size of our tables; DPDK's is what its structures need for these
//!   prefixes: a 2^24-entry tbl24 of 4-byte entries (64 MiB) plus one 256-entry group (1 KiB)
//!   per tbl8 the prefixes need, counted from the prefixes as DIR-24-8 (`rte_fib` and `rte_lpm`
//!   alike) and the IPv6 TRIE lay them out; test-fib prints no memory figure.
//! * The stage: generator → router (the full table, 16 static neighbours, so packets are
//!   forwarded, never held for ARP) → sink on one pinned core. The generator's destinations are
//!   rewritten per packet to `--dsts` addresses drawn from the table (the generator itself only
//!   makes 192.168.x.y destinations, which a BGP table does not route); the cost of that rewrite
//!   is measured and printed. Every packet must reach the sink, or the scenario fails.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bench::gen::{self, GenConfig, Generator, Size};
use bench::results::{self, Peer, Row};
use clap::Args as ClapArgs;
use dataplane::stage::Stage;
use dataplane::stages::router::fib::{Fib, FibCell, Hop, Prefix, Rib};
use dataplane::stages::router::lpm4::Lpm4;
use dataplane::stages::router::lpm6::Lpm6;
use dataplane::stages::router::{routes, Iface, Router, RouterConfig, StaticNeighbour};
use dataplane::wire::checksum;
use pmd::port::{Port, PortError, PortStats};
use pmd::{Burst, PoolCache};

use super::{base, finish, median, print_latency, print_machine, Res};

/// Options of `bench router`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Runs of ours and of dpdk-test-fib per lookup figure, interleaved (medians reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Addresses in each lookup trace (rounded down to a multiple of 64: test-fib looks up in
    /// bulks of 64).
    #[arg(long, default_value_t = 1 << 21)]
    lookups: usize,
    /// Addresses per batch lookup call of ours (test-fib's bulk is 64, fixed).
    #[arg(long, default_value_t = 64)]
    lookup_burst: usize,
    /// Core for ours and for dpdk-test-fib (`-l`).
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Seconds of each router-stage run (generator → router → sink).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Router-stage runs (the median is reported).
    #[arg(long, default_value_t = 3)]
    stage_runs: usize,
    /// Packets per burst through the stage.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Distinct destinations of the stage's traffic, drawn from the table's prefixes.
    #[arg(long, default_value_t = 1 << 20)]
    dsts: usize,
    /// Frame size of the stage's traffic (UDP/IPv4).
    #[arg(long, default_value_t = 64)]
    size: u16,
    /// Skip rte_lpm (test-fib's `-c`): rte_lpm_add scans its rules linearly, so building it
    /// from the full table takes minutes per run.
    #[arg(long)]
    no_lpm: bool,
    /// Skip IPv6.
    #[arg(long)]
    no_ipv6: bool,
    /// Skip dpdk-test-fib.
    #[arg(long)]
    no_peer: bool,
}

/// Distinct next hops the prefixes are spread over.
const NEXT_HOPS: usize = 16;
/// test-fib's bulk size (`BURST_SZ` in app/test-fib/main.c).
const PEER_BULK: usize = 64;
/// Hugepages the peer's tables need at most (2 MiB each): tbl24s, tbl8 groups, the RIB nodes.
const PEER_HUGEPAGES: u64 = 1024;
/// The corpus file.
const TABLE: &str = "routes/bart_fulltable_v4v6_prefixes.txt.gz";

fn corpus_dir() -> PathBuf {
    std::env::var_os("DATAPLANE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| results::root().join("../shared/corpus"))
}

/// A small xorshift generator (the traces need speed and repeatability, not quality).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
}

/// The table as loaded: prefixes in file order, and the built FIB.
struct Table {
    v4: Vec<(u32, u8)>,
    v6: Vec<(u128, u8)>,
    /// The IPv4 prefixes with their next hops (1..=16), for building bare LPM tables.
    routes4: Vec<(u32, u8, u16)>,
    /// The same for IPv6.
    routes6: Vec<(u128, u8, u32)>,
    /// The published table the stage reads.
    cell: Arc<FibCell>,
    /// The same table, for the lookup figures.
    fib: Arc<Fib>,
    load_secs: f64,
}

fn gw4(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1 + k as u8)
}

fn gw6(k: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1 + k as u16)
}

/// Port of the neighbours and of every route.
const OUT_PORT: u16 = 1;

fn load_table() -> Res<Table> {
    let dir = corpus_dir();
    let path = dir.join(TABLE);
    if !path.exists() {
        return Err(format!(
            "the full table is not there: {} (set DATAPLANE_CORPUS to the corpus directory)",
            path.display()
        ));
    }
    let t0 = Instant::now();
    let text = routes::read_text(&path).map_err(|e| e.to_string())?;
    let mut v4 = Vec::with_capacity(901_899);
    let mut v6 = Vec::with_capacity(160_147);
    let mut rib = Rib::new();
    rib.reserve(1_062_046);
    let hops4: Vec<Hop> = (0..NEXT_HOPS)
        .map(|k| Hop::Via {
            gw: IpAddr::V4(gw4(k)),
            port: OUT_PORT,
        })
        .collect();
    let hops6: Vec<Hop> = (0..NEXT_HOPS)
        .map(|k| Hop::Via {
            gw: IpAddr::V6(gw6(k)),
            port: OUT_PORT,
        })
        .collect();
    routes::parse_prefix_list(&path.display().to_string(), &text, |p, _| match p {
        Prefix::V4(a, l) => {
            rib.insert(p, vec![hops4[(v4.len() + v6.len()) % NEXT_HOPS]]);
            v4.push((a, l));
        }
        Prefix::V6(a, l) => {
            rib.insert(p, vec![hops6[(v4.len() + v6.len()) % NEXT_HOPS]]);
            v6.push((a, l));
        }
    })
    .map_err(|e| e.to_string())?;
    let fib = rib
        .build(1)
        .map_err(|e| format!("{}: cannot build the FIB: {e}", path.display()))?;
    if v4.is_empty() {
        return Err(format!("{}: no IPv4 prefixes", path.display()));
    }
    let load_secs = t0.elapsed().as_secs_f64();
    let cell = FibCell::new(fib);
    let routes4 = v4
        .iter()
        .enumerate()
        .map(|(i, &(a, l))| (a, l, nh_of(i) as u16))
        .collect();
    let routes6 = v6
        .iter()
        .enumerate()
        .map(|(i, &(a, l))| (a, l, nh_of(v4.len() + i) as u32))
        .collect();
    Ok(Table {
        routes4,
        routes6,
        v4,
        v6,
        fib: cell.current(),
        cell,
        load_secs,
    })
}

/// The next hop (1..=16) of prefix `i` of the file, as in [`load_table`].
fn nh_of(i: usize) -> usize {
    i % NEXT_HOPS + 1
}

// ---------------------------------------------------------------------------------------------
// Traces.

fn trace_random4(n: usize, rng: &mut Rng) -> Vec<u32> {
    (0..n).map(|_| (rng.next() >> 32) as u32).collect()
}

fn drawn4(p: &[(u32, u8)], rng: &mut Rng) -> u32 {
    let (a, l) = p[rng.below(p.len())];
    let host = if l >= 32 {
        0
    } else {
        ((rng.next() >> 32) as u32) >> l
    };
    a | host
}

fn trace_table4(n: usize, p: &[(u32, u8)], rng: &mut Rng) -> Vec<u32> {
    (0..n).map(|_| drawn4(p, rng)).collect()
}

fn trace_table6(n: usize, p: &[(u128, u8)], rng: &mut Rng) -> Vec<u128> {
    (0..n)
        .map(|_| {
            let (a, l) = p[rng.below(p.len())];
            let r = u128::from(rng.next()) << 64 | u128::from(rng.next());
            if l >= 128 {
                a
            } else {
                a | (r >> l)
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Files for dpdk-test-fib.

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Res<Scratch> {
        let p = std::env::temp_dir().join(format!("bench-router-{}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(Scratch(p))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_lines(path: &Path, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Res<()> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    f(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `a.b.c.d/len nh` lines, in file order, with the next hops ours uses.
fn write_routes4(path: &Path, p: &[(u32, u8)]) -> Res<()> {
    write_lines(path, |w| {
        for (i, &(a, l)) in p.iter().enumerate() {
            writeln!(w, "{}/{l} {}", Ipv4Addr::from(a), nh_of(i))?;
        }
        Ok(())
    })
}

/// IPv6 prefixes follow the IPv4 ones in the corpus file: their next hops count on from there.
fn write_routes6(path: &Path, p: &[(u128, u8)], first: usize) -> Res<()> {
    write_lines(path, |w| {
        for (i, &(a, l)) in p.iter().enumerate() {
            writeln!(w, "{}/{l} {}", Ipv6Addr::from(a), nh_of(first + i))?;
        }
        Ok(())
    })
}

/// IPv4 trace for test-fib's `-t`, octet-reversed (see the module documentation).
fn write_trace4(path: &Path, t: &[u32]) -> Res<()> {
    write_lines(path, |w| {
        for &a in t {
            writeln!(w, "{}", Ipv4Addr::from(a.swap_bytes()))?;
        }
        Ok(())
    })
}

fn write_trace6(path: &Path, t: &[u128]) -> Res<()> {
    write_lines(path, |w| {
        for &a in t {
            writeln!(w, "{}", Ipv6Addr::from(a))?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// DPDK's memory, from its layout.

/// tbl8 groups DIR-24-8 needs: one per /24 that a longer prefix falls in.
fn dir24_groups(p: &[(u32, u8)]) -> usize {
    p.iter()
        .filter(|&&(_, l)| l > 24)
        .map(|&(a, _)| a >> 8)
        .collect::<HashSet<_>>()
        .len()
}

/// tbl8 groups DPDK's IPv6 TRIE (24-bit tbl24, then 8-bit levels) needs: one per distinct
/// (24 + 8k)-bit prefix that a longer prefix passes through.
fn trie6_groups(p: &[(u128, u8)]) -> usize {
    let mut total = 0;
    let mut bits = 24u32;
    while bits < 128 {
        total += p
            .iter()
            .filter(|&&(_, l)| u32::from(l) > bits)
            .map(|&(a, _)| a >> (128 - bits))
            .collect::<HashSet<_>>()
            .len();
        bits += 8;
    }
    total
}

const MIB: f64 = 1024.0 * 1024.0;
/// DPDK's tbl24 with 4-byte entries (`-e 4`; rte_lpm's entries are always 4 bytes).
const DPDK_TBL24: usize = (1 << 24) * 4;
/// One DPDK tbl8 group: 256 entries of 4 bytes.
const DPDK_GROUP: usize = 256 * 4;

// ---------------------------------------------------------------------------------------------
// Running dpdk-test-fib.

/// What one test-fib run printed.
struct PeerRun {
    /// rte_fib (dir24_8 or trie) TSC cycles per lookup.
    fib: f64,
    /// rte_lpm cycles per lookup, with `-c`.
    lpm: Option<f64>,
    /// The command (without its unique file prefix).
    command: String,
}

/// Reads through 1 GiB before each timed run, ours or the peer's, so every run starts with the
/// shared L3 (hundreds of MiB on this kind of host) holding clean lines: otherwise the run after
/// the other tool's exit pays for writing back the dirty lines of its tables (measured: our
/// IPv4 lookups after a test-fib run at half the rate of the first run, the table built three
/// times slower), and the order of the interleaving decides the ratio.
fn settle_caches() {
    static BUF: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    let buf = BUF.get_or_init(|| vec![1u64; (1 << 30) / 8]);
    let mut x = 0u64;
    for line in buf.chunks(8) {
        x = x.wrapping_add(line[0]);
    }
    std::hint::black_box(x);
}

/// Raises the 2 MiB hugepage reservation for the peer and puts it back on drop, as the peer
/// scripts in `shared/peers` do.
struct HugeReservation {
    path: PathBuf,
    restore: Option<u64>,
}

impl HugeReservation {
    fn ensure(pages: u64) -> Res<HugeReservation> {
        let path = PathBuf::from("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages");
        let read = |p: &Path| -> Res<u64> {
            std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let orig = read(&path)?;
        let mut r = HugeReservation {
            path: path.clone(),
            restore: None,
        };
        if orig < pages {
            std::fs::write(&path, pages.to_string()).map_err(|e| {
                format!(
                    "cannot reserve {pages} hugepages for dpdk-test-fib ({}: {e}; run as root)",
                    path.display()
                )
            })?;
            r.restore = Some(orig);
            let now = read(&path)?;
            if now < pages {
                return Err(format!(
                    "only {now} of the {pages} 2 MiB hugepages dpdk-test-fib needs could be reserved"
                ));
            }
        }
        Ok(r)
    }
}

impl Drop for HugeReservation {
    fn drop(&mut self) {
        if let Some(n) = self.restore {
            let _ = std::fs::write(&self.path, n.to_string());
        }
    }
}

fn parse_avg(line: &str, key: &str) -> Option<f64> {
    line.strip_prefix(key)?.trim().parse().ok()
}

/// Runs dpdk-test-fib once with `app` arguments on `core`; stops it once the lookup figures
/// are out.
fn test_fib(core: usize, app: &[String], lpm: bool, scratch: &Scratch, k: usize) -> Res<PeerRun> {
    let prefix = format!("benchrouter{}_{k}", std::process::id());
    let mut args: Vec<String> = [
        "-l",
        &core.to_string(),
        "-n",
        "1",
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        &prefix,
        "--force-max-simd-bitwidth=512",
        "--",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(app.iter().cloned());
    let err_path = scratch.path("test-fib.stderr");
    let err_file =
        std::fs::File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    // test-fib's stdout is a pipe here, so its stdio would hold the figures in a block buffer
    // until it exits (after minutes of route deletes with -c): `stdbuf -oL` (coreutils; it
    // execs the tool, so the child is test-fib itself) makes it line-buffered.
    let (prog, pre): (&str, &[&str]) = if Path::new("/usr/bin/stdbuf").exists() {
        ("/usr/bin/stdbuf", &["-oL", "dpdk-test-fib"])
    } else {
        ("dpdk-test-fib", &[])
    };
    let mut child = Command::new(prog)
        .args(pre)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(err_file)
        .spawn()
        .map_err(|e| {
            format!("cannot run dpdk-test-fib: {e} (install Debian's dpdk-dev: scripts/setup.sh)")
        })?;
    let mut fib = None;
    let mut lpm_c = None;
    let mut compared = false;
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(v) = parse_avg(&line, "AVG FIB lookup") {
                fib = Some(v);
            } else if let Some(v) = parse_avg(&line, "AVG LPM lookup") {
                lpm_c = Some(v);
            } else if line.contains("FIB and LPM lookup returns same values") {
                compared = true;
            } else if line.starts_with("FAIL") {
                out += &line;
                break;
            }
            if !line.starts_with("depth /") {
                out += &line;
                out.push('\n');
            }
            if fib.is_some() && (!lpm || (lpm_c.is_some() && compared)) {
                break;
            }
        }
    }
    // What follows the figures is route deletion; stop it (our own child, by its handle).
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&prefix));
    let command = format!(
        "dpdk-test-fib {}",
        args.iter()
            .map(|a| if *a == prefix { "X" } else { a.as_str() })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let stderr: String = std::fs::read_to_string(&err_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("EAL:"))
        .collect::<Vec<_>>()
        .join("\n");
    match fib {
        Some(f) if !lpm || (lpm_c.is_some() && compared) => Ok(PeerRun {
            fib: f,
            lpm: lpm_c,
            command,
        }),
        _ => Err(format!(
            "dpdk-test-fib gave no lookup figure{}:\n{command}\n{}{}",
            if lpm && fib.is_some() {
                " for rte_lpm (or its results differ from rte_fib's)"
            } else {
                ""
            },
            tail(&out, 20),
            tail(&stderr, 10)
        )),
    }
}

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    let mut t = v[v.len().saturating_sub(n)..].join("\n");
    if !t.is_empty() {
        t.push('\n');
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Our lookups, timed as test-fib times its own.

/// `rte_rdtsc_precise`: a full fence, then the TSC.
#[inline(always)]
fn rdtsc_precise() -> u64 {
    fence(Ordering::SeqCst);
    pmd::cpu::rdtsc()
}

/// What one pass of ours over a trace gave.
#[derive(Debug, Clone, Copy)]
struct Ours {
    /// Cycles per lookup, each bulk timed as test-fib times its own.
    cycles: f64,
    /// Fraction of the trace that had a route.
    routed: f64,
    /// Seconds the table took to build before the pass.
    build_secs: f64,
}

fn on_core<T: Send>(core: usize, f: impl FnOnce() -> T + Send) -> Res<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> Res<T> {
            pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))?;
            Ok(f())
        })
        .join()
        .map_err(|_| "lookup thread panicked".to_string())?
    })
}

/// Times `lookup` over `trace` in bulks of `bulk`: one pass, each bulk between two
/// `rdtsc_precise`, as test-fib does.
fn time_lookups<A: Copy, R: Copy + Default + PartialEq>(
    trace: &[A],
    bulk: usize,
    lookup: impl Fn(&[A], &mut [R]),
) -> Ours {
    let bulk = bulk.clamp(1, 256);
    let mut out = vec![R::default(); bulk];
    // Read the trace once first, as test-fib has just read its own from its file: after
    // `settle_caches` both tools then start with their trace where a fresh read leaves it.
    for line in trace.chunks((64 / std::mem::size_of::<A>()).max(1)) {
        std::hint::black_box(line[0]);
    }
    let mut acc = 0u64;
    let mut routed = 0usize;
    for chunk in trace.chunks(bulk) {
        let o = &mut out[..chunk.len()];
        let t0 = rdtsc_precise();
        lookup(chunk, o);
        acc += rdtsc_precise() - t0;
        routed += o.iter().filter(|&&r| r != R::default()).count();
        std::hint::black_box(&out);
    }
    let n = trace.len().max(1) as f64;
    Ours {
        cycles: acc as f64 / n,
        routed: routed as f64 / n,
        build_secs: 0.0,
    }
}

/// Builds our IPv4 table afresh from the prefixes (so the pass starts as test-fib's does, right
/// after the table was written) and times one pass over `trace`.
fn ours4(core: usize, routes: &[(u32, u8, u16)], trace: &[u32], bulk: usize) -> Res<Ours> {
    on_core(core, || -> Res<Ours> {
        let t0 = Instant::now();
        let lpm = Lpm4::build(routes).map_err(|e| format!("IPv4 table: {e}"))?;
        let build_secs = t0.elapsed().as_secs_f64();
        let o = time_lookups(trace, bulk, |a, o| lpm.lookup_burst(a, o));
        Ok(Ours { build_secs, ..o })
    })?
}

/// [`ours4`] for IPv6.
fn ours6(core: usize, routes: &[(u128, u8, u32)], trace: &[u128], bulk: usize) -> Res<Ours> {
    on_core(core, || -> Res<Ours> {
        let t0 = Instant::now();
        let lpm = Lpm6::build(routes).map_err(|e| format!("IPv6 table: {e}"))?;
        let build_secs = t0.elapsed().as_secs_f64();
        let o = time_lookups(trace, bulk, |a, o| lpm.lookup_burst(a, o));
        Ok(Ours { build_secs, ..o })
    })?
}

// ---------------------------------------------------------------------------------------------
// One lookup figure: ours and the peer interleaved.

/// Which lookup figure.
struct Case<'a> {
    what: &'static str,
    v6: bool,
    trace4: &'a [u32],
    trace6: &'a [u128],
    /// test-fib arguments (routes, trace, algorithm), ending with `-g groups`.
    peer_args: Vec<String>,
    /// tbl8 groups given to test-fib (`-g`).
    groups: usize,
    /// Also time rte_lpm (`-c`).
    lpm: bool,
}

/// Results of one case.
struct CaseResult {
    ours: Vec<Ours>,
    fib: Vec<f64>,
    lpm: Vec<f64>,
    command: Option<String>,
    peer_error: Option<String>,
}

fn run_case(
    a: &Args,
    table: &Table,
    c: &mut Case<'_>,
    scratch: &Scratch,
    peer: bool,
    k: &mut usize,
) -> Res<CaseResult> {
    let hz = pmd::cpu::tsc_hz() as f64;
    let mut r = CaseResult {
        ours: Vec::new(),
        fib: Vec::new(),
        lpm: Vec::new(),
        command: None,
        peer_error: None,
    };
    println!("{}:", c.what);
    for run in 1..=a.runs {
        settle_caches();
        let o = if c.v6 {
            ours6(a.core, &table.routes6, c.trace6, a.lookup_burst)?
        } else {
            ours4(a.core, &table.routes4, c.trace4, a.lookup_burst)?
        };
        println!(
            "  ours run {run}: {:.1} cycles/lookup = {:.1} M lookups/s ({:.1} % routed; table built in {:.2} s)",
            o.cycles,
            hz / o.cycles / 1e6,
            100.0 * o.routed,
            o.build_secs
        );
        r.ours.push(o);
        if !peer || r.peer_error.is_some() {
            continue;
        }
        if c.lpm && run == 1 {
            println!("  (dpdk-test-fib -c builds rte_lpm too: its route adds take minutes)");
        }
        let mut got = Err(String::new());
        for _ in 0..12 {
            *k += 1;
            settle_caches();
            got = test_fib(a.core, &c.peer_args, c.lpm, scratch, *k);
            match &got {
                // ENOSPC: rte_fib reserves tbl8 groups per route as it adds them (the IPv6
                // TRIE reserves more than its layout ends up using); give it 1.25x more.
                Err(e) if e.contains("err -28") => {
                    let g = c.groups + c.groups / 4 + 1;
                    c.groups = g;
                    if let Some(last) = c.peer_args.last_mut() {
                        *last = g.to_string();
                    }
                    println!("  (test-fib ran out of tbl8 groups: retrying with -g {g})");
                }
                _ => break,
            }
        }
        match got {
            Ok(p) => {
                print!(
                    "  peer run {run}: rte_fib {:.1} cycles/lookup = {:.1} M/s",
                    p.fib,
                    hz / p.fib / 1e6
                );
                if let Some(l) = p.lpm {
                    print!(", rte_lpm {l:.1} cycles/lookup = {:.1} M/s", hz / l / 1e6);
                    r.lpm.push(l);
                }
                println!();
                r.fib.push(p.fib);
                r.command = Some(p.command);
            }
            Err(e) => {
                println!("  peer: not run: {e}");
                r.peer_error = Some(e);
            }
        }
    }
    Ok(r)
}

/// Pair ratios (ours over the peer's rate = peer cycles over ours), per run.
fn pair_ratios(ours: &[Ours], peer: &[f64]) -> Vec<f64> {
    ours.iter()
        .zip(peer)
        .map(|(o, &p)| p / o.cycles.max(1e-9))
        .collect()
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}

// ---------------------------------------------------------------------------------------------
// The stage.

/// The generator with each packet's IPv4 destination replaced by the next of `dsts` (IP and
/// UDP checksums updated incrementally), so the router sees destinations from the table.
struct DstRewrite {
    inner: Generator,
    dsts: Vec<u32>,
    next: usize,
    l3: usize,
    l4_csum: usize,
}

impl DstRewrite {
    fn new(g: &GenConfig, dsts: Vec<u32>) -> Res<DstRewrite> {
        if dsts.is_empty() {
            return Err("no destinations for the stage".into());
        }
        let inner = Generator::new("gen", 0, g)?;
        let lay = inner.layout();
        Ok(DstRewrite {
            inner,
            dsts,
            next: 0,
            l3: lay.l3,
            l4_csum: lay.l4_csum,
        })
    }
}

impl Port for DstRewrite {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.mac()
    }

    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let before = burst.len();
        let n = self.inner.rx_burst(queue, pool, burst, max)?;
        let (l3, l4c) = (self.l3, self.l4_csum);
        for m in &mut burst.as_mut_slice()[before..] {
            let new = self.dsts[self.next];
            self.next += 1;
            if self.next == self.dsts.len() {
                self.next = 0;
            }
            let d = m.data_mut();
            if d.len() < l4c + 2 {
                continue;
            }
            let old = u32::from_be_bytes([d[l3 + 16], d[l3 + 17], d[l3 + 18], d[l3 + 19]]);
            d[l3 + 16..l3 + 20].copy_from_slice(&new.to_be_bytes());
            let ipc = u16::from_be_bytes([d[l3 + 10], d[l3 + 11]]);
            d[l3 + 10..l3 + 12].copy_from_slice(&checksum::update32(ipc, old, new).to_be_bytes());
            let uc = u16::from_be_bytes([d[l4c], d[l4c + 1]]);
            d[l4c..l4c + 2].copy_from_slice(&checksum::udp_update32(uc, old, new).to_be_bytes());
        }
        Ok(n)
    }

    fn tx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        self.inner.tx_burst(queue, pool, burst)
    }

    fn stats(&self) -> PortStats {
        self.inner.stats()
    }
}

/// MACs of the generator's port (the router's port 0: the generator's frames are sent to it)
/// and of the sink's.
const PORT_MACS: [[u8; 6]; 2] = [[0x02, 0, 0, 0, 0, 0x02], [0x02, 0, 0, 0, 0, 0x03]];

fn router_config() -> RouterConfig {
    let mut neighbours = Vec::new();
    for k in 0..NEXT_HOPS {
        let mac = [0x02, 0, 0, 0, 0x01, k as u8];
        neighbours.push(StaticNeighbour {
            ip: IpAddr::V4(gw4(k)),
            mac,
            port: OUT_PORT,
        });
        neighbours.push(StaticNeighbour {
            ip: IpAddr::V6(gw6(k)),
            mac,
            port: OUT_PORT,
        });
    }
    RouterConfig {
        ifaces: vec![
            Iface {
                port: 0,
                addr4: Some((Ipv4Addr::new(198, 18, 0, 1), 15)),
                addr6: Some((Ipv6Addr::new(0x2001, 0xdb8, 0xfffe, 0, 0, 0, 0, 1), 64)),
                mtu: 1500,
            },
            Iface {
                port: OUT_PORT,
                addr4: Some((Ipv4Addr::new(192, 0, 2, 254), 24)),
                addr6: Some((Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0xfe), 64)),
                mtu: 1500,
            },
        ],
        neighbours,
        ..RouterConfig::default()
    }
}

/// What the stage runs gave.
struct StageResult {
    mpps: Vec<f64>,
    latency: Option<bench::sink::LatencySummary>,
    gen_cycles: f64,
    offered: u64,
    delivered: u64,
}

fn run_stage(a: &Args, table: &Table) -> Res<StageResult> {
    let cell = &table.cell;
    let hz = pmd::cpu::tsc_hz();
    let mut rng = Rng(0x5eed_0000_0000_0007);
    let mut dsts = Vec::with_capacity(a.dsts.max(1));
    while dsts.len() < a.dsts.max(1) {
        let d = drawn4(&table.v4, &mut rng);
        // Only destinations the table routes (all drawn ones should be), never our own.
        if matches!(
            table.fib.lookup(IpAddr::V4(Ipv4Addr::from(d)), 0),
            Some(Hop::Via { .. })
        ) {
            dsts.push(d);
        }
    }
    let g = GenConfig {
        size: Size::Fixed(a.size),
        ..GenConfig::default()
    };
    // The generator's own cost with the rewrite, on the measured core.
    let gen_cycles = {
        let pool = super::pool()?;
        let g = g.clone();
        let d = dsts.clone();
        on_core(a.core, move || -> Res<f64> {
            let mut cache = pool.cache();
            let mut port = DstRewrite::new(&g, d)?;
            Ok(gen::rx_cost(&mut port, &mut cache, a.burst, 4_000_000))
        })??
    };
    let cfg = router_config();
    let mut res = StageResult {
        mpps: Vec::new(),
        latency: None,
        gen_cycles,
        offered: 0,
        delivered: 0,
    };
    for run in 1..=a.stage_runs.max(1) {
        let stages =
            || vec![Box::new(Router::new(&cfg, cell, PORT_MACS.to_vec())) as Box<dyn Stage>];
        let trial = run_rewritten(&g, &dsts, &stages, a)?;
        let lost = trial.offered.saturating_sub(trial.seen.packets);
        if trial.seen.packets == 0 || lost > trial.offered / 1000 {
            return Err(format!(
                "router stage: {} of {} packets did not reach the sink (dropped as no route, or \
                 held for a neighbour?); the stage measurement would be meaningless",
                lost, trial.offered
            ));
        }
        let m = trial.sink_mpps();
        println!(
            "  stage run {run}: {m:.2} Mpps, {:.1} cycles/packet ({} offered, {} at the sink)",
            hz as f64 / (m * 1e6),
            trial.offered,
            trial.seen.packets
        );
        res.mpps.push(m);
        res.offered += trial.offered;
        res.delivered += trial.seen.packets;
        res.latency = trial.seen.summary(hz);
    }
    Ok(res)
}

/// `run_direct` with the destination-rewriting generator in place of the plain one.
fn run_rewritten(
    g: &GenConfig,
    dsts: &[u32],
    stages: &(dyn Fn() -> Vec<Box<dyn Stage>> + Sync),
    a: &Args,
) -> Res<super::Trial> {
    use dataplane::engine::{ClockMode, EngineOptions, Layout};
    let gen = DstRewrite::new(g, dsts.to_vec())?;
    let ts = gen.inner.layout().ts();
    let opts = EngineOptions {
        burst: a.burst,
        worker_cores: vec![Some(a.core)],
        io_core: None,
        layout: Layout::RunToCompletion,
        clock: ClockMode::Tsc,
        offline: false,
        ring_size: 1024,
        steer: None,
        orders: Vec::new(),
        cut_through: true,
    };
    super::run_ports(Box::new(gen), ts, stages, opts, a.secs)
}

// ---------------------------------------------------------------------------------------------
// The scenario.

fn peer_available() -> Result<(), String> {
    let ok = Command::new("sh")
        .args(["-c", "command -v dpdk-test-fib"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Ok(())
    } else {
        Err("dpdk-test-fib is not installed (Debian's dpdk-dev; scripts/setup.sh)".into())
    }
}

fn avx512() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains(" avx512f"))
}

/// `bench router`.
pub fn run(a: &Args) -> Res<()> {
    let hz = pmd::cpu::tsc_hz() as f64;
    let lookups = (a.lookups / PEER_BULK).max(1) * PEER_BULK;
    print_machine();
    let table = load_table()?;
    let (g4, g6) = (dir24_groups(&table.v4), trie6_groups(&table.v6));
    println!(
        "table: {} ({} IPv4 + {} IPv6 prefixes, {NEXT_HOPS} next hops by line number), loaded and built in {:.2} s; ours: IPv4 {:.1} MiB ({} second-level groups), IPv6 {:.1} MiB ({} groups)",
        corpus_dir().join(TABLE).display(),
        table.v4.len(),
        table.v6.len(),
        table.load_secs,
        table.fib.v4.memory() as f64 / MIB,
        table.fib.v4.groups(),
        table.fib.v6.memory() as f64 / MIB,
        table.fib.v6.groups()
    );
    let mut peer = !a.no_peer;
    let mut peer_note: Option<String> = if a.no_peer {
        Some("peer skipped (--no-peer)".into())
    } else {
        None
    };
    if peer {
        if let Err(e) = peer_available() {
            println!("peer: not run: {e}");
            peer_note = Some(e);
            peer = false;
        }
    }
    println!(
        "config: lookups: {lookups} addresses per trace, bulks of {} (ours) / {PEER_BULK} (test-fib), each bulk timed with mfence+rdtsc as test-fib does, core {}, {} interleaved runs per figure; peer: dpdk-test-fib -b dir -e 4{} (IPv4), -6 -b trie -e 4 (IPv6), its default lookup function with --force-max-simd-bitwidth=512 (AVX-512 on this CPU: {}); DPDK tbl8 groups needed: {g4} (DIR-24-8), {g6} (IPv6 TRIE)",
        a.lookup_burst,
        a.core,
        a.runs,
        if a.no_lpm { "" } else { " -c (rte_lpm too)" },
        if avx512() { "yes" } else { "no" },
    );
    println!(
        "config: stage: generator UDP/IPv4 {} B, 1024 flows, destinations rewritten to {} addresses drawn from the table → router (full table, {NEXT_HOPS} static neighbours) → sink, burst {}, core {}, {} x {} s",
        a.size, a.dsts, a.burst, a.core, a.stage_runs, a.secs
    );

    let scratch = Scratch::new()?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let random4 = trace_random4(lookups, &mut rng);
    let table4 = trace_table4(lookups, &table.v4, &mut rng);
    let table6 = if a.no_ipv6 || table.v6.is_empty() {
        Vec::new()
    } else {
        trace_table6(lookups, &table.v6, &mut rng)
    };
    let _huge = if peer {
        let r4 = scratch.path("routes4.txt");
        write_routes4(&r4, &table.v4)?;
        write_trace4(&scratch.path("random4.txt"), &random4)?;
        write_trace4(&scratch.path("table4.txt"), &table4)?;
        if !table6.is_empty() {
            write_routes6(&scratch.path("routes6.txt"), &table.v6, table.v4.len())?;
            write_trace6(&scratch.path("table6.txt"), &table6)?;
        }
        match HugeReservation::ensure(PEER_HUGEPAGES) {
            Ok(h) => Some(h),
            Err(e) => {
                println!("peer: not run: {e}");
                peer_note = Some(e);
                peer = false;
                None
            }
        }
    } else {
        None
    };
    let p = |name: &str| scratch.path(name).display().to_string();
    // DIR-24-8 reserves exactly one group per /24 holding longer prefixes: `g4` is its need.
    let v4_args = |trace: &str| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-f".into(),
            p("routes4.txt"),
            "-t".into(),
            p(trace),
            "-b".into(),
            "dir".into(),
            "-e".into(),
            "4".into(),
        ];
        if !a.no_lpm {
            v.push("-c".into());
        }
        v.extend(["-g".into(), g4.max(1).to_string()]);
        v
    };
    let mut k = 0;
    let mut cases = [
        Case {
            what: "IPv4 lookups, full table, random destinations",
            v6: false,
            trace4: &random4,
            trace6: &[],
            peer_args: v4_args("random4.txt"),
            groups: g4.max(1),
            lpm: !a.no_lpm,
        },
        Case {
            what: "IPv4 lookups, full table, destinations drawn from the table",
            v6: false,
            trace4: &table4,
            trace6: &[],
            peer_args: v4_args("table4.txt"),
            groups: g4.max(1),
            lpm: !a.no_lpm,
        },
        Case {
            what: "IPv6 lookups, full table, destinations drawn from the table",
            v6: true,
            trace4: &[],
            trace6: &table6,
            peer_args: vec![
                "-6".into(),
                "-f".into(),
                p("routes6.txt"),
                "-t".into(),
                p("table6.txt"),
                "-b".into(),
                "trie".into(),
                "-e".into(),
                "4".into(),
                "-g".into(),
                g6.max(1).to_string(),
            ],
            groups: g6.max(1),
            lpm: false,
        },
    ];
    let mut rows = Vec::new();
    // IPv4 random destinations: (ours M/s, ours per run, peer per run, pair ratios, peer tool).
    type Headline = (f64, Vec<f64>, Vec<f64>, Vec<f64>, String);
    let mut headline: Option<Headline> = None;
    let mut peer_cmds = Vec::new();
    let mut v6_groups = None;
    for c in &mut cases {
        if c.v6 && table6.is_empty() {
            continue;
        }
        let r = run_case(a, &table, c, &scratch, peer, &mut k)?;
        if c.v6 && !r.fib.is_empty() {
            v6_groups = Some(c.groups);
        }
        if let Some(e) = &r.peer_error {
            peer_note.get_or_insert_with(|| e.lines().next().unwrap_or("").to_string());
        }
        let ours_c = median(&r.ours.iter().map(|o| o.cycles).collect::<Vec<_>>());
        let routed = median(&r.ours.iter().map(|o| o.routed).collect::<Vec<_>>());
        let ours_m = hz / ours_c / 1e6;
        // The faster DPDK structure of each pair (rte_fib or rte_lpm) is the peer figure.
        let best: Vec<f64> = if r.lpm.len() == r.fib.len() && !r.lpm.is_empty() {
            r.fib.iter().zip(&r.lpm).map(|(f, l)| f.min(*l)).collect()
        } else {
            r.fib.clone()
        };
        let ratios = pair_ratios(&r.ours, &best);
        let fib_tool = if c.v6 {
            "dpdk-test-fib -6 -b trie (rte_fib6 TRIE)"
        } else {
            "dpdk-test-fib -b dir (rte_fib DIR24_8)"
        };
        let goal = if c.v6 { 2.0 } else { 1.0 };
        let mut note = format!(
            "{ours_c:.1} cycles/lookup ours, {:.1} % of the trace routed",
            100.0 * routed
        );
        let (peer_m, ratio, tool) = if best.is_empty() {
            (None, None, None)
        } else {
            let fib_c = median(&r.fib);
            note += &format!(", rte_fib {fib_c:.1} cycles/lookup");
            let mut tool = fib_tool.to_string();
            if !r.lpm.is_empty() {
                let lpm_c = median(&r.lpm);
                note += &format!(", rte_lpm {lpm_c:.1} cycles/lookup");
                tool = format!(
                    "faster of {fib_tool} and rte_lpm (-c): {}",
                    if lpm_c < fib_c { "rte_lpm" } else { "rte_fib" }
                );
            }
            let ratio = median(&ratios);
            note += &format!(
                "; same-run ratios {:?}; goal ≥ {goal}x: {}",
                rounded(&ratios),
                if ratio >= goal { "met" } else { "not met" }
            );
            (Some(hz / median(&best) / 1e6), Some(ratio), Some(tool))
        };
        println!(
            "  => ours {ours_m:.1} M lookups/s{}",
            match (peer_m, ratio) {
                (Some(pm), Some(x)) => format!(", peer {pm:.1} M lookups/s, ratio {x:.3}"),
                _ => String::new(),
            }
        );
        if let Some(cmd) = &r.command {
            peer_cmds.push(cmd.clone());
        }
        if headline.is_none() && !c.v6 {
            headline = Some((
                ours_m,
                r.ours.iter().map(|o| hz / o.cycles / 1e6).collect(),
                best.iter().map(|p| hz / p / 1e6).collect(),
                ratios.clone(),
                tool.clone().unwrap_or_default(),
            ));
        }
        rows.push(Row {
            what: c.what.into(),
            unit: "M lookups/s".into(),
            ours: ours_m,
            peer: peer_m,
            peer_tool: tool,
            ratio,
            note: Some(note),
        });
    }

    // Memory.
    let ours4 = table.fib.v4.memory();
    let dpdk4 = DPDK_TBL24 + g4 * DPDK_GROUP;
    let mem4_note = format!(
        "ours: 2^24 x 2 B tbl24 + {} groups x 512 B; DPDK (rte_fib DIR24_8 -e 4 and rte_lpm alike): 2^24 x 4 B tbl24 (64 MiB) + {g4} tbl8 groups x 1 KiB, one per /24 holding longer prefixes, counted from the prefixes and given to test-fib as -g (test-fib prints no memory figure); goal: less than DPDK's 64 MiB tbl24: {}",
        table.fib.v4.groups(),
        if ours4 < DPDK_TBL24 { "met" } else { "not met" }
    );
    println!(
        "IPv4 FIB memory: ours {:.1} MiB, DPDK {:.1} MiB",
        ours4 as f64 / MIB,
        dpdk4 as f64 / MIB
    );
    rows.push(Row {
        what: "IPv4 FIB memory, full table".into(),
        unit: "MiB".into(),
        ours: ours4 as f64 / MIB,
        peer: Some(dpdk4 as f64 / MIB),
        peer_tool: Some("rte_fib DIR24_8 / rte_lpm (from their layout)".into()),
        ratio: Some(dpdk4 as f64 / ours4.max(1) as f64),
        note: Some(mem4_note),
    });
    if !table.v6.is_empty() && !a.no_ipv6 {
        let ours6 = table.fib.v6.memory();
        // rte_fib6 allocates its whole tbl8 pool at creation and refuses routes beyond what it
        // reserves per route; the pool it accepted the table with is what it needs.
        let pool6 = v6_groups.unwrap_or(g6);
        let dpdk6 = DPDK_TBL24 + pool6 * DPDK_GROUP;
        println!(
            "IPv6 FIB memory: ours {:.1} MiB, DPDK {:.1} MiB",
            ours6 as f64 / MIB,
            dpdk6 as f64 / MIB
        );
        rows.push(Row {
            what: "IPv6 FIB memory, full table".into(),
            unit: "MiB".into(),
            ours: ours6 as f64 / MIB,
            peer: Some(dpdk6 as f64 / MIB),
            peer_tool: Some("rte_fib6 TRIE -e 4".into()),
            ratio: Some(dpdk6 as f64 / ours6.max(1) as f64),
            note: Some(format!(
                "ours: 2^16 x 4 B root + {} groups below it, plain (1 KiB) or compressed to one 4-byte entry per run of equal slots (a 8- or 40-byte header each); DPDK: 2^24 x 4 B tbl24 + {pool6} tbl8 groups x 1 KiB, {}; its layout uses {g6} groups for these prefixes, but it reserves groups per route as routes are added and allocates the pool up front",
                table.fib.v6.groups(),
                if v6_groups.is_some() {
                    "the pool test-fib accepted the table with (-g, grown 1.25x from the layout's count until no add failed)"
                } else {
                    "the layout's count (test-fib did not run)"
                }
            )),
        });
    }

    // The stage.
    println!("router stage:");
    let st = run_stage(a, &table)?;
    let stage_m = median(&st.mpps);
    let stage_cyc = hz / (stage_m * 1e6);
    println!(
        "router stage: {stage_m:.2} Mpps on core {}, {stage_cyc:.1} cycles/packet (generator with the destination rewrite: {:.1} cycles/packet of it), {} of {} packets forwarded",
        a.core, st.gen_cycles, st.delivered, st.offered
    );
    print_latency(&st.latency);
    rows.push(Row {
        what: "router stage, full table, generator → router → sink, one core".into(),
        unit: "Mpps".into(),
        ours: stage_m,
        peer: None,
        peer_tool: None,
        ratio: None,
        note: Some(format!(
            "{stage_cyc:.1} cycles/packet (TSC) including the generator ({:.1} cycles/packet with the destination rewrite) and the sink; UDP/IPv4 {} B, {} destinations from the table, burst {}; no DPDK peer (dpdk-l3fwd needs ethdev ports and is not in Debian's dpdk)",
            st.gen_cycles, a.size, a.dsts, a.burst
        )),
    });

    let mut res = base(
        "router",
        serde_json::json!({
            "table": corpus_dir().join(TABLE).display().to_string(),
            "ipv4_prefixes": table.v4.len(), "ipv6_prefixes": table.v6.len(),
            "next_hops": NEXT_HOPS, "load_secs": table.load_secs,
            "lookups_per_trace": lookups, "lookup_burst": a.lookup_burst, "peer_bulk": PEER_BULK,
            "timing": "mfence+rdtsc around each bulk, summed over one pass (as dpdk-test-fib)",
            "core": a.core, "runs": a.runs, "interleaved": peer,
            "peer_lpm": !a.no_lpm, "dpdk_tbl8_groups": { "dir24_8": g4, "trie6": g6 },
            "peer_commands": peer_cmds,
            "stage": {
                "generator": "udp ipv4 1024 flows, destinations rewritten from the table",
                "frame": a.size, "destinations": a.dsts, "burst": a.burst, "secs": a.secs,
                "runs": a.stage_runs, "neighbours": "static", "latency_from": "last run",
            },
        }),
    );
    res.cycles_per_packet = stage_cyc;
    res.mpps_per_core = Some(stage_m);
    res.latency = st.latency;
    res.latency_note = Some(format!(
        "router stage with the full table, full rate, one core ({stage_m:.2} Mpps), last run"
    ));
    res.gen_cycles_per_packet = Some(st.gen_cycles);
    res.rows = rows;
    match headline {
        Some((m, ours_runs, peer_runs, ratios, tool)) if !ratios.is_empty() => {
            res.ours_mpps = m;
            res.ours_runs_mpps = ours_runs;
            res.peer = Some(Peer {
                tool: format!("{tool} (IPv4, random destinations)"),
                command: peer_cmds.first().cloned().unwrap_or_default(),
                mpps: median(&peer_runs),
            });
            res.peer_runs_mpps = peer_runs;
            res.ratio = Some(median(&ratios));
            res.pair_ratios = ratios;
        }
        Some((m, ours_runs, _, _, _)) => {
            res.ours_mpps = m;
            res.ours_runs_mpps = ours_runs;
            res.ratio_note = peer_note.or(Some("no peer figure".into()));
        }
        None => res.ratio_note = Some("no IPv4 figure".into()),
    }
    println!(
        "headline: IPv4 random-destination lookups, M lookups/s per core (ours over the faster of rte_fib DIR24_8 and rte_lpm); the issue's goals: ≥ 1.0x that, ≥ 2x rte_fib6 TRIE, less memory than 64 MiB"
    );
    drop(scratch);
    finish(res)
}
