//! Proptest strategies for whole scenarios: random programs of the scenario language that
//! print to valid `.scn` text, always terminate, and stay valid while proptest shrinks them.
//!
//! [`scenario`] draws a [`Raw`] program (plain numbers: which construct, which target, which
//! duration) and maps it onto a [`Scenario`] with a fixed naming scheme. Every number is used
//! modulo the size of what it chooses from, so any value proptest shrinks to still names
//! something declared: shrinking never produces an invalid program.
//!
//! Termination, whatever the numbers:
//! - every statement inside a callback that can cause more callbacks (`add`, `active`, `once`,
//!   writes, `raise`, …) carries a bounded call condition (`#2`, `#1..3`), so each body does a
//!   bounded amount of work however often it runs;
//! - the body of every persistent event starts with `#K.. del SELF`, so each `add` of it yields
//!   at most K calls (a level-triggered descriptor that stays ready cannot spin forever);
//! - every bufferevent read callback starts with `#K.. drain SELF`, so input left above the
//!   low watermark cannot make it run forever;
//! - every `loop` in `main` is preceded by `loopexit HORIZON` unless it is a `ONCE` loop, which
//!   ends after one pass or blocks forever (the virtual clock then ends it with rc -1);
//! - no `priority_init` from callbacks (undefined behaviour in libevent) and, in `main`, none
//!   that would shrink the queues below a priority in use.
//!
//! [`Config`] selects which feature groups are mixed (timers are always on).

use proptest::collection::vec;
use proptest::prelude::*;

use crate::names::*;
use crate::scenario::{
    Action, AddTimeout, BaseDecl, BevDecl, BevSource, CallRange, Callback, EventDecl, Ident, Item,
    LevDecl, LevSource, PrintWhat, Scenario, Source, Stmt, WriteData,
};

/// Which feature groups a generated scenario may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Base options: priorities, max_interval, max_callbacks, min_priority, base flags.
    pub base_options: bool,
    /// Socketpairs, fd events (READ/WRITE/ET/CLOSED), raw socket actions, `at` inputs.
    pub io: bool,
    /// Signal events and `raise`.
    pub signals: bool,
    /// Bufferevent pairs and socket bufferevents.
    pub bufferevents: bool,
    /// A TCP listener, clients and a connecting `socket none` bufferevent.
    pub listeners: bool,
    /// `fill` and unquoted `drain` after it (byte counts that depend on the socket buffer).
    pub fill: bool,
    /// `close` of socket ends.
    pub close: bool,
    /// At most this many events (at least 1).
    pub max_events: usize,
    /// At most this many statements per callback body.
    pub max_stmts: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config::all()
    }
}

impl Config {
    /// Everything the language has.
    pub fn all() -> Config {
        Config {
            base_options: true,
            io: true,
            signals: true,
            bufferevents: true,
            listeners: true,
            fill: true,
            close: true,
            max_events: 5,
            max_stmts: 4,
        }
    }

    /// The core event layer only: base options, timers, priorities, fd events, signals.
    pub fn core() -> Config {
        Config {
            bufferevents: false,
            listeners: false,
            ..Config::all()
        }
    }

    /// Timers, priorities and the loop only (no descriptors, no signals).
    pub fn timers() -> Config {
        Config {
            io: false,
            signals: false,
            bufferevents: false,
            listeners: false,
            fill: false,
            close: false,
            ..Config::all()
        }
    }

    /// Parses a comma-separated list of groups (`core`, `all`, `timers`, or `+io`, `-fill`,
    /// … applied to `all`): `all,-listeners`.
    pub fn parse(s: &str) -> Result<Config, String> {
        let mut c = Config::all();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "all" => c = Config::all(),
                "core" => c = Config::core(),
                "timers" => c = Config::timers(),
                _ => {
                    let (on, name) = match w.as_bytes()[0] {
                        b'-' => (false, &w[1..]),
                        b'+' => (true, &w[1..]),
                        _ => (true, w),
                    };
                    let f = match name {
                        "base" => &mut c.base_options,
                        "io" => &mut c.io,
                        "signals" => &mut c.signals,
                        "bufferevents" => &mut c.bufferevents,
                        "listeners" => &mut c.listeners,
                        "fill" => &mut c.fill,
                        "close" => &mut c.close,
                        _ => return Err(format!("unknown feature group '{name}' (all, core, timers, base, io, signals, bufferevents, listeners, fill, close)")),
                    };
                    *f = on;
                }
            }
        }
        Ok(c)
    }
}

/// One raw statement: what (`kind`), on what (`x`, `y`), with which parameters (`z`), under
/// which call condition (`cond`: low 2 bits start, next 2 bits span, bit 4 "no condition" for
/// the statements that cannot cause callbacks).
pub type RawStmt = (u8, u8, u8, u8, u8);

/// One raw event: (source kind, source target, flags, priority, how main adds it).
pub type RawEvent = (u8, u8, u8, u8, u8);

/// A raw loop in `main`: (flags, horizon, statements after the loop).
pub type RawLoop = (u8, u8, Vec<RawStmt>);

/// The numbers a scenario is built from (see the module documentation).
#[derive(Clone, Debug)]
pub struct Raw {
    /// Base: (priorities, limits, flags).
    pub base: (u8, u8, u8),
    /// Number of socketpairs (modulo 3).
    pub pairs: u8,
    /// The events.
    pub events: Vec<RawEvent>,
    /// Callback bodies, one per body name in the fixed order (events, once bodies,
    /// bufferevent and listener callbacks).
    pub bodies: Vec<Vec<RawStmt>>,
    /// Bufferevent options: (pair options, socket options, use the socket bufferevent).
    pub bevs: (u8, u8, u8),
    /// Statements of `main` before the first loop.
    pub pre: Vec<RawStmt>,
    /// The loops of `main`.
    pub loops: Vec<RawLoop>,
    /// `at` blocks: (time, statements).
    pub ats: Vec<(u8, Vec<RawStmt>)>,
}

const DURS: &[u64] = &[
    0, 1_000, 2_000, 5_000, 10_000, 10_000, 1_500, 20_000, 50_000, 100_000, 2_500, 30_000,
];
const AT_TIMES: &[u64] = &[1_000, 5_000, 10_000, 15_000, 30_000, 60_000];
const HORIZONS: &[u64] = &[200_000, 1_000_000, 50_000, 500_000];
const SIGNALS: &[i32] = &[10, 12, 1]; // SIGUSR1, SIGUSR2, SIGHUP
const WRITE_SIZES: &[u32] = &[1, 10, 100, 4096, 5000, 10_000];
const BEV_WRITE_SIZES: &[u32] = &[1, 5, 100, 4096, 10_000, 2_000];
const READ_SIZES: &[u32] = &[1, 2, 5, 64, 4096];
const STRINGS: &[&[u8]] = &[b"x", b"hello", b"ab", b"\n"];
const ONCE_BODIES: usize = 2;
const NUM_EVENT_BODIES: usize = 6;

fn pick<T: Clone>(xs: &[T], i: u8) -> T {
    xs[i as usize % xs.len()].clone()
}

/// A whole scenario drawn under `cfg`.
pub fn scenario(cfg: Config) -> impl Strategy<Value = Scenario> {
    raw(&cfg).prop_map(move |r| build(&cfg, &r))
}

fn stmt() -> impl Strategy<Value = RawStmt> {
    any::<RawStmt>()
}

/// The raw numbers (public so a fuzzer can keep the raw form next to the scenario).
pub fn raw(cfg: &Config) -> impl Strategy<Value = Raw> {
    let nbodies = NUM_EVENT_BODIES + ONCE_BODIES + 8;
    let ms = cfg.max_stmts.max(1);
    let me = cfg.max_events.clamp(1, NUM_EVENT_BODIES);
    (
        any::<(u8, u8, u8)>(),
        any::<u8>(),
        vec(any::<RawEvent>(), 1..=me),
        vec(vec(stmt(), 0..=ms), nbodies),
        any::<(u8, u8, u8)>(),
        vec(stmt(), 0..=ms + 1),
        vec((any::<u8>(), any::<u8>(), vec(stmt(), 0..=2)), 1..=2),
        vec((any::<u8>(), vec(stmt(), 1..=2)), 0..=2),
    )
        .prop_map(|(base, pairs, events, bodies, bevs, pre, loops, ats)| Raw {
            base,
            pairs,
            events,
            bodies,
            bevs,
            pre,
            loops,
            ats,
        })
}

/// What a generated program has declared, for choosing targets.
struct Ctx {
    prios: u32,
    /// Events: name, persistent.
    events: Vec<(String, bool)>,
    /// Socket ends the raw actions may use (socketpair ends, the socket bufferevent's peer).
    ends: Vec<String>,
    commons: Vec<String>,
    /// Bufferevents: name, is part of a pair.
    bevs: Vec<(String, bool)>,
    levs: Vec<String>,
    clients: Vec<String>,
    signals: Vec<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Where {
    Main,
    Callback,
    At,
}

fn id(s: &str) -> Ident {
    Ident::new(s)
}

fn event_flags_of(r: u8) -> u16 {
    let mut f = match r % 4 {
        0 => EV_READ,
        1 => EV_WRITE,
        2 => EV_READ | EV_WRITE,
        _ => EV_READ,
    };
    if r & 0x04 != 0 {
        f |= EV_PERSIST;
    }
    if r & 0x18 == 0x18 {
        f |= EV_ET;
    }
    if r & 0x60 == 0x60 {
        f |= EV_CLOSED;
    }
    if r & 0x80 != 0 && r & 0x01 != 0 {
        f |= EV_TIMEOUT;
    }
    f
}

/// Maps the raw numbers to a scenario (total: every `Raw` gives a valid, terminating program).
pub fn build(cfg: &Config, r: &Raw) -> Scenario {
    let mut items = Vec::new();
    // base
    let mut base = BaseDecl::default();
    let mut prios = 1;
    if cfg.base_options {
        let (p, lim, fl) = r.base;
        prios = 1 + u32::from(p % 4);
        if prios > 1 {
            base.priorities = Some(prios);
        }
        if lim % 8 == 1 {
            base.max_callbacks = Some(1 + u32::from(lim / 8 % 3));
            base.min_priority = Some(u32::from(lim / 32) % prios);
        } else if lim % 8 == 2 {
            base.max_interval = Some(pick(&[1_000, 5_000, 0], lim / 8));
            if lim & 0x80 != 0 {
                base.max_callbacks = Some(2);
            }
        }
        if fl % 5 == 1 {
            base.flags = BASE_NO_CACHE_TIME;
        } else if fl % 5 == 2 {
            base.flags = BASE_PRECISE_TIMER;
        }
        if base != BaseDecl::default() {
            items.push(Item::Base(base.clone()));
        }
    }
    let mut ctx = Ctx {
        prios,
        events: Vec::new(),
        ends: Vec::new(),
        commons: Vec::new(),
        bevs: Vec::new(),
        levs: Vec::new(),
        clients: Vec::new(),
        signals: Vec::new(),
    };
    if cfg.io {
        for i in 0..usize::from(1 + r.pairs % 2) {
            let (a, b) = (format!("a{i}"), format!("b{i}"));
            items.push(Item::Socketpair(id(&a), id(&b)));
            ctx.ends.push(a);
            ctx.ends.push(b);
        }
    }
    if cfg.signals {
        ctx.signals = SIGNALS[..2].to_vec();
    }
    // events
    let mut decls = Vec::new();
    let mut main_adds = Vec::new();
    for (i, &(src, tgt, fl, pr, add)) in r.events.iter().enumerate().take(NUM_EVENT_BODIES) {
        let name = format!("e{i}");
        let source_kind = src % 8;
        let (source, flags) = if cfg.io && !ctx.ends.is_empty() && (3..=6).contains(&source_kind) {
            (Source::Fd(id(&pick(&ctx.ends, tgt))), event_flags_of(fl))
        } else if cfg.io && source_kind == 7 && tgt % 4 == 0 {
            (Source::FdNone, EV_READ | (u16::from(fl & 1) * EV_PERSIST))
        } else if cfg.signals && source_kind == 7 {
            (
                Source::Signal(pick(&ctx.signals, tgt)),
                u16::from(fl & 1) * EV_PERSIST,
            )
        } else {
            (Source::Timer, u16::from(fl % 3 == 1) * EV_PERSIST)
        };
        let prio = if prios > 1 && pr % 3 != 0 {
            Some(u32::from(pr) % prios)
        } else {
            None
        };
        let persist = flags & EV_PERSIST != 0;
        let is_timer = matches!(source, Source::Timer);
        ctx.events.push((name.clone(), persist));
        decls.push(Item::Event(EventDecl {
            name: id(&name),
            source,
            flags,
            prio,
        }));
        // most events are added by main before anything else; timers need a timeout
        let a = match add % 6 {
            0 if !is_timer => Some(Action::Add(id(&name), AddTimeout::None)),
            0..=2 => Some(Action::Add(id(&name), AddTimeout::Tv(pick(DURS, add / 6)))),
            3 if !is_timer => Some(Action::Add(id(&name), AddTimeout::None)),
            4 => None,
            _ => Some(Action::Add(id(&name), AddTimeout::Tv(pick(DURS, add / 6)))),
        };
        if let Some(a) = a {
            main_adds.push(Stmt {
                cond: None,
                action: a,
            });
        }
    }
    items.extend(decls);
    if r.base.2 % 3 == 0 {
        items.push(Item::Common(id("c0"), pick(&DURS[1..], r.base.2 / 3)));
        ctx.commons.push("c0".into());
    }
    // bufferevents and listeners
    let mut bev_bodies: Vec<(String, Callback)> = Vec::new();
    if cfg.bufferevents {
        let (popt, sopt, use_sock) = r.bevs;
        let po = [0, BEV_OPT_CLOSE_ON_FREE, BEV_OPT_DEFER_CALLBACKS][usize::from(popt % 3)];
        items.push(Item::Bufferevent(BevDecl {
            name: id("p0"),
            source: BevSource::Pair(id("q0")),
            options: po,
        }));
        ctx.bevs.push(("p0".into(), true));
        ctx.bevs.push(("q0".into(), true));
        if use_sock % 2 == 0 {
            items.push(Item::Socketpair(id("sa"), id("sb")));
            // sb is the raw peer of the socket bufferevent s0; no CLOSE_ON_FREE (s0 may be
            // freed and made again on the same end)
            let so = [0, BEV_OPT_DEFER_CALLBACKS][usize::from(sopt % 2)];
            items.push(Item::Bufferevent(BevDecl {
                name: id("s0"),
                source: BevSource::Socket(id("sa")),
                options: so,
            }));
            ctx.bevs.push(("s0".into(), false));
            ctx.ends.push("sb".into());
        }
        for (b, _) in &ctx.bevs {
            for cb in [Callback::Read, Callback::Write, Callback::Event] {
                bev_bodies.push((b.clone(), cb));
            }
        }
    }
    if cfg.listeners {
        items.push(Item::Listener(LevDecl {
            name: id("l0"),
            source: LevSource::Bind(None),
            options: LEV_OPT_CLOSE_ON_FREE,
            accept: vec![id("x0"), id("x1")],
        }));
        items.push(Item::Client(id("k0")));
        items.push(Item::Client(id("k1")));
        ctx.levs.push("l0".into());
        ctx.clients.push("k0".into());
        ctx.clients.push("k1".into());
        bev_bodies.push(("l0".into(), Callback::Accept));
        if cfg.bufferevents {
            items.push(Item::Bufferevent(BevDecl {
                name: id("u0"),
                source: BevSource::SocketNone,
                options: BEV_OPT_CLOSE_ON_FREE,
            }));
            ctx.bevs.push(("u0".into(), false));
            for cb in [Callback::Read, Callback::Write, Callback::Event] {
                bev_bodies.push(("u0".into(), cb));
            }
        }
    }
    // callback bodies
    let empty = Vec::new();
    let body_of = |k: usize| r.bodies.get(k).unwrap_or(&empty);
    for (i, (name, persist)) in ctx.events.clone().iter().enumerate() {
        let raw = body_of(i);
        let mut body = Vec::new();
        if *persist {
            let k = 2 + u32::from(r.events[i].3 / 3 % 4);
            body.push(Stmt {
                cond: Some(CallRange { lo: k, hi: None }),
                action: Action::Del(id(name)),
            });
        }
        body.extend(
            raw.iter()
                .filter_map(|s| stmt_of(cfg, &ctx, s, Where::Callback)),
        );
        if !body.is_empty() {
            items.push(Item::On(id(name), body));
        }
    }
    for k in 0..ONCE_BODIES {
        let raw = body_of(NUM_EVENT_BODIES + k);
        let body: Vec<Stmt> = raw
            .iter()
            .filter_map(|s| stmt_of(cfg, &ctx, s, Where::Callback))
            .collect();
        if !body.is_empty() {
            items.push(Item::On(id(&format!("o{k}")), body));
        }
    }
    for (k, (name, cb)) in bev_bodies.iter().enumerate() {
        let raw = body_of(NUM_EVENT_BODIES + ONCE_BODIES + k);
        let mut body: Vec<Stmt> = Vec::new();
        if *cb == Callback::Read {
            // a read callback that leaves its input above the low watermark is called again and
            // again (a pair re-runs it at once): from some call on it drains everything
            body.push(Stmt {
                cond: Some(CallRange {
                    lo: 2 + u32::from(raw.first().map_or(0, |s| s.4) % 3),
                    hi: None,
                }),
                action: Action::Drain(id(name), false),
            });
        }
        body.extend(raw.iter().filter_map(|s| {
            let mut ctx2 = Where::Callback;
            if *cb == Callback::Accept {
                ctx2 = Where::Callback;
            }
            stmt_of(cfg, &ctx, s, ctx2)
        }));
        if !body.is_empty() {
            items.push(Item::OnCallback(id(name), *cb, body));
        }
    }
    // at blocks
    if cfg.io || cfg.signals || cfg.listeners {
        for (t, stmts) in &r.ats {
            let body: Vec<Stmt> = stmts
                .iter()
                .filter_map(|s| stmt_of(cfg, &ctx, s, Where::At))
                .collect();
            if !body.is_empty() {
                items.push(Item::At(pick(AT_TIMES, *t), body));
            }
        }
    }
    // main
    let mut main = main_adds;
    main.extend(
        r.pre
            .iter()
            .filter_map(|s| stmt_of(cfg, &ctx, s, Where::Main)),
    );
    for (flags, horizon, after) in &r.loops {
        let lf = match flags % 8 {
            0..=3 => 0,
            4 => EVLOOP_ONCE,
            5 => EVLOOP_ONCE | EVLOOP_NONBLOCK,
            6 => EVLOOP_NO_EXIT_ON_EMPTY,
            _ => EVLOOP_NONBLOCK,
        };
        if lf & EVLOOP_ONCE == 0 || horizon % 4 != 0 {
            main.push(Stmt {
                cond: None,
                action: Action::Loopexit(Some(pick(HORIZONS, horizon / 4))),
            });
        }
        main.push(Stmt {
            cond: None,
            action: Action::Loop(lf),
        });
        main.extend(
            after
                .iter()
                .filter_map(|s| stmt_of(cfg, &ctx, s, Where::Main)),
        );
    }
    items.push(Item::Main(main));
    // a once body needs a `once` that uses it (outside its own body); removing a body may
    // orphan another, so repeat until nothing changes
    loop {
        let used: Vec<String> = items
            .iter()
            .flat_map(|it| match it {
                Item::On(n, b) => b
                    .iter()
                    .map(move |s| (Some(n.name.clone()), s))
                    .collect::<Vec<_>>(),
                Item::OnCallback(_, _, b) | Item::At(_, b) | Item::Main(b) => {
                    b.iter().map(|s| (None, s)).collect()
                }
                _ => Vec::new(),
            })
            .filter_map(|(owner, s)| match &s.action {
                Action::Once { body, .. } if owner.as_ref() != Some(&body.name) => {
                    Some(body.name.clone())
                }
                _ => None,
            })
            .collect();
        let before = items.len();
        items.retain(|it| match it {
            Item::On(n, _) if n.name.starts_with('o') => used.contains(&n.name),
            _ => true,
        });
        if items.len() == before {
            break;
        }
    }
    Scenario { items }
}

/// The statement a raw statement stands for in context `w` (None: nothing fits).
fn stmt_of(cfg: &Config, ctx: &Ctx, s: &RawStmt, w: Where) -> Option<Stmt> {
    let &(kind, x, y, z, c) = s;
    let action = if w == Where::At {
        outside_action(cfg, ctx, kind, x, y)?
    } else {
        action_of(cfg, ctx, kind, x, y, z, w)?
    };
    let cond = if w != Where::Callback {
        None
    } else {
        let harmless = matches!(
            action,
            Action::Print(_)
                | Action::Del(_)
                | Action::RemoveTimer(_)
                | Action::Read(..)
                | Action::Drain(..)
                | Action::BevDrain(..)
                | Action::PrioritySet(..)
                | Action::Loopbreak
                | Action::Loopcontinue
                | Action::Disable(..)
        );
        if harmless && c & 0x10 != 0 {
            None
        } else {
            let lo = 1 + u32::from(c % 4);
            Some(CallRange {
                lo,
                hi: Some(lo + u32::from(c / 4 % 4)),
            })
        }
    };
    Some(Stmt { cond, action })
}

fn trig_opts(z: u8) -> u32 {
    [0, 0, 0x10000, 0x04, 0x10004][usize::from(z % 5)]
}

fn write_data(x: u8, sizes: &[u32]) -> WriteData {
    if x % 2 == 0 {
        WriteData::Bytes(pick(STRINGS, x / 2).to_vec())
    } else {
        WriteData::Fill(pick(sizes, x / 2))
    }
}

fn outside_action(cfg: &Config, ctx: &Ctx, kind: u8, x: u8, y: u8) -> Option<Action> {
    let ends = &ctx.ends;
    Some(match kind % 6 {
        0 | 1 if !ends.is_empty() => Action::Write(id(&pick(ends, x)), write_data(y, WRITE_SIZES)),
        2 if !ends.is_empty() => Action::Shutdown(id(&pick(ends, x)), i64::from(y % 3)),
        3 if cfg.close && !ends.is_empty() && y % 4 == 0 => Action::Close(id(&pick(ends, x))),
        4 if !ctx.signals.is_empty() => Action::Raise(pick(&ctx.signals, x), 1 + u32::from(y % 2)),
        5 if !ctx.clients.is_empty() && !ctx.levs.is_empty() => {
            Action::Connect(id(&pick(&ctx.clients, x)), id(&ctx.levs[0]))
        }
        _ => return None,
    })
}

fn action_of(cfg: &Config, ctx: &Ctx, kind: u8, x: u8, y: u8, z: u8, w: Where) -> Option<Action> {
    let ev = || id(&pick(&ctx.events, x).0);
    let dur = |v: u8| pick(DURS, v);
    let ends = &ctx.ends;
    let end = || id(&pick(ends, x));
    let bev = || id(&pick(&ctx.bevs, x).0);
    let rw = |v: u8| [EV_READ, EV_WRITE, EV_READ | EV_WRITE][usize::from(v % 3)];
    // kinds 0..23: the event layer; 24..39: raw sockets and signals; 40..63: bufferevents and
    // listeners (kinds of a disabled group fall back to the event layer)
    let k = kind % 64;
    let core = |k: u8| -> Option<Action> {
        Some(match k % 24 {
            0 => Action::Print(match y % 4 {
                0 | 1 => PrintWhat::Event(ev()),
                2 => PrintWhat::Counts,
                _ => {
                    if y % 8 == 3 {
                        PrintWhat::Loop
                    } else {
                        PrintWhat::Time
                    }
                }
            }),
            1..=3 => Action::Add(
                ev(),
                match y % 5 {
                    0 => AddTimeout::None,
                    4 if !ctx.commons.is_empty() => AddTimeout::Common(id(&ctx.commons[0])),
                    _ => AddTimeout::Tv(dur(z)),
                },
            ),
            4 | 5 => Action::Del(ev()),
            6 | 7 => Action::Active(
                ev(),
                [
                    EV_TIMEOUT,
                    EV_READ,
                    EV_WRITE,
                    EV_READ | EV_WRITE,
                    EV_TIMEOUT | EV_READ,
                ][usize::from(y % 5)],
                if z % 4 == 0 {
                    2 + u32::from(z / 4 % 2)
                } else {
                    1
                },
            ),
            8 => Action::PrioritySet(ev(), u32::from(y) % (ctx.prios + 1)),
            9 => Action::RemoveTimer(ev()),
            10 => Action::Free(ev()),
            11 => Action::New(ev()),
            12 | 13 => {
                let body = id(&format!("o{}", y as usize % ONCE_BODIES));
                if cfg.io && !ends.is_empty() && z % 3 == 0 {
                    Action::Once {
                        body,
                        source: Source::Fd(end()),
                        flags: [EV_READ, EV_WRITE][usize::from(z / 3 % 2)],
                        timeout: Some(dur(y / 2)),
                    }
                } else {
                    Action::Once {
                        body,
                        source: Source::Timer,
                        flags: 0,
                        timeout: if z % 5 == 1 { None } else { Some(dur(y / 2)) },
                    }
                }
            }
            14 => Action::Loopexit(if y % 3 == 0 { None } else { Some(dur(z)) }),
            15 => Action::Loopbreak,
            16 => Action::Loopcontinue,
            17 => Action::Sleep(pick(&[1_000, 2_000, 5_000, 10_000], y)),
            18 if w == Where::Callback && y % 4 == 0 => Action::Loop(0),
            // from main only, and never fewer queues than the base has (an event's priority
            // beyond the queues is undefined behaviour in libevent)
            18 if w == Where::Main && y % 4 == 1 => {
                Action::PriorityInit(ctx.prios + u32::from(z % 2))
            }
            19 => Action::Print(PrintWhat::Counts),
            20 => Action::Add(ev(), AddTimeout::Tv(0)),
            21 => Action::Active(ev(), EV_TIMEOUT, 1),
            22 => Action::Print(PrintWhat::Event(ev())),
            _ => Action::Add(ev(), AddTimeout::Tv(dur(z))),
        })
    };
    if k < 24 {
        return core(k);
    }
    if k < 40 {
        let sock = cfg.io && !ends.is_empty();
        return match k - 24 {
            0..=2 if sock => Some(Action::Write(end(), write_data(y, WRITE_SIZES))),
            3 | 4 if sock => Some(Action::Read(end(), pick(READ_SIZES, y))),
            5 if sock => Some(Action::Drain(end(), y % 2 == 0)),
            6 if sock && cfg.fill => Some(Action::Fill(end())),
            7 if sock => Some(Action::Shutdown(end(), i64::from(y % 3))),
            8 if sock && cfg.close && y % 4 == 0 => Some(Action::Close(end())),
            9..=11 if !ctx.signals.is_empty() => {
                Some(Action::Raise(pick(&ctx.signals, x), 1 + u32::from(y % 2)))
            }
            12 if sock && cfg.fill => Some(Action::Drain(end(), false)),
            _ => core(k),
        };
    }
    if ctx.bevs.is_empty() && ctx.levs.is_empty() {
        return core(k);
    }
    if ctx.bevs.is_empty() {
        return match k % 3 {
            0 => Some(Action::Enable(id(&ctx.levs[0]), 0)),
            1 => Some(Action::Disable(id(&ctx.levs[0]), 0)),
            _ => Some(Action::Connect(
                id(&pick(&ctx.clients, x)),
                id(&ctx.levs[0]),
            )),
        };
    }
    let (bname, in_pair) = pick(&ctx.bevs, x);
    let b = bev();
    Some(match k - 40 {
        0..=2 => Action::Write(b, write_data(y, BEV_WRITE_SIZES)),
        3 | 4 => Action::Read(b, pick(READ_SIZES, y)),
        5 => {
            if y % 2 == 0 {
                Action::Drain(b, false)
            } else {
                Action::BevDrain(b, pick(READ_SIZES, y / 2))
            }
        }
        6 | 7 => Action::Enable(b, rw(y)),
        8 => Action::Disable(b, rw(y)),
        9 => {
            let lo = pick(&[0, 1, 5, 100], z);
            let hi = pick(&[0, 10, 4096, 200], z / 4);
            Action::Watermark(b, rw(y), lo, if hi != 0 && hi < lo { lo } else { hi })
        }
        10 => Action::Timeouts(
            b,
            pick(&[0, 5_000, 10_000, 20_000], y),
            pick(&[0, 5_000, 15_000], z),
        ),
        11 => Action::Flush(b, rw(y), i64::from(z % 3)),
        12 => Action::Trigger(b, rw(y), trig_opts(z)),
        13 => Action::TriggerEvent(
            b,
            // READING|ERROR, EOF, WRITING|TIMEOUT, CONNECTED, WRITING|ERROR
            pick(
                &[
                    0x01 | BEV_EVENT_ERROR,
                    0x10,
                    0x02 | 0x40,
                    0x80,
                    0x02 | BEV_EVENT_ERROR,
                ],
                y,
            ),
            trig_opts(z),
        ),
        14 => Action::Setcb(b, y % 8),
        15 if y % 3 == 0 => Action::Free(b),
        16 if !in_pair => Action::New(b),
        17 => Action::Print(PrintWhat::Event(b)),
        18 if !ctx.levs.is_empty() && bname == "u0" => Action::Connect(b, id(&ctx.levs[0])),
        19 | 20 if !ctx.levs.is_empty() && !ctx.clients.is_empty() => {
            Action::Connect(id(&pick(&ctx.clients, y)), id(&ctx.levs[0]))
        }
        21 if !ctx.levs.is_empty() => {
            if y % 2 == 0 {
                Action::Enable(id(&ctx.levs[0]), 0)
            } else {
                Action::Disable(id(&ctx.levs[0]), 0)
            }
        }
        _ => return core(k),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, print};
    use proptest::test_runner::{Config as PtConfig, TestRunner};

    fn roundtrip(cfg: Config, cases: u32) {
        let mut runner = TestRunner::new(PtConfig {
            cases,
            failure_persistence: None,
            ..PtConfig::default()
        });
        runner
            .run(&raw(&cfg), |r| {
                let sc = build(&cfg, &r);
                let text = print(&sc);
                let again = parse("generated.scn", &text)
                    .map_err(|e| TestCaseError::fail(format!("{e}\n{text}\n{r:?}")))?;
                prop_assert_eq!(&again, &sc, "{}", text);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn generated_scenarios_print_to_valid_text() {
        roundtrip(Config::all(), 2000);
        roundtrip(Config::core(), 500);
        roundtrip(Config::timers(), 300);
    }
}
