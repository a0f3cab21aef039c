// Secrets: the list, the new-secret form, the page that rotates or
// repoints one, and the delete page that shows what still uses it.
//
// A value typed here goes into exactly one request. The control is emptied
// as soon as the request has been handed to the browser, and no variable
// keeps it; the API never sends it back.

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
import { providerLabel, remoteKey, takesWholeValues } from './providers.js';
import { valueField, MAX_VALUE_BYTES } from './value.js';

const NAME_HINT = 'Lower-case letters, digits and “-”, at most 63 characters. Pods name it in secrets.agyn.io/env.';

function providerCell(ctx, secret, providersById) {
  if (secret.storage !== 'remote') return h('span', { class: 'muted', text: 'Encrypted in the platform database' });
  const provider = providersById.get(secret.provider_id);
  return h(
    'div',
    { class: 'remote' },
    provider
      ? h('a', { href: ctx.link('providers', slug(provider)), text: provider.name })
      : h('span', { text: secret.provider_id }),
    h('span', { class: 'path' }, code(secret.remote_path), remoteKey(secret)),
  );
}

export async function list(ctx) {
  const [secrets, providers] = await Promise.all([
    api.secrets(ctx.org),
    api.providers(ctx.org).catch(() => []),
  ]);
  const providersById = new Map(providers.map((p) => [p.id, p]));
  // A server without namespace limits says nothing about them.
  const limits = secrets.some((s) => Array.isArray(s.allowed_namespaces));
  const columns = ['Name', 'Storage', 'Provider and path', ...(limits ? ['Namespaces'] : []), 'Version', 'Last updated'];
  if (ctx.canWrite) columns.push('Actions');
  const rows = secrets.map((secret) => {
    const cells = [
      h('a', { href: ctx.link('secrets', slug(secret)), class: 'name', text: secret.name }),
      h('span', { class: `tag tag-${secret.storage}`, text: secret.storage === 'local' ? 'Local' : 'Remote' }),
      providerCell(ctx, secret, providersById),
      limits ? namespacesSummary(secret, 'All') : null,
      h('span', { class: 'version', text: String(secret.version) }),
      when(secret.updated_at),
    ].filter((cell) => cell !== null);
    if (ctx.canWrite) {
      cells.push(
        h('div', { class: 'row-actions' },
          h('a', { href: ctx.link('secrets', slug(secret)), text: 'Edit', 'aria-label': `Edit ${secret.name}` }),
          h('a', { href: ctx.link('secrets', slug(secret), 'delete'), class: 'danger-link', text: 'Delete', 'aria-label': `Delete ${secret.name}` }),
        ),
      );
    }
    return cells;
  });
  ctx.show(
    heading('Secrets', ctx.canWrite && linkButton(ctx.link('secrets', 'new'), 'New secret', { kind: 'primary' })),
    h('p', { class: 'lead', text: 'Values are resolved when a pod starts: local ones are decrypted here, remote ones are read from their provider. Values are never shown.' }),
    secrets.length
      ? table({ caption: 'Secrets', columns, rows })
      : h('p', { class: 'empty', text: ctx.canWrite ? 'No secrets yet. Create the first one with “New secret”.' : 'No secrets yet.' }),
  );
}

/** The namespaces a secret may be used in, as one cell or fact. */
function namespacesSummary(secret, everywhere) {
  const list = secret.allowed_namespaces || [];
  if (!list.length) return h('span', { class: 'muted', text: everywhere });
  return h('span', { class: 'namespaces' }, list.map((pattern) => code(pattern)));
}

/** The namespace names and globs in `text`, split at commas, spaces and line breaks. */
function parseNamespaces(text) {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** The allowed-namespaces control, filled from `secret`. */
function namespacesField(ctx, secret = {}) {
  const control = h('textarea', {
    name: 'allowed_namespaces',
    rows: 3,
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'none',
    class: 'namespaces-input',
  });
  control.value = (secret.allowed_namespaces || []).join('\n');
  const node = field({
    label: 'Allowed namespaces (optional)',
    control,
    field: 'allowed_namespaces',
    hint: [
      'Namespace names, or globs such as ', code('team-a-*'), ', separated by commas or line breaks. ',
      `Empty: every namespace bound to ${ctx.orgName}.`,
    ],
  });
  return { node, control, value: () => parseNamespaces(control.value) };
}

function providerOptions(providers) {
  return [['', providers.length ? 'Choose a provider' : 'No providers yet'], ...providers.map((p) => [p.id, providerLabel(p)])];
}

/**
 * The provider, remote path and remote key controls, filled from `secret`.
 * What the path and key mean follows the chosen provider's kind: an AWS
 * Secrets Manager secret may leave the key empty to be taken whole.
 */
function remoteFields(ctx, providers, secret = {}) {
  const provider = select(providerOptions(providers), secret.provider_id || '', { name: 'provider_id' });
  const path = h('input', { type: 'text', name: 'remote_path', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: secret.remote_path || null });
  const key = h('input', { type: 'text', name: 'remote_key', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: secret.remote_key || null });
  const noProviders = providers.length
    ? null
    : h('p', { class: 'hint' }, 'This organization has no providers. ', ctx.canWrite ? h('a', { href: ctx.link('providers', 'new'), text: 'Add a provider' }) : null);
  const pathField = field({ label: 'Remote path', control: path, field: 'remote_path', hint: ' ' });
  const keyField = field({ label: 'Remote key', control: key, field: 'remote_key', hint: ' ' });
  const pathHint = pathField.querySelector('.hint');
  const keyHint = keyField.querySelector('.hint');
  const keyLabel = keyField.querySelector('label');
  const chosen = () => providers.find((p) => p.id === provider.value);
  const describe = () => {
    const whole = takesWholeValues(chosen());
    // No placeholders: text in an empty field reads as a value already there.
    if (whole) {
      replace(pathHint, 'The secret’s name or ARN in AWS Secrets Manager, for example ', code('prod/db'), '.');
      keyLabel.textContent = 'Remote key (optional)';
      replace(keyHint, 'A key of the secret’s JSON value, for example ', code('password'), '. Leave empty to take a plain-string secret whole.');
    } else {
      replace(pathHint, 'The Vault API path: KV v2 ', code('kv/data/prod/name'), ', KV v1 ', code('secret/prod/name'), '.');
      keyLabel.textContent = 'Remote key';
      replace(keyHint, 'The key inside the secret’s data, for example ', code('password'), ' or ', code('api_key'), '.');
    }
  };
  provider.addEventListener('change', () => {
    // A refusal of the key was about the provider chosen before.
    clearErrors(keyField);
    describe();
  });
  describe();
  return {
    provider,
    path,
    key,
    nodes: [
      field({ label: 'Provider', control: provider, field: 'provider_id', extra: noProviders }),
      pathField,
      keyField,
    ],
  };
}

export async function create(ctx) {
  const providers = await api.providers(ctx.org);
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 63, 'aria-required': 'true' });
  const local = h('input', { type: 'radio', name: 'storage', value: 'local', id: 'storage-local', checked: true, 'data-field': 'storage' });
  const remote = h('input', { type: 'radio', name: 'storage', value: 'remote', id: 'storage-remote' });
  const value = valueField({ label: 'Value', hint: 'Stored encrypted. It is never shown again, here or in the API.' });
  const remoteControls = remoteFields(ctx, providers);
  const namespaces = namespacesField(ctx);
  const groups = {
    local: h('div', { class: 'group' }, value.node),
    remote: h('div', { class: 'group' }, remoteControls.nodes),
  };
  const storage = h('fieldset', { class: 'field choices' },
    h('legend', { text: 'Storage' }),
    h('label', { class: 'choice', for: 'storage-local' }, local, h('span', {}, h('strong', { text: 'Local' }), h('span', { class: 'hint', text: 'The value is kept here, encrypted at rest.' }))),
    h('label', { class: 'choice', for: 'storage-remote' }, remote, h('span', {}, h('strong', { text: 'Remote' }), h('span', { class: 'hint', text: 'The value stays in its provider (Vault, OpenBao or AWS Secrets Manager) and is read at every pod start.' }))),
  );
  const toggle = () => showOnly(groups, remote.checked ? 'remote' : 'local');
  local.addEventListener('change', toggle);
  remote.addEventListener('change', toggle);
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save' });
  const form = h('form', { class: 'card', novalidate: true },
    field({ label: 'Name', control: name, field: 'name', hint: NAME_HINT }),
    storage,
    groups.local,
    groups.remote,
    namespaces.node,
    h('div', { class: 'buttons' }, save, linkButton(ctx.link('secrets'), 'Cancel')),
  );
  toggle();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (local.checked && value.tooLong()) {
      showError(form, tooLong());
      return;
    }
    save.disabled = true;
    const common = { name: name.value.trim() };
    const allowed = namespaces.value();
    // Left out when empty, so that a server without namespace limits takes the form.
    if (allowed.length) common.allowed_namespaces = allowed;
    let request;
    const typed = local.checked && value.control.value !== '';
    if (local.checked) {
      request = api.createSecret(ctx.org, { ...common, storage: 'local', value: value.take() });
    } else {
      request = api.createSecret(ctx.org, {
        ...common,
        storage: 'remote',
        provider_id: remoteControls.provider.value || undefined,
        remote_path: remoteControls.path.value.trim(),
        // Left out when empty: the whole value of an AWS secret; the API
        // says so next to the field when the provider needs a key.
        remote_key: remoteControls.key.value.trim() || undefined,
      });
    }
    try {
      const created = await request;
      ctx.go(ctx.link('secrets', slug(created)), { flash: `Secret “${created.name}” saved (version ${created.version}).` });
    } catch (error) {
      save.disabled = false;
      if (typed) value.say('info', 'The value was cleared when it was sent: enter it again.');
      showError(form, error);
    }
  });
  ctx.show(
    heading('New secret'),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('secrets'), text: '← Secrets' })),
    form,
  );
  name.focus();
}

/** The refusal the API would give, said before the value is sent. */
function tooLong() {
  return { field: 'value', message: `value: is longer than ${MAX_VALUE_BYTES} bytes` };
}

function facts(secret, providersById, ctx) {
  const pairs = [
    ['Storage', h('span', { class: `tag tag-${secret.storage}`, text: secret.storage === 'local' ? 'Local' : 'Remote' })],
  ];
  if (secret.storage === 'local') {
    pairs.push(['Value', h('span', { class: 'badge', id: 'value-state', text: secret.value_set ? 'set' : 'not set' })]);
  } else {
    pairs.push(['Provider', providerCell(ctx, secret, providersById)]);
  }
  if (Array.isArray(secret.allowed_namespaces)) {
    pairs.push(['Allowed namespaces', h('span', { id: 'secret-namespaces' }, namespacesSummary(secret, `Every namespace bound to ${ctx.orgName}`))]);
  }
  pairs.push(
    ['Version', h('span', { class: 'version', id: 'secret-version', text: String(secret.version) })],
    ['Created', when(secret.created_at)],
    ['Last updated', when(secret.updated_at)],
  );
  return details(pairs);
}

function rotateForm(ctx, secret) {
  const value = valueField({
    label: 'New value',
    hint: 'The version goes up. Running pods keep the value they started with until they restart.',
  });
  const save = h('button', { type: 'submit', class: 'primary', text: 'Rotate value' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'rotate-title' },
    h('h2', { id: 'rotate-title', text: 'Rotate the value' }),
    value.node,
    h('div', { class: 'buttons' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    if (value.tooLong()) {
      showError(form, tooLong());
      return;
    }
    save.disabled = true;
    const typed = value.control.value !== '';
    const request = api.updateSecret(ctx.org, secret.id, { value: value.take() });
    try {
      const updated = await request;
      ctx.go(location.pathname, { replace: true, flash: `Value rotated: “${updated.name}” is now version ${updated.version}.` });
    } catch (error) {
      save.disabled = false;
      if (typed) value.say('info', 'The value was cleared when it was sent: enter it again.');
      showError(form, error);
    }
  });
  return form;
}

/** Where the secret may be used: its own form, as the change makes no new version. */
function namespacesForm(ctx, secret) {
  const namespaces = namespacesField(ctx, secret);
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save namespaces' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'namespaces-title' },
    h('h2', { id: 'namespaces-title', text: 'Where it may be used' }),
    namespaces.node,
    h('div', { class: 'buttons' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const updated = await api.updateSecret(ctx.org, secret.id, { allowed_namespaces: namespaces.value() });
      const list = updated.allowed_namespaces || [];
      ctx.go(location.pathname, {
        replace: true,
        flash: list.length
          ? `“${updated.name}” may now be used in ${list.join(', ')}.`
          : `“${updated.name}” may now be used in every namespace bound to ${ctx.orgName}.`,
      });
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  return form;
}

function repointForm(ctx, secret, providers) {
  const controls = remoteFields(ctx, providers, secret);
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save' });
  const form = h('form', { class: 'card', novalidate: true, 'aria-labelledby': 'repoint-title' },
    h('h2', { id: 'repoint-title', text: 'Where the value lives' }),
    controls.nodes,
    h('div', { class: 'buttons' }, save),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const updated = await api.updateSecret(ctx.org, secret.id, {
        provider_id: controls.provider.value || undefined,
        remote_path: controls.path.value.trim(),
        // null clears the key: the whole value is read.
        remote_key: controls.key.value.trim() || null,
      });
      ctx.go(location.pathname, { replace: true, flash: `Secret repointed: “${updated.name}” is now version ${updated.version}.` });
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  return form;
}

export async function show(ctx) {
  const id = ctx.params[0];
  const [secret, providers, references] = await Promise.all([
    api.secret(ctx.org, id),
    api.providers(ctx.org).catch(() => []),
    api.references(ctx.org, id).catch((error) => error),
  ]);
  const providersById = new Map(providers.map((p) => [p.id, p]));
  let edit = null;
  if (ctx.canWrite) edit = secret.storage === 'local' ? rotateForm(ctx, secret) : repointForm(ctx, secret, providers);
  const limits = ctx.canWrite && Array.isArray(secret.allowed_namespaces) ? namespacesForm(ctx, secret) : null;
  ctx.show(
    heading(
      secret.name,
      ctx.canWrite && linkButton(`${ctx.link('audit')}?secret=${encodeURIComponent(secret.name)}`, 'Audit history'),
      ctx.canWrite && linkButton(ctx.link('secrets', slug(secret), 'delete'), 'Delete', { kind: 'danger', label: `Delete ${secret.name}` }),
    ),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('secrets'), text: '← Secrets' })),
    facts(secret, providersById, ctx),
    edit,
    limits,
    h('section', { 'aria-labelledby': 'used-by' },
      h('h2', { id: 'used-by', text: 'Used by' }),
      references instanceof Error ? notice('error', references.message) : referencesView(ctx, references, 3),
    ),
  );
}

function countText(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * What uses a secret, grouped: pods by namespace and owner, image pull
 * secrets, providers, and runtime consumers. `level` is the heading level
 * of each group.
 */
export function referencesView(ctx, references, level = 2) {
  if (!references.length) return h('p', { class: 'empty', text: 'Nothing uses this secret now.' });
  const tag = `h${level}`;
  const pods = references.filter((r) => r.kind === 'pod');
  const pulls = references.filter((r) => r.kind === 'image_pull_secret');
  const providers = references.filter((r) => r.kind === 'provider');
  const runtime = references.filter((r) => r.kind === 'runtime');
  const groups = [];
  if (pods.length) {
    // namespace → owner → pod → the containers and variables that use it
    const byNamespace = new Map();
    for (const ref of pods) {
      const owner = ref.owner_kind ? `${ref.owner_kind} ${ref.owner_name || ''}`.trim() : 'No owner';
      const byOwner = byNamespace.get(ref.namespace) || new Map();
      byNamespace.set(ref.namespace, byOwner);
      const byPod = byOwner.get(owner) || new Map();
      byOwner.set(owner, byPod);
      const uses = byPod.get(ref.pod) || [];
      byPod.set(ref.pod, uses);
      uses.push(ref);
    }
    const podCount = [...byNamespace.values()].reduce(
      (n, byOwner) => n + [...byOwner.values()].reduce((m, byPod) => m + byPod.size, 0),
      0,
    );
    const podItem = (pod, uses) => {
      const latest = uses.map((u) => u.last_seen_at).sort().at(-1);
      return h('li', { class: 'pod' },
        code(pod),
        h('span', { class: 'muted', text: ' · last admitted ' }), when(latest),
        h('ul', { class: 'uses' },
          uses.map((u) => h('li', {}, h('span', { class: 'muted', text: 'container ' }), u.container, h('span', { class: 'muted', text: ' env ' }), code(u.env_var))),
        ),
      );
    };
    groups.push(
      h('section', { class: 'refs refs-pods' },
        h(tag, { text: `Pods (${podCount})` }),
        h('p', { class: 'hint', text: 'Pods admitted with this secret, by namespace and owner. A name ending in “-” is the pod’s generateName.' }),
        h('ul', { class: 'tree' },
          [...byNamespace].map(([namespace, byOwner]) =>
            h('li', { class: 'namespace' },
              h('span', {}, h('span', { class: 'muted', text: 'Namespace ' }), h('strong', { text: namespace })),
              h('ul', {},
                [...byOwner].map(([owner, byPod]) =>
                  h('li', { class: 'owner' },
                    h('span', {}, h('strong', { text: owner }), h('span', { class: 'muted', text: ` · ${countText(byPod.size, 'pod', 'pods')}` })),
                    h('ul', {}, [...byPod].map(([pod, uses]) => podItem(pod, uses))),
                  ),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  if (pulls.length) {
    groups.push(
      h('section', { class: 'refs refs-pull' },
        h(tag, { text: `Image pull secrets (${pulls.length})` }),
        h('ul', {}, pulls.map((r) => h('li', {}, h('a', { href: ctx.link('image-pull-secrets', slug(r)), text: r.name }), h('span', { class: 'muted', text: ' uses it as its registry password' })))),
      ),
    );
  }
  if (providers.length) {
    groups.push(
      h('section', { class: 'refs refs-providers' },
        h(tag, { text: `Providers (${providers.length})` }),
        h('ul', {}, providers.map((r) => h('li', {}, h('a', { href: ctx.link('providers', slug(r)), text: r.name }), h('span', { class: 'muted', text: ' uses it as its login credential' })))),
      ),
    );
  }
  if (runtime.length) {
    groups.push(
      h('section', { class: 'refs refs-runtime' },
        h(tag, { text: `Runtime consumers (${runtime.length})` }),
        h('ul', {}, runtime.map((r) => h('li', {}, code(r.consumer), h('span', { class: 'muted', text: ' · last resolved ' }), when(r.last_seen_at)))),
      ),
    );
  }
  return h('div', { class: 'references' }, groups);
}

export async function remove(ctx) {
  const id = ctx.params[0];
  const [secret, references] = await Promise.all([api.secret(ctx.org, id), api.references(ctx.org, id)]);
  // `total` is the count of a refusal, which lists only the first references.
  const draw = (refs, message, total = refs.length) => {
    const inUse = total > 0;
    const button = h('button', { type: 'submit', class: 'danger', text: inUse ? 'Delete anyway' : 'Delete secret' });
    const form = h('form', { class: 'confirm', novalidate: true },
      h('div', { class: 'buttons' }, button, linkButton(ctx.link('secrets', slug(secret)), 'Cancel')),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form);
      button.disabled = true;
      try {
        await api.deleteSecret(ctx.org, secret.id, inUse);
        ctx.go(ctx.link('secrets'), { flash: `Secret “${secret.name}” deleted.` });
      } catch (error) {
        button.disabled = false;
        if (error.status === 409 && error.references) {
          // The refusal lists the first references only: show them all.
          const current = await api.references(ctx.org, secret.id).catch(() => null);
          if (current && current.length) draw(current, error.message);
          else draw(error.references, error.message, error.referenceCount ?? error.references.length);
        } else showError(form, error);
      }
    });
    ctx.show(
      heading(`Delete secret “${secret.name}”`),
      h('p', { class: 'lead' }, h('a', { href: ctx.link('secrets'), text: '← Secrets' })),
      message ? notice('error', message) : null,
      inUse
        ? notice('warn', `“${secret.name}” is in use by ${countText(total, 'object', 'objects')}. Running pods keep the value they started with; new pods that name it will be refused, and everything listed below loses it.`)
        : h('p', { text: 'Nothing uses this secret now. Deleting it cannot be undone.' }),
      inUse && refs.length < total
        ? h('p', { class: 'hint', text: `The first ${refs.length} are listed; the secret’s page lists them all.` })
        : null,
      inUse ? referencesView(ctx, refs, 2) : null,
      form,
    );
  };
  draw(references, null);
}
