//! Lambda entry point of the `usage-aggregator` function (EventBridge Scheduler): recomputes
//! the last `lookback_days` UTC days (the schedule's input; default 2) of usage for every number
//! in `PHONE_NUMBERS`, from the messages table's usage index into the usage table, as absolute
//! values ([`finance::refresh`]). An hourly schedule keeps today and yesterday current; a daily
//! one with a longer lookback catches statuses Meta retried for days.

use finance::period::Period;
use finance::refresh::{refresh, today, usage_metrics};
use finance::store::{PricedIndex, UsageTable};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde::Deserialize;
use whatsapp_aws::SystemClock;
use whatsapp_aws::aws_sdk_config;
use whatsapp_core::config::{Env, ProcessEnv, parse_numbers};
use whatsapp_core::ports::Clock;

#[derive(Debug, Default, Deserialize)]
struct Input {
    #[serde(default)]
    lookback_days: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let env = ProcessEnv;
    let mut numbers: Vec<String> =
        parse_numbers(&env.required("PHONE_NUMBERS").expect("PHONE_NUMBERS"))
            .expect("PHONE_NUMBERS")
            .into_keys()
            .collect();
    numbers.sort();
    let default_lookback: u64 = env
        .parsed_or("USAGE_LOOKBACK_DAYS", 2u64)
        .expect("USAGE_LOOKBACK_DAYS");
    let aws = aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let index = PricedIndex::new(
        ddb.clone(),
        env.required("MESSAGES_TABLE").expect("MESSAGES_TABLE"),
    );
    let usage = UsageTable::new(ddb, env.required("USAGE_TABLE").expect("USAGE_TABLE"));
    let (index, usage, numbers) = (&index, &usage, &numbers);
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let input: Input = serde_json::from_value(event.payload).unwrap_or_default();
            let now = SystemClock.now_ms().div_euclid(1000);
            let period =
                Period::ending(today(now), input.lookback_days.unwrap_or(default_lookback));
            let stats = refresh(index, usage, numbers, period, now).await?;
            whatsapp_core::metrics::emit(&usage_metrics(&stats));
            tracing::info!(
                period = %period,
                numbers = numbers.len(),
                messages = stats.messages,
                written = stats.rows_written,
                deleted = stats.rows_deleted,
                "usage refreshed"
            );
            Ok::<_, Error>(serde_json::json!({
                "period": period.to_string(),
                "days": stats.days,
                "months": stats.months,
                "messages": stats.messages,
                "rows_written": stats.rows_written,
                "rows_deleted": stats.rows_deleted,
                "days_kept": stats.days_kept,
            }))
        },
    ))
    .await
}
