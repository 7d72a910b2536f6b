//! Per-user permissions as configured (`permissions { publish, subscribe, allow_responses }`).

use std::time::Duration;

/// nats-server's default for `allow_responses: true`: one response per request.
pub const DEFAULT_RESPONSES_MAX: usize = 1;
/// nats-server's default for `allow_responses: true`: the permission lasts 2 minutes.
pub const DEFAULT_RESPONSES_EXPIRES: Duration = Duration::from_secs(120);

/// Allow and deny lists for one direction (publish or subscribe). An empty `allow` means
/// everything not denied is allowed; deny always wins. Subscribe entries may be
/// queue-qualified (`"subject queue"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectPermission {
    /// Subjects (with wildcards) allowed.
    pub allow: Vec<String>,
    /// Subjects (with wildcards) denied.
    pub deny: Vec<String>,
}

/// `allow_responses`: a client that receives a request may publish to its reply subject
/// even when its publish permissions would not allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed per request.
    pub max: usize,
    /// How long the permission lasts (zero = no expiry).
    pub expires: Duration,
}

impl Default for ResponsePermission {
    fn default() -> Self {
        Self {
            max: DEFAULT_RESPONSES_MAX,
            expires: DEFAULT_RESPONSES_EXPIRES,
        }
    }
}

/// A user's permissions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    /// Publish rules (`None` = unrestricted).
    pub publish: Option<SubjectPermission>,
    /// Subscribe rules (`None` = unrestricted).
    pub subscribe: Option<SubjectPermission>,
    /// Response permission.
    pub allow_responses: Option<ResponsePermission>,
}
