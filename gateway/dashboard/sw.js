/* global SEEDOS */
// The dashboard's service worker (served at /sw.js by gateway/dashboard/worker.py, which puts
// the line `const SEEDOS = {version, precache, pages}` above this text).
//
// - Assets (/assets/...): kept at install, answered from this device (they never change under
//   one URL). After a deploy, a page still showing the old version gets the same file of the
//   new version when offline.
// - Page navigations (the dashboard's own pages only): the network first, for at most
//   NAV_WAIT_MS when there is a copy; each 200 answer kept per URL. Offline, the copy (for a URL
//   with a query, the same path's copy when that exact one is missing), or a page saying that
//   this one was not opened on this device, with links to those that were.
// - API reads (GET /api/v1/..., JSON answers): the network first; each 200 JSON answer kept,
//   stamped with the time it was saved. Offline, the copy with `x-seedos-offline: cached` and
//   `x-seedos-cached-at`, or a 503 problem with `x-seedos-offline: missing` (api.js shows
//   either). A time window that moves with the clock (?from=...&to=...) finds the latest copy
//   of the same question.
// - Everything else (/auth/*, /healthz, changes, WebSockets) goes to the network untouched.
//
// What is kept is the signed-in person's: the page and API copies are dropped when they sign
// out (POST /auth/logout), switch tenant (POST /api/v1/me/tenant), when a page says another
// person or tenant is looking (each page posts {type: 'owner', user, tenant, until}), when the
// server answers 401, or once the session's absolute end (`until`) has passed; an answer a 403
// or 404 replaces is dropped. Never kept: answers marked no-store (the session's own, such as
// GET /api/v1/me with its CSRF token) and the CSRF token in a page's copy.

const PREFIX = 'seedos-'
const ASSETS = `${PREFIX}assets-${SEEDOS.version}`
const PAGES = `${PREFIX}pages-v1`
const API = `${PREFIX}api-v1`
const META = `${PREFIX}meta-v1`
const OWNER_URL = '/__seedos/owner'
const NAV_WAIT_MS = 4000
const API_WAIT_MS = 10_000
const LIMITS = { [PAGES]: 50, [API]: 400 }
const MAX_AGE_MS = 7 * 24 * 3600 * 1000
const SWEEP_EVERY_MS = 10 * 60 * 1000
const SAVED = 'x-seedos-cached-at'
const PAGE_PATHS = SEEDOS.pages.map((p) => new RegExp(p))
const DROPS = [['POST', '/auth/logout'], ['POST', '/api/v1/me/tenant']]
const DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d/

let generation = 0 // bumped at each drop: an answer asked for before it is not kept
let owner // {user, tenant} as last posted by a page; null after a sign-out
let lastSweep = 0

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(ASSETS)
    await cache.addAll(SEEDOS.precache)
    await self.skipWaiting()
  })())
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    const keep = new Set([ASSETS, PAGES, API, META])
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && !keep.has(name)) await caches.delete(name)
    }
    await sweep()
    await self.clients.claim()
  })())
})

self.addEventListener('message', (event) => {
  const data = event.data || {}
  if (data.type !== 'owner') return
  const next = data.user ? { user: String(data.user), tenant: String(data.tenant || ''), until: Date.parse(data.until || '') || null } : null
  event.waitUntil(changeOwner(next))
})

self.addEventListener('fetch', (event) => {
  const request = event.request
  const url = new URL(request.url)
  if (url.origin !== self.location.origin) return
  if (DROPS.some(([method, path]) => request.method === method && url.pathname === path)) {
    // drop first, then let the request go on as it is
    event.respondWith(drop(null).then(() => fetch(request)))
    return
  }
  if (request.method !== 'GET') return
  if (url.pathname.startsWith('/assets/')) {
    event.respondWith(asset(request, url))
  } else if (request.mode === 'navigate' && PAGE_PATHS.some((p) => p.test(url.pathname))) {
    event.respondWith(page(event, url))
  } else if (url.pathname.startsWith('/api/v1/')) {
    event.respondWith(apiRead(event, url))
  }
})

// ---------------------------------------------------------------------------------- privacy

async function knownOwner () {
  if (owner !== undefined) return owner
  const kept = await (await caches.open(META)).match(OWNER_URL)
  owner = kept ? await kept.json() : undefined
  return owner
}

async function changeOwner (next) {
  const before = await knownOwner()
  const same = before && next && before.user === next.user && before.tenant === next.tenant
  if (same && before.until !== next.until) return remember(next) // a new session of the same person
  if (same || (before === null && next === null)) return
  if (before === undefined && next) return remember(next) // the first page this worker sees
  await drop(next)
}

async function remember (next) {
  owner = next
  await (await caches.open(META)).put(OWNER_URL, new Response(JSON.stringify(next), {
    headers: { 'content-type': 'application/json' }
  }))
}

// Whether the copies may still be shown: not once the session they were kept in has reached
// its absolute end (then nobody signed in is looking: they are dropped). An idle end is not
// known here (another tab may have kept the session going); the next answer from the server
// (a 401) settles it.
async function stillTheirs () {
  const who = await knownOwner()
  if (who && who.until && Date.now() > who.until) {
    await drop(null)
    return false
  }
  return true
}

// the signed-in person's copies are gone; `next` is who is looking now (null: nobody)
async function drop (next) {
  generation += 1
  await Promise.all([caches.delete(PAGES), caches.delete(API)])
  await remember(next)
}

// ---------------------------------------------------------------------------------- assets

async function asset (request, url) {
  const cache = await caches.open(ASSETS)
  const kept = await cache.match(request, { ignoreVary: true })
  if (kept) return kept
  try {
    const answer = await fetch(request)
    const current = url.pathname.startsWith(`/assets/${SEEDOS.version}/`) || url.pathname.startsWith('/assets/vendor/')
    if (answer.status === 200 && answer.type === 'basic' && current) await cache.put(request, answer.clone())
    return answer
  } catch (error) {
    // a page of an older version, offline: this version's file of the same name
    const same = url.pathname.match(/^\/assets\/[^/]+\/(.+)$/)
    const newer = same && !url.pathname.startsWith('/assets/vendor/')
      ? await cache.match(`/assets/${SEEDOS.version}/${same[1]}`, { ignoreVary: true })
      : null
    if (newer) return newer
    throw error
  }
}

// ---------------------------------------------------------------------------------- pages

const page = (event, url) => networkFirst(event, url, {
  name: PAGES,
  wait: NAV_WAIT_MS,
  similar: samePath,
  none: (cache) => offlinePage(cache, url),
  keepable: htmlOf,
  transform: withoutTokens
})

async function samePath (cache, url) {
  if (!url.search) return null
  const exact = await fresh(cache, url.origin + url.pathname)
  if (exact) return exact
  for (const key of (await cache.keys()).reverse()) {
    if (new URL(key.url).pathname !== url.pathname) continue
    const copy = await fresh(cache, key.url)
    if (copy) return copy
  }
  return null
}

const htmlOf = (answer) => (answer.headers.get('content-type') || '').startsWith('text/html')

// A page's copy keeps no CSRF token (the meta tag and the sign-out form's field are emptied):
// a page opened from it asks GET /api/v1/me for the session's token when it next changes
// something (api.js), so no token waits in Cache Storage.
const withoutTokens = (html) => html
  .replace(/(<meta name="csrf-token" content=")[^"]*(")/g, '$1$2')
  .replace(/(<input type="hidden" name="csrf_token" value=")[^"]*(")/g, '$1$2')

// ---------------------------------------------------------------------------------- API reads

const apiRead = (event, url) => networkFirst(event, url, {
  name: API,
  wait: API_WAIT_MS,
  similar: sameQuestion,
  none: missing,
  keepable: (answer) => jsonOf(answer) && !noStore(answer)
})

// The network first (for at most `wait` when there is a copy); offline, the copy kept for the
// URL, or a `similar` one, or `none`. A 401 drops every copy (the session ended), a 403 or 404
// the URL's copy (no longer theirs to see); a 200 the `keepable` accepts is kept (`transform`ed).
async function networkFirst (event, url, { name, wait, similar, none, keepable, transform = null }) {
  const request = event.request
  const asked = generation
  const cache = await caches.open(name)
  const kept = await fresh(cache, request.url)
  let answer
  try {
    answer = await network(request, kept ? wait : null)
  } catch (_) {
    if (!await stillTheirs()) return none(await caches.open(name))
    const copy = kept || await similar(cache, url)
    return copy ? offline(copy) : none(cache)
  }
  if (answer.status === 401) {
    event.waitUntil(drop(null))
  } else if (answer.status === 403 || answer.status === 404) {
    event.waitUntil(cache.delete(request.url))
  } else if (answer.status === 200 && answer.type === 'basic' && keepable(answer)) {
    event.waitUntil(keep(name, request, answer, asked, transform))
  }
  return answer
}

const jsonOf = (answer) => /^application\/(.+\+)?json/.test(answer.headers.get('content-type') || '')
// the server says not to keep it (the session's own answers, /api/v1/me...: its CSRF token, its
// sessions): never kept, so never served offline
const noStore = (answer) => /(^|,)\s*no-store/i.test(answer.headers.get('cache-control') || '')

// The question without the values that are times (a window ending now): copies of
// `?from=<a>&to=<b>&step=3600` answer `?from=<c>&to=<d>&step=3600`.
function question (url) {
  const params = [...url.searchParams].map(([k, v]) => [k, DATE.test(v) ? '*' : v]).sort()
  return url.pathname + '?' + new URLSearchParams(params).toString()
}

async function sameQuestion (cache, url) {
  if (![...url.searchParams.values()].some((v) => DATE.test(v))) return null
  const wanted = question(url)
  for (const key of (await cache.keys()).reverse()) {
    if (question(new URL(key.url)) === wanted) {
      const copy = await fresh(cache, key.url)
      if (copy) return copy
    }
  }
  return null
}

function missing () {
  const problem = {
    type: 'about:blank',
    title: 'No connection',
    status: 503,
    code: 'offline',
    detail: 'The server could not be reached, and this device has no copy of this. Check your connection and try again.'
  }
  return new Response(JSON.stringify(problem), {
    status: 503,
    statusText: 'Service Unavailable',
    headers: { 'content-type': 'application/problem+json', 'x-seedos-offline': 'missing', 'cache-control': 'no-store' }
  })
}

// ---------------------------------------------------------------------------------- copies

// the network's answer; with `wait`, a failure once that long has passed without one
function network (request, wait) {
  const answer = fetch(request)
  if (!wait) return answer
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out')), wait)
    answer.then(resolve, reject).finally(() => clearTimeout(timer))
  })
}

// a copy of `answer`, stamped with the time it was saved, kept unless a drop came in between
async function keep (name, request, answer, asked, transform = null) {
  const headers = new Headers(answer.headers)
  headers.delete('content-encoding')
  headers.delete('content-length')
  headers.delete('vary') // one copy per URL, whatever the request's headers (`Vary: *` cannot be kept)
  headers.set(SAVED, new Date().toISOString())
  const body = transform ? transform(await answer.clone().text()) : await answer.clone().arrayBuffer()
  if (asked !== generation) return
  const cache = await caches.open(name)
  await cache.delete(request.url)
  await cache.put(request.url, new Response(body, { status: answer.status, statusText: answer.statusText, headers }))
  await bound(cache, LIMITS[name])
  if (Date.now() - lastSweep > SWEEP_EVERY_MS) await sweep()
}

// a kept copy as an answer to a page offline
function offline (copy) {
  const headers = new Headers(copy.headers)
  headers.set('x-seedos-offline', 'cached')
  return new Response(copy.body, { status: copy.status, statusText: copy.statusText, headers })
}

// the copy kept for `key` (a URL), unless it is older than MAX_AGE_MS (then it is dropped)
async function fresh (cache, key) {
  const copy = await cache.match(key, { ignoreVary: true })
  if (!copy) return null
  const saved = Date.parse(copy.headers.get(SAVED) || '')
  if (Number.isNaN(saved) || Date.now() - saved > MAX_AGE_MS) {
    await cache.delete(key, { ignoreVary: true })
    return null
  }
  return copy
}

// at most `limit` copies: the oldest (first kept) go first
async function bound (cache, limit) {
  const keys = await cache.keys()
  for (const key of keys.slice(0, Math.max(0, keys.length - limit))) await cache.delete(key)
}

// copies saved more than MAX_AGE_MS ago are dropped
async function sweep () {
  lastSweep = Date.now()
  for (const name of [PAGES, API]) {
    const cache = await caches.open(name)
    for (const key of await cache.keys()) await fresh(cache, key.url)
  }
}

// ---------------------------------------------------------------------------------- offline page

const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

async function offlinePage (cache, url) {
  const opened = []
  for (const key of await cache.keys()) {
    const copy = await fresh(cache, key.url)
    if (!copy) continue
    const title = ((await copy.text()).match(/<title>([^<]*)<\/title>/) || [])[1] || 'Page'
    const where = new URL(key.url)
    opened.push({ href: where.pathname + where.search, title: title.replace(/ · SEED-OS$/, '') })
  }
  const asset = (path) => `/assets/${SEEDOS.version}/${path}`
  const list = opened.length
    ? `<ul class="offline-pages">${opened.map((p) => `<li><a href="${esc(p.href)}">${esc(p.title)} <span class="mono">(${esc(p.href)})</span></a></li>`).join('')}</ul>`
    : '<p>No page has been opened on this device yet.</p>'
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not available offline · SEED-OS</title>
<meta name="color-scheme" content="light dark">
<script src="${asset('js/theme.js')}"></script>
<link rel="icon" href="${asset('icon.svg')}" type="image/svg+xml">
<link rel="stylesheet" href="${asset('css/app.css')}">
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="banner"><div class="banner-inner"><a class="brand" href="/">SEED-OS</a></div></header>
<div class="connection-bar"><p id="connection" class="connection" role="status"><strong>You are offline.</strong> The server could not be reached.</p></div>
<main id="main" tabindex="-1">
<h1>This page is not available offline</h1>
<p>It was not opened on this device before, so there is no copy of it to show without a connection: <code>${esc(url.pathname + url.search)}</code>.</p>
<p><a href="${esc(url.pathname + url.search)}">Try again</a> once the connection is back.</p>
<h2>Pages you can open offline</h2>
${list}
</main>
</body>
</html>
`
  return new Response(html, {
    status: 503,
    statusText: 'Service Unavailable',
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-seedos-offline': 'missing',
      'content-security-policy': "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'same-origin'
    }
  })
}
