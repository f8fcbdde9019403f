// Who is who: the user's own address and the contacts (petnames). Everything that shows an address
// asks nameOf, so a petname is shown wherever one is known.
import { api } from './api.js';
import { $, h, clear, shortAddress } from './dom.js';

export const people = {
  me: '', // tm1…@tangle
  contacts: [], // [{petname, address}] sorted by petname
  byAddress: new Map(), // address (lower case) → petname
};

const listeners = [];

// onContactsChanged registers f to run after the contacts were (re)loaded.
export function onContactsChanged(f) {
  listeners.push(f);
}

// loadMe fetches the node's address.
export async function loadMe() {
  const r = await api('GET', '/api/me');
  people.me = r.address || '';
  return people.me;
}

// loadContacts fetches the contacts, refreshes the petname datalist and tells the listeners.
export async function loadContacts() {
  const r = await api('GET', '/api/contacts');
  setContacts(r.contacts || []);
}

function setContacts(list) {
  people.contacts = list;
  people.byAddress = new Map(list.map((c) => [c.address.toLowerCase(), c.petname]));
  const dl = $('contact-names');
  clear(dl);
  for (const c of list) dl.append(h('option', { value: c.petname }, c.address));
  for (const f of listeners) f();
}

// isMe reports whether addr is the user's own address.
export function isMe(addr) {
  return !!addr && !!people.me && addr.toLowerCase() === people.me.toLowerCase();
}

// nameOf is what to show for an address: "you", the petname, the API's name, or the address
// shortened.
export function nameOf(addr, apiName) {
  if (isMe(addr)) return 'you';
  const pet = addr ? people.byAddress.get(addr.toLowerCase()) : undefined;
  if (pet) return pet;
  if (apiName && !apiName.includes('@')) return apiName;
  return shortAddress(addr || apiName || '');
}

// personOf shows an API person {address, name}.
export function personOf(p) {
  if (!p) return '';
  return nameOf(p.address, p.name);
}

// matchContacts returns up to n contacts whose petname starts with, or whose address contains, text.
export function matchContacts(text, n = 6) {
  const t = text.trim().toLowerCase();
  if (!t) return [];
  const starts = [];
  const other = [];
  for (const c of people.contacts) {
    if (c.petname.toLowerCase().startsWith(t)) starts.push(c);
    else if (c.petname.toLowerCase().includes(t) || c.address.toLowerCase().includes(t)) other.push(c);
  }
  return starts.concat(other).slice(0, n);
}
