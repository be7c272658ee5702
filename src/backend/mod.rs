//! The backend boundary: everything the reactor asks of the operating system.
//!
//! Like libevent's `struct eventop`, a backend only knows file descriptors, interest masks and
//! time. It never sees an event, a callback or a priority; the core owns every ordering decision.
//! Besides readiness, a backend provides the clock the core reads ([`Backend::now`]), the signal
//! wake-up channel, and the socket operations the buffered layer and the listener use, so that the
//! simulator can stand in for the operating system as a whole.
//!
//! This is the only directory of the reactor that may contain `unsafe` code (system calls); each
//! block carries a `// SAFETY:` comment.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crate::event::{Events, Fd, Time};

pub mod epoll;
pub mod mio;
pub mod poll;
pub mod select;
mod signal;
pub mod sys;
pub mod virtual_time;

pub use self::epoll::EpollBackend;
pub use self::mio::MioBackend;
pub use self::poll::PollBackend;
pub use self::select::SelectBackend;
pub use self::virtual_time::{Environment, VirtualTime};

/// The number of signal numbers a backend tracks (`NSIG` on Linux).
pub const NSIG: usize = 65;

/// How finely a backend's wait honours a timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Whole milliseconds, rounded up (epoll, poll: libevent's `evutil_tv_to_msec_`).
    Millis,
    /// Microseconds (select's `struct timeval`).
    Micros,
}

impl Resolution {
    /// The wait the backend really performs when asked to wait `d`.
    pub fn round(self, d: Duration) -> Duration {
        match self {
            Resolution::Micros => Duration::from_micros(crate::event::duration_micros(d)),
            Resolution::Millis => {
                let us = crate::event::duration_micros(d);
                Duration::from_millis(us.div_ceil(1000))
            }
        }
    }
}

/// What a backend can do, as data (libevent's `EV_FEATURE_*` plus the wait resolution).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// `EV_FEATURE_ET`: edge-triggered events are honoured.
    pub edge_triggered: bool,
    /// `EV_FEATURE_O1`: add, delete and one readiness report cost O(1).
    pub o1: bool,
    /// `EV_FEATURE_EARLY_CLOSE`: `EV_CLOSED` is reported without reading.
    pub early_close: bool,
    /// `EV_FEATURE_FDS`: works with any kind of descriptor, not only sockets.
    pub fds: bool,
    /// How the wait rounds its timeout.
    pub resolution: Resolution,
}

/// One readiness report from [`Backend::dispatch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The ready descriptor.
    pub fd: Fd,
    /// READ, WRITE and/or CLOSED, plus ET when the backend reports edge-triggered readiness the
    /// way libevent's epoll backend does (it always ORs `EV_ET` into what it reports).
    pub events: Events,
}

/// Which direction(s) [`Backend::shutdown`] closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// `SHUT_RD`.
    Read,
    /// `SHUT_WR`.
    Write,
    /// `SHUT_RDWR`.
    Both,
}

/// The state of a socket after a nonblocking [`Backend::connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectState {
    /// The connection completed at once (common for AF_UNIX).
    Connected,
    /// `EINPROGRESS`: the result is reported later through writability and `SO_ERROR`.
    InProgress,
}

/// Socket options for [`Backend::listen`] (the listener's `LEV_OPT_*` mapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ListenOptions {
    /// `listen()` backlog; 0 means: bind but do not call `listen()` (libevent's rule for
    /// `evconnlistener_new` with backlog 0); a negative value means 128.
    pub backlog: i32,
    /// `SO_REUSEADDR` (`LEV_OPT_REUSEABLE`).
    pub reuse_addr: bool,
    /// `SO_REUSEPORT` (`LEV_OPT_REUSEABLE_PORT`).
    pub reuse_port: bool,
    /// `FD_CLOEXEC` on the listening socket (`LEV_OPT_CLOSE_ON_EXEC`).
    pub close_on_exec: bool,
}

/// The operations the reactor needs from the operating system.
///
/// Contract, shared by every implementation (and checked by the per-backend test suite):
/// - `add`/`del` receive the fd's interest before the change (`old`) and the bits being added or
///   removed; the core calls them only when a per-fd count crosses 0↔1 (libevent's evmap).
/// - `dispatch` waits at most `timeout` (`None`: until something is ready), appends what is ready
///   to `ready` and returns. `EINTR` is not an error: it returns with nothing ready.
/// - `now` is the only clock the core reads. It must be monotonic.
/// - The signal channel is a descriptor the core watches like any other (libevent's internal
///   signal pipe): `signal_fd` creates it on first use, `signal_drain` empties it and adds the
///   number of deliveries of each signal to `counts` (indexed by signal number).
pub trait Backend {
    /// The method name, as libevent names it (`"epoll"`, `"poll"`, `"select"`, …).
    fn name(&self) -> &'static str;
    /// Capabilities of this backend.
    fn features(&self) -> Features;
    /// Start watching `added` on `fd`, which was watched for `old` before.
    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()>;
    /// Stop watching `removed` on `fd`, which was watched for `old` before.
    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()>;
    /// Wait for readiness; see the trait documentation.
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()>;
    /// Polls once more, with a zero timeout, as the continuation of the `dispatch` that just
    /// returned nothing, so that both polls count as one wait.
    ///
    /// [`VirtualTime`] calls this after firing scripted input inside a wait, where the C player
    /// polls twice inside one call of libevent's backend. It matters for select, whose every wait
    /// draws one number from libevent's weak RNG even when nothing is ready: its override rewinds
    /// the generator so that the two polls draw once, as real libevent does. The default is a
    /// plain zero-timeout `dispatch`, right for every backend without per-wait state.
    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.dispatch(Some(Duration::ZERO), ready)
    }
    /// The current monotonic time.
    fn now(&mut self) -> Time;
    /// `EVENT_BASE_FLAG_PRECISE_TIMER`: from now on [`Backend::now`] reads the precise clock.
    /// The real backends otherwise read the clock libevent's default base reads
    /// ([`sys::Clock`]); a backend with a clock of its own (virtual time, the simulator)
    /// ignores this.
    fn use_precise_clock(&mut self) {}

    /// Start catching signal `sig` (install the handler); called at the first add for `sig`.
    fn signal_add(&mut self, sig: i32) -> io::Result<()>;
    /// Stop catching `sig` (restore the previous disposition); called at the last delete.
    fn signal_del(&mut self, sig: i32) -> io::Result<()>;
    /// The read end of the signal wake-up channel, created on first call.
    fn signal_fd(&mut self) -> io::Result<Fd>;
    /// Read the wake-up channel until it is empty; add each delivery to `counts[sig]`.
    fn signal_drain(&mut self, counts: &mut [u32; NSIG]);
    /// Route signal deliveries to this backend (called at loop entry while the base has signal
    /// events, like libevent's `evsig_set_base_`: one base per process receives signals).
    fn signal_claim(&mut self) {}
    /// Deliver signal `sig` to this process (or, in simulation, to this host).
    fn raise(&mut self, sig: i32) -> io::Result<()>;

    /// A connected pair of nonblocking stream sockets.
    fn socketpair(&mut self) -> io::Result<(Fd, Fd)>;
    /// `read(2)`.
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize>;
    /// `write(2)` (never raises SIGPIPE: a closed peer gives `EPIPE`).
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize>;
    /// `shutdown(2)`.
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()>;
    /// `close(2)`.
    fn close(&mut self, fd: Fd) -> io::Result<()>;
    /// A nonblocking TCP socket bound to `addr` and listening as `opts` says.
    fn listen(&mut self, addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd>;
    /// Accept one connection: a nonblocking socket and the peer's address.
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, SocketAddr)>;
    /// Start a nonblocking TCP connection to `addr`.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<(Fd, ConnectState)>;
    /// `connect(2)` on a socket that already exists (libevent's `bufferevent_socket_connect` on
    /// a bufferevent with a socket): `EINPROGRESS` is `InProgress`, 0 is `Connected`, anything
    /// else an error (Linux: `EALREADY` while the handshake runs, 0 once after a nonblocking
    /// connect completed, then `EISCONN`). Backends without sockets of their own keep the
    /// default, `EOPNOTSUPP`.
    fn connect_existing(&mut self, fd: Fd, addr: SocketAddr) -> io::Result<ConnectState> {
        let _ = (fd, addr);
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
    /// Take the pending socket error (`SO_ERROR`), if any.
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>>;
    /// The local address of a socket.
    fn local_addr(&mut self, fd: Fd) -> io::Result<SocketAddr>;
}

/// Delegates the signal operations of [`Backend`] (`signal_add`, `signal_del`, `signal_claim`,
/// `signal_fd`, `signal_drain`, `raise`) to the backend in field `$inner`. For wrappers such as
/// [`VirtualTime`] that change the clock or the readiness but not the signals.
#[macro_export]
macro_rules! delegate_signal_ops {
    ($inner:ident) => {
        fn signal_add(&mut self, sig: i32) -> ::std::io::Result<()> {
            $crate::backend::Backend::signal_add(&mut self.$inner, sig)
        }
        fn signal_del(&mut self, sig: i32) -> ::std::io::Result<()> {
            $crate::backend::Backend::signal_del(&mut self.$inner, sig)
        }
        fn signal_claim(&mut self) {
            $crate::backend::Backend::signal_claim(&mut self.$inner)
        }
        fn signal_fd(&mut self) -> ::std::io::Result<$crate::Fd> {
            $crate::backend::Backend::signal_fd(&mut self.$inner)
        }
        fn signal_drain(&mut self, counts: &mut [u32; $crate::backend::NSIG]) {
            $crate::backend::Backend::signal_drain(&mut self.$inner, counts)
        }
        fn raise(&mut self, sig: i32) -> ::std::io::Result<()> {
            $crate::backend::Backend::raise(&mut self.$inner, sig)
        }
    };
}

/// Delegates every socket operation of [`Backend`] (`socketpair` … `local_addr`) to the backend
/// in field `$inner`.
#[macro_export]
macro_rules! delegate_socket_ops {
    ($inner:ident) => {
        fn socketpair(&mut self) -> ::std::io::Result<($crate::Fd, $crate::Fd)> {
            $crate::backend::Backend::socketpair(&mut self.$inner)
        }
        fn read(&mut self, fd: $crate::Fd, buf: &mut [u8]) -> ::std::io::Result<usize> {
            $crate::backend::Backend::read(&mut self.$inner, fd, buf)
        }
        fn write(&mut self, fd: $crate::Fd, buf: &[u8]) -> ::std::io::Result<usize> {
            $crate::backend::Backend::write(&mut self.$inner, fd, buf)
        }
        fn shutdown(
            &mut self,
            fd: $crate::Fd,
            how: $crate::backend::Shutdown,
        ) -> ::std::io::Result<()> {
            $crate::backend::Backend::shutdown(&mut self.$inner, fd, how)
        }
        fn close(&mut self, fd: $crate::Fd) -> ::std::io::Result<()> {
            $crate::backend::Backend::close(&mut self.$inner, fd)
        }
        fn listen(
            &mut self,
            addr: ::std::net::SocketAddr,
            opts: $crate::backend::ListenOptions,
        ) -> ::std::io::Result<$crate::Fd> {
            $crate::backend::Backend::listen(&mut self.$inner, addr, opts)
        }
        fn accept(
            &mut self,
            fd: $crate::Fd,
        ) -> ::std::io::Result<($crate::Fd, ::std::net::SocketAddr)> {
            $crate::backend::Backend::accept(&mut self.$inner, fd)
        }
        fn connect(
            &mut self,
            addr: ::std::net::SocketAddr,
        ) -> ::std::io::Result<($crate::Fd, $crate::backend::ConnectState)> {
            $crate::backend::Backend::connect(&mut self.$inner, addr)
        }
        fn connect_existing(
            &mut self,
            fd: $crate::Fd,
            addr: ::std::net::SocketAddr,
        ) -> ::std::io::Result<$crate::backend::ConnectState> {
            $crate::backend::Backend::connect_existing(&mut self.$inner, fd, addr)
        }
        fn take_socket_error(
            &mut self,
            fd: $crate::Fd,
        ) -> ::std::io::Result<Option<::std::io::Error>> {
            $crate::backend::Backend::take_socket_error(&mut self.$inner, fd)
        }
        fn local_addr(&mut self, fd: $crate::Fd) -> ::std::io::Result<::std::net::SocketAddr> {
            $crate::backend::Backend::local_addr(&mut self.$inner, fd)
        }
    };
}

/// The real backends available on this platform, in libevent's order of preference.
pub const METHODS: &[&str] = &["epoll", "poll", "select", "mio"];

/// A real backend chosen by name at run time (libevent's method names, plus `mio`).
pub enum AnyBackend {
    /// epoll(7).
    Epoll(EpollBackend),
    /// poll(2).
    Poll(PollBackend),
    /// select(2).
    Select(SelectBackend),
    /// mio's `Poll` (kqueue, epoll or IOCP underneath).
    Mio(MioBackend),
}

impl AnyBackend {
    /// Opens the backend called `name` (`epoll`, `poll`, `select` or `mio`).
    pub fn by_name(name: &str) -> io::Result<AnyBackend> {
        Ok(match name {
            "epoll" => AnyBackend::Epoll(EpollBackend::new()?),
            "poll" => AnyBackend::Poll(PollBackend::new()?),
            "select" => AnyBackend::Select(SelectBackend::new()?),
            "mio" => AnyBackend::Mio(MioBackend::new()?),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown backend {other:?} (expected one of {METHODS:?})"),
                ))
            }
        })
    }

    /// The platform default: epoll on Linux.
    pub fn default_backend() -> io::Result<AnyBackend> {
        AnyBackend::by_name("epoll")
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            AnyBackend::Epoll($b) => $e,
            AnyBackend::Poll($b) => $e,
            AnyBackend::Select($b) => $e,
            AnyBackend::Mio($b) => $e,
        }
    };
}

impl Backend for AnyBackend {
    fn name(&self) -> &'static str {
        delegate!(self, b => b.name())
    }
    fn features(&self) -> Features {
        delegate!(self, b => b.features())
    }
    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        delegate!(self, b => b.add(fd, old, added))
    }
    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        delegate!(self, b => b.del(fd, old, removed))
    }
    // Inlined into the loop, as each backend's own is (see epoll's): the wait returns into it.
    #[inline(always)]
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        delegate!(self, b => b.dispatch(timeout, ready))
    }
    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        delegate!(self, b => b.dispatch_again(ready))
    }
    fn now(&mut self) -> Time {
        delegate!(self, b => b.now())
    }
    fn use_precise_clock(&mut self) {
        delegate!(self, b => b.use_precise_clock())
    }
    fn signal_add(&mut self, sig: i32) -> io::Result<()> {
        delegate!(self, b => b.signal_add(sig))
    }
    fn signal_del(&mut self, sig: i32) -> io::Result<()> {
        delegate!(self, b => b.signal_del(sig))
    }
    fn signal_fd(&mut self) -> io::Result<Fd> {
        delegate!(self, b => b.signal_fd())
    }
    fn signal_drain(&mut self, counts: &mut [u32; NSIG]) {
        delegate!(self, b => b.signal_drain(counts))
    }
    fn signal_claim(&mut self) {
        delegate!(self, b => b.signal_claim())
    }
    fn raise(&mut self, sig: i32) -> io::Result<()> {
        delegate!(self, b => b.raise(sig))
    }
    fn socketpair(&mut self) -> io::Result<(Fd, Fd)> {
        delegate!(self, b => b.socketpair())
    }
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        delegate!(self, b => b.read(fd, buf))
    }
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        delegate!(self, b => b.write(fd, buf))
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()> {
        delegate!(self, b => b.shutdown(fd, how))
    }
    fn close(&mut self, fd: Fd) -> io::Result<()> {
        delegate!(self, b => b.close(fd))
    }
    fn listen(&mut self, addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
        delegate!(self, b => b.listen(addr, opts))
    }
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, SocketAddr)> {
        delegate!(self, b => b.accept(fd))
    }
    fn connect(&mut self, addr: SocketAddr) -> io::Result<(Fd, ConnectState)> {
        delegate!(self, b => b.connect(addr))
    }
    fn connect_existing(&mut self, fd: Fd, addr: SocketAddr) -> io::Result<ConnectState> {
        delegate!(self, b => b.connect_existing(fd, addr))
    }
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>> {
        delegate!(self, b => b.take_socket_error(fd))
    }
    fn local_addr(&mut self, fd: Fd) -> io::Result<SocketAddr> {
        delegate!(self, b => b.local_addr(fd))
    }
}
