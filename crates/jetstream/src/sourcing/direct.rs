//! Mirror direct gets (`mirror_direct`): a mirror of a stream that allows direct gets
//! answers that stream's `DIRECT.GET`s too, as nats-server's mirrors join the origin's
//! `_sys_` queue group once they have caught up. A mirror inherits the setting from its
//! origin's `allow_direct` when the origin exists as the mirror is created or updated; a
//! request goes to one of the streams able to answer, picked at random — the origin (if it
//! allows direct gets) or a caught-up mirror, which still answers once the origin is gone.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::StreamConfig;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::stream::Stream;

/// A mirror answers its origin's direct gets once fewer than this many messages are left
/// to copy (nats-server's `dgetCaughtUpThresh`).
pub(crate) const CAUGHT_UP: u64 = 10;

/// nats-server's create-time check: `mirror_direct` needs a mirror.
pub(crate) fn check_create(cfg: &StreamConfig) -> Result<(), ApiError> {
    if cfg.mirror_direct && cfg.mirror.is_none() {
        return Err(ApiError::stream_invalid_config(
            "stream has no mirror but does have mirror direct",
        ));
    }
    Ok(())
}

/// A local mirror takes `mirror_direct` from its origin's `allow_direct` when the origin
/// exists (nats-server's checkStreamCfg, outside pedantic mode).
pub(crate) fn inherit(js: &JetStream, cfg: &mut StreamConfig) {
    let Some(m) = cfg.mirror.as_ref().filter(|m| m.external.is_none()) else {
        return;
    };
    if let Some(origin) = js.stream(&m.name) {
        cfg.mirror_direct = origin.allow_direct.load(Ordering::Relaxed);
    }
}

/// The stream that answers `DIRECT.GET.<name>`: the stream itself if it allows direct
/// gets, or a caught-up mirror of it with `mirror_direct`, one picked at random; `None`
/// when no stream answers (no responders).
pub(crate) fn responder(js: &JetStream, name: &str) -> Option<Arc<Stream>> {
    let own = js
        .stream(name)
        .filter(|s| s.allow_direct.load(Ordering::Relaxed));
    if js.direct_mirrors.load(Ordering::Relaxed) == 0 {
        return own;
    }
    let mut candidates: Vec<Arc<Stream>> = own.into_iter().collect();
    candidates.extend(
        js.streams
            .read()
            .values()
            .filter(|s| s.direct_for.lock().as_deref() == Some(name))
            .cloned(),
    );
    match candidates.len() {
        0 => None,
        n => Some(candidates.swap_remove(fastrand::usize(..n))),
    }
}

/// Records whether `stream` (a mirror) answers its origin's direct gets: called by its
/// mirror task with the lag it sees, and with `None` when the task stops (then with the
/// stream's `sources` lock held by the caller).
pub(crate) fn set_ready(js: &JetStream, stream: &Stream, origin_lag: Option<(&str, u64)>) {
    // A task's last report may come after it was stopped: a stream whose tasks are gone
    // (deleted, closing) is not offered. The `sources` lock is held while deciding, so a
    // stop cannot slip in between (order: `sources` → `direct_for`).
    let _running = match origin_lag {
        Some(_) => {
            let running = stream.sources.lock();
            if running.is_empty() {
                return;
            }
            Some(running)
        }
        None => None,
    };
    let answers = origin_lag
        .filter(|&(_, lag)| lag < CAUGHT_UP)
        .filter(|_| stream.mirror_direct.load(Ordering::Relaxed))
        .map(|(origin, _)| origin.to_string());
    let mut direct_for = stream.direct_for.lock();
    match (direct_for.is_some(), answers.is_some()) {
        // Once caught up it keeps answering while the mirror runs (as nats-server keeps
        // its queue subscription); only stopping the task withdraws it.
        (true, true) => return,
        (false, true) => {
            js.direct_mirrors.fetch_add(1, Ordering::Relaxed);
        }
        (true, false) if origin_lag.is_none() => {
            js.direct_mirrors.fetch_sub(1, Ordering::Relaxed);
        }
        _ => return,
    }
    *direct_for = answers;
}
