//! libevent's signal mechanism (`signal.c`, `evsig_*`) for the real backends.
//!
//! A caught signal runs [`handle_signal`], which writes one byte, the signal number, to the
//! wake-up pipe of the backend that most recently added a signal (libevent's single process-wide
//! "signal base", `evsig_base_fd`). The core watches the pipe's read end like any descriptor and
//! drains it into per-signal counts. Each real backend embeds one [`SignalState`]; this module owns
//! the process-global part (the write end the handler uses) and must never do anything in the
//! handler but `write(2)` and the `errno` save/restore.
#![warn(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicI32, Ordering};

use super::sys::{self, syscall};
use super::NSIG;
use crate::event::Fd;

/// The write end of the pipe of the backend that most recently added a signal, or -1
/// (libevent's `evsig_base_fd`). Lock-free, so the handler may read it.
static SIGNAL_WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// The signal handler: one byte per delivery to [`SIGNAL_WRITE_FD`] (libevent's `evsig_handler`).
/// Async-signal-safe: an atomic load, `write(2)`, and `errno` restored to what it was.
extern "C" fn handle_signal(sig: libc::c_int) {
    let errno = sys::errno_location();
    let saved = if errno.is_null() {
        0
    } else {
        // SAFETY: a non-null errno location is the calling thread's errno slot.
        unsafe { *errno }
    };
    let fd = SIGNAL_WRITE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let msg = sig as u8;
        // SAFETY: `msg` is one readable byte. A full pipe (EAGAIN) just drops the wake-up: the
        // reader is already due to wake. The result is ignored, as in libevent.
        let _ = unsafe { libc::write(fd, (&msg as *const u8).cast(), 1) };
    }
    if !errno.is_null() {
        // SAFETY: as above.
        unsafe { *errno = saved };
    }
}

/// One backend's part of the signal mechanism: its wake-up pipe and the dispositions its
/// `signal_add` calls replaced (restored by `signal_del` or on drop).
pub(crate) struct SignalState {
    /// (read end, write end), made with the backend ([`SignalState::eager`]) or, if that failed,
    /// on first use.
    pipe: Option<(OwnedFd, OwnedFd)>,
    /// The previous disposition of each signal this backend currently catches, by number.
    saved: Vec<Option<libc::sigaction>>,
}

impl SignalState {
    /// No pipe yet, no signal caught.
    pub(crate) fn new() -> SignalState {
        SignalState {
            pipe: None,
            saved: Vec::new(),
        }
    }

    /// The state of a new backend, with its pipe made at once, as libevent's backends make
    /// theirs when the base is created (`evsig_init_`), before the program opens anything.
    /// The program's descriptors then get the numbers they get under libevent: select's scan
    /// order depends on them, and so does which descriptor a new socket reuses (an event left
    /// on a closed descriptor: libevent's `epoll_ctl` gets EBADF, where a signal pipe made
    /// lazily would have taken that number). If the pipe cannot be made now, it is made when
    /// the first signal is added, as with [`SignalState::new`].
    pub(crate) fn eager() -> SignalState {
        let mut s = SignalState::new();
        let _ = s.pipe();
        s
    }

    fn pipe(&mut self) -> io::Result<&(OwnedFd, OwnedFd)> {
        if self.pipe.is_none() {
            self.pipe = Some(sys::pipe()?);
        }
        Ok(self.pipe.as_ref().expect("created above"))
    }

    /// The read end of the wake-up pipe (made now if it does not exist yet).
    pub(crate) fn fd(&mut self) -> io::Result<Fd> {
        Ok(self.pipe()?.0.as_raw_fd())
    }

    /// Catches `sig` from now on and makes this backend's pipe the one the handler writes to
    /// (libevent's `evsig_add`: `SA_RESTART`, every signal blocked while the handler runs).
    pub(crate) fn add(&mut self, sig: i32) -> io::Result<()> {
        let sig_idx = check_signal(sig)?;
        let write_fd = self.pipe()?.1.as_raw_fd();
        SIGNAL_WRITE_FD.store(write_fd, Ordering::SeqCst);

        // SAFETY: sigaction is plain old data; all zeroes is a valid (empty) value.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = handle_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action.sa_mask` is a writable sigset_t.
        syscall!(sigfillset(&mut action.sa_mask))?;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { mem::zeroed() };
        // SAFETY: `action` is a valid disposition whose handler is async-signal-safe; `old` is
        // writable.
        syscall!(sigaction(sig, &action, &mut old))?;

        if self.saved.len() <= sig_idx {
            self.saved.resize(sig_idx + 1, None);
        }
        // A second add without a delete keeps the disposition from before the first one, so a
        // later delete restores what the program had, not our own handler.
        if self.saved[sig_idx].is_none() {
            self.saved[sig_idx] = Some(old);
        }
        Ok(())
    }

    /// Makes this backend's pipe the one the handler writes to, if it catches any signal
    /// (libevent's `evsig_set_base_` at loop entry: the most recently run base gets signals).
    pub(crate) fn claim(&mut self) {
        if self.saved.iter().any(Option::is_some) {
            if let Some((_, write_end)) = &self.pipe {
                SIGNAL_WRITE_FD.store(write_end.as_raw_fd(), Ordering::SeqCst);
            }
        }
    }

    /// Stops catching `sig`: restores the disposition `add` replaced (libevent's `evsig_del`).
    /// A signal this backend does not catch is left alone.
    pub(crate) fn del(&mut self, sig: i32) -> io::Result<()> {
        let sig_idx = check_signal(sig)?;
        match self.saved.get_mut(sig_idx).and_then(Option::take) {
            Some(old) => {
                // SAFETY: `old` is the disposition sigaction() returned for this signal.
                syscall!(sigaction(sig, &old, ptr::null_mut())).map(drop)
            }
            None => Ok(()),
        }
    }

    /// Reads the pipe until it is empty and adds one to `counts[sig]` per byte (libevent's
    /// `evsig_cb`; bytes outside `0..NSIG` are ignored as there).
    pub(crate) fn drain(&mut self, counts: &mut [u32; NSIG]) {
        let Some((read_end, _)) = &self.pipe else {
            return;
        };
        let fd = read_end.as_raw_fd();
        let mut buf = [0u8; 1024];
        loop {
            match sys::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    for &sig in &buf[..n] {
                        if let Some(c) = counts.get_mut(usize::from(sig)) {
                            *c = c.saturating_add(1);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // EAGAIN: empty. Anything else cannot happen on our own pipe; stop either way.
                Err(_) => break,
            }
        }
    }
}

impl Drop for SignalState {
    /// Restores every disposition still replaced, and stops the handler from writing to the pipe
    /// before it is closed (libevent's `evsig_dealloc_`). A handler already past its load of the
    /// descriptor on another thread may still write to it: libevent has the same window.
    fn drop(&mut self) {
        for (sig, old) in self.saved.iter_mut().enumerate() {
            if let Some(old) = old.take() {
                // SAFETY: `old` is the disposition sigaction() returned for this signal.
                let _ = syscall!(sigaction(sig as libc::c_int, &old, ptr::null_mut()));
            }
        }
        if let Some((_, write_end)) = &self.pipe {
            let _ = SIGNAL_WRITE_FD.compare_exchange(
                write_end.as_raw_fd(),
                -1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
    }
}

fn check_signal(sig: i32) -> io::Result<usize> {
    match usize::try_from(sig) {
        Ok(i) if (1..NSIG).contains(&i) => Ok(i),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal number {sig} is outside 1..{NSIG}"),
        )),
    }
}
