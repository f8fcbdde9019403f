// DOM helpers. Everything that shows data from the network or the user goes through text nodes
// (textContent, createTextNode): no function here ever parses HTML.

// $ returns the element with the given id; a missing one is a bug in index.html.
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error('index.html has no #' + id);
  return el;
}

// h makes an element. attrs: "class", "test" (data-test), "text" (textContent), "on<event>"
// (listeners), booleans (set when true), anything else as an attribute. Children are nodes or strings
// (strings become text nodes); null, undefined and false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'test') el.dataset.test = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// clear removes every child of el.
export function clear(el) {
  el.replaceChildren();
  return el;
}

// show sets whether el is shown (the hidden attribute).
export function show(el, on) {
  el.hidden = !on;
}

// shortAddress abbreviates a tm1…@tangle address for display where no petname is known.
export function shortAddress(addr) {
  if (!addr) return '';
  const [local, domain] = addr.split('@');
  if (local.length <= 16) return addr;
  return local.slice(0, 8) + '…' + local.slice(-6) + (domain ? '@' + domain : '');
}

const dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

// when formats an RFC 3339 time briefly: the time today, the date otherwise.
export function when(rfc3339) {
  const d = new Date(rfc3339);
  if (isNaN(d)) return '';
  const now = new Date();
  return d.toDateString() === now.toDateString() ? timeFmt.format(d) : dayFmt.format(d);
}

// whenFull formats an RFC 3339 time with date and time.
export function whenFull(rfc3339) {
  const d = new Date(rfc3339);
  return isNaN(d) ? '' : fullFmt.format(d);
}

// armConfirm makes a destructive button ask once: the first click relabels it "label", a second click
// within five seconds runs action.
export function armConfirm(btn, label, action) {
  if (btn.dataset.armed === '1') {
    btn.dataset.armed = '';
    btn.textContent = btn.dataset.label;
    action();
    return;
  }
  btn.dataset.label = btn.textContent;
  btn.dataset.armed = '1';
  btn.textContent = label;
  setTimeout(() => {
    if (btn.dataset.armed === '1') {
      btn.dataset.armed = '';
      btn.textContent = btn.dataset.label;
    }
  }, 5000);
}

// utf8Length is the length of s in UTF-8 bytes (the API's limits are in bytes).
export function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

// reconcile makes the children of list the elements for items, in order. An element is kept (not
// rebuilt) while its item's key and signature stay the same, so live updates do not replace the row a
// user is clicking or has focused; build(item) makes a new one.
export function reconcile(list, items, key, sig, build) {
  const old = new Map();
  for (const el of list.children) old.set(el.dataset.key, el);
  let i = 0;
  for (const it of items) {
    const k = String(key(it));
    const s = sig(it);
    let el = old.get(k);
    if (!el || el.dataset.sig !== s) {
      const fresh = build(it);
      fresh.dataset.key = k;
      fresh.dataset.sig = s;
      if (el) el.replaceWith(fresh);
      el = fresh;
    }
    old.delete(k);
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
    i++;
  }
  for (const el of old.values()) el.remove();
}
