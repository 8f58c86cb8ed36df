//! Opaque pagination cursors.
//!
//! A cursor is base64url of `KIND:VALUE`. The kind makes a cursor of one connection useless in
//! another, and the encoding keeps clients from building cursors by hand, so the format can
//! change later. Person cursors hold the person id, so they stay meaningful across graph swaps:
//! the next page starts after that id whichever graph answers it.

use super::error::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// What a cursor points after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// After this person id (persons are ordered by id).
    Person(String),
    /// After this change-log id.
    Change(i64),
    /// After this many anomalies of the (deterministically ordered) anomaly list.
    Anomaly(usize),
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let raw = match self {
            Cursor::Person(id) => format!("person:{id}"),
            Cursor::Change(id) => format!("change:{id}"),
            Cursor::Anomaly(n) => format!("anomaly:{n}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub(crate) fn decode(s: &str) -> Result<Self, ApiError> {
        let invalid =
            || ApiError::bad_input("invalid cursor: pass back an `endCursor` or `cursor`");
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| invalid())?;
        let raw = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (kind, value) = raw.split_once(':').ok_or_else(invalid)?;
        match kind {
            "person" if !value.is_empty() => Ok(Cursor::Person(value.to_string())),
            "change" => value.parse().map(Cursor::Change).map_err(|_| invalid()),
            "anomaly" => value.parse().map(Cursor::Anomaly).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    }

    pub(crate) fn person(s: &str) -> Result<String, ApiError> {
        match Self::decode(s)? {
            Cursor::Person(id) => Ok(id),
            _ => Err(ApiError::bad_input("this cursor belongs to another list")),
        }
    }

    pub(crate) fn change(s: &str) -> Result<i64, ApiError> {
        match Self::decode(s)? {
            Cursor::Change(id) => Ok(id),
            _ => Err(ApiError::bad_input("this cursor belongs to another list")),
        }
    }

    pub(crate) fn anomaly(s: &str) -> Result<usize, ApiError> {
        match Self::decode(s)? {
            Cursor::Anomaly(n) => Ok(n),
            _ => Err(ApiError::bad_input("this cursor belongs to another list")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_foreign_cursors() {
        for c in [
            Cursor::Person("p-00042".into()),
            Cursor::Change(17),
            Cursor::Anomaly(3),
        ] {
            assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }
        assert!(Cursor::person(&Cursor::Change(1).encode()).is_err());
        assert!(Cursor::decode("not base64 !").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("person:")).is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode("change:x")).is_err());
    }
}
