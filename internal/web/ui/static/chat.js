// Chat: the conversation list, one open conversation with its history, the send box, typing notices,
// read marks and delivery ticks, and a group's members panel. Live updates come from the event stream
// (chat, receipt, typing, conversation); the history of the open conversation is reloaded on a
// reconnect.
import { api, path, query } from './api.js';
import { $, h, clear, show, when, whenFull, armConfirm, utf8Length, reconcile } from './dom.js';
import { people, nameOf, personOf, isMe, onContactsChanged } from './people.js';

const TYPING_SHOWN_MS = 5000; // how long "bob is typing…" stays without a new notice
const TYPING_EVERY_MS = 3000; // at most one typing notice per this interval
const MAX_TEXT_BYTES = 4000;

// Status ticks of the user's own messages.
const TICKS = {
  sending: { mark: '○', label: 'sending' },
  sent: { mark: '✓', label: 'sent' },
  delivered: { mark: '✓✓', label: 'delivered' },
  read: { mark: '✓✓', label: 'read' },
  failed: { mark: '!', label: 'not delivered' },
};
const RANK = { '': 0, sending: 1, sent: 2, delivered: 3, read: 4, failed: 5 };

let ctx; // {showError, navigate, isActive}
const convs = new Map(); // id → conversation
let current = null; // the open conversation's id
let messages = new Map(); // id → message of the open conversation
let more = false; // older messages exist
let lastTypingSent = 0;
const typers = new Map(); // address → {name, timer} for the open conversation
let reading = null; // a running POST /read
let readAgain = false;

export function init(c) {
  ctx = c;
  $('conv-new-form').addEventListener('submit', onNewDirect);
  $('group-form').addEventListener('submit', onNewGroup);
  $('chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  const input = $('chat-input');
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  input.addEventListener('input', onTypingInput);
  $('chat-more').addEventListener('click', loadOlder);
  $('group-panel-toggle').addEventListener('click', () => {
    const panel = $('group-panel');
    show(panel, panel.hidden);
    $('group-panel-toggle').setAttribute('aria-expanded', String(!panel.hidden));
  });
  $('group-add-form').addEventListener('submit', onAddMember);
  $('group-rename-form').addEventListener('submit', onRename);
  $('group-leave').addEventListener('click', (e) => armConfirm(e.currentTarget, 'Really leave?', onLeave));
  document.addEventListener('visibilitychange', () => maybeMarkRead());
  window.addEventListener('focus', () => maybeMarkRead());
  onContactsChanged(() => {
    renderList();
    renderPicks();
    if (current) {
      renderHeader();
      for (const m of messages.values()) renderMessage(m);
    }
  });
}

// show is called when the route is #/chat or #/chat/<id>.
export async function route(id) {
  const view = $('view-chat');
  view.classList.toggle('show-detail', !!id);
  if (!id) {
    closeConversation();
    await loadList();
    return;
  }
  if (id !== current) await openConversation(id);
  else maybeMarkRead();
  if (convs.size === 0) await loadList();
}

// reload refetches everything shown (after a reconnect or a resync).
export async function reload() {
  await loadList();
  if (current) await loadHistory(current);
}

// unreadTotal counts unread chat messages, for the nav badge.
export function unreadTotal() {
  let n = 0;
  for (const c of convs.values()) n += c.unread || 0;
  return n;
}

let listGen = 0; // counts chat events: a list fetch that one overtook is repeated

async function loadList() {
  let r;
  for (let tries = 0; tries < 3; tries++) {
    const g = listGen;
    r = await api('GET', '/api/conversations');
    if (g === listGen) break;
  }
  convs.clear();
  for (const c of r.conversations || []) convs.set(c.id, c);
  renderList();
}

function sortedConvs() {
  return [...convs.values()].sort((a, b) => String(b.updated || '').localeCompare(String(a.updated || '')));
}

function convName(c) {
  if (!c) return '';
  if (c.kind === 'direct') return nameOf(c.peer, c.name);
  return c.name || 'Group';
}

function renderList() {
  const ul = $('conv-list');
  const list = sortedConvs();
  show($('conv-empty'), list.length === 0);
  const lastText = (c) => {
    if (!c.last) return '';
    const who = c.last.mine ? 'You: ' : c.kind === 'group' && c.last.kind !== 'event' ? personOf(c.last.from) + ': ' : '';
    return who + c.last.text;
  };
  reconcile(
    ul,
    list,
    (c) => c.id,
    (c) => JSON.stringify([convName(c), lastText(c), c.last ? c.last.sent : '', c.unread || 0, c.id === current, c.kind]),
    (c) => {
      const badge = c.unread > 0 ? h('span', { class: 'badge', test: 'unread-count', 'aria-label': `${c.unread} unread` }, String(c.unread)) : null;
      return h(
        'li',
        { class: 'conv-row' + (c.id === current ? ' current' : '') + (c.unread > 0 ? ' unread' : ''), test: 'conv-row', dataset: { id: c.id, kind: c.kind } },
        h(
          'a',
          { href: '#/chat/' + c.id, 'aria-current': c.id === current ? 'true' : null },
          h('span', { class: 'row-top' }, h('span', { class: 'conv-title' }, c.kind === 'group' ? h('span', { class: 'group-mark', 'aria-label': 'group' }, '❖ ') : null, h('span', { class: 'conv-name', test: 'conv-name' }, convName(c))), h('time', { class: 'row-time' }, c.last ? when(c.last.sent) : '')),
          h('span', { class: 'row-bottom' }, h('span', { class: 'conv-last', test: 'conv-last' }, lastText(c)), badge),
        ),
      );
    },
  );
  ctx.badges();
}

function closeConversation() {
  current = null;
  messages = new Map();
  clearTypers();
  show($('chat-open'), false);
  show($('chat-placeholder'), true);
  renderList();
}

async function openConversation(id) {
  current = id;
  messages = new Map();
  clearTypers();
  clear($('chat-messages'));
  show($('group-panel'), false);
  $('group-panel-toggle').setAttribute('aria-expanded', 'false');
  show($('chat-placeholder'), false);
  show($('chat-open'), true);
  try {
    const c = await api('GET', path('api', 'conversations', id));
    if (current !== id) return;
    convs.set(id, c);
    renderHeader();
    renderList();
    await loadHistory(id);
    $('chat-input').focus({ preventScroll: true });
  } catch (e) {
    if (current === id) ctx.showError(e);
  }
}

async function loadHistory(id) {
  const r = await api('GET', path('api', 'conversations', id, 'messages') + query({ limit: 100 }));
  if (current !== id) return;
  // Messages that events brought while the request ran, newer than the answer, stay.
  const fetched = r.messages || [];
  const last = fetched.reduce((max, m) => Math.max(max, m.uid || 0), 0);
  const kept = [...messages.values()].filter((m) => !m.uid || m.uid > last);
  messages = new Map();
  clear($('chat-messages'));
  for (const m of fetched) addMessage(m);
  for (const m of kept) addMessage(m);
  more = !!r.more;
  show($('chat-more'), more);
  scrollToEnd();
  maybeMarkRead();
}

async function loadOlder() {
  const id = current;
  const first = [...messages.values()].reduce((min, m) => (min === null || m.uid < min ? m.uid : min), null);
  if (!id || first === null) return;
  try {
    const r = await api('GET', path('api', 'conversations', id, 'messages') + query({ limit: 100, before: first }));
    if (current !== id) return;
    const scroller = $('chat-scroll');
    const before = scroller.scrollHeight;
    for (const m of r.messages || []) addMessage(m);
    more = !!r.more;
    show($('chat-more'), more);
    scroller.scrollTop += scroller.scrollHeight - before;
  } catch (e) {
    ctx.showError(e);
  }
}

function renderHeader() {
  const c = convs.get(current);
  if (!c) return;
  $('chat-title').textContent = convName(c);
  const sub = $('chat-subtitle');
  const group = c.kind === 'group';
  if (group) {
    const names = (c.members || []).map((m) => (m.me ? 'you' : personOf(m)));
    sub.textContent = c.left ? 'You left this group' : names.join(', ');
  } else {
    sub.textContent = c.peer || '';
  }
  show($('group-panel-toggle'), group);
  if (!group) show($('group-panel'), false);
  const ul = $('group-member-list');
  clear(ul);
  for (const m of c.members || []) {
    const remove =
      group && !m.me && !c.left
        ? h('button', { type: 'button', class: 'small danger', test: 'group-member-remove', 'aria-label': 'Remove ' + personOf(m), onclick: (e) => armConfirm(e.currentTarget, 'Remove?', () => removeMember(m.address)) }, 'Remove')
        : null;
    ul.append(h('li', { class: 'member-row', test: 'group-member', dataset: { address: m.address } }, h('span', { class: 'member-name', title: m.address }, m.me ? 'You' : personOf(m)), remove));
  }
  const active = !c.left;
  for (const id of ['group-add-form', 'group-rename-form', 'group-leave']) show($(id), group && active);
  const rename = $('group-rename-input');
  if (document.activeElement !== rename) rename.value = c.name || '';
  const form = $('chat-form');
  show(form, active);
}

// addMessage adds or updates m in the open conversation, in UID order. A status never goes back
// (an answer to POST can arrive after the receipt that followed it).
function addMessage(m) {
  const old = messages.get(m.id);
  if (old && RANK[old.status || ''] > RANK[m.status || '']) m = { ...m, status: old.status };
  messages.set(m.id, m);
  renderMessage(m);
}

function renderMessage(m) {
  const ol = $('chat-messages');
  let li = ol.querySelector(`li[data-id="${CSS.escape(m.id)}"]`);
  const c = convs.get(current);
  const fresh = !li;
  if (fresh) li = h('li', { test: 'chat-message', dataset: { id: m.id } });
  li.dataset.uid = String(m.uid || 0);
  li.dataset.mine = m.mine ? '1' : '0';
  li.className = 'msg ' + (m.kind === 'event' ? 'event' : m.mine ? 'mine' : 'theirs');
  clear(li);
  if (m.kind === 'event') {
    li.append(h('span', { class: 'event-text', test: 'chat-text' }, m.text), ' ', h('time', { class: 'msg-time', datetime: m.sent, title: whenFull(m.sent) }, when(m.sent)));
  } else {
    if (!m.mine && c && c.kind === 'group') li.append(h('span', { class: 'msg-from', test: 'chat-from' }, personOf(m.from)));
    li.append(h('span', { class: 'msg-text', test: 'chat-text' }, m.text));
    const meta = h('span', { class: 'msg-meta' }, h('time', { class: 'msg-time', datetime: m.sent, title: whenFull(m.sent) }, when(m.sent)));
    if (m.mine) {
      const st = m.status || 'sending';
      const tick = TICKS[st] || { mark: '', label: st };
      meta.append(h('span', { class: 'tick ' + st, test: 'chat-status', dataset: { status: st }, title: tick.label, 'aria-label': tick.label }, tick.mark));
      li.dataset.status = st;
    }
    li.append(meta);
  }
  if (fresh) {
    // Keep UID order; a message still without a UID goes last.
    const uid = m.uid || Infinity;
    const next = [...ol.children].find((el) => (Number(el.dataset.uid) || Infinity) > uid);
    ol.insertBefore(li, next || null);
  }
}

function scrollToEnd() {
  const s = $('chat-scroll');
  s.scrollTop = s.scrollHeight;
}

function nearEnd() {
  const s = $('chat-scroll');
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

async function send() {
  const input = $('chat-input');
  const text = input.value.trim();
  const id = current;
  if (!text || !id) return;
  if (utf8Length(text) > MAX_TEXT_BYTES) {
    ctx.showError(new Error(`The message is too long: at most ${MAX_TEXT_BYTES} bytes.`));
    return;
  }
  input.value = '';
  try {
    const m = await api('POST', path('api', 'conversations', id, 'messages'), { text });
    if (current === id && m && m.id) {
      addMessage(m);
      scrollToEnd();
    }
    bumpConversation(id, m);
  } catch (e) {
    if (!input.value) input.value = text; // give the text back to retry
    ctx.showError(e);
  }
}

function bumpConversation(id, m) {
  const c = convs.get(id);
  if (!c || !m) return;
  if (!c.last || (m.uid || 0) >= (c.last.uid || 0) || c.last.id === m.id) c.last = m;
  if (m.sent && String(m.sent) > String(c.updated || '')) c.updated = m.sent;
  renderList();
}

function onTypingInput() {
  if (!current || !$('chat-input').value) return;
  const now = Date.now();
  if (now - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = now;
  api('POST', path('api', 'conversations', current, 'typing')).catch(() => {}); // best effort
}

// maybeMarkRead marks the open conversation read when the user can see it.
export function maybeMarkRead() {
  const id = current;
  if (!id || document.visibilityState !== 'visible' || !ctx.isActive('chat')) return;
  const c = convs.get(id);
  const unseen = [...messages.values()].some((m) => !m.mine && !m.seen);
  if (!unseen && !(c && c.unread > 0)) return;
  if (reading) {
    readAgain = true;
    return;
  }
  reading = api('POST', path('api', 'conversations', id, 'read'))
    .then(() => {
      for (const m of messages.values()) if (!m.mine) m.seen = true;
      const cc = convs.get(id);
      if (cc) cc.unread = 0;
      renderList();
    })
    .catch((e) => ctx.showError(e))
    .finally(() => {
      reading = null;
      if (readAgain) {
        readAgain = false;
        maybeMarkRead();
      }
    });
}

// Event stream handlers.

export function onChat(ev) {
  listGen++;
  const m = ev.message;
  if (!m) return;
  const id = ev.conversation || m.conversation;
  const c = convs.get(id);
  if (c) {
    if (!m.mine && !m.seen && id !== current) c.unread = (c.unread || 0) + 1;
    bumpConversation(id, m);
  } else {
    // A conversation we did not know: fetch it.
    api('GET', path('api', 'conversations', id)).then(
      (info) => {
        convs.set(id, info);
        renderList();
      },
      () => {},
    );
  }
  if (id === current) {
    const stick = nearEnd() || m.mine;
    addMessage(m);
    if (stick) scrollToEnd();
    if (!m.mine && m.from) dropTyper(m.from.address);
    if (m.kind === 'event') refreshCurrent();
    maybeMarkRead();
  }
}

export function onReceipt(ev) {
  listGen++;
  const m = ev.message;
  if (!m) return;
  const id = ev.conversation || m.conversation;
  if (id === current && messages.has(m.id)) addMessage({ ...messages.get(m.id), ...m });
  const c = convs.get(id);
  if (c && c.last && c.last.id === m.id) c.last = { ...c.last, ...m };
}

export function onConversation(ev) {
  listGen++;
  const info = ev.info;
  const id = ev.conversation || (info && info.id);
  if (!id) return;
  if (info) {
    const old = convs.get(id);
    convs.set(id, { ...old, ...info, last: info.last || (old && old.last) });
  }
  renderList();
  if (id === current) {
    renderHeader();
    maybeMarkRead();
  }
}

export function onTyping(ev) {
  if (ev.conversation !== current || !ev.from || isMe(ev.from.address)) return;
  const addr = ev.from.address;
  const old = typers.get(addr);
  if (old) clearTimeout(old.timer);
  typers.set(addr, { from: ev.from, timer: setTimeout(() => dropTyper(addr), TYPING_SHOWN_MS) });
  renderTypers();
}

function dropTyper(addr) {
  const t = typers.get(addr);
  if (!t) return;
  clearTimeout(t.timer);
  typers.delete(addr);
  renderTypers();
}

function clearTypers() {
  for (const t of typers.values()) clearTimeout(t.timer);
  typers.clear();
  renderTypers();
}

function renderTypers() {
  const el = $('typing');
  const names = [...typers.values()].map((t) => personOf(t.from));
  if (names.length === 0) {
    el.textContent = '';
    show(el, false);
    return;
  }
  el.textContent = names.length === 1 ? `${names[0]} is typing…` : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
  show(el, true);
}

async function refreshCurrent() {
  const id = current;
  if (!id) return;
  try {
    const c = await api('GET', path('api', 'conversations', id));
    convs.set(id, c);
    if (id === current) renderHeader();
    renderList();
  } catch (e) {
    ctx.showError(e);
  }
}

// Forms.

async function onNewDirect(e) {
  e.preventDefault();
  const input = $('conv-new-peer');
  const peer = input.value.trim();
  if (!peer) return;
  try {
    const c = await api('POST', '/api/conversations', { peer });
    input.value = '';
    convs.set(c.id, c);
    ctx.navigate('#/chat/' + c.id);
  } catch (err) {
    ctx.showError(err);
  }
}

// startChat opens the 1:1 conversation with peer (from the contacts page).
export async function startChat(peer) {
  try {
    const c = await api('POST', '/api/conversations', { peer });
    convs.set(c.id, c);
    ctx.navigate('#/chat/' + c.id);
  } catch (err) {
    ctx.showError(err);
  }
}

function splitList(s) {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

async function onNewGroup(e) {
  e.preventDefault();
  const name = $('group-name').value.trim();
  const members = splitList($('group-members').value);
  if (!name || members.length === 0) return;
  try {
    const c = await api('POST', '/api/conversations', { name, members });
    $('group-name').value = '';
    $('group-members').value = '';
    $('group-new').open = false;
    convs.set(c.id, c);
    ctx.navigate('#/chat/' + c.id);
  } catch (err) {
    ctx.showError(err);
  }
}

function renderPicks() {
  const box = $('group-member-picks');
  clear(box);
  for (const c of people.contacts) {
    box.append(
      h(
        'button',
        {
          type: 'button',
          class: 'chip',
          test: 'group-member-pick',
          'aria-label': 'Add ' + c.petname + ' to the members',
          onclick: () => {
            const input = $('group-members');
            const list = splitList(input.value);
            if (!list.includes(c.petname)) list.push(c.petname);
            input.value = list.join(', ');
          },
        },
        '+ ' + c.petname,
      ),
    );
  }
}

async function onAddMember(e) {
  e.preventDefault();
  const input = $('group-add-input');
  const member = input.value.trim();
  if (!member || !current) return;
  try {
    await api('POST', path('api', 'conversations', current, 'members'), { member });
    input.value = '';
    await refreshCurrent();
  } catch (err) {
    ctx.showError(err);
  }
}

async function removeMember(address) {
  if (!current) return;
  try {
    await api('DELETE', path('api', 'conversations', current, 'members', address));
    await refreshCurrent();
  } catch (err) {
    ctx.showError(err);
  }
}

async function onRename(e) {
  e.preventDefault();
  const name = $('group-rename-input').value.trim();
  if (!name || !current) return;
  try {
    await api('PATCH', path('api', 'conversations', current), { name });
    $('group-rename-input').blur();
    await refreshCurrent();
  } catch (err) {
    ctx.showError(err);
  }
}

async function onLeave() {
  if (!current) return;
  try {
    await api('POST', path('api', 'conversations', current, 'leave'));
    await refreshCurrent();
  } catch (err) {
    ctx.showError(err);
  }
}
