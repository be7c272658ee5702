//! Symbol tables shared by the scenario language, the IR, the traces and the C player.
//!
//! Every table here has a twin in `player/player.c`; TRACE.md and IR.md document both. The
//! numeric values are libevent 2.1.12's (flags) and Linux's (signals, errno), because the IR is
//! executed on Linux by both interpreters.

/// libevent's `EV_*` event flags, in trace-letter order.
pub const EV_TIMEOUT: u16 = 0x01;
/// `EV_READ`.
pub const EV_READ: u16 = 0x02;
/// `EV_WRITE`.
pub const EV_WRITE: u16 = 0x04;
/// `EV_SIGNAL`.
pub const EV_SIGNAL: u16 = 0x08;
/// `EV_PERSIST`.
pub const EV_PERSIST: u16 = 0x10;
/// `EV_ET`.
pub const EV_ET: u16 = 0x20;
/// `EV_FINALIZE` (never written in scenarios; has a trace letter for completeness).
pub const EV_FINALIZE: u16 = 0x40;
/// `EV_CLOSED`.
pub const EV_CLOSED: u16 = 0x80;

/// The event flags a scenario may write, by name (the language's spelling).
pub const EVENT_FLAGS: &[(&str, u16)] = &[
    ("TIMEOUT", EV_TIMEOUT),
    ("READ", EV_READ),
    ("WRITE", EV_WRITE),
    ("SIGNAL", EV_SIGNAL),
    ("PERSIST", EV_PERSIST),
    ("ET", EV_ET),
    ("CLOSED", EV_CLOSED),
];

/// Trace letters of `what`/pending flags, in the fixed order T R W S P E F C.
pub const FLAG_LETTERS: &[(u16, char)] = &[
    (EV_TIMEOUT, 'T'),
    (EV_READ, 'R'),
    (EV_WRITE, 'W'),
    (EV_SIGNAL, 'S'),
    (EV_PERSIST, 'P'),
    (EV_ET, 'E'),
    (EV_FINALIZE, 'F'),
    (EV_CLOSED, 'C'),
];

/// The letter form of a flag set: `TRWSPEFC` order, `0` when empty.
pub fn what_letters(bits: u16) -> String {
    let s: String = FLAG_LETTERS
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect();
    if s.is_empty() {
        "0".to_string()
    } else {
        s
    }
}

/// `EVLOOP_ONCE`.
pub const EVLOOP_ONCE: u32 = 0x01;
/// `EVLOOP_NONBLOCK`.
pub const EVLOOP_NONBLOCK: u32 = 0x02;
/// `EVLOOP_NO_EXIT_ON_EMPTY`.
pub const EVLOOP_NO_EXIT_ON_EMPTY: u32 = 0x04;

/// Loop flags by name.
pub const LOOP_FLAGS: &[(&str, u32)] = &[
    ("ONCE", EVLOOP_ONCE),
    ("NONBLOCK", EVLOOP_NONBLOCK),
    ("NO_EXIT_ON_EMPTY", EVLOOP_NO_EXIT_ON_EMPTY),
];

/// `EVENT_BASE_FLAG_NO_CACHE_TIME`.
pub const BASE_NO_CACHE_TIME: u32 = 0x08;
/// `EVENT_BASE_FLAG_PRECISE_TIMER`.
pub const BASE_PRECISE_TIMER: u32 = 0x20;

/// Base flags a scenario may set, by name.
pub const BASE_FLAGS: &[(&str, u32)] = &[
    ("NO_CACHE_TIME", BASE_NO_CACHE_TIME),
    ("PRECISE_TIMER", BASE_PRECISE_TIMER),
];

/// `EV_FEATURE_*` names, in trace order.
pub const FEATURES: &[(&str, u32)] = &[
    ("ET", 0x01),
    ("O1", 0x02),
    ("FDS", 0x04),
    ("EARLY_CLOSE", 0x08),
];

/// Names joined with `|` for the bits of `bits` found in `table`; `zero` when none is set.
pub fn join_flags<T: Copy + std::ops::BitAnd<Output = T> + PartialEq + Default>(
    table: &[(&str, T)],
    bits: T,
    zero: &str,
) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(_, b)| bits & *b != T::default())
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        zero.to_string()
    } else {
        names.join("|")
    }
}

/// The signals a scenario may name, with their Linux numbers. The player sets each one to
/// `SIG_IGN` at start, so raising a signal no event watches does nothing.
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGCHLD", 17),
    ("SIGWINCH", 28),
];

/// The name of signal `n` (`SIG#n` if it is not in the table).
pub fn signal_name(n: i32) -> String {
    SIGNALS
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| format!("SIG#{n}"))
}

/// The number of the signal called `name`.
pub fn signal_number(name: &str) -> Option<i32> {
    SIGNALS.iter().find(|(s, _)| *s == name).map(|(_, v)| *v)
}

/// errno names printed in traces (Linux numbers). Anything else prints as `E#<n>`.
pub const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EINTR", 4),
    ("EIO", 5),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("EEXIST", 17),
    ("EINVAL", 22),
    ("EMFILE", 24),
    ("EPIPE", 32),
    ("EDEADLK", 35),
    ("ENOSYS", 38),
    ("ENOTSOCK", 88),
    ("EOPNOTSUPP", 95),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOTCONN", 107),
    ("ECONNREFUSED", 111),
    ("EINPROGRESS", 115),
];

/// The trace name of errno `n`.
pub fn errno_name(n: i32) -> String {
    ERRNOS
        .iter()
        .find(|(_, v)| *v == n)
        .map(|(s, _)| s.to_string())
        .unwrap_or_else(|| format!("E#{n}"))
}

/// Bufferevent options a scenario may write (`BEV_OPT_*`, libevent's values).
pub const BEV_OPTIONS: &[(&str, u32)] = &[("CLOSE_ON_FREE", 0x01), ("DEFER_CALLBACKS", 0x04)];

/// `BEV_OPT_CLOSE_ON_FREE`.
pub const BEV_OPT_CLOSE_ON_FREE: u32 = 0x01;
/// `BEV_OPT_DEFER_CALLBACKS`.
pub const BEV_OPT_DEFER_CALLBACKS: u32 = 0x04;

/// Listener options a scenario may write (`LEV_OPT_*`, libevent's values).
pub const LEV_OPTIONS: &[(&str, u32)] = &[
    ("CLOSE_ON_FREE", 1 << 1),
    ("CLOSE_ON_EXEC", 1 << 2),
    ("REUSEABLE", 1 << 3),
    ("DISABLED", 1 << 5),
    ("REUSEABLE_PORT", 1 << 7),
];

/// `LEV_OPT_CLOSE_ON_FREE`.
pub const LEV_OPT_CLOSE_ON_FREE: u32 = 1 << 1;

/// `BEV_EVENT_*` bits by name, in the order the trace prints them.
pub const BEV_EVENTS: &[(&str, u16)] = &[
    ("READING", 0x01),
    ("WRITING", 0x02),
    ("EOF", 0x10),
    ("ERROR", 0x20),
    ("TIMEOUT", 0x40),
    ("CONNECTED", 0x80),
];

/// `BEV_EVENT_ERROR`.
pub const BEV_EVENT_ERROR: u16 = 0x20;

/// The word form of a bufferevent event callback's `what`: `READING|EOF`; `0` when empty.
/// Bits without a name print as `0x..` at the end (never in the corpus).
pub fn bev_what_words(what: u16) -> String {
    let known = BEV_EVENTS.iter().fold(0u16, |a, (_, b)| a | b);
    let mut s = join_flags(BEV_EVENTS, what, "");
    if what & !known != 0 {
        if !s.is_empty() {
            s.push('|');
        }
        s.push_str(&format!("0x{:x}", what & !known));
    }
    if s.is_empty() {
        s.push('0');
    }
    s
}

/// `bufferevent_trigger` options (`BEV_TRIG_*`).
pub const TRIGGER_OPTIONS: &[(&str, u32)] =
    &[("IGNORE_WATERMARKS", 0x10000), ("DEFER_CALLBACKS", 0x04)];

/// `enum bufferevent_flush_mode`: `BEV_NORMAL`, `BEV_FLUSH`, `BEV_FINISHED`.
pub const FLUSH_MODES: &[(&str, i64)] = &[("NORMAL", 0), ("FLUSH", 1), ("FINISHED", 2)];

/// The callbacks `setcb` names, as bits: read 1, write 2, event 4.
pub const SETCB_BITS: &[(&str, u8)] = &[("read", 1), ("write", 2), ("event", 4)];

/// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR` as written in scenarios, IR operands and traces.
pub const SHUTDOWN_HOW: &[(&str, i64)] = &[("rd", 0), ("wr", 1), ("rdwr", 2)];

/// Escapes bytes the way IR strings and trace lines quote them (without the quotes):
/// printable ASCII except `"` and `\` stands for itself; `\"`, `\\`, `\n`, `\r`, `\t`; every
/// other byte is `\xHH` (two lower-case hex digits).
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Reads one quoted string (starting at the opening `"`) written by [`escape_bytes`]; returns
/// the bytes and the number of characters consumed. Accepts upper-case hex and `\0` too.
pub fn unescape_quoted(s: &str) -> Result<(Vec<u8>, usize), String> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return Err("expected '\"'".into());
    }
    let mut out = Vec::new();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((out, i + 1)),
            b'\\' => {
                let c = *b.get(i + 1).ok_or("unterminated escape")?;
                i += 2;
                match c {
                    b'"' => out.push(b'"'),
                    b'\\' => out.push(b'\\'),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'0' => out.push(0),
                    b'x' => {
                        let h = s.get(i..i + 2).ok_or("\\x needs two hex digits")?;
                        let v =
                            u8::from_str_radix(h, 16).map_err(|_| "\\x needs two hex digits")?;
                        out.push(v);
                        i += 2;
                    }
                    other => return Err(format!("unknown escape \\{}", other as char)),
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters() {
        assert_eq!(what_letters(0), "0");
        assert_eq!(what_letters(EV_READ | EV_TIMEOUT | EV_ET), "TRE");
        assert_eq!(what_letters(EV_CLOSED | EV_READ), "RC");
    }

    #[test]
    fn escapes_round_trip() {
        let all: Vec<u8> = (0..=255).collect();
        let e = format!("\"{}\"", escape_bytes(&all));
        let (back, n) = unescape_quoted(&e).unwrap();
        assert_eq!(back, all);
        assert_eq!(n, e.len());
    }

    #[test]
    fn join() {
        assert_eq!(join_flags(LOOP_FLAGS, 3, "0"), "ONCE|NONBLOCK");
        assert_eq!(join_flags(LOOP_FLAGS, 0, "0"), "0");
    }
}
