//! What `send-load` prints: the Graph API's answers, the sender's handler time, the AWS calls,
//! capacity units and failed writes per message, and the hot-key report.

use std::collections::BTreeMap;

use serde_json::json;
use simulator::Simulator;

use super::load_scenario::Scenario;

pub struct Report {
    pub accepted: usize,
    pub first_ms: i64,
    pub last_ms: i64,
    pub throttled: usize,
    pub other_errors: usize,
}

pub fn report(sim: &Simulator) -> Report {
    let reqs: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/messages") && r.method == "POST")
        .collect();
    let ok: Vec<i64> = reqs
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.at_ms)
        .collect();
    Report {
        accepted: ok.len(),
        first_ms: ok.iter().copied().min().unwrap_or(0),
        last_ms: ok.iter().copied().max().unwrap_or(0),
        throttled: reqs.iter().filter(|r| r.error_code == Some(130429)).count(),
        other_errors: reqs
            .iter()
            .filter(|r| r.status != 200 && r.error_code != Some(130429))
            .count(),
    }
}

/// The CPU seconds a process has used (utime + stime from /proc), to show who saturates.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

pub fn ministack_pid() -> Option<u32> {
    std::fs::read_to_string(".local/ministack.pid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The sender's handler time per invocation and per accepted message.
pub fn print_invocations(mut inv: Vec<(f64, usize)>, accepted: usize, latency_ms: u64) {
    if inv.is_empty() {
        return;
    }
    inv.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = inv.iter().map(|(ms, _)| ms).sum();
    let records: usize = inv.iter().map(|(_, n)| n).sum();
    println!(
        "sender handler   : {} invocations of {:.1} records on average; median {:.0} ms, p90 {:.0} ms; \
         {:.1} ms of handler time per accepted message (Graph latency {latency_ms} ms)",
        inv.len(),
        records as f64 / inv.len() as f64,
        inv[inv.len() / 2].0,
        inv[inv.len() * 9 / 10].0,
        total / accepted.max(1) as f64
    );
}

/// The measured figures per message (sender and webhook), and the
/// `cost-json` line `scripts/cost` reads. The producer's own `SendMessage` is one request per
/// job (it is not made through the proxy: the jobs were queued before the run).
pub fn per_message(
    inv: &[(f64, usize)],
    hook: &[f64],
    scenario: Scenario,
    counts: &super::counting_proxy::Counts,
    calls: &BTreeMap<String, usize>,
    jobs: usize,
    extra: serde_json::Map<String, serde_json::Value>,
) {
    let per = |n: f64| n / jobs as f64;
    let sqs: usize = calls
        .iter()
        .filter(|(op, _)| op.starts_with("AmazonSQS."))
        .map(|(_, n)| n)
        .sum();
    let units = counts.units();
    println!(
        "capacity units   : by table, per message (DynamoDB's ConsumedCapacity; failed writes as charged)"
    );
    for (table, u) in &units {
        let role = table.rsplit('-').next().unwrap_or(table);
        println!(
            "    {role:<12} read {:.3}  write {:.3} (of which indexes {:.3}, failed conditions {:.3})",
            per(u.read),
            per(u.write),
            per(u.index_write),
            per(u.failed_write)
        );
    }
    // Retries: conditional writes that failed, by the kind of key (the part before the first #).
    let mut retries: BTreeMap<String, usize> = BTreeMap::new();
    for (key, n) in counts.failed_writes() {
        let pk = key.split_once(' ').map_or(key.as_str(), |(_, k)| k);
        let kind = pk.split('#').next().unwrap_or(pk).to_owned();
        *retries.entry(kind).or_default() += n;
    }
    let reservation_retries = per(*retries.get("BUDGET").unwrap_or(&0) as f64);
    println!(
        "failed writes    : {} per message by key kind; messaging-limit reservation retries {reservation_retries:.4}/msg",
        retries
            .iter()
            .map(|(k, n)| format!("{k} {:.4}", per(*n as f64)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let m = super::load_scenario::PerMessage {
        invocations: per(inv.len() as f64),
        handler_ms: per(inv.iter().map(|(ms, _)| ms).sum::<f64>()),
        webhook_invocations: per(hook.len() as f64),
        webhook_ms: per(hook.iter().sum::<f64>()),
        sqs_requests: 1.0 + per(sqs as f64),
        read_units: per(units.values().map(|u| u.read).sum()),
        write_units: per(units.values().map(|u| u.write).sum()),
    };
    super::load_scenario::print_measured(scenario, &m);
    let mut cost = json!({"scenario": scenario.name(), "jobs": jobs, "invocations": m.invocations,
               "handler_ms": m.handler_ms, "webhook_invocations": m.webhook_invocations,
               "webhook_ms": m.webhook_ms, "sqs_requests": m.sqs_requests,
               "read_units": m.read_units, "write_units": m.write_units,
               "reservation_retries": reservation_retries,
               "tables": units.iter().map(|(t, u)| (t.rsplit('-').next().unwrap_or(t).to_owned(),
                   json!({"read": per(u.read), "write": per(u.write), "index_write": per(u.index_write)})))
                   .collect::<serde_json::Map<String, serde_json::Value>>()});
    if let Some(c) = cost.as_object_mut() {
        c.extend(extra);
    }
    println!("cost-json {cost}");
}

/// The hot-key report: the keys the most writes landed on, per message, and what that is at
/// 1,000 msg/s. A throughput-slot key (`TP#…`) lives one 100 ms slot: its rate is its writes
/// within that slot, bounded by its shard's capacity plus the tries that found it full
/// (`policy::slot_shards`: at most 250 admitted writes/s on a key at any cap).
pub fn hot_keys(writes: &BTreeMap<String, usize>, jobs: usize) {
    let short = |k: &str| -> String {
        // `load-<pid>-<time>-<table> <pk>`: the table's role, and the key.
        let (table, key) = k.split_once(' ').unwrap_or((k, ""));
        let role = table.rsplit('-').next().unwrap_or(table);
        let role = table.find("/index/").map_or(role.to_owned(), |i| {
            format!(
                "{}{}",
                table[..i].rsplit('-').next().unwrap_or(""),
                &table[i..]
            )
        });
        format!("{role} {key}")
    };
    let mut sorted: Vec<(&String, &usize)> = writes.iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let (slots, keys): (Vec<_>, Vec<_>) = sorted.iter().partition(|(k, _)| k.contains(" TP#"));
    println!(
        "hot keys         : DynamoDB writes by partition key ({} keys written)",
        writes.len()
    );
    for (k, n) in keys.iter().take(3) {
        let per_message = **n as f64 / jobs as f64;
        println!(
            "    {:<60} {n:>6} writes, {per_message:.3}/msg, at 1,000 msg/s: {:.0} writes/s",
            short(k),
            per_message * 1000.0
        );
    }
    if let Some((k, n)) = slots.first() {
        println!(
            "    {:<60} {n:>6} writes within its 100 ms slot: {} writes/s while it lasts",
            short(k),
            **n * 10
        );
    }
    // Every kind of key (the table, and the key up to its first `#`), by its hottest key: that
    // no kind is over 300 writes/s at 1,000 msg/s says no key is.
    let mut kinds: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for (k, n) in &keys {
        let name = short(k);
        let kind = match name.split_once('#') {
            Some((head, _)) => head.to_owned(),
            None => name.split(' ').next().unwrap_or("").to_owned(),
        };
        let e = kinds.entry(kind).or_insert_with(|| (name.clone(), 0));
        if **n > e.1 {
            *e = (name, **n);
        }
    }
    let mut kinds: Vec<_> = kinds.into_values().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1));
    println!("    hottest key of each kind, at 1,000 msg/s:");
    for (name, n) in kinds {
        println!(
            "      {name:<58} {:.0} writes/s",
            n as f64 / jobs as f64 * 1000.0
        );
    }
}

/// DynamoDB's size of an item, as it bills storage and write units: each attribute's name and
/// value (numbers about half their digits plus one byte, maps and lists 3 bytes plus one per
/// element), without the 100 bytes of overhead storage adds per item.
pub fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match v {
        A::S(s) => s.len(),
        A::N(n) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(v) => v.iter().map(String::len).sum(),
        A::Ns(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        A::L(l) => 3 + l.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Storage the run left, per message: for each table whose items expire, bytes × months kept
/// (each item's `expires_at` from now; 100 bytes of overhead per item, as DynamoDB bills), and
/// the messages table's two index entries. Tables of per-user records (contacts) are left out.
pub async fn storage(
    ddb: &aws_sdk_dynamodb::Client,
    tables: &BTreeMap<&'static str, String>,
    jobs: usize,
    now: i64,
) -> Result<serde_json::Map<String, serde_json::Value>, Box<dyn std::error::Error + Send + Sync>> {
    const MONTH_S: f64 = 30.44 * 86_400.0;
    let mut out = serde_json::Map::new();
    for role in ["messages", "dedupe", "sessions", "control"] {
        let (mut bytes, mut byte_months, mut index_byte_months, mut items) =
            (0usize, 0.0, 0.0, 0usize);
        // The usage index's entries, as the aggregator's queries read them (without overhead).
        let (mut usage_entries, mut usage_bytes) = (0usize, 0usize);
        let mut start = None;
        loop {
            let page = ddb
                .scan()
                .table_name(&tables[role])
                .set_exclusive_start_key(start)
                .send()
                .await?;
            for item in page.items() {
                let Some(exp) = item
                    .get("expires_at")
                    .and_then(|v| v.as_n().ok()?.parse::<i64>().ok())
                else {
                    continue;
                };
                let months = (exp - now).max(0) as f64 / MONTH_S;
                let size = item_size(item);
                items += 1;
                bytes += size;
                byte_months += (size + 100) as f64 * months;
                let entry = |keys: &[&str]| -> usize {
                    keys.iter()
                        .filter_map(|k| item.get(*k).map(|v| k.len() + value_size(v)))
                        .sum::<usize>()
                        + 100
                };
                if item.contains_key("callback_unpriced") {
                    index_byte_months += entry(&["pk", "callback_unpriced"]) as f64 * months;
                }
                if item.contains_key("usage_pk") {
                    let mut keys = vec!["pk", "usage_pk", whatsapp_core::usage::USAGE_SORT_KEY];
                    keys.extend(whatsapp_core::usage::USAGE_INDEX_ATTRIBUTES);
                    index_byte_months += entry(&keys) as f64 * months;
                    usage_entries += 1;
                    usage_bytes += entry(&keys) - 100;
                }
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        println!(
            "storage          : {role:<9} {items} items expiring, {:.0} bytes on average; {:.0} byte-months per message{}",
            bytes as f64 / items.max(1) as f64,
            byte_months / jobs as f64,
            if index_byte_months > 0.0 {
                format!(", its indexes {:.0}", index_byte_months / jobs as f64)
            } else {
                String::new()
            }
        );
        out.insert(
            role.to_owned(),
            json!({"byte_months": byte_months / jobs as f64,
            "index_byte_months": index_byte_months / jobs as f64,
            "item_bytes": bytes as f64 / items.max(1) as f64,
            "usage_entries": usage_entries as f64 / jobs as f64,
            "usage_entry_bytes": usage_bytes as f64 / usage_entries.max(1) as f64}),
        );
    }
    Ok(out)
}
