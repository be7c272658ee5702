//! Dropping a `Base` closes what it owns (issue 10, defect 4): a `CLOSE_ON_FREE` socket
//! bufferevent freed but not finalized yet, live `CLOSE_ON_FREE` bufferevents and listeners.
//! Counts the process's open descriptors in /proc/self/fd before and after, on every real
//! backend. Each test holds one lock, so no other test of this binary opens descriptors meanwhile.

use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

macro_rules! drop_suite {
    ($mk:expr) => {
        use evloop::backend::Backend;
        use evloop::{Base, BevOptions, BufferEvent, Events, Listener, ListenerOptions};

        use super::{open_fds, SERIAL};

        #[test]
        fn dropping_a_base_closes_what_close_on_free_owns() {
            let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            let before = open_fds();
            {
                let mut b = Base::new($mk);
                let (s1, s2) = b.backend_mut().socketpair().unwrap();
                let (s3, s4) = b.backend_mut().socketpair().unwrap();
                // Freed, finalizer pending (the loop never ran it).
                let freed = BufferEvent::socket_new(&mut b, s1, BevOptions::CLOSE_ON_FREE).unwrap();
                freed.enable(&mut b, Events::READ).unwrap();
                freed.free(&mut b).unwrap();
                // Live, with data queued.
                let live = BufferEvent::socket_new(&mut b, s2, BevOptions::CLOSE_ON_FREE).unwrap();
                live.write(&mut b, b"pending").unwrap();
                let live2 = BufferEvent::socket_new(&mut b, s3, BevOptions::CLOSE_ON_FREE).unwrap();
                live2.enable(&mut b, Events::READ).unwrap();
                // Not owned: the caller keeps it and closes it.
                let mine = BufferEvent::socket_new(&mut b, s4, BevOptions::NONE).unwrap();
                let l = Listener::bind(
                    &mut b,
                    "127.0.0.1:0".parse().unwrap(),
                    ListenerOptions::CLOSE_ON_FREE,
                    -1,
                    None,
                )
                .unwrap();
                assert!(l.fd(&b).unwrap() >= 0);
                let _ = (live, mine);
                assert!(open_fds() >= before + 5);
                drop(b);
                // The descriptor the base did not own is still open: closing it succeeds (a
                // fresh backend's close is close(2)).
                let mut other = $mk;
                other.close(s4).expect("s4 stays open after the drop");
            }
            assert_eq!(open_fds(), before, "every owned descriptor is closed");
        }

        #[test]
        fn dropping_a_base_with_a_pending_pair_finalizer_is_clean() {
            let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
            let before = open_fds();
            {
                let mut b = Base::new($mk);
                let (p1, p2) = BufferEvent::pair_new(&mut b, BevOptions::CLOSE_ON_FREE).unwrap();
                p1.write(&mut b, b"x").unwrap();
                p1.free(&mut b).unwrap();
                let _ = p2;
            }
            assert_eq!(open_fds(), before);
        }
    };
}

mod epoll {
    drop_suite!(evloop::backend::EpollBackend::new().unwrap());
}
mod poll {
    drop_suite!(evloop::backend::PollBackend::new().unwrap());
}
mod select {
    drop_suite!(evloop::backend::SelectBackend::new().unwrap());
}
mod mio {
    drop_suite!(evloop::backend::MioBackend::new().unwrap());
}
