//! JetStream inside the server: one JetStream per account that has it, started with the
//! server when `-js` / `jetstream {}` is on, each wired to its account's subject space
//! through a [`ServerPort`]; all of them share the server-wide storage limits and the
//! lock on the store directory, and stop (stores committed and closed) on shutdown.

use std::sync::Arc;

use petrel_config::{AccountJetStream, JetStreamOptions, SyncMode};
use petrel_jetstream::{AccountLimits, JetStream, JetStreamConfig, JsGroup, Port, ResourceLimits};

use crate::account::Account;
use crate::internal::ServerPort;
use crate::server::{ServerError, Shared};
use crate::store_lock::StoreLock;

/// One account's running JetStream and its port.
#[derive(Clone)]
pub(crate) struct JsRuntime {
    pub js: Arc<JetStream>,
    pub port: Arc<ServerPort>,
}

/// Locks the store directory, then recovers and starts the JetStream of every account
/// that has it.
pub(crate) async fn start(
    shared: &Arc<Shared>,
    opts: &JetStreamOptions,
    backend: Arc<dyn petrel_store::Backend>,
    timing: petrel_jetstream::RaftTiming,
) -> Result<(), ServerError> {
    let lock = StoreLock::acquire(&opts.store_dir)?;
    *shared.js_lock.lock() = Some(lock);
    let limits = ResourceLimits::resolve(opts.max_memory, opts.max_file, &opts.store_dir);
    let _ = shared.js_group.set((JsGroup::new(limits), backend));
    for account in shared.accounts.iter() {
        start_account(shared, &account, account.jetstream).await?;
    }
    if let Some(cluster) = shared.opts().cluster.clone() {
        start_cluster(shared, opts, &cluster, timing).await?;
    }
    Ok(())
}

/// With `cluster {}`, JetStream is clustered: the meta group and the stream groups run over
/// the routes (see `petrel_jetstream::JsCluster`), and every account's JetStream answers
/// through them.
async fn start_cluster(
    shared: &Arc<Shared>,
    opts: &JetStreamOptions,
    cluster: &petrel_config::ClusterOptions,
    timing: petrel_jetstream::RaftTiming,
) -> Result<(), ServerError> {
    let Some((_, backend)) = shared.js_group.get() else {
        return Ok(());
    };
    let config = petrel_jetstream::ClusterConfig {
        cluster_name: cluster.name.clone().unwrap_or_default(),
        server_name: shared.server_name.clone(),
        store_dir: opts.store_dir.clone(),
        backend: backend.clone(),
        timing,
        tags: shared.opts().server_tags.clone(),
        min_nodes: cluster.routes.len(),
    };
    let port = ServerPort::new(shared, shared.accounts.system().clone());
    let c = petrel_jetstream::JsCluster::start(config, port)
        .await
        .map_err(|e| ServerError::JetStream(format!("clustered JetStream: {e}")))?;
    for (_, rt) in shared.accounts.jetstreams() {
        c.attach(&rt.js);
    }
    let _ = shared.js_cluster.set(c);
    Ok(())
}

/// Starts `account`'s JetStream with `limits` if it has them and the server runs
/// JetStream (at start, for an account added while running, and for one whose pushed JWT
/// enables JetStream); else its API answers 10039.
pub(crate) async fn start_account(
    shared: &Arc<Shared>,
    account: &Arc<Account>,
    limits: Option<AccountJetStream>,
) -> Result<(), ServerError> {
    let (Some(account_js), Some((group, backend)), Some(opts)) = (
        limits,
        shared.js_group.get(),
        shared.opts().jetstream.clone(),
    ) else {
        not_enabled(shared, account);
        return Ok(());
    };
    // The 10039 responder, if the account had one, gives way.
    if let Some((port, id)) = account.js_off.lock().take() {
        port.unsubscribe(id);
    }
    let port = ServerPort::new(shared, account.clone());
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
        account: account.name.clone(),
        account_limits: account_limits(&account_js),
        group: Some(group.clone()),
        backend: backend.clone(),
        strict: opts.strict,
    };
    let js = JetStream::start(config, port.clone())
        .await
        .map_err(|e| ServerError::JetStream(e.to_string()))?;
    log_recovered(account, &js);
    if let Some(c) = shared.js_cluster.get() {
        c.attach(&js);
    }
    let _ = account.js.set(JsRuntime { js, port });
    Ok(())
}

/// An account without JetStream answers its API requests with 10039, as nats-server —
/// unless it imports a JetStream API under `$JS.API` itself (the import answers).
fn not_enabled(shared: &Arc<Shared>, account: &Arc<Account>) {
    let opts = shared.opts();
    let imported = opts
        .accounts
        .iter()
        .filter(|a| a.name == account.name)
        .flat_map(|a| &a.imports)
        .filter(|i| matches!(i.kind, petrel_config::ImportKind::Service { .. }))
        .any(|i| petrel_subject::subjects_collide(i.local_subject().as_bytes(), b"$JS.API.>"));
    if imported {
        return;
    }
    let mut off = account.js_off.lock();
    if off.is_some() {
        return;
    }
    let port = ServerPort::new(shared, account.clone());
    let id = port.subscribe(
        petrel_jetstream::API_SUBSCRIPTION,
        None,
        petrel_jetstream::Accept::ClientsOnly,
        Arc::new(petrel_jetstream::NotEnabled),
    );
    *off = Some((port, id));
}

fn log_recovered(account: &Account, js: &JetStream) {
    let stats = js.stats();
    tracing::info!(
        "  Recovered {} streams with {} messages ({} bytes) in account {}",
        stats.streams,
        stats.messages,
        stats.bytes,
        account.name
    );
}

/// An account's configured JetStream limits.
pub(crate) fn account_limits(c: &AccountJetStream) -> AccountLimits {
    AccountLimits {
        max_memory: c.max_memory,
        max_storage: c.max_file,
        max_streams: c.max_streams,
        max_consumers: c.max_consumers,
        max_bytes_required: c.max_bytes_required,
    }
}

/// Stops every account's JetStream (routing to it first, then its stores), then releases
/// the store directory.
pub(crate) async fn shutdown(shared: &Shared) {
    // The groups stop first: nothing is applied to a store after it closed.
    if let Some(c) = shared.js_cluster.get() {
        c.shutdown().await;
    }
    for (_, rt) in shared.accounts.jetstreams() {
        rt.port.clear();
        rt.js.shutdown().await;
    }
    shared.js_lock.lock().take();
}
