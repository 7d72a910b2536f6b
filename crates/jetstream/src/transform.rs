//! Subject transforms (StreamConfig `subject_transform`): a source filter and a destination
//! template. Supported destination tokens: literals, `{{wildcard(n)}}` and `$n` (the n-th `*`
//! of the source, from 1), `*` (the next `*` in order) and a trailing `>` (what the source's
//! `>` matched). Partition and split functions are refused at config time.

/// One destination token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// Index into the source's `*` wildcards (0-based).
    Wildcard(usize),
    /// What the source's trailing `>` matched.
    Rest,
}

/// A compiled transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTransform {
    src: String,
    dest: Vec<Part>,
}

/// Parses `{{wildcard(n)}}` (any case, spaces allowed) into `n`.
fn parse_wildcard_fn(tok: &str) -> Option<Result<usize, String>> {
    let inner = tok.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let lower = inner.to_ascii_lowercase();
    let Some(args) = lower
        .strip_prefix("wildcard")
        .map(str::trim_start)
        .and_then(|a| a.strip_prefix('('))
        .and_then(|a| a.strip_suffix(')'))
    else {
        return Some(Err(format!(
            "unsupported subject transform function {tok:?}"
        )));
    };
    Some(
        args.trim()
            .parse::<usize>()
            .map_err(|_| format!("invalid wildcard index in {tok:?}")),
    )
}

/// Why a transform does not compile: its source or its destination is wrong (nats-server
/// reports them with different codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransformError {
    /// The source is not a valid subject.
    Source(String),
    /// The destination is malformed, refers to missing wildcards, or points into a subject
    /// space of the server's own.
    Destination(String),
}

/// Subject spaces the server publishes into or serves requests on. Nothing a client
/// configures (a push consumer's deliver subject, a transform or republish destination)
/// may point into them.
pub const SERVER_SPACES: &[&str] = &["$JS.>", "$JSC.>", "$NRG.>", "$SYS.>", "$KV.>", "$OBJ.>"];

/// The server space `subject` (a literal or a pattern) can reach, if any.
pub fn server_space(subject: &str) -> Option<&'static str> {
    SERVER_SPACES
        .iter()
        .find(|space| petrel_subject::subjects_collide(space.as_bytes(), subject.as_bytes()))
        .copied()
}

impl SubjectTransform {
    /// Compiles a transform; an empty `src` means every subject. A destination starting with
    /// a literal token must not lead into the server's own spaces.
    pub fn new(src: &str, dest: &str) -> Result<SubjectTransform, TransformError> {
        let compiled = Self::for_storage(src, dest)?;
        // A leading function token takes the stream's own subject tokens.
        if !matches!(compiled.dest.first(), Some(Part::Literal(_))) {
            return Ok(compiled);
        }
        let pattern = compiled.dest_pattern();
        match server_space(&pattern) {
            Some(space) => Err(TransformError::Destination(format!(
                "destination {dest:?} is inside the server's {space:?} subject space"
            ))),
            None => Ok(compiled),
        }
    }

    /// Compiles a transform whose results are only stored, never published (a source's
    /// subject mapping, e.g. one KV bucket's keys into another's): any destination space.
    pub fn for_storage(src: &str, dest: &str) -> Result<SubjectTransform, TransformError> {
        let src = if src.is_empty() { ">" } else { src };
        if !petrel_subject::is_valid_subject(src.as_bytes()) {
            return Err(TransformError::Source(format!(
                "invalid subject transform source {src:?}"
            )));
        }
        Self::compile(src, dest).map_err(TransformError::Destination)
    }

    /// Every subject the destination can produce, as a pattern (`*` for a wildcard token,
    /// `>` for the source's rest).
    pub fn dest_pattern(&self) -> String {
        let parts: Vec<&str> = self
            .dest
            .iter()
            .map(|p| match p {
                Part::Literal(l) => l.as_str(),
                Part::Wildcard(_) => "*",
                Part::Rest => ">",
            })
            .collect();
        parts.join(".")
    }

    /// Compiles a destination for a valid source.
    fn compile(src: &str, dest: &str) -> Result<SubjectTransform, String> {
        let stars = src.split('.').filter(|t| *t == "*").count();
        let has_rest = src.ends_with('>') && src.split('.').next_back() == Some(">");
        let mut next_star = 0;
        let mut parts = Vec::new();
        let tokens: Vec<&str> = dest.split('.').collect();
        if dest.is_empty() {
            return Err("subject transform destination is empty".to_string());
        }
        for (i, tok) in tokens.iter().enumerate() {
            let part = if *tok == "*" {
                next_star += 1;
                Part::Wildcard(next_star - 1)
            } else if *tok == ">" {
                if i + 1 != tokens.len() || !has_rest {
                    return Err(format!("invalid subject transform destination {dest:?}"));
                }
                Part::Rest
            } else if let Some(n) = parse_wildcard_fn(tok) {
                Part::Wildcard(n?.wrapping_sub(1))
            } else if let Some(n) = tok.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
                Part::Wildcard(n.wrapping_sub(1))
            } else if tok.is_empty() {
                return Err(format!("invalid subject transform destination {dest:?}"));
            } else {
                Part::Literal((*tok).to_string())
            };
            if let Part::Wildcard(n) = part {
                if n >= stars {
                    return Err(format!(
                        "subject transform destination {dest:?} references a wildcard the source {src:?} does not have"
                    ));
                }
            }
            parts.push(part);
        }
        Ok(SubjectTransform {
            src: src.to_string(),
            dest: parts,
        })
    }

    /// The transformed subject, or `None` when `subject` does not match the source.
    pub fn apply(&self, subject: &str) -> Option<String> {
        if !petrel_subject::matches(self.src.as_bytes(), subject.as_bytes()) {
            return None;
        }
        let mut stars = Vec::new();
        let mut rest = "";
        let mut offset = 0;
        for (p, s) in self.src.split('.').zip(subject.split('.')) {
            if p == "*" {
                stars.push(s);
            } else if p == ">" {
                rest = subject.get(offset..).unwrap_or("");
                break;
            }
            offset += s.len() + 1;
        }
        let mut out = Vec::with_capacity(self.dest.len());
        for part in &self.dest {
            match part {
                Part::Literal(l) => out.push(l.as_str()),
                Part::Wildcard(n) => out.push(stars.get(*n).copied()?),
                Part::Rest => out.push(rest),
            }
        }
        Some(out.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms() {
        let t = SubjectTransform::new("orders.*.*", "o.{{wildcard(2)}}.$1").unwrap();
        assert_eq!(t.apply("orders.a.b").as_deref(), Some("o.b.a"));
        assert_eq!(t.apply("other.a.b"), None);
        let t = SubjectTransform::new("", "copy.>").unwrap();
        assert_eq!(t.apply("a.b.c").as_deref(), Some("copy.a.b.c"));
        let t = SubjectTransform::new("in.*.>", "out.*.>").unwrap();
        assert_eq!(t.apply("in.x.y.z").as_deref(), Some("out.x.y.z"));
        assert!(SubjectTransform::new("a.*", "b.$2").is_err());
        assert!(SubjectTransform::new("a.*", "{{partition(3,1)}}").is_err());
        assert!(SubjectTransform::new("a.*", "b.>").is_err());
        assert!(matches!(
            SubjectTransform::new("a.>", "$JS.API.>"),
            Err(TransformError::Destination(_))
        ));
        assert!(SubjectTransform::new("a.*", "$KV.b.$1").is_err());
        assert!(SubjectTransform::new("*.>", "{{wildcard(1)}}.>").is_ok());
        assert!(SubjectTransform::new("a.>", "JS.API.>").is_ok());
    }
}
