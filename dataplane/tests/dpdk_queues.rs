//! DPDK ports with several queue pairs, one per run-to-completion worker, built from a
//! configuration the way `dataplane run` builds it: each worker polls its own queue of every
//! port (no dispatching thread), and the port counters are the sums over the queues. Both
//! with the forward stage cutting through (the default for a forward-only chain on DPDK ports)
//! and running on every packet.
#![cfg(feature = "dpdk")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dataplane::build;
use dataplane::config::Config;

#[test]
fn two_workers_each_own_a_queue_of_every_dpdk_port() {
    if pmd::mem::online_cpus().len() < 2 {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "dpdk_queues: skipped: needs 2 online CPUs"
        );
        return;
    }
    for (run, cut_through) in [(0, true), (1, false)] {
        two_workers(run, cut_through);
    }
}

fn two_workers(run: usize, cut_through: bool) {
    let text = r#"
[memory]
buffers = 16383
hugepages = "never"

[dpdk]
eal = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry", "--log-level", "error"]

[engine]
workers = [0, 1]
cut_through = CUT

[[port]]
name = "a"
kind = "dpdk"
device = "net_nullA"
devargs = "size=64"
queues = 2

[[port]]
name = "b"
kind = "dpdk"
device = "net_nullB"
devargs = "size=64"
queues = 2

[[stage]]
kind = "forward"
routes = { a = "b", b = "a" }
"#;
    // DPDK keeps a device's name taken for the life of the process: each run has its own.
    let text = text
        .replace("CUT", &cut_through.to_string())
        .replace("net_nullA", &format!("net_null{}", 2 * run))
        .replace("net_nullB", &format!("net_null{}", 2 * run + 1));
    let text = text.as_str();
    let cfg = Config::parse("queues.toml", text, std::path::Path::new(".")).expect("config");
    let described = build::describe(&cfg);
    assert!(described.contains("2 queue(s)"), "{described}");
    let stop = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| build::run(&cfg, None, &stop));
        // (EAL start-up and the mempool take a good part of a second in a debug build.)
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, Ordering::Relaxed);
        h.join().expect("engine thread")
    })
    .expect("run");
    assert!(r.balanced(), "{}", r.render());
    assert_eq!(r.workers.len(), 2, "{}", r.render());
    // net_null fills every queue: both workers must have forwarded from their own.
    assert!(
        r.workers.iter().all(|w| w.processed > 1000),
        "{}",
        r.render()
    );
    let names: Vec<&str> = r.ports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let rx: u64 = r.ports.iter().map(|(_, s)| s.rx_packets).sum();
    assert_eq!(rx, r.workers.iter().map(|w| w.processed).sum::<u64>());

    // More queues than workers is refused with the file, line and key.
    let bad = text.replacen("queues = 2", "queues = 3", 1);
    let e = Config::parse("queues.toml", &bad, std::path::Path::new(".")).expect_err("refused");
    assert_eq!(e.key, "port[0].queues", "{e}");
}
