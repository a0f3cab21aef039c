//! The webhook's pure pipeline on any bytes: parse the AdmissionReview, read
//! the annotations, plan, build the patch, and check what the property tests
//! check: the patch applies to the pod it came from, a second pass over the
//! result is empty, and no message carries a value.
#![no_main]

use agyn_secrets::admission::{
    Denial, EnvSource, Injection, Pod, allow, build_patch, deny, parse_env, parse_pull_secrets,
    parse_review, plan_env,
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
    let answer: Value = serde_json::from_slice(&deny("uid", Denial::Forbidden, message))
        .expect("a denial is JSON");
    assert_eq!(answer["response"]["status"]["message"], message);
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_review(data) else {
        return;
    };
    let _ = request.is_pod_create();
    let Some(pod) = &request.object else {
        return;
    };
    let _ = (pod.name(), pod.owner(), pod.namespace());
    let (env, pulls) = (
        pod.annotations.env.as_deref(),
        pod.annotations.pull_secrets.as_deref(),
    );
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
    let values: Vec<(&str, String)> = plan
        .secret_names()
        .into_iter()
        .map(|name| (name, format!("{MARK}-{name}-\"\\\n~1/")))
        .collect();
    let value = |name: &str| {
        values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Injection { version: 1, source: EnvSource::Value(v) })
    };
    let stamp: Vec<(&str, i64)> = values.iter().map(|(n, _)| (*n, 1)).collect();
    let patch = build_patch(pod, &plan, value, &pulls, &stamp, None);
    let ops: json_patch::Patch =
        serde_json::from_slice(patch.as_json()).expect("the operations are JSON Patch");
    let review: Value = serde_json::from_slice(data).expect("the review parsed once");
    let mut patched = review["request"]["object"].clone();
    json_patch::patch(&mut patched, &ops).expect("the patch applies to the pod it came from");
    let text = patched.to_string();
    let again = build_patch(&Pod::parse(&text).unwrap(), &plan, value, &pulls, &stamp, None);
    assert!(again.is_empty(), "a second pass changed {again:?}");
    let _ = allow(&request.uid, &patch);
});
