//! The sender: takes send jobs from SQS, holds them to WhatsApp's policy, and sends each exactly
//! once through the Graph API.
//!
//! One batch runs as a pipeline of four stages:
//! 1. per record, concurrently ([`admit`], [`facts`]): parse the job, gate 1, take its
//!    idempotency record, reconcile a send whose outcome was lost, gather the facts the gates
//!    need and decide with the one pure policy, [`whatsapp_core::gates`];
//! 2. per number ([`pacing`]): reserve throughput slots for every record that passed, in as few
//!    writes as the shared counters allow;
//! 3. per record, concurrently ([`send`], [`settle`]): wait for the slot, take the pair-rate
//!    turn, send, classify;
//! 4. [`finish`]: dead-letter and publish the outcomes, defer what must wait, and report exactly
//!    the records that must come back.

mod admit;
pub mod aws;
pub mod config;
mod facts;
mod finish;
mod keys;
mod media;
#[cfg(feature = "fakes")]
pub mod memory;
pub mod outcome;
mod pacing;
mod ports;
mod send;
mod settle;
mod step;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures_util::StreamExt;
use whatsapp_core::ports::{NumberLimits, StoreError};

pub use config::{NumberHome, SenderConfig};
pub use finish::outcome_metrics;
pub use keys::{callback_data, payload_hash, record_key};
pub use outcome::{Outcome, OutcomeError, Verdict};
pub use ports::SenderPorts;

use step::{Clock, Step};

/// The sender, generic over its ports.
pub struct Sender<P> {
    pub ports: P,
    pub config: SenderConfig,
    limits: Mutex<HashMap<String, (Instant, NumberLimits)>>,
    /// Per number, the first slot not known to be full: where the next reservation starts.
    next_slot: Mutex<HashMap<String, i64>>,
}

/// Why a record could not be handled now (the record is retried through the queue).
#[derive(Debug, thiserror::Error)]
enum Transient {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("secrets unavailable: {0}")]
    Secrets(#[from] whatsapp_core::ports::SecretError),
}

impl<P: SenderPorts> Sender<P> {
    pub fn new(ports: P, config: SenderConfig) -> Self {
        Sender {
            ports,
            config,
            limits: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
        }
    }

    /// Handles one SQS batch. `now_ms` is the current time, `deadline_ms` the invocation's
    /// deadline (both epoch ms), as the entry point reads them. Returns exactly the records
    /// that must be delivered again.
    pub async fn handle(
        &self,
        records: &[SqsMessage],
        now_ms: i64,
        deadline_ms: i64,
    ) -> SqsBatchResponse {
        let clock = Clock::starting_at(now_ms);
        let concurrency = self.config.concurrency;
        let mut steps: Vec<Step> = futures_util::stream::iter(records)
            .map(|r| self.gate(r, clock, deadline_ms))
            .buffered(concurrency)
            .collect()
            .await;
        self.reserve_throughput(&mut steps, clock).await;
        let steps: Vec<Step> = futures_util::stream::iter(steps)
            .map(|s| self.send_step(s, clock, deadline_ms))
            .buffered(concurrency)
            .collect()
            .await;
        self.finish(records, steps, clock).await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
