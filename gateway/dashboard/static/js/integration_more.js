// The integration page's other parts: calls and latency over 24 hours (a chart with its text
// alternative and a table of totals), the version and the upgrade preview, recent audit entries.

import { act, api } from './api.js'
import { announce, confirmDialog, dataTable, errorNotice, fmtMs, fmtNumber, fmtPercent, fmtTime, h, replace, timeEl } from './dom.js'
import { describeLatency, lineChart } from './chart.js'

const HOUR = 3600 * 1000

function legendKey (dash) {
  return h('svg:svg', { viewBox: '0 0 32 8', class: 'legend-key', 'aria-hidden': 'true', focusable: 'false' },
    h('svg:line', { x1: 0, x2: 32, y1: 4, y2: 4, stroke: 'currentColor', 'stroke-width': 2, 'stroke-dasharray': dash || 'none' }))
}

export async function loadLatency (ctx) {
  const body = document.getElementById('latency-body')
  const to = new Date()
  const from = new Date(to.getTime() - 24 * HOUR)
  const m = await api(`${ctx.base}/metrics`, { query: { from: from.toISOString(), to: to.toISOString(), step: 3600 } })
  const p50 = m.points.map((p) => p.p50_ms)
  const p95 = m.points.map((p) => p.p95_ms)
  const t = m.totals
  const known = (values) => values.filter((v) => v !== null && v !== undefined)
  const label = t.calls
    ? `Latency per hour over the last 24 hours. ${describeLatency(p50, 'Median (p50)')} ${describeLatency(p95, 'p95')}`
    : 'No calls to the connector in the last 24 hours, so no latency to show.'
  const chart = h('figure', { class: 'latency-chart' },
    lineChart([{ values: p50 }, { values: p95, dash: '6 4' }], m.points.map((p) => p.at), { label }),
    h('figcaption', {},
      h('span', { class: 'legend' }, legendKey(), 'p50 (median)'),
      h('span', { class: 'legend' }, legendKey('6 4'), 'p95'),
      h('span', {}, `${fmtTime(m.from)} to ${fmtTime(m.to)}, one point per hour`)))
  const max = (values) => (known(values).length ? Math.max(...known(values)) : null)
  const row = (name, value) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', { class: 'num' }, value))
  replace(body,
    chart,
    h('p', { class: 'chart-text' }, label),
    h('div', { class: 'table-wrap totals' }, h('table', {},
      h('caption', {}, 'Totals for the last 24 hours'),
      h('tbody', {},
        row('Calls', fmtNumber(t.calls)),
        row('Errors', fmtNumber(t.errors)),
        row('Error rate', fmtPercent(t.error_rate)),
        row('Slowest hour, p50', fmtMs(max(p50))),
        row('Slowest hour, p95', fmtMs(max(p95)))))))
}

function changeList (changes) {
  const items = []
  const list = (what, names) => { if (names && names.length) items.push(h('li', {}, `${what}: `, h('span', { class: 'mono' }, names.join(', ')))) }
  for (const c of changes.hosts.changed) {
    items.push(h('li', {}, `Sends ${c.used_for} to `, h('span', { class: 'mono' }, c.to || 'nowhere'),
      c.from ? [' instead of ', h('span', { class: 'mono' }, c.from)] : null))
  }
  if (changes.auth_scheme) items.push(h('li', {}, `Signs in with ${changes.auth_scheme.to} instead of ${changes.auth_scheme.from}`))
  list('New scopes', changes.scopes.added)
  list('Scopes no longer asked for', changes.scopes.removed)
  list('New settings', changes.config_fields.added)
  list('Settings removed', changes.config_fields.removed)
  list('Settings now required', changes.config_fields.newly_required)
  list('New secrets', changes.config_fields.secret_added)
  list('New streams', changes.streams.added)
  list('Streams removed', changes.streams.removed)
  list('New actions', changes.actions.added)
  list('Actions removed', changes.actions.removed)
  return items.length ? h('ul', {}, items) : h('p', {}, 'Nothing you would notice: the same destinations, scopes, settings, streams and actions.')
}

export async function loadUpgrade (ctx, onUpgraded) {
  const body = document.getElementById('upgrade-body')
  const p = await api(`${ctx.base}/upgrade`)
  const withdrawn = p.withdrawn
    ? h('div', { class: 'notice warn' }, h('p', {}, `Its publisher withdrew version ${p.from_version}: ${p.withdrawn}`))
    : null
  if (p.up_to_date) {
    replace(body, withdrawn, h('p', {}, `Version ${p.from_version || '—'} is the newest published version.`))
    return
  }
  const problems = p.config_problems.length
    ? h('div', { class: 'notice warn' },
      h('p', {}, 'The current settings do not fit the new version. Give these in the settings first:'),
      h('ul', {}, p.config_problems.map((x) => h('li', {}, h('span', { class: 'mono' }, x.path.replace(/^\/(config|credentials)\/?/, '') || 'settings'), `: ${x.message}`))))
    : null
  const button = ctx.canWrite
    ? h('button', { type: 'button', class: 'primary', onclick: (e) => upgrade(ctx, p, e.currentTarget, onUpgraded) }, `Upgrade to ${p.to_version}`)
    : null
  replace(body, withdrawn,
    h('p', {}, `Version ${p.to_version} is available (this install runs ${p.from_version || 'an unknown version'}).`),
    h('h3', {}, `What changes with ${p.to_version}`),
    changeList(p.changes),
    problems,
    h('div', { id: 'upgrade-notice' }),
    button ? h('div', { class: 'actions' }, button) : null)
}

async function upgrade (ctx, preview, trigger, onUpgraded) {
  const hosts = preview.confirm_hosts
  const ok = await confirmDialog({
    title: `Upgrade to version ${preview.to_version}?`,
    text: hosts.length
      ? `Version ${preview.to_version} sends data to ${hosts.join(', ')}. Upgrading confirms that you trust these destinations. There is no way back to ${preview.from_version}.`
      : `The install moves to version ${preview.to_version} and is checked again. There is no way back to ${preview.from_version}.`,
    confirm: `Upgrade to ${preview.to_version}`,
    trigger
  })
  if (!ok) return
  try {
    const next = await act({ method: 'POST', path: `${ctx.base}/upgrade`, body: { to_version: preview.to_version, accept_hosts: hosts } })
    await onUpgraded(next)
    await loadUpgrade(ctx, onUpgraded)
    announce(`Upgraded to version ${next.version}.`)
    document.getElementById('title').focus()
  } catch (error) {
    replace(document.getElementById('upgrade-notice'), errorNotice(error, { title: 'The upgrade did not happen.' }))
    trigger.focus()
  }
}

export async function loadAudit (ctx) {
  const body = document.getElementById('audit-body')
  const target = `integration:${ctx.id}`
  const page = await api('/api/v1/audit-logs', { query: { target, limit: 10 } })
  const all = h('p', {}, h('a', { href: `/audit?target=${encodeURIComponent(target)}` }, 'See all of its audit entries'))
  if (!page.items.length) {
    replace(body, h('p', {}, 'Nothing recorded for this integration yet.'))
    return
  }
  replace(body, dataTable('The latest audit entries for this integration, newest first', ['When', 'What', 'Who'],
    page.items.map((e) => h('tr', {},
      h('td', { 'data-label': 'When' }, timeEl(e.created_at)),
      h('td', { 'data-label': 'What' }, h('span', { class: 'mono' }, e.action)),
      h('td', { 'data-label': 'Who' }, h('span', { class: 'mono' }, e.actor || '—'))))), all)
}
