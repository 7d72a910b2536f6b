//! Subject mappings applied to what is published, before routing. Today: the JetStream
//! domain (`jetstream { domain: hub }`), which makes this JetStream reachable at
//! `$JS.hub.API.…` as well as `$JS.API.…` — nats-server's mapping table, where the KV and
//! object-store spaces keep their own prefixes (`$JS.hub.API.$KV.…` → `$KV.…`).

/// The API areas the domain prefix maps onto `$JS.API` (nats-server's table).
const API_AREAS: [&[u8]; 6] = [
    b"STREAM.",
    b"CONSUMER.",
    b"DIRECT.",
    b"META.",
    b"SERVER.",
    b"ACCOUNT.",
];

/// The `$JS.<domain>.API.` prefix of a domain.
pub(crate) fn domain_prefix(domain: &str) -> Vec<u8> {
    format!("$JS.{domain}.API.").into_bytes()
}

/// What `subject` maps to under the domain `prefix` (from [`domain_prefix`]), if it is a
/// mapped domain API subject.
pub(crate) fn map_domain(prefix: &[u8], subject: &[u8]) -> Option<Vec<u8>> {
    let rest = subject.strip_prefix(prefix)?;
    if rest.starts_with(b"$KV.") || rest.starts_with(b"$OBJ.") {
        return Some(rest.to_vec());
    }
    if rest == b"INFO" || API_AREAS.iter().any(|a| rest.starts_with(a)) {
        let mut out = b"$JS.API.".to_vec();
        out.extend_from_slice(rest);
        return Some(out);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(subject: &str) -> Option<String> {
        map_domain(&domain_prefix("hub"), subject.as_bytes())
            .map(|m| String::from_utf8(m).expect("utf-8"))
    }

    #[test]
    fn maps_as_nats_server_does() {
        assert_eq!(mapped("$JS.hub.API.INFO").as_deref(), Some("$JS.API.INFO"));
        assert_eq!(
            mapped("$JS.hub.API.STREAM.INFO.O").as_deref(),
            Some("$JS.API.STREAM.INFO.O")
        );
        assert_eq!(
            mapped("$JS.hub.API.CONSUMER.MSG.NEXT.O.c").as_deref(),
            Some("$JS.API.CONSUMER.MSG.NEXT.O.c")
        );
        assert_eq!(mapped("$JS.hub.API.$KV.b.k").as_deref(), Some("$KV.b.k"));
        assert_eq!(mapped("$JS.hub.API.$OBJ.b.c").as_deref(), Some("$OBJ.b.c"));
        // Not in the table: left alone (no responders), as are other domains.
        for s in [
            "$JS.hub.API.FOO",
            "$JS.hub.API.INFOX",
            "$JS.other.API.INFO",
            "$JS.API.INFO",
        ] {
            assert_eq!(mapped(s), None, "{s}");
        }
    }
}
