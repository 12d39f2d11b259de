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
