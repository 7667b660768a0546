//! Media in memory: a bucket, the media-id cache, and Meta's upload endpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use whatsapp_core::ports::{
    BoxError, ByteStream, Chunks, DownloadError, GraphCallError, MediaApi, MediaIdCache, MediaInfo,
    ObjectInfo, ObjectStore, StoreError, Upload,
};

use crate::lock;

/// One stored object: bytes, content type, ETag.
pub type StoredObject = (Vec<u8>, String, String);

/// Objects by (bucket, key). The ETag changes with every write.
#[derive(Debug, Default)]
pub struct MemoryObjects {
    pub objects: Mutex<HashMap<(String, String), StoredObject>>,
    writes: AtomicU64,
}

impl MemoryObjects {
    pub fn insert(&self, bucket: &str, key: &str, content_type: &str, bytes: Vec<u8>) {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        lock(&self.objects).insert(
            (bucket.to_owned(), key.to_owned()),
            (bytes, content_type.to_owned(), format!("\"etag-{n}\"")),
        );
    }

    pub fn bytes(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|o| o.0.clone())
    }
}

impl ObjectStore for MemoryObjects {
    type Reader = Chunks;

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        Ok(lock(&self.objects)
            .get(&(bucket.to_owned(), key.to_owned()))
            .map(|(b, ct, etag)| ObjectInfo {
                size: b.len() as u64,
                content_type: Some(ct.clone()),
                etag: etag.clone(),
                sha256: None,
            }))
    }

    async fn put_stream<S: ByteStream>(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        _sha256: &str,
        body: &mut S,
    ) -> Result<u64, StoreError> {
        let mut all = Vec::new();
        while let Some(c) = body
            .next_chunk()
            .await
            .map_err(|e: BoxError| StoreError::new("objects.put", e))?
        {
            all.extend(c);
        }
        let n = all.len() as u64;
        self.insert(bucket, key, content_type, all);
        Ok(n)
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        lock(&self.objects).remove(&(bucket.to_owned(), key.to_owned()));
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Chunks, StoreError> {
        self.bytes(bucket, key)
            .map(|b| Chunks::of(&b, 64 * 1024))
            .ok_or_else(|| StoreError::new("objects.get", "no such object"))
    }
}

/// The media-id cache, expiring by its stored time.
#[derive(Debug, Default)]
pub struct MemoryMediaIds(pub Mutex<HashMap<String, (String, i64)>>);

impl MediaIdCache for MemoryMediaIds {
    async fn get(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        Ok(lock(&self.0)
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(id, _)| id.clone()))
    }

    async fn put(&self, key: &str, media_id: &str, expires_at: i64) -> Result<(), StoreError> {
        lock(&self.0).insert(key.to_owned(), (media_id.to_owned(), expires_at));
        Ok(())
    }
}

/// Meta's media endpoints in memory: uploads are kept and given ids; nothing to download.
#[derive(Debug, Default)]
pub struct MemoryMediaApi {
    /// (phone number id, MIME type, bytes) per upload, in order.
    pub uploads: Mutex<Vec<(String, String, Vec<u8>)>>,
}

impl MediaApi for MemoryMediaApi {
    type Download = Chunks;

    async fn media_info(&self, media_id: &str, _: &str) -> Result<MediaInfo, GraphCallError> {
        Err(GraphCallError::Decode {
            status: 404,
            detail: format!("no media {media_id} in memory"),
        })
    }

    async fn download(&self, _: &str, _: &str) -> Result<Chunks, DownloadError> {
        Err(DownloadError::Refused(404))
    }

    async fn upload<B: ByteStream + 'static>(
        &self,
        phone_number_id: &str,
        mut file: Upload<B>,
        _: &str,
    ) -> Result<String, GraphCallError> {
        let mut bytes = Vec::new();
        while let Some(c) = file
            .body
            .next_chunk()
            .await
            .map_err(GraphCallError::Transport)?
        {
            bytes.extend(c);
        }
        let mut uploads = lock(&self.uploads);
        uploads.push((phone_number_id.to_owned(), file.mime_type, bytes));
        Ok(format!("mem-media-{}", uploads.len()))
    }
}
