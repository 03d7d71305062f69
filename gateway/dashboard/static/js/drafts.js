// Work in progress survives a session that ends (WCAG 2.2.5): before the browser goes to sign
// in again, what the person typed in forms marked data-draft, and what pages register (record
// edits not yet sent), is kept in this tab's sessionStorage, and given back when the same page
// opens again for the same tenant. Secret fields (passwords, API keys) are never kept.

import { announce } from './dom.js'

const sources = new Map() // name -> {save: () => data, restore: (data) => void}
const key = (name) => `seedos-draft:${document.body.dataset.tenant || '-'}:${location.pathname}:${name}`

const secret = (el) => el.type === 'password' || el.dataset.secret !== undefined || el.autocomplete === 'new-password'

export function keepForm (form) {
  const name = form.dataset.draft || form.id
  sources.set('form:' + name, {
    save: () => {
      const out = {}
      for (const el of form.elements) {
        if (!el.name || secret(el) || el.type === 'hidden' || el.type === 'submit') continue
        out[el.name] = el.type === 'checkbox' ? el.checked : el.value
      }
      return out
    },
    restore: (data) => {
      for (const el of form.elements) {
        if (!(el.name in data) || secret(el)) continue
        if (el.type === 'checkbox') el.checked = data[el.name]
        else el.value = data[el.name]
      }
    }
  })
  return restore('form:' + name)
}

export function keep (name, source) {
  sources.set(name, source)
  return restore(name)
}

function restore (name) {
  let raw
  try { raw = sessionStorage.getItem(key(name)) } catch (_) { return false }
  if (raw === null) return false
  sessionStorage.removeItem(key(name))
  try {
    sources.get(name).restore(JSON.parse(raw))
  } catch (_) { return false }
  announce('Your unsaved work was restored.')
  const note = document.getElementById('restored-note')
  if (note) note.hidden = false
  return true
}

export function saveAll () {
  for (const [name, source] of sources) {
    try {
      const data = source.save()
      if (data !== undefined && data !== null) sessionStorage.setItem(key(name), JSON.stringify(data))
    } catch (_) { /* storage full or refused: nothing more to do */ }
  }
}

export function forget (name) {
  try { sessionStorage.removeItem(key(name)) } catch (_) {}
}
