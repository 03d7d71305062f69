// The offline queue: a change made without a connection (act() in api.js) that may wait (one of
// the operations POST /api/v1/integrations/sync-offline replays) is kept in IndexedDB on this
// device, and sent when the gateway answers again, once and in order.
//
// The queue belongs to the person and tenant of the page (its OWNER): each owner has a random
// client id and the next sequence number; only the page's owner's items are ever shown or sent,
// so after a sign-out or a tenant switch they wait for the same person in the same tenant (the
// server refuses a client id to anyone but its first user, too). An item is {client_id, seq,
// idempotency_key, client_ts, method, path, body, if_match, label, state, sent}: state is
// waiting, rejected or conflict, and `sent` says it may have reached the server (a batch was
// posted with it), after which it may no longer be discarded. Nothing secret is kept: an install
// carrying credentials is never queued, and setting credentials cannot be.

import { api, setOfflineQueue } from './api.js'
import { connection, onConnection } from './connection.js'
import { announce, h } from './dom.js'
import { done, itemsOf, tx } from './offline_db.js'
import { openReview } from './offline_review.js'

export const QUEUED = 'Saved on this device; sent when the connection returns.'
export const isQueued = (answer) => Boolean(answer && answer.queued === true)

const SYNC = '/api/v1/integrations/sync-offline'
const BATCH = 100
const RETRY_MS = [2000, 5000, 15_000, 60_000]
const body = document.body
const OWNER = body.dataset.user && body.dataset.tenantId ? `${body.dataset.user}:${body.dataset.tenantId}` : null
const LOCK = `seedos-offline-queue:${OWNER}`

// What may wait offline: gateway/offline/service.py's ALLOWED, exactly.
const ID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'
const BASE = '/api/v1/integrations'
const ALLOWED = [
  ['POST', BASE], // install
  ['PATCH', `${BASE}/${ID}`], // settings (with If-Match)
  ['DELETE', `${BASE}/${ID}`], // uninstall
  ['POST', `${BASE}/${ID}/(?:enable|disable|check)`],
  ['POST', `${BASE}/${ID}/actions/[A-Za-z0-9_.-]{1,100}`],
  ['POST', `${BASE}/${ID}/sync/run`],
  ['PUT', `${BASE}/${ID}/setup-progress`]
].map(([method, pattern]) => [method, new RegExp(`^${pattern}$`)])

export function allowed ({ method, path, body, query }) {
  if (query && Object.values(query).some((v) => v !== null && v !== undefined && v !== '')) return false
  if (method === 'POST' && path === BASE && body && typeof body === 'object' && body.credentials &&
      (typeof body.credentials !== 'object' || Object.keys(body.credentials).length)) return false
  return ALLOWED.some(([m, p]) => m === method && p.test(path))
}

// What the person did, in words, for the review (and the announcement)
const names = new Map() // integration id -> its name, as the page showed it
export const knownAs = (id, name) => names.set(id, name)

export function describe ({ method, path, body }) {
  if (method === 'POST' && path === BASE) return `Install ${body?.connector_name || body?.connector || 'a connector'}`
  const [, id, rest = ''] = path.match(/^\/api\/v1\/integrations\/([^/]+)(.*)$/) || []
  const what = method === 'PATCH'
    ? 'Change the settings'
    : method === 'DELETE'
      ? 'Uninstall'
      : rest.startsWith('/actions/')
        ? `Run the action ${rest.slice('/actions/'.length)}`
        : { '/enable': 'Enable', '/disable': 'Disable', '/check': 'Check', '/sync/run': 'Run a sync', '/setup-progress': 'Record setup progress' }[rest] || `${method} ${path}`
  const name = names.get(id)
  return name ? `${what} (${name})` : what
}

// A client id: 16 random bytes, base64url (22 characters)
function newClientId () {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  return btoa(String.fromCharCode(...bytes)).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

async function ownerRow (stores) {
  return (await done(stores.owners.get(OWNER))) || { owner: OWNER, clientId: newClientId(), nextSeq: 1 }
}

// `fields` appended at the owner's next sequence number; the item as stored
async function append (stores, fields) {
  const row = await ownerRow(stores)
  const item = { ...fields, owner: OWNER, client_id: row.clientId, seq: row.nextSeq, state: 'waiting', sent: false }
  row.nextSeq += 1
  await done(stores.owners.put(row))
  item.id = await done(stores.items.add(item))
  return item
}

// A settings change made right after another of the same integration, still waiting unsent at
// the end of the queue, joins it (the later values over the earlier): both were made against
// the ETag the page read, so as two items the second would conflict with the person's own
// first. Once the first may have been sent, or something else was queued after it, the second
// is an item of its own.
async function joined (stores, action) {
  if (action.method !== 'PATCH') return null
  const all = await itemsOf(stores, OWNER)
  const last = all[all.length - 1] // the queue's last item: joining an earlier one would move
  // the later values ahead of what was done in between (a check, an action)
  if (!last || last.method !== 'PATCH' || last.path !== action.path || last.sent ||
      last.state !== 'waiting' || !isObject(last.body) || !isObject(action.body)) return null
  last.body = { ...last.body, ...action.body }
  await done(stores.items.put(last))
  return last
}
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value)

async function keep (action) {
  let item
  try {
    item = await tx(async (stores) => (await joined(stores, action)) || append(stores, {
      idempotency_key: action.idempotencyKey,
      client_ts: action.at,
      method: action.method,
      path: action.path,
      body: action.body === undefined ? null : action.body,
      if_match: action.ifMatch || null,
      label: describe(action)
    }))
  } catch (error) {
    throw Object.assign(new Error(`This change could not be kept on this device (${error.message}), and there is no connection. Try again when the connection returns.`), { status: 0, code: 'offline', title: 'Not saved' })
  }
  announce(`${item.label}: ${QUEUED}`)
  changed()
  if (connection.online) flushSoon(0) // act() found no connection, but the page may think so
  return { queued: true, seq: item.seq, label: item.label }
}

if (OWNER && 'indexedDB' in window) {
  setOfflineQueue((action) => (allowed(action) ? keep(action) : null))
}

// ---------------------------------------------------------------- what the queue holds

export async function list () {
  if (!OWNER) return []
  return tx((stores) => itemsOf(stores, OWNER), 'readonly')
}

// Another tab of this browser (same owner) sent or changed the queue: show it again.
const channel = 'BroadcastChannel' in window ? new BroadcastChannel('seedos-offline-queue') : null
const watchers = new Set()
export const watch = (fn) => { watchers.add(fn); return () => watchers.delete(fn) }

function changed ({ tell = true } = {}) {
  if (tell) channel?.postMessage(OWNER)
  render()
  for (const fn of watchers) fn()
}
if (channel) channel.onmessage = (event) => { if (event.data === OWNER) changed({ tell: false }) }

// ---------------------------------------------------------------- sending

let sending = 0 // items in the batch on its way
let retryTimer = null
let failures = 0
let problem = null // why the last batch was not answered, in words

function flushSoon (ms) {
  clearTimeout(retryTimer)
  retryTimer = setTimeout(flush, ms)
}

// Send the owner's waiting items, in sequence order, at most BATCH a request, until none
// waits or the server says to wait. One tab at a time sends (a Web Lock); each reads the
// queue again once it holds the lock, so what another tab sent is not sent again.
export async function flush () {
  if (!OWNER || !connection.online) return
  clearTimeout(retryTimer)
  const run = () => sendAll().catch((error) => { problem = error.message; render() })
  if (navigator.locks) await navigator.locks.request(LOCK, run)
  else await run()
}

async function sendAll () {
  let renumbered = false
  for (;;) {
    if (!connection.online) return
    // read and marked in one transaction (a change joining a waiting one cannot slip between):
    // from here each of them may reach the server, and none may be discarded or joined any more
    const batch = await tx(async (stores) => {
      const waiting = (await itemsOf(stores, OWNER)).filter((i) => i.state === 'waiting').slice(0, batchLimit)
      for (const item of waiting) {
        item.sent = true
        await done(stores.items.put(item))
      }
      return waiting
    })
    if (!batch.length) return
    sending = batch.length
    render()
    let answer
    try {
      answer = await api(SYNC, { method: 'POST', body: { items: batch.map(wire) } })
    } catch (error) {
      sending = 0
      if (WHOLE_BATCH_REFUSED.has(error.status)) { // too big or too deep as a batch: sent again
        if (await refusedAlone(batch, error)) continue // in halves, down to the one at fault
      }
      // No answer: the items stay waiting (their keys make a second sending count once).
      // Offline, the connection's return sends them; otherwise try again after a pause: the
      // server's Retry-After (a rate limit), or a growing one.
      problem = error.status === 0 ? null : error.message
      if (error.status !== 0 && error.status !== 401 && error.status !== 403 && error.code !== 'another_session') {
        const told = Number(error.problem?.retry_after)
        flushSoon(told > 0 ? told * 1000 : RETRY_MS[Math.min(failures++, RETRY_MS.length - 1)])
      }
      if (error.status === 403 || error.code === 'another_session') problem = `${error.message.replace(/\.$/, '')}. They wait here for you; reload the page to send them.`
      changed()
      return
    }
    sending = 0
    failures = 0
    problem = null
    const outcome = await settle(batch, answer.results)
    said(outcome)
    changed()
    if (answer.retry_after !== null && answer.retry_after !== undefined) {
      flushSoon(Math.max(1, answer.retry_after) * 1000)
      return
    }
    if (outcome.outOfSequence) {
      if (renumbered) return // once a round: never a loop
      await restart()
      renumbered = true
      continue
    }
    if (!outcome.done) return // nothing moved: wait for a change
  }
}

// What the gateway refuses for the whole request before reading its items: too big (413), or
// not valid as a whole (422: too deep, say, with the batch's own nesting added to an item's)
const WHOLE_BATCH_REFUSED = new Set([413, 422])
let batchLimit = BATCH

// The batch was refused as a whole: the next ones are half as big, down to one item; one item
// refused alone is refused for good (it never ran: the server did not read it), and the queue
// goes on. Answers whether to send again.
async function refusedAlone (batch, error) {
  if (batch.length > 1) {
    batchLimit = Math.max(1, Math.floor(batch.length / 2))
    return true
  }
  await tx(async (stores) => {
    await done(stores.items.put({
      ...batch[0], state: 'rejected', status: error.status, problem: error.problem || { detail: error.message },
      settled_at: new Date().toISOString()
    }))
  })
  batchLimit = BATCH
  said({ applied: 0, refused: 1 })
  changed()
  return true
}

const wire = (i) => ({
  client_id: i.client_id, seq: i.seq, idempotency_key: i.idempotency_key, client_ts: i.client_ts,
  method: i.method, path: i.path, body: i.body, if_match: i.if_match
})

// Each result applied to its item: done ones leave the queue, refused ones are kept to review.
async function settle (batch, results) {
  const outcome = { applied: 0, refused: 0, done: 0, outOfSequence: false }
  await tx(async (stores) => {
    for (const [n, result] of results.entries()) {
      const item = batch[n]
      if (!item || result.seq !== item.seq || result.client_id !== item.client_id) continue
      // a duplicate is an item done before, whose first answer this device never got: when
      // that answer was a refusal, it is one now (never counted as applied)
      const kind = result.outcome === 'duplicate' && result.status >= 400
        ? (result.status === 412 ? 'conflict' : 'rejected')
        : result.outcome
      switch (kind) {
        case 'applied':
        case 'duplicate':
          await done(stores.items.delete(item.id))
          outcome.applied += 1
          outcome.done += 1
          break
        case 'rejected':
        case 'conflict':
          await done(stores.items.put({
            ...item, sent: true, state: kind, status: result.status,
            problem: result.answer && typeof result.answer === 'object' ? result.answer : { detail: String(result.answer ?? '') },
            settled_at: new Date().toISOString()
          }))
          outcome.refused += 1
          outcome.done += 1
          break
        case 'out_of_sequence':
          outcome.outOfSequence = true
          break
        default: // retry_later, not_attempted: still waiting
      }
    }
  })
  return outcome
}

function said ({ applied, refused }) {
  const parts = []
  if (applied) parts.push(`${applied} ${applied === 1 ? 'change' : 'changes'} made offline ${applied === 1 ? 'was' : 'were'} applied.`)
  if (refused) parts.push(`${refused} ${refused === 1 ? 'was' : 'were'} not applied: review ${refused === 1 ? 'it' : 'them'}.`)
  if (parts.length) announce(parts.join(' '))
  if (applied) dispatchEvent(new CustomEvent('seedos:offline-sent', { detail: { applied } }))
}

// The server holds this client's items behind a number it never got: this device lost an
// earlier item (its storage was cleared in part, say). A fresh client id, and the waiting items
// renumbered from 1 under it, in their order, each keeping its idempotency key. Safe: the
// server runs a client's items strictly one after another, so none of the items it held (the
// one it expected and everything after) has run under the old id; under the new one each runs
// once, and its key (passed on to the service, which keeps its own for installs and actions)
// still makes a second sending of the same item count once.
async function restart () {
  await tx(async (stores) => {
    const row = await ownerRow(stores)
    row.clientId = newClientId()
    row.nextSeq = 1
    for (const item of (await itemsOf(stores, OWNER)).filter((i) => i.state === 'waiting')) {
      await done(stores.items.put({ ...item, client_id: row.clientId, seq: row.nextSeq }))
      row.nextSeq += 1
    }
    await done(stores.owners.put(row))
  })
}

// ---------------------------------------------------------------- review: discard, retry

const locked = (fn) => (navigator.locks ? navigator.locks.request(LOCK, fn) : fn())

// Discard an item: a refused one, or a waiting one never sent (the later ones, never sent
// either, move up a number so the server sees no gap). Answers false when it may have been sent.
export async function discard (id) {
  const ok = await locked(() => tx(async (stores) => {
    const item = await done(stores.items.get(id))
    if (!item || item.owner !== OWNER) return true
    if (item.state === 'waiting') {
      const row = await ownerRow(stores)
      const later = (await itemsOf(stores, OWNER)).filter((i) => i.state === 'waiting' && i.client_id === item.client_id && i.seq > item.seq)
      if (item.sent || later.some((i) => i.sent)) return false
      for (const i of later) await done(stores.items.put({ ...i, seq: i.seq - 1 }))
      if (row.clientId === item.client_id) {
        row.nextSeq -= 1
        await done(stores.owners.put(row))
      }
    }
    await done(stores.items.delete(id))
    return true
  }))
  changed()
  return ok
}

// A refused item, edited (`body`), queued again as a new change: a new idempotency key, the
// next number and, for a conflict, the current state's ETag as its precondition.
export async function retry (id, body) {
  const item = await locked(() => tx(async (stores) => {
    const old = await done(stores.items.get(id))
    if (!old || old.owner !== OWNER || old.state === 'waiting') return null
    if (!allowed({ method: old.method, path: old.path, body })) { // credentials, say: never kept
      throw Object.assign(new Error('This change cannot wait on this device as edited (credentials are set online, never queued).'), { refusedEdit: true })
    }
    await done(stores.items.delete(id))
    const etag = old.state === 'conflict' ? old.problem?.current?.etag || old.problem?.etag : null
    return append(stores, {
      idempotency_key: crypto.randomUUID(),
      client_ts: new Date().toISOString(),
      method: old.method,
      path: old.path,
      body,
      if_match: etag || old.if_match,
      label: old.label
    })
  }))
  changed()
  if (item) announce(`${item.label}: ${connection.online ? 'sending it again.' : QUEUED}`)
  if (item && connection.online) await flush()
  return item
}

// ---------------------------------------------------------------- what people see

const region = document.getElementById('offline-queue')
region?.setAttribute('role', 'region') // a landmark: found from the page's list of regions
region?.setAttribute('aria-label', 'Changes waiting on this device')
const note = h('p', { class: 'offline-queue-note' })
const reviewButton = h('button', { type: 'button', 'aria-haspopup': 'dialog', onclick: () => openReview({ list, discard, retry, watch, trigger: reviewButton }) }, 'Review')
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`

async function render () {
  if (!region || !OWNER) return
  let items = []
  try { items = await list() } catch (_) { return }
  const waiting = items.filter((i) => i.state === 'waiting').length
  const refused = items.length - waiting
  const parts = []
  if (sending) parts.push(`Sending ${plural(sending, 'change', 'changes')}…`)
  else if (waiting && !connection.online) parts.push(`${plural(waiting, 'change waits', 'changes wait')} to be sent when the connection returns.`)
  else if (waiting) parts.push(`${plural(waiting, 'change waits', 'changes wait')} to be sent; trying again shortly.`)
  if (refused) parts.push(`${plural(refused, 'change was', 'changes were')} not applied: review ${refused === 1 ? 'it' : 'them'}.`)
  if (problem) parts.push(`The last sending failed: ${problem}`)
  region.hidden = !parts.length
  if (!parts.length) { region.replaceChildren(); return }
  note.textContent = parts.join(' ')
  if (!region.contains(note)) region.replaceChildren(note, reviewButton)
}

if (OWNER) {
  onConnection((c) => { render(); if (c.online) flush() })
  render()
  flush()
}
