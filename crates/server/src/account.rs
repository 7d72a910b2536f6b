//! Accounts: isolated subject spaces. Each account has its own Sublist (a message
//! published in one account reaches only subscriptions of that account), its own internal
//! client (what the server publishes there, e.g. JetStream's replies, comes from it), and
//! — when JetStream is enabled for it — its own JetStream with its own streams, store
//! directory (`<store_dir>/jetstream/<account>/`) and limits. The server starts with the
//! global account `$G` (clients of no configured account), the system account, and every
//! configured one; in operator mode, accounts whose JWTs are pushed later are added while
//! it runs (never removed: a connection bound to an account keeps it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use petrel_config::{AccountJetStream, Options, DEFAULT_SYSTEM_ACCOUNT, GLOBAL_ACCOUNT};
use petrel_subject::Sublist;

use crate::client::{Client, ClientKind};
use crate::js::JsRuntime;
use crate::stats::Stats;
use crate::sub::{SubRef, Subscription};

/// An account's traffic counters (`/accstatz`). Messages received are added once per read
/// batch; messages sent are added from each connection when it closes (open connections
/// are counted from their own counters when asked), so no delivery touches a shared
/// counter.
#[derive(Debug, Default)]
pub(crate) struct AccountStats {
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    /// Sent to connections that have closed.
    pub closed_out_msgs: AtomicU64,
    pub closed_out_bytes: AtomicU64,
    /// Client connections bound to the account since start.
    pub total_conns: AtomicU64,
    /// Its connections closed as slow consumers.
    pub slow_consumers: AtomicU64,
}

/// One account.
pub(crate) struct Account {
    pub name: String,
    /// Its subscriptions: clients', and the internal ones of its JetStream.
    pub sublist: RwLock<Sublist<SubRef>>,
    /// Bumped by every change of `sublist` (match caches check it).
    pub generation: Arc<AtomicU64>,
    /// The server's own client in this account: internal subscriptions belong to it and
    /// what the server publishes here comes from it (never a request).
    pub system: Arc<Client>,
    /// JetStream's limits for this account, when JetStream is enabled for it.
    pub jetstream: Option<AccountJetStream>,
    /// Its JetStream, once started.
    pub js: OnceLock<JsRuntime>,
    /// While JetStream is off for it: the internal subscription answering its API with
    /// 10039 (removed when a pushed JWT turns JetStream on).
    pub js_off:
        parking_lot::Mutex<Option<(Arc<crate::internal::ServerPort>, petrel_jetstream::SubId)>>,
    /// Its JetStream is being started while the server runs (one start at a time).
    pub js_starting: std::sync::atomic::AtomicBool,
    /// Pending responses of the services other accounts import from this one, by
    /// importing account.
    pub response_routes: parking_lot::Mutex<BTreeMap<String, Arc<crate::imports::Responses>>>,
    /// Internal subscription ids.
    next_sid: AtomicU64,
    /// Traffic counters.
    pub stats: AccountStats,
    /// Its local subscriptions as route peers know them.
    pub interest: crate::route::Interest,
    /// The route peers (shared by every account).
    peers: Arc<crate::route::Peers>,
    /// The leafnode connections bound to this account (each told of its interest).
    pub leafs: crate::leaf::AccountLeafs,
}

impl Account {
    fn new(
        name: &str,
        jetstream: Option<AccountJetStream>,
        stats: &Arc<Stats>,
        peers: &Arc<crate::route::Peers>,
    ) -> Arc<Account> {
        let sublist = Sublist::new();
        let generation = sublist.generation_handle();
        Arc::new_cyclic(|me| {
            let system = Arc::new(Client::new(
                ClientKind::System,
                0,
                SocketAddr::from(([0, 0, 0, 0], 0)),
                usize::MAX / 4,
                stats.clone(),
                String::new(),
            ));
            system.set_account_weak(me.clone());
            Account {
                name: name.to_string(),
                sublist: RwLock::new(sublist),
                generation,
                system,
                jetstream,
                js: OnceLock::new(),
                js_off: parking_lot::Mutex::new(None),
                js_starting: std::sync::atomic::AtomicBool::new(false),
                response_routes: parking_lot::Mutex::new(BTreeMap::new()),
                next_sid: AtomicU64::new(1),
                stats: AccountStats::default(),
                interest: crate::route::Interest::default(),
                peers: peers.clone(),
                leafs: crate::leaf::AccountLeafs::default(),
            }
        })
    }

    /// A subscription id for an internal subscription, unique in the account (its
    /// internal subscriptions all belong to one client, keyed by id).
    pub fn next_internal_sid(&self) -> u64 {
        self.next_sid
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds `sub` to the Sublist and tells the route peers and leafnodes when that is
    /// interest they did not know of.
    pub fn insert_sub(
        &self,
        sub: &Arc<Subscription>,
    ) -> Result<(), petrel_subject::InvalidSubject> {
        let mut sublist = self.sublist.write();
        sublist.insert(&sub.subject, sub.queue.as_deref(), SubRef(sub.clone()))?;
        self.interest_changed(sub, i64::from(sub.weight()));
        Ok(())
    }

    /// Removes subscriptions from the Sublist (telling the route peers and leafnodes of
    /// interest that ended); returns how many were there.
    pub fn remove_subs<'a>(&self, subs: impl IntoIterator<Item = &'a Arc<Subscription>>) -> usize {
        let mut sublist = self.sublist.write();
        let mut removed = 0;
        for sub in subs {
            if !sublist.remove(&sub.subject, sub.queue.as_deref(), &SubRef(sub.clone())) {
                continue;
            }
            removed += 1;
            self.interest_changed(sub, -i64::from(sub.weight()));
        }
        drop(sublist);
        removed
    }

    /// A remote queue subscription's weight (its members on the peer) became `weight`.
    pub fn set_weight(&self, sub: &Arc<Subscription>, weight: u32) {
        let _sublist = self.sublist.write();
        let old = sub
            .weight
            .swap(weight, std::sync::atomic::Ordering::Relaxed);
        if old != weight {
            self.interest_changed(sub, i64::from(weight) - i64::from(old));
        }
    }

    /// `sub`'s weight in the interest changed by `delta` (called under the Sublist write
    /// lock, so peers hear of changes in the order they happened).
    fn interest_changed(&self, sub: &Subscription, delta: i64) {
        if crate::leaf::reaches_routes(sub) {
            self.interest.changed(
                &self.name,
                &self.peers,
                &sub.subject,
                sub.queue.as_ref(),
                delta,
            );
        }
        self.leafs.changed(sub, delta);
    }

    /// Subscriptions in this account.
    pub fn subscriptions(&self) -> usize {
        self.sublist.read().count()
    }

    /// Subscribes an import's internal subscription on `subject` (owned by this account's
    /// internal client), its id starting with `kind`'s prefix.
    pub fn subscribe_import(
        &self,
        subject: &str,
        import: Arc<dyn crate::imports::Importer>,
        kind: ImportSubs,
    ) {
        let sid = format!("{}{}", kind.prefix(), self.next_internal_sid());
        let sub = Arc::new(crate::sub::Subscription {
            import: Some(import),
            ..crate::sub::Subscription::new(
                self.system.clone(),
                bytes::Bytes::copy_from_slice(subject.as_bytes()),
                None,
                bytes::Bytes::from(sid),
            )
        });
        match self.insert_sub(&sub) {
            Ok(_) => {
                self.system.subs.lock().insert(sub.sid.clone(), sub);
            }
            Err(_) => tracing::warn!(account = %self.name, subject, "invalid import subject"),
        }
    }

    /// Removes this account's import subscriptions of one kind (the account JWTs changed:
    /// they are installed again).
    pub fn remove_imports(&self, kind: ImportSubs) {
        let subs: Vec<Arc<crate::sub::Subscription>> = self
            .system
            .subs
            .lock()
            .iter()
            .filter(|(sid, _)| sid.starts_with(kind.prefix().as_bytes()))
            .map(|(_, s)| s.clone())
            .collect();
        for sub in subs {
            self.remove_subs([&sub]);
            self.system.subs.lock().remove(&sub.sid);
        }
    }
}

/// The kinds of import subscription an account holds (their ids say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImportSubs {
    /// Configured imports (or an account JWT's), in the importer (services) or the
    /// exporter (streams).
    Configured,
    /// The system account's service imports every account gets.
    System,
    /// Response imports (in exporters), shared by every service import between two
    /// accounts.
    Responses,
}

impl ImportSubs {
    fn prefix(self) -> &'static str {
        match self {
            ImportSubs::Configured => "import.",
            ImportSubs::System => "sysimport.",
            ImportSubs::Responses => "response.",
        }
    }
}

/// Every account of the server, by name.
pub(crate) struct Accounts {
    by_name: RwLock<BTreeMap<String, Arc<Account>>>,
    stats: Arc<Stats>,
    /// The route peers every account tells of its interest.
    pub peers: Arc<crate::route::Peers>,
    global: Arc<Account>,
    system: Arc<Account>,
}

impl Accounts {
    /// The accounts `opts` configures, plus `$G` and the system account. With no
    /// configured accounts, JetStream (when on) belongs to `$G`; otherwise to the accounts
    /// that enable it, as in nats-server.
    pub fn new(opts: &Options, stats: &Arc<Stats>) -> Accounts {
        let peers = Arc::new(crate::route::Peers::default());
        let js_on = opts.jetstream.is_some();
        let global_js = (js_on && opts.accounts.is_empty()).then(AccountJetStream::default);
        let global = Account::new(GLOBAL_ACCOUNT, global_js, stats, &peers);
        let mut by_name = BTreeMap::new();
        by_name.insert(global.name.clone(), global.clone());
        for a in &opts.accounts {
            let js = a.jetstream.filter(|_| js_on);
            by_name.insert(a.name.clone(), Account::new(&a.name, js, stats, &peers));
        }
        let sys_name = opts
            .system_account
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_ACCOUNT.to_string());
        let system = by_name
            .entry(sys_name.clone())
            .or_insert_with(|| Account::new(&sys_name, None, stats, &peers))
            .clone();
        Accounts {
            by_name: RwLock::new(by_name),
            stats: stats.clone(),
            peers,
            global,
            system,
        }
    }

    /// The account called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Account>> {
        self.by_name.read().get(name).cloned()
    }

    /// Adds the account `name` (operator mode: a JWT pushed while running), or returns
    /// the one that exists; `true` when it is new.
    pub fn add(&self, name: &str, jetstream: Option<AccountJetStream>) -> (Arc<Account>, bool) {
        let mut by_name = self.by_name.write();
        if let Some(a) = by_name.get(name) {
            return (a.clone(), false);
        }
        let account = Account::new(name, jetstream, &self.stats, &self.peers);
        by_name.insert(name.to_string(), account.clone());
        (account, true)
    }

    /// `$G`: clients of no configured account.
    pub fn global(&self) -> &Arc<Account> {
        &self.global
    }

    /// The system account.
    pub fn system(&self) -> &Arc<Account> {
        &self.system
    }

    /// Every account, by name (a snapshot).
    pub fn iter(&self) -> impl Iterator<Item = Arc<Account>> {
        let all: Vec<Arc<Account>> = self.by_name.read().values().cloned().collect();
        all.into_iter()
    }

    /// The JetStreams that run, with their accounts.
    pub fn jetstreams(&self) -> impl Iterator<Item = (Arc<Account>, JsRuntime)> {
        self.iter()
            .filter_map(|a| a.js.get().cloned().map(|js| (a, js)))
    }

    /// The account `client` belongs to (`$G` until it authenticated into another).
    pub fn of(&self, client: &Client) -> Arc<Account> {
        client.account().unwrap_or_else(|| self.global.clone())
    }
}
