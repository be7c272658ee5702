//! The mio backend against the epoll backend, on the real kernel: the same program of interest
//! changes (level-triggered and `EV_ET` mixed on one fd, READ/WRITE/CLOSED), socket operations
//! (writes, reads, drains, fills, shutdowns, closes with fd reuse) and zero-timeout dispatches
//! runs on both, and every dispatch must report the same descriptors, in the same order, with
//! the same bits. The epoll backend is native epoll with libevent's `epoll_ctl` rules (itself
//! checked against real libevent by the conformance fixtures), so this checks that mio's
//! user-space emulation of the kernel's ready list is exact, including its array size (more
//! ready descriptors than the first 32 slots) and the re-queueing of level-triggered fds.
//!
//! Every test runs both modes of the mio backend: the native one ([`MioBackend::new`] on Linux:
//! level-triggered registrations on mio's epoll instance, the kernel's own ready list) and the
//! portable one ([`MioBackend::portable`]: mio's edge-triggered registrations and the user-space
//! shadow list, the only mode on other systems).

use std::time::Duration;

use evloop::backend::{Backend, EpollBackend, MioBackend, Ready, Shutdown};
use evloop::{Events, Fd};

const R: Events = Events::READ;
const W: Events = Events::WRITE;
const C: Events = Events::CLOSED;
const ET: Events = Events::ET;
const NONE: Events = Events::NONE;

/// A small deterministic generator (the tests must replay exactly from their seed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }
}

/// One backend with its socketpairs: `ends[2 * j]` and `ends[2 * j + 1]` are pair `j`, and
/// `interest[e]` is what the core would have registered for end `e`.
struct Side<B: Backend> {
    b: B,
    ends: Vec<Fd>,
    interest: Vec<Events>,
}

impl<B: Backend> Side<B> {
    fn new(b: B, pairs: usize) -> Side<B> {
        let mut side = Side {
            b,
            ends: Vec::new(),
            interest: Vec::new(),
        };
        for _ in 0..pairs {
            let (x, y) = side.b.socketpair().expect("socketpair");
            side.ends.extend([x, y]);
            side.interest.extend([NONE, NONE]);
        }
        side
    }

    /// The reports of one zero-timeout dispatch, as (end index, bits).
    fn dispatch(&mut self) -> Vec<(usize, Events)> {
        let mut ready: Vec<Ready> = Vec::new();
        self.b
            .dispatch(Some(Duration::ZERO), &mut ready)
            .expect("dispatch");
        ready
            .iter()
            .map(|r| {
                let e = self.ends.iter().position(|&fd| fd == r.fd);
                (e.expect("a report for an fd nobody watches"), r.events)
            })
            .collect()
    }

    /// What the core does for `event_add` of an event with `bits` (plus ET) on end `e`: one
    /// backend call with the bits whose count crosses 0→1, none if there is none.
    fn add(&mut self, e: usize, bits: Events, et: bool) -> String {
        let old = self.interest[e];
        let added = bits & !old;
        if added.is_empty() {
            return "no call".into();
        }
        let flags = if et { added | ET } else { added };
        self.interest[e] |= added;
        format!(
            "{:?}",
            self.b.add(self.ends[e], old, flags).map_err(|e| e.kind())
        )
    }

    fn del(&mut self, e: usize, bits: Events, et: bool) -> String {
        let old = self.interest[e];
        let removed = bits & old;
        if removed.is_empty() {
            return "no call".into();
        }
        let flags = if et { removed | ET } else { removed };
        self.interest[e] &= !removed;
        format!(
            "{:?}",
            self.b.del(self.ends[e], old, flags).map_err(|e| e.kind())
        )
    }

    fn write(&mut self, e: usize, n: usize) -> String {
        format!(
            "{:?}",
            self.b
                .write(self.ends[e], &vec![b'x'; n])
                .map_err(|e| e.kind())
        )
    }

    fn read(&mut self, e: usize, n: usize) -> String {
        let mut buf = vec![0; n];
        format!(
            "{:?}",
            self.b.read(self.ends[e], &mut buf).map_err(|e| e.kind())
        )
    }

    /// Reads until EAGAIN or EOF; the number of bytes read.
    fn drain(&mut self, e: usize) -> String {
        let mut total = 0;
        let mut buf = [0; 4096];
        loop {
            match self.b.read(self.ends[e], &mut buf) {
                Ok(0) => return format!("{total} eof"),
                Ok(n) => total += n,
                Err(err) => return format!("{total} {:?}", err.kind()),
            }
        }
    }

    /// Writes until the socket is full (the amount is the kernel's, the same on both sides).
    fn fill(&mut self, e: usize) -> String {
        let chunk = [b'f'; 16384];
        let mut total = 0;
        loop {
            match self.b.write(self.ends[e], &chunk) {
                Ok(n) => total += n,
                Err(err) => return format!("{total} {:?}", err.kind()),
            }
        }
    }

    fn shutdown(&mut self, e: usize) -> String {
        format!(
            "{:?}",
            self.b
                .shutdown(self.ends[e], Shutdown::Write)
                .map_err(|e| e.kind())
        )
    }

    /// Closes pair `j` (after deleting what its ends watch, as the core would); [`Side::open`]
    /// then opens a new one in its place: the kernel usually hands out the same numbers again.
    fn retire(&mut self, j: usize) {
        for e in [2 * j, 2 * j + 1] {
            if self.ends[e] >= 0 {
                let all = self.interest[e];
                self.del(e, all, false);
                self.b.close(self.ends[e]).expect("close");
            }
        }
    }

    fn open(&mut self, j: usize) {
        let (x, y) = self.b.socketpair().expect("socketpair");
        self.ends[2 * j] = x;
        self.ends[2 * j + 1] = y;
    }

    /// Closes end `e` while its events are registered (the kernel drops the registration),
    /// then deletes them, as a core does when the application deletes its events after the
    /// close. The end is not used again until its pair is renewed (its number may be reused).
    fn close_registered(&mut self, e: usize) -> String {
        let closed = format!("{:?}", self.b.close(self.ends[e]).map_err(|e| e.kind()));
        let all = self.interest[e];
        let del = self.del(e, all, false);
        self.ends[e] = -1;
        format!("{closed} {del}")
    }

    fn close_all(&mut self) {
        for j in 0..self.ends.len() / 2 {
            self.retire(j);
        }
    }
}

fn random_bits(rng: &mut Lcg) -> Events {
    match rng.below(6) {
        0 | 1 => R,
        2 | 3 => W,
        4 => C,
        _ => R | W,
    }
}

/// The two modes of the mio backend, by name.
fn mio_modes() -> [(&'static str, MioBackend); 2] {
    [
        ("mio native", MioBackend::new().unwrap()),
        ("mio portable", MioBackend::portable().unwrap()),
    ]
}

#[test]
fn new_is_native_on_linux_and_portable_is_not() {
    assert_eq!(
        MioBackend::new().unwrap().is_native(),
        cfg!(any(target_os = "linux", target_os = "android"))
    );
    assert!(!MioBackend::portable().unwrap().is_native());
}

/// Runs `steps` random operations on both backends and compares every result and dispatch.
fn differential(seed: u64, pairs: usize, steps: usize) {
    for (name, b) in mio_modes() {
        differential_on(name, b, seed, pairs, steps);
    }
}

fn differential_on(name: &str, mio: MioBackend, seed: u64, pairs: usize, steps: usize) {
    let mut rng = Lcg(seed);
    let mut mio = Side::new(mio, pairs);
    let mut epoll = Side::new(EpollBackend::new().unwrap(), pairs);
    let ends = 2 * pairs as u32;
    let mut dispatches = 0;
    let mut reports = 0;
    let mut history: Vec<String> = Vec::new();
    for step in 0..steps {
        let e = rng.below(ends) as usize;
        let op = rng.below(100);
        let dead = epoll.ends[e] < 0 || epoll.ends[e ^ 1] < 0;
        // A dead end (closed) takes no operation until its pair is renewed.
        let op = if dead && op < 58 { 99 } else { op };
        let (what, a, b) = match op {
            0..=19 => {
                let (bits, et) = (random_bits(&mut rng), rng.chance(35));
                let what = format!("add {e} {bits:?} et={et}");
                (what, mio.add(e, bits, et), epoll.add(e, bits, et))
            }
            20..=29 => {
                let (bits, et) = (random_bits(&mut rng), rng.chance(35));
                let what = format!("del {e} {bits:?} et={et}");
                (what, mio.del(e, bits, et), epoll.del(e, bits, et))
            }
            30..=41 => {
                let n = 1 + rng.below(3) as usize;
                (format!("write {e} {n}"), mio.write(e, n), epoll.write(e, n))
            }
            42..=49 => {
                let n = 1 + rng.below(2) as usize;
                (format!("read {e} {n}"), mio.read(e, n), epoll.read(e, n))
            }
            50..=53 => (format!("drain {e}"), mio.drain(e), epoll.drain(e)),
            54..=55 => (format!("fill {e}"), mio.fill(e), epoll.fill(e)),
            56 => (format!("shutdown {e}"), mio.shutdown(e), epoll.shutdown(e)),
            57 => (
                format!("close {e} registered"),
                mio.close_registered(e),
                epoll.close_registered(e),
            ),
            58 | 59 => {
                let j = e / 2;
                // Both sides close before either opens: no side gets the other's old numbers
                // while it still uses them.
                mio.retire(j);
                epoll.retire(j);
                mio.open(j);
                epoll.open(j);
                (format!("renew pair {j}"), String::new(), String::new())
            }
            _ => {
                dispatches += 1;
                let (a, b) = (mio.dispatch(), epoll.dispatch());
                reports += b.len();
                ("dispatch".to_string(), format!("{a:?}"), format!("{b:?}"))
            }
        };
        history.push(format!("{step}: {what} -> {b}"));
        assert_eq!(
            a,
            b,
            "{name}, seed {seed}, step {step}: {what}: mio (left) and epoll (right) differ; interest {:?}; \
             the last steps:\n{}",
            epoll.interest,
            history[history.len().saturating_sub(40)..].join("\n")
        );
    }
    assert!(
        dispatches > steps / 4 && reports > dispatches / 4,
        "{name}, seed {seed}: the program must dispatch often and see readiness \
         ({dispatches} dispatches, {reports} reports)"
    );
    mio.close_all();
    epoll.close_all();
}

#[test]
fn mio_reports_exactly_what_epoll_reports_few_fds() {
    for seed in 1..=40 {
        differential(seed, 3, 1500);
    }
}

#[test]
fn mio_reports_exactly_what_epoll_reports_more_fds_than_the_first_array() {
    // 48 ends, many watched for WRITE and idle: waits fill the 32-slot array.
    for seed in 100..=111 {
        differential(seed, 24, 3000);
    }
}

/// Two of the divergences that random testing against libevent found, at the backend level:
/// `EV_ET` in every report, and `EPOLLET` taken from the latest change (the third, the order,
/// is `level_triggered_fds_keep_their_place`).
#[test]
fn et_from_the_latest_change_and_in_every_report() {
    for (name, b) in mio_modes() {
        et_case(name, b);
    }
    et_case("epoll", EpollBackend::new().unwrap());
}

fn et_case<B: Backend>(name: &str, b: B) {
    let mut side = Side::new(b, 3);
    // A level-triggered WRITE: reported with ET ORed in, every pass.
    side.add(0, W, false);
    assert_eq!(side.dispatch(), vec![(0, W | ET)], "{name}");
    assert_eq!(
        side.dispatch(),
        vec![(0, W | ET)],
        "{name}: level-triggered"
    );
    // READ with ET: the MOD makes the whole fd edge-triggered. The fd is queued (reported
    // last pass), so it is reported once more, then no more.
    side.add(0, R, true);
    assert_eq!(side.dispatch(), vec![(0, W | ET)], "{name}");
    assert_eq!(side.dispatch(), vec![], "{name}: edge-triggered now");
    // Deleting the ET event's READ: the MOD carries its EV_ET, so the fd stays edge-
    // triggered, and the MOD queues the writable fd again: one report.
    side.del(0, R, true);
    assert_eq!(side.dispatch(), vec![(0, W | ET)], "{name}");
    assert_eq!(side.dispatch(), vec![], "{name}");
    // A level-triggered READ added last: the whole fd is level-triggered again.
    side.add(0, R, false);
    assert_eq!(side.dispatch(), vec![(0, W | ET)], "{name}");
    assert_eq!(side.dispatch(), vec![(0, W | ET)], "{name}");
    side.close_all();
}

/// A reported level-triggered fd is queued again right after the wait: an fd that becomes ready
/// later (here by an add) comes behind it, and new data for a queued fd does not move it.
#[test]
fn level_triggered_fds_keep_their_place() {
    for (name, b) in mio_modes() {
        place_case(name, b);
    }
    place_case("epoll", EpollBackend::new().unwrap());
}

fn place_case<B: Backend>(name: &str, b: B) {
    let mut side = Side::new(b, 3);
    side.write(1, 1);
    side.write(3, 1);
    side.add(0, R, false);
    side.add(2, R, false);
    assert_eq!(side.dispatch(), vec![(0, R | ET), (2, R | ET)], "{name}");
    side.add(4, W, false);
    side.write(3, 1); // more data for end 2, which is queued already
    side.write(1, 1);
    assert_eq!(
        side.dispatch(),
        vec![(0, R | ET), (2, R | ET), (4, W | ET)],
        "{name}"
    );
    side.drain(0);
    assert_eq!(side.dispatch(), vec![(2, R | ET), (4, W | ET)], "{name}");
    side.close_all();
}
