//! The Sublist: a trie over subject tokens holding plain and queue subscriptions.
//!
//! Each level maps literal tokens to nodes and has two dedicated slots for `*` and `>`.
//! A node holds the subscriptions whose subject ends there and the next level. Every
//! insert and remove bumps a generation counter that readers compare against their
//! private [`crate::MatchCache`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::hash::FxBuild;
use crate::token::is_valid_subject;

/// The subject of an insert was not a valid subscription subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSubject;

impl std::fmt::Display for InvalidSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid subject")
    }
}

impl std::error::Error for InvalidSubject {}

/// The subscriptions matching one literal subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SublistResult<T> {
    /// Every plain subscription that matches.
    pub psubs: Vec<T>,
    /// Matching queue subscriptions, grouped by queue name.
    pub qsubs: Vec<(Box<[u8]>, Vec<T>)>,
}

impl<T> Default for SublistResult<T> {
    fn default() -> Self {
        Self {
            psubs: Vec::new(),
            qsubs: Vec::new(),
        }
    }
}

impl<T> SublistResult<T> {
    /// No subscription matched.
    pub fn is_empty(&self) -> bool {
        self.psubs.is_empty() && self.qsubs.is_empty()
    }
}

struct Node<T> {
    next: Option<Box<Level<T>>>,
    psubs: Vec<T>,
    qsubs: Vec<(Box<[u8]>, Vec<T>)>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            next: None,
            psubs: Vec::new(),
            qsubs: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.psubs.is_empty()
            && self.qsubs.is_empty()
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

struct Level<T> {
    nodes: HashMap<Box<[u8]>, Node<T>, FxBuild>,
    pwc: Option<Box<Node<T>>>,
    fwc: Option<Box<Node<T>>>,
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Self {
            nodes: HashMap::default(),
            pwc: None,
            fwc: None,
        }
    }
}

impl<T> Level<T> {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// Subscription index. `T` identifies a subscription (the server uses a pointer-equal
/// handle); removal finds the entry by `==`.
pub struct Sublist<T> {
    root: Level<T>,
    count: usize,
    /// Inserts and removes since creation (monitoring).
    inserts: u64,
    removes: u64,
    generation: Arc<AtomicU64>,
}

impl<T> Default for Sublist<T> {
    fn default() -> Self {
        Self {
            root: Level::default(),
            count: 0,
            inserts: 0,
            removes: 0,
            generation: Arc::new(AtomicU64::new(1)),
        }
    }
}

impl<T: Clone + PartialEq> Sublist<T> {
    /// An empty Sublist.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscriptions held.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Subscriptions inserted since creation.
    pub fn inserts(&self) -> u64 {
        self.inserts
    }

    /// Subscriptions removed since creation.
    pub fn removes(&self) -> u64 {
        self.removes
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A shared handle to the generation, readable without holding any lock on the
    /// Sublist (readers check their cache against it).
    pub fn generation_handle(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// Add a subscription on `subject`, in queue group `queue` if given.
    pub fn insert(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        item: T,
    ) -> Result<(), InvalidSubject> {
        if !is_valid_subject(subject) {
            return Err(InvalidSubject);
        }
        let mut level = &mut self.root;
        let mut tokens = subject.split(|&b| b == b'.').peekable();
        loop {
            let Some(tok) = tokens.next() else {
                return Err(InvalidSubject);
            };
            let node: &mut Node<T> = match tok {
                b"*" => level.pwc.get_or_insert_with(Box::default),
                b">" => level.fwc.get_or_insert_with(Box::default),
                _ => level.nodes.entry(tok.into()).or_default(),
            };
            if tokens.peek().is_none() {
                match queue {
                    None => node.psubs.push(item),
                    Some(q) => match node.qsubs.iter_mut().find(|(n, _)| &n[..] == q) {
                        Some((_, subs)) => subs.push(item),
                        None => node.qsubs.push((q.into(), vec![item])),
                    },
                }
                break;
            }
            level = node.next.get_or_insert_with(Box::default);
        }
        self.count += 1;
        self.inserts += 1;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Remove the subscription equal to `item` from `subject` / `queue`. Returns whether
    /// it was found. Empty nodes and levels are pruned.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, item: &T) -> bool {
        let tokens: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
        let found = remove_in(&mut self.root, &tokens, queue, item);
        if found {
            self.count -= 1;
            self.removes += 1;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        found
    }

    /// Every subscription matching the literal `subject`.
    pub fn match_subject(&self, subject: &[u8]) -> SublistResult<T> {
        let mut out = SublistResult::default();
        let mut tokens: Vec<&[u8]> = Vec::with_capacity(8);
        for t in subject.split(|&b| b == b'.') {
            if t.is_empty() {
                return out;
            }
            tokens.push(t);
        }
        match_level(&self.root, &tokens, &mut out);
        out
    }

    /// Calls `f` with every subscription held (in no particular order), for monitoring.
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        visit_level(&self.root, &mut f);
    }
}

fn visit_level<T>(level: &Level<T>, f: &mut impl FnMut(&T)) {
    let wildcards = level.pwc.iter().chain(level.fwc.iter()).map(|n| &**n);
    for node in level.nodes.values().chain(wildcards) {
        node.psubs.iter().for_each(&mut *f);
        node.qsubs.iter().flat_map(|(_, g)| g).for_each(&mut *f);
        if let Some(next) = &node.next {
            visit_level(next, f);
        }
    }
}

fn add_node<T: Clone>(node: &Node<T>, out: &mut SublistResult<T>) {
    out.psubs.extend(node.psubs.iter().cloned());
    for (name, subs) in &node.qsubs {
        match out.qsubs.iter_mut().find(|(n, _)| n == name) {
            Some((_, group)) => group.extend(subs.iter().cloned()),
            None => out.qsubs.push((name.clone(), subs.clone())),
        }
    }
}

fn match_level<T: Clone>(mut level: &Level<T>, tokens: &[&[u8]], out: &mut SublistResult<T>) {
    for (i, tok) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        if let Some(fwc) = &level.fwc {
            add_node(fwc, out);
        }
        if let Some(pwc) = &level.pwc {
            if last {
                add_node(pwc, out);
            } else if let Some(next) = &pwc.next {
                match_level(next, &tokens[i + 1..], out);
            }
        }
        let Some(node) = level.nodes.get(*tok) else {
            return;
        };
        if last {
            add_node(node, out);
            return;
        }
        match &node.next {
            Some(next) => level = next,
            None => return,
        }
    }
}

fn remove_in<T: PartialEq>(
    level: &mut Level<T>,
    tokens: &[&[u8]],
    queue: Option<&[u8]>,
    item: &T,
) -> bool {
    let Some((&tok, rest)) = tokens.split_first() else {
        return false;
    };
    let found;
    let empty;
    {
        let node: &mut Node<T> = match tok {
            b"*" => match level.pwc.as_deref_mut() {
                Some(n) => n,
                None => return false,
            },
            b">" => match level.fwc.as_deref_mut() {
                Some(n) => n,
                None => return false,
            },
            _ => match level.nodes.get_mut(tok) {
                Some(n) => n,
                None => return false,
            },
        };
        if rest.is_empty() {
            found = remove_from_node(node, queue, item);
        } else {
            let Some(next) = node.next.as_deref_mut() else {
                return false;
            };
            found = remove_in(next, rest, queue, item);
            if next.is_empty() {
                node.next = None;
            }
        }
        empty = node.is_empty();
    }
    if found && empty {
        match tok {
            b"*" => level.pwc = None,
            b">" => level.fwc = None,
            _ => {
                level.nodes.remove(tok);
            }
        }
    }
    found
}

fn remove_from_node<T: PartialEq>(node: &mut Node<T>, queue: Option<&[u8]>, item: &T) -> bool {
    match queue {
        None => match node.psubs.iter().position(|s| s == item) {
            Some(i) => {
                node.psubs.swap_remove(i);
                true
            }
            None => false,
        },
        Some(q) => {
            let Some(gi) = node.qsubs.iter().position(|(n, _)| &n[..] == q) else {
                return false;
            };
            let group = &mut node.qsubs[gi].1;
            let Some(i) = group.iter().position(|s| s == item) else {
                return false;
            };
            group.remove(i);
            if group.is_empty() {
                node.qsubs.swap_remove(gi);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests;
