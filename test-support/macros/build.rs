//! Looks for every program some test needs (`../src/tools.rs`), for
//! `#[needs(...)]` to mark a test ignored when one is missing. With
//! `AGYN_TEST_REQUIRE_ALL=1` (CI) a missing program fails the build instead,
//! naming every one that is missing.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../src/tools.rs"]
mod tools;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest
        .ancestors()
        .nth(2)
        .expect("this package sits in test-support/macros of the workspace");

    // Looked for again when an entry of a directory the lookup searches
    // changes (a tool installed or removed), not when PATH's text changes:
    // PATH differs between shells, editors and `make test` (which puts
    // .venv/bin first, searched here anyway), and every rerun rebuilds every
    // test binary though the same tools are found. So a directory newly put
    // on PATH counts from the next change in a watched directory on. A
    // missing `.venv` cannot be watched (cargo would rerun this every time);
    // `make venv` touches this file instead. Whether the build runs as root
    // is read once: the tests check it again when they run.
    for dir in tools::watched(root) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    println!("cargo::rerun-if-env-changed=AGYN_TEST_REQUIRE_ALL");

    let mut found: Vec<(&str, bool, &str)> = tools::TOOLS
        .iter()
        .map(|tool| (tool.name, tools::present(root, tool.name), tool.what))
        .collect();
    // A PostgreSQL server elsewhere serves the tests as well as local server
    // programs do. Only then does the variable count: `with-postgres.sh`
    // sets it to a new port every run, which must not rebuild the tests.
    if let Some(postgres) = found.iter_mut().find(|(name, ..)| *name == "postgres")
        && !postgres.1
    {
        println!("cargo::rerun-if-env-changed=AGYN_TEST_POSTGRES_URL");
        postgres.1 = std::env::var_os("AGYN_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty());
    }

    let table = found
        .iter()
        .map(|(name, present, what)| format!("    ({name:?}, {present}, {what:?}),\n"))
        .collect::<String>();
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("set by cargo")).join("tools.rs");
    std::fs::write(
        &out,
        format!("/// Each tool: its name, whether it was found, what it is.\nconst TOOLS: &[(&str, bool, &str)] = &[\n{table}];\n"),
    )
    .expect("write the tool table");

    let missing: Vec<&str> = found
        .iter()
        .filter(|(_, present, _)| !present)
        .map(|(_, _, what)| *what)
        .collect();
    if std::env::var("AGYN_TEST_REQUIRE_ALL").is_ok_and(|v| v == "1") && !missing.is_empty() {
        eprintln!("AGYN_TEST_REQUIRE_ALL=1, and the tests cannot find:");
        for what in &missing {
            eprintln!("  - {what}");
        }
        eprintln!(
            "Searched {}/.venv/bin, PATH and /usr/lib/postgresql/*/bin. Install what is \
             missing, or unset AGYN_TEST_REQUIRE_ALL: the tests that need it are then \
             reported as ignored.",
            root.display()
        );
        std::process::exit(1);
    }
}
