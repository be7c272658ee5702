//! Trace comparison: exact line equality, except inside the windows NONDETERMINISM.md allows.
//!
//! The only relaxation (NONDETERMINISM.md §1): in fixtures recorded on libevent's select
//! backend, the player brackets the lines that follow a `select()` call reporting two or more
//! ready descriptors with `~window N` … `~window-end`. Inside such a window the *callback
//! blocks* (a `cb` line and the lines after it up to the next `cb` line) are compared as a
//! multiset; lines before the window's first `cb` line are compared exactly. Marker lines
//! (starting with `~`) are never compared and are dropped from the actual trace.

use std::fmt;

/// Where and how two traces differ. Its `Display` shows the first differing line with context:
/// unmarked lines are equal, `-` lines are the expected trace, `+` lines the actual one; line
/// numbers count the lines of each trace (the `# evloop-trace v1` header is line 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// 1-based line of the expected trace (fixture trace, markers included) where it differs.
    pub line: usize,
    /// What differs.
    pub reason: String,
    /// Context: expected lines (line number, text), starting a few lines before `line`.
    pub expected: Vec<(usize, String)>,
    /// The actual lines at the same place (line number in the actual trace, text).
    pub actual: Vec<(usize, String)>,
    /// Number of leading context lines that compared equal (shown once, unmarked).
    pub common: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "first difference at line {} of the trace: {}",
            self.line, self.reason
        )?;
        for (n, l) in self.expected.iter().take(self.common) {
            writeln!(f, "   {n:>5}  {l}")?;
        }
        for (n, l) in self.expected.iter().skip(self.common) {
            writeln!(f, " - {n:>5}  {l}")?;
        }
        let mut first = true;
        for (n, l) in self.actual.iter().skip(self.common) {
            if !first {
                writeln!(f)?;
            }
            first = false;
            write!(f, " + {n:>5}  {l}")?;
        }
        Ok(())
    }
}

const CONTEXT: usize = 3;

fn kind(line: &str) -> &str {
    line.split(' ').nth(1).unwrap_or("")
}

/// True if a callback block may move inside a window: any callback except a pure timeout
/// (`cb NAME #N T`), which libevent activates after the select() call's descriptors and whose
/// place therefore does not depend on the scan order.
fn movable(block: &[&str]) -> bool {
    let first = block.first().copied().unwrap_or("");
    !(kind(first) == "cb" && first.rsplit(' ').next() == Some("T"))
}

/// Splits window lines into the exact prefix, the callback blocks that may move (sorted), and
/// the sequence of blocks with every movable block replaced by a placeholder (compared exactly).
type Blocks<'a> = (Vec<&'a str>, Vec<Vec<&'a str>>, Vec<Option<Vec<&'a str>>>);

fn blocks<'a>(lines: &[&'a str]) -> Blocks<'a> {
    let first = lines
        .iter()
        .position(|l| kind(l) == "cb")
        .unwrap_or(lines.len());
    let prefix = lines[..first].to_vec();
    let mut all: Vec<Vec<&str>> = Vec::new();
    for l in &lines[first..] {
        if kind(l) == "cb" || all.is_empty() {
            all.push(vec![l]);
        } else if let Some(b) = all.last_mut() {
            b.push(l);
        }
    }
    let shape = all
        .iter()
        .map(|b| if movable(b) { None } else { Some(b.clone()) })
        .collect();
    let mut free: Vec<Vec<&str>> = all.into_iter().filter(|b| movable(b)).collect();
    free.sort();
    (prefix, free, shape)
}

/// Compares an actual trace with the expected (fixture) trace, with the window relaxation
/// (NONDETERMINISM.md §1: for a select trace from a process whose fd numbers differ from the
/// player's).
pub fn compare(expected: &str, actual: &str) -> Result<(), Mismatch> {
    compare_with(expected, actual, Mode::Windows)
}

/// Compares an actual trace with the expected (fixture) trace exactly, marker lines ignored on
/// both sides: for traces whose select scan order is reproducible (the isolated runner and the
/// C ABI columns, whose processes number their descriptors as the player's does).
pub fn compare_strict(expected: &str, actual: &str) -> Result<(), Mismatch> {
    compare_with(expected, actual, Mode::Strict)
}

/// Compares two traces line by line, markers included (the determinism check of the recorder).
pub fn compare_exact(expected: &str, actual: &str) -> Result<(), Mismatch> {
    compare_with(expected, actual, Mode::Exact)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Markers ignored, windows compared as sets of callback blocks.
    Windows,
    /// Markers ignored, everything else exact.
    Strict,
    /// Every line, markers included.
    Exact,
}

fn compare_with(expected: &str, actual: &str, mode: Mode) -> Result<(), Mismatch> {
    let relax = mode == Mode::Windows;
    let skip_markers = mode != Mode::Exact;
    let exp: Vec<&str> = expected.trim_end().lines().collect();
    // actual lines with their 1-based numbers, markers dropped unless comparing them
    let act: Vec<(usize, &str)> = actual
        .trim_end()
        .lines()
        .enumerate()
        .filter(|(_, l)| !skip_markers || !l.starts_with('~'))
        .map(|(i, l)| (i + 1, l))
        .collect();
    let mismatch = |i: usize, j: usize, span: usize, reason: String| -> Mismatch {
        let lo = i.saturating_sub(CONTEXT);
        let common = i - lo;
        let expected: Vec<(usize, String)> = exp
            .iter()
            .enumerate()
            .skip(lo)
            .take(common + span.max(1) + CONTEXT)
            .map(|(k, l)| (k + 1, l.to_string()))
            .collect();
        let jlo = j.saturating_sub(common);
        let actual: Vec<(usize, String)> = act
            .iter()
            .skip(jlo)
            .take(common + span.max(1) + CONTEXT)
            .map(|(n, l)| (*n, l.to_string()))
            .collect();
        Mismatch {
            line: i + 1,
            reason,
            expected,
            actual,
            common: common.min(j),
        }
    };
    let (mut i, mut j) = (0usize, 0usize);
    while i < exp.len() {
        let l = exp[i];
        if relax && l.starts_with("~window ") {
            let start = i + 1;
            let mut k = start;
            while k < exp.len() && !exp[k].starts_with('~') {
                k += 1;
            }
            let win = &exp[start..k];
            let m = win.len();
            if j + m > act.len() {
                return Err(mismatch(
                    start,
                    j,
                    m,
                    "the actual trace ends inside a select() window".into(),
                ));
            }
            let got: Vec<&str> = act[j..j + m].iter().map(|(_, l)| *l).collect();
            if blocks(win) != blocks(&got) {
                return Err(mismatch(
                    start,
                    j,
                    m,
                    format!(
                        "lines {}..{} are a select() window (compared as a set of callback blocks, NONDETERMINISM.md §1) and the sets differ",
                        start + 1,
                        k
                    ),
                ));
            }
            j += m;
            i = if k < exp.len() && exp[k] == "~window-end" {
                k + 1
            } else {
                k
            };
            continue;
        }
        if skip_markers && l.starts_with('~') {
            i += 1;
            continue;
        }
        match act.get(j) {
            None => return Err(mismatch(i, j, 1, "the actual trace ends here".into())),
            Some((_, a)) if *a != l => return Err(mismatch(i, j, 1, "lines differ".into())),
            _ => {}
        }
        i += 1;
        j += 1;
    }
    if j < act.len() {
        return Err(mismatch(
            exp.len(),
            j,
            1,
            format!("the actual trace has {} more line(s)", act.len() - j),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_traces_pass() {
        assert!(compare("a\nb\n", "a\nb").is_ok());
    }

    #[test]
    fn one_changed_line_fails_readably() {
        let exp = "# evloop-trace v1\n0 loop flags=0\n100 cb t #1 T\n100 loop-end rc=1\n100 end\n";
        let act = "# evloop-trace v1\n0 loop flags=0\n100 cb t #1 R\n100 loop-end rc=1\n100 end\n";
        let m = compare(exp, act).unwrap_err();
        assert_eq!(m.line, 3);
        let text = m.to_string();
        assert!(
            text.contains("first difference at line 3 of the trace"),
            "{text}"
        );
        assert!(text.contains(" -     3  100 cb t #1 T"), "{text}");
        assert!(text.contains(" +     3  100 cb t #1 R"), "{text}");
        assert!(text.contains("       2  0 loop flags=0"), "{text}");
    }

    #[test]
    fn windows_compare_blocks_as_sets() {
        let exp = "0 loop flags=0\n~window 2\n5 cb a #1 R\n5 read a n=1 \"x\"\n5 cb b #1 R\n5 read b n=1 \"y\"\n~window-end\n5 loop-end rc=1\n";
        let swapped = "0 loop flags=0\n5 cb b #1 R\n5 read b n=1 \"y\"\n5 cb a #1 R\n5 read a n=1 \"x\"\n5 loop-end rc=1\n";
        assert!(compare(exp, swapped).is_ok());
        let wrong = "0 loop flags=0\n5 cb b #1 R\n5 read a n=1 \"y\"\n5 cb a #1 R\n5 read b n=1 \"x\"\n5 loop-end rc=1\n";
        let m = compare(exp, wrong).unwrap_err();
        assert!(m.reason.contains("select() window"), "{m}");
        // outside a window the order is exact
        let exp2 = exp.replace("~window 2\n", "").replace("~window-end\n", "");
        assert!(compare(&exp2, swapped).is_err());
    }

    #[test]
    fn strict_ignores_markers_but_not_the_order_in_a_window() {
        let exp =
            "0 loop flags=0\n~window 2\n5 cb a #1 R\n5 cb b #1 R\n~window-end\n5 loop-end rc=1\n";
        let same = "0 loop flags=0\n5 cb a #1 R\n5 cb b #1 R\n5 loop-end rc=1\n";
        let swapped = "0 loop flags=0\n5 cb b #1 R\n5 cb a #1 R\n5 loop-end rc=1\n";
        assert!(compare_strict(exp, same).is_ok());
        assert!(compare(exp, swapped).is_ok());
        let m = compare_strict(exp, swapped).unwrap_err();
        assert_eq!(m.reason, "lines differ", "{m}");
        assert_eq!(m.line, 3, "{m}");
        // markers in the actual trace are ignored too; the recorder's exact mode keeps them
        let with_markers = "0 loop flags=0\n~window 2\n5 cb a #1 R\n5 cb b #1 R\n5 loop-end rc=1\n";
        assert!(compare_strict(exp, with_markers).is_ok());
        assert!(compare_exact(exp, with_markers).is_err());
    }

    #[test]
    fn timer_blocks_keep_their_place_in_a_window() {
        let exp = "~window 2\n5 cb a #1 R\n5 cb b #1 R\n5 cb t #1 T\n5 print counts\n~window-end\n";
        assert!(compare(
            exp,
            "5 cb b #1 R\n5 cb a #1 R\n5 cb t #1 T\n5 print counts\n"
        )
        .is_ok());
        let m = compare(
            exp,
            "5 cb t #1 T\n5 print counts\n5 cb a #1 R\n5 cb b #1 R\n",
        )
        .unwrap_err();
        assert!(m.reason.contains("select() window"), "{m}");
    }

    #[test]
    fn length_differences() {
        assert_eq!(
            compare("a\nb\n", "a\n").unwrap_err().reason,
            "the actual trace ends here"
        );
        assert!(compare("a\n", "a\nb\n")
            .unwrap_err()
            .reason
            .contains("1 more line"));
    }
}
