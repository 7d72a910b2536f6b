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

/// `block` without the header lines whose name `drop` matches (a block with none left is
/// `NATS/1.0` and the blank line).
pub(crate) fn without(block: &Bytes, drop: impl Fn(&str) -> bool) -> Bytes {
    let text = String::from_utf8_lossy(block);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("NATS/1.0");
    let mut out = format!("{first}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !drop(name) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("\r\n");
    Bytes::from(out)
}

/// `block` with header `name` set to `value`: in its place when it had one (as Go's
/// `setHeader`), else added at the end.
pub(crate) fn set(block: Option<&Bytes>, name: &str, value: &str) -> Bytes {
    let line = format!("{name}: {value}\r\n");
    let Some(block) = block else {
        return crate::hdr::extend(None, &line);
    };
    let text = String::from_utf8_lossy(block);
    let mut out = String::with_capacity(text.len() + line.len());
    let mut replaced = false;
    for l in text.split_inclusive("\r\n") {
        let is_it = l
            .split(':')
            .next()
            .is_some_and(|k| k.trim().eq_ignore_ascii_case(name));
        if is_it && !replaced {
            out.push_str(&line);
            replaced = true;
        } else if !is_it {
            out.push_str(l);
        }
    }
    if replaced {
        Bytes::from(out)
    } else {
        crate::hdr::extend(Some(block), &line)
    }
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
        let two = Bytes::from_static(b"NATS/1.0\r\nX: y\r\nNats-Expected-Stream: S\r\n\r\n");
        let kept = without(&two, |n| n.starts_with("Nats-Expected-"));
        assert_eq!(&kept[..], b"NATS/1.0\r\nX: y\r\n\r\n");
        let torn = Bytes::from_static(b"NATS/1.0\r\nX");
        assert_eq!(
            &extend(Some(&torn), "A: 1\r\n")[..],
            b"NATS/1.0\r\nA: 1\r\n\r\n"
        );
    }

    #[test]
    fn a_set_header_keeps_the_others() {
        let b = Bytes::from_static(b"NATS/1.0\r\nNats-Incr: 5\r\nX: y\r\n\r\n");
        assert_eq!(
            &set(Some(&b), "Nats-Incr", "2")[..],
            b"NATS/1.0\r\nNats-Incr: 2\r\nX: y\r\n\r\n"
        );
        assert_eq!(
            &set(Some(&b), "Nats-Counter-Sources", "{}")[..],
            b"NATS/1.0\r\nNats-Incr: 5\r\nX: y\r\nNats-Counter-Sources: {}\r\n\r\n"
        );
        assert_eq!(
            &set(None, "Nats-Counter-Sources", "{}")[..],
            b"NATS/1.0\r\nNats-Counter-Sources: {}\r\n\r\n"
        );
    }
}
