//! Running a burst through a run of stages, and the one scatter per stage.
//!
//! After each stage the burst is checked once: if every packet carries on (the common case on
//! the fast path) nothing moves. Otherwise the packets that carry on are compacted in order at
//! the front and the others leave: to the `leaving` burst (with their egress port set), to the
//! drop counters, to the stage's hold, or to the control plane. A packet is scattered exactly
//! once. Packets a stage emits (created, or released from its hold) join `leaving` as soon as
//! the stage returns. A packet handed to another worker also joins `leaving`, marked with its
//! worker and the stage to resume at; [`ChainRunner::run_from`] runs it there.
//!
//! Stages normally run in the chain's order. [`Orders`] can give the packets of an input port
//! another order of the same stages: netfilter runs a NAT's inbound translation (PREROUTING)
//! before its filter and the outbound one (POSTROUTING) after, so a stateful firewall sees both
//! directions of a NATed connection with the inside tuple; here the chain `firewall, nat44,
//! router` with `outside = [nat44, firewall, router]` does the same. A burst of mixed ports
//! runs as consecutive sub-bursts, one per run of packets of one order, in burst order. A held
//! packet a stage releases while a burst of another order runs goes on from that stage in its
//! own order once the burst is done.

use pmd::mbuf::{FLAG_COPY, FLAG_TX_CSUM, NO_EGRESS};
use pmd::{Burst, Mbuf, PoolCache, BURST_MAX};

use crate::stage::{Ctx, DropCounters, DropReason, Next, NextKind, Stage, MAX_STAGE_DROPS};

/// The order stages run in, by input port: the chain's own, or another one (a permutation of
/// the same stages) for the ports that have one.
#[derive(Debug, Clone, Default)]
pub struct Orders {
    /// The order number of each port (0: the chain's order); empty when no port has its own.
    by_port: Vec<u8>,
    /// Stage indexes of each order; order 0 is `0..stages`.
    seqs: Vec<Box<[u16]>>,
}

impl Orders {
    /// Every port runs the stages in the chain's order.
    pub fn chain(stages: usize) -> Orders {
        Orders {
            by_port: Vec::new(),
            seqs: vec![(0..stages as u16).collect()],
        }
    }

    /// `custom` gives some ports their own order: `(port, stage indexes)`, each a permutation
    /// of `0..stages` (checked: an error names the port).
    pub fn new(stages: usize, custom: &[(u16, Vec<usize>)]) -> Result<Orders, String> {
        let mut o = Orders::chain(stages);
        for (port, seq) in custom {
            let mut seen = vec![false; stages];
            let permutation = seq.len() == stages
                && seq
                    .iter()
                    .all(|&s| s < stages && !std::mem::replace(&mut seen[s], true));
            if !permutation {
                return Err(format!(
                    "port {port}: the order must name each of the {stages} stages once"
                ));
            }
            let seq: Box<[u16]> = seq.iter().map(|&s| s as u16).collect();
            let k = match o.seqs.iter().position(|x| *x == seq) {
                Some(k) => k,
                None => {
                    o.seqs.push(seq);
                    o.seqs.len() - 1
                }
            };
            if k > usize::from(u8::MAX) {
                return Err("too many distinct orders".into());
            }
            let p = usize::from(*port);
            if o.by_port.len() <= p {
                o.by_port.resize(p + 1, 0);
            }
            o.by_port[p] = k as u8;
        }
        if o.seqs.len() == 1 {
            o.by_port.clear();
        }
        Ok(o)
    }

    /// True when some port has an order of its own.
    #[inline(always)]
    pub fn custom(&self) -> bool {
        !self.by_port.is_empty()
    }

    #[inline(always)]
    fn of(&self, port: u16) -> usize {
        self.by_port.get(usize::from(port)).copied().unwrap_or(0) as usize
    }

    /// The stage indexes of order `o` from its position `from` on.
    fn seq(&self, o: usize, from: usize) -> impl Iterator<Item = usize> + '_ {
        self.seqs
            .get(o)
            .and_then(|s| s.get(from..))
            .unwrap_or(&[])
            .iter()
            .map(|&s| usize::from(s))
    }

    /// Where stage `si` is in order `o`.
    fn position(&self, o: usize, si: usize) -> Option<usize> {
        self.seqs.get(o)?.iter().position(|&s| usize::from(s) == si)
    }
}

/// Where a run starts: the first stage of the packet's order, or the stage a handed-over
/// packet resumes at.
#[derive(Clone, Copy)]
enum Start {
    Beginning,
    At(usize),
}

/// Held packets released in a run of another order wait here, with their order and the
/// position to go on from (at most this many; more are dropped as `emit_overflow`).
const DETOUR_MAX: usize = 2 * BURST_MAX;

/// Per-thread scratch and counters for running stages.
pub struct ChainRunner {
    nexts: [Next; BURST_MAX],
    emitted: Burst,
    /// Held packets a stage put back into the chain ([`Ctx::resume`]).
    resumed: Burst,
    /// Drops by engine-wide reason.
    pub drops: DropCounters,
    /// Drops by each stage's own reasons: `stage_drops[stage][code]`.
    pub stage_drops: Vec<[u64; MAX_STAGE_DROPS]>,
    /// Packets that entered this thread's stages.
    pub processed: u64,
    /// Packets the stages created.
    pub created: u64,
    /// Whether stages may hand packets to other workers ([`Next::handoff`]): only the
    /// run-to-completion workers behind an I/O thread can.
    pub can_handoff: bool,
    /// Workers the I/O thread places packets on by their flow hash alone (no stage steers):
    /// stages can then tell which worker a flow lives on ([`Ctx::flow_placer`]); 0 otherwise.
    pub flow_workers: usize,
    /// Broadcast copies ([`pmd::Mbuf::is_copy`]) consumed: whatever a stage answers for a copy
    /// other than carrying on or holding it, and at the end of the chain.
    pub copies_consumed: u64,
    /// The stage order of each input port.
    pub orders: Orders,
    /// Per port: its device fills the checksums a stage left to transmit
    /// ([`pmd::Mbuf::request_tx_csum`]). For any other port (and any port not listed) they
    /// are filled in software as the packet leaves the chain, where it is touched anyway.
    pub offload_csum: Vec<bool>,
    /// Held packets released during a run of another order: (packet, order, position).
    detour: Vec<(Mbuf, u8, u16)>,
    /// Scratch bursts for runs by order.
    part: Option<Box<Burst>>,
    done: Option<Box<Burst>>,
}

impl ChainRunner {
    /// A runner for a run of `stages` stages.
    pub fn new(stages: usize) -> ChainRunner {
        ChainRunner {
            nexts: [Next::CONTINUE; BURST_MAX],
            emitted: Burst::new(),
            resumed: Burst::new(),
            drops: DropCounters::default(),
            stage_drops: vec![[0; MAX_STAGE_DROPS]; stages],
            processed: 0,
            created: 0,
            can_handoff: false,
            flow_workers: 0,
            copies_consumed: 0,
            orders: Orders::chain(stages),
            offload_csum: Vec::new(),
            detour: Vec::with_capacity(DETOUR_MAX),
            part: Some(Box::default()),
            done: Some(Box::default()),
        }
    }

    /// Total of the stages' own drops.
    pub fn stage_drop_total(&self) -> u64 {
        self.stage_drops.iter().flatten().sum()
    }

    /// Runs `burst` through `stages`. Packets that leave early are appended to `leaving` with
    /// their egress set (or dropped and counted); survivors stay in `burst`, in order.
    /// `leaving` is flushed by the caller after each call, so it has room for a burst plus
    /// what the stages emit.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn run(
        &mut self,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        self.processed += burst.len() as u64;
        self.run_at(
            Start::Beginning,
            now,
            worker,
            stages,
            burst,
            leaving,
            cache,
            nports,
        );
    }

    /// [`ChainRunner::run`] from stage `first` on: packets another worker handed over
    /// ([`Next::handoff`]) resume at the stage that asked for it. They were counted as
    /// processed where they entered the chain.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn run_from(
        &mut self,
        first: usize,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        self.run_at(
            Start::At(first),
            now,
            worker,
            stages,
            burst,
            leaving,
            cache,
            nports,
        );
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn run_at(
        &mut self,
        start: Start,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        if !self.orders.custom() {
            // The chain's order: the stage indexes themselves, nothing to look up.
            let from = match start {
                Start::Beginning => 0,
                Start::At(s) => s,
            };
            let n = stages.len();
            self.run_seq(
                from..n,
                None,
                now,
                worker,
                stages,
                burst,
                leaving,
                cache,
                nports,
            );
            return;
        }
        let orders = std::mem::take(&mut self.orders);
        self.run_orders(
            &orders, start, now, worker, stages, burst, leaving, cache, nports,
        );
        self.orders = orders;
    }

    /// [`ChainRunner::run_at`] when ports have orders of their own: one sub-burst per run of
    /// packets of one order, in burst order, then the detours; the survivors of all go back
    /// into `burst`.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn run_orders(
        &mut self,
        orders: &Orders,
        start: Start,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        let mut part = self.part.take().unwrap_or_default();
        let mut done = self.done.take().unwrap_or_default();
        while let Some(first) = burst.as_slice().first() {
            // The leading run of packets of one order: runs go in burst order, so a packet
            // never overtakes one that arrived before it on another port (a reply its
            // request's stage state must already hold).
            let o = orders.of(first.port());
            burst.move_run_to(&mut part, |m| orders.of(m.port()) == o);
            let from = match start {
                Start::Beginning => 0,
                Start::At(s) => orders.position(o, s).unwrap_or(usize::MAX),
            };
            self.run_seq(
                orders.seq(o, from),
                Some((orders, o)),
                now,
                worker,
                stages,
                &mut part,
                leaving,
                cache,
                nports,
            );
            self.keep(&mut part, &mut done, cache);
        }
        while let Some(&(_, o, from)) = self.detour.first() {
            let mut i = 0;
            while i < self.detour.len() {
                if (self.detour[i].1, self.detour[i].2) == (o, from) {
                    let (m, _, _) = self.detour.remove(i);
                    if let Err(m) = part.push(m) {
                        self.drops.count(DropReason::EmitOverflow);
                        cache.free(m);
                    }
                } else {
                    i += 1;
                }
            }
            let o = usize::from(o);
            self.run_seq(
                orders.seq(o, usize::from(from)),
                Some((orders, o)),
                now,
                worker,
                stages,
                &mut part,
                leaving,
                cache,
                nports,
            );
            self.keep(&mut part, &mut done, cache);
        }
        self.keep(&mut done, burst, cache);
        self.part = Some(part);
        self.done = Some(done);
    }

    /// Moves the survivors in `from` to the end of `to` (what does not fit is dropped as
    /// `emit_overflow`).
    fn keep(&mut self, from: &mut Burst, to: &mut Burst, cache: &mut PoolCache) {
        if from.append_to(to) {
            return;
        }
        from.retain_owned(|_, m| {
            if let Err(m) = to.push(m) {
                self.drops.count(DropReason::EmitOverflow);
                cache.free(m);
            }
            None
        });
    }

    /// Runs `burst` through the stages `seq` (stage indexes); `order`: the orders and the one
    /// `seq` comes from, when ports have orders of their own.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn run_seq(
        &mut self,
        seq: impl Iterator<Item = usize>,
        order: Option<(&Orders, usize)>,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        let (can_handoff, flow_workers) = (self.can_handoff, self.flow_workers);
        for si in seq {
            let Some(st) = stages.get_mut(si) else {
                break;
            };
            let n = burst.len();
            if n == 0 {
                return;
            }
            let nexts = &mut self.nexts[..n];
            nexts.fill(Next::CONTINUE);
            {
                let mut ctx = Ctx {
                    now,
                    worker,
                    stage: si,
                    can_handoff,
                    flow_workers,
                    cache: &mut *cache,
                    emitted: &mut self.emitted,
                    resumed: Some(&mut self.resumed),
                    created: &mut self.created,
                    drops: &mut self.drops,
                    local_drops: &mut self.stage_drops[si],
                };
                st.process(&mut ctx, burst.as_mut_slice(), nexts);
            }
            if !self.emitted.is_empty() {
                move_emitted(
                    &mut self.emitted,
                    leaving,
                    &mut self.drops,
                    cache,
                    nports,
                    &self.offload_csum,
                );
            }
            if Next::all_continue(&self.nexts[..n]) {
                self.take_resumed(burst, cache, order, si);
                continue;
            }
            let nexts = &self.nexts;
            let offload = &self.offload_csum;
            let drops = &mut self.drops;
            let local = &mut self.stage_drops[si];
            let copies = &mut self.copies_consumed;
            burst.retain_owned(|i, mut m| match nexts[i].kind() {
                NextKind::Continue => Some(m),
                _ if m.is_copy() => {
                    // A broadcast copy has taught the stage what it could: consumed, never
                    // counted as a drop or sent.
                    *copies += 1;
                    cache.free(m);
                    None
                }
                NextKind::Port(p) => {
                    if p >= nports {
                        drops.count(DropReason::BadPort);
                        cache.free(m);
                    } else {
                        m.set_egress(p);
                        fill_unless_offloaded(&mut m, offload);
                        leave(leaving, m, drops, cache);
                    }
                    None
                }
                NextKind::Drop(r) => {
                    drops.count(r);
                    cache.free(m);
                    None
                }
                NextKind::StageDrop(c) => {
                    match local.get_mut(c as usize) {
                        Some(n) => *n += 1,
                        None => drops.count(DropReason::Internal),
                    }
                    cache.free(m);
                    None
                }
                NextKind::Hold => {
                    if let Err(m) = st.hold(m) {
                        drops.count(DropReason::HoldRefused);
                        cache.free(m);
                    }
                    None
                }
                NextKind::Control => {
                    drops.count(DropReason::NoControlPlane);
                    cache.free(m);
                    None
                }
                NextKind::Handoff(w) => {
                    if !can_handoff {
                        drops.count(DropReason::HandoffUnsupported);
                        cache.free(m);
                    } else if m.handed_over() {
                        drops.count(DropReason::HandoffLoop);
                        cache.free(m);
                    } else {
                        m.set_handoff(w, si as u16);
                        leave(leaving, m, drops, cache);
                    }
                    None
                }
            });
            self.take_resumed(burst, cache, order, si);
        }
    }

    /// Puts the packets a stage resumed at the end of `burst`, which goes on to the next stage
    /// (what does not fit a burst is dropped as `emit_overflow`).
    /// A packet of another order (its input port has one) goes on from stage `si` in its own
    /// order after this run (see [`Orders`]).
    #[inline]
    fn take_resumed(
        &mut self,
        burst: &mut Burst,
        cache: &mut PoolCache,
        order: Option<(&Orders, usize)>,
        si: usize,
    ) {
        if self.resumed.is_empty() {
            return;
        }
        if let Some((orders, o)) = order {
            let (detour, drops) = (&mut self.detour, &mut self.drops);
            self.resumed.retain_owned(|_, m| {
                let mo = orders.of(m.port());
                if mo == o {
                    return Some(m);
                }
                let next = orders
                    .position(mo, si)
                    .map_or(usize::from(u16::MAX), |p| p + 1);
                if detour.len() < DETOUR_MAX {
                    detour.push((m, mo as u8, next as u16));
                } else {
                    drops.count(DropReason::EmitOverflow);
                    cache.free(m);
                }
                None
            });
        }
        if self.resumed.append_to(burst) {
            return;
        }
        while let Some(m) = self.resumed.pop() {
            if let Err(m) = burst.push(m) {
                self.drops.count(DropReason::EmitOverflow);
                cache.free(m);
            }
        }
    }

    /// Gives every stage its timer work; what they emit joins `leaving`.
    pub fn poll(
        &mut self,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        self.each_stage(now, worker, stages, leaving, cache, nports, |st, ctx| {
            st.poll(ctx)
        });
    }

    /// Shutdown: every stage releases or gives up what it holds.
    pub fn flush(
        &mut self,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        self.each_stage(now, worker, stages, leaving, cache, nports, |st, ctx| {
            st.flush(ctx)
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn each_stage(
        &mut self,
        now: u64,
        worker: usize,
        stages: &mut [Box<dyn Stage>],
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
        f: impl Fn(&mut Box<dyn Stage>, &mut Ctx),
    ) {
        let (can_handoff, flow_workers) = (self.can_handoff, self.flow_workers);
        for (si, st) in stages.iter_mut().enumerate() {
            let mut ctx = Ctx {
                now,
                worker,
                stage: si,
                can_handoff,
                flow_workers,
                cache: &mut *cache,
                emitted: &mut self.emitted,
                resumed: None,
                created: &mut self.created,
                drops: &mut self.drops,
                local_drops: &mut self.stage_drops[si],
            };
            f(st, &mut ctx);
            if !self.emitted.is_empty() {
                move_emitted(
                    &mut self.emitted,
                    leaving,
                    &mut self.drops,
                    cache,
                    nports,
                    &self.offload_csum,
                );
            }
        }
    }

    /// [`ChainRunner::finish`] for a worker about to transmit: when nothing has left the chain
    /// yet (`leaving` is empty) and every packet of `burst` goes out of one port with nothing
    /// left to do (no copy, no checksum to fill), returns that port and leaves the packets in
    /// `burst`, which the caller sends as it is: one pass over the burst instead of a check, a
    /// copy into `leaving` and a grouping by port. Otherwise finishes as usual (`None`).
    #[inline]
    pub fn finish_one_port(
        &mut self,
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) -> Option<u16> {
        if leaving.is_empty() {
            if let Some(e) = burst.as_slice().first().map(|m| m.egress()) {
                // Without an early exit: no branch per packet.
                let odd = burst.as_slice().iter().fold(0u16, |a, m| {
                    a | (m.egress() ^ e) | u16::from(m.has_any_flag(FLAG_COPY | FLAG_TX_CSUM))
                });
                if e < nports && odd == 0 {
                    return Some(e);
                }
            }
        }
        self.finish(burst, leaving, cache, nports);
        None
    }

    /// End of the chain: every survivor leaves by its egress port, or is dropped.
    #[inline]
    pub fn finish(
        &mut self,
        burst: &mut Burst,
        leaving: &mut Burst,
        cache: &mut PoolCache,
        nports: u16,
    ) {
        // The usual case: every packet has a valid egress, and is neither a copy nor waiting
        // for checksums; one copy of the pointers moves them.
        if burst
            .as_slice()
            .iter()
            .all(|m| m.egress() < nports && !m.has_any_flag(FLAG_COPY | FLAG_TX_CSUM))
            && burst.append_to(leaving)
        {
            return;
        }
        let drops = &mut self.drops;
        let copies = &mut self.copies_consumed;
        let offload = &self.offload_csum;
        burst.retain_owned(|_, mut m| {
            let e = m.egress();
            if m.is_copy() {
                *copies += 1;
                cache.free(m);
            } else if e == NO_EGRESS {
                drops.count(DropReason::NoEgress);
                cache.free(m);
            } else if e >= nports {
                drops.count(DropReason::BadPort);
                cache.free(m);
            } else {
                fill_unless_offloaded(&mut m, offload);
                leave(leaving, m, drops, cache);
            }
            None
        });
    }
}

fn move_emitted(
    emitted: &mut Burst,
    leaving: &mut Burst,
    drops: &mut DropCounters,
    cache: &mut PoolCache,
    nports: u16,
    offload: &[bool],
) {
    emitted.retain_owned(|_, m| {
        if m.handoff().is_some() {
            // On its way to another worker ([`Ctx::handoff`]): its egress names the worker.
            leave(leaving, m, drops, cache);
        } else if m.egress() >= nports {
            drops.count(if m.egress() == NO_EGRESS {
                DropReason::NoEgress
            } else {
                DropReason::BadPort
            });
            cache.free(m);
        } else {
            let mut m = m;
            fill_unless_offloaded(&mut m, offload);
            leave(leaving, m, drops, cache);
        }
        None
    });
}

/// Fills now, in software, the checksums a stage left to transmit, unless the device of the
/// packet's egress port will.
#[inline(always)]
fn fill_unless_offloaded(m: &mut Mbuf, offload: &[bool]) {
    if m.tx_csum().is_some()
        && !offload
            .get(usize::from(m.egress()))
            .copied()
            .unwrap_or(false)
    {
        m.fill_tx_csum();
    }
}

#[inline(always)]
fn leave(leaving: &mut Burst, m: Mbuf, drops: &mut DropCounters, cache: &mut PoolCache) {
    if let Err(m) = leaving.push(m) {
        drops.count(DropReason::EmitOverflow);
        cache.free(m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmd::mem::HugePolicy;
    use pmd::{Pool, PoolConfig};

    /// Appends its id to a trail in the packet (byte 0 counts, bytes 1.. the ids). Holds a
    /// packet whose byte 14 is its id, and releases (resumes) what it holds when a packet
    /// whose byte 15 is its id passes.
    struct Tag {
        id: u8,
        held: Vec<Mbuf>,
    }

    impl Stage for Tag {
        fn name(&self) -> &str {
            "tag"
        }
        fn process(&mut self, ctx: &mut Ctx, pkts: &mut [Mbuf], nexts: &mut [Next]) {
            for (m, n) in pkts.iter_mut().zip(nexts.iter_mut()) {
                let d = m.data_mut();
                let k = usize::from(d[0]);
                d[1 + k] = self.id;
                d[0] += 1;
                if d[14] == self.id {
                    *n = Next::HOLD;
                }
                if d[15] == self.id {
                    for h in self.held.drain(..) {
                        ctx.resume(h);
                    }
                }
            }
        }
        fn hold(&mut self, m: Mbuf) -> Result<(), Mbuf> {
            self.held.push(m);
            Ok(())
        }
        fn held(&self) -> usize {
            self.held.len()
        }
    }

    struct Rig {
        _pool: Pool,
        cache: PoolCache,
        stages: Vec<Box<dyn Stage>>,
        runner: ChainRunner,
    }

    fn rig(custom: &[(u16, Vec<usize>)]) -> Rig {
        let pool = Pool::new(&PoolConfig {
            count: 256,
            huge: HugePolicy::Never,
            ..PoolConfig::default()
        })
        .unwrap();
        let stages: Vec<Box<dyn Stage>> = (0..3u8)
            .map(|id| {
                Box::new(Tag {
                    id: 10 + id,
                    held: Vec::new(),
                }) as Box<dyn Stage>
            })
            .collect();
        let mut runner = ChainRunner::new(3);
        runner.orders = Orders::new(3, custom).unwrap();
        runner.can_handoff = true;
        Rig {
            cache: pool.cache(),
            _pool: pool,
            stages,
            runner,
        }
    }

    impl Rig {
        /// Runs packets (input port, hold at, release at) from the chain's start, or handed
        /// over at stage `at`; returns what left as (input port, trail), sorted.
        fn run(&mut self, pkts: &[(u16, u8, u8)], at: Option<usize>) -> Vec<(u16, Vec<u8>)> {
            let mut burst = Burst::new();
            for &(port, hold, release) in pkts {
                let mut m = self.cache.alloc().unwrap();
                let mut f = [0u8; 64];
                f[14] = hold;
                f[15] = release;
                assert!(m.copy_from(&f));
                m.set_port(port);
                if let Some(si) = at {
                    m.set_handoff(0, si as u16);
                    m.arrive();
                }
                m.set_egress(0);
                burst.push(m).unwrap();
            }
            let mut leaving = Burst::new();
            let (st, c) = (&mut self.stages, &mut self.cache);
            match at {
                None => self.runner.run(0, 0, st, &mut burst, &mut leaving, c, 1),
                Some(si) => self
                    .runner
                    .run_from(si, 0, 0, st, &mut burst, &mut leaving, c, 1),
            }
            self.runner.finish(&mut burst, &mut leaving, c, 1);
            let mut out = Vec::new();
            while let Some(m) = leaving.pop() {
                let d = m.data();
                out.push((m.port(), d[1..1 + usize::from(d[0])].to_vec()));
                c.free(m);
            }
            out.sort();
            out
        }
    }

    #[test]
    fn every_port_meets_the_stages_in_its_order() {
        // Port 1 meets stage 1 first, as a NAT's inbound half runs before the firewall.
        let mut r = rig(&[(1, vec![1, 0, 2])]);
        let out = r.run(
            &[(0, 0, 0), (1, 0, 0), (0, 0, 0), (1, 0, 0), (2, 0, 0)],
            None,
        );
        assert_eq!(
            out,
            [
                (0, vec![10, 11, 12]),
                (0, vec![10, 11, 12]),
                (1, vec![11, 10, 12]),
                (1, vec![11, 10, 12]),
                (2, vec![10, 11, 12]),
            ]
        );
        assert_eq!(r.runner.drops.total(), 0);
        // Without orders of their own, every port meets the chain's.
        let mut r = rig(&[]);
        assert!(!r.runner.orders.custom());
        assert_eq!(r.run(&[(1, 0, 0)], None), [(1, vec![10, 11, 12])]);
        // The same order as the chain's is no order of its own.
        assert!(!Orders::new(3, &[(1, vec![0, 1, 2])]).unwrap().custom());
        // Not a permutation.
        assert!(Orders::new(3, &[(1, vec![0, 1])]).is_err());
        assert!(Orders::new(3, &[(1, vec![0, 1, 1])]).is_err());
        assert!(Orders::new(3, &[(1, vec![0, 1, 3])]).is_err());
    }

    #[test]
    fn a_handed_packet_resumes_at_its_stage_in_its_own_order() {
        let mut r = rig(&[(1, vec![2, 1, 0])]);
        // Handed over at stage 1: port 0 goes on with stages 1, 2; port 1 with 1, 0.
        let out = r.run(&[(0, 0, 0), (1, 0, 0)], Some(1));
        assert_eq!(out, [(0, vec![11, 12]), (1, vec![11, 10])]);
    }

    #[test]
    fn a_packet_released_in_a_run_of_another_order_goes_on_in_its_own() {
        // Port 1 meets 1, 0, 2. A port-1 packet held at stage 0 (its second) and released by
        // a port-0 packet at stage 0 (that one's first) goes on to stage 2 only.
        let mut r = rig(&[(1, vec![1, 0, 2])]);
        assert!(r.run(&[(1, 10, 0)], None).is_empty());
        assert_eq!(r.stages[0].held(), 1);
        let out = r.run(&[(0, 0, 10)], None);
        assert_eq!(out, [(0, vec![10, 11, 12]), (1, vec![11, 10, 12])]);
        // And the other way: a port-0 packet held at stage 1 (its second), released by a
        // port-1 packet at stage 1 (its first), goes on to stage 2 only.
        assert!(r.run(&[(0, 11, 0)], None).is_empty());
        let out = r.run(&[(1, 0, 11)], None);
        assert_eq!(out, [(0, vec![10, 11, 12]), (1, vec![11, 10, 12])]);
        assert_eq!(r.runner.drops.total(), 0);
    }

    #[test]
    fn a_burst_for_one_port_stays_where_it_is_and_anything_else_is_finished() {
        let mut r = rig(&[]);
        let fill = |r: &mut Rig, egress: &[u16]| {
            let mut b = Burst::new();
            for &e in egress {
                let mut m = r.cache.alloc().unwrap();
                assert!(m.copy_from(&[0u8; 60]));
                m.set_egress(e);
                b.push(m).unwrap();
            }
            b
        };
        let mut leaving = Burst::new();
        // All for port 1: left in place.
        let mut b = fill(&mut r, &[1, 1, 1]);
        let one = r
            .runner
            .finish_one_port(&mut b, &mut leaving, &mut r.cache, 2);
        assert_eq!((one, b.len(), leaving.len()), (Some(1), 3, 0));
        r.cache.free_burst(&mut b);
        // Two ports, or a packet with a checksum to fill, or packets already leaving: finished
        // into `leaving` as usual.
        for (egress, csum, before) in [
            (&[1u16, 0, 1][..], false, 0),
            (&[1, 1, 1][..], true, 0),
            (&[0, 0][..], false, 1),
        ] {
            let mut b = fill(&mut r, egress);
            if csum {
                b.as_mut_slice()[1].request_tx_csum(14);
            }
            let mut pre = fill(&mut r, &vec![0; before]);
            pre.append_to(&mut leaving);
            let one = r
                .runner
                .finish_one_port(&mut b, &mut leaving, &mut r.cache, 2);
            assert_eq!(one, None, "{egress:?} {csum} {before}");
            assert_eq!((b.len(), leaving.len()), (0, egress.len() + before));
            r.cache.free_burst(&mut leaving);
        }
        // A port beyond the last: dropped and counted, not sent.
        let mut b = fill(&mut r, &[5, 5]);
        assert_eq!(
            r.runner
                .finish_one_port(&mut b, &mut leaving, &mut r.cache, 2),
            None
        );
        assert_eq!((b.len(), leaving.len()), (0, 0));
        assert_eq!(r.runner.drops.total(), 2);
    }
}
