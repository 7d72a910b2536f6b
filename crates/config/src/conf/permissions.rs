//! `permissions { publish, subscribe, allow_responses }` blocks, in every form nats-server
//! accepts: a single subject, an array (= allow list), or `{ allow, deny }`.

use super::convert::{boolean, duration, string, type_error, unsigned};
use super::error::ConfigError;
use super::value::{Value, ValueKind};
use crate::{Permissions, ResponsePermission, SubjectPermission};

/// Parse a permissions block named `key`.
pub(super) fn permissions(v: &Value, key: &str) -> Result<Permissions, ConfigError> {
    let Some(map) = v.as_map() else {
        return Err(type_error(v, key, "a permissions block"));
    };
    let mut p = Permissions::default();
    for e in map.entries() {
        let name = format!("{key}.{}", e.key);
        match e.key.to_ascii_lowercase().as_str() {
            "publish" | "pub" | "import" => {
                p.publish = Some(subject_permission(&e.value, &name, false)?)
            }
            "subscribe" | "sub" | "export" => {
                p.subscribe = Some(subject_permission(&e.value, &name, true)?)
            }
            "allow_responses" | "allow_response" => p.allow_responses = responses(&e.value, &name)?,
            _ if e.used_as_variable => {}
            other => {
                return Err(ConfigError::invalid(
                    &e.key_pos,
                    &name,
                    format!(
                    "unknown permission '{other}' (expected publish, subscribe or allow_responses)"
                ),
                ))
            }
        }
    }
    Ok(p)
}

/// `"subj"`, `["a", "b"]` (allow list) or `{ allow: ..., deny: ... }`.
fn subject_permission(
    v: &Value,
    key: &str,
    queue_ok: bool,
) -> Result<SubjectPermission, ConfigError> {
    match &v.kind {
        ValueKind::Map(map) => {
            let mut sp = SubjectPermission::default();
            for e in map.entries() {
                let name = format!("{key}.{}", e.key);
                match e.key.to_ascii_lowercase().as_str() {
                    "allow" => sp.allow = subjects(&e.value, &name, queue_ok)?,
                    "deny" => sp.deny = subjects(&e.value, &name, queue_ok)?,
                    _ if e.used_as_variable => {}
                    other => {
                        return Err(ConfigError::invalid(
                            &e.key_pos,
                            &name,
                            format!("unknown key '{other}' (expected allow or deny)"),
                        ))
                    }
                }
            }
            Ok(sp)
        }
        _ => Ok(SubjectPermission {
            allow: subjects(v, key, queue_ok)?,
            deny: Vec::new(),
        }),
    }
}

/// A subject or an array of subjects, each checked.
fn subjects(v: &Value, key: &str, queue_ok: bool) -> Result<Vec<String>, ConfigError> {
    let items: Vec<&Value> = match &v.kind {
        ValueKind::Array(items) => items.iter().collect(),
        _ => vec![v],
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let s = string(item, key)?.trim();
        let mut parts = s.split_whitespace();
        let subject = parts.next().unwrap_or("");
        let queue = parts.next();
        let valid =
            valid_subject(subject) && parts.next().is_none() && (queue_ok || queue.is_none());
        if !valid {
            return Err(ConfigError::invalid(
                &item.pos,
                key,
                format!("invalid subject \"{}\"", s.escape_default()),
            ));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

/// Subject rules of nats-server (kept here because the config crate depends on nothing).
fn valid_subject(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let tokens: Vec<&str> = s.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty() && !t.contains(char::is_whitespace) && (*t != ">" || i + 1 == tokens.len())
    })
}

/// `allow_responses: true | false | { max, expires }`.
fn responses(v: &Value, key: &str) -> Result<Option<ResponsePermission>, ConfigError> {
    if let ValueKind::Map(map) = &v.kind {
        let mut rp = ResponsePermission::default();
        for e in map.entries() {
            let name = format!("{key}.{}", e.key);
            match e.key.to_ascii_lowercase().as_str() {
                "max" | "max_msgs" | "max_messages" | "max_responses" => {
                    rp.max = unsigned(&e.value, &name)?
                }
                "expires" | "expiration" | "ttl" => rp.expires = duration(&e.value, &name)?,
                _ if e.used_as_variable => {}
                other => {
                    return Err(ConfigError::invalid(
                        &e.key_pos,
                        &name,
                        format!("unknown key '{other}' (expected max or expires)"),
                    ))
                }
            }
        }
        return Ok(Some(rp));
    }
    Ok(boolean(v, key)?.then(ResponsePermission::default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::parse_str;
    use std::time::Duration;

    fn perms(text: &str) -> Result<Permissions, ConfigError> {
        let map = parse_str(&format!("p {text}"), "t.conf")?;
        let v = map.get("p").expect("p");
        permissions(v, "p")
    }

    #[test]
    fn every_form() {
        let p = perms(
            r#"{ publish: "chat.workflow.>", subscribe: ["a.*", "b q1"], allow_responses: true }"#,
        )
        .unwrap();
        assert_eq!(p.publish.unwrap().allow, vec!["chat.workflow.>"]);
        assert_eq!(p.subscribe.unwrap().allow, vec!["a.*", "b q1"]);
        assert_eq!(p.allow_responses, Some(ResponsePermission::default()));
        let p = perms(r#"{ publish: { allow: ["x.>"], deny: "x.secret" }, allow_responses: { max: 3, expires: "1m" } }"#).unwrap();
        let pubp = p.publish.unwrap();
        assert_eq!(
            (pubp.allow, pubp.deny),
            (vec!["x.>".to_string()], vec!["x.secret".to_string()])
        );
        assert_eq!(
            p.allow_responses,
            Some(ResponsePermission {
                max: 3,
                expires: Duration::from_secs(60)
            })
        );
        assert_eq!(
            perms("{ allow_responses: false }").unwrap().allow_responses,
            None
        );
    }

    #[test]
    fn bad_permissions_name_the_position() {
        let e = perms(r#"{ publish: "a..b" }"#).unwrap_err().to_string();
        assert!(e.starts_with("t.conf:1:14"), "{e}");
        assert!(e.contains("invalid subject"), "{e}");
        assert!(
            perms(r#"{ publish: "a q" }"#).is_err(),
            "queue only on subscribe"
        );
        assert!(perms(r#"{ publsh: "a" }"#).is_err());
        assert!(perms(r#"{ publish: { alow: "a" } }"#).is_err());
        assert!(perms("5").is_err());
    }
}
