//! Golden cases for the `firewall` stage (owned by the firewall's engineer): its model and its
//! cases, each named `firewall-...`. See `pcap-fixtures/README.md` for how to add one.
//!
//! The model, in short (what the stage must do; the cases below spell out each consequence):
//!
//! * rules are ordered, the first match decides, no match means the default policy;
//! * connection state: `new` for a packet that may open a connection (TCP SYN, UDP, ICMP echo
//!   request) and the originator's packets before any reply; `established` once both
//!   directions were seen; `related` for an ICMP error quoting a tracked connection;
//!   `invalid` otherwise (a SYN-ACK, ACK or echo reply of nothing tracked, an error about
//!   nothing tracked). Only accepted packets open connections;
//! * a full connection table refuses new connections (`firewall.ct_table_full`) while tracked
//!   ones keep flowing;
//! * the first fragment's verdict applies to the rest of its datagram; overlapping fragments
//!   and tiny first fragments are dropped;
//! * `reject` drops the packet and answers a TCP one with a RST (seq = its ack if it had one,
//!   else ack = its seq + length, RST|ACK) and others with ICMP type 3 code 13 quoting the IP
//!   header and 8 bytes; answers leave by the input port, swapped MACs and addresses, IPv4
//!   TTL 64, no DF, id 0, padded to 60 bytes.

use super::{stamp, standard_config, Case, DATA_ROOM, GW_MAC, HOST_MAC, STANDARD_PORTS, T0};
use crate::packet::{proto, tcp_flags as f, Eth, Ip, Ipv4Header, TcpSegment};
use crate::Packet;

const CLIENT: [u8; 4] = [10, 0, 0, 10];
const SERVER: [u8; 4] = [192, 0, 2, 80];
const OTHER: [u8; 4] = [198, 51, 100, 7];

fn eth() -> Eth {
    Eth::new(GW_MAC, HOST_MAC)
}

fn ip(src: [u8; 4], dst: [u8; 4]) -> Ip {
    Ip::V4 { src, dst }
}

fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let i = ip(src, dst);
    eth().ip(
        &i,
        proto::TCP,
        &i.tcp(&TcpSegment::new(sp, dp, seq, ack, flags)),
    )
}

fn tcp_data(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    seq: u32,
    ack: u32,
    data: &[u8],
) -> Vec<u8> {
    let i = ip(src, dst);
    let seg = TcpSegment::new(sp, dp, seq, ack, f::ACK | f::PSH).with_payload(data);
    eth().ip(&i, proto::TCP, &i.tcp(&seg))
}

fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, data: &[u8]) -> Vec<u8> {
    let i = ip(src, dst);
    eth().ip(&i, proto::UDP, &i.udp(sp, dp, data))
}

fn echo(src: [u8; 4], dst: [u8; 4], request: bool, id: u16) -> Vec<u8> {
    let i = ip(src, dst);
    let (p, m) = i.echo(request, id, 1, b"ping");
    eth().ip(&i, p, &m)
}

fn checksum(d: &[u8]) -> u16 {
    crate::packet::internet_checksum(&[d], 0)
}

/// An ICMP error of `ty`/`code` from `from` about the IPv4 frame `about` (quoting its IP
/// header and 8 bytes), addressed to the quoted packet's source.
fn icmp_error(from: [u8; 4], about: &[u8], ty: u8, code: u8) -> Vec<u8> {
    let q = &about[14..14 + 28];
    let to: [u8; 4] = q[12..16].try_into().expect("4 bytes");
    let mut m = vec![ty, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(q);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    eth().ip(&ip(from, to), proto::ICMP, &m)
}

/// IPv4 fragment of a datagram with identification `id`: bytes `data` at `offset` (bytes).
fn fragment(
    src: [u8; 4],
    dst: [u8; 4],
    p: u8,
    id: u16,
    offset: u16,
    more: bool,
    data: &[u8],
) -> Vec<u8> {
    let mut h = Ipv4Header::new(src, dst, p);
    h.df = false;
    h.ident = id;
    h.mf = more;
    h.frag_offset = offset / 8;
    eth().frame(crate::packet::ethertype::IPV4, &h.packet(data))
}

/// The frames leaving by `wanted`, in input order (the model's output).
fn pick(input: &[Packet], wanted: &[usize]) -> Vec<Packet> {
    wanted.iter().map(|&i| input[i].clone()).collect()
}

fn firewall_config(stage: &str, outputs: &[&str]) -> String {
    standard_config(DATA_ROOM, &STANDARD_PORTS, &["inside"], outputs)
        + "[[stage]]\nkind = \"firewall\"\n"
        + stage
        + "\n[[stage]]\nkind = \"forward\"\nroutes = { inside = \"outside\" }\n"
}

const STATEFUL: &str = "default = \"drop\"\ninline = [\n  \"ct invalid drop\",\n  \"ct established,related accept\",\n  \"tcp dport 80 flags S/SAFR ct new accept\",\n  \"udp dport 53 ct new accept\",\n  \"icmp type 8 ct new accept\",\n]\n";

/// A TCP session (handshake, data both ways, FIN teardown) among packets the policy refuses.
fn stateful_tcp() -> Case {
    let (c, s) = (CLIENT, SERVER);
    let frames = vec![
        tcp(c, s, 40000, 80, 1000, 0, f::SYN), // 0 new, accepted (rule 3)
        tcp(s, c, 80, 40000, 5000, 1001, f::SYN | f::ACK), // 1 established
        tcp(c, s, 40000, 80, 1001, 5001, f::ACK), // 2
        tcp_data(c, s, 40000, 80, 1001, 5001, b"GET / HTTP/1.0\r\n\r\n"), // 3
        tcp_data(s, c, 80, 40000, 5001, 1019, b"HTTP/1.0 200 OK\r\n\r\n"), // 4
        tcp(c, s, 40001, 81, 7, 0, f::SYN),    // 5 no rule: default drop
        tcp(OTHER, c, 80, 40002, 9, 8, f::SYN | f::ACK), // 6 reply without request: invalid
        tcp(c, OTHER, 40003, 80, 9, 8, f::ACK), // 7 mid-stream, unknown: invalid
        tcp(c, s, 40000, 80, 1019, 5020, f::FIN | f::ACK), // 8
        tcp(s, c, 80, 40000, 5020, 1020, f::FIN | f::ACK), // 9
        tcp(c, s, 40000, 80, 1020, 5021, f::ACK), // 10
        tcp(c, s, 40000, 80, 999_999, 5021, f::ACK), // 11 far out of window: invalid
    ];
    let input = stamp(frames, T0, 1_000_000, 0xf1_0001);
    let out = pick(&input, &[0, 1, 2, 3, 4, 8, 9, 10]);
    Case::new(
        "firewall-stateful-tcp",
        "A stateful policy (invalid dropped, established accepted, new TCP only to port 80, \
         default drop): a whole TCP session passes both ways; a SYN to port 81 is dropped by \
         the default policy; a SYN-ACK without a SYN, an ACK of no known connection and a \
         segment far outside the window are invalid and dropped by rule 1.",
    )
    .config(firewall_config(STATEFUL, &["outside"]))
    .input("inside", input)
    .expect("outside", out)
    .drops("firewall.rule_drop", 3)
    .drops("firewall.default_drop", 1)
}

/// ICMP errors about tracked and untracked flows; echo with and without a request.
fn icmp_related() -> Case {
    let (c, s) = (CLIENT, SERVER);
    let query = udp(c, s, 5353, 53, b"query");
    let untracked = udp(c, s, 5354, 53, b"never sent");
    let frames = vec![
        query.clone(),                                  // 0 new, accepted
        icmp_error(s, &query, 3, 3),                    // 1 related: accepted
        icmp_error([203, 0, 113, 1], &untracked, 3, 3), // 2 about nothing tracked: invalid
        echo(c, s, true, 77),                           // 3 echo request: new, accepted
        echo(s, c, false, 77),                          // 4 its reply: established
        echo(s, c, false, 78),                          // 5 reply without request: invalid
        udp(s, c, 53, 5353, b"answer"),                 // 6 the answer: established
        udp(s, c, 53, 5355, b"unsolicited"), // 7 new, but only dport 53 is allowed: default drop
    ];
    let input = stamp(frames, T0, 2_000_000, 0xf1_0002);
    let out = pick(&input, &[0, 1, 3, 4, 6]);
    Case::new(
        "firewall-icmp-related",
        "ICMP port unreachable quoting a tracked UDP flow is related and accepted; one quoting \
         a flow never seen is invalid and dropped; an echo reply matches its request, an echo \
         reply without one is invalid; the DNS answer is established, an unsolicited datagram \
         from port 53 is refused by the default policy.",
    )
    .config(firewall_config(STATEFUL, &["outside"]))
    .input("inside", input)
    .expect("outside", out)
    .drops("firewall.rule_drop", 2)
    .drops("firewall.default_drop", 1)
}

/// Fragments in order: the first fragment's verdict applies to the rest; overlaps and tiny
/// first fragments are dropped.
fn fragments() -> Case {
    let (c, s) = (CLIENT, SERVER);
    let dns = |id: u16, dport: u16| {
        let d = ip(c, s).udp(4000, dport, &[0x5a; 40]);
        (d[..24].to_vec(), d[24..].to_vec(), id)
    };
    let (a1, a2, ida) = dns(0x100, 53); // allowed
    let (b1, b2, idb) = dns(0x200, 99); // refused by the rule
    let (o1, o2, ido) = dns(0x300, 53); // allowed, then overlapped
    let mut tiny = ip(c, s).tcp(&TcpSegment::new(40000, 80, 1, 0, f::SYN));
    tiny.truncate(8);
    let frames = vec![
        fragment(c, s, proto::UDP, ida, 0, true, &a1), // 0 first: accepted (rule 1)
        fragment(c, s, proto::UDP, ida, 24, false, &a2), // 1 follows it
        fragment(c, s, proto::UDP, idb, 0, true, &b1), // 2 first: dropped by rule 2
        fragment(c, s, proto::UDP, idb, 24, false, &b2), // 3 denied with it
        fragment(c, s, proto::UDP, ido, 0, true, &o1), // 4 first: accepted
        fragment(c, s, proto::UDP, ido, 16, false, &o2), // 5 overlaps [16, 24): dropped
        fragment(c, s, proto::TCP, 0x400, 0, true, &tiny), // 6 8 bytes of TCP header: tiny
        fragment(c, s, proto::TCP, 0x500, 8, false, &[0; 12]), // 7 TCP at offset 8 (RFC 1858)
    ];
    let input = stamp(frames, T0, 500_000, 0xf1_0003);
    let out = pick(&input, &[0, 1, 4]);
    Case::new(
        "firewall-fragments",
        "Port rules hold for fragmented datagrams: the rest of an accepted datagram follows \
         its first fragment, the rest of a refused one is denied; a fragment overlapping an \
         earlier one, a first fragment too short for the TCP header and a TCP fragment at \
         offset 8 are dropped.",
    )
    .config(firewall_config(
        "default = \"accept\"\ninline = [\"udp dport 53 accept\", \"udp dport 99 drop\"]\n",
        &["outside"],
    ))
    .input("inside", input)
    .expect("outside", out)
    .drops("firewall.rule_drop", 1)
    .drops("firewall.fragment_denied", 1)
    .drops("firewall.fragment_overlap", 1)
    .drops("firewall.fragment_tiny", 2)
}

/// A SYN flood into a full table while established connections keep flowing.
fn syn_flood() -> Case {
    let (c, s) = (CLIENT, SERVER);
    let mut frames = Vec::new();
    let mut out = Vec::new();
    // Three established sessions.
    for p in 0..3u16 {
        let sp = 41000 + p;
        for fr in [
            tcp(c, s, sp, 80, 100, 0, f::SYN),
            tcp(s, c, 80, sp, 900, 101, f::SYN | f::ACK),
            tcp(c, s, sp, 80, 101, 901, f::ACK),
        ] {
            out.push(frames.len());
            frames.push(fr);
        }
    }
    // 20 spoofed SYNs: 5 fit (capacity 8), 15 find the table full. Established traffic
    // between them keeps flowing.
    for n in 0..20u8 {
        if n < 5 {
            out.push(frames.len());
        }
        frames.push(tcp(
            [172, 16, 0, n + 1],
            s,
            50000,
            80,
            u32::from(n),
            0,
            f::SYN,
        ));
        if n % 5 == 4 {
            for p in 0..3u16 {
                out.push(frames.len());
                frames.push(tcp_data(c, s, 41000 + p, 80, 101, 901, &[n; 4]));
            }
        }
    }
    let input = stamp(frames, T0, 100_000, 0xf1_0004);
    let out = pick(&input, &out);
    Case::new(
        "firewall-syn-flood",
        "conntrack_capacity = 8: three established sessions, then 20 SYNs from spoofed \
         sources: five fill the table, fifteen are dropped as ct_table_full, and the \
         established sessions' data keeps flowing between them.",
    )
    .config(firewall_config(
        "default = \"drop\"\nconntrack_capacity = 8\ninline = [\"ct invalid drop\", \"ct established accept\", \"tcp dport 80 ct new accept\"]\n",
        &["outside"],
    ))
    .input("inside", input)
    .expect("outside", out)
    .drops("firewall.ct_table_full", 15)
    .layouts(
        &["rtc-1", "pipeline-2"],
        "the table capacity is per worker: two workers hold twice as many connections",
    )
}

/// `reject`: a TCP RST and an ICMP unreachable back out of the input port.
fn reject() -> Case {
    let (c, s) = (CLIENT, SERVER);
    let syn = tcp(c, s, 40000, 22, 1000, 0, f::SYN);
    let ack = tcp(c, s, 40001, 22, 2000, 3000, f::ACK);
    let dgram = udp(c, s, 4000, 9, b"discard me");
    let frames = vec![syn, ack, dgram, udp(c, s, 4000, 53, b"fine")];
    let input = stamp(frames, T0, 1_000_000, 0xf1_0005);
    // The model's answers.
    let back = Eth::new(HOST_MAC, GW_MAC);
    let v4 = |p: u8, l4: &[u8]| {
        let mut h = Ipv4Header::new(s, c, p);
        h.df = false;
        back.frame(crate::packet::ethertype::IPV4, &h.packet(l4))
    };
    let rst = |sp: u16, seq: u32, ack: u32, fl: u8| {
        let seg = TcpSegment {
            window: 0,
            ..TcpSegment::new(22, sp, seq, ack, fl)
        };
        v4(proto::TCP, &ip(s, c).tcp(&seg))
    };
    let mut unreach = vec![3, 13, 0, 0, 0, 0, 0, 0];
    unreach.extend_from_slice(&input[2].data[14..14 + 28]);
    let cs = checksum(&unreach);
    unreach[2..4].copy_from_slice(&cs.to_be_bytes());
    let answers = vec![
        Packet {
            ts_ns: input[0].ts_ns,
            data: rst(40000, 0, 1001, f::RST | f::ACK),
        },
        Packet {
            ts_ns: input[1].ts_ns,
            data: rst(40001, 3000, 0, f::RST),
        },
        Packet {
            ts_ns: input[2].ts_ns,
            data: v4(proto::ICMP, &unreach),
        },
    ];
    Case::new(
        "firewall-reject",
        "reject answers a SYN with RST|ACK acking it, an ACK segment with a RST at its ack \
         number, and a UDP datagram with ICMP administratively prohibited quoting it; the \
         answers leave by the input port, the rejected packets are dropped, others pass.",
    )
    .config(firewall_config(
        "default = \"accept\"\ninline = [\"tcp dport 22 reject\", \"udp dport 9 reject\"]\n",
        &["outside", "inside"],
    ))
    .input("inside", input.clone())
    .expect("outside", pick(&input, &[3]))
    .expect("inside", answers)
    .drops("firewall.rule_reject", 3)
    .created(3)
}

/// The firewall's golden cases.
pub fn cases() -> Vec<Case> {
    vec![
        stateful_tcp(),
        icmp_related(),
        fragments(),
        syn_flood(),
        reject(),
    ]
}
