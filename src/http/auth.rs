//! Tokens and scopes. Requests carry `Authorization: Bearer <token>`; each
//! token has a name (recorded as the actor of the events it causes) and scopes.
//!
//! Tokens live in `tokens.json` in the data directory:
//! `{"tokens": [{"name": "ci", "tokenSha256": "<hex>", "scopes": ["tasks:write"],
//! "rateLimit": {"requestsPerSecond": 50, "burst": 100}}]}` (`rateLimit` optional).
//! Each token is kept as the SHA-256 of its secret (`tokenSha256`), or, written
//! by hand, as the secret itself (`token`). `TASKLOG_TOKEN` adds one token,
//! named `env`, with every scope. With neither, the first start makes an
//! `admin` token: the file keeps its hash, and the secret goes to the file
//! `admin-token` beside it, for the operator to read once.
//!
//! A serving node reads the file again when it changes (`tasklog tokens add`,
//! `remove`, or an edit), so tokens come and go without a restart.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use tasklog_api::token::Scope;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    #[serde(flatten)]
    pub secret: Secret,
    pub scopes: Vec<Scope>,
    /// How many requests the token may make; absent: no limit.
    #[serde(default, rename = "rateLimit", skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// How a token's secret is kept: its SHA-256 (what tasklog writes, so the
/// file gives no one a working token), or the secret itself, as people may
/// write it by hand.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Secret {
    #[serde(rename = "tokenSha256")]
    Sha256(String),
    #[serde(rename = "token")]
    Plain(String),
}

impl Secret {
    /// The secret as the file keeps it: its SHA-256 in hex.
    pub fn hashed(secret: &str) -> Secret {
        Secret::Sha256(sha256_hex(secret))
    }

    /// Whether `presented` (with its SHA-256 in hex) is this secret, in
    /// time independent of where they differ.
    fn matches(&self, presented: &str, presented_sha256: &str) -> bool {
        let (kept, given) = match self {
            Secret::Sha256(hash) => (hash.to_ascii_lowercase(), presented_sha256),
            Secret::Plain(secret) => (secret.clone(), presented),
        };
        bool::from(kept.as_bytes().ct_eq(given.as_bytes()))
    }
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A token's request budget: `requests_per_second` on average, bursts of up
/// to `burst` at once. More get 429 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub requests_per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// One request budget per rate-limited token, by token name.
pub struct RateLimiters(HashMap<String, (RateLimit, Arc<DefaultDirectRateLimiter>)>);

impl RateLimiters {
    pub fn for_tokens(tokens: &Tokens) -> Self {
        RateLimiters::keeping(tokens, &RateLimiters(HashMap::new()))
    }

    /// Budgets for `tokens`, going on with those `before` kept for a token
    /// of the same name and limit, so reading the file again refills no one.
    fn keeping(tokens: &Tokens, before: &RateLimiters) -> Self {
        let limited = tokens.tokens.iter().filter_map(|token| {
            let limit = token.rate_limit?;
            let limiter = match before.0.get(&token.name) {
                Some((kept, limiter)) if *kept == limit => limiter.clone(),
                _ => {
                    let quota =
                        Quota::per_second(limit.requests_per_second).allow_burst(limit.burst);
                    Arc::new(RateLimiter::direct(quota))
                }
            };
            Some((token.name.clone(), (limit, limiter)))
        });
        RateLimiters(limited.collect())
    }

    /// Takes one request from `token`'s budget; `Err(wait)` when it is spent.
    pub fn check(&self, token: &Token) -> Result<(), std::time::Duration> {
        match self.0.get(&token.name) {
            None => Ok(()),
            Some((_, limiter)) => limiter
                .check()
                .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

impl Token {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }
}

/// Where a first start hands over the admin token it made.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

impl Tokens {
    /// The token a request presented, if it is one of ours. Compares in time
    /// independent of where the strings differ.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        let presented_sha256 = sha256_hex(presented);
        self.tokens
            .iter()
            .find(|t| t.secret.matches(presented, &presented_sha256))
    }

    /// The tokens file of `data_dir`, as it is (none if there is no file).
    pub fn read_file(data_dir: &Path) -> std::io::Result<Tokens> {
        let path = tokens_file(data_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_others_can_read(&path);
                serde_json::from_str(&text)
                    .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes the tokens file of `data_dir`, readable by its owner only:
    /// aside, then renamed over, so a node reading it sees the old file or
    /// the new one.
    pub fn write_file(&self, data_dir: &Path) -> std::io::Result<()> {
        create_private_dir(data_dir)?;
        let path = tokens_file(data_dir);
        let aside = data_dir.join("tokens.json.new");
        let _ = std::fs::remove_file(&aside);
        let text = serde_json::to_string_pretty(self).expect("tokens serialise");
        write_private(&aside, &format!("{text}\n"))?;
        std::fs::File::open(&aside)?.sync_all()?;
        std::fs::rename(&aside, &path)
    }

    /// The tokens file of `data_dir` and `env_token` (named `env`, every scope).
    pub fn load(data_dir: &Path, env_token: Option<&str>) -> std::io::Result<Tokens> {
        let mut tokens = Tokens::read_file(data_dir)?;
        if let Some(token) = env_token.filter(|t| !t.is_empty()) {
            tokens.tokens.push(Token {
                name: "env".into(),
                secret: Secret::Plain(token.to_owned()),
                scopes: vec![Scope::Admin],
                rate_limit: None,
            });
        }
        Ok(tokens)
    }

    /// Loads `tokens.json` from `data_dir` and adds `env_token`; with neither,
    /// makes an admin token, saves it and says so.
    pub fn load_or_create(data_dir: &Path, env_token: Option<String>) -> std::io::Result<Tokens> {
        let path = tokens_file(data_dir);
        let mut tokens = Tokens::load(data_dir, env_token.as_deref())?;
        if tokens.tokens.is_empty() {
            let token = new_secret();
            tokens.tokens.push(Token {
                name: "admin".into(),
                secret: Secret::hashed(&token),
                scopes: vec![Scope::Admin],
                rate_limit: None,
            });
            create_private_dir(data_dir)?;
            // The secret is handed over in a file of its own, readable by this
            // user only; the tokens file keeps its hash.
            let handed_over = data_dir.join(ADMIN_TOKEN_FILE);
            write_private(&handed_over, &format!("{token}\n"))?;
            write_private(
                &path,
                &serde_json::to_string_pretty(&tokens).expect("tokens serialise"),
            )?;
            // The secret goes to a terminal only: logs keep what stderr says.
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!(
                    "tasklog: made an admin token, saved in {}\n  curl -H 'Authorization: Bearer {token}' ...",
                    handed_over.display()
                );
            }
            tracing::info!(
                token_file = %handed_over.display(),
                tokens = %path.display(),
                "made an admin token; read it from the token file (readable by this user \
                 only) and delete that file once it is kept elsewhere: the tokens file keeps its hash only"
            );
        }
        Ok(tokens)
    }
}

fn tokens_file(data_dir: &Path) -> PathBuf {
    data_dir.join("tokens.json")
}

/// The tokens a node takes now, with their request budgets; read again from
/// the file when it changes.
pub struct TokenTable {
    current: RwLock<Arc<Keyring>>,
    /// Where the tokens came from, to read them again (None: fixed).
    source: Option<TokenSource>,
}

/// Tokens and their budgets, as of one reading of the file.
pub struct Keyring {
    pub tokens: Tokens,
    pub rate_limits: RateLimiters,
}

impl Keyring {
    /// The token a request presented, if it is one of ours.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        self.tokens.find(presented)
    }
}

/// A data directory's tokens file, and the token from the environment.
#[derive(Clone, Debug)]
pub struct TokenSource {
    pub data_dir: PathBuf,
    pub env_token: Option<String>,
}

/// How often a serving node looks whether the tokens file changed.
const TOKENS_CHECKED_EVERY: Duration = Duration::from_secs(1);

impl TokenTable {
    /// `tokens`, read again from `source` when its file changes.
    pub fn new(tokens: Tokens, source: Option<TokenSource>) -> Self {
        let rate_limits = RateLimiters::for_tokens(&tokens);
        TokenTable {
            current: RwLock::new(Arc::new(Keyring {
                tokens,
                rate_limits,
            })),
            source,
        }
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.current.read().expect("token table").clone()
    }

    fn replace(&self, tokens: Tokens) {
        let mut current = self.current.write().expect("token table");
        let rate_limits = RateLimiters::keeping(&tokens, &current.rate_limits);
        *current = Arc::new(Keyring {
            tokens,
            rate_limits,
        });
    }

    /// Reads the tokens file again whenever it changes, until dropped.
    pub async fn follow_file(self: Arc<Self>) {
        let Some(source) = self.source.clone() else {
            return;
        };
        let path = tokens_file(&source.data_dir);
        let stamp = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        };
        let mut seen = stamp(&path);
        let mut every = tokio::time::interval(TOKENS_CHECKED_EVERY);
        loop {
            every.tick().await;
            let now = stamp(&path);
            if now == seen {
                continue;
            }
            seen = now;
            match Tokens::load(&source.data_dir, source.env_token.as_deref()) {
                Ok(tokens) => {
                    let names: Vec<&str> = tokens.tokens.iter().map(|t| t.name.as_str()).collect();
                    tracing::info!(tokens = %path.display(), names = names.join(","),
                        "read the tokens file again");
                    self.replace(tokens);
                }
                Err(error) => {
                    tracing::warn!(tokens = %path.display(), %error,
                        "the tokens file changed but cannot be read; the tokens before stay");
                }
            }
        }
    }
}

/// Says so when a tokens file can be read by users other than its owner.
fn warn_if_others_can_read(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path) {
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    tokens = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the tokens file can be read by other users; make it readable by its owner only (chmod 600)"
                );
            }
        }
    }
}

/// Makes the data directory, readable by this user only, if it is not there.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Two random UUIDs (244 random bits) as 64 hex characters.
pub fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
