//! The trace of a simulated run: one line per observable event, with a rolling hash.
//!
//! Every line goes through [`Trace::line`], which folds it into a 64-bit FNV-1a hash and keeps
//! the hash after each line, so two runs can be compared cheaply and the first line where they
//! part can be found without keeping the text. The text itself is kept only when asked for (it
//! costs memory on large runs). This module owns the format of nothing but the framing: the
//! lines' content is written by the world, the targets and the programs.

use std::fmt;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// "00" to "99": two digits per division.
const DIGITS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    while n >= 100 {
        let d = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    }
    if n >= 10 {
        let d = n as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + n as u8;
    }
    &buf[i..]
}

/// Where a line is formatted: straight into the FNV-1a hash, and into a copy if the text is
/// kept.
struct Sink<'a> {
    h: u64,
    copy: Option<&'a mut String>,
}

impl Sink<'_> {
    fn put(&mut self, b: &[u8]) {
        self.h = fnv(self.h, b);
        if let Some(c) = &mut self.copy {
            // Only ASCII prefixes and whole `str`s come here.
            c.push_str(std::str::from_utf8(b).unwrap_or(""));
        }
    }
}

impl fmt::Write for Sink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes());
        Ok(())
    }
}

/// A piece of a trace line for [`Trace::line_parts`]: text, a number written in decimal, or
/// anything else through `Display`.
#[derive(Clone, Copy)]
pub enum Part<'a> {
    /// Text as is.
    S(&'a str),
    /// An unsigned number.
    U(u64),
    /// A signed number.
    I(i64),
    /// Anything displayable (through `core::fmt`).
    D(&'a dyn fmt::Display),
}

/// Writes the body of a trace line straight into the hash ([`Trace::line_with`]).
pub struct LineWriter<'a> {
    sink: Sink<'a>,
}

impl LineWriter<'_> {
    /// Text.
    pub fn s(&mut self, s: &str) {
        self.sink.put(s.as_bytes());
    }
    /// An unsigned number in decimal.
    pub fn u(&mut self, n: u64) {
        let mut buf = [0u8; 20];
        self.sink.put(decimal(n, &mut buf));
    }
    /// A signed number in decimal.
    pub fn i(&mut self, n: i64) {
        if n < 0 {
            self.sink.put(b"-");
        }
        self.u(n.unsigned_abs());
    }
    /// Anything displayable (through `core::fmt`).
    pub fn d(&mut self, d: &dyn fmt::Display) {
        let _ = fmt::Write::write_fmt(&mut self.sink, format_args!("{d}"));
    }
}

/// A run's trace: the rolling hash, the hash after every line, and optionally the lines.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    hashes: Vec<u64>,
    text: Option<Vec<String>>,
    /// The callbacks the hosts ran, kept with the text (not hashed: they are for pictures).
    spans: Vec<CallbackSpan>,
}

/// One callback a host's loop ran, with its virtual begin and end times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackSpan {
    /// The host.
    pub host: usize,
    /// When it began.
    pub start: evloop::Time,
    /// When it returned (later than `start` only if it advanced the clock).
    pub end: evloop::Time,
    /// The priority it ran at.
    pub priority: usize,
    /// What it was: `timer`, `io fd 5 READ`, `signal 2`, `deferred`.
    pub name: String,
    /// True for libevent's internal events.
    pub internal: bool,
}

impl Default for Trace {
    fn default() -> Trace {
        Trace::new(false)
    }
}

impl Trace {
    /// An empty trace; `keep_text` keeps the lines themselves.
    pub fn new(keep_text: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            hashes: Vec::new(),
            text: keep_text.then(Vec::new),
            spans: Vec::new(),
        }
    }

    /// Records a callback span (only when the text is kept).
    pub fn push_span(&mut self, span: CallbackSpan) {
        if self.text.is_some() {
            self.spans.push(span);
        }
    }

    /// The callbacks recorded (empty unless the text is kept).
    pub fn spans(&self) -> &[CallbackSpan] {
        &self.spans
    }

    /// True if the lines themselves are kept.
    pub fn keeps_text(&self) -> bool {
        self.text.is_some()
    }

    /// Appends one line (without its newline).
    pub fn line(&mut self, line: &str) {
        self.line_fmt(format_args!("{line}"));
    }

    /// Appends a formatted line. The text is hashed as it is formatted, without allocating;
    /// it is only kept (as a `String`) when the trace keeps its text.
    pub fn line_fmt(&mut self, args: fmt::Arguments<'_>) {
        self.emit(None, args);
    }

    /// Appends the line `"{at} h{host} {args}"` (or `"{at} {args}"` without a host): the same
    /// bytes, hashed as they are formatted, as `line(&format!(…))` would hash.
    pub fn line_at(&mut self, at: u64, host: Option<usize>, args: fmt::Arguments<'_>) {
        self.emit(Some((at, host)), args);
    }

    /// Appends the line `"{at} h{host} "` followed by `parts`: the same bytes as
    /// [`Trace::line_at`] with the parts formatted by `format_args!`, written without
    /// `core::fmt` (the simulator's most frequent lines come this way).
    pub fn line_parts(&mut self, at: u64, host: Option<usize>, parts: &[Part<'_>]) {
        self.line_with(at, host, |w| {
            for p in parts {
                match *p {
                    Part::S(s) => w.s(s),
                    Part::U(n) => w.u(n),
                    Part::I(n) => w.i(n),
                    Part::D(d) => w.d(d),
                }
            }
        });
    }

    /// Appends the line `"{at} h{host} "` followed by what `body` writes.
    pub fn line_with(
        &mut self,
        at: u64,
        host: Option<usize>,
        body: impl FnOnce(&mut LineWriter<'_>),
    ) {
        let mut copy = self.text.is_some().then(String::new);
        let mut w = LineWriter {
            sink: Sink {
                h: self.hash,
                copy: copy.as_mut(),
            },
        };
        w.u(at);
        if let Some(h) = host {
            w.s(" h");
            w.u(h as u64);
        }
        w.s(" ");
        body(&mut w);
        let h = w.sink.h;
        self.finish(h, copy);
    }

    fn finish(&mut self, h: u64, copy: Option<String>) {
        let h = fnv(h, b"\n");
        self.hash = h;
        self.hashes.push(h);
        if let (Some(t), Some(c)) = (&mut self.text, copy) {
            t.push(c);
        }
    }

    fn emit(&mut self, prefix: Option<(u64, Option<usize>)>, args: fmt::Arguments<'_>) {
        let mut copy = self.text.is_some().then(String::new);
        let mut w = Sink {
            h: self.hash,
            copy: copy.as_mut(),
        };
        if let Some((at, host)) = prefix {
            let mut buf = [0u8; 20];
            w.put(decimal(at, &mut buf));
            if let Some(h) = host {
                w.put(b" h");
                w.put(decimal(h as u64, &mut buf));
            }
            w.put(b" ");
        }
        match args.as_str() {
            Some(s) => w.put(s.as_bytes()),
            None => {
                let _ = fmt::Write::write_fmt(&mut w, args);
            }
        }
        let h = w.h;
        self.finish(h, copy);
    }

    /// The hash of everything so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True if no line was written.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The lines, if kept.
    pub fn lines(&self) -> Option<&[String]> {
        self.text.as_deref()
    }

    /// The whole text (one line each, `\n`-terminated), if kept.
    pub fn text(&self) -> Option<String> {
        self.text.as_ref().map(|t| {
            let mut s = String::with_capacity(t.iter().map(|l| l.len() + 1).sum());
            for l in t {
                s.push_str(l);
                s.push('\n');
            }
            s
        })
    }

    /// A summary that can be compared and sent between threads.
    pub fn summary(&self) -> TraceSummary {
        TraceSummary {
            hash: self.hash,
            lines: self.hashes.len(),
        }
    }

    /// The index of the first line where `self` and `other` differ, if they differ (a missing
    /// line counts as a difference).
    pub fn first_difference(&self, other: &Trace) -> Option<usize> {
        let n = self.hashes.len().min(other.hashes.len());
        (0..n)
            .find(|&i| self.hashes[i] != other.hashes[i])
            .or((self.hashes.len() != other.hashes.len()).then_some(n))
    }
}

/// The comparable part of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceSummary {
    /// The rolling hash after the last line.
    pub hash: u64,
    /// The number of lines.
    pub lines: usize,
}

impl fmt::Display for TraceSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lines, hash {:016x}", self.lines, self.hash)
    }
}

/// Describes where two traces part: the line number (1-based) and both lines.
pub fn describe_difference(a: &Trace, b: &Trace) -> Option<String> {
    let i = a.first_difference(b)?;
    let get = |t: &Trace| {
        t.lines()
            .and_then(|l| l.get(i).cloned())
            .unwrap_or_else(|| "<no line>".to_owned())
    };
    Some(format!(
        "first difference at line {}:\n  run 1: {}\n  run 2: {}",
        i + 1,
        get(a),
        get(b)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_line_and_its_order() {
        let mut a = Trace::new(true);
        let mut b = Trace::new(true);
        a.line("x");
        a.line("y");
        b.line("y");
        b.line("x");
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.first_difference(&b), Some(0));
        let mut c = Trace::new(false);
        c.line("x");
        c.line("y");
        assert_eq!(a.summary(), c.summary());
        assert_eq!(a.first_difference(&c), None);
        c.line("z");
        assert_eq!(a.first_difference(&c), Some(2));
    }

    /// The formatting paths hash exactly the bytes of the text, as the original
    /// `line(&format!(…))` did (byte-by-byte FNV-1a of the line and its newline).
    #[test]
    fn decimal_is_display() {
        let mut buf = [0u8; 20];
        for n in (0..2000u64).chain([9_999, 10_000, 99_999_999, u64::MAX, u64::MAX / 7]) {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn formatted_lines_hash_their_text() {
        let reference = |lines: &[String]| {
            let mut h = FNV_OFFSET;
            for l in lines {
                for &b in l.as_bytes().iter().chain(b"\n") {
                    h ^= u64::from(b);
                    h = h.wrapping_mul(FNV_PRIME);
                }
            }
            h
        };
        for keep in [false, true] {
            let mut t = Trace::new(keep);
            t.line_at(0, Some(0), format_args!("listen {} {}", 3, "0.0.0.0:9995"));
            t.line_at(
                18_446_744_073_709_551_615,
                None,
                format_args!("fault #{} é", 5),
            );
            t.line_at(42, Some(12), format_args!("park"));
            t.line_fmt(format_args!("{:?} {:>4}", "q", 7));
            t.line("plain");
            let shown = Trace::new(false);
            t.line_parts(
                7,
                Some(3),
                &[
                    Part::S("c"),
                    Part::U(9),
                    Part::S(" x="),
                    Part::I(-11),
                    Part::S(" "),
                    Part::D(&shown.summary()),
                ],
            );
            t.line_parts(0, None, &[Part::I(0), Part::U(0)]);
            let text = [
                "0 h0 listen 3 0.0.0.0:9995".to_owned(),
                "18446744073709551615 fault #5 é".to_owned(),
                "42 h12 park".to_owned(),
                "\"q\"    7".to_owned(),
                "plain".to_owned(),
                format!("7 h3 c9 x=-11 {}", shown.summary()),
                "0 00".to_owned(),
            ];
            assert_eq!(t.hash(), reference(&text));
            assert_eq!(t.len(), 7);
            if keep {
                assert_eq!(t.lines().unwrap(), text);
            }
        }
    }
}
