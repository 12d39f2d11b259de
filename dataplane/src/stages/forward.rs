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
}

impl Stage for Forward {
    fn name(&self) -> &str {
        "forward"
    }

    #[inline]
    fn process(&mut self, _ctx: &Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
        for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
            let to = self
                .map
                .get(m.port() as usize)
                .copied()
                .unwrap_or(NO_EGRESS);
            if to == NO_EGRESS {
                *n = Next::drop(DropReason::NoForwardRule);
            } else {
                m.set_egress(to);
            }
        }
    }
}
