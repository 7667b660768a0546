//! `X-Hub-Signature-256`: HMAC-SHA256 of the exact request bytes, keyed with the Meta app secret,
//! sent as `sha256=<64 lowercase hex digits>`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Meta signs POSTs with. HTTP header names are case-insensitive; look it up that way.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Why a signature was refused. Kept coarse on purpose: the caller answers 401 either way and
/// logs only the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature header is not of the form sha256=<64 hex digits>")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// The shortest secret accepted as an app secret or verify token. Meta's app secrets are 32
/// hex digits; the template generates a 40-character verify token.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a configured secret must not be used: with it, anyone could sign a webhook (HMAC accepts
/// any key) or pass the verification handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakSecret {
    #[error("the secret is empty")]
    Empty,
    #[error("the secret is still a placeholder")]
    Placeholder,
    #[error("the secret is shorter than 16 bytes")]
    TooShort,
}

/// Whether `secret` may key webhook signatures or the verification handshake: not empty, not
/// a placeholder (the template seeds `SET-ME`), at least [`MIN_SECRET_BYTES`] long.
pub fn usable_secret(secret: &str) -> Result<(), WeakSecret> {
    const PLACEHOLDERS: [&str; 5] = ["SET-ME", "SETME", "CHANGE-ME", "CHANGEME", "REPLACE-ME"];
    let s = secret.trim();
    if s.is_empty() {
        return Err(WeakSecret::Empty);
    }
    let upper = s.to_ascii_uppercase();
    if PLACEHOLDERS.iter().any(|p| upper.starts_with(p)) {
        return Err(WeakSecret::Placeholder);
    }
    if s.len() < MIN_SECRET_BYTES {
        return Err(WeakSecret::TooShort);
    }
    Ok(())
}

/// Verifies `header` (the raw header value) against `body` in constant time.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac(app_secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Verifies `header` against every secret of `apps` (name, secret) and answers which app
/// signed `body`. Each secret is checked in constant time, and all of them always are: the
/// time taken says how many apps there are, never which one matched.
pub fn verify_any<'a>(
    apps: &[(&'a str, &[u8])],
    body: &[u8],
    header: Option<&str>,
) -> Result<&'a str, SignatureError> {
    let mut signer = None;
    let mut error = SignatureError::Mismatch;
    for (name, secret) in apps {
        match verify(secret, body, header) {
            Ok(()) => signer = signer.or(Some(*name)),
            // Missing and malformed headers fail the same way for every secret.
            Err(e @ (SignatureError::Missing | SignatureError::Malformed)) => error = e,
            Err(SignatureError::Mismatch) => {}
        }
    }
    signer.ok_or(error)
}

/// The header value Meta would send for `body`: `sha256=<lowercase hex>`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(app_secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// Compares two secrets (e.g. the webhook verify token) in constant time.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    // `ct_eq` on slices of different lengths is false without comparing contents; the length of
    // a verify token is not a secret worth hiding.
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_app_may_sign_and_the_signer_is_named() {
        let apps: [(&str, &[u8]); 2] = [
            ("default", b"first-app-secret-0001"),
            ("support", b"second-app-secret-002"),
        ];
        let body = br#"{"object":"whatsapp_business_account"}"#;
        for (name, secret) in apps {
            let header = sign(secret, body);
            assert_eq!(verify_any(&apps, body, Some(&header)), Ok(name));
        }
        let stranger = sign(b"another-app-secret-03", body);
        assert_eq!(
            verify_any(&apps, body, Some(&stranger)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify_any(&apps, body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify_any(&apps, body, Some("sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_any(&[], body, Some(&stranger)),
            Err(SignatureError::Mismatch),
            "no app, no match"
        );
    }

    #[test]
    fn placeholders_and_short_secrets_are_not_usable() {
        assert_eq!(usable_secret(""), Err(WeakSecret::Empty));
        assert_eq!(usable_secret("  "), Err(WeakSecret::Empty));
        assert_eq!(usable_secret("SET-ME"), Err(WeakSecret::Placeholder));
        assert_eq!(
            usable_secret("set-me-to-the-app-secret"),
            Err(WeakSecret::Placeholder)
        );
        assert_eq!(usable_secret("0123456789abcde"), Err(WeakSecret::TooShort));
        assert_eq!(usable_secret("0123456789abcdef"), Ok(()));
        assert_eq!(usable_secret("e3b0c44298fc1c149afbf4c8996fb924"), Ok(()));
    }

    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert_eq!(
            sign(b"secret", b"test"),
            "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
        );
    }

    #[test]
    fn accepts_a_correct_signature_in_either_hex_case() {
        let body = br#"{"a":"\u00e4\u00f6\u00e5 @ \/"}"#;
        let sig = sign(b"k", body);
        assert_eq!(verify(b"k", body, Some(&sig)), Ok(()));
        assert_eq!(
            verify(
                b"k",
                body,
                Some(&sig.to_uppercase().replace("SHA256=", "sha256="))
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects_every_bad_form() {
        let body = b"{}";
        let good = sign(b"k", body);
        let sha1 = good.replace("sha256=", "sha1=");
        let short = &good[..good.len() - 2];
        let nonhex = format!("sha256={}", "zz".repeat(32));
        let mut wrong_last = good.clone();
        let last = if wrong_last.ends_with('0') { "1" } else { "0" };
        wrong_last.replace_range(good.len() - 1.., last);
        assert_eq!(verify(b"k", body, None), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"k", body, Some(&sha1)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", body, Some(short)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", body, Some(&nonhex)),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"k", body, Some(&wrong_last)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", body, Some(&good)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_reserialised_body_fails() {
        let raw = br#"{"t":"caf\u00e9 \/ @"}"#;
        let sig = sign(b"k", raw);
        let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
        let reserialised = serde_json::to_vec(&v).unwrap();
        assert_eq!(
            verify(b"k", &reserialised, Some(&sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal(b"tok", b"tok"));
        assert!(!secrets_equal(b"tok", b"toK"));
        assert!(!secrets_equal(b"tok", b"tok2"));
    }
}
