//! Carries out the meta group's assignments on this node: opens a stream's replica (store,
//! machine, group) when the node is placed on it, applies config changes, removes it when
//! the stream is deleted or moved, and runs the stream's durable consumers only while this
//! node leads the stream's group.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use petrel_replication::Group;
use tokio::sync::{mpsc, watch};

use super::machine::{open_store, StreamMachine};
use super::meta::StreamAssignment;
use super::peers::{converge_loop, leave_loop};
use super::replica::Replica;
use super::{cluster_dir, JsCluster};
use crate::consumer::persist::StateSync;
use crate::jetstream::JetStream;
use crate::stream::Stream;

/// Opens this node's replica of `a` and starts its group.
async fn open(c: &Arc<JsCluster>, js: &Arc<JetStream>, a: StreamAssignment) -> Result<(), String> {
    let dir = cluster_dir(&c.config.store_dir).join(&a.group);
    let (j, d, a2) = (js.clone(), dir.clone(), a.clone());
    let (stream, record, applied) = tokio::task::spawn_blocking(move || open_store(&j, &d, &a2))
        .await
        .map_err(|e| e.to_string())??;
    let machine = Arc::new(StreamMachine {
        stream: stream.clone(),
        backend: js.config.backend.clone(),
        record,
        applied: Mutex::new(applied),
    });
    let group = Group::open(
        &a.group,
        c.me,
        &dir.join("raft"),
        js.config.backend.clone(),
        machine,
        c.transport.clone(),
        c.config.timing,
    )
    .await
    .map_err(|e| e.to_string())?;
    c.registry.insert(group.clone());
    let members = a.peers.iter().cloned().collect();
    let replica = Arc::new(Replica {
        group: group.clone(),
        assignment: Mutex::new(a.clone()),
        cluster: Arc::downgrade(c),
        checkpoints: Default::default(),
        leaving: Default::default(),
        left: Default::default(),
        consumers_running: Default::default(),
        removals: Default::default(),
        sourcing_in_flight: Default::default(),
        sourcing_settled: Default::default(),
        interest: Default::default(),
    });
    let _ = stream.replica.set(replica);
    js.register(stream.clone());
    tokio::spawn(follow_leadership(
        Arc::downgrade(js),
        Arc::downgrade(&stream),
        group.clone(),
    ));
    tokio::spawn(converge_loop(Arc::downgrade(c), Arc::downgrade(&stream)));
    // A replica placed after creation joins the running group (the leader adds it);
    // only the first replicas make the first membership. The first peer placed runs
    // first; the others start elections of their own only if it does not (not in the
    // way of this loop, which reconciles one stream at a time).
    if !a.added.contains(&c.me) {
        let first = a.peers.iter().map(|p| p.0).find(|p| !a.added.contains(p));
        match first {
            Some(first) if first != c.me => {
                let (g, name) = (group.clone(), a.config.name.clone());
                tokio::spawn(async move {
                    if let Err(e) = g.initialize_led_by(members, first).await {
                        tracing::warn!(stream = %name, "starting the stream group failed: {e}");
                    }
                });
            }
            _ => group.initialize(members).await?,
        }
    }
    tracing::info!(stream = %a.config.name, group = %a.group, "stream replica started");
    Ok(())
}

/// Runs the stream's durable consumers on this node while it leads the stream's group:
/// recovered from their files (as the group committed them) once it leads and has caught
/// up, stopped (state written) when it stops leading.
async fn follow_leadership(js: Weak<JetStream>, stream: Weak<Stream>, group: Group) {
    let mut metrics = group.watch();
    let mut leading = false;
    // The end of the log when this node became leader: every committed entry is in it.
    let mut target: Option<Option<u64>> = None;
    loop {
        // A new leader starts the consumers only once it has applied its whole log as it
        // was at the election (a leader resuming its term after a restart, too): every
        // checkpoint committed before is then in their files, and no confirmed ack is
        // delivered again.
        let leader = metrics.borrow().current_leader;
        if let (Some(j), Some(s)) = (js.upgrade(), stream.upgrade()) {
            if let Some(r) = s.replica.get() {
                r.interest.follow(&j, &s, group.me, leader);
            }
        }
        let now = {
            let m = metrics.borrow();
            let leads = m.current_leader == Some(group.me);
            if !leads {
                target = None;
            } else if target.is_none() {
                target = Some(m.last_log_index);
            }
            let applied = m.last_applied.map(|l| l.index);
            leads && (leading || target.is_some_and(|t| applied >= t))
        };
        if now != leading {
            leading = now;
            let (Some(j), Some(s)) = (js.upgrade(), stream.upgrade()) else {
                return;
            };
            tracing::info!(stream = %s.name, leader = now, "JetStream cluster: stream leadership changed");
            let _ = tokio::task::spawn_blocking(move || {
                if s.is_closed() {
                    return;
                }
                let running = s.replica.get().map(|r| &r.consumers_running);
                if now {
                    j.recover_consumers(&s);
                    if let Some(r) = running {
                        r.store(true, Ordering::Release);
                    }
                    // What the last leader's retention decided but never committed.
                    crate::retention::cleanup(&s, crate::retention::Sweep::NewLeader);
                    crate::sourcing::task::start(&j, &s);
                } else {
                    if let Some(r) = running {
                        r.store(false, Ordering::Release);
                    }
                    crate::sourcing::task::stop(&j, &s);
                    j.close_consumers(&s, StateSync::Each);
                    s.consumers.write().clear();
                }
            })
            .await;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// Stops this node's replica of `stream` and removes its files.
async fn remove(c: &JsCluster, js: &Arc<JetStream>, stream: Arc<Stream>, replica: Arc<Replica>) {
    js.unregister(&stream.name);
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.request_close()).await;
    replica.group.shutdown().await;
    c.registry.remove(&replica.group.name);
    stream.release_usage();
    let dir = cluster_dir(&c.config.store_dir).join(&*replica.group.name);
    let backend = js.config.backend.clone();
    let _ = tokio::task::spawn_blocking(move || backend.remove_dir_all(&dir)).await;
    tracing::info!(stream = %stream.name, "stream replica removed");
}

/// Carries out one assignment change on this node.
async fn reconcile(c: &Arc<JsCluster>, account: &str, name: &str) {
    let Some(js) = c.account(account) else {
        tracing::debug!(account, stream = name, "reconcile: account not attached");
        return;
    };
    tracing::debug!(account, stream = name, "reconcile");
    let want = c.state.stream(account, name).filter(|a| a.has(c.me));
    let have = js
        .stream(name)
        .and_then(|s| s.replica.get().cloned().map(|r| (s, r)));
    match (want, have) {
        (Some(a), Some((s, r))) if *r.group.name == *a.group => {
            if s.config() != a.config {
                let (cfg, s2) = (a.config.clone(), s.clone());
                let old = s.config();
                let applied = tokio::task::spawn_blocking(move || s2.apply_config(cfg)).await;
                if matches!(applied, Ok(Ok(()))) {
                    let sourcing =
                        (&old.mirror, &old.sources) != (&a.config.mirror, &a.config.sources);
                    if sourcing {
                        crate::sourcing::task::start(&js, &s);
                    }
                    let added: Vec<String> = a
                        .config
                        .subjects
                        .iter()
                        .filter(|x| !old.subjects.contains(x))
                        .cloned()
                        .collect();
                    let removed: Vec<String> = old
                        .subjects
                        .iter()
                        .filter(|x| !a.config.subjects.contains(x))
                        .cloned()
                        .collect();
                    r.interest.subjects_changed(&js, &s, &added, &removed);
                }
            }
            *r.assignment.lock() = a;
        }
        // Taken out of a stream that goes on elsewhere: stays until the leader has
        // committed the change without it.
        (None, Some((_, r))) if still_runs(c, account, name, &r) => {
            // A leader taken out hands over to one of the new peers (`converge_loop`).
            if let Some(a) = c.state.stream(account, name) {
                *r.assignment.lock() = a;
            }
            if !r.leaving.swap(true, Ordering::AcqRel) {
                tracing::info!(
                    stream = name,
                    "JetStream cluster: replica taken out; leaving"
                );
                tokio::spawn(leave_loop(Arc::downgrade(c), account.to_string(), r));
            }
        }
        (want, Some((s, r))) => {
            remove(c, &js, s, r).await;
            if let Some(a) = want {
                if let Err(e) = open(c, &js, a).await {
                    tracing::error!(stream = name, "opening the stream replica failed: {e}");
                }
            }
        }
        (Some(a), None) => {
            if let Err(e) = open(c, &js, a).await {
                tracing::error!(stream = name, "opening the stream replica failed: {e}");
            }
        }
        (None, None) => {}
    }
}

/// Whether the stream `r` belongs to still runs (same group) elsewhere and `r` has not
/// been confirmed out of it yet.
fn still_runs(c: &JsCluster, account: &str, name: &str, r: &Replica) -> bool {
    let same = c
        .state
        .stream(account, name)
        .is_some_and(|a| *a.group == *r.group.name);
    same && !r.left.load(Ordering::Acquire)
}

/// Takes assignment changes off the queue, one at a time.
pub(super) async fn reconcile_loop(
    cluster: Weak<JsCluster>,
    mut rx: mpsc::Receiver<(String, String)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (account, name) = tokio::select! {
            got = rx.recv() => match got { Some(k) => k, None => return },
            _ = stop.changed() => return,
        };
        let Some(c) = cluster.upgrade() else { return };
        reconcile(&c, &account, &name).await;
    }
}
