//! The deployment's secrets and where they come from.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

/// The secrets of a deployment, from one Secrets Manager secret (JSON with keys
/// `app_secret`, `verify_token`, `access_token`, and optionally `apps` and `access_tokens`).
/// `Debug` never prints them.
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
    /// System-user access token for the Graph API: every account's, except those that
    /// `access_tokens` names. May be empty when `access_tokens` names them all.
    #[serde(default)]
    pub access_token: String,
    /// Access tokens by WABA id, for accounts that another system user (or another app's)
    /// holds: `{"102290129340398": "EAAG..."}`.
    #[serde(default)]
    pub access_tokens: BTreeMap<String, String>,
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
            access_tokens: BTreeMap::new(),
        }
    }

    /// Parses the secret's JSON. At least one access token must be set (`access_token` or
    /// an entry of `access_tokens`).
    pub fn parse(json: &str) -> Result<Self, SecretError> {
        let s: Secrets = serde_json::from_str(json).map_err(|_| SecretError::Malformed)?;
        if s.access_token.is_empty() && s.access_tokens.values().all(String::is_empty) {
            return Err(SecretError::Malformed);
        }
        Ok(s)
    }

    /// The access token for the account `waba_id`: its own in `access_tokens`, else
    /// `access_token`.
    pub fn access_token_for(&self, waba_id: &str) -> Result<&str, SecretError> {
        self.access_tokens
            .get(waba_id)
            .filter(|t| !t.is_empty())
            .or(Some(&self.access_token).filter(|t| !t.is_empty()))
            .map(String::as_str)
            .ok_or_else(|| SecretError::NoAccessToken(waba_id.to_owned()))
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
    #[error(
        "secret is not a JSON object with app_secret, verify_token and access_token (or access_tokens)"
    )]
    Malformed,
    #[error("the secret holds no access token for WABA {0} (access_tokens, or access_token)")]
    NoAccessToken(String),
    #[error("secret store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the secrets come from. Implementations cache; `refresh` bypasses the cache (after a
/// 190 from Meta, say).
pub trait SecretSource: Send + Sync {
    fn secrets(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
    fn refresh(&self) -> impl Future<Output = Result<Arc<Secrets>, SecretError>> + Send;
}

/// The access token of one account (WABA) for one piece of work, renewed at most once: after
/// Meta refused it (a 190: rotated or expired), [`AccountToken::renew`] re-reads the secret.
/// Only this account's token decides: another account's rotation neither triggers nor stops
/// a retry.
pub struct AccountToken<'a, S> {
    source: &'a S,
    waba_id: &'a str,
    secrets: Arc<Secrets>,
    renewed: bool,
}

impl<'a, S: SecretSource> AccountToken<'a, S> {
    /// The account's current token, from the source's cache.
    pub async fn read(source: &'a S, waba_id: &'a str) -> Result<Self, SecretError> {
        let secrets = source.secrets().await?;
        if let Err(e) = secrets.access_token_for(waba_id) {
            tracing::error!(alert = true, waba_id, "{e}");
            return Err(e);
        }
        Ok(AccountToken {
            source,
            waba_id,
            secrets,
            renewed: false,
        })
    }

    pub fn get(&self) -> &str {
        // Checked when read or renewed.
        self.secrets
            .access_token_for(self.waba_id)
            .unwrap_or_default()
    }

    /// Meta refused the token: re-read the secret (once per `AccountToken`). `true` when the
    /// account's token changed, so the call is worth making once more with [`Self::get`].
    pub async fn renew(&mut self) -> Result<bool, SecretError> {
        if self.renewed {
            self.refused_after_renewal();
            return Ok(false);
        }
        self.renewed = true;
        let fresh = self.source.refresh().await?;
        let changed = fresh.access_token_for(self.waba_id)? != self.get();
        self.secrets = fresh;
        if changed {
            tracing::info!(waba_id = self.waba_id, "access token refreshed after 190");
        } else {
            self.refused_after_renewal();
        }
        Ok(changed)
    }

    fn refused_after_renewal(&self) {
        tracing::error!(
            alert = true,
            code = 190,
            waba_id = self.waba_id,
            "access token rejected after refresh"
        );
    }
}

/// `call` with the access token of `waba_id`. When `rejected` says Meta refused that token,
/// the secret is re-read once ([`AccountToken::renew`]) and, if this account's token changed
/// and `again()` still allows, `call` runs once more with the new one.
pub async fn with_access_token<R>(
    source: &impl SecretSource,
    waba_id: &str,
    call: impl AsyncFn(&str) -> R,
    rejected: impl Fn(&R) -> bool,
    again: impl Fn() -> bool,
) -> Result<R, SecretError> {
    let mut token = AccountToken::read(source, waba_id).await?;
    let mut result = call(token.get()).await;
    if rejected(&result) && token.renew().await? && again() {
        result = call(token.get()).await;
        if rejected(&result) {
            token.renew().await?;
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Serves `versions` in turn: `secrets()` the current one, `refresh()` the next.
    struct Rotating {
        versions: Vec<Secrets>,
        at: Mutex<usize>,
        refreshes: Mutex<usize>,
    }

    impl Rotating {
        fn new(versions: Vec<Secrets>) -> Self {
            Rotating {
                versions,
                at: Mutex::new(0),
                refreshes: Mutex::new(0),
            }
        }
    }

    impl SecretSource for Rotating {
        async fn secrets(&self) -> Result<Arc<Secrets>, SecretError> {
            let at = *self.at.lock().unwrap();
            Ok(Arc::new(self.versions[at].clone()))
        }
        async fn refresh(&self) -> Result<Arc<Secrets>, SecretError> {
            *self.refreshes.lock().unwrap() += 1;
            let mut at = self.at.lock().unwrap();
            *at = (*at + 1).min(self.versions.len() - 1);
            Ok(Arc::new(self.versions[*at].clone()))
        }
    }

    fn tokens(default: &str, by_waba: &[(&str, &str)]) -> Secrets {
        let mut s = Secrets::single("app", "verify", default);
        s.access_tokens = by_waba
            .iter()
            .map(|(w, t)| ((*w).to_owned(), (*t).to_owned()))
            .collect();
        s
    }

    #[test]
    fn each_account_gets_its_own_token_and_the_rest_the_default() {
        let s = tokens("shared", &[("111", "own-111"), ("222", "")]);
        assert_eq!(s.access_token_for("111").unwrap(), "own-111");
        assert_eq!(
            s.access_token_for("222").unwrap(),
            "shared",
            "empty: default"
        );
        assert_eq!(s.access_token_for("333").unwrap(), "shared");
        let only_own = tokens("", &[("111", "own-111")]);
        assert!(matches!(
            only_own.access_token_for("333"),
            Err(SecretError::NoAccessToken(w)) if w == "333"
        ));
    }

    #[test]
    fn a_secret_must_hold_some_access_token() {
        let own = r#"{"app_secret":"a","verify_token":"v","access_tokens":{"111":"t"}}"#;
        assert_eq!(
            Secrets::parse(own)
                .unwrap()
                .access_token_for("111")
                .unwrap(),
            "t"
        );
        for bad in [
            r#"{"app_secret":"a","verify_token":"v"}"#,
            r#"{"app_secret":"a","verify_token":"v","access_token":""}"#,
            r#"{"app_secret":"a","verify_token":"v","access_tokens":{"111":""}}"#,
            r#"{"app_secret":"a"}"#,
            "not json",
        ] {
            assert!(
                matches!(Secrets::parse(bad), Err(SecretError::Malformed)),
                "{bad}"
            );
        }
    }

    async fn call_as(
        source: &Rotating,
        waba: &str,
        good: &str,
        calls: &Mutex<Vec<String>>,
    ) -> Result<bool, SecretError> {
        with_access_token(
            source,
            waba,
            async |t: &str| {
                calls.lock().unwrap().push(t.to_owned());
                t == good
            },
            |ok| !ok,
            || true,
        )
        .await
    }

    #[tokio::test]
    async fn a_190_retries_with_the_accounts_new_token() {
        let source = Rotating::new(vec![
            tokens("shared", &[("111", "old-111")]),
            tokens("shared", &[("111", "new-111")]),
        ]);
        let calls = Mutex::new(Vec::new());
        assert!(call_as(&source, "111", "new-111", &calls).await.unwrap());
        assert_eq!(*calls.lock().unwrap(), ["old-111", "new-111"]);
    }

    #[tokio::test]
    async fn another_accounts_rotation_does_not_retry_this_one() {
        // 222 was rotated; 111's token is the same, so a 190 for 111 is not retried.
        let source = Rotating::new(vec![
            tokens("shared", &[("111", "dead-111"), ("222", "old-222")]),
            tokens("shared", &[("111", "dead-111"), ("222", "new-222")]),
        ]);
        let calls = Mutex::new(Vec::new());
        assert!(!call_as(&source, "111", "never", &calls).await.unwrap());
        assert_eq!(*calls.lock().unwrap(), ["dead-111"]);
        assert_eq!(*source.refreshes.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn an_accepted_token_is_not_refreshed() {
        let source = Rotating::new(vec![tokens("shared", &[("111", "own")])]);
        let calls = Mutex::new(Vec::new());
        assert!(call_as(&source, "222", "shared", &calls).await.unwrap());
        assert_eq!(*calls.lock().unwrap(), ["shared"]);
        assert_eq!(*source.refreshes.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn no_retry_when_time_is_up() {
        let source = Rotating::new(vec![tokens("old", &[]), tokens("new", &[])]);
        let calls = Mutex::new(Vec::new());
        let r = with_access_token(
            &source,
            "111",
            async |t: &str| {
                calls.lock().unwrap().push(t.to_owned());
                t == "new"
            },
            |ok| !ok,
            || false,
        )
        .await
        .unwrap();
        assert!(!r);
        assert_eq!(*calls.lock().unwrap(), ["old"]);
    }
}
