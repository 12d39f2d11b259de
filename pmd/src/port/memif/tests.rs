//! In-process tests: our server against our client over a real socket and memfd.

use super::*;
use crate::mem::HugePolicy;
use crate::pool::{Pool, PoolConfig};

fn pool() -> Pool {
    Pool::new(&PoolConfig {
        name: "memif-test".into(),
        count: 4096,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn sock_path(tag: &str) -> String {
    format!("@pmd-memif-test-{}-{tag}", std::process::id())
}

fn pair(tag: &str, log2: u8) -> (MemifPort, MemifPort) {
    let path = sock_path(tag);
    let s = MemifPort::open(
        "srv",
        0,
        MemifConfig {
            socket: path.clone(),
            role: Role::Server,
            id: 7,
            log2_ring_size: log2,
            buffer_size: 2048,
        },
    )
    .unwrap();
    let c = MemifPort::open(
        "cli",
        1,
        MemifConfig {
            socket: path,
            role: Role::Client,
            id: 7,
            log2_ring_size: log2,
            buffer_size: 2048,
        },
    )
    .unwrap();
    (s, c)
}

fn connect(s: &mut MemifPort, c: &mut MemifPort) {
    for _ in 0..2000 {
        s.service();
        c.service();
        if s.is_up() && c.is_up() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!(
        "no link: server {:?} client {:?}",
        s.last_error(),
        c.last_error()
    );
}

fn send(p: &mut MemifPort, cache: &mut PoolCache, n: usize, first: u32) -> usize {
    let mut b = Burst::new();
    for i in 0..n {
        let mut m = cache.alloc().unwrap();
        let mut bytes = [0u8; 64];
        bytes[..4].copy_from_slice(&(first + i as u32).to_be_bytes());
        assert!(m.copy_from(&bytes[..60 + (i % 3)]));
        b.push(m).unwrap();
    }
    let took = p.tx_burst(0, cache, &mut b).unwrap();
    cache.free_burst(&mut b);
    took
}

fn recv_all(p: &mut MemifPort, cache: &mut PoolCache) -> Vec<u32> {
    let mut out = Vec::new();
    let mut b = Burst::new();
    loop {
        let n = p.rx_burst(0, cache, &mut b, 64).unwrap();
        if n == 0 {
            break;
        }
        for m in b.as_slice() {
            out.push(u32::from_be_bytes(m.data()[..4].try_into().unwrap()));
        }
        cache.free_burst(&mut b);
    }
    out
}

#[test]
fn both_directions_in_order() {
    let pool = pool();
    let mut cache = pool.cache();
    let (mut s, mut c) = pair("dirs", 6);
    connect(&mut s, &mut c);
    assert_eq!(c.peer().map(|p| p.contains("srv")), Some(true));
    // Client refills its receive ring on its first poll.
    assert!(recv_all(&mut c, &mut cache).is_empty());
    let mut next = 0u32;
    for _ in 0..20 {
        let took = send(&mut c, &mut cache, 40, next);
        assert_eq!(took, 40);
        let got = recv_all(&mut s, &mut cache);
        assert_eq!(got, (next..next + 40).collect::<Vec<_>>());
        let took = send(&mut s, &mut cache, 40, next);
        assert_eq!(took, 40);
        let got = recv_all(&mut c, &mut cache);
        assert_eq!(got, (next..next + 40).collect::<Vec<_>>());
        next += 40;
    }
    // A full ring leaves packets in the burst (64 slots, 100 offered).
    assert_eq!(send(&mut c, &mut cache, 100, 0), 64);
    assert_eq!(recv_all(&mut s, &mut cache).len(), 64);
    assert_eq!(s.stats().rx_packets, 800 + 64);
    assert_eq!(c.stats().tx_packets, 800 + 64);
    assert_eq!(s.stats().total_drops(), 0);
}

#[test]
fn peer_restart_counts_in_flight_and_reconnects() {
    let pool = pool();
    let mut cache = pool.cache();
    let (mut s, mut c) = pair("restart", 6);
    connect(&mut s, &mut c);
    assert_eq!(send(&mut c, &mut cache, 10, 0), 10);
    // The server goes away with 10 packets unread in the client's transmit ring.
    drop(s);
    for _ in 0..200 {
        c.service();
        if !c.is_up() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!c.is_up());
    let st = c.stats();
    assert_eq!(st.tx_packets, 0);
    assert_eq!(st.drops[PortDrop::TxLostInRing as usize], 10);
    // Offered while down: counted.
    assert_eq!(send(&mut c, &mut cache, 5, 0), 5);
    assert_eq!(c.stats().drops[PortDrop::TxLinkDown as usize], 5);
    // The server comes back: the client reconnects by itself.
    let mut s = MemifPort::open(
        "srv",
        0,
        MemifConfig {
            socket: sock_path("restart"),
            role: Role::Server,
            id: 7,
            log2_ring_size: 6,
            buffer_size: 2048,
        },
    )
    .unwrap();
    connect(&mut s, &mut c);
    assert_eq!(c.link_stats().connects, 2);
    assert_eq!(send(&mut c, &mut cache, 10, 100), 10);
    assert_eq!(recv_all(&mut s, &mut cache), (100..110).collect::<Vec<_>>());
}

#[test]
fn wrong_id_is_refused() {
    let path = sock_path("id");
    let mut s = MemifPort::open(
        "srv",
        0,
        MemifConfig {
            socket: path.clone(),
            role: Role::Server,
            id: 1,
            ..MemifConfig::default()
        },
    )
    .unwrap();
    let mut c = MemifPort::open(
        "cli",
        1,
        MemifConfig {
            socket: path,
            role: Role::Client,
            id: 2,
            ..MemifConfig::default()
        },
    )
    .unwrap();
    for _ in 0..50 {
        s.service();
        c.service();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!s.is_up() && !c.is_up());
    assert!(
        s.last_error().unwrap().contains("id 2"),
        "{:?}",
        s.last_error()
    );
    assert!(c.link_stats().failed_handshakes > 0);
}

#[test]
fn garbage_in_shared_memory_is_counted_not_fatal() {
    let pool = pool();
    let mut cache = pool.cache();
    let (mut s, mut c) = pair("garbage", 4);
    connect(&mut s, &mut c);
    // The client (playing a hostile peer) points a descriptor far outside its region.
    let link = c.link.as_ref().unwrap();
    let r = &link.regions[0];
    let ring = link.tx;
    let d = ring.desc(0);
    r.write_u32(d + DESC_OFFSET, u32::MAX - 8).unwrap();
    r.write_u32(d + DESC_LENGTH, 64).unwrap();
    r.write_u16(d + DESC_REGION, 0).unwrap();
    let d1 = ring.desc(1);
    r.write_u16(d1 + DESC_REGION, 9).unwrap();
    r.write_u32(d1 + DESC_LENGTH, 64).unwrap();
    r.atomic_u16(ring.off + RING_HEAD)
        .unwrap()
        .store(2, Ordering::Release);
    assert!(recv_all(&mut s, &mut cache).is_empty());
    assert_eq!(s.stats().drops[PortDrop::RxBadDescriptor as usize], 2);
    assert!(s.is_up());
    // Then publishes an index that cannot be true: the server drops the link.
    let link = c.link.as_ref().unwrap();
    link.regions[0]
        .atomic_u16(ring.off + RING_HEAD)
        .unwrap()
        .store(5000, Ordering::Release);
    assert!(recv_all(&mut s, &mut cache).is_empty());
    assert!(!s.is_up());
    assert!(s.last_error().unwrap().contains("out of range"));
}

#[test]
fn shutdown_drains_then_counts_what_the_peer_left() {
    let pool = pool();
    let mut cache = pool.cache();
    let (mut s, mut c) = pair("drain", 6);
    connect(&mut s, &mut c);
    assert_eq!(send(&mut c, &mut cache, 20, 0), 20);
    // The server never reads: at shutdown the client waits, then counts the 20 as lost.
    c.flush().unwrap();
    assert!(!c.is_up());
    assert_eq!(c.stats().tx_packets, 0);
    assert_eq!(c.stats().drops[PortDrop::TxLostInRing as usize], 20);
    // A reader that keeps up loses nothing.
    let (mut s, mut c) = pair("drain2", 6);
    connect(&mut s, &mut c);
    assert_eq!(send(&mut c, &mut cache, 20, 0), 20);
    assert_eq!(recv_all(&mut s, &mut cache).len(), 20);
    c.flush().unwrap();
    assert_eq!(c.stats().tx_packets, 20);
    assert_eq!(c.stats().total_drops(), 0);
}

#[test]
fn server_takes_a_new_client_after_the_old_one_left() {
    let pool = pool();
    let mut cache = pool.cache();
    let (mut s, c) = pair("newclient", 6);
    let mut c = c;
    connect(&mut s, &mut c);
    drop(c);
    // A new client arrives before the server has looked at its socket again.
    let mut c2 = MemifPort::open(
        "cli2",
        1,
        MemifConfig {
            socket: sock_path("newclient"),
            role: Role::Client,
            id: 7,
            log2_ring_size: 6,
            buffer_size: 2048,
        },
    )
    .unwrap();
    c2.service();
    connect(&mut s, &mut c2);
    assert_eq!(s.link_stats().connects, 2);
    assert_eq!(s.link_stats().disconnects, 1);
    assert_eq!(send(&mut c2, &mut cache, 8, 5), 8);
    assert_eq!(recv_all(&mut s, &mut cache), (5..13).collect::<Vec<_>>());
}
