//! Descriptor 0 is an ordinary descriptor to the reactor (libevent checks `fd < 0`, not
//! `fd <= 0`): an event on it is registered and unregistered like any other. Its own test
//! binary with one test, because it closes stdin to get a socket numbered 0.

use evloop::backend::{Backend, EpollBackend};
use evloop::{Base, Events, LoopFlags};

#[test]
fn an_event_on_descriptor_zero_is_added_and_deleted() {
    let mut b = Base::new(EpollBackend::new().unwrap());
    let _ = b.backend_mut().close(0);
    let (s0, s1) = b.backend_mut().socketpair().unwrap();
    assert_eq!(s0, 0, "the lowest free descriptor");
    let hits = std::rc::Rc::new(std::cell::Cell::new(0));
    let h = hits.clone();
    let e = b
        .event_new(s0, Events::READ | Events::PERSIST, move |b, _, _| {
            let mut buf = [0u8; 8];
            let _ = b.backend_mut().read(0, &mut buf);
            h.set(h.get() + 1);
        })
        .unwrap();
    b.add(e, None).unwrap();
    // Another pending event, so that the loop still polls once `e` is deleted.
    let keep = b.timer_new(|_, _, _| {}).unwrap();
    b.add(keep, Some(std::time::Duration::from_secs(3600)))
        .unwrap();
    assert_eq!(b.backend_mut().write(s1, b"x").unwrap(), 1);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(hits.get(), 1, "registered");
    b.del(e).unwrap();
    assert_eq!(b.backend_mut().write(s1, b"y").unwrap(), 1);
    b.run(LoopFlags::NONBLOCK).unwrap();
    assert_eq!(hits.get(), 1, "unregistered");
    b.free(e).unwrap();
    b.free(keep).unwrap();
    b.backend_mut().close(s1).unwrap();
}
