//! Forward-only through the DPDK driver: two `net_null` devices, the real engine with a
//! forward stage on one pinned core, for a number of seconds; prints Mpps and cycles per
//! packet. The counterpart of `dpdk-testpmd --forward-mode=io` on the same vdevs; the
//! difference is the framework's cost. Run as root:
//! `cargo run --release -p dataplane --features dpdk --example dpdk_io -- [SECS] [CORE]`.

#[cfg(feature = "dpdk")]
fn main() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use dataplane::engine::{ClockMode, Engine, EngineOptions, Layout};
    use dataplane::stage::Stage;
    use dataplane::stages::Forward;
    use pmd::dpdk::{DpdkPool, DpdkPort, Eal};
    use pmd::port::Port;

    let args: Vec<String> = std::env::args().collect();
    let secs: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let core: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let eal = Eal::init(&[
        "--no-pci",
        "--in-memory",
        "--file-prefix",
        "dpdk-io",
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
    .unwrap_or_else(|e| panic!("{e} (hugepages reserved? run scripts/setup-hugepages.sh)"));
    let pool = DpdkPool::new(&eal, "io", 32767, 2048, None).expect("pool");
    let ports: Vec<Box<dyn Port>> = vec![
        Box::new(DpdkPort::open(&eal, "null0", 0, "net_null0", &pool, 1024, 1024).expect("p0")),
        Box::new(DpdkPort::open(&eal, "null1", 1, "net_null1", &pool, 1024, 1024).expect("p1")),
    ];
    let chain = |_| -> Vec<Box<dyn Stage>> { vec![Box::new(Forward::new(&[(0, 1), (1, 0)]))] };
    let opts = EngineOptions {
        burst: 32,
        worker_cores: vec![Some(core)],
        io_core: None,
        layout: Layout::RunToCompletion,
        clock: ClockMode::Tsc,
        offline: false,
        ring_size: 1024,
        steer: None,
        orders: Vec::new(),
        cut_through: true,
    };
    let engine = Engine::new(ports, pool.pool().clone(), Box::new(chain), opts).expect("engine");
    let stop = AtomicBool::new(false);
    let t0 = Instant::now();
    let report = std::thread::scope(|s| {
        let h = s.spawn(|| engine.run(&stop));
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        h.join().expect("engine thread").expect("engine")
    });
    let dt = t0.elapsed().as_secs_f64();
    let mpps = report.sent() as f64 / dt / 1e6;
    eprint!("{}", report.render());
    println!(
        "dpdk io: {mpps:.2} Mpps on core {core}, {:.1} cycles/packet",
        pmd::cpu::tsc_hz() as f64 / (mpps * 1e6)
    );
}

#[cfg(not(feature = "dpdk"))]
fn main() {
    eprintln!("build with --features dpdk");
    std::process::exit(2);
}
