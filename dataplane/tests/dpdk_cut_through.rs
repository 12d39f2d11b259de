//! Cut-through on DPDK ports: a chain of one `forward` stage between DPDK devices moves the
//! received `rte_mbuf`s to the other port's transmit without running the stage. It must send
//! exactly what the stage path sends (the same frames, in order, the same counters), and the
//! `[engine] cut_through = false` switch must really run the stage. Ports are `net_pcap`
//! devices reading the `forward-mixed` golden input, online (the engine stops when both
//! devices' input has ended), and `net_ring` devices whose transmit nobody drains.
#![cfg(feature = "dpdk")]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use dataplane::build;
use dataplane::config::Config;
use dataplane::engine::Report;
use dataplane::stage::DropReason;
use pmd::pcap::{PcapReader, PcapWriter};

const EAL: &str = r#"eal = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry", "--log-level", "error"]"#;

fn frames(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().expect("readable capture") {
        out.push(rec.data.to_vec());
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "dataplane-cut-through-{}-{name}",
        std::process::id()
    ))
}

/// Writes `forward-mixed`'s input frames and then one of `JUMBO` bytes (more than a buffer's
/// data room) to a capture of its own; returns its path and the frames.
fn input() -> (PathBuf, Vec<Vec<u8>>) {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pcap-fixtures/forward-mixed/in.pcap");
    let mut fs = frames(&fixture);
    assert!(fs.len() > 10, "the fixture has packets");
    let mut jumbo = fs[0].clone();
    jumbo.resize(JUMBO, 0x5a);
    fs.push(jumbo);
    let path = tmp("in.pcap");
    let mut w = PcapWriter::create(&path, 1, 65535, false).expect("input capture");
    for (i, f) in fs.iter().enumerate() {
        w.write(i as u64 * 1000, f, f.len() as u32)
            .expect("written");
    }
    w.flush().expect("input capture written");
    (path, fs)
}

/// A frame longer than the 2048-byte data room: DPDK's `net_pcap` receives it as a chain of
/// mbufs.
const JUMBO: usize = 3000;

/// Runs `input` from port `a` to port `b` (both `net_pcap`, devices `n` and `n + 1`), online;
/// returns the report and the frames `b` wrote.
fn run_pcap(input: &Path, n: usize, cut_through: bool) -> (Report, Vec<Vec<u8>>) {
    let empty = tmp("empty.pcap");
    let mut w = PcapWriter::create(&empty, 1, 65535, false).expect("empty capture");
    w.flush().expect("empty capture written");
    let (out_a, out_b) = (tmp(&format!("a{n}.pcap")), tmp(&format!("b{n}.pcap")));
    let text = format!(
        r#"
[memory]
buffers = 4095
hugepages = "never"
[dpdk]
{EAL}
[engine]
workers = [0]
cut_through = {cut_through}
[[port]]
name = "a"
kind = "dpdk"
device = "net_pcap{n}"
devargs = "rx_pcap={input},tx_pcap={out_a}"
ends = true
[[port]]
name = "b"
kind = "dpdk"
device = "net_pcap{m}"
devargs = "rx_pcap={empty},tx_pcap={out_b}"
ends = true
[[stage]]
kind = "forward"
routes = {{ a = "b", b = "a" }}
"#,
        input = input.display(),
        out_a = out_a.display(),
        out_b = out_b.display(),
        empty = empty.display(),
        m = n + 1,
    );
    let cfg = Config::parse("cut.toml", &text, Path::new(".")).expect("config");
    let said = build::describe(&cfg).contains("cut-through (bursts");
    assert_eq!(
        said, cut_through,
        "`dataplane check` says whether it cuts through"
    );
    let stop = AtomicBool::new(false);
    let report = build::run(&cfg, None, &stop).expect("run");
    // The devices have written their files by the end of the run (the ports are closed).
    let sent = frames(&out_b);
    assert!(frames(&out_a).is_empty(), "nothing goes back to a");
    for p in [&out_a, &out_b] {
        let _ = std::fs::remove_file(p);
    }
    (report, sent)
}

#[test]
fn cut_through_sends_what_the_stage_sends() {
    let (path, input) = input();
    let (cut, cut_out) = run_pcap(&path, 0, true);
    let (stage, stage_out) = run_pcap(&path, 2, false);
    let n = input.len() as u64;
    let bytes = |fs: &[Vec<u8>]| fs.iter().map(|f| f.len() as u64).sum::<u64>();
    for (what, r) in [("cut-through", &cut), ("stage", &stage)] {
        assert!(r.balanced(), "{what}: {}", r.render());
        let processed: u64 = r.workers.iter().map(|w| w.processed).sum();
        assert_eq!(processed, r.received(), "{what}: {}", r.render());
    }
    // Cut-through carries every frame, the chained jumbo one too, byte for byte and in order.
    assert_eq!(
        cut_out, input,
        "cut-through: every frame out of b, unchanged, in order"
    );
    assert_eq!((cut.received(), cut.sent()), (n, n), "{}", cut.render());
    let (a, b) = (&cut.ports[0].1, &cut.ports[1].1);
    assert_eq!((a.rx_bytes, b.tx_bytes), (bytes(&input), bytes(&input)));
    // The stage path runs the forward stage on our buffers: the chained frame does not fit one
    // and is counted as rx_oversize; everything else goes out the same. So the switch works.
    assert_eq!(
        stage_out,
        input[..input.len() - 1],
        "stage: every frame that fits"
    );
    let (a, b) = (&stage.ports[0].1, &stage.ports[1].1);
    assert_eq!(
        a.drops[pmd::port::PortDrop::RxOversize as usize],
        1,
        "{}",
        stage.render()
    );
    assert_eq!(
        (a.rx_packets, b.tx_packets),
        (n - 1, n - 1),
        "{}",
        stage.render()
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_transmit_ring_that_fills_up_drops_as_tx_full_and_balances() {
    // `a` (net_null) receives without end; `b` (net_ring) loops its transmit back to its own
    // receive, and forwards what it receives to itself: every pass adds a's burst to b's ring
    // and takes out only as much as goes back in, so the ring fills and then refuses a's
    // packets, which must be freed and counted as tx_full.
    let text = format!(
        r#"
[memory]
buffers = 8191
hugepages = "never"
[dpdk]
{EAL}
[engine]
workers = [0]
[[port]]
name = "a"
kind = "dpdk"
device = "net_null9"
devargs = "size=64"
[[port]]
name = "b"
kind = "dpdk"
device = "net_ring9"
devargs = ""
[[stage]]
kind = "forward"
routes = {{ a = "b", b = "b" }}
"#
    );
    let cfg = Config::parse("ring.toml", &text, Path::new(".")).expect("config");
    let stop = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| build::run(&cfg, None, &stop));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        h.join().expect("engine thread")
    })
    .expect("run");
    assert!(r.balanced(), "{}", r.render());
    let a = &r.ports[0].1;
    let full = r.drops().0[DropReason::TxFull as usize];
    assert!(a.rx_packets > 10_000, "{}", r.render());
    assert!(
        full > a.rx_packets / 2,
        "most of a's packets find the ring full: {}",
        r.render()
    );
}
