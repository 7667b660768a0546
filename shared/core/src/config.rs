//! Typed configuration from environment variables, parsed once at cold start.
//!
//! Each function has its own config struct built with these helpers; the variable names match the
//! SAM template's `Environment` blocks and the README's configuration table.

use std::str::FromStr;
use std::time::Duration;

/// A missing or unparsable setting.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A source of settings: the process environment, or a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;

    /// A required, non-empty setting.
    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing(name))
    }

    /// An optional setting parsed as `T`, or `default` when unset or empty.
    fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        }
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

/// Settings of the secret source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretConfig {
    /// `WHATSAPP_SECRET_ID`: name or ARN of the JSON secret.
    pub secret_id: String,
    /// `SECRET_CACHE_TTL_SECONDS` (default 300): how long a fetched secret is reused.
    pub cache_ttl: Duration,
}

impl SecretConfig {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(SecretConfig {
            secret_id: env.required("WHATSAPP_SECRET_ID")?,
            cache_ttl: Duration::from_secs(env.parsed_or("SECRET_CACHE_TTL_SECONDS", 300u64)?),
        })
    }
}

/// Where one business number belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberHome {
    pub waba_id: String,
    /// The business portfolio whose messaging limit it shares.
    pub portfolio_id: String,
}

/// Parses `PHONE_NUMBERS`.
pub fn parse_numbers(
    value: &str,
) -> Result<std::collections::HashMap<String, NumberHome>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PHONE_NUMBERS",
        reason,
    };
    let mut out = std::collections::HashMap::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parts: Vec<&str> = entry.split(':').map(str::trim).collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match parts.as_slice() {
            [pn, waba] | [pn, waba, _] if digits(pn) && digits(waba) => {
                let portfolio = parts.get(2).copied().unwrap_or(waba);
                if !digits(portfolio) {
                    return Err(invalid(format!("portfolio id in {entry:?} is not numeric")));
                }
                out.insert(
                    (*pn).to_owned(),
                    NumberHome {
                        waba_id: (*waba).to_owned(),
                        portfolio_id: portfolio.to_owned(),
                    },
                );
            }
            _ => {
                return Err(invalid(format!(
                    "{entry:?} is not phone_number_id:waba_id[:portfolio_id]"
                )));
            }
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Missing("PHONE_NUMBERS"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_config_requires_the_secret_id_and_defaults_the_ttl() {
        assert_eq!(
            SecretConfig::from_env(&[("X", "1")]),
            Err(ConfigError::Missing("WHATSAPP_SECRET_ID"))
        );
        let c = SecretConfig::from_env(&[("WHATSAPP_SECRET_ID", "wa/prod")]).unwrap();
        assert_eq!(c.cache_ttl, Duration::from_secs(300));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = SecretConfig::from_env(&[
            ("WHATSAPP_SECRET_ID", "s"),
            ("SECRET_CACHE_TTL_SECONDS", "soon"),
        ]);
        assert!(matches!(
            e,
            Err(ConfigError::Invalid {
                name: "SECRET_CACHE_TTL_SECONDS",
                ..
            })
        ));
    }
}
