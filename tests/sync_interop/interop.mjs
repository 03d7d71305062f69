// An unmodified y-websocket client (Node, `ws` as the WebSocket) against the sync WebSocket,
// through the gateway with a single-use ticket. Driven by tests/connector_service/test_sync_ws.py.
//
// Environment: SEEDOS_URL (the gateway), SEEDOS_API_KEY, INTEGRATION_ID.
// Argument: a JSON plan {"edit": {key, field, value}, "create": {key, fields}, "delete": key,
// "expect": {key: {field: value}}, "timeout_ms"}. Prints one JSON line per step: synced, edited,
// then done with the records named in the plan; exits 1 if the expectations are not met in time.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const base = process.env.SEEDOS_URL
const id = process.env.INTEGRATION_ID
const plan = JSON.parse(process.argv[2])
const say = (event, extra = {}) => console.log(JSON.stringify({ event, ...extra }))

const answer = await fetch(`${base}/api/v1/integrations/${id}/sync/ticket`, {
  method: 'POST',
  headers: { Authorization: `Bearer ${process.env.SEEDOS_API_KEY}` }
})
if (answer.status !== 200) {
  say('ticket_refused', { status: answer.status })
  process.exit(1)
}
const { ticket } = await answer.json()

const doc = new Y.Doc()
const records = doc.getMap('records')
const provider = new WebsocketProvider(
  base.replace(/^http/, 'ws') + `/api/v1/integrations/${id}/sync`, 'ws', doc,
  { WebSocketPolyfill: WebSocket, params: { ticket }, disableBc: true }
)
provider.on('connection-close', (event) => say('closed', { code: event?.code }))

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

await new Promise((resolve) => provider.once('synced', resolve))
say('synced', { size: records.size })

doc.transact(() => {
  if (plan.edit) records.get(plan.edit.key).set(plan.edit.field, plan.edit.value)
  if (plan.create) records.set(plan.create.key, new Y.Map(Object.entries(plan.create.fields)))
  if (plan.delete) records.delete(plan.delete)
})
say('edited')

const met = () => Object.entries(plan.expect ?? {}).every(([key, fields]) => {
  const value = records.get(key)
  return value instanceof Y.Map &&
    Object.entries(fields).every(([field, wanted]) => value.get(field) === wanted)
})
await new Promise((resolve) => {
  if (met()) return resolve()
  const check = () => { if (met()) { records.unobserveDeep(check); resolve() } }
  records.observeDeep(check)
})
clearTimeout(timeout)
say('done', { records: snapshot() })
provider.destroy()
process.exit(0)
