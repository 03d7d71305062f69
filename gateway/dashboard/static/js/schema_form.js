// A form generated from a connector's config JSON Schema, for the install wizard (a new install:
// defaults filled in) and the integration page (an install's config filled in, each secret
// shown as set or not set). A field per property: text, URL, email, number, whole number,
// yes/no, a choice of values, a list one per line, anything else as JSON; its title as label,
// description as hint, required marked. Settings come before secrets, required before optional
// (a schema stored as jsonb has lost its authored order). Secret properties (`x-secret`, or
// `writeOnly`) are write-only password fields in a Secrets group, never filled in, sent only
// when typed. Errors, the browser's and the server's (problem+json `errors`, `/config/<field>`
// or `/credentials/<field>`), are shown at their fields and in a summary by form_errors.js.

import { badge, h, replace } from './dom.js'
import { formErrors } from './form_errors.js'

const isSecret = (prop) => Boolean(prop && (prop['x-secret'] || prop.writeOnly || prop.secret))

const typeOf = (prop) => {
  if (Array.isArray(prop.enum)) return 'enum'
  const t = Array.isArray(prop.type) ? prop.type.find((x) => x !== 'null') : prop.type
  if (t === 'array' && typeOf(prop.items || {}) === 'string') return 'lines'
  return t || 'string'
}

const shown = (value) => (typeof value === 'string' ? value : JSON.stringify(value))

// Every property: [{name, prop, required, secret, type}], settings before secrets, required
// before optional, otherwise in the schema's order.
export function fields (schema) {
  const required = new Set(schema?.required || [])
  return Object.entries(schema?.properties || {})
    .filter(([, prop]) => prop && typeof prop === 'object')
    .map(([name, prop], i) => ({ name, prop, required: required.has(name), secret: isSecret(prop), type: typeOf(prop), i }))
    .sort((a, b) => a.secret - b.secret || b.required - a.required || a.i - b.i)
}

function control (f, id, value) {
  const { prop, name, type } = f
  const common = { id, name, required: f.required || null }
  if (f.secret) {
    return h('input', { ...common, type: 'password', autocomplete: 'new-password', 'data-secret': '', spellcheck: 'false' })
  }
  switch (type) {
    case 'enum':
      return h('select', common,
        f.required ? null : h('option', { value: '' }, 'Not set'),
        prop.enum.map((v, i) => h('option', { value: String(i), selected: value !== undefined && shown(v) === shown(value) }, shown(v))))
    case 'boolean': // a checkbox is never "required": unticked is an answer
      return h('input', { ...common, required: null, type: 'checkbox', checked: value === true })
    case 'integer':
    case 'number':
      return h('input', {
        ...common, type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal',
        step: type === 'integer' ? '1' : 'any', min: prop.minimum ?? null, max: prop.maximum ?? null,
        value: value ?? ''
      })
    case 'string':
      return h('input', {
        ...common, type: prop.format === 'uri' ? 'url' : prop.format === 'email' ? 'email' : 'text',
        value: value ?? '', autocomplete: 'off', spellcheck: 'false', maxlength: prop.maxLength ?? null
      })
    case 'lines':
      return h('textarea', { ...common, rows: 4, spellcheck: 'false', text: (value || []).join('\n') })
    default:
      return h('textarea', { ...common, rows: 4, spellcheck: 'false', text: value === undefined ? '' : JSON.stringify(value, null, 2) })
  }
}

function hintText (f, { showDefault }) {
  const { prop, type } = f
  const parts = []
  if (prop.description) parts.push(prop.description)
  if (showDefault && prop.default !== undefined && !f.secret) parts.push(`Default: ${shown(prop.default)}.`)
  if (type === 'integer' || type === 'number') {
    const { minimum: lo, maximum: hi } = prop
    if (lo !== undefined && hi !== undefined) parts.push(`From ${lo} to ${hi}.`)
    else if (lo !== undefined) parts.push(`At least ${lo}.`)
    else if (hi !== undefined) parts.push(`At most ${hi}.`)
  }
  if (type === 'lines') parts.push('One per line.')
  if (type === 'object' || type === 'array') parts.push('As JSON.')
  return parts.join(' ')
}

const secretState = (set) => set
  ? [badge('set', 'ok'), ' Type a new value to replace it.']
  : [badge('not set'), ' Type a value to set it.']

// The field a problem+json error is about: '/config/page_size', '/credentials/api_key', a
// validation error's loc ['body', 'config', 'page_size'], or the whole config with
// "'base_url' is a required property".
export function fieldOf (error) {
  const path = String(error.path ?? error.field ?? (Array.isArray(error.loc) ? '/' + error.loc.filter((p) => p !== 'body').join('/') : ''))
  const m = path.match(/^\/(?:config|credentials)\/([^/]+)/)
  if (m) return decodeURIComponent(m[1])
  const req = String(error.message || '').match(/^'([^']+)' is a required property/)
  return req ? req[1] : null
}

// An error in words: "Required: fill it in." for a missing value, else its message as a sentence.
function said (error) {
  const message = String(error.message || error.msg || 'is not valid')
  if (/^'[^']+' is a required property/.test(message)) return 'Required: fill it in.'
  return message[0].toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.')
}

// The form's fields for `schema` in `container`. With `values` (an install's config) those are
// filled in and each default is said in its hint; without, the defaults are filled in.
// `fieldsSet` (the secrets an install has) shows each secret as set or not set.
// Answers {fields, summary, read, describe, missing, showErrors, clearErrors, setSecretStates,
// clearSecrets}; `summary` starts the container and can be moved (the wizard puts it first).
export function schemaForm (container, schema, { values, fieldsSet, prefix = 'cfg' } = {}) {
  const editing = values !== undefined
  const list = fields(schema)
  const blocks = new Map() // name -> {f, input, wrap, label}
  const block = (f) => {
    const id = `${prefix}-${f.name}`
    const label = [f.prop.title || f.name, f.required ? h('span', { class: 'required' }, ' (required)') : null]
    const hint = hintText(f, { showDefault: editing })
    const hintId = hint ? `${id}-hint` : null
    const state = f.secret && fieldsSet ? h('p', { class: 'secret-state', id: `${id}-state` }, secretState(fieldsSet.includes(f.name))) : null
    const input = control(f, id, f.secret ? undefined : editing ? values[f.name] : f.prop.default)
    const described = [state?.id, hintId].filter(Boolean).join(' ')
    if (described) input.setAttribute('aria-describedby', described)
    const hintEl = hint ? h('p', { class: 'hint', id: hintId }, hint) : null
    const wrap = f.type === 'boolean'
      ? h('div', { class: 'field', dataset: { field: f.name } }, h('label', { class: 'check', for: id }, input, label), hintEl)
      : h('div', { class: 'field', dataset: { field: f.name } }, h('label', { for: id }, label), state, hintEl, input)
    blocks.set(f.name, { f, input, wrap, label: f.prop.title || f.name })
    return wrap
  }
  const errors = formErrors({ id: `${prefix}-summary` })
  const summary = errors.summary
  const plain = list.filter((f) => !f.secret).map(block)
  const secrets = list.filter((f) => f.secret)
  replace(container, summary, plain, secrets.length
    ? h('fieldset', { class: 'secrets' },
      h('legend', {}, 'Secrets'),
      h('p', { class: 'hint' }, 'Stored encrypted and never shown again.', editing ? ' Leave a field empty to keep its value.' : ''),
      secrets.map(block))
    : null)

  // a field's value as the API takes it; undefined when empty
  function value ({ f, input }) {
    if (f.secret) return input.value === '' ? undefined : input.value
    if (f.type === 'boolean') return input.checked
    const raw = input.value.trim()
    if (raw === '') return undefined
    switch (f.type) {
      case 'enum': return f.prop.enum[Number(raw)]
      case 'integer':
      case 'number': return Number.isFinite(Number(raw)) ? Number(raw) : raw
      case 'string': return input.value
      case 'lines': return raw.split('\n').map((s) => s.trim()).filter(Boolean)
      default: try { return JSON.parse(raw) } catch (_) { return raw }
    }
  }

  return {
    fields: list,
    summary,
    // {config, credentials}: config every setting with a value (on top of `keep`, the current
    // config's keys the schema does not know), credentials only the secrets typed
    read ({ keep = {} } = {}) {
      const config = { ...keep }
      const credentials = {}
      for (const b of blocks.values()) {
        delete config[b.f.name]
        const v = value(b)
        if (v === undefined) continue
        if (b.f.secret) credentials[b.f.name] = v
        else config[b.f.name] = v
      }
      return { config, credentials }
    },
    // what a review shows: [[label, value in words]], secrets as "set (hidden)"
    describe () {
      return [...blocks.values()].map((b) => {
        const v = value(b)
        return [b.label, v === undefined ? 'not set' : b.f.secret ? 'set (hidden)' : Array.isArray(v) ? v.map(shown).join(', ') : shown(v)]
      })
    },
    // the required fields left empty, as the server would say it
    missing () {
      return [...blocks.values()]
        .filter((b) => b.f.required && b.f.type !== 'boolean' && value(b) === undefined)
        .map((b) => ({ path: `/${b.f.secret ? 'credentials' : 'config'}/${b.f.name}`, message: `'${b.f.name}' is a required property` }))
    },
    // Each error at its field (message under it, aria-invalid, aria-describedby) and all of
    // them in the summary, which takes focus; an error about no field is listed as it is.
    showErrors (problems, { title = 'The settings were not saved' } = {}) {
      errors.show(problems.map((error) => {
        const b = blocks.get(fieldOf(error))
        return { input: b?.input, label: b?.label, message: said(error) }
      }), { title })
    },
    clearErrors: errors.clear,
    setSecretStates (set) {
      for (const { f, wrap } of blocks.values()) {
        const state = f.secret && wrap.querySelector('.secret-state')
        if (state) replace(state, secretState(set.includes(f.name)))
      }
    },
    clearSecrets () {
      for (const { f, input } of blocks.values()) if (f.secret) input.value = ''
    }
  }
}
