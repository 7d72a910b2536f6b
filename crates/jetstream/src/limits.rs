//! JetStream's server-wide resource limits and stream reservations, as nats-server keeps
//! them: `max_memory` / `max_file` from the config, else 75% of the machine's memory and
//! 75% of the store volume's free space at start; a stream with `max_bytes` reserves that
//! much of its storage type, and a create or update that would reserve more than the limit
//! is refused (10028 for memory, 10047 for file).

use std::path::Path;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;

use crate::config::{StorageType, StreamConfig};
use crate::jetstream::JetStream;

/// nats-server's memory limit when the machine's memory cannot be read: 256 MiB.
const FALLBACK_MAX_MEMORY: u64 = 256 * 1024 * 1024;
/// nats-server's storage limit when the volume's free space cannot be read: 1 TiB.
const FALLBACK_MAX_STORAGE: u64 = 1024 * 1024 * 1024 * 1024;

/// The limits in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Bytes memory streams may reserve and hold.
    pub max_memory: u64,
    /// Bytes file streams may reserve and hold.
    pub max_storage: u64,
}

impl ResourceLimits {
    /// The configured limits, else nats-server's defaults measured now.
    pub fn resolve(max_memory: Option<u64>, max_file: Option<u64>, store_dir: &Path) -> Self {
        ResourceLimits {
            max_memory: max_memory
                .unwrap_or_else(|| total_memory().map_or(FALLBACK_MAX_MEMORY, |m| m / 4 * 3)),
            max_storage: max_file.unwrap_or_else(|| {
                disk_available(store_dir).map_or(FALLBACK_MAX_STORAGE, |a| a / 4 * 3)
            }),
        }
    }

    /// The limit of `storage`.
    fn of(&self, storage: StorageType) -> u64 {
        match storage {
            StorageType::Memory => self.max_memory,
            StorageType::File => self.max_storage,
        }
    }
}

/// One account's own JetStream limits (`None`: unlimited), enforced with nats-server's
/// errors: streams (10027), consumers per stream (10026), reserved bytes per storage type
/// (10028 / 10047), and `max_bytes` on every stream when required (10113).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountLimits {
    /// Bytes its memory streams may reserve.
    pub max_memory: Option<u64>,
    /// Bytes its file streams may reserve.
    pub max_storage: Option<u64>,
    /// Streams it may have.
    pub max_streams: Option<u64>,
    /// Consumers each of its streams may have.
    pub max_consumers: Option<u64>,
    /// Every stream must set `max_bytes`.
    pub max_bytes_required: bool,
}

impl AccountLimits {
    /// The byte limit of `storage`, if any.
    fn of(&self, storage: StorageType) -> Option<u64> {
        match storage {
            StorageType::Memory => self.max_memory,
            StorageType::File => self.max_storage,
        }
    }

    /// A limit as nats-server reports it: -1 for none.
    pub(crate) fn report(limit: Option<u64>) -> i64 {
        limit.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// What an account's streams hold, per storage type, against its `max_mem` / `max_file`
/// (checked at publish: nats-server refuses the message with 10002).
#[derive(Debug, Default)]
pub(crate) struct AccountUsage {
    /// The account's limits; replaced as a whole when its JWT is updated.
    limits: RwLock<AccountLimits>,
    memory: std::sync::atomic::AtomicU64,
    storage: std::sync::atomic::AtomicU64,
}

impl AccountUsage {
    pub fn new(limits: AccountLimits) -> AccountUsage {
        AccountUsage {
            limits: RwLock::new(limits),
            ..AccountUsage::default()
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> AccountLimits {
        *self.limits.read()
    }

    /// New limits, for what is created or stored from now on (what exceeds them stays).
    pub fn set_limits(&self, limits: AccountLimits) {
        *self.limits.write() = limits;
    }

    fn counter(&self, storage: StorageType) -> &std::sync::atomic::AtomicU64 {
        match storage {
            StorageType::Memory => &self.memory,
            StorageType::File => &self.storage,
        }
    }

    /// A stream of `storage` went from `old` to `new` bytes.
    pub fn changed(&self, storage: StorageType, old: u64, new: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.counter(storage);
        if new >= old {
            c.fetch_add(new - old, Relaxed);
        } else {
            c.fetch_sub((old - new).min(c.load(Relaxed)), Relaxed);
        }
    }

    /// Whether `add` more bytes of `storage` (`pending` already appended but not yet
    /// counted) would pass the account's limit.
    pub fn would_exceed(&self, storage: StorageType, pending: u64, add: u64) -> bool {
        let Some(limit) = self.limits().of(storage) else {
            return false;
        };
        let used = self
            .counter(storage)
            .load(std::sync::atomic::Ordering::Relaxed);
        used.saturating_add(pending).saturating_add(add) > limit
    }

    /// Whether the account limits `storage` at all.
    pub fn limited(&self, storage: StorageType) -> bool {
        self.limits().of(storage).is_some()
    }
}

/// The JetStreams of one server, one per account: they share its storage limits, so a
/// stream's reservation is checked against every account's streams.
pub struct JsGroup {
    limits: ResourceLimits,
    members: RwLock<Vec<Weak<JetStream>>>,
}

impl std::fmt::Debug for JsGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsGroup")
            .field("limits", &self.limits)
            .field("members", &self.members.read().len())
            .finish()
    }
}

impl JsGroup {
    /// A group under the server-wide `limits`.
    pub fn new(limits: ResourceLimits) -> Arc<JsGroup> {
        Arc::new(JsGroup {
            limits,
            members: RwLock::new(Vec::new()),
        })
    }

    /// The server-wide limits.
    pub fn limits(&self) -> ResourceLimits {
        self.limits
    }

    /// Adds a JetStream (dropped ones are forgotten).
    pub(crate) fn join(&self, js: Weak<JetStream>) {
        let mut members = self.members.write();
        members.retain(|m| m.strong_count() > 0);
        members.push(js);
    }

    /// What every stream of `storage` reserves, but `(account, stream)`.
    fn reserved(&self, storage: StorageType, account: &str, stream: &str) -> u64 {
        let members: Vec<Arc<JetStream>> = self
            .members
            .read()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        members
            .iter()
            .map(|js| {
                let mine = js.config.account == account;
                reserved_by(js, storage, mine.then_some(stream))
            })
            .sum()
    }
}

/// What the streams of `js` with `storage` reserve, leaving out the stream `except`.
fn reserved_by(js: &JetStream, storage: StorageType, except: Option<&str>) -> u64 {
    js.streams
        .read()
        .values()
        .filter(|s| Some(s.name.as_str()) != except && s.storage == storage)
        .map(|s| s.reserved.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

/// nats-server's account and server checks of a stream create (`old` = `None`) or update:
/// `max_bytes` when required, the account's stream count, its byte limit of the stream's
/// storage type, then the server's.
pub(crate) fn check_stream(
    js: &JetStream,
    cfg: &StreamConfig,
    old: Option<&StreamConfig>,
) -> Result<(), crate::ApiError> {
    let account = &js.usage.limits();
    if account.max_bytes_required && cfg.max_bytes <= 0 {
        return Err(crate::ApiError::stream_max_bytes_required());
    }
    if let Some(max) = account.max_streams.filter(|_| old.is_none()) {
        if js.streams.read().len() as u64 >= max {
            return Err(crate::ApiError::maximum_streams());
        }
    }
    if let (Some(max), true) = (account.max_consumers, cfg.max_consumers > 0) {
        if cfg.max_consumers as u64 > max {
            return Err(crate::ApiError::maximum_consumers());
        }
    }
    if let Some(limit) = account.of(cfg.storage) {
        check(
            limit,
            cfg,
            old,
            reserved_by(js, cfg.storage, Some(&cfg.name)),
        )?;
    }
    let others = js
        .group
        .reserved(cfg.storage, &js.config.account, &cfg.name);
    check(js.limits.of(cfg.storage), cfg, old, others)
}

/// What a stream reserves: its `max_bytes` when set.
pub(crate) fn reservation(cfg: &StreamConfig) -> u64 {
    u64::try_from(cfg.max_bytes).unwrap_or(0)
}

/// Checks that `cfg` fits next to `others_reserved` (what the other streams of its storage
/// type reserve). `old` is the stream's current config on update: only growth is checked,
/// as nats-server does; a stream without `max_bytes` needs one byte of room.
fn check(
    limit: u64,
    cfg: &StreamConfig,
    old: Option<&StreamConfig>,
    others_reserved: u64,
) -> Result<(), crate::ApiError> {
    let want = reservation(cfg);
    let add = match old {
        None => want.max(1),
        Some(old) if old.storage == cfg.storage => want.saturating_sub(reservation(old)),
        Some(_) => want,
    };
    let reserved = match old {
        // The stream's own current reservation stays counted besides the growth.
        Some(old) if old.storage == cfg.storage => others_reserved + reservation(old).min(want),
        _ => others_reserved,
    };
    if reserved > limit || add > limit - reserved {
        return Err(match cfg.storage {
            StorageType::Memory => crate::ApiError::memory_resources_exceeded(),
            StorageType::File => crate::ApiError::storage_resources_exceeded(),
        });
    }
    Ok(())
}

/// Total physical memory in bytes (Linux `/proc/meminfo`).
pub fn total_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes an unprivileged writer can still use on the volume of `dir` (or of its nearest
/// existing ancestor).
#[cfg(unix)]
fn disk_available(dir: &Path) -> Option<u64> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(not(unix))]
fn disk_available(_dir: &Path) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(storage: StorageType, max_bytes: i64) -> StreamConfig {
        StreamConfig {
            name: "S".into(),
            storage,
            max_bytes,
            ..StreamConfig::default()
        }
    }

    #[test]
    fn creates_reserve_max_bytes_and_unlimited_needs_a_byte() {
        let l = ResourceLimits {
            max_memory: 100,
            max_storage: 1000,
        };
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 1000),
            None,
            0
        )
        .is_ok());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 1001),
            None,
            0
        )
        .is_err());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 600),
            None,
            500
        )
        .is_err());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, -1),
            None,
            999
        )
        .is_ok());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, -1),
            None,
            1000
        )
        .is_err());
        let e = check(
            l.of(StorageType::Memory),
            &cfg(StorageType::Memory, 101),
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(e.err_code, 10028);
        let e = check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 1 << 60),
            None,
            0,
        )
        .unwrap_err();
        assert_eq!(e.err_code, 10047);
    }

    #[test]
    fn updates_check_only_growth() {
        let l = ResourceLimits {
            max_memory: 100,
            max_storage: 1000,
        };
        let old = cfg(StorageType::File, 400);
        // Others reserve 500: growing to 500 fits, to 501 does not; shrinking always does.
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 500),
            Some(&old),
            500
        )
        .is_ok());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 501),
            Some(&old),
            500
        )
        .is_err());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, 100),
            Some(&old),
            900
        )
        .is_ok());
        assert!(check(
            l.of(StorageType::File),
            &cfg(StorageType::File, -1),
            Some(&old),
            900
        )
        .is_ok());
    }

    #[test]
    fn defaults_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let l = ResourceLimits::resolve(None, Some(5), &dir.path().join("not/yet"));
        assert_eq!(l.max_storage, 5);
        assert!(l.max_memory > 0);
        let l = ResourceLimits::resolve(Some(7), None, dir.path());
        assert_eq!(l.max_memory, 7);
        assert!(l.max_storage > 0);
    }
}
