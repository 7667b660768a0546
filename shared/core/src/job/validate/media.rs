use super::*;

pub(super) fn media(c: &mut Checker, path: &str, kind: &str, m: &Media) {
    match (&m.id, &m.link, &m.s3) {
        (Some(id), None, None) => c.text(&format!("{path}.id"), id, true, 256),
        (None, Some(link), None) => c.format(
            &format!("{path}.link"),
            is_https_url(link),
            "an http(s) URL",
        ),
        (None, None, Some(o)) => {
            let bucket_ok = (3..=63).contains(&o.bucket.len())
                && o.bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                })
                && !o.bucket.starts_with(['.', '-'])
                && !o.bucket.ends_with(['.', '-']);
            c.format(&format!("{path}.s3.bucket"), bucket_ok, "an S3 bucket name");
            if o.key.is_empty() || o.key.len() > 1024 {
                c.push(
                    &format!("{path}.s3.key"),
                    ViolationCode::OutOfRange,
                    Some(1024),
                    "an S3 key is 1–1024 bytes".into(),
                );
            }
        }
        _ => c.push(
            path,
            ViolationCode::ExactlyOneOf,
            None,
            format!("{path} needs exactly one of id, link or s3"),
        ),
    }
    if let Some(caption) = &m.caption {
        if matches!(kind, "image" | "video" | "document") {
            c.text(
                &format!("{path}.caption"),
                caption,
                false,
                limits::CAPTION_MAX,
            );
        } else {
            c.push(
                &format!("{path}.caption"),
                ViolationCode::NotAllowed,
                None,
                format!("{kind} messages cannot have a caption"),
            );
        }
    }
    if m.filename.is_some() && kind != "document" {
        c.push(
            &format!("{path}.filename"),
            ViolationCode::NotAllowed,
            None,
            "only documents have a filename".into(),
        );
    }
    file(c, path, kind, m.mime_type.as_deref(), m.size_bytes);
}

/// What WhatsApp's limits (§1c) say of a file of `kind` with this content type and size, as
/// violations under `path` (`mime_type`, `size_bytes`): the producer's declaration at gate 0,
/// and an S3 object's own type and size before it is uploaded.
pub fn file_violations(
    path: &str,
    kind: &str,
    mime_type: Option<&str>,
    size_bytes: Option<u64>,
) -> Vec<Violation> {
    let mut c = Checker { out: Vec::new() };
    file(&mut c, path, kind, mime_type, size_bytes);
    c.out
}

fn file(c: &mut Checker, path: &str, kind: &str, mime_type: Option<&str>, size_bytes: Option<u64>) {
    let Some((mimes, max)) = limits::media(kind) else {
        return;
    };
    if let Some(mime) = mime_type {
        let base = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !mimes.contains(&base.as_str()) {
            c.push(
                &format!("{path}.mime_type"),
                ViolationCode::MimeTypeNotAllowed,
                None,
                format!("{kind} must be one of {}", mimes.join(", ")),
            );
        }
    }
    if size_bytes == Some(0) {
        c.push(
            &format!("{path}.size_bytes"),
            ViolationCode::Empty,
            None,
            format!("the {kind} is empty"),
        );
    }
    if let Some(size) = size_bytes
        && size > max
    {
        c.push(
            &format!("{path}.size_bytes"),
            ViolationCode::MediaTooLarge,
            Some(max),
            format!("{kind} is {size} bytes; the limit is {max}"),
        );
    }
}
