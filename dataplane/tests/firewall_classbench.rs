//! The firewall classifier against ClassBench: the 12 NSLab rule sets and their traces, whose
//! last column is the 1-based number of the first matching rule.
//!
//! Debug builds check a sample of every trace (every 7th header) to stay fast; the full traces
//! run in release with `cargo test --release -p dataplane --test firewall_classbench --
//! --ignored --nocapture`, which also prints classifications per second (one core, bursts of
//! 32, header keys prepared in advance).
//!
//! The corpus is taken from `DATAPLANE_CORPUS`, else `../shared/corpus` from the workspace
//! root; without it the tests print why and pass.

use std::path::PathBuf;
use std::time::Instant;

use dataplane::stages::firewall::classifier::{Hit, RuleSet};
use dataplane::stages::firewall::rules::{ct, parse_rules, v4, Format, PacketKey};

const SETS: [&str; 12] = [
    "acl1", "acl1_100", "acl1_1K", "acl1_10K", "fw1", "fw1_100", "fw1_1K", "fw1_10K", "ipc1",
    "ipc1_100", "ipc1_1K", "ipc1_10K",
];

fn corpus() -> Option<PathBuf> {
    let p = match std::env::var_os("DATAPLANE_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    let p = p.join("classbench/nslab_pc_plat");
    if p.is_dir() {
        Some(p)
    } else {
        println!(
            "skipped: no ClassBench corpus at {} (set DATAPLANE_CORPUS)",
            p.display()
        );
        None
    }
}

fn load(
    dir: &std::path::Path,
    set: &str,
) -> (std::sync::Arc<RuleSet>, usize, Vec<(PacketKey, u32)>) {
    let rp = dir.join("rules").join(set);
    let text = std::fs::read_to_string(&rp).unwrap();
    let rules = parse_rules(
        &rp.display().to_string(),
        &text,
        Format::ClassBench,
        &|_| None,
    )
    .unwrap();
    let n = rules.len();
    let tp = dir.join("traces").join(format!("{set}_trace"));
    let trace = std::fs::read_to_string(&tp).unwrap();
    let headers = trace
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let k = PacketKey {
                src: v4((f[0] as u32).to_be_bytes()),
                dst: v4((f[1] as u32).to_be_bytes()),
                sport: f[2] as u16,
                dport: f[3] as u16,
                proto: f[4] as u8,
                has_ports: true,
                ct: ct::NEW,
                ..Default::default()
            };
            (k, f[5] as u32)
        })
        .collect();
    (RuleSet::new(&rules).unwrap(), n, headers)
}

fn check(step: usize) {
    let Some(dir) = corpus() else { return };
    for set in SETS {
        let (rs, n, headers) = load(&dir, set);
        let snap = rs.snapshot();
        let sample: Vec<_> = headers.iter().step_by(step).collect();
        let keys: Vec<PacketKey> = sample.iter().map(|(k, _)| *k).collect();
        let mut out: Vec<Option<Hit>> = vec![None; keys.len()];
        for (c, o) in keys.chunks(32).zip(out.chunks_mut(32)) {
            let mut todo: Vec<u16> = (0..c.len() as u16).collect();
            snap.v4.classify_burst(c, &mut todo, o);
        }
        let mut bad = 0;
        for ((k, want), got) in sample.iter().zip(&out) {
            let one = snap.classify(k).map(|h| h.id);
            if got.map(|h| h.id) != Some(*want) || one != Some(*want) {
                if bad < 5 {
                    eprintln!("{set}: {k:?}: want rule {want}, burst {got:?}, one {one:?}");
                }
                bad += 1;
            }
        }
        let shapes: Vec<String> = snap
            .v4
            .shapes()
            .iter()
            .map(|s| {
                format!(
                    "{}n/{}l/{}e/d{}/{}KiB",
                    s.nodes,
                    s.leaves,
                    s.entries,
                    s.depth,
                    s.bytes / 1024
                )
            })
            .collect();
        println!(
            "{set}: {n} rules, {} tables, {} headers checked, {bad} wrong; trees {}",
            snap.v4.tables(),
            sample.len(),
            shapes.join(" ")
        );
        assert_eq!(bad, 0, "{set}");
    }
}

#[test]
fn classbench_traces_sampled() {
    check(if cfg!(debug_assertions) { 7 } else { 1 });
}

/// Full traces, and classifications per second per core (release).
#[test]
#[ignore]
fn classbench_traces_full_and_rate() {
    check(1);
    let Some(dir) = corpus() else { return };
    for set in [
        "acl1_1K", "fw1_1K", "ipc1_1K", "acl1_10K", "fw1_10K", "ipc1_10K",
    ] {
        let (rs, n, headers) = load(&dir, set);
        let snap = rs.snapshot();
        let keys: Vec<PacketKey> = headers.iter().map(|(k, _)| *k).collect();
        let mut out: Vec<Option<Hit>> = vec![None; 32];
        let mut todo: Vec<u16> = Vec::with_capacity(32);
        let rounds = (2_000_000 / keys.len()).max(1);
        let t = Instant::now();
        let mut sum = 0u64;
        for _ in 0..rounds {
            for c in keys.chunks(32) {
                todo.extend(0..c.len() as u16);
                snap.v4.classify_burst(c, &mut todo, &mut out[..c.len()]);
                sum += out[..c.len()]
                    .iter()
                    .map(|h| h.map_or(0, |h| u64::from(h.id)))
                    .sum::<u64>();
            }
        }
        let dt = t.elapsed().as_secs_f64();
        let total = (rounds * keys.len()) as f64;
        // Add/delete of one rule at this size.
        let rules = rs.rules();
        let mid = rules[rules.len() / 2];
        let t = Instant::now();
        for _ in 0..100 {
            rs.delete(mid.id).unwrap();
            rs.add(mid, Some(rules[rules.len() / 2 + 1].id)).unwrap();
        }
        let upd = t.elapsed().as_secs_f64() / 200.0;
        println!(
            "{set}: {n} rules, {} tables: {:.2} M classifications/s ({:.1} ns each), add/delete {:.1} us (checksum {sum})",
            snap.v4.tables(),
            total / dt / 1e6,
            dt / total * 1e9,
            upd * 1e6
        );
    }
}
