//! A small writer for the Prometheus text exposition format (version 0.0.4): one
//! `# HELP` and `# TYPE` line per metric family, then its samples, label values escaped.
//!
//! ```
//! use petrel_monitor::prom::{Kind, PromWriter};
//! let mut w = PromWriter::new();
//! w.family("petrel_connections", "Client connections open now.", Kind::Gauge);
//! w.sample("petrel_connections", &[], 3u64);
//! w.family("petrel_stream_messages", "Messages stored in the stream.", Kind::Gauge);
//! w.sample("petrel_stream_messages", &[("stream", "ORDERS")], 5u64);
//! assert!(w.finish().contains("petrel_stream_messages{stream=\"ORDERS\"} 5\n"));
//! ```

use std::fmt::Write as _;

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample value: integers print exactly, floats in Prometheus' notation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An unsigned integer.
    Int(u64),
    /// A float (`NaN`, `+Inf`, `-Inf` allowed).
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

/// Builds an exposition body.
#[derive(Debug, Default)]
pub struct PromWriter {
    out: String,
}

impl PromWriter {
    /// An empty body.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start family `name` with its help text and type.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        debug_assert!(valid_name(name), "bad metric name {name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape(help, false));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of `name` with `labels` (name, value) pairs.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(valid_name(k) && !k.contains(':'), "bad label name {k}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => self.out.push_str(&float(v)),
        }
        self.out.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl Into<Value>) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    /// The body.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Metric and label names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Escape `\` and newlines (and `"` in label values).
fn escape(s: &str, quote: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples() {
        let mut w = PromWriter::new();
        w.single("petrel_connections", "Open connections.", Kind::Gauge, 3u64);
        w.family("petrel_in_msgs_total", "Messages in.", Kind::Counter);
        w.sample("petrel_in_msgs_total", &[], 12u64);
        w.family("petrel_stream_messages", "Stream messages.", Kind::Gauge);
        w.sample("petrel_stream_messages", &[("stream", "A")], 1u64);
        w.sample(
            "petrel_consumer_num_pending",
            &[("stream", "A"), ("consumer", "c")],
            2u64,
        );
        assert_eq!(
            w.finish(),
            "# HELP petrel_connections Open connections.\n\
             # TYPE petrel_connections gauge\n\
             petrel_connections 3\n\
             # HELP petrel_in_msgs_total Messages in.\n\
             # TYPE petrel_in_msgs_total counter\n\
             petrel_in_msgs_total 12\n\
             # HELP petrel_stream_messages Stream messages.\n\
             # TYPE petrel_stream_messages gauge\n\
             petrel_stream_messages{stream=\"A\"} 1\n\
             petrel_consumer_num_pending{stream=\"A\",consumer=\"c\"} 2\n"
        );
    }

    #[test]
    fn escapes_label_values_and_help() {
        let mut w = PromWriter::new();
        w.family("m", "a \\ b\nc \"q\"", Kind::Gauge);
        w.sample("m", &[("l", "x\"y\\z\nw")], 1u64);
        assert_eq!(
            w.finish(),
            "# HELP m a \\\\ b\\nc \"q\"\n# TYPE m gauge\nm{l=\"x\\\"y\\\\z\\nw\"} 1\n"
        );
    }

    #[test]
    fn float_values() {
        let mut w = PromWriter::new();
        w.sample("a", &[], 1.5);
        w.sample("b", &[], f64::NAN);
        w.sample("c", &[], f64::INFINITY);
        w.sample("d", &[], 2.0);
        assert_eq!(w.finish(), "a 1.5\nb NaN\nc +Inf\nd 2\n");
    }

    #[test]
    fn names() {
        assert!(valid_name("petrel_stream_messages"));
        assert!(valid_name("a:b_c9"));
        assert!(!valid_name("9a"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
    }
}
