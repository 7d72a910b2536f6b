//! Queue groups: each message to exactly one member, spread across members.

use std::time::Duration;

use futures::StreamExt;
use petrel_testkit::spawn;

#[tokio::test]
async fn queue_group_distributes_across_three_members() {
    let s = spawn().await;
    let mut members = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = async_nats::connect(s.client_url()).await.unwrap();
        let sub = c
            .queue_subscribe("chat.workflow.execute.*", "workflow-workers".into())
            .await
            .unwrap();
        c.flush().await.unwrap();
        members.push(sub);
        clients.push(c);
    }
    let observer_client = async_nats::connect(s.client_url()).await.unwrap();
    let mut observer = observer_client.subscribe("chat.workflow.>").await.unwrap();
    observer_client.flush().await.unwrap();

    let publisher = async_nats::connect(s.client_url()).await.unwrap();
    const N: usize = 900;
    for i in 0..N {
        publisher
            .publish(
                format!("chat.workflow.execute.{}", i % 7),
                i.to_string().into(),
            )
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();

    let mut seen = vec![false; N];
    let mut counts = [0usize; 3];
    let mut total = 0;
    while total < N {
        let (m, idx, _) = tokio::time::timeout(Duration::from_secs(10), async {
            futures::future::select_all(members.iter_mut().map(|s| Box::pin(s.next()))).await
        })
        .await
        .expect("queue members received fewer messages than published");
        let m = m.unwrap();
        let i: usize = std::str::from_utf8(&m.payload).unwrap().parse().unwrap();
        assert!(!seen[i], "message {i} delivered twice in one group");
        seen[i] = true;
        counts[idx] += 1;
        total += 1;
    }
    for (idx, sub) in members.iter_mut().enumerate() {
        assert!(
            tokio::time::timeout(Duration::from_millis(200), sub.next())
                .await
                .is_err(),
            "member {idx} got an extra message"
        );
    }
    for c in counts {
        assert!(c > N / 10, "uneven spread: {counts:?}");
    }
    // The plain observer still gets every message.
    for _ in 0..N {
        tokio::time::timeout(Duration::from_secs(5), observer.next())
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn queue_member_leaving_moves_traffic_to_the_rest() {
    let s = spawn().await;
    let a = async_nats::connect(s.client_url()).await.unwrap();
    let b = async_nats::connect(s.client_url()).await.unwrap();
    let sub_a = a.queue_subscribe("jobs", "w".into()).await.unwrap();
    let mut sub_b = b.queue_subscribe("jobs", "w".into()).await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    drop(sub_a);
    a.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for i in 0..50 {
        a.publish("jobs", format!("{i}").into()).await.unwrap();
    }
    a.flush().await.unwrap();
    for _ in 0..50 {
        tokio::time::timeout(Duration::from_secs(5), sub_b.next())
            .await
            .unwrap()
            .unwrap();
    }
}
