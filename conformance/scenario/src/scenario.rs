//! The scenario language: AST, parser (errors as `file:line:column: message`) and printer.
//!
//! SCENARIOS.md is the user documentation; the grammar is repeated at the top of
//! [`Parser`]. The printer writes the canonical form: `parse(print(ast)) == ast` holds for every
//! AST (positions are carried in [`Ident`] but ignored by equality).

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::names;

/// A position in a scenario file (1-based line and column, columns count characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

/// A parse or validation error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The file name as given to the parser.
    pub file: String,
    /// Where the problem is.
    pub pos: Pos,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.msg
        )
    }
}

impl std::error::Error for Error {}

/// A name with the position it was written at; equality ignores the position.
#[derive(Clone, Debug, Default)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it was written (default for generated ASTs).
    pub pos: Pos,
}

impl Ident {
    /// A name without a position.
    pub fn new(name: &str) -> Ident {
        Ident {
            name: name.to_string(),
            pos: Pos::default(),
        }
    }
}

impl PartialEq for Ident {
    fn eq(&self, other: &Ident) -> bool {
        self.name == other.name
    }
}
impl Eq for Ident {}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A duration in microseconds.
pub type Micros = u64;

/// A whole scenario: its items in file order (setup runs in this order).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Scenario {
    /// The items, in file order.
    pub items: Vec<Item>,
}

/// One top-level item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// `base …` (at most one, first).
    Base(BaseDecl),
    /// `socketpair A B`.
    Socketpair(Ident, Ident),
    /// `event NAME SOURCE [FLAGS] [prio N]`.
    Event(EventDecl),
    /// `common NAME DURATION`.
    Common(Ident, Micros),
    /// `on NAME { … }`: the callback body of an event or of a once-event.
    On(Ident, Vec<Stmt>),
    /// `on NAME.CALLBACK { … }`: a callback body of a bufferevent (read, write, event) or a
    /// listener (accept, error).
    OnCallback(Ident, Callback, Vec<Stmt>),
    /// `bufferevent NAME pair NAME [OPTS]` / `bufferevent NAME socket END|none [OPTS]`.
    Bufferevent(BevDecl),
    /// `listener NAME bind [OPTS] [backlog N] [accept END…]` /
    /// `listener NAME fd END [OPTS] [accept END…]`.
    Listener(LevDecl),
    /// `client NAME`: a TCP socket end, connected by `connect NAME LISTENER`.
    Client(Ident),
    /// `at TIME { … }`: outside inputs performed by the virtual clock.
    At(Micros, Vec<Stmt>),
    /// `main { … }` (exactly one).
    Main(Vec<Stmt>),
}

/// The base declaration.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BaseDecl {
    /// `priorities N` (event_base_priority_init right after creation).
    pub priorities: Option<u32>,
    /// `max_interval D` (event_config_set_max_dispatch_interval).
    pub max_interval: Option<Micros>,
    /// `max_callbacks N`.
    pub max_callbacks: Option<u32>,
    /// `min_priority N`.
    pub min_priority: Option<u32>,
    /// `flags NO_CACHE_TIME|PRECISE_TIMER` (libevent values).
    pub flags: u32,
}

/// Where an event (or a once-event) gets its fd from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `timer`: fd -1 (flags may add PERSIST).
    Timer,
    /// `fd END`: a socketpair end.
    Fd(Ident),
    /// `fd none`: fd -1 with I/O flags (never fires for I/O).
    FdNone,
    /// `signal SIGNAME`.
    Signal(i32),
}

/// An event declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventDecl {
    /// Its name (also the name of its callback body).
    pub name: Ident,
    /// What it watches.
    pub source: Source,
    /// Flags as written (SIGNAL is implied for signal sources and not stored here).
    pub flags: u16,
    /// `prio N`: event_priority_set after creation.
    pub prio: Option<u32>,
}

/// A callback of a bufferevent or listener (`on NAME.CALLBACK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Callback {
    /// A bufferevent's read callback.
    Read,
    /// A bufferevent's write callback.
    Write,
    /// A bufferevent's event callback.
    Event,
    /// A listener's accept callback.
    Accept,
    /// A listener's error callback.
    Error,
}

impl Callback {
    /// All callbacks, in the order their bodies are numbered.
    pub const ALL: [Callback; 5] = [
        Callback::Read,
        Callback::Write,
        Callback::Event,
        Callback::Accept,
        Callback::Error,
    ];

    /// The word after the dot.
    pub fn word(self) -> &'static str {
        match self {
            Callback::Read => "read",
            Callback::Write => "write",
            Callback::Event => "event",
            Callback::Accept => "accept",
            Callback::Error => "error",
        }
    }

    /// True for the callbacks of bufferevents (read, write, event).
    pub fn of_bufferevent(self) -> bool {
        matches!(self, Callback::Read | Callback::Write | Callback::Event)
    }
}

/// What a bufferevent is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BevSource {
    /// `pair NAME`: `bufferevent_pair_new`; NAME is the second end of the pair.
    Pair(Ident),
    /// `socket END`: `bufferevent_socket_new` on a socket end.
    Socket(Ident),
    /// `socket none`: `bufferevent_socket_new(-1)`, for `connect`.
    SocketNone,
}

/// A bufferevent declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BevDecl {
    /// Its name.
    pub name: Ident,
    /// Pair or socket.
    pub source: BevSource,
    /// `BEV_OPT_*` bits as written.
    pub options: u32,
}

/// Where a listener's socket comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LevSource {
    /// `bind`: `evconnlistener_new_bind` on 127.0.0.1, port 0; `backlog N` (None: -1).
    Bind(Option<u32>),
    /// `fd END`: `evconnlistener_new` on a socketpair end with backlog 0 (no `listen()`).
    Fd(Ident),
}

/// A listener declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LevDecl {
    /// Its name.
    pub name: Ident,
    /// Bound socket or existing end.
    pub source: LevSource,
    /// `LEV_OPT_*` bits as written.
    pub options: u32,
    /// The ends that receive accepted connections, in order.
    pub accept: Vec<Ident>,
}

/// An inclusive range of call numbers: `#3` is 3..=3, `#3..5`, `#3..` is 3..=∞.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRange {
    /// First call number (≥ 1).
    pub lo: u32,
    /// Last call number, or unbounded.
    pub hi: Option<u32>,
}

/// One statement: an action, optionally limited to some calls of the enclosing callback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// `#N`, `#N..M`, `#N..`; only inside `on` blocks.
    pub cond: Option<CallRange>,
    /// What to do.
    pub action: Action,
}

/// The timeout argument of `add`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddTimeout {
    /// No timeout argument: `event_add(ev, NULL)`.
    None,
    /// A timeval.
    Tv(Micros),
    /// `common NAME`: the magic timeval of a common timeout.
    Common(Ident),
}

/// What `write` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteData {
    /// A literal byte string.
    Bytes(Vec<u8>),
    /// N bytes of the pattern `abc…zabc…`.
    Fill(u32),
}

/// What `print` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrintWhat {
    /// `print NAME`: pending flags, deadline and priority of an event.
    Event(Ident),
    /// `print counts`: event_base_get_num_events ADDED and ACTIVE.
    Counts,
    /// `print loop`: got_exit and got_break.
    Loop,
    /// `print base`: method, features, number of priorities.
    Base,
    /// `print time`: event_base_gettimeofday_cached.
    Time,
}

/// An action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `add EV [DURATION | common NAME]`.
    Add(Ident, AddTimeout),
    /// `del EV`.
    Del(Ident),
    /// `active EV FLAGS [ncalls N]`.
    Active(Ident, u16, u32),
    /// `priority_set EV N`.
    PrioritySet(Ident, u32),
    /// `remove_timer EV`.
    RemoveTimer(Ident),
    /// `once NAME SOURCE [FLAGS] [DURATION]`.
    Once {
        /// The callback body's name.
        body: Ident,
        /// Where the once-event watches.
        source: Source,
        /// Extra flags (TIMEOUT is implied for `timer`, SIGNAL for `signal`).
        flags: u16,
        /// The timeval, or NULL.
        timeout: Option<Micros>,
    },
    /// `loopexit [DURATION]`.
    Loopexit(Option<Micros>),
    /// `loopbreak`.
    Loopbreak,
    /// `loopcontinue`.
    Loopcontinue,
    /// `write END DATA`.
    Write(Ident, WriteData),
    /// `read END N`.
    Read(Ident, u32),
    /// `drain END [quiet]`: read until EAGAIN or EOF; `quiet` leaves the byte count out of the
    /// trace (for amounts that depend on kernel buffer sizes, e.g. after `fill`).
    Drain(Ident, bool),
    /// `fill END`: write until the socket buffer is full (the count is not traced: it depends on
    /// the kernel's buffer sizes).
    Fill(Ident),
    /// `shutdown END [rd|wr|rdwr]` (SHUT_* value).
    Shutdown(Ident, i64),
    /// `close END`.
    Close(Ident),
    /// `raise SIG [N]`.
    Raise(i32, u32),
    /// `free EV`.
    Free(Ident),
    /// `new EV`.
    New(Ident),
    /// `print …`.
    Print(PrintWhat),
    /// `loop [FLAGS]`.
    Loop(u32),
    /// `priority_init N`.
    PriorityInit(u32),
    /// `sleep DURATION`: the virtual clock moves forward (a slow callback).
    Sleep(Micros),
    /// `drain BEV N`: drop N bytes of a bufferevent's input.
    BevDrain(Ident, u32),
    /// `enable BEV READ|WRITE` / `enable LISTENER` (flags 0).
    Enable(Ident, u16),
    /// `disable BEV READ|WRITE` / `disable LISTENER` (flags 0).
    Disable(Ident, u16),
    /// `watermark BEV READ|WRITE LOW HIGH`.
    Watermark(Ident, u16, u32, u32),
    /// `timeouts BEV READ_DUR WRITE_DUR` (0: no timeout).
    Timeouts(Ident, Micros, Micros),
    /// `flush BEV READ|WRITE NORMAL|FLUSH|FINISHED` (mode: `BEV_*` value).
    Flush(Ident, u16, i64),
    /// `connect BEV|CLIENT LISTENER`.
    Connect(Ident, Ident),
    /// `trigger BEV READ|WRITE [IGNORE_WATERMARKS|DEFER_CALLBACKS]`.
    Trigger(Ident, u16, u32),
    /// `trigger_event BEV WHAT [IGNORE_WATERMARKS|DEFER_CALLBACKS]`.
    TriggerEvent(Ident, u16, u32),
    /// `setcb BEV read write event` / `setcb BEV none` (bits: read 1, write 2, event 4).
    Setcb(Ident, u8),
}

impl Action {
    /// True for the actions allowed in `at` blocks (the outside world).
    pub fn is_outside_input(&self) -> bool {
        matches!(
            self,
            Action::Write(..)
                | Action::Shutdown(..)
                | Action::Close(..)
                | Action::Raise(..)
                | Action::Connect(..)
        )
    }
}

/// Words that cannot be used as names.
pub const KEYWORDS: &[&str] = &[
    "base",
    "socketpair",
    "event",
    "common",
    "on",
    "at",
    "main",
    "timer",
    "fd",
    "none",
    "signal",
    "prio",
    "priorities",
    "max_interval",
    "max_callbacks",
    "min_priority",
    "flags",
    "add",
    "del",
    "active",
    "ncalls",
    "priority_set",
    "remove_timer",
    "once",
    "loopexit",
    "loopbreak",
    "loopcontinue",
    "write",
    "read",
    "drain",
    "quiet",
    "fill",
    "shutdown",
    "close",
    "raise",
    "free",
    "new",
    "print",
    "counts",
    "loop",
    "time",
    "priority_init",
    "sleep",
    "rd",
    "wr",
    "rdwr",
    "bufferevent",
    "listener",
    "client",
    "pair",
    "socket",
    "bind",
    "backlog",
    "accept",
    "enable",
    "disable",
    "watermark",
    "timeouts",
    "flush",
    "connect",
    "trigger",
    "trigger_event",
    "setcb",
    "NONE",
];

// ------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Int(u64),
    Dur(u64),
    Str(Vec<u8>),
    Cond(u32),
    DotDot,
    Dot,
    Pipe,
    LBrace,
    RBrace,
    Semi,
    Newline,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Int(n) => format!("number {n}"),
            Tok::Dur(_) => "a duration".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Cond(_) => "a call condition".into(),
            Tok::DotDot => "'..'".into(),
            Tok::Dot => "'.'".into(),
            Tok::Pipe => "'|'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Semi => "';'".into(),
            Tok::Newline => "end of line".into(),
            Tok::Eof => "end of file".into(),
        }
    }
}

const MAX_MICROS: u64 = 1 << 50;

fn lex(file: &str, src: &str) -> Result<Vec<(Tok, Pos)>, Error> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let err = |pos: Pos, msg: String| Error {
        file: file.to_string(),
        pos,
        msg,
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, col };
        let start = i;
        match c {
            '\n' => {
                out.push((Tok::Newline, pos));
                i += 1;
                line += 1;
                col = 1;
                continue;
            }
            ' ' | '\t' | '\r' => i += 1,
            '#' => {
                if chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                    i += 1;
                    let s = i;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                    let text: String = chars[s..i].iter().collect();
                    let n: u32 = text
                        .parse()
                        .map_err(|_| err(pos, format!("call number {text} is too large")))?;
                    out.push((Tok::Cond(n), pos));
                } else {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
            }
            '{' | '}' | '|' | ';' => {
                out.push((
                    match c {
                        '{' => Tok::LBrace,
                        '}' => Tok::RBrace,
                        '|' => Tok::Pipe,
                        _ => Tok::Semi,
                    },
                    pos,
                ));
                i += 1;
            }
            '.' => {
                if chars.get(i + 1) == Some(&'.') {
                    out.push((Tok::DotDot, pos));
                    i += 2;
                } else {
                    out.push((Tok::Dot, pos));
                    i += 1;
                }
            }
            '"' => {
                i += 1;
                let mut bytes = Vec::new();
                loop {
                    let Some(&ch) = chars.get(i) else {
                        return Err(err(pos, "unterminated string".into()));
                    };
                    match ch {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\n' => {
                            return Err(err(
                                pos,
                                "unterminated string (strings cannot span lines)".into(),
                            ))
                        }
                        '\\' => {
                            let epos = Pos {
                                line,
                                col: col + (i - start) as u32,
                            };
                            let e = chars.get(i + 1).copied().unwrap_or(' ');
                            i += 2;
                            match e {
                                'n' => bytes.push(b'\n'),
                                'r' => bytes.push(b'\r'),
                                't' => bytes.push(b'\t'),
                                '0' => bytes.push(0),
                                '\\' => bytes.push(b'\\'),
                                '"' => bytes.push(b'"'),
                                'x' => {
                                    let h: String = chars
                                        .get(i..i + 2)
                                        .map(|s| s.iter().collect())
                                        .unwrap_or_default();
                                    let v = u8::from_str_radix(&h, 16).map_err(|_| {
                                        err(epos, "\\x needs two hex digits".into())
                                    })?;
                                    bytes.push(v);
                                    i += 2;
                                }
                                other => {
                                    return Err(err(epos, format!("unknown escape \\{other}")))
                                }
                            }
                        }
                        ch => {
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                            i += 1;
                        }
                    }
                }
                out.push((Tok::Str(bytes), pos));
            }
            d if d.is_ascii_digit() => {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let digits: String = chars[start..i].iter().collect();
                let s2 = i;
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let unit: String = chars[s2..i].iter().collect();
                let n: u64 = digits
                    .parse()
                    .map_err(|_| err(pos, format!("number {digits} is too large")))?;
                if unit.is_empty() {
                    out.push((Tok::Int(n), pos));
                } else {
                    let mul = match unit.as_str() {
                        "us" => 1,
                        "ms" => 1_000,
                        "s" => 1_000_000,
                        _ => {
                            return Err(err(
                                pos,
                                format!("unknown time unit '{unit}' (use us, ms or s)"),
                            ))
                        }
                    };
                    let v = n
                        .checked_mul(mul)
                        .filter(|v| *v <= MAX_MICROS)
                        .ok_or_else(|| err(pos, format!("duration {digits}{unit} is too large")))?;
                    out.push((Tok::Dur(v), pos));
                }
            }
            a if a.is_ascii_alphabetic() || a == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Ident(chars[start..i].iter().collect()), pos));
            }
            other => return Err(err(pos, format!("unexpected character '{other}'"))),
        }
        col += (i - start) as u32;
    }
    out.push((Tok::Eof, Pos { line, col }));
    Ok(out)
}

// ------------------------------------------------------------------------------------------
// Parser

/// Parses and validates a scenario. `file` is only used in error messages.
pub fn parse(file: &str, src: &str) -> Result<Scenario, Error> {
    let sc = parse_syntax(file, src)?;
    validate(file, &sc)?;
    Ok(sc)
}

/// Parses without the name and kind checks of [`validate`] (used by the round-trip property).
pub fn parse_syntax(file: &str, src: &str) -> Result<Scenario, Error> {
    let toks = lex(file, src)?;
    let mut p = Parser { file, toks, i: 0 };
    p.scenario()
}

/// Recursive-descent parser. Grammar (NL = end of line; `;` also ends a statement):
///
/// ```text
/// file     := { NL | item }
/// item     := base | socketpair | event | common | on | at | main
/// base     := "base" { "priorities" INT | "max_interval" DUR | "max_callbacks" INT
///                      | "min_priority" INT | "flags" BASEFLAG {"|" BASEFLAG} } NL
/// socketpair := "socketpair" NAME NAME NL
/// event    := "event" NAME source [FLAGS] ["prio" INT] NL
/// source   := "timer" | "fd" NAME | "fd" "none" | "signal" SIGNAME
/// common   := "common" NAME DUR NL
/// on       := "on" NAME "{" block "}"
/// at       := "at" DUR "{" block "}"
/// main     := "main" "{" block "}"
/// block    := { NL | ";" | [COND] action (NL | ";" | before "}") }
/// COND     := "#"INT [".." [INT]]
/// FLAGS    := "NONE" | FLAG {"|" FLAG}
/// DUR      := INT("us"|"ms"|"s") | "0"
/// ```
struct Parser<'a> {
    file: &'a str,
    toks: Vec<(Tok, Pos)>,
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &Tok {
        &self.toks[self.i].0
    }
    fn pos(&self) -> Pos {
        self.toks[self.i].1
    }
    fn bump(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn err<T>(&self, pos: Pos, msg: impl Into<String>) -> Result<T, Error> {
        Err(Error {
            file: self.file.to_string(),
            pos,
            msg: msg.into(),
        })
    }
    fn unexpected<T>(&self, what: &str) -> Result<T, Error> {
        self.err(
            self.pos(),
            format!("expected {what}, found {}", self.peek().describe()),
        )
    }
    fn at_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == w)
    }
    fn eat_word(&mut self, w: &str) -> bool {
        if self.at_word(w) {
            self.bump();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, t: Tok, what: &str) -> Result<Pos, Error> {
        if *self.peek() == t {
            Ok(self.bump().1)
        } else {
            self.unexpected(what)
        }
    }
    fn end_of_line(&mut self) -> Result<(), Error> {
        match self.peek() {
            Tok::Newline => {
                self.bump();
                Ok(())
            }
            Tok::Eof => Ok(()),
            _ => self.unexpected("end of line"),
        }
    }
    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Tok::Newline) {
            self.bump();
        }
    }

    fn name(&mut self, what: &str) -> Result<Ident, Error> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Ident(s) => {
                if KEYWORDS.contains(&s.as_str()) {
                    return self.err(
                        pos,
                        format!("'{s}' is a keyword and cannot be used as {what}"),
                    );
                }
                if is_flag_word(&s) {
                    return self.err(
                        pos,
                        format!("'{s}' is a flag name and cannot be used as {what}"),
                    );
                }
                self.bump();
                Ok(Ident { name: s, pos })
            }
            _ => self.unexpected(what),
        }
    }

    fn int(&mut self, what: &str, max: u64) -> Result<u32, Error> {
        let pos = self.pos();
        match self.peek() {
            Tok::Int(n) => {
                let n = *n;
                if n > max {
                    return self.err(pos, format!("{what} must be at most {max}"));
                }
                self.bump();
                Ok(n as u32)
            }
            _ => self.unexpected(what),
        }
    }

    fn at_dur(&self) -> bool {
        matches!(self.peek(), Tok::Dur(_) | Tok::Int(_))
    }

    fn dur(&mut self) -> Result<Micros, Error> {
        let pos = self.pos();
        match self.peek() {
            Tok::Dur(v) => {
                let v = *v;
                self.bump();
                Ok(v)
            }
            Tok::Int(0) => {
                self.bump();
                Ok(0)
            }
            Tok::Int(n) => self.err(
                pos,
                format!(
                    "a duration needs a unit: {n}ms, {n}us or {n}s (only 0 may be written bare)"
                ),
            ),
            _ => self.unexpected("a duration (100ms, 1500us, 2s or 0)"),
        }
    }

    fn flag_list<T: Copy + std::ops::BitOr<Output = T> + Default>(
        &mut self,
        table: &[(&str, T)],
        what: &str,
        allow_none: bool,
    ) -> Result<T, Error> {
        let mut bits = T::default();
        if allow_none && self.eat_word("NONE") {
            return Ok(bits);
        }
        loop {
            let pos = self.pos();
            let Tok::Ident(w) = self.peek().clone() else {
                return self.unexpected(what);
            };
            let Some((_, b)) = table.iter().find(|(n, _)| *n == w) else {
                let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                return self.err(
                    pos,
                    format!("unknown {what} '{w}' (known: {})", known.join(", ")),
                );
            };
            bits = bits | *b;
            self.bump();
            if matches!(self.peek(), Tok::Pipe) {
                self.bump();
            } else {
                return Ok(bits);
            }
        }
    }

    fn at_event_flag(&self) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == "NONE" || names::EVENT_FLAGS.iter().any(|(n, _)| n == s))
    }

    fn event_flags(&mut self) -> Result<u16, Error> {
        self.flag_list(names::EVENT_FLAGS, "event flag", true)
    }

    fn signal(&mut self) -> Result<i32, Error> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Ident(s) => match names::signal_number(&s) {
                Some(n) => {
                    self.bump();
                    Ok(n)
                }
                None => {
                    let known: Vec<&str> = names::SIGNALS.iter().map(|(n, _)| *n).collect();
                    self.err(
                        pos,
                        format!("unknown signal '{s}' (known: {})", known.join(", ")),
                    )
                }
            },
            _ => self.unexpected("a signal name such as SIGUSR1"),
        }
    }

    fn source(&mut self) -> Result<Source, Error> {
        if self.eat_word("timer") {
            Ok(Source::Timer)
        } else if self.eat_word("fd") {
            if self.eat_word("none") {
                Ok(Source::FdNone)
            } else {
                Ok(Source::Fd(self.name("a socketpair end")?))
            }
        } else if self.eat_word("signal") {
            Ok(Source::Signal(self.signal()?))
        } else {
            self.unexpected("'timer', 'fd END', 'fd none' or 'signal SIG'")
        }
    }

    fn scenario(&mut self) -> Result<Scenario, Error> {
        let mut items = Vec::new();
        let mut seen_main: Option<Pos> = None;
        loop {
            self.skip_newlines();
            let pos = self.pos();
            let word = match self.peek().clone() {
                Tok::Eof => break,
                Tok::Ident(w) => w,
                _ => {
                    return self.unexpected(
                        "a declaration (base, socketpair, event, common, bufferevent, listener, client, on, at, main)",
                    )
                }
            };
            self.bump();
            let item = match word.as_str() {
                "base" => {
                    if !items.is_empty() {
                        return self.err(pos, "'base' must be the first declaration (and appear once)");
                    }
                    Item::Base(self.base()?)
                }
                "socketpair" => {
                    let a = self.name("a socketpair end name")?;
                    let b = self.name("a socketpair end name")?;
                    self.end_of_line()?;
                    Item::Socketpair(a, b)
                }
                "event" => {
                    let name = self.name("an event name")?;
                    let source = self.source()?;
                    let flags = if self.at_event_flag() { self.event_flags()? } else { 0 };
                    let prio =
                        if self.eat_word("prio") { Some(self.int("a priority", 255)?) } else { None };
                    self.end_of_line()?;
                    Item::Event(EventDecl { name, source, flags, prio })
                }
                "common" => {
                    let name = self.name("a common-timeout name")?;
                    let d = self.dur()?;
                    self.end_of_line()?;
                    Item::Common(name, d)
                }
                "on" => {
                    let name = self.name("an event, once, bufferevent or listener name")?;
                    if matches!(self.peek(), Tok::Dot) {
                        self.bump();
                        let cpos = self.pos();
                        let cb = match self.peek().clone() {
                            Tok::Ident(w) => Callback::ALL.into_iter().find(|c| c.word() == w),
                            _ => None,
                        };
                        let Some(cb) = cb else {
                            return self.err(cpos, format!("expected a callback (read, write, event, accept or error) after '{name}.', found {}", self.peek().describe()));
                        };
                        self.bump();
                        let body = self.block(BlockKind::On)?;
                        Item::OnCallback(name, cb, body)
                    } else {
                        let body = self.block(BlockKind::On)?;
                        Item::On(name, body)
                    }
                }
                "bufferevent" => {
                    let name = self.name("a bufferevent name")?;
                    let source = if self.eat_word("pair") {
                        BevSource::Pair(self.name("the name of the pair's second bufferevent")?)
                    } else if self.eat_word("socket") {
                        if self.eat_word("none") {
                            BevSource::SocketNone
                        } else {
                            BevSource::Socket(self.name("a socket end")?)
                        }
                    } else {
                        return self.unexpected("'pair NAME', 'socket END' or 'socket none'");
                    };
                    let options = if matches!(self.peek(), Tok::Ident(_)) {
                        self.flag_list(names::BEV_OPTIONS, "bufferevent option", false)?
                    } else {
                        0
                    };
                    self.end_of_line()?;
                    Item::Bufferevent(BevDecl { name, source, options })
                }
                "listener" => {
                    let name = self.name("a listener name")?;
                    let bind = if self.eat_word("bind") {
                        true
                    } else if self.eat_word("fd") {
                        false
                    } else {
                        return self.unexpected("'bind' or 'fd END'");
                    };
                    let fd_end = if bind { None } else { Some(self.name("a socket end")?) };
                    let options = if matches!(self.peek(), Tok::Ident(w) if w != "backlog" && w != "accept") {
                        self.flag_list(names::LEV_OPTIONS, "listener option", false)?
                    } else {
                        0
                    };
                    let mut backlog = None;
                    if self.at_word("backlog") {
                        let bpos = self.pos();
                        self.bump();
                        if !bind {
                            return self.err(bpos, "'backlog' is only for 'listener NAME bind' (an 'fd' listener never calls listen())");
                        }
                        let ipos = self.pos();
                        let n = self.int("a backlog", 65535)?;
                        if n == 0 {
                            return self.err(ipos, "evconnlistener_new_bind fails with backlog 0; write 1 or more, or leave it out for -1 (128)");
                        }
                        backlog = Some(n);
                    }
                    let mut accept = Vec::new();
                    if self.eat_word("accept") {
                        while matches!(self.peek(), Tok::Ident(_)) {
                            accept.push(self.name("an end name for an accepted connection")?);
                        }
                        if accept.is_empty() {
                            return self.unexpected("the names of the ends that receive accepted connections");
                        }
                    }
                    self.end_of_line()?;
                    let source = match fd_end {
                        None => LevSource::Bind(backlog),
                        Some(e) => LevSource::Fd(e),
                    };
                    Item::Listener(LevDecl { name, source, options, accept })
                }
                "client" => {
                    let name = self.name("a client end name")?;
                    self.end_of_line()?;
                    Item::Client(name)
                }
                "at" => {
                    let t = self.dur()?;
                    let body = self.block(BlockKind::At)?;
                    Item::At(t, body)
                }
                "main" => {
                    if let Some(p) = seen_main {
                        return self.err(pos, format!("second 'main' block (the first is at line {})", p.line));
                    }
                    seen_main = Some(pos);
                    let body = self.block(BlockKind::Main)?;
                    Item::Main(body)
                }
                w => {
                    return self.err(
                        pos,
                        format!("unknown declaration '{w}' (expected base, socketpair, event, common, bufferevent, listener, client, on, at or main)"),
                    )
                }
            };
            items.push(item);
        }
        Ok(Scenario { items })
    }

    fn base(&mut self) -> Result<BaseDecl, Error> {
        let mut b = BaseDecl::default();
        loop {
            let pos = self.pos();
            let w = match self.peek().clone() {
                Tok::Ident(w) => w,
                _ => break,
            };
            self.bump();
            let dup = |set: bool, p: &Parser| -> Result<(), Error> {
                if set {
                    p.err(pos, format!("'{w}' given twice"))
                } else {
                    Ok(())
                }
            };
            match w.as_str() {
                "priorities" => {
                    dup(b.priorities.is_some(), self)?;
                    let ipos = self.pos();
                    let n = self.int("a number of priorities", 255)?;
                    if n == 0 {
                        return self.err(ipos, "a base has 1 to 255 priorities");
                    }
                    b.priorities = Some(n);
                }
                "max_interval" => {
                    dup(b.max_interval.is_some(), self)?;
                    b.max_interval = Some(self.dur()?);
                }
                "max_callbacks" => {
                    dup(b.max_callbacks.is_some(), self)?;
                    b.max_callbacks = Some(self.int("a callback count", i32::MAX as u64)?);
                }
                "min_priority" => {
                    dup(b.min_priority.is_some(), self)?;
                    b.min_priority = Some(self.int("a priority", 255)?);
                }
                "flags" => {
                    dup(b.flags != 0, self)?;
                    b.flags = self.flag_list(names::BASE_FLAGS, "base flag", false)?;
                }
                _ => {
                    return self.err(
                        pos,
                        format!("unknown base option '{w}' (expected priorities, max_interval, max_callbacks, min_priority, flags)"),
                    )
                }
            }
        }
        self.end_of_line()?;
        Ok(b)
    }

    fn block(&mut self, kind: BlockKind) -> Result<Vec<Stmt>, Error> {
        self.expect(Tok::LBrace, "'{'")?;
        let mut stmts = Vec::new();
        loop {
            match self.peek() {
                Tok::Newline | Tok::Semi => {
                    self.bump();
                }
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Eof => return self.unexpected("'}'"),
                _ => {
                    let stmt = self.stmt(kind)?;
                    stmts.push(stmt);
                    match self.peek() {
                        Tok::Newline | Tok::Semi => {
                            self.bump();
                        }
                        Tok::RBrace => {}
                        _ => return self.unexpected("end of statement"),
                    }
                }
            }
        }
        self.end_of_line()?;
        Ok(stmts)
    }

    fn stmt(&mut self, kind: BlockKind) -> Result<Stmt, Error> {
        let cond = if let Tok::Cond(lo) = *self.peek() {
            let pos = self.pos();
            if kind != BlockKind::On {
                return self.err(
                    pos,
                    "call conditions (#N) are only allowed inside 'on' blocks",
                );
            }
            if lo == 0 {
                return self.err(pos, "calls are numbered from 1");
            }
            self.bump();
            let hi = if matches!(self.peek(), Tok::DotDot) {
                self.bump();
                if let Tok::Int(_) = self.peek() {
                    let hpos = self.pos();
                    let hi = self.int("a call number", u32::MAX as u64)?;
                    if hi < lo {
                        return self.err(hpos, format!("empty call range #{lo}..{hi}"));
                    }
                    Some(hi)
                } else {
                    None
                }
            } else {
                Some(lo)
            };
            Some(CallRange { lo, hi })
        } else {
            None
        };
        let pos = self.pos();
        let action = self.action()?;
        if kind == BlockKind::At && !action.is_outside_input() {
            return self.err(
                pos,
                "only write, shutdown, close, raise and connect are allowed in 'at' blocks (outside inputs)",
            );
        }
        Ok(Stmt { cond, action })
    }

    fn action(&mut self) -> Result<Action, Error> {
        let pos = self.pos();
        let Tok::Ident(w) = self.peek().clone() else {
            return self.unexpected("an action");
        };
        self.bump();
        let a = match w.as_str() {
            "add" => {
                let ev = self.name("an event name")?;
                let t = if self.eat_word("common") {
                    AddTimeout::Common(self.name("a common-timeout name")?)
                } else if self.at_dur() {
                    AddTimeout::Tv(self.dur()?)
                } else {
                    AddTimeout::None
                };
                Action::Add(ev, t)
            }
            "del" => Action::Del(self.name("an event name")?),
            "active" => {
                let ev = self.name("an event name")?;
                let res = self.event_flags()?;
                let n = if self.eat_word("ncalls") {
                    self.int("a call count", 1000)?
                } else {
                    1
                };
                Action::Active(ev, res, n)
            }
            "priority_set" => {
                let ev = self.name("an event name")?;
                Action::PrioritySet(ev, self.int("a priority", 1000)?)
            }
            "remove_timer" => Action::RemoveTimer(self.name("an event name")?),
            "once" => {
                let body = self.name("a once callback name")?;
                let source = self.source()?;
                let flags = if self.at_event_flag() {
                    self.event_flags()?
                } else {
                    0
                };
                let timeout = if self.at_dur() {
                    Some(self.dur()?)
                } else {
                    None
                };
                Action::Once {
                    body,
                    source,
                    flags,
                    timeout,
                }
            }
            "loopexit" => Action::Loopexit(if self.at_dur() {
                Some(self.dur()?)
            } else {
                None
            }),
            "loopbreak" => Action::Loopbreak,
            "loopcontinue" => Action::Loopcontinue,
            "write" => {
                let end = self.name("a socketpair end")?;
                let data = match self.peek().clone() {
                    Tok::Str(b) => {
                        self.bump();
                        WriteData::Bytes(b)
                    }
                    Tok::Int(_) => {
                        let ipos = self.pos();
                        let n = self.int("a byte count", 65536)?;
                        if n == 0 {
                            return self.err(ipos, "write at least 1 byte");
                        }
                        WriteData::Fill(n)
                    }
                    _ => return self.unexpected("a string or a byte count"),
                };
                Action::Write(end, data)
            }
            "read" => {
                let end = self.name("a socketpair end")?;
                let ipos = self.pos();
                let n = self.int("a byte count", 65536)?;
                if n == 0 {
                    return self.err(ipos, "read at least 1 byte");
                }
                Action::Read(end, n)
            }
            "drain" => {
                let end = self.name("a socketpair end or a bufferevent")?;
                if let Tok::Int(_) = self.peek() {
                    let n = self.int("a byte count", 1 << 20)?;
                    Action::BevDrain(end, n)
                } else {
                    let quiet = self.eat_word("quiet");
                    Action::Drain(end, quiet)
                }
            }
            "enable" | "disable" => {
                let x = self.name("a bufferevent or a listener")?;
                let flags = if self.at_event_flag() {
                    self.event_flags()?
                } else {
                    0
                };
                if w == "enable" {
                    Action::Enable(x, flags)
                } else {
                    Action::Disable(x, flags)
                }
            }
            "watermark" => {
                let x = self.name("a bufferevent")?;
                let ev = self.event_flags()?;
                let low = self.int("a low watermark", u32::MAX as u64)?;
                let high = self.int("a high watermark", u32::MAX as u64)?;
                Action::Watermark(x, ev, low, high)
            }
            "timeouts" => {
                let x = self.name("a bufferevent")?;
                let r = self.dur()?;
                let w = self.dur()?;
                Action::Timeouts(x, r, w)
            }
            "flush" => {
                let x = self.name("a bufferevent")?;
                let io = self.event_flags()?;
                let mpos = self.pos();
                let mode = match self.peek().clone() {
                    Tok::Ident(m) => names::FLUSH_MODES
                        .iter()
                        .find(|(n, _)| *n == m)
                        .map(|(_, v)| *v),
                    _ => None,
                };
                let Some(mode) = mode else {
                    return self.err(
                        mpos,
                        format!(
                            "expected a flush mode (NORMAL, FLUSH or FINISHED), found {}",
                            self.peek().describe()
                        ),
                    );
                };
                self.bump();
                Action::Flush(x, io, mode)
            }
            "connect" => {
                let x = self.name("a bufferevent or a client end")?;
                let l = self.name("a listener")?;
                Action::Connect(x, l)
            }
            "trigger" | "trigger_event" => {
                let x = self.name("a bufferevent")?;
                let what = if w == "trigger" {
                    self.event_flags()?
                } else {
                    self.flag_list(names::BEV_EVENTS, "bufferevent event", false)?
                };
                let opts = if matches!(self.peek(), Tok::Ident(_)) {
                    self.flag_list(names::TRIGGER_OPTIONS, "trigger option", false)?
                } else {
                    0
                };
                if w == "trigger" {
                    Action::Trigger(x, what, opts)
                } else {
                    Action::TriggerEvent(x, what, opts)
                }
            }
            "setcb" => {
                let x = self.name("a bufferevent")?;
                let mut bits = 0u8;
                if !self.eat_word("none") {
                    loop {
                        let cpos = self.pos();
                        let found = match self.peek() {
                            Tok::Ident(c) => names::SETCB_BITS
                                .iter()
                                .find(|(n, _)| n == c)
                                .map(|(_, b)| *b),
                            _ => None,
                        };
                        match found {
                            Some(b) if bits & b != 0 => {
                                return self.err(cpos, "a callback is named twice");
                            }
                            Some(b) => {
                                bits |= b;
                                self.bump();
                            }
                            None if bits == 0 => {
                                return self.unexpected("read, write, event or none");
                            }
                            None => break,
                        }
                    }
                }
                Action::Setcb(x, bits)
            }
            "fill" => Action::Fill(self.name("a socketpair end")?),
            "shutdown" => {
                let end = self.name("a socketpair end")?;
                let how = if let Tok::Ident(h) = self.peek().clone() {
                    match names::SHUTDOWN_HOW.iter().find(|(n, _)| *n == h) {
                        Some((_, v)) => {
                            self.bump();
                            *v
                        }
                        None => return self.unexpected("rd, wr or rdwr"),
                    }
                } else {
                    1
                };
                Action::Shutdown(end, how)
            }
            "close" => Action::Close(self.name("a socketpair end")?),
            "raise" => {
                let sig = self.signal()?;
                let n = if let Tok::Int(_) = self.peek() {
                    let ipos = self.pos();
                    let n = self.int("a count", 1000)?;
                    if n == 0 {
                        return self.err(ipos, "raise at least once");
                    }
                    n
                } else {
                    1
                };
                Action::Raise(sig, n)
            }
            "free" => Action::Free(self.name("an event name")?),
            "new" => Action::New(self.name("an event name")?),
            "print" => {
                if self.eat_word("counts") {
                    Action::Print(PrintWhat::Counts)
                } else if self.eat_word("loop") {
                    Action::Print(PrintWhat::Loop)
                } else if self.eat_word("base") {
                    Action::Print(PrintWhat::Base)
                } else if self.eat_word("time") {
                    Action::Print(PrintWhat::Time)
                } else {
                    Action::Print(PrintWhat::Event(
                        self.name("an event name, counts, loop, base or time")?,
                    ))
                }
            }
            "loop" => {
                let flags = if matches!(self.peek(), Tok::Ident(_)) {
                    self.flag_list(names::LOOP_FLAGS, "loop flag", false)?
                } else {
                    0
                };
                Action::Loop(flags)
            }
            "priority_init" => Action::PriorityInit(self.int("a number of priorities", 1000)?),
            "sleep" => Action::Sleep(self.dur()?),
            other => return self.err(pos, format!("unknown action '{other}'")),
        };
        Ok(a)
    }
}

fn is_flag_word(s: &str) -> bool {
    names::EVENT_FLAGS.iter().any(|(n, _)| *n == s)
        || names::BEV_OPTIONS.iter().any(|(n, _)| *n == s)
        || names::LEV_OPTIONS.iter().any(|(n, _)| *n == s)
        || names::BEV_EVENTS.iter().any(|(n, _)| *n == s)
        || names::TRIGGER_OPTIONS.iter().any(|(n, _)| *n == s)
        || names::FLUSH_MODES.iter().any(|(n, _)| *n == s)
        || names::LOOP_FLAGS.iter().any(|(n, _)| *n == s)
        || names::BASE_FLAGS.iter().any(|(n, _)| *n == s)
        || names::signal_number(s).is_some()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    On,
    At,
    Main,
}

// ------------------------------------------------------------------------------------------
// Validation

/// What a name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A socket end: a socketpair end, a client, or an end that receives accepted connections.
    End,
    /// An event.
    Event,
    /// A common timeout.
    Common,
    /// The callback body of once-events.
    Once,
    /// A bufferevent.
    Bufferevent,
    /// A connection listener.
    Listener,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::End => "a socketpair end",
            Kind::Event => "an event",
            Kind::Common => "a common timeout",
            Kind::Once => "a once callback",
            Kind::Bufferevent => "a bufferevent",
            Kind::Listener => "a listener",
        }
    }
}

/// Where a socket end's descriptor comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOrigin {
    /// `socketpair A B`: open from setup on.
    Socketpair,
    /// `client NAME`: opened by `connect NAME LISTENER`.
    Client,
    /// Named in `listener L … accept …`: receives one accepted connection of L.
    Accepted(String),
}

/// The origin of every socket end, by name.
pub fn end_origins(sc: &Scenario) -> BTreeMap<String, EndOrigin> {
    let mut m = BTreeMap::new();
    for item in &sc.items {
        match item {
            Item::Socketpair(a, b) => {
                m.entry(a.name.clone()).or_insert(EndOrigin::Socketpair);
                m.entry(b.name.clone()).or_insert(EndOrigin::Socketpair);
            }
            Item::Client(c) => {
                m.entry(c.name.clone()).or_insert(EndOrigin::Client);
            }
            Item::Listener(l) => {
                for e in &l.accept {
                    m.entry(e.name.clone())
                        .or_insert(EndOrigin::Accepted(l.name.name.clone()));
                }
            }
            _ => {}
        }
    }
    m
}

/// The symbol table of a scenario: every name and what it denotes.
pub fn symbols(sc: &Scenario) -> BTreeMap<String, Kind> {
    let mut m = BTreeMap::new();
    for item in &sc.items {
        match item {
            Item::Socketpair(a, b) => {
                m.entry(a.name.clone()).or_insert(Kind::End);
                m.entry(b.name.clone()).or_insert(Kind::End);
            }
            Item::Event(e) => {
                m.entry(e.name.name.clone()).or_insert(Kind::Event);
            }
            Item::Common(c, _) => {
                m.entry(c.name.clone()).or_insert(Kind::Common);
            }
            Item::Client(c) => {
                m.entry(c.name.clone()).or_insert(Kind::End);
            }
            Item::Bufferevent(d) => {
                m.entry(d.name.name.clone()).or_insert(Kind::Bufferevent);
                if let BevSource::Pair(p) = &d.source {
                    m.entry(p.name.clone()).or_insert(Kind::Bufferevent);
                }
            }
            Item::Listener(l) => {
                m.entry(l.name.name.clone()).or_insert(Kind::Listener);
                for e in &l.accept {
                    m.entry(e.name.clone()).or_insert(Kind::End);
                }
            }
            _ => {}
        }
    }
    for stmt in all_stmts(sc) {
        if let Action::Once { body, .. } = &stmt.action {
            m.entry(body.name.clone()).or_insert(Kind::Once);
        }
    }
    m
}

/// Every statement of every block, in file order.
pub fn all_stmts(sc: &Scenario) -> impl Iterator<Item = &Stmt> {
    sc.items.iter().flat_map(|item| match item {
        Item::On(_, b) | Item::OnCallback(_, _, b) | Item::At(_, b) | Item::Main(b) => b.as_slice(),
        _ => &[],
    })
}

/// The number of priorities the base starts with.
pub fn base_priorities(sc: &Scenario) -> u32 {
    sc.items
        .iter()
        .find_map(|i| match i {
            Item::Base(b) => b.priorities,
            _ => None,
        })
        .unwrap_or(1)
}

/// The bufferevents of a scenario in declaration order (a pair gives both names, first one
/// first), each with its declaration.
pub fn bufferevents(sc: &Scenario) -> Vec<(&Ident, &BevDecl)> {
    let mut v = Vec::new();
    for item in &sc.items {
        if let Item::Bufferevent(d) = item {
            v.push((&d.name, d));
            if let BevSource::Pair(p) = &d.source {
                v.push((p, d));
            }
        }
    }
    v
}

/// Name and kind checks: every name declared once and used as what it is.
pub fn validate(file: &str, sc: &Scenario) -> Result<(), Error> {
    let err = |pos: Pos, msg: String| {
        Err(Error {
            file: file.to_string(),
            pos,
            msg,
        })
    };
    // declarations
    let mut decl: BTreeMap<String, (Kind, Pos)> = BTreeMap::new();
    let mut declare = |id: &Ident, k: Kind| -> Result<(), Error> {
        if let Some((k0, p0)) = decl.get(&id.name) {
            return err(
                id.pos,
                format!(
                    "'{}' is already declared as {} at line {}",
                    id.name,
                    k0.describe(),
                    p0.line
                ),
            );
        }
        decl.insert(id.name.clone(), (k, id.pos));
        Ok(())
    };
    let prios = base_priorities(sc);
    let mut has_main = false;
    for item in &sc.items {
        match item {
            Item::Socketpair(a, b) => {
                declare(a, Kind::End)?;
                declare(b, Kind::End)?;
            }
            Item::Event(e) => {
                declare(&e.name, Kind::Event)?;
                let allowed = match e.source {
                    Source::Timer => names::EV_PERSIST | names::EV_TIMEOUT,
                    Source::Fd(_) | Source::FdNone => {
                        names::EV_READ
                            | names::EV_WRITE
                            | names::EV_CLOSED
                            | names::EV_ET
                            | names::EV_PERSIST
                            | names::EV_TIMEOUT
                    }
                    Source::Signal(_) => names::EV_PERSIST,
                };
                if e.flags & !allowed != 0 {
                    return err(
                        e.name.pos,
                        format!(
                            "event '{}': flag(s) {} not allowed for this source (allowed: {})",
                            e.name,
                            names::join_flags(names::EVENT_FLAGS, e.flags & !allowed, "NONE"),
                            names::join_flags(names::EVENT_FLAGS, allowed, "NONE")
                        ),
                    );
                }
                if let Some(p) = e.prio {
                    if p >= prios {
                        return err(
                            e.name.pos,
                            format!("event '{}': prio {p} is out of range (the base has {prios} priorities)", e.name),
                        );
                    }
                }
            }
            Item::Common(c, _) => declare(c, Kind::Common)?,
            Item::Client(c) => declare(c, Kind::End)?,
            Item::Bufferevent(d) => {
                declare(&d.name, Kind::Bufferevent)?;
                if let BevSource::Pair(p) = &d.source {
                    declare(p, Kind::Bufferevent)?;
                }
            }
            Item::Listener(l) => {
                declare(&l.name, Kind::Listener)?;
                for e in &l.accept {
                    declare(e, Kind::End)?;
                }
            }
            Item::Main(_) => has_main = true,
            _ => {}
        }
    }
    // once bodies
    for stmt in all_stmts(sc) {
        if let Action::Once { body, .. } = &stmt.action {
            match decl.get(&body.name) {
                Some((Kind::Once, _)) => {}
                Some((k, p)) => {
                    return err(
                        body.pos,
                        format!(
                            "'{}' is {} (line {}); a once-event needs its own callback name",
                            body.name,
                            k.describe(),
                            p.line
                        ),
                    )
                }
                None => {
                    decl.insert(body.name.clone(), (Kind::Once, body.pos));
                }
            }
        }
    }
    if !has_main {
        return err(
            Pos { line: 1, col: 1 },
            "the scenario has no 'main' block".into(),
        );
    }
    let kind_of = |id: &Ident| decl.get(&id.name).copied();
    let expect_any = |id: &Ident, ks: &[Kind], what: &str| -> Result<Kind, Error> {
        match decl.get(&id.name) {
            Some((k0, _)) if ks.contains(k0) => Ok(*k0),
            Some((k0, p0)) => Err(Error {
                file: file.to_string(),
                pos: id.pos,
                msg: format!(
                    "'{}' is {} (line {}), expected {what}",
                    id.name,
                    k0.describe(),
                    p0.line,
                ),
            }),
            None => Err(Error {
                file: file.to_string(),
                pos: id.pos,
                msg: format!("'{}' is not declared (expected {what})", id.name),
            }),
        }
    };
    let expect = |id: &Ident, k: Kind| -> Result<(), Error> {
        expect_any(id, &[k], k.describe()).map(|_| ())
    };
    let origins = end_origins(sc);
    let bev_decls: BTreeMap<String, &BevDecl> = bufferevents(sc)
        .into_iter()
        .map(|(n, d)| (n.name.clone(), d))
        .collect();
    let mut bodies: BTreeMap<String, Pos> = BTreeMap::new();
    for item in &sc.items {
        match item {
            Item::Event(EventDecl {
                source: Source::Fd(end),
                ..
            }) => expect(end, Kind::End)?,
            Item::Bufferevent(d) => {
                if let BevSource::Socket(end) = &d.source {
                    expect(end, Kind::End)?;
                }
            }
            Item::Listener(l) => {
                if let LevSource::Fd(end) = &l.source {
                    expect(end, Kind::End)?;
                    if origins.get(&end.name) != Some(&EndOrigin::Socketpair) {
                        return err(
                            end.pos,
                            format!(
                                "'listener {} fd {end}': the end must be a socketpair end",
                                l.name
                            ),
                        );
                    }
                }
            }
            Item::On(name, _) => {
                match decl.get(&name.name) {
                    Some((Kind::Event | Kind::Once, _)) => {}
                    Some((Kind::Bufferevent | Kind::Listener, _)) => {
                        return err(
                            name.pos,
                            format!(
                                "'{name}' is {}: write 'on {name}.CALLBACK' ({})",
                                kind_of(name).map_or("", |(k, _)| k.describe()),
                                if kind_of(name).map(|(k, _)| k) == Some(Kind::Listener) {
                                    "accept or error"
                                } else {
                                    "read, write or event"
                                }
                            ),
                        )
                    }
                    Some((k, p)) => {
                        return err(
                            name.pos,
                            format!(
                                "'{}' is {} (line {}), not an event or a once callback",
                                name,
                                k.describe(),
                                p.line
                            ),
                        )
                    }
                    None => {
                        return err(
                            name.pos,
                            format!(
                            "'on {name}': no event is declared and no once-event uses this name"
                        ),
                        )
                    }
                }
                if let Some(p) = bodies.insert(name.name.clone(), name.pos) {
                    return err(
                        name.pos,
                        format!(
                            "second 'on {}' block (the first is at line {})",
                            name, p.line
                        ),
                    );
                }
            }
            Item::OnCallback(name, cb, _) => {
                let want = if cb.of_bufferevent() {
                    Kind::Bufferevent
                } else {
                    Kind::Listener
                };
                match decl.get(&name.name) {
                    Some((k, _)) if *k == want => {}
                    Some((k, p)) => {
                        return err(
                            name.pos,
                            format!(
                                "'on {name}.{}': '{name}' is {} (line {}), expected {}",
                                cb.word(),
                                k.describe(),
                                p.line,
                                want.describe()
                            ),
                        )
                    }
                    None => {
                        return err(
                            name.pos,
                            format!(
                                "'on {name}.{}': '{name}' is not declared (expected {})",
                                cb.word(),
                                want.describe()
                            ),
                        )
                    }
                }
                let key = format!("{}.{}", name.name, cb.word());
                if let Some(p) = bodies.insert(key, name.pos) {
                    return err(
                        name.pos,
                        format!(
                            "second 'on {}.{}' block (the first is at line {})",
                            name,
                            cb.word(),
                            p.line
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    let rw = names::EV_READ | names::EV_WRITE;
    let rw_flags = |x: &Ident, f: u16, verb: &str| -> Result<(), Error> {
        if f == 0 || f & !rw != 0 {
            return err(
                x.pos,
                format!("'{verb} {x}' takes READ, WRITE or READ|WRITE"),
            );
        }
        Ok(())
    };
    for item in &sc.items {
        let (stmts, in_at) = match item {
            Item::On(_, b) | Item::OnCallback(_, _, b) | Item::Main(b) => (b, false),
            Item::At(_, b) => (b, true),
            _ => continue,
        };
        for stmt in stmts {
            let a = &stmt.action;
            if in_at {
                let target = match a {
                    Action::Write(e, _)
                    | Action::Shutdown(e, _)
                    | Action::Close(e)
                    | Action::Connect(e, _) => Some(e),
                    _ => None,
                };
                if let Some(e) = target {
                    if kind_of(e).map(|(k, _)| k) == Some(Kind::Bufferevent) {
                        return err(
                            e.pos,
                            format!("'{e}' is a bufferevent: 'at' blocks only act on sockets from the outside"),
                        );
                    }
                }
            }
            match a {
                Action::Add(e, t) => {
                    expect(e, Kind::Event)?;
                    if let AddTimeout::Common(c) = t {
                        expect(c, Kind::Common)?;
                    }
                }
                Action::Del(e)
                | Action::Active(e, _, _)
                | Action::PrioritySet(e, _)
                | Action::RemoveTimer(e) => expect(e, Kind::Event)?,
                Action::Free(e) => {
                    expect_any(
                        e,
                        &[Kind::Event, Kind::Bufferevent, Kind::Listener],
                        "an event, a bufferevent or a listener",
                    )?;
                }
                Action::New(e) => {
                    let k = expect_any(
                        e,
                        &[Kind::Event, Kind::Bufferevent],
                        "an event or a bufferevent",
                    )?;
                    if k == Kind::Bufferevent
                        && matches!(bev_decls.get(&e.name), Some(d) if matches!(d.source, BevSource::Pair(_)))
                    {
                        return err(
                            e.pos,
                            format!(
                                "'new {e}': the bufferevents of a pair are only created at setup"
                            ),
                        );
                    }
                }
                Action::Print(PrintWhat::Event(e)) => {
                    expect_any(
                        e,
                        &[Kind::Event, Kind::Bufferevent],
                        "an event or a bufferevent",
                    )?;
                }
                Action::Once { source, flags, .. } => {
                    if let Source::Fd(end) = source {
                        expect(end, Kind::End)?;
                    }
                    let _ = flags;
                }
                Action::Write(e, _) | Action::Read(e, _) => {
                    expect_any(
                        e,
                        &[Kind::End, Kind::Bufferevent],
                        "a socket end or a bufferevent",
                    )?;
                }
                Action::Drain(e, quiet) => {
                    let k = expect_any(
                        e,
                        &[Kind::End, Kind::Bufferevent],
                        "a socket end or a bufferevent",
                    )?;
                    if *quiet && k == Kind::Bufferevent {
                        return err(e.pos, format!("'drain {e} quiet' is for socket ends; a bufferevent drains N bytes ('drain {e} N') or all of its input ('drain {e}')"));
                    }
                }
                Action::BevDrain(e, _) => expect(e, Kind::Bufferevent)?,
                Action::Fill(e) | Action::Shutdown(e, _) | Action::Close(e) => {
                    expect(e, Kind::End)?
                }
                Action::Enable(x, f) | Action::Disable(x, f) => {
                    let verb = if matches!(a, Action::Enable(..)) {
                        "enable"
                    } else {
                        "disable"
                    };
                    let k = expect_any(
                        x,
                        &[Kind::Bufferevent, Kind::Listener],
                        "a bufferevent or a listener",
                    )?;
                    if k == Kind::Listener {
                        if *f != 0 {
                            return err(x.pos, format!("'{verb} {x}': a listener takes no flags"));
                        }
                    } else {
                        rw_flags(x, *f, verb)?;
                    }
                }
                Action::Watermark(x, f, _, _) => {
                    expect(x, Kind::Bufferevent)?;
                    rw_flags(x, *f, "watermark")?;
                }
                Action::Flush(x, f, _) => {
                    expect(x, Kind::Bufferevent)?;
                    rw_flags(x, *f, "flush")?;
                }
                Action::Trigger(x, f, _) => {
                    expect(x, Kind::Bufferevent)?;
                    rw_flags(x, *f, "trigger")?;
                }
                Action::Timeouts(x, _, _) | Action::TriggerEvent(x, _, _) | Action::Setcb(x, _) => {
                    expect(x, Kind::Bufferevent)?
                }
                Action::Connect(x, l) => {
                    let k = expect_any(
                        x,
                        &[Kind::Bufferevent, Kind::End],
                        "a 'socket none' bufferevent or a client end",
                    )?;
                    if k == Kind::End && origins.get(&x.name) != Some(&EndOrigin::Client) {
                        return err(x.pos, format!("'connect {x} …': '{x}' is not a client end (declare it with 'client {x}')"));
                    }
                    if k == Kind::Bufferevent
                        && !matches!(bev_decls.get(&x.name), Some(d) if d.source == BevSource::SocketNone)
                    {
                        return err(
                            x.pos,
                            format!(
                                "'connect {x} …': only a 'socket none' bufferevent can connect"
                            ),
                        );
                    }
                    expect(l, Kind::Listener)?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Printer

/// A duration in the canonical unit: `0`, `Ns`, `Nms` or `Nus`.
pub fn fmt_dur(us: Micros) -> String {
    if us == 0 {
        "0".into()
    } else if us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us % 1_000 == 0 {
        format!("{}ms", us / 1_000)
    } else {
        format!("{us}us")
    }
}

fn fmt_source(s: &Source) -> String {
    match s {
        Source::Timer => "timer".into(),
        Source::Fd(e) => format!("fd {e}"),
        Source::FdNone => "fd none".into(),
        Source::Signal(n) => format!("signal {}", names::signal_name(*n)),
    }
}

fn fmt_event_flags(bits: u16) -> String {
    names::join_flags(names::EVENT_FLAGS, bits, "NONE")
}

/// The canonical text of one action.
pub fn fmt_action(a: &Action) -> String {
    match a {
        Action::Add(e, AddTimeout::None) => format!("add {e}"),
        Action::Add(e, AddTimeout::Tv(d)) => format!("add {e} {}", fmt_dur(*d)),
        Action::Add(e, AddTimeout::Common(c)) => format!("add {e} common {c}"),
        Action::Del(e) => format!("del {e}"),
        Action::Active(e, res, 1) => format!("active {e} {}", fmt_event_flags(*res)),
        Action::Active(e, res, n) => format!("active {e} {} ncalls {n}", fmt_event_flags(*res)),
        Action::PrioritySet(e, p) => format!("priority_set {e} {p}"),
        Action::RemoveTimer(e) => format!("remove_timer {e}"),
        Action::Once {
            body,
            source,
            flags,
            timeout,
        } => {
            let mut s = format!("once {body} {}", fmt_source(source));
            if *flags != 0 {
                s.push(' ');
                s.push_str(&fmt_event_flags(*flags));
            }
            if let Some(t) = timeout {
                s.push(' ');
                s.push_str(&fmt_dur(*t));
            }
            s
        }
        Action::Loopexit(None) => "loopexit".into(),
        Action::Loopexit(Some(t)) => format!("loopexit {}", fmt_dur(*t)),
        Action::Loopbreak => "loopbreak".into(),
        Action::Loopcontinue => "loopcontinue".into(),
        Action::Write(e, WriteData::Bytes(b)) => {
            format!("write {e} \"{}\"", names::escape_bytes(b))
        }
        Action::Write(e, WriteData::Fill(n)) => format!("write {e} {n}"),
        Action::Read(e, n) => format!("read {e} {n}"),
        Action::Drain(e, false) => format!("drain {e}"),
        Action::Drain(e, true) => format!("drain {e} quiet"),
        Action::Fill(e) => format!("fill {e}"),
        Action::Shutdown(e, how) => {
            let h = names::SHUTDOWN_HOW
                .iter()
                .find(|(_, v)| v == how)
                .map(|(n, _)| *n)
                .unwrap_or("wr");
            format!("shutdown {e} {h}")
        }
        Action::Close(e) => format!("close {e}"),
        Action::Raise(s, 1) => format!("raise {}", names::signal_name(*s)),
        Action::Raise(s, n) => format!("raise {} {n}", names::signal_name(*s)),
        Action::Free(e) => format!("free {e}"),
        Action::New(e) => format!("new {e}"),
        Action::Print(PrintWhat::Event(e)) => format!("print {e}"),
        Action::Print(PrintWhat::Counts) => "print counts".into(),
        Action::Print(PrintWhat::Loop) => "print loop".into(),
        Action::Print(PrintWhat::Base) => "print base".into(),
        Action::Print(PrintWhat::Time) => "print time".into(),
        Action::Loop(0) => "loop".into(),
        Action::Loop(f) => format!("loop {}", names::join_flags(names::LOOP_FLAGS, *f, "0")),
        Action::PriorityInit(n) => format!("priority_init {n}"),
        Action::Sleep(d) => format!("sleep {}", fmt_dur(*d)),
        Action::BevDrain(x, n) => format!("drain {x} {n}"),
        Action::Enable(x, 0) => format!("enable {x}"),
        Action::Enable(x, f) => format!("enable {x} {}", fmt_event_flags(*f)),
        Action::Disable(x, 0) => format!("disable {x}"),
        Action::Disable(x, f) => format!("disable {x} {}", fmt_event_flags(*f)),
        Action::Watermark(x, f, lo, hi) => {
            format!("watermark {x} {} {lo} {hi}", fmt_event_flags(*f))
        }
        Action::Timeouts(x, r, w) => format!("timeouts {x} {} {}", fmt_dur(*r), fmt_dur(*w)),
        Action::Flush(x, f, m) => format!(
            "flush {x} {} {}",
            fmt_event_flags(*f),
            names::FLUSH_MODES
                .iter()
                .find(|(_, v)| v == m)
                .map_or("NORMAL", |(n, _)| *n)
        ),
        Action::Connect(x, l) => format!("connect {x} {l}"),
        Action::Trigger(x, f, o) => {
            let mut s = format!("trigger {x} {}", fmt_event_flags(*f));
            if *o != 0 {
                s.push(' ');
                s.push_str(&names::join_flags(names::TRIGGER_OPTIONS, *o, ""));
            }
            s
        }
        Action::TriggerEvent(x, w, o) => {
            let mut s = format!(
                "trigger_event {x} {}",
                names::join_flags(names::BEV_EVENTS, *w, "")
            );
            if *o != 0 {
                s.push(' ');
                s.push_str(&names::join_flags(names::TRIGGER_OPTIONS, *o, ""));
            }
            s
        }
        Action::Setcb(x, bits) => format!(
            "setcb {x} {}",
            if *bits == 0 {
                "none".to_string()
            } else {
                names::SETCB_BITS
                    .iter()
                    .filter(|(_, b)| bits & b != 0)
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        ),
    }
}

fn fmt_cond(c: &CallRange) -> String {
    match c.hi {
        Some(h) if h == c.lo => format!("#{}", c.lo),
        Some(h) => format!("#{}..{h}", c.lo),
        None => format!("#{}..", c.lo),
    }
}

fn fmt_block(out: &mut String, stmts: &[Stmt]) {
    out.push_str(" {\n");
    for s in stmts {
        out.push_str("  ");
        if let Some(c) = &s.cond {
            out.push_str(&fmt_cond(c));
            out.push(' ');
        }
        out.push_str(&fmt_action(&s.action));
        out.push('\n');
    }
    out.push_str("}\n");
}

/// The canonical text of a scenario.
pub fn print(sc: &Scenario) -> String {
    let mut out = String::new();
    for item in &sc.items {
        match item {
            Item::Base(b) => {
                out.push_str("base");
                if let Some(n) = b.priorities {
                    let _ = write!(out, " priorities {n}");
                }
                if let Some(d) = b.max_interval {
                    let _ = write!(out, " max_interval {}", fmt_dur(d));
                }
                if let Some(n) = b.max_callbacks {
                    let _ = write!(out, " max_callbacks {n}");
                }
                if let Some(n) = b.min_priority {
                    let _ = write!(out, " min_priority {n}");
                }
                if b.flags != 0 {
                    let _ = write!(
                        out,
                        " flags {}",
                        names::join_flags(names::BASE_FLAGS, b.flags, "0")
                    );
                }
                out.push('\n');
            }
            Item::Socketpair(a, b) => {
                let _ = writeln!(out, "socketpair {a} {b}");
            }
            Item::Event(e) => {
                let _ = write!(out, "event {} {}", e.name, fmt_source(&e.source));
                if e.flags != 0 {
                    let _ = write!(out, " {}", fmt_event_flags(e.flags));
                }
                if let Some(p) = e.prio {
                    let _ = write!(out, " prio {p}");
                }
                out.push('\n');
            }
            Item::Common(c, d) => {
                let _ = writeln!(out, "common {c} {}", fmt_dur(*d));
            }
            Item::On(n, body) => {
                let _ = write!(out, "on {n}");
                fmt_block(&mut out, body);
            }
            Item::OnCallback(n, cb, body) => {
                let _ = write!(out, "on {n}.{}", cb.word());
                fmt_block(&mut out, body);
            }
            Item::Bufferevent(d) => {
                let _ = write!(out, "bufferevent {} ", d.name);
                match &d.source {
                    BevSource::Pair(p) => {
                        let _ = write!(out, "pair {p}");
                    }
                    BevSource::Socket(e) => {
                        let _ = write!(out, "socket {e}");
                    }
                    BevSource::SocketNone => out.push_str("socket none"),
                }
                if d.options != 0 {
                    let _ = write!(
                        out,
                        " {}",
                        names::join_flags(names::BEV_OPTIONS, d.options, "")
                    );
                }
                out.push('\n');
            }
            Item::Listener(l) => {
                let _ = write!(out, "listener {} ", l.name);
                match &l.source {
                    LevSource::Bind(_) => out.push_str("bind"),
                    LevSource::Fd(e) => {
                        let _ = write!(out, "fd {e}");
                    }
                }
                if l.options != 0 {
                    let _ = write!(
                        out,
                        " {}",
                        names::join_flags(names::LEV_OPTIONS, l.options, "")
                    );
                }
                if let LevSource::Bind(Some(n)) = l.source {
                    let _ = write!(out, " backlog {n}");
                }
                if !l.accept.is_empty() {
                    out.push_str(" accept");
                    for e in &l.accept {
                        let _ = write!(out, " {e}");
                    }
                }
                out.push('\n');
            }
            Item::Client(c) => {
                let _ = writeln!(out, "client {c}");
            }
            Item::At(t, body) => {
                let _ = write!(out, "at {}", fmt_dur(*t));
                fmt_block(&mut out, body);
            }
            Item::Main(body) => {
                out.push_str("main");
                fmt_block(&mut out, body);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perr(src: &str) -> String {
        parse("t.scn", src).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_small_scenario() {
        let src = "base priorities 2\nevent t timer prio 0 # a comment\n on t {\n #1..2 add t 10ms\n #3.. loopexit\n}\nmain { add t 0; loop }\n";
        let sc = parse("t.scn", src).unwrap();
        assert_eq!(sc.items.len(), 4);
        let again = parse("t.scn", &print(&sc)).unwrap();
        assert_eq!(sc, again);
    }

    #[test]
    fn errors_have_positions() {
        assert_eq!(
            perr("main {\n  add x\n}\n"),
            "t.scn:2:7: 'x' is not declared (expected an event)"
        );
        assert_eq!(
            perr("event t timer\nmain {\n  add t 100\n}\n"),
            "t.scn:3:9: a duration needs a unit: 100ms, 100us or 100s (only 0 may be written bare)"
        );
        assert_eq!(
            perr("main {\n #1 loop\n}\n"),
            "t.scn:2:2: call conditions (#N) are only allowed inside 'on' blocks"
        );
        assert_eq!(
            perr("event t timer\nevent t timer\nmain {}\n"),
            "t.scn:2:7: 't' is already declared as an event at line 1"
        );
        assert_eq!(
            perr("bufferevent b pair\n"),
            "t.scn:1:19: expected the name of the pair's second bufferevent, found end of line"
        );
        assert_eq!(perr("socketpair a b\nat 5ms { add a }\nmain {}\n"), "t.scn:2:10: only write, shutdown, close, raise and connect are allowed in 'at' blocks (outside inputs)");
        assert_eq!(perr("event s signal SIGFOO\n"), "t.scn:1:16: unknown signal 'SIGFOO' (known: SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCHLD, SIGWINCH)");
        assert_eq!(
            perr("main {\n  write a \"x\n}\n"),
            "t.scn:2:11: unterminated string (strings cannot span lines)"
        );
        assert_eq!(
            perr("event t timer 10xs\n"),
            "t.scn:1:15: unknown time unit 'xs' (use us, ms or s)"
        );
        assert_eq!(
            perr("base priorities 2\nevent t timer prio 2\nmain {}\n"),
            "t.scn:2:7: event 't': prio 2 is out of range (the base has 2 priorities)"
        );
        assert_eq!(
            perr("event t timer\n"),
            "t.scn:1:1: the scenario has no 'main' block"
        );
    }
}
