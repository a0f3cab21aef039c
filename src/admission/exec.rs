//! Delivery `exec`: no value in the patch. Each container that asks for
//! secrets runs a wrapper first, which fetches its values from the server's
//! exec listener with the pod's own token and then execs the container's
//! command, so that the values live only in that process's memory.
//!
//! What the patch adds: an init container that copies the wrapper into an
//! in-memory `emptyDir`; a projected service account token for the
//! audience [`AUDIENCE`]; in each container, both mounts, the `AGYN_EXEC_*`
//! settings, and its `command` wrapped as `<wrapper> exec -- <command>`
//! (its `args` untouched). Every part is checked against the pod first, so
//! that a second review of the patched pod adds nothing.

use serde_json::json;

use super::ops::Patch;
pub use super::plan::INSTALLER;
use super::plan::{ContainerPlan, Plan};
use super::pod::{Container, EnvSource, Spec};

/// Where the wrapper is installed, in every wrapped container.
pub const WRAPPER_DIR: &str = "/agyn-secrets";
/// The wrapper itself.
pub const WRAPPER: &str = "/agyn-secrets/agyn-secrets";
/// The in-memory volume that holds the wrapper.
pub const WRAPPER_VOLUME: &str = "agyn-secrets-exec";
/// The volume of the pod's token for the exec listener.
pub const TOKEN_VOLUME: &str = "agyn-secrets-exec-token";
/// Where that token is mounted; the wrapper reads `<dir>/token`.
pub const TOKEN_DIR: &str = "/var/run/secrets/agyn-secrets";
/// The audience of that token, which the exec listener requires.
pub const AUDIENCE: &str = "agyn-secrets";
/// How long the kubelet makes that token valid (the least it allows).
pub const TOKEN_SECONDS: u32 = 600;
/// Where the product's image keeps the statically linked wrapper.
pub const IMAGE_WRAPPER: &str = "/usr/local/bin/agyn-secrets-exec";

/// What every wrapped container is told: where the exec listener is and
/// which CA to trust for it, and which image installs the wrapper.
#[derive(Debug, Clone, Copy)]
pub struct ExecSetup<'a> {
    /// The exec listener's base URL, e.g. `https://agyn-secrets.agyn-secrets.svc:8444`.
    pub url: &'a str,
    /// PEM of the CA that signed the listener's certificate.
    pub ca_pem: &'a str,
    pub image: &'a str,
}

/// The containers of the plan that have no `command` to wrap: the wrapper
/// cannot know the image's entrypoint.
pub fn unwrappable<'p>(spec: Option<&Spec<'_>>, plan: &Plan<'p>) -> Vec<&'p str> {
    plan.containers
        .iter()
        .filter(|c| {
            c.current(spec)
                .and_then(|c| c.command.as_deref())
                .is_none_or(<[_]>::is_empty)
        })
        .map(|c| c.name)
        .collect()
}

/// The operations for one container: its settings, its mounts and its
/// wrapped command.
pub(super) fn wrap(
    patch: &mut Patch,
    plan: &ContainerPlan<'_>,
    current: Option<&Container<'_>>,
    setup: &ExecSetup<'_>,
) {
    let settings = [
        ("AGYN_EXEC_URL", EnvSource::Value(setup.url)),
        ("AGYN_EXEC_CA", EnvSource::Value(setup.ca_pem)),
        ("AGYN_EXEC_CONTAINER", EnvSource::Value(plan.name)),
    ];
    patch.env(
        plan,
        current.and_then(|c| c.env.as_deref()),
        settings.into_iter(),
    );

    let mounts = [(WRAPPER_VOLUME, WRAPPER_DIR), (TOKEN_VOLUME, TOKEN_DIR)];
    match current.and_then(|c| c.volume_mounts.as_deref()) {
        None => {
            patch.begin("add", "/spec");
            patch.container_field(plan, "volumeMounts");
            patch.value();
            let all: Vec<_> = mounts.iter().map(|(v, p)| mount(v, p)).collect();
            patch.json_value(&all);
            patch.end();
        }
        Some(existing) => {
            for (volume, path) in mounts {
                if !existing
                    .iter()
                    .any(|m| m.mount_path.as_deref() == Some(path))
                {
                    patch.begin("add", "/spec");
                    patch.container_field(plan, "volumeMounts/-");
                    patch.value();
                    patch.json_value(&mount(volume, path));
                    patch.end();
                }
            }
        }
    }

    let command = current
        .and_then(|c| c.command.as_deref())
        .unwrap_or_default();
    if command.first().map(|c| &**c) != Some(WRAPPER) {
        let mut wrapped: Vec<&str> = vec![WRAPPER, "exec", "--"];
        wrapped.extend(command.iter().map(|c| &**c));
        patch.begin("replace", "/spec");
        patch.container_field(plan, "command");
        patch.value();
        patch.json_value(&wrapped);
        patch.end();
    }
}

fn mount(volume: &str, path: &str) -> serde_json::Value {
    json!({"name": volume, "mountPath": path, "readOnly": true})
}

/// The pod's part: both volumes, and the installer as the first init
/// container, so that it runs before any wrapped init container.
pub(super) fn pod_setup(patch: &mut Patch, spec: Option<&Spec<'_>>, setup: &ExecSetup<'_>) {
    let volumes = [
        json!({"name": WRAPPER_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}),
        json!({"name": TOKEN_VOLUME, "projected": {"sources": [{"serviceAccountToken": {
            "audience": AUDIENCE, "expirationSeconds": TOKEN_SECONDS, "path": "token"}}]}}),
    ];
    match spec.and_then(|s| s.volumes.as_deref()) {
        None => {
            patch.begin("add", "/spec/volumes");
            patch.value();
            patch.json_value(&volumes);
            patch.end();
        }
        Some(existing) => {
            for volume in &volumes {
                let name = volume["name"].as_str();
                if !existing.iter().any(|v| v.name.as_deref() == name) {
                    patch.begin("add", "/spec/volumes/-");
                    patch.value();
                    patch.json_value(volume);
                    patch.end();
                }
            }
        }
    }

    let init = spec.and_then(|s| s.init_containers.as_deref());
    if init.is_some_and(|list| list.iter().any(|c| c.name.as_deref() == Some(INSTALLER))) {
        return;
    }
    let installer = json!({
        "name": INSTALLER,
        "image": setup.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [IMAGE_WRAPPER, "install", WRAPPER_DIR],
        "volumeMounts": [{"name": WRAPPER_VOLUME, "mountPath": WRAPPER_DIR}],
        "resources": {
            "requests": {"cpu": "10m", "memory": "16Mi"},
            "limits": {"memory": "32Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    });
    if init.is_none() {
        patch.begin("add", "/spec/initContainers");
        patch.value();
        patch.json_value(&[installer]);
    } else {
        patch.begin("add", "/spec/initContainers/0");
        patch.value();
        patch.json_value(&installer);
    }
    patch.end();
}
