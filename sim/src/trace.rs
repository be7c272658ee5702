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
        let mut h = self.hash;
        for &b in line.as_bytes().iter().chain(b"\n") {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.hash = h;
        self.hashes.push(h);
        if let Some(t) = &mut self.text {
            t.push(line.to_owned());
        }
    }

    /// Appends a formatted line; the arguments are only formatted once.
    pub fn line_fmt(&mut self, args: fmt::Arguments<'_>) {
        match args.as_str() {
            Some(s) => self.line(s),
            None => self.line(&args.to_string()),
        }
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
}
