//! memif: packet rings in shared memory between two processes, with no switch in between.
//!
//! This is how VNF processes on one host are chained (`docs/CHAINS.md`), and how the dataplane
//! talks to anything else that speaks memif (DPDK's `net_memif`, VPP, libmemif). The protocol is
//! libmemif's version 2.0:
//!
//! - **Control**: a Unix `SOCK_SEQPACKET` socket. The server (master) listens; the client
//!   (slave) connects. Server: HELLO. Client: INIT (interface id), ADD_REGION (memfd passed with
//!   `SCM_RIGHTS`), ADD_RING for each ring (an eventfd passed along), CONNECT; the server ACKs
//!   each and ends with CONNECTED. Either side may send DISCONNECT with a reason.
//! - **Memory**: the client owns it. One memfd region here: the client-to-server ring (C2S),
//!   the server-to-client ring (S2C), then `2 x ring size` packet buffers, each descriptor
//!   pointing at its own buffer for good.
//! - **Rings**: on C2S the client fills descriptors and advances `head`, the server reads them
//!   and advances `tail`. On S2C the client hands empty descriptors to the server by advancing
//!   `head`, the server fills them and advances `tail`. Indices are free-running `u16`.
//!
//! Packets are copied between the shared buffers and our own `Mbuf`s, as DPDK's `net_memif` does
//! outside zero-copy mode, so the peer never sees our pool and we never hold a reference into
//! memory the peer writes (all access goes through [`shm::Shm`]'s checked volatile/atomic
//! accessors). A peer that writes garbage costs it: a descriptor pointing outside its regions
//! is dropped and counted (`rx_bad_descriptor`), ring indices that cannot be true tear the link
//! down, and nothing here panics or reads out of bounds.
//!
//! Polling only: we set `MEMIF_RING_FLAG_MASK_INT` on the rings we receive from, so the peer
//! never signals our eventfd, and we never signal the peer's (DPDK, VPP and libmemif poll in
//! these set-ups). The packet path makes no syscall. The control socket is looked at every
//! [`CTL_EVERY`] polls (every [`CTL_EVERY_DOWN`] while the link is down), a single non-blocking
//! `recvmsg`; that is also how a peer that went away is noticed.
//!
//! Reconnection: when the peer goes away (socket closed, DISCONNECT, or a broken ring) the link
//! drops, the mapping is released and the port goes back to waiting (server) or retrying every
//! [`RETRY`] (client). Packets we had put in our transmit ring that the peer had not taken are
//! moved from `tx_packets` to the `tx_lost_in_ring` drop; packets offered while the link is down
//! are dropped as `tx_link_down`. So every packet is counted.

pub mod proto;
pub mod shm;
pub mod sock;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Port, PortDrop, PortError, PortStats};
use crate::mbuf::Burst;
use crate::pool::PoolCache;
use proto::*;
use shm::Shm;

/// Polls between two looks at the control socket while connected.
pub const CTL_EVERY: u32 = 1024;
/// Polls between two looks at the control socket while the link is down.
pub const CTL_EVERY_DOWN: u32 = 64;
/// How often a client tries to reach its server.
pub const RETRY: Duration = Duration::from_millis(100);
/// At shutdown, how long the peer gets to take what is in our transmit ring.
pub const DRAIN_WAIT: Duration = Duration::from_millis(500);
/// A handshake that does not finish in this time is abandoned.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which end of the link this port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Listens on the socket, maps the client's memory (libmemif's master).
    Server,
    /// Connects, owns the shared memory (libmemif's slave).
    Client,
}

/// A memif port's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemifConfig {
    /// Control socket path; `@name` is in the abstract namespace (DPDK's `socket-abstract=yes`).
    pub socket: String,
    /// Server or client.
    pub role: Role,
    /// Interface id (both ends must agree).
    pub id: u32,
    /// Descriptors per ring, as log2 (client: what it offers; the server's HELLO may cap it).
    pub log2_ring_size: u8,
    /// Bytes per shared packet buffer (client role; the server uses the client's).
    pub buffer_size: u32,
}

impl Default for MemifConfig {
    fn default() -> Self {
        MemifConfig {
            socket: "/run/memif.sock".into(),
            role: Role::Client,
            id: 0,
            log2_ring_size: 10,
            buffer_size: 2048,
        }
    }
}

/// Link state and counters that are not packet drops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Times the link came up.
    pub connects: u64,
    /// Times it went down.
    pub disconnects: u64,
    /// Handshakes refused or abandoned.
    pub failed_handshakes: u64,
}

/// One ring as mapped: which region, where, how big.
#[derive(Debug, Clone, Copy)]
struct Ring {
    region: usize,
    off: usize,
    size: u16,
    mask: u16,
}

impl Ring {
    #[inline(always)]
    fn desc(&self, slot: u16) -> usize {
        self.off + RING_DESC + DESC_SIZE * (slot & self.mask) as usize
    }
}

/// A live link: the mapped regions and our two rings.
#[derive(Debug)]
struct Link {
    regions: Vec<Shm>,
    rx: Ring,
    tx: Ring,
    /// Client: byte offset of slot 0's buffer in region 0 for each ring, and the buffer size.
    own_bufs: Option<(usize, usize, usize)>,
    /// Next slot to read on our receive ring.
    rx_next: u16,
    /// Our copy of the index we publish on the transmit ring.
    tx_next: u16,
    /// The peer's half of the handshake, for messages.
    peer: String,
    _eventfds: Vec<OwnedFd>,
}

/// A broken ring: the link goes down.
#[derive(Debug)]
struct Fault(&'static str);

impl From<shm::ShmError> for Fault {
    fn from(_: shm::ShmError) -> Fault {
        Fault("ring outside its region")
    }
}

/// Handshake progress.
#[derive(Debug)]
enum Hs {
    /// Client: waiting for HELLO.
    WaitHello,
    /// Client: sent a message, waiting for its ACK; then the queue's next.
    Sending(Vec<([u8; MSG_SIZE], Option<usize>)>, Box<Partial>),
    /// Client: sent CONNECT, waiting for CONNECTED.
    WaitConnected(Box<Partial>),
    /// Server: HELLO sent, collecting INIT, regions and rings until CONNECT.
    Serving(Box<Partial>),
}

/// A link being assembled.
#[derive(Debug, Default)]
struct Partial {
    regions: Vec<Shm>,
    rings: [Option<Ring>; 2], // [c2s, s2c]
    own_bufs: Option<(usize, usize, usize)>,
    eventfds: Vec<OwnedFd>,
    got_init: bool,
    peer: String,
}

/// The control connection and what it is doing.
#[derive(Debug)]
struct Ctl {
    conn: sock::Conn,
    hs: Option<Hs>,
    since: Instant,
}

/// A memif port (one queue pair).
pub struct MemifPort {
    name: String,
    id: u16,
    cfg: MemifConfig,
    stats: PortStats,
    link_stats: LinkStats,
    listener: Option<sock::Listener>,
    ctl: Option<Ctl>,
    link: Option<Link>,
    polls: u32,
    next_try: Instant,
    last_error: Option<String>,
}

impl MemifPort {
    /// Opens port `id` named `name`. A server binds its socket now (so a bad path fails at
    /// start-up); a client connects on its first polls and keeps retrying.
    pub fn open(name: &str, id: u16, cfg: MemifConfig) -> Result<MemifPort, PortError> {
        let err = |msg: String| PortError::Other {
            port: name.into(),
            msg,
        };
        if !(1..=MAX_LOG2_RING).contains(&cfg.log2_ring_size) {
            return Err(err(format!(
                "ring size 2^{} is outside 2^1..2^{MAX_LOG2_RING}",
                cfg.log2_ring_size
            )));
        }
        if !(64..=65535).contains(&cfg.buffer_size) || !cfg.buffer_size.is_multiple_of(64) {
            return Err(err(format!(
                "buffer size {} is not a multiple of 64 between 64 and 65472",
                cfg.buffer_size
            )));
        }
        let listener = match cfg.role {
            Role::Server => Some(
                sock::Listener::bind(&cfg.socket)
                    .map_err(|e| err(format!("socket {}: {e}", cfg.socket)))?,
            ),
            Role::Client => None,
        };
        Ok(MemifPort {
            name: name.into(),
            id,
            cfg,
            stats: PortStats::default(),
            link_stats: LinkStats::default(),
            listener,
            ctl: None,
            link: None,
            polls: 0,
            next_try: Instant::now(),
            last_error: None,
        })
    }

    /// True while the link is up.
    pub fn is_up(&self) -> bool {
        self.link.is_some()
    }

    /// Link counters.
    pub fn link_stats(&self) -> LinkStats {
        self.link_stats
    }

    /// Why the link last went down or a handshake failed, if it did.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The peer's name, while connected.
    pub fn peer(&self) -> Option<&str> {
        self.link.as_ref().map(|l| l.peer.as_str())
    }

    /// The shared ring indices while connected, for diagnostics: receive ring (head, tail),
    /// transmit ring (head, tail), then our receive cursor and transmit index.
    pub fn ring_indices(&self) -> Option<[u16; 6]> {
        let l = self.link.as_ref()?;
        let rd = |r: &Ring, off: usize| l.regions[r.region].read_u16(r.off + off).unwrap_or(0);
        Some([
            rd(&l.rx, RING_HEAD),
            rd(&l.rx, RING_TAIL),
            rd(&l.tx, RING_HEAD),
            rd(&l.tx, RING_TAIL),
            l.rx_next,
            l.tx_next,
        ])
    }

    /// Runs the control channel now (the poll loop does this every few polls by itself).
    pub fn service(&mut self) {
        self.control();
    }

    // ----- control path (never per packet) -----

    fn control(&mut self) {
        // The current connection first: a peer that went away is noticed before a new one is
        // refused as a second connection.
        self.messages();
        // Server: take new connections (refusing a second one while busy).
        if let Some(l) = &self.listener {
            while let Ok(Some(c)) = l.accept() {
                if self.ctl.is_some() {
                    let _ = c.send(&msg_disconnect(1, "interface already connected"), None);
                    continue;
                }
                if c.send(&msg_hello(&self.app_name()), None).is_ok() {
                    self.ctl = Some(Ctl {
                        conn: c,
                        hs: Some(Hs::Serving(Box::default())),
                        since: Instant::now(),
                    });
                }
            }
        }
        // Client: try to reach the server.
        if self.cfg.role == Role::Client && self.ctl.is_none() {
            let now = Instant::now();
            if now < self.next_try {
                return;
            }
            self.next_try = now + RETRY;
            match sock::Conn::connect(&self.cfg.socket) {
                Ok(c) => {
                    self.ctl = Some(Ctl {
                        conn: c,
                        hs: Some(Hs::WaitHello),
                        since: now,
                    })
                }
                Err(_) => return,
            }
        }
        self.messages();
    }

    /// Handles what is waiting on the control connection (at most 16 messages).
    fn messages(&mut self) {
        for _ in 0..16 {
            let Some(ctl) = self.ctl.as_mut() else { return };
            if ctl.hs.is_some() && ctl.since.elapsed() > HANDSHAKE_TIMEOUT {
                self.fail("handshake timed out");
                return;
            }
            let r = ctl.conn.recv();
            match r {
                Ok(sock::Recv::Empty) => return,
                Ok(sock::Recv::Closed) => {
                    self.down("peer closed the control socket");
                    return;
                }
                Err(e) => {
                    self.down(&format!("control socket: {e}"));
                    return;
                }
                Ok(sock::Recv::Msg(m, fd)) => {
                    if let Err(why) = self.on_msg(&m, fd) {
                        if let Some(c) = &self.ctl {
                            let _ = c.conn.send(&msg_disconnect(1, &why), None);
                        }
                        if self.link.is_some() {
                            self.down(&why);
                        } else {
                            self.fail(&why);
                        }
                        return;
                    }
                }
            }
        }
    }

    fn app_name(&self) -> String {
        format!("dataplane {}", self.name)
    }

    /// A handshake failed: drop the control connection and what was assembled.
    fn fail(&mut self, why: &str) {
        self.link_stats.failed_handshakes += 1;
        self.last_error = Some(why.to_string());
        self.ctl = None;
        self.next_try = Instant::now() + RETRY;
    }

    /// The link went down: count what was in flight, release the memory.
    fn down(&mut self, why: &str) {
        self.last_error = Some(why.to_string());
        self.ctl = None;
        self.next_try = Instant::now() + RETRY;
        if let Some(l) = self.link.take() {
            let lost = l.in_flight(self.cfg.role) as u64;
            let lost = lost.min(self.stats.tx_packets);
            self.stats.tx_packets -= lost;
            self.stats.drops[PortDrop::TxLostInRing as usize] += lost;
            self.link_stats.disconnects += 1;
        } else {
            self.link_stats.failed_handshakes += 1;
        }
    }

    fn on_msg(&mut self, m: &[u8; MSG_SIZE], fd: Option<OwnedFd>) -> Result<(), String> {
        let t = MsgType::of(m).ok_or_else(|| format!("unknown message type {}", rd16(m, 0)))?;
        if t == MsgType::Disconnect {
            return Err(format!("peer disconnected: {}", read_disconnect(m)));
        }
        let (app, if_name, cfg) = (self.app_name(), self.name.clone(), self.cfg.clone());
        let ctl = self
            .ctl
            .as_mut()
            .expect("on_msg runs with a control connection");
        let Some(hs) = ctl.hs.take() else {
            return Err(format!("unexpected {t:?} on a connected link"));
        };
        match (hs, t) {
            (Hs::WaitHello, MsgType::Hello) => {
                let (minv, maxv) = (rd16(m, hello::MIN_VERSION), rd16(m, hello::MAX_VERSION));
                if minv > VERSION || maxv < VERSION {
                    return Err(format!(
                        "peer speaks memif {minv:#x}..{maxv:#x}, we speak 2.0"
                    ));
                }
                let log2 = cfg.log2_ring_size.min(m[hello::MAX_LOG2_RING]).max(1);
                let p = Self::client_memory(&if_name, log2, cfg.buffer_size as usize)
                    .map_err(|e| format!("shared memory: {e}"))?;
                let region_len = p.regions[0].len() as u64;
                let c2s = p.rings[0].expect("client_memory makes both rings");
                let s2c = p.rings[1].expect("client_memory makes both rings");
                let mut q = vec![
                    (msg_init(cfg.id, &app), None),
                    (msg_add_region(0, region_len), Some(usize::MAX)),
                    (msg_add_ring(true, 0, 0, c2s.off as u32, log2), Some(0)),
                    (msg_add_ring(false, 0, 0, s2c.off as u32, log2), Some(1)),
                ];
                q.reverse();
                let first = q.pop().expect("queue is not empty");
                ctl.conn
                    .send(&first.0, None)
                    .map_err(|e| format!("send INIT: {e}"))?;
                ctl.hs = Some(Hs::Sending(q, p));
            }
            (Hs::Sending(mut q, p), MsgType::Ack) => match q.pop() {
                Some((msg, which)) => {
                    let fd = match which {
                        Some(usize::MAX) => p.regions[0].fd().map(|f| f.as_raw_fd()),
                        Some(i) => Some(p.eventfds[i].as_raw_fd()),
                        None => None,
                    };
                    ctl.conn.send(&msg, fd).map_err(|e| format!("send: {e}"))?;
                    ctl.hs = Some(Hs::Sending(q, p));
                }
                None => {
                    ctl.conn
                        .send(&msg_connect(false, &if_name), None)
                        .map_err(|e| format!("send CONNECT: {e}"))?;
                    ctl.hs = Some(Hs::WaitConnected(p));
                }
            },
            (Hs::WaitConnected(p), MsgType::Connected) => {
                let peer = rdname(m, 2, NAME_SZ);
                self.up(*p, peer)?;
            }
            (Hs::Serving(mut p), MsgType::Init) => {
                if p.got_init {
                    return Err("INIT sent twice".into());
                }
                let v = rd16(m, init::VERSION);
                if v != VERSION {
                    return Err(format!("unsupported memif version {v:#x}"));
                }
                let id = rd32(m, init::ID);
                if id != cfg.id {
                    return Err(format!("no interface with id {id} (ours is {})", cfg.id));
                }
                if m[init::MODE] != 0 {
                    return Err("only ethernet mode is supported".into());
                }
                p.got_init = true;
                p.peer = rdname(m, init::NAME, NAME_SZ);
                ctl.conn.send(&msg_ack(), None).map_err(|e| e.to_string())?;
                ctl.hs = Some(Hs::Serving(p));
            }
            (Hs::Serving(mut p), MsgType::AddRegion) => {
                let (index, size) = read_add_region(m);
                let fd = fd.ok_or("ADD_REGION without a memory descriptor")?;
                if !p.got_init || index as usize != p.regions.len() || p.regions.len() >= 16 {
                    return Err(format!("unexpected region {index}"));
                }
                if size == 0 || size > (1 << 40) {
                    return Err(format!("region size {size} refused"));
                }
                let r = Shm::map(fd, size as usize).map_err(|e| format!("region {index}: {e}"))?;
                p.regions.push(r);
                ctl.conn.send(&msg_ack(), None).map_err(|e| e.to_string())?;
                ctl.hs = Some(Hs::Serving(p));
            }
            (Hs::Serving(mut p), MsgType::AddRing) => {
                let flags = rd16(m, add_ring::FLAGS);
                let index = rd16(m, add_ring::INDEX);
                let region = rd16(m, add_ring::REGION) as usize;
                let off = rd32(m, add_ring::OFFSET) as usize;
                let log2 = m[add_ring::LOG2];
                if index != 0 {
                    return Err(format!("ring {index} refused: one queue pair only"));
                }
                if !(1..=MAX_LOG2_RING).contains(&log2) {
                    return Err(format!("ring size 2^{log2} refused"));
                }
                let Some(reg) = p.regions.get(region) else {
                    return Err(format!("ring in unknown region {region}"));
                };
                if !off.is_multiple_of(64)
                    || off
                        .checked_add(ring_bytes(log2))
                        .is_none_or(|e| e > reg.len())
                {
                    return Err(format!("ring at offset {off} does not fit region {region}"));
                }
                if let Some(fd) = fd {
                    p.eventfds.push(fd);
                }
                let ring = Ring {
                    region,
                    off,
                    size: 1 << log2,
                    mask: (1u16 << log2) - 1,
                };
                let c2s = flags & add_ring::FLAG_C2S != 0;
                p.rings[usize::from(!c2s)] = Some(ring);
                ctl.conn.send(&msg_ack(), None).map_err(|e| e.to_string())?;
                ctl.hs = Some(Hs::Serving(p));
            }
            (Hs::Serving(p), MsgType::Connect) => {
                let peer_if = rdname(m, 2, NAME_SZ);
                ctl.conn
                    .send(&msg_connect(true, &if_name), None)
                    .map_err(|e| format!("send CONNECTED: {e}"))?;
                let peer = format!("{} ({peer_if})", p.peer);
                self.up(*p, peer)?;
            }
            (_, t) => return Err(format!("unexpected {t:?} during the handshake")),
        }
        Ok(())
    }

    /// Client: a fresh region with both rings initialised and every descriptor pointing at its
    /// own buffer.
    fn client_memory(name: &str, log2: u8, buf: usize) -> std::io::Result<Box<Partial>> {
        let n = 1usize << log2;
        let rb = ring_bytes(log2).next_multiple_of(128);
        let bufs_at = 2 * rb;
        let len = (bufs_at + 2 * n * buf).next_multiple_of(4096);
        let r = Shm::create(&format!("memif-{name}"), len)?;
        let mut rings = [None, None];
        for (k, slot) in rings.iter_mut().enumerate() {
            let ring = Ring {
                region: 0,
                off: k * rb,
                size: n as u16,
                mask: (n - 1) as u16,
            };
            let io = |e: shm::ShmError| std::io::Error::other(e.to_string());
            r.write_u32(ring.off + RING_COOKIE, COOKIE).map_err(io)?;
            r.write_u16(ring.off + RING_FLAGS, 0).map_err(io)?;
            r.write_u16(ring.off + RING_HEAD, 0).map_err(io)?;
            r.write_u16(ring.off + RING_TAIL, 0).map_err(io)?;
            for i in 0..n {
                let d = ring.desc(i as u16);
                r.write_u16(d + DESC_FLAGS, 0).map_err(io)?;
                r.write_u16(d + DESC_REGION, 0).map_err(io)?;
                r.write_u32(d + DESC_LENGTH, buf as u32).map_err(io)?;
                r.write_u32(d + DESC_OFFSET, (bufs_at + (k * n + i) * buf) as u32)
                    .map_err(io)?;
            }
            *slot = Some(ring);
        }
        let mut eventfds = Vec::new();
        for _ in 0..2 {
            // SAFETY: plain eventfd(2) call.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: a fresh descriptor nobody else owns.
            eventfds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        Ok(Box::new(Partial {
            regions: vec![r],
            rings,
            own_bufs: Some((bufs_at, bufs_at + n * buf, buf)),
            eventfds,
            got_init: true,
            peer: String::new(),
        }))
    }

    fn up(&mut self, p: Partial, peer: String) -> Result<(), String> {
        let (Some(c2s), Some(s2c)) = (p.rings[0], p.rings[1]) else {
            return Err("CONNECT before both rings were added".into());
        };
        for r in [c2s, s2c] {
            let reg = &p.regions[r.region];
            if reg
                .read_u32(r.off + RING_COOKIE)
                .map_err(|e| e.to_string())?
                != COOKIE
            {
                return Err("ring cookie mismatch".into());
            }
        }
        let (rx, tx) = match self.cfg.role {
            Role::Server => (c2s, s2c),
            Role::Client => (s2c, c2s),
        };
        // We poll our receive ring: tell the peer not to signal us.
        let _ = p.regions[rx.region].write_u16(rx.off + RING_FLAGS, RING_FLAG_MASK_INT);
        // Start from the indices as they are (the client just zeroed them).
        let reg_rx = &p.regions[rx.region];
        let reg_tx = &p.regions[tx.region];
        let (rx_next, tx_next) = match self.cfg.role {
            Role::Server => (
                reg_rx
                    .read_u16(rx.off + RING_TAIL)
                    .map_err(|e| e.to_string())?,
                reg_tx
                    .read_u16(tx.off + RING_TAIL)
                    .map_err(|e| e.to_string())?,
            ),
            Role::Client => (
                reg_rx
                    .read_u16(rx.off + RING_TAIL)
                    .map_err(|e| e.to_string())?,
                reg_tx
                    .read_u16(tx.off + RING_HEAD)
                    .map_err(|e| e.to_string())?,
            ),
        };
        if self.cfg.role == Role::Client {
            // Hand the server every receive descriptor now, not at our first poll: a server
            // that transmits before then would find no room and drop.
            reg_rx
                .atomic_u16(rx.off + RING_HEAD)
                .map_err(|e| e.to_string())?
                .store(rx_next.wrapping_add(rx.size), Ordering::Release);
        }
        if let Some(ctl) = self.ctl.as_mut() {
            ctl.hs = None;
        }
        self.link = Some(Link {
            regions: p.regions,
            rx,
            tx,
            own_bufs: p.own_bufs,
            rx_next,
            tx_next,
            peer,
            _eventfds: p.eventfds,
        });
        self.link_stats.connects += 1;
        Ok(())
    }
}

impl Link {
    /// Packets in our transmit ring the peer has not taken.
    fn in_flight(&self, role: Role) -> u16 {
        let r = &self.regions[self.tx.region];
        match role {
            // C2S: we published `head`; the server has consumed up to `tail`.
            Role::Client => {
                let tail = r
                    .atomic_u16(self.tx.off + RING_TAIL)
                    .map_or(self.tx_next, |a| a.load(Ordering::Acquire));
                self.tx_next.wrapping_sub(tail).min(self.tx.size)
            }
            // S2C: we published `tail`; the client has handed back up to `head - size`.
            Role::Server => {
                let head = r
                    .atomic_u16(self.tx.off + RING_HEAD)
                    .map_or(self.tx_next, |a| a.load(Ordering::Acquire));
                let consumed = head.wrapping_sub(self.tx.size);
                let n = self.tx_next.wrapping_sub(consumed);
                if n > self.tx.size {
                    0
                } else {
                    n
                }
            }
        }
    }

    /// Receives into `burst`.
    #[inline]
    fn rx(
        &mut self,
        role: Role,
        port: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
        stats: &mut PortStats,
    ) -> Result<usize, Fault> {
        let ring = self.rx;
        let r = &self.regions[ring.region];
        // The producer's index: C2S (we are the server) `head`, S2C (client) `tail`.
        let prod_off = match role {
            Role::Server => ring.off + RING_HEAD,
            Role::Client => ring.off + RING_TAIL,
        };
        let prod = r.atomic_u16(prod_off)?.load(Ordering::Acquire);
        let avail = prod.wrapping_sub(self.rx_next);
        if avail > ring.size {
            return Err(Fault("receive ring index out of range"));
        }
        let mut cur = self.rx_next;
        let end = prod;
        let mut got = 0;
        while cur != end && got < max && burst.room() > 0 {
            let Some(mut m) = pool.alloc() else { break };
            m.set_len(0);
            let mut ok = true;
            let mut bad = false;
            // One packet: a chain of descriptors while FLAG_NEXT is set.
            loop {
                if cur == end {
                    // A chain that does not end inside what was published: broken.
                    pool.free(m);
                    return Err(Fault("descriptor chain runs past the ring head"));
                }
                let d = ring.desc(cur);
                cur = cur.wrapping_add(1);
                let flags = r.read_u16(d + DESC_FLAGS)?;
                let len = r.read_u32(d + DESC_LENGTH)? as usize;
                let (reg_i, off) = match (role, self.own_bufs) {
                    // Our own buffers: trust only the length, against our buffer size.
                    (Role::Client, Some((_, s2c_at, bsz))) => {
                        if len > bsz {
                            bad = true;
                        }
                        (
                            0,
                            s2c_at + ((cur.wrapping_sub(1) & ring.mask) as usize) * bsz,
                        )
                    }
                    _ => (
                        r.read_u16(d + DESC_REGION)? as usize,
                        r.read_u32(d + DESC_OFFSET)? as usize,
                    ),
                };
                if ok && !bad {
                    match self.regions.get(reg_i) {
                        None => bad = true,
                        Some(src) => match m.append(len) {
                            Some(dst) => {
                                if src.copy_out(off, dst).is_err() {
                                    bad = true;
                                }
                            }
                            None => ok = false,
                        },
                    }
                }
                if flags & DESC_FLAG_NEXT == 0 {
                    break;
                }
            }
            if bad {
                stats.drop_one(PortDrop::RxBadDescriptor);
                pool.free(m);
            } else if !ok {
                stats.drop_one(PortDrop::RxOversize);
                pool.free(m);
            } else {
                m.set_port(port);
                stats.rx_packets += 1;
                stats.rx_bytes += m.len() as u64;
                let _ = burst.push(m);
                got += 1;
            }
        }
        self.rx_next = cur;
        match role {
            // Server: hand the consumed descriptors back.
            Role::Server => r
                .atomic_u16(ring.off + RING_TAIL)?
                .store(cur, Ordering::Release),
            // Client: refill — every consumed descriptor goes back to the server, full size.
            Role::Client => {
                let (_, s2c_at, bsz) = self.own_bufs.ok_or(Fault("client without buffers"))?;
                let head_a = r.atomic_u16(ring.off + RING_HEAD)?;
                let mut head = head_a.load(Ordering::Relaxed);
                let target = cur.wrapping_add(ring.size);
                if target.wrapping_sub(head) > ring.size {
                    return Err(Fault("receive ring head out of range"));
                }
                while head != target {
                    let d = ring.desc(head);
                    let slot = (head & ring.mask) as usize;
                    r.write_u16(d + DESC_FLAGS, 0)?;
                    r.write_u16(d + DESC_REGION, 0)?;
                    r.write_u32(d + DESC_OFFSET, (s2c_at + slot * bsz) as u32)?;
                    r.write_u32(d + DESC_LENGTH, bsz as u32)?;
                    head = head.wrapping_add(1);
                }
                head_a.store(head, Ordering::Release);
            }
        }
        Ok(got)
    }

    /// Transmits from the front of `burst`.
    #[inline]
    fn tx(
        &mut self,
        role: Role,
        pool: &mut PoolCache,
        burst: &mut Burst,
        stats: &mut PortStats,
    ) -> Result<usize, Fault> {
        let ring = self.tx;
        let r = &self.regions[ring.region];
        let free = match role {
            // C2S: we own head; the server frees up to tail.
            Role::Client => {
                let tail = r.atomic_u16(ring.off + RING_TAIL)?.load(Ordering::Acquire);
                let used = self.tx_next.wrapping_sub(tail);
                if used > ring.size {
                    return Err(Fault("transmit ring tail out of range"));
                }
                ring.size - used
            }
            // S2C: we own tail; the client offers descriptors up to head.
            Role::Server => {
                let head = r.atomic_u16(ring.off + RING_HEAD)?.load(Ordering::Acquire);
                let f = head.wrapping_sub(self.tx_next);
                if f > ring.size {
                    return Err(Fault("transmit ring head out of range"));
                }
                f
            }
        };
        let n = burst.len().min(free as usize);
        if n == 0 {
            return Ok(0);
        }
        let mut slot = self.tx_next;
        let mut fault = None;
        let mut taken = 0;
        burst.retain_owned(|i, m| {
            if i >= n {
                return Some(m);
            }
            taken += 1;
            if fault.is_some() {
                stats.drop_one(PortDrop::TxError);
                pool.free(m);
                return None;
            }
            let d = ring.desc(slot);
            let res: Result<bool, shm::ShmError> = (|| {
                let (reg_i, off, cap) = match (role, self.own_bufs) {
                    (Role::Client, Some((c2s_at, _, bsz))) => {
                        (0usize, c2s_at + ((slot & ring.mask) as usize) * bsz, bsz)
                    }
                    _ => (
                        r.read_u16(d + DESC_REGION)? as usize,
                        r.read_u32(d + DESC_OFFSET)? as usize,
                        r.read_u32(d + DESC_LENGTH)? as usize,
                    ),
                };
                let data = m.data();
                if data.len() > cap {
                    return Ok(false);
                }
                let Some(dst) = self.regions.get(reg_i) else {
                    return Err(shm::ShmError::OutOfBounds {
                        offset: off,
                        len: data.len(),
                        size: 0,
                    });
                };
                dst.copy_in(off, data)?;
                if role == Role::Client {
                    r.write_u16(d + DESC_REGION, 0)?;
                    r.write_u32(d + DESC_OFFSET, off as u32)?;
                }
                r.write_u16(d + DESC_FLAGS, 0)?;
                r.write_u32(d + DESC_LENGTH, data.len() as u32)?;
                Ok(true)
            })();
            match res {
                Ok(true) => {
                    stats.tx_packets += 1;
                    stats.tx_bytes += m.len() as u64;
                    slot = slot.wrapping_add(1);
                }
                Ok(false) => {
                    // Too long for the peer's buffer: the descriptor stays for the next packet.
                    stats.drop_one(PortDrop::TxOversize);
                }
                Err(_) => {
                    stats.drop_one(PortDrop::TxError);
                    fault = Some(Fault("peer descriptor outside its regions"));
                }
            }
            pool.free(m);
            None
        });
        self.tx_next = slot;
        let idx = match role {
            Role::Client => ring.off + RING_HEAD,
            Role::Server => ring.off + RING_TAIL,
        };
        r.atomic_u16(idx)?.store(slot, Ordering::Release);
        match fault {
            Some(f) => Err(f),
            None => Ok(taken),
        }
    }
}

impl Port for MemifPort {
    fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn rx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        self.polls = self.polls.wrapping_add(1);
        let every = if self.link.is_some() {
            CTL_EVERY
        } else {
            CTL_EVERY_DOWN
        };
        if self.polls.is_multiple_of(every) {
            self.control();
        }
        let Some(link) = self.link.as_mut() else {
            return Ok(0);
        };
        match link.rx(self.cfg.role, self.id, pool, burst, max, &mut self.stats) {
            Ok(n) => Ok(n),
            Err(Fault(why)) => {
                if let Some(c) = &self.ctl {
                    let _ = c.conn.send(&msg_disconnect(1, why), None);
                }
                self.down(why);
                Ok(0)
            }
        }
    }

    #[inline]
    fn tx_burst(
        &mut self,
        _queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let Some(link) = self.link.as_mut() else {
            let n = burst.len();
            self.stats.drops[PortDrop::TxLinkDown as usize] += n as u64;
            pool.free_burst(burst);
            return Ok(n);
        };
        match link.tx(self.cfg.role, pool, burst, &mut self.stats) {
            Ok(n) => Ok(n),
            Err(Fault(why)) => {
                if let Some(c) = &self.ctl {
                    let _ = c.conn.send(&msg_disconnect(1, why), None);
                }
                self.down(why);
                Ok(0)
            }
        }
    }

    /// At shutdown: gives the peer up to [`DRAIN_WAIT`] to take what is still in our transmit
    /// ring, then disconnects; whatever it did not take is counted as `tx_lost_in_ring`.
    fn flush(&mut self) -> Result<(), PortError> {
        let deadline = Instant::now() + DRAIN_WAIT;
        while let Some(l) = &self.link {
            if l.in_flight(self.cfg.role) == 0 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
            self.control();
        }
        if self.link.is_some() {
            if let Some(c) = &self.ctl {
                let _ = c.conn.send(&msg_disconnect(0, "interface shut down"), None);
            }
            self.down("shut down");
        }
        Ok(())
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl Drop for MemifPort {
    fn drop(&mut self) {
        if let Some(c) = &self.ctl {
            let _ = c.conn.send(&msg_disconnect(0, "interface shut down"), None);
        }
    }
}

impl std::fmt::Debug for MemifPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemifPort")
            .field("name", &self.name)
            .field("cfg", &self.cfg)
            .field("up", &self.link.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
