//! Gate 6 at 1,000 msg/s on in-memory ports: a slot is spread over shard keys, so that no key
//! takes one number's every write, and the shards together never admit more than the slot.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::sqs::SqsMessage;
use sender::memory::{MemorySenderPorts, MemoryStores};
use sender::{Sender, SenderConfig, Verdict};
use serde_json::json;
use whatsapp_core::graph::{
    MarkReadRequest, PhoneNumberInfo, SendMessageRequest, SendMessageResponse,
};
use whatsapp_core::policy::{shard_capacity, slot_capacity, slot_shards};
use whatsapp_core::ports::{GraphApi, GraphCallError, NumberLimits, SessionStore, UserKey};

const PHONE: &str = "106540352242922";
const NOW_MS: i64 = 1_790_812_800_000;

#[derive(Default)]
struct Accepting(AtomicUsize);

impl GraphApi for Accepting {
    async fn send_message(
        &self,
        _: &str,
        _: &SendMessageRequest<'_>,
        _: &str,
    ) -> Result<SendMessageResponse, GraphCallError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(common::accepted(n))
    }

    async fn mark_read(&self, _: &str, _: &MarkReadRequest, _: &str) -> Result<(), GraphCallError> {
        Ok(())
    }

    async fn phone_number(&self, _: &str, _: &str) -> Result<PhoneNumberInfo, GraphCallError> {
        Ok(PhoneNumberInfo::default())
    }
}

fn record(i: usize) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(format!("id-{i}"));
    m.receipt_handle = Some(format!("rh-{i}"));
    m.body = Some(
        json!({"version": 1, "idempotency_key": format!("k{i}"), "phone_number_id": PHONE,
               "to": {"wa_id": format!("4477{i:08}")},
               "message": {"type": "text", "text": {"body": "hello"}}})
        .to_string(),
    );
    m
}

/// A trickle at 1,000 msg/s (each job its own invocation, the worst case for writes per key)
/// from four instances sharing the tables: the slot's writes spread over its four shard keys,
/// no key is written more than its share plus the tries that found it full, and no shard
/// admits more than its capacity.
#[tokio::test]
async fn a_1000_msg_s_trickle_spreads_a_slot_over_its_shards() {
    let stores = Arc::new(MemoryStores::default());
    stores.control.limits.lock().unwrap().insert(
        PHONE.into(),
        NumberLimits {
            mps: Some(1_000),
            ..NumberLimits::default()
        },
    );
    let jobs = 200;
    for i in 0..jobs {
        stores
            .sessions
            .record_inbound(
                &UserKey {
                    phone_number_id: PHONE.into(),
                    user: format!("4477{i:08}"),
                },
                NOW_MS / 1000 - 60,
                false,
            )
            .await
            .unwrap();
    }
    let config = SenderConfig {
        numbers: sender::config::parse_numbers(&format!("{PHONE}:102290129340398")).unwrap(),
        // Slots within the first second only: no in-process wait in this test.
        throughput_max_wait_ms: 1_000,
        ..SenderConfig::default()
    };
    let senders: Vec<_> = (0..4)
        .map(|_| {
            Sender::new(
                MemorySenderPorts::new(Arc::clone(&stores), Accepting::default()),
                config.clone(),
            )
        })
        .collect();
    let runs = (0..jobs).map(|i| {
        let s = &senders[i % senders.len()];
        async move { s.handle(&[record(i)], NOW_MS, NOW_MS + 30_000).await }
    });
    let _ = futures_util::future::join_all(runs).await;
    let accepted: usize = senders
        .iter()
        .flat_map(|s| s.ports.outcomes.bodies())
        .filter(|b| {
            serde_json::from_str::<sender::Outcome>(b).is_ok_and(|o| o.outcome == Verdict::Accepted)
        })
        .count();
    assert_eq!(
        accepted, jobs,
        "200 jobs fit in two seconds of a 1,000 msg/s cap"
    );

    let shards = slot_shards(1_000);
    assert_eq!(shards, 4);
    let slots = stores.control.slots.lock().unwrap().clone();
    let mut by_slot: HashMap<i64, Vec<(u32, u64)>> = HashMap::new();
    for ((_, slot, shard), count) in &slots {
        by_slot.entry(*slot).or_default().push((*shard, *count));
    }
    let first = NOW_MS / 100;
    let used = &by_slot[&first];
    assert_eq!(
        used.len(),
        shards as usize,
        "every shard key of the first slot written"
    );
    for (shard, count) in used {
        let cap = u64::from(shard_capacity(slot_capacity(1_000, first), *shard, shards));
        // Each write adds one: `cap` of them were admitted, the rest were tries that found
        // the shard full and moved on.
        assert!(*count >= cap, "shard {shard}: {count} < {cap}");
        assert!(
            *count <= cap + u64::from(jobs as u32) / u64::from(shards),
            "shard {shard} written {count} times"
        );
    }
}
