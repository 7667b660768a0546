//! The portfolio messaging limit: how many unique users may receive business-initiated messages
//! outside a customer-service window in a moving 24 hours.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A messaging-limit tier, parsed from any of the forms Meta uses: `TIER_2K`, `2000`, `"2000"`,
/// `TIER_UNLIMITED` or `-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessagingTier {
    Tier250,
    Tier2K,
    Tier10K,
    Tier100K,
    Unlimited,
    /// A value this version does not know; treated as the most restrictive limit by
    /// [`MessagingTier::unique_user_limit`].
    Other(String),
}

impl MessagingTier {
    /// Unique users per moving 24 h; `None` means unlimited. Unknown tiers get the lowest limit
    /// so that a surprise never lets us exceed the real one.
    pub fn unique_user_limit(&self) -> Option<u32> {
        match self {
            MessagingTier::Tier250 | MessagingTier::Other(_) => Some(250),
            MessagingTier::Tier2K => Some(2_000),
            MessagingTier::Tier10K => Some(10_000),
            MessagingTier::Tier100K => Some(100_000),
            MessagingTier::Unlimited => None,
        }
    }

    /// The canonical name, as in `whatsapp_business_manager_messaging_limit`.
    pub fn as_str(&self) -> &str {
        match self {
            MessagingTier::Tier250 => "TIER_250",
            MessagingTier::Tier2K => "TIER_2K",
            MessagingTier::Tier10K => "TIER_10K",
            MessagingTier::Tier100K => "TIER_100K",
            MessagingTier::Unlimited => "TIER_UNLIMITED",
            MessagingTier::Other(s) => s,
        }
    }

    /// The next tier up, if any.
    pub fn next(&self) -> Option<MessagingTier> {
        Some(match self {
            MessagingTier::Tier250 => MessagingTier::Tier2K,
            MessagingTier::Tier2K => MessagingTier::Tier10K,
            MessagingTier::Tier10K => MessagingTier::Tier100K,
            MessagingTier::Tier100K => MessagingTier::Unlimited,
            MessagingTier::Unlimited | MessagingTier::Other(_) => return None,
        })
    }

    fn from_number(n: i64) -> Self {
        match n {
            250 => MessagingTier::Tier250,
            1_000 | 2_000 => MessagingTier::Tier2K,
            10_000 => MessagingTier::Tier10K,
            100_000 => MessagingTier::Tier100K,
            -1 => MessagingTier::Unlimited,
            other => MessagingTier::Other(other.to_string()),
        }
    }
}

impl std::str::FromStr for MessagingTier {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Self::from_number(n));
        }
        Ok(match s.to_ascii_uppercase().as_str() {
            "TIER_250" => MessagingTier::Tier250,
            // TIER_1K was the old per-number tier; the portfolio model replaced it with 2K.
            "TIER_1K" | "TIER_2K" => MessagingTier::Tier2K,
            "TIER_10K" => MessagingTier::Tier10K,
            "TIER_100K" => MessagingTier::Tier100K,
            "TIER_UNLIMITED" | "UNLIMITED" => MessagingTier::Unlimited,
            _ => MessagingTier::Other(s.to_owned()),
        })
    }
}

impl std::fmt::Display for MessagingTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MessagingTier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessagingTier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::N(n) => Self::from_number(n),
            Raw::S(s) => s.parse().unwrap_or_else(|never| match never {}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_meta_uses() {
        let v: Vec<MessagingTier> = serde_json::from_str(
            r#"["TIER_2K", 2000, "10000", -1, "TIER_UNLIMITED", 250, "TIER_9X"]"#,
        )
        .unwrap();
        assert_eq!(
            v,
            vec![
                MessagingTier::Tier2K,
                MessagingTier::Tier2K,
                MessagingTier::Tier10K,
                MessagingTier::Unlimited,
                MessagingTier::Unlimited,
                MessagingTier::Tier250,
                MessagingTier::Other("TIER_9X".into()),
            ]
        );
    }

    #[test]
    fn unknown_tier_is_treated_as_the_lowest_limit() {
        assert_eq!(
            MessagingTier::Other("x".into()).unique_user_limit(),
            Some(250)
        );
        assert_eq!(MessagingTier::Unlimited.unique_user_limit(), None);
    }
}
