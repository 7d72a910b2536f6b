//! TOML input: [`parse_toml_str`] reads a TOML document into the same [`Map`]/[`Value`]
//! tree the nats.conf parser produces, so [`apply`](super::apply) maps both formats onto
//! [`Options`](crate::Options) with one set of keys and checks.
//!
//! Tables (`[jetstream]`, inline `{ ... }`, dotted keys) become blocks, arrays of tables
//! (`[[authorization.users]]`) become arrays of blocks, and every key and value carries the
//! `file:line:col` it was written at. TOML has no includes and no `$VARIABLE`s. Numbers are
//! plain: an integer duration is a number of seconds and sizes with a unit are written as
//! strings (`"1G"`, `"64KB"`), which the typed readers already accept.

use std::sync::Arc;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::ConfigError;
use super::value::{Map, Pos, Value, ValueKind};

/// Parses TOML `text` (called `name` in positions and messages) into a configuration tree,
/// keys in file order. Syntax errors, integers outside `i64` and floats outside `f64` are
/// [`ConfigError::Syntax`] errors with their position. Never panics, whatever the text.
pub fn parse_toml_str(text: &str, name: &str) -> Result<Map, ConfigError> {
    let src = Source::new(text, Arc::from(name));
    let root = DeTable::parse(text).map_err(|e| src.parse_error(&e))?;
    src.table(root.get_ref())
}

/// The text being converted, with the byte offset of every line start for positions.
struct Source<'t> {
    text: &'t str,
    file: Arc<str>,
    /// Byte offsets where lines start; the first is 0.
    line_starts: Vec<usize>,
}

impl<'t> Source<'t> {
    fn new(text: &'t str, file: Arc<str>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            text,
            file,
            line_starts,
        }
    }

    /// The position of byte `offset` (clamped to the text, moved back to a character
    /// boundary): 1-based line and 1-based column counted in characters.
    fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        Pos::new(
            self.file.clone(),
            u32::try_from(line).unwrap_or(u32::MAX),
            u32::try_from(col).unwrap_or(u32::MAX),
        )
    }

    /// The source text of a span, or "" when the span is not in the text.
    fn slice(&self, span: std::ops::Range<usize>) -> &'t str {
        self.text.get(span).unwrap_or("")
    }

    /// A TOML parse error as a positioned [`ConfigError::Syntax`].
    fn parse_error(&self, e: &toml::de::Error) -> ConfigError {
        let span = e.span().unwrap_or(0..0);
        let mut msg = e.message().trim().replace('\n', " ");
        if msg == "duplicate key" {
            let key = self.slice(span.clone()).trim();
            if !key.is_empty() {
                msg = format!("duplicate key '{}'", key.escape_default());
            }
        }
        ConfigError::syntax(self.pos(span.start), format!("TOML: {msg}"))
    }

    /// A table's entries, in file order.
    fn table(&self, t: &DeTable<'_>) -> Result<Map, ConfigError> {
        let mut map = Map::new();
        for (k, v) in t.iter() {
            map.insert(
                k.get_ref().to_string(),
                self.pos(k.span().start),
                self.value(v)?,
            );
        }
        Ok(map)
    }

    fn value(&self, v: &Spanned<DeValue<'_>>) -> Result<Value, ConfigError> {
        let pos = self.pos(v.span().start);
        let out_of_range = |what: &str| {
            ConfigError::syntax(
                pos.clone(),
                format!(
                    "{what} {} is out of range",
                    self.slice(v.span()).escape_default()
                ),
            )
        };
        let kind = match v.get_ref() {
            DeValue::String(s) => ValueKind::String(s.to_string()),
            DeValue::Integer(i) => ValueKind::Int(
                i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| out_of_range("integer"))?,
            ),
            DeValue::Float(f) => {
                let text = f.as_str();
                let x: f64 = text.parse().map_err(|_| out_of_range("float"))?;
                // `1e400` parses as infinity; only `inf` itself may be infinite.
                if x.is_infinite() && !text.contains("inf") {
                    return Err(out_of_range("float"));
                }
                ValueKind::Float(x)
            }
            DeValue::Boolean(b) => ValueKind::Bool(*b),
            // nats.conf has no date type either: its dates are strings.
            DeValue::Datetime(d) => ValueKind::String(d.to_string()),
            DeValue::Array(items) => ValueKind::Array(
                items
                    .iter()
                    .map(|item| self.value(item))
                    .collect::<Result<_, _>>()?,
            ),
            DeValue::Table(t) => ValueKind::Map(self.table(t)?),
        };
        Ok(Value::new(kind, pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Map {
        parse_toml_str(text, "t.toml").unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn at(v: &Value) -> (u32, u32) {
        (v.pos.line, v.pos.col)
    }

    #[test]
    fn values_keep_kinds_order_and_positions() {
        let m = parse(
            "z = 1\na = 'x'\n[t]\n  f = 1.5\n  b = true\n  h = 0xff\n  u = 1_000\n  d = 1979-05-27\n  arr = [1, \"é\", 2]\n",
        );
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["z", "a", "t"]);
        assert_eq!(at(m.get("a").expect("a")), (2, 5));
        assert_eq!(m.entries()[1].key_pos, Pos::new(Arc::from("t.toml"), 2, 1));
        let t = m.get("t").and_then(Value::as_map).expect("t");
        assert_eq!(at(m.get("t").expect("t")), (3, 1));
        assert_eq!(t.get("f").map(|v| &v.kind), Some(&ValueKind::Float(1.5)));
        assert_eq!(t.get("b").and_then(Value::as_bool), Some(true));
        assert_eq!(t.get("h").and_then(Value::as_int), Some(255));
        assert_eq!(t.get("u").and_then(Value::as_int), Some(1000));
        assert_eq!(t.get("d").and_then(Value::as_str), Some("1979-05-27"));
        let arr = t.get("arr").and_then(Value::as_array).expect("arr");
        assert_eq!(arr.len(), 3);
        assert_eq!(at(&arr[2]), (9, 18));
        assert_eq!(at(t.get("u").expect("u")), (7, 7));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let e = parse_toml_str("a = \"ééé\" b", "t.toml").expect_err("trailing");
        assert_eq!(e.pos().map(|p| (p.line, p.col)), Some((1, 11)), "{e}");
    }

    #[test]
    fn out_of_range_numbers_are_errors() {
        let e = parse_toml_str("\na = 99999999999999999999", "t.toml").expect_err("int");
        assert_eq!(
            e.to_string(),
            "t.toml:2:5: integer 99999999999999999999 is out of range"
        );
        let e = parse_toml_str("a = 1e400", "t.toml").expect_err("float");
        assert!(e.to_string().starts_with("t.toml:1:5: float"), "{e}");
        let m = parse("a = -inf\nb = -9223372036854775808");
        assert_eq!(
            m.get("a").map(|v| &v.kind),
            Some(&ValueKind::Float(f64::NEG_INFINITY))
        );
        assert_eq!(m.get("b").and_then(Value::as_int), Some(i64::MIN));
    }

    #[test]
    fn pos_is_clamped_and_on_char_boundaries() {
        let s = Source::new("ab\né\n", Arc::from("x"));
        let lc = |o| {
            let p = s.pos(o);
            (p.line, p.col)
        };
        assert_eq!(lc(0), (1, 1));
        assert_eq!(lc(2), (1, 3));
        assert_eq!(lc(3), (2, 1));
        assert_eq!(lc(4), (2, 1), "inside 'é' moves back to its start");
        assert_eq!(lc(5), (2, 2));
        assert_eq!(lc(999), (3, 1));
    }
}
