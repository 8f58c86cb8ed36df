//! Field deserializers that accept what the API summary leaves open.
//!
//! iManage versions and deployments differ ("field names may differ between iManage Cloud and
//! on-premises"), so ids and counts may arrive as numbers or strings, booleans as `"true"`, and
//! optional fields as `null` or not at all. These helpers accept every such form and refuse only
//! values that cannot mean anything (an object where a string belongs). Their error messages name
//! the expected shape, never the value received.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

/// A scalar as a string: `"u1"`, `17` and `true` all work.
fn scalar_string(v: Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => Err("expected a string or a number"),
    }
}

/// Reads a scalar as a string straight from the deserializer (no intermediate `Value`): the
/// same answers as [`scalar_string`], for JSON text and for a `Value` alike.
struct ScalarString;

impl<'de> serde::de::Visitor<'de> for ScalarString {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string or a number")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarString)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // As `serde_json::Number` prints it, which is what the `Value` route gave.
        match serde_json::Number::from_f64(v) {
            Some(n) => Ok(Some(n.to_string())),
            None => Err(E::custom("expected a string or a number")),
        }
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom("expected a string or a number"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom("expected a string or a number"))
    }
}

/// A required id: a string or a number.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match d.deserialize_any(ScalarString)? {
        Some(s) => Ok(s),
        None => Err(D::Error::custom("expected a string or a number, got null")),
    }
}

/// An optional string: absent and `null` are `None`; numbers become strings.
pub(crate) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(ScalarString)
}

/// [`opt_string`] as a type, for hand-written visitors.
pub(crate) struct OptString(pub(crate) Option<String>);

impl<'de> Deserialize<'de> for OptString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d).map(OptString)
    }
}

/// An optional boolean: `true`, `"true"`, `1`, `"1"`, `"yes"` and their opposites.
pub(crate) fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(D::Error::custom(
                "expected a boolean, got a number other than 0 or 1",
            )),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "n" => Ok(Some(false)),
            "" => Ok(None),
            _ => Err(D::Error::custom(
                "expected a boolean, got a string that is not one",
            )),
        },
        Value::Array(_) | Value::Object(_) => Err(D::Error::custom("expected a boolean")),
    }
}

/// An optional integer: a number or a string of digits.
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    value_to_i64(&Value::deserialize(d)?).map_err(D::Error::custom)
}

/// An integer from a JSON value: `12`, `"12"`, `12.0`; `null` and `""` are `None`.
pub(crate) fn value_to_i64(v: &Value) -> Result<Option<i64>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            _ => Err("expected an integer"),
        },
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| "expected an integer, got a string that is not one"),
        _ => Err("expected an integer"),
    }
}

/// A list of ids: strings, numbers or objects with an `id`; `null` is the empty list.
pub(crate) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Object(mut map) => map.remove("id").map(scalar_string),
                other => Some(scalar_string(other)),
            })
            .filter_map(|r| r.transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(D::Error::custom),
        // A single id where a list belongs: one-element list.
        other => Ok(scalar_string(other)
            .map_err(D::Error::custom)?
            .into_iter()
            .collect()),
    }
}

/// A word of an enumeration as servers write it: any letter case, `-` or a space for `_`.
fn enum_word(v: Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_ascii_lowercase().replace(['-', ' '], "_"))),
        _ => Err("expected a string"),
    }
}

/// A workspace access level: `no_access`, `read`, `read_write` or `full_access`.
pub(crate) fn access<'de, D: Deserializer<'de>>(d: D) -> Result<model::Access, D::Error> {
    let word = enum_word(Value::deserialize(d)?).map_err(D::Error::custom)?;
    word.as_deref()
        .and_then(model::Access::parse)
        .ok_or_else(|| D::Error::custom("expected one of no_access, read, read_write, full_access"))
}

/// An optional default security: `private`, `view` or `public`.
pub(crate) fn opt_default_security<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<model::DefaultSecurity>, D::Error> {
    match enum_word(Value::deserialize(d)?).map_err(D::Error::custom)? {
        None => Ok(None),
        Some(word) => model::DefaultSecurity::parse(&word)
            .map(Some)
            .ok_or_else(|| D::Error::custom("expected one of private, view, public")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct T {
        #[serde(deserialize_with = "string")]
        id: String,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
        #[serde(default, deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "opt_i64")]
        n: Option<i64>,
        #[serde(default, deserialize_with = "string_list")]
        l: Vec<String>,
    }

    fn t(v: Value) -> Result<T, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn accepts_the_forms_the_summary_leaves_open() {
        let x = t(json!({"id": 17, "s": 5, "b": "TRUE", "n": "12", "l": ["a", 2, {"id": "c"}]}))
            .expect("lenient");
        assert_eq!(x.id, "17");
        assert_eq!(x.s.as_deref(), Some("5"));
        assert_eq!(x.b, Some(true));
        assert_eq!(x.n, Some(12));
        assert_eq!(x.l, vec!["a", "2", "c"]);

        let y = t(json!({"id": "u", "s": null, "b": 0, "n": 3.0, "l": null})).expect("nulls");
        assert_eq!(y.s, None);
        assert_eq!(y.b, Some(false));
        assert_eq!(y.n, Some(3));
        assert!(y.l.is_empty());

        let z = t(json!({"id": "u"})).expect("absent");
        assert_eq!((z.s, z.b, z.n, z.l.len()), (None, None, None, 0));
    }

    #[derive(Deserialize, Debug)]
    struct Sec {
        #[serde(deserialize_with = "access")]
        a: model::Access,
        #[serde(default, deserialize_with = "opt_default_security")]
        d: Option<model::DefaultSecurity>,
    }

    #[test]
    fn security_words_in_any_case_and_separator() {
        let s: Sec = serde_json::from_value(json!({"a": "Read-Write", "d": "PUBLIC"})).expect("ok");
        assert_eq!(
            (s.a, s.d),
            (
                model::Access::ReadWrite,
                Some(model::DefaultSecurity::Public)
            )
        );
        let s: Sec = serde_json::from_value(json!({"a": "no access", "d": null})).expect("ok");
        assert_eq!((s.a, s.d), (model::Access::NoAccess, None));
        for bad in [
            json!({"a": "hunter2"}),
            json!({"a": 3}),
            json!({"a": "read", "d": "hunter2"}),
        ] {
            let err = serde_json::from_value::<Sec>(bad)
                .expect_err("refused")
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn refuses_nonsense_without_quoting_it() {
        for bad in [
            json!({"id": null}),
            json!({"id": {"x": 1}}),
            json!({"id": "u", "b": "hunter2"}),
            json!({"id": "u", "b": 7}),
            json!({"id": "u", "n": "hunter2"}),
            json!({"id": "u", "n": 1.5}),
            json!({"id": "u", "s": ["x"]}),
        ] {
            let err = t(bad.clone()).expect_err("refused").to_string();
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
