//! Verify + parse of a median (~3 KB) webhook body: the webhook's hot path before any I/O.
//! Compares the typed parse with a `serde_json::Value` baseline measured in the same run.
//!
//! `cargo bench -p whatsapp-core --bench webhook_parse`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use whatsapp_core::signature::{sign, verify};
use whatsapp_core::webhook::{Envelope, Item};

const SECRET: &[u8] = b"bench-app-secret";

/// Statuses (three quarters of traffic) and an inbound message, batched as Meta does: ~3 KB.
fn body() -> Vec<u8> {
    let status = |i: usize, s: &str| {
        json!({"id": format!("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA{i}"), "status": s,
        "timestamp": "1750857384", "recipient_id": "16505551234", "recipient_user_id": "US.13491208655302741918",
        "biz_opaque_callback_data": format!("job:order-{i}-shipped"),
        "pricing": {"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"}})
    };
    let md = json!({"display_phone_number": "15550783881", "phone_number_id": "106540352242922"});
    let v = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "time": 1750857390, "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": md,
            "statuses": [status(1, "sent"), status(2, "delivered"), status(3, "read"), status(4, "delivered"), status(5, "sent"), status(6, "read")]}},
        {"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": md,
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234", "user_id": "US.13491208655302741918"}],
            "messages": [{"from": "16505551234", "from_user_id": "US.13491208655302741918", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRB",
                "timestamp": "1749416383", "type": "text", "text": {"body": "Does it come in another colour? I would like the blue one, size M, delivered to the usual address."}}]}}]}]});
    v.to_string().into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = body();
    let sig = sign(SECRET, &body);
    eprintln!("body: {} bytes", body.len());
    let mut g = c.benchmark_group("webhook_verify_and_parse_3kb");
    g.sample_size(60).measurement_time(Duration::from_secs(4));
    g.bench_function("typed", |b| {
        b.iter(|| {
            verify(SECRET, black_box(&body), Some(&sig)).unwrap();
            let env = Envelope::from_slice(black_box(&body)).unwrap();
            let statuses = env
                .items()
                .filter(|(_, i)| matches!(i, Item::Status { .. }))
                .count();
            black_box(statuses)
        })
    });
    g.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| {
            verify(SECRET, black_box(&body), Some(&sig)).unwrap();
            let v: Value = serde_json::from_slice(black_box(&body)).unwrap();
            let statuses: usize = v["entry"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|e| e["changes"].as_array().unwrap())
                .map(|c| c["value"]["statuses"].as_array().map_or(0, Vec::len))
                .sum();
            black_box(statuses)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
