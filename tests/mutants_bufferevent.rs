//! Bufferevents (src/bufferevent/) on epoll under virtual time: tests written to kill mutants
//! that `cargo mutants` left alive in src/bufferevent/ (docs/mutation-testing.md).

mod util;

use evloop::backend::{EpollBackend, VirtualTime};
use evloop::{Base, BevOptions, BufferEvent, Events, LoopExit};

use util::*;

type B = VirtualTime<EpollBackend>;

fn base() -> Base<B> {
    Base::new(VirtualTime::new(EpollBackend::new().unwrap()))
}

/// `be_pair_transfer` re-arms the destination's write timeout when the destination has output
/// waiting, and deletes it when its output is empty.
#[test]
fn pair_transfer_arms_the_write_timeout_only_with_output_waiting() {
    for with_output in [false, true] {
        let log = Log::default();
        let mut b = base();
        let (x, y) = BufferEvent::pair_new(&mut b, BevOptions::NONE).unwrap();
        let l = log.clone();
        y.set_eventcb(&mut b, move |b, _, what| {
            l.push(format!("y {what}{}", at(b)))
        })
        .unwrap();
        y.enable(&mut b, Events::READ | Events::WRITE).unwrap();
        y.set_timeouts(&mut b, None, Some(ms(100))).unwrap();
        if with_output {
            // x does not read, so this stays in y's output.
            y.write(&mut b, b"pending").unwrap();
        }
        x.enable(&mut b, Events::WRITE).unwrap();
        x.write(&mut b, b"x").unwrap();
        assert_eq!(b.dispatch().unwrap(), LoopExit::NoEvents);
        assert_eq!(y.input(&b).unwrap().to_vec(), b"x");
        let expected = if with_output {
            "y WRITING|TIMEOUT@100"
        } else {
            ""
        };
        assert_eq!(log.joined(), expected, "with_output={with_output}");
    }
}
