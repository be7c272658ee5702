//! `struct evbuffer`: a standalone `EvBuffer` (`evbuffer_new`), or the input or output buffer of
//! a bufferevent (`bufferevent_get_input`/`_output`), reached through the base so that every
//! change gets the bufferevent's reaction (watermarks, scheduling a write).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use evloop::buffer::{CbId, CbInfo};
use evloop::{BufferEvent, EolStyle, EvBuffer};

use crate::base::{cbase, CBase};
use crate::UserArg;

/// `struct evbuffer`.
pub struct CBuf {
    pub(crate) kind: Kind,
    /// Callbacks added with `evbuffer_add_cb` (boxed: C holds pointers to the entries, which
    /// must not move when the vector grows).
    #[allow(clippy::vec_box)]
    cbs: Vec<Box<CbEntry>>,
    /// The space handed out by `evbuffer_reserve_space`, waiting for `evbuffer_commit_space`.
    reserved: Vec<u8>,
}

pub(crate) enum Kind {
    Owned(EvBuffer),
    Bev {
        base: *mut CBase,
        bev: BufferEvent,
        input: bool,
    },
}

/// `struct evbuffer_cb_entry`.
pub struct CbEntry {
    id: CbId,
    cb: evbuffer_cb_func,
    arg: UserArg,
}

/// `struct evbuffer_cb_info`.
#[repr(C)]
pub struct evbuffer_cb_info {
    orig_size: usize,
    n_added: usize,
    n_deleted: usize,
}

/// `evbuffer_cb_func`.
pub type evbuffer_cb_func =
    Option<unsafe extern "C" fn(*mut CBuf, *const evbuffer_cb_info, *mut c_void)>;

/// `struct evbuffer_ptr`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct evbuffer_ptr {
    pos: isize,
    chain: *mut c_void,
    pos_in_chain: usize,
}

const NOT_FOUND: evbuffer_ptr = evbuffer_ptr {
    pos: -1,
    chain: ptr::null_mut(),
    pos_in_chain: 0,
};

fn at(pos: usize) -> evbuffer_ptr {
    evbuffer_ptr {
        pos: pos as isize,
        // Not NULL, so that code testing the chain sees a valid position.
        chain: ptr::NonNull::<u8>::dangling().as_ptr().cast(),
        pos_in_chain: pos,
    }
}

impl CBuf {
    pub(crate) fn owned() -> CBuf {
        CBuf {
            kind: Kind::Owned(EvBuffer::new()),
            cbs: Vec::new(),
            reserved: Vec::new(),
        }
    }

    pub(crate) fn of_bev(base: *mut CBase, bev: BufferEvent, input: bool) -> CBuf {
        CBuf {
            kind: Kind::Bev { base, bev, input },
            cbs: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// Removes everything (for moving it elsewhere); `None` if the start is frozen.
    pub(crate) fn take_all(&mut self) -> Option<EvBuffer> {
        if self.read(|s| s.is_frozen(true)).unwrap_or(true) {
            return None;
        }
        let mut tmp = EvBuffer::new();
        self.modify(|s| tmp.add_buffer(s).ok())??;
        Some(tmp)
    }

    /// Appends all of `tmp`; false if the end is frozen.
    pub(crate) fn put_all(&mut self, tmp: &mut EvBuffer) -> bool {
        matches!(self.modify(|d| d.add_buffer(tmp)), Some(Ok(())))
    }

    /// Looks at the buffer.
    fn read<R>(&self, f: impl FnOnce(&EvBuffer) -> R) -> Option<R> {
        match &self.kind {
            Kind::Owned(b) => Some(f(b)),
            Kind::Bev { base, bev, input } => {
                // SAFETY: a bufferevent's buffers are used only while its base lives.
                let c = unsafe { cbase(*base)? };
                c.with(|b| {
                    let r = if *input { bev.input(b) } else { bev.output(b) };
                    r.ok().map(f)
                })
            }
        }
    }

    /// Changes the buffer, then (for a bufferevent's) runs the bufferevent's reaction.
    fn modify<R>(&mut self, f: impl FnOnce(&mut EvBuffer) -> R) -> Option<R> {
        match &mut self.kind {
            Kind::Owned(b) => Some(f(b)),
            Kind::Bev { base, bev, input } => {
                // SAFETY: a bufferevent's buffers are used only while its base lives.
                let c = unsafe { cbase(*base)? };
                let (bev, input) = (*bev, *input);
                c.with(|b| {
                    if input {
                        bev.with_input(b, f).ok()
                    } else {
                        bev.with_output(b, f).ok()
                    }
                })
            }
        }
    }
}

/// The `CBuf` behind a handle.
///
/// # Safety
/// `p` is NULL or a live `struct evbuffer *`.
unsafe fn buf<'a>(p: *mut CBuf) -> Option<&'a mut CBuf> {
    // SAFETY: the caller's contract.
    unsafe { p.as_mut() }
}

ffi! {
    /// `evbuffer_new`: an empty buffer; free it with `evbuffer_free`.
    fn evbuffer_new() -> *mut CBuf {
        Box::into_raw(Box::new(CBuf::owned()))
    }
}

ffi! {
    /// `evbuffer_free`: frees a buffer from `evbuffer_new` (a bufferevent's are not freed).
    fn evbuffer_free(b: *mut CBuf) {
        if b.is_null() {
            return;
        }
        // SAFETY: `b` is a live buffer.
        if matches!(unsafe { &(*b).kind }, Kind::Owned(_)) {
            // SAFETY: owned buffers come from Box::into_raw in evbuffer_new.
            drop(unsafe { Box::from_raw(b) });
        }
    }
}

ffi! {
    /// `evbuffer_get_length`.
    fn evbuffer_get_length(b: *const CBuf) -> usize {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b.cast_mut()) }) else {
            return 0;
        };
        b.read(|e| e.len()).unwrap_or(0)
    }
}

ffi! {
    /// `evbuffer_get_contiguous_space`: the bytes in the first chunk.
    fn evbuffer_get_contiguous_space(b: *const CBuf) -> usize {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b.cast_mut()) }) else {
            return 0;
        };
        b.read(|e| e.contiguous_space()).unwrap_or(0)
    }
}

ffi! {
    /// `evbuffer_add`: appends `len` bytes. 0 or -1 (frozen end).
    fn evbuffer_add(b: *mut CBuf, data: *const c_void, len: usize) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if len == 0 {
            return 0;
        }
        nonnull!(data, -1);
        // SAFETY: `data` is readable for `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        match b.modify(|e| e.add(bytes)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_prepend`: inserts `len` bytes at the front. 0 or -1.
    fn evbuffer_prepend(b: *mut CBuf, data: *const c_void, len: usize) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if len == 0 {
            return 0;
        }
        nonnull!(data, -1);
        // SAFETY: `data` is readable for `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
        match b.modify(|e| e.prepend(bytes)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_add_iovec`: appends every extent; the bytes added.
    fn evbuffer_add_iovec(b: *mut CBuf, vec: *mut libc::iovec, n: c_int) -> c_int {
        nonnull!(vec, -1);
        let mut total = 0usize;
        for i in 0..n.max(0) as usize {
            // SAFETY: `vec` has `n` readable entries.
            let v = unsafe { *vec.add(i) };
            // SAFETY: forwards one extent of the caller's.
            if unsafe { evbuffer_add(b, v.iov_base, v.iov_len) } != 0 {
                break;
            }
            total += v.iov_len;
        }
        total as c_int
    }
}

/// x86-64's `va_list` element (`__va_list_tag`): copying it is `va_copy`.
#[repr(C)]
#[derive(Clone, Copy)]
struct VaListTag {
    gp_offset: u32,
    fp_offset: u32,
    overflow_arg_area: *mut c_void,
    reg_save_area: *mut c_void,
}

extern "C" {
    fn vsnprintf(s: *mut c_char, n: usize, fmt: *const c_char, ap: *mut c_void) -> c_int;
}

ffi! {
    /// `evbuffer_add_vprintf`: appends the formatted text; its length or -1. (x86-64: a
    /// `va_list` is passed as a pointer to its one element.)
    fn evbuffer_add_vprintf(b: *mut CBuf, fmt: *const c_char, ap: *mut c_void) -> c_int {
        nonnull!(b, -1);
        nonnull!(fmt, -1);
        // SAFETY: `ap` points at the caller's va_list element; copying it is va_copy.
        let mut copy = unsafe { *ap.cast::<VaListTag>() };
        // SAFETY: a size query: NULL buffer of length 0; `copy` is a valid va_list.
        let n = unsafe { vsnprintf(ptr::null_mut(), 0, fmt, ptr::addr_of_mut!(copy).cast()) };
        if n < 0 {
            return -1;
        }
        let mut out = vec![0u8; n as usize + 1];
        // SAFETY: `out` is writable for n + 1 bytes; `ap` is the caller's va_list.
        let m = unsafe { vsnprintf(out.as_mut_ptr().cast(), out.len(), fmt, ap) };
        if m != n {
            return -1;
        }
        // SAFETY: forwards the formatted bytes.
        if unsafe { evbuffer_add(b, out.as_ptr().cast(), n as usize) } != 0 {
            return -1;
        }
        n
    }
}

ffi! {
    /// `evbuffer_remove`: moves up to `len` bytes out; how many, or -1.
    fn evbuffer_remove(b: *mut CBuf, data: *mut c_void, len: usize) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if len == 0 {
            return 0;
        }
        nonnull!(data, -1);
        // SAFETY: `data` is writable for `len` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
        match b.modify(|e| e.remove(out)) {
            Some(Ok(n)) => n as c_int,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_copyout`: copies up to `len` bytes without removing them; how many.
    fn evbuffer_copyout(b: *mut CBuf, data: *mut c_void, len: usize) -> isize {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if len == 0 {
            return 0;
        }
        nonnull!(data, -1);
        // SAFETY: `data` is writable for `len` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
        b.read(|e| e.copyout(out) as isize).unwrap_or(-1)
    }
}

ffi! {
    /// `evbuffer_copyout_from`: as `evbuffer_copyout`, from position `pos` (NULL: 0).
    fn evbuffer_copyout_from(b: *mut CBuf, pos: *const evbuffer_ptr, data: *mut c_void, len: usize) -> isize {
        // SAFETY: `b` is NULL or live; `pos` NULL or readable.
        let (Some(b), pos) = (unsafe { (buf(b), pos.as_ref()) }) else {
            return -1;
        };
        let start = pos.map_or(0, |p| p.pos.max(0) as usize);
        if len == 0 {
            return 0;
        }
        nonnull!(data, -1);
        // SAFETY: `data` is writable for `len` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) };
        b.read(|e| {
            if start > e.len() {
                -1
            } else {
                e.copyout_from(start, out) as isize
            }
        })
        .unwrap_or(-1)
    }
}

ffi! {
    /// `evbuffer_drain`: drops the first `len` bytes (all if fewer). 0 or -1.
    fn evbuffer_drain(b: *mut CBuf, len: usize) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        match b.modify(|e| e.drain(len)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_pullup`: makes the first `size` bytes (all if negative) contiguous and returns
    /// them; NULL if the buffer holds fewer. Valid until the buffer next changes.
    fn evbuffer_pullup(b: *mut CBuf, size: isize) -> *mut u8 {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return ptr::null_mut();
        };
        let n = if size < 0 { None } else { Some(size as usize) };
        b.modify(|e| match e.pullup(n) {
            Some(s) if !s.is_empty() => s.as_ptr().cast_mut(),
            _ => ptr::null_mut(),
        })
        .unwrap_or(ptr::null_mut())
    }
}

/// Moves bytes between two buffers through a temporary one (either may be a bufferevent's).
fn transfer(src: &mut CBuf, dst: &mut CBuf, n: Option<usize>) -> Option<usize> {
    if dst.read(|d| d.is_frozen(false)).unwrap_or(true)
        || src.read(|s| s.is_frozen(true)).unwrap_or(true)
    {
        return None;
    }
    let mut tmp = EvBuffer::new();
    let moved = src.modify(|s| match n {
        None => tmp.add_buffer(s).map(|_| tmp.len()).ok(),
        Some(n) => s.remove_buffer(&mut tmp, n).ok(),
    })??;
    if moved > 0 {
        dst.modify(|d| d.add_buffer(&mut tmp)).map(|r| r.ok())??;
    }
    Some(moved)
}

ffi! {
    /// `evbuffer_add_buffer`: moves all of `inbuf` to the end of `outbuf`. 0 or -1.
    fn evbuffer_add_buffer(outbuf: *mut CBuf, inbuf: *mut CBuf) -> c_int {
        if outbuf == inbuf {
            return if outbuf.is_null() { -1 } else { 0 };
        }
        // SAFETY: both are NULL or live, and distinct.
        let (Some(o), Some(i)) = (unsafe { (buf(outbuf), buf(inbuf)) }) else {
            return -1;
        };
        if transfer(i, o, None).is_some() {
            0
        } else {
            -1
        }
    }
}

ffi! {
    /// `evbuffer_prepend_buffer`: moves all of `inbuf` to the front of `outbuf`. 0 or -1.
    fn evbuffer_prepend_buffer(outbuf: *mut CBuf, inbuf: *mut CBuf) -> c_int {
        if outbuf == inbuf {
            return if outbuf.is_null() { -1 } else { 0 };
        }
        // SAFETY: both are NULL or live, and distinct.
        let (Some(o), Some(i)) = (unsafe { (buf(outbuf), buf(inbuf)) }) else {
            return -1;
        };
        let mut tmp = EvBuffer::new();
        if i.modify(|s| tmp.add_buffer(s)).and_then(|r| r.ok()).is_none() {
            return -1;
        }
        match o.modify(|d| d.prepend_buffer(&mut tmp)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_add_buffer_reference`: appends a copy of `inbuf` (evloop copies the bytes).
    fn evbuffer_add_buffer_reference(outbuf: *mut CBuf, inbuf: *mut CBuf) -> c_int {
        // SAFETY: both are NULL or live.
        let (Some(o), Some(i)) = (unsafe { (buf(outbuf), buf(inbuf.cast())) }) else {
            return -1;
        };
        let Some(bytes) = i.read(|e| e.to_vec()) else {
            return -1;
        };
        match o.modify(|e| e.add(&bytes)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_remove_buffer`: moves up to `datlen` bytes from `src` to `dst`; how many.
    fn evbuffer_remove_buffer(src: *mut CBuf, dst: *mut CBuf, datlen: usize) -> c_int {
        if src == dst {
            return 0;
        }
        // SAFETY: both are NULL or live, and distinct.
        let (Some(s), Some(d)) = (unsafe { (buf(src), buf(dst)) }) else {
            return -1;
        };
        transfer(s, d, Some(datlen)).map_or(-1, |n| n as c_int)
    }
}

/// `evbuffer_cb_func`'s cleanup cousin (`evbuffer_ref_cleanup_cb`).
pub type evbuffer_ref_cleanup_cb = Option<unsafe extern "C" fn(*const c_void, usize, *mut c_void)>;

ffi! {
    /// `evbuffer_add_reference`: appends the bytes (evloop copies them, then calls `cleanup`
    /// at once: the buffer no longer needs the caller's memory).
    fn evbuffer_add_reference(
        b: *mut CBuf,
        data: *const c_void,
        len: usize,
        cleanup: evbuffer_ref_cleanup_cb,
        arg: UserArg,
    ) -> c_int {
        // SAFETY: forwards the caller's pointers.
        let r = unsafe { evbuffer_add(b, data, len) };
        if r == 0 {
            if let Some(f) = cleanup {
                // SAFETY: the caller's cleanup function, called as libevent calls it.
                unsafe { f(data, len, arg) };
            }
        }
        r
    }
}

/// `enum evbuffer_eol_style`.
fn eol(style: c_int) -> Option<EolStyle> {
    Some(match style {
        0 => EolStyle::Any,
        1 => EolStyle::Crlf,
        2 => EolStyle::CrlfStrict,
        3 => EolStyle::Lf,
        4 => EolStyle::Nul,
        _ => return None,
    })
}

/// A `malloc`'d NUL-terminated copy of `line`.
fn c_line(line: &[u8], n_read_out: *mut usize) -> *mut c_char {
    // SAFETY: malloc of len + 1 bytes; checked for NULL.
    let p = unsafe { libc::malloc(line.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `p` is writable for len + 1 bytes.
    unsafe {
        ptr::copy_nonoverlapping(line.as_ptr(), p, line.len());
        *p.add(line.len()) = 0;
        if !n_read_out.is_null() {
            *n_read_out = line.len();
        }
    }
    p.cast()
}

ffi! {
    /// `evbuffer_readln`: removes one line and returns it `malloc`'d (the caller frees it),
    /// without its end-of-line; NULL if there is no whole line.
    fn evbuffer_readln(b: *mut CBuf, n_read_out: *mut usize, style: c_int) -> *mut c_char {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return ptr::null_mut();
        };
        let Some(style) = eol(style) else {
            return ptr::null_mut();
        };
        let line = match &b.kind {
            Kind::Bev { base, bev, input: true } => {
                // SAFETY: a bufferevent's buffers are used only while its base lives.
                let Some(c) = (unsafe { cbase(*base) }) else {
                    return ptr::null_mut();
                };
                c.with(|bb| bev.readln(bb, style).ok().flatten())
            }
            _ => b.modify(|e| e.readln(style)).flatten(),
        };
        match line {
            Some(l) => c_line(&l, n_read_out),
            None => ptr::null_mut(),
        }
    }
}

ffi! {
    /// `evbuffer_readline` (deprecated): `evbuffer_readln` with `EVBUFFER_EOL_ANY`.
    fn evbuffer_readline(b: *mut CBuf) -> *mut c_char {
        // SAFETY: forwards the caller's pointer.
        unsafe { evbuffer_readln(b, ptr::null_mut(), 0) }
    }
}

ffi! {
    /// `evbuffer_search`: the first position of `what` at or after `start` (NULL: 0);
    /// `pos == -1` if absent.
    fn evbuffer_search(b: *mut CBuf, what: *const c_char, len: usize, start: *const evbuffer_ptr) -> evbuffer_ptr {
        // SAFETY: forwards the caller's pointers.
        unsafe { evbuffer_search_range(b, what, len, start, ptr::null()) }
    }
}

ffi! {
    /// `evbuffer_search_range`: as `evbuffer_search`, the match ending before `end` (NULL: the
    /// buffer's end).
    fn evbuffer_search_range(
        b: *mut CBuf,
        what: *const c_char,
        len: usize,
        start: *const evbuffer_ptr,
        end: *const evbuffer_ptr,
    ) -> evbuffer_ptr {
        // SAFETY: `b` NULL or live; `start`, `end` NULL or readable.
        let (Some(b), start, end) = (unsafe { (buf(b), start.as_ref(), end.as_ref()) }) else {
            return NOT_FOUND;
        };
        if what.is_null() && len > 0 {
            return NOT_FOUND;
        }
        let needle: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: `what` is readable for `len` bytes.
            unsafe { std::slice::from_raw_parts(what.cast::<u8>(), len) }
        };
        let s = start.map_or(0, |p| p.pos);
        if s < 0 {
            return NOT_FOUND;
        }
        let e = end.map(|p| p.pos.max(0) as usize);
        b.read(|buf| buf.search_range(needle, s as usize, e))
            .flatten()
            .map_or(NOT_FOUND, at)
    }
}

ffi! {
    /// `evbuffer_search_eol`: the next end of line at or after `start`; its length in
    /// `*eol_len_out`.
    fn evbuffer_search_eol(b: *mut CBuf, start: *mut evbuffer_ptr, eol_len_out: *mut usize, style: c_int) -> evbuffer_ptr {
        // SAFETY: `b` NULL or live; `start` NULL or readable.
        let (Some(b), start) = (unsafe { (buf(b), start.as_ref()) }) else {
            return NOT_FOUND;
        };
        let Some(style) = eol(style) else {
            return NOT_FOUND;
        };
        let s = start.map_or(0, |p| p.pos.max(0) as usize);
        match b.read(|buf| buf.search_eol(s, style)).flatten() {
            Some((pos, n)) => {
                if !eol_len_out.is_null() {
                    // SAFETY: `eol_len_out` is writable.
                    unsafe { *eol_len_out = n };
                }
                at(pos)
            }
            None => NOT_FOUND,
        }
    }
}

ffi! {
    /// `evbuffer_ptr_set`: `EVBUFFER_PTR_SET` (0) or `EVBUFFER_PTR_ADD` (1) `position`; -1
    /// past the end.
    fn evbuffer_ptr_set(b: *mut CBuf, p: *mut evbuffer_ptr, position: usize, how: c_int) -> c_int {
        nonnull!(p, -1);
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        let len = b.read(|e| e.len()).unwrap_or(0);
        // SAFETY: `p` is readable and writable.
        let cur = unsafe { (*p).pos };
        let target = match how {
            0 => position,
            1 if cur >= 0 => cur as usize + position,
            _ => return -1,
        };
        if target > len {
            // SAFETY: as above.
            unsafe { *p = NOT_FOUND };
            return -1;
        }
        // SAFETY: as above.
        unsafe { *p = at(target) };
        0
    }
}

ffi! {
    /// `evbuffer_find` (deprecated): a pointer to the first occurrence of `what`, made
    /// contiguous; NULL if absent.
    fn evbuffer_find(b: *mut CBuf, what: *const u8, len: usize) -> *mut u8 {
        // SAFETY: forwards the caller's pointers.
        let p = unsafe { evbuffer_search(b, what.cast(), len, ptr::null()) };
        if p.pos < 0 {
            return ptr::null_mut();
        }
        // SAFETY: `b` is live (the search found something in it).
        let base = unsafe { evbuffer_pullup(b, p.pos + len as isize) };
        if base.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: the pulled-up region holds pos + len bytes.
        unsafe { base.add(p.pos as usize) }
    }
}

ffi! {
    /// `evbuffer_peek`: describes up to `n_vec` extents covering `len` bytes (all if negative)
    /// from `start_at` (NULL: 0); returns how many extents that takes.
    fn evbuffer_peek(b: *mut CBuf, len: isize, start_at: *mut evbuffer_ptr, vec: *mut libc::iovec, n_vec: c_int) -> c_int {
        // SAFETY: `b` NULL or live; `start_at` NULL or readable.
        let (Some(b), start) = (unsafe { (buf(b), start_at.as_ref()) }) else {
            return -1;
        };
        let mut skip = start.map_or(0, |p| p.pos.max(0) as usize);
        let mut want = if len < 0 { usize::MAX } else { len as usize };
        let mut extents: Vec<libc::iovec> = Vec::new();
        b.read(|e| {
            for c in e.chunks() {
                if want == 0 {
                    break;
                }
                if skip >= c.len() {
                    skip -= c.len();
                    continue;
                }
                let part = &c[skip..];
                skip = 0;
                let n = part.len().min(want);
                extents.push(libc::iovec {
                    iov_base: part.as_ptr().cast_mut().cast(),
                    iov_len: n,
                });
                if len >= 0 {
                    want -= n;
                }
            }
        });
        if !vec.is_null() {
            for (i, x) in extents.iter().take(n_vec.max(0) as usize).enumerate() {
                // SAFETY: `vec` has `n_vec` writable entries.
                unsafe { *vec.add(i) = *x };
            }
        }
        extents.len() as c_int
    }
}

ffi! {
    /// `evbuffer_reserve_space`: one extent of at least `size` writable bytes (evloop's own
    /// staging memory, appended by `evbuffer_commit_space`). How many extents (1), or -1.
    fn evbuffer_reserve_space(b: *mut CBuf, size: isize, vec: *mut libc::iovec, n_vecs: c_int) -> c_int {
        nonnull!(vec, -1);
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if n_vecs < 1 || size < 0 || b.read(|e| e.is_frozen(false)).unwrap_or(true) {
            return -1;
        }
        b.reserved = vec![0; (size as usize).max(1)];
        // SAFETY: `vec` has at least one writable entry.
        unsafe {
            *vec = libc::iovec {
                iov_base: b.reserved.as_mut_ptr().cast(),
                iov_len: b.reserved.len(),
            }
        };
        1
    }
}

ffi! {
    /// `evbuffer_commit_space`: appends the bytes written into the reserved extent. 0 or -1.
    fn evbuffer_commit_space(b: *mut CBuf, vec: *mut libc::iovec, n_vecs: c_int) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        if n_vecs == 0 {
            b.reserved = Vec::new();
            return 0;
        }
        nonnull!(vec, -1);
        // SAFETY: `vec` has at least one readable entry.
        let v = unsafe { *vec };
        if n_vecs != 1 || v.iov_base != b.reserved.as_mut_ptr().cast() || v.iov_len > b.reserved.len() {
            return -1;
        }
        let data = std::mem::take(&mut b.reserved);
        match b.modify(|e| e.add(&data[..v.iov_len])) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_expand`: nothing to do (chunks grow on demand); 0.
    fn evbuffer_expand(b: *mut CBuf, _n: usize) -> c_int {
        nonnull!(b, -1);
        0
    }
}

ffi! {
    /// `evbuffer_freeze`: forbids changes at the start (`at_front`) or end.
    fn evbuffer_freeze(b: *mut CBuf, at_front: c_int) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        b.modify(|e| e.freeze(at_front != 0)).map_or(-1, |_| 0)
    }
}

ffi! {
    /// `evbuffer_unfreeze`.
    fn evbuffer_unfreeze(b: *mut CBuf, at_front: c_int) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        b.modify(|e| e.unfreeze(at_front != 0)).map_or(-1, |_| 0)
    }
}

ffi! {
    /// `evbuffer_read`: reads up to `howmuch` bytes (negative: what is readable, at most
    /// 4096) from `fd`; the count, 0 at EOF, -1 on error (errno set).
    fn evbuffer_read(b: *mut CBuf, fd: c_int, howmuch: c_int) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        let mut avail: c_int = 0;
        // SAFETY: FIONREAD writes one int.
        if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail) } < 0 || avail <= 0 || avail > 4096 {
            avail = 4096;
        }
        let n = if howmuch < 0 || howmuch > avail { avail } else { howmuch } as usize;
        let mut tmp = vec![0u8; n];
        // SAFETY: `tmp` is writable for n bytes.
        let r = unsafe { libc::read(fd, tmp.as_mut_ptr().cast(), n) };
        if r <= 0 {
            return r as c_int;
        }
        match b.modify(|e| e.add(&tmp[..r as usize])) {
            Some(Ok(())) => r as c_int,
            _ => -1,
        }
    }
}

ffi! {
    /// `evbuffer_write_atmost`: writes up to `howmuch` bytes (negative: all) to `fd` and
    /// drains them; the count or -1.
    fn evbuffer_write_atmost(b: *mut CBuf, fd: c_int, howmuch: isize) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        let len = b.read(|e| e.len()).unwrap_or(0);
        let n = if howmuch < 0 { len } else { len.min(howmuch as usize) };
        if n == 0 {
            return 0;
        }
        let mut tmp = vec![0u8; n];
        b.read(|e| e.copyout(&mut tmp));
        // SAFETY: `tmp` is readable for n bytes.
        let r = unsafe { libc::write(fd, tmp.as_ptr().cast(), n) };
        if r > 0 {
            b.modify(|e| e.drain(r as usize));
        }
        r as c_int
    }
}

ffi! {
    /// `evbuffer_write`: `evbuffer_write_atmost(b, fd, -1)`.
    fn evbuffer_write(b: *mut CBuf, fd: c_int) -> c_int {
        // SAFETY: forwards the caller's pointer.
        unsafe { evbuffer_write_atmost(b, fd, -1) }
    }
}

ffi! {
    /// `evbuffer_add_cb`: calls `cb` after every change of the length; the entry to remove it.
    fn evbuffer_add_cb(b: *mut CBuf, cb: evbuffer_cb_func, arg: UserArg) -> *mut CbEntry {
        let bp = b;
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return ptr::null_mut();
        };
        let Some(f) = cb else {
            return ptr::null_mut();
        };
        let Some(id) = b.modify(|e| {
            e.add_cb(move |_e: &EvBuffer, info: &CbInfo| {
                let ci = evbuffer_cb_info {
                    orig_size: info.orig_size,
                    n_added: info.n_added,
                    n_deleted: info.n_deleted,
                };
                // SAFETY: the user's callback, called as libevent calls it.
                unsafe { f(bp, &ci, arg) }
            })
        }) else {
            return ptr::null_mut();
        };
        let mut ent = Box::new(CbEntry { id, cb, arg });
        let p: *mut CbEntry = &mut *ent;
        b.cbs.push(ent);
        p
    }
}

ffi! {
    /// `evbuffer_remove_cb_entry`. 0 or -1.
    fn evbuffer_remove_cb_entry(b: *mut CBuf, ent: *mut CbEntry) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(b) = (unsafe { buf(b) }) else {
            return -1;
        };
        let Some(i) = b.cbs.iter().position(|e| ptr::eq(&**e, ent)) else {
            return -1;
        };
        let e = b.cbs.remove(i);
        b.modify(|x| x.remove_cb(e.id));
        0
    }
}

ffi! {
    /// `evbuffer_remove_cb`: removes the first callback with this function and argument.
    fn evbuffer_remove_cb(b: *mut CBuf, cb: evbuffer_cb_func, arg: UserArg) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(bb) = (unsafe { buf(b) }) else {
            return -1;
        };
        let target = cb.map(|f| f as usize);
        let Some(e) = bb
            .cbs
            .iter_mut()
            .find(|e| e.cb.map(|f| f as usize) == target && e.arg == arg)
        else {
            return -1;
        };
        let p: *mut CbEntry = &mut **e;
        // SAFETY: forwards a live entry of this buffer.
        unsafe { evbuffer_remove_cb_entry(b, p) }
    }
}

ffi! {
    /// `evbuffer_cb_set_flags`: `EVBUFFER_CB_ENABLED` (1) enables the callback.
    fn evbuffer_cb_set_flags(b: *mut CBuf, ent: *mut CbEntry, flags: u32) -> c_int {
        // SAFETY: `b` NULL or live; `ent` NULL or one of its entries.
        let (Some(b), Some(e)) = (unsafe { (buf(b), ent.as_ref()) }) else {
            return -1;
        };
        if flags & 1 != 0 {
            let id = e.id;
            b.modify(|x| x.set_cb_enabled(id, true));
        }
        0
    }
}

ffi! {
    /// `evbuffer_cb_clear_flags`: clearing `EVBUFFER_CB_ENABLED` disables the callback.
    fn evbuffer_cb_clear_flags(b: *mut CBuf, ent: *mut CbEntry, flags: u32) -> c_int {
        // SAFETY: `b` NULL or live; `ent` NULL or one of its entries.
        let (Some(b), Some(e)) = (unsafe { (buf(b), ent.as_ref()) }) else {
            return -1;
        };
        if flags & 1 != 0 {
            let id = e.id;
            b.modify(|x| x.set_cb_enabled(id, false));
        }
        0
    }
}

ffi! {
    /// `evbuffer_enable_locking`: evloop buffers are single-threaded; accepted, 0.
    fn evbuffer_enable_locking(b: *mut CBuf, _lock: *mut c_void) -> c_int {
        nonnull!(b, -1);
        0
    }
}

ffi! {
    /// `evbuffer_lock`: no-op (no threads).
    fn evbuffer_lock(_b: *mut CBuf) {}
}

ffi! {
    /// `evbuffer_unlock`: no-op (no threads).
    fn evbuffer_unlock(_b: *mut CBuf) {}
}

ffi! {
    /// `evbuffer_set_flags`: accepted (`EVBUFFER_FLAG_DRAINS_TO_FD` only changes SIGPIPE
    /// handling, which evloop's writes never raise); 0.
    fn evbuffer_set_flags(b: *mut CBuf, _flags: u64) -> c_int {
        nonnull!(b, -1);
        0
    }
}

ffi! {
    /// `evbuffer_clear_flags`: 0.
    fn evbuffer_clear_flags(b: *mut CBuf, _flags: u64) -> c_int {
        nonnull!(b, -1);
        0
    }
}

ffi! {
    /// `evbuffer_defer_callbacks`: accepted; evloop runs buffer callbacks at once. 0.
    fn evbuffer_defer_callbacks(b: *mut CBuf, _base: *mut CBase) -> c_int {
        nonnull!(b, -1);
        0
    }
}

ffi! {
    /// `evbuffer_add_file`: appends `length` bytes of `fd` from `offset` (negative length: to
    /// the end) and closes `fd`, which the buffer owns. evloop reads the bytes at once (libevent
    /// may send them later with `sendfile`); 0 or -1.
    fn evbuffer_add_file(b: *mut CBuf, fd: c_int, offset: i64, length: i64) -> c_int {
        // SAFETY: `b` is NULL or live.
        let Some(bb) = (unsafe { buf(b) }) else {
            return -1;
        };
        let mut data = Vec::new();
        let mut chunk = vec![0u8; 65536];
        let mut off = offset;
        let mut ok = true;
        while length < 0 || (data.len() as i64) < length {
            let want = if length < 0 {
                chunk.len()
            } else {
                chunk.len().min((length - data.len() as i64) as usize)
            };
            // SAFETY: `chunk` is writable for `want` bytes.
            let r = unsafe { libc::pread(fd, chunk.as_mut_ptr().cast(), want, off) };
            if r < 0 {
                ok = false;
                break;
            }
            if r == 0 {
                ok = length < 0;
                break;
            }
            data.extend_from_slice(&chunk[..r as usize]);
            off += r as i64;
        }
        // SAFETY: the buffer owns `fd` (libevent's contract) and is done with it.
        unsafe { libc::close(fd) };
        if !ok {
            return -1;
        }
        match bb.modify(|e| e.add(&data)) {
            Some(Ok(())) => 0,
            _ => -1,
        }
    }
}
