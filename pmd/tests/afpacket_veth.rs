//! AF_PACKET on real kernel interfaces: three network namespaces joined by two veth pairs,
//!
//! ```text
//!   ns A (sender)  a0 ──veth── b0   ns F (our two AF_PACKET ports, forwarding)   b1 ──veth── c0  ns C (tcpdump)
//! ```
//!
//! A thread in A sends numbered frames with a plain raw socket; a thread in F polls port `b0`
//! and transmits every burst on port `b1`; `tcpdump` in C captures them. Every frame must
//! arrive, once, in order. The namespaces are deleted when the test ends, even on failure.
//!
//! Needs root (namespaces, raw sockets) and `ip` and `tcpdump`; without them the test says why
//! on stderr and passes without running.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pmd::mem::HugePolicy;
use pmd::port::afpacket::{AfPacketConfig, AfPacketPort};
use pmd::port::{Port, Spread};
use pmd::{Burst, Pool, PoolConfig};

const FRAMES: u32 = 5000;
const ETHERTYPE: u16 = 0x88b5;

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespaces; deleted on drop (also when the test panics).
struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Adds namespace `ns` without IPv6 (whose router solicitations would be extra traffic).
fn add_netns(ns: &str) {
    sh(&["ip", "netns", "add", ns]);
    for which in ["all", "default"] {
        let key = format!("net.ipv6.conf.{which}.disable_ipv6=1");
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &key]);
    }
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).unwrap();
    // SAFETY: setns on this thread with a namespace descriptor we hold open.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

fn frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 100];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xc0]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa0]);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Sends `FRAMES` frames on `a0` from a raw socket (one `send` each: this is the traffic
/// source, not the dataplane).
fn send_frames() {
    send_with(frame);
}

/// Sends `FRAMES` frames built by `make` on `a0`.
fn send_with(make: fn(u32) -> Vec<u8>) {
    // SAFETY: plain socket(2) call; protocol 0 receives nothing.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0);
    let name = std::ffi::CString::new("a0").unwrap();
    // SAFETY: NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    // SAFETY: sockaddr_ll is plain data.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_ifindex = ifindex;
    a.sll_halen = 6;
    for seq in 0..FRAMES {
        let f = make(seq);
        loop {
            // SAFETY: `f` and `a` are live for the call.
            let r = unsafe {
                libc::sendto(
                    fd,
                    f.as_ptr().cast(),
                    f.len(),
                    0,
                    (&a as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if r == f.len() as isize {
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        if seq % 64 == 63 {
            // Pace a little: the forwarder shares two cores with everything else.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    // SAFETY: closing the descriptor we opened.
    unsafe { libc::close(fd) };
}

#[test]
fn veth_namespaces_forward_and_capture() {
    let missing: Vec<&str> = ["ip", "tcpdump"].into_iter().filter(|c| !have(c)).collect();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !missing.is_empty() || !root {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP veth_namespaces_forward_and_capture: {}",
            if root {
                format!("missing {}", missing.join(", "))
            } else {
                "not root".into()
            }
        );
        return;
    }
    let tag = std::process::id();
    let (na, nf, nc) = (
        format!("pmdafp{tag}a"),
        format!("pmdafp{tag}f"),
        format!("pmdafp{tag}c"),
    );
    let _guard = Netns(vec![na.clone(), nf.clone(), nc.clone()]);
    for n in [&na, &nf, &nc] {
        add_netns(n);
    }
    sh(&[
        "ip", "link", "add", "a0", "netns", &na, "type", "veth", "peer", "name", "b0", "netns", &nf,
    ]);
    sh(&[
        "ip", "link", "add", "b1", "netns", &nf, "type", "veth", "peer", "name", "c0", "netns", &nc,
    ]);
    for (n, i) in [(&na, "a0"), (&nf, "b0"), (&nf, "b1"), (&nc, "c0")] {
        sh(&["ip", "-n", n, "link", "set", i, "up"]);
    }

    // Capture in C.
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("afp-veth-{tag}.pcap"));
    let errlog = dir.join(format!("afp-veth-{tag}.err"));
    let mut tcpdump = Command::new("ip")
        .args([
            "netns", "exec", &nc, "tcpdump", "-i", "c0", "-n", "-U", "-w",
        ])
        .arg(&pcap)
        .args(["ether", "proto", "0x88b5"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errlog).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !std::fs::read_to_string(&errlog)
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "tcpdump did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The forwarder in F.
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop2, ready2, nf2) = (stop.clone(), ready.clone(), nf.clone());
    let fwd = std::thread::spawn(move || {
        enter(&nf2);
        let pool = Pool::new(&PoolConfig {
            name: "afp".into(),
            count: 4096,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut cache = pool.cache();
        let open = |name: &str, id| {
            AfPacketPort::open(
                name,
                id,
                AfPacketConfig {
                    interface: name.into(),
                    ..AfPacketConfig::default()
                },
            )
            .unwrap()
        };
        let (mut b0, mut b1) = (open("b0", 0), open("b1", 1));
        ready2.store(true, Ordering::Release);
        let mut burst = Burst::new();
        let mut dropped_full = 0u64;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            let n = b0.rx_burst(0, &mut cache, &mut burst, 32).unwrap();
            // Anything that is not ours (there should be nothing) is not forwarded.
            burst.retain_owned(|_, m| {
                if m.data().get(12..14) == Some(&ETHERTYPE.to_be_bytes()[..]) {
                    Some(m)
                } else {
                    cache.free(m);
                    None
                }
            });
            let mut tries = 0;
            while !burst.is_empty() {
                b1.tx_burst(0, &mut cache, &mut burst).unwrap();
                tries += 1;
                if tries > 1000 {
                    dropped_full += burst.len() as u64;
                    cache.free_burst(&mut burst);
                }
            }
            if n == 0 {
                std::thread::yield_now();
            }
        }
        b1.flush().unwrap();
        (b0.stats(), b1.stats(), dropped_full)
    });

    // The sender in A, once the ports are open.
    while !ready.load(Ordering::Acquire) {
        assert!(!fwd.is_finished(), "forwarder failed to start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let na2 = na.clone();
    std::thread::spawn(move || {
        enter(&na2);
        send_frames();
    })
    .join()
    .unwrap();

    // Wait for tcpdump to have them all (or time out), then stop everything.
    let t0 = Instant::now();
    let count_pcap = || -> Vec<u32> {
        let mut seqs = Vec::new();
        if let Ok(mut r) = pmd::pcap::PcapReader::open(&pcap) {
            while let Ok(Some(rec)) = r.next_record() {
                if rec.data.len() >= 18 {
                    seqs.push(u32::from_be_bytes(rec.data[14..18].try_into().unwrap()));
                }
            }
        }
        seqs
    };
    while count_pcap().len() < FRAMES as usize && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (rx, tx, dropped_full) = fwd.join().unwrap();
    // SAFETY: kill on the pid of a child we spawned (`ip netns exec` execs tcpdump).
    unsafe { libc::kill(tcpdump.id() as i32, libc::SIGINT) };
    let _ = tcpdump.wait();
    let seqs = count_pcap();
    let err = std::fs::read_to_string(&errlog).unwrap_or_default();
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&errlog);
    let _ =
        writeln!(
        std::io::stderr(),
        "sent {FRAMES}; b0 rx {} (drops {:?}); b1 tx {} (drops {:?}, ring full {dropped_full}); \
         tcpdump captured {} [{}]",
        rx.rx_packets,
        rx.drops,
        tx.tx_packets,
        tx.drops,
        seqs.len(),
        err.lines().filter(|l| l.contains("captured")).collect::<Vec<_>>().join("")
    );
    assert_eq!(rx.rx_packets, FRAMES as u64);
    assert_eq!(tx.tx_packets, FRAMES as u64);
    assert_eq!(seqs.len(), FRAMES as usize, "tcpdump saw every frame");
    assert!(
        seqs.iter().enumerate().all(|(i, &s)| s == i as u32),
        "in order, once"
    );
}

/// An IPv4/UDP frame whose source port varies with `seq` (so flows hash apart).
fn udp_frame(seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xb0]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xa0]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let mut sum = 0u32;
    for c in ip.chunks(2) {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024 + (seq % 64) as u16).to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&30u16.to_be_bytes());
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    f
}

/// Sends `FRAMES` frames made by `make` from namespace A into port `b0` of namespace F, opened
/// with two queues spread by `spread`; returns the IPv4 frames each queue received, or `None`
/// (after saying why) where the test cannot run.
fn receive_over_two_queues(
    name: &str,
    spread: Spread,
    make: fn(u32) -> Vec<u8>,
) -> Option<[Vec<Vec<u8>>; 2]> {
    let missing = !have("ip");
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if missing || !root {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP {name}: {}",
            if root { "missing ip" } else { "not root" }
        );
        return None;
    }
    let tag = std::process::id();
    let short = &name[..2];
    let (na, nf) = (format!("pmd{short}{tag}a"), format!("pmd{short}{tag}f"));
    let _guard = Netns(vec![na.clone(), nf.clone()]);
    for n in [&na, &nf] {
        add_netns(n);
    }
    sh(&[
        "ip", "link", "add", "a0", "netns", &na, "type", "veth", "peer", "name", "b0", "netns", &nf,
    ]);
    sh(&["ip", "-n", &na, "link", "set", "a0", "up"]);
    sh(&["ip", "-n", &nf, "link", "set", "b0", "up"]);

    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let (stop2, ready2, nf2) = (stop.clone(), ready.clone(), nf.clone());
    let rx = std::thread::spawn(move || {
        enter(&nf2);
        let pool = Pool::new(&PoolConfig {
            name: "afp-fanout".into(),
            count: 4096,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        let mut cache = pool.cache();
        let mut port = AfPacketPort::open(
            "b0",
            0,
            AfPacketConfig {
                interface: "b0".into(),
                queues: 2,
                spread,
                ..AfPacketConfig::default()
            },
        )
        .unwrap();
        assert_eq!(port.rx_queues(), 2);
        ready2.store(true, Ordering::Release);
        let mut per_queue: [Vec<Vec<u8>>; 2] = [Vec::new(), Vec::new()];
        let mut burst = Burst::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut n = 0;
            for (q, got) in per_queue.iter_mut().enumerate() {
                n += port.rx_burst(q as u16, &mut cache, &mut burst, 32).unwrap();
                for m in burst.as_slice() {
                    if m.data().get(12..14) == Some(&[0x08, 0x00][..]) {
                        got.push(m.data().to_vec());
                    }
                }
                cache.free_burst(&mut burst);
            }
            if n == 0 {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::yield_now();
            }
        }
        per_queue
    });
    while !ready.load(Ordering::Acquire) {
        assert!(!rx.is_finished(), "receiver failed to start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let na2 = na.clone();
    std::thread::spawn(move || {
        enter(&na2);
        send_with(make);
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    Some(rx.join().unwrap())
}

#[test]
fn fanout_spreads_flows_over_queues() {
    let Some(q) = receive_over_two_queues("fanout_flows", Spread::Flows, udp_frame) else {
        return;
    };
    let _ = writeln!(
        std::io::stderr(),
        "fanout: sent {FRAMES} frames over 64 flows; queue 0 got {}, queue 1 got {}",
        q[0].len(),
        q[1].len()
    );
    assert_eq!(q[0].len() + q[1].len(), FRAMES as usize);
    assert!(
        !q[0].is_empty() && !q[1].is_empty(),
        "both queues get flows"
    );
}

/// IPv4/UDP traffic between 16 host pairs (pair `seq % 16`: 10.0.k.1 and 10.1.k.2, either
/// way round), a third of it whole with varying ports, a third first fragments and a third
/// later fragments (no ports at all).
fn host_pair_frame(seq: u32) -> Vec<u8> {
    let mut f = udp_frame(seq);
    let k = (seq % 16) as u8;
    let (a, b) = ([10, 0, k, 1], [10, 1, k, 2]);
    let (src, dst) = if seq.is_multiple_of(2) {
        (a, b)
    } else {
        (b, a)
    };
    f[26..30].copy_from_slice(&src);
    f[30..34].copy_from_slice(&dst);
    let frag: u16 = match (seq / 16) % 3 {
        0 => 0,
        1 => 0x2000, // more fragments, offset 0: a first fragment
        _ => 8,      // offset 64 bytes (in units of 8), no more fragments: the last one
    };
    f[20..22].copy_from_slice(&frag.to_be_bytes());
    f[18..20].copy_from_slice(&(seq as u16).to_be_bytes());
    f[24..26].fill(0);
    let mut sum = 0u32;
    for c in f[14..34].chunks(2) {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    f[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f
}

#[test]
fn hosts_spread_keeps_every_packet_of_a_host_pair_on_one_queue() {
    let Some(q) = receive_over_two_queues("hosts_spread", Spread::Hosts, host_pair_frame) else {
        return;
    };
    assert_eq!(q[0].len() + q[1].len(), FRAMES as usize);
    // The pair a frame belongs to: the third byte of either address.
    let pair = |f: &[u8]| f[28];
    let mut queue_of = [None; 16];
    for (qi, frames) in q.iter().enumerate() {
        for f in frames {
            let k = usize::from(pair(f));
            assert_eq!(
                *queue_of[k].get_or_insert(qi),
                qi,
                "pair {k}: whole packets, first and later fragments, both ways, on one queue"
            );
        }
    }
    let on0 = queue_of.iter().filter(|q| **q == Some(0)).count();
    let _ = writeln!(
        std::io::stderr(),
        "hosts spread: {on0} of 16 host pairs on queue 0; frames {} / {}",
        q[0].len(),
        q[1].len()
    );
    assert!(on0 > 0 && on0 < 16, "host pairs spread over both queues");
}
