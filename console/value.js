// The field a secret value is entered in: masked on screen, many lines,
// and exact. Whatever is typed, pasted or read from a file is sent byte for
// byte: line breaks (LF and CRLF), a trailing line break, tabs and runs of
// spaces included.
//
// A textarea keeps every character but one: browsers turn a carriage
// return into a line feed. So the field shows a carriage return as "↵"
// (U+21B5, which Unicode names as a symbol for it, and which the usual
// fonts have), and `take()` turns each "↵" back into one. Text that holds
// a "↵" of its own cannot be told apart, and is refused.

import { h, uid } from './dom.js';

/** The server's largest value, in bytes of UTF-8 (`MAX_VALUE_BYTES` in src/api/secrets.rs). */
export const MAX_VALUE_BYTES = 65536;

/** How a carriage return shows in the field. */
export const CR_MARK = '\u21B5';

/** Files the picker offers first; others may still be chosen, and are read if they are UTF-8 text. */
const ACCEPT = '.pem,.crt,.cer,.key,.pub,.json,.txt,application/json,application/x-pem-file,text/plain';

const encoder = new TextEncoder();

const count = (n) => n.toLocaleString('en-US');

/** The number of bytes `text` takes as UTF-8. */
export function byteLength(text) {
  return encoder.encode(text).length;
}

/** Text as the field shows it. */
function shown(text) {
  return text.replaceAll('\r', CR_MARK);
}

/**
 * A value field. `label` names it; `hint` says what happens to the value.
 * Returns the field's node, its textarea (`control`) and `take()`, which
 * returns the exact value and empties the field.
 */
export function valueField({ label, hint, name = 'value' }) {
  const id = uid('value');
  const control = h('textarea', {
    id,
    name,
    class: 'secret-value masked',
    rows: 5,
    autocomplete: 'off',
    autocorrect: 'off',
    autocapitalize: 'none',
    spellcheck: 'false',
    'data-field': 'value',
    'data-lpignore': 'true',
    'data-1p-ignore': 'true',
    'data-form-type': 'other',
  });
  const size = h('span', { class: 'value-size', id: `${id}-size` });
  const hintEl = h('p', { class: 'hint', id: `${id}-hint` }, hint, ' A carriage return shows as ', h('code', { text: CR_MARK }), ' when the value is shown.');
  const status = h('p', { class: 'value-status', id: `${id}-status`, role: 'status', 'aria-live': 'polite' });
  control.setAttribute('aria-describedby', `${id}-hint ${id}-size ${id}-status`);

  const toggle = h('button', { type: 'button', class: 'quiet value-toggle', 'aria-pressed': 'false', 'aria-controls': id, text: 'Show value' });
  toggle.addEventListener('click', () => {
    const masked = control.classList.toggle('masked');
    toggle.setAttribute('aria-pressed', String(!masked));
  });

  const picker = h('input', { type: 'file', class: 'visually-hidden', accept: ACCEPT, id: `${id}-file` });
  const pick = h('label', { class: 'button file-pick', for: picker.id }, picker, 'Read from a file…');

  const say = (kind, message) => {
    status.className = `value-status value-status-${kind}`;
    status.textContent = message;
  };

  const update = () => {
    const bytes = byteLength(exact());
    size.dataset.bytes = String(bytes);
    const over = bytes > MAX_VALUE_BYTES;
    size.classList.toggle('over', over);
    size.textContent = `${count(bytes)} of ${count(MAX_VALUE_BYTES)} bytes${over ? ': too long' : ''}`;
  };

  const exact = () => control.value.replaceAll(CR_MARK, '\r');

  /** Puts `text` where the caret is, as typing it would. */
  const insert = (text) => {
    control.focus();
    // insertText keeps the browser's undo history; setRangeText is the fallback.
    const done = document.execCommand && document.execCommand('insertText', false, shown(text));
    if (!done) {
      control.setRangeText(shown(text), control.selectionStart, control.selectionEnd, 'end');
      control.dispatchEvent(new Event('input', { bubbles: true }));
    }
  };

  const refuseMark = (what) =>
    say('error', `${what} holds the character ${CR_MARK} (U+21B5), which this field uses to show a carriage return. Set this value through the API instead.`);

  // Every paste goes through here, so that a CRLF arrives as it was copied.
  control.addEventListener('paste', (event) => {
    if (!event.clipboardData) return;
    const text = event.clipboardData.getData('text/plain');
    event.preventDefault();
    if (text.includes(CR_MARK)) {
      refuseMark('The pasted text');
      return;
    }
    say('info', '');
    insert(text);
  });

  // A masked value is not copied out, as with a password field.
  for (const type of ['copy', 'cut']) {
    control.addEventListener(type, (event) => {
      if (control.classList.contains('masked')) event.preventDefault();
    });
  }

  const read = async (file) => {
    if (file.size > MAX_VALUE_BYTES) {
      say('error', `${file.name} is ${count(file.size)} bytes; a value holds at most ${count(MAX_VALUE_BYTES)} bytes.`);
      return;
    }
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(await file.arrayBuffer());
    } catch {
      say('error', `${file.name} is not UTF-8 text, so it cannot be a value as it is. A binary file (such as a DER key) can be stored as PEM or base64.`);
      return;
    }
    if (!text) {
      say('error', `${file.name} is empty.`);
      return;
    }
    if (text.includes(CR_MARK)) {
      refuseMark(file.name);
      return;
    }
    control.value = shown(text);
    update();
    const lines = text.split(/\r\n|\r|\n/).length - (/(\r\n|\r|\n)$/.test(text) ? 1 : 0);
    say('ok', `Read ${file.name}: ${count(file.size)} bytes, ${count(lines)} ${lines === 1 ? 'line' : 'lines'}.`);
  };

  picker.addEventListener('change', async () => {
    const [file] = picker.files;
    // The file is read once; the input does not keep it.
    picker.value = '';
    if (file) await read(file);
  });

  control.addEventListener('dragover', (event) => {
    if (event.dataTransfer && [...event.dataTransfer.types].includes('Files')) event.preventDefault();
  });
  control.addEventListener('drop', (event) => {
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (files && files.length) {
      event.preventDefault();
      read(files[0]);
      return;
    }
    const text = event.dataTransfer ? event.dataTransfer.getData('text/plain') : '';
    if (text.includes('\r') || text.includes(CR_MARK)) {
      event.preventDefault();
      if (text.includes(CR_MARK)) refuseMark('The dropped text');
      else insert(text);
    }
  });

  control.addEventListener('input', update);
  update();

  const node = h('div', { class: 'field value-field' },
    h('label', { for: id, text: label }),
    control,
    h('div', { class: 'value-tools' }, toggle, pick, size),
    hintEl,
    status,
  );

  return {
    node,
    control,
    /** Whether the value is over the server's limit. */
    tooLong: () => byteLength(exact()) > MAX_VALUE_BYTES,
    /** The exact value, after which the field is empty and masked again. */
    take() {
      const value = exact();
      control.value = '';
      control.classList.add('masked');
      toggle.setAttribute('aria-pressed', 'false');
      say('info', '');
      update();
      return value;
    },
    /** Says something about the value under the field, e.g. to paste it again. */
    say,
  };
}
