//! Backup and restore of file streams with nats-server's API and chunked flows, so
//! `nats stream backup` / `restore` and the clients' snapshot APIs work.
//!
//! Snapshot (`$JS.API.STREAM.SNAPSHOT.<stream>`, `{"deliver_subject", "no_consumers",
//! "chunk_size", "window_size"}`): the stream's files are written, under its lock (one
//! consistent cut, publishes wait meanwhile), into an archive in `<store>/jetstream/.backup`;
//! the reply carries the config and state; then the archive goes to `deliver_subject` in
//! chunks (1 KiB–1 MiB, default 128 KiB), each with a reply subject
//! `$JS.SNAPSHOT.ACK.<stream>.<id>.<len>.<index>` the receiver answers to open the window
//! (default 8 MiB in flight). The end is an empty message (`NATS/1.0 204` once a full chunk
//! was sent); `408 No Interest`, `408 No Flow Response` (5 s without an ack) or `500 <why>`
//! end it early.
//!
//! Restore (`$JS.API.STREAM.RESTORE.<stream>`, `{"config", "state"}`): checked like a
//! create; the reply names `$JS.SNAPSHOT.RESTORE.<stream>.<id>`, where the client sends the
//! chunks, each with a reply subject that gets an empty ack; an empty chunk ends the upload
//! and gets the stream's info (or error 10062). The archive is verified (framing CRCs, paths,
//! end record) and unpacked into a staging directory, then moved into place and recovered
//! like any stream. Nothing 5 s long: the restore is abandoned.

pub(crate) mod archive;
mod restore;
mod snapshot;

pub(super) use restore::restore;
pub(crate) use snapshot::replica_archive;
pub(super) use snapshot::snapshot;

use std::path::PathBuf;

use crate::jetstream::JetStream;

/// How long a flow may sit idle (no ack / no chunk) before it is abandoned.
const IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// The staging directory of snapshots and restores (removed at start).
pub(crate) fn staging_dir(js: &JetStream) -> PathBuf {
    crate::meta::account_dir(&js.config.store_dir, &js.config.account).join(".backup")
}
