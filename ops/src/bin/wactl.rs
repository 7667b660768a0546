//! `wactl`: the operators' command line. Works against AWS, or ministack with
//! `AWS_ENDPOINT_URL`, through the usual AWS environment.
//!
//! ```text
//! wactl dlq list    QUEUE [--max N] [--format table|json]
//! wactl dlq show    QUEUE MESSAGE_ID [--format table|json]
//! wactl dlq redrive QUEUE (--reason R ... | --all) [--to QUEUE] [--max N]
//! wactl job       PHONE_NUMBER_ID IDEMPOTENCY_KEY [--format table|json]
//! wactl numbers   [--format table|json]
//! wactl templates list [--waba ID] [--format table|json]
//! wactl templates show WABA NAME LANGUAGE [--format table|json]
//! wactl usage ...   (finance's `usage` command line: report, reconcile, refresh, rates, tiers)
//! ```
//!
//! QUEUE is a queue name or URL. Tables come from the environment, as the functions':
//! `DEDUPE_TABLE` and `MESSAGES_TABLE` (job), `SEND_CONTROL_TABLE` and `PHONE_NUMBERS`
//! (numbers), `TEMPLATES_TABLE` (templates). Exit status: 0 done, 1 error, 2 a usage error or
//! nothing found (`dlq show`, `job`, `templates show`); `usage` keeps its own (0, 1, 2
//! differences, 3 cost incomplete).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ops::{dlq, records};

#[derive(Parser)]
#[command(
    name = "wactl",
    version,
    about = "Operate the WhatsApp middleware: jobs, dead-letter queues, numbers, templates, usage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A dead-letter queue: what is on it and why, one message, moving messages back.
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// One send job: its idempotency record, verdict, reason, checkpoint, wamid and message
    /// (status, pricing).
    Job {
        phone_number_id: String,
        idempotency_key: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Each configured number's health, tier, cap, marketing pause and history of changes.
    Numbers {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The templates as the middleware knows them (submitted, synced, status and quality).
    Templates {
        #[command(subcommand)]
        command: TemplatesCommand,
    },
    /// Usage, cost and reconciliation for finance (the `usage` command line).
    Usage {
        #[command(subcommand)]
        command: finance::cli::Command,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Every template, or one account's.
    List {
        #[arg(long)]
        waba: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One template.
    Show {
        waba: String,
        name: String,
        language: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Every message's id, reason, receive count, time and detail, and counts by reason.
    List {
        queue: String,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// One message in full, its body included.
    Show {
        queue: String,
        message_id: String,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Moves messages with the given reasons (or all) to their source queue or `--to`.
    Redrive {
        queue: String,
        /// A reason to move (repeatable); `dlq list` shows them.
        #[arg(
            long = "reason",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        reasons: Vec<String>,
        /// Every message, whatever its reason.
        #[arg(long)]
        all: bool,
        /// The queue to move them to; by default the one queue that dead-letters into QUEUE.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            // The SDK's own Display says only "service error": print the whole chain.
            let mut message = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                message.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("wactl: {message}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Result<String, dlq::Error> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!("{name} is not set (the stack's outputs name the tables)").into()),
    }
}

/// Prints one record, or says it was not found (exit 2).
fn show(found: Option<serde_json::Value>, format: Format, what: &str) -> ExitCode {
    match found {
        None => {
            eprintln!("wactl: no {what}");
            ExitCode::from(2)
        }
        Some(v) => {
            match format {
                Format::Json => println!("{v}"),
                Format::Table => print!("{}", records::lines(&v)),
            }
            ExitCode::SUCCESS
        }
    }
}

fn show_all(rows: &[serde_json::Value], format: Format) {
    match format {
        Format::Json => println!("{}", serde_json::Value::from(rows.to_vec())),
        Format::Table => {
            for r in rows {
                println!("{}", records::lines(r));
            }
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, dlq::Error> {
    match command {
        // `usage` prints its own errors and keeps its own exit codes.
        Command::Usage { command } => Ok(finance::cli::main(command).await),
        Command::Dlq { command } => run_dlq(command).await,
        Command::Job {
            phone_number_id,
            idempotency_key,
            format,
        } => {
            let (dedupe, messages) = (env("DEDUPE_TABLE")?, env("MESSAGES_TABLE")?);
            let ddb = ddb().await;
            let tables = records::JobTables {
                dedupe: &dedupe,
                messages: &messages,
            };
            let found = records::job(&ddb, &tables, &phone_number_id, &idempotency_key).await?;
            Ok(show(
                found,
                format,
                "job with that key (never received, or expired)",
            ))
        }
        Command::Numbers { format } => {
            let mut numbers: Vec<String> =
                whatsapp_core::config::parse_numbers(&env("PHONE_NUMBERS")?)?
                    .into_keys()
                    .collect();
            numbers.sort();
            let table = env("SEND_CONTROL_TABLE")?;
            let rows = records::numbers(&ddb().await, &table, &numbers).await?;
            show_all(&rows, format);
            Ok(ExitCode::SUCCESS)
        }
        Command::Templates { command } => {
            let table = env("TEMPLATES_TABLE")?;
            let ddb = ddb().await;
            match command {
                TemplatesCommand::List { waba, format } => {
                    let rows = records::templates(&ddb, &table, waba.as_deref()).await?;
                    show_all(&rows, format);
                    Ok(ExitCode::SUCCESS)
                }
                TemplatesCommand::Show {
                    waba,
                    name,
                    language,
                    format,
                } => {
                    let found = records::template(&ddb, &table, &waba, &name, &language).await?;
                    Ok(show(found, format, "such template"))
                }
            }
        }
    }
}

async fn ddb() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&whatsapp_aws::aws_sdk_config().await)
}

async fn run_dlq(command: DlqCommand) -> Result<ExitCode, dlq::Error> {
    let sqs = aws_sdk_sqs::Client::new(&whatsapp_aws::aws_sdk_config().await);
    match command {
        DlqCommand::List { queue, max, format } => {
            let url = dlq::queue_url(&sqs, &queue).await?;
            let letters = dlq::read(&sqs, &url, max).await?;
            dlq::release(&sqs, &url, &letters).await?;
            match format {
                Format::Table => print!("{}", dlq::table(&letters)),
                Format::Json => {
                    // No bodies in a listing: they hold phone numbers and message text.
                    let rows: Vec<_> = letters
                        .iter()
                        .map(|l| {
                            serde_json::json!({
                                "message_id": l.message_id,
                                "reason": l.reason,
                                "detail": l.detail,
                                "sent_at_ms": l.sent_at_ms,
                                "receives": l.receives,
                            })
                        })
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({"messages": rows, "by_reason": dlq::by_reason(&letters)})
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show {
            queue,
            message_id,
            format,
        } => {
            let url = dlq::queue_url(&sqs, &queue).await?;
            let letters = dlq::read(&sqs, &url, usize::MAX).await?;
            dlq::release(&sqs, &url, &letters).await?;
            let Some(l) = letters.iter().find(|l| l.message_id == message_id) else {
                eprintln!("wactl: no message {message_id} on {queue}");
                return Ok(ExitCode::from(2));
            };
            match format {
                Format::Json => println!("{}", serde_json::to_string(l)?),
                Format::Table => {
                    let body = serde_json::from_str::<serde_json::Value>(&l.body)
                        .and_then(|v| serde_json::to_string_pretty(&v))
                        .unwrap_or_else(|_| l.body.clone());
                    println!(
                        "message_id: {}\nreason:     {}\ndetail:     {}\nreceives:   {}\nsent_at_ms: {}\nbody:\n{body}",
                        l.message_id, l.reason, l.detail, l.receives, l.sent_at_ms
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Redrive {
            queue,
            reasons,
            all,
            to,
            max,
        } => {
            let url = dlq::queue_url(&sqs, &queue).await?;
            let target = match to {
                Some(t) => dlq::queue_url(&sqs, &t).await?,
                None => dlq::source_queue(&sqs, &url).await?,
            };
            let letters = dlq::read(&sqs, &url, max).await?;
            let reasons = (!all).then_some(reasons);
            let done = dlq::redrive(
                &sqs,
                &url,
                &target,
                letters,
                reasons.as_deref(),
                finance::cli::progress_bar("redrive"),
            )
            .await?;
            println!("{}", serde_json::to_string(&done)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
