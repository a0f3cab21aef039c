// The console's only way to the server: the `/v1` JSON API with the
// signed-in token. The token lives in sessionStorage and nowhere else, so it
// is gone when the tab closes.

const TOKEN_KEY = 'agyn-secrets.token';

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  keep(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  end() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A refusal from the API, carrying its `error` body. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the API answered with status ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = error.code || null;
    this.field = error.field || null;
    this.references = (body && body.references) || null;
    /** How many references there are in all; `references` holds the first ones. */
    this.referenceCount = body && Number.isInteger(body.reference_count) ? body.reference_count : null;
  }
}

/** Called when the API no longer accepts the token (401). */
let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

/**
 * Sends one request. The body is serialised and handed to `fetch` before
 * the first `await`, so callers may clear the form controls it was read
 * from as soon as this returns its promise.
 */
export function call(method, path, body, { token = session.token(), quiet401 = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const sent = fetch(path, {
    method,
    headers,
    body: payload,
    cache: 'no-store',
    credentials: 'omit',
    redirect: 'error',
  });
  payload = undefined;
  body = undefined;
  return receive(sent, quiet401);
}

async function receive(sent, quiet401) {
  let response;
  try {
    response = await sent;
  } catch (cause) {
    throw new ApiError(0, {
      error: { code: 'network', message: `cannot reach the API: ${cause.message}` },
    });
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, parsed);
    if (response.status === 401 && !quiet401) onUnauthorized(error);
    throw error;
  }
  return parsed;
}

const org = (o) => `/v1/organizations/${encodeURIComponent(o)}`;
const one = (id) => encodeURIComponent(id);

/** The largest page the API gives. */
const PAGE_LIMIT = 500;

/**
 * Every item of a list. The API answers lists a page at a time; this
 * follows `next_cursor` until the last page, so that nothing is left out.
 */
async function all(path) {
  const items = [];
  let cursor = null;
  do {
    const query = `limit=${PAGE_LIMIT}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await call('GET', `${path}${path.includes('?') ? '&' : '?'}${query}`);
    items.push(...page.items);
    cursor = page.next_cursor || null;
  } while (cursor);
  return items;
}

/** The API's routes, as the console uses them. */
export const api = {
  whoami: (token) => call('GET', '/v1/whoami', undefined, { token, quiet401: true }),
  organizations: () => all('/v1/organizations'),
  createOrganization: (name) => call('POST', '/v1/organizations', { name }),
  organization: (o) => call('GET', org(o)),

  namespaces: () => all('/v1/namespaces'),
  namespace: (ns) => call('GET', `/v1/namespaces/${one(ns)}`),
  bindNamespace: (ns, organization) => call('PUT', `/v1/namespaces/${one(ns)}`, { organization }),
  unbindNamespace: (ns) => call('DELETE', `/v1/namespaces/${one(ns)}`),

  /**
   * One page of the audit log, newest first: `cursor` is the previous
   * page's `next_cursor`, `secret` a secret's name to read its events only.
   */
  auditPage: (o, { limit, cursor = null, secret = null }) => {
    const query = new URLSearchParams({ limit: String(limit) });
    if (cursor) query.set('cursor', cursor);
    if (secret) query.set('secret', secret);
    return call('GET', `${org(o)}/audit?${query}`);
  },

  secrets: (o) => all(`${org(o)}/secrets`),
  secret: (o, id) => call('GET', `${org(o)}/secrets/${one(id)}`),
  createSecret: (o, body) => call('POST', `${org(o)}/secrets`, body),
  updateSecret: (o, id, body) => call('PATCH', `${org(o)}/secrets/${one(id)}`, body),
  references: (o, id) => all(`${org(o)}/secrets/${one(id)}/references`),
  deleteSecret: (o, id, force) =>
    call('DELETE', `${org(o)}/secrets/${one(id)}${force ? '?force=true' : ''}`),

  providers: (o) => all(`${org(o)}/providers`),
  provider: (o, id) => call('GET', `${org(o)}/providers/${one(id)}`),
  createProvider: (o, body) => call('POST', `${org(o)}/providers`, body),
  updateProvider: (o, id, body) => call('PATCH', `${org(o)}/providers/${one(id)}`, body),
  deleteProvider: (o, id) => call('DELETE', `${org(o)}/providers/${one(id)}`),
  checkProvider: (o, id) => call('POST', `${org(o)}/providers/${one(id)}/check`),

  pullSecrets: (o) => all(`${org(o)}/image-pull-secrets`),
  pullSecret: (o, id) => call('GET', `${org(o)}/image-pull-secrets/${one(id)}`),
  createPullSecret: (o, body) => call('POST', `${org(o)}/image-pull-secrets`, body),
  deletePullSecret: (o, id) => call('DELETE', `${org(o)}/image-pull-secrets/${one(id)}`),

  tokens: (o) => all(`${org(o)}/tokens`),
  token: (o, id) => call('GET', `${org(o)}/tokens/${one(id)}`),
  createToken: (o, body) => call('POST', `${org(o)}/tokens`, body),
  revokeToken: (o, id) => call('DELETE', `${org(o)}/tokens/${one(id)}`),
};
