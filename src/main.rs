use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("install the rustls crypto provider once");
    let cli = agyn_secrets::config::Cli::parse();
    match agyn_secrets::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
