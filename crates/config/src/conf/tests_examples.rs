//! The example configurations shipped in `config/`: each one loads through
//! [`load_file`] without warnings and yields the settings it documents; `petrel.toml`
//! yields exactly the [`Options`](crate::Options) of `nats.conf`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{
    load_file, Auth, HandshakeFirst, Loaded, Permissions, ResponsePermission, SubjectPermission,
    SyncMode, User,
};

const NATS_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/nats.conf");
const PETREL_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/petrel.toml");
const MEDISYNC_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/medisync.conf");
const SECURE_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/secure.conf");

fn load(path: &str) -> Loaded {
    let l = load_file(Path::new(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(l.warnings.is_empty(), "{path}: {:?}", l.warnings);
    l
}

fn allow(subjects: &[&str]) -> Option<SubjectPermission> {
    Some(SubjectPermission {
        allow: subjects.iter().map(|s| s.to_string()).collect(),
        deny: Vec::new(),
    })
}

#[test]
fn petrel_toml_matches_nats_conf() {
    let toml = load(PETREL_TOML);
    let conf = load(NATS_CONF);
    assert_eq!(toml.options, conf.options);
    let o = &toml.options;
    assert_eq!(o.server_name.as_deref(), Some("petrel-example"));
    assert_eq!((o.host, o.port), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4222));
    assert_eq!(o.max_payload, 1 << 20);
    assert_eq!(o.ping_interval, Duration::from_secs(120));
    let js = o.jetstream.as_ref().expect("jetstream");
    assert_eq!(js.store_dir, PathBuf::from("./data"));
    assert_eq!((js.max_memory, js.max_file), (None, None));
}

#[test]
fn medisync_conf_loads() {
    let o = load(MEDISYNC_CONF).options;
    assert_eq!(o.server_name.as_deref(), Some("medisync-nats"));
    assert_eq!((o.host, o.port), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4222));
    assert_eq!(o.http_port, Some(8222));
    assert_eq!(o.auth_timeout, Duration::from_secs(5));
    let js = o.jetstream.as_ref().expect("jetstream");
    assert_eq!(js.store_dir, PathBuf::from("/var/lib/medisync/jetstream"));
    assert_eq!(
        (js.max_memory, js.max_file),
        (Some(1_000_000_000), Some(10_000_000_000))
    );
    assert_eq!(js.sync, SyncMode::Interval(Duration::from_secs(2)));
    let Auth::Users(users) = &o.auth else {
        panic!("users expected, got {:?}", o.auth);
    };
    assert_eq!(users.len(), 2);
    let etl = &users[0];
    assert_eq!(etl.user, "etl");
    let hash = etl.password.as_deref().expect("password");
    assert!(hash.starts_with("$2b$11$") && hash.len() == 60, "{hash}");
    assert_eq!(
        etl.permissions,
        Some(Permissions {
            publish: Some(SubjectPermission {
                allow: vec!["records.ingest.>".into(), "$JS.API.>".into()],
                deny: vec!["records.ingest.audit".into()],
            }),
            subscribe: allow(&["_INBOX.>", "records.status.*"]),
            allow_responses: None,
        })
    );
    let api = &users[1];
    assert_eq!(api.user, "api");
    assert!(api
        .password
        .as_deref()
        .is_some_and(|p| p.starts_with("$2b$")));
    assert_eq!(
        api.permissions,
        Some(Permissions {
            publish: allow(&["records.query.>"]),
            subscribe: allow(&["records.>", "api.requests.* api-workers"]),
            allow_responses: Some(ResponsePermission::default()),
        })
    );
}

#[test]
fn secure_conf_loads() {
    let o = load(SECURE_CONF).options;
    assert_eq!(o.server_name.as_deref(), Some("petrel-secure"));
    let tls = o.tls.as_ref().expect("tls");
    assert_eq!(tls.cert_file, PathBuf::from("./certs/server-cert.pem"));
    assert_eq!(tls.key_file, PathBuf::from("./certs/server-key.pem"));
    assert_eq!(tls.ca_file, Some(PathBuf::from("./certs/ca.pem")));
    assert!(tls.verify);
    assert_eq!(tls.timeout, Duration::from_secs(2));
    assert_eq!(tls.handshake_first, HandshakeFirst::Off);
    assert_eq!(
        o.auth,
        Auth::Users(vec![
            User {
                user: "service".into(),
                password: Some("service-change-me".into()),
                nkey: None,
                account: None,
                permissions: Some(Permissions {
                    publish: Some(SubjectPermission {
                        allow: Vec::new(),
                        deny: vec![">".into()],
                    }),
                    subscribe: allow(&["svc.>"]),
                    allow_responses: Some(ResponsePermission {
                        max: 1,
                        expires: Duration::from_secs(60),
                    }),
                }),
            },
            User {
                user: "client".into(),
                password: Some("client-change-me".into()),
                nkey: None,
                account: None,
                permissions: Some(Permissions {
                    publish: allow(&["svc.>"]),
                    subscribe: allow(&["_INBOX.>"]),
                    allow_responses: None,
                }),
            },
        ])
    );
}
