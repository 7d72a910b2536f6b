//! `.creds` files: a user JWT and its nkey seed between `-----BEGIN ...-----` and
//! `------END ...------` markers, as `nsc` writes them and the clients read them.

use crate::JwtError;

/// A user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// The user JWT.
    pub jwt: String,
    /// The user's nkey seed (`SU...`).
    pub seed: String,
}

/// The text between the first two marker lines (lines of 3+ dashes around a word), after
/// `skip` such blocks.
fn block(text: &str, skip: usize) -> Option<&str> {
    let is_marker = |l: &str| {
        let t = l.trim();
        t.starts_with("---") && t.ends_with("---") && t.len() > 6
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let mut seen = 0;
    while let Some(line) = lines.next() {
        if !is_marker(line) {
            continue;
        }
        let body = lines.next()?;
        if is_marker(body) {
            return None;
        }
        lines.next().filter(|l| is_marker(l))?;
        if seen == skip {
            return Some(body.trim());
        }
        seen += 1;
    }
    None
}

/// The JWT of a "decorated" file (the first block between markers), or the whole text
/// when it has no markers (an operator JWT file, as nats-io/jwt's `ParseDecoratedJWT`).
pub fn parse_decorated(text: &str) -> Option<&str> {
    if text.contains("-----") {
        return block(text, 0);
    }
    Some(text.trim()).filter(|t| !t.is_empty())
}

/// Read a `.creds` file's JWT and seed.
pub fn parse_creds(text: &str) -> Result<Creds, JwtError> {
    let jwt = block(text, 0).ok_or(JwtError::Format)?;
    let seed = block(text, 1).ok_or(JwtError::Format)?;
    Ok(Creds {
        jwt: jwt.to_string(),
        seed: seed.to_string(),
    })
}

/// Write `jwt` and `seed` as `nsc` writes a `.creds` file.
pub fn format_creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}
