// Reconnecting after offline edits, as the dashboard does: a y-websocket client whose document
// was kept on the device (y-indexeddb in the browser: here the same state held in memory) makes
// N edits while disconnected, while someone online changes other records; then it joins the
// room again. Timed from the moment it starts joining to the moment both sides are merged: the
// client holds every online edit, and an observer connected throughout (another person) holds
// every offline edit (the server broadcasts an update only once it is committed).
//
//   node merge.mjs --url ws://host:port/api/v1/integrations/<id>/sync --shard <id>
//                  --keys keys.json [--edits 1000] [--online 100] [--rounds 5]
//                  [--header 'Authorization: Bearer ...']
//
// Each round prints one JSON line per kind, interleaved:
//   merge:     N offline edits, then joining (the figure the target is about);
//   reference: joining with no offline edit (the same document, the same handshake);
//   online:    the same N edits made while connected, one update each (how they would
//              otherwise reach the server), timed until the observer holds them all.

import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const keys = JSON.parse(readFileSync(args.keys, 'utf8'));
const edits = Number(args.edits || 1000);
const online = Number(args.online || 100);
const rounds = Number(args.rounds || 5);
const headers = {};
if (args.header) {
  const [name, ...rest] = args.header.split(':');
  headers[name.trim()] = rest.join(':').trim();
}
const FIELDS = ['phone', 'first_name', 'last_name'];
// the offline edits change the first three quarters of the room's records, the online ones the
// rest, so every value of both is expected to survive the merge
const split = Math.max(1, Math.floor((keys.length * 3) / 4));
const offlineKeys = keys.slice(0, split);
const onlineKeys = keys.slice(split);

class Socket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers, perMessageDeflate: false });
  }
}

function join(doc) {
  const provider = new WebsocketProvider(args.url, 'ws', doc, {
    WebSocketPolyfill: Socket, disableBc: true, params: { shard: args.shard },
  });
  const synced = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not synced in 30 s')), 30000);
    provider.on('sync', (ok) => { if (ok) { clearTimeout(timer); resolve(); } });
    provider.on('connection-close', (event) => {
      if (event && event.code >= 4000) reject(new Error(`closed ${event.code} ${event.reason}`));
    });
  });
  return { provider, synced };
}

// resolves once `doc` holds every value of `wanted` ({key: {field: value}}), checked on each
// update (no polling)
function holds(doc, wanted) {
  const records = doc.getMap('records');
  const ok = () => Object.entries(wanted).every(([key, fields]) => {
    const record = records.get(key);
    return record && Object.entries(fields).every(([f, v]) => record.get(f) === v);
  });
  return new Promise((resolve, reject) => {
    if (ok()) return resolve();
    const timer = setTimeout(() => reject(new Error('not merged in 60 s')), 60000);
    const check = () => { if (ok()) { clearTimeout(timer); doc.off('update', check); resolve(); } };
    doc.on('update', check);
  });
}

// `count` edits spread over the keys and fields, each its own transaction (one saved edit each)
function edit(doc, count, tag, from = 0) {
  const records = doc.getMap('records');
  const wanted = {};
  for (let i = 0; i < count; i += 1) {
    const key = offlineKeys[(from + i) % offlineKeys.length];
    const field = FIELDS[Math.floor((from + i) / offlineKeys.length) % FIELDS.length];
    const value = `${tag}-${i}`;
    doc.transact(() => records.get(key).set(field, value));
    (wanted[key] ||= {})[field] = value;
  }
  return wanted;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function round(n, kind, observer, other) {
  // this device's copy: the room's document as it was when the connection was lost
  const first = new Y.Doc();
  const a = join(first);
  await a.synced;
  const kept = Y.encodeStateAsUpdate(first);
  a.provider.destroy();
  first.destroy();
  const tag = `r${n}${kind[0]}${Math.random().toString(36).slice(2, 6)}`;
  const device = new Y.Doc();
  Y.applyUpdate(device, kept, 'device');
  // someone online changes other records meanwhile
  const theirs = {};
  const records = other.getMap('records');
  for (let i = 0; i < online; i += 1) {
    const key = onlineKeys[i % onlineKeys.length];
    other.transact(() => records.get(key).set('phone', `${tag}-online-${i}`));
    (theirs[key] ||= {}).phone = `${tag}-online-${i}`;
  }
  await holds(observer, theirs); // committed by the server before the client comes back
  let mine = {};
  if (kind === 'merge') mine = edit(device, edits, tag);
  const started = performance.now();
  const b = join(device);
  if (kind === 'online') {
    await b.synced;
    const t = performance.now();
    mine = edit(device, edits, tag);
    await holds(observer, mine);
    b.provider.destroy();
    device.destroy();
    return { kind, round: n, edits, ms: performance.now() - t };
  }
  await Promise.all([b.synced, holds(device, theirs), holds(observer, mine)]);
  const ms = performance.now() - started;
  b.provider.destroy();
  device.destroy();
  await sleep(200);
  return { kind, round: n, edits: kind === 'merge' ? edits : 0, online, ms, bytes: kept.length };
}

const observerDoc = new Y.Doc();
const watch = join(observerDoc);
const otherDoc = new Y.Doc();
const writer = join(otherDoc);
await Promise.all([watch.synced, writer.synced]);
for (let n = 1; n <= rounds; n += 1) {
  for (const kind of ['reference', 'merge', 'online']) {
    console.log(JSON.stringify(await round(n, kind, observerDoc, otherDoc)));
  }
}
watch.provider.destroy();
writer.provider.destroy();
process.exit(0);
