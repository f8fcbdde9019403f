// Node status: address, network, peers, shards, sync, tips and the outbox's proofs of work, from
// /api/status and /api/peers, refreshed every few seconds while shown.
import { api } from './api.js';
import { $, h, clear, show, whenFull, shortAddress } from './dom.js';

let ctx;
let timer = null;

export function init(c) {
  ctx = c;
  $('status-refresh').addEventListener('click', () => load());
}

export async function route() {
  await load();
  clearInterval(timer);
  timer = setInterval(() => {
    if (!ctx.isActive('status')) {
      clearInterval(timer);
      timer = null;
      return;
    }
    if (document.visibilityState === 'visible') load(true);
  }, 3000);
}

// The status document is docs/api.md's; older nodes nest the network part under "p2p".
function pick(s, key) {
  if (s[key] !== undefined) return s[key];
  if (s.p2p && s.p2p[key] !== undefined) return s.p2p[key];
  return undefined;
}

async function load(quiet) {
  let s, peers;
  try {
    [s, peers] = await Promise.all([api('GET', '/api/status'), api('GET', '/api/peers')]);
  } catch (e) {
    if (!quiet) ctx.showError(e);
    return;
  }
  if (peers && !Array.isArray(peers)) peers = peers.peers || [];
  peers = peers || [];
  const rawPeers = pick(s, 'peers');
  const peerCount = Array.isArray(rawPeers) ? rawPeers.length : typeof rawPeers === 'number' ? rawPeers : peers.length;
  const shards = pick(s, 'shards');
  const tips = pick(s, 'tips');
  let tipText = '';
  if (typeof tips === 'number') tipText = String(tips);
  else if (tips && typeof tips === 'object') {
    tipText =
      Object.entries(tips)
        .map(([k, v]) => `shard ${k}: ${v}`)
        .join(', ') || 'none yet';
  }
  const synced = pick(s, 'synced');
  const rows = [
    ['Address', s.address || '', 'status-address'],
    ['Network', s.network || '', 'status-network'],
    ['Peers', String(peerCount), 'status-peers'],
    ['Shards', Array.isArray(shards) ? shards.join(', ') : String(shards ?? ''), 'status-shards'],
    ['Synced', synced === undefined ? 'unknown' : synced ? 'yes' : 'not yet', 'status-synced'],
    ['Tips', tipText, 'status-tips'],
  ];
  if (s.uptime) rows.push(['Up for', s.uptime, 'status-uptime']);
  const dl = $('status-summary');
  clear(dl);
  for (const [k, v, t] of rows) dl.append(h('dt', {}, k), h('dd', { test: t }, v));

  const ob = s.outbox || {};
  const jobs = ob.jobs || [];
  show($('status-waiting'), !!ob.waiting_for_peers);
  const ul = $('status-jobs');
  clear(ul);
  for (const j of jobs) {
    const expected = j.expected ?? j.hashes_expected ?? 0;
    const done = j.done ?? j.hashes_done ?? 0;
    const pct = expected ? Math.min(100, Math.round((100 * done) / expected)) : 0;
    const rcpt = j.rcpt || j.recipient || '';
    ul.append(
      h(
        'li',
        { class: 'job-row', test: 'status-job' },
        h('span', {}, `${shortAddress(rcpt)} — block ${j.block || 1} of ${j.blocks || 1}`),
        h('progress', { max: '100', value: String(pct), 'aria-label': 'Proof of work for ' + shortAddress(rcpt) }),
      ),
    );
  }
  show($('status-jobs-empty'), jobs.length === 0);

  const tb = $('peer-rows');
  clear(tb);
  for (const p of peers) {
    const id = p.id || p.peer_id || '';
    tb.append(
      h(
        'tr',
        { test: 'peer-row' },
        h('td', { title: id }, h('code', {}, id.length > 16 ? id.slice(0, 6) + '…' + id.slice(-6) : id)),
        h('td', {}, p.direction || ''),
        h('td', {}, p.connected_since ? whenFull(p.connected_since) : ''),
        h('td', {}, p.caught_up ? 'yes' : p.catching_up ? 'catching up' : 'no'),
        h('td', {}, typeof p.score === 'number' ? p.score.toFixed(1) : ''),
      ),
    );
  }
  show($('peers-empty'), peers.length === 0);
}
