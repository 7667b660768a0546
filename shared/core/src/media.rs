//! Media rules shared by both directions: which inbound messages carry a file, where it is
//! kept, how its digest and type are checked, and what bots receive about it.
//!
//! The per-type MIME and size limits (reference §1c) are [`crate::job::limits::media`], the
//! same table the send-job validator uses.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::webhook::{InboundMessage, Media, MessageContent};

/// The file an inbound message carries: its kind (`image`, `audio`, `video`, `document`,
/// `sticker`) and Meta's description of it, when it has a media id to fetch.
pub fn attachment(message: &InboundMessage) -> Option<(&'static str, &Media)> {
    let (kind, media) = match &message.content {
        MessageContent::Image(m) => ("image", m),
        MessageContent::Audio(m) => ("audio", m),
        MessageContent::Video(m) => ("video", m),
        MessageContent::Document(m) => ("document", m),
        MessageContent::Sticker(m) => ("sticker", m),
        _ => return None,
    };
    media.id.as_deref().filter(|id| !id.is_empty())?;
    Some((kind, media))
}

/// Where an inbound message's file is kept: `inbound/<phone-number-id>/<wamid>`, both made
/// safe for an S3 key without two ids sharing one: a wamid is base64, whose `+` and `/` become
/// base64url's `-` and `_`; anything else outside `[A-Za-z0-9.=]` is percent-encoded.
pub fn object_key(phone_number_id: &str, wamid: &str) -> String {
    let safe = |s: &str| -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '=' => out.push(c),
                '+' => out.push('-'),
                '/' => out.push('_'),
                _ => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("%{b:02X}"));
                    }
                }
            }
        }
        out
    };
    format!("inbound/{}/{}", safe(phone_number_id), safe(wamid))
}

/// Whether `expected` (Meta gives hex from `GET /{media-id}`, base64 in inbound webhooks)
/// names `digest`.
pub fn digest_matches(expected: &str, digest: &[u8; 32]) -> bool {
    digest_hex(expected).is_some_and(|h| h == hex::encode(digest))
}

/// `expected` (hex or base64, as [`digest_matches`] takes it) as lowercase hex; `None` when it
/// is neither.
pub fn digest_hex(expected: &str) -> Option<String> {
    let expected = expected.trim();
    if let Ok(bytes) = hex::decode(expected)
        && bytes.len() == 32
    {
        return Some(hex::encode(bytes));
    }
    [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ]
    .iter()
    .find_map(|engine| engine.decode(expected).ok().filter(|b| b.len() == 32))
    .map(hex::encode)
}

/// The type the first bytes of a file show, where a signature makes that cheap and certain;
/// `None` when they show nothing we check (text, Office formats, AMR, AAC, MP3 without ID3).
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |sig: &[u8]| head.starts_with(sig);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if starts(b"%PDF-") {
        Some("application/pdf")
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if head.get(4..8) == Some(b"ftyp") {
        // MP4, M4A and 3GP share the ISO base media container.
        Some("iso/mp4")
    } else if starts(b"GIF8") {
        Some("image/gif")
    } else {
        None
    }
}

/// Whether a file declared as `declared` may have the first bytes `head`: false only when
/// [`sniff`] recognises them as something else.
pub fn type_agrees(declared: &str, head: &[u8]) -> bool {
    let declared = declared
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match sniff(head) {
        None => true,
        Some("iso/mp4") => matches!(
            declared.as_str(),
            "video/mp4" | "video/3gpp" | "audio/mp4" | "audio/aac"
        ),
        Some(found) => found == declared,
    }
}

/// Bytes of a file's start that [`type_agrees`] needs.
pub const SNIFF_BYTES: usize = 16;

/// What bots get about a file that was kept: where it is and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMedia {
    pub bucket: String,
    pub key: String,
    pub mime_type: String,
    /// Lowercase hex SHA-256 of the stored bytes (checked against Meta's).
    pub sha256: String,
    pub size_bytes: u64,
}

/// Why a message reaches bots without its file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaError {
    pub code: MediaErrorCode,
    /// A sentence for people; never the URL, the token or the content.
    pub detail: String,
}

/// Stable, machine-readable reasons (`snake_case` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaErrorCode {
    /// Meta no longer has it (kept about 30 days, or deleted).
    MediaGone,
    /// The bytes never matched the `sha256` Meta gave.
    ChecksumMismatch,
    /// The bytes never matched the `file_size` Meta gave.
    SizeMismatch,
    /// The bytes are of another type than the one declared.
    TypeMismatch,
    /// Larger than WhatsApp allows for its kind.
    TooLarge,
    /// Still failing after every attempt (Meta or S3 unavailable).
    RetriesExhausted,
}

impl MediaErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaErrorCode::MediaGone => "media_gone",
            MediaErrorCode::ChecksumMismatch => "checksum_mismatch",
            MediaErrorCode::SizeMismatch => "size_mismatch",
            MediaErrorCode::TypeMismatch => "type_mismatch",
            MediaErrorCode::TooLarge => "too_large",
            MediaErrorCode::RetriesExhausted => "retries_exhausted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn digests_match_in_hex_or_base64_and_nothing_else() {
        let d: [u8; 32] = Sha256::digest(b"file").into();
        assert!(digest_matches(&hex::encode(d), &d));
        assert!(digest_matches(&hex::encode(d).to_uppercase(), &d));
        let b64 = base64::engine::general_purpose::STANDARD.encode(d);
        assert!(digest_matches(&b64, &d));
        let other: [u8; 32] = Sha256::digest(b"other").into();
        assert!(!digest_matches(&hex::encode(other), &d));
        assert!(!digest_matches("", &d));
        assert!(!digest_matches("not a digest", &d));
    }

    #[test]
    fn types_are_checked_only_where_the_signature_is_certain() {
        assert!(type_agrees("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!type_agrees("image/png", &[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!type_agrees("application/pdf", b"\x89PNG\r\n\x1a\n...."));
        assert!(type_agrees("audio/ogg; codecs=opus", b"OggS\0\x02"));
        assert!(type_agrees("video/mp4", b"\0\0\0\x18ftypmp42"));
        assert!(type_agrees("audio/mp4", b"\0\0\0\x18ftypM4A "));
        assert!(!type_agrees("image/jpeg", b"\0\0\0\x18ftypmp42"));
        // Nothing to tell: text, Office, AMR are not second-guessed.
        assert!(type_agrees("text/plain", b"hello"));
        assert!(type_agrees("application/msword", b"\xD0\xCF\x11\xE0"));
        assert!(!type_agrees("image/jpeg", b"GIF89a"));
    }

    #[test]
    fn object_keys_are_safe_and_distinct_per_number_and_message() {
        assert_eq!(
            object_key("106540352242922", "wamid.HBgL+ab/c=="),
            "inbound/106540352242922/wamid.HBgL-ab_c=="
        );
        assert_ne!(object_key("1", "wamid.a"), object_key("2", "wamid.a"));
        assert_ne!(object_key("1", "wamid.a+b"), object_key("1", "wamid.a/b"));
        assert_ne!(object_key("1", "wamid.a-b"), object_key("1", "wamid.a+b"));
    }
}
