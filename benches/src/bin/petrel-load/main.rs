//! `petrel-load`: a raw-protocol NATS load generator for side-by-side runs of Petrel and
//! nats-server.
//!
//! The tool speaks the NATS text protocol over TCP itself so that it is not the bottleneck:
//! publishers write pre-encoded `PUB` batches with one large write each, subscribers parse
//! `MSG`/`HMSG` control lines with `memchr` straight out of a reused read buffer and only
//! count messages and bytes (no allocation per message).
//!
//! Flow control, identical for every server under test:
//! - every publish batch ends with `PING`, and at most `--max-pings` batches may be without
//!   their `PONG`, so the server never holds more than a few batches of unread input;
//! - the publisher never runs more than `--window` bytes ahead of the slowest subscriber, so
//!   no subscriber's outbound queue in the server gets near the 64 MiB `max_pending` limit
//!   (`--window 0` turns this off to stress the server's slow-consumer handling).
//!
//! The last line of output is machine readable: `RESULT key=value ...`.

mod args;
mod jetstream;
mod jsconsume;
mod protocol;
mod reqrep;
mod stats;
mod throughput;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};

use crate::args::{Args, Scenario, USAGE};
use crate::jetstream::{run_js_async, run_js_sync};
use crate::jsconsume::run_js_consume;
use crate::reqrep::run_reqrep;
use crate::stats::{clk_tck, token, Report};
use crate::throughput::run_throughput;

async fn run(a: &Args) -> Result<Report> {
    let tck = clk_tck();
    // Setup (connects, subscriptions) gets a few seconds on top of the measured phase;
    // js-consume's untimed prefill has its own --timeout, and the final ack check 5 s.
    let budget = match a.scenario {
        Scenario::JsConsume => 2 * a.timeout + Duration::from_secs(20),
        _ => a.timeout + Duration::from_secs(10),
    };
    let fut = async {
        match a.scenario {
            Scenario::ReqRep => run_reqrep(a, tck).await,
            Scenario::JsPubSync => run_js_sync(a, tck).await,
            Scenario::JsPubAsync => run_js_async(a, tck).await,
            Scenario::JsConsume => run_js_consume(a, tck).await,
            _ => run_throughput(a, tck).await,
        }
    };
    tokio::time::timeout(budget, fut)
        .await
        .map_err(|_| anyhow!("run did not finish within {budget:?}"))?
}

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("petrel-load: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("petrel-load: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(run(&args));
    rt.shutdown_timeout(Duration::from_millis(100));
    match res {
        Ok(report) => {
            report.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("petrel-load: {}: {msg}", args.scenario.name());
            println!(
                "RESULT scenario={} status=failed error={}",
                args.scenario.name(),
                token(&msg)
            );
            ExitCode::FAILURE
        }
    }
}
