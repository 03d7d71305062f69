// Whether the gateway can be reached, as the page's own requests find it (the browser's
// navigator.onLine only knows whether a network interface is up). A request that fails for
// want of a connection, or an answer the service worker took from this device's copy, makes
// the page offline; it then asks /healthz now and then, and the first answer from the server
// makes it online again. The notice above the page says so, how old what it shows is, and
// what can still be done.

import { announce, fmtAgo, fmtTime } from './dom.js'

const PROBE_FIRST_MS = 1000
const PROBE_MAX_MS = 15_000
const OFFLINE_ACTIONS = 'record edits, settings, enabling and disabling, checks, actions, syncs, installs (credentials are asked for once online) and uninstalls'

export const connection = {
  online: true,
  cachedAt: null // the oldest of the answers shown from this device's copy
}
const listeners = new Set()
let probeTimer = null
let probeWait = PROBE_FIRST_MS

// fn(connection) on every change; answers a function that stops listening
export function onConnection (fn) {
  listeners.add(fn)
  return () => listeners.delete(fn)
}

function changed () {
  show()
  for (const fn of listeners) fn(connection)
}

// an answer came from the server
export function reachable () {
  if (connection.online) return
  connection.online = true
  connection.cachedAt = null
  clearTimeout(probeTimer)
  probeWait = PROBE_FIRST_MS
  announce('The connection is back.')
  changed()
}

// a request found no connection
export function unreachable () {
  if (!connection.online) return
  connection.online = false
  changed()
  probeSoon()
}

// an answer came from this device's copy, saved at `at` (ISO 8601)
export function servedFromCache (at) {
  const saved = at ? new Date(at) : null
  unreachable()
  if (saved && !Number.isNaN(saved.getTime()) && (!connection.cachedAt || saved < connection.cachedAt)) {
    connection.cachedAt = saved
    changed()
  }
}

function probeSoon () {
  clearTimeout(probeTimer)
  probeTimer = setTimeout(probe, probeWait)
  probeWait = Math.min(PROBE_MAX_MS, probeWait * 2)
}

export async function probe () {
  try {
    const answer = await fetch('/healthz', { cache: 'no-store', credentials: 'omit' })
    if (answer.ok && !answer.headers.get('x-seedos-offline')) return reachable()
  } catch (_) { /* still offline */ }
  if (!connection.online) probeSoon()
}

function show () {
  const notice = document.getElementById('connection')
  if (!notice) return
  notice.hidden = connection.online
  if (connection.online) { notice.textContent = ''; return }
  const shown = connection.cachedAt
    ? `This page shows what this device saw ${fmtAgo(connection.cachedAt)} (${fmtTime(connection.cachedAt)}).`
    : 'What is on this page may be out of date.'
  notice.replaceChildren(
    Object.assign(document.createElement('strong'), { textContent: 'You are offline.' }),
    `${shown} Available offline: ${OFFLINE_ACTIONS}; they wait on this device and are sent when the connection returns. Everything else needs the connection.`)
}

addEventListener('offline', unreachable)
addEventListener('online', () => { if (!connection.online) probe() })
