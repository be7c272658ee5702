//! Event identities and event flags.
//!
//! This module owns the small value types every other part of the reactor shares: the
//! generation-checked [`EventId`], the [`Events`] bit set (libevent's `EV_*` flags, with the same
//! numeric values so traces and the C player agree), and [`Time`], the reactor's microsecond clock
//! value. It must never hold reactor state.

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not, Sub};
use std::time::Duration;

/// A file descriptor (a socket on Windows would also be carried as this integer).
pub type Fd = i32;

/// A set of libevent event flags (`EV_TIMEOUT`, `EV_READ`, …) with libevent's numeric values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Events(u16);

impl Events {
    /// No flag.
    pub const NONE: Events = Events(0);
    /// `EV_TIMEOUT`: the event's timeout expired.
    pub const TIMEOUT: Events = Events(0x01);
    /// `EV_READ`: the fd is readable.
    pub const READ: Events = Events(0x02);
    /// `EV_WRITE`: the fd is writable.
    pub const WRITE: Events = Events(0x04);
    /// `EV_SIGNAL`: a signal event (the "fd" is the signal number).
    pub const SIGNAL: Events = Events(0x08);
    /// `EV_PERSIST`: the event stays added after its callback runs.
    pub const PERSIST: Events = Events(0x10);
    /// `EV_ET`: edge-triggered, where the backend supports it.
    pub const ET: Events = Events(0x20);
    /// `EV_FINALIZE`: accepted for compatibility; it only marks the event.
    pub const FINALIZE: Events = Events(0x40);
    /// `EV_CLOSED`: the peer closed its side (needs the early-close feature).
    pub const CLOSED: Events = Events(0x80);

    /// The raw bits (libevent's `short what`).
    pub const fn bits(self) -> u16 {
        self.0
    }
    /// Builds a set from raw bits; unknown bits are kept as they are.
    pub const fn from_bits(bits: u16) -> Events {
        Events(bits)
    }
    /// True if every flag of `other` is set.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if any flag of `other` is set.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }
    /// True if no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The I/O part of the set: READ, WRITE and CLOSED.
    pub const fn io(self) -> Events {
        Events(self.0 & (0x02 | 0x04 | 0x80))
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}
impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0
    }
}
impl BitAnd for Events {
    type Output = Events;
    fn bitand(self, rhs: Events) -> Events {
        Events(self.0 & rhs.0)
    }
}
impl BitAndAssign for Events {
    fn bitand_assign(&mut self, rhs: Events) {
        self.0 &= rhs.0
    }
}
impl Not for Events {
    type Output = Events;
    fn not(self) -> Events {
        Events(!self.0)
    }
}

impl fmt::Display for Events {
    /// The compact letter form used in traces: `T R W S P E C` (and `F` for FINALIZE), `0` if
    /// empty. The order is fixed and shared with the C player.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0");
        }
        for (flag, c) in [
            (Events::TIMEOUT, 'T'),
            (Events::READ, 'R'),
            (Events::WRITE, 'W'),
            (Events::SIGNAL, 'S'),
            (Events::PERSIST, 'P'),
            (Events::ET, 'E'),
            (Events::FINALIZE, 'F'),
            (Events::CLOSED, 'C'),
        ] {
            if self.contains(flag) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Events({self})")
    }
}

/// A point on the reactor's monotonic clock, in microseconds since the backend's origin.
///
/// libevent keeps times as `struct timeval`; microseconds in one integer compare the same way and
/// keep timer ties exactly where libevent has them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Time(pub u64);

impl Time {
    /// The origin of the clock.
    pub const ZERO: Time = Time(0);
    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(duration_micros(d)))
    }
    /// `self - earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Sub for Time {
    type Output = Duration;
    fn sub(self, rhs: Time) -> Duration {
        self.since(rhs)
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}us", self.0)
    }
}

/// Whole microseconds in `d` (sub-microsecond parts are dropped, as a timeval would).
pub fn duration_micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

/// Identifies an event (or an internal callback) registered in a [`crate::Base`].
///
/// Ids carry a generation and the identity of the base that issued them: once the event is
/// freed, its id is stale and every call with it returns [`crate::Error::StaleId`], even if the
/// slot is reused; an id handed to another base is stale there too.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId {
    pub(crate) idx: u32,
    pub(crate) gen: u32,
    /// The issuing base's tag (see `Base`); last, so ids of one base order by slot.
    pub(crate) base: u32,
}

impl EventId {
    /// The slot index (stable while the event lives; useful as a compact key).
    pub fn index(self) -> u32 {
        self.idx
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({}#{})", self.idx, self.gen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_match_the_c_player() {
        assert_eq!(Events::NONE.to_string(), "0");
        assert_eq!((Events::READ | Events::TIMEOUT).to_string(), "TR");
        assert_eq!((Events::SIGNAL | Events::PERSIST).to_string(), "SP");
        assert_eq!((Events::READ | Events::ET).to_string(), "RE");
        assert_eq!((Events::READ | Events::CLOSED).to_string(), "RC");
    }

    #[test]
    fn micros_truncate_like_a_timeval() {
        assert_eq!(duration_micros(Duration::from_nanos(1999)), 1);
        assert_eq!(Time(5).saturating_add(Duration::from_millis(1)), Time(1005));
        assert_eq!(Time(5) - Time(7), Duration::ZERO);
    }
}
