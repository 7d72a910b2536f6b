//! A demo operator with a system account (`SYS`) and an application account (`APP`,
//! JetStream on, one signing key), the example configs built from them
//! (config/operator-memory.conf, config/operator-full.conf), and helpers that make user
//! JWTs and log in with them. Demo keys only: never use these seeds anywhere else.

use petrel_jwt::{Account, Claims, Operator, SigningKey, User};
use petrel_testkit::TestServer;

use crate::support::spawn_config;

pub(crate) const OPERATOR_SEED: &str = "SOAGFMTX3BCEJW7FFIDR57WX4IN3GSS5GZ2L55FYQNFR4CCBCOKAJGIUZU";
pub(crate) const OPERATOR_SIGNING_SEED: &str =
    "SOAFZDK2ELBPWJQRE7SEVNDM4DVGMUWZ3MCM5VMEB3DX7VESHR6SZ4K5DI";
pub(crate) const SYS_SEED: &str = "SAAHYSYZGOXD3X5SVN2C4GAW52G6LV7N4FRB22BAY2A7TXUXUTENE2TFB4";
pub(crate) const APP_SEED: &str = "SAAH3RLMGEDHYVRYALDUPKSBEOLY2YK5KFNFSK5D3PQES7R634KW3BBIOE";
pub(crate) const APP_SIGNING_SEED: &str =
    "SAAP4WICFSARB4SKDXFDLHU2AXVPKEOFLKU2UVFXXEAVDYFE77AXQ7YHPQ";
/// config/operator/alice.creds's user (of APP).
pub(crate) const ALICE_SEED: &str = "SUAM65SFOKGURNSEZVE7TBFJ4LI2SVMI3KU5ANWPMLAEY4Z5SLWY6XHBQM";

/// The key pair of a seed.
pub(crate) fn kp(seed: &str) -> nkeys::KeyPair {
    nkeys::KeyPair::from_seed(seed).expect("a demo seed")
}

/// The public key of a seed.
pub(crate) fn public(seed: &str) -> String {
    kp(seed).public_key()
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The demo operator's JWT (one signing key; SYS is its system account).
pub(crate) fn operator_jwt() -> String {
    let mut c = Claims::new(
        public(OPERATOR_SEED),
        "DEMO",
        Operator {
            kind: "operator".into(),
            signing_keys: vec![public(OPERATOR_SIGNING_SEED)],
            system_account: Some(public(SYS_SEED)),
            version: 2,
            ..Operator::default()
        },
    );
    petrel_jwt::encode(&mut c, &kp(OPERATOR_SEED), now()).expect("sign")
}

/// An account JWT signed by the operator's signing key, as `nsc` writes one (every limit
/// explicit), changed by `edit`.
pub(crate) fn account_claims(seed: &str, name: &str) -> Claims<Account> {
    let mut nats = Account {
        kind: "account".into(),
        version: 2,
        ..Account::default()
    };
    if seed == APP_SEED {
        nats.limits.js.mem_storage = -1;
        nats.limits.js.disk_storage = -1;
        nats.limits.js.streams = -1;
        nats.limits.js.consumer = -1;
        nats.signing_keys = vec![SigningKey::Key(public(APP_SIGNING_SEED))];
    }
    Claims::new(public(seed), name, nats)
}

/// [`account_claims`] signed.
pub(crate) fn account_jwt(
    seed: &str,
    name: &str,
    edit: impl FnOnce(&mut Claims<Account>),
) -> String {
    let mut c = account_claims(seed, name);
    edit(&mut c);
    sign_account(&mut c)
}

/// Sign account claims with the operator's signing key.
pub(crate) fn sign_account(c: &mut Claims<Account>) -> String {
    c.iat = 0;
    petrel_jwt::encode(c, &kp(OPERATOR_SIGNING_SEED), now()).expect("sign")
}

/// A user of the account whose key is `issuer_seed` (or of `issuer_account` when
/// `issuer_seed` is one of its signing keys), changed by `edit`: (JWT, user seed).
pub(crate) fn user(
    issuer_seed: &str,
    issuer_account: Option<&str>,
    name: &str,
    edit: impl FnOnce(&mut Claims<User>),
) -> (String, String) {
    let key = nkeys::KeyPair::new_user();
    let seed = key.seed().expect("a seed");
    let mut c = Claims::new(
        key.public_key(),
        name,
        User {
            kind: "user".into(),
            version: 2,
            issuer_account: issuer_account.map(str::to_string),
            ..User::default()
        },
    );
    edit(&mut c);
    let jwt = petrel_jwt::encode(&mut c, &kp(issuer_seed), now()).expect("sign");
    (jwt, seed)
}

/// async-nats logged in with a user's JWT and seed (as from a .creds file).
pub(crate) async fn connect(
    url: &str,
    jwt: &str,
    seed: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let creds = petrel_jwt::format_creds(jwt, seed);
    async_nats::ConnectOptions::with_credentials(&creds)
        .expect("a creds file")
        .retry_on_initial_connect()
        .max_reconnects(0)
        .connect(url)
        .await
}

/// A raw connection logged in with `jwt`, the INFO nonce signed with `seed` (`None`: no
/// signature); the first line the server sends after `CONNECT`+`PING`.
pub(crate) async fn raw_login(
    addr: std::net::SocketAddr,
    jwt: &str,
    seed: Option<&str>,
) -> (petrel_testkit::RawClient, String) {
    use base64::Engine;
    let mut c = petrel_testkit::RawClient::connect(addr).await;
    let nonce = c.info()["nonce"].as_str().unwrap_or_default().to_string();
    let sig = seed.map(|s| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(kp(s).sign(nonce.as_bytes()).expect("sign"))
    });
    let connect = serde_json::json!({
        "verbose": false, "pedantic": false, "jwt": jwt, "sig": sig,
        "protocol": 1, "headers": true,
    });
    c.send(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
        .await;
    let line = c.read_line().await;
    (c, line)
}

/// The example operator config: `resolver` (MEMORY or a block) and preloads of SYS and
/// APP.
pub(crate) fn demo_config(resolver: &str) -> String {
    format!(
        "# Operator mode (JWT accounts), as `nsc` sets it up: the operator's JWT, the system\n\
         # account, where account JWTs come from and the ones loaded at start. Demo keys:\n\
         # tests/operator_support.rs makes these JWTs (PETREL_WRITE_DEMO=1 rewrites this file);\n\
         # config/operator/alice.creds logs in as a user of APP.\n\
         listen: 0.0.0.0:4222\n\
         http: 8222\n\
         jetstream {{ store_dir: \"./data\" }}\n\n\
         operator: \"{}\"\n\
         system_account: {}\n\
         resolver: {resolver}\n\
         resolver_preload: {{\n  # SYS\n  {}: \"{}\"\n  # APP\n  {}: \"{}\"\n}}\n",
        operator_jwt(),
        public(SYS_SEED),
        public(SYS_SEED),
        account_jwt(SYS_SEED, "SYS", |_| {}),
        public(APP_SEED),
        account_jwt(APP_SEED, "APP", |_| {}),
    )
}

/// Alice's creds: a user of APP signed by APP's own key.
pub(crate) fn alice_creds() -> String {
    let mut c = Claims::new(
        public(ALICE_SEED),
        "alice",
        User {
            kind: "user".into(),
            version: 2,
            ..User::default()
        },
    );
    let jwt = petrel_jwt::encode(&mut c, &kp(APP_SEED), now()).expect("sign");
    petrel_jwt::format_creds(&jwt, ALICE_SEED)
}

/// An activation token: the account `exporter_seed` lets `importer` import `subject` (a
/// `kind` export, "stream" or "service").
pub(crate) fn activation(exporter_seed: &str, importer: &str, subject: &str, kind: &str) -> String {
    let mut c = Claims::new(
        importer,
        "activation",
        petrel_jwt::Activation {
            kind: "activation".into(),
            subject: subject.into(),
            export_kind: kind.into(),
            version: 2,
            ..Default::default()
        },
    );
    petrel_jwt::encode(&mut c, &kp(exporter_seed), now()).expect("sign")
}

/// An example operator config (`file`), its resolver directory `dir` when given.
pub(crate) async fn server(file: &str, dir: Option<&std::path::Path>) -> TestServer {
    let dir = dir.map(|d| d.display().to_string());
    spawn_config(
        file,
        move |t| match dir {
            Some(d) => t.replace("./data/jwt", &d),
            None => t,
        },
        None,
        true,
    )
    .await
}

/// A full-resolver server (JWTs in `dir`) and a connection of a system account user.
pub(crate) async fn full_with_admin(dir: &std::path::Path) -> (TestServer, async_nats::Client) {
    let s = server("operator-full.conf", Some(dir)).await;
    let (jwt, seed) = user(SYS_SEED, None, "admin", |_| {});
    let sys = connect(&s.client_url(), &jwt, &seed).await.unwrap();
    (s, sys)
}

/// Push an account JWT over `$SYS.REQ.CLAIMS.UPDATE`; it must be taken.
pub(crate) async fn push(sys: &async_nats::Client, jwt: String) {
    let r = sys_request(sys, "$SYS.REQ.CLAIMS.UPDATE".into(), jwt).await;
    assert_eq!(r["data"]["code"], 200, "{r}");
}

/// A `$SYS` request's JSON reply.
pub(crate) async fn sys_request(
    c: &async_nats::Client,
    subject: String,
    body: String,
) -> serde_json::Value {
    let m = c.request(subject, body.into()).await.expect("a reply");
    serde_json::from_slice(&m.payload).expect("JSON")
}
