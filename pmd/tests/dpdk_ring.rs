//! The `dpdk` feature on DPDK's `net_ring` device, a loop: what a port transmits comes back on
//! its own receive queue. Packets built in the mempool's buffers and packets from one of our
//! own pools (copied into an `rte_mbuf` on the way out) must come back byte for byte, in order,
//! with every buffer returned to its pool; and a virtual device created by the port's
//! `devargs` exists while the port is open and is gone after. A device without checksum offload
//! gets the checksums a stage left to transmit filled in software. A ring that fills up takes
//! part of a burst: the rest stays with the caller, in order, and nothing is freed twice.
//! Cut-through (`rx_native`/`tx_native`) moves the same mbufs between two devices, counts
//! them, and frees what a full ring refuses exactly once.
#![cfg(feature = "dpdk")]

use pmd::dpdk::{DpdkPool, DpdkPort, DpdkPortOptions, Eal};
use pmd::port::Port;
use pmd::{Burst, Pool, PoolConfig};

fn eal() -> Eal {
    Eal::init(&[
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--no-telemetry",
        "--log-level",
        "error",
        "--vdev",
        "net_ring0",
        "--vdev",
        "net_ring1",
        "--vdev",
        "net_ring2",
        "--vdev",
        "net_ring3",
        "--vdev",
        "net_ring4",
        "-l",
        "0",
    ])
    .expect("EAL")
}

/// Takes every buffer the pool hands out and checks none comes twice (a buffer freed twice
/// would), and that about all `count` are back (up to a mempool cache's worth may sit in
/// another lcore's cache); then gives them back.
fn every_mbuf_back_once(cache: &mut pmd::PoolCache, count: usize) {
    let mut all = Vec::new();
    while let Some(m) = cache.alloc() {
        all.push(m);
    }
    let mut seen: Vec<usize> = all.iter().map(|m| m.as_ptr() as usize).collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(all.len(), seen.len(), "no mbuf is handed out twice");
    assert!(all.len() + 256 >= count, "{} mbufs back", all.len());
    for m in all {
        cache.free(m);
    }
}

/// Receives from `port`'s queue 0 until it is empty, freeing every buffer; the frames' bytes
/// in the order they came.
fn drain(port: &mut DpdkPort, cache: &mut pmd::PoolCache) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let mut back = Burst::new();
        if port.rx_burst(0, cache, &mut back, 32).unwrap() == 0 {
            return got;
        }
        got.extend(back.as_slice().iter().map(|m| m.data().to_vec()));
        cache.free_burst(&mut back);
    }
}

/// A frame of `len` bytes whose every byte says which packet it is.
fn frame(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 7 + k) as u8).collect()
}

#[test]
fn net_ring_loops_packets_back_unchanged() {
    let eal = eal();
    let pool = DpdkPool::new(&eal, "loop", 4095, 2048, None).expect("pool");
    let mut port = DpdkPort::open(&eal, "loop", 0, "net_ring0", &pool, 512, 512).expect("port");
    let mut cache = pool.pool().cache();
    // Our own (non-DPDK) pool: its packets are copied into mbufs on transmit.
    let ours = Pool::new(&PoolConfig {
        name: "ours".into(),
        count: 256,
        ..Default::default()
    })
    .expect("our pool");
    let mut our_cache = ours.cache();

    let mut sent_frames = Vec::new();
    for round in 0..50 {
        let mut burst = Burst::new();
        for k in 0..32 {
            let i = round * 32 + k;
            let len = 60 + (i % 1400);
            let f = frame(i, len);
            // Every other packet from our own pool.
            let mut m = if k % 2 == 0 {
                cache.alloc().expect("mempool buffer")
            } else {
                our_cache.alloc().expect("our buffer")
            };
            m.set_len(len);
            m.data_mut().copy_from_slice(&f);
            sent_frames.push(f);
            burst.push(m).expect("room");
        }
        // Copied buffers of ours are freed into the cache passed in (any pool's cache takes
        // back buffers of other pools through their shared rings).
        let sent = port.tx_burst(0, &mut our_cache, &mut burst).expect("tx");
        assert_eq!(sent, 32, "the ring has room for a burst");
        assert!(burst.is_empty());
        let mut back = Burst::new();
        let got = port.rx_burst(0, &mut cache, &mut back, 32).expect("rx");
        assert_eq!(got, 32, "what was sent comes back");
        for (j, m) in back.as_slice().iter().enumerate() {
            let want = &sent_frames[round * 32 + j];
            assert_eq!(
                m.data(),
                &want[..],
                "packet {} changed on the loop",
                round * 32 + j
            );
            assert_eq!(m.port(), 0);
        }
        cache.free_burst(&mut back);
    }
    let st = port.stats();
    assert_eq!((st.rx_packets, st.tx_packets), (1600, 1600));
    assert_eq!(port.ethdev_stats().opackets, 1600);
    drop(cache);
    drop(our_cache);
    assert_eq!(
        pool.pool().shared_free(),
        4095,
        "every mbuf is back in the mempool"
    );
    assert_eq!(
        ours.shared_free(),
        256,
        "every buffer of ours is back in its pool"
    );
}

#[test]
fn devargs_create_a_device_for_the_port_and_remove_it_after() {
    let eal = eal();
    let pool = DpdkPool::new(&eal, "hotplug", 1023, 2048, None).expect("pool");
    let opts = DpdkPortOptions {
        rx_desc: 256,
        tx_desc: 256,
        devargs: Some("size=128".into()),
        ends: false,
        queues: 1,
        ..DpdkPortOptions::default()
    };
    let mut port =
        DpdkPort::open_with(&eal, "hp", 0, "net_null7", &pool, &opts).expect("hot-plugged port");
    let mut cache = pool.pool().cache();
    let mut burst = Burst::new();
    assert_eq!(port.rx_burst(0, &mut cache, &mut burst, 8).unwrap(), 8);
    assert!(
        burst.as_slice().iter().all(|m| m.len() == 128),
        "devargs reached the device"
    );
    cache.free_burst(&mut burst);
    drop(port);
    let err = DpdkPort::open(&eal, "again", 0, "net_null7", &pool, 256, 256)
        .err()
        .expect("the device is gone with its port");
    assert!(err.to_string().contains("no such ethdev"), "{err}");
    let bad = DpdkPortOptions {
        devargs: Some("no_such_key=1".into()),
        ..DpdkPortOptions::default()
    };
    let err = DpdkPort::open_with(&eal, "bad", 0, "net_null8", &pool, &bad)
        .err()
        .expect("bad devargs are refused");
    assert!(err.to_string().contains("net_null8"), "{err}");
}

#[test]
fn checksums_left_to_transmit_are_filled_in_software_without_the_offload() {
    let eal = eal();
    let pool = DpdkPool::new(&eal, "csum", 1023, 2048, None).expect("pool");
    let mut port = DpdkPort::open(&eal, "csum", 0, "net_ring1", &pool, 256, 256).expect("port");
    assert!(!port.tx_csum_offload(), "net_ring has no checksum offload");
    let mut cache = pool.pool().cache();
    // UDP/IPv4, both checksums garbage, left to transmit.
    let mut f = vec![0u8; 14 + 20 + 8 + 5];
    f[12..14].copy_from_slice(&[8, 0]);
    f[14..26].copy_from_slice(&[0x45, 0, 0, 33, 0, 1, 0, 0, 64, 17, 0xde, 0xad]);
    f[26..34].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f[34..42].copy_from_slice(&[0x1f, 0x90, 0, 53, 0, 13, 0xde, 0xad]);
    f[42..].copy_from_slice(b"hello");
    let mut m = cache.alloc().expect("mbuf");
    m.set_len(f.len());
    m.data_mut().copy_from_slice(&f);
    m.request_tx_csum(14);
    let mut burst = Burst::new();
    burst.push(m).unwrap();
    assert_eq!(port.tx_burst(0, &mut cache, &mut burst).unwrap(), 1);
    let mut back = Burst::new();
    assert_eq!(port.rx_burst(0, &mut cache, &mut back, 8).unwrap(), 1);
    let d = back.as_slice()[0].data().to_vec();
    cache.free_burst(&mut back);
    // Recomputed from scratch: the header, then UDP with its pseudo-header.
    let sum = |b: &[u8], init: u32| {
        let mut s = init;
        for c in b.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s
    };
    assert_eq!(sum(&d[14..34], 0), 0xffff, "IPv4 header checksum");
    let ph = sum(&d[26..34], 17 + 13);
    assert_eq!(sum(&d[34..], ph), 0xffff, "UDP checksum");
    assert_eq!(d[42..], *b"hello");
}

#[test]
fn a_full_ring_leaves_the_rest_of_a_burst_and_frees_nothing_twice() {
    let eal = eal();
    let pool = DpdkPool::new(&eal, "full", 4095, 2048, None).expect("pool");
    let mut port = DpdkPort::open(&eal, "full", 0, "net_ring2", &pool, 512, 512).expect("port");
    let mut cache = pool.pool().cache();
    let ours = Pool::new(&PoolConfig {
        name: "ours-full".into(),
        count: 256,
        ..Default::default()
    })
    .expect("our pool");
    let mut our_cache = ours.cache();
    // First a burst with copies (every other packet from our pool), then bursts of mempool
    // buffers only until the ring refuses part of one.
    let mut sent_total = 0;
    let mut burst = Burst::new();
    for k in 0..32 {
        let mut m = if k % 2 == 0 {
            cache.alloc().expect("mempool buffer")
        } else {
            our_cache.alloc().expect("our buffer")
        };
        m.set_len(64);
        m.data_mut().copy_from_slice(&frame(k, 64));
        burst.push(m).expect("room");
    }
    assert_eq!(port.tx_burst(0, &mut our_cache, &mut burst).unwrap(), 32);
    sent_total += 32;
    let mut partial = false;
    for round in 1..400 {
        let mut burst = Burst::new();
        for k in 0..32 {
            let mut m = cache.alloc().expect("mempool buffer");
            m.set_len(64);
            m.data_mut().copy_from_slice(&frame(round * 32 + k, 64));
            burst.push(m).expect("room");
        }
        let sent = port.tx_burst(0, &mut our_cache, &mut burst).unwrap();
        sent_total += sent;
        if sent < 32 {
            assert_eq!(burst.len(), 32 - sent, "what was not sent stays");
            for (j, m) in burst.as_slice().iter().enumerate() {
                assert_eq!(m.data(), &frame(round * 32 + sent + j, 64)[..], "in order");
            }
            cache.free_burst(&mut burst);
            partial = true;
            break;
        }
    }
    assert!(partial, "the ring filled up");
    let got = drain(&mut port, &mut cache).len();
    assert_eq!(got, sent_total, "everything sent comes back once");
    every_mbuf_back_once(&mut cache, 4095);
    drop(cache);
    drop(our_cache);
    assert_eq!(pool.pool().shared_free(), 4095);
    assert_eq!(ours.shared_free(), 256, "every buffer of ours is back");
}

#[test]
fn cut_through_moves_mbufs_between_devices_and_frees_the_refused_once() {
    use pmd::port::{NativeBurst, NativeKind};
    let eal = eal();
    let pool = DpdkPool::new(&eal, "cut", 4095, 2048, None).expect("pool");
    let mut a = DpdkPort::open(&eal, "a", 0, "net_ring3", &pool, 512, 512).expect("a");
    let mut b = DpdkPort::open(&eal, "b", 1, "net_ring4", &pool, 512, 512).expect("b");
    assert_eq!(a.native_kind(), Some(NativeKind::RteMbuf));
    let mut cache = pool.pool().cache();
    // Load a's loop with 64 frames.
    let mut expect = Vec::new();
    for round in 0..2 {
        let mut burst = Burst::new();
        for k in 0..32 {
            let f = frame(round * 32 + k, 60 + k);
            let mut m = cache.alloc().expect("mempool buffer");
            m.set_len(f.len());
            m.data_mut().copy_from_slice(&f);
            expect.push(f);
            burst.push(m).expect("room");
        }
        assert_eq!(a.tx_burst(0, &mut cache, &mut burst).unwrap(), 32);
    }
    // a -> b untouched, then read back from b's loop as ordinary packets.
    let mut nb = NativeBurst::new();
    let mut moved = 0;
    while moved < 64 {
        let n = a.rx_native(0, &mut nb, 32).unwrap();
        assert!(n > 0, "a's ring holds what was sent");
        moved += n;
        assert_eq!(b.tx_native(0, &mut nb).unwrap(), n);
        assert!(nb.is_empty());
    }
    let got = drain(&mut b, &mut cache);
    assert_eq!(got, expect, "same bytes, same order");
    let bytes: u64 = expect.iter().map(|f| f.len() as u64).sum();
    assert_eq!((a.stats().rx_packets, a.stats().rx_bytes), (64, bytes));
    assert_eq!((b.stats().tx_packets, b.stats().tx_bytes), (64, bytes));
    // Fill b's ring through cut-through until it refuses part of a burst: the refused stay in
    // the burst and `free` gives them back to the mempool once.
    let mut sent = 0;
    let mut refused = 0;
    for round in 0..400 {
        let mut burst = Burst::new();
        for k in 0..32 {
            let mut m = cache.alloc().expect("mempool buffer");
            m.set_len(64);
            m.data_mut().copy_from_slice(&frame(round * 32 + k, 64));
            burst.push(m).expect("room");
        }
        assert_eq!(a.tx_burst(0, &mut cache, &mut burst).unwrap(), 32);
        assert_eq!(a.rx_native(0, &mut nb, 32).unwrap(), 32);
        let s = b.tx_native(0, &mut nb).unwrap();
        sent += s;
        if s < 32 {
            refused = nb.free();
            assert_eq!(refused, 32 - s);
            break;
        }
    }
    assert!(refused > 0, "b's ring filled up");
    assert_eq!(
        b.stats().tx_packets,
        64 + sent as u64,
        "only what was taken counts as sent"
    );
    let drained = drain(&mut b, &mut cache).len();
    assert_eq!(drained, sent);
    // A burst dropped with mbufs in it frees them too.
    let mut burst = Burst::new();
    let mut m = cache.alloc().expect("mempool buffer");
    m.set_len(64);
    burst.push(m).expect("room");
    assert_eq!(a.tx_burst(0, &mut cache, &mut burst).unwrap(), 1);
    let mut last = NativeBurst::new();
    assert_eq!(a.rx_native(0, &mut last, 32).unwrap(), 1);
    drop(last);
    every_mbuf_back_once(&mut cache, 4095);
    drop(cache);
    assert_eq!(pool.pool().shared_free(), 4095, "every mbuf is back");
}
