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
    /// Consumer create action: already exists.
    CONSUMER_ALREADY_EXISTS = 400, 10148, "consumer already exists";
    /// Consumer create action: does not exist.
    CONSUMER_DOES_NOT_EXIST = 400, 10149, "consumer does not exist";
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
    /// 10071 wrong last sequence: `<seq>`.
    pub fn wrong_last_sequence(seq: u64) -> Self {
        STREAM_WRONG_LAST_SEQUENCE.with("{seq}", seq)
    }
    /// 10074 replicas > 1 not supported in non-clustered mode.
    pub fn replicas_not_supported() -> Self {
        STREAM_REPLICAS_NOT_SUPPORTED.into()
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
    #[error("jetstream store directory {path}: {source}")]
    StoreDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
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
            assert!(matches!(d.code, 400 | 404 | 500 | 503), "{d:?}");
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
