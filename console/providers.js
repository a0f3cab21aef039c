// Secret providers, of every kind: list, form, connection check and delete.
// Credentials are never typed here: a provider names a local secret that
// holds its Vault token, AppRole secret ID or AWS secret access key.

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

/**
 * The kinds of provider. `settings` are the fields beside `auth` that the
 * form offers for the kind (`ca_pem` is shared); `required` ones are never
 * sent as null.
 */
export const KINDS = {
  vault: {
    label: 'HashiCorp Vault or OpenBao',
    settings: ['address', 'namespace'],
    required: ['address'],
    methods: [
      ['token', 'Token'],
      ['kubernetes', 'Kubernetes service account'],
      ['approle', 'AppRole'],
    ],
  },
  'aws-secrets-manager': {
    label: 'AWS Secrets Manager',
    settings: ['region', 'endpoint', 'sts_endpoint'],
    required: ['region'],
    methods: [
      ['static', 'Access key'],
      ['web-identity', 'Web identity (IRSA)'],
    ],
  },
};

/** A kind's name as people read it. */
export function kindLabel(kind) {
  return (KINDS[kind] && KINDS[kind].label) || kind;
}

/** Whether secrets of this provider may leave `remote_key` out. */
export function takesWholeValues(provider) {
  return Boolean(provider) && provider.kind === 'aws-secrets-manager';
}

/** How a select names a provider: its name and where it reads from. */
export function providerLabel(provider) {
  if (provider.kind === 'aws-secrets-manager') return `${provider.name} (AWS Secrets Manager, ${provider.region})`;
  return `${provider.name} (${provider.address || kindLabel(provider.kind)})`;
}

const none = (text = '—') => h('span', { class: 'muted', text });

function authSummary(auth) {
  switch (auth.method) {
    case 'token':
      return h('span', {}, 'Token from secret ', code(auth.token_secret));
    case 'kubernetes':
      return h('span', {}, 'Kubernetes, role ', code(auth.role), ' at ', code(auth.mount));
    case 'approle':
      return h('span', {}, 'AppRole ', code(auth.role_id), ', secret ID from ', code(auth.secret_id_secret), ' at ', code(auth.mount));
    case 'static':
      return h('span', {}, 'Access key ', code(auth.access_key_id), ', secret from ', code(auth.secret_access_key_secret));
    case 'web-identity':
      return h('span', {}, 'Web identity, role ', code(auth.role_arn));
    default:
      return h('span', { text: auth.method });
  }
}

/** What a provider is and where it reads from, in one table cell. */
function whereSummary(p) {
  const kind = h('span', { text: kindLabel(p.kind) });
  if (p.kind === 'aws-secrets-manager') {
    return h('div', { class: 'remote' },
      kind,
      h('span', {}, h('span', { class: 'muted', text: 'Region ' }), code(p.region)),
      p.endpoint ? code(p.endpoint) : null,
    );
  }
  return h('div', { class: 'remote' },
    kind,
    code(p.address),
    p.namespace ? h('span', {}, h('span', { class: 'muted', text: 'Namespace ' }), code(p.namespace)) : null,
  );
}

/** A kind's own settings, for the read-only page. */
function kindFacts(p) {
  const ca = ['CA certificate', p.ca_pem ? h('pre', { class: 'pem', text: p.ca_pem }) : none('System roots')];
  if (p.kind === 'aws-secrets-manager') {
    return [
      ['Region', code(p.region)],
      ['Endpoint', p.endpoint ? code(p.endpoint) : none('The region’s public endpoint')],
      ['STS endpoint', p.sts_endpoint ? code(p.sts_endpoint) : none('The region’s public endpoint')],
      ca,
    ];
  }
  return [
    ['Address', code(p.address)],
    ['Vault namespace', p.namespace ? code(p.namespace) : none()],
    ca,
  ];
}

export async function list(ctx) {
  const providers = await api.providers(ctx.org);
  const columns = ['Name', 'Reads from', 'Authentication', 'Last updated'];
  if (ctx.canWrite) columns.push('Actions');
  const rows = providers.map((p) => {
    const cells = [
      h('a', { href: ctx.link('providers', slug(p)), class: 'name', text: p.name }),
      whereSummary(p),
      authSummary(p.auth),
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
    h('p', { class: 'lead', text: 'HashiCorp Vault or OpenBao servers and AWS Secrets Manager regions that hold remote secrets. The value of a remote secret is read from its provider at every pod start.' }),
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
  const initialKind = provider ? provider.kind : 'vault';
  const auth = (provider && provider.auth) || { method: KINDS[initialKind].methods[0][0] };
  const credentialOptions = [
    ['', localSecrets.length ? 'Choose a local secret' : 'No local secrets yet'],
    ...localSecrets.map((s) => [s.name, s.name]),
  ];
  const current = (key) => (provider && provider[key]) || null;
  const name = provider ? null : text('name', '', { maxlength: 63, 'aria-required': 'true' });
  // The kind cannot change once the provider exists.
  const kind = provider ? null : select(Object.entries(KINDS).map(([value, k]) => [value, k.label]), initialKind, { name: 'kind' });
  const kindNow = () => (kind ? kind.value : initialKind);

  const controls = {
    address: text('address', current('address'), { placeholder: 'https://vault.example.com:8200', inputmode: 'url' }),
    namespace: text('namespace', current('namespace'), { placeholder: 'admin/team-a' }),
    region: text('region', current('region'), { placeholder: 'eu-west-1' }),
    endpoint: text('endpoint', current('endpoint'), { placeholder: 'https://secretsmanager.eu-west-1.amazonaws.com', inputmode: 'url' }),
    sts_endpoint: text('sts_endpoint', current('sts_endpoint'), { placeholder: 'https://sts.eu-west-1.amazonaws.com', inputmode: 'url' }),
  };
  const caPem = h('textarea', { name: 'ca_pem', rows: 5, spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' });
  caPem.value = current('ca_pem') || '';
  const kindGroups = {
    vault: h('div', { class: 'group' },
      field({ label: 'Address', control: controls.address, field: 'address', hint: 'The server’s base URL. Link-local and cloud metadata addresses are refused.' }),
      field({ label: 'Vault namespace (optional)', control: controls.namespace, field: 'namespace', hint: 'Sent as X-Vault-Namespace, for Vault Enterprise and OpenBao namespaces.' }),
    ),
    'aws-secrets-manager': h('div', { class: 'group' },
      field({ label: 'Region', control: controls.region, field: 'region', hint: 'The AWS region that holds the secrets, e.g. eu-west-1.' }),
      field({ label: 'Endpoint (optional)', control: controls.endpoint, field: 'endpoint', hint: 'A VPC endpoint or another partition’s Secrets Manager URL. Empty: the region’s public endpoint.' }),
      field({ label: 'STS endpoint (optional)', control: controls.sts_endpoint, field: 'sts_endpoint', hint: 'Used by web identity and the connection check. Empty: the region’s.' }),
    ),
  };

  const method = select(KINDS[initialKind].methods, auth.method, { name: 'method' });
  const credential = (chosen, fieldName) => select(credentialOptions, chosen || '', { name: fieldName });
  const tokenSecret = credential(auth.token_secret, 'token_secret');
  const k8sRole = text('role', auth.method === 'kubernetes' ? auth.role : '');
  const k8sMount = text('mount', auth.method === 'kubernetes' ? auth.mount : 'kubernetes');
  const roleId = text('role_id', auth.role_id);
  const secretIdSecret = credential(auth.secret_id_secret, 'secret_id_secret');
  const approleMount = text('mount', auth.method === 'approle' ? auth.mount : 'approle');
  const accessKeyId = text('access_key_id', auth.access_key_id, { placeholder: 'AKIAIOSFODNN7EXAMPLE' });
  const secretAccessKeySecret = credential(auth.secret_access_key_secret, 'secret_access_key_secret');
  const roleArn = text('role_arn', auth.role_arn, { placeholder: 'arn:aws:iam::123456789012:role/agyn-secrets' });
  const authGroups = {
    token: h('div', { class: 'group' },
      field({ label: 'Token secret', control: tokenSecret, field: 'auth.token_secret', hint: 'The local secret that holds the Vault token.' }),
    ),
    kubernetes: h('div', { class: 'group' },
      field({ label: 'Role', control: k8sRole, field: 'auth.role', hint: 'The Vault role bound to this service’s service account.' }),
      field({ label: 'Auth mount', control: k8sMount, field: 'auth.mount' }),
      h('p', { class: 'hint', text: 'Logs in with this server’s own service account token, from the file its --service-account-token-file flag names. Only a platform admin may configure it.' }),
    ),
    approle: h('div', { class: 'group' },
      field({ label: 'Role ID', control: roleId, field: 'auth.role_id' }),
      field({ label: 'Secret ID secret', control: secretIdSecret, field: 'auth.secret_id_secret', hint: 'The local secret that holds the AppRole secret ID.' }),
      field({ label: 'Auth mount', control: approleMount, field: 'auth.mount' }),
    ),
    static: h('div', { class: 'group' },
      field({ label: 'Access key ID', control: accessKeyId, field: 'auth.access_key_id', hint: 'Upper-case letters and digits. It is not a secret; the secret access key is.' }),
      field({ label: 'Secret access key secret', control: secretAccessKeySecret, field: 'auth.secret_access_key_secret', hint: 'The local secret that holds the secret access key.' }),
    ),
    'web-identity': h('div', { class: 'group' },
      field({ label: 'Role ARN', control: roleArn, field: 'auth.role_arn', hint: 'The IAM role to assume with this server’s web identity token (IRSA), from the file its --web-identity-token-file flag names. Only a platform admin may configure it.' }),
    ),
  };
  const showMethod = () => showOnly(authGroups, method.value);
  method.addEventListener('change', showMethod);
  const showKind = () => {
    const chosen = KINDS[kindNow()];
    showOnly(kindGroups, kindNow());
    if (!chosen.methods.some(([value]) => value === method.value)) {
      replace(method, chosen.methods.map(([value, label]) => h('option', { value, text: label })));
      method.value = chosen.methods[0][0];
    }
    showMethod();
  };
  if (kind) kind.addEventListener('change', showKind);
  showKind();

  const save = h('button', { type: 'submit', class: 'primary', text: provider ? 'Save changes' : 'Save' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-label': provider ? 'Provider settings' : 'New provider' },
    name ? field({ label: 'Name', control: name, field: 'name', hint: 'Lower-case letters, digits and “-”, at most 63 characters.' }) : null,
    kind ? field({ label: 'Kind', control: kind, field: 'kind', hint: 'Where the secrets are kept. It cannot change later.' }) : null,
    kindGroups.vault,
    kindGroups['aws-secrets-manager'],
    field({ label: 'CA certificate, PEM (optional)', control: caPem, field: 'ca_pem', hint: 'Trust this CA for the provider’s certificate instead of the system roots.' }),
    h('fieldset', { class: 'field' },
      h('legend', { text: 'Authentication' }),
      field({ label: 'Method', control: method, field: 'auth.method' }),
      Object.values(authGroups),
    ),
    h('div', { class: 'buttons' }, save, linkButton(ctx.link('providers'), 'Cancel')),
  );
  const optional = (value) => value.trim() || undefined;
  const authBody = () => {
    switch (method.value) {
      case 'kubernetes':
        return { method: 'kubernetes', role: k8sRole.value.trim(), mount: optional(k8sMount.value) };
      case 'approle':
        return { method: 'approle', role_id: roleId.value.trim(), secret_id_secret: secretIdSecret.value, mount: optional(approleMount.value) };
      case 'static':
        return { method: 'static', access_key_id: accessKeyId.value.trim(), secret_access_key_secret: secretAccessKeySecret.value };
      case 'web-identity':
        return { method: 'web-identity', role_arn: roleArn.value.trim() };
      default:
        return { method: 'token', token_secret: tokenSecret.value };
    }
  };
  /**
   * The settings of the chosen kind. A new provider leaves an empty one
   * out, so that the API names what is required. An update sends `null`
   * for an empty optional setting, which removes it, and an empty required
   * one as it is, for the API to refuse.
   */
  const settingsBody = (update) => {
    const chosen = KINDS[kindNow()];
    const body = {};
    const empty = (key) => {
      if (!update) return undefined;
      return chosen.required.includes(key) ? '' : null;
    };
    for (const key of chosen.settings) {
      body[key] = controls[key].value.trim() || empty(key);
    }
    body.ca_pem = caPem.value.trim() ? caPem.value : empty('ca_pem');
    body.auth = authBody();
    return body;
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      let saved;
      if (provider) {
        saved = await api.updateProvider(ctx.org, provider.id, settingsBody(true));
      } else {
        saved = await api.createProvider(ctx.org, { name: name.value.trim(), kind: kind.value, ...settingsBody(false) });
      }
      ctx.go(ctx.link('providers', slug(saved)), { replace: Boolean(provider), flash: `Provider “${saved.name}” saved.` });
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  return { form, focus: name || controls.address };
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
    h('p', { class: 'hint', text: 'Logs in with the saved settings and reports what the provider answers.' }),
    h('div', { class: 'buttons' }, button),
    result,
  );
}

/** A remote secret's key, or that it takes the whole value. */
export function remoteKey(secret) {
  return secret.remote_key
    ? [h('span', { class: 'muted', text: ' key ' }), code(secret.remote_key)]
    : h('span', { class: 'muted', text: ' whole value' });
}

function usedBy(ctx, provider, secrets) {
  const using = secrets.filter((s) => s.provider_id === provider.id);
  return h('section', { 'aria-labelledby': 'provider-used-by' },
    h('h2', { id: 'provider-used-by', text: 'Secrets read from this provider' }),
    using.length
      ? h('ul', {}, using.map((s) => h('li', {}, h('a', { href: ctx.link('secrets', slug(s)), text: s.name }), ' ', code(s.remote_path), remoteKey(s))))
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
        ['Kind', kindLabel(provider.kind)],
        ...kindFacts(provider),
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
      ['Kind', kindLabel(provider.kind)],
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
