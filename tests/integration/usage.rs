//! Finance usage on ministack: status webhooks replayed through the event processor into the
//! messages table, counted by the usage refresh, priced from the rate card, and reconciled
//! against the simulator's `pricing_analytics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{Days, NaiveDate};
use finance::counting::{Counts, UsageKey};
use finance::period::Period;
use finance::rates::{RateCard, parse_csv};
use finance::report::{self, Dimension};
use finance::store::{Imported, PricedIndex, RateTable, UsageTable, day_pk, month_pk};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use whatsapp_aws::AwsIngestPorts;
use whatsapp_core::ingest::IngestConfig;

use crate::sender::{Rig, graph, rig, seed_template, template, text, user};
use crate::support::{aws, now};
use crate::webhook::{PHONE, WABA, eventually};

const PHONE2: &str = "106540352242923";

/// A deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// Recipients and the country the test expects for each (its own table, not the code's).
const RECIPIENTS: [(Option<&str>, Option<&str>, &str); 8] = [
    (Some("5511987654321"), Some("BR.1001"), "BR"),
    (Some("5521987654321"), None, "BR"),
    (Some("919876543210"), Some("IN.1002"), "IN"),
    (Some("447700900123"), None, "GB"),
    (Some("2348031234567"), None, "NG"),
    (Some("12125550123"), None, "US"),
    (None, Some("DE.1003"), "DE"),
    (None, Some("ID.1004"), "ID"),
];

/// PMP verdicts: (category as Meta writes it, type, charged).
const PMP_VERDICTS: [(&str, &str, bool); 8] = [
    ("marketing", "regular", true),
    ("utility", "regular", true),
    ("utility", "free_customer_service", false),
    ("authentication", "regular", true),
    ("authentication-international", "regular", true),
    ("service", "free_customer_service", false),
    ("marketing_lite", "regular", true),
    ("referral_conversion", "free_entry_point", false),
];

struct Generated {
    /// One envelope per status delivery.
    deliveries: Vec<String>,
    expected: BTreeMap<UsageKey, Counts>,
    days: Period,
}

fn envelope(pn: &str, status: Value) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881", "phone_number_id": pn},
                  "statuses": [status]}}]}]})
    .to_string()
}

fn day_of(t: i64) -> NaiveDate {
    whatsapp_core::usage::usage_day(t)
}

/// `n` messages' statuses (sent, delivered, read; some failed), PMP and CBP, on two numbers,
/// spread over two days with some crossing midnight, and the counters they must produce.
fn generate(n: usize, base: i64, rng: &mut Rng) -> Generated {
    let mut deliveries = Vec::new();
    let mut expected: BTreeMap<UsageKey, Counts> = BTreeMap::new();
    let mut first_day = NaiveDate::MAX;
    let mut last_day = NaiveDate::MIN;
    // CBP conversations: id → (day counted, key).
    let mut conversations: HashMap<String, (NaiveDate, UsageKey, bool)> = HashMap::new();
    let mut i = 0;
    while i < n {
        let pn = if rng.below(3) == 0 { PHONE2 } else { PHONE };
        let (wa_id, bsuid, country) = RECIPIENTS[rng.below(RECIPIENTS.len() as u64) as usize];
        let cbp = rng.below(7) == 0;
        // A CBP conversation of up to three messages to one user; a PMP message alone.
        let size = if cbp {
            (1 + rng.below(3) as usize).min(n - i)
        } else {
            1
        };
        let conv = format!("conv-{i}");
        let (category, kind, charged) = if cbp {
            let billable = rng.below(4) != 0;
            let category =
                ["marketing", "utility", "service", "authentication"][rng.below(4) as usize];
            (
                category,
                if billable { "regular" } else { "free" },
                billable,
            )
        } else {
            PMP_VERDICTS[rng.below(PMP_VERDICTS.len() as u64) as usize]
        };
        let start = base + rng.below(2 * 86_400) as i64;
        for j in 0..size {
            let wamid = format!("wamid.usage.{i}");
            i += 1;
            let t = start + j as i64 * 900;
            let delivered = t + 1 + rng.below(600) as i64;
            let read = delivered + 1 + rng.below(3_600) as i64;
            let failed = !cbp && rng.below(20) == 0;
            let sent_priced = rng.below(2) == 0;
            let status = |s: &str, at: i64, priced: bool| {
                let mut st = json!({"id": wamid, "status": s, "timestamp": at.to_string()});
                if let Some(w) = wa_id {
                    st["recipient_id"] = json!(w);
                }
                if let Some(b) = bsuid {
                    st["recipient_user_id"] = json!(b);
                }
                if priced && cbp {
                    st["conversation"] = json!({"id": conv, "origin": {"type": category}});
                    st["pricing"] =
                        json!({"billable": charged, "pricing_model": "CBP", "category": category});
                } else if priced {
                    st["pricing"] = json!({"billable": charged, "pricing_model": "PMP", "type": kind, "category": category});
                }
                if s == "failed" {
                    st["errors"] = json!([{"code": 131026, "title": "Message undeliverable"}]);
                }
                envelope(pn, st)
            };
            deliveries.push(status("sent", t, sent_priced && !failed));
            if failed {
                deliveries.push(status("failed", delivered, false));
                continue;
            }
            deliveries.push(status("delivered", delivered, true));
            deliveries.push(status("read", read, true));
            let priced_at = if sent_priced { t } else { delivered };
            let day = day_of(priced_at);
            first_day = first_day.min(day);
            last_day = last_day.max(day);
            let key = UsageKey {
                day,
                waba_id: WABA.into(),
                phone_number_id: pn.into(),
                category: category.replace('-', "_"),
                pricing_type: kind.into(),
                country: country.into(),
                pricing_model: if cbp { "CBP" } else { "PMP" }.into(),
            };
            let c = expected.entry(key.clone()).or_default();
            c.messages += 1;
            if cbp {
                let e = conversations
                    .entry(conv.clone())
                    .or_insert((day, key.clone(), charged));
                if day < e.0 {
                    *e = (day, key, charged);
                }
            } else {
                c.charged += u64::from(charged);
            }
        }
    }
    for (day, key, charged) in conversations.into_values() {
        let c = expected.entry(UsageKey { day, ..key }).or_default();
        c.conversations += 1;
        c.charged += u64::from(charged);
    }
    Generated {
        deliveries,
        expected,
        days: Period {
            from: first_day,
            to: last_day,
        },
    }
}

async fn process(stack: &crate::support::IngestStack, bodies: &[String]) {
    let processor = event_processor::Processor {
        ports: AwsIngestPorts::new(&stack.aws, &stack.resources),
        ingest: IngestConfig::default(),
        concurrency: 16,
    };
    for (n, chunk) in bodies.chunks(160).enumerate() {
        let records: Vec<SqsMessage> = chunk
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut m = SqsMessage::default();
                m.message_id = Some(format!("{n}-{i}"));
                m.body = Some(b.clone());
                m
            })
            .collect();
        let resp = processor.handle(&records, now() * 1000).await;
        assert!(
            resp.batch_item_failures.is_empty(),
            "{} records failed",
            resp.batch_item_failures.len()
        );
    }
}

fn as_map(rows: Vec<finance::UsageRow>) -> BTreeMap<UsageKey, Counts> {
    rows.into_iter().map(|r| (r.key, r.counts)).collect()
}

/// Asserts two sets of counters are equal, listing only the keys that differ.
#[track_caller]
fn assert_counters(got: &BTreeMap<UsageKey, Counts>, want: &BTreeMap<UsageKey, Counts>) {
    let diff: Vec<String> = got
        .keys()
        .chain(want.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got.get(*k) != want.get(*k))
        .map(|k| format!("{k:?}: got {:?}, want {:?}", got.get(k), want.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "{} of {} counters differ:\n{}",
        diff.len(),
        want.len(),
        diff.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The done-when of finance: 1,000 messages' statuses, delivered ten times each in random
/// order, leave every counter exact; both pricing shapes counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_statuses_leave_every_counter_exact() {
    let stack = crate::support::ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let usage = UsageTable::new(ddb.clone(), usage_table(&ddb).await);
    let index = PricedIndex::new(ddb.clone(), &stack.resources.messages_table);
    let numbers = vec![PHONE.to_owned(), PHONE2.to_owned()];
    let base = (now() / 86_400 - 2) * 86_400;
    let mut rng = Rng(0x5eed_f1a4_c0de_2026);
    let generated = generate(1_000, base, &mut rng);
    assert!(generated.expected.keys().any(|k| k.pricing_model == "CBP"));
    assert!(generated.expected.keys().any(|k| k.pricing_model == "PMP"));
    assert!(generated.days.from < generated.days.to, "spans midnight");
    let period = Period {
        from: generated.days.from - Days::new(1),
        to: generated.days.to + Days::new(1),
    };

    // First pass, in random order.
    let mut first = generated.deliveries.clone();
    rng.shuffle(&mut first);
    process(&stack, &first).await;
    let stats = finance::refresh::refresh(&index, &usage, &numbers, period, now())
        .await
        .unwrap();
    assert_eq!(
        stats.messages,
        generated.expected.values().map(|c| c.messages).sum::<u64>() as usize
    );
    // The aggregator's usage metric: each day's messages per category, as in the table.
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (k, c) in &generated.expected {
        *expected
            .entry((k.day.to_string(), k.category.clone()))
            .or_default() += c.messages as f64;
    }
    let metric: BTreeMap<(String, String), f64> = finance::refresh::usage_metrics(&stats)
        .iter()
        .map(|d| {
            let day =
                chrono::DateTime::from_timestamp_millis(d["_aws"]["Timestamp"].as_i64().unwrap())
                    .unwrap()
                    .date_naive();
            (
                (day.to_string(), d["Category"].as_str().unwrap().to_owned()),
                d["UsageMessages"].as_f64().unwrap(),
            )
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    assert_eq!(metric, expected);
    assert_counters(
        &as_map(usage.days(&period).await.unwrap()),
        &generated.expected,
    );

    // Nine more deliveries of every status, shuffled together: nothing changes.
    let mut replays: Vec<String> = (0..9).flat_map(|_| generated.deliveries.clone()).collect();
    rng.shuffle(&mut replays);
    process(&stack, &replays).await;
    let again = finance::refresh::refresh(&index, &usage, &numbers, period, now())
        .await
        .unwrap();
    assert_eq!(again.rows_written, 0, "{again:?}");
    assert_eq!(again.rows_deleted, 0, "{again:?}");
    assert_counters(
        &as_map(usage.days(&period).await.unwrap()),
        &generated.expected,
    );

    // Month counters are the sums of their days.
    let mut months: BTreeMap<UsageKey, Counts> = BTreeMap::new();
    for (k, c) in &generated.expected {
        let first = finance::period::first_of_month(k.day);
        months
            .entry(UsageKey {
                day: first,
                ..k.clone()
            })
            .or_default()
            .add(c);
    }
    let mut stored_months = BTreeMap::new();
    for m in period.months() {
        stored_months.extend(as_map(usage.partition(&month_pk(m)).await.unwrap()));
    }
    assert_counters(&stored_months, &months);
    let totals = generated
        .expected
        .values()
        .fold(Counts::default(), |mut a, c| {
            a.add(c);
            a
        });
    eprintln!(
        "usage replay: {} deliveries ×10, {} counters, {totals:?}",
        generated.deliveries.len(),
        generated.expected.len()
    );
}

/// Creates a usage table (`pk`, `sk`), as in the template.
pub(crate) async fn usage_table(client: &aws_sdk_dynamodb::Client) -> String {
    crate::support::sorted_table(client, "usage").await
}

fn row(day: &str, category: &str, country: &str, charged: u64) -> finance::UsageRow {
    finance::UsageRow {
        key: UsageKey {
            day: day.parse().unwrap(),
            waba_id: WABA.into(),
            phone_number_id: PHONE.into(),
            category: category.into(),
            pricing_type: "regular".into(),
            country: country.into(),
            pricing_model: "PMP".into(),
        },
        counts: Counts {
            messages: charged,
            charged,
            conversations: 0,
        },
    }
}

/// A rate-card change on a date applies from that date; imports are versioned and idempotent.
#[tokio::test]
async fn a_rate_change_applies_from_its_effective_date() {
    let aws = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let rates = RateTable::new(
        ddb.clone(),
        crate::support::sorted_table(&ddb, "rates").await,
    );
    let usage = UsageTable::new(ddb.clone(), usage_table(&ddb).await);
    let card_v1 = "market,category,currency,rate,effective_from
BR,marketing,USD,0.0625,2025-07-01
*,marketing,USD,0.0500,2025-07-01
*,utility,USD,0.0080,2025-07-01
";
    let import = |csv: String| {
        let rates = rates.clone();
        async move {
            let mut out = Vec::new();
            for r in parse_csv(csv.as_bytes()).unwrap() {
                out.push(rates.import(&r, "card.csv", now()).await.unwrap());
            }
            out
        }
    };
    assert_eq!(import(card_v1.into()).await, [Imported::New; 3]);
    assert_eq!(import(card_v1.into()).await, [Imported::Unchanged; 3]);
    // Finance adds the new Brazil price from 15 November, and corrects the utility rate.
    let card_v2 = format!(
        "{}BR,marketing,USD,0.0700,2026-11-15\n",
        card_v1.replace("0.0080", "0.0085")
    );
    let mut got = import(card_v2).await;
    got.sort_by_key(|i| format!("{i:?}"));
    assert_eq!(
        got,
        [
            Imported::Changed,
            Imported::New,
            Imported::Unchanged,
            Imported::Unchanged
        ]
    );

    for (day, rows) in [
        (
            "2026-11-14",
            vec![
                row("2026-11-14", "marketing", "BR", 10),
                row("2026-11-14", "utility", "DE", 100),
            ],
        ),
        (
            "2026-11-15",
            vec![
                row("2026-11-15", "marketing", "BR", 10),
                row("2026-11-15", "marketing", "DE", 1),
            ],
        ),
    ] {
        usage
            .write(&day_pk(day.parse().unwrap()), &rows, &[], now())
            .await
            .unwrap();
    }
    let period: Period = "2026-11-14..2026-11-15".parse().unwrap();
    let rows = usage.days(&period).await.unwrap();
    let card = RateCard::new(rates.load().await.unwrap());
    let r = report::build(
        period,
        &rows,
        &[Dimension::Day, Dimension::Country],
        Some(&card),
    )
    .unwrap();
    let cost = |day: &str, country: &str| {
        r.lines
            .iter()
            .find(|l| l.group == [day.to_owned(), country.to_owned()])
            .and_then(|l| l.cost)
            .unwrap()
    };
    // 10 × 0.0625 the day before, 10 × 0.07 from the 15th.
    assert_eq!(cost("2026-11-14", "BR"), Decimal::new(625, 3));
    assert_eq!(cost("2026-11-15", "BR"), Decimal::new(7, 1));
    assert_eq!(cost("2026-11-14", "DE"), Decimal::new(85, 2));
    assert_eq!(cost("2026-11-15", "DE"), Decimal::new(5, 2));
    assert_eq!(r.total.cost, Some(Decimal::new(2225, 3)));
    // A charged row with no rate in force is left out of the cost and named in a warning.
    let early = [row("2025-06-30", "marketing", "BR", 1)];
    let r = report::build("2025-06".parse().unwrap(), &early, &[], Some(&card)).unwrap();
    assert_eq!(r.total.cost, Some(Decimal::ZERO));
    assert_eq!(r.total.unpriced, 1);
    assert!(
        r.missing[0]
            .warning()
            .contains("BR/marketing (from 2025-06-30): 1 charged"),
        "{:?}",
        r.missing
    );
}

/// Drops every webhook POST that mentions `victim`, forwarding the rest to the webhook.
struct DroppingProxy {
    target: std::sync::Mutex<Option<String>>,
    victim: String,
    dropped: AtomicUsize,
    http: reqwest::Client,
}

async fn dropping_proxy(victim: &str) -> (Arc<DroppingProxy>, String) {
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    async fn serve(
        State(p): State<Arc<DroppingProxy>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> StatusCode {
        if String::from_utf8_lossy(&body).contains(&p.victim) {
            p.dropped.fetch_add(1, Ordering::SeqCst);
            return StatusCode::OK;
        }
        let target = p.target.lock().unwrap().clone().unwrap();
        let mut req = p.http.post(target).body(body.to_vec());
        for h in ["x-hub-signature-256", "content-type"] {
            if let Some(v) = headers.get(h) {
                req = req.header(h, v.as_bytes());
            }
        }
        match req.send().await {
            Ok(r) => StatusCode::from_u16(r.status().as_u16()).unwrap(),
            Err(_) => StatusCode::BAD_GATEWAY,
        }
    }
    let proxy = Arc::new(DroppingProxy {
        target: std::sync::Mutex::new(None),
        victim: victim.to_owned(),
        dropped: AtomicUsize::new(0),
        http: reqwest::Client::new(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/webhook", axum::routing::post(serve))
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (proxy, format!("http://{addr}/webhook"))
}

async fn send(rig: &Rig, to: &str, message: Value) -> String {
    let mut body = message;
    body["messaging_product"] = json!("whatsapp");
    body["to"] = json!(to);
    let resp: Value = reqwest::Client::new()
        .post(format!("{}/v25.0/{PHONE}/messages", rig.sim.base_url()))
        .bearer_auth("tok")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    resp["messages"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("send refused: {resp}"))
        .to_owned()
}

/// Reconciliation against the simulator's `pricing_analytics` balances, and a webhook we never
/// received shows up in it, in its category and country.
#[tokio::test]
async fn reconciliation_balances_and_finds_a_dropped_webhook() {
    let victim = "2348031234567";
    let (proxy, proxy_url) = dropping_proxy(victim).await;
    let rig = rig(|cfg| {
        *proxy.target.lock().unwrap() = cfg.callback_url.take();
        cfg.callback_url = Some(proxy_url.clone());
        cfg.webhooks.batch_max = 1;
        cfg.pair_rate_gap_ms = 0;
    })
    .await;
    let ddb = aws_sdk_dynamodb::Client::new(&rig.stack.aws);
    let usage = UsageTable::new(ddb.clone(), usage_table(&ddb).await);
    let index = PricedIndex::new(ddb.clone(), &rig.stack.resources.messages_table);
    seed_template(&rig, "promo", "MARKETING", "APPROVED").await;
    seed_template(&rig, "receipt", "UTILITY", "APPROVED").await;
    seed_template(&rig, "otp", "AUTHENTICATION", "APPROVED").await;

    // Users in four countries; two of them write first (service and free utility).
    user(&rig, "5511987654321", true).await;
    user(&rig, "919876543210", false).await;
    user(&rig, "447700900123", true).await;
    user(&rig, "4915123456789", false).await;
    let mut wamids = Vec::new();
    for (to, msg) in [
        ("5511987654321", template("promo", &["Ann", "1"])),
        ("5511987654321", text("your order shipped")),
        ("919876543210", template("otp", &["Ann", "2"])),
        ("919876543210", template("promo", &["Ann", "3"])),
        ("447700900123", template("receipt", &["Ann", "4"])),
        ("447700900123", template("promo", &["Ann", "5"])),
        ("4915123456789", template("receipt", &["Ann", "6"])),
        ("4915123456789", template("otp", &["Ann", "7"])),
    ] {
        wamids.push(send(&rig, to, msg).await);
    }
    let messages =
        whatsapp_aws::DynamoMessageStore::new(ddb.clone(), &rig.stack.resources.messages_table);
    eventually("every message priced through its status webhooks", || {
        let messages = messages.clone();
        let wamids = wamids.clone();
        async move {
            for w in &wamids {
                use whatsapp_core::ports::MessageStore;
                if messages
                    .message(w)
                    .await
                    .unwrap()
                    .and_then(|m| m.priced_at)
                    .is_none()
                {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let today = whatsapp_core::usage::usage_day(now());
    let period = Period {
        from: today - Days::new(1),
        to: today,
    };
    let numbers = vec![PHONE.to_owned()];
    let api = graph(&rig);
    let reconcile = || async {
        finance::refresh::refresh(&index, &usage, &numbers, period, now())
            .await
            .unwrap();
        let ours: Vec<_> = usage.days(&period).await.unwrap();
        let (start, end) = period.epoch_bounds();
        let body = api
            .pricing_analytics(WABA, start, end, "DAILY", "tok")
            .await
            .unwrap();
        let meta = finance::reconcile::parse_analytics(&body).unwrap();
        finance::reconcile::reconcile(&ours, &meta)
    };
    let r = reconcile().await;
    assert!(r.balanced(), "{}", r.render(finance::report::Format::Table));
    assert_eq!((r.ours_total, r.meta_total), (8, 8));
    // Both sides agree on categories and countries, including Meta's authentication-international.
    let line = |r: &finance::reconcile::Reconciliation, category: &str, country: &str| {
        r.lines
            .iter()
            .find(|l| l.category == category && l.country == country)
            .map(|l| (l.ours, l.meta))
    };
    assert_eq!(line(&r, "authentication_international", "IN"), Some((1, 1)));
    assert_eq!(line(&r, "service", "BR"), Some((1, 1)));

    // A message whose every webhook is lost: Meta counted it, we did not.
    user(&rig, victim, false).await;
    send(&rig, victim, template("promo", &["Ann", "8"])).await;
    eventually("the victim's webhooks to be dropped", || async {
        proxy.dropped.load(Ordering::SeqCst) >= 3
    })
    .await;
    let r = reconcile().await;
    let diffs: Vec<_> = r.differences().collect();
    assert_eq!(
        diffs.len(),
        1,
        "{}",
        r.render(finance::report::Format::Table)
    );
    assert_eq!(
        (
            diffs[0].category.as_str(),
            diffs[0].country.as_str(),
            diffs[0].pricing_type.as_str()
        ),
        ("marketing", "NG", "regular")
    );
    assert_eq!(
        (diffs[0].ours, diffs[0].meta, diffs[0].difference),
        (0, 1, -1)
    );
}

/// Defect 9 of #16: a refresh over days older than the messages' retention recounted them from
/// an index that had lost their messages, and deleted finance's counters.
#[tokio::test]
async fn a_refresh_past_the_retention_never_lowers_or_deletes_counters() {
    let stack = crate::support::ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let usage = UsageTable::new(ddb.clone(), usage_table(&ddb).await);
    let index = PricedIndex::new(ddb.clone(), &stack.resources.messages_table);
    // Counted when the messages were there, 100 days ago; the index has expired them since.
    let old_day = (chrono::DateTime::from_timestamp(now() - 100 * 86_400, 0).unwrap()).date_naive();
    let counted = row(&old_day.to_string(), "marketing", "BR", 7);
    usage
        .write(&day_pk(old_day), std::slice::from_ref(&counted), &[], now())
        .await
        .unwrap();
    let period = Period {
        from: old_day,
        to: old_day,
    };
    let stats = finance::refresh::refresh(&index, &usage, &[PHONE.to_owned()], period, now())
        .await
        .unwrap();
    assert_eq!((stats.rows_deleted, stats.days_kept), (0, 1), "{stats:?}");
    let kept = usage.partition(&day_pk(old_day)).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].counts, counted.counts);
}

/// Rates stored before cards held several currencies (keyed without one) are still read, and
/// the first import of the same row in the same currency replaces them; a row in another
/// currency stays beside it.
#[tokio::test]
async fn legacy_rate_items_are_read_and_replaced_in_their_own_currency() {
    let aws = aws().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = crate::support::sorted_table(&ddb, "rates").await;
    let rates = RateTable::new(ddb.clone(), table.clone());
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.into());
    ddb.put_item()
        .table_name(&table)
        .item("pk", s("RATE#BR#marketing"))
        .item("sk", s("2025-07-01"))
        .item("market", s("BR"))
        .item("category", s("marketing"))
        .item("currency", s("USD"))
        .item("rate", s("0.0625"))
        .item("effective_from", s("2025-07-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        rates.load().await.unwrap().len(),
        1,
        "the legacy item is read"
    );
    let csv = "market,category,currency,rate,effective_from
BR,marketing,USD,0.0650,2025-07-01
BR,marketing,BRL,0.3500,2025-07-01
";
    for r in parse_csv(csv.as_bytes()).unwrap() {
        rates.import(&r, "card.csv", now()).await.unwrap();
    }
    let mut loaded: Vec<(String, String)> = rates
        .load()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.currency.code().to_owned(), r.rate.to_string()))
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            ("BRL".to_owned(), "0.35".to_owned()),
            ("USD".to_owned(), "0.065".to_owned())
        ],
        "one USD rate (the new one), and the BRL one beside it"
    );
    // Account currencies live in the same table and are not rates.
    let brl = iso_currency::Currency::from_code("BRL").unwrap();
    rates.set_currency("W1", brl, now()).await.unwrap();
    assert_eq!(rates.load().await.unwrap().len(), 2);
    assert_eq!(rates.currencies().await.unwrap().get("W1"), Some(&brl));
    let (card, currencies) = rates.load_with_currencies().await.unwrap();
    assert_eq!((card.len(), currencies.get("W1")), (2, Some(&brl)));
}

/// The usage index is sharded by wamid (no key takes one number's every priced message); a day
/// is read from every shard, and from the unsharded key messages priced before sharding keep.
#[tokio::test]
async fn a_day_is_read_from_every_shard_and_from_before_sharding() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use whatsapp_core::ports::{MessageStore, StatusUpdate};
    use whatsapp_core::webhook::{Pricing, StatusKind};
    let stack = crate::support::ingest_stack().await;
    let ddb = aws_sdk_dynamodb::Client::new(&stack.aws);
    let messages =
        whatsapp_aws::DynamoMessageStore::new(ddb.clone(), &stack.resources.messages_table);
    let at = (now() / 86_400) * 86_400 + 3_600;
    let day = whatsapp_core::usage::usage_day(at);
    let pricing: Pricing = serde_json::from_value(
        json!({"billable": true, "pricing_model": "PMP", "category": "utility", "type": "regular"}),
    )
    .unwrap();
    let sent = StatusKind::Sent;
    for i in 0..40 {
        let wamid = format!("wamid.SHARD{i:04}");
        messages
            .merge_status(StatusUpdate {
                wamid: &wamid,
                waba_id: WABA,
                phone_number_id: PHONE,
                status: &sent,
                at,
                recipient: Some("16505551234"),
                callback_data: None,
                pricing: Some(&pricing),
                conversation: None,
                error: None,
            })
            .await
            .unwrap();
    }
    // A message priced before the index was sharded, as that code filed it (with the sort key
    // the index has since needed).
    let legacy = format!("{PHONE}#{}", day.format("%Y-%m-%d"));
    ddb.put_item()
        .table_name(&stack.resources.messages_table)
        .item("pk", A::S("wamid.LEGACY".into()))
        .item("usage_pk", A::S(legacy))
        .item(
            whatsapp_core::usage::USAGE_SORT_KEY,
            A::S("wamid.LEGACY".into()),
        )
        .item("waba_id", A::S(WABA.into()))
        .item("priced_at", A::N(at.to_string()))
        .item("pricing_category", A::S("utility".into()))
        .item("pricing_model", A::S("PMP".into()))
        .send()
        .await
        .unwrap();
    let index = PricedIndex::new(ddb.clone(), &stack.resources.messages_table);
    let got = index.day(PHONE, day).await.unwrap();
    assert_eq!(got.len(), 41, "every shard and the unsharded key");
    assert!(got.iter().all(|m| m.phone_number_id == PHONE));
    assert!(got.iter().any(|m| m.wamid == "wamid.LEGACY"));
    let scan = ddb
        .scan()
        .table_name(&stack.resources.messages_table)
        .send()
        .await
        .unwrap();
    let keys: std::collections::BTreeSet<String> = scan
        .items()
        .iter()
        .filter_map(|i| i.get("usage_pk")?.as_s().ok().cloned())
        .collect();
    assert!(
        keys.len() > 4,
        "40 messages spread over the shards: {keys:?}"
    );
}
