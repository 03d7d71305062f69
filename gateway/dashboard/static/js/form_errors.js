// A form's errors, the browser's or the server's, the one way the dashboard shows them: each
// under its field (.field > p.error, aria-invalid, its id added to aria-describedby) and all of
// them in one summary that takes focus, whose links move focus to their fields. Its CSS is
// app.css's .field .error and .error-summary.

import { h, replace } from './dom.js'

// Answers {summary, show, clear}: put `summary` where the list belongs (first in the form).
export function formErrors ({ id } = {}) {
  const summary = h('div', { class: 'error-summary', id, tabindex: '-1', hidden: true })
  const marked = new Map() // input -> its message slot

  function clear () {
    for (const [input, slot] of marked) {
      slot.remove()
      input.removeAttribute('aria-invalid')
      const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && x !== slot.id)
      if (ids.length) input.setAttribute('aria-describedby', ids.join(' '))
      else input.removeAttribute('aria-describedby')
    }
    marked.clear()
    summary.hidden = true
    summary.replaceChildren()
  }

  // problems: [{input, label, message}]; one without an input is listed as it is, `label`
  // defaults to the input's <label>. Several messages for one field are said together.
  function show (problems, { title = 'Not saved', requestId } = {}) {
    clear()
    const items = problems.map(({ input, label, message }) => {
      if (!input) return h('li', {}, message)
      let slot = marked.get(input)
      if (!slot) {
        slot = h('p', { class: 'error', id: `${input.id}-error` })
        ;(input.closest('.field') || input.parentElement).append(slot)
        input.setAttribute('aria-invalid', 'true')
        input.setAttribute('aria-describedby', [input.getAttribute('aria-describedby'), slot.id].filter(Boolean).join(' '))
        marked.set(input, slot)
      }
      slot.append((slot.textContent ? ' ' : '') + message)
      const name = label ?? input.labels?.[0]?.textContent ?? input.name
      return h('li', {}, h('a', {
        href: `#${input.id}`,
        onclick: (e) => { e.preventDefault(); input.focus() }
      }, `${name}: ${message}`))
    })
    replace(summary, h('div', { class: 'notice bad', role: 'alert' },
      h('h3', {}, `${title}: ${problems.length === 1 ? 'one problem' : `${problems.length} problems`}`),
      h('ul', {}, items),
      requestId ? h('p', {}, 'Request id ', h('span', { class: 'request-id' }, requestId)) : null))
    summary.hidden = false
    summary.focus()
  }

  return { summary, show, clear }
}
