//! Test harness: the real `agyn-secrets serve --dev` on free loopback ports
//! (from `agyn-test-support`, which the server's own tests use too), and the
//! real `terraform` binary pointed at this package's provider build through
//! `dev_overrides`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub use agyn_test_support::*;

/// The directory that holds this package's provider binary, for
/// `dev_overrides`.
pub fn provider_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_terraform-provider-agyn"))
        .parent()
        .expect("the provider binary's directory")
        .to_owned()
}

/// The `terraform` binary in one working directory, configured to take the
/// `agyn` provider from this package's build and nothing from a registry.
pub struct Terraform {
    binary: PathBuf,
    pub dir: PathBuf,
    cli_config: PathBuf,
    env: Vec<(String, String)>,
}

/// What one terraform command did.
pub struct Run {
    pub code: Option<i32>,
    /// stdout and stderr together, as a person would see them.
    pub output: String,
}

impl Terraform {
    /// `None` when `terraform` is not on PATH.
    pub fn new(dir: &Path, env: &[(&str, &str)]) -> Option<Terraform> {
        let binary = tool("terraform")?;
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let cli_config = dir.join("terraformrc");
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"agyn/agyn\" = {:?}\n  }}\n  direct {{}}\n}}\n",
                provider_dir().display().to_string()
            ),
        )
        .unwrap();
        Some(Terraform {
            binary,
            dir: work,
            cli_config,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
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
            .env_remove("TF_LOG")
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
