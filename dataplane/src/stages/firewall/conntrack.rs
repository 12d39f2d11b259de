//! Connection tracking: one fixed-capacity table per worker.
//!
//! The engine's symmetric flow hash brings both directions of a connection (and ICMP errors
//! about it) to one worker, so each worker owns its connections outright: no sharing, no
//! atomics. Everything is allocated when the stage is built: the entry slab, a free list, and
//! a hash map sized at twice the number of keys it can hold (two per connection, one per
//! direction, so a packet finds its connection *and* its direction in one probe; at half load
//! the map rehashes in place rather than grow).
//!
//! TCP follows the states of a connection (SYN sent, SYN received, established, FIN wait,
//! close wait, last ACK, TIME_WAIT, closed by RST) with the sequence-window checks of Guido
//! van Rooij's "Real Stateful TCP Packet Filtering in IP Filter" (as netfilter does them): a
//! segment must start at or before the right edge the peer has opened, must not end before what
//! the peer may still need, and may only acknowledge data that was sent. A segment that fails
//! them, a SYN-ACK without a SYN, or a mid-stream packet of an unknown connection is
//! `invalid`: the rules decide what to do with it (`ct invalid drop` is the usual first rule).
//! UDP and other protocols get pseudo-connections (established once the reply direction is
//! seen); ICMP echo requests open one keyed by their identifier, which the echo reply matches.
//!
//! Timeouts per state run on a hashed timer wheel of `WHEEL_SLOTS` slots of `TICK_NS`:
//! entries sit in the slot of their expiry; refreshing an entry only moves its expiry later
//! (the wheel finds it still alive when the slot comes round and re-files it), so the packet
//! path does no list work unless the timeout shrinks (FIN, RST). `poll` turns the wheel from
//! the last tick to `now`; when nothing is due it costs one comparison.
//!
//! When the table is full a new connection is refused (counted by the stage), or, with early
//! drop, the closest-to-expiry connection that never saw a reply is evicted for it: a SYN
//! flood then recycles its own half-open entries and never pushes out established ones.

use std::collections::HashMap;

use crate::wire::FlowKey;

use super::classifier::FxBuild;

/// Timer wheel slots.
pub const WHEEL_SLOTS: usize = 4096;
/// Timer wheel tick (100 ms).
pub const TICK_NS: u64 = 100_000_000;
const NIL: u32 = u32::MAX;
const SEC: u64 = 1_000_000_000;

/// Timeouts per state, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP: SYN seen, no reply.
    pub syn_sent: u64,
    /// TCP: SYN-ACK seen.
    pub syn_recv: u64,
    /// TCP: established.
    pub established: u64,
    /// TCP: one side sent FIN.
    pub fin_wait: u64,
    /// TCP: both FINs seen, last ACK outstanding.
    pub last_ack: u64,
    /// TCP: both FINs acknowledged.
    pub time_wait: u64,
    /// TCP: reset.
    pub close: u64,
    /// UDP and other protocols, before a reply.
    pub udp: u64,
    /// UDP and other protocols, after a reply.
    pub udp_stream: u64,
    /// ICMP echo.
    pub icmp: u64,
}

impl Default for Timeouts {
    /// Linux's defaults.
    fn default() -> Self {
        Timeouts {
            syn_sent: 120 * SEC,
            syn_recv: 60 * SEC,
            established: 432_000 * SEC,
            fin_wait: 120 * SEC,
            last_ack: 30 * SEC,
            time_wait: 120 * SEC,
            close: 10 * SEC,
            udp: 30 * SEC,
            udp_stream: 120 * SEC,
            icmp: 30 * SEC,
        }
    }
}

/// Connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// TCP SYN sent.
    SynSent,
    /// TCP SYN-ACK seen.
    SynRecv,
    /// TCP established.
    Established,
    /// TCP: one FIN seen.
    FinWait,
    /// TCP: both FINs seen.
    LastAck,
    /// TCP: both FINs acknowledged.
    TimeWait,
    /// TCP: reset.
    Close,
    /// UDP/other pseudo-connection.
    Udp,
    /// ICMP echo pseudo-connection.
    Icmp,
}

/// One direction of a TCP connection.
#[derive(Debug, Clone, Copy, Default)]
struct Dir {
    /// Highest sequence number sent plus one (seq + len).
    end: u32,
    /// Right edge the peer has opened for this direction (ack + window).
    maxend: u32,
    /// Largest (scaled) window this direction advertised.
    maxwin: u32,
    /// Window scale (0xff: none offered).
    wscale: u8,
    /// A FIN was sent; `fin_seq` is its sequence number + 1.
    fin: bool,
    fin_seq: u32,
}

/// A cached verdict for one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    /// Snapshot generation it was computed with.
    pub gen: u64,
    /// Rule id (or `u32::MAX`: the default policy).
    pub rule: u32,
    /// 0 accept, 1 drop, 2 reject.
    pub action: u8,
}

/// A tracked connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// Key of the first packet (the originating direction).
    pub key: FlowKey,
    /// State.
    pub state: State,
    /// The reply direction has been seen.
    pub replied: bool,
    expires: u64,
    slot: u32,
    prev: u32,
    next: u32,
    live: bool,
    dirs: [Dir; 2],
    /// Established-state verdict per direction (the flow cache).
    pub cached: [Option<Cached>; 2],
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            key: FlowKey::default(),
            state: State::Udp,
            replied: false,
            expires: 0,
            slot: NIL,
            prev: NIL,
            next: NIL,
            live: false,
            dirs: [Dir::default(); 2],
            cached: [None; 2],
        }
    }
}

/// The TCP fields conntrack needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpInfo {
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flags byte.
    pub flags: u8,
    /// Window (unscaled).
    pub win: u16,
    /// Payload length.
    pub payload: u32,
    /// Window-scale option (SYN only), if present.
    pub wscale: Option<u8>,
    /// A first fragment: the payload length is not the segment's, so the window checks are
    /// skipped (the fragment rules guard fragments).
    pub fragmented: bool,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Outcome of tracking one packet of a known connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// Fits the connection; `established` once the reply direction has been seen.
    Ok {
        /// The connection has seen traffic both ways.
        established: bool,
    },
    /// A new connection reusing the 5-tuple of a closed one (SYN in TIME_WAIT or after RST).
    Reopen,
    /// Does not fit.
    Invalid,
}

#[inline(always)]
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}
#[inline(always)]
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

/// Counters of the table.
#[derive(Debug, Clone, Copy, Default)]
pub struct CtCounters {
    /// Connections created.
    pub created: u64,
    /// Connections expired by their timeout.
    pub expired: u64,
    /// Connections evicted to make room (early drop).
    pub early_drops: u64,
}

/// A worker's connection table.
pub struct Table {
    entries: Vec<Conn>,
    free: Vec<u32>,
    map: HashMap<FlowKey, u32, FxBuild>,
    wheel: Vec<u32>,
    tick: u64,
    started: bool,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Evict a never-replied connection when full.
    pub early_drop: bool,
    /// Counters.
    pub counters: CtCounters,
}

impl Table {
    /// A table for `capacity` connections (all memory allocated here).
    pub fn new(capacity: usize, timeouts: Timeouts, early_drop: bool) -> Table {
        let capacity = capacity.clamp(1, 1 << 26);
        let mut map = HashMap::default();
        map.reserve(4 * capacity);
        Table {
            entries: vec![Conn::default(); capacity],
            free: (0..capacity as u32).rev().collect(),
            map,
            wheel: vec![NIL; WHEEL_SLOTS],
            tick: 0,
            started: false,
            timeouts,
            early_drop,
            counters: CtCounters::default(),
        }
    }

    /// Live connections.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Bytes the table holds, all of it allocated when it was built: the entry slab, the free
    /// list, the map (two keys per connection; estimated from its capacity, see
    /// [`super::classifier::hash_map_bytes`]) and the timer wheel.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Conn>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + super::classifier::hash_map_bytes::<FlowKey, u32>(self.map.capacity())
            + self.wheel.capacity() * std::mem::size_of::<u32>()
    }

    /// Finds `k`: (entry index, direction: 0 originating, 1 reply).
    #[inline]
    pub fn lookup(&self, k: &FlowKey) -> Option<(u32, usize)> {
        self.map.get(k).map(|&v| (v >> 1, (v & 1) as usize))
    }

    /// The entry at `i`.
    #[inline]
    pub fn get(&self, i: u32) -> &Conn {
        &self.entries[i as usize]
    }

    /// The entry at `i`, mutably.
    #[inline]
    pub fn get_mut(&mut self, i: u32) -> &mut Conn {
        &mut self.entries[i as usize]
    }

    fn timeout(&self, c: &Conn) -> u64 {
        let t = &self.timeouts;
        match c.state {
            State::SynSent => t.syn_sent,
            State::SynRecv => t.syn_recv,
            State::Established => t.established,
            State::FinWait => t.fin_wait,
            State::LastAck => t.last_ack,
            State::TimeWait => t.time_wait,
            State::Close => t.close,
            State::Udp if c.replied => t.udp_stream,
            State::Udp => t.udp,
            State::Icmp => t.icmp,
        }
    }

    fn slot_of(&self, expires: u64) -> u32 {
        ((expires / TICK_NS) % WHEEL_SLOTS as u64) as u32
    }

    fn link(&mut self, i: u32) {
        let s = self.slot_of(self.entries[i as usize].expires);
        let head = self.wheel[s as usize];
        {
            let e = &mut self.entries[i as usize];
            e.slot = s;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = i;
        }
        self.wheel[s as usize] = i;
    }

    fn unlink(&mut self, i: u32) {
        let (s, p, n) = {
            let e = &self.entries[i as usize];
            (e.slot, e.prev, e.next)
        };
        if s == NIL {
            return;
        }
        if p != NIL {
            self.entries[p as usize].next = n;
        } else {
            self.wheel[s as usize] = n;
        }
        if n != NIL {
            self.entries[n as usize].prev = p;
        }
        let e = &mut self.entries[i as usize];
        e.slot = NIL;
        e.prev = NIL;
        e.next = NIL;
    }

    /// Sets the expiry from the state; re-files the entry only if it moved earlier.
    fn refresh(&mut self, i: u32, now: u64) {
        let t = now.saturating_add(self.timeout(&self.entries[i as usize]));
        let old = self.entries[i as usize].expires;
        self.entries[i as usize].expires = t;
        if t < old || self.entries[i as usize].slot == NIL {
            self.unlink(i);
            self.link(i);
        }
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        let e = &mut self.entries[i as usize];
        e.live = false;
        let k = e.key;
        self.map.remove(&k);
        self.map.remove(&k.reversed());
        self.free.push(i);
    }

    /// Evicts the never-replied connection nearest to expiry, looking a bounded distance
    /// ahead on the wheel. True if one was evicted.
    fn evict_one(&mut self) -> bool {
        let mut looked = 0;
        for d in 0..WHEEL_SLOTS as u64 {
            let s = ((self.tick + d) % WHEEL_SLOTS as u64) as usize;
            let mut i = self.wheel[s];
            while i != NIL {
                let e = &self.entries[i as usize];
                if !e.replied {
                    self.remove(i);
                    self.counters.early_drops += 1;
                    return true;
                }
                i = e.next;
                looked += 1;
                if looked > 1024 {
                    return false;
                }
            }
        }
        false
    }

    /// Starts tracking a connection whose first packet has key `k` (and, for TCP, `tcp`).
    /// `None` when the table is full (and early drop found nothing to evict).
    pub fn create(
        &mut self,
        k: &FlowKey,
        state: State,
        tcp: Option<&TcpInfo>,
        now: u64,
    ) -> Option<u32> {
        if !self.started {
            self.started = true;
            self.tick = now / TICK_NS;
        }
        if let Some(&v) = self.map.get(k) {
            // Opened by an earlier packet of the same burst.
            return Some(v >> 1);
        }
        if self.free.is_empty() && !(self.early_drop && self.evict_one()) {
            return None;
        }
        let i = self.free.pop()?;
        let mut c = Conn {
            key: *k,
            state,
            live: true,
            ..Conn::default()
        };
        if let Some(t) = tcp {
            let end = t.seq.wrapping_add(t.payload).wrapping_add(1);
            c.dirs[0] = Dir {
                end,
                maxend: end,
                maxwin: u32::from(t.win).max(1),
                wscale: t.wscale.unwrap_or(0xff),
                ..Dir::default()
            };
        }
        self.entries[i as usize] = c;
        self.map.insert(*k, i << 1);
        let r = k.reversed();
        if r != *k {
            self.map.insert(r, (i << 1) | 1);
        }
        self.refresh(i, now);
        self.counters.created += 1;
        Some(i)
    }

    /// Tracks a packet of connection `i` in direction `dir` (`tcp` for TCP packets).
    pub fn track(&mut self, i: u32, dir: usize, tcp: Option<&TcpInfo>, now: u64) -> Track {
        let c = &mut self.entries[i as usize];
        let r = match (c.state, tcp) {
            (State::Udp | State::Icmp, _) => {
                if dir == 1 {
                    c.replied = true;
                }
                Track::Ok {
                    established: c.replied,
                }
            }
            (_, None) => Track::Invalid,
            (_, Some(t)) => tcp_track(c, dir, t),
        };
        match r {
            Track::Ok { .. } => self.refresh(i, now),
            Track::Reopen => self.remove(i),
            Track::Invalid => {}
        }
        r
    }

    /// Timer work: expires what is due up to `now`.
    pub fn poll(&mut self, now: u64) {
        let target = now / TICK_NS;
        if !self.started || target <= self.tick {
            return;
        }
        let steps = (target - self.tick).min(WHEEL_SLOTS as u64);
        let first = target + 1 - steps;
        for t in first..=target {
            let s = (t % WHEEL_SLOTS as u64) as usize;
            let mut i = std::mem::replace(&mut self.wheel[s], NIL);
            while i != NIL {
                let next = self.entries[i as usize].next;
                {
                    let e = &mut self.entries[i as usize];
                    e.slot = NIL;
                    e.prev = NIL;
                    e.next = NIL;
                }
                if self.entries[i as usize].expires <= now {
                    self.remove(i);
                    self.counters.expired += 1;
                } else {
                    self.link(i);
                }
                i = next;
            }
        }
        self.tick = target;
    }
}

/// TCP state and window tracking for a packet of a known connection.
fn tcp_track(c: &mut Conn, dir: usize, t: &TcpInfo) -> Track {
    let f = t.flags;
    let syn = f & SYN != 0;
    let ackf = f & ACK != 0;
    // A fresh SYN on a finished connection starts a new one.
    if dir == 0 && syn && !ackf && matches!(c.state, State::TimeWait | State::Close) {
        return Track::Reopen;
    }
    match c.state {
        State::SynSent => {
            if dir == 0 {
                // Retransmitted SYN (same sequence number) only.
                return if syn && !ackf && t.seq.wrapping_add(1) == c.dirs[0].end {
                    Track::Ok { established: false }
                } else {
                    Track::Invalid
                };
            }
            if f & RST != 0 {
                if ackf && t.ack == c.dirs[0].end {
                    c.state = State::Close;
                    c.replied = true;
                    return Track::Ok { established: true };
                }
                return Track::Invalid;
            }
            if !(syn && ackf) || t.ack != c.dirs[0].end {
                return Track::Invalid;
            }
            let both = c.dirs[0].wscale != 0xff && t.wscale.is_some();
            if !both {
                c.dirs[0].wscale = 0;
            }
            let ws = if both {
                t.wscale.unwrap_or(0).min(14)
            } else {
                0
            };
            let end = t.seq.wrapping_add(t.payload).wrapping_add(1);
            let win = u32::from(t.win).max(1);
            c.dirs[1] = Dir {
                end,
                maxend: end.wrapping_add(c.dirs[0].maxwin),
                maxwin: win,
                wscale: ws,
                ..Dir::default()
            };
            c.dirs[0].maxend = t.ack.wrapping_add(win);
            c.dirs[0].wscale = c.dirs[0].wscale.min(14);
            c.state = State::SynRecv;
            c.replied = true;
            Track::Ok { established: true }
        }
        _ => {
            if syn {
                // A retransmitted SYN-ACK is fine; any other SYN on a live connection is not.
                return if dir == 1
                    && ackf
                    && c.state == State::SynRecv
                    && t.seq.wrapping_add(1) == c.dirs[1].end
                {
                    Track::Ok { established: true }
                } else {
                    Track::Invalid
                };
            }
            if !in_window(c, dir, t) {
                return Track::Invalid;
            }
            let o = 1 - dir;
            if f & RST != 0 {
                c.state = State::Close;
                return Track::Ok {
                    established: c.replied,
                };
            }
            if c.state == State::SynRecv && dir == 0 && ackf {
                c.state = State::Established;
            }
            if f & FIN != 0 && !c.dirs[dir].fin {
                c.dirs[dir].fin = true;
                c.dirs[dir].fin_seq = t.seq.wrapping_add(t.payload).wrapping_add(1);
                c.state = if c.dirs[o].fin {
                    State::LastAck
                } else {
                    State::FinWait
                };
            } else if ackf
                && c.state == State::LastAck
                && c.dirs[o].fin
                && !after(c.dirs[o].fin_seq, t.ack)
            {
                c.state = State::TimeWait;
            }
            Track::Ok {
                established: c.replied,
            }
        }
    }
}

/// Rooij's four window checks, then the window bookkeeping.
fn in_window(c: &mut Conn, dir: usize, t: &TcpInfo) -> bool {
    if t.fragmented {
        return true;
    }
    let o = 1 - dir;
    let (s, r) = (c.dirs[dir], c.dirs[o]);
    let len = t.payload + u32::from(t.flags & FIN != 0);
    let seq = t.seq;
    let end = seq.wrapping_add(len);
    let win = u32::from(t.win) << s.wscale.min(14);
    let maxack = s.maxwin.max(66_000);
    let ok_upper = !after(seq, s.maxend);
    let ok_lower = !before(end, s.end.wrapping_sub(r.maxwin).wrapping_sub(1));
    let ack_ok = t.flags & ACK == 0
        || (!after(t.ack, r.end.wrapping_add(1)) && !before(t.ack, r.end.wrapping_sub(maxack)));
    if !(ok_upper && ok_lower && ack_ok) {
        return false;
    }
    let d = &mut c.dirs[dir];
    if after(end, d.end) {
        d.end = end;
    }
    if win > d.maxwin {
        d.maxwin = win;
    }
    if t.flags & ACK != 0 {
        let edge = t.ack.wrapping_add(win.max(1));
        let od = &mut c.dirs[o];
        if after(edge, od.maxend) {
            od.maxend = edge;
        }
    }
    let d = &mut c.dirs[dir];
    if after(d.end, d.maxend) {
        d.maxend = d.end;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key() -> FlowKey {
        FlowKey::v4(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            40000,
            80,
            6,
        )
    }

    fn tcp(seq: u32, ack: u32, flags: u8, payload: u32) -> TcpInfo {
        TcpInfo {
            seq,
            ack,
            flags,
            win: 65535,
            payload,
            wscale: None,
            fragmented: false,
        }
    }

    #[test]
    fn tcp_handshake_data_teardown() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(100, 0, SYN, 0)), 0)
            .unwrap();
        assert_eq!(t.lookup(&k), Some((i, 0)));
        assert_eq!(t.lookup(&k.reversed()), Some((i, 1)));
        // Retransmitted SYN.
        assert_eq!(
            t.track(i, 0, Some(&tcp(100, 0, SYN, 0)), 1),
            Track::Ok { established: false }
        );
        // SYN-ACK acking the wrong number is invalid; the right one establishes.
        assert_eq!(
            t.track(i, 1, Some(&tcp(500, 99, SYN | ACK, 0)), 2),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(500, 101, SYN | ACK, 0)), 2),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::SynRecv);
        assert_eq!(
            t.track(i, 0, Some(&tcp(101, 501, ACK, 0)), 3),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::Established);
        assert_eq!(
            t.track(i, 0, Some(&tcp(101, 501, ACK, 1000)), 4),
            Track::Ok { established: true }
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 1101, ACK, 0)), 5),
            Track::Ok { established: true }
        );
        // Far outside the window: invalid; acking unsent data: invalid.
        assert_eq!(
            t.track(i, 0, Some(&tcp(101 + 3_000_000, 501, ACK, 10)), 6),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 1101 + 5000, ACK, 0)), 6),
            Track::Invalid
        );
        // A SYN on an established connection is invalid.
        assert_eq!(t.track(i, 0, Some(&tcp(7, 0, SYN, 0)), 6), Track::Invalid);
        // Teardown.
        t.track(i, 0, Some(&tcp(1101, 501, FIN | ACK, 0)), 7);
        assert_eq!(t.get(i).state, State::FinWait);
        t.track(i, 1, Some(&tcp(501, 1102, FIN | ACK, 0)), 8);
        assert_eq!(t.get(i).state, State::LastAck);
        t.track(i, 0, Some(&tcp(1102, 502, ACK, 0)), 9);
        assert_eq!(t.get(i).state, State::TimeWait);
        // TIME_WAIT expires after its timeout, on the virtual clock.
        t.poll(9 + Timeouts::default().time_wait - SEC);
        assert_eq!(t.len(), 1);
        t.poll(10 + Timeouts::default().time_wait + SEC);
        assert_eq!(t.len(), 0);
        assert_eq!(t.lookup(&k), None);
        assert_eq!(t.counters.expired, 1);
    }

    #[test]
    fn rst_in_window_closes_out_of_window_is_invalid() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(100, 0, SYN, 0)), 0)
            .unwrap();
        t.track(i, 1, Some(&tcp(500, 101, SYN | ACK, 0)), 1);
        t.track(i, 0, Some(&tcp(101, 501, ACK, 0)), 2);
        assert_eq!(
            t.track(i, 1, Some(&tcp(501 + 4_000_000, 0, RST, 0)), 3),
            Track::Invalid
        );
        assert_eq!(
            t.track(i, 1, Some(&tcp(501, 0, RST, 0)), 3),
            Track::Ok { established: true }
        );
        assert_eq!(t.get(i).state, State::Close);
        // A new SYN reuses the tuple.
        assert_eq!(t.track(i, 0, Some(&tcp(9000, 0, SYN, 0)), 4), Track::Reopen);
        assert_eq!(t.lookup(&k), None);
    }

    #[test]
    fn established_lives_long_unreplied_udp_expires() {
        let mut t = Table::new(4, Timeouts::default(), false);
        let u = FlowKey::v4(
            Ipv4Addr::new(1, 1, 1, 1),
            Ipv4Addr::new(2, 2, 2, 2),
            5,
            53,
            17,
        );
        let i = t.create(&u, State::Udp, None, 0).unwrap();
        let u2 = FlowKey { src_port: 6, ..u };
        let j = t.create(&u2, State::Udp, None, 0).unwrap();
        assert_eq!(t.track(j, 1, None, SEC), Track::Ok { established: true });
        t.poll(31 * SEC);
        assert_eq!(
            t.len(),
            1,
            "unreplied UDP gone after 30 s, replied one stays"
        );
        assert!(t.lookup(&u).is_none());
        let _ = i;
        t.poll(200 * SEC);
        assert_eq!(t.len(), 0);
        // A two-hour jump on the virtual clock with a long-lived entry.
        let k = key();
        let i = t
            .create(&k, State::SynSent, Some(&tcp(1, 0, SYN, 0)), 300 * SEC)
            .unwrap();
        t.track(i, 1, Some(&tcp(9, 2, SYN | ACK, 0)), 300 * SEC);
        t.track(i, 0, Some(&tcp(2, 10, ACK, 0)), 300 * SEC);
        t.poll(7200 * SEC);
        assert_eq!(t.len(), 1);
        t.poll(300 * SEC + Timeouts::default().established + SEC);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn full_table_refuses_or_early_drops() {
        let mut t = Table::new(2, Timeouts::default(), false);
        let k = |p| {
            FlowKey::v4(
                Ipv4Addr::new(1, 1, 1, 1),
                Ipv4Addr::new(2, 2, 2, 2),
                p,
                80,
                6,
            )
        };
        let a = t
            .create(&k(1), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .unwrap();
        t.track(a, 1, Some(&tcp(9, 2, SYN | ACK, 0)), 0);
        t.create(&k(2), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .unwrap();
        assert!(t
            .create(&k(3), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .is_none());
        t.early_drop = true;
        assert!(t
            .create(&k(3), State::SynSent, Some(&tcp(1, 0, SYN, 0)), 0)
            .is_some());
        assert!(t.lookup(&k(2)).is_none(), "the half-open one was evicted");
        assert!(t.lookup(&k(1)).is_some(), "the replied one stays");
        assert_eq!(t.counters.early_drops, 1);
    }
}
