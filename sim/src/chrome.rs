//! Pictures of a run: a [`Trace`] as Trace Event Format JSON, which Perfetto
//! (<https://ui.perfetto.dev>, "Open trace file") and `chrome://tracing` open.
//!
//! One process per host (`pid` = host number), with three threads: `callbacks` (tid 0), one
//! complete event (`"ph":"X"`) per callback the loop ran, at its virtual time, with its
//! priority; `waits` (tid 1), a complete event per wait of the loop, from the time it parked to
//! the time it ran again (or its wake-up time); `world` (tid 2), an instant event (`"ph":"i"`)
//! per line the world or the program wrote for that host (segments sent and arriving,
//! connects, accepts, closes, signals, the program's own lines). Faults are instant events on
//! the host they name (`"cat":"fault"`), or on the `simulator` process (pid = number of
//! hosts) with global scope. Timestamps are virtual microseconds. The callbacks come from the
//! trace's spans, recorded when the trace keeps its text (`evsim run` always does).

use std::fmt::Write as _;

use crate::trace::Trace;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A trace line split into its time, host (if any) and the rest.
struct Line<'a> {
    t: u64,
    host: Option<usize>,
    rest: &'a str,
}

fn parse_line(l: &str) -> Option<Line<'_>> {
    let (t, rest) = l.split_once(' ')?;
    let t: u64 = t.parse().ok()?;
    let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let host = word.strip_prefix('h').and_then(|h| h.parse::<usize>().ok());
    Some(match host {
        Some(h) => Line {
            t,
            host: Some(h),
            rest: tail,
        },
        None => Line {
            t,
            host: None,
            rest,
        },
    })
}

/// The first host a fault's text names (`h3`, `h1->h0`).
fn host_named(s: &str) -> Option<usize> {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| w.strip_prefix('h'))
        .find_map(|n| n.parse().ok())
}

/// The trace as Trace Event Format JSON (see the module documentation); an empty event list
/// if the trace kept no text.
pub fn trace_event_json(trace: &Trace) -> String {
    let lines: Vec<Line<'_>> = trace
        .lines()
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| parse_line(l))
        .collect();
    let spans = trace.spans();
    let nhosts = lines
        .iter()
        .filter_map(|l| l.host)
        .chain(spans.iter().map(|s| s.host))
        .max()
        .map_or(0, |m| m + 1);
    let world_pid = nhosts;
    let mut ev: Vec<String> = Vec::new();
    for h in 0..nhosts {
        ev.push(format!(
            r#"{{"name":"process_name","ph":"M","pid":{h},"tid":0,"args":{{"name":"host {h} ({})"}}}}"#,
            crate::host_addr(h)
        ));
        for (tid, name) in [(0, "callbacks"), (1, "waits"), (2, "world")] {
            ev.push(format!(
                r#"{{"name":"thread_name","ph":"M","pid":{h},"tid":{tid},"args":{{"name":"{name}"}}}}"#
            ));
        }
    }
    ev.push(format!(
        r#"{{"name":"process_name","ph":"M","pid":{world_pid},"tid":0,"args":{{"name":"simulator"}}}}"#
    ));
    for s in spans {
        ev.push(format!(
            r#"{{"name":{},"cat":"callback","ph":"X","ts":{},"dur":{},"pid":{},"tid":0,"args":{{"priority":{},"internal":{}}}}}"#,
            esc(&s.name),
            s.start.as_micros(),
            s.end.as_micros().saturating_sub(s.start.as_micros()),
            s.host,
            s.priority,
            s.internal
        ));
    }
    // Per host, the callback start times in order, to end the waits.
    let mut starts: Vec<Vec<u64>> = vec![Vec::new(); nhosts];
    for s in spans {
        starts[s.host].push(s.start.as_micros());
    }
    for v in &mut starts {
        v.sort_unstable();
    }
    let last = lines.iter().map(|l| l.t).max().unwrap_or(0);
    for l in &lines {
        match l.host {
            Some(h) if l.rest == "park" || l.rest.starts_with("park until ") => {
                let wake = l
                    .rest
                    .strip_prefix("park until ")
                    .and_then(|w| w.parse::<u64>().ok());
                let next = starts[h].iter().copied().find(|&t| t >= l.t);
                let end = match (wake, next) {
                    (Some(w), Some(n)) => w.min(n),
                    (Some(w), None) => w,
                    (None, Some(n)) => n,
                    (None, None) => last,
                }
                .max(l.t);
                ev.push(format!(
                    r#"{{"name":"wait","cat":"wait","ph":"X","ts":{},"dur":{},"pid":{h},"tid":1,"args":{{"line":{}}}}}"#,
                    l.t,
                    end - l.t,
                    esc(l.rest)
                ));
            }
            Some(h) => {
                let name: String = l.rest.split(' ').take(2).collect::<Vec<_>>().join(" ");
                ev.push(format!(
                    r#"{{"name":{},"cat":"world","ph":"i","s":"t","ts":{},"pid":{h},"tid":2,"args":{{"line":{}}}}}"#,
                    esc(&name),
                    l.t,
                    esc(l.rest)
                ));
            }
            None => {
                let (cat, body) = match l.rest.split_once(' ') {
                    Some(("fault", b)) => ("fault", b),
                    Some(("FAIL", b)) => ("failure", b),
                    _ => ("sim", l.rest),
                };
                let name = if cat == "fault" {
                    // "#5 at 32000us: latency h1->h0 +1329us": the kind.
                    body.split(": ")
                        .nth(1)
                        .and_then(|k| k.split(' ').next())
                        .map_or_else(|| "fault".to_owned(), |k| format!("fault {k}"))
                } else {
                    cat.to_owned()
                };
                let (pid, scope) = match host_named(body) {
                    Some(h) if h < nhosts && cat == "fault" => (h, "p"),
                    _ => (world_pid, "g"),
                };
                ev.push(format!(
                    r#"{{"name":{},"cat":"{cat}","ph":"i","s":"{scope}","ts":{},"pid":{pid},"tid":2,"args":{{"line":{}}}}}"#,
                    esc(&name),
                    l.t,
                    esc(body)
                ));
            }
        }
    }
    let mut out = String::from("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n");
    for (i, e) in ev.iter().enumerate() {
        out.push_str(e);
        out.push_str(if i + 1 < ev.len() { ",\n" } else { "\n" });
    }
    out.push_str("]}\n");
    out
}
