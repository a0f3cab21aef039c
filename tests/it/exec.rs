//! Delivery `exec`: the patch (installer, token projection, settings,
//! wrapped commands, and no value), its idempotence, and the exec listener
//! that answers a container's values to its pod's own bound token, checked
//! with a TokenReview against a loopback Kubernetes API.

use crate::common;
use crate::common::kube as kube_api;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Server, WEBHOOK_HOST, apply_patch, fixture, needs, patch_ops, sqlite};
use kube_api::FakeApi;
use serde_json::{Value, json};

const STRIPE: &str = "sk_live_51HqExecDeliveryValue";
const DB: &str = "pg-pass-exec-delivery-7e21";
const OTHER_ORG_VALUE: &str = "globex-only-value-3f9a21";
const EXEC_URL: &str = "https://agyn-secrets.agyn-secrets.svc:8444";
const WRAPPER: &str = "/agyn-secrets/agyn-secrets";

/// `serve` as in a cluster with a loopback Kubernetes API; `acme` bound to
/// `team-a` with two secrets, `globex` bound to `team-b` with one.
async fn setup(extra: &[&str]) -> (Server, FakeApi, tempfile::TempDir) {
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--exec-url",
        EXEC_URL,
    ];
    args.extend_from_slice(extra);
    let server = Server::start_production(true, &sqlite(), &args, &[]).await;
    server
        .seed(
            "acme",
            "team-a",
            &[("stripe-api-key", STRIPE), ("db-password", DB)],
        )
        .await;
    server
        .seed("globex", "team-b", &[("globex-key", OTHER_ORG_VALUE)])
        .await;
    (server, api, dir)
}

/// A review of a pod of ReplicaSet `agent-7d9f8c6b5d` with delivery `exec`
/// and a command in both containers.
fn review(uid: &str) -> Value {
    let mut review = fixture("pod-no-env.json");
    review["request"]["uid"] = json!(uid);
    let object = &mut review["request"]["object"];
    object["metadata"]["annotations"]["secrets.agyn.io/delivery"] = json!("exec");
    object["spec"]["initContainers"][0]["command"] = json!(["/bin/ship", "--once"]);
    object["spec"]["containers"][0]["command"] = json!(["/app/agent"]);
    object["spec"]["containers"][0]["args"] = json!(["--serve", "--port=8080"]);
    review
}

async fn admit(server: &Server, review: &Value) -> Value {
    let response = server
        .webhook_client()
        .post(format!("{}/mutate", server.webhook))
        .json(review)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    common::record_webhook_answer(&answer);
    answer
}

fn leaks(text: &str, value: &str) -> bool {
    let json = serde_json::to_string(value).unwrap();
    text.contains(value)
        || text.contains(&json[1..json.len() - 1])
        || text.contains(&STANDARD.encode(value))
}

/// A client of the exec listener, trusting the server's CA.
fn exec_client(server: &Server) -> reqwest::Client {
    common::http_builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&server.ca_pem()).unwrap())
        .resolve(
            WEBHOOK_HOST,
            std::net::SocketAddr::from(([127, 0, 0, 1], server.exec_port)),
        )
        .build()
        .unwrap()
}

/// `POST /v1/exec/env` for `container` with `token`; status and body.
async fn fetch(server: &Server, token: Option<&str>, container: &str) -> (u16, Value) {
    let mut request = exec_client(server)
        .post(format!(
            "https://{WEBHOOK_HOST}:{}/v1/exec/env",
            server.exec_port
        ))
        .json(&json!({ "container": container }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    if status != 200 {
        common::record_response("POST", "/v1/exec/env", status, &text);
    }
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

/// Admits `review`, stores the patched pod in the stand-in as the API
/// server would, and returns the pod's name and uid.
async fn admitted_pod(
    server: &Server,
    api: &FakeApi,
    namespace: &str,
    review: &Value,
) -> (String, String) {
    let answer = admit(server, review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let pod = apply_patch(&review["request"]["object"], &answer);
    let name = format!(
        "{}x2k9p",
        pod["metadata"]["generateName"].as_str().unwrap_or("pod-")
    );
    let mut stored = pod;
    stored["metadata"]["name"] = json!(name);
    let mut cluster = api.cluster();
    cluster.add_pod_object(namespace, stored);
    let uid = cluster.pod_uid(namespace, &name);
    (name, uid)
}

#[tokio::test]
async fn the_patch_wraps_each_command_and_carries_no_value() {
    let (server, _api, _dir) = setup(&[]).await;
    let review = review("3c1f0e2a-exec-1");
    let answer = admit(&server, &review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let text = answer.to_string();
    let ops = serde_json::to_string(&patch_ops(&answer)).unwrap();
    for value in [STRIPE, DB] {
        assert!(
            !leaks(&text, value) && !leaks(&ops, value),
            "a value is in the answer"
        );
    }

    let pod = apply_patch(&review["request"]["object"], &answer);
    let spec = &pod["spec"];
    // The installer runs first, from the product's image, without privileges.
    let installer = &spec["initContainers"][0];
    assert_eq!(installer["name"], "agyn-secrets-exec");
    assert_eq!(
        installer["command"],
        json!([
            "/usr/local/bin/agyn-secrets-exec",
            "install",
            "/agyn-secrets"
        ])
    );
    assert_eq!(
        installer["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(installer["securityContext"]["runAsNonRoot"], true);
    // The wrapper's volume is in memory; the token is for the exec listener only.
    let volumes: Vec<&Value> = spec["volumes"].as_array().unwrap().iter().collect();
    let volume = |name: &str| *volumes.iter().find(|v| v["name"] == name).unwrap();
    assert_eq!(volume("agyn-secrets-exec")["emptyDir"]["medium"], "Memory");
    let token =
        &volume("agyn-secrets-exec-token")["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "agyn-secrets");
    assert_eq!(token["expirationSeconds"], 600);
    assert!(
        volumes.iter().any(|v| v["name"] == "kube-api-access-x7k2p"),
        "volumes kept"
    );

    let shipper = &spec["initContainers"][1];
    let agent = &spec["containers"][0];
    assert_eq!(shipper["name"], "log-shipper");
    assert_eq!(
        shipper["command"],
        json!([WRAPPER, "exec", "--", "/bin/ship", "--once"])
    );
    assert_eq!(
        agent["command"],
        json!([WRAPPER, "exec", "--", "/app/agent"])
    );
    assert_eq!(
        agent["args"],
        json!(["--serve", "--port=8080"]),
        "args untouched"
    );
    for (container, name) in [(shipper, "log-shipper"), (agent, "agent")] {
        let env: Vec<(String, String)> = container["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                assert!(e["valueFrom"].is_null(), "{e}");
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let names: Vec<&str> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["AGYN_EXEC_URL", "AGYN_EXEC_CA", "AGYN_EXEC_CONTAINER"],
            "{name}"
        );
        assert_eq!(env[0].1, EXEC_URL);
        assert_eq!(env[1].1.as_bytes(), server.ca_pem().as_slice());
        assert_eq!(env[2].1, name);
        let mounts: Vec<(&str, &str, bool)> = container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["mountPath"].as_str().unwrap(),
                    m["readOnly"] == true,
                )
            })
            .collect();
        assert!(
            mounts.contains(&("agyn-secrets-exec", "/agyn-secrets", true)),
            "{mounts:?}"
        );
        assert!(mounts.contains(&(
            "agyn-secrets-exec-token",
            "/var/run/secrets/agyn-secrets",
            true
        )));
    }
    assert_eq!(
        pod["metadata"]["annotations"]["secrets.agyn.io/injected"],
        "db-password@1,stripe-api-key@1"
    );

    // Reviewed again, as with reinvocationPolicy IfNeeded: nothing to add,
    // and never a wrapper around the wrapper.
    let mut again = review.clone();
    again["request"]["object"] = pod.clone();
    again["request"]["uid"] = json!("3c1f0e2a-exec-2");
    let answer = admit(&server, &again).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(patch_ops(&answer).is_empty(), "{:?}", patch_ops(&answer));
}

#[tokio::test]
async fn a_container_without_a_command_is_denied_with_the_fix() {
    let (server, _api, _dir) = setup(&[]).await;
    let mut review = review("3c1f0e2a-exec-3");
    review["request"]["object"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("command");
    let answer = admit(&server, &review).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "delivery \"exec\" wraps each container's command, and container \"agent\" has no command in the pod spec; \
         set `command` to the image's entrypoint (docker inspect shows it as Entrypoint), or use delivery \"secret\""
    );
}

#[tokio::test]
async fn the_exec_listener_answers_only_the_pod_its_token_names() {
    let (server, api, _dir) = setup(&[]).await;
    let (pod, uid) = admitted_pod(&server, &api, "team-a", &review("3c1f0e2a-exec-4")).await;
    let token = |audiences: &[&str], bound: Option<(&str, &str)>| {
        api.cluster()
            .issue_token("team-a", "default", audiences, bound)
    };
    let good = token(&["agyn-secrets"], Some((&pod, &uid)));

    let (status, body) = fetch(&server, Some(&good), "agent").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"env": {"STRIPE_API_KEY": STRIPE, "DB_PASSWORD": DB}})
    );
    let (status, _) = fetch(&server, Some(&good), "log-shipper").await;
    assert_eq!(status, 200);

    // Refused, with no value: no token, a token of someone else's, one for
    // another audience, one not bound to a pod, one for another uid.
    let cases = [
        (
            None,
            "agent",
            401,
            "send the pod's token as Authorization: Bearer",
        ),
        (
            Some("not-a-token".to_owned()),
            "agent",
            401,
            "did not accept this token for audience \"agyn-secrets\"",
        ),
        (
            Some(token(
                &["https://kubernetes.default.svc"],
                Some((&pod, &uid)),
            )),
            "agent",
            401,
            "did not accept this token",
        ),
        (
            Some(token(&["agyn-secrets"], None)),
            "agent",
            401,
            "not bound to a pod",
        ),
        (
            Some(token(&["agyn-secrets"], Some((&pod, "0b7e3f1a-old-uid")))),
            "agent",
            401,
            "has another uid",
        ),
        (
            Some(good.clone()),
            "sidecar",
            403,
            "asks for no secrets in a container named \"sidecar\"",
        ),
        (
            Some(good.clone()),
            "agyn-secrets-exec",
            403,
            "asks for no secrets in a container named",
        ),
    ];
    for (token, container, status, message) in cases {
        let (got, body) = fetch(&server, token.as_deref(), container).await;
        assert_eq!(got, status, "{message}: {body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{text}");
        assert!(!leaks(&body.to_string(), STRIPE) && !leaks(&body.to_string(), DB));
    }

    // A pod that asks for delivery `secret` gets nothing here.
    let mut secret_review = review("3c1f0e2a-exec-5");
    secret_review["request"]["object"]["metadata"]["generateName"] = json!("batch-");
    {
        let mut cluster = api.cluster();
        let mut stored = secret_review["request"]["object"].clone();
        stored["metadata"]["name"] = json!("batch-1");
        stored["metadata"]["annotations"]["secrets.agyn.io/delivery"] = json!("secret");
        cluster.add_pod_object("team-a", stored);
    }
    let batch_uid = api.cluster().pod_uid("team-a", "batch-1");
    let batch = token(&["agyn-secrets"], Some(("batch-1", &batch_uid)));
    let (status, body) = fetch(&server, Some(&batch), "agent").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("asks for delivery \"secret\"")
    );

    // Another organization's pod cannot reach acme's secrets by name.
    let mut other = review("3c1f0e2a-exec-6");
    other["request"]["namespace"] = json!("team-b");
    other["request"]["object"]["metadata"]["namespace"] = json!("team-b");
    other["request"]["object"]["metadata"]["annotations"]["secrets.agyn.io/env"] =
        json!("KEY=globex-key");
    let (globex_pod, globex_uid) = admitted_pod(&server, &api, "team-b", &other).await;
    let globex = api.cluster().issue_token(
        "team-b",
        "default",
        &["agyn-secrets"],
        Some((&globex_pod, &globex_uid)),
    );
    let (status, body) = fetch(&server, Some(&globex), "agent").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"env": {"KEY": OTHER_ORG_VALUE}}));
    api.cluster()
        .pods
        .get_mut(&("team-b".to_owned(), globex_pod.clone()))
        .unwrap()["metadata"]["annotations"]["secrets.agyn.io/env"] = json!("KEY=stripe-api-key");
    let (status, body) = fetch(&server, Some(&globex), "agent").await;
    assert_ne!(status, 200, "{body}");
    assert!(!leaks(&body.to_string(), STRIPE), "{body}");

    // A deleted pod's token earns nothing.
    api.cluster()
        .pods
        .remove(&("team-a".to_owned(), pod.clone()));
    let (status, body) = fetch(&server, Some(&good), "agent").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no longer exists")
    );

    // Each answer is audited as the pod.
    let audit = server
        .client()
        .get("/v1/organizations/acme/audit?limit=100")
        .await
        .expect(200);
    let actor = format!("pod:team-a/{pod}");
    let resolves = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "secret.resolve" && e["actor"] == actor.as_str())
        .count();
    assert_eq!(resolves, 4, "two containers, two secrets each: {audit}");
    let logs = server.logs();
    for value in [STRIPE, DB, OTHER_ORG_VALUE, good.as_str()] {
        assert!(!logs.contains(value), "a value or token is in the log");
    }
}

#[tokio::test]
async fn a_pod_that_calls_too_often_is_told_to_wait() {
    let (server, api, _dir) = setup(&[]).await;
    let (pod, uid) = admitted_pod(&server, &api, "team-a", &review("3c1f0e2a-exec-7")).await;
    let token =
        api.cluster()
            .issue_token("team-a", "default", &["agyn-secrets"], Some((&pod, &uid)));
    let mut statuses = Vec::new();
    for _ in 0..31 {
        statuses.push(fetch(&server, Some(&token), "agent").await.0);
    }
    assert!(statuses[..30].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[30], 429);
}

#[tokio::test]
async fn with_exec_turned_off_pods_that_ask_for_it_are_denied_and_nothing_listens() {
    let (server, _api, _dir) = setup(&["--exec-enabled=false"]).await;
    let answer = admit(&server, &review("3c1f0e2a-exec-8")).await;
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(
        answer["response"]["status"]["message"],
        "delivery \"exec\" is turned off on this server (--exec-enabled=false); use delivery \"secret\""
    );
    let connected = std::net::TcpStream::connect(std::net::SocketAddr::from((
        [127, 0, 0, 1],
        server.exec_port,
    )));
    assert!(connected.is_err(), "the exec port is open");
}

/// The static wrapper, built by `scripts/build-exec.sh` into its own target
/// directory (so this never waits on the cargo running the tests).
fn static_wrapper() -> std::path::PathBuf {
    let output = std::process::Command::new("scripts/build-exec.sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cannot run scripts/build-exec.sh");
    assert!(
        output.status.success(),
        "scripts/build-exec.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().expect("no path printed").into()
}

/// Runs `argv` in `root` with only `env`, as the kubelet would start it.
async fn run_in_root(
    root: &std::path::Path,
    argv: &[String],
    env: &[(String, String)],
) -> std::process::Output {
    let chroot = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain(["/usr/sbin".into()])
        .map(|dir| dir.join("chroot"))
        .find(|path| path.is_file())
        .expect("chroot is not installed (Debian: coreutils)");
    tokio::process::Command::new(chroot)
        .arg(root)
        .args(argv)
        .env_clear()
        .envs(env.iter().map(|(name, value)| (name, value)))
        .output()
        .await
        .expect("cannot run chroot")
}

/// The whole path as in a cluster: admission; the installer init container
/// as the patch gives it; then the wrapped command with the patch's settings
/// and the pod's bound token. The root holds only the static wrapper,
/// busybox and the files the kubelet would mount, as a distroless or scratch
/// image would.
#[needs(busybox, root)]
#[tokio::test]
async fn the_wrapped_command_starts_with_the_values_in_an_image_without_libc() {
    if !common::is_root() {
        common::skip("the exec end-to-end test runs the wrapper under chroot, which needs root");
        return;
    }
    if common::tools::busybox().is_none() {
        common::skip("the exec end-to-end test needs /bin/busybox (Debian: busybox-static)");
        return;
    }
    let (server, api, _dir) = setup(&[]).await;
    let mut review = review("3c1f0e2a-exec-9");
    let agent = &mut review["request"]["object"]["spec"]["containers"][0];
    agent["command"] = json!(["/bin/busybox", "env"]);
    agent.as_object_mut().unwrap().remove("args");
    let (name, uid) = admitted_pod(&server, &api, "team-a", &review).await;
    let pod = api.cluster().pods[&("team-a".to_owned(), name.clone())].clone();
    let token =
        api.cluster()
            .issue_token("team-a", "default", &["agyn-secrets"], Some((&name, &uid)));
    common::record_secret(&token);

    let root = tempfile::tempdir().unwrap();
    let place = |path: &str, bytes: &[u8], mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        let target = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, bytes).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    place(
        "/usr/local/bin/agyn-secrets-exec",
        &std::fs::read(static_wrapper()).unwrap(),
        0o755,
    );
    place(
        "/bin/busybox",
        &std::fs::read("/bin/busybox").unwrap(),
        0o755,
    );
    place(
        "/etc/hosts",
        format!("127.0.0.1 localhost\n127.0.0.1 {WEBHOOK_HOST}\n").as_bytes(),
        0o644,
    );
    place("/etc/resolv.conf", b"nameserver 127.0.0.1\n", 0o644);
    place(
        "/var/run/secrets/agyn-secrets/token",
        token.as_bytes(),
        0o644,
    );
    std::fs::create_dir_all(root.path().join("agyn-secrets")).unwrap();

    let argv = |container: &Value| -> Vec<String> {
        serde_json::from_value(container["command"].clone()).unwrap()
    };
    let installer = &pod["spec"]["initContainers"][0];
    let installed = run_in_root(root.path(), &argv(installer), &[]).await;
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );

    // The patch's settings, with the listener's port as this test chose it.
    let container = &pod["spec"]["containers"][0];
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let url = env
        .iter_mut()
        .find(|(name, _)| name == "AGYN_EXEC_URL")
        .unwrap();
    assert_eq!(url.1, EXEC_URL);
    url.1 = format!("https://{WEBHOOK_HOST}:{}", server.exec_port);
    env.push(("PATH".into(), "/bin".into()));
    env.push(("STRIPE_API_KEY".into(), "replaced-by-the-wrapper".into()));

    let started = run_in_root(root.path(), &argv(container), &env).await;
    let stdout = String::from_utf8_lossy(&started.stdout);
    let stderr = String::from_utf8_lossy(&started.stderr);
    common::record_response("EXEC", "wrapper stderr", 0, &stderr);
    assert!(started.status.success(), "{:?}: {stderr}", started.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&format!("STRIPE_API_KEY={STRIPE}").as_str()),
        "{stdout}"
    );
    assert!(
        lines.contains(&format!("DB_PASSWORD={DB}").as_str()),
        "{stdout}"
    );
    assert!(lines.contains(&"PATH=/bin"), "{stdout}");
    assert!(
        lines.iter().all(|l| !l.starts_with("AGYN_EXEC_")),
        "settings reach the command: {stdout}"
    );
    for secret in [STRIPE, DB, token.as_str()] {
        assert!(
            !leaks(&stderr, secret),
            "the wrapper wrote a value or the token: {stderr}"
        );
    }

    // The same container after its pod is gone: refused, one line, no value.
    api.cluster().pods.remove(&("team-a".to_owned(), name));
    env.push(("AGYN_EXEC_TIMEOUT".into(), "1s".into()));
    let refused = run_in_root(root.path(), &argv(container), &env).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    common::record_response("EXEC", "wrapper stderr", 1, &stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(refused.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("agyn-secrets exec:") && stderr.contains("no longer exists"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_fence_narrowed_after_admission_holds_when_the_container_starts() {
    let (server, api, _dir) = setup(&[]).await;
    let (pod, uid) = admitted_pod(&server, &api, "team-a", &review("3c1f0e2a-exec-9")).await;
    let token =
        api.cluster()
            .issue_token("team-a", "default", &["agyn-secrets"], Some((&pod, &uid)));
    assert_eq!(fetch(&server, Some(&token), "agent").await.0, 200);

    server
        .client()
        .patch(
            "/v1/organizations/acme/secrets/db-password",
            json!({"allowed_namespaces": ["team-a-prod"]}),
        )
        .await
        .expect(200);
    let (status, body) = fetch(&server, Some(&token), "agent").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        r#"secret "db-password" may not be used in namespace "team-a" (allowed: team-a-prod)"#
    );
    assert!(!leaks(&body.to_string(), DB) && !leaks(&body.to_string(), STRIPE));
}

#[tokio::test]
async fn a_source_that_sends_bad_tokens_stops_costing_token_reviews() {
    let (server, api, _dir) = setup(&["--auth-failures-per-minute", "3"]).await;
    let reviews = || {
        api.cluster()
            .requests
            .iter()
            .filter(|r| *r == "TOKENREVIEW")
            .count()
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(fetch(&server, Some("not-a-token"), "agent").await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let reviewed = reviews();
    assert_eq!(reviewed, 4);
    for _ in 0..5 {
        let (status, body) = fetch(&server, Some("still-not-a-token"), "agent").await;
        assert_eq!(status, 429, "{body}");
    }
    assert_eq!(
        reviews(),
        reviewed,
        "no TokenReview for a source over its limit"
    );
}
