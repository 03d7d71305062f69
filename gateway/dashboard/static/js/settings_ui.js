// What the settings sections share: errors at fields (with a summary) or in words for the
// section, and the box that shows a secret once.

import { announce, errorNotice, h, replace } from './dom.js'
import { formErrors } from './form_errors.js'

// A section's trouble in words with the request id, or nothing.
export function sectionError (id, error, title) {
  replace(document.getElementById(id), error ? errorNotice(error, { title }) : null)
}

// A settings form's errors (form_errors.js), the summary first in the form while it has any.
// show(error, title) puts a 422's errors at their fields and answers false when it names no
// field of the form (the caller says it for the section instead).
export function fieldErrors (form) {
  const errors = formErrors()
  return {
    clear () { errors.clear(); errors.summary.remove() },
    show (error, title) {
      const problems = Object.entries(error.fieldErrors || {}).map(([path, message]) => {
        const input = form.elements[path.split('.')[0]]
        return input?.id ? { input, message } : { message: path ? `${path}: ${message}` : message }
      })
      if (!problems.some((p) => p.input)) return false
      form.prepend(errors.summary)
      errors.show(problems, { title, requestId: error.requestId })
      return true
    }
  }
}

// A secret the API shows once (an API key, an invitation link): copy it now.
export function secretOnce (slot, { heading, value, warning }) {
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
