//! Test harness: the real `agyn-secrets serve --dev` on free loopback ports
//! (from `agyn-test-support`, which the server's own tests use too), and the
//! real `terraform` binary, which installs this package's provider build
//! from a filesystem mirror with `terraform init`, as docs/terraform.md
//! tells people to, and can reach no registry.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use agyn_test_support::*;

/// The version the mirror holds the build under, and `terraform init`
/// installs.
pub const PROVIDER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Installs this package's provider build into a filesystem mirror at
/// `mirror` with `examples/terraform/install-provider.sh`, as
/// docs/terraform.md tells people to, and returns the CLI configuration
/// file that the script writes for it.
pub fn install_into_mirror(mirror: &Path) -> PathBuf {
    let script = workspace().join("examples/terraform/install-provider.sh");
    let output = Command::new("sh")
        .arg(&script)
        .arg(mirror)
        .env(
            "AGYN_PROVIDER_BINARY",
            env!("CARGO_BIN_EXE_terraform-provider-agyn"),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run install-provider.sh");
    assert!(
        output.status.success(),
        "{} failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut config = mirror.as_os_str().to_owned();
    config.push(".tfrc");
    PathBuf::from(config)
}

/// The `terraform` binary in one working directory, configured to install
/// the `agyn` provider from a filesystem mirror that holds this package's
/// build, and nothing from a registry.
pub struct Terraform {
    binary: PathBuf,
    pub dir: PathBuf,
    cli_config: PathBuf,
    /// A loopback port nothing listens on: Terraform's HTTPS proxy, so that
    /// any attempt to reach a registry fails instead of going out.
    dead_proxy: String,
    env: Vec<(String, String)>,
}

/// What one terraform command did.
pub struct Run {
    pub code: Option<i32>,
    /// stdout and stderr together, as a person would see them.
    pub output: String,
}

impl Terraform {
    /// `None` when `terraform` is not on PATH. The mirror (`dir/mirror`),
    /// its CLI configuration (`dir/mirror.tfrc`) and the working directory
    /// (`dir/work`) are made under `dir`; run [`Terraform::init`] once the
    /// configuration is written.
    pub fn new(dir: &Path, env: &[(&str, &str)]) -> Option<Terraform> {
        let binary = tool("terraform")?;
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cli_config = install_into_mirror(&dir.join("mirror"));
        Some(Terraform {
            binary,
            dir: work,
            cli_config,
            dead_proxy: format!("http://127.0.0.1:{}", free_port()),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
    }

    /// `terraform init`, which must succeed: it installs the provider from
    /// the mirror. Returns its output.
    #[track_caller]
    pub fn init(&self) -> String {
        self.ok(&["init", "-no-color"])
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let mut command = Command::new(&self.binary);
        command
            .current_dir(&self.dir)
            .args(args)
            .env("TF_CLI_CONFIG_FILE", &self.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("CHECKPOINT_DISABLE", "1")
            .env("HTTPS_PROXY", &self.dead_proxy)
            .env("https_proxy", &self.dead_proxy)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .env_remove("TF_LOG")
            .env_remove("TF_DATA_DIR")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("AGYN_ENDPOINT")
            .env_remove("AGYN_TOKEN")
            .env_remove("AGYN_CA_CERT_PEM")
            .stdin(Stdio::null());
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = command.output().expect("run terraform");
        Run {
            code: status.code(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        }
    }

    /// Runs a command that must succeed, and returns its output.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(0),
            "terraform {} failed:\n{}",
            args.join(" "),
            run.output
        );
        run.output
    }

    /// `terraform plan -detailed-exitcode`: 0 when nothing would change.
    #[track_caller]
    pub fn assert_no_changes(&self) {
        let run = self.run(&["plan", "-detailed-exitcode", "-no-color"]);
        assert_eq!(
            run.code,
            Some(0),
            "expected no changes, plan said:\n{}",
            run.output
        );
    }
}
