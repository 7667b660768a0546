//! Serde helpers for Meta's loosely typed JSON: numbers sent as strings, and string enums that
//! grow new values without notice.

use serde::{Deserialize, Deserializer, Serializer};

/// Declares a string enum that round-trips through its wire value and keeps any value it does not
/// know in `Other(String)`, so that a new value from Meta never fails a whole payload.
///
/// Each known variant lists its canonical wire value first, then any aliases it also accepts.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)* ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this version does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(s) => s.as_str(),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $( $wire $(| $alias)* => Self::$variant, )+
                    other => Self::Other(other.to_owned()),
                })
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s.parse() {
                    Ok(v) => v,
                    Err(e) => match e {},
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok(s.parse().unwrap_or_else(|never| match never {}))
            }
        }
    };
}
pub(crate) use open_enum;

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr<'a> {
    Int(i64),
    Float(f64),
    #[serde(borrow)]
    Str(std::borrow::Cow<'a, str>),
}

/// Epoch seconds sent either as a JSON number or as a decimal string (`"1749416383"`).
pub fn epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i),
        NumOrStr::Float(f) if f.is_finite() => Ok(f as i64),
        NumOrStr::Float(_) => Err(serde::de::Error::custom("timestamp is not finite")),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("timestamp is not an integer")),
    }
}

/// Optional variant of [`epoch_seconds`]; `null` and absence both give `None`.
pub fn opt_epoch_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "epoch_seconds")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// A number sent either as a JSON number or as a string (`"37.44"`).
pub fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i as f64),
        NumOrStr::Float(f) => Ok(f),
        NumOrStr::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("not a number")),
    }
}

/// An identifier Meta sends sometimes as a number, sometimes as a string; kept as a string.
pub fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match NumOrStr::deserialize(d)? {
        NumOrStr::Int(i) => Ok(i.to_string()),
        NumOrStr::Float(f) => Ok(format!("{f}")),
        NumOrStr::Str(s) => Ok(s.into_owned()),
    }
}

/// Optional variant of [`id_string`].
pub fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "id_string")] String);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Serialises epoch seconds as Meta does in `messages` webhooks: a decimal string.
pub fn epoch_as_string<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    open_enum! {
        pub enum Colour { Red = "red" | "RED", Blue = "blue" }
    }

    #[test]
    fn open_enum_keeps_unknown_values_and_accepts_aliases() {
        let v: Vec<Colour> = serde_json::from_str(r#"["red","RED","blue","mauve"]"#).unwrap();
        assert_eq!(
            v,
            vec![
                Colour::Red,
                Colour::Red,
                Colour::Blue,
                Colour::Other("mauve".into())
            ]
        );
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["red","red","blue","mauve"]"#
        );
    }

    #[test]
    fn epoch_seconds_accepts_string_and_number() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "epoch_seconds")]
            t: i64,
        }
        assert_eq!(
            serde_json::from_str::<T>(r#"{"t":"1749416383"}"#)
                .unwrap()
                .t,
            1749416383
        );
        assert_eq!(serde_json::from_str::<T>(r#"{"t":17}"#).unwrap().t, 17);
        assert!(serde_json::from_str::<T>(r#"{"t":"soon"}"#).is_err());
    }
}
