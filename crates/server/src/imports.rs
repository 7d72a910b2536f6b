//! Account imports at run time. Each import is an internal subscription whose
//! [`Importer`] turns a message into one to publish in another account ([`Forward`]),
//! which the router publishes right after the message's own deliveries:
//! - a **stream import** listens in the exporter on the imported subject and republishes
//!   in the importer under its local subject (prefix, strict mapping, or unchanged), reply
//!   and headers kept;
//! - a **service import** listens in the importer on its local subject and sends the
//!   request to the exporter's subject with a reply of its own, `_R_.<importer tag>.<id>`,
//!   and a `Nats-Request-Info` header naming the requesting account;
//! - a **response import** (one per importer, in each exporter it imports services from)
//!   listens on `_R_.<importer tag>.>` and carries responses back to the requester's own
//!   reply subject: one for singleton services, any number within the response threshold
//!   for streamed and chunked ones.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use petrel_config::{AccountConfig, ImportKind, ResponseType};
use petrel_jetstream::Accept;
use petrel_subject::StrictMapping;

use crate::account::{Account, Accounts, ImportSubs};
use crate::client::Client;
use crate::outbound::MsgRef;

/// How long a service import passes responses back (nats-server's default threshold).
const RESPONSE_THRESHOLD: Duration = Duration::from_secs(120);
/// Requests awaiting responses per importer and exporter (bounded: a flood of requests
/// nobody answers cannot grow it without end).
const MAX_PENDING_RESPONSES: usize = 64 * 1024;
/// Header telling a service which account asked.
const REQUEST_INFO: &str = "Nats-Request-Info";

/// A message to publish in another account.
pub(crate) struct Forward {
    pub account: Arc<Account>,
    /// The subject it is routed on there.
    pub subject: Bytes,
    /// The subject it shows, when not `subject` (a consumer delivery keeps its stored
    /// subject).
    pub shown: Option<Bytes>,
    /// Published as the destination account's server client (a stream import: what it
    /// carries is never a request there), else as the original publisher.
    pub as_server: bool,
    /// For a service request with a reply: its pending response.
    pub request: Option<Waiting>,
    pub reply: Option<Bytes>,
    pub hdr_len: Option<usize>,
    pub data: Bytes,
}

/// A service request's pending response, forgotten when nobody took the request.
pub(crate) struct Waiting {
    responses: Arc<Responses>,
    token: String,
    /// The requester's own reply subject.
    pub reply: Bytes,
}

impl Waiting {
    /// Drops the pending response (the request reached nobody).
    pub fn forget(&self) {
        self.responses.pending.lock().remove(&self.token);
    }
}

/// What an import subscription does with a message.
pub(crate) trait Importer: Send + Sync {
    /// Which publishers it hears.
    fn accept(&self) -> Accept;
    /// The message to publish in the other account, if any; `route` is the subject the
    /// message was routed on.
    fn forward(&self, route: &[u8], msg: &MsgRef<'_>, from: &Client) -> Option<Forward>;
    /// Whether a message on `subject` would reach anyone through this import (push
    /// consumers deliver, and go inactive, by it).
    fn has_interest(&self, _subject: &[u8]) -> bool {
        true
    }
}

/// Sets up every configured import (the configuration was checked when it was read).
pub(crate) fn install(accounts: &Accounts, configs: &[AccountConfig]) {
    for cfg in configs {
        let Some(importer) = accounts.get(&cfg.name) else {
            continue;
        };
        for import in &cfg.imports {
            let Some(exporter) = accounts.get(&import.account) else {
                continue;
            };
            let response_type = configs
                .iter()
                .find(|c| c.name == import.account)
                .and_then(|c| {
                    c.exports.iter().find(|e| {
                        e.service.is_some()
                            && petrel_subject::is_subset(
                                import.subject.as_bytes(),
                                e.subject.as_bytes(),
                            )
                    })
                })
                .and_then(|e| e.service)
                .unwrap_or_default();
            match &import.kind {
                ImportKind::Stream { .. } => {
                    let local = import.local_subject();
                    let mapping = (local != import.subject)
                        .then(|| StrictMapping::new(&import.subject, &local))
                        .flatten();
                    let prefix = match &import.kind {
                        ImportKind::Stream {
                            prefix: Some(p), ..
                        } => Some(format!("{}.", p.trim_end_matches('.'))),
                        _ => None,
                    };
                    let imp = StreamImport {
                        importer: Arc::downgrade(&importer),
                        prefix,
                        mapping,
                    };
                    exporter.subscribe_import(
                        &import.subject,
                        Arc::new(imp),
                        ImportSubs::Configured,
                    );
                }
                ImportKind::Service { share, .. } => service(
                    &importer,
                    &exporter,
                    &import.local_subject(),
                    &import.subject,
                    (response_type, *share),
                    ImportSubs::Configured,
                ),
            }
        }
    }
}

/// A service import: requests on `local` in `importer` go to `remote` in `exporter`,
/// with its response type and whether it shares the requester's details.
pub(crate) fn service(
    importer: &Arc<Account>,
    exporter: &Arc<Account>,
    local: &str,
    remote: &str,
    (response_type, share): (ResponseType, bool),
    kind: ImportSubs,
) {
    let imp = ServiceImport {
        exporter: Arc::downgrade(exporter),
        importer: importer.name.clone(),
        mapping: (local != remote)
            .then(|| StrictMapping::new(local, remote))
            .flatten(),
        responses: responses_for(importer, exporter),
        response_type,
        share,
    };
    importer.subscribe_import(local, Arc::new(imp), kind);
}

/// The pending responses from `exporter` to `importer`, creating the exporter's
/// `_R_.<importer tag>.>` subscription the first time.
fn responses_for(importer: &Arc<Account>, exporter: &Arc<Account>) -> Arc<Responses> {
    let mut routes = exporter.response_routes.lock();
    if let Some(r) = routes.get(&importer.name) {
        return r.clone();
    }
    let tag = reply_tag(&importer.name);
    let responses = Arc::new(Responses {
        prefix: format!("_R_.{tag}."),
        pending: Mutex::new(HashMap::new()),
    });
    let imp = ResponseImport {
        importer: Arc::downgrade(importer),
        responses: responses.clone(),
    };
    exporter.subscribe_import(
        &format!("_R_.{tag}.>"),
        Arc::new(imp),
        ImportSubs::Responses,
    );
    routes.insert(importer.name.clone(), responses.clone());
    responses
}

/// Six base62 characters fixed per importing account (FNV-1a of its name).
fn reply_tag(account: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in account.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..6).map(|_| base62(&mut h)).collect()
}

fn base62(h: &mut u64) -> char {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let c = DIGITS[(*h % 62) as usize] as char;
    *h /= 62;
    c
}

/// A stream import: republishes the exporter's messages in the importer.
struct StreamImport {
    importer: Weak<Account>,
    prefix: Option<String>,
    mapping: Option<StrictMapping>,
}

impl StreamImport {
    /// `subject` as the importer sees it.
    fn local(&self, subject: &[u8]) -> Option<String> {
        let subject = std::str::from_utf8(subject).ok()?;
        match (&self.prefix, &self.mapping) {
            (Some(p), _) => Some(format!("{p}{subject}")),
            (None, Some(m)) => m.apply(subject),
            (None, None) => Some(subject.to_string()),
        }
    }
}

impl Importer for StreamImport {
    fn accept(&self) -> Accept {
        Accept::Everyone
    }

    fn has_interest(&self, subject: &[u8]) -> bool {
        let (Some(account), Some(local)) = (self.importer.upgrade(), self.local(subject)) else {
            return false;
        };
        let heard = !account
            .sublist
            .read()
            .match_subject(local.as_bytes())
            .is_empty();
        heard
    }

    fn forward(&self, route: &[u8], msg: &MsgRef<'_>, _from: &Client) -> Option<Forward> {
        let account = self.importer.upgrade()?;
        let local = self.local(route)?;
        Some(Forward {
            account,
            as_server: true,
            request: None,
            subject: Bytes::from(local),
            shown: (msg.subject != route).then(|| Bytes::copy_from_slice(msg.subject)),
            reply: msg.reply.map(Bytes::copy_from_slice),
            hdr_len: msg.hdr_len,
            data: msg.bytes_from(0),
        })
    }
}

/// Requests waiting for responses: reply token → where the response goes.
pub(crate) struct Responses {
    /// `_R_.<importer tag>.`
    prefix: String,
    pending: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    reply: Bytes,
    singleton: bool,
    until: Instant,
}

impl Responses {
    /// A reply subject for a request whose requester listens on `reply`, and its token;
    /// `None` when too many requests are waiting.
    fn register(&self, reply: &[u8], response_type: ResponseType) -> Option<(Bytes, String)> {
        let now = Instant::now();
        let mut pending = self.pending.lock();
        if pending.len() >= MAX_PENDING_RESPONSES {
            pending.retain(|_, p| p.until > now);
            if pending.len() >= MAX_PENDING_RESPONSES {
                return None;
            }
        }
        let token = loop {
            let t: String = (0..6)
                .map(|_| {
                    let mut h = fastrand::u64(..);
                    base62(&mut h)
                })
                .collect();
            if !pending.contains_key(&t) {
                break t;
            }
        };
        pending.insert(
            token.clone(),
            Pending {
                reply: Bytes::copy_from_slice(reply),
                singleton: response_type == ResponseType::Singleton,
                until: now + RESPONSE_THRESHOLD,
            },
        );
        Some((Bytes::from(format!("{}{token}", self.prefix)), token))
    }

    /// Where a response on `subject` goes, if its request is still waiting.
    fn take(&self, subject: &str) -> Option<Bytes> {
        let token = subject.strip_prefix(&self.prefix)?;
        let mut pending = self.pending.lock();
        let p = pending.get(token)?;
        if p.until <= Instant::now() {
            pending.remove(token);
            return None;
        }
        if p.singleton {
            return pending.remove(token).map(|p| p.reply);
        }
        Some(p.reply.clone())
    }
}

/// A service import: sends the importer's requests to the exporter.
struct ServiceImport {
    exporter: Weak<Account>,
    importer: String,
    /// Local subject → exported subject, when they differ.
    mapping: Option<StrictMapping>,
    responses: Arc<Responses>,
    response_type: ResponseType,
    share: bool,
}

impl Importer for ServiceImport {
    fn accept(&self) -> Accept {
        Accept::ClientsOnly
    }

    fn forward(&self, route: &[u8], msg: &MsgRef<'_>, from: &Client) -> Option<Forward> {
        let account = self.exporter.upgrade()?;
        let local = std::str::from_utf8(route).ok()?;
        let subject = match &self.mapping {
            Some(m) => m.apply(local)?,
            None => local.to_string(),
        };
        let (reply, request) = match msg.reply {
            Some(r) => {
                let (mapped, token) = self.responses.register(r, self.response_type)?;
                let waiting = Waiting {
                    responses: self.responses.clone(),
                    token,
                    reply: Bytes::copy_from_slice(r),
                };
                (Some(mapped), Some(waiting))
            }
            None => (None, None),
        };
        let (hdr_len, data) = with_request_info(msg, &self.request_info(from));
        Some(Forward {
            account,
            subject: Bytes::from(subject),
            shown: None,
            as_server: false,
            request,
            reply,
            hdr_len: Some(hdr_len),
            data,
        })
    }
}

impl ServiceImport {
    /// The `Nats-Request-Info` value: the requesting account and its RTT, and with `share`
    /// the requester's user and connection too.
    fn request_info(&self, from: &Client) -> String {
        let rtt = from.meta.rtt_nanos();
        let account = serde_json::Value::String(self.importer.clone());
        if !self.share {
            return format!("{{\"acc\":{account},\"rtt\":{rtt}}}");
        }
        let user = from.meta.user().unwrap_or_default();
        let info = serde_json::json!({
            "host": from.addr.ip().to_string(),
            "id": from.cid,
            "acc": self.importer,
            "user": user,
            "rtt": rtt,
            "kind": "Client",
            "client_type": "nats",
        });
        info.to_string()
    }
}

/// The message's header block with `Nats-Request-Info: <info>` added (a new block when it
/// had none), and its payload after it.
fn with_request_info(msg: &MsgRef<'_>, info: &str) -> (usize, Bytes) {
    let (headers, payload) = match msg.hdr_len {
        Some(h) => (&msg.data[..h], &msg.data[h..]),
        None => (&b"NATS/1.0\r\n\r\n"[..], msg.data),
    };
    let kept = headers.strip_suffix(b"\r\n").unwrap_or(headers);
    let mut out = BytesMut::with_capacity(kept.len() + info.len() + payload.len() + 32);
    // The requester's own `Nats-Request-Info` lines are dropped: only the server says who
    // asked.
    for line in kept.split_inclusive(|b| *b == b'\n') {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case(REQUEST_INFO.as_bytes()) {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(REQUEST_INFO.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(info.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    let hdr_len = out.len();
    out.extend_from_slice(payload);
    (hdr_len, out.freeze())
}

/// Responses from the exporter back to the importer's requesters: published there as the
/// server (a response is never a request, whatever reply subject the requester chose).
struct ResponseImport {
    importer: Weak<Account>,
    responses: Arc<Responses>,
}

impl Importer for ResponseImport {
    fn accept(&self) -> Accept {
        Accept::Everyone
    }

    fn forward(&self, route: &[u8], msg: &MsgRef<'_>, _from: &Client) -> Option<Forward> {
        let account = self.importer.upgrade()?;
        let reply = self.responses.take(std::str::from_utf8(route).ok()?)?;
        Some(Forward {
            account,
            subject: reply,
            shown: None,
            as_server: true,
            request: None,
            reply: msg.reply.map(Bytes::copy_from_slice),
            hdr_len: msg.hdr_len,
            data: msg.bytes_from(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_info_is_added_to_the_headers() {
        let data = Bytes::from_static(b"NATS/1.0\r\nX: 1\r\n\r\nping");
        let msg = MsgRef {
            subject: b"s",
            reply: None,
            hdr_len: Some(18),
            data: &data,
            owner: Some(&data),
        };
        let (h, out) = with_request_info(&msg, "{\"acc\":\"B\"}");
        assert_eq!(
            &out[..],
            b"NATS/1.0\r\nX: 1\r\nNats-Request-Info: {\"acc\":\"B\"}\r\n\r\nping"
        );
        assert_eq!(&out[h..], b"ping");
        let plain = Bytes::from_static(b"ping");
        let msg = MsgRef {
            subject: b"s",
            reply: None,
            hdr_len: None,
            data: &plain,
            owner: Some(&plain),
        };
        let (h, out) = with_request_info(&msg, "{}");
        assert_eq!(&out[..h], b"NATS/1.0\r\nNats-Request-Info: {}\r\n\r\n");
    }

    /// Regression: a requester could send its own `Nats-Request-Info` ahead of the
    /// server's and name another account.
    #[test]
    fn a_forged_request_info_is_dropped() {
        let data = Bytes::from_static(
            b"NATS/1.0\r\nnats-request-info: {\"acc\":\"ADMIN\"}\r\nX: 1\r\n\r\nping",
        );
        let msg = MsgRef {
            subject: b"s",
            reply: None,
            hdr_len: Some(data.len() - 4),
            data: &data,
            owner: Some(&data),
        };
        let (h, out) = with_request_info(&msg, "{\"acc\":\"B\"}");
        assert_eq!(
            &out[..h],
            b"NATS/1.0\r\nX: 1\r\nNats-Request-Info: {\"acc\":\"B\"}\r\n\r\n"
        );
    }

    #[test]
    fn singleton_responses_go_back_once() {
        let r = Responses {
            prefix: "_R_.abcdef.".into(),
            pending: Mutex::new(HashMap::new()),
        };
        let one = r.register(b"_INBOX.1", ResponseType::Singleton).unwrap();
        let many = r.register(b"_INBOX.2", ResponseType::Stream).unwrap();
        let one = std::str::from_utf8(&one.0).unwrap().to_string();
        let many = std::str::from_utf8(&many.0).unwrap().to_string();
        assert_eq!(r.take(&one).as_deref(), Some(&b"_INBOX.1"[..]));
        assert_eq!(r.take(&one), None);
        assert_eq!(r.take(&many).as_deref(), Some(&b"_INBOX.2"[..]));
        assert_eq!(r.take(&many).as_deref(), Some(&b"_INBOX.2"[..]));
        assert_eq!(r.take("_R_.other.x"), None);
        assert_eq!(reply_tag("B"), reply_tag("B"));
        assert_ne!(reply_tag("B"), reply_tag("C"));
    }
}
