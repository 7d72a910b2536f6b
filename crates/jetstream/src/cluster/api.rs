//! Who answers which `$JS.API` request in a cluster. Every node hears every request; one
//! answers:
//!
//! * account-level requests (`INFO`, `STREAM.CREATE/UPDATE/DELETE/NAMES/LIST`): the meta
//!   leader, from the assignments, proposing changes to the meta group;
//! * requests about one stream (`STREAM.INFO/PURGE/MSG.*`, `DIRECT.GET`, `CONSUMER.*`,
//!   `STREAM.LEADER.STEPDOWN`): that stream's group leader, with the local handlers (a
//!   purge or delete goes through the group); for a stream that does not exist, the meta
//!   leader (its local handler answers 10059).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::meta::{MetaOp, StreamAssignment};
use super::JsCluster;
use crate::advisory::StreamAction;
use crate::api::streams::{
    announce, parse_config, CreateBody, ListBody, ListRequest, NamesBody, Success,
};
use crate::api::{parse_body, respond, ApiRequest, ApiResponse, Paged};
use crate::config::StreamConfig;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::stream::{InfoRequest, StreamInfo};
use crate::time::now_nanos;

/// How long a node waits before saying there is no meta leader.
const LEADERLESS_DELAY: Duration = Duration::from_millis(500);
/// Why snapshots and restores are refused.
const NOT_YET: &str = "not supported on a clustered server yet";

/// Never called: `INFO` on the meta leader goes to the local handler.
fn unreachable_response() -> ApiResponse {
    ApiResponse::default()
}

/// How long a create waits for the new stream's local replica to elect a leader.
const CREATE_WAIT: Duration = Duration::from_secs(5);

/// `Some(reply)` when the cluster decides (`Some(None)`: this node stays silent); `None`
/// to let the local handlers answer.
pub(crate) fn dispatch(
    js: &JetStream,
    c: &Arc<JsCluster>,
    req: &ApiRequest,
    rest: &[&str],
) -> Option<Option<ApiResponse>> {
    let leader = c.is_meta_leader();
    let leaderless = c.meta.leader().is_none();
    // The meta leader answers; with no leader at all, every node says so after a pause
    // (as nats-server: a leader elected meanwhile answers first).
    let meta = |kind: &str, f: &dyn Fn() -> ApiResponse| {
        if leader {
            // A meta leader cut off from the others does not answer from stale state.
            if !confirmed(&c.meta) {
                return Some(None);
            }
            Some(Some(f()))
        } else if leaderless {
            std::thread::sleep(LEADERLESS_DELAY);
            Some(Some(respond::<()>(
                kind,
                None,
                Err(ApiError::cluster_not_available()),
            )))
        } else {
            Some(None)
        }
    };
    let p = &req.payload[..];
    match rest {
        ["INFO"] if leader => (!confirmed(&c.meta)).then_some(None),
        ["INFO"] => meta("account_info", &|| unreachable_response()),
        ["STREAM", "CREATE", name] => meta("stream_create", &|| create(js, c, name, p)),
        ["STREAM", "UPDATE", name] => meta("stream_update", &|| update(js, c, name, p)),
        ["STREAM", "DELETE", name] => meta("stream_delete", &|| delete(js, c, name)),
        ["STREAM", "NAMES"] => meta("stream_names", &|| names(js, c, p, false)),
        ["STREAM", "LIST"] => meta("stream_list", &|| names(js, c, p, true)),
        ["STREAM", "PEER", "REMOVE", name] => meta("stream_remove_peer", &|| {
            super::peers::remove_peer(c, &js.config.account, name, p)
        }),
        ["STREAM", "SNAPSHOT", _] => meta("stream_snapshot", &|| {
            respond::<()>(
                "stream_snapshot",
                None,
                Err(ApiError::stream_snapshot(NOT_YET)),
            )
        }),
        ["STREAM", "RESTORE", _] => meta("stream_restore", &|| {
            respond::<()>(
                "stream_restore",
                None,
                Err(ApiError::stream_restore(NOT_YET)),
            )
        }),
        _ => {
            let name = stream_token(rest)?;
            if c.state.stream(&js.config.account, name).is_none() {
                return match rest {
                    ["STREAM", "LEADER", "STEPDOWN", _] if leader => Some(Some(respond::<()>(
                        "stream_leader_stepdown",
                        None,
                        Err(ApiError::stream_not_found()),
                    ))),
                    _ => (!leader).then_some(None),
                };
            }
            let replica = js.stream(name).and_then(|s| s.replica.get().cloned());
            match replica {
                // Answered only after a quorum confirmed the leadership: a leader that
                // was cut off (and does not know yet that another one was elected) stays
                // silent rather than answer from a stale store.
                Some(r) if r.group.is_leader() && !confirmed(&r.group) => Some(None),
                Some(r) if r.group.is_leader() => match rest {
                    ["STREAM", "LEADER", "STEPDOWN", _] => Some(Some(step_down(c, &r, p))),
                    ["CONSUMER", "LEADER", "STEPDOWN", stream, consumer] => {
                        Some(Some(consumer_step_down(js, c, &r, (stream, consumer), p)))
                    }
                    _ => None,
                },
                // A replica that knows no leader says so after a pause (nats-server's
                // 10008 from the group's members), unless a leader appears meanwhile.
                Some(r) if r.group.leader().is_none() => {
                    let kind = response_type(rest)?;
                    std::thread::sleep(LEADERLESS_DELAY);
                    if r.group.leader().is_some() {
                        return Some(None);
                    }
                    let refused = Err(ApiError::cluster_not_available());
                    Some(Some(respond::<()>(kind, None, refused)))
                }
                _ => Some(None),
            }
        }
    }
}

/// The response type of a stream-scoped request (DIRECT.GET answers with a status).
fn response_type(rest: &[&str]) -> Option<&'static str> {
    Some(match rest {
        ["STREAM", "INFO", _] => "stream_info",
        ["STREAM", "PURGE", _] => "stream_purge",
        ["STREAM", "MSG", "GET", _] => "stream_msg_get",
        ["STREAM", "MSG", "DELETE", _] => "stream_msg_delete",
        ["STREAM", "LEADER", "STEPDOWN", _] => "stream_leader_stepdown",
        ["CONSUMER", "CREATE" | "DURABLE", ..] => "consumer_create",
        ["CONSUMER", "INFO", ..] => "consumer_info",
        ["CONSUMER", "PAUSE", ..] => "consumer_pause",
        ["CONSUMER", "UNPIN", ..] => "consumer_unpin",
        ["CONSUMER", "DELETE", ..] => "consumer_delete",
        ["CONSUMER", "NAMES", ..] => "consumer_names",
        ["CONSUMER", "LIST", ..] => "consumer_list",
        ["CONSUMER", "LEADER", "STEPDOWN", ..] => "consumer_leader_stepdown",
        _ => return None,
    })
}

/// How long a leader waits for a quorum to confirm it before answering a request.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// Whether this node's leadership of `group` is confirmed by a quorum now.
fn confirmed(group: &petrel_replication::Group) -> bool {
    block_on(group.confirm_leader(CONFIRM_WAIT))
}

/// The stream a stream-scoped request names.
fn stream_token<'a>(rest: &[&'a str]) -> Option<&'a str> {
    Some(match rest {
        ["STREAM", "INFO" | "PURGE", name] => name,
        ["STREAM", "MSG", "GET" | "DELETE", name] => name,
        ["STREAM", "LEADER", "STEPDOWN", name] => name,
        ["CONSUMER", "LEADER", "STEPDOWN", name, _] => name,
        ["CONSUMER", "DURABLE", "CREATE", name, ..] => name,
        ["CONSUMER", "CREATE" | "INFO" | "DELETE" | "NAMES" | "LIST" | "PAUSE" | "UNPIN", name, ..] => {
            name
        }
        ["DIRECT", "GET", name, ..] => name,
        _ => return None,
    })
}

/// Runs a future from the API's blocking thread.
pub(super) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

/// The stream's info: the local replica's when this node has one, else the config with
/// an empty state (a replica elsewhere holds the messages).
fn info_of(js: &JetStream, a: &StreamAssignment) -> StreamInfo {
    let local = super::replica_of(js, a).map(|(s, _)| s);
    if let Some(Ok((info, _))) = local.map(|s| s.info(&InfoRequest::default())) {
        return info;
    }
    StreamInfo::empty(a.config.clone(), a.created)
}

/// Waits (a little) for this node's replica of `a` ([`super::replica_of`]) to know its
/// leader, then reports it.
fn settled_info(js: &JetStream, c: &JsCluster, a: &StreamAssignment) -> StreamInfo {
    if a.has(c.me) {
        let deadline = Instant::now() + CREATE_WAIT;
        while Instant::now() < deadline {
            let led = super::replica_of(js, a).is_some_and(|(_, r)| r.group.leader().is_some());
            if led {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    info_of(js, a)
}

/// The stream's consumers as this replica knows them: running here when it leads the
/// stream, else the group's copies of their files. (name, max_ack_pending,
/// inactive_threshold).
fn replica_consumers(js: &JetStream, stream: &crate::stream::Stream) -> Vec<(String, i64, i64)> {
    if stream.replica.get().is_some_and(|r| r.runs_consumers()) {
        return crate::api::streams::running_consumers(stream);
    }
    let Some(dir) = &stream.dir else {
        return Vec::new();
    };
    crate::consumer::persist::read_all(js.config.backend.as_ref(), dir, &stream.name)
        .into_iter()
        .map(|f| {
            let c = f.meta.config;
            (c.name, c.max_ack_pending, c.inactive_threshold)
        })
        .collect()
}

/// 10065 when `cfg`'s subjects overlap another stream's in the account.
fn check_overlap(c: &JsCluster, account: &str, cfg: &StreamConfig) -> Result<(), ApiError> {
    for other in c.state.streams(account) {
        if other.config.name == cfg.name {
            continue;
        }
        let collide = cfg.subjects.iter().any(|a| {
            other
                .config
                .subjects
                .iter()
                .any(|b| petrel_subject::subjects_collide(a.as_bytes(), b.as_bytes()))
        });
        if collide {
            // Worded as a clustered nats-server 2.15 does; the log names the other stream.
            tracing::debug!(stream = %cfg.name, other = %other.config.name, "subjects overlap");
            return Err(ApiError::subject_overlap_clustered());
        }
    }
    Ok(())
}

/// A mirror or source cycle through the account's assigned streams (as on one node).
fn check_cycle(c: &JsCluster, account: &str, cfg: &StreamConfig) -> Result<(), ApiError> {
    crate::sourcing::config::check_cycle(cfg, |n| c.state.stream(account, n).map(|a| a.config))
}

fn create(js: &JetStream, c: &JsCluster, name: &str, payload: &[u8]) -> ApiResponse {
    let mut did = false;
    let result = (|| {
        let cfg = parse_config(js, name, payload, true)?;
        let account = &js.config.account;
        if let Some(a) = c.state.stream(account, name) {
            if a.config == cfg {
                return Ok(CreateBody {
                    info: info_of(js, &a),
                    did_create: false,
                });
            }
            return Err(ApiError::stream_name_exist());
        }
        if cfg.sealed {
            return Err(ApiError::stream_invalid_config(
                "stream configuration for create can not be sealed",
            ));
        }
        crate::sourcing::direct::check_create(&cfg)?;
        check_overlap(c, account, &cfg)?;
        check_cycle(c, account, &cfg)?;
        let n = usize::try_from(cfg.num_replicas.max(1)).unwrap_or(1);
        let a = StreamAssignment {
            account: account.clone(),
            peers: super::placement::place(c, n, &cfg, &[])?,
            added: Vec::new(),
            group: format!("S-R{n}F-{:08x}", fastrand::u32(..)),
            created: now_nanos(),
            config: cfg,
        };
        tracing::debug!(stream = name, group = %a.group, "proposing the stream");
        let reply = block_on(c.propose_meta(&MetaOp::AddStream(a.clone())))
            .map_err(|_| ApiError::cluster_not_available())?;
        tracing::debug!(stream = name, "stream assigned");
        if !reply.is_empty() {
            return Err(ApiError::stream_name_exist());
        }
        did = true;
        let mut info = settled_info(js, c, &a);
        info.domain = None;
        Ok(CreateBody {
            info,
            did_create: true,
        })
    })();
    let resp = respond("stream_create", None, result);
    if did {
        announce(resp, name, StreamAction::Create)
    } else {
        resp
    }
}

fn update(js: &JetStream, c: &JsCluster, name: &str, payload: &[u8]) -> ApiResponse {
    let result = (|| {
        let requested: StreamConfig = crate::api::decode(js, payload)?;
        if requested.name != name {
            return Err(ApiError::stream_mismatch());
        }
        let account = &js.config.account;
        let a = c
            .state
            .stream(account, name)
            .ok_or_else(ApiError::stream_not_found)?;
        let cfg = requested.normalize_for(true)?.check_update(&a.config)?;
        // The consumers are known where a replica is (every node of a cluster no larger
        // than the stream's replica count).
        if let Some(stream) = js.stream(name).filter(|s| s.replica.get().is_some()) {
            let consumers = || replica_consumers(js, &stream);
            crate::api::streams::check_consumer_limits(&a.config, &cfg, consumers)?;
        }
        check_overlap(c, account, &cfg)?;
        check_cycle(c, account, &cfg)?;
        // A new `num_replicas` moves the stream to a new peer set.
        let peers = if cfg.num_replicas == a.config.num_replicas {
            None
        } else {
            let n = usize::try_from(cfg.num_replicas.max(1)).unwrap_or(1);
            Some(super::peers::scaled(c, &a, &cfg, n)?)
        };
        let op = MetaOp::UpdateStream {
            account: account.clone(),
            config: cfg.clone(),
            peers,
        };
        block_on(c.propose_meta(&op)).map_err(|_| ApiError::cluster_not_available())?;
        // The local replica takes the config through the reconcile task.
        let deadline = Instant::now() + CREATE_WAIT;
        while a.has(c.me)
            && Instant::now() < deadline
            && js.stream(name).is_some_and(|s| s.config() != cfg)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let a = StreamAssignment { config: cfg, ..a };
        Ok(info_of(js, &a))
    })();
    announce(
        respond("stream_update", None, result),
        name,
        StreamAction::Modify,
    )
}

fn delete(js: &JetStream, c: &JsCluster, name: &str) -> ApiResponse {
    let result = (|| {
        let account = js.config.account.clone();
        c.state
            .stream(&account, name)
            .ok_or_else(ApiError::stream_not_found)?;
        let op = MetaOp::DeleteStream {
            account,
            name: name.to_string(),
        };
        block_on(c.propose_meta(&op)).map_err(|_| ApiError::cluster_not_available())?;
        Ok(Success { success: true })
    })();
    announce(
        respond("stream_delete", None, result),
        name,
        StreamAction::Delete,
    )
}

/// `STREAM.NAMES` / `STREAM.LIST` from the assignments (`list`: with infos).
fn names(js: &JetStream, c: &JsCluster, payload: &[u8], list: bool) -> ApiResponse {
    let (kind, limit) = if list {
        ("stream_list", crate::api::streams::LIST_LIMIT)
    } else {
        ("stream_names", crate::api::streams::NAMES_LIMIT)
    };
    let req: ListRequest = match parse_body(js, payload) {
        Ok(r) => r,
        Err(e) => return respond::<()>(kind, None, Err(e)),
    };
    let mut all = c.state.streams(&js.config.account);
    all.retain(|a| {
        req.subject.is_empty()
            || a.config
                .subjects
                .iter()
                .any(|s| petrel_subject::subjects_collide(s.as_bytes(), req.subject.as_bytes()))
    });
    all.sort_by(|x, y| x.config.name.cmp(&y.config.name));
    let paged = Paged {
        total: all.len(),
        offset: req.offset,
        limit,
    };
    let page = all.into_iter().skip(req.offset).take(limit);
    if list {
        let streams = page.map(|a| info_of(js, &a)).collect();
        respond(kind, Some(paged), Ok(ListBody { streams }))
    } else {
        let streams = page.map(|a| a.config.name).collect();
        respond(kind, Some(paged), Ok(NamesBody { streams }))
    }
}

/// `STREAM.LEADER.STEPDOWN.<name>` on the stream leader: [`hand_over`].
fn step_down(c: &Arc<JsCluster>, r: &Arc<super::replica::Replica>, payload: &[u8]) -> ApiResponse {
    respond("stream_leader_stepdown", None, hand_over(c, r, payload))
}

/// Hands the stream's leadership to the replica the request's `placement` asks for, or
/// a random online one, in the background, and answers at once (as nats-server). An R1
/// stream has nobody to hand over to: nats-server answers success, the body unread.
fn hand_over(
    c: &Arc<JsCluster>,
    r: &Arc<super::replica::Replica>,
    payload: &[u8],
) -> Result<Success, ApiError> {
    let members: BTreeMap<_, _> = r.assignment.lock().peers.iter().cloned().collect();
    if members.len() == 1 {
        return Ok(Success { success: true });
    }
    let target =
        super::stepdown::placement(payload).and_then(|p| super::stepdown::target(c, &members, &p));
    target.map(|to| {
        let (c, g) = (c.clone(), r.group.clone());
        tokio::runtime::Handle::current().spawn(async move {
            if let Err(e) = g.step_down(c.transport.as_ref(), to).await {
                tracing::warn!(group = %g.name, "stepdown failed: {e}");
            }
        });
        Success { success: true }
    })
}

/// `CONSUMER.LEADER.STEPDOWN.<stream>.<consumer>` on the stream leader. A stream's
/// consumers run on its leader (their state goes through the stream's group), so the
/// consumer's leadership moves with the stream's: [`hand_over`], with the consumer's
/// placement rules and answers (10014 for a consumer that does not exist).
fn consumer_step_down(
    js: &JetStream,
    c: &Arc<JsCluster>,
    r: &Arc<super::replica::Replica>,
    (stream, consumer): (&str, &str),
    payload: &[u8],
) -> ApiResponse {
    let found = js
        .stream(stream)
        .is_some_and(|s| s.consumers.read().contains_key(consumer));
    let result = if found {
        hand_over(c, r, payload)
    } else {
        Err(ApiError::consumer_not_found())
    };
    respond("consumer_leader_stepdown", None, result)
}

#[cfg(test)]
mod tests {
    use super::stream_token;

    #[test]
    fn stream_scoped_requests_name_their_stream() {
        let cases: &[(&str, Option<&str>)] = &[
            ("STREAM.INFO.S", Some("S")),
            ("STREAM.PURGE.S", Some("S")),
            ("STREAM.MSG.GET.S", Some("S")),
            ("STREAM.MSG.DELETE.S", Some("S")),
            ("STREAM.LEADER.STEPDOWN.S", Some("S")),
            ("CONSUMER.LEADER.STEPDOWN.S.C", Some("S")),
            ("CONSUMER.CREATE.S", Some("S")),
            ("CONSUMER.CREATE.S.C.filter.x", Some("S")),
            ("CONSUMER.DURABLE.CREATE.S.C", Some("S")),
            ("CONSUMER.INFO.S.C", Some("S")),
            ("CONSUMER.LIST.S", Some("S")),
            ("DIRECT.GET.S", Some("S")),
            ("DIRECT.GET.S.a.b", Some("S")),
            ("STREAM.CREATE.S", None),
            ("INFO", None),
            ("STREAM.PEER.REMOVE.S", None),
        ];
        for (subject, want) in cases {
            let tokens: Vec<&str> = subject.split('.').collect();
            assert_eq!(stream_token(&tokens), *want, "{subject}");
        }
    }
}
