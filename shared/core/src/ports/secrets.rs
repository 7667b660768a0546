//! The deployment's secrets and where they come from.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The secrets of a deployment, from one Secrets Manager secret (JSON with keys
/// `app_secret`, `verify_token`, `access_token`, and optionally `apps`). `Debug` never prints
/// them.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Secrets {
    /// Meta app secret: keys `X-Hub-Signature-256`. May be empty when `apps` names them all.
    pub app_secret: String,
    /// Further Meta apps whose webhooks this deployment receives, each with its own secret:
    /// `[{"name": "support-app", "app_secret": "..."}]`.
    #[serde(default)]
    pub apps: Vec<AppSecret>,
    /// The token Meta echoes in the verification GET.
    pub verify_token: String,
    /// System-user access token for the Graph API.
    pub access_token: String,
}

/// One more Meta app: a name for logs (never the secret) and its app secret.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
pub struct AppSecret {
    pub name: String,
    pub app_secret: String,
}

impl Secrets {
    /// One deployment, one app: the secrets the single-app secret held.
    pub fn single(app_secret: &str, verify_token: &str, access_token: &str) -> Self {
        Secrets {
            app_secret: app_secret.into(),
            apps: Vec::new(),
            verify_token: verify_token.into(),
            access_token: access_token.into(),
        }
    }

    /// Every configured app secret with its name: `default` for `app_secret` (when set),
    /// then `apps` in order.
    pub fn app_secrets(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once(("default", self.app_secret.as_str()))
            .filter(|(_, s)| !s.is_empty())
            .chain(
                self.apps
                    .iter()
                    .map(|a| (a.name.as_str(), a.app_secret.as_str())),
            )
    }
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
