// Image pull secrets: registry credentials whose password is one of the
// organization's secrets. Pods ask for them by name in
// secrets.agyn.io/image-pull-secrets.

import { api } from './api.js';
import {
  h,
  table,
  when,
  code,
  details,
  field,
  showError,
  clearErrors,
  heading,
  slug,
  linkButton,
  select,
} from './dom.js';

function passwordLink(ctx, record) {
  // A secret called "new" cannot be reached by name: that path is the form.
  if (record.password_secret === 'new') return code(record.password_secret);
  return h('a', { href: ctx.link('secrets', record.password_secret), text: record.password_secret });
}

export async function list(ctx) {
  const records = await api.pullSecrets(ctx.org);
  const columns = ['Name', 'Registry', 'Username', 'Password secret', 'Last updated'];
  if (ctx.canWrite) columns.push('Actions');
  const rows = records.map((r) => {
    const cells = [
      h('a', { href: ctx.link('image-pull-secrets', slug(r)), class: 'name', text: r.name }),
      code(r.registry),
      r.username,
      passwordLink(ctx, r),
      when(r.updated_at),
    ];
    if (ctx.canWrite) {
      cells.push(
        h('div', { class: 'row-actions' },
          h('a', { href: ctx.link('image-pull-secrets', slug(r), 'delete'), class: 'danger-link', text: 'Delete', 'aria-label': `Delete ${r.name}` }),
        ),
      );
    }
    return cells;
  });
  ctx.show(
    heading('Image pull secrets', ctx.canWrite && linkButton(ctx.link('image-pull-secrets', 'new'), 'New image pull secret', { kind: 'primary' })),
    h('p', { class: 'lead' },
      'Registry credentials put into a pod’s namespace when the pod names them in ',
      code('secrets.agyn.io/image-pull-secrets'),
      '.',
    ),
    records.length
      ? table({ caption: 'Image pull secrets', columns, rows })
      : h('p', { class: 'empty', text: 'No image pull secrets yet.' }),
  );
}

export async function create(ctx) {
  const secrets = await api.secrets(ctx.org);
  const input = (name, attrs = {}) => h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', ...attrs });
  const name = input('name', { maxlength: 63, 'aria-required': 'true' });
  const registry = input('registry', { placeholder: 'ghcr.io', 'aria-required': 'true' });
  const username = input('username', { 'aria-required': 'true' });
  const password = select(
    [['', secrets.length ? 'Choose a secret' : 'No secrets yet'], ...secrets.map((s) => [s.name, s.name])],
    '',
    { name: 'password_secret', 'aria-required': 'true' },
  );
  const save = h('button', { type: 'submit', class: 'primary', text: 'Save' });
  const form = h('form', { class: 'card', novalidate: true },
    field({ label: 'Name', control: name, field: 'name', hint: 'Pods name it in secrets.agyn.io/image-pull-secrets; the Kubernetes Secret is called agyn-pull-<name>.' }),
    field({ label: 'Registry', control: registry, field: 'registry', hint: 'The registry host, e.g. ghcr.io or registry.example.com:5000.' }),
    field({ label: 'Username', control: username, field: 'username' }),
    field({ label: 'Password secret', control: password, field: 'password_secret', hint: 'The secret that holds the registry password or access token.' }),
    h('div', { class: 'buttons' }, save, linkButton(ctx.link('image-pull-secrets'), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const created = await api.createPullSecret(ctx.org, {
        name: name.value.trim(),
        registry: registry.value.trim(),
        username: username.value.trim(),
        password_secret: password.value,
      });
      ctx.go(ctx.link('image-pull-secrets'), { flash: `Image pull secret “${created.name}” saved.` });
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading('New image pull secret'),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('image-pull-secrets'), text: '← Image pull secrets' })),
    form,
  );
  name.focus();
}

export async function show(ctx) {
  const record = await api.pullSecret(ctx.org, ctx.params[0]);
  ctx.show(
    heading(record.name, ctx.canWrite && linkButton(ctx.link('image-pull-secrets', slug(record), 'delete'), 'Delete', { kind: 'danger', label: `Delete ${record.name}` })),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('image-pull-secrets'), text: '← Image pull secrets' })),
    details([
      ['Registry', code(record.registry)],
      ['Username', record.username],
      ['Password secret', passwordLink(ctx, record)],
      ['Kubernetes Secret', code(`agyn-pull-${record.name}`)],
      ['Created', when(record.created_at)],
      ['Last updated', when(record.updated_at)],
    ]),
  );
}

export async function remove(ctx) {
  const record = await api.pullSecret(ctx.org, ctx.params[0]);
  const button = h('button', { type: 'submit', class: 'danger', text: 'Delete image pull secret' });
  const form = h('form', { class: 'confirm', novalidate: true },
    h('div', { class: 'buttons' }, button, linkButton(ctx.link('image-pull-secrets'), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      await api.deletePullSecret(ctx.org, record.id);
      ctx.go(ctx.link('image-pull-secrets'), { flash: `Image pull secret “${record.name}” deleted.` });
    } catch (error) {
      button.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading(`Delete image pull secret “${record.name}”`),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('image-pull-secrets'), text: '← Image pull secrets' })),
    h('p', {}, 'New pods that name it in ', code('secrets.agyn.io/image-pull-secrets'), ' will be refused. Secrets already written to namespaces stay until removed there.'),
    form,
  );
}
