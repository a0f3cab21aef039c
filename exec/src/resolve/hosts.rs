//! `/etc/hosts`.

use std::net::IpAddr;

/// Every address `/etc/hosts` gives `name` (as a canonical name or an alias), in file
/// order, without repeats. Names compare without regard to case or a final `.`.
pub(crate) fn lookup(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.trim_end_matches('.');
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        // Lines with a scoped or malformed address are skipped, as libc does.
        let Some(address) = fields.next().and_then(|field| field.parse::<IpAddr>().ok()) else {
            continue;
        };
        if fields.any(|alias| alias.trim_end_matches('.').eq_ignore_ascii_case(name))
            && !found.contains(&address)
        {
            found.push(address);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const HOSTS: &str = "\
# Kubernetes-managed hosts file.
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe80::1%lo0 linklocal
10.244.0.7\tapp-7d9c.team-a.pod.cluster.local\tapp-7d9c
10.0.0.9 agyn-secrets.agyn-secrets.svc agyn-secrets # pinned
10.0.0.10 AGYN-SECRETS.agyn-secrets.svc
garbage agyn-secrets
10.0.0.9 agyn-secrets
";

    #[rstest]
    #[case::canonical("app-7d9c.team-a.pod.cluster.local", &["10.244.0.7"])]
    #[case::alias("app-7d9c", &["10.244.0.7"])]
    #[case::both_families("localhost", &["127.0.0.1", "::1"])]
    #[case::every_line_once("agyn-secrets.agyn-secrets.svc", &["10.0.0.9", "10.0.0.10"])]
    #[case::root_dot("agyn-secrets.", &["10.0.0.9"])]
    #[case::commented_out("pinned", &[])]
    #[case::scoped_skipped("linklocal", &[])]
    #[case::absent("nowhere.example", &[])]
    fn finds_names_and_aliases(#[case] name: &str, #[case] expected: &[&str]) {
        let expected: Vec<IpAddr> = expected.iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(lookup(HOSTS, name), expected);
    }
}
