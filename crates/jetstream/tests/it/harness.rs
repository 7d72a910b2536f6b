//! Test harness: a fake [`Port`] that records subscriptions and publishes, and helpers to
//! feed `on_message` like the server would and to wait for replies.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use petrel_jetstream::{
    Accept, Flow, Handler, Incoming, JetStream, JetStreamConfig, Port, SubId, SyncMode,
};
use serde_json::Value;

/// One message JetStream published.
#[derive(Debug, Clone)]
pub struct Published {
    pub subject: String,
    #[allow(dead_code)]
    pub reply: Option<String>,
    pub headers: Option<Bytes>,
    pub payload: Bytes,
}

impl Published {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap()
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.payload.to_vec()).unwrap()
    }
    pub fn header_text(&self) -> String {
        String::from_utf8(self.headers.clone().unwrap_or_default().to_vec()).unwrap()
    }
}

/// One internal subscription: its subject and handler.
pub type FakeSub = (String, Arc<dyn Handler>);

/// Records everything; `subscribe` hands out increasing ids.
#[derive(Default)]
pub struct FakePort {
    next: AtomicU64,
    pub subs: Mutex<HashMap<SubId, FakeSub>>,
    pub published: Mutex<Vec<Published>>,
}

impl Port for FakePort {
    fn publish(&self, subject: &str, reply: Option<&str>, headers: Option<Bytes>, payload: Bytes) {
        self.published.lock().push(Published {
            subject: subject.to_string(),
            reply: reply.map(str::to_string),
            headers,
            payload,
        });
    }

    fn subscribe(
        &self,
        subject: &str,
        _queue: Option<&str>,
        _accept: Accept,
        handler: Arc<dyn Handler>,
    ) -> SubId {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.subs.lock().insert(id, (subject.to_string(), handler));
        id
    }

    fn unsubscribe(&self, id: SubId) {
        self.subs.lock().remove(&id);
    }
}

pub struct Harness {
    pub js: Arc<JetStream>,
    pub port: Arc<FakePort>,
    inbox: AtomicU64,
}

pub fn config(dir: &Path) -> JetStreamConfig {
    JetStreamConfig {
        store_dir: dir.to_path_buf(),
        max_memory: None,
        max_file: None,
        sync: SyncMode::Always,
        server_name: "test".to_string(),
        domain: None,
        account: "$G".into(),
        account_limits: Default::default(),
        group: None,
        backend: Arc::new(petrel_store::StdBackend),
        strict: true,
    }
}

impl Harness {
    pub async fn start(dir: &Path) -> Harness {
        Self::start_with(config(dir)).await
    }

    pub async fn start_with(cfg: JetStreamConfig) -> Harness {
        let port = Arc::new(FakePort::default());
        let js = JetStream::start(cfg, port.clone()).await.unwrap();
        Harness {
            js,
            port,
            inbox: AtomicU64::new(0),
        }
    }

    /// Delivers a publish (from a client) to every matching JetStream subscription, as the
    /// server would; returns what each handler answered.
    pub fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&[u8]>,
        payload: &[u8],
    ) -> Vec<Flow> {
        let handlers: Vec<Arc<dyn Handler>> = self
            .port
            .subs
            .lock()
            .values()
            .filter(|(s, _)| petrel_subject::matches(s.as_bytes(), subject.as_bytes()))
            .map(|(_, h)| h.clone())
            .collect();
        handlers
            .into_iter()
            .map(|h| {
                h.handle(Incoming {
                    subject,
                    shown: subject,
                    reply,
                    headers: headers.map(Bytes::copy_from_slice),
                    payload: Bytes::copy_from_slice(payload),
                    sender: 1,
                })
            })
            .collect()
    }

    /// The subjects JetStream is subscribed to.
    pub fn subscribed(&self) -> Vec<String> {
        self.port
            .subs
            .lock()
            .values()
            .map(|(s, _)| s.clone())
            .collect()
    }

    pub fn new_inbox(&self) -> String {
        format!("_INBOX.t{}", self.inbox.fetch_add(1, Ordering::Relaxed))
    }

    /// Waits for the first message published to `subject`.
    pub async fn wait_for(&self, subject: &str) -> Published {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(p) = self.find(subject) {
                return p;
            }
            assert!(Instant::now() < deadline, "no message on {subject}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn find(&self, subject: &str) -> Option<Published> {
        self.port
            .published
            .lock()
            .iter()
            .find(|p| p.subject == subject)
            .cloned()
    }

    /// Publish with a fresh reply subject and wait for the reply.
    pub async fn request_hdrs(
        &self,
        subject: &str,
        headers: Option<&[u8]>,
        body: &[u8],
    ) -> Published {
        let inbox = self.new_inbox();
        self.publish(subject, Some(&inbox), headers, body);
        self.wait_for(&inbox).await
    }

    pub async fn request(&self, subject: &str, body: &str) -> Published {
        self.request_hdrs(subject, None, body.as_bytes()).await
    }

    pub async fn request_json(&self, subject: &str, body: &str) -> Value {
        self.request(subject, body).await.json()
    }

    /// Asserts that a request gets no reply (its later sibling does, so order proves it).
    pub async fn request_none(&self, subject: &str, body: &str) {
        let inbox = self.new_inbox();
        self.publish(subject, Some(&inbox), None, body.as_bytes());
        // The API handles requests in order: once INFO is answered, the first one was seen.
        self.request("$JS.API.INFO", "").await;
        assert!(self.find(&inbox).is_none(), "unexpected reply to {subject}");
    }

    /// Polls STREAM.INFO until `state.messages` is `n` (for publishes without an ack).
    pub async fn wait_messages(&self, stream: &str, n: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info = self
                .request_json(&format!("$JS.API.STREAM.INFO.{stream}"), "")
                .await;
            if info["state"]["messages"] == n {
                return info;
            }
            assert!(Instant::now() < deadline, "{stream} never had {n}: {info}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn create(&self, body: &str) -> Value {
        let v: Value = serde_json::from_str(body).unwrap();
        let name = v["name"].as_str().unwrap();
        let r = self
            .request_json(&format!("$JS.API.STREAM.CREATE.{name}"), body)
            .await;
        assert!(r.get("error").is_none(), "create failed: {r}");
        r
    }

    /// Publishes and returns the PubAck JSON.
    pub async fn pub_ack(&self, subject: &str, headers: Option<&str>, body: &str) -> Value {
        self.request_hdrs(subject, headers.map(str::as_bytes), body.as_bytes())
            .await
            .json()
    }
}

/// A header block with the given headers.
pub fn hdrs(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("NATS/1.0\r\n");
    for (k, v) in pairs {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}
