// Small DOM helpers. Text from the API is only ever set through text nodes
// and attributes, never parsed as HTML.

let uniqueCounter = 0;

/** A fresh element id with the given prefix. */
export function uid(prefix) {
  uniqueCounter += 1;
  return `${prefix}-${uniqueCounter}`;
}

/**
 * Builds an element. `attrs` keys: `class`, `text`, `dataset` (object),
 * `on` (object of event listeners), booleans (set when true), everything
 * else as an attribute. Children: nodes, strings, arrays, or null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'on') {
      for (const [type, listener] of Object.entries(value)) el.addEventListener(type, listener);
    } else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/** A date and time as the reader's locale writes it; `seconds` where they tell events apart. */
export function when(iso, { seconds = false } = {}) {
  if (!iso) return h('span', { class: 'muted', text: '—' });
  const date = new Date(iso);
  const text = Number.isNaN(date.getTime())
    ? iso
    : date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: seconds ? 'medium' : 'short' });
  return h('time', { datetime: iso, title: iso, text });
}

/** A message box: `kind` is `error`, `ok` or `info`. */
export function notice(kind, message, ...extra) {
  const role = kind === 'error' ? 'alert' : 'status';
  return h('div', { class: `notice notice-${kind}`, role }, h('p', { text: message }), extra);
}

/**
 * A labelled form control with an optional hint, wired for error reporting:
 * `field` is the API's name for it (as in a 422 `error.field`).
 */
export function field({ label, control, hint, field: apiField, extra }) {
  const id = control.id || uid('f');
  control.id = id;
  if (apiField) control.dataset.field = apiField;
  const parts = [h('label', { for: id, text: label })];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint` }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, parts, extra, control, hintEl);
}

/** A table that turns into stacked cards on narrow screens. */
export function table({ caption, columns, rows }) {
  return h(
    'table',
    { class: 'list' },
    caption ? h('caption', { class: 'visually-hidden', text: caption }) : null,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', text: c })))),
    h(
      'tbody',
      {},
      rows.map((cells) =>
        h(
          'tr',
          {},
          cells.map((cell, i) => h('td', { 'data-label': columns[i] }, cell)),
        ),
      ),
    ),
  );
}

/** A definition list of `[term, description]` pairs. */
export function details(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([term, description]) => h('div', {}, h('dt', { text: term }), h('dd', {}, description))),
  );
}

/** Inline code. */
export function code(text) {
  return h('code', { text });
}

/** Removes the error marks a previous submit left on `form`. */
export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error, .form-error')) el.remove();
  for (const control of form.querySelectorAll('[aria-invalid]')) {
    control.removeAttribute('aria-invalid');
    const ids = (control.getAttribute('aria-describedby') || '')
      .split(' ')
      .filter((id) => id && !id.endsWith('-error'));
    if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
    else control.removeAttribute('aria-describedby');
  }
}

/**
 * Shows an API refusal on `form`: next to the control the 422 names in
 * `error.field` when there is one in view, else at the top of the form.
 * The API's field name is replaced by the label a person reads.
 */
export function showError(form, error) {
  clearErrors(form);
  const control = error && error.field ? findControl(form, error.field) : null;
  const message = readable(error, control);
  if (control) {
    const id = `${control.id}-error`;
    const note = h('p', { class: 'field-error', id }, message);
    const anchor = control.closest('.field, fieldset') || control;
    anchor.appendChild(note);
    control.setAttribute('aria-invalid', 'true');
    const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    control.setAttribute('aria-describedby', [...described, id].join(' '));
    control.focus();
    return;
  }
  const box = notice('error', message);
  box.classList.add('form-error');
  form.prepend(box);
  box.setAttribute('tabindex', '-1');
  box.focus();
}

/** The words a person reads for an API field that has no control in view. */
const FIELD_NAMES = {
  provider_id: 'Provider',
  remote_path: 'Remote path',
  remote_key: 'Remote key',
  allowed_namespaces: 'Allowed namespaces',
  password_secret: 'Password secret',
  organization: 'Organization',
};

/** What a control is called on the page: its label, or its group's legend. */
function labelOf(control) {
  let text = null;
  if (control.type === 'radio' || control.type === 'checkbox') {
    const legend = control.closest('fieldset')?.querySelector('legend');
    text = legend ? legend.textContent : null;
  } else if (control.labels && control.labels.length) {
    text = control.labels[0].textContent;
  }
  return text ? text.replace(/\s*\(optional\)\s*$/i, '').trim() : null;
}

/**
 * An API message as a person reads it: `remote_key: must be a key of the
 * value map` becomes `Remote key: must be a key of the value map`, and
 * `allowed_namespaces[1]: …` names the entry.
 */
export function readable(error, control = null) {
  const message = error && error.message ? error.message : String(error);
  const apiField = error && error.field;
  if (!apiField || !message.startsWith(`${apiField}: `)) return message;
  const rest = message.slice(apiField.length + 2);
  const base = apiField.replace(/\[\d+\]/g, '');
  const fallback = () => {
    if (FIELD_NAMES[base]) return FIELD_NAMES[base];
    const words = base.split('.').pop().replace(/_/g, ' ');
    return words.charAt(0).toUpperCase() + words.slice(1);
  };
  const name = (control && labelOf(control)) || fallback();
  const index = /\[(\d+)\]/.exec(apiField);
  return `${name}${index ? `, entry ${Number(index[1]) + 1}` : ''}: ${rest}`;
}

function findControl(form, name) {
  const candidates = [...form.querySelectorAll('[data-field]')].filter(
    (el) => !el.disabled && !el.closest('[hidden]'),
  );
  // `auth.token_secret` may also be reported as `auth`, and `references[0]` as `references`.
  const trimmed = name.replace(/\[\d+\]/g, '');
  return (
    candidates.find((el) => el.dataset.field === name) ||
    candidates.find((el) => el.dataset.field === trimmed) ||
    null
  );
}

/** The page's title with its actions (links or buttons) beside it. */
export function heading(title, ...actions) {
  const present = actions.flat().filter(Boolean);
  return h(
    'div',
    { class: 'page-head' },
    h('h1', { tabindex: '-1', text: title }),
    present.length ? h('div', { class: 'actions' }, present) : null,
  );
}

/** The URL segment naming an object: its name, unless that reads as a page. */
export function slug(item) {
  return item.name === 'new' ? item.id : item.name;
}

/** A link styled as a button. */
export function linkButton(href, text, { kind = '', label } = {}) {
  return h('a', { class: `button ${kind}`.trim(), href, text, 'aria-label': label });
}

/** A select with `[value, text]` options and the given value chosen. */
export function select(options, chosen, attrs = {}) {
  return h(
    'select',
    attrs,
    options.map(([value, text]) => h('option', { value, selected: value === chosen, text })),
  );
}

/** Shows `group` and enables its controls; hides and disables the others. */
export function showOnly(groups, active) {
  for (const [key, group] of Object.entries(groups)) {
    const on = key === active;
    group.hidden = !on;
    for (const control of group.querySelectorAll('input, select, textarea')) control.disabled = !on;
  }
}
