//! Stage-level tests: crafted frames through a [`Firewall`] on a virtual clock, with a real
//! pool and the same `Ctx` the engine builds.

use super::*;
use crate::stage::{DropCounters, NextKind, MAX_STAGE_DROPS};
use pmd::mem::HugePolicy;
use pmd::{Burst, Pool, PoolCache, PoolConfig};
use std::net::Ipv4Addr;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [192, 0, 2, 9];

fn eth(et: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&et.to_be_bytes());
    f
}

/// IPv4 frame with `l4` as payload; `frag` = (offset in bytes, more fragments).
fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, id: u16, frag: (u16, bool), l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800);
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let ff = (frag.0 / 8) | if frag.1 { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&ff.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    Ipv4Packet::new_unchecked(&mut h[..]).fill_checksum();
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

fn tcp_seg(sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload];
    t[0..2].copy_from_slice(&sp.to_be_bytes());
    t[2..4].copy_from_slice(&dp.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65535u16.to_be_bytes());
    t
}

fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    ipv4(
        src,
        dst,
        6,
        1,
        (0, false),
        &tcp_seg(sp, dp, seq, ack, flags, 0),
    )
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> Vec<u8> {
    let mut u = vec![0u8; 12];
    u[0..2].copy_from_slice(&sp.to_be_bytes());
    u[2..4].copy_from_slice(&dp.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    ipv4(src, dst, 17, 1, (0, false), &u)
}

fn icmp_echo(src: [u8; 4], dst: [u8; 4], ty: u8, id: u16) -> Vec<u8> {
    let mut m = vec![ty, 0, 0, 0, 0, 0, 0, 1];
    m[4..6].copy_from_slice(&id.to_be_bytes());
    ipv4(src, dst, 1, 1, (0, false), &m)
}

/// An ICMP error from `from` about `quoted` (an IPv4 frame).
fn icmp_error(from: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let q = &quoted[14..(14 + 28).min(quoted.len())];
    let mut m = vec![3, 3, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(q);
    let to: [u8; 4] = q[12..16].try_into().unwrap();
    ipv4(from, to, 1, 9, (0, false), &m)
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

struct H {
    _pool: Pool,
    cache: PoolCache,
    emitted: Burst,
    created: u64,
    drops: DropCounters,
    local: [u64; MAX_STAGE_DROPS],
    fw: Firewall,
    out: Vec<Vec<u8>>,
    /// Sent packets that left their checksums to transmit.
    tx_csum: u64,
}

impl H {
    fn new(rules: &[&str], s: Settings) -> H {
        let list: Vec<Rule> = rules
            .iter()
            .enumerate()
            .map(|(i, l)| {
                rules::parse_rule_line(l, i as u32 + 1, &|p| (p == "lan").then_some(0))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let pool = Pool::new(&PoolConfig {
            count: 1024,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        H {
            cache: pool.cache(),
            _pool: pool,
            emitted: Burst::new(),
            created: 0,
            drops: DropCounters::default(),
            local: [0; MAX_STAGE_DROPS],
            fw: Firewall::new(RuleSet::new(&list).unwrap(), s),
            out: Vec::new(),
            tx_csum: 0,
        }
    }

    fn ctx(&mut self, now: u64) -> (Ctx<'_>, &mut Firewall) {
        (
            Ctx {
                now,
                worker: 0,
                stage: 0,
                can_handoff: false,
                flow_workers: 0,
                cache: &mut self.cache,
                emitted: &mut self.emitted,
                // Released fragments are emitted here (as outside `process`), so the harness
                // sees them; the chain resumes them at the next stage (tests/golden.rs).
                resumed: None,
                created: &mut self.created,
                drops: &mut self.drops,
                local_drops: &mut self.local,
            },
            &mut self.fw,
        )
    }

    /// What the stage sent, as a port without checksum offload transmits it: an IPv4 answer
    /// leaves its header and TCP checksums to transmit, and the engine fills them then.
    fn collect(&mut self) {
        while let Some(mut m) = self.emitted.pop() {
            self.tx_csum += u64::from(m.tx_csum().is_some());
            assert!(m.fill_tx_csum());
            self.out.push(m.data().to_vec());
            self.cache.free(m);
        }
    }

    /// Runs frames (input port 0) as one burst; returns each packet's fate.
    fn run(&mut self, now: u64, frames: &[Vec<u8>]) -> Vec<NextKind> {
        let mut pkts = Vec::new();
        for f in frames {
            let mut m = self.cache.alloc().unwrap();
            assert!(m.copy_from(f));
            m.set_port(0);
            m.set_timestamp(now);
            pkts.push(m);
        }
        let mut nexts = vec![Next::CONTINUE; pkts.len()];
        {
            let (mut ctx, fw) = self.ctx(now);
            fw.process(&mut ctx, &mut pkts, &mut nexts);
            for (i, c) in local_counts(&ctx).iter().enumerate() {
                let _ = (i, c);
            }
        }
        let mut kinds = Vec::new();
        for (m, n) in pkts.into_iter().zip(&nexts) {
            kinds.push(n.kind());
            if n.kind() == NextKind::Hold {
                if let Err(m) = self.fw.hold(m) {
                    self.cache.free(m);
                    panic!("hold refused");
                }
            } else {
                self.cache.free(m);
            }
        }
        self.poll(now);
        kinds
    }

    fn one(&mut self, now: u64, f: Vec<u8>) -> NextKind {
        self.run(now, &[f])[0]
    }

    fn poll(&mut self, now: u64) {
        let (mut ctx, fw) = self.ctx(now);
        fw.poll(&mut ctx);
        self.collect();
    }

    fn counter(&self, name: &str) -> u64 {
        self.fw
            .counters()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |c| c.1)
    }
}

fn local_counts<'a>(ctx: &'a Ctx<'_>) -> &'a [u64] {
    &ctx.local_drops[..]
}

const C: NextKind = NextKind::Continue;
fn drop(r: u8) -> NextKind {
    NextKind::StageDrop(r)
}

const STATEFUL: &[&str] = &[
    "ct invalid drop",
    "ct established,related accept",
    "tcp dport 80 daddr 192.0.2.0/24 ct new accept",
    "udp dport 53 accept",
    "icmp type 8 accept",
    "tcp dport 22 reject",
];

fn stateful() -> H {
    H::new(
        STATEFUL,
        Settings {
            default: Action::Drop,
            ..Settings::default()
        },
    )
}

#[test]
fn tcp_session_handshake_data_teardown() {
    let mut h = stateful();
    let t = 1_000_000_000;
    assert_eq!(h.one(t, tcp(A, B, 4000, 80, 100, 0, SYN)), C);
    assert_eq!(h.fw.connections(), 1);
    assert_eq!(h.one(t, tcp(B, A, 80, 4000, 900, 101, SYN | ACK)), C);
    assert_eq!(h.one(t, tcp(A, B, 4000, 80, 101, 901, ACK)), C);
    let data = ipv4(
        A,
        B,
        6,
        2,
        (0, false),
        &tcp_seg(4000, 80, 101, 901, ACK, 100),
    );
    assert_eq!(h.one(t, data.clone()), C);
    assert_eq!(h.one(t, tcp(B, A, 80, 4000, 901, 201, ACK)), C);
    // Later packets of each direction hit the flow cache.
    let hits = h.counter("flow_cache_hits");
    assert_eq!(h.one(t, tcp(B, A, 80, 4000, 901, 201, ACK)), C);
    assert_eq!(h.counter("flow_cache_hits"), hits + 1);
    // Teardown.
    assert_eq!(h.one(t, tcp(A, B, 4000, 80, 201, 901, FIN | ACK)), C);
    assert_eq!(h.one(t, tcp(B, A, 80, 4000, 901, 202, FIN | ACK)), C);
    assert_eq!(h.one(t, tcp(A, B, 4000, 80, 202, 902, ACK)), C);
    // TIME_WAIT expires on the virtual clock.
    h.poll(t + 121_000_000_000);
    assert_eq!(h.fw.connections(), 0);
    // Rule counters: rule 3 saw the SYN, rule 2 the established ones.
    assert_eq!(h.counter("rule.3.packets"), 1);
    assert!(h.counter("rule.2.packets") >= 3);
    assert_eq!(h.counter("rule.3.bytes"), 54);
}

#[test]
fn reply_without_request_and_midstream_are_invalid() {
    let mut h = stateful();
    assert_eq!(
        h.one(0, tcp(B, A, 80, 4000, 900, 101, SYN | ACK)),
        drop(reason::RULE_DROP)
    );
    assert_eq!(
        h.one(0, tcp(A, B, 4000, 80, 5, 6, ACK)),
        drop(reason::RULE_DROP)
    );
    assert_eq!(h.one(0, icmp_echo(B, A, 0, 7)), drop(reason::RULE_DROP));
    assert_eq!(h.counter("rule.1.packets"), 3);
    assert_eq!(h.fw.connections(), 0);
    // A SYN to a port with no rule: default drop.
    assert_eq!(
        h.one(0, tcp(A, B, 4000, 81, 1, 0, SYN)),
        drop(reason::DEFAULT_DROP)
    );
}

#[test]
fn out_of_window_segment_is_invalid() {
    let mut h = stateful();
    h.one(0, tcp(A, B, 4000, 80, 100, 0, SYN));
    h.one(0, tcp(B, A, 80, 4000, 900, 101, SYN | ACK));
    h.one(0, tcp(A, B, 4000, 80, 101, 901, ACK));
    assert_eq!(
        h.one(0, tcp(A, B, 4000, 80, 101 + 3_000_000, 901, ACK)),
        drop(reason::RULE_DROP)
    );
    assert_eq!(
        h.one(0, tcp(B, A, 80, 4000, 901 + 3_000_000, 101, RST)),
        drop(reason::RULE_DROP)
    );
    assert_eq!(h.one(0, tcp(B, A, 80, 4000, 901, 101, RST)), C);
}

#[test]
fn udp_and_icmp_pseudo_connections_and_related_errors() {
    let mut h = stateful();
    let q = udp(A, B, 5353, 53);
    assert_eq!(h.one(0, q.clone()), C);
    assert_eq!(h.one(0, udp(B, A, 53, 5353)), C, "reply established");
    assert_eq!(
        h.one(0, udp(B, A, 53, 5354)),
        drop(reason::DEFAULT_DROP),
        "no request"
    );
    // An ICMP error about the tracked flow is related; about another flow, invalid.
    assert_eq!(h.one(0, icmp_error([203, 0, 113, 1], &q)), C);
    let other = udp(A, B, 7777, 53);
    assert_eq!(
        h.one(0, icmp_error([203, 0, 113, 1], &other)),
        drop(reason::RULE_DROP)
    );
    // Echo.
    assert_eq!(h.one(0, icmp_echo(A, B, 8, 42)), C);
    assert_eq!(h.one(0, icmp_echo(B, A, 0, 42)), C);
    assert_eq!(h.one(0, icmp_echo(B, A, 0, 43)), drop(reason::RULE_DROP));
    // UDP without reply expires at 30 s.
    h.poll(31_000_000_000);
    assert_eq!(
        h.one(31_000_000_000, udp(B, A, 53, 5353)),
        C,
        "replied one lives 120 s"
    );
    h.poll(400_000_000_000);
    assert_eq!(h.fw.connections(), 0);
}

#[test]
fn reject_sends_rst_and_icmp_rate_limited() {
    let mut h = H::new(
        &["tcp dport 22 reject", "udp reject"],
        Settings {
            reject_rate: 2,
            ..Settings::default()
        },
    );
    assert_eq!(
        h.one(0, tcp(A, B, 4000, 22, 100, 0, SYN)),
        drop(reason::RULE_REJECT)
    );
    assert_eq!(h.out.len(), 1);
    let r = &h.out[0];
    assert_eq!(&r[0..6], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(&r[26..30], &B);
    assert_eq!(&r[30..34], &A);
    let t = TcpPacket::new_checked(&r[34..54]).unwrap();
    assert_eq!(r.len(), 60, "padded to the Ethernet minimum");
    assert_eq!(
        (t.src_port(), t.dst_port(), t.ack(), t.flags()),
        (22, 4000, 101, RST | ACK)
    );
    assert!(t.verify_checksum_v4(&Ipv4Addr::from(B), &Ipv4Addr::from(A)));
    assert_eq!(h.tx_csum, 1, "the RST leaves its checksums to transmit");
    assert!(Ipv4Packet::new_checked(&r[14..]).unwrap().verify_checksum());
    assert_eq!(h.one(0, udp(A, B, 1, 2)), drop(reason::RULE_REJECT));
    let r = &h.out[1];
    let ic = Icmpv4Packet::new_checked(&r[34..]).unwrap();
    assert_eq!((ic.msg_type(), ic.code()), (3, 13));
    assert!(ic.verify_checksum());
    // Budget of 2 per second spent: the third is only dropped.
    assert_eq!(h.one(0, udp(A, B, 1, 2)), drop(reason::RULE_REJECT));
    assert_eq!(h.out.len(), 2);
    assert_eq!(h.counter("rejects_rate_limited"), 1);
    assert_eq!(
        h.one(1_000_000_000, udp(A, B, 1, 2)),
        drop(reason::RULE_REJECT)
    );
    assert_eq!(h.out.len(), 3);
    // No answer to a RST.
    assert_eq!(
        h.one(2_000_000_000, tcp(A, B, 4000, 22, 1, 0, RST)),
        drop(reason::RULE_REJECT)
    );
    assert_eq!(h.out.len(), 3);
}

#[test]
fn syn_flood_into_full_table_leaves_established_flowing() {
    let mut h = H::new(
        &[
            "ct invalid drop",
            "ct established accept",
            "tcp ct new accept",
        ],
        Settings {
            conntrack_capacity: 64,
            ..Settings::default()
        },
    );
    // Ten established connections.
    for p in 0..10u16 {
        h.one(0, tcp(A, B, 1000 + p, 80, 1, 0, SYN));
        h.one(0, tcp(B, A, 80, 1000 + p, 7, 2, SYN | ACK));
        h.one(0, tcp(A, B, 1000 + p, 80, 2, 8, ACK));
    }
    // A flood of SYNs from spoofed sources, in bursts of 32.
    let mut full = 0;
    for b in 0..20u32 {
        let frames: Vec<Vec<u8>> = (0..32u32)
            .map(|i| {
                let n = b * 32 + i;
                tcp([172, 16, (n >> 8) as u8, n as u8], B, 5000, 80, n, 0, SYN)
            })
            .collect();
        full += h
            .run(1, &frames)
            .iter()
            .filter(|k| **k == drop(reason::CT_TABLE_FULL))
            .count();
        // Established traffic keeps flowing between flood bursts.
        for p in 0..10u16 {
            assert_eq!(h.one(1, tcp(A, B, 1000 + p, 80, 2, 8, ACK)), C);
            assert_eq!(h.one(1, tcp(B, A, 80, 1000 + p, 8, 2, ACK)), C);
        }
    }
    assert_eq!(h.fw.connections(), 64);
    assert_eq!(full, 640 - 54);
    // With early drop the flood recycles its own half-open entries instead.
    let mut h2 = H::new(
        &[
            "ct invalid drop",
            "ct established accept",
            "tcp ct new accept",
        ],
        Settings {
            conntrack_capacity: 64,
            early_drop: true,
            ..Settings::default()
        },
    );
    for p in 0..10u16 {
        h2.one(0, tcp(A, B, 1000 + p, 80, 1, 0, SYN));
        h2.one(0, tcp(B, A, 80, 1000 + p, 7, 2, SYN | ACK));
        h2.one(0, tcp(A, B, 1000 + p, 80, 2, 8, ACK));
    }
    for n in 0..500u32 {
        assert_eq!(
            h2.one(
                1,
                tcp([172, 16, (n >> 8) as u8, n as u8], B, 5000, 80, n, 0, SYN)
            ),
            C
        );
    }
    for p in 0..10u16 {
        assert_eq!(h2.one(2, tcp(B, A, 80, 1000 + p, 8, 2, ACK)), C);
    }
    assert!(h2.counter("ct_early_drops") >= 440);
}

fn frag_udp(src: [u8; 4], id: u16, off: u16, more: bool, len: usize, dport: u16) -> Vec<u8> {
    let mut l4 = vec![0u8; len];
    if off == 0 {
        l4[0..2].copy_from_slice(&1234u16.to_be_bytes());
        l4[2..4].copy_from_slice(&dport.to_be_bytes());
    }
    ipv4(src, B, 17, id, (off, more), &l4)
}

#[test]
fn fragments_follow_their_first_fragment() {
    let mut h = H::new(
        &["udp dport 53 accept", "udp drop"],
        Settings {
            release: vec![(0, 1)],
            ..Settings::default()
        },
    );
    // In order: first accepted, the rest follow.
    assert_eq!(h.one(0, frag_udp(A, 1, 0, true, 64, 53)), C);
    assert_eq!(h.one(0, frag_udp(A, 1, 64, false, 32, 0)), C);
    // First dropped: the rest are denied.
    assert_eq!(
        h.one(0, frag_udp(A, 2, 0, true, 64, 99)),
        drop(reason::RULE_DROP)
    );
    assert_eq!(
        h.one(0, frag_udp(A, 2, 64, false, 32, 0)),
        drop(reason::FRAGMENT_DENIED)
    );
    // Out of order: held, then released through `emit` with the `release` egress.
    assert_eq!(h.one(0, frag_udp(A, 3, 64, false, 32, 0)), NextKind::Hold);
    assert_eq!(h.fw.held(), 1);
    assert_eq!(h.one(0, frag_udp(A, 3, 0, true, 64, 53)), C);
    assert_eq!(h.fw.held(), 0);
    assert_eq!(h.out.len(), 1);
    // Held and never completed: dropped after the hold time.
    assert_eq!(h.one(0, frag_udp(A, 4, 64, false, 32, 0)), NextKind::Hold);
    h.poll(2_000_000_000);
    assert_eq!(h.fw.held(), 0);
    assert_eq!(h.local[reason::FRAGMENT_TIMEOUT as usize], 1);
    // Both in one burst, later fragment first.
    let k = h.run(
        3_000_000_000,
        &[
            frag_udp(A, 5, 64, false, 32, 0),
            frag_udp(A, 5, 0, true, 64, 53),
        ],
    );
    assert_eq!(k, vec![C, C]);
}

#[test]
fn tiny_and_overlapping_fragments_are_dropped() {
    let mut h = H::new(&["tcp dport 80 accept", "drop"], Settings::default());
    // A first fragment with only 8 bytes of TCP header.
    let mut seg = tcp_seg(1, 80, 1, 0, SYN, 0);
    seg.truncate(8);
    assert_eq!(
        h.one(0, ipv4(A, B, 6, 7, (0, true), &seg)),
        drop(reason::FRAGMENT_TINY)
    );
    // RFC 1858: a TCP fragment at offset 8 rewriting the flags.
    assert_eq!(
        h.one(0, ipv4(A, B, 6, 8, (8, false), &[0u8; 16])),
        drop(reason::FRAGMENT_TINY)
    );
    // Overlap: a fragment rewriting bytes of an accepted first fragment.
    let first = ipv4(A, B, 6, 9, (0, true), &tcp_seg(1, 80, 1, 0, ACK, 20));
    assert_eq!(h.one(0, first), C);
    assert_eq!(
        h.one(0, ipv4(A, B, 6, 9, (16, false), &[0u8; 32])),
        drop(reason::FRAGMENT_OVERLAP)
    );
    // The rest of the datagram is dropped too.
    assert_eq!(
        h.one(0, ipv4(A, B, 6, 9, (40, false), &[0u8; 8])),
        drop(reason::FRAGMENT_OVERLAP)
    );
}

#[test]
fn rule_changes_apply_live_and_invalidate_the_cache() {
    let mut h = H::new(
        &["ct established accept", "udp accept"],
        Settings::default(),
    );
    assert_eq!(h.one(0, udp(A, B, 1, 2)), C);
    assert_eq!(h.one(0, udp(B, A, 2, 1)), C);
    assert_eq!(h.one(0, udp(B, A, 2, 1)), C);
    assert_eq!(h.counter("flow_cache_hits"), 1);
    let set = h.fw.rules().clone();
    let mut r = rules::parse_rule_line("saddr 192.0.2.9 drop", 50, &|_| None)
        .unwrap()
        .unwrap();
    r.id = 50;
    set.add(r, Some(1)).unwrap();
    assert_eq!(h.one(0, udp(B, A, 2, 1)), drop(reason::RULE_DROP));
    set.delete(50).unwrap();
    assert_eq!(h.one(0, udp(B, A, 2, 1)), C);
}

#[test]
fn non_ip_passes_malformed_drops() {
    let mut h = stateful();
    let mut arp = eth(0x0806);
    arp.extend_from_slice(&[0u8; 28]);
    assert_eq!(h.one(0, arp), C);
    let mut bad = tcp(A, B, 1, 80, 1, 0, SYN);
    bad.truncate(14 + 20 + 10);
    bad[17] = 30; // total length 30: TCP header cut
    assert_eq!(h.one(0, bad), drop(reason::MALFORMED));
    // A random mess never panics.
    for n in 0..200u32 {
        let mut f = tcp(A, B, 1, 80, n, 0, (n & 0xff) as u8);
        let i = 14 + (n as usize * 7) % 40;
        f[i] ^= (n * 31) as u8;
        let _ = h.one(u64::from(n), f);
    }
}

#[test]
fn config_parses_and_reports_errors() {
    use crate::config::Config;
    use std::path::Path;
    let dir = std::env::temp_dir().join(format!("fw-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.rules"),
        "# policy\nct established accept\n\nin a tcp dport 22 accept\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.rules"), "accept\ntcp dport 99999 accept\n").unwrap();
    let base = "[[port]]\nname = \"a\"\nkind = \"pcap\"\n[[port]]\nname = \"b\"\nkind = \"pcap\"\n";
    let ok = format!(
        "{base}[[stage]]\nkind = \"firewall\"\nrules = \"p.rules\"\ndefault = \"drop\"\ninline = [\"icmp accept\"]\nconntrack_capacity = 100\ntimeouts = {{ udp = 5 }}\nrelease = {{ a = \"b\" }}\n[[stage]]\nkind = \"forward\"\nto = \"b\"\n"
    );
    let c = Config::parse("t.toml", &ok, &dir).unwrap();
    let d = c.stages[0].describe(&c.ports);
    assert!(d[0].starts_with("3 rules from 1 inline + "), "{d:?}");
    assert!(d[0].contains("default drop"), "{d:?}");
    assert!(d.iter().any(|l| l == "released fragments: a -> b"), "{d:?}");
    let err = |t: &str| {
        Config::parse(
            "t.toml",
            &format!("{base}[[stage]]\nkind = \"firewall\"\n{t}\n"),
            &dir,
        )
        .unwrap_err()
    };
    let e = err("rules = \"bad.rules\"");
    assert_eq!(e.key, "stage[0].rules", "{e}");
    assert!(e.msg.contains("bad.rules:2: dport"), "{e}");
    let e = err("colour = 1");
    assert_eq!((e.key.as_str(), e.line), ("stage[0].colour", 9), "{e}");
    let e = err("default = \"maybe\"");
    assert_eq!(e.key, "stage[0].default", "{e}");
    let e = err("format = \"iptables\"");
    assert_eq!(e.key, "stage[0].format", "{e}");
    let e = err("conntrack_capacity = 0");
    assert_eq!(e.key, "stage[0].conntrack_capacity", "{e}");
    let e = err("inline = [\"tcp dport 22\"]");
    assert!(e.msg.contains("rule 1: a rule ends"), "{e}");
    let e = err("timeouts = { tcp = 1 }");
    assert!(e.to_string().contains("tcp"), "{e}");
    let _ = Path::new(".");
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x86dd);
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

#[test]
fn ipv6_rules_conntrack_and_reject() {
    let c6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 5).octets();
    let s6: [u8; 16] = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 53).octets();
    let mut h = H::new(
        &[
            "ct established accept",
            "ip6 udp dport 53 daddr 2001:db8:2::/48 accept",
            "ip6 tcp dport 22 reject",
            "icmpv6 type 128 accept",
        ],
        Settings {
            default: Action::Drop,
            ..Settings::default()
        },
    );
    let mut u = vec![0u8; 12];
    u[0..2].copy_from_slice(&5000u16.to_be_bytes());
    u[2..4].copy_from_slice(&53u16.to_be_bytes());
    u[4..6].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(h.one(0, ipv6(c6, s6, 17, &u)), C);
    let mut r = u.clone();
    r[0..2].copy_from_slice(&53u16.to_be_bytes());
    r[2..4].copy_from_slice(&5000u16.to_be_bytes());
    assert_eq!(h.one(0, ipv6(s6, c6, 17, &r)), C, "reply established");
    // The same datagram over IPv4 is not matched by the ip6 rule.
    assert_eq!(h.one(0, udp(A, B, 5000, 53)), drop(reason::DEFAULT_DROP));
    // Echo request, then its reply.
    let echo = |ty: u8| vec![ty, 0, 0, 0, 0, 9, 0, 1];
    assert_eq!(h.one(0, ipv6(c6, s6, 58, &echo(128))), C);
    assert_eq!(h.one(0, ipv6(s6, c6, 58, &echo(129))), C);
    // Reject over IPv6: a RST with a valid checksum.
    let seg = tcp_seg(7000, 22, 50, 0, SYN, 0);
    assert_eq!(h.one(0, ipv6(c6, s6, 6, &seg)), drop(reason::RULE_REJECT));
    let out = h.out.last().unwrap().clone();
    assert_eq!(&out[12..14], &[0x86, 0xdd]);
    assert_eq!(&out[22..38], &s6);
    let t = TcpPacket::new_checked(&out[54..74]).unwrap();
    assert_eq!((t.dst_port(), t.ack(), t.flags()), (7000, 51, RST | ACK));
    assert!(t.verify_checksum_v6(&Ipv6Addr::from(s6), &Ipv6Addr::from(c6)));
    // A UDP reject over IPv6: ICMPv6 administratively prohibited.
    let mut h2 = H::new(&["udp reject"], Settings::default());
    assert_eq!(h2.one(0, ipv6(c6, s6, 17, &u)), drop(reason::RULE_REJECT));
    let out = &h2.out[0];
    let ic = Icmpv6Packet::new_checked(&out[54..]).unwrap();
    assert_eq!((ic.msg_type(), ic.code()), (1, 1));
    assert!(ic.verify_checksum(&Ipv6Addr::from(s6), &Ipv6Addr::from(c6)));
}
