//! Bounded queues between the publishers' tasks and JetStream's own tasks: a stream's
//! ingest queue, a consumer's events, the API requests.
//!
//! A [`Backlog`] is bounded by messages and by bytes. Past half of either limit a push
//! answers [`Pushed::Stall`]: the publishing client stops reading until the queue drains
//! back under half ([`Pressure`]), as with the core producer stall. At the limit a push is
//! refused ([`Pushed::Full`]) and the caller answers the overflow (an error PubAck, a
//! dropped request). Memory a client can pin here is therefore bounded.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::port::Pressure;

/// Limits of one backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most items queued.
    pub msgs: usize,
    /// Most bytes queued (an item larger than this is still taken into an empty queue).
    pub bytes: usize,
}

/// What became of a push.
#[derive(Debug)]
pub(crate) enum Pushed<T> {
    /// Queued.
    Ok,
    /// Queued; the queue is past half of its limits.
    Stall,
    /// Refused: the queue is full. The item is handed back.
    Full(T),
    /// Refused: the queue is closed (its task is gone); the item was dropped.
    Closed,
}

struct Queue<T> {
    items: VecDeque<(T, usize)>,
    bytes: usize,
    closed: bool,
}

/// A bounded multi-producer, single-consumer queue.
pub(crate) struct Backlog<T> {
    q: Mutex<Queue<T>>,
    limits: Limits,
    /// Wakes the consuming task.
    ready: Notify,
    /// Wakes stalled publishers.
    drained: Notify,
}

impl<T> Backlog<T> {
    /// An empty queue with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            q: Mutex::new(Queue {
                items: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            limits,
            ready: Notify::new(),
            drained: Notify::new(),
        }
    }

    /// Queues `item`, which holds `bytes` of memory, unless a limit would be passed.
    pub fn push(&self, item: T, bytes: usize) -> Pushed<T> {
        let mut q = self.q.lock();
        let over = q.items.len() >= self.limits.msgs
            || (!q.items.is_empty() && q.bytes.saturating_add(bytes) > self.limits.bytes);
        if q.closed {
            return Pushed::Closed;
        }
        if over {
            return Pushed::Full(item);
        }
        q.items.push_back((item, bytes));
        q.bytes += bytes;
        let stall = self.pressed(&q);
        drop(q);
        self.ready.notify_one();
        if stall {
            Pushed::Stall
        } else {
            Pushed::Ok
        }
    }

    /// Queues a control item (a close request) whatever the limits; dropped when the
    /// queue is closed.
    pub fn push_control(&self, item: T) {
        let mut q = self.q.lock();
        if q.closed {
            return;
        }
        q.items.push_back((item, 0));
        drop(q);
        self.ready.notify_one();
    }

    /// Takes up to `max` items (oldest first) into `out`, stopping before `max_bytes`
    /// would be passed (the first item is always taken); returns how many.
    pub fn take(&self, max: usize, max_bytes: usize, out: &mut Vec<T>) -> usize {
        let mut q = self.q.lock();
        let (mut n, mut freed) = (0, 0);
        while n < max {
            match q.items.front() {
                Some((_, b)) if n == 0 || freed + b <= max_bytes => {}
                _ => break,
            }
            let Some((item, bytes)) = q.items.pop_front() else {
                break;
            };
            freed += bytes;
            n += 1;
            out.push(item);
        }
        q.bytes -= freed;
        let relieved = !self.pressed(&q);
        drop(q);
        if n > 0 && relieved {
            self.drained.notify_waiters();
        }
        n
    }

    /// Waits until something is queued, then takes like [`Backlog::take`].
    pub async fn recv(&self, max: usize, max_bytes: usize, out: &mut Vec<T>) -> usize {
        loop {
            let ready = self.ready.notified();
            let n = self.take(max, max_bytes, out);
            if n > 0 {
                return n;
            }
            ready.await;
        }
    }

    /// Refuses every later push (the consumer is gone) and drops what is queued.
    pub fn close(&self) {
        let mut q = self.q.lock();
        q.closed = true;
        q.items.clear();
        q.bytes = 0;
        drop(q);
        self.drained.notify_waiters();
    }

    /// The notifier of the consuming task (also woken by [`Backlog::push`]).
    pub fn ready(&self) -> &Notify {
        &self.ready
    }

    /// Items queued.
    pub fn len(&self) -> usize {
        self.q.lock().items.len()
    }

    fn pressed(&self, q: &Queue<T>) -> bool {
        q.items.len() > self.limits.msgs / 2 || q.bytes > self.limits.bytes / 2
    }
}

impl<T: Send> Pressure for Backlog<T> {
    fn relieved(&self) -> bool {
        let q = self.q.lock();
        q.closed || !self.pressed(&q)
    }

    fn notify(&self) -> &Notify {
        &self.drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Backlog<u32> {
        Backlog::new(Limits {
            msgs: 4,
            bytes: 100,
        })
    }

    #[test]
    fn stalls_past_half_and_refuses_at_the_limit() {
        let b = small();
        assert!(matches!(b.push(1, 10), Pushed::Ok));
        assert!(matches!(b.push(2, 10), Pushed::Ok));
        assert!(matches!(b.push(3, 10), Pushed::Stall));
        assert!(!b.relieved());
        assert!(matches!(b.push(4, 10), Pushed::Stall));
        assert!(matches!(b.push(5, 10), Pushed::Full(5)));
        let mut out = Vec::new();
        assert_eq!(b.take(2, usize::MAX, &mut out), 2);
        assert_eq!(out, vec![1, 2]);
        assert!(b.relieved());
        // A byte budget: the first item always, then only what fits.
        out.clear();
        assert_eq!(b.take(10, 5, &mut out), 1);
        assert_eq!(b.take(10, 20, &mut out), 1);
    }

    #[test]
    fn bytes_bound_but_one_large_item_fits_an_empty_queue() {
        let b = small();
        assert!(matches!(b.push(1, 500), Pushed::Stall));
        assert!(matches!(b.push(2, 1), Pushed::Full(2)));
        let mut out = Vec::new();
        b.take(10, usize::MAX, &mut out);
        assert!(matches!(b.push(3, 60), Pushed::Stall));
        assert!(matches!(b.push(4, 41), Pushed::Full(4)));
        assert!(matches!(b.push(5, 40), Pushed::Stall));
    }

    #[test]
    fn control_items_pass_the_limits_and_close_refuses() {
        let b = small();
        for i in 0..4 {
            b.push(i, 1);
        }
        b.push_control(99);
        assert_eq!(b.len(), 5);
        b.close();
        assert!(matches!(b.push(1, 1), Pushed::Closed));
        b.push_control(100);
        assert_eq!(b.len(), 0);
        assert!(b.relieved());
    }

    #[tokio::test]
    async fn recv_waits_for_a_push() {
        let b = std::sync::Arc::new(small());
        let b2 = b.clone();
        let t = tokio::spawn(async move {
            let mut out = Vec::new();
            b2.recv(8, usize::MAX, &mut out).await;
            out
        });
        tokio::task::yield_now().await;
        b.push(7, 1);
        assert_eq!(t.await.unwrap(), vec![7]);
    }
}
