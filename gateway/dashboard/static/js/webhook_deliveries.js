// One outbound webhook endpoint's deliveries (GET /api/v1/webhooks/{id}/deliveries): newest
// first, each with its state, webhook-id, next attempt and every attempt (when, HTTP status or
// why it failed, how long, the answer's first KiB as text); admins replay one (the same
// webhook-id, as a new delivery) and send a test event. While some are pending the list is read
// again every two seconds (a minute at most) and what changed is said.

import { act, api } from './api.js'
import { announce, badge, dataTable, emptyState, errorNotice, fmtNumber, fmtTime, h, replace, timeEl } from './dom.js'
import { attemptDuration, attemptResult, endpointState, STATE_TONES, STATE_WORDS, typeList } from './webhooks_ui.js'

const id = document.getElementById('endpoint').dataset.endpoint
const base = `/api/v1/webhooks/${id}`
const isAdmin = document.body.dataset.role === 'admin'
const body = document.getElementById('deliveries-body')
const more = document.getElementById('more')
const refresh = document.getElementById('refresh')
const notice = document.getElementById('page-notice')
const count = document.getElementById('deliveries-count')
const POLL_MS = 2000
const POLL_ROUNDS = 30
let before = null
let shown = new Map() // delivery id -> what its card shows (state and attempts)
let polls = 0
let timer = null

function said (text, tone = 'ok', ...more) {
  replace(notice, h('p', { class: `notice ${tone}`, role: 'status' }, text, ...more))
  announce(text)
}

async function loadEndpoint () {
  const e = await api(base)
  const title = e.description || new URL(e.url).host
  document.getElementById('endpoint-title').textContent = `Deliveries to ${title}`
  document.title = `Deliveries to ${title} · SEED-OS`
  const current = e.secrets.find((s) => !s.expires_at)
  const previous = e.secrets.filter((s) => s.expires_at)
  replace(document.getElementById('endpoint-body'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'URL'), h('dd', {}, h('code', {}, e.url)),
      h('dt', {}, 'State'), h('dd', {}, endpointState(e)),
      h('dt', {}, 'Events'), h('dd', {}, typeList(e.event_types)),
      h('dt', {}, 'Signing secret'), h('dd', {},
        current ? ['Made ', timeEl(current.created_at), '.'] : 'None.',
        previous.map((s) => [' The previous one signs too until ', h('time', { datetime: s.expires_at }, fmtTime(s.expires_at)), '.']))),
    isAdmin && e.enabled
      ? h('div', { class: 'actions' }, h('button', { type: 'button', id: 'send-test', onclick: (ev) => sendTest(ev.currentTarget) }, 'Send a test event'))
      : null)
}

async function sendTest (trigger) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  try {
    await act({ method: 'POST', path: `${base}/test` })
    said('A test event (webhook.test) was queued. It is listed below; the list follows it until it is sent.')
    await reload()
  } catch (error) {
    replace(notice, errorNotice(error, { title: 'No test event was sent.' }))
    announce(`No test event was sent. ${error.message}`)
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

const key = (d) => `${d.state}/${d.attempts}/${d.attempt_log.length}`

function attempts (d) {
  if (!d.attempt_log.length) return h('p', { class: 'quiet' }, 'No attempt yet.')
  return dataTable(`Attempts of delivery ${d.id}, oldest first`, ['When', 'Result', ['Took', 'num'], 'Answer (first KiB)'],
    d.attempt_log.map((a, i) => h('tr', {},
      h('td', { 'data-label': 'When' }, h('time', { datetime: a.at }, fmtTime(a.at))),
      h('td', { 'data-label': 'Result' }, attemptResult(a)),
      h('td', { 'data-label': 'Took', class: 'num' }, attemptDuration(a)),
      h('td', { 'data-label': 'Answer (first KiB)' }, a.response
        ? h('details', { class: 'answer' }, h('summary', {}, `Show the answer (${fmtNumber(new Blob([a.response]).size)} bytes)`, h('span', { class: 'visually-hidden' }, ` of attempt ${i + 1}`)),
          h('pre', {}, a.response)) // as text: never parsed as HTML
        : h('span', { class: 'quiet' }, '—')))))
}

function card (d) {
  const facts = [
    h('dt', {}, 'Created'), h('dd', {}, h('time', { datetime: d.created_at }, fmtTime(d.created_at))),
    h('dt', {}, 'webhook-id'), h('dd', {}, h('code', {}, d.event_id)),
    h('dt', {}, 'Attempts'), h('dd', {}, fmtNumber(d.attempts))
  ]
  if (d.state === 'pending') facts.push(h('dt', {}, 'Next attempt'), h('dd', {}, d.next_at ? timeEl(d.next_at) : 'now'))
  if (d.finished_at) facts.push(h('dt', {}, 'Finished'), h('dd', {}, h('time', { datetime: d.finished_at }, fmtTime(d.finished_at))))
  if (d.replay_of) facts.push(h('dt', {}, 'Replay of'), h('dd', {}, h('code', {}, d.replay_of)))
  const replay = isAdmin
    ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'replay', onclick: (e) => replayOne(d, e.currentTarget), 'aria-describedby': `delivery-title-${d.id}` }, 'Replay'))
    : null
  return h('li', { id: `delivery-${d.id}`, dataset: { key: key(d) } },
    h('article', { class: `card delivery ${d.state}`, 'aria-labelledby': `delivery-title-${d.id}` },
      h('h3', { id: `delivery-title-${d.id}`, tabindex: '-1' }, h('code', {}, d.type), ' ',
        badge(STATE_WORDS[d.state] || d.state, STATE_TONES[d.state] || 'plain')),
      h('dl', { class: 'facts' }, facts),
      h('h4', {}, 'Attempts'),
      attempts(d),
      replay))
}

async function replayOne (d, trigger) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  try {
    const queued = await act({ method: 'POST', path: `${base}/deliveries/${d.id}/replay` })
    said(`The ${d.type} event was queued again as a new delivery, with the same webhook-id.`)
    await reload()
    document.getElementById(`delivery-title-${queued.delivery_id}`)?.focus()
  } catch (error) {
    replace(notice, errorNotice(error, { title: 'The delivery was not replayed.' }))
    announce(`The delivery was not replayed. ${error.message}`)
    if (trigger.isConnected) trigger.focus()
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

function empty () {
  return emptyState('No deliveries yet', isAdmin
    ? 'Events this endpoint subscribes to are listed here as they are sent. Send a test event to see one now.'
    : 'Events this endpoint subscribes to are listed here as they are sent.', null, { level: 3 })
}

function counted (items) {
  count.textContent = items.length ? `${items.length} deliveries shown${before ? ', older ones available' : ''}` : 'No deliveries'
}

// The newest page, shown afresh (after a change, or on request)
async function reload () {
  polls = 0
  const page = await api(`${base}/deliveries`, { query: { limit: 20 } })
  before = page.next_before
  shown = new Map(page.items.map((d) => [d.id, key(d)]))
  replace(body, page.items.length ? h('ul', { class: 'delivery-list' }, page.items.map(card)) : empty())
  more.hidden = !before
  counted(page.items)
  follow(page.items)
}

// While some delivery is pending: read the newest page again, put in what changed (focus kept
// on the card it was in), say it
function follow (items) {
  clearTimeout(timer)
  if (!items.some((d) => d.state === 'pending')) { polls = 0; return }
  if (++polls > POLL_ROUNDS) return
  timer = setTimeout(poll, POLL_MS)
}

async function poll () {
  let page
  try {
    page = await api(`${base}/deliveries`, { query: { limit: 20 } })
  } catch (_) {
    timer = setTimeout(poll, POLL_MS * 2)
    return
  }
  const list = body.querySelector('.delivery-list')
  if (!list) return reload()
  const changed = []
  for (const d of [...page.items].reverse()) {
    const old = document.getElementById(`delivery-${d.id}`)
    if (old && old.dataset.key === key(d)) continue
    const fresh = card(d)
    const focused = old?.contains(document.activeElement) ? document.activeElement : null
    if (old) old.replaceWith(fresh)
    else list.prepend(fresh)
    if (focused) (focused.classList.contains('replay') ? fresh.querySelector('.replay') : fresh.querySelector('h3')).focus()
    if (shown.get(d.id) !== undefined || old) changed.push(`${d.type}: ${STATE_WORDS[d.state] || d.state}`)
    shown.set(d.id, key(d))
  }
  if (changed.length) announce(changed.join('. ') + '.')
  follow(page.items)
}

async function loadMore () {
  more.disabled = true
  try {
    const page = await api(`${base}/deliveries`, { query: { limit: 20, before } })
    const items = page.items.map(card)
    body.querySelector('.delivery-list').append(...items)
    before = page.next_before
    more.hidden = !before
    if (items.length) items[0].querySelector('h3').focus()
    announce(`${items.length} older deliveries loaded${before ? '' : '; that is all of them'}.`)
  } catch (error) {
    body.append(errorNotice(error, { title: 'Older deliveries could not be loaded.' }))
  } finally {
    more.disabled = false
  }
}

refresh.addEventListener('click', async () => {
  refresh.disabled = true
  try {
    polls = 0
    await reload()
    announce('The latest deliveries are shown.')
  } catch (error) {
    replace(notice, errorNotice(error, { title: 'The deliveries could not be loaded.' }))
  } finally {
    refresh.disabled = false
    refresh.focus()
  }
})
more.addEventListener('click', loadMore)

try {
  await loadEndpoint()
} catch (error) {
  replace(document.getElementById('endpoint-body'), errorNotice(error, { title: 'The endpoint could not be loaded.' }))
}
try {
  await reload()
} catch (error) {
  replace(body, errorNotice(error, { title: 'The deliveries could not be loaded.' }))
}
