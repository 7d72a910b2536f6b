//! Which replicas of a stream subscribe its subjects: every one from the moment it opens
//! until it knows a leader — so the first publishes after a create, which is answered
//! once the new group has a leader, find an interest that was spread long before — and
//! from then on only the leader. As with nats-server, a publish while the stream has no
//! leader finds no interest and its publisher hears 503 no-responders at once (and
//! retries) instead of waiting out its timeout, and followers no longer receive every
//! publish only to drop it.

use std::sync::Arc;

use parking_lot::Mutex;
use petrel_replication::NodeId;

use crate::jetstream::JetStream;
use crate::stream::Stream;

/// The subscription state of one replica.
pub(crate) struct Interest {
    state: Mutex<State>,
}

struct State {
    /// The stream's subjects are subscribed here (as [`JetStream::register`] leaves them).
    subscribed: bool,
    /// A leader was known since the replica opened.
    led: bool,
}

impl Default for Interest {
    fn default() -> Self {
        Interest {
            state: Mutex::new(State {
                subscribed: true,
                led: false,
            }),
        }
    }
}

impl Interest {
    /// Follows the group's leadership: `leader` is the leader this node knows now.
    pub fn follow(&self, js: &JetStream, stream: &Arc<Stream>, me: NodeId, leader: Option<NodeId>) {
        let mut st = self.state.lock();
        st.led |= leader.is_some();
        let want = leader == Some(me) || !st.led;
        if want == st.subscribed {
            return;
        }
        st.subscribed = want;
        if want {
            let subjects = stream.subjects.read().clone();
            js.subscribe(stream, &subjects);
        } else {
            js.unsubscribe(stream, None);
        }
    }

    /// A config update changed the subjects: the subscriptions follow while there are any.
    pub fn subjects_changed(
        &self,
        js: &JetStream,
        stream: &Arc<Stream>,
        added: &[String],
        removed: &[String],
    ) {
        let st = self.state.lock();
        if st.subscribed {
            js.unsubscribe(stream, Some(removed));
            js.subscribe(stream, added);
        }
    }
}
