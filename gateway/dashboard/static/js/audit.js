// The audit log: the tenant's trail newest first (GET /api/v1/audit-logs), narrowed by the
// filters (kept in the page's URL), paged with "Load more", and downloaded as CSV with the same
// filters (GET /api/v1/audit-logs/export.csv).

import { api, eachItem, url } from './api.js'
import { announce, dataTable, emptyState, errorNotice, fmtAgo, fmtTime, h, loading, replace } from './dom.js'

const form = document.getElementById('filters')
const body = document.getElementById('entries-body')
const more = document.getElementById('more')
const count = document.getElementById('result-count')
const exportLink = document.getElementById('export')
const FIELDS = ['action_prefix', 'action', 'actor', 'target', 'since', 'until']
const TIMES = new Set(['since', 'until'])
let cursor = null
let current = {}
let shown = 0
const names = new Map() // actor id -> a name a person knows (members, API keys)

// datetime-local holds local wall time without an offset; the API wants an offset.
const pad = (n) => String(Math.abs(Math.trunc(n))).padStart(2, '0')
export function localToIso (value) {
  if (!value) return ''
  const at = new Date(value)
  if (Number.isNaN(at.getTime())) return ''
  const offset = -at.getTimezoneOffset()
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:` +
    `${pad(at.getMinutes())}:00${offset >= 0 ? '+' : '-'}${pad(offset / 60)}:${pad(offset % 60)}`
}
function isoToLocal (iso) {
  const at = new Date(iso)
  if (Number.isNaN(at.getTime())) return ''
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}T${pad(at.getHours())}:${pad(at.getMinutes())}`
}

function filtersFromForm () {
  const out = {}
  for (const name of FIELDS) {
    const value = form.elements[name].value.trim()
    if (value) out[name] = TIMES.has(name) ? localToIso(value) : value
  }
  return out
}

function filtersFromUrl () {
  const params = new URLSearchParams(location.search)
  const out = {}
  for (const name of FIELDS) {
    const value = params.get(name)
    if (!value) continue
    out[name] = value
    form.elements[name].value = TIMES.has(name) ? isoToLocal(value) : value
  }
  return out
}

async function loadNames () {
  const load = async (path, fill) => {
    try {
      for await (const item of eachItem(path, { limit: 200 })) fill(item)
    } catch (_) { /* names are a nicety: ids are shown without them */ }
  }
  await Promise.all([
    load('/api/v1/members', (m) => names.set(`user:${m.user_id}`, m.name || m.email)),
    load('/api/v1/api-keys', (k) => names.set(`apikey:${k.id}`, `API key “${k.name}”`))
  ])
}

function who (actor) {
  if (!actor) return h('span', {}, '—')
  const name = names.get(actor)
  return h('div', {}, name ? h('div', {}, name) : null, h('div', { class: 'mono' }, actor))
}

function summary (payload) {
  const parts = Object.entries(payload || {}).map(([k, v]) =>
    `${k.replaceAll('_', ' ')}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
  const text = parts.join('; ')
  return text.length > 140 ? text.slice(0, 139) + '…' : text
}

function details (entry) {
  const short = summary(entry.payload)
  if (!short) return h('span', { class: 'quiet' }, 'No details')
  return h('details', {},
    h('summary', {}, short),
    h('pre', { class: 'payload' }, JSON.stringify(entry.payload, null, 2)),
    entry.request_id ? h('p', {}, 'Request ', h('span', { class: 'mono' }, entry.request_id)) : null)
}

function row (entry) {
  return h('tr', { dataset: { seq: entry.seq } },
    h('td', { 'data-label': 'Time' }, h('time', { datetime: entry.created_at }, fmtTime(entry.created_at)),
      h('div', { class: 'quiet' }, fmtAgo(entry.created_at))),
    h('td', { 'data-label': 'Actor' }, who(entry.actor)),
    h('td', { 'data-label': 'Action' }, h('code', {}, entry.action)),
    h('td', { 'data-label': 'Target', class: 'mono' }, entry.target || '—'),
    h('td', { 'data-label': 'Details', class: 'audit-details' }, details(entry)))
}

function table (items) {
  return dataTable('Audit entries, newest first', ['Time', 'Actor', 'Action', 'Target', 'Details'],
    items.map(row), { tableClass: 'audit-table' })
}

function updateExport (filters) {
  if (exportLink) exportLink.href = url('/api/v1/audit-logs/export.csv', filters)
}

function refused (error) {
  if (error.status === 403) {
    error.title = 'Only admins can read the audit log.'
    error.message = 'Your role does not include it. Ask an admin of your tenant if you need an entry from it.'
    return errorNotice(error)
  }
  return errorNotice(error, { title: 'The audit log could not be loaded.' })
}

async function load (filters) {
  current = filters
  loading(body, 'Loading the audit log…')
  more.hidden = true
  updateExport(filters)
  try {
    const page = await api('/api/v1/audit-logs', { query: { ...filters, limit: 50 } })
    cursor = page.next_cursor
    shown = page.items.length
    if (!page.items.length) {
      const filtered = Object.keys(filters).length > 0
      replace(body, filtered
        ? emptyState('No entries match these filters', 'Widen the time range or clear a filter to see more.',
          h('a', { class: 'button', href: '/audit' }, 'Clear the filters'))
        : emptyState('Nothing recorded yet', 'Changes to integrations, keys, members and settings appear here as they happen.'))
      count.textContent = 'No entries'
      return
    }
    replace(body, table(page.items))
    more.hidden = !cursor
    count.textContent = `${shown} entries shown${cursor ? ', more available' : ''}`
  } catch (error) {
    replace(body, refused(error))
    if (exportLink) exportLink.hidden = true
  }
}

async function loadMore () {
  more.disabled = true
  try {
    const page = await api('/api/v1/audit-logs', { query: { ...current, cursor, limit: 50 } })
    const rows = page.items.map(row)
    body.querySelector('tbody').append(...rows)
    cursor = page.next_cursor
    shown += rows.length
    more.hidden = !cursor
    if (rows.length) {
      rows[0].tabIndex = -1
      rows[0].focus()
    }
    announce(`${rows.length} more entries loaded${cursor ? '' : '; that is all of them'}.`)
  } catch (error) {
    body.append(errorNotice(error, { title: 'More entries could not be loaded.' }))
  } finally {
    more.disabled = false
  }
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  const filters = filtersFromForm()
  history.pushState(null, '', url('/audit', filters))
  load(filters)
})
more.addEventListener('click', loadMore)
addEventListener('popstate', () => {
  form.reset()
  load(filtersFromUrl())
})

const initial = filtersFromUrl()
if (exportLink) await loadNames()
load(initial)
