//! The backend contract, tested through the `Backend` trait, once per real backend and once more
//! per backend under `VirtualTime` (tests are named `<backend>::<test>` and
//! `<backend>::virtual_time::<test>`).
//!
//! Real-time tests assert only what cannot vary (what is reported, never how long a wait took);
//! virtual-time tests assert exact clock values. Signals are process-global, so every test that
//! installs a handler holds `SIGNALS`.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use evloop::backend::{
    Backend, ConnectState, Environment, EpollBackend, ListenOptions, MioBackend, PollBackend,
    Ready, Resolution, SelectBackend, Shutdown, VirtualTime, NSIG,
};
use evloop::{Events, Fd, Time};

/// Serializes the tests that install signal handlers.
static SIGNALS: Mutex<()> = Mutex::new(());

/// A wait long enough for readiness that is already there, short enough to keep the suite fast.
const SHORT: Duration = Duration::from_millis(20);

const R: Events = Events::READ;
const W: Events = Events::WRITE;
const C: Events = Events::CLOSED;
const NONE: Events = Events::NONE;

fn dispatch<B: Backend>(b: &mut B, timeout: Option<Duration>) -> Vec<Ready> {
    let mut ready = Vec::new();
    b.dispatch(timeout, &mut ready).expect("dispatch");
    ready
}

/// The reports for `fd` in one dispatch.
fn reports(ready: &[Ready], fd: Fd) -> Vec<Events> {
    ready
        .iter()
        .filter(|r| r.fd == fd)
        .map(|r| r.events)
        .collect()
}

/// The I/O bits (READ, WRITE, CLOSED) of the single report for `fd`, or NONE if not reported.
fn io_of(ready: &[Ready], fd: Fd) -> Events {
    match reports(ready, fd).as_slice() {
        [] => NONE,
        [one] => one.io(),
        more => panic!(
            "fd {fd} reported {} times in one dispatch: {more:?}",
            more.len()
        ),
    }
}

/// Dispatches until `fd` reports something in `want` (bounded; sleeps a little between empty
/// dispatches so that a virtual-time backend, which does not really wait, gives the kernel time).
fn wait_for<B: Backend>(b: &mut B, fd: Fd, want: Events) -> Events {
    for _ in 0..250 {
        let ready = dispatch(b, Some(SHORT));
        let got = io_of(&ready, fd);
        if got.intersects(want) {
            return got;
        }
        if ready.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    panic!("fd {fd} never reported {want:?}");
}

fn close_all<B: Backend>(b: &mut B, fds: &[Fd]) {
    for &fd in fds {
        b.close(fd).expect("close");
    }
}

/// libevent's weak RNG, written again from its definition (evutil.c) as an independent model.
struct Lcg(u32);

impl Lcg {
    fn step(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12_345) & 0x7fff_ffff;
        self.0
    }
    fn range(&mut self, top: u32) -> u32 {
        let divisor = 0x7fff_ffff / top;
        loop {
            let r = self.step() / divisor;
            if r < top {
                return r;
            }
        }
    }
}

/// The indices libevent's poll/select scan visits: start+1, start+2, … wrapping, n of them.
fn scan(start: u32, n: u32) -> impl Iterator<Item = u32> {
    (1..=n).map(move |k| (start + k) % n)
}

// ---------------------------------------------------------------------------------------------
// The suite every backend passes, with and without virtual time.

fn read_ready_after_write<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    assert_eq!(b.write(x, b"hello").unwrap(), 5);
    assert_eq!(wait_for(&mut b, y, R), R);
    let mut buf = [0u8; 16];
    assert_eq!(b.read(y, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    close_all(&mut b, &[x, y]);
}

fn idle_socket_is_writable<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(x, NONE, W).unwrap();
    let ready = dispatch(&mut b, Some(SHORT));
    assert_eq!(io_of(&ready, x), W);
    assert_eq!(
        io_of(&ready, y),
        NONE,
        "an fd nobody watches is never reported"
    );
    close_all(&mut b, &[x, y]);
}

fn level_triggered_rereports_until_drained<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    b.write(x, b"abc").unwrap();
    assert_eq!(wait_for(&mut b, y, R), R);
    for _ in 0..3 {
        assert_eq!(
            io_of(&dispatch(&mut b, Some(SHORT)), y),
            R,
            "not drained: reported again"
        );
    }
    let mut buf = [0u8; 2];
    assert_eq!(b.read(y, &mut buf).unwrap(), 2);
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), R, "one byte left");
    assert_eq!(b.read(y, &mut buf).unwrap(), 1);
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), NONE, "drained");
    close_all(&mut b, &[x, y]);
}

fn edge_triggered_reports_once_per_edge<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    if !b.features().edge_triggered {
        return et_is_ignored_without_the_feature(b);
    }
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R | Events::ET).unwrap();
    b.write(x, b"1").unwrap();
    assert_eq!(wait_for(&mut b, y, R), R);
    for _ in 0..2 {
        assert_eq!(
            io_of(&dispatch(&mut b, Some(SHORT)), y),
            NONE,
            "same edge, not drained"
        );
    }
    b.write(x, b"2").unwrap();
    let ready = dispatch(&mut b, Some(SHORT));
    assert_eq!(
        reports(&ready, y),
        vec![R | Events::ET],
        "a new edge, reported with ET"
    );
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), NONE);
    close_all(&mut b, &[x, y]);
}

/// Without the edge-triggered feature (poll, select), EV_ET is ignored as libevent's poll and
/// select ignore it: the fd is level-triggered and reports never carry ET.
fn et_is_ignored_without_the_feature<B: Backend>(mut b: B) {
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R | Events::ET).unwrap();
    b.write(x, b"1").unwrap();
    assert_eq!(wait_for(&mut b, y, R), R, "no ET bit in the report");
    for _ in 0..2 {
        let ready = dispatch(&mut b, Some(SHORT));
        assert_eq!(reports(&ready, y), vec![R], "not drained: reported again");
    }
    let mut buf = [0u8; 1];
    assert_eq!(b.read(y, &mut buf).unwrap(), 1);
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), NONE, "drained");
    close_all(&mut b, &[x, y]);
}

/// libevent's epoll ORs EV_ET into every report, and so does mio (which behaves as libevent's
/// epoll); poll and select never set it.
fn et_bit_as_libevent_reports_it<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(x, NONE, W).unwrap();
    let ready = dispatch(&mut b, Some(SHORT));
    let expect = if matches!(b.name(), "epoll" | "mio") {
        W | Events::ET
    } else {
        W
    };
    assert_eq!(reports(&ready, x), vec![expect]);
    close_all(&mut b, &[x, y]);
}

fn del_stops_reports<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    b.write(x, b"z").unwrap();
    assert_eq!(wait_for(&mut b, y, R), R);
    b.del(y, R, R).unwrap();
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), NONE, "deleted");
    b.add(y, NONE, R).unwrap();
    assert_eq!(
        io_of(&dispatch(&mut b, Some(SHORT)), y),
        R,
        "added again, still unread"
    );
    b.del(y, R, R).unwrap();
    close_all(&mut b, &[x, y]);
}

fn del_one_direction_keeps_the_other<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    b.add(y, R, W).unwrap();
    b.write(x, b"z").unwrap();
    assert_eq!(
        wait_for(&mut b, y, R),
        R | W,
        "one report with both directions"
    );
    b.del(y, R | W, W).unwrap();
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), R);
    b.add(y, R, W).unwrap();
    b.del(y, R | W, R).unwrap();
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), W);
    b.del(y, W, W).unwrap();
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), NONE);
    close_all(&mut b, &[x, y]);
}

fn closed_after_peer_shutdown<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    if !b.features().early_close {
        return closed_never_reported_without_the_feature(b);
    }
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, C).unwrap();
    assert_eq!(
        io_of(&dispatch(&mut b, Some(SHORT)), y),
        NONE,
        "peer still open"
    );
    b.shutdown(x, Shutdown::Write).unwrap();
    assert_eq!(wait_for(&mut b, y, C), C, "EV_CLOSED alone: no read needed");
    b.add(y, C, R).unwrap();
    assert_eq!(
        io_of(&dispatch(&mut b, Some(SHORT)), y),
        R | C,
        "EOF is readable too"
    );
    close_all(&mut b, &[x, y]);
}

/// Without the early-close feature (select), EV_CLOSED is never reported, as with libevent's
/// select: a peer's shutdown only shows as a readable end of file.
fn closed_never_reported_without_the_feature<B: Backend>(mut b: B) {
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R | C).unwrap();
    assert_eq!(
        io_of(&dispatch(&mut b, Some(SHORT)), y),
        NONE,
        "peer still open"
    );
    b.shutdown(x, Shutdown::Write).unwrap();
    assert_eq!(
        wait_for(&mut b, y, R),
        R,
        "end of file is readable, never C"
    );
    for _ in 0..2 {
        assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), y), R, "still no C");
    }
    close_all(&mut b, &[x, y]);
}

/// A full peer close is a hang-up: epoll (EPOLLHUP without EPOLLRDHUP) and poll (POLLHUP) wake
/// both directions of a read-only fd; select only sees the readable end-of-file.
fn peer_close_wakes_read_and_write<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    b.close(x).unwrap();
    let expect = if b.name() == "select" { R } else { R | W };
    assert_eq!(wait_for(&mut b, y, R), expect);
    let mut buf = [0u8; 4];
    assert_eq!(b.read(y, &mut buf).unwrap(), 0, "end of file");
    b.del(y, R, R).unwrap();
    close_all(&mut b, &[y]);
}

fn write_to_closed_peer_is_epipe<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    b.close(y).unwrap();
    let err = b.write(x, b"lost").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPIPE), "{err}");
    close_all(&mut b, &[x]);
}

fn read_would_block_when_empty<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let (x, y) = b.socketpair().unwrap();
    let err = b.read(y, &mut [0u8; 4]).unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "nonblocking: {err}"
    );
    close_all(&mut b, &[x, y]);
}

fn tcp_listen_accept_connect<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let opts = ListenOptions {
        backlog: -1,
        reuse_addr: true,
        close_on_exec: true,
        ..ListenOptions::default()
    };
    let l = b.listen(any, opts).unwrap();
    let addr = b.local_addr(l).unwrap();
    assert_eq!(addr.ip(), any.ip());
    assert_ne!(addr.port(), 0);
    b.add(l, NONE, R).unwrap();

    let (c, _state) = b.connect(addr).unwrap();
    assert_eq!(
        wait_for(&mut b, l, R),
        R,
        "a pending connection makes the listener readable"
    );
    let (s, peer) = b.accept(l).unwrap();
    assert_eq!(peer, b.local_addr(c).unwrap());
    let err = b.accept(l).unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "nonblocking listener"
    );

    b.add(c, NONE, W).unwrap();
    assert_eq!(wait_for(&mut b, c, W), W, "connected");
    assert!(b.take_socket_error(c).unwrap().is_none());
    b.del(c, W, W).unwrap();

    b.add(s, NONE, R).unwrap();
    b.write(c, b"ping").unwrap();
    assert_eq!(wait_for(&mut b, s, R), R);
    let mut buf = [0u8; 8];
    assert_eq!(b.read(s, &mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
    b.del(s, R, R).unwrap();
    b.del(l, R, R).unwrap();
    close_all(&mut b, &[s, c, l]);
}

/// `backlog: 0` binds without listening, so a connection is refused, either at once or through
/// `SO_ERROR` once the connecting socket becomes writable.
fn listen_backlog_zero_refuses<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let l = b.listen(any, ListenOptions::default()).unwrap();
    let addr = b.local_addr(l).unwrap();
    match b.connect(addr) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok((c, ConnectState::InProgress)) => {
            b.add(c, NONE, W).unwrap();
            wait_for(&mut b, c, W);
            let err = b.take_socket_error(c).unwrap().expect("refused");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
            assert!(
                b.take_socket_error(c).unwrap().is_none(),
                "SO_ERROR is cleared by reading"
            );
            b.del(c, W, W).unwrap();
            close_all(&mut b, &[c]);
        }
        Ok((_, ConnectState::Connected)) => panic!("connected to a socket that is not listening"),
    }
    close_all(&mut b, &[l]);
}

fn signal_deliveries_are_counted<B: Backend>(make: impl Fn() -> B) {
    let _guard = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = make();
    let sfd = b.signal_fd().unwrap();
    assert_eq!(b.signal_fd().unwrap(), sfd, "one channel per backend");
    b.add(sfd, NONE, R).unwrap();
    b.signal_add(libc::SIGUSR1).unwrap();
    b.raise(libc::SIGUSR1).unwrap();
    b.raise(libc::SIGUSR1).unwrap();
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), sfd), R);
    let mut counts = [0u32; NSIG];
    b.signal_drain(&mut counts);
    let mut expect = [0u32; NSIG];
    expect[libc::SIGUSR1 as usize] = 2;
    assert_eq!(counts, expect);
    b.signal_drain(&mut counts);
    assert_eq!(counts, expect, "drained: nothing more");
    assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), sfd), NONE);
    b.signal_del(libc::SIGUSR1).unwrap();
    b.del(sfd, R, R).unwrap();
}

/// libevent has one signal base per process: the handler writes to the channel of the backend
/// that most recently added a signal, whichever signal it is. Once that backend is gone,
/// deliveries go nowhere until another backend adds a signal.
fn signals_go_to_the_most_recent_backend<B: Backend>(make: impl Fn() -> B) {
    let _guard = SIGNALS.lock().unwrap_or_else(|e| e.into_inner());
    let (usr1, usr2) = (libc::SIGUSR1 as usize, libc::SIGUSR2 as usize);
    let mut first = make();
    let mut second = make();
    first.signal_add(libc::SIGUSR1).unwrap();
    second.signal_add(libc::SIGUSR2).unwrap();
    first.raise(libc::SIGUSR1).unwrap();
    second.raise(libc::SIGUSR2).unwrap();
    let (mut c1, mut c2) = ([0u32; NSIG], [0u32; NSIG]);
    first.signal_drain(&mut c1);
    second.signal_drain(&mut c2);
    assert_eq!((c1[usr1], c1[usr2]), (0, 0));
    assert_eq!((c2[usr1], c2[usr2]), (1, 1));

    second.signal_del(libc::SIGUSR2).unwrap();
    drop(second);
    first.raise(libc::SIGUSR1).unwrap();
    first.signal_drain(&mut c1);
    assert_eq!(
        c1[usr1], 0,
        "no signal base: the delivery is lost, as in libevent"
    );

    first.signal_add(libc::SIGUSR1).unwrap();
    first.raise(libc::SIGUSR1).unwrap();
    first.signal_drain(&mut c1);
    assert_eq!(c1[usr1], 1);
    first.signal_del(libc::SIGUSR1).unwrap();
}

fn signal_numbers_are_checked<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    for sig in [0, -1, NSIG as i32] {
        let err = b.signal_add(sig).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}

/// Five pairs of clock reads, each pair 50 µs apart (a spin on `CLOCK_MONOTONIC`, not a sleep).
fn clock_pairs(mut now: impl FnMut() -> Time) -> Vec<(Time, Time)> {
    let precise = evloop::backend::sys::Clock::PRECISE;
    (0..5)
        .map(|_| {
            let t0 = now();
            let start = precise.now();
            while precise.now().as_micros() - start.as_micros() < 50 {}
            (t0, now())
        })
        .collect()
}

/// Asserts which clock `now` reads. The precise one (`CLOCK_MONOTONIC`) moves between two reads
/// 50 µs apart, every time. The coarse one libevent's default base reads
/// (`CLOCK_MONOTONIC_COARSE`) moves once per scheduler tick (1–10 ms), so the two reads agree
/// unless a tick falls between them: of five pairs at least one agrees (that all five straddle a
/// tick of 1 ms or more has odds below one in a million on an idle machine).
fn assert_clock(precise: bool, now: impl FnMut() -> Time) {
    let pairs = clock_pairs(now);
    if precise {
        assert!(
            pairs.iter().all(|(a, b)| b > a),
            "the precise clock stood still for 50 µs: {pairs:?}"
        );
    } else {
        assert!(
            pairs.iter().any(|(a, b)| a == b),
            "the default clock moved within 50 µs five times out of five: not the coarse \
             clock? {pairs:?}"
        );
    }
}

/// A real backend reads libevent's default clock, and the precise one once asked
/// (`EVENT_BASE_FLAG_PRECISE_TIMER`).
fn clock_is_coarse_unless_precise_is_asked_for<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    assert_clock(false, || b.now());
    b.use_precise_clock();
    assert_clock(true, || b.now());
}

fn now_never_goes_back<B: Backend>(make: impl Fn() -> B) {
    let mut b = make();
    let t0 = b.now();
    dispatch(&mut b, Some(Duration::from_millis(1)));
    assert!(b.now() >= t0);
}

macro_rules! common_tests {
    ($make:expr) => {
        #[test]
        fn read_ready_after_write() {
            crate::read_ready_after_write($make)
        }
        #[test]
        fn idle_socket_is_writable() {
            crate::idle_socket_is_writable($make)
        }
        #[test]
        fn level_triggered_rereports_until_drained() {
            crate::level_triggered_rereports_until_drained($make)
        }
        #[test]
        fn edge_triggered_reports_once_per_edge() {
            crate::edge_triggered_reports_once_per_edge($make)
        }
        #[test]
        fn et_bit_as_libevent_reports_it() {
            crate::et_bit_as_libevent_reports_it($make)
        }
        #[test]
        fn del_stops_reports() {
            crate::del_stops_reports($make)
        }
        #[test]
        fn del_one_direction_keeps_the_other() {
            crate::del_one_direction_keeps_the_other($make)
        }
        #[test]
        fn closed_after_peer_shutdown() {
            crate::closed_after_peer_shutdown($make)
        }
        #[test]
        fn peer_close_wakes_read_and_write() {
            crate::peer_close_wakes_read_and_write($make)
        }
        #[test]
        fn write_to_closed_peer_is_epipe() {
            crate::write_to_closed_peer_is_epipe($make)
        }
        #[test]
        fn read_would_block_when_empty() {
            crate::read_would_block_when_empty($make)
        }
        #[test]
        fn tcp_listen_accept_connect() {
            crate::tcp_listen_accept_connect($make)
        }
        #[test]
        fn listen_backlog_zero_refuses() {
            crate::listen_backlog_zero_refuses($make)
        }
        #[test]
        fn signal_deliveries_are_counted() {
            crate::signal_deliveries_are_counted($make)
        }
        #[test]
        fn signals_go_to_the_most_recent_backend() {
            crate::signals_go_to_the_most_recent_backend($make)
        }
        #[test]
        fn signal_numbers_are_checked() {
            crate::signal_numbers_are_checked($make)
        }
        #[test]
        fn now_never_goes_back() {
            crate::now_never_goes_back($make)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Virtual time.

/// The expected virtual wait for `d` on backend `name`: whole ms rounded up, except select's µs.
fn virtual_wait(name: &str, d: Duration) -> u64 {
    let us = d.as_micros() as u64;
    if name == "select" {
        us
    } else {
        us.div_ceil(1000) * 1000
    }
}

fn vt_wait_moves_the_clock_by_the_rounded_timeout<I: Backend>(make: impl Fn() -> I) {
    let start = Time(1_000_000);
    let mut b = VirtualTime::with_start(make(), start);
    assert_eq!(b.now(), start);
    assert!(dispatch(&mut b, Some(Duration::from_millis(100))).is_empty());
    assert_eq!(b.now(), Time(1_100_000));
    let odd = Duration::from_micros(100_500);
    assert!(dispatch(&mut b, Some(odd)).is_empty());
    let name = b.name();
    assert_eq!(b.now(), Time(1_100_000 + virtual_wait(name, odd)));
    assert_eq!(
        virtual_wait(name, odd),
        b.features().resolution.round(odd).as_micros() as u64
    );
    match name {
        "select" => assert_eq!(b.now(), Time(1_200_500)),
        _ => assert_eq!(b.now(), Time(1_201_000)),
    }
}

fn vt_readiness_does_not_move_the_clock<I: Backend>(make: impl Fn() -> I) {
    let mut b = VirtualTime::new(make());
    let (x, y) = b.socketpair().unwrap();
    b.add(x, NONE, W).unwrap();
    let ready = dispatch(&mut b, Some(Duration::from_millis(100)));
    assert_eq!(io_of(&ready, x), W);
    assert_eq!(b.now(), Time::ZERO);
    let ready = dispatch(&mut b, None);
    assert_eq!(
        io_of(&ready, x),
        W,
        "an infinite wait with something ready is fine"
    );
    assert_eq!(b.now(), Time::ZERO);
    close_all(&mut b, &[x, y]);
}

fn vt_zero_timeout_does_not_move_the_clock<I: Backend>(make: impl Fn() -> I) {
    let mut b = VirtualTime::with_start(make(), Time(7));
    assert!(dispatch(&mut b, Some(Duration::ZERO)).is_empty());
    assert_eq!(b.now(), Time(7));
}

fn vt_infinite_wait_with_nothing_scheduled_is_an_error<I: Backend>(make: impl Fn() -> I) {
    let mut b = VirtualTime::new(make());
    let err = b.dispatch(None, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("infinite wait"), "{err}");
    assert_eq!(b.now(), Time::ZERO);
}

fn vt_advance_moves_the_clock<I: Backend>(make: impl Fn() -> I) {
    let mut b = VirtualTime::with_start(make(), Time(5));
    b.advance(Duration::from_micros(1_500));
    assert_eq!(b.now(), Time(1_505));
}

fn vt_delegates_name_and_features<I: Backend>(make: impl Fn() -> I) {
    let inner = make();
    let (name, features) = (inner.name(), inner.features());
    let b = VirtualTime::new(inner);
    assert_eq!(b.name(), name);
    assert_eq!(b.features(), features);
    assert_eq!(b.inner().name(), name);
}

/// Writes one byte to `fd` at each scripted time; records when it fired.
struct Writes {
    fd: Fd,
    at: Vec<Time>,
    fired: std::rc::Rc<std::cell::RefCell<Vec<Time>>>,
}

impl<B: Backend> Environment<B> for Writes {
    fn next_input(&self) -> Option<Time> {
        self.at.first().copied()
    }
    fn fire(&mut self, now: Time, backend: &mut B) {
        let due = self.at.remove(0);
        assert!(due <= now);
        backend.write(self.fd, b"!").unwrap();
        self.fired.borrow_mut().push(now);
    }
}

fn vt_input_stops_the_clock_at_its_time<I: Backend + 'static>(make: impl Fn() -> I) {
    let mut b = VirtualTime::new(make());
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    let fired = std::rc::Rc::default();
    b.set_environment(Box::new(Writes {
        fd: x,
        at: vec![Time(30_000), Time(150_000)],
        fired: std::rc::Rc::clone(&fired),
    }));

    let ready = dispatch(&mut b, Some(Duration::from_millis(100)));
    assert_eq!(
        b.now(),
        Time(30_000),
        "stopped at the input, not at the timeout"
    );
    assert_eq!(io_of(&ready, y), R, "the byte the input wrote");
    assert_eq!(*fired.borrow(), vec![Time(30_000)]);

    let ready = dispatch(&mut b, Some(Duration::from_millis(100)));
    assert_eq!(io_of(&ready, y), R, "still unread");
    assert_eq!(b.now(), Time(30_000));
    b.read(y, &mut [0u8; 8]).unwrap();

    // The next input (150 ms) is after this wait's end (130 ms): the wait runs out first.
    assert!(dispatch(&mut b, Some(Duration::from_millis(100))).is_empty());
    assert_eq!(b.now(), Time(130_000));
    assert_eq!(fired.borrow().len(), 1);

    // An infinite wait jumps straight to the input.
    let ready = dispatch(&mut b, None);
    assert_eq!(b.now(), Time(150_000));
    assert_eq!(io_of(&ready, y), R);
    close_all(&mut b, &[x, y]);
}

fn vt_input_due_exactly_at_the_end_of_the_wait_fires<I: Backend + 'static>(make: impl Fn() -> I) {
    let mut b = VirtualTime::new(make());
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    let fired = std::rc::Rc::default();
    b.set_environment(Box::new(Writes {
        fd: x,
        at: vec![Time(100_000)],
        fired: std::rc::Rc::clone(&fired),
    }));
    let ready = dispatch(&mut b, Some(Duration::from_millis(100)));
    assert_eq!(b.now(), Time(100_000));
    assert_eq!(io_of(&ready, y), R);
    close_all(&mut b, &[x, y]);
}

fn vt_input_in_the_past_fires_now<I: Backend + 'static>(make: impl Fn() -> I) {
    let mut b = VirtualTime::with_start(make(), Time(50_000));
    let (x, y) = b.socketpair().unwrap();
    b.add(y, NONE, R).unwrap();
    let fired = std::rc::Rc::default();
    b.set_environment(Box::new(Writes {
        fd: x,
        at: vec![Time(10_000)],
        fired: std::rc::Rc::clone(&fired),
    }));
    assert!(
        dispatch(&mut b, Some(Duration::ZERO)).is_empty(),
        "a zero wait fires nothing"
    );
    let ready = dispatch(&mut b, Some(Duration::from_millis(1)));
    assert_eq!(b.now(), Time(50_000), "the clock never goes back");
    assert_eq!(*fired.borrow(), vec![Time(50_000)]);
    assert_eq!(io_of(&ready, y), R);
    close_all(&mut b, &[x, y]);
}

macro_rules! virtual_time_tests {
    ($inner:expr) => {
        #[test]
        fn vt_wait_moves_the_clock_by_the_rounded_timeout() {
            crate::vt_wait_moves_the_clock_by_the_rounded_timeout($inner)
        }
        #[test]
        fn vt_readiness_does_not_move_the_clock() {
            crate::vt_readiness_does_not_move_the_clock($inner)
        }
        #[test]
        fn vt_zero_timeout_does_not_move_the_clock() {
            crate::vt_zero_timeout_does_not_move_the_clock($inner)
        }
        #[test]
        fn vt_infinite_wait_with_nothing_scheduled_is_an_error() {
            crate::vt_infinite_wait_with_nothing_scheduled_is_an_error($inner)
        }
        #[test]
        fn vt_advance_moves_the_clock() {
            crate::vt_advance_moves_the_clock($inner)
        }
        #[test]
        fn vt_delegates_name_and_features() {
            crate::vt_delegates_name_and_features($inner)
        }
        #[test]
        fn vt_input_stops_the_clock_at_its_time() {
            crate::vt_input_stops_the_clock_at_its_time($inner)
        }
        #[test]
        fn vt_input_due_exactly_at_the_end_of_the_wait_fires() {
            crate::vt_input_due_exactly_at_the_end_of_the_wait_fires($inner)
        }
        #[test]
        fn vt_input_in_the_past_fires_now() {
            crate::vt_input_in_the_past_fires_now($inner)
        }
    };
}

/// One module per backend: the common suite on the bare backend, then the common suite and the
/// virtual-time tests on `VirtualTime<backend>`.
macro_rules! backend_suite {
    ($name:ident, $inner:expr) => {
        mod $name {
            use super::*;

            fn inner() -> impl Backend + 'static {
                $inner
            }

            common_tests!(inner);

            #[test]
            fn clock_is_coarse_unless_precise_is_asked_for() {
                crate::clock_is_coarse_unless_precise_is_asked_for(inner)
            }

            mod virtual_time {
                use super::*;

                fn make() -> VirtualTime<impl Backend + 'static> {
                    VirtualTime::new(inner())
                }

                common_tests!(make);
                virtual_time_tests!(inner);
            }
        }
    };
}

backend_suite!(epoll, EpollBackend::new().unwrap());
backend_suite!(poll, PollBackend::new().unwrap());
backend_suite!(select, SelectBackend::new().unwrap());
backend_suite!(mio, MioBackend::new().unwrap());

// ---------------------------------------------------------------------------------------------
// Backend-specific behaviour.

/// A wait that fills the result array reports exactly its size (32 at first), and the array
/// doubles for the next wait (libevent's epoll rule; the mio backend follows it too).
fn result_array_starts_at_32_and_doubles<B: Backend>(mut b: B) {
    let pairs: Vec<(Fd, Fd)> = (0..40).map(|_| b.socketpair().unwrap()).collect();
    for &(x, _) in &pairs {
        b.add(x, NONE, W).unwrap();
    }
    assert_eq!(dispatch(&mut b, Some(SHORT)).len(), 32);
    let ready = dispatch(&mut b, Some(SHORT));
    assert_eq!(ready.len(), 40);
    for &(x, y) in &pairs {
        assert_eq!(io_of(&ready, x), W);
        b.del(x, W, W).unwrap();
        close_all(&mut b, &[x, y]);
    }
}

mod epoll_only {
    use super::*;

    #[test]
    fn result_array_starts_at_32_and_doubles() {
        super::result_array_starts_at_32_and_doubles(EpollBackend::new().unwrap());
    }

    /// libevent's fallbacks: an ADD of a watched fd becomes a MOD, a MOD of an unwatched fd an
    /// ADD, a DEL of an unwatched fd succeeds.
    #[test]
    fn epoll_ctl_fallbacks() {
        let mut b = EpollBackend::new().unwrap();
        let (x, y) = b.socketpair().unwrap();
        b.add(x, NONE, W).unwrap();
        b.add(x, NONE, R).unwrap(); // ADD → EEXIST → MOD with READ only
        assert_eq!(
            io_of(&dispatch(&mut b, Some(SHORT)), x),
            NONE,
            "now READ only"
        );
        b.del(x, R, R).unwrap();
        b.del(x, R, R).unwrap(); // DEL → ENOENT → fine
        b.add(x, R, W).unwrap(); // MOD → ENOENT → ADD
        assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), x), W);
        close_all(&mut b, &[x, y]);
    }

    #[test]
    fn features() {
        let f = EpollBackend::new().unwrap().features();
        assert!(f.edge_triggered && f.o1 && f.early_close);
        assert_eq!(f.resolution, Resolution::Millis);
    }
}

mod mio_only {
    use super::*;

    #[test]
    fn result_array_starts_at_32_and_doubles() {
        super::result_array_starts_at_32_and_doubles(MioBackend::new().unwrap());
    }

    /// The level-triggered emulation follows interest changes: a queued fd never reports a
    /// deleted direction.
    #[test]
    fn requeue_respects_a_later_del() {
        let mut b = MioBackend::new().unwrap();
        let (x, y) = b.socketpair().unwrap();
        b.add(x, NONE, R | W).unwrap();
        assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), x), W);
        b.del(x, R | W, W).unwrap();
        assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), x), NONE);
        b.write(y, b"1").unwrap();
        assert_eq!(io_of(&dispatch(&mut b, Some(SHORT)), x), R);
        assert_eq!(
            io_of(&dispatch(&mut b, Some(SHORT)), x),
            R,
            "re-armed: still readable"
        );
        close_all(&mut b, &[x, y]);
    }
}

mod select_only {
    use super::*;

    #[test]
    fn rejects_fds_at_or_above_fd_setsize() {
        let mut b = SelectBackend::new().unwrap();
        let setsize = libc::FD_SETSIZE as Fd;
        for fd in [setsize, 1100, -1] {
            let err = b.add(fd, NONE, R).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("FD_SETSIZE"), "{err}");
        }
        b.del(1100, R, R).unwrap();
        assert!(dispatch(&mut b, Some(Duration::ZERO)).is_empty());
    }

    #[test]
    fn features() {
        let f = SelectBackend::new().unwrap().features();
        assert!(!f.edge_triggered && !f.o1 && !f.early_close);
        assert_eq!(f.resolution, Resolution::Micros);
    }

    /// The model of select.c's scan: start = weakrand_range(nfds) drawn after every wait (ready
    /// or not), nfds = highest fd ever added + 1, fds visited from start+1, wrapping.
    fn model_order(rng: &mut Lcg, nfds: u32, ready: &[Fd]) -> Vec<Fd> {
        let start = rng.range(nfds);
        scan(start, nfds)
            .map(|i| i as Fd)
            .filter(|fd| ready.contains(fd))
            .collect()
    }

    /// A seed whose first two scan starts differ, so a test can tell one draw from two.
    fn telling_seed(nfds: u32) -> u32 {
        (1..)
            .find(|&s| {
                let mut m = Lcg(s);
                m.range(nfds) != m.range(nfds)
            })
            .unwrap()
    }

    #[test]
    fn scan_order_matches_libevent_model() {
        let mut probe = SelectBackend::with_weakrand_seed(0);
        let pairs: Vec<(Fd, Fd)> = (0..8).map(|_| probe.socketpair().unwrap()).collect();
        let ys: Vec<Fd> = pairs.iter().map(|p| p.1).collect();
        let nfds = *ys.iter().max().unwrap() as u32 + 1;
        let seed = telling_seed(nfds);
        let mut b = SelectBackend::with_weakrand_seed(seed);
        let mut model = Lcg(seed);
        for &y in &ys {
            b.add(y, NONE, R).unwrap();
        }
        // A wait with nothing ready still draws.
        assert!(dispatch(&mut b, Some(Duration::ZERO)).is_empty());
        model.range(nfds);
        for &(x, _) in &pairs {
            b.write(x, b"x").unwrap();
        }
        for _ in 0..3 {
            let got: Vec<Fd> = dispatch(&mut b, Some(SHORT)).iter().map(|r| r.fd).collect();
            assert_eq!(got, model_order(&mut model, nfds, &ys));
        }
        // Deleting the highest fd does not lower nfds.
        let top = *ys.iter().max().unwrap();
        b.del(top, R, R).unwrap();
        let rest: Vec<Fd> = ys.iter().copied().filter(|&y| y != top).collect();
        let got: Vec<Fd> = dispatch(&mut b, Some(SHORT)).iter().map(|r| r.fd).collect();
        assert_eq!(got, model_order(&mut model, nfds, &rest));
        for (x, y) in pairs {
            close_all(&mut b, &[x, y]);
        }
    }

    /// Under virtual time, a wait that fires an input polls twice but draws once, like the C
    /// player's select override inside one libevent `select` call.
    #[test]
    fn virtual_wait_with_input_draws_once() {
        let mut probe = SelectBackend::with_weakrand_seed(0);
        let pairs: Vec<(Fd, Fd)> = (0..4).map(|_| probe.socketpair().unwrap()).collect();
        let ys: Vec<Fd> = pairs.iter().map(|p| p.1).collect();
        let nfds = *ys.iter().max().unwrap() as u32 + 1;
        let seed = telling_seed(nfds);
        let mut b = VirtualTime::new(SelectBackend::with_weakrand_seed(seed));
        for &y in &ys {
            b.add(y, NONE, R).unwrap();
        }
        b.set_environment(Box::new(WriteAll {
            fds: pairs.iter().map(|p| p.0).collect(),
            at: Some(Time(30_000)),
        }));
        let got: Vec<Fd> = dispatch(&mut b, Some(Duration::from_millis(100)))
            .iter()
            .map(|r| r.fd)
            .collect();
        assert_eq!(b.now(), Time(30_000));
        let mut model = Lcg(seed);
        assert_eq!(
            got,
            model_order(&mut model, nfds, &ys),
            "one draw for the whole wait"
        );
        let got: Vec<Fd> = dispatch(&mut b, Some(SHORT)).iter().map(|r| r.fd).collect();
        assert_eq!(got, model_order(&mut model, nfds, &ys));
        for (x, y) in pairs {
            close_all(&mut b, &[x, y]);
        }
    }
}

/// Writes one byte to each fd at one scripted time.
struct WriteAll {
    fds: Vec<Fd>,
    at: Option<Time>,
}

impl<B: Backend> Environment<B> for WriteAll {
    fn next_input(&self) -> Option<Time> {
        self.at
    }
    fn fire(&mut self, _now: Time, backend: &mut B) {
        self.at = None;
        for &fd in &self.fds {
            backend.write(fd, b"w").unwrap();
        }
    }
}

mod poll_only {
    use super::*;

    #[test]
    fn features() {
        let f = PollBackend::new().unwrap().features();
        assert!(!f.edge_triggered && !f.o1 && f.early_close);
        assert_eq!(f.resolution, Resolution::Millis);
    }

    /// The model of poll.c: the pollfd array in add order, the last entry moved into a freed
    /// slot; start = weakrand_range(nfds) drawn only when something is ready.
    fn model_order(rng: &mut Lcg, array: &[Fd], ready: &[Fd]) -> Vec<Fd> {
        let n = array.len() as u32;
        let start = rng.range(n);
        scan(start, n)
            .map(|i| array[i as usize])
            .filter(|fd| ready.contains(fd))
            .collect()
    }

    fn positions(order: &[Fd], ys: &[Fd]) -> Vec<usize> {
        order
            .iter()
            .map(|fd| ys.iter().position(|y| y == fd).unwrap())
            .collect()
    }

    /// Runs the scenario once; returns the orders as positions in add order (fd numbers vary
    /// between runs, positions must not).
    fn run(seed: u32) -> Vec<Vec<usize>> {
        let mut b = PollBackend::with_weakrand_seed(seed);
        let mut model = Lcg(seed);
        let pairs: Vec<(Fd, Fd)> = (0..8).map(|_| b.socketpair().unwrap()).collect();
        let ys: Vec<Fd> = pairs.iter().map(|p| p.1).collect();
        let mut array = ys.clone();
        for &y in &ys {
            b.add(y, NONE, R).unwrap();
        }
        // Nothing ready: no draw.
        assert!(dispatch(&mut b, Some(Duration::ZERO)).is_empty());
        for &(x, _) in &pairs {
            b.write(x, b"x").unwrap();
        }
        let mut out = Vec::new();
        for _ in 0..3 {
            let got: Vec<Fd> = dispatch(&mut b, Some(SHORT)).iter().map(|r| r.fd).collect();
            assert_eq!(got, model_order(&mut model, &array, &ys));
            out.push(positions(&got, &ys));
        }
        // Deleting the third fd moves the last entry into its slot.
        b.del(ys[2], R, R).unwrap();
        array.swap_remove(2);
        let ready: Vec<Fd> = array.clone();
        for _ in 0..3 {
            let got: Vec<Fd> = dispatch(&mut b, Some(SHORT)).iter().map(|r| r.fd).collect();
            assert_eq!(got, model_order(&mut model, &array, &ready));
            out.push(positions(&got, &ys));
        }
        // A second interest on a watched fd keeps its slot.
        b.add(ys[0], R, W).unwrap();
        let got: Vec<Ready> = dispatch(&mut b, Some(SHORT));
        let order: Vec<Fd> = got.iter().map(|r| r.fd).collect();
        assert_eq!(order, model_order(&mut model, &array, &ready));
        assert_eq!(io_of(&got, ys[0]), R | W);
        out.push(positions(&order, &ys));
        for (x, y) in pairs {
            close_all(&mut b, &[x, y]);
        }
        out
    }

    #[test]
    fn scan_order_matches_libevent_model() {
        let first = run(0x5eed);
        assert_eq!(run(0x5eed), first, "same seed, same order");
        let starts: std::collections::BTreeSet<usize> = first.iter().map(|o| o[0]).collect();
        assert!(starts.len() > 1, "the start moves between waits: {first:?}");
    }

    #[test]
    fn virtual_wait_with_input_draws_once() {
        let seed = 77;
        let mut b = VirtualTime::new(PollBackend::with_weakrand_seed(seed));
        let pairs: Vec<(Fd, Fd)> = (0..5).map(|_| b.socketpair().unwrap()).collect();
        let ys: Vec<Fd> = pairs.iter().map(|p| p.1).collect();
        for &y in &ys {
            b.add(y, NONE, R).unwrap();
        }
        b.set_environment(Box::new(WriteAll {
            fds: pairs.iter().map(|p| p.0).collect(),
            at: Some(Time(30_000)),
        }));
        let mut model = Lcg(seed);
        for _ in 0..2 {
            let got: Vec<Fd> = dispatch(&mut b, Some(Duration::from_millis(100)))
                .iter()
                .map(|r| r.fd)
                .collect();
            assert_eq!(got, model_order(&mut model, &ys, &ys));
            assert_eq!(b.now(), Time(30_000));
        }
        for (x, y) in pairs {
            close_all(&mut b, &[x, y]);
        }
    }
}

/// `Config::precise_timer` reaches the backend: a base built with it reads the precise clock,
/// a default one libevent's default clock (outside a loop `Base::now` reads the backend's).
#[test]
fn base_config_precise_timer_selects_the_precise_clock() {
    let mut b = evloop::Base::new(PollBackend::new().unwrap());
    assert_clock(false, || b.now());
    let cfg = evloop::Config {
        precise_timer: true,
        ..Default::default()
    };
    let mut b = evloop::Base::with_config(EpollBackend::new().unwrap(), &cfg);
    assert_clock(true, || b.now());
    let mut b = evloop::Base::new(EpollBackend::with_precise_timer().unwrap());
    assert_clock(true, || b.now());
}
