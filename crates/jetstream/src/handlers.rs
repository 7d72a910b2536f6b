//! The handlers of JetStream's internal subscriptions, called by the router on the
//! publisher's task: `$JS.API.>` (requests, and pull requests straight to their consumer),
//! a stream's subjects (its ingest queue), a consumer's ack and flow-control subjects (its
//! event queue). Each only queues work for JetStream's own tasks and reports back-pressure
//! ([`Flow`]); a refused publish is answered here with the error nats-server sends.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use serde::Serialize;

use crate::api::ApiRequest;
use crate::backlog::Pushed;
use crate::consumer::{Consumer, Event};
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::json::encode;
use crate::port::{Flow, Handler, Incoming, ServerMsg};
use crate::stream::{Inbound, Stream};
use crate::time::{rfc3339_nano, OncePerSecond};

/// Prefix of pull requests.
pub(crate) const NEXT_PREFIX: &str = "$JS.API.CONSUMER.MSG.NEXT.";
/// Direct gets: `$JS.API.DIRECT.GET.<stream>[.<subject>]`.
const DIRECT_PREFIX: &str = "$JS.API.DIRECT.GET.";
/// Subject of the advisory sent when API requests are dropped.
pub(crate) const API_LIMIT_ADVISORY: &str = "$JS.EVENT.ADVISORY.API.LIMIT_REACHED";
/// Header of the PubAck that refuses a publish to a full ingest queue.
const TOO_MANY_REQUESTS: &[u8] = b"NATS/1.0 429 Too Many Requests\r\n\r\n";

/// `$JS.API.>`: only clients reach it (the port enforces [`crate::port::Accept`]).
pub(crate) struct ApiHandler {
    pub js: Weak<JetStream>,
    /// At most one API-limit advisory (and warning) a second.
    pub limit_gate: OncePerSecond,
}

impl Handler for ApiHandler {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let Some(js) = self.js.upgrade() else {
            return Flow::Ok;
        };
        if let Some(names) = msg.subject.strip_prefix(NEXT_PREFIX) {
            return js.pull_request(names, msg.reply, msg.payload);
        }
        let mut answer = None;
        if let Some(rest) = msg.subject.strip_prefix(DIRECT_PREFIX) {
            // nats-server subscribes DIRECT.GET only for streams that allow it (and their
            // mirrors with mirror_direct, in one queue group).
            let name = rest.split('.').next().unwrap_or_default();
            answer = crate::sourcing::direct::responder(&js, name);
            if answer.is_none() {
                return no_direct_responder(&js, name, &msg);
            }
        }
        let req = ApiRequest {
            subject: msg.subject.to_string(),
            reply: msg.reply.map(str::to_string),
            headers: msg.headers,
            payload: msg.payload,
            answer,
        };
        let size = req.size();
        match js.api.push(req, size) {
            Pushed::Ok => Flow::Ok,
            Pushed::Stall => Flow::Stall(js.api.clone()),
            Pushed::Full(req) => self.limit_reached(&js, &req),
            Pushed::Closed => Flow::Ok,
        }
    }
}

/// No stream here answers a `DIRECT.GET` for stream `name`. On one node that is the
/// no-responders status the router sends. In a cluster every node hears `$JS.API.>`
/// through the routes, so the publisher's server counts every request delivered: the meta
/// leader, which knows every assignment, sends the 503 status itself when no stream in
/// the cluster answers (as the interest-based 503 of nats-server, whose nodes subscribe
/// `DIRECT.GET.<stream>` only where a replica answers).
fn no_direct_responder(js: &JetStream, name: &str, msg: &Incoming<'_>) -> Flow {
    let (Some(cluster), Some(reply)) = (js.cluster.get(), msg.reply) else {
        return Flow::NoResponders;
    };
    if !cluster.is_meta_leader() || cluster.state.answers_direct(&js.config.account, name) {
        return Flow::NoResponders;
    }
    Flow::Answer(ServerMsg {
        subject: reply.to_string(),
        headers: Some(petrel_wire::headers::no_responders(msg.subject.as_bytes())),
        payload: Bytes::new(),
    })
}

#[derive(Serialize)]
struct LimitAdvisory<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    timestamp: String,
    server: &'a str,
    dropped: i64,
}

impl ApiHandler {
    /// The API queue is full: the request is dropped (the client times out, as with
    /// nats-server's queue limit), logged and advised at most once a second.
    fn limit_reached(&self, js: &JetStream, req: &ApiRequest) -> Flow {
        let Some(now) = self.limit_gate.pass() else {
            return Flow::Ok;
        };
        tracing::warn!(subject = %req.subject, queued = js.api.len(),
            "JetStream API queue limit reached, dropping requests");
        Flow::Answer(ServerMsg {
            subject: API_LIMIT_ADVISORY.to_string(),
            headers: None,
            payload: encode(&LimitAdvisory {
                kind: "io.nats.jetstream.advisory.v1.api_limit_reached",
                id: crate::advisory::next_id(),
                timestamp: rfc3339_nano(now),
                server: &js.config.server_name,
                dropped: 1,
            }),
        })
    }
}

/// A stream's subjects: everything published there, the server's own messages included.
pub(crate) struct StreamHandler {
    pub stream: Arc<Stream>,
    /// At most one "excessive ingest rate" warning a second.
    pub warn_gate: OncePerSecond,
}

#[derive(Serialize)]
struct RefusedAck<'a> {
    error: &'a ApiError,
    stream: &'a str,
    seq: u64,
}

impl Handler for StreamHandler {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        if let Some(error) = refused_headers(&msg) {
            return self.refuse(msg.reply, error);
        }
        let inbound = Inbound {
            subject: msg.subject.to_string(),
            reply: msg.reply.filter(|r| !r.is_empty()).map(str::to_string),
            headers: msg.headers,
            payload: msg.payload,
        };
        match self.stream.enqueue(inbound) {
            Ok(flow) => flow,
            Err(Some(reply)) => {
                if self.warn_gate.pass().is_some() {
                    tracing::warn!(stream = %self.stream.name,
                        "dropping messages due to excessive stream ingest rate");
                }
                Flow::Answer(ServerMsg {
                    subject: reply,
                    headers: Some(Bytes::from_static(TOO_MANY_REQUESTS)),
                    payload: encode(&RefusedAck {
                        error: &ApiError::too_many_requests(),
                        stream: &self.stream.name,
                        seq: 0,
                    }),
                })
            }
            Err(None) => Flow::Ok,
        }
    }
}

impl StreamHandler {
    /// Refuses a published message before it is queued; the node that would store it says
    /// so.
    fn refuse(&self, reply: Option<&str>, error: ApiError) -> Flow {
        let leads = self
            .stream
            .replica
            .get()
            .is_none_or(|r| r.group.is_leader());
        match reply.filter(|r| !r.is_empty()) {
            Some(reply) if leads => Flow::Answer(ServerMsg {
                subject: reply.to_string(),
                headers: None,
                payload: encode(&RefusedAck {
                    error: &error,
                    stream: &self.stream.name,
                    seq: 0,
                }),
            }),
            _ => Flow::Ok,
        }
    }
}

/// Headers only the server may put on a stored message (nats-server 2.12+): sourcing's
/// `Nats-Stream-Source` (10227), and a fired schedule's `Nats-Scheduler` with a
/// `Nats-Schedule-Next` other than `purge` (10212: clients may only purge a schedule).
fn refused_headers(msg: &Incoming<'_>) -> Option<ApiError> {
    let block = msg.headers.as_deref().filter(|h| !h.is_empty())?;
    // Most messages have none of them: one byte search first.
    memchr::memmem::find(block, b"Nats-S")?;
    let h = petrel_wire::headers::parse(block)?;
    if crate::sourcing::sourced(&h) {
        return Some(ApiError::source_header_not_allowed());
    }
    let next = h.get(crate::schedule::NEXT).filter(|n| !n.is_empty());
    let scheduler = h.get(crate::schedule::SCHEDULER).is_some();
    match next {
        Some(n) if n != "purge" => Some(ApiError::schedule_scheduler_invalid()),
        None if scheduler => Some(ApiError::schedule_scheduler_invalid()),
        _ => None,
    }
}

/// A consumer's `$JS.ACK.<stream>.<consumer>.>` and `$JS.FC.<stream>.<consumer>.>`.
pub(crate) struct ConsumerHandler {
    pub consumer: Arc<Consumer>,
    pub js: Weak<JetStream>,
}

impl Handler for ConsumerHandler {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let c = &self.consumer;
        if let (Some(reply), Some(js)) = (msg.reply, self.js.upgrade()) {
            // `+NXT` delivers to the ack's reply subject, like a pull request.
            if msg.payload.starts_with(b"+NXT") && js.reply_loops(&c.stream, reply) {
                return Flow::Ok;
            }
        }
        let ev = if msg.subject.starts_with("$JS.FC.") {
            Event::FlowControl {
                subject: msg.subject.to_string(),
            }
        } else {
            Event::Ack {
                subject: msg.subject.to_string(),
                reply: msg.reply.map(str::to_string),
                payload: msg.payload,
            }
        };
        c.push_event(ev)
    }
}

impl JetStream {
    /// Whether deliveries of a consumer of `stream` sent to the client-chosen `reply` (a
    /// pull request's, `+NXT`'s) would be stored by a stream that feeds back into `stream`:
    /// every delivery would then make a new message to deliver. Such requests are dropped
    /// (a status sent there would be stored too). Cheap unless a stream captures `reply`.
    pub(crate) fn reply_loops(&self, stream: &str, reply: &str) -> bool {
        let captured = self.streams.read().values().any(|s| s.captures(reply));
        let loops = captured
            && crate::cycles::Graph::of(self)
                .with_consumer(stream, "", reply)
                .cycle_through(stream)
                .is_some();
        if loops {
            tracing::debug!(
                stream,
                reply,
                "pull request whose deliveries would loop dropped"
            );
        }
        loops
    }

    /// `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` (`names` is what follows the
    /// prefix): handed straight to the consumer's task (no API round trip). Unknown
    /// consumers get no reply, as other unknown APIs.
    fn pull_request(&self, names: &str, reply: Option<&str>, payload: Bytes) -> Flow {
        let mut names = names.split('.');
        let (Some(stream), Some(consumer), None) = (names.next(), names.next(), names.next())
        else {
            return Flow::Ok;
        };
        let Some(reply) = reply.filter(|r| !r.is_empty()) else {
            return Flow::Ok;
        };
        if self.reply_loops(stream, reply) {
            return Flow::Ok;
        }
        let consumer = self
            .stream(stream)
            .and_then(|s| s.consumers.read().get(consumer).cloned());
        match consumer {
            Some(c) => c.push_event(Event::Next {
                reply: reply.to_string(),
                payload,
            }),
            None => Flow::Ok,
        }
    }
}
