// WebSocket sync load over several rooms (a sharded install's shard rooms): writers change
// records, one unmodified y-websocket observer per room counts what reaches it.
//
//   node load.mjs --plan plan.json [--seconds 10] [--interval 10] [--warmup 3]
//                 [--header 'Authorization: Bearer ...']
//
// The plan (JSON, written by bench/sync_ws.py):
//   {"url": "ws://host:port/base", "rooms": [{"room": "ws", "params": {"shard": "<id>"},
//     "keys": ["contacts/<pk>", ...], "seed": "<base64 Yjs update>"?}, ...]}
// Each room is joined at `url + '/' + room + '?' + params` (y-websocket's own addressing). Every
// key of a room is one writer: a plain WebSocket client that sends sync step 1, applies the
// step 2 it gets (the room's document, which holds its record), then drops everything it
// receives (so the load generator is cheap and the server is what is measured) and every
// --interval ms sets its record's `phone` to `<run tag>:<counter>` with a Yjs update message made
// by its local Y.Doc. A room with `seed` gets that update first, through a socket of its own,
// before anyone else connects (an in-memory reference server starts empty).
//
// Each room's observer (an unmodified y-websocket client) reads its writers' counters at the
// start and the end of the window: the updates delivered are the counter increments the
// observers saw (so a server that merges a tick's updates into one broadcast is credited with
// each update in it), per second, summed over rooms. Messages the observers received are
// counted too. Prints one JSON line (delivered_total: what the observers saw from the first
// update on, warm-up included).

import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const plan = JSON.parse(readFileSync(args.plan, 'utf8'));
const seconds = Number(args.seconds || 10);
const interval = Number(args.interval || 10);
const warmup = Number(args.warmup || 3);
const tag = Math.random().toString(36).slice(2, 8); // this run's counters, not an earlier one's
const headers = {};
if (args.header) {
  const [name, ...rest] = args.header.split(':');
  headers[name.trim()] = rest.join(':').trim();
}
const SYNC = 0;
const STEP1 = 0;
const STEP2 = 1;
const UPDATE = 2;

class Socket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers, perMessageDeflate: false });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const address = (room) => {
  const query = new URLSearchParams(room.params || {}).toString();
  return `${plan.url}/${room.room}${query ? `?${query}` : ''}`;
};

function syncMessage(kind, payload) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, SYNC);
  encoding.writeVarUint(encoder, kind);
  encoding.writeVarUint8Array(encoder, payload);
  return encoding.toUint8Array(encoder);
}

// A plain socket to a room that sends `first` (if any) and its step 1, and resolves with the
// step 2 the server answers: on one socket the server has taken `first` before it answers.
function handshake(room, doc, first) {
  const socket = new Socket(address(room));
  socket.binaryType = 'arraybuffer';
  let done = false;
  const synced = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no step 2 from ${address(room)}`)), 30000);
    socket.on('message', (data) => {
      if (done) return; // dropped
      const decoder = decoding.createDecoder(new Uint8Array(data));
      if (decoding.readVarUint(decoder) !== SYNC) return;
      const kind = decoding.readVarUint(decoder);
      if (kind === STEP2) {
        Y.applyUpdate(doc, decoding.readVarUint8Array(decoder), 'server');
        done = true;
        clearTimeout(timer);
        resolve();
      }
    });
    socket.once('error', reject);
    socket.once('close', (code) => reject(new Error(`closed (${code}) by ${address(room)}`)));
  });
  socket.once('open', () => {
    if (first) socket.send(syncMessage(UPDATE, first));
    socket.send(syncMessage(STEP1, Y.encodeStateVector(doc)));
  });
  return { socket, synced };
}

async function seed(room) {
  const { socket, synced } = handshake(room, new Y.Doc(), Buffer.from(room.seed, 'base64'));
  await synced;
  socket.removeAllListeners('close');
  socket.close();
}

function observe(room) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(plan.url, room.room, doc, {
    WebSocketPolyfill: Socket,
    disableBc: true,
    params: room.params || {},
  });
  const observer = { doc, provider, records: doc.getMap('records'), messages: 0 };
  doc.on('update', (_update, origin) => {
    if (origin === provider) observer.messages += 1;
  });
  observer.synced = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`observer not synced in 30 s`)), 30000);
    provider.on('sync', (isSynced) => {
      if (isSynced) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return observer;
}

async function writer(room, key) {
  const doc = new Y.Doc();
  const { socket, synced } = handshake(room, doc, null);
  await synced;
  socket.removeAllListeners('close');
  const record = doc.getMap('records').get(key);
  if (!(record instanceof Y.Map)) throw new Error(`${key} is not in ${address(room)}`);
  doc.on('update', (update, origin) => {
    if (origin !== 'server' && socket.readyState === WebSocket.OPEN) {
      socket.send(syncMessage(UPDATE, update));
    }
  });
  return { doc, record, socket, key, counter: 0 };
}

for (const room of plan.rooms.filter((r) => r.seed)) await seed(room);
const observers = plan.rooms.map(observe);
await Promise.all(observers.map((o) => o.synced));
const writers = (
  await Promise.all(plan.rooms.map((room, r) => Promise.all(room.keys.map(async (key) => ({
    ...(await writer(room, key)),
    observer: observers[r],
  })))))
).flat();

let running = true;
const loops = writers.map(async (w) => {
  while (running) {
    w.counter += 1;
    w.record.set('phone', `${tag}:${w.counter}`);
    await sleep(interval);
  }
});

function seen() {
  let total = 0;
  for (const w of writers) {
    const record = w.observer.records.get(w.key);
    const phone = record instanceof Y.Map ? String(record.get('phone') || '') : '';
    total += phone.startsWith(`${tag}:`) ? Number(phone.slice(tag.length + 1)) || 0 : 0;
  }
  return total;
}
const sent = () => writers.reduce((sum, w) => sum + w.counter, 0);
const received = () => observers.reduce((sum, o) => sum + o.messages, 0);

await sleep(warmup * 1000);
const start = { seen: seen(), sent: sent(), messages: received(), at: Date.now() };
await sleep(seconds * 1000);
const elapsed = (Date.now() - start.at) / 1000;
const end = { seen: seen(), sent: sent(), messages: received() };
running = false;
await Promise.all(loops);

console.log(JSON.stringify({
  writers: writers.length,
  rooms: plan.rooms.length,
  seconds: elapsed,
  sent_per_s: (end.sent - start.sent) / elapsed,
  delivered_per_s: (end.seen - start.seen) / elapsed,
  messages_per_s: (end.messages - start.messages) / elapsed,
  delivered_total: end.seen, // from the writers' first update: what the CPU time is over
  closed_writers: writers.filter((w) => w.socket.readyState !== WebSocket.OPEN).length,
}));
for (const o of observers) o.provider.destroy();
for (const w of writers) w.socket.close();
process.exit(0);
