//! Character-level lexing of nats.conf (nats-server's `conf/lex.go`): positions, whitespace
//! and comments, keys, `include` paths, and scalar values (quoted, bare and block strings,
//! integers with size suffixes, floats, booleans, `$VARIABLE` references).
//!
//! The lexer is driven by the parser, which knows whether a key, a value or a terminator
//! comes next; the lexer never looks further than the token it is asked for.

use std::sync::Arc;

use super::error::ConfigError;
use super::value::Pos;

/// A scalar token (blocks and arrays are recognised by the parser).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A quoted, bare or block string.
    Str(String),
    /// An integer; `raw` is the text as written when it had a size suffix.
    Int { value: i64, raw: Option<String> },
    /// A float.
    Float(f64),
    /// A boolean word.
    Bool(bool),
    /// A `$NAME` reference (the name, without `$`).
    Var(String),
}

/// A cursor over the text of one file, tracking line and column.
pub(crate) struct Lexer {
    chars: Vec<char>,
    idx: usize,
    line: u32,
    col: u32,
    file: Arc<str>,
}

/// Characters that end a bare (unquoted) value, as in nats-server.
fn ends_bare_value(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | ';' | ',' | ']' | '}')
}

/// Characters that end a bare key.
fn ends_bare_key(c: char) -> bool {
    c.is_whitespace() || matches!(c, ':' | '=' | '{' | '[' | '}' | ']' | ',' | ';')
}

/// Whether `c` is a newline character (`\r` counts, as in nats-server).
pub(crate) fn is_nl(c: char) -> bool {
    c == '\n' || c == '\r'
}

/// Bcrypt hashes start with `$2a$` (or `$2b$`, `$2x$`, `$2y$`) and are not variables.
fn is_bcrypt(word: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| word.starts_with(p))
}

/// Multiplier of a size suffix, lower-cased (`k`, `kb`, `ki`, `kib`, ...), as nats-server.
fn suffix_multiplier(suffix: &str) -> Option<i64> {
    let (decimal, binary): (i64, i64) = match suffix.chars().next()? {
        'k' => (1_000, 1 << 10),
        'm' => (1_000_000, 1 << 20),
        'g' => (1_000_000_000, 1 << 30),
        't' => (1_000_000_000_000, 1 << 40),
        'p' => (1_000_000_000_000_000, 1 << 50),
        'e' => (1_000_000_000_000_000_000, 1 << 60),
        _ => return None,
    };
    match &suffix[1..] {
        "" => Some(decimal),
        "b" | "i" | "ib" => Some(binary),
        _ => None,
    }
}

/// Classifies a bare word that starts like a number. `None` means it is a plain string
/// (an IP address, a datetime, `500ms`, ...).
fn number(word: &str) -> Option<Result<Tok, String>> {
    let body = word.strip_prefix('-').unwrap_or(word);
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (int_part, rest) = word.split_at(word.len() - body.len() + digits);
    if rest.is_empty() {
        return Some(
            int_part
                .parse::<i64>()
                .map(|value| Tok::Int { value, raw: None })
                .map_err(|_| format!("integer '{word}' is out of range")),
        );
    }
    if let Some(frac) = rest.strip_prefix('.') {
        if !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()) {
            return Some(
                word.parse::<f64>()
                    .map(Tok::Float)
                    .map_err(|_| format!("float '{word}' is out of range")),
            );
        }
        return None;
    }
    let mult = suffix_multiplier(&rest.to_ascii_lowercase())?;
    let Ok(n) = int_part.parse::<i64>() else {
        return Some(Err(format!("integer '{word}' is out of range")));
    };
    Some(
        n.checked_mul(mult)
            .map(|value| Tok::Int {
                value,
                raw: Some(word.to_string()),
            })
            .ok_or_else(|| format!("integer '{word}' is out of range")),
    )
}

/// Reads `text` as nats.conf would read an unquoted integer (`4222`, `1G`, `64KB`).
pub(crate) fn parse_int_text(text: &str) -> Option<i64> {
    match number(text.trim()) {
        Some(Ok(Tok::Int { value, .. })) => Some(value),
        _ => None,
    }
}

/// Classifies a bare word without escapes: boolean, variable, number or string.
fn classify(word: String) -> Result<Tok, String> {
    match word.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => return Ok(Tok::Bool(true)),
        "false" | "no" | "off" => return Ok(Tok::Bool(false)),
        _ => {}
    }
    if let Some(name) = word.strip_prefix('$') {
        if is_bcrypt(&word) {
            return Ok(Tok::Str(word));
        }
        if name.is_empty() {
            return Err("expected a variable name after '$'".into());
        }
        return Ok(Tok::Var(name.to_string()));
    }
    if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
        if let Some(tok) = number(&word) {
            return tok;
        }
    }
    Ok(Tok::Str(word))
}

impl Lexer {
    /// A lexer over `text`, reporting positions in `file`.
    pub(crate) fn new(text: &str, file: Arc<str>) -> Self {
        Self {
            chars: text.chars().collect(),
            idx: 0,
            line: 1,
            col: 1,
            file,
        }
    }

    /// The position of the next character.
    pub(crate) fn pos(&self) -> Pos {
        Pos::new(self.file.clone(), self.line, self.col)
    }

    /// The next character, not consumed.
    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.idx).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.idx + n).copied()
    }

    /// Consumes one character.
    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.idx += 1;
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }

    /// Whether a `#` or `//` comment starts here.
    pub(crate) fn at_comment(&self) -> bool {
        match self.peek() {
            Some('#') => true,
            Some('/') => self.peek_at(1) == Some('/'),
            _ => false,
        }
    }

    /// Skips a comment up to (not including) the end of its line.
    pub(crate) fn skip_comment(&mut self) {
        while let Some(c) = self.peek() {
            if is_nl(c) {
                break;
            }
            self.bump();
        }
    }

    /// Skips spaces and tabs (not newlines).
    pub(crate) fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Skips whitespace, newlines and comments.
    pub(crate) fn skip_blank(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some(_) if self.at_comment() => self.skip_comment(),
                _ => return,
            }
        }
    }

    /// Whether the next character that is not whitespace or a newline is `c`.
    pub(crate) fn next_nonblank_is(&self, c: char) -> bool {
        self.chars[self.idx..]
            .iter()
            .find(|ch| !ch.is_whitespace())
            .is_some_and(|&ch| ch == c)
    }

    /// Lexes a key: `"quoted"`, `'quoted'` or bare. Returns the key, its position and
    /// whether it was quoted.
    pub(crate) fn key(&mut self) -> Result<(String, Pos, bool), ConfigError> {
        let pos = self.pos();
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let mut key = String::new();
                loop {
                    match self.bump() {
                        Some(c) if c == q => return Ok((key, pos, true)),
                        Some(c) => key.push(c),
                        None => {
                            return Err(ConfigError::syntax(
                                pos,
                                format!("expected a closing {q} for the quoted key"),
                            ))
                        }
                    }
                }
            }
            Some(c) if ends_bare_key(c) => Err(ConfigError::syntax(
                pos,
                format!("expected a key, found '{}'", c.escape_default()),
            )),
            None => Err(ConfigError::syntax(pos, "expected a key")),
            Some(_) => {
                let mut key = String::new();
                while let Some(c) = self.peek() {
                    if ends_bare_key(c) {
                        break;
                    }
                    key.push(c);
                    self.bump();
                }
                Ok((key, pos, false))
            }
        }
    }

    /// Lexes the file name of an `include`: quoted (no escapes) or bare.
    pub(crate) fn include_path(&mut self) -> Result<(String, Pos), ConfigError> {
        let pos = self.pos();
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let mut path = String::new();
                loop {
                    match self.bump() {
                        Some(c) if c == q => break,
                        Some(c) => path.push(c),
                        None => {
                            return Err(ConfigError::syntax(
                                pos,
                                format!("expected a closing {q} for the included file name"),
                            ))
                        }
                    }
                }
                if path.is_empty() {
                    return Err(ConfigError::syntax(
                        pos,
                        "expected a file name after 'include'",
                    ));
                }
                Ok((path, pos))
            }
            None | Some('\n' | '\r' | ';' | '}' | '[' | '{' | '(') => Err(ConfigError::syntax(
                pos,
                "expected a file name after 'include'",
            )),
            Some(_) => {
                let mut path = String::new();
                while let Some(c) = self.peek() {
                    if matches!(c, ' ' | '\t' | '\n' | '\r' | ';' | '}') {
                        break;
                    }
                    path.push(c);
                    self.bump();
                }
                Ok((path, pos))
            }
        }
    }

    /// Lexes a scalar value starting at the next character, which must not be a newline,
    /// the end of input, `[` or `{` (the parser handles those).
    pub(crate) fn scalar(&mut self) -> Result<Tok, ConfigError> {
        let pos = self.pos();
        match self.peek() {
            Some('"') => {
                self.bump();
                self.double_quoted(pos)
            }
            Some('\'') => {
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        Some('\'') => return Ok(Tok::Str(s)),
                        Some(c) => s.push(c),
                        None => {
                            return Err(ConfigError::syntax(
                                pos,
                                "expected a closing ' for the string",
                            ))
                        }
                    }
                }
            }
            Some('(') => {
                self.bump();
                self.block_string(pos)
            }
            _ => self.bare(pos),
        }
    }

    /// A `"..."` string; the opening quote is consumed.
    fn double_quoted(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                Some('"') => {
                    self.bump();
                    return utf8(bytes, pos).map(Tok::Str);
                }
                Some('\\') => self.escape(&mut bytes)?,
                Some(c) => {
                    push_char(&mut bytes, c);
                    self.bump();
                }
                None => {
                    return Err(ConfigError::syntax(
                        pos,
                        "expected a closing \" for the string",
                    ))
                }
            }
        }
    }

    /// A bare word up to a value terminator, with escapes processed.
    fn bare(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        let mut bytes = Vec::new();
        let mut escaped = false;
        while let Some(c) = self.peek() {
            if ends_bare_value(c) {
                break;
            }
            if c == '\\' {
                self.escape(&mut bytes)?;
                escaped = true;
            } else {
                push_char(&mut bytes, c);
                self.bump();
            }
        }
        let word = utf8(bytes, pos.clone())?;
        if escaped {
            return Ok(Tok::Str(word));
        }
        classify(word).map_err(|msg| ConfigError::syntax(pos, msg))
    }

    /// A backslash escape (`\t \n \r \" \\ \xXX`); the next character is the backslash.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), ConfigError> {
        let pos = self.pos();
        self.bump();
        let c = self.bump();
        let plain = match c {
            Some('t') => b'\t',
            Some('n') => b'\n',
            Some('r') => b'\r',
            Some('"') => b'"',
            Some('\\') => b'\\',
            Some('x') => {
                let hex: String = [self.bump(), self.bump()].iter().flatten().collect();
                let valid = hex.len() == 2 && hex.chars().all(|c| c.is_ascii_hexdigit());
                return match u8::from_str_radix(&hex, 16) {
                    Ok(b) if valid => {
                        out.push(b);
                        Ok(())
                    }
                    _ => Err(ConfigError::syntax(
                        pos,
                        format!(
                            "expected two hexadecimal digits after '\\x', found '{}'",
                            hex.escape_default()
                        ),
                    )),
                };
            }
            other => {
                let found = other.map_or("end of input".to_string(), |c| {
                    format!("'\\{}'", c.escape_default())
                });
                return Err(ConfigError::syntax(
                    pos,
                    format!(
                        "invalid escape {found}: only \\xXX, \\t, \\n, \\r, \\\" and \\\\ are allowed"
                    ),
                ));
            }
        };
        out.push(plain);
        Ok(())
    }

    /// A block string `( ... )` ending at a `)` alone at the start of a line; the `(` is
    /// consumed. Its text is everything in between, newlines included (as nats-server).
    fn block_string(&mut self, pos: Pos) -> Result<Tok, ConfigError> {
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(ConfigError::syntax(
                        pos,
                        "expected a ')' alone at the start of a line to close the block string",
                    ))
                }
                Some(')') if s.ends_with('\n') && self.peek_at(1).is_none_or(is_nl) => {
                    self.bump();
                    return Ok(Tok::Str(s));
                }
                Some(c) => {
                    s.push(c);
                    self.bump();
                }
            }
        }
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

fn utf8(bytes: Vec<u8>, pos: Pos) -> Result<String, ConfigError> {
    String::from_utf8(bytes)
        .map_err(|_| ConfigError::syntax(pos, "string is not valid UTF-8 after its \\x escapes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Result<Tok, ConfigError> {
        Lexer::new(text, Arc::from("t")).scalar()
    }

    fn int(v: i64) -> Tok {
        Tok::Int {
            value: v,
            raw: None,
        }
    }

    #[test]
    fn numbers_and_suffixes() {
        assert_eq!(lex("42").ok(), Some(int(42)));
        assert_eq!(lex("-7").ok(), Some(int(-7)));
        assert_eq!(lex("1.5").ok(), Some(Tok::Float(1.5)));
        let sized = |s: &str| match lex(s) {
            Ok(Tok::Int { value, raw }) => {
                assert_eq!(raw.as_deref(), Some(s));
                Some(value)
            }
            _ => None,
        };
        let cases: &[(&str, i64)] = &[
            ("1k", 1_000),
            ("1K", 1_000),
            ("1kb", 1024),
            ("1KB", 1024),
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("2m", 2_000_000),
            ("2MB", 2 << 20),
            ("2mi", 2 << 20),
            ("2MiB", 2 << 20),
            ("1G", 1_000_000_000),
            ("1gb", 1 << 30),
            ("1gib", 1 << 30),
            ("3t", 3_000_000_000_000),
            ("3TB", 3 << 40),
            ("1p", 1_000_000_000_000_000),
            ("1PiB", 1 << 50),
            ("1e", 1_000_000_000_000_000_000),
            ("1EB", 1 << 60),
            ("-1k", -1000),
        ];
        for &(text, want) in cases {
            assert_eq!(sized(text), Some(want), "{text}");
        }
    }

    #[test]
    fn number_like_words_are_strings() {
        for s in [
            "127.0.0.1:4222",
            "500ms",
            "1h30m",
            "30s",
            "1kbb",
            "2024-01-02T03:04:05Z",
            "1.",
            "-x",
        ] {
            assert_eq!(lex(s).ok(), Some(Tok::Str(s.into())), "{s}");
        }
    }

    #[test]
    fn out_of_range_integers_are_errors() {
        assert!(lex("99999999999999999999").is_err());
        assert!(lex("9999999999E").is_err());
    }

    #[test]
    fn booleans_variables_and_bcrypt() {
        for (s, b) in [
            ("true", true),
            ("YES", true),
            ("on", true),
            ("false", false),
            ("No", false),
            ("OFF", false),
        ] {
            assert_eq!(lex(s).ok(), Some(Tok::Bool(b)));
        }
        assert_eq!(lex("$FOO").ok(), Some(Tok::Var("FOO".into())));
        let hash = "$2a$11$W2zko751KUvVy59mUTWmpOdWjQ1sCNJ1F/UAp8Q09bsAQxBRsZOMC";
        assert_eq!(lex(hash).ok(), Some(Tok::Str(hash.into())));
        assert!(lex("$ ").is_err());
        assert_eq!(lex("\"true\"").ok(), Some(Tok::Str("true".into())));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            lex(r#""a\tb\n\"c\"\\\x41""#).ok(),
            Some(Tok::Str("a\tb\n\"c\"\\A".into()))
        );
        assert_eq!(lex(r"'raw \t'").ok(), Some(Tok::Str(r"raw \t".into())));
        assert_eq!(lex("bare,rest").ok(), Some(Tok::Str("bare".into())));
        assert_eq!(lex(r"a\x41b").ok(), Some(Tok::Str("aAb".into())));
        assert!(lex(r#""\q""#).is_err());
        assert!(lex(r#""\x4""#).is_err());
        assert!(lex(r#""\xff""#).is_err());
        assert!(lex("\"open").is_err());
        assert!(lex("'open").is_err());
    }

    #[test]
    fn block_strings_end_at_a_lone_paren() {
        assert_eq!(
            lex("(\n  a (b)\n  c)\n)\nrest").ok(),
            Some(Tok::Str("\n  a (b)\n  c)\n".into()))
        );
        assert_eq!(lex("(\nx\n)").ok(), Some(Tok::Str("\nx\n".into())));
        assert!(lex("(\nx )").is_err());
    }

    #[test]
    fn positions_count_lines_and_columns() {
        let mut lx = Lexer::new("a\n  bc", Arc::from("f"));
        lx.skip_blank();
        lx.bump();
        lx.skip_blank();
        assert_eq!(lx.pos().to_string(), "f:2:3");
    }
}
