//! `tasklog tokens add|list|remove`: the tokens file of a data directory,
//! edited for a stopped or a running node (a running one reads the file again
//! within a second). A new token's secret is printed once; the file keeps its
//! SHA-256.

use std::io::Write;
use std::num::NonZeroU32;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::http::auth::{new_secret, RateLimit, Scope, Secret, Token, Tokens};
use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token with these scopes. Its secret is printed once, alone on
    /// standard output; the tokens file keeps its SHA-256.
    Add(AddToken),
    /// The tokens of the file: name, scopes, rate limit, and how it is kept
    /// (never a secret).
    List(DataDir),
    /// Remove a token; a running node refuses it within a second.
    Remove(RemoveToken),
}

#[derive(Debug, Args)]
pub struct DataDir {
    /// The data directory whose `tokens.json` to edit.
    #[arg(long, env = "TASKLOG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct AddToken {
    /// The token's name: the actor of the events it causes.
    pub name: String,
    /// A scope (repeat for more): tasks:read, tasks:write, tasks:work,
    /// events:read, consumers:write, schedules:read, schedules:write,
    /// metrics:read or admin.
    #[arg(long = "scope", required = true)]
    pub scopes: Vec<Scope>,
    /// Requests per second on average, and optionally the burst: `50` or `50/100`.
    #[arg(long, value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    #[command(flatten)]
    pub dir: DataDir,
}

#[derive(Debug, Args)]
pub struct RemoveToken {
    pub name: String,
    #[command(flatten)]
    pub dir: DataDir,
}

/// `50` (a burst of 50) or `50/100`.
fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let number = |part: &str| {
        part.trim()
            .parse::<NonZeroU32>()
            .map_err(|_| format!("{part:?} is not a whole number above 0"))
    };
    let (rate, burst) = match text.split_once('/') {
        Some((rate, burst)) => (number(rate)?, number(burst)?),
        None => (number(text)?, number(text)?),
    };
    Ok(RateLimit {
        requests_per_second: rate,
        burst,
    })
}

pub fn run(command: TokensCommand) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match command {
        TokensCommand::Add(add) => {
            let name = add.name.trim();
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err("a token's name must be printable and not empty".into());
            }
            if name == "env" {
                return Err("`env` names the token from TASKLOG_TOKEN; choose another name".into());
            }
            let mut tokens = Tokens::read_file(&add.dir.data_dir)?;
            if tokens.tokens.iter().any(|t| t.name == name) {
                return Err(format!("a token named {name:?} exists; remove it first").into());
            }
            let secret = new_secret();
            tokens.tokens.push(Token {
                name: name.to_owned(),
                secret: Secret::hashed(&secret),
                scopes: add.scopes,
                rate_limit: add.rate_limit,
            });
            tokens.write_file(&add.dir.data_dir)?;
            writeln!(out, "{secret}")?;
            eprintln!(
                "tasklog: added the token {name:?} to {}; its secret above is shown only now",
                add.dir.data_dir.join("tokens.json").display()
            );
        }
        TokensCommand::List(dir) => {
            let tokens = Tokens::read_file(&dir.data_dir)?;
            for token in &tokens.tokens {
                let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
                let limit = token.rate_limit.map_or("no rate limit".to_owned(), |l| {
                    format!("{}/s, burst {}", l.requests_per_second, l.burst)
                });
                let kept = match token.secret {
                    Secret::Sha256(_) => "hashed",
                    Secret::Plain(_) => "plain (written by hand)",
                };
                writeln!(out, "{}\t{}\t{limit}\t{kept}", token.name, scopes.join(","))?;
            }
        }
        TokensCommand::Remove(remove) => {
            let mut tokens = Tokens::read_file(&remove.dir.data_dir)?;
            let before = tokens.tokens.len();
            tokens.tokens.retain(|t| t.name != remove.name);
            if tokens.tokens.len() == before {
                return Err(format!("no token named {:?}", remove.name).into());
            }
            tokens.write_file(&remove.dir.data_dir)?;
            eprintln!("tasklog: removed the token {:?}", remove.name);
        }
    }
    Ok(())
}
