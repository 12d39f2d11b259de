//! The engine end to end with test stages: every packet accounted for in every layout, the
//! replay clock follows the capture, and an online run stops cleanly on request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dataplane::engine::{ClockMode, Engine, EngineOptions, Layout, Report};
use dataplane::stage::{Ctx, DropReason, Next, Stage};
use pmd::mem::HugePolicy;
use pmd::pcap::{PcapReader, PcapWriter, LINKTYPE_ETHERNET};
use pmd::port::null::NullPort;
use pmd::port::pcap::PcapPort;
use pmd::port::Port;
use pmd::{Mbuf, Pool, PoolConfig};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dp-engine-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes `n` IPv4/UDP frames over 17 flows; frame i carries i in its last 4 bytes and has
/// timestamp 1e9 + i*1000 ns
/// (the clock goes backwards once, at i == 50, to check `now` never does).
fn write_input(path: &Path, n: u32) {
    let mut w = PcapWriter::create(path, LINKTYPE_ETHERNET, 65535, true).unwrap();
    for i in 0..n {
        let mut f = vec![0u8; 64];
        f[12] = 0x08;
        f[14] = 0x45; // IPv4, 20-byte header
        f[16..18].copy_from_slice(&50u16.to_be_bytes()); // total length
        f[22] = 64; // TTL
        f[23] = 17; // UDP
        f[26..30].copy_from_slice(&[10, 0, 0, (i % 17) as u8]);
        f[30..34].copy_from_slice(&[10, 0, 1, 1]);
        f[34..36].copy_from_slice(&(1000 + (i % 17) as u16).to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        f[38..40].copy_from_slice(&30u16.to_be_bytes());
        f[60..64].copy_from_slice(&i.to_be_bytes());
        let ts = if i == 50 {
            1_000_000_000
        } else {
            1_000_000_000 + i as u64 * 1000
        };
        w.write(ts, &f, 64).unwrap();
    }
    w.flush().unwrap();
}

fn read_ids(path: &Path) -> Vec<u32> {
    let mut r = PcapReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push(u32::from_be_bytes(rec.data[60..64].try_into().unwrap()));
    }
    v
}

fn id(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[60..64].try_into().unwrap())
}

/// Drops ids divisible by 3 (malformed) or else by 13 (its own reason `unlucky`), punts those divisible by 5, sends those divisible by 7
/// straight out of port 1, and otherwise carries on.
struct Sieve;
impl Stage for Sieve {
    fn name(&self) -> &str {
        "sieve"
    }
    fn drop_reasons(&self) -> &[&'static str] {
        &["never", "unlucky"]
    }
    fn process(&mut self, _: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for (m, n) in pkts.iter().zip(nexts.iter_mut()) {
            let i = id(m);
            *n = if i.is_multiple_of(3) {
                Next::drop(DropReason::Malformed)
            } else if i.is_multiple_of(13) {
                Next::stage_drop(1)
            } else if i.is_multiple_of(5) {
                Next::CONTROL
            } else if i.is_multiple_of(7) {
                Next::port(1)
            } else {
                Next::CONTINUE
            };
        }
    }
}

/// Sends everything that reaches it to port 1, except ids divisible by 11 (no egress).
struct ToOne;
impl Stage for ToOne {
    fn name(&self) -> &str {
        "to-one"
    }
    fn process(&mut self, _: &mut Ctx, pkts: &mut [Mbuf], _: &mut [Next]) {
        for m in pkts.iter_mut() {
            if !id(m).is_multiple_of(11) {
                m.set_egress(1);
            }
        }
    }
}

/// Records `now` for each burst.
struct Clock(Arc<Mutex<Vec<u64>>>);
impl Stage for Clock {
    fn name(&self) -> &str {
        "clock"
    }
    fn process(&mut self, ctx: &mut Ctx, _: &mut [Mbuf], _: &mut [Next]) {
        self.0.lock().unwrap().push(ctx.now);
    }
}

fn pool() -> Pool {
    Pool::new(&PoolConfig {
        count: 16384,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap()
}

fn opts(layout: Layout, workers: usize) -> EngineOptions {
    EngineOptions {
        burst: 32,
        worker_cores: vec![None; workers],
        io_core: None,
        layout,
        clock: ClockMode::Capture,
        offline: true,
        ring_size: 1024,
        steer: None,
        orders: Vec::new(),
        cut_through: true,
    }
}

/// Replays `n` frames from [`write_input`] (port 0) through `chain` to a capture (port 1) in
/// `layout` on `workers`: the report and the output capture's path.
fn replay_through(
    n: u32,
    layout: Layout,
    workers: usize,
    tag: &str,
    chain: Box<dataplane::engine::ChainFactory<'static>>,
) -> (Report, PathBuf) {
    replay_with(n, opts(layout, workers), tag, chain)
}

/// [`replay_through`] with the engine options given whole (a steering rule, say).
fn replay_with(
    n: u32,
    opts: EngineOptions,
    tag: &str,
    chain: Box<dataplane::engine::ChainFactory<'static>>,
) -> (Report, PathBuf) {
    let dir = tmp(tag);
    let (inp, out) = (dir.join("in.pcap"), dir.join("out.pcap"));
    write_input(&inp, n);
    let ports: Vec<Box<dyn Port>> = vec![
        Box::new(PcapPort::open("in", 0, Some(&inp), None).unwrap()),
        Box::new(PcapPort::open("out", 1, None, Some(&out)).unwrap()),
    ];
    let engine = Engine::new(ports, pool(), chain, opts).unwrap();
    (engine.run(&AtomicBool::new(false)).unwrap(), out)
}

fn replay(n: u32, layout: Layout, workers: usize, tag: &str) -> (Report, Vec<u32>, Vec<u64>) {
    let nows = Arc::new(Mutex::new(Vec::new()));
    let n2 = nows.clone();
    let chain = move |_| -> Vec<Box<dyn Stage>> {
        vec![
            Box::new(Clock(n2.clone())),
            Box::new(Sieve),
            Box::new(ToOne),
        ]
    };
    let (report, out) = replay_through(n, layout, workers, tag, Box::new(chain));
    let ids = read_ids(&out);
    let nows = nows.lock().unwrap().clone();
    (report, ids, nows)
}

fn check_accounting(r: &Report, ids: &[u32], n: u32, what: &str) {
    let expect: Vec<u32> = (0..n)
        .filter(|i| i % 3 != 0 && i % 13 != 0 && i % 5 != 0 && (i % 7 == 0 || i % 11 != 0))
        .collect();
    assert_eq!(
        ids,
        &expect[..],
        "{what}: output differs (order or content)"
    );
    let d = r.drops();
    let count = |f: &dyn Fn(u32) -> bool| (0..n).filter(|&i| f(i)).count() as u64;
    assert_eq!(
        d.0[DropReason::Malformed as usize],
        count(&|i| i % 3 == 0),
        "{what}"
    );
    let unlucky = |i: u32| !i.is_multiple_of(3) && i.is_multiple_of(13);
    let punted = count(&|i| i % 3 != 0 && !unlucky(i) && i % 5 == 0);
    assert_eq!(d.0[DropReason::NoControlPlane as usize], punted, "{what}");
    let no_egress =
        count(&|i| i % 3 != 0 && !unlucky(i) && i % 5 != 0 && i % 7 != 0 && i % 11 == 0);
    assert_eq!(d.0[DropReason::NoEgress as usize], no_egress, "{what}");
    let local: u64 = r
        .workers
        .iter()
        .flat_map(|w| w.stage_drops.iter())
        .filter(|(st, reason, _)| st == "sieve" && reason == "unlucky")
        .map(|(_, _, n)| n)
        .sum();
    assert_eq!(local, count(&unlucky), "{what}");
    assert_eq!(r.stage_drop_total(), local, "{what}");
    assert_eq!(r.received(), n as u64, "{what}");
    assert!(r.balanced(), "{what}:\n{}", r.render());
}

#[test]
fn every_packet_accounted_run_to_completion() {
    let (r, ids, _) = replay(3000, Layout::RunToCompletion, 1, "rtc1");
    check_accounting(&r, &ids, 3000, "rtc 1 worker");
}

#[test]
fn every_packet_accounted_two_workers_in_input_order() {
    let (r, ids, _) = replay(3000, Layout::RunToCompletion, 2, "rtc2");
    check_accounting(&r, &ids, 3000, "rtc 2 workers");
    assert!(
        r.workers.iter().all(|w| w.processed > 0),
        "the hash should spread flows:\n{}",
        r.render()
    );
}

#[test]
fn every_packet_accounted_pipeline() {
    for segs in [vec![1, 2], vec![0, 3], vec![3, 0], vec![1, 1, 1]] {
        let w = segs.len();
        let (r, ids, _) = replay(
            2000,
            Layout::Pipeline {
                segments: segs.clone(),
            },
            w,
            "pipe",
        );
        check_accounting(&r, &ids, 2000, &format!("pipeline {segs:?}"));
    }
}

#[test]
fn replay_clock_follows_capture_and_never_goes_back() {
    let (_, _, nows) = replay(200, Layout::RunToCompletion, 1, "clock");
    assert!(!nows.is_empty());
    assert!(
        nows.windows(2).all(|w| w[0] <= w[1]),
        "now went backwards: {nows:?}"
    );
    assert_eq!(*nows.last().unwrap(), 1_000_000_000 + 199 * 1000);
    assert!(nows[0] >= 1_000_000_000 && nows[0] <= 1_000_000_000 + 31 * 1000);
}

#[test]
fn online_run_stops_on_request_and_balances() {
    for (layout, workers) in [
        (Layout::RunToCompletion, 1),
        (Layout::RunToCompletion, 2),
        (
            Layout::Pipeline {
                segments: vec![1, 0],
            },
            2,
        ),
    ] {
        let ports: Vec<Box<dyn Port>> = vec![
            Box::new(NullPort::new("a", 0, 64, None)),
            Box::new(NullPort::new("b", 1, 64, None)),
        ];
        let chain = |_| -> Vec<Box<dyn Stage>> {
            vec![Box::new(dataplane::stages::Forward::new(&[(0, 1), (1, 0)]))]
        };
        let mut o = opts(layout.clone(), workers);
        o.offline = false;
        o.clock = ClockMode::Tsc;
        let engine = Engine::new(ports, pool(), Box::new(chain), o).unwrap();
        let stop = AtomicBool::new(false);
        let r = std::thread::scope(|s| {
            let h = s.spawn(|| engine.run(&stop));
            std::thread::sleep(Duration::from_millis(200));
            stop.store(true, Ordering::Relaxed);
            h.join().unwrap().unwrap()
        });
        assert!(r.sent() > 0, "{layout:?}: nothing forwarded");
        assert!(r.balanced(), "{layout:?}:\n{}", r.render());
    }
}

#[test]
fn engine_refuses_bad_options() {
    let mk = || -> Vec<Box<dyn Port>> { vec![Box::new(NullPort::new("a", 0, 64, Some(1)))] };
    let chain = || Box::new(|_: usize| -> Vec<Box<dyn Stage>> { Vec::new() });
    let mut o = opts(Layout::RunToCompletion, 1);
    o.burst = 0;
    assert!(Engine::new(mk(), pool(), chain(), o).is_err());
    let o = opts(Layout::Pipeline { segments: vec![1] }, 2);
    assert!(Engine::new(mk(), pool(), chain(), o).is_err());
    let small = Pool::new(&PoolConfig {
        count: 512,
        huge: HugePolicy::Never,
        ..PoolConfig::default()
    })
    .unwrap();
    let e = Engine::new(mk(), small, chain(), opts(Layout::RunToCompletion, 1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("too few"), "{e}");
}

/// Holds ids divisible by 4 and releases them once the clock is 100 µs past their arrival;
/// for ids divisible by 10 creates a copy (same sequence number, so it follows its original);
/// whatever is still held at shutdown is given up as `expired`.
struct Holder {
    held: std::collections::VecDeque<Mbuf>,
}
impl Stage for Holder {
    fn name(&self) -> &str {
        "holder"
    }
    fn drop_reasons(&self) -> &[&'static str] {
        &["expired"]
    }
    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
            m.set_egress(1);
            let i = id(m);
            if i.is_multiple_of(10) {
                let mut c = ctx.alloc().expect("pool has room");
                c.copy_from(m.data());
                c.set_seq(m.seq());
                c.set_timestamp(m.timestamp());
                c.set_egress(1);
                ctx.emit(c);
            }
            if i.is_multiple_of(4) {
                *n = Next::HOLD;
            }
        }
    }
    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        self.held.push_back(m);
        Ok(())
    }
    fn held(&self) -> usize {
        self.held.len()
    }
    fn poll(&mut self, ctx: &mut Ctx) {
        while ctx.emit_room() > 0
            && self
                .held
                .front()
                .is_some_and(|m| m.timestamp() + 100_000 <= ctx.now)
        {
            let m = self.held.pop_front().unwrap();
            ctx.emit(m);
        }
    }
    fn flush(&mut self, ctx: &mut Ctx) {
        while let Some(m) = self.held.pop_front() {
            ctx.drop_held(m, 0);
        }
    }
}

#[test]
fn stages_create_hold_release_and_give_up_with_exact_accounting() {
    for (layout, workers) in [
        (Layout::RunToCompletion, 1),
        (Layout::RunToCompletion, 2),
        (
            Layout::Pipeline {
                segments: vec![0, 1],
            },
            2,
        ),
    ] {
        let n = 1000u32;
        let chain = |_| -> Vec<Box<dyn Stage>> {
            vec![Box::new(Holder {
                held: Default::default(),
            })]
        };
        let (r, out) = replay_through(n, layout.clone(), workers, "hold", Box::new(chain));
        let what = format!("{layout:?} x{workers}");
        assert!(r.balanced(), "{what}:\n{}", r.render());
        assert_eq!(r.created(), (n / 10) as u64, "{what}");
        assert_eq!(r.held(), 0, "{what}");
        let ids = read_ids(&out);
        let expired = r.stage_drop_total();
        // Frame i arrives at 1e9 + i µs (i != 50); held frames need 100 µs more of capture
        // time, so the last ~100 held at the end of the capture expire.
        assert!(expired > 0 && expired <= 30, "{what}: {expired} expired");
        assert_eq!(ids.len() as u64, (n + n / 10) as u64 - expired, "{what}");
        assert_eq!(r.sent(), ids.len() as u64, "{what}");
    }
}

/// Sends every frame from port 0 whose last byte is odd to the last worker.
#[derive(Debug)]
struct OddToLast;
impl dataplane::engine::Steer for OddToLast {
    fn steer(&self, frame: &[u8], port: u16, workers: usize) -> Option<usize> {
        (port == 0 && frame.last().is_some_and(|b| b % 2 == 1)).then_some(workers - 1)
    }
}

/// Counts what reaches each worker, by worker index.
struct CountOdd(Arc<Mutex<Vec<(usize, u32)>>>);
impl Stage for CountOdd {
    fn name(&self) -> &str {
        "count"
    }
    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], _: &mut [Next]) {
        let mut v = self.0.lock().unwrap();
        for m in pkts.iter_mut() {
            v.push((ctx.worker, id(m)));
            m.set_egress(1);
        }
    }
}

#[test]
fn steering_overrides_the_flow_hash() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let chain = move |_| -> Vec<Box<dyn Stage>> { vec![Box::new(CountOdd(s2.clone()))] };
    let mut o = opts(Layout::RunToCompletion, 2);
    o.steer = Some(Arc::new(OddToLast));
    let (r, _) = replay_with(1000, o, "steer", Box::new(chain));
    assert!(r.balanced());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1000);
    for &(w, i) in seen.iter() {
        if i % 2 == 1 {
            assert_eq!(w, 1, "odd id {i} not steered");
        }
    }
    assert!(
        seen.iter().any(|&(w, i)| w == 0 && i % 2 == 0),
        "even ids keep the hash"
    );
}

/// A null port with several queue pairs, each split off as a null port of its own: the shape
/// of a multi-queue NIC (DPDK RSS) or an AF_PACKET fanout group.
struct MultiQueue {
    inner: NullPort,
    queues: u16,
}

impl Port for MultiQueue {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn rx_queues(&self) -> u16 {
        self.queues
    }
    fn tx_queues(&self) -> u16 {
        self.queues
    }
    fn rx_burst(
        &mut self,
        q: u16,
        pool: &mut pmd::PoolCache,
        burst: &mut pmd::Burst,
        max: usize,
    ) -> Result<usize, pmd::port::PortError> {
        self.inner.rx_burst(q, pool, burst, max)
    }
    fn tx_burst(
        &mut self,
        q: u16,
        pool: &mut pmd::PoolCache,
        burst: &mut pmd::Burst,
    ) -> Result<usize, pmd::port::PortError> {
        self.inner.tx_burst(q, pool, burst)
    }
    fn take_queue(&mut self, q: u16) -> Option<Box<dyn Port>> {
        if q == 0 || q + 1 != self.queues {
            return None;
        }
        self.queues -= 1;
        let name = self.inner.name().to_string();
        Some(Box::new(MultiQueue {
            inner: NullPort::new(&name, 0, 64, None),
            queues: 1,
        }))
    }
    fn stats(&self) -> pmd::port::PortStats {
        self.inner.stats()
    }
}

#[test]
fn workers_own_the_queues_of_multi_queue_ports() {
    let mk = || -> Vec<Box<dyn Port>> {
        vec![
            Box::new(MultiQueue {
                inner: NullPort::new("a", 0, 64, None),
                queues: 2,
            }),
            Box::new(MultiQueue {
                inner: NullPort::new("b", 1, 64, None),
                queues: 2,
            }),
        ]
    };
    let chain = || {
        Box::new(|_: usize| -> Vec<Box<dyn Stage>> {
            vec![Box::new(dataplane::stages::Forward::new(&[(0, 1), (1, 0)]))]
        })
    };
    let mut o = opts(Layout::RunToCompletion, 2);
    o.offline = false;
    o.clock = ClockMode::Tsc;
    let engine = Engine::new(mk(), pool(), chain(), o.clone()).unwrap();
    let stop = AtomicBool::new(false);
    let r = std::thread::scope(|s| {
        let h = s.spawn(|| engine.run(&stop));
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap().unwrap()
    });
    assert!(r.balanced(), "{}", r.render());
    // Null packets are all alike: a dispatcher hashing flows would give them all to one
    // worker. Both working means each polled its own queues.
    assert_eq!(r.workers.len(), 2);
    assert!(r.workers.iter().all(|w| w.processed > 0), "{}", r.render());
    // A port's counters are the sum over its queues, under its own name.
    let names: Vec<&str> = r.ports.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let rx: u64 = r.ports.iter().map(|(_, s)| s.rx_packets).sum();
    assert_eq!(rx, r.workers.iter().map(|w| w.processed).sum::<u64>());

    // Queues without a worker each, a replay or a steering stage are refused by name.
    for (workers, offline, steer) in [(1, false, false), (2, true, false), (2, false, true)] {
        let mut o = opts(Layout::RunToCompletion, workers);
        o.offline = offline;
        o.clock = ClockMode::Tsc;
        if steer {
            o.steer = Some(Arc::new(OddToLast));
        }
        let e = Engine::new(mk(), pool(), chain(), o)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("port a has 2 queues"), "{e}");
    }
}

/// Holds every frame whose id is a multiple of 5 and puts what it holds back into the chain
/// (`Ctx::resume`) at its next burst; gives up what is still held at shutdown.
struct Parker {
    held: Vec<Mbuf>,
}
impl Stage for Parker {
    fn name(&self) -> &str {
        "parker"
    }
    fn drop_reasons(&self) -> &[&'static str] {
        &["still_held"]
    }
    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for m in self.held.drain(..) {
            ctx.resume(m);
        }
        for (m, n) in pkts.iter().zip(nexts.iter_mut()) {
            if id(m).is_multiple_of(5) {
                *n = Next::HOLD;
            }
        }
    }
    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        self.held.push(m);
        Ok(())
    }
    fn held(&self) -> usize {
        self.held.len()
    }
    fn flush(&mut self, ctx: &mut Ctx) {
        for m in self.held.drain(..) {
            ctx.drop_held(m, 0);
        }
    }
}

/// Marks every frame (byte 59) and sends it to port 1: proof a frame went through it.
struct Stamp;
impl Stage for Stamp {
    fn name(&self) -> &str {
        "stamp"
    }
    fn process(&mut self, _: &mut Ctx, pkts: &mut [Mbuf], _: &mut [Next]) {
        for m in pkts.iter_mut() {
            m.data_mut()[59] = 0xab;
            m.set_egress(1);
        }
    }
}

#[test]
fn resumed_packets_go_through_the_rest_of_the_chain() {
    for (layout, workers) in [
        (Layout::RunToCompletion, 1),
        (Layout::RunToCompletion, 2),
        (
            Layout::Pipeline {
                segments: vec![1, 1],
            },
            2,
        ),
    ] {
        let n = 1000u32;
        let chain = |_| -> Vec<Box<dyn Stage>> {
            vec![Box::new(Parker { held: Vec::new() }), Box::new(Stamp)]
        };
        let (r, out) = replay_through(n, layout.clone(), workers, "resume", Box::new(chain));
        let what = format!("{layout:?} x{workers}");
        assert!(r.balanced(), "{what}:\n{}", r.render());
        let still = r.stage_drop_total();
        assert!(still <= 2 * workers as u64 * 32, "{what}: {still} given up");
        // Every frame that left went through Stamp (none skipped it), in input order.
        let mut rd = PcapReader::open(&out).unwrap();
        let mut ids = Vec::new();
        while let Some(rec) = rd.next_record().unwrap() {
            assert_eq!(
                rec.data[59], 0xab,
                "{what}: a frame skipped the stage after"
            );
            ids.push(u32::from_be_bytes(rec.data[60..64].try_into().unwrap()));
        }
        assert_eq!(ids.len() as u64 + still, n as u64, "{what}");
        // Frames never held keep input order (a held one leaves when it is resumed).
        let direct: Vec<u32> = ids.iter().copied().filter(|i| i % 5 != 0).collect();
        assert!(
            direct.windows(2).all(|w| w[0] < w[1]),
            "{what}: out of order"
        );
        assert!(ids.iter().filter(|i| *i % 5 == 0).count() > 100, "{what}");
    }
}

/// Hands frames whose id is 1 mod 4 to worker `(id / 4) % workers` from `process`, and holds
/// those 3 mod 4 to hand them over from `poll`. Marks every frame it sees (byte 56 counts the
/// first passes) and, on the second pass, which worker ran it (byte 57).
struct Owner {
    workers: usize,
    held: Vec<Mbuf>,
}
impl Stage for Owner {
    fn name(&self) -> &str {
        "owner"
    }
    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
            let i = id(m);
            if m.handed_over() {
                m.data_mut()[57] = ctx.worker as u8 + 1;
                continue;
            }
            m.data_mut()[56] += 1;
            let target = ((i / 4) as usize % self.workers) as u16;
            *n = match i % 4 {
                1 => Next::handoff(target),
                3 => Next::HOLD,
                _ => Next::CONTINUE,
            };
        }
    }
    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        self.held.push(m);
        Ok(())
    }
    fn held(&self) -> usize {
        self.held.len()
    }
    fn poll(&mut self, ctx: &mut Ctx) {
        for m in self.held.drain(..) {
            let target = ((id(&m) / 4) as usize % self.workers) as u16;
            ctx.handoff(m, target);
        }
    }
}

/// Marks every frame that reaches it (byte 58).
struct After;
impl Stage for After {
    fn name(&self) -> &str {
        "after"
    }
    fn process(&mut self, _: &mut Ctx, pkts: &mut [Mbuf], _: &mut [Next]) {
        for m in pkts.iter_mut() {
            m.data_mut()[58] += 1;
            m.set_egress(1);
        }
    }
}

#[test]
fn handed_over_packets_run_the_stage_again_on_their_worker_in_input_order() {
    for workers in [1usize, 2, 3] {
        let n = 3000u32;
        let chain = move |_| -> Vec<Box<dyn Stage>> {
            vec![
                Box::new(Owner {
                    workers,
                    held: Vec::new(),
                }),
                Box::new(After),
            ]
        };
        let tag = format!("handoff{workers}");
        let (r, out) = replay_through(n, Layout::RunToCompletion, workers, &tag, Box::new(chain));
        let what = format!("{workers} worker(s)");
        assert!(r.balanced(), "{what}:\n{}", r.render());
        let mut rd = PcapReader::open(&out).unwrap();
        let mut ids = Vec::new();
        while let Some(rec) = rd.next_record().unwrap() {
            let i = u32::from_be_bytes(rec.data[60..64].try_into().unwrap());
            assert_eq!(rec.data[56], 1, "{what}: id {i} took the first pass once");
            assert_eq!(rec.data[58], 1, "{what}: id {i} ran the next stage once");
            let ran_on = rec.data[57];
            if workers > 1 && i % 2 == 1 {
                let target = (i / 4) as usize % workers;
                assert_eq!(
                    ran_on as usize,
                    target + 1,
                    "{what}: id {i} on the wrong worker"
                );
            } else if workers > 1 {
                assert_eq!(ran_on, 0, "{what}: id {i} was not to be handed over");
            }
            ids.push(i);
        }
        if workers == 1 {
            // The direct shape: handoffs are refused and counted, nothing else is lost.
            let d = r.drops();
            let expect = (0..n).filter(|i| i % 2 == 1).count() as u64;
            assert_eq!(
                d.0[DropReason::HandoffUnsupported as usize],
                expect,
                "{what}"
            );
            assert!(ids.iter().all(|i| i % 2 == 0), "{what}");
            continue;
        }
        // Every frame left, in input order, even those that crossed workers.
        assert_eq!(ids, (0..n).collect::<Vec<_>>(), "{what}");
        assert_eq!(r.drops().total(), 0, "{what}:\n{}", r.render());
    }
}

#[derive(Debug)]
struct PlaceOdd;
impl dataplane::engine::Steer for PlaceOdd {
    fn steer(&self, frame: &[u8], _port: u16, workers: usize) -> Option<usize> {
        (frame[63] % 2 == 1).then_some(workers - 1)
    }
}

#[derive(Debug)]
struct CopyTens;
impl dataplane::engine::Steer for CopyTens {
    fn steer(&self, _frame: &[u8], _port: u16, _workers: usize) -> Option<usize> {
        Some(0)
    }
    fn broadcast(&self, frame: &[u8], _port: u16) -> bool {
        frame[63].is_multiple_of(10)
    }
    fn places(&self) -> bool {
        false
    }
}

#[test]
fn steering_rules_of_several_stages_combine_and_broadcast_copies_are_consumed() {
    use dataplane::engine::{Steer, Steers};
    let s = Steers(vec![Arc::new(PlaceOdd), Arc::new(CopyTens)]);
    let mut f = vec![0u8; 64];
    f[63] = 3;
    assert_eq!(
        s.steer(&f, 0, 2),
        Some(1),
        "the first rule that places wins"
    );
    f[63] = 4;
    assert_eq!(s.steer(&f, 0, 2), Some(0), "then the next");
    assert!(s.places() && !CopyTens.places());
    f[63] = 20;
    assert!(s.broadcast(&f, 0));
    assert!(!s.broadcast(&[1u8; 64], 1));
    // Through the engine: frames whose last byte ends in 0 reach both workers; copies are consumed, never
    // sent or counted as drops, and the report balances.
    let chain = |_| -> Vec<Box<dyn Stage>> { vec![Box::new(After)] };
    let mut o = opts(Layout::RunToCompletion, 2);
    o.steer = Some(Arc::new(Steers(vec![Arc::new(CopyTens)])));
    let (r, out) = replay_with(1000, o, "broadcast", Box::new(chain));
    assert!(r.balanced(), "{}", r.render());
    // Frame i carries i in its last 4 bytes: byte 63 is i mod 256.
    let want = (0..1000u32).filter(|i| (i % 256) % 10 == 0).count() as u64;
    assert_eq!(r.copies, want, "{}", r.render());
    assert_eq!(
        r.workers.iter().map(|w| w.copies_consumed).sum::<u64>(),
        want
    );
    assert_eq!(
        read_ids(&out),
        (0..1000).collect::<Vec<_>>(),
        "each frame once, in order"
    );
    assert_eq!(r.drops().total() + r.stage_drop_total(), 0);
}
