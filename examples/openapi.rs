//! Prints the API's OpenAPI document, as `GET /openapi.json` serves it:
//! `make openapi` writes it to `docs/openapi.json`.

fn main() {
    print!("{}", agyn_secrets::api::document());
}
