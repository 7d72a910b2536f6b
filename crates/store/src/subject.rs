//! Subject filters with NATS wildcards (`*` one token, `>` one or more trailing tokens).
//!
//! The store depends on no other Petrel crate, so it carries this tiny matcher of its own.

/// True when `filter` matches every subject (empty or `>`).
pub(crate) fn is_match_all(filter: &str) -> bool {
    filter.is_empty() || filter == ">"
}

/// True when `filter` has no wildcard token.
pub(crate) fn is_literal(filter: &str) -> bool {
    !filter.is_empty() && !filter.split('.').any(|t| t == "*" || t == ">")
}

/// Does `subject` (a literal subject) match `filter` (which may hold `*` and `>`)?
/// An empty filter matches everything.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    if is_match_all(filter) {
        return true;
    }
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(subject_matches("", "a.b"));
        assert!(subject_matches(">", "a"));
        assert!(subject_matches("a.*", "a.b"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(subject_matches("*.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(is_literal("a.b"));
        assert!(!is_literal("a.*"));
        assert!(!is_literal(""));
    }
}
