//! A PostgreSQL server of one test's own, which the test may stop and start
//! again without disturbing the server that the rest of the run shares.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{free_port, skip, workspace};

/// A throwaway PostgreSQL server on a free loopback port, stopped on drop.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// The PostgreSQL server programs: `AGYN_TEST_POSTGRES_BIN` (set by
/// `scripts/with-postgres.sh`), else where the build looked for them.
pub fn postgres_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("AGYN_TEST_POSTGRES_BIN") {
        return Some(PathBuf::from(bin));
    }
    crate::tools::postgres_bin(workspace())
}

impl OwnPostgres {
    /// Starts a throwaway server on a free port (`None`, after a loud skip,
    /// when PostgreSQL is not installed).
    pub fn start() -> Option<Self> {
        let Some(bin) = postgres_bin() else {
            skip("no PostgreSQL server binaries (initdb, pg_ctl) found");
            return None;
        };
        // PostgreSQL refuses to run as root.
        let as_postgres = crate::is_root();
        let dir = tempfile::Builder::new()
            .prefix("agyn-own-pg.")
            .tempdir()
            .unwrap();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        let server = OwnPostgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                &data.to_string_lossy(),
                "-A",
                "trust",
                "-U",
                "agyn",
                // Its files are thrown away with the test; the server itself
                // runs with fsync on.
                "--no-sync",
            ],
        );
        server.resume();
        Some(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// URL of the `postgres` database, for [`fresh_postgres`].
    pub fn base_url(&self) -> String {
        format!("postgres://agyn@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }

    /// Starts the server (again) on the same port and data, waiting until it
    /// accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir().to_string_lossy(),
                "-l",
                &self.dir.path().join("log").to_string_lossy(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data_dir();
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let _ = command
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
