//! Bufferevents (SEMANTICS.md §7) on every real backend under virtual time: the experiments e7,
//! e8, e11 and e14 with their recorded outputs as the expected orders, and ports of libevent's
//! `bufferevent/*` regression tests, named after them. Times are virtual and exact.

mod util;

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::backend::{Backend, ConnectState, Features, ListenOptions, Ready, Shutdown};
use evloop::{Events, Fd, Time};

/// A backend whose `connect` completes at once, like `connect()` on an AF_UNIX socket (e7i), or
/// is refused at once (BSD on localhost), without a network: the "connection" is one end of a
/// socketpair, whose other end the test can read.
pub struct InstantConnect<B: Backend> {
    inner: B,
    refuse: bool,
    /// The far ends of the connections made so far.
    pub peers: Rc<RefCell<Vec<Fd>>>,
}

impl<B: Backend> InstantConnect<B> {
    pub fn new(inner: B, refuse: bool) -> InstantConnect<B> {
        InstantConnect {
            inner,
            refuse,
            peers: Rc::default(),
        }
    }
}

impl<B: Backend> Backend for InstantConnect<B> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn add(&mut self, fd: Fd, old: Events, added: Events) -> io::Result<()> {
        self.inner.add(fd, old, added)
    }
    fn del(&mut self, fd: Fd, old: Events, removed: Events) -> io::Result<()> {
        self.inner.del(fd, old, removed)
    }
    fn dispatch(&mut self, timeout: Option<Duration>, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.inner.dispatch(timeout, ready)
    }
    fn dispatch_again(&mut self, ready: &mut Vec<Ready>) -> io::Result<()> {
        self.inner.dispatch_again(ready)
    }
    fn now(&mut self) -> Time {
        self.inner.now()
    }
    evloop::delegate_signal_ops!(inner);
    fn socketpair(&mut self) -> io::Result<(Fd, Fd)> {
        self.inner.socketpair()
    }
    fn read(&mut self, fd: Fd, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(fd, buf)
    }
    fn write(&mut self, fd: Fd, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(fd, buf)
    }
    fn shutdown(&mut self, fd: Fd, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(fd, how)
    }
    fn close(&mut self, fd: Fd) -> io::Result<()> {
        self.inner.close(fd)
    }
    fn listen(&mut self, addr: SocketAddr, opts: ListenOptions) -> io::Result<Fd> {
        self.inner.listen(addr, opts)
    }
    fn accept(&mut self, fd: Fd) -> io::Result<(Fd, SocketAddr)> {
        self.inner.accept(fd)
    }
    fn connect(&mut self, _addr: SocketAddr) -> io::Result<(Fd, ConnectState)> {
        if self.refuse {
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        }
        let (a, b) = self.inner.socketpair()?;
        self.peers.borrow_mut().push(b);
        Ok((a, ConnectState::Connected))
    }
    fn take_socket_error(&mut self, fd: Fd) -> io::Result<Option<io::Error>> {
        self.inner.take_socket_error(fd)
    }
    fn local_addr(&mut self, fd: Fd) -> io::Result<SocketAddr> {
        self.inner.local_addr(fd)
    }
}

/// Lines of an experiment's `.out` file, trimmed of the indentation the C program used.
fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

/// Keeps a value the callbacks can change (a C global).
fn cell<T: Copy>(v: T) -> Rc<Cell<T>> {
    Rc::new(Cell::new(v))
}

macro_rules! bev_suite {
    ($inner:ty, $mk:expr) => {
        use std::cell::{Cell, RefCell};
        use std::net::{SocketAddr, TcpStream};
        use std::rc::Rc;
        use std::time::Duration;

        use evloop::backend::{Backend, VirtualTime};
        use evloop::{
            Base, BevEvents, BevOptions, BufferEvent, Count, EolStyle, EvBuffer, Events, Fd,
            FlushMode, Listener, ListenerOptions, LoopExit, LoopFlags, TriggerOptions,
        };

        use crate::util::*;
        use crate::{cell, lines, InstantConnect};

        type B = VirtualTime<$inner>;

        fn base() -> Base<B> {
            Base::new(VirtualTime::new($mk))
        }

        /// The backend on real time, for tests that wait for the kernel to finish a TCP
        /// handshake (under virtual time, a poll that finds nothing moves the clock instead of
        /// waiting). They assert orders, not times.
        type R = $inner;

        fn real_base() -> Base<R> {
            Base::new($mk)
        }

        /// Drops the ` t=…` suffix of e7 lines (meaningless on real time).
        fn no_t(v: Vec<String>) -> Vec<String> {
            v.into_iter()
                .map(|l| match l.rfind(" t=") {
                    Some(i) => l[..i].to_string(),
                    None => l,
                })
                .collect()
        }

        fn sp<X: Backend>(b: &mut Base<X>) -> (Fd, Fd) {
            b.backend_mut().socketpair().unwrap()
        }

        fn put<X: Backend>(b: &mut Base<X>, fd: Fd, data: &[u8]) {
            assert_eq!(b.backend_mut().write(fd, data).unwrap(), data.len());
        }

        /// Reads whatever is there, up to `max` bytes.
        fn take<X: Backend>(b: &mut Base<X>, fd: Fd, max: usize) -> Vec<u8> {
            let mut out = Vec::new();
            let mut buf = vec![0; 65536];
            while out.len() < max {
                let want = (max - out.len()).min(buf.len());
                match b.backend_mut().read(fd, &mut buf[..want]) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            out
        }

        fn t<X: Backend>(b: &mut Base<X>) -> u64 {
            b.now().as_micros() / 1000
        }

        const NB: LoopFlags = LoopFlags::NONBLOCK;

        fn loopback() -> SocketAddr {
            "127.0.0.1:0".parse().unwrap()
        }

        /// e7's callbacks: `[tag] readcb len=.. enabled=..`, `[tag] writecb outlen=..`,
        /// `[tag] eventcb WHAT enabled=.. errno=..`. `drain`: 0 none, 1 all, 2 three bytes.
        struct E7 {
            log: Log,
            drain: Rc<Cell<u8>>,
            calls: Rc<Cell<u32>>,
            maxcalls: Rc<Cell<u32>>,
        }

        impl E7 {
            fn new() -> E7 {
                E7 {
                    log: Log::default(),
                    drain: cell(0),
                    calls: cell(0),
                    maxcalls: cell(0),
                }
            }

            fn read<X: Backend + 'static>(&self, b: &mut Base<X>, bev: BufferEvent, tag: &'static str) {
                let (log, drain, calls, maxcalls) = (
                    self.log.clone(),
                    self.drain.clone(),
                    self.calls.clone(),
                    self.maxcalls.clone(),
                );
                bev.set_readcb(b, move |b, bev| {
                    let len = bev.input(b).unwrap().len();
                    calls.set(calls.get() + 1);
                    let en = bev.enabled(b).unwrap();
                    log.push(format!("[{tag}] readcb len={len} enabled={en} t={}", t(b)));
                    match drain.get() {
                        1 => bev.drain(b, len).unwrap(),
                        2 => bev.drain(b, 3).unwrap(),
                        _ => {}
                    }
                    if maxcalls.get() != 0 && calls.get() >= maxcalls.get() {
                        log.push(format!("(loopbreak after {} readcb calls)", calls.get()));
                        b.loopbreak();
                    }
                })
                .unwrap();
            }

            fn write<X: Backend + 'static>(&self, b: &mut Base<X>, bev: BufferEvent, tag: &'static str) {
                let log = self.log.clone();
                bev.set_writecb(b, move |b, bev| {
                    let len = bev.output(b).unwrap().len();
                    log.push(format!("[{tag}] writecb outlen={len} t={}", t(b)));
                })
                .unwrap();
            }

            fn event<X: Backend + 'static>(&self, b: &mut Base<X>, bev: BufferEvent, tag: &'static str) {
                let log = self.log.clone();
                bev.set_eventcb(b, move |b, bev, what| {
                    let en = bev.enabled(b).unwrap();
                    let err = if what.contains(BevEvents::ERROR) {
                        bev.error(b).unwrap().map_or("?".into(), |e| format!("{:?}", e.kind()))
                    } else {
                        "-".into()
                    };
                    log.push(format!("[{tag}] eventcb {what} enabled={en} errno={err} t={}", t(b)));
                })
                .unwrap();
            }
        }

        // ------------------------------------------------------------------------------------
        // e7: socket bufferevents

        #[test]
        fn e7a_read_watermarks_suspend_resume_and_retrigger() {
            let e = E7::new();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "rd");
            e.write(&mut b, bev, "rd");
            e.event(&mut b, bev, "rd");
            bev.setwatermark(&mut b, Events::READ, 5, 10).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            put(&mut b, s0, b"abc");
            b.run(NB).unwrap();
            e.log.push("a) 4 more");
            put(&mut b, s0, b"defg");
            b.run(NB).unwrap();
            e.log.push("a) 20 more");
            put(&mut b, s0, b"01234567890123456789");
            e.calls.set(0);
            e.maxcalls.set(6);
            b.run(NB).unwrap();
            let len = bev.input(&b).unwrap().len();
            e.log.push(format!("input len now={len}"));
            e.log.push("a) drain all");
            e.drain.set(1);
            e.maxcalls.set(0);
            e.calls.set(0);
            b.run(NB).unwrap();
            assert_eq!(
                e.log.take(),
                lines(
                    "a) 4 more
                     [rd] readcb len=7 enabled=RW t=0
                     a) 20 more
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     (loopbreak after 6 readcb calls)
                     input len now=10
                     a) drain all
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=10 enabled=RW t=0
                     [rd] readcb len=7 enabled=RW t=0"
                )
            );
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
        }

        #[test]
        fn e7b_c_4096_per_read_then_eof() {
            let e = E7::new();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "big");
            e.event(&mut b, bev, "big");
            bev.enable(&mut b, Events::READ).unwrap();
            e.drain.set(1);
            put(&mut b, s0, &[b'x'; 10000]);
            b.run(NB).unwrap();
            b.backend_mut().close(s0).unwrap();
            e.log.push("c) peer close");
            b.run(NB).unwrap();
            assert_eq!(
                e.log.take(),
                lines(
                    "[big] readcb len=4096 enabled=RW t=0
                     [big] readcb len=4096 enabled=RW t=0
                     [big] readcb len=1808 enabled=RW t=0
                     c) peer close
                     [big] eventcb READING|EOF enabled=W errno=- t=0"
                )
            );
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn e7d_e_write_path_spurious_writecb_low_watermark_and_epipe() {
            let e = E7::new();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::CLOSE_ON_FREE).unwrap();
            e.write(&mut b, bev, "wr");
            e.event(&mut b, bev, "wr");
            let en = bev.enabled(&b).unwrap();
            e.log.push(format!("d) enabled={en}; enable(WRITE) on empty output"));
            bev.enable(&mut b, Events::WRITE).unwrap();
            b.run(NB).unwrap();
            e.log.push("d) write 10 bytes");
            bev.write(&mut b, b"0123456789").unwrap();
            b.run(NB).unwrap();
            take(&mut b, s1, 64);
            bev.setwatermark(&mut b, Events::WRITE, 100_000, 0).unwrap();
            e.log.push("d) write 400000 bytes, low wm 100000");
            bev.write(&mut b, &vec![b'y'; 400_000]).unwrap();
            for _ in 0..12 {
                b.run(NB).unwrap();
                take(&mut b, s1, 65536);
            }
            b.run(NB).unwrap();
            b.backend_mut().close(s1).unwrap();
            bev.write(&mut b, b"zz").unwrap();
            e.log.push("e) write after peer closed");
            b.run(NB).unwrap();
            b.run(NB).unwrap();
            let got = e.log.take();
            // The sizes of the big write's steps depend on the kernel's socket buffers (e7.out
            // has 88704, 72320, 55936, 39552, 23168, 6784, 0, and so does this test on the same
            // kernel); the rule is a writecb after each write that leaves at most 100000
            // bytes, every one a 16384-byte write apart, ending at 0.
            let idx = got.iter().position(|l| l.starts_with("d) write 400000")).unwrap();
            let end = got.iter().position(|l| l.starts_with("e)")).unwrap();
            let lens: Vec<usize> = got[idx + 1..end]
                .iter()
                .map(|l| l.split("outlen=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap())
                .collect();
            assert!(lens.len() >= 2, "{got:?}");
            assert!(lens.iter().all(|&l| l <= 100_000), "{lens:?}");
            assert_eq!(*lens.last().unwrap(), 0);
            for w in lens.windows(2) {
                assert!(w[0] - w[1] == 16384 || w[1] == 0, "{lens:?}");
            }
            assert_eq!((400_000 - lens[0]) % 16384, 0, "{lens:?}");
            let mut expect = lines(
                "d) enabled=W; enable(WRITE) on empty output
                 [wr] writecb outlen=0 t=0
                 d) write 10 bytes
                 [wr] writecb outlen=0 t=0
                 d) write 400000 bytes, low wm 100000",
            );
            expect.extend(got[idx + 1..end].iter().cloned());
            expect.extend(lines(
                "e) write after peer closed
                 [wr] eventcb WRITING|ERROR enabled=0 errno=BrokenPipe t=0",
            ));
            assert_eq!(got, expect);
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn e7f_read_timeout_disables_reading_no_write_timeout_without_output() {
            let e = E7::new();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "to");
            e.write(&mut b, bev, "to");
            e.event(&mut b, bev, "to");
            bev.set_timeouts(&mut b, Some(ms(50)), Some(ms(80))).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            b.loopexit(Some(ms(200))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(
                e.log.take(),
                lines("[to] eventcb READING|TIMEOUT enabled=W errno=- t=50")
            );
            assert_eq!(t(&mut b), 200);
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s1).unwrap();
        }

        #[test]
        fn e7g_deferred_readcb_runs_after_a_zero_timer() {
            let e = E7::new();
            let mut b = base();
            for (defer, tag) in [(false, "immediate"), (true, "deferred")] {
                let (s0, s1) = sp(&mut b);
                let opts = if defer {
                    BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS
                } else {
                    BevOptions::CLOSE_ON_FREE
                };
                let bev = BufferEvent::socket_new(&mut b, s1, opts).unwrap();
                e.read(&mut b, bev, tag);
                e.event(&mut b, bev, tag);
                bev.enable(&mut b, Events::READ).unwrap();
                e.drain.set(1);
                put(&mut b, s0, b"hi");
                let z = timed(&mut b, &e.log, "zero-timer");
                b.add(z, Some(ms(0))).unwrap();
                b.run(NB).unwrap();
                b.free(z).unwrap();
                bev.free(&mut b).unwrap();
                b.backend_mut().close(s0).unwrap();
            }
            assert_eq!(
                e.log.take(),
                lines(
                    "[immediate] readcb len=2 enabled=RW t=0
                     zero-timer(T)@0
                     zero-timer(T)@0
                     [deferred] readcb len=2 enabled=RW t=0"
                )
            );
        }

        #[test]
        fn e7h_listener_accepts_every_queued_connection_in_one_callback() {
            let e = E7::new();
            let mut b = base();
            let log = e.log.clone();
            let first = cell(true);
            let lev = Listener::bind(
                &mut b,
                loopback(),
                ListenerOptions::CLOSE_ON_FREE | ListenerOptions::REUSEABLE,
                -1,
                Some(Box::new(move |b: &mut Base<B>, _, fd, peer: SocketAddr| {
                    log.push(format!("[listener] accept addr={} v4={}", peer.ip(), peer.is_ipv4()));
                    if first.replace(false) {
                        let l = log.clone();
                        let x = b
                            .event_new(-1, Events::NONE, move |_, _, _| {
                                l.push("[X-activated-in-first-accept] timer cb")
                            })
                            .unwrap();
                        b.active(x, Events::READ, 1).unwrap();
                    }
                    b.backend_mut().close(fd).unwrap();
                })),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
            b.run(NB).unwrap();
            assert_eq!(
                e.log.take(),
                lines(
                    "[listener] accept addr=127.0.0.1 v4=true
                     [listener] accept addr=127.0.0.1 v4=true
                     [listener] accept addr=127.0.0.1 v4=true
                     [X-activated-in-first-accept] timer cb"
                )
            );
            drop(clients);
            lev.free(&mut b).unwrap();
        }

        #[test]
        fn e7h_connect_in_progress_then_refused() {
            let e = E7::new();
            let mut b = real_base();
            let log = e.log.clone();
            let lev = Listener::bind(
                &mut b,
                loopback(),
                ListenerOptions::CLOSE_ON_FREE | ListenerOptions::REUSEABLE,
                -1,
                Some(Box::new(move |b: &mut Base<R>, _, fd, peer: SocketAddr| {
                    log.push(format!("[listener] accept addr={} v4={}", peer.ip(), peer.is_ipv4()));
                    b.backend_mut().close(fd).unwrap();
                })),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();

            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "conn");
            e.write(&mut b, bev, "conn");
            e.event(&mut b, bev, "conn");
            bev.socket_connect(&mut b, addr).unwrap();
            assert!(bev.fd(&b).unwrap() >= 0);
            b.run(LoopFlags::ONCE).unwrap();
            b.run(NB).unwrap();
            // Both the listener and the connecting socket become ready in the same poll; the
            // kernel decides which is reported first.
            let mut got = no_t(e.log.take());
            got.sort();
            assert_eq!(
                got,
                lines(
                    "[conn] eventcb CONNECTED enabled=W errno=-
                     [listener] accept addr=127.0.0.1 v4=true"
                )
            );
            bev.free(&mut b).unwrap();
            lev.free(&mut b).unwrap();

            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "refused");
            e.write(&mut b, bev, "refused");
            e.event(&mut b, bev, "refused");
            bev.socket_connect(&mut b, addr).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(
                no_t(e.log.take()),
                lines("[refused] eventcb ERROR enabled=W errno=ConnectionRefused")
            );
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn e7i_immediate_connect_gives_a_deferred_writecb_then_connected() {
            let e = E7::new();
            let mut b = Base::new(VirtualTime::new(InstantConnect::new($mk, false)));
            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
            e.read(&mut b, bev, "unix");
            e.write(&mut b, bev, "unix");
            e.event(&mut b, bev, "unix");
            bev.socket_connect(&mut b, loopback()).unwrap();
            b.run(NB).unwrap();
            b.run(NB).unwrap();
            e.log.push("i) after write");
            bev.write(&mut b, b"x").unwrap();
            b.run(NB).unwrap();
            b.run(NB).unwrap();
            assert_eq!(
                e.log.take(),
                lines(
                    "[unix] writecb outlen=0 t=0
                     [unix] eventcb CONNECTED enabled=W errno=- t=0
                     i) after write
                     [unix] writecb outlen=0 t=0"
                )
            );
            let peer = b.backend().inner().peers.borrow()[0];
            assert_eq!(take(&mut b, peer, 1), b"x");
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn connect_refused_at_once_gives_a_deferred_error_and_disables_both() {
            let e = E7::new();
            let mut b = Base::new(VirtualTime::new(InstantConnect::new($mk, true)));
            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::NONE).unwrap();
            e.read(&mut b, bev, "bsd");
            e.event(&mut b, bev, "bsd");
            bev.enable(&mut b, Events::READ).unwrap();
            bev.socket_connect(&mut b, loopback()).unwrap();
            e.log.push("returned");
            b.run(NB).unwrap();
            assert_eq!(
                e.log.take(),
                lines(
                    "returned
                     [bsd] eventcb ERROR enabled=0 errno=ConnectionRefused t=0"
                )
            );
            bev.free(&mut b).unwrap();
        }

        // ------------------------------------------------------------------------------------
        // e8: pairs

        #[test]
        fn e8_pair_transfer_watermarks_flush_free_and_timeouts() {
            let out = Log::default();
            let mut b = base();
            let (pa, pb) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            let drain_b = cell(4usize);
            let nm = move |x: BufferEvent| if x == pa { "A" } else { "B" };
            let other = move |x: BufferEvent| if x == pa { pb } else { pa };
            let setup = |b: &mut Base<B>, pa: BufferEvent, pb: BufferEvent| {
                for x in [pa, pb] {
                    let (o, d) = (out.clone(), drain_b.clone());
                    x.set_readcb(b, move |b, me| {
                        let len = me.input(b).unwrap().len();
                        let pout = other(me).output(b).map_or(0, |o| o.len());
                        o.push(format!("{}.readcb in={len} partner.out={pout}", nm(me)));
                        let n = d.get();
                        if n > 0 {
                            me.drain(b, n).unwrap();
                            let len = me.input(b).unwrap().len();
                            let pout = other(me).output(b).map_or(0, |o| o.len());
                            o.push(format!("{} drained {n} -> in={len} partner.out={pout}", nm(me)));
                        }
                    })
                    .unwrap();
                    let o = out.clone();
                    x.set_writecb(b, move |b, me| {
                        let len = me.output(b).unwrap().len();
                        o.push(format!("{}.writecb out={len}", nm(me)));
                    })
                    .unwrap();
                    let o = out.clone();
                    x.set_eventcb(b, move |_, me, what| o.push(format!("{}.eventcb {what}", nm(me))))
                        .unwrap();
                }
            };
            setup(&mut b, pa, pb);
            let lens = |b: &Base<B>| {
                format!(
                    "sync: A.out={} B.in={}",
                    pa.output(b).unwrap().len(),
                    pb.input(b).unwrap().len()
                )
            };
            out.push(format!(
                "enabled after pair_new: A={} B={}",
                pa.enabled(&b).unwrap(),
                pb.enabled(&b).unwrap()
            ));
            out.push("1) A writes 3 bytes while B read disabled:");
            pa.write(&mut b, b"abc").unwrap();
            out.push(lens(&b));
            b.run(NB).unwrap();
            pb.setwatermark(&mut b, Events::READ, 5, 10).unwrap();
            pa.setwatermark(&mut b, Events::WRITE, 4, 0).unwrap();
            out.push("2) B: read wm 5/10, enable READ:");
            pb.enable(&mut b, Events::READ).unwrap();
            out.push(lens(&b));
            b.run(NB).unwrap();
            out.push("3) A writes 20 bytes:");
            pa.write(&mut b, b"01234567890123456789").unwrap();
            out.push(lens(&b));
            b.run(NB).unwrap();
            out.push(format!(
                "after loop: A.out={} B.in={}",
                pa.output(&b).unwrap().len(),
                pb.input(&b).unwrap().len()
            ));
            out.push("4) flush(A, EV_WRITE, BEV_FINISHED):");
            drain_b.set(0);
            pa.flush(&mut b, Events::WRITE, FlushMode::Finished).unwrap();
            out.push(lens(&b));
            b.run(NB).unwrap();
            out.push("5) bufferevent_free(A); B partner=(nil)");
            pa.free(&mut b).unwrap();
            let p = pb.partner(&b).unwrap();
            out.push(format!("B partner now={}", if p.is_some() { "set" } else { "NULL" }));
            b.run(NB).unwrap();
            out.push("loop returned; no eventcb for B on partner free");
            pb.free(&mut b).unwrap();

            let (pa, pb) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            // The callbacks name the first pair's handles; give this pair its own.
            let nm2 = move |x: BufferEvent| if x == pa { "A" } else { "B" };
            for x in [pa, pb] {
                let o = out.clone();
                x.set_eventcb(&mut b, move |b, me, what| {
                    o.push(format!("{}.eventcb {what} @{}", nm2(me), t(b)))
                })
                .unwrap();
            }
            pa.set_timeouts(&mut b, Some(ms(30)), Some(ms(50))).unwrap();
            pa.enable(&mut b, Events::READ | Events::WRITE).unwrap();
            out.push("6) pair A: read timeout 30ms, write timeout 50ms, output empty; 100ms loopexit:");
            b.loopexit(Some(ms(100))).unwrap();
            b.dispatch().unwrap();
            out.push("6') A writes 5 bytes with B read disabled, write timeout 50ms:");
            pb.disable(&mut b, Events::READ).unwrap();
            pa.enable(&mut b, Events::WRITE).unwrap();
            pa.write(&mut b, b"hello").unwrap();
            b.loopexit(Some(ms(100))).unwrap();
            b.dispatch().unwrap();
            out.push(format!("(enabled A={})", pa.enabled(&b).unwrap()));
            assert_eq!(t(&mut b), 200);
            assert_eq!(
                out.take(),
                lines(
                    "enabled after pair_new: A=W B=W
                     1) A writes 3 bytes while B read disabled:
                        sync: A.out=3 B.in=0
                     2) B: read wm 5/10, enable READ:
                        sync: A.out=0 B.in=3
                       A.writecb out=0
                     3) A writes 20 bytes:
                        sync: A.out=13 B.in=10
                       B.readcb in=10 partner.out=13
                         B drained 4 -> in=10 partner.out=9
                       B.readcb in=10 partner.out=9
                         B drained 4 -> in=10 partner.out=5
                       B.readcb in=10 partner.out=5
                         B drained 4 -> in=10 partner.out=1
                       B.readcb in=10 partner.out=1
                         B drained 4 -> in=7 partner.out=0
                       A.writecb out=0
                       B.readcb in=7 partner.out=0
                         B drained 4 -> in=3 partner.out=0
                        after loop: A.out=0 B.in=3
                     4) flush(A, EV_WRITE, BEV_FINISHED):
                        sync: A.out=0 B.in=3
                       A.writecb out=0
                       B.eventcb READING|EOF
                     5) bufferevent_free(A); B partner=(nil)
                        B partner now=NULL
                        loop returned; no eventcb for B on partner free
                     6) pair A: read timeout 30ms, write timeout 50ms, output empty; 100ms loopexit:
                       A.eventcb READING|TIMEOUT @30
                     6') A writes 5 bytes with B read disabled, write timeout 50ms:
                        (enabled A=W)"
                )
            );
        }

        // ------------------------------------------------------------------------------------
        // e11 and e14: free through a finalizer; the hello-world write pattern

        #[test]
        fn e11_free_closes_the_fd_at_the_next_loop_pass() {
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            bev.free(&mut b).unwrap();
            assert!(!bev.is_live(&b));
            assert!(bev.enable(&mut b, Events::READ).is_err());
            // Still open: writing to the peer works.
            put(&mut b, s0, b"x");
            assert_eq!(b.num_events(Count::Active), 1);
            assert_eq!(b.run(NB).unwrap(), LoopExit::NoEvents);
            // Now closed: the peer sees EOF.
            assert_eq!(take(&mut b, s0, 10), b"");
            let (pa, _pb) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            pa.free(&mut b).unwrap();
            assert_eq!(b.num_events(Count::Active), 1);
            b.backend_mut().close(s0).unwrap();
        }

        #[test]
        fn e11_finalizer_counts_as_a_callback_for_once() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
            bev.free(&mut b).unwrap();
            let l = log.clone();
            let x = b.timer_new(move |_, _, _| l.push("timer")).unwrap();
            b.add(x, Some(ms(10))).unwrap();
            // ONCE stops after the pass that ran the finalizer: the timer is left.
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(log.len(), 0);
            assert_eq!(t(&mut b), 0);
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "timer");
            b.backend_mut().close(s0).unwrap();
        }

        #[test]
        fn e14_hello_world_write_pattern() {
            let log = Log::default();
            let mut b = base();
            for v in 0..2 {
                let (s0, s1) = sp(&mut b);
                let n = cell(0);
                let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::CLOSE_ON_FREE).unwrap();
                let l = log.clone();
                bev.set_writecb(&mut b, move |b, bev| {
                    n.set(n.get() + 1);
                    l.push(format!("writecb #{} out={}", n.get(), bev.output(b).unwrap().len()));
                })
                .unwrap();
                bev.enable(&mut b, Events::WRITE).unwrap();
                bev.disable(&mut b, Events::READ).unwrap();
                log.push(if v == 0 { "hello-world order:" } else { "enable; loop; write:" });
                if v == 1 {
                    b.run(NB).unwrap();
                }
                bev.write(&mut b, b"Hello, World!\n").unwrap();
                b.run(NB).unwrap();
                bev.free(&mut b).unwrap();
                b.run(NB).unwrap();
                assert_eq!(take(&mut b, s1, 100), b"Hello, World!\n");
                b.backend_mut().close(s1).unwrap();
            }
            assert_eq!(
                log.take(),
                lines(
                    "hello-world order:
                     writecb #1 out=0
                     enable; loop; write:
                     writecb #1 out=0
                     writecb #2 out=0"
                )
            );
        }

        // ------------------------------------------------------------------------------------
        // Deferred callbacks: one per bufferevent, coalescing, fixed order, the budget

        #[test]
        fn deferred_callbacks_coalesce_and_run_connected_read_write_event() {
            let log = Log::default();
            let mut b = base();
            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::DEFER_CALLBACKS).unwrap();
            let l = log.clone();
            bev.set_readcb(&mut b, move |b, bev| l.push(format!("read in={}", bev.input(b).unwrap().len())))
                .unwrap();
            let l = log.clone();
            bev.set_writecb(&mut b, move |_, _| l.push("write")).unwrap();
            let l = log.clone();
            bev.set_eventcb(&mut b, move |_, _, w| l.push(format!("event {w}"))).unwrap();
            let opt = TriggerOptions::IGNORE_WATERMARKS;
            bev.trigger_event(&mut b, BevEvents::EOF | BevEvents::READING, opt).unwrap();
            bev.trigger(&mut b, Events::WRITE, opt).unwrap();
            bev.trigger(&mut b, Events::READ, opt).unwrap();
            bev.trigger_event(&mut b, BevEvents::CONNECTED, opt).unwrap();
            bev.trigger(&mut b, Events::READ, opt).unwrap();
            bev.trigger_event(&mut b, BevEvents::ERROR, opt).unwrap();
            assert_eq!(log.len(), 0);
            assert_eq!(b.num_events(Count::Active), 1);
            b.run(NB).unwrap();
            assert_eq!(
                log.joined(),
                "event CONNECTED read in=0 write event READING|EOF|ERROR"
            );
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn deferred_budget_is_33_per_iteration() {
            // 40 pair bufferevents triggered at once: 33 deferred callbacks run in the first
            // iteration, the other 7 wait for the next one, which starts with a poll (the
            // timer with a zero timeout added in between runs before them).
            let log = Log::default();
            let mut b = base();
            let bevs: Vec<BufferEvent> = (0..20)
                .flat_map(|_| {
                    let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
                    [x, y]
                })
                .collect();
            for (i, &x) in bevs.iter().enumerate() {
                let l = log.clone();
                x.set_writecb(&mut b, move |_, _| l.push(format!("w{i}"))).unwrap();
            }
            let l = log.clone();
            let bevs2 = bevs.clone();
            let kick = b
                .timer_new(move |b, _, _| {
                    l.push("kick");
                    for &x in &bevs2 {
                        x.trigger(b, Events::WRITE, TriggerOptions::NONE).unwrap();
                    }
                    let l2 = l.clone();
                    b.once(-1, Events::TIMEOUT, Some(ms(0)), move |_, _| l2.push("zero")).unwrap();
                })
                .unwrap();
            b.add(kick, Some(ms(5))).unwrap();
            b.dispatch().unwrap();
            let got = log.take();
            let mut expect = vec!["kick".to_string()];
            expect.extend((0..33).map(|i| format!("w{i}")));
            expect.push("zero".into());
            expect.extend((33..40).map(|i| format!("w{i}")));
            assert_eq!(got, expect);
        }

        #[test]
        fn retrigger_loop_runs_33_deferred_readcbs_per_iteration() {
            // §7.1: a readcb that never drains below high is called again and again, deferred;
            // a timer made active in between waits for the next iteration.
            let log = Log::default();
            let mut b = base();
            let (pa, pb) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            pb.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
            pb.enable(&mut b, Events::READ).unwrap();
            let n = cell(0u32);
            let l = log.clone();
            let tick = b.timer_new(move |_, _, _| l.push("tick")).unwrap();
            let l = log.clone();
            pb.set_readcb(&mut b, move |b, _| {
                n.set(n.get() + 1);
                if n.get() == 1 {
                    b.add(tick, Some(ms(0))).unwrap();
                }
                if n.get() == 40 {
                    l.push(format!("read#{}", n.get()));
                    b.loopbreak();
                } else if n.get() == 34 || n.get() == 35 {
                    l.push(format!("read#{}", n.get()));
                }
            })
            .unwrap();
            pa.write(&mut b, b"0123456789").unwrap();
            b.dispatch().unwrap();
            // Call 1 was scheduled by the write before the loop; calls 1..=33 schedule their
            // successor directly (33 per iteration), so 34 calls run in the first iteration and
            // call 34 puts call 35 on the active-later queue. The second iteration moves it to
            // the active queue before polling, and the timer becomes active after it, in that
            // iteration's timeout processing. (Without a budget no timer would run before 40;
            // with a budget of 32 the timer would come before call 35.)
            assert_eq!(log.joined(), "read#34 read#35 tick read#40");
        }

        // ------------------------------------------------------------------------------------
        // Watermarks on sockets

        #[test]
        fn read_resumes_inside_the_drain_that_goes_below_high() {
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::NONE).unwrap();
            bev.setwatermark(&mut b, Events::READ, 0, 10).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            put(&mut b, s0, &[b'a'; 30]);
            b.run(NB).unwrap();
            let ev = |b: &Base<B>| b.num_events(Count::Added);
            assert_eq!(bev.input(&b).unwrap().len(), 10);
            let suspended = ev(&b);
            bev.drain(&mut b, 1).unwrap();
            // The read event is added again inside drain.
            assert_eq!(ev(&b), suspended + 1);
            bev.drain(&mut b, 9).unwrap();
            assert_eq!(ev(&b), suspended + 1);
            b.run(NB).unwrap();
            assert_eq!(bev.input(&b).unwrap().len(), 10);
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
            b.backend_mut().close(s1).unwrap();
        }

        #[test]
        fn readln_and_read_through_the_bufferevent() {
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
            let lines_read = Rc::new(RefCell::new(Vec::new()));
            let l = lines_read.clone();
            bev.set_readcb(&mut b, move |b, bev| {
                while let Some(line) = bev.readln(b, EolStyle::Crlf).unwrap() {
                    l.borrow_mut().push(String::from_utf8(line).unwrap());
                }
            })
            .unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            put(&mut b, s0, b"GET / HTTP/1.0\r\nHost: x\n\r\npartial");
            b.run(NB).unwrap();
            assert_eq!(*lines_read.borrow(), vec!["GET / HTTP/1.0", "Host: x", ""]);
            let mut rest = [0u8; 16];
            let n = bev.read(&mut b, &mut rest).unwrap();
            assert_eq!(&rest[..n], b"partial");
            // A socket bufferevent's input is frozen at its end: only the read path adds.
            assert!(bev.with_input(&mut b, |i| i.add(b"x")).unwrap().is_err());
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
        }

        // ------------------------------------------------------------------------------------
        // Ports of libevent's regress_bufferevent.c

        /// `test_bufferevent_impl`: 8333 bytes from bev1 to bev2; the readcb takes them when all
        /// have arrived, the writecb sees the output drained once; flush modes.
        fn bufferevent_impl(use_pair: bool, flush: Option<FlushMode>) {
            let mut b = base();
            let ok = cell(0i32);
            let (bev1, bev2, fds) = if use_pair {
                let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
                assert_eq!(x.fd(&b).unwrap(), -1);
                assert_eq!(x.partner(&b).unwrap(), Some(y));
                assert_eq!(y.partner(&b).unwrap(), Some(x));
                (x, y, None)
            } else {
                let (s0, s1) = sp(&mut b);
                let x = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
                let y = BufferEvent::socket_new(&mut b, s1, BevOptions::NONE).unwrap();
                assert_eq!(x.fd(&b).unwrap(), s0);
                assert_eq!(x.partner(&b).unwrap(), None);
                (x, y, Some((s0, s1)))
            };
            for x in [bev1, bev2] {
                let k = ok.clone();
                x.set_readcb(&mut b, move |b, bev| {
                    if bev.input(b).unwrap().len() == 8333 {
                        let mut buf = EvBuffer::new();
                        bev.read_buffer(b, &mut buf).unwrap();
                        bev.disable(b, Events::READ).unwrap();
                        if buf.len() == 8333 {
                            k.set(k.get() + 1);
                        }
                    }
                })
                .unwrap();
                let k = ok.clone();
                x.set_writecb(&mut b, move |b, bev| {
                    if bev.output(b).unwrap().is_empty() {
                        k.set(k.get() + 1);
                    }
                })
                .unwrap();
                let k = ok.clone();
                x.set_eventcb(&mut b, move |_, _, _| k.set(-2)).unwrap();
            }
            bev1.disable(&mut b, Events::READ).unwrap();
            bev2.enable(&mut b, Events::READ).unwrap();
            assert_eq!(bev1.enabled(&b).unwrap(), Events::WRITE);
            assert_eq!(bev2.enabled(&b).unwrap(), Events::WRITE | Events::READ);
            let data: Vec<u8> = (0..8333u32).map(|i| i as u8).collect();
            bev1.write(&mut b, &data).unwrap();
            if let Some(mode) = flush {
                bev1.flush(&mut b, Events::WRITE, mode).unwrap();
            }
            b.dispatch().unwrap();
            bev2.free(&mut b).unwrap();
            assert_eq!(bev1.partner(&b).unwrap(), None);
            bev1.free(&mut b).unwrap();
            // Only a pair calls the event callback (-2) for FINISHED; the write callback that
            // runs after it makes -1, as regress expects.
            let expected = if use_pair && flush == Some(FlushMode::Finished) { -1 } else { 2 };
            assert_eq!(ok.get(), expected);
            if let Some((s0, s1)) = fds {
                b.backend_mut().close(s0).unwrap();
                b.backend_mut().close(s1).unwrap();
            }
        }

        #[test]
        fn bufferevent() {
            bufferevent_impl(false, None);
        }
        #[test]
        fn bufferevent_pair() {
            bufferevent_impl(true, None);
        }
        #[test]
        fn bufferevent_flush_normal() {
            bufferevent_impl(false, Some(FlushMode::Normal));
        }
        #[test]
        fn bufferevent_flush_flush() {
            bufferevent_impl(false, Some(FlushMode::Flush));
        }
        #[test]
        fn bufferevent_flush_finished() {
            bufferevent_impl(false, Some(FlushMode::Finished));
        }
        #[test]
        fn bufferevent_pair_flush_normal() {
            bufferevent_impl(true, Some(FlushMode::Normal));
        }
        #[test]
        fn bufferevent_pair_flush_flush() {
            bufferevent_impl(true, Some(FlushMode::Flush));
        }
        #[test]
        fn bufferevent_pair_flush_finished() {
            bufferevent_impl(true, Some(FlushMode::Finished));
        }

        /// `test_bufferevent_watermarks_impl`: 65000 bytes; reader wm 10/20 (every readcb sees
        /// 10..=20 bytes), writer write-low 100 (every writecb sees at most 100 left).
        fn watermarks_impl(use_pair: bool) {
            let mut b = base();
            let ok = cell(0);
            let (bev1, bev2, fds) = if use_pair {
                let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
                (x, y, None)
            } else {
                let (s0, s1) = sp(&mut b);
                let x = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
                let y = BufferEvent::socket_new(&mut b, s1, BevOptions::NONE).unwrap();
                (x, y, Some((s0, s1)))
            };
            let k = ok.clone();
            bev1.set_writecb(&mut b, move |b, bev| {
                let len = bev.output(b).unwrap().len();
                assert!(len <= 100, "writecb with {len} left");
                if len == 0 {
                    k.set(k.get() + 1);
                }
            })
            .unwrap();
            let (k, nread) = (ok.clone(), cell(0usize));
            bev2.set_readcb(&mut b, move |b, bev| {
                let len = bev.input(b).unwrap().len();
                assert!((10..=20).contains(&len), "readcb with {len}");
                let mut buf = EvBuffer::new();
                bev.read_buffer(b, &mut buf).unwrap();
                nread.set(nread.get() + len);
                if nread.get() == 65000 {
                    bev.disable(b, Events::READ).unwrap();
                    k.set(k.get() + 1);
                }
            })
            .unwrap();
            for x in [bev1, bev2] {
                x.set_eventcb(&mut b, |_, _, w| panic!("eventcb {w}")).unwrap();
            }
            bev1.disable(&mut b, Events::READ).unwrap();
            bev2.enable(&mut b, Events::READ).unwrap();
            assert_eq!(bev1.getwatermark(&b, Events::READ).unwrap().0, 0);
            assert_eq!(bev2.getwatermark(&b, Events::WRITE).unwrap().0, 0);
            bev2.setwatermark(&mut b, Events::READ, 10, 20).unwrap();
            assert_eq!(bev2.getwatermark(&b, Events::READ).unwrap(), (10, 20));
            bev1.setwatermark(&mut b, Events::WRITE, 100, 2000).unwrap();
            assert_eq!(bev1.getwatermark(&b, Events::WRITE).unwrap(), (100, 2000));
            assert!(bev1.getwatermark(&b, Events::READ | Events::WRITE).is_err());
            let data: Vec<u8> = (0..65000u32).map(|i| i as u8).collect();
            bev1.write(&mut b, &data).unwrap();
            b.dispatch().unwrap();
            assert_eq!(ok.get(), 2);
            bev1.free(&mut b).unwrap();
            bev2.free(&mut b).unwrap();
            if let Some((s0, s1)) = fds {
                b.backend_mut().close(s0).unwrap();
                b.backend_mut().close(s1).unwrap();
            }
        }

        #[test]
        fn bufferevent_watermarks() {
            watermarks_impl(false);
        }
        #[test]
        fn bufferevent_pair_watermarks() {
            watermarks_impl(true);
        }

        /// `test_bufferevent_timeouts`: bev1 (read 150 ms, write 100 ms, 7 bytes queued, peer
        /// not reading) times out once each way; bev2 (write timeout 200 ms, empty output,
        /// write enabled) times out only as a socket. The sockets have fd -1, as in the test.
        fn timeouts_impl(use_pair: bool) {
            let mut b = base();
            let (bev1, bev2) = if use_pair {
                BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap()
            } else {
                (
                    BufferEvent::socket_new(&mut b, -1, BevOptions::NONE).unwrap(),
                    BufferEvent::socket_new(&mut b, -1, BevOptions::NONE).unwrap(),
                )
            };
            let log = Log::default();
            bev2.disable(&mut b, Events::READ).unwrap();
            for (x, name) in [(bev1, "bev1"), (bev2, "bev2")] {
                let l = log.clone();
                x.set_readcb(&mut b, move |_, _| l.push(format!("{name} read"))).unwrap();
                let l = log.clone();
                x.set_writecb(&mut b, move |_, _| l.push(format!("{name} write"))).unwrap();
                let l = log.clone();
                x.set_eventcb(&mut b, move |b, _, w| l.push(format!("{name} {w}{}", at(b))))
                    .unwrap();
            }
            bev1.set_timeouts(&mut b, Some(ms(150)), Some(ms(100))).unwrap();
            bev1.write(&mut b, b"ABCDEFG").unwrap();
            bev1.enable(&mut b, Events::READ | Events::WRITE).unwrap();
            bev2.set_timeouts(&mut b, Some(ms(100)), Some(ms(200))).unwrap();
            bev2.enable(&mut b, Events::WRITE).unwrap();
            b.loopexit(Some(ms(350))).unwrap();
            b.dispatch().unwrap();
            let expect = if use_pair {
                "bev1 WRITING|TIMEOUT@100 bev1 READING|TIMEOUT@150"
            } else {
                "bev1 WRITING|TIMEOUT@100 bev1 READING|TIMEOUT@150 bev2 WRITING|TIMEOUT@200"
            };
            assert_eq!(log.joined(), expect);
            bev1.free(&mut b).unwrap();
            bev2.free(&mut b).unwrap();
        }

        #[test]
        fn bufferevent_timeout() {
            timeouts_impl(false);
        }
        #[test]
        fn bufferevent_timeout_pair() {
            timeouts_impl(true);
        }

        #[test]
        fn read_timeout_restarts_on_each_read_and_stops_while_suspended() {
            let log = Log::default();
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::NONE).unwrap();
            // No read callback: with one, a full input would re-trigger it forever (§7.1).
            let l = log.clone();
            bev.set_eventcb(&mut b, move |b, _, w| l.push(format!("{w}{}", at(b)))).unwrap();
            bev.set_timeouts(&mut b, Some(ms(50)), None).unwrap();
            bev.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            // 2 bytes at 30 ms move the timeout to 80 ms, 2 more at 70 ms to 120 ms, but they
            // reach high: reading is suspended and its timeout with it. Draining at 200 ms
            // resumes both: the timeout expires at 250 ms.
            for (at_ms, data) in [(30, &b"ab"[..]), (70, b"cd")] {
                let fire = b
                    .timer_new(move |b, _, _| {
                        b.backend_mut().write(s0, data).unwrap();
                    })
                    .unwrap();
                b.add(fire, Some(ms(at_ms))).unwrap();
            }
            let drain = b.timer_new(move |b, _, _| bev.drain(b, 4).unwrap()).unwrap();
            b.add(drain, Some(ms(200))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "READING|TIMEOUT@250");
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
        }

        #[test]
        fn set_timeouts_rearms_only_pending_events() {
            // A socket's set_timeouts re-arms the events pending now (from now on) and leaves
            // the others: the write timeout only starts with enable(WRITE).
            let log = Log::default();
            let mut b = base();
            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::NONE).unwrap();
            let l = log.clone();
            bev.set_eventcb(&mut b, move |b, _, w| l.push(format!("{w}{}", at(b)))).unwrap();
            bev.set_timeouts(&mut b, Some(ms(50)), None).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            b.once(-1, Events::TIMEOUT, Some(ms(20)), move |b, _| {
                bev.set_timeouts(b, Some(ms(100)), Some(ms(30))).unwrap();
            })
            .unwrap();
            b.once(-1, Events::TIMEOUT, Some(ms(150)), move |b, _| {
                bev.enable(b, Events::WRITE).unwrap();
            })
            .unwrap();
            b.loopexit(Some(ms(300))).unwrap();
            b.dispatch().unwrap();
            assert_eq!(log.joined(), "READING|TIMEOUT@120 WRITING|TIMEOUT@180");
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn bufferevent_pair_release_lock() {
            let mut b = base();
            let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::THREADSAFE).unwrap();
            assert!(x.options(&b).unwrap().contains(BevOptions::DEFER_CALLBACKS));
            x.free(&mut b).unwrap();
            y.free(&mut b).unwrap();
            assert_eq!(b.num_events(Count::Active), 2);
            assert_eq!(b.run(NB).unwrap(), LoopExit::NoEvents);
        }

        fn connect_impl(options: BevOptions) {
            // `test_bufferevent_connect`: a listener whose accept callback writes TEST_STR and
            // frees the sender once drained; two connecting bufferevents read it up to EOF.
            const TEST_STR: &[u8] =
                b"Now is the time for all good events to signal for the good of their protocol\0";
            let mut b = real_base();
            let lev = Listener::bind(
                &mut b,
                loopback(),
                ListenerOptions::CLOSE_ON_FREE | ListenerOptions::REUSEABLE,
                16,
                Some(Box::new(move |b: &mut Base<R>, _, fd, _| {
                    let bev = BufferEvent::socket_new(b, fd, options).unwrap();
                    bev.set_writecb(b, |b, bev| {
                        if bev.output(b).unwrap().is_empty() {
                            bev.disable(b, Events::READ | Events::WRITE).unwrap();
                            bev.free(b).unwrap();
                        }
                    })
                    .unwrap();
                    bev.set_eventcb(b, |_, _, w| panic!("sender error {w}")).unwrap();
                    bev.write(b, TEST_STR).unwrap();
                })),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            lev.enable(&mut b).unwrap();
            let (strings, reads) = (cell(0), cell(0));
            let mut bevs = Vec::new();
            for _ in 0..2 {
                let bev = BufferEvent::socket_new(&mut b, -1, options).unwrap();
                let r = reads.clone();
                bev.set_readcb(&mut b, move |_, _| r.set(r.get() + 1)).unwrap();
                let s = strings.clone();
                bev.set_eventcb(&mut b, move |b, bev, what| {
                    assert!(!what.contains(BevEvents::ERROR), "connector error {what}");
                    if what.contains(BevEvents::CONNECTED) {
                        bev.enable(b, Events::READ).unwrap();
                    }
                    if what.contains(BevEvents::EOF) {
                        let mut buf = [0u8; 511];
                        let n = bev.read(b, &mut buf).unwrap();
                        assert_eq!(&buf[..n], TEST_STR);
                        s.set(s.get() + 1);
                        if s.get() == 2 {
                            b.loopexit(None).unwrap();
                        }
                    }
                })
                .unwrap();
                bev.enable(&mut b, Events::READ).unwrap();
                bevs.push(bev);
            }
            for &bev in &bevs {
                bev.socket_connect(&mut b, addr).unwrap();
            }
            b.dispatch().unwrap();
            assert_eq!(strings.get(), 2);
            assert!(reads.get() >= 2);
            lev.free(&mut b).unwrap();
            for bev in bevs {
                bev.free(&mut b).unwrap();
            }
        }

        #[test]
        fn bufferevent_connect() {
            connect_impl(BevOptions::CLOSE_ON_FREE);
        }
        #[test]
        fn bufferevent_connect_defer() {
            connect_impl(BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS);
        }
        #[test]
        fn bufferevent_connect_lock() {
            connect_impl(BevOptions::CLOSE_ON_FREE | BevOptions::THREADSAFE);
        }
        #[test]
        fn bufferevent_connect_lock_defer() {
            connect_impl(
                BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS | BevOptions::THREADSAFE,
            );
        }
        #[test]
        fn bufferevent_connect_unlocked_cbs() {
            connect_impl(
                BevOptions::CLOSE_ON_FREE
                    | BevOptions::DEFER_CALLBACKS
                    | BevOptions::THREADSAFE
                    | BevOptions::UNLOCK_CALLBACKS,
            );
        }

        /// A bound port that does not listen, as `fake_listener_create` makes it.
        fn closed_port() -> SocketAddr {
            // Binding without listening is what libevent does; the backend's listen() always
            // listens, so bind a std listener, take its port and close it: nothing listens.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        }

        #[test]
        fn bufferevent_connect_fail() {
            let mut b = real_base();
            let ok = cell(false);
            let bev = BufferEvent::socket_new(
                &mut b,
                -1,
                BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS,
            )
            .unwrap();
            let k = ok.clone();
            bev.set_eventcb(&mut b, move |b, bev, what| {
                assert!(what.contains(BevEvents::ERROR), "didn't fail? {what}");
                assert_eq!(what, BevEvents::ERROR);
                assert!(bev.error(b).unwrap().is_some());
                k.set(true);
                b.loopexit(None).unwrap();
            })
            .unwrap();
            bev.socket_connect(&mut b, closed_port()).unwrap();
            let close_listener = b.timer_new(|_, _, _| {}).unwrap();
            b.add(close_listener, Some(ms(100))).unwrap();
            b.dispatch().unwrap();
            assert!(ok.get());
            bev.free(&mut b).unwrap();
        }

        fn connect_fail_eventcb_impl(options: BevOptions) {
            let mut b = real_base();
            let (events, reads) = (cell(0), cell(0));
            let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE | options)
                .unwrap();
            let r = reads.clone();
            bev.set_readcb(&mut b, move |_, _| r.set(r.get() + 1)).unwrap();
            let r = reads.clone();
            bev.set_writecb(&mut b, move |_, _| r.set(r.get() + 1)).unwrap();
            let e = events.clone();
            bev.set_eventcb(&mut b, move |_, _, _| e.set(e.get() + 1)).unwrap();
            bev.enable(&mut b, Events::READ | Events::WRITE).unwrap();
            bev.socket_connect(&mut b, closed_port()).unwrap();
            assert_eq!((events.get(), reads.get()), (0, 0));
            let close_listener = b.timer_new(|_, _, _| {}).unwrap();
            b.add(close_listener, Some(ms(100))).unwrap();
            b.dispatch().unwrap();
            assert_eq!((events.get(), reads.get()), (1, 0));
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn bufferevent_connect_fail_eventcb() {
            connect_fail_eventcb_impl(BevOptions::NONE);
        }
        #[test]
        fn bufferevent_connect_fail_eventcb_defer() {
            connect_fail_eventcb_impl(BevOptions::DEFER_CALLBACKS);
        }

        /// `test_bufferevent_trigger`: the readcb replaces the callbacks, checks that a trigger
        /// below the low watermark does nothing and that IGNORE_WATERMARKS runs the new readcb
        /// (at once, or deferred), which triggers the event callback with every bit set.
        fn trigger_impl(defer: bool, postpone: bool) {
            let mut b = real_base();
            let be_flags = if defer {
                BevOptions::CLOSE_ON_FREE | BevOptions::DEFER_CALLBACKS
            } else {
                BevOptions::CLOSE_ON_FREE
            };
            let trig = if postpone {
                TriggerOptions::DEFER_CALLBACKS
            } else {
                TriggerOptions::NONE
            };
            let lev = Listener::bind(
                &mut b,
                loopback(),
                ListenerOptions::CLOSE_ON_FREE | ListenerOptions::REUSEABLE,
                16,
                Some(Box::new(move |b: &mut Base<R>, _, fd, _| {
                    let bev = BufferEvent::socket_new(b, fd, be_flags).unwrap();
                    bev.set_writecb(b, |b, bev| {
                        if bev.output(b).unwrap().is_empty() {
                            bev.free(b).unwrap();
                        }
                    })
                    .unwrap();
                    bev.write(b, b"Now is the time").unwrap();
                })),
            )
            .unwrap();
            let addr = lev.local_addr(&mut b).unwrap();
            let reads = cell(0);
            let bev = BufferEvent::socket_new(&mut b, -1, be_flags).unwrap();
            let r = reads.clone();
            bev.set_readcb(&mut b, move |b, bev| {
                r.set(r.get() + 1);
                let mut expected = r.get();
                let r2 = r.clone();
                bev.setcb(
                    b,
                    Some(Box::new(move |b: &mut Base<R>, bev: BufferEvent| {
                        r2.set(r2.get() + 1);
                        bev.trigger_event(b, BevEvents::from_bits(!0), trig).unwrap();
                    })),
                    None,
                    Some(Box::new(|b: &mut Base<R>, _, what: BevEvents| {
                        if what == BevEvents::from_bits(!0) {
                            b.loopexit(None).unwrap();
                        }
                    })),
                )
                .unwrap();
                let (low, high) = bev.getwatermark(b, Events::READ).unwrap();
                let len = bev.input(b).unwrap().len();
                bev.setwatermark(b, Events::READ, len + 1, 0).unwrap();
                bev.trigger(b, Events::READ, trig).unwrap();
                assert_eq!(r.get(), expected, "no callback below the low watermark");
                if !defer && !postpone {
                    expected += 1;
                }
                b.once(-1, Events::TIMEOUT, Some(Duration::from_secs(30)), |_, _| {
                    panic!("the triggered callback did not fire")
                })
                .unwrap();
                bev.trigger(b, Events::READ, trig | TriggerOptions::IGNORE_WATERMARKS).unwrap();
                assert_eq!(r.get(), expected);
                bev.setwatermark(b, Events::READ, low, high).unwrap();
            })
            .unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            bev.socket_connect(&mut b, addr).unwrap();
            b.dispatch().unwrap();
            assert_eq!(reads.get(), 2);
            lev.free(&mut b).unwrap();
            bev.free(&mut b).unwrap();
        }

        #[test]
        fn bufferevent_trigger() {
            trigger_impl(false, false);
        }
        #[test]
        fn bufferevent_trigger_defer() {
            trigger_impl(true, false);
        }
        #[test]
        fn bufferevent_trigger_postpone() {
            trigger_impl(false, true);
        }
        #[test]
        fn bufferevent_trigger_defer_postpone() {
            trigger_impl(true, true);
        }

        #[test]
        fn bufferevent_pair_flush() {
            let mut b = base();
            let (bev1, bev2) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            bev1.enable(&mut b, Events::WRITE).unwrap();
            bev2.enable(&mut b, Events::READ).unwrap();
            let what = cell(BevEvents::NONE);
            let w = what.clone();
            bev2.set_eventcb(&mut b, move |_, _, x| w.set(x)).unwrap();
            bev1.flush(&mut b, Events::WRITE, FlushMode::Finished).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(what.get(), BevEvents::READING | BevEvents::EOF);
            bev1.free(&mut b).unwrap();
            bev2.free(&mut b).unwrap();
        }

        #[test]
        fn pair_transfer_happens_inside_the_drain() {
            let mut b = base();
            let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            y.setwatermark(&mut b, Events::READ, 0, 10).unwrap();
            y.enable(&mut b, Events::READ).unwrap();
            x.write(&mut b, &[7u8; 25]).unwrap();
            assert_eq!((x.output(&b).unwrap().len(), y.input(&b).unwrap().len()), (15, 10));
            y.drain(&mut b, 4).unwrap();
            assert_eq!((x.output(&b).unwrap().len(), y.input(&b).unwrap().len()), (11, 10));
            let mut buf = [0u8; 10];
            assert_eq!(y.read(&mut b, &mut buf).unwrap(), 10);
            assert_eq!((x.output(&b).unwrap().len(), y.input(&b).unwrap().len()), (1, 10));
            // A pair's priority cannot be set, as in libevent.
            assert!(x.priority_set(&mut b, 0).is_err());
            x.free(&mut b).unwrap();
            y.free(&mut b).unwrap();
        }

        #[test]
        fn free_inside_own_callback_and_stale_handles() {
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::CLOSE_ON_FREE).unwrap();
            let log = Log::default();
            let l = log.clone();
            bev.set_writecb(&mut b, move |b, bev| {
                l.push("flushed");
                bev.free(b).unwrap();
                assert!(bev.write(b, b"more").is_err());
                assert!(bev.free(b).is_err());
            })
            .unwrap();
            bev.enable(&mut b, Events::WRITE).unwrap();
            bev.write(&mut b, b"msg").unwrap();
            assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
            assert_eq!(log.joined(), "flushed");
            assert_eq!(take(&mut b, s1, 10), b"msg");
            // Closed by the finalizer: EOF now.
            assert_eq!(take(&mut b, s1, 10), b"");
            b.backend_mut().close(s1).unwrap();
        }

        #[test]
        fn deferred_free_waits_for_the_pending_deferred_callback() {
            // A bufferevent freed while its deferred callback is queued is finalized only when
            // that callback has run (it holds a reference): the finalizer comes after it.
            let log = Log::default();
            let mut b = base();
            let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
            let l = log.clone();
            y.set_readcb(&mut b, move |_, _| l.push("y read")).unwrap();
            y.enable(&mut b, Events::READ).unwrap();
            x.write(&mut b, b"data").unwrap();
            y.free(&mut b).unwrap();
            // Still linked until its deferred callback has run and released it.
            assert_eq!(x.partner(&b).unwrap(), Some(y));
            assert_eq!(b.num_events(Count::Active), 1);
            b.run(LoopFlags::ONCE | NB).unwrap();
            assert_eq!(log.len(), 0);
            assert_eq!(x.partner(&b).unwrap(), None);
            x.free(&mut b).unwrap();
            assert_eq!(b.run(NB).unwrap(), LoopExit::NoEvents);
        }

        #[test]
        fn socket_priority_set_moves_events_and_deferred_callback() {
            let log = Log::default();
            let mut b = base();
            b.priority_init(3).unwrap();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s1, BevOptions::DEFER_CALLBACKS).unwrap();
            assert_eq!(bev.priority(&b).unwrap(), 1);
            bev.priority_set(&mut b, 2).unwrap();
            let l = log.clone();
            bev.set_readcb(&mut b, move |_, _| l.push("bev read")).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            let l = log.clone();
            let z = b.timer_new(move |_, _, _| l.push("p1 timer")).unwrap();
            put(&mut b, s0, b"x");
            b.add(z, Some(ms(0))).unwrap();
            b.run(NB).unwrap();
            assert_eq!(log.joined(), "p1 timer bev read");
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
            b.backend_mut().close(s1).unwrap();
        }

        /// libevent calls a read callback again from inside itself when it triggers itself
        /// synchronously (`bufferevent_trigger` without DEFER); evloop does so for shared
        /// (`Fn`) callbacks set with `setcb_shared`. An `FnMut` callback cannot be re-entered:
        /// the nested trigger is skipped.
        #[test]
        fn shared_callbacks_are_reentered_by_a_synchronous_trigger() {
            let mut b = base();
            let (s0, s1) = sp(&mut b);
            let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
            let log = Rc::new(RefCell::new(Vec::<String>::new()));
            let depth = cell(0u32);
            let (l, d) = (log.clone(), depth.clone());
            let readcb: evloop::bufferevent::SharedDataCb<B> = Rc::new(move |b, bev| {
                d.set(d.get() + 1);
                l.borrow_mut().push(format!("enter {}", d.get()));
                if d.get() == 1 {
                    bev.trigger(b, Events::READ, TriggerOptions::NONE).unwrap();
                }
                l.borrow_mut().push(format!("leave {}", d.get()));
                d.set(d.get() - 1);
            });
            bev.setcb_shared(&mut b, Some(readcb), None, None).unwrap();
            bev.enable(&mut b, Events::READ).unwrap();
            put(&mut b, s1, b"x");
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(
                *log.borrow(),
                ["enter 1", "enter 2", "leave 2", "leave 1"],
                "nested call inside the trigger"
            );
            // The same with an FnMut callback: the nested trigger is skipped.
            let calls = cell(0u32);
            let c = calls.clone();
            bev.set_readcb(&mut b, move |b, bev| {
                c.set(c.get() + 1);
                bev.trigger(b, Events::READ, TriggerOptions::NONE).unwrap();
            })
            .unwrap();
            put(&mut b, s1, b"y");
            b.run(LoopFlags::ONCE).unwrap();
            assert_eq!(calls.get(), 1);
            bev.free(&mut b).unwrap();
            b.backend_mut().close(s0).unwrap();
            b.backend_mut().close(s1).unwrap();
        }
    };
}

mod epoll {
    bev_suite!(
        evloop::backend::EpollBackend,
        evloop::backend::EpollBackend::new().unwrap()
    );
}
mod poll {
    bev_suite!(
        evloop::backend::PollBackend,
        evloop::backend::PollBackend::new().unwrap()
    );
}
mod select {
    bev_suite!(
        evloop::backend::SelectBackend,
        evloop::backend::SelectBackend::new().unwrap()
    );
}
mod mio {
    bev_suite!(
        evloop::backend::MioBackend,
        evloop::backend::MioBackend::new().unwrap()
    );
}
