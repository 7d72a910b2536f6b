//! Accounts as configured (`accounts { NAME: { ... } }`, `no_auth_user`,
//! `system_account`): pure data, checked by the config reader.

/// The account of clients that belong to no configured account (nats-server's `$G`).
pub const GLOBAL_ACCOUNT: &str = "$G";
/// The system account's name when `system_account` is not set (nats-server's `$SYS`).
pub const DEFAULT_SYSTEM_ACCOUNT: &str = "$SYS";

/// One configured account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountConfig {
    /// Its name.
    pub name: String,
    /// JetStream for the account (`jetstream: enabled` or a limits block); `None`: off.
    pub jetstream: Option<AccountJetStream>,
    /// What it exports.
    pub exports: Vec<Export>,
    /// What it imports.
    pub imports: Vec<Import>,
}

/// An account's JetStream limits; `None` is unlimited (nats-server's -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AccountJetStream {
    /// Bytes of memory storage (`max_mem`, `max_memory`).
    pub max_memory: Option<u64>,
    /// Bytes of file storage (`max_file`, `max_store`).
    pub max_file: Option<u64>,
    /// Streams (`max_streams`).
    pub max_streams: Option<u64>,
    /// Consumers (`max_consumers`).
    pub max_consumers: Option<u64>,
    /// Streams must set `max_bytes` (`max_bytes_required`).
    pub max_bytes_required: bool,
}

/// How many responses a service import passes back per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseType {
    /// One (nats-server's default).
    #[default]
    Singleton,
    /// Any number, until the response threshold passes.
    Stream,
    /// Any number (chunks of one response), until the response threshold passes.
    Chunked,
}

impl ResponseType {
    /// nats-server's name (`/accountz`).
    pub fn name(self) -> &'static str {
        match self {
            ResponseType::Singleton => "Singleton",
            ResponseType::Stream => "Streamed",
            ResponseType::Chunked => "Chunked",
        }
    }
}

/// What an account offers other accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The subject (wildcards allowed).
    pub subject: String,
    /// `None`: a stream export; else a service export with its response type.
    pub service: Option<ResponseType>,
    /// The accounts allowed to import it (empty: every account).
    pub accounts: Vec<String>,
}

/// What an account takes from another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The exporting account.
    pub account: String,
    /// The exported subject (or a subset of it, for streams).
    pub subject: String,
    /// A stream or a service import.
    pub kind: ImportKind,
}

/// The two kinds of import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportKind {
    /// Messages published in the exporter on `subject` appear in the importer: under
    /// `<prefix>.<subject>`, under the mapping `to`, or unchanged.
    Stream {
        /// `prefix`.
        prefix: Option<String>,
        /// `to` (a strict subject mapping of `subject`).
        to: Option<String>,
    },
    /// Requests published in the importer on `to` (default: `subject`) go to the
    /// exporter's `subject`; responses come back to the requester.
    Service {
        /// The importer's subject.
        to: Option<String>,
        /// Share the requester's details with the responder (`Nats-Request-Info`).
        share: bool,
    },
}

impl Import {
    /// The subject the importer sees (stream) or publishes requests on (service).
    pub fn local_subject(&self) -> String {
        match &self.kind {
            ImportKind::Stream {
                prefix: Some(p), ..
            } => format!("{}.{}", p.trim_end_matches('.'), self.subject),
            ImportKind::Stream { to: Some(t), .. } | ImportKind::Service { to: Some(t), .. } => {
                t.clone()
            }
            _ => self.subject.clone(),
        }
    }
}
