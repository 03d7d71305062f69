// Every call the dashboard makes goes to the public REST API, the same one curl and the SDK
// use, with the session cookie and, for changes, the session's CSRF token.
//
// Changes go through act(): each gets an Idempotency-Key, and hooks may watch or take them
// over; without a connection, the offline queue (setOfflineQueue) may keep them to send later.
//
// Offline, the service worker answers a GET from this device's copy, marked `x-seedos-offline:
// cached` with `x-seedos-cached-at`, or `x-seedos-offline: missing` (503) when it has none:
// either way the page is offline (connection.js), and a copy's age is shown.

import { connection, probe, reachable, servedFromCache, unreachable } from './connection.js'
import { announce } from './dom.js'

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS'])
const OFFLINE = { code: 'offline', title: 'No connection', detail: 'The server could not be reached, and this device has no copy of this. Check your connection and try again.' }
const NEEDS_CONNECTION = { code: 'offline', title: 'This needs the connection.', detail: 'The server could not be reached, and this change cannot wait on this device: it was not made. Try again when the connection returns.' }

export class ApiError extends Error {
  constructor (status, problem, requestId) {
    super(problem.detail || problem.title || `The request failed (HTTP ${status})`)
    this.status = status
    this.code = problem.code || (status === 0 ? 'network' : 'http_' + status)
    this.title = problem.title || (status === 0 ? 'No connection' : 'The request failed')
    this.problem = problem
    this.requestId = requestId || problem.request_id || null
  }

  // {field path: message} from a 422's errors (FastAPI and jsonschema shapes alike)
  get fieldErrors () {
    const out = {}
    for (const e of this.problem.errors || []) {
      const loc = Array.isArray(e.loc) ? e.loc.filter((p) => !['body', 'query', 'path'].includes(p)) : []
      const path = e.path ?? e.field ?? loc.join('.')
      out[path] = out[path] || e.msg || e.message || e.detail
    }
    return out
  }
}

// The session's CSRF token: the page's, or, for a page opened from the service worker's copy
// (which keeps none), the session's own from GET /api/v1/me, kept in the page from then on,
// but only while the session is still this page's person's in this page's tenant.
// `stale`: the one the page holds was refused (a new session since): asked for again.
export async function csrfToken ({ stale = false } = {}) {
  const meta = document.querySelector('meta[name="csrf-token"]')
  if (meta?.content && !stale) return meta.content
  if (!connection.online) await probe() // the person acts now: is the connection back?
  if (!connection.online) throw new ApiError(0, OFFLINE) // nothing to ask: the change waits
  const me = await api('/api/v1/me')
  const { user, tenantId } = document.body.dataset
  if (user && (me?.user?.id !== user || (tenantId && me?.tenant?.id !== tenantId))) {
    // the browser's session is now another person's, or another tenant's: this page's work
    // (its offline queue among it) is not theirs to send
    throw new ApiError(409, {
      code: 'another_session',
      title: 'Signed in as someone else',
      detail: 'This browser is now signed in as another person or in another tenant. Reload the page.'
    })
  }
  if (meta && me?.csrf_token) meta.content = me.csrf_token
  for (const field of document.querySelectorAll('input[name="csrf_token"]')) field.value = me?.csrf_token || ''
  return me?.csrf_token || ''
}

export function url (path, query) {
  const u = new URL(path, location.origin)
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === '') continue
    for (const one of Array.isArray(v) ? v : [v]) u.searchParams.append(k, one)
  }
  return u.pathname + u.search
}

const listeners = { ended: [], used: [] }
export const on = (event, fn) => listeners[event].push(fn)

// `fresh`: only a live answer will do; this device's copy counts as none (and does not date the
// page: a side panel's copy must not make the page look newer than what it shows).
export async function api (path, { method = 'GET', body, query, headers = {}, signal, raw = false, retried = false, fresh = false } = {}) {
  const h = { accept: 'application/json', ...headers }
  if (body !== undefined) h['content-type'] = 'application/json'
  if (!SAFE.has(method)) h['x-csrf-token'] = await csrfToken()
  let response
  try {
    response = await fetch(url(path, query), {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin', signal
    })
  } catch (e) {
    if (e.name === 'AbortError') throw e
    unreachable()
    throw new ApiError(0, OFFLINE)
  }
  const offline = response.headers.get('x-seedos-offline')
  if (offline === 'missing' || (offline && fresh)) {
    unreachable()
    throw new ApiError(0, OFFLINE)
  }
  if (offline) servedFromCache(response.headers.get('x-seedos-cached-at'))
  else reachable()
  const requestId = response.headers.get('x-request-id')
  if (response.status === 401) {
    for (const fn of listeners.ended) fn()
  } else if (!offline) { // a copy's answer says nothing of the session
    for (const fn of listeners.used) fn()
  }
  if (!response.ok) {
    let problem = {}
    try { problem = await response.json() } catch (_) { /* not JSON */ }
    if (response.status === 403 && problem.code === 'csrf_refused' && !SAFE.has(method) && !retried) {
      await csrfToken({ stale: true }) // signed in again elsewhere since the page was made
      return api(path, { method, body, query, headers, signal, raw, retried: true, fresh })
    }
    throw new ApiError(response.status, problem, requestId)
  }
  if (raw) return response
  if (response.status === 204) return null
  const type = response.headers.get('content-type') || ''
  return type.includes('json') ? response.json() : response.text()
}

// Hooks that see each change before it is sent: (action) => undefined to let it go, or a
// promise of its answer to take it over.
export const actionHooks = []

// The offline queue: (action) => a promise of what to answer instead (the action kept to be
// sent later), or null when the action cannot wait offline. Asked when the page is offline, or
// when sending finds no connection.
let offlineQueue = null
export const setOfflineQueue = (fn) => { offlineQueue = fn }

// A change the person asked for: {method, path, body, ifMatch, label}. Answers the API's answer.
export async function act ({ method = 'POST', path, body, query, ifMatch, label, idempotencyKey }) {
  const action = {
    method, path, body, query, ifMatch, label,
    idempotencyKey: idempotencyKey || crypto.randomUUID(),
    at: new Date().toISOString()
  }
  for (const hook of actionHooks) {
    const taken = hook(action)
    if (taken) return taken
  }
  if (offlineQueue && !connection.online) {
    const kept = offlineQueue(action)
    if (kept) return kept
  }
  const headers = { 'idempotency-key': action.idempotencyKey }
  if (ifMatch) headers['if-match'] = ifMatch
  let answer
  try {
    answer = await api(path, { method, body, query, headers })
  } catch (error) {
    const kept = error.status === 0 && offlineQueue ? offlineQueue(action) : null
    if (kept) return kept
    if (error.status === 0) throw new ApiError(0, NEEDS_CONNECTION)
    throw error
  }
  if (label) announce(label)
  return answer
}

// Every item of a list the API pages by cursor (its `items` and `next_cursor`), one page after
// another, `limit` a page; a for await loop may stop early.
export async function * eachItem (path, { query, limit = 100 } = {}) {
  let cursor = null
  do {
    const page = await api(path, { query: { ...query, limit, cursor } })
    yield * page.items
    cursor = page.next_cursor
  } while (cursor)
}

// The list's first `max` items (all of them, as far as a page can tell) in an array.
export async function allPages (path, { query, limit = 100, max = 1000 } = {}) {
  const out = []
  for await (const item of eachItem(path, { query, limit })) {
    out.push(item)
    if (out.length >= max) break
  }
  return out
}
