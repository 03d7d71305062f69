// WebSocket sync load: writers change records through unmodified y-websocket clients, one
// observer counts what reaches it.
//
//   node load.mjs --url ws://127.0.0.1:1234/base --room ws [--writers 50] [--seconds 10]
//                 [--interval 10] [--warmup 3] [--header 'Authorization: Bearer ...']
//
// Every writer owns one record, `contacts/bench-w<i>`, and sets its `phone` field to a counter
// every --interval ms. Writers are plain WebSocket clients that send Yjs update messages made by
// a local Y.Doc and drop what they receive (so the load generator is cheap and the server is
// what is measured); the observer is an unmodified y-websocket client. The observer reads the counters at the start and the end of the window:
// the updates delivered are the counter increments it saw (so a server that merges the updates
// of a tick into one broadcast is credited with every update in it), per second. Messages the
// observer received are counted too. Prints one JSON line.

import { WebSocket } from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import * as encoding from 'lib0/encoding';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const url = args.url;
const room = args.room || 'ws';
const writers = Number(args.writers || 50);
const seconds = Number(args.seconds || 10);
const interval = Number(args.interval || 10);
const warmup = Number(args.warmup || 3);
const headers = {};
if (args.header) {
  const [name, ...rest] = args.header.split(':');
  headers[name.trim()] = rest.join(':').trim();
}

class Socket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, { headers, perMessageDeflate: false });
  }
}

function connect() {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(url, room, doc, {
    WebSocketPolyfill: Socket,
    disableBc: true,
  });
  const synced = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('not synced in 30 s')), 30000);
    provider.on('sync', (isSynced) => {
      if (isSynced) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { doc, provider, synced, records: doc.getMap('records') };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const observer = connect();
let messages = 0;
observer.doc.on('update', (_update, origin) => {
  if (origin === observer.provider) messages += 1;
});
await observer.synced;

function updateMessage(update) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint(encoder, 0); // sync
  encoding.writeVarUint(encoder, 2); // update
  encoding.writeVarUint8Array(encoder, update);
  return encoding.toUint8Array(encoder);
}

function writer(i) {
  const doc = new Y.Doc();
  const records = doc.getMap('records');
  const socket = new Socket(`${url}/${room}`);
  socket.binaryType = 'arraybuffer';
  socket.on('message', () => {}); // dropped
  doc.on('update', (update) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(updateMessage(update));
  });
  const open = new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { doc, records, socket, open, key: `contacts/bench-w${i}-${process.pid}` };
}

const clients = [];
for (let i = 0; i < writers; i += 1) clients.push(writer(i));
await Promise.all(clients.map((c) => c.open));
for (const c of clients) {
  c.doc.transact(() => {
    const record = new Y.Map();
    const id = c.key.split('/')[1];
    record.set('id', id);
    record.set('email', `${id}@example.com`);
    record.set('phone', '0');
    c.records.set(c.key, record);
  });
}

let running = true;
const counters = clients.map(() => 0);
const loops = clients.map(async (c, i) => {
  while (running) {
    counters[i] += 1;
    c.records.get(c.key).set('phone', String(counters[i]));
    await sleep(interval);
  }
});

function seen() {
  let total = 0;
  for (let i = 0; i < writers; i += 1) {
    const record = observer.records.get(clients[i].key);
    total += record ? Number(record.get('phone')) || 0 : 0;
  }
  return total;
}

await sleep(warmup * 1000);
const startSeen = seen();
const startMessages = messages;
const startSent = counters.reduce((a, b) => a + b, 0);
const started = Date.now();
await sleep(seconds * 1000);
const elapsed = (Date.now() - started) / 1000;
const endSeen = seen();
const endMessages = messages;
const endSent = counters.reduce((a, b) => a + b, 0);
running = false;
await Promise.all(loops);

console.log(JSON.stringify({
  writers,
  seconds: elapsed,
  sent_per_s: (endSent - startSent) / elapsed,
  delivered_per_s: (endSeen - startSeen) / elapsed,
  messages_per_s: (endMessages - startMessages) / elapsed,
}));
observer.provider.destroy();
for (const c of clients) c.socket.close();
process.exit(0);
