//! Starting child processes without leaking an in-process run's descriptors into them.
//!
//! `evconform` runs scenarios on evloop's real backends inside its own process (epoll, poll,
//! mio) while other worker threads start child processes (the libevent player, the isolated
//! select runner). A child starts as a copy of the parent's descriptor table: from `clone` until
//! `exec` it holds a reference to every descriptor of the parent, and after `exec` it keeps those
//! without close-on-exec for its whole life (a scenario's listener without
//! `LEV_OPT_CLOSE_ON_EXEC` is one, as in libevent). A descriptor that an in-process run closes
//! during that time is not released: the peer of a closed socket sees no EOF and no `EPIPE`, a
//! closed listener still completes connections. Those runs then differ from libevent's,
//! transiently, only when the timing lines up (seed 20261129 case 203: `EAGAIN` instead of
//! `EPIPE` after the peer was closed).
//!
//! [`spawn`] and [`in_process`] exclude each other: a child is only started while no in-process
//! run owns descriptors, and an in-process run only starts once every child being started has
//! reached `exec` (`Command::spawn` returns after it) and dropped the close-on-exec copies.

use std::io;
use std::process::{Child, Command};
use std::sync::RwLock;

static FORK_GUARD: RwLock<()> = RwLock::new(());

/// `cmd.spawn()`, while no [`in_process`] run is under way.
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let _excl = FORK_GUARD.write().unwrap_or_else(|p| p.into_inner());
    cmd.spawn()
}

/// `cmd.output()`, started through [`spawn`].
pub fn output(cmd: &mut Command) -> io::Result<std::process::Output> {
    use std::process::Stdio;
    let child = spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )?;
    child.wait_with_output()
}

/// Runs `f`, which may own real descriptors, while no child process is being started. Runs of
/// several threads proceed side by side.
pub fn in_process<T>(f: impl FnOnce() -> T) -> T {
    let _shared = FORK_GUARD.read().unwrap_or_else(|p| p.into_inner());
    f()
}
