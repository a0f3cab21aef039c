// The console's shell: sign-in, the organization picker, the header and
// the router that draws the page each URL names.

import { api, session, whenUnauthorized } from './api.js';
import {
  h,
  replace,
  notice,
  field,
  showError,
  clearErrors,
  heading,
  table,
  when,
} from './dom.js';
import * as secrets from './secrets.js';
import * as providers from './providers.js';
import * as pullSecrets from './pull-secrets.js';
import * as tokens from './tokens.js';

const main = document.getElementById('main');
const top = document.getElementById('top');

/** The signed-in token's identity (`GET /v1/whoami`), held in memory only. */
let me = null;
/** A notice to show on the next page, e.g. "Secret deleted". */
let flash = null;
/** The message the sign-in page shows, e.g. why the session ended. */
let signInMessage = null;
/** Bumped on every navigation, so that a slow page never draws over a newer one. */
let generation = 0;
let firstRender = true;

const ORG = '/organizations/([^/]+)';

const ROUTES = [
  { pattern: /^\/$/, page: home, open: true },
  { pattern: /^\/sign-in$/, page: signIn, open: true },
  { pattern: /^\/organizations$/, page: pickOrganization },
  { pattern: new RegExp(`^${ORG}$`), page: (ctx) => ctx.go(ctx.link('secrets'), { replace: true }) },
  { pattern: new RegExp(`^${ORG}/secrets$`), page: secrets.list, section: 'secrets' },
  { pattern: new RegExp(`^${ORG}/secrets/new$`), page: secrets.create, section: 'secrets', write: true },
  { pattern: new RegExp(`^${ORG}/secrets/([^/]+)$`), page: secrets.show, section: 'secrets' },
  { pattern: new RegExp(`^${ORG}/secrets/([^/]+)/delete$`), page: secrets.remove, section: 'secrets', write: true },
  { pattern: new RegExp(`^${ORG}/providers$`), page: providers.list, section: 'providers' },
  { pattern: new RegExp(`^${ORG}/providers/new$`), page: providers.create, section: 'providers', write: true },
  { pattern: new RegExp(`^${ORG}/providers/([^/]+)$`), page: providers.show, section: 'providers' },
  { pattern: new RegExp(`^${ORG}/providers/([^/]+)/delete$`), page: providers.remove, section: 'providers', write: true },
  { pattern: new RegExp(`^${ORG}/image-pull-secrets$`), page: pullSecrets.list, section: 'image-pull-secrets' },
  { pattern: new RegExp(`^${ORG}/image-pull-secrets/new$`), page: pullSecrets.create, section: 'image-pull-secrets', write: true },
  { pattern: new RegExp(`^${ORG}/image-pull-secrets/([^/]+)$`), page: pullSecrets.show, section: 'image-pull-secrets' },
  { pattern: new RegExp(`^${ORG}/image-pull-secrets/([^/]+)/delete$`), page: pullSecrets.remove, section: 'image-pull-secrets', write: true },
  { pattern: new RegExp(`^${ORG}/tokens$`), page: tokens.list, section: 'tokens', write: true },
  { pattern: new RegExp(`^${ORG}/tokens/new$`), page: tokens.create, section: 'tokens', write: true },
  { pattern: new RegExp(`^${ORG}/tokens/([^/]+)/revoke$`), page: tokens.revoke, section: 'tokens', write: true },
];

const SECTIONS = [
  ['secrets', 'Secrets'],
  ['providers', 'Providers'],
  ['image-pull-secrets', 'Image pull secrets'],
  ['tokens', 'Tokens', { write: true }],
];

const canWrite = (who) => who && (who.role === 'owner' || who.role === 'admin');

/** Whether a path is one of the console's pages (and not the API). */
function isConsolePath(path) {
  return path === '/' || path === '/sign-in' || /^\/organizations(\/|$)/.test(path);
}

function go(path, { replace: replaceEntry = false, flash: message = null } = {}) {
  flash = message;
  if (replaceEntry) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  render();
}

function signOut(message) {
  session.end();
  me = null;
  signInMessage = message;
  go('/sign-in', { replace: true });
}

whenUnauthorized((error) => {
  signOut(`Signed out: ${error.message}`);
});

async function render() {
  const ticket = ++generation;
  const alive = () => ticket === generation;
  const path = location.pathname.replace(/\/+$/, '') || '/';
  let params = null;
  const route = ROUTES.find((r) => (params = path.match(r.pattern)));
  const pendingFlash = flash;
  flash = null;

  if (!route) {
    drawTop(null);
    replace(main, heading('Page not found'), notice('error', `There is no console page at ${path}.`), h('p', {}, h('a', { href: '/', text: 'Go to the start page' })));
    finish(alive);
    return;
  }
  if (!route.open && !session.token()) {
    go(`/sign-in?next=${encodeURIComponent(path)}`, { replace: true });
    return;
  }
  if (!route.open && !me) {
    drawTop(null);
    replace(main, h('p', { class: 'loading', text: 'Loading…' }));
    try {
      me = await api.whoami(session.token());
    } catch (error) {
      if (!alive()) return;
      if (error.status === 401) signOut(`Signed out: ${error.message}`);
      else replace(main, heading('The console cannot load'), notice('error', error.message));
      return;
    }
    if (!alive()) return;
    if (me.role === 'runtime') {
      signOut(RUNTIME_REFUSAL);
      return;
    }
  }

  const org = params[1] ? decodeURIComponent(params[1]) : null;
  const ctx = {
    me,
    org,
    params: params.slice(2).map(decodeURIComponent),
    canWrite: canWrite(me),
    alive,
    go,
    link: (...segments) =>
      `/organizations/${encodeURIComponent(org)}/${segments.map((s) => encodeURIComponent(s)).join('/')}`,
    /** Draws the page, unless the reader has already moved on. */
    show: (...nodes) => {
      if (!alive()) return;
      replace(main, pendingFlash ? notice('ok', pendingFlash) : null, nodes);
    },
    signOut,
  };

  drawTop(route.open ? null : ctx, route.section);
  replace(main, h('p', { class: 'loading', role: 'status', text: 'Loading…' }));
  try {
    if (route.write && !ctx.canWrite) {
      ctx.show(
        heading('Read only'),
        notice('error', `Your token is a ${me.role} token: it can read this organization but not change it. Ask an owner for changes.`),
        org ? h('p', {}, h('a', { href: ctx.link('secrets'), text: 'Back to secrets' })) : null,
      );
    } else {
      await route.page(ctx);
    }
  } catch (error) {
    if (!alive()) return;
    replace(
      main,
      heading('Something went wrong'),
      notice('error', error.message || String(error)),
      h('p', {}, h('a', { href: org ? ctx.link('secrets') : '/', text: 'Back to the start' })),
    );
  }
  finish(alive);
}

/** Titles the document and moves focus to the new page's heading. */
function finish(alive) {
  if (!alive()) return;
  const title = main.querySelector('h1');
  document.title = title ? `${title.textContent} · agyn secrets` : 'agyn secrets';
  if (!firstRender && title && !main.contains(document.activeElement)) title.focus();
  firstRender = false;
}

function drawTop(ctx, section) {
  const brand = h('a', { class: 'brand', href: '/' }, h('img', { src: '/console/icon.svg', alt: '', width: 24, height: 24 }), h('span', { text: 'agyn secrets' }));
  if (!ctx || !ctx.me) {
    replace(top, h('div', { class: 'bar' }, brand));
    return;
  }
  const who = h('div', { class: 'who' },
    h('span', { class: 'identity' }, h('span', { class: 'visually-hidden', text: 'Signed in as ' }), ctx.me.name, ' ', h('span', { class: `role role-${ctx.me.role}`, text: ctx.me.role })),
    h('button', { type: 'button', class: 'quiet', text: 'Sign out', on: { click: () => signOut('Signed out.') } }),
  );
  const rows = [h('div', { class: 'bar' }, brand, who)];
  if (ctx.org) {
    const orgLabel = h('div', { class: 'org' },
      h('span', { class: 'muted', text: 'Organization ' }),
      h('strong', { text: ctx.org }),
      ctx.me.role === 'admin' ? h('a', { href: '/organizations', class: 'switch', text: 'Switch' }) : null,
    );
    const links = SECTIONS.filter(([, , opts]) => !opts || !opts.write || ctx.canWrite).map(([key, label]) =>
      h('li', {}, h('a', { href: ctx.link(key), 'aria-current': key === section ? 'page' : null, text: label })),
    );
    rows.push(h('nav', { class: 'sections', 'aria-label': 'Organization' }, orgLabel, h('ul', {}, links)));
  }
  replace(top, rows);
}

const RUNTIME_REFUSAL =
  'This is a runtime token: runtime tokens can only call resolve, so they cannot use the console. Sign in with a member, owner or admin token.';

function home(ctx) {
  if (!session.token()) {
    ctx.go('/sign-in', { replace: true });
    return;
  }
  ctx.go('/organizations', { replace: true });
}

/** Where a freshly signed-in identity starts. */
function startFor(who, next) {
  if (next && /^\/organizations(\/|$)/.test(next)) return next;
  if (who.role === 'admin') return '/organizations';
  if (who.organization) return `/organizations/${encodeURIComponent(who.organization.name)}/secrets`;
  return '/organizations';
}

function signIn(ctx) {
  if (session.token()) {
    // Already signed in in this tab; a stale token is caught on the next page.
    ctx.go(me ? startFor(me, null) : '/organizations', { replace: true });
    return;
  }
  const message = signInMessage;
  signInMessage = null;
  const next = new URLSearchParams(location.search).get('next');
  const token = h('input', {
    type: 'password',
    name: 'token',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'none',
    'aria-required': 'true',
  });
  const button = h('button', { type: 'submit', class: 'primary', text: 'Sign in' });
  const form = h('form', { class: 'card narrow', novalidate: true },
    field({
      label: 'API token',
      control: token,
      field: 'token',
      hint: 'Kept in this tab’s session storage only, and forgotten when the tab closes.',
    }),
    h('div', { class: 'buttons' }, button),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const presented = token.value.trim();
    if (!presented) {
      showError(form, { field: 'token', message: 'token: paste an API token' });
      return;
    }
    button.disabled = true;
    // Like a secret value, a token typed here does not stay in the page.
    const asked = api.whoami(presented);
    token.value = '';
    try {
      const who = await asked;
      if (who.role === 'runtime') {
        showError(form, { field: 'token', message: RUNTIME_REFUSAL });
        return;
      }
      session.keep(presented);
      me = who;
      ctx.go(startFor(who, next), { replace: true });
    } catch (error) {
      showError(form, { field: 'token', message: error.message });
    } finally {
      button.disabled = false;
    }
  });
  replace(
    main,
    h('div', { class: 'sign-in' },
      h('h1', { tabindex: '-1', text: 'Sign in' }),
      h('p', { class: 'lead', text: 'Manage your organization’s secrets, providers and image pull secrets. Values you enter are sent to the server and never shown again.' }),
      message ? notice(message.startsWith('Signed out.') ? 'info' : 'error', message) : null,
      form,
    ),
  );
  if (!firstRender || !message) token.focus();
}

async function pickOrganization(ctx) {
  if (ctx.me.role !== 'admin') {
    ctx.go(startFor(ctx.me, null), { replace: true });
    return;
  }
  const orgs = await api.organizations();
  const name = h('input', { type: 'text', name: 'name', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 63 });
  const form = h('form', { class: 'card', novalidate: true },
    h('h2', { text: 'New organization' }),
    field({ label: 'Name', control: name, field: 'name', hint: 'Lower-case letters, digits and “-”, at most 63 characters.' }),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Create organization' })),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const created = await api.createOrganization(name.value.trim());
      ctx.go(`/organizations/${encodeURIComponent(created.name)}/secrets`, { flash: `Organization “${created.name}” created.` });
    } catch (error) {
      showError(form, error);
    }
  });
  ctx.show(
    heading('Organizations'),
    h('p', { class: 'lead', text: 'You are signed in with a platform admin token. Choose the organization to manage.' }),
    orgs.length
      ? table({
          caption: 'Organizations',
          columns: ['Name', 'Created'],
          rows: orgs.map((o) => [
            h('a', { href: `/organizations/${encodeURIComponent(o.name)}/secrets`, text: o.name }),
            when(o.created_at),
          ]),
        })
      : h('p', { class: 'empty', text: 'There are no organizations yet.' }),
    form,
  );
}

// Follow console links without reloading the page; leave API links,
// hash links, new-tab clicks and downloads to the browser.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  if (link.getAttribute('href').startsWith('#')) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !isConsolePath(url.pathname)) return;
  event.preventDefault();
  go(url.pathname + url.search);
});

window.addEventListener('popstate', () => render());

// A failure nobody caught still reaches the reader, never a blank page.
function reportUncaught(reason) {
  const message = (reason && reason.message) || String(reason);
  main.prepend(notice('error', `The console hit an error: ${message}`));
}
window.addEventListener('error', (event) => reportUncaught(event.error || event.message));
window.addEventListener('unhandledrejection', (event) => reportUncaught(event.reason));

render();
