//! The quarantine: bodies we could not parse, kept in S3 for inspection.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use sha2::{Digest, Sha256};

use whatsapp_core::ports::{Quarantine, StoreError};

#[derive(Debug, Clone)]
pub struct S3Quarantine {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Quarantine {
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Quarantine {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }
}

impl Quarantine for S3Quarantine {
    async fn keep(&self, body: &[u8], reason: &str) -> Result<String, StoreError> {
        // Content-addressed: a retried delivery of the same body lands on the same key.
        let digest = hex::encode(Sha256::digest(body));
        let key = format!("{}{reason}/{digest}", self.prefix);
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .map_err(|e| StoreError::new("quarantine.keep", e))?;
        Ok(format!("s3://{}/{key}", self.bucket))
    }
}
