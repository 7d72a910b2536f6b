//! Per-connection facts kept only for monitoring ([`ConnMeta`]: start, last activity, RTT,
//! client library, user, TLS) and the `/connz` snapshot built from them ([`ConnSnapshot`]).
//!
//! Hot-path cost: one relaxed store of a timestamp per read batch and per flush of a
//! connection; everything else is written once (CONNECT, authentication, TLS handshake) or
//! once per keep-alive PING.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::subs::SubSnapshot;
use crate::client::Client;

pub(crate) use petrel_jetstream::now_nanos as now_ns;

/// What CONNECT, authentication and TLS told us about a client.
#[derive(Debug, Default, Clone)]
struct Details {
    lang: String,
    version: String,
    user: Option<String>,
    /// A JWT user's name (`name` of its JWT).
    user_name: Option<String>,
    tls_version: Option<String>,
    tls_cipher: Option<String>,
}

/// Monitoring facts about one connection.
#[derive(Debug)]
pub(crate) struct ConnMeta {
    /// When the connection was accepted (Unix ns).
    start: i64,
    /// Last inbound read or outbound flush (Unix ns).
    last_activity: AtomicI64,
    /// Round-trip time of the last answered keep-alive PING (ns; 0 = not measured yet).
    rtt: AtomicU64,
    /// When the outstanding keep-alive PING was queued.
    ping_sent: Mutex<Option<Instant>>,
    details: Mutex<Details>,
    /// CONNECT was accepted (its CONNECT event was sent).
    connected: std::sync::atomic::AtomicBool,
}

impl ConnMeta {
    /// Facts of a connection accepted now.
    pub fn new() -> Self {
        let now = now_ns();
        Self {
            start: now,
            last_activity: AtomicI64::new(now),
            rtt: AtomicU64::new(0),
            ping_sent: Mutex::new(None),
            details: Mutex::new(Details::default()),
            connected: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// CONNECT was accepted; `true` the first time.
    pub fn set_connected(&self) -> bool {
        !self.connected.swap(true, Ordering::AcqRel)
    }

    /// Last inbound read or outbound flush (Unix ns).
    pub fn last_activity(&self) -> i64 {
        self.last_activity.load(Ordering::Relaxed)
    }

    /// Round-trip time of the last answered keep-alive PING (ns; 0 = not measured yet).
    pub fn rtt_nanos(&self) -> u64 {
        self.rtt.load(Ordering::Relaxed)
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<String> {
        self.details.lock().user.clone()
    }

    /// Bytes moved in or out just now.
    pub fn touch(&self) {
        self.touch_at(now_ns());
    }

    /// Bytes moved at `now` (Unix ns): one clock read serves a whole flush batch.
    pub fn touch_at(&self, now: i64) {
        self.last_activity.store(now, Ordering::Relaxed);
    }

    /// A keep-alive PING was queued.
    pub fn ping_sent(&self) {
        let mut sent = self.ping_sent.lock();
        if sent.is_none() {
            *sent = Some(Instant::now());
        }
    }

    /// A PONG arrived: the round trip of the outstanding PING, if any, is the RTT.
    pub fn pong_received(&self) {
        if let Some(sent) = self.ping_sent.lock().take() {
            let rtt = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.rtt.store(rtt.max(1), Ordering::Relaxed);
        }
    }

    /// Client library and version from CONNECT.
    pub fn set_client(&self, lang: Option<&str>, version: Option<&str>) {
        let mut d = self.details.lock();
        d.lang = lang.unwrap_or_default().to_string();
        d.version = version.unwrap_or_default().to_string();
    }

    /// The authenticated user (`None` without authentication).
    pub fn set_user(&self, user: Option<&str>) {
        self.details.lock().user = user.map(str::to_string);
    }

    /// A JWT user's name.
    pub fn set_user_name(&self, name: Option<&str>) {
        self.details.lock().user_name = name.filter(|n| !n.is_empty()).map(str::to_string);
    }

    /// A JWT user's name, if it has one.
    pub fn user_name(&self) -> Option<String> {
        self.details.lock().user_name.clone()
    }

    /// The negotiated TLS protocol and cipher suite.
    pub fn set_tls(&self, conn: &rustls::ServerConnection) {
        let version = conn.protocol_version().map(|v| {
            match v {
                rustls::ProtocolVersion::TLSv1_3 => "1.3",
                rustls::ProtocolVersion::TLSv1_2 => "1.2",
                _ => "unknown",
            }
            .to_string()
        });
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| go_cipher_name(s.suite()));
        let mut d = self.details.lock();
        d.tls_version = version;
        d.tls_cipher = cipher;
    }
}

/// Go's name of a cipher suite (`TLS_AES_128_GCM_SHA256`; rustls says `TLS13_...` for
/// the TLS 1.3 suites).
fn go_cipher_name(suite: rustls::CipherSuite) -> String {
    let name = suite
        .as_str()
        .map_or_else(|| format!("{suite:?}"), str::to_string);
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

/// One client connection as `/connz` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// Connection id.
    pub cid: u64,
    /// The client's address.
    pub addr: SocketAddr,
    /// When the connection was accepted (Unix ns).
    pub start: i64,
    /// Last inbound read or outbound flush (Unix ns).
    pub last_activity: i64,
    /// Round-trip time of the last answered keep-alive PING, once measured.
    pub rtt: Option<Duration>,
    /// Bytes queued for the client and not yet written.
    pub pending_bytes: u64,
    /// Messages received from the client.
    pub in_msgs: u64,
    /// Messages queued for the client.
    pub out_msgs: u64,
    /// Payload bytes received from the client.
    pub in_bytes: u64,
    /// Payload bytes queued for the client.
    pub out_bytes: u64,
    /// Subscriptions held.
    pub subscriptions: u64,
    /// CONNECT `name` (empty when not given).
    pub name: String,
    /// CONNECT `lang`.
    pub lang: String,
    /// CONNECT `version`.
    pub version: String,
    /// Negotiated TLS version (`1.2`, `1.3`), for TLS connections.
    pub tls_version: Option<String>,
    /// Negotiated cipher suite (Go's name), for TLS connections.
    pub tls_cipher: Option<String>,
    /// The authenticated user, when authentication is on.
    pub authorized_user: Option<String>,
    /// The account it is in.
    pub account: String,
    /// It came through the WebSocket listener.
    pub websocket: bool,
    /// The connection's subscriptions, when asked for.
    pub subs: Vec<SubSnapshot>,
}

/// Snapshot of `client`; its subscriptions too when `with_subs`.
pub(crate) fn snapshot(client: &Arc<Client>, with_subs: bool) -> ConnSnapshot {
    let (pending_bytes, out_msgs, out_bytes) = client.out_counters();
    let (subscriptions, subs) = {
        let map = client.subs.lock();
        let subs = if with_subs {
            let mut v: Vec<SubSnapshot> = map.values().map(|s| SubSnapshot::of(s)).collect();
            v.sort_by(|a, b| super::subs::sid_order(&a.sid, &b.sid));
            v
        } else {
            Vec::new()
        };
        (map.len() as u64, subs)
    };
    let meta = &client.meta;
    let details = meta.details.lock().clone();
    let rtt = meta.rtt.load(Ordering::Relaxed);
    ConnSnapshot {
        cid: client.cid,
        addr: client.addr,
        start: meta.start,
        last_activity: meta.last_activity.load(Ordering::Relaxed),
        rtt: (rtt > 0).then(|| Duration::from_nanos(rtt)),
        pending_bytes,
        in_msgs: client.stats.in_msgs.load(Ordering::Relaxed),
        out_msgs,
        in_bytes: client.stats.in_bytes.load(Ordering::Relaxed),
        out_bytes,
        subscriptions,
        name: client.name.lock().clone(),
        lang: details.lang,
        version: details.version,
        tls_version: details.tls_version,
        tls_cipher: details.tls_cipher,
        authorized_user: details.user,
        websocket: client.is_websocket(),
        account: client.account().map_or_else(
            || petrel_config::GLOBAL_ACCOUNT.to_string(),
            |a| a.name.clone(),
        ),
        subs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names_are_go_names() {
        assert_eq!(
            go_cipher_name(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "TLS_AES_128_GCM_SHA256"
        );
        assert_eq!(
            go_cipher_name(rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
    }

    #[test]
    fn rtt_from_ping_to_pong() {
        let m = ConnMeta::new();
        m.pong_received();
        assert_eq!(m.rtt.load(Ordering::Relaxed), 0, "a PONG without a PING");
        m.ping_sent();
        m.pong_received();
        assert!(m.rtt.load(Ordering::Relaxed) > 0);
    }
}
