//! MAC rewrite: set the Ethernet source and/or destination address.
//!
//! What a bump-in-the-wire VNF needs to hand frames to the next hop: the destination becomes
//! the next hop's MAC, the source becomes the egress port's own MAC (or a fixed address).

use pmd::mbuf::NO_EGRESS;
use pmd::Mbuf;

use crate::stage::{Ctx, DropReason, Next, Stage};

/// Where the new source MAC comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrcMac {
    /// Leave it.
    Keep,
    /// This address.
    Fixed([u8; 6]),
    /// The MAC of the egress port chosen by an earlier stage (the input port's if none).
    EgressPort,
}

/// The MAC rewrite stage.
pub struct MacRewrite {
    dst: Option<[u8; 6]>,
    src: SrcMac,
    port_macs: Vec<[u8; 6]>,
}

impl MacRewrite {
    /// A rewrite with the given addresses; `port_macs[i]` is port i's MAC.
    pub fn new(dst: Option<[u8; 6]>, src: SrcMac, port_macs: Vec<[u8; 6]>) -> MacRewrite {
        MacRewrite {
            dst,
            src,
            port_macs,
        }
    }
}

impl Stage for MacRewrite {
    fn name(&self) -> &str {
        "mac-rewrite"
    }

    #[inline]
    fn process(&mut self, _ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
            let src = match self.src {
                SrcMac::Keep => None,
                SrcMac::Fixed(a) => Some(a),
                SrcMac::EgressPort => {
                    let p = if m.egress() == NO_EGRESS {
                        m.port()
                    } else {
                        m.egress()
                    };
                    self.port_macs.get(p as usize).copied()
                }
            };
            let d = m.data_mut();
            if d.len() < 14 {
                *n = Next::drop(DropReason::Malformed);
                continue;
            }
            if let Some(dst) = self.dst {
                d[0..6].copy_from_slice(&dst);
            }
            if let Some(src) = src {
                d[6..12].copy_from_slice(&src);
            }
        }
    }
}

/// `[[stage]] kind = "mac-rewrite"`: `dst = "MAC"`, `src = "egress-port" | "keep" | "MAC"`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MacRewriteToml {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    dst: Option<toml::Spanned<String>>,
    #[serde(default)]
    src: Option<toml::Spanned<String>>,
}

/// Resolved MAC rewrite settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacRewriteSpec {
    /// New destination.
    pub dst: Option<[u8; 6]>,
    /// New source.
    pub src: SrcMac,
}

impl crate::config::StageSpec for MacRewriteSpec {
    fn kind(&self) -> &'static str {
        "mac-rewrite"
    }
    fn build(&self, env: &crate::config::BuildEnv) -> Box<dyn Stage> {
        Box::new(MacRewrite::new(self.dst, self.src, env.port_macs.clone()))
    }
    fn describe(&self, _ports: &[crate::config::PortConfig]) -> Vec<String> {
        vec![format!("dst {:?}, src {:?}", self.dst, self.src)]
    }
}

/// Parses a mac-rewrite stage's table.
pub fn parse_config(
    t: &crate::config::StageTable<'_>,
) -> Result<Box<dyn crate::config::StageSpec>, crate::config::ConfigError> {
    use crate::config::parse_mac;
    let c: MacRewriteToml = t.parse()?;
    let dst = match &c.dst {
        Some(s) => Some(parse_mac(s.get_ref()).ok_or_else(|| {
            t.err(
                s.span(),
                "dst",
                format!("{:?} is not a MAC address", s.get_ref()),
            )
        })?),
        None => None,
    };
    let src = match &c.src {
        None => SrcMac::Keep,
        Some(s) if s.get_ref() == "egress-port" => SrcMac::EgressPort,
        Some(s) if s.get_ref() == "keep" => SrcMac::Keep,
        Some(s) => SrcMac::Fixed(parse_mac(s.get_ref()).ok_or_else(|| {
            t.err(
                s.span(),
                "src",
                format!(
                    "{:?} is not \"egress-port\", \"keep\" or a MAC address",
                    s.get_ref()
                ),
            )
        })?),
    };
    Ok(Box::new(MacRewriteSpec { dst, src }))
}
