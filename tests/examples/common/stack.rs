//! Fresh tables and queues on ministack for the load drivers, shaped as `infra/template.yaml`
//! declares them (a `pk` string key; the messages table with its callback-data and usage-day
//! indexes).
// Each example that includes this module uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The tables the sender and ingest use, named `<prefix>-<table>`: sessions, contacts,
/// templates, messages, dedupe, control, phones.
pub async fn tables(
    ddb: &aws_sdk_dynamodb::Client,
    prefix: &str,
) -> Result<BTreeMap<&'static str, String>, Error> {
    let key = |name: &str| -> Result<(AttributeDefinition, KeySchemaElement), Error> {
        Ok((
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()?,
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::Hash)
                .build()?,
        ))
    };
    let mut out = BTreeMap::new();
    for t in [
        "sessions",
        "contacts",
        "templates",
        "messages",
        "dedupe",
        "control",
        "media-ids",
        "phones",
    ] {
        let name = format!("{prefix}-{t}");
        let (def, schema) = key("pk")?;
        let mut req = ddb
            .create_table()
            .table_name(&name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(def)
            .key_schema(schema);
        if t == "messages" {
            let (def, schema) = key("callback_unpriced")?;
            req = req.attribute_definitions(def).global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(whatsapp_aws::CALLBACK_INDEX)
                    .key_schema(schema)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()?,
            );
            let (def, schema) = key("usage_pk")?;
            let (sort_def, sort) = key(whatsapp_core::usage::USAGE_SORT_KEY)?;
            let sort = KeySchemaElement::builder()
                .attribute_name(sort.attribute_name())
                .key_type(KeyType::Range)
                .build()?;
            req = req
                .attribute_definitions(def)
                .attribute_definitions(sort_def)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(whatsapp_core::usage::USAGE_INDEX)
                        .key_schema(schema)
                        .key_schema(sort)
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::Include)
                                .set_non_key_attributes(Some(
                                    whatsapp_core::usage::USAGE_INDEX_ATTRIBUTES
                                        .iter()
                                        .map(|a| (*a).to_owned())
                                        .collect(),
                                ))
                                .build(),
                        )
                        .build()?,
                );
        }
        req.send().await?;
        out.insert(t, name);
    }
    Ok(out)
}

/// A fresh queue with these attributes; its URL.
pub async fn queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(&str, String)],
) -> Result<String, Error> {
    let mut req = sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        req = req.attributes(aws_sdk_sqs::types::QueueAttributeName::from(*k), v);
    }
    Ok(req.send().await?.queue_url.unwrap_or_default())
}

pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, Error> {
    let name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    Ok(sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await?
        .attributes
        .and_then(|a| a.get(&name).cloned())
        .unwrap_or_default())
}
