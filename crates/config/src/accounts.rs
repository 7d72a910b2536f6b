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
