//! No password, token, nkey seed or JWT reaches any log line, at any level: every
//! authentication path (good and bad passwords, bcrypt, unknown users, tokens, nkeys,
//! malformed CONNECTs, credentials in the wrong JSON type, config errors) runs against the
//! binary with `-DV` (debug and protocol trace), and the whole log is searched.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use petrel_testkit::{spawn_binary_with, BinaryServer, RawClient};

const BIN: &str = env!("CARGO_BIN_EXE_petrel");

const PLAIN_PASS: &str = "plain-Secret-7731";
const BCRYPT_PASS: &str = "bcrypt-Secret-4410";
const WRONG_PASS: &str = "wrong-Secret-9902";
const TOKEN: &str = "token-Secret-5521";
const NUMERIC_PASS: &str = "8675309123";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

async fn connect(s: &BinaryServer, json: &str) -> Vec<u8> {
    let mut c = RawClient::connect(s.addr()).await;
    c.send(format!("CONNECT {json}\r\nPING\r\n").as_bytes())
        .await;
    c.read_until_closed_or(Duration::from_millis(500)).await
}

/// Fails when any secret appears in any log line.
fn assert_clean(logs: &[String], secrets: &[&str]) {
    assert!(!logs.is_empty());
    for line in logs {
        for secret in secrets {
            assert!(!line.contains(secret), "secret {secret:?} logged: {line}");
        }
    }
}

#[tokio::test]
async fn users_bcrypt_nkeys_and_bad_connects_leave_no_secret_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let kp = nkeys::KeyPair::new_user();
    let seed = kp.seed().unwrap();
    let hash = bcrypt::hash(BCRYPT_PASS, 4).unwrap();
    let conf = write(
        dir.path(),
        "users.conf",
        &format!(
            "authorization {{ users = [
               {{ user: plain, password: \"{PLAIN_PASS}\" }}
               {{ user: hashed, password: \"{hash}\" }}
               {{ nkey: {} }}
            ] }}\n",
            kp.public_key()
        ),
    );
    let s = spawn_binary_with(Path::new(BIN), &["-c", &conf, "-DV"]).unwrap();
    for json in [
        format!(r#"{{"user":"plain","pass":"{PLAIN_PASS}"}}"#),
        format!(r#"{{"user":"plain","pass":"{WRONG_PASS}"}}"#),
        format!(r#"{{"user":"hashed","pass":"{BCRYPT_PASS}"}}"#),
        format!(r#"{{"user":"hashed","pass":"{WRONG_PASS}"}}"#),
        format!(r#"{{"user":"nobody","pass":"{WRONG_PASS}"}}"#),
        // The password in the wrong JSON type: serde's error would quote it.
        format!(r#"{{"user":"plain","pass":{NUMERIC_PASS}}}"#),
        format!(r#"{{"user":"plain","pass":"{PLAIN_PASS}","auth_token":"{TOKEN}"}}"#),
        format!(
            r#"{{"nkey":"{}","sig":"bm90LWEtc2lnbmF0dXJl","jwt":"{seed}"}}"#,
            kp.public_key()
        ),
    ] {
        connect(&s, &json).await;
    }
    // A signed nonce: the signature is a credential too.
    let mut c = RawClient::connect(s.addr()).await;
    let nonce = c.info()["nonce"].as_str().unwrap().to_string();
    let sig = data_encoding(&kp.sign(nonce.as_bytes()).unwrap());
    c.send(
        format!(
            "CONNECT {{\"verbose\":false,\"nkey\":\"{}\",\"sig\":\"{sig}\"}}\r\nPING\r\n",
            kp.public_key()
        )
        .as_bytes(),
    )
    .await;
    c.expect(b"PONG\r\n").await;
    drop(c);
    let logs = s.log_lines();
    assert!(
        logs.iter().any(|l| l.contains("Authorization Violation")),
        "the failures were logged"
    );
    assert!(
        logs.iter().any(|l| l.contains("CONNECT")),
        "-V traced the CONNECTs"
    );
    assert_clean(
        &logs,
        &[
            PLAIN_PASS,
            BCRYPT_PASS,
            WRONG_PASS,
            TOKEN,
            NUMERIC_PASS,
            &seed,
            &sig,
        ],
    );
}

#[tokio::test]
async fn token_auth_leaves_no_token_in_the_logs() {
    let s = spawn_binary_with(Path::new(BIN), &["--auth", TOKEN, "-DV"]).unwrap();
    connect(&s, &format!(r#"{{"auth_token":"{TOKEN}"}}"#)).await;
    connect(&s, &format!(r#"{{"auth_token":"{WRONG_PASS}"}}"#)).await;
    connect(&s, &format!(r#"{{"auth_token":{NUMERIC_PASS}}}"#)).await;
    assert_clean(&s.log_lines(), &[TOKEN, WRONG_PASS, NUMERIC_PASS]);
}

#[test]
fn config_errors_do_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write(
        dir.path(),
        "bad.conf",
        &format!("authorization {{ user: a, password: {NUMERIC_PASS} }}\n"),
    );
    let out = Command::new(BIN)
        .args(["-t", "-c", &conf])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("password"), "{text}");
    assert!(!text.contains(NUMERIC_PASS), "{text}");
}

/// base64url without padding, as clients send nkey signatures.
fn data_encoding(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
