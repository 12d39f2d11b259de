//! RFC 6888 (REQ-12) mapping log, written off the packet path.
//!
//! A carrier-grade NAT must be able to say which subscriber held which outside address and port
//! at what time. Writing a line per mapping from a worker would put a syscall on the packet path,
//! so each worker appends fixed-size records to its own single-producer ring (three atomic
//! stores, no lock, no allocation) and one logger thread drains every ring into the file. A full
//! ring loses the record and counts it (`log_lost`); the packet is never delayed. At shutdown
//! each worker waits (at most a second) for the logger to drain its ring before it returns from
//! `Stage::flush`.
//!
//! Line format, one per event, time in seconds of the worker clock (capture time in replay):
//! `<seconds> nat44 <create|delete> <tcp|udp|icmp> <inside addr>:<port> <outside addr>:<port>`.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Records a worker's ring holds.
pub const RING: usize = 8192;

/// One worker's ring of records (three `u64` words each).
#[derive(Debug)]
pub struct Ring {
    slots: Vec<[AtomicU64; 3]>,
    head: AtomicUsize,
    tail: AtomicUsize,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            slots: (0..RING)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    /// Appends a record (producer side: one worker); false if the ring is full.
    #[inline]
    pub fn push(&self, rec: [u64; 3]) -> bool {
        let t = self.tail.load(Ordering::Relaxed);
        if t.wrapping_sub(self.head.load(Ordering::Acquire)) >= RING {
            return false;
        }
        let s = &self.slots[t % RING];
        for (w, v) in s.iter().zip(rec) {
            w.store(v, Ordering::Relaxed);
        }
        self.tail.store(t.wrapping_add(1), Ordering::Release);
        true
    }

    fn pop(&self) -> Option<[u64; 3]> {
        let h = self.head.load(Ordering::Relaxed);
        if h == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let s = &self.slots[h % RING];
        let rec = [
            s[0].load(Ordering::Relaxed),
            s[1].load(Ordering::Relaxed),
            s[2].load(Ordering::Relaxed),
        ];
        self.head.store(h.wrapping_add(1), Ordering::Release);
        Some(rec)
    }

    /// True when the logger has taken everything.
    pub fn is_drained(&self) -> bool {
        self.head.load(Ordering::Acquire) == self.tail.load(Ordering::Acquire)
    }
}

/// Packs an event: (time, create?, proto, inside endpoint, outside endpoint).
#[inline]
pub fn record(
    now: u32,
    create: bool,
    proto: u8,
    inside: (u32, u16),
    outside: (u32, u16),
) -> [u64; 3] {
    [
        u64::from(now) << 32 | u64::from(create) << 8 | u64::from(proto),
        u64::from(inside.0) << 16 | u64::from(inside.1),
        u64::from(outside.0) << 16 | u64::from(outside.1),
    ]
}

fn line(rec: [u64; 3]) -> String {
    let proto = match rec[0] as u8 {
        6 => "tcp",
        17 => "udp",
        _ => "icmp",
    };
    let ep = |w: u64| format!("{}:{}", Ipv4Addr::from((w >> 16) as u32), w as u16);
    format!(
        "{} nat44 {} {proto} {} {}\n",
        rec[0] >> 32,
        if (rec[0] >> 8) & 1 == 1 {
            "create"
        } else {
            "delete"
        },
        ep(rec[1]),
        ep(rec[2])
    )
}

/// The rings of every worker, shared with the logger thread.
#[derive(Debug)]
pub struct Shared {
    /// One ring per worker.
    pub rings: Vec<Ring>,
    failed: AtomicBool,
}

impl Shared {
    /// True if the logger could not open or write its file (workers stop waiting for it).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Starts the logger thread for `workers` rings writing to `path` (appending).
pub fn start(path: PathBuf, workers: usize) -> Arc<Shared> {
    let shared = Arc::new(Shared {
        rings: (0..workers.max(1)).map(|_| Ring::new()).collect(),
        failed: AtomicBool::new(false),
    });
    let weak: Weak<Shared> = Arc::downgrade(&shared);
    let spawned = std::thread::Builder::new()
        .name("nat44-log".into())
        .spawn(move || run(&path, weak));
    if spawned.is_err() {
        shared.failed.store(true, Ordering::Relaxed);
    }
    shared
}

fn run(path: &std::path::Path, weak: Weak<Shared>) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    let mut out = match file {
        Ok(f) => std::io::BufWriter::new(f),
        Err(e) => {
            eprintln!("nat44: cannot open mapping log {}: {e}", path.display());
            if let Some(s) = weak.upgrade() {
                s.failed.store(true, Ordering::Relaxed);
            }
            return;
        }
    };
    loop {
        // Hold the rings only while draining: the workers' instances own them.
        let Some(s) = weak.upgrade() else {
            let _ = out.flush();
            return;
        };
        let mut n = 0;
        for r in &s.rings {
            while let Some(rec) = r.pop() {
                if out.write_all(line(rec).as_bytes()).is_err() {
                    s.failed.store(true, Ordering::Relaxed);
                }
                n += 1;
            }
        }
        if out.flush().is_err() {
            s.failed.store(true, Ordering::Relaxed);
        }
        drop(s);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_ring_and_the_file() {
        let path = std::env::temp_dir().join(format!("nat44-log-{}.txt", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = start(path.clone(), 2);
        assert!(s.rings[1].push(record(
            1_700_000_000,
            true,
            17,
            (0x0a00_0002, 33000),
            (0xc633_6401, 1024)
        )));
        assert!(s.rings[0].push(record(
            1_700_000_300,
            false,
            6,
            (0x0a00_0003, 80),
            (0xc633_6401, 2000)
        )));
        for _ in 0..400 {
            if s.rings.iter().all(Ring::is_drained) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(s);
        std::thread::sleep(Duration::from_millis(50));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("1700000000 nat44 create udp 10.0.0.2:33000 198.51.100.1:1024\n"),
            "{text}"
        );
        assert!(
            text.contains("1700000300 nat44 delete tcp 10.0.0.3:80 198.51.100.1:2000\n"),
            "{text}"
        );
        let _ = std::fs::remove_file(&path);
        // A full ring refuses, never blocks.
        let r = Ring::new();
        for i in 0..RING {
            assert!(r.push([i as u64, 0, 0]));
        }
        assert!(!r.push([0; 3]));
        assert_eq!(r.pop(), Some([0, 0, 0]));
        assert!(r.push([1; 3]));
    }
}
