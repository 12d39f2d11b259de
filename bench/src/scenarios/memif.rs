//! `bench memif`: our native memif port between two dataplane processes, against a pair of
//! `dpdk-testpmd` processes over `net_memif`, runs interleaved (ours, peer, ours, peer...).
//!
//! Why it exists: VNF processes on one host are chained over memif (`docs/CHAINS.md`), so the
//! one-way rate of one memif link between two processes bounds every chain, and the tool a user
//! would otherwise pick is DPDK's `net_memif`. The issue asks for at least 1.0x testpmd's pair.
//!
//! The shape is the peer's (`shared/peers/memif-pair.sh`, `memif_pair.py`): the memif *server*
//! receives on core 0 and the *client* sends on core 1, 64-byte UDP frames from one flow,
//! bursts of 32, rings of 2^10 descriptors with 2048-byte buffers, 16384 buffers per process,
//! and the figure is the rate the server receives. testpmd's server forwards in `io` mode with
//! `--port-topology=loop`, so it also offers every burst back to the sender, which never reads
//! it (its ring fills once, then every attempt fails and the burst is freed); our receiver does
//! the same by default (`--receiver loop`), or just frees (`--receiver drop`). Our two sides are
//! two OS processes: this binary runs itself again with the hidden `--role` option, once as the
//! receiver and once as the sender, and each prints one JSON line of counters. The control
//! socket is in the abstract namespace, so nothing is left on disk.
//!
//! The receiver measures itself: after the first packet and `--warmup` seconds it counts the
//! packets it receives over `--secs` seconds of TSC, and the cycles in polls that found nothing,
//! so cycles per packet are the receiving core's, busy and idle. Every packet is accounted
//! for: generated = sent + sender drops + left unsent at the end; sent = received + receive
//! drops; received = forwarded back + offered back but refused + forward drops. A run whose
//! counters do not balance is an error.
//!
//! Unless `--no-afpacket`, a second row: AF_PACKET on a veth pair in a private network namespace
//! against `shared/peers/testpmd-afpacket-veth.sh` (testpmd `io` over two `net_af_packet`
//! ports with `--tx-first`). Ours is one process in that namespace with two AF_PACKET ports
//! forwarding into each other on one core after a first burst from the generator on each, and
//! the figure is packets sent by both ports per second, as the peer's (sum of both ports'
//! Tx-pps). The namespace is created for the run and deleted afterwards, also on error.
//!
//! Everything ends by itself: every wait has a deadline, children still running at a deadline
//! or on an error are killed (by their own pid) and reaped.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Args as ClapArgs, ValueEnum};
use serde::{Deserialize, Serialize};

use bench::gen::{GenConfig, Generator, Size};
use bench::results::{Peer, Row};
use pmd::port::afpacket::{AfPacketConfig, AfPacketPort};
use pmd::port::memif::{MemifConfig, MemifPort, Role};
use pmd::port::{Port, PortDrop, PortStats};
use pmd::Burst;

use super::{base, finish, median, peers_dir, print_machine, Res, BUFFERS};

/// How long a side waits for the memif link to come up.
const LINK_WAIT: Duration = Duration::from_secs(10);
/// The sender keeps sending this long past the receiver's window.
const SENDER_TAIL_SECS: f64 = 0.5;
/// After its deadline, how long a child gets before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(20);
/// Marks a child's report line on its stdout.
const REPORT_TAG: &str = "BENCH-MEMIF-REPORT ";
/// The memif buffer size (`net_memif`'s default `bsize`).
const BUFFER_SIZE: u32 = 2048;

/// What the memif receiver does with what it receives.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// Offers each burst back on the same port, freeing what the ring refuses (testpmd `io`
    /// with `--port-topology=loop`, the peer's server).
    Loop,
    /// Frees each burst.
    Drop,
}

/// Which part a re-executed child plays (hidden, internal).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildRole {
    /// The memif server that receives.
    Receiver,
    /// The memif client that sends.
    Sender,
    /// Two AF_PACKET ports forwarding into each other (run inside the namespace).
    Afpacket,
}

/// Options of `bench memif`.
#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    /// Seconds the receiver measures in each run (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Seconds after the first packet before the receiver's window opens.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs of ours and of the peer, interleaved (the medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Packets per burst (testpmd's default).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Frame length in bytes without FCS (testpmd txonly's default).
    #[arg(long, default_value_t = 64)]
    len: u16,
    /// Descriptors per memif ring, as log2 (`net_memif`'s default `rsize`).
    #[arg(long, default_value_t = 10)]
    log2_ring: u8,
    /// Core of the receiving process (testpmd's server forwards on CPU 0).
    #[arg(long, default_value_t = 0)]
    rx_core: usize,
    /// Core of the sending process (testpmd's client sends on CPU 1).
    #[arg(long, default_value_t = 1)]
    tx_core: usize,
    /// What the receiver does with packets: `loop` (as the peer) or `drop`.
    #[arg(long, value_enum, default_value_t = Receiver::Loop)]
    receiver: Receiver,
    /// Skip the DPDK peer.
    #[arg(long)]
    no_peer: bool,
    /// Skip the AF_PACKET row (veth pair in a private namespace, against net_af_packet).
    #[arg(long)]
    no_afpacket: bool,
    /// Core of the AF_PACKET forwarding loop.
    #[arg(long, default_value_t = 1)]
    afp_core: usize,
    /// Bursts the generator puts on each AF_PACKET port before forwarding starts (testpmd's
    /// `--tx-first` sends 1).
    #[arg(long, default_value_t = 1)]
    afp_first_bursts: usize,
    /// Bytes per AF_PACKET receive block (TPACKET_V3 hands a block over when it is full or
    /// after 1 ms; testpmd's `net_af_packet` uses 4096-byte blocks).
    #[arg(long, default_value_t = 4096)]
    afp_block: u32,
    /// AF_PACKET receive blocks.
    #[arg(long, default_value_t = 512)]
    afp_blocks: u32,
    /// Internal: run as one side of the link.
    #[arg(long, value_enum, hide = true)]
    role: Option<ChildRole>,
    /// Internal: the control socket (memif) or the namespace's two interfaces `a,b`.
    #[arg(long, hide = true)]
    socket: Option<String>,
}

/// Counters one child reports on its stdout.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SideReport {
    /// Port counters (memif; for AF_PACKET both ports summed).
    rx_packets: u64,
    tx_packets: u64,
    /// Port drops by reason name.
    drops: Vec<(String, u64)>,
    /// Sender: packets the generator made; AF_PACKET: the first bursts.
    generated: u64,
    /// Sender: left in its burst at the end (never offered again).
    unsent: u64,
    /// Receiver: packets the transmit ring refused (freed).
    refused: u64,
    /// The measured window: packets, TSC cycles, polls, empty polls and cycles in them.
    window_packets: u64,
    window_cycles: u64,
    window_polls: u64,
    window_empty_polls: u64,
    window_idle_cycles: u64,
    /// Sender: TSC cycles while sending, bursts, and bursts the ring did not take whole.
    send_cycles: u64,
    bursts: u64,
    ring_full: u64,
    /// How the packet pool is backed.
    backing: String,
    /// Packets still in flight at the end (AF_PACKET: in the kernel, not seen again).
    in_flight: u64,
}

impl SideReport {
    fn drop_total(&self, tx: bool) -> u64 {
        self.drops
            .iter()
            .filter(|(n, _)| {
                PortDrop::ALL
                    .iter()
                    .any(|d| d.name() == n && d.is_tx() == tx)
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn mpps(&self, hz: u64) -> f64 {
        self.window_packets as f64 * hz as f64 / self.window_cycles.max(1) as f64 / 1e6
    }
}

fn drops_of(s: &PortStats) -> Vec<(String, u64)> {
    PortDrop::ALL
        .iter()
        .filter(|d| s.drops[**d as usize] > 0)
        .map(|d| (d.name().to_string(), s.drops[*d as usize]))
        .collect()
}

fn memif_cfg(a: &Args, socket: &str, role: Role) -> MemifConfig {
    MemifConfig {
        socket: socket.into(),
        role,
        id: 0,
        log2_ring_size: a.log2_ring,
        buffer_size: BUFFER_SIZE,
    }
}

/// One flow of UDP/IPv4, as testpmd's txonly without `--txonly-multi-flow`.
fn gen_cfg(a: &Args) -> GenConfig {
    GenConfig {
        size: Size::Fixed(a.len),
        flows: 1,
        src_ips: 1,
        dst_ips: 1,
        ..Default::default()
    }
}

fn pin(core: usize) -> Res<()> {
    pmd::cpu::pin_current_thread(core).map_err(|e| format!("pin to core {core}: {e}"))
}

fn secs_to_tsc(secs: f64, hz: u64) -> u64 {
    (secs.max(0.0) * hz as f64) as u64
}

// ---------------------------------------------------------------------------------------------
// The children.

/// Services `port` until its link is up, or fails with `what` after [`LINK_WAIT`].
fn wait_link(port: &mut MemifPort, what: &str) -> Res<()> {
    let waited = Instant::now();
    while !port.is_up() {
        port.service();
        if waited.elapsed() > LINK_WAIT {
            return Err(format!(
                "{what} within {LINK_WAIT:?} ({})",
                port.last_error().unwrap_or("no error")
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The memif server: receives, loops back or drops, measures its window.
fn receiver(a: &Args, socket: &str) -> Res<SideReport> {
    pin(a.rx_core)?;
    let hz = pmd::cpu::tsc_hz();
    let pool = super::pool()?;
    let mut cache = pool.cache();
    let mut port = MemifPort::open("memif-rx", 0, memif_cfg(a, socket, Role::Server))
        .map_err(|e| e.to_string())?;
    wait_link(&mut port, "receiver: no sender connected")?;
    let mut r = SideReport {
        backing: format!("{:?}", pool.backing()),
        ..Default::default()
    };
    let mut b = Burst::new();
    let first_deadline = pmd::cpu::rdtsc() + secs_to_tsc(LINK_WAIT.as_secs_f64(), hz);
    // Window bounds in TSC, set at the first packet.
    let mut w: Option<(u64, u64)> = None;
    let mut w_rx0 = 0u64;
    let (mut started, mut ended) = (false, false);
    let mut prev_empty_at: Option<u64> = None;
    loop {
        let t = pmd::cpu::rdtsc();
        let in_window = started && !ended;
        if let Some(p) = prev_empty_at.take() {
            if in_window {
                r.window_idle_cycles += t - p;
            }
        }
        if let Some((w0, w1)) = w {
            if !started && t >= w0 {
                started = true;
                w_rx0 = port.stats().rx_packets;
                r.window_cycles = t;
            } else if started && !ended && t >= w1 {
                ended = true;
                r.window_packets = port.stats().rx_packets - w_rx0;
                r.window_cycles = t - r.window_cycles;
            } else if ended && t > w1 + secs_to_tsc(CHILD_GRACE.as_secs_f64() / 2.0, hz) {
                return Err("receiver: the sender did not stop after the window".into());
            }
        } else if t > first_deadline {
            return Err("receiver: the link is up but no packet came".into());
        }
        let n = port
            .rx_burst(0, &mut cache, &mut b, a.burst)
            .map_err(|e| e.to_string())?;
        if started && !ended {
            r.window_polls += 1;
        }
        if n == 0 {
            if !port.is_up() {
                break;
            }
            if started && !ended {
                r.window_empty_polls += 1;
                prev_empty_at = Some(t);
            }
            continue;
        }
        if w.is_none() {
            let w0 = t + secs_to_tsc(a.warmup, hz);
            w = Some((w0, w0 + secs_to_tsc(a.secs, hz)));
        }
        if a.receiver == Receiver::Loop {
            port.tx_burst(0, &mut cache, &mut b)
                .map_err(|e| e.to_string())?;
            r.refused += b.len() as u64;
        }
        cache.free_burst(&mut b);
    }
    if !ended {
        return Err(format!(
            "receiver: the link went down before the window ended ({})",
            port.last_error().unwrap_or("no error")
        ));
    }
    port.flush().map_err(|e| e.to_string())?;
    let s = port.stats();
    r.rx_packets = s.rx_packets;
    r.tx_packets = s.tx_packets;
    r.drops = drops_of(&s);
    Ok(r)
}

/// The memif client: the generator into memif transmit, until its deadline.
fn sender(a: &Args, socket: &str) -> Res<SideReport> {
    pin(a.tx_core)?;
    let hz = pmd::cpu::tsc_hz();
    let pool = super::pool()?;
    let mut cache = pool.cache();
    let mut gen = Generator::new("gen", 1, &gen_cfg(a))?;
    let mut port = MemifPort::open("memif-tx", 0, memif_cfg(a, socket, Role::Client))
        .map_err(|e| e.to_string())?;
    wait_link(&mut port, "sender: could not reach the receiver")?;
    let mut r = SideReport {
        backing: format!("{:?}", pool.backing()),
        ..Default::default()
    };
    let mut b = Burst::new();
    let t0 = pmd::cpu::rdtsc();
    let deadline = t0 + secs_to_tsc(a.warmup + a.secs + SENDER_TAIL_SECS, hz);
    let mut i = 0u32;
    loop {
        let room = a.burst.saturating_sub(b.len());
        if room > 0 {
            gen.rx_burst(0, &mut cache, &mut b, room)
                .map_err(|e| e.to_string())?;
        }
        port.tx_burst(0, &mut cache, &mut b)
            .map_err(|e| e.to_string())?;
        r.bursts += 1;
        if !b.is_empty() {
            r.ring_full += 1;
        }
        i = i.wrapping_add(1);
        if i.is_multiple_of(64) {
            // The transmit path never looks at the control socket; do it now and then (a peer
            // that went away is noticed here).
            if i.is_multiple_of(4096) {
                port.service();
                if !port.is_up() {
                    cache.free_burst(&mut b);
                    return Err(format!(
                        "sender: the receiver went away ({})",
                        port.last_error().unwrap_or("no error")
                    ));
                }
            }
            if pmd::cpu::rdtsc() >= deadline {
                break;
            }
        }
    }
    r.send_cycles = pmd::cpu::rdtsc() - t0;
    r.unsent = b.len() as u64;
    cache.free_burst(&mut b);
    // Gives the receiver time to take what is in the ring, then disconnects.
    port.flush().map_err(|e| e.to_string())?;
    let s = port.stats();
    r.generated = gen.stats().rx_packets;
    r.rx_packets = s.rx_packets;
    r.tx_packets = s.tx_packets;
    r.drops = drops_of(&s);
    Ok(r)
}

/// Two AF_PACKET ports on the two ends of a veth pair forwarding into each other on one core,
/// started by one burst from the generator on each (testpmd's `--tx-first`).
fn afpacket(a: &Args, ifaces: &str) -> Res<SideReport> {
    let (ia, ib) = ifaces
        .split_once(',')
        .ok_or_else(|| format!("`{ifaces}` is not two interfaces `a,b`"))?;
    pin(a.afp_core)?;
    let hz = pmd::cpu::tsc_hz();
    let pool = super::pool()?;
    let mut cache = pool.cache();
    let open = |name: &str, id: u16, iface: &str| {
        AfPacketPort::open(
            name,
            id,
            AfPacketConfig {
                interface: iface.into(),
                block_size: a.afp_block,
                rx_blocks: a.afp_blocks,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())
    };
    let mut ports = [open("afp-a", 0, ia)?, open("afp-b", 1, ib)?];
    let mut gen = Generator::new("gen", 0, &gen_cfg(a))?;
    let mut r = SideReport {
        backing: format!("{:?}", pool.backing()),
        ..Default::default()
    };
    let mut b = Burst::new();
    for p in ports.iter_mut() {
        for _ in 0..a.afp_first_bursts.max(1) {
            gen.rx_burst(0, &mut cache, &mut b, a.burst)
                .map_err(|e| e.to_string())?;
            r.generated += b.len() as u64;
            p.tx_burst(0, &mut cache, &mut b)
                .map_err(|e| e.to_string())?;
            r.refused += b.len() as u64;
            cache.free_burst(&mut b);
        }
    }
    let tx_sum = |ps: &[AfPacketPort; 2]| ps.iter().map(|p| p.stats().tx_packets).sum::<u64>();
    let t0 = pmd::cpu::rdtsc();
    let (w0, w1) = (
        t0 + secs_to_tsc(a.warmup, hz),
        t0 + secs_to_tsc(a.warmup + a.secs, hz),
    );
    let mut w_tx0 = 0u64;
    let mut started = false;
    let mut prev_empty_at: Option<u64> = None;
    let mut i = 0usize;
    loop {
        let t = pmd::cpu::rdtsc();
        if let Some(p) = prev_empty_at.take() {
            if started {
                r.window_idle_cycles += t - p;
            }
        }
        if !started && t >= w0 {
            started = true;
            w_tx0 = tx_sum(&ports);
            r.window_cycles = t;
        } else if started && t >= w1 {
            r.window_packets = tx_sum(&ports) - w_tx0;
            r.window_cycles = t - r.window_cycles;
            break;
        }
        let (from, to) = (i & 1, (i & 1) ^ 1);
        i = i.wrapping_add(1);
        let n = ports[from]
            .rx_burst(0, &mut cache, &mut b, a.burst)
            .map_err(|e| e.to_string())?;
        if started {
            r.window_polls += 1;
        }
        if n == 0 {
            if started {
                r.window_empty_polls += 1;
                prev_empty_at = Some(t);
            }
            continue;
        }
        ports[to]
            .tx_burst(0, &mut cache, &mut b)
            .map_err(|e| e.to_string())?;
        r.refused += b.len() as u64;
        cache.free_burst(&mut b);
    }
    for p in ports.iter_mut() {
        p.flush().map_err(|e| e.to_string())?;
    }
    for p in &ports {
        let s = p.stats();
        r.rx_packets += s.rx_packets;
        r.tx_packets += s.tx_packets;
        for (n, v) in drops_of(&s) {
            match r.drops.iter_mut().find(|d| d.0 == n) {
                Some(d) => d.1 += v,
                None => r.drops.push((n, v)),
            }
        }
    }
    // What was sent and not received back is still in the kernel (veth, socket rings) or was
    // dropped there: the kernel's count, not ours.
    r.in_flight = r.tx_packets.saturating_sub(r.rx_packets);
    Ok(r)
}

fn child(a: &Args, role: ChildRole) -> Res<()> {
    let socket = a
        .socket
        .as_deref()
        .ok_or("--role needs --socket (internal option)")?;
    let r = match role {
        ChildRole::Receiver => receiver(a, socket)?,
        ChildRole::Sender => sender(a, socket)?,
        ChildRole::Afpacket => afpacket(a, socket)?,
    };
    let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
    println!("{REPORT_TAG}{line}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The parent: children, namespaces, peers.

/// Children this run started; whatever is still running when it is dropped is killed (by its
/// own pid) and reaped.
struct Kids(Vec<(String, Child)>);

impl Kids {
    /// Waits for every child until `deadline`, then returns each one's stdout and stderr.
    fn wait_all(&mut self, deadline: Instant) -> Res<Vec<(String, bool, String, String)>> {
        let mut out = Vec::new();
        for (name, c) in self.0.iter_mut() {
            let status = loop {
                match c.try_wait() {
                    Ok(Some(s)) => break s,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Ok(None) => {
                        return Err(format!("{name} did not finish in time (killed)"));
                    }
                    Err(e) => return Err(format!("{name}: wait: {e}")),
                }
            };
            let mut so = String::new();
            let mut se = String::new();
            if let Some(p) = c.stdout.as_mut() {
                let _ = p.read_to_string(&mut so);
            }
            if let Some(p) = c.stderr.as_mut() {
                let _ = p.read_to_string(&mut se);
            }
            out.push((name.clone(), status.success(), so, se));
        }
        Ok(out)
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for (_, c) in self.0.iter_mut() {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

/// The arguments a child gets: the measuring options of `a`, and its role.
fn child_args(a: &Args, role: &str, socket: &str) -> Vec<String> {
    let mut v: Vec<String> = vec!["memif".into()];
    let mut kv = |k: &str, x: String| {
        v.push(format!("--{k}"));
        v.push(x);
    };
    kv("secs", a.secs.to_string());
    kv("warmup", a.warmup.to_string());
    kv("burst", a.burst.to_string());
    kv("len", a.len.to_string());
    kv("log2-ring", a.log2_ring.to_string());
    kv("rx-core", a.rx_core.to_string());
    kv("tx-core", a.tx_core.to_string());
    kv("afp-core", a.afp_core.to_string());
    kv("afp-first-bursts", a.afp_first_bursts.to_string());
    kv("afp-block", a.afp_block.to_string());
    kv("afp-blocks", a.afp_blocks.to_string());
    kv(
        "receiver",
        match a.receiver {
            Receiver::Loop => "loop".into(),
            Receiver::Drop => "drop".into(),
        },
    );
    kv("role", role.into());
    kv("socket", socket.into());
    v
}

fn spawn(prefix: &[&str], args: &[String]) -> Res<Child> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))
}

fn parse_report(name: &str, ok: bool, stdout: &str, stderr: &str) -> Res<SideReport> {
    let line = stdout.lines().find_map(|l| l.strip_prefix(REPORT_TAG));
    match (ok, line) {
        (true, Some(l)) => {
            serde_json::from_str(l).map_err(|e| format!("{name}: unreadable report: {e}"))
        }
        _ => Err(format!(
            "{name} failed:\n{}{}",
            stderr.trim_end(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stdout.trim_end())
            }
        )),
    }
}

/// One of our memif runs: what each side reported.
struct MemifRun {
    rx: SideReport,
    tx: SideReport,
}

fn ours_memif(a: &Args, run: usize) -> Res<MemifRun> {
    let socket = format!("@bench-memif-{}-{run}", std::process::id());
    let mut kids = Kids(Vec::new());
    kids.0.push((
        "receiver".into(),
        spawn(&[], &child_args(a, "receiver", &socket))?,
    ));
    // The client retries every 100 ms; give the server its socket first.
    std::thread::sleep(Duration::from_millis(200));
    kids.0.push((
        "sender".into(),
        spawn(&[], &child_args(a, "sender", &socket))?,
    ));
    let deadline = Instant::now()
        + LINK_WAIT * 2
        + Duration::from_secs_f64(a.warmup + a.secs + SENDER_TAIL_SECS)
        + CHILD_GRACE;
    let outs = kids.wait_all(deadline)?;
    let mut rep = Vec::new();
    for (name, ok, so, se) in &outs {
        rep.push(parse_report(name, *ok, so, se)?);
    }
    let (Some(tx), Some(rx)) = (rep.pop(), rep.pop()) else {
        return Err("a side did not report".into());
    };
    // Every packet is somewhere.
    let tx_drops = tx.drop_total(true);
    if tx.generated != tx.tx_packets + tx_drops + tx.unsent {
        return Err(format!(
            "sender counters do not balance: generated {} != sent {} + dropped {tx_drops} + unsent {}",
            tx.generated, tx.tx_packets, tx.unsent
        ));
    }
    let rx_drops = rx.drop_total(false);
    if tx.tx_packets != rx.rx_packets + rx_drops {
        return Err(format!(
            "the link does not balance: sent {} != received {} + receive drops {rx_drops} ({:?})",
            tx.tx_packets, rx.rx_packets, rx.drops
        ));
    }
    let fwd_drops = rx.drop_total(true);
    if a.receiver == Receiver::Loop && rx.rx_packets != rx.tx_packets + fwd_drops + rx.refused {
        return Err(format!(
            "receiver counters do not balance: received {} != looped back {} + dropped {fwd_drops} + refused {}",
            rx.rx_packets, rx.tx_packets, rx.refused
        ));
    }
    if rx.window_packets == 0 {
        return Err("the receiver saw no packet in its window".into());
    }
    Ok(MemifRun { rx, tx })
}

/// A network namespace with a veth pair in it, deleted when dropped.
struct Netns(String);

impl Netns {
    fn create(name: &str) -> Res<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", name, "link", "add", "vba", "type", "veth", "peer", "name", "vbb",
        ])?;
        // No IPv6 router solicitations or DAD on the pair: only our packets cross it.
        let _ = Command::new("ip")
            .args(["netns", "exec", name, "sysctl", "-qw"])
            .arg("net.ipv6.conf.all.disable_ipv6=1")
            .output();
        ip(&["-n", name, "link", "set", "vba", "up"])?;
        ip(&["-n", name, "link", "set", "vbb", "up"])?;
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn ip(args: &[&str]) -> Res<()> {
    let o = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(())
}

/// Deletes namespaces an earlier `bench memif` left behind when it was killed before it could
/// (`bench-afp-<pid>-<run>` whose process is gone).
fn remove_stale_namespaces() {
    let Ok(o) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let pid = name
            .strip_prefix("bench-afp-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                drop(Netns(name.to_string()));
            }
        }
    }
}

fn ours_afpacket(a: &Args, run: usize) -> Res<SideReport> {
    remove_stale_namespaces();
    let ns = Netns::create(&format!("bench-afp-{}-{run}", std::process::id()))?;
    let mut kids = Kids(vec![(
        "afpacket".into(),
        spawn(
            &["ip", "netns", "exec", &ns.0],
            &child_args(a, "afpacket", "vba,vbb"),
        )?,
    )]);
    let deadline = Instant::now() + Duration::from_secs_f64(a.warmup + a.secs) + CHILD_GRACE;
    let outs = kids.wait_all(deadline)?;
    drop(kids);
    drop(ns);
    let (name, ok, so, se) = outs.first().ok_or("the AF_PACKET process did not report")?;
    let r = parse_report(name, *ok, so, se)?;
    // Ours: every packet received was sent on, dropped, or refused by the transmit ring.
    if r.rx_packets + r.generated != r.tx_packets + r.drop_total(true) + r.refused {
        return Err(format!(
            "AF_PACKET counters do not balance: received {} + first bursts {} != sent {} + dropped {} + refused {}",
            r.rx_packets, r.generated, r.tx_packets, r.drop_total(true), r.refused
        ));
    }
    if r.window_packets == 0 {
        return Err("no packet went round the veth pair in the window".into());
    }
    Ok(r)
}

/// What a peer script printed: its figure, the sending side's rate if it says, its commands.
struct PeerRun {
    mpps: f64,
    sender_mpps: Option<f64>,
    command: String,
}

fn run_peer_script(script: &str, secs: f64) -> Res<PeerRun> {
    let path = peers_dir().join(script);
    if !path.exists() {
        return Err(format!(
            "{} not found (set DATAPLANE_PEERS)",
            path.display()
        ));
    }
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()));
    if !found {
        return Err("dpdk-testpmd is not installed (run scripts/setup.sh as root)".into());
    }
    // The script stops its testpmd processes itself (SIGINT, then SIGKILL after 15 s).
    let out = Command::new("bash")
        .arg(&path)
        .env("RUNS", "1")
        .env("SECS", format!("{}", secs.ceil() as u64))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mpps = lines
        .last()
        .and_then(|l| l.strip_prefix("Mpps:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("{script} did not end with `Mpps: X`; its output:\n{text}"))?;
    // memif_pair.py: "median: server(io) rx A tx B | client(txonly) tx C rx D Mpps".
    let sender_mpps = lines
        .iter()
        .find_map(|l| l.strip_prefix("median:"))
        .and_then(|l| l.split_once('|'))
        .and_then(|(_, client)| {
            let w: Vec<&str> = client.split_whitespace().collect();
            let i = w.iter().position(|x| *x == "tx")?;
            w.get(i + 1)?.parse::<f64>().ok()
        });
    let command = lines
        .iter()
        .filter(|l| l.contains("dpdk-testpmd"))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join("; ");
    Ok(PeerRun {
        mpps,
        sender_mpps,
        command: if command.is_empty() {
            script.into()
        } else {
            command
        },
    })
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
}

/// One row's interleaved figures.
#[derive(Default)]
struct Series {
    ours: Vec<f64>,
    cpp: Vec<f64>,
    peer: Vec<f64>,
    pairs: Vec<f64>,
    peer_cmd: Option<String>,
    peer_err: Option<String>,
}

impl Series {
    fn peer_result(&mut self, r: Res<PeerRun>, ours: f64, what: &str, run: usize) {
        match r {
            Ok(p) => {
                println!(
                    "  peer run {run}: {:.2} Mpps{} (pair ratio {:.3})",
                    p.mpps,
                    p.sender_mpps.map_or(String::new(), |s| format!(
                        " received; its sender {s:.2} Mpps"
                    )),
                    ours / p.mpps.max(1e-9)
                );
                self.peer.push(p.mpps);
                self.pairs.push(ours / p.mpps.max(1e-9));
                self.peer_cmd = Some(p.command);
            }
            Err(e) => {
                println!("peer ({what}): not run: {e}");
                self.peer_err = Some(e);
            }
        }
    }

    fn row(&self, what: &str, peer_tool: &str, goal: Option<f64>) -> Row {
        let ours = median(&self.ours);
        let ratio = (!self.pairs.is_empty()).then(|| median(&self.pairs));
        Row {
            what: what.into(),
            unit: "Mpps".into(),
            ours,
            peer: (!self.peer.is_empty()).then(|| median(&self.peer)),
            peer_tool: Some(peer_tool.into()),
            ratio,
            note: Some(format!(
                "{:.1} cycles/packet (TSC) on the measuring core; {}",
                median(&self.cpp),
                match (goal, ratio) {
                    (Some(g), Some(r)) if r >= g => format!("goal {g:.1}x: met"),
                    (Some(g), Some(_)) => format!("goal {g:.1}x: not met"),
                    (Some(g), None) => format!("goal {g:.1}x: no peer figure"),
                    (None, _) => "no goal set".to_string(),
                }
            )),
        }
    }
}

/// `bench memif`.
pub fn run(a: &Args) -> Res<()> {
    if let Some(role) = a.role {
        return child(a, role);
    }
    if a.rx_core == a.tx_core {
        return Err("the receiver and the sender need two different cores".into());
    }
    if !(1..=pmd::BURST_MAX).contains(&a.burst) {
        return Err(format!("burst must be 1..={}", pmd::BURST_MAX));
    }
    if !(64..=1518).contains(&a.len) {
        return Err(format!("frame length {} is not between 64 and 1518", a.len));
    }
    if !(a.secs > 0.0 && a.warmup >= 0.0) {
        return Err("--secs must be positive and --warmup not negative".into());
    }
    let runs = a.runs.max(1);
    let hz = pmd::cpu::tsc_hz();
    let peer = !a.no_peer;
    print_machine();
    println!(
        "config: memif {len} B UDP/IPv4 (1 flow) from a sender process on core {tx} (generator → memif client tx) to a receiver process on core {rx} (memif server rx → {recv}), burst {burst}, ring 2^{log2} descriptors of {BUFFER_SIZE} B, {BUFFERS} buffers per process, figure: packets the receiver takes over {secs} s (TSC) after {warm} s of warm-up; {runs} runs{inter}",
        len = a.len,
        tx = a.tx_core,
        rx = a.rx_core,
        recv = match a.receiver {
            Receiver::Loop => "offered back on the same port, freed when refused (testpmd io, port-topology loop)",
            Receiver::Drop => "freed",
        },
        burst = a.burst,
        log2 = a.log2_ring,
        secs = a.secs,
        warm = a.warmup,
        inter = if peer { ", interleaved with the peer" } else { "" },
    );
    println!(
        "peer: shared/peers/memif-pair.sh: dpdk-testpmd server --forward-mode=io --port-topology=loop on CPU 0 receiving from dpdk-testpmd client --forward-mode=txonly on CPU 1 over net_memif (64 B, burst 32, rsize 10, bsize 2048, 16384 mbufs); figure: the server's Rx-pps"
    );
    if !a.no_afpacket {
        println!(
            "config (AF_PACKET): one process on core {} in a private namespace, two AF_PACKET ports on the ends of a veth pair forwarding into each other after {} burst(s) of {} from the generator on each (testpmd's --tx-first: 1), figure: packets both ports send per second; peer: shared/peers/testpmd-afpacket-veth.sh (testpmd io over two net_af_packet, its figure the sum of both ports' Tx-pps)",
            a.afp_core, a.afp_first_bursts.max(1), a.burst
        );
    }
    // testpmd reads every 3 s and drops the first reading: it needs a longer run for a figure.
    let peer_secs = a.secs.max(6.0) + 3.0;
    let mut m = Series::default();
    let mut f = Series::default();
    let mut sender_mpps = Vec::new();
    let mut backing = String::new();
    for run in 1..=runs {
        let o = ours_memif(a, run)?;
        let mpps = o.rx.mpps(hz);
        let cpp = o.rx.window_cycles as f64 / o.rx.window_packets.max(1) as f64;
        let sent = o.tx.tx_packets as f64 * hz as f64 / o.tx.send_cycles.max(1) as f64 / 1e6;
        println!(
            "  ours run {run}: {mpps:.2} Mpps received ({} packets in {:.2} s), receiver {cpp:.1} cycles/packet ({:.1} % of them in empty polls, {:.1} % of polls empty); sender {sent:.2} Mpps over its run, {:.1} cycles/packet, {:.1} % of bursts met a full ring; pools: {} / {}",
            o.rx.window_packets,
            o.rx.window_cycles as f64 / hz as f64,
            100.0 * o.rx.window_idle_cycles as f64 / o.rx.window_cycles.max(1) as f64,
            100.0 * o.rx.window_empty_polls as f64 / o.rx.window_polls.max(1) as f64,
            o.tx.send_cycles as f64 / o.tx.tx_packets.max(1) as f64,
            100.0 * o.tx.ring_full as f64 / o.tx.bursts.max(1) as f64,
            o.rx.backing,
            o.tx.backing,
        );
        println!(
            "    counters: sender generated {} = sent {} + dropped {} + unsent {}; receiver received {} (receive drops {}) = looped back {} + dropped {} + refused {}; balanced{}",
            o.tx.generated,
            o.tx.tx_packets,
            o.tx.drop_total(true),
            o.tx.unsent,
            o.rx.rx_packets,
            o.rx.drop_total(false),
            o.rx.tx_packets,
            o.rx.drop_total(true),
            o.rx.refused,
            if o.rx.drops.is_empty() {
                String::new()
            } else {
                format!(
                    " (receiver drops: {}; tx_lost_in_ring is what it looped back into the ring the sender never reads)",
                    o.rx.drops
                        .iter()
                        .map(|(n, v)| format!("{n} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        backing = format!("receiver {}, sender {}", o.rx.backing, o.tx.backing);
        m.ours.push(mpps);
        m.cpp.push(cpp);
        sender_mpps.push(sent);
        if peer && m.peer_err.is_none() {
            m.peer_result(
                run_peer_script("memif-pair.sh", peer_secs),
                mpps,
                "memif",
                run,
            );
        }
        if !a.no_afpacket {
            let r = ours_afpacket(a, run)?;
            let fm = r.mpps(hz);
            let fcpp = r.window_cycles as f64 / r.window_packets.max(1) as f64;
            println!(
                "  ours AF_PACKET run {run}: {fm:.2} Mpps sent by both ports, {fcpp:.1} cycles/packet ({:.1} % of polls empty); received {}, sent {}, refused {}, in the kernel at the end {}",
                100.0 * r.window_empty_polls as f64 / r.window_polls.max(1) as f64,
                r.rx_packets,
                r.tx_packets,
                r.refused,
                r.in_flight
            );
            f.ours.push(fm);
            f.cpp.push(fcpp);
            if peer && f.peer_err.is_none() {
                f.peer_result(
                    run_peer_script("testpmd-afpacket-veth.sh", peer_secs),
                    fm,
                    "AF_PACKET",
                    run,
                );
            }
        }
    }
    let ours_m = median(&m.ours);
    println!(
        "memif: ours {ours_m:.2} Mpps one way (median of {runs}), {:.1} cycles/packet on the receiving core at TSC {:.2} GHz",
        median(&m.cpp),
        hz as f64 / 1e9
    );
    let mut res = base(
        "memif",
        serde_json::json!({
            "frame_len": a.len, "proto": "udp ipv4", "flows": 1, "burst": a.burst,
            "ring_descriptors": 1u32 << a.log2_ring, "buffer_size": BUFFER_SIZE,
            "buffers_per_process": BUFFERS, "receiver_core": a.rx_core, "sender_core": a.tx_core,
            "receiver": format!("{:?}", a.receiver).to_lowercase(), "processes": 2,
            "secs": a.secs, "warmup_secs": a.warmup, "runs": runs, "interleaved": peer,
            "pools": backing, "sender_mpps_runs": rounded(&sender_mpps),
            "afpacket": (!a.no_afpacket).then(|| serde_json::json!({
                "core": a.afp_core, "ports": 2, "link": "veth pair in a private namespace",
                "start": format!("{} burst(s) of {} from the generator on each port", a.afp_first_bursts.max(1), a.burst),
                "figure": "packets sent by both ports per second",
            })),
        }),
    );
    res.ours_mpps = ours_m;
    res.ours_runs_mpps = m.ours.clone();
    res.cycles_per_packet = median(&m.cpp);
    res.cores = 2;
    res.mpps_per_core = Some(ours_m / 2.0);
    res.latency_note = Some(
        "not measured: at full rate the ring stays full, so it would measure the queue".into(),
    );
    let memif_tool = "dpdk-testpmd txonly → io over net_memif (two processes)";
    res.rows.push(m.row(
        &format!(
            "memif one way, {} B, two processes (rate at the receiver)",
            a.len
        ),
        memif_tool,
        Some(1.0),
    ));
    if !a.no_afpacket {
        res.rows.push(f.row(
            &format!(
                "AF_PACKET on a veth pair, {} B, io loop on one core (packets sent)",
                a.len
            ),
            "dpdk-testpmd io over two net_af_packet",
            None,
        ));
        println!(
            "AF_PACKET: ours {:.2} Mpps (median of {runs}){}",
            median(&f.ours),
            if f.pairs.is_empty() {
                String::new()
            } else {
                format!(
                    ", peer {:.2} Mpps, same-run ratios {:?}",
                    median(&f.peer),
                    rounded(&f.pairs)
                )
            }
        );
    }
    if !m.pairs.is_empty() {
        let peer_m = median(&m.peer);
        println!(
            "peer: {memif_tool} = {peer_m:.2} Mpps (median of {}); same-run ratios {:?}",
            m.peer.len(),
            rounded(&m.pairs)
        );
        res.peer = Some(Peer {
            tool: memif_tool.into(),
            command: m.peer_cmd.clone().unwrap_or_default(),
            mpps: peer_m,
        });
        res.peer_runs_mpps = m.peer.clone();
        res.pair_ratios = m.pairs.clone();
        res.ratio = Some(median(&m.pairs));
    } else {
        res.ratio_note = Some(match &m.peer_err {
            Some(e) => format!("peer not run: {}", e.lines().next().unwrap_or("")),
            None => "peer skipped (--no-peer)".into(),
        });
    }
    finish(res)
}
