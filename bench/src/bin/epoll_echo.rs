//! The floor: the thinnest echo loop on epoll, with `libc` directly.
//!
//! Edge-triggered; each connection is added once for EPOLLIN|EPOLLOUT and
//! never modified. A message costs one `read` (short, so drained) and one
//! `write`; only bytes the kernel refuses wait for the next EPOLLOUT edge.
//! `epoll_echo [HOST PORT]`; SIGTERM/SIGINT (through a signalfd) stop it.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::io::{AsRawFd, RawFd};

const BUF: usize = 64 * 1024;
const LISTEN_TAG: u64 = u64::MAX;
const SIGNAL_TAG: u64 = u64::MAX - 1;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn add(ep: RawFd, fd: RawFd, events: u32, tag: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: tag };
    // SAFETY: valid epoll fd and descriptor; `ev` lives across the call.
    cvt(unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) }).map(drop)
}

/// Per descriptor: `Some(pending output)` while open.
struct Conns(Vec<Option<Vec<u8>>>);

impl Conns {
    fn close(&mut self, fd: RawFd) {
        self.0[fd as usize] = None;
        // SAFETY: `fd` is a connection we accepted and still own; closing it
        // also removes it from the epoll set.
        unsafe { libc::close(fd) };
    }
}

/// Writes `data` once (again on EINTR); returns how much went out, or `None`
/// on a fatal error.
fn write_some(fd: RawFd, data: &[u8]) -> Option<usize> {
    loop {
        // SAFETY: `data` is a valid slice for the call.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => return Some(0),
            Some(libc::EINTR) => continue,
            _ => return None,
        }
    }
}

/// Flushes pending output; `false` on a fatal error.
fn flush(conns: &mut Conns, fd: RawFd) -> bool {
    let Some(pending) = conns.0[fd as usize].as_mut() else {
        return true;
    };
    while !pending.is_empty() {
        match write_some(fd, pending) {
            Some(0) => return true,
            Some(n) => drop(pending.drain(..n)),
            None => return false,
        }
    }
    *pending = Vec::new();
    true
}

/// Reads until a short read, writing each chunk back; `false` when the
/// connection is done (EOF or error).
fn service(conns: &mut Conns, fd: RawFd, buf: &mut [u8]) -> bool {
    loop {
        match conns.0[fd as usize].as_ref() {
            Some(p) if p.len() > 1 << 20 => return true, // wait for EPOLLOUT
            Some(_) => {}
            None => return false,
        }
        // SAFETY: `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) => true,
                Some(libc::EINTR) => continue,
                _ => false,
            };
        }
        let n = n as usize;
        let pending = conns.0[fd as usize].as_mut().expect("open");
        let mut off = 0;
        if pending.is_empty() {
            match write_some(fd, &buf[..n]) {
                Some(w) => off = w,
                None => return false,
            }
        }
        pending.extend_from_slice(&buf[off..n]);
        if n < buf.len() {
            return true;
        }
    }
}

fn main() -> io::Result<()> {
    let (host, port) = mio_selectors_bench::host_port();
    let addr: SocketAddr = mio_selectors_bench::resolve(&host, port);
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();
    // Listen again with the others' backlog (std binds with 128): a burst of
    // connects must not overflow it.
    // SAFETY: listen(2) on our listening socket.
    cvt(unsafe { libc::listen(lfd, 1024) })?;

    // SAFETY: plain libc calls on values we own.
    let (ep, sfd) = unsafe {
        let ep = cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC))?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let sfd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        (ep, sfd)
    };
    add(ep, lfd, libc::EPOLLIN as u32, LISTEN_TAG)?;
    add(ep, sfd, libc::EPOLLIN as u32, SIGNAL_TAG)?;
    mio_selectors_bench::say_listening(listener.local_addr()?);

    let mut conns = Conns(Vec::new());
    let mut buf = vec![0u8; BUF];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let conn_events = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;
    let one: libc::c_int = 1;
    loop {
        // SAFETY: `events` has room for `events.len()` entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(io::Error::last_os_error());
        }
        for ev in &events[..n as usize] {
            let (flags, tag) = (ev.events, ev.u64);
            match tag {
                SIGNAL_TAG => return Ok(()),
                LISTEN_TAG => loop {
                    // SAFETY: accept4 with null address out-parameters.
                    let fd = unsafe {
                        libc::accept4(
                            lfd,
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                        )
                    };
                    if fd < 0 {
                        break; // EAGAIN (drained), or EMFILE: wait for the next edge
                    }
                    // SAFETY: setsockopt on our fd with a c_int option.
                    unsafe {
                        libc::setsockopt(
                            fd,
                            libc::IPPROTO_TCP,
                            libc::TCP_NODELAY,
                            (&one as *const libc::c_int).cast(),
                            std::mem::size_of::<libc::c_int>() as u32,
                        )
                    };
                    if conns.0.len() <= fd as usize {
                        conns.0.resize_with(fd as usize + 1, || None);
                    }
                    conns.0[fd as usize] = Some(Vec::new());
                    if add(ep, fd, conn_events, fd as u64).is_err() {
                        conns.close(fd);
                    }
                },
                _ => {
                    let fd = tag as RawFd;
                    let mut alive = true;
                    let stalled = conns.0[fd as usize]
                        .as_ref()
                        .is_some_and(|p| p.len() > 1 << 20);
                    if flags & (libc::EPOLLOUT | libc::EPOLLERR) as u32 != 0 {
                        alive = flush(&mut conns, fd);
                    }
                    let readable =
                        (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                    if alive && (flags & readable != 0 || stalled) {
                        alive = service(&mut conns, fd, &mut buf);
                    }
                    if !alive {
                        conns.close(fd);
                    }
                }
            }
        }
    }
}
