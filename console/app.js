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
import * as namespaces from './namespaces.js';
import * as audit from './audit.js';

const main = document.getElementById('main');
const top = document.getElementById('top');

/** The signed-in token's identity (`GET /v1/whoami`), held in memory only. */
let me = null;
/** Organizations already looked up, by the name or id in the URL. */
const organizations = new Map();
/** A notice to show on the next page, e.g. "Secret deleted". */
let flash = null;
/** The message the sign-in page shows, e.g. why the session ended. */
let signInMessage = null;
/** Bumped on every navigation, so that a slow page never draws over a newer one. */
let generation = 0;
let firstRender = true;

const ORG = '/organizations/([^/]+)';

/** A page of one organization: the first group of `pattern` is the organization. */
const inOrg = (rest, page, options = {}) => ({ pattern: new RegExp(`^${ORG}${rest}$`), page, org: true, ...options });

const ROUTES = [
  { pattern: /^\/$/, page: home, open: true },
  { pattern: /^\/sign-in$/, page: signIn, open: true },
  { pattern: /^\/organizations$/, page: pickOrganization, section: 'organizations' },
  { pattern: /^\/namespaces$/, page: namespaces.list, section: 'namespaces', admin: true },
  { pattern: /^\/namespaces\/([^/]+)$/, page: namespaces.show, section: 'namespaces', admin: true },
  { pattern: /^\/namespaces\/([^/]+)\/unbind$/, page: namespaces.unbind, section: 'namespaces', admin: true },
  inOrg('', (ctx) => ctx.go(ctx.link('secrets'), { replace: true })),
  inOrg('/secrets', secrets.list, { section: 'secrets' }),
  inOrg('/secrets/new', secrets.create, { section: 'secrets', write: true }),
  inOrg('/secrets/([^/]+)', secrets.show, { section: 'secrets' }),
  inOrg('/secrets/([^/]+)/delete', secrets.remove, { section: 'secrets', write: true }),
  inOrg('/providers', providers.list, { section: 'providers' }),
  inOrg('/providers/new', providers.create, { section: 'providers', write: true }),
  inOrg('/providers/([^/]+)', providers.show, { section: 'providers' }),
  inOrg('/providers/([^/]+)/delete', providers.remove, { section: 'providers', write: true }),
  inOrg('/image-pull-secrets', pullSecrets.list, { section: 'image-pull-secrets' }),
  inOrg('/image-pull-secrets/new', pullSecrets.create, { section: 'image-pull-secrets', write: true }),
  inOrg('/image-pull-secrets/([^/]+)', pullSecrets.show, { section: 'image-pull-secrets' }),
  inOrg('/image-pull-secrets/([^/]+)/delete', pullSecrets.remove, { section: 'image-pull-secrets', write: true }),
  inOrg('/tokens', tokens.list, { section: 'tokens', write: true }),
  inOrg('/tokens/new', tokens.create, { section: 'tokens', write: true }),
  inOrg('/tokens/([^/]+)/revoke', tokens.revoke, { section: 'tokens', write: true }),
  inOrg('/audit', audit.list, { section: 'audit', write: true }),
];

const SECTIONS = [
  ['secrets', 'Secrets'],
  ['providers', 'Providers'],
  ['image-pull-secrets', 'Image pull secrets'],
  ['tokens', 'Tokens', { write: true }],
  ['audit', 'Audit log', { write: true }],
];

/** What a platform admin manages outside any one organization. */
const PLATFORM = [
  ['organizations', 'Organizations', '/organizations'],
  ['namespaces', 'Namespaces', '/namespaces'],
];

const canWrite = (who) => who && (who.role === 'owner' || who.role === 'admin');

/** Whether a path is one of the console's pages (and not the API). */
function isConsolePath(path) {
  return path === '/' || path === '/sign-in' || /^\/(organizations|namespaces)(\/|$)/.test(path);
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
  organizations.clear();
  signInMessage = message;
  go('/sign-in', { replace: true });
}

whenUnauthorized((error) => {
  signOut(`Signed out: ${error.message}`);
});

/** Removes the notices an earlier action left, so that none sits beside the next answer. */
function clearBanners() {
  for (const banner of main.querySelectorAll('.flash')) banner.remove();
}
// Every new action starts without the last one's banner.
main.addEventListener('submit', clearBanners, true);
main.addEventListener('click', (event) => {
  if (event.target.closest('button')) clearBanners();
}, true);

/** A URL segment as text; one that is not valid percent-encoding is taken as it is. */
function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The organization a URL names, or null when the API knows none by that name for this token. */
async function organizationNamed(key) {
  if (organizations.has(key)) return organizations.get(key);
  try {
    const found = await api.organization(key);
    organizations.set(key, found);
    organizations.set(found.name, found);
    return found;
  } catch (error) {
    if (error.status === 404) return null;
    throw error;
  }
}

async function render() {
  const ticket = ++generation;
  const alive = () => ticket === generation;
  // Links of the form /#/organizations/acme lead to the page they name.
  if (location.pathname === '/' && location.hash.startsWith('#/')) {
    history.replaceState(null, '', location.hash.slice(1));
  }
  const path = location.pathname.replace(/\/+$/, '') || '/';
  let params = null;
  const route = ROUTES.find((r) => (params = path.match(r.pattern)));
  const pendingFlash = flash;
  flash = null;

  if (!route) {
    drawTop(me ? { me, org: null } : null);
    replace(
      main,
      heading('Page not found'),
      notice('error', `There is no console page at ${path}.`),
      h('p', {}, h('a', { href: '/', text: 'Go to the start page' })),
    );
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

  let organization = null;
  if (route.org) {
    const named = decode(params[1]);
    if (!organizations.has(named)) {
      drawTop({ me, org: null });
      replace(main, h('p', { class: 'loading', role: 'status', text: 'Loading…' }));
    }
    try {
      organization = await organizationNamed(named);
    } catch (error) {
      if (!alive()) return;
      replace(main, heading('The console cannot load'), notice('error', error.message));
      finish(alive);
      return;
    }
    if (!alive()) return;
    if (!organization) {
      unknownOrganization(named);
      finish(alive);
      return;
    }
    // The address names the organization as people do.
    if (named !== organization.name) {
      const rest = path.split('/').slice(3).join('/');
      history.replaceState(null, '', `/organizations/${encodeURIComponent(organization.name)}${rest ? `/${rest}` : ''}${location.search}`);
    }
  }

  const org = organization ? organization.name : null;
  const ctx = {
    me,
    org,
    /** The organization's name, for text a person reads. */
    orgName: org,
    organization,
    params: params.slice(route.org ? 2 : 1).map(decode),
    canWrite: canWrite(me),
    alive,
    go,
    link: (...segments) =>
      `/organizations/${encodeURIComponent(org)}/${segments.map((s) => encodeURIComponent(s)).join('/')}`,
    /** Draws the page, unless the reader has already moved on. */
    show: (...nodes) => {
      if (!alive()) return;
      const banner = pendingFlash ? notice('ok', pendingFlash) : null;
      if (banner) banner.classList.add('flash');
      replace(main, banner, nodes);
    },
    signOut,
  };

  drawTop(route.open ? null : ctx, route.section);
  replace(main, h('p', { class: 'loading', role: 'status', text: 'Loading…' }));
  try {
    if (route.admin && me.role !== 'admin') {
      ctx.show(
        heading('Platform admins only'),
        notice('error', `Your token is a ${me.role} token. Namespace bindings are managed by a platform admin.`),
        h('p', {}, h('a', { href: startFor(me, null), text: 'Back to your organization' })),
      );
    } else if (route.write && !ctx.canWrite) {
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
    const back = h('p', {}, h('a', { href: org ? ctx.link('secrets') : '/', text: org ? 'Back to secrets' : 'Back to the start' }));
    if (error.status === 404) replace(main, heading('Not found'), notice('error', error.message), back);
    else replace(main, heading('Something went wrong'), notice('error', error.message || String(error)), back);
  }
  finish(alive);
}

/** The page for an organization that does not exist, or that this token may not see. */
function unknownOrganization(named) {
  const admin = me.role === 'admin';
  const own = me.organization;
  replace(
    main,
    heading('Organization not found'),
    notice('error', `No organization named “${named}”, or you may not see it.`),
    h('p', {}, admin
      ? h('a', { href: '/organizations', text: 'Back to the list of organizations' })
      : own
        ? ['Your token belongs to ', h('a', { href: `/organizations/${encodeURIComponent(own.name)}/secrets`, text: own.name }), '.']
        : h('a', { href: '/', text: 'Go to the start page' })),
  );
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
  const platform = ctx.me.role === 'admin'
    ? h('nav', { class: 'platform', 'aria-label': 'Platform' },
        h('ul', {}, PLATFORM.map(([key, label, href]) =>
          h('li', {}, h('a', { href, 'aria-current': key === section ? 'page' : null, text: label })))))
    : null;
  const rows = [h('div', { class: 'bar' }, h('div', { class: 'home' }, brand, platform), who)];
  if (ctx.org) {
    const orgLabel = h('div', { class: 'org' },
      h('span', { class: 'muted', text: 'Organization ' }),
      h('strong', { class: 'org-name', text: ctx.orgName }),
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
  if (next && isConsolePath(next) && next !== '/' && next !== '/sign-in') return next;
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
