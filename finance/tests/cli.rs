//! The `usage` binary against ministack: rates import, reports in every format, and the errors
//! finance meets (bad period, missing rate, unknown currency). Needs `AWS_ENDPOINT_URL` (set by
//! `scripts/test`).

use std::process::Command;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use finance::counting::{Counts, UsageKey, UsageRow};
use finance::store::{UsageTable, day_pk};

async fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&whatsapp_aws::aws_sdk_config().await)
}

async fn table(client: &aws_sdk_dynamodb::Client, prefix: &str) -> String {
    let name = format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr("pk"))
        .attribute_definitions(attr("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .expect("create table");
    name
}

fn row(
    day: &str,
    category: &str,
    kind: &str,
    country: &str,
    messages: u64,
    charged: u64,
) -> UsageRow {
    UsageRow {
        key: UsageKey {
            day: day.parse().unwrap(),
            waba_id: "102290129340398".into(),
            phone_number_id: "106540352242922".into(),
            category: category.into(),
            pricing_type: kind.into(),
            country: country.into(),
            pricing_model: "PMP".into(),
        },
        counts: Counts {
            messages,
            charged,
            conversations: 0,
        },
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn usage(env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_usage"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run usage");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn finance_reads_usage_through_the_cli() {
    let ddb = client().await;
    let usage_table = table(&ddb, "usage").await;
    let rates_table = table(&ddb, "rates").await;
    let usage_rows = UsageTable::new(ddb.clone(), &usage_table);
    let days = [
        (
            "2026-11-14",
            vec![
                row("2026-11-14", "marketing", "regular", "BR", 1200, 1200),
                row("2026-11-14", "utility", "regular", "IN", 800, 800),
                row(
                    "2026-11-14",
                    "utility",
                    "free_customer_service",
                    "IN",
                    450,
                    0,
                ),
                row(
                    "2026-11-14",
                    "service",
                    "free_customer_service",
                    "BR",
                    3100,
                    0,
                ),
            ],
        ),
        (
            "2026-11-15",
            vec![
                row("2026-11-15", "marketing", "regular", "BR", 1000, 1000),
                row("2026-11-15", "authentication", "regular", "IN", 600, 600),
                row(
                    "2026-11-15",
                    "authentication_international",
                    "regular",
                    "IN",
                    40,
                    40,
                ),
                row("2026-11-15", "marketing", "regular", "DE", 300, 300),
            ],
        ),
    ];
    for (day, rows) in &days {
        usage_rows
            .write(&day_pk(day.parse().unwrap()), rows, &[], 0)
            .await
            .unwrap();
    }
    let dir = std::env::temp_dir().join(&rates_table);
    std::fs::create_dir_all(&dir).unwrap();
    let card = dir.join("rates-2026-11.csv");
    std::fs::write(
        &card,
        "market,category,currency,rate,effective_from
BR,marketing,USD,0.0625,2025-07-01
BR,marketing,USD,0.0700,2026-11-15
BR,service,USD,0.0068,2026-10-01
*,marketing,USD,0.0500,2025-07-01
IN,utility,USD,0.0014,2025-07-01
IN,authentication,USD,0.0014,2025-07-01
IN,authentication_international,USD,0.0280,2025-07-01
",
    )
    .unwrap();
    let env = [
        ("USAGE_TABLE", usage_table.as_str()),
        ("RATE_CARD_TABLE", rates_table.as_str()),
    ];

    // The chart: one stacked bar a day, a segment per category with its total.
    let svg_path = dir.join("usage.svg");
    let r = usage(
        &env,
        &[
            "chart",
            "--period",
            "2026-11-14..2026-11-15",
            "--out",
            svg_path.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    for (day, category, value) in [
        ("2026-11-14", "marketing", 1200),
        ("2026-11-14", "utility", 1250),
        ("2026-11-14", "service", 3100),
        ("2026-11-15", "marketing", 1300),
        ("2026-11-15", "authentication_international", 40),
    ] {
        let segment =
            format!(r#"data-day="{day}" data-category="{category}" data-value="{value}""#);
        assert!(svg.contains(&segment), "{segment} in {svg}");
    }
    let r = usage(
        &env,
        &[
            "chart",
            "--period",
            "2026-11-14",
            "--measure",
            "charged",
            "--out",
            "-",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(r#"data-category="utility" data-value="800""#),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains(r#"data-category="service""#),
        "nothing charged for service"
    );

    let r = usage(&env, &["rates", "import", card.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "imported 7 rate(s) from rates-2026-11.csv: 7 new, 0 changed, 0 unchanged\n"
    );
    let r = usage(&env, &["rates", "import", card.to_str().unwrap()]);
    assert!(
        r.stdout.contains("0 new, 0 changed, 7 unchanged"),
        "{}",
        r.stdout
    );

    let r = usage(
        &env,
        &[
            "report",
            "--period",
            "2026-11",
            "--group-by",
            "category,country",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    println!("{}", r.stdout);
    assert!(
        r.stdout.starts_with("usage 2026-11-01..2026-11-30\n"),
        "{}",
        r.stdout
    );
    // 1,200 × 0.0625 + 1,000 × 0.07 = 145.00 for Brazil's marketing.
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["marketing", "BR", "2200", "2200", "0", "145.00"]),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .last()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["total", "7490", "3940", "0", "163.08"],
        "{}",
        r.stdout
    );

    let r = usage(
        &env,
        &[
            "report",
            "--period",
            "2026-11-14..2026-11-15",
            "--group-by",
            "day,category",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("day,category,messages,charged,conversations,cost_usd\n")
    );
    assert!(
        r.stdout.contains("2026-11-15,marketing,1300,1300,0,85\n"),
        "{}",
        r.stdout
    );

    let r = usage(
        &env,
        &[
            "report",
            "--period",
            "2026-11-15",
            "--group-by",
            "type",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["currency"], "USD");
    assert_eq!(json["total"]["cost"], "86.96");
    assert_eq!(json["rows"][0]["pricing_type"], "regular");

    // Without --no-cost, a charged row with no rate in force is printed as unpriced, named in a
    // warning, and the exit code says so.
    let r = usage(
        &env,
        &["report", "--period", "2026-11", "--group-by", "country"],
    );
    assert_eq!(r.code, 0);
    usage_rows
        .write(
            &day_pk("2026-11-16".parse().unwrap()),
            &[row("2026-11-16", "utility", "regular", "NG", 5, 5)],
            &[],
            0,
        )
        .await
        .unwrap();
    let r = usage(&env, &["report", "--period", "2026-11"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("no USD rate for NG/utility (from 2026-11-16): 5 charged not in the cost"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("unpriced_charged"), "{}", r.stdout);
    assert!(
        r.stdout.contains("warning: no USD rate for NG/utility"),
        "{}",
        r.stdout
    );
    let r = usage(
        &env,
        &[
            "report",
            "--period",
            "2026-11",
            "--no-cost",
            "--format",
            "csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("utility,1255,805,0\n"), "{}", r.stdout);

    let r = usage(&env, &["report", "--period", "2026-13"]);
    assert_eq!(r.code, 2, "clap's usage error");
    assert!(r.stderr.contains("bad period \"2026-13\""), "{}", r.stderr);
    let r = usage(
        &env,
        &["report", "--period", "2026-11", "--group-by", "colour"],
    );
    assert!(
        r.stderr.contains("unknown dimension \"colour\""),
        "{}",
        r.stderr
    );

    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        "market,category,currency,rate,effective_from\nBR,marketing,XBT,0.07,2026-12-01\n",
    )
    .unwrap();
    let r = usage(&env, &["rates", "import", bad.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("rate card line 2: unknown currency \"XBT\""),
        "{}",
        r.stderr
    );
    let r = usage(
        &[("RATE_CARD_TABLE", rates_table.as_str())],
        &["report", "--period", "2026-11"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("USAGE_TABLE"), "{}", r.stderr);

    // A second currency on the card: the account's usage is unpriced until its currency is
    // set, then priced in it (never at another currency's rates).
    let inr = dir.join("rates-inr.csv");
    std::fs::write(
        &inr,
        "market,category,currency,rate,effective_from\nIN,utility,INR,0.1150,2025-07-01\n",
    )
    .unwrap();
    let r = usage(&env, &["rates", "import", inr.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = usage(&env, &["report", "--period", "2026-11"]);
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("no currency set for business account 102290129340398"),
        "{}",
        r.stderr
    );
    let r = usage(&env, &["rates", "currency", "102290129340398", "usd"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "business account 102290129340398 is billed in USD\n"
    );
    let r = usage(&env, &["rates", "currencies"]);
    assert_eq!(r.stdout, "102290129340398  USD\n");
    let r = usage(&env, &["report", "--period", "2026-11", "--format", "json"]);
    assert!(!r.stderr.contains("no currency set"), "{}", r.stderr);
    let json: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(json["currency"], "USD");
    let r = usage(&env, &["rates", "currency", "102290129340398", "XBT"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown currency \"XBT\""),
        "{}",
        r.stderr
    );
}
