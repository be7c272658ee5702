//! The per-fd map's interest bookkeeping (src/evmap.rs), through the base: tests written to
//! kill mutants that `cargo mutants -f src/evmap.rs` left alive.

mod util;

macro_rules! interest_suite {
    ($mk:expr) => {
        use evloop::backend::Shutdown;
        use evloop::{Backend, Base, Events, LoopFlags};

        use crate::util::*;

        /// A CLOSED event on an fd, then a READ-only event on the same fd: adding the second
        /// must keep the fd's CLOSED interest in the backend (the interest passed as "before"
        /// includes CLOSED), so a peer's shutdown still reaches the first as C.
        #[test]
        fn adding_read_keeps_an_existing_closed_interest() {
            let log = Log::default();
            let mut b = Base::new($mk);
            let (s0, s1) = b.backend_mut().socketpair().unwrap();
            let c = logged(&mut b, &log, "c", s0, Events::CLOSED);
            let r = logged(&mut b, &log, "r", s0, Events::READ);
            b.add(c, None).unwrap();
            b.add(r, None).unwrap();
            b.backend_mut().shutdown(s1, Shutdown::Write).unwrap();
            b.run(LoopFlags::ONCE).unwrap();
            if b.features().early_close {
                assert_eq!(log.joined(), "r(R) c(C)");
            } else {
                assert_eq!(log.joined(), "r(R)");
            }
            b.free(c).unwrap();
            b.free(r).unwrap();
            b.backend_mut().close(s0).unwrap();
            b.backend_mut().close(s1).unwrap();
        }
    };
}

/// Backends whose kernel call refuses a regular file (epoll_ctl gives EPERM): a failed add must
/// leave no trace in the map, so `active_by_fd` finds no event there.
macro_rules! refused_add_suite {
    ($mk:expr) => {
        use std::os::fd::AsRawFd;

        #[test]
        fn a_refused_add_leaves_nothing_in_the_map() {
            let log = crate::util::Log::default();
            let mut b = evloop::Base::new($mk);
            let file = std::fs::File::open(env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml")
                .unwrap();
            let fd = file.as_raw_fd();
            let e = crate::util::logged(&mut b, &log, "e", fd, evloop::Events::READ);
            assert!(b.add(e, None).is_err(), "the kernel refuses a regular file");
            assert!(!b.is_pending(e).unwrap());
            b.active_by_fd(fd, evloop::Events::READ);
            b.run(evloop::LoopFlags::NONBLOCK).unwrap();
            assert_eq!(log.joined(), "", "the event was never added");
        }
    };
}

mod epoll {
    interest_suite!(evloop::backend::EpollBackend::new().unwrap());
    refused_add_suite!(evloop::backend::EpollBackend::new().unwrap());
}
mod poll {
    interest_suite!(evloop::backend::PollBackend::new().unwrap());
}
mod select {
    interest_suite!(evloop::backend::SelectBackend::new().unwrap());
}
mod mio {
    interest_suite!(evloop::backend::MioBackend::new().unwrap());
    refused_add_suite!(evloop::backend::MioBackend::new().unwrap());
}
