// The offline queue's review: a modal dialog listing the changes that wait on this device and
// those the server did not apply (what, when, its state, the reason). A refused or conflicting
// change can be discarded, or edited and sent again (a config change shows the person's values
// beside the current ones); a waiting change never sent may be discarded.

import { announce, badge, confirmDialog, fmtTime, h, replace, timeEl } from './dom.js'

let dialog = null
let listEl = null
let heading = null
let queue = null // {list, discard, retry, watch, trigger}
let unwatch = null

function build () {
  heading = h('h2', { id: 'offline-review-title', tabindex: '-1' }, 'Changes made on this device')
  listEl = h('div', { id: 'offline-review-list' })
  dialog = h('dialog', { id: 'offline-review', class: 'offline-review', 'aria-labelledby': 'offline-review-title' },
    heading,
    h('p', {}, 'Waiting changes are sent, in order, when the connection returns. Changes the server did not apply are kept here until you discard them or send them again.'),
    listEl,
    h('form', { method: 'dialog', class: 'actions' }, h('button', { type: 'submit', value: 'close' }, 'Close')))
  dialog.addEventListener('close', () => {
    unwatch?.()
    unwatch = null
    if (queue?.trigger?.isConnected) queue.trigger.focus()
  })
  document.body.append(dialog)
}

export async function openReview (q) {
  queue = q
  if (!dialog) build()
  await fill()
  unwatch?.()
  unwatch = queue.watch(() => { if (dialog.open && !listEl.querySelector('form.offline-edit')) fill() })
  if (!dialog.open) dialog.showModal()
  heading.focus()
}

async function fill () {
  const items = await queue.list()
  if (!items.length) {
    replace(listEl, h('p', { class: 'empty-note' }, 'Nothing waits on this device: every change was sent.'))
    return
  }
  replace(listEl, h('ul', { class: 'offline-items' }, items.map(row)))
}

const STATES = {
  waiting: ['waiting', 'info'],
  sent: ['sent, no answer yet', 'info'],
  rejected: ['not applied', 'bad'],
  conflict: ['conflict', 'warn']
}

function reason (item) {
  const p = item.problem || {}
  if (item.state === 'waiting') {
    return item.sent
      ? 'It may have reached the server; it is sent again when the connection returns, and counts once.'
      : 'Not sent yet.'
  }
  const errors = (p.errors || []).map((e) => e.message || e.msg || e.detail).filter(Boolean)
  const said = [p.detail || p.title || `The server answered ${item.status}.`, ...errors].join(' ')
  return item.state === 'conflict'
    ? 'Someone changed it after you saw it, so your change was not applied. Edit it to see your values beside the current ones, and send it again, or discard it.'
    : said
}

function row (item) {
  const [stateText, tone] = STATES[item.state === 'waiting' && item.sent ? 'sent' : item.state]
  const buttons = []
  const canDiscard = item.state !== 'waiting' || !item.sent
  if (item.state !== 'waiting') {
    buttons.push(h('button', { type: 'button', 'aria-expanded': 'false', 'aria-label': `Edit and retry: ${item.label}`, onclick: (e) => edit(item, e.currentTarget) }, 'Edit and retry'))
  }
  if (canDiscard) {
    buttons.push(h('button', { type: 'button', class: 'danger', 'aria-label': `Discard: ${item.label}`, onclick: (e) => discard(item, e.currentTarget) }, 'Discard'))
  }
  return h('li', { class: 'offline-item', dataset: { state: item.state, seq: String(item.seq) } },
    h('h3', {}, item.label),
    h('p', { class: 'offline-meta' }, badge(stateText, tone), ' Made ', timeEl(item.client_ts), ` (${fmtTime(item.client_ts)})`),
    h('p', { class: 'offline-reason' }, reason(item)),
    buttons.length ? h('div', { class: 'actions' }, buttons) : null,
    h('div', { class: 'offline-edit-box' }))
}

async function discard (item, trigger) {
  const ok = await confirmDialog({
    title: `Discard "${item.label}"?`,
    text: 'The change is removed from this device and never sent. This cannot be undone.',
    confirm: 'Discard the change',
    trigger
  })
  if (!ok) return
  const gone = await queue.discard(item.id)
  await fill()
  announce(gone ? `Discarded: ${item.label}.` : `${item.label} may already have reached the server, so it cannot be discarded; it is sent again and counts once.`)
  heading.focus()
}

const shown = (v) => (v === undefined ? 'not set' : typeof v === 'string' ? v : JSON.stringify(v))

// The person's values beside the current ones (a settings change that met a conflict)
function comparison (item) {
  const current = item.problem?.current
  const mine = item.body && typeof item.body === 'object' ? item.body : {}
  if (!current || item.method !== 'PATCH') return null
  const rows = []
  for (const key of Object.keys(mine)) {
    if (key === 'config' && mine.config && typeof mine.config === 'object') {
      const names = new Set([...Object.keys(mine.config), ...Object.keys(current.config || {})])
      for (const name of names) rows.push([name, mine.config[name], current.config?.[name]])
    } else rows.push([key, mine[key], current[key]])
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'offline-compare' },
    h('caption', {}, 'Your values and the current ones'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Setting'), h('th', { scope: 'col' }, 'Yours'), h('th', { scope: 'col' }, 'Current'))),
    h('tbody', {}, rows.map(([name, yours, now]) => h('tr', { class: shown(yours) === shown(now) ? null : 'differs' },
      h('th', { scope: 'row' }, name), h('td', { class: 'mono' }, shown(yours)), h('td', { class: 'mono' }, shown(now)))))))
}

function edit (item, trigger) {
  const li = trigger.closest('li')
  const box = li.querySelector('.offline-edit-box')
  if (trigger.getAttribute('aria-expanded') === 'true') {
    replace(box)
    trigger.setAttribute('aria-expanded', 'false')
    return
  }
  trigger.setAttribute('aria-expanded', 'true')
  const id = `offline-edit-${item.id}`
  const text = h('textarea', { id, rows: 8, spellcheck: 'false', class: 'mono', 'aria-describedby': `${id}-hint` },
    item.body === null || item.body === undefined ? '' : JSON.stringify(item.body, null, 2))
  const error = h('p', { class: 'field-error', id: `${id}-error`, hidden: true })
  const form = h('form', { class: 'offline-edit', novalidate: true },
    comparison(item),
    h('label', { for: id }, 'The change to send (JSON)'),
    h('p', { class: 'hint', id: `${id}-hint` }, item.state === 'conflict'
      ? 'It is sent against the current state shown: change your values if they no longer fit.'
      : 'Fix what the reason above says, then send it again.'),
    error, text,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary' }, 'Send again'),
      h('button', { type: 'button', onclick: () => { replace(box); trigger.setAttribute('aria-expanded', 'false'); trigger.focus() } }, 'Cancel')))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const wrong = (message) => {
      error.textContent = message
      error.hidden = false
      text.setAttribute('aria-invalid', 'true')
      text.setAttribute('aria-describedby', `${id}-error ${id}-hint`)
      text.focus()
    }
    let body = null
    try {
      body = text.value.trim() === '' ? null : JSON.parse(text.value)
    } catch (e) {
      return wrong(`This is not valid JSON: ${e.message}`)
    }
    try {
      await queue.retry(item.id, body)
    } catch (e) {
      if (!e.refusedEdit) throw e
      return wrong(e.message)
    }
    await fill()
    heading.focus()
  })
  replace(box, form)
  text.focus()
}
