//! Per-fd and per-signal registration maps (libevent's `evmap.c`).
//!
//! For each fd the map counts the added events that want READ, WRITE and CLOSED and keeps the
//! list of those events; the base calls the backend only when a count crosses 0↔1, with the
//! interest before the change and the bits that changed. Lists are kept in add order and walked
//! backwards, which gives libevent's "most recently added first" activation order
//! (`LIST_INSERT_HEAD` + `LIST_FOREACH`). Both maps are plain vectors indexed by fd or signal
//! number: no hashing on the dispatch path. An fd's first two events are stored in its entry, and
//! a longer list's vector is kept (not freed) when it empties, so steady-state add/del does not
//! allocate.

use crate::backend::NSIG;
use crate::event::{Events, Fd};

/// The largest fd the map accepts (the backend would reject larger ones anyway).
pub const MAX_FD: Fd = 1 << 24;

/// Aligned to its size, so that no entry straddles two cache lines.
#[derive(Default, Clone)]
#[repr(align(32))]
struct IoEntry {
    nread: u16,
    nwrite: u16,
    nclose: u16,
    events: IdList,
}

/// An fd's events in add order. The first two live in the entry itself: most fds have one
/// event (or two, a bufferevent's read and write), so the dispatch path finds the event in the
/// cache line of the fd's counts instead of following a pointer to a separate allocation (one
/// cache miss fewer per callback once the fds outgrow the L1 cache; BENCHMARKS.md). Longer
/// lists continue in a boxed vector, kept when it empties so that steady-state add/del does not
/// allocate.
#[derive(Default, Clone)]
struct IdList {
    len: u32,
    head: [u32; 2],
    // Boxed: 8 bytes instead of a vector's 24 keep a whole entry at 32 bytes (checked below).
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<u32>>>,
}

const _: () = assert!(std::mem::size_of::<IoEntry>() == 32);

impl IdList {
    #[inline]
    fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    fn get(&self, k: usize) -> Option<u32> {
        if k >= self.len() {
            None
        } else if k < 2 {
            Some(self.head[k])
        } else {
            self.more.as_ref()?.get(k - 2).copied()
        }
    }

    fn push(&mut self, id: u32) {
        match self.len() {
            k @ 0..=1 => self.head[k] = id,
            _ => self.more.get_or_insert_with(Box::default).push(id),
        }
        self.len += 1;
    }

    /// The position of the last occurrence of `id`.
    fn rposition(&self, id: u32) -> Option<usize> {
        (0..self.len()).rev().find(|&k| self.get(k) == Some(id))
    }

    /// Removes the id at `pos` (< len), keeping the order of the rest.
    fn remove(&mut self, pos: usize) {
        if pos < 2 {
            if pos == 0 {
                self.head[0] = self.head[1];
            }
            if self.len() > 2 {
                let more = self.more.as_mut().expect("ids past the second are in more");
                self.head[1] = more.remove(0);
            }
        } else if let Some(more) = self.more.as_mut() {
            more.remove(pos - 2);
        }
        self.len -= 1;
    }
}

impl IoEntry {
    fn interest(&self) -> Events {
        let mut e = Events::NONE;
        if self.nread > 0 {
            e |= Events::READ;
        }
        if self.nwrite > 0 {
            e |= Events::WRITE;
        }
        if self.nclose > 0 {
            e |= Events::CLOSED;
        }
        e
    }
}

/// fd → counts and events.
#[derive(Default)]
pub struct IoMap {
    entries: Vec<IoEntry>,
}

impl IoMap {
    /// Registers event `id` (with flags `events`) on `fd`. Returns the interest before the
    /// change and the bits whose count went 0→1.
    pub fn add(
        &mut self,
        fd: Fd,
        id: u32,
        events: Events,
    ) -> Result<(Events, Events), &'static str> {
        if !(0..MAX_FD).contains(&fd) {
            return Err("file descriptor out of range");
        }
        let i = fd as usize;
        if i >= self.entries.len() {
            self.entries.resize_with(i + 1, IoEntry::default);
        }
        let e = &mut self.entries[i];
        let old = e.interest();
        let mut added = Events::NONE;
        for (flag, n) in [
            (Events::READ, &mut e.nread),
            (Events::WRITE, &mut e.nwrite),
            (Events::CLOSED, &mut e.nclose),
        ] {
            if events.contains(flag) {
                if *n == u16::MAX {
                    return Err("too many events on one file descriptor");
                }
                *n += 1;
                if *n == 1 {
                    added |= flag;
                }
            }
        }
        e.events.push(id);
        Ok((old, added))
    }

    /// Reverts [`IoMap::add`] after the backend refused the change.
    pub fn undo_add(&mut self, fd: Fd, id: u32, events: Events) {
        let _ = self.del(fd, id, events);
    }

    /// Unregisters event `id` from `fd`. Returns the interest before the change and the bits
    /// whose count went 1→0.
    pub fn del(&mut self, fd: Fd, id: u32, events: Events) -> (Events, Events) {
        let Some(e) = usize::try_from(fd)
            .ok()
            .and_then(|i| self.entries.get_mut(i))
        else {
            return (Events::NONE, Events::NONE);
        };
        let Some(pos) = e.events.rposition(id) else {
            return (e.interest(), Events::NONE);
        };
        e.events.remove(pos);
        let old = e.interest();
        let mut removed = Events::NONE;
        for (flag, n) in [
            (Events::READ, &mut e.nread),
            (Events::WRITE, &mut e.nwrite),
            (Events::CLOSED, &mut e.nclose),
        ] {
            if events.contains(flag) && *n > 0 {
                *n -= 1;
                if *n == 0 {
                    removed |= flag;
                }
            }
        }
        (old, removed)
    }

    /// The number of events registered on `fd` and the first two of them (in add order; only
    /// the first `min(n, 2)` are meaningful): the dispatch path's one lookup of an fd's entry.
    #[inline]
    pub fn head(&self, fd: Fd) -> (usize, [u32; 2]) {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map_or((0, [0; 2]), |e| (e.events.len(), e.events.head))
    }

    /// The `k`-th event registered on `fd`, in add order.
    #[inline]
    pub fn get(&self, fd: Fd, k: usize) -> Option<u32> {
        self.entries.get(usize::try_from(fd).ok()?)?.events.get(k)
    }

    /// The current interest on `fd`.
    #[cfg(test)]
    pub fn interest(&self, fd: Fd) -> Events {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map_or(Events::NONE, IoEntry::interest)
    }
}

/// signal number → events, in add order.
pub struct SignalMap {
    lists: Vec<Vec<u32>>,
    /// Events registered over all signals (so "any signal?" costs nothing at loop entry).
    total: usize,
}

impl Default for SignalMap {
    fn default() -> SignalMap {
        SignalMap {
            lists: vec![Vec::new(); NSIG],
            total: 0,
        }
    }
}

impl SignalMap {
    /// True if no event waits for `sig`.
    pub fn is_empty(&self, sig: i32) -> bool {
        self.len_of(sig) == 0
    }
    /// True if any signal has an event.
    pub fn any(&self) -> bool {
        self.total > 0
    }
    /// Adds event `id` on `sig` (the caller has checked the range).
    pub fn push(&mut self, sig: i32, id: u32) {
        self.lists[sig as usize].push(id);
        self.total += 1;
    }
    /// Removes event `id` from `sig`.
    pub fn remove(&mut self, sig: i32, id: u32) {
        if let Some(l) = usize::try_from(sig)
            .ok()
            .and_then(|i| self.lists.get_mut(i))
        {
            if let Some(pos) = l.iter().rposition(|&x| x == id) {
                l.remove(pos);
                self.total -= 1;
            }
        }
    }
    /// Number of events on `sig`.
    pub fn len_of(&self, sig: i32) -> usize {
        usize::try_from(sig)
            .ok()
            .and_then(|i| self.lists.get(i))
            .map_or(0, Vec::len)
    }
    /// The `k`-th event on `sig`, in add order.
    pub fn get(&self, sig: i32, k: usize) -> Option<u32> {
        self.lists.get(usize::try_from(sig).ok()?)?.get(k).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cross_zero_once() {
        let mut m = IoMap::default();
        let rw = Events::READ | Events::WRITE;
        assert_eq!(m.add(3, 1, Events::READ), Ok((Events::NONE, Events::READ)));
        assert_eq!(m.add(3, 2, rw), Ok((Events::READ, Events::WRITE)));
        assert_eq!(m.add(3, 3, Events::READ), Ok((rw, Events::NONE)));
        assert_eq!(m.del(3, 1, Events::READ), (rw, Events::NONE));
        assert_eq!(m.del(3, 2, rw), (rw, Events::WRITE));
        assert_eq!(m.del(3, 3, Events::READ), (Events::READ, Events::READ));
        assert_eq!(m.interest(3), Events::NONE);
        assert!(m.add(-1, 1, Events::READ).is_err());
        assert!(m.add(MAX_FD, 1, Events::READ).is_err());
    }

    proptest::proptest! {
        /// The inline list behaves as a `Vec` under any sequence of pushes and removals of the
        /// last occurrence of an id (what `IoMap::add`/`del` do).
        #[test]
        fn id_list_is_a_vec(ops in proptest::collection::vec((proptest::bool::ANY, 0u32..6), 0..64)) {
            let mut list = IdList::default();
            let mut model: Vec<u32> = Vec::new();
            for (push, id) in ops {
                if push {
                    list.push(id);
                    model.push(id);
                } else {
                    let pos = model.iter().rposition(|&x| x == id);
                    proptest::prop_assert_eq!(list.rposition(id), pos);
                    if let Some(pos) = pos {
                        list.remove(pos);
                        model.remove(pos);
                    }
                }
                proptest::prop_assert_eq!(list.len(), model.len());
                for k in 0..model.len() + 2 {
                    proptest::prop_assert_eq!(list.get(k), model.get(k).copied());
                }
            }
        }
    }

    #[test]
    fn signal_map_counts_per_signal_and_in_total() {
        let mut m = SignalMap::default();
        assert!(!m.any() && m.is_empty(2));
        m.push(2, 7);
        m.push(2, 8);
        m.push(10, 9);
        assert!(m.any() && !m.is_empty(2) && !m.is_empty(10) && m.is_empty(3));
        assert_eq!(
            (m.len_of(2), m.get(2, 0), m.get(2, 1)),
            (2, Some(7), Some(8))
        );
        m.remove(2, 7);
        m.remove(2, 7); // not there any more: nothing changes
        assert!(!m.is_empty(2) && m.get(2, 0) == Some(8));
        m.remove(2, 8);
        assert!(m.is_empty(2) && m.any(), "signal 10 still has an event");
        m.remove(10, 9);
        assert!(!m.any() && m.is_empty(10));
        m.remove(-1, 9);
        assert!(!m.any());
    }
}
