//! `accounts {}`, `no_auth_user` and `system_account` read from nats.conf.

use super::apply;
use super::parse_str;
use crate::{AccountJetStream, Auth, Options};

fn load(text: &str) -> Result<(Options, Vec<String>), String> {
    let map = parse_str(text, "a.conf").map_err(|e| e.to_string())?;
    let mut o = Options::default();
    let w = apply(&map, &mut o).map_err(|e| e.to_string())?;
    Ok((o, w))
}

const TWO: &str = r#"
accounts {
  A: { users: [ { user: a, password: a } ], jetstream: enabled }
  B: {
    users: [ { user: b, password: b }, { user: b2, password: b2, permissions: { publish: "x" } } ]
    default_permissions: { publish: "y" }
    jetstream: { max_mem: 1M, max_file: 10M, max_streams: 2, max_consumers: -1 }
  }
  C: {}
}
no_auth_user: a
"#;

#[test]
fn accounts_users_and_limits() {
    let (o, w) = load(TWO).expect("loads");
    assert!(w.is_empty(), "{w:?}");
    let names: Vec<&str> = o.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(o.accounts[0].jetstream, Some(AccountJetStream::default()));
    assert_eq!(
        o.accounts[1].jetstream,
        Some(AccountJetStream {
            max_memory: Some(1_000_000),
            max_file: Some(10_000_000),
            max_streams: Some(2),
            max_consumers: None,
            max_bytes_required: false,
        })
    );
    assert_eq!(o.accounts[2].jetstream, None);
    let Auth::Users(users) = &o.auth else {
        panic!("users expected: {:?}", o.auth);
    };
    let who: Vec<(&str, Option<&str>)> = users
        .iter()
        .map(|u| (u.user.as_str(), u.account.as_deref()))
        .collect();
    assert_eq!(who, [("a", Some("A")), ("b", Some("B")), ("b2", Some("B"))]);
    // The account's default permissions apply to its users without their own.
    let publish = |i: usize| {
        users[i]
            .permissions
            .as_ref()
            .and_then(|p| p.publish.as_ref())
            .map(|p| p.allow.clone())
    };
    assert_eq!(publish(1), Some(vec!["y".to_string()]));
    assert_eq!(publish(2), Some(vec!["x".to_string()]));
    assert_eq!(o.no_auth_user.as_deref(), Some("a"));
}

#[test]
fn top_level_users_stay_in_the_global_account() {
    let text = "authorization { users: [ { user: g, password: g } ] }\naccounts { A: { users: [ { user: a, password: a } ] } }";
    let (o, _) = load(text).expect("loads");
    let Auth::Users(users) = &o.auth else {
        panic!("users expected");
    };
    assert_eq!(users[0].account, None);
    assert_eq!(users[1].account.as_deref(), Some("A"));
}

#[test]
fn account_config_errors() {
    for (text, why) in [
        (
            "accounts { A: { users: [ {user: a, password: a} ] }, B: { users: [ {user: a, password: b} ] } }",
            "Duplicate user \"a\" detected",
        ),
        (
            "accounts { A: { users: [ {user: a, password: a} ] } }\nno_auth_user: nobody",
            "no_auth_user: \"nobody\" not present as user or nkey",
        ),
        ("system_account: NOPE", "error resolving system account: account missing"),
        ("accounts { A: { bogus: 1 } }", "unknown field"),
        (
            "accounts { A: { jetstream: maybe } }",
            "Expected 'enabled' or 'disabled' for string value, got 'maybe'",
        ),
        ("accounts { $G: {} }", "\"$G\" is a Reserved Account"),
        (
            "no_auth_user: nobody",
            "no_auth_user: \"nobody\" present, but users/nkeys are not defined",
        ),
        (
            "accounts { S: { jetstream: enabled } }\nsystem_account: S",
            "Not allowed to enable JetStream on the system account",
        ),
        (
            "authorization { token: t }\naccounts { A: { users: [ {user: a, password: a} ] } }",
            "can not have a single user/pass or token and account users",
        ),
    ] {
        let e = load(text).expect_err(text);
        assert!(e.contains(why), "{text}: {e}");
    }
    let (o, _) = load("accounts { SYS: {} }\nsystem_account: SYS").expect("loads");
    assert_eq!(o.system_account.as_deref(), Some("SYS"));
    // Defined twice: the last definition wins (its users only), as in nats-server.
    let twice = "accounts { A: { users: [ {user: a, password: a} ] }, A: { users: [ {user: b, password: b} ] } }";
    let (o, _) = load(twice).expect("loads");
    assert_eq!(o.accounts.len(), 1);
    let Auth::Users(users) = &o.auth else {
        panic!("users expected");
    };
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user, "b");
}

const SHARING: &str = r#"
accounts {
  A: {
    exports: [
      { stream: "events.>" }
      { service: "svc.echo" }
      { service: "svc.stream", response: stream }
      { stream: "private.>", accounts: [B] }
    ]
  }
  B: {
    imports: [
      { stream: { account: A, subject: "events.>" }, prefix: "fromA" }
      { stream: { account: A, subject: "private.>" }, to: "p.>" }
      { service: { account: A, subject: "svc.echo" }, to: "echo" }
      { service: { account: A, subject: "svc.stream" }, share: true }
    ]
  }
}
"#;

#[test]
fn exports_and_imports() {
    use crate::{Export, Import, ImportKind, ResponseType};
    let (o, w) = load(SHARING).expect("loads");
    assert!(w.is_empty(), "{w:?}");
    let a = &o.accounts[0];
    assert_eq!(
        a.exports[3],
        Export {
            subject: "private.>".into(),
            service: None,
            accounts: vec!["B".into()],
        }
    );
    assert_eq!(a.exports[2].service, Some(ResponseType::Stream));
    assert_eq!(a.exports[1].service, Some(ResponseType::Singleton));
    let b = &o.accounts[1];
    let locals: Vec<String> = b.imports.iter().map(Import::local_subject).collect();
    assert_eq!(locals, ["fromA.events.>", "p.>", "echo", "svc.stream"]);
    assert_eq!(
        b.imports[3].kind,
        ImportKind::Service {
            to: None,
            share: true
        }
    );
}

#[test]
fn import_errors_are_nats_servers() {
    let with = |imports: &str| {
        format!(
            "accounts {{ A: {{ exports: [ {{stream: \"events.>\"}}, {{service: \"svc.echo\"}}, {{stream: \"private.>\", accounts: [B]}} ] }}, B: {{}}, C: {{ imports: [ {imports} ] }} }}"
        )
    };
    for (imports, why) in [
        ("{stream: {account: A, subject: \"foo.>\"}}", "Error adding stream import \"foo.>\": stream import not authorized"),
        ("{service: {account: A, subject: \"svc.nope\"}}", "Error adding service import \"svc.nope\": service import not authorized"),
        ("{stream: {account: A, subject: \"private.>\"}}", "Error adding stream import \"private.>\": stream import not authorized"),
        ("{service: {account: A, subject: \"svc.*\"}}", "Error adding service import \"svc.*\": service import not authorized"),
        ("{stream: {account: A, subject: \"events.>\"}}, {stream: {account: A, subject: \"events.>\"}, prefix: x}", "Error adding stream import \"events.>\": stream import already exists"),
        ("{stream: {account: A, subject: \"events.>\"}, prefix: \"x.*\"}", "stream import prefix can not contain wildcard tokens"),
        ("{stream: {account: A, subject: \"events.>\"}, to: \"ev.*\"}", "failed to create mapping transform for stream import subject from \"events.>\" to \"ev.*\": invalid subject"),
        ("{stream: {account: Z, subject: \"x\"}}", "\"Z\" account not defined for stream import"),
        ("{stream: {account: A, subject: \"events.>\"}, prefix: p, to: \"t.>\"}", "Stream import can not have a 'prefix' and a 'to' property"),
    ] {
        let text = with(imports);
        let e = load(&text).expect_err(imports);
        assert!(e.contains(why), "{imports}: {e}");
    }
    // Two accounts importing each other's `foo`: a cycle (nats-server's text).
    let cycle = "accounts { A: { exports: [ {stream: foo} ], imports: [ {stream: {account: B, subject: foo}} ] }, B: { exports: [ {stream: foo} ], imports: [ {stream: {account: A, subject: foo}} ] } }";
    let e = load(cycle).expect_err("cycle");
    assert!(
        e.contains("Error adding stream import \"foo\": import forms a cycle"),
        "{e}"
    );
    let services = "accounts { A: { exports: [ {service: q} ], imports: [ {service: {account: B, subject: q}} ] }, B: { exports: [ {service: q} ], imports: [ {service: {account: A, subject: q}} ] } }";
    let e = load(services).expect_err("service cycle");
    assert!(e.contains("import forms a cycle"), "{e}");
    // A subset of a stream export may be imported.
    load(&with(
        "{stream: {account: A, subject: \"events.orders.*\"}}",
    ))
    .expect("subset import");
    let e =
        load("accounts { A: { exports: [ {stream: x, accounts: [Z]} ] } }").expect_err("unknown");
    assert!(
        e.contains("\"Z\" account not defined for stream export"),
        "{e}"
    );
}
