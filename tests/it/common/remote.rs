//! What the suites of every provider kind share: an organization `acme`
//! bound to namespace `team-a`, its local and remote secrets, pods admitted
//! with an `env` annotation, the runtime `resolve` endpoint, the provider
//! check, and the server's metrics and logs.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Api, Reply, Server, apply_patch, fixture, sqlite};

pub const ORG: &str = "acme";
pub const NAMESPACE: &str = "team-a";

/// The product on SQLite and an owner of organization `acme`, bound to
/// namespace `team-a`.
pub async fn start(args: &[&str]) -> (Server, Api) {
    let server = Server::start_with(&sqlite(), args, &[]).await;
    let owner = server.seed(ORG, NAMESPACE, &[]).await;
    let owner = server.client_as(&owner);
    (server, owner)
}

pub async fn local_secret(owner: &Api, name: &str, value: &str) -> Value {
    owner
        .post(
            &format!("/v1/organizations/{ORG}/secrets"),
            json!({"name": name, "storage": "local", "value": value}),
        )
        .await
        .expect(201)
}

/// A remote secret `name` read from `path` (and `key`, when given) of
/// provider `provider` (an id or a name).
pub async fn remote_secret<'a>(
    owner: &Api,
    name: &str,
    provider: &str,
    path: &str,
    key: impl Into<Option<&'a str>>,
) {
    let mut body = json!({
        "name": name,
        "storage": "remote",
        "provider_id": provider,
        "remote_path": path,
    });
    if let Some(key) = key.into() {
        body["remote_key"] = json!(key);
    }
    owner
        .post(&format!("/v1/organizations/{ORG}/secrets"), body)
        .await
        .expect(201);
}

/// Sends a pod creation annotated with `env` and answers the env of its
/// `agent` container, or the denial message.
pub async fn admit(server: &Server, env: &str) -> Result<BTreeMap<String, String>, String> {
    let mut review = fixture("pod-no-env.json");
    review["request"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    review["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] = json!(env);
    let answer = server.review(&review).await;
    let response = &answer["response"];
    assert_eq!(response["uid"], review["request"]["uid"]);
    if response["allowed"] != true {
        return Err(response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned());
    }
    let pod = apply_patch(&review["request"]["object"], &answer);
    let agent = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "agent")
        .unwrap()
        .clone();
    Ok(agent["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

#[track_caller]
pub fn denied(result: Result<BTreeMap<String, String>, String>) -> String {
    match result {
        Ok(env) => panic!(
            "admitted with env names {:?}",
            env.keys().collect::<Vec<_>>()
        ),
        Err(message) => message,
    }
}

pub async fn runtime(server: &Server, owner: &Api) -> Api {
    let token = owner.create_token(ORG, "llm-proxy", "runtime").await;
    server.client_as(&token)
}

pub async fn resolve(runtime: &Api, names: &[&str]) -> Reply {
    runtime
        .post(
            &format!("/v1/organizations/{ORG}/resolve"),
            json!({"names": names, "consumer": "llm-provider/test"}),
        )
        .await
}

pub async fn check(api: &Api, provider_id: &str) -> Reply {
    api.post(
        &format!("/v1/organizations/{ORG}/providers/{provider_id}/check"),
        json!({}),
    )
    .await
}

pub async fn metrics(server: &Server) -> String {
    reqwest::get(format!("{}/metrics", server.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of counter `name` for provider label `provider`, 0 if absent.
pub async fn counter(server: &Server, name: &str, provider: &str) -> f64 {
    let label = format!("provider=\"{provider}\"");
    metrics(server)
        .await
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Provider errors of `kind` counted for provider label `provider`.
pub async fn errors(server: &Server, provider: &str, kind: &str) -> f64 {
    let labels = format!("agyn_provider_errors_total{{provider=\"{provider}\",kind=\"{kind}\"}} ");
    metrics(server)
        .await
        .lines()
        .filter_map(|l| l.strip_prefix(&labels)?.parse::<f64>().ok())
        .sum()
}

/// No value and no credential in the server's log (written at trace
/// level) nor in its metrics. The log is written by a thread of its own,
/// so this first waits until the provider's requests are in it.
pub async fn assert_never_exposed(server: &Server, secrets: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let logs = loop {
        let logs = server.logs();
        if logs.contains("Provider request") || std::time::Instant::now() > deadline {
            break logs;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let metrics = metrics(server).await;
    assert!(
        logs.contains("Provider request"),
        "no provider request was logged"
    );
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "a value or credential is in the log"
        );
        assert!(
            !metrics.contains(secret),
            "a value or credential is in /metrics"
        );
    }
}
