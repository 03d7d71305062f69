// An unmodified y-websocket client, reconnecting as README shows (a fresh ticket on every close),
// makes an edit the server refuses. Driven by tests/connector_service/test_sync_schema.py.
//
// Environment: SEEDOS_URL (the gateway), SEEDOS_API_KEY, INTEGRATION_ID.
// Argument: a JSON plan {"key", "field", "value", "watch_ms"}.
// Prints one JSON line per event: synced, edited, closed (code, reason), connected; after
// watch_ms from the edit, done with the counts and the value the local document holds.
import * as Y from 'yjs'
import { connect, plan, say, ticket } from './seedos.mjs'

const doc = new Y.Doc()
const records = doc.getMap('records')
const provider = await connect(doc)
let connects = 0
let closes = 0
provider.on('status', ({ status }) => {
  if (status === 'connected') {
    connects += 1
    say('connected', { connects })
  }
})
// README's reconnect snippet, unchanged
const reconnect = (event) => {
  closes += 1
  say('closed', { code: event?.code, reason: event?.reason?.toString() })
  if (!provider.shouldConnect) return
  provider.shouldConnect = false
  ticket().then((t) => { provider.params = { ticket: t }; provider.connect() })
}
provider.on('connection-close', reconnect)

setTimeout(() => { say('timeout'); process.exit(1) }, plan.watch_ms + 20000)
await new Promise((resolve) => {
  const check = (state) => { if (state) { provider.off('synced', check); resolve() } }
  provider.on('synced', check)
})
say('synced', { size: records.size })

records.get(plan.key).set(plan.field, plan.value)
say('edited')

await new Promise((resolve) => setTimeout(resolve, plan.watch_ms))
say('done', { connects, closes, value: records.get(plan.key).get(plan.field) })
provider.off('connection-close', reconnect)
provider.destroy()
process.exit(0)
