// Compose: the new-message dialog with contact autocomplete in To, Cc and Bcc, attachments (a file
// picker, or files dropped on the dialog; sent as multipart/form-data with the upload's progress), and
// the tray that shows the proof of work of each sent message (from the event stream's progress events)
// until the outbox has published it to every recipient.
import { api, upload } from './api.js';
import { $, h, clear, show, shortAddress } from './dom.js';
import { matchContacts, personOf } from './people.js';

let ctx;
const tracked = new Map(); // outbox id → {el, bar, label, subject, rcpts, fractions, state}
let poll = null;
let files = []; // the attachments chosen, File objects

// The API's limits of attachments (docs/api.md, "Sending mail").
const MAX_FILES = 20;
const MAX_FILE_BYTES = 18 << 20;

export function init(c) {
  ctx = c;
  autocomplete($('compose-to'), $('compose-to-list'));
  autocomplete($('compose-cc'), $('compose-cc-list'));
  autocomplete($('compose-bcc'), $('compose-bcc-list'));
  $('compose-files').addEventListener('change', (e) => {
    addFiles(e.target.files);
    e.target.value = '';
  });
  const d = $('compose');
  d.addEventListener('dragover', (e) => {
    if (![...(e.dataTransfer?.types || [])].includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    $('compose-drop').classList.add('dragging');
  });
  d.addEventListener('dragleave', (e) => {
    if (!d.contains(e.relatedTarget)) $('compose-drop').classList.remove('dragging');
  });
  d.addEventListener('drop', (e) => {
    if (!e.dataTransfer?.files?.length) return;
    e.preventDefault();
    $('compose-drop').classList.remove('dragging');
    addFiles(e.dataTransfer.files);
  });
  $('compose-form').addEventListener('submit', onSend);
  $('compose-cancel').addEventListener('click', () => $('compose').close());
  $('compose').addEventListener('close', () => {
    show($('compose-error'), false);
  });
}

// openCompose opens the dialog, prefilled with {to: [addresses or petnames], subject, text, inReplyTo}.
export function openCompose(pre) {
  const d = $('compose');
  $('compose-to').value = (pre.to || []).join(', ') + ((pre.to || []).length ? ', ' : '');
  $('compose-cc').value = '';
  $('compose-bcc').value = '';
  files = [];
  renderFiles();
  show($('compose-upload'), false);
  $('compose-subject').value = pre.subject || '';
  $('compose-text').value = pre.text || '';
  d.dataset.inReplyTo = pre.inReplyTo || '';
  show($('compose-error'), false);
  if (!d.open) d.showModal();
  (pre.to && pre.to.length ? $('compose-subject') : $('compose-to')).focus();
  if (pre.text) $('compose-text').setSelectionRange(0, 0);
}

function splitList(s) {
  return s
    .split(/[,;]/)
    .map((x) => x.trim())
    .filter(Boolean);
}

async function onSend(e) {
  e.preventDefault();
  const to = splitList($('compose-to').value);
  const cc = splitList($('compose-cc').value);
  const bcc = splitList($('compose-bcc').value);
  const subject = $('compose-subject').value;
  const text = $('compose-text').value;
  const err = $('compose-error');
  if (to.length === 0 && bcc.length === 0) {
    err.textContent = 'Add at least one recipient in To.';
    show(err, true);
    $('compose-to').focus();
    return;
  }
  const body = { to, cc, bcc, subject, text };
  const irt = $('compose').dataset.inReplyTo;
  if (irt) body.in_reply_to = irt;
  const btn = $('compose-send');
  btn.disabled = true;
  try {
    let r;
    if (files.length) {
      const bar = $('compose-upload');
      bar.value = 0;
      show(bar, true);
      const form = new FormData();
      form.append('message', new Blob([JSON.stringify(body)], { type: 'application/json' }));
      for (const f of files) form.append('attachment', f, f.name);
      r = await upload('/api/messages', form, (loaded, total) => {
        bar.value = total ? Math.round((100 * loaded) / total) : 0;
        bar.dataset.percent = String(bar.value);
      });
    } else {
      r = await api('POST', '/api/messages', body);
    }
    $('compose').close();
    track(r.outbox_id, subject, to.length + cc.length + bcc.length);
  } catch (ex) {
    err.textContent = ex.message;
    show(err, true);
  } finally {
    btn.disabled = false;
  }
}

// addFiles adds chosen or dropped files to the attachments, within the API's limits.
function addFiles(list) {
  const err = $('compose-error');
  show(err, false);
  for (const f of list) {
    const total = files.reduce((n, x) => n + x.size, 0);
    if (files.length >= MAX_FILES) {
      err.textContent = `At most ${MAX_FILES} files can go with one message.`;
      show(err, true);
      break;
    }
    if (total + f.size > MAX_FILE_BYTES) {
      err.textContent = `${f.name} does not fit: the attachments of one message may be at most 18 MiB together.`;
      show(err, true);
      continue;
    }
    files.push(f);
  }
  renderFiles();
}

function renderFiles() {
  const ul = $('compose-attachments');
  clear(ul);
  files.forEach((f, i) => {
    ul.append(
      h(
        'li',
        { class: 'attachment', test: 'compose-attachment', dataset: { name: f.name } },
        h('span', { class: 'name' }, f.name),
        h('span', { class: 'size' }, humanSize(f.size)),
        h(
          'button',
          {
            type: 'button',
            class: 'icon-button small',
            'aria-label': 'Remove ' + f.name,
            test: 'compose-attachment-remove',
            onclick: () => {
              files.splice(i, 1);
              renderFiles();
            },
          },
          '×',
        ),
      ),
    );
  });
}

function humanSize(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

// autocomplete offers contacts for the entry being typed (after the last comma) of a list input.
function autocomplete(input, list) {
  let items = [];
  let active = -1;

  const close = () => {
    items = [];
    active = -1;
    clear(list);
    show(list, false);
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  };
  const token = () => {
    const v = input.value;
    const i = Math.max(v.lastIndexOf(','), v.lastIndexOf(';'));
    return { head: v.slice(0, i + 1), text: v.slice(i + 1) };
  };
  const pick = (c) => {
    const { head } = token();
    input.value = (head ? head.trimEnd() + ' ' : '') + c.petname + ', ';
    close();
    input.focus();
  };
  const render = () => {
    clear(list);
    items.forEach((c, i) => {
      const id = `${list.id}-${i}`;
      list.append(
        h(
          'li',
          {
            id,
            role: 'option',
            class: 'suggestion' + (i === active ? ' active' : ''),
            'aria-selected': String(i === active),
            test: 'compose-suggestion',
            onmousedown: (e) => {
              e.preventDefault(); // keep the focus in the input
              pick(c);
            },
          },
          h('span', { class: 'pet' }, c.petname),
          h('span', { class: 'addr' }, shortAddress(c.address)),
        ),
      );
    });
    if (active >= 0) input.setAttribute('aria-activedescendant', `${list.id}-${active}`);
    else input.removeAttribute('aria-activedescendant');
  };
  input.addEventListener('input', () => {
    items = matchContacts(token().text);
    active = items.length ? 0 : -1;
    if (items.length === 0) return close();
    render();
    show(list, true);
    input.setAttribute('aria-expanded', 'true');
  });
  input.addEventListener('keydown', (e) => {
    if (list.hidden || items.length === 0) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
      render();
    } else if ((e.key === 'Enter' || e.key === 'Tab') && active >= 0) {
      e.preventDefault();
      pick(items[active]);
    } else if (e.key === 'Escape') {
      e.preventDefault(); // close the list, not the dialog
      close();
    }
  });
  input.addEventListener('blur', close);
}

// The proof-of-work tray.

function track(id, subject, rcpts) {
  if (!id || tracked.has(id)) return;
  const label = h('span', { class: 'pow-label', test: 'pow-label' }, 'Sending…');
  const bar = h('progress', { class: 'pow-bar', test: 'pow-bar', max: '100', 'aria-label': 'Proof of work' });
  const dismiss = h('button', { type: 'button', class: 'icon-button small', test: 'pow-dismiss', 'aria-label': 'Dismiss', hidden: true }, '×');
  const el = h('div', { class: 'pow-item', role: 'status', test: 'pow-progress', dataset: { outboxId: String(id), state: 'working' } }, label, bar, dismiss);
  const t = { el, bar, label, dismiss, subject: subject || '(no subject)', rcpts: Math.max(rcpts, 1), fractions: new Map(), state: 'working' };
  dismiss.addEventListener('click', () => {
    el.remove();
    tracked.delete(id);
  });
  tracked.set(id, t);
  $('pow-tray').append(el);
  renderItem(t, false);
  checkOutbox();
  if (!poll) poll = setInterval(checkOutbox, 1000);
}

function renderItem(t, waiting) {
  let pct = Math.round(100 * fraction(t));
  const b = t.blob;
  if (t.state === 'working' && b && (b.stage === 'sealing' || b.stage === 'uploading')) {
    // A large mail: sealed into a blob, then uploaded to the storage providers, before any proof of work.
    const done = b.stage === 'sealing' ? b.sealed : b.uploaded;
    pct = b.size ? Math.min(100, Math.round((100 * done) / b.size)) : 0;
    t.bar.value = pct;
    t.label.textContent =
      b.stage === 'sealing'
        ? `“${t.subject}”: sealing the attachment ${pct}%`
        : `“${t.subject}”: uploading to your storage node${b.providers > 1 ? ` ${b.providers_done + 1} of ${b.providers}` : ''} ${pct}%`;
    if (b.error) t.label.textContent += ` — failed, will retry: ${b.error}`;
  } else if (t.state === 'working') {
    t.bar.value = pct;
    t.label.textContent = waiting ? `“${t.subject}”: waiting for peers…` : `“${t.subject}”: proof of work ${pct}%`;
  } else if (t.state === 'offered') {
    // Published: the recipients' nodes pull the blob; a receipt says one has the complete mail.
    const rc = b.recipients || [];
    const fetched = rc.filter((x) => x.state === 'fetched').length;
    pct = rc.length ? Math.round((100 * fetched) / rc.length) : 0;
    t.bar.value = pct;
    const waitingFor = rc.filter((x) => x.state !== 'fetched' && x.state !== 'failed').map((x) => personOf({ address: x.address }));
    t.label.textContent = `“${t.subject}” sent; ${fetched} of ${rc.length} downloaded, waiting for ${waitingFor.join(', ')}`;
  }
  t.el.dataset.stage = b ? b.stage : '';
  t.el.dataset.state = t.state;
  t.el.dataset.percent = String(t.state === 'done' ? 100 : pct);
}

function fraction(t) {
  let sum = 0;
  for (const f of t.fractions.values()) sum += f;
  return Math.min(sum / Math.max(t.rcpts, t.fractions.size), 1);
}

// onProgress handles the event stream's progress events.
export function onProgress(ev) {
  const jobs = ev.jobs || [];
  let finished = false;
  for (const [id, t] of tracked) {
    if (t.state !== 'working') continue;
    for (const j of jobs) {
      if (j.outbox_id !== id) continue;
      const blocks = Math.max(j.blocks || 1, 1);
      const part = j.finished ? 1 : j.hashes_expected ? Math.min(j.hashes_done / j.hashes_expected, 1) : 0;
      t.fractions.set(j.recipient, Math.min((Math.max((j.block || 1) - 1, 0) + part) / blocks, 1));
      if (j.finished) finished = true;
    }
    renderItem(t, !!ev.waiting_for_peers);
  }
  if (finished) checkOutbox();
}

const PENDING = new Set(['', 'pending', 'sealed', 'queued']);
let checking = false;

let ticks = 0;

// checkOutbox finishes the tray items whose outbox item has been published to every recipient; a
// large mail (GET /api/blobs/sent) shows its sealing and upload first, and stays until every recipient
// downloaded it (polled every 5 s once published).
async function checkOutbox() {
  if (checking) return;
  const open = [...tracked.entries()].filter(([, t]) => t.state === 'working' || t.state === 'offered');
  if (open.length === 0) {
    clearInterval(poll);
    poll = null;
    return;
  }
  if (open.every(([, t]) => t.state === 'offered') && ticks++ % 5 !== 0) return;
  checking = true;
  try {
    const [r, sent] = await Promise.all([api('GET', '/api/outbox'), api('GET', '/api/blobs/sent').catch(() => [])]);
    const items = new Map((r.items || []).map((it) => [it.id, it]));
    const blobs = new Map((sent || []).map((b) => [b.outbox_id, b]));
    for (const [id, t] of open) {
      t.blob = blobs.get(id) || t.blob;
      const b = blobs.get(id);
      if (b && b.stage === 'offered') {
        t.state = 'offered';
        show(t.dismiss, true);
        renderItem(t, false);
        continue;
      }
      const it = items.get(id);
      const rc = it ? it.recipients || [] : [];
      if (b && (b.stage === 'sealing' || b.stage === 'uploading')) {
        renderItem(t, false);
        continue;
      }
      if (it && (rc.length === 0 || rc.some((x) => PENDING.has(x.state || '')))) continue;
      const failed = rc.filter((x) => x.state === 'failed');
      t.state = failed.length ? 'failed' : 'done';
      t.bar.value = 100;
      t.label.textContent = failed.length
        ? `“${t.subject}” could not be sent to ${failed.map((x) => shortAddress(x.address)).join(', ')}: ${failed[0].error || 'failed'}`
        : b
          ? `“${t.subject}” downloaded by every recipient`
          : `“${t.subject}” sent`;
      show(t.dismiss, true);
      renderItem(t, false);
    }
  } catch (e) {
    if (e.status === 401) {
      clearInterval(poll);
      poll = null;
    }
  } finally {
    checking = false;
  }
}

// resetTray forgets every tracked message (sign-out).
export function resetTray() {
  tracked.clear();
  clear($('pow-tray'));
  clearInterval(poll);
  poll = null;
  if (ctx && $('compose').open) $('compose').close();
}
