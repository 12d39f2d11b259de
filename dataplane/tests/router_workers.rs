//! The router on two run-to-completion workers, online: neighbours are resolved once, by the
//! worker that owns each next hop, and learned by every worker.
//!
//! A LAN port answers ARP requests the way hosts do (the reply comes back after the request
//! went out, which a capture replayed through several workers cannot promise); a WAN port
//! sends traffic from many flows, spread over both workers by the flow hash, to three hosts on
//! the LAN nobody has resolved yet. Frames are built and read here, not with the dataplane's
//! own code.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::build;
use dataplane::config::Config;
use dataplane::engine::{ClockMode, Engine};
use pmd::port::{Port, PortError, PortStats};
use pmd::{Burst, PoolCache};

mod common;
use common::csum;

const LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const WAN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PEER_MAC: [u8; 6] = [2, 0xee, 0, 0, 0, 9];

fn host_mac(last: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, last]
}

/// A UDP/IPv4 frame from `src` to `dst` (received on the WAN side), carrying `id`.
fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, id: u32) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&WAN_MAC);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[8, 0]);
    let mut ip = vec![0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&12u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&id.to_be_bytes());
    f
}

/// Receives frames popped from `src` (up to `max`, as buffers allow) as port `port`'s; returns
/// how many.
fn rx_frames(
    src: &mut Vec<Vec<u8>>,
    port: u16,
    pool: &mut PoolCache,
    burst: &mut Burst,
    max: usize,
) -> usize {
    let mut n = 0;
    while n < max {
        let Some(f) = src.pop() else { break };
        let Some(mut m) = pool.alloc() else {
            src.push(f);
            break;
        };
        assert!(m.copy_from(&f));
        m.set_port(port);
        burst.push(m).map_err(|_| ()).expect("room");
        n += 1;
    }
    n
}

/// What the LAN port saw leave.
#[derive(Default)]
struct Seen {
    frames: Vec<Vec<u8>>,
}

/// The LAN: hosts 10.0.0.50..52 answer ARP requests for themselves.
struct Lan {
    seen: Arc<Mutex<Seen>>,
    replies: Vec<Vec<u8>>,
    answered: Arc<AtomicUsize>,
    stats: PortStats,
}

impl Port for Lan {
    fn name(&self) -> &str {
        "lan"
    }
    fn rx_burst(
        &mut self,
        _q: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let n = rx_frames(&mut self.replies, 0, pool, burst, max);
        self.answered.fetch_add(n, Ordering::Release);
        self.stats.rx_packets += n as u64;
        Ok(n)
    }
    fn tx_burst(
        &mut self,
        _q: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        let mut seen = self.seen.lock().unwrap();
        while let Some(m) = burst.pop() {
            let d = m.data().to_vec();
            // An ARP request from the router for one of our hosts: answer it.
            if d[12..14] == [8, 6] && d[20..22] == [0, 1] {
                let tpa: [u8; 4] = d[38..42].try_into().unwrap();
                if tpa[..3] == [10, 0, 0] && (50..53).contains(&tpa[3]) {
                    let mac = host_mac(tpa[3]);
                    let mut r = Vec::new();
                    r.extend_from_slice(&LAN_MAC);
                    r.extend_from_slice(&mac);
                    r.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
                    r.extend_from_slice(&mac);
                    r.extend_from_slice(&tpa);
                    r.extend_from_slice(&LAN_MAC);
                    r.extend_from_slice(&d[28..32]);
                    self.replies.push(r);
                }
            }
            seen.frames.push(d);
            pool.free(m);
        }
        self.stats.tx_packets += n as u64;
        Ok(n)
    }
    fn stats(&self) -> PortStats {
        self.stats
    }
}

/// The WAN: ten packets per LAN host, then, once the LAN has answered, the rest.
struct Wan {
    first: Vec<Vec<u8>>,
    rest: Vec<Vec<u8>>,
    answered: Arc<AtomicUsize>,
    stats: PortStats,
}

impl Port for Wan {
    fn name(&self) -> &str {
        "wan"
    }
    fn rx_burst(
        &mut self,
        _q: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let src = if !self.first.is_empty() {
            &mut self.first
        } else if self.answered.load(Ordering::Acquire) >= 3 {
            &mut self.rest
        } else {
            return Ok(0);
        };
        let n = rx_frames(src, 1, pool, burst, max);
        self.stats.rx_packets += n as u64;
        Ok(n)
    }
    fn tx_burst(
        &mut self,
        _q: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = burst.len();
        pool.free_burst(burst);
        self.stats.tx_packets += n as u64;
        Ok(n)
    }
    fn stats(&self) -> PortStats {
        self.stats
    }
}

#[test]
fn neighbours_resolve_once_and_every_worker_learns_them() {
    let online = pmd::mem::online_cpus();
    if !(online.contains(&0) && online.contains(&1)) {
        eprintln!("skipped: needs cores 0 and 1 online (online: {online:?})");
        return;
    }
    let text = r#"
[memory]
buffers = 16384
hugepages = "never"
[engine]
workers = [0, 1]
layout = "run-to-completion"
[[port]]
name = "lan"
kind = "null"
mac = "02:00:00:00:00:01"
[[port]]
name = "wan"
kind = "null"
mac = "02:00:00:00:00:02"
[[stage]]
kind = "router"
hold = 64
interfaces = [
  { port = "lan", address = "10.0.0.1/24" },
  { port = "wan", address = "192.0.2.2/24" },
]
"#;
    let cfg = Config::parse("router-workers.toml", text, Path::new(".")).unwrap();
    // 3 hosts x 60 flows: ten packets per host first (held while their host is resolved,
    // from flows on both workers), the rest once every host has answered.
    let mut first = Vec::new();
    let mut rest = Vec::new();
    let mut id = 0u32;
    for h in 50..53u8 {
        for f in 0..60u16 {
            let pkt = udp(
                [198, 51, 100, (f % 50) as u8 + 1],
                [10, 0, 0, h],
                1000 + f,
                id,
            );
            id += 1;
            if f < 10 {
                first.push(pkt);
            } else {
                rest.push(pkt);
            }
        }
    }
    let total = id as usize;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let answered = Arc::new(AtomicUsize::new(0));
    let ports: Vec<Box<dyn Port>> = vec![
        Box::new(Lan {
            seen: seen.clone(),
            replies: Vec::new(),
            answered: answered.clone(),
            stats: PortStats::default(),
        }),
        Box::new(Wan {
            first,
            rest,
            answered,
            stats: PortStats::default(),
        }),
    ];
    let mut opts = build::engine_options(&cfg, false);
    opts.clock = ClockMode::Tsc;
    assert!(
        opts.steer.is_some(),
        "the router broadcasts ARP to its workers"
    );
    let pool = build::build_pool(&cfg).unwrap();
    let engine = Engine::new(
        ports,
        pool,
        Box::new(|w| build::build_chain(&cfg, w, 2)),
        opts,
    )
    .unwrap();
    let stop = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let h = s.spawn(|| engine.run(&stop));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let n = seen.lock().unwrap().frames.len();
            if n >= total + 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap().unwrap()
    });
    assert!(report.balanced(), "{}", report.render());
    let seen = seen.lock().unwrap();
    let requests: Vec<&Vec<u8>> = seen.frames.iter().filter(|f| f[12..14] == [8, 6]).collect();
    let mut asked: Vec<u8> = requests.iter().map(|f| f[41]).collect();
    asked.sort_unstable();
    assert_eq!(
        asked,
        vec![50, 51, 52],
        "one ARP request per host:\n{}",
        report.render()
    );
    let data: Vec<&Vec<u8>> = seen.frames.iter().filter(|f| f[12..14] == [8, 0]).collect();
    assert_eq!(
        data.len(),
        total,
        "every packet delivered:\n{}",
        report.render()
    );
    for f in &data {
        assert_eq!(f[0..6], host_mac(f[33]), "to the host's MAC");
        assert_eq!(f[6..12], LAN_MAC);
        assert_eq!(f[22], 63, "TTL decremented once");
        assert_eq!(csum(&f[14..34], 0), 0, "IPv4 header checksum");
    }
    let counter = |name: &str| -> u64 {
        report
            .workers
            .iter()
            .flat_map(|w| w.stages.iter())
            .flat_map(|(_, c)| c.iter())
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .sum()
    };
    // Every worker learned all three hosts (from the replies or their copies).
    for (i, w) in report.workers.iter().enumerate() {
        let learned = w
            .stages
            .iter()
            .flat_map(|(_, c)| c.iter())
            .find(|(n, _)| n == "neighbours_learned")
            .map_or(0, |(_, v)| *v);
        assert!(
            learned >= 3,
            "worker {i} learned {learned}:\n{}",
            report.render()
        );
    }
    assert_eq!(report.copies, 3, "each reply copied to the other worker");
    assert_eq!(counter("arp_nd_requests"), 3);
    // Packets routed by a worker that does not own their next hop crossed over to it.
    assert!(counter("neighbour_handoffs") > 0, "{}", report.render());
    // At least the packet that caused each request waited (later ones of the first ten may
    // come after the reply, depending on timing).
    let held = counter("packets_held");
    assert!(
        (3..=30).contains(&held),
        "{held} held:\n{}",
        report.render()
    );
}
