//! A secret's namespace fence: which of its organization's namespaces may
//! use it. Entries are namespace names or globs in which `*` stands for any
//! run of characters (`team-a-*`); an empty fence lets every bound
//! namespace in.

/// Most entries one fence may hold.
pub const MAX_ENTRIES: usize = 64;

/// Checks and tidies a fence as written: every entry a namespace name or a
/// glob of one, sorted, without duplicates. The error says what to fix.
pub fn normalize(entries: Vec<String>) -> Result<Vec<String>, String> {
    if entries.len() > MAX_ENTRIES {
        return Err(format!(
            "holds {} entries, more than {MAX_ENTRIES}; a glob such as team-a-* covers many namespaces",
            entries.len()
        ));
    }
    for entry in &entries {
        check_entry(entry)?;
    }
    let mut entries = entries;
    entries.sort_unstable();
    entries.dedup();
    Ok(entries)
}

fn check_entry(entry: &str) -> Result<(), String> {
    let valid = !entry.is_empty()
        && entry.len() <= 63
        && entry
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*')
        && !entry.starts_with('-')
        && !entry.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{entry:?} is not a namespace name or a glob of one: lowercase letters, digits, '-' and '*', at most 63 characters, e.g. team-a-prod or team-a-*"
        ))
    }
}

/// Whether `namespace` may use a secret with this fence.
pub fn allows(fence: &[String], namespace: &str) -> bool {
    fence.is_empty() || fence.iter().any(|entry| glob_match(entry, namespace))
}

/// The denial of a pod in `namespace` that asks for secret `name`.
pub fn refusal(name: &str, namespace: &str, fence: &[String]) -> String {
    format!(
        "secret {name:?} may not be used in namespace {namespace:?} (allowed: {})",
        fence.join(", ")
    )
}

/// Matches `text` against `pattern`, where `*` is any run of characters.
/// Greedy with one backtrack point, so linear in practice and never worse
/// than the product of the lengths (both at most 63 bytes).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The fence as the database keeps it: entries joined by commas, which no
/// entry can hold.
pub fn to_column(fence: &[String]) -> String {
    fence.join(",")
}

pub fn from_column(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_match("team-a-*", "team-a-prod"));
        assert!(glob_match("team-a-*", "team-a-"));
        assert!(!glob_match("team-a-*", "team-b-prod"));
        assert!(glob_match("*-prod", "team-a-prod"));
        assert!(!glob_match("*-prod", "team-a-prod-2"));
        assert!(glob_match("team-*-prod", "team-a-b-prod"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("exactly", "exact"));
    }

    #[test]
    fn an_empty_fence_lets_every_namespace_in() {
        assert!(allows(&[], "team-a-dev"));
        let prod = fence(&["team-a-prod", "ops-*"]);
        assert!(allows(&prod, "team-a-prod"));
        assert!(allows(&prod, "ops-tools"));
        assert!(!allows(&prod, "team-a-dev"));
        assert_eq!(
            refusal("db-password", "team-a-dev", &prod),
            r#"secret "db-password" may not be used in namespace "team-a-dev" (allowed: team-a-prod, ops-*)"#
        );
    }

    #[test]
    fn fences_are_checked_and_tidied() {
        assert_eq!(
            normalize(fence(&["b", "a-*", "b"])).unwrap(),
            fence(&["a-*", "b"])
        );
        for bad in [
            "",
            "Team-A",
            "a,b",
            "-a",
            "a-",
            "a b",
            "a/b",
            &"a".repeat(64),
        ] {
            let error = normalize(fence(&[bad])).unwrap_err();
            assert!(error.contains("not a namespace name"), "{bad:?}: {error}");
        }
        assert!(normalize(vec!["a".to_owned(); MAX_ENTRIES + 1]).is_err());
    }

    #[test]
    fn the_column_round_trips() {
        for entries in [fence(&[]), fence(&["a"]), fence(&["a-*", "b"])] {
            assert_eq!(from_column(&to_column(&entries)), entries);
        }
    }
}
