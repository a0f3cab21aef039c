//! The webhook's pure pipeline on any bytes: parse the AdmissionReview, read
//! the annotations, plan, build the patch, and check what the property tests
//! check: the patch applies to the pod it came from, a second pass over the
//! result is empty, and no message carries a value.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use agyn_secrets::admission::{
    Denial, ENV_ANNOTATION, Injection, PULL_SECRETS_ANNOTATION, allow, build_patch, deny,
    parse_env, parse_pull_secrets, parse_review, plan_env, pod_name, pod_owner,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Part of every injected value; a message that contains it leaked one.
const MARK: &str = "fuzz-secret-value";

fn check_message(message: &str) {
    assert!(
        !message.contains(MARK),
        "a message carries a value: {message}"
    );
    let _ = deny("uid", Denial::Forbidden, message);
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_review(data) else {
        return;
    };
    let _ = request.is_pod_create();
    let Some(pod) = &request.object else {
        return;
    };
    let _ = (pod_name(pod), pod_owner(pod));
    let annotations = pod.pointer("/metadata/annotations");
    let text = |key: &str| annotations.and_then(|a| a.get(key)).and_then(Value::as_str);
    let (env, pulls) = (text(ENV_ANNOTATION), text(PULL_SECRETS_ANNOTATION));
    if env.is_none() && pulls.is_none() {
        return;
    }
    let entries = match parse_env(env.unwrap_or("")) {
        Ok(entries) => entries,
        Err(error) => return check_message(&error.to_string()),
    };
    let pulls = match parse_pull_secrets(pulls.unwrap_or("")) {
        Ok(pulls) => pulls,
        Err(error) => return check_message(&error.to_string()),
    };
    let plan = match plan_env(pod, &entries) {
        Ok(plan) => plan,
        Err(error) => return check_message(&error.to_string()),
    };
    let values: Vec<(String, String)> = plan
        .secret_names()
        .into_iter()
        .map(|name| (name.to_owned(), format!("{MARK}-{name}-\"\\\n~1/")))
        .collect();
    let injections: HashMap<&str, Injection<'_>> = values
        .iter()
        .map(|(name, value)| (name.as_str(), Injection { version: 1, value }))
        .collect();
    let stamp: BTreeMap<String, i64> = values.iter().map(|(n, _)| (n.clone(), 1)).collect();
    let ops = build_patch(pod, &plan, &injections, &pulls, &stamp);
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.clone())).expect("the operations are JSON Patch");
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).expect("the patch applies to the pod it came from");
    let again = build_patch(&patched, &plan, &injections, &pulls, &stamp);
    assert!(again.is_empty(), "a second pass changed {again:?}");
    let _ = allow(&request.uid, &ops);
});
