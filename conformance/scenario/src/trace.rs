//! Trace lines (TRACE.md, format v1), formatted exactly as the C player prints them.
//!
//! A trace is the header line [`HEADER`] followed by one line per observable event:
//! `<virtual µs since start> <kind> <fields…>`. The Rust runner builds [`Line`]s and prints
//! them with [`Line::render`]; `player/player.c` prints the same bytes.

use crate::names::{self, errno_name, escape_bytes, signal_name, what_letters};

/// The first line of every trace.
pub const HEADER: &str = "# evloop-trace v1";

/// Reads of at most this many bytes show the bytes; longer reads show only the count.
pub const READ_SHOW_MAX: usize = 64;

/// The timeout argument of an add or once line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TvArg<'a> {
    /// NULL.
    Null,
    /// A timeval in µs.
    Tv(i64),
    /// A common timeout, by name.
    Common(&'a str),
}

impl TvArg<'_> {
    fn suffix(&self) -> String {
        match self {
            TvArg::Null => String::new(),
            TvArg::Tv(us) => format!(" tv={us}"),
            TvArg::Common(c) => format!(" common={c}"),
        }
    }
}

/// The outcome of a syscall-like action: `Ok(value)` or `Err(errno)`.
pub type SysResult = Result<i64, i32>;

/// One trace line (without its time).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Line<'a> {
    /// Setup of a common timeout: `common NAME idx=K` (K from the magic timeval).
    Common { name: &'a str, idx: i64 },
    /// A callback invocation: `cb NAME #N WHAT`.
    Cb { name: &'a str, call: u64, what: u16 },
    /// `add EV [tv=US|common=C] rc=R`.
    Add { ev: &'a str, tv: TvArg<'a>, rc: i32 },
    /// `del EV rc=R`.
    Del { ev: &'a str, rc: i32 },
    /// `active EV RES ncalls=N`.
    Active { ev: &'a str, res: u16, ncalls: i64 },
    /// `priority_set EV P rc=R`.
    PrioritySet { ev: &'a str, prio: i64, rc: i32 },
    /// `remove_timer EV rc=R`.
    RemoveTimer { ev: &'a str, rc: i32 },
    /// `once NAME EVENTS [tv=US] rc=R`.
    Once {
        name: &'a str,
        events: u16,
        tv: TvArg<'a>,
        rc: i32,
    },
    /// `loopexit [tv=US] rc=R`.
    Loopexit { tv: TvArg<'a>, rc: i32 },
    /// `loopbreak rc=R`.
    Loopbreak { rc: i32 },
    /// `loopcontinue rc=R`.
    Loopcontinue { rc: i32 },
    /// `write END n=K` or `write END err=E`.
    Write { end: &'a str, res: SysResult },
    /// `read END n=K "BYTES"`, `read END n=K` (K > 64), `read END eof`, `read END err=E`.
    Read {
        end: &'a str,
        res: Result<&'a [u8], i32>,
    },
    /// `drain END n=K eof` or `drain END n=K err=E` (E is the error that stopped it, usually
    /// EAGAIN); with `n: None` (quiet) the `n=K ` part is left out.
    Drain {
        end: &'a str,
        n: Option<u64>,
        stop: Option<i32>,
    },
    /// `fill END err=E`: writes until an error (normally EAGAIN); the byte count is not shown.
    Fill { end: &'a str, stop: i32 },
    /// `shutdown END rd|wr|rdwr rc=0` or `… err=E`.
    Shutdown {
        end: &'a str,
        how: i64,
        res: SysResult,
    },
    /// `close END rc=0` or `close END err=E`.
    Close { end: &'a str, res: SysResult },
    /// `raise SIG count=N`.
    Raise { sig: i32, count: i64 },
    /// `free EV`.
    Free { ev: &'a str },
    /// `new EV rc=R` (R: event_priority_set's result, 0 without `prio`).
    New { ev: &'a str, rc: i32 },
    /// `pending EV FLAGS deadline=US|-|? prio=P` (`?`: the event had no timeout since its
    /// `event_new`, libevent's `ev_timeout` is then uninitialized: `Some(None)`).
    Pending {
        ev: &'a str,
        flags: u16,
        deadline: Option<Option<i64>>,
        prio: i64,
    },
    /// `counts added=N active=N`.
    Counts { added: i64, active: i64 },
    /// `got exit=0|1 break=0|1`.
    Got { exit: bool, brk: bool },
    /// `base method=M features=F priorities=N`.
    Base {
        method: &'a str,
        features: u32,
        priorities: i64,
    },
    /// `time cached=US`.
    Time { cached: i64 },
    /// `loop flags=FLAGS`.
    Loop { flags: u32 },
    /// `loop-end rc=R`.
    LoopEnd { rc: i32 },
    /// `priority_init N rc=R`.
    PriorityInit { n: i64, rc: i32 },
    /// `sleep US`.
    Sleep { us: i64 },
    /// An operation on an event that is not live (freed): `OP EV dead`.
    Dead { op: &'a str, ev: &'a str },
    /// `new EV live`: `new` on an event that exists.
    Live { ev: &'a str },
    /// A bufferevent callback: `cb X.read #N in=I out=O`, `cb X.write #N in=I out=O`,
    /// `cb X.event #N WHAT [err=E] in=I out=O` (WHAT in `BEV_EVENT_*` words; `err=` only with
    /// ERROR; `err=?` (`err` negative) when the error came from `trigger_event`, whose errno
    /// is whatever the last syscall left). `name` is the body name (`X.read`).
    BevCb {
        name: &'a str,
        call: u64,
        what: Option<u16>,
        err: Option<i32>,
        input: usize,
        output: usize,
    },
    /// A listener's accept callback: `cb L.accept #N END` (`-`: no end left; the connection is
    /// closed).
    AcceptCb {
        name: &'a str,
        call: u64,
        end: Option<&'a str>,
    },
    /// A listener's error callback: `cb L.error #N err=E`.
    ErrorCb { name: &'a str, call: u64, err: i32 },
    /// `write X n=K rc=R in=I out=O` (bufferevent_write; the lengths after the call).
    BevWrite {
        bev: &'a str,
        n: usize,
        rc: i32,
        input: usize,
        output: usize,
    },
    /// `read X n=K ["BYTES"] in=I out=O` (bufferevent_read; bytes shown for 1 to 64).
    BevRead {
        bev: &'a str,
        data: &'a [u8],
        input: usize,
        output: usize,
    },
    /// `drain X n=K rc=R in=I out=O` (evbuffer_drain of the input; K as asked).
    BevDrain {
        bev: &'a str,
        n: usize,
        rc: i32,
        input: usize,
        output: usize,
    },
    /// `enable X FLAGS rc=R` / `disable X FLAGS rc=R`.
    BevEnable {
        bev: &'a str,
        disable: bool,
        flags: u16,
        rc: i32,
    },
    /// `watermark X FLAGS LOW HIGH`.
    BevWatermark {
        bev: &'a str,
        flags: u16,
        low: i64,
        high: i64,
    },
    /// `timeouts X read=US write=US rc=R` (0: none).
    BevTimeouts {
        bev: &'a str,
        read: i64,
        write: i64,
        rc: i32,
    },
    /// `flush X FLAGS MODE rc=R`.
    BevFlush {
        bev: &'a str,
        flags: u16,
        mode: i64,
        rc: i32,
    },
    /// `connect X L rc=R` (bufferevent_socket_connect to listener L's address).
    BevConnect { bev: &'a str, lev: &'a str, rc: i32 },
    /// `connect C L rc=0` / `connect C L err=E` (a client end connects to listener L).
    ClientConnect {
        end: &'a str,
        lev: &'a str,
        res: SysResult,
    },
    /// `trigger X FLAGS[ OPTS]`.
    BevTrigger { bev: &'a str, flags: u16, opts: u32 },
    /// `trigger_event X WHAT[ OPTS]`.
    BevTriggerEvent { bev: &'a str, what: u16, opts: u32 },
    /// `setcb X read|write|event` (`none` for no callback).
    BevSetcb { bev: &'a str, bits: u8 },
    /// `bev X in=I out=O enabled=FLAGS read_wm=L,H write_wm=L,H[ partner=Y|-]`.
    BevState {
        bev: &'a str,
        input: usize,
        output: usize,
        enabled: u16,
        wm_read: (usize, usize),
        wm_write: (usize, usize),
        partner: Option<Option<&'a str>>,
    },
    /// `enable L rc=R` / `disable L rc=R` (a listener).
    LevEnable {
        lev: &'a str,
        disable: bool,
        rc: i32,
    },
    /// The virtual clock found an infinite wait with nothing ready and nothing scheduled.
    BlockedForever,
    /// The main program finished.
    End,
}

fn sys(res: &SysResult) -> String {
    match res {
        Ok(_) => "rc=0".into(),
        Err(e) => format!("err={}", errno_name(*e)),
    }
}

impl Line<'_> {
    /// The text after the time (no newline).
    pub fn text(&self) -> String {
        match self {
            Line::Common { name, idx } => format!("common {name} idx={idx}"),
            Line::Cb { name, call, what } => format!("cb {name} #{call} {}", what_letters(*what)),
            Line::Add { ev, tv, rc } => format!("add {ev}{} rc={rc}", tv.suffix()),
            Line::Del { ev, rc } => format!("del {ev} rc={rc}"),
            Line::Active { ev, res, ncalls } => {
                format!("active {ev} {} ncalls={ncalls}", what_letters(*res))
            }
            Line::PrioritySet { ev, prio, rc } => format!("priority_set {ev} {prio} rc={rc}"),
            Line::RemoveTimer { ev, rc } => format!("remove_timer {ev} rc={rc}"),
            Line::Once {
                name,
                events,
                tv,
                rc,
            } => {
                format!(
                    "once {name} {}{} rc={rc}",
                    what_letters(*events),
                    tv.suffix()
                )
            }
            Line::Loopexit { tv, rc } => format!("loopexit{} rc={rc}", tv.suffix()),
            Line::Loopbreak { rc } => format!("loopbreak rc={rc}"),
            Line::Loopcontinue { rc } => format!("loopcontinue rc={rc}"),
            Line::Write { end, res } => match res {
                Ok(n) => format!("write {end} n={n}"),
                Err(e) => format!("write {end} err={}", errno_name(*e)),
            },
            Line::Read { end, res } => match res {
                Ok([]) => format!("read {end} eof"),
                Ok(b) if b.len() <= READ_SHOW_MAX => {
                    format!("read {end} n={} \"{}\"", b.len(), escape_bytes(b))
                }
                Ok(b) => format!("read {end} n={}", b.len()),
                Err(e) => format!("read {end} err={}", errno_name(*e)),
            },
            Line::Drain { end, n, stop } => {
                let count = n.map_or(String::new(), |n| format!(" n={n}"));
                match stop {
                    None => format!("drain {end}{count} eof"),
                    Some(e) => format!("drain {end}{count} err={}", errno_name(*e)),
                }
            }
            Line::Fill { end, stop } => format!("fill {end} err={}", errno_name(*stop)),
            Line::Shutdown { end, how, res } => {
                let h = names::SHUTDOWN_HOW
                    .iter()
                    .find(|(_, v)| v == how)
                    .map_or("?", |(n, _)| n);
                format!("shutdown {end} {h} {}", sys(res))
            }
            Line::Close { end, res } => format!("close {end} {}", sys(res)),
            Line::Raise { sig, count } => format!("raise {} count={count}", signal_name(*sig)),
            Line::Free { ev } => format!("free {ev}"),
            Line::New { ev, rc } => format!("new {ev} rc={rc}"),
            Line::Pending {
                ev,
                flags,
                deadline,
                prio,
            } => {
                let d = match deadline {
                    None => "-".to_string(),
                    Some(None) => "?".to_string(),
                    Some(Some(d)) => d.to_string(),
                };
                format!(
                    "pending {ev} {} deadline={d} prio={prio}",
                    what_letters(*flags)
                )
            }
            Line::Counts { added, active } => format!("counts added={added} active={active}"),
            Line::Got { exit, brk } => format!("got exit={} break={}", *exit as u8, *brk as u8),
            Line::Base {
                method,
                features,
                priorities,
            } => format!(
                "base method={method} features={} priorities={priorities}",
                names::join_flags(names::FEATURES, *features, "0")
            ),
            Line::Time { cached } => format!("time cached={cached}"),
            Line::Loop { flags } => format!(
                "loop flags={}",
                names::join_flags(names::LOOP_FLAGS, *flags, "0")
            ),
            Line::LoopEnd { rc } => format!("loop-end rc={rc}"),
            Line::PriorityInit { n, rc } => format!("priority_init {n} rc={rc}"),
            Line::Sleep { us } => format!("sleep {us}"),
            Line::Dead { op, ev } => format!("{op} {ev} dead"),
            Line::Live { ev } => format!("new {ev} live"),
            Line::BevCb {
                name,
                call,
                what,
                err,
                input,
                output,
            } => {
                let mut t = format!("cb {name} #{call}");
                if let Some(w) = what {
                    t.push(' ');
                    t.push_str(&names::bev_what_words(*w));
                }
                match err {
                    Some(e) if *e < 0 => t.push_str(" err=?"),
                    Some(e) => t.push_str(&format!(" err={}", errno_name(*e))),
                    None => {}
                }
                t.push_str(&format!(" in={input} out={output}"));
                t
            }
            Line::AcceptCb { name, call, end } => {
                format!("cb {name} #{call} {}", end.unwrap_or("-"))
            }
            Line::ErrorCb { name, call, err } => {
                format!("cb {name} #{call} err={}", errno_name(*err))
            }
            Line::BevWrite {
                bev,
                n,
                rc,
                input,
                output,
            } => format!("write {bev} n={n} rc={rc} in={input} out={output}"),
            Line::BevRead {
                bev,
                data,
                input,
                output,
            } => {
                if !data.is_empty() && data.len() <= READ_SHOW_MAX {
                    format!(
                        "read {bev} n={} \"{}\" in={input} out={output}",
                        data.len(),
                        escape_bytes(data)
                    )
                } else {
                    format!("read {bev} n={} in={input} out={output}", data.len())
                }
            }
            Line::BevDrain {
                bev,
                n,
                rc,
                input,
                output,
            } => format!("drain {bev} n={n} rc={rc} in={input} out={output}"),
            Line::BevEnable {
                bev,
                disable,
                flags,
                rc,
            } => format!(
                "{} {bev} {} rc={rc}",
                if *disable { "disable" } else { "enable" },
                what_letters(*flags)
            ),
            Line::BevWatermark {
                bev,
                flags,
                low,
                high,
            } => format!("watermark {bev} {} {low} {high}", what_letters(*flags)),
            Line::BevTimeouts {
                bev,
                read,
                write,
                rc,
            } => format!("timeouts {bev} read={read} write={write} rc={rc}"),
            Line::BevFlush {
                bev,
                flags,
                mode,
                rc,
            } => format!(
                "flush {bev} {} {} rc={rc}",
                what_letters(*flags),
                names::FLUSH_MODES
                    .iter()
                    .find(|(_, v)| v == mode)
                    .map_or("?", |(n, _)| n)
            ),
            Line::BevConnect { bev, lev, rc } => format!("connect {bev} {lev} rc={rc}"),
            Line::ClientConnect { end, lev, res } => format!("connect {end} {lev} {}", sys(res)),
            Line::BevTrigger { bev, flags, opts } => {
                let mut t = format!("trigger {bev} {}", what_letters(*flags));
                if *opts != 0 {
                    t.push(' ');
                    t.push_str(&names::join_flags(names::TRIGGER_OPTIONS, *opts, "0"));
                }
                t
            }
            Line::BevTriggerEvent { bev, what, opts } => {
                let mut t = format!("trigger_event {bev} {}", names::bev_what_words(*what));
                if *opts != 0 {
                    t.push(' ');
                    t.push_str(&names::join_flags(names::TRIGGER_OPTIONS, *opts, "0"));
                }
                t
            }
            Line::BevSetcb { bev, bits } => {
                let w: Vec<&str> = names::SETCB_BITS
                    .iter()
                    .filter(|(_, b)| bits & b != 0)
                    .map(|(n, _)| *n)
                    .collect();
                format!(
                    "setcb {bev} {}",
                    if w.is_empty() {
                        "none".to_string()
                    } else {
                        w.join("|")
                    }
                )
            }
            Line::BevState {
                bev,
                input,
                output,
                enabled,
                wm_read,
                wm_write,
                partner,
            } => {
                let mut t = format!(
                    "bev {bev} in={input} out={output} enabled={} read_wm={},{} write_wm={},{}",
                    what_letters(*enabled),
                    wm_read.0,
                    wm_read.1,
                    wm_write.0,
                    wm_write.1
                );
                if let Some(p) = partner {
                    t.push_str(&format!(" partner={}", p.unwrap_or("-")));
                }
                t
            }
            Line::LevEnable { lev, disable, rc } => format!(
                "{} {lev} rc={rc}",
                if *disable { "disable" } else { "enable" }
            ),
            Line::BlockedForever => "blocked-forever".into(),
            Line::End => "end".into(),
        }
    }

    /// The full line: `<time> [input ]<text>` (no newline). `input` marks lines printed by an
    /// `at` block performed by the virtual clock.
    pub fn render(&self, time_us: i64, input: bool) -> String {
        format!(
            "{time_us} {}{}",
            if input { "input " } else { "" },
            self.text()
        )
    }
}

/// Window markers (select only; NONDETERMINISM.md). They carry no time and are never compared.
pub const WINDOW_PREFIX: &str = "~";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        assert_eq!(
            Line::Cb {
                name: "t",
                call: 2,
                what: 0x03
            }
            .render(100000, false),
            "100000 cb t #2 TR"
        );
        assert_eq!(
            Line::Add {
                ev: "t",
                tv: TvArg::Tv(5),
                rc: 0
            }
            .render(0, false),
            "0 add t tv=5 rc=0"
        );
        assert_eq!(
            Line::Write {
                end: "a",
                res: Ok(3)
            }
            .render(7, true),
            "7 input write a n=3"
        );
        assert_eq!(
            Line::Read {
                end: "a",
                res: Ok(b"x\n")
            }
            .text(),
            "read a n=2 \"x\\n\""
        );
        assert_eq!(
            Line::Read {
                end: "a",
                res: Err(11)
            }
            .text(),
            "read a err=EAGAIN"
        );
        assert_eq!(
            Line::Loop { flags: 5 }.text(),
            "loop flags=ONCE|NO_EXIT_ON_EMPTY"
        );
        assert_eq!(
            Line::Pending {
                ev: "e",
                flags: 0x03,
                deadline: None,
                prio: 1
            }
            .text(),
            "pending e TR deadline=- prio=1"
        );
    }
}
