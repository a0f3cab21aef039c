//! `terraform-provider-agyn`: started by Terraform, never by hand. It prints
//! the plugin handshake on stdout and serves Terraform plugin protocol 6.

#![forbid(unsafe_code)]

#[tokio::main]
async fn main() -> std::process::ExitCode {
    rustls::crypto::ring::default_provider()
        .install_default()
        .expect("install the rustls crypto provider once");
    match tf_provider::serve("agyn", terraform_provider_agyn::AgynProvider::default()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("terraform-provider-agyn: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
