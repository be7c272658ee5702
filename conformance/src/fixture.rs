//! Fixture files: insta-format snapshots `fixtures/<scenario>@<backend>.snap`.
//!
//! ```text
//! ---
//! source: conformance/scenarios/<scenario>.scn
//! expression: libevent-epoll
//! ---
//! # evloop-trace v1
//! …
//! ```
//!
//! insta's reader accepts this file (a YAML header between `---` lines, then the contents); only
//! `evconform record` writes these files.

use std::fs;
use std::path::{Path, PathBuf};

/// The libevent methods the recorder plays every scenario on.
pub const LIBEVENT_METHODS: &[&str] = &["epoll", "poll", "select"];

/// `<scenario>@<backend>.snap`.
pub fn file_name(scenario: &str, backend: &str) -> String {
    format!("{scenario}@{backend}.snap")
}

/// The path of a fixture in `dir`.
pub fn path(dir: &Path, scenario: &str, backend: &str) -> PathBuf {
    dir.join(file_name(scenario, backend))
}

/// The full text of a fixture file.
pub fn render(scenario: &str, backend: &str, trace: &str) -> String {
    format!(
        "---\nsource: conformance/scenarios/{scenario}.scn\nexpression: {backend}\n---\n{}\n",
        trace.trim_end()
    )
}

/// A fixture file read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fixture {
    /// The `source:` header value.
    pub source: String,
    /// The `expression:` header value (the backend, e.g. `libevent-epoll`).
    pub expression: String,
    /// The trace (everything after the second `---`, without the final newline).
    pub trace: String,
}

/// Parses the text of a fixture file.
pub fn parse(text: &str) -> Result<Fixture, String> {
    let rest = text
        .strip_prefix("---\n")
        .ok_or("a fixture starts with a '---' line")?;
    let end = rest
        .find("\n---\n")
        .ok_or("the fixture header is not closed by '---'")?;
    let (header, body) = (&rest[..end], &rest[end + 5..]);
    let mut source = None;
    let mut expression = None;
    for line in header.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().trim_matches('"').to_string();
            match k.trim() {
                "source" => source = Some(v),
                "expression" => expression = Some(v),
                _ => {}
            }
        }
    }
    Ok(Fixture {
        source: source.ok_or("the fixture header has no 'source:'")?,
        expression: expression.ok_or("the fixture header has no 'expression:'")?,
        trace: body.trim_end().to_string(),
    })
}

/// Reads a fixture file.
pub fn read(path: &Path) -> Result<Fixture, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = render("x", "libevent-poll", "# evloop-trace v1\n0 end\n");
        assert_eq!(t, "---\nsource: conformance/scenarios/x.scn\nexpression: libevent-poll\n---\n# evloop-trace v1\n0 end\n");
        let f = parse(&t).unwrap();
        assert_eq!(f.expression, "libevent-poll");
        assert_eq!(f.trace, "# evloop-trace v1\n0 end");
    }
}
