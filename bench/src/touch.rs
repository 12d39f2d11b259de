//! `touch`: the cheapest forward-like stage, for measuring what a stage in the chain costs.
//!
//! Each `touch` reads the Ethernet header of every packet (destination MAC and EtherType, so the
//! first cache line of the data is really loaded), folds it into a counter so the read is not
//! optimised away, and sends the packet to a fixed egress port. A chain of N touches is the
//! engine's per-stage overhead (the stage call, the `Next` array, the all-continue check) plus N
//! header reads; the `chain-length` scenario plots it for N = 1..8.

use dataplane::stage::{Ctx, Next, Stage};
use pmd::Mbuf;

/// The touch stage.
pub struct Touch {
    out: u16,
    sum: u64,
}

impl Touch {
    /// A touch stage sending everything to port `out`.
    pub fn new(out: u16) -> Touch {
        Touch { out, sum: 0 }
    }
}

impl Stage for Touch {
    fn name(&self) -> &str {
        "touch"
    }

    #[inline]
    fn process(&mut self, _ctx: &mut Ctx, pkts: &mut [Mbuf], _nexts: &mut [Next]) {
        let mut sum = self.sum;
        for m in pkts.iter_mut() {
            if let Some(h) = m.data().get(..14) {
                sum = sum
                    .wrapping_add(u64::from(h[0]) ^ u64::from(u16::from_be_bytes([h[12], h[13]])));
            }
            m.set_egress(self.out);
        }
        self.sum = sum;
    }

    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}
