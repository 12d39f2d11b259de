//! Interoperability with DPDK's `net_memif`: `dpdk-testpmd` on one end of a memif link, our
//! `MemifPort` on the other, in both roles. testpmd forwards in `io` mode with
//! `--port-topology=loop`, so every packet we send comes back on the same link; we count what we
//! sent and received, testpmd prints what it received and sent at exit, and the four numbers
//! must agree.
//!
//! Needs `dpdk-testpmd`, root and free 2 MiB hugepages (`scripts/setup-hugepages.sh`); without
//! them each test says why on stderr and passes without running.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pmd::mem::HugePolicy;
use pmd::port::memif::{MemifConfig, MemifPort, Role};
use pmd::port::Port;
use pmd::{Burst, Pool, PoolConfig};

const PACKETS: u32 = 20_000;

fn skip_reason() -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()));
    if !found {
        return Some("dpdk-testpmd is not installed".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (DPDK needs hugepages and root here)".into());
    }
    let free = std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if free < 64 {
        return Some(format!(
            "only {free} free 2 MiB hugepages (run scripts/setup-hugepages.sh)"
        ));
    }
    None
}

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

struct Testpmd {
    child: Child,
    log: std::path::PathBuf,
}

impl Testpmd {
    fn start(tag: &str, vdev: &str) -> Testpmd {
        let log = std::env::temp_dir().join(format!("memif-dpdk-{tag}-{}.log", std::process::id()));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new("dpdk-testpmd")
            .args([
                "-l",
                "0-1",
                "-n",
                "1",
                "--no-pci",
                "--in-memory",
                "--file-prefix",
                &format!("pmdtest{}{tag}", std::process::id()),
                "--vdev",
                vdev,
                "--",
                "--forward-mode=io",
                "--port-topology=loop",
                "--stats-period",
                "1",
                "--no-mlockall",
                "--total-num-mbufs=8192",
            ])
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn dpdk-testpmd");
        Testpmd { child, log }
    }

    /// Waits until testpmd has started forwarding, servicing our port meanwhile. Packets sent
    /// earlier would be eaten by testpmd's flush of its receive queues at forwarding start.
    fn wait_started(&self, port: &mut MemifPort) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains("NIC statistics for port 0") {
                return;
            }
            for _ in 0..20 {
                port.service();
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        panic!("testpmd did not start");
    }

    /// testpmd's port 0 (RX-packets, TX-packets) from its newest complete periodic "NIC
    /// statistics" block, read while our link is still up (DPDK clears them when the link
    /// drops). Waits up to 10 s for a block showing `want_rx` received (it prints every second).
    fn counters(&self, want_rx: u64) -> (u64, u64, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let blocks: Vec<&str> = text.split("NIC statistics for port 0").collect();
            // The last block may still be being written: take the newest one that has both
            // numbers.
            let mut found = None;
            for sec in blocks.iter().skip(1).rev() {
                let num = |key: &str| -> Option<u64> {
                    sec.split(key)
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .and_then(|s| s.parse().ok())
                };
                if let (Some(rx), Some(tx)) = (num("RX-packets:"), num("TX-packets:")) {
                    found = Some((rx, tx));
                    break;
                }
            }
            let (rx, tx) = found.unwrap_or((u64::MAX, u64::MAX));
            if rx == want_rx || Instant::now() > deadline {
                return (rx, tx, text);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops testpmd with SIGINT (killed if it does not go in 20 s).
    fn stop(mut self) {
        // SAFETY: kill on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Kept on failure for a look; removed by the next run of the same test.
        if !std::thread::panicking() && std::env::var_os("MEMIF_KEEP_LOG").is_none() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn frame(seq: u32) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Sends `PACKETS` frames (at most 256 in flight) and collects the echoes.
fn exchange(port: &mut MemifPort, pool: &Pool) -> (u64, Vec<u32>) {
    let mut cache = pool.cache();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port.is_up() {
        port.service();
        assert!(
            Instant::now() < deadline,
            "memif link did not come up: {:?}",
            port.last_error()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::with_capacity(PACKETS as usize);
    let mut next = 0u32;
    let mut b = Burst::new();
    let mut idle_since = Instant::now();
    while (got.len() as u32) < PACKETS {
        if next < PACKETS && next - (got.len() as u32) < 256 {
            let n = 32.min(PACKETS - next);
            for i in 0..n {
                let mut m = cache.alloc().unwrap();
                assert!(m.copy_from(&frame(next + i)));
                b.push(m).unwrap();
            }
            let took = port.tx_burst(0, &mut cache, &mut b).unwrap();
            cache.free_burst(&mut b); // anything not taken is not sent
            next += took as u32;
        }
        let n = port.rx_burst(0, &mut cache, &mut b, 64).unwrap();
        for m in b.as_slice() {
            got.push(u32::from_be_bytes(m.data()[14..18].try_into().unwrap()));
        }
        cache.free_burst(&mut b);
        if n > 0 {
            idle_since = Instant::now();
        } else if idle_since.elapsed() > Duration::from_secs(5) || Instant::now() > deadline {
            break;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "link: {:?}, rings {:?}, last error {:?}, drops {:?}",
        port.link_stats(),
        port.ring_indices(),
        port.last_error(),
        port.stats().drops
    );
    (port.stats().tx_packets, got)
}

fn pool() -> Pool {
    Pool::new(&PoolConfig {
        name: "memif-dpdk".into(),
        count: 4096,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn check(test: &str, ours_tx: u64, got: &[u32], tp: (u64, u64, String)) {
    let (tp_rx, tp_tx, log) = tp;
    let _ = writeln!(
        std::io::stderr(),
        "{test}: we sent {ours_tx}, testpmd received {tp_rx} and sent {tp_tx}, we received {}",
        got.len()
    );
    assert_eq!(tp_rx, ours_tx, "testpmd RX vs our TX; testpmd log:\n{log}");
    assert_eq!(tp_tx, got.len() as u64, "testpmd TX vs our RX; log:\n{log}");
    assert_eq!(ours_tx, PACKETS as u64);
    assert_eq!(got.len() as u32, PACKETS, "every packet came back");
    assert!(
        got.iter().enumerate().all(|(i, &s)| s == i as u32),
        "in order"
    );
}

#[test]
fn dpdk_server_our_client() {
    if let Some(why) = skip_reason() {
        return skip("dpdk_server_our_client", &why);
    }
    let sock = std::env::temp_dir().join(format!("memif-dpdk-srv-{}.sock", std::process::id()));
    let sock = sock.to_str().unwrap().to_string();
    let tp = Testpmd::start(
        "s",
        &format!("net_memif0,role=server,id=3,socket={sock},socket-abstract=no"),
    );
    let pool = pool();
    let mut port = MemifPort::open(
        "m0",
        0,
        MemifConfig {
            socket: sock.clone(),
            role: Role::Client,
            id: 3,
            log2_ring_size: 10,
            buffer_size: 2048,
        },
    )
    .unwrap();
    tp.wait_started(&mut port);
    let (tx, got) = exchange(&mut port, &pool);
    let r = tp.counters(tx);
    drop(port);
    tp.stop();
    let _ = std::fs::remove_file(&sock);
    check("dpdk_server_our_client", tx, &got, r);
}

#[test]
fn our_server_dpdk_client() {
    if let Some(why) = skip_reason() {
        return skip("our_server_dpdk_client", &why);
    }
    let sock = format!("@memif-dpdk-cli-{}", std::process::id());
    let pool = pool();
    let mut port = MemifPort::open(
        "m0",
        0,
        MemifConfig {
            socket: sock.clone(),
            role: Role::Server,
            id: 4,
            log2_ring_size: 10,
            buffer_size: 2048,
        },
    )
    .unwrap();
    let tp = Testpmd::start(
        "c",
        &format!(
            "net_memif0,role=client,id=4,socket={},socket-abstract=yes",
            &sock[1..]
        ),
    );
    tp.wait_started(&mut port);
    let (tx, got) = exchange(&mut port, &pool);
    let r = tp.counters(tx);
    drop(port);
    tp.stop();
    check("our_server_dpdk_client", tx, &got, r);
}
