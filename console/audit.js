// The audit log of an organization, for owners and admins: who changed
// what and who read which value, newest first, a page at a time, for the
// whole organization or one secret.

import { api } from './api.js';
import { h, table, when, code, field, heading, select, notice, replace } from './dom.js';

/** Events per page. */
const PAGE = 20;

const ACTIONS = {
  'organization.create': 'Organization created',
  'token.create': 'Token created',
  'token.revoke': 'Token revoked',
  'secret.create': 'Secret created',
  'secret.rotate': 'Value rotated',
  'secret.repoint': 'Secret repointed',
  'secret.delete': 'Secret deleted',
  'secret.delete.forced': 'Secret deleted while in use',
  'secret.resolve': 'Value read',
  'secret.fence': 'Allowed namespaces changed',
  'provider.create': 'Provider created',
  'provider.update': 'Provider changed',
  'provider.delete': 'Provider deleted',
  'image_pull_secret.create': 'Image pull secret created',
  'image_pull_secret.delete': 'Image pull secret deleted',
  'namespace.bind': 'Namespace bound',
  'namespace.unbind': 'Namespace unbound',
};

const KINDS = {
  organization: 'organization',
  token: 'token',
  secret: 'secret',
  provider: 'provider',
  image_pull_secret: 'image pull secret',
  namespace: 'namespace',
};

/** Who did it: a token by its name, a pod by namespace and name. */
function actorCell(actor) {
  const token = /^token:([^:]*):(.*)$/.exec(actor);
  if (token) return h('span', { title: actor }, h('span', { class: 'muted', text: 'token ' }), token[1]);
  const pod = /^pod:(.*)$/.exec(actor);
  if (pod) return h('span', { title: actor }, h('span', { class: 'muted', text: 'pod ' }), pod[1]);
  return code(actor);
}

function actionCell(action) {
  const label = ACTIONS[action];
  return h('span', { class: 'action' }, label ? h('span', { text: label }) : null, code(action));
}

function targetCell(ctx, event, secretsById) {
  const kind = KINDS[event.target_kind] || event.target_kind;
  const secret = event.target_kind === 'secret' ? secretsById.get(event.target_id) : null;
  return h('span', {},
    h('span', { class: 'muted', text: `${kind} ` }),
    secret ? h('a', { href: ctx.link('secrets', secret.name), text: event.target_name }) : h('strong', { text: event.target_name }),
  );
}

/** Reads the log a page at a time, the whole organization's or one secret's. */
function reader(org, secret) {
  let cursor = null;
  return async () => {
    const page = await api.auditPage(org, { limit: PAGE, cursor, secret });
    cursor = page.next_cursor || null;
    return { events: page.items, more: Boolean(cursor) };
  };
}

export async function list(ctx) {
  const secret = new URLSearchParams(location.search).get('secret') || '';
  const secrets = await api.secrets(ctx.org);
  const secretsById = new Map(secrets.map((s) => [s.id, s]));
  const next = reader(ctx.org, secret);
  const first = await next();

  const names = secrets.map((s) => s.name);
  // A deleted secret's history is still there to read.
  if (secret && !names.includes(secret)) names.unshift(secret);
  const filter = select([['', 'All events'], ...names.map((n) => [n, n])], secret, { name: 'secret' });
  const filterForm = h('form', { class: 'filter', novalidate: true, role: 'search', 'aria-label': 'Filter the audit log' },
    field({ label: 'Secret', control: filter }),
    h('button', { type: 'submit', text: 'Show' }),
  );
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = filter.value ? `?secret=${encodeURIComponent(filter.value)}` : '';
    ctx.go(`${ctx.link('audit')}${query}`);
  });

  const columns = ['When', 'Who', 'What', 'Target'];
  const row = (e) => [when(e.at, { seconds: true }), actorCell(e.actor), actionCell(e.action), targetCell(ctx, e, secretsById)];
  /** The table rows of `events`, each marked with its event's id. */
  const rowsOf = (events) => {
    const rows = [...table({ columns, rows: events.map(row) }).querySelectorAll('tbody tr')];
    rows.forEach((tr, i) => { tr.dataset.event = events[i].id; });
    return rows;
  };
  const shown = table({ caption: secret ? `Audit events of ${secret}` : 'Audit events', columns, rows: [] });
  shown.id = 'audit-events';
  const body = shown.querySelector('tbody');
  body.append(...rowsOf(first.events));
  const status = h('p', { class: 'muted audit-status', role: 'status', 'aria-live': 'polite', tabindex: '-1' });
  const older = h('button', { type: 'button', text: 'Show older events' });
  let count = first.events.length;
  const describe = (more) => {
    const events = `${count} ${count === 1 ? 'event' : 'events'}`;
    status.textContent = more ? `${events} shown.` : `${events} shown: that is all of them.`;
    older.hidden = !more;
  };
  older.addEventListener('click', async () => {
    older.disabled = true;
    try {
      const page = await next();
      // The new rows go in the same table, so that it reads newest to oldest.
      body.append(...rowsOf(page.events));
      count += page.events.length;
      describe(page.more);
      // The button goes with the last page; the reader is told where it ended.
      if (!page.more) status.focus();
    } catch (error) {
      replace(status, notice('error', error.message));
    } finally {
      older.disabled = false;
    }
  });
  describe(first.more);

  ctx.show(
    heading(secret ? `Audit log of “${secret}”` : 'Audit log'),
    h('p', { class: 'lead', text: 'Who changed what in this organization and who read which value, newest first. Values are never recorded.' }),
    filterForm,
    count ? [shown, h('div', { class: 'pager' }, older, status)]
      : h('p', { class: 'empty', text: secret ? `No events for “${secret}”.` : 'No events yet.' }),
  );
}
