//! Which container gets which variable: the plan every delivery follows,
//! checked against the pod before anything is resolved.

use super::annotations::{EnvEntry, quote};
use super::pod::{Container, Pod, Spec};

/// The init container that installs the exec wrapper. Named beside the plan
/// because no plan ever gives it a variable.
pub const INSTALLER: &str = "agyn-secrets-exec";

/// Where a container is listed in the pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Init,
    Regular,
}

impl ContainerList {
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Init => "initContainers",
            ContainerList::Regular => "containers",
        }
    }
}

/// The variables one container receives, in annotation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPlan<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub name: &'a str,
    /// `(VAR, secret name)` pairs.
    pub vars: Vec<(&'a str, &'a str)>,
}

impl ContainerPlan<'_> {
    /// JSON pointer of the container, e.g. `/spec/initContainers/0`.
    pub fn pointer(&self) -> String {
        format!("/spec/{}/{}", self.list.field(), self.index)
    }

    /// The container as the pod spec has it.
    pub(super) fn current<'s>(&self, spec: Option<&'s Spec<'_>>) -> Option<&'s Container<'s>> {
        let list = match self.list {
            ContainerList::Init => spec?.init_containers.as_deref(),
            ContainerList::Regular => spec?.containers.as_deref(),
        };
        list?.get(self.index)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan<'a> {
    pub containers: Vec<ContainerPlan<'a>>,
}

impl<'a> Plan<'a> {
    /// How many variables all containers receive together.
    pub fn var_count(&self) -> usize {
        self.containers.iter().map(|c| c.vars.len()).sum()
    }

    /// Distinct secret names, sorted.
    pub fn secret_names(&self) -> Vec<&'a str> {
        let mut names = Vec::with_capacity(self.var_count());
        names.extend(
            self.containers
                .iter()
                .flat_map(|c| c.vars.iter().map(|(_, s)| *s)),
        );
        names.sort_unstable();
        names.dedup();
        names
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("annotation secrets.agyn.io/env: entry {position} {}: container {} not found in pod{}", quote(.text), quote(.container), list_known(.known))]
    UnknownContainer {
        position: usize,
        text: String,
        container: String,
        known: Vec<String>,
    },
    #[error(
        "annotation secrets.agyn.io/env: entry {position} {}: {var} is set twice for container {} (also by entry {first}); keep one",
        quote(.text),
        quote(.container)
    )]
    DuplicateVar {
        position: usize,
        text: String,
        var: String,
        container: String,
        first: usize,
    },
    #[error("pod is malformed: {0}")]
    Malformed(String),
}

fn list_known(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" (containers: {})", names.join(", "))
    }
}

/// The pod's init containers and containers, in that order.
fn containers<'p>(
    pod: &'p Pod<'_>,
) -> impl Iterator<Item = (ContainerList, usize, &'p Container<'p>)> {
    let spec = pod.spec.as_ref().ok();
    let list = move |which: ContainerList| {
        let list = spec.and_then(|s| match which {
            ContainerList::Init => s.init_containers.as_deref(),
            ContainerList::Regular => s.containers.as_deref(),
        });
        list.unwrap_or_default()
            .iter()
            .enumerate()
            .map(move |(i, c)| (which, i, c))
    };
    list(ContainerList::Init).chain(list(ContainerList::Regular))
}

/// Decides which container gets which variable. Entries without a container
/// go to every container and init container.
pub fn plan_env<'a>(pod: &'a Pod<'_>, entries: &[EnvEntry<'a>]) -> Result<Plan<'a>, PatchError> {
    // The patch adds under both; a pod where either is not an object would
    // get a patch that cannot apply.
    if let Err(error) = &pod.meta {
        return Err(PatchError::Malformed(error.clone()));
    }
    if let Err(error) = &pod.spec {
        return Err(PatchError::Malformed(error.clone()));
    }
    let all = named_containers(pod)?;
    check_containers_named(entries, &all)?;
    let mut plan = Plan {
        containers: Vec::with_capacity(all.len()),
    };
    for (list, index, name) in all {
        let vars = container_vars(name, entries)?;
        if !vars.is_empty() {
            plan.containers.push(ContainerPlan {
                list,
                index,
                name,
                vars,
            });
        }
    }
    Ok(plan)
}

/// Every container that can receive variables, with its name: all but the
/// installer that delivery `exec` adds, which is the product's own.
fn named_containers<'a>(
    pod: &'a Pod<'_>,
) -> Result<Vec<(ContainerList, usize, &'a str)>, PatchError> {
    let mut all = Vec::with_capacity(containers(pod).count());
    for (list, index, container) in containers(pod) {
        let name = container
            .name
            .as_deref()
            .ok_or_else(|| PatchError::Malformed("a container has no name".into()))?;
        if list == ContainerList::Init && name == INSTALLER {
            continue;
        }
        all.push((list, index, name));
    }
    Ok(all)
}

/// Checks that every container an entry names is one of `all`.
fn check_containers_named(
    entries: &[EnvEntry<'_>],
    all: &[(ContainerList, usize, &str)],
) -> Result<(), PatchError> {
    for entry in entries {
        if let Some(container) = entry.container
            && !all.iter().any(|(_, _, name)| *name == container)
        {
            return Err(PatchError::UnknownContainer {
                position: entry.position,
                text: entry.text.to_owned(),
                container: container.to_owned(),
                known: all.iter().map(|(_, _, n)| (*n).to_owned()).collect(),
            });
        }
    }
    Ok(())
}

/// The `(VAR, secret)` pairs of the entries that apply to container `name`,
/// in annotation order; a variable set twice is an error.
fn container_vars<'a>(
    name: &str,
    entries: &[EnvEntry<'a>],
) -> Result<Vec<(&'a str, &'a str)>, PatchError> {
    let applies = |entry: &&EnvEntry<'_>| entry.container.is_none_or(|c| c == name);
    let mut vars: Vec<(&str, &str)> = Vec::with_capacity(entries.len());
    for entry in entries.iter().filter(applies) {
        if let Some(at) = vars.iter().position(|(var, _)| *var == entry.var) {
            let first = entries
                .iter()
                .filter(applies)
                .nth(at)
                .expect("the earlier entry is one of those that apply");
            return Err(PatchError::DuplicateVar {
                position: entry.position,
                text: entry.text.to_owned(),
                var: entry.var.to_owned(),
                container: name.to_owned(),
                first: first.position,
            });
        }
        vars.push((entry.var, entry.secret));
    }
    Ok(vars)
}
