//! The functions `src/` defines, as the build script (which stubs every libevent export not
//! among them) and `tests/readme.rs` (which checks README.md's table against them) both see
//! them: one scanner, so the two cannot disagree.
use std::collections::BTreeSet;
use std::path::Path;

/// Every function defined in the `.rs` and `.c` files of `src`: a `fn NAME(` (Rust) or a C
/// function definition `NAME(` at the start of a line after a return type.
pub fn defined_functions(src: &Path) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for f in std::fs::read_dir(src).expect("src/") {
        let p = f.expect("dir entry").path();
        if p.extension().is_some_and(|e| e == "rs" || e == "c") {
            scan(&p, &mut set);
        }
    }
    set
}

/// Adds every `fn NAME(` (Rust) and every C function definition `NAME(` at the start of a line
/// after a return type (C) found in `p`.
fn scan(p: &Path, set: &mut BTreeSet<String>) {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let is_c = p.extension().is_some_and(|e| e == "c");
    for line in text.lines() {
        let t = line.trim_start();
        let rest = if is_c {
            // `int evbuffer_add_printf(…)` at column 0, not a declaration (no trailing `;`)
            if line.starts_with(' ') || line.starts_with('\t') || line.trim_end().ends_with(';') {
                continue;
            }
            match t.split_once(' ') {
                Some((_, r)) => r.trim_start_matches('*'),
                None => continue,
            }
        } else {
            match t.find("fn ") {
                Some(i) => &t[i + 3..],
                None => continue,
            }
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && rest[name.len()..].starts_with('(') {
            set.insert(name);
        }
    }
}
