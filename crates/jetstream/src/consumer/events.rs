//! Client events of a consumer step: acks of every kind (with the advisories and
//! dead-letter candidates they cause), pull requests (checked and queued, or answered with
//! their status) and flow-control replies; and the expiry of waiting pull requests.

use bytes::Bytes;
use tokio::time::Instant;

use super::ackmsg::{self, AckKind};
use super::deadletter::{Dead, Reason};
use super::engine::StepOut;
use super::pull::{self, Waiting};
use super::{Consumer, Event, State, FC_MAX_WINDOW};
use crate::advisory;
use crate::port::Delivery;

/// Applies one client event.
pub(super) fn handle_event(
    c: &Consumer,
    st: &mut State,
    ev: Event,
    now: Instant,
    wall: i64,
    acked: &mut Vec<u64>,
    out: &mut StepOut,
) {
    #[cfg(test)]
    if matches!(&ev, Event::Ack { payload, .. } if payload.as_ref() == b"+PANIC") {
        panic!("injected step failure");
    }
    match ev {
        Event::Ack {
            subject,
            reply,
            payload,
        } => {
            let Some(r) = ackmsg::parse_subject(&subject) else {
                return;
            };
            st.last_active = now;
            st.last_ack_wall = wall;
            let kind = ackmsg::parse_body(&payload);
            let mut reply_ok = true;
            match kind {
                AckKind::Ack => acked.extend(st.acks.ack(r.sseq)),
                AckKind::Nak(delay) => {
                    if st.acks.nak(r.sseq, delay, now) {
                        out.advisories
                            .push(advisory::nak(&c.stream, &c.name, r.dseq, r.sseq, r.dc));
                    }
                }
                AckKind::Progress => st.acks.in_progress(r.sseq, now),
                AckKind::Term(reason) => {
                    if st.acks.term(r.sseq).is_some() {
                        acked.push(r.sseq);
                        out.advisories.push(advisory::terminated(
                            &c.stream, &c.name, r.dseq, r.sseq, r.dc, &reason,
                        ));
                        out.dead.push(Dead {
                            sseq: r.sseq,
                            deliveries: r.dc,
                            reason: Reason::Terminated(reason),
                        });
                    }
                }
                AckKind::Next(body) => {
                    acked.extend(st.acks.ack(r.sseq));
                    reply_ok = false;
                    if let Some(reply) = reply.clone() {
                        add_request(st, reply, &body, now, out);
                    }
                }
                AckKind::Unknown => {}
            }
            st.dirty = true;
            if let Some(reply) = reply.filter(|r| reply_ok && !r.is_empty()) {
                out.replies.push((reply, Bytes::new()));
            }
        }
        Event::Next { reply, payload } => {
            st.last_active = now;
            if !st.config.is_pull() {
                push_status(out, reply, pull::status("409 Consumer is push based"));
                return;
            }
            add_request(st, reply, &payload, now, out);
        }
        Event::FlowControl { subject } => {
            if let Some((fc, bytes)) = st.push.fc_pending.take() {
                if fc == subject {
                    st.push.fc_bytes = st.push.fc_bytes.saturating_sub(bytes);
                    st.push.fc_window = (st.push.fc_window * 2).min(FC_MAX_WINDOW);
                } else {
                    st.push.fc_pending = Some((fc, bytes));
                }
            }
        }
    }
}

/// Queues a status message (no reply subject) to `route`.
pub(super) fn push_status(out: &mut StepOut, route: String, headers: Bytes) {
    out.deliveries.push(Delivery {
        subject: route.clone(),
        route,
        reply: None,
        headers: Some(headers),
        payload: Bytes::new(),
        raw: None,
    });
}

/// Validates a pull request and queues it (or answers it at once).
fn add_request(st: &mut State, reply: String, body: &[u8], now: Instant, out: &mut StepOut) {
    if reply.is_empty() {
        return;
    }
    let Some(req) = pull::parse_body(body) else {
        push_status(
            out,
            reply,
            pull::status("400 Bad Request - invalid request"),
        );
        return;
    };
    if req.idle_heartbeat > 0
        && (req.expires <= 0 || req.idle_heartbeat.saturating_mul(2) > req.expires)
    {
        let status = pull::status("400 Bad Request - heartbeat value too large");
        push_status(out, reply, status);
        return;
    }
    let cfg = &st.config;
    if cfg.max_batch > 0 && req.batch > cfg.max_batch {
        let text = format!("409 Exceeded MaxRequestBatch of {}", cfg.max_batch);
        push_status(out, reply, pull::status(&text));
        return;
    }
    if cfg.max_expires > 0 && req.expires > cfg.max_expires {
        let text = format!(
            "409 Exceeded MaxRequestExpires of {}",
            crate::time::go_duration(cfg.max_expires)
        );
        push_status(out, reply, pull::status(&text));
        return;
    }
    if cfg.max_bytes > 0 && req.max_bytes > cfg.max_bytes {
        let text = format!("409 Exceeded MaxRequestMaxBytes of {}", cfg.max_bytes);
        push_status(out, reply, pull::status(&text));
        return;
    }
    if let Err(text) = super::priority::check_request(cfg, &req) {
        push_status(out, reply, pull::status(text));
        return;
    }
    if let Err(text) = super::priority::admit_pinned(st, &req, now) {
        push_status(out, reply, pull::status(text));
        return;
    }
    let cfg = &st.config;
    if st.waiting.len() as i64 >= cfg.max_waiting.max(1) || st.waiting.len() >= pull::MAX_WAITING {
        push_status(out, reply, pull::status("409 Exceeded MaxWaiting"));
        return;
    }
    st.waiting.push_back(Waiting::new(reply, &req, now));
}

/// Ends expired pull requests with `408`.
pub(super) fn expire_requests(st: &mut State, now: Instant, out: &mut StepOut) {
    let mut i = 0;
    while i < st.waiting.len() {
        let w = &st.waiting[i];
        if w.expires.is_some_and(|e| e <= now) {
            let w = st.waiting.remove(i).expect("index checked");
            push_status(out, w.reply.clone(), w.timeout_status());
            continue;
        }
        if let Some(e) = w.expires {
            out.wake_at(e);
        }
        i += 1;
    }
}
