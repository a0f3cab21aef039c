// Vault and OpenBao providers: list, form, connection check and delete.
// Credentials are never typed here: a provider names a local secret that
// holds its token or AppRole secret ID.

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
  slug,
  linkButton,
  select,
  showOnly,
  replace,
} from './dom.js';

const METHODS = [
  ['token', 'Token'],
  ['kubernetes', 'Kubernetes service account'],
  ['approle', 'AppRole'],
];

const DEFAULT_JWT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

function authSummary(auth) {
  switch (auth.method) {
    case 'token':
      return h('span', {}, 'Token from secret ', code(auth.token_secret));
    case 'kubernetes':
      return h('span', {}, 'Kubernetes, role ', code(auth.role), ' at ', code(auth.mount));
    case 'approle':
      return h('span', {}, 'AppRole ', code(auth.role_id), ', secret ID from ', code(auth.secret_id_secret), ' at ', code(auth.mount));
    default:
      return h('span', { text: auth.method });
  }
}

export async function list(ctx) {
  const providers = await api.providers(ctx.org);
  const columns = ['Name', 'Address', 'Authentication', 'Vault namespace', 'Last updated'];
  if (ctx.canWrite) columns.push('Actions');
  const rows = providers.map((p) => {
    const cells = [
      h('a', { href: ctx.link('providers', slug(p)), class: 'name', text: p.name }),
      code(p.address),
      authSummary(p.auth),
      p.namespace ? code(p.namespace) : h('span', { class: 'muted', text: '—' }),
      when(p.updated_at),
    ];
    if (ctx.canWrite) {
      cells.push(
        h('div', { class: 'row-actions' },
          h('a', { href: ctx.link('providers', slug(p)), text: 'Edit', 'aria-label': `Edit ${p.name}` }),
          h('a', { href: ctx.link('providers', slug(p), 'delete'), class: 'danger-link', text: 'Delete', 'aria-label': `Delete ${p.name}` }),
        ),
      );
    }
    return cells;
  });
  ctx.show(
    heading('Providers', ctx.canWrite && linkButton(ctx.link('providers', 'new'), 'New provider', { kind: 'primary' })),
    h('p', { class: 'lead', text: 'HashiCorp Vault or OpenBao servers that hold remote secrets. The value of a remote secret is read from its provider at every pod start.' }),
    providers.length
      ? table({ caption: 'Providers', columns, rows })
      : h('p', { class: 'empty', text: 'No providers yet.' }),
  );
}

function text(name, value, attrs = {}) {
  return h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: value || null, ...attrs });
}

/** The provider form; `provider` is absent for a new one. */
function providerForm(ctx, localSecrets, provider) {
  const auth = (provider && provider.auth) || { method: 'token' };
  const credentialOptions = [
    ['', localSecrets.length ? 'Choose a local secret' : 'No local secrets yet'],
    ...localSecrets.map((s) => [s.name, s.name]),
  ];
  const name = provider ? null : text('name', '', { maxlength: 63, 'aria-required': 'true' });
  const address = text('address', provider && provider.address, { placeholder: 'https://vault.example.com:8200', inputmode: 'url' });
  const namespace = text('namespace', provider && provider.namespace, { placeholder: 'admin/team-a' });
  const caPem = h('textarea', { name: 'ca_pem', rows: 5, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' });
  caPem.value = (provider && provider.ca_pem) || '';
  const method = select(METHODS, auth.method, { name: 'method' });
  const tokenSecret = select(credentialOptions, auth.token_secret || '', { name: 'token_secret' });
  const k8sRole = text('role', auth.method === 'kubernetes' ? auth.role : '');
  const k8sMount = text('mount', auth.method === 'kubernetes' ? auth.mount : 'kubernetes');
  const jwtPath = text('jwt_path', auth.method === 'kubernetes' ? auth.jwt_path : DEFAULT_JWT_PATH);
  const roleId = text('role_id', auth.role_id);
  const secretIdSecret = select(credentialOptions, auth.secret_id_secret || '', { name: 'secret_id_secret' });
  const approleMount = text('mount', auth.method === 'approle' ? auth.mount : 'approle');
  const groups = {
    token: h('div', { class: 'group' },
      field({ label: 'Token secret', control: tokenSecret, field: 'auth.token_secret', hint: 'The local secret that holds the Vault token.' }),
    ),
    kubernetes: h('div', { class: 'group' },
      field({ label: 'Role', control: k8sRole, field: 'auth.role', hint: 'The Vault role bound to this service’s service account.' }),
      field({ label: 'Auth mount', control: k8sMount, field: 'auth.mount' }),
      field({ label: 'Service account token path', control: jwtPath, field: 'auth.jwt_path' }),
    ),
    approle: h('div', { class: 'group' },
      field({ label: 'Role ID', control: roleId, field: 'auth.role_id' }),
      field({ label: 'Secret ID secret', control: secretIdSecret, field: 'auth.secret_id_secret', hint: 'The local secret that holds the AppRole secret ID.' }),
      field({ label: 'Auth mount', control: approleMount, field: 'auth.mount' }),
    ),
  };
  method.addEventListener('change', () => showOnly(groups, method.value));
  showOnly(groups, auth.method);
  const save = h('button', { type: 'submit', class: 'primary', text: provider ? 'Save changes' : 'Save' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-label': provider ? 'Provider settings' : 'New provider' },
    name ? field({ label: 'Name', control: name, field: 'name', hint: 'Lower-case letters, digits and “-”, at most 63 characters.' }) : null,
    field({ label: 'Address', control: address, field: 'address', hint: 'The server’s base URL. Link-local and cloud metadata addresses are refused.' }),
    field({ label: 'Vault namespace (optional)', control: namespace, field: 'namespace', hint: 'Sent as X-Vault-Namespace, for Vault Enterprise and OpenBao namespaces.' }),
    field({ label: 'CA certificate, PEM (optional)', control: caPem, field: 'ca_pem', hint: 'Trust this CA for the server’s certificate instead of the system roots.' }),
    h('fieldset', { class: 'field' },
      h('legend', { text: 'Authentication' }),
      field({ label: 'Method', control: method, field: 'auth.method' }),
      groups.token,
      groups.kubernetes,
      groups.approle,
    ),
    h('div', { class: 'buttons' }, save, linkButton(ctx.link('providers'), 'Cancel')),
  );
  const authBody = () => {
    switch (method.value) {
      case 'kubernetes':
        return { method: 'kubernetes', role: k8sRole.value.trim(), mount: k8sMount.value.trim(), jwt_path: jwtPath.value.trim() };
      case 'approle':
        return { method: 'approle', role_id: roleId.value.trim(), secret_id_secret: secretIdSecret.value, mount: approleMount.value.trim() };
      default:
        return { method: 'token', token_secret: tokenSecret.value };
    }
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      let saved;
      if (provider) {
        saved = await api.updateProvider(ctx.org, provider.id, {
          address: address.value.trim(),
          namespace: namespace.value.trim() || null,
          ca_pem: caPem.value.trim() ? caPem.value : null,
          auth: authBody(),
        });
      } else {
        saved = await api.createProvider(ctx.org, {
          name: name.value.trim(),
          kind: 'vault',
          address: address.value.trim(),
          namespace: namespace.value.trim() || undefined,
          ca_pem: caPem.value.trim() ? caPem.value : undefined,
          auth: authBody(),
        });
      }
      ctx.go(ctx.link('providers', slug(saved)), { replace: Boolean(provider), flash: `Provider “${saved.name}” saved.` });
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  return { form, focus: name || address };
}

export async function create(ctx) {
  const secrets = await api.secrets(ctx.org);
  const { form, focus } = providerForm(ctx, secrets.filter((s) => s.storage === 'local'), null);
  ctx.show(
    heading('New provider'),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('providers'), text: '← Providers' })),
    form,
  );
  focus.focus();
}

function checkSection(ctx, provider) {
  const result = h('div', { class: 'check-result', role: 'status', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', text: 'Check connection' });
  button.addEventListener('click', async () => {
    button.disabled = true;
    replace(result, h('p', { class: 'muted', text: 'Checking…' }));
    try {
      const answer = await api.checkProvider(ctx.org, provider.id);
      if (answer && answer.ok === false) {
        const message = (answer.error && answer.error.message) || answer.message || 'the provider did not accept the check';
        replace(result, notice('error', message));
      } else {
        const detail = answer && (answer.message || answer.detail);
        replace(result, notice('ok', detail ? `Connection OK: ${detail}` : 'Connection OK.'));
      }
    } catch (error) {
      replace(result, notice('error', error.message));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'check-title' },
    h('h2', { id: 'check-title', text: 'Connection' }),
    h('p', { class: 'hint', text: 'Logs in with the saved settings and reports what the server answers.' }),
    h('div', { class: 'buttons' }, button),
    result,
  );
}

function usedBy(ctx, provider, secrets) {
  const using = secrets.filter((s) => s.provider_id === provider.id);
  return h('section', { 'aria-labelledby': 'provider-used-by' },
    h('h2', { id: 'provider-used-by', text: 'Secrets read from this provider' }),
    using.length
      ? h('ul', {}, using.map((s) => h('li', {}, h('a', { href: ctx.link('secrets', slug(s)), text: s.name }), ' ', code(s.remote_path), h('span', { class: 'muted', text: ' key ' }), code(s.remote_key))))
      : h('p', { class: 'empty', text: 'No secret uses this provider.' }),
  );
}

export async function show(ctx) {
  const [provider, secrets] = await Promise.all([
    api.provider(ctx.org, ctx.params[0]),
    api.secrets(ctx.org).catch(() => []),
  ]);
  const back = h('p', { class: 'lead' }, h('a', { href: ctx.link('providers'), text: '← Providers' }));
  if (!ctx.canWrite) {
    ctx.show(
      heading(provider.name),
      back,
      details([
        ['Kind', 'Vault or OpenBao'],
        ['Address', code(provider.address)],
        ['Vault namespace', provider.namespace ? code(provider.namespace) : h('span', { class: 'muted', text: '—' })],
        ['CA certificate', provider.ca_pem ? h('pre', { class: 'pem', text: provider.ca_pem }) : h('span', { class: 'muted', text: 'System roots' })],
        ['Authentication', authSummary(provider.auth)],
        ['Last updated', when(provider.updated_at)],
      ]),
      usedBy(ctx, provider, secrets),
    );
    return;
  }
  const { form } = providerForm(ctx, secrets.filter((s) => s.storage === 'local'), provider);
  ctx.show(
    heading(provider.name, linkButton(ctx.link('providers', slug(provider), 'delete'), 'Delete', { kind: 'danger', label: `Delete ${provider.name}` })),
    back,
    details([
      ['Kind', 'Vault or OpenBao'],
      ['Created', when(provider.created_at)],
      ['Last updated', when(provider.updated_at)],
    ]),
    checkSection(ctx, provider),
    form,
    usedBy(ctx, provider, secrets),
  );
}

export async function remove(ctx) {
  const [provider, secrets] = await Promise.all([api.provider(ctx.org, ctx.params[0]), api.secrets(ctx.org)]);
  const using = secrets.filter((s) => s.provider_id === provider.id);
  const button = h('button', { type: 'submit', class: 'danger', text: 'Delete provider' });
  const form = h('form', { class: 'confirm', novalidate: true },
    h('div', { class: 'buttons' }, button, linkButton(ctx.link('providers', slug(provider)), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      await api.deleteProvider(ctx.org, provider.id);
      ctx.go(ctx.link('providers'), { flash: `Provider “${provider.name}” deleted.` });
    } catch (error) {
      button.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading(`Delete provider “${provider.name}”`),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('providers'), text: '← Providers' })),
    using.length
      ? notice('warn', `${using.length} secret(s) read from this provider; the API refuses the delete until they are repointed or deleted.`)
      : h('p', { text: 'No secret uses this provider. Deleting it cannot be undone.' }),
    usedBy(ctx, provider, secrets),
    form,
  );
}
