//! `struct event_base` and `struct event_config`: a `Base<AnyBackend>` in a box, the backend
//! chosen as libevent chooses its method.

use std::cell::{Cell, UnsafeCell};
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_short, CStr};
use std::ptr;
use std::sync::Mutex;
use std::time::Duration;

use evloop::backend::{AnyBackend, EpollBackend, Features, MioBackend, PollBackend, SelectBackend};
use evloop::{Backend as _, Base, CommonTimeout, Config, Count, Events, LoopFlags, Time};

use crate::event::{event_callback_fn, CEvent};
use crate::UserArg;

/// The reactor type behind every `struct event_base *`.
pub type B = AnyBackend;

/// `struct event_base`: the evloop base and the C-side state that goes with it.
pub struct CBase {
    base: UnsafeCell<Base<B>>,
    /// The `&mut Base` of the innermost callback running now (null outside callbacks): C code
    /// called from a callback reaches the base through it, never through `base` directly.
    cur: Cell<*mut Base<B>>,
    /// `event_base_init_common_timeout`'s results: stable `timeval`s with libevent's magic.
    commons: UnsafeCell<Vec<(CommonTimeout, Box<libc::timeval>)>>,
    /// Live bufferevents and listeners, by their evloop handles (for partner lookups).
    pub(crate) bevs: UnsafeCell<BTreeMap<evloop::BufferEvent, *mut crate::bev::CBev>>,
    /// `bufferevent_get_base`/`evconnlistener_get_base` need the C pointer back.
    pub(crate) this: Cell<*mut CBase>,
}

/// Bases alive now (addresses), so that a `struct event` holding a stale base pointer is never
/// dereferenced.
static LIVE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

pub(crate) fn is_live(p: *const CBase) -> bool {
    LIVE.lock()
        .map(|v| v.contains(&crate::addr(p)))
        .unwrap_or(false)
}

/// Restores `CBase::cur` when a callback returns.
pub(crate) struct Entered<'a> {
    cb: &'a CBase,
    old: *mut Base<B>,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.cb.cur.set(self.old);
    }
}

impl CBase {
    /// Runs `f` on the base: the innermost callback's `&mut Base` if a callback is running, the
    /// boxed base otherwise.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Base<B>) -> R) -> R {
        let mut p = self.cur.get();
        if p.is_null() {
            p = self.base.get();
        }
        // SAFETY: `p` is either the base in this box, used only while no `&mut Base` derived
        // from it is live (no callback runs: `cur` is null), or the `&mut Base` a running
        // callback received, which that callback's frame does not use while C code (and so
        // this call) runs. The base is single-threaded, like a libevent base without locks.
        f(unsafe { &mut *p })
    }

    /// Marks `b` as the base C code reaches while a callback runs.
    pub(crate) fn enter(&self, b: &mut Base<B>) -> Entered<'_> {
        let old = self.cur.replace(b);
        Entered { cb: self, old }
    }

    /// True while a callback of this base runs.
    pub(crate) fn in_callback(&self) -> bool {
        !self.cur.get().is_null()
    }

    /// The handle for a common-timeout `timeval`, if `tv` is one of this base's.
    pub(crate) fn common_of(&self, tv: &libc::timeval) -> Option<CommonTimeout> {
        let usec = tv.tv_usec as u32;
        if usec & 0xf000_0000 != 0x5000_0000 {
            return None;
        }
        let idx = ((usec >> 20) & 0xff) as usize;
        // SAFETY: `commons` is only touched by this thread, and no reference into it is live.
        let commons = unsafe { &*self.commons.get() };
        commons.get(idx).map(|c| c.0)
    }
}

/// The `CBase` behind a handle, if the handle is not NULL.
///
/// # Safety
/// `p` is NULL or a pointer returned by `event_base_new*` and not yet freed.
pub(crate) unsafe fn cbase<'a>(p: *mut CBase) -> Option<&'a CBase> {
    // SAFETY: the caller's contract.
    unsafe { p.as_ref() }
}

/// `timeval` → `Duration` (negative parts count as zero).
pub(crate) fn tv_duration(tv: &libc::timeval) -> Duration {
    let s = tv.tv_sec.max(0) as u64;
    let us = tv.tv_usec.clamp(0, 999_999) as u64;
    Duration::from_secs(s) + Duration::from_micros(us)
}

/// A `timeval` at absolute monotonic `t` plus the wall-clock offset.
pub(crate) fn wall_tv(t: Time, diff_us: i64) -> libc::timeval {
    let us = t.as_micros() as i64 + diff_us;
    libc::timeval {
        tv_sec: us.div_euclid(1_000_000) as libc::time_t,
        tv_usec: us.rem_euclid(1_000_000) as libc::suseconds_t,
    }
}

/// `gettimeofday()` − monotonic now (libevent's `tv_clock_diff`), µs.
pub(crate) fn clock_diff(b: &mut Base<B>) -> i64 {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a writable timeval; the timezone may be NULL.
    unsafe { libc::gettimeofday(&mut tv, ptr::null_mut()) };
    let wall = tv.tv_sec * 1_000_000 + tv.tv_usec;
    let mono = b.backend_mut().now().as_micros() as i64;
    wall - mono
}

// ---------------------------------------------------------------------------------------------
// event_config

/// `EVENT_BASE_FLAG_IGNORE_ENV`.
const FLAG_IGNORE_ENV: c_int = 0x02;
/// `EVENT_BASE_FLAG_NO_CACHE_TIME`.
const FLAG_NO_CACHE_TIME: c_int = 0x08;
/// `EVENT_BASE_FLAG_PRECISE_TIMER`.
const FLAG_PRECISE_TIMER: c_int = 0x20;

/// `EV_FEATURE_*`.
const EV_FEATURE_ET: c_int = 0x01;
const EV_FEATURE_O1: c_int = 0x02;
const EV_FEATURE_FDS: c_int = 0x04;
const EV_FEATURE_EARLY_CLOSE: c_int = 0x08;

/// `struct event_config`.
#[derive(Default)]
pub struct CConfig {
    avoid: Vec<String>,
    require: c_int,
    flags: c_int,
    cfg: Config,
}

ffi! {
    /// `event_config_new`: an empty configuration; free it with `event_config_free`.
    fn event_config_new() -> *mut CConfig {
        Box::into_raw(Box::default())
    }
}

ffi! {
    /// `event_config_free`: frees what `event_config_new` returned.
    fn event_config_free(cfg: *mut CConfig) {
        if !cfg.is_null() {
            // SAFETY: `cfg` came from `event_config_new` (Box::into_raw) and is freed once.
            drop(unsafe { Box::from_raw(cfg) });
        }
    }
}

ffi! {
    /// `event_config_avoid_method`: never use the method called `method`.
    fn event_config_avoid_method(cfg: *mut CConfig, method: *const c_char) -> c_int {
        nonnull!(cfg, -1);
        nonnull!(method, -1);
        // SAFETY: `cfg` is a live config; `method` a NUL-terminated string (libevent's contract).
        let (cfg, m) = unsafe { (&mut *cfg, CStr::from_ptr(method)) };
        cfg.avoid.push(m.to_string_lossy().into_owned());
        0
    }
}

ffi! {
    /// `event_config_require_features`: only methods with all of `features` (`EV_FEATURE_*`).
    fn event_config_require_features(cfg: *mut CConfig, features: c_int) -> c_int {
        nonnull!(cfg, -1);
        // SAFETY: `cfg` is a live config.
        unsafe { (*cfg).require = features };
        0
    }
}

ffi! {
    /// `event_config_set_flag`: ORs in an `EVENT_BASE_FLAG_*`.
    fn event_config_set_flag(cfg: *mut CConfig, flag: c_int) -> c_int {
        nonnull!(cfg, -1);
        // SAFETY: `cfg` is a live config.
        unsafe { (*cfg).flags |= flag };
        0
    }
}

ffi! {
    /// `event_config_set_num_cpus_hint`: accepted and ignored (no IOCP).
    fn event_config_set_num_cpus_hint(cfg: *mut CConfig, _cpus: c_int) -> c_int {
        nonnull!(cfg, -1);
        0
    }
}

ffi! {
    /// `event_config_set_max_dispatch_interval`: `tv` NULL means no time limit, a negative
    /// `max_callbacks` no count limit, a negative `min_priority` 0.
    fn event_config_set_max_dispatch_interval(
        cfg: *mut CConfig,
        tv: *const libc::timeval,
        max_callbacks: c_int,
        min_priority: c_int,
    ) -> c_int {
        nonnull!(cfg, -1);
        // SAFETY: `cfg` is a live config; `tv` is NULL or a readable timeval.
        let (cfg, tv) = unsafe { (&mut *cfg, tv.as_ref()) };
        cfg.cfg.max_dispatch_interval = tv.map(tv_duration);
        cfg.cfg.max_dispatch_callbacks = (max_callbacks >= 0).then_some(max_callbacks as u32);
        cfg.cfg.limit_callbacks_after_prio = min_priority.max(0) as u32;
        0
    }
}

fn features_bits(f: Features) -> c_int {
    let mut r = 0;
    if f.edge_triggered {
        r |= EV_FEATURE_ET;
    }
    if f.o1 {
        r |= EV_FEATURE_O1;
    }
    if f.fds {
        r |= EV_FEATURE_FDS;
    }
    if f.early_close {
        r |= EV_FEATURE_EARLY_CLOSE;
    }
    r
}

/// The features libevent's method `name` has (before opening it).
fn method_features(name: &str) -> c_int {
    match name {
        "epoll" => EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_EARLY_CLOSE,
        "mio" => EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_EARLY_CLOSE,
        _ => EV_FEATURE_FDS,
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn open(name: &str, precise: bool) -> std::io::Result<AnyBackend> {
    Ok(match name {
        "epoll" if precise => AnyBackend::Epoll(EpollBackend::with_precise_timer()?),
        "epoll" => AnyBackend::Epoll(EpollBackend::new()?),
        "poll" => AnyBackend::Poll(PollBackend::new()?),
        "select" => AnyBackend::Select(SelectBackend::new()?),
        _ => AnyBackend::Mio(MioBackend::new()?),
    })
}

/// libevent's `event_base_new_with_config` method choice: epoll, poll, select in order,
/// skipping avoided methods, those lacking required features and (unless IGNORE_ENV) those
/// named by `EVENT_NO<METHOD>`. `EVLOOP_BACKEND=mio` (or any method name) puts that method
/// first.
fn new_base(cfg: &CConfig) -> *mut CBase {
    let ignore_env = cfg.flags & FLAG_IGNORE_ENV != 0;
    let precise =
        cfg.flags & FLAG_PRECISE_TIMER != 0 || (!ignore_env && env_set("EVENT_PRECISE_TIMER"));
    let mut order: Vec<&str> = vec!["epoll", "poll", "select"];
    if let Ok(pref) = std::env::var("EVLOOP_BACKEND") {
        if let Some(m) = ["epoll", "poll", "select", "mio"]
            .into_iter()
            .find(|m| *m == pref)
        {
            order.retain(|x| *x != m);
            order.insert(0, m);
        }
    }
    for name in order {
        if cfg.avoid.iter().any(|a| a == name) {
            continue;
        }
        if method_features(name) & cfg.require != cfg.require {
            continue;
        }
        if !ignore_env && env_set(&format!("EVENT_NO{}", name.to_ascii_uppercase())) {
            continue;
        }
        let Ok(backend) = open(name, precise) else {
            continue;
        };
        let mut c = cfg.cfg.clone();
        c.no_cache_time = cfg.flags & FLAG_NO_CACHE_TIME != 0;
        c.precise_timer = precise;
        if !ignore_env && env_set("EVENT_SHOW_METHOD") {
            crate::log_msg(&format!("libevent using: {name}"));
        }
        let cb = Box::new(CBase {
            base: UnsafeCell::new(Base::with_config(backend, &c)),
            cur: Cell::new(ptr::null_mut()),
            commons: UnsafeCell::new(Vec::new()),
            bevs: UnsafeCell::new(BTreeMap::new()),
            this: Cell::new(ptr::null_mut()),
        });
        let p = Box::into_raw(cb);
        // SAFETY: `p` was just made from a Box.
        unsafe { (*p).this.set(p) };
        if let Ok(mut v) = LIVE.lock() {
            v.push(crate::addr(p));
        }
        return p;
    }
    crate::log_warn("No event method available (evloop: every method was excluded)");
    ptr::null_mut()
}

ffi! {
    /// `event_base_new`: a base on the first available method; free it with `event_base_free`.
    fn event_base_new() -> *mut CBase {
        new_base(&CConfig::default())
    }
}

ffi! {
    /// `event_base_new_with_config`: a base as `cfg` asks (NULL: defaults); NULL if no method
    /// qualifies.
    fn event_base_new_with_config(cfg: *const CConfig) -> *mut CBase {
        // SAFETY: `cfg` is NULL or a live config.
        match unsafe { cfg.as_ref() } {
            Some(c) => new_base(c),
            None => new_base(&CConfig::default()),
        }
    }
}

/// Frees a base (shared by `event_base_free` and `event_base_free_nofinalize`).
fn free_base(p: *mut CBase) {
    // SAFETY: `p` is NULL or a live base (the caller's contract).
    let Some(cb) = (unsafe { cbase(p) }) else {
        return;
    };
    if cb.in_callback() {
        crate::log_warn("event_base_free: called from a callback of the base; not freed");
        return;
    }
    if let Ok(mut v) = LIVE.lock() {
        v.retain(|x| *x != crate::addr(p));
    }
    // Bufferevent and listener wrappers still live are released with the base.
    // SAFETY: no callback runs, so nothing else borrows the maps.
    let bevs = std::mem::take(unsafe { &mut *cb.bevs.get() });
    for (_, b) in bevs {
        // SAFETY: every pointer in the map came from Box::into_raw and is freed only here or
        // in bufferevent_free, which removes it from the map first.
        drop(unsafe { Box::from_raw(b) });
    }
    crate::listener::free_all(p);
    crate::event::forget_base(p);
    // SAFETY: `p` came from Box::into_raw in new_base and is freed once.
    drop(unsafe { Box::from_raw(p) });
}

ffi! {
    /// `event_base_free`: frees the base. Events still assigned to it must not be used after.
    fn event_base_free(base: *mut CBase) {
        free_base(base)
    }
}

ffi! {
    /// `event_base_free_nofinalize`: as `event_base_free` (evloop runs no finalizers at free).
    fn event_base_free_nofinalize(base: *mut CBase) {
        free_base(base)
    }
}

ffi! {
    /// `event_reinit`: nothing to do after fork for evloop's backends; 0.
    fn event_reinit(base: *mut CBase) -> c_int {
        nonnull!(base, -1);
        0
    }
}

/// `EVLOOP_ONCE|NONBLOCK|NO_EXIT_ON_EMPTY` → evloop's flags.
fn loop_flags(flags: c_int) -> LoopFlags {
    let mut f = LoopFlags::NONE;
    for (bit, lf) in [
        (1, LoopFlags::ONCE),
        (2, LoopFlags::NONBLOCK),
        (4, LoopFlags::NO_EXIT_ON_EMPTY),
    ] {
        if flags & bit != 0 {
            f = f | lf;
        }
    }
    f
}

/// Runs the loop; libevent's return values (0, 1, or -1 on error or reentry).
fn run_loop(p: *mut CBase, flags: c_int) -> c_int {
    // SAFETY: `p` is NULL or a live base.
    let Some(cb) = (unsafe { cbase(p) }) else {
        return -1;
    };
    let r = cb.with(|b| b.run(loop_flags(flags)));
    match r {
        Ok(exit) => exit.code(),
        Err(evloop::Error::Reentrant) => {
            crate::log_warn("event_base_loop: reentrant invocation.  Only one event_base_loop can run on each event_base at once.");
            -1
        }
        Err(_) => -1,
    }
}

ffi! {
    /// `event_base_loop`: runs the loop with `EVLOOP_*` flags; 0, 1 (no events) or -1.
    fn event_base_loop(base: *mut CBase, flags: c_int) -> c_int {
        run_loop(base, flags)
    }
}

ffi! {
    /// `event_base_dispatch`: `event_base_loop(base, 0)`.
    fn event_base_dispatch(base: *mut CBase) -> c_int {
        run_loop(base, 0)
    }
}

ffi! {
    /// `event_base_loopexit`: stop after `tv` (NULL: after this iteration's callbacks).
    fn event_base_loopexit(base: *mut CBase, tv: *const libc::timeval) -> c_int {
        // SAFETY: `base` is NULL or live; `tv` NULL or readable.
        let (Some(cb), tv) = (unsafe { (cbase(base), tv.as_ref()) }) else {
            return -1;
        };
        match cb.with(|b| b.loopexit(tv.map(tv_duration))) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }
}

ffi! {
    /// `event_base_loopbreak`: stop after the current callback.
    fn event_base_loopbreak(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.loopbreak());
        0
    }
}

ffi! {
    /// `event_base_loopcontinue`: start a new iteration after the current callback.
    fn event_base_loopcontinue(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.loopcontinue());
        0
    }
}

ffi! {
    /// `event_base_got_exit`.
    fn event_base_got_exit(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.got_exit()) as c_int
    }
}

ffi! {
    /// `event_base_got_break`.
    fn event_base_got_break(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.got_break()) as c_int
    }
}

ffi! {
    /// `event_base_priority_init`: `npriorities` queues; -1 while callbacks are active or out
    /// of range.
    fn event_base_priority_init(base: *mut CBase, npriorities: c_int) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        if npriorities < 1 {
            return -1;
        }
        match cb.with(|b| b.priority_init(npriorities as usize)) {
            Ok(()) => 0,
            Err(_) => -1,
        }
    }
}

ffi! {
    /// `event_base_get_npriorities`.
    fn event_base_get_npriorities(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.npriorities()) as c_int
    }
}

/// NUL-terminated method names, for `event_base_get_method`.
fn method_cstr(name: &str) -> *const c_char {
    let s: &'static CStr = match name {
        "epoll" => c"epoll",
        "poll" => c"poll",
        "select" => c"select",
        _ => c"mio",
    };
    s.as_ptr()
}

ffi! {
    /// `event_base_get_method`: `"epoll"`, `"poll"`, `"select"` (or `"mio"`); a static string.
    fn event_base_get_method(base: *const CBase) -> *const c_char {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { base.as_ref() }) else {
            return ptr::null();
        };
        cb.with(|b| method_cstr(b.method()))
    }
}

ffi! {
    /// `event_base_get_features`: `EV_FEATURE_*` of the method.
    fn event_base_get_features(base: *const CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { base.as_ref() }) else {
            return 0;
        };
        cb.with(|b| features_bits(b.features()))
    }
}

struct Methods([*const c_char; 4]);
// SAFETY: the array holds pointers to immutable static C strings only.
unsafe impl Sync for Methods {}
static METHODS: Methods = Methods([
    c"epoll".as_ptr(),
    c"poll".as_ptr(),
    c"select".as_ptr(),
    ptr::null(),
]);

ffi! {
    /// `event_get_supported_methods`: a static NULL-terminated array.
    fn event_get_supported_methods() -> *const *const c_char {
        METHODS.0.as_ptr()
    }
}

ffi! {
    /// `event_get_version`.
    fn event_get_version() -> *const c_char {
        c"2.1.12-stable".as_ptr()
    }
}

ffi! {
    /// `event_get_version_number`: `LIBEVENT_VERSION_NUMBER` of 2.1.12-stable.
    fn event_get_version_number() -> u32 {
        0x0201_0c00
    }
}

ffi! {
    /// `event_base_gettimeofday_cached`: the cached time (wall clock), or the current time
    /// outside callbacks.
    fn event_base_gettimeofday_cached(base: *mut CBase, tv: *mut libc::timeval) -> c_int {
        nonnull!(tv, -1);
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            // SAFETY: `tv` is writable.
            return unsafe { libc::gettimeofday(tv, ptr::null_mut()) };
        };
        let t = cb.with(|b| {
            let now = b.now();
            wall_tv(now, clock_diff(b))
        });
        // SAFETY: `tv` is writable.
        unsafe { *tv = t };
        0
    }
}

ffi! {
    /// `event_gettime_monotonic`: the base's monotonic clock now (not the cache): libevent's
    /// default `CLOCK_MONOTONIC_COARSE`, or `CLOCK_MONOTONIC` for a base made with
    /// `EVENT_BASE_FLAG_PRECISE_TIMER`. -1 if `base` or `tv` is NULL.
    fn event_gettime_monotonic(base: *mut CBase, tv: *mut libc::timeval) -> c_int {
        nonnull!(tv, -1);
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        let t = cb.with(|b| wall_tv(b.backend_mut().now(), 0));
        // SAFETY: `tv` is writable.
        unsafe { *tv = t };
        0
    }
}

ffi! {
    /// `event_base_update_cache_time`.
    fn event_base_update_cache_time(base: *mut CBase) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return -1;
        };
        cb.with(|b| b.update_cache_time());
        0
    }
}

fn counts(which: c_int) -> [(c_int, Count); 3] {
    let _ = which;
    [(1, Count::Active), (2, Count::Virtual), (4, Count::Added)]
}

ffi! {
    /// `event_base_get_num_events`: the sum over `EVENT_BASE_COUNT_ACTIVE|VIRTUAL|ADDED`.
    fn event_base_get_num_events(base: *mut CBase, flags: c_int) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return 0;
        };
        cb.with(|b| {
            counts(flags)
                .iter()
                .filter(|(bit, _)| flags & bit != 0)
                .map(|(_, c)| b.num_events(*c))
                .sum::<usize>() as c_int
        })
    }
}

ffi! {
    /// `event_base_get_max_events`: the sum of the maxima; `clear` resets them.
    fn event_base_get_max_events(base: *mut CBase, flags: c_int, clear: c_int) -> c_int {
        // SAFETY: `base` is NULL or live.
        let Some(cb) = (unsafe { cbase(base) }) else {
            return 0;
        };
        cb.with(|b| {
            counts(flags)
                .iter()
                .filter(|(bit, _)| flags & bit != 0)
                .map(|(_, c)| b.max_events(*c, clear != 0))
                .sum::<usize>() as c_int
        })
    }
}

ffi! {
    /// `event_base_init_common_timeout`: a `timeval` owned by the base (valid until it is
    /// freed) that `event_add` recognises as the common timeout of `duration`.
    fn event_base_init_common_timeout(
        base: *mut CBase,
        duration: *const libc::timeval,
    ) -> *const libc::timeval {
        // SAFETY: `base` is NULL or live; `duration` NULL or readable.
        let (Some(cb), Some(d)) = (unsafe { (cbase(base), duration.as_ref()) }) else {
            return ptr::null();
        };
        if cb.common_of(d).is_some() {
            // Already a common timeout: libevent returns it as is when it is this base's.
            return duration;
        }
        let Ok(ct) = cb.with(|b| b.init_common_timeout(tv_duration(d))) else {
            return ptr::null();
        };
        // SAFETY: single-threaded; no reference into `commons` is live.
        let commons = unsafe { &mut *cb.commons.get() };
        if let Some(c) = commons.iter().find(|c| c.0 == ct) {
            return &*c.1;
        }
        let tv = Box::new(libc::timeval {
            tv_sec: ct.duration().as_secs() as libc::time_t,
            tv_usec: ct.magic_usec() as libc::suseconds_t,
        });
        let p: *const libc::timeval = &*tv;
        commons.push((ct, tv));
        p
    }
}

ffi! {
    /// `event_base_once`: a one-shot event; its memory is evloop's. -1 for signals, persistent
    /// events, or no timeout and no I/O.
    fn event_base_once(
        base: *mut CBase,
        fd: c_int,
        events: c_short,
        cb: event_callback_fn,
        arg: UserArg,
        tv: *const libc::timeval,
    ) -> c_int {
        // SAFETY: `base` is NULL or live; `tv` NULL or readable.
        let (Some(c), tv) = (unsafe { (cbase(base), tv.as_ref()) }) else {
            return -1;
        };
        let Some(f) = cb else {
            return -1;
        };
        let this = c as *const CBase;
        let r = c.with(|b| {
            b.once(
                fd,
                Events::from_bits(events as u16),
                tv.map(tv_duration),
                move |b, what| {
                    // SAFETY: the base outlives its callbacks (freeing a base from a callback is
                    // refused).
                    let c = unsafe { &*this };
                    let _g = c.enter(b);
                    // SAFETY: the user's callback, called as libevent calls it.
                    unsafe { f(fd, what.bits() as c_short, arg) }
                },
            )
        });
        if r.is_ok() {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `event_base_active_by_fd`.
    fn event_base_active_by_fd(base: *mut CBase, fd: c_int, events: c_short) {
        // SAFETY: `base` is NULL or live.
        if let Some(c) = unsafe { cbase(base) } {
            c.with(|b| b.active_by_fd(fd, Events::from_bits(events as u16)));
        }
    }
}

ffi! {
    /// `event_base_active_by_signal`.
    fn event_base_active_by_signal(base: *mut CBase, sig: c_int) {
        // SAFETY: `base` is NULL or live.
        if let Some(c) = unsafe { cbase(base) } {
            c.with(|b| b.active_by_signal(sig));
        }
    }
}

ffi! {
    /// `event_base_get_running_event`: not tracked by evloop; NULL.
    fn event_base_get_running_event(_base: *mut CBase) -> *mut CEvent {
        ptr::null_mut()
    }
}

// ---------------------------------------------------------------------------------------------
// The deprecated global-base API (event_init, event_dispatch, …)

static CURRENT: Mutex<usize> = Mutex::new(0);

pub(crate) fn current_base() -> *mut CBase {
    CURRENT
        .lock()
        .map(|g| *g as *mut CBase)
        .unwrap_or(ptr::null_mut())
}

ffi! {
    /// `event_init`: `event_base_new`, remembered as the current base of the old API.
    fn event_init() -> *mut CBase {
        let b = new_base(&CConfig::default());
        if let Ok(mut g) = CURRENT.lock() {
            *g = crate::addr(b);
        }
        b
    }
}

ffi! {
    /// `event_dispatch`: `event_base_dispatch` on the current base.
    fn event_dispatch() -> c_int {
        run_loop(current_base(), 0)
    }
}

ffi! {
    /// `event_loop`: `event_base_loop` on the current base.
    fn event_loop(flags: c_int) -> c_int {
        run_loop(current_base(), flags)
    }
}

ffi! {
    /// `event_loopexit`: `event_base_loopexit` on the current base.
    fn event_loopexit(tv: *const libc::timeval) -> c_int {
        // SAFETY: forwards the caller's pointers.
        unsafe { event_base_loopexit(current_base(), tv) }
    }
}

ffi! {
    /// `event_loopbreak`: `event_base_loopbreak` on the current base.
    fn event_loopbreak() -> c_int {
        // SAFETY: the current base is NULL or live.
        unsafe { event_base_loopbreak(current_base()) }
    }
}

ffi! {
    /// `event_get_method`: the current base's method.
    fn event_get_method() -> *const c_char {
        // SAFETY: the current base is NULL or live.
        unsafe { event_base_get_method(current_base()) }
    }
}

ffi! {
    /// `event_priority_init`: `event_base_priority_init` on the current base.
    fn event_priority_init(n: c_int) -> c_int {
        // SAFETY: the current base is NULL or live.
        unsafe { event_base_priority_init(current_base(), n) }
    }
}

ffi! {
    /// `event_once`: `event_base_once` on the current base.
    fn event_once(
        fd: c_int,
        events: c_short,
        cb: event_callback_fn,
        arg: UserArg,
        tv: *const libc::timeval,
    ) -> c_int {
        // SAFETY: forwards the caller's pointers.
        unsafe { event_base_once(current_base(), fd, events, cb, arg, tv) }
    }
}

/// libevent's `event_fatal_cb`.
pub type event_fatal_cb = Option<unsafe extern "C" fn(c_int)>;

ffi! {
    /// `event_set_fatal_callback`: accepted; evloop never calls it (its fatal errors are
    /// panics, which abort with a message naming the function).
    fn event_set_fatal_callback(_cb: event_fatal_cb) {}
}

ffi! {
    /// `event_enable_debug_mode`: accepted; evloop's handles are always checked (a stale or
    /// foreign `struct event` is refused, not used).
    fn event_enable_debug_mode() {}
}

ffi! {
    /// `event_disable_debug_mode`: accepted (see `event_enable_debug_mode`).
    fn event_disable_debug_mode() {}
}

ffi! {
    /// `event_enable_debug_logging`: accepted; evloop has no debug log.
    fn event_enable_debug_logging(_which: u32) {}
}

ffi! {
    /// `libevent_global_shutdown`: evloop keeps no global state that needs freeing; no-op.
    fn libevent_global_shutdown() {}
}
