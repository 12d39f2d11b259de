//! From a validated [`Config`] to a running engine: ports opened, pool mapped, chain built.
//!
//! Kept apart from the command line so tests and benchmarks build engines exactly the way the
//! binary does.

use std::path::{Path, PathBuf};

use pmd::mem::{numa_node_of_cpu, HugePolicy};
use pmd::port::afpacket::{AfPacketConfig, AfPacketPort};
use pmd::port::memif::{MemifConfig, MemifPort};
use pmd::port::null::NullPort;
use pmd::port::pcap::PcapPort;
use pmd::port::Port;
use pmd::{Pool, PoolConfig};

use crate::config::{BuildEnv, Config, HugeMode, LayoutMode, PortKind};
use crate::engine::{ClockMode, Engine, EngineOptions, Layout, Report};
use crate::stage::Stage;

/// Files given on the `replay` command line: `[PORT=]FILE`.
#[derive(Debug, Clone, Default)]
pub struct ReplayFiles {
    /// `--in` arguments.
    pub inputs: Vec<String>,
    /// `--out` arguments.
    pub outputs: Vec<String>,
}

/// Overrides from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Worker cores.
    pub workers: Option<Vec<usize>>,
    /// Layout.
    pub layout: Option<LayoutMode>,
}

/// An error building or running, with a message meant for a person.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl Config {
    /// Applies command-line overrides (re-validating what they touch).
    pub fn apply(&mut self, o: &Overrides) -> Result<(), BuildError> {
        if let Some(w) = &o.workers {
            let online = pmd::mem::online_cpus();
            for c in w {
                if !online.contains(c) {
                    return Err(BuildError(format!(
                        "--workers: core {c} is not online (online: {})",
                        crate::config::cpu_list_string(&online)
                    )));
                }
            }
            if w.is_empty() {
                return Err(BuildError("--workers: expected at least one core".into()));
            }
            self.workers = w.clone();
        }
        if let Some(l) = o.layout {
            self.layout = l;
        }
        if self.layout == LayoutMode::Pipeline
            && (self.segments.len() != self.workers.len()
                || self.segments.iter().sum::<usize>() != self.stages.len())
        {
            self.segments = crate::config::even_segments(self.stages.len(), self.workers.len());
        }
        if self.layout == LayoutMode::RunToCompletion {
            self.segments.clear();
        }
        Ok(())
    }
}

fn split_arg(a: &str) -> (Option<&str>, &str) {
    match a.split_once('=') {
        Some((p, f)) if !p.is_empty() && !p.contains('/') => (Some(p), f),
        _ => (None, a),
    }
}

/// The input and output capture of one port.
type PortFiles = (Option<PathBuf>, Option<PathBuf>);

/// Decides which file each pcap port reads and writes in a replay.
fn replay_paths(cfg: &Config, files: &ReplayFiles) -> Result<Vec<PortFiles>, BuildError> {
    let mut paths: Vec<PortFiles> = cfg
        .ports
        .iter()
        .map(|p| match &p.kind {
            PortKind::Pcap { input, output } => (input.clone(), output.clone()),
            _ => (None, None),
        })
        .collect();
    for (args, order, is_in) in [
        (&files.inputs, &cfg.replay_inputs, true),
        (&files.outputs, &cfg.replay_outputs, false),
    ] {
        let flag = if is_in { "--in" } else { "--out" };
        let mut k = 0;
        for a in args {
            let (port, file) = split_arg(a);
            let id = match port {
                Some(name) => cfg.port_id(name).ok_or_else(|| {
                    BuildError(format!(
                        "{flag} {a}: the configuration has no port named {name:?}"
                    ))
                })?,
                None => {
                    let id = *order.get(k).ok_or_else(|| {
                        BuildError(format!(
                            "{flag} {a}: the configuration ({}) maps {} {} port(s) ([replay] {}); name the port as PORT=FILE",
                            cfg.file,
                            order.len(),
                            if is_in { "input" } else { "output" },
                            if is_in { "inputs" } else { "outputs" }
                        ))
                    })?;
                    k += 1;
                    id
                }
            };
            let p = &cfg.ports[id as usize];
            if !matches!(p.kind, PortKind::Pcap { .. }) {
                return Err(BuildError(format!(
                    "{flag} {a}: port {} is not a pcap port",
                    p.name
                )));
            }
            let path = PathBuf::from(file);
            if is_in {
                paths[id as usize].0 = Some(path);
            } else {
                paths[id as usize].1 = Some(path);
            }
        }
    }
    Ok(paths)
}

/// The DPDK side of a run: the EAL and the mempool DPDK ports receive into.
#[cfg(feature = "dpdk")]
struct DpdkEnv {
    eal: pmd::dpdk::Eal,
    pool: pmd::dpdk::DpdkPool,
}

/// Without the `dpdk` feature there is no DPDK side (and the configuration refuses DPDK ports).
#[cfg(not(feature = "dpdk"))]
enum DpdkEnv {}

/// Opens the ports and maps the pool they receive into: the DPDK mempool when a port is a DPDK
/// device (packets then stay in their `rte_mbuf`s from receive to transmit), ours otherwise.
/// `files` is `Some` in replay.
pub fn open(
    cfg: &Config,
    files: Option<&ReplayFiles>,
) -> Result<(Vec<Box<dyn Port>>, Pool), BuildError> {
    #[cfg(feature = "dpdk")]
    if cfg
        .ports
        .iter()
        .any(|p| matches!(p.kind, PortKind::Dpdk { .. }))
    {
        let env = dpdk_env(cfg)?;
        let ports = open_ports_in(cfg, files, Some(&env))?;
        return Ok((ports, env.pool.pool().clone()));
    }
    let ports = open_ports_in(cfg, files, None)?;
    Ok((ports, build_pool(cfg)?))
}

/// EAL arguments when the configuration gives none: quiet logs, no files left behind, and
/// without free hugepages (or with `hugepages = "never"`) ordinary memory sized for the pool.
#[cfg(feature = "dpdk")]
fn default_eal_args(cfg: &Config) -> Vec<String> {
    let mut args: Vec<String> = ["--no-telemetry", "--log-level", "error"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let free = pmd::mem::hugepages_free().unwrap_or(0);
    let no_huge = match cfg.hugepages {
        HugeMode::Never => true,
        HugeMode::Require => false,
        HugeMode::Prefer => free == 0,
    };
    if no_huge {
        if cfg.hugepages == HugeMode::Prefer {
            eprintln!(
                "warning: no free 2 MiB hugepages: DPDK runs on ordinary pages (--no-huge); \
                 scripts/setup-hugepages.sh reserves some"
            );
        }
        // mbuf (128) + our header (128) + headroom + data room per buffer, with room for the
        // mempool's caches and the devices' rings.
        let per = 256 + u64::from(cfg.headroom) + u64::from(cfg.data_room);
        let mb = (u64::from(cfg.buffers) * per * 3 / 2) / (1 << 20) + 128;
        // (--in-memory needs hugepages; --no-shconf keeps the run from leaving files behind.)
        args.extend([
            "--no-huge".into(),
            "--no-shconf".into(),
            "-m".into(),
            mb.to_string(),
        ]);
    } else {
        args.push("--in-memory".into());
    }
    args
}

/// Brings up the EAL (once per process) and the mempool (one per size, reused by later runs
/// in the same process, since DPDK never frees a mempool's memory).
#[cfg(feature = "dpdk")]
fn dpdk_env(cfg: &Config) -> Result<DpdkEnv, BuildError> {
    use std::sync::Mutex;
    static POOLS: Mutex<Vec<((u32, u16), pmd::dpdk::DpdkPool)>> = Mutex::new(Vec::new());
    if cfg.headroom != 128 {
        return Err(BuildError(format!(
            "{}: memory.headroom: DPDK ports use DPDK's 128-byte headroom (got {})",
            cfg.file, cfg.headroom
        )));
    }
    let args = cfg
        .dpdk_eal
        .clone()
        .unwrap_or_else(|| default_eal_args(cfg));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let eal = pmd::dpdk::Eal::init(&refs).map_err(|e| {
        BuildError(format!(
            "{}: dpdk.eal: {e} (hugepages reserved? scripts/setup-hugepages.sh)",
            cfg.file
        ))
    })?;
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let want = (cfg.buffers, cfg.data_room);
    if let Some((_, p)) = pools.iter().find(|(k, _)| *k == want) {
        return Ok(DpdkEnv {
            eal,
            pool: p.clone(),
        });
    }
    let name = format!("packets{}", pools.len());
    let socket = numa_node_of_cpu(cfg.workers[0]);
    let pool = pmd::dpdk::DpdkPool::new(&eal, &name, cfg.buffers, cfg.data_room, socket)
        .map_err(|e| BuildError(format!("{}: memory: {e}", cfg.file)))?;
    pools.push((want, pool.clone()));
    Ok(DpdkEnv { eal, pool })
}

/// Opens the ports of a configuration without DPDK ports. `files` is `Some` in replay.
pub fn open_ports(
    cfg: &Config,
    files: Option<&ReplayFiles>,
) -> Result<Vec<Box<dyn Port>>, BuildError> {
    open_ports_in(cfg, files, None)
}

fn open_ports_in(
    cfg: &Config,
    files: Option<&ReplayFiles>,
    dpdk: Option<&DpdkEnv>,
) -> Result<Vec<Box<dyn Port>>, BuildError> {
    let paths = match files {
        Some(f) => replay_paths(cfg, f)?,
        None => cfg
            .ports
            .iter()
            .map(|p| match &p.kind {
                PortKind::Pcap { input, output } => (input.clone(), output.clone()),
                _ => (None, None),
            })
            .collect(),
    };
    let mut ports: Vec<Box<dyn Port>> = Vec::new();
    for (i, (p, (input, output))) in cfg.ports.iter().zip(paths).enumerate() {
        match &p.kind {
            PortKind::Pcap { .. } => {
                let port = PcapPort::open(&p.name, i as u16, input.as_deref(), output.as_deref())
                    .map_err(|e| BuildError(format!("port {}: {e}", p.name)))?;
                if let Some(t) = &port.scan_report().truncated {
                    eprintln!(
                        "warning: port {}: {t}; replaying the {} complete packets before it",
                        p.name,
                        port.scan_report().packets
                    );
                }
                ports.push(Box::new(port));
            }
            PortKind::Null { packet_len, limit } => {
                ports.push(Box::new(NullPort::new(
                    &p.name,
                    i as u16,
                    *packet_len,
                    *limit,
                )));
            }
            PortKind::Memif {
                role,
                socket,
                id,
                ring_size,
                buffer_size,
            } => {
                let port = MemifPort::open(
                    &p.name,
                    i as u16,
                    MemifConfig {
                        socket: socket.clone(),
                        role: *role,
                        id: *id,
                        log2_ring_size: ring_size.trailing_zeros() as u8,
                        buffer_size: *buffer_size,
                    },
                )
                .map_err(|e| BuildError(format!("port {}: {e}", p.name)))?;
                ports.push(Box::new(port));
            }
            PortKind::AfPacket {
                interface,
                fanout,
                queues,
                spread,
            } => {
                let port = AfPacketPort::open(
                    &p.name,
                    i as u16,
                    AfPacketConfig {
                        interface: interface.clone(),
                        fanout: *fanout,
                        queues: *queues,
                        spread: *spread,
                        ..AfPacketConfig::default()
                    },
                )
                .map_err(|e| BuildError(format!("port {}: {e}", p.name)))?;
                ports.push(Box::new(port));
            }
            #[cfg(feature = "dpdk")]
            PortKind::Dpdk {
                device,
                devargs,
                rx_desc,
                tx_desc,
                ends,
                queues,
                spread,
            } => {
                let Some(env) = dpdk else {
                    return Err(BuildError(format!(
                        "port {}: a DPDK port needs build::open (the EAL and its mempool)",
                        p.name
                    )));
                };
                let opts = pmd::dpdk::DpdkPortOptions {
                    rx_desc: *rx_desc,
                    tx_desc: *tx_desc,
                    devargs: devargs.clone(),
                    ends: *ends,
                    queues: *queues,
                    spread: *spread,
                };
                let port = pmd::dpdk::DpdkPort::open_with(
                    &env.eal, &p.name, i as u16, device, &env.pool, &opts,
                )
                .map_err(|e| {
                    BuildError(format!("{}:{}: port {}: {e}", cfg.file, p.line, p.name))
                })?;
                ports.push(Box::new(port));
            }
            #[cfg(not(feature = "dpdk"))]
            PortKind::Dpdk { .. } => {
                let _ = dpdk;
                return Err(BuildError(format!(
                    "port {}: this dataplane was built without DPDK (--features dpdk)",
                    p.name
                )));
            }
        }
    }
    Ok(ports)
}

/// Builds one instance of the chain, for run-to-completion worker `worker` of `workers`.
pub fn build_chain(cfg: &Config, worker: usize, workers: usize) -> Vec<Box<dyn Stage>> {
    let env = BuildEnv {
        port_macs: cfg.ports.iter().map(|p| p.mac).collect(),
        worker,
        workers,
    };
    cfg.stages.iter().map(|s| s.build(&env)).collect()
}

/// Maps the pool.
pub fn build_pool(cfg: &Config) -> Result<Pool, BuildError> {
    Pool::new(&PoolConfig {
        name: "packets".into(),
        count: cfg.buffers,
        data_room: cfg.data_room,
        headroom: cfg.headroom,
        numa_node: numa_node_of_cpu(cfg.workers[0]),
        huge: match cfg.hugepages {
            HugeMode::Prefer => HugePolicy::Prefer,
            HugeMode::Require => HugePolicy::Require,
            HugeMode::Never => HugePolicy::Never,
        },
    })
    .map_err(|e| BuildError(e.to_string()))
}

/// Engine options for the configuration.
pub fn engine_options(cfg: &Config, offline: bool) -> EngineOptions {
    EngineOptions {
        burst: cfg.burst,
        worker_cores: cfg.workers.iter().map(|&c| Some(c)).collect(),
        io_core: cfg.io_core,
        layout: match cfg.layout {
            LayoutMode::RunToCompletion => Layout::RunToCompletion,
            LayoutMode::Pipeline => Layout::Pipeline {
                segments: cfg.segments.clone(),
            },
        },
        clock: if offline {
            ClockMode::Capture
        } else {
            ClockMode::Tsc
        },
        offline,
        ring_size: cfg.ring_size,
        steer: {
            let mut all: Vec<_> = cfg
                .stages
                .iter()
                .filter_map(|s| s.steer(cfg.workers.len()))
                .collect();
            match all.len() {
                0 => None,
                1 => all.pop(),
                _ => Some(std::sync::Arc::new(crate::engine::Steers(all)) as _),
            }
        },
        orders: cfg.orders.clone(),
        cut_through: cfg.cut_through,
    }
}

/// How many chain instances the layout builds (one per worker in run-to-completion).
fn chain_copies(cfg: &Config) -> usize {
    match cfg.layout {
        LayoutMode::RunToCompletion => cfg.workers.len(),
        LayoutMode::Pipeline => 1,
    }
}

/// Runs a configuration to the end: a replay when `files` is given, online otherwise.
pub fn run(
    cfg: &Config,
    files: Option<&ReplayFiles>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Report, BuildError> {
    let (ports, pool) = open(cfg, files)?;
    let engine = Engine::new(
        ports,
        pool,
        Box::new(|w| build_chain(cfg, w, chain_copies(cfg))),
        engine_options(cfg, files.is_some()),
    )
    .map_err(|e| BuildError(format!("{}: {e}", cfg.file)))?;
    engine.run(stop).map_err(|e| BuildError(e.to_string()))
}

/// The resolved layout, as `dataplane check` prints it.
pub fn describe(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "config: {}", cfg.file);
    let _ = writeln!(
        s,
        "memory: {} buffers x {} B data room + {} B headroom, hugepages {} (2 MiB pages free now: {})",
        cfg.buffers,
        cfg.data_room,
        cfg.headroom,
        format!("{:?}", cfg.hugepages).to_lowercase(),
        pmd::mem::hugepages_free().map_or("unknown".into(), |n| n.to_string())
    );
    if cfg
        .ports
        .iter()
        .any(|p| matches!(p.kind, PortKind::Dpdk { .. }))
    {
        let _ = writeln!(
            s,
            "dpdk: eal {}",
            cfg.dpdk_eal.as_ref().map_or_else(
                || "defaults (--in-memory, --no-huge without free hugepages)".into(),
                |a| a.join(" ")
            )
        );
    }
    let _ = writeln!(s, "ports:");
    for (i, p) in cfg.ports.iter().enumerate() {
        let m = p.mac;
        let mac = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let what = match &p.kind {
            PortKind::Pcap { input, output } => format!(
                "pcap in={} out={}",
                input
                    .as_deref()
                    .map_or("-".into(), |p: &Path| p.display().to_string()),
                output
                    .as_deref()
                    .map_or("-".into(), |p: &Path| p.display().to_string())
            ),
            PortKind::Null { packet_len, limit } => format!(
                "null {packet_len} B{}",
                limit.map_or(String::new(), |l| format!(", {l} packets"))
            ),
            PortKind::Memif {
                role,
                socket,
                id,
                ring_size,
                buffer_size,
            } => format!(
                "memif {} socket {socket} id {id}, rings of {ring_size} x {buffer_size} B",
                match role {
                    pmd::port::memif::Role::Server => "server",
                    pmd::port::memif::Role::Client => "client",
                }
            ),
            PortKind::AfPacket {
                interface,
                fanout,
                queues,
                spread,
            } => format!(
                "af-packet {interface}, {queues} queue(s){}{}",
                spread_text(*queues, *spread),
                fanout.map_or(String::new(), |f| format!(", fanout group {f}"))
            ),
            PortKind::Dpdk {
                device,
                devargs,
                rx_desc,
                tx_desc,
                ends,
                queues,
                spread,
            } => format!(
                "dpdk {device}{}, {queues} queue(s){} of {rx_desc} rx / {tx_desc} tx descriptors{}",
                devargs
                    .as_ref()
                    .map_or(String::new(), |a| format!(" ({a})")),
                spread_text(*queues, *spread),
                if *ends { ", input ends" } else { "" }
            ),
        };
        let _ = writeln!(s, "  {i} {} mac {mac} {what}", p.name);
    }
    let cores = |v: &[usize]| {
        v.iter()
            .map(|&c| {
                format!(
                    "core {c}{}",
                    numa_node_of_cpu(c).map_or(String::new(), |n| format!(" (numa {n})"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    match cfg.layout {
        LayoutMode::RunToCompletion if cfg.workers.len() == 1 => {
            let _ = writeln!(
                s,
                "engine: run-to-completion, 1 worker on {} owning every port, burst {}",
                cores(&cfg.workers),
                cfg.burst
            );
        }
        LayoutMode::RunToCompletion => {
            let _ = writeln!(
                s,
                "engine: run-to-completion, {} workers on {}, I/O thread on {}, dispatch by symmetric flow hash, burst {}",
                cfg.workers.len(),
                cores(&cfg.workers),
                cfg.io_core.map_or("any core".into(), |c| format!("core {c}")),
                cfg.burst
            );
        }
        LayoutMode::Pipeline => {
            let _ = writeln!(
                s,
                "engine: pipeline over {} cores, I/O thread on {}, burst {}",
                cfg.workers.len(),
                cfg.io_core
                    .map_or("any core".into(), |c| format!("core {c}")),
                cfg.burst
            );
        }
    }
    let names: Vec<&str> = cfg.stages.iter().map(|s| s.kind()).collect();
    let _ = writeln!(
        s,
        "chain: {}",
        if names.is_empty() {
            "(empty)".into()
        } else {
            names.join(" -> ")
        }
    );
    if cfg.cut_through
        && names == ["forward"]
        && cfg
            .ports
            .iter()
            .all(|p| matches!(p.kind, PortKind::Dpdk { .. }))
    {
        let _ = writeln!(
            s,
            "  online, where forward has a rule for every port: cut-through (bursts of rte_mbufs pass from port to port without the stage; [engine] cut_through = false runs it)"
        );
    }
    for (port, seq) in &cfg.orders {
        let order: Vec<&str> = seq.iter().map(|&i| names[i]).collect();
        let _ = writeln!(
            s,
            "  packets from {}: {}",
            cfg.ports[usize::from(*port)].name,
            order.join(" -> ")
        );
    }
    if cfg.layout == LayoutMode::Pipeline {
        let mut k = 0;
        for (i, (&n, &c)) in cfg.segments.iter().zip(&cfg.workers).enumerate() {
            let seg: Vec<&str> = names[k..k + n].to_vec();
            k += n;
            let _ = writeln!(
                s,
                "  segment {i} on core {c}: {}",
                if seg.is_empty() {
                    "(hand-off only)".into()
                } else {
                    seg.join(" -> ")
                }
            );
        }
    }
    for st in &cfg.stages {
        for line in st.describe(&cfg.ports) {
            let _ = writeln!(s, "  {}: {line}", st.kind());
        }
    }
    let list = |v: &[u16]| {
        v.iter()
            .map(|&i| cfg.ports[i as usize].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "replay: --in feeds [{}], --out takes [{}]",
        list(&cfg.replay_inputs),
        list(&cfg.replay_outputs)
    );
    s
}

/// How `dataplane check` says a port spreads packets over its queues (nothing for one queue).
fn spread_text(queues: u16, spread: pmd::port::Spread) -> &'static str {
    match (queues, spread) {
        (0 | 1, _) => "",
        (_, pmd::port::Spread::Flows) => " spread by flows",
        (_, pmd::port::Spread::Hosts) => " spread by hosts (a connection's fragments meet it)",
    }
}
