//! A line-based key-value server with TTLs and idle timeouts, written once for any evloop
//! `Backend`: the same code runs over epoll in production and over the simulator in tests.
//!
//! Protocol, one command a line (LF), one reply a line:
//! - `SET key value [ttl_ms]` → `OK` (with a TTL the entry expires `ttl_ms` after the SET)
//! - `GET key` → `VALUE value` or `NOT_FOUND` (also once expired)
//! - `DEL key` → `DELETED` or `NOT_FOUND`
//! - `QUIT` → `BYE`, then the server closes the connection
//! - anything else → `ERROR`
//!
//! A connection that sends nothing for `idle` is closed (the client reads EOF).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::{
    Backend, Base, BevEvents, BevOptions, BufferEvent, EolStyle, Events, Fd, Listener,
    ListenerOptions, Time,
};

/// The server's settings.
#[derive(Clone, Copy, Debug)]
pub struct KvConfig {
    /// Idle connections are closed after this long.
    pub idle: Duration,
    /// The planted bug: a read that ends in the middle of a line runs the partial line as a
    /// command (what a server does when it trusts one read to hold one command).
    pub bug_partial_lines: bool,
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The value.
    pub value: String,
    /// When it expires.
    pub expires: Option<Time>,
}

/// The store, shared with whoever wants to look at it (the tests do).
pub type Store = Rc<RefCell<BTreeMap<String, Value>>>;

/// Starts the server on `addr`; the caller dispatches (or hands the base to a simulator).
pub fn kv_server<B: Backend + 'static>(
    base: &mut Base<B>,
    addr: SocketAddr,
    cfg: KvConfig,
) -> evloop::Result<(Listener, Store)> {
    let store: Store = Rc::default();
    let st = store.clone();
    let listener = Listener::bind(
        base,
        addr,
        ListenerOptions::REUSEABLE | ListenerOptions::CLOSE_ON_FREE,
        -1,
        Some(Box::new(move |base: &mut Base<B>, _, fd: Fd, _| {
            accept(base, fd, cfg, st.clone())
        })),
    )?;
    Ok((listener, store))
}

fn accept<B: Backend + 'static>(base: &mut Base<B>, fd: Fd, cfg: KvConfig, store: Store) {
    let Ok(bev) = BufferEvent::socket_new(base, fd, BevOptions::CLOSE_ON_FREE) else {
        let _ = base.backend_mut().close(fd);
        return;
    };
    let quitting = Rc::new(RefCell::new(false));
    let q = quitting.clone();
    let r = bev.setcb(
        base,
        Some(Box::new(move |base: &mut Base<B>, bev: BufferEvent| {
            on_read(base, bev, cfg, &store, &q)
        })),
        Some(Box::new(move |base: &mut Base<B>, bev: BufferEvent| {
            // Everything written: a QUIT connection can go now.
            if *quitting.borrow() {
                let _ = bev.free(base);
            }
        })),
        Some(Box::new(
            |base: &mut Base<B>, bev: BufferEvent, _: BevEvents| {
                // EOF, error, or the idle timeout: close.
                let _ = bev.free(base);
            },
        )),
    );
    let ok = r.is_ok()
        && bev.set_timeouts(base, Some(cfg.idle), None).is_ok()
        && bev.enable(base, Events::READ | Events::WRITE).is_ok();
    if !ok {
        let _ = bev.free(base);
    }
}

fn on_read<B: Backend>(
    base: &mut Base<B>,
    bev: BufferEvent,
    cfg: KvConfig,
    store: &Store,
    quitting: &Rc<RefCell<bool>>,
) {
    loop {
        let line = match bev.readln(base, EolStyle::Lf) {
            Ok(Some(l)) => l,
            Ok(None) if cfg.bug_partial_lines => {
                // The bug: whatever is there is taken as a whole command.
                let mut rest = vec![0u8; bev.input(base).map_or(0, |i| i.len())];
                if rest.is_empty() || bev.read(base, &mut rest).is_err() {
                    return;
                }
                rest
            }
            _ => return,
        };
        let now = base.now();
        let reply = execute(
            &mut store.borrow_mut(),
            &String::from_utf8_lossy(&line),
            now,
        );
        if reply == "BYE" {
            *quitting.borrow_mut() = true;
            let _ = bev.disable(base, Events::READ);
        }
        let _ = bev.write(base, format!("{reply}\n").as_bytes());
        if *quitting.borrow() {
            return;
        }
    }
}

/// Runs one command against the store at time `now`; returns the reply line.
pub fn execute(store: &mut BTreeMap<String, Value>, line: &str, now: Time) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let live = |v: &Value| v.expires.is_none_or(|t| now < t);
    match words.as_slice() {
        ["SET", key, value, rest @ ..] if rest.len() <= 1 => {
            let ttl = match rest.first().map(|t| t.parse::<u64>()) {
                None => None,
                Some(Ok(ms)) => Some(now.saturating_add(Duration::from_millis(ms))),
                Some(Err(_)) => return "ERROR".into(),
            };
            let v = Value {
                value: (*value).to_owned(),
                expires: ttl,
            };
            store.insert((*key).to_owned(), v);
            "OK".into()
        }
        ["GET", key] => match store.get(*key) {
            Some(v) if live(v) => format!("VALUE {}", v.value),
            _ => "NOT_FOUND".into(),
        },
        ["DEL", key] => match store.remove(*key) {
            Some(v) if live(&v) => "DELETED".into(),
            _ => "NOT_FOUND".into(),
        },
        ["QUIT"] => "BYE".into(),
        _ => "ERROR".into(),
    }
}
