//! `bench nat`: the NAT44 stage on one core, against the goals of its issue.
//!
//! The issue asks for Mpps and cycles per packet per core through the NAT stage with 1M active
//! sessions and with 10M in one worker's table, new sessions per second per core, and memory
//! per session; the goals are at least 10 Mpps per core at 10M sessions (the target FD.io VPP
//! set for its own NAT) and at least 2M new sessions per second per core. DPDK ships no NAT44
//! to run beside it, so there is no same-run ratio: each figure is a [`Row`] that states its
//! goal and whether it is met.
//!
//! How a table is measured (generator → NAT → sink on one pinned core, the engine's direct
//! shape, real packets through the stage's `process`):
//!
//! 1. *Harness*: the same traffic through a forward stage, so the generator's, the engine's and
//!    the sink's share of the cycles is known.
//! 2. *Warm-up*: every flow once (the generator's shuffled sequence, `sessions` flows over
//!    `src_ips` inside addresses × source ports, stopped at the end of the sequence): each
//!    packet makes a session. With a power-of-two session count every packet of this pass is
//!    a new flow until the table is exactly full, so its rate is the creation rate.
//! 3. *Settle*: a second later, one idle poll: the wheel moves the new sessions it has not
//!    moved yet (those of the warm-up's last second; the polls during the warm-up did the
//!    others) from the bucket they were created in to the one their refreshed deadline falls
//!    in (the lazy scheme the table doc describes), so that work is timed here and stays out
//!    of step 4.
//! 4. *Established*: the same flows again, each packet hitting an existing session.
//! 5. *Both ways*: each packet is translated out, its endpoints swapped (so it is the reply)
//!    and translated back in, by the same instance, within one stage call.
//!
//! With `--unwarmed`, step 4 is repeated with the stage's per-burst loading of table lines off,
//! which shows what that loading saves.
//!
//! One NAT instance lives across the passes (each engine run borrows it through [`Lent`] and
//! gives it back when the engine drops its chain), so the sessions the warm-up makes are the
//! ones the measured passes hit.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clap::Args as ClapArgs;

use bench::gen::{GenConfig, Generator, Layout, Proto, Size, Spread, MAX_FLOWS};
use bench::results::Row;
use dataplane::engine::{ClockMode, EngineOptions, Layout as Shape};
use dataplane::stage::{Ctx, Next, Stage};
use dataplane::stages::forward::Forward;
use dataplane::stages::nat::table::{Subscribers, Table};
use dataplane::stages::nat::{Nat44, NatConf};
use pmd::Mbuf;

use super::{Res, Trial};

/// The generator's port: the NAT's inside.
const INSIDE: u16 = 0;
/// The sink's port: the NAT's outside.
const OUTSIDE: u16 = 1;
/// First pool address: 198.18.0.0 (RFC 2544's benchmarking range, not the generator's).
const POOL_BASE: u32 = 0xc612_0000;
/// Dynamic outside ports per pool address and protocol (1024..=65535).
const PORTS_PER_ADDR: u64 = 64_512;
/// The goal for established traffic at 10M sessions, Mpps per core.
const GOAL_MPPS: f64 = 10.0;
/// The goal for session creation, M new sessions per second per core.
const GOAL_NEW_MPS: f64 = 2.0;

/// Options of `bench nat`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Seconds of each measured pass (harness, established, both ways).
    #[arg(long, default_value_t = 5.0)]
    secs: f64,
    /// Sessions of the first table, and the flows that fill and then hit it (a power of two
    /// makes the warm-up a clean creation measurement).
    #[arg(long, default_value_t = 1 << 20)]
    sessions: u32,
    /// Sessions of the large table (one worker's); 0 skips it.
    #[arg(long, default_value_t = 10_000_000)]
    big_sessions: u32,
    /// Inside addresses (subscribers); flow `i` comes from address `i % src_ips` and a source
    /// port from `i / src_ips`.
    #[arg(long, default_value_t = 65_536)]
    src_ips: u32,
    /// Outside addresses in the pool (0: enough for each table to use at most 2/3 of the
    /// ports, rounded up to a power of two).
    #[arg(long, default_value_t = 0)]
    pool: u32,
    /// L4 protocol: udp or tcp (ACK segments).
    #[arg(long, default_value = "udp", value_parser = parse_proto)]
    proto: Proto,
    /// Packets per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Core for the worker.
    #[arg(long, default_value_t = 1)]
    core: usize,
    /// Skip the both-ways passes.
    #[arg(long)]
    one_way: bool,
    /// Also run the established pass with the stage's per-burst loading of table lines off
    /// (`Nat44::set_burst_warm`), to show what it saves.
    #[arg(long)]
    unwarmed: bool,
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s {
        "udp" => Ok(Proto::Udp),
        "tcp" => Ok(Proto::Tcp),
        _ => Err(format!("`{s}` is not udp or tcp")),
    }
}

// ---------------------------------------------------------------------------------------------
// One NAT instance lent to successive engine runs.

/// Where the NAT instance waits between engine runs.
#[derive(Default)]
struct Slot {
    nat: Option<Nat44>,
    /// TSC cycles spent in the stage's `poll` by the runs so far.
    poll_cycles: u64,
}

type Home = Arc<Mutex<Slot>>;

fn lock(h: &Home) -> MutexGuard<'_, Slot> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

/// The NAT stage for one engine run: takes the instance from its [`Slot`] when the engine
/// builds the chain and puts it back when the engine drops it. With `bounce`, every packet the
/// NAT sent out is turned into its reply and translated back in by the same instance.
struct Lent {
    nat: Option<Nat44>,
    home: Home,
    /// Offset of the IPv4 header, when bouncing.
    bounce: Option<usize>,
    poll_cycles: u64,
}

impl Lent {
    fn take(home: &Home, bounce: Option<usize>) -> Lent {
        Lent {
            nat: lock(home).nat.take(),
            home: home.clone(),
            bounce,
            poll_cycles: 0,
        }
    }

    /// The same, with the stage's per-burst loading of table lines off for this run.
    fn take_unwarmed(home: &Home) -> Lent {
        let mut l = Lent::take(home, None);
        if let Some(n) = l.nat.as_mut() {
            n.set_burst_warm(false);
        }
        l
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let mut s = lock(&self.home);
        if let Some(mut n) = self.nat.take() {
            n.set_burst_warm(true);
            s.nat = Some(n);
        }
        s.poll_cycles += self.poll_cycles;
    }
}

/// Swaps the IPv4 addresses and the L4 ports of a generated packet (header at `l3`, no
/// options): it becomes the reply, and every checksum stays valid (the sums commute).
fn swap_endpoints(d: &mut [u8], l3: usize) {
    if d.len() < l3 + 24 {
        return;
    }
    for i in 0..4 {
        d.swap(l3 + 12 + i, l3 + 16 + i);
    }
    for i in 0..2 {
        d.swap(l3 + 20 + i, l3 + 22 + i);
    }
}

impl Stage for Lent {
    fn name(&self) -> &str {
        "nat44"
    }

    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        let Some(nat) = self.nat.as_mut() else {
            return;
        };
        nat.process(ctx, pkts, nexts);
        let Some(l3) = self.bounce else {
            return;
        };
        let mut back = [Next::CONTINUE; 256];
        for (pc, nc) in pkts.chunks_mut(256).zip(nexts.chunks_mut(256)) {
            let back = &mut back[..pc.len()];
            back.fill(Next::CONTINUE);
            for (m, n) in pc.iter_mut().zip(nc.iter()) {
                if *n == Next::CONTINUE {
                    swap_endpoints(m.data_mut(), l3);
                    m.set_port(OUTSIDE);
                } else {
                    // A port with no NAT role: the second call leaves it alone.
                    m.set_port(u16::MAX);
                }
            }
            nat.process(ctx, pc, back);
            for ((m, n), b) in pc.iter_mut().zip(nc.iter_mut()).zip(back.iter()) {
                m.set_port(INSIDE);
                if *n == Next::CONTINUE {
                    *n = *b;
                    // Translated back in, it would leave by the inside port (the generator's);
                    // send it to the sink, which counts it.
                    m.set_egress(OUTSIDE);
                }
            }
        }
    }

    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        match self.nat.as_mut() {
            Some(n) => n.hold(m),
            None => Err(m),
        }
    }

    fn held(&self) -> usize {
        self.nat.as_ref().map_or(0, |n| n.held())
    }

    fn poll(&mut self, ctx: &mut Ctx) {
        if let Some(n) = self.nat.as_mut() {
            let t0 = pmd::cpu::rdtsc();
            n.poll(ctx);
            self.poll_cycles += pmd::cpu::rdtsc().wrapping_sub(t0);
        }
    }

    fn flush(&mut self, ctx: &mut Ctx) {
        if let Some(n) = self.nat.as_mut() {
            let t0 = pmd::cpu::rdtsc();
            n.flush(ctx);
            self.poll_cycles += pmd::cpu::rdtsc().wrapping_sub(t0);
        }
    }

    fn drop_reasons(&self) -> &[&'static str] {
        self.nat.as_ref().map_or(&[], |n| n.drop_reasons())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        self.nat.as_ref().map_or_else(Vec::new, |n| n.counters())
    }
}

// ---------------------------------------------------------------------------------------------
// Runs.

fn direct_opts(burst: usize, core: usize) -> EngineOptions {
    EngineOptions {
        burst,
        worker_cores: vec![Some(core)],
        io_core: None,
        layout: Shape::RunToCompletion,
        clock: ClockMode::Tsc,
        offline: false,
        ring_size: 1024,
        steer: None,
        orders: Vec::new(),
        cut_through: true,
    }
}

/// [`super::run_ports`] with the lent NAT, for a generator with a `limit`: returns as soon as
/// the engine stopped by itself (every port at its end), or after `max_secs`.
fn run_to_end(g: &GenConfig, home: &Home, burst: usize, core: usize, max_secs: f64) -> Res<Trial> {
    let gen = Generator::new("gen", INSIDE, g)?;
    let ts = gen.layout().ts();
    let stages = || vec![Box::new(Lent::take(home, None)) as Box<dyn Stage>];
    super::run_ports(
        Box::new(gen),
        ts,
        &stages,
        direct_opts(burst, core),
        max_secs,
    )
}

/// A counter of the NAT waiting in `home` (0 if absent).
fn counter(home: &Home, name: &str) -> u64 {
    lock(home).nat.as_ref().map_or(0, |n| {
        n.counters()
            .into_iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, v)| v)
    })
}

/// Sessions in the NAT waiting in `home`, or an error if an engine run kept it.
fn sessions(home: &Home) -> Res<usize> {
    lock(home)
        .nat
        .as_ref()
        .map(|n| n.sessions())
        .ok_or_else(|| "the NAT instance did not come back from the engine".to_string())
}

/// CPU time (user + system, seconds) in a `/proc` stat file: the process's
/// (`/proc/self/stat`, threads that ended included) or the calling thread's
/// (`/proc/thread-self/stat`). Clock ticks of 10 ms.
fn cpu_secs(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ut + st) as f64 / 100.0)
}

/// Runs `f` and returns, with its result, the CPU seconds that threads other than the caller
/// used meanwhile: the engine's worker, since the caller only sets up, sleeps and tears down.
/// On a shared machine the wall-clock rate counts the time the worker was preempted; this does
/// not.
fn on_cpu<T>(f: impl FnOnce() -> Res<T>) -> Res<(T, Option<f64>)> {
    let p0 = cpu_secs("/proc/self/stat");
    let m0 = cpu_secs("/proc/thread-self/stat");
    let r = f()?;
    let p1 = cpu_secs("/proc/self/stat");
    let m1 = cpu_secs("/proc/thread-self/stat");
    let cpu = match (p0, p1, m0, m1) {
        (Some(p0), Some(p1), Some(m0), Some(m1)) => Some(((p1 - p0) - (m1 - m0)).max(0.0)),
        _ => None,
    };
    Ok((r, cpu))
}

/// `, 212.3 on-CPU` (cycles per packet from the worker's CPU time), or nothing.
fn on_cpu_cycles(cpu: Option<f64>, packets: u64) -> Option<f64> {
    cpu.filter(|&c| c > 0.0 && packets > 0)
        .map(|c| c * pmd::cpu::tsc_hz() as f64 / packets as f64)
}

fn fmt_on_cpu(c: Option<f64>) -> String {
    c.map_or_else(String::new, |c| format!(" ({c:.1} on-CPU)"))
}

/// Bytes available to new allocations (`MemAvailable`), if known.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Length of the generator's flow sequence for `flows` flows (see `gen::draw`).
fn seq_len(flows: u32) -> u64 {
    u64::from(flows.max(4096))
        .next_power_of_two()
        .min(u64::from(MAX_FLOWS))
}

/// `; 95.2 on-CPU`: the stage's own cycles from the on-CPU figures, or nothing.
fn own_on_cpu(ours: Option<f64>, harness: Option<f64>) -> String {
    match (ours, harness) {
        (Some(o), Some(h)) => format!("; {:.1} on-CPU", o - h),
        _ => String::new(),
    }
}

/// Like [`own_on_cpu`], halved: two translations per packet.
fn per_translation(ours: Option<f64>, harness: Option<f64>) -> String {
    match (ours, harness) {
        (Some(o), Some(h)) => format!("; {:.1} on-CPU", (o - h) / 2.0),
        _ => String::new(),
    }
}

fn goal_note(ours: f64, goal: f64, unit: &str) -> String {
    format!(
        "{ours:.2} {unit} / {goal} {unit} goal = {:.2}: {}",
        ours / goal,
        if ours >= goal { "met" } else { "NOT met" }
    )
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// What one table's passes gave.
struct TableFigures {
    /// Established translation, Mpps.
    mpps: f64,
    /// Cycles per packet at that rate (whole core: generator, NAT, sink).
    cycles: f64,
    /// New sessions per second (M), when the warm-up was a clean creation pass.
    new_mps: Option<f64>,
    /// Latency of the established pass.
    latency: Option<bench::sink::LatencySummary>,
    /// Generator's `rx_burst` cycles per packet for this traffic.
    gen_cycles: f64,
    /// Configuration, for the JSON.
    config: serde_json::Value,
}

/// Fills a table of `n` sessions and measures it; pushes its rows.
fn measure_table(a: &Args, n: u32, label: &str, rows: &mut Vec<Row>) -> Res<TableFigures> {
    let hz = pmd::cpu::tsc_hz() as f64;
    if n == 0 || n > MAX_FLOWS {
        return Err(format!("{n} sessions: expected 1 to {MAX_FLOWS}"));
    }
    if u64::from(n) > u64::from(a.src_ips) * 64_000 {
        return Err(format!(
            "{n} sessions need more than {} inside addresses (the generator varies 64000 source ports per address)",
            a.src_ips
        ));
    }
    let pool_n = if a.pool > 0 {
        a.pool
    } else {
        (u64::from(n) * 3 / 2)
            .div_ceil(PORTS_PER_ADDR)
            .next_power_of_two()
            .clamp(4, 4096) as u32
    };
    if u64::from(pool_n) * PORTS_PER_ADDR < u64::from(n) {
        return Err(format!(
            "a pool of {pool_n} addresses has {} ports per protocol, fewer than {n} sessions",
            u64::from(pool_n) * PORTS_PER_ADDR
        ));
    }
    let reserved = Table::reserved_bytes(n as usize) + Subscribers::reserved_bytes(n as usize);
    let seq = seq_len(n);
    // Sequence (u32) and per-slot keys (u64) of the generator, twice at worst (harness and
    // NAT runs never overlap, but the harness's may not be freed back to the system).
    let gen_bytes = seq as usize * 12 * 2;
    if let Some(avail) = mem_available() {
        let need = (reserved + gen_bytes) as u64 + (1 << 30);
        if need > avail {
            return Err(format!(
                "{label}: needs about {:.0} MiB (table and subscribers {:.0} MiB, generator {:.0} MiB, 1 GiB margin) but {:.0} MiB are available",
                need as f64 / (1u64 << 20) as f64,
                mib(reserved),
                mib(gen_bytes),
                avail as f64 / (1u64 << 20) as f64
            ));
        }
    }
    let g = GenConfig {
        proto: a.proto,
        size: Size::Fixed(64),
        flows: n,
        spread: Spread::Uniform,
        src_ips: a.src_ips,
        dst_ips: 1,
        ..Default::default()
    };
    let l3 = Layout::of(&g).l3;
    println!(
        "{label}: capacity {n} sessions ({:.0} MiB reserved: table {:.0} MiB, subscribers {:.0} MiB), {n} flows ({:?}, {} inside addresses x {} source ports, one destination), pool {pool_n} addresses from 198.18.0.0 ({} ports per protocol), random port allocation, burst {}, core {}",
        mib(reserved),
        mib(Table::reserved_bytes(n as usize)),
        mib(Subscribers::reserved_bytes(n as usize)),
        a.proto,
        a.src_ips.min(n),
        u64::from(n).div_ceil(u64::from(a.src_ips)),
        u64::from(pool_n) * PORTS_PER_ADDR,
        a.burst,
        a.core
    );

    // 1. Harness: the same traffic through a forward stage.
    let fwd = || vec![Box::new(Forward::new(&[(INSIDE, OUTSIDE)])) as Box<dyn Stage>];
    let (h, h_cpu) = on_cpu(|| super::run_direct(&g, &fwd, a.burst, a.core, a.secs))?;
    let h_oc = on_cpu_cycles(h_cpu, h.offered);
    let (gen_cycles, null_cycles) = super::gen_cost(&g, a.burst, a.core)?;
    let h_mpps = h.sink_mpps();
    let h_cyc = hz / (h_mpps * 1e6).max(1.0);
    println!(
        "  harness (generator → forward → sink): {h_mpps:.2} Mpps, {h_cyc:.1} cycles/packet{}; the generator's rx_burst alone {gen_cycles:.1} cycles/packet (null port {null_cycles:.1})",
        fmt_on_cpu(h_oc)
    );
    rows.push(Row {
        what: format!("{label}: harness alone (generator → forward → sink, same {n} flows)"),
        unit: "Mpps".into(),
        ours: h_mpps,
        peer: None,
        peer_tool: None,
        ratio: None,
        note: Some(format!(
            "{h_cyc:.1} cycles/packet{}; generator rx_burst {gen_cycles:.1} cycles/packet (patches one template per packet); subtract from the NAT rows for the stage's own cost",
            fmt_on_cpu(h_oc)
        )),
    });

    // The NAT instance, lent to each run.
    let pool: Vec<u32> = (0..pool_n).map(|i| POOL_BASE + i).collect();
    let mut conf = NatConf::new(&[INSIDE], OUTSIDE, &pool);
    conf.capacity = n as usize;
    let t_build = Instant::now();
    let nat = Nat44::new(
        Arc::new(conf),
        0,
        1,
        vec![[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]],
    );
    let (tbytes, sbytes) = nat.memory_bytes();
    let cap = nat.capacity();
    let home: Home = Arc::new(Mutex::new(Slot {
        nat: Some(nat),
        poll_cycles: 0,
    }));
    let build_secs = t_build.elapsed().as_secs_f64();

    // 2. Warm-up: the whole flow sequence once.
    let warm_g = GenConfig {
        limit: Some(seq),
        ..g.clone()
    };
    let (w, w_cpu) =
        on_cpu(|| run_to_end(&warm_g, &home, a.burst, a.core, seq as f64 / 1e5 + 30.0))?;
    let w_oc = on_cpu_cycles(w_cpu, w.offered);
    let made = sessions(&home)?;
    let warm_secs = (w.seen.last_tsc.saturating_sub(w.seen.first_tsc)) as f64 / hz;
    if made != n as usize || w.offered != seq || w.lost() != 0 {
        return Err(format!(
            "{label}: the warm-up made {made} of {n} sessions from {} of {seq} packets ({} lost; drops: table_full {}, pool {})",
            w.offered,
            w.lost(),
            counter(&home, "table_full"),
            counter(&home, "pool_exhausted")
        ));
    }
    let warm_poll = lock(&home).poll_cycles;
    // 3. Settle: past the next second, one idle poll relinks the new sessions.
    std::thread::sleep(Duration::from_millis(1100));
    let settle_g = GenConfig {
        flows: 1,
        limit: Some(0),
        ..g.clone()
    };
    run_to_end(&settle_g, &home, a.burst, a.core, 60.0)?;
    let settle_secs = (lock(&home).poll_cycles - warm_poll) as f64 / hz;
    let new_mps = made as f64 / warm_secs.max(1e-9) / 1e6;
    let new_all = made as f64 / (warm_secs + settle_secs).max(1e-9) / 1e6;
    let clean = seq == u64::from(n);
    println!(
        "  warm-up: {} packets made {made} sessions in {warm_secs:.3} s ({new_mps:.2} M/s{}; {} cycles/packet on-CPU); the wheel's relinks still deferred after it (those of its last second) took {settle_secs:.3} s ({:.0} ns per session; with them {new_all:.2} M/s); table built in {build_secs:.2} s",
        w.offered,
        if clean { ", every packet a new flow" } else { ", some packets hit sessions already made" },
        w_oc.map_or("?".into(), |c| format!("{c:.0}")),
        settle_secs * 1e9 / made as f64
    );
    if clean {
        rows.push(Row {
            what: format!("{label}: new sessions per second, an empty {n}-session table filled by one packet per new flow"),
            unit: "M sessions/s".into(),
            ours: new_mps,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!(
                "{}; {:.0} cycles per new session{}; the wheel's relinks still deferred after the pass add {:.0} ns per session ({new_all:.2} M/s with them)",
                goal_note(new_mps, GOAL_NEW_MPS, "M/s"),
                hz / (new_mps * 1e6),
                fmt_on_cpu(w_oc),
                settle_secs * 1e9 / made as f64
            )),
        });
    } else {
        rows.push(Row {
            what: format!("{label}: filling an empty {n}-session table ({} packets over {n} flows)", w.offered),
            unit: "M sessions/s".into(),
            ours: new_mps,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!(
                "a lower bound on the creation rate: {} of the packets hit sessions the pass had already made (the generator's sequence is a power of two long); no goal is judged on it",
                w.offered - made as u64
            )),
        });
    }

    // 4. Established: every packet hits a session.
    let created0 = counter(&home, &format!("sessions_created_{}", proto_name(a.proto)));
    let out0 = counter(&home, "translated_out");
    let hm = home.clone();
    let nat_stage = move || vec![Box::new(Lent::take(&hm, None)) as Box<dyn Stage>];
    let (t, t_cpu) = on_cpu(|| super::run_direct(&g, &nat_stage, a.burst, a.core, a.secs))?;
    let t_oc = on_cpu_cycles(t_cpu, t.offered);
    sessions(&home)?;
    let created = counter(&home, &format!("sessions_created_{}", proto_name(a.proto))) - created0;
    let translated = counter(&home, "translated_out") - out0;
    let mpps = t.sink_mpps();
    let cycles = hz / (mpps * 1e6).max(1.0);
    let own = cycles - h_cyc;
    println!(
        "  established, inside → outside: {mpps:.2} Mpps, {cycles:.1} cycles/packet{} ({own:.1} more than the harness: the NAT stage's own{}), {translated} translated, {} lost, {created} new sessions",
        fmt_on_cpu(t_oc),
        own_on_cpu(t_oc, h_oc),
        t.lost()
    );
    if t.lost() != 0 || created != 0 || translated != t.seen.packets {
        return Err(format!(
            "{label}: the established pass is not what it claims: {} lost, {created} new sessions, {translated} translated for {} packets seen",
            t.lost(),
            t.seen.packets
        ));
    }
    rows.push(Row {
        what: format!("{label}: translate inside → outside, established, {n} sessions"),
        unit: "Mpps".into(),
        ours: mpps,
        peer: None,
        peer_tool: None,
        ratio: None,
        note: Some(format!(
            "{cycles:.1} cycles/packet on the core{}, {own:.1} of them the NAT stage's{} (harness {h_cyc:.1}); {}{}",
            fmt_on_cpu(t_oc),
            own_on_cpu(t_oc, h_oc),
            goal_note(mpps, GOAL_MPPS, "Mpps"),
            if n >= 10_000_000 { "" } else { " (the goal is set at 10M sessions)" }
        )),
    });
    let latency = t.seen.summary(hz as u64);
    if a.unwarmed {
        let hu = home.clone();
        let cold = move || vec![Box::new(Lent::take_unwarmed(&hu)) as Box<dyn Stage>];
        let (u, u_cpu) = on_cpu(|| super::run_direct(&g, &cold, a.burst, a.core, a.secs))?;
        sessions(&home)?;
        let u_oc = on_cpu_cycles(u_cpu, u.offered);
        let um = u.sink_mpps();
        let uc = hz / (um * 1e6).max(1.0);
        println!(
            "  established, per-burst warm-up off: {um:.2} Mpps, {uc:.1} cycles/packet{} ({:.1} more than the harness{}), {} lost",
            fmt_on_cpu(u_oc),
            uc - h_cyc,
            own_on_cpu(u_oc, h_oc),
            u.lost()
        );
        rows.push(Row {
            what: format!("{label}: established, the stage's per-burst loading of table lines off"),
            unit: "Mpps".into(),
            ours: um,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!(
                "{uc:.1} cycles/packet{}; for comparison with the row above (what `Table::warm` saves)",
                fmt_on_cpu(u_oc)
            )),
        });
    }

    // 5. Both ways: out, then the reply back in, by the same instance.
    if !a.one_way {
        let in0 = counter(&home, "translated_in");
        let hb = home.clone();
        let bounce = move || vec![Box::new(Lent::take(&hb, Some(l3))) as Box<dyn Stage>];
        let (b, b_cpu) = on_cpu(|| super::run_direct(&g, &bounce, a.burst, a.core, a.secs))?;
        let b_oc = on_cpu_cycles(b_cpu, b.offered);
        sessions(&home)?;
        let back = counter(&home, "translated_in") - in0;
        let mpps2 = b.sink_mpps();
        let cyc2 = hz / (mpps2 * 1e6).max(1.0);
        println!(
            "  both ways (out, swap, back in): {mpps2:.2} Mpps = {:.2} M translations/s, {cyc2:.1} cycles/packet{} ({:.1} per translation beyond the harness{}), {back} replies translated, {} lost",
            2.0 * mpps2,
            fmt_on_cpu(b_oc),
            (cyc2 - h_cyc) / 2.0,
            per_translation(b_oc, h_oc),
            b.lost()
        );
        if b.lost() != 0 || back != b.seen.packets {
            return Err(format!(
                "{label}: the both-ways pass lost {} packets and translated {back} replies for {} packets seen",
                b.lost(),
                b.seen.packets
            ));
        }
        rows.push(Row {
            what: format!("{label}: both directions (each packet out, then its reply back in), {n} sessions"),
            unit: "M translations/s".into(),
            ours: 2.0 * mpps2,
            peer: None,
            peer_tool: None,
            ratio: None,
            note: Some(format!(
                "{mpps2:.2} Mpps of packets translated twice, {cyc2:.1} cycles/packet{}, {:.1} cycles per translation beyond the harness{} (endpoint swap included); no goal in the issue",
                fmt_on_cpu(b_oc),
                (cyc2 - h_cyc) / 2.0,
                per_translation(b_oc, h_oc),
            )),
        });
    }

    // Memory per session.
    let per = tbytes as f64 / cap as f64;
    let per_sub = sbytes as f64 / cap as f64;
    println!(
        "  memory: table {:.1} MiB for {cap} sessions = {per:.1} B per session; subscribers {:.1} MiB = {per_sub:.1} B per session of capacity; {:.1} B in all",
        mib(tbytes),
        mib(sbytes),
        per + per_sub
    );
    rows.push(Row {
        what: format!("{label}: memory per session (table reserved / capacity)"),
        unit: "B".into(),
        ours: per,
        peer: None,
        peer_tool: None,
        ratio: None,
        note: Some(format!(
            "{:.1} MiB for {cap} sessions (32-byte entries, 8-byte wheel links, free list, two indexes at load 1/2 rounded up to a power of two, the wheel); the subscriber table, reserved for one subscriber per session, adds {per_sub:.1} B ({:.1} B in all); no goal in the issue",
            mib(tbytes),
            per + per_sub
        )),
    });
    drop(home);
    Ok(TableFigures {
        mpps,
        cycles,
        new_mps: clean.then_some(new_mps),
        latency,
        gen_cycles,
        config: serde_json::json!({
            "sessions": n, "capacity": cap, "flows": n, "src_ips": a.src_ips,
            "ports_per_src": u64::from(n).div_ceil(u64::from(a.src_ips)), "dst_ips": 1,
            "pool_addresses": pool_n, "pool_first": "198.18.0.0", "allocation": "random",
            "warmup_packets": seq, "table_bytes": tbytes, "subscriber_bytes": sbytes,
            "harness_mpps": h_mpps, "gen_cycles_per_packet": gen_cycles,
        }),
    })
}

/// `1M table` for 1048576 sessions, `10M table` for 10000000, else the count.
fn label(n: u32) -> String {
    let m = f64::from(n) / 1e6;
    if n >= 1_000_000 && ((m.round() - m).abs() < 0.06) {
        format!("{:.0}M table", m.round())
    } else {
        format!("{n}-session table")
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Icmp => "icmp",
    }
}

/// `bench nat`.
pub fn run(a: &Args) -> Res<()> {
    if a.secs <= 0.0 || a.burst == 0 || a.burst > 256 {
        return Err("--secs must be positive and --burst between 1 and 256".into());
    }
    super::print_machine();
    println!(
        "config: generator ({:?}/IPv4, 64 B) → nat44 (one instance, endpoint-independent, inside port 0, outside port 1) → sink on core {}, burst {}, {} buffers; {} s per measured pass; tables of {} and {} sessions{}",
        a.proto,
        a.core,
        a.burst,
        super::BUFFERS,
        a.secs,
        a.sessions,
        a.big_sessions,
        if a.one_way { "; one way only" } else { "; both ways too" }
    );
    if a.unwarmed {
        println!("config: each established pass is repeated with the per-burst table warm-up off");
    }
    let mut rows = Vec::new();
    let small = measure_table(a, a.sessions, &label(a.sessions), &mut rows)?;
    let mut big = None;
    let mut big_note = None;
    if a.big_sessions > 0 {
        match measure_table(a, a.big_sessions, &label(a.big_sessions), &mut rows) {
            Ok(f) => big = Some(f),
            Err(e) if e.contains("are available") => {
                println!("{}: not run: {e}", label(a.big_sessions));
                big_note = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    let head = big.as_ref().unwrap_or(&small);
    let mut res = super::base(
        "nat",
        serde_json::json!({
            "proto": proto_name(a.proto), "frame": 64, "burst": a.burst, "worker_core": a.core,
            "buffers": super::BUFFERS, "secs": a.secs, "src_ips": a.src_ips,
            "stages": ["nat44"], "shape": "generator → nat44 → sink, engine direct shape, one pinned core",
            "small": small.config, "big": big.as_ref().map(|b| b.config.clone()),
            "big_skipped": big_note,
            "headline": format!("established translation at {} sessions", if big.is_some() { a.big_sessions } else { a.sessions }),
        }),
    );
    res.ours_mpps = head.mpps;
    res.ours_runs_mpps = vec![head.mpps];
    res.cycles_per_packet = head.cycles;
    res.mpps_per_core = Some(head.mpps);
    res.latency = head.latency.clone();
    res.latency_note =
        Some("the established pass of the headline table, full rate, one core".into());
    super::print_latency(&res.latency);
    res.gen_cycles_per_packet = Some(head.gen_cycles);
    res.rows = rows;
    let mut goals = Vec::new();
    match &big {
        Some(b) => goals.push(format!(
            "10M sessions {}",
            goal_note(b.mpps, GOAL_MPPS, "Mpps")
        )),
        None => goals.push(format!(
            "10M sessions not measured; at {} sessions {}",
            a.sessions,
            goal_note(small.mpps, GOAL_MPPS, "Mpps")
        )),
    }
    if let Some(x) = small.new_mps {
        goals.push(format!(
            "new sessions ({}) {}",
            label(a.sessions),
            goal_note(x, GOAL_NEW_MPS, "M/s")
        ));
    }
    println!("goals: {}", goals.join("; "));
    res.ratio_note = Some(format!(
        "no DPDK counterpart: DPDK ships no NAT44 to run beside it; goals instead: {}",
        goals.join("; ")
    ));
    super::finish(res)
}
