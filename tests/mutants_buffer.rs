//! EvBuffer (src/buffer.rs): tests written to kill mutants that `cargo mutants -f src/buffer.rs`
//! left alive (docs/mutation-testing.md).

use std::cell::RefCell;
use std::rc::Rc;

use evloop::backend::{Backend, EpollBackend};
use evloop::buffer::MAX_READ;
use evloop::EvBuffer;

/// Small appends share the last chunk while it has room (as `evbuffer_add` fills the last
/// chain): two adds are one contiguous run.
#[test]
fn small_appends_fill_the_last_chunk() {
    let mut b = EvBuffer::new();
    b.add(b"abc").unwrap();
    b.add(b"def").unwrap();
    assert_eq!(b.contiguous_space(), 6);
    assert_eq!(b.chunks().collect::<Vec<_>>(), vec![&b"abcdef"[..]]);
}

/// Moving part of a chunk leaves exactly the rest in the source, whatever its offset.
#[test]
fn remove_buffer_of_part_of_a_chunk_leaves_the_rest() {
    let mut src = EvBuffer::from_bytes(b"hello world");
    let mut dst = EvBuffer::new();
    assert_eq!(src.remove_buffer(&mut dst, 5).unwrap(), 5);
    assert_eq!(
        (src.to_vec(), dst.to_vec()),
        (b" world".to_vec(), b"hello".to_vec())
    );
    // Now the source's chunk starts at an offset: move part of it again.
    assert_eq!(src.remove_buffer(&mut dst, 3).unwrap(), 3);
    assert_eq!(
        (src.to_vec(), dst.to_vec()),
        (b"rld".to_vec(), b"hello wo".to_vec())
    );
    assert_eq!((src.len(), dst.len()), (3, 8));
}

/// Moving a whole chunk and part of the next reports every moved byte to the destination's
/// callbacks, in one report: the whole chunk's bytes and the copied part's.
#[test]
fn remove_buffer_reports_whole_chunks_and_the_part_to_the_destination() {
    // A prepend that finds no room before the first chunk starts a new one: two chunks.
    let mut src = EvBuffer::from_bytes(b"world");
    src.prepend(b"hello ").unwrap();
    assert_eq!(
        src.chunks().collect::<Vec<_>>(),
        vec![&b"hello "[..], &b"world"[..]]
    );
    let mut dst = EvBuffer::from_bytes(b">");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    dst.add_cb(move |_, info| {
        s.borrow_mut()
            .push((info.orig_size, info.n_added, info.n_deleted))
    });
    assert_eq!(src.remove_buffer(&mut dst, 8).unwrap(), 8);
    assert_eq!(dst.to_vec(), b">hello wo");
    assert_eq!(src.to_vec(), b"rld");
    assert_eq!(*seen.borrow(), vec![(1, 8, 0)]);
}

/// A read that fits exactly in the room left in the last chunk goes there: the first read
/// (up to `MAX_READ`) allocates a chunk of `MAX_READ` bytes, the second asks for exactly the
/// rest, and both reads stay one contiguous run.
#[test]
fn a_read_that_fits_the_room_exactly_uses_it() {
    let mut be = EpollBackend::new().unwrap();
    let (a, c) = be.socketpair().unwrap();
    let mut b = EvBuffer::new();
    assert_eq!(be.write(c, b"hello").unwrap(), 5);
    assert_eq!(b.read_from(&mut be, a, None).unwrap(), 5);
    assert_eq!(be.write(c, b"abc").unwrap(), 3);
    assert_eq!(b.read_from(&mut be, a, Some(MAX_READ - 5)).unwrap(), 3);
    assert_eq!(b.contiguous_space(), 8);
    assert_eq!(b.to_vec(), b"helloabc");
    be.close(a).unwrap();
    be.close(c).unwrap();
}

/// `{:?}` of a buffer shows its length, chunk count and freeze state (not its bytes).
#[test]
fn debug_shows_length_chunks_and_freezing() {
    let mut b = EvBuffer::from_bytes(b"hello");
    b.freeze(true);
    assert_eq!(
        format!("{b:?}"),
        "EvBuffer { len: 5, chunks: 1, freeze_start: true, freeze_end: false }"
    );
}

/// `is_frozen` reports each end's freeze on its own, and unfreezing clears it.
#[test]
fn is_frozen_follows_each_end() {
    let mut b = EvBuffer::from_bytes(b"x");
    assert!(!b.is_frozen(true) && !b.is_frozen(false));
    b.freeze(true);
    assert!(b.is_frozen(true) && !b.is_frozen(false));
    b.freeze(false);
    assert!(b.is_frozen(true) && b.is_frozen(false));
    b.unfreeze(true);
    assert!(!b.is_frozen(true) && b.is_frozen(false));
    assert!(b.drain(1).is_ok(), "the start is free again");
    assert!(b.add(b"y").is_err(), "the end is still frozen");
}

type Reports = Rc<RefCell<Vec<(usize, usize, usize)>>>;

/// Records every callback report of `b` as (orig_size, n_added, n_deleted).
fn reports(b: &mut EvBuffer) -> Reports {
    let seen: Reports = Rc::default();
    let s = seen.clone();
    b.add_cb(move |_, info| {
        s.borrow_mut()
            .push((info.orig_size, info.n_added, info.n_deleted))
    });
    seen
}

/// `prepend_buffer` puts all of the source before the destination's bytes, adds the lengths,
/// and reports the move to both buffers' callbacks (the source's first).
#[test]
fn prepend_buffer_moves_and_reports_everything() {
    let mut src = EvBuffer::from_bytes(b"hello ");
    let mut dst = EvBuffer::from_bytes(b"world");
    let (s, d) = (reports(&mut src), reports(&mut dst));
    dst.prepend_buffer(&mut src).unwrap();
    assert_eq!(dst.to_vec(), b"hello world");
    assert_eq!((src.len(), dst.len()), (0, 11));
    assert!(!dst.is_empty() && src.is_empty());
    assert_eq!(*s.borrow(), vec![(6, 0, 6)]);
    assert_eq!(*d.borrow(), vec![(5, 6, 0)]);
}

/// Moving between buffers needs the source's start and the destination's end (remove_buffer,
/// add_buffer) or start (prepend_buffer) unfrozen: either freeze alone refuses the move and
/// changes nothing.
#[test]
fn either_frozen_end_refuses_a_move() {
    for (freeze_src, freeze_dst) in [(true, false), (false, true)] {
        let mut src = EvBuffer::from_bytes(b"abc");
        let mut dst = EvBuffer::from_bytes(b"xyz");
        if freeze_src {
            src.freeze(true);
        }
        if freeze_dst {
            dst.freeze(true);
        }
        assert!(
            dst.prepend_buffer(&mut src).is_err(),
            "{freeze_src} {freeze_dst}"
        );
        if freeze_dst {
            dst.unfreeze(true);
            dst.freeze(false);
        }
        assert!(
            src.remove_buffer(&mut dst, 2).is_err(),
            "{freeze_src} {freeze_dst}"
        );
        assert!(
            dst.add_buffer(&mut src).is_err(),
            "{freeze_src} {freeze_dst}"
        );
        assert_eq!(
            (src.to_vec(), dst.to_vec()),
            (b"abc".to_vec(), b"xyz".to_vec())
        );
    }
}

/// `remove_buffer` moves a front chunk that it takes whole (as `evbuffer_remove_buffer` moves
/// every chain with `off <= datlen`) instead of copying it: asked for exactly the first
/// chunk's length, the destination gets that chunk as a chunk of its own.
#[test]
fn remove_buffer_moves_a_chunk_taken_whole() {
    let mut src = EvBuffer::from_bytes(b"def");
    src.prepend(b"abc").unwrap();
    assert_eq!(src.chunks().count(), 2);
    let mut dst = EvBuffer::from_bytes(b"xy");
    assert_eq!(src.remove_buffer(&mut dst, 3).unwrap(), 3);
    assert_eq!(
        dst.chunks().collect::<Vec<_>>(),
        vec![&b"xy"[..], &b"abc"[..]]
    );
    assert_eq!(src.to_vec(), b"def");
}

/// `copyout_from` at every position of a three-chunk buffer copies exactly the bytes from
/// there on, crossing chunk boundaries, and leaves the buffer as it was.
#[test]
fn copyout_from_every_position_across_chunks() {
    let mut b = EvBuffer::from_bytes(b"abc");
    b.add_buffer(&mut EvBuffer::from_bytes(b"def")).unwrap();
    b.add_buffer(&mut EvBuffer::from_bytes(b"ghij")).unwrap();
    assert_eq!(b.chunks().count(), 3);
    let all = b.to_vec();
    for pos in 0..=all.len() + 1 {
        for size in [1, 2, 5, 16] {
            let mut out = vec![0u8; size];
            let n = b.copyout_from(pos, &mut out);
            let want = &all[pos.min(all.len())..];
            let want = &want[..want.len().min(size)];
            assert_eq!(&out[..n], want, "pos {pos} size {size}");
        }
    }
    assert_eq!(b.to_vec(), all);
}

/// A buffer made of `pieces`, one chunk each (`add_buffer` moves chunks without copying).
fn chunked(pieces: &[&[u8]]) -> EvBuffer {
    let mut b = EvBuffer::new();
    for p in pieces {
        b.add_buffer(&mut EvBuffer::from_bytes(p)).unwrap();
    }
    assert_eq!(b.chunks().count(), pieces.len());
    b
}

/// The naive `evbuffer_search_eol` on flat bytes.
fn eol_model(flat: &[u8], start: usize, style: evloop::EolStyle) -> Option<(usize, usize)> {
    use evloop::EolStyle::*;
    let find = |f: &dyn Fn(u8) -> bool| (start..flat.len()).find(|&p| f(flat[p]));
    match style {
        Any => {
            let p = find(&|b| b == b'\r' || b == b'\n')?;
            let n = flat[p..]
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            Some((p, n))
        }
        CrlfStrict => (start..flat.len().saturating_sub(1))
            .find(|&p| &flat[p..p + 2] == b"\r\n")
            .map(|p| (p, 2)),
        Crlf => {
            let p = find(&|b| b == b'\n')?;
            if p > start && flat[p - 1] == b'\r' {
                Some((p - 1, 2))
            } else {
                Some((p, 1))
            }
        }
        Lf => find(&|b| b == b'\n').map(|p| (p, 1)),
        Nul => find(&|b| b == 0).map(|p| (p, 1)),
    }
}

/// Searching a buffer whose line ends and patterns straddle chunk boundaries gives, from every
/// start, what the same search over the flat bytes gives: `search`, `search_range` and
/// `search_eol` in every style, and `readln` line by line.
#[test]
fn searches_across_chunk_boundaries_match_the_flat_bytes() {
    use evloop::EolStyle::*;
    let pieces: [&[u8]; 8] = [
        b"ab\r",
        b"\ncd",
        b"\r",
        b"\n",
        b"e\0f",
        b"\r\r\nxy",
        b"z",
        b"\n",
    ];
    let b = chunked(&pieces);
    let flat = b.to_vec();
    let len = flat.len();
    for start in 0..=len {
        for style in [Any, Crlf, CrlfStrict, Lf, Nul] {
            assert_eq!(
                b.search_eol(start, style),
                eol_model(&flat, start, style),
                "start {start} {style:?}"
            );
        }
        for what in [
            &b"\r\n"[..],
            b"cd\r",
            b"\ne",
            b"f\r\r",
            b"xyz",
            b"z\n",
            b"q",
            b"",
        ] {
            let want = if what.is_empty() {
                Some(start)
            } else {
                (start..len.saturating_sub(what.len() - 1)).find(|&p| flat[p..].starts_with(what))
            };
            assert_eq!(b.search(what, start), want, "{what:?} from {start}");
            for end in start..=len {
                let want = want.filter(|&p| p + what.len() <= end);
                assert_eq!(
                    b.search_range(what, start, Some(end)),
                    want,
                    "{what:?} in {start}..{end}"
                );
            }
        }
    }
    // Reading line by line (CRLF, lone LF allowed) takes the same lines off.
    let mut b = chunked(&pieces);
    let mut lines = Vec::new();
    while let Some(line) = b.readln(Crlf) {
        lines.push(line);
    }
    let want: [&[u8]; 4] = [b"ab", b"cd", b"e\0f\r", b"xyz"];
    assert_eq!(lines, want);
    assert!(b.is_empty());
}

/// `pullup` of bytes that are already contiguous returns them where they are, without copying
/// (the front chunk's own memory); only a span over several chunks is copied into a new one.
#[test]
fn pullup_of_contiguous_bytes_does_not_copy() {
    let mut b = chunked(&[b"hello", b" world"]);
    let front = b.chunks().next().unwrap().as_ptr();
    assert_eq!(b.pullup(Some(5)).unwrap().as_ptr(), front);
    assert_eq!(b.chunks().count(), 2);
    assert_eq!(b.pullup(Some(7)).unwrap(), b"hello w");
    assert_eq!(
        b.chunks().collect::<Vec<_>>(),
        vec![&b"hello w"[..], &b"orld"[..]]
    );
}

/// `write_atmost` over several chunks gathers exactly `atmost` bytes (crossing chunk
/// boundaries) and writes them in one call; the rest stays, in order.
#[test]
fn write_atmost_across_chunks_writes_exactly_atmost() {
    let mut be = EpollBackend::new().unwrap();
    let (a, c) = be.socketpair().unwrap();
    let mut b = chunked(&[b"abc", b"defg", b"hij"]);
    assert_eq!(b.write_atmost(&mut be, a, Some(5)).unwrap(), 5);
    assert_eq!(b.to_vec(), b"fghij");
    let mut got = [0u8; 16];
    assert_eq!(be.read(c, &mut got).unwrap(), 5);
    assert_eq!(&got[..5], b"abcde");
    assert_eq!(b.write_atmost(&mut be, a, None).unwrap(), 5);
    assert_eq!(be.read(c, &mut got).unwrap(), 5);
    assert_eq!(&got[..5], b"fghij");
    be.close(a).unwrap();
    be.close(c).unwrap();
}

/// A buffer whose bytes are all in one chunk is written straight from that chunk, however
/// large (as libevent's `writev` of the chain), even when a failed read left an empty chunk
/// after it; only a write spanning several chunks is gathered, at most 64 KiB at a time.
#[test]
fn one_chunk_is_written_whole_even_with_an_empty_chunk_after_it() {
    let mut be = EpollBackend::new().unwrap();
    let (a, c) = be.socketpair().unwrap();
    // 128 KiB fill their chunk exactly, so the read below needs (and leaves) a new, empty one.
    let big = vec![b'x'; 128 * 1024];
    let mut b = EvBuffer::from_bytes(&big);
    let e = b.read_from(&mut be, a, None).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    assert_eq!(b.len(), big.len());
    let n = b.write_to(&mut be, a).unwrap();
    assert!(n > 64 * 1024, "wrote {n}");
    assert_eq!(b.len(), big.len() - n);
    be.close(a).unwrap();
    be.close(c).unwrap();
}

/// Every callback gets its own id: removing one leaves the others in place.
#[test]
fn callbacks_have_distinct_ids() {
    let mut b = EvBuffer::new();
    let first = reports(&mut b);
    let seen: Reports = Rc::default();
    let s = seen.clone();
    let id = b.add_cb(move |_, info| {
        s.borrow_mut()
            .push((info.orig_size, info.n_added, info.n_deleted))
    });
    let third = reports(&mut b);
    assert!(b.remove_cb(id));
    assert!(!b.remove_cb(id), "already removed");
    b.add(b"abc").unwrap();
    assert_eq!(*first.borrow(), vec![(0, 3, 0)]);
    assert_eq!(*third.borrow(), vec![(0, 3, 0)]);
    assert!(seen.borrow().is_empty());
}
