// API tokens of the organization, for owners and admins. A new token is
// shown once, on the page that created it, and never again.

import { api, session } from './api.js';
import { h, table, when, field, notice, showError, clearErrors, heading, linkButton, select } from './dom.js';

const ROLE_TEXT = {
  owner: 'Owner: reads and changes everything in the organization',
  member: 'Member: reads metadata, changes nothing',
  runtime: 'Runtime: resolves values for a service such as the LLM proxy',
};

export async function list(ctx) {
  const tokens = await api.tokens(ctx.org);
  const rows = tokens.map((t) => [
    h('span', { class: 'name' }, t.name, t.id === ctx.me.token_id ? h('span', { class: 'badge', text: 'this session' }) : null),
    h('span', { class: `role role-${t.role}`, text: t.role }),
    when(t.created_at),
    h('div', { class: 'row-actions' },
      h('a', { href: ctx.link('tokens', t.id, 'revoke'), class: 'danger-link', text: 'Revoke', 'aria-label': `Revoke ${t.name}` }),
    ),
  ]);
  ctx.show(
    heading('Tokens', linkButton(ctx.link('tokens', 'new'), 'New token', { kind: 'primary' })),
    h('p', { class: 'lead', text: 'Tokens are shown once, when they are created; only their hashes are stored.' }),
    tokens.length
      ? table({ caption: 'Tokens', columns: ['Name', 'Role', 'Created', 'Actions'], rows })
      : h('p', { class: 'empty', text: 'No tokens yet.' }),
  );
}

export function create(ctx) {
  const roles = ['member', 'runtime'];
  if (ctx.me.role === 'admin') roles.unshift('owner');
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 63, 'aria-required': 'true' });
  const role = select(roles.map((r) => [r, ROLE_TEXT[r]]), 'member', { name: 'role' });
  const save = h('button', { type: 'submit', class: 'primary', text: 'Create token' });
  const form = h('form', { class: 'card', novalidate: true },
    field({ label: 'Name', control: name, field: 'name', hint: 'Say who or what uses it, e.g. ci or llm-proxy.' }),
    field({
      label: 'Role',
      control: role,
      field: 'role',
      hint: ctx.me.role === 'admin' ? null : 'Owner tokens are made by a platform admin.',
    }),
    h('div', { class: 'buttons' }, save, linkButton(ctx.link('tokens'), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    save.disabled = true;
    try {
      const created = await api.createToken(ctx.org, { name: name.value.trim(), role: role.value });
      showCreated(ctx, created);
    } catch (error) {
      save.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading('New token'),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('tokens'), text: '← Tokens' })),
    form,
  );
  name.focus();
}

function showCreated(ctx, created) {
  const value = h('input', { type: 'text', readonly: true, class: 'token-value', autocomplete: 'off', spellcheck: 'false', value: created.token });
  const copied = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const copy = h('button', { type: 'button', text: 'Copy' });
  copy.addEventListener('click', async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(value.value);
      copied.textContent = 'Copied.';
    } catch {
      copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });
  const title = h('h1', { tabindex: '-1', text: `Token “${created.name}” created` });
  ctx.show(
    h('div', { class: 'page-head' }, title),
    notice('warn', 'Copy the token now. It is shown only this once; if it is lost, revoke it and create another.'),
    h('div', { class: 'card' },
      field({ label: `New ${created.role} token`, control: value }),
      h('div', { class: 'buttons' }, copy, copied),
    ),
    h('p', {}, linkButton(ctx.link('tokens'), 'Done')),
  );
  title.focus();
}

export async function revoke(ctx) {
  const id = ctx.params[0];
  const token = await api.token(ctx.org, id);
  const own = token.id === ctx.me.token_id;
  const button = h('button', { type: 'submit', class: 'danger', text: 'Revoke token' });
  const form = h('form', { class: 'confirm', novalidate: true },
    h('div', { class: 'buttons' }, button, linkButton(ctx.link('tokens'), 'Cancel')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      await api.revokeToken(ctx.org, token.id);
      if (own) {
        session.end();
        ctx.signOut('Signed out: you revoked the token this session used.');
        return;
      }
      ctx.go(ctx.link('tokens'), { flash: `Token “${token.name}” revoked.` });
    } catch (error) {
      button.disabled = false;
      showError(form, error);
    }
  });
  ctx.show(
    heading(`Revoke token “${token.name}”`),
    h('p', { class: 'lead' }, h('a', { href: ctx.link('tokens'), text: '← Tokens' })),
    h('p', { text: `Anything that uses this ${token.role} token is refused from now on. This cannot be undone.` }),
    own ? notice('warn', 'This is the token you are signed in with: revoking it signs you out.') : null,
    form,
  );
}
