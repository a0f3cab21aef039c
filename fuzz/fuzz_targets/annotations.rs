//! The annotation parsers on any text: no panic, only well-formed entries
//! accepted, short messages; accepted entries are then planned and patched
//! on a fixed pod, and the patch must apply and be idempotent.
#![no_main]

use agyn_secrets::admission::{EnvSource, Injection, Pod, build_patch, parse_env, parse_pull_secrets, plan_env};
use agyn_secrets::validate::{is_dns_label, is_env_var_name};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_pull_secrets(text) {
        Ok(names) => assert!(names.iter().all(|n| is_dns_label(n))),
        Err(error) => assert!(error.to_string().len() < 3000),
    }
    let entries = match parse_env(text) {
        Ok(entries) => entries,
        Err(error) => {
            assert!(error.to_string().len() < 3000);
            return;
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.position, i + 1);
        assert!(is_env_var_name(entry.var) && is_dns_label(entry.secret));
        assert!(entry.container.is_none_or(is_dns_label));
    }
    let pod = json!({
        "metadata": {"name": "p", "annotations": {}},
        "spec": {
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "app", "env": [{"name": "A", "value": "a"}, {"name": "A", "value": "b"}]},
                {"name": "worker", "env": [{"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}
            ]
        }
    });
    let pod_text = pod.to_string();
    let view = Pod::parse(&pod_text).unwrap();
    let Ok(plan) = plan_env(&view, &entries) else {
        return;
    };
    let values: Vec<(&str, String)> = plan
        .secret_names()
        .into_iter()
        .map(|n| (n, format!("value-of-{n}")))
        .collect();
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Injection { version: 2, source: EnvSource::Value(v) })
    };
    let stamp: Vec<(&str, i64)> = values.iter().map(|(n, _)| (*n, 2)).collect();
    let patch = build_patch(&view, &plan, value, &[], &stamp, None);
    let ops: json_patch::Patch = serde_json::from_slice(patch.as_json()).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &ops).expect("the patch applies");
    let patched_text = patched.to_string();
    let again = Pod::parse(&patched_text).unwrap();
    assert!(build_patch(&again, &plan, value, &[], &stamp, None).is_empty());
});
