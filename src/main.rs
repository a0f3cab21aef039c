use clap::Parser;

// The admission path allocates many small, short-lived objects (JSON values,
// patch operations); mimalloc handles that pattern far better than glibc's
// allocator, which spent a third of the webhook's time in malloc and free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // aws-lc-rs becomes the process's rustls provider before any TLS
    // server or client (reqwest's, kube's, sqlx's) is built.
    agyn_secrets::tls::provider();
    let cli = agyn_secrets::config::Cli::parse();
    match agyn_secrets::cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", agyn_secrets::cli::error_chain(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
