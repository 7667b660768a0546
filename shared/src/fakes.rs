//! In-memory implementations of the ports, for unit tests (feature `fakes`). They keep the
//! contracts of the real adapters (monotonic windows, first-writer-wins claims) so that handler
//! tests mean something; the adapters themselves are tested against ministack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::policy::WindowState;
use crate::ports::{
    Claim, DedupeStore, MessageQueue, QueueError, SecretError, SecretSource, Secrets, SessionStore,
    StoreError, UserKey,
};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug, Default)]
pub struct MemorySessions {
    items: Mutex<HashMap<UserKey, WindowState>>,
}

impl SessionStore for MemorySessions {
    async fn window(&self, key: &UserKey) -> Result<WindowState, StoreError> {
        Ok(lock(&self.items).get(key).copied().unwrap_or_default())
    }

    async fn record_inbound(
        &self,
        key: &UserKey,
        at: i64,
        has_referral: bool,
    ) -> Result<WindowState, StoreError> {
        let mut items = lock(&self.items);
        let s = items.entry(key.clone()).or_default();
        *s = s.with_inbound(at, has_referral);
        Ok(*s)
    }

    async fn record_business_reply(
        &self,
        key: &UserKey,
        at: i64,
    ) -> Result<WindowState, StoreError> {
        let mut items = lock(&self.items);
        let s = items.entry(key.clone()).or_default();
        *s = s.with_business_reply(at);
        Ok(*s)
    }
}

#[derive(Debug, Default)]
pub struct MemoryDedupe {
    claims: Mutex<HashMap<String, i64>>,
}

impl DedupeStore for MemoryDedupe {
    async fn claim(&self, key: &str, now: i64, expires_at: i64) -> Result<Claim, StoreError> {
        let mut claims = lock(&self.claims);
        match claims.get(key) {
            Some(&exp) if exp >= now => Ok(Claim::Duplicate),
            _ => {
                claims.insert(key.to_owned(), expires_at);
                Ok(Claim::First)
            }
        }
    }
}

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

/// Fixed secrets.
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub Arc<Secrets>);

impl StaticSecrets {
    pub fn new(app_secret: &str, verify_token: &str, access_token: &str) -> Self {
        StaticSecrets(Arc::new(Secrets {
            app_secret: app_secret.into(),
            verify_token: verify_token.into(),
            access_token: access_token.into(),
        }))
    }
}

impl SecretSource for StaticSecrets {
    async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        Ok(Arc::clone(&self.0))
    }
}
