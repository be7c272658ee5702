//! Public proptest strategies: fault configurations and event programs.
//!
//! Properties built on them live in `sim/tests/properties.rs`; a failing case prints its seed
//! and the `evsim` command that replays the nearest built-in run.

use std::time::Duration;

use proptest::prelude::*;

use crate::faults::{FaultConfig, Jitter, LinkFaults};
use crate::targets::programs::{Action, EventSpec, Program, Watch, SIGNALS};

/// A probability: 0 a third of the time, else up to `max`.
pub fn probability(max: f64) -> impl Strategy<Value = f64> {
    prop_oneof![Just(0.0), 0.0..max, 0.0..max]
}

/// A jitter distribution.
pub fn jitter() -> impl Strategy<Value = Jitter> {
    prop_oneof![
        Just(Jitter::None),
        (1u64..20_000).prop_map(|us| Jitter::Uniform {
            max: Duration::from_micros(us)
        }),
        (1u64..5_000).prop_map(|us| Jitter::Exponential {
            mean: Duration::from_micros(us)
        }),
    ]
}

/// The behaviour of a link.
pub fn link_faults() -> impl Strategy<Value = LinkFaults> {
    (
        (0u64..5_000, jitter(), probability(1.0), probability(0.8)),
        (probability(0.2), probability(0.2), 1u64..100_000),
        (probability(0.02), 1u64..1_000_000),
    )
        .prop_map(
            |((lat, jitter, jitter_p, chunk), (refuse, reset, reset_us), (partition, part_us))| {
                LinkFaults {
                    latency: Duration::from_micros(lat),
                    jitter,
                    jitter_p,
                    chunk,
                    refuse,
                    reset,
                    reset_within: Duration::from_micros(reset_us),
                    partition,
                    partition_max: Duration::from_micros(part_us),
                }
            },
        )
}

/// A whole fault configuration (no schedule).
pub fn fault_config() -> impl Strategy<Value = FaultConfig> {
    (
        link_faults(),
        (
            probability(0.5),
            probability(0.5),
            probability(0.3),
            probability(0.3),
        ),
        (
            probability(0.2),
            probability(0.8),
            probability(0.8),
            probability(0.5),
        ),
        (
            probability(1.0),
            probability(0.2),
            probability(0.05),
            1u64..500_000,
        ),
    )
        .prop_map(
            |(link, (sr, sw, er, ew), (pc, sd, sm, srep), (reorder, spurious, jump, jump_max))| {
                FaultConfig {
                    link,
                    short_read: sr,
                    short_write: sw,
                    eagain_read: er,
                    eagain_write: ew,
                    peer_close: pc,
                    signal_delay: sd,
                    signal_merge: sm,
                    signal_repeat: srep,
                    reorder,
                    spurious,
                    clock_jump: jump,
                    clock_jump_max: Duration::from_micros(jump_max),
                    ..FaultConfig::none()
                }
            },
        )
}

fn timeout() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), Just(Some(0)), (1u64..300_000).prop_map(Some)]
}

fn action(nev: usize, ends: usize) -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..nev, timeout()).prop_map(|(ev, timeout_us)| Action::Add { ev, timeout_us }),
        (0..nev).prop_map(|ev| Action::Del { ev }),
        (0..nev).prop_map(|ev| Action::Active { ev }),
        (0..ends, 1usize..100).prop_map(|(end, n)| Action::Write { end, n }),
        (0..ends).prop_map(|end| Action::Read { end }),
        prop::sample::select(SIGNALS.to_vec()).prop_map(|sig| Action::Raise { sig }),
    ]
}

fn watch(ends: usize) -> impl Strategy<Value = Watch> {
    prop_oneof![
        2 => Just(Watch::Timer),
        1 => (0..ends).prop_map(Watch::Read),
        1 => (0..ends).prop_map(Watch::Write),
        1 => prop::sample::select(SIGNALS.to_vec()).prop_map(Watch::Signal),
    ]
}

/// A random event program: 1–4 priorities, 1–3 socketpairs, 2–10 events with callbacks that
/// add, delete and activate events, write, read and raise signals, and outside inputs.
pub fn program() -> impl Strategy<Value = Program> {
    (1usize..=4, 1usize..=3, 2usize..=10)
        .prop_flat_map(|(priorities, pairs, nev)| {
            let ends = 2 * pairs;
            let event = (
                watch(ends),
                any::<bool>(),
                0..priorities,
                prop::collection::vec(action(nev, ends), 0..4),
            )
                .prop_map(|(watch, persist, priority, actions)| EventSpec {
                    watch,
                    persist,
                    priority,
                    actions,
                });
            let input = (
                0u64..500_000,
                prop_oneof![
                    (0..ends, 1usize..50).prop_map(|(end, n)| Action::Write { end, n }),
                    prop::sample::select(SIGNALS.to_vec()).prop_map(|sig| Action::Raise { sig }),
                ],
            );
            (
                Just(priorities),
                Just(pairs),
                prop::collection::vec(event, nev),
                prop::collection::vec(
                    (0..nev, timeout()).prop_map(|(ev, timeout_us)| Action::Add { ev, timeout_us }),
                    1..nev + 2,
                ),
                prop::collection::vec(input, 0..5),
            )
        })
        .prop_map(|(priorities, pairs, events, setup, inputs)| Program {
            priorities,
            pairs,
            events,
            setup,
            inputs,
        })
}
