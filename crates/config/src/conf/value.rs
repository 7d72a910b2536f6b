//! The parsed form of a nats.conf file: a tree of [`Value`]s, each carrying the [`Pos`]
//! (file, line, column) it was written at, with maps that keep their keys in file order.

use std::fmt;
use std::sync::Arc;

/// Where something was written: file name, 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    /// The file name as it was given (the `name` of `load_str`, or the path of the file).
    pub file: Arc<str>,
    /// Line number, starting at 1.
    pub line: u32,
    /// Column number, starting at 1, counted in characters.
    pub col: u32,
}

impl Pos {
    /// A position in `file`.
    pub fn new(file: Arc<str>, line: u32, col: u32) -> Self {
        Self { file, line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One value of the configuration tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// What the value is.
    pub kind: ValueKind,
    /// Where it was written (for a value taken from a `$VARIABLE`, where the reference was).
    pub pos: Pos,
    /// For an integer written with a size suffix (`2m`, `1G`, `64KB`), the text as written.
    /// Durations use it so that an unquoted `2m` means two minutes rather than 2,000,000
    /// seconds. `None` for every other value.
    pub raw: Option<String>,
}

/// The kinds of value nats.conf can express.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// A block `{ ... }`.
    Map(Map),
    /// An array `[ ... ]`.
    Array(Vec<Value>),
    /// A quoted, bare or block `( ... )` string.
    String(String),
    /// An integer, size suffixes already applied.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// `true`/`false`/`yes`/`no`/`on`/`off`.
    Bool(bool),
}

impl Value {
    /// A value without a raw text.
    pub fn new(kind: ValueKind, pos: Pos) -> Self {
        Self {
            kind,
            pos,
            raw: None,
        }
    }

    /// The value's type, with an article, for error messages ("a string", "an integer").
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            ValueKind::Map(_) => "a block",
            ValueKind::Array(_) => "an array",
            ValueKind::String(_) => "a string",
            ValueKind::Int(_) => "an integer",
            ValueKind::Float(_) => "a float",
            ValueKind::Bool(_) => "a boolean",
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            ValueKind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The boolean, when this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            ValueKind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The map, when this is a block.
    pub fn as_map(&self) -> Option<&Map> {
        match &self.kind {
            ValueKind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The elements, when this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match &self.kind {
            ValueKind::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// One `key: value` of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key as written (quotes removed).
    pub key: String,
    /// Where the key was written.
    pub key_pos: Pos,
    /// The value.
    pub value: Value,
    /// Whether the entry was referenced as a `$VARIABLE`; such entries are not reported as
    /// unknown keys (nats-server does the same).
    pub used_as_variable: bool,
}

/// A block's entries in the order they were first written. Assigning a key again replaces
/// its value in place, as nats-server does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<Entry>,
}

impl Map {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key` (exact match).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    /// The entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Iterates over `(key, value)` pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|e| (e.key.as_str(), &e.value))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets `key` to `value`, replacing (in place) an earlier value of the same key.
    pub fn insert(&mut self, key: String, key_pos: Pos, value: Value) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            e.key_pos = key_pos;
            e.value = value;
        } else {
            self.entries.push(Entry {
                key,
                key_pos,
                value,
                used_as_variable: false,
            });
        }
    }

    /// Looks `key` up for a `$key` reference, marking the entry as used.
    pub(crate) fn lookup_variable(&mut self, key: &str) -> Option<&Value> {
        let e = self.entries.iter_mut().find(|e| e.key == key)?;
        e.used_as_variable = true;
        Some(&e.value)
    }

    /// Moves every entry of `other` into this map (later keys replace earlier ones).
    pub(crate) fn merge(&mut self, other: Map) {
        for e in other.entries {
            let used = e.used_as_variable;
            self.insert(e.key.clone(), e.key_pos, e.value);
            if used {
                if let Some(mine) = self.entries.iter_mut().find(|m| m.key == e.key) {
                    mine.used_as_variable = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32) -> Pos {
        Pos::new(Arc::from("t.conf"), line, 1)
    }

    #[test]
    fn insert_keeps_first_position_in_order_and_last_value() {
        let mut m = Map::new();
        m.insert("a".into(), pos(1), Value::new(ValueKind::Int(1), pos(1)));
        m.insert("b".into(), pos(2), Value::new(ValueKind::Int(2), pos(2)));
        m.insert("a".into(), pos(3), Value::new(ValueKind::Int(3), pos(3)));
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a").and_then(Value::as_int), Some(3));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn pos_displays_as_file_line_col() {
        assert_eq!(
            Pos::new(Arc::from("nats.conf"), 3, 7).to_string(),
            "nats.conf:3:7"
        );
    }
}
