//! Producer smoke tests against the real broker.

use std::time::Duration;

use kafka_blocking::producer::{Producer, Record};

use crate::harness::{bootstrap, client, create_topic, unique_topic};

#[test]
fn send_and_wait() {
    let c = client();
    let topic = unique_topic("p-smoke");
    create_topic(&c, &topic, 3);
    let p = Producer::builder()
        .bootstrap_servers(bootstrap())
        .build()
        .expect("producer");
    let mut futs = Vec::new();
    for i in 0..1000 {
        futs.push(
            p.send(Record::new(topic.as_str()).key(format!("k{i}")).value("v"))
                .expect("send"),
        );
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    let mut offsets = std::collections::HashMap::<i32, Vec<i64>>::new();
    for f in futs {
        let m = f.wait().expect("delivered");
        offsets.entry(m.partition()).or_default().push(m.offset());
    }
    let total: usize = offsets.values().map(Vec::len).sum();
    assert_eq!(total, 1000);
    for (p, o) in offsets {
        let mut sorted = o.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), o.len(), "duplicate offsets in partition {p}");
    }
    println!("{:?}", p.metrics());
    p.close(Duration::from_secs(10)).expect("close");
}
