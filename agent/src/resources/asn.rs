//! AS numbers as Calico accepts them: an integer, a quoted integer, or
//! "asdot" notation ("1.10" = 1*65536+10).

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// A 4-octet AS number. AS 0 is rejected (RFC 7607 reserves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AsNumber(pub u32);

impl AsNumber {
    /// Calico's default cluster AS.
    pub const DEFAULT: AsNumber = AsNumber(64512);

    pub fn parse(s: &str) -> Result<AsNumber, String> {
        let s = s.trim();
        let v: u64 = if let Some((hi, lo)) = s.split_once('.') {
            let hi: u64 = hi.parse().map_err(|_| bad(s))?;
            let lo: u64 = lo.parse().map_err(|_| bad(s))?;
            if hi > 0xffff || lo > 0xffff {
                return Err(out_of_range(s));
            }
            hi * 65536 + lo
        } else {
            s.parse::<u64>().map_err(|_| {
                if s.starts_with('-') {
                    out_of_range(s)
                } else {
                    bad(s)
                }
            })?
        };
        Self::from_u64(v, s)
    }

    fn from_u64(v: u64, shown: &str) -> Result<AsNumber, String> {
        if v == 0 {
            return Err("AS number 0 is reserved (RFC 7607); use 1..4294967295".to_string());
        }
        u32::try_from(v)
            .map(AsNumber)
            .map_err(|_| out_of_range(shown))
    }
}

fn bad(s: &str) -> String {
    format!("{s:?} is not an AS number (expected an integer 1..4294967295 or asdot like 1.10)")
}

fn out_of_range(s: &str) -> String {
    format!("AS number {s} is out of range 1..4294967295")
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AS number 1..4294967295 (integer or asdot string)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<AsNumber, E> {
                AsNumber::from_u64(v, &v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<AsNumber, E> {
                if v < 0 {
                    return Err(E::custom(out_of_range(&v.to_string())));
                }
                self.visit_u64(v as u64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<AsNumber, E> {
                // YAML reads `1.10` unquoted as a float; asdot must be quoted
                // to keep "1.10" apart from "1.1".
                Err(E::custom(format!(
                    "{v} is not an AS number; write asdot notation as a quoted string like \"1.10\""
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AsNumber, E> {
                AsNumber::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer or a string, as the deserializer above reads them; Tabby
/// writes the integer. Calico's CRD says integer only, but Calico's own
/// ASNumber reads quoted and asdot strings as well, so a CR holding one
/// works with both. `minimum`/`maximum` apply to the integer form and
/// `pattern` to the string form. No `anyOf` of the two types: Kubernetes
/// accepts only that exact shape beside int-or-string, and the structural
/// rewrite would strip its types.
impl JsonSchema for AsNumber {
    fn schema_name() -> Cow<'static, str> {
        "AsNumber".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "minimum": 1,
            "maximum": u32::MAX,
            "pattern": "^[0-9]+(\\.[0-9]+)?$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_asdot_and_rejects_out_of_range() {
        assert_eq!(AsNumber::parse("64512"), Ok(AsNumber(64512)));
        assert_eq!(AsNumber::parse("1.10"), Ok(AsNumber(65546)));
        assert_eq!(AsNumber::parse("4294967295"), Ok(AsNumber(u32::MAX)));
        assert!(AsNumber::parse("4294967296")
            .unwrap_err()
            .contains("out of range"));
        assert!(AsNumber::parse("0").unwrap_err().contains("reserved"));
        assert!(AsNumber::parse("-5").unwrap_err().contains("out of range"));
        assert!(AsNumber::parse("abc").is_err());
        let v: AsNumber = serde_yaml::from_str("4200000000").unwrap();
        assert_eq!(v, AsNumber(4_200_000_000));
        assert!(serde_yaml::from_str::<AsNumber>("99999999999").is_err());
    }
}
