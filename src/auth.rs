//! Tokens and scopes. Requests carry `Authorization: Bearer <token>`; each
//! token has a name (recorded as the actor of the events it causes) and scopes.
//!
//! Tokens live in `tokens.json` in the data directory:
//! `{"tokens": [{"name": "ci", "token": "...", "scopes": ["tasks:write"]}]}`.
//! `TASKLOG_TOKEN` adds one token, named `env`, with every scope. With neither,
//! the first start writes an `admin` token to the file and prints it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// Read tasks.
    #[serde(rename = "tasks:read")]
    TasksRead,
    /// Create and cancel tasks.
    #[serde(rename = "tasks:write")]
    TasksWrite,
    /// Claim tasks and report on them, as a worker.
    #[serde(rename = "tasks:work")]
    TasksWork,
    /// Read the event log.
    #[serde(rename = "events:read")]
    EventsRead,
    /// Everything.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::TasksWork => "tasks:work",
            Scope::EventsRead => "events:read",
            Scope::Admin => "admin",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Token {
    pub name: String,
    pub token: String,
    pub scopes: Vec<Scope>,
}

impl Token {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes
            .iter()
            .any(|s| *s == scope || *s == Scope::Admin)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tokens {
    pub tokens: Vec<Token>,
}

impl Tokens {
    /// The token a request presented, if it is one of ours. Compares in time
    /// independent of where the strings differ.
    pub fn find(&self, presented: &str) -> Option<&Token> {
        self.tokens
            .iter()
            .find(|t| constant_time_eq(t.token.as_bytes(), presented.as_bytes()))
    }

    /// Loads `tokens.json` from `data_dir` and adds `env_token`; with neither,
    /// makes an admin token, saves it and says so.
    pub fn load_or_create(data_dir: &Path, env_token: Option<String>) -> std::io::Result<Tokens> {
        let path = data_dir.join("tokens.json");
        let mut tokens = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tokens::default(),
            Err(e) => return Err(e),
        };
        if let Some(token) = env_token.filter(|t| !t.is_empty()) {
            tokens.tokens.push(Token {
                name: "env".into(),
                token,
                scopes: vec![Scope::Admin],
            });
        }
        if tokens.tokens.is_empty() {
            let token = new_secret();
            tokens.tokens.push(Token {
                name: "admin".into(),
                token: token.clone(),
                scopes: vec![Scope::Admin],
            });
            std::fs::create_dir_all(data_dir)?;
            write_private(
                &path,
                &serde_json::to_string_pretty(&tokens).expect("tokens serialise"),
            )?;
            eprintln!(
                "tasklog: made an admin token and saved it in {}\n  curl -H 'Authorization: Bearer {token}' ...",
                path.display()
            );
        }
        Ok(tokens)
    }
}

/// Two random UUIDs (244 random bits) as 64 hex characters.
pub fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}
