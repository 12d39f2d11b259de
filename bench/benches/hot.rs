//! Criterion micro-benchmarks of the hot functions, so a regression shows without a full run.
//!
//! `cargo bench -p bench --bench hot` (add `-- ring` etc. to pick a group). Each group reports
//! time per element (per packet or per handle), single-threaded, so what is measured is the
//! code path, not a cross-core handoff:
//!
//! * `ring`: burst enqueue then dequeue of 32 handles, single- and multi-producer rings;
//! * `checksum`: RFC 1624 updates (a 32-bit address, a 16-bit port) and full sums of an IPv4
//!   header and a 1500-byte payload;
//! * `pool`: allocating and freeing a burst of 32 buffers through a per-thread cache;
//! * `chain`: the engine's stage loop (`ChainRunner::run`) over a burst of 32 with 1, 4 and 8
//!   forward-like stages, and a whole generator → chain → sink round.
//!
//! FIB, classifier and session lookup benches belong with those stages (issues 3, 4, 5).

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use bench::gen::{GenConfig, Generator};
use bench::sink::{Latency, Sink};
use bench::touch::Touch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dataplane::engine::chain::ChainRunner;
use dataplane::stage::Stage;
use dataplane::wire::checksum;
use pmd::port::Port;
use pmd::{Burst, Pool, PoolConfig};

const BURST: usize = 32;

fn pool() -> Pool {
    Pool::new(&PoolConfig {
        name: "criterion".into(),
        count: 8192,
        ..Default::default()
    })
    .expect("pool")
}

fn ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(BURST as u64));
    let items: Vec<u32> = (0..BURST as u32).collect();
    let mut out = [0u32; BURST];
    let (p, q) = pmd::ring::spsc(1024).expect("ring");
    g.bench_function("spsc enqueue+dequeue burst 32", |b| {
        b.iter(|| {
            let n = p.enqueue_burst(black_box(&items));
            let m = q.dequeue_burst(&mut out[..n]);
            black_box(m)
        })
    });
    let (p, q) = pmd::ring::mpmc(1024).expect("ring");
    g.bench_function("mpmc enqueue+dequeue burst 32", |b| {
        b.iter(|| {
            let n = p.enqueue_burst(black_box(&items));
            let m = q.dequeue_burst(&mut out[..n]);
            black_box(m)
        })
    });
    g.finish();
}

fn csum(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    g.bench_function("update32 (address rewrite)", |b| {
        b.iter(|| {
            checksum::update32(
                black_box(0x1c46),
                black_box(0x0a00_0001),
                black_box(0xc633_6401),
            )
        })
    });
    g.bench_function("update16 (port rewrite)", |b| {
        b.iter(|| checksum::update16(black_box(0x1c46), black_box(1024), black_box(40000)))
    });
    let hdr = [
        0x45u8, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0, 0xc7,
    ];
    g.throughput(Throughput::Bytes(20));
    g.bench_function("checksum of an IPv4 header", |b| {
        b.iter(|| checksum::checksum(black_box(&hdr)))
    });
    let payload = vec![0xa5u8; 1500];
    g.throughput(Throughput::Bytes(1500));
    g.bench_function("sum16 of 1500 bytes", |b| {
        b.iter(|| checksum::sum16(black_box(&payload), 0))
    });
    g.finish();
}

fn pool_burst(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut burst = Burst::new();
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("alloc+free burst 32", |b| {
        b.iter(|| {
            let n = cache.alloc_burst(&mut burst, BURST);
            cache.free_burst(&mut burst);
            black_box(n)
        })
    });
    g.finish();
}

fn touches(n: usize) -> Vec<Box<dyn Stage>> {
    (0..n)
        .map(|_| Box::new(Touch::new(1)) as Box<dyn Stage>)
        .collect()
}

fn chain(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut gen = Generator::new("gen", 0, &GenConfig::default()).expect("gen");
    for n in [1usize, 4, 8] {
        let mut stages = touches(n);
        let mut runner = ChainRunner::new(n);
        let mut burst = Burst::new();
        let mut leaving = Burst::new();
        gen.rx_burst(0, &mut cache, &mut burst, BURST).expect("rx");
        g.bench_function(
            format!("ChainRunner::run, {n} touch stages, burst 32"),
            |b| {
                b.iter(|| {
                    runner.run(0, 0, &mut stages, &mut burst, &mut leaving, &mut cache, 2);
                    black_box(burst.len())
                })
            },
        );
        cache.free_burst(&mut burst);
        cache.free_burst(&mut leaving);
    }
    let lat: Latency = Default::default();
    let mut sink = Sink::new("sink", gen.layout().ts(), lat);
    let mut stages = touches(1);
    let mut runner = ChainRunner::new(1);
    let mut burst = Burst::new();
    let mut leaving = Burst::new();
    g.bench_function("generator → 1 touch → sink, burst 32", |b| {
        b.iter(|| {
            gen.rx_burst(0, &mut cache, &mut burst, BURST).expect("rx");
            runner.run(0, 0, &mut stages, &mut burst, &mut leaving, &mut cache, 2);
            runner.finish(&mut burst, &mut leaving, &mut cache, 2);
            sink.tx_burst(0, &mut cache, &mut leaving).expect("tx")
        })
    });
    g.finish();
}

criterion_group!(benches, ring, csum, pool_burst, chain);
criterion_main!(benches);
