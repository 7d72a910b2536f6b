//! nats-server's checks of an account's imports against the other accounts' exports:
//! the exporter exists, exports the subject (a stream import may take a subset) to this
//! account, no stream import twice, a literal prefix, a `to` that maps every wildcard.

use petrel_subject::{is_subset, StrictMapping};

use crate::{AccountConfig, ImportKind};

/// Why `acc`'s imports (or exports) cannot be set up, in nats-server's words.
pub(super) fn check(accounts: &[AccountConfig], acc: &AccountConfig) -> Result<(), String> {
    for export in &acc.exports {
        let kind = if export.service.is_some() {
            "service"
        } else {
            "stream"
        };
        if let Some(missing) = export
            .accounts
            .iter()
            .find(|n| !accounts.iter().any(|a| &a.name == *n))
        {
            return Err(format!(
                "\"{missing}\" account not defined for {kind} export"
            ));
        }
    }
    let mut seen = Vec::new();
    for import in &acc.imports {
        let (kind, service) = match import.kind {
            ImportKind::Stream { .. } => ("stream", false),
            ImportKind::Service { .. } => ("service", true),
        };
        let subject = &import.subject;
        let Some(exporter) = accounts.iter().find(|a| a.name == import.account) else {
            return Err(format!(
                "\"{}\" account not defined for {kind} import",
                import.account
            ));
        };
        let fail = |why: &str| Err(format!("Error adding {kind} import \"{subject}\": {why}"));
        let authorized = exporter.exports.iter().any(|e| {
            e.service.is_some() == service
                && is_subset(subject.as_bytes(), e.subject.as_bytes())
                && (e.accounts.is_empty() || e.accounts.contains(&acc.name))
        });
        if !authorized {
            return fail(&format!("{kind} import not authorized"));
        }
        if let ImportKind::Stream { prefix, to } = &import.kind {
            if seen.contains(&(&import.account, subject)) {
                return fail("stream import already exists");
            }
            seen.push((&import.account, subject));
            if prefix.as_deref().is_some_and(|p| p.contains(['*', '>'])) {
                return fail("stream import prefix can not contain wildcard tokens");
            }
            if let Some(to) = to.as_deref().filter(|t| *t != subject) {
                if StrictMapping::new(subject, to).is_none() {
                    return fail(&format!("failed to create mapping transform for stream import subject from \"{subject}\" to \"{to}\": invalid subject"));
                }
            }
        }
        if forms_cycle(accounts, &acc.name, &import.account, subject, service) {
            return fail("import forms a cycle");
        }
        if let ImportKind::Service { to: Some(to), .. } = &import.kind {
            if to != subject && StrictMapping::new(to, subject).is_none() {
                return fail(&format!(
                    "invalid service import mapping from \"{to}\" to \"{subject}\""
                ));
            }
        }
    }
    Ok(())
}

/// nats-server's cycle check: following `subject` from the exporter through its own
/// imports of the same kind (stream or service) whose local subjects collide with it,
/// reaching `importer` again is a cycle.
fn forms_cycle(
    accounts: &[AccountConfig],
    importer: &str,
    exporter: &str,
    subject: &str,
    service: bool,
) -> bool {
    let mut visited = vec![importer.to_string()];
    let mut todo = vec![(exporter.to_string(), subject.to_string())];
    while let Some((name, subject)) = todo.pop() {
        if visited.len() > 32 {
            return true;
        }
        let Some(acc) = accounts.iter().find(|a| a.name == name) else {
            continue;
        };
        let exported = acc.exports.iter().any(|e| {
            e.service.is_some() == service
                && petrel_subject::subjects_collide(e.subject.as_bytes(), subject.as_bytes())
        });
        if !exported {
            continue;
        }
        for i in &acc.imports {
            let same_kind = matches!(i.kind, ImportKind::Service { .. }) == service;
            let local = i.local_subject();
            if !same_kind || !petrel_subject::subjects_collide(local.as_bytes(), subject.as_bytes())
            {
                continue;
            }
            if visited.contains(&i.account) {
                return true;
            }
            todo.push((i.account.clone(), i.subject.clone()));
        }
        visited.push(name);
    }
    false
}

/// Removes every import [`check`] refuses (operator mode: account JWTs are not checked
/// when the file is read); returns why each was removed, per account.
pub fn retain_valid_imports(accounts: &mut [AccountConfig]) -> Vec<(String, String)> {
    let mut dropped = Vec::new();
    for i in 0..accounts.len() {
        let imports = std::mem::take(&mut accounts[i].imports);
        let mut kept = Vec::new();
        for import in imports {
            let probe = AccountConfig {
                imports: vec![import.clone()],
                exports: Vec::new(),
                ..accounts[i].clone()
            };
            match check(accounts, &probe) {
                Ok(()) => kept.push(import),
                Err(why) => dropped.push((accounts[i].name.clone(), why)),
            }
        }
        accounts[i].imports = kept;
    }
    dropped
}
