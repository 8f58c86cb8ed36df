//! Layered configuration: `idgraph.toml` (optional), then environment variables, then flags.
//!
//! The environment variables of CONTRACTS.md work on their own, with no file. Secrets are held in
//! `secrecy` types so that a `Debug` print of the configuration cannot leak them.

use anyhow::{bail, Context};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default store: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://idgraph.db";

/// Which shape of the iManage API a deployment speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiProfile {
    #[default]
    V1,
    V2,
}

/// The whole configuration, after layering.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The store; after [`Config::load`], from `database_url_file` when this is not set, else
    /// the default.
    #[serde(default)]
    pub database_url: DatabaseUrl,
    /// A file holding the store's URL (Docker and Kubernetes secrets: a PostgreSQL URL carries
    /// its password), read when `database_url` is not set.
    #[serde(default)]
    pub database_url_file: Option<PathBuf>,
    #[serde(default)]
    pub imanage: ImanageSettings,
    /// `ROLE:SECRET` pairs.
    #[serde(default, deserialize_with = "comma_list")]
    pub api_keys: Vec<SecretString>,
    /// A file holding the `ROLE:SECRET` pairs (comma- or line-separated; Docker and Kubernetes
    /// secrets), read when `api_keys` is empty.
    #[serde(default)]
    pub api_keys_file: Option<PathBuf>,
    #[serde(default)]
    pub resolve: ResolveSettings,
    /// How often `serve` harvests, e.g. `15m`, `90s`, `1h`.
    #[serde(default)]
    pub harvest_every: Option<String>,
    /// Megabytes the API's response cache may hold; 0 turns it off. Default: the API's.
    #[serde(default, deserialize_with = "optional_number")]
    pub response_cache_mb: Option<usize>,
}

/// Where and how to reach iManage Work.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImanageSettings {
    pub base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret (Docker and Kubernetes secrets), read when
    /// `client_secret` is not set.
    pub client_secret_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "comma_list")]
    pub customers: Vec<String>,
    #[serde(default = "default_page_size", deserialize_with = "number")]
    pub page_size: u32,
    #[serde(default = "default_max_concurrency", deserialize_with = "number")]
    pub max_concurrency: usize,
    /// Requests a second, all databases together; none by default.
    #[serde(default, deserialize_with = "optional_number")]
    pub rate_limit_per_s: Option<u32>,
    /// OAuth2 scopes to ask for; none means whatever the application is registered for.
    #[serde(default, deserialize_with = "comma_list")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub api: ApiProfile,
}

impl Default for ImanageSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            customers: Vec::new(),
            page_size: default_page_size(),
            max_concurrency: default_max_concurrency(),
            rate_limit_per_s: None,
            scopes: Vec::new(),
            api: ApiProfile::default(),
        }
    }
}

/// Identity resolution settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveSettings {
    /// Groups of email domains that are one firm's, e.g. `[["acme.com", "acme-law.com"]]`.
    #[serde(default, deserialize_with = "alias_groups")]
    pub email_domain_aliases: Vec<Vec<String>>,
    /// Groups of login domains that are the same, e.g. `[["ACME", "acme.com"]]`.
    #[serde(default, deserialize_with = "alias_groups")]
    pub login_domain_aliases: Vec<Vec<String>>,
    /// Per-database security mode: `optimistic` (default) or `pessimistic`.
    #[serde(default)]
    pub security_modes: HashMap<String, model::SecurityMode>,
}

/// The store's URL: a `str` to every use, and printed by `Debug` without its password (a
/// PostgreSQL URL carries one).
#[derive(Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

fn default_page_size() -> u32 {
    1000
}

fn default_max_concurrency() -> usize {
    8
}

/// Environment variables and the configuration key each one sets.
const ENV_KEYS: &[(&str, &str)] = &[
    ("DATABASE_URL", "database_url"),
    ("DATABASE_URL_FILE", "database_url_file"),
    ("IMANAGE_BASE_URL", "imanage.base_url"),
    ("IMANAGE_CLIENT_ID", "imanage.client_id"),
    ("IMANAGE_CLIENT_SECRET", "imanage.client_secret"),
    ("IMANAGE_CLIENT_SECRET_FILE", "imanage.client_secret_file"),
    ("IMANAGE_CUSTOMERS", "imanage.customers"),
    ("IMANAGE_PAGE_SIZE", "imanage.page_size"),
    ("IMANAGE_MAX_CONCURRENCY", "imanage.max_concurrency"),
    ("IMANAGE_RATE_LIMIT", "imanage.rate_limit_per_s"),
    ("IMANAGE_SCOPES", "imanage.scopes"),
    ("IMANAGE_API", "imanage.api"),
    ("IDGRAPH_API_KEYS", "api_keys"),
    ("IDGRAPH_API_KEYS_FILE", "api_keys_file"),
    ("IDGRAPH_HARVEST_EVERY", "harvest_every"),
    ("IDGRAPH_RESPONSE_CACHE_MB", "response_cache_mb"),
    (
        "IDGRAPH_EMAIL_DOMAIN_ALIASES",
        "resolve.email_domain_aliases",
    ),
    (
        "IDGRAPH_LOGIN_DOMAIN_ALIASES",
        "resolve.login_domain_aliases",
    ),
];

impl Config {
    /// Loads the file (when given, or `idgraph.toml` when it exists), then overlays `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::new();
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file(path));
            }
            None => {
                let default = Path::new("idgraph.toml");
                if default.exists() {
                    figment = figment.merge(Toml::file(default));
                }
            }
        }
        figment = figment.merge(Serialized::defaults(env_tree(env)));
        let mut config: Config = figment.extract().context("invalid configuration")?;
        if config.database_url.is_empty() {
            config.database_url = DatabaseUrl(match &config.database_url_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading the database URL file {}", path.display()))?
                    .trim()
                    .to_string(),
                None => DEFAULT_DATABASE_URL.to_string(),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Loads the file and the process environment.
    pub fn from_process(file: Option<&Path>) -> anyhow::Result<Config> {
        Self::load(file, std::env::vars())
    }

    fn validate(&self) -> anyhow::Result<()> {
        let i = &self.imanage;
        if !(1..=1000).contains(&i.page_size) {
            bail!(
                "IMANAGE_PAGE_SIZE must be between 1 and 1000 (the API's largest page), not {}",
                i.page_size
            );
        }
        if i.max_concurrency == 0 || i.max_concurrency > 1024 {
            bail!(
                "IMANAGE_MAX_CONCURRENCY must be between 1 and 1024, not {}",
                i.max_concurrency
            );
        }
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            bail!(
                "DATABASE_URL must be sqlite://PATH or postgres://..., not {:?}",
                redact_url(&self.database_url)
            );
        }
        Ok(())
    }

    /// The client secret from the setting or from its file.
    pub fn client_secret(&self) -> anyhow::Result<Option<SecretString>> {
        if let Some(s) = &self.imanage.client_secret {
            return Ok(Some(s.clone()));
        }
        match &self.imanage.client_secret_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading the client secret file {}", path.display())
                })?;
                Ok(Some(SecretString::from(text.trim().to_string())))
            }
            None => Ok(None),
        }
    }

    /// The API's limits, with the response cache sized by `IDGRAPH_RESPONSE_CACHE_MB`.
    pub fn api_limits(&self) -> api::Limits {
        let mut limits = api::Limits::default();
        if let Some(mb) = self.response_cache_mb {
            limits.response_cache_bytes = mb.saturating_mul(1024 * 1024);
        }
        limits
    }

    /// The serve loop's harvest interval.
    pub fn harvest_every(&self) -> anyhow::Result<Duration> {
        match &self.harvest_every {
            None => Ok(Duration::from_secs(15 * 60)),
            Some(s) => parse_duration(s),
        }
    }

    /// The API keys, parsed: from the setting, or else from its file.
    pub fn api_keys(&self) -> anyhow::Result<Vec<api::ApiKey>> {
        let from_file;
        let keys = match (&self.api_keys_file, self.api_keys.is_empty()) {
            (Some(path), true) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the API keys file {}", path.display()))?;
                from_file = text
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(|k| SecretString::from(k.to_string()))
                    .collect::<Vec<_>>();
                &from_file
            }
            _ => &self.api_keys,
        };
        keys.iter()
            .map(|k| {
                k.expose_secret().parse::<api::ApiKey>().map_err(|_| {
                    anyhow::anyhow!(
                        "IDGRAPH_API_KEYS entries must be ROLE:SECRET with ROLE reader or admin"
                    )
                })
            })
            .collect()
    }

    /// The resolver's settings.
    pub fn resolve_config(&self) -> graph::ResolveConfig {
        graph::ResolveConfig {
            email_domain_aliases: self.resolve.email_domain_aliases.clone(),
            login_domain_aliases: self.resolve.login_domain_aliases.clone(),
            security_modes: self.resolve.security_modes.clone(),
        }
    }
}

/// Turns the environment into a nested tree of the keys above, leaving other variables out.
fn env_tree(
    env: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, serde_json::Value> {
    let vars: HashMap<String, String> = env.into_iter().collect();
    let mut tree: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (var, key) in ENV_KEYS {
        let Some(value) = vars.get(*var) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let value = serde_json::Value::String(value.clone());
        match key.split_once('.') {
            None => {
                tree.insert(key.to_string(), value);
            }
            Some((section, field)) => {
                let entry = tree
                    .entry(section.to_string())
                    .or_insert_with(|| serde_json::Value::Object(Default::default()));
                if let serde_json::Value::Object(map) = entry {
                    map.insert(field.to_string(), value);
                }
            }
        }
    }
    tree
}

/// Accepts a number, or a string holding one (environment variables are strings).
fn number<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<T> {
        Number(T),
        Text(String),
    }
    match Raw::<T>::deserialize(de)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => s
            .trim()
            .parse()
            .map_err(|e| serde::de::Error::custom(format!("{s:?} is not a number: {e}"))),
    }
}

fn optional_number<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
    T::Err: std::fmt::Display,
{
    number(de).map(Some)
}

/// Accepts a list or one comma-separated string.
fn comma_list<'de, D, T>(de: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(de)? {
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        Raw::Many(v) => v,
    };
    Ok(items.into_iter().map(T::from).collect())
}

/// Accepts `[["a.com", "b.com"], ...]` or the string `a.com=b.com;c.com=d.com=e.com`.
fn alias_groups<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<Vec<String>>),
    }
    Ok(match Raw::deserialize(de)? {
        Raw::Many(v) => v,
        Raw::One(s) => s
            .split(';')
            .map(|group| {
                group
                    .split('=')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter(|g| g.len() > 1)
            .collect(),
    })
}

/// Parses `90s`, `15m`, `1h`, `2h30m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number
            .parse()
            .with_context(|| format!("invalid duration {s:?}"))?;
        number.clear();
        total += match c {
            's' => n,
            'm' => n * 60,
            'h' => n * 3600,
            'd' => n * 86400,
            _ => bail!("invalid duration {s:?}: use s, m, h or d"),
        };
    }
    if !number.is_empty() {
        bail!("invalid duration {s:?}: a number needs a unit (s, m, h, d)");
    }
    if total == 0 {
        bail!("a duration must be positive, not {s:?}");
    }
    Ok(Duration::from_secs(total))
}

/// A database URL with any password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env_vars::{ENV_VARS, SECRET_VARS};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_alone_configures_everything() {
        let c = Config::load(
            None,
            env(&[
                ("DATABASE_URL", "postgres://u:pw@db/idgraph"),
                ("IMANAGE_BASE_URL", "https://acme.imanage.work"),
                ("IMANAGE_CLIENT_ID", "idgraph"),
                ("IMANAGE_CLIENT_SECRET", "s3cret"),
                ("IMANAGE_CUSTOMERS", "acme, 1234 ,acme-ny"),
                ("IMANAGE_PAGE_SIZE", "500"),
                ("IMANAGE_MAX_CONCURRENCY", "4"),
                ("IDGRAPH_API_KEYS", "reader:r1,admin:a1"),
                ("IDGRAPH_EMAIL_DOMAIN_ALIASES", "acme.com=acme-law.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://u:pw@db/idgraph");
        assert_eq!(c.imanage.customers, vec!["acme", "1234", "acme-ny"]);
        assert_eq!(c.imanage.page_size, 500);
        assert_eq!(c.imanage.max_concurrency, 4);
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(
            c.resolve.email_domain_aliases,
            vec![vec!["acme.com".to_string(), "acme-law.com".to_string()]]
        );
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("s3cret"),
            "secret leaked into Debug: {printed}"
        );
        assert!(
            !printed.contains(":pw@") && printed.contains("postgres://u:***@db/idgraph"),
            "database password leaked into Debug: {printed}"
        );
        assert!(
            !printed.contains("a1\""),
            "API key leaked into Debug: {printed}"
        );
    }

    #[test]
    fn defaults_without_anything() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(c.imanage.page_size, 1000);
        assert_eq!(c.imanage.max_concurrency, 8);
        assert_eq!(c.harvest_every().unwrap(), Duration::from_secs(900));
    }

    #[test]
    fn bad_values_are_rejected_with_the_variable_named() {
        let err = Config::load(None, env(&[("IMANAGE_PAGE_SIZE", "5000")])).unwrap_err();
        assert!(format!("{err:#}").contains("IMANAGE_PAGE_SIZE"), "{err:#}");
        let err = Config::load(None, env(&[("IMANAGE_PAGE_SIZE", "many")])).unwrap_err();
        assert!(format!("{err:#}").contains("page_size"), "{err:#}");
        let err = Config::load(None, env(&[("DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(format!("{err:#}").contains("DATABASE_URL"), "{err:#}");
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idgraph.toml");
        std::fs::write(
            &path,
            "database_url = \"sqlite://from-file.db\"\n[imanage]\ncustomers = [\"a\", \"b\"]\npage_size = 200\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), env(&[("IMANAGE_PAGE_SIZE", "300")])).unwrap();
        assert_eq!(c.database_url, "sqlite://from-file.db");
        assert_eq!(c.imanage.customers, vec!["a", "b"]);
        assert_eq!(c.imanage.page_size, 300);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h30m").unwrap(), Duration::from_secs(9000));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn the_readme_documents_every_variable() {
        let readme = include_str!("../../../README.md");
        for var in ENV_VARS.iter().filter(|v| **v != "RUST_LOG") {
            assert!(
                readme.contains(&format!("`{var}`")),
                "README.md does not document {var}"
            );
        }
    }

    #[test]
    fn the_variable_list_is_the_configuration_s() {
        for (var, _) in ENV_KEYS {
            assert!(ENV_VARS.contains(var), "{var} is missing from ENV_VARS");
        }
        // Read by the process around the configuration: logging, and the allocator's switch.
        let process = [
            "IDGRAPH_LOG",
            "IDGRAPH_LOG_FORMAT",
            "RUST_LOG",
            "MIMALLOC_ALLOW_THP",
        ];
        for var in ENV_VARS {
            assert!(
                process.contains(var) || ENV_KEYS.iter().any(|(v, _)| v == var),
                "{var} is in ENV_VARS but the configuration does not read it"
            );
        }
        for var in SECRET_VARS {
            let file = format!("{var}_FILE");
            assert!(
                ENV_KEYS.iter().any(|(v, _)| *v == file),
                "{var} has no {file} form"
            );
        }
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("client-secret");
        std::fs::write(&secret, "from-a-file\n").unwrap();
        let keys = dir.path().join("api-keys");
        std::fs::write(&keys, "reader:r-from-file\nadmin:a-from-file,\n").unwrap();
        let url = dir.path().join("database-url");
        std::fs::write(&url, "postgres://idgraph:pw-from-file@db/idgraph\n").unwrap();
        let c = Config::load(
            None,
            env(&[
                ("IMANAGE_CLIENT_SECRET_FILE", secret.to_str().unwrap()),
                ("IDGRAPH_API_KEYS_FILE", keys.to_str().unwrap()),
                ("DATABASE_URL_FILE", url.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url, "postgres://idgraph:pw-from-file@db/idgraph");
        assert_eq!(
            c.client_secret().unwrap().unwrap().expose_secret(),
            "from-a-file"
        );
        let parsed = c.api_keys().unwrap();
        assert_eq!(parsed.len(), 2);
        assert!(!format!("{c:?}").contains("from-file"));
        // The variable itself wins over its file.
        let c = Config::load(
            None,
            env(&[
                ("IDGRAPH_API_KEYS", "reader:direct"),
                ("IDGRAPH_API_KEYS_FILE", keys.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(c.api_keys().unwrap().len(), 1);
        let c = Config::load(
            None,
            env(&[
                ("DATABASE_URL", "sqlite://direct.db"),
                ("DATABASE_URL_FILE", url.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(c.database_url, "sqlite://direct.db");
        // A missing database URL file stops the configuration, naming the file.
        let err =
            Config::load(None, env(&[("DATABASE_URL_FILE", "/nonexistent/url")])).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/url"), "{err:#}");
        // A missing file is an error that names it.
        let c = Config::load(None, env(&[("IDGRAPH_API_KEYS_FILE", "/nonexistent/keys")])).unwrap();
        let err = c.api_keys().unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/keys"), "{err:#}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:pw@db/x"), "postgres://u:***@db/x");
    }
}
