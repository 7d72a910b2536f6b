//! The system account's services, as nats-server's: requests on `$SYS.REQ.…` answered
//! with `{"server":{…},"data":{…}}` (or `"error"`), and events published on
//! `$SYS.ACCOUNT.<acc>.CONNECT|DISCONNECT` and `$SYS.SERVER.<id>.STATSZ`.
//!
//! The server owns the subjects, the envelope and the transport: internal subscriptions
//! in the system account ([`Accept::ClientsOnly`]: nothing the server publishes is ever
//! taken for a request) hand each known request to one task through a bounded queue;
//! unknown subjects count as not delivered, so the requester gets a 503 as from
//! nats-server. What monitoring endpoints report (VARZ, CONNZ, JSZ...) comes from a
//! [`MonitorService`] the embedder installs (`petrel-monitor` provides it, from the same
//! code as the HTTP endpoints); without one, only the server's own requests (IDZ,
//! USER.INFO, RELOAD, CLAIMS) and the CONNECT/DISCONNECT events are served.
//!
//! Other accounts reach their own slice of it through service imports every account
//! gets, as in nats-server: `$SYS.REQ.USER.INFO`, `$SYS.REQ.SERVER.PING.CONNZ`,
//! `$SYS.REQ.ACCOUNT.PING.CONNZ` and `$SYS.REQ.ACCOUNT.PING.STATZ`, answered for the
//! requesting account only.

mod claims;
mod envelope;
mod events;
mod requests;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use petrel_jetstream::{Accept, Flow, Handler, Incoming, Port};
use tokio::sync::mpsc;

use crate::internal::ServerPort;
use crate::server::Shared;

pub(crate) use events::{client_connected, client_disconnected};
pub(crate) use requests::install_account_imports;

/// Requests waiting for the system task (a flood of requests waits no further).
const QUEUE: usize = 1024;

/// What a monitoring request returns.
#[derive(Debug, Clone, PartialEq)]
pub enum SysReply {
    /// `{"server":…,"data":<value>}`.
    Data(serde_json::Value),
    /// `{"server":…,"statsz":<value>}` (PING and STATSZ).
    Statsz(serde_json::Value),
    /// `{"server":…,"error":{"code":…,"description":…}}`.
    Error(u16, String),
    /// Nobody answers this endpoint.
    Unknown,
}

/// A boxed future of a [`SysReply`].
pub type SysFuture = Pin<Box<dyn Future<Output = SysReply> + Send>>;

/// Answers the monitoring requests of the system account (`VARZ`, `CONNZ`, `SUBSZ`,
/// `JSZ`, `HEALTHZ`, `ACCOUNTZ`, `STATSZ`; per account `CONNZ`, `JSZ`, `INFO`,
/// `STATZ`), each with nats-server's JSON options.
pub trait MonitorService: Send + Sync + 'static {
    /// The reply to `endpoint` (upper case), for `account` when the request is about one,
    /// with the request body as options.
    fn call(&self, endpoint: &str, account: Option<&str>, options: Bytes) -> SysFuture;
}

/// A request taken from a subscription, for the system task.
struct Job {
    subject: String,
    reply: Option<String>,
    payload: Bytes,
    sender: u64,
}

/// Work for the system task.
enum Work {
    Request(Job),
    Event(Box<events::Event>),
}

/// The system services of one server.
pub(crate) struct System {
    queue: mpsc::Sender<Work>,
    monitor: OnceLock<Arc<dyn MonitorService>>,
    /// `$SYS.REQ.SERVER.<id>.RELOAD`: the embedder's way to reload its configuration.
    reload: OnceLock<ReloadHook>,
    seq: std::sync::atomic::AtomicU64,
}

/// Reads the configuration again (the petrel binary re-reads its file); the server
/// applies it as [`crate::ServerHandle::reload`] does.
pub type ReloadHook = Arc<dyn Fn() -> Result<petrel_config::Options, String> + Send + Sync>;

impl System {
    /// Queue an event (dropped, with a debug line, when the queue is full).
    fn event(&self, e: events::Event) {
        if self.queue.try_send(Work::Event(Box::new(e))).is_err() {
            tracing::debug!("system event queue full: event dropped");
        }
    }

    /// Install the monitoring side (once).
    pub fn set_monitor(&self, m: Arc<dyn MonitorService>) -> bool {
        self.monitor.set(m).is_ok()
    }

    /// Install the reload hook (once).
    pub fn set_reload(&self, hook: ReloadHook) -> bool {
        self.reload.set(hook).is_ok()
    }

    fn monitor(&self) -> Option<Arc<dyn MonitorService>> {
        self.monitor.get().cloned()
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

/// Hands known requests to the system task.
struct Listener {
    queue: mpsc::Sender<Work>,
    server_id: String,
}

impl Handler for Listener {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        if requests::Request::parse(msg.subject, &self.server_id).is_none() {
            return Flow::NoResponders;
        }
        let job = Job {
            subject: msg.subject.to_string(),
            reply: msg.reply.map(str::to_string),
            payload: msg.payload,
            sender: msg.sender,
        };
        if self.queue.try_send(Work::Request(job)).is_err() {
            tracing::debug!(
                subject = msg.subject,
                "system request queue full: request dropped"
            );
        }
        Flow::Ok
    }
}

/// The subjects the system account listens on.
const SUBJECTS: &[&str] = &[
    "$SYS.REQ.SERVER.>",
    "$SYS.REQ.ACCOUNT.>",
    "$SYS.REQ.USER.>",
    "$SYS.REQ.CLAIMS.>",
    "$SYS.ACCOUNT.*.CLAIMS.UPDATE",
];

/// Start the system services: subscriptions in the system account, the task that
/// answers them and publishes events, and the STATSZ heartbeat.
pub(crate) fn start(shared: &Arc<Shared>) -> Arc<System> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let system = Arc::new(System {
        queue: tx.clone(),
        monitor: OnceLock::new(),
        reload: OnceLock::new(),
        seq: std::sync::atomic::AtomicU64::new(0),
    });
    let port = ServerPort::new(shared, shared.accounts.system().clone());
    let listener = Arc::new(Listener {
        queue: tx,
        server_id: shared.server_id.clone(),
    });
    for subject in SUBJECTS {
        port.subscribe(subject, None, Accept::ClientsOnly, listener.clone());
    }
    let task = Task {
        shared: Arc::downgrade(shared),
        system: system.clone(),
        port,
    };
    let stop = shared.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = task.run(rx) => {}
        }
    });
    system
}

/// The system task: one request or event at a time.
struct Task {
    shared: std::sync::Weak<Shared>,
    system: Arc<System>,
    port: Arc<ServerPort>,
}

impl Task {
    async fn run(self, mut rx: mpsc::Receiver<Work>) {
        let mut gap = events::next_statsz(None);
        let heartbeat = tokio::time::sleep(gap);
        tokio::pin!(heartbeat);
        loop {
            let work = tokio::select! {
                w = rx.recv() => match w {
                    Some(w) => w,
                    None => return,
                },
                () = &mut heartbeat => {
                    gap = events::next_statsz(Some(gap));
                    heartbeat.as_mut().reset(tokio::time::Instant::now() + gap);
                    self.statsz().await;
                    continue;
                }
            };
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            match work {
                Work::Request(job) => self.request(&shared, job).await,
                Work::Event(e) => self.publish_event(&shared, *e),
            }
        }
    }

    /// Publish `payload` on `subject` from the system account.
    fn send(&self, subject: &str, payload: Vec<u8>) {
        self.port.publish(subject, None, None, Bytes::from(payload));
    }
}
