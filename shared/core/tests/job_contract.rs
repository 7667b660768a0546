//! The send-job contract: the committed JSON Schema is current, every valid fixture passes both
//! the schema and the validator, and every invalid fixture fails with its specific reason.
//!
//! Regenerate the schema after changing the job types with
//! `UPDATE_SCHEMA=1 cargo test -p whatsapp-core --test job_contract`.

use std::path::{Path, PathBuf};

use whatsapp_core::job::{JobRejection, SendJob, ViolationCode, json_schema};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/send-job.schema.json")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixtures(kind: &str) -> Vec<(String, String)> {
    let dir = root().join("events/jobs").join(kind);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                read(&p),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn committed_schema_is_current() {
    let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(schema_path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(schema_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "shared/core/schema/send-job.schema.json is stale; run UPDATE_SCHEMA=1 cargo test -p whatsapp-core --test job_contract"
    );
}

fn committed_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(&read(&schema_path())).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

#[test]
fn every_message_type_has_a_valid_fixture() {
    let names: Vec<String> = fixtures("valid").into_iter().map(|(n, _)| n).collect();
    let types = [
        "text",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "contacts",
        "reaction",
        "interactive-button",
        "interactive-list",
        "interactive-cta-url",
        "interactive-product",
        "interactive-product-list",
        "interactive-flow",
        "template-positional",
        "template-named",
        "mark-read",
    ];
    for t in types {
        assert!(
            names.iter().any(|n| n.starts_with(t)),
            "no valid fixture for {t}"
        );
    }
}

#[test]
fn valid_fixtures_pass_the_committed_schema_and_the_validator() {
    let validator = committed_validator();
    for (name, body) in fixtures("valid") {
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name} fails the schema: {errors:?}");
        if let Err(e) = SendJob::parse(&body) {
            panic!("{name} rejected: {}", serde_json::to_string(&e).unwrap());
        }
    }
}

/// (fixture, path of the violation, code). `None` code: rejected as malformed.
const INVALID: &[(&str, &str, Option<ViolationCode>)] = &[
    ("bad-wa-id", "to.wa_id", Some(ViolationCode::InvalidFormat)),
    (
        "caption-on-audio",
        "message.audio.caption",
        Some(ViolationCode::NotAllowed),
    ),
    (
        "cta-url-not-http",
        "message.interactive.action.parameters.url",
        Some(ViolationCode::InvalidFormat),
    ),
    (
        "duplicate-button-ids",
        "message.interactive.action.buttons[].reply.id",
        Some(ViolationCode::Duplicate),
    ),
    (
        "empty-idempotency-key",
        "idempotency_key",
        Some(ViolationCode::Required),
    ),
    (
        "flow-id-and-name",
        "message.interactive.action.parameters",
        Some(ViolationCode::ExactlyOneOf),
    ),
    (
        "four-reply-buttons",
        "message.interactive.action.buttons",
        Some(ViolationCode::TooMany),
    ),
    (
        "image-gif-mime-type",
        "message.image.mime_type",
        Some(ViolationCode::MimeTypeNotAllowed),
    ),
    (
        "list-eleven-rows",
        "message.interactive.action.sections[].rows",
        Some(ViolationCode::TooMany),
    ),
    (
        "location-out-of-range",
        "message.location.latitude",
        Some(ViolationCode::OutOfRange),
    ),
    (
        "media-id-and-link",
        "message.image",
        Some(ViolationCode::ExactlyOneOf),
    ),
    (
        "media-s3-bad-bucket",
        "message.image.s3.bucket",
        Some(ViolationCode::InvalidFormat),
    ),
    ("missing-idempotency-key", "", None),
    (
        "product-list-31-products",
        "message.interactive.action.sections[].product_items",
        Some(ViolationCode::TooMany),
    ),
    (
        "several-violations",
        "message.text.body",
        Some(ViolationCode::Empty),
    ),
    (
        "template-bad-name",
        "message.template.name",
        Some(ViolationCode::InvalidFormat),
    ),
    (
        "template-mixed-parameters",
        "message.template.components",
        Some(ViolationCode::MixedParameterFormat),
    ),
    (
        "template-parameter-newline",
        "message.template.components[0].parameters[0].text",
        Some(ViolationCode::InvalidParameterText),
    ),
    (
        "text-too-long",
        "message.text.body",
        Some(ViolationCode::TooLong),
    ),
    ("unknown-field", "", None),
    ("unknown-message-type", "", None),
    (
        "unsupported-version",
        "version",
        Some(ViolationCode::UnsupportedVersion),
    ),
    (
        "video-too-large",
        "message.video.size_bytes",
        Some(ViolationCode::MediaTooLarge),
    ),
];

#[test]
fn every_invalid_fixture_fails_with_its_specific_reason() {
    let all = fixtures("invalid");
    assert_eq!(
        all.len(),
        INVALID.len(),
        "every invalid fixture has an expectation"
    );
    for (name, body) in all {
        let &(_, path, code) = INVALID
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("no expectation for {name}"));
        let rejection = SendJob::parse(&body).expect_err(&name);
        match (code, &rejection) {
            (None, JobRejection::Malformed { .. }) => {}
            (Some(code), JobRejection::Invalid { violations }) => assert!(
                violations.iter().any(|v| v.path == path && v.code == code),
                "{name}: expected {code:?} at {path}, got {violations:?}"
            ),
            _ => panic!("{name}: unexpected rejection {rejection:?}"),
        }
    }
}

#[test]
fn all_violations_are_reported_at_once_in_machine_readable_form() {
    let body = read(&root().join("events/jobs/invalid/several-violations.json"));
    let rejection = SendJob::parse(&body).unwrap_err();
    let json = serde_json::to_value(&rejection).unwrap();
    assert_eq!(json["reason"], "invalid");
    let paths: Vec<&str> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["phone_number_id", "to.wa_id", "message.text.body"]);
    assert_eq!(json["violations"][0]["code"], "invalid_format");
}

#[test]
fn missing_key_names_the_field() {
    let body = read(&root().join("events/jobs/invalid/missing-idempotency-key.json"));
    let JobRejection::Malformed { detail } = SendJob::parse(&body).unwrap_err() else {
        panic!("expected a malformed rejection")
    };
    assert!(detail.contains("idempotency_key"), "{detail}");
}

#[test]
fn schema_rejects_what_the_contract_forbids() {
    let validator = committed_validator();
    for name in [
        "unknown-field",
        "missing-idempotency-key",
        "unknown-message-type",
        "text-too-long",
        "bad-wa-id",
    ] {
        let path = root().join(format!("events/jobs/invalid/{name}.json"));
        let value: serde_json::Value = serde_json::from_str(&read(&path)).unwrap();
        assert!(!validator.is_valid(&value), "{name} passes the schema");
    }
}
