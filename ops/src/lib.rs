//! Operating the middleware. [`dashboard`]: the CloudWatch dashboard's body, generated from
//! the metric catalog (`whatsapp_core::metrics::catalog`) and kept in `infra/template.yaml`.
//! [`dlq`]: dead-letter queues read, shown and redriven by reason, and [`records`]: jobs,
//! numbers and templates as stored, for `wactl`.

pub mod dashboard;
pub mod dlq;
pub mod records;
