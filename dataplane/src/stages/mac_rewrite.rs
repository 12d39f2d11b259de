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
    fn process(&mut self, _ctx: &Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
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
