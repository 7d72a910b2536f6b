//! Query parameters read the way nats-server reads them (`r.URL.Query().Get`): the first
//! value of a name, an empty value meaning "not given", booleans per Go's
//! `strconv.ParseBool` and integers per `strconv.Atoi`, with nats-server's 400 texts.

use axum::http::StatusCode;
use axum::response::Response;

use crate::format::error;

/// The query string of one request.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub Vec<(String, String)>);

/// A parameter that does not parse: answered with 400 and nats-server's text.
pub(crate) struct BadParam(pub String);

impl BadParam {
    /// The 400 response.
    pub fn response(self) -> Response {
        error(StatusCode::BAD_REQUEST, &self.0)
    }
}

impl Params {
    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// `name` as a Go boolean; `false` when absent.
    pub fn bool(&self, name: &str) -> Result<bool, BadParam> {
        match self.get(name) {
            None => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| {
                BadParam(format!(
                    "Error decoding boolean for '{name}': strconv.ParseBool: parsing \"{v}\": invalid syntax"
                ))
            }),
        }
    }

    /// `name` as a Go int; `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64, BadParam> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<i64>().map_err(|_| {
                BadParam(format!(
                    "Error decoding int for '{name}': strconv.Atoi: parsing \"{v}\": invalid syntax"
                ))
            }),
        }
    }

    /// `offset` and `limit` (limit 0 or absent: `default_limit`; negatives count as 0;
    /// at most [`MAX_LIMIT`], so one request cannot ask for an unbounded page).
    pub fn paging(&self, default_limit: usize) -> Result<(usize, usize), BadParam> {
        let offset = usize::try_from(self.int("offset", 0)?).unwrap_or(0);
        let limit = match usize::try_from(self.int("limit", 0)?).unwrap_or(0) {
            0 => default_limit,
            n => n.min(MAX_LIMIT),
        };
        Ok((offset, limit))
    }
}

/// Largest page a request can ask for.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The `offset..offset+limit` window of `items` (empty past the end).
pub(crate) fn page<T>(mut items: Vec<T>, offset: usize, limit: usize) -> Vec<T> {
    if offset >= items.len() {
        return Vec::new();
    }
    items.drain(..offset);
    items.truncate(limit);
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Params {
        Params(
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn go_booleans() {
        let p = params(&[("a", "1"), ("b", "False"), ("c", ""), ("d", "yes")]);
        assert!(p.bool("a").unwrap_or(false));
        assert!(!p.bool("b").unwrap_or(true));
        assert!(!p.bool("c").unwrap_or(true), "empty means absent");
        assert!(!p.bool("missing").unwrap_or(true));
        let Err(BadParam(text)) = p.bool("d") else {
            panic!("yes is not a Go boolean");
        };
        assert_eq!(
            text,
            "Error decoding boolean for 'd': strconv.ParseBool: parsing \"yes\": invalid syntax"
        );
    }

    #[test]
    fn paging_defaults() {
        assert_eq!(params(&[]).paging(1024).ok(), Some((0, 1024)));
        let p = params(&[("offset", "2"), ("limit", "0")]);
        assert_eq!(p.paging(1024).ok(), Some((2, 1024)));
        assert!(params(&[("limit", "x")]).paging(1024).is_err());
        assert_eq!(
            params(&[("limit", "99999999999")]).paging(1024).ok(),
            Some((0, MAX_LIMIT))
        );
        assert_eq!(page(vec![1, 2, 3, 4], 1, 2), vec![2, 3]);
        assert!(page(vec![1, 2], 5, 2).is_empty());
    }
}
