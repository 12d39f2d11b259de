//! The shipped full-chain configuration (`config/vnf.toml`: firewall, NAT44, router) carries a
//! subscriber's traffic out: replayed through the real engine, each packet leaves translated to
//! the pool, one hop older, addressed to the gateway's MAC from the outside port's, with every
//! checksum right (recomputed here from scratch); a stranger's datagram from outside is dropped.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use dataplane::build::{self, ReplayFiles};
use dataplane::config::Config;
use pmd::pcap::{PcapReader, PcapWriter, LINKTYPE_ETHERNET};

mod common;
use common::{csum, pseudo};

const T0: u64 = 1_700_000_000_000_000_000;

/// The pseudo-header sum of the IPv4 packet `ip` (a 20-byte header).
fn pseudo_of(ip: &[u8]) -> u32 {
    let len = usize::from(u16::from_be_bytes([ip[2], ip[3]])) - 20;
    let (s, d) = (
        ip[12..16].try_into().unwrap(),
        ip[16..20].try_into().unwrap(),
    );
    pseudo(s, d, ip[9], len)
}

/// An Ethernet/IPv4 frame to the router's inside MAC, with right checksums.
fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, mut l4: Vec<u8>) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 8, 0];
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    let c = csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    // ICMP's checksum covers the message alone; TCP's and UDP's the pseudo-header too.
    let (at, init) = match proto {
        1 => (2, 0),
        6 => (16, pseudo_of(&h)),
        _ => (6, pseudo_of(&h)),
    };
    let c = csum(&l4, init);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f.extend(h);
    f.extend(l4);
    f
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(b"dns query");
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    let len = l4.len() as u16;
    l4[4..6].copy_from_slice(&len.to_be_bytes());
    frame(src, dst, 17, l4)
}

fn syn(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4[4..8].copy_from_slice(&1000u32.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = 0x02;
    l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
    frame(src, dst, 6, l4)
}

#[test]
fn the_shipped_vnf_chain_translates_routes_and_protects() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vnf.toml");
    let cfg = Config::load(&path).unwrap();
    let dir = std::env::temp_dir().join(format!("vnf-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sub = [10, 1, 2, 3];
    let sent = [
        udp(sub, 5000, [9, 9, 9, 9], 53),
        syn(sub, 40000, [93, 184, 216, 34], 443),
    ];
    let stranger = udp([203, 0, 113, 7], 4444, [198, 51, 100, 3], 5555);
    let write = |name: &str, frames: &[Vec<u8>]| {
        let p = dir.join(name);
        let mut w = PcapWriter::create(&p, LINKTYPE_ETHERNET, 65535, true).unwrap();
        for (i, f) in frames.iter().enumerate() {
            w.write(T0 + i as u64 * 1000, f, f.len() as u32).unwrap();
        }
        w.flush().unwrap();
        p.display().to_string()
    };
    let files = ReplayFiles {
        inputs: vec![
            write("in-inside.pcap", &sent),
            write("in-outside.pcap", std::slice::from_ref(&stranger)),
        ],
        outputs: vec![
            dir.join("out-outside.pcap").display().to_string(),
            dir.join("out-inside.pcap").display().to_string(),
        ],
    };
    let report = build::run(&cfg, Some(&files), &AtomicBool::new(false)).unwrap();
    assert!(report.balanced(), "{}", report.render());
    let mut r = PcapReader::open(&dir.join("out-outside.pcap")).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        out.push(rec.data.to_vec());
    }
    assert_eq!(out.len(), 2, "{}", report.render());
    for (o, s) in out.iter().zip(&sent) {
        assert_eq!(o[0..6], [2, 0, 0, 0, 0x0f, 1], "to the gateway's MAC");
        assert_eq!(o[6..12], [2, 0, 0, 0, 0, 2], "from the outside port's MAC");
        let ip = &o[14..];
        let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        assert_eq!(csum(&ip[..20], 0), 0, "IPv4 checksum");
        assert_eq!(csum(&ip[20..tot], pseudo_of(ip)), 0, "L4 checksum");
        assert_eq!(ip[8], 63, "one hop older");
        assert_eq!(ip[12..15], [198, 51, 100], "a pool address");
        assert!(ip[15] < 16, "a pool address");
        assert_eq!(ip[16..20], s[30..34], "the same destination");
        assert_eq!(ip[22..24], s[36..38], "the same destination port");
        assert_eq!(ip[20..tot].len(), s[34..].len());
    }
    let inside = PcapReader::open(&dir.join("out-inside.pcap"))
        .unwrap()
        .next_record()
        .unwrap()
        .is_none();
    assert!(inside, "nothing for the stranger");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every capture of the corpus (`../shared/corpus/pcap`, or `$DATAPLANE_CORPUS/pcap`) replayed
/// into both ports of the full chain, on one worker and on two: real traffic of every kind
/// (fragments, VLANs, IPv6, ICMP errors, malformed packets) meets the firewall, the NAT and the
/// router in both orders. Each file either is refused with an error naming it, or replays with
/// counters that balance (every packet sent, dropped under a reason, or held). Without the
/// corpus the test prints why and passes.
#[test]
fn every_corpus_capture_runs_through_the_vnf_chain_in_both_directions() {
    let corpus = match std::env::var_os("DATAPLANE_CORPUS") {
        Some(d) => std::path::PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    }
    .join("pcap");
    let Ok(dir) = std::fs::read_dir(&corpus) else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: no capture corpus at {} (set DATAPLANE_CORPUS)",
            corpus.display()
        );
        return;
    };
    let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.is_file());
    files.sort();
    assert!(!files.is_empty());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vnf.toml");
    let out = std::env::temp_dir().join(format!("vnf-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let (mut replayed, mut refused, mut packets) = (0, 0, 0u64);
    for workers in [vec![0], vec![0, 1]] {
        let mut cfg = Config::load(&path).unwrap();
        cfg.workers = workers.clone();
        for f in &files {
            let files = ReplayFiles {
                inputs: vec![f.display().to_string(), f.display().to_string()],
                outputs: vec![
                    out.join("o.pcap").display().to_string(),
                    out.join("i.pcap").display().to_string(),
                ],
            };
            match build::run(&cfg, Some(&files), &AtomicBool::new(false)) {
                Ok(report) => {
                    assert!(
                        report.balanced(),
                        "{} on {workers:?}: {}",
                        f.display(),
                        report.render()
                    );
                    packets += report.received();
                    replayed += 1;
                }
                Err(e) => {
                    let name = f.file_name().unwrap().to_string_lossy();
                    assert!(e.to_string().contains(&*name), "{}: {e}", f.display());
                    refused += 1;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(replayed > 0 && packets > 0);
    println!("{replayed} replays ({packets} packets), {refused} refused");
}

/// Damaged input through the whole chain: well-formed seeds (UDP, TCP SYN, an ICMP echo and an
/// ICMP error quoting a datagram, IPv4 fragments, an IPv6 datagram) cut short at every length
/// and with bytes of their headers overwritten, thousands of variants from a fixed seed, sent
/// into both ports, on one worker and on two. Nothing may panic, and every packet must leave or
/// be dropped under a named reason (the report balances).
#[test]
fn damaged_packets_never_panic_the_chain_and_are_all_accounted() {
    let sub = [10, 1, 2, 3];
    let far = [93, 184, 216, 34];
    let mut echo = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    echo.extend_from_slice(b"ping");
    let echo = frame(sub, far, 1, echo);
    let mut icmp_err = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp_err.extend_from_slice(&udp(sub, 5000, far, 53)[14..14 + 28]);
    let icmp_err = frame(far, [198, 51, 100, 1], 1, icmp_err);
    let frags = {
        // A UDP datagram in two pieces: MF with offset 0, then offset 16 bytes; each piece's
        // IPv4 header then gets its own length, fragment field and checksum.
        let whole = udp(sub, 6000, far, 9999);
        let mut a = whole[..14 + 20 + 16].to_vec();
        let mut b = whole[..14 + 20].to_vec();
        b.extend_from_slice(&whole[14 + 20 + 16..]);
        for (f, frag) in [(&mut a, 0x2000u16), (&mut b, 2)] {
            let tot = (f.len() - 14) as u16;
            f[16..18].copy_from_slice(&tot.to_be_bytes());
            f[20..22].copy_from_slice(&frag.to_be_bytes());
            f[24..26].fill(0);
            let c = csum(&f[14..34], 0);
            f[24..26].copy_from_slice(&c.to_be_bytes());
        }
        [a, b]
    };
    let v6 = {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xaa, 0x86, 0xdd];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 16, 17, 64]);
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb8].repeat(4));
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb9].repeat(4));
        f.extend_from_slice(&[0x13, 0x88, 0, 53, 0, 16, 0, 0]);
        f.extend_from_slice(b"v6 data!");
        f
    };
    let seeds = [
        udp(sub, 5000, far, 53),
        syn(sub, 40000, far, 443),
        echo,
        icmp_err,
        frags[0].clone(),
        frags[1].clone(),
        v6,
    ];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut damaged: Vec<Vec<u8>> = Vec::new();
    for s in &seeds {
        // Cut short at every length.
        for n in 0..s.len() {
            damaged.push(s[..n].to_vec());
        }
        // Header bytes overwritten: one to four of the first 80 bytes, some cut short too.
        for _ in 0..300 {
            let mut f = s.clone();
            for _ in 0..=(next() % 4) {
                let at = (next() as usize) % f.len().min(80);
                f[at] = match next() % 3 {
                    0 => 0,
                    1 => 0xff,
                    _ => next() as u8,
                };
            }
            if next() % 4 == 0 {
                f.truncate((next() as usize) % (f.len() + 1));
            }
            damaged.push(f);
        }
    }
    let dir = std::env::temp_dir().join(format!("vnf-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("in.pcap");
    {
        let mut w = PcapWriter::create(&input, LINKTYPE_ETHERNET, 65535, true).unwrap();
        for (i, f) in damaged.iter().enumerate() {
            w.write(T0 + i as u64 * 1000, f, f.len() as u32).unwrap();
        }
        w.flush().unwrap();
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/vnf.toml");
    for workers in [vec![0], vec![0, 1]] {
        let mut cfg = Config::load(&path).unwrap();
        cfg.workers = workers.clone();
        let files = ReplayFiles {
            inputs: vec![input.display().to_string(), input.display().to_string()],
            outputs: vec![
                dir.join("o.pcap").display().to_string(),
                dir.join("i.pcap").display().to_string(),
            ],
        };
        let report = build::run(&cfg, Some(&files), &AtomicBool::new(false)).unwrap();
        assert!(report.balanced(), "{workers:?}: {}", report.render());
        assert_eq!(report.received(), 2 * damaged.len() as u64, "{workers:?}");
        assert!(
            report.sent() > 0,
            "some damage (a MAC byte) leaves a packet good"
        );
        println!(
            "{workers:?}: {} damaged packets in, {} sent",
            report.received(),
            report.sent()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
