//! Operating the middleware. [`dashboard`]: the CloudWatch dashboard's body, generated from
//! the metric catalog (`whatsapp_core::metrics::catalog`) and kept in `infra/template.yaml`.
//! [`dlq`]: dead-letter queues read, shown and redriven by reason, for `wactl`.

pub mod dashboard;
pub mod dlq;
