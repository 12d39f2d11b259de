//! Firewall rules: what a rule matches, what it does, and the two file formats that hold them.
//!
//! A rule is a conjunction of optional matches over one packet's [`PacketKey`]; the rule list is
//! ordered and the first rule that matches decides. [`Rule::matches`] is the definition of
//! "matches" that every classifier must agree with: the linear scan in [`linear_first_match`]
//! is the test oracle for the fast classifier in `classifier.rs`.
//!
//! Addresses are kept as `u128` with IPv4 addresses in the *top* 32 bits, so one prefix test
//! (`(addr ^ rule) & mask == 0`) serves both families and a `/24` is a `/24` in either.
//!
//! # The `rules` text format
//!
//! One rule per line; `#` starts a comment; blank lines are ignored. A rule is a list of
//! matches followed by exactly one action, all separated by whitespace:
//!
//! ```text
//! # matches (all optional, any order, each at most once)      action (last word)
//! in PORT                 input port, by name
//! ip | ip6                address family
//! saddr PREFIX            source prefix: 10.0.0.0/8, 10.1.2.3, 2001:db8::/32, ::1
//! daddr PREFIX            destination prefix
//! proto NAME|NUMBER       tcp, udp, icmp, icmpv6, sctp, gre, esp, ah, or 0-255
//! tcp | udp | icmp | icmpv6   shorthand for `proto NAME`
//! sport N | N-M           source port or inclusive range
//! dport N | N-M           destination port or inclusive range
//! type N                  ICMP/ICMPv6 type
//! code N                  ICMP/ICMPv6 code
//! flags F[/M]             TCP flags: those in F set, among those in M (M defaults to F);
//!                         letters F S R P A U E C (fin syn rst psh ack urg ece cwr),
//!                         e.g. `flags S/SA` is a SYN without ACK
//! ct STATE[,STATE...]     connection state: new, established, related, invalid
//!                         accept | drop | reject
//! ```
//!
//! Example:
//!
//! ```text
//! ct established,related accept
//! ct invalid drop
//! in wan tcp dport 22 saddr 192.0.2.0/24 ct new accept
//! ip6 icmpv6 type 128 accept
//! tcp dport 1-1023 reject
//! ```
//!
//! `reject` answers a TCP packet with a RST and anything else with an ICMP (or ICMPv6)
//! administratively-prohibited unreachable, rate-limited per worker; the packet itself is
//! dropped. Port matches only match packets that carry ports (TCP, UDP, UDP-Lite, SCTP);
//! `type`/`code` only match ICMP. A bad line stops the load with `file:line: why`.
//!
//! # ClassBench files
//!
//! Loaded as-is (`../shared/corpus/classbench/FORMAT.md`): `@sa/len da/len sp : sp dp : dp
//! 0xPP/0xMM`, optionally followed by the 6th `flags/mask` column of raw `db_generator`
//! output, which ClassBench leaves undefined and which is ignored (treated as a wildcard).
//! ClassBench rules carry no action: rule *n* (1-based) gets id *n*, and every rule accepts
//! (the classifier's answer, the rule id, is what the traces check).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::wire::ip_proto;

/// Connection-state bits for [`Rule::ct`] and [`PacketKey::ct`].
pub mod ct {
    /// First packet(s) of a connection, before any reply.
    pub const NEW: u8 = 1;
    /// A connection that has seen traffic both ways.
    pub const ESTABLISHED: u8 = 2;
    /// An ICMP error about a tracked connection.
    pub const RELATED: u8 = 4;
    /// Does not fit the tracked state (a reply without a request, out of window).
    pub const INVALID: u8 = 8;
    /// Any state.
    pub const ANY: u8 = 0x0f;
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Let the packet through.
    Accept,
    /// Drop it silently.
    Drop,
    /// Drop it and answer with a TCP RST or an ICMP unreachable (rate-limited).
    Reject,
}

/// The fields a rule can match on, taken from one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketKey {
    /// Source address (IPv4 in the top 32 bits).
    pub src: u128,
    /// Destination address (IPv4 in the top 32 bits).
    pub dst: u128,
    /// Source port (0 when the packet has none).
    pub sport: u16,
    /// Destination port (0 when the packet has none).
    pub dport: u16,
    /// IP protocol / upper-layer header.
    pub proto: u8,
    /// True for IPv6.
    pub v6: bool,
    /// True when `sport`/`dport` are real ports.
    pub has_ports: bool,
    /// True when `icmp_type`/`icmp_code` are real (an ICMP or ICMPv6 header was read).
    pub has_icmp: bool,
    /// ICMP type.
    pub icmp_type: u8,
    /// ICMP code.
    pub icmp_code: u8,
    /// TCP flags (0 when not TCP).
    pub tcp_flags: u8,
    /// Connection state: one of the [`ct`] bits.
    pub ct: u8,
    /// Input port.
    pub in_port: u16,
}

/// One rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable identity: counters and deletion use it (1-based line order for loaded files).
    pub id: u32,
    /// Source prefix (IPv4 in the top 32 bits).
    pub src: u128,
    /// Source prefix length in the 128-bit space (IPv4 /8 is 8 too).
    pub src_len: u8,
    /// Destination prefix.
    pub dst: u128,
    /// Destination prefix length.
    pub dst_len: u8,
    /// `None`: either family; `Some(true)`: IPv6 only.
    pub v6: Option<bool>,
    /// Inclusive source port range; `(0, 65535)` is any (and also matches port-less packets).
    pub sport: (u16, u16),
    /// Inclusive destination port range.
    pub dport: (u16, u16),
    /// Protocol value and mask: matches when `proto & mask == value & mask`.
    pub proto: (u8, u8),
    /// ICMP type, if matched.
    pub icmp_type: Option<u8>,
    /// ICMP code, if matched.
    pub icmp_code: Option<u8>,
    /// TCP flags value and mask.
    pub tcp_flags: (u8, u8),
    /// Accepted connection states ([`ct`] bits).
    pub ct: u8,
    /// Input port, if matched.
    pub in_port: Option<u16>,
    /// What it does.
    pub action: Action,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            id: 0,
            src: 0,
            src_len: 0,
            dst: 0,
            dst_len: 0,
            v6: None,
            sport: (0, 65535),
            dport: (0, 65535),
            proto: (0, 0),
            icmp_type: None,
            icmp_code: None,
            tcp_flags: (0, 0),
            ct: ct::ANY,
            in_port: None,
            action: Action::Accept,
        }
    }
}

/// The mask of a prefix length in the 128-bit address space.
#[inline(always)]
pub fn prefix_mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// An IPv4 address in the 128-bit space.
#[inline(always)]
pub fn v4(a: [u8; 4]) -> u128 {
    u128::from(u32::from_be_bytes(a)) << 96
}

/// Ports of any range match a port-less packet only when the range is the whole space.
#[inline(always)]
fn port_ok(p: u16, (lo, hi): (u16, u16), has_ports: bool) -> bool {
    if has_ports {
        lo <= p && p <= hi
    } else {
        lo == 0 && hi == 65535
    }
}

impl Rule {
    /// True if the rule matches the packet (the definition every classifier agrees with).
    #[inline]
    pub fn matches(&self, k: &PacketKey) -> bool {
        let m = prefix_mask(self.src_len);
        let d = prefix_mask(self.dst_len);
        (k.src ^ self.src) & m == 0
            && (k.dst ^ self.dst) & d == 0
            && self.v6.is_none_or(|v| v == k.v6)
            && k.proto & self.proto.1 == self.proto.0 & self.proto.1
            && port_ok(k.sport, self.sport, k.has_ports)
            && port_ok(k.dport, self.dport, k.has_ports)
            && self
                .icmp_type
                .is_none_or(|t| k.has_icmp && t == k.icmp_type)
            && self
                .icmp_code
                .is_none_or(|c| k.has_icmp && c == k.icmp_code)
            && k.tcp_flags & self.tcp_flags.1 == self.tcp_flags.0
            && self.ct & k.ct != 0
            && self.in_port.is_none_or(|p| p == k.in_port)
    }

    /// True if the rule only matches exact protocol values.
    pub fn proto_exact(&self) -> bool {
        self.proto.1 == 0xff
    }
}

/// The first rule of `rules` (in order) that matches `k`: the oracle.
pub fn linear_first_match<'a>(rules: &'a [Rule], k: &PacketKey) -> Option<&'a Rule> {
    rules.iter().find(|r| r.matches(k))
}

/// A rule file that could not be loaded: `file:line: why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// File name.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.msg)
    }
}

impl std::error::Error for RuleError {}

/// Which format a rule file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The text format of this module's documentation.
    Rules,
    /// ClassBench (NSLab 5-field or raw 6-field).
    ClassBench,
}

/// Parses a prefix `a.b.c.d[/n]` or `x::y[/n]`: (address, length in 128-bit space, is v6).
pub fn parse_prefix(s: &str) -> Result<(u128, u8, bool), String> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let (addr, max, v6) = if let Ok(x) = a.parse::<Ipv4Addr>() {
        (v4(x.octets()), 32u8, false)
    } else if let Ok(x) = a.parse::<Ipv6Addr>() {
        (u128::from_be_bytes(x.octets()), 128u8, true)
    } else {
        return Err(format!("{a:?} is not an IPv4 or IPv6 address"));
    };
    let len = match l {
        None => max,
        Some(l) => match l.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("{l:?} is not a prefix length from 0 to {max}")),
        },
    };
    if addr & !prefix_mask(len) != 0 {
        return Err(format!("{s} has host bits set"));
    }
    Ok((addr, len, v6))
}

fn parse_u8(s: &str, what: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .map_err(|_| format!("{what}: {s:?} is not a number from 0 to 255"))
}

fn parse_range(s: &str, what: &str) -> Result<(u16, u16), String> {
    let p = |x: &str| {
        x.parse::<u16>()
            .map_err(|_| format!("{what}: {x:?} is not a port from 0 to 65535"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (p(a)?, p(b)?),
        None => {
            let v = p(s)?;
            (v, v)
        }
    };
    if lo > hi {
        return Err(format!("{what}: range {s} is empty"));
    }
    Ok((lo, hi))
}

fn proto_by_name(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => ip_proto::TCP,
        "udp" => ip_proto::UDP,
        "icmp" => ip_proto::ICMP,
        "icmpv6" => ip_proto::ICMPV6,
        "sctp" => ip_proto::SCTP,
        "udplite" => ip_proto::UDPLITE,
        "gre" => ip_proto::GRE,
        "esp" => ip_proto::ESP,
        "ah" => ip_proto::AH,
        _ => return None,
    })
}

fn parse_flags(s: &str) -> Result<u8, String> {
    let mut v = 0u8;
    for c in s.chars() {
        v |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            _ => return Err(format!("flags: {c:?} is not one of F S R P A U E C")),
        };
    }
    Ok(v)
}

/// Parses one line of the text format (`None` for a blank or comment line). `port` resolves
/// an input port name.
pub fn parse_rule_line(
    line: &str,
    id: u32,
    port: &dyn Fn(&str) -> Option<u16>,
) -> Result<Option<Rule>, String> {
    let line = line.split('#').next().unwrap_or("");
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((last, matches)) = words.split_last() else {
        return Ok(None);
    };
    let mut r = Rule {
        id,
        action: match *last {
            "accept" => Action::Accept,
            "drop" => Action::Drop,
            "reject" => Action::Reject,
            w => {
                return Err(format!(
                    "a rule ends with accept, drop or reject, not {w:?}"
                ))
            }
        },
        ..Rule::default()
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut fam: Option<bool> = None;
    let mut set_fam = |v6: bool, what: &str| -> Result<(), String> {
        match fam {
            Some(f) if f != v6 => Err(format!("{what} mixes IPv4 and IPv6")),
            _ => {
                fam = Some(v6);
                Ok(())
            }
        }
    };
    let mut i = 0;
    while i < matches.len() {
        let w = matches[i];
        let key = match w {
            "tcp" | "udp" | "icmp" | "icmpv6" => "proto",
            "ip" | "ip6" => "family",
            _ => w,
        };
        if seen.contains(&key) {
            return Err(format!("{key} is given twice"));
        }
        seen.push(key);
        let mut arg = || -> Result<&str, String> {
            i += 1;
            matches
                .get(i)
                .copied()
                .ok_or_else(|| format!("{w} needs a value"))
        };
        match w {
            "ip" => set_fam(false, w)?,
            "ip6" => set_fam(true, w)?,
            "tcp" | "udp" | "icmp" | "icmpv6" => {
                r.proto = (proto_by_name(w).unwrap_or(0), 0xff);
                if w == "icmpv6" {
                    set_fam(true, w)?;
                }
            }
            "proto" => {
                let a = arg()?;
                let p = match proto_by_name(a) {
                    Some(p) => p,
                    None => parse_u8(a, "proto").map_err(|_| {
                        format!("proto: {a:?} is not tcp, udp, icmp, icmpv6, sctp, udplite, gre, esp, ah or 0-255")
                    })?,
                };
                r.proto = (p, 0xff);
            }
            "in" => {
                let a = arg()?;
                r.in_port = Some(port(a).ok_or_else(|| format!("in: no port named {a:?}"))?);
            }
            "saddr" | "daddr" => {
                let (a, l, v6) = parse_prefix(arg()?).map_err(|e| format!("{w}: {e}"))?;
                set_fam(v6, w)?;
                if w == "saddr" {
                    (r.src, r.src_len) = (a, l);
                } else {
                    (r.dst, r.dst_len) = (a, l);
                }
            }
            "sport" => r.sport = parse_range(arg()?, w)?,
            "dport" => r.dport = parse_range(arg()?, w)?,
            "type" => r.icmp_type = Some(parse_u8(arg()?, w)?),
            "code" => r.icmp_code = Some(parse_u8(arg()?, w)?),
            "flags" => {
                let a = arg()?;
                let (v, m) = match a.split_once('/') {
                    Some((v, m)) => (parse_flags(v)?, parse_flags(m)?),
                    None => {
                        let v = parse_flags(a)?;
                        (v, v)
                    }
                };
                if v & !m != 0 {
                    return Err(format!("flags: {a} sets flags outside its mask"));
                }
                r.tcp_flags = (v, m);
            }
            "ct" => {
                let mut bits = 0;
                for s in arg()?.split(',') {
                    bits |= match s {
                        "new" => ct::NEW,
                        "established" => ct::ESTABLISHED,
                        "related" => ct::RELATED,
                        "invalid" => ct::INVALID,
                        _ => return Err(format!(
                            "ct: {s:?} is not new, established, related or invalid"
                        )),
                    };
                }
                r.ct = bits;
            }
            _ => {
                return Err(format!(
                    "unknown word {w:?} (expected in, ip, ip6, saddr, daddr, proto, tcp, udp, icmp, icmpv6, sport, dport, type, code, flags, ct, then accept, drop or reject)"
                ))
            }
        }
        i += 1;
    }
    r.v6 = fam;
    let has_ports = r.sport != (0, 65535) || r.dport != (0, 65535);
    if has_ports
        && !(r.proto.1 == 0xff
            && matches!(
                r.proto.0,
                ip_proto::TCP | ip_proto::UDP | ip_proto::UDPLITE | ip_proto::SCTP
            ))
    {
        return Err("sport/dport need proto tcp, udp, udplite or sctp".into());
    }
    if (r.icmp_type.is_some() || r.icmp_code.is_some())
        && !(r.proto.1 == 0xff && matches!(r.proto.0, ip_proto::ICMP | ip_proto::ICMPV6))
    {
        return Err("type/code need proto icmp or icmpv6".into());
    }
    if r.tcp_flags.1 != 0 && r.proto != (ip_proto::TCP, 0xff) {
        return Err("flags need proto tcp".into());
    }
    if r.proto == (ip_proto::ICMP, 0xff) && r.v6 == Some(true) {
        return Err("icmp is IPv4; use icmpv6 with IPv6".into());
    }
    Ok(Some(r))
}

/// Parses one ClassBench line (`None` for a blank line).
pub fn parse_classbench_line(line: &str, id: u32) -> Result<Option<Rule>, String> {
    let t = line.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let Some(t) = t.strip_prefix('@') else {
        return Err("a ClassBench rule starts with '@'".into());
    };
    let w: Vec<&str> = t.split_whitespace().collect();
    if w.len() != 9 && w.len() != 10 {
        return Err(format!(
            "expected 9 or 10 fields (sa/len da/len sp : sp dp : dp proto/mask [flags/mask]), found {}",
            w.len()
        ));
    }
    let (src, src_len, v6a) = parse_prefix(w[0]).map_err(|e| format!("source: {e}"))?;
    let (dst, dst_len, v6b) = parse_prefix(w[1]).map_err(|e| format!("destination: {e}"))?;
    if v6a || v6b {
        return Err("ClassBench addresses are IPv4".into());
    }
    if w[3] != ":" || w[6] != ":" {
        return Err("port ranges are written `lo : hi`".into());
    }
    let port = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("{s:?} is not a port from 0 to 65535"))
    };
    let sport = (port(w[2])?, port(w[4])?);
    let dport = (port(w[5])?, port(w[7])?);
    if sport.0 > sport.1 || dport.0 > dport.1 {
        return Err("empty port range".into());
    }
    let hex = |s: &str| -> Result<u8, String> {
        let h = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .ok_or_else(|| format!("{s:?} is not 0xHH"))?;
        u8::from_str_radix(h, 16).map_err(|_| format!("{s:?} is not 0xHH"))
    };
    let (pv, pm) = w[8]
        .split_once('/')
        .ok_or_else(|| format!("protocol {:?} is not 0xVV/0xMM", w[8]))?;
    let proto = (hex(pv)?, hex(pm)?);
    if let Some(f) = w.get(9) {
        let ok = f.split_once('/').is_some_and(|(a, b)| {
            [a, b].iter().all(|x| {
                x.strip_prefix("0x")
                    .is_some_and(|h| u16::from_str_radix(h, 16).is_ok())
            })
        });
        if !ok {
            return Err(format!("flags {f:?} is not 0xVVVV/0xMMMM"));
        }
    }
    Ok(Some(Rule {
        id,
        src,
        src_len,
        dst,
        dst_len,
        v6: Some(false),
        sport,
        dport,
        proto,
        ..Rule::default()
    }))
}

/// Parses a whole file's text; `file` names it in errors. Rule ids are 1-based line numbers
/// for ClassBench (rule *n* is the *n*-th rule) and for the text format (the *n*-th rule).
pub fn parse_rules(
    file: &str,
    text: &str,
    format: Format,
    port: &dyn Fn(&str) -> Option<u16>,
) -> Result<Vec<Rule>, RuleError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let id = out.len() as u32 + 1;
        let r = match format {
            Format::Rules => parse_rule_line(line, id, port),
            Format::ClassBench => parse_classbench_line(line, id),
        }
        .map_err(|msg| RuleError {
            file: file.to_string(),
            line: i + 1,
            msg,
        })?;
        out.extend(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_ports(_: &str) -> Option<u16> {
        None
    }

    #[test]
    fn text_format_parses() {
        let ports = |s: &str| (s == "wan").then_some(3);
        let r = parse_rule_line(
            "in wan tcp dport 22-23 saddr 192.0.2.0/24 flags S/SA ct new,related accept # ssh",
            7,
            &ports,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.id, 7);
        assert_eq!(r.in_port, Some(3));
        assert_eq!(r.proto, (6, 0xff));
        assert_eq!(r.dport, (22, 23));
        assert_eq!((r.src, r.src_len), (v4([192, 0, 2, 0]), 24));
        assert_eq!(r.tcp_flags, (0x02, 0x12));
        assert_eq!(r.ct, ct::NEW | ct::RELATED);
        assert_eq!(r.v6, Some(false));
        assert_eq!(r.action, Action::Accept);
        let r = parse_rule_line("ip6 icmpv6 type 128 code 0 drop", 1, &no_ports)
            .unwrap()
            .unwrap();
        assert_eq!(
            (r.icmp_type, r.icmp_code, r.v6),
            (Some(128), Some(0), Some(true))
        );
        assert_eq!(
            parse_rule_line("  # only a comment", 1, &no_ports),
            Ok(None)
        );
        let r = parse_rule_line("daddr 2001:db8::/32 reject", 1, &no_ports)
            .unwrap()
            .unwrap();
        assert_eq!(r.dst_len, 32);
        assert_eq!(r.action, Action::Reject);
    }

    #[test]
    fn text_format_errors_say_why() {
        for (line, want) in [
            ("tcp dport 22", "ends with accept"),
            ("udp dport 70000 accept", "not a port"),
            ("dport 22 accept", "need proto"),
            ("saddr 10.0.0.1/8 accept", "host bits"),
            ("saddr 10.0.0.0/8 daddr ::1 accept", "mixes"),
            ("tcp tcp accept", "twice"),
            ("ct bogus accept", "not new"),
            ("frobnicate accept", "unknown word"),
            ("in lan accept", "no port named"),
            ("type 3 accept", "need proto icmp"),
            ("udp flags S accept", "need proto tcp"),
            ("saddr accept", "needs a value"),
            ("saddr 1.2.3 accept", "is not an IPv4"),
            ("sport", "ends with accept"),
        ] {
            let e = parse_rule_line(line, 1, &no_ports).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        let e = parse_rules("f.rules", "accept\n\nbad\n", Format::Rules, &no_ports).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.rules:3: a rule ends with accept, drop or reject, not \"bad\""
        );
    }

    #[test]
    fn classbench_parses() {
        let r = parse_classbench_line(
            "@209.161.198.176/28\t209.161.198.160/28\t88 : 88\t80 : 80\t0x11/0xFF\t0x0000/0x0000\t",
            5,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.src_len, 28);
        assert_eq!(r.sport, (88, 88));
        assert_eq!(r.proto, (17, 0xff));
        let r = parse_classbench_line("@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x00/0x00", 1)
            .unwrap()
            .unwrap();
        assert_eq!(r.proto, (0, 0));
        for bad in [
            "0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 0x00/0x00",
            "@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535",
            "@0.0.0.1/0 0.0.0.0/0 0 : 65535 0 : 65535 0x00/0x00",
            "@0.0.0.0/0 0.0.0.0/0 9 : 1 0 : 65535 0x00/0x00",
            "@0.0.0.0/0 0.0.0.0/0 0 : 65535 0 : 65535 06/0xff",
        ] {
            assert!(parse_classbench_line(bad, 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching() {
        let r = parse_rule_line("tcp dport 80 saddr 10.0.0.0/8 ct new accept", 1, &no_ports)
            .unwrap()
            .unwrap();
        let mut k = PacketKey {
            src: v4([10, 1, 2, 3]),
            proto: 6,
            dport: 80,
            has_ports: true,
            ct: ct::NEW,
            ..Default::default()
        };
        assert!(r.matches(&k));
        k.ct = ct::ESTABLISHED;
        assert!(!r.matches(&k));
        k.ct = ct::NEW;
        k.src = v4([11, 0, 0, 0]);
        assert!(!r.matches(&k));
        // A wildcard port range matches a packet without ports; a real range does not.
        let any = Rule::default();
        let icmp = PacketKey {
            proto: 1,
            ct: ct::NEW,
            ..Default::default()
        };
        assert!(any.matches(&icmp));
        let p0 = Rule {
            dport: (0, 10),
            ..Rule::default()
        };
        assert!(!p0.matches(&icmp));
    }
}
