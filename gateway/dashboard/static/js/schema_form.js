// A form generated from a connector's config JSON Schema: a field per property (text, URL,
// number, whole number, yes/no, a choice of values; anything else as JSON), with its title,
// description as a hint, required mark and default. Secret properties (`x-secret`, or
// `writeOnly`) are write-only: never filled in, shown as set or not set, sent only when typed.
// Server errors (problem+json `errors` with `/config/<field>` or `/credentials/<field>` paths)
// are tied to their fields, with a summary that takes focus.

import { h, replace } from './dom.js'

export const isSecret = (prop) => Boolean(prop && (prop['x-secret'] || prop.writeOnly || prop.secret))

const typeOf = (prop) => {
  const t = Array.isArray(prop.type) ? prop.type.find((x) => x !== 'null') : prop.type
  if (Array.isArray(prop.enum)) return 'enum'
  return t || 'string'
}

const shown = (value) => (typeof value === 'string' ? value : JSON.stringify(value))

// Every property in the schema's order, secrets last: [{name, prop, required, secret}]
export function fields (schema) {
  const required = new Set(schema?.required || [])
  const all = Object.entries(schema?.properties || {}).map(([name, prop]) => ({
    name, prop: prop || {}, required: required.has(name), secret: isSecret(prop)
  }))
  return [...all.filter((f) => !f.secret), ...all.filter((f) => f.secret)]
}

function control (f, id, value, describedBy) {
  const { prop, name } = f
  const common = { id, name, 'aria-describedby': describedBy || null, required: f.required || null }
  if (f.secret) {
    return h('input', { ...common, type: 'password', autocomplete: 'new-password', 'data-secret': '', spellcheck: 'false' })
  }
  switch (typeOf(prop)) {
    case 'enum':
      return h('select', common,
        f.required ? null : h('option', { value: '' }, 'Not set'),
        prop.enum.map((v, i) => h('option', { value: String(i), selected: value !== undefined && shown(v) === shown(value) }, shown(v))))
    case 'boolean':
      return h('input', { ...common, type: 'checkbox', checked: value === true })
    case 'integer':
    case 'number':
      return h('input', {
        ...common, type: 'number', inputmode: typeOf(prop) === 'integer' ? 'numeric' : 'decimal',
        step: typeOf(prop) === 'integer' ? '1' : 'any', min: prop.minimum ?? null, max: prop.maximum ?? null,
        value: value ?? ''
      })
    case 'string': {
      const type = prop.format === 'uri' ? 'url' : prop.format === 'email' ? 'email' : 'text'
      return h('input', { ...common, type, value: value ?? '', spellcheck: 'false', maxlength: prop.maxLength ?? null })
    }
    default:
      return h('textarea', { ...common, spellcheck: 'false' }, value === undefined ? '' : JSON.stringify(value, null, 2))
  }
}

function hintText (f) {
  const parts = []
  if (f.prop.description) parts.push(f.prop.description)
  if (f.prop.default !== undefined && !f.secret) parts.push(`Default: ${shown(f.prop.default)}.`)
  const t = typeOf(f.prop)
  if (t === 'integer' || t === 'number') {
    const { minimum: lo, maximum: hi } = f.prop
    if (lo !== undefined && hi !== undefined) parts.push(`From ${lo} to ${hi}.`)
    else if (lo !== undefined) parts.push(`At least ${lo}.`)
    else if (hi !== undefined) parts.push(`At most ${hi}.`)
  }
  if (t === 'object' || t === 'array') parts.push('As JSON.')
  return parts.join(' ')
}

// One field: label (with "required"), hint, control, error slot. Answers the .field element.
function field (f, prefix, value, fieldsSet) {
  const id = `${prefix}-${f.name}`
  const label = [f.prop.title || f.name, f.required ? h('span', { class: 'required' }, ' (required)') : null]
  const hint = hintText(f)
  const hintId = hint ? `${id}-hint` : null
  const stateId = f.secret ? `${id}-state` : null
  const described = [stateId, hintId].filter(Boolean).join(' ')
  const input = control(f, id, value, described)
  const state = f.secret
    ? h('p', { class: 'secret-state', id: stateId },
      fieldsSet.has(f.name)
        ? [h('span', { class: 'badge ok' }, 'set'), ' Type a new value to replace it.']
        : [h('span', { class: 'badge plain' }, 'not set'), ' Type a value to set it.'])
    : null
  if (typeOf(f.prop) === 'boolean' && !f.secret) {
    return h('div', { class: 'field', dataset: { field: f.name } },
      h('label', { class: 'check', for: id }, input, label),
      hint ? h('p', { class: 'hint', id: hintId }, hint) : null)
  }
  return h('div', { class: 'field', dataset: { field: f.name } },
    h('label', { for: id }, label),
    state,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    input)
}

// The form's fields for `schema`, filled from `values` (secrets never), in `form`.
export function fillForm (form, schema, { values = {}, fieldsSet = [], prefix = 'cfg' } = {}) {
  const set = new Set(fieldsSet)
  const list = fields(schema)
  const plain = list.filter((f) => !f.secret)
  const secrets = list.filter((f) => f.secret)
  const summary = h('div', { class: 'error-summary', id: `${prefix}-summary`, tabindex: '-1', hidden: true })
  const out = [summary, plain.map((f) => field(f, prefix, values[f.name], set))]
  if (secrets.length) {
    out.push(h('fieldset', { class: 'secrets' },
      h('legend', {}, 'Secrets'),
      h('p', { class: 'hint' }, 'Stored encrypted and never shown again. Leave a field empty to keep its value.'),
      secrets.map((f) => field(f, prefix, undefined, set))))
  }
  form.prepend(...out.flat())
  return list
}

// What the form holds: {config, credentials, problems} — config is every plain field with a
// value (on top of `keep`, the current config's keys the schema does not know); credentials
// only the secrets typed; problems what cannot even be sent (JSON that does not parse).
export function readForm (form, schema, { keep = {} } = {}) {
  const config = { ...keep }
  const credentials = {}
  for (const f of fields(schema)) {
    const el = form.elements[f.name]
    if (!el) continue
    delete config[f.name]
    if (f.secret) {
      if (el.value !== '') credentials[f.name] = el.value
      continue
    }
    const t = typeOf(f.prop)
    if (t === 'boolean') { config[f.name] = el.checked; continue }
    const raw = el.value.trim()
    if (raw === '') continue
    if (t === 'enum') config[f.name] = f.prop.enum[Number(raw)]
    else if (t === 'integer' || t === 'number') config[f.name] = Number.isFinite(Number(raw)) ? Number(raw) : raw
    else if (t === 'string') config[f.name] = el.value
    else {
      try { config[f.name] = JSON.parse(raw) } catch (_) { config[f.name] = raw }
    }
  }
  return { config, credentials }
}

// The field a problem+json error is about: '/config/page_size', '/credentials/api_key', or the
// whole config with "'base_url' is a required property".
export function fieldOf (error) {
  const path = String(error.path ?? error.field ?? '')
  const m = path.match(/^\/(?:config|credentials)\/([^/]+)/)
  if (m) return decodeURIComponent(m[1])
  const req = String(error.message || '').match(/^'([^']+)' is a required property/)
  return req ? req[1] : null
}

export function clearErrors (form) {
  for (const el of form.querySelectorAll('.field .error')) el.remove()
  for (const el of form.querySelectorAll('[aria-invalid]')) {
    el.removeAttribute('aria-invalid')
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((x) => x && !x.endsWith('-error'))
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '))
    else el.removeAttribute('aria-describedby')
  }
  const summary = form.querySelector('.error-summary')
  if (summary) { summary.hidden = true; summary.replaceChildren() }
}

// Ties each error to its field (message under it, aria-invalid, aria-describedby) and lists
// them all in the summary, which takes focus.
export function showErrors (form, errors, { title = 'The settings were not saved' } = {}) {
  clearErrors(form)
  const items = []
  for (const error of errors) {
    const name = fieldOf(error)
    const wrap = name && form.querySelector(`.field[data-field="${CSS.escape(name)}"]`)
    const input = wrap && form.elements[name]
    const message = error.message || error.msg || 'is not valid'
    if (!input) { items.push(h('li', {}, message)); continue }
    const id = `${input.id}-error`
    let slot = document.getElementById(id)
    if (!slot) {
      slot = h('p', { class: 'error', id })
      wrap.append(slot)
    }
    slot.append((slot.textContent ? '; ' : '') + message)
    input.setAttribute('aria-invalid', 'true')
    const ids = new Set((input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean))
    ids.add(id)
    input.setAttribute('aria-describedby', [...ids].join(' '))
    const label = wrap.querySelector('label')?.textContent.replace(' (required)', '') || name
    items.push(h('li', {}, h('a', {
      href: `#${input.id}`,
      onclick: (e) => { e.preventDefault(); input.focus() }
    }, `${label}: ${message}`)))
  }
  const summary = form.querySelector('.error-summary')
  replace(summary, h('div', { class: 'notice bad', role: 'alert' },
    h('h3', {}, `${title}: ${errors.length === 1 ? 'one problem' : `${errors.length} problems`}`),
    h('ul', {}, items)))
  summary.hidden = false
  summary.focus()
}
