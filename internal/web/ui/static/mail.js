// Mail: folders with unseen counts, the message list of one folder (newest first, paged with
// "before", searchable), the reading pane, and the actions on a message. Message text is only ever
// set as text; a message's HTML is shown by the node's sanitized /html endpoint inside an
// <iframe sandbox=""> (no scripts, an opaque origin), never inserted into this page.
import { api, path, query } from './api.js';
import { $, h, clear, show, when, whenFull, armConfirm, reconcile } from './dom.js';
import { personOf, isMe, onContactsChanged } from './people.js';
import { openCompose } from './compose.js';
import * as blobs from './blobs.js';

const PAGE = 50;
const ROLE_ORDER = ['inbox', 'drafts', 'sent', 'archive', 'junk', 'trash', '', 'chats'];
const ROLE_NAMES = { inbox: 'Inbox', drafts: 'Drafts', sent: 'Sent', archive: 'Archive', junk: 'Junk', trash: 'Trash', chats: 'Chats' };

let ctx;
let folders = [];
let folder = null; // current folder id
let search = ''; // current search text
let rows = []; // listing of the current folder, newest first
let more = false;
let open = null; // the message in the reading pane {folder, uid, …}
let listSeq = 0; // guards against answers to outdated list requests
// Counters of the events seen: a fetch that an event overtook is stale, and is repeated (the list) or
// dropped (the folders, which the event carries whole).
let mailGen = 0;
let foldersGen = 0;

export function init(c) {
  ctx = c;
  blobs.init(c);
  $('mail-search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    search = $('mail-search').value.trim();
    loadList();
  });
  $('mail-search').addEventListener('search', () => {
    // The clear button of a search field.
    if (!$('mail-search').value && search) {
      search = '';
      loadList();
    }
  });
  $('mail-more').addEventListener('click', loadOlder);
  $('compose-open').addEventListener('click', () => openCompose({}));
  $('mail-reply').addEventListener('click', reply);
  $('mail-flag').addEventListener('click', toggleFlag);
  $('mail-read').addEventListener('click', toggleSeen);
  $('mail-move').addEventListener('click', move);
  $('mail-delete').addEventListener('click', (e) => {
    const f = folders.find((x) => x.id === folder);
    if (f && f.role === 'trash') armConfirm(e.currentTarget, 'Delete for good?', remove);
    else remove();
  });
  $('mail-show-html').addEventListener('click', toggleHTML);
  onContactsChanged(() => {
    renderRows();
    if (open) renderOpen();
  });
}

// unseenInbox is the INBOX's unseen count, for the nav badge.
export function unseenInbox() {
  const f = folders.find((x) => x.role === 'inbox');
  return f ? f.unseen : 0;
}

// route shows #/mail, #/mail/<folder> or #/mail/<folder>/<uid>.
export async function route(folderID, uid) {
  if (folders.length === 0) await loadFolders();
  let fid = Number(folderID) || 0;
  if (!fid) {
    const inbox = folders.find((x) => x.role === 'inbox') || folders[0];
    fid = inbox ? inbox.id : 0;
  }
  const view = $('view-mail');
  view.classList.toggle('show-detail', !!uid);
  if (fid !== folder) {
    folder = fid;
    search = '';
    $('mail-search').value = '';
    renderFolders();
    await loadList();
  } else blobs.load();
  if (uid) await openMessage(fid, Number(uid));
  else closeMessage();
}

// reload refetches everything shown (after a reconnect or a resync).
export async function reload() {
  await loadFolders();
  if (folder) await loadList();
  if (open) await openMessage(open.folder, open.uid);
}

async function loadFolders() {
  const g = foldersGen;
  const r = await api('GET', '/api/folders');
  if (g === foldersGen || folders.length === 0) setFolders(r.folders || []);
}

function setFolders(list) {
  folders = list.slice().sort((a, b) => {
    const ra = ROLE_ORDER.indexOf(a.role || '');
    const rb = ROLE_ORDER.indexOf(b.role || '');
    return ra - rb || a.name.localeCompare(b.name);
  });
  renderFolders();
  ctx.badges();
}

function folderName(f) {
  return (f.role && ROLE_NAMES[f.role]) || f.name;
}

function renderFolders() {
  const ul = $('folder-list');
  clear(ul);
  for (const f of folders) {
    const cur = f.id === folder;
    const badge = f.unseen > 0 ? h('span', { class: 'badge', test: 'unread-count', 'aria-label': `${f.unseen} unread` }, String(f.unseen)) : null;
    ul.append(
      h(
        'li',
        { class: 'folder-row' + (cur ? ' current' : ''), test: 'folder-row', dataset: { id: String(f.id), role: f.role || '', name: f.name } },
        h('a', { href: '#/mail/' + f.id, 'aria-current': cur ? 'page' : null }, h('span', { class: 'folder-name', test: 'folder-name' }, folderName(f)), badge),
      ),
    );
  }
  const f = folders.find((x) => x.id === folder);
  $('mail-folder-title').textContent = f ? folderName(f) + (search ? ` — “${search}”` : '') : '';
  // The list starts at "Move to…", not at the first folder (Drafts, in INBOX): a move is chosen.
  const sel = $('mail-move-to');
  clear(sel);
  sel.append(h('option', { value: '', disabled: true, selected: true }, 'Move to…'));
  for (const x of folders) if (x.id !== folder) sel.append(h('option', { value: String(x.id) }, folderName(x)));
}

async function loadList() {
  const seq = ++listSeq;
  const fid = folder;
  if (!fid) return;
  renderFolders();
  const f = folders.find((x) => x.id === fid);
  blobs.setShown(!!f && f.role === 'inbox');
  try {
    let r;
    for (let tries = 0; tries < 3; tries++) {
      const g = mailGen;
      r = await api('GET', path('api', 'folders', fid, 'messages') + query({ limit: PAGE, q: search }));
      if (seq !== listSeq) return;
      if (g === mailGen) break;
    }
    rows = r.messages || [];
    more = !!r.more;
    renderRows();
  } catch (e) {
    if (seq === listSeq) ctx.showError(e);
  }
}

async function loadOlder() {
  const fid = folder;
  if (!fid || rows.length === 0) return;
  const seq = listSeq;
  const before = rows[rows.length - 1].uid;
  try {
    const r = await api('GET', path('api', 'folders', fid, 'messages') + query({ limit: PAGE, q: search, before }));
    if (seq !== listSeq) return;
    const have = new Set(rows.map((m) => m.uid));
    rows = rows.concat((r.messages || []).filter((m) => !have.has(m.uid)));
    more = !!r.more;
    renderRows();
  } catch (e) {
    ctx.showError(e);
  }
}

function isSentFolder() {
  const f = folders.find((x) => x.id === folder);
  return f && (f.role === 'sent' || f.role === 'drafts');
}

function renderRows() {
  const ul = $('mail-list');
  const sent = isSentFolder();
  const who = (m) => (sent || isMe(m.from && m.from.address) ? 'To: ' + (m.to || []).map(personOf).join(', ') : personOf(m.from));
  const isOpen = (m) => !!open && open.folder === (m.folder || folder) && open.uid === m.uid;
  reconcile(
    ul,
    rows,
    (m) => `${m.folder || folder}/${m.uid}`,
    (m) => JSON.stringify([who(m), m.subject, m.date, m.preview, !!m.seen, !!m.flagged, !!m.delivered, isOpen(m)]),
    (m) => {
      const cur = isOpen(m);
      return h(
        'li',
        {
          class: 'mail-row' + (m.seen ? '' : ' unseen') + (m.flagged ? ' flagged' : '') + (cur ? ' current' : ''),
          test: 'mail-row',
          dataset: { uid: String(m.uid), folder: String(m.folder || folder), seen: m.seen ? '1' : '0' },
        },
        h(
          'a',
          { href: `#/mail/${m.folder || folder}/${m.uid}`, 'aria-current': cur ? 'true' : null },
          h(
            'span',
            { class: 'row-top' },
            h('span', { class: 'mail-from-name', test: 'mail-row-from' }, who(m)),
            h('time', { class: 'row-time', datetime: m.date, title: whenFull(m.date) }, when(m.date)),
          ),
          h(
            'span',
            { class: 'mail-row-subject', test: 'mail-row-subject' },
            m.flagged ? h('span', { class: 'star', 'aria-label': 'flagged' }, '★ ') : null,
            m.delivered ? h('span', { class: 'delivered', title: 'delivered', 'aria-label': 'delivered' }, '✓✓ ') : null,
            m.subject || '(no subject)',
          ),
          h('span', { class: 'preview' }, m.preview || ''),
        ),
      );
    },
  );
  show($('mail-empty'), rows.length === 0);
  show($('mail-more'), more);
}

function closeMessage() {
  open = null;
  show($('mail-view'), false);
  show($('mail-placeholder'), true);
  clear($('mail-html'));
  renderRows();
}

async function openMessage(fid, uid) {
  try {
    const m = await api('GET', path('api', 'folders', fid, 'messages', uid));
    open = { ...m, folder: fid, uid };
    open.formatted = false;
    renderOpen();
    renderRows();
    if (!m.seen) await setFlags({ add: ['\\Seen'] });
  } catch (e) {
    ctx.showError(e);
  }
}

function renderOpen() {
  const m = open;
  if (!m) return;
  show($('mail-placeholder'), false);
  show($('mail-view'), true);
  $('mail-subject').textContent = m.subject || '(no subject)';
  const from = $('mail-from');
  from.textContent = personOf(m.from);
  from.title = (m.from && m.from.address) || '';
  $('mail-to').textContent = (m.to || []).map(personOf).join(', ');
  const cc = (m.cc || []).map(personOf).join(', ');
  $('mail-cc').textContent = cc;
  show($('mail-cc'), !!cc);
  show($('mail-cc-label'), !!cc);
  const bcc = (m.bcc || []).map(personOf).join(', ');
  $('mail-bcc').textContent = bcc;
  show($('mail-bcc'), !!bcc);
  show($('mail-bcc-label'), !!bcc);
  $('mail-date').textContent = whenFull(m.date);
  const v = $('mail-verified');
  if (m.sender_verified) {
    v.textContent = '✔ Sent by ' + personOf({ address: m.sender_verified }) + ' (verified by the network)';
    v.className = 'verified ok';
  } else {
    v.textContent = 'Not verified by the network (added locally or a bounce).';
    v.className = 'verified';
  }
  // The node's own mark (X-Tanglemail-E2E, docs/protocol.md §16.2): decrypted with your OpenPGP key;
  // on a Sent copy ($E2E): encrypted for the recipients before it left.
  const e2e = $('mail-e2e');
  if (m.e2e === 'openpgp' && m.e2e_signature === 'sent') {
    e2e.textContent = '🔒 Sent end-to-end encrypted with OpenPGP (to every Internet recipient; signed with your key)';
    e2e.className = 'verified ok';
  } else if (m.e2e === 'openpgp') {
    const sig = {
      good: 'signed by the sender\'s known key',
      bad: 'its signature does NOT verify',
      'unknown-key': 'signed by a key not known for the sender',
      none: 'not signed',
    }[m.e2e_signature] || 'not signed';
    e2e.textContent = '🔒 End-to-end encrypted with OpenPGP (' + sig + ')';
    e2e.className = m.e2e_signature === 'good' ? 'verified ok' : 'verified';
  } else {
    e2e.textContent = '';
  }
  show(e2e, m.e2e === 'openpgp');
  $('mail-body').textContent = m.text || '';
  renderFlags();
  const btn = $('mail-show-html');
  show(btn, !!m.has_html);
  renderHTML();
  const att = $('mail-attachments');
  clear(att);
  // Each attachment is a download (the node serves it as application/octet-stream, never rendered).
  (m.attachments || []).forEach((a, i) => att.append(h('li', { test: 'mail-attachment' },
    h('a', { href: `/api/folders/${Number(m.folder)}/messages/${Number(m.uid)}/attachments/${i}`, download: a.name || 'attachment',
      test: 'mail-attachment-link' }, a.name || 'attachment'),
    ` (${a.type || 'unknown type'}, ${a.size} bytes)`)));
  show(att, (m.attachments || []).length > 0);
}

function renderFlags() {
  const m = open;
  const flag = $('mail-flag');
  flag.textContent = m.flagged ? '★ Unflag' : '☆ Flag';
  flag.setAttribute('aria-pressed', String(!!m.flagged));
  $('mail-read').textContent = m.seen ? 'Mark unread' : 'Mark read';
}

// renderHTML shows the plain text, or the node's sanitized HTML in a sandboxed frame. The frame gets
// sandbox="allow-popups allow-popups-to-escape-sandbox" (no scripts, no same origin, no forms, no top
// navigation; a click on a link — the sanitizer keeps only http(s) and mailto links, with
// target=_blank rel="noopener noreferrer" — opens it in a new tab) and no referrer; its document also
// carries the node's own CSP with the same sandbox.
function renderHTML() {
  const m = open;
  const box = $('mail-html');
  const btn = $('mail-show-html');
  const on = !!(m && m.has_html && m.formatted);
  btn.textContent = on ? 'Show plain text' : 'Show formatted';
  btn.setAttribute('aria-pressed', String(on));
  show($('mail-body'), !on);
  show(box, on);
  clear(box);
  if (!on) return;
  const frame = document.createElement('iframe');
  frame.setAttribute('sandbox', 'allow-popups allow-popups-to-escape-sandbox');
  frame.setAttribute('referrerpolicy', 'no-referrer');
  frame.setAttribute('title', 'The message, formatted');
  frame.dataset.test = 'mail-html-frame';
  frame.className = 'html-frame';
  frame.src = path('api', 'folders', m.folder, 'messages', m.uid, 'html');
  box.append(frame);
}

function toggleHTML() {
  if (!open) return;
  open.formatted = !open.formatted;
  renderHTML();
}

async function setFlags(change) {
  const m = open;
  if (!m) return;
  try {
    const r = await api('POST', path('api', 'folders', m.folder, 'messages', m.uid, 'flags'), change);
    const flags = (r && r.flags) || [];
    const upd = { flags, seen: flags.includes('\\Seen'), flagged: flags.includes('\\Flagged') };
    if (open && open.folder === m.folder && open.uid === m.uid) {
      Object.assign(open, upd);
      renderFlags();
    }
    const row = rows.find((x) => x.uid === m.uid && (x.folder || folder) === m.folder);
    if (row) Object.assign(row, upd);
    renderRows();
  } catch (e) {
    ctx.showError(e);
  }
}

function toggleFlag() {
  if (open) setFlags(open.flagged ? { remove: ['\\Flagged'] } : { add: ['\\Flagged'] });
}

function toggleSeen() {
  if (open) setFlags(open.seen ? { remove: ['\\Seen'] } : { add: ['\\Seen'] });
}

function dropOpen() {
  const m = open;
  rows = rows.filter((x) => !(x.uid === m.uid && (x.folder || folder) === m.folder));
  ctx.navigate('#/mail/' + m.folder);
}

async function move() {
  const m = open;
  const to = Number($('mail-move-to').value);
  if (!m) return;
  if (!to) {
    ctx.showError(new Error('Choose a folder in “Move to…” first.'));
    $('mail-move-to').focus();
    return;
  }
  try {
    await api('POST', path('api', 'folders', m.folder, 'messages', m.uid, 'move'), { to });
    dropOpen();
  } catch (e) {
    ctx.showError(e);
  }
}

async function remove() {
  const m = open;
  if (!m) return;
  try {
    await api('DELETE', path('api', 'folders', m.folder, 'messages', m.uid));
    dropOpen();
  } catch (e) {
    ctx.showError(e);
  }
}

function reply() {
  const m = open;
  if (!m) return;
  const subject = /^re:/i.test(m.subject || '') ? m.subject : 'Re: ' + (m.subject || '');
  const quoted = (m.text || '')
    .split('\n')
    .map((l) => '> ' + l)
    .join('\n');
  const to = isMe(m.from && m.from.address) ? (m.to || []).map((p) => p.address) : [m.from.address];
  openCompose({ to, subject, text: `\n\n${personOf(m.from)} wrote:\n${quoted}`, inReplyTo: m.message_id || '' });
}

// Event stream handlers.

export function onFolders(ev) {
  foldersGen++;
  if (ev.folders) setFolders(ev.folders);
}

export async function onMail(ev) {
  mailGen++;
  const inbox = folders.find((x) => x.role === 'inbox');
  if (inbox && ev.folder === inbox.id && ev.folder === folder) blobs.load();
  if (ev.folder !== folder || search) return;
  // New mail in the folder shown: fetch the newest page and add what is new.
  const seq = listSeq;
  try {
    const r = await api('GET', path('api', 'folders', folder, 'messages') + query({ limit: PAGE }));
    if (seq !== listSeq) return;
    const have = new Set(rows.map((m) => m.uid));
    const fresh = (r.messages || []).filter((m) => !have.has(m.uid));
    if (fresh.length === 0) return;
    rows = fresh.concat(rows).sort((a, b) => b.uid - a.uid);
    renderRows();
  } catch (e) {
    // the next event or a reload will catch up
  }
}
