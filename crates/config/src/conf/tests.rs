//! End-to-end tests of nats.conf loading: tables of good and bad inputs (with the expected
//! error positions), size suffixes, durations, variables, includes, the shipped example
//! file, and a deterministic no-panic sweep over random and truncated inputs (nats.conf and
//! TOML).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{load_file, load_str, load_toml_str, Auth, ConfigError, Loaded, SyncMode, User};

fn load(text: &str) -> Loaded {
    load_str(text, "nats.conf").unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn load_err(text: &str) -> ConfigError {
    match load_str(text, "nats.conf") {
        Ok(l) => panic!("{text:?} loaded: {l:?}"),
        Err(e) => e,
    }
}

const MEDISYNC: &str = r#"API_PASS: "api-pass-from-var"
server_name: medisync-nats
listen: 0.0.0.0:4222
http_port: 8222
jetstream {
  store_dir: /data/jetstream
  max_mem: 1G
  max_file: 10G
}
authorization {
  users: [
    { user: etl, password: "$2a$11$W2zko751KUvVy59mUTWmpOdWjQ1sCNJ1F/UAp8Q09bsAQxBRsZOMC" }
    { user: api, password: $API_PASS }
  ]
}
"#;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/nats.conf");
const EXAMPLE_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/petrel.toml");

#[test]
fn good_inputs() {
    let good = [
        "",
        "# only a comment\n// and another",
        "{}",
        "{ port: 4333 }",
        "{\n  port: 4333\n}\n",
        "port 4333",
        "port = 4333;",
        "server_name: a, port: 4333; debug: true",
        "x: [1, 2, 3,]",
        "x: [\n 1\n 2 # c\n // d\n 3\n]",
        "x: []",
        "x { y { z: 1 } }",
        "x {\n}\n",
        "x: (\nraw text ) here\n  )\n)\n",
        "'quoted key': 1\n\"dq key\" = 2",
        "a: 'x', b: \"y\", c: z",
        "a: -1.5",
        "a: 2024-01-01T00:00:00Z",
        "a: http://example.com/x#frag",
        "port: 4222 # trailing comment",
        "port: 4222 // trailing comment",
        "port: 4222\r\ndebug: true\r\n",
        "server_name: \"caf\u{e9}\\x41\"\n",
        "  \t\n\n port: 4222\n\n",
    ];
    // Syntax only: applying them would refuse their made-up keys (`x`, `a`...).
    for text in good {
        crate::conf::parse_str(text, "nats.conf").unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}

#[test]
fn unknown_keys_are_refused_like_nats_server() {
    for (text, want) in [
        (
            "port: 4222
max_payloud: 1MB",
            "nats.conf:2:1: unknown field \"max_payloud\"",
        ),
        (
            "jetstream { store_dri: /x }",
            "nats.conf:1:13: unknown field \"store_dri\"",
        ),
        (
            "authorization { usr: a }",
            "nats.conf:1:17: unknown field \"usr\"",
        ),
        (
            "authorization { users: [ { user: a, passwd: b } ] }",
            "nats.conf:1:37: unknown field \"passwd\"",
        ),
    ] {
        assert_eq!(load_err(text).to_string(), want);
    }
    // nats-server keys Petrel does not implement yet are warnings, not errors.
    let l = load(
        "prof_port: 6060
no_fast_producer_stall: true
jetstream { meta_compact: 10 }",
    );
    assert_eq!(l.warnings.len(), 3, "{:?}", l.warnings);
}

#[test]
fn bad_inputs_report_positions() {
    // (input, "line:col", part of the message)
    let bad: &[(&str, &str, &str)] = &[
        ("a: 1\nb: 2\nport: \n", "3:7", "expected a value after ':'"),
        ("port:\n", "1:6", "expected a value after ':'"),
        ("port:", "1:6", "expected a value after ':'"),
        ("a = ", "1:5", "expected a value after '='"),
        ("key\n", "1:4", "expected a value after key 'key'"),
        (
            "a: [1, 2",
            "1:9",
            "expected ']' to close the array opened at 1:4",
        ),
        (
            "a { b: 1",
            "1:9",
            "expected '}' to close the block opened at 1:3",
        ),
        ("a: \"open", "1:4", "expected a closing \""),
        ("a: 'open", "1:4", "expected a closing '"),
        (
            "a: 1 2",
            "1:6",
            "expected a newline, ',' or ';' after the value of 'a', found '2'",
        ),
        (": 1", "1:1", "expected a key, found ':'"),
        ("a: 1;;", "1:6", "expected a key, found ';'"),
        ("a: [1,,2]", "1:7", "unexpected ','"),
        ("a: [1 2]", "1:7", "expected ',', a newline or ']'"),
        ("a: [1}", "1:6", "expected ',', a newline or ']'"),
        ("a: {b: 1]", "1:9", "after the value of 'b', found ']'"),
        ("a: \"\\q\"", "1:5", "invalid escape '\\q'"),
        ("a: \"\\x4g\"", "1:5", "expected two hexadecimal digits"),
        (
            "\n  x: $PETREL_TEST_SURELY_UNDEFINED",
            "2:6",
            "unknown variable '$PETREL_TEST_SURELY_UNDEFINED'",
        ),
        ("}", "1:1", "unexpected '}'"),
        ("{ a: 1 } b", "1:10", "expected the end of the file"),
        ("a: (\nfoo\n", "1:4", "expected a ')' alone"),
        ("a: 99999999999999999999", "1:4", "out of range"),
        ("a: 9999999999999999E", "1:4", "out of range"),
        ("a: $", "1:4", "expected a variable name after '$'"),
        (
            "port: abc",
            "1:7",
            "port: expected an integer, found a string (\"abc\")",
        ),
        ("port: 70000", "1:7", "port: port 70000 is out of range"),
        ("debug: maybe", "1:8", "debug: expected true or false"),
        (
            "jetstream {\n  max_mem: lots\n}",
            "2:12",
            "jetstream.max_mem: expected an integer",
        ),
        ("ping_interval: \"10\"", "1:16", "missing unit"),
        ("include nope_petrel_missing.conf", "1:9", "cannot include"),
        ("include\n", "1:8", "expected a value after key 'include'"),
        ("x: [[[[", "1:8", "expected ']'"),
    ];
    for &(text, at, msg) in bad {
        let e = load_err(text);
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("nats.conf:{at}: ")) && shown.contains(msg),
            "{text:?}: got {shown:?}, expected at {at} containing {msg:?}"
        );
        let pos = e.pos().map(|p| format!("{}:{}", p.line, p.col));
        assert_eq!(pos.as_deref(), Some(at), "{text:?}");
    }
}

#[test]
fn validation_errors_name_the_file() {
    let e = load_err("max_payload: 0");
    assert!(matches!(e, ConfigError::Validation { .. }), "{e:?}");
    assert!(e.to_string().starts_with("nats.conf: max_payload"), "{e}");
    let e = load_err("authorization { user: only }");
    assert!(e.to_string().contains("user and password"), "{e}");
}

#[test]
fn size_suffixes_apply_to_options() {
    let l = load("max_payload: 512KB\nmax_pending: 128MiB\nmax_control_line: 8k\n");
    assert_eq!(l.options.max_payload, 512 * 1024);
    assert_eq!(l.options.max_pending, 128 << 20);
    assert_eq!(l.options.max_control_line, 8000);
    let l = load("max_payload: 2mb\nmax_pending: 1g");
    assert_eq!(
        (l.options.max_payload, l.options.max_pending),
        (2 << 20, 1_000_000_000)
    );
    let js = load("jetstream { max_mem: 3Gi, max_file: 2T }")
        .options
        .jetstream;
    let js = js.expect("jetstream");
    assert_eq!(
        (js.max_memory, js.max_file),
        (Some(3 << 30), Some(2_000_000_000_000))
    );
    let js = load("jetstream { max_file: 1TB }")
        .options
        .jetstream
        .expect("jetstream");
    assert_eq!(js.max_file, Some(1 << 40));
}

#[test]
fn durations_apply_to_options() {
    let o = load("ping_interval: \"1h30m\"\nwrite_deadline: \"500ms\"\nping_max: 4").options;
    assert_eq!(o.ping_interval, Duration::from_secs(5400));
    assert_eq!(o.write_deadline, Duration::from_millis(500));
    assert_eq!(o.ping_max, 4);
    let o = load("ping_interval: 30\nwrite_deadline: 2m").options;
    assert_eq!(o.ping_interval, Duration::from_secs(30));
    assert_eq!(o.write_deadline, Duration::from_secs(120));
    let js = load("jetstream { sync_interval: \"30s\" }")
        .options
        .jetstream
        .expect("js");
    assert_eq!(js.sync, SyncMode::Interval(Duration::from_secs(30)));
    // Strict API requests are on unless turned off (nats-server 2.12+).
    assert!(js.strict);
    let js = load("jetstream { strict: false }")
        .options
        .jetstream
        .expect("js");
    assert!(!js.strict);
}

#[test]
fn variables_from_blocks_and_environment() {
    std::env::set_var("PETREL_CONF_TEST_PORT", "4999");
    std::env::set_var("PETREL_CONF_TEST_PASS", "two words!");
    std::env::set_var("PETREL_CONF_TEST_BLOCK", "{ store_dir: /env/js }");
    std::env::set_var("PETREL_CONF_TEST_CYCLE_A", "$PETREL_CONF_TEST_CYCLE_B");
    std::env::set_var("PETREL_CONF_TEST_CYCLE_B", "$PETREL_CONF_TEST_CYCLE_A");

    let l = load("port: $PETREL_CONF_TEST_PORT");
    assert_eq!(l.options.port, 4999);
    // A variable defined in the file shadows the environment.
    let l = load("PETREL_CONF_TEST_PORT: 5000\nport: $PETREL_CONF_TEST_PORT");
    assert_eq!(l.options.port, 5000);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Text that is not a single value is taken verbatim.
    let l = load("authorization { user: u, password: $PETREL_CONF_TEST_PASS }");
    assert_eq!(
        l.options.auth,
        Auth::UserPass {
            user: "u".into(),
            pass: "two words!".into()
        }
    );
    let l = load("jetstream: $PETREL_CONF_TEST_BLOCK");
    let js = l.options.jetstream.expect("js");
    assert_eq!(js.store_dir, PathBuf::from("/env/js"));
    let e = load_err("x: $PETREL_CONF_TEST_CYCLE_A");
    assert!(matches!(e, ConfigError::VariableCycle { .. }), "{e}");
    assert_eq!(e.pos().map(|p| (p.line, p.col)), Some((1, 4)));

    // Enclosing blocks, innermost first; a variable must be defined before use.
    let l = load("P: 4001\nauthorization { P: inner, user: $P, password: x }\nport: $P");
    assert_eq!(l.options.port, 4001);
    assert_eq!(
        l.options.auth,
        Auth::UserPass {
            user: "inner".into(),
            pass: "x".into()
        }
    );
    let e = load_err("port: $PETREL_LATER_DEFINED\nPETREL_LATER_DEFINED: 1");
    assert!(
        matches!(e, ConfigError::UnknownVariable { ref name, .. } if name == "PETREL_LATER_DEFINED")
    );
}

#[test]
fn includes_are_relative_to_the_including_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir(root.join("sub")).expect("mkdir");
    let write = |p: &str, text: &str| std::fs::write(root.join(p), text).expect("write");
    write(
        "main.conf",
        "include ./sub/auth.conf\nport: 4333\njetstream {\n  include 'js.conf'\n}\nmax_payload: $PAYLOAD\n",
    );
    write(
        "sub/auth.conf",
        "authorization {\n  include \"creds.conf\"\n}\nPAYLOAD: 2MB\n",
    );
    write("sub/creds.conf", "user: alice\npassword: secret\n");
    write("js.conf", "store_dir: /inc/js; max_mem: 1K");
    let main = root.join("main.conf");

    let l = load_file(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.options.port, 4333);
    assert_eq!(l.options.max_payload, 2 << 20);
    assert_eq!(
        l.options.auth,
        Auth::UserPass {
            user: "alice".into(),
            pass: "secret".into()
        }
    );
    let js = l.options.jetstream.clone().expect("js");
    assert_eq!(
        (js.store_dir, js.max_memory),
        (PathBuf::from("/inc/js"), Some(1000))
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);

    // load_str resolves includes against the directory of its name.
    let text = std::fs::read_to_string(&main).expect("read");
    let name = main.display().to_string();
    assert_eq!(
        load_str(&text, &name).map(|l| l.options).ok(),
        Some(l.options)
    );

    // Errors in an included file carry that file's name and position.
    write("bad.conf", "\nport: nope\n");
    write("uses_bad.conf", "include bad.conf\n");
    let e = load_file(&root.join("uses_bad.conf"))
        .err()
        .map(|e| e.to_string());
    let want = format!(
        "{}:2:7: port: expected an integer",
        root.join("bad.conf").display()
    );
    assert!(e.as_deref().is_some_and(|e| e.starts_with(&want)), "{e:?}");

    // Include cycles are reported, not followed forever.
    write("loop_a.conf", "include loop_b.conf\n");
    write("loop_b.conf", "include loop_a.conf\n");
    let e = load_file(&root.join("loop_a.conf"))
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref().is_some_and(|e| e.contains("include cycle")),
        "{e:?}"
    );

    // A missing top-level file is a read error naming it.
    let e = load_file(&root.join("absent.conf"))
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("absent.conf: cannot read")),
        "{e:?}"
    );
}

#[test]
fn medisync_file_loads() {
    let l = load(MEDISYNC);
    let o = &l.options;
    assert_eq!(o.server_name.as_deref(), Some("medisync-nats"));
    assert_eq!((o.host, o.port), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4222));
    assert_eq!(o.http_port, Some(8222));
    let js = o.jetstream.as_ref().expect("jetstream");
    assert_eq!(js.store_dir, Path::new("/data/jetstream"));
    assert_eq!(js.max_memory, Some(1_000_000_000));
    assert_eq!(js.max_file, Some(10_000_000_000));
    assert_eq!(
        o.auth,
        Auth::Users(vec![
            User {
                user: "etl".into(),
                password: Some(
                    "$2a$11$W2zko751KUvVy59mUTWmpOdWjQ1sCNJ1F/UAp8Q09bsAQxBRsZOMC".into()
                ),
                ..User::default()
            },
            User {
                user: "api".into(),
                password: Some("api-pass-from-var".into()),
                ..User::default()
            },
        ])
    );
    // No warnings: API_PASS is a variable, not an unknown key.
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn example_file_loads() {
    let l = load_file(Path::new(EXAMPLE)).unwrap_or_else(|e| panic!("{EXAMPLE}: {e}"));
    let o = &l.options;
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(o.server_name.as_deref(), Some("petrel-example"));
    assert_eq!(o.port, 4222);
    assert_eq!(o.max_payload, 1 << 20);
    assert_eq!(o.ping_interval, Duration::from_secs(120));
    assert_eq!(
        o.jetstream.as_ref().map(|js| js.store_dir.clone()),
        Some(PathBuf::from("./data"))
    );
}

#[test]
fn unsupported_blocks_warn() {
    let text = "gateway {}\nmqtt { port: 1883 }\naccounts { A: {} }\n";
    let l = load(text);
    let keys = ["gateway", "mqtt"];
    assert_eq!(l.warnings.len(), keys.len(), "{:?}", l.warnings);
    for (w, k) in l.warnings.iter().zip(keys) {
        assert!(
            w.ends_with(&format!("{k} is not supported yet and is ignored")),
            "{w}"
        );
    }
}

/// xorshift64: a tiny deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Loading must return (Ok or Err), never panic; formatting the error must not panic either.
fn must_not_panic(text: &str) {
    if let Err(e) = load_str(text, "fuzz/none.conf") {
        let _ = e.to_string();
        let _ = e.pos();
    }
}

/// The same for TOML.
fn toml_must_not_panic(text: &str) {
    if let Err(e) = load_toml_str(text, "fuzz/none.toml") {
        let _ = e.to_string();
        let _ = e.pos();
    }
}

#[test]
fn never_panics_on_random_or_truncated_input() {
    const ALPHABET: &[u8] = b"{}[]():=,;#/\"'\\$-. \t\n\r0123456789kKmMgGbBiIeExXabcdefgtruyson_";
    // PETREL_FUZZ_ITERS raises the count for a longer local run.
    let iters = std::env::var("PETREL_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for i in 0..iters {
        let len = rng.below(160);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if i % 3 == 0 {
                    (rng.next() & 0xff) as u8
                } else {
                    ALPHABET[rng.below(ALPHABET.len())]
                }
            })
            .collect();
        must_not_panic(&String::from_utf8_lossy(&bytes));
    }
    let example = std::fs::read_to_string(EXAMPLE).expect("example file");
    for text in [MEDISYNC, example.as_str()] {
        for (cut, _) in text.char_indices() {
            must_not_panic(&text[..cut]);
        }
        // And one-byte mutations of the whole file.
        let bytes = text.as_bytes();
        for _ in 0..200 {
            let mut m = bytes.to_vec();
            let at = rng.below(m.len());
            m[at] = ALPHABET[rng.below(ALPHABET.len())];
            must_not_panic(&String::from_utf8_lossy(&m));
        }
    }

    // TOML: random bytes, then every prefix and one-byte mutations of petrel.toml.
    const TOML_ALPHABET: &[u8] = b"[]{}=,.#\"'\\ \t\n\r0123456789_+-:xobeEinfatruslT";
    for i in 0..iters {
        let len = rng.below(160);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if i % 3 == 0 {
                    (rng.next() & 0xff) as u8
                } else {
                    TOML_ALPHABET[rng.below(TOML_ALPHABET.len())]
                }
            })
            .collect();
        toml_must_not_panic(&String::from_utf8_lossy(&bytes));
    }
    // A denser document too: the example is mostly comments.
    const DENSE_TOML: &str = "listen = \"127.0.0.1:4333\"\nmax_payload = 0x10_0000\nping_interval = 1.5\n[jetstream]\nmax_mem = \"1G\"\nsync = 2\n[[authorization.users]]\nuser = 'a'\npassword = \"\"\"p\\u00e9\"\"\"\npermissions = { publish = { allow = [\"a.>\"] }, allow_responses = { max = 2, expires = \"1m\" } }\n";
    let example = std::fs::read_to_string(EXAMPLE_TOML).expect("example TOML file");
    for text in [example.as_str(), DENSE_TOML] {
        for (cut, _) in text.char_indices() {
            toml_must_not_panic(&text[..cut]);
        }
        let bytes = text.as_bytes();
        for _ in 0..200 {
            let mut m = bytes.to_vec();
            let at = rng.below(m.len());
            m[at] = TOML_ALPHABET[rng.below(TOML_ALPHABET.len())];
            toml_must_not_panic(&String::from_utf8_lossy(&m));
        }
    }
    assert!(load_toml_str(DENSE_TOML, "dense.toml").is_ok());
}
