//! The firewall stage on real captures (`../shared/corpus/pcap`), through the real engine
//! (`build::run` with replay files), under stateful policies: TCP sessions with handshake and
//! teardown, the same sessions missing their SYN, ICMP errors for tracked and untracked flows,
//! and fragments (in order, out of order, duplicated, overlapping). Each case runs on one
//! worker, two run-to-completion workers and a two-core pipeline, with the same result.
//!
//! The corpus is taken from `DATAPLANE_CORPUS`, else `../shared/corpus` from the workspace
//! root; without it the tests print why and pass.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use dataplane::build::{self, ReplayFiles};
use dataplane::config::Config;
use dataplane::engine::Report;
use pmd::pcap::{PcapReader, PcapWriter, LINKTYPE_ETHERNET};

mod common;

fn corpus() -> Option<PathBuf> {
    let d = match std::env::var_os("DATAPLANE_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus")),
    }
    .join("pcap");
    if d.is_dir() {
        Some(d)
    } else {
        println!(
            "skipped: no capture corpus at {} (set DATAPLANE_CORPUS)",
            d.display()
        );
        None
    }
}

type Pkt = (u64, Vec<u8>);

fn read(path: &Path) -> Vec<Pkt> {
    let mut r = PcapReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push((rec.ts_ns, rec.data.to_vec()));
    }
    v
}

fn write(path: &Path, pkts: &[Pkt]) {
    let mut w = PcapWriter::create(path, LINKTYPE_ETHERNET, 65535, true).unwrap();
    for (ts, d) in pkts {
        w.write(*ts, d, d.len() as u32).unwrap();
    }
    w.flush().unwrap();
}

const LAYOUTS: [(&str, &str); 3] = [
    ("rtc-1", "layout = \"run-to-completion\"\nworkers = [0]"),
    ("rtc-2", "layout = \"run-to-completion\"\nworkers = [0, 1]"),
    ("pipeline-2", "layout = \"pipeline\"\nworkers = [0, 1]"),
];

/// What one replay did.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    out: Vec<Pkt>,
    drops: Vec<(String, u64)>,
}

fn counter(r: &Report, name: &str) -> u64 {
    r.workers
        .iter()
        .flat_map(|w| w.stages.iter())
        .filter(|(s, _)| s == "firewall")
        .flat_map(|(_, c)| c.iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

/// Replays `input` through `firewall` + forward (inside -> outside) in every layout; checks
/// that all layouts agree and returns the result.
fn replay(name: &str, input: &[Pkt], firewall: &str) -> Run {
    // Tests run in parallel and replay the same captures: one directory per call.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("fw-pcap-{}-{call}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inp = dir.join("in.pcap");
    write(&inp, input);
    let mut first: Option<Run> = None;
    for (lname, engine) in LAYOUTS {
        let text = format!(
            "[memory]\nbuffers = 16384\nhugepages = \"never\"\n[engine]\n{engine}\n[replay]\ninputs = [\"inside\"]\noutputs = [\"outside\"]\n[[port]]\nname = \"inside\"\nkind = \"pcap\"\n[[port]]\nname = \"outside\"\nkind = \"pcap\"\n[[stage]]\nkind = \"firewall\"\nrelease = {{ inside = \"outside\" }}\n{firewall}\n[[stage]]\nkind = \"forward\"\nroutes = {{ inside = \"outside\" }}\n"
        );
        let cfg = Config::parse("fw.toml", &text, &dir).unwrap();
        let out = dir.join(format!("out-{lname}.pcap"));
        let files = ReplayFiles {
            inputs: vec![inp.display().to_string()],
            outputs: vec![out.display().to_string()],
        };
        let report = build::run(&cfg, Some(&files), &AtomicBool::new(false)).unwrap();
        let mut drops: Vec<(String, u64)> = Vec::new();
        for w in &report.workers {
            for (_, r, n) in &w.stage_drops {
                match drops.iter_mut().find(|(x, _)| x == r) {
                    Some(d) => d.1 += n,
                    None => drops.push((r.clone(), *n)),
                }
            }
        }
        drops.sort();
        assert_eq!(
            report.drops().total(),
            0,
            "{name} {lname}: engine drops {:?}",
            report.drops()
        );
        let run = Run {
            out: read(&out),
            drops,
        };
        assert_eq!(
            run.out.len() as u64 + run.drops.iter().map(|d| d.1).sum::<u64>(),
            input.len() as u64 + counter(&report, "rejects_sent"),
            "{name} {lname}: every packet out or dropped"
        );
        match &first {
            None => first = Some(run),
            Some(f) => assert!(
                f == &run,
                "{name}: {lname} differs from rtc-1: {} vs {} packets out, drops {:?} vs {:?}",
                f.out.len(),
                run.out.len(),
                f.drops,
                run.drops
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    first.unwrap()
}

const STATEFUL: &str = "default = \"drop\"\ninline = [\n  \"ct invalid drop\",\n  \"ct established,related accept\",\n  \"tcp flags S/SAFR ct new accept\",\n  \"udp ct new accept\",\n  \"icmp type 8 ct new accept\",\n  \"proto gre accept\",\n]";

fn drops(r: &Run, reason: &str) -> u64 {
    r.drops.iter().find(|d| d.0 == reason).map_or(0, |d| d.1)
}

#[test]
fn tcp_sessions_pass_a_stateful_policy() {
    let Some(dir) = corpus() else { return };
    for f in [
        "ppp_tcp_fin_rst_close.pcap",
        "ppp_tcp_http_nanosec_bigendian.pcap",
        "zeek_http_vlan.pcap",
        "zeek_http_qinq.pcap",
        "zeek_tcp_http_ssh_nanosec.pcap",
        "tcpdump_pptp_gre_bigendian.pcap",
    ] {
        let input = read(&dir.join(f));
        let r = replay(f, &input, STATEFUL);
        println!(
            "{f}: {} in, {} out, drops {:?}",
            input.len(),
            r.out.len(),
            r.drops
        );
        assert_eq!(r.out.len(), input.len(), "{f}: {:?}", r.drops);
        assert!(r.out == input, "{f}: bytes and timestamps unchanged");
    }
    // Its second packet is a FIN sent before the SYN-ACK came back: invalid in SYN_SENT (as in
    // netfilter's state table); the rest of the session passes.
    let f = "zeek_tcp_fin_retransmission.pcap";
    let input = read(&dir.join(f));
    let r = replay(f, &input, STATEFUL);
    assert_eq!(r.drops, vec![("rule_drop".to_string(), 1)], "{f}");
    assert!(r.out[..] == [&input[..1], &input[2..]].concat()[..], "{f}");
}

#[test]
fn sessions_without_their_syn_are_dropped_as_invalid() {
    let Some(dir) = corpus() else { return };
    for f in [
        "ppp_tcp_fin_rst_close.pcap",
        "ppp_tcp_http_nanosec_bigendian.pcap",
    ] {
        let input: Vec<Pkt> = read(&dir.join(f)).into_iter().skip(1).collect();
        let r = replay(f, &input, STATEFUL);
        println!(
            "{f} without SYN: {} in, {} out, drops {:?}",
            input.len(),
            r.out.len(),
            r.drops
        );
        assert_eq!(r.out.len(), 0, "{f}");
        assert_eq!(drops(&r, "rule_drop"), input.len() as u64, "{f}");
    }
}

#[test]
fn icmp_errors_are_related_only_to_tracked_flows() {
    let Some(dir) = corpus() else { return };
    for f in [
        "zeek_icmp_portunreach_udp.pcap",
        "zeek_icmp_timeexceeded.pcap",
    ] {
        let errs = read(&dir.join(f));
        // Untracked: invalid, dropped.
        let r = replay(f, &errs, STATEFUL);
        assert_eq!(
            (r.out.len(), drops(&r, "rule_drop")),
            (0, 1),
            "{f}: {:?}",
            r.drops
        );
        // Preceded by the packet it quotes (rebuilt from the quote): related, accepted.
        let (ts, e) = &errs[0];
        let ip = 14;
        let ihl = usize::from(e[ip] & 0x0f) * 4;
        let quote = &e[ip + ihl + 8..];
        let qihl = usize::from(quote[0] & 0x0f) * 4;
        let mut orig = e[..14].to_vec();
        orig[0..6].copy_from_slice(&e[6..12]);
        orig[6..12].copy_from_slice(&e[0..6]);
        let mut q = quote[..qihl + 8].to_vec();
        q[2..4].copy_from_slice(&((qihl + 8) as u16).to_be_bytes());
        q[6] = 0;
        q[7] = 0;
        q[10] = 0;
        q[11] = 0;
        let c = dataplane::wire::checksum::checksum(&q[..qihl]);
        q[10..12].copy_from_slice(&c.to_be_bytes());
        if q[9] == 17 {
            q[qihl + 4..qihl + 6].copy_from_slice(&8u16.to_be_bytes());
            q[qihl + 6] = 0;
            q[qihl + 7] = 0;
        }
        orig.extend_from_slice(&q);
        let input = vec![(ts - 1000, orig), (*ts, e.clone())];
        let r = replay(f, &input, STATEFUL);
        println!("{f}: tracked: out {}, drops {:?}", r.out.len(), r.drops);
        if q[9] == 17 || q[9] == 1 {
            assert_eq!(r.out.len(), 2, "{f}: {:?}", r.drops);
        }
    }
}

#[test]
fn fragments_follow_the_first_and_overlaps_are_dropped() {
    let Some(dir) = corpus() else { return };
    // Stateless here (conntrack off), so only the fragment rules decide.
    let policy = "default = \"accept\"\nconntrack = false";
    for (f, out, want) in [
        ("zeek_ipv4_frag_tcp_mtu1500.pcap", 5, vec![]),
        // Datagram 1 lost its first fragment in the capture: its last one is held, then
        // dropped when the hold time runs out.
        ("zeek_ipv6_frag_dns.pcap", 7, vec![("fragment_timeout", 1)]),
        ("ppp_ipv6_frags.pcap", 36, vec![]),
        ("ppp_ipv4_frags_vlan_padding.pcap", 8, vec![]),
        // A second "first fragment" [0, 304) rewriting [0, 18) and [48, 164).
        (
            "zeek_ipv4_frag_overlap_udp.pcap",
            2,
            vec![("fragment_overlap", 1)],
        ),
        // [24, 72) rewriting [48, 72) of an accepted datagram.
        (
            "zeek_ipv4_frag_overlap_tcp.pcap",
            5,
            vec![("fragment_overlap", 1)],
        ),
        // Out of order and exact duplicates (retransmissions): all pass.
        ("ppp_ipv4_frags_dup_ooo.pcap", 53, vec![]),
        ("suricata_ipv4frags.pcap", 3, vec![]),
    ] {
        let input = read(&dir.join(f));
        let r = replay(f, &input, policy);
        println!(
            "{f}: {} in, {} out, drops {:?}",
            input.len(),
            r.out.len(),
            r.drops
        );
        assert_eq!(r.out.len(), out, "{f}: {:?}", r.drops);
        let want: Vec<(String, u64)> = want.iter().map(|(a, b)| (a.to_string(), *b)).collect();
        assert_eq!(r.drops, want, "{f}");
    }
    // Statefully, the overlap capture's first fragment is a flagless segment of no known
    // connection: invalid, dropped by the rule, and the rest of its datagram with it.
    let f = "zeek_ipv4_frag_overlap_tcp.pcap";
    let r = replay(
        f,
        &read(&dir.join(f)),
        "default = \"accept\"\ninline = [\"ct invalid drop\"]",
    );
    assert_eq!(
        r.drops,
        vec![
            ("fragment_denied".to_string(), 2),
            ("fragment_overlap".to_string(), 1),
            ("rule_drop".to_string(), 2)
        ]
    );
}

#[test]
fn port_rules_cannot_be_bypassed_with_fragments() {
    let Some(dir) = corpus() else { return };
    // Deny the DNS datagram's port: the first fragment is dropped by the rule, the others as
    // fragments of a denied datagram, whatever order they come in.
    let f = "zeek_ipv6_frag_dns.pcap";
    let input = read(&dir.join(f));
    let r = replay(
        f,
        &input,
        "default = \"accept\"\ninline = [\"udp sport 53 drop\", \"udp dport 53 drop\"]",
    );
    println!(
        "{f} denied: {} in, {} out, drops {:?}",
        input.len(),
        r.out.len(),
        r.drops
    );
    let mut rev = input.clone();
    rev.reverse();
    for (i, p) in rev.iter_mut().enumerate() {
        p.0 = input[i].0;
    }
    let r2 = replay(
        "rev",
        &rev,
        "default = \"accept\"\ninline = [\"udp sport 53 drop\", \"udp dport 53 drop\"]",
    );
    println!(
        "{f} reversed, denied: {} in, {} out, drops {:?}",
        rev.len(),
        r2.out.len(),
        r2.drops
    );
    assert_eq!(r.out.len(), 0);
    assert_eq!(r2.out.len(), 0);
    // The orphan fragment of datagram 1 is held until its time runs out (or the run ends).
    assert_eq!(
        drops(&r, "fragment_denied") + drops(&r, "fragment_timeout"),
        3
    );
    assert_eq!(
        drops(&r2, "fragment_denied") + drops(&r2, "fragment_flushed"),
        3
    );
}

/// An Ethernet + IPv4 frame carrying `l4` (or its piece) with IP ID `id`, fragment offset
/// `off` (bytes) and more-fragments `mf`.
fn ipv4_frag(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    l4: &[u8],
    id: u16,
    off: usize,
    mf: bool,
) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let tot = 20 + l4.len();
    let frag = (off / 8) as u16 | if mf { 0x2000 } else { 0 };
    let mut ip = vec![0x45, 0, (tot >> 8) as u8, tot as u8];
    ip.extend_from_slice(&id.to_be_bytes());
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.extend_from_slice(&[64, proto, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = common::csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4);
    f
}

/// A UDP datagram `sp -> dp` with `len` bytes of payload, as IPv4 fragments of at most 1480
/// bytes of it each (one unfragmented frame when it fits).
fn udp_frags(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, len: usize, id: u16) -> Vec<Vec<u8>> {
    let mut u = Vec::with_capacity(8 + len);
    u.extend_from_slice(&sp.to_be_bytes());
    u.extend_from_slice(&dp.to_be_bytes());
    u.extend_from_slice(&((8 + len) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend((0..len).map(|i| i as u8));
    let c = common::csum(&u, common::pseudo(src, dst, 17, u.len()));
    u[6..8].copy_from_slice(&c.to_be_bytes());
    let pieces: Vec<&[u8]> = u.chunks(1480).collect();
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, p)| ipv4_frag(src, dst, 17, p, id, i * 1480, i < last && last > 0))
        .collect()
}

#[test]
fn fragments_meet_their_connection_on_its_worker() {
    // The dispatch places all fragments of a datagram on one worker by addresses and
    // protocol, a connection on the worker of its whole 5-tuple. A fragmented reply must still
    // be `established`: its first fragment goes to the connection's worker, the rest after it.
    // Pick a client port for which the two differ on two workers, so rtc-2 depends on it.
    use dataplane::engine::{flow_hash, unfragmented_flow_hash, worker_for_hash};
    let (client, server) = ([10, 0, 0, 1], [192, 0, 2, 53]);
    let sport = (1024..2048u16)
        .find(|&sp| {
            let f = udp_frags(server, 53, client, sp, 3000, 1);
            let whole = unfragmented_flow_hash(&f[0]).unwrap();
            worker_for_hash(flow_hash(&f[0]), 2) != worker_for_hash(whole, 2)
        })
        .expect("a port whose flow and fragments hash apart");
    let mut input: Vec<Pkt> = Vec::new();
    let mut t = 1_000_000_000u64;
    let mut push = |f: Vec<u8>, input: &mut Vec<Pkt>| {
        t += 1_000_000;
        input.push((t, f));
    };
    // The request, then its reply in three fragments, last one first.
    push(
        udp_frags(client, sport, server, 53, 40, 7).remove(0),
        &mut input,
    );
    let mut reply = udp_frags(server, 53, client, sport, 3000, 4242);
    assert_eq!(reply.len(), 3);
    let first = reply.remove(0);
    for f in reply.into_iter().rev() {
        push(f, &mut input);
    }
    push(first, &mut input);
    // A fragmented datagram from port 53 to a port nobody asked from: new, so dropped.
    for f in udp_frags(server, 53, client, sport + 1, 2000, 4243) {
        push(f, &mut input);
    }
    let policy = "default = \"drop\"\ninline = [\"ct established,related accept\", \"udp dport 53 ct new accept\"]";
    let r = replay("frag-conn", &input, policy);
    println!(
        "{} in, {} out, drops {:?}",
        input.len(),
        r.out.len(),
        r.drops
    );
    assert_eq!(
        r.out.len(),
        4,
        "the request and the reply's three fragments"
    );
    assert_eq!(
        r.drops,
        vec![
            ("default_drop".to_string(), 1),
            ("fragment_denied".to_string(), 1)
        ]
    );
    let ids = |id: u16| {
        r.out
            .iter()
            .filter(|p| p.1[18..20] == id.to_be_bytes())
            .count()
    };
    assert_eq!(
        (ids(7), ids(4242)),
        (1, 3),
        "the request and the whole reply"
    );

    // Real captures: an ICMP echo request in two fragments whose reply is not fragmented, and
    // a DNS reply in three fragments to an unfragmented query.
    let Some(dir) = corpus() else { return };
    let f = "suricata_ipv4frags.pcap";
    let r = replay(
        f,
        &read(&dir.join(f)),
        "default = \"drop\"\ninline = [\"ct established,related accept\", \"icmp type 8 ct new accept\"]",
    );
    assert_eq!((r.out.len(), r.drops.len()), (3, 0), "{f}: {:?}", r.drops);
    let f = "zeek_ipv6_frag_dns.pcap";
    let r = replay(
        f,
        &read(&dir.join(f)),
        "default = \"drop\"\ninline = [\"ct established,related accept\", \"udp dport 53 ct new accept\"]",
    );
    println!("{f}: {} out, drops {:?}", r.out.len(), r.drops);
    assert_eq!(r.out.len(), 7, "{f}: {:?}", r.drops);
}
