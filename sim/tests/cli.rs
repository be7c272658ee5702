//! `evsim` as a user runs it: bad numbers and names give a clear error and exit code 2 (never a
//! panic's 101 or an abort); `--chrome-trace` writes valid Trace Event Format.

use std::collections::BTreeMap;
use std::process::{Command, Output};

fn evsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_evsim"))
        .args(args)
        .output()
        .expect("run evsim")
}

#[test]
fn numeric_flags_and_names_are_validated() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "run",
                "hello-world",
                "--seed",
                "1",
                "--clients",
                "1000000000",
            ],
            "--clients",
        ),
        (
            &[
                "run",
                "hello-world",
                "--seed",
                "1",
                "--clients",
                "18446744073709551615",
            ],
            "--clients",
        ),
        (
            &["run", "hello-world", "--seed", "1", "--clients", "-1"],
            "'-1'",
        ),
        (
            &[
                "explore",
                "hello-world",
                "--seeds",
                "0..2",
                "--clients",
                "100001",
            ],
            "--clients",
        ),
        (
            &["run", "hello-world", "--seed", "18446744073709551616"],
            "--seed",
        ),
        (&["run", "hello-world", "--seed", "-3"], "'-3'"),
        (
            &["explore", "hello-world", "--seeds", "0..2", "--jobs", "0"],
            "--jobs",
        ),
        (
            &[
                "explore",
                "hello-world",
                "--seeds",
                "0..2",
                "--jobs",
                "100000000",
            ],
            "--jobs",
        ),
        (
            &["explore", "hello-world", "--seeds", "5..2"],
            "empty range",
        ),
        (
            &[
                "explore",
                "hello-world",
                "--seeds",
                "0..99999999999999999999",
            ],
            "--seeds",
        ),
        (
            &["shrink", "hello-world", "--seed", "1", "--max-runs", "0"],
            "--max-runs",
        ),
        (
            &[
                "shrink",
                "hello-world",
                "--seed",
                "1",
                "--max-runs",
                "99999999999999999999",
            ],
            "--max-runs",
        ),
        (
            &["run", "hello-world", "--seed", "1", "--only-faults", "1,x"],
            "--only-faults",
        ),
        (
            &["run", "hello-world", "--seed", "1", "--faults", "chaso"],
            "known profiles: none, lossy",
        ),
        (
            &["run", "hello-world", "--seed", "1", "--param", "x=1"],
            "takes no options",
        ),
        (
            &["run", "hello-world", "--seed", "1", "--param", "x"],
            "NAME=VALUE",
        ),
        (&["run", "nope", "--seed", "1"], "unknown target"),
    ];
    for (args, want) in cases {
        let out = evsim(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // A valid count runs.
    let out = evsim(&["run", "hello-world", "--seed", "1", "--clients", "3"]);
    assert_eq!(out.status.code(), Some(0));
}

// A small JSON reader, enough to check the Trace Event Format's structure.
#[derive(Debug, Clone, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(BTreeMap<String, J>),
}

struct P<'a>(&'a [u8], usize);

impl P<'_> {
    fn ws(&mut self) {
        while self.1 < self.0.len() && self.0[self.1].is_ascii_whitespace() {
            self.1 += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.0.get(self.1), Some(&c), "at byte {}", self.1);
        self.1 += 1;
    }
    fn value(&mut self) -> J {
        self.ws();
        match self.0[self.1] {
            b'{' => {
                self.1 += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.0[self.1] == b'}' {
                    self.1 += 1;
                    return J::Obj(m);
                }
                loop {
                    self.ws();
                    let J::Str(k) = self.value() else {
                        panic!("key")
                    };
                    self.eat(b':');
                    let v = self.value();
                    assert!(m.insert(k, v).is_none(), "duplicate key");
                    self.ws();
                    self.1 += 1;
                    match self.0[self.1 - 1] {
                        b',' => continue,
                        b'}' => return J::Obj(m),
                        c => panic!("unexpected {}", c as char),
                    }
                }
            }
            b'[' => {
                self.1 += 1;
                let mut v = Vec::new();
                self.ws();
                if self.0[self.1] == b']' {
                    self.1 += 1;
                    return J::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    self.1 += 1;
                    match self.0[self.1 - 1] {
                        b',' => continue,
                        b']' => return J::Arr(v),
                        c => panic!("unexpected {}", c as char),
                    }
                }
            }
            b'"' => {
                self.1 += 1;
                let mut s = String::new();
                loop {
                    let c = self.0[self.1];
                    self.1 += 1;
                    match c {
                        b'"' => return J::Str(s),
                        b'\\' => {
                            let e = self.0[self.1];
                            self.1 += 1;
                            match e {
                                b'n' => s.push('\n'),
                                b't' => s.push('\t'),
                                b'r' => s.push('\r'),
                                b'u' => {
                                    let h =
                                        std::str::from_utf8(&self.0[self.1..self.1 + 4]).unwrap();
                                    s.push(
                                        char::from_u32(u32::from_str_radix(h, 16).unwrap())
                                            .unwrap(),
                                    );
                                    self.1 += 4;
                                }
                                o => s.push(o as char),
                            }
                        }
                        c if c < 0x20 => panic!("raw control character in a string"),
                        _ => {
                            // Copy one UTF-8 character.
                            let start = self.1 - 1;
                            let mut end = self.1;
                            while end < self.0.len() && (self.0[end] & 0xc0) == 0x80 {
                                end += 1;
                            }
                            s.push_str(std::str::from_utf8(&self.0[start..end]).unwrap());
                            self.1 = end;
                        }
                    }
                }
            }
            b't' => self.word("true", J::Bool(true)),
            b'f' => self.word("false", J::Bool(false)),
            b'n' => self.word("null", J::Null),
            _ => {
                let start = self.1;
                while self.1 < self.0.len() && b"+-0123456789.eE".contains(&self.0[self.1]) {
                    self.1 += 1;
                }
                let t = std::str::from_utf8(&self.0[start..self.1]).unwrap();
                J::Num(t.parse().unwrap_or_else(|_| panic!("number {t:?}")))
            }
        }
    }
    fn word(&mut self, w: &str, v: J) -> J {
        assert!(self.0[self.1..].starts_with(w.as_bytes()));
        self.1 += w.len();
        v
    }
}

fn get<'a>(o: &'a BTreeMap<String, J>, k: &str) -> &'a J {
    o.get(k)
        .unwrap_or_else(|| panic!("event {o:?} lacks {k:?}"))
}

fn num(o: &BTreeMap<String, J>, k: &str) -> f64 {
    match get(o, k) {
        J::Num(n) => *n,
        other => panic!("{k} is {other:?}"),
    }
}

fn text<'a>(o: &'a BTreeMap<String, J>, k: &str) -> &'a str {
    match get(o, k) {
        J::Str(s) => s,
        other => panic!("{k} is {other:?}"),
    }
}

#[test]
fn chrome_trace_is_valid_trace_event_format() {
    let dir = std::env::temp_dir().join(format!("evsim-chrome-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (target, faults) in [
        ("hello-world", "chaos"),
        ("programs", "none"),
        ("stream", "lossy"),
    ] {
        let path = dir.join(format!("{target}.json"));
        let out = evsim(&[
            "run",
            target,
            "--seed",
            "7",
            "--faults",
            faults,
            "--clients",
            "3",
            "--chrome-trace",
            path.to_str().unwrap(),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace_text = String::from_utf8_lossy(&out.stdout).into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let mut p = P(&bytes, 0);
        let J::Obj(top) = p.value() else {
            panic!("not an object")
        };
        p.ws();
        assert_eq!(p.1, bytes.len(), "trailing bytes");
        let J::Arr(events) = get(&top, "traceEvents") else {
            panic!("traceEvents")
        };
        let (mut callbacks, mut waits, mut instants, mut faults_seen) = (0, 0, 0, 0);
        let mut named = std::collections::BTreeSet::new();
        let mut begins: BTreeMap<(i64, i64), i64> = BTreeMap::new();
        for e in events {
            let J::Obj(e) = e else { panic!("event {e:?}") };
            let ph = text(e, "ph");
            let pid = num(e, "pid") as i64;
            num(e, "tid");
            text(e, "name");
            match ph {
                "M" => {
                    let J::Obj(a) = get(e, "args") else {
                        panic!("args")
                    };
                    text(a, "name");
                    if text(e, "name") == "process_name" {
                        named.insert(pid);
                    }
                }
                "X" => {
                    assert!(num(e, "ts") >= 0.0 && num(e, "dur") >= 0.0, "{e:?}");
                    match text(e, "cat") {
                        "callback" => {
                            let J::Obj(a) = get(e, "args") else {
                                panic!("args")
                            };
                            num(a, "priority");
                            callbacks += 1;
                        }
                        "wait" => waits += 1,
                        c => panic!("complete event of category {c}"),
                    }
                }
                "B" => *begins.entry((pid, num(e, "tid") as i64)).or_default() += 1,
                "E" => *begins.entry((pid, num(e, "tid") as i64)).or_default() -= 1,
                "i" => {
                    num(e, "ts");
                    assert!(["g", "p", "t"].contains(&text(e, "s")), "{e:?}");
                    if text(e, "cat") == "fault" {
                        faults_seen += 1;
                    }
                    instants += 1;
                }
                other => panic!("unexpected phase {other}"),
            }
            if ph != "M" {
                assert!(
                    named.contains(&pid),
                    "pid {pid} has no process_name before its events"
                );
            }
        }
        assert!(begins.values().all(|&n| n == 0), "unbalanced B/E");
        // Every callback of the run is a complete event, and every park line a wait.
        let summary = String::from_utf8_lossy(&out.stderr);
        let ran: u64 = summary
            .split(" callbacks)")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("the callback count");
        assert_eq!(callbacks, ran, "{target}");
        let parks = trace_text.lines().filter(|l| l.contains(" park")).count();
        assert_eq!(waits, parks, "{target}");
        let fault_lines = trace_text
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some("fault"))
            .count();
        assert_eq!(faults_seen, fault_lines, "{target}");
        assert!(instants > 0 && callbacks > 0, "{target}");
        if faults != "none" && target != "programs" {
            assert!(faults_seen > 0, "{target}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
