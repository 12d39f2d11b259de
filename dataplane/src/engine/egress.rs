//! Ordered egress for offline replay.
//!
//! When several cores process one capture, packets of different flows finish in a different
//! order on every run. Replay must be reproducible (golden tests compare output packet by
//! packet, whatever the layout), so the I/O thread holds finished packets here and releases
//! them in input order: by the sequence number stamped at receive time, then by arrival for
//! packets that share one (several outputs of one input). A packet is released once every
//! worker has published progress past its sequence number, which proves nothing earlier can
//! still arrive. The heap is sized for the whole pool at start-up: it cannot grow, since every
//! packet in it holds a buffer.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use pmd::Mbuf;

struct Entry {
    seq: u64,
    order: u64,
    m: Mbuf,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.seq, self.order) == (o.seq, o.order)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse so the smallest (seq, order) is on top.
        (o.seq, o.order).cmp(&(self.seq, self.order))
    }
}

/// A reorder buffer keyed by input sequence number.
pub struct Reorder {
    heap: BinaryHeap<Entry>,
    order: u64,
}

impl Reorder {
    /// A buffer able to hold `capacity` packets without growing.
    pub fn new(capacity: usize) -> Reorder {
        Reorder {
            heap: BinaryHeap::with_capacity(capacity),
            order: 0,
        }
    }

    /// Holds a finished packet.
    pub fn push(&mut self, m: Mbuf) {
        self.order += 1;
        self.heap.push(Entry {
            seq: m.seq(),
            order: self.order,
            m,
        });
    }

    /// The earliest held packet, if its sequence number is below `limit`.
    pub fn pop_below(&mut self, limit: u64) -> Option<Mbuf> {
        if self.heap.peek()?.seq < limit {
            self.heap.pop().map(|e| e.m)
        } else {
            None
        }
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
