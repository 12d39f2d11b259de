//! The `dpdk` feature end to end on DPDK's own `net_null` devices: the EAL comes up without
//! hugepages, the shim moves real bursts, and packets stay in their `rte_mbuf`s through our
//! `Port` trait (forwarded from one device to the other with no copy), every buffer returning
//! to the mempool.
#![cfg(feature = "dpdk")]

use pmd::dpdk::{DpdkPool, DpdkPort, Eal};
use pmd::port::Port;
use pmd::Burst;

fn eal() -> Eal {
    Eal::init(&[
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--file-prefix",
        "pmd-test",
        "--no-telemetry",
        "--log-level",
        "error",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_null1",
        "-l",
        "0",
    ])
    .expect("EAL")
}

#[test]
fn forward_between_null_devices_without_copy() {
    let eal = eal();
    assert!(eal.version().contains("22.11") || eal.version().contains("23.11"));
    assert_eq!(eal.port_count(), 2);
    let pool = DpdkPool::new(&eal, "fwd", 8191, 2048, None).expect("pool");
    let mut a = DpdkPort::open(&eal, "a", 0, "net_null0", &pool, 512, 512).expect("a");
    let mut b = DpdkPort::open(&eal, "b", 1, "net_null1", &pool, 512, 512).expect("b");
    assert!(DpdkPort::open(&eal, "c", 2, "net_null9", &pool, 512, 512).is_err());
    let mut cache = pool.pool().cache();
    let mut burst = Burst::new();
    let mut total = 0u64;
    for round in 0..200 {
        let (rx, tx) = if round % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let n = rx.rx_burst(0, &mut cache, &mut burst, 32).unwrap();
        assert_eq!(n, 32, "net_null fills every burst");
        for m in burst.as_slice() {
            assert_eq!(m.headroom(), 128, "DPDK's data_off is ours");
            assert_eq!(m.len(), 64, "net_null packets are 64 bytes");
        }
        total += n as u64;
        let sent = tx.tx_burst(0, &mut cache, &mut burst).unwrap();
        assert_eq!(sent, n);
        assert!(burst.is_empty());
    }
    assert_eq!(total, 6400);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.rx_packets + sb.rx_packets, 6400);
    assert_eq!(sa.tx_packets + sb.tx_packets, 6400);
    assert_eq!(a.ethdev_stats().opackets + b.ethdev_stats().opackets, 6400);
    // A buffer from our pool's cache (as a stage's ICMP error would be) goes out too.
    let mut m = cache.alloc().expect("alloc from the mempool");
    m.set_len(60);
    let mut one = Burst::new();
    one.push(m).unwrap();
    assert_eq!(a.tx_burst(0, &mut cache, &mut one).unwrap(), 1);
    drop(cache);
    // net_null frees on transmit: everything is back in the mempool.
    assert_eq!(pool.pool().shared_free(), 8191);
}

#[test]
fn rss_over_several_queues_hashes_what_the_spread_asks() {
    use pmd::dpdk::DpdkPortOptions;
    use pmd::port::Spread;
    let eal = eal();
    let pool = DpdkPool::new(&eal, "rss", 4095, 2048, None).expect("pool");
    // `RTE_ETH_RSS_NONFRAG_IPV4_TCP` and `_UDP`, and `RTE_ETH_RSS_IPV4`.
    let (tcp, udp, ipv4) = (1u64 << 4, 1u64 << 5, 1u64 << 2);
    let mut seen = Vec::new();
    for (i, spread) in [Spread::Flows, Spread::Hosts].into_iter().enumerate() {
        let dev = format!("net_null{}", 10 + i);
        let opts = DpdkPortOptions {
            devargs: Some(String::new()),
            queues: 2,
            spread,
            ..DpdkPortOptions::default()
        };
        let p = DpdkPort::open_with(&eal, "q", 0, &dev, &pool, &opts).expect("two queues");
        assert_eq!(p.rx_queues(), 2);
        seen.push(p.rss_hash_types());
    }
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!("rss types: flows {:#x}, hosts {:#x}\n", seen[0], seen[1]),
    );
    if seen[0] == 0 {
        // A DPDK whose net_null keeps no RSS configuration: nothing to compare.
        return;
    }
    assert_ne!(
        seen[0] & (tcp | udp),
        0,
        "flows: TCP and UDP hashed with their ports"
    );
    assert_eq!(
        seen[1] & (tcp | udp),
        0,
        "hosts: no packet type hashed with ports"
    );
    assert_ne!(seen[1] & ipv4, 0, "hosts: IPv4 by its addresses");
}
