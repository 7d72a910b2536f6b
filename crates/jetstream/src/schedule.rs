//! Message schedules (nats-server 2.12, `allow_msg_schedules`): a message with
//! `Nats-Schedule` (see [`crate::cron`]) and `Nats-Schedule-Target` is a schedule, kept as
//! the only message of its subject (it is stored with `Nats-Rollup: sub`). When it fires,
//! the server publishes its body (or the newest message of `Nats-Schedule-Source`) to the
//! target with its headers but the schedule's own, plus `Nats-Scheduler: <schedule subject>`
//! and `Nats-Schedule-Next`: the next firing time, or `purge` for a one-off — storing that
//! message then purges the schedule. `Nats-Schedule-TTL` and `Nats-Schedule-Rollup` become
//! the fired message's `Nats-TTL` and `Nats-Rollup`.
//!
//! [`Schedules`] (each schedule's sequence and next firing) lives beside the store, filled
//! as messages are stored (on every replica) and rebuilt from the stored headers when the
//! stream opens, the newest fired message of each schedule giving its next firing; so
//! schedules survive a restart and a change of leader. The maintenance tick fires what is
//! due, through the ingest task (the group, on a replicated stream's leader).

use std::collections::HashMap;

use petrel_store::{PurgeRequest, StreamStore};
use petrel_wire::headers::Headers;

use crate::errors::ApiError;
use crate::stream::{Inbound, Inner, Stream};

/// Header: the schedule pattern.
pub const SCHEDULE: &str = "Nats-Schedule";
/// Header: the subject a schedule publishes to.
const TARGET: &str = "Nats-Schedule-Target";
/// Header: a subject whose newest message a schedule publishes instead of its own body.
const SOURCE: &str = "Nats-Schedule-Source";
/// Header: the fired message's TTL.
const SCHEDULE_TTL: &str = "Nats-Schedule-TTL";
/// Header: the fired message's roll-up (`sub` only).
const SCHEDULE_ROLLUP: &str = "Nats-Schedule-Rollup";
/// Header: the zone of a cron pattern.
const TIME_ZONE: &str = "Nats-Schedule-Time-Zone";
/// Header of a fired message: the schedule's subject.
pub const SCHEDULER: &str = "Nats-Scheduler";
/// Header of a fired message: the next firing (RFC 3339) or `purge`.
pub const NEXT: &str = "Nats-Schedule-Next";
/// A one-off schedule's fired message purges it.
const PURGE: &str = "purge";
/// How long a fired message is waited for (it goes through the ingest queue, and the
/// group) before the schedule fires again.
const INFLIGHT_WAIT: i64 = 10 * 1_000_000_000;

/// One schedule.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    next: i64,
    /// When it fired last and its message was not stored yet.
    inflight: Option<i64>,
}

/// The stream's schedules by subject.
#[derive(Debug, Default)]
pub(crate) struct Schedules {
    by_subject: HashMap<String, Entry>,
}

/// Whether `s` is a subject a message may be published to.
fn publishable(s: &str) -> bool {
    petrel_subject::is_valid_subject(s.as_bytes()) && !s.split('.').any(|t| t == "*" || t == ">")
}

/// The zone of a schedule's headers: `Ok(None)` without the header, 10223 for an empty or
/// unknown one.
fn zone_of(h: &Headers) -> Result<Option<jiff::tz::TimeZone>, ApiError> {
    match h.get(TIME_ZONE) {
        None => Ok(None),
        Some(name) => crate::cron::zone(name)
            .map(Some)
            .ok_or_else(ApiError::schedule_time_zone_invalid),
    }
}

/// The pattern of a schedule message, if it is one and it parses.
fn pattern_of(h: &Headers) -> Option<crate::cron::Pattern> {
    let p = h.get(SCHEDULE).filter(|p| !p.is_empty())?;
    crate::cron::parse(p, zone_of(h).ok()?.as_ref())
}

/// The checks of a published message's schedule headers (nats-server 2.15's order), and
/// whether it must be stored with `Nats-Rollup: sub` (a schedule is its subject's only
/// message). Sourced messages were checked by their origin.
pub(crate) fn check(inner: &Inner, subject: &str, h: &Headers) -> Result<bool, ApiError> {
    if crate::sourcing::sourced(h) {
        return Ok(false);
    }
    let allowed = inner.config.allow_msg_schedules;
    if let Some(p) = h.get(SCHEDULE).filter(|p| !p.is_empty()) {
        let zone = zone_of(h).map_err(|e| {
            if allowed {
                e
            } else {
                ApiError::schedules_disabled()
            }
        })?;
        if crate::cron::parse(p, zone.as_ref()).is_none() {
            return Err(if allowed {
                ApiError::schedule_pattern_invalid()
            } else {
                ApiError::schedules_disabled()
            });
        }
        if !allowed {
            return Err(ApiError::schedules_disabled());
        }
        return check_schedule(inner, subject, h);
    }
    if let Some(next) = h.get(NEXT).filter(|n| !n.is_empty()) {
        // Clients may only purge a schedule (StreamHandler refuses other values before
        // they get here); the fired messages the server makes pass the same checks.
        check_purge(inner, subject, h, next == PURGE)?;
    }
    Ok(false)
}

/// A schedule's TTL, roll-up, target and source.
fn check_schedule(inner: &Inner, subject: &str, h: &Headers) -> Result<bool, ApiError> {
    let ttl = h.get(SCHEDULE_TTL).filter(|t| !t.is_empty());
    if ttl.is_some_and(|t| crate::ttl::parse(t).is_err()) {
        return Err(ApiError::schedule_ttl_invalid());
    }
    if h.get(SCHEDULE_ROLLUP)
        .is_some_and(|r| !r.is_empty() && r != "sub")
    {
        return Err(ApiError::schedule_rollup_invalid());
    }
    if ttl.is_some() && !inner.config.allow_msg_ttl {
        return Err(ApiError::message_ttl_disabled());
    }
    let target = h.get(TARGET).unwrap_or_default();
    if target.is_empty() || !publishable(target) || target == subject {
        return Err(ApiError::schedule_target_invalid());
    }
    let source = h.get(SOURCE).filter(|s| !s.is_empty());
    if source.is_some_and(|s| s == target || s == subject || !publishable(s)) {
        return Err(ApiError::schedule_source_invalid());
    }
    let ours = |s: &str| {
        inner
            .config
            .subjects
            .iter()
            .any(|own| petrel_subject::subjects_collide(own.as_bytes(), s.as_bytes()))
    };
    if !ours(target) {
        return Err(ApiError::schedule_target_invalid());
    }
    if source.is_some_and(|s| !ours(s)) {
        return Err(ApiError::schedule_source_invalid());
    }
    match h.get(crate::ingest::ROLLUP).filter(|r| !r.is_empty()) {
        None => Ok(true),
        Some("sub") => Ok(false),
        Some(_) => Err(ApiError::schedule_rollup_invalid()),
    }
}

/// A message that purges (or, from the server, advances) schedule `Nats-Scheduler`.
fn check_purge(inner: &Inner, subject: &str, h: &Headers, purge: bool) -> Result<(), ApiError> {
    let scheduler = h.get(SCHEDULER).unwrap_or_default();
    if scheduler.is_empty() || scheduler == subject || !publishable(scheduler) {
        return Err(ApiError::schedule_scheduler_invalid());
    }
    if !inner.config.allow_msg_schedules {
        return Err(ApiError::schedules_disabled());
    }
    if purge {
        let last = inner
            .store
            .last_by_subject(scheduler)
            .map_err(ApiError::store_failed)?;
        let is_schedule = |m: &petrel_store::StoredMsg| {
            m.headers
                .as_deref()
                .and_then(petrel_wire::headers::parse)
                .is_some_and(|h| h.get(SCHEDULE).is_some_and(|p| !p.is_empty()))
        };
        if last.is_some_and(|m| !is_schedule(&m)) {
            return Err(ApiError::schedule_scheduler_invalid());
        }
    }
    Ok(())
}

impl Schedules {
    /// Notes a stored message: a schedule (re)starts, another message on a schedule's
    /// subject ends it, a fired message moves its schedule on. Returns the schedule a
    /// one-off's fired message purges.
    pub(crate) fn note(
        &mut self,
        seq: u64,
        ts: i64,
        subject: &str,
        h: Option<&Headers>,
        now: i64,
    ) -> Option<String> {
        let Some(h) = h else {
            self.by_subject.remove(subject);
            return None;
        };
        match pattern_of(h).and_then(|p| p.next(ts, now)) {
            Some((next, _)) => {
                let entry = Entry {
                    seq,
                    next,
                    inflight: None,
                };
                self.by_subject.insert(subject.to_string(), entry);
            }
            None if h.get(SCHEDULER).is_none() => {
                self.by_subject.remove(subject);
            }
            None => {}
        }
        let scheduler = h.get(SCHEDULER).filter(|s| !s.is_empty())?;
        match h.get(NEXT)? {
            PURGE => {
                self.by_subject.remove(scheduler);
                Some(scheduler.to_string())
            }
            next => {
                if let (Some(e), Some(t)) = (
                    self.by_subject.get_mut(scheduler),
                    crate::time::parse_rfc3339(next),
                ) {
                    e.next = t;
                    e.inflight = None;
                }
                None
            }
        }
    }

    /// Reads every stored message's headers back (a stream with schedules opening).
    pub(crate) fn rebuild(store: &dyn StreamStore, now: i64) -> Schedules {
        let mut s = Schedules::default();
        let mut seq = store.state().first_seq;
        while let Ok(Some(m)) = store.next_by_subject(seq, ">") {
            let h = m.headers.as_deref().and_then(petrel_wire::headers::parse);
            if h.is_some() {
                s.note(m.seq, m.ts, &m.subject, h.as_ref(), now);
            }
            seq = m.seq + 1;
        }
        s
    }

    /// The schedules due at `now`, marked in flight: (subject, seq), oldest first.
    fn due(&mut self, now: i64) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = Vec::new();
        for (subject, e) in &mut self.by_subject {
            let waiting = e.inflight.is_some_and(|t| now - t < INFLIGHT_WAIT);
            if e.next <= now && !waiting {
                e.inflight = Some(now);
                out.push((subject.clone(), e.seq));
            }
        }
        out.sort_by_key(|(_, seq)| *seq);
        out
    }
}

/// The message schedule `m` publishes when it fires at `now`, or `None` when it no
/// longer parses.
fn fired(store: &dyn StreamStore, m: &petrel_store::StoredMsg, now: i64) -> Option<Inbound> {
    let h = m.headers.as_deref().and_then(petrel_wire::headers::parse)?;
    let pattern = pattern_of(&h)?;
    let target = h.get(TARGET).filter(|t| !t.is_empty())?;
    let (repeat_next, repeats) = match pattern.next(now, now) {
        Some((t, true)) => (Some(t), true),
        _ => (None, false),
    };
    let body = match h.get(SOURCE).filter(|s| !s.is_empty()) {
        Some(source) => store.last_by_subject(source).ok().flatten(),
        None => None,
    };
    let (base_headers, payload) = match &body {
        Some(src) => (src.headers.clone(), src.payload.clone()),
        None => (m.headers.clone(), m.payload.clone()),
    };
    let kept = base_headers.map(|b| {
        crate::hdr::without(&b, |k| {
            k.starts_with("Nats-Schedule")
                || k == SCHEDULER
                || k.starts_with("Nats-Expected-")
                || k == crate::dedup::MSG_ID
                || k == crate::ttl::MSG_TTL
                || k == crate::ingest::ROLLUP
        })
    });
    let next = match repeat_next {
        Some(t) if repeats => crate::time::rfc3339_nano(t),
        _ => PURGE.to_string(),
    };
    let mut lines = format!("{SCHEDULER}: {}\r\n{NEXT}: {next}\r\n", m.subject);
    if let Some(ttl) = h.get(SCHEDULE_TTL).filter(|t| !t.is_empty()) {
        lines.push_str(&format!("{}: {ttl}\r\n", crate::ttl::MSG_TTL));
    }
    if let Some(r) = h.get(SCHEDULE_ROLLUP).filter(|r| !r.is_empty()) {
        lines.push_str(&format!("{}: {r}\r\n", crate::ingest::ROLLUP));
    }
    Some(Inbound {
        subject: target.to_string(),
        reply: None,
        headers: Some(crate::hdr::extend(kept.as_ref(), &lines)),
        payload,
    })
}

impl Stream {
    /// The messages of the schedules due at `now` (to be stored through the ingest task).
    /// `leads`: this node may fire (a replicated stream's leader).
    pub(crate) fn fire_schedules(&self, inner: &mut Inner, now: i64, leads: bool) -> Vec<Inbound> {
        if !leads {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (subject, seq) in inner.schedules.due(now) {
            match inner.store.get(seq) {
                Ok(Some(m)) => match fired(inner.store.as_ref(), &m, now) {
                    Some(msg) => out.push(msg),
                    None => {
                        inner.schedules.by_subject.remove(&subject);
                    }
                },
                _ => {
                    inner.schedules.by_subject.remove(&subject);
                }
            }
        }
        out
    }
}

/// The purge of a schedule whose one-off fired message was stored.
pub(crate) fn purge_of(scheduler: String) -> PurgeRequest {
    PurgeRequest {
        subject: Some(scheduler),
        ..PurgeRequest::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &str) -> Headers {
        petrel_wire::headers::parse(format!("NATS/1.0\r\n{lines}\r\n").as_bytes()).unwrap()
    }

    #[test]
    fn schedules_start_move_on_and_end() {
        let mut s = Schedules::default();
        let t0 = 1_000 * 1_000_000_000;
        let h = headers("Nats-Schedule: @every 10s\r\nNats-Schedule-Target: t\r\n");
        assert_eq!(s.note(1, t0, "sched", Some(&h), t0), None);
        assert!(s.due(t0).is_empty());
        let due = s.due(t0 + 10 * 1_000_000_000);
        assert_eq!(due, vec![("sched".to_string(), 1)]);
        // In flight: not fired twice.
        assert!(s.due(t0 + 11 * 1_000_000_000).is_empty());
        // Its fired message moves it on.
        let next = crate::time::rfc3339_nano(t0 + 20 * 1_000_000_000);
        let fired = headers(&format!(
            "Nats-Scheduler: sched\r\nNats-Schedule-Next: {next}\r\n"
        ));
        assert_eq!(s.note(2, t0, "t", Some(&fired), t0), None);
        assert!(s.due(t0 + 19 * 1_000_000_000).is_empty());
        assert_eq!(s.due(t0 + 20 * 1_000_000_000).len(), 1);
        // A one-off's fired message purges it.
        let purge = headers("Nats-Scheduler: sched\r\nNats-Schedule-Next: purge\r\n");
        assert_eq!(s.note(3, t0, "t", Some(&purge), t0), Some("sched".into()));
        assert!(s.by_subject.is_empty());
        // A plain message on a schedule's subject ends the schedule.
        s.note(4, t0, "sched", Some(&h), t0);
        s.note(5, t0, "sched", None, t0);
        assert!(s.by_subject.is_empty());
    }
}
