// What the sync interop scripts share: the install they work on (environment: SEEDOS_URL, the
// gateway; SEEDOS_API_KEY; INTEGRATION_ID), their plan (the JSON argument), one JSON line per
// event, single-use tickets and the unmodified y-websocket provider on the sync WebSocket.
import WebSocket from 'ws'
import { WebsocketProvider } from 'y-websocket'

const base = process.env.SEEDOS_URL
const id = process.env.INTEGRATION_ID
export const plan = JSON.parse(process.argv[2])
export const say = (event, extra = {}) => console.log(JSON.stringify({ event, ...extra }))

// A fresh ticket (single use: one per connection); a refused one ends the script (exit 1).
export const ticket = async () => {
  const answer = await fetch(`${base}/api/v1/integrations/${id}/sync/ticket`, {
    method: 'POST', headers: { Authorization: `Bearer ${process.env.SEEDOS_API_KEY}` }
  })
  if (answer.status !== 200) {
    say('ticket_refused', { status: answer.status })
    process.exit(1)
  }
  return (await answer.json()).ticket
}

// The provider for `doc`, connecting with a fresh ticket; `params`: more of the query (a shard).
export const connect = async (doc, params = {}) => new WebsocketProvider(
  base.replace(/^http/, 'ws') + `/api/v1/integrations/${id}/sync`, 'ws', doc,
  { WebSocketPolyfill: WebSocket, params: { ticket: await ticket(), ...params }, disableBc: true }
)

// The id of the shard holding a record of a stream (GET sync/shards/for).
export const shardOf = async (stream, key) => {
  const query = new URLSearchParams({ stream, keys: key })
  const answer = await fetch(`${base}/api/v1/integrations/${id}/sync/shards/for?${query}`, {
    headers: { Authorization: `Bearer ${process.env.SEEDOS_API_KEY}` }
  })
  return (await answer.json()).items[0].shard
}
