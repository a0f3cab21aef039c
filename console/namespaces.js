// Namespace bindings, for platform admins: which organization the pods of
// a Kubernetes namespace draw their secrets from.

import { api } from './api.js';
import {
  h,
  table,
  when,
  code,
  details,
  field,
  notice,
  showError,
  clearErrors,
  heading,
  linkButton,
  select,
} from './dom.js';

const NAMESPACE_HINT = 'The Kubernetes namespace: lower-case letters, digits and “-”, at most 63 characters.';

const namespaceLink = (namespace) => `/namespaces/${encodeURIComponent(namespace)}`;

/** The organization of a binding, by name, linked to its secrets. */
function organizationCell(byId, id) {
  const org = byId.get(id);
  if (!org) return h('span', { class: 'muted', text: 'an organization that no longer exists' });
  return h('a', { href: `/organizations/${encodeURIComponent(org.name)}/secrets`, text: org.name });
}

function organizationSelect(orgs, chosen) {
  return select(
    [['', orgs.length ? 'Choose an organization' : 'No organizations yet'], ...orgs.map((o) => [o.name, o.name])],
    chosen || '',
    { name: 'organization', 'aria-required': 'true' },
  );
}

/** Binds a namespace (or moves it), then opens its page, where its Kubernetes access shows. */
async function bind(ctx, namespace, organization, before) {
  const bound = await api.bindNamespace(namespace, organization);
  let message;
  if (!before) message = `Namespace “${bound.namespace}” bound to ${organization}.`;
  else if (before === organization) message = `Namespace “${bound.namespace}” was already bound to ${organization}.`;
  else message = `Namespace “${bound.namespace}” moved from ${before} to ${organization}. Pods created from now on draw from ${organization}.`;
  ctx.go(namespaceLink(bound.namespace), { flash: message });
}

export async function list(ctx) {
  const [bindings, orgs] = await Promise.all([api.namespaces(), api.organizations()]);
  const byId = new Map(orgs.map((o) => [o.id, o]));
  const rows = bindings.map((b) => [
    h('a', { href: namespaceLink(b.namespace), class: 'name', text: b.namespace }),
    organizationCell(byId, b.organization_id),
    when(b.created_at),
    h('div', { class: 'row-actions' },
      h('a', { href: `${namespaceLink(b.namespace)}/unbind`, class: 'danger-link', text: 'Unbind', 'aria-label': `Unbind ${b.namespace}` }),
    ),
  ]);

  const namespace = h('input', { type: 'text', name: 'namespace', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 63, 'aria-required': 'true' });
  const organization = organizationSelect(orgs, '');
  const save = h('button', { type: 'submit', class: 'primary', text: 'Bind namespace' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'bind-title' },
    h('h2', { id: 'bind-title', text: 'Bind a namespace' }),
    field({ label: 'Namespace', control: namespace, field: 'namespace', hint: NAMESPACE_HINT }),
    field({ label: 'Organization', control: organization, field: 'organization', hint: 'A namespace bound already moves to this organization.' }),
    h('div', { class: 'buttons' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const name = namespace.value.trim();
    if (!name) {
      showError(form, { field: 'namespace', message: 'namespace: enter the namespace to bind' });
      return;
    }
    if (!organization.value) {
      showError(form, { field: 'organization', message: 'organization: choose the organization to bind it to' });
      return;
    }
    save.disabled = true;
    const current = bindings.find((b) => b.namespace === name);
    try {
      await bind(ctx, name, organization.value, current ? (byId.get(current.organization_id) || {}).name : null);
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });

  ctx.show(
    heading('Namespaces'),
    h('p', { class: 'lead', text: 'A pod draws its secrets from the organization its namespace is bound to, never from anything the pod says. Labelled pods in a namespace that is not bound are denied.' }),
    bindings.length
      ? table({ caption: 'Namespace bindings', columns: ['Namespace', 'Organization', 'Bound', 'Actions'], rows })
      : h('p', { class: 'empty', text: 'No namespace is bound yet.' }),
    form,
  );
}

/** What the product may do in the namespace, as the API checked it just now. */
function accessView(access) {
  if (!access) return null;
  if (!access.checked) {
    return notice('info', access.message || 'The Kubernetes API could not be asked whether agyn-secrets may work in this namespace.');
  }
  if (access.ok) {
    return notice('ok', 'agyn-secrets may read and write Secrets and read pods in this namespace.');
  }
  return notice(
    'warn',
    access.message || 'agyn-secrets lacks permissions in this namespace.',
    access.missing && access.missing.length
      ? h('p', {}, 'Missing: ', access.missing.map((rule, i) => [i ? ', ' : '', code(rule)]))
      : null,
  );
}

export async function show(ctx) {
  const name = ctx.params[0];
  const [binding, orgs] = await Promise.all([api.namespace(name), api.organizations()]);
  const byId = new Map(orgs.map((o) => [o.id, o]));
  const current = byId.get(binding.organization_id);
  const organization = organizationSelect(orgs.filter((o) => o.id !== binding.organization_id), '');
  const save = h('button', { type: 'submit', class: 'primary', text: 'Move namespace' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'move-title' },
    h('h2', { id: 'move-title', text: 'Move to another organization' }),
    field({ label: 'Organization', control: organization, field: 'organization', hint: 'Pods created afterwards draw from the new organization; running pods keep what they have.' }),
    h('div', { class: 'buttons' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (!organization.value) {
      showError(form, { field: 'organization', message: 'organization: choose the organization to move it to' });
      return;
    }
    save.disabled = true;
    try {
      await bind(ctx, binding.namespace, organization.value, current ? current.name : null);
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading(binding.namespace, linkButton(`${namespaceLink(binding.namespace)}/unbind`, 'Unbind', { kind: 'danger', label: `Unbind ${binding.namespace}` })),
    h('p', { class: 'lead' }, h('a', { href: '/namespaces', text: '← Namespaces' })),
    details([
      ['Organization', organizationCell(byId, binding.organization_id)],
      ['Bound', when(binding.created_at)],
    ]),
    h('section', { 'aria-labelledby': 'access-title', class: 'access' },
      h('h2', { id: 'access-title', text: 'Kubernetes access' }),
      accessView(binding.access),
    ),
    orgs.length > 1 ? form : null,
  );
}

export async function unbind(ctx) {
  const name = ctx.params[0];
  const [binding, orgs] = await Promise.all([api.namespace(name), api.organizations()]);
  const byId = new Map(orgs.map((o) => [o.id, o]));
  const org = byId.get(binding.organization_id);
  const button = h('button', { type: 'submit', class: 'danger', text: 'Unbind namespace' });
  const form = h('form', { class: 'confirm', novalidate: true },
    h('div', { class: 'buttons' }, button, linkButton(namespaceLink(binding.namespace), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      await api.unbindNamespace(binding.namespace);
      ctx.go('/namespaces', { flash: `Namespace “${binding.namespace}” unbound.` });
    } catch (error) {
      button.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading(`Unbind namespace “${binding.namespace}”`),
    h('p', { class: 'lead' }, h('a', { href: '/namespaces', text: '← Namespaces' })),
    h('p', {},
      'Labelled pods created in ', code(binding.namespace), ' from now on are denied',
      org ? [' instead of drawing secrets from ', h('strong', { text: org.name })] : null,
      '. Running pods keep what they have.'),
    form,
  );
}
