//! Operating the middleware. [`dashboard`]: the CloudWatch dashboard's body, generated from
//! the metric catalog (`whatsapp_core::metrics::catalog`) and kept in `infra/template.yaml`.

pub mod dashboard;
