//! Rings under real concurrency: threads on both ends, bursts of random sizes, and a check
//! that every item arrives exactly once and, per producer, in order.

use pmd::mbuf::{buf_spsc, Burst};
use pmd::ring::{mpmc, mpsc, spsc};
use pmd::{Pool, PoolConfig};

/// Items per test: enough to wrap the rings thousands of times, fewer in unoptimised builds.
const N: u32 = if cfg!(debug_assertions) {
    300_000
} else {
    2_000_000
};

fn sizes(seed: u32) -> impl FnMut() -> usize {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x % 48) as usize + 1
    }
}

#[test]
fn spsc_no_loss_no_dup_in_order() {
    let (p, c) = spsc(256).unwrap();
    let prod = std::thread::spawn(move || {
        let mut next = 0u32;
        let mut sz = sizes(7);
        let mut buf = [0u32; 64];
        while next < N {
            let k = sz().min((N - next) as usize);
            for (i, b) in buf[..k].iter_mut().enumerate() {
                *b = next + i as u32;
            }
            let n = p.enqueue_burst(&buf[..k]);
            next += n as u32;
        }
    });
    let mut expect = 0u32;
    let mut sz = sizes(11);
    let mut out = [0u32; 64];
    while expect < N {
        let n = c.dequeue_burst(&mut out[..sz()]);
        for &v in &out[..n] {
            assert_eq!(v, expect, "lost, duplicated or reordered");
            expect += 1;
        }
    }
    prod.join().unwrap();
    assert_eq!(c.dequeue_burst(&mut out), 0);
}

fn multi_producer(consumers: usize) {
    const P: u32 = 3;
    let per = N / P;
    let (p, c) = mpmc(512).unwrap();
    let prods: Vec<_> = (0..P)
        .map(|id| {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut next = 0u32;
                let mut sz = sizes(id + 3);
                let mut buf = [0u32; 64];
                while next < per {
                    let k = sz().min((per - next) as usize);
                    for (i, b) in buf[..k].iter_mut().enumerate() {
                        *b = (id << 28) | (next + i as u32);
                    }
                    next += p.enqueue_burst(&buf[..k]) as u32;
                }
            })
        })
        .collect();
    drop(p);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let cons: Vec<_> = (0..consumers)
        .map(|k| {
            let c = c.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut out = [0u32; 64];
                let mut sz = sizes(k as u32 + 100);
                while done.load(std::sync::atomic::Ordering::Relaxed) < P * per {
                    let n = c.dequeue_burst(&mut out[..sz()]);
                    done.fetch_add(n as u32, std::sync::atomic::Ordering::Relaxed);
                    seen.extend_from_slice(&out[..n]);
                }
                seen
            })
        })
        .collect();
    for t in prods {
        t.join().unwrap();
    }
    let mut all = vec![Vec::new(); P as usize];
    for t in cons {
        let seen = t.join().unwrap();
        // Per producer, one consumer sees that producer's items in increasing order.
        let mut last = [None::<u32>; P as usize];
        for v in seen {
            let (id, n) = ((v >> 28) as usize, v & 0x0fff_ffff);
            if let Some(l) = last[id] {
                assert!(n > l, "reordered within one consumer");
            }
            last[id] = Some(n);
            all[id].push(n);
        }
    }
    for v in &mut all {
        v.sort_unstable();
        assert_eq!(v.len(), per as usize, "lost or duplicated");
        assert!(
            v.iter().enumerate().all(|(i, &x)| x == i as u32),
            "lost or duplicated"
        );
    }
}

#[test]
fn mpsc_no_loss_no_dup() {
    multi_producer(1);
}

#[test]
fn mpmc_no_loss_no_dup() {
    multi_producer(2);
}

#[test]
fn mpsc_ring_type_checks() {
    let (p, c) = mpsc(4).unwrap();
    let p2 = p.clone();
    assert_eq!(p.enqueue_burst(&[1, 2]), 2);
    assert_eq!(p2.enqueue_burst(&[3, 4, 5]), 2);
    let mut out = [0; 4];
    assert_eq!(c.dequeue_burst(&mut out), 4);
    assert_eq!(out, [1, 2, 3, 4]);
}

#[test]
fn buffers_cross_threads_through_a_ring() {
    let pool = Pool::new(&PoolConfig {
        count: 8192,
        huge: pmd::mem::HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap();
    let (p, c) = buf_spsc(1024).unwrap();
    const M: u64 = if cfg!(debug_assertions) {
        50_000
    } else {
        200_000
    };
    let pp = pool.clone();
    let prod = std::thread::spawn(move || {
        let mut cache = pp.cache();
        let mut b = Burst::new();
        let mut sent = 0u64;
        while sent < M {
            let want = (M - sent).min(32) as usize - b.len().min((M - sent).min(32) as usize);
            let start = b.len();
            cache.alloc_burst(&mut b, want);
            for (i, m) in b.as_mut_slice()[start..].iter_mut().enumerate() {
                m.set_seq(sent + i as u64);
                m.set_len(60);
            }
            sent += (b.len() - start) as u64;
            while !b.is_empty() {
                p.enqueue(&mut b);
            }
        }
    });
    let mut cache = pool.cache();
    let mut b = Burst::new();
    let mut expect = 0u64;
    while expect < M {
        c.dequeue(&mut b, 64);
        for m in b.as_slice() {
            assert_eq!(m.seq(), expect);
            assert_eq!(m.len(), 60);
            expect += 1;
        }
        cache.free_burst(&mut b);
    }
    prod.join().unwrap();
    drop(cache);
    assert_eq!(pool.slow_frees(), 0);
    assert_eq!(pool.shared_free(), 8192);
}
