// Building the page safely: elements from data with h() (text is never parsed as HTML), the
// live region, and how times, numbers and errors are said.

// h('a', {href, class: 'x', onclick: fn, 'aria-label': 'y'}, 'text', child, [more])
export function h (tag, attrs = {}, ...children) {
  const el = tag.includes(':')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.split(':')[1])
    : document.createElement(tag)
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value)
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value)
    } else if (name === 'text') {
      el.textContent = value
    } else if (value === true) {
      el.setAttribute(name, '')
    } else {
      el.setAttribute(name, String(value))
    }
  }
  append(el, children)
  return el
}

export function append (el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
  return el
}

export function replace (el, ...children) {
  el.replaceChildren()
  el.removeAttribute('aria-busy')
  return append(el, children)
}

export function loading (el, what = 'Loading…') {
  el.setAttribute('aria-busy', 'true')
  el.replaceChildren(h('p', { class: 'loading' }, what))
}

// Said by screen readers without moving focus (the footer's role=status region).
export function announce (text) {
  const region = document.getElementById('announcer')
  if (!region) return
  region.textContent = ''
  setTimeout(() => { region.textContent = text }, 50)
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' })
const number = new Intl.NumberFormat()

export const fmtNumber = (n) => (n === null || n === undefined ? '—' : number.format(n))
export const fmtPercent = (r) => (r === null || r === undefined ? '—' : `${(r * 100).toFixed(r < 0.1 ? 1 : 0)}%`)
export const fmtMs = (ms) => (ms === null || ms === undefined ? '—' : ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`)

export const fmtTime = (iso) => (iso ? dateTime.format(new Date(iso)) : '—')
const ACRONYMS = { crm: 'CRM', hr: 'HR', api: 'API' }
export const categoryLabel = (c) => (c ? c.split('-').map((w) => ACRONYMS[w] || w[0].toUpperCase() + w.slice(1)).join(' ') : 'Other')

export function fmtAgo (iso) {
  if (!iso) return 'never'
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000
  const units = [['day', 86400], ['hour', 3600], ['minute', 60]]
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(Math.round(seconds / size), unit)
  }
  return relative.format(Math.round(seconds), 'second')
}

// <time> with the exact moment as its title and datetime, and a relative text
export function timeEl (iso) {
  if (!iso) return h('span', {}, 'never')
  return h('time', { datetime: iso, title: fmtTime(iso) }, fmtAgo(iso))
}

// A problem+json error, in words a person understands, with the request id to quote.
export function errorNotice (error, { title } = {}) {
  const box = h('div', { class: 'notice bad', role: 'alert' },
    h('p', {}, h('strong', {}, title || error.title || 'Something went wrong'), ' ', error.message || ''))
  if (error.requestId) {
    box.append(h('p', {}, 'If you contact support, quote the request id ',
      h('span', { class: 'request-id' }, error.requestId), '.'))
  }
  return box
}

// A data table: scrolls on its own when wider than the screen, stacks into label/value rows on a
// phone (cells need data-label), a caption for screen readers. heads: 'Text' or ['Text', 'num'].
export function dataTable (caption, heads, rows, { tableClass = '' } = {}) {
  return h('div', { class: 'table-wrap' }, h('table', { class: `stack-sm ${tableClass}`.trim() },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, heads.map((head) => {
      const [text, cls] = Array.isArray(head) ? head : [head]
      return h('th', { scope: 'col', class: cls || null }, text)
    }))),
    h('tbody', {}, rows)))
}

// An empty list or page: what is missing, what to do, and an action; its heading an h2 unless
// `level` says otherwise (3 for a list inside a section).
export function emptyState (heading, text, action, { level = 2 } = {}) {
  return h('div', { class: 'empty' }, h(`h${level}`, {}, heading), h('p', {}, text), action || null)
}

export function badge (text, tone = 'plain') {
  return h('span', { class: `badge ${tone}` }, text)
}

export const STATUS_TONES = {
  active: 'ok', pending: 'info', inactive: 'plain', error: 'bad', disabled: 'plain', degraded: 'warn'
}

// A confirmation in base.html's modal <dialog>: resolves true when the person confirms. Focus
// starts on Cancel (the safe choice); Escape cancels; on close focus goes back to `trigger`
// (what had focus when it opened, unless said) while that is still on the page.
export function confirmDialog ({ title, text, confirm = 'Confirm', danger = true, trigger = document.activeElement }) {
  const dialog = document.getElementById('confirm-dialog')
  const yes = document.getElementById('confirm-dialog-confirm')
  document.getElementById('confirm-dialog-title').textContent = title
  document.getElementById('confirm-dialog-text').textContent = text
  yes.textContent = confirm
  yes.classList.toggle('danger', danger)
  yes.classList.toggle('primary', !danger)
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (trigger?.isConnected) trigger.focus()
      resolve(dialog.returnValue === 'confirm')
    }, { once: true })
    dialog.returnValue = ''
    dialog.showModal()
    document.getElementById('confirm-dialog-cancel').focus()
  })
}
