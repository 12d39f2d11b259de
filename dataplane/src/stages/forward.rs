//! Port-to-port forwarding: every packet from input port A leaves by port B.
//!
//! The simplest useful stage (a patch panel, or testpmd's io mode). It chooses the egress port
//! and lets the packet carry on, so stages after it (a MAC rewrite) still see it. A packet from
//! a port with no rule is dropped and counted, never sent somewhere by accident.

use pmd::mbuf::NO_EGRESS;
use pmd::Mbuf;

use crate::stage::{Ctx, DropReason, Next, Stage};

/// Largest port number a forward map covers.
pub const MAX_PORTS: usize = 64;

/// The forward stage.
pub struct Forward {
    map: [u16; MAX_PORTS],
}

impl Forward {
    /// Forwards input port `from` to `to` for each pair.
    pub fn new(pairs: &[(u16, u16)]) -> Forward {
        let mut map = [NO_EGRESS; MAX_PORTS];
        for &(from, to) in pairs {
            if (from as usize) < MAX_PORTS {
                map[from as usize] = to;
            }
        }
        Forward { map }
    }

    /// Where packets of input `port` go (`NO_EGRESS`: no rule).
    #[inline(always)]
    fn to(&self, port: u16) -> u16 {
        self.map
            .get(usize::from(port))
            .copied()
            .unwrap_or(NO_EGRESS)
    }
}

impl Stage for Forward {
    fn name(&self) -> &str {
        "forward"
    }

    fn patch(&self) -> Option<&[u16]> {
        Some(&self.map)
    }

    #[inline]
    fn process(&mut self, _ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        // A burst usually comes from one port: look its rule up once.
        let Some(first) = pkts.first() else { return };
        let (p0, to0) = (first.port(), self.to(first.port()));
        for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
            let to = if m.port() == p0 {
                to0
            } else {
                self.to(m.port())
            };
            if to == NO_EGRESS {
                *n = Next::drop(DropReason::NoForwardRule);
            } else {
                m.set_egress(to);
            }
        }
    }
}

/// `[[stage]] kind = "forward"`: `to = "port"` (every other port forwards there) and/or
/// `routes = { from = "to", ... }` (explicit pairs, which win over `to`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardToml {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    to: Option<toml::Spanned<String>>,
    #[serde(default)]
    routes: Option<toml::Spanned<std::collections::BTreeMap<String, toml::Spanned<String>>>>,
}

/// Resolved forward settings: (input port, output port) pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    /// Port pairs.
    pub routes: Vec<(u16, u16)>,
}

impl crate::config::StageSpec for ForwardSpec {
    fn kind(&self) -> &'static str {
        "forward"
    }
    fn build(&self, _env: &crate::config::BuildEnv) -> Box<dyn Stage> {
        Box::new(Forward::new(&self.routes))
    }
    fn describe(&self, ports: &[crate::config::PortConfig]) -> Vec<String> {
        self.routes
            .iter()
            .map(|&(f, t)| format!("{} -> {}", ports[f as usize].name, ports[t as usize].name))
            .collect()
    }
}

/// Parses a forward stage's table.
pub fn parse_config(
    t: &crate::config::StageTable<'_>,
) -> Result<Box<dyn crate::config::StageSpec>, crate::config::ConfigError> {
    let c: ForwardToml = t.parse()?;
    let mut pairs = Vec::new();
    if let Some(to) = &c.to {
        let dst = t.port(to, "to")?;
        pairs.extend(
            (0..t.port_count() as u16)
                .filter(|&p| p != dst)
                .map(|p| (p, dst)),
        );
    }
    if let Some(routes) = &c.routes {
        for (from, to) in routes.get_ref() {
            let f = t.port(&toml::Spanned::new(routes.span(), from.clone()), "routes")?;
            let dst = t.port(to, "routes")?;
            pairs.retain(|&(a, _)| a != f);
            pairs.push((f, dst));
        }
    }
    if pairs.is_empty() {
        return Err(t.err(
            0..0,
            "routes",
            "a forward stage needs `to = \"port\"` or `routes = { from = \"to\" }`",
        ));
    }
    pairs.sort_unstable();
    Ok(Box::new(ForwardSpec { routes: pairs }))
}
