//! The configuration file: TOML, strict, and explicit about what is wrong.
//!
//! An operator's typo must not become a silently ignored setting, so unknown keys are refused,
//! and every error names the file, the line, the key and what was expected, on one line
//! (`site.toml:12: engine.workers: core 9 is not online (online: 0-1)`). Values that need a
//! look at the machine or the disk (cores, files) are checked here too, before anything runs.
//!
//! The default configuration ships inside the binary (`config/default.toml`), so
//! `dataplane replay --in IN.pcap --out OUT.pcap` works from anywhere without `--config`.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The configuration that ships with the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");
/// The name the default configuration goes by in messages.
pub const DEFAULT_NAME: &str = "<built-in default.toml>";

/// A configuration error, pointing at the file and line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {key}{sep}{msg}", if *line == 0 { String::new() } else { format!(":{line}") }, sep = if key.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    /// File name.
    pub file: String,
    /// 1-based line (0 when the error is about the whole file).
    pub line: usize,
    /// Dotted key (`engine.workers`), or empty.
    pub key: String,
    /// What is wrong and what was expected.
    pub msg: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    memory: RawMemory,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    replay: Option<RawReplay>,
    #[serde(default)]
    port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    stage: Vec<Spanned<RawStageKind>>,
    #[serde(default)]
    dpdk: Option<Spanned<RawDpdk>>,
    #[serde(default)]
    chain: RawChain,
}

/// `[chain]`: the stage order of ports that need their own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    /// Port name to stage kinds, in the order that port's packets meet them.
    #[serde(default)]
    order: std::collections::BTreeMap<String, Spanned<Vec<String>>>,
}

/// `[dpdk]`: how the DPDK EAL is brought up for `kind = "dpdk"` ports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDpdk {
    #[serde(default)]
    eal: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    #[serde(default = "d_buffers")]
    buffers: Spanned<u32>,
    #[serde(default = "d_data_room")]
    data_room: Spanned<u32>,
    #[serde(default = "d_headroom")]
    headroom: Spanned<u32>,
    #[serde(default)]
    hugepages: HugeMode,
}

fn d_buffers() -> Spanned<u32> {
    Spanned::new(0..0, 16384)
}
fn d_data_room() -> Spanned<u32> {
    Spanned::new(0..0, 2048)
}
fn d_headroom() -> Spanned<u32> {
    Spanned::new(0..0, 128)
}

impl Default for RawMemory {
    fn default() -> Self {
        RawMemory {
            buffers: d_buffers(),
            data_room: d_data_room(),
            headroom: d_headroom(),
            hugepages: HugeMode::Prefer,
        }
    }
}

/// Hugepage policy as written in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HugeMode {
    /// Use hugepages if free, else ordinary pages with a warning.
    #[default]
    Prefer,
    /// Hugepages or fail.
    Require,
    /// Ordinary pages.
    Never,
}

/// Chain layout as written in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutMode {
    /// Every stage on the receiving worker.
    #[default]
    RunToCompletion,
    /// The chain split over the workers' cores.
    Pipeline,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    #[serde(default)]
    layout: LayoutMode,
    #[serde(default)]
    workers: Option<Spanned<Vec<usize>>>,
    #[serde(default)]
    io_core: Option<Spanned<usize>>,
    #[serde(default = "d_burst")]
    burst: Spanned<usize>,
    #[serde(default)]
    segments: Option<Spanned<Vec<usize>>>,
    #[serde(default = "d_ring")]
    ring_size: Spanned<u32>,
    #[serde(default = "d_true")]
    cut_through: bool,
}

fn d_true() -> bool {
    true
}

fn d_burst() -> Spanned<usize> {
    Spanned::new(0..0, 32)
}
fn d_ring() -> Spanned<u32> {
    Spanned::new(0..0, 1024)
}

impl Default for RawEngine {
    fn default() -> Self {
        RawEngine {
            layout: LayoutMode::RunToCompletion,
            workers: None,
            io_core: None,
            burst: d_burst(),
            segments: None,
            ring_size: d_ring(),
            cut_through: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplay {
    #[serde(default = "d_names")]
    inputs: Spanned<Vec<String>>,
    #[serde(default = "d_names")]
    outputs: Spanned<Vec<String>>,
}

fn d_names() -> Spanned<Vec<String>> {
    Spanned::new(0..0, Vec::new())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    kind: PortKindName,
    #[serde(default)]
    input: Option<Spanned<String>>,
    #[serde(default)]
    output: Option<Spanned<String>>,
    #[serde(default)]
    mac: Option<Spanned<String>>,
    #[serde(default)]
    packet_len: Option<Spanned<u16>>,
    #[serde(default)]
    limit: Option<u64>,
    // memif
    #[serde(default)]
    role: Option<Spanned<String>>,
    #[serde(default)]
    socket: Option<Spanned<String>>,
    #[serde(default)]
    id: Option<Spanned<u32>>,
    #[serde(default)]
    ring_size: Option<Spanned<u32>>,
    #[serde(default)]
    buffer_size: Option<Spanned<u32>>,
    // af-packet
    #[serde(default)]
    interface: Option<Spanned<String>>,
    #[serde(default)]
    fanout: Option<Spanned<u16>>,
    #[serde(default)]
    queues: Option<Spanned<u16>>,
    #[serde(default)]
    spread: Option<Spanned<SpreadName>>,
    // dpdk
    #[serde(default)]
    device: Option<Spanned<String>>,
    #[serde(default)]
    devargs: Option<Spanned<String>>,
    #[serde(default)]
    rx_desc: Option<Spanned<u16>>,
    #[serde(default)]
    tx_desc: Option<Spanned<u16>>,
    #[serde(default)]
    ends: Option<Spanned<bool>>,
}

/// `spread` as written: how a port with several queues spreads packets over them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum SpreadName {
    Flows,
    Hosts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PortKindName {
    Pcap,
    Null,
    Memif,
    AfPacket,
    Dpdk,
}

/// The first look at a `[[stage]]` table: only its kind. The table itself is parsed again, by
/// the stage's own parser, from its region of the file (see [`StageTable`]).
#[derive(Debug, Deserialize)]
struct RawStageKind {
    kind: Spanned<String>,
}

/// A port, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Name.
    pub name: String,
    /// Kind and its settings.
    pub kind: PortKind,
    /// MAC address.
    pub mac: [u8; 6],
    /// Line of its `[[port]]` table (for later errors).
    pub line: usize,
}

/// A port's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A capture file in and/or out.
    Pcap {
        /// Input capture.
        input: Option<PathBuf>,
        /// Output capture.
        output: Option<PathBuf>,
    },
    /// The benchmark's null port.
    Null {
        /// Length of generated packets.
        packet_len: u16,
        /// Packets to generate (`None`: forever).
        limit: Option<u64>,
    },
    /// A memif shared-memory link to another process (`pmd::port::memif`).
    Memif {
        /// Server (listens, maps the client's memory) or client (connects, owns the memory).
        role: pmd::port::memif::Role,
        /// Control socket: a path, or `@name` in the abstract namespace.
        socket: String,
        /// Interface id (both ends agree).
        id: u32,
        /// Descriptors per ring (a power of two).
        ring_size: u32,
        /// Bytes per shared packet buffer.
        buffer_size: u32,
    },
    /// A DPDK ethdev (`pmd::dpdk`, with the `dpdk` cargo feature): a NIC bound to a DPDK
    /// driver or one of DPDK's virtual devices.
    Dpdk {
        /// Ethdev name: a PCI address (`0000:03:00.0`) or a virtual device (`net_pcap0`).
        device: String,
        /// Virtual device arguments: the device is created when the port opens.
        devargs: Option<String>,
        /// Receive descriptors.
        rx_desc: u16,
        /// Transmit descriptors.
        tx_desc: u16,
        /// The device's input ends (a `net_pcap` reading a file), as a pcap port's does.
        ends: bool,
        /// Receive/transmit queue pairs (one per worker; RSS with a symmetric key spreads
        /// flows over them).
        queues: u16,
        /// What RSS hashes over several queues (see [`PortKind::AfPacket`]'s `spread`).
        spread: pmd::port::Spread,
    },
    /// A kernel interface through AF_PACKET rings (`pmd::port::afpacket`).
    AfPacket {
        /// Interface name.
        interface: String,
        /// Fanout group id shared with other sockets (and processes) on the interface.
        fanout: Option<u16>,
        /// Queues (one per worker; today the engine polls one).
        queues: u16,
        /// How packets spread over the queues: `spread = "flows"` (addresses and ports) or
        /// `"hosts"` (addresses only, so a connection's fragments meet it); by default hosts
        /// when a stage needs a flow's fragments on its worker
        /// ([`StageSpec::fragments_follow_flows`]: a firewall tracking connections), flows
        /// otherwise.
        spread: pmd::port::Spread,
    },
}

/// A stage's validated settings, able to build the stage (once per run-to-completion worker).
pub trait StageSpec: Send + Sync + std::fmt::Debug {
    /// The stage kind (`forward`, ...).
    fn kind(&self) -> &'static str;
    /// Builds one instance.
    fn build(&self, env: &BuildEnv) -> Box<dyn crate::stage::Stage>;
    /// A steering rule for the dispatcher, for state the symmetric flow hash cannot place,
    /// such as NAT replies, or packets every worker must see (a neighbour's ARP reply);
    /// `workers` is the worker count. Several stages' rules combine ([`crate::engine::Steers`]:
    /// the first that places a packet wins).
    fn steer(&self, workers: usize) -> Option<std::sync::Arc<dyn crate::engine::Steer>> {
        let _ = workers;
        None
    }
    /// Whether the stage keeps per-connection state that a connection's fragments must meet
    /// (a firewall tracking connections): ports with several queues then spread packets by
    /// addresses only unless told otherwise, since a device's flow hash puts a fragment
    /// (addresses only) and its connection's other packets (with ports) apart.
    fn fragments_follow_flows(&self) -> bool {
        false
    }
    /// Lines for `dataplane check` describing the resolved settings.
    fn describe(&self, ports: &[PortConfig]) -> Vec<String> {
        let _ = ports;
        Vec::new()
    }
}

/// What a stage gets when it is built.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// Port MAC addresses by port number.
    pub port_macs: Vec<[u8; 6]>,
    /// Index of the worker the instance is for.
    pub worker: usize,
    /// Number of run-to-completion workers sharing the chain (1 in a pipeline).
    pub workers: usize,
}

/// Parses one stage kind's table.
pub type StageParser = fn(&StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError>;

/// Every stage kind the configuration knows, with its parser. A new stage adds one line.
pub const STAGE_KINDS: &[(&str, StageParser)] = &[
    ("forward", crate::stages::forward::parse_config),
    ("mac-rewrite", crate::stages::mac_rewrite::parse_config),
    ("firewall", crate::stages::firewall::parse_config),
    ("nat44", crate::stages::nat::parse_config),
    ("router", crate::stages::router::parse_config),
];

/// One `[[stage]]` table handed to its stage's parser: parse it into the stage's own
/// `#[serde(deny_unknown_fields)]` struct with [`StageTable::parse`], and report problems
/// with [`StageTable::err`] so they name the file, line and key.
pub struct StageTable<'a> {
    file: &'a str,
    text: &'a str,
    region: Range<usize>,
    /// Position in the chain.
    pub index: usize,
    names: &'a HashMap<String, u16>,
    /// Directory relative paths are taken from.
    pub base: &'a Path,
}

impl StageTable<'_> {
    /// Deserialises the table. `T` must accept the `kind` key (a `kind: String` field).
    /// Spans inside `T` are relative to the table's region; pass them to [`Self::err`].
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        #[derive(Deserialize)]
        struct One<T> {
            stage: Vec<T>,
        }
        let sub = &self.text[self.region.clone()];
        let one: One<T> = toml::from_str(sub).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().replace('\n', " ");
            let key = unknown_field(&msg).unwrap_or("").to_string();
            self.err(span, &key, msg)
        })?;
        one.stage
            .into_iter()
            .next()
            .ok_or_else(|| self.err(0..0, "", "empty stage table"))
    }

    /// An error at `span` (relative to the table) about `key` (relative to the table).
    pub fn err(&self, span: Range<usize>, key: &str, msg: impl Into<String>) -> ConfigError {
        let start = self.region.start + span.start.min(self.region.len());
        let line = self.text[..start].bytes().filter(|&b| b == b'\n').count() + 1;
        ConfigError {
            file: self.file.to_string(),
            line,
            key: if key.is_empty() {
                format!("stage[{}]", self.index)
            } else {
                format!("stage[{}].{key}", self.index)
            },
            msg: msg.into(),
        }
    }

    /// Resolves a port name.
    pub fn port(&self, name: &Spanned<String>, key: &str) -> Result<u16, ConfigError> {
        self.names.get(name.get_ref()).copied().ok_or_else(|| {
            let mut known: Vec<_> = self.names.keys().cloned().collect();
            known.sort();
            self.err(
                name.span(),
                key,
                format!(
                    "no port named {:?} (ports: {})",
                    name.get_ref(),
                    known.join(", ")
                ),
            )
        })
    }

    /// Number of ports.
    pub fn port_count(&self) -> usize {
        self.names.len()
    }
}

/// The byte range of a `[[stage]]` table: its span, extended over `[stage.x]` sub-tables up
/// to the next header of another table.
fn stage_region(text: &str, span: Range<usize>) -> Range<usize> {
    let mut pos = span.end;
    for line in text[span.end..].split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('[') {
            let name = rest.trim_start_matches('[').trim_start();
            let is_header =
                name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '"' || c == '_');
            if is_header && !name.starts_with("stage.") && !name.starts_with("\"stage\".") {
                break;
            }
        }
        pos += line.len();
    }
    span.start..pos
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub file: String,
    /// Buffers in the pool.
    pub buffers: u32,
    /// Data room per buffer.
    pub data_room: u16,
    /// Headroom per buffer.
    pub headroom: u16,
    /// Hugepage policy.
    pub hugepages: HugeMode,
    /// Layout.
    pub layout: LayoutMode,
    /// Worker cores.
    pub workers: Vec<usize>,
    /// I/O thread core.
    pub io_core: Option<usize>,
    /// Burst size.
    pub burst: usize,
    /// Pipeline segments (stages per worker).
    pub segments: Vec<usize>,
    /// Ring capacity.
    pub ring_size: u32,
    /// `[engine] cut_through` (default on): see `engine::EngineOptions::cut_through`.
    pub cut_through: bool,
    /// Ports, in order (port number = index).
    pub ports: Vec<PortConfig>,
    /// The chain.
    pub stages: Vec<std::sync::Arc<dyn StageSpec>>,
    /// Ports fed by `--in` files, in order.
    pub replay_inputs: Vec<u16>,
    /// Ports written to `--out` files, in order.
    pub replay_outputs: Vec<u16>,
    /// EAL arguments for DPDK ports (`[dpdk] eal`; `None`: the built-in defaults).
    pub dpdk_eal: Option<Vec<String>>,
    /// `[chain] order`: input ports whose packets meet the stages in another order, as
    /// `(port, stage indexes)`, each a permutation of the chain.
    pub orders: Vec<(u16, Vec<usize>)>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        if span.start == 0 && span.end == 0 {
            return 0;
        }
        let end = span.start.min(self.text.len());
        self.text[..end].bytes().filter(|&b| b == b'\n').count() + 1
    }

    fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: self.line(span),
            key: key.into(),
            msg: msg.into(),
        }
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl Config {
    /// Loads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: 0,
            key: String::new(),
            msg: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&path.display().to_string(), &text, base)
    }

    /// The built-in default configuration.
    pub fn builtin() -> Config {
        Config::parse(DEFAULT_NAME, DEFAULT_CONFIG, Path::new("."))
            .expect("the built-in configuration is valid (tested)")
    }

    /// Parses and validates text; relative paths are taken from `base`.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx { file, text };
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().replace('\n', " ");
            let line = cx.line(span.clone());
            let mut key = table_at(text, line);
            // An unknown key names itself; a bad value is named by the key written on its line.
            if let Some(f) = unknown_field(&msg).or_else(|| key_on_line(text, line)) {
                key = if key.is_empty() {
                    f.to_string()
                } else {
                    format!("{key}.{f}")
                };
            }
            ConfigError {
                file: file.to_string(),
                line,
                key,
                msg,
            }
        })?;

        // Memory.
        let m = &raw.memory;
        if !(1..=(1 << 24) - 1).contains(m.buffers.get_ref()) {
            return Err(cx.err(
                m.buffers.span(),
                "memory.buffers",
                "expected a count between 1 and 16777215",
            ));
        }
        if !(64..=65535 - 128).contains(m.data_room.get_ref()) {
            return Err(cx.err(
                m.data_room.span(),
                "memory.data_room",
                "expected bytes between 64 and 65407",
            ));
        }
        if !(64..=1024).contains(m.headroom.get_ref()) {
            return Err(cx.err(
                m.headroom.span(),
                "memory.headroom",
                "expected bytes between 64 and 1024",
            ));
        }
        if m.data_room.get_ref() + m.headroom.get_ref() > 65535 {
            return Err(cx.err(
                m.data_room.span(),
                "memory.data_room",
                "data_room + headroom must be at most 65535",
            ));
        }

        // Engine.
        let e = &raw.engine;
        let online = pmd::mem::online_cpus();
        let online_s = cpu_list_string(&online);
        let check_core = |c: usize, span: Range<usize>, key: &str| -> Result<(), ConfigError> {
            if online.contains(&c) {
                Ok(())
            } else {
                Err(cx.err(
                    span,
                    key,
                    format!("core {c} is not online (online: {online_s})"),
                ))
            }
        };
        let workers = match &e.workers {
            Some(w) => {
                if w.get_ref().is_empty() {
                    return Err(cx.err(w.span(), "engine.workers", "expected at least one core"));
                }
                for &c in w.get_ref() {
                    check_core(c, w.span(), "engine.workers")?;
                }
                let mut seen = w.get_ref().clone();
                seen.sort_unstable();
                seen.dedup();
                if seen.len() != w.get_ref().len() {
                    return Err(cx.err(w.span(), "engine.workers", "a core is listed twice"));
                }
                w.get_ref().clone()
            }
            None => vec![online[0]],
        };
        if let Some(c) = &e.io_core {
            check_core(*c.get_ref(), c.span(), "engine.io_core")?;
        }
        if !(1..=pmd::BURST_MAX).contains(e.burst.get_ref()) {
            return Err(cx.err(
                e.burst.span(),
                "engine.burst",
                format!("expected 1 to {}", pmd::BURST_MAX),
            ));
        }
        let rs = *e.ring_size.get_ref();
        if !rs.is_power_of_two() || !(512..=1 << 20).contains(&rs) {
            return Err(cx.err(
                e.ring_size.span(),
                "engine.ring_size",
                "expected a power of two from 512 to 1048576",
            ));
        }

        // Ports.
        let mut ports = Vec::new();
        let mut spread_given = Vec::new();
        let mut names: HashMap<String, u16> = HashMap::new();
        if raw.port.is_empty() {
            return Err(cx.err(0..0, "port", "at least one [[port]] is needed"));
        }
        for (i, sp) in raw.port.iter().enumerate() {
            let p = sp.get_ref();
            let key = |k: &str| format!("port[{i}].{k}");
            let name = p.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(cx.err(
                    p.name.span(),
                    key("name"),
                    "expected letters, digits, '-' or '_'",
                ));
            }
            if names.insert(name.clone(), i as u16).is_some() {
                return Err(cx.err(
                    p.name.span(),
                    key("name"),
                    format!("port name {name:?} is used twice"),
                ));
            }
            let mac = match &p.mac {
                Some(s) => parse_mac(s.get_ref()).ok_or_else(|| {
                    cx.err(
                        s.span(),
                        key("mac"),
                        format!(
                            "{:?} is not a MAC address like 02:00:00:00:00:01",
                            s.get_ref()
                        ),
                    )
                })?,
                None => [0x02, 0, 0, 0, 0, i as u8 + 1],
            };
            let resolve = |s: &Spanned<String>| base.join(s.get_ref());
            // Keys that belong to other kinds of port are refused by name.
            let kind_name = match p.kind {
                PortKindName::Pcap => "pcap",
                PortKindName::Null => "null",
                PortKindName::Memif => "memif",
                PortKindName::AfPacket => "af-packet",
                PortKindName::Dpdk => "dpdk",
            };
            let only = |k: &str, span: Option<Range<usize>>, kinds: &[&str]| match span {
                Some(sp) if !kinds.contains(&kind_name) => Err(cx.err(
                    sp,
                    key(k),
                    format!("only {} ports take {k}", kinds.join(" and ")),
                )),
                _ => Ok(()),
            };
            only("role", p.role.as_ref().map(|v| v.span()), &["memif"])?;
            only("socket", p.socket.as_ref().map(|v| v.span()), &["memif"])?;
            only("id", p.id.as_ref().map(|v| v.span()), &["memif"])?;
            only(
                "ring_size",
                p.ring_size.as_ref().map(|v| v.span()),
                &["memif"],
            )?;
            only(
                "buffer_size",
                p.buffer_size.as_ref().map(|v| v.span()),
                &["memif"],
            )?;
            only(
                "interface",
                p.interface.as_ref().map(|v| v.span()),
                &["af-packet"],
            )?;
            only(
                "fanout",
                p.fanout.as_ref().map(|v| v.span()),
                &["af-packet"],
            )?;
            only(
                "queues",
                p.queues.as_ref().map(|v| v.span()),
                &["af-packet", "dpdk"],
            )?;
            only(
                "spread",
                p.spread.as_ref().map(|v| v.span()),
                &["af-packet", "dpdk"],
            )?;
            let spread = match p.spread.as_ref().map(|v| *v.get_ref()) {
                Some(SpreadName::Hosts) => pmd::port::Spread::Hosts,
                // Also the placeholder for "not given", settled once the stages are known.
                Some(SpreadName::Flows) | None => pmd::port::Spread::Flows,
            };
            spread_given.push(p.spread.is_some());
            // Several queues: one per run-to-completion worker, each worker owning its own.
            let check_queues = |v: &Option<Spanned<u16>>| -> Result<u16, ConfigError> {
                let Some(q) = v else { return Ok(1) };
                let n = *q.get_ref();
                if n == 1
                    || (usize::from(n) == workers.len() && e.layout == LayoutMode::RunToCompletion)
                {
                    Ok(n)
                } else {
                    Err(cx.err(
                        q.span(),
                        key("queues"),
                        format!(
                            "expected 1, or one per run-to-completion worker ({} here): each worker owns a queue of every port",
                            workers.len()
                        ),
                    ))
                }
            };
            for (k, span) in [
                ("device", p.device.as_ref().map(|v| v.span())),
                ("devargs", p.devargs.as_ref().map(|v| v.span())),
                ("rx_desc", p.rx_desc.as_ref().map(|v| v.span())),
                ("tx_desc", p.tx_desc.as_ref().map(|v| v.span())),
                ("ends", p.ends.as_ref().map(|v| v.span())),
            ] {
                only(k, span, &["dpdk"])?;
            }
            if matches!(
                p.kind,
                PortKindName::Memif | PortKindName::AfPacket | PortKindName::Dpdk
            ) {
                if let Some(s) = p.input.as_ref().or(p.output.as_ref()) {
                    return Err(cx.err(s.span(), key("input"), "only pcap ports take files"));
                }
                if let Some(l) = &p.packet_len {
                    return Err(cx.err(
                        l.span(),
                        key("packet_len"),
                        "only null ports take packet_len",
                    ));
                }
            }
            let kind = match p.kind {
                PortKindName::Pcap => {
                    if let Some(l) = &p.packet_len {
                        return Err(cx.err(
                            l.span(),
                            key("packet_len"),
                            "only null ports take packet_len",
                        ));
                    }
                    let input = p.input.as_ref().map(resolve);
                    if let (Some(path), Some(s)) = (&input, &p.input) {
                        if let Err(err) = std::fs::metadata(path) {
                            return Err(cx.err(
                                s.span(),
                                key("input"),
                                format!("cannot open {}: {err}", path.display()),
                            ));
                        }
                    }
                    PortKind::Pcap {
                        input,
                        output: p.output.as_ref().map(resolve),
                    }
                }
                PortKindName::Null => {
                    if let Some(s) = p.input.as_ref().or(p.output.as_ref()) {
                        return Err(cx.err(s.span(), key("input"), "null ports take no files"));
                    }
                    let len = p.packet_len.as_ref().map_or(64, |l| *l.get_ref());
                    if !(14..=9000).contains(&len) {
                        let span = p.packet_len.as_ref().map_or(0..0, |l| l.span());
                        return Err(cx.err(span, key("packet_len"), "expected 14 to 9000 bytes"));
                    }
                    PortKind::Null {
                        packet_len: len,
                        limit: p.limit,
                    }
                }
                PortKindName::Memif => {
                    use pmd::port::memif::Role;
                    let role = match &p.role {
                        None => {
                            return Err(cx.err(
                                sp.span(),
                                key("role"),
                                "memif ports need role = \"server\" or \"client\"",
                            ))
                        }
                        Some(r) => match r.get_ref().as_str() {
                            "server" | "master" => Role::Server,
                            "client" | "slave" => Role::Client,
                            other => {
                                return Err(cx.err(
                                    r.span(),
                                    key("role"),
                                    format!("{other:?}: expected \"server\" or \"client\""),
                                ))
                            }
                        },
                    };
                    let Some(sock) = &p.socket else {
                        return Err(cx.err(
                            sp.span(),
                            key("socket"),
                            "memif ports need socket = \"/run/NAME.sock\" (or \"@NAME\" for the abstract namespace)",
                        ));
                    };
                    let raw = sock.get_ref();
                    let socket = if raw.starts_with('@') {
                        raw.clone()
                    } else {
                        base.join(raw).display().to_string()
                    };
                    let name_len = socket.trim_start_matches('@').len();
                    if name_len == 0 || name_len > 107 {
                        return Err(cx.err(
                            sock.span(),
                            key("socket"),
                            "expected a socket path of 1 to 107 bytes",
                        ));
                    }
                    let ring_size = p.ring_size.as_ref().map_or(1024, |v| *v.get_ref());
                    if !ring_size.is_power_of_two() || !(2..=16384).contains(&ring_size) {
                        let span = p.ring_size.as_ref().map_or(0..0, |v| v.span());
                        return Err(cx.err(
                            span,
                            key("ring_size"),
                            "expected a power of two from 2 to 16384",
                        ));
                    }
                    let buffer_size = p.buffer_size.as_ref().map_or(2048, |v| *v.get_ref());
                    if buffer_size % 64 != 0 || !(64..=65472).contains(&buffer_size) {
                        let span = p.buffer_size.as_ref().map_or(0..0, |v| v.span());
                        return Err(cx.err(
                            span,
                            key("buffer_size"),
                            "expected a multiple of 64 from 64 to 65472",
                        ));
                    }
                    if role == Role::Server {
                        let dup = ports.iter().any(|q: &PortConfig| {
                            matches!(&q.kind, PortKind::Memif { role: Role::Server, socket: s, .. } if *s == socket)
                        });
                        if dup {
                            return Err(cx.err(
                                sock.span(),
                                key("socket"),
                                "another memif server port of this file listens on this socket (one interface per socket)",
                            ));
                        }
                    }
                    PortKind::Memif {
                        role,
                        socket,
                        id: p.id.as_ref().map_or(0, |v| *v.get_ref()),
                        ring_size,
                        buffer_size,
                    }
                }
                PortKindName::AfPacket => {
                    let Some(ifname) = &p.interface else {
                        return Err(cx.err(
                            sp.span(),
                            key("interface"),
                            "af-packet ports need interface = \"NAME\"",
                        ));
                    };
                    let n = ifname.get_ref();
                    if n.is_empty() || n.len() > 15 || n.contains(['/', ' ', '\0']) {
                        return Err(cx.err(
                            ifname.span(),
                            key("interface"),
                            "expected an interface name of 1 to 15 bytes",
                        ));
                    }
                    let queues = check_queues(&p.queues)?;
                    PortKind::AfPacket {
                        interface: n.clone(),
                        fanout: p.fanout.as_ref().map(|v| *v.get_ref()),
                        queues,
                        spread,
                    }
                }
                PortKindName::Dpdk => {
                    if !cfg!(feature = "dpdk") {
                        return Err(cx.err(
                            sp.span(),
                            key("kind"),
                            "this dataplane was built without DPDK: rebuild with `cargo build --release --features dpdk` (scripts/setup.sh installs what it needs)",
                        ));
                    }
                    let Some(dev) = &p.device else {
                        return Err(cx.err(
                            sp.span(),
                            key("device"),
                            "dpdk ports need device = \"NAME\" (a PCI address such as \"0000:03:00.0\", or a virtual device such as \"net_pcap0\")",
                        ));
                    };
                    let d = dev.get_ref();
                    if d.is_empty() || d.contains([',', ' ', '\0']) {
                        return Err(cx.err(
                            dev.span(),
                            key("device"),
                            "expected an ethdev name without ',' or spaces (put arguments in devargs)",
                        ));
                    }
                    let desc = |v: &Option<Spanned<u16>>, k: &str| -> Result<u16, ConfigError> {
                        match v {
                            None => Ok(1024),
                            Some(x) if x.get_ref().is_power_of_two() && *x.get_ref() >= 64 => {
                                Ok(*x.get_ref())
                            }
                            Some(x) => Err(cx.err(
                                x.span(),
                                key(k),
                                "expected a power of two between 64 and 32768",
                            )),
                        }
                    };
                    PortKind::Dpdk {
                        device: d.clone(),
                        devargs: p.devargs.as_ref().map(|v| v.get_ref().clone()),
                        rx_desc: desc(&p.rx_desc, "rx_desc")?,
                        tx_desc: desc(&p.tx_desc, "tx_desc")?,
                        ends: p.ends.as_ref().is_some_and(|v| *v.get_ref()),
                        queues: check_queues(&p.queues)?,
                        spread,
                    }
                }
            };
            ports.push(PortConfig {
                name,
                kind,
                mac,
                line: cx.line(sp.span()),
            });
        }
        let port_id = |s: &Spanned<String>, key: String| -> Result<u16, ConfigError> {
            names.get(s.get_ref()).copied().ok_or_else(|| {
                let mut known: Vec<_> = names.keys().cloned().collect();
                known.sort();
                cx.err(
                    s.span(),
                    key,
                    format!(
                        "no port named {:?} (ports: {})",
                        s.get_ref(),
                        known.join(", ")
                    ),
                )
            })
        };

        // Stages.
        let mut stages = Vec::new();
        for (i, sp) in raw.stage.iter().enumerate() {
            let key = |k: &str| format!("stage[{i}].{k}");
            let st = sp.get_ref();
            let _ = &port_id;
            let kind = st.kind.get_ref().as_str();
            let Some((_, parser)) = STAGE_KINDS.iter().find(|(k, _)| *k == kind) else {
                let kinds: Vec<_> = STAGE_KINDS.iter().map(|(k, _)| *k).collect();
                return Err(cx.err(
                    st.kind.span(),
                    key("kind"),
                    format!(
                        "unknown stage kind {kind:?}, expected one of: {}",
                        kinds.join(", ")
                    ),
                ));
            };
            let table = StageTable {
                file,
                text,
                region: stage_region(text, sp.span()),
                index: i,
                names: &names,
                base,
            };
            stages.push(std::sync::Arc::from(parser(&table)?));
        }
        // Ports that did not say how to spread over queues: by hosts when a stage needs a
        // flow's fragments where its connection is.
        if stages
            .iter()
            .any(|s: &std::sync::Arc<dyn StageSpec>| s.fragments_follow_flows())
        {
            for (p, given) in ports.iter_mut().zip(&spread_given) {
                if let PortKind::Dpdk { spread, .. } | PortKind::AfPacket { spread, .. } =
                    &mut p.kind
                {
                    if !given {
                        *spread = pmd::port::Spread::Hosts;
                    }
                }
            }
        }

        // Layout.
        let segments = match (e.layout, &e.segments) {
            (LayoutMode::RunToCompletion, Some(s)) => {
                return Err(cx.err(
                    s.span(),
                    "engine.segments",
                    "segments are for layout = \"pipeline\"",
                ));
            }
            (LayoutMode::RunToCompletion, None) => Vec::new(),
            (LayoutMode::Pipeline, Some(s)) => {
                if s.get_ref().len() != workers.len()
                    || s.get_ref().iter().sum::<usize>() != stages.len()
                {
                    return Err(cx.err(
                        s.span(),
                        "engine.segments",
                        format!(
                            "expected {} numbers (one per worker) adding up to {} (the stages)",
                            workers.len(),
                            stages.len()
                        ),
                    ));
                }
                s.get_ref().clone()
            }
            (LayoutMode::Pipeline, None) => even_segments(stages.len(), workers.len()),
        };

        // Per-port stage orders: stage kinds, the n-th mention of a kind naming the n-th stage
        // of that kind.
        let mut orders = Vec::new();
        let kinds: Vec<&str> = raw
            .stage
            .iter()
            .map(|s| s.get_ref().kind.get_ref().as_str())
            .collect();
        for (pname, list) in &raw.chain.order {
            let key = format!("chain.order.{pname}");
            if e.layout == LayoutMode::Pipeline {
                return Err(cx.err(
                    list.span(),
                    key,
                    "a port's own stage order needs layout = \"run-to-completion\" (a pipeline splits the chain's one order over its cores)",
                ));
            }
            let port = port_id(&Spanned::new(list.span(), pname.clone()), key.clone())?;
            let expected = || {
                format!(
                    "expected each stage once, in any order: {}",
                    kinds.join(", ")
                )
            };
            let mut used = vec![false; kinds.len()];
            let mut seq = Vec::with_capacity(kinds.len());
            for k in list.get_ref() {
                let Some(i) = (0..kinds.len()).find(|&i| kinds[i] == k && !used[i]) else {
                    let why = if kinds.contains(&k.as_str()) {
                        format!(
                            "{k:?} named more often than the chain has it; {}",
                            expected()
                        )
                    } else {
                        format!("no stage of kind {k:?}; {}", expected())
                    };
                    return Err(cx.err(list.span(), key, why));
                };
                used[i] = true;
                seq.push(i);
            }
            if seq.len() != kinds.len() {
                return Err(cx.err(list.span(), key, expected()));
            }
            orders.push((port, seq));
        }

        // Replay mapping.
        let (replay_inputs, replay_outputs) = match &raw.replay {
            Some(r) => {
                let map = |v: &Spanned<Vec<String>>, k: &str| -> Result<Vec<u16>, ConfigError> {
                    v.get_ref()
                        .iter()
                        .map(|n| port_id(&Spanned::new(v.span(), n.clone()), format!("replay.{k}")))
                        .collect()
                };
                (map(&r.inputs, "inputs")?, map(&r.outputs, "outputs")?)
            }
            None => {
                let pcaps: Vec<u16> = ports
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| matches!(p.kind, PortKind::Pcap { .. }))
                    .map(|(i, _)| i as u16)
                    .collect();
                (pcaps.clone(), pcaps)
            }
        };
        Ok(Config {
            file: file.to_string(),
            buffers: *m.buffers.get_ref(),
            data_room: *m.data_room.get_ref() as u16,
            headroom: *m.headroom.get_ref() as u16,
            hugepages: m.hugepages,
            layout: e.layout,
            workers,
            io_core: e.io_core.as_ref().map(|c| *c.get_ref()),
            burst: *e.burst.get_ref(),
            segments,
            ring_size: rs,
            cut_through: e.cut_through,
            ports,
            stages,
            replay_inputs,
            replay_outputs,
            dpdk_eal: raw
                .dpdk
                .as_ref()
                .and_then(|d| d.get_ref().eal.as_ref().map(|e| e.get_ref().clone())),
            orders,
        })
    }

    /// The port number of `name`.
    pub fn port_id(&self, name: &str) -> Option<u16> {
        self.ports
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
    }
}

/// The key named by serde's "unknown field `x`" message.
fn unknown_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("unknown field `")?.split('`').next()
}

/// The `[table]` or `[[table]]` (with its index) that line `line` (1-based) belongs to, for
/// naming the key in errors that toml reports without one.
fn table_at(text: &str, line: usize) -> String {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut current = String::new();
    for l in text.lines().take(line) {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = counts.entry(name.trim().to_string()).or_default();
            current = format!("{}[{}]", name.trim(), *n);
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            current = name.trim().to_string();
        }
    }
    current
}

/// The key a `key = value` line `line` (1-based) sets, if it is one.
fn key_on_line(text: &str, line: usize) -> Option<&str> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    (!k.is_empty() && k.chars().all(bare)).then_some(k)
}

/// Splits `stages` as evenly as possible over `workers` segments (earlier segments get more).
pub fn even_segments(stages: usize, workers: usize) -> Vec<usize> {
    (0..workers)
        .map(|i| stages / workers + usize::from(i < stages % workers))
        .collect()
}

/// Formats a CPU list compactly (`0-3,6`).
pub fn cpu_list_string(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse("t.toml", t, Path::new("."))
    }

    const MIN: &str = "[[port]]\nname = \"a\"\nkind = \"pcap\"\n[[port]]\nname = \"b\"\nkind = \"pcap\"\n[[stage]]\nkind = \"forward\"\nto = \"b\"\n";

    #[test]
    fn memif_and_af_packet_ports() {
        let t = MIN.replace(
            "name = \"a\"\nkind = \"pcap\"",
            "name = \"a\"\nkind = \"memif\"\nrole = \"client\"\nsocket = \"@chain\"\nid = 3\nring_size = 512",
        )
        .replace(
            "name = \"b\"\nkind = \"pcap\"",
            "name = \"b\"\nkind = \"af-packet\"\ninterface = \"veth0\"\nfanout = 7",
        );
        let c = parse(&t).unwrap();
        assert_eq!(
            c.ports[0].kind,
            PortKind::Memif {
                role: pmd::port::memif::Role::Client,
                socket: "@chain".into(),
                id: 3,
                ring_size: 512,
                buffer_size: 2048
            }
        );
        assert_eq!(
            c.ports[1].kind,
            PortKind::AfPacket {
                interface: "veth0".into(),
                fanout: Some(7),
                queues: 1,
                spread: pmd::port::Spread::Flows,
            }
        );
        // A firewall tracking connections makes ports spread by hosts unless they say.
        let fw = "[[stage]]\nkind = \"firewall\"\ninline = [\"ct established accept\"]\n";
        let spread = |t: &str| match parse(t).unwrap().ports[1].kind {
            PortKind::AfPacket { spread, .. } => spread,
            _ => unreachable!("port b is af-packet"),
        };
        use pmd::port::Spread;
        assert_eq!(spread(&format!("{t}{fw}")), Spread::Hosts);
        let flows = t.replace("fanout = 7", "fanout = 7\nspread = \"flows\"");
        assert_eq!(spread(&format!("{flows}{fw}")), Spread::Flows, "said so");
        let hosts = t.replace("fanout = 7", "fanout = 7\nspread = \"hosts\"");
        assert_eq!(spread(&hosts), Spread::Hosts, "said so");
        let off = fw.replace("inline", "conntrack = false\ninline");
        assert_eq!(
            spread(&format!("{t}{off}")),
            Spread::Flows,
            "no connections tracked"
        );
        // Errors: file:line: key: what was expected.
        let bad = |from: &str, to: &str| parse(&t.replace(from, to)).unwrap_err();
        let e = bad("role = \"client\"", "role = \"boss\"");
        assert_eq!((e.line, e.key.as_str()), (4, "port[0].role"), "{e}");
        let e = bad("ring_size = 512", "ring_size = 500");
        assert_eq!((e.line, e.key.as_str()), (7, "port[0].ring_size"), "{e}");
        let e = bad("socket = \"@chain\"\n", "");
        assert_eq!(e.key, "port[0].socket", "{e}");
        let e = bad("fanout = 7", "fanout = 7\nsocket = \"x\"");
        assert_eq!((e.line, e.key.as_str()), (13, "port[1].socket"), "{e}");
        assert!(e.msg.contains("only memif"), "{e}");
        let e = bad("fanout = 7", "queues = 2");
        assert_eq!((e.line, e.key.as_str()), (12, "port[1].queues"), "{e}");
        let e = bad("fanout = 7", "spread = \"evenly\"");
        assert_eq!((e.line, e.key.as_str()), (12, "port[1].spread"), "{e}");
        let e = bad("id = 3", "id = 3\nspread = \"hosts\"");
        assert_eq!((e.line, e.key.as_str()), (7, "port[0].spread"), "{e}");
        let e = bad(
            "interface = \"veth0\"",
            "interface = \"a-very-long-interface\"",
        );
        assert_eq!(e.key, "port[1].interface", "{e}");
    }

    #[test]
    fn dpdk_ports() {
        let t = format!(
            "[dpdk]\neal = [\"--no-huge\", \"-m\", \"256\"]\n{}",
            MIN.replace(
                "name = \"a\"\nkind = \"pcap\"",
                "name = \"a\"\nkind = \"dpdk\"\ndevice = \"net_pcap0\"\ndevargs = \"rx_pcap=in.pcap\"\nends = true\nrx_desc = 512",
            )
        );
        let bad = |from: &str, to: &str| parse(&t.replace(from, to)).unwrap_err();
        if !cfg!(feature = "dpdk") {
            // A build without DPDK names the port and says how to get it.
            let e = parse(&t).unwrap_err();
            assert_eq!((e.line, e.key.as_str()), (3, "port[0].kind"), "{e}");
            assert!(e.msg.contains("--features dpdk"), "{e}");
            return;
        }
        let c = parse(&t).unwrap();
        assert_eq!(
            c.ports[0].kind,
            PortKind::Dpdk {
                device: "net_pcap0".into(),
                devargs: Some("rx_pcap=in.pcap".into()),
                rx_desc: 512,
                tx_desc: 1024,
                ends: true,
                queues: 1,
                spread: pmd::port::Spread::Flows,
            }
        );
        assert_eq!(
            c.dpdk_eal.as_deref(),
            Some(&["--no-huge".to_string(), "-m".into(), "256".into()][..])
        );
        let e = bad("rx_desc = 512", "rx_desc = 500");
        assert_eq!((e.line, e.key.as_str()), (9, "port[0].rx_desc"), "{e}");
        let e = bad("device = \"net_pcap0\"\n", "");
        assert_eq!(e.key, "port[0].device", "{e}");
        let e = bad("device = \"net_pcap0\"", "device = \"net_pcap0,rx_pcap=x\"");
        assert!(e.msg.contains("devargs"), "{e}");
        let e = bad("kind = \"pcap\"", "kind = \"pcap\"\nends = true");
        assert!(e.msg.contains("only dpdk"), "{e}");
        let e = bad("eal = [", "cores = 3\neal = [");
        assert_eq!((e.line, e.key.as_str()), (2, "dpdk.cores"), "{e}");
    }

    #[test]
    fn builtin_is_valid() {
        let c = Config::builtin();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.replay_inputs, vec![0]);
        assert_eq!(c.replay_outputs, vec![1]);
        assert_eq!(c.stages.len(), 2);
    }

    #[test]
    fn minimal_parses() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.stages.len(), 1);
        assert_eq!(c.stages[0].kind(), "forward");
        assert_eq!(c.stages[0].describe(&c.ports), vec!["a -> b".to_string()]);
        assert_eq!(c.burst, 32);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let e = parse(&format!("[engine]\nburts = 3\n{MIN}")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("burts"), "{e}");
        assert_eq!(e.key, "engine.burts", "{e}");
        let e = parse(&format!(
            "{MIN}[[port]]\nname = \"c\"\nkind = \"pcap\"\nspeed = 1\n"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (13, "port[2].speed"), "{e}");
        assert!(e.to_string().contains("expected"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn bad_core_names_line_and_key() {
        let e = parse(&format!("[engine]\nworkers = [4096]\n{MIN}")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (2, "engine.workers"), "{e}");
        assert!(e.msg.contains("not online"));
    }

    #[test]
    fn missing_file_names_line_and_key() {
        let t = MIN.replace(
            "name = \"a\"\nkind = \"pcap\"",
            "name = \"a\"\nkind = \"pcap\"\ninput = \"/nonexistent/x.pcap\"",
        );
        let e = parse(&t).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (4, "port[0].input"), "{e}");
    }

    #[test]
    fn unknown_port_in_stage() {
        let e = parse(&MIN.replace("to = \"b\"", "to = \"c\"")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (9, "stage[0].to"), "{e}");
        assert!(e.msg.contains("ports: a, b"), "{e}");
    }

    #[test]
    fn bad_values() {
        for (t, key) in [
            ("[memory]\nbuffers = 0\n", "memory.buffers"),
            ("[memory]\ndata_room = 10\n", "memory.data_room"),
            ("[engine]\nburst = 0\n", "engine.burst"),
            ("[engine]\nring_size = 1000\n", "engine.ring_size"),
            (
                "[engine]\nlayout = \"pipeline\"\nworkers = [0]\nsegments = [5]\n",
                "engine.segments",
            ),
        ] {
            let e = parse(&format!("{t}{MIN}")).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.line > 0, "{e}");
        }
        let e = parse(&format!("[engine]\nlayout = \"sideways\"\n{MIN}")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse(&format!(
            "[engine]\nburst = 32\ncut_through = \"yes\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (3, "engine.cut_through"), "{e}");
        assert!(parse(MIN).unwrap().cut_through, "on by default");
        let c = parse(&format!("[engine]\ncut_through = false\n{MIN}")).unwrap();
        assert!(!c.cut_through);
    }

    #[test]
    fn stage_keys_are_checked_per_kind() {
        let e = parse(&format!("{MIN}dst = \"02:00:00:00:00:01\"\n")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (10, "stage[0].dst"), "{e}");
        let e = parse(&MIN.replace("kind = \"forward\"", "kind = \"forwrd\"")).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (8, "stage[0].kind"), "{e}");
        assert!(e.msg.contains("mac-rewrite"), "{e}");
    }

    #[test]
    fn stage_subtables_belong_to_their_stage() {
        let t = format!("{MIN}[[stage]]\nkind = \"forward\"\n[stage.routes]\nb = \"a\"\n\n[memory]\nbuffers = 9000\n");
        let c = parse(&t).unwrap();
        assert_eq!(c.stages[1].describe(&c.ports), vec!["b -> a".to_string()]);
        assert_eq!(c.buffers, 9000);
        let e = parse(&format!(
            "{MIN}[[stage]]\nkind = \"forward\"\n[stage.routes]\nb = \"zz\"\n"
        ))
        .unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (13, "stage[1].routes"), "{e}");
    }

    #[test]
    fn pipeline_segments_default_evenly() {
        assert_eq!(even_segments(3, 2), vec![2, 1]);
        assert_eq!(even_segments(1, 2), vec![1, 0]);
        assert_eq!(cpu_list_string(&[0, 1, 2, 5]), "0-2,5");
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("02:00:00:00:00:00:01"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
    }
}
