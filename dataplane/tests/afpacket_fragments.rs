//! A stateful firewall on two workers that own their AF_PACKET queues must let a tracked
//! connection's fragmented replies through. The kernel's fanout hash puts an unfragmented UDP
//! packet (hashed with its ports) and a fragment (addresses only) on different queues, so the
//! reply's first fragment would meet a worker that never saw the request; ports spread by
//! hosts (the default when a firewall tracks connections) keep both on one worker.
//!
//! ```text
//!   ns A (client) a0 ──veth── b0  ns F: dataplane, firewall + forward,  b1 ──veth── c0 ns C (server)
//!                              "inside", 2 queues      2 workers      "outside", 2 queues
//! ```
//!
//! A sends 32 UDP requests from 32 source ports; C answers each with a reply in two fragments;
//! a raw socket in A counts the fragments that come back. With `spread = "flows"` some must be
//! missing (dropped as new connections from outside), which shows the test sees the problem.
//! Needs root, `ip` and two CPUs; otherwise it says why and passes without running.

mod common;

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dataplane::build;
use dataplane::config::Config;

const CONNS: u16 = 32;
const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 9, 0, 2];

struct Netns(Vec<String>);

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the calling thread into namespace `ns`.
fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("namespace");
    // SAFETY: setns on this thread with a namespace descriptor we hold open.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// A raw packet socket bound to `ifname` in the calling thread's namespace.
fn raw_socket(ifname: &str) -> i32 {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    let name = std::ffi::CString::new(ifname).expect("name");
    // SAFETY: NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(ifindex > 0, "no interface {ifname}");
    // SAFETY: sockaddr_ll is plain data.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto;
    a.sll_ifindex = ifindex;
    // SAFETY: `a` is a valid sockaddr_ll for the call.
    let r = unsafe {
        libc::bind(
            fd,
            (&a as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
    fd
}

fn send(fd: i32, frame: &[u8]) {
    // SAFETY: `frame` is live for the call; the socket is bound to its interface.
    let r = unsafe { libc::send(fd, frame.as_ptr().cast(), frame.len(), 0) };
    assert_eq!(
        r,
        frame.len() as isize,
        "send: {}",
        std::io::Error::last_os_error()
    );
}

/// An Ethernet + IPv4 frame carrying `payload` (already holding the UDP header where there is
/// one), with fragment field `frag` and identification `id`.
fn ipv4(src: [u8; 4], dst: [u8; 4], id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    let c = common::csum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A UDP datagram's bytes (header and `data`) with its checksum.
fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(data);
    let c = common::csum(&u, common::pseudo(src, dst, 17, u.len()));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// Runs the topology with `spread` on both ports (`None`: the default); returns the reply
/// fragments the client got back and the engine's report.
fn run(tag: &str, spread: Option<&str>) -> (usize, dataplane::engine::Report) {
    let id = std::process::id();
    let (na, nf, nc) = (
        format!("dpf{tag}{id}a"),
        format!("dpf{tag}{id}f"),
        format!("dpf{tag}{id}c"),
    );
    let _guard = Netns(vec![na.clone(), nf.clone(), nc.clone()]);
    for n in [&na, &nf, &nc] {
        ip(&["netns", "add", n]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
    }
    ip(&[
        "link", "add", "a0", "netns", &na, "type", "veth", "peer", "name", "b0", "netns", &nf,
    ]);
    ip(&[
        "link", "add", "c0", "netns", &nc, "type", "veth", "peer", "name", "b1", "netns", &nf,
    ]);
    for (n, l) in [(&na, "a0"), (&nf, "b0"), (&nf, "b1"), (&nc, "c0")] {
        // No IPv6: the kernel's own router solicitations would be extra traffic.
        ip(&["-n", n, "link", "set", l, "mtu", "1500", "up"]);
    }
    let spread = spread.map_or(String::new(), |s| format!("spread = \"{s}\"\n"));
    let text = format!(
        r#"
[memory]
buffers = 8192
hugepages = "never"
[engine]
workers = [0, 1]
[[port]]
name = "inside"
kind = "af-packet"
interface = "b0"
queues = 2
{spread}
[[port]]
name = "outside"
kind = "af-packet"
interface = "b1"
queues = 2
{spread}
[[stage]]
kind = "firewall"
default = "drop"
inline = ["ct established,related accept", "in inside ct new accept"]
[[stage]]
kind = "forward"
routes = {{ inside = "outside", outside = "inside" }}
"#
    );
    let cfg = Config::parse("fragments.toml", &text, Path::new(".")).expect("config");
    let stop = AtomicBool::new(false);
    let got = std::sync::atomic::AtomicUsize::new(0);
    let listening = AtomicBool::new(false);
    let report = std::thread::scope(|s| {
        let engine = s.spawn(|| {
            enter(&nf);
            build::run(&cfg, None, &stop)
        });
        // The client's receiver: reply fragments from the server.
        let rx = s.spawn(|| {
            enter(&na);
            let fd = raw_socket("a0");
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: a valid timeval for SO_RCVTIMEO.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as u32,
                )
            };
            listening.store(true, Ordering::Release);
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: `buf` is writable for its length.
                let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
                if n >= 34 && buf[12..14] == [0x08, 0x00] && buf[26..30] == SERVER {
                    got.fetch_add(1, Ordering::Relaxed);
                }
            }
            // SAFETY: closing the descriptor we opened.
            unsafe { libc::close(fd) };
        });
        while !listening.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the engine open its sockets.
        std::thread::sleep(Duration::from_millis(500));
        s.spawn(|| {
            enter(&na);
            let fd = raw_socket("a0");
            for i in 0..CONNS {
                let u = udp(CLIENT, SERVER, 2000 + i, 53, b"question");
                send(fd, &ipv4(CLIENT, SERVER, i, 0, &u));
            }
            // SAFETY: closing the descriptor we opened.
            unsafe { libc::close(fd) };
        })
        .join()
        .expect("client");
        std::thread::sleep(Duration::from_millis(300));
        s.spawn(|| {
            enter(&nc);
            let fd = raw_socket("c0");
            for i in 0..CONNS {
                // A 104-byte datagram in two fragments of 72 and 32 bytes.
                let u = udp(SERVER, CLIENT, 53, 2000 + i, &[0x61; 96]);
                let id = 0x4000 + i;
                send(fd, &ipv4(SERVER, CLIENT, id, 0x2000, &u[..72]));
                send(fd, &ipv4(SERVER, CLIENT, id, 72 / 8, &u[72..]));
            }
            // SAFETY: closing the descriptor we opened.
            unsafe { libc::close(fd) };
        })
        .join()
        .expect("server");
        let deadline = Instant::now() + Duration::from_secs(3);
        while got.load(Ordering::Relaxed) < 2 * usize::from(CONNS) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        rx.join().expect("receiver");
        engine.join().expect("engine thread")
    })
    .expect("run");
    (got.load(Ordering::Relaxed), report)
}

#[test]
fn fragmented_replies_meet_their_connection_on_two_workers() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let have_ip = Command::new("ip").arg("-V").output().is_ok();
    if !root || !have_ip || pmd::mem::online_cpus().len() < 2 {
        let _ = writeln!(
            std::io::stderr(),
            "SKIP fragmented_replies_meet_their_connection_on_two_workers: needs root, ip and 2 CPUs"
        );
        return;
    }
    let (hosts, r) = run("h", None);
    assert!(r.balanced(), "{}", r.render());
    assert_eq!(
        hosts,
        2 * usize::from(CONNS),
        "spread by hosts (the default with a firewall): every fragment back\n{}",
        r.render()
    );
    let (flows, r) = run("f", Some("flows"));
    assert!(r.balanced(), "{}", r.render());
    let _ = writeln!(
        std::io::stderr(),
        "reply fragments back: spread by hosts {hosts}, by flows {flows} of {}",
        2 * CONNS
    );
    assert!(
        flows < hosts,
        "spread by flows: a fragment's hash differs from its connection's, so some replies meet a worker without it\n{}",
        r.render()
    );
}
