//! One client connection: accept-time checks, the INFO greeting, the reader (this task)
//! and the writer (its own task), and cleanup when either side ends.

mod reader;
mod trace;
mod writer;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::{Client, CloseReason};
use crate::server::Shared;
use crate::sub::SubRef;

/// Serve one accepted TCP connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let cid = shared.next_cid();
    let nonce = if crate::auth::needs_nonce(&shared.opts.auth) {
        crate::auth::nonce()
    } else {
        String::new()
    };
    let client = Arc::new(Client::new(
        cid,
        addr,
        shared.opts.max_pending,
        shared.stats.clone(),
        nonce,
    ));
    let mut greeting = bytes::BytesMut::new();
    petrel_wire::encode::info(&mut greeting, &shared.info_for(&client));

    if !shared.register(&client) {
        // Over max_connections: greet, refuse, close.
        let mut stream = stream;
        petrel_wire::encode::err(&mut greeting, "maximum connections exceeded");
        let _ = stream.write_all(&greeting).await;
        let _ = stream.shutdown().await;
        tracing::warn!(cid, client = %addr, "Maximum connections exceeded");
        return;
    }
    tracing::debug!(cid, client = %addr, "Client connection created");
    client.queue_raw(&greeting);

    let (rd, wr) = stream.into_split();
    let writer = tokio::spawn(writer::write_loop(shared.clone(), client.clone(), wr));
    client.flush();
    reader::read_loop(&shared, &client, rd).await;
    client.close(CloseReason::ClientClosed);
    let _ = writer.await;

    let subs = std::mem::take(&mut *client.subs.lock());
    if !subs.is_empty() {
        let mut sublist = shared.sublist.write();
        for sub in subs.into_values() {
            let sub = SubRef(sub);
            sublist.remove(&sub.subject, sub.queue.as_deref(), &sub);
        }
    }
    shared.unregister(cid);
    let reason = client.close_reason().unwrap_or(CloseReason::ClientClosed);
    tracing::debug!(cid, client = %addr, reason = reason.as_str(), "Client connection closed");
}
