//! Fuzz the JetStream API: arbitrary bodies (and some arbitrary subjects) through the real
//! request handling of a live JetStream on a temporary store. No input may panic; every
//! request to a known API gets a reply that is JSON.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use petrel_jetstream::{
    Accept, Handler, JetStream, JetStreamConfig, Port, SubId, SyncMode,
};

struct NullPort;

impl Port for NullPort {
    fn publish(&self, _: &str, _: Option<&str>, _: Option<Bytes>, _: Bytes) {}
    fn subscribe(&self, _: &str, _: Option<&str>, _: Accept, _: Arc<dyn Handler>) -> SubId {
        0
    }
    fn unsubscribe(&self, _: SubId) {}
}

struct World {
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    js: Arc<JetStream>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = JetStreamConfig {
            store_dir: dir.path().to_path_buf(),
            max_memory: Some(64 << 20),
            max_file: Some(64 << 20),
            sync: SyncMode::Interval(std::time::Duration::from_secs(60)),
            server_name: "fuzz".into(),
            domain: None,
            account: "$G".into(),
            account_limits: Default::default(),
            group: None,
            backend: Arc::new(petrel_store::StdBackend),
        strict: true,
        };
        let js = rt.block_on(JetStream::start(cfg, Arc::new(NullPort))).unwrap();
        let init = br#"{"name":"S","subjects":["s.>"],"storage":"memory"}"#;
        petrel_jetstream::fuzzing::api_request(&js, "$JS.API.STREAM.CREATE.S", init);
        World { _rt: rt, _dir: dir, js }
    })
}

const SUBJECTS: &[&str] = &[
    "$JS.API.INFO",
    "$JS.API.STREAM.CREATE.T",
    "$JS.API.STREAM.UPDATE.S",
    "$JS.API.STREAM.UPDATE.T",
    "$JS.API.STREAM.INFO.S",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.PURGE.S",
    "$JS.API.STREAM.MSG.GET.S",
    "$JS.API.STREAM.MSG.DELETE.S",
    "$JS.API.DIRECT.GET.S",
    "$JS.API.DIRECT.GET.S.s.x",
    "$JS.API.CONSUMER.CREATE.S",
    "$JS.API.CONSUMER.CREATE.S.C",
    "$JS.API.CONSUMER.CREATE.S.C.s.x",
    "$JS.API.CONSUMER.DURABLE.CREATE.S.D",
    "$JS.API.CONSUMER.INFO.S.C",
    "$JS.API.CONSUMER.NAMES.S",
    "$JS.API.CONSUMER.LIST.S",
    "$JS.API.CONSUMER.DELETE.S.C",
    "$JS.API.STREAM.DELETE.T",
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let (subject, body) = match SUBJECTS.get(usize::from(sel)) {
        Some(s) => (s.to_string(), body),
        // Past the list: the subject itself comes from the input, up to a newline.
        None => {
            let cut = body.iter().position(|b| *b == b'\n').unwrap_or(body.len());
            let subject = String::from_utf8_lossy(&body[..cut]).into_owned();
            (format!("$JS.API.{subject}"), body.get(cut + 1..).unwrap_or(&[]))
        }
    };
    if let Some(reply) = petrel_jetstream::fuzzing::api_request(&w.js, &subject, body) {
        if !subject.starts_with("$JS.API.DIRECT.GET.") {
            assert!(
                serde_json::from_slice::<serde_json::Value>(&reply).is_ok(),
                "{subject}: reply is not JSON"
            );
        }
    }
});
