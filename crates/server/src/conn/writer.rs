//! The writer task: waits for a wake-up, takes everything queued and writes it with
//! vectored writes under the write deadline; also sends the keep-alive PINGs and detects
//! stale connections.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::time::{interval_at, timeout, Instant, MissedTickBehavior};

use super::io::WriteSink;

use crate::client::{Client, CloseReason};
use crate::server::Shared;

/// Most slices per vectored write.
pub(crate) const MAX_IOV: usize = 64;

pub(crate) async fn write_loop<W: WriteSink>(shared: Arc<Shared>, client: Arc<Client>, mut wr: W) {
    let opts = shared.opts();
    let mut queue: VecDeque<Bytes> = VecDeque::new();
    let mut ping = interval_at(Instant::now() + opts.ping_interval, opts.ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let mut closing = tokio::select! {
            biased;
            () = client.cancelled() => true,
            () = client.notified() => false,
            _ = ping.tick() => {
                send_ping(&client, opts.ping_max);
                client.is_closed()
            }
        };
        if closing && !client.flush_on_close() {
            break;
        }
        client.take_for_writer(&mut queue);
        if queue.is_empty() {
            if closing {
                break;
            }
            continue;
        }
        let total: usize = queue.iter().map(Bytes::len).sum();
        let res = {
            let write = timeout(opts.write_deadline, write_all(&mut wr, &mut queue));
            tokio::pin!(write);
            if closing {
                write.await
            } else {
                tokio::select! {
                    r = &mut write => r,
                    () = client.cancelled() => {
                        closing = true;
                        if !client.flush_on_close() {
                            break;
                        }
                        write.await
                    }
                }
            }
        };
        match res {
            Ok(Ok(())) => client.written(total),
            Ok(Err(_)) => {
                client.close(CloseReason::WriteError);
                break;
            }
            Err(_) => {
                client.close_slow(CloseReason::SlowConsumerWriteDeadline);
                break;
            }
        }
        if closing {
            // Anything queued while the last write was in flight.
            client.outbound().take(&mut queue);
            if !queue.is_empty() {
                let _ = timeout(opts.write_deadline, write_all(&mut wr, &mut queue)).await;
            }
            break;
        }
    }
    let _ = timeout(Duration::from_secs(1), wr.finish()).await;
}

/// Queue a keep-alive PING, or close the connection as stale when too many are unanswered.
fn send_ping(client: &Client, ping_max: u32) {
    let out = client.pings_out.load(Ordering::Acquire);
    if out + 1 > ping_max {
        tracing::debug!(cid = client.cid, client = %client.addr, "Stale Client Connection - Closing");
        client.err_and_close("Stale Connection", CloseReason::StaleConnection);
        return;
    }
    client.pings_out.fetch_add(1, Ordering::AcqRel);
    client.meta.ping_sent();
    client.queue_raw(petrel_wire::encode::PING);
}

/// Write every queued chunk, up to [`MAX_IOV`] per vectored write.
async fn write_all<W: WriteSink>(wr: &mut W, queue: &mut VecDeque<Bytes>) -> io::Result<()> {
    while !queue.is_empty() {
        let n = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let k = fill_iov(queue, &mut iov);
            wr.write_iov(&iov[..k]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        advance(queue, n);
    }
    Ok(())
}

/// Fill `iov` from the front of `queue`; the number of slices used.
pub(crate) fn fill_iov<'a>(queue: &'a VecDeque<Bytes>, iov: &mut [IoSlice<'a>; MAX_IOV]) -> usize {
    let mut k = 0;
    for chunk in queue.iter().take(MAX_IOV) {
        iov[k] = IoSlice::new(chunk);
        k += 1;
    }
    k
}

/// Drop `n` written bytes from the front of `queue`.
pub(crate) fn advance(queue: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let Some(front) = queue.front_mut() else {
            return;
        };
        if front.len() <= n {
            n -= front.len();
            queue.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_across_chunks() {
        let mut q: VecDeque<Bytes> = ["abc", "de", "fgh"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        advance(&mut q, 4);
        assert_eq!(
            q,
            vec![Bytes::from_static(b"e"), Bytes::from_static(b"fgh")]
        );
        advance(&mut q, 4);
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn vectored_write_of_many_chunks() {
        let chunks: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("{i},"))).collect();
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut q: VecDeque<Bytes> = chunks.into_iter().collect();
        let mut sink = super::super::io::Half(Vec::<u8>::new());
        write_all(&mut sink, &mut q).await.unwrap();
        assert_eq!(sink.0, want);
    }
}
