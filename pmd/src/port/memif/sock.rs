//! The memif control channel: a Unix `SOCK_SEQPACKET` socket carrying 128-byte messages, some
//! with one file descriptor attached (`SCM_RIGHTS`: region memfds, ring eventfds).
//!
//! Every socket here is non-blocking: the port drives the handshake from its poll loop, a few
//! syscalls at a time, and never waits on the peer. A socket name starting with `@` is in the
//! abstract namespace, named by exactly the bytes after `@` (no padding), as DPDK's `net_memif`
//! binds it with `socket-abstract=yes`, so the two find each other.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::proto::MSG_SIZE;

fn sockaddr(path: &str) -> io::Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all zeros is a valid value.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let (bytes, abstract_) = match path.strip_prefix('@') {
        Some(rest) => (rest.as_bytes(), true),
        None => (path.as_bytes(), false),
    };
    let start = usize::from(abstract_);
    if bytes.is_empty() || bytes.len() + start >= a.sun_path.len() {
        return Err(io::Error::other(format!(
            "socket path {path:?} is empty or longer than {} bytes",
            a.sun_path.len() - 1
        )));
    }
    for (i, b) in bytes.iter().enumerate() {
        a.sun_path[start + i] = *b as libc::c_char;
    }
    // Abstract: the name is exactly the bytes after the leading NUL (what DPDK binds);
    // filesystem: the path and its NUL.
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    Ok((a, len as libc::socklen_t))
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A listening control socket (server role). A filesystem socket is removed on drop.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    path: String,
}

impl Listener {
    /// Binds and listens on `path`. A stale socket file nobody listens on is replaced.
    pub fn bind(path: &str) -> io::Result<Listener> {
        let (addr, len) = sockaddr(path)?;
        if !path.starts_with('@') && std::path::Path::new(path).exists() {
            if Conn::connect(path).is_ok() {
                return Err(io::Error::other(format!(
                    "{path}: another process is listening on this socket"
                )));
            }
            let _ = std::fs::remove_file(path);
        }
        let fd = socket()?;
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: listen on a bound socket we own.
        if unsafe { libc::listen(fd.as_raw_fd(), 8) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Listener {
            fd,
            path: path.to_string(),
        })
    }

    /// Accepts a pending connection, if any.
    pub fn accept(&self) -> io::Result<Option<Conn>> {
        // SAFETY: accept4 with null address arguments on a listening socket we own.
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Some(Conn { fd }))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if !self.path.starts_with('@') {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// One control connection.
#[derive(Debug)]
pub struct Conn {
    fd: OwnedFd,
}

/// What a receive found.
#[derive(Debug)]
pub enum Recv {
    /// Nothing waiting.
    Empty,
    /// The peer closed the connection.
    Closed,
    /// A message (zero-padded to 128 bytes) and the descriptor that came with it.
    Msg(Box<[u8; MSG_SIZE]>, Option<OwnedFd>),
}

impl Conn {
    /// Connects to a server's socket (client role).
    pub fn connect(path: &str) -> io::Result<Conn> {
        let (addr, len) = sockaddr(path)?;
        let fd = socket()?;
        // SAFETY: `addr` is a valid sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Conn { fd })
    }

    /// Sends one message, with `fd` attached if given.
    pub fn send(&self, msg: &[u8; MSG_SIZE], fd: Option<RawFd>) -> io::Result<()> {
        let mut iov = libc::iovec {
            iov_base: msg.as_ptr() as *mut libc::c_void,
            iov_len: MSG_SIZE,
        };
        // Room for one descriptor's control message, aligned for cmsghdr.
        let mut cbuf = [0u64; 4];
        // SAFETY: msghdr is plain data; all zeros is valid.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if let Some(fd) = fd {
            // SAFETY: CMSG_SPACE is a pure size computation.
            let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
            debug_assert!(space <= std::mem::size_of_val(&cbuf));
            mh.msg_control = cbuf.as_mut_ptr().cast();
            mh.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough for one
            // cmsghdr carrying one descriptor, so CMSG_FIRSTHDR is non-null and CMSG_DATA is
            // inside the buffer.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&mh);
                (*c).cmsg_level = libc::SOL_SOCKET;
                (*c).cmsg_type = libc::SCM_RIGHTS;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
            }
        }
        // SAFETY: `mh` points at live buffers (`iov`, `cbuf`) for the duration of the call.
        let r = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one message without waiting.
    pub fn recv(&self) -> io::Result<Recv> {
        let mut buf = Box::new([0u8; MSG_SIZE]);
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: MSG_SIZE,
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is plain data; all zeros is valid.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: `mh` points at live buffers for the duration of the call.
        let r = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut mh,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(Recv::Empty),
                io::ErrorKind::ConnectionReset => Ok(Recv::Closed),
                _ => Err(e),
            };
        }
        let mut fd = None;
        // SAFETY: after recvmsg, the control buffer holds `msg_controllen` valid bytes of
        // cmsghdrs; CMSG_FIRSTHDR/NXTHDR stay inside it, and each SCM_RIGHTS payload holds
        // `(cmsg_len - CMSG_LEN(0)) / 4` descriptors that are now ours to own.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let n = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                        / std::mem::size_of::<RawFd>();
                    let data = libc::CMSG_DATA(c).cast::<RawFd>();
                    for i in 0..n {
                        let raw = std::ptr::read_unaligned(data.add(i));
                        let owned = OwnedFd::from_raw_fd(raw);
                        if fd.is_none() {
                            fd = Some(owned);
                        } // extra descriptors are closed by dropping `owned`
                    }
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        if r == 0 {
            return Ok(Recv::Closed);
        }
        Ok(Recv::Msg(buf, fd))
    }
}
