//! The stage model: how a VNF stage sees packets.
//!
//! A stage works on a whole burst at once, like a VPP graph node: it reads the packets, changes
//! them in place, and writes one [`Next`] per packet: carry on down the chain, leave by a port
//! now, go to the control plane, or be dropped for a named [`DropReason`]. The engine then
//! scatters the burst once: packets that carry on stay together (compacted, in order) for the
//! next stage, the rest go to their port's transmit buffer, the control plane, or the drop
//! counters. A stage never touches a port, a clock or a thread: it is handed `now` (from the
//! worker's TSC clock online, from the capture's timestamps in replay), so its timers run on a
//! virtual clock in tests.
//!
//! Drop reasons are one enum with per-worker counters, never errors or log lines on the packet
//! path. Engine-wide reasons are [`DropReason`]; each stage also names its own reasons
//! ([`Stage::drop_reasons`], counted per stage like a VPP node's error counters).
//!
//! A stage may also create packets (an ICMP error, an ARP request), hold packets (waiting for
//! a neighbour) and do timer work; [`Ctx`] gives it the means, and keeps the accounting exact.

use pmd::Mbuf;

/// Where a packet goes after a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub struct Next(u16);

const PORT_BIT: u16 = 0x8000;
const DROP_BIT: u16 = 0x4000;
const LOCAL_BIT: u16 = 0x2000;
const HANDOFF_BIT: u16 = 0x1000;

/// Most drop reasons one stage may declare ([`Stage::drop_reasons`]).
pub const MAX_STAGE_DROPS: usize = 32;

impl Next {
    /// On to the next stage; after the last stage, out of the egress port the packet carries
    /// ([`Mbuf::set_egress`]), or dropped as [`DropReason::NoEgress`] if none was chosen.
    pub const CONTINUE: Next = Next(0);
    /// To the control plane (slow path).
    pub const CONTROL: Next = Next(1);
    /// Handed to the stage's [`Stage::hold`] (e.g. waiting for a neighbour to resolve).
    pub const HOLD: Next = Next(2);

    /// True when every one of `nexts` is [`Next::CONTINUE`]: an OR of them all, which the
    /// compiler turns into a few vector instructions (a search for the first other one would
    /// be a branch per packet).
    #[inline(always)]
    pub fn all_continue(nexts: &[Next]) -> bool {
        nexts.iter().fold(0, |a, n| a | n.0) == Next::CONTINUE.0
    }

    /// Out of port `p` now, skipping the rest of the chain.
    #[inline(always)]
    pub const fn port(p: u16) -> Next {
        Next(PORT_BIT | (p & 0x3fff))
    }

    /// To worker `w` (of the run-to-completion workers), which runs the packet through this
    /// same stage again and then the rest of the chain: for state another worker owns (a NAT
    /// mapping made there). The stage sees it again with [`Mbuf::handed_over`] set and must
    /// finish it there; a second handoff is dropped as `handoff_loop`. Layouts without
    /// several run-to-completion workers drop it as `handoff_unsupported`.
    #[inline(always)]
    pub const fn handoff(w: u16) -> Next {
        Next(HANDOFF_BIT | (w & 0x0fff))
    }

    /// Dropped, counted under `r`.
    #[inline(always)]
    pub const fn drop(r: DropReason) -> Next {
        Next(DROP_BIT | r as u16)
    }

    /// Dropped for the stage's own reason number `code`, an index into its
    /// [`Stage::drop_reasons`] (counted per stage, like a VPP node's error counters).
    #[inline(always)]
    pub const fn stage_drop(code: u8) -> Next {
        Next(DROP_BIT | LOCAL_BIT | code as u16)
    }

    /// Decodes the step.
    #[inline(always)]
    pub fn kind(self) -> NextKind {
        if self.0 & PORT_BIT != 0 {
            NextKind::Port(self.0 & 0x3fff)
        } else if self.0 & DROP_BIT != 0 {
            if self.0 & LOCAL_BIT != 0 {
                NextKind::StageDrop((self.0 & 0xff) as u8)
            } else {
                NextKind::Drop(DropReason::from_u16(self.0 & 0xff))
            }
        } else if self.0 & HANDOFF_BIT != 0 {
            NextKind::Handoff(self.0 & 0x0fff)
        } else if self == Next::CONTROL {
            NextKind::Control
        } else if self == Next::HOLD {
            NextKind::Hold
        } else {
            NextKind::Continue
        }
    }
}

/// A decoded [`Next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextKind {
    /// On to the next stage.
    Continue,
    /// Out of this port.
    Port(u16),
    /// To the control plane.
    Control,
    /// Held by the stage.
    Hold,
    /// To this worker, to run this stage again there.
    Handoff(u16),
    /// Dropped, for an engine-wide reason.
    Drop(DropReason),
    /// Dropped, for the stage's own reason (index into [`Stage::drop_reasons`]).
    StageDrop(u8),
}

macro_rules! drop_reasons {
    ($($variant:ident = $name:literal: $doc:literal,)*) => {
        /// Why the dataplane dropped a packet. Every drop is counted under one of these.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason { $(#[doc = $doc] $variant,)* }

        impl DropReason {
            /// All reasons, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// Stable counter name.
            pub fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            fn from_u16(v: u16) -> DropReason {
                Self::ALL.get(v as usize).copied().unwrap_or(DropReason::Internal)
            }
        }
    };
}

drop_reasons! {
    Internal = "internal": "An engine invariant failed (should never be counted).",
    NoEgress = "no_egress": "The packet reached the end of the chain without an egress port.",
    BadPort = "bad_port": "A stage chose a port that does not exist.",
    NoControlPlane = "no_control_plane": "Punted to the control plane, which has no handler for it yet.",
    TxFull = "tx_full": "The egress port's transmit queue stayed full.",
    HandoffFull = "handoff_full": "The ring to another core stayed full.",
    Malformed = "malformed": "Headers could not be parsed.",
    NoForwardRule = "no_forward_rule": "The forward stage has no rule for the input port.",
    EmitOverflow = "emit_overflow": "A stage emitted more packets than fit in one burst.",
    HoldRefused = "hold_refused": "A stage asked to hold a packet and then refused it.",
    HandoffUnsupported = "handoff_unsupported": "A stage handed a packet to another worker in a layout without several run-to-completion workers.",
    HandoffLoop = "handoff_loop": "A stage handed over a packet that had already been handed over once.",
    HandoffLate = "handoff_late": "A packet was handed to a worker after the workers had stopped (shutdown).",
}

/// Per-worker drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters([0; DropReason::COUNT])
    }
}

impl DropCounters {
    /// Counts one drop.
    #[inline(always)]
    pub fn count(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }
    /// Total.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Adds another set.
    pub fn add(&mut self, o: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
    /// Non-zero counters by name.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.0.iter())
            .filter(|(_, &v)| v != 0)
            .map(|(r, &v)| (r.name(), v))
    }
}

/// Which worker the engine dispatches a flow's packets to ([`Ctx::flow_placer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowPlacer {
    workers: usize,
}

impl FlowPlacer {
    /// The worker that the packets of `frame`'s flow are dispatched to, were they not
    /// fragmented: for a first fragment, which the dispatch places with the rest of its
    /// datagram by addresses and protocol only, the worker that tracks its connection. `None`
    /// for a non-first fragment or a frame that does not parse.
    #[inline]
    pub fn worker(&self, frame: &[u8]) -> Option<usize> {
        let h = crate::engine::unfragmented_flow_hash(frame)?;
        Some(crate::engine::worker_for_hash(h, self.workers))
    }
}

/// What a stage is given besides the burst: the time, and the means to create packets, and
/// to release or give up packets it holds.
///
/// Accounting stays exact: a packet from [`Ctx::alloc`] counts as *created*; a packet a stage
/// holds (after `Next::HOLD`) counts as *held* until the stage emits it or gives it up with
/// [`Ctx::drop_held`]. The engine checks `received + created = sent + dropped + held`.
pub struct Ctx<'a> {
    /// Nanoseconds now, from the worker's clock (TSC online, capture timestamps in replay).
    pub now: u64,
    /// Index of the worker running the stage.
    pub worker: usize,
    /// Index of the stage in the worker's chain (where a handoff resumes).
    pub(crate) stage: usize,
    /// Whether this layout can hand packets to other workers ([`Next::handoff`]).
    pub(crate) can_handoff: bool,
    /// Workers the flow hash alone places packets on (see [`Ctx::flow_placer`]); 0 if not so.
    pub(crate) flow_workers: usize,
    pub(crate) cache: &'a mut pmd::PoolCache,
    pub(crate) emitted: &'a mut pmd::Burst,
    /// Where [`Ctx::resume`] puts packets back into the chain (`None` outside `process`).
    pub(crate) resumed: Option<&'a mut pmd::Burst>,
    pub(crate) created: &'a mut u64,
    pub(crate) drops: &'a mut DropCounters,
    pub(crate) local_drops: &'a mut [u64; MAX_STAGE_DROPS],
}

impl Ctx<'_> {
    /// A fresh, empty buffer from the worker's pool (`None` when the pool is exhausted).
    /// It must end in [`Ctx::emit`] or [`Ctx::free_created`].
    #[inline]
    pub fn alloc(&mut self) -> Option<Mbuf> {
        let m = self.cache.alloc()?;
        *self.created += 1;
        Some(m)
    }

    /// Sends a packet the stage created or held: it leaves by its egress port
    /// ([`Mbuf::set_egress`]) when the stage returns, skipping the rest of the chain. In replay,
    /// give it the sequence number of the packet that caused it (`set_seq`) so output order is
    /// the same in every layout.
    #[inline]
    pub fn emit(&mut self, m: Mbuf) {
        if let Err(m) = self.emitted.push(m) {
            self.drops.count(DropReason::EmitOverflow);
            self.cache.free(m);
        }
    }

    /// Puts a packet this stage held back into the chain: it goes on to the next stage with
    /// the burst being processed, as if it had just arrived there (a fragment the firewall held
    /// until its first fragment's verdict goes on through NAT and the router). In `process`
    /// only: from `poll` or `flush`, where no burst is moving, it is emitted instead by its
    /// egress port. In replay it keeps its own sequence number, so output order holds.
    #[inline]
    pub fn resume(&mut self, m: Mbuf) {
        match self.resumed.as_deref_mut() {
            Some(b) => {
                if let Err(m) = b.push(m) {
                    self.drops.count(DropReason::EmitOverflow);
                    self.cache.free(m);
                }
            }
            None => self.emit(m),
        }
    }

    /// Hands a packet this stage held to worker `w`, which runs it through this stage again
    /// (see [`Next::handoff`]); from `process` or `poll`. Dropped and counted where the layout
    /// has no such workers, or if the packet was handed over before.
    #[inline]
    pub fn handoff(&mut self, mut m: Mbuf, w: u16) {
        if !self.can_handoff {
            self.drops.count(DropReason::HandoffUnsupported);
            self.cache.free(m);
        } else if m.handed_over() {
            self.drops.count(DropReason::HandoffLoop);
            self.cache.free(m);
        } else {
            m.set_handoff(w, self.stage as u16);
            self.emit(m);
        }
    }

    /// Whether this layout can hand packets to other workers ([`Next::handoff`]): several
    /// run-to-completion workers behind an I/O thread.
    #[inline]
    pub fn can_handoff(&self) -> bool {
        self.can_handoff
    }

    /// Where the flow hash alone places packets on several workers: the means to tell which
    /// worker a flow lives on ([`FlowPlacer::worker`]). `None` where that is not known: one
    /// worker, no I/O thread dispatching (workers owning their queues, where the device's
    /// hash places packets), a pipeline, or a stage steering packets (a NAT, which places
    /// fragments itself).
    #[inline]
    pub fn flow_placer(&self) -> Option<FlowPlacer> {
        (self.flow_workers >= 2 && self.can_handoff).then_some(FlowPlacer {
            workers: self.flow_workers,
        })
    }

    /// Gives up a held packet, counted under the stage's own reason `code`.
    #[inline]
    pub fn drop_held(&mut self, m: Mbuf, code: u8) {
        match self.local_drops.get_mut(code as usize) {
            Some(n) => *n += 1,
            None => self.drops.count(DropReason::Internal),
        }
        self.cache.free(m);
    }

    /// Returns a buffer from [`Ctx::alloc`] that will not be sent after all.
    #[inline]
    pub fn free_created(&mut self, m: Mbuf) {
        *self.created -= 1;
        self.cache.free(m);
    }

    /// Room left for emitted packets in this call (a burst's worth at most).
    #[inline]
    pub fn emit_room(&self) -> usize {
        self.emitted.room()
    }
}

/// A VNF stage.
pub trait Stage: Send {
    /// Kind name (for `check` and counters).
    fn name(&self) -> &str;

    /// Processes a burst: for each `pkts[i]` set `nexts[i]` (they arrive as
    /// [`Next::CONTINUE`]). `pkts.len() == nexts.len()`.
    fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]);

    /// Takes a packet the stage marked [`Next::HOLD`]; give it back (`Err`) to have it dropped
    /// as `hold_refused`. Held packets leave later through [`Ctx::emit`] or
    /// [`Ctx::drop_held`].
    fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        Err(m)
    }

    /// Packets held now.
    fn held(&self) -> usize {
        0
    }

    /// Timer work (ageing, retries, expiring held packets), called after each burst and when
    /// the worker is idle. Must be cheap when there is nothing to do.
    fn poll(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }

    /// Shutdown: release or give up everything held.
    fn flush(&mut self, ctx: &mut Ctx) {
        let _ = ctx;
    }

    /// Names of the stage's own drop reasons; `Next::stage_drop(i)` counts under the i-th.
    /// At most [`MAX_STAGE_DROPS`]; names are stable counter names (`ttl_exceeded`).
    fn drop_reasons(&self) -> &[&'static str] {
        &[]
    }

    /// The stage's own counters, by name.
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }

    /// For a stage that does nothing but send every packet of input port `p` out of port
    /// `map[p]` (it reads no byte of the packet, keeps no state and counts nothing per packet):
    /// that map (`pmd::mbuf::NO_EGRESS`, or a port past its end: no rule). A chain of one such
    /// stage lets the engine pass bursts between ports without running it (cut-through, see
    /// `engine`). `None` for every other stage.
    fn patch(&self) -> Option<&[u16]> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_round_trips() {
        assert_eq!(Next::CONTINUE.kind(), NextKind::Continue);
        assert_eq!(Next::CONTROL.kind(), NextKind::Control);
        assert_eq!(Next::HOLD.kind(), NextKind::Hold);
        assert_eq!(Next::port(7).kind(), NextKind::Port(7));
        assert_eq!(Next::handoff(0).kind(), NextKind::Handoff(0));
        assert_eq!(Next::handoff(4095).kind(), NextKind::Handoff(4095));
        for &r in DropReason::ALL {
            assert_eq!(Next::drop(r).kind(), NextKind::Drop(r));
        }
        for c in [0u8, 5, 31] {
            assert_eq!(Next::stage_drop(c).kind(), NextKind::StageDrop(c));
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
