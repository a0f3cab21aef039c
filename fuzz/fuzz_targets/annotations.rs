//! The annotation parsers on any text: no panic, only well-formed entries
//! accepted, short messages; accepted entries are then planned and patched
//! on a fixed pod, and the patch must apply and be idempotent.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use agyn_secrets::admission::{Injection, build_patch, parse_env, parse_pull_secrets, plan_env};
use agyn_secrets::validate::{is_dns_label, is_env_var_name};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

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
        assert!(is_env_var_name(&entry.var) && is_dns_label(&entry.secret));
        assert!(entry.container.as_deref().is_none_or(is_dns_label));
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
    let Ok(plan) = plan_env(&pod, &entries) else {
        return;
    };
    let values: Vec<(String, String)> = plan
        .secret_names()
        .into_iter()
        .map(|n| (n.to_owned(), format!("value-of-{n}")))
        .collect();
    let injections: HashMap<&str, Injection<'_>> = values
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                Injection {
                    version: 2,
                    value: v,
                },
            )
        })
        .collect();
    let stamp: BTreeMap<String, i64> = values.iter().map(|(n, _)| (n.clone(), 2)).collect();
    let ops = build_patch(&pod, &plan, &injections, &[], &stamp);
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies");
    assert!(build_patch(&patched, &plan, &injections, &[], &stamp).is_empty());
});
