//! AF_PACKET: the chain on ordinary kernel interfaces (veth, a NIC the kernel keeps), through
//! memory-mapped rings rather than a syscall per packet.
//!
//! Each queue is a pair of packet sockets bound to the interface:
//!
//! - **Receive**: a `TPACKET_V3` ring. The kernel fills whole blocks of packets and hands a block
//!   over by setting `TP_STATUS_USER` in its header; we copy the packets out into our `Mbuf`s and
//!   give the block back (`TP_STATUS_KERNEL`). No syscall at all while packets flow; a block that
//!   is not full is retired after `retire_ms` so light traffic is not held up. Our own
//!   transmissions are not looped back (`PACKET_IGNORE_OUTGOING`, and outgoing packets are skipped
//!   if the kernel predates it). With more than one queue, the receive sockets join one
//!   `PACKET_FANOUT` group in hash mode, so the kernel spreads flows over the queues (one queue
//!   per worker, each split off with [`Port::take_queue`]). The kernel's own flow hash
//!   (`skb_get_hash`, computed when the device gave none, as on veth) is symmetric: both
//!   directions of a connection reach one queue. A NIC that hands the kernel its own RSS hash
//!   may break that; run stateful stages on such a NIC with one queue (or through DPDK, whose
//!   RSS is set up with a symmetric key). The kernel hashes a fragment by its addresses only,
//!   an unfragmented packet with its ports too; with [`Spread::Hosts`] the group hashes every
//!   packet by its addresses with a classic BPF program of ours instead
//!   (`PACKET_FANOUT_CBPF`), so a connection's fragments reach its queue.
//! - **Transmit**: a `TPACKET_V2` ring on a second socket opened with protocol 0 (it receives
//!   nothing). Packets are copied into free frames marked `TP_STATUS_SEND_REQUEST`, then one
//!   `sendto` per burst (`MSG_DONTWAIT`) kicks the kernel. V2 rather than V3 for transmit:
//!   V3's transmit ring is the V2 frame ring under another name (fixed-size frames, Linux >=
//!   4.11), and V2 works on every kernel we meet.
//!
//! The rings are shared with the kernel, so they are reached only through [`Shm`]'s checked
//! volatile/atomic accessors, never as Rust slices; a length the kernel reports past the end of
//! a block is counted as `rx_bad_descriptor`, never trusted.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;

use super::memif::shm::Shm;
use super::{Port, PortDrop, PortError, PortStats, Spread};
use crate::mbuf::Burst;
use crate::pool::PoolCache;

// Linux UAPI constants (linux/if_packet.h) the libc crate does not all carry.
const SOL_PACKET: libc::c_int = 263;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_CBPF: u32 = 6;
const PACKET_FANOUT_DATA: libc::c_int = 22;
const PACKET_OUTGOING: u8 = 4;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_SENDING: u32 = 2;
const TP_STATUS_WRONG_FORMAT: u32 = 4;

// struct tpacket_block_desc: version u32, offset_to_priv u32, then tpacket_hdr_v1.
const BLK_STATUS: usize = 8;
const BLK_NUM_PKTS: usize = 12;
const BLK_FIRST: usize = 16;
// struct tpacket3_hdr.
const P3_NEXT: usize = 0;
const P3_SEC: usize = 4;
const P3_NSEC: usize = 8;
const P3_SNAPLEN: usize = 12;
const P3_MAC: usize = 24;
/// `sockaddr_ll` follows the aligned tpacket3_hdr; its `sll_pkttype` is byte 10 of it.
const P3_PKTTYPE: usize = 48 + 10;
// struct tpacket2_hdr: status u32, len u32, snaplen u32, mac u16, net u16, ...; 32 bytes, and
// transmit data starts right after it (TPACKET2_HDRLEN - sizeof(sockaddr_ll)).
const P2_STATUS: usize = 0;
const P2_LEN: usize = 4;
const P2_DATA: usize = 32;

/// An AF_PACKET port's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name.
    pub interface: String,
    /// Queues (one receive socket each, joined by fanout when more than one).
    pub queues: u16,
    /// Fanout group id (default: derived from the process id and the interface index). Other
    /// processes using the same id share the traffic with us.
    pub fanout: Option<u16>,
    /// Receive ring: blocks, and bytes per block (a power of two, multiple of the page size).
    pub rx_blocks: u32,
    /// Bytes per receive block.
    pub block_size: u32,
    /// Transmit ring frames, and bytes per frame (frame size bounds the largest packet).
    pub tx_frames: u32,
    /// Bytes per transmit frame.
    pub frame_size: u32,
    /// Retire a partly filled receive block after this many milliseconds.
    pub retire_ms: u32,
    /// Bypass the qdisc layer on transmit (as DPDK's `net_af_packet` qdisc_bypass).
    pub qdisc_bypass: bool,
    /// How the fanout group spreads packets over the queues: the kernel's flow hash, or
    /// ([`Spread::Hosts`]) a classic BPF program hashing the addresses only.
    pub spread: Spread,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            interface: String::new(),
            queues: 1,
            fanout: None,
            rx_blocks: 64,
            block_size: 1 << 18,
            tx_frames: 2048,
            frame_size: 2048,
            retire_ms: 1,
            qdisc_bypass: false,
            spread: Spread::Flows,
        }
    }
}

/// Classic BPF for a fanout group that spreads by addresses only ([`Spread::Hosts`]): the sum
/// of the source and destination address words (IPv4, or IPv6's eight), mixed; anything else
/// goes to the first queue. Loads are relative to the network header (`SKF_NET_OFF`), so a VLAN
/// tag the kernel has taken off does not move them, and the protocol is the skb's. The kernel
/// takes the result modulo the group's size. A sum is symmetric, so both directions meet.
fn hosts_fanout_prog() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_H, BPF_IMM, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD,
        BPF_LDX, BPF_MISC, BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X, BPF_XOR,
    };
    let code = |c: u32| c as u16;
    let (ld_w_abs, ld_h_abs) = (
        code(BPF_LD | BPF_W | BPF_ABS),
        code(BPF_LD | BPF_H | BPF_ABS),
    );
    let (jeq_k, ja) = (code(BPF_JMP | BPF_JEQ | BPF_K), code(BPF_JMP | BPF_JA));
    let (tax, ldx_imm) = (code(BPF_MISC | BPF_TAX), code(BPF_LDX | BPF_W | BPF_IMM));
    let (add_x, xor_x) = (
        code(BPF_ALU | BPF_ADD | BPF_X),
        code(BPF_ALU | BPF_XOR | BPF_X),
    );
    let (rsh_k, mul_k) = (
        code(BPF_ALU | BPF_RSH | BPF_K),
        code(BPF_ALU | BPF_MUL | BPF_K),
    );
    let (ret_a, ret_k) = (code(BPF_RET | BPF_A), code(BPF_RET | BPF_K));
    // Negative offsets select the skb's ancillary data and its network header.
    let protocol = (libc::SKF_AD_OFF + libc::SKF_AD_PROTOCOL) as u32;
    let net = |off: i32| (libc::SKF_NET_OFF + off) as u32;
    let st = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let ld_net = |off: i32| st(ld_w_abs, 0, 0, net(off));
    // 0: A = protocol; 1: IPv4? (no: on to the IPv6 test, patched below)
    let mut p = vec![
        st(ld_h_abs, 0, 0, protocol),
        st(jeq_k, 0, 0, 0x0800),
        // IPv4: X = source, A = destination, on to the mix (jump patched below).
        ld_net(12),
        st(tax, 0, 0, 0),
        ld_net(16),
        st(ja, 0, 0, 0),
    ];
    let (v4_test, v4_jump) = (1, p.len() - 1);
    // IPv6? (no: return 0, patched below)
    let v6_test = p.len();
    p.push(st(jeq_k, 0, 0, 0x86dd));
    // IPv6: A = the sum of the eight address words (source at 8, destination at 24), X = 0.
    p.push(ld_net(8));
    for w in 1..8 {
        p.push(st(tax, 0, 0, 0));
        p.push(ld_net(8 + 4 * w));
        p.push(st(add_x, 0, 0, 0));
    }
    p.push(st(ldx_imm, 0, 0, 0));
    // The mix: A += X; A ^= A >> 16; A *= 0x45d9f3b; A ^= A >> 16.
    let mix = p.len();
    p.extend([
        st(add_x, 0, 0, 0),
        st(tax, 0, 0, 0),
        st(rsh_k, 0, 0, 16),
        st(xor_x, 0, 0, 0),
        st(mul_k, 0, 0, 0x045d_9f3b),
        st(tax, 0, 0, 0),
        st(rsh_k, 0, 0, 16),
        st(xor_x, 0, 0, 0),
        st(ret_a, 0, 0, 0),
    ]);
    let other = p.len();
    p.push(st(ret_k, 0, 0, 0));
    p[v4_test].jf = (v6_test - v4_test - 1) as u8;
    p[v4_jump].k = (mix - v4_jump - 1) as u32;
    p[v6_test].jf = (other - v6_test - 1) as u8;
    p
}

/// One queue: a receive ring and a transmit ring.
struct Queue {
    rx_fd: OwnedFd,
    rx: Shm,
    tx_fd: OwnedFd,
    tx: Shm,
    /// Receive: current block, and the next packet inside it (`None`: block not started).
    blk: u32,
    pkt_off: usize,
    pkts_left: u32,
    /// Transmit: next frame to fill.
    frame: u32,
}

/// An AF_PACKET port.
pub struct AfPacketPort {
    name: String,
    id: u16,
    cfg: AfPacketConfig,
    queues: Vec<Queue>,
    stats: PortStats,
    mac: [u8; 6],
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: &T) -> Result<(), String> {
    // SAFETY: `v` points at a live `T` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err(&format!("setsockopt {level}/{opt}")));
    }
    Ok(())
}

fn packet_socket(proto: u16) -> Result<OwnedFd, String> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            proto.to_be() as libc::c_int,
        )
    };
    if fd < 0 {
        return Err(os_err("socket(AF_PACKET) (needs CAP_NET_RAW)"));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ifindex: i32, proto: u16) -> Result<(), String> {
    // SAFETY: sockaddr_ll is plain data; zeros are valid.
    let mut a: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    a.sll_family = libc::AF_PACKET as u16;
    a.sll_protocol = proto.to_be();
    a.sll_ifindex = ifindex;
    // SAFETY: `a` is a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&a as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err("bind"));
    }
    Ok(())
}

fn interface_mac(fd: &OwnedFd, name: &str) -> [u8; 6] {
    // SAFETY: ifreq is plain data; zeros are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR fills `req`, a live ifreq with a NUL-terminated name.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) } != 0 {
        return [0; 6];
    }
    // SAFETY: after SIOCGIFHWADDR the union holds a sockaddr.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    mac
}

impl AfPacketPort {
    /// Opens port `id` named `name` on `cfg.interface` (needs CAP_NET_RAW).
    pub fn open(name: &str, id: u16, cfg: AfPacketConfig) -> Result<AfPacketPort, PortError> {
        let err = |msg: String| PortError::Other {
            port: name.into(),
            msg: format!("{}: {msg}", cfg.interface),
        };
        let cname = CString::new(cfg.interface.clone()).map_err(|_| err("bad name".into()))?;
        // SAFETY: `cname` is NUL-terminated.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as i32;
        if ifindex == 0 {
            return Err(err("no such interface".into()));
        }
        if cfg.queues == 0
            || !cfg.block_size.is_power_of_two()
            || cfg.block_size < 4096
            || cfg.frame_size < 128
            || !cfg.frame_size.is_power_of_two()
            || cfg.frame_size > cfg.block_size
            || cfg.rx_blocks == 0
            || cfg.tx_frames == 0
        {
            return Err(err("bad ring geometry".into()));
        }
        let fanout = cfg
            .fanout
            .unwrap_or(((std::process::id() as u16) ^ (ifindex as u16 * 31)) | 1);
        const ETH_P_ALL: u16 = 0x0003;
        let mut queues = Vec::new();
        let mut mac = [0; 6];
        for _ in 0..cfg.queues {
            // Receive socket: V3 ring.
            let rx_fd = packet_socket(ETH_P_ALL).map_err(err)?;
            setsockopt(&rx_fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V3).map_err(err)?;
            let one: libc::c_int = 1;
            let _ = setsockopt(&rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
            let req = libc::tpacket_req3 {
                tp_block_size: cfg.block_size,
                tp_block_nr: cfg.rx_blocks,
                tp_frame_size: cfg.frame_size,
                tp_frame_nr: cfg.block_size / cfg.frame_size * cfg.rx_blocks,
                tp_retire_blk_tov: cfg.retire_ms,
                tp_sizeof_priv: 0,
                tp_feature_req_word: 0,
            };
            setsockopt(&rx_fd, SOL_PACKET, PACKET_RX_RING, &req).map_err(err)?;
            let rx_len = cfg.block_size as usize * cfg.rx_blocks as usize;
            let rx = Shm::map_raw(rx_fd.as_raw_fd(), rx_len).map_err(|e| err(e.to_string()))?;
            bind(&rx_fd, ifindex, ETH_P_ALL).map_err(err)?;
            if cfg.queues > 1 || cfg.fanout.is_some() {
                let mode = match cfg.spread {
                    Spread::Flows => PACKET_FANOUT_HASH,
                    Spread::Hosts => PACKET_FANOUT_CBPF,
                };
                let arg: u32 = (fanout as u32) | (mode << 16);
                setsockopt(&rx_fd, SOL_PACKET, PACKET_FANOUT, &arg).map_err(err)?;
                if cfg.spread == Spread::Hosts {
                    // The group's program (each member may set it; the last one set wins, and
                    // they are all this one).
                    let mut prog = hosts_fanout_prog();
                    let fprog = libc::sock_fprog {
                        len: prog.len() as u16,
                        filter: prog.as_mut_ptr(),
                    };
                    setsockopt(&rx_fd, SOL_PACKET, PACKET_FANOUT_DATA, &fprog).map_err(err)?;
                }
            }
            // Transmit socket: protocol 0 receives nothing; V2 ring.
            let tx_fd = packet_socket(0).map_err(err)?;
            setsockopt(&tx_fd, SOL_PACKET, PACKET_VERSION, &TPACKET_V2).map_err(err)?;
            if cfg.qdisc_bypass {
                setsockopt(&tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one).map_err(err)?;
            }
            let per_block = cfg.block_size / cfg.frame_size;
            let treq = libc::tpacket_req {
                tp_block_size: cfg.block_size,
                tp_block_nr: cfg.tx_frames.div_ceil(per_block),
                tp_frame_size: cfg.frame_size,
                tp_frame_nr: cfg.tx_frames.div_ceil(per_block) * per_block,
            };
            setsockopt(&tx_fd, SOL_PACKET, PACKET_TX_RING, &treq).map_err(err)?;
            let tx_len = treq.tp_block_size as usize * treq.tp_block_nr as usize;
            let tx = Shm::map_raw(tx_fd.as_raw_fd(), tx_len).map_err(|e| err(e.to_string()))?;
            bind(&tx_fd, ifindex, 0).map_err(err)?;
            mac = interface_mac(&tx_fd, &cfg.interface);
            queues.push(Queue {
                rx_fd,
                rx,
                tx_fd,
                tx,
                blk: 0,
                pkt_off: 0,
                pkts_left: 0,
                frame: 0,
            });
        }
        let mut cfg = cfg;
        cfg.tx_frames = (queues[0].tx.len() / cfg.frame_size as usize) as u32;
        Ok(AfPacketPort {
            name: name.into(),
            id,
            cfg,
            queues,
            stats: PortStats::default(),
            mac,
        })
    }
}

impl AfPacketPort {
    /// Splits a multi-queue port into one single-queue port per queue (each with its own
    /// counters), so that each worker can own its queue outright: the shape the engine needs for
    /// fanout across workers (today it polls queue 0 of a port from one thread).
    pub fn into_queues(self) -> Vec<AfPacketPort> {
        let AfPacketPort {
            name,
            id,
            cfg,
            queues,
            mac,
            ..
        } = self;
        queues
            .into_iter()
            .enumerate()
            .map(|(i, q)| AfPacketPort {
                name: format!("{name}.{i}"),
                id,
                cfg: AfPacketConfig {
                    queues: 1,
                    ..cfg.clone()
                },
                queues: vec![q],
                stats: PortStats::default(),
                mac,
            })
            .collect()
    }
}

impl Queue {
    #[inline]
    fn rx(
        &mut self,
        cfg: &AfPacketConfig,
        port: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
        stats: &mut PortStats,
    ) -> usize {
        let bs = cfg.block_size as usize;
        let mut got = 0;
        // At most one pass over the ring per call.
        for _ in 0..cfg.rx_blocks {
            let base = self.blk as usize * bs;
            let Ok(status) = self.rx.atomic_u32(base + BLK_STATUS) else {
                return got;
            };
            if self.pkts_left == 0 {
                if status.load(Ordering::Acquire) & TP_STATUS_USER == 0 {
                    return got; // the kernel still owns it
                }
                let n = self.rx.read_u32(base + BLK_NUM_PKTS).unwrap_or(0);
                let first = self.rx.read_u32(base + BLK_FIRST).unwrap_or(0) as usize;
                self.pkts_left = n;
                self.pkt_off = first;
                if n == 0 {
                    self.release_block(cfg);
                    continue;
                }
            }
            while self.pkts_left > 0 {
                if got >= max || burst.room() == 0 {
                    return got;
                }
                let Some(mut m) = pool.alloc() else {
                    return got; // back-pressure: the kernel ring holds them meanwhile
                };
                let p = base + self.pkt_off;
                let hdr = (|| -> Result<_, super::memif::shm::ShmError> {
                    let mut pkttype = [0u8; 1];
                    self.rx.copy_out(p + P3_PKTTYPE, &mut pkttype)?;
                    Ok((
                        self.rx.read_u32(p + P3_NEXT)?,
                        self.rx.read_u32(p + P3_SNAPLEN)?,
                        self.rx.read_u16(p + P3_MAC)?,
                        pkttype[0],
                        self.rx.read_u32(p + P3_SEC)?,
                        self.rx.read_u32(p + P3_NSEC)?,
                    ))
                })();
                self.pkts_left -= 1;
                let Ok((next, snap, mac_off, pkttype, sec, nsec)) = hdr else {
                    stats.drop_one(PortDrop::RxBadDescriptor);
                    pool.free(m);
                    self.pkts_left = 0;
                    break;
                };
                let data_at = self.pkt_off + mac_off as usize;
                let ok_bounds = data_at + snap as usize <= bs;
                if !ok_bounds {
                    stats.drop_one(PortDrop::RxBadDescriptor);
                    pool.free(m);
                } else if pkttype == PACKET_OUTGOING {
                    pool.free(m);
                } else {
                    match m.append(snap as usize) {
                        None => {
                            stats.drop_one(PortDrop::RxOversize);
                            pool.free(m);
                        }
                        Some(dst) => {
                            if self.rx.copy_out(base + data_at, dst).is_err() {
                                stats.drop_one(PortDrop::RxBadDescriptor);
                                pool.free(m);
                            } else {
                                m.set_port(port);
                                m.set_timestamp(sec as u64 * 1_000_000_000 + nsec as u64);
                                stats.rx_packets += 1;
                                stats.rx_bytes += snap as u64;
                                let _ = burst.push(m);
                                got += 1;
                            }
                        }
                    }
                }
                if next == 0 && self.pkts_left > 0 {
                    self.pkts_left = 0; // inconsistent block: give it back
                }
                self.pkt_off += next as usize;
            }
            self.release_block(cfg);
        }
        got
    }

    #[inline]
    fn release_block(&mut self, cfg: &AfPacketConfig) {
        let base = self.blk as usize * cfg.block_size as usize;
        if let Ok(s) = self.rx.atomic_u32(base + BLK_STATUS) {
            s.store(TP_STATUS_KERNEL, Ordering::Release);
        }
        self.pkts_left = 0;
        self.blk = (self.blk + 1) % cfg.rx_blocks;
    }

    #[inline]
    fn tx(
        &mut self,
        cfg: &AfPacketConfig,
        pool: &mut PoolCache,
        burst: &mut Burst,
        stats: &mut PortStats,
    ) -> usize {
        let fs = cfg.frame_size as usize;
        let nframes = cfg.tx_frames;
        let room = fs - P2_DATA;
        let mut queued = 0;
        let mut taken = 0;
        let (tx, frame) = (&self.tx, &mut self.frame);
        let mut full = false;
        burst.retain_owned(|_, m| {
            if full {
                return Some(m);
            }
            let base = *frame as usize * fs;
            let Ok(st) = tx.atomic_u32(base + P2_STATUS) else {
                return Some(m);
            };
            let s = st.load(Ordering::Acquire);
            if s == TP_STATUS_WRONG_FORMAT {
                stats.drop_one(PortDrop::TxError);
                st.store(TP_STATUS_AVAILABLE, Ordering::Release);
            } else if s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) != 0 {
                full = true; // ring full: leave the rest, in order, for the caller
                return Some(m);
            }
            taken += 1;
            let data = m.data();
            if data.len() > room {
                stats.drop_one(PortDrop::TxOversize);
                pool.free(m);
                return None;
            }
            if tx.copy_in(base + P2_DATA, data).is_err()
                || tx.write_u32(base + P2_LEN, data.len() as u32).is_err()
            {
                stats.drop_one(PortDrop::TxError);
                pool.free(m);
                return None;
            }
            st.store(TP_STATUS_SEND_REQUEST, Ordering::Release);
            stats.tx_packets += 1;
            stats.tx_bytes += data.len() as u64;
            *frame = (*frame + 1) % nframes;
            queued += 1;
            pool.free(m);
            None
        });
        if queued > 0 {
            // One kick per burst; the kernel sends what is marked and frees frames as it goes.
            // SAFETY: sendto with no buffer on a socket we own (TX ring mode).
            let r = unsafe {
                libc::sendto(
                    self.tx_fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let _ = r; // EAGAIN/ENOBUFS: frames stay marked and go with the next kick
        }
        taken
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_queues(&self) -> u16 {
        self.queues.len() as u16
    }

    fn tx_queues(&self) -> u16 {
        self.queues.len() as u16
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    #[inline]
    fn rx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
        max: usize,
    ) -> Result<usize, PortError> {
        let Some(q) = self.queues.get_mut(queue as usize) else {
            return Ok(0);
        };
        let _ = &q.rx_fd;
        Ok(q.rx(&self.cfg, self.id, pool, burst, max, &mut self.stats))
    }

    #[inline]
    fn tx_burst(
        &mut self,
        queue: u16,
        pool: &mut PoolCache,
        burst: &mut Burst,
    ) -> Result<usize, PortError> {
        let n = self.queues.len();
        let q = &mut self.queues[queue as usize % n];
        Ok(q.tx(&self.cfg, pool, burst, &mut self.stats))
    }

    fn flush(&mut self) -> Result<(), PortError> {
        // Wait (briefly) for the kernel to send what is still marked in the transmit rings.
        for q in &self.queues {
            for _ in 0..1000 {
                // SAFETY: sendto with no buffer on a socket we own (TX ring mode).
                unsafe {
                    libc::sendto(
                        q.tx_fd.as_raw_fd(),
                        std::ptr::null(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null(),
                        0,
                    )
                };
                let fs = self.cfg.frame_size as usize;
                let busy = (0..self.cfg.tx_frames as usize).any(|f| {
                    q.tx.read_u32(f * fs + P2_STATUS)
                        .is_ok_and(|s| s & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) != 0)
                });
                if !busy {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        Ok(())
    }

    fn take_queue(&mut self, q: u16) -> Option<Box<dyn Port>> {
        if q == 0 || usize::from(q) + 1 != self.queues.len() {
            return None;
        }
        let queue = self.queues.pop()?;
        self.cfg.queues -= 1;
        Some(Box::new(AfPacketPort {
            name: self.name.clone(),
            id: self.id,
            cfg: AfPacketConfig {
                queues: 1,
                ..self.cfg.clone()
            },
            queues: vec![queue],
            stats: PortStats::default(),
            mac: self.mac,
        }))
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl std::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("name", &self.name)
            .field("cfg", &self.cfg)
            .finish()
    }
}
