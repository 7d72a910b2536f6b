//! Protocol tracing (`-V`): inbound ops rendered the way nats-server traces them, with
//! secrets in CONNECT redacted.

use petrel_wire::ClientOp;

/// The op as a trace line (`PUB foo 5`, `CONNECT {...}` with secrets hidden).
pub(super) fn op_line(op: &ClientOp) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let line = match op {
        ClientOp::Connect(json) => format!("CONNECT {}", redact(&text(json))),
        ClientOp::Pub {
            subject,
            reply,
            payload,
        } => format!(
            "PUB {} {}{}",
            text(subject),
            reply
                .as_deref()
                .map(|r| format!("{} ", text(r)))
                .unwrap_or_default(),
            payload.len()
        ),
        ClientOp::HPub {
            subject,
            reply,
            data,
            hdr_len,
        } => format!(
            "HPUB {} {}{} {}",
            text(subject),
            reply
                .as_deref()
                .map(|r| format!("{} ", text(r)))
                .unwrap_or_default(),
            hdr_len,
            data.len()
        ),
        ClientOp::Sub {
            subject,
            queue,
            sid,
        } => format!(
            "SUB {} {}{}",
            text(subject),
            queue
                .as_deref()
                .map(|q| format!("{} ", text(q)))
                .unwrap_or_default(),
            text(sid)
        ),
        ClientOp::Unsub { sid, max } => {
            format!(
                "UNSUB {}{}",
                text(sid),
                max.map(|m| format!(" {m}")).unwrap_or_default()
            )
        }
        ClientOp::Ping => "PING".into(),
        ClientOp::Pong => "PONG".into(),
        ClientOp::Ok => "+OK".into(),
        ClientOp::Err => "-ERR".into(),
        ClientOp::Info => "INFO".into(),
    };
    line
}

/// Hide secrets in a CONNECT JSON before it is logged.
fn redact(json: &str) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return "[unparsable]".into();
    };
    for key in ["pass", "auth_token", "sig", "jwt"] {
        if let Some(v) = map.get_mut(key) {
            *v = serde_json::Value::String("[REDACTED]".into());
        }
    }
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn connect_trace_hides_secrets() {
        let out = super::redact(r#"{"user":"etl","pass":"hunter2","auth_token":"t0k"}"#);
        assert!(!out.contains("hunter2") && !out.contains("t0k"));
        assert!(out.contains("etl"));
    }
}
