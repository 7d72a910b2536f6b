//! The structure of nats.conf (nats-server's `conf/parse.go`): `key: value` entries,
//! blocks and arrays, value terminators, `include` files and `$VARIABLE` resolution.
//!
//! Grammar, as nats-server accepts it:
//! - an entry is `key: value`, `key = value` or `key value`; it ends at a newline, `,`, `;`,
//!   a comment, or the `}` closing its block;
//! - the whole file may be wrapped in `{ }`;
//! - arrays `[ ]` separate their elements with commas or newlines (a trailing comma is fine);
//! - `include <path>` may stand wherever a key may; the path is relative to the including
//!   file, and the included file's keys are merged into the enclosing block. Like
//!   nats-server, an included file is parsed on its own: it does not see the includer's
//!   variables;
//! - `$NAME` takes the value of `NAME` from the innermost enclosing block that defined it
//!   earlier, else from the environment (whose text is parsed as a value, or taken verbatim
//!   when it is not a single value).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::ConfigError;
use super::lexer::{is_nl, Lexer, Tok};
use super::value::{Map, Pos, Value, ValueKind};

/// Deepest nesting of blocks and arrays (environment values and includes included).
const MAX_DEPTH: usize = 64;
/// Deepest chain of includes.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Parses `text` as a nats.conf file called `name`. Includes are resolved relative to the
/// directory part of `name` (the current directory when it has none).
pub fn parse_str(text: &str, name: &str) -> Result<Map, ConfigError> {
    let dir = Path::new(name)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut shared = Shared::default();
    Parser::new(text, Arc::from(name), dir, &mut shared).document()
}

/// Reads and parses the nats.conf file at `path`.
pub fn parse_file(path: &Path) -> Result<Map, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.display().to_string(),
        cause,
    })?;
    let mut shared = Shared::default();
    if let Ok(canonical) = path.canonicalize() {
        shared.includes.push(canonical);
    }
    parse_str_shared(&text, path, &mut shared)
}

fn parse_str_shared(text: &str, path: &Path, shared: &mut Shared) -> Result<Map, ConfigError> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name: Arc<str> = Arc::from(path.display().to_string());
    Parser::new(text, name, dir, shared).document()
}

/// State shared by a file, the files it includes and the environment values it reads.
#[derive(Default)]
struct Shared {
    /// Environment variables being resolved (to detect cycles).
    env_refs: Vec<String>,
    /// Canonical paths of the files being parsed (to detect include cycles).
    includes: Vec<PathBuf>,
    /// Current nesting of blocks and arrays.
    depth: usize,
}

/// What a missing value was expected after, for the error message.
#[derive(Clone, Copy)]
enum After<'k> {
    /// `key:` or `key =`.
    Separator(char),
    /// `key value` with no separator.
    Key(&'k str),
    /// An array element.
    Array,
    /// The text of an environment variable.
    Env,
}

struct Parser<'s> {
    lx: Lexer,
    /// The blocks being filled, outermost first; variables are looked up through them.
    scopes: Vec<Map>,
    /// Directory that relative includes are resolved against.
    dir: PathBuf,
    shared: &'s mut Shared,
}

impl<'s> Parser<'s> {
    fn new(text: &str, file: Arc<str>, dir: PathBuf, shared: &'s mut Shared) -> Self {
        Self {
            lx: Lexer::new(text, file),
            scopes: Vec::new(),
            dir,
            shared,
        }
    }

    /// A whole file: entries, optionally wrapped in `{ }`.
    fn document(mut self) -> Result<Map, ConfigError> {
        self.scopes.push(Map::new());
        self.lx.skip_blank();
        if self.lx.peek() == Some('{') {
            let open = self.lx.pos();
            self.lx.bump();
            self.entries(Some(&open))?;
            self.lx.skip_blank();
            if let Some(c) = self.lx.peek() {
                return Err(ConfigError::syntax(
                    self.lx.pos(),
                    format!(
                        "expected the end of the file after the closing '}}', found '{}'",
                        c.escape_default()
                    ),
                ));
            }
        } else {
            self.entries(None)?;
        }
        Ok(self.scopes.pop().unwrap_or_default())
    }

    /// Entries up to the `}` closing the block opened at `open` (consumed), or to the end
    /// of the input at the top level.
    fn entries(&mut self, open: Option<&Pos>) -> Result<(), ConfigError> {
        loop {
            self.lx.skip_blank();
            let pos = self.lx.pos();
            match (self.lx.peek(), open) {
                (None, None) => return Ok(()),
                (None, Some(open)) => {
                    return Err(ConfigError::syntax(
                        pos,
                        format!(
                            "expected '}}' to close the block opened at {}:{}",
                            open.line, open.col
                        ),
                    ))
                }
                (Some('}'), Some(_)) => {
                    self.lx.bump();
                    return Ok(());
                }
                (Some('}'), None) => {
                    return Err(ConfigError::syntax(pos, "unexpected '}': no block is open"))
                }
                (Some(_), _) => self.entry(open.is_some())?,
            }
        }
    }

    /// One `key: value`, or an `include`.
    fn entry(&mut self, in_block: bool) -> Result<(), ConfigError> {
        let (key, key_pos, quoted) = self.lx.key()?;
        if !quoted
            && key.eq_ignore_ascii_case("include")
            && matches!(self.lx.peek(), Some(' ' | '\t'))
        {
            self.lx.skip_ws();
            if !matches!(self.lx.peek(), Some(':' | '=')) {
                self.include()?;
                return self.value_end(&key, in_block);
            }
        }
        self.lx.skip_ws();
        let sep = match self.lx.peek() {
            Some(c @ (':' | '=')) => {
                self.lx.bump();
                Some(c)
            }
            _ => None,
        };
        self.lx.skip_ws();
        // `key` then `{` on the next line (no separator) is a block, as in nats-server.
        if sep.is_none() && self.lx.peek().is_some_and(is_nl) && self.lx.next_nonblank_is('{') {
            self.lx.skip_blank();
        }
        let after = sep.map_or(After::Key(&key), After::Separator);
        let value = self.value(after)?;
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(key.clone(), key_pos, value);
        }
        self.value_end(&key, in_block)
    }

    /// What may follow a value in a block: spaces, then a newline, `,`, `;`, a comment,
    /// the end of the input, or (in a block) the closing `}`.
    fn value_end(&mut self, key: &str, in_block: bool) -> Result<(), ConfigError> {
        self.lx.skip_ws();
        match self.lx.peek() {
            None => Ok(()),
            Some('\n' | '\r' | ',' | ';') => {
                self.lx.bump();
                Ok(())
            }
            Some('}') if in_block => Ok(()),
            Some(_) if self.lx.at_comment() => {
                self.lx.skip_comment();
                Ok(())
            }
            Some(c) => Err(ConfigError::syntax(
                self.lx.pos(),
                format!(
                    "expected a newline, ',' or ';' after the value of '{key}', found '{}'",
                    c.escape_default()
                ),
            )),
        }
    }

    /// A value of any kind, after optional spaces.
    fn value(&mut self, after: After<'_>) -> Result<Value, ConfigError> {
        self.lx.skip_ws();
        let pos = self.lx.pos();
        match self.lx.peek() {
            None | Some('\n' | '\r' | ',' | ';' | '}' | ']') => {
                let msg = match after {
                    After::Separator(c) => format!("expected a value after '{c}'"),
                    After::Key(k) => format!("expected a value after key '{k}'"),
                    After::Array => "expected an array element".to_string(),
                    After::Env => "expected a value".to_string(),
                };
                Err(ConfigError::syntax(pos, msg))
            }
            Some('{') => {
                self.lx.bump();
                self.nested(&pos, |p, open| {
                    p.scopes.push(Map::new());
                    p.entries(Some(open))?;
                    let map = p.scopes.pop().unwrap_or_default();
                    Ok(ValueKind::Map(map))
                })
            }
            Some('[') => {
                self.lx.bump();
                self.nested(&pos, Self::array)
            }
            Some(_) => match self.lx.scalar()? {
                Tok::Str(s) => Ok(Value::new(ValueKind::String(s), pos)),
                Tok::Int { value, raw } => Ok(Value {
                    kind: ValueKind::Int(value),
                    pos,
                    raw,
                }),
                Tok::Float(f) => Ok(Value::new(ValueKind::Float(f), pos)),
                Tok::Bool(b) => Ok(Value::new(ValueKind::Bool(b), pos)),
                Tok::Var(name) => self.variable(name, pos),
            },
        }
    }

    /// Runs `inner` one nesting level deeper, refusing pathological depths.
    fn nested(
        &mut self,
        open: &Pos,
        inner: impl FnOnce(&mut Self, &Pos) -> Result<ValueKind, ConfigError>,
    ) -> Result<Value, ConfigError> {
        if self.shared.depth >= MAX_DEPTH {
            return Err(ConfigError::syntax(
                open.clone(),
                format!("blocks and arrays are nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.shared.depth += 1;
        let kind = inner(self, open);
        self.shared.depth -= 1;
        Ok(Value::new(kind?, open.clone()))
    }

    /// The elements of an array whose `[` (at `open`) is consumed, up to its `]`.
    fn array(&mut self, open: &Pos) -> Result<ValueKind, ConfigError> {
        let unclosed = |pos: Pos| {
            ConfigError::syntax(
                pos,
                format!(
                    "expected ']' to close the array opened at {}:{}",
                    open.line, open.col
                ),
            )
        };
        let mut items = Vec::new();
        loop {
            self.lx.skip_blank();
            match self.lx.peek() {
                None => return Err(unclosed(self.lx.pos())),
                Some(']') => {
                    self.lx.bump();
                    return Ok(ValueKind::Array(items));
                }
                Some(',') => {
                    return Err(ConfigError::syntax(
                        self.lx.pos(),
                        "unexpected ',' in array: expected an element or ']'",
                    ))
                }
                Some(_) => {}
            }
            items.push(self.value(After::Array)?);
            self.lx.skip_ws();
            match self.lx.peek() {
                None => return Err(unclosed(self.lx.pos())),
                Some(',' | '\n' | '\r') => {
                    self.lx.bump();
                }
                Some(']') => {
                    self.lx.bump();
                    return Ok(ValueKind::Array(items));
                }
                Some(_) if self.lx.at_comment() => self.lx.skip_comment(),
                Some(c) => {
                    return Err(ConfigError::syntax(
                        self.lx.pos(),
                        format!(
                            "expected ',', a newline or ']' after an array element, found '{}'",
                            c.escape_default()
                        ),
                    ))
                }
            }
        }
    }

    /// Resolves `$name` referenced at `pos`: enclosing blocks first, then the environment.
    fn variable(&mut self, name: String, pos: Pos) -> Result<Value, ConfigError> {
        for scope in self.scopes.iter_mut().rev() {
            if let Some(v) = scope.lookup_variable(&name) {
                let mut v = v.clone();
                v.pos = pos;
                return Ok(v);
            }
        }
        // Names std::env cannot look up cannot be environment variables.
        if name.contains(['=', '\0']) {
            return Err(ConfigError::UnknownVariable { pos, name });
        }
        if self.shared.env_refs.contains(&name) {
            return Err(ConfigError::VariableCycle { pos, name });
        }
        let Some(text) = std::env::var_os(&name) else {
            return Err(ConfigError::UnknownVariable { pos, name });
        };
        let text = text.to_string_lossy().into_owned();
        self.shared.env_refs.push(name.clone());
        let parsed = self.env_value(&text, &name);
        self.shared.env_refs.pop();
        match parsed {
            Ok(mut v) => {
                v.pos = pos;
                Ok(v)
            }
            // Variables inside the environment value: report them at the reference.
            Err(ConfigError::UnknownVariable { name, .. }) => {
                Err(ConfigError::UnknownVariable { pos, name })
            }
            Err(ConfigError::VariableCycle { name, .. }) => {
                Err(ConfigError::VariableCycle { pos, name })
            }
            // Not a single config value (e.g. a password with spaces): take it verbatim.
            Err(_) => Ok(Value::new(ValueKind::String(text), pos)),
        }
    }

    /// Parses the text of environment variable `name` as one value.
    fn env_value(&mut self, text: &str, name: &str) -> Result<Value, ConfigError> {
        let file: Arc<str> = Arc::from(format!("${name} (environment)"));
        let mut sub = Parser::new(text, file, self.dir.clone(), self.shared);
        let value = sub.value(After::Env)?;
        sub.lx.skip_blank();
        match sub.lx.peek() {
            None => Ok(value),
            Some(_) => Err(ConfigError::syntax(sub.lx.pos(), "expected a single value")),
        }
    }

    /// `include <path>` (the keyword consumed): parses the file and merges its keys into
    /// the current block.
    fn include(&mut self) -> Result<(), ConfigError> {
        let (text_path, pos) = self.lx.include_path()?;
        let path = self.dir.join(&text_path);
        if self.shared.includes.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::syntax(
                pos,
                format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep"),
            ));
        }
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if self.shared.includes.contains(&canonical) {
            return Err(ConfigError::syntax(
                pos,
                format!("include cycle: '{}' includes itself", path.display()),
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|cause| ConfigError::Include {
            pos: pos.clone(),
            path: path.display().to_string(),
            cause,
        })?;
        self.shared.includes.push(canonical);
        let included = parse_str_shared(&text, &path, self.shared);
        self.shared.includes.pop();
        let map = included?;
        if let Some(scope) = self.scopes.last_mut() {
            scope.merge(map);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Map {
        match parse_str(text, "t.conf") {
            Ok(m) => m,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match parse_str(text, "t.conf") {
            Ok(m) => panic!("{text:?} parsed: {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn int(m: &Map, k: &str) -> Option<i64> {
        m.get(k).and_then(Value::as_int)
    }

    #[test]
    fn separators_and_terminators() {
        let m = parse("a: 1\nb = 2\nc 3; d: 4, e: 5\n");
        let keys: Vec<&str> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e"]);
        assert_eq!(int(&m, "e"), Some(5));
    }

    #[test]
    fn braced_top_level_and_nesting() {
        let m = parse("{\n  a { b: [1, 2\n 3,], c: {d: x} }\n}\n");
        let a = m.get("a").and_then(Value::as_map).expect("a");
        assert_eq!(
            a.get("b").and_then(Value::as_array).map(<[Value]>::len),
            Some(3)
        );
        let d = a.get("c").and_then(Value::as_map).and_then(|c| c.get("d"));
        assert_eq!(d.and_then(Value::as_str), Some("x"));
    }

    #[test]
    fn block_on_next_line() {
        let m = parse("jetstream\n{\n  store_dir: /x\n}\n");
        assert!(m.get("jetstream").and_then(Value::as_map).is_some());
    }

    #[test]
    fn positions_of_values() {
        let m = parse("# c\n  port: 4222\n");
        let v = m.get("port").expect("port");
        assert_eq!(v.pos.to_string(), "t.conf:2:9");
    }

    #[test]
    fn variables_scope_through_blocks_and_arrays() {
        let m = parse("A: 1\nb { A: 2, x: $A }\nc: [ { y: $A } ]\nz: $A\n");
        let b = m.get("b").and_then(Value::as_map).expect("b");
        assert_eq!(int(b, "x"), Some(2));
        let c = m.get("c").and_then(Value::as_array).expect("c");
        assert_eq!(c[0].as_map().and_then(|m| int(m, "y")), Some(1));
        assert_eq!(int(&m, "z"), Some(1));
        assert!(m.entries()[0].used_as_variable);
    }

    #[test]
    fn variable_takes_reference_position() {
        let m = parse("A: 1\nb: $A\n");
        assert_eq!(
            m.get("b").map(|v| v.pos.to_string()).as_deref(),
            Some("t.conf:2:4")
        );
    }

    #[test]
    fn unknown_variable_names_it() {
        let e = err("a: 1\nb: $PETREL_SURELY_UNDEFINED_VAR\n");
        assert_eq!(
            e,
            "t.conf:2:4: unknown variable '$PETREL_SURELY_UNDEFINED_VAR' (not defined in an enclosing block nor in the environment)"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let text = format!("a: {}", "[".repeat(10_000));
        assert!(err(&text).contains("nested more than"));
        let text = format!("a: {}", "{b: ".repeat(10_000));
        assert!(err(&text).contains("nested more than"));
    }
}
