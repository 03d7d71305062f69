// A `yjs` document syncing with connector_service's HTTP diff endpoint (POST sync).
//
//   node http_diff.mjs <gateway URL> <integration id> <API key> <record key> <field> <value>
//
// It syncs from nothing (state vector of an empty document, no update), sets <field> of the
// record <record key> to <value> in its own transaction, sends that update with its state vector
// in one round trip, applies the answer, and prints the record as the document then holds it, as
// one JSON line: {"before": {...}, "after": {...}, "keys": n}.
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';

const [base, id, key, recordKey, field, value] = process.argv.slice(2);
const url = `${base}/api/v1/integrations/${id}/sync`;
const doc = new Y.Doc();
const records = doc.getMap('records');

async function exchange(update) {
  const encoder = encoding.createEncoder();
  encoding.writeVarUint8Array(encoder, Y.encodeStateVector(doc));
  encoding.writeVarUint8Array(encoder, update);
  const response = await fetch(url, {
    method: 'POST',
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/octet-stream' },
    body: encoding.toUint8Array(encoder),
  });
  if (!response.ok) throw new Error(`POST sync: ${response.status} ${await response.text()}`);
  Y.applyUpdate(doc, new Uint8Array(await response.arrayBuffer()), 'server');
}

await exchange(new Uint8Array([0, 0])); // an empty update
const before = records.get(recordKey)?.toJSON() ?? null;
let mine = null;
doc.once('update', (update) => { mine = update; });
doc.transact(() => { records.get(recordKey).set(field, value); });
await exchange(mine);
console.log(JSON.stringify({ before, after: records.get(recordKey).toJSON(), keys: records.size }));
