// What the settings sections share: errors at fields (with a summary) or in words for the
// section, and the box that shows a secret once.

import { announce, errorNotice, h, replace } from './dom.js'

// A section's trouble in words with the request id, or nothing.
export function sectionError (id, error, title) {
  const box = document.getElementById(id)
  if (!error) return replace(box)
  replace(box, errorNotice(error, { title }))
}

const LABELS = { name: 'Name', industry: 'Industry', size: 'Employees', description: 'Description', email: 'Email', role: 'Role' }

export function clearFieldErrors (form) {
  form.querySelector('.error-summary')?.remove()
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid')
  for (const el of form.querySelectorAll('.field .error')) { el.textContent = ''; el.hidden = true }
}

// A 422's errors next to their fields, and a summary linking to them (focused). Answers false
// when the error names no field of the form (the caller says it for the section instead).
export function showFieldErrors (form, error) {
  clearFieldErrors(form)
  const found = Object.entries(error.fieldErrors || {})
    .map(([path, message]) => [form.elements[path.split('.')[0]], message])
    .filter(([el]) => el && el.id)
  if (!found.length) return false
  for (const [el, message] of found) {
    el.setAttribute('aria-invalid', 'true')
    const slot = document.getElementById(`${el.id}-error`)
    if (slot) { slot.textContent = message; slot.hidden = false }
  }
  const summary = h('div', { class: 'notice bad error-summary', role: 'alert', tabindex: '-1' },
    h('p', {}, h('strong', {}, found.length === 1 ? 'One thing to fix:' : `${found.length} things to fix:`)),
    h('ul', {}, found.map(([el, message]) => h('li', {},
      h('a', { href: `#${el.id}` }, `${LABELS[el.name] || el.name}: ${message}`)))),
    error.requestId ? h('p', {}, 'Request id ', h('span', { class: 'request-id' }, error.requestId)) : null)
  form.prepend(summary)
  summary.focus()
  return true
}

// A secret the API shows once (an API key, an invitation link): copy it now.
export function secretOnce (slot, { heading, value, warning, extra }) {
  const code = h('code', { class: 'secret-value' }, value)
  const copy = h('button', { type: 'button' }, 'Copy')
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value)
      copy.textContent = 'Copied'
      announce('Copied to the clipboard.')
    } catch (_) {
      getSelection().selectAllChildren(code)
      announce('Selected: press Control C (or Command C) to copy it.')
    }
  })
  const done = h('button', { type: 'button' }, 'Done, I stored it')
  const title = h('h3', { tabindex: '-1' }, heading)
  const box = h('div', { class: 'secret-box', role: 'group', 'aria-label': heading },
    title,
    h('p', { class: 'notice warn' }, warning),
    h('div', { class: 'secret-once' }, code),
    extra || null,
    h('div', { class: 'actions' }, copy, done))
  done.addEventListener('click', () => {
    replace(slot)
    slot.closest('section')?.focus()
    announce('The secret is no longer on the page.')
  })
  replace(slot, box)
  title.focus()
}

export const ROLE_LABELS = { viewer: 'Viewer', editor: 'Editor', admin: 'Admin', publisher: 'Publisher' }
