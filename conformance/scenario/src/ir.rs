//! The IR: a parsed scenario lowered to a flat, numbered program that both interpreters (the
//! C player and the Rust runner) execute. IR.md is the specification; this module is the only
//! producer, and [`Ir::parse`] reads the text form back.
//!
//! Text form: the first line is `evloop-ir 1`; then one instruction per line,
//! `<index> <opcode> <operand>…`, where operands are decimal integers (optionally negative) or
//! double-quoted byte strings (escapes as in [`crate::names::escape_bytes`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::names;
use crate::scenario::{
    self, Action, AddTimeout, Callback, Item, Kind, PrintWhat, Scenario, Source, Stmt, WriteData,
};

/// The first line of every IR text.
pub const IR_HEADER: &str = "evloop-ir 1";

/// One IR instruction. Directives (`Base` … `Main`) form the header; the rest is code, executed
/// only through the ranges that `Body`, `At` and `Main` give.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Instr {
    // ---- directives (header)
    /// Create the base. `max_interval` -1: not set; `max_callbacks` -1: unlimited.
    Base {
        flags: i64,
        max_interval: i64,
        max_callbacks: i64,
        min_priority: i64,
        priorities: i64,
    },
    /// Register callback body `id` (its name, code range). Bodies of events have the event's id.
    Body {
        id: i64,
        name: String,
        start: i64,
        count: i64,
    },
    /// Create a nonblocking AF_UNIX stream socketpair; ends `a` and `b`.
    Pair {
        a: i64,
        b: i64,
        name_a: String,
        name_b: String,
    },
    /// `event_new` for event `id` (= its body id). `arg`: end id or -1, or the signal number
    /// when `flags` has EV_SIGNAL. `prio` -1: keep the default priority.
    Event {
        id: i64,
        arg: i64,
        flags: i64,
        prio: i64,
    },
    /// `event_base_init_common_timeout` for common timeout `id`.
    Common {
        id: i64,
        usec: i64,
        name: String,
    },
    /// A socket end without a descriptor yet (a client, or an end for accepted connections).
    End {
        id: i64,
        name: String,
    },
    /// `bufferevent_pair_new`: bufferevents `a` and `a + 1`; `body_a`/`body_b` are the first of
    /// each one's three callback bodies (read, write, event).
    BevPair {
        a: i64,
        b: i64,
        opts: i64,
        body_a: i64,
        body_b: i64,
        name_a: String,
        name_b: String,
    },
    /// `bufferevent_socket_new` on end `end` (-1: fd -1) if `create` is 1 (else only declared,
    /// for a later `bev_new`); `body` is the first of its three callback bodies.
    BevSocket {
        id: i64,
        end: i64,
        opts: i64,
        body: i64,
        create: i64,
        name: String,
    },
    /// A listener: on end `end` with `evconnlistener_new` (backlog 0), or with `end` -1 bound to
    /// 127.0.0.1 port 0 by `evconnlistener_new_bind` with `backlog`. Accepted connections go
    /// to ends `first_end .. first_end + nends`; `body` is its accept body, `body + 1` its error
    /// body.
    Listener {
        id: i64,
        end: i64,
        opts: i64,
        backlog: i64,
        body: i64,
        first_end: i64,
        nends: i64,
        name: String,
    },
    /// An outside-input block for the virtual clock (listed in time order, then file order).
    At {
        time: i64,
        start: i64,
        count: i64,
    },
    /// The main program; always the last directive.
    Main {
        start: i64,
        count: i64,
    },
    // ---- code
    /// Skip the next `skip` instructions unless `lo <= call <= hi` (`hi` -1: no upper bound).
    IfCall {
        lo: i64,
        hi: i64,
        skip: i64,
    },
    Add {
        ev: i64,
    },
    AddTv {
        ev: i64,
        us: i64,
    },
    AddCommon {
        ev: i64,
        common: i64,
    },
    Del {
        ev: i64,
    },
    Active {
        ev: i64,
        res: i64,
        ncalls: i64,
    },
    PrioritySet {
        ev: i64,
        prio: i64,
    },
    RemoveTimer {
        ev: i64,
    },
    Once {
        body: i64,
        arg: i64,
        events: i64,
    },
    OnceTv {
        body: i64,
        arg: i64,
        events: i64,
        us: i64,
    },
    Loopexit,
    LoopexitTv {
        us: i64,
    },
    Loopbreak,
    Loopcontinue,
    Write {
        end: i64,
        data: Vec<u8>,
    },
    WriteFill {
        end: i64,
        count: i64,
    },
    Read {
        end: i64,
        max: i64,
    },
    Drain {
        end: i64,
        show: i64,
    },
    Fill {
        end: i64,
    },
    Shutdown {
        end: i64,
        how: i64,
    },
    Close {
        end: i64,
    },
    Raise {
        sig: i64,
        count: i64,
    },
    Free {
        ev: i64,
    },
    New {
        ev: i64,
    },
    PrintEvent {
        ev: i64,
    },
    PrintCounts,
    PrintLoop,
    PrintBase,
    PrintTime,
    Loop {
        flags: i64,
    },
    PriorityInit {
        n: i64,
    },
    Sleep {
        us: i64,
    },
    BevWrite {
        bev: i64,
        data: Vec<u8>,
    },
    BevWriteFill {
        bev: i64,
        count: i64,
    },
    BevRead {
        bev: i64,
        max: i64,
    },
    /// `n` -1: the whole input.
    BevDrain {
        bev: i64,
        n: i64,
    },
    BevEnable {
        bev: i64,
        flags: i64,
    },
    BevDisable {
        bev: i64,
        flags: i64,
    },
    BevWatermark {
        bev: i64,
        flags: i64,
        low: i64,
        high: i64,
    },
    BevTimeouts {
        bev: i64,
        read_us: i64,
        write_us: i64,
    },
    BevFlush {
        bev: i64,
        flags: i64,
        mode: i64,
    },
    BevFree {
        bev: i64,
    },
    BevNew {
        bev: i64,
    },
    BevConnect {
        bev: i64,
        lev: i64,
    },
    BevTrigger {
        bev: i64,
        flags: i64,
        opts: i64,
    },
    BevTriggerEvent {
        bev: i64,
        what: i64,
        opts: i64,
    },
    BevSetcb {
        bev: i64,
        bits: i64,
    },
    BevPrint {
        bev: i64,
    },
    LevEnable {
        lev: i64,
    },
    LevDisable {
        lev: i64,
    },
    LevFree {
        lev: i64,
    },
    ClientConnect {
        end: i64,
        lev: i64,
    },
}

/// An operand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A decimal integer.
    Int(i64),
    /// A quoted byte string.
    Str(Vec<u8>),
}

/// The opcodes and their operand signatures (`i` integer, `s` string), in IR.md order.
pub const OPCODES: &[(&str, &str)] = &[
    ("base", "iiiii"),
    ("body", "isii"),
    ("pair", "iiss"),
    ("event", "iiii"),
    ("common", "iis"),
    ("end", "is"),
    ("bev_pair", "iiiiiss"),
    ("bev_socket", "iiiiis"),
    ("listener", "iiiiiiis"),
    ("at", "iii"),
    ("main", "ii"),
    ("if_call", "iii"),
    ("add", "i"),
    ("add_tv", "ii"),
    ("add_common", "ii"),
    ("del", "i"),
    ("active", "iii"),
    ("priority_set", "ii"),
    ("remove_timer", "i"),
    ("once", "iii"),
    ("once_tv", "iiii"),
    ("loopexit", ""),
    ("loopexit_tv", "i"),
    ("loopbreak", ""),
    ("loopcontinue", ""),
    ("write", "is"),
    ("write_fill", "ii"),
    ("read", "ii"),
    ("drain", "ii"),
    ("fill", "i"),
    ("shutdown", "ii"),
    ("close", "i"),
    ("raise", "ii"),
    ("free", "i"),
    ("new", "i"),
    ("print_event", "i"),
    ("print_counts", ""),
    ("print_loop", ""),
    ("print_base", ""),
    ("print_time", ""),
    ("loop", "i"),
    ("priority_init", "i"),
    ("sleep", "i"),
    ("bev_write", "is"),
    ("bev_write_fill", "ii"),
    ("bev_read", "ii"),
    ("bev_drain", "ii"),
    ("bev_enable", "ii"),
    ("bev_disable", "ii"),
    ("bev_watermark", "iiii"),
    ("bev_timeouts", "iii"),
    ("bev_flush", "iii"),
    ("bev_free", "i"),
    ("bev_new", "i"),
    ("bev_connect", "ii"),
    ("bev_trigger", "iii"),
    ("bev_trigger_event", "iii"),
    ("bev_setcb", "ii"),
    ("bev_print", "i"),
    ("lev_enable", "i"),
    ("lev_disable", "i"),
    ("lev_free", "i"),
    ("client_connect", "ii"),
];

fn s(x: &str) -> Arg {
    Arg::Str(x.as_bytes().to_vec())
}

impl Instr {
    /// True for header directives.
    pub fn is_directive(&self) -> bool {
        matches!(
            self,
            Instr::Base { .. }
                | Instr::Body { .. }
                | Instr::Pair { .. }
                | Instr::Event { .. }
                | Instr::Common { .. }
                | Instr::End { .. }
                | Instr::BevPair { .. }
                | Instr::BevSocket { .. }
                | Instr::Listener { .. }
                | Instr::At { .. }
                | Instr::Main { .. }
        )
    }

    /// Opcode and operands.
    pub fn encode(&self) -> (&'static str, Vec<Arg>) {
        use Arg::Int as I;
        match self {
            Instr::Base {
                flags,
                max_interval,
                max_callbacks,
                min_priority,
                priorities,
            } => (
                "base",
                vec![
                    I(*flags),
                    I(*max_interval),
                    I(*max_callbacks),
                    I(*min_priority),
                    I(*priorities),
                ],
            ),
            Instr::Body {
                id,
                name,
                start,
                count,
            } => ("body", vec![I(*id), s(name), I(*start), I(*count)]),
            Instr::Pair {
                a,
                b,
                name_a,
                name_b,
            } => ("pair", vec![I(*a), I(*b), s(name_a), s(name_b)]),
            Instr::Event {
                id,
                arg,
                flags,
                prio,
            } => ("event", vec![I(*id), I(*arg), I(*flags), I(*prio)]),
            Instr::Common { id, usec, name } => ("common", vec![I(*id), I(*usec), s(name)]),
            Instr::At { time, start, count } => ("at", vec![I(*time), I(*start), I(*count)]),
            Instr::Main { start, count } => ("main", vec![I(*start), I(*count)]),
            Instr::IfCall { lo, hi, skip } => ("if_call", vec![I(*lo), I(*hi), I(*skip)]),
            Instr::Add { ev } => ("add", vec![I(*ev)]),
            Instr::AddTv { ev, us } => ("add_tv", vec![I(*ev), I(*us)]),
            Instr::AddCommon { ev, common } => ("add_common", vec![I(*ev), I(*common)]),
            Instr::Del { ev } => ("del", vec![I(*ev)]),
            Instr::Active { ev, res, ncalls } => ("active", vec![I(*ev), I(*res), I(*ncalls)]),
            Instr::PrioritySet { ev, prio } => ("priority_set", vec![I(*ev), I(*prio)]),
            Instr::RemoveTimer { ev } => ("remove_timer", vec![I(*ev)]),
            Instr::Once { body, arg, events } => ("once", vec![I(*body), I(*arg), I(*events)]),
            Instr::OnceTv {
                body,
                arg,
                events,
                us,
            } => ("once_tv", vec![I(*body), I(*arg), I(*events), I(*us)]),
            Instr::Loopexit => ("loopexit", vec![]),
            Instr::LoopexitTv { us } => ("loopexit_tv", vec![I(*us)]),
            Instr::Loopbreak => ("loopbreak", vec![]),
            Instr::Loopcontinue => ("loopcontinue", vec![]),
            Instr::Write { end, data } => ("write", vec![I(*end), Arg::Str(data.clone())]),
            Instr::WriteFill { end, count } => ("write_fill", vec![I(*end), I(*count)]),
            Instr::Read { end, max } => ("read", vec![I(*end), I(*max)]),
            Instr::Drain { end, show } => ("drain", vec![I(*end), I(*show)]),
            Instr::Fill { end } => ("fill", vec![I(*end)]),
            Instr::Shutdown { end, how } => ("shutdown", vec![I(*end), I(*how)]),
            Instr::Close { end } => ("close", vec![I(*end)]),
            Instr::Raise { sig, count } => ("raise", vec![I(*sig), I(*count)]),
            Instr::Free { ev } => ("free", vec![I(*ev)]),
            Instr::New { ev } => ("new", vec![I(*ev)]),
            Instr::PrintEvent { ev } => ("print_event", vec![I(*ev)]),
            Instr::PrintCounts => ("print_counts", vec![]),
            Instr::PrintLoop => ("print_loop", vec![]),
            Instr::PrintBase => ("print_base", vec![]),
            Instr::PrintTime => ("print_time", vec![]),
            Instr::Loop { flags } => ("loop", vec![I(*flags)]),
            Instr::PriorityInit { n } => ("priority_init", vec![I(*n)]),
            Instr::Sleep { us } => ("sleep", vec![I(*us)]),
            Instr::End { id, name } => ("end", vec![I(*id), s(name)]),
            Instr::BevPair {
                a,
                b,
                opts,
                body_a,
                body_b,
                name_a,
                name_b,
            } => (
                "bev_pair",
                vec![
                    I(*a),
                    I(*b),
                    I(*opts),
                    I(*body_a),
                    I(*body_b),
                    s(name_a),
                    s(name_b),
                ],
            ),
            Instr::BevSocket {
                id,
                end,
                opts,
                body,
                create,
                name,
            } => (
                "bev_socket",
                vec![I(*id), I(*end), I(*opts), I(*body), I(*create), s(name)],
            ),
            Instr::Listener {
                id,
                end,
                opts,
                backlog,
                body,
                first_end,
                nends,
                name,
            } => (
                "listener",
                vec![
                    I(*id),
                    I(*end),
                    I(*opts),
                    I(*backlog),
                    I(*body),
                    I(*first_end),
                    I(*nends),
                    s(name),
                ],
            ),
            Instr::BevWrite { bev, data } => ("bev_write", vec![I(*bev), Arg::Str(data.clone())]),
            Instr::BevWriteFill { bev, count } => ("bev_write_fill", vec![I(*bev), I(*count)]),
            Instr::BevRead { bev, max } => ("bev_read", vec![I(*bev), I(*max)]),
            Instr::BevDrain { bev, n } => ("bev_drain", vec![I(*bev), I(*n)]),
            Instr::BevEnable { bev, flags } => ("bev_enable", vec![I(*bev), I(*flags)]),
            Instr::BevDisable { bev, flags } => ("bev_disable", vec![I(*bev), I(*flags)]),
            Instr::BevWatermark {
                bev,
                flags,
                low,
                high,
            } => ("bev_watermark", vec![I(*bev), I(*flags), I(*low), I(*high)]),
            Instr::BevTimeouts {
                bev,
                read_us,
                write_us,
            } => ("bev_timeouts", vec![I(*bev), I(*read_us), I(*write_us)]),
            Instr::BevFlush { bev, flags, mode } => {
                ("bev_flush", vec![I(*bev), I(*flags), I(*mode)])
            }
            Instr::BevFree { bev } => ("bev_free", vec![I(*bev)]),
            Instr::BevNew { bev } => ("bev_new", vec![I(*bev)]),
            Instr::BevConnect { bev, lev } => ("bev_connect", vec![I(*bev), I(*lev)]),
            Instr::BevTrigger { bev, flags, opts } => {
                ("bev_trigger", vec![I(*bev), I(*flags), I(*opts)])
            }
            Instr::BevTriggerEvent { bev, what, opts } => {
                ("bev_trigger_event", vec![I(*bev), I(*what), I(*opts)])
            }
            Instr::BevSetcb { bev, bits } => ("bev_setcb", vec![I(*bev), I(*bits)]),
            Instr::BevPrint { bev } => ("bev_print", vec![I(*bev)]),
            Instr::LevEnable { lev } => ("lev_enable", vec![I(*lev)]),
            Instr::LevDisable { lev } => ("lev_disable", vec![I(*lev)]),
            Instr::LevFree { lev } => ("lev_free", vec![I(*lev)]),
            Instr::ClientConnect { end, lev } => ("client_connect", vec![I(*end), I(*lev)]),
        }
    }

    /// The inverse of [`Instr::encode`]; `args` must match the opcode's signature.
    pub fn decode(op: &str, args: &[Arg]) -> Result<Instr, String> {
        let sig = OPCODES
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, s)| *s)
            .ok_or_else(|| format!("unknown opcode '{op}'"))?;
        if sig.len() != args.len()
            || sig
                .chars()
                .zip(args)
                .any(|(c, a)| matches!((c, a), ('i', Arg::Str(_)) | ('s', Arg::Int(_))))
        {
            return Err(format!("'{op}' takes operands of kinds '{sig}'"));
        }
        let i = |k: usize| match &args[k] {
            Arg::Int(v) => *v,
            Arg::Str(_) => unreachable!(),
        };
        let st = |k: usize| -> Result<String, String> {
            match &args[k] {
                Arg::Str(b) => {
                    String::from_utf8(b.clone()).map_err(|_| "names must be UTF-8".to_string())
                }
                Arg::Int(_) => unreachable!(),
            }
        };
        Ok(match op {
            "base" => Instr::Base {
                flags: i(0),
                max_interval: i(1),
                max_callbacks: i(2),
                min_priority: i(3),
                priorities: i(4),
            },
            "body" => Instr::Body {
                id: i(0),
                name: st(1)?,
                start: i(2),
                count: i(3),
            },
            "pair" => Instr::Pair {
                a: i(0),
                b: i(1),
                name_a: st(2)?,
                name_b: st(3)?,
            },
            "event" => Instr::Event {
                id: i(0),
                arg: i(1),
                flags: i(2),
                prio: i(3),
            },
            "common" => Instr::Common {
                id: i(0),
                usec: i(1),
                name: st(2)?,
            },
            "at" => Instr::At {
                time: i(0),
                start: i(1),
                count: i(2),
            },
            "main" => Instr::Main {
                start: i(0),
                count: i(1),
            },
            "if_call" => Instr::IfCall {
                lo: i(0),
                hi: i(1),
                skip: i(2),
            },
            "add" => Instr::Add { ev: i(0) },
            "add_tv" => Instr::AddTv { ev: i(0), us: i(1) },
            "add_common" => Instr::AddCommon {
                ev: i(0),
                common: i(1),
            },
            "del" => Instr::Del { ev: i(0) },
            "active" => Instr::Active {
                ev: i(0),
                res: i(1),
                ncalls: i(2),
            },
            "priority_set" => Instr::PrioritySet {
                ev: i(0),
                prio: i(1),
            },
            "remove_timer" => Instr::RemoveTimer { ev: i(0) },
            "once" => Instr::Once {
                body: i(0),
                arg: i(1),
                events: i(2),
            },
            "once_tv" => Instr::OnceTv {
                body: i(0),
                arg: i(1),
                events: i(2),
                us: i(3),
            },
            "loopexit" => Instr::Loopexit,
            "loopexit_tv" => Instr::LoopexitTv { us: i(0) },
            "loopbreak" => Instr::Loopbreak,
            "loopcontinue" => Instr::Loopcontinue,
            "write" => Instr::Write {
                end: i(0),
                data: match &args[1] {
                    Arg::Str(b) => b.clone(),
                    Arg::Int(_) => unreachable!(),
                },
            },
            "write_fill" => Instr::WriteFill {
                end: i(0),
                count: i(1),
            },
            "read" => Instr::Read {
                end: i(0),
                max: i(1),
            },
            "drain" => Instr::Drain {
                end: i(0),
                show: i(1),
            },
            "fill" => Instr::Fill { end: i(0) },
            "shutdown" => Instr::Shutdown {
                end: i(0),
                how: i(1),
            },
            "close" => Instr::Close { end: i(0) },
            "raise" => Instr::Raise {
                sig: i(0),
                count: i(1),
            },
            "free" => Instr::Free { ev: i(0) },
            "new" => Instr::New { ev: i(0) },
            "print_event" => Instr::PrintEvent { ev: i(0) },
            "print_counts" => Instr::PrintCounts,
            "print_loop" => Instr::PrintLoop,
            "print_base" => Instr::PrintBase,
            "print_time" => Instr::PrintTime,
            "loop" => Instr::Loop { flags: i(0) },
            "priority_init" => Instr::PriorityInit { n: i(0) },
            "sleep" => Instr::Sleep { us: i(0) },
            "end" => Instr::End {
                id: i(0),
                name: st(1)?,
            },
            "bev_pair" => Instr::BevPair {
                a: i(0),
                b: i(1),
                opts: i(2),
                body_a: i(3),
                body_b: i(4),
                name_a: st(5)?,
                name_b: st(6)?,
            },
            "bev_socket" => Instr::BevSocket {
                id: i(0),
                end: i(1),
                opts: i(2),
                body: i(3),
                create: i(4),
                name: st(5)?,
            },
            "listener" => Instr::Listener {
                id: i(0),
                end: i(1),
                opts: i(2),
                backlog: i(3),
                body: i(4),
                first_end: i(5),
                nends: i(6),
                name: st(7)?,
            },
            "bev_write" => Instr::BevWrite {
                bev: i(0),
                data: match &args[1] {
                    Arg::Str(b) => b.clone(),
                    Arg::Int(_) => unreachable!(),
                },
            },
            "bev_write_fill" => Instr::BevWriteFill {
                bev: i(0),
                count: i(1),
            },
            "bev_read" => Instr::BevRead {
                bev: i(0),
                max: i(1),
            },
            "bev_drain" => Instr::BevDrain { bev: i(0), n: i(1) },
            "bev_enable" => Instr::BevEnable {
                bev: i(0),
                flags: i(1),
            },
            "bev_disable" => Instr::BevDisable {
                bev: i(0),
                flags: i(1),
            },
            "bev_watermark" => Instr::BevWatermark {
                bev: i(0),
                flags: i(1),
                low: i(2),
                high: i(3),
            },
            "bev_timeouts" => Instr::BevTimeouts {
                bev: i(0),
                read_us: i(1),
                write_us: i(2),
            },
            "bev_flush" => Instr::BevFlush {
                bev: i(0),
                flags: i(1),
                mode: i(2),
            },
            "bev_free" => Instr::BevFree { bev: i(0) },
            "bev_new" => Instr::BevNew { bev: i(0) },
            "bev_connect" => Instr::BevConnect {
                bev: i(0),
                lev: i(1),
            },
            "bev_trigger" => Instr::BevTrigger {
                bev: i(0),
                flags: i(1),
                opts: i(2),
            },
            "bev_trigger_event" => Instr::BevTriggerEvent {
                bev: i(0),
                what: i(1),
                opts: i(2),
            },
            "bev_setcb" => Instr::BevSetcb {
                bev: i(0),
                bits: i(1),
            },
            "bev_print" => Instr::BevPrint { bev: i(0) },
            "lev_enable" => Instr::LevEnable { lev: i(0) },
            "lev_disable" => Instr::LevDisable { lev: i(0) },
            "lev_free" => Instr::LevFree { lev: i(0) },
            "client_connect" => Instr::ClientConnect {
                end: i(0),
                lev: i(1),
            },
            _ => unreachable!(),
        })
    }
}

/// A lowered scenario.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Ir {
    /// The instructions; the index of each is its line number in the text form.
    pub instrs: Vec<Instr>,
}

impl Ir {
    /// The text form (IR.md).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        out.push_str(IR_HEADER);
        out.push('\n');
        for (n, ins) in self.instrs.iter().enumerate() {
            let (op, args) = ins.encode();
            let _ = write!(out, "{n} {op}");
            for a in args {
                match a {
                    Arg::Int(v) => {
                        let _ = write!(out, " {v}");
                    }
                    Arg::Str(b) => {
                        let _ = write!(out, " \"{}\"", names::escape_bytes(&b));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// Reads the text form and checks it ([`Ir::check`]).
    pub fn parse(text: &str) -> Result<Ir, String> {
        let mut lines = text.lines();
        if lines.next() != Some(IR_HEADER) {
            return Err(format!("the first line must be '{IR_HEADER}'"));
        }
        let mut instrs = Vec::new();
        for (k, line) in lines.enumerate() {
            let at = |m: String| format!("IR line {}: {m}", k + 2);
            let mut rest = line;
            let mut word = || -> Option<&str> {
                let t = rest.trim_start_matches(' ');
                let end = t.find(' ').unwrap_or(t.len());
                let (w, r) = t.split_at(end);
                rest = r;
                (!w.is_empty()).then_some(w)
            };
            let idx: usize = word()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| at("missing index".into()))?;
            if idx != k {
                return Err(at(format!("index {idx}, expected {k}")));
            }
            let op = word()
                .ok_or_else(|| at("missing opcode".into()))?
                .to_string();
            let mut args = Vec::new();
            loop {
                let t = rest.trim_start_matches(' ');
                if t.is_empty() {
                    break;
                }
                if t.starts_with('"') {
                    let (b, n) = names::unescape_quoted(t).map_err(at)?;
                    args.push(Arg::Str(b));
                    rest = &t[n..];
                } else {
                    let end = t.find(' ').unwrap_or(t.len());
                    let v: i64 = t[..end]
                        .parse()
                        .map_err(|_| at(format!("bad integer '{}'", &t[..end])))?;
                    args.push(Arg::Int(v));
                    rest = &t[end..];
                }
            }
            instrs.push(Instr::decode(&op, &args).map_err(at)?);
        }
        let ir = Ir { instrs };
        ir.check()?;
        Ok(ir)
    }

    /// Structural checks both interpreters rely on: directives first with `base` at 0 and
    /// `main` last, code ranges inside the code area, ids in range.
    pub fn check(&self) -> Result<(), String> {
        let n = self.instrs.len() as i64;
        if !matches!(self.instrs.first(), Some(Instr::Base { .. })) {
            return Err("instruction 0 must be 'base'".into());
        }
        let h = self
            .instrs
            .iter()
            .position(|i| matches!(i, Instr::Main { .. }))
            .ok_or("no 'main' directive")? as i64;
        if self.instrs[..h as usize].iter().any(|i| !i.is_directive()) {
            return Err("code before 'main'".into());
        }
        if self.instrs[h as usize + 1..]
            .iter()
            .any(|i| i.is_directive())
        {
            return Err("directive after 'main'".into());
        }
        let range = |start: i64, count: i64| -> Result<(), String> {
            if start <= h || count < 0 || start + count > n {
                Err(format!(
                    "code range {start}+{count} is outside {}..{n}",
                    h + 1
                ))
            } else {
                Ok(())
            }
        };
        let mut bodies = 0;
        let mut ends = 0;
        let mut commons = 0;
        let mut bevs = 0;
        let mut levs = 0;
        for ins in &self.instrs[..=h as usize] {
            match ins {
                Instr::Body {
                    id, start, count, ..
                } => {
                    if *id != bodies {
                        return Err(format!("body {id} out of order"));
                    }
                    bodies += 1;
                    range(*start, *count)?;
                }
                Instr::Pair { a, b, .. } => {
                    if *a != ends || *b != ends + 1 {
                        return Err("pair ends out of order".into());
                    }
                    ends += 2;
                }
                Instr::End { id, .. } => {
                    if *id != ends {
                        return Err("end out of order".into());
                    }
                    ends += 1;
                }
                Instr::BevPair { a, b, .. } => {
                    if *a != bevs || *b != bevs + 1 {
                        return Err("bufferevent pair out of order".into());
                    }
                    bevs += 2;
                }
                Instr::BevSocket { id, .. } => {
                    if *id != bevs {
                        return Err("bufferevent out of order".into());
                    }
                    bevs += 1;
                }
                Instr::Listener { id, .. } => {
                    if *id != levs {
                        return Err("listener out of order".into());
                    }
                    levs += 1;
                }
                Instr::Common { id, .. } => {
                    if *id != commons {
                        return Err("common out of order".into());
                    }
                    commons += 1;
                }
                Instr::At { start, count, .. } | Instr::Main { start, count } => {
                    range(*start, *count)?
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The number of header lines (directives, `main` included).
    pub fn header_len(&self) -> usize {
        self.instrs
            .iter()
            .position(|i| matches!(i, Instr::Main { .. }))
            .map_or(0, |p| p + 1)
    }
}

/// Lowers a validated scenario.
pub fn lower(sc: &Scenario) -> Ir {
    // ids: ends and commons in declaration order; bodies: events in declaration order, then
    // once callbacks in order of first use, then three per bufferevent (read, write, event) and
    // two per listener (accept, error), in declaration order; bufferevents (a pair gives two
    // consecutive ids) and listeners in declaration order
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    let mut bodies: Vec<String> = Vec::new();
    let mut commons: BTreeMap<String, i64> = BTreeMap::new();
    let mut bevs: BTreeMap<String, i64> = BTreeMap::new();
    let mut levs: BTreeMap<String, i64> = BTreeMap::new();
    // A set of the names already in `bodies`: a scan of `bodies` per name made lowering
    // quadratic in the number of declarations.
    let mut seen: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    let mut add_body = |name: &str, bodies: &mut Vec<String>| {
        if seen.insert(name.to_string()) {
            bodies.push(name.to_string());
        }
    };
    let mut n_setup = 0;
    for item in &sc.items {
        match item {
            Item::Socketpair(a, b) => {
                let k = ends.len() as i64;
                ends.insert(a.name.clone(), k);
                ends.insert(b.name.clone(), k + 1);
                n_setup += 1;
            }
            Item::Client(c) => {
                let k = ends.len() as i64;
                ends.insert(c.name.clone(), k);
                n_setup += 1;
            }
            Item::Listener(l) => {
                for e in &l.accept {
                    let k = ends.len() as i64;
                    ends.insert(e.name.clone(), k);
                    n_setup += 1;
                }
                let k = levs.len() as i64;
                levs.insert(l.name.name.clone(), k);
                n_setup += 1;
            }
            Item::Event(e) => {
                add_body(&e.name.name, &mut bodies);
                n_setup += 1;
            }
            Item::Common(c, _) => {
                let k = commons.len() as i64;
                commons.insert(c.name.clone(), k);
                n_setup += 1;
            }
            Item::Bufferevent(d) => {
                let k = bevs.len() as i64;
                bevs.insert(d.name.name.clone(), k);
                if let scenario::BevSource::Pair(p) = &d.source {
                    bevs.insert(p.name.clone(), k + 1);
                }
                n_setup += 1;
            }
            _ => {}
        }
    }
    for st in scenario::all_stmts(sc) {
        if let Action::Once { body, .. } = &st.action {
            add_body(&body.name, &mut bodies);
        }
    }
    let bev_list = scenario::bufferevents(sc);
    for (name, _) in &bev_list {
        for cb in [Callback::Read, Callback::Write, Callback::Event] {
            add_body(&format!("{}.{}", name.name, cb.word()), &mut bodies);
        }
    }
    for item in &sc.items {
        if let Item::Listener(l) = item {
            for cb in [Callback::Accept, Callback::Error] {
                add_body(&format!("{}.{}", l.name.name, cb.word()), &mut bodies);
            }
        }
    }
    let body_id: BTreeMap<String, i64> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| (b.clone(), i as i64))
        .collect();
    // blocks
    let mut on_blocks: BTreeMap<String, &[Stmt]> = BTreeMap::new();
    let mut at_blocks: Vec<(u64, &[Stmt])> = Vec::new();
    let mut main: &[Stmt] = &[];
    let mut base = scenario::BaseDecl::default();
    for item in &sc.items {
        match item {
            Item::On(n, b) => {
                on_blocks.insert(n.name.clone(), b);
            }
            Item::OnCallback(n, cb, b) => {
                on_blocks.insert(format!("{}.{}", n.name, cb.word()), b);
            }
            Item::At(t, b) => at_blocks.push((*t, b)),
            Item::Main(b) => main = b,
            Item::Base(b) => base = b.clone(),
            _ => {}
        }
    }
    at_blocks.sort_by_key(|(t, _)| *t); // stable: file order among equal times
    let header = 1 + bodies.len() + n_setup + at_blocks.len() + 1;
    let kinds = scenario::symbols(sc);
    let cx = Cx {
        ends: &ends,
        bodies: &body_id,
        commons: &commons,
        bevs: &bevs,
        levs: &levs,
        kinds: &kinds,
    };
    let mut code: Vec<Instr> = Vec::new();
    let emit = |stmts: &[Stmt], code: &mut Vec<Instr>| -> (i64, i64) {
        let start = (header + code.len()) as i64;
        for s in stmts {
            if let Some(c) = &s.cond {
                code.push(Instr::IfCall {
                    lo: c.lo as i64,
                    hi: c.hi.map_or(-1, |h| h as i64),
                    skip: 1,
                });
            }
            code.push(cx.action(&s.action));
        }
        (start, (header + code.len()) as i64 - start)
    };
    let main_range = emit(main, &mut code);
    let mut body_ranges = Vec::new();
    for name in &bodies {
        let stmts = on_blocks.get(name).copied().unwrap_or(&[]);
        body_ranges.push(emit(stmts, &mut code));
    }
    let mut at_ranges = Vec::new();
    for (t, stmts) in &at_blocks {
        at_ranges.push((*t, emit(stmts, &mut code)));
    }
    // header
    let mut instrs = vec![Instr::Base {
        flags: base.flags as i64,
        max_interval: base.max_interval.map_or(-1, |d| d as i64),
        max_callbacks: base.max_callbacks.map_or(-1, |n| n as i64),
        min_priority: base.min_priority.map_or(0, |n| n as i64),
        priorities: base.priorities.unwrap_or(1) as i64,
    }];
    for (i, name) in bodies.iter().enumerate() {
        let (start, count) = body_ranges[i];
        instrs.push(Instr::Body {
            id: i as i64,
            name: name.clone(),
            start,
            count,
        });
    }
    // socket ends first (events, bufferevents and listeners may name an end declared later in
    // the file), then events, common timeouts, bufferevents and listeners in declaration order
    for item in &sc.items {
        match item {
            Item::Socketpair(a, b) => instrs.push(Instr::Pair {
                a: ends[&a.name],
                b: ends[&b.name],
                name_a: a.name.clone(),
                name_b: b.name.clone(),
            }),
            Item::Client(c) => instrs.push(Instr::End {
                id: ends[&c.name],
                name: c.name.clone(),
            }),
            Item::Listener(l) => {
                for e in &l.accept {
                    instrs.push(Instr::End {
                        id: ends[&e.name],
                        name: e.name.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    let origins = scenario::end_origins(sc);
    let bev_body = |name: &str| body_id[&format!("{name}.read")];
    for item in &sc.items {
        match item {
            Item::Event(e) => {
                let (arg, extra) = cx.source(&e.source);
                instrs.push(Instr::Event {
                    id: body_id[&e.name.name],
                    arg,
                    flags: (e.flags | extra_signal(extra)) as i64,
                    prio: e.prio.map_or(-1, |p| p as i64),
                });
            }
            Item::Common(c, d) => instrs.push(Instr::Common {
                id: commons[&c.name],
                usec: *d as i64,
                name: c.name.clone(),
            }),
            Item::Bufferevent(d) => match &d.source {
                scenario::BevSource::Pair(p) => instrs.push(Instr::BevPair {
                    a: bevs[&d.name.name],
                    b: bevs[&p.name],
                    opts: d.options as i64,
                    body_a: bev_body(&d.name.name),
                    body_b: bev_body(&p.name),
                    name_a: d.name.name.clone(),
                    name_b: p.name.clone(),
                }),
                scenario::BevSource::Socket(e) => instrs.push(Instr::BevSocket {
                    id: bevs[&d.name.name],
                    end: ends[&e.name],
                    opts: d.options as i64,
                    body: bev_body(&d.name.name),
                    create: i64::from(
                        origins.get(&e.name) == Some(&scenario::EndOrigin::Socketpair),
                    ),
                    name: d.name.name.clone(),
                }),
                scenario::BevSource::SocketNone => instrs.push(Instr::BevSocket {
                    id: bevs[&d.name.name],
                    end: -1,
                    opts: d.options as i64,
                    body: bev_body(&d.name.name),
                    create: 1,
                    name: d.name.name.clone(),
                }),
            },
            Item::Listener(l) => {
                let (end, backlog) = match &l.source {
                    scenario::LevSource::Bind(b) => (-1, b.map_or(-1, i64::from)),
                    scenario::LevSource::Fd(e) => (ends[&e.name], 0),
                };
                instrs.push(Instr::Listener {
                    id: levs[&l.name.name],
                    end,
                    opts: l.options as i64,
                    backlog,
                    body: body_id[&format!("{}.accept", l.name.name)],
                    first_end: l.accept.first().map_or(-1, |e| ends[&e.name]),
                    nends: l.accept.len() as i64,
                    name: l.name.name.clone(),
                });
            }
            _ => {}
        }
    }
    for (t, (start, count)) in at_ranges {
        instrs.push(Instr::At {
            time: t as i64,
            start,
            count,
        });
    }
    instrs.push(Instr::Main {
        start: main_range.0,
        count: main_range.1,
    });
    debug_assert_eq!(instrs.len(), header);
    instrs.extend(code);
    Ir { instrs }
}

/// For event declarations only the SIGNAL bit of a source's implied flags is added (a `timer`
/// event does not get EV_TIMEOUT: `event_new(base, -1, 0, …)` is libevent's timer).
fn extra_signal(implied: u16) -> u16 {
    implied & names::EV_SIGNAL
}

struct Cx<'a> {
    ends: &'a BTreeMap<String, i64>,
    bodies: &'a BTreeMap<String, i64>,
    commons: &'a BTreeMap<String, i64>,
    bevs: &'a BTreeMap<String, i64>,
    levs: &'a BTreeMap<String, i64>,
    kinds: &'a BTreeMap<String, Kind>,
}

impl Cx<'_> {
    /// (operand, implied flags) of a source.
    fn source(&self, s: &Source) -> (i64, u16) {
        match s {
            Source::Timer => (-1, names::EV_TIMEOUT),
            Source::Fd(e) => (self.ends[&e.name], 0),
            Source::FdNone => (-1, 0),
            Source::Signal(n) => (*n as i64, names::EV_SIGNAL),
        }
    }
    fn ev(&self, id: &scenario::Ident) -> i64 {
        self.bodies[&id.name]
    }
    fn end(&self, id: &scenario::Ident) -> i64 {
        self.ends[&id.name]
    }
    fn bev(&self, id: &scenario::Ident) -> i64 {
        self.bevs[&id.name]
    }
    fn lev(&self, id: &scenario::Ident) -> i64 {
        self.levs[&id.name]
    }
    fn kind(&self, id: &scenario::Ident) -> Option<Kind> {
        self.kinds.get(&id.name).copied()
    }
    fn action(&self, a: &Action) -> Instr {
        let is_bev = |id: &scenario::Ident| self.kind(id) == Some(Kind::Bufferevent);
        let is_lev = |id: &scenario::Ident| self.kind(id) == Some(Kind::Listener);
        match a {
            Action::Add(e, AddTimeout::None) => Instr::Add { ev: self.ev(e) },
            Action::Add(e, AddTimeout::Tv(us)) => Instr::AddTv {
                ev: self.ev(e),
                us: *us as i64,
            },
            Action::Add(e, AddTimeout::Common(c)) => Instr::AddCommon {
                ev: self.ev(e),
                common: self.commons[&c.name],
            },
            Action::Del(e) => Instr::Del { ev: self.ev(e) },
            Action::Active(e, res, n) => Instr::Active {
                ev: self.ev(e),
                res: *res as i64,
                ncalls: *n as i64,
            },
            Action::PrioritySet(e, p) => Instr::PrioritySet {
                ev: self.ev(e),
                prio: *p as i64,
            },
            Action::RemoveTimer(e) => Instr::RemoveTimer { ev: self.ev(e) },
            Action::Once {
                body,
                source,
                flags,
                timeout,
            } => {
                let (arg, implied) = self.source(source);
                let events = (*flags | implied) as i64;
                let body = self.bodies[&body.name];
                match timeout {
                    None => Instr::Once { body, arg, events },
                    Some(us) => Instr::OnceTv {
                        body,
                        arg,
                        events,
                        us: *us as i64,
                    },
                }
            }
            Action::Loopexit(None) => Instr::Loopexit,
            Action::Loopexit(Some(us)) => Instr::LoopexitTv { us: *us as i64 },
            Action::Loopbreak => Instr::Loopbreak,
            Action::Loopcontinue => Instr::Loopcontinue,
            Action::Write(e, WriteData::Bytes(b)) if is_bev(e) => Instr::BevWrite {
                bev: self.bev(e),
                data: b.clone(),
            },
            Action::Write(e, WriteData::Fill(n)) if is_bev(e) => Instr::BevWriteFill {
                bev: self.bev(e),
                count: *n as i64,
            },
            Action::Write(e, WriteData::Bytes(b)) => Instr::Write {
                end: self.end(e),
                data: b.clone(),
            },
            Action::Write(e, WriteData::Fill(n)) => Instr::WriteFill {
                end: self.end(e),
                count: *n as i64,
            },
            Action::Read(e, n) if is_bev(e) => Instr::BevRead {
                bev: self.bev(e),
                max: *n as i64,
            },
            Action::Read(e, n) => Instr::Read {
                end: self.end(e),
                max: *n as i64,
            },
            Action::Drain(e, _) if is_bev(e) => Instr::BevDrain {
                bev: self.bev(e),
                n: -1,
            },
            Action::Drain(e, quiet) => Instr::Drain {
                end: self.end(e),
                show: i64::from(!quiet),
            },
            Action::BevDrain(e, n) => Instr::BevDrain {
                bev: self.bev(e),
                n: *n as i64,
            },
            Action::Fill(e) => Instr::Fill { end: self.end(e) },
            Action::Shutdown(e, how) => Instr::Shutdown {
                end: self.end(e),
                how: *how,
            },
            Action::Close(e) => Instr::Close { end: self.end(e) },
            Action::Raise(sig, n) => Instr::Raise {
                sig: *sig as i64,
                count: *n as i64,
            },
            Action::Free(e) if is_bev(e) => Instr::BevFree { bev: self.bev(e) },
            Action::Free(e) if is_lev(e) => Instr::LevFree { lev: self.lev(e) },
            Action::Free(e) => Instr::Free { ev: self.ev(e) },
            Action::New(e) if is_bev(e) => Instr::BevNew { bev: self.bev(e) },
            Action::New(e) => Instr::New { ev: self.ev(e) },
            Action::Print(PrintWhat::Event(e)) if is_bev(e) => Instr::BevPrint { bev: self.bev(e) },
            Action::Print(PrintWhat::Event(e)) => Instr::PrintEvent { ev: self.ev(e) },
            Action::Print(PrintWhat::Counts) => Instr::PrintCounts,
            Action::Print(PrintWhat::Loop) => Instr::PrintLoop,
            Action::Print(PrintWhat::Base) => Instr::PrintBase,
            Action::Print(PrintWhat::Time) => Instr::PrintTime,
            Action::Loop(f) => Instr::Loop { flags: *f as i64 },
            Action::PriorityInit(n) => Instr::PriorityInit { n: *n as i64 },
            Action::Sleep(us) => Instr::Sleep { us: *us as i64 },
            Action::Enable(x, _) if is_lev(x) => Instr::LevEnable { lev: self.lev(x) },
            Action::Enable(x, f) => Instr::BevEnable {
                bev: self.bev(x),
                flags: *f as i64,
            },
            Action::Disable(x, _) if is_lev(x) => Instr::LevDisable { lev: self.lev(x) },
            Action::Disable(x, f) => Instr::BevDisable {
                bev: self.bev(x),
                flags: *f as i64,
            },
            Action::Watermark(x, f, lo, hi) => Instr::BevWatermark {
                bev: self.bev(x),
                flags: *f as i64,
                low: *lo as i64,
                high: *hi as i64,
            },
            Action::Timeouts(x, r, w) => Instr::BevTimeouts {
                bev: self.bev(x),
                read_us: *r as i64,
                write_us: *w as i64,
            },
            Action::Flush(x, f, m) => Instr::BevFlush {
                bev: self.bev(x),
                flags: *f as i64,
                mode: *m,
            },
            Action::Connect(x, l) if is_bev(x) => Instr::BevConnect {
                bev: self.bev(x),
                lev: self.lev(l),
            },
            Action::Connect(x, l) => Instr::ClientConnect {
                end: self.end(x),
                lev: self.lev(l),
            },
            Action::Trigger(x, f, o) => Instr::BevTrigger {
                bev: self.bev(x),
                flags: *f as i64,
                opts: *o as i64,
            },
            Action::TriggerEvent(x, w, o) => Instr::BevTriggerEvent {
                bev: self.bev(x),
                what: *w as i64,
                opts: *o as i64,
            },
            Action::Setcb(x, bits) => Instr::BevSetcb {
                bev: self.bev(x),
                bits: *bits as i64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowers_and_round_trips() {
        let src = "base priorities 3 max_callbacks 2\nsocketpair a b\nevent r fd a READ|PERSIST prio 1\nevent t timer\ncommon c 20ms\non t {\n #2.. del r\n once o timer 5ms\n write b \"hi\\n\"\n}\nat 10ms { write b 3 }\nat 5ms { raise SIGUSR1 2 }\nmain {\n add r\n add t common c\n loop ONCE|NONBLOCK\n}\n";
        let sc = scenario::parse("x.scn", src).unwrap();
        let ir = lower(&sc);
        let text = ir.to_text();
        let back = Ir::parse(&text).unwrap();
        assert_eq!(back, ir);
        assert!(
            text.starts_with("evloop-ir 1\n0 base 0 -1 2 0 3\n1 body 0 \"r\""),
            "{text}"
        );
        assert!(text.contains(" at 5000 "), "{text}");
        let at5 = text.find(" at 5000 ").unwrap();
        let at10 = text.find(" at 10000 ").unwrap();
        assert!(at5 < at10);
        assert!(text.contains("if_call 2 -1 1"));
        assert!(text.contains("once_tv 2 -1 1 5000"));
    }
}
