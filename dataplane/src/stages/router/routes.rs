//! Route input: the text of `ip route` / `ip -6 route`, and plain prefix lists.
//!
//! Operators move tables between boxes as `ip route` output and as prefix dumps (the corpus'
//! full BGP table, RouteViews origin-AS files), so both are read as they are. A line that is
//! not understood stops the load with `file:line: why`: a half-loaded table that forwards
//! somewhere unexpected is worse than a router that refuses to start. Files ending in `.gz`
//! are decompressed on the fly.
//!
//! Loading the 900k-prefix IPv4 full table (parse plus build) takes 0.94-1.25 s in release on
//! the loaded reference VM (budget: 2 s); IPv4 prefixes take a hand-written fast path.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

use super::fib::{Hop, Prefix, Rib};

/// A bad route line (or an unreadable file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {msg}")]
pub struct RouteError {
    /// File name.
    pub file: String,
    /// 1-based line (0: the whole file).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// Reads a whole route file, decompressing `.gz`.
pub fn read_text(path: &Path) -> Result<String, RouteError> {
    let err = |msg: String| RouteError {
        file: path.display().to_string(),
        line: 0,
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .map_err(|e| err(format!("cannot decompress: {e}")))?;
        Ok(s)
    } else {
        String::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))
    }
}

/// `a.b.c.d/len` without going through the general address parser (a full table is 900k of
/// these). `None` for anything else, which then takes the general path.
fn fast_v4(s: &[u8]) -> Option<Prefix> {
    let mut addr = 0u32;
    let (mut octet, mut digits, mut dots) = (0u32, 0, 0);
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            c @ b'0'..=b'9' => {
                if digits > 0 && octet == 0 {
                    return None; // a leading zero, refused like the general parser does
                }
                octet = octet * 10 + u32::from(c - b'0');
                digits += 1;
                if digits > 3 || octet > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && dots < 3 => {
                addr = addr << 8 | octet;
                (octet, digits) = (0, 0);
                dots += 1;
            }
            b'/' if digits > 0 && dots == 3 => break,
            _ => return None,
        }
        i += 1;
    }
    if i == s.len() {
        return None;
    }
    addr = addr << 8 | octet;
    let len = &s[i + 1..];
    if len.is_empty() || len.len() > 2 || !len.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let l = len.iter().fold(0u8, |a, &c| a * 10 + (c - b'0'));
    if l > 32 || (len.len() == 2 && len[0] == b'0') {
        return None;
    }
    Some(Prefix::V4(addr & super::lpm4::mask(l), l))
}

/// Parses `a.b.c.d/len`, `addr` (a host route) or `default` (family from `v6`).
pub fn parse_prefix(s: &str, v6: bool) -> Result<Prefix, String> {
    if let Some(p) = fast_v4(s.as_bytes()) {
        return Ok(p);
    }
    if s == "default" {
        return Ok(if v6 {
            Prefix::V6(0, 0)
        } else {
            Prefix::V4(0, 0)
        });
    }
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{s:?} is not an address or prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0 to {max}"))?,
    };
    Prefix::new(addr, len).ok_or_else(|| format!("{s:?} is not a prefix"))
}

/// Parses `ip route` / `ip -6 route` text into `rib`. `port` resolves a `dev` name to a port
/// number. Understood: `[unicast] PREFIX|default [via GW] [dev DEV]` with the attributes
/// `ip route` prints (`proto`, `metric`, `scope`, `src`, `table`, `weight`, `onlink`, ...),
/// `blackhole|unreachable|prohibit|local PREFIX`, and ECMP as `nexthop via GW dev DEV` groups
/// on the same or following lines.
pub fn parse_ip_route(
    file: &str,
    text: &str,
    port: &dyn Fn(&str) -> Option<u16>,
    rib: &mut Rib,
) -> Result<usize, RouteError> {
    let mut count = 0;
    let mut last: Option<Prefix> = None;
    for (i, raw) in text.lines().enumerate() {
        let err = |msg: String| RouteError {
            file: file.to_string(),
            line: i + 1,
            msg,
        };
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut toks = line.split_whitespace().peekable();
        // A continuation line: `nexthop via ... dev ...` for the route above.
        if toks.peek() == Some(&"nexthop") {
            let p = last.ok_or_else(|| err("`nexthop` with no route above it".into()))?;
            for h in parse_nexthops(&mut toks, p, port).map_err(err)? {
                rib.append(p, h);
            }
            continue;
        }
        let mut kind = "unicast";
        if let Some(&t) = toks.peek() {
            if matches!(
                t,
                "unicast" | "blackhole" | "unreachable" | "prohibit" | "local"
            ) {
                kind = t;
                toks.next();
            }
        }
        let dst = toks.next().ok_or_else(|| err("expected a prefix".into()))?;
        // Family of `default` from the first address on the line.
        let v6 = dst.contains(':') || (dst == "default" && line.contains(':'));
        let p = parse_prefix(dst, v6).map_err(err)?;
        let rest: Vec<&str> = toks.collect();
        let hops = match kind {
            "blackhole" => vec![Hop::Blackhole],
            "unreachable" => vec![Hop::Unreachable],
            "prohibit" => vec![Hop::Prohibit],
            "local" => vec![Hop::Local],
            _ => parse_nexthops(&mut rest.iter().copied().peekable(), p, port).map_err(err)?,
        };
        if kind != "unicast" {
            // Attributes after a typed route are checked but carry nothing we use.
            check_attrs(&rest).map_err(err)?;
        }
        rib.insert(p, hops);
        last = Some(p);
        count += 1;
    }
    Ok(count)
}

/// Attribute keywords `ip route` prints that take one value, and flags with none.
const VALUE_ATTRS: &[&str] = &[
    "proto", "metric", "scope", "src", "table", "weight", "realm", "realms", "mtu", "advmss",
    "pref", "expires", "hoplimit", "initcwnd", "initrwnd", "rto_min", "tos", "dsfield",
];
const FLAG_ATTRS: &[&str] = &["onlink", "linkdown", "dead", "pervasive", "offload", "trap"];

fn check_attrs(toks: &[&str]) -> Result<(), String> {
    let mut it = toks.iter();
    while let Some(&t) = it.next() {
        if VALUE_ATTRS.contains(&t) {
            it.next().ok_or_else(|| format!("`{t}` needs a value"))?;
        } else if !FLAG_ATTRS.contains(&t) {
            return Err(format!("unexpected {t:?}"));
        }
    }
    Ok(())
}

fn parse_nexthops<'a>(
    toks: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    p: Prefix,
    port: &dyn Fn(&str) -> Option<u16>,
) -> Result<Vec<Hop>, String> {
    let mut hops = Vec::new();
    let mut via: Option<IpAddr> = None;
    let mut dev: Option<u16> = None;
    let mut any = false;
    let flush = |via: &mut Option<IpAddr>,
                 dev: &mut Option<u16>,
                 hops: &mut Vec<Hop>|
     -> Result<(), String> {
        match (via.take(), dev.take()) {
            (Some(gw), Some(port)) => hops.push(Hop::Via { gw, port }),
            (None, Some(port)) => hops.push(Hop::Connected { port }),
            (Some(gw), None) => return Err(format!("via {gw} needs `dev PORT`")),
            (None, None) => return Err("expected `via GW dev PORT` or `dev PORT`".into()),
        }
        Ok(())
    };
    while let Some(t) = toks.next() {
        match t {
            "nexthop" => {
                if any {
                    flush(&mut via, &mut dev, &mut hops)?;
                }
                any = false;
            }
            "via" => {
                let mut v = toks.next().ok_or("`via` needs an address")?;
                if v == "inet" || v == "inet6" {
                    v = toks.next().ok_or("`via` needs an address")?;
                }
                let gw: IpAddr = v
                    .parse()
                    .map_err(|_| format!("via {v:?} is not an address"))?;
                if gw.is_ipv4() != matches!(p, Prefix::V4(..)) {
                    return Err(format!("via {gw} is not of the prefix's family"));
                }
                via = Some(gw);
                any = true;
            }
            "dev" => {
                let d = toks.next().ok_or("`dev` needs a port name")?;
                dev = Some(port(d).ok_or_else(|| format!("no port named {d:?}"))?);
                any = true;
            }
            t if VALUE_ATTRS.contains(&t) => {
                toks.next().ok_or_else(|| format!("`{t}` needs a value"))?;
            }
            t if FLAG_ATTRS.contains(&t) => {}
            t => return Err(format!("unexpected {t:?}")),
        }
    }
    if any {
        flush(&mut via, &mut dev, &mut hops)?;
    }
    if hops.is_empty() {
        // A route line whose next hops follow on `nexthop` lines, e.g. `10.0.0.0/8 proto bgp`.
        return Ok(Vec::new());
    }
    Ok(hops)
}

/// Parses a prefix list: one prefix per line, optionally followed by a label (the origin AS in
/// the RouteViews files); `;` and `#` start comments. `add(prefix, label)` receives each.
pub fn parse_prefix_list(
    file: &str,
    text: &str,
    mut add: impl FnMut(Prefix, Option<u32>),
) -> Result<usize, RouteError> {
    let mut n = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find([';', '#']) {
            Some(i) => &raw[..i],
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        let err = |msg: String| RouteError {
            file: file.to_string(),
            line: i + 1,
            msg,
        };
        let mut toks = line.split_whitespace();
        let ptxt = toks.next().unwrap_or("");
        let p = parse_prefix(ptxt, ptxt.contains(':')).map_err(err)?;
        let label = match toks.next() {
            None => None,
            Some(t) => Some(
                t.parse::<u32>()
                    .map_err(|_| err(format!("label {t:?} is not a number")))?,
            ),
        };
        if let Some(t) = toks.next() {
            return Err(err(format!("unexpected {t:?} after the prefix and label")));
        }
        add(p, label);
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(s: &str) -> Option<u16> {
        ["port0", "port1"]
            .iter()
            .position(|&p| p == s)
            .map(|p| p as u16)
    }

    #[test]
    fn ip_route_text() {
        let text = "\
default via 192.0.2.1 dev port0 proto static metric 100
10.0.0.0/8 via 192.0.2.9 dev port1
192.0.2.0/24 dev port0 proto kernel scope link src 192.0.2.2
blackhole 198.51.100.0/24
unreachable 203.0.113.0/24 metric 5
prohibit 203.0.113.128/25
10.1.0.0/16 proto bgp
\tnexthop via 192.0.2.5 dev port0 weight 1
\tnexthop via 192.0.2.6 dev port1 weight 1
10.2.0.0/16 nexthop via 192.0.2.5 dev port0 nexthop via 192.0.2.6 dev port1
2001:db8::/32 via fe80::1 dev port1 metric 1024 pref medium
default via 2001:db8::1 dev port0
";
        let mut rib = Rib::new();
        assert_eq!(parse_ip_route("r", text, &port, &mut rib).unwrap(), 10);
        let fib = rib.build(1).unwrap();
        let l = |s: &str| fib.lookup(s.parse().unwrap(), 0);
        let via = |g: &str, port| {
            Some(Hop::Via {
                gw: g.parse().unwrap(),
                port,
            })
        };
        assert_eq!(l("8.8.8.8"), via("192.0.2.1", 0));
        assert_eq!(l("10.9.9.9"), via("192.0.2.9", 1));
        assert_eq!(l("192.0.2.77"), Some(Hop::Connected { port: 0 }));
        assert_eq!(l("198.51.100.1"), Some(Hop::Blackhole));
        assert_eq!(l("203.0.113.1"), Some(Hop::Unreachable));
        assert_eq!(l("203.0.113.200"), Some(Hop::Prohibit));
        assert_eq!(l("2001:db8::5"), via("fe80::1", 1));
        assert_eq!(l("3000::1"), via("2001:db8::1", 0));
        for net in ["10.1.0.1", "10.2.0.1"] {
            let picks: std::collections::HashSet<_> = (0..64u32)
                .map(|h| fib.lookup(net.parse().unwrap(), h.wrapping_mul(0x9e37_79b9)))
                .collect();
            assert_eq!(picks.len(), 2, "{net}");
        }
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        for (text, line, what) in [
            (
                "10.0.0.0/8 via 1.2.3.4 dev port0\n10.0.0.0/33 dev port0\n",
                2,
                "length",
            ),
            ("\n\n10.0.0.0/8 via 1.2.3.4 dev eth9\n", 3, "eth9"),
            ("10.0.0.0/8 via 1.2.3.4\n", 1, "dev"),
            ("10.0.0.0/8 via 2001:db8::1 dev port0\n", 1, "family"),
            ("10.0.0.0/8 dev port0 frobnicate\n", 1, "frobnicate"),
            ("nexthop via 1.2.3.4 dev port0\n", 1, "no route"),
            ("banana\n", 1, "banana"),
        ] {
            let e = parse_ip_route("r.txt", text, &port, &mut Rib::new()).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().starts_with(&format!("r.txt:{line}: ")), "{e}");
            assert!(e.msg.contains(what), "{e}");
        }
    }

    #[test]
    fn fast_ipv4_parse_agrees_with_the_general_one() {
        for s in [
            "1.2.3.4/24",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "10.1.2.3/8",
            "1.2.3.4/33",
            "1.2.3/24",
            "1.2.3.4.5/8",
            "256.1.1.1/8",
            "01.2.3.4/8",
            "1.2.3.4/",
            "1.2.3.4/08",
            "1..3.4/8",
            "a.b.c.d/8",
            "1.2.3.4/-1",
            "1.2.3.4",
        ] {
            let general = s
                .split_once('/')
                .and_then(|(a, l)| Some((a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?)))
                .and_then(|(a, l)| Prefix::new(a, l));
            let fast = fast_v4(s.as_bytes());
            if fast.is_some() {
                assert_eq!(fast, general, "{s}");
            }
            assert_eq!(
                parse_prefix(s, false).ok().map(|_| ()),
                general.map(|_| ()).or((!s.contains('/')).then_some(())),
                "{s}"
            );
        }
    }

    #[test]
    fn prefix_lists() {
        let text = "; IP-ASN32-DAT file\n; \n1.0.0.0/24\t15169\n2001:200::/32\n";
        let mut got = Vec::new();
        parse_prefix_list("p", text, |p, l| got.push((p, l))).unwrap();
        assert_eq!(
            got,
            vec![
                (Prefix::V4(0x0100_0000, 24), Some(15169)),
                (Prefix::V6(0x2001_0200 << 96, 32), None)
            ]
        );
        let e = parse_prefix_list("p", "1.0.0.0/24\n1.0.0.0/24 x\n", |_, _| {}).unwrap_err();
        assert_eq!((e.line, e.to_string().starts_with("p:2:")), (2, true));
        let e = parse_prefix_list("p", "1.0.0.0/40\n", |_, _| {}).unwrap_err();
        assert_eq!(e.line, 1);
    }
}
