// An unmodified y-websocket client (Node, `ws` as the WebSocket) against the sync WebSocket,
// through the gateway with a single-use ticket. Driven by tests/connector_service/test_sync_ws.py.
//
// Environment: SEEDOS_URL (the gateway), SEEDOS_API_KEY, INTEGRATION_ID.
// Argument: a JSON plan {"edit": {key, field, value}, "create": {key, fields}, "delete": key,
// "expect": {key: {field: value}}, "after_reconnect": {key: {field: value}}, "timeout_ms"}.
// Prints one JSON line per step: synced, edited, converged (with the records named in the plan);
// then it drops the connection, reconnects with a fresh ticket as README shows (a ticket is single
// use), prints resynced, waits for after_reconnect and prints done. Exits 1 on a timeout.
import * as Y from 'yjs'
import { connect, plan, say, ticket } from './seedos.mjs'

const doc = new Y.Doc()
const records = doc.getMap('records')
const provider = await connect(doc)
provider.on('connection-close', (event) => {
  say('closed', { code: event?.code })
  if (!provider.shouldConnect) return // disconnect() or destroy()
  provider.shouldConnect = false // not with the used ticket: with a new one
  ticket().then((t) => { provider.params = { ticket: t }; provider.connect() })
})
const synced = () => new Promise((resolve) => {
  const check = (state) => { if (state) { provider.off('synced', check); resolve() } }
  provider.on('synced', check)
})

const timeout = setTimeout(() => {
  say('timeout', { records: snapshot() })
  process.exit(1)
}, plan.timeout_ms ?? 20000)

const snapshot = () => {
  const keys = new Set([
    ...Object.keys(plan.expect ?? {}), plan.edit?.key, plan.create?.key, plan.delete
  ].filter(Boolean))
  const out = {}
  for (const key of keys) {
    const value = records.get(key)
    out[key] = value instanceof Y.Map ? value.toJSON() : null
  }
  return out
}

await synced()
say('synced', { size: records.size })

doc.transact(() => {
  if (plan.edit) records.get(plan.edit.key).set(plan.edit.field, plan.edit.value)
  if (plan.create) records.set(plan.create.key, new Y.Map(Object.entries(plan.create.fields)))
  if (plan.delete) records.delete(plan.delete)
})
say('edited')

const met = (expect) => Object.entries(expect ?? {}).every(([key, fields]) => {
  const value = records.get(key)
  return value instanceof Y.Map &&
    Object.entries(fields).every(([field, wanted]) => value.get(field) === wanted)
})
const reached = (expect) => new Promise((resolve) => {
  if (met(expect)) return resolve()
  const check = () => { if (met(expect)) { records.unobserveDeep(check); resolve() } }
  records.observeDeep(check)
})
await reached(plan.expect)
say('converged', { records: snapshot() })

const again = synced()
provider.ws.close()
await again
say('resynced')
await reached(plan.after_reconnect)
clearTimeout(timeout)
say('done', { records: snapshot() })
provider.destroy()
process.exit(0)
