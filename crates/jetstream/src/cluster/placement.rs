//! Where new replicas go: online members of the meta group, filtered by the stream's
//! `placement` (`cluster` name and `tags`, every tag required, without regard to case, as
//! nats-server matches `server_tags`), least loaded first. The refusal is nats-server
//! 2.15.1's 10005 text, naming the tags no candidate had.

use std::collections::BTreeSet;

use petrel_replication::NodeId;

use super::JsCluster;
use crate::config::StreamConfig;
use crate::errors::ApiError;

/// A stream's `placement`, as far as Petrel reads it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Placement {
    /// The cluster asked for (empty: any).
    pub cluster: String,
    /// Tags every chosen server must have, lower case.
    pub tags: Vec<String>,
}

impl Placement {
    /// The `placement` of `cfg` (missing or odd fields are ignored, as nats-server).
    pub fn of(cfg: &StreamConfig) -> Placement {
        let Some(p) = cfg.placement.as_ref() else {
            return Placement::default();
        };
        Placement {
            cluster: p["cluster"].as_str().unwrap_or_default().to_string(),
            tags: p["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .map(str::to_lowercase)
                .collect(),
        }
    }

    /// The tags of `have` (lower case) that this placement asks for and it lacks.
    pub fn missing(&self, have: &[String]) -> Vec<String> {
        self.tags
            .iter()
            .filter(|t| !have.contains(t))
            .cloned()
            .collect()
    }
}

/// Chooses `n` online members of the meta group outside `skip` for `cfg`, least loaded
/// first.
pub(super) fn place(
    c: &JsCluster,
    n: usize,
    cfg: &StreamConfig,
    skip: &[NodeId],
) -> Result<Vec<(NodeId, String)>, ApiError> {
    let placement = Placement::of(cfg);
    let members = c.meta.voters();
    let load = c.state.load();
    let elsewhere = !placement.cluster.is_empty() && placement.cluster != c.config.cluster_name;
    let mut unmatched = BTreeSet::new();
    let mut candidates: Vec<(usize, u64, NodeId, String)> = Vec::new();
    for (name, id) in c.online() {
        if !members.contains(&id) || skip.contains(&id) || elsewhere {
            continue;
        }
        let missing = placement.missing(&c.tags_of(id));
        if !missing.is_empty() {
            unmatched.extend(missing);
            continue;
        }
        let spread = petrel_replication::node_id(&format!("{}/{name}", cfg.name));
        candidates.push((load.get(&id).copied().unwrap_or(0), spread, id, name));
    }
    if candidates.len() < n {
        let mut why = String::from("no suitable peers for placement");
        if !unmatched.is_empty() {
            let tags: Vec<String> = unmatched.iter().map(|t| format!("'{t}'")).collect();
            why.push_str(&format!(", tags not matched [{}]", tags.join(", ")));
        }
        return Err(ApiError::cluster_no_peers(why));
    }
    candidates.sort();
    Ok(candidates
        .into_iter()
        .take(n)
        .map(|(_, _, id, name)| (id, name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_reads_cluster_and_lower_cased_tags() {
        let cfg: StreamConfig = serde_json::from_str(
            r#"{"name":"S","placement":{"cluster":"c1","tags":["AZ:1","cloud:x"]}}"#,
        )
        .unwrap();
        let p = Placement::of(&cfg);
        assert_eq!(p.cluster, "c1");
        assert_eq!(p.tags, vec!["az:1", "cloud:x"]);
        assert_eq!(p.missing(&["cloud:x".into()]), vec!["az:1"]);
        assert!(p
            .missing(&["az:1".into(), "cloud:x".into(), "z".into()])
            .is_empty());
        let none: StreamConfig = serde_json::from_str(r#"{"name":"S"}"#).unwrap();
        assert_eq!(Placement::of(&none), Placement::default());
    }
}
