use super::*;
use proptest::prelude::*;

fn operator() -> nkeys::KeyPair {
    nkeys::KeyPair::new_operator()
}

fn account_claims(sub: &str) -> Claims<Account> {
    Claims::new(
        sub,
        "APP",
        Account {
            kind: "account".into(),
            version: 2,
            ..Account::default()
        },
    )
}

#[test]
fn round_trip_and_signature() {
    let op = operator();
    let acc = nkeys::KeyPair::new_account();
    let mut c = account_claims(&acc.public_key());
    c.nats.limits.js.disk_storage = 1 << 20;
    let token = encode(&mut c, &op, 1_700_000_000).unwrap();
    let back: Claims<Account> = decode(&token).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.iss, op.public_key());
    assert_eq!(back.jti.len(), 52);
    assert_eq!(back.nats.limits.jetstream().unwrap().disk_storage, 1 << 20);
    assert_eq!(peek_subject(&token), Some(acc.public_key()));

    // A changed claim no longer verifies.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged = back.clone();
    forged.name = "OTHER".into();
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], body, parts[2]);
    assert_eq!(decode::<Account>(&tampered), Err(JwtError::Signature));
    // The wrong kind, and an account may not issue accounts.
    assert!(matches!(decode::<User>(&token), Err(JwtError::Kind { .. })));
    let mut by_acc = account_claims(&acc.public_key());
    let t = encode(&mut by_acc, &acc, 1).unwrap();
    assert!(matches!(decode::<Account>(&t), Err(JwtError::Issuer(_))));
}

#[test]
fn nats_io_defaults_and_revocations() {
    let a: Account =
        serde_json::from_str(r#"{"type":"account","revocations":{"UX":10,"*":5}}"#).unwrap();
    assert_eq!(a.limits.conn, NO_LIMIT);
    assert_eq!(a.limits.jetstream(), None);
    assert!(a.is_revoked("UX", 10) && !a.is_revoked("UX", 11));
    assert!(a.is_revoked("UY", 5) && !a.is_revoked("UY", 6));
    let u: User = serde_json::from_str(
        r#"{"type":"user","pub":{"allow":["a.>"]},"sub":{"deny":["b"]},"subs":3,"bearer_token":true}"#,
    )
    .unwrap();
    assert_eq!(u.limits.permissions.publish.allow, vec!["a.>"]);
    assert_eq!(u.limits.permissions.subscribe.deny, vec!["b"]);
    assert_eq!((u.limits.subs, u.limits.payload), (3, NO_LIMIT));
    assert!(u.limits.bearer_token);
    let keys: Account = serde_json::from_str(
        r#"{"type":"account","signing_keys":["AK",{"kind":"user_scope","key":"AS","role":"r","template":{"pub":{"allow":["x"]}}}]}"#,
    )
    .unwrap();
    assert_eq!(keys.signing_key("AK"), Some(&SigningKey::Key("AK".into())));
    let Some(SigningKey::Scoped(s)) = keys.signing_key("AS") else {
        panic!("scoped key")
    };
    assert_eq!(s.template.permissions.publish.allow, vec!["x"]);
    let tiered: AccountLimits =
        serde_json::from_str(r#"{"tiered_limits":{"R1":{"disk_storage":-1,"streams":2}}}"#)
            .unwrap();
    assert_eq!(tiered.jetstream().map(|t| t.streams), Some(2));
}

#[test]
fn expiry_and_not_before() {
    let mut c = account_claims("A");
    assert!(!c.expired(100));
    c.exp = Some(100);
    assert!(c.expired(100) && !c.expired(99));
    c.exp = None;
    c.nbf = Some(50);
    assert!(c.expired(49) && !c.expired(50));
}

#[test]
fn creds_files() {
    let text = format_creds("eyJhbGc.eyJq.sig", "SUAM");
    assert_eq!(
        parse_creds(&text),
        Ok(Creds {
            jwt: "eyJhbGc.eyJq.sig".into(),
            seed: "SUAM".into()
        })
    );
    assert_eq!(parse_creds("-----BEGIN X-----\n"), Err(JwtError::Format));
    assert_eq!(parse_creds(""), Err(JwtError::Format));
}

#[test]
fn malformed_tokens_are_errors() {
    for t in ["", "a", "a.b", "a.b.c.d", "!.!.!", "e30.e30.e30"] {
        assert!(decode::<User>(t).is_err(), "{t}");
    }
    let big = "a".repeat(MAX_TOKEN + 1);
    assert_eq!(decode::<User>(&big), Err(JwtError::Format));
}

proptest! {
    #[test]
    fn decode_never_panics(s in ".{0,300}") {
        let _ = decode::<Account>(&s);
        let _ = peek_subject(&s);
        let _ = parse_creds(&s);
    }

    #[test]
    fn decode_of_mangled_tokens_never_panics(cut in 0usize..400, flip in 0usize..400) {
        let op = nkeys::KeyPair::new_operator();
        let mut c = account_claims("ABC");
        let token = encode(&mut c, &op, 1).unwrap();
        let mut bytes = token.into_bytes();
        let i = flip % bytes.len();
        bytes[i] ^= 1;
        bytes.truncate(cut.min(bytes.len()));
        let s = String::from_utf8_lossy(&bytes);
        let _ = decode::<Account>(&s);
    }
}

#[test]
fn activations_and_export_revocations() {
    let exporter = nkeys::KeyPair::new_account();
    let importer = nkeys::KeyPair::new_account().public_key();
    let mut c = Claims::new(
        importer.clone(),
        "act",
        Activation {
            kind: "activation".into(),
            subject: "svc.>".into(),
            export_kind: "service".into(),
            version: 2,
            ..Activation::default()
        },
    );
    let token = encode(&mut c, &exporter, 100).unwrap();
    let back = decode::<Activation>(&token).unwrap();
    assert_eq!(
        (back.sub.as_str(), back.nats.export_kind.as_str()),
        (importer.as_str(), "service")
    );
    assert!(token.split('.').nth(1).is_some_and(|p| {
        let json = URL_SAFE_NO_PAD.decode(p).unwrap();
        String::from_utf8(json)
            .unwrap()
            .contains(r#""kind":"service""#)
    }));
    let export: Export =
        serde_json::from_str(&format!(r#"{{"subject":"svc.>","type":"service","token_req":true,"revocations":{{"{importer}":100}}}}"#))
            .unwrap();
    assert!(export.is_revoked(&importer, 100) && !export.is_revoked(&importer, 101));
}
