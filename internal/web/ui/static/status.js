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

// mib formats a byte count in MiB (one decimal below 10).
function mib(n) {
  const v = (n || 0) / (1 << 20);
  return (v < 10 ? v.toFixed(1) : Math.round(v)) + ' MiB';
}

async function load(quiet) {
  let s, peers;
  try {
    [s, peers] = await Promise.all([api('GET', '/api/status'), api('GET', '/api/peers')]);
  } catch (e) {
    if (!quiet) ctx.showError(e);
    return;
  }
  // The shapes are docs/api.md's (internal/api): the network part of the status is under "p2p".
  peers = peers || [];
  const p2p = s.p2p || {};
  const peerCount = (p2p.peers || []).length;
  const shards = p2p.shards;
  const tips = p2p.tips;
  let tipText = '';
  if (tips && typeof tips === 'object') {
    tipText =
      Object.entries(tips)
        .map(([k, v]) => `shard ${k}: ${v}`)
        .join(', ') || 'none yet';
  }
  const synced = p2p.synced;
  const rows = [
    ['Address', s.address || '', 'status-address'],
    ['Network', s.network || '', 'status-network'],
    ['Peers', String(peerCount), 'status-peers'],
    ['Shards', Array.isArray(shards) ? shards.join(', ') : String(shards ?? ''), 'status-shards'],
    ['Synced', synced === undefined ? 'unknown' : synced ? 'yes' : 'not yet', 'status-synced'],
    ['Tips', tipText, 'status-tips'],
  ];
  if (s.uptime) rows.push(['Up for', s.uptime, 'status-uptime']);
  if (s.version) rows.push(['Version', `${s.version.version} (commit ${String(s.version.commit).slice(0, 12)}, ${s.version.go_version}, protocol ${s.version.protocol})`, 'status-version']);
  // Large mail this node sends (blobs.sending, docs/api.md "Blob mail"): stage and who has fetched it.
  for (const b of (s.blobs && s.blobs.sending) || []) {
    const rc = b.recipients || [];
    const fetched = rc.filter((x) => x.state === 'fetched').length;
    let text = `“${b.subject || '(no subject)'}”, ${mib(b.size)}: `;
    if (b.stage === 'sealing') text += `sealing, ${mib(b.sealed)} done`;
    else if (b.stage === 'uploading') text += `uploading to your storage node, ${mib(b.uploaded)} done`;
    else if (b.stage === 'sending') text += 'sealing the envelopes (proof of work)';
    else text += `downloaded by ${fetched} of ${rc.length}` + (rc.some((x) => x.state === 'failed') ? ', not by ' + rc.filter((x) => x.state === 'failed').map((x) => shortAddress(x.address)).join(', ') : '');
    if (b.error) text += ` — failed, will retry: ${b.error}`;
    rows.push(['Large mail', text, 'status-blob-send']);
  }
  // Storage subscriptions (a light client's, or a full node's cover): usage and the paid period.
  for (const st of s.storage || []) {
    const id = st.provider || '';
    let text = `${id.length > 16 ? id.slice(0, 6) + '…' + id.slice(-6) : id}: ${st.state || 'state unknown'}`;
    text += `, ${mib(st.used_bytes)} of ${mib(st.quota_bytes)} used (${st.quota_percent || 0} %)`;
    if (st.expires) text += `, paid until ${whenFull(st.expires)}`;
    if (st.state === 'expired') text += ' — renew with "tanglemail storage subscribe"';
    if (st.last_error) text += ` (last error: ${st.last_error})`;
    rows.push(['Storage', text, 'status-storage']);
  }
  // The payment wallet's balance, as the node last read it from the chain (GET /api/status "wallet").
  const w = s.wallet || {};
  let wtext = w.address ? `${w.address.slice(0, 8)}…${w.address.slice(-6)}: ` : '';
  if (w.balance) wtext += `${w.balance}, read ${w.checked_at ? whenFull(w.checked_at) : ''}`;
  else if (!w.chain_id) wtext += 'balance unknown (no payment chain configured: start the node with --payment-rpc)';
  else wtext += 'balance not read yet';
  if (w.error && w.chain_id) wtext += ` (last read failed: ${w.error})`;
  rows.push(['Wallet', wtext, 'status-wallet']);
  const dl = $('status-summary');
  clear(dl);
  for (const [k, v, t] of rows) dl.append(h('dt', {}, k), h('dd', { test: t }, v));

  const ob = s.outbox || {};
  const jobs = ob.jobs || [];
  show($('status-waiting'), !!ob.waiting_for_peers);
  const ul = $('status-jobs');
  clear(ul);
  for (const j of jobs) {
    const expected = j.hashes_expected || 0;
    const pct = expected ? Math.min(100, Math.round((100 * j.hashes_done) / expected)) : 0;
    const rcpt = j.recipient || '';
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
    const id = p.id || '';
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
