//! Delivery cycles across streams. A push consumer delivers into its deliver subject, and a
//! republishing stream publishes into its republish destination; a stream whose subjects
//! capture those subjects stores the messages and passes them on in turn. If that chain
//! leads back to the first stream, every message circulates for ever. Consumer
//! create/update and stream create/update check the graph "stream X feeds stream Y" (an
//! output of X reaches a subject Y captures) with the change applied, and refuse a change
//! that closes a loop.
//!
//! Built on the API task (create/update checks) and on publishers' tasks (pull requests and
//! `+NXT` whose reply a stream captures); it copies what it reads, one lock at a time.

use crate::config::StreamConfig;
use crate::consumer::config::ConsumerConfig;
use crate::consumer::deadletter;
use crate::errors::ApiError;
use crate::jetstream::JetStream;
use crate::transform::SubjectTransform;

/// The output name of a stream's republish destination (consumer names cannot contain
/// spaces, so it names no consumer).
const REPUBLISH: &str = "republish destination";

/// A stream's republish output: every subject its destination can produce.
fn republish_output(cfg: &StreamConfig) -> Option<(String, String)> {
    let rp = cfg.republish.as_ref()?;
    let t = SubjectTransform::new(&rp.src, &rp.dest).ok()?;
    Some((REPUBLISH.to_string(), t.dest_pattern()))
}

/// The name of a consumer's dead-letter output.
fn dead_letter_output(consumer: &str) -> String {
    format!("{consumer} dead letters")
}

/// A consumer's outputs: its deliver subject (push) and its dead-letter subject.
fn consumer_outputs(name: &str, cfg: &ConsumerConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if !cfg.deliver_subject.is_empty() {
        out.push((name.to_string(), cfg.deliver_subject.clone()));
    }
    if let Some(dl) = deadletter::subject(cfg) {
        out.push((dead_letter_output(name), dl.to_string()));
    }
    out
}

/// One stream as a node: its subjects and its outputs: push consumers' (name, deliver
/// subject) and the republish destination.
struct Node {
    name: String,
    subjects: Vec<String>,
    outputs: Vec<(String, String)>,
}

/// The feed graph of every stream.
pub(crate) struct Graph {
    nodes: Vec<Node>,
}

/// The edge that closes a cycle: `consumer` of `stream` delivers to `deliver`.
pub(crate) struct Closing {
    pub stream: String,
    pub consumer: String,
    pub deliver: String,
}

/// One stream's node, one lock at a time (docs/LOCKS.md): the config (the stream's store
/// lock) first, then copies of the subjects and the consumer list, then each consumer's
/// state. Holding `subjects` or `consumers` while waiting for the store lock would invert
/// the order config updates and commits take them (a deadlock).
fn node_of(s: &crate::stream::Stream) -> Node {
    let republish = republish_output(&s.config());
    let subjects = s.subjects.read().clone();
    let consumers: Vec<_> = s.consumers.read().values().cloned().collect();
    let outputs = consumers
        .iter()
        .flat_map(|c| consumer_outputs(&c.name, &c.state.lock().config))
        .chain(republish)
        .collect();
    Node {
        name: s.name.clone(),
        subjects,
        outputs,
    }
}

impl Graph {
    /// The graph as it is now.
    pub fn of(js: &JetStream) -> Graph {
        let streams: Vec<_> = js.streams.read().values().cloned().collect();
        // One lock at a time (docs/LOCKS.md): the config (the stream's store lock) first,
        // then copies of the subjects and the consumer list, then each consumer's state.
        // Holding `subjects` or `consumers` while taking the store lock would invert the
        // order of config updates and commits (a deadlock).
        let nodes = streams.iter().map(|s| node_of(s)).collect();
        Graph { nodes }
    }

    fn node(&mut self, stream: &str) -> &mut Node {
        if let Some(i) = self.nodes.iter().position(|n| n.name == stream) {
            return &mut self.nodes[i];
        }
        self.nodes.push(Node {
            name: stream.to_string(),
            subjects: Vec::new(),
            outputs: Vec::new(),
        });
        self.nodes.last_mut().expect("just pushed")
    }

    /// With `stream`'s subjects and republish output replaced (a stream create or update).
    pub fn with_stream(mut self, stream: &str, cfg: &StreamConfig) -> Graph {
        let node = self.node(stream);
        node.subjects = cfg.subjects.clone();
        node.outputs.retain(|(c, _)| c != REPUBLISH);
        node.outputs.extend(republish_output(cfg));
        self
    }

    /// With consumer `consumer` of `stream` delivering to `deliver` (empty: a pull
    /// consumer) instead of what it delivered to before.
    pub fn with_consumer(mut self, stream: &str, consumer: &str, deliver: &str) -> Graph {
        let node = self.node(stream);
        node.outputs.retain(|(c, _)| c != consumer);
        if !deliver.is_empty() {
            node.outputs
                .push((consumer.to_string(), deliver.to_string()));
        }
        self
    }

    /// The streams node `i` feeds, with the output that feeds each.
    fn feeds(&self, i: usize) -> impl Iterator<Item = (usize, &(String, String))> + '_ {
        self.nodes[i].outputs.iter().flat_map(move |out| {
            self.nodes.iter().enumerate().filter_map(move |(j, n)| {
                n.subjects
                    .iter()
                    .any(|s| petrel_subject::subjects_collide(s.as_bytes(), out.1.as_bytes()))
                    .then_some((j, out))
            })
        })
    }

    /// A cycle through `stream`, if there is one: the edge that leads back into it.
    pub fn cycle_through(&self, stream: &str) -> Option<Closing> {
        let start = self.nodes.iter().position(|n| n.name == stream)?;
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![start];
        while let Some(i) = todo.pop() {
            for (j, (consumer, deliver)) in self.feeds(i) {
                if j == start {
                    return Some(Closing {
                        stream: self.nodes[i].name.clone(),
                        consumer: consumer.clone(),
                        deliver: deliver.clone(),
                    });
                }
                if !seen[j] {
                    seen[j] = true;
                    todo.push(j);
                }
            }
        }
        None
    }
}

/// Refuses a consumer (create, or a change of its deliver or dead-letter subject) that
/// closes a loop: 10081, nats-server's error for a stream capturing its own consumer's
/// deliveries, or 10012 naming the dead-letter subject.
pub(crate) fn check_consumer(
    js: &JetStream,
    stream: &str,
    cfg: &ConsumerConfig,
) -> Result<(), ApiError> {
    let outputs = consumer_outputs(&cfg.name, cfg);
    if outputs.is_empty() {
        return Ok(());
    }
    let mut graph = Graph::of(js).with_consumer(stream, &cfg.name, "");
    let node = graph.node(stream);
    node.outputs
        .retain(|(c, _)| *c != dead_letter_output(&cfg.name));
    node.outputs.extend(outputs);
    match graph.cycle_through(stream) {
        Some(c) if c.consumer == dead_letter_output(&cfg.name) => {
            Err(ApiError::consumer_create(format!(
                "metadata {:?} {:?} leads dead letters back into stream {stream:?}, which forms a cycle",
                deadletter::DEAD_LETTER_KEY, c.deliver
            )))
        }
        Some(_) => Err(ApiError::consumer_deliver_cycle()),
        None => Ok(()),
    }
}

/// Refuses stream subjects or a republish destination (create or update) that lead messages
/// back into the stream (10052, naming the output that closes the loop).
pub(crate) fn check_stream(
    js: &JetStream,
    stream: &str,
    cfg: &StreamConfig,
) -> Result<(), ApiError> {
    // A loop through a new stream must leave it, and a new stream has no consumers yet:
    // without a republish destination it has no output, so no loop (and no graph of every
    // stream and consumer to build for each of 10,000 creates).
    if cfg.republish.is_none() && js.stream(stream).is_none() {
        return Ok(());
    }
    let graph = Graph::of(js).with_stream(stream, cfg);
    match graph.cycle_through(stream) {
        Some(c) if c.consumer == REPUBLISH => Err(ApiError::stream_invalid_config(format!(
            "stream configuration for republish destination forms a cycle (stream {:?} republishes to {:?})",
            c.stream, c.deliver
        ))),
        Some(c) => Err(ApiError::stream_invalid_config(format!(
            "subjects capture deliver subject {:?} of consumer {:?} on stream {:?}, which forms a delivery cycle",
            c.deliver, c.consumer, c.stream
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, subjects: &[&str], outputs: &[(&str, &str)]) -> Node {
        Node {
            name: name.into(),
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            outputs: outputs
                .iter()
                .map(|(c, d)| (c.to_string(), d.to_string()))
                .collect(),
        }
    }

    /// Regression: building a node held the stream's subjects (read) while it waited for
    /// the store lock, which a config update holds while it writes the subjects.
    #[test]
    fn a_node_waits_for_the_store_lock_holding_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StreamConfig {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            ..StreamConfig::default()
        };
        let stream = crate::testing::open_stream(cfg, dir.path());
        let store = stream.inner.lock();
        let s = stream.clone();
        let (started, waiting) = std::sync::mpsc::channel();
        let builder = std::thread::spawn(move || {
            started.send(()).unwrap();
            node_of(&s).subjects
        });
        waiting.recv().unwrap();
        // What a config update does under the store lock: write the subjects.
        let writable = stream
            .subjects
            .try_write_for(std::time::Duration::from_secs(5))
            .is_some();
        drop(store);
        assert!(
            writable,
            "node_of held the subjects while waiting for the store lock"
        );
        assert_eq!(builder.join().unwrap(), ["s.>"]);
    }

    #[test]
    fn finds_loops_of_any_length_and_only_loops() {
        let g = Graph {
            nodes: vec![
                node("A", &["a.>"], &[("ab", "b.x")]),
                node("B", &["b.>"], &[("bc", "c.x")]),
                node("C", &["c.>"], &[("out", "z.x")]),
            ],
        };
        assert!(g.cycle_through("A").is_none());
        let g = g.with_consumer("C", "ca", "a.1");
        let c = g.cycle_through("A").expect("A -> B -> C -> A");
        assert_eq!((c.stream.as_str(), c.consumer.as_str()), ("C", "ca"));
        assert!(g.cycle_through("B").is_some());
        let g = g.with_consumer("C", "ca", "");
        assert!(g.cycle_through("A").is_none());
        let cfg = StreamConfig {
            subjects: vec!["c.>".into(), "z.>".into()],
            ..StreamConfig::default()
        };
        let g = g.with_stream("C", &cfg);
        assert!(g.cycle_through("C").is_some(), "self capture");
        assert!(g.cycle_through("A").is_none(), "A is upstream only");
    }

    #[test]
    fn republish_destinations_are_outputs() {
        let republishing = |subjects: &[&str], src: &str, dest: &str| StreamConfig {
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            republish: Some(crate::config::RePublish {
                src: src.into(),
                dest: dest.into(),
                headers_only: false,
            }),
            ..StreamConfig::default()
        };
        let g = Graph { nodes: Vec::new() }
            .with_stream("A", &republishing(&["a.*"], "a.*", "b.{{wildcard(1)}}"))
            .with_stream("B", &republishing(&["b.>"], "b.>", "c.>"));
        assert!(g.cycle_through("A").is_none());
        let g = g.with_stream("B", &republishing(&["b.>"], "b.>", "a.>"));
        let c = g.cycle_through("A").expect("A -> B -> A");
        assert_eq!(
            (c.consumer.as_str(), c.deliver.as_str()),
            (REPUBLISH, "a.>")
        );
    }
}
