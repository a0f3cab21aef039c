//! Command line and environment configuration.
//!
//! Every flag also reads an `AGYN_*` environment variable, so that the same
//! settings work from a shell, a Deployment or a Helm chart.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Kubernetes admission webhook and resolver for organization secrets.
#[derive(Debug, Parser)]
#[command(name = "agyn-secrets", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook and the API in one process.
    Serve(ServeArgs),
    /// Run the admission webhook (and the exec listener) only.
    Webhook(WebhookCommandArgs),
    /// Run the companion API and the web console only.
    Api(ApiCommandArgs),
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
    /// Write TLS certificates for the webhook.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Manage the key ring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create, list and revoke API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Inside a container with delivery `exec`: fetch its values from the
    /// exec listener and run COMMAND with them in its environment.
    ///
    /// Settings come from AGYN_EXEC_URL, AGYN_EXEC_CA (or AGYN_EXEC_CA_FILE),
    /// AGYN_EXEC_CONTAINER, AGYN_EXEC_TOKEN_FILE and AGYN_EXEC_TIMEOUT, which
    /// the webhook sets; COMMAND replaces this process.
    Exec {
        /// The command and its arguments, after `--`.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Embedded default for a laptop: SQLite, a dev key ring, a dev TLS
    /// certificate and an admin token, all under --data-dir. Not for production.
    #[arg(long, env = "AGYN_DEV")]
    pub dev: bool,

    /// Where `--dev` keeps its database, key ring, certificate and admin token.
    #[arg(long, env = "AGYN_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub webhook: WebhookArgs,

    #[command(flatten)]
    pub api: ApiArgs,
}

/// `webhook`: its own flags and the shared ones, so that its help lists
/// nothing it ignores.
#[derive(Debug, Args)]
pub struct WebhookCommandArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub webhook: WebhookArgs,
}

/// `api`: its own flags and the shared ones.
#[derive(Debug, Args)]
pub struct ApiCommandArgs {
    #[command(flatten)]
    pub common: CommonArgs,

    #[command(flatten)]
    pub api: ApiArgs,
}

/// Everything a serving process is told; a role's command leaves the other
/// role's flags at their defaults.
#[derive(Debug, Clone)]
pub struct ServerArgs {
    pub common: CommonArgs,
    pub webhook: WebhookArgs,
    pub api: ApiArgs,
}

impl From<WebhookCommandArgs> for ServerArgs {
    fn from(args: WebhookCommandArgs) -> Self {
        ServerArgs {
            common: args.common,
            webhook: args.webhook,
            api: defaults(),
        }
    }
}

impl From<ApiCommandArgs> for ServerArgs {
    fn from(args: ApiCommandArgs) -> Self {
        ServerArgs {
            common: args.common,
            webhook: defaults(),
            api: args.api,
        }
    }
}

/// A flag group as its defaults make it, ignoring the environment: the
/// other role's `AGYN_*` variables mean nothing to this process.
fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None));
    let matches = command
        .try_get_matches_from(["defaults"])
        .expect("every flag of a group has a default or is optional");
    T::from_arg_matches(&matches).expect("defaults match their own flags")
}

/// Flags of every command that serves traffic.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    #[command(flatten)]
    pub keyring: KeyringArgs,

    /// Kubeconfig for the Kubernetes API; in-cluster configuration when absent.
    #[arg(long, env = "AGYN_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Timeout of each call to a secret provider.
    #[arg(long, env = "AGYN_PROVIDER_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub provider_timeout: Duration,

    /// Address ranges providers may never be reached at, besides the
    /// link-local and cloud metadata ones that are always refused
    /// (comma-separated, e.g. `10.0.0.0/8,fd00::/8`).
    #[arg(long, env = "AGYN_PROVIDER_DENY_CIDRS", value_delimiter = ',')]
    pub provider_deny_cidrs: Vec<Cidr>,

    /// When set, the only address ranges providers may be reached at
    /// (comma-separated); the deny list and the metadata ranges still apply.
    #[arg(long, env = "AGYN_PROVIDER_ALLOW_CIDRS", value_delimiter = ',')]
    pub provider_allow_cidrs: Vec<Cidr>,

    /// The service account token that Vault's Kubernetes auth logs in with.
    #[arg(
        long,
        env = "AGYN_SERVICE_ACCOUNT_TOKEN_FILE",
        default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    )]
    pub service_account_token_file: PathBuf,

    /// The token that AWS web identity (IRSA) logins present to STS; the
    /// EKS pod identity webhook mounts it here and names it in
    /// AWS_WEB_IDENTITY_TOKEN_FILE.
    #[arg(
        long,
        env = "AGYN_WEB_IDENTITY_TOKEN_FILE",
        default_value = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    )]
    pub web_identity_token_file: PathBuf,

    /// On SIGTERM, how long to keep serving while `/readyz` reports the
    /// shutdown, so that Kubernetes stops sending new requests first; then
    /// in-flight requests finish and the process exits. 0s under `--dev`
    /// unless set.
    #[arg(long, env = "AGYN_SHUTDOWN_DELAY", value_parser = humantime::parse_duration)]
    pub shutdown_delay: Option<Duration>,

    #[command(flatten)]
    pub log: LogArgs,
}

/// Flags of the admission webhook and its exec listener.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    #[command(flatten)]
    pub tls: TlsArgs,

    /// PEM CA bundle: the webhook then verifies client certificates chained
    /// to it, and `/mutate` answers only callers that presented one (the
    /// API server, through its AdmissionConfiguration). Reloaded when the
    /// file changes.
    #[arg(long, env = "AGYN_WEBHOOK_CLIENT_CA")]
    pub webhook_client_ca: Option<PathBuf>,

    /// How values reach a pod's containers when its
    /// `secrets.agyn.io/delivery` annotation does not say: `secret` (a
    /// Kubernetes Secret the env refers to), `exec` (a wrapper fetches them
    /// when the container starts) or `env` (inline, for an authenticated
    /// caller only). `serve --dev` defaults to `env`.
    #[arg(long, env = "AGYN_DEFAULT_DELIVERY", value_parser = delivery_parser())]
    pub default_delivery: Option<Delivery>,

    /// The ClusterRole that a RoleBinding in each bound namespace grants the
    /// product's service account; named in messages about missing access.
    #[arg(
        long,
        env = "AGYN_WORKLOAD_ROLE",
        default_value = "agyn-secrets-workload"
    )]
    pub workload_role: String,

    /// Address of the admission webhook (HTTPS): `0.0.0.0:8443`, or
    /// `127.0.0.1:8443` under `--dev`.
    #[arg(long, env = "AGYN_WEBHOOK_ADDR")]
    pub webhook_addr: Option<SocketAddr>,

    /// Threads that serve the webhook's connections, each with its own
    /// single-threaded runtime; by default two per CPU the process may use,
    /// or one per CPU when a CPU quota (a container's CPU limit) bounds it.
    #[arg(long, env = "AGYN_WEBHOOK_THREADS")]
    pub webhook_threads: Option<NonZeroUsize>,

    /// Whether delivery `exec` is offered: with `false` there is no exec
    /// listener, and pods that ask for `exec` are denied saying so.
    #[arg(long, env = "AGYN_EXEC_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub exec_enabled: bool,

    /// Address of the exec listener (HTTPS, the webhook's certificate, no
    /// client certificate): where the wrapper of delivery `exec` fetches a
    /// container's values with its pod's token. `0.0.0.0:8444`, or
    /// `127.0.0.1:8444` under `--dev`.
    #[arg(long, env = "AGYN_EXEC_ADDR")]
    pub exec_addr: Option<SocketAddr>,

    /// The exec listener's base URL as pods reach it; its host must be a
    /// name of the serving certificate. `https://agyn-secrets.agyn-secrets.svc:8444`,
    /// or `https://localhost:8444` under `--dev`.
    #[arg(long, env = "AGYN_EXEC_URL")]
    pub exec_url: Option<String>,

    /// PEM of the CA that signed the serving certificate, given to pods so
    /// that the wrapper trusts only it; `ca.crt` beside `--tls-cert` when
    /// absent.
    #[arg(long, env = "AGYN_EXEC_CA_FILE")]
    pub exec_ca: Option<PathBuf>,

    /// The image of the init container that installs the wrapper; it must
    /// hold `/usr/local/bin/agyn-secrets-exec`.
    #[arg(long, env = "AGYN_EXEC_IMAGE", default_value = concat!("ghcr.io/agyn/agyn-secrets:", env!("CARGO_PKG_VERSION")))]
    pub exec_image: String,

    /// Deadline for one admission, well below the webhook's timeoutSeconds.
    #[arg(long, env = "AGYN_ADMISSION_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub admission_timeout: Duration,

    /// How long a Secret the product manages (image pull Secrets and the
    /// Secrets of `secret` delivery) may stay unused before it is deleted.
    #[arg(long, env = "AGYN_MANAGED_SECRET_GRACE", default_value = "1h", value_parser = humantime::parse_duration)]
    pub managed_secret_grace: Duration,

    /// Bytes the webhook may hold at once across all requests and answers
    /// (bodies being read, answers being sent); a request beyond gets 503.
    /// Accepts a number of bytes or a size such as `32MiB`.
    #[arg(long, env = "AGYN_MAX_BYTES_IN_FLIGHT", default_value = "32MiB", value_parser = parse_size)]
    pub max_bytes_in_flight: usize,

    /// Most bytes of values one admission may inject: in the answer with
    /// `env` delivery (every value once per container), in the Secret with
    /// `secret` delivery. A pod asking for more is denied.
    #[arg(long, env = "AGYN_MAX_INJECTED_BYTES", default_value = "1MiB", value_parser = parse_size)]
    pub max_injected_bytes: usize,
}

/// Flags of the companion API and the console.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Address of the companion API and the web console (plain HTTP):
    /// `0.0.0.0:8080`, or `127.0.0.1:8080` under `--dev`.
    #[arg(long, env = "AGYN_API_ADDR")]
    pub api_addr: Option<SocketAddr>,

    /// Failed API authentications allowed per source address and minute
    /// before more failures get 429 (a valid token is always let through);
    /// 0 turns the limit off.
    #[arg(long, env = "AGYN_AUTH_FAILURES_PER_MINUTE", default_value_t = 10)]
    pub auth_failures_per_minute: u32,

    /// The shortest time between two restarts of one workload after
    /// rotations (`secrets.agyn.io/restart-on-rotation`); a rotation within
    /// it waits, and one restart then serves every secret that waited.
    #[arg(long, env = "AGYN_RESTART_MIN_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub restart_min_interval: Duration,

    /// Remote rotation detection: how often to ask each remote secret's
    /// provider for its current version (Vault KV v2 `current_version`, the
    /// AWS version staged `AWSCURRENT`; metadata only, never the value). A
    /// new version makes a new version of the secret and restarts the
    /// workloads that opted in. Off when absent.
    #[arg(long, env = "AGYN_ROTATION_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub rotation_poll_interval: Option<Duration>,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    #[arg(long, env = "AGYN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct KeyringArgs {
    /// Directory of key-encryption keys: one file per key id, and `primary`.
    #[arg(long, env = "AGYN_KEYRING_DIR")]
    pub keyring_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain of the webhook; reloaded when the file changes.
    #[arg(long, env = "AGYN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of the webhook; reloaded when the file changes.
    #[arg(long, env = "AGYN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format.
    #[arg(long, env = "AGYN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

pub use crate::admission::Delivery;
use crate::resolve::Cidr;

/// A size in bytes: a plain number, or a number with `KiB`, `MiB` or `GiB`.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 1048576, 512KiB or 32MiB"))?;
    let scale = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unit {other:?} is not one of KiB, MiB, GiB")),
    };
    number
        .checked_mul(scale)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?} is out of range"))
}

fn delivery_parser() -> impl clap::builder::TypedValueParser<Value = Delivery> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new([
        Delivery::Secret.as_str(),
        Delivery::Exec.as_str(),
        Delivery::Env.as_str(),
    ])
    .map(|text| {
        text.parse::<Delivery>()
            .expect("one of the possible values")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Write a CA and a serving certificate for `<service>.<namespace>.svc`.
    Generate {
        /// Name of the webhook's Service.
        #[arg(long, env = "AGYN_CERTS_SERVICE", default_value = "agyn-secrets")]
        service: String,
        /// Namespace of the webhook's Service.
        #[arg(long, env = "AGYN_CERTS_NAMESPACE", default_value = "agyn-secrets")]
        namespace: String,
        /// Output directory.
        #[arg(long, env = "AGYN_CERTS_OUT", default_value = "certs")]
        out: PathBuf,
        /// Also write a client certificate for the API server, and the
        /// kubeconfig and AdmissionConfiguration that make kube-apiserver
        /// present it to the webhook (under `<out>/kube-apiserver/`).
        #[arg(long, env = "AGYN_CERTS_CLIENT")]
        client: bool,
        /// Where the API server reads the files of `--client` from: the
        /// AdmissionConfiguration names the kubeconfig by this path.
        #[arg(
            long,
            env = "AGYN_CERTS_APISERVER_CONFIG_DIR",
            default_value = "/etc/kubernetes/agyn-secrets"
        )]
        apiserver_config_dir: PathBuf,
        /// Replace certificates already in the output directory. Without it
        /// nothing is written when any of the files exists: a new CA needs a
        /// new caBundle in the webhook configuration, and with `--client`
        /// new credentials for the API server.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key-encryption key into the key ring.
    Generate {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// Key id (the file name); a timestamped id when absent.
        #[arg(long, env = "AGYN_KEY_ID")]
        id: Option<String>,
        /// Also make the new key the primary key.
        #[arg(long, env = "AGYN_KEY_PRIMARY")]
        primary: bool,
    },
    /// Re-wrap every stored data key under the primary key.
    Rewrap {
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        keyring: KeyringArgs,
        #[command(flatten)]
        log: LogArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new API token (talks to the database directly).
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Make a platform-admin token (the only kind this command makes).
        #[arg(long, env = "AGYN_TOKEN_ADMIN", required = true)]
        admin: bool,
        /// A name for the token, shown in listings and the audit log.
        #[arg(long, env = "AGYN_TOKEN_NAME", default_value = "admin")]
        name: String,
    },
    /// List the platform-admin tokens: id, name and creation time, never
    /// the token itself (organization tokens are listed through the API).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
        /// List platform-admin tokens (the only kind this command lists).
        #[arg(long, required = true)]
        admin: bool,
    },
    /// Revoke a token by its id (as `token list --admin` or the API shows
    /// it), admin tokens included. Requests with it fail from then on.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The token's id: 32 hexadecimal characters.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, Delivery, parse_size};

    #[test]
    fn every_delivery_can_be_the_default() {
        for delivery in [Delivery::Secret, Delivery::Exec, Delivery::Env] {
            let cli = Cli::try_parse_from([
                "agyn-secrets",
                "webhook",
                "--default-delivery",
                delivery.as_str(),
            ])
            .unwrap();
            let Command::Webhook(args) = cli.command else {
                panic!("parsed as another command");
            };
            assert_eq!(args.webhook.default_delivery, Some(delivery));
        }
        let error = Cli::try_parse_from(["agyn-secrets", "webhook", "--default-delivery", "Env"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("[possible values: secret, exec, env]"),
            "{error}"
        );
    }

    #[test]
    fn a_role_leaves_the_other_roles_flags_at_their_defaults() {
        let cli =
            Cli::try_parse_from(["agyn-secrets", "api", "--api-addr", "127.0.0.1:9"]).unwrap();
        let Command::Api(args) = cli.command else {
            panic!("parsed as another command");
        };
        let server = super::ServerArgs::from(args);
        assert_eq!(server.api.api_addr, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(
            server.webhook.admission_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(server.webhook.workload_role, "agyn-secrets-workload");
        assert!(server.webhook.exec_enabled);

        let cli = Cli::try_parse_from(["agyn-secrets", "webhook"]).unwrap();
        let Command::Webhook(args) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(
            super::ServerArgs::from(args).api.auth_failures_per_minute,
            10
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1 GiB"), Ok(1 << 30));
        assert!(parse_size("32MB").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
    }
}
