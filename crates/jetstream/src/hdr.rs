//! Header blocks the server adds to: a stored message's own `NATS/1.0` block (or a new one)
//! with more header lines before the blank line that ends it — headers-only deliveries,
//! republished copies, dead letters.

use bytes::Bytes;

/// `stored`'s header block (a new `NATS/1.0` one when it has none or it is malformed) with
/// `lines` (each ending in CRLF) added before the blank line that ends it.
pub(crate) fn extend(stored: Option<&Bytes>, lines: &str) -> Bytes {
    let mut h = match stored {
        Some(h) if h.len() >= 4 && h.ends_with(b"\r\n\r\n") => h[..h.len() - 2].to_vec(),
        _ => b"NATS/1.0\r\n".to_vec(),
    };
    h.reserve(lines.len() + 2);
    h.extend_from_slice(lines.as_bytes());
    h.extend_from_slice(b"\r\n");
    Bytes::from(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extends_or_starts_a_block() {
        assert_eq!(&extend(None, "A: 1\r\n")[..], b"NATS/1.0\r\nA: 1\r\n\r\n");
        let own = Bytes::from_static(b"NATS/1.0\r\nX: y\r\n\r\n");
        assert_eq!(
            &extend(Some(&own), "A: 1\r\n")[..],
            b"NATS/1.0\r\nX: y\r\nA: 1\r\n\r\n"
        );
        let torn = Bytes::from_static(b"NATS/1.0\r\nX");
        assert_eq!(
            &extend(Some(&torn), "A: 1\r\n")[..],
            b"NATS/1.0\r\nA: 1\r\n\r\n"
        );
    }
}
