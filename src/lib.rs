//! evloop: a libevent-compatible reactor.
//!
//! The crate mirrors libevent 2.1.12's architecture and observable behaviour: a [`Base`] owns the
//! events, the active queues (one per priority), the timer heap and the per-fd/per-signal maps,
//! and runs libevent's loop over any [`backend::Backend`]. The backend only knows descriptors,
//! interest masks and time; every ordering decision is made here, so every backend shares it.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[allow(unsafe_code)] // system calls live here and only here, each with a SAFETY comment
pub mod backend;
mod base;
pub mod buffer;
pub mod bufferevent;
pub mod event;
mod evmap;
pub mod listener;
pub mod seed;
mod slab;
pub mod timer;

pub use backend::Backend;
#[cfg(feature = "test-faults")]
#[doc(hidden)]
pub use base::CoreFault;
pub use base::{
    Base, CallbackHook, CallbackInfo, CallbackKind, CommonTimeout, Config, Count, Error, LoopExit,
    LoopFlags, Result, Timeout, MAX_DEFERREDS_QUEUED, MAX_PRIORITIES,
};
pub use buffer::{EolStyle, EvBuffer};
pub use bufferevent::{BevEvents, BevOptions, BufferEvent, FlushMode, TriggerOptions};
pub use event::{EventId, Events, Fd, Time};
pub use listener::{Listener, ListenerOptions};
