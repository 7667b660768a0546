//! The deployment's secrets and where they come from.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The three secrets of a deployment, from one Secrets Manager secret (JSON with keys
/// `app_secret`, `verify_token`, `access_token`). `Debug` never prints them.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Secrets {
    /// Meta app secret: keys `X-Hub-Signature-256`.
    pub app_secret: String,
    /// The token Meta echoes in the verification GET.
    pub verify_token: String,
    /// System-user access token for the Graph API.
    pub access_token: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

/// Why the secrets could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0} not found")]
    NotFound(String),
    #[error("secret is not a JSON object with app_secret, verify_token and access_token")]
    Malformed,
    #[error("secret store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the secrets come from. Implementations cache; `refresh` bypasses the cache (after a
/// 190 from Meta, say).
pub trait SecretSource: Send + Sync {
    fn secrets(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
    fn refresh(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
}
