//! Consumers inside [`JetStream`]: starting one (map entry, subscriptions, task), removing
//! one (waiting requests told, files removed, interest retention re-checked), recovering the
//! durables of a stream after a restart, and closing them all on shutdown.

use std::sync::Arc;
use tokio::time::Instant;

use bytes::Bytes;

use super::persist::{self, ConsumerMeta, StateSync};
use super::pull;
use super::{engine, Consumer};
use crate::advisory;
use crate::config::StorageType;
use crate::handlers::ConsumerHandler;
use crate::jetstream::JetStream;
use crate::port::{Accept, Delivery};
use crate::stream::Stream;
use crate::time::now_nanos;

impl JetStream {
    /// Registers a consumer with its stream, subscribes its ack (and flow-control) subjects
    /// and starts its task.
    pub(crate) fn start_consumer(&self, stream: &Arc<Stream>, consumer: Arc<Consumer>) {
        stream
            .consumers
            .write()
            .insert(consumer.name.clone(), consumer.clone());
        let mut subjects = vec![format!("$JS.ACK.{}.{}.>", stream.name, consumer.name)];
        if consumer.state.lock().config.flow_control {
            subjects.push(format!("$JS.FC.{}.{}.>", stream.name, consumer.name));
        }
        for subject in subjects {
            let handler = Arc::new(ConsumerHandler {
                consumer: consumer.clone(),
                js: self.weak(),
            });
            let id = self
                .port
                .subscribe(&subject, None, Accept::ClientsOnly, handler);
            consumer.subs.lock().push(id);
        }
        self.runtime.spawn(engine::run(
            consumer,
            stream.clone(),
            self.port.clone(),
            self.weak(),
        ));
    }

    /// Stops a consumer's task and removes its subscriptions (files stay).
    pub(crate) fn stop_consumer(&self, consumer: &Consumer) {
        consumer.close();
        let ids: Vec<_> = consumer.subs.lock().drain(..).collect();
        for id in ids {
            self.port.unsubscribe(id);
        }
    }

    /// Deletes consumer `name` of `stream`: stops it, answers its waiting pull requests with
    /// `409 Consumer Deleted`, removes its files and, on an interest stream, the messages
    /// only it was holding. Returns the deleted advisory, or `None` if there is no such
    /// consumer. Blocking.
    pub(crate) fn remove_consumer(&self, stream: &str, name: &str) -> Option<(String, Bytes)> {
        let s = self.stream(stream)?;
        let consumer = s.consumers.write().remove(name)?;
        self.stop_consumer(&consumer);
        let waiting: Vec<String> = consumer
            .state
            .lock()
            .waiting
            .drain(..)
            .map(|w| w.reply)
            .collect();
        if !waiting.is_empty() {
            let statuses = waiting
                .into_iter()
                .map(|reply| Delivery {
                    route: reply.clone(),
                    subject: reply,
                    reply: None,
                    headers: Some(pull::status("409 Consumer Deleted")),
                    payload: Bytes::new(),
                    raw: None,
                })
                .collect();
            self.port.deliver(statuses);
        }
        if let Some(dir) = &consumer.dir {
            if let Err(e) = persist::remove(s.backend.as_ref(), dir) {
                tracing::warn!(stream, consumer = name, error = %e, "removing consumer files failed");
            }
            if let Some(r) = s.replica.get() {
                r.consumer_deleted(name);
            }
        }
        crate::retention::cleanup(&s, crate::retention::Sweep::ConsumerLeft);
        Some(advisory::consumer_action(stream, name, false))
    }

    /// Recreates the durable consumers stored with `stream` (after a restart). Blocking.
    pub(crate) fn recover_consumers(&self, stream: &Arc<Stream>) {
        let Some(dir) = stream.dir.clone() else {
            return;
        };
        let now = Instant::now();
        let wall = now_nanos();
        for found in persist::read_all(stream.backend.as_ref(), &dir, &stream.name) {
            let cfg = found.meta.config.clone();
            let built = {
                let inner = stream.inner.lock();
                Consumer::new(
                    &stream.name,
                    cfg,
                    found.meta.created,
                    inner.store.as_ref(),
                    Some(found.dir.clone()),
                )
            };
            let mut consumer = match built {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(stream = %stream.name, dir = %found.dir.display(), error = %e,
                        "skipping consumer: positioning failed");
                    continue;
                }
            };
            if found.meta.start_seq > 0 {
                consumer.start_seq = found.meta.start_seq;
            }
            match &found.state {
                Some(saved) => persist::restore(&mut consumer.state.lock(), saved, now, wall),
                None => {
                    let first = stream.inner.lock().store.state().first_seq;
                    persist::restart_from(&mut consumer.state.lock(), found.meta.start_seq, first);
                    tracing::warn!(stream = %stream.name, consumer = %consumer.name,
                        from = consumer.state.lock().cursor, "consumer restarted without its state");
                }
            }
            let (pending, name) = (
                consumer.state.lock().acks.pending.len(),
                consumer.name.clone(),
            );
            tracing::info!(stream = %stream.name, consumer = %name, pending, "consumer recovered");
            self.start_consumer(stream, Arc::new(consumer));
        }
    }

    /// Stops every consumer of `stream` and writes their final state (a replicated
    /// stream's are written by its group's apply only): durably, or with `StateSync::Later`
    /// without an fsync each, for the caller to make durable with one
    /// [`petrel_store::Backend::sync_fs`] (server shutdown: 100,000 consumers, one flush).
    /// Blocking.
    pub(crate) fn close_consumers(&self, stream: &Stream, sync: StateSync) {
        let consumers: Vec<Arc<Consumer>> = stream.consumers.read().values().cloned().collect();
        for c in consumers {
            self.stop_consumer(&c);
            if stream.replica.get().is_some() {
                continue;
            }
            if let Some(dir) = &c.dir {
                let bytes = persist::encode_state(&c.state.lock());
                let each = sync == StateSync::Each;
                // Written since it last changed: the caller's flush makes it durable.
                if !each && persist::on_disk(stream.backend.as_ref(), dir, &bytes) {
                    continue;
                }
                if let Err(e) = persist::write_state(stream.backend.as_ref(), dir, &bytes, each) {
                    tracing::warn!(stream = %stream.name, consumer = %c.name, error = %e,
                        "writing consumer state failed");
                }
            }
        }
    }

    /// Writes a new durable's metadata. Blocking.
    pub(crate) fn persist_consumer_meta(&self, consumer: &Consumer) -> std::io::Result<()> {
        let Some(dir) = &consumer.dir else {
            return Ok(());
        };
        let meta = ConsumerMeta {
            config: consumer.state.lock().config.clone(),
            created: consumer.created,
            start_seq: consumer.start_seq,
        };
        persist::write_meta(self.config.backend.as_ref(), dir, &meta)?;
        if let Some(r) = self
            .stream(&consumer.stream)
            .and_then(|s| s.replica.get().cloned())
        {
            r.consumer_meta(&consumer.name, &meta);
        }
        Ok(())
    }

    /// The directory a new consumer keeps its state in: durables of file streams only.
    pub(crate) fn consumer_dir(
        stream: &Stream,
        durable: bool,
        name: &str,
    ) -> Option<std::path::PathBuf> {
        if !durable || stream.storage != StorageType::File {
            return None;
        }
        stream
            .dir
            .as_ref()
            .map(|d| persist::consumers_dir(d).join(name))
    }
}
