//! evloop-sim: the deterministic simulator that stands in for the operating system under evloop.
//!
//! - [`SimBackend`] implements evloop's `Backend` trait over a simulated world: sockets,
//!   socketpairs, listeners, connections with latency and chunking, shutdown, close, EOF and RST,
//!   signals through a per-host signal pipe, and a virtual clock. Readiness is reported in
//!   epoll's ready-list order.
//! - [`Sim`] runs several hosts, each with its own `Base<SimBackend>`, stepped in a seeded order;
//!   the clock jumps straight to the next deadline or delivery.
//! - [`FaultConfig`] says what may go wrong (latency, chunking, short I/O, EAGAIN, refused and
//!   reset connections, partitions, signal trouble, reordered readiness, clock jumps); named
//!   profiles `none`, `lossy`, `slow`, `signals`, `chaos`. [`Faulty`] applies the syscall-level
//!   faults over any backend, real ones included.
//! - Every random decision comes from one ChaCha RNG seeded from one `u64` ([`SimRng`]); every
//!   run's [`Trace`] carries a rolling hash, so determinism is checked, not assumed.
//! - [`targets`] holds the programs `evsim` runs (the seed's hello-world server with simulated
//!   clients, random event programs, a byte stream), their invariants, and the explorer and
//!   shrinker; [`strategies`] holds public proptest strategies.
//!
//! The simulator never reads a real clock and never touches a real descriptor.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
pub mod chrome;
pub mod client;
pub mod explore;
pub mod faults;
mod faulty;
pub mod report;
pub mod rng;
pub mod shard;
mod sim;
pub mod strategies;
pub mod targets;
pub mod trace;
mod world;

pub use backend::{SimBackend, SimConfig};
pub use client::{ClientStatus, Script};
pub use faults::{
    Decision, FaultConfig, FaultGate, FaultKind, Jitter, LinkFaults, ScheduledFault, PROFILES,
};
pub use faulty::{Faulty, FaultyConfig};
pub use rng::SimRng;
pub use sim::{HostStatus, Outcome, Sim};
pub use trace::{CallbackSpan, LineWriter, Part, Trace, TraceSummary};
pub use world::{host_addr, HostId, Stats, SOCKET_CAPACITY};

/// The environment variable tests read a seed from (`EVSIM_SEED=42 cargo test …`).
pub const SEED_ENV: &str = "EVSIM_SEED";

/// The seed a test should use: `EVSIM_SEED` if set and valid, else `default`.
pub fn seed_from_env(default: u64) -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}
