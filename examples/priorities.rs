//! A small priority/timer program: prints the order in which libevent's rules run callbacks.
//!
//! `cargo run --example priorities [-- BACKEND]` (epoll, poll, select or mio; default epoll).
//! The program runs under `VirtualTime`, so the printed times are exact and repeatable.

use std::time::Duration;

use evloop::backend::{AnyBackend, VirtualTime};
use evloop::{Base, Events};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "epoll".into());
    let mut base = Base::new(VirtualTime::new(AnyBackend::by_name(&name)?));
    base.priority_init(3)?;
    println!("method={} priorities={}", base.method(), base.npriorities());

    let trace = |tag: &'static str| {
        move |b: &mut Base<VirtualTime<AnyBackend>>, id, what: Events| {
            let pri = b.priority(id).unwrap_or(99);
            println!("{:>7}us {tag:<10} p{pri} what={what}", b.now().as_micros());
        }
    };

    // Eight timers with the same deadline fire in libevent's heap order, which depends on the
    // heap's whole history (here two other timers are already in it): not FIFO.
    let ties: Vec<_> = (0..8)
        .map(|i| base.timer_new(trace(["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"][i])))
        .collect::<Result<_, _>>()?;
    let adder = base.timer_new(move |b, _, _| {
        for &t in &ties {
            b.add(t, Some(Duration::from_millis(20))).unwrap();
        }
    })?;
    base.active(adder, Events::TIMEOUT, 1)?;

    // A low-priority event activated first still runs after a more urgent one.
    let low = base.event_new(-1, Events::NONE, trace("low"))?;
    base.priority_set(low, 2)?;
    let high = base.event_new(-1, Events::NONE, trace("high"))?;
    base.priority_set(high, 0)?;
    base.active(low, Events::READ, 1)?;
    base.active(high, Events::READ, 1)?;

    // A persistent 30 ms timer, and loopexit at 100 ms.
    let tick = base.event_new(-1, Events::PERSIST, trace("tick"))?;
    base.add(tick, Some(Duration::from_millis(30)))?;
    base.loopexit(Some(Duration::from_millis(100)))?;

    let rc = base.dispatch()?;
    println!("loop rc={} at {}us", rc.code(), base.now().as_micros());
    Ok(())
}
