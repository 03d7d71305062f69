// An unmodified y-websocket client editing one record through the room of its shard, as README
// shows: ask which shard holds it (GET sync/shards/for), join `sync/ws?shard=<id>` with a ticket.
// Driven by tests/connector_service/test_shards.py.
//
// Environment: SEEDOS_URL (the gateway), SEEDOS_API_KEY, INTEGRATION_ID.
// Argument: a JSON plan {"stream", "key", "edit": {field: value}, "expect": {field: value},
// "timeout_ms"}. Prints: synced (with the number of records the room holds), edited, converged
// (once the record shows `expect`, set by someone else), or timeout (exit 1).
import * as Y from 'yjs'
import { connect, plan, say, shardOf } from './seedos.mjs'

const timeout = setTimeout(() => { say('timeout'); process.exit(1) }, plan.timeout_ms ?? 20000)
const shard = await shardOf(plan.stream, plan.key)
const doc = new Y.Doc()
const records = doc.getMap('records')
const provider = await connect(doc, { shard })
provider.on('connection-close', (event) => say('closed', { code: event?.code }))
await new Promise((resolve) => provider.once('synced', resolve))
const key = `${plan.stream}/${plan.key}`
say('synced', { shard, size: records.size, has: records.get(key) instanceof Y.Map })

doc.transact(() => {
  for (const [field, value] of Object.entries(plan.edit)) records.get(key).set(field, value)
})
say('edited')
const met = () => {
  const record = records.get(key)
  return record instanceof Y.Map &&
    Object.entries(plan.expect).every(([field, value]) => record.get(field) === value)
}
await new Promise((resolve) => {
  if (met()) return resolve()
  records.observeDeep(() => { if (met()) resolve() })
})
clearTimeout(timeout)
say('converged', { record: records.get(key).toJSON() })
provider.destroy()
process.exit(0)
