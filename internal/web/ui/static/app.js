// tanglemail web client: sign-in, routing, the error banner and the event stream. The views live in
// chat.js, mail.js (with blobs.js, large mail), compose.js, contacts.js and status.js; api.js talks to
// the node (docs/api.md), people.js maps addresses to petnames, dom.js builds elements (text only,
// never HTML).
//
// Routes (location.hash): #/chat, #/chat/<conversation id>, #/mail, #/mail/<folder id>,
// #/mail/<folder id>/<uid>, #/contacts, #/status.
//
// Test hooks: every element a test (test/browser) or a person drives carries data-test="…":
//
//   Shell       app, loading, login, login-form, login-password, login-submit, logout,
//               error-banner (shown on a failed request), error-text (the API's {"error"} text),
//               error-close, nav-chat, nav-mail, nav-contacts, nav-status, nav-chat-unread,
//               nav-mail-unread, view-chat, view-mail, view-contacts, view-status
//   Chat list   conv-new-form, conv-new-peer, conv-new-submit, group-new, group-new-open (the
//               <summary> that opens the group form), group-form, group-name, group-members (comma
//               separated petnames or addresses), group-member-picks, group-member-pick, group-create,
//               conv-list, conv-empty, conv-row (data-id, data-kind), conv-name, conv-last,
//               unread-count (in a conv-row or a folder-row)
//   Chat        chat-pane, chat-open, conv-back, chat-title, chat-subtitle, chat-scroll, chat-more,
//               chat-messages, chat-message (data-id, data-uid, data-mine="1"|"0", data-status for own
//               messages; class msg mine|theirs|event), chat-from, chat-text, chat-status (data-status
//               sending|sent|delivered|read|failed; text ○ ✓ ✓✓ ✓✓), typing ("bob is typing…"; hidden
//               when nobody is), chat-form, chat-input (Enter sends), chat-send
//   Group       group-panel-open, group-panel, group-member-list, group-member (data-address),
//               group-member-remove (asks once: click twice), group-add-form, group-add-member,
//               group-add, group-rename-form, group-rename, group-rename-submit, group-leave (twice)
//   Mail        compose-open, folder-list, folder-row (data-id, data-role, data-name), folder-name,
//               mail-search-form, mail-search, mail-search-submit, mail-folder-title, mail-list,
//               mail-empty, mail-more, mail-row (data-uid, data-folder, data-seen), mail-row-from,
//               mail-row-subject, mail-reader, mail-view, mail-back, mail-subject, mail-from, mail-to,
//               mail-cc, mail-bcc (the Sent copy only), mail-date, mail-verified, mail-reply, mail-flag, mail-read, mail-move-to,
//               mail-move, mail-delete (in Trash: click twice), mail-show-html, mail-body (plain
//               text), mail-html, mail-html-frame (<iframe sandbox> of …/html), mail-attachments,
//               mail-attachment
//   Large mail  blob-pending (above the INBOX listing, shown while GET /api/blobs lists anything),
//               blob-list, blob-row (data-key, data-state waiting|fetching), blob-text, blob-accept
//               (a stranger's mail waiting for consent: downloads it), blob-progress (<progress> of the
//               download)
//   Compose     compose (the <dialog>), compose-form, compose-to, compose-cc, compose-bcc,
//               compose-to-suggestions, compose-cc-suggestions, compose-bcc-suggestions,
//               compose-suggestion, compose-subject, compose-text, compose-drop (drop files here),
//               compose-files (<input type=file multiple>), compose-attachments, compose-attachment
//               (data-name), compose-attachment-remove, compose-upload (<progress> of the upload,
//               data-percent), compose-error, compose-cancel, compose-send, pow-tray, pow-progress (one per sent
//               message: data-outbox-id, data-state working|done|failed, data-percent), pow-label,
//               pow-bar (<progress>), pow-dismiss; a large mail's pow-progress also has data-stage
//               (sealing|uploading|sending|offered|done, GET /api/blobs/sent) and the state offered
//               (published, waiting for the recipients to download it)
//   Contacts    me-card, me-address, me-copy, me-qr, contact-form, contact-petname, contact-address,
//               contact-add, contact-list, contact-empty, contact-row (data-petname, data-address),
//               contact-row-petname, contact-row-address, contact-chat, contact-mail, contact-qr,
//               contact-qr-img, contact-remove (click twice)
//   Status      status-refresh, status-summary, status-address, status-network, status-peers,
//               status-shards, status-synced, status-tips, status-uptime, status-waiting, status-jobs,
//               status-job, status-jobs-empty, status-storage, status-blob-send (one per large mail
//               being sent), peer-table, peer-row, peers-empty
//
// document.body gets data-state="login" or "app" once it knows whether a session exists, and
// data-events="open" while the event stream is connected.
import { api, onUnauthorized, Events } from './api.js';
import { $, show } from './dom.js';
import { loadMe, loadContacts } from './people.js';
import * as chat from './chat.js';
import * as mail from './mail.js';
import * as compose from './compose.js';
import * as contacts from './contacts.js';
import * as status from './status.js';

let view = ''; // the view shown: chat, mail, contacts, status
let events = null;
let connectedOnce = false;

const ctx = {
  showError,
  navigate,
  isActive: (v) => view === v && !$('app').hidden,
  badges,
};

// showError shows an error (the API's {"error"} text) in the banner until dismissed.
function showError(err) {
  if (!err || err.status === 401) return; // the sign-in screen says it
  $('banner-text').textContent = err.message || String(err);
  show($('banner'), true);
}

function hideError() {
  show($('banner'), false);
  $('banner-text').textContent = '';
}

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function badges() {
  const n = chat.unreadTotal();
  const b = document.querySelector('[data-test="nav-chat-unread"]');
  b.textContent = String(n);
  show(b, n > 0);
  const m = mail.unseenInbox();
  const mb = document.querySelector('[data-test="nav-mail-unread"]');
  mb.textContent = String(m);
  show(mb, m > 0);
}

async function route() {
  if ($('app').hidden) return;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  // Mail is the first view after sign-in (and for an unknown route).
  const next = ['chat', 'mail', 'contacts', 'status'].includes(parts[0]) ? parts[0] : 'mail';
  if (!['chat', 'mail', 'contacts', 'status'].includes(parts[0])) {
    history.replaceState(null, '', '#/mail');
  }
  view = next;
  for (const v of ['chat', 'mail', 'contacts', 'status']) show($('view-' + v), v === next);
  for (const a of document.querySelectorAll('.nav-link[data-view]')) {
    if (a.dataset.view === next) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.body.dataset.view = next;
  try {
    if (next === 'chat') await chat.route(parts[1] || '');
    else if (next === 'mail') await mail.route(parts[1] || '', parts[2] || '');
    else if (next === 'contacts') await contacts.route();
    else await status.route();
  } catch (e) {
    showError(e);
  }
}

// Sign-in and sign-out.

function showLogin(message) {
  stopEvents();
  compose.resetTray();
  show($('loading'), false);
  show($('app'), false);
  show($('login'), true);
  document.body.dataset.state = 'login';
  const pw = $('login-password');
  pw.value = '';
  if (message) {
    $('banner-text').textContent = message;
    show($('banner'), true);
  }
  pw.focus();
}

async function onLogin(e) {
  e.preventDefault();
  const btn = $('login-submit');
  btn.disabled = true;
  try {
    await api('POST', '/api/login', { password: $('login-password').value });
    $('login-password').value = '';
    hideError();
    await startApp();
  } catch (err) {
    $('banner-text').textContent = err.status === 401 ? err.message || 'Wrong password.' : err.message;
    show($('banner'), true);
    $('login-password').select();
  } finally {
    btn.disabled = false;
  }
}

async function onLogout() {
  try {
    await api('POST', '/api/logout');
  } catch (e) {
    // signed out either way
  }
  showLogin();
}

async function startApp() {
  await loadMe();
  show($('loading'), false);
  show($('login'), false);
  show($('app'), true);
  document.body.dataset.state = 'app';
  try {
    await loadContacts();
  } catch (e) {
    showError(e);
  }
  startEvents();
  await route();
}

// The event stream.

function startEvents() {
  stopEvents();
  connectedOnce = false;
  events = new Events({
    hello: () => {
      document.body.dataset.events = 'open';
      if (connectedOnce) resync(); // missed events are not replayed
      connectedOnce = true;
    },
    resync,
    chat: (d) => chat.onChat(d),
    receipt: (d) => chat.onReceipt(d),
    typing: (d) => chat.onTyping(d),
    conversation: (d) => chat.onConversation(d),
    mail: (d) => mail.onMail(d),
    folders: (d) => mail.onFolders(d),
    progress: (d) => compose.onProgress(d),
  });
  events.start();
}

function stopEvents() {
  if (events) events.stop();
  events = null;
  delete document.body.dataset.events;
}

async function resync() {
  try {
    await loadContacts();
    await chat.reload();
    await mail.reload();
  } catch (e) {
    showError(e);
  }
}

// Start.

async function boot() {
  onUnauthorized(() => {
    if (document.body.dataset.state === 'app') showLogin('Your session ended: sign in again.');
  });
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('banner-close').addEventListener('click', hideError);
  window.addEventListener('hashchange', route);
  const c = ctx;
  chat.init(c);
  mail.init(c);
  compose.init(c);
  contacts.init(c);
  status.init(c);
  try {
    await startApp();
  } catch (e) {
    showLogin(e.status === 401 ? '' : e.message);
  }
}

boot();
