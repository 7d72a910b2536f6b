//! Priority groups of pull consumers (nats-server 2.11/2.12): `priority_policy` with
//! `priority_groups`, the checks of the config and of each pull request, and which waiting
//! request is served next — `overflow` serves a request only while the consumer is behind
//! by its `min_pending` / `min_ack_pending`, `prioritized` serves the lowest `priority`
//! first, `pinned_client` serves one client per group (the one holding the group's pin id)
//! until it stops pulling for `priority_timeout` or is unpinned.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::config::ConsumerConfig;
use super::engine::StepOut;
use super::pull::{PullBody, Waiting};
use super::State;
use crate::advisory;
use crate::errors::ApiError;
use crate::time::deadline;

/// A pull consumer's priority policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityPolicy {
    /// Requests are served in arrival order.
    #[default]
    #[serde(alias = "")]
    None,
    /// A request is served only while the consumer has at least `min_pending` messages
    /// pending or `min_ack_pending` awaiting acks (when it sets them).
    Overflow,
    /// One client at a time, by pin id (2.11).
    PinnedClient,
    /// The request with the lowest `priority` (0–9) first (2.12).
    Prioritized,
}

impl PriorityPolicy {
    /// Whether this is the default (not serialized).
    pub fn is_none(&self) -> bool {
        *self == PriorityPolicy::None
    }
}

/// The longest group name.
const MAX_GROUP_LEN: usize = 16;

/// nats-server's checks of `priority_policy` and `priority_groups`.
pub(crate) fn check_config(cfg: &ConsumerConfig) -> Result<(), ApiError> {
    let policy = cfg.priority_policy;
    if !policy.is_none() && cfg.priority_groups.is_empty() {
        return Err(ApiError::priority_groups_required());
    }
    if policy.is_none() && !cfg.priority_groups.is_empty() {
        return Err(ApiError::priority_groups_without_policy());
    }
    if policy.is_none() {
        return Ok(());
    }
    if !cfg.is_pull() {
        return Err(ApiError::priority_groups_push());
    }
    for group in &cfg.priority_groups {
        if group.is_empty() {
            return Err(ApiError::priority_group_empty());
        }
        let valid = group.len() <= MAX_GROUP_LEN
            && group
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'='));
        if !valid {
            return Err(ApiError::priority_group_invalid());
        }
    }
    Ok(())
}

/// The `400` status text for a pull request the consumer's policy refuses.
pub(crate) fn check_request(cfg: &ConsumerConfig, req: &PullBody) -> Result<(), &'static str> {
    let policy = cfg.priority_policy;
    if policy.is_none() {
        return Ok(());
    }
    if req.group.is_empty() {
        return Err("400 Bad Request - Priority Group missing");
    }
    if !cfg.priority_groups.contains(&req.group) {
        return Err("400 Bad Request - Invalid Priority Group");
    }
    if !req.id.is_empty() && policy != PriorityPolicy::PinnedClient {
        return Err("400 Bad Request - Not a Pinned Client Priority consumer");
    }
    if (req.min_pending != 0 || req.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
        return Err("400 Bad Request - Not a Overflow Priority consumer");
    }
    if policy == PriorityPolicy::Prioritized && !(0..=9).contains(&req.priority) {
        return Err("400 Bad Request - Priority must be between 0 and 9");
    }
    Ok(())
}

/// A group's pinned client.
#[derive(Debug, Clone)]
pub(crate) struct Pin {
    /// The pin id its requests carry (`id`) and its deliveries (`Nats-Pin-Id`).
    pub id: String,
    /// When it was pinned (Unix ns).
    pub since: i64,
    /// Its last pull request: the pin ends `priority_timeout` after it.
    pub last_pull: Instant,
}

/// Pins by group.
pub(crate) type Pins = BTreeMap<String, Pin>;

/// A `pinned_client` pull request carrying a pin id: kept (and the pin's timer reset) when
/// it is the group's, else `423`.
pub(crate) fn admit_pinned(
    st: &mut State,
    req: &PullBody,
    now: Instant,
) -> Result<(), &'static str> {
    if st.config.priority_policy != PriorityPolicy::PinnedClient || req.id.is_empty() {
        return Ok(());
    }
    match st.pins.get_mut(&req.group) {
        Some(pin) if pin.id == req.id => {
            pin.last_pull = now;
            Ok(())
        }
        _ => Err("423 Nats-Pin-Id mismatch"),
    }
}

/// The pin id for a delivery to waiting request `i` of a `pinned_client` consumer, pinning
/// its client when the group has none (announced).
pub(crate) fn pin_for(
    st: &mut State,
    i: usize,
    now: Instant,
    wall: i64,
    names: (&str, &str),
    out: &mut StepOut,
) -> Option<String> {
    if st.config.priority_policy != PriorityPolicy::PinnedClient {
        return None;
    }
    let group = st.waiting.get(i)?.group.clone();
    if let Some(pin) = st.pins.get(&group) {
        return Some(pin.id.clone());
    }
    let id = advisory::next_id();
    out.advisories
        .push(advisory::pinned(names.0, names.1, &group, &id));
    let pin = Pin {
        id: id.clone(),
        since: wall,
        last_pull: now,
    };
    if let Some(w) = st.waiting.get_mut(i) {
        w.pin_id = id.clone();
    }
    st.pins.insert(group, pin);
    Some(id)
}

/// Ends the pins whose client stopped pulling for `priority_timeout` (announced); wakes
/// the consumer when the next one would.
pub(crate) fn expire_pins(st: &mut State, now: Instant, names: (&str, &str), out: &mut StepOut) {
    let timeout = Duration::from_nanos(u64::try_from(st.config.priority_timeout).unwrap_or(0));
    let mut gone = Vec::new();
    for (group, pin) in &st.pins {
        let end = deadline(pin.last_pull, timeout);
        if end <= now {
            gone.push(group.clone());
        } else {
            out.wake_at(end);
        }
    }
    for group in gone {
        unpin(st, &group, "timeout", names, out);
    }
}

/// Ends `group`'s pin, if any (`reason`: `admin` or `timeout`).
pub(crate) fn unpin(
    st: &mut State,
    group: &str,
    reason: &str,
    names: (&str, &str),
    out: &mut StepOut,
) {
    if st.pins.remove(group).is_some() {
        out.advisories
            .push(advisory::unpinned(names.0, names.1, group, reason));
    }
}

/// `headers` with `Nats-Pin-Id: id` added (a bare header block when there were none).
pub(crate) fn with_pin_header(headers: Option<&Bytes>, id: &str) -> Bytes {
    let line = format!("Nats-Pin-Id: {id}\r\n");
    match headers.filter(|h| h.ends_with(b"\r\n\r\n")) {
        Some(h) => {
            let mut out = Vec::with_capacity(h.len() + line.len());
            out.extend_from_slice(&h[..h.len() - 2]);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            Bytes::from(out)
        }
        None => Bytes::from(format!("NATS/1.0\r\n{line}\r\n")),
    }
}

/// Which waiting request is served next, given the consumer's pending and ack-pending
/// counts and pins; `None` when none may be served now.
pub(crate) fn next_request(
    policy: PriorityPolicy,
    waiting: &std::collections::VecDeque<Waiting>,
    pending: u64,
    ack_pending: u64,
    pins: &Pins,
) -> Option<usize> {
    match policy {
        PriorityPolicy::PinnedClient => waiting
            .iter()
            .position(|w| pins.get(&w.group).is_none_or(|pin| pin.id == w.pin_id)),
        PriorityPolicy::Overflow => waiting.iter().position(|w| {
            let (min_p, min_a) = (w.min_pending, w.min_ack_pending);
            (min_p <= 0 && min_a <= 0)
                || (min_p > 0 && pending >= min_p.unsigned_abs())
                || (min_a > 0 && ack_pending >= min_a.unsigned_abs())
        }),
        PriorityPolicy::Prioritized => waiting
            .iter()
            .enumerate()
            .min_by_key(|(i, w)| (w.priority, *i))
            .map(|(i, _)| i),
        PriorityPolicy::None => (!waiting.is_empty()).then_some(0),
    }
}

/// A group in the consumer info (`priority_groups`, after `ts`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupState {
    pub group: String,
    /// The pinned client's pin id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_client_id: Option<String>,
    /// When a client was pinned (Go's zero time: none).
    pub pinned_ts: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::pull::parse_body;
    use tokio::time::Instant;

    fn waiting(bodies: &[&str]) -> std::collections::VecDeque<Waiting> {
        let now = Instant::now();
        bodies
            .iter()
            .map(|b| Waiting::new("r".into(), &parse_body(b.as_bytes()).unwrap(), now))
            .collect()
    }

    #[test]
    fn overflow_serves_requests_whose_threshold_is_reached() {
        let w = waiting(&[
            r#"{"group":"g","min_pending":10}"#,
            r#"{"group":"g","min_ack_pending":3}"#,
            r#"{"group":"g"}"#,
        ]);
        let pick = |p, a| next_request(PriorityPolicy::Overflow, &w, p, a, &Pins::new());
        assert_eq!(pick(10, 0), Some(0));
        assert_eq!(pick(9, 3), Some(1));
        assert_eq!(pick(9, 2), Some(2));
        let only_thresholds = waiting(&[r#"{"group":"g","min_pending":10}"#]);
        assert_eq!(
            next_request(
                PriorityPolicy::Overflow,
                &only_thresholds,
                9,
                0,
                &Pins::new()
            ),
            None
        );
    }

    #[test]
    fn pinned_serves_the_pin_holder_or_anyone_while_unpinned() {
        let mut w = waiting(&[r#"{"group":"g"}"#, r#"{"group":"g","id":"P"}"#]);
        w[1].pin_id = "P".into();
        let mut pins = Pins::new();
        assert_eq!(
            next_request(PriorityPolicy::PinnedClient, &w, 0, 0, &pins),
            Some(0)
        );
        pins.insert(
            "g".into(),
            Pin {
                id: "P".into(),
                since: 1,
                last_pull: Instant::now(),
            },
        );
        assert_eq!(
            next_request(PriorityPolicy::PinnedClient, &w, 0, 0, &pins),
            Some(1)
        );
    }

    #[test]
    fn the_pin_header_joins_the_stored_ones() {
        assert_eq!(
            &with_pin_header(None, "X")[..],
            b"NATS/1.0\r\nNats-Pin-Id: X\r\n\r\n"
        );
        let h = Bytes::from_static(b"NATS/1.0\r\nA: b\r\n\r\n");
        assert_eq!(
            &with_pin_header(Some(&h), "X")[..],
            b"NATS/1.0\r\nA: b\r\nNats-Pin-Id: X\r\n\r\n"
        );
    }

    #[test]
    fn prioritized_serves_the_lowest_priority_first_in_arrival_order() {
        let w = waiting(&[
            r#"{"group":"g","priority":5}"#,
            r#"{"group":"g","priority":1}"#,
            r#"{"group":"g","priority":1}"#,
        ]);
        assert_eq!(
            next_request(PriorityPolicy::Prioritized, &w, 0, 0, &Pins::new()),
            Some(1)
        );
        assert_eq!(
            next_request(PriorityPolicy::None, &w, 0, 0, &Pins::new()),
            Some(0)
        );
    }
}
