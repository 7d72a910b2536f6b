//! `ConsumerConfig`: the JSON shape of nats-server (2.9.10 field order plus the 2.10 fields
//! when set), its defaults (`setConsumerConfigDefaults`) and the checks nats-server makes
//! before creating a consumer (`checkConsumerCfg`) or updating one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::priority::PriorityPolicy;
use crate::config::{RetentionPolicy, StreamConfig};
use crate::errors::ApiError;
use crate::json::{is_default, null_default};
use crate::time::{parse_rfc3339, rfc3339_nano};

/// Default ack wait: 30 s.
pub const DEFAULT_ACK_WAIT: i64 = 30_000_000_000;
/// How long a pinned client keeps its pin without pulling, by default (nats-server's 2m).
const DEFAULT_PRIORITY_TIMEOUT: i64 = 120_000_000_000;
/// Default max_ack_pending for consumers that ack.
pub const DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// Default max_waiting for pull consumers.
pub const DEFAULT_MAX_WAITING: i64 = 512;
/// Default inactive threshold of ephemeral consumers: 5 s.
pub const DEFAULT_INACTIVE_THRESHOLD: i64 = 5_000_000_000;
/// Shortest idle heartbeat: 100 ms.
pub const MIN_HEARTBEAT: i64 = 100_000_000;

/// Where a consumer starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliverPolicy {
    /// From the first message.
    #[default]
    #[serde(rename = "all", alias = "")]
    All,
    /// From the last message.
    #[serde(rename = "last")]
    Last,
    /// Only messages stored after creation.
    #[serde(rename = "new")]
    New,
    /// From `opt_start_seq`.
    #[serde(rename = "by_start_sequence")]
    ByStartSequence,
    /// From the first message at or after `opt_start_time`.
    #[serde(rename = "by_start_time")]
    ByStartTime,
    /// The last message of every subject, then new ones.
    #[serde(rename = "last_per_subject")]
    LastPerSubject,
}

/// How messages are acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    /// No acks: delivered = done.
    #[default]
    #[serde(alias = "")]
    None,
    /// An ack covers this message and every earlier one.
    All,
    /// Every message is acked on its own.
    Explicit,
}

/// Delivery pacing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    /// As fast as possible.
    #[default]
    #[serde(alias = "")]
    Instant,
    /// With the original gaps between messages.
    Original,
}

/// A consumer's configuration, as clients send it and as nats-server echoes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerConfig {
    /// Durable name (empty = ephemeral).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub durable_name: String,
    /// Name (2.9+); equals the durable name when both are set.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Free text.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Where delivery starts.
    #[serde(default, deserialize_with = "null_default")]
    pub deliver_policy: DeliverPolicy,
    /// Start sequence of `by_start_sequence`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub opt_start_seq: u64,
    /// Start time of `by_start_time` (RFC 3339).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub opt_start_time: Option<String>,
    /// Ack policy.
    #[serde(default, deserialize_with = "null_default")]
    pub ack_policy: AckPolicy,
    /// Redelivery timeout in ns.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub ack_wait: i64,
    /// Deliveries per message (-1 = unlimited).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_deliver: i64,
    /// Redelivery delays (ns) per delivery count.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub backoff: Vec<i64>,
    /// Only messages on this subject.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub filter_subject: String,
    /// Only messages on these subjects (2.10).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub filter_subjects: Vec<String>,
    /// Replay pacing.
    #[serde(default, deserialize_with = "null_default")]
    pub replay_policy: ReplayPolicy,
    /// Rate limit in bits per second (accepted, not enforced).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub rate_limit_bps: u64,
    /// Ack sampling (accepted, no metrics are sent).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub sample_freq: String,
    /// Waiting pull requests kept.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_waiting: i64,
    /// Un-acked messages before delivery pauses.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_ack_pending: i64,
    /// Idle heartbeat interval in ns (push).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub idle_heartbeat: i64,
    /// Flow control (push).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub flow_control: bool,
    /// Deliver headers only, with `Nats-Msg-Size`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub headers_only: bool,
    /// Largest pull batch.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_batch: i64,
    /// Longest pull expiry (ns).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_expires: i64,
    /// Largest pull max_bytes.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_bytes: i64,
    /// Push target (presence = push consumer).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub deliver_subject: String,
    /// Queue group for push delivery.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub deliver_group: String,
    /// Removal after this long without interest (ns).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub inactive_threshold: i64,
    /// Replicas (0 = inherit).
    #[serde(default, deserialize_with = "null_default")]
    pub num_replicas: i64,
    /// Keep state in memory.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub mem_storage: bool,
    /// User metadata (2.10).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
    /// Deliver nothing before this time (RFC 3339; 2.11 `$JS.API.CONSUMER.PAUSE`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Option::is_none"
    )]
    pub pause_until: Option<String>,
    /// Priority groups of a pull consumer (2.11) and their policy.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub priority_groups: Vec<String>,
    /// How the groups' pull requests are served.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "PriorityPolicy::is_none"
    )]
    pub priority_policy: PriorityPolicy,
    /// How long a pinned client keeps its pin without pulling (ns; `pinned_client`,
    /// 2 minutes by default).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub priority_timeout: i64,
    /// nats-server's internal `direct` flag (a mirror's own consumer): accepted in
    /// requests, dropped by [`ConsumerConfig::set_defaults`], never stored or shown.
    #[serde(default, skip_serializing)]
    pub direct: Option<serde_json::Value>,
    /// nats-server's internal `sourcing` flag (a source's pre-created consumer, 2.12): as
    /// `direct`.
    #[serde(default, skip_serializing)]
    pub sourcing: Option<serde_json::Value>,
}

/// Body of the CONSUMER.CREATE requests.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CreateRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub stream_name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub config: ConsumerConfig,
    /// `create`, `update` or empty (2.10).
    #[serde(default, deserialize_with = "null_default")]
    pub action: String,
    /// nats-server's `pedantic` (2.11): accepted; Petrel makes nats-server's default
    /// (non-pedantic) adjustments.
    #[serde(default, deserialize_with = "null_default", rename = "pedantic")]
    _pedantic: bool,
}

/// 10012 with a free text.
fn create_err(text: impl std::fmt::Display) -> ApiError {
    ApiError::consumer_create(text)
}

/// Whether `name` may name a consumer.
pub fn is_valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\' | '\0') || c.is_whitespace())
}

impl ConsumerConfig {
    /// The filters in force (empty: every message).
    pub fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = if !self.filter_subjects.is_empty() {
            self.filter_subjects.clone()
        } else if !self.filter_subject.is_empty() {
            vec![self.filter_subject.clone()]
        } else {
            Vec::new()
        };
        out.retain(|f| f != ">");
        out
    }

    /// Whether this is a pull consumer.
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.is_empty()
    }

    /// `opt_start_time` in Unix ns.
    pub fn start_time(&self) -> Option<i64> {
        self.opt_start_time.as_deref().and_then(parse_rfc3339)
    }

    /// When the consumer's pause ends (Unix ns), if it has one; Go's zero time (what a
    /// resume sends) is none.
    pub fn pause_until_ns(&self) -> Option<i64> {
        let t = parse_rfc3339(self.pause_until.as_deref()?)?;
        (t != i64::MIN).then_some(t)
    }

    /// Whether the consumer is paused at `now` (Unix ns).
    pub fn paused_at(&self, now: i64) -> Option<i64> {
        self.pause_until_ns().filter(|&t| t > now)
    }

    /// Applies nats-server's defaults (`setConsumerConfigDefaults`; the ephemeral inactive
    /// threshold as `updateInactiveThreshold`).
    pub fn set_defaults(&mut self, stream: &StreamConfig) {
        (self.direct, self.sourcing) = (None, None);
        let acks = matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All);
        // nats-server 2.15 turns out-of-range negatives into "unset" or "unlimited".
        if self.max_deliver < -1 {
            self.max_deliver = -1;
        }
        if self.max_ack_pending < -1 {
            self.max_ack_pending = -1;
        }
        for v in [
            &mut self.max_waiting,
            &mut self.max_batch,
            &mut self.max_expires,
            &mut self.max_bytes,
            &mut self.idle_heartbeat,
            &mut self.inactive_threshold,
        ] {
            if *v < 0 {
                *v = 0;
            }
        }
        if self.is_pull() && self.max_waiting == 0 {
            self.max_waiting = DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && acks {
            self.ack_wait = DEFAULT_ACK_WAIT;
        }
        if self.max_deliver == 0 {
            self.max_deliver = -1;
        }
        if let Some(first) = self.backoff.first() {
            self.ack_wait = *first;
        }
        let limits = stream.consumer_limits.clone().unwrap_or_default();
        // As nats-server 2.15: the stream's limits are the defaults, for durables and
        // for consumers without acks too.
        if self.max_ack_pending == 0 {
            self.max_ack_pending = match (acks, limits.max_ack_pending > 0) {
                (true, true) => limits.max_ack_pending.min(DEFAULT_MAX_ACK_PENDING),
                (true, false) => DEFAULT_MAX_ACK_PENDING,
                (false, true) => limits.max_ack_pending,
                (false, false) => 0,
            };
        }
        if self.inactive_threshold <= 0 {
            if limits.inactive_threshold > 0 {
                self.inactive_threshold = limits.inactive_threshold;
            } else if self.durable_name.is_empty() {
                self.inactive_threshold = DEFAULT_INACTIVE_THRESHOLD;
            }
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout <= 0 {
            self.priority_timeout = DEFAULT_PRIORITY_TIMEOUT;
        }
        // Go's zero time (a resume) is no pause; a pause end is written like Go's time JSON.
        match self.pause_until.as_deref().map(parse_rfc3339) {
            Some(Some(i64::MIN)) => self.pause_until = None,
            Some(Some(t)) => self.pause_until = Some(rfc3339_nano(t)),
            _ => {}
        }
        // Normalized like Go's time.Time JSON, unless out of Unix-nanosecond range (kept
        // as given, and treated as before or after everything).
        if let Some(t) = self
            .start_time()
            .filter(|t| *t != i64::MAX && *t != i64::MIN)
        {
            self.opt_start_time = Some(rfc3339_nano(t));
        }
    }

    /// nats-server's `checkConsumerCfg`, in its order: the checks of a new or updated config
    /// against the stream. Defaults must have been applied.
    pub fn check(&self, stream: &StreamConfig) -> Result<(), ApiError> {
        if self.num_replicas < 0 {
            return Err(ApiError::replicas_negative());
        }
        if let Some(limits) = &stream.consumer_limits {
            limits.refuse(self.max_ack_pending, self.inactive_threshold)?;
        }
        if self
            .pause_until
            .as_deref()
            .is_some_and(|t| parse_rfc3339(t).is_none())
        {
            return Err(ApiError::invalid_json());
        }
        super::priority::check_config(self)?;
        if self.backoff.iter().any(|b| *b < 0) {
            return Err(ApiError::consumer_backoff_negative());
        }
        if self.ack_wait < 0 {
            return Err(ApiError::consumer_ack_wait_negative());
        }
        if !self.backoff.is_empty() && self.max_deliver <= self.backoff.len() as i64 {
            return Err(ApiError::consumer_backoff_max_deliver());
        }
        if self.description.len() > crate::config::MAX_DESCRIPTION_LEN {
            return Err(ApiError::consumer_description_too_long(
                crate::config::MAX_DESCRIPTION_LEN,
            ));
        }
        if !self.is_pull() {
            let ds = self.deliver_subject.as_bytes();
            if ds.split(|b| *b == b'.').any(|t| t == b"*" || t == b">") {
                return Err(ApiError::consumer_deliver_to_wildcards());
            }
            if !petrel_subject::is_valid_literal_subject(ds)
                || crate::transform::server_space(&self.deliver_subject).is_some()
            {
                // Deliveries into the server's own spaces could act as API requests,
                // acks or advisories.
                return Err(ApiError::consumer_invalid_deliver_subject());
            }
            if stream
                .subjects
                .iter()
                .any(|s| petrel_subject::matches(s.as_bytes(), ds))
            {
                return Err(ApiError::consumer_deliver_cycle());
            }
            if self.max_waiting != 0 {
                return Err(ApiError::consumer_push_max_waiting());
            }
            if self.max_ack_pending > 0 && self.ack_policy == AckPolicy::None {
                return Err(ApiError::consumer_max_pending_requires_ack());
            }
            if self.idle_heartbeat > 0 && self.idle_heartbeat < MIN_HEARTBEAT {
                return Err(ApiError::consumer_small_heartbeat());
            }
        } else {
            if self.ack_policy == AckPolicy::None && stream.retention == RetentionPolicy::Workqueue
            {
                return Err(ApiError::consumer_pull_requires_ack());
            }
            if self.rate_limit_bps > 0 {
                return Err(ApiError::consumer_pull_with_rate_limit());
            }
            if self.idle_heartbeat > 0 {
                return Err(ApiError::consumer_hb_requires_push());
            }
            if self.flow_control {
                return Err(ApiError::consumer_fc_requires_push());
            }
            if self.max_expires != 0 && self.max_expires < 1_000_000 {
                return Err(ApiError::consumer_max_request_expires_too_small());
            }
        }
        if !self.filter_subject.is_empty() && !self.filter_subjects.is_empty() {
            return Err(ApiError::consumer_duplicate_filter_subjects());
        }
        let filters: Vec<&String> = if self.filter_subjects.is_empty() {
            self.filter_subject.iter_nonempty()
        } else {
            self.filter_subjects.iter().collect()
        };
        for (i, f) in filters.iter().enumerate() {
            if f.is_empty() {
                return Err(ApiError::consumer_empty_filter());
            }
            // nats-server 2.15 takes any valid subject: a stream's messages can come from
            // sources and transforms, so its own subjects do not bound them (2.9 refused
            // filters outside them with 10093).
            if !petrel_subject::is_valid_subject(f.as_bytes()) {
                return Err(ApiError::stream_invalid_config("invalid subject"));
            }
            if filters[..i]
                .iter()
                .any(|g| petrel_subject::subjects_collide(f.as_bytes(), g.as_bytes()))
            {
                return Err(ApiError::consumer_overlapping_filters());
            }
        }
        self.check_start()?;
        if !self.sample_freq.is_empty() {
            let s = self.sample_freq.trim_end_matches('%');
            if s.parse::<i64>().map_or(true, |v| v < 0) {
                return Err(ApiError::consumer_invalid_sampling(format!(
                    "strconv.Atoi: parsing {s:?}: invalid syntax"
                )));
            }
        }
        if self.flow_control && self.idle_heartbeat == 0 {
            return Err(ApiError::consumer_fc_needs_heartbeats());
        }
        if !self.durable_name.is_empty() && !self.name.is_empty() && self.durable_name != self.name
        {
            return Err(ApiError::consumer_durable_name_mismatch());
        }
        super::deadletter::check(self, stream)
    }

    /// The deliver-policy / start-position checks (10094 with nats-server's texts).
    fn check_start(&self) -> Result<(), ApiError> {
        let bad_start = |dp: &str, start: &str| {
            Err(ApiError::consumer_invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional start {start} is also set"
            )))
        };
        let not_set = |dp: &str, what: &str| {
            Err(ApiError::consumer_invalid_policy(format!(
                "consumer delivery policy is deliver {dp}, but optional {what} is not set"
            )))
        };
        let seq = self.opt_start_seq > 0;
        let time = self.opt_start_time.is_some();
        let plain = |dp: &str| {
            if seq {
                bad_start(dp, "sequence")
            } else if time {
                bad_start(dp, "time")
            } else {
                Ok(())
            }
        };
        match self.deliver_policy {
            DeliverPolicy::All => plain("all"),
            DeliverPolicy::Last => plain("last"),
            DeliverPolicy::New => plain("new"),
            DeliverPolicy::LastPerSubject => {
                plain("last per subject")?;
                if self.filter_subject.is_empty() && self.filter_subjects.is_empty() {
                    return not_set("last per subject", "filter subject");
                }
                Ok(())
            }
            DeliverPolicy::ByStartSequence => {
                if !seq {
                    not_set("by start sequence", "start sequence")
                } else if time {
                    bad_start("by start sequence", "time")
                } else {
                    Ok(())
                }
            }
            DeliverPolicy::ByStartTime => {
                if !time {
                    not_set("by start time", "start time")
                } else if seq {
                    bad_start("by start time", "start sequence")
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The update rules of nats-server's `checkNewConsumerConfig`: what may change on an
    /// existing consumer. `deliver_bound` says whether someone listens on the old deliver
    /// subject (then it may not change).
    pub fn check_update(&self, old: &ConsumerConfig, deliver_bound: bool) -> Result<(), ApiError> {
        if self == old {
            return Ok(());
        }
        let refuse = |what: &str| Err(create_err(format!("{what} can not be updated")));
        if self.deliver_policy != old.deliver_policy {
            return refuse("deliver policy");
        }
        if self.opt_start_seq != old.opt_start_seq {
            return refuse("start sequence");
        }
        if self.opt_start_time != old.opt_start_time {
            return refuse("start time");
        }
        if self.ack_policy != old.ack_policy {
            return refuse("ack policy");
        }
        if self.replay_policy != old.replay_policy {
            return refuse("replay policy");
        }
        if self.idle_heartbeat != old.idle_heartbeat {
            return refuse("heart beats");
        }
        if self.flow_control != old.flow_control {
            return refuse("flow control");
        }
        if self.max_waiting != old.max_waiting {
            return refuse("max waiting");
        }
        if self.deliver_subject != old.deliver_subject {
            if old.deliver_subject.is_empty() {
                return Err(create_err("can not update pull consumer to push based"));
            }
            if self.deliver_subject.is_empty() {
                return Err(create_err("can not update push consumer to pull based"));
            }
            if deliver_bound {
                return Err(ApiError::consumer_name_exist());
            }
        }
        if !self.backoff.is_empty() && self.max_deliver <= self.backoff.len() as i64 {
            return Err(ApiError::consumer_backoff_max_deliver());
        }
        Ok(())
    }
}

/// A one-element iterator over a non-empty string.
trait IterNonEmpty {
    fn iter_nonempty(&self) -> Vec<&String>;
}

impl IterNonEmpty for String {
    fn iter_nonempty(&self) -> Vec<&String> {
        if self.is_empty() {
            Vec::new()
        } else {
            vec![self]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_2_9_10() {
        let mut c: ConsumerConfig = serde_json::from_str(
            r#"{"durable_name":"dur1","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":2}"#,
        )
        .unwrap();
        c.name = c.durable_name.clone();
        c.set_defaults(&StreamConfig::default());
        let json = String::from_utf8(crate::json::encode(&c).to_vec()).unwrap();
        assert_eq!(
            json,
            r#"{"durable_name":"dur1","name":"dur1","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":2,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"num_replicas":0}"#
        );
    }
}
