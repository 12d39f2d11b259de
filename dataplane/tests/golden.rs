//! Golden replay: every case under `pcap-fixtures/` through the real engine, in every layout.
//!
//! A case is a directory with a `config.toml`, the captures its ports read (`in.pcap`,
//! `in-<port>.pcap`), the captures its generator computed from a model of the behaviour (never
//! from this dataplane) for each output port (`expected.pcap`, `expected-<port>.pcap`), the
//! `expected-counters.toml` the run must end with, and a `case.toml` index saying which port
//! reads and writes which file and which layouts the case runs in. Each case is replayed through
//! the library API exactly as `dataplane replay --in PORT=FILE... --out PORT=FILE...` does it,
//! in the layouts it allows out of:
//!
//! * `rtc-1`: run-to-completion on one worker, as configured;
//! * `rtc-2`: run-to-completion on workers `[0, 1]` (flows spread by the symmetric hash, output
//!   put back in input order by the I/O thread);
//! * `pipeline-2`: the chain split over two cores;
//! * `dpdk-pcap` (with the `dpdk` feature): `rtc-1` with every port a DPDK `net_pcap` device
//!   (`kind = "dpdk"`, the input file as `rx_pcap`, the output as `tx_pcap`), so packets are
//!   received into `rte_mbuf`s, go through the chain in them and leave through DPDK. `net_pcap`
//!   stamps what it writes with the time of writing, so outputs are compared without
//!   timestamps; the replay clock still follows the capture (the receive timestamp offload).
//!
//! Every output port is compared packet by packet (timestamp, length, bytes). A failure names
//! the case, the layout, the port, the first differing packet (1-based, as in Wireshark) and
//! the first differing byte with the header field it falls in, e.g.
//! `mac-rewrite [rtc-2]: outside: packet 3: byte 6 (ethernet.src): expected 02, got 00`.
//! Counters: every port's, every engine drop reason, every stage drop reason (`stage.reason`,
//! summed over workers), packets created if the case states it, and the balance. All cases and
//! layouts run before the test fails, so one run shows every problem.

/// Prints why a case or layout was skipped, straight to stderr: the test harness captures
/// `eprintln!` of passing tests, and a skip must be seen.
macro_rules! skip_note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use dataplane::build::{self, Overrides, ReplayFiles};
use dataplane::config::{Config, LayoutMode};
use dataplane::engine::Report;
use dataplane::stage::DropReason;
use dataplane::wire::{self, parse::L3};
use pmd::pcap::PcapReader;
use pmd::port::PortDrop;

/// One layout a case is replayed in.
struct Layout {
    name: &'static str,
    overrides: Option<Overrides>,
    /// Ports become DPDK `net_pcap` devices.
    dpdk: bool,
}

fn layouts() -> Vec<Layout> {
    vec![
        Layout {
            name: "rtc-1",
            overrides: None,
            dpdk: false,
        },
        Layout {
            name: "rtc-2",
            overrides: Some(Overrides {
                workers: Some(vec![0, 1]),
                layout: Some(LayoutMode::RunToCompletion),
            }),
            dpdk: false,
        },
        Layout {
            name: "pipeline-2",
            overrides: Some(Overrides {
                workers: Some(vec![0, 1]),
                layout: Some(LayoutMode::Pipeline),
            }),
            dpdk: false,
        },
        #[cfg(feature = "dpdk")]
        Layout {
            name: "dpdk-pcap",
            overrides: None,
            dpdk: true,
        },
    ]
}

/// Turns every pcap port of `cfg` into a DPDK `net_pcap` device reading the file `files` gives
/// it (or an empty capture) and writing to the output `files` gives it (or a scratch file, in
/// `extra`, removed after the run).
#[cfg(feature = "dpdk")]
fn to_dpdk(
    cfg: &mut Config,
    files: &ReplayFiles,
    case: &str,
    extra: &mut Vec<PathBuf>,
) -> Result<(), String> {
    use dataplane::config::PortKind;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Device names are never reused within the process (DPDK keeps a removed name's slot).
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let empty = std::env::temp_dir().join(format!(
        "dataplane-golden-{}-empty.pcap",
        std::process::id()
    ));
    if !empty.exists() {
        let mut w = pmd::pcap::PcapWriter::create(&empty, 1, 65535, false)
            .map_err(|e| format!("{}: {e}", empty.display()))?;
        w.flush().map_err(|e| format!("{}: {e}", empty.display()))?;
    }
    let find = |list: &[String], port: &str| {
        list.iter()
            .find_map(|a| a.strip_prefix(&format!("{port}=")).map(str::to_string))
    };
    for p in &mut cfg.ports {
        if !matches!(p.kind, PortKind::Pcap { .. }) {
            continue;
        }
        let input = find(&files.inputs, &p.name).unwrap_or_else(|| empty.display().to_string());
        let output = match find(&files.outputs, &p.name) {
            Some(o) => o,
            None => {
                let o = scratch(case, "dpdk-pcap-unused", &p.name);
                extra.push(o.clone());
                o.display().to_string()
            }
        };
        p.kind = PortKind::Dpdk {
            device: format!("net_pcap{}", NEXT.fetch_add(1, Ordering::Relaxed)),
            devargs: Some(format!("rx_pcap={input},tx_pcap={output}")),
            rx_desc: 1024,
            tx_desc: 1024,
            ends: true,
            queues: 1,
            spread: pmd::port::Spread::Flows,
        };
    }
    Ok(())
}

/// The fixture directory: `pcap-fixtures/` beside this crate.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcap-fixtures")
}

/// Every subdirectory with a `config.toml`, sorted by name.
fn case_dirs() -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.join("config.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

fn read_pcap(path: &Path) -> Result<Vec<Pkt>, String> {
    let mut r = PcapReader::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().map_err(|e| e.to_string())? {
        out.push(Pkt {
            ts_ns: rec.ts_ns,
            orig_len: rec.orig_len,
            data: rec.data.to_vec(),
        });
    }
    Ok(out)
}

/// A unique scratch path for one run's output on `port`.
fn scratch(case: &str, layout: &str, port: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "dataplane-golden-{}-{case}-{layout}-{port}.pcap",
        std::process::id()
    ))
}

/// A case's `case.toml`: which file each port reads and must write, and where it runs.
#[derive(Debug, Default)]
struct CaseIndex {
    /// (port, file) read.
    inputs: Vec<(String, String)>,
    /// (port, file) each output must equal; `expected.pcap` first.
    expected: Vec<(String, String)>,
    /// Layout names the case runs in.
    layouts: Vec<String>,
    /// Why some layouts are left out.
    layout_note: String,
}

fn read_index(dir: &Path) -> Result<CaseIndex, String> {
    let path = dir.join("case.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    let files = |key: &str| -> Result<Vec<(String, String)>, String> {
        let table = t
            .get(key)
            .and_then(toml::Value::as_table)
            .ok_or_else(|| bad(&format!("no [{key}] table")))?;
        let mut v = Vec::new();
        for (port, file) in table {
            let file = file
                .as_str()
                .ok_or_else(|| bad(&format!("{key}.{port}: expected a file name")))?;
            v.push((port.clone(), file.to_string()));
        }
        // The unsuffixed file (the first port's) first, as the generator lists them.
        v.sort_by_key(|(_, f)| f.contains('-'));
        Ok(v)
    };
    let known = ["rtc-1", "rtc-2", "pipeline-2"];
    let mut layouts = Vec::new();
    for l in t
        .get("layouts")
        .and_then(toml::Value::as_array)
        .ok_or_else(|| bad("no layouts list"))?
    {
        match l.as_str() {
            Some(l) if known.contains(&l) => layouts.push(l.to_string()),
            _ => return Err(bad(&format!("layouts: {l} is not one of {known:?}"))),
        }
    }
    for k in t.keys() {
        if !["inputs", "expected", "layouts", "layout_note"].contains(&k.as_str()) {
            return Err(bad(&format!("unknown key {k:?}")));
        }
    }
    Ok(CaseIndex {
        inputs: files("inputs")?,
        expected: files("expected")?,
        layouts,
        layout_note: t
            .get("layout_note")
            .and_then(toml::Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// The name of the header field that byte `off` of `frame` falls in, found with
/// `dataplane::wire::parse` (`ethernet.src`, `vlan[1].tci`, `ipv4.checksum`, `tcp.payload`...).
fn field_name(frame: &[u8], off: usize) -> String {
    if off >= frame.len() {
        return "past the end".into();
    }
    if off < 14 {
        return match off {
            0..=5 => "ethernet.dst",
            6..=11 => "ethernet.src",
            _ => "ethernet.type",
        }
        .into();
    }
    let Ok(p) = wire::parse(frame) else {
        return "after an unparsable ethernet header".into();
    };
    let l3 = usize::from(p.l3_offset);
    if off < l3 {
        let tag = (off - 14) / 4;
        let what = if (off - 14) % 4 < 2 { "tci" } else { "type" };
        return format!("vlan[{tag}].{what}");
    }
    let at = off - l3;
    let l4 = usize::from(p.l4_offset);
    match p.l3 {
        L3::Ipv4 => {
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]));
            if at >= total {
                return "ethernet.padding".into();
            }
            if at < ihl {
                return format!(
                    "ipv4.{}",
                    match at {
                        0 => "version_ihl",
                        1 => "dscp_ecn",
                        2 | 3 => "total_len",
                        4 | 5 => "ident",
                        6 | 7 => "flags_frag",
                        8 => "ttl",
                        9 => "protocol",
                        10 | 11 => "checksum",
                        12..=15 => "src",
                        16..=19 => "dst",
                        _ => "options",
                    }
                );
            }
            if !p.has_l4_header() {
                return "ipv4.fragment_data".into();
            }
            l4_field(p.l4_proto, frame, l4, off)
        }
        L3::Ipv6 => {
            let payload = usize::from(u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]));
            if at >= 40 + payload {
                return "ethernet.padding".into();
            }
            if at < 40 {
                return format!(
                    "ipv6.{}",
                    match at {
                        0..=3 => "version_tc_flow",
                        4 | 5 => "payload_len",
                        6 => "next_header",
                        7 => "hop_limit",
                        8..=23 => "src",
                        _ => "dst",
                    }
                );
            }
            if off < l4 {
                return "ipv6.ext_headers".into();
            }
            if !p.has_l4_header() {
                return "ipv6.fragment_data".into();
            }
            l4_field(p.l4_proto, frame, l4, off)
        }
        L3::Arp => match at {
            0..=7 => "arp.header",
            8..=13 => "arp.sha",
            14..=17 => "arp.spa",
            18..=23 => "arp.tha",
            24..=27 => "arp.tpa",
            _ => "ethernet.padding",
        }
        .into(),
        L3::Other | L3::None => "ethernet.payload".into(),
    }
}

/// Field names inside an L4 header starting at `l4`.
fn l4_field(proto: u8, frame: &[u8], l4: usize, off: usize) -> String {
    let at = off - l4;
    match proto {
        6 => {
            let hlen = frame.get(l4 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
            let name = match at {
                0 | 1 => "src_port",
                2 | 3 => "dst_port",
                4..=7 => "seq",
                8..=11 => "ack",
                12 => "data_offset",
                13 => "flags",
                14 | 15 => "window",
                16 | 17 => "checksum",
                18 | 19 => "urgent",
                _ if at < hlen => "options",
                _ => "payload",
            };
            format!("tcp.{name}")
        }
        17 => format!(
            "udp.{}",
            match at {
                0 | 1 => "src_port",
                2 | 3 => "dst_port",
                4 | 5 => "length",
                6 | 7 => "checksum",
                _ => "payload",
            }
        ),
        1 | 58 => format!(
            "{}.{}",
            if proto == 1 { "icmp" } else { "icmpv6" },
            match at {
                0 => "type",
                1 => "code",
                2 | 3 => "checksum",
                4..=7 => "rest_of_header",
                _ => "payload",
            }
        ),
        other => format!("ip_proto_{other}.payload"),
    }
}

/// The first difference between two packet lists, as a message; `None` if they are equal.
/// Without `meta`, timestamps and original lengths are not compared (DPDK's `net_pcap` writes
/// its own).
fn compare(expected: &[Pkt], got: &[Pkt], meta: bool) -> Option<String> {
    for (i, (e, g)) in expected.iter().zip(got).enumerate() {
        let n = i + 1;
        if let Some(off) = e.data.iter().zip(&g.data).position(|(a, b)| a != b) {
            return Some(format!(
                "packet {n}: byte {off} ({}): expected {:02x}, got {:02x}",
                field_name(&e.data, off),
                e.data[off],
                g.data[off]
            ));
        }
        if e.data.len() != g.data.len() {
            return Some(format!(
                "packet {n}: length: expected {}, got {} (equal up to the shorter)",
                e.data.len(),
                g.data.len()
            ));
        }
        if !meta {
            continue;
        }
        if e.ts_ns != g.ts_ns {
            return Some(format!(
                "packet {n}: timestamp: expected {} ns, got {} ns",
                e.ts_ns, g.ts_ns
            ));
        }
        if e.orig_len != g.orig_len {
            return Some(format!(
                "packet {n}: original length: expected {}, got {}",
                e.orig_len, g.orig_len
            ));
        }
    }
    if expected.len() != got.len() {
        return Some(format!(
            "expected {} packets, got {} (the first {} agree)",
            expected.len(),
            got.len(),
            expected.len().min(got.len())
        ));
    }
    None
}

/// Checks the report against `expected-counters.toml`; one message per mismatch.
fn check_counters(want: &toml::Table, report: &Report) -> Vec<String> {
    let mut bad = Vec::new();
    let num = |v: Option<&toml::Value>| v.and_then(toml::Value::as_integer).unwrap_or(0) as u64;
    for k in want.keys() {
        if !["created", "ports", "drops"].contains(&k.as_str()) {
            bad.push(format!("expected-counters.toml has an unknown key {k:?}"));
        }
    }
    let ports = want.get("ports").and_then(toml::Value::as_table);
    for (name, stats) in &report.ports {
        // A port not listed must count nothing.
        let w = ports
            .and_then(|p| p.get(name))
            .and_then(toml::Value::as_table);
        let get = |k: &str| num(w.and_then(|t| t.get(k)));
        for (what, wanted, got) in [
            ("rx_packets", get("rx_packets"), stats.rx_packets),
            ("tx_packets", get("tx_packets"), stats.tx_packets),
            (
                "rx_oversize",
                get("rx_oversize"),
                stats.drops[PortDrop::RxOversize as usize],
            ),
        ] {
            if wanted != got {
                bad.push(format!("port {name} {what}: expected {wanted}, got {got}"));
            }
        }
        for r in PortDrop::ALL {
            if r != PortDrop::RxOversize && stats.drops[r as usize] != 0 {
                bad.push(format!(
                    "port {name} {}: expected 0, got {}",
                    r.name(),
                    stats.drops[r as usize]
                ));
            }
        }
    }
    if let Some(p) = ports {
        for k in p.keys() {
            if !report.ports.iter().any(|(n, _)| n == k) {
                bad.push(format!(
                    "expected-counters.toml names a port the configuration lacks: {k:?}"
                ));
            }
        }
    }

    let drops = want.get("drops").and_then(toml::Value::as_table);
    let have = report.drops();
    for &r in DropReason::ALL {
        let wanted = num(drops.and_then(|d| d.get(r.name())));
        let got = have.0[r as usize];
        if wanted != got {
            bad.push(format!("drop {}: expected {wanted}, got {got}", r.name()));
        }
    }
    // Stage drops, as `stage.reason`, summed over workers.
    let mut stage_drops: Vec<(String, u64)> = Vec::new();
    for (stage, reason, n) in report.workers.iter().flat_map(|w| &w.stage_drops) {
        let key = format!("{stage}.{reason}");
        match stage_drops.iter_mut().find(|(k, _)| *k == key) {
            Some((_, total)) => *total += n,
            None => stage_drops.push((key, *n)),
        }
    }
    if let Some(d) = drops {
        for (k, v) in d {
            if k.contains('.') {
                let wanted = num(Some(v));
                let got = stage_drops
                    .iter()
                    .find(|(s, _)| s == k)
                    .map_or(0, |(_, n)| *n);
                if wanted != got {
                    bad.push(format!("drop {k}: expected {wanted}, got {got}"));
                }
            } else if !DropReason::ALL.iter().any(|r| r.name() == k) {
                bad.push(format!(
                    "expected-counters.toml names an unknown drop reason {k:?}"
                ));
            }
        }
    }
    for (k, got) in &stage_drops {
        if drops.is_none_or(|d| !d.contains_key(k)) {
            bad.push(format!("drop {k}: expected 0 (not listed), got {got}"));
        }
    }
    if let Some(v) = want.get("created") {
        let (wanted, got) = (num(Some(v)), report.created());
        if wanted != got {
            bad.push(format!("created: expected {wanted}, got {got}"));
        }
    }
    if !report.balanced() {
        bad.push("counters do not balance".into());
    }
    bad
}

/// Replays one case in one layout; the problems found (empty: pass).
fn run_case(dir: &Path, index: &CaseIndex, layout: &Layout) -> Vec<String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut cfg = match Config::load(&dir.join("config.toml")) {
        Ok(c) => c,
        Err(e) => return vec![format!("config: {e}")],
    };
    if let Some(o) = &layout.overrides {
        if let Err(e) = cfg.apply(o) {
            return vec![format!("overrides: {e}")];
        }
    }
    let outs: Vec<(String, PathBuf)> = index
        .expected
        .iter()
        .map(|(port, _)| (port.clone(), scratch(&name, layout.name, port)))
        .collect();
    let files = ReplayFiles {
        inputs: index
            .inputs
            .iter()
            .map(|(port, file)| format!("{port}={}", dir.join(file).display()))
            .collect(),
        outputs: outs
            .iter()
            .map(|(port, path)| format!("{port}={}", path.display()))
            .collect(),
    };
    let remove_outputs = || {
        for (_, path) in &outs {
            let _ = std::fs::remove_file(path);
        }
    };
    // Scratch outputs of ports the case does not check (only the DPDK layout has them).
    #[cfg_attr(not(feature = "dpdk"), allow(unused_mut))]
    let mut extra: Vec<PathBuf> = Vec::new();
    #[cfg(feature = "dpdk")]
    if layout.dpdk {
        if let Err(e) = to_dpdk(&mut cfg, &files, &name, &mut extra) {
            return vec![format!("dpdk ports: {e}")];
        }
    }
    let result = if layout.dpdk {
        build::run(&cfg, Some(&ReplayFiles::default()), &AtomicBool::new(false))
    } else {
        build::run(&cfg, Some(&files), &AtomicBool::new(false))
    };
    for p in &extra {
        let _ = std::fs::remove_file(p);
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            remove_outputs();
            return vec![format!("replay failed: {e}")];
        }
    };
    let mut bad = Vec::new();
    for ((port, file), (_, out)) in index.expected.iter().zip(&outs) {
        let expected = match read_pcap(&dir.join(file)) {
            Ok(e) => e,
            Err(e) => {
                bad.push(format!("{port}: {file}: {e}"));
                continue;
            }
        };
        match read_pcap(out) {
            Ok(got) => {
                bad.extend(compare(&expected, &got, !layout.dpdk).map(|m| format!("{port}: {m}")))
            }
            Err(e) => bad.push(format!("{port}: output unreadable: {e}")),
        }
    }
    // The ordering case only proves something if the flows really spread over the workers.
    if layout.name == "rtc-2" && report.received() >= 1000 {
        let per_worker: Vec<u64> = report.workers.iter().map(|w| w.processed).collect();
        if per_worker.len() != 2 || per_worker.iter().any(|&n| n < report.received() / 10) {
            bad.push(format!(
                "flows did not spread over the two workers (packets per worker: {per_worker:?})"
            ));
        }
    }
    let counters = std::fs::read_to_string(dir.join("expected-counters.toml"))
        .map_err(|e| e.to_string())
        .and_then(|t| t.parse::<toml::Table>().map_err(|e| e.to_string()));
    match counters {
        Ok(want) => bad.extend(check_counters(&want, &report)),
        Err(e) => bad.push(format!("expected-counters.toml: {e}")),
    }
    if bad.is_empty() {
        remove_outputs();
    } else {
        let kept: Vec<String> = outs
            .iter()
            .map(|(port, p)| format!("{port}: {}", p.display()))
            .collect();
        bad.push(format!(
            "output kept at {}; counters:\n{}",
            kept.join(", "),
            report.render()
        ));
    }
    bad
}

#[test]
fn golden_cases_in_every_layout() {
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 6,
        "expected the golden cases under {} (run `cargo run -p pcap-fixtures`), found {}",
        fixtures_dir().display(),
        dirs.len()
    );
    let cases: Vec<(PathBuf, Result<CaseIndex, String>)> =
        dirs.iter().map(|d| (d.clone(), read_index(d))).collect();
    let two_cpus = pmd::mem::online_cpus().len() >= 2;
    let mut failures = Vec::new();
    for layout in layouts() {
        if layout.overrides.is_some() && !two_cpus {
            skip_note!(
                "golden: skipping layout {}: it needs 2 online CPUs, this machine has {:?}",
                layout.name,
                pmd::mem::online_cpus()
            );
            continue;
        }
        for (dir, index) in &cases {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let index = match index {
                Ok(i) => i,
                Err(e) => {
                    failures.push(format!("{name} [{}]: {e}", layout.name));
                    continue;
                }
            };
            // The DPDK layout is rtc-1 with other ports.
            let shape = if layout.dpdk { "rtc-1" } else { layout.name };
            if !index.layouts.iter().any(|l| l == shape) {
                skip_note!(
                    "golden: skipping {name} in {}: {}",
                    layout.name,
                    index.layout_note
                );
                continue;
            }
            let t = Instant::now();
            let bad = run_case(dir, index, &layout);
            eprintln!(
                "golden: {name} [{}]: {} ({:.0?})",
                layout.name,
                if bad.is_empty() { "ok" } else { "FAILED" },
                t.elapsed()
            );
            for b in bad {
                failures.push(format!("{name} [{}]: {b}", layout.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn field_names_point_into_the_right_header() {
    // A 802.1Q-tagged IPv4/TCP frame, built by hand.
    let mut f = vec![0u8; 18 + 20 + 20 + 4];
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    f[14..16].copy_from_slice(&[0x00, 0x64]);
    f[16..18].copy_from_slice(&[0x08, 0x00]);
    f[18] = 0x45;
    f[20..22].copy_from_slice(&44u16.to_be_bytes());
    f[27] = 6;
    f[18 + 20 + 12] = 0x50;
    for (off, want) in [
        (0, "ethernet.dst"),
        (6, "ethernet.src"),
        (12, "ethernet.type"),
        (15, "vlan[0].tci"),
        (17, "vlan[0].type"),
        (18, "ipv4.version_ihl"),
        (28, "ipv4.checksum"),
        (34, "ipv4.dst"),
        (38, "tcp.src_port"),
        (51, "tcp.flags"),
        (58, "tcp.payload"),
        (99, "past the end"),
    ] {
        assert_eq!(field_name(&f, off), want, "offset {off}");
    }
    let a = Pkt {
        ts_ns: 5,
        orig_len: 62,
        data: f.clone(),
    };
    let mut b = a.clone();
    b.data[7] = 0xee;
    assert_eq!(
        compare(&[a.clone(), a.clone()], &[a.clone(), b], true).unwrap(),
        "packet 2: byte 7 (ethernet.src): expected 00, got ee"
    );
    assert_eq!(
        compare(std::slice::from_ref(&a), &[], true).unwrap(),
        "expected 1 packets, got 0 (the first 0 agree)"
    );
}
