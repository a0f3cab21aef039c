//! `serve --dev`: everything a laptop needs, under one data directory.

use std::path::Path;

use anyhow::Context;

use crate::config::ServerArgs;
use crate::crypto::generate_key_file;
use crate::store::{Role, Store};

const BANNER: &str = "\
************************************************************************
*  agyn-secrets is running in DEV MODE. NOT FOR PRODUCTION.            *
*  The key ring, TLS certificate and admin token live unprotected in   *
*  the data directory. Use `serve` with a mounted key ring instead.    *
************************************************************************";

/// Fills in the database, key ring and TLS files of `server` from
/// `data_dir`, creating what is missing. Started again on the same directory,
/// everything is reused.
pub async fn prepare(data_dir: &Path, server: &mut ServerArgs) -> anyhow::Result<()> {
    eprintln!("{BANNER}");
    tracing::warn!(data_dir = %data_dir.display(), "Dev mode: not for production");
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("create the data directory {}", data_dir.display()))?;

    let keyring = server
        .common
        .keyring
        .keyring_dir
        .get_or_insert_with(|| data_dir.join("keyring"))
        .clone();
    if !keyring.join("primary").exists() {
        let id = generate_key_file(&keyring, Some("dev-1"), true)
            .with_context(|| format!("create a dev key ring in {}", keyring.display()))?;
        tracing::info!(dir = %keyring.display(), id, "Created a dev key ring");
    }

    if server.webhook.tls.tls_cert.is_none() && server.webhook.tls.tls_key.is_none() {
        let (cert, key) = crate::certs::ensure_dev_certificate(&data_dir.join("tls"))?;
        server.webhook.tls.tls_cert = Some(cert);
        server.webhook.tls.tls_key = Some(key);
    }
    // Every listener on this machine only: the API is plain HTTP and dev
    // mode hands out values to any caller.
    let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    server.api.api_addr.get_or_insert(loopback(8080));
    server.webhook.webhook_addr.get_or_insert(loopback(8443));
    server.webhook.exec_addr.get_or_insert(loopback(8444));
    server
        .webhook
        .exec_url
        .get_or_insert_with(|| "https://localhost:8444".to_owned());

    let url = server
        .common
        .database
        .database_url
        .get_or_insert_with(|| format!("sqlite://{}", data_dir.join("agyn-secrets.db").display()))
        .clone();

    let token_file = data_dir.join("admin-token");
    if !token_file.exists() {
        let store = Store::connect(&url)
            .await
            .context("open the dev database")?;
        store.migrate().await.context("migrate the dev database")?;
        let (_, token) = store
            .create_token(None, "dev-admin", Role::Admin, "dev")
            .await?;
        crate::certs::write_file(&token_file, &format!("{}\n", token.expose()), 0o600)
            .with_context(|| format!("write {}", token_file.display()))?;
        store.close().await;
        println!(
            "Admin token (shown once; also stored in {}):",
            token_file.display()
        );
        println!("{}", token.expose());
    } else {
        tracing::info!(file = %token_file.display(), "Admin token kept from an earlier start");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::{Cli, Command, ServerArgs};

    fn serve_args(line: &[&str]) -> ServerArgs {
        let Command::Serve(args) = Cli::try_parse_from(line).unwrap().command else {
            panic!("parsed as another command");
        };
        ServerArgs {
            common: args.common,
            webhook: args.webhook,
            api: args.api,
        }
    }

    #[tokio::test]
    async fn every_listener_is_on_loopback_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = serve_args(&["agyn-secrets", "serve", "--dev"]);
        super::prepare(dir.path(), &mut server).await.unwrap();
        let addrs = [
            server.api.api_addr,
            server.webhook.webhook_addr,
            server.webhook.exec_addr,
        ];
        assert_eq!(
            addrs.map(|a| a.unwrap().to_string()),
            ["127.0.0.1:8080", "127.0.0.1:8443", "127.0.0.1:8444"]
        );

        let mut told = serve_args(&[
            "agyn-secrets",
            "serve",
            "--dev",
            "--api-addr",
            "0.0.0.0:9090",
        ]);
        super::prepare(dir.path(), &mut told).await.unwrap();
        assert_eq!(told.api.api_addr.unwrap().to_string(), "0.0.0.0:9090");
    }
}
