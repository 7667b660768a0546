//! `wactl`: the operators' command line. Works against AWS, or ministack with
//! `AWS_ENDPOINT_URL`, through the usual AWS environment.
//!
//! ```text
//! wactl dlq list    QUEUE [--max N] [--format table|json]
//! wactl dlq show    QUEUE MESSAGE_ID [--format table|json]
//! wactl dlq redrive QUEUE (--reason R ... | --all) [--to QUEUE] [--max N]
//! wactl usage ...   (finance's `usage` command line: report, reconcile, refresh, rates, tiers)
//! ```
//!
//! QUEUE is a queue name or URL. Exit status: 0 done, 1 error, 2 `dlq show` found no such
//! message; `usage` keeps its own (0, 1, 2 differences, 3 cost incomplete).

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ops::dlq;

#[derive(Parser)]
#[command(
    name = "wactl",
    version,
    about = "Operate the WhatsApp middleware: dead-letter queues, usage"
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
    match Cli::parse().command {
        Command::Usage { command } => finance::cli::main(command).await,
        Command::Dlq { command } => match run_dlq(command).await {
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
        },
    }
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
                dlq::progress_bar("redrive"),
            )
            .await?;
            println!("{}", serde_json::to_string(&done)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}
