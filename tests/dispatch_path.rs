//! The dispatch hot path (`process_queue` running a persistent callback straight out of its
//! slot, and putting it back) on every real backend: what a callback does to its own event is
//! honoured, and the callback taken out is dropped exactly when the event is gone.

use std::cell::Cell;
use std::rc::Rc;

use evloop::backend::{EpollBackend, MioBackend, PollBackend, SelectBackend};
use evloop::{Backend, Base, Events, LoopExit, LoopFlags};

/// Sets its flag when dropped (to see when a callback's captures are dropped).
struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// A persistent event without a timeout frees itself inside its callback and a new event
/// takes its slot: the old callback is dropped after it returns (not put back into the new
/// event's slot), the new one runs, and the old id is stale.
fn self_free_on_the_direct_path<B: Backend + 'static>(backend: B) {
    let mut b = Base::new(backend);
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let log = Rc::new(Cell::new(0u32));
    let (l, d) = (log.clone(), dropped.clone());
    let e = b
        .event_new(-1, Events::PERSIST, move |b, id, res| {
            let _ = &guard;
            assert_eq!(res, Events::READ);
            b.free(id).unwrap();
            assert!(!d.get(), "dropped while running");
            let l2 = l.clone();
            let n = b
                .event_new(-1, Events::PERSIST, move |_, _, _| {
                    l2.set(l2.get() * 10 + 2)
                })
                .unwrap();
            assert_eq!(n.index(), id.index(), "the slot is reused");
            b.active(n, Events::READ, 1).unwrap();
            l.set(l.get() * 10 + 1);
        })
        .unwrap();
    b.active(e, Events::READ, 1).unwrap();
    assert_eq!(b.run(LoopFlags::NONBLOCK).unwrap(), LoopExit::NoEvents);
    assert_eq!(log.get(), 12, "the freed callback once, then the new one");
    assert!(dropped.get(), "the freed callback is dropped");
    assert!(b.active(e, Events::READ, 1).is_err(), "the old id is stale");
}

/// A level-triggered persistent read event on a socketpair runs once per pass while data
/// remains, keeps its callback across passes, and stops when the callback deletes it.
fn persistent_read_event_keeps_its_callback<B: Backend + 'static>(backend: B) {
    let mut b = Base::new(backend);
    let (r, w) = b.backend_mut().socketpair().unwrap();
    assert_eq!(b.backend_mut().write(w, b"abc").unwrap(), 3);
    let got = Rc::new(Cell::new(0u32));
    let g = got.clone();
    let e = b
        .event_new(r, Events::READ | Events::PERSIST, move |b, id, res| {
            assert!(res.contains(Events::READ));
            let mut ch = [0u8; 1];
            assert_eq!(b.backend_mut().read(r, &mut ch).unwrap(), 1);
            g.set(g.get() * 10 + u32::from(ch[0] - b'a' + 1));
            if ch[0] == b'c' {
                b.del(id).unwrap();
            }
        })
        .unwrap();
    b.add(e, None).unwrap();
    for _ in 0..3 {
        assert_eq!(b.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    }
    assert_eq!(got.get(), 123, "one byte per pass, in order");
    assert_eq!(
        b.run(LoopFlags::NONBLOCK).unwrap(),
        LoopExit::NoEvents,
        "deleted from inside its callback"
    );
    b.add(e, None).unwrap();
    assert_eq!(b.backend_mut().write(w, b"d").unwrap(), 1);
    assert_eq!(b.run(LoopFlags::ONCE).unwrap(), LoopExit::Done);
    assert_eq!(got.get(), 1234, "the callback was put back after each run");
    b.free(e).unwrap();
    b.backend_mut().close(r).unwrap();
    b.backend_mut().close(w).unwrap();
}

macro_rules! on_every_backend {
    ($($name:ident => $new:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn self_free() {
                self_free_on_the_direct_path($new);
            }
            #[test]
            fn persistent_read() {
                persistent_read_event_keeps_its_callback($new);
            }
        }
    )*};
}

on_every_backend! {
    epoll => EpollBackend::new().unwrap(),
    poll => PollBackend::new().unwrap(),
    select => SelectBackend::new().unwrap(),
    mio => MioBackend::new().unwrap(),
}
