//! `sources` of a stream configuration: the shape nats-server 2.10 reads and its checks,
//! with nats-server's error codes; sources in another domain or account (`external`) and
//! durable source consumers (2.12) are refused until accounts and clusters exist.

use serde::{Deserialize, Serialize};

use crate::config::SubjectTransformConfig;
use crate::errors::ApiError;
use crate::json::{is_default, null_default};
use crate::transform::{SubjectTransform, TransformError};

/// One source of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSource {
    /// The origin stream.
    pub name: String,
    /// First origin sequence to take (0 = from the start).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_default"
    )]
    pub opt_start_seq: u64,
    /// First origin time to take (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// Only origin messages on these subjects.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub filter_subject: String,
    /// Filters with a subject transform each (instead of `filter_subject`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subject_transforms: Vec<SubjectTransformConfig>,
    /// The origin is in another account or domain, reached through its API prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<External>,
    /// A durable source consumer (2.12; not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<serde_json::Value>,
}

/// Where an origin in another account or domain is reached (`external`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct External {
    /// The origin's JetStream API prefix as seen from here (e.g. `$JS.hub.API`, or the
    /// `to` of an imported `$JS.API.>`).
    #[serde(default, rename = "api", deserialize_with = "null_default")]
    pub api: String,
    /// The prefix of the subjects the origin's consumer delivers on (imported here).
    #[serde(default, rename = "deliver", deserialize_with = "null_default")]
    pub deliver: String,
}

/// nats-server's checks of an `external` block: a literal delivery prefix (10024), a
/// literal API prefix (10052) that is not this JetStream's own API (10021).
fn check_external(ext: &External) -> Result<(), ApiError> {
    if !ext.deliver.is_empty() && !petrel_subject::is_valid_literal_subject(ext.deliver.as_bytes())
    {
        return Err(err(
            400,
            10024,
            format!(
                "stream external delivery prefix {} must not contain wildcards",
                ext.deliver
            ),
        ));
    }
    if !ext.api.is_empty() {
        if !petrel_subject::is_valid_literal_subject(ext.api.as_bytes()) {
            return Err(ApiError::stream_invalid_config(format!(
                "stream external api prefix {:?} must be a valid subject without wildcards",
                ext.api
            )));
        }
        if petrel_subject::subjects_collide(ext.api.as_bytes(), b"$JS.API") {
            return Err(err(
                400,
                10021,
                format!(
                    "stream external api prefix {} must not overlap with $JS.API",
                    ext.api
                ),
            ));
        }
    }
    Ok(())
}

/// The 8-character hash nats-server appends to an external source's name in its
/// identity (`<name>:<hash of the API prefix>`, in `Nats-Stream-Source` headers).
pub(crate) fn api_hash(api: &str) -> String {
    use sha2::Digest;
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let sum = sha2::Sha256::digest(api.as_bytes());
    sum.iter()
        .take(8)
        .map(|b| DIGITS[usize::from(*b) % DIGITS.len()] as char)
        .collect()
}

/// One filter of a source and what it turns matching subjects into.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    /// Origin subjects taken.
    pub filter: String,
    /// The destination as configured (`>`: unchanged), for the source header.
    pub dest: String,
    /// The compiled transform, if any.
    pub transform: Option<SubjectTransform>,
}

impl StreamSource {
    /// The identity nats-server keys a source by: `<name> <filter> <destination>` (`>` for
    /// none), one per transform; it is written into `Nats-Stream-Source` headers.
    pub fn iname(&self) -> String {
        let name = self.origin_id();
        let (filter, dest) = match self.subject_transforms.as_slice() {
            [] => (self.filter_subject.as_str(), ">"),
            [t] => (t.src.as_str(), t.dest.as_str()),
            _ => ("", ""),
        };
        let or_all = |s: &str| {
            if s.is_empty() {
                ">".to_string()
            } else {
                s.to_string()
            }
        };
        if self.subject_transforms.len() > 1 {
            let srcs: Vec<&str> = self
                .subject_transforms
                .iter()
                .map(|t| t.src.as_str())
                .collect();
            let dests: Vec<&str> = self
                .subject_transforms
                .iter()
                .map(|t| t.dest.as_str())
                .collect();
            return format!("{name} {} {}", srcs.join(","), dests.join(","));
        }
        format!("{name} {} {}", or_all(filter), or_all(dest))
    }

    /// The origin as `Nats-Stream-Source` headers name it: its name, with
    /// `:<hash of the API prefix>` when it is external.
    pub fn origin_id(&self) -> String {
        match &self.external {
            Some(e) => format!("{}:{}", self.name, api_hash(&e.api)),
            None => self.name.clone(),
        }
    }

    /// The source's filters: one per transform, else its `filter_subject` (or `>`).
    pub(crate) fn filters(&self) -> Vec<Filter> {
        if self.subject_transforms.is_empty() {
            return vec![Filter {
                filter: or_all(&self.filter_subject),
                dest: ">".into(),
                transform: None,
            }];
        }
        self.subject_transforms
            .iter()
            .map(|t| Filter {
                filter: or_all(&t.src),
                dest: or_all(&t.dest),
                transform: (!t.dest.is_empty())
                    .then(|| SubjectTransform::for_storage(&or_all(&t.src), &t.dest).ok())
                    .flatten(),
            })
            .collect()
    }
}

fn err(code: u16, err_code: u16, text: impl std::fmt::Display) -> ApiError {
    ApiError {
        code,
        err_code,
        description: text.to_string(),
    }
}

/// The error codes and texts of the filter checks: sources and mirrors have their own.
struct FilterCodes {
    both: (u16, &'static str),
    source: (u16, &'static str),
    dest: (u16, &'static str),
    overlap: (u16, &'static str),
}

const SOURCE_CODES: FilterCodes = FilterCodes {
    both: (
        10144,
        "source with multiple subject transforms cannot also have a single subject filter",
    ),
    source: (10145, "source transform source"),
    dest: (10146, "source transform"),
    overlap: (10147, "source filters can not overlap"),
};

const MIRROR_CODES: FilterCodes = FilterCodes {
    both: (
        10150,
        "mirror with multiple subject transforms cannot also have a single subject filter",
    ),
    source: (10151, "mirror transform source"),
    dest: (10154, "mirror transform"),
    overlap: (10152, "mirror subject filters can not overlap"),
};

/// A source's (or mirror's) `filter_subject` / `subject_transforms`: not both, valid
/// subjects, valid transforms, no two filters overlapping.
fn check_filters(src: &StreamSource, c: &FilterCodes) -> Result<(), ApiError> {
    if !src.filter_subject.is_empty() && !src.subject_transforms.is_empty() {
        return Err(err(400, c.both.0, c.both.1));
    }
    let filters = std::iter::once(src.filter_subject.as_str())
        .chain(src.subject_transforms.iter().map(|t| t.src.as_str()));
    for f in filters.filter(|f| !f.is_empty()) {
        if !petrel_subject::is_valid_subject(f.as_bytes()) {
            let text = format!("{}: invalid subject {f:?}", c.source.1);
            return Err(err(400, c.source.0, text));
        }
    }
    for t in src.subject_transforms.iter().filter(|t| !t.dest.is_empty()) {
        if let Err(TransformError::Source(why) | TransformError::Destination(why)) =
            SubjectTransform::for_storage(&t.src, &t.dest)
        {
            return Err(err(400, c.dest.0, format!("{}: {why}", c.dest.1)));
        }
    }
    for (i, a) in src.subject_transforms.iter().enumerate() {
        for (j, b) in src.subject_transforms.iter().enumerate() {
            let (a, b) = (or_all(&a.src), or_all(&b.src));
            if i != j && petrel_subject::is_subset(a.as_bytes(), b.as_bytes()) {
                return Err(err(400, c.overlap.0, c.overlap.1));
            }
        }
    }
    Ok(())
}

/// nats-server's checks of `sources`, in its order.
pub(crate) fn check(sources: &[StreamSource]) -> Result<(), ApiError> {
    let mut seen = std::collections::BTreeSet::new();
    for src in sources {
        if !crate::consumer::config::is_valid_consumer_name(&src.name) {
            return Err(err(400, 10141, "sourced stream name is invalid"));
        }
        if !seen.insert(src.iname()) {
            return Err(err(400, 10140, "duplicate source configuration detected"));
        }
        check_filters(src, &SOURCE_CODES)?;
        if src.consumer.is_some() {
            return Err(err(400, 10215, "stream source consumer config is invalid: durable source consumers are not supported by this server yet"));
        }
        if let Some(ext) = &src.external {
            check_external(ext)?;
        }
        if let Some(t) = &src.opt_start_time {
            if crate::time::parse_rfc3339(t).is_none() {
                return Err(ApiError::invalid_json());
            }
        }
    }
    Ok(())
}

/// nats-server's checks of `mirror`, in its order: no subjects, no sources, not both start
/// sequence and time, no first sequence, a valid name, and the filter rules of sources
/// (with the mirror codes).
pub(crate) fn check_mirror(cfg: &crate::config::StreamConfig) -> Result<(), ApiError> {
    let Some(m) = &cfg.mirror else {
        return Ok(());
    };
    if !cfg.subjects.is_empty() {
        return Err(err(400, 10034, "stream mirrors can not contain subjects"));
    }
    if !cfg.sources.is_empty() {
        return Err(err(
            400,
            10031,
            "stream mirrors can not also contain other sources",
        ));
    }
    if m.opt_start_seq > 0 && m.opt_start_time.is_some() {
        return Err(err(
            400,
            10032,
            "stream mirrors can not have both start seq and start time configured",
        ));
    }
    if cfg.first_seq > 0 {
        return Err(err(
            400,
            10143,
            "stream mirrors can not have first sequence configured",
        ));
    }
    if !crate::consumer::config::is_valid_consumer_name(&m.name) {
        return Err(err(400, 10142, "mirrored stream name is invalid"));
    }
    check_filters(m, &MIRROR_CODES)?;
    if m.consumer.is_some() {
        return Err(err(400, 10215, "stream mirror consumer config is invalid: durable mirror consumers are not supported by this server yet"));
    }
    if let Some(ext) = &m.external {
        check_external(ext)?;
    }
    Ok(())
}

/// nats-server's source cycle check: following the sources of `cfg` (through the streams
/// that exist), a stream met again whose filter overlaps the subjects of the stream sourcing
/// it closes a loop ("detected cycle").
pub(crate) fn check_cycle(
    cfg: &crate::config::StreamConfig,
    lookup: impl Fn(&str) -> Option<crate::config::StreamConfig>,
) -> Result<(), ApiError> {
    let overlaps = |subjects: &[String], filter: &str| {
        filter.is_empty()
            || subjects
                .iter()
                .any(|s| petrel_subject::subjects_collide(s.as_bytes(), filter.as_bytes()))
    };
    let mut visited = std::collections::BTreeSet::new();
    let mut todo = vec![cfg.clone()];
    while let Some(c) = todo.pop() {
        visited.insert(c.name.clone());
        for src in c.sources.iter().filter(|s| s.external.is_none()) {
            if visited.contains(&src.name) {
                if overlaps(&c.subjects, &src.filter_subject) {
                    return Err(ApiError::stream_invalid_config("detected cycle"));
                }
            } else if let Some(other) = lookup(&src.name) {
                todo.push(other);
            }
        }
    }
    Ok(())
}

fn or_all(s: &str) -> String {
    if s.is_empty() {
        ">".into()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_origins_are_named_as_nats_server_names_them() {
        // nats-server 2.15.1 wrote `Nats-Stream-Source: ORDERS:tn1TIyF1 ...` for a source
        // with `external.api` "ORDERS.API".
        assert_eq!(api_hash("ORDERS.API"), "tn1TIyF1");
    }
}
