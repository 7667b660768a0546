//! Stage 1, last: a job whose media names an S3 object. Before anything reaches Meta, the
//! object is looked up in a bucket the sender may read and held to WhatsApp's limits for its
//! kind (type and size, §1c); then its media id is taken from the cache for that object
//! version, or the object is uploaded (`POST /{phone-number-id}/media`, streamed from S3), and
//! the job is sent by id.

use whatsapp_core::graph::ErrorClass;
use whatsapp_core::job::{Media, OutboundMessage, SendJob, Violation, ViolationCode};
use whatsapp_core::job::{TemplateComponent, TemplateParameter, file_violations};
use whatsapp_core::ports::{MediaApi, MediaIdCache, ObjectStore, StoreError, Upload};

use crate::{Sender, SenderPorts, Transient};

/// Why a job's S3 media cannot be sent.
pub(crate) enum MediaRefusal {
    /// The object breaks a rule (not allowed, missing, wrong type or size): `invalid`.
    Invalid(Vec<Violation>),
    /// Meta refused the upload for good (its code and message): `media_upload_failed`.
    Upload(String),
}

/// Every media reference of a message, with its kind and JSON path.
fn media_refs(message: &mut OutboundMessage) -> Vec<(&'static str, String, &mut Media)> {
    let mut out = Vec::new();
    match message {
        OutboundMessage::Image { image } => out.push(("image", "message.image".into(), image)),
        OutboundMessage::Audio { audio } => out.push(("audio", "message.audio".into(), audio)),
        OutboundMessage::Video { video } => out.push(("video", "message.video".into(), video)),
        OutboundMessage::Document { document } => {
            out.push(("document", "message.document".into(), document));
        }
        OutboundMessage::Sticker { sticker } => {
            out.push(("sticker", "message.sticker".into(), sticker));
        }
        OutboundMessage::Template { template } => {
            for (i, c) in template.components.iter_mut().enumerate() {
                let (TemplateComponent::Header { parameters }
                | TemplateComponent::Body { parameters }) = c
                else {
                    continue;
                };
                for (j, p) in parameters.iter_mut().enumerate() {
                    let path = format!("message.template.components[{i}].parameters[{j}]");
                    match p {
                        TemplateParameter::Image { image } => {
                            out.push(("image", format!("{path}.image"), image));
                        }
                        TemplateParameter::Video { video } => {
                            out.push(("video", format!("{path}.video"), video));
                        }
                        TemplateParameter::Document { document } => {
                            out.push(("document", format!("{path}.document"), document));
                        }
                        _ => {}
                    }
                }
            }
        }
        _ => {}
    }
    out
}

/// The cache key of an object version uploaded from a number (media ids belong to the number
/// that uploaded them).
pub(crate) fn cache_key(phone_number_id: &str, bucket: &str, key: &str, etag: &str) -> String {
    format!(
        "MEDIA#{phone_number_id}#{bucket}#{}#{key}",
        etag.trim_matches('"')
    )
}

fn violation(path: String, code: ViolationCode, message: String) -> Violation {
    Violation {
        path,
        code,
        limit: None,
        message,
    }
}

/// One object to upload, as checked.
struct FileToUpload<'a> {
    phone: &'a str,
    object: &'a whatsapp_core::job::S3Object,
    mime: &'a str,
    filename: Option<&'a str>,
    size: u64,
}

impl<P: SenderPorts> Sender<P> {
    /// Streams the object from S3 to Meta with the access token of the number's account. A 190 means the token
    /// was rotated or expired: re-read the secret once and upload once more (the stream was
    /// spent, so the object is read again), as sends do (`send.rs`).
    async fn upload_with_token(
        &self,
        file: &FileToUpload<'_>,
    ) -> Result<Result<String, whatsapp_core::ports::GraphCallError>, Transient> {
        self.refreshing_on_190(
            file.phone,
            async |token: &str| self.upload_once(file, token).await,
            || true,
        )
        .await
    }

    async fn upload_once(
        &self,
        file: &FileToUpload<'_>,
        token: &str,
    ) -> Result<Result<String, whatsapp_core::ports::GraphCallError>, Transient> {
        let body = self
            .ports
            .objects()
            .get(&file.object.bucket, &file.object.key)
            .await?;
        let upload = Upload {
            mime_type: file.mime.to_owned(),
            filename: file.filename.map(str::to_owned),
            size: file.size,
            body,
        };
        Ok(self.ports.media().upload(file.phone, upload, token).await)
    }

    /// Replaces each `s3` media of `job` by the id of its upload; `Ok(Err(_))` when the job
    /// must be refused. Uploads happen only once every object passed its checks.
    pub(crate) async fn resolve_media(
        &self,
        job: &mut SendJob,
        now: i64,
    ) -> Result<Result<(), MediaRefusal>, Transient> {
        let phone = job.phone_number_id.clone();
        let mut refs = media_refs(&mut job.message);
        refs.retain(|(_, _, m)| m.s3.is_some());
        if refs.is_empty() {
            return Ok(Ok(()));
        }
        let mut violations = Vec::new();
        let mut found = Vec::new();
        for (kind, path, media) in &refs {
            let Some(o) = media.s3.as_ref() else { continue };
            let at = format!("{path}.s3");
            if !self.config.media_source_buckets.contains(&o.bucket) {
                violations.push(violation(
                    format!("{at}.bucket"),
                    ViolationCode::NotAllowed,
                    format!("{} is not one of MEDIA_SOURCE_BUCKETS", o.bucket),
                ));
                continue;
            }
            let Some(info) = self.ports.objects().head(&o.bucket, &o.key).await? else {
                violations.push(violation(
                    format!("{at}.key"),
                    ViolationCode::NotFound,
                    "no such object".into(),
                ));
                continue;
            };
            let Some(mime) = info.content_type.clone() else {
                violations.push(violation(
                    format!("{at}.mime_type"),
                    ViolationCode::MimeTypeNotAllowed,
                    "the object has no content type".into(),
                ));
                continue;
            };
            let found_violations = file_violations(&at, kind, Some(&mime), Some(info.size));
            if found_violations.is_empty() {
                found.push((mime, info));
            } else {
                violations.extend(found_violations);
            }
        }
        if !violations.is_empty() {
            return Ok(Err(MediaRefusal::Invalid(violations)));
        }
        for ((_, _, media), (mime, info)) in refs.iter_mut().zip(found) {
            let Some(o) = media.s3.take() else { continue };
            let key = cache_key(&phone, &o.bucket, &o.key, &info.etag);
            let id = match self.ports.media_ids().get(&key, now).await? {
                Some(id) => id,
                None => {
                    let filename = media
                        .filename
                        .clone()
                        .or_else(|| o.key.rsplit('/').next().map(str::to_owned));
                    let file = FileToUpload {
                        phone: &phone,
                        object: &o,
                        mime: &mime,
                        filename: filename.as_deref(),
                        size: info.size,
                    };
                    match self.upload_with_token(&file).await? {
                        Ok(id) => {
                            self.ports
                                .media_ids()
                                .put(&key, &id, now + self.config.media_id_ttl_s)
                                .await?;
                            tracing::info!(size_bytes = info.size, "media uploaded from S3");
                            id
                        }
                        Err(e) if e.classification().class == ErrorClass::Terminal => {
                            return Ok(Err(MediaRefusal::Upload(e.to_string())));
                        }
                        Err(e) => return Err(StoreError::new("media.upload", e).into()),
                    }
                }
            };
            media.id = Some(id);
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_of_messages_and_template_headers_are_found_with_their_paths() {
        let mut m: OutboundMessage = serde_json::from_value(serde_json::json!({
            "type": "template", "template": {"name": "t", "language": {"code": "en"},
            "components": [
                {"type": "header", "parameters": [
                    {"type": "image", "image": {"s3": {"bucket": "b-1", "key": "h.png"}}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "x"}]}]}
        }))
        .unwrap();
        let refs = media_refs(&mut m);
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].0, "image");
        assert_eq!(
            refs[0].1,
            "message.template.components[0].parameters[0].image"
        );
        let mut doc: OutboundMessage = serde_json::from_value(serde_json::json!({
            "type": "document", "document": {"id": "1"}}))
        .unwrap();
        assert_eq!(media_refs(&mut doc)[0].1, "message.document");
        let mut text: OutboundMessage =
            serde_json::from_value(serde_json::json!({"type": "text", "text": {"body": "x"}}))
                .unwrap();
        assert!(media_refs(&mut text).is_empty());
    }

    #[test]
    fn the_cache_key_names_the_number_and_the_object_version() {
        let k = cache_key("1065", "bucket", "a/b.png", "\"abc\"");
        assert_eq!(k, "MEDIA#1065#bucket#abc#a/b.png");
        assert_ne!(k, cache_key("1066", "bucket", "a/b.png", "\"abc\""));
        assert_ne!(k, cache_key("1065", "bucket", "a/b.png", "\"abd\""));
    }

    #[test]
    fn s3_is_never_sent_to_meta() {
        let m: OutboundMessage = serde_json::from_value(serde_json::json!({
            "type": "image", "image": {"id": "42", "s3": {"bucket": "b-1", "key": "k"}}}))
        .unwrap();
        let wire = serde_json::to_value(&m).unwrap();
        assert_eq!(wire["image"], serde_json::json!({"id": "42"}));
    }
}
