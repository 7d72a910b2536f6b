//! `StreamConfig`: the JSON shape of nats-server 2.9.10 (field order, always-present fields)
//! plus the 2.10 fields when set, its defaults, and the checks of nats-server's
//! `checkStreamCfg` that need no other stream. Checks against other streams (overlap, name in
//! use) live in the API handlers.

use std::collections::BTreeMap;
use std::time::Duration;

use petrel_store::{Discard, StoreLimits};
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::json::{is_default, null_default};
use crate::transform::{SubjectTransform, TransformError};

/// Default duplicate window (2 minutes), as nats-server.
pub const DEFAULT_DUPLICATE_WINDOW: i64 = 120_000_000_000;
/// Longest stream name.
pub const MAX_NAME_LEN: usize = 255;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Largest metadata (keys plus values).
pub const MAX_METADATA_LEN: usize = 128 * 1024;

/// Retention policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionPolicy {
    /// Keep messages until a limit removes them.
    #[default]
    Limits,
    /// Keep messages while some consumer has not acked them.
    Interest,
    /// Remove a message once it is acked.
    Workqueue,
}

/// Discard policy when a limit is hit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscardPolicy {
    /// Drop the oldest messages.
    #[default]
    Old,
    /// Refuse the new message.
    New,
}

/// Storage backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// `FileStore` (durable).
    #[default]
    File,
    /// `MemStore` (lost on restart).
    Memory,
}

/// Stream compression (2.10). `s2` stores message bodies Snappy-compressed (S2's
/// compatible subset) in file streams; memory streams ignore it, as nats-server's do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression (an empty string is read as this too).
    #[serde(alias = "")]
    None,
    /// S2 compression.
    S2,
}

/// When a file stream's writes reach the disk (2.12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersistMode {
    /// Each commit is fsynced before its PubAcks (an empty string is read as this too).
    #[default]
    #[serde(alias = "")]
    Default,
    /// Commits are written at once and fsynced within a second: PubAcks do not wait for
    /// the disk (nats-server flushes such streams at its sync interval, 2 minutes).
    Async,
}

/// Subject transform applied to incoming messages before they are stored (2.10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectTransformConfig {
    /// Source filter (empty = every subject).
    #[serde(default, deserialize_with = "null_default")]
    pub src: String,
    /// Destination template.
    #[serde(default, deserialize_with = "null_default")]
    pub dest: String,
}

/// Republish: every stored message whose subject matches `src` is published again, once
/// committed, on `dest` (a transform destination) with headers naming its origin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RePublish {
    /// Source filter (empty = every subject).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub src: String,
    /// Destination template.
    #[serde(default, deserialize_with = "null_default")]
    pub dest: String,
    /// Publish the headers only (with `Nats-Msg-Size`), not the payload.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub headers_only: bool,
}

/// Limits applied to consumers of the stream (2.10).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerLimits {
    /// Default and maximum inactive threshold (ns).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub inactive_threshold: i64,
    /// Default and maximum max_ack_pending.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_ack_pending: i64,
}

impl ConsumerLimits {
    /// The error for a consumer config above these limits (a limit of 0 or less is no
    /// limit; nor is a consumer's 0, "unset"), max_ack_pending checked first as
    /// nats-server does.
    pub fn refuse(&self, max_ack_pending: i64, inactive_threshold: i64) -> Result<(), ApiError> {
        if self.max_ack_pending > 0 && max_ack_pending > self.max_ack_pending {
            return Err(ApiError::consumer_max_ack_pending_excess(
                self.max_ack_pending,
            ));
        }
        if self.inactive_threshold > 0 && inactive_threshold > self.inactive_threshold {
            return Err(ApiError::consumer_inactive_threshold_excess(
                self.inactive_threshold,
            ));
        }
        Ok(())
    }

    /// 10069 when an update to these limits would leave consumers above them (nats-server
    /// names them; here in name order). `consumers` yields (name, max_ack_pending,
    /// inactive_threshold).
    pub fn check_existing(
        &self,
        consumers: impl IntoIterator<Item = (String, i64, i64)>,
    ) -> Result<(), ApiError> {
        let mut over: Vec<String> = consumers
            .into_iter()
            .filter(|(_, pending, inactive)| self.refuse(*pending, *inactive).is_err())
            .map(|(name, ..)| name)
            .collect();
        if over.is_empty() {
            return Ok(());
        }
        over.sort();
        Err(ApiError::stream_update(format!(
            "change to limits violates consumers: {}",
            over.join(", ")
        )))
    }
}

/// 10052 with `e` as the description.
fn cfg_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::stream_invalid_config(e)
}

/// A stream's configuration. Field order is nats-server's; absent JSON fields take Go's zero
/// values and [`StreamConfig::normalize`] turns them into the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    /// Stream name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Free text.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub description: String,
    /// Subjects captured by the stream (default `[name]`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subjects: Vec<String>,
    /// Retention policy.
    #[serde(default, deserialize_with = "null_default")]
    pub retention: RetentionPolicy,
    /// Maximum consumers (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_consumers: i64,
    /// Maximum messages (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs: i64,
    /// Maximum bytes (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_bytes: i64,
    /// Maximum age in nanoseconds (0 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_age: i64,
    /// Maximum messages per subject (-1 = unlimited).
    #[serde(default, deserialize_with = "null_default")]
    pub max_msgs_per_subject: i64,
    /// Maximum message size (-1 = unlimited).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub max_msg_size: i32,
    /// Discard policy.
    #[serde(default, deserialize_with = "null_default")]
    pub discard: DiscardPolicy,
    /// With discard new: refuse per subject at `max_msgs_per_subject`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub discard_new_per_subject: bool,
    /// Storage type.
    #[serde(default, deserialize_with = "null_default")]
    pub storage: StorageType,
    /// Replicas (1 without clustering).
    #[serde(default, deserialize_with = "null_default")]
    pub num_replicas: i64,
    /// Do not send PubAcks.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub no_ack: bool,
    /// Template owner (legacy).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub template_owner: String,
    /// Duplicate window in nanoseconds.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub duplicate_window: i64,
    /// Placement (accepted and kept; single server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<serde_json::Value>,
    /// Mirror (not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::sourcing::StreamSource>,
    /// Streams this one takes messages from.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub sources: Vec<crate::sourcing::StreamSource>,
    /// Republish stored messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    /// Answer `$JS.API.DIRECT.GET.<stream>`.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_direct: bool,
    /// Mirror answers direct gets of its origin.
    #[serde(default, deserialize_with = "null_default")]
    pub mirror_direct: bool,
    /// No writes or deletes.
    #[serde(default, deserialize_with = "null_default")]
    pub sealed: bool,
    /// Refuse MSG.DELETE.
    #[serde(default, deserialize_with = "null_default")]
    pub deny_delete: bool,
    /// Refuse PURGE.
    #[serde(default, deserialize_with = "null_default")]
    pub deny_purge: bool,
    /// Honour `Nats-Rollup`.
    #[serde(default, deserialize_with = "null_default")]
    pub allow_rollup_hdrs: bool,
    /// Compression (2.10; only `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// First sequence of a new stream (2.10).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub first_seq: u64,
    /// Subject transform (2.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransformConfig>,
    /// Consumer limits (2.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_limits: Option<ConsumerLimits>,
    /// Honour `Nats-TTL` headers (2.11); once on, an update cannot turn it off.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub allow_msg_ttl: bool,
    /// TTL in nanoseconds of the marker left when `max_age` or a TTL removes the last
    /// message of a subject (2.11; 0 = no markers).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub subject_delete_marker_ttl: i64,
    /// Every message is an increment of its subject's counter (2.12); fixed at creation.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub allow_msg_counter: bool,
    /// Take message schedules (`Nats-Schedule`, 2.12); once on, it stays on.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub allow_msg_schedules: bool,
    /// Take atomic batches (`Nats-Batch-Id`, 2.12).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub allow_atomic: bool,
    /// When writes reach the disk (2.12); `default` is not shown, as in nats-server.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub persist_mode: PersistMode,
    /// A create or update request's `pedantic` (2.11): accepted, not stored; Petrel makes
    /// nats-server's default (non-pedantic) adjustments.
    #[serde(default, deserialize_with = "null_default", skip_serializing)]
    pub pedantic: bool,
    /// User metadata (2.10).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub metadata: BTreeMap<String, String>,
}

/// Whether `name` may be used as a stream name (no `.`, `*`, `>`, whitespace, path separators).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\' | '\0') || c.is_whitespace())
}

impl StreamConfig {
    /// Applies nats-server's defaults and checks the config on its own (`checkStreamCfg`
    /// without the checks against other streams). Errors are the API errors nats-server uses.
    pub fn normalize(self) -> Result<StreamConfig, ApiError> {
        self.normalize_for(false)
    }

    /// [`StreamConfig::normalize`] on a server that runs clustered JetStream (`clustered`),
    /// where `num_replicas` up to 5 is taken; without clustering more than 1 is 10074.
    pub fn normalize_for(mut self, clustered: bool) -> Result<StreamConfig, ApiError> {
        self.pedantic = false;
        if self.name.contains(['/', '\\']) {
            return Err(ApiError::name_contains_path_separators());
        }
        if !is_valid_name(&self.name) {
            return Err(cfg_err(
                "stream name is required and can not contain '.', '*', '>'",
            ));
        }
        if self.name.len() > MAX_NAME_LEN {
            return Err(cfg_err(format!(
                "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
            )));
        }
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(cfg_err(format!(
                "stream description is too long, maximum allowed is {MAX_DESCRIPTION_LEN}"
            )));
        }
        let meta_len: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta_len > MAX_METADATA_LEN {
            return Err(cfg_err(format!(
                "stream metadata exceeds maximum size of {MAX_METADATA_LEN} bytes"
            )));
        }
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        if self.num_replicas < 0 {
            return Err(ApiError::replicas_negative());
        }
        if self.num_replicas > 5 {
            return Err(cfg_err("maximum replicas is 5"));
        }
        if self.num_replicas > 1 && !clustered {
            return Err(ApiError::replicas_not_supported());
        }
        // 0 and (nats-server 2.15) any negative but -1 mean "unlimited".
        for v in [
            &mut self.max_msgs,
            &mut self.max_msgs_per_subject,
            &mut self.max_bytes,
            &mut self.max_consumers,
        ] {
            if *v == 0 || *v < -1 {
                *v = -1;
            }
        }
        if self.max_msg_size == 0 || self.max_msg_size < -1 {
            self.max_msg_size = -1;
        }
        if self.first_seq > petrel_store::MAX_SEQ {
            // nats-server takes it and wraps its sequences past u64::MAX; Petrel keeps every
            // sequence below 2^63.
            return Err(cfg_err(format!(
                "first sequence can not be larger than {}",
                petrel_store::MAX_SEQ
            )));
        }
        if self.max_age < 0 {
            return Err(cfg_err("max age can not be negative"));
        }
        if self.max_age > 0 && self.max_age < 100_000_000 {
            return Err(cfg_err("max age needs to be >= 100ms"));
        }
        if self.duplicate_window == 0 && self.mirror.is_none() {
            self.duplicate_window = if self.max_age != 0 && self.max_age < DEFAULT_DUPLICATE_WINDOW
            {
                self.max_age
            } else {
                DEFAULT_DUPLICATE_WINDOW
            };
        }
        if self.duplicate_window < 0 {
            return Err(cfg_err("duplicates window can not be negative"));
        }
        if self.max_age != 0 && self.duplicate_window > self.max_age {
            return Err(cfg_err("duplicates window can not be larger then max age"));
        }
        if self.duplicate_window > 0 && self.duplicate_window < 100_000_000 {
            return Err(cfg_err("duplicates window needs to be >= 100ms"));
        }
        self.check_counter()?;
        if self.allow_atomic && self.mirror.is_some() {
            return Err(ApiError::mirror_with_atomic_publish());
        }
        self.check_persist_mode()?;
        self.check_schedules()?;
        self.check_markers()?;
        if self.deny_purge && self.allow_rollup_hdrs {
            return Err(cfg_err("roll-ups require the purge permission"));
        }
        if self.discard_new_per_subject {
            if self.discard != DiscardPolicy::New {
                return Err(cfg_err(
                    "discard new per subject requires discard new policy to be set",
                ));
            }
            if self.max_msgs_per_subject <= 0 {
                return Err(cfg_err(
                    "discard new per subject requires max msgs per subject > 0",
                ));
            }
        }
        crate::sourcing::config::check_mirror(&self)?;
        crate::sourcing::config::check(&self.sources)?;
        if let Some(t) = &self.subject_transform {
            SubjectTransform::new(&t.src, &t.dest).map_err(|e| match e {
                TransformError::Source(e) => ApiError::transform_invalid_source(e),
                TransformError::Destination(e) => ApiError::transform_invalid_destination(e),
            })?;
        }
        self.check_subjects()?;
        self.check_republish()?;
        Ok(self)
    }

    /// Counter streams (2.12): old-discarding limits retention without TTLs, not a mirror.
    fn check_counter(&self) -> Result<(), ApiError> {
        if !self.allow_msg_counter {
            return Ok(());
        }
        if self.discard == DiscardPolicy::New {
            return Err(cfg_err("counter stream cannot use discard new"));
        }
        if self.allow_msg_ttl {
            return Err(cfg_err("counter stream cannot use message TTLs"));
        }
        if self.allow_msg_schedules {
            return Err(cfg_err("counter stream cannot use message schedules"));
        }
        if self.retention != RetentionPolicy::Limits {
            return Err(cfg_err("counter stream can only use limits retention"));
        }
        if self.mirror.is_some() {
            return Err(ApiError::mirror_with_counters());
        }
        Ok(())
    }

    /// Message schedules (2.12): not with discard new, not on a mirror or a sourcing
    /// stream; they turn roll-ups on (a schedule is stored with `Nats-Rollup: sub`).
    fn check_schedules(&mut self) -> Result<(), ApiError> {
        if !self.allow_msg_schedules {
            return Ok(());
        }
        if self.discard == DiscardPolicy::New {
            return Err(cfg_err("message scheduling cannot use discard new"));
        }
        if self.mirror.is_some() {
            return Err(ApiError::mirror_with_schedules());
        }
        if !self.sources.is_empty() {
            return Err(ApiError::source_with_schedules());
        }
        if !self.allow_rollup_hdrs {
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        Ok(())
    }

    /// `persist_mode: async` (2.12): a single-replica file stream without atomic batches.
    fn check_persist_mode(&self) -> Result<(), ApiError> {
        if self.persist_mode != PersistMode::Async {
            return Ok(());
        }
        if self.storage != StorageType::File {
            return Err(cfg_err(
                "async persist mode is only supported on file storage",
            ));
        }
        if self.num_replicas > 1 {
            return Err(cfg_err(
                "async persist mode is not supported on replicated streams",
            ));
        }
        if self.allow_atomic {
            return Err(cfg_err(
                "async persist mode is not supported with atomic batch publish",
            ));
        }
        Ok(())
    }

    /// Subject delete markers (2.11): at least a second, not on a mirror; they turn on
    /// message TTLs and roll-ups (a marker is stored with `Nats-Rollup: sub`), as
    /// nats-server does outside pedantic mode.
    fn check_markers(&mut self) -> Result<(), ApiError> {
        if self.subject_delete_marker_ttl < 0 {
            return Err(cfg_err("subject delete marker TTL must not be negative"));
        }
        if self.subject_delete_marker_ttl == 0 {
            return Ok(());
        }
        if self.subject_delete_marker_ttl < 1_000_000_000 {
            return Err(cfg_err(
                "subject delete marker TTL must be at least 1 second",
            ));
        }
        if self.mirror.is_some() {
            return Err(cfg_err("subject delete markers forbidden on mirrors"));
        }
        self.allow_msg_ttl = true;
        if !self.allow_rollup_hdrs {
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }
        Ok(())
    }

    /// nats-server's republish rules: an empty source is every subject; `>` to `>` with a
    /// subject transform of the stream's only subject republishes the transformed subjects;
    /// the destination must not collide with the stream's subjects (a cycle) and must make
    /// a valid transform (outside the server's own subject spaces).
    fn check_republish(&mut self) -> Result<(), ApiError> {
        let Some(rp) = self.republish.as_mut() else {
            return Ok(());
        };
        if rp.src.is_empty() {
            rp.src = ">".into();
        }
        if let Some(t) = &self.subject_transform {
            if rp.src == ">"
                && rp.dest == ">"
                && self.subjects.len() == 1
                && t.src == self.subjects[0]
            {
                rp.src = t.dest.clone();
                rp.dest = t.dest.clone();
            }
        }
        let compiled = SubjectTransform::new(&rp.src, &rp.dest);
        // What the destination can produce ({{wildcard(n)}} tokens as `*`).
        let reach = compiled
            .as_ref()
            .map_or_else(|_| rp.dest.clone(), SubjectTransform::dest_pattern);
        let collide =
            |a: &str, b: &str| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes());
        if self.subjects.iter().any(|s| collide(&reach, s)) {
            return Err(cfg_err(
                "stream configuration for republish destination forms a cycle",
            ));
        }
        if let Some(space) = crate::transform::server_space(&reach) {
            // nats-server accepts these; a copy there could act as a request to the server.
            return Err(cfg_err(format!(
                "stream configuration for republish with transform from '{}' to '{}' not valid: the destination is inside the server's {space:?} subject space",
                rp.src, rp.dest
            )));
        }
        if compiled.is_err() {
            return Err(cfg_err(format!(
                "stream configuration for republish with transform from '{}' to '{}' not valid",
                rp.src, rp.dest
            )));
        }
        Ok(())
    }

    /// Subject defaults and checks in nats-server 2.15's order: default `[name]`; for each
    /// subject: valid, not a duplicate, `>` only with no_ack, the JetStream (`$JS.>`,
    /// `$JSC.>`, `$NRG.>` but `$JS.EVENT.>`) and system (`$SYS.>` but `$SYS.ACCOUNT.>`)
    /// spaces only with no_ack (a stream acking there would answer requests), and no overlap
    /// with the subjects after it.
    fn check_subjects(&mut self) -> Result<(), ApiError> {
        if self.subjects.is_empty() && self.mirror.is_none() {
            self.subjects.push(self.name.clone());
        }
        let collide =
            |a: &str, b: &str| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes());
        let subset = |a: &str, b: &str| petrel_subject::is_subset(a.as_bytes(), b.as_bytes());
        for (i, subj) in self.subjects.iter().enumerate() {
            if !petrel_subject::is_valid_subject(subj.as_bytes()) {
                return Err(cfg_err("invalid subject"));
            }
            if self.subjects[..i].contains(subj) {
                return Err(cfg_err("duplicate subjects detected"));
            }
            if subj == ">" && !self.no_ack {
                return Err(cfg_err("capturing all subjects requires no-ack to be true"));
            }
            if !self.no_ack {
                let js_space = ["$JS.>", "$JSC.>", "$NRG.>"]
                    .iter()
                    .any(|ns| collide(subj, ns));
                if js_space && !subset(subj, "$JS.EVENT.>") {
                    return Err(cfg_err(
                        "subjects that overlap with jetstream api require no-ack to be true",
                    ));
                }
                if collide(subj, "$SYS.>") && !subset(subj, "$SYS.ACCOUNT.>") {
                    return Err(cfg_err(
                        "subjects that overlap with system api require no-ack to be true",
                    ));
                }
            }
            for other in &self.subjects[i + 1..] {
                if collide(other, subj) {
                    return Err(cfg_err(format!("subject {subj:?} overlaps with {other:?}")));
                }
            }
        }
        Ok(())
    }

    /// The checks of an update against the current config (`configUpdateCheck`), after both
    /// were normalized. Returns the config to apply (sealing adjusts a few fields).
    pub fn check_update(mut self, old: &StreamConfig) -> Result<StreamConfig, ApiError> {
        if self.name != old.name {
            return Err(cfg_err("stream configuration name must match original"));
        }
        if self.max_consumers != old.max_consumers {
            return Err(cfg_err(
                "stream configuration update can not change MaxConsumers",
            ));
        }
        if self.storage != old.storage {
            return Err(cfg_err(
                "stream configuration update can not change storage type",
            ));
        }
        if self.retention != old.retention {
            return Err(cfg_err(
                "stream configuration update can not change retention policy",
            ));
        }
        if !self.sealed && old.sealed {
            return Err(cfg_err(
                "stream configuration update can not unseal a sealed stream",
            ));
        }
        if !self.deny_delete && old.deny_delete {
            return Err(cfg_err(
                "stream configuration update can not cancel deny message deletes",
            ));
        }
        if !self.deny_purge && old.deny_purge {
            return Err(cfg_err(
                "stream configuration update can not cancel deny purge",
            ));
        }
        if self.sealed {
            self.max_age = 0;
            self.discard = DiscardPolicy::New;
            self.deny_delete = true;
            self.deny_purge = true;
            self.allow_rollup_hdrs = false;
        }
        if self.persist_mode != old.persist_mode {
            return Err(cfg_err(
                "stream configuration update can not change persist mode",
            ));
        }
        if self.allow_msg_counter != old.allow_msg_counter {
            return Err(cfg_err(
                "stream configuration update can not change message counter setting",
            ));
        }
        if old.allow_msg_schedules && !self.allow_msg_schedules {
            return Err(cfg_err("message schedules can not be disabled"));
        }
        if old.allow_msg_ttl && !self.allow_msg_ttl {
            return Err(cfg_err("message TTL status can not be disabled"));
        }
        if self.mirror != old.mirror {
            return Err(ApiError {
                code: 400,
                err_code: 10055,
                description: "stream mirror configuration can not be updated".into(),
            });
        }
        // The first sequence only matters at creation.
        self.first_seq = old.first_seq;
        Ok(self)
    }

    /// Whether stored message bodies are compressed (`compression: s2`).
    pub fn compresses(&self) -> bool {
        self.compression == Some(Compression::S2)
    }

    /// The limits the store enforces for this config.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            max_msgs: self.max_msgs,
            max_bytes: self.max_bytes,
            max_age: Duration::from_nanos(u64::try_from(self.max_age).unwrap_or(0)),
            max_msgs_per_subject: self.max_msgs_per_subject,
            max_msg_size: self.max_msg_size,
            discard: match self.discard {
                DiscardPolicy::Old => Discard::Old,
                DiscardPolicy::New => Discard::New,
            },
            discard_new_per_subject: self.discard_new_per_subject,
        }
    }

    /// Whether any of this stream's subjects can match a subject of `other`.
    pub fn overlaps(&self, other: &StreamConfig) -> bool {
        self.subjects.iter().any(|a| {
            other
                .subjects
                .iter()
                .any(|b| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::encode;

    fn parse(s: &str) -> StreamConfig {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn serializes_like_2_9_10() {
        let cfg = parse(r#"{"name":"ORDERS","subjects":["orders.>"]}"#)
            .normalize()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&encode(&cfg)).unwrap(),
            r#"{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false}"#
        );
    }

    #[test]
    fn defaults() {
        let cfg = parse(r#"{"name":"S","max_age":1000000000,"subjects":null}"#)
            .normalize()
            .unwrap();
        assert_eq!(cfg.subjects, vec!["S".to_string()]);
        assert_eq!(cfg.duplicate_window, 1_000_000_000);
    }

    #[test]
    fn refusals() {
        let err = |s: &str| parse(s).normalize().unwrap_err();
        assert_eq!(err(r#"{"name":"A","num_replicas":3}"#).err_code, 10074);
        assert_eq!(err(r#"{"name":"a.b"}"#).err_code, 10052);
        assert_eq!(err(r#"{"name":"a/b"}"#).err_code, 10128);
        assert!(parse(r#"{"name":"A","compression":"s2"}"#)
            .normalize()
            .unwrap()
            .compresses());
        assert_eq!(
            err(r#"{"name":"A","subjects":["$JS.API.>"]}"#).description,
            "subjects that overlap with jetstream api require no-ack to be true"
        );
        assert_eq!(
            err(r#"{"name":"A","subjects":["a.*","a.b"]}"#).description,
            r#"subject "a.*" overlaps with "a.b""#
        );
        assert!(parse(r#"{"name":"A","compression":"none"}"#)
            .normalize()
            .is_ok());
        assert_eq!(
            parse(r#"{"name":"A","compression":""}"#).compression,
            Some(Compression::None)
        );
    }

    #[test]
    fn update_rules() {
        let old = parse(r#"{"name":"A"}"#).normalize().unwrap();
        let new = parse(r#"{"name":"A","retention":"workqueue"}"#)
            .normalize()
            .unwrap();
        assert_eq!(
            new.check_update(&old).unwrap_err().description,
            "stream configuration update can not change retention policy"
        );
    }
}
