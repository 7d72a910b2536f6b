//! The claims of NATS JWTs (version 2), with nats-io/jwt's JSON field names: what an
//! operator, an account and a user JWT say. Absent limits are -1 (unlimited), as in
//! nats-io/jwt.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The fields every NATS JWT has, with the kind-specific `nats` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims<T> {
    /// Unique id: base32 of the SHA-512/256 of the claims without it.
    #[serde(default)]
    pub jti: String,
    /// Issued at, Unix seconds.
    #[serde(default)]
    pub iat: i64,
    /// The public nkey that signed it.
    pub iss: String,
    /// A name for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The public nkey it is about.
    pub sub: String,
    /// Expires at, Unix seconds (absent or 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Not valid before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// What the kind of JWT says.
    pub nats: T,
}

/// Unlimited, in nats-io/jwt's limits.
pub const NO_LIMIT: i64 = -1;

fn no_limit() -> i64 {
    NO_LIMIT
}

/// nats-io/jwt's revocation rule: `key` (or `*`) revoked at or after `iat`.
fn revoked(revocations: &BTreeMap<String, i64>, key: &str, iat: i64) -> bool {
    [key, "*"]
        .iter()
        .any(|k| revocations.get(*k).is_some_and(|&ts| iat <= ts))
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An operator JWT's `nats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    /// `"operator"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Other keys that may sign account JWTs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    /// The system account's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_account: Option<String>,
    /// Accounts must be signed by a signing key, not the operator's identity key.
    #[serde(default, skip_serializing_if = "is_false")]
    pub strict_signing_key_usage: bool,
    /// Claims version (2).
    #[serde(default)]
    pub version: u8,
}

/// Publish or subscribe rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    /// Subjects allowed (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Subjects denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl Permission {
    /// Whether it restricts anything.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// Permission to publish to reply subjects of received requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePermission {
    /// Responses per request.
    #[serde(default)]
    pub max: i64,
    /// How long the permission lasts, nanoseconds.
    #[serde(default)]
    pub ttl: i64,
}

/// Publish, subscribe and response permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Publish.
    #[serde(rename = "pub", default, skip_serializing_if = "Permission::is_empty")]
    pub publish: Permission,
    /// Subscribe.
    #[serde(rename = "sub", default, skip_serializing_if = "Permission::is_empty")]
    pub subscribe: Permission,
    /// Responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp: Option<ResponsePermission>,
}

impl Permissions {
    /// Whether it restricts anything.
    pub fn is_empty(&self) -> bool {
        self.publish.is_empty() && self.subscribe.is_empty() && self.resp.is_none()
    }
}

/// An account's limits (`nats.limits`): connection-level, account-level and JetStream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Subscriptions per connection.
    #[serde(default = "no_limit")]
    pub subs: i64,
    /// Bytes of data.
    #[serde(default = "no_limit")]
    pub data: i64,
    /// Largest payload.
    #[serde(default = "no_limit")]
    pub payload: i64,
    /// Imports.
    #[serde(default = "no_limit")]
    pub imports: i64,
    /// Exports.
    #[serde(default = "no_limit")]
    pub exports: i64,
    /// Wildcard exports allowed.
    #[serde(default = "yes")]
    pub wildcards: bool,
    /// Users' JWTs may not be bearer tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub disallow_bearer: bool,
    /// Active connections.
    #[serde(default = "no_limit")]
    pub conn: i64,
    /// Leafnode connections.
    #[serde(default = "no_limit")]
    pub leaf: i64,
    /// JetStream limits (`mem_storage`, `disk_storage`, `streams`, `consumer`,
    /// `max_bytes_required` at the top level of `limits`).
    #[serde(flatten)]
    pub js: JetStreamTier,
    /// Per-replication-tier JetStream limits (`R1`, `R3`); R1's apply here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiered_limits: BTreeMap<String, JetStreamTier>,
}

fn yes() -> bool {
    true
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            imports: NO_LIMIT,
            exports: NO_LIMIT,
            wildcards: true,
            disallow_bearer: false,
            conn: NO_LIMIT,
            leaf: NO_LIMIT,
            js: JetStreamTier::default(),
            tiered_limits: BTreeMap::new(),
        }
    }
}

/// One tier of JetStream limits (0 storage of both kinds: JetStream off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JetStreamTier {
    /// Memory storage bytes.
    #[serde(default)]
    pub mem_storage: i64,
    /// File storage bytes.
    #[serde(default)]
    pub disk_storage: i64,
    /// Streams.
    #[serde(default)]
    pub streams: i64,
    /// Consumers.
    #[serde(default)]
    pub consumer: i64,
    /// Streams must set max_bytes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub max_bytes_required: bool,
}

impl AccountLimits {
    /// The JetStream limits in force: the top-level ones, else tier `R1`; `None` when
    /// JetStream is off for the account (no storage of either kind).
    pub fn jetstream(&self) -> Option<JetStreamTier> {
        let on = |t: &JetStreamTier| t.mem_storage != 0 || t.disk_storage != 0;
        if on(&self.js) {
            return Some(self.js);
        }
        self.tiered_limits.get("R1").copied().filter(on)
    }
}

/// A subject an account offers other accounts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// A name for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The subject.
    pub subject: String,
    /// `"stream"` or `"service"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Importers need an activation token (private export).
    #[serde(default, skip_serializing_if = "is_false")]
    pub token_req: bool,
    /// `"Singleton"`, `"Stream"` or `"Chunked"` (services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    /// Revoked activations: importing account (or `*`) → activations issued at or before.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
}

impl Export {
    /// Whether an activation for `importer` issued at `iat` is revoked.
    pub fn is_revoked(&self, importer: &str, iat: i64) -> bool {
        revoked(&self.revocations, importer, iat)
    }
}

/// An activation JWT's `nats`: the exporter lets one account (`sub`) import a private
/// export.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    /// `"activation"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The subject it allows importing.
    #[serde(default)]
    pub subject: String,
    /// `"stream"` or `"service"`.
    #[serde(rename = "kind", default)]
    pub export_kind: String,
    /// The exporting account, when one of its signing keys issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_account: Option<String>,
    /// Claims version (2).
    #[serde(default)]
    pub version: u8,
}

/// A subject an account takes from another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Import {
    /// A name for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The exporter's subject.
    pub subject: String,
    /// The exporting account's public key.
    pub account: String,
    /// Activation token for private exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Deprecated local subject (stream imports: prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The subject in the importing account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_subject: Option<String>,
    /// `"stream"` or `"service"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Share the requester's details with the service.
    #[serde(default, skip_serializing_if = "is_false")]
    pub share: bool,
}

/// A key that may sign user JWTs for an account: a plain key, or a scoped one whose
/// template replaces the user's own permissions and limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SigningKey {
    /// A public account nkey.
    Key(String),
    /// `{"kind":"user_scope","key":...,"role":...,"template":{...}}`.
    Scoped(Box<ScopedKey>),
}

impl SigningKey {
    /// The public key.
    pub fn key(&self) -> &str {
        match self {
            SigningKey::Key(k) => k,
            SigningKey::Scoped(s) => &s.key,
        }
    }
}

/// A scoped signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopedKey {
    /// `"user_scope"`.
    pub kind: String,
    /// The public key.
    pub key: String,
    /// A role name.
    #[serde(default)]
    pub role: String,
    /// Permissions and limits of every user it signs.
    #[serde(default)]
    pub template: UserLimits,
}

/// An account JWT's `nats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// `"account"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Limits.
    #[serde(default)]
    pub limits: AccountLimits,
    /// Keys that may sign its users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    /// Revoked users: public key (or `*`) → users issued at or before this time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revocations: BTreeMap<String, i64>,
    /// Exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<Export>,
    /// Imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<Import>,
    /// Permissions of users whose JWT sets none.
    #[serde(default, skip_serializing_if = "Permissions::is_empty")]
    pub default_permissions: Permissions,
    /// Claims version (2).
    #[serde(default)]
    pub version: u8,
}

impl Account {
    /// Whether a user issued at `iat` is revoked (by its key or by `*`).
    pub fn is_revoked(&self, user: &str, iat: i64) -> bool {
        revoked(&self.revocations, user, iat)
    }

    /// The signing key `key`, if the account has it.
    pub fn signing_key(&self, key: &str) -> Option<&SigningKey> {
        self.signing_keys.iter().find(|k| k.key() == key)
    }
}

/// A user's permissions and limits (a user JWT's, or a scoped key's template).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLimits {
    /// Permissions.
    #[serde(flatten)]
    pub permissions: Permissions,
    /// Subscriptions.
    #[serde(default = "no_limit")]
    pub subs: i64,
    /// Bytes of data.
    #[serde(default = "no_limit")]
    pub data: i64,
    /// Largest payload.
    #[serde(default = "no_limit")]
    pub payload: i64,
    /// Log in with the JWT alone (no signed nonce).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bearer_token: bool,
    /// Connection types allowed (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_connection_types: Vec<String>,
    /// Client addresses allowed, as CIDRs or addresses (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub src: Vec<String>,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            permissions: Permissions::default(),
            subs: NO_LIMIT,
            data: NO_LIMIT,
            payload: NO_LIMIT,
            bearer_token: false,
            allowed_connection_types: Vec::new(),
            src: Vec::new(),
        }
    }
}

/// A user JWT's `nats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// `"user"`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The account, when a signing key issued the JWT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_account: Option<String>,
    /// Permissions and limits.
    #[serde(flatten)]
    pub limits: UserLimits,
    /// Claims version (2).
    #[serde(default)]
    pub version: u8,
}

/// A generic JWT's `nats`: any data (nats-server's account delete request carries
/// `{"accounts": [...]}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generic {
    /// The data.
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}
