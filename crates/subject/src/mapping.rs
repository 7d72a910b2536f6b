//! Strict subject mappings, as nats-server maps a stream import's subject with `to`:
//! the source pattern's wildcards are captured in order; in the destination each `*`
//! takes the next capture (or `$N` / `{{wildcard(N)}}` the Nth), and `>` takes the tail.
//! Every wildcard of the source must be used, and a `>` only maps to a `>`.

/// A compiled mapping from one subject pattern to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictMapping {
    source: Vec<String>,
    dest: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// The Nth (1-based) `*` capture of the source.
    Capture(usize),
    /// The tail matched by the source's `>`.
    Tail,
}

impl StrictMapping {
    /// Compiles `from` → `to`; `None` when `to` does not use every wildcard of `from`
    /// exactly as nats-server requires (or either is not a valid subject).
    pub fn new(from: &str, to: &str) -> Option<StrictMapping> {
        if !crate::is_valid_subject(from.as_bytes()) || to.is_empty() {
            return None;
        }
        let source: Vec<String> = from.split('.').map(str::to_string).collect();
        let stars = source.iter().filter(|t| *t == "*").count();
        let has_tail = source.last().is_some_and(|t| t == ">");
        let mut used = vec![false; stars];
        let mut next_star = 0;
        let mut dest = Vec::new();
        let mut tail_used = false;
        for tok in to.split('.') {
            if tok.is_empty() {
                return None;
            }
            let part = match tok {
                "*" => {
                    next_star += 1;
                    Part::Capture(next_star)
                }
                ">" => {
                    tail_used = true;
                    Part::Tail
                }
                t => match capture_ref(t) {
                    Some(n) => Part::Capture(n),
                    None => Part::Literal(t.to_string()),
                },
            };
            if let Part::Capture(n) = part {
                *used.get_mut(n.checked_sub(1)?)? = true;
            }
            dest.push(part);
        }
        if used.iter().any(|u| !u) || tail_used != has_tail {
            return None;
        }
        if tail_used && !matches!(dest.last(), Some(Part::Tail)) {
            return None;
        }
        Some(StrictMapping { source, dest })
    }

    /// `subject` mapped, if the source pattern matches it.
    pub fn apply(&self, subject: &str) -> Option<String> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let mut captures = Vec::new();
        let mut tail = None;
        for (i, pat) in self.source.iter().enumerate() {
            match pat.as_str() {
                ">" => {
                    if i >= tokens.len() {
                        return None;
                    }
                    tail = Some(tokens[i..].join("."));
                    break;
                }
                "*" => captures.push(*tokens.get(i)?),
                lit => {
                    if tokens.get(i) != Some(&lit) {
                        return None;
                    }
                }
            }
        }
        if tail.is_none() && tokens.len() != self.source.len() {
            return None;
        }
        let out: Vec<String> = self
            .dest
            .iter()
            .map(|p| match p {
                Part::Literal(l) => Some(l.clone()),
                Part::Capture(n) => captures.get(n - 1).map(|s| s.to_string()),
                Part::Tail => tail.clone(),
            })
            .collect::<Option<_>>()?;
        Some(out.join("."))
    }
}

/// `$N` or `{{wildcard(N)}}` (also `{{ wildcard(N) }}`).
fn capture_ref(token: &str) -> Option<usize> {
    if let Some(n) = token.strip_prefix('$') {
        return n.parse().ok().filter(|n| *n > 0);
    }
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let arg = inner.strip_prefix("wildcard(")?.strip_suffix(')')?;
    arg.trim().parse().ok().filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(from: &str, to: &str, subject: &str) -> Option<String> {
        StrictMapping::new(from, to)?.apply(subject)
    }

    #[test]
    fn maps_as_nats_server_stream_imports() {
        assert_eq!(
            map("metrics.*", "m.$1", "metrics.cpu").as_deref(),
            Some("m.cpu")
        );
        assert_eq!(
            map("metrics.*", "m.*", "metrics.cpu").as_deref(),
            Some("m.cpu")
        );
        assert_eq!(
            map("logs.>", "l.>", "logs.app.err").as_deref(),
            Some("l.app.err")
        );
        assert_eq!(
            map("metrics.*.*", "m.*.x.*", "metrics.cpu.host1").as_deref(),
            Some("m.cpu.x.host1")
        );
        assert_eq!(map("a.*.*", "b.$2.$1", "a.x.y").as_deref(), Some("b.y.x"));
        assert_eq!(
            map("a.*", "b.{{wildcard(1)}}", "a.x").as_deref(),
            Some("b.x")
        );
        assert_eq!(map("logs.>", "l.>", "other.x"), None);
    }

    #[test]
    fn every_wildcard_must_be_used() {
        assert!(StrictMapping::new("events.>", "ev.*").is_none());
        assert!(StrictMapping::new("q.>", "qq").is_none());
        assert!(StrictMapping::new("a.*", "b").is_none());
        assert!(StrictMapping::new("a.*", "b.$2").is_none());
        assert!(StrictMapping::new("a.b", "c.>").is_none());
        assert!(StrictMapping::new("a.b", "c.d").is_some());
    }
}
