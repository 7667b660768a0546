//! Fixed secrets.

use std::sync::Arc;

use whatsapp_core::ports::{SecretError, SecretSource, Secrets};

/// Fixed secrets.
#[derive(Debug, Clone)]
pub struct StaticSecrets(pub Arc<Secrets>);

impl StaticSecrets {
    pub fn new(app_secret: &str, verify_token: &str, access_token: &str) -> Self {
        StaticSecrets(Arc::new(Secrets::single(
            app_secret,
            verify_token,
            access_token,
        )))
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
