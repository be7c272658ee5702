//! Bufferevent pairs: libevent's `bufferevent_pair.c`.
//!
//! This module owns the pair kind: two bufferevents linked to each other, with no descriptor.
//! Data moves synchronously from one end's output to the other's input whenever the writer has
//! WRITE enabled, the reader has READ enabled and is not suspended (`be_pair_transfer`), capped
//! by the reader's high watermark; that can happen inside a write, an enable, a drain (which
//! resumes reading) or a flush. Timeouts are plain timers (the generic timeout callbacks).
//! Callbacks are always deferred. Freeing one end unlinks the other without an event.

use super::{
    bev, bev_mut, decref, generic_read_timeout_cb, generic_write_timeout_cb, incref, init_common,
    input_changed, output_changed, run_eventcb, trigger_nolock, BevEvents, BevOptions, BufferEvent,
    FlushMode, Kind,
};
use crate::backend::Backend;
use crate::base::{Base, Error, Result};
use crate::buffer::CbInfo;
use crate::event::{EventId, Events};

/// What a pair end adds to the common state.
pub(super) struct PairState {
    pub(super) partner: Option<BufferEvent>,
}

fn partner_of<B: Backend>(base: &Base<B>, id: BufferEvent) -> Option<BufferEvent> {
    match &bev(base, id)?.kind {
        Kind::Pair(p) => p.partner,
        Kind::Socket(_) => None,
    }
}

/// `incref_and_lock`: a reference on this end and on its partner; returns the partner.
fn incref_and_lock<B: Backend>(base: &mut Base<B>, id: BufferEvent) -> Option<BufferEvent> {
    incref(base, id);
    let p = partner_of(base, id);
    if let Some(p) = p {
        incref(base, p);
    }
    p
}

fn decref_and_unlock<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    partner: Option<BufferEvent>,
) {
    if let Some(p) = partner {
        decref(base, p);
    }
    decref(base, id);
}

fn elt_new<B: Backend>(base: &mut Base<B>, options: BevOptions) -> Result<BufferEvent> {
    init_common(
        base,
        options,
        Kind::Pair(PairState { partner: None }),
        |b, id| -> Result<(EventId, EventId)> {
            let r = b.timer_new(move |b, _, _| generic_read_timeout_cb(b, id))?;
            let w = b.timer_new(move |b, _, _| generic_write_timeout_cb(b, id))?;
            Ok((r, w))
        },
    )
}

/// `bufferevent_pair_new`: `DEFER_CALLBACKS` is always added.
pub(super) fn new<B: Backend>(
    base: &mut Base<B>,
    options: BevOptions,
) -> Result<(BufferEvent, BufferEvent)> {
    let options = options | BevOptions::DEFER_CALLBACKS;
    let a = elt_new(base, options)?;
    let b = match elt_new(base, options) {
        Ok(b) => b,
        Err(e) => {
            let _ = a.free(base);
            return Err(e);
        }
    };
    for (me, other) in [(a, b), (b, a)] {
        let x = bev_mut(base, me).expect("just created");
        x.kind = Kind::Pair(PairState {
            partner: Some(other),
        });
        x.input.freeze(false);
        x.output.freeze(true);
    }
    Ok((a, b))
}

/// `be_pair_wants_to_talk`.
fn wants_to_talk<B: Backend>(base: &Base<B>, src: BufferEvent, dst: BufferEvent) -> bool {
    let (Some(s), Some(d)) = (bev(base, src), bev(base, dst)) else {
        return false;
    };
    s.enabled.contains(Events::WRITE)
        && d.enabled.contains(Events::READ)
        && d.read_suspended == 0
        && !s.output.is_empty()
}

/// `be_pair_transfer`: moves `src`'s output into `dst`'s input, at most up to `dst`'s high
/// watermark unless `ignore_wm`, then schedules `dst`'s read and `src`'s write callbacks as the
/// watermarks allow.
fn transfer<B: Backend>(base: &mut Base<B>, src: BufferEvent, dst: BufferEvent, ignore_wm: bool) {
    let Some((s, d)) = base.bufferevents.two_mut(src, dst) else {
        return;
    };
    s.output.unfreeze(true);
    d.input.unfreeze(false);
    let high = d.wm_read.high;
    let (n, whole) = if high != 0 && d.input.len() < high {
        let n = high - d.input.len();
        let whole = n >= s.output.len();
        let _ = s.output.remove_buffer(&mut d.input, n);
        (n, whole)
    } else if high != 0 && !ignore_wm {
        s.output.freeze(true);
        d.input.freeze(false);
        return;
    } else {
        let n = s.output.len();
        let _ = d.input.add_buffer(&mut s.output);
        (n, true)
    };
    // libevent notifies the source first when everything moved (`evbuffer_add_buffer`), the
    // destination first when part of it did (`evbuffer_remove_buffer`).
    if whole {
        output_changed(base, src);
        input_changed(base, dst);
    } else {
        input_changed(base, dst);
        output_changed(base, src);
    }
    if n != 0 {
        if let Some(d) = bev(base, dst) {
            let (r, w, tr, tw) = (d.ev_read, d.ev_write, d.timeout_read, d.timeout_write);
            let out = !d.output.is_empty();
            if let Some(t) = tr {
                let _ = base.add(r, Some(t));
            }
            if out {
                if let Some(t) = tw {
                    let _ = base.add(w, Some(t));
                }
            } else {
                let _ = base.del(w);
            }
        }
    }
    trigger_nolock(base, dst, Events::READ, 0);
    trigger_nolock(base, src, Events::WRITE, 0);
    if let Some(s) = bev_mut(base, src) {
        s.output.freeze(true);
    }
    if let Some(d) = bev_mut(base, dst) {
        d.input.freeze(false);
    }
}

/// `be_pair_outbuf_cb`: more data in the output moves to the partner if it is reading.
pub(super) fn outbuf_cb<B: Backend>(base: &mut Base<B>, id: BufferEvent, info: CbInfo) {
    let p = incref_and_lock(base, id);
    if info.n_added > info.n_deleted {
        if let Some(partner) = partner_of(base, id) {
            if wants_to_talk(base, id, partner) {
                transfer(base, id, partner, false);
            }
        }
    }
    decref_and_unlock(base, id, p);
}

/// `be_pair_enable`: arm the timers, then pull from (READ) or push to (WRITE) the partner.
pub(super) fn enable<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    events: Events,
) -> Result<()> {
    let p = incref_and_lock(base, id);
    if let Some(b) = bev(base, id) {
        let (r, w, tr, tw) = (b.ev_read, b.ev_write, b.timeout_read, b.timeout_write);
        let out = !b.output.is_empty();
        if events.contains(Events::READ) {
            if let Some(t) = tr {
                let _ = base.add(r, Some(t));
            }
        }
        if events.contains(Events::WRITE) && out {
            if let Some(t) = tw {
                let _ = base.add(w, Some(t));
            }
        }
    }
    if events.contains(Events::READ) {
        if let Some(partner) = partner_of(base, id) {
            if wants_to_talk(base, partner, id) {
                transfer(base, partner, id, false);
            }
        }
    }
    if events.contains(Events::WRITE) {
        if let Some(partner) = partner_of(base, id) {
            if wants_to_talk(base, id, partner) {
                transfer(base, id, partner, false);
            }
        }
    }
    decref_and_unlock(base, id, p);
    Ok(())
}

/// `be_pair_disable`: only the timers.
pub(super) fn disable<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    events: Events,
) -> Result<()> {
    let b = bev(base, id).ok_or(Error::StaleId)?;
    let (r, w) = (b.ev_read, b.ev_write);
    if events.contains(Events::READ) {
        base.del(r)?;
    }
    if events.contains(Events::WRITE) {
        base.del(w)?;
    }
    Ok(())
}

/// `be_pair_unlink`: at the last reference, both ends forget each other; no event.
pub(super) fn unlink<B: Backend>(base: &mut Base<B>, id: BufferEvent) {
    let Some(partner) = partner_of(base, id) else {
        return;
    };
    for x in [partner, id] {
        if let Some(Kind::Pair(p)) = bev_mut(base, x).map(|b| &mut b.kind) {
            p.partner = None;
        }
    }
}

/// `be_pair_flush`.
pub(super) fn flush<B: Backend>(
    base: &mut Base<B>,
    id: BufferEvent,
    iotype: Events,
    mode: FlushMode,
) -> Result<()> {
    if partner_of(base, id).is_none() {
        return Err(Error::Invalid("flush on a pair end without a partner"));
    }
    if mode == FlushMode::Normal {
        return Ok(());
    }
    let p = incref_and_lock(base, id);
    if let Some(partner) = p {
        if iotype.contains(Events::READ) {
            transfer(base, partner, id, true);
        }
        if iotype.contains(Events::WRITE) {
            transfer(base, id, partner, true);
        }
        if mode == FlushMode::Finished {
            let mut what = BevEvents::EOF;
            if iotype.contains(Events::READ) {
                what |= BevEvents::WRITING;
            }
            if iotype.contains(Events::WRITE) {
                what |= BevEvents::READING;
            }
            if let Some(b) = bev_mut(base, partner) {
                b.error = None;
            }
            run_eventcb(base, partner, what, 0);
        }
    }
    decref_and_unlock(base, id, p);
    Ok(())
}
