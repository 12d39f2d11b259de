//! Replays the third-party capture corpus through a plain forwarding chain.
//!
//! The corpus (`../shared/corpus/pcap/`, or `$DATAPLANE_CORPUS/pcap/`) holds 78 real captures
//! from other projects: every pcap and pcapng flavour, snaplen-cut and truncated files, jumbo
//! frames, malformed packets and two files with an unsupported format version. Forwarding
//! `inside` → `outside` must pass every frame through untouched, so the expected output of each
//! file is the file itself as `pmd::pcap::PcapReader` reads it:
//!
//! * a file the reader refuses (bad version, corrupt header) or that holds a non-Ethernet link
//!   type is refused by `build::run` with an error naming the file: no panic, no output;
//! * every other file comes out with exactly its complete packets minus those longer than the
//!   2048-byte data room (counted as `rx_oversize`), with the same bytes, original lengths and
//!   timestamps, in order, and counters that balance.
//!
//! The many-flow captures are also replayed on two run-to-completion workers and on a two-core
//! pipeline, whose output must equal the single worker's.
//!
//! Without the corpus the test prints why it skipped and passes.

/// Prints why a test skipped, straight to stderr: the test harness captures `eprintln!` of
/// passing tests, and a skip must be seen.
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
use pmd::pcap::{PcapError, PcapReader, LINKTYPE_ETHERNET};
use pmd::port::PortDrop;

/// The data room of the forwarding configuration (the default).
const DATA_ROOM: usize = 2048;

const CONFIG: &str = r#"
[memory]
buffers = 16384
data_room = 2048
headroom = 128
hugepages = "never"

[engine]
layout = "run-to-completion"
workers = [0]

[replay]
inputs = ["inside"]
outputs = ["outside"]

[[port]]
name = "inside"
kind = "pcap"

[[port]]
name = "outside"
kind = "pcap"

[[stage]]
kind = "forward"
routes = { inside = "outside" }
"#;

/// Captures with many flows, replayed in every layout.
const MANY_FLOWS: [&str; 3] = [
    "ndpi_synscan_many_flows.pcap",
    "ndpi_gnutella_many_hosts.pcap",
    "tcpreplay_test.pcap",
];

fn corpus_dir() -> PathBuf {
    match std::env::var_os("DATAPLANE_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pkt {
    ts_ns: u64,
    orig_len: u32,
    data: Vec<u8>,
}

/// What replaying a capture must do, worked out from the file alone.
enum Expect {
    /// `build::run` fails; why the reader objects.
    Refused(String),
    /// The output, and how many input frames are too long for a buffer.
    Output { packets: Vec<Pkt>, oversize: u64 },
}

/// Reads the capture the way a replay port must see it: complete records up to the end or a
/// truncated tail.
fn expect(path: &Path) -> Expect {
    let mut r = match PcapReader::open(path) {
        Ok(r) => r,
        Err(e) => return Expect::Refused(e.to_string()),
    };
    let mut packets = Vec::new();
    let mut oversize = 0;
    loop {
        match r.next_record() {
            Ok(Some(rec)) if rec.linktype != LINKTYPE_ETHERNET => {
                return Expect::Refused(format!("link type {}", rec.linktype))
            }
            Ok(Some(rec)) if rec.data.len() > DATA_ROOM => oversize += 1,
            Ok(Some(rec)) => packets.push(Pkt {
                ts_ns: rec.ts_ns,
                // A record claiming fewer bytes on the wire than it holds is written back with
                // its captured length.
                orig_len: rec.orig_len.max(rec.data.len() as u32),
                data: rec.data.to_vec(),
            }),
            Ok(None) | Err(PcapError::Truncated { .. }) => {
                return Expect::Output { packets, oversize }
            }
            Err(e) => return Expect::Refused(e.to_string()),
        }
    }
}

fn read_all(path: &Path) -> Result<Vec<Pkt>, String> {
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

/// The first difference between two packet lists.
fn compare(want: &[Pkt], got: &[Pkt]) -> Option<String> {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        let n = i + 1;
        if let Some(off) = w.data.iter().zip(&g.data).position(|(a, b)| a != b) {
            return Some(format!(
                "packet {n}: byte {off}: expected {:02x}, got {:02x}",
                w.data[off], g.data[off]
            ));
        }
        if (w.data.len(), w.ts_ns, w.orig_len) != (g.data.len(), g.ts_ns, g.orig_len) {
            return Some(format!(
                "packet {n}: (length, timestamp ns, original length): expected {:?}, got {:?}",
                (w.data.len(), w.ts_ns, w.orig_len),
                (g.data.len(), g.ts_ns, g.orig_len)
            ));
        }
    }
    (want.len() != got.len()).then(|| {
        format!(
            "expected {} packets, got {} (the first {} agree)",
            want.len(),
            got.len(),
            want.len().min(got.len())
        )
    })
}

/// Replays `input` with `overrides` into a scratch file; the output packets, the inside port's
/// rx_oversize count and whether the counters balance, or the error.
fn replay(input: &Path, tag: &str, overrides: Option<&Overrides>) -> Result<Replayed, String> {
    let mut cfg = Config::parse("corpus-forward.toml", CONFIG, Path::new("."))
        .expect("the corpus configuration is valid");
    if let Some(o) = overrides {
        cfg.apply(o).map_err(|e| format!("overrides: {e}"))?;
    }
    let name = input.file_name().unwrap().to_string_lossy();
    let out = std::env::temp_dir().join(format!(
        "dataplane-corpus-{}-{tag}-{name}.pcap",
        std::process::id()
    ));
    let files = ReplayFiles {
        inputs: vec![input.display().to_string()],
        outputs: vec![out.display().to_string()],
    };
    let result = build::run(&cfg, Some(&files), &AtomicBool::new(false));
    let replayed = result.map_err(|e| e.to_string()).and_then(|report| {
        let packets = read_all(&out)?;
        let inside = &report.ports[0].1;
        Ok(Replayed {
            packets,
            oversize: inside.drops[PortDrop::RxOversize as usize],
            engine_drops: report.drops().total(),
            balanced: report.balanced(),
        })
    });
    let _ = std::fs::remove_file(&out);
    replayed
}

struct Replayed {
    packets: Vec<Pkt>,
    oversize: u64,
    engine_drops: u64,
    balanced: bool,
}

#[test]
fn corpus_replays_unchanged() {
    let corpus = corpus_dir();
    let pcap = corpus.join("pcap");
    let index = match std::fs::read_to_string(pcap.join("INDEX.tsv")) {
        Ok(s) => s,
        Err(e) => {
            skip_note!(
                "corpus_replay: skipped: no corpus index at {} ({e}); set DATAPLANE_CORPUS",
                pcap.join("INDEX.tsv").display()
            );
            return;
        }
    };
    let files: Vec<&str> = index
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .filter(|f| !f.is_empty())
        .collect();
    assert!(files.len() >= 70, "INDEX.tsv lists {} files", files.len());

    let mut failures = Vec::new();
    let (mut replayed, mut refused) = (0, 0);
    let started = Instant::now();
    for file in &files {
        let path = pcap.join(file);
        let t = Instant::now();
        let expected = expect(&path);
        let got = replay(&path, "rtc1", None);
        let mut fail = |msg: String| failures.push(format!("{file}: {msg}"));
        match (&expected, got) {
            (Expect::Refused(why), Err(e)) => {
                refused += 1;
                if !e.contains(file) {
                    fail(format!(
                        "refused, but the error does not name the file: {e}"
                    ));
                }
                eprintln!("corpus: {file}: refused as expected ({why}): {e}");
            }
            (Expect::Refused(why), Ok(r)) => fail(format!(
                "expected a refusal ({why}), but it replayed {} packets",
                r.packets.len()
            )),
            (Expect::Output { .. }, Err(e)) => fail(format!("replay failed: {e}")),
            (Expect::Output { packets, oversize }, Ok(r)) => {
                replayed += 1;
                if let Some(d) = compare(packets, &r.packets) {
                    fail(d);
                }
                if r.oversize != *oversize {
                    fail(format!(
                        "rx_oversize: expected {oversize}, got {}",
                        r.oversize
                    ));
                }
                if r.engine_drops != 0 {
                    fail(format!("{} engine drops in a pure forward", r.engine_drops));
                }
                if !r.balanced {
                    fail("counters do not balance".into());
                }
                eprintln!(
                    "corpus: {file}: {} in, {} out, {} rx_oversize ({:.0?})",
                    packets.len() as u64 + oversize,
                    r.packets.len(),
                    r.oversize,
                    t.elapsed()
                );
            }
        }
        if file.contains("invalid_version") && !matches!(expected, Expect::Refused(_)) {
            fail("an invalid-version file must be refused".into());
        }
    }
    eprintln!(
        "corpus: {} files: {replayed} replayed, {refused} refused ({:.1?})",
        files.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn many_flow_captures_give_the_same_output_in_every_layout() {
    let pcap = corpus_dir().join("pcap");
    if !pcap.join("INDEX.tsv").is_file() {
        skip_note!(
            "corpus_replay: skipped: no corpus at {}; set DATAPLANE_CORPUS",
            pcap.display()
        );
        return;
    }
    if pmd::mem::online_cpus().len() < 2 {
        skip_note!(
            "corpus_replay: skipped the multi-core layouts: 2 online CPUs needed, have {:?}",
            pmd::mem::online_cpus()
        );
        return;
    }
    let layouts = [
        (
            "rtc2",
            Overrides {
                workers: Some(vec![0, 1]),
                layout: Some(LayoutMode::RunToCompletion),
            },
        ),
        (
            "pipeline2",
            Overrides {
                workers: Some(vec![0, 1]),
                layout: Some(LayoutMode::Pipeline),
            },
        ),
    ];
    let mut failures = Vec::new();
    for file in MANY_FLOWS {
        let path = pcap.join(file);
        let base = match replay(&path, "base", None) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file} [rtc1]: {e}"));
                continue;
            }
        };
        for (tag, o) in &layouts {
            let t = Instant::now();
            match replay(&path, tag, Some(o)) {
                Ok(r) => {
                    let diff = compare(&base.packets, &r.packets);
                    eprintln!(
                        "corpus: {file} [{tag}]: {} out, {} ({:.0?})",
                        r.packets.len(),
                        if diff.is_none() {
                            "same as 1 worker"
                        } else {
                            "DIFFERS"
                        },
                        t.elapsed()
                    );
                    if let Some(d) = diff {
                        failures.push(format!("{file} [{tag}] vs 1 worker: {d}"));
                    }
                    if (r.oversize, r.engine_drops, r.balanced)
                        != (base.oversize, base.engine_drops, base.balanced)
                    {
                        failures.push(format!(
                            "{file} [{tag}]: (rx_oversize, engine drops, balanced) = {:?}, 1 worker: {:?}",
                            (r.oversize, r.engine_drops, r.balanced),
                            (base.oversize, base.engine_drops, base.balanced)
                        ));
                    }
                }
                Err(e) => failures.push(format!("{file} [{tag}]: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
