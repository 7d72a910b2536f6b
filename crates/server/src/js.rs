//! JetStream inside the server: started with the server when `-js` / `jetstream {}` is on,
//! wired to the router through [`ServerPort`], stopped (stores committed and closed) on
//! shutdown.

use std::sync::Arc;

use petrel_config::{JetStreamOptions, SyncMode};
use petrel_jetstream::{JetStream, JetStreamConfig};

use crate::internal::ServerPort;
use crate::server::{ServerError, Shared};
use crate::store_lock::StoreLock;

/// The running JetStream, its port, and the lock on its store directory (released once
/// the stores are closed).
pub(crate) struct JsRuntime {
    pub js: Arc<JetStream>,
    pub port: Arc<ServerPort>,
    lock: parking_lot::Mutex<Option<StoreLock>>,
}

/// Recover the streams under the store directory and start serving `$JS.API`.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    opts: &JetStreamOptions,
    backend: Arc<dyn petrel_store::Backend>,
) -> Result<JsRuntime, ServerError> {
    let lock = StoreLock::acquire(&opts.store_dir)?;
    let port = ServerPort::new(shared, shared.system.clone());
    let config = JetStreamConfig {
        store_dir: opts.store_dir.clone(),
        max_memory: opts.max_memory,
        max_file: opts.max_file,
        sync: match opts.sync {
            SyncMode::Always => petrel_store::SyncMode::Always,
            SyncMode::Interval(d) => petrel_store::SyncMode::Interval(d),
        },
        server_name: shared.server_name.clone(),
        domain: opts.domain.clone(),
        backend,
    };
    let js = JetStream::start(config, port.clone())
        .await
        .map_err(|e| ServerError::JetStream(e.to_string()))?;
    Ok(JsRuntime {
        js,
        port,
        lock: parking_lot::Mutex::new(Some(lock)),
    })
}

impl JsRuntime {
    /// Stop routing to JetStream, then commit and close every store.
    pub async fn shutdown(&self) {
        self.port.clear();
        self.js.shutdown().await;
        self.lock.lock().take();
    }
}
