//! API keys and roles.
//!
//! A key is configured as `ROLE:SECRET` (`IDGRAPH_API_KEYS`) and presented as
//! `Authorization: Bearer SECRET`. Keys are kept only as SHA-256 digests once the app state is
//! built: the presented token is hashed once and compared with every configured digest in
//! constant time, so neither the content nor the length of a configured secret leaks through
//! response timing, and the secrets themselves never sit in the request path.

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Queries only.
    Reader,
    /// Queries and mutations.
    Admin,
}

impl Role {
    /// The configured name: `reader` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured API key: a role and its secret.
///
/// Parsed from `ROLE:SECRET` (role `reader` or `admin`, case-insensitive; the secret is
/// everything after the first colon and may itself contain colons). `Debug` never shows the
/// secret.
#[derive(Clone)]
pub struct ApiKey {
    /// What the key may do.
    pub role: Role,
    /// The bearer token.
    pub secret: SecretString,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("role", &self.role)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Why a `ROLE:SECRET` string is not an API key. The message never repeats the input, which
/// would put a secret into whatever logs the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseApiKeyError {
    /// No `:` between role and secret.
    #[error("an API key must look like ROLE:SECRET")]
    MissingColon,
    /// The role is neither `reader` nor `admin`.
    #[error("an API key's role must be `reader` or `admin`")]
    UnknownRole,
    /// The secret is empty or only whitespace.
    #[error("an API key's secret must not be empty")]
    EmptySecret,
}

impl FromStr for ApiKey {
    type Err = ParseApiKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (role, secret) = s
            .trim()
            .split_once(':')
            .ok_or(ParseApiKeyError::MissingColon)?;
        let role = match role.trim().to_ascii_lowercase().as_str() {
            "reader" => Role::Reader,
            "admin" => Role::Admin,
            _ => return Err(ParseApiKeyError::UnknownRole),
        };
        if secret.trim().is_empty() {
            return Err(ParseApiKeyError::EmptySecret);
        }
        Ok(ApiKey {
            role,
            secret: SecretString::from(secret),
        })
    }
}

/// Who is calling, as the GraphQL resolvers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the caller may do.
    pub role: Role,
    /// A name for the audit log: the role and a short fingerprint of the key (the first 8 hex
    /// digits of its SHA-256), or `anonymous` when the server runs without keys.
    pub actor: String,
}

impl Caller {
    /// The caller of a server started with `--insecure-no-auth`: everything is allowed.
    pub fn anonymous_admin() -> Self {
        Caller {
            role: Role::Admin,
            actor: "anonymous".to_string(),
        }
    }
}

/// The configured keys, reduced to what checking a request needs.
#[derive(Clone)]
pub(crate) struct Keyring {
    keys: Vec<KeyDigest>,
}

#[derive(Clone)]
struct KeyDigest {
    role: Role,
    digest: [u8; 32],
}

impl Keyring {
    pub(crate) fn new(keys: &[ApiKey]) -> Self {
        Keyring {
            keys: keys
                .iter()
                .map(|k| KeyDigest {
                    role: k.role,
                    digest: sha256(k.secret.expose_secret().as_bytes()),
                })
                .collect(),
        }
    }

    /// The caller a bearer token belongs to, if any.
    ///
    /// Every configured key is compared, match or not, so the time taken does not reveal which
    /// key (or whether an early one) matched.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Caller> {
        let presented = sha256(token.as_bytes());
        let mut found: Option<&KeyDigest> = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) && found.is_none() {
                found = Some(key);
            }
        }
        found.map(|key| Caller {
            role: key.role,
            actor: format!("{}:{}", key.role, hex_prefix(&key.digest)),
        })
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The token of an `Authorization: Bearer TOKEN` header value (scheme case-insensitive).
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The first four bytes as hex: enough to tell keys apart in an audit log, far too little to
/// help guess a secret.
fn hex_prefix(digest: &[u8; 32]) -> String {
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_roles_and_secrets_with_colons() {
        let k: ApiKey = "Admin:abc:def".parse().unwrap();
        assert_eq!(k.role, Role::Admin);
        assert_eq!(k.secret.expose_secret(), "abc:def");
        let k: ApiKey = " reader:xyz ".parse().unwrap();
        assert_eq!(k.role, Role::Reader);
        assert_eq!(k.secret.expose_secret(), "xyz");
    }

    #[test]
    fn rejects_malformed_keys_without_echoing_them() {
        assert_eq!(
            "nocolon".parse::<ApiKey>().unwrap_err(),
            ParseApiKeyError::MissingColon
        );
        assert_eq!(
            "root:s3cret".parse::<ApiKey>().unwrap_err(),
            ParseApiKeyError::UnknownRole
        );
        assert_eq!(
            "reader: ".parse::<ApiKey>().unwrap_err(),
            ParseApiKeyError::EmptySecret
        );
        let shown = format!("{}", "root:s3cret".parse::<ApiKey>().unwrap_err());
        assert!(!shown.contains("s3cret"));
        let k: ApiKey = "admin:s3cret".parse().unwrap();
        assert!(!format!("{k:?}").contains("s3cret"));
    }

    #[test]
    fn authenticates_each_key_with_its_role() {
        let ring = Keyring::new(&[
            "reader:r-secret".parse().unwrap(),
            "admin:a-secret".parse().unwrap(),
        ]);
        assert_eq!(ring.authenticate("r-secret").unwrap().role, Role::Reader);
        let admin = ring.authenticate("a-secret").unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert!(admin.actor.starts_with("admin:"));
        assert!(!admin.actor.contains("a-secret"));
        assert!(ring.authenticate("a-secre").is_none());
        assert!(ring.authenticate("").is_none());
        assert!(ring.authenticate("a-secret ").is_none());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
