//! The secret source: one Secrets Manager secret, cached in memory for a bounded time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;
use tokio::time::Instant;

use whatsapp_core::ports::{SecretError, SecretSource, Secrets};

/// Fetches the secrets from wherever they live, uncached.
pub trait SecretFetcher: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<Secrets, SecretError>> + Send;
}

/// Reads the JSON secret `secret_id` from Secrets Manager.
#[derive(Debug, Clone)]
pub struct SecretsManagerFetcher {
    client: Client,
    secret_id: String,
}

impl SecretsManagerFetcher {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerFetcher {
            client,
            secret_id: secret_id.into(),
        }
    }
}

impl SecretFetcher for SecretsManagerFetcher {
    async fn fetch(&self) -> Result<Secrets, SecretError> {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        let out = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(GetSecretValueError::ResourceNotFoundException(_)) => {
                    SecretError::NotFound(self.secret_id.clone())
                }
                _ => SecretError::Unavailable(Box::new(e)),
            })?;
        let text = out.secret_string().ok_or(SecretError::Malformed)?;
        Secrets::parse(text)
    }
}

/// Caches what a [`SecretFetcher`] returns for `ttl`. Concurrent callers share one fetch.
/// A rotated secret is picked up within `ttl`, or at once through [`SecretSource::refresh`].
pub struct CachedSecrets<F> {
    fetcher: F,
    ttl: Duration,
    cached: Mutex<Option<(Arc<Secrets>, Instant)>>,
}

impl<F: SecretFetcher> CachedSecrets<F> {
    pub fn new(fetcher: F, ttl: Duration) -> Self {
        CachedSecrets {
            fetcher,
            ttl,
            cached: Mutex::new(None),
        }
    }

    async fn get(&self, force: bool) -> Result<Arc<Secrets>, SecretError> {
        let mut slot = self.cached.lock().await;
        if !force
            && let Some((value, at)) = slot.as_ref()
            && at.elapsed() < self.ttl
        {
            return Ok(Arc::clone(value));
        }
        let fresh = Arc::new(self.fetcher.fetch().await?);
        *slot = Some((Arc::clone(&fresh), Instant::now()));
        Ok(fresh)
    }
}

impl<F: SecretFetcher> SecretSource for CachedSecrets<F> {
    async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
        self.get(false).await
    }

    async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
        self.get(true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
    }

    impl SecretFetcher for Counting {
        async fn fetch(&self) -> Result<Secrets, SecretError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Secrets::single(
                &format!("app-{n}"),
                "v",
                &format!("tok-{n}"),
            ))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn serves_from_cache_until_the_ttl_then_refetches() {
        let cache = CachedSecrets::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            Duration::from_secs(300),
        );
        assert_eq!(cache.secrets().await.unwrap().access_token, "tok-0");
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(cache.secrets().await.unwrap().access_token, "tok-0");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.secrets().await.unwrap().access_token, "tok-1");
        assert_eq!(cache.fetcher.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_bypasses_the_cache() {
        let cache = CachedSecrets::new(
            Counting {
                calls: AtomicUsize::new(0),
            },
            Duration::from_secs(300),
        );
        cache.secrets().await.unwrap();
        assert_eq!(cache.refresh().await.unwrap().access_token, "tok-1");
        assert_eq!(cache.secrets().await.unwrap().access_token, "tok-1");
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let mut s = Secrets::single("APPSECRET", "VERIFY", "TOKEN");
        s.apps.push(whatsapp_core::ports::AppSecret {
            name: "second".into(),
            app_secret: "SECONDSECRET".into(),
        });
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("APPSECRET")
                && !shown.contains("SECONDSECRET")
                && !shown.contains("VERIFY")
                && !shown.contains("TOKEN")
        );
    }
}
