// Large mail (docs/api.md, "Blob mail"): mail carried by a sealed blob that the node has not filed
// yet. Shown above the INBOX listing: who sent it, the subject and the size; a stranger's mail above
// the automatic limit waits for the user, who accepts it here (POST /api/blobs/{key}/accept); mail
// being fetched shows its progress. Polled while shown and something is pending.
import { api, path } from './api.js';
import { $, h, show, reconcile, whenFull } from './dom.js';
import { personOf } from './people.js';

let ctx;
let timer = null;
let shown = false;
let items = [];
let seq = 0;

export function init(c) {
  ctx = c;
}

// mib formats a byte count in MiB with one decimal.
function mib(n) {
  return ((n || 0) / (1 << 20)).toFixed(1) + ' MiB';
}

// setShown shows the panel (true: the INBOX is the folder on screen) and loads it.
export function setShown(on) {
  shown = on;
  if (!on) {
    stop();
    show($('blob-pending'), false);
    return;
  }
  load();
}

function stop() {
  clearInterval(timer);
  timer = null;
}

// load fetches GET /api/blobs and renders it; it polls every 3 s while anything is listed.
export async function load() {
  if (!shown) return;
  const s = ++seq;
  let r;
  try {
    r = await api('GET', '/api/blobs');
  } catch (e) {
    if (e.status === 401) stop();
    return; // the next poll or mail event tries again
  }
  if (s !== seq || !shown) return;
  items = r || [];
  render();
  if (items.length && !timer) {
    timer = setInterval(() => {
      if (!ctx.isActive('mail') || !shown) return stop();
      if (document.visibilityState === 'visible') load();
    }, 3000);
  } else if (!items.length) stop();
}

function render() {
  const ul = $('blob-list');
  reconcile(
    ul,
    items,
    (b) => b.key,
    (b) => JSON.stringify([b.waiting_for_consent, b.accepted, b.fetched, b.last_error]),
    (b) => {
      const from = personOf({ address: b.sender });
      const what = `${from}: “${b.subject || '(no subject)'}”, ${mib(b.size)}`;
      let state;
      if (b.waiting_for_consent) state = ` — not downloaded: the sender is not in your contacts. It can be fetched until ${whenFull(b.expires)}.`;
      else if (b.last_error) state = ` — ${mib(b.fetched)} downloaded; the last attempt failed: ${b.last_error}`;
      else state = ` — downloading, ${mib(b.fetched)} of ${mib(b.size)}`;
      const btn = b.waiting_for_consent
        ? h('button', { type: 'button', class: 'primary', test: 'blob-accept', onclick: (e) => accept(e.currentTarget, b.key) }, `Download ${mib(b.size)}`)
        : null;
      const bar = b.waiting_for_consent
        ? null
        : h('progress', { max: String(b.size || 1), value: String(b.fetched || 0), test: 'blob-progress', 'aria-label': 'Download of ' + what });
      return h(
        'li',
        { class: 'blob-row', test: 'blob-row', dataset: { key: b.key, state: b.waiting_for_consent ? 'waiting' : 'fetching' } },
        h('span', { class: 'blob-text', test: 'blob-text' }, what, state),
        btn,
        bar,
      );
    },
  );
  show($('blob-pending'), items.length > 0);
}

async function accept(btn, key) {
  btn.disabled = true;
  try {
    await api('POST', path('api', 'blobs', key, 'accept'));
  } catch (e) {
    btn.disabled = false;
    ctx.showError(e);
    return;
  }
  await load();
}
