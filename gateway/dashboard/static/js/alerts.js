// The tenant's anomaly alerts (GET /api/v1/integrations/alerts): newest first, open ones by
// default, each with what it is based on in words; editors acknowledge them
// (POST .../alerts/{id}/ack). The choice of open, resolved or all is kept in the page's URL.

import { act, api, url } from './api.js'
import { announce, badge, emptyState, errorNotice, fmtMs, fmtNumber, fmtPercent, fmtTime, h, loading, replace, timeEl } from './dom.js'

const body = document.getElementById('alerts-body')
const more = document.getElementById('more')
const form = document.getElementById('alert-filter')
const count = document.getElementById('result-count')
const canAcknowledge = ['editor', 'admin'].includes(document.body.dataset.role)
const STATES = new Set(['open', 'resolved', 'all'])
const METRICS = {
  latency_p95: { name: 'Slow calls', what: 'the 95th percentile of call latency', low: false },
  error_ratio: { name: 'Failing calls', what: 'the share of calls that failed', low: false },
  throughput: { name: 'Calls stopped', what: 'the calls a minute', low: true }
}
let cursor = null
let state = 'open'

function amount (metric, value) {
  if (value === null || value === undefined) return '—'
  if (metric === 'latency_p95') return fmtMs(value)
  if (metric === 'error_ratio') return fmtPercent(value)
  return `${fmtNumber(Math.round(value * 10) / 10)} a minute`
}

const clock = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })

// The evidence as a person reads it: what was seen, against what is usual and where that
// comes from, and where the lines are.
function evidence (metric, e, { resolved = false, seen = resolved ? 'Back to' : 'Observed' } = {}) {
  const m = METRICS[metric] || { what: metric, low: false }
  const calls = (e.calls || []).reduce((a, b) => a + b, 0)
  const usual = {
    seasonal: `the same time of day on earlier days (${e.baseline_windows} windows)`,
    held: `what was usual before the alert opened (${e.baseline_windows} windows)`
  }[e.baseline_kind] || `the hours before (${e.baseline_windows} windows)`
  const side = m.low ? 'below' : 'above'
  return h('p', { class: 'evidence' },
    `${seen} ${amount(metric, e.observed)} for ${m.what} between ${clock(e.window_start)} and ${clock(e.window_end)}`,
    ` (${fmtNumber(calls)} calls), where ${amount(metric, e.baseline)} is usual, give or take ${amount(metric, e.spread)}, judging by ${usual}. `,
    resolved
      ? `It counts as normal again ${m.low ? 'above' : 'under'} ${amount(metric, e.normal_threshold)}.`
      : `An alert opens ${side} ${amount(metric, e.threshold)} and is critical ${side} ${amount(metric, e.critical_threshold)}; it resolves by itself once ${m.low ? 'back above' : 'under'} ${amount(metric, e.normal_threshold)}.`)
}

// How an alert was resolved: back to normal (the evidence of the windows it resolved on), no
// longer judged for want of calls (no_data), or a level kept so long it became the usual one.
function resolution (metric, r) {
  if (r.reason === 'no_data') {
    const calls = (r.calls || []).reduce((a, b) => a + b, 0)
    return h('p', { class: 'evidence' },
      `Closed for want of data: from ${clock(r.window_start)} to ${clock(r.window_end)} no ${r.window_minutes}-minute window had the ${fmtNumber(r.min_calls)} calls needed to judge it`,
      ` (${fmtNumber(calls)} calls in all), so nothing showed the problem going on. It was not seen to recover: if calls resume and it is still there, a new alert opens.`)
  }
  if (r.reason !== 'new_normal') return evidence(metric, r, { resolved: true })
  const now = evidence(metric, r, { resolved: true, seen: 'Now' })
  now.prepend('Closed as the new normal: the level lasted long enough to become what is usual. ')
  return now
}

function acknowledgement (alert) {
  if (alert.acknowledged_at) {
    return h('p', { class: 'acknowledged' }, 'Acknowledged by ', h('span', { class: 'mono' }, alert.acknowledged_by),
      ' ', timeEl(alert.acknowledged_at), '.')
  }
  if (alert.state === 'resolved') return null
  if (!canAcknowledge) return h('p', { class: 'acknowledged' }, 'Not acknowledged yet.')
  const button = h('button', { type: 'button', 'aria-describedby': `alert-title-${alert.id}` }, 'Acknowledge')
  button.addEventListener('click', () => acknowledge(alert, button))
  return h('div', { class: 'actions' }, button)
}

async function acknowledge (alert, button) {
  button.disabled = true
  const card = document.getElementById(`alert-${alert.id}`)
  try {
    const done = await act({ method: 'POST', path: `/api/v1/integrations/alerts/${alert.id}/ack`, label: 'Alert acknowledged.' })
    const fresh = card.replaceWith(render(done)) || document.getElementById(`alert-${alert.id}`)
    fresh.querySelector('.acknowledged')?.setAttribute('tabindex', '-1')
    fresh.querySelector('.acknowledged')?.focus()
  } catch (error) {
    button.disabled = false
    card.append(errorNotice(error, { title: 'The alert could not be acknowledged.' }))
  }
}

function render (alert) {
  const m = METRICS[alert.metric] || { name: alert.metric }
  const resolved = alert.state === 'resolved'
  const tone = resolved ? 'resolved' : alert.severity
  const name = alert.connector_name || alert.service_name || 'An integration'
  return h('li', { id: `alert-${alert.id}` }, h('article', { class: `card alert-card ${tone}`, 'aria-labelledby': `alert-title-${alert.id}` },
    h('h3', { id: `alert-title-${alert.id}` }, `${m.name}: `, h('a', { href: `/integrations/${alert.integration_id}` }, name)),
    h('p', { class: 'badges' },
      badge(alert.severity === 'critical' ? 'Critical' : 'Warning', alert.severity === 'critical' ? 'bad' : 'warn'),
      resolved ? badge('Resolved', 'ok') : badge('Open', 'info')),
    evidence(alert.metric, alert.evidence),
    resolved && alert.resolution ? resolution(alert.metric, alert.resolution) : null,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Opened'), h('dd', {}, h('time', { datetime: alert.opened_at }, fmtTime(alert.opened_at))),
      resolved ? [h('dt', {}, 'Resolved'), h('dd', {}, h('time', { datetime: alert.resolved_at }, fmtTime(alert.resolved_at)))] : null),
    acknowledgement(alert)))
}

function empty () {
  if (state === 'open') {
    return emptyState('No open alerts', 'Every integration is behaving as usual. Resolved alerts stay listed under “Resolved alerts”.')
  }
  return emptyState('No alerts', 'Nothing has been unusual so far.')
}

async function load () {
  loading(body, 'Loading alerts…')
  more.hidden = true
  try {
    const page = await api('/api/v1/integrations/alerts', { query: { state, limit: 50 } })
    cursor = page.next_cursor
    replace(body, page.items.length ? h('ul', { class: 'alert-list' }, page.items.map(render)) : empty())
    more.hidden = !cursor
    count.textContent = page.items.length ? `${page.items.length} alerts shown${cursor ? ', more available' : ''}` : 'No alerts'
  } catch (error) {
    replace(body, errorNotice(error, { title: 'The alerts could not be loaded.' }))
  }
}

async function loadMore () {
  more.disabled = true
  try {
    const page = await api('/api/v1/integrations/alerts', { query: { state, cursor, limit: 50 } })
    const items = page.items.map(render)
    body.querySelector('.alert-list').append(...items)
    cursor = page.next_cursor
    more.hidden = !cursor
    if (items.length) {
      const first = items[0].querySelector('article')
      first.tabIndex = -1
      first.focus()
    }
    announce(`${items.length} more alerts loaded${cursor ? '' : '; that is all of them'}.`)
  } catch (error) {
    body.append(errorNotice(error, { title: 'More alerts could not be loaded.' }))
  } finally {
    more.disabled = false
  }
}

function fromUrl () {
  const wanted = new URLSearchParams(location.search).get('state')
  state = STATES.has(wanted) ? wanted : 'open'
  form.elements.state.value = state
}

form.addEventListener('change', () => {
  state = form.elements.state.value
  history.pushState(null, '', url('/alerts', { state: state === 'open' ? null : state }))
  load()
})
form.addEventListener('submit', (event) => event.preventDefault())
more.addEventListener('click', loadMore)
addEventListener('popstate', () => { fromUrl(); load() })

fromUrl()
load()
