//! `[[stage]] kind = "router"`: the router's configuration table.
//!
//! ```toml
//! [[stage]]
//! kind = "router"
//! routes = "routes.txt"               # optional, relative to the config file; .gz is fine
//! routes_format = "ip-route"          # or "prefix-list"
//! prefix_list_via = "192.0.2.1"       # prefix lists: where every prefix goes
//! prefix_list_dev = "outside"
//! static_routes = ["10.0.0.0/8 via 192.0.2.1 dev outside", "blackhole 10.9.0.0/16"]
//! interfaces = [{ port = "outside", address = "192.0.2.2/24", address6 = "2001:db8::2/64", mtu = 1500 }]
//! neighbours = [{ address = "192.0.2.1", mac = "02:00:00:00:01:01", port = "outside" }]
//! icmp_rate = 1000                    # ICMP errors per second per worker
//! icmp_burst = 50
//! hold = 4                            # packets waiting per unresolved neighbour
//! neighbour_timeout_s = 300
//! arp_retry_ms = 1000
//! arp_retries = 3
//! ```
//!
//! Interfaces add their connected subnet (`Connected`) and their own address (`Local`, so echo
//! requests to it are answered) to the table. The table is built once here, when the
//! configuration is checked, and shared by every worker's instance.

use std::net::IpAddr;
use std::sync::Arc;

use toml::Spanned;

use super::fib::{FibCell, Hop, Prefix, Rib};
use super::routes;
use super::stage::{Iface, Router, RouterConfig, StaticNeighbour};
use crate::config::{BuildEnv, ConfigError, PortConfig, StageSpec, StageTable};
use crate::stage::Stage;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RouterToml {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    routes: Option<Spanned<String>>,
    #[serde(default)]
    routes_format: Option<Spanned<String>>,
    #[serde(default)]
    prefix_list_via: Option<Spanned<String>>,
    #[serde(default)]
    prefix_list_dev: Option<Spanned<String>>,
    #[serde(default)]
    static_routes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    interfaces: Vec<Spanned<IfaceToml>>,
    #[serde(default)]
    neighbours: Vec<Spanned<NeighToml>>,
    #[serde(default)]
    icmp_rate: Option<u32>,
    #[serde(default)]
    icmp_burst: Option<u32>,
    #[serde(default)]
    hold: Option<Spanned<u16>>,
    #[serde(default)]
    neighbour_timeout_s: Option<u64>,
    #[serde(default)]
    arp_retry_ms: Option<u64>,
    #[serde(default)]
    arp_retries: Option<u8>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IfaceToml {
    port: Spanned<String>,
    #[serde(default)]
    address: Option<Spanned<String>>,
    #[serde(default)]
    address6: Option<Spanned<String>>,
    #[serde(default)]
    mtu: Option<Spanned<u16>>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NeighToml {
    address: Spanned<String>,
    mac: Spanned<String>,
    port: Spanned<String>,
}

/// The router's resolved settings: the shared FIB and the per-worker configuration.
#[derive(Debug)]
pub struct RouterSpec {
    /// The FIB all workers read; the control plane publishes new tables here.
    pub fib: Arc<FibCell>,
    /// Per-worker settings.
    pub cfg: RouterConfig,
    /// Routes loaded (for `describe`).
    pub routes: usize,
}

impl StageSpec for RouterSpec {
    fn kind(&self) -> &'static str {
        "router"
    }

    fn build(&self, env: &BuildEnv) -> Box<dyn Stage> {
        let mut r = Router::new(&self.cfg, &self.fib, env.port_macs.clone());
        r.set_workers(env.worker, env.workers);
        Box::new(r)
    }

    fn steer(&self, workers: usize) -> Option<Arc<dyn crate::engine::Steer>> {
        (workers > 1).then(|| Arc::new(super::stage::RouterSteer) as Arc<dyn crate::engine::Steer>)
    }

    fn describe(&self, ports: &[PortConfig]) -> Vec<String> {
        let fib = self.fib.current();
        let name = |p: u16| {
            ports
                .get(p as usize)
                .map_or_else(|| p.to_string(), |c| c.name.clone())
        };
        let mut out = vec![format!(
            "{} routes ({} IPv4, {} IPv6 prefixes), {} next hops, FIB {:.1} MiB",
            self.routes,
            fib.v4.prefixes(),
            fib.v6.prefixes(),
            fib.actions() - 1,
            fib.memory() as f64 / (1024.0 * 1024.0)
        )];
        for i in &self.cfg.ifaces {
            let a4 = i.addr4.map_or("-".into(), |(a, l)| format!("{a}/{l}"));
            let a6 = i.addr6.map_or("-".into(), |(a, l)| format!("{a}/{l}"));
            out.push(format!(
                "interface {}: {a4} {a6} mtu {}",
                name(i.port),
                i.mtu
            ));
        }
        for n in &self.cfg.neighbours {
            let m = n.mac;
            out.push(format!(
                "neighbour {} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} on {}",
                n.ip,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                name(n.port)
            ));
        }
        out.push(format!(
            "icmp errors {}/s burst {} per worker; hold {} per neighbour",
            self.cfg.icmp_rate, self.cfg.icmp_burst, self.cfg.hold
        ));
        out
    }
}

fn parse_addr(
    t: &StageTable<'_>,
    s: &Spanned<String>,
    key: &str,
    v6: bool,
) -> Result<(IpAddr, u8), ConfigError> {
    let bad = || {
        t.err(
            s.span(),
            key,
            format!(
                "{:?} is not an {} address with a prefix length",
                s.get_ref(),
                if v6 { "IPv6" } else { "IPv4" }
            ),
        )
    };
    let (a, l) = s.get_ref().split_once('/').ok_or_else(bad)?;
    let a: IpAddr = a.parse().map_err(|_| bad())?;
    let max = if v6 { 128 } else { 32 };
    let l: u8 = l.parse().ok().filter(|&l| l <= max).ok_or_else(bad)?;
    if a.is_ipv6() != v6 {
        return Err(bad());
    }
    Ok((a, l))
}

/// Parses a router stage's table.
pub fn parse_config(t: &StageTable<'_>) -> Result<Box<dyn StageSpec>, ConfigError> {
    let c: RouterToml = t.parse()?;
    let mut cfg = RouterConfig::default();
    let mut rib = Rib::new();
    let mut count = 0;

    for it in &c.interfaces {
        let i = it.get_ref();
        let port = t.port(&i.port, "interfaces.port")?;
        let addr4 = match &i.address {
            Some(s) => match parse_addr(t, s, "interfaces.address", false)? {
                (IpAddr::V4(a), l) => Some((a, l)),
                _ => None,
            },
            None => None,
        };
        let addr6 = match &i.address6 {
            Some(s) => match parse_addr(t, s, "interfaces.address6", true)? {
                (IpAddr::V6(a), l) => Some((a, l)),
                _ => None,
            },
            None => None,
        };
        let mtu = match &i.mtu {
            Some(m) if !(68..=9000).contains(m.get_ref()) => {
                return Err(t.err(m.span(), "interfaces.mtu", "expected 68 to 9000"));
            }
            Some(m) => *m.get_ref(),
            None => 1500,
        };
        if cfg.ifaces.iter().any(|f: &Iface| f.port == port) {
            return Err(t.err(
                i.port.span(),
                "interfaces.port",
                format!("port {:?} has two interfaces", i.port.get_ref()),
            ));
        }
        if let Some((a, l)) = addr4 {
            rib.insert(
                Prefix::new(IpAddr::V4(a), l).expect("length checked"),
                vec![Hop::Connected { port }],
            );
            rib.insert(
                Prefix::new(IpAddr::V4(a), 32).expect("valid"),
                vec![Hop::Local],
            );
        }
        if let Some((a, l)) = addr6 {
            rib.insert(
                Prefix::new(IpAddr::V6(a), l).expect("length checked"),
                vec![Hop::Connected { port }],
            );
            rib.insert(
                Prefix::new(IpAddr::V6(a), 128).expect("valid"),
                vec![Hop::Local],
            );
        }
        cfg.ifaces.push(Iface {
            port,
            addr4,
            addr6,
            mtu,
        });
    }

    for nt in &c.neighbours {
        let n = nt.get_ref();
        let ip: IpAddr = n.address.get_ref().parse().map_err(|_| {
            t.err(
                n.address.span(),
                "neighbours.address",
                format!("{:?} is not an IP address", n.address.get_ref()),
            )
        })?;
        let mac = crate::config::parse_mac(n.mac.get_ref()).ok_or_else(|| {
            t.err(
                n.mac.span(),
                "neighbours.mac",
                format!("{:?} is not a MAC address", n.mac.get_ref()),
            )
        })?;
        let port = t.port(&n.port, "neighbours.port")?;
        cfg.neighbours.push(StaticNeighbour { ip, mac, port });
    }

    let names = |name: &str| t.port(&Spanned::new(0..0, name.to_string()), "").ok();
    if let Some(file) = &c.routes {
        let path = t.base.join(file.get_ref());
        let text =
            routes::read_text(&path).map_err(|e| t.err(file.span(), "routes", e.to_string()))?;
        let fname = path.display().to_string();
        rib.reserve(text.bytes().filter(|&b| b == b'\n').count());
        let format = c
            .routes_format
            .as_ref()
            .map_or("ip-route", |f| f.get_ref().as_str());
        match format {
            "ip-route" => {
                count += routes::parse_ip_route(&fname, &text, &names, &mut rib)
                    .map_err(|e| t.err(file.span(), "routes", e.to_string()))?;
            }
            "prefix-list" => {
                let (Some(via), Some(dev)) = (&c.prefix_list_via, &c.prefix_list_dev) else {
                    return Err(t.err(
                        file.span(),
                        "prefix_list_via",
                        "a prefix list needs prefix_list_via = \"GATEWAY\" and prefix_list_dev = \"PORT\"",
                    ));
                };
                let gw: IpAddr = via
                    .get_ref()
                    .parse()
                    .map_err(|_| t.err(via.span(), "prefix_list_via", "expected an IP address"))?;
                let port = t.port(dev, "prefix_list_dev")?;
                let hop = Hop::Via { gw, port };
                count += routes::parse_prefix_list(&fname, &text, |p, _| {
                    rib.insert(p, vec![hop]);
                })
                .map_err(|e| t.err(file.span(), "routes", e.to_string()))?;
            }
            other => {
                let span = c.routes_format.as_ref().map_or(0..0, |f| f.span());
                return Err(t.err(
                    span,
                    "routes_format",
                    format!("{other:?}: expected \"ip-route\" or \"prefix-list\""),
                ));
            }
        }
    }
    if let Some(lines) = &c.static_routes {
        let text = lines.get_ref().join("\n");
        count += routes::parse_ip_route("static_routes", &text, &names, &mut rib)
            .map_err(|e| t.err(lines.span(), "static_routes", e.to_string()))?;
    }

    if let Some(r) = c.icmp_rate {
        cfg.icmp_rate = r;
    }
    if let Some(b) = c.icmp_burst {
        cfg.icmp_burst = b;
    }
    if let Some(h) = &c.hold {
        if *h.get_ref() > 64 {
            return Err(t.err(h.span(), "hold", "expected 0 to 64"));
        }
        cfg.hold = *h.get_ref();
    }
    if let Some(s) = c.neighbour_timeout_s {
        cfg.reachable_ns = s.saturating_mul(1_000_000_000);
    }
    if let Some(ms) = c.arp_retry_ms {
        cfg.retry_ns = ms.saturating_mul(1_000_000);
    }
    if let Some(r) = c.arp_retries {
        cfg.retries = r;
    }
    let fib = rib
        .build(1)
        .map_err(|e| t.err(0..0, "routes", e.to_string()))?;
    Ok(Box::new(RouterSpec {
        fib: FibCell::new(fib),
        cfg,
        routes: count,
    }))
}
