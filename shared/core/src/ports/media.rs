//! Media: Meta's media endpoints, the bucket files are kept in and read from, and the cache of
//! uploaded media ids. Files move as streams of chunks, never whole.

use std::future::Future;

use sha2::{Digest, Sha256};

use super::{GraphCallError, StoreError};

/// A boxed error of a byte source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A file's bytes, chunk by chunk.
pub trait ByteStream: Send {
    /// The next chunk, or `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, BoxError>> + Send;
}

/// What `GET /{media-id}` says of a media object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// A download URL, valid about 5 minutes.
    pub url: String,
    pub mime_type: Option<String>,
    /// Hex (Meta's media endpoint) or base64.
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

/// A download that did not start.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The URL is refused (401, 403, 404, 410): it expired, or the media is gone; a fresh URL
    /// from `GET /{media-id}` tells which.
    #[error("download URL refused (HTTP {0})")]
    Refused(u16),
    /// Anything else (5xx, 429, the connection): worth a retry.
    #[error("download failed")]
    Failed(#[source] BoxError),
}

/// A file to upload to `POST /{phone-number-id}/media`.
pub struct Upload<B> {
    pub mime_type: String,
    pub filename: Option<String>,
    /// Its exact length: the request is streamed with a known length.
    pub size: u64,
    pub body: B,
}

/// Meta's media endpoints.
pub trait MediaApi: Send + Sync {
    type Download: ByteStream;

    /// `GET /{media-id}`: a fresh download URL and the file's facts.
    fn media_info(
        &self,
        media_id: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<MediaInfo, GraphCallError>> + Send;

    /// `GET <url>` with the bearer token, as a stream.
    fn download(
        &self,
        url: &str,
        access_token: &str,
    ) -> impl Future<Output = Result<Self::Download, DownloadError>> + Send;

    /// `POST /{phone-number-id}/media`, streamed; returns the media id (usable 30 days).
    fn upload<B: ByteStream + 'static>(
        &self,
        phone_number_id: &str,
        file: Upload<B>,
        access_token: &str,
    ) -> impl Future<Output = Result<String, GraphCallError>> + Send;
}

/// What a bucket says of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
    pub etag: String,
    /// The `sha256` metadata it was written with, if any (lowercase hex).
    pub sha256: Option<String>,
}

/// The buckets files are kept in (inbound) and read from (outbound).
pub trait ObjectStore: Send + Sync {
    type Reader: ByteStream + 'static;

    /// The object's facts, or `None` if there is none.
    fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, StoreError>> + Send;

    /// Writes `body` as the object, holding at most one part (a few MiB) in memory, with
    /// `sha256` (lowercase hex, the digest the bytes must have) as its metadata. The object
    /// appears only once complete; a failure midway leaves nothing. Returns the bytes written.
    fn put_stream<S: ByteStream>(
        &self,
        bucket: &str,
        key: &str,
        content_type: &str,
        sha256: &str,
        body: &mut S,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn delete(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The object's bytes, as a stream.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Self::Reader, StoreError>> + Send;
}

/// Uploaded media ids by the file they came from, kept for less than Meta's 30 days.
pub trait MediaIdCache: Send + Sync {
    /// The media id for `key`, if one was stored and has not expired at `now` (epoch s).
    fn get(
        &self,
        key: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    fn put(
        &self,
        key: &str,
        media_id: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A byte stream that hashes and counts what passes through it, and keeps its first bytes
/// (for a type check).
pub struct Hashing<'a, S> {
    inner: &'a mut S,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    head_len: usize,
    /// Stop with an error past this many bytes (a file larger than announced).
    limit: Option<u64>,
}

impl<'a, S: ByteStream> Hashing<'a, S> {
    pub fn new(inner: &'a mut S, head_len: usize, limit: Option<u64>) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
            head: Vec::with_capacity(head_len),
            head_len,
            limit,
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The digest of everything read so far.
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

/// A stream that went past [`Hashing`]'s limit.
#[derive(Debug, thiserror::Error)]
#[error("the file is larger than {0} bytes")]
pub struct TooLarge(pub u64);

impl<S: ByteStream> ByteStream for Hashing<'_, S> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BoxError> {
        let Some(chunk) = self.inner.next_chunk().await? else {
            return Ok(None);
        };
        self.size += chunk.len() as u64;
        if let Some(limit) = self.limit
            && self.size > limit
        {
            return Err(Box::new(TooLarge(limit)));
        }
        self.hasher.update(&chunk);
        let want = self.head_len.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..want.min(chunk.len())]);
        Ok(Some(chunk))
    }
}

/// A byte stream over chunks in memory (tests, and small files).
pub struct Chunks(pub std::collections::VecDeque<Vec<u8>>);

impl Chunks {
    /// `bytes` in chunks of `size`.
    pub fn of(bytes: &[u8], size: usize) -> Self {
        Chunks(bytes.chunks(size.max(1)).map(<[u8]>::to_vec).collect())
    }
}

impl ByteStream for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(self.0.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        // The streams here never wait: poll once with a no-op waker.
        let mut f = std::pin::pin!(f);
        let waker = std::task::Waker::noop();
        match f.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn hashing_counts_digests_keeps_the_head_and_stops_past_its_limit() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let mut src = Chunks::of(&bytes, 7);
        let mut h = Hashing::new(&mut src, 16, Some(100));
        let mut out = Vec::new();
        while let Some(c) = block_on(h.next_chunk()).unwrap() {
            out.extend(c);
        }
        assert_eq!(out, bytes);
        assert_eq!(h.size(), 100);
        assert_eq!(h.head(), &bytes[..16]);
        assert_eq!(h.digest(), <[u8; 32]>::from(Sha256::digest(&bytes)));

        let mut src = Chunks::of(&bytes, 30);
        let mut h = Hashing::new(&mut src, 0, Some(50));
        assert!(block_on(h.next_chunk()).is_ok());
        let err = block_on(h.next_chunk()).unwrap_err();
        assert!(err.downcast_ref::<TooLarge>().is_some());
    }
}
