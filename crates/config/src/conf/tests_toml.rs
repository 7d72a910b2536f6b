//! End-to-end tests of TOML loading: tables of good and bad inputs (with the expected
//! error positions), users as arrays of tables, durations and sizes as strings and
//! integers, TOML and nats.conf giving the same options, and the choice of format by file
//! extension.

use std::path::PathBuf;
use std::time::Duration;

use crate::{
    is_toml_path, load_file, load_str, load_toml_str, Auth, ConfigError, Loaded, Options,
    Permissions, ResponsePermission, SubjectPermission, SyncMode, User,
};

fn load(text: &str) -> Loaded {
    load_toml_str(text, "t.toml").unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn opts(text: &str) -> Options {
    load(text).options
}

#[test]
fn good_inputs() {
    let good = [
        "",
        "# only a comment\n",
        "port = 4333",
        "port = 4333\r\ndebug = true\r\n",
        "listen = 4333",
        "listen = \"127.0.0.1:4333\"",
        "\"server_name\" = 'quoted'",
        "max_payload = 0x10_0000",
        "jetstream = true",
        "jetstream = \"enabled\"",
        "jetstream = {}",
        "[jetstream]",
        "[jetstream]\n[authorization]\ntoken = \"t\"",
        "authorization = { user = \"a\", password = \"b\" }",
        "[authorization]\nusers = []",
        "x = 2024-01-01T00:00:00Z",
        "x.y.z = [1, 2.5, \"s\", true, [], {}, -inf, nan]",
        "ping_interval = 1.5",
        "ping_interval = \"\"\"\n1m\"\"\"",
    ];
    // Syntax only: applying them would refuse their made-up keys.
    for text in good {
        crate::conf::parse_toml_str(text, "t.toml").unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

#[test]
fn bad_inputs_report_positions() {
    // (input, "line:col", part of the message)
    let bad: &[(&str, &str, &str)] = &[
        ("port = ", "1:8", "TOML: string values must be quoted"),
        ("port 4222", "1:6", "TOML: key with no value, expected `=`"),
        ("a = 1\na = 2", "2:1", "TOML: duplicate key 'a'"),
        ("[a]\nx = 1\n[a]", "3:2", "duplicate key 'a'"),
        ("[[a]]\n[a]", "2:2", "duplicate key 'a'"),
        ("a = [1]\n[[a]]", "2:3", "duplicate key 'a'"),
        ("a = \"open", "1:10", "expected `\"`"),
        ("a = [1, 2", "1:10", "unclosed array"),
        ("a = { b = 1", "1:12", "unclosed inline table"),
        ("[jetstream\nx = 1", "1:11", "unclosed table"),
        ("\n\n  b = \"\\q\"", "3:9", "missing escaped value"),
        ("a = 1__0", "1:6", "`_` may only go between digits"),
        ("a = 01", "1:5", "unexpected leading zero"),
        ("café = 1", "1:4", "invalid unquoted key"),
        ("x = \"é\" y", "1:9", "unexpected key or value"),
        (
            "a = 99999999999999999999",
            "1:5",
            "integer 99999999999999999999 is out of range",
        ),
        ("a = 1e999", "1:5", "float 1e999 is out of range"),
        // Errors from applying the tree carry TOML positions too.
        (
            "port = \"abc\"",
            "1:8",
            "port: expected an integer, found a string (\"abc\")",
        ),
        ("port = 70000", "1:8", "port: port 70000 is out of range"),
        (
            "debug = 1",
            "1:9",
            "debug: expected true or false, found an integer (1)",
        ),
        (
            "\n[jetstream]\nmax_mem = \"lots\"",
            "3:11",
            "jetstream.max_mem: expected an integer",
        ),
        (
            "authorization = 5",
            "1:17",
            "authorization: expected a block",
        ),
        ("ping_interval = \"10\"", "1:17", "missing unit"),
        (
            "ping_interval = -5",
            "1:17",
            "duration must not be negative",
        ),
        ("ping_interval = 2024-01-01", "1:17", "ping_interval"),
        (
            "[tls]\ncert_file = \"c\"",
            "1:1",
            "tls needs both cert_file and key_file",
        ),
        (
            "[[authorization.users]]\nuser = \"a\"\npermissions = { publish = \"a..b\" }",
            "3:27",
            "authorization.users[0].permissions.publish: invalid subject \"a..b\"",
        ),
        (
            "[[authorization.users]]\nuser = \"a\"\n[[authorization.users]]\nuser = \"a\"",
            "3:1",
            "authorization.users[1]: duplicate user \"a\"",
        ),
        (
            "[[authorization.users]]\npassword = \"p\"",
            "1:1",
            "a user entry needs a 'user' or an 'nkey'",
        ),
    ];
    for &(text, at, msg) in bad {
        let e = match load_toml_str(text, "t.toml") {
            Ok(l) => panic!("{text:?} loaded: {l:?}"),
            Err(e) => e,
        };
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("t.toml:{at}: ")) && shown.contains(msg),
            "{text:?}: got {shown:?}, expected at {at} containing {msg:?}"
        );
        let pos = e.pos().map(|p| format!("{}:{}", p.line, p.col));
        assert_eq!(pos.as_deref(), Some(at), "{text:?}");
    }
    // Options refused as a whole name the file.
    let e = load_toml_str("max_payload = 0", "t.toml").expect_err("max_payload 0");
    assert!(matches!(e, ConfigError::Validation { .. }), "{e:?}");
    assert!(e.to_string().starts_with("t.toml: max_payload"), "{e}");
}

#[test]
fn warnings_carry_toml_positions() {
    let l = load("\n\ngateway = { port = 7222 }\n[jetstream]\n  cipher = \"aes\"");
    assert_eq!(
        l.warnings,
        [
            "t.toml:3:1: gateway is not supported yet and is ignored",
            "t.toml:5:3: jetstream.cipher is not supported yet and is ignored",
        ]
    );
}

#[test]
fn users_as_arrays_of_tables() {
    let nkey = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
    let text = format!(
        r#"
[authorization]
timeout = "3s"
default_permissions = {{ subscribe = {{ deny = ["secret.>"] }} }}

[[authorization.users]]
user = "a"
password = "pa"
permissions = {{ publish = {{ allow = ["a.>"] }} }}

[[authorization.users]]
user = "b"
password = "$2a$11$W2zko751KUvVy59mUTWmpOdWjQ1sCNJ1F/UAp8Q09bsAQxBRsZOMC"

# A sub-table of the last user.
[authorization.users.permissions]
subscribe = ["b.*", "b.q workers"]
allow_responses = {{ max = 2, expires = 30 }}

[[authorization.users]]
nkey = "{nkey}"
"#
    );
    let l = load(&text);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let o = l.options;
    assert_eq!(o.auth_timeout, Duration::from_secs(3));
    assert_eq!(
        o.default_permissions,
        Some(Permissions {
            subscribe: Some(SubjectPermission {
                allow: Vec::new(),
                deny: vec!["secret.>".into()],
            }),
            ..Permissions::default()
        })
    );
    let allow = |s: &[&str]| {
        Some(SubjectPermission {
            allow: s.iter().map(|s| s.to_string()).collect(),
            deny: Vec::new(),
        })
    };
    assert_eq!(
        o.auth,
        Auth::Users(vec![
            User {
                user: "a".into(),
                password: Some("pa".into()),
                nkey: None,
                account: None,
                permissions: Some(Permissions {
                    publish: allow(&["a.>"]),
                    ..Permissions::default()
                }),
            },
            User {
                user: "b".into(),
                password: Some(
                    "$2a$11$W2zko751KUvVy59mUTWmpOdWjQ1sCNJ1F/UAp8Q09bsAQxBRsZOMC".into()
                ),
                nkey: None,
                account: None,
                permissions: Some(Permissions {
                    subscribe: allow(&["b.*", "b.q workers"]),
                    allow_responses: Some(ResponsePermission {
                        max: 2,
                        expires: Duration::from_secs(30),
                    }),
                    ..Permissions::default()
                }),
            },
            User {
                user: nkey.into(),
                password: None,
                nkey: Some(nkey.into()),
                account: None,
                permissions: None,
            },
        ])
    );
    // An inline array of inline tables is the same thing.
    let inline = opts(
        r#"authorization = { users = [ { user = "a", password = "pa", permissions = { publish = { allow = ["a.>"] } } } ] }"#,
    );
    let Auth::Users(users) = inline.auth else {
        panic!("users expected");
    };
    assert_eq!(
        users[0]
            .permissions
            .as_ref()
            .and_then(|p| p.publish.clone()),
        allow(&["a.>"])
    );
}

#[test]
fn durations_as_strings_or_seconds() {
    let cases: &[(&str, Duration)] = &[
        ("ping_interval = \"2m\"", Duration::from_secs(120)),
        ("ping_interval = 120", Duration::from_secs(120)),
        ("ping_interval = \"1h30m\"", Duration::from_secs(5400)),
        ("ping_interval = 1.5", Duration::from_millis(1500)),
        ("ping_interval = \"250ms\"", Duration::from_millis(250)),
    ];
    for &(text, want) in cases {
        assert_eq!(opts(text).ping_interval, want, "{text}");
    }
    let o = opts("write_deadline = \"500ms\"\n[authorization]\ntimeout = 4");
    assert_eq!(o.write_deadline, Duration::from_millis(500));
    assert_eq!(o.auth_timeout, Duration::from_secs(4));
    assert_eq!(
        opts("authorization.timeout = \"4s\"").auth_timeout,
        Duration::from_secs(4)
    );
    let sync = |text: &str| opts(text).jetstream.map(|js| js.sync);
    let two = Some(SyncMode::Interval(Duration::from_secs(2)));
    assert_eq!(sync("jetstream.sync_interval = \"2s\""), two);
    assert_eq!(sync("jetstream.sync_interval = 2"), two);
    assert_eq!(sync("jetstream.sync = \"always\""), Some(SyncMode::Always));
    let tls = |t: &str| {
        opts(&format!(
            "tls = {{ cert_file = \"c\", key_file = \"k\", timeout = {t} }}"
        ))
        .tls
        .map(|t| t.timeout)
    };
    assert_eq!(tls("3"), Some(Duration::from_secs(3)));
    assert_eq!(tls("\"3s\""), Some(Duration::from_secs(3)));
}

#[test]
fn sizes_as_strings_or_integers() {
    let cases: &[(&str, usize)] = &[
        ("max_payload = 524288", 512 * 1024),
        ("max_payload = \"512KB\"", 512 * 1024),
        ("max_payload = \"512k\"", 512_000),
        ("max_payload = \"1MiB\"", 1 << 20),
        ("max_payload = \"1048576\"", 1 << 20),
        ("max_payload = 0x8_0000", 512 * 1024),
    ];
    for &(text, want) in cases {
        assert_eq!(opts(text).max_payload, want, "{text}");
    }
    let o = opts("max_pending = \"128MB\"\nmax_control_line = 8192");
    assert_eq!((o.max_pending, o.max_control_line), (128 << 20, 8192));
    let limits = |text: &str| {
        let js = opts(text).jetstream.expect("jetstream");
        (js.max_memory, js.max_file)
    };
    assert_eq!(
        limits("[jetstream]\nmax_mem = \"1G\"\nmax_file = \"1TB\""),
        (Some(1_000_000_000), Some(1 << 40))
    );
    assert_eq!(
        limits("[jetstream]\nmax_mem = 1_000_000_000\nmax_file = -1"),
        (Some(1_000_000_000), None)
    );
    let e = load_toml_str("max_payload = \"lots\"", "t.toml").expect_err("lots");
    assert!(
        e.to_string().contains("max_payload: expected an integer"),
        "{e}"
    );
}

#[test]
fn toml_and_nats_conf_give_the_same_options() {
    let pairs: &[(&str, &str)] = &[
        (
            "listen: 127.0.0.1:4333\nhttp: 8222\nserver_name: s1\ndebug: true\nmax_subs: 10",
            "listen = \"127.0.0.1:4333\"\nhttp = 8222\nserver_name = \"s1\"\ndebug = true\nmax_subs = 10",
        ),
        (
            "jetstream { store_dir: /js, max_mem: 1G, max_file: 2GB, sync_interval: 30s }",
            "[jetstream]\nstore_dir = \"/js\"\nmax_mem = \"1G\"\nmax_file = \"2GB\"\nsync_interval = \"30s\"",
        ),
        (
            "authorization { users: [ { user: a, password: b, permissions: { publish: { allow: [\"a.>\"], deny: a.x }, allow_responses: true } } ] }",
            "[[authorization.users]]\nuser = \"a\"\npassword = \"b\"\npermissions = { publish = { allow = [\"a.>\"], deny = \"a.x\" }, allow_responses = true }",
        ),
        (
            "tls { cert_file: ./certs/c.pem, key_file: ./certs/k.pem, ca_file: ./certs/ca.pem, verify: true, handshake_first: auto }",
            "[tls]\ncert_file = \"./certs/c.pem\"\nkey_file = \"./certs/k.pem\"\nca_file = \"./certs/ca.pem\"\nverify = true\nhandshake_first = \"auto\"",
        ),
    ];
    for &(conf, toml) in pairs {
        let c = load_str(conf, "t.conf").unwrap_or_else(|e| panic!("{conf:?}: {e}"));
        assert_ne!(c.options, Options::default(), "{conf:?}");
        assert_eq!(load(toml).options, c.options, "{toml:?}");
    }
}

#[test]
fn load_file_picks_the_format_by_extension() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let toml = "port = 4333\n[jetstream]\nstore_dir = \"/t\"\n";
    for name in ["a.toml", "b.TOML"] {
        let p = write(name, toml);
        assert!(is_toml_path(&p));
        let o = load_file(&p)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .options;
        assert_eq!(o.port, 4333);
        assert_eq!(
            o.jetstream.map(|js| js.store_dir),
            Some(PathBuf::from("/t"))
        );
    }
    // The same text in a .conf file is nats.conf, where `[jetstream]` is an array.
    let p = write("c.conf", toml);
    assert!(!is_toml_path(&p));
    assert!(load_file(&p).is_err());
    // TOML errors name the file with line and column.
    let p = write("bad.toml", "port = 4333\nport = 4334\n");
    let e = load_file(&p).expect_err("duplicate").to_string();
    assert_eq!(
        e,
        format!("{}:2:1: TOML: duplicate key 'port'", p.display())
    );
    // A missing TOML file is a read error naming it.
    let e = load_file(&dir.path().join("absent.toml")).expect_err("absent");
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("absent.toml: cannot read"), "{e}");
    assert!(!is_toml_path(&PathBuf::from("toml")));
    assert!(!is_toml_path(&PathBuf::from("x.toml.bak")));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = 100_000;
    let texts = [
        format!("{} = 1", vec!["a"; deep].join(".")),
        format!("[{}]\nx = 1", vec!["a"; deep].join(".")),
        format!("a = {}", "[".repeat(deep)),
        format!("a = {}", "{b=".repeat(deep)),
    ];
    for text in &texts {
        let e = load_toml_str(text, "d.toml").expect_err("too deep");
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("recurs"), "{e}");
    }
}
