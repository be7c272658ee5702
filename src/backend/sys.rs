//! The libc layer shared by every real backend: the one `syscall!` helper, sockets, the monotonic
//! clock, `raise`, and libevent's weak RNG (the scan-start generator of poll and select).
//!
//! Everything here is a thin, stateless wrapper around one system call or a short fixed sequence
//! of them (libevent's `evutil_*` helpers). It must never keep reactor state or read any clock but
//! `CLOCK_MONOTONIC` (and, to seed the weak RNG exactly like libevent, `gettimeofday`).
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use super::{ConnectState, ListenOptions, Shutdown};
use crate::event::{Fd, Time};

/// Calls the libc function `$fn` and turns its `-1` into `io::Error::last_os_error()`.
///
/// The caller must justify the call's memory safety in a `// SAFETY:` comment right above the
/// macro invocation (pointers valid for the lengths passed, descriptors owned or borrowed).
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: argued at the call site, as this macro's documentation requires.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// The socket operations of [`super::Backend`], delegating to this module.
///
/// Expands inside an `impl Backend for X` block so every real backend shares one implementation.
macro_rules! real_socket_ops {
    () => {
        fn socketpair(&mut self) -> std::io::Result<($crate::event::Fd, $crate::event::Fd)> {
            $crate::backend::sys::socketpair()
        }
        #[inline]
        fn read(&mut self, fd: $crate::event::Fd, buf: &mut [u8]) -> std::io::Result<usize> {
            $crate::backend::sys::read(fd, buf)
        }
        #[inline]
        fn write(&mut self, fd: $crate::event::Fd, buf: &[u8]) -> std::io::Result<usize> {
            $crate::backend::sys::write(fd, buf)
        }
        fn shutdown(
            &mut self,
            fd: $crate::event::Fd,
            how: $crate::backend::Shutdown,
        ) -> std::io::Result<()> {
            $crate::backend::sys::shutdown(fd, how)
        }
        fn close(&mut self, fd: $crate::event::Fd) -> std::io::Result<()> {
            $crate::backend::sys::close(fd)
        }
        fn listen(
            &mut self,
            addr: std::net::SocketAddr,
            opts: $crate::backend::ListenOptions,
        ) -> std::io::Result<$crate::event::Fd> {
            $crate::backend::sys::listen(addr, opts)
        }
        fn accept(
            &mut self,
            fd: $crate::event::Fd,
        ) -> std::io::Result<($crate::event::Fd, std::net::SocketAddr)> {
            $crate::backend::sys::accept(fd)
        }
        fn connect(
            &mut self,
            addr: std::net::SocketAddr,
        ) -> std::io::Result<($crate::event::Fd, $crate::backend::ConnectState)> {
            $crate::backend::sys::connect(addr)
        }
        fn connect_existing(
            &mut self,
            fd: $crate::event::Fd,
            addr: std::net::SocketAddr,
        ) -> std::io::Result<$crate::backend::ConnectState> {
            $crate::backend::sys::connect_existing(fd, addr)
        }
        fn take_socket_error(
            &mut self,
            fd: $crate::event::Fd,
        ) -> std::io::Result<Option<std::io::Error>> {
            $crate::backend::sys::take_socket_error(fd)
        }
        fn local_addr(&mut self, fd: $crate::event::Fd) -> std::io::Result<std::net::SocketAddr> {
            $crate::backend::sys::local_addr(fd)
        }
    };
}
pub(crate) use real_socket_ops;

/// The signal operations of [`super::Backend`], delegating to the `SignalState` in field `$f`.
macro_rules! real_signal_ops {
    ($f:ident) => {
        fn signal_add(&mut self, sig: i32) -> std::io::Result<()> {
            self.$f.add(sig)
        }
        fn signal_del(&mut self, sig: i32) -> std::io::Result<()> {
            self.$f.del(sig)
        }
        fn signal_fd(&mut self) -> std::io::Result<$crate::event::Fd> {
            self.$f.fd()
        }
        fn signal_drain(&mut self, counts: &mut [u32; $crate::backend::NSIG]) {
            self.$f.drain(counts)
        }
        fn signal_claim(&mut self) {
            self.$f.claim()
        }
        fn raise(&mut self, sig: i32) -> std::io::Result<()> {
            $crate::backend::sys::raise(sig)
        }
    };
}
pub(crate) use real_signal_ops;

/// Takes ownership of a descriptor a successful system call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    debug_assert!(fd >= 0);
    // SAFETY: `fd` was just returned by a successful call that created it; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Sets `O_NONBLOCK` and, if asked, `FD_CLOEXEC` (for platforms without `SOCK_NONBLOCK`).
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
fn set_nonblocking_cloexec(fd: Fd, cloexec: bool) -> io::Result<()> {
    // SAFETY: F_GETFL takes no pointer argument.
    let flags = syscall!(fcntl(fd, libc::F_GETFL))?;
    // SAFETY: F_SETFL takes an integer argument.
    syscall!(fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    if cloexec {
        // SAFETY: F_SETFD takes an integer argument.
        syscall!(fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC))?;
    }
    Ok(())
}

/// `socket(domain, SOCK_STREAM)`, nonblocking, close-on-exec if asked.
fn stream_socket(domain: libc::c_int, cloexec: bool) -> io::Result<OwnedFd> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let ty =
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | if cloexec { libc::SOCK_CLOEXEC } else { 0 };
        // SAFETY: socket() takes no pointers.
        syscall!(socket(domain, ty, 0)).map(owned)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: socket() takes no pointers.
        let fd = syscall!(socket(domain, libc::SOCK_STREAM, 0)).map(owned)?;
        set_nonblocking_cloexec(fd.as_raw_fd(), cloexec)?;
        Ok(fd)
    }
}

/// A connected pair of nonblocking, close-on-exec `AF_UNIX` stream sockets.
pub fn socketpair() -> io::Result<(Fd, Fd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let ty = libc::SOCK_STREAM;
    // SAFETY: `fds` is a writable array of two c_ints, as socketpair() requires.
    syscall!(socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()))?;
    let (a, b) = (owned(fds[0]), owned(fds[1]));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        set_nonblocking_cloexec(a.as_raw_fd(), true)?;
        set_nonblocking_cloexec(b.as_raw_fd(), true)?;
    }
    Ok((a.into_raw_fd(), b.into_raw_fd()))
}

/// A nonblocking, close-on-exec pipe: (read end, write end). libevent's
/// `evutil_make_internal_pipe_` (pipe2 where available).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [libc::c_int; 2] = [-1, -1];
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: `fds` is a writable array of two c_ints, as pipe2() requires.
        syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
        Ok((owned(fds[0]), owned(fds[1])))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        // SAFETY: `fds` is a writable array of two c_ints, as pipe() requires.
        syscall!(pipe(fds.as_mut_ptr()))?;
        let (r, w) = (owned(fds[0]), owned(fds[1]));
        set_nonblocking_cloexec(r.as_raw_fd(), true)?;
        set_nonblocking_cloexec(w.as_raw_fd(), true)?;
        Ok((r, w))
    }
}

/// Reads: `recv(2)` on sockets, `read(2)` on anything else (`ENOTSOCK`), as [`write`] sends.
/// On a socket, `recv` skips the VFS layer `read` goes through (on the project's VM a one-byte
/// `read` of an AF_UNIX socket cost about 250 ns more than `recv`, which libevent's bench.c
/// uses); a pipe pays one failed `recv` first.
#[inline]
pub fn read(fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n >= 0 {
        return Ok(n as usize);
    }
    read_not_received(fd, buf)
}

/// [`read`] after `recv` failed: `read(2)` if `fd` is not a socket, else the error.
#[cold]
#[inline(never)]
fn read_not_received(fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOTSOCK) {
        return Err(e);
    }
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n >= 0 {
        return Ok(n as usize);
    }
    Err(last_error())
}

/// `io::Error::last_os_error()`, out of line: the error paths of the per-callback wrappers stay
/// out of their callers' code.
#[cold]
#[inline(never)]
fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// Writes without ever raising `SIGPIPE`: `send(MSG_NOSIGNAL)` on sockets, so a closed peer gives
/// `EPIPE`; `write(2)` on anything else (`ENOTSOCK`), where the Rust runtime's ignored `SIGPIPE`
/// turns a closed reader into `EPIPE` too.
#[inline]
pub fn write(fd: Fd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n >= 0 {
        return Ok(n as usize);
    }
    write_not_sent(fd, buf)
}

/// [`write`] after `send` failed: `write(2)` if `fd` is not a socket, else the error.
#[cold]
#[inline(never)]
fn write_not_sent(fd: Fd, buf: &[u8]) -> io::Result<usize> {
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOTSOCK) {
        return Err(e);
    }
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let n = syscall!(write(fd, buf.as_ptr().cast(), buf.len()))?;
    Ok(n as usize)
}

/// `shutdown(2)`.
pub fn shutdown(fd: Fd, how: Shutdown) -> io::Result<()> {
    let how = match how {
        Shutdown::Read => libc::SHUT_RD,
        Shutdown::Write => libc::SHUT_WR,
        Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: shutdown() takes no pointers.
    syscall!(shutdown(fd, how)).map(drop)
}

/// `close(2)`. `EINTR` counts as success: the descriptor is released either way (Linux), and
/// retrying could close a descriptor another thread just opened.
pub fn close(fd: Fd) -> io::Result<()> {
    // SAFETY: close() takes no pointers; the caller gives up `fd`.
    match syscall!(close(fd)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(e),
    }
}

fn set_int_option(
    fd: Fd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a readable c_int and the length passed is its size.
    syscall!(setsockopt(
        fd,
        level,
        name,
        (&value as *const libc::c_int).cast(),
        mem::size_of::<libc::c_int>() as libc::socklen_t,
    ))
    .map(drop)
}

/// A nonblocking TCP socket bound to `addr`, set up like libevent's `evconnlistener_new_bind`:
/// `SO_KEEPALIVE` always, `SO_REUSEADDR`/`SO_REUSEPORT` as asked, then `listen()` with the
/// backlog rule of `evconnlistener_new` (>0: that backlog; <0: 128; 0: no `listen()` call).
pub fn listen(addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
    let fd = stream_socket(domain_of(&addr), opts.close_on_exec)?;
    let raw = fd.as_raw_fd();
    set_int_option(raw, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    if opts.reuse_addr {
        set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if opts.reuse_port {
        set_int_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    let (storage, len) = sockaddr_from(&addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for the socket's family.
    syscall!(bind(
        raw,
        (&storage as *const libc::sockaddr_storage).cast(),
        len
    ))?;
    let backlog = match opts.backlog {
        0 => None,
        b if b < 0 => Some(128),
        b => Some(b),
    };
    if let Some(backlog) = backlog {
        // SAFETY: listen() takes no pointers.
        syscall!(listen(raw, backlog))?;
    }
    Ok(fd.into_raw_fd())
}

/// Accepts one connection as a nonblocking, close-on-exec socket (`accept4` where available).
pub fn accept(fd: Fd) -> io::Result<(Fd, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let storage_ptr = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: `storage` is writable for `len` bytes and `len` is writable.
    let conn = syscall!(accept4(
        fd,
        storage_ptr,
        &mut len,
        libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
    ))
    .map(owned)?;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let conn = {
        // SAFETY: `storage` is writable for `len` bytes and `len` is writable.
        let conn = syscall!(accept(fd, storage_ptr, &mut len)).map(owned)?;
        set_nonblocking_cloexec(conn.as_raw_fd(), true)?;
        conn
    };
    // An unsupported peer family drops (closes) `conn` before returning the error.
    let peer = sockaddr_to(&storage, len)?;
    Ok((conn.into_raw_fd(), peer))
}

/// Starts a nonblocking TCP connection to `addr`. `EINPROGRESS` is not an error: the outcome
/// arrives later as writability plus `SO_ERROR` ([`take_socket_error`]).
pub fn connect(addr: SocketAddr) -> io::Result<(Fd, ConnectState)> {
    let fd = stream_socket(domain_of(&addr), true)?;
    let (storage, len) = sockaddr_from(&addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for the socket's family.
    match syscall!(connect(
        fd.as_raw_fd(),
        (&storage as *const libc::sockaddr_storage).cast(),
        len
    )) {
        Ok(_) => Ok((fd.into_raw_fd(), ConnectState::Connected)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            Ok((fd.into_raw_fd(), ConnectState::InProgress))
        }
        Err(e) => Err(e),
    }
}

/// `connect(2)` on the existing socket `fd`: 0 is `Connected`, `EINPROGRESS` `InProgress`.
pub fn connect_existing(fd: Fd, addr: SocketAddr) -> io::Result<ConnectState> {
    let (storage, len) = sockaddr_from(&addr);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for the address's family.
    match syscall!(connect(
        fd,
        (&storage as *const libc::sockaddr_storage).cast(),
        len
    )) {
        Ok(_) => Ok(ConnectState::Connected),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(ConnectState::InProgress),
        Err(e) => Err(e),
    }
}

/// Reads and clears the pending socket error (`getsockopt(SO_ERROR)`).
pub fn take_socket_error(fd: Fd) -> io::Result<Option<io::Error>> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` is writable for `len` bytes and `len` is writable.
    syscall!(getsockopt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        (&mut err as *mut libc::c_int).cast(),
        &mut len,
    ))?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

/// `getsockname(2)`.
pub fn local_addr(fd: Fd) -> io::Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable for `len` bytes and `len` is writable.
    syscall!(getsockname(
        fd,
        (&mut storage as *mut libc::sockaddr_storage).cast(),
        &mut len
    ))?;
    sockaddr_to(&storage, len)
}

/// The monotonic clock a real backend reads for [`super::Backend::now`], chosen as libevent
/// chooses its base's clock: a base without `EVENT_BASE_FLAG_PRECISE_TIMER` reads
/// `CLOCK_MONOTONIC_COARSE` where the system has it (Linux), a precise base `CLOCK_MONOTONIC`.
///
/// The coarse clock costs a few nanoseconds a read instead of some 25 here, but it advances only
/// once per scheduler tick (1–10 ms): a deadline is then up to a tick early in real time, and a
/// wait can end before the clock shows its deadline reached (the loop then waits again), as
/// with libevent's default base.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    precise: bool,
}

impl Clock {
    /// The precise clock (`CLOCK_MONOTONIC`).
    pub const PRECISE: Clock = Clock { precise: true };

    fn id(self) -> libc::clockid_t {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !self.precise {
            return libc::CLOCK_MONOTONIC_COARSE;
        }
        libc::CLOCK_MONOTONIC
    }

    /// The clock's current time in microseconds.
    pub fn now(self) -> Time {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a writable timespec.
        syscall!(clock_gettime(self.id(), &mut ts))
            .expect("clock_gettime of a monotonic clock cannot fail with a valid pointer");
        Time((ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000)
    }
}

/// Sets signal `sig` to be ignored (`SIG_IGN`), as a process that must survive stray signals
/// does before it starts (the conformance player and runner do this for the signals their
/// scenarios raise). A signal event added later saves this disposition and restores it at its
/// last delete, as libevent does.
pub fn ignore_signal(sig: i32) -> io::Result<()> {
    if !(1..super::NSIG as i32).contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} out of range"),
        ));
    }
    // SAFETY: SIG_IGN is a valid disposition for any catchable signal; no pointers are passed.
    let old = unsafe { libc::signal(sig, libc::SIG_IGN) };
    if old == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Delivers `sig` to the calling thread (`raise(3)`), so a caught signal's handler has run by the
/// time this returns; `kill(getpid())` could hand it to any thread.
pub fn raise(sig: i32) -> io::Result<()> {
    // `raise` returns nonzero (not necessarily -1) on failure.
    // SAFETY: raise() takes no pointers.
    let res = unsafe { libc::raise(sig) };
    if res != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("raise({sig}) failed"),
        ));
    }
    Ok(())
}

fn domain_of(addr: &SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// `addr` as a C socket address and its length.
fn sockaddr_from(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any socket address type,
            // and every bit pattern is a valid sockaddr_in.
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_scope_id = a.scope_id();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The `SocketAddr` in a C socket address (IPv4 and IPv6 only).
fn sockaddr_to(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> io::Result<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits and is aligned.
            let sin =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits and is aligned.
            let sin6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Ok(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("socket address family {family} is not IPv4 or IPv6"),
        )),
    }
}

/// A pointer to the calling thread's `errno`, for the signal handler, which must restore it.
/// Null on platforms where the crate does not know the accessor (the handler then skips it).
pub(crate) fn errno_location() -> *mut libc::c_int {
    #[cfg(any(
        target_os = "linux",
        target_os = "redox",
        target_os = "hurd",
        target_os = "emscripten"
    ))]
    {
        // SAFETY: returns the calling thread's errno slot; no preconditions.
        unsafe { libc::__errno_location() }
    }
    #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
    {
        // SAFETY: returns the calling thread's errno slot; no preconditions.
        unsafe { libc::__errno() }
    }
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "visionos",
        target_os = "freebsd"
    ))]
    {
        // SAFETY: returns the calling thread's errno slot; no preconditions.
        unsafe { libc::__error() }
    }
    #[cfg(any(target_os = "solaris", target_os = "illumos"))]
    {
        // SAFETY: returns the calling thread's errno slot; no preconditions.
        unsafe { libc::___errno() }
    }
    #[cfg(not(any(
        target_os = "linux",
        target_os = "redox",
        target_os = "hurd",
        target_os = "emscripten",
        target_os = "android",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "macos",
        target_os = "ios",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "visionos",
        target_os = "freebsd",
        target_os = "solaris",
        target_os = "illumos"
    )))]
    {
        std::ptr::null_mut()
    }
}

/// libevent's weak RNG (`evutil_weakrand_`): the LCG `seed = (seed * 1103515245 + 12345) mod 2^31`
/// (also glibc's `TYPE_0` generator).
///
/// poll and select draw each scan's start index from it ([`WeakRand::range`]), so reproducing
/// real libevent's readiness order means reproducing this generator and its seed exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeakRand {
    seed: u32,
}

impl WeakRand {
    /// `EVUTIL_WEAKRAND_MAX`: the largest value [`WeakRand::draw`] returns.
    pub const MAX: i32 = 0x7fff_ffff;

    /// A generator in state `seed`. Unlike `evutil_weakrand_seed_`, 0 is an ordinary seed here
    /// (libevent reads the clock instead when given 0).
    pub const fn with_seed(seed: u32) -> WeakRand {
        WeakRand { seed }
    }

    /// Seeded as libevent's poll and select backends seed it at init: `tv_sec + tv_usec` of
    /// `gettimeofday()` plus `getpid()`, in wrapping 32-bit arithmetic. This is the only wall
    /// clock read in the crate, and it only picks the seed.
    pub fn from_time_and_pid() -> WeakRand {
        let mut tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a writable timeval; a null timezone is allowed.
        syscall!(gettimeofday(&mut tv, std::ptr::null_mut()))
            .expect("gettimeofday cannot fail with a valid pointer");
        // SAFETY: getpid() takes no arguments and cannot fail.
        let pid = unsafe { libc::getpid() };
        WeakRand::with_seed(
            (tv.tv_sec as u32)
                .wrapping_add(tv.tv_usec as u32)
                .wrapping_add(pid as u32),
        )
    }

    /// The current state (the seed of the next draw).
    pub const fn state(&self) -> u32 {
        self.seed
    }

    /// One step of the generator: a value in `0..=MAX` (`evutil_weakrand_`).
    pub fn draw(&mut self) -> i32 {
        self.seed = self.seed.wrapping_mul(1_103_515_245).wrapping_add(12_345) & 0x7fff_ffff;
        self.seed as i32
    }

    /// A value in `0..top` from the high bits, redrawing on the rare overshoot
    /// (`evutil_weakrand_range_`). `top` must be positive; libevent divides by zero otherwise,
    /// this returns 0 without drawing.
    pub fn range(&mut self, top: i32) -> i32 {
        if top <= 0 {
            debug_assert!(top > 0, "weakrand range over {top}");
            return 0;
        }
        let divisor = Self::MAX / top;
        loop {
            let result = self.draw() / divisor;
            if result < top {
                return result;
            }
        }
    }
}

/// Native epoll's mask for an interest, as libevent's epoll backend builds it: READ→`EPOLLIN`,
/// WRITE→`EPOLLOUT`, CLOSED→`EPOLLRDHUP` (the epoll backend and the mio backend's epoll
/// registrations).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn epoll_mask(ev: crate::event::Events) -> u32 {
    use crate::event::Events;
    let mut mask = 0;
    if ev.contains(Events::READ) {
        mask |= libc::EPOLLIN;
    }
    if ev.contains(Events::WRITE) {
        mask |= libc::EPOLLOUT;
    }
    if ev.contains(Events::CLOSED) {
        mask |= libc::EPOLLRDHUP;
    }
    mask as u32
}

/// Closes every descriptor from 3 up that this process inherited, so that the next descriptor
/// it opens is 3, as in a process started with only stdin, stdout and stderr.
///
/// For test harnesses that compare traces whose order depends on absolute fd numbers (libevent's
/// select backend scans ready fds by number from a random start in `[0, nfds)`): evloop's
/// conformance runner calls it first thing in a child process, as the libevent player does. Call
/// it only at the start of a process, before anything in it opened a descriptor: it closes
/// descriptors regardless of who owns them.
pub fn close_inherited_descriptors() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range takes no pointers; closing descriptors nothing in this process
        // uses yet is the documented precondition of this function.
        let r = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
        if r == 0 {
            return Ok(());
        }
    }
    // Without close_range: the descriptors /proc/self/fd lists (or, without /proc, every
    // number below the soft limit).
    let listed: Option<Vec<libc::c_int>> = std::fs::read_dir("/proc/self/fd").ok().map(|d| {
        d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd: &libc::c_int| fd > 2)
            .collect()
    });
    let fds = match listed {
        Some(v) => v,
        None => {
            // SAFETY: sysconf takes no pointers.
            let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
            (3..max.clamp(3, 65536) as libc::c_int).collect()
        }
    };
    for fd in fds {
        // SAFETY: see the function's precondition; EBADF (the directory's own descriptor,
        // already closed when the listing ended, or a number never opened) is harmless.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakrand_is_glibc_type0_lcg() {
        let mut r = WeakRand::with_seed(1);
        // 1 * 1103515245 + 12345 = 1103527590, below 2^31.
        assert_eq!(r.draw(), 1_103_527_590);
        assert_eq!(r.state(), 1_103_527_590);
        let next = (1_103_527_590u64 * 1_103_515_245 + 12_345) % (1 << 31);
        assert_eq!(r.draw() as u64, next);
    }

    #[test]
    fn weakrand_range_uses_high_bits() {
        let mut a = WeakRand::with_seed(42);
        let mut b = WeakRand::with_seed(42);
        for top in 1..50 {
            let divisor = WeakRand::MAX / top;
            let v = a.range(top);
            let mut expect = b.draw() / divisor;
            while expect >= top {
                expect = b.draw() / divisor;
            }
            assert_eq!(v, expect);
            assert!((0..top).contains(&v));
        }
    }

    #[test]
    fn sockaddr_round_trip() {
        for s in ["127.0.0.1:9995", "[::1]:80", "[fe80::1%2]:7"] {
            let addr: SocketAddr = s.parse().unwrap();
            let (storage, len) = sockaddr_from(&addr);
            assert_eq!(sockaddr_to(&storage, len).unwrap(), addr);
        }
    }
}
