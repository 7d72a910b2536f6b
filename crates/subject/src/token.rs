//! Subject validity (nats-server's rules) and a naive wildcard matcher used as the
//! reference model in tests.

/// Bytes that may not appear in a subject token.
fn is_forbidden(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c')
}

/// A valid subscription subject: non-empty tokens, no whitespace, `>` only as the last
/// token. Wildcards are only wildcards when they are a whole token (`foo.b*` is literal).
pub fn is_valid_subject(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut tokens = subject.split(|&b| b == b'.').peekable();
    while let Some(tok) = tokens.next() {
        if tok.is_empty() || tok.iter().any(|&b| is_forbidden(b)) {
            return false;
        }
        if tok == b">" && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// A valid subject with no wildcard tokens (what a publish needs).
pub fn is_valid_literal_subject(subject: &[u8]) -> bool {
    is_valid_subject(subject)
        && subject
            .split(|&b| b == b'.')
            .all(|t| t != b"*" && t != b">")
}

/// Whether `pattern` (which may hold wildcards) matches the literal `subject`.
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|&b| b == b'.');
    let mut s = subject.split(|&b| b == b'.');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(b">"), Some(_)) => return true,
            (Some(pt), Some(st)) => {
                if st.is_empty() || (pt != b"*" && pt != st) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Whether two subjects (either may hold wildcards) can match a common literal subject.
/// Used to refuse streams with overlapping subjects.
pub fn subjects_collide(a: &[u8], b: &[u8]) -> bool {
    let mut x = a.split(|&c| c == b'.');
    let mut y = b.split(|&c| c == b'.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(b">"), Some(_)) | (Some(_), Some(b">")) => return true,
            (Some(s), Some(t)) => {
                if s != b"*" && t != b"*" && s != t {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Whether every subject `sub` matches is also matched by `of` (both may hold
/// wildcards): `foo.bar` and `foo.*` are subsets of `foo.*`, `foo.>` is not. nats-server's
/// `subjectIsSubsetMatch`; permissions and reserved-space checks use it.
pub fn is_subset(sub: &[u8], of: &[u8]) -> bool {
    let mut x = sub.split(|&c| c == b'.');
    let mut y = of.split(|&c| c == b'.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            // `>` in `of` covers one or more remaining tokens of anything.
            (Some(_), Some(b">")) => return true,
            // Only `>` covers `>`, only `*` or `>` cover `*`.
            (Some(b">"), Some(_)) => return false,
            (Some(b"*"), Some(t)) if t != b"*" => return false,
            (Some(s), Some(t)) => {
                if t != b"*" && s != t {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets() {
        for (sub, of) in [
            ("foo.bar", "foo.*"),
            ("foo.*", "foo.*"),
            ("foo.*", "foo.>"),
            ("foo.>", "foo.>"),
            ("foo.a.>", "foo.>"),
            ("foo.*.baz", "foo.*.*"),
            ("a", ">"),
            ("$JS.EVENT.ADVISORY.>", "$JS.EVENT.>"),
        ] {
            assert!(is_subset(sub.as_bytes(), of.as_bytes()), "{sub} in {of}");
        }
        for (sub, of) in [
            ("foo.>", "foo.*"),
            (">", "foo.*"),
            ("*.*", "foo.*"),
            ("foo.bar.baz", "foo.*"),
            ("foo.*", "foo.bar"),
            ("foo", "foo.>"),
            ("foo.*.*", "foo.*.baz"),
            (">", "foo.>"),
            ("$JS.>", "$JS.EVENT.>"),
        ] {
            assert!(
                !is_subset(sub.as_bytes(), of.as_bytes()),
                "{sub} not in {of}"
            );
        }
    }

    #[test]
    fn validity() {
        for ok in [
            "foo", "foo.bar", "foo.*", "foo.>", ">", "*", "foo.b*", "ü.x", "a.*.c",
        ] {
            assert!(is_valid_subject(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "foo..bar",
            ".foo",
            "foo.",
            ">.x",
            "foo.>.bar",
            "a b",
            "a\tb",
            "a\r",
        ] {
            assert!(!is_valid_subject(bad.as_bytes()), "{bad}");
        }
        assert!(is_valid_literal_subject(b"foo.b*"));
        assert!(!is_valid_literal_subject(b"foo.*"));
        assert!(!is_valid_literal_subject(b">"));
    }

    #[test]
    fn matching() {
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b"*.*", b"a.b"));
        assert!(matches(
            b"medisync.etl.*.completed",
            b"medisync.etl.lab.completed"
        ));
        assert!(!matches(b"foo", b"foo.bar"));
    }

    #[test]
    fn collisions() {
        assert!(subjects_collide(b"orders.*", b"orders.new"));
        assert!(subjects_collide(b"orders.>", b"*.new.x"));
        assert!(!subjects_collide(b"orders.*", b"orders.new.x"));
        assert!(!subjects_collide(b"a.b", b"a.c"));
    }
}
