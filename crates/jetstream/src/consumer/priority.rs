//! Priority groups of pull consumers (nats-server 2.11/2.12): `priority_policy` with
//! `priority_groups`, the checks of the config and of each pull request, and which waiting
//! request is served next — `overflow` serves a request only while the consumer is behind
//! by its `min_pending` / `min_ack_pending`, `prioritized` serves the lowest `priority`
//! first. (`pinned_client` is refused: not implemented yet.)

use serde::{Deserialize, Serialize};

use super::config::ConsumerConfig;
use super::pull::{PullBody, Waiting};
use crate::errors::ApiError;

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
    if policy == PriorityPolicy::PinnedClient {
        return Err(ApiError::stream_invalid_config(
            "priority policy pinned_client is not supported by this server yet",
        ));
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

/// Which waiting request is served next, given the consumer's pending and ack-pending
/// counts; `None` when none may be served now.
pub(crate) fn next_request(
    policy: PriorityPolicy,
    waiting: &std::collections::VecDeque<Waiting>,
    pending: u64,
    ack_pending: u64,
) -> Option<usize> {
    match policy {
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
        PriorityPolicy::None | PriorityPolicy::PinnedClient => (!waiting.is_empty()).then_some(0),
    }
}

/// A group in the consumer info (`priority_groups`, after `ts`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupState {
    pub group: String,
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
        let pick = |p, a| next_request(PriorityPolicy::Overflow, &w, p, a);
        assert_eq!(pick(10, 0), Some(0));
        assert_eq!(pick(9, 3), Some(1));
        assert_eq!(pick(9, 2), Some(2));
        let only_thresholds = waiting(&[r#"{"group":"g","min_pending":10}"#]);
        assert_eq!(
            next_request(PriorityPolicy::Overflow, &only_thresholds, 9, 0),
            None
        );
    }

    #[test]
    fn prioritized_serves_the_lowest_priority_first_in_arrival_order() {
        let w = waiting(&[
            r#"{"group":"g","priority":5}"#,
            r#"{"group":"g","priority":1}"#,
            r#"{"group":"g","priority":1}"#,
        ]);
        assert_eq!(next_request(PriorityPolicy::Prioritized, &w, 0, 0), Some(1));
        assert_eq!(next_request(PriorityPolicy::None, &w, 0, 0), Some(0));
    }
}
