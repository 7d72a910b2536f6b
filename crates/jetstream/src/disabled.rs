//! `$JS.API.>` in an account without JetStream, when the server runs JetStream for other
//! accounts: as nats-server, every request gets `503 10039 JetStream not enabled for
//! account` under its API's response type; pull requests and direct gets (answered by
//! streams, of which there are none) reach nobody.

use crate::api::respond;
use crate::errors::ApiError;
use crate::port::{Flow, Handler, Incoming, ServerMsg};

/// The handler for such an account's `$JS.API.>` subscription (clients only).
#[derive(Debug, Default)]
pub struct NotEnabled;

impl Handler for NotEnabled {
    fn handle(&self, msg: Incoming<'_>) -> Flow {
        let Some(kind) = response_kind(msg.subject) else {
            return Flow::NoResponders;
        };
        let Some(reply) = msg.reply.filter(|r| !r.is_empty()) else {
            return Flow::Ok;
        };
        let body = respond::<()>(&kind, None, Err(ApiError::not_enabled_for_account()));
        Flow::Answer(ServerMsg {
            subject: reply.to_string(),
            headers: None,
            payload: body.payload,
        })
    }
}

/// The response type of the API at `subject` (`stream_create`, …); `None` for pull
/// requests, direct gets and subjects that are no API.
fn response_kind(subject: &str) -> Option<String> {
    let rest = subject.strip_prefix("$JS.API.")?;
    let t: Vec<&str> = rest.split('.').collect();
    let lower = |s: &str| s.to_ascii_lowercase();
    Some(match t.as_slice() {
        ["INFO"] => "account_info".into(),
        ["STREAM", "MSG", op @ ("GET" | "DELETE"), _] => format!("stream_msg_{}", lower(op)),
        ["STREAM", op, ..] => format!("stream_{}", lower(op)),
        ["CONSUMER", "MSG", ..] => return None,
        ["CONSUMER", "CREATE" | "DURABLE", ..] => "consumer_create".into(),
        ["CONSUMER", op, ..] => format!("consumer_{}", lower(op)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types_follow_the_api() {
        let kind = |s: &str| response_kind(s);
        assert_eq!(kind("$JS.API.INFO").as_deref(), Some("account_info"));
        assert_eq!(
            kind("$JS.API.STREAM.CREATE.S").as_deref(),
            Some("stream_create")
        );
        assert_eq!(
            kind("$JS.API.STREAM.NAMES").as_deref(),
            Some("stream_names")
        );
        assert_eq!(
            kind("$JS.API.STREAM.MSG.GET.S").as_deref(),
            Some("stream_msg_get")
        );
        assert_eq!(
            kind("$JS.API.CONSUMER.DURABLE.CREATE.S.d").as_deref(),
            Some("consumer_create")
        );
        assert_eq!(
            kind("$JS.API.CONSUMER.INFO.S.c").as_deref(),
            Some("consumer_info")
        );
        assert_eq!(kind("$JS.API.CONSUMER.MSG.NEXT.S.c"), None);
        assert_eq!(kind("$JS.API.DIRECT.GET.S"), None);
    }
}
