//! Queues, redelivery and the quarantine in memory.

use std::sync::Mutex;

use whatsapp_core::ports::{EventPublisher, MessageQueue, Quarantine, QueueError, StoreError};

use crate::lock;

/// Records what was sent; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<(String, Option<u32>)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryQueue {
    pub fn bodies(&self) -> Vec<String> {
        lock(&self.sent).iter().map(|(b, _)| b.clone()).collect()
    }
}

impl MessageQueue for MemoryQueue {
    async fn send(&self, body: &str, delay_seconds: Option<u32>) -> Result<String, QueueError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("injected failure".into()));
        }
        let mut sent = lock(&self.sent);
        sent.push((body.to_owned(), delay_seconds));
        Ok(format!("mem-{}", sent.len()))
    }
}

impl whatsapp_core::ports::DeadLetters for MemoryQueue {
    async fn dead_letter(&self, body: &str, reason: &str, _detail: &str) -> Result<(), QueueError> {
        self.send(&format!("{reason}\t{body}"), None)
            .await
            .map(|_| ())
    }
}

/// Records redeliveries instead of making them.
#[derive(Debug, Default)]
pub struct MemoryRedelivery {
    pub delays: Mutex<Vec<(String, u32)>>,
    /// Fresh copies put on the queue: (body, delay).
    pub requeued: Mutex<Vec<(String, u32)>>,
}

impl whatsapp_core::ports::Redelivery for MemoryRedelivery {
    async fn redeliver_in(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        lock(&self.delays).push((receipt_handle.to_owned(), seconds));
        Ok(())
    }

    async fn requeue(&self, body: &str, delay_seconds: u32) -> Result<(), QueueError> {
        lock(&self.requeued).push((body.to_owned(), delay_seconds));
        Ok(())
    }
}

/// Keeps quarantined bodies in memory.
#[derive(Debug, Default)]
pub struct MemoryQuarantine {
    pub kept: Mutex<Vec<(Vec<u8>, String)>>,
}

impl Quarantine for MemoryQuarantine {
    async fn keep(&self, body: &[u8], reason: &str) -> Result<String, StoreError> {
        let mut kept = lock(&self.kept);
        kept.push((body.to_vec(), reason.to_owned()));
        Ok(format!("mem://{reason}/{}", kept.len()))
    }
}

/// One published message: its body and attributes.
pub type Published = (String, Vec<(String, String)>);

/// Records what was published, with its attributes; can be told to fail.
#[derive(Debug, Default)]
pub struct MemoryTopic {
    pub published: Mutex<Vec<Published>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryTopic {
    /// Every published body, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        lock(&self.published)
            .iter()
            .map(|(b, _)| serde_json::from_str(b).expect("published JSON"))
            .collect()
    }
}

impl EventPublisher for MemoryTopic {
    async fn publish(&self, body: &str, attributes: &[(&str, &str)]) -> Result<(), QueueError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(QueueError("injected failure".into()));
        }
        let attributes = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        lock(&self.published).push((body.to_owned(), attributes));
        Ok(())
    }
}
