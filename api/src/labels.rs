//! Labels and tags on tasks, and the selectors that list and claim filter by.
//!
//! Labels follow Cloud Foundry's `metadata.labels`: a key is an optional DNS
//! prefix and `/`, then a name of at most 63 alphanumerics, `-`, `_` and `.`
//! that starts and ends alphanumeric; a value is empty or follows the name's
//! rules. A selector is requirements joined by commas, all of which must hold:
//! `env=prod`, `env==prod`, `tier!=batch`, `env in (prod,staging)`,
//! `env notin (dev)`, `env` (has the label) and `!env` (has not).

use std::collections::BTreeMap;
use std::str::FromStr;

/// Most labels a task may carry.
pub const MAX_LABELS: usize = 64;
/// Most tags a task may carry, and the longest tag, in characters.
pub const MAX_TAGS: usize = 10;
pub const MAX_TAG_CHARS: usize = 50;

fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_prefix(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|part| {
            let b = part.as_bytes();
            (1..=63).contains(&b.len())
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// Why `labels` are not valid, if they are not.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("must have at most {MAX_LABELS} labels"));
    }
    for (key, value) in labels {
        let name = match key.split_once('/') {
            Some((prefix, name)) if is_dns_prefix(prefix) => name,
            Some(_) => {
                return Err(format!(
                    "label key {key:?}: the prefix must be a DNS subdomain"
                ))
            }
            None => key,
        };
        if !is_name(name) {
            return Err(format!(
                "label key {key:?}: 1 to 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric"
            ));
        }
        if !value.is_empty() && !is_name(value) {
            return Err(format!(
                "label {key:?}: a value is empty or up to 63 of a-z, A-Z, 0-9, '-', '_', '.', starting and ending alphanumeric"
            ));
        }
    }
    Ok(())
}

/// Why `tags` are not valid, if they are not.
pub fn check_tags(tags: &[String]) -> Result<(), String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("must have at most {MAX_TAGS} tags"));
    }
    for tag in tags {
        if tag.trim().is_empty() {
            return Err("a tag must not be empty".into());
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(format!(
                "tag {tag:?} is longer than {MAX_TAG_CHARS} characters"
            ));
        }
    }
    Ok(())
}

/// A label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
enum Requirement {
    Exists(String),
    Missing(String),
    In(String, Vec<String>),
    /// Holds for tasks without the label too, as in Kubernetes and Cloud Foundry.
    NotIn(String, Vec<String>),
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::Missing(key) => !labels.contains_key(key),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
        })
    }

    /// The first `key=value` requirement: a stored list reads its label index.
    pub fn first_equality(&self) -> Option<(String, String)> {
        self.0.iter().find_map(|requirement| match requirement {
            Requirement::In(key, values) if values.len() == 1 => {
                Some((key.clone(), values[0].clone()))
            }
            _ => None,
        })
    }
}

/// The selector as text that parses back to it: `env=prod,tier!=batch`,
/// `env in (prod,staging)`, `env`, `!env`.
impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (n, requirement) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            match requirement {
                Requirement::Exists(key) => write!(f, "{key}")?,
                Requirement::Missing(key) => write!(f, "!{key}")?,
                Requirement::In(key, values) if values.len() == 1 => {
                    write!(f, "{key}={}", values[0])?
                }
                Requirement::NotIn(key, values) if values.len() == 1 => {
                    write!(f, "{key}!={}", values[0])?
                }
                Requirement::In(key, values) => write!(f, "{key} in ({})", values.join(","))?,
                Requirement::NotIn(key, values) => write!(f, "{key} notin ({})", values.join(","))?,
            }
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // A requirement ends at the first comma outside parentheses.
            let end = match rest.find('(') {
                Some(open) if rest[..open].find(',').is_none() => {
                    let close = rest[open..]
                        .find(')')
                        .ok_or_else(|| format!("unclosed '(' in {rest:?}"))?;
                    open + close + 1
                }
                _ => rest.find(',').unwrap_or(rest.len()),
            };
            requirements.push(requirement(rest[..end].trim())?);
            rest = rest[end..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
                if rest.is_empty() {
                    return Err("a selector must not end with a comma".into());
                }
            } else if !rest.is_empty() {
                return Err(format!("expected a comma before {rest:?}"));
            }
        }
        if requirements.is_empty() {
            return Err("a selector needs at least one requirement".into());
        }
        Ok(Selector(requirements))
    }
}

fn requirement(text: &str) -> Result<Requirement, String> {
    let key = |k: &str| {
        let k = k.trim();
        let labels = BTreeMap::from([(k.to_owned(), String::new())]);
        check_labels(&labels).map(|()| k.to_owned())
    };
    let value = |v: &str| {
        let v = v.trim();
        (v.is_empty() || is_name(v))
            .then(|| v.to_owned())
            .ok_or_else(|| format!("{v:?} is not a label value"))
    };
    if let Some((k, v)) = text.split_once("!=") {
        return Ok(Requirement::NotIn(key(k)?, vec![value(v)?]));
    }
    if let Some((k, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(Requirement::In(key(k)?, vec![value(v)?]));
    }
    for (word, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = text.split_once(word) {
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("{word:?} takes a list in parentheses, like (a,b)"))?;
            let values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
            let k = key(k)?;
            return Ok(if negated {
                Requirement::NotIn(k, values)
            } else {
                Requirement::In(k, values)
            });
        }
    }
    match text.strip_prefix('!') {
        Some(k) => Ok(Requirement::Missing(key(k)?)),
        None => Ok(Requirement::Exists(key(text)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_read_back_from_their_text() {
        for text in [
            "env=prod",
            "env==prod,tier!=batch",
            "env in (prod, staging),example.com/team",
            "env notin (dev),!owner",
            "env=",
            "env in (),tier notin (a,b,c)",
        ] {
            let selector: Selector = text.parse().unwrap();
            let again: Selector = selector.to_string().parse().unwrap();
            assert_eq!(again, selector, "{text} shown as {selector}");
        }
    }

    #[test]
    fn selectors_match_as_documented() {
        let task = labels(&[("env", "prod"), ("tier", "web"), ("example.com/team", "a")]);
        let matches = |s: &str| s.parse::<Selector>().unwrap().matches(&task);
        assert!(matches("env=prod"));
        assert!(matches("env==prod,tier!=batch"));
        assert!(matches("env in (prod, staging),example.com/team"));
        assert!(matches("env notin (dev),!owner"));
        assert!(
            matches("owner!=x"),
            "a missing label is not equal to anything"
        );
        assert!(!matches("env=dev"));
        assert!(!matches("tier notin (web,api)"));
        assert!(!matches("!env"));
        assert!(!matches("owner"));
    }

    #[test]
    fn bad_selectors_say_why() {
        for bad in [
            "",
            "env=prod,",
            "env in prod",
            "env in (a",
            "=prod",
            "env=pr od",
            "-x",
            "a b",
        ] {
            assert!(bad.parse::<Selector>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_and_tags_are_checked() {
        assert!(check_labels(&labels(&[("env", ""), ("a.b/c-d", "x_y.z")])).is_ok());
        assert!(check_labels(&labels(&[("-env", "x")])).is_err());
        assert!(check_labels(&labels(&[("env", "has space")])).is_err());
        assert!(check_labels(&labels(&[(&"k".repeat(64), "x")])).is_err());
        assert!(check_labels(&labels(&[("bad_prefix!/k", "x")])).is_err());
        assert!(check_tags(&["a".repeat(50)]).is_ok());
        assert!(check_tags(&["a".repeat(51)]).is_err());
        assert!(check_tags(&vec!["t".to_owned(); 11]).is_err());
        assert!(check_tags(&[" ".to_owned()]).is_err());
    }
}
