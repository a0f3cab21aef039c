//! `/etc/resolv.conf`, the parts a stub resolver uses.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The most nameservers libc uses (`MAXNS`); later lines are ignored, as there.
const MAX_NAMESERVERS: usize = 3;

/// The resolver configuration, with libc's defaults for what the file leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolvConf {
    pub(crate) nameservers: Vec<IpAddr>,
    pub(crate) search: Vec<String>,
    pub(crate) ndots: usize,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        Self {
            nameservers: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// Reads the file's text. Lines it does not understand are skipped, as libc does.
    pub(crate) fn parse(text: &str) -> Self {
        let mut conf = Self {
            nameservers: Vec::new(),
            ..Self::default()
        };
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with(['#', ';']) {
                continue;
            }
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A scoped IPv6 address (fe80::1%eth0) cannot be used without the
                    // interface index; skip it.
                    if let Some(address) = words.next().and_then(|word| word.parse().ok())
                        && conf.nameservers.len() < MAX_NAMESERVERS
                    {
                        conf.nameservers.push(address);
                    }
                }
                // The last `search` or `domain` line wins.
                Some("search") => conf.search = words.filter_map(search_domain).collect(),
                Some("domain") => {
                    conf.search = words.next().and_then(search_domain).into_iter().collect()
                }
                Some("options") => {
                    for option in words {
                        let (key, value) = option.split_once(':').unwrap_or((option, ""));
                        let number = value.parse::<u32>().ok();
                        match (key, number) {
                            ("ndots", Some(n)) => conf.ndots = n.min(15) as usize,
                            ("timeout", Some(n)) => {
                                conf.timeout = Duration::from_secs(n.clamp(1, 30).into());
                            }
                            ("attempts", Some(n)) => conf.attempts = n.clamp(1, 5),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = Self::default().nameservers;
        }
        conf
    }

    /// The names to ask DNS for, in order, as libc's `res_search` builds them: a name
    /// ending in `.` is asked as is; a name with at least `ndots` dots is asked as is
    /// first and then with each search domain; a shorter one with the search domains
    /// first and as is last.
    pub(crate) fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_ascii_lowercase()];
        }
        let name = name.to_ascii_lowercase();
        let searched = self.search.iter().map(|domain| format!("{name}.{domain}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.clone()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.clone())).collect()
        }
    }
}

fn search_domain(word: &str) -> Option<String> {
    let domain = word.trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty() && super::is_host_name(&domain)).then_some(domain)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const KUBERNETES: &str = "\
search team-a.svc.cluster.local svc.cluster.local cluster.local
nameserver 10.96.0.10
options ndots:5
";

    #[test]
    fn reads_what_kubernetes_writes() {
        let conf = ResolvConf::parse(KUBERNETES);
        assert_eq!(conf.nameservers, ["10.96.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            conf.search,
            [
                "team-a.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(conf.ndots, 5);
        assert_eq!(conf.timeout, Duration::from_secs(5));
        assert_eq!(conf.attempts, 2);
    }

    #[test]
    fn reads_every_option_and_ignores_the_rest() {
        let conf = ResolvConf::parse(
            "# comment\n; comment\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver ::1\n\
             nameserver 10.0.0.2\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n\
             domain old.example\nsearch Example.COM. .\nsortlist 10.0.0.0/8\n\
             options rotate ndots:20 timeout:0 attempts:9 edns0\nbogus line\n",
        );
        assert_eq!(
            conf.nameservers,
            ["10.0.0.1", "::1", "10.0.0.2"]
                .map(|a| a.parse::<IpAddr>().unwrap())
                .to_vec()
        );
        assert_eq!(conf.search, ["example.com"]);
        assert_eq!(conf.ndots, 15);
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert_eq!(conf.attempts, 5);
    }

    #[test]
    fn the_last_of_domain_and_search_wins() {
        let conf = ResolvConf::parse("search a.example b.example\ndomain c.example\n");
        assert_eq!(conf.search, ["c.example"]);
    }

    #[test]
    fn an_empty_file_means_the_local_nameserver() {
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
        assert_eq!(
            ResolvConf::default().nameservers,
            [IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
    }

    #[rstest]
    #[case::service_short("agyn-secrets", &[
        "agyn-secrets.team-a.svc.cluster.local",
        "agyn-secrets.svc.cluster.local",
        "agyn-secrets.cluster.local",
        "agyn-secrets",
    ])]
    #[case::service_in_namespace("agyn-secrets.agyn-secrets.svc", &[
        "agyn-secrets.agyn-secrets.svc.team-a.svc.cluster.local",
        "agyn-secrets.agyn-secrets.svc.svc.cluster.local",
        "agyn-secrets.agyn-secrets.svc.cluster.local",
        "agyn-secrets.agyn-secrets.svc",
    ])]
    #[case::enough_dots("a.b.c.d.e.example", &[
        "a.b.c.d.e.example",
        "a.b.c.d.e.example.team-a.svc.cluster.local",
        "a.b.c.d.e.example.svc.cluster.local",
        "a.b.c.d.e.example.cluster.local",
    ])]
    #[case::absolute("agyn-secrets.agyn-secrets.svc.cluster.local.", &[
        "agyn-secrets.agyn-secrets.svc.cluster.local",
    ])]
    #[case::upper_case("Agyn-Secrets.", &["agyn-secrets"])]
    fn searches_in_libc_order(#[case] name: &str, #[case] expected: &[&str]) {
        assert_eq!(ResolvConf::parse(KUBERNETES).candidates(name), expected);
    }

    #[test]
    fn ndots_one_asks_a_dotted_name_as_is_first() {
        let conf = ResolvConf::parse("search example.com\n");
        assert_eq!(
            conf.candidates("db.internal"),
            ["db.internal", "db.internal.example.com"]
        );
        assert_eq!(conf.candidates("db"), ["db.example.com", "db"]);
    }
}
