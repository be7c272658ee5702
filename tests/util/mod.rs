//! Shared helpers for the integration tests: a callback log and small constructors.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::{Backend, Base, EventId, Events, Fd};

/// A shared, ordered record of what the callbacks saw.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub fn joined(&self) -> String {
        self.take().join(" ")
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Milliseconds of virtual time, for log lines (`@100`, `@100.5`).
pub fn at<B: Backend>(b: &mut Base<B>) -> String {
    let us = b.now().as_micros();
    if us % 1000 == 0 {
        format!("@{}", us / 1000)
    } else {
        format!("@{}.{:03}", us / 1000, us % 1000)
    }
}

/// An event whose callback logs `name(what)`.
pub fn logged<B: Backend + 'static>(
    base: &mut Base<B>,
    log: &Log,
    name: &'static str,
    fd: Fd,
    events: Events,
) -> EventId {
    let log = log.clone();
    base.event_new(fd, events, move |_, _, w| log.push(format!("{name}({w})")))
        .expect("event_new")
}

/// A timer whose callback logs `name(what)@ms`.
pub fn timed<B: Backend + 'static>(base: &mut Base<B>, log: &Log, name: &'static str) -> EventId {
    let log = log.clone();
    base.timer_new(move |b, _, w| log.push(format!("{name}({w}){}", at(b))))
        .expect("timer_new")
}
