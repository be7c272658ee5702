//! The timer heap: libevent's binary min-heap, operation for operation.
//!
//! Timer ties in libevent are not FIFO: N equal deadlines pushed into an empty heap pop as
//! `0, N-1, N-2, …, 1`, and in general the order of equal keys is a function of the exact history
//! of pushes and erasures. To reproduce libevent's order this heap performs the same moves as
//! `minheap-internal.h` (strict `>` on sift-up; on sift-down the right child is taken unless it is
//! strictly greater than the left; the hole keeps moving while the element is strictly greater).
//!
//! Items are small integer ids (the reactor's slot indices); the heap keeps each item's position
//! so that erasing is O(log n). The heap never reads a clock: keys are given to it.

use crate::event::Time;

const NONE: u32 = u32::MAX;

/// A binary min-heap of `(deadline, id)` with libevent's exact tie behaviour.
#[derive(Default, Debug, Clone)]
pub struct TimerHeap {
    /// Heap array: (key, id).
    p: Vec<(Time, u32)>,
    /// Position of each id in `p`, or NONE.
    pos: Vec<u32>,
}

impl TimerHeap {
    /// An empty heap.
    pub fn new() -> TimerHeap {
        TimerHeap::default()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.p.len()
    }

    /// True if there is no item.
    pub fn is_empty(&self) -> bool {
        self.p.is_empty()
    }

    /// The earliest item, if any.
    pub fn top(&self) -> Option<(Time, u32)> {
        self.p.first().copied()
    }

    /// True if `id` is in the heap.
    pub fn contains(&self, id: u32) -> bool {
        self.pos.get(id as usize).is_some_and(|&p| p != NONE)
    }

    /// The key of `id`, if it is in the heap.
    pub fn key(&self, id: u32) -> Option<Time> {
        let p = *self.pos.get(id as usize)?;
        (p != NONE).then(|| self.p[p as usize].0)
    }

    fn set(&mut self, hole: usize, item: (Time, u32)) {
        self.p[hole] = item;
        self.pos[item.1 as usize] = hole as u32;
    }

    /// Inserts `id` with `key`. `id` must not already be in the heap.
    pub fn push(&mut self, id: u32, key: Time) {
        debug_assert!(!self.contains(id));
        if self.pos.len() <= id as usize {
            self.pos.resize(id as usize + 1, NONE);
        }
        let hole = self.p.len();
        self.p.push((key, id));
        self.shift_up(hole, (key, id));
    }

    /// Removes and returns the earliest item.
    pub fn pop(&mut self) -> Option<(Time, u32)> {
        let top = *self.p.first()?;
        let last = self.p.pop().expect("non-empty");
        if !self.p.is_empty() {
            self.shift_down(0, last);
        }
        self.pos[top.1 as usize] = NONE;
        Some(top)
    }

    /// Removes `id` if present; returns whether it was.
    pub fn erase(&mut self, id: u32) -> bool {
        let Some(&at) = self.pos.get(id as usize) else {
            return false;
        };
        if at == NONE {
            return false;
        }
        let at = at as usize;
        let last = self.p.pop().expect("non-empty");
        if at < self.p.len() {
            // Replace the erased element with the last one and move it up or down.
            let parent = at.wrapping_sub(1) / 2;
            if at > 0 && self.p[parent].0 > last.0 {
                self.shift_up_unconditional(at, last);
            } else {
                self.shift_down(at, last);
            }
        }
        self.pos[id as usize] = NONE;
        true
    }

    fn shift_up(&mut self, mut hole: usize, e: (Time, u32)) {
        while hole > 0 {
            let parent = (hole - 1) / 2;
            if self.p[parent].0 > e.0 {
                let moved = self.p[parent];
                self.set(hole, moved);
                hole = parent;
            } else {
                break;
            }
        }
        self.set(hole, e);
    }

    fn shift_up_unconditional(&mut self, mut hole: usize, e: (Time, u32)) {
        loop {
            let parent = (hole - 1) / 2;
            let moved = self.p[parent];
            self.set(hole, moved);
            hole = parent;
            if hole == 0 || self.p[(hole - 1) / 2].0 <= e.0 {
                break;
            }
        }
        self.set(hole, e);
    }

    fn shift_down(&mut self, mut hole: usize, e: (Time, u32)) {
        let n = self.p.len();
        let mut min_child = 2 * (hole + 1);
        while min_child <= n {
            if min_child == n || self.p[min_child].0 > self.p[min_child - 1].0 {
                min_child -= 1;
            }
            if e.0 <= self.p[min_child].0 {
                break;
            }
            let moved = self.p[min_child];
            self.set(hole, moved);
            hole = min_child;
            min_child = 2 * (hole + 1);
        }
        self.set(hole, e);
    }

    /// Checks the heap property and the position index (used by tests).
    pub fn check_invariants(&self) -> bool {
        for i in 1..self.p.len() {
            if self.p[(i - 1) / 2].0 > self.p[i].0 {
                return false;
            }
        }
        self.p
            .iter()
            .enumerate()
            .all(|(i, &(_, id))| self.pos[id as usize] as usize == i)
            && self.pos.iter().filter(|&&p| p != NONE).count() == self.p.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_deadlines_pop_like_libevent() {
        for n in [2u32, 4, 8, 16] {
            let mut h = TimerHeap::new();
            for i in 0..n {
                h.push(i, Time(20_000));
            }
            let order: Vec<u32> = std::iter::from_fn(|| h.pop().map(|(_, id)| id)).collect();
            let mut expected = vec![0];
            expected.extend((1..n).rev());
            assert_eq!(order, expected, "n={n}");
        }
    }

    /// The accessors (used by the reactor and its tests) follow pushes, pops and erasures.
    #[test]
    fn accessors_follow_membership() {
        let mut h = TimerHeap::new();
        assert_eq!((h.len(), h.is_empty(), h.top()), (0, true, None));
        assert!(!h.contains(0));
        assert_eq!(h.key(0), None);
        assert!(!h.erase(0));
        h.push(3, Time(30));
        h.push(1, Time(10));
        h.push(2, Time(20));
        assert_eq!(
            (h.len(), h.is_empty(), h.top()),
            (3, false, Some((Time(10), 1)))
        );
        // Id 0 is inside the position index but absent; id 7 is past its end.
        assert!(h.contains(3) && !h.contains(0) && !h.contains(7));
        assert_eq!((h.key(2), h.key(0), h.key(7)), (Some(Time(20)), None, None));
        assert!(h.erase(1));
        assert!(!h.erase(1) && !h.contains(1));
        assert_eq!((h.len(), h.top()), (2, Some((Time(20), 2))));
        assert_eq!(h.pop(), Some((Time(20), 2)));
        assert_eq!(h.pop(), Some((Time(30), 3)));
        assert_eq!((h.pop(), h.len(), h.is_empty()), (None, 0, true));
        assert!(!h.contains(3));
    }

    /// `check_invariants` accepts equal keys on a parent and its child, and rejects a child
    /// smaller than its parent, a stale position index and an id marked present that is not.
    #[test]
    fn check_invariants_rejects_broken_heaps() {
        let mut h = TimerHeap::new();
        h.push(0, Time(5));
        h.push(1, Time(5));
        h.push(2, Time(7));
        assert_eq!(h.p, vec![(Time(5), 0), (Time(5), 1), (Time(7), 2)]);
        assert!(h.check_invariants());
        let mut bad = h.clone();
        bad.p[2].0 = Time(1);
        assert!(!bad.check_invariants());
        let mut bad = h.clone();
        bad.pos.swap(0, 1);
        assert!(!bad.check_invariants());
        let mut bad = h.clone();
        bad.pos.push(0);
        assert!(!bad.check_invariants());
    }

    /// A direct transcription of the C algorithm over a plain array, used as the model.
    #[derive(Default)]
    struct Model {
        p: Vec<(u64, u32)>,
    }
    impl Model {
        fn push(&mut self, e: (u64, u32)) {
            let mut hole = self.p.len();
            self.p.push(e);
            while hole > 0 && self.p[(hole - 1) / 2].0 > e.0 {
                self.p[hole] = self.p[(hole - 1) / 2];
                hole = (hole - 1) / 2;
            }
            self.p[hole] = e;
        }
        fn down(&mut self, mut hole: usize, e: (u64, u32)) {
            let n = self.p.len();
            let mut c = 2 * (hole + 1);
            while c <= n {
                if c == n || self.p[c].0 > self.p[c - 1].0 {
                    c -= 1;
                }
                if e.0 <= self.p[c].0 {
                    break;
                }
                self.p[hole] = self.p[c];
                hole = c;
                c = 2 * (hole + 1);
            }
            self.p[hole] = e;
        }
        fn erase_at(&mut self, at: usize) {
            let last = self.p.pop().unwrap();
            if at == self.p.len() {
                return;
            }
            if at > 0 && self.p[(at - 1) / 2].0 > last.0 {
                let mut hole = at;
                loop {
                    let parent = (hole - 1) / 2;
                    self.p[hole] = self.p[parent];
                    hole = parent;
                    if hole == 0 || self.p[(hole - 1) / 2].0 <= last.0 {
                        break;
                    }
                }
                self.p[hole] = last;
            } else {
                self.down(at, last);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u64),
        Pop,
        Erase(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..8).prop_map(Op::Push),
            2 => Just(Op::Pop),
            2 => (0usize..64).prop_map(Op::Erase),
        ]
    }

    proptest! {
        #[test]
        fn matches_the_c_algorithm(ops in proptest::collection::vec(op(), 1..200)) {
            let mut h = TimerHeap::new();
            let mut m = Model::default();
            let mut next = 0u32;
            for op in ops {
                match op {
                    Op::Push(k) => { h.push(next, Time(k)); m.push((k, next)); next += 1; }
                    Op::Pop => {
                        let a = h.pop().map(|(t, id)| (t.0, id));
                        let b = if m.p.is_empty() { None } else { let t = m.p[0]; m.erase_at(0); Some(t) };
                        prop_assert_eq!(a, b);
                    }
                    Op::Erase(i) => {
                        if !m.p.is_empty() {
                            let at = i % m.p.len();
                            let id = m.p[at].1;
                            m.erase_at(at);
                            prop_assert!(h.erase(id));
                            prop_assert!(!h.erase(id));
                        }
                    }
                }
                prop_assert!(h.check_invariants());
                let hp: Vec<(u64, u32)> = h.p.iter().map(|&(t, id)| (t.0, id)).collect();
                prop_assert_eq!(&hp, &m.p);
            }
        }
    }
}
