//! A VNF chain across processes: three `dataplane run` processes joined by memif, with this test
//! as the traffic source at one end and the sink at the other.
//!
//! ```text
//!  test source ─A─▶ P1 ─B─▶ P2 ─C─▶ P3 ─D─▶ test sink
//!  (server A)   (client A,  (client B,  (server C,   (server D)
//!                server B)   client C)   client D)
//! ```
//!
//! The two ends of the middle process are both clients, so P1 and P3 keep their sockets while P2
//! is stopped (SIGTERM) and started again; P2 reconnects by itself and the flow resumes. Every
//! frame carries a sequence number. At the end every frame the source sent is either at the sink
//! or counted as a drop by one of the processes (`tx_link_down` while P2 was away,
//! `tx_lost_in_ring` for what P2 had not read when it left, engine drops), and the
//! per-link counts agree: what one process sent is what the next received.
//!
//! Bounded: about 10 s of traffic, every wait has a deadline, and the processes are killed when
//! the test ends whatever happens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pmd::mem::HugePolicy;
use pmd::port::memif::{MemifConfig, MemifPort, Role};
use pmd::port::{Port, PortDrop};
use pmd::{Burst, Pool, PoolConfig};

fn say(s: &str) {
    let _ = writeln!(std::io::stderr(), "{s}");
}

struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn start(name: &str, config: &Path, dir: &Path, incarnation: u32) -> Proc {
        let log = dir.join(format!("{name}-{incarnation}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_dataplane"))
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(format!("{name}-{incarnation}.out"))).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn dataplane");
        Proc {
            name: name.into(),
            child: Some(child),
            log,
        }
    }

    /// SIGTERM, wait (at most 20 s), and return the counters it printed.
    fn stop(&mut self) -> Report {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            status.is_some_and(|s| s.success()),
            "{} did not stop cleanly ({status:?}):\n{text}",
            self.name
        );
        Report::parse(&self.name, &text)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One port's line: name, rx packets, tx packets, drops by reason name.
type PortLine = (String, u64, u64, Vec<(String, u64)>);

/// What one `dataplane run` printed at exit.
#[derive(Debug, Default)]
struct Report {
    /// Per port: (name, rx, tx, drops by reason name).
    ports: Vec<PortLine>,
    /// Engine + stage drops and held packets from the total line.
    engine_drops: u64,
    balanced: bool,
    text: String,
}

impl Report {
    fn parse(who: &str, text: &str) -> Report {
        let mut r = Report {
            text: text.to_string(),
            ..Report::default()
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("port ") {
                // port NAME: rx N pkts B bytes, tx N pkts B bytes[, reason N]...
                let (name, rest) = rest.split_once(": ").unwrap();
                let parts: Vec<&str> = rest.split(", ").collect();
                let num = |s: &str, i: usize| -> u64 {
                    s.split_whitespace().nth(i).unwrap().parse().unwrap()
                };
                let rx = num(parts[0], 1);
                let tx = num(parts[1], 1);
                let drops = parts[2..]
                    .iter()
                    .map(|p| {
                        let (n, v) = p.rsplit_once(' ').unwrap();
                        (n.to_string(), v.parse().unwrap())
                    })
                    .collect();
                r.ports.push((name.to_string(), rx, tx, drops));
            }
            if let Some(rest) = line.strip_prefix("total: ") {
                // received R + created C = sent S + dropped D (engine) + X (stages) + T (port tx) + held H: balanced
                let w: Vec<&str> = rest.split_whitespace().collect();
                let at = |k: &str| -> u64 {
                    let i = w.iter().position(|x| *x == k).unwrap();
                    w[i + 1].trim_end_matches(':').parse().unwrap()
                };
                let d = at("dropped");
                let stages = w[w.iter().position(|x| *x == "(engine)").unwrap() + 2]
                    .parse::<u64>()
                    .unwrap();
                r.engine_drops = d + stages + at("held");
                r.balanced = rest.ends_with("balanced") && !rest.contains("NOT");
            }
        }
        assert!(
            !r.ports.is_empty(),
            "{who}: no counters in its output:\n{text}"
        );
        r
    }

    fn port(&self, name: &str) -> &PortLine {
        self.ports.iter().find(|p| p.0 == name).unwrap()
    }

    /// All port drops (receive and transmit) plus engine and stage drops.
    fn all_drops(&self) -> u64 {
        self.engine_drops
            + self
                .ports
                .iter()
                .flat_map(|p| p.3.iter().map(|d| d.1))
                .sum::<u64>()
    }
}

fn config(dir: &Path, name: &str, core: usize, a: (&str, &str), b: (&str, &str)) -> PathBuf {
    let text = format!(
        r#"[memory]
buffers = 4096
hugepages = "never"

[engine]
workers = [{core}]

[[port]]
name = "in"
kind = "memif"
role = "{}"
socket = "{}"
ring_size = 1024

[[port]]
name = "out"
kind = "memif"
role = "{}"
socket = "{}"
ring_size = 1024

[[stage]]
kind = "forward"
routes = {{ in = "out", out = "in" }}
"#,
        a.0, a.1, b.0, b.1
    );
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn frame(seq: u32) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// The test's two ends: a source and a sink port, polled from this thread.
struct Ends {
    src: MemifPort,
    sink: MemifPort,
    cache: pmd::PoolCache,
    next: u32,
    got: Vec<u32>,
    burst: Burst,
}

impl Ends {
    /// Polls both ends for `d`, sending `rate` frames per second if `send`.
    fn run(&mut self, d: Duration, send: bool, rate: u32) {
        let t0 = Instant::now();
        let mut sent_at_start = self.next;
        let mut last = Instant::now();
        while t0.elapsed() < d {
            self.src.service();
            self.sink.service();
            if send && self.src.is_up() {
                let due = (t0.elapsed().as_secs_f64() * rate as f64) as u32;
                if self.next - sent_at_start < due {
                    let n = (due - (self.next - sent_at_start)).min(32);
                    for i in 0..n {
                        let mut m = self.cache.alloc().unwrap();
                        assert!(m.copy_from(&frame(self.next + i)));
                        self.burst.push(m).unwrap();
                    }
                    let took = self
                        .src
                        .tx_burst(0, &mut self.cache, &mut self.burst)
                        .unwrap();
                    self.next += took as u32;
                    // What the ring would not take now is not sent (not numbered either).
                    self.cache.free_burst(&mut self.burst);
                }
            } else if send {
                // Not connected: do not count time we could not send in.
                sent_at_start = self.next;
            }
            let _ = self.src.rx_burst(0, &mut self.cache, &mut self.burst, 32);
            self.cache.free_burst(&mut self.burst);
            let n = self
                .sink
                .rx_burst(0, &mut self.cache, &mut self.burst, 32)
                .unwrap();
            for m in self.burst.as_slice() {
                self.got
                    .push(u32::from_be_bytes(m.data()[14..18].try_into().unwrap()));
            }
            self.cache.free_burst(&mut self.burst);
            if n == 0 && last.elapsed() > Duration::from_micros(200) {
                std::thread::sleep(Duration::from_micros(100));
                last = Instant::now();
            }
        }
    }

    fn wait_up(&mut self, what: &str, d: Duration) {
        let t0 = Instant::now();
        while !(self.src.is_up() && self.sink.is_up()) {
            assert!(t0.elapsed() < d, "{what}: the chain did not connect");
            self.run(Duration::from_millis(20), false, 0);
        }
    }
}

#[test]
fn three_processes_over_memif_survive_a_restart_in_the_middle() {
    let dir = std::env::temp_dir().join(format!("dp-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let s = |n: &str| dir.join(format!("{n}.sock")).display().to_string();
    let (sa, sb, sc, sd) = (s("a"), s("b"), s("c"), s("d"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let core = |i: usize| i % cores;
    let c1 = config(&dir, "p1", core(0), ("client", &sa), ("server", &sb));
    let c2 = config(&dir, "p2", core(1), ("client", &sb), ("client", &sc));
    let c3 = config(&dir, "p3", core(0), ("server", &sc), ("client", &sd));

    let pool = Pool::new(&PoolConfig {
        name: "chain-test".into(),
        count: 8192,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap();
    let open = |name: &str, sock: &str| {
        MemifPort::open(
            name,
            0,
            MemifConfig {
                socket: sock.into(),
                role: Role::Server,
                id: 0,
                log2_ring_size: 10,
                buffer_size: 2048,
            },
        )
        .unwrap()
    };
    let mut ends = Ends {
        src: open("source", &sa),
        sink: open("sink", &sd),
        cache: pool.cache(),
        next: 0,
        got: Vec::new(),
        burst: Burst::new(),
    };

    let mut p1 = Proc::start("p1", &c1, &dir, 0);
    let mut p3 = Proc::start("p3", &c3, &dir, 0);
    std::thread::sleep(Duration::from_millis(300)); // servers B and C listening
    let mut p2 = Proc::start("p2", &c2, &dir, 0);
    ends.wait_up("start", Duration::from_secs(20));
    // Both ends up does not mean the middle links are: wait for a frame to go through.
    let t0 = Instant::now();
    while ends.got.is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no frame crossed the chain"
        );
        ends.run(Duration::from_millis(50), true, 2000);
    }
    let rate = 20_000;
    ends.run(Duration::from_secs(2), true, rate);
    let before = ends.got.len();
    say(&format!(
        "before the restart: sent {}, at the sink {before}",
        ends.next
    ));
    assert!(before > 0);

    // Stop the middle process while traffic flows, keep sending, start it again.
    let r2a = p2.stop();
    ends.run(Duration::from_secs(1), true, rate);
    let restart_seq = ends.next;
    let mut p2 = Proc::start("p2", &c2, &dir, 1);
    ends.run(Duration::from_secs(3), true, rate);
    let after: usize = ends.got.iter().filter(|&&s| s >= restart_seq).count();
    say(&format!(
        "after the restart: sent {}, at the sink {} ({after} sent after P2 came back)",
        ends.next,
        ends.got.len()
    ));
    assert!(after > 0, "the flow did not resume after the restart");

    // Drain, then stop the others in chain order.
    ends.run(Duration::from_secs(1), false, 0);
    let r1 = p1.stop();
    let r2b = p2.stop();
    let r3 = p3.stop();
    ends.run(Duration::from_millis(200), false, 0);

    let src = ends.src.stats();
    let sink = ends.sink.stats();
    for (n, r) in [
        ("p1", &r1),
        ("p2 (first)", &r2a),
        ("p2 (second)", &r2b),
        ("p3", &r3),
    ] {
        say(&format!("--- {n}\n{}", r.text.trim_end()));
        assert!(r.balanced, "{n} does not balance:\n{}", r.text);
    }
    say(&format!(
        "source: sent {} (link down {}, lost in ring {}); sink: received {}",
        src.tx_packets,
        src.drops[PortDrop::TxLinkDown as usize],
        src.drops[PortDrop::TxLostInRing as usize],
        sink.rx_packets
    ));

    // Every link: what one side sent is what the other received.
    assert_eq!(src.tx_packets, r1.port("in").1, "source -> P1");
    assert_eq!(
        r1.port("out").2,
        r2a.port("in").1 + r2b.port("in").1,
        "P1 -> P2 (both runs)"
    );
    assert_eq!(
        r2a.port("out").2 + r2b.port("out").2,
        r3.port("in").1,
        "P2 (both runs) -> P3"
    );
    assert_eq!(r3.port("out").2, sink.rx_packets, "P3 -> sink");
    // End to end: sent = arrived + counted drops.
    let dropped = r1.all_drops() + r2a.all_drops() + r2b.all_drops() + r3.all_drops();
    say(&format!(
        "end to end: sent {} = at the sink {} + dropped and counted {dropped}",
        src.tx_packets, sink.rx_packets
    ));
    assert_eq!(src.tx_packets, sink.rx_packets + dropped);
    // The sink saw each frame once, in order.
    assert_eq!(ends.got.len() as u64, sink.rx_packets);
    assert!(
        ends.got.windows(2).all(|w| w[0] < w[1]),
        "duplicates or reordering"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
