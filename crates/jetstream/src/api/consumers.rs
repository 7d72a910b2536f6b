//! Consumer administration: `CONSUMER.CREATE` (all forms), `DURABLE.CREATE`, `INFO`,
//! `NAMES`, `LIST`, `DELETE`.
//!
//! Like stream administration these run one at a time on the API task, so the checks
//! against the stream's other consumers (work-queue uniqueness) see a stable map.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{parse_body, respond, ApiResponse, Paged};
use crate::advisory;
use crate::config::RetentionPolicy;
use crate::consumer::config::{is_valid_consumer_name, ConsumerConfig, CreateRequest};
use crate::consumer::info::ConsumerInfo;
use crate::consumer::Consumer;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::json::null_default;
use crate::stream::Stream;
use crate::time::now_nanos;

/// Longest consumer name.
const MAX_NAME_LEN: usize = 255;
/// Names per `CONSUMER.NAMES` page.
const NAMES_LIMIT: usize = 1024;
/// Infos per `CONSUMER.LIST` page.
const LIST_LIMIT: usize = 256;

/// Which create subject was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CreateForm<'a> {
    /// `CONSUMER.CREATE.<stream>` (ephemeral, legacy).
    Ephemeral,
    /// `CONSUMER.CREATE.<stream>.<name>[.<filter>]`.
    Named(&'a str, Option<&'a str>),
    /// `CONSUMER.DURABLE.CREATE.<stream>.<durable>`.
    Durable(&'a str),
}

#[derive(Serialize)]
struct Success {
    success: bool,
}

#[derive(Serialize)]
struct NamesBody {
    consumers: Vec<String>,
}

#[derive(Serialize)]
struct ListBody {
    consumers: Vec<ConsumerInfo>,
}

#[derive(Debug, Default, Deserialize)]
struct ListRequest {
    #[serde(default, deserialize_with = "null_default")]
    offset: usize,
}

/// A random ephemeral name: 8 base62 characters, as nats-server.
fn ephemeral_name() -> String {
    advisory::next_id()[..8].to_string()
}

/// `CONSUMER.CREATE...` / `DURABLE.CREATE...`.
pub(super) fn create(
    js: &JetStream,
    stream: &str,
    form: CreateForm<'_>,
    payload: &[u8],
) -> ApiResponse {
    let mut advisories = Vec::new();
    let result = create_inner(js, stream, form, payload).map(|(info, created)| {
        if created {
            advisories.push(advisory::consumer_action(stream, &info.name, true));
        }
        info
    });
    let mut resp = respond("consumer_create", None, result);
    resp.advisories = advisories;
    resp
}

fn create_inner(
    js: &JetStream,
    stream_name: &str,
    form: CreateForm<'_>,
    payload: &[u8],
) -> Result<(ConsumerInfo, bool), ApiError> {
    let req: CreateRequest = super::decode(js, payload)?;
    // The order of nats-server's jsConsumerCreateRequest.
    if req.stream_name != stream_name {
        return Err(ApiError::stream_mismatch());
    }
    let subject_name = match form {
        CreateForm::Ephemeral => None,
        CreateForm::Named(name, _) | CreateForm::Durable(name) => Some(name),
    };
    if subject_name.is_some_and(|n| n.contains(['/', '\\'])) {
        return Err(ApiError::consumer_name_contains_path_separators());
    }
    let mut cfg = req.config;
    match form {
        CreateForm::Durable(durable) => {
            if cfg.durable_name.is_empty() {
                return Err(ApiError::consumer_durable_name_not_set());
            }
            if cfg.durable_name != durable {
                return Err(ApiError::consumer_durable_name_not_match());
            }
        }
        CreateForm::Named(name, _) => {
            if !cfg.durable_name.is_empty() && cfg.durable_name != name {
                return Err(ApiError::consumer_durable_name_not_match());
            }
            cfg.name = name.to_string();
        }
        CreateForm::Ephemeral => {
            if !cfg.durable_name.is_empty() {
                return Err(ApiError::consumer_ephemeral_with_durable());
            }
        }
    }
    if let CreateForm::Named(_, Some(filter)) = form {
        if cfg.filter_subject != filter {
            return Err(ApiError::consumer_create_filter_mismatch());
        }
    }
    if cfg.num_replicas > 1 && js.cluster.get().is_none() {
        return Err(ApiError::replicas_not_supported());
    }
    let stream = js
        .stream(stream_name)
        .ok_or_else(ApiError::stream_not_found)?;
    let stream_cfg = stream.config();
    cfg.set_defaults(&stream_cfg);
    cfg.check(&stream_cfg)?;
    if cfg.name.is_empty() {
        cfg.name = if cfg.durable_name.is_empty() {
            ephemeral_name()
        } else {
            cfg.durable_name.clone()
        };
    }
    crate::cycles::check_consumer(js, stream_name, &cfg)?;
    let existing = stream.consumers.read().get(&cfg.name).cloned();
    if let Some(existing) = existing {
        if req.action == "create" && existing.state.lock().config != cfg {
            return Err(ApiError::consumer_already_exists());
        }
        return update(js, &stream, &existing, cfg).map(|info| (info, false));
    }
    if req.action == "update" {
        return Err(ApiError::consumer_does_not_exist());
    }
    // The stream's limit, or the account's when lower (nats-server counts either per
    // stream).
    let account_max = js.usage.limits().max_consumers;
    let stream_max = u64::try_from(stream_cfg.max_consumers)
        .ok()
        .filter(|m| *m > 0);
    let max = match (stream_max, account_max) {
        (Some(s), Some(a)) => Some(s.min(a)),
        (s, a) => s.or(a),
    };
    if max.is_some_and(|m| stream.consumers.read().len() as u64 >= m) {
        return Err(ApiError::maximum_consumers());
    }
    if stream_cfg.retention == RetentionPolicy::Workqueue {
        if cfg.ack_policy != crate::consumer::config::AckPolicy::Explicit {
            return Err(ApiError::consumer_wq_requires_explicit_ack());
        }
        check_work_queue(&stream, &cfg)?;
        if cfg.deliver_policy != crate::consumer::config::DeliverPolicy::All {
            return Err(ApiError::consumer_wq_not_deliver_all());
        }
    }
    if cfg.name.len() > MAX_NAME_LEN {
        return Err(ApiError::consumer_name_too_long(MAX_NAME_LEN));
    }
    if !is_valid_consumer_name(&cfg.name) {
        return Err(ApiError::consumer_bad_durable_name());
    }
    let durable = !cfg.durable_name.is_empty();
    let dir = JetStream::consumer_dir(&stream, durable, &cfg.name);
    let consumer = {
        let inner = stream.inner.lock();
        if inner.closed {
            return Err(ApiError::stream_not_found());
        }
        Consumer::new(stream_name, cfg, now_nanos(), inner.store.as_ref(), dir)
            .map_err(ApiError::consumer_create)?
    };
    js.persist_consumer_meta(&consumer)
        .map_err(ApiError::consumer_create)?;
    let consumer = Arc::new(consumer);
    js.start_consumer(&stream, consumer.clone());
    Ok((consumer.info().clustered(&stream), true))
}

/// Work-queue streams: one consumer per message (no unfiltered second consumer, no
/// overlapping filters). `cfg` is checked against every consumer but `cfg.name` (an
/// update is not compared with itself).
fn check_work_queue(stream: &Stream, cfg: &ConsumerConfig) -> Result<(), ApiError> {
    let filters = cfg.filters();
    for other in stream.consumers.read().values() {
        if other.name == cfg.name {
            continue;
        }
        let theirs = other.state.lock().filters.clone();
        if filters.is_empty() {
            return Err(ApiError::consumer_wq_multiple_unfiltered());
        }
        let overlap = theirs.is_empty()
            || filters.iter().any(|a| {
                theirs
                    .iter()
                    .any(|b| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes()))
            });
        if overlap {
            return Err(ApiError::consumer_wq_not_unique());
        }
    }
    Ok(())
}

/// Applies an allowed config change to an existing consumer (or returns it unchanged).
fn update(
    js: &JetStream,
    stream: &Arc<Stream>,
    consumer: &Arc<Consumer>,
    cfg: ConsumerConfig,
) -> Result<ConsumerInfo, ApiError> {
    let old = consumer.state.lock().config.clone();
    if old == cfg {
        return Ok(consumer.info().clustered(stream));
    }
    let bound = !old.deliver_subject.is_empty() && js.port.has_interest(&old.deliver_subject);
    cfg.check_update(&old, bound)?;
    if old.filters() != cfg.filters() && stream.config().retention == RetentionPolicy::Workqueue {
        check_work_queue(stream, &cfg)?;
    }
    {
        let _inner = stream.inner.lock();
        let mut st = consumer.state.lock();
        st.acks
            .reconfigure(cfg.ack_wait, &cfg.backoff, cfg.max_deliver);
        let filters = cfg.filters();
        if filters != st.filters {
            // Messages the old filters passed over are looked at again (as nats-server:
            // from after the last delivered one), so a newly matching one is not skipped.
            st.cursor = st.cursor.min(st.acks.dsseq + 1);
        }
        st.filters = filters;
        st.config = cfg;
        st.npending_stale = true;
        st.dirty = true;
    }
    js.persist_consumer_meta(consumer)
        .map_err(ApiError::consumer_create)?;
    consumer.wake();
    // Counted again for the new filters, as nats-server's update response shows them.
    Ok(fresh_info(stream, consumer))
}

/// `CONSUMER.INFO.<stream>.<consumer>`.
pub(super) fn info(js: &JetStream, stream: &str, name: &str) -> ApiResponse {
    let result = find(js, stream, name).map(|(s, c)| fresh_info(&s, &c));
    respond("consumer_info", None, result)
}

/// The info with an up-to-date pending count.
fn fresh_info(stream: &Stream, consumer: &Consumer) -> ConsumerInfo {
    let report = consumer.fresh_report(&stream.inner.lock());
    ConsumerInfo::from(report).clustered(stream)
}

pub(super) fn find(
    js: &JetStream,
    stream: &str,
    name: &str,
) -> Result<(Arc<Stream>, Arc<Consumer>), ApiError> {
    let s = js.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let c = s
        .consumers
        .read()
        .get(name)
        .cloned()
        .ok_or_else(ApiError::consumer_not_found)?;
    Ok((s, c))
}

/// `CONSUMER.DELETE.<stream>.<consumer>`.
pub(super) fn delete(js: &JetStream, stream: &str, name: &str) -> ApiResponse {
    let mut advisories = Vec::new();
    let result = find(js, stream, name).and_then(|_| {
        let adv = js
            .remove_consumer(stream, name)
            .ok_or_else(ApiError::consumer_not_found)?;
        advisories.push(adv);
        Ok(Success { success: true })
    });
    let mut resp = respond("consumer_delete", None, result);
    resp.advisories = advisories;
    resp
}

/// One NAMES/LIST page: the stream, its consumers on the page (by name), the paging fields.
struct Page {
    stream: Arc<Stream>,
    consumers: Vec<Arc<Consumer>>,
    paged: Paged,
}

/// The NAMES/LIST page `payload` asks for.
fn page(js: &JetStream, stream: &str, payload: &[u8], limit: usize) -> Result<Page, ApiError> {
    let req: ListRequest = parse_body(js, payload)?;
    let s = js.stream(stream).ok_or_else(ApiError::stream_not_found)?;
    let all: Vec<Arc<Consumer>> = s.consumers.read().values().cloned().collect();
    let paged = Paged {
        total: all.len(),
        offset: req.offset,
        limit,
    };
    let consumers = all.into_iter().skip(req.offset).take(limit).collect();
    Ok(Page {
        stream: s,
        consumers,
        paged,
    })
}

/// `CONSUMER.NAMES.<stream>`.
pub(super) fn names(js: &JetStream, stream: &str, payload: &[u8]) -> ApiResponse {
    match page(js, stream, payload, NAMES_LIMIT) {
        Ok(p) => {
            let consumers = p.consumers.iter().map(|c| c.name.clone()).collect();
            respond("consumer_names", Some(p.paged), Ok(NamesBody { consumers }))
        }
        Err(e) => respond::<NamesBody>("consumer_names", Some(Paged::default()), Err(e)),
    }
}

/// `CONSUMER.LIST.<stream>`.
pub(super) fn list(js: &JetStream, stream: &str, payload: &[u8]) -> ApiResponse {
    match page(js, stream, payload, LIST_LIMIT) {
        Ok(p) => {
            let consumers = p
                .consumers
                .iter()
                .map(|c| fresh_info(&p.stream, c))
                .collect();
            respond("consumer_list", Some(p.paged), Ok(ListBody { consumers }))
        }
        Err(e) => respond::<ListBody>("consumer_list", Some(Paged::default()), Err(e)),
    }
}
