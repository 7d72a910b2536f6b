//! The leafnode protocol's handshake documents (nats-server's leafnode `INFO` and
//! `CONNECT`) and their encoders. Leafnode ops share the route parser and encoders
//! ([`crate::route::parse_leaf`]; `LS+`/`LS-`/`LMSG` are the route encoders with an empty
//! account): a leaf connection is bound to one account on each side, so none is on the
//! wire.

use bytes::BytesMut;

/// A leafnode `INFO` (the accepting side's, or an update of it). Unknown fields are
/// ignored, absent ones take their defaults, so every nats-server version parses.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LeafInfo {
    /// Server id.
    pub server_id: String,
    /// Server name.
    pub server_name: String,
    /// nats-server version level.
    pub version: String,
    /// Protocol level (1: no message tracing).
    pub proto: i32,
    /// Leafnode listen host.
    pub host: String,
    /// Leafnode listen port.
    pub port: u16,
    /// Headers supported.
    pub headers: bool,
    /// Always true from a hub.
    pub auth_required: bool,
    /// The spoke must start TLS after this INFO.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    /// Client certificates are verified.
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    /// Maximum payload.
    pub max_payload: i64,
    /// `host:port` of the listener.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// The connection's id on the hub (a spoke hangs up on 0: a client port).
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    /// Nonce credentials sign.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    /// The hub's cluster name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Compression mode (Petrel never sends it: no compression).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    /// The hub answers CONNECT with an INFO carrying `connect_info`.
    #[serde(skip_serializing_if = "is_false")]
    pub info_on_connect: bool,
    /// This is that answer.
    #[serde(skip_serializing_if = "is_false")]
    pub connect_info: bool,
    /// The hub account the connection is bound to.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_account: String,
    /// The leaf user's subscribe permissions (`{allow, deny}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub import: Option<serde_json::Value>,
    /// The leaf user's publish permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<serde_json::Value>,
    /// Leafnode URLs of the hub and its route peers (`host:port`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leafnode_urls: Vec<String>,
    /// WebSocket URLs (what `ws://` remotes learn).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Lame-duck mode.
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
}

/// A leafnode `CONNECT` (sent by the soliciting side only).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LeafConnect {
    /// Sender's version (checked against a hub's `min_version`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Sender's server id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server_id: String,
    /// Sender's server name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Sender's cluster name (its server name without a cluster): the origin of its
    /// interest on the hub.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// Headers supported.
    pub headers: bool,
    /// The soliciting side acts as the hub (`hub: true` remote).
    #[serde(skip_serializing_if = "is_false")]
    pub is_hub: bool,
    /// Subjects the sender will not receive (its `deny_imports`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny_pub: Vec<String>,
    /// Negotiated compression (`not supported`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compress_mode: String,
    /// The sender's local account.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub remote_account: String,
    /// User.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    /// Token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User nkey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// User JWT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// Signature of the hub's nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// JetStream domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// Set by a gateway that dialled the leafnode port by mistake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Set by a client that dialled the leafnode port by mistake.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Never allowed from a leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Never allowed from a leaf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_account: Option<serde_json::Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Appends `INFO <json>\r\n`.
pub fn info(buf: &mut BytesMut, info: &LeafInfo) {
    crate::route::json_op(buf, b"INFO ", info);
}

/// Appends `CONNECT <json>\r\n`.
pub fn connect(buf: &mut BytesMut, c: &LeafConnect) {
    crate::route::json_op(buf, b"CONNECT ", c);
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes};

    use crate::route::{msg_line, parse_leaf, sub, unsub, RouteOp, RouteParseError};

    use super::*;

    fn all(input: &[u8]) -> Vec<RouteOp> {
        let mut buf = BytesMut::from(input);
        let mut ops = Vec::new();
        while let Some(op) = parse_leaf(&mut buf, 4096, 1 << 20).unwrap() {
            ops.push(op);
        }
        assert!(buf.is_empty(), "left: {buf:?}");
        ops
    }

    #[test]
    fn parses_what_nats_server_sends_on_leafnodes() {
        // Bytes captured from nats-server 2.15.1 and 2.9.10 (docs/protocol/leafnodes.md).
        let ops = all(b"INFO {\"client_id\":6} \r\nLS+ $LDS.abc\r\nLS+ bar q1 2\r\nLS- bar q1\r\nLS- foo\r\nLMSG baz rep 5\r\nhello\r\nLMSG work | wq 2\r\nhi\r\nHMSG baz rep2 12 14\r\nNATS/1.0\r\n\r\nhi\r\nLMSG a + r q1 q2 0\r\n\r\n");
        let RouteOp::Sub(s) = &ops[1] else { panic!() };
        assert_eq!((s.account.len(), &s.subject[..]), (0, &b"$LDS.abc"[..]));
        let RouteOp::Sub(s) = &ops[2] else { panic!() };
        assert_eq!(s.queue, Some((Bytes::from_static(b"q1"), 2)));
        let RouteOp::Unsub(s) = &ops[3] else { panic!() };
        assert_eq!(s.queue.as_ref().map(|q| &q.0[..]), Some(&b"q1"[..]));
        let RouteOp::Msg(m) = &ops[5] else { panic!() };
        assert_eq!(
            (&m.subject[..], m.reply.as_deref()),
            (&b"baz"[..], Some(&b"rep"[..]))
        );
        let RouteOp::Msg(m) = &ops[6] else { panic!() };
        assert_eq!(
            (m.reply.is_none(), &m.queues[..]),
            (true, &[Bytes::from_static(b"wq")][..])
        );
        let RouteOp::Msg(m) = &ops[7] else { panic!() };
        assert_eq!((m.hdr_len, m.data.len()), (Some(12), 14));
        let RouteOp::Msg(m) = &ops[8] else { panic!() };
        assert_eq!(m.queues.len(), 2);
    }

    #[test]
    fn leaf_encoders_round_trip() {
        let mut b = BytesMut::new();
        sub(&mut b, b"", b"a.>", Some((b"q", 2)));
        sub(&mut b, b"", b"b", None);
        unsub(&mut b, b"", b"a.>", Some(b"q"));
        msg_line(&mut b, b"", b"s", Some(b"r"), &[b"q1"], None, 2);
        b.put_slice(b"hi\r\n");
        msg_line(&mut b, b"", b"s", None, &[], Some(12), 12);
        b.put_slice(b"NATS/1.0\r\n\r\n\r\n");
        assert!(b.starts_with(b"LS+ a.> q 2\r\nLS+ b\r\nLS- a.> q\r\nLMSG s + r q1 2\r\n"));
        assert_eq!(all(&b).len(), 5);
    }

    #[test]
    fn bad_leaf_ops_are_refused() {
        for bad in [
            &b"LS+ a q\r\n"[..],
            b"LS+\r\n",
            b"LS+ a q x\r\n",
            b"LMSG 5\r\n",
            b"LMSG a b c 1\r\nx\r\n",
            b"RS+ $G a\r\n",
            b"RMSG $G a 1\r\nx\r\n",
            b"HMSG a 9 3\r\n",
        ] {
            let mut b = BytesMut::from(bad);
            assert!(parse_leaf(&mut b, 4096, 100).is_err(), "{bad:?}");
        }
        let mut b = BytesMut::from(&b"LMSG a 500\r\n"[..]);
        assert_eq!(parse_leaf(&mut b, 4096, 100), Err(RouteParseError::Payload));
    }

    #[test]
    fn handshake_documents() {
        let i: LeafInfo = serde_json::from_str(
            r#"{"server_id":"N","client_id":6,"nonce":"x","info_on_connect":true,"leafnode_urls":["h:1"],"compression":"s2_auto","api_lvl":5}"#,
        )
        .unwrap();
        assert!(i.info_on_connect && i.client_id == 6);
        let mut b = BytesMut::new();
        connect(
            &mut b,
            &LeafConnect {
                name: "p".into(),
                deny_pub: vec!["x.>".into()],
                ..LeafConnect::default()
            },
        );
        assert_eq!(
            &b[..],
            b"CONNECT {\"name\":\"p\",\"headers\":false,\"deny_pub\":[\"x.>\"]}\r\n"
        );
    }

    fn run(input: &[u8], cut: usize) -> (Vec<RouteOp>, Option<RouteParseError>) {
        crate::route::tests::split_run(parse_leaf, input, cut)
    }

    proptest::proptest! {
        /// However the bytes are split, the same leaf ops and error come out.
        #[test]
        fn any_split_parses_the_same(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "LS+ a.b\r\n", "LS+ q.* grp 3\r\n", "LS- a.b\r\n", "LS- q.* grp\r\n", "PING\r\n",
                "LMSG s r 2\r\nhi\r\n", "HMSG s | q 12 12\r\nNATS/1.0\r\n\r\n\r\n",
                "LMSG s + r q 0\r\n\r\n", "INFO {}\r\n", "X\r\n", "LMSG s 99\r\n", "LS+\r\n",
            ]), 0..8),
            cut in 0usize..400,
        ) {
            let input: Vec<u8> = parts.concat().into_bytes();
            let cut = cut.min(input.len());
            proptest::prop_assert_eq!(run(&input, cut), run(&input, input.len()));
        }
    }
}
