//! The cached secret source on Secrets Manager.

use std::time::Duration;

use whatsapp_aws::{CachedSecrets, SecretsManagerFetcher};
use whatsapp_core::ports::{SecretError, SecretSource};

use crate::support::{aws, unique};

async fn secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = unique("wa-secret");
    client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
    name
}

const GOOD: &str = r#"{"app_secret":"app-1","verify_token":"verify-1","access_token":"token-1"}"#;

#[tokio::test]
async fn reads_the_json_secret_and_serves_it_from_cache() {
    let client = aws_sdk_secretsmanager::Client::new(&aws().await);
    let name = secret(&client, GOOD).await;
    let cache = CachedSecrets::new(
        SecretsManagerFetcher::new(client.clone(), &name),
        Duration::from_secs(300),
    );
    assert_eq!(cache.secrets().await.unwrap().access_token, "token-1");

    // Rotate: the cache keeps serving the old value until refreshed.
    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string(GOOD.replace("token-1", "token-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache.secrets().await.unwrap().access_token, "token-1");
    assert_eq!(cache.refresh().await.unwrap().access_token, "token-2");
}

#[tokio::test]
async fn a_missing_or_malformed_secret_is_a_clear_error() {
    let client = aws_sdk_secretsmanager::Client::new(&aws().await);
    let missing = CachedSecrets::new(
        SecretsManagerFetcher::new(client.clone(), "no-such-secret"),
        Duration::from_secs(1),
    );
    assert!(matches!(
        missing.secrets().await,
        Err(SecretError::NotFound(_))
    ));

    let name = secret(&client, r#"{"app_secret":"only"}"#).await;
    let bad = CachedSecrets::new(
        SecretsManagerFetcher::new(client, &name),
        Duration::from_secs(1),
    );
    assert!(matches!(bad.secrets().await, Err(SecretError::Malformed)));
}
