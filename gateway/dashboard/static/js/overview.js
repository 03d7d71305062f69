// The integrations overview: every install with its status and reason, circuit, last sync,
// error rate and a p95 latency sparkline over 24 hours (GET .../integrations/{id}/metrics).

import { allPages, api } from './api.js'
import { badge, dataTable, emptyState, errorNotice, fmtPercent, h, replace, STATUS_TONES, timeEl } from './dom.js'
import { describeLatency, sparkline } from './chart.js'

const list = document.getElementById('integrations')
const filters = document.getElementById('filters')
const count = document.getElementById('result-count')
const canWrite = ['editor', 'admin'].includes(document.body.dataset.role)
let installs = []
const health = new Map() // id -> metrics answer

async function loadHealth (items) {
  const to = new Date()
  const from = new Date(to.getTime() - 24 * 3600 * 1000)
  const queue = [...items]
  const worker = async () => {
    while (queue.length) {
      const item = queue.shift()
      try {
        health.set(item.id, await api(`/api/v1/integrations/${item.id}/metrics`, {
          query: { from: from.toISOString(), to: to.toISOString(), step: 3600 }
        }))
      } catch (_) { health.set(item.id, null) }
      const row = document.querySelector(`tr[data-id="${item.id}"]`)
      if (row) fillHealth(row, item)
    }
  }
  await Promise.all(Array.from({ length: 4 }, worker))
}

function fillHealth (row, item) {
  const m = health.get(item.id)
  const rate = row.querySelector('.rate')
  const spark = row.querySelector('.latency')
  if (m === undefined) return
  if (m === null) {
    replace(rate, '—'); replace(spark, 'unavailable'); return
  }
  const t = m.totals
  replace(rate, t.calls ? `${fmtPercent(t.error_rate)} of ${t.calls}` : 'no calls')
  const values = m.points.map((p) => p.p95_ms)
  replace(spark, sparkline(values, { label: describeLatency(values, 'p95 latency over 24 hours') }))
}

function circuitBadge (circuit) {
  if (!circuit || circuit.state === 'closed') return badge('closed', 'ok')
  return badge(circuit.state.replace('_', '-'), circuit.state === 'open' ? 'bad' : 'warn')
}

function row (item) {
  const name = item.connector_name
  const tr = h('tr', { dataset: { id: item.id } },
    h('td', { 'data-label': 'Integration' },
      h('a', { href: `/integrations/${item.id}` }, name),
      h('div', { class: 'mono' }, item.service_name + (item.version ? ` ${item.version}` : ''))),
    h('td', { 'data-label': 'Status' }, badge(item.status, STATUS_TONES[item.status] || 'plain'),
      item.status_reason ? h('div', {}, item.status_reason) : null),
    h('td', { 'data-label': 'Circuit' }, circuitBadge(item.circuit)),
    h('td', { 'data-label': 'Last sync' }, timeEl(item.last_sync_at)),
    h('td', { 'data-label': 'Errors (24 h)', class: 'num rate' }, '…'),
    h('td', { 'data-label': 'Latency (p95, 24 h)', class: 'latency' }, '…'))
  fillHealth(tr, item)
  return tr
}

function matches (item, form) {
  const q = form.q.value.trim().toLowerCase()
  if (q && !`${item.connector_name} ${item.service_name}`.toLowerCase().includes(q)) return false
  if (form.status.value && item.status !== form.status.value) return false
  if (form.health.value === 'open' && item.circuit?.state !== 'open') return false
  if (form.health.value === 'failing' && !(health.get(item.id)?.totals.errors > 0)) return false
  return true
}

function render () {
  if (!installs.length) {
    replace(list, emptyState('No integrations yet',
      'Install a connector from the marketplace to start syncing records.',
      canWrite ? h('a', { class: 'button primary', href: '/marketplace' }, 'Browse the marketplace') : null))
    return
  }
  const shown = installs.filter((item) => matches(item, filters))
  count.textContent = `${shown.length} of ${installs.length} integrations shown`
  if (!shown.length) {
    replace(list, emptyState('No integration matches these filters', 'Clear a filter to see more.'))
    return
  }
  replace(list, dataTable('Installed integrations', ['Integration', 'Status', 'Circuit', 'Last sync',
    ['Errors (24 h)', 'num'], 'Latency (p95, 24 h)'], shown.map(row)))
}

filters.addEventListener('input', render)
filters.addEventListener('submit', (e) => e.preventDefault())
try {
  installs = await allPages('/api/v1/integrations', { max: 1000 })
  render()
  await loadHealth(installs)
} catch (error) {
  replace(list, errorNotice(error, { title: 'The integrations could not be loaded.' }))
}
