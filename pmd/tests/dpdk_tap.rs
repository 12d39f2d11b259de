//! Transmit checksum offload through a DPDK device that has it: DPDK's `net_tap`, whose other
//! end is a kernel interface. Frames whose IPv4 and TCP/UDP checksums were left to transmit
//! (`Mbuf::request_tx_csum`, the fields holding garbage) are sent by the port, which hands the
//! work to the device; an AF_PACKET port on the kernel interface reads them back, and every
//! checksum is recomputed here from scratch. Needs root and `/dev/net/tun`: without them the
//! test prints why it skipped.
#![cfg(feature = "dpdk")]

use std::process::Command;
use std::time::{Duration, Instant};

use pmd::dpdk::{DpdkPool, DpdkPort, DpdkPortOptions, Eal};
use pmd::mem::HugePolicy;
use pmd::port::afpacket::{AfPacketConfig, AfPacketPort};
use pmd::port::Port;
use pmd::{Burst, Pool, PoolConfig};

const IFACE: &str = "dpcsum0";

fn csum(data: &[u8], init: u32) -> u16 {
    let mut s = init;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An Ethernet/IPv4 frame to UDP or TCP port `dp`, every checksum field set to 0xdead.
fn frame(proto: u8, dp: u16, payload: usize) -> Vec<u8> {
    let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 9, 8, 0];
    let l4 = if proto == 6 { 20 } else { 8 } + payload;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0xde, 0xad];
    ip.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    ip[2..4].copy_from_slice(&((20 + l4) as u16).to_be_bytes());
    let mut t = vec![0u8; l4];
    t[0..2].copy_from_slice(&4000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    if proto == 6 {
        t[12] = 5 << 4;
        t[13] = 0x02;
        t[16..18].copy_from_slice(&[0xde, 0xad]);
    } else {
        t[4..6].copy_from_slice(&(l4 as u16).to_be_bytes());
        t[6..8].copy_from_slice(&[0xde, 0xad]);
    }
    for (i, b) in t
        .iter_mut()
        .enumerate()
        .skip(if proto == 6 { 20 } else { 8 })
    {
        *b = (i * 13) as u8;
    }
    f.extend(ip);
    f.extend(t);
    f
}

/// True if the frame's IPv4 header and TCP/UDP checksums are right.
fn checksums_right(f: &[u8]) -> bool {
    let ip = &f[14..];
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let mut ph = u32::from(ip[9]) + (tot - 20) as u32;
    for c in ip[12..20].chunks(2) {
        ph += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    csum(&ip[..20], 0) == 0 && csum(&ip[20..tot], ph) == 0
}

#[test]
fn the_device_fills_checksums_left_to_transmit() {
    let root = euid_is_root();
    if !root || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: net_tap needs root and /dev/net/tun");
        return;
    }
    let eal = Eal::init(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level",
        "error",
        "-l",
        "0",
    ])
    .expect("EAL");
    let pool = DpdkPool::new(&eal, "tap", 1023, 2048, None).expect("pool");
    let opts = DpdkPortOptions {
        rx_desc: 256,
        tx_desc: 256,
        devargs: Some(format!("iface={IFACE}")),
        ends: false,
        queues: 1,
        ..DpdkPortOptions::default()
    };
    let mut port = match DpdkPort::open_with(&eal, "tap", 0, "net_tap9", &pool, &opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skipped: cannot create a net_tap device here (no CAP_NET_ADMIN?): {e}");
            return;
        }
    };
    assert!(
        port.tx_csum_offload(),
        "net_tap offers IPv4/TCP/UDP checksum offload"
    );
    let up = Command::new("ip")
        .args(["link", "set", IFACE, "up"])
        .status()
        .expect("ip");
    assert!(up.success(), "ip link set {IFACE} up");
    let kernel_pool = Pool::new(&PoolConfig {
        name: "kernel".into(),
        count: 1024,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap();
    let mut kcache = kernel_pool.cache();
    let mut kernel = AfPacketPort::open(
        IFACE,
        1,
        AfPacketConfig {
            interface: IFACE.into(),
            ..AfPacketConfig::default()
        },
    )
    .expect("AF_PACKET on the tap interface");

    // TCP and UDP of several lengths, each from the DPDK mempool, checksums left to the device.
    let mut cache = pool.pool().cache();
    let mut sent = Vec::new();
    let mut burst = Burst::new();
    for (i, (proto, payload)) in [(6u8, 0usize), (17, 0), (6, 333), (17, 1001), (17, 1)]
        .into_iter()
        .enumerate()
    {
        let f = frame(proto, 7000 + i as u16, payload);
        let mut m = cache.alloc().expect("mbuf");
        m.set_len(f.len());
        m.data_mut().copy_from_slice(&f);
        m.request_tx_csum(14);
        sent.push(7000 + i as u16);
        burst.push(m).unwrap();
    }
    let n = burst.len();
    assert_eq!(port.tx_burst(0, &mut cache, &mut burst).unwrap(), n);

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut rx = Burst::new();
    while got.len() < sent.len() && Instant::now() < deadline {
        kernel.rx_burst(0, &mut kcache, &mut rx, 32).unwrap();
        while let Some(m) = rx.pop() {
            let d = m.data();
            // Ours: IPv4 from 192.0.2.1 (the kernel sends its own IPv6 chatter too).
            if d.len() > 38 && d[12..14] == [8, 0] && d[26..30] == [192, 0, 2, 1] {
                let dp = u16::from_be_bytes([d[36], d[37]]);
                got.push((dp, checksums_right(d)));
            }
            kcache.free(m);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    got.sort();
    let want: Vec<(u16, bool)> = sent.iter().map(|&p| (p, true)).collect();
    assert_eq!(got, want, "every frame arrives with right checksums");
}

/// Whether the process runs as root, read from /proc (no libc call needed).
fn euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
