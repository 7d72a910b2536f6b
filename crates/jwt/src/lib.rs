//! NATS JWTs as nats-io/jwt (version 2) writes them: `header.claims.signature`, each part
//! base64url without padding, the signature an ed25519 nkey signature of
//! `header.claims` by the issuer (`iss`). [`decode`] checks the form, the algorithm, the
//! claim type and the signature against `iss`; the caller checks who may issue what, and
//! times ([`Claims::expired`]). [`encode`] writes JWTs (for tests and tools), and
//! [`parse_creds`] reads a `.creds` file.
//!
//! The parser takes untrusted input (tokens in CONNECT, claim updates): every step fails
//! with a [`JwtError`], never a panic, and tokens above [`MAX_TOKEN`] are refused before
//! they are decoded.

mod claims;
mod creds;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

pub use claims::{
    Account, AccountLimits, Activation, Claims, Export, Generic, Import, JetStreamTier, Operator,
    Permission, Permissions, ResponsePermission, ScopedKey, SigningKey, User, UserLimits, NO_LIMIT,
};
pub use creds::{format_creds, parse_creds, parse_decorated, Creds};

/// The largest token decoded (nats-server reads account JWTs of up to 1 MiB).
pub const MAX_TOKEN: usize = 1 << 20;

/// Why a JWT was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// Not three dot-separated parts, or larger than [`MAX_TOKEN`].
    #[error("invalid JWT format")]
    Format,
    /// A part is not base64url, or not the JSON expected.
    #[error("invalid JWT encoding: {0}")]
    Encoding(String),
    /// The header names another type or algorithm.
    #[error("unsupported JWT header (typ {typ:?}, alg {alg:?})")]
    Header {
        /// `typ`.
        typ: String,
        /// `alg`.
        alg: String,
    },
    /// The claims are of another kind (`nats.type`).
    #[error("expected {want} claims, got {got:?}")]
    Kind {
        /// The kind wanted.
        want: &'static str,
        /// The kind found.
        got: String,
    },
    /// `iss` is not a public nkey of the kind that may issue these claims.
    #[error("invalid issuer {0:?}")]
    Issuer(String),
    /// The signature does not verify with `iss`.
    #[error("JWT signature verification failed")]
    Signature,
    /// Signing failed (tools and tests only).
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
}

/// Which nkey prefixes may issue claims whose subject has this prefix.
fn may_issue(kind: &str, iss: &str) -> bool {
    let prefix = match kind {
        "generic" => return true,
        "operator" => 'O',
        "account" => 'O',
        "user" | "activation" => 'A',
        _ => return false,
    };
    iss.starts_with(prefix)
}

/// The kind of claims a type stands for.
pub trait Kind {
    /// `nats.type`.
    const KIND: &'static str;
    /// The claims' `type` as read.
    fn kind(&self) -> &str;
}

impl Kind for Operator {
    const KIND: &'static str = "operator";
    fn kind(&self) -> &str {
        &self.kind
    }
}
impl Kind for Account {
    const KIND: &'static str = "account";
    fn kind(&self) -> &str {
        &self.kind
    }
}
impl Kind for Generic {
    const KIND: &'static str = "generic";
    /// Any type: a generic JWT is whatever its issuer signed.
    fn kind(&self) -> &str {
        Self::KIND
    }
}
impl Kind for Activation {
    const KIND: &'static str = "activation";
    fn kind(&self) -> &str {
        &self.kind
    }
}
impl Kind for User {
    const KIND: &'static str = "user";
    fn kind(&self) -> &str {
        &self.kind
    }
}

/// Decode `token`, check its header, kind and signature (by `iss`).
pub fn decode<T: DeserializeOwned + Kind>(token: &str) -> Result<Claims<T>, JwtError> {
    let token = token.trim();
    if token.len() > MAX_TOKEN {
        return Err(JwtError::Format);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Format);
    };
    let header: Header = json(&b64(h)?)?;
    if !header.typ.eq_ignore_ascii_case("jwt")
        || !matches!(header.alg.as_str(), "ed25519-nkey" | "ed25519")
    {
        return Err(JwtError::Header {
            typ: header.typ,
            alg: header.alg,
        });
    }
    let claims: Claims<T> = json(&b64(c)?)?;
    if claims.nats.kind() != T::KIND {
        return Err(JwtError::Kind {
            want: T::KIND,
            got: claims.nats.kind().to_string(),
        });
    }
    if !may_issue(T::KIND, &claims.iss) {
        return Err(JwtError::Issuer(claims.iss));
    }
    let key = nkeys::KeyPair::from_public_key(&claims.iss)
        .map_err(|_| JwtError::Issuer(claims.iss.clone()))?;
    let sig = b64(s)?;
    let signed = &token[..h.len() + 1 + c.len()];
    key.verify(signed.as_bytes(), &sig)
        .map_err(|_| JwtError::Signature)?;
    Ok(claims)
}

/// Decode `token`'s claims without checking anything: for the `sub` of a token that is
/// then decoded properly, and for messages about tokens that failed.
pub fn peek_subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    let c = token.trim().split('.').nth(1)?;
    let sub: Sub = serde_json::from_slice(&b64(c).ok()?).ok()?;
    Some(sub.sub)
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| JwtError::Encoding(e.to_string()))
}

fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JwtError> {
    serde_json::from_slice(bytes).map_err(|e| JwtError::Encoding(e.to_string()))
}

impl<T> Claims<T> {
    /// Whether it has expired, or is not valid yet, at `now` (Unix seconds).
    pub fn expired(&self, now: i64) -> bool {
        self.exp.is_some_and(|e| e > 0 && now >= e) || self.nbf.is_some_and(|n| n > 0 && now < n)
    }
}

impl<T: Serialize + Kind> Claims<T> {
    /// Claims of `sub` issued now by nobody yet (`encode` fills `iss`, `iat` and `jti`).
    pub fn new(sub: impl Into<String>, name: impl Into<String>, nats: T) -> Self {
        Claims {
            jti: String::new(),
            iat: 0,
            iss: String::new(),
            name: name.into(),
            sub: sub.into(),
            exp: None,
            nbf: None,
            nats,
        }
    }
}

/// Sign `claims` with `issuer` (sets `iss`, `iat` when 0, and `jti`) as nats-io/jwt does.
pub fn encode<T: Serialize + Kind>(
    claims: &mut Claims<T>,
    issuer: &nkeys::KeyPair,
    now: i64,
) -> Result<String, JwtError> {
    claims.iss = issuer.public_key();
    if claims.iat == 0 {
        claims.iat = now;
    }
    claims.jti.clear();
    let body = serde_json::to_vec(claims).map_err(|e| JwtError::Encoding(e.to_string()))?;
    claims.jti = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(&body));
    let body = serde_json::to_vec(claims).map_err(|e| JwtError::Encoding(e.to_string()))?;
    let header = serde_json::to_vec(&Header {
        typ: "JWT".into(),
        alg: "ed25519-nkey".into(),
    })
    .map_err(|e| JwtError::Encoding(e.to_string()))?;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(body)
    );
    let sig = issuer
        .sign(signed.as_bytes())
        .map_err(|e| JwtError::Sign(e.to_string()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

#[cfg(test)]
mod tests;
