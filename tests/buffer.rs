//! EvBuffer: contents against a plain byte model, the length-change callbacks and their order on
//! two-buffer operations, freezing, search and readln (libevent's regress_buffer.c semantics),
//! and reads and writes through a real backend.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use evloop::backend::{Backend, EpollBackend};
use evloop::buffer::{CbInfo, MAX_READ};
use evloop::{EolStyle, EvBuffer};
use proptest::prelude::*;

fn buf(s: &[u8]) -> EvBuffer {
    EvBuffer::from_bytes(s)
}

#[test]
fn add_prepend_drain_remove() {
    let mut b = EvBuffer::new();
    assert!(b.is_empty());
    b.add(b"world").unwrap();
    b.prepend(b"hello ").unwrap();
    b.add(b"!").unwrap();
    assert_eq!(b.to_vec(), b"hello world!");
    assert_eq!(b.len(), 12);
    b.drain(6).unwrap();
    assert_eq!(b.to_vec(), b"world!");
    let mut out = [0u8; 3];
    assert_eq!(b.remove(&mut out).unwrap(), 3);
    assert_eq!(&out, b"wor");
    assert_eq!(b.copyout(&mut out), 3);
    assert_eq!(&out, b"ld!");
    assert_eq!(b.len(), 3);
    b.drain(100).unwrap();
    assert!(b.is_empty());
}

#[test]
fn large_appends_and_drains_keep_the_bytes_in_order() {
    let mut b = EvBuffer::new();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    for c in data.chunks(777) {
        b.add(c).unwrap();
    }
    assert_eq!(b.len(), data.len());
    assert!(b.chunks().count() > 1);
    b.drain(50_001).unwrap();
    assert_eq!(b.to_vec(), &data[50_001..]);
    let view = b.pullup(Some(10_000)).unwrap().to_vec();
    assert_eq!(view, &data[50_001..60_001]);
    assert!(b.contiguous_space() >= 10_000);
    assert_eq!(b.to_vec(), &data[50_001..]);
    assert!(b.pullup(Some(1_000_000)).is_none());
    assert_eq!(b.pullup(None).unwrap(), &data[50_001..]);
}

#[test]
fn peek_returns_the_chunks_holding_the_first_bytes() {
    let mut b = EvBuffer::new();
    for part in [&b"abc"[..], b"defg", b"hi"] {
        let mut p = EvBuffer::from_bytes(part);
        b.add_buffer(&mut p).unwrap();
    }
    let v: Vec<&[u8]> = b.peek(5).collect();
    assert_eq!(v, vec![&b"abc"[..], b"de"]);
    assert_eq!(b.peek(100).map(<[u8]>::len).sum::<usize>(), 9);
    assert_eq!(b.peek(0).count(), 0);
    assert_eq!(b.contiguous_space(), 3);
}

#[test]
fn add_buffer_and_remove_buffer_move_bytes() {
    let mut a = buf(b"0123456789");
    let mut b = buf(b"ab");
    b.add_buffer(&mut a).unwrap();
    assert!(a.is_empty());
    assert_eq!(b.to_vec(), b"ab0123456789");
    let mut c = EvBuffer::new();
    assert_eq!(b.remove_buffer(&mut c, 5).unwrap(), 5);
    assert_eq!(c.to_vec(), b"ab012");
    assert_eq!(b.to_vec(), b"3456789");
    assert_eq!(b.remove_buffer(&mut c, 100).unwrap(), 7);
    assert_eq!(c.to_vec(), b"ab0123456789");
    assert!(b.is_empty());
    let mut d = buf(b"xy");
    d.prepend_buffer(&mut c).unwrap();
    assert_eq!(d.to_vec(), b"ab0123456789xy");
}

/// Records every callback of a buffer as `name:orig+added-deleted`.
fn watch(b: &mut EvBuffer, name: &'static str, log: &Rc<RefCell<Vec<String>>>) {
    let log = log.clone();
    b.add_cb(move |_, i: &CbInfo| {
        log.borrow_mut().push(format!(
            "{name}:{}+{}-{}",
            i.orig_size, i.n_added, i.n_deleted
        ))
    });
}

#[test]
fn callbacks_see_each_change_and_run_newest_first() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut b = EvBuffer::new();
    watch(&mut b, "first", &log);
    watch(&mut b, "second", &log);
    b.add(b"abc").unwrap();
    b.drain(1).unwrap();
    b.drain(0).unwrap(); // no change, no callback
    b.add(b"").unwrap();
    assert_eq!(
        log.borrow().join(" "),
        "second:0+3-0 first:0+3-0 second:3+0-1 first:3+0-1"
    );
}

#[test]
fn callback_can_be_disabled_and_removed() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut b = EvBuffer::new();
    let l = log.clone();
    let id = b.add_cb(move |_, i| l.borrow_mut().push(i.n_added));
    b.add(b"a").unwrap();
    assert!(b.set_cb_enabled(id, false));
    b.add(b"b").unwrap();
    assert!(b.set_cb_enabled(id, true));
    b.add(b"cd").unwrap();
    assert!(b.remove_cb(id));
    assert!(!b.remove_cb(id));
    b.add(b"e").unwrap();
    assert_eq!(*log.borrow(), vec![1, 2]);
}

#[test]
fn two_buffer_operations_notify_in_libevents_order() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut src = buf(b"0123456789");
    let mut dst = EvBuffer::new();
    watch(&mut src, "src", &log);
    watch(&mut dst, "dst", &log);
    // evbuffer_add_buffer(dst, src): the source first.
    dst.add_buffer(&mut src).unwrap();
    // evbuffer_remove_buffer of a part: the destination first.
    dst.remove_buffer(&mut src, 4).unwrap();
    // ... of everything: it is evbuffer_add_buffer, so the source (dst here) first.
    dst.remove_buffer(&mut src, 100).unwrap();
    assert_eq!(
        log.borrow().join(" "),
        "src:10+0-10 dst:0+10-0 src:0+4-0 dst:10+0-4 dst:6+0-6 src:4+6-0"
    );
}

#[test]
fn frozen_ends_refuse_changes() {
    let mut b = buf(b"abc");
    b.freeze(false);
    assert!(b.add(b"x").is_err());
    assert!(b.prepend(b"x").is_ok());
    b.drain(1).unwrap();
    b.freeze(true);
    assert!(b.drain(1).is_err());
    assert!(b.prepend(b"x").is_err());
    assert!(b.readln(EolStyle::Any).is_none());
    let mut other = buf(b"zz");
    assert!(other.add_buffer(&mut b).is_err());
    b.unfreeze(true);
    b.unfreeze(false);
    b.add(b"\n").unwrap();
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), b"abc");
}

#[test]
fn search_and_search_range() {
    let mut b = EvBuffer::new();
    for part in [&b"hello wo"[..], b"rld, hello", b" world"] {
        b.add(part).unwrap();
        // Separate chunks make the matches cross chunk boundaries.
        let mut tmp = EvBuffer::new();
        tmp.add_buffer(&mut b).unwrap();
        b.add_buffer(&mut tmp).unwrap();
    }
    assert_eq!(b.search(b"world", 0), Some(6));
    assert_eq!(b.search(b"world", 7), Some(19));
    assert_eq!(b.search(b"hello", 1), Some(13));
    assert_eq!(b.search(b"nope", 0), None);
    assert_eq!(b.search_range(b"world", 7, Some(23)), None);
    assert_eq!(b.search_range(b"world", 7, Some(24)), Some(19));
    assert_eq!(b.search(b"", 3), Some(3));
}

#[test]
fn readln_styles_follow_evbuffer_readln() {
    // regress_buffer.c test_evbuffer_readln, the parts that fix each style's rule.
    let mut b = buf(b"complex silly newline\r\n\n\r\n\n\rmore\0\n");
    assert_eq!(b.readln(EolStyle::Any).unwrap(), b"complex silly newline");
    assert_eq!(b.readln(EolStyle::Any).unwrap(), b"more\0");
    assert!(b.is_empty());

    let mut b = buf(b"line\r\nnext\nlast\rx\r");
    assert_eq!(b.readln(EolStyle::Crlf).unwrap(), b"line");
    assert_eq!(b.readln(EolStyle::Crlf).unwrap(), b"next");
    assert!(b.readln(EolStyle::Crlf).is_none());
    assert_eq!(b.to_vec(), b"last\rx\r");

    let mut b = buf(b"a\nb\r\nc\r\r\nd");
    assert_eq!(b.readln(EolStyle::CrlfStrict).unwrap(), b"a\nb");
    assert_eq!(b.readln(EolStyle::CrlfStrict).unwrap(), b"c\r");
    assert!(b.readln(EolStyle::CrlfStrict).is_none());

    let mut b = buf(b"x\r\ny\n\n");
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), b"x\r");
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), b"y");
    assert_eq!(b.readln(EolStyle::Lf).unwrap(), b"");
    assert!(b.readln(EolStyle::Lf).is_none());

    let mut b = buf(b"one\0two\0");
    assert_eq!(b.readln(EolStyle::Nul).unwrap(), b"one");
    assert_eq!(b.search_eol(0, EolStyle::Nul), Some((3, 1)));

    // A LF at the very start is not paired with a CR before the search start.
    let b = buf(b"\r\nz");
    assert_eq!(b.search_eol(1, EolStyle::Crlf), Some((1, 1)));
    assert_eq!(b.search_eol(0, EolStyle::Crlf), Some((0, 2)));
}

#[test]
fn readln_notifies_twice_line_then_marker() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut b = buf(b"ab\r\ncd");
    watch(&mut b, "b", &log);
    b.readln(EolStyle::CrlfStrict).unwrap();
    assert_eq!(log.borrow().join(" "), "b:6+0-2 b:4+0-2");
}

#[test]
fn read_from_caps_at_4096_and_write_to_drains() {
    let mut be = EpollBackend::new().unwrap();
    let (s0, s1) = be.socketpair().unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut out = EvBuffer::new();
    // Several chunks: the write gathers across them.
    for c in data.chunks(1000) {
        let mut part = EvBuffer::from_bytes(c);
        out.add_buffer(&mut part).unwrap();
    }
    assert_eq!(out.write_atmost(&mut be, s0, Some(3000)).unwrap(), 3000);
    assert_eq!(out.write_to(&mut be, s0).unwrap(), 7000);
    assert!(out.is_empty());
    let mut inp = EvBuffer::new();
    let mut sizes = Vec::new();
    loop {
        match inp.read_from(&mut be, s1, None) {
            Ok(n) => sizes.push(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sizes, vec![MAX_READ, MAX_READ, 10_000 - 2 * MAX_READ]);
    assert_eq!(inp.to_vec(), data);
    assert_eq!(
        inp.read_from(&mut be, s1, Some(10)).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    be.close(s0).unwrap();
    assert_eq!(inp.read_from(&mut be, s1, Some(10)).unwrap(), 0);
    be.close(s1).unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Add(Vec<u8>),
    Prepend(Vec<u8>),
    Drain(usize),
    Remove(usize),
    MoveOut(usize),
    MoveIn(Vec<u8>),
    Pullup(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..3000);
    prop_oneof![
        bytes.clone().prop_map(Op::Add),
        bytes.clone().prop_map(Op::Prepend),
        (0usize..5000).prop_map(Op::Drain),
        (0usize..5000).prop_map(Op::Remove),
        (0usize..5000).prop_map(Op::MoveOut),
        bytes.prop_map(Op::MoveIn),
        (0usize..5000).prop_map(Op::Pullup),
    ]
}

proptest! {
    /// Every operation keeps the buffer equal to a plain byte queue, and the callbacks add up.
    #[test]
    fn behaves_like_a_byte_queue(ops in proptest::collection::vec(op(), 1..40)) {
        let mut b = EvBuffer::new();
        let mut model: VecDeque<u8> = VecDeque::new();
        let total = Rc::new(RefCell::new(0i64));
        let t = total.clone();
        b.add_cb(move |_, i| *t.borrow_mut() += i.n_added as i64 - i.n_deleted as i64);
        for op in ops {
            match op {
                Op::Add(v) => { b.add(&v).unwrap(); model.extend(&v); }
                Op::Prepend(v) => {
                    b.prepend(&v).unwrap();
                    for &x in v.iter().rev() { model.push_front(x); }
                }
                Op::Drain(n) => { b.drain(n).unwrap(); model.drain(..n.min(model.len())); }
                Op::Remove(n) => {
                    let mut out = vec![0; n];
                    let k = b.remove(&mut out).unwrap();
                    let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(&out[..k], &want[..]);
                }
                Op::MoveOut(n) => {
                    let mut other = EvBuffer::from_bytes(b"head");
                    let k = b.remove_buffer(&mut other, n).unwrap();
                    let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                    prop_assert_eq!(k, want.len());
                    prop_assert_eq!(&other.to_vec()[4..], &want[..]);
                }
                Op::MoveIn(v) => {
                    let mut other = EvBuffer::from_bytes(&v);
                    b.add_buffer(&mut other).unwrap();
                    model.extend(&v);
                }
                Op::Pullup(n) => {
                    let want: Vec<u8> = model.iter().take(n).copied().collect();
                    match b.pullup(Some(n)) {
                        Some(s) => prop_assert_eq!(s, &want[..]),
                        None => prop_assert!(n > model.len()),
                    }
                }
            }
            prop_assert_eq!(b.len(), model.len());
            prop_assert_eq!(b.to_vec(), model.iter().copied().collect::<Vec<u8>>());
            prop_assert_eq!(*total.borrow(), model.len() as i64);
        }
    }
}

/// Chunks of 1, 2 and 4 KiB are recycled through a per-thread pool with their old bytes still
/// in them: a buffer built from recycled chunks (appends, prepends into a chunk's front room,
/// reads from a descriptor, pullup across chunks) must hold exactly its own bytes.
#[test]
fn recycled_chunks_never_show_old_bytes() {
    for size in [1000usize, 2000, 4000, MAX_READ] {
        // Fill and drop chunks of every pooled size with a byte no later step writes.
        let mut old = Vec::new();
        for _ in 0..40 {
            old.push(EvBuffer::from_bytes(&vec![b'#'; size]));
        }
        drop(old);
        let mut b = EvBuffer::new();
        b.add(b"middle").unwrap();
        b.prepend(b"front-").unwrap();
        b.add(&vec![b'x'; size]).unwrap();
        b.prepend(&vec![b'p'; size / 2]).unwrap();
        let mut want = vec![b'p'; size / 2];
        want.extend_from_slice(b"front-middle");
        want.extend_from_slice(&vec![b'x'; size]);
        assert_eq!(b.to_vec(), want, "size {size}");
        assert_eq!(b.len(), want.len());
        assert_eq!(b.pullup(None).unwrap(), &want[..]);
        assert!(b.search(b"#", 0).is_none());

        let mut be = EpollBackend::new().unwrap();
        let (r, w) = be.socketpair().unwrap();
        be.write(w, b"from the socket").unwrap();
        let mut c = EvBuffer::new();
        assert_eq!(c.read_from(&mut be, r, None).unwrap(), 15);
        assert_eq!(c.to_vec(), b"from the socket");
        c.add(b"!").unwrap();
        assert_eq!(c.to_vec(), b"from the socket!");
        be.close(r).unwrap();
        be.close(w).unwrap();
    }
}
