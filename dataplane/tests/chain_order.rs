//! A stateful firewall in front of a NAT44, through the real engine (`build::run` with replay
//! files): with `[chain] order` giving the outside port the order `nat44, firewall, forward`
//! (netfilter's PREROUTING translation before its filter), the firewall sees a reply with the
//! inside tuple its connection was tracked under, and lets it in as `established`; without it
//! the firewall sees the public tuple and drops the reply as `invalid`. A reject of a packet the
//! NAT translated answers from the public address and port, quoting the packet as it was sent.
//! Packets are built and read back here, checksums recomputed from scratch.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use dataplane::build::{self, ReplayFiles};
use dataplane::config::Config;
use pmd::pcap::{PcapReader, PcapWriter, LINKTYPE_ETHERNET};

mod common;
use common::{csum, pseudo};

const T0: u64 = 1_700_000_000_000_000_000;
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const RST: u8 = 0x04;

fn ip(s: &str) -> [u8; 4] {
    s.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

/// An Ethernet/IPv4 frame around `l4`, with a right header checksum.
fn frame(s: [u8; 4], d: [u8; 4], proto: u8, l4: Vec<u8>) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0xaa]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let mut h = vec![0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&s);
    h[16..20].copy_from_slice(&d);
    let c = csum(&h, 0);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend(h);
    f.extend(l4);
    f
}

/// An Ethernet/IPv4/TCP frame with right checksums.
fn tcp(src: &str, sp: u16, dst: &str, dp: u16, flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let mut l4 = vec![0u8; 20];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4[4..8].copy_from_slice(&seq.to_be_bytes());
    l4[8..12].copy_from_slice(&ack.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    l4[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let c = csum(&l4, pseudo(s, d, 6, l4.len()));
    l4[16..18].copy_from_slice(&c.to_be_bytes());
    frame(s, d, 6, l4)
}

/// An Ethernet/IPv4/UDP frame with right checksums.
fn udp(src: &str, sp: u16, dst: &str, dp: u16) -> Vec<u8> {
    let (s, d) = (ip(src), ip(dst));
    let mut l4 = vec![0u8; 8];
    l4.extend_from_slice(b"query");
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    let len = l4.len() as u16;
    l4[4..6].copy_from_slice(&len.to_be_bytes());
    let c = csum(&l4, pseudo(s, d, 17, l4.len()));
    l4[6..8].copy_from_slice(&c.to_be_bytes());
    frame(s, d, 17, l4)
}

/// (source, source port, destination, destination port, flags) of a TCP frame, after
/// checking its IPv4 and TCP checksums.
fn decode(f: &[u8]) -> ([u8; 4], u16, [u8; 4], u16, u8) {
    let h = &f[14..34];
    assert_eq!(csum(h, 0), 0, "IPv4 checksum");
    assert_eq!(h[9], 6, "TCP");
    let (s, d): ([u8; 4], [u8; 4]) = (h[12..16].try_into().unwrap(), h[16..20].try_into().unwrap());
    let l4 = &f[34..14 + usize::from(u16::from_be_bytes([h[2], h[3]]))];
    assert_eq!(csum(l4, pseudo(s, d, 6, l4.len())), 0, "TCP checksum");
    let port = |i: usize| u16::from_be_bytes([l4[i], l4[i + 1]]);
    (s, port(0), d, port(2), l4[13])
}

fn write(path: &Path, frames: &[(u64, Vec<u8>)]) {
    let mut w = PcapWriter::create(path, LINKTYPE_ETHERNET, 65535, true).unwrap();
    for (ts, f) in frames {
        w.write(*ts, f, f.len() as u32).unwrap();
    }
    w.flush().unwrap();
}

fn read(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        v.push(rec.data.to_vec());
    }
    v
}

const STAGES: &str = r#"
[[port]]
name = "inside"
kind = "pcap"
mac = "02:00:00:00:00:01"

[[port]]
name = "outside"
kind = "pcap"
mac = "02:00:00:00:00:02"

[[stage]]
kind = "firewall"
default = "drop"
inline = [
  "ct invalid drop",
  "ct established,related accept",
  "in inside ct new accept",
  "in outside tcp dport 22 reject",
  "in outside udp dport 53 reject",
]

[[stage]]
kind = "nat44"
inside = ["inside"]
outside = "outside"
pool = ["198.51.100.1/32"]
[[stage.static]]
proto = "tcp"
outside = "198.51.100.1:80"
inside = "10.0.0.2:8080"
[[stage.static]]
proto = "tcp"
outside = "198.51.100.1:81"
inside = "10.0.0.3:22"
[[stage.static]]
proto = "udp"
outside = "198.51.100.1:553"
inside = "10.0.0.3:53"

[[stage]]
kind = "forward"
routes = { inside = "outside", outside = "inside" }
"#;

const ORDER: &str = "[chain.order]\noutside = [\"nat44\", \"firewall\", \"forward\"]\n";

/// What left each port, and the firewall's drops by reason.
struct Run {
    outside: Vec<Vec<u8>>,
    inside: Vec<Vec<u8>>,
    firewall_drops: Vec<(String, u64)>,
}

fn replay(tag: &str, engine: &str, chain: &str) -> Run {
    let dir = std::env::temp_dir().join(format!("chain-order-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A subscriber's SYN out through its static mapping, the reply; then a stranger's SYN to
    // the mapping, which the NAT would forward. Replay reads the ports in turn, the inside one
    // first, so the SYN is seen before the reply.
    let ms = 1_000_000;
    let inside = [(T0, tcp("10.0.0.2", 8080, "203.0.113.1", 443, SYN, 100, 0))];
    // Two more strangers reach inside ports the policy rejects from outside.
    let outside = [
        (
            T0 + ms,
            tcp("203.0.113.1", 443, "198.51.100.1", 80, SYN | ACK, 500, 101),
        ),
        (
            T0 + 3 * ms,
            tcp("203.0.113.9", 5555, "198.51.100.1", 80, SYN, 900, 0),
        ),
        (
            T0 + 4 * ms,
            tcp("203.0.113.9", 5556, "198.51.100.1", 81, SYN, 700, 0),
        ),
        (T0 + 5 * ms, udp("203.0.113.9", 5557, "198.51.100.1", 553)),
    ];
    let (ip_in, ip_out) = (dir.join("in-inside.pcap"), dir.join("in-outside.pcap"));
    write(&ip_in, &inside);
    write(&ip_out, &outside);
    let text = format!(
        "[memory]\nbuffers = 16384\nhugepages = \"never\"\n[engine]\n{engine}\n[replay]\ninputs = [\"inside\", \"outside\"]\noutputs = [\"outside\", \"inside\"]\n{chain}{STAGES}"
    );
    let cfg = Config::parse("order.toml", &text, &dir).unwrap();
    let (op_out, op_in) = (dir.join("out-outside.pcap"), dir.join("out-inside.pcap"));
    let files = ReplayFiles {
        inputs: vec![ip_in.display().to_string(), ip_out.display().to_string()],
        outputs: vec![op_out.display().to_string(), op_in.display().to_string()],
    };
    let report = build::run(&cfg, Some(&files), &AtomicBool::new(false)).unwrap();
    assert!(report.balanced(), "{tag}: {}", report.render());
    assert_eq!(report.received(), 5, "{tag}");
    let mut firewall_drops: Vec<(String, u64)> = Vec::new();
    for w in &report.workers {
        for (st, r, n) in &w.stage_drops {
            if st == "firewall" && *n > 0 {
                match firewall_drops.iter_mut().find(|(x, _)| x == r) {
                    Some(d) => d.1 += n,
                    None => firewall_drops.push((r.clone(), *n)),
                }
            }
        }
    }
    let run = Run {
        outside: read(&op_out),
        inside: read(&op_in),
        firewall_drops,
    };
    let _ = std::fs::remove_dir_all(&dir);
    run
}

const LAYOUTS: [(&str, &str); 2] = [
    ("rtc-1", "layout = \"run-to-completion\"\nworkers = [0]"),
    ("rtc-2", "layout = \"run-to-completion\"\nworkers = [0, 1]"),
];

#[test]
fn with_the_outside_order_replies_meet_the_firewall_with_the_inside_tuple() {
    for (lname, engine) in LAYOUTS {
        let r = replay(&format!("order-{lname}"), engine, ORDER);
        // Out: the SYN, translated to the static mapping, and the two rejects' answers.
        assert_eq!(r.outside.len(), 3, "{lname}");
        let syn = r.outside.iter().find(|f| f[23] == 6 && f[34 + 13] == SYN);
        let (s, sp, d, dp, _) = decode(syn.expect("the SYN"));
        assert_eq!(
            (s, sp, d, dp),
            (ip("198.51.100.1"), 80, ip("203.0.113.1"), 443),
            "{lname}"
        );
        // In: the SYN-ACK, translated back and accepted as established; the stranger's SYN
        // to 198.51.100.1:80, translated by the NAT, is a new connection from outside: the
        // default drops it.
        assert_eq!(r.inside.len(), 1, "{lname}");
        let (s, sp, d, dp, fl) = decode(&r.inside[0]);
        assert_eq!(
            (s, sp, d, dp, fl),
            (ip("203.0.113.1"), 443, ip("10.0.0.2"), 8080, SYN | ACK),
            "{lname}"
        );
        // The SYN to 10.0.0.3:22 (sent to 198.51.100.1:81) is answered by a RST from where
        // it was sent, never from the inside address.
        let rst = r
            .outside
            .iter()
            .find(|f| f[23] == 6 && f[34 + 13] & RST != 0);
        let (s, sp, d, dp, fl) = decode(rst.expect("a RST"));
        assert_eq!(
            (s, sp, d, dp, fl),
            (ip("198.51.100.1"), 81, ip("203.0.113.9"), 5556, RST | ACK),
            "{lname}"
        );
        // The datagram to 10.0.0.3:53 (sent to 198.51.100.1:553): an ICMP unreachable,
        // administratively prohibited, from 198.51.100.1, quoting the datagram exactly as it
        // was sent (addresses, port and checksums put back).
        let icmp = r
            .outside
            .iter()
            .find(|f| f[23] == 1)
            .expect("an ICMP error");
        assert_eq!(csum(&icmp[14..34], 0), 0, "{lname}: IPv4 checksum");
        assert_eq!(icmp[26..30], ip("198.51.100.1"), "{lname}: source");
        assert_eq!(icmp[30..34], ip("203.0.113.9"), "{lname}: destination");
        let tot = 14 + usize::from(u16::from_be_bytes([icmp[16], icmp[17]]));
        assert_eq!(csum(&icmp[34..tot], 0), 0, "{lname}: ICMP checksum");
        assert_eq!((icmp[34], icmp[35]), (3, 13), "{lname}");
        let sent = udp("203.0.113.9", 5557, "198.51.100.1", 553);
        assert_eq!(icmp[42..70], sent[14..42], "{lname}: the quote");
        let mut drops = r.firewall_drops;
        drops.sort();
        assert_eq!(
            drops,
            [
                ("default_drop".to_string(), 1),
                ("rule_reject".to_string(), 2)
            ],
            "{lname}"
        );
    }
}

#[test]
fn without_it_the_firewall_sees_the_public_tuple_and_drops_the_reply() {
    for (lname, engine) in LAYOUTS {
        let r = replay(&format!("plain-{lname}"), engine, "");
        assert_eq!(r.outside.len(), 1, "{lname}");
        // The SYN-ACK to 198.51.100.1:80 is no tracked connection (`ct invalid drop`); the
        // strangers' packets are new ones from outside to public ports no rule names (the
        // default drops them).
        assert!(r.inside.is_empty(), "{lname}");
        let mut drops = r.firewall_drops;
        drops.sort();
        assert_eq!(
            drops,
            [
                ("default_drop".to_string(), 3),
                ("rule_drop".to_string(), 1)
            ],
            "{lname}"
        );
    }
}

#[test]
fn bad_orders_are_refused_with_file_line_and_key() {
    let base = "[memory]\nhugepages = \"never\"\n";
    let cases = [
        (
            "[chain.order]\noutside = [\"nat44\", \"forward\"]\n",
            "expected each stage once",
        ),
        (
            "[chain.order]\noutside = [\"nat44\", \"nat44\", \"forward\"]\n",
            "named more often",
        ),
        (
            "[chain.order]\noutside = [\"router\", \"firewall\", \"forward\"]\n",
            "no stage of kind \"router\"",
        ),
        (
            "[chain.order]\nwan = [\"nat44\", \"firewall\", \"forward\"]\n",
            "no port named \"wan\"",
        ),
        (
            "[engine]\nlayout = \"pipeline\"\nworkers = [0, 1]\n[chain.order]\noutside = [\"nat44\", \"firewall\", \"forward\"]\n",
            "run-to-completion",
        ),
    ];
    for (chain, want) in cases {
        let text = format!("{base}{chain}{STAGES}");
        let e = Config::parse("order.toml", &text, Path::new(".")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains(want), "{s}");
        assert!(s.contains("order.toml:"), "{s}");
        assert!(e.key.starts_with("chain.order."), "{s}");
    }
}

/// Replay reads several captures merged by capture time: the subscriber's ACK (inside, 2 ms)
/// comes after the SYN-ACK (outside, 1 ms), so the firewall has seen the reply and passes the
/// ACK as established. Read port by port, the ACK would come first and be `invalid`.
#[test]
fn captures_of_both_sides_replay_in_capture_time_order() {
    for (lname, engine) in LAYOUTS {
        let dir = std::env::temp_dir().join(format!("chain-merge-{}-{lname}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ms = 1_000_000;
        let inside = [
            (T0, tcp("10.0.0.2", 8080, "203.0.113.1", 443, SYN, 100, 0)),
            (
                T0 + 2 * ms,
                tcp("10.0.0.2", 8080, "203.0.113.1", 443, ACK, 101, 501),
            ),
        ];
        let outside = [(
            T0 + ms,
            tcp("203.0.113.1", 443, "198.51.100.1", 80, SYN | ACK, 500, 101),
        )];
        let (ip_in, ip_out) = (dir.join("in-inside.pcap"), dir.join("in-outside.pcap"));
        write(&ip_in, &inside);
        write(&ip_out, &outside);
        let text = format!(
            "[memory]\nbuffers = 16384\nhugepages = \"never\"\n[engine]\n{engine}\n[replay]\ninputs = [\"inside\", \"outside\"]\noutputs = [\"outside\", \"inside\"]\n{ORDER}{STAGES}"
        );
        let cfg = Config::parse("merge.toml", &text, &dir).unwrap();
        let (op_out, op_in) = (dir.join("out-outside.pcap"), dir.join("out-inside.pcap"));
        let files = ReplayFiles {
            inputs: vec![ip_in.display().to_string(), ip_out.display().to_string()],
            outputs: vec![op_out.display().to_string(), op_in.display().to_string()],
        };
        let report = build::run(&cfg, Some(&files), &AtomicBool::new(false)).unwrap();
        assert!(report.balanced(), "{lname}: {}", report.render());
        let out = read(&op_out);
        let flags: Vec<u8> = out.iter().map(|f| decode(f).4).collect();
        assert_eq!(
            flags,
            [SYN, ACK],
            "{lname}: both of the subscriber's segments leave"
        );
        let inside_out = read(&op_in);
        assert_eq!(inside_out.len(), 1, "{lname}");
        assert_eq!(decode(&inside_out[0]).4, SYN | ACK, "{lname}");
        assert_eq!(
            report.drops().total() + report.stage_drop_total(),
            0,
            "{lname}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
