//! Media, as the reference (§1c limits, §6e) describes it: `POST /{phone}/media` (multipart:
//! `file`, `type`, `messaging_product`) returns an id usable for 30 days; `GET /{media-id}`
//! returns a download URL valid about 5 minutes, with `mime_type`, `sha256` and `file_size`;
//! the URL itself needs the bearer token (401 without it) and answers 404 once it expired or
//! the media is gone; `DELETE /{media-id}`. Inbound media from simulated users are real bytes
//! behind the same routes.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use crate::model::MediaObject;
use crate::{GraphError, Simulator, lock};

/// How long a download URL works (Meta: about 5 minutes).
pub const URL_TTL_S: i64 = 300;
/// How long Meta keeps media (uploaded and inbound): 30 days.
pub const RETENTION_S: i64 = crate::model::MEDIA_RETENTION_S;

/// What one upload or inbound media is checked against (§1c): the MIME types of each kind and
/// its size limit in bytes.
pub fn kind_of(mime: &str) -> Option<(&'static str, u64)> {
    const MB: u64 = 1024 * 1024;
    let mime = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match mime.as_str() {
        "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => ("audio", 16 * MB),
        "text/plain"
        | "application/pdf"
        | "application/vnd.ms-powerpoint"
        | "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            ("document", 100 * MB)
        }
        "image/jpeg" | "image/png" => ("image", 5 * MB),
        // 100 KB static, 500 KB animated: the upload cannot tell which, so the larger bound.
        "image/webp" => ("sticker", 500 * 1024),
        "video/3gpp" | "video/mp4" => ("video", 16 * MB),
        _ => return None,
    })
}

/// Deterministic bytes of `size` that start with the signature of `mime` (so a type check on
/// the bytes passes): what a simulated user's phone would send.
pub fn synthetic_bytes(mime: &str, size: usize, seed: u64) -> Vec<u8> {
    let head: &[u8] = match mime {
        "image/jpeg" => &[0xFF, 0xD8, 0xFF, 0xE0],
        "image/png" => &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
        "image/webp" => b"RIFF\0\0\0\0WEBPVP8 ",
        "application/pdf" => b"%PDF-1.7\n",
        "audio/ogg" => b"OggS",
        "video/mp4" | "audio/mp4" => b"\0\0\0\x18ftypmp42",
        _ => b"",
    };
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&head[..head.len().min(size)]);
    let mut x = seed | 1;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// One part of a `multipart/form-data` body.
struct Part<'a> {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: &'a [u8],
}

/// Splits a `multipart/form-data` body (RFC 7578) into its parts.
fn multipart<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty())
        .ok_or("the request is not multipart/form-data")?;
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, d, 0).ok_or("no multipart boundary in the body")? + d.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        let start = at + 2; // CRLF after the delimiter
        let headers_end = find(body, b"\r\n\r\n", start).ok_or("a part without headers")?;
        let headers = String::from_utf8_lossy(&body[start..headers_end]).into_owned();
        let data_start = headers_end + 4;
        let mut next_delim = Vec::with_capacity(d.len() + 2);
        next_delim.extend_from_slice(b"\r\n");
        next_delim.extend_from_slice(d);
        let end = find(body, &next_delim, data_start).ok_or("an unterminated part")?;
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: &body[data_start..end],
        };
        for line in headers.split("\r\n") {
            let Some((h, v)) = line.split_once(':') else {
                continue;
            };
            match h.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for p in v.split(';').map(str::trim) {
                        if let Some(n) = p.strip_prefix("name=") {
                            part.name = n.trim_matches('"').to_owned();
                        } else if let Some(f) = p.strip_prefix("filename=") {
                            part.filename = Some(f.trim_matches('"').to_owned());
                        }
                    }
                }
                "content-type" => part.content_type = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        parts.push(part);
        at = end + next_delim.len();
    }
}

fn upload_error(details: impl Into<String>) -> GraphError {
    GraphError::new(400, 131053, "Media upload error", details)
}

fn media_gone(id: &str) -> GraphError {
    GraphError {
        http: 404,
        code: 100,
        subcode: Some(33),
        message: format!(
            "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
        ),
        details: None,
    }
}

/// A download's answer: the bytes, or the HTTP status of its refusal.
pub enum Download {
    Bytes {
        mime_type: String,
        bytes: Arc<Vec<u8>>,
    },
    Refused(u16),
}

impl Simulator {
    /// Stores a media object and returns its id.
    pub(crate) fn store_media(
        &self,
        phone_number_id: &str,
        mime_type: &str,
        bytes: Vec<u8>,
        filename: Option<String>,
        uploaded: bool,
    ) -> MediaObject {
        let now = self.now();
        let sha256_hex = hex::encode(Sha256::digest(&bytes));
        let mut world = self.world();
        world.seq += 1;
        let id = format!("{}{:010}", 9_000_000 + world.seq % 1_000_000, world.seq);
        let object = MediaObject {
            id: id.clone(),
            phone_number_id: phone_number_id.to_owned(),
            mime_type: mime_type.to_owned(),
            bytes: Arc::new(bytes),
            sha256_hex,
            filename,
            created_at: now,
            deleted: false,
            uploaded,
        };
        world.media.insert(id, object.clone());
        object
    }

    /// `POST /{phone}/media`: the parts `messaging_product=whatsapp`, `type` (a MIME type of
    /// §1c) and `file`, whose size must be within its kind's limit.
    pub(crate) fn upload_media(
        &self,
        phone_id: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Value, GraphError> {
        if !self.world().phones.contains_key(phone_id) {
            return Err(crate::send::unknown_object(phone_id));
        }
        let parts = multipart(content_type, body).map_err(GraphError::param)?;
        let field = |name: &str| parts.iter().find(|p| p.name == name);
        let text = |name: &str| field(name).map(|p| String::from_utf8_lossy(p.data).into_owned());
        if text("messaging_product").as_deref() != Some("whatsapp") {
            return Err(GraphError::missing("messaging_product"));
        }
        let file = field("file").ok_or_else(|| GraphError::missing("file"))?;
        let mime = text("type")
            .or_else(|| file.content_type.clone())
            .ok_or_else(|| GraphError::missing("type"))?;
        let Some((kind, max)) = kind_of(&mime) else {
            return Err(upload_error(format!(
                "Unsupported file type {mime}; see the supported media types."
            )));
        };
        if file.data.is_empty() {
            return Err(upload_error("The file is empty."));
        }
        if file.data.len() as u64 > max {
            return Err(upload_error(format!(
                "The {kind} is {} bytes; the limit is {max}.",
                file.data.len()
            )));
        }
        let object = self.store_media(
            phone_id,
            &mime,
            file.data.to_vec(),
            file.filename.clone(),
            true,
        );
        Ok(json!({"id": object.id}))
    }

    /// `GET /{media-id}`: a fresh download URL (valid [`URL_TTL_S`]) and the file's facts.
    pub(crate) fn media_info(&self, id: &str, base_url: &str) -> Option<Result<Value, GraphError>> {
        let now_ms = self.now_ms();
        let mut world = self.world();
        let object = world.media.get(id)?.clone();
        if !object.alive(now_ms / 1000) {
            return Some(Err(media_gone(id)));
        }
        world.seq += 1;
        let token = format!("{:x}{:x}", world.seq, (self.random() * 1e15) as u64);
        world
            .media_urls
            .insert(token.clone(), (id.to_owned(), now_ms + URL_TTL_S * 1000));
        let url = format!("{base_url}/whatsapp_business/attachments/?mid={id}&hash={token}");
        Some(Ok(json!({
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": object.mime_type,
            "sha256": object.sha256_hex,
            "file_size": object.bytes.len(),
            "id": id,
        })))
    }

    /// `DELETE /{media-id}`.
    pub(crate) fn delete_media(&self, id: &str) -> Option<Result<Value, GraphError>> {
        let now = self.now();
        let mut world = self.world();
        let object = world.media.get_mut(id)?;
        if !object.alive(now) {
            return Some(Err(media_gone(id)));
        }
        object.deleted = true;
        Some(Ok(json!({"success": true})))
    }

    /// The download route: a bearer token that reaches the media's account is required (401),
    /// and the URL must be one `GET /{media-id}` issued less than [`URL_TTL_S`] ago for media
    /// still kept (404).
    pub(crate) fn download(&self, hash: &str, bearer: Option<&str>) -> Download {
        let now_ms = self.now_ms();
        let world = self.world();
        let url = world.media_urls.get(hash);
        // A token that does not reach the media's account is refused like one that is invalid.
        if world
            .authorize(bearer, url.map(|(id, _)| id.as_str()), now_ms / 1000)
            .is_err()
        {
            return Download::Refused(401);
        }
        let Some((id, expires_ms)) = url else {
            return Download::Refused(404);
        };
        match world.media.get(id) {
            Some(o) if *expires_ms > now_ms && o.alive(now_ms / 1000) => Download::Bytes {
                mime_type: o.mime_type.clone(),
                bytes: o.bytes.clone(),
            },
            _ => Download::Refused(404),
        }
    }

    /// The media a user's message carries, stored as Meta would: the body's `id`,
    /// `mime_type`, `sha256` (base64, as inbound webhooks give it) and `url` fields.
    pub(crate) fn inbound_media_fields(
        &self,
        phone_number_id: &str,
        mime_type: &str,
        bytes: Vec<u8>,
        filename: Option<String>,
    ) -> Value {
        let object = self.store_media(phone_number_id, mime_type, bytes, filename.clone(), false);
        let digest = hex::decode(&object.sha256_hex).unwrap_or_default();
        let base = lock(&self.inner.public_url).clone().unwrap_or_default();
        let url = self
            .media_info(&object.id, &base)
            .and_then(Result::ok)
            .and_then(|v| v["url"].as_str().map(str::to_owned));
        let mut fields = json!({
            "id": object.id,
            "mime_type": object.mime_type,
            "sha256": base64::engine::general_purpose::STANDARD.encode(digest),
        });
        if let Some(u) = url {
            fields["url"] = json!(u);
        }
        if let Some(f) = filename {
            fields["filename"] = json!(f);
        }
        fields
    }

    /// Every media object (uploaded and inbound), oldest first.
    pub fn media(&self) -> Vec<MediaObject> {
        let mut all: Vec<MediaObject> = self.world().media.values().cloned().collect();
        all.sort_by_key(|m| (m.created_at, m.id.clone()));
        all
    }

    /// The media object `id`, if any.
    pub fn media_object(&self, id: &str) -> Option<MediaObject> {
        self.world().media.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_are_split_with_their_headers() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\r\nbytes\r\n--XyZ--\r\n";
        let parts = multipart("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "messaging_product");
        assert_eq!(parts[0].data, b"whatsapp");
        assert_eq!(parts[1].filename.as_deref(), Some("a.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[1].data, b"\x89PNG\r\n\r\nbytes");
        assert!(multipart("application/json", body).is_err());
    }

    #[test]
    fn kinds_follow_the_reference_limits() {
        assert_eq!(kind_of("image/png"), Some(("image", 5 * 1024 * 1024)));
        assert_eq!(
            kind_of("application/pdf"),
            Some(("document", 100 * 1024 * 1024))
        );
        assert_eq!(kind_of("audio/ogg; codecs=opus").unwrap().0, "audio");
        assert_eq!(kind_of("image/gif"), None);
        assert!(synthetic_bytes("image/png", 100, 1).starts_with(b"\x89PNG"));
        assert_eq!(synthetic_bytes("image/jpeg", 2, 1).len(), 2);
    }
}
