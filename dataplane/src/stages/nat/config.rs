//! `[[stage]] kind = "nat44"`: the table an operator writes, checked strictly, and the resolved
//! settings every worker's instance shares.
//!
//! ```toml
//! [[stage]]
//! kind = "nat44"
//! inside = ["inside"]              # ports the subscribers sit behind
//! outside = "outside"              # port towards the Internet
//! pool = ["198.51.100.0/30"]       # outside addresses (prefixes)
//! ports = [1024, 65535]            # dynamic port range (default 1024-65535)
//! filtering = "endpoint-independent"   # or "address-dependent"
//! capacity = 1048576               # sessions per worker
//! max_ports_per_subscriber = 0     # RFC 6888 limit per inside address (0: none)
//! icmp_rate = 10                   # ICMP "administratively prohibited" per second per worker
//! inbound_refresh = false          # do inbound UDP packets refresh a mapping
//! allocation = "random"            # or "sequential": lowest free port (deterministic)
//! log = "nat44-mappings.log"       # RFC 6888 create/delete lines, written by a logger thread
//! [stage.timeouts]                 # seconds; RFC minimums are enforced
//! udp = 300
//! tcp_established = 7440
//! tcp_transitory = 240
//! icmp = 60
//! [[stage.static]]                 # port forwarding (static DNAT)
//! proto = "tcp"
//! outside = "198.51.100.1:8080"
//! inside = "10.0.0.5:80"
//! ```
//!
//! The RFC floors are refused at load time, not clamped: a UDP timeout under 2 minutes
//! (RFC 4787 REQ-5), a TCP established timeout under 2 h 4 min or transitory under 4 minutes
//! (RFC 5382 REQ-5), an ICMP query timeout under 60 s (RFC 5508 REQ-2).

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{BuildEnv, ConfigError, PortConfig, StageSpec, StageTable};
use crate::stage::Stage;

/// Most outside addresses a pool may have.
pub const MAX_POOL: usize = 4096;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NatToml {
    #[allow(dead_code)]
    kind: String,
    inside: Spanned<Vec<Spanned<String>>>,
    outside: Spanned<String>,
    pool: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    ports: Option<Spanned<[u32; 2]>>,
    #[serde(default)]
    filtering: Option<Spanned<String>>,
    #[serde(default)]
    capacity: Option<Spanned<u64>>,
    #[serde(default)]
    max_ports_per_subscriber: Option<Spanned<u32>>,
    #[serde(default)]
    icmp_rate: Option<Spanned<u32>>,
    #[serde(default)]
    inbound_refresh: Option<bool>,
    #[serde(default)]
    allocation: Option<Spanned<String>>,
    #[serde(default)]
    log: Option<Spanned<String>>,
    #[serde(default)]
    timeouts: Option<Spanned<TimeoutsToml>>,
    #[serde(default, rename = "static")]
    statics: Vec<Spanned<StaticToml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsToml {
    #[serde(default)]
    udp: Option<Spanned<u32>>,
    #[serde(default)]
    tcp_established: Option<Spanned<u32>>,
    #[serde(default)]
    tcp_transitory: Option<Spanned<u32>>,
    #[serde(default)]
    icmp: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticToml {
    proto: Spanned<String>,
    outside: Spanned<String>,
    inside: Spanned<String>,
    #[serde(default)]
    port: Option<Spanned<String>>,
}

/// Filtering behaviour (RFC 4787 section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtering {
    /// Any outside endpoint may reach a mapping (RFC 4787 REQ-8 for transparency; default).
    EndpointIndependent,
    /// Only addresses the inside endpoint has sent to.
    AddressDependent,
}

/// Timeouts in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// UDP mapping.
    pub udp: u32,
    /// TCP, established.
    pub tcp_established: u32,
    /// TCP, opening or closing (or reset).
    pub tcp_transitory: u32,
    /// ICMP query.
    pub icmp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: 300,
            tcp_established: 7440,
            tcp_transitory: 240,
            icmp: 60,
        }
    }
}

/// A static mapping (port forwarding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticMap {
    /// IP protocol (TCP or UDP).
    pub proto: u8,
    /// Outside address.
    pub ext_addr: u32,
    /// Outside port.
    pub ext_port: u16,
    /// Inside address.
    pub in_addr: u32,
    /// Inside port.
    pub in_port: u16,
    /// Inside port (interface) the host sits behind.
    pub in_if: u16,
}

/// The resolved settings, shared by every worker's instance and by the steering rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConf {
    /// Inside ports.
    pub inside: Vec<u16>,
    /// Outside port.
    pub outside: u16,
    /// Outside addresses, in order.
    pub pool: Vec<u32>,
    /// Dynamic port range, inclusive.
    pub ports: (u16, u16),
    /// Filtering.
    pub filtering: Filtering,
    /// Sessions per worker.
    pub capacity: usize,
    /// Ports per inside address (0: unlimited).
    pub max_ports_per_subscriber: u32,
    /// ICMP "administratively prohibited" messages per second per worker.
    pub icmp_rate: u32,
    /// Whether inbound UDP packets refresh a mapping (RFC 4787 REQ-6a: MAY).
    pub inbound_refresh: bool,
    /// Lowest free port instead of a random one (deterministic, for tests and golden cases;
    /// gives up the RFC 6056 randomisation).
    pub sequential: bool,
    /// RFC 6888 mapping log file (see [`super::log`]).
    pub log: Option<std::path::PathBuf>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Static mappings.
    pub statics: Vec<StaticMap>,
    /// Role of each port number: 0 none, 1 inside, 2 outside.
    pub roles: Vec<u8>,
}

impl NatConf {
    /// Settings with defaults around the essentials (for tests and tools).
    pub fn new(inside: &[u16], outside: u16, pool: &[u32]) -> NatConf {
        let n = inside.iter().copied().chain([outside]).max().unwrap_or(0) as usize + 1;
        let mut roles = vec![0u8; n];
        for &p in inside {
            roles[p as usize] = 1;
        }
        roles[outside as usize] = 2;
        NatConf {
            inside: inside.to_vec(),
            outside,
            pool: pool.to_vec(),
            ports: (1024, 65535),
            filtering: Filtering::EndpointIndependent,
            capacity: 1 << 20,
            max_ports_per_subscriber: 0,
            icmp_rate: 10,
            inbound_refresh: false,
            sequential: false,
            log: None,
            timeouts: Timeouts::default(),
            statics: Vec::new(),
            roles,
        }
    }

    /// Index of `addr` in the pool.
    #[inline]
    pub fn pool_index(&self, addr: u32) -> Option<usize> {
        // Pools are a handful of prefixes expanded in order: most addresses (every Internet
        // destination of outbound traffic) fall outside the range at once; binary search
        // keeps the rest cheap.
        match (self.pool.first(), self.pool.last()) {
            (Some(&lo), Some(&hi)) if (lo..=hi).contains(&addr) => {
                self.pool.binary_search(&addr).ok()
            }
            _ => None,
        }
    }

    /// True if `addr` is an outside address of this NAT (pool or static).
    #[inline]
    pub fn is_outside_addr(&self, addr: u32) -> bool {
        self.pool_index(addr).is_some() || self.statics.iter().any(|s| s.ext_addr == addr)
    }

    /// The static mapping for outside endpoint (proto, addr, port).
    #[inline]
    pub fn static_by_ext(&self, proto: u8, addr: u32, port: u16) -> Option<&StaticMap> {
        self.statics
            .iter()
            .find(|s| s.proto == proto && s.ext_addr == addr && s.ext_port == port)
    }

    /// The static mapping for inside endpoint (proto, addr, port).
    #[inline]
    pub fn static_by_in(&self, proto: u8, addr: u32, port: u16) -> Option<&StaticMap> {
        self.statics
            .iter()
            .find(|s| s.proto == proto && s.in_addr == addr && s.in_port == port)
    }
}

/// The validated `nat44` stage settings.
#[derive(Debug)]
pub struct NatSpec {
    /// The settings.
    pub conf: Arc<NatConf>,
    /// The mapping logger the instances of one run share (started by the first build).
    logger: std::sync::Mutex<std::sync::Weak<super::log::Shared>>,
}

impl NatSpec {
    /// A spec for `conf`.
    pub fn new(conf: NatConf) -> NatSpec {
        NatSpec {
            conf: Arc::new(conf),
            logger: std::sync::Mutex::new(std::sync::Weak::new()),
        }
    }
}

impl StageSpec for NatSpec {
    fn kind(&self) -> &'static str {
        "nat44"
    }
    fn build(&self, env: &BuildEnv) -> Box<dyn Stage> {
        let mut nat = super::Nat44::new(
            self.conf.clone(),
            env.worker,
            env.workers,
            env.port_macs.clone(),
        );
        if let Some(path) = &self.conf.log {
            // Start-up only: the lock is never taken on the packet path.
            let mut w = self.logger.lock().unwrap_or_else(|e| e.into_inner());
            let shared = w.upgrade().unwrap_or_else(|| {
                let s = super::log::start(path.clone(), env.workers);
                *w = Arc::downgrade(&s);
                s
            });
            nat.set_log(shared);
        }
        Box::new(nat)
    }
    fn steer(&self, workers: usize) -> Option<Arc<dyn crate::engine::Steer>> {
        let _ = workers;
        Some(Arc::new(super::NatSteer {
            conf: self.conf.clone(),
        }))
    }
    fn describe(&self, ports: &[PortConfig]) -> Vec<String> {
        let c = &self.conf;
        let name = |p: u16| {
            ports
                .get(p as usize)
                .map_or_else(|| p.to_string(), |x| x.name.clone())
        };
        let inside: Vec<String> = c.inside.iter().map(|&p| name(p)).collect();
        let mut v = vec![
            format!(
                "{} -> {}: {} outside addresses ({} .. {}), ports {}-{}, {} filtering",
                inside.join(","),
                name(c.outside),
                c.pool.len(),
                Ipv4Addr::from(c.pool[0]),
                Ipv4Addr::from(c.pool[c.pool.len() - 1]),
                c.ports.0,
                c.ports.1,
                match c.filtering {
                    Filtering::EndpointIndependent => "endpoint-independent",
                    Filtering::AddressDependent => "address-dependent",
                }
            ),
            format!(
                "{} sessions per worker (about {} MiB), {} ports per subscriber, timeouts udp {}s tcp {}s/{}s icmp {}s",
                c.capacity,
                (c.capacity * super::table::BYTES_PER_SESSION) >> 20,
                if c.max_ports_per_subscriber == 0 {
                    "unlimited".to_string()
                } else {
                    c.max_ports_per_subscriber.to_string()
                },
                c.timeouts.udp,
                c.timeouts.tcp_established,
                c.timeouts.tcp_transitory,
                c.timeouts.icmp
            ),
        ];
        for s in &c.statics {
            v.push(format!(
                "static {} {}:{} -> {}:{} via {}",
                if s.proto == 6 { "tcp" } else { "udp" },
                Ipv4Addr::from(s.ext_addr),
                s.ext_port,
                Ipv4Addr::from(s.in_addr),
                s.in_port,
                name(s.in_if)
            ));
        }
        v
    }
}

fn parse_prefix(s: &str) -> Option<(u32, u32)> {
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, l.parse::<u32>().ok()?),
        None => (s, 32),
    };
    let a: Ipv4Addr = a.parse().ok()?;
    if l > 32 {
        return None;
    }
    let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
    Some((u32::from(a) & mask, l))
}

fn parse_endpoint(s: &str) -> Option<(u32, u16)> {
    let (a, p) = s.rsplit_once(':')?;
    Some((u32::from(a.parse::<Ipv4Addr>().ok()?), p.parse().ok()?))
}

/// Parses a `nat44` stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    let c: NatToml = t.parse()?;
    let mut inside = Vec::new();
    for n in c.inside.get_ref() {
        inside.push(t.port(n, "inside")?);
    }
    if inside.is_empty() {
        return Err(t.err(c.inside.span(), "inside", "expected at least one port"));
    }
    let outside = t.port(&c.outside, "outside")?;
    if inside.contains(&outside) {
        return Err(t.err(
            c.outside.span(),
            "outside",
            "the outside port is also an inside port",
        ));
    }
    let mut pool = Vec::new();
    for p in c.pool.get_ref() {
        let (base, len) = parse_prefix(p.get_ref())
            .filter(|&(_, l)| l >= 20)
            .ok_or_else(|| {
                t.err(
                    p.span(),
                    "pool",
                    format!(
                        "{:?} is not an IPv4 prefix like 198.51.100.0/30 (at most /20)",
                        p.get_ref()
                    ),
                )
            })?;
        let n = 1u64 << (32 - len);
        for i in 0..n {
            pool.push(base + i as u32);
        }
        if pool.len() > MAX_POOL {
            return Err(t.err(
                p.span(),
                "pool",
                format!("at most {MAX_POOL} outside addresses"),
            ));
        }
    }
    if pool.is_empty() {
        return Err(t.err(c.pool.span(), "pool", "expected at least one prefix"));
    }
    pool.sort_unstable();
    if pool.windows(2).any(|w| w[0] == w[1]) {
        return Err(t.err(c.pool.span(), "pool", "prefixes overlap"));
    }
    let mut conf = NatConf::new(&inside, outside, &pool);
    conf.roles.resize(t.port_count().max(conf.roles.len()), 0);
    if let Some(p) = &c.ports {
        let [lo, hi] = *p.get_ref();
        if !(1..=65535).contains(&lo) || !(lo..=65535).contains(&hi) || hi - lo < 63 {
            return Err(t.err(
                p.span(),
                "ports",
                "expected [low, high] with 1 <= low, high <= 65535 and at least 64 ports",
            ));
        }
        conf.ports = (lo as u16, hi as u16);
    }
    if let Some(f) = &c.filtering {
        conf.filtering = match f.get_ref().as_str() {
            "endpoint-independent" => Filtering::EndpointIndependent,
            "address-dependent" => Filtering::AddressDependent,
            other => {
                return Err(t.err(
                    f.span(),
                    "filtering",
                    format!(
                        "{other:?}: expected \"endpoint-independent\" or \"address-dependent\""
                    ),
                ))
            }
        };
    }
    if let Some(cap) = &c.capacity {
        let v = *cap.get_ref();
        if !(1..=super::table::MAX_ENTRIES as u64).contains(&v) {
            return Err(t.err(
                cap.span(),
                "capacity",
                "expected 1 to 67108863 sessions per worker",
            ));
        }
        conf.capacity = v as usize;
    }
    if let Some(m) = &c.max_ports_per_subscriber {
        conf.max_ports_per_subscriber = *m.get_ref();
    }
    if let Some(r) = &c.icmp_rate {
        conf.icmp_rate = *r.get_ref();
    }
    if let Some(b) = c.inbound_refresh {
        conf.inbound_refresh = b;
    }
    if let Some(l) = &c.log {
        if l.get_ref().is_empty() {
            return Err(t.err(l.span(), "log", "expected a file name"));
        }
        conf.log = Some(t.base.join(l.get_ref()));
    }
    if let Some(al) = &c.allocation {
        conf.sequential = match al.get_ref().as_str() {
            "random" => false,
            "sequential" => true,
            other => {
                return Err(t.err(
                    al.span(),
                    "allocation",
                    format!("{other:?}: expected \"random\" or \"sequential\""),
                ))
            }
        };
    }
    if let Some(to) = &c.timeouts {
        let to = to.get_ref();
        let set = |v: &Option<Spanned<u32>>, key: &str, min: u32, why: &str| {
            if let Some(v) = v {
                if *v.get_ref() < min || *v.get_ref() > 30 * 86400 {
                    return Err(t.err(
                        v.span(),
                        &format!("timeouts.{key}"),
                        format!("expected {min} to 2592000 seconds ({why})"),
                    ));
                }
                return Ok(Some(*v.get_ref()));
            }
            Ok(None)
        };
        let d = Timeouts::default();
        conf.timeouts = Timeouts {
            udp: set(&to.udp, "udp", 120, "RFC 4787 REQ-5: at least 2 minutes")?.unwrap_or(d.udp),
            tcp_established: set(
                &to.tcp_established,
                "tcp_established",
                7440,
                "RFC 5382 REQ-5: at least 2 hours 4 minutes",
            )?
            .unwrap_or(d.tcp_established),
            tcp_transitory: set(
                &to.tcp_transitory,
                "tcp_transitory",
                240,
                "RFC 5382 REQ-5: at least 4 minutes",
            )?
            .unwrap_or(d.tcp_transitory),
            icmp: set(&to.icmp, "icmp", 60, "RFC 5508 REQ-2: at least 60 seconds")?
                .unwrap_or(d.icmp),
        };
    }
    for st in &c.statics {
        let s = st.get_ref();
        let proto = match s.proto.get_ref().as_str() {
            "tcp" => 6,
            "udp" => 17,
            other => {
                return Err(t.err(
                    s.proto.span(),
                    "static.proto",
                    format!("{other:?}: expected \"tcp\" or \"udp\""),
                ))
            }
        };
        let (ext_addr, ext_port) = parse_endpoint(s.outside.get_ref()).ok_or_else(|| {
            t.err(
                s.outside.span(),
                "static.outside",
                "expected address:port like 198.51.100.1:8080",
            )
        })?;
        let (in_addr, in_port) = parse_endpoint(s.inside.get_ref()).ok_or_else(|| {
            t.err(
                s.inside.span(),
                "static.inside",
                "expected address:port like 10.0.0.5:80",
            )
        })?;
        if conf.pool_index(ext_addr).is_some() && (conf.ports.0..=conf.ports.1).contains(&ext_port)
        {
            return Err(t.err(
                s.outside.span(),
                "static.outside",
                format!(
                    "port {ext_port} of a pool address is in the dynamic range {}-{}: pick one outside it",
                    conf.ports.0, conf.ports.1
                ),
            ));
        }
        let in_if = match &s.port {
            Some(p) => t.port(p, "static.port")?,
            None => inside[0],
        };
        let m = StaticMap {
            proto,
            ext_addr,
            ext_port,
            in_addr,
            in_port,
            in_if,
        };
        if conf.statics.iter().any(|o| {
            o.proto == proto
                && ((o.ext_addr, o.ext_port) == (ext_addr, ext_port)
                    || (o.in_addr, o.in_port) == (in_addr, in_port))
        }) {
            return Err(t.err(st.span(), "static", "two static mappings share an endpoint"));
        }
        conf.statics.push(m);
    }
    Ok(Box::new(NatSpec::new(conf)))
}
