//! The replicated-JetStream fault harness, in process: three Petrel nodes with an R3 stream
//! (and, in a second test, five with an R5 stream), each on its own
//! simulated disk (`petrel_store::SimFs`), an R3 stream taking publishes with
//! `Nats-Msg-Id`s from a publisher that retries until acknowledged, and faults injected
//! while publishes are in flight:
//!
//! * `power-minority`: a minority (one node of three; one or two of five, the stream leader
//!   among them or not) loses power — each disk
//!   keeps only what was fsynced plus a random prefix of the rest, the last write possibly
//!   torn — and comes back while the other two go on;
//! * `power-all`: every node loses power at once and the cluster restarts from what the
//!   disks kept.
//!
//! Snapshots are taken every few KiB of log, so faults also land on snapshots being built,
//! logs being purged and replicas restored from a snapshot.
//!
//! The checker: every acknowledged message is stored exactly once, sequences have no gaps,
//! nothing is stored that was never published, and a durable consumer that acks with
//! confirmation (`double_ack`) never gets a confirmed message again and never skips one. Rounds: `PETREL_JS_FAULT_ROUNDS` (default
//! 1 of each kind; `tests/js_faults/run.sh` runs long ones in release mode and prints the
//! figures), seed: `PETREL_JS_FAULT_SEED`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::free_ports;

use async_nats::jetstream::{self, stream};
use petrel_config::{ClusterOptions, RouteUrl};
use petrel_server::ServerHandle;
use petrel_store::SimFs;

const WAIT: Duration = Duration::from_secs(60);
/// Snapshots every few KiB of log and few entries kept behind them: the faults land on
/// snapshots being built, logs being purged, and replicas restored or caught up from a
/// snapshot, not only on log replay.
pub(crate) const SNAPPY: petrel_server::RaftTiming = petrel_server::RaftTiming {
    heartbeat: Duration::from_millis(500),
    election_min: Duration::from_millis(2000),
    election_max: Duration::from_millis(4000),
    snapshot_bytes: 4096,
    log_keep: 8,
};

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The nodes of a power loss of a minority of `n`: one or (of five) two, the leader
/// among them or not.
fn minority(rng: &mut fastrand::Rng, n: usize, lead: usize) -> Vec<usize> {
    let k = if n >= 5 { rng.usize(1..=2) } else { 1 };
    let mut followers: Vec<usize> = (0..n).filter(|i| *i != lead).collect();
    rng.shuffle(&mut followers);
    let mut victims = Vec::with_capacity(k);
    if rng.bool() {
        victims.push(lead);
    }
    victims.extend(followers.into_iter().take(k - victims.len()));
    victims.sort_unstable();
    victims
}

/// A node: its disk survives restarts; the lock directory is a real one.
struct Node {
    fs: SimFs,
    dir: tempfile::TempDir,
    server: Option<ServerHandle>,
}

struct Cluster {
    ports: Vec<u16>,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        let mut c = Cluster {
            ports: free_ports(n),
            nodes: (0..n)
                .map(|_| Node {
                    fs: SimFs::default(),
                    dir: tempfile::tempdir().unwrap(),
                    server: None,
                })
                .collect(),
        };
        for i in 0..n {
            c.boot(i).await;
        }
        c
    }

    async fn boot(&mut self, i: usize) {
        petrel_testkit::log_if_asked();
        let routes = self
            .ports
            .iter()
            .map(|p| RouteUrl::parse(&format!("127.0.0.1:{p}")).unwrap())
            .collect();
        let node = &mut self.nodes[i];
        let server = petrel_server::Server::builder()
            .host(std::net::Ipv4Addr::LOCALHOST.into())
            .port(0)
            .server_name(format!("node-{i}"))
            .cluster(ClusterOptions {
                name: Some("faults".into()),
                host: std::net::Ipv4Addr::LOCALHOST.into(),
                port: self.ports[i],
                routes,
                ..ClusterOptions::default()
            })
            .jetstream(node.dir.path())
            .store_backend(Arc::new(node.fs.clone()))
            .raft_timing(SNAPPY)
            .start()
            .await
            .unwrap_or_else(|e| panic!("node-{i} starts: {e}"));
        node.server = Some(server);
    }

    /// Cuts the power of `victims` at once, stops them, keeps what their disks allow, and
    /// boots them again.
    async fn power_loss(&mut self, victims: &[usize], seed: u64) {
        for &i in victims {
            // The device is gone: every write from now on fails.
            self.nodes[i].fs.arm(Some(0));
        }
        for &i in victims {
            if let Some(s) = self.nodes[i].server.take() {
                s.shutdown().await;
            }
        }
        for &i in victims {
            self.nodes[i].fs.crash(seed.wrapping_add(i as u64));
            self.boot(i).await;
        }
    }

    fn url(&self, i: usize) -> String {
        self.nodes[i].server.as_ref().expect("up").client_url()
    }
}

async fn context(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.expect("connect"))
}

/// The stream leader's node index, asked through `js`.
async fn leader(js: &jetstream::Context) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut s) = js.get_stream("PL").await {
            if let Ok(i) = s.info().await {
                if let Some(l) = i.cluster.as_ref().and_then(|c| c.leader.clone()) {
                    return l.trim_start_matches("node-").parse().unwrap();
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no stream leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the publisher saw.
#[derive(Default)]
struct Ledger {
    /// Ids sent at least once.
    sent: BTreeSet<u64>,
    /// Ids acknowledged.
    acked: BTreeSet<u64>,
    /// When each acknowledgement came.
    acked_at: Vec<Instant>,
}

/// Publishes `next..` through `urls` (round robin on failure) until `stop`, each id until
/// acknowledged.
async fn publisher(
    urls: Vec<String>,
    mut next: u64,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut at = 0;
    let mut js = context(&urls[at]).await;
    while !stop.load(Ordering::Acquire) {
        ledger.lock().unwrap().sent.insert(next);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("m{next}").as_str());
        let sent = js
            .publish_with_headers("pl.x", headers, next.to_string().into())
            .await;
        let acked = match sent {
            Ok(ack) => matches!(
                tokio::time::timeout(Duration::from_secs(2), ack).await,
                Ok(Ok(_))
            ),
            Err(_) => false,
        };
        if acked {
            let mut l = ledger.lock().unwrap();
            l.acked.insert(next);
            l.acked_at.push(Instant::now());
            next += 1;
        } else {
            at = (at + 1) % urls.len();
            if let Ok(Ok(nc)) =
                tokio::time::timeout(Duration::from_secs(2), async_nats::connect(&urls[at])).await
            {
                js = jetstream::new(nc);
            }
        }
    }
}

/// Every stored message's id, in sequence order, once the stream holds at least
/// `acked` messages and every replica agrees.
async fn stored(js: &jetstream::Context, at_least: usize) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut s) = js.get_stream("PL").await {
            if let Ok(i) = s.info().await.cloned() {
                let lagging = i
                    .cluster
                    .as_ref()
                    .is_none_or(|c| c.replicas.iter().any(|r| !r.current));
                if !lagging && i.state.messages as usize >= at_least {
                    let mut ids = Vec::new();
                    let mut complete = true;
                    for seq in i.state.first_sequence..=i.state.last_sequence {
                        match s.get_raw_message(seq).await {
                            Ok(m) => ids.push(String::from_utf8_lossy(&m.payload).parse().unwrap()),
                            Err(_) => complete = false,
                        }
                    }
                    assert_eq!(i.state.first_sequence, 1, "{i:?}");
                    if complete {
                        return ids;
                    }
                }
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never held {at_least} messages on settled replicas"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the publisher has an acknowledgement from after `cut`.
async fn acked_since(ledger: &Mutex<Ledger>, cut: Instant, kind: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while ledger
        .lock()
        .unwrap()
        .acked_at
        .last()
        .is_none_or(|t| *t < cut)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ack after {kind}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The durable consumer's side: messages it acknowledged with a confirmed ack.
#[derive(Default)]
struct Consumed {
    confirmed: BTreeSet<u64>,
}

/// Pulls and acks (confirmed) until every sequence up to `last` is confirmed: a sequence
/// the consumer skipped never comes and the wait fails; a confirmed one that comes again
/// fails at once.
async fn drain(js: &jetstream::Context, last: u64, consumed: &mut Consumed, what: &str) {
    use async_nats::jetstream::consumer::{pull, AckPolicy};
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + WAIT;
    while consumed.confirmed.range(..=last).count() < last as usize {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: the consumer never got {:?}",
            (1..=last)
                .filter(|s| !consumed.confirmed.contains(s))
                .take(10)
                .collect::<Vec<_>>()
        );
        let Ok(s) = js.get_stream("PL").await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let config = pull::Config {
            durable_name: Some("C".into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        };
        let Ok(c) = s.get_or_create_consumer::<pull::Config>("C", config).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let batch = c
            .fetch()
            .max_messages(200)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let Ok(mut msgs) = batch else { continue };
        while let Some(Ok(m)) = msgs.next().await {
            let Ok(seq) = m.info().map(|i| i.stream_sequence) else {
                continue;
            };
            assert!(
                !consumed.confirmed.contains(&seq),
                "{what}: seq {seq} came again after its ack was confirmed"
            );
            if m.double_ack().await.is_ok() {
                consumed.confirmed.insert(seq);
            }
        }
    }
}

/// The checker: every acked id exactly once, nothing never sent, no gaps.
fn check(kind: &str, round: u64, ids: &[u64], ledger: &Ledger) -> usize {
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for id in ids {
        *seen.entry(*id).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{kind} round {round}: duplicates {dups:?}");
    let lost: Vec<_> = ledger
        .acked
        .iter()
        .filter(|id| !seen.contains_key(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{kind} round {round}: acknowledged and lost: {lost:?}"
    );
    let foreign: Vec<_> = seen.keys().filter(|id| !ledger.sent.contains(id)).collect();
    assert!(
        foreign.is_empty(),
        "{kind} round {round}: never sent: {foreign:?}"
    );
    seen.len()
}

/// The longest pause between two acknowledgements from the `from`-th on (how long the
/// fault stopped writes).
fn max_gap(ledger: &Ledger, from: usize) -> Duration {
    ledger.acked_at[from.saturating_sub(1).min(ledger.acked_at.len())..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_of_a_minority_or_of_every_node_keeps_every_acked_message() {
    power_loss_rounds(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_on_five_nodes_keeps_every_acked_message() {
    power_loss_rounds(5).await;
}

/// `PETREL_JS_FAULT_ROUNDS` rounds of each power loss on `n` nodes with an R`n` stream.
async fn power_loss_rounds(n: usize) {
    let rounds = env_u64("PETREL_JS_FAULT_ROUNDS", 1);
    let seed = env_u64("PETREL_JS_FAULT_SEED", fastrand::u64(1..u64::MAX));
    eprintln!("js-faults seed={seed} (PETREL_JS_FAULT_SEED to replay)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut c = Cluster::start(n).await;
    let js = context(&c.url(0)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while js
        .create_stream(stream::Config {
            name: "PL".into(),
            subjects: vec!["pl.>".into()],
            num_replicas: n,
            ..Default::default()
        })
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "no stream");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next = 0;
    let mut consumed = Consumed::default();
    for round in 0..rounds {
        for kind in ["power-minority", "power-all"] {
            let js = context(&c.url(0)).await;
            let lead = leader(&js).await;
            let victims: Vec<usize> = if kind == "power-all" {
                (0..n).collect()
            } else {
                minority(&mut rng, n, lead)
            };
            // Publish through a node that survives when there is one.
            let urls: Vec<String> = (0..n)
                .filter(|i| kind == "power-all" || !victims.contains(i))
                .map(|i| c.url(i))
                .collect();
            let stop = Arc::new(AtomicBool::new(false));
            let before = ledger.lock().unwrap().acked.len();
            let task = tokio::spawn(publisher(urls, next, ledger.clone(), stop.clone()));
            tokio::time::sleep(Duration::from_millis(rng.u64(100..600))).await;
            let cut = Instant::now();
            c.power_loss(&victims, rng.u64(..)).await;
            if kind == "power-all" {
                // The publisher's node went away with the others: stop it, start another.
                stop.store(true, Ordering::Release);
                let _ = task.await;
                next = ledger.lock().unwrap().sent.last().map_or(0, |l| l + 1);
                let stop = Arc::new(AtomicBool::new(false));
                let urls = (0..n).map(|i| c.url(i)).collect();
                let task = tokio::spawn(publisher(urls, next, ledger.clone(), stop.clone()));
                tokio::time::sleep(Duration::from_millis(300)).await;
                acked_since(&ledger, cut, kind).await;
                stop.store(true, Ordering::Release);
                let _ = task.await;
            } else {
                acked_since(&ledger, cut, kind).await;
                stop.store(true, Ordering::Release);
                let _ = task.await;
            }
            next = ledger.lock().unwrap().sent.last().map_or(0, |l| l + 1);
            let js = context(&c.url(0)).await;
            let acked = ledger.lock().unwrap().acked.len();
            let ids = stored(&js, acked).await;
            let kept = check(kind, round, &ids, &ledger.lock().unwrap());
            drain(&js, ids.len() as u64, &mut consumed, kind).await;
            let gap = max_gap(&ledger.lock().unwrap(), before);
            eprintln!(
                "js-faults nodes={n} kind={kind} round={round} leader={lead} victims={victims:?} consumed={} acked={} total_acked={acked} stored={kept} lost=0 duplicates=0 max_ack_gap_ms={}",
                consumed.confirmed.len(),
                acked - before,
                gap.as_millis()
            );
        }
    }
    for n in c.nodes.iter_mut() {
        if let Some(s) = n.server.take() {
            s.shutdown().await;
        }
    }
}
