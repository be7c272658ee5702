//! A slab of boxed values behind generation-checked handles, for the buffered layer's objects
//! (bufferevents, listeners) that live in the base.
//!
//! A handle names a slot and the generation it was issued for; once the value is released the
//! slot's generation moves on, so a stale handle finds nothing instead of a newer occupant.

use std::marker::PhantomData;

/// A handle type a [`Slab`] hands out.
pub(crate) trait SlabKey: Copy {
    /// The handle for slot `idx` at generation `gen`.
    fn from_parts(idx: u32, gen: u32) -> Self;
    /// The slot.
    fn idx(self) -> u32;
    /// The generation.
    fn gen(self) -> u32;
}

struct Slot<T> {
    gen: u32,
    value: Option<Box<T>>,
}

/// Values of type `T` behind handles of type `K`.
pub(crate) struct Slab<T, K> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    key: PhantomData<K>,
}

impl<T, K> Default for Slab<T, K> {
    fn default() -> Slab<T, K> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            key: PhantomData,
        }
    }
}

impl<T, K: SlabKey> Slab<T, K> {
    /// A handle for a new value, to be stored with [`Slab::fill`] (the value may need its own
    /// handle to be built).
    pub(crate) fn reserve(&mut self) -> K {
        if let Some(idx) = self.free.pop() {
            K::from_parts(idx, self.slots[idx as usize].gen)
        } else {
            self.slots.push(Slot {
                gen: 0,
                value: None,
            });
            K::from_parts((self.slots.len() - 1) as u32, 0)
        }
    }

    /// Stores the value of a reserved handle.
    pub(crate) fn fill(&mut self, key: K, value: T) {
        self.slots[key.idx() as usize].value = Some(Box::new(value));
    }

    /// Drops the value; the handle (and every copy of it) becomes stale.
    pub(crate) fn release(&mut self, key: K) {
        if let Some(s) = self.slots.get_mut(key.idx() as usize) {
            if s.gen == key.gen() {
                s.value = None;
                s.gen = s.gen.wrapping_add(1);
                self.free.push(key.idx());
            }
        }
    }

    /// The value, if the handle is current.
    pub(crate) fn get(&self, key: K) -> Option<&T> {
        match self.slots.get(key.idx() as usize) {
            Some(s) if s.gen == key.gen() => s.value.as_deref(),
            _ => None,
        }
    }

    /// The value, mutably, if the handle is current.
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut T> {
        match self.slots.get_mut(key.idx() as usize) {
            Some(s) if s.gen == key.gen() => s.value.as_deref_mut(),
            _ => None,
        }
    }

    /// Two different values at once.
    pub(crate) fn two_mut(&mut self, a: K, b: K) -> Option<(&mut T, &mut T)> {
        if a.idx() == b.idx() {
            return None;
        }
        let (lo, hi) = (a.idx().min(b.idx()) as usize, a.idx().max(b.idx()) as usize);
        if hi >= self.slots.len() {
            return None;
        }
        let (left, right) = self.slots.split_at_mut(hi);
        let (sl, sh) = (&mut left[lo], &mut right[0]);
        let (sa, sb) = if a.idx() < b.idx() {
            (sl, sh)
        } else {
            (sh, sl)
        };
        if sa.gen != a.gen() || sb.gen != b.gen() {
            return None;
        }
        Some((sa.value.as_deref_mut()?, sb.value.as_deref_mut()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    struct H(u32, u32);
    impl SlabKey for H {
        fn from_parts(idx: u32, gen: u32) -> H {
            H(idx, gen)
        }
        fn idx(self) -> u32 {
            self.0
        }
        fn gen(self) -> u32 {
            self.1
        }
    }

    #[test]
    fn stale_handles_find_nothing() {
        let mut s: Slab<&str, H> = Slab::default();
        let a = s.reserve();
        s.fill(a, "a");
        let b = s.reserve();
        s.fill(b, "b");
        assert_eq!(s.two_mut(a, b).map(|(x, y)| (*x, *y)), Some(("a", "b")));
        s.release(a);
        assert!(s.get(a).is_none());
        let c = s.reserve();
        assert_eq!(c.0, a.0, "the slot is reused");
        s.fill(c, "c");
        assert!(s.get(a).is_none() && s.get(c) == Some(&"c"));
        assert!(s.two_mut(b, b).is_none());
    }
}
