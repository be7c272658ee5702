//! Bufferevents (src/bufferevent/) on epoll under virtual time: tests written to kill mutants
//! that `cargo mutants` left alive in src/bufferevent/ (docs/mutation-testing.md).

mod util;

use evloop::backend::Backend;
use evloop::backend::{EpollBackend, VirtualTime};
use evloop::{Base, BevOptions, BufferEvent, Events, LoopExit, LoopFlags};

use util::*;

type B = VirtualTime<EpollBackend>;

fn base() -> Base<B> {
    Base::new(VirtualTime::new(EpollBackend::new().unwrap()))
}

/// A socket bufferevent on one end of a fresh socketpair, its event callback logging
/// "event WHAT"; returns it with both ends.
fn socket_bev<B2: Backend + 'static>(
    b: &mut Base<B2>,
    log: &Log,
) -> (BufferEvent, evloop::Fd, evloop::Fd) {
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(b, s0, BevOptions::NONE).unwrap();
    let l = log.clone();
    bev.set_eventcb(b, move |_, _, what| l.push(format!("event {what}")))
        .unwrap();
    (bev, s0, s1)
}

/// `be_pair_transfer` re-arms the destination's write timeout when the destination has output
/// waiting, and deletes it when its output is empty.
#[test]
fn pair_transfer_arms_the_write_timeout_only_with_output_waiting() {
    for with_output in [false, true] {
        let log = Log::default();
        let mut b = base();
        let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
        let l = log.clone();
        y.set_eventcb(&mut b, move |b, _, what| {
            l.push(format!("y {what}{}", at(b)))
        })
        .unwrap();
        y.enable(&mut b, Events::READ | Events::WRITE).unwrap();
        y.set_timeouts(&mut b, None, Some(ms(100))).unwrap();
        if with_output {
            // x does not read, so this stays in y's output.
            y.write(&mut b, b"pending").unwrap();
        }
        x.enable(&mut b, Events::WRITE).unwrap();
        x.write(&mut b, b"x").unwrap();
        assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
        assert_eq!(y.input(&b).unwrap().to_vec(), b"x");
        let expected = if with_output {
            "y WRITING|TIMEOUT@100"
        } else {
            ""
        };
        assert_eq!(log.joined(), expected, "with_output={with_output}");
    }
}

/// A socket bufferevent woken for a read that finds no data (another event on the same fd, at a
/// more urgent priority, drained it first) takes the EAGAIN quietly: no callback, still reading.
#[test]
fn a_read_that_would_block_is_no_error() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    assert_eq!(bev.priority(&b).unwrap(), 1);
    let l = log.clone();
    bev.set_eventcb(&mut b, move |_, _, what| l.push(format!("event {what}")))
        .unwrap();
    let l = log.clone();
    bev.set_readcb(&mut b, move |_, _| l.push("read")).unwrap();
    bev.enable(&mut b, Events::READ).unwrap();
    let l = log.clone();
    let thief = b
        .event_new(s0, Events::READ, move |b, _, _| {
            let mut buf = [0u8; 16];
            let n = b.backend_mut().read(s0, &mut buf).unwrap();
            l.push(format!("thief {n}"));
        })
        .unwrap();
    b.priority_set(thief, 0).unwrap();
    b.add(thief, None).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"data").unwrap(), 4);
    b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    assert_eq!(log.joined(), "thief 4");
    assert!(bev.enabled(&b).unwrap().contains(Events::READ));
    assert_eq!(bev.error(&b).unwrap().map(|e| e.kind()), None);
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// Connecting a bufferevent whose socket cannot connect to an IPv4 address (a Unix socket)
/// fails at once with the error, as `bufferevent_socket_connect` returns -1; no event callback
/// is scheduled (only ECONNREFUSED takes the deferred-callback path).
#[test]
fn a_connect_error_other_than_refused_is_returned() {
    let log = Log::default();
    let mut b = base();
    let (bev, s0, s1) = socket_bev(&mut b, &log);
    let r = bev.socket_connect(&mut b, "127.0.0.1:9".parse().unwrap());
    assert!(
        matches!(&r, Err(evloop::Error::Io(e)) if e.kind() != std::io::ErrorKind::ConnectionRefused),
        "{r:?}"
    );
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "");
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// Draining below the read high watermark lifts the watermark's suspension, but does not start
/// reading again when the user disabled READ meanwhile (`bufferevent_unsuspend_read_` enables
/// only an enabled direction): the peer's remaining bytes stay in the socket.
#[test]
fn unsuspending_a_disabled_read_does_not_resume_it() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    bev.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
    bev.enable(&mut b, Events::READ).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"0123456789").unwrap(), 10);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(
        bev.input(&b).unwrap().len(),
        4,
        "the watermark stops reading at 4"
    );
    bev.disable(&mut b, Events::READ).unwrap();
    bev.drain(&mut b, 4).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(
        bev.input(&b).unwrap().len(),
        0,
        "reading resumed while disabled"
    );
    // enabled again, the rest arrives
    bev.enable(&mut b, Events::READ).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(bev.input(&b).unwrap().len(), 4);
}

/// A socket bufferevent's write timeout set while output is stuck (the peer never reads) fires
/// 100 ms after the call, at the exact virtual time.
#[test]
fn a_socket_write_timeout_set_with_output_stuck_fires() {
    let log = Log::default();
    let mut b = base();
    let (s0, _s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    let l = log.clone();
    bev.set_eventcb(&mut b, move |b, _, what| l.push(format!("{what}{}", at(b))))
        .unwrap();
    // more than an AF_UNIX socketpair holds: the peer never reads, so output stays waiting
    bev.write(&mut b, &vec![b'x'; 1 << 20]).unwrap();
    bev.enable(&mut b, Events::WRITE).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert!(!bev.output(&b).unwrap().is_empty());
    b.backend_mut().advance(ms(50));
    bev.set_timeouts(&mut b, None, Some(ms(100))).unwrap();
    b.loopexit(Some(ms(300))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "WRITING|TIMEOUT@150");
}

/// For a pair, setting the timeouts while writing is enabled, not suspended and output is
/// waiting arms the write timeout (`bufferevent_generic_adj_timeouts_`): the partner does not
/// read, so the output times out 100 ms after the call.
#[test]
fn a_pair_write_timeout_set_with_output_waiting_fires() {
    let log = Log::default();
    let mut b = base();
    let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
    let l = log.clone();
    y.set_eventcb(&mut b, move |b, _, what| {
        l.push(format!("y {what}{}", at(b)))
    })
    .unwrap();
    y.enable(&mut b, Events::WRITE).unwrap();
    y.write(&mut b, b"pending").unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(y.output(&b).unwrap().len(), 7, "x does not read");
    assert!(!x.enabled(&b).unwrap().contains(Events::READ));
    b.backend_mut().advance(ms(50));
    y.set_timeouts(&mut b, None, Some(ms(100))).unwrap();
    b.loopexit(Some(ms(300))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "y WRITING|TIMEOUT@150");
}

/// Resetting the read high watermark to 0 turns the watermark's input callback off
/// (`bufferevent_setwatermark` clears the callback's ENABLED flag): reading goes on however much
/// input there is. Were the callback left on, every input change would compare the length with a
/// high mark of 0 and suspend reading for good.
#[test]
fn resetting_the_read_high_watermark_to_zero_stops_its_callback() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    let l = log.clone();
    bev.set_readcb(&mut b, move |b, bev| {
        let n = bev.input(b).unwrap().len();
        bev.drain(b, n).unwrap();
        l.push(format!("read {n}"));
    })
    .unwrap();
    bev.setwatermark(&mut b, Events::READ, 0, 10).unwrap();
    bev.setwatermark(&mut b, Events::READ, 0, 0).unwrap();
    assert_eq!(bev.getwatermark(&b, Events::READ).unwrap(), (0, 0));
    bev.enable(&mut b, Events::READ).unwrap();
    for chunk in [&b"abc"[..], b"defg", b"hi"] {
        assert_eq!(b.backend_mut().write(s1, chunk).unwrap(), chunk.len());
        b.run(LoopFlags::NONBLOCK).unwrap();
    }
    assert_eq!(log.joined(), "read 3 read 4 read 2");
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// A read error other than ECONNREFUSED (here ECONNRESET: the peer closed with bytes of ours
/// unread) disables reading and reports READING|ERROR with the error, as `bufferevent_readcb`.
/// Only a refused connection is kept for the connect path instead.
#[test]
fn a_reset_connection_is_a_reading_error() {
    let log = Log::default();
    let mut b = base();
    let (bev, s0, s1) = socket_bev(&mut b, &log);
    let l = log.clone();
    bev.set_readcb(&mut b, move |_, _| l.push("read")).unwrap();
    bev.enable(&mut b, Events::READ).unwrap();
    assert_eq!(b.backend_mut().write(s0, b"unread").unwrap(), 6);
    b.backend_mut().close(s1).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "event READING|ERROR");
    assert_eq!(
        bev.error(&b).unwrap().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
    assert!(!bev.enabled(&b).unwrap().contains(Events::READ));
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
}

/// A socket bufferevent woken for a write that finds the socket full (another event on the same
/// fd, at a more urgent priority, filled it first) takes the EAGAIN quietly: no callback, output
/// kept, still writing; once the peer reads, the output goes out.
#[test]
fn a_write_that_would_block_is_no_error() {
    let log = Log::default();
    let mut b = base();
    b.priority_init(2).unwrap();
    let (bev, s0, s1) = socket_bev(&mut b, &log);
    let l = log.clone();
    bev.set_writecb(&mut b, move |_, _| l.push("written"))
        .unwrap();
    bev.write(&mut b, b"payload").unwrap();
    bev.enable(&mut b, Events::WRITE).unwrap();
    let l = log.clone();
    let filler = b
        .event_new(s0, Events::WRITE, move |b, _, _| {
            let chunk = [b'x'; 4096];
            let mut total = 0;
            loop {
                match b.backend_mut().write(s0, &chunk) {
                    Ok(n) => total += n,
                    Err(e) => {
                        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
                        break;
                    }
                }
            }
            l.push(format!("filled {}", total > 0));
        })
        .unwrap();
    b.priority_set(filler, 0).unwrap();
    b.add(filler, None).unwrap();
    b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    assert_eq!(log.joined(), "filled true");
    assert_eq!(bev.output(&b).unwrap().len(), 7);
    assert!(bev.enabled(&b).unwrap().contains(Events::WRITE));
    assert_eq!(bev.error(&b).unwrap().map(|e| e.kind()), None);
    // the peer reads everything; the payload follows the filler's bytes
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !got.ends_with(b"payload") {
        b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
        match b.backend_mut().read(s1, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
        }
    }
    assert_eq!(log.joined(), "written");
    assert!(got[..got.len() - 7].iter().all(|&c| c == b'x'));
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `{:?}` of the event flags names them; of a handle, shows its slot and generation.
#[test]
fn debug_formats() {
    assert_eq!(
        format!("{:?}", evloop::BevEvents::READING | evloop::BevEvents::EOF),
        "BevEvents(READING|EOF)"
    );
    let mut b = base();
    let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
    let (dx, dy) = (format!("{x:?}"), format!("{y:?}"));
    assert!(dx.starts_with("BufferEvent(") && dx.ends_with(')'), "{dx}");
    assert_ne!(dx, dy);
}

/// Freeing a socket bufferevent without CLOSE_ON_FREE leaves its descriptor open (the
/// finalizer closes only what the bufferevent owns); with CLOSE_ON_FREE it is closed.
#[test]
fn free_closes_the_socket_only_with_close_on_free() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let (t0, t1) = b.backend_mut().socketpair().unwrap();
    let kept = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    let owned = BufferEvent::socket_new(&mut b, t0, BevOptions::CLOSE_ON_FREE).unwrap();
    kept.free(&mut b).unwrap();
    owned.free(&mut b).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    // Seen from the peers (a closed descriptor's number may be reused at once by another
    // test's thread): s0 still carries bytes, t0's peer reads end of file.
    assert_eq!(b.backend_mut().write(s0, b"still open").unwrap(), 10);
    let mut got = [0u8; 16];
    assert_eq!(b.backend_mut().read(s1, &mut got).unwrap(), 10);
    assert_eq!(b.backend_mut().read(t1, &mut got).unwrap(), 0, "t0 closed");
    for fd in [s0, s1, t1] {
        b.backend_mut().close(fd).unwrap();
    }
}

/// A pair whose reading the high watermark suspended has no read timeout armed: setting the
/// timeouts then (`bufferevent_generic_adj_timeouts_`) leaves the read timer off, so nothing
/// fires while the input waits at the watermark.
#[test]
fn a_suspended_pair_read_arms_no_read_timeout() {
    let log = Log::default();
    let mut b = base();
    let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
    let l = log.clone();
    y.set_eventcb(&mut b, move |b, _, what| {
        l.push(format!("y {what}{}", at(b)))
    })
    .unwrap();
    y.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
    y.enable(&mut b, Events::READ).unwrap();
    x.enable(&mut b, Events::WRITE).unwrap();
    x.write(&mut b, b"0123456789").unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(
        y.input(&b).unwrap().len(),
        4,
        "the watermark stops the transfer"
    );
    y.set_timeouts(&mut b, Some(ms(100)), None).unwrap();
    b.loopexit(Some(ms(300))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "");
    // drained below the mark, reading (and its timeout) resume
    y.drain(&mut b, 4).unwrap();
    assert_eq!(y.input(&b).unwrap().len(), 4, "the rest moved in");
    assert_eq!(x.output(&b).unwrap().len(), 2);
}

/// Enabling READ again while the read high watermark holds reading suspended does not resume
/// it (`bufferevent_enable` leaves a suspended direction to the suspension): the input stays at
/// the watermark until it is drained below it.
#[test]
fn enabling_a_suspended_read_does_not_resume_it() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    bev.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
    bev.enable(&mut b, Events::READ).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"0123456789").unwrap(), 10);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(bev.input(&b).unwrap().len(), 4);
    // One pass, so that a read event wrongly left on shows as a callback instead of a busy loop.
    let before = b.callbacks_run();
    bev.enable(&mut b, Events::READ).unwrap();
    b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    assert_eq!(b.callbacks_run(), before, "no callback: reading stays off");
    assert_eq!(bev.input(&b).unwrap().len(), 4, "still suspended");
    bev.drain(&mut b, 4).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(bev.input(&b).unwrap().len(), 4, "the next 4 bytes");
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// Enabling READ|WRITE while the read watermark suspends reading starts writing (only the
/// suspended direction is held back) and nothing else: the output reaches the peer, reading
/// stays suspended.
#[test]
fn enabling_both_while_read_is_suspended_starts_writing() {
    let log = Log::default();
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    let l = log.clone();
    bev.set_writecb(&mut b, move |_, _| l.push("written"))
        .unwrap();
    bev.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
    bev.enable(&mut b, Events::READ).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"0123456789").unwrap(), 10);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(bev.input(&b).unwrap().len(), 4);
    bev.disable(&mut b, Events::READ).unwrap();
    bev.write(&mut b, b"reply").unwrap();
    bev.enable(&mut b, Events::READ | Events::WRITE).unwrap();
    // Single passes, so that a read event wrongly left on cannot spin the loop.
    for _ in 0..3 {
        b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    }
    assert_eq!(log.joined(), "written");
    let mut got = [0u8; 16];
    assert_eq!(b.backend_mut().read(s1, &mut got).unwrap(), 5);
    assert_eq!(&got[..5], b"reply");
    assert_eq!(bev.input(&b).unwrap().len(), 4, "reading still suspended");
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// Flushing a pair end's output (`bufferevent_flush(WRITE, FLUSH)`) moves all of it to the
/// partner even when the partner's input sits at or above its read high watermark: the flush
/// ignores the watermark (`be_pair_transfer(…, 1)`). Without a flush, nothing moves.
#[test]
fn a_pair_flush_ignores_the_partners_high_watermark() {
    for extra in [0, 3] {
        let mut b = base();
        let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
        y.setwatermark(&mut b, Events::READ, 0, 4).unwrap();
        y.enable(&mut b, Events::READ).unwrap();
        x.enable(&mut b, Events::WRITE).unwrap();
        x.write(&mut b, &b"0123456"[..4 + extra]).unwrap();
        b.run(LoopFlags::NONBLOCK).unwrap();
        assert_eq!(y.input(&b).unwrap().len(), 4, "the watermark stops at 4");
        assert_eq!(x.output(&b).unwrap().len(), extra);
        x.write(&mut b, b"abc").unwrap();
        b.run(LoopFlags::NONBLOCK).unwrap();
        assert_eq!(x.output(&b).unwrap().len(), extra + 3, "nothing moves");
        x.flush(&mut b, Events::WRITE, evloop::FlushMode::Flush)
            .unwrap();
        assert_eq!(x.output(&b).unwrap().len(), 0, "extra {extra}");
        assert_eq!(y.input(&b).unwrap().len(), 4 + extra + 3);
        assert_eq!(y.input(&b).unwrap().to_vec()[4 + extra..], *b"abc");
    }
}

/// `write_buffer` moves the whole buffer into the output (the source is left empty), and the
/// bytes go out like written ones.
#[test]
fn write_buffer_moves_everything_to_the_output() {
    let mut b = base();
    let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
    let mut src = evloop::EvBuffer::from_bytes(b"moved");
    x.write_buffer(&mut b, &mut src).unwrap();
    assert!(src.is_empty());
    assert_eq!(x.output(&b).unwrap().to_vec(), b"moved");
    y.enable(&mut b, Events::READ).unwrap();
    x.enable(&mut b, Events::WRITE).unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(y.input(&b).unwrap().to_vec(), b"moved");
}

/// `trigger_event` with DEFER_CALLBACKS runs the event callback from the loop, not inside the
/// call; without it, at once.
#[test]
fn trigger_event_defers_only_when_asked() {
    let log = Log::default();
    let mut b = base();
    let (bev, s0, s1) = socket_bev(&mut b, &log);
    let what = evloop::BevEvents::READING | evloop::BevEvents::EOF;
    bev.trigger_event(&mut b, what, evloop::TriggerOptions::DEFER_CALLBACKS)
        .unwrap();
    assert_eq!(log.joined(), "", "deferred");
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "event READING|EOF");
    bev.trigger_event(&mut b, what, evloop::TriggerOptions::NONE)
        .unwrap();
    assert_eq!(log.joined(), "event READING|EOF", "at once");
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// `setfd` moves a socket bufferevent to another descriptor: `fd` reports it and reading
/// follows it; `priority` reports what `priority_set` set; `is_live` holds until `free`.
#[test]
fn setfd_priority_and_liveness() {
    let mut b = base();
    b.priority_init(3).unwrap();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let (t0, t1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    assert!(bev.is_live(&b));
    assert_eq!(bev.priority(&b).unwrap(), 1);
    bev.priority_set(&mut b, 0).unwrap();
    assert_eq!(bev.priority(&b).unwrap(), 0);
    bev.priority_set(&mut b, 2).unwrap();
    assert_eq!(bev.priority(&b).unwrap(), 2);
    bev.setfd(&mut b, t0).unwrap();
    assert_eq!(bev.fd(&b).unwrap(), t0);
    bev.enable(&mut b, Events::READ).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"old").unwrap(), 3);
    assert_eq!(b.backend_mut().write(t1, b"new").unwrap(), 3);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(bev.input(&b).unwrap().to_vec(), b"new");
    bev.free(&mut b).unwrap();
    assert!(!bev.is_live(&b));
    for fd in [s0, s1, t0, t1] {
        b.backend_mut().close(fd).unwrap();
    }
}

/// Disabling a pair end's directions stops their timeouts (`be_pair_disable` deletes the
/// timers): with READ and WRITE disabled, neither timeout fires.
#[test]
fn disabling_a_pair_end_stops_its_timeouts() {
    let log = Log::default();
    let mut b = base();
    let (x, _y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
    let l = log.clone();
    x.set_eventcb(&mut b, move |b, _, what| {
        l.push(format!("x {what}{}", at(b)))
    })
    .unwrap();
    x.write(&mut b, b"stuck").unwrap();
    x.enable(&mut b, Events::READ | Events::WRITE).unwrap();
    x.set_timeouts(&mut b, Some(ms(100)), Some(ms(100)))
        .unwrap();
    x.disable(&mut b, Events::READ | Events::WRITE).unwrap();
    b.loopexit(Some(ms(300))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "");
    // enabled again, both time out 100 ms later (a pair's callbacks are deferred, so the two
    // reports reach the callback as one)
    x.enable(&mut b, Events::READ | Events::WRITE).unwrap();
    b.loopexit(Some(ms(300))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "x READING|WRITING|TIMEOUT@400");
}

/// Output added while writing is disabled does not start the write event
/// (`bufferevent_socket_outbuf_cb` checks `enabled & EV_WRITE`): the next pass runs no callback
/// and sends nothing; enabling WRITE sends it.
#[test]
fn output_added_while_writing_is_disabled_waits() {
    let mut b = base();
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    let bev = BufferEvent::socket_new(&mut b, s0, BevOptions::NONE).unwrap();
    bev.disable(&mut b, Events::WRITE).unwrap();
    let before = b.callbacks_run();
    bev.write(&mut b, b"later").unwrap();
    b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    assert_eq!(b.callbacks_run(), before, "no write event ran");
    let mut got = [0u8; 16];
    let e = b.backend_mut().read(s1, &mut got).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    bev.enable(&mut b, Events::WRITE).unwrap();
    b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
    assert_eq!(b.backend_mut().read(s1, &mut got).unwrap(), 5);
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}

/// A connect refused after `EINPROGRESS` while reading is enabled: the read that sees
/// ECONNREFUSED first only notes it, and the connect's completion reports the failure once
/// (`bufferevent_readcb`'s `connection_refused` path, then `bufferevent_writecb`).
#[test]
fn a_refused_connect_seen_by_the_read_is_reported_once() {
    let log = Log::default();
    let mut b = base();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
    let l = log.clone();
    bev.set_eventcb(&mut b, move |b, bev, what| {
        let e = bev.error(b).unwrap().map(|e| e.kind());
        l.push(format!("event {what} {e:?}"))
    })
    .unwrap();
    bev.socket_connect(&mut b, ([127, 0, 0, 1], port).into())
        .unwrap();
    // Enabled after the connect added the write event, the read event is the more recently
    // added one on the fd, so it runs first in the pass that reports the refusal.
    bev.enable(&mut b, Events::READ).unwrap();
    b.loopexit(Some(ms(1000))).unwrap();
    b.dispatch().unwrap();
    assert_eq!(log.joined(), "event ERROR Some(ConnectionRefused)");
    bev.free(&mut b).unwrap();
}

/// A real epoll backend with answers the kernel does not give here but other systems (or the
/// simulator) may: `take_socket_error` says EINPROGRESS once per connect (the simulator's answer
/// while a SYN is unanswered: the connect's first write wakeup is spurious), and, with
/// `zero_writes`, `write` returns 0.
struct Quirks {
    inner: EpollBackend,
    pending: Vec<evloop::Fd>,
    zero_writes: bool,
}

impl Quirks {
    fn new() -> Quirks {
        Quirks {
            inner: EpollBackend::new().unwrap(),
            pending: Vec::new(),
            zero_writes: false,
        }
    }
}

impl Backend for Quirks {
    fn name(&self) -> &'static str {
        "quirks"
    }
    fn features(&self) -> evloop::backend::Features {
        self.inner.features()
    }
    fn add(&mut self, fd: evloop::Fd, old: Events, added: Events) -> std::io::Result<()> {
        self.inner.add(fd, old, added)
    }
    fn del(&mut self, fd: evloop::Fd, old: Events, removed: Events) -> std::io::Result<()> {
        self.inner.del(fd, old, removed)
    }
    fn dispatch(
        &mut self,
        timeout: Option<std::time::Duration>,
        ready: &mut Vec<evloop::backend::Ready>,
    ) -> std::io::Result<()> {
        self.inner.dispatch(timeout, ready)
    }
    fn now(&mut self) -> evloop::Time {
        self.inner.now()
    }
    evloop::delegate_signal_ops!(inner);
    fn socketpair(&mut self) -> std::io::Result<(evloop::Fd, evloop::Fd)> {
        self.inner.socketpair()
    }
    fn read(&mut self, fd: evloop::Fd, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(fd, buf)
    }
    fn write(&mut self, fd: evloop::Fd, buf: &[u8]) -> std::io::Result<usize> {
        if self.zero_writes {
            return Ok(0);
        }
        self.inner.write(fd, buf)
    }
    fn shutdown(&mut self, fd: evloop::Fd, how: evloop::backend::Shutdown) -> std::io::Result<()> {
        self.inner.shutdown(fd, how)
    }
    fn close(&mut self, fd: evloop::Fd) -> std::io::Result<()> {
        self.inner.close(fd)
    }
    fn listen(
        &mut self,
        addr: std::net::SocketAddr,
        opts: evloop::backend::ListenOptions,
    ) -> std::io::Result<evloop::Fd> {
        self.inner.listen(addr, opts)
    }
    fn accept(&mut self, fd: evloop::Fd) -> std::io::Result<(evloop::Fd, std::net::SocketAddr)> {
        self.inner.accept(fd)
    }
    fn connect(
        &mut self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<(evloop::Fd, evloop::backend::ConnectState)> {
        let (fd, st) = self.inner.connect(addr)?;
        self.pending.push(fd);
        Ok((fd, st))
    }
    fn take_socket_error(&mut self, fd: evloop::Fd) -> std::io::Result<Option<std::io::Error>> {
        if let Some(i) = self.pending.iter().position(|&p| p == fd) {
            self.pending.remove(i);
            return Ok(Some(std::io::Error::from_raw_os_error(115))); // EINPROGRESS
        }
        self.inner.take_socket_error(fd)
    }
    fn local_addr(&mut self, fd: evloop::Fd) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr(fd)
    }
}

/// A write wakeup of a connecting socket whose pending error is EINPROGRESS means "still
/// connecting" (`evutil_socket_finished_connecting_` returns 0): the bufferevent waits for the
/// next wakeup and then reports CONNECTED, not an error.
#[test]
fn a_connect_still_in_progress_at_a_wakeup_keeps_waiting() {
    let log = Log::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut b = Base::new(Quirks::new());
    let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
    let l = log.clone();
    bev.set_eventcb(&mut b, move |_, _, what| l.push(format!("event {what}")))
        .unwrap();
    bev.socket_connect(&mut b, addr).unwrap();
    for _ in 0..4 {
        b.run(LoopFlags::ONCE).unwrap();
        if log.len() > 0 {
            break;
        }
    }
    assert_eq!(log.joined(), "event CONNECTED");
    assert!(
        b.backend_mut().pending.is_empty(),
        "the spurious answer was given"
    );
    bev.free(&mut b).unwrap();
    drop(listener);
}

/// Output queued before a connect completes goes out once connected when writing is enabled
/// (the default), with the write callback in the same wakeup, and waits when the user disabled
/// WRITE (`bufferevent_writecb` after `evutil_socket_finished_connecting_`: no write while WRITE
/// is off).
#[test]
fn output_queued_before_connecting_follows_the_write_enable() {
    for write_enabled in [true, false] {
        let log = Log::default();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut b = base();
        let bev = BufferEvent::socket_new(&mut b, -1, BevOptions::CLOSE_ON_FREE).unwrap();
        let l = log.clone();
        bev.set_eventcb(&mut b, move |_, _, what| l.push(format!("event {what}")))
            .unwrap();
        let l = log.clone();
        bev.set_writecb(&mut b, move |_, _| l.push("written"))
            .unwrap();
        if !write_enabled {
            bev.disable(&mut b, Events::WRITE).unwrap();
        }
        bev.write(&mut b, b"queued").unwrap();
        bev.socket_connect(&mut b, listener.local_addr().unwrap())
            .unwrap();
        for _ in 0..3 {
            b.run(LoopFlags::NONBLOCK | LoopFlags::ONCE).unwrap();
        }
        // The wakeup that completes the connect and writes runs the write callback too.
        let want = if write_enabled {
            "event CONNECTED written"
        } else {
            "event CONNECTED"
        };
        assert_eq!(log.joined(), want);
        let (mut peer, _) = listener.accept().unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut got = [0u8; 16];
        let r = std::io::Read::read(&mut peer, &mut got);
        if write_enabled {
            assert_eq!(r.unwrap(), 6);
            assert_eq!(&got[..6], b"queued");
        } else {
            assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
            assert_eq!(bev.output(&b).unwrap().len(), 6);
        }
        bev.free(&mut b).unwrap();
    }
}

/// A write that returns 0 is reported as WRITING|EOF and stops writing, as
/// `bufferevent_writecb` does (libevent notes that 0 is not really an end of file).
#[test]
fn a_write_returning_zero_is_writing_eof() {
    let log = Log::default();
    let mut b = Base::new(Quirks::new());
    let (bev, s0, s1) = socket_bev(&mut b, &log);
    b.backend_mut().zero_writes = true;
    bev.write(&mut b, b"data").unwrap();
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(log.joined(), "event WRITING|EOF");
    assert!(!bev.enabled(&b).unwrap().contains(Events::WRITE));
    assert_eq!(bev.output(&b).unwrap().len(), 4);
    bev.free(&mut b).unwrap();
    b.backend_mut().close(s0).unwrap();
    b.backend_mut().close(s1).unwrap();
}
