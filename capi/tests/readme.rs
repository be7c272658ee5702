//! capi/README.md's table of implemented functions is exactly what `src/` implements (a name
//! of libevent's export list defined by a `fn NAME(` in `src/*.rs` or a C definition in
//! `src/printf.c`); everything else is a generated stub.

use std::collections::BTreeSet;
use std::path::Path;

#[path = "../scan.rs"]
mod scan;

fn implemented(dir: &Path) -> BTreeSet<String> {
    let set = scan::defined_functions(&dir.join("src"));
    let exports = std::fs::read_to_string(dir.join("symbols/libevent-2.1.so.7.txt")).expect("list");
    let libevent: BTreeSet<String> = exports
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect();
    set.intersection(&libevent).cloned().collect()
}

#[test]
fn readme_lists_exactly_the_implemented_functions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- implemented:begin -->")
        .expect("begin marker");
    let end = readme.find("<!-- implemented:end -->").expect("end marker");
    let listed: BTreeSet<String> = readme[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.ends_with('*'))
        .map(str::to_string)
        .collect();
    let real = implemented(dir);
    assert!(real.len() > 150, "only {} implemented?", real.len());
    let not_listed: Vec<&String> = real.difference(&listed).collect();
    let not_real: Vec<&String> = listed.difference(&real).collect();
    assert!(
        not_listed.is_empty() && not_real.is_empty(),
        "implemented but not in README: {not_listed:?}\nin README but a stub: {not_real:?}"
    );
    let count = format!("{} of the 628 functions", real.len());
    assert!(readme.contains(&count), "README should say '{count}'");
}
