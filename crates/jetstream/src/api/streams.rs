//! Stream administration: `STREAM.CREATE`, `UPDATE`, `INFO`, `DELETE`, `NAMES`, `LIST`.
//!
//! The API task runs one request at a time, so create/update/delete never race each other;
//! the checks against other streams (name in use, overlapping subjects) see a stable map.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{parse_body, respond, ApiResponse, Paged};
use crate::advisory::{stream_action, StreamAction};
use crate::config::{StorageType, StreamConfig};
use crate::consumer::persist::StateSync;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::json::null_default;
use crate::limits;
use crate::meta::{self, StreamMeta};
use crate::stream::{InfoRequest, Stream, StreamInfo, SUBJECTS_PAGE};
use crate::time::now_nanos;

/// Names per `STREAM.NAMES` page.
pub const NAMES_LIMIT: usize = 1024;
/// Infos per `STREAM.LIST` page.
pub const LIST_LIMIT: usize = 256;

/// `STREAM.CREATE`'s answer: the info and whether this request created the stream.
#[derive(Serialize)]
pub(crate) struct CreateBody {
    #[serde(flatten)]
    pub info: StreamInfo,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub did_create: bool,
}

/// `{"success": true}`.
#[derive(Serialize)]
pub(crate) struct Success {
    pub success: bool,
}

/// `STREAM.NAMES`' answer.
#[derive(Serialize)]
pub(crate) struct NamesBody {
    pub streams: Vec<String>,
}

/// `STREAM.LIST`'s answer.
#[derive(Serialize)]
pub(crate) struct ListBody {
    pub streams: Vec<StreamInfo>,
}

/// Body of `STREAM.NAMES` / `STREAM.LIST`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListRequest {
    #[serde(default, deserialize_with = "null_default")]
    pub offset: usize,
    #[serde(default, deserialize_with = "null_default")]
    pub subject: String,
}

/// `resp` with the stream `action` advisory after it, unless it reports an error.
pub(crate) fn announce(mut resp: ApiResponse, stream: &str, action: StreamAction) -> ApiResponse {
    if !resp.error {
        resp.advisories.push(stream_action(stream, action));
    }
    resp
}

/// Parses a create/update body and checks the name against the subject (`clustered`:
/// replicas up to 5 are taken).
pub(crate) fn parse_config(
    js: &JetStream,
    name: &str,
    payload: &[u8],
    clustered: bool,
) -> Result<StreamConfig, ApiError> {
    let cfg: StreamConfig = super::decode(js, payload)?;
    if cfg.name != name {
        return Err(ApiError::stream_mismatch());
    }
    cfg.normalize_for(clustered)
}

/// 10065 naming the first other stream whose subjects overlap `cfg`'s.
pub(crate) fn check_overlap(js: &JetStream, cfg: &StreamConfig) -> Result<(), ApiError> {
    let others: Vec<Arc<Stream>> = js
        .streams
        .read()
        .values()
        .filter(|s| s.name != cfg.name)
        .cloned()
        .collect();
    for other in others {
        // Read in place (one lock at a time): with 10,000 streams a copy per stream made
        // every create slower than the last.
        let subjects = other.subjects.read();
        let collide = cfg.subjects.iter().any(|a| {
            subjects
                .iter()
                .any(|b| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes()))
        });
        if collide {
            return Err(ApiError::subject_overlap(&other.name));
        }
    }
    Ok(())
}

/// Refuses a stream whose `max_bytes` does not fit in what the server's storage limit
/// leaves after the other streams' reservations (nats-server's 10028 / 10047). `old` is the
/// stream's config on update.
pub(crate) fn check_resources(
    js: &JetStream,
    cfg: &StreamConfig,
    old: Option<&StreamConfig>,
) -> Result<(), ApiError> {
    limits::check_stream(js, cfg, old)
}

/// `STREAM.CREATE.<name>`.
pub(super) fn create(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let mut advisories = Vec::new();
    let result = create_inner(js, name, payload).map(|(info, did_create)| {
        if did_create {
            advisories.push(stream_action(name, StreamAction::Create));
        }
        CreateBody { info, did_create }
    });
    let mut resp = respond("stream_create", None, result);
    resp.advisories = advisories;
    resp
}

fn create_inner(
    js: &JetStream,
    name: &str,
    payload: &[u8],
) -> Result<(StreamInfo, bool), ApiError> {
    let mut cfg = parse_config(js, name, payload, false)?;
    crate::sourcing::direct::inherit(js, &mut cfg);
    if let Some(existing) = js.stream(name) {
        if existing.config() == cfg {
            let (info, _) = existing.info(&InfoRequest::default())?;
            return Ok((info, false));
        }
        return Err(ApiError::stream_name_exist());
    }
    if cfg.sealed {
        return Err(ApiError::stream_invalid_config(
            "stream configuration for create can not be sealed",
        ));
    }
    crate::sourcing::direct::check_create(&cfg)?;
    check_overlap(js, &cfg)?;
    crate::cycles::check_stream(js, name, &cfg)?;
    crate::sourcing::config::check_cycle(&cfg, |n| js.stream(n).map(|s| s.config()))?;
    check_resources(js, &cfg, None)?;
    let created = now_nanos();
    let streams_dir = meta::streams_dir(&js.config.store_dir, &js.config.account);
    let stream_dir = streams_dir.join(name);
    if cfg.storage == StorageType::File {
        let m = StreamMeta {
            config: cfg.clone(),
            created,
        };
        meta::write_meta(js.config.backend.as_ref(), &stream_dir, &m)
            .map_err(ApiError::stream_create)?;
    }
    let stream = match Stream::open(
        cfg,
        created,
        &streams_dir,
        js.config.sync,
        js.config.backend.clone(),
    ) {
        Ok(x) => x,
        Err(e) => {
            if stream_dir.exists() {
                let _ = js.config.backend.remove_dir_all(&stream_dir);
            }
            return Err(ApiError::stream_create(e));
        }
    };
    js.register(stream.clone());
    tracing::info!(stream = name, "stream created");
    let (mut info, _) = stream.info(&InfoRequest::default())?;
    // nats-server's create response (unlike info and update) does not name the domain.
    info.domain = None;
    Ok((info, true))
}

/// `STREAM.UPDATE.<name>`.
pub(super) fn update(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let result = update_inner(js, name, payload);
    announce(
        respond("stream_update", None, result),
        name,
        StreamAction::Modify,
    )
}

fn update_inner(js: &JetStream, name: &str, payload: &[u8]) -> Result<StreamInfo, ApiError> {
    let requested: StreamConfig = super::decode(js, payload)?;
    if requested.name != name {
        return Err(ApiError::stream_mismatch());
    }
    let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
    let old = stream.config();
    let mut cfg = requested.normalize()?.check_update(&old)?;
    check_consumer_limits(&old, &cfg, || running_consumers(&stream))?;
    crate::sourcing::direct::inherit(js, &mut cfg);
    check_overlap(js, &cfg)?;
    crate::cycles::check_stream(js, name, &cfg)?;
    crate::sourcing::config::check_cycle(&cfg, |n| js.stream(n).map(|s| s.config()))?;
    check_resources(js, &cfg, Some(&old))?;
    if let Some(dir) = &stream.dir {
        let m = StreamMeta {
            config: cfg.clone(),
            created: stream.created,
        };
        meta::write_meta(js.config.backend.as_ref(), dir, &m).map_err(ApiError::stream_update)?;
    }
    let added: Vec<String> = cfg
        .subjects
        .iter()
        .filter(|s| !old.subjects.contains(s))
        .cloned()
        .collect();
    let removed: Vec<String> = old
        .subjects
        .iter()
        .filter(|s| !cfg.subjects.contains(s))
        .cloned()
        .collect();
    let sources_changed = old.sources != cfg.sources || old.mirror != cfg.mirror;
    if old.mirror_direct != cfg.mirror_direct {
        // Withdrawn now; the mirror task offers it again once caught up.
        crate::sourcing::direct::set_ready(js, &stream, None);
    }
    stream.apply_config(cfg)?;
    js.unsubscribe(&stream, Some(&removed));
    js.subscribe(&stream, &added);
    if sources_changed {
        crate::sourcing::task::start(js, &stream);
    }
    tracing::info!(stream = name, "stream updated");
    let (info, _) = stream.info(&InfoRequest::default())?;
    Ok(info)
}

/// 10069 when an update's new `consumer_limits` would leave consumers above them (as
/// nats-server, which names them); `consumers` lists (name, max_ack_pending,
/// inactive_threshold), asked only when the limits change.
pub(crate) fn check_consumer_limits(
    old: &StreamConfig,
    new: &StreamConfig,
    consumers: impl FnOnce() -> Vec<(String, i64, i64)>,
) -> Result<(), ApiError> {
    match &new.consumer_limits {
        Some(limits) if new.consumer_limits != old.consumer_limits => {
            limits.check_existing(consumers())
        }
        _ => Ok(()),
    }
}

/// The consumers running on `stream`: (name, max_ack_pending, inactive_threshold).
pub(crate) fn running_consumers(stream: &Stream) -> Vec<(String, i64, i64)> {
    let consumers = stream.consumers.read();
    consumers
        .iter()
        .map(|(name, c)| {
            let st = c.state.lock();
            (
                name.clone(),
                st.config.max_ack_pending,
                st.config.inactive_threshold,
            )
        })
        .collect()
}

/// `STREAM.INFO.<name>`: always carries the paging fields (nats-server's struct embeds them).
pub(super) fn info(js: &JetStream, name: &str, payload: &[u8]) -> ApiResponse {
    let mut paged = Paged::default();
    let result = (|| {
        let req: InfoRequest = parse_body(js, payload)?;
        let stream = js.stream(name).ok_or_else(ApiError::stream_not_found)?;
        let (info, total) = stream.info(&req)?;
        if !req.subjects_filter.is_empty() {
            paged = Paged {
                total,
                offset: req.offset,
                limit: SUBJECTS_PAGE,
            };
        }
        Ok(info)
    })();
    respond("stream_info", Some(paged), result)
}

/// `STREAM.DELETE.<name>`: unsubscribes, drains and closes the store, removes its files.
pub(super) fn delete(js: &JetStream, name: &str) -> ApiResponse {
    let result = (|| {
        let stream = js.unregister(name).ok_or_else(ApiError::stream_not_found)?;
        crate::sourcing::task::stop(js, &stream);
        js.close_consumers(&stream, StateSync::Each);
        // The ingest task stores what is queued, closes the store and stops.
        if stream.request_close().blocking_recv().is_err() {
            stream.close_store();
        }
        stream.release_usage();
        if let Some(dir) = &stream.dir {
            meta::remove_stream_dir(js.config.backend.as_ref(), dir)
                .map_err(ApiError::stream_delete)?;
        }
        tracing::info!(stream = name, "stream deleted");
        Ok(Success { success: true })
    })();
    announce(
        respond("stream_delete", None, result),
        name,
        StreamAction::Delete,
    )
}

/// The streams matching a NAMES/LIST request, sorted by name, and the request.
fn matching(js: &JetStream, payload: &[u8]) -> Result<(Vec<Arc<Stream>>, ListRequest), ApiError> {
    let req: ListRequest = parse_body(js, payload)?;
    let all: Vec<Arc<Stream>> = js.streams.read().values().cloned().collect();
    let selected = all
        .into_iter()
        .filter(|s| {
            req.subject.is_empty()
                || s.subjects.read().iter().any(|subj| {
                    petrel_subject::subjects_collide(subj.as_bytes(), req.subject.as_bytes())
                })
        })
        .collect();
    Ok((selected, req))
}

/// `STREAM.NAMES`.
pub(super) fn names(js: &JetStream, payload: &[u8]) -> ApiResponse {
    let mut paged = Paged {
        limit: NAMES_LIMIT,
        ..Paged::default()
    };
    let result = matching(js, payload).map(|(streams, req)| {
        paged.total = streams.len();
        paged.offset = req.offset.min(streams.len());
        NamesBody {
            streams: streams
                .into_iter()
                .skip(req.offset)
                .take(NAMES_LIMIT)
                .map(|s| s.name.clone())
                .collect(),
        }
    });
    respond("stream_names", Some(paged), result)
}

/// `STREAM.LIST`.
pub(super) fn list(js: &JetStream, payload: &[u8]) -> ApiResponse {
    let mut paged = Paged {
        limit: LIST_LIMIT,
        ..Paged::default()
    };
    let result = matching(js, payload).and_then(|(streams, req)| {
        paged.total = streams.len();
        paged.offset = req.offset.min(streams.len());
        let mut infos = Vec::new();
        for s in streams.into_iter().skip(req.offset).take(LIST_LIMIT) {
            infos.push(s.info(&InfoRequest::default())?.0);
        }
        Ok(ListBody { streams: infos })
    });
    respond("stream_list", Some(paged), result)
}
