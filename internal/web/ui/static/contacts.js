// Contacts: the user's own address with its QR code, the invite (shown only after saying what it
// reveals), joining by a friend's invite, and the contact list (petname → address) with add, remove, QR,
// "chat" and "mail" actions.
import { api, path, query } from './api.js';
import { $, h, clear, show, armConfirm } from './dom.js';
import { people, loadContacts, onContactsChanged } from './people.js';
import { openCompose } from './compose.js';
import { startChat } from './chat.js';

let ctx;
const qrShown = new Set(); // petnames whose QR code is open

export function init(c) {
  ctx = c;
  $('contact-form').addEventListener('submit', onAdd);
  $('join-form').addEventListener('submit', onJoin);
  $('invite-show').addEventListener('click', showInviteWarning);
  $('invite-make').addEventListener('click', makeInvite);
  $('invite-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('invite-text').value);
      $('invite-copy').textContent = 'Copied';
    } catch (e) {
      $('invite-text').select(); // no clipboard (not a secure context): selected for a manual copy
    }
  });
  $('me-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(people.me);
      $('me-copy').textContent = 'Copied';
    } catch (e) {
      // No clipboard (not a secure context): select the text for a manual copy.
      const r = document.createRange();
      r.selectNodeContents($('me-address'));
      const s = getSelection();
      s.removeAllRanges();
      s.addRange(r);
    }
  });
  onContactsChanged(render);
}

export function qrURL(text) {
  return '/api/qr' + query({ text });
}

export async function route() {
  $('me-address').textContent = people.me;
  $('me-copy').textContent = 'Copy';
  const img = $('me-qr');
  if (people.me && img.getAttribute('src') !== qrURL(people.me)) img.src = qrURL(people.me);
  await loadContacts();
}

function render() {
  const ul = $('contact-list');
  clear(ul);
  show($('contact-empty'), people.contacts.length === 0);
  for (const c of people.contacts) {
    const open = qrShown.has(c.petname);
    const qr = open ? h('img', { class: 'qr', src: qrURL(c.address), width: '200', height: '200', alt: 'QR code of ' + c.petname + '’s address', test: 'contact-qr-img' }) : null;
    ul.append(
      h(
        'li',
        { class: 'contact-row', test: 'contact-row', dataset: { petname: c.petname, address: c.address } },
        h('div', { class: 'contact-main' }, h('span', { class: 'contact-petname', test: 'contact-row-petname' }, c.petname), h('code', { class: 'address', test: 'contact-row-address' }, c.address)),
        h(
          'div',
          { class: 'contact-actions' },
          h('button', { type: 'button', test: 'contact-chat', 'aria-label': 'Chat with ' + c.petname, onclick: () => startChat(c.petname) }, 'Chat'),
          h('button', { type: 'button', test: 'contact-mail', 'aria-label': 'Write to ' + c.petname, onclick: () => openCompose({ to: [c.petname] }) }, 'Mail'),
          h(
            'button',
            {
              type: 'button',
              test: 'contact-qr',
              'aria-expanded': String(open),
              'aria-label': 'QR code of ' + c.petname + '’s address',
              onclick: () => {
                if (qrShown.has(c.petname)) qrShown.delete(c.petname);
                else qrShown.add(c.petname);
                render();
              },
            },
            'QR',
          ),
          h('button', { type: 'button', class: 'danger', test: 'contact-remove', 'aria-label': 'Remove ' + c.petname, onclick: (e) => armConfirm(e.currentTarget, 'Remove?', () => remove(c.petname)) }, 'Remove'),
        ),
        qr,
      ),
    );
  }
}

async function onAdd(e) {
  e.preventDefault();
  const petname = $('contact-petname').value.trim();
  const address = $('contact-address').value.trim();
  if (!petname || !address) return;
  try {
    await api('POST', '/api/contacts', { petname, address });
    $('contact-petname').value = '';
    $('contact-address').value = '';
    await loadContacts();
  } catch (err) {
    ctx.showError(err);
  }
}

async function remove(petname) {
  try {
    await api('DELETE', path('api', 'contacts', petname));
    qrShown.delete(petname);
    await loadContacts();
  } catch (err) {
    ctx.showError(err);
  }
}

// showInviteWarning asks the node for the invite's addresses and says what sharing it reveals, before
// the invite itself is shown.
async function showInviteWarning() {
  try {
    const inv = await api('GET', '/api/invite');
    $('invite-reveals').textContent = inv.reveals;
    show($('invite-confirm'), true);
    show($('invite-out'), false);
    $('invite-show').hidden = true;
  } catch (err) {
    ctx.showError(err);
  }
}

async function makeInvite() {
  try {
    const inv = await api('GET', '/api/invite' + query({ name: $('invite-name').value.trim() }));
    $('invite-text').value = inv.invite;
    $('invite-copy').textContent = 'Copy';
    $('invite-qr').src = qrURL(inv.invite);
    show($('invite-out'), true);
  } catch (err) {
    ctx.showError(err);
  }
}

async function onJoin(e) {
  e.preventDefault();
  const invite = $('join-invite').value.trim();
  const petname = $('join-petname').value.trim();
  if (!invite) return;
  const out = $('join-result');
  out.textContent = 'Dialling the invite’s peers…';
  show(out, true);
  try {
    const r = await api('POST', '/api/join', petname ? { invite, petname } : { invite });
    const total = r.connected.length + r.failed.length;
    out.textContent =
      `Joined: connected to ${r.connected.length} of ${total} of the invite’s addresses. ` +
      (r.contact_added ? `Added ${r.contact.petname} to your contacts.` : `${r.contact.petname} was already a contact.`);
    $('join-invite').value = '';
    $('join-petname').value = '';
    await loadContacts();
  } catch (err) {
    show(out, false);
    ctx.showError(err);
  }
}
