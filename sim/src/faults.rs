//! The fault model: what may go wrong, how likely, where and when.
//!
//! A [`FaultConfig`] holds probabilities and schedules; the world draws every decision from the
//! run's one RNG through a single gate (`World::decide`), which numbers each decision point
//! (its *ordinal*) and logs every fault it injects as a [`Decision`]. Shrinking
//! (`evsim shrink`) re-runs a seed with only a subset of ordinals allowed to inject, so a failing
//! run can be reduced to the few faults that matter. A probability of 0 draws nothing, so the
//! `none` profile consumes no randomness for faults at all.
//!
//! This module owns the configuration and the named profiles; it never draws a number itself.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use evloop::Time;

/// The kinds of fault the simulator can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A segment's latency gets jitter on top of the link's base latency.
    Latency,
    /// A TCP write leaves as several segments with their own latencies (the reader sees chunks).
    Chunk,
    /// `write` accepts fewer bytes than it could.
    ShortWrite,
    /// `read` returns fewer bytes than are available.
    ShortRead,
    /// `read` fails with EAGAIN although data is there (the data is re-announced as ready).
    EagainRead,
    /// `write` fails with EAGAIN although there is room (the room is re-announced as ready).
    EagainWrite,
    /// A connection attempt is refused although something listens.
    Refuse,
    /// An established connection is reset (both ends see ECONNRESET).
    Reset,
    /// A simulated peer program closes its connection mid-stream (drawn by the targets).
    PeerClose,
    /// A link partitions: segments wait until it heals.
    Partition,
    /// A signal is delivered late.
    SignalDelay,
    /// A signal arriving while the same signal is pending is merged into it.
    SignalMerge,
    /// A signal is delivered twice.
    SignalRepeat,
    /// The readiness of descriptors that became ready in the same instant is reported in
    /// another order.
    Reorder,
    /// A watched descriptor is reported ready although it is not.
    Spurious,
    /// The clock jumps forward inside a wait (a paused virtual machine).
    ClockJump,
}

impl FaultKind {
    /// Every kind, in a fixed order.
    pub const ALL: [FaultKind; 16] = [
        FaultKind::Latency,
        FaultKind::Chunk,
        FaultKind::ShortWrite,
        FaultKind::ShortRead,
        FaultKind::EagainRead,
        FaultKind::EagainWrite,
        FaultKind::Refuse,
        FaultKind::Reset,
        FaultKind::PeerClose,
        FaultKind::Partition,
        FaultKind::SignalDelay,
        FaultKind::SignalMerge,
        FaultKind::SignalRepeat,
        FaultKind::Reorder,
        FaultKind::Spurious,
        FaultKind::ClockJump,
    ];

    /// The kebab-case name used in traces and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Latency => "latency",
            FaultKind::Chunk => "chunk",
            FaultKind::ShortWrite => "short-write",
            FaultKind::ShortRead => "short-read",
            FaultKind::EagainRead => "eagain-read",
            FaultKind::EagainWrite => "eagain-write",
            FaultKind::Refuse => "refuse",
            FaultKind::Reset => "reset",
            FaultKind::PeerClose => "peer-close",
            FaultKind::Partition => "partition",
            FaultKind::SignalDelay => "signal-delay",
            FaultKind::SignalMerge => "signal-merge",
            FaultKind::SignalRepeat => "signal-repeat",
            FaultKind::Reorder => "reorder",
            FaultKind::Spurious => "spurious",
            FaultKind::ClockJump => "clock-jump",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The distribution of the jitter added to a segment's base latency.
#[derive(Clone, Debug, PartialEq)]
pub enum Jitter {
    /// No jitter.
    None,
    /// Uniform in `0..=max`.
    Uniform {
        /// The largest jitter.
        max: Duration,
    },
    /// Exponential with the given mean (capped at 20 means): mostly small, sometimes large.
    Exponential {
        /// The mean jitter.
        mean: Duration,
    },
}

/// Network behaviour of one link (or of every link, as the default).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkFaults {
    /// The one-way latency every segment takes (no fault: the fixed part).
    pub latency: Duration,
    /// The jitter distribution.
    pub jitter: Jitter,
    /// The probability that a segment gets jitter.
    pub jitter_p: f64,
    /// The probability that a TCP write is split into several segments.
    pub chunk: f64,
    /// The probability that a connection attempt to a listening address is refused.
    pub refuse: f64,
    /// The probability that a new connection is reset at some time within `reset_within`.
    pub reset: f64,
    /// The window in which a reset connection is reset.
    pub reset_within: Duration,
    /// The probability, per segment sent, that the link partitions.
    pub partition: f64,
    /// The longest partition.
    pub partition_max: Duration,
}

impl Default for LinkFaults {
    fn default() -> LinkFaults {
        LinkFaults {
            latency: Duration::from_micros(100),
            jitter: Jitter::None,
            jitter_p: 0.0,
            chunk: 0.0,
            refuse: 0.0,
            reset: 0.0,
            reset_within: Duration::from_millis(50),
            partition: 0.0,
            partition_max: Duration::from_millis(500),
        }
    }
}

/// A fault at a fixed virtual time (a schedule entry).
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduledFault {
    /// The link between hosts `a` and `b` partitions for `heal_after`.
    Partition {
        /// One host.
        a: usize,
        /// The other host (the same as `a` for the host's loopback).
        b: usize,
        /// How long until it heals.
        heal_after: Duration,
    },
    /// The clock jumps forward by this much.
    ClockJump(Duration),
    /// Every established connection of this host is reset.
    ResetHost(usize),
    /// The host receives this signal.
    Signal {
        /// The receiving host.
        host: usize,
        /// The signal number.
        sig: i32,
    },
}

/// Everything that may go wrong in a run.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultConfig {
    /// The default behaviour of every link.
    pub link: LinkFaults,
    /// Per-link overrides, keyed by the two host ids, lower first.
    pub links: BTreeMap<(usize, usize), LinkFaults>,
    /// A host's connections to itself (loopback): by default no latency and no fault, so a
    /// loopback segment arrives within the call that sent it, as on Linux.
    pub loopback: LinkFaults,
    /// The probability that a read returns fewer bytes than available.
    pub short_read: f64,
    /// The probability that a write accepts fewer bytes than it could.
    pub short_write: f64,
    /// The probability of a spurious EAGAIN on a read that could succeed.
    pub eagain_read: f64,
    /// The probability of a spurious EAGAIN on a write that could succeed.
    pub eagain_write: f64,
    /// The probability that a simulated peer program closes mid-stream (the targets draw it).
    pub peer_close: f64,
    /// The probability that a signal is delivered late.
    pub signal_delay: f64,
    /// The longest signal delay.
    pub signal_delay_max: Duration,
    /// The probability that a signal that is already pending absorbs a new delivery.
    pub signal_merge: f64,
    /// The probability that a signal is delivered twice.
    pub signal_repeat: f64,
    /// The probability, per dispatch, that simultaneous readiness is reported in another order.
    pub reorder: f64,
    /// The probability, per dispatch, that one watched descriptor is reported ready spuriously.
    pub spurious: f64,
    /// The probability, per wait, that the clock jumps forward.
    pub clock_jump: f64,
    /// The largest clock jump.
    pub clock_jump_max: Duration,
    /// Faults at fixed times.
    pub schedule: Vec<(Time, ScheduledFault)>,
}

impl Default for FaultConfig {
    fn default() -> FaultConfig {
        FaultConfig::none()
    }
}

/// The names of the built-in profiles.
pub const PROFILES: &[&str] = &["none", "lossy", "slow", "signals", "chaos"];

impl FaultConfig {
    /// No fault: a fixed 100 µs latency, every write and read as large as possible, signals
    /// delivered at once, readiness in epoll's ready-list order.
    pub fn none() -> FaultConfig {
        FaultConfig {
            link: LinkFaults::default(),
            links: BTreeMap::new(),
            loopback: LinkFaults {
                latency: Duration::ZERO,
                ..LinkFaults::default()
            },
            short_read: 0.0,
            short_write: 0.0,
            eagain_read: 0.0,
            eagain_write: 0.0,
            peer_close: 0.0,
            signal_delay: 0.0,
            signal_delay_max: Duration::from_millis(10),
            signal_merge: 0.0,
            signal_repeat: 0.0,
            reorder: 0.0,
            spurious: 0.0,
            clock_jump: 0.0,
            clock_jump_max: Duration::from_millis(100),
            schedule: Vec::new(),
        }
    }

    /// A lossy network: jitter, chunked segments, short I/O, spurious EAGAIN, reordered
    /// readiness, short partitions. Nothing that ends a connection.
    pub fn lossy() -> FaultConfig {
        FaultConfig {
            link: LinkFaults {
                jitter: Jitter::Exponential {
                    mean: Duration::from_millis(2),
                },
                jitter_p: 0.5,
                chunk: 0.3,
                partition: 0.002,
                partition_max: Duration::from_millis(300),
                ..LinkFaults::default()
            },
            short_read: 0.2,
            short_write: 0.2,
            eagain_read: 0.05,
            eagain_write: 0.05,
            reorder: 0.3,
            ..FaultConfig::none()
        }
    }

    /// A slow network: 5 ms latency, heavy-tailed jitter, chunking.
    pub fn slow() -> FaultConfig {
        FaultConfig {
            link: LinkFaults {
                latency: Duration::from_millis(5),
                jitter: Jitter::Exponential {
                    mean: Duration::from_millis(20),
                },
                jitter_p: 0.8,
                chunk: 0.5,
                ..LinkFaults::default()
            },
            ..FaultConfig::none()
        }
    }

    /// Unreliable signal delivery: delayed, merged, repeated.
    pub fn signals() -> FaultConfig {
        FaultConfig {
            signal_delay: 0.5,
            signal_merge: 0.5,
            signal_repeat: 0.3,
            ..FaultConfig::none()
        }
    }

    /// Everything at once: `lossy`, plus refused and reset connections, peers closing
    /// mid-stream, signal trouble, spurious readiness and clock jumps.
    pub fn chaos() -> FaultConfig {
        let lossy = FaultConfig::lossy();
        FaultConfig {
            link: LinkFaults {
                refuse: 0.05,
                reset: 0.05,
                partition: 0.005,
                ..lossy.link.clone()
            },
            eagain_read: 0.1,
            eagain_write: 0.1,
            peer_close: 0.05,
            signal_delay: 0.2,
            signal_merge: 0.2,
            signal_repeat: 0.1,
            reorder: 0.5,
            spurious: 0.05,
            clock_jump: 0.01,
            clock_jump_max: Duration::from_millis(200),
            ..lossy
        }
    }

    /// The profile called `name`, or an error that lists the known ones (see [`PROFILES`]).
    pub fn named(name: &str) -> Result<FaultConfig, String> {
        FaultConfig::profile(name).ok_or_else(|| {
            format!(
                "unknown fault profile {name:?} (known profiles: {})",
                PROFILES.join(", ")
            )
        })
    }

    /// The profile called `name` (see [`PROFILES`]).
    pub fn profile(name: &str) -> Option<FaultConfig> {
        Some(match name {
            "none" => FaultConfig::none(),
            "lossy" => FaultConfig::lossy(),
            "slow" => FaultConfig::slow(),
            "signals" => FaultConfig::signals(),
            "chaos" => FaultConfig::chaos(),
            _ => return None,
        })
    }

    /// The behaviour of the link between hosts `a` and `b` (`loopback` when `a == b`, unless
    /// overridden in `links`).
    pub fn link(&self, a: usize, b: usize) -> &LinkFaults {
        let key = (a.min(b), a.max(b));
        match self.links.get(&key) {
            Some(l) => l,
            None if a == b => &self.loopback,
            None => &self.link,
        }
    }

    /// The probability of a fault of `kind` that does not depend on a link.
    pub fn probability(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::ShortRead => self.short_read,
            FaultKind::ShortWrite => self.short_write,
            FaultKind::EagainRead => self.eagain_read,
            FaultKind::EagainWrite => self.eagain_write,
            FaultKind::PeerClose => self.peer_close,
            FaultKind::SignalDelay => self.signal_delay,
            FaultKind::SignalMerge => self.signal_merge,
            FaultKind::SignalRepeat => self.signal_repeat,
            FaultKind::Reorder => self.reorder,
            FaultKind::Spurious => self.spurious,
            FaultKind::ClockJump => self.clock_jump,
            FaultKind::Latency => self.link.jitter_p,
            FaultKind::Chunk => self.link.chunk,
            FaultKind::Refuse => self.link.refuse,
            FaultKind::Reset => self.link.reset,
            FaultKind::Partition => self.link.partition,
        }
    }

    /// True if no fault can happen (the schedule is empty and every probability is 0).
    pub fn is_none(&self) -> bool {
        self.schedule.is_empty()
            && self.links.values().all(|l| l.is_quiet())
            && self.link.is_quiet()
            && self.loopback.is_quiet()
            && FaultKind::ALL
                .iter()
                .filter(|k| !is_link_kind(**k))
                .all(|k| self.probability(*k) == 0.0)
    }
}

fn is_link_kind(k: FaultKind) -> bool {
    matches!(
        k,
        FaultKind::Latency
            | FaultKind::Chunk
            | FaultKind::Refuse
            | FaultKind::Reset
            | FaultKind::Partition
    )
}

impl LinkFaults {
    fn is_quiet(&self) -> bool {
        (self.jitter_p == 0.0 || self.jitter == Jitter::None)
            && self.chunk == 0.0
            && self.refuse == 0.0
            && self.reset == 0.0
            && self.partition == 0.0
    }
}

/// One injected fault: its decision ordinal, when, what, and the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The number of the decision point (counting every point whose probability was not 0).
    pub ordinal: u64,
    /// When it was decided.
    pub at: Time,
    /// What kind of fault.
    pub kind: FaultKind,
    /// What exactly (host, descriptor, amount…).
    pub detail: String,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} at {}us: {} {}",
            self.ordinal,
            self.at.as_micros(),
            self.kind,
            self.detail
        )
    }
}

/// The one gate every fault decision goes through (in the simulated world and in [`crate::Faulty`]).
///
/// Each decision point whose probability is not 0 draws exactly one value from the run's RNG
/// and gets the next ordinal; a fault happens if the draw says so and, when shrinking, if its
/// ordinal is allowed. Injected faults are logged as [`Decision`]s.
#[derive(Clone, Debug, Default)]
pub struct FaultGate {
    ordinal: u64,
    only: Option<std::collections::BTreeSet<u64>>,
    decisions: Vec<Decision>,
}

impl FaultGate {
    /// A gate letting every decision through, or only the ordinals in `only`.
    pub fn new(only: Option<std::collections::BTreeSet<u64>>) -> FaultGate {
        FaultGate {
            ordinal: 0,
            only,
            decisions: Vec::new(),
        }
    }

    /// Decides a fault of `kind` with probability `p` at time `at`; returns a random payload
    /// for its details if it happens.
    pub fn decide(
        &mut self,
        rng: &mut crate::rng::SimRng,
        at: Time,
        kind: FaultKind,
        p: f64,
    ) -> Option<u64> {
        if p <= 0.0 {
            return None;
        }
        let x = rng.next_u64();
        let ordinal = self.ordinal;
        self.ordinal += 1;
        if crate::rng::unit_of(x) >= p {
            return None;
        }
        if self.only.as_ref().is_some_and(|o| !o.contains(&ordinal)) {
            return None;
        }
        self.decisions.push(Decision {
            ordinal,
            at,
            kind,
            detail: String::new(),
        });
        Some(crate::rng::mix(x))
    }

    /// Sets the details of the fault just decided and returns it.
    pub fn note(&mut self, detail: String) -> Option<&Decision> {
        let d = self.decisions.last_mut()?;
        d.detail = detail;
        Some(d)
    }

    /// Every fault injected so far.
    pub fn decisions(&self) -> &[Decision] {
        &self.decisions
    }

    /// Takes the log of faults injected out (leaving it empty; the ordinals go on).
    pub fn take_decisions(&mut self) -> Vec<Decision> {
        std::mem::take(&mut self.decisions)
    }

    /// The number of decision points so far.
    pub fn points(&self) -> u64 {
        self.ordinal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_numbers_points_and_filters() {
        let mut rng = crate::rng::SimRng::new(1);
        let mut g = FaultGate::new(None);
        assert!(g
            .decide(&mut rng, Time(0), FaultKind::Reorder, 0.0)
            .is_none());
        assert_eq!(g.points(), 0);
        assert!(g
            .decide(&mut rng, Time(0), FaultKind::Reorder, 1.0)
            .is_some());
        assert_eq!(g.decisions()[0].ordinal, 0);
        let mut rng = crate::rng::SimRng::new(1);
        let mut g = FaultGate::new(Some([1].into_iter().collect()));
        assert!(g
            .decide(&mut rng, Time(0), FaultKind::Reorder, 1.0)
            .is_none());
        assert!(g
            .decide(&mut rng, Time(0), FaultKind::Reorder, 1.0)
            .is_some());
        assert_eq!(g.decisions().len(), 1);
    }

    #[test]
    fn profiles_exist_and_none_is_quiet() {
        for p in PROFILES {
            assert!(FaultConfig::profile(p).is_some(), "{p}");
        }
        assert!(FaultConfig::none().is_none());
        assert!(!FaultConfig::lossy().is_none());
        assert!(!FaultConfig::chaos().is_none());
        assert!(FaultConfig::profile("nope").is_none());
    }
}
