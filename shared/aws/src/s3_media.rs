//! Media files in S3: streamed in (multipart, one part in memory at a time) and out.
//!
//! The bucket's encryption (SSE-KMS with the stack's key), public-access block and lifecycle
//! are the stack's (`infra/template.yaml`); objects inherit them, so no request names a key.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use whatsapp_core::ports::{BoxError, ByteStream, ObjectInfo, ObjectStore, StoreError};

/// Bytes per uploaded part (S3's minimum is 5 MiB, except for the last part). Peak memory of
/// a transfer is about one part.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// The metadata key of the digest the bytes were checked against.
const SHA256_METADATA: &str = "sha256";

/// [`ObjectStore`] on S3.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    part_bytes: usize,
}

impl S3Objects {
    pub fn new(client: Client) -> Self {
        S3Objects {
            client,
            part_bytes: PART_BYTES,
        }
    }

    /// With parts of `bytes` (≥ 5 MiB on S3; tests use less against an emulator).
    pub fn with_part_bytes(mut self, bytes: usize) -> Self {
        self.part_bytes = bytes.max(1);
        self
    }

    /// Fills `buf` from `body` up to the part size; false at the end of the stream.
    async fn fill<S: ByteStream>(
        &self,
        body: &mut S,
        buf: &mut Vec<u8>,
        carry: &mut Vec<u8>,
    ) -> Result<bool, BoxError> {
        buf.append(carry);
        while buf.len() < self.part_bytes {
            match body.next_chunk().await? {
                Some(chunk) => buf.extend_from_slice(&chunk),
                None => return Ok(false),
            }
        }
        // Keep parts exactly the part size: the overflow starts the next one.
        *carry = buf.split_off(self.part_bytes);
        Ok(true)
    }

    async fn multipart<S: ByteStream>(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        mut carry: Vec<u8>,
        body: &mut S,
    ) -> Result<u64, StoreError> {
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut buf = first;
        let mut more = true;
        let mut number = 1;
        loop {
            if !buf.is_empty() {
                total += buf.len() as u64;
                let out = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(S3Body::from(std::mem::take(&mut buf)))
                    .send()
                    .await
                    .map_err(|e| StoreError::new("media.upload_part", e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag)
                        .build(),
                );
                number += 1;
            }
            if !more {
                break;
            }
            buf = Vec::with_capacity(self.part_bytes);
            more = self
                .fill(body, &mut buf, &mut carry)
                .await
                .map_err(|e| StoreError::new("media.read_source", e))?;
            if !more && buf.is_empty() && carry.is_empty() {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| StoreError::new("media.complete_upload", e))?;
        Ok(total)
    }
}

/// An S3 object's bytes as a [`ByteStream`].
pub struct S3Reader(S3Body);

impl ByteStream for S3Reader {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BoxError> {
        match self.0.next().await {
            Some(Ok(bytes)) => Ok(Some(bytes.to_vec())),
            Some(Err(e)) => Err(Box::new(e)),
            None => Ok(None),
        }
    }
}

impl ObjectStore for S3Objects {
    type Reader = S3Reader;

    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length.unwrap_or(0).max(0) as u64,
                content_type: out.content_type,
                etag: out.e_tag.unwrap_or_default(),
                sha256: out.metadata.and_then(|m| m.get(SHA256_METADATA).cloned()),
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(StoreError::new("media.head", e)),
        }
    }

    async fn put_stream<S: ByteStream>(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        sha256: &str,
        body: &mut S,
    ) -> Result<u64, StoreError> {
        let mut first = Vec::with_capacity(self.part_bytes.min(1024 * 1024));
        let mut carry = Vec::new();
        let more = self
            .fill(body, &mut first, &mut carry)
            .await
            .map_err(|e| StoreError::new("media.read_source", e))?;
        if !more && carry.is_empty() {
            // Small enough for one request.
            let size = first.len() as u64;
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .metadata(SHA256_METADATA, sha256)
                .body(S3Body::from(first))
                .send()
                .await
                .map_err(|e| StoreError::new("media.put", e))?;
            return Ok(size);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .metadata(SHA256_METADATA, sha256)
            .send()
            .await
            .map_err(|e| StoreError::new("media.create_upload", e))?;
        let upload_id = created.upload_id.unwrap_or_default();
        match self
            .multipart(bucket, key, &upload_id, first, carry, body)
            .await
        {
            Ok(n) => Ok(n),
            Err(e) => {
                // Nothing half-written stays behind (the bucket's lifecycle also aborts
                // incomplete uploads after a day, should this call fail too).
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::new("media.delete", e))?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<S3Reader, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::new("media.get", e))?;
        Ok(S3Reader(out.body))
    }
}
