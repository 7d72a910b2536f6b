//! Command line: the usage text, the scenario names and the `Args` flag parser.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

pub(crate) const USAGE: &str = "\
usage: petrel-load --scenario <pubsub|fanout|queue|reqrep|js-pub-sync|js-pub-async|js-consume>
                   [options]

options:
  --server <host:port>   server address (default 127.0.0.1:4222)
  --sub-server <h:p>     subscribers connect here (another node of a cluster; pubsub, fanout, queue)
  --msgs <n>             messages to publish, or requests for reqrep
                         (default 2000000; reqrep 20000; js-pub-sync 20000;
                         js-pub-async 200000); js-consume: messages prefilled and
                         consumed (default 200000)
  --size <bytes>         payload size (default 128)
  --subs <k>             subscribers for fanout / queue members for queue (default 4)
  --timeout <secs>       give up after this long (default 60; js-consume: for the
                         prefill and again for the consume)
  --server-pid <pid>     measure the server's CPU time from /proc/<pid>/stat
  --batch <n>            bytes of PUBs per write, each followed by PING (default 262144);
                         js-consume: messages per pull request (default 256)
  --max-pings <n>        publish batches allowed without their PONG (default 4)
  --window <bytes>       max bytes the publisher runs ahead of the slowest subscriber
                         (default 8388608; 0 = unlimited)
  --warmup <n>           reqrep, js-pub-sync: untimed requests before measuring
                         (default 1000)
  --inflight <n>         js-pub-async, js-consume prefill: max publishes without their
                         PubAck (default 256)
  --threads <n>          tokio worker threads (default 1: current-thread runtime)
  --replicas <n>         js-pub-sync, js-pub-async: the stream's num_replicas (default 1;
                         a cluster: the create is retried while it has no meta leader)
  -h, --help             this text

The last line printed is `RESULT key=value ...` (status=ok or status=failed).";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scenario {
    PubSub,
    Fanout,
    Queue,
    ReqRep,
    JsPubSync,
    JsPubAsync,
    JsConsume,
}

impl Scenario {
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pubsub" => Self::PubSub,
            "fanout" => Self::Fanout,
            "queue" => Self::Queue,
            "reqrep" => Self::ReqRep,
            "js-pub-sync" => Self::JsPubSync,
            "js-pub-async" => Self::JsPubAsync,
            "js-consume" => Self::JsConsume,
            other => bail!(
                "unknown scenario {other:?} (pubsub, fanout, queue, reqrep, js-pub-sync, \
                 js-pub-async, js-consume)"
            ),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::PubSub => "pubsub",
            Self::Fanout => "fanout",
            Self::Queue => "queue",
            Self::ReqRep => "reqrep",
            Self::JsPubSync => "js-pub-sync",
            Self::JsPubAsync => "js-pub-async",
            Self::JsConsume => "js-consume",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) scenario: Scenario,
    pub(crate) server: String,
    /// `--sub-server`: where subscribers connect (another node of a cluster); default
    /// `--server`.
    pub(crate) sub_server: Option<String>,
    pub(crate) msgs: Option<u64>,
    pub(crate) size: usize,
    pub(crate) subs: usize,
    pub(crate) timeout: Duration,
    pub(crate) server_pid: Option<u32>,
    /// `--batch` as given: bytes per publish write, or messages per pull request for
    /// js-consume (see `batch_bytes` and `pull_batch`).
    pub(crate) batch: Option<usize>,
    pub(crate) max_pings: usize,
    pub(crate) window: usize,
    pub(crate) warmup: u64,
    pub(crate) inflight: usize,
    pub(crate) threads: usize,
    /// `num_replicas` of the stream js-pub-sync / js-pub-async create (a cluster).
    pub(crate) replicas: u8,
}

fn parse_num<T: std::str::FromStr>(value: &str, flag: &str) -> Result<T> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| anyhow!("{flag}: invalid number {value:?}"))
}

impl Args {
    /// `Ok(None)` means help was asked for.
    pub(crate) fn parse(mut it: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let mut a = Args {
            scenario: Scenario::PubSub,
            server: "127.0.0.1:4222".into(),
            sub_server: None,
            msgs: None,
            size: 128,
            subs: 4,
            timeout: Duration::from_secs(60),
            server_pid: None,
            batch: None,
            max_pings: 4,
            window: 8 << 20,
            warmup: 1000,
            inflight: 256,
            threads: 1,
            replicas: 1,
        };
        let mut scenario_seen = false;
        while let Some(arg) = it.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if flag == "-h" || flag == "--help" {
                return Ok(None);
            }
            let mut value = || -> Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it.next().with_context(|| format!("{flag} needs a value")),
                }
            };
            match flag.as_str() {
                "--scenario" => {
                    a.scenario = Scenario::parse(&value()?)?;
                    scenario_seen = true;
                }
                "--server" => a.server = value()?,
                "--sub-server" => a.sub_server = Some(value()?),
                "--msgs" => a.msgs = Some(parse_num(&value()?, &flag)?),
                "--size" => a.size = parse_num(&value()?, &flag)?,
                "--subs" => a.subs = parse_num(&value()?, &flag)?,
                "--timeout" => {
                    let v = value()?;
                    let secs: f64 = parse_num(v.trim_end_matches('s'), &flag)?;
                    if !(secs > 0.0 && secs < 1e6) {
                        bail!("--timeout must be a positive number of seconds");
                    }
                    a.timeout = Duration::from_secs_f64(secs);
                }
                "--server-pid" => a.server_pid = Some(parse_num(&value()?, &flag)?),
                "--batch" => a.batch = Some(parse_num(&value()?, &flag)?),
                "--max-pings" => a.max_pings = parse_num(&value()?, &flag)?,
                "--window" => a.window = parse_num(&value()?, &flag)?,
                "--warmup" => a.warmup = parse_num(&value()?, &flag)?,
                "--inflight" => a.inflight = parse_num(&value()?, &flag)?,
                "--threads" => a.threads = parse_num(&value()?, &flag)?,
                "--replicas" => a.replicas = parse_num(&value()?, &flag)?,
                other => bail!("unknown flag {other:?}"),
            }
        }
        if !scenario_seen {
            bail!("--scenario is required");
        }
        if a.subs == 0 {
            bail!("--subs must be at least 1");
        }
        if a.max_pings == 0 {
            bail!("--max-pings must be at least 1");
        }
        if a.inflight == 0 {
            bail!("--inflight must be at least 1");
        }
        if a.scenario == Scenario::JsConsume && a.batch == Some(0) {
            bail!("--batch (messages per pull request) must be at least 1");
        }
        if a.msgs == Some(0) {
            bail!("--msgs must be at least 1");
        }
        Ok(Some(a))
    }

    /// Bytes of `PUB`s per write (`--batch`, default 256 KiB): every scenario's publisher,
    /// including the untimed prefill of js-consume.
    pub(crate) fn batch_bytes(&self) -> usize {
        match self.scenario {
            Scenario::JsConsume => 256 * 1024,
            _ => self.batch.unwrap_or(256 * 1024),
        }
    }

    /// Messages per pull request of js-consume (`--batch`, default 256).
    pub(crate) fn pull_batch(&self) -> usize {
        self.batch.unwrap_or(256)
    }
}
