//! What each command does, after `main` has parsed the command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::admission::Delivery;
use crate::app::{App, ExecSettings, Settings};
use crate::cluster::Cluster;
use crate::config::{
    CertsCommand, Cli, Command, DatabaseArgs, KeyringArgs, KeysCommand, ServeArgs, ServerArgs,
    TokenCommand,
};
use crate::crypto::{KeyRingHandle, generate_key_file};
use crate::resolve::{NetPolicy, TokenFiles};
use crate::server::{self, AbortOnDrop, Roles};
use crate::store::{Role, Store, format_time};
use crate::{certs, telemetry};

/// Runs the parsed command. Only `exec` ends with a code other than success
/// without an error: its failures are written by the wrapper itself.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = match cli.command {
        Command::Exec { command } => return Ok(exec(command)),
        Command::Serve(args) => serve(args).await,
        Command::Webhook(args) => {
            let _log = telemetry::init(args.common.log.log_format);
            start(args.into(), Roles::Webhook, false).await
        }
        Command::Api(args) => {
            let _log = telemetry::init(args.common.log.log_format);
            start(args.into(), Roles::Api, false).await
        }
        Command::Migrate(args) => {
            let _log = telemetry::init(args.log.log_format);
            let store = connect(&args.database).await?;
            store.migrate().await.context("migrate the database")?;
            tracing::info!("Database migrations applied");
            Ok(())
        }
        Command::Certs(CertsCommand::Generate {
            service,
            namespace,
            out,
            client,
            apiserver_config_dir,
            force,
        }) => {
            if !force {
                certs::refuse_to_replace(&out, client)?;
            }
            let mut written = certs::generate(&service, &namespace, &out, client)?;
            if client {
                written.extend(certs::write_apiserver_config(
                    &service,
                    &namespace,
                    &out,
                    &apiserver_config_dir,
                )?);
            }
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Generate {
            keyring,
            id,
            primary,
        }) => {
            let dir = keyring_dir(&keyring)?;
            let id = generate_key_file(&dir, id.as_deref(), primary)
                .with_context(|| format!("write a key into {}", dir.display()))?;
            println!("{id}");
            Ok(())
        }
        Command::Keys(KeysCommand::Rewrap {
            database,
            keyring,
            log,
        }) => {
            let _log = telemetry::init(log.log_format);
            let keys = load_keys(&keyring_dir(&keyring)?)?;
            require_existing_database(&database)?;
            let store = connect(&database).await?;
            store.migrate().await?;
            let count = store.rewrap_all(&keys.current()).await?;
            println!(
                "re-wrapped {count} data key(s) under primary key {:?}",
                keys.current().primary_id()
            );
            Ok(())
        }
        Command::Token(TokenCommand::Create {
            database,
            admin,
            name,
        }) => {
            if !admin {
                bail!("only admin tokens are made here; organization tokens come from the API");
            }
            require_existing_database(&database)?;
            let store = connect(&database).await?;
            store.migrate().await?;
            let (_, token) = store.create_token(None, &name, Role::Admin, "cli").await?;
            println!("{}", token.expose());
            Ok(())
        }
        Command::Token(TokenCommand::List { database, admin }) => {
            if !admin {
                bail!(
                    "only admin tokens are listed here; organization tokens are listed through the API"
                );
            }
            require_existing_database(&database)?;
            let store = connect(&database).await?;
            store.migrate().await?;
            print_admin_tokens(&store).await
        }
        Command::Token(TokenCommand::Revoke { database, id }) => {
            require_existing_database(&database)?;
            let store = connect(&database).await?;
            store.migrate().await?;
            if !store.delete_token(None, &id, "cli").await? {
                bail!(
                    "no token has the id {id:?}; `token list --admin` shows the admin tokens' ids"
                );
            }
            println!("revoked token {id}");
            Ok(())
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// Prints the admin tokens as a table, every page of them.
async fn print_admin_tokens(store: &Store) -> anyhow::Result<()> {
    let mut tokens = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store.list_tokens(None, cursor.as_deref(), 500).await?;
        tokens.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if tokens.is_empty() {
        println!("no admin tokens; `token create --admin` makes one");
        return Ok(());
    }
    let width = tokens
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    println!("{:<32}  {:<width$}  CREATED", "ID", "NAME");
    for token in tokens {
        println!(
            "{:<32}  {:<width$}  {}",
            token.id,
            token.name,
            format_time(token.created_at)
        );
    }
    Ok(())
}

/// `agyn-secrets exec -- COMMAND`: the wrapper of delivery `exec`, the same
/// code as the static binary that pods run. Returns only when COMMAND could
/// not be started, after the wrapper has written why.
fn exec(command: Vec<OsString>) -> ExitCode {
    let mut args = Vec::with_capacity(command.len() + 1);
    args.push(OsString::from("--"));
    args.extend(command);
    agyn_secrets_exec::exec_main(args)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let _log = telemetry::init(args.common.log.log_format);
    let mut server = ServerArgs {
        common: args.common,
        webhook: args.webhook,
        api: args.api,
    };
    if args.dev {
        crate::dev::prepare(&args.data_dir, &mut server).await?;
    }
    start(server, Roles::Both, args.dev).await
}

/// Starts the listeners of `roles`. `dev` allows `env` delivery without a
/// verified client certificate and makes it the default.
async fn start(args: ServerArgs, roles: Roles, dev: bool) -> anyhow::Result<()> {
    if args.webhook.default_delivery == Some(Delivery::Exec) && !args.webhook.exec_enabled {
        bail!(
            "--default-delivery exec needs the exec listener; drop --exec-enabled=false or choose another default"
        );
    }
    let keys = load_keys(&keyring_dir(&args.common.keyring)?)?;
    let store = connect(&args.common.database).await?;
    store.migrate().await.context("migrate the database")?;
    let default_delivery =
        args.webhook
            .default_delivery
            .unwrap_or(if dev { Delivery::Env } else { Delivery::Secret });
    let settings = Settings {
        admission_timeout: args.webhook.admission_timeout,
        provider_timeout: args.common.provider_timeout,
        auth_failures_per_minute: args.api.auth_failures_per_minute,
        client_auth: args.webhook.webhook_client_ca.is_some(),
        default_delivery,
        env_without_client_auth: dev,
        max_bytes_in_flight: args.webhook.max_bytes_in_flight,
        max_injected_bytes: args.webhook.max_injected_bytes,
        provider_net: NetPolicy {
            deny: args.common.provider_deny_cidrs.clone(),
            allow: args.common.provider_allow_cidrs.clone(),
        },
        token_files: TokenFiles {
            service_account: args.common.service_account_token_file.clone(),
            web_identity: args.common.web_identity_token_file.clone(),
        },
        shutdown_delay: args.common.shutdown_delay.unwrap_or(if dev {
            Duration::ZERO
        } else {
            Duration::from_secs(5)
        }),
        exec: exec_settings(&args)?,
        restart_min_interval: args.api.restart_min_interval,
        rotation_poll_interval: args.api.rotation_poll_interval,
    };
    if roles != Roles::Api {
        log_delivery(&settings);
    }
    let cluster = Cluster::connect(
        args.common.kubeconfig.as_deref(),
        args.common.provider_timeout,
        args.webhook.managed_secret_grace,
        &args.webhook.workload_role,
    )
    .await;
    let _cache_listener = store.enable_cache().map(AbortOnDrop);
    let app = App::new(store, keys, settings, cluster);
    server::run(app, &args, roles).await
}

/// What pods with delivery `exec` are given. The CA is `--exec-ca`, or
/// `ca.crt` beside the serving certificate; without either, `exec`
/// delivery is refused with a message that says so.
fn exec_settings(args: &ServerArgs) -> anyhow::Result<ExecSettings> {
    let defaults = ExecSettings::default();
    let url = args.webhook.exec_url.clone().unwrap_or(defaults.url);
    let parsed = reqwest::Url::parse(&url)
        .ok()
        .filter(|u| u.scheme() == "https" && u.host().is_some() && matches!(u.path(), "" | "/"));
    if parsed.is_none() {
        bail!(
            "--exec-url {url:?} must be an https:// base URL such as https://agyn-secrets.agyn-secrets.svc:8444"
        );
    }
    let beside_cert = args
        .webhook
        .tls
        .tls_cert
        .as_deref()
        .and_then(Path::parent)
        .map(|dir| dir.join("ca.crt"))
        .filter(|path| path.exists());
    let ca_pem = match args.webhook.exec_ca.as_ref().or(beside_cert.as_ref()) {
        None => None,
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("read the exec CA {}", path.display()))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!("the exec CA {} holds no PEM certificate", path.display());
            }
            Some(pem)
        }
    };
    Ok(ExecSettings {
        enabled: args.webhook.exec_enabled,
        url: url.trim_end_matches('/').to_owned(),
        ca_pem,
        image: args.webhook.exec_image.clone(),
    })
}

/// Says at start who may get values in the webhook's answer.
fn log_delivery(settings: &Settings) {
    let default = settings.default_delivery.as_str();
    if settings.env_without_client_auth {
        tracing::warn!(
            default_delivery = default,
            "Dev mode: \"env\" delivery puts values in the webhook's answer for any caller, without a client certificate"
        );
    } else if settings.client_auth {
        tracing::info!(
            default_delivery = default,
            "Webhook callers must present a client certificate; \"env\" delivery is allowed for them"
        );
    } else {
        tracing::info!(
            default_delivery = default,
            "No --webhook-client-ca: \"env\" delivery is refused; values reach pods through Secrets"
        );
    }
}

fn keyring_dir(args: &KeyringArgs) -> anyhow::Result<PathBuf> {
    args.keyring_dir
        .clone()
        .context("no key ring: set --keyring-dir (AGYN_KEYRING_DIR), or use `serve --dev`")
}

/// Loads the key ring, refusing to go on without a usable primary key.
pub fn load_keys(dir: &Path) -> anyhow::Result<KeyRingHandle> {
    let keys = KeyRingHandle::load(dir).with_context(|| {
        format!(
            "cannot start without a usable primary key in {}",
            dir.display()
        )
    })?;
    tracing::info!(dir = %dir.display(), primary = keys.current().primary_id(), "Key ring loaded");
    Ok(keys)
}

async fn connect(args: &DatabaseArgs) -> anyhow::Result<Store> {
    let url = args
        .database_url
        .as_deref()
        .context("no database: set --database-url (AGYN_DATABASE_URL), or use `serve --dev`")?;
    Store::connect(url)
        .await
        .with_context(|| format!("connect to the database at {}", redact_url(url)))
}

/// `token create` and `keys rewrap` work on a database a server already
/// uses: a mistyped SQLite path must not make an empty one (and print a
/// token no server accepts, or re-wrap nothing). Only `serve` and `migrate`
/// create a database.
fn require_existing_database(args: &DatabaseArgs) -> anyhow::Result<()> {
    if let Some(path) = args.database_url.as_deref().and_then(sqlite_path) {
        anyhow::ensure!(
            Path::new(path).exists(),
            "no SQLite database at {path}; check --database-url (AGYN_DATABASE_URL). \
             Only `serve` and `migrate` make a database"
        );
    }
    Ok(())
}

/// The file of a `sqlite:` URL; `None` for other databases and in-memory ones.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// An error and its causes on one line, each said once: a cause whose text
/// the line already holds (a message that quotes its source) is left out.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// A database URL with its password replaced, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:<redacted>{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{error_chain, redact_url, sqlite_path};

    #[test]
    fn each_cause_is_said_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("database is unavailable: {0}")]
        struct Unavailable(#[source] std::io::Error);
        let io = std::io::Error::other("connection refused");
        let error =
            anyhow::Error::new(Unavailable(io)).context("connect to the database at db:5432");
        assert_eq!(
            error_chain(&error),
            "connect to the database at db:5432: database is unavailable: connection refused"
        );
        let plain = anyhow::anyhow!("no database").context("start");
        assert_eq!(error_chain(&plain), "start: no database");
    }

    #[test]
    fn sqlite_files_are_found_in_their_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/agyn.db?mode=rwc"),
            Some("data/agyn.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/agyn.db"),
            Some("/var/lib/agyn.db")
        );
        assert_eq!(sqlite_path("sqlite:agyn.db"), Some("agyn.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://agyn@db/agyn"), None);
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://agyn:s3cret@db:5432/agyn"),
            "postgres://agyn:<redacted>@db:5432/agyn"
        );
        assert_eq!(redact_url("sqlite://data/agyn.db"), "sqlite://data/agyn.db");
        assert_eq!(
            redact_url("postgres://agyn@db/agyn"),
            "postgres://agyn@db/agyn"
        );
    }
}
