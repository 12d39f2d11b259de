//! Running a burst through a run of stages, and the one scatter per stage.
//!
//! After each stage the burst is checked once: if every packet carries on (the common case on
//! the fast path) nothing moves. Otherwise the packets that carry on are compacted in order at
//! the front and the others leave: to the `leaving` burst (with their egress port set), to the
//! drop counters, to the stage's hold, or to the control plane. A packet is scattered exactly
//! once. Packets a stage emits (created, or released from its hold) join `leaving` as soon as
//! the stage returns. A packet handed to another worker also joins `leaving`, marked with its
//! worker and the stage to resume at; [`ChainRunner::run_from`] runs it there.

use pmd::mbuf::NO_EGRESS;
use pmd::{Burst, Mbuf, PoolCache, BURST_MAX};

use crate::stage::{Ctx, DropCounters, DropReason, Next, NextKind, Stage, MAX_STAGE_DROPS};

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
    /// Broadcast copies ([`pmd::Mbuf::is_copy`]) consumed: whatever a stage answers for a copy
    /// other than carrying on or holding it, and at the end of the chain.
    pub copies_consumed: u64,
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
            copies_consumed: 0,
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
        self.run_from(0, now, worker, stages, burst, leaving, cache, nports);
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
        let can_handoff = self.can_handoff;
        for (si, st) in stages.iter_mut().enumerate().skip(first) {
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
                move_emitted(&mut self.emitted, leaving, &mut self.drops, cache, nports);
            }
            if self.nexts[..n].iter().all(|&x| x == Next::CONTINUE) {
                self.take_resumed(burst, cache);
                continue;
            }
            let nexts = &self.nexts;
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
            self.take_resumed(burst, cache);
        }
    }

    /// Puts the packets a stage resumed at the end of `burst`, which goes on to the next stage
    /// (what does not fit a burst is dropped as `emit_overflow`).
    #[inline]
    fn take_resumed(&mut self, burst: &mut Burst, cache: &mut PoolCache) {
        if self.resumed.is_empty() || self.resumed.append_to(burst) {
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
        let can_handoff = self.can_handoff;
        for (si, st) in stages.iter_mut().enumerate() {
            let mut ctx = Ctx {
                now,
                worker,
                stage: si,
                can_handoff,
                cache: &mut *cache,
                emitted: &mut self.emitted,
                resumed: None,
                created: &mut self.created,
                drops: &mut self.drops,
                local_drops: &mut self.stage_drops[si],
            };
            f(st, &mut ctx);
            if !self.emitted.is_empty() {
                move_emitted(&mut self.emitted, leaving, &mut self.drops, cache, nports);
            }
        }
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
        // The usual case: every packet has a valid egress; one copy of the pointers moves them.
        if burst
            .as_slice()
            .iter()
            .all(|m| m.egress() < nports && !m.is_copy())
            && burst.append_to(leaving)
        {
            return;
        }
        let drops = &mut self.drops;
        let copies = &mut self.copies_consumed;
        burst.retain_owned(|_, m| {
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
            leave(leaving, m, drops, cache);
        }
        None
    });
}

#[inline(always)]
fn leave(leaving: &mut Burst, m: Mbuf, drops: &mut DropCounters, cache: &mut PoolCache) {
    if let Err(m) = leaving.push(m) {
        drops.count(DropReason::EmitOverflow);
        cache.free(m);
    }
}
