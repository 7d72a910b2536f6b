//! Every error JetStream can report, in one place.
//!
//! [`ApiError`] is what goes on the wire (`{"code":..,"err_code":..,"description":..}`) in
//! `$JS.API` responses and error PubAcks. Its rows come from nats-server's `errors.json`: the
//! HTTP-like `code`, the JetStream `err_code` and the description (with `{placeholder}`s for the
//! templated ones). The table is append-only: a row is never renumbered or reused, because
//! clients branch on `err_code`. Add a row and a constructor together; the unit test below
//! checks that every `err_code` appears once.
//!
//! [`JetStreamError`] is the Rust-side error of [`crate::JetStream::start`].

use std::fmt::Display;

use serde::{Deserialize, Serialize};

/// One row of the error table: nats-server's `code`, `err_code` and description template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDef {
    /// HTTP-like status (400, 404, 500, 503).
    pub code: u16,
    /// JetStream error code clients switch on.
    pub err_code: u16,
    /// Description; `{err}`, `{seq}`, `{id}` are replaced by the constructor.
    pub description: &'static str,
}

macro_rules! table {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $err:literal, $desc:literal;)*) => {
        $( $(#[$doc])* pub const $name: ErrorDef = ErrorDef { code: $code, err_code: $err, description: $desc }; )*
        /// Every row, in the order they were added.
        pub const TABLE: &[ErrorDef] = &[$($name),*];
    };
}

table! {
    /// A publish would take the account past its `max_mem` / `max_file`.
    ACCOUNT_RESOURCES_EXCEEDED = 400, 10002, "resource limits exceeded for account";
    /// Generic bad request (malformed or contradictory request fields).
    BAD_REQUEST = 400, 10003, "bad request";
    /// Consumer creation failed (free text).
    CONSUMER_CREATE = 500, 10012, "{err}";
    /// Consumer name already in use.
    CONSUMER_NAME_EXIST = 400, 10013, "consumer name already in use";
    /// Consumer not found.
    CONSUMER_NOT_FOUND = 404, 10014, "consumer not found";
    /// Ephemeral consumer create with a durable name.
    CONSUMER_EPHEMERAL_WITH_DURABLE = 400, 10020, "consumer expected to be ephemeral but a durable name was set in request";
    /// Insufficient resources.
    INSUFFICIENT_RESOURCES = 503, 10023, "insufficient resources";
    /// Request body is not valid JSON (2.9.10 text, without the Go error).
    INVALID_JSON = 400, 10025, "invalid JSON";
    /// Maximum consumers reached.
    MAXIMUM_CONSUMERS = 400, 10026, "maximum consumers limit reached";
    /// Maximum streams reached.
    MAXIMUM_STREAMS = 400, 10027, "maximum number of streams reached";
    /// The account requires `max_bytes` on every stream.
    STREAM_MAX_BYTES_REQUIRED = 400, 10113, "account requires a stream config to have max bytes set";
    /// Memory storage would exceed `max_memory`.
    MEMORY_RESOURCES_EXCEEDED = 500, 10028, "insufficient memory resources available";
    /// No message found (MSG.GET).
    NO_MESSAGE_FOUND = 404, 10037, "no message found";
    /// JetStream not enabled for the account.
    NOT_ENABLED_FOR_ACCOUNT = 503, 10039, "JetStream not enabled for account";
    /// Sequence not found (MSG.DELETE).
    SEQUENCE_NOT_FOUND = 400, 10043, "sequence {seq} not found";
    /// File storage would exceed `max_file`.
    STORAGE_RESOURCES_EXCEEDED = 500, 10047, "insufficient storage resources available";
    /// Stream creation failed (free text).
    STREAM_CREATE = 500, 10049, "{err}";
    /// Stream deletion failed (free text).
    STREAM_DELETE = 500, 10050, "{err}";
    /// General stream failure (free text).
    STREAM_GENERAL = 500, 10051, "{err}";
    /// Stream configuration is invalid (free text).
    STREAM_INVALID_CONFIG = 500, 10052, "{err}";
    /// Message larger than `max_msg_size`.
    STREAM_MESSAGE_EXCEEDS_MAXIMUM = 400, 10054, "message size exceeds maximum allowed";
    /// Stream name in the subject differs from the one in the body.
    STREAM_MISMATCH = 400, 10056, "stream name in subject does not match request";
    /// Message delete failed (free text).
    STREAM_MSG_DELETE_FAILED = 500, 10057, "{err}";
    /// Create with a name in use and a different configuration.
    STREAM_NAME_EXIST = 400, 10058, "stream name already in use with a different configuration";
    /// Stream not found.
    STREAM_NOT_FOUND = 404, 10059, "stream not found";
    /// `Nats-Expected-Stream` does not match.
    STREAM_NOT_MATCH = 400, 10060, "expected stream does not match";
    /// Subjects overlap another stream's subjects.
    STREAM_SUBJECT_OVERLAP = 400, 10065, "subjects overlap with an existing stream";
    /// Stream update failed (free text).
    STREAM_UPDATE = 500, 10069, "{err}";
    /// `Nats-Expected-Last-Msg-Id` does not match.
    STREAM_WRONG_LAST_MSG_ID = 400, 10070, "wrong last msg ID: {id}";
    /// `Nats-Expected-Last-(Subject-)Sequence` does not match.
    STREAM_WRONG_LAST_SEQUENCE = 400, 10071, "wrong last sequence: {seq}";
    /// More than one replica without clustering.
    STREAM_REPLICAS_NOT_SUPPORTED = 500, 10074, "replicas > 1 not supported in non-clustered mode";
    /// JetStream not enabled.
    NOT_ENABLED = 503, 10076, "JetStream not enabled";
    /// Storing a message failed (store error text, e.g. "maximum messages exceeded").
    STREAM_STORE_FAILED = 503, 10077, "{err}";
    /// Pull consumer on a work queue without explicit ack (2.9.10 text).
    CONSUMER_PULL_REQUIRES_ACK = 400, 10084, "consumer in pull mode requires ack policy";
    /// Consumer filter not a subset of the stream subjects.
    CONSUMER_FILTER_NOT_SUBSET = 400, 10093, "consumer filter subject is not a valid subset of the interest subjects";
    /// Header block larger than 64 KiB.
    STREAM_HEADER_EXCEEDS_MAXIMUM = 400, 10097, "header size exceeds maximum allowed of 64k";
    /// Work queue: more than one unfiltered consumer.
    CONSUMER_WQ_MULTIPLE_UNFILTERED = 400, 10099, "multiple non-filtered consumers not allowed on workqueue stream";
    /// Work queue: overlapping filtered consumers.
    CONSUMER_WQ_NOT_UNIQUE = 400, 10100, "filtered consumer not unique on workqueue stream";
    /// Work queue: deliver policy must be all.
    CONSUMER_WQ_NOT_DELIVER_ALL = 400, 10101, "consumer must be deliver all on workqueue stream";
    /// Consumer already exists and is active.
    CONSUMER_EXISTING_ACTIVE = 400, 10105, "consumer already exists and is still active";
    /// Write or delete on a sealed stream.
    STREAM_SEALED = 400, 10109, "invalid operation on sealed stream";
    /// Purge failed (free text).
    STREAM_PURGE_FAILED = 500, 10110, "{err}";
    /// Rollup refused or failed (free text).
    STREAM_ROLLUP_FAILED = 500, 10111, "{err}";
    /// Stream name contains `/` or `\`.
    STREAM_NAME_CONTAINS_PATH_SEPARATORS = 400, 10128, "Stream name can not contain path separators";
    /// Consumer create filter in the subject differs from the config.
    CONSUMER_CREATE_FILTER_MISMATCH = 400, 10131, "Consumer create request did not match filtered subject from create subject";
    /// Negative replica count.
    REPLICAS_COUNT_NEGATIVE = 400, 10133, "replicas count cannot be negative";
    /// Durable create without a durable name in the subject.
    CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT = 400, 10016, "consumer expected to be durable but no durable name set in subject";
    /// Consumer name in the subject differs from the durable name.
    CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT = 400, 10017, "consumer name in subject does not match durable name in request";
    /// Durable create without a durable name in the request.
    CONSUMER_DURABLE_NAME_NOT_SET = 400, 10018, "consumer expected to be durable but a durable name was not set";
    /// Push deliver subject with wildcards.
    CONSUMER_DELIVER_TO_WILDCARDS = 400, 10079, "consumer deliver subject has wildcards";
    /// Push consumer with max_waiting.
    CONSUMER_PUSH_MAX_WAITING = 400, 10080, "consumer in push mode can not set max waiting";
    /// Deliver subject captured by the stream.
    CONSUMER_DELIVER_CYCLE = 400, 10081, "consumer deliver subject forms a cycle";
    /// max_ack_pending without acks.
    CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED = 400, 10082, "consumer requires ack policy for max ack pending";
    /// Idle heartbeat under 100 ms.
    CONSUMER_SMALL_HEARTBEAT = 400, 10083, "consumer idle heartbeat needs to be >= 100ms";
    /// Pull consumer with a rate limit.
    CONSUMER_PULL_WITH_RATE_LIMIT = 400, 10086, "consumer in pull mode can not have rate limit set";
    /// Negative max_waiting.
    CONSUMER_MAX_WAITING_NEGATIVE = 400, 10087, "consumer max waiting needs to be positive";
    /// Heartbeats on a pull consumer.
    CONSUMER_HB_REQUIRES_PUSH = 400, 10088, "consumer idle heartbeat requires a push based consumer";
    /// Flow control on a pull consumer.
    CONSUMER_FC_REQUIRES_PUSH = 400, 10089, "consumer flow control requires a push based consumer";
    /// Deliver policy and start position disagree (free text).
    CONSUMER_INVALID_POLICY = 400, 10094, "{err}";
    /// Unparsable sample_freq.
    CONSUMER_INVALID_SAMPLING = 400, 10095, "failed to parse consumer sampling configuration: {err}";
    /// Work queue consumer without explicit acks.
    CONSUMER_WQ_REQUIRES_EXPLICIT_ACK = 400, 10098, "workqueue stream requires explicit ack";
    /// Consumer name too long.
    CONSUMER_NAME_TOO_LONG = 400, 10102, "consumer name is too long, maximum allowed is {max}";
    /// Consumer name with '.', '*' or '>'.
    CONSUMER_BAD_DURABLE_NAME = 400, 10103, "durable name can not contain '.', '*', '>'";
    /// Consumer description too long.
    CONSUMER_DESCRIPTION_TOO_LONG = 400, 10107, "consumer description is too long, maximum allowed is {max}";
    /// Flow control without heartbeats.
    CONSUMER_FC_NEEDS_HEARTBEATS = 400, 10108, "consumer with flow control also needs heartbeats";
    /// Invalid deliver subject.
    CONSUMER_INVALID_DELIVER_SUBJECT = 400, 10112, "invalid push consumer deliver subject";
    /// Negative max_batch.
    CONSUMER_MAX_REQUEST_BATCH_NEGATIVE = 400, 10114, "consumer max request batch needs to be > 0";
    /// max_expires under 1 ms.
    CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL = 400, 10115, "consumer max request expires needs to be >= 1ms";
    /// Backoff longer than max_deliver allows.
    CONSUMER_MAX_DELIVER_BACKOFF = 400, 10116, "max deliver is required to be > length of backoff values";
    /// Consumer name with a path separator.
    CONSUMER_NAME_CONTAINS_PATH_SEPARATORS = 400, 10127, "Consumer name can not contain path separators";
    /// durable_name and name differ.
    CONSUMER_DURABLE_AND_NAME_MISMATCH = 400, 10132, "Consumer Durable and Name have to be equal if both are provided";
    /// Both filter_subject and filter_subjects (2.10).
    CONSUMER_DUPLICATE_FILTER_SUBJECTS = 400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified";
    /// Overlapping filter_subjects (2.10).
    CONSUMER_OVERLAPPING_FILTERS = 400, 10138, "consumer subject filters cannot overlap";
    /// Empty entry in filter_subjects (2.10).
    CONSUMER_EMPTY_FILTER = 400, 10139, "consumer filter in FilterSubjects cannot be empty";
    /// max_ack_pending above the stream's consumer_limits (2.10).
    CONSUMER_MAX_ACK_PENDING_EXCESS = 400, 10121, "consumer max ack pending exceeds system limit of {limit}";
    /// A priority policy without groups (2.11).
    CONSUMER_PRIORITY_GROUPS_REQUIRED = 400, 10159, "Setting PriorityPolicy requires at least one PriorityGroup to be set";
    /// UNPIN of a group the consumer does not have (2.11).
    CONSUMER_PRIORITY_GROUP_UNKNOWN = 400, 10160, "Provided priority group does not exist for this consumer";
    /// An empty priority group name (2.11).
    CONSUMER_PRIORITY_GROUP_EMPTY = 400, 10161, "Group name cannot be an empty string";
    /// An invalid priority group name (2.11).
    CONSUMER_PRIORITY_GROUP_INVALID = 400, 10162, "Valid priority group name must match A-Z, a-z, 0-9, -_/=)+ and may not exceed 16 characters";
    /// Priority groups on a push consumer (2.11).
    CONSUMER_PRIORITY_GROUPS_PUSH = 400, 10178, "priority groups can not be used with push consumers";
    /// Priority groups without a policy (2.12).
    CONSUMER_PRIORITY_GROUPS_WITHOUT_POLICY = 400, 10196, "consumer can not have priority groups when policy is none";
    /// Consumer create action: already exists.
    CONSUMER_ALREADY_EXISTS = 400, 10148, "consumer already exists";
    /// Consumer create action: does not exist.
    CONSUMER_DOES_NOT_EXIST = 400, 10149, "consumer does not exist";
    /// inactive_threshold above the stream's consumer_limits (2.10).
    CONSUMER_INACTIVE_THRESHOLD_EXCESS = 400, 10153, "consumer inactive threshold exceeds system limit of {limit}";
    /// Subject transform source invalid (2.10).
    STREAM_TRANSFORM_INVALID_SOURCE = 400, 10155, "stream transform source: {err}";
    /// Subject transform destination invalid (2.10).
    STREAM_TRANSFORM_INVALID_DESTINATION = 400, 10156, "stream transform: {err}";
    /// Ingest queue full (2.11): the publish was refused.
    STREAM_TOO_MANY_REQUESTS = 429, 10167, "too many requests";
    /// `Nats-Expected-Last-Subject-Sequence-Subject` without the sequence (2.11).
    STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_MISSING = 400, 10193, "missing sequence for expected last sequence per subject";
    /// A `Nats-TTL` header that is not a TTL (2.11).
    MESSAGE_TTL_INVALID = 400, 10165, "invalid per-message TTL";
    /// A `Nats-TTL` header on a stream without `allow_msg_ttl` (2.11).
    MESSAGE_TTL_DISABLED = 400, 10166, "per-message TTL is disabled";
    /// `Nats-Incr` on a stream without `allow_msg_counter` (2.12).
    COUNTER_DISABLED = 400, 10168, "message counters is disabled";
    /// A message to a counter stream without `Nats-Incr` (2.12).
    COUNTER_INCR_MISSING = 400, 10169, "message counter increment is missing";
    /// A counter increment with a payload (2.12).
    COUNTER_HAS_PAYLOAD = 400, 10170, "message counter has payload";
    /// A malformed `Nats-Incr`, or one beside a roll-up or an expectation (2.12).
    COUNTER_INCR_INVALID = 400, 10171, "message counter increment is invalid";
    /// A counter whose stored total or sources do not parse (2.12).
    COUNTER_BROKEN = 400, 10172, "message counter is broken";
    /// A mirror with `allow_msg_counter` (2.12).
    MIRROR_WITH_COUNTERS = 400, 10173, "stream mirrors can not also calculate counters";
    /// A published message with `Nats-Stream-Source` (2.12+).
    SOURCE_HEADER_NOT_ALLOWED = 400, 10227, "message stream source header is not allowed";
    /// An atomic batch message on a stream without `allow_atomic` (2.12).
    ATOMIC_DISABLED = 400, 10174, "atomic publish is disabled";
    /// An atomic batch message without `Nats-Batch-Sequence` (2.12).
    ATOMIC_MISSING_SEQ = 400, 10175, "atomic publish sequence is missing";
    /// A gap, a timeout or a lost batch (2.12).
    ATOMIC_INCOMPLETE = 400, 10176, "atomic publish batch is incomplete";
    /// A header an atomic batch cannot honour (2.12).
    ATOMIC_UNSUPPORTED_HEADER = 400, 10177, "atomic publish unsupported header used: {header}";
    /// A batch id longer than 64 (2.12).
    ATOMIC_INVALID_ID = 400, 10179, "atomic publish batch ID is invalid";
    /// A mirror with `allow_atomic` (2.12).
    MIRROR_WITH_ATOMIC = 400, 10198, "stream mirrors can not also use atomic publishing";
    /// More messages than a batch may hold (2.12).
    ATOMIC_TOO_LARGE = 400, 10199, "atomic publish batch is too large: {size}";
    /// A `Nats-Batch-Commit` other than `1` or `eob` (2.12).
    ATOMIC_INVALID_COMMIT = 400, 10200, "atomic publish batch commit is invalid";
    /// A message id seen before, in the batch or the stream (2.12).
    ATOMIC_DUPLICATE_MSG_ID = 400, 10201, "atomic publish batch contains duplicate message id";
    /// Too many batches open on the stream (2.12).
    ATOMIC_TOO_MANY_INFLIGHT = 429, 10210, "atomic publish too many inflight";
    /// An expectation a batch cannot check after its first message (2.12).
    STREAM_WRONG_LAST_SEQUENCE_CONSTANT = 400, 10164, "wrong last sequence";
    /// A mirror with `allow_msg_schedules` (2.12).
    MIRROR_WITH_SCHEDULES = 400, 10186, "stream mirrors can not also schedule messages";
    /// A sourcing stream with `allow_msg_schedules` (2.12).
    SOURCE_WITH_SCHEDULES = 400, 10187, "stream source can not also schedule messages";
    /// A schedule on a stream without `allow_msg_schedules` (2.12).
    SCHEDULES_DISABLED = 400, 10188, "message schedules is disabled";
    /// A `Nats-Schedule` that does not parse (2.12).
    SCHEDULE_PATTERN_INVALID = 400, 10189, "message schedules pattern is invalid";
    /// A missing, wildcard, own or foreign `Nats-Schedule-Target` (2.12).
    SCHEDULE_TARGET_INVALID = 400, 10190, "message schedules target is invalid";
    /// A `Nats-Schedule-TTL` that is not a TTL (2.12).
    SCHEDULE_TTL_INVALID = 400, 10191, "message schedules invalid per-message TTL";
    /// A roll-up other than `sub` on a schedule (2.12).
    SCHEDULE_ROLLUP_INVALID = 400, 10192, "message schedules invalid rollup";
    /// A bad `Nats-Schedule-Source` (2.12).
    SCHEDULE_SOURCE_INVALID = 400, 10203, "message schedules source is invalid";
    /// A `Nats-Scheduler` / `Nats-Schedule-Next` a client may not send (2.12).
    SCHEDULE_SCHEDULER_INVALID = 400, 10212, "message schedules invalid scheduler";
    /// An empty or unknown `Nats-Schedule-Time-Zone` (2.12).
    SCHEDULE_TIME_ZONE_INVALID = 400, 10223, "message schedules time zone is invalid";
    /// `Nats-Required-Api-Level` above the server's (2.11).
    REQUIRED_API_LEVEL = 412, 10185, "JetStream minimum api level required";
    /// Negative ack_wait (2.12+).
    CONSUMER_ACK_WAIT_NEGATIVE = 400, 10183, "consumer ack wait needs to be positive";
    /// Negative backoff entry (2.12+).
    CONSUMER_BACKOFF_NEGATIVE = 400, 10184, "consumer backoff needs to be positive";
    /// Snapshot deliver subject missing or not a literal subject.
    SNAPSHOT_DELIVER_SUBJECT_INVALID = 400, 10015, "deliver subject not valid";
    /// Restore failed (free text).
    STREAM_RESTORE = 500, 10062, "restore failed: {err}";
    /// Snapshot failed (free text).
    STREAM_SNAPSHOT = 500, 10064, "snapshot failed: {err}";
    /// Restore of a stream that exists.
    STREAM_NAME_EXIST_RESTORE_FAILED = 400, 10130, "stream name already in use, cannot restore";
    /// Placement found too few peers (free text).
    CLUSTER_NO_PEERS = 400, 10005, "{err}";
    /// No meta or stream leader to answer.
    CLUSTER_NOT_AVAILABLE = 503, 10008, "JetStream system temporarily unavailable";
    /// A clustered-only request on a server without clustering.
    CLUSTER_REQUIRED = 503, 10010, "JetStream clustering support required";
    /// The named peer is not in the group.
    CLUSTER_PEER_NOT_MEMBER = 400, 10040, "peer not a member";
    /// A removed peer has no replacement.
    PEER_REMAP = 503, 10075, "peer remap failed";
}

/// A JetStream API error as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{description} (code {code}, err_code {err_code})")]
pub struct ApiError {
    /// HTTP-like status.
    pub code: u16,
    /// JetStream error code.
    pub err_code: u16,
    /// Human-readable text.
    pub description: String,
}

impl From<ErrorDef> for ApiError {
    fn from(d: ErrorDef) -> Self {
        ApiError {
            code: d.code,
            err_code: d.err_code,
            description: d.description.to_string(),
        }
    }
}

impl ErrorDef {
    /// The row with `placeholder` replaced by `value`.
    fn with(self, placeholder: &str, value: impl Display) -> ApiError {
        ApiError {
            code: self.code,
            err_code: self.err_code,
            description: self.description.replace(placeholder, &value.to_string()),
        }
    }
}

impl ApiError {
    /// 10015 deliver subject not valid (snapshots).
    pub fn snapshot_deliver_subject_invalid() -> Self {
        SNAPSHOT_DELIVER_SUBJECT_INVALID.into()
    }
    /// 10062 restore failed.
    pub fn stream_restore(err: impl Display) -> Self {
        STREAM_RESTORE.with("{err}", err)
    }
    /// 10064 snapshot failed.
    pub fn stream_snapshot(err: impl Display) -> Self {
        STREAM_SNAPSHOT.with("{err}", err)
    }
    /// 10130 stream name already in use, cannot restore.
    pub fn stream_name_exist_restore_failed() -> Self {
        STREAM_NAME_EXIST_RESTORE_FAILED.into()
    }
    /// 10012: {err}
    pub fn consumer_create(err: impl Display) -> Self {
        CONSUMER_CREATE.with("{err}", err)
    }
    /// 10013: consumer name already in use
    pub fn consumer_name_exist() -> Self {
        CONSUMER_NAME_EXIST.into()
    }
    /// 10014: consumer not found
    pub fn consumer_not_found() -> Self {
        CONSUMER_NOT_FOUND.into()
    }
    /// 10016: consumer expected to be durable but no durable name set in subject
    pub fn consumer_durable_name_not_in_subject() -> Self {
        CONSUMER_DURABLE_NAME_NOT_IN_SUBJECT.into()
    }
    /// 10017: consumer name in subject does not match durable name in request
    pub fn consumer_durable_name_not_match() -> Self {
        CONSUMER_DURABLE_NAME_NOT_MATCH_SUBJECT.into()
    }
    /// 10018: consumer expected to be durable but a durable name was not set
    pub fn consumer_durable_name_not_set() -> Self {
        CONSUMER_DURABLE_NAME_NOT_SET.into()
    }
    /// 10020: consumer expected to be ephemeral but a durable name was set in request
    pub fn consumer_ephemeral_with_durable() -> Self {
        CONSUMER_EPHEMERAL_WITH_DURABLE.into()
    }
    /// 10026: maximum consumers limit reached
    pub fn maximum_consumers() -> Self {
        MAXIMUM_CONSUMERS.into()
    }
    /// 10002: resource limits exceeded for account
    pub fn account_resources_exceeded() -> Self {
        ACCOUNT_RESOURCES_EXCEEDED.into()
    }
    /// 10027: maximum number of streams reached
    pub fn maximum_streams() -> Self {
        MAXIMUM_STREAMS.into()
    }
    /// 10113: account requires a stream config to have max bytes set
    pub fn stream_max_bytes_required() -> Self {
        STREAM_MAX_BYTES_REQUIRED.into()
    }
    /// 10079: consumer deliver subject has wildcards
    pub fn consumer_deliver_to_wildcards() -> Self {
        CONSUMER_DELIVER_TO_WILDCARDS.into()
    }
    /// 10080: consumer in push mode can not set max waiting
    pub fn consumer_push_max_waiting() -> Self {
        CONSUMER_PUSH_MAX_WAITING.into()
    }
    /// 10081: consumer deliver subject forms a cycle
    pub fn consumer_deliver_cycle() -> Self {
        CONSUMER_DELIVER_CYCLE.into()
    }
    /// 10082: consumer requires ack policy for max ack pending
    pub fn consumer_max_pending_requires_ack() -> Self {
        CONSUMER_MAX_PENDING_ACK_POLICY_REQUIRED.into()
    }
    /// 10083: consumer idle heartbeat needs to be >= 100ms
    pub fn consumer_small_heartbeat() -> Self {
        CONSUMER_SMALL_HEARTBEAT.into()
    }
    /// 10084: consumer in pull mode requires ack policy
    pub fn consumer_pull_requires_ack() -> Self {
        CONSUMER_PULL_REQUIRES_ACK.into()
    }
    /// 10086: consumer in pull mode can not have rate limit set
    pub fn consumer_pull_with_rate_limit() -> Self {
        CONSUMER_PULL_WITH_RATE_LIMIT.into()
    }
    /// 10087: consumer max waiting needs to be positive
    pub fn consumer_max_waiting_negative() -> Self {
        CONSUMER_MAX_WAITING_NEGATIVE.into()
    }
    /// 10088: consumer idle heartbeat requires a push based consumer
    pub fn consumer_hb_requires_push() -> Self {
        CONSUMER_HB_REQUIRES_PUSH.into()
    }
    /// 10089: consumer flow control requires a push based consumer
    pub fn consumer_fc_requires_push() -> Self {
        CONSUMER_FC_REQUIRES_PUSH.into()
    }
    /// 10094: {err}
    pub fn consumer_invalid_policy(err: impl Display) -> Self {
        CONSUMER_INVALID_POLICY.with("{err}", err)
    }
    /// 10095: failed to parse consumer sampling configuration: {err}
    pub fn consumer_invalid_sampling(err: impl Display) -> Self {
        CONSUMER_INVALID_SAMPLING.with("{err}", err)
    }
    /// 10098: workqueue stream requires explicit ack
    pub fn consumer_wq_requires_explicit_ack() -> Self {
        CONSUMER_WQ_REQUIRES_EXPLICIT_ACK.into()
    }
    /// 10099: multiple non-filtered consumers not allowed on workqueue stream
    pub fn consumer_wq_multiple_unfiltered() -> Self {
        CONSUMER_WQ_MULTIPLE_UNFILTERED.into()
    }
    /// 10100: filtered consumer not unique on workqueue stream
    pub fn consumer_wq_not_unique() -> Self {
        CONSUMER_WQ_NOT_UNIQUE.into()
    }
    /// 10101: consumer must be deliver all on workqueue stream
    pub fn consumer_wq_not_deliver_all() -> Self {
        CONSUMER_WQ_NOT_DELIVER_ALL.into()
    }
    /// 10102: consumer name is too long, maximum allowed is {max}
    pub fn consumer_name_too_long(max: usize) -> Self {
        CONSUMER_NAME_TOO_LONG.with("{max}", max)
    }
    /// 10103: durable name can not contain '.', '*', '>'
    pub fn consumer_bad_durable_name() -> Self {
        CONSUMER_BAD_DURABLE_NAME.into()
    }
    /// 10107: consumer description is too long, maximum allowed is {max}
    pub fn consumer_description_too_long(max: usize) -> Self {
        CONSUMER_DESCRIPTION_TOO_LONG.with("{max}", max)
    }
    /// 10108: consumer with flow control also needs heartbeats
    pub fn consumer_fc_needs_heartbeats() -> Self {
        CONSUMER_FC_NEEDS_HEARTBEATS.into()
    }
    /// 10112: invalid push consumer deliver subject
    pub fn consumer_invalid_deliver_subject() -> Self {
        CONSUMER_INVALID_DELIVER_SUBJECT.into()
    }
    /// 10114: consumer max request batch needs to be > 0
    pub fn consumer_max_request_batch_negative() -> Self {
        CONSUMER_MAX_REQUEST_BATCH_NEGATIVE.into()
    }
    /// 10115: consumer max request expires needs to be >= 1ms
    pub fn consumer_max_request_expires_too_small() -> Self {
        CONSUMER_MAX_REQUEST_EXPIRES_TOO_SMALL.into()
    }
    /// 10116: max deliver is required to be > length of backoff values
    pub fn consumer_backoff_max_deliver() -> Self {
        CONSUMER_MAX_DELIVER_BACKOFF.into()
    }
    /// 10127: Consumer name can not contain path separators
    pub fn consumer_name_contains_path_separators() -> Self {
        CONSUMER_NAME_CONTAINS_PATH_SEPARATORS.into()
    }
    /// 10131: Consumer create request did not match filtered subject from create subject
    pub fn consumer_create_filter_mismatch() -> Self {
        CONSUMER_CREATE_FILTER_MISMATCH.into()
    }
    /// 10132: Consumer Durable and Name have to be equal if both are provided
    pub fn consumer_durable_name_mismatch() -> Self {
        CONSUMER_DURABLE_AND_NAME_MISMATCH.into()
    }
    /// 10136: consumer cannot have both FilterSubject and FilterSubjects specified
    pub fn consumer_duplicate_filter_subjects() -> Self {
        CONSUMER_DUPLICATE_FILTER_SUBJECTS.into()
    }
    /// 10138: consumer subject filters cannot overlap
    pub fn consumer_overlapping_filters() -> Self {
        CONSUMER_OVERLAPPING_FILTERS.into()
    }
    /// 10139: consumer filter in FilterSubjects cannot be empty
    pub fn consumer_empty_filter() -> Self {
        CONSUMER_EMPTY_FILTER.into()
    }
    /// 10148: consumer already exists
    pub fn consumer_already_exists() -> Self {
        CONSUMER_ALREADY_EXISTS.into()
    }
    /// 10149: consumer does not exist
    pub fn consumer_does_not_exist() -> Self {
        CONSUMER_DOES_NOT_EXIST.into()
    }
    /// 10003 bad request.
    pub fn bad_request() -> Self {
        BAD_REQUEST.into()
    }
    /// 10023 insufficient resources.
    pub fn insufficient_resources() -> Self {
        INSUFFICIENT_RESOURCES.into()
    }
    /// 10025 invalid JSON.
    pub fn invalid_json() -> Self {
        INVALID_JSON.into()
    }
    /// 10028 insufficient memory resources.
    pub fn memory_resources_exceeded() -> Self {
        MEMORY_RESOURCES_EXCEEDED.into()
    }
    /// 10037 no message found.
    pub fn no_message_found() -> Self {
        NO_MESSAGE_FOUND.into()
    }
    /// 10043 sequence `<seq>` not found.
    pub fn sequence_not_found(seq: u64) -> Self {
        SEQUENCE_NOT_FOUND.with("{seq}", seq)
    }
    /// 10047 insufficient storage resources.
    pub fn storage_resources_exceeded() -> Self {
        STORAGE_RESOURCES_EXCEEDED.into()
    }
    /// 10049 stream creation failed.
    pub fn stream_create(err: impl Display) -> Self {
        STREAM_CREATE.with("{err}", err)
    }
    /// 10050 stream deletion failed.
    pub fn stream_delete(err: impl Display) -> Self {
        STREAM_DELETE.with("{err}", err)
    }
    /// 10051 general stream failure.
    pub fn stream_general(err: impl Display) -> Self {
        STREAM_GENERAL.with("{err}", err)
    }
    /// 10052 invalid stream configuration.
    pub fn stream_invalid_config(err: impl Display) -> Self {
        STREAM_INVALID_CONFIG.with("{err}", err)
    }
    /// 10054 message size exceeds maximum allowed.
    pub fn message_exceeds_maximum() -> Self {
        STREAM_MESSAGE_EXCEEDS_MAXIMUM.into()
    }
    /// 10056 stream name in subject does not match request.
    pub fn stream_mismatch() -> Self {
        STREAM_MISMATCH.into()
    }
    /// 10057 message delete failed.
    pub fn msg_delete_failed(err: impl Display) -> Self {
        STREAM_MSG_DELETE_FAILED.with("{err}", err)
    }
    /// 10058 stream name already in use with a different configuration.
    pub fn stream_name_exist() -> Self {
        STREAM_NAME_EXIST.into()
    }
    /// 10059 stream not found.
    pub fn stream_not_found() -> Self {
        STREAM_NOT_FOUND.into()
    }
    /// 10060 expected stream does not match.
    pub fn stream_not_match() -> Self {
        STREAM_NOT_MATCH.into()
    }
    /// 10065 as a clustered nats-server words it (no stream named).
    pub fn subject_overlap_clustered() -> Self {
        STREAM_SUBJECT_OVERLAP.into()
    }
    /// 10065 subjects overlap with an existing stream; names the other stream so the user
    /// sees what to change (code and err_code as nats-server).
    pub fn subject_overlap(other: &str) -> Self {
        let mut e: ApiError = STREAM_SUBJECT_OVERLAP.into();
        e.description = format!("{} ({other})", e.description);
        e
    }
    /// 10069 stream update failed.
    pub fn stream_update(err: impl Display) -> Self {
        STREAM_UPDATE.with("{err}", err)
    }
    /// 10070 wrong last msg ID: `<id>`.
    pub fn wrong_last_msg_id(id: &str) -> Self {
        STREAM_WRONG_LAST_MSG_ID.with("{id}", id)
    }
    /// 10121 consumer max ack pending exceeds system limit of `<limit>`.
    pub fn consumer_max_ack_pending_excess(limit: i64) -> Self {
        CONSUMER_MAX_ACK_PENDING_EXCESS.with("{limit}", limit)
    }
    /// 10153 consumer inactive threshold exceeds system limit of `<limit>` (Go duration).
    pub fn consumer_inactive_threshold_excess(limit_ns: i64) -> Self {
        CONSUMER_INACTIVE_THRESHOLD_EXCESS.with("{limit}", crate::time::go_duration(limit_ns))
    }
    /// 10159 a priority policy needs groups.
    pub fn priority_groups_required() -> Self {
        CONSUMER_PRIORITY_GROUPS_REQUIRED.into()
    }
    /// 10160 unknown priority group.
    pub fn priority_group_unknown() -> Self {
        CONSUMER_PRIORITY_GROUP_UNKNOWN.into()
    }
    /// 10025 invalid JSON, saying why (`invalid JSON: <why>`).
    pub fn invalid_json_because(why: &str) -> Self {
        ApiError {
            description: format!("invalid JSON: {why}"),
            ..INVALID_JSON.into()
        }
    }
    /// 10161 empty priority group name.
    pub fn priority_group_empty() -> Self {
        CONSUMER_PRIORITY_GROUP_EMPTY.into()
    }
    /// 10162 invalid priority group name.
    pub fn priority_group_invalid() -> Self {
        CONSUMER_PRIORITY_GROUP_INVALID.into()
    }
    /// 10178 priority groups on a push consumer.
    pub fn priority_groups_push() -> Self {
        CONSUMER_PRIORITY_GROUPS_PUSH.into()
    }
    /// 10196 priority groups without a policy.
    pub fn priority_groups_without_policy() -> Self {
        CONSUMER_PRIORITY_GROUPS_WITHOUT_POLICY.into()
    }
    /// 10155 stream transform source: `<err>`.
    pub fn transform_invalid_source(err: impl Display) -> Self {
        STREAM_TRANSFORM_INVALID_SOURCE.with("{err}", err)
    }
    /// 10156 stream transform: `<err>`.
    pub fn transform_invalid_destination(err: impl Display) -> Self {
        STREAM_TRANSFORM_INVALID_DESTINATION.with("{err}", err)
    }
    /// 10183 consumer ack wait needs to be positive.
    pub fn consumer_ack_wait_negative() -> Self {
        CONSUMER_ACK_WAIT_NEGATIVE.into()
    }
    /// 10184 consumer backoff needs to be positive.
    pub fn consumer_backoff_negative() -> Self {
        CONSUMER_BACKOFF_NEGATIVE.into()
    }
    /// 10167 too many requests (ingest queue full).
    pub fn too_many_requests() -> Self {
        STREAM_TOO_MANY_REQUESTS.into()
    }
    /// 10165 invalid per-message TTL.
    pub fn message_ttl_invalid() -> Self {
        MESSAGE_TTL_INVALID.into()
    }
    /// 10166 per-message TTL is disabled.
    pub fn message_ttl_disabled() -> Self {
        MESSAGE_TTL_DISABLED.into()
    }
    /// 10168 message counters is disabled.
    pub fn counter_disabled() -> Self {
        COUNTER_DISABLED.into()
    }
    /// 10169 message counter increment is missing.
    pub fn counter_incr_missing() -> Self {
        COUNTER_INCR_MISSING.into()
    }
    /// 10170 message counter has payload.
    pub fn counter_has_payload() -> Self {
        COUNTER_HAS_PAYLOAD.into()
    }
    /// 10171 message counter increment is invalid.
    pub fn counter_incr_invalid() -> Self {
        COUNTER_INCR_INVALID.into()
    }
    /// 10172 message counter is broken.
    pub fn counter_broken() -> Self {
        COUNTER_BROKEN.into()
    }
    /// 10173 stream mirrors can not also calculate counters.
    pub fn mirror_with_counters() -> Self {
        MIRROR_WITH_COUNTERS.into()
    }
    /// 10227 message stream source header is not allowed.
    pub fn source_header_not_allowed() -> Self {
        SOURCE_HEADER_NOT_ALLOWED.into()
    }
    /// 10174 atomic publish is disabled.
    pub fn atomic_disabled() -> Self {
        ATOMIC_DISABLED.into()
    }
    /// 10175 atomic publish sequence is missing.
    pub fn atomic_missing_seq() -> Self {
        ATOMIC_MISSING_SEQ.into()
    }
    /// 10176 atomic publish batch is incomplete.
    pub fn atomic_incomplete() -> Self {
        ATOMIC_INCOMPLETE.into()
    }
    /// 10177 atomic publish unsupported header used: `<header>`.
    pub fn atomic_unsupported_header(header: &str) -> Self {
        ATOMIC_UNSUPPORTED_HEADER.with("{header}", header)
    }
    /// 10179 atomic publish batch ID is invalid.
    pub fn atomic_invalid_id() -> Self {
        ATOMIC_INVALID_ID.into()
    }
    /// 10198 stream mirrors can not also use atomic publishing.
    pub fn mirror_with_atomic_publish() -> Self {
        MIRROR_WITH_ATOMIC.into()
    }
    /// 10199 atomic publish batch is too large: `<size>`.
    pub fn atomic_too_large(size: u64) -> Self {
        ATOMIC_TOO_LARGE.with("{size}", size)
    }
    /// 10200 atomic publish batch commit is invalid.
    pub fn atomic_invalid_commit() -> Self {
        ATOMIC_INVALID_COMMIT.into()
    }
    /// 10201 atomic publish batch contains duplicate message id.
    pub fn atomic_duplicate_msg_id() -> Self {
        ATOMIC_DUPLICATE_MSG_ID.into()
    }
    /// 10210 atomic publish too many inflight.
    pub fn atomic_too_many_inflight() -> Self {
        ATOMIC_TOO_MANY_INFLIGHT.into()
    }
    /// 10164 wrong last sequence (no sequence: an expectation inside an atomic batch).
    pub fn wrong_last_sequence_constant() -> Self {
        STREAM_WRONG_LAST_SEQUENCE_CONSTANT.into()
    }
    /// 10186 stream mirrors can not also schedule messages.
    pub fn mirror_with_schedules() -> Self {
        MIRROR_WITH_SCHEDULES.into()
    }
    /// 10187 stream source can not also schedule messages.
    pub fn source_with_schedules() -> Self {
        SOURCE_WITH_SCHEDULES.into()
    }
    /// 10188 message schedules is disabled.
    pub fn schedules_disabled() -> Self {
        SCHEDULES_DISABLED.into()
    }
    /// 10189 message schedules pattern is invalid.
    pub fn schedule_pattern_invalid() -> Self {
        SCHEDULE_PATTERN_INVALID.into()
    }
    /// 10190 message schedules target is invalid.
    pub fn schedule_target_invalid() -> Self {
        SCHEDULE_TARGET_INVALID.into()
    }
    /// 10191 message schedules invalid per-message TTL.
    pub fn schedule_ttl_invalid() -> Self {
        SCHEDULE_TTL_INVALID.into()
    }
    /// 10192 message schedules invalid rollup.
    pub fn schedule_rollup_invalid() -> Self {
        SCHEDULE_ROLLUP_INVALID.into()
    }
    /// 10203 message schedules source is invalid.
    pub fn schedule_source_invalid() -> Self {
        SCHEDULE_SOURCE_INVALID.into()
    }
    /// 10212 message schedules invalid scheduler.
    pub fn schedule_scheduler_invalid() -> Self {
        SCHEDULE_SCHEDULER_INVALID.into()
    }
    /// 10223 message schedules time zone is invalid.
    pub fn schedule_time_zone_invalid() -> Self {
        SCHEDULE_TIME_ZONE_INVALID.into()
    }
    /// 10185 JetStream minimum api level required.
    pub fn required_api_level() -> Self {
        REQUIRED_API_LEVEL.into()
    }
    /// 10193 missing sequence for expected last sequence per subject.
    pub fn expected_last_seq_per_subject_missing() -> Self {
        STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_MISSING.into()
    }
    /// 10071 wrong last sequence: `<seq>`.
    pub fn wrong_last_sequence(seq: u64) -> Self {
        STREAM_WRONG_LAST_SEQUENCE.with("{seq}", seq)
    }
    /// 10074 replicas > 1 not supported in non-clustered mode.
    pub fn replicas_not_supported() -> Self {
        STREAM_REPLICAS_NOT_SUPPORTED.into()
    }
    /// 10005 with `why` (e.g. "no suitable peers for placement").
    pub fn cluster_no_peers(why: impl Display) -> Self {
        CLUSTER_NO_PEERS.with("{err}", why)
    }
    /// 10008 JetStream system temporarily unavailable.
    pub fn cluster_not_available() -> Self {
        CLUSTER_NOT_AVAILABLE.into()
    }
    /// 10010 JetStream clustering support required.
    pub fn cluster_required() -> Self {
        CLUSTER_REQUIRED.into()
    }
    /// 10040 peer not a member.
    pub fn cluster_peer_not_member() -> Self {
        CLUSTER_PEER_NOT_MEMBER.into()
    }
    /// 10075 peer remap failed.
    pub fn peer_remap() -> Self {
        PEER_REMAP.into()
    }
    /// 10039 JetStream not enabled for account.
    pub fn not_enabled_for_account() -> Self {
        NOT_ENABLED_FOR_ACCOUNT.into()
    }
    /// 10076 JetStream not enabled.
    pub fn not_enabled() -> Self {
        NOT_ENABLED.into()
    }
    /// 10077 store failure with the store's text.
    pub fn store_failed(err: impl Display) -> Self {
        STREAM_STORE_FAILED.with("{err}", err)
    }
    /// 10097 header size exceeds maximum allowed of 64k.
    pub fn header_exceeds_maximum() -> Self {
        STREAM_HEADER_EXCEEDS_MAXIMUM.into()
    }
    /// 10109 invalid operation on sealed stream.
    pub fn stream_sealed() -> Self {
        STREAM_SEALED.into()
    }
    /// 10110 purge failed.
    pub fn purge_failed(err: impl Display) -> Self {
        STREAM_PURGE_FAILED.with("{err}", err)
    }
    /// 10111 rollup failed (e.g. "rollup not permitted").
    pub fn rollup_failed(err: impl Display) -> Self {
        STREAM_ROLLUP_FAILED.with("{err}", err)
    }
    /// 10128 stream name can not contain path separators.
    pub fn name_contains_path_separators() -> Self {
        STREAM_NAME_CONTAINS_PATH_SEPARATORS.into()
    }
    /// 10133 replicas count cannot be negative.
    pub fn replicas_negative() -> Self {
        REPLICAS_COUNT_NEGATIVE.into()
    }
}

/// Why [`crate::JetStream::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JetStreamError {
    /// The store directory could not be created or read.
    #[error("jetstream store directory {path}: {cause}")]
    StoreDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// `start` was called outside a tokio runtime.
    #[error("JetStream::start must run inside a tokio runtime")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn err_codes_are_unique() {
        let mut seen = HashSet::new();
        for d in TABLE {
            assert!(seen.insert(d.err_code), "duplicate err_code {}", d.err_code);
            assert!(matches!(d.code, 400 | 404 | 412 | 429 | 500 | 503), "{d:?}");
        }
    }

    #[test]
    fn templated_rows() {
        let e = ApiError::wrong_last_sequence(2);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"code":400,"err_code":10071,"description":"wrong last sequence: 2"}"#
        );
        assert_eq!(
            ApiError::sequence_not_found(7).description,
            "sequence 7 not found"
        );
        assert_eq!(
            ApiError::subject_overlap("ORDERS").description,
            "subjects overlap with an existing stream (ORDERS)"
        );
    }
}
