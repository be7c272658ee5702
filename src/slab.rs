//! A slab of boxed values behind generation-checked handles, for the buffered layer's objects
//! (bufferevents, listeners) that live in the base.
//!
//! A handle names a slot and the generation it was issued for; once the value is released the
//! slot's generation moves on, so a stale handle finds nothing instead of a newer occupant. A
//! handle also carries the tag of the slab (of the base) that issued it, so a handle given to
//! another base finds nothing there either.

use std::marker::PhantomData;

/// A handle type a [`Slab`] hands out.
pub(crate) trait SlabKey: Copy {
    /// The handle for slot `idx` at generation `gen`, issued by the slab tagged `tag`.
    fn from_parts(idx: u32, gen: u32, tag: u32) -> Self;
    /// The slot.
    fn idx(self) -> u32;
    /// The generation.
    fn gen(self) -> u32;
    /// The tag of the slab that issued it.
    fn tag(self) -> u32;
}

struct Slot<T> {
    gen: u32,
    value: Option<Box<T>>,
}

/// Values of type `T` behind handles of type `K`.
pub(crate) struct Slab<T, K> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    tag: u32,
    key: PhantomData<K>,
}

impl<T, K: SlabKey> Slab<T, K> {
    /// An empty slab whose handles carry `tag` (the owning base's tag).
    pub(crate) fn new(tag: u32) -> Slab<T, K> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            tag,
            key: PhantomData,
        }
    }

    /// The slot of `key`, if the handle is current and was issued here.
    fn slot(&self, key: K) -> Option<&Slot<T>> {
        match self.slots.get(key.idx() as usize) {
            Some(s) if s.gen == key.gen() && key.tag() == self.tag => Some(s),
            _ => None,
        }
    }

    fn slot_mut(&mut self, key: K) -> Option<&mut Slot<T>> {
        match self.slots.get_mut(key.idx() as usize) {
            Some(s) if s.gen == key.gen() && key.tag() == self.tag => Some(s),
            _ => None,
        }
    }

    /// Every stored value, in slot order (teardown).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().filter_map(|s| s.value.as_deref_mut())
    }

    /// A handle for a new value, to be stored with [`Slab::fill`] (the value may need its own
    /// handle to be built).
    pub(crate) fn reserve(&mut self) -> K {
        if let Some(idx) = self.free.pop() {
            K::from_parts(idx, self.slots[idx as usize].gen, self.tag)
        } else {
            self.slots.push(Slot {
                gen: 0,
                value: None,
            });
            K::from_parts((self.slots.len() - 1) as u32, 0, self.tag)
        }
    }

    /// Stores the value of a reserved handle.
    pub(crate) fn fill(&mut self, key: K, value: T) {
        if let Some(s) = self.slot_mut(key) {
            s.value = Some(Box::new(value));
        }
    }

    /// Drops the value; the handle (and every copy of it) becomes stale.
    pub(crate) fn release(&mut self, key: K) {
        if let Some(s) = self.slot_mut(key) {
            s.value = None;
            s.gen = s.gen.wrapping_add(1);
            self.free.push(key.idx());
        }
    }

    /// The value, if the handle is current.
    pub(crate) fn get(&self, key: K) -> Option<&T> {
        self.slot(key)?.value.as_deref()
    }

    /// The value, mutably, if the handle is current.
    pub(crate) fn get_mut(&mut self, key: K) -> Option<&mut T> {
        self.slot_mut(key)?.value.as_deref_mut()
    }

    /// Two different values at once.
    pub(crate) fn two_mut(&mut self, a: K, b: K) -> Option<(&mut T, &mut T)> {
        if a.idx() == b.idx() || a.tag() != self.tag || b.tag() != self.tag {
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
    struct H(u32, u32, u32);
    impl SlabKey for H {
        fn from_parts(idx: u32, gen: u32, tag: u32) -> H {
            H(idx, gen, tag)
        }
        fn tag(self) -> u32 {
            self.2
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
        let mut s: Slab<&str, H> = Slab::new(7);
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
        let foreign = H(b.0, b.1, 8);
        assert!(s.get(foreign).is_none(), "a handle from another slab");
        s.release(foreign);
        assert_eq!(s.get(b), Some(&"b"));
    }
}
