//! Finance's command line over the usage and rate-card tables: the `usage` binary, and the
//! operators' `wactl usage`, which runs the same [`Command`]s.
//!
//! ```text
//! usage report    --period 2026-11 [--group-by category,country] [--format table|csv|json]
//!                 [--waba ID] [--phone ID] [--no-cost]
//! usage reconcile --waba ID --period 2026-11 [--format ...] [--check]
//! usage refresh   --period 2026-11-01..2026-11-23 [--numbers ID,ID]
//! usage rates import FILE.csv
//! usage rates list [--format ...]
//! usage rates currency WABA CODE
//! usage rates currencies
//! usage chart   --period 2026-11 --out usage.svg [--measure messages|charged] [--waba ID]
//! usage tiers [--waba ID] [--format ...]
//! ```
//!
//! Settings come from the environment, as the functions': `USAGE_TABLE`, `RATE_CARD_TABLE`,
//! `MESSAGES_TABLE`, `PHONE_NUMBERS`, `WHATSAPP_SECRET_ID` (the access token, for reconcile),
//! `GRAPH_API_BASE_URL`, `GRAPH_API_VERSION`, `PHONE_STATE_TABLE` (for tiers), and the usual AWS
//! ones. Exit status: 0 done,
//! 1 error, 2 `reconcile --check` found differences, 3 a report whose cost leaves charged messages
//! out (a rate or an account's currency missing).

use std::process::ExitCode;

use crate::period::Period;
use crate::rates::{RateCard, parse_csv};
use crate::report::{self, Dimension, Format};
use crate::store::{Imported, PricedIndex, RateTable, UsageTable};
use clap::{Args, Parser, Subcommand};
use whatsapp_core::config::{Env, ProcessEnv};

/// The `usage` binary's arguments.
#[derive(Parser)]
#[command(
    name = "usage",
    version,
    about = "WhatsApp usage, cost and reconciliation for finance"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Usage of a period, grouped and costed.
    Report(ReportArgs),
    /// Our counts against Meta's pricing_analytics, per category, country and pricing type.
    Reconcile(ReconcileArgs),
    /// Recomputes the usage of a period from the messages table (what the aggregator does).
    Refresh(RefreshArgs),
    /// The rate card.
    Rates {
        #[command(subcommand)]
        command: RatesCommand,
    },
    /// A chart of usage per category per day, written as SVG.
    Chart(ChartArgs),
    /// The accounts' volume-based pricing tiers, as Meta reported them.
    Tiers {
        /// Only this business account.
        #[arg(long)]
        waba: Option<String>,
        #[arg(long, default_value = "table")]
        format: Format,
    },
}

#[derive(Args)]
pub struct ReportArgs {
    /// YYYY-MM, YYYY-MM-DD or FROM..TO (inclusive UTC days).
    #[arg(long)]
    period: Period,
    /// Any of day, month, waba, phone, category, type, country, model.
    #[arg(long, value_delimiter = ',', default_value = "category")]
    group_by: Vec<Dimension>,
    #[arg(long, default_value = "table")]
    format: Format,
    /// Only this business account.
    #[arg(long)]
    waba: Option<String>,
    /// Only this phone number id.
    #[arg(long)]
    phone: Option<String>,
    /// Counts only, without the rate card.
    #[arg(long)]
    no_cost: bool,
}

#[derive(Args)]
pub struct ReconcileArgs {
    #[arg(long)]
    waba: String,
    #[arg(long)]
    period: Period,
    #[arg(long, default_value = "table")]
    format: Format,
    /// Exit with status 2 when any line differs.
    #[arg(long)]
    check: bool,
}

#[derive(Args)]
pub struct ChartArgs {
    /// YYYY-MM, YYYY-MM-DD or FROM..TO (inclusive UTC days).
    #[arg(long)]
    period: Period,
    /// What the bars count.
    #[arg(long, value_enum, default_value = "messages")]
    measure: crate::chart::Measure,
    /// Only this business account.
    #[arg(long)]
    waba: Option<String>,
    /// The SVG file to write (`-`: standard output).
    #[arg(long)]
    out: String,
}

#[derive(Args)]
pub struct RefreshArgs {
    #[arg(long)]
    period: Period,
    /// Phone number ids; default: every number in PHONE_NUMBERS.
    #[arg(long, value_delimiter = ',')]
    numbers: Vec<String>,
}

#[derive(Subcommand)]
pub enum RatesCommand {
    /// Imports a CSV (market,category,currency,rate,effective_from); unchanged rates stay as
    /// they are, changed ones get a new version.
    Import { file: std::path::PathBuf },
    /// Sets the currency Meta bills a business account in (its usage is priced, and
    /// reconciled, at the card's rates in it).
    Currency { waba: String, code: String },
    /// Each business account's currency.
    Currencies,
    /// The card as stored.
    List {
        #[arg(long, default_value = "table")]
        format: Format,
    },
}

/// Runs a command; an error is printed (prefixed `usage:`) and exits 1.
pub async fn main(command: Command) -> ExitCode {
    match run(command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("usage: {e}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

/// A one-line progress bar on stderr for long runs (refresh, redrive), redrawn in place, and
/// only on a terminal: scripts and logs get the result line alone.
pub fn progress_bar(label: &str) -> impl FnMut(usize, usize) + use<> {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stderr().is_terminal();
    let label = label.to_owned();
    move |done, total| {
        if !tty || total == 0 {
            return;
        }
        let width = 30;
        let filled = done.min(total) * width / total;
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r{label} [{}{}] {done}/{total}",
            "#".repeat(filled),
            ".".repeat(width - filled)
        );
        if done >= total {
            let _ = writeln!(err);
        }
    }
}

fn required(name: &'static str) -> Result<String, Error> {
    Ok(ProcessEnv.required(name)?)
}

fn now() -> i64 {
    use whatsapp_core::ports::Clock;
    whatsapp_aws::SystemClock.now_ms().div_euclid(1000)
}

async fn run(command: Command) -> Result<ExitCode, Error> {
    let aws = whatsapp_aws::aws_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    match command {
        Command::Report(a) => {
            let usage = UsageTable::new(ddb.clone(), required("USAGE_TABLE")?);
            let rows: Vec<_> = usage
                .days(&a.period)
                .await?
                .into_iter()
                .filter(|r| a.waba.as_ref().is_none_or(|w| &r.key.waba_id == w))
                .filter(|r| a.phone.as_ref().is_none_or(|p| &r.key.phone_number_id == p))
                .collect();
            let (card, currencies) = if a.no_cost {
                (None, Default::default())
            } else {
                let rates = RateTable::new(ddb, required("RATE_CARD_TABLE")?);
                let (card, currencies) = rates.load_with_currencies().await?;
                (Some(RateCard::new(card)), currencies)
            };
            let r = report::build_in(a.period, &rows, &a.group_by, card.as_ref(), &currencies)?;
            print!("{}", r.render(a.format));
            // The report is printed either way; scripts learn from the exit code that its
            // cost leaves charged messages out.
            let warnings = r.warnings();
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Ok(if warnings.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Command::Reconcile(a) => {
            // Our estimate beside Meta's cost only in the account's own currency.
            let (card, currency) = match ProcessEnv.get("RATE_CARD_TABLE") {
                Some(t) => {
                    let rates = RateTable::new(ddb.clone(), t);
                    let (card, currencies) = rates.load_with_currencies().await?;
                    let card = RateCard::new(card);
                    let currency = currencies
                        .get(&a.waba)
                        .copied()
                        .or_else(|| card.single_currency());
                    (card, currency)
                }
                None => (RateCard::default(), None),
            };
            let usage = UsageTable::new(ddb, required("USAGE_TABLE")?);
            let ours: Vec<_> = usage
                .days(&a.period)
                .await?
                .into_iter()
                .filter(|r| r.key.waba_id == a.waba)
                .collect();
            let secrets = whatsapp_aws::SecretsManagerFetcher::new(
                aws_sdk_secretsmanager::Client::new(&aws),
                required("WHATSAPP_SECRET_ID")?,
            );
            let token = whatsapp_aws::SecretFetcher::fetch(&secrets)
                .await?
                .access_token_for(&a.waba)?
                .to_owned();
            let graph =
                whatsapp_aws::GraphHttpClient::new(&whatsapp_aws::graph_from_env(&ProcessEnv)?)?;
            let (start, end) = a.period.epoch_bounds();
            let body = graph
                .pricing_analytics(&a.waba, start, end, "DAILY", &token)
                .await
                .map_err(|e| format!("pricing_analytics: {e}"))?;
            let meta = crate::reconcile::parse_analytics(&body)?;
            let r = crate::reconcile::reconcile_priced(&ours, &meta, currency.map(|c| (&card, c)));
            print!("{}", r.render(a.format));
            Ok(if a.check && !r.balanced() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Refresh(a) => {
            let numbers = if a.numbers.is_empty() {
                let mut n: Vec<String> =
                    whatsapp_core::config::parse_numbers(&required("PHONE_NUMBERS")?)?
                        .into_keys()
                        .collect();
                n.sort();
                n
            } else {
                a.numbers
            };
            let index = PricedIndex::new(ddb.clone(), required("MESSAGES_TABLE")?);
            let usage = UsageTable::new(ddb, required("USAGE_TABLE")?);
            let s = crate::refresh::refresh_with(
                &index,
                &usage,
                &numbers,
                a.period,
                now(),
                progress_bar("refresh"),
            )
            .await?;
            println!(
                "refreshed {} day(s) and {} month(s) of {} number(s): {} priced messages, {} counters written, {} removed",
                s.days,
                s.months,
                numbers.len(),
                s.messages,
                s.rows_written,
                s.rows_deleted
            );
            if s.days_kept > 0 {
                println!(
                    "{} day(s) are older than the messages' retention: their counters were only raised, never lowered or removed",
                    s.days_kept
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Chart(a) => {
            let usage = UsageTable::new(ddb, required("USAGE_TABLE")?);
            let rows: Vec<_> = usage
                .days(&a.period)
                .await?
                .into_iter()
                .filter(|r| a.waba.as_ref().is_none_or(|w| &r.key.waba_id == w))
                .collect();
            let totals = crate::chart::totals(&rows, &a.period, a.measure);
            let title = match &a.waba {
                Some(w) => format!("WhatsApp usage {}, account {w}", a.period),
                None => format!("WhatsApp usage {}", a.period),
            };
            let svg = crate::chart::svg(&totals, &title, a.measure);
            if a.out == "-" {
                print!("{svg}");
            } else {
                std::fs::write(&a.out, svg)?;
                eprintln!("wrote {} ({} day(s))", a.out, totals.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rates { command } => {
            let rates = RateTable::new(ddb, required("RATE_CARD_TABLE")?);
            match command {
                RatesCommand::Import { file } => {
                    let f = std::fs::File::open(&file)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    let parsed = parse_csv(f)?;
                    let source = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let (mut new, mut changed, mut same) = (0, 0, 0);
                    let at = now();
                    for r in &parsed {
                        match rates.import(r, &source, at).await? {
                            Imported::New => new += 1,
                            Imported::Changed => changed += 1,
                            Imported::Unchanged => same += 1,
                        }
                    }
                    println!(
                        "imported {} rate(s) from {source}: {new} new, {changed} changed, {same} unchanged",
                        parsed.len()
                    );
                }
                RatesCommand::Currency { waba, code } => {
                    let currency = iso_currency::Currency::from_code(&code.to_ascii_uppercase())
                        .ok_or_else(|| {
                            format!("unknown currency {code:?} (an ISO 4217 code such as USD, INR)")
                        })?;
                    rates.set_currency(&waba, currency, now()).await?;
                    println!("business account {waba} is billed in {}", currency.code());
                }
                RatesCommand::Currencies => {
                    for (waba, currency) in rates.currencies().await? {
                        println!("{waba}  {}", currency.code());
                    }
                }
                RatesCommand::List { format } => {
                    let card = RateCard::new(rates.load().await?);
                    print!("{}", render_rates(&card, format));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tiers { waba, format } => {
            let tiers = crate::tiers::TierTable::new(ddb, required("PHONE_STATE_TABLE")?)
                .list(waba.as_deref())
                .await?;
            print!("{}", crate::tiers::render(&tiers, format));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render_rates(card: &RateCard, format: Format) -> String {
    let rows: Vec<[String; 5]> = card
        .rates()
        .map(|r| {
            [
                r.market.clone(),
                r.category.clone(),
                r.currency.code().to_owned(),
                r.rate.normalize().to_string(),
                r.effective_from.to_string(),
            ]
        })
        .collect();
    let headers = ["market", "category", "currency", "rate", "effective_from"];
    match format {
        Format::Json => {
            let mut s =
                serde_json::to_string_pretty(&card.rates().collect::<Vec<_>>()).unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv | Format::Table => {
            let sep = if format == Format::Csv { "," } else { "  " };
            let mut out = headers.join(sep);
            out.push('\n');
            for r in rows {
                out.push_str(&r.join(sep));
                out.push('\n');
            }
            out
        }
    }
}
