//! Uploaded media ids by the S3 object they came from (`MEDIA#<phone>#<bucket>#<key>#<etag>`),
//! in a table with TTL: a second job naming the same object uploads nothing.

use aws_sdk_dynamodb::Client;

use whatsapp_core::ports::{MediaIdCache, StoreError};

use super::{n, num, s, text};

/// [`MediaIdCache`] on DynamoDB. Expiry is decided from `expires_at`, never from the item's
/// absence (TTL deletes late).
#[derive(Debug, Clone)]
pub struct DynamoMediaIds {
    client: Client,
    table: String,
}

impl DynamoMediaIds {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoMediaIds {
            client,
            table: table.into(),
        }
    }
}

impl MediaIdCache for DynamoMediaIds {
    async fn get(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .send()
            .await
            .map_err(|e| StoreError::new("media_ids.get", e))?;
        Ok(out.item.and_then(|item| {
            let live = num(&item, "expires_at").is_some_and(|at| at > now);
            live.then(|| text(&item, "media_id")).flatten()
        }))
    }

    async fn put(&self, key: &str, media_id: &str, expires_at: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(key))
            .item("media_id", s(media_id))
            .item("expires_at", n(expires_at))
            .send()
            .await
            .map_err(|e| StoreError::new("media_ids.put", e))?;
        Ok(())
    }
}
