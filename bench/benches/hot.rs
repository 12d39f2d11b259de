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
//!   forward-like stages, and a whole generator → chain → sink round;
//! * `fib`: batch lookups of 64 random destinations in an IPv4 table of 500k random prefixes
//!   (BGP-like lengths) and an IPv6 table of 100k (the full-table figures against DPDK come from
//!   `bench router`);
//! * `classifier`: batch classification of 32 keys against 1k and 10k random ClassBench-style
//!   rules (`bench firewall` runs the real sets against DPDK);
//! * `nat`: session lookups by inside key in a table of 1M sessions.

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

/// A small deterministic generator (xorshift), so every run measures the same tables.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fib(c: &mut Criterion) {
    use dataplane::stages::router::lpm4::{mask, Lpm4};
    use dataplane::stages::router::lpm6::{mask as mask6, Lpm6};
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // BGP-like: mostly /24 and /16-/23; one prefix in 200 longer than /24 (each such /24
    // needs a second-level group, and a real table has a few thousand).
    let lens = [24u8, 24, 24, 24, 24, 22, 23, 20, 21, 19, 16, 18, 17];
    let routes: Vec<(u32, u8, u16)> = (0..500_000)
        .map(|_| {
            let len = if rng.next().is_multiple_of(200) {
                25 + (rng.next() % 8) as u8
            } else {
                lens[(rng.next() % lens.len() as u64) as usize]
            };
            (
                rng.next() as u32 & mask(len),
                len,
                1 + (rng.next() % 64) as u16,
            )
        })
        .collect();
    let t4 = Lpm4::build(&routes).expect("IPv4 table");
    // A million random destinations, 64 at a time: the table's cache misses are measured,
    // not a warm repeat of the same 64.
    let addrs: Vec<u32> = (0..1 << 20).map(|_| rng.next() as u32).collect();
    let mut out = [0u16; 64];
    let mut at = 0usize;
    let mut g = c.benchmark_group("fib");
    g.throughput(Throughput::Elements(64));
    g.bench_function("IPv4 lookup_burst 64, 500k prefixes, random", |b| {
        b.iter(|| {
            t4.lookup_burst(black_box(&addrs[at..at + 64]), &mut out);
            at = (at + 64) & ((1 << 20) - 1);
            black_box(out[0])
        })
    });
    let lens6 = [32u8, 48, 48, 48, 44, 40, 36, 29, 56, 64];
    let routes6: Vec<(u128, u8, u32)> = (0..100_000)
        .map(|_| {
            let len = lens6[(rng.next() % lens6.len() as u64) as usize];
            let a = (0x2000u128 << 112) | (u128::from(rng.next()) << 48);
            (a & mask6(len), len, 1 + (rng.next() % 64) as u32)
        })
        .collect();
    let t6 = Lpm6::build(&routes6).expect("IPv6 table");
    let addrs6: Vec<u128> = (0..1 << 16)
        .map(|_| routes6[(rng.next() % routes6.len() as u64) as usize].0 | 1)
        .collect();
    let mut out6 = [0u32; 64];
    let mut at6 = 0usize;
    g.bench_function("IPv6 lookup_burst 64, 100k prefixes, from the table", |b| {
        b.iter(|| {
            t6.lookup_burst(black_box(&addrs6[at6..at6 + 64]), &mut out6);
            at6 = (at6 + 64) & ((1 << 16) - 1);
            black_box(out6[0])
        })
    });
    g.finish();
}

fn classifier(c: &mut Criterion) {
    use dataplane::stages::firewall::classifier::RuleSet;
    use dataplane::stages::firewall::rules::{ct, parse_classbench_line, PacketKey};
    use dataplane::stages::router::lpm4::mask;
    let mut g = c.benchmark_group("classifier");
    g.throughput(Throughput::Elements(BURST as u64));
    for n in [1000u32, 10_000] {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(n));
        let rules: Vec<_> = (0..n)
            .map(|id| {
                let sl = [0u8, 8, 16, 24, 32][(rng.next() % 5) as usize];
                let dl = [8u8, 16, 24, 28, 32][(rng.next() % 5) as usize];
                // A random network of length `len` (host bits clear, as ClassBench writes them).
                let ip = |r: &mut Rng, len: u8| {
                    let a = (r.next() as u32) & mask(len);
                    std::net::Ipv4Addr::from(a).to_string()
                };
                let dlo = (rng.next() % 1024) as u16;
                let dp = if rng.next().is_multiple_of(2) {
                    format!("{dlo} : {dlo}")
                } else {
                    "0 : 65535".into()
                };
                let line = format!(
                    "@{}/{sl} {}/{dl} 0 : 65535 {dp} 0x{:02x}/0xFF",
                    ip(&mut rng, sl),
                    ip(&mut rng, dl),
                    [6u8, 17][(rng.next() % 2) as usize]
                );
                parse_classbench_line(&line, id + 1)
                    .expect("rule")
                    .expect("a rule")
            })
            .collect();
        let set = RuleSet::new(&rules).expect("rule set");
        let snap = set.snapshot();
        let keys: Vec<PacketKey> = (0..BURST)
            .map(|_| PacketKey {
                src: u128::from(rng.next() as u32) << 96,
                dst: u128::from(rng.next() as u32) << 96,
                sport: rng.next() as u16,
                dport: (rng.next() % 1024) as u16,
                proto: [6u8, 17][(rng.next() % 2) as usize],
                has_ports: true,
                ct: ct::NEW,
                ..Default::default()
            })
            .collect();
        let mut todo: Vec<u16> = Vec::with_capacity(BURST);
        let mut out = vec![None; BURST];
        g.bench_function(format!("classify_burst 32, {n} rules"), |b| {
            b.iter(|| {
                todo.clear();
                todo.extend(0..BURST as u16);
                snap.v4
                    .classify_burst(black_box(&keys), &mut todo, &mut out);
                black_box(out[0])
            })
        });
    }
    g.finish();
}

fn nat(c: &mut Criterion) {
    use dataplane::stages::nat::table::{key, Session, Table};
    const N: u32 = 1 << 20;
    let mut t = Table::new(N as usize, 7);
    for i in 0..N {
        let e = Session {
            in_addr: 0x0a00_0000 | (i >> 4),
            in_port: 1024 + (i & 15) as u16,
            ext_addr: 0xc612_0000 | (i >> 16),
            ext_port: (i & 0xffff) as u16,
            proto: 17,
            deadline: 300,
            ..Default::default()
        };
        t.add(e, 0);
    }
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let keys: Vec<u64> = (0..1 << 16)
        .map(|_| {
            let i = (rng.next() % u64::from(N)) as u32;
            key(17, 0x0a00_0000 | (i >> 4), 1024 + (i & 15) as u16)
        })
        .collect();
    let mut at = 0usize;
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("find_in x32, 1M sessions, random", |b| {
        b.iter(|| {
            let mut found = 0u32;
            for &k in &keys[at..at + BURST] {
                found += u32::from(t.find_in(black_box(k)).is_some());
            }
            at = (at + BURST) & ((1 << 16) - 1);
            black_box(found)
        })
    });
    g.bench_function("warm + find_in x32, 1M sessions, random", |b| {
        b.iter(|| {
            let ks = &keys[at..at + BURST];
            t.warm(ks);
            let mut found = 0u32;
            for &k in ks {
                found += u32::from(t.find_in(black_box(k)).is_some());
            }
            at = (at + BURST) & ((1 << 16) - 1);
            black_box(found)
        })
    });
    g.finish();
}

criterion_group!(benches, ring, csum, pool_burst, chain, fib, classifier, nat);
criterion_main!(benches);
