//! Account and user JWT claims as the server's own configuration: an account JWT becomes
//! an [`AccountConfig`], a JWT's permissions become [`Permissions`].

use std::time::Duration;

use petrel_config::{
    AccountConfig, AccountJetStream, Export, Import, ImportKind, Permissions, ResponsePermission,
    ResponseType, SubjectPermission,
};
use petrel_jwt::{Account as AccountClaims, Claims, Permission};

/// The account an account JWT describes, named by its public key.
pub(crate) fn account_config(c: &Claims<AccountClaims>) -> AccountConfig {
    let nats = &c.nats;
    AccountConfig {
        name: c.sub.clone(),
        jetstream: nats.limits.jetstream().map(|t| AccountJetStream {
            max_memory: bytes_limit(t.mem_storage),
            max_file: bytes_limit(t.disk_storage),
            max_streams: count_limit(t.streams),
            max_consumers: count_limit(t.consumer),
            max_bytes_required: t.max_bytes_required,
        }),
        exports: nats.exports.iter().filter_map(export).collect(),
        imports: nats.imports.iter().filter_map(import).collect(),
    }
}

/// The importer list of a private export nobody may import (no account has this name).
pub(crate) const NOBODY: &str = "";

/// Opens `exporter`'s private exports to the importers whose imports carry a valid
/// activation token (nats-server's `checkActivation`): issued by the exporter or one of
/// its signing keys, for that importer, kind and subject, not expired, not revoked by the
/// export.
pub(crate) fn private_exports(
    config: &mut AccountConfig,
    exporter: &Claims<AccountClaims>,
    all: &[&Claims<AccountClaims>],
    now: i64,
) {
    let jwt_exports = exporter
        .nats
        .exports
        .iter()
        .filter(|e| e.kind == "stream" || e.kind == "service");
    for (export, jwt_export) in config.exports.iter_mut().zip(jwt_exports) {
        if !jwt_export.token_req {
            continue;
        }
        let allowed: Vec<String> = all
            .iter()
            .filter(|importer| {
                importer.nats.imports.iter().any(|i| {
                    i.account == exporter.sub
                        && i.kind == jwt_export.kind
                        && petrel_subject::is_subset(
                            i.subject.as_bytes(),
                            jwt_export.subject.as_bytes(),
                        )
                        && i.token.as_deref().is_some_and(|t| {
                            activation_valid(
                                t,
                                exporter,
                                jwt_export,
                                &importer.sub,
                                &i.subject,
                                now,
                            )
                        })
                })
            })
            .map(|importer| importer.sub.clone())
            .collect();
        if !allowed.is_empty() {
            export.accounts = allowed;
        }
    }
}

/// Whether `token` lets `importer` import `subject` from `export` of `exporter`.
fn activation_valid(
    token: &str,
    exporter: &Claims<AccountClaims>,
    export: &petrel_jwt::Export,
    importer: &str,
    subject: &str,
    now: i64,
) -> bool {
    let Ok(act) = petrel_jwt::decode::<petrel_jwt::Activation>(token) else {
        tracing::warn!(%importer, "activation token does not verify");
        return false;
    };
    let issuer_ok = act.iss == exporter.sub
        || (act.nats.issuer_account.as_deref() == Some(exporter.sub.as_str())
            && exporter.nats.signing_key(&act.iss).is_some());
    issuer_ok
        && act.sub == importer
        && act.nats.export_kind == export.kind
        && petrel_subject::is_subset(subject.as_bytes(), act.nats.subject.as_bytes())
        && !act.expired(now)
        && !export.is_revoked(importer, act.iat)
}

/// A storage limit: -1 unlimited, else bytes (0: none of that kind).
fn bytes_limit(n: i64) -> Option<u64> {
    u64::try_from(n).ok()
}

/// A count limit: -1 and 0 unlimited (nats-server checks `> 0`).
fn count_limit(n: i64) -> Option<u64> {
    u64::try_from(n).ok().filter(|&n| n > 0)
}

fn export(e: &petrel_jwt::Export) -> Option<Export> {
    let service = match e.kind.as_str() {
        "stream" => None,
        "service" => Some(match e.response_type.as_deref() {
            Some("Stream") => ResponseType::Stream,
            Some("Chunked") => ResponseType::Chunked,
            _ => ResponseType::Singleton,
        }),
        other => {
            tracing::warn!(subject = %e.subject, "export of unknown type {other:?} ignored");
            return None;
        }
    };
    Some(Export {
        subject: e.subject.clone(),
        service,
        // A private export: only importers with a valid activation token, filled in by
        // `private_exports` (until then, nobody).
        accounts: if e.token_req {
            vec![NOBODY.to_string()]
        } else {
            Vec::new()
        },
    })
}

fn import(i: &petrel_jwt::Import) -> Option<Import> {
    let local = i.local_subject.clone().filter(|s| !s.is_empty());
    let to = i.to.clone().filter(|s| !s.is_empty());
    let kind = match i.kind.as_str() {
        // A stream import's deprecated `to` is a prefix; `local_subject` a mapping.
        "stream" => ImportKind::Stream {
            prefix: to,
            to: local,
        },
        "service" => ImportKind::Service {
            to: local.or(to),
            share: i.share,
        },
        other => {
            tracing::warn!(subject = %i.subject, "import of unknown type {other:?} ignored");
            return None;
        }
    };
    Some(Import {
        account: i.account.clone(),
        subject: i.subject.clone(),
        kind,
    })
}

/// A JWT's permissions; `None` when it restricts nothing.
pub(crate) fn permissions(p: &petrel_jwt::Permissions) -> Option<Permissions> {
    if p.is_empty() {
        return None;
    }
    let rules = |r: &Permission| {
        (!r.is_empty()).then(|| SubjectPermission {
            allow: r.allow.clone(),
            deny: r.deny.clone(),
        })
    };
    Some(Permissions {
        publish: rules(&p.publish),
        subscribe: rules(&p.subscribe),
        allow_responses: p.resp.map(|r| ResponsePermission {
            max: usize::try_from(r.max).ok().filter(|&m| m > 0).unwrap_or(1),
            expires: Duration::from_nanos(u64::try_from(r.ttl).unwrap_or(0)),
        }),
    })
}

/// Whether `ip` is in `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or one address).
pub(crate) fn in_cidr(ip: std::net::IpAddr, cidr: &str) -> bool {
    use std::net::IpAddr;
    let (addr, bits) = match cidr.trim().split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (cidr.trim(), None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    // An IPv4 client seen over IPv6 (::ffff:a.b.c.d) is its IPv4 address.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::in_cidr;

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse().unwrap();
        assert!(in_cidr(ip("10.1.2.3"), "10.0.0.0/8"));
        assert!(!in_cidr(ip("11.1.2.3"), "10.0.0.0/8"));
        assert!(in_cidr(ip("127.0.0.1"), "127.0.0.1"));
        assert!(!in_cidr(ip("127.0.0.2"), "127.0.0.1"));
        assert!(in_cidr(ip("1.2.3.4"), "0.0.0.0/0"));
        assert!(in_cidr(ip("::ffff:10.0.0.1"), "10.0.0.0/24"));
        assert!(in_cidr(ip("2001:db8::1"), "2001:db8::/32"));
        assert!(!in_cidr(ip("2001:db9::1"), "2001:db8::/32"));
        assert!(!in_cidr(ip("10.0.0.1"), "2001:db8::/32"));
        assert!(!in_cidr(ip("10.0.0.1"), "nonsense"));
    }
}
