//! EvBuffer: libevent's `evbuffer`, a byte queue made of a chain of chunks.
//!
//! This module owns the byte storage of the buffered layer. Appending fills the spare room of the
//! last chunk and then adds new chunks; draining drops whole chunks and moves the start of the
//! first one; moving a buffer into another hands the chunks over. None of these copies the bytes
//! already stored, so their cost does not grow with the buffer (libevent's `evbuffer_chain`).
//!
//! Like libevent, a buffer counts the bytes added and removed by each operation and, at the end of
//! the operation, calls its length-change callbacks ([`EvBuffer::add_cb`]) with a [`CbInfo`].
//! Operations on two buffers notify them in libevent's order (`evbuffer_add_buffer`: the source
//! first; `evbuffer_remove_buffer` of part of a buffer: the destination first). A buffer can also
//! be frozen at either end ([`EvBuffer::freeze`]): adding at a frozen end or removing from a
//! frozen start fails, as the bufferevents use it.
//!
//! The buffer talks to descriptors only through a [`Backend`] ([`EvBuffer::read_from`],
//! [`EvBuffer::write_atmost`]). It never touches a reactor: the bufferevents react to its changes
//! themselves (see `bufferevent/`).

use std::collections::VecDeque;
use std::fmt;
use std::io;

use crate::backend::Backend;
use crate::base::{Error, Result};
use crate::event::Fd;

/// The most bytes one [`EvBuffer::read_from`] reads (`EVBUFFER_MAX_READ`).
pub const MAX_READ: usize = 4096;
/// The smallest chunk the buffer allocates.
const MIN_CHUNK: usize = 1024;
/// How many chunks one write gathers at most (libevent's `NUM_WRITE_IOVEC`).
const WRITE_IOVEC: usize = 16;
/// How many bytes a write without a limit gathers from several chunks at most.
const WRITE_GATHER: usize = 65536;

/// What changed in one operation, as the length-change callbacks see it (`evbuffer_cb_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbInfo {
    /// The length before the operation.
    pub orig_size: usize,
    /// Bytes added.
    pub n_added: usize,
    /// Bytes removed.
    pub n_deleted: usize,
}

/// Identifies a length-change callback of one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CbId(u32);

/// How [`EvBuffer::readln`] recognises the end of a line (`enum evbuffer_eol_style`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EolStyle {
    /// Any run of CR and LF characters (`EVBUFFER_EOL_ANY`).
    Any,
    /// LF, optionally preceded by CR (`EVBUFFER_EOL_CRLF`).
    Crlf,
    /// Exactly CR LF (`EVBUFFER_EOL_CRLF_STRICT`).
    CrlfStrict,
    /// LF (`EVBUFFER_EOL_LF`).
    Lf,
    /// A NUL byte (`EVBUFFER_EOL_NUL`).
    Nul,
}

/// A length-change callback: the buffer after the change, and the change.
pub type BufferCallback = Box<dyn FnMut(&EvBuffer, &CbInfo)>;

struct CbEntry {
    id: u32,
    enabled: bool,
    f: Option<BufferCallback>,
}

/// One chunk: `data[start..end]` holds bytes, `data[end..]` is room to append, `data[..start]`
/// room to prepend.
struct Chunk {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Chunks of the common sizes (1, 2 and 4 KiB: [`MIN_CHUNK`] up to [`MAX_READ`]) are recycled
/// through a small per-thread pool instead of being freed: a connection's read allocates a
/// 4 KiB chunk and drains it soon after, and getting it zeroed from the allocator each time was
/// the largest single cost of a simulated hello-world run. The pool holds at most
/// [`POOL_PER_CLASS`] chunks of each size (224 KiB a thread), never changes what a buffer
/// stores, and is only a cache: a chunk taken from it has arbitrary old bytes in its room, which
/// nothing reads before writing.
const POOL_CLASSES: usize = 3;
const POOL_PER_CLASS: usize = 32;

thread_local! {
    static CHUNK_POOL: std::cell::RefCell<[Vec<Box<[u8]>>; POOL_CLASSES]> =
        const { std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// The pool class of a chunk capacity, if it is pooled.
fn pool_class(cap: usize) -> Option<usize> {
    match cap {
        MIN_CHUNK => Some(0),
        2048 => Some(1),
        MAX_READ => Some(2),
        _ => None,
    }
}

impl Chunk {
    fn with_capacity(n: usize) -> Chunk {
        let cap = n.max(MIN_CHUNK).next_power_of_two();
        let pooled = pool_class(cap).and_then(|k| {
            CHUNK_POOL
                .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p[k].pop()))
                .ok()
                .flatten()
        });
        Chunk {
            data: pooled.unwrap_or_else(|| vec![0; cap].into_boxed_slice()),
            start: 0,
            end: 0,
        }
    }
    fn len(&self) -> usize {
        self.end - self.start
    }
    fn bytes(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
    fn room(&self) -> usize {
        self.data.len() - self.end
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(k) = pool_class(self.data.len()) {
            let data = std::mem::take(&mut self.data);
            // During thread teardown the pool may be gone already: then the memory is freed.
            let _ = CHUNK_POOL.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    if p[k].len() < POOL_PER_CLASS {
                        p[k].push(data);
                    }
                }
            });
        }
    }
}

/// A chain-of-chunks byte queue (`struct evbuffer`).
#[derive(Default)]
pub struct EvBuffer {
    chunks: VecDeque<Chunk>,
    len: usize,
    freeze_start: bool,
    freeze_end: bool,
    /// Changes not yet reported to the callbacks (`n_add_for_cb`, `n_del_for_cb`).
    n_add_for_cb: usize,
    n_del_for_cb: usize,
    /// Changes not yet taken by the bufferevent that owns this buffer.
    owned: bool,
    owner_added: usize,
    owner_deleted: usize,
    callbacks: Vec<CbEntry>,
    next_cb: u32,
}

impl fmt::Debug for EvBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvBuffer")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .field("freeze_start", &self.freeze_start)
            .field("freeze_end", &self.freeze_end)
            .finish()
    }
}

const FROZEN_END: Error = Error::Invalid("the end of the buffer is frozen");
const FROZEN_START: Error = Error::Invalid("the start of the buffer is frozen");

impl EvBuffer {
    /// An empty buffer (`evbuffer_new`).
    pub fn new() -> EvBuffer {
        EvBuffer::default()
    }

    /// A buffer holding a copy of `data`.
    pub fn from_bytes(data: &[u8]) -> EvBuffer {
        let mut b = EvBuffer::new();
        b.append_bytes(data);
        b.n_add_for_cb = 0;
        b
    }

    /// The number of bytes stored (`evbuffer_get_length`).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no byte is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The length of the first chunk: how many bytes [`EvBuffer::pullup`] can return without
    /// moving anything (`evbuffer_get_contiguous_space`).
    pub fn contiguous_space(&self) -> usize {
        self.chunks.front().map_or(0, Chunk::len)
    }

    /// The stored bytes, chunk by chunk, without copying (`evbuffer_peek`).
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(Chunk::bytes)
            .filter(|c| !c.is_empty())
    }

    /// The first `len` bytes (all, if fewer are stored), as slices of the chunks that hold them,
    /// without copying (`evbuffer_peek(buf, len, NULL, …)`).
    pub fn peek(&self, len: usize) -> impl Iterator<Item = &[u8]> {
        let mut left = len;
        self.chunks().map_while(move |c| {
            if left == 0 {
                return None;
            }
            let k = c.len().min(left);
            left -= k;
            Some(&c[..k])
        })
    }

    /// A copy of every stored byte.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        for c in self.chunks() {
            v.extend_from_slice(c);
        }
        v
    }

    // ----------------------------------------------------------------------------------------
    // Freezing

    /// Freezes the start (`at_front`: no drain or remove) or the end (no add) of the buffer
    /// (`evbuffer_freeze`).
    pub fn freeze(&mut self, at_front: bool) {
        if at_front {
            self.freeze_start = true;
        } else {
            self.freeze_end = true;
        }
    }

    /// Undoes [`EvBuffer::freeze`] (`evbuffer_unfreeze`).
    pub fn unfreeze(&mut self, at_front: bool) {
        if at_front {
            self.freeze_start = false;
        } else {
            self.freeze_end = false;
        }
    }

    /// Whether the start (`at_front`) or the end is frozen.
    pub fn is_frozen(&self, at_front: bool) -> bool {
        if at_front {
            self.freeze_start
        } else {
            self.freeze_end
        }
    }

    // ----------------------------------------------------------------------------------------
    // Adding

    /// Appends a copy of `data` (`evbuffer_add`). Fails if the end is frozen.
    pub fn add(&mut self, data: &[u8]) -> Result<()> {
        if self.freeze_end {
            return Err(FROZEN_END);
        }
        self.append_bytes(data);
        self.invoke_callbacks();
        Ok(())
    }

    fn append_bytes(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        self.n_add_for_cb += data.len();
        if let Some(last) = self.chunks.back_mut() {
            let n = last.room().min(data.len());
            last.data[last.end..last.end + n].copy_from_slice(&data[..n]);
            last.end += n;
            data = &data[n..];
        }
        if !data.is_empty() {
            let mut c = Chunk::with_capacity(data.len());
            c.data[..data.len()].copy_from_slice(data);
            c.end = data.len();
            self.chunks.push_back(c);
        }
    }

    /// Inserts a copy of `data` before the stored bytes (`evbuffer_prepend`). Fails if the
    /// start is frozen.
    pub fn prepend(&mut self, mut data: &[u8]) -> Result<()> {
        if self.freeze_start {
            return Err(FROZEN_START);
        }
        if data.is_empty() {
            return Ok(());
        }
        self.len += data.len();
        self.n_add_for_cb += data.len();
        if let Some(first) = self.chunks.front_mut() {
            let n = first.start.min(data.len());
            let tail = &data[data.len() - n..];
            first.data[first.start - n..first.start].copy_from_slice(tail);
            first.start -= n;
            data = &data[..data.len() - n];
        }
        if !data.is_empty() {
            // Put the bytes at the end of the new chunk so later prepends find room before them.
            let mut c = Chunk::with_capacity(data.len());
            let cap = c.data.len();
            c.data[cap - data.len()..].copy_from_slice(data);
            c.start = cap - data.len();
            c.end = cap;
            self.chunks.push_front(c);
        }
        self.invoke_callbacks();
        Ok(())
    }

    /// Moves every byte of `src` to the end of this buffer without copying
    /// (`evbuffer_add_buffer(self, src)`). `src`'s callbacks run first, then this buffer's.
    pub fn add_buffer(&mut self, src: &mut EvBuffer) -> Result<()> {
        let n = src.len;
        if n == 0 {
            return Ok(());
        }
        if self.freeze_end || src.freeze_start {
            return Err(Error::Invalid("buffer frozen"));
        }
        self.append_chunks(src);
        src.n_del_for_cb += n;
        self.n_add_for_cb += n;
        src.invoke_callbacks();
        self.invoke_callbacks();
        Ok(())
    }

    fn append_chunks(&mut self, src: &mut EvBuffer) {
        let n = src.len;
        self.chunks
            .extend(src.chunks.drain(..).filter(|c| c.len() > 0));
        self.len += n;
        src.len = 0;
    }

    /// Moves every byte of `src` before the bytes of this buffer (`evbuffer_prepend_buffer`).
    pub fn prepend_buffer(&mut self, src: &mut EvBuffer) -> Result<()> {
        let n = src.len;
        if n == 0 {
            return Ok(());
        }
        if self.freeze_start || src.freeze_start {
            return Err(Error::Invalid("buffer frozen"));
        }
        let mut moved: VecDeque<Chunk> = src.chunks.drain(..).filter(|c| c.len() > 0).collect();
        moved.append(&mut self.chunks);
        self.chunks = moved;
        self.len += n;
        src.len = 0;
        src.n_del_for_cb += n;
        self.n_add_for_cb += n;
        src.invoke_callbacks();
        self.invoke_callbacks();
        Ok(())
    }

    /// Moves up to `n` bytes from the front of this buffer to the end of `dst`
    /// (`evbuffer_remove_buffer(self, dst, n)`); returns how many moved. Whole chunks move
    /// without copying; only a partial chunk at the end is copied. Moving everything notifies
    /// this buffer first (it is `evbuffer_add_buffer`); moving a part notifies `dst` first.
    pub fn remove_buffer(&mut self, dst: &mut EvBuffer, n: usize) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        if dst.freeze_end || self.freeze_start {
            return Err(Error::Invalid("buffer frozen"));
        }
        if n >= self.len {
            let all = self.len;
            dst.add_buffer(self)?;
            return Ok(all);
        }
        let mut left = n;
        while let Some(front) = self.chunks.front() {
            if front.len() > left {
                break;
            }
            left -= front.len();
            let c = self.chunks.pop_front().expect("front exists");
            if c.len() > 0 {
                dst.chunks.push_back(c);
            }
        }
        dst.len += n - left;
        dst.n_add_for_cb += n - left;
        if left > 0 {
            let front = self.chunks.front_mut().expect("bytes remain");
            let part = front.data[front.start..front.start + left].to_vec();
            front.start += left;
            dst.append_bytes(&part);
        }
        self.len -= n;
        self.n_del_for_cb += n;
        dst.invoke_callbacks();
        self.invoke_callbacks();
        Ok(n)
    }

    // ----------------------------------------------------------------------------------------
    // Removing

    /// Drops the first `n` bytes, or all if fewer are stored (`evbuffer_drain`). Fails if the
    /// start is frozen.
    pub fn drain(&mut self, n: usize) -> Result<()> {
        if self.freeze_start {
            return Err(FROZEN_START);
        }
        self.drain_bytes(n);
        self.invoke_callbacks();
        Ok(())
    }

    fn drain_bytes(&mut self, n: usize) {
        let mut left = n.min(self.len);
        self.len -= left;
        self.n_del_for_cb += left;
        while left > 0 {
            let front = self.chunks.front_mut().expect("length covers the chunks");
            if front.len() <= left {
                left -= front.len();
                self.chunks.pop_front();
            } else {
                front.start += left;
                left = 0;
            }
        }
        if self.len == 0 {
            self.chunks.clear();
        }
    }

    /// Copies up to `out.len()` bytes out and drains them (`evbuffer_remove`); returns how many.
    pub fn remove(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.freeze_start {
            return Err(FROZEN_START);
        }
        let n = self.copyout(out);
        self.drain_bytes(n);
        self.invoke_callbacks();
        Ok(n)
    }

    /// Copies up to `out.len()` bytes out without draining (`evbuffer_copyout`).
    pub fn copyout(&self, out: &mut [u8]) -> usize {
        self.copyout_from(0, out)
    }

    /// Copies up to `out.len()` bytes starting at byte `pos` (`evbuffer_copyout_from`).
    pub fn copyout_from(&self, pos: usize, out: &mut [u8]) -> usize {
        let mut skip = pos;
        let mut n = 0;
        for c in self.chunks() {
            if n == out.len() {
                break;
            }
            if skip >= c.len() {
                skip -= c.len();
                continue;
            }
            let c = &c[skip..];
            skip = 0;
            let k = c.len().min(out.len() - n);
            out[n..n + k].copy_from_slice(&c[..k]);
            n += k;
        }
        n
    }

    /// Makes the first `n` bytes (all with `None`) contiguous and returns them
    /// (`evbuffer_pullup`); `None` if fewer bytes are stored. Only those `n` bytes are moved.
    pub fn pullup(&mut self, n: Option<usize>) -> Option<&[u8]> {
        let n = n.unwrap_or(self.len);
        if n > self.len {
            return None;
        }
        if n == 0 {
            return Some(&[]);
        }
        if self.contiguous_space() < n {
            let mut c = Chunk::with_capacity(n);
            let mut left = n;
            while left > 0 {
                let front = self.chunks.front_mut().expect("length covers the chunks");
                let k = front.len().min(left);
                c.data[c.end..c.end + k].copy_from_slice(&front.data[front.start..front.start + k]);
                c.end += k;
                front.start += k;
                left -= k;
                if front.len() == 0 {
                    self.chunks.pop_front();
                }
            }
            self.chunks.push_front(c);
        }
        let front = self.chunks.front().expect("n > 0 bytes are stored");
        Some(&front.bytes()[..n])
    }

    // ----------------------------------------------------------------------------------------
    // Searching

    /// The byte at `pos`.
    fn byte_at(&self, mut pos: usize) -> Option<u8> {
        for c in self.chunks() {
            if pos < c.len() {
                return Some(c[pos]);
            }
            pos -= c.len();
        }
        None
    }

    /// Iterates over `(position, byte)` from `start`.
    fn bytes_from(&self, start: usize) -> impl Iterator<Item = (usize, u8)> + '_ {
        let mut skip = start;
        let mut base = 0;
        self.chunks().flat_map(move |c| {
            let from = skip.min(c.len());
            skip -= from;
            let b = base;
            base += c.len();
            c[from..]
                .iter()
                .enumerate()
                .map(move |(i, &x)| (b + from + i, x))
        })
    }

    fn matches_at(&self, pos: usize, what: &[u8]) -> bool {
        if pos + what.len() > self.len {
            return false;
        }
        self.bytes_from(pos).zip(what).all(|((_, a), &b)| a == b)
    }

    /// The position of the first occurrence of `what` at or after `start` (`evbuffer_search`).
    pub fn search(&self, what: &[u8], start: usize) -> Option<usize> {
        self.search_range(what, start, None)
    }

    /// Like [`EvBuffer::search`], but the match must end at or before `end`
    /// (`evbuffer_search_range`).
    pub fn search_range(&self, what: &[u8], start: usize, end: Option<usize>) -> Option<usize> {
        let end = end.unwrap_or(self.len).min(self.len);
        if start > end {
            return None;
        }
        let Some(&first) = what.first() else {
            return Some(start);
        };
        self.bytes_from(start)
            .take_while(|&(p, _)| p + what.len() <= end)
            .find(|&(p, b)| b == first && self.matches_at(p, what))
            .map(|(p, _)| p)
    }

    /// Finds the next end of line at or after `start` (`evbuffer_search_eol`): the position of
    /// the line end and the length of the end-of-line marker.
    pub fn search_eol(&self, start: usize, style: EolStyle) -> Option<(usize, usize)> {
        match style {
            EolStyle::Any => {
                let (p, _) = self
                    .bytes_from(start)
                    .find(|&(_, b)| b == b'\r' || b == b'\n')?;
                let n = self
                    .bytes_from(p)
                    .take_while(|&(_, b)| b == b'\r' || b == b'\n')
                    .count();
                Some((p, n))
            }
            EolStyle::CrlfStrict => self.search(b"\r\n", start).map(|p| (p, 2)),
            EolStyle::Crlf => {
                let (p, _) = self.bytes_from(start).find(|&(_, b)| b == b'\n')?;
                if p > start && self.byte_at(p - 1) == Some(b'\r') {
                    Some((p - 1, 2))
                } else {
                    Some((p, 1))
                }
            }
            EolStyle::Lf => self
                .bytes_from(start)
                .find(|&(_, b)| b == b'\n')
                .map(|(p, _)| (p, 1)),
            EolStyle::Nul => self
                .bytes_from(start)
                .find(|&(_, b)| b == 0)
                .map(|(p, _)| (p, 1)),
        }
    }

    /// Removes one line and its end-of-line marker and returns the line without the marker
    /// (`evbuffer_readln`). `None` if no complete line is stored or the start is frozen. Like
    /// libevent, the line is removed and the marker drained in two steps, each notifying the
    /// callbacks.
    pub fn readln(&mut self, style: EolStyle) -> Option<Vec<u8>> {
        if self.freeze_start {
            return None;
        }
        let (pos, eol) = self.search_eol(0, style)?;
        let mut line = vec![0; pos];
        self.remove(&mut line).ok()?;
        self.drain(eol).ok()?;
        Some(line)
    }

    // ----------------------------------------------------------------------------------------
    // Descriptors

    /// Reads from `fd` into the end of the buffer (`evbuffer_read`): at most `howmuch` bytes,
    /// and never more than [`MAX_READ`]. Returns the byte count (0 at end of file) or the
    /// backend's error. Fails if the end is frozen.
    pub fn read_from<B: Backend + ?Sized>(
        &mut self,
        backend: &mut B,
        fd: Fd,
        howmuch: Option<usize>,
    ) -> io::Result<usize> {
        if self.freeze_end {
            return Err(io::Error::other("the end of the buffer is frozen"));
        }
        let want = howmuch.map_or(MAX_READ, |h| h.min(MAX_READ));
        if self.chunks.back().map_or(0, Chunk::room) < want {
            self.chunks.push_back(Chunk::with_capacity(want));
        }
        let last = self.chunks.back_mut().expect("a chunk with room exists");
        let n = backend.read(fd, &mut last.data[last.end..last.end + want])?;
        last.end += n;
        if last.len() == 0 {
            self.chunks.pop_back();
        }
        self.len += n;
        self.n_add_for_cb += n;
        self.invoke_callbacks();
        Ok(n)
    }

    /// Writes the whole front of the buffer that one write takes to `fd`, then drains what was
    /// written (`evbuffer_write`).
    pub fn write_to<B: Backend + ?Sized>(&mut self, backend: &mut B, fd: Fd) -> io::Result<usize> {
        self.write_atmost(backend, fd, None)
    }

    /// Writes at most `atmost` bytes from the front of the buffer to `fd` in one write, then
    /// drains what the kernel took (`evbuffer_write_atmost`). Like libevent's `writev` of up to
    /// 16 chunks, a write may span chunks: those bytes (at most `atmost`) are gathered first.
    /// Fails if the start is frozen.
    pub fn write_atmost<B: Backend + ?Sized>(
        &mut self,
        backend: &mut B,
        fd: Fd,
        atmost: Option<usize>,
    ) -> io::Result<usize> {
        if self.freeze_start {
            return Err(io::Error::other("the start of the buffer is frozen"));
        }
        let limit = atmost.unwrap_or(usize::MAX).min(self.len);
        if limit == 0 {
            return Ok(0);
        }
        let first = self.chunks().next().expect("bytes are stored");
        let n = if first.len() >= limit || self.chunks.len() == 1 {
            backend.write(fd, &first[..limit.min(first.len())])?
        } else {
            let cap = if atmost.is_some() {
                limit
            } else {
                limit.min(WRITE_GATHER)
            };
            let mut gathered = Vec::with_capacity(cap);
            for c in self.chunks().take(WRITE_IOVEC) {
                let k = c.len().min(cap - gathered.len());
                gathered.extend_from_slice(&c[..k]);
                if gathered.len() == cap {
                    break;
                }
            }
            backend.write(fd, &gathered)?
        };
        self.drain_bytes(n);
        self.invoke_callbacks();
        Ok(n)
    }

    // ----------------------------------------------------------------------------------------
    // Callbacks

    /// Adds a length-change callback (`evbuffer_add_cb`). Like libevent, which inserts at the
    /// head of its list, the most recently added callback runs first.
    pub fn add_cb(&mut self, f: impl FnMut(&EvBuffer, &CbInfo) + 'static) -> CbId {
        let id = self.next_cb;
        self.next_cb += 1;
        self.callbacks.insert(
            0,
            CbEntry {
                id,
                enabled: true,
                f: Some(Box::new(f)),
            },
        );
        CbId(id)
    }

    /// Removes a callback (`evbuffer_remove_cb_entry`); false if it was not there.
    pub fn remove_cb(&mut self, id: CbId) -> bool {
        let before = self.callbacks.len();
        self.callbacks.retain(|e| e.id != id.0);
        self.callbacks.len() != before
    }

    /// Enables or disables a callback (`evbuffer_cb_set_flags` / `clear_flags` with
    /// `EVBUFFER_CB_ENABLED`); false if it is not there.
    pub fn set_cb_enabled(&mut self, id: CbId, enabled: bool) -> bool {
        match self.callbacks.iter_mut().find(|e| e.id == id.0) {
            Some(e) => {
                e.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// `evbuffer_invoke_callbacks_`: report the changes since the last report, if any.
    fn invoke_callbacks(&mut self) {
        let (added, deleted) = (self.n_add_for_cb, self.n_del_for_cb);
        if added == 0 && deleted == 0 {
            return;
        }
        self.n_add_for_cb = 0;
        self.n_del_for_cb = 0;
        if self.owned {
            self.owner_added += added;
            self.owner_deleted += deleted;
        }
        if self.callbacks.is_empty() {
            return;
        }
        let info = CbInfo {
            orig_size: self.len + deleted - added,
            n_added: added,
            n_deleted: deleted,
        };
        // Callbacks only see `&EvBuffer`, so they cannot add or remove entries while they run.
        let mut entries = std::mem::take(&mut self.callbacks);
        for e in entries.iter_mut().filter(|e| e.enabled) {
            if let Some(f) = e.f.as_mut() {
                f(self, &info);
            }
        }
        self.callbacks = entries;
    }

    /// Marks the buffer as owned by a bufferevent, which then takes every change with
    /// [`EvBuffer::take_owner_change`].
    pub(crate) fn set_owned(&mut self) {
        self.owned = true;
    }

    /// The changes since the owner last looked, as one [`CbInfo`]; `None` if nothing changed.
    pub(crate) fn take_owner_change(&mut self) -> Option<CbInfo> {
        let (added, deleted) = (self.owner_added, self.owner_deleted);
        self.owner_added = 0;
        self.owner_deleted = 0;
        (added != 0 || deleted != 0).then(|| CbInfo {
            orig_size: self.len + deleted - added,
            n_added: added,
            n_deleted: deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(k: usize) -> usize {
        CHUNK_POOL.with(|p| p.borrow()[k].len())
    }

    /// A dropped chunk of each pooled size (1, 2, 4 KiB) goes back to its own class and is the
    /// very allocation the next chunk of that size gets; other sizes are not kept.
    #[test]
    fn dropped_chunks_of_the_pooled_sizes_are_reused() {
        for (k, want) in [(0, 1), (1, 1500), (2, MAX_READ)] {
            let before: Vec<usize> = (0..POOL_CLASSES).map(pooled).collect();
            let c = Chunk::with_capacity(want);
            let ptr = c.data.as_ptr();
            assert_eq!(c.data.len(), MIN_CHUNK << k);
            drop(c);
            for (j, &n) in before.iter().enumerate() {
                let want = if j == k { n.max(1) } else { n };
                assert_eq!(pooled(j), want, "class {k}, pool {j}");
            }
            assert_eq!(Chunk::with_capacity(want).data.as_ptr(), ptr, "class {k}");
        }
        let before: Vec<usize> = (0..POOL_CLASSES).map(pooled).collect();
        drop(Chunk::with_capacity(MAX_READ + 1));
        assert_eq!((0..POOL_CLASSES).map(pooled).collect::<Vec<_>>(), before);
    }

    /// The pool keeps at most `POOL_PER_CLASS` chunks of a size; the rest are freed.
    #[test]
    fn the_pool_is_bounded() {
        let chunks: Vec<Chunk> = (0..POOL_PER_CLASS + 5)
            .map(|_| Chunk::with_capacity(MIN_CHUNK))
            .collect();
        drop(chunks);
        assert_eq!(pooled(0), POOL_PER_CLASS);
        let again: Vec<Chunk> = (0..POOL_PER_CLASS)
            .map(|_| Chunk::with_capacity(MIN_CHUNK))
            .collect();
        assert_eq!(pooled(0), 0);
        drop(again);
        assert_eq!(pooled(0), POOL_PER_CLASS);
    }
}
