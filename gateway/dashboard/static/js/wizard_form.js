// A form built from a connector's config JSON Schema, for the install wizard: one field per
// property (title as label, description as hint, required marked), secret fields
// ("x-secret"/writeOnly) as password inputs that are sent as credentials and never kept in the
// browser; errors shown at their fields (aria-invalid, aria-describedby) and in a summary.

import { h, replace } from './dom.js'

const isSecret = (prop) => Boolean(prop && (prop['x-secret'] || prop.writeOnly))
const typeOf = (prop) => (Array.isArray(prop.type) ? prop.type.find((t) => t !== 'null') : prop.type) || 'string'

export function fieldsOf (schema) {
  const required = new Set(schema.required || [])
  return Object.entries(schema.properties || {})
    .filter(([, prop]) => prop && typeof prop === 'object')
    .map(([name, prop]) => ({ name, prop, required: required.has(name), secret: isSecret(prop), type: typeOf(prop) }))
    // settings before secrets, required before optional (a schema stored as jsonb has lost
    // its authored order)
    .map((field, i) => ({ field, rank: [field.secret ? 1 : 0, field.required ? 0 : 1, i] }))
    .sort((a, b) => a.rank[0] - b.rank[0] || a.rank[1] - b.rank[1] || a.rank[2] - b.rank[2])
    .map(({ field }) => field)
}

function control (field, id, describedBy) {
  const { prop, type, name } = field
  const common = { id, name, 'aria-describedby': describedBy || null, required: field.required, dataset: { field: name } }
  if (field.secret) {
    return h('input', { ...common, type: 'password', autocomplete: 'new-password', spellcheck: 'false', 'data-secret': '' })
  }
  if (Array.isArray(prop.enum)) {
    return h('select', common,
      field.required ? null : h('option', { value: '' }, '(not set)'),
      prop.enum.map((v) => h('option', { value: String(v), selected: prop.default === v }, String(v))))
  }
  if (type === 'boolean') {
    return h('input', { ...common, type: 'checkbox', checked: prop.default === true, required: false })
  }
  if (type === 'integer' || type === 'number') {
    return h('input', {
      ...common, type: 'number', inputmode: type === 'integer' ? 'numeric' : 'decimal',
      step: type === 'integer' ? '1' : 'any', min: prop.minimum ?? null, max: prop.maximum ?? null,
      value: prop.default ?? null
    })
  }
  if (type === 'array') {
    return h('textarea', { ...common, rows: 4, spellcheck: 'false', text: (prop.default || []).join('\n') })
  }
  if (type === 'object') {
    return h('textarea', { ...common, rows: 4, spellcheck: 'false', text: prop.default ? JSON.stringify(prop.default, null, 2) : '' })
  }
  return h('input', {
    ...common, type: prop.format === 'uri' ? 'url' : prop.format === 'email' ? 'email' : 'text',
    autocomplete: 'off', spellcheck: 'false', value: prop.default ?? null
  })
}

function hintOf (field) {
  const { prop, type } = field
  const parts = []
  if (prop.description) parts.push(prop.description)
  if (type === 'array') parts.push('One per line.')
  if (type === 'object') parts.push('As JSON.')
  if ((type === 'integer' || type === 'number') && (prop.minimum !== undefined || prop.maximum !== undefined)) {
    parts.push(`From ${prop.minimum ?? '…'} to ${prop.maximum ?? '…'}.`)
  }
  if (field.secret) parts.push('Stored encrypted; never shown again.')
  return parts.join(' ')
}

// The fields as .field blocks inside `container`; {read(), showErrors(map), clearErrors()}.
export function buildForm (container, schema, { prefix = 'cfg' } = {}) {
  const fields = fieldsOf(schema)
  const blocks = fields.map((field) => {
    const id = `${prefix}-${field.name}`
    const hint = hintOf(field)
    const hintId = hint ? `${id}-hint` : null
    const input = control(field, id, hintId)
    const label = h('label', { for: id }, field.prop.title || field.name,
      field.required ? h('span', { class: 'required' }, ' (required)') : null)
    const error = h('p', { class: 'error', id: `${id}-error`, hidden: true })
    const block = field.type === 'boolean'
      ? h('div', { class: 'field' }, h('div', { class: 'check' }, input, label), hint ? h('p', { class: 'hint', id: hintId }, hint) : null, error)
      : h('div', { class: 'field' }, label, hint ? h('p', { class: 'hint', id: hintId }, hint) : null, input, error)
    return { field, input, error, hintId, block }
  })
  replace(container, blocks.map((b) => b.block))

  function value (b) {
    const { input, field } = b
    if (field.type === 'boolean') return input.checked
    const raw = input.value.trim()
    if (raw === '') return undefined
    if (field.type === 'integer' || field.type === 'number') return Number.isFinite(Number(raw)) ? Number(raw) : raw
    if (field.type === 'array') return raw.split('\n').map((s) => s.trim()).filter(Boolean)
    if (field.type === 'object') { try { return JSON.parse(raw) } catch (_) { return raw } }
    return raw
  }

  return {
    fields,
    // {config, credentials}: secrets apart (credentials), empty fields left out
    read () {
      const config = {}
      const credentials = {}
      for (const b of blocks) {
        const v = value(b)
        if (v === undefined) continue
        if (b.field.secret) credentials[b.field.name] = String(v)
        else config[b.field.name] = v
      }
      return { config, credentials }
    },
    // what the review shows: [label, shown value], secrets as "set (hidden)"
    describe () {
      return blocks.map((b) => {
        const v = value(b)
        const shown = v === undefined ? 'not set' : b.field.secret ? 'set (hidden)' : Array.isArray(v) ? v.join(', ') : typeof v === 'object' ? JSON.stringify(v) : String(v)
        return [b.field.prop.title || b.field.name, shown]
      })
    },
    // problems the browser can see: required fields left empty
    missing () {
      const out = {}
      for (const b of blocks) {
        if (b.field.required && b.field.type !== 'boolean' && value(b) === undefined) out[b.field.name] = 'Required: fill it in.'
      }
      return out
    },
    // {field name: message}; answers the fields it could not place
    showErrors (errors) {
      const unplaced = {}
      for (const [name, message] of Object.entries(errors)) {
        const b = blocks.find((x) => x.field.name === name)
        if (!b) { unplaced[name] = message; continue }
        b.error.textContent = message
        b.error.hidden = false
        b.input.setAttribute('aria-invalid', 'true')
        b.input.setAttribute('aria-describedby', [b.hintId, b.error.id].filter(Boolean).join(' '))
      }
      return unplaced
    },
    clearErrors () {
      for (const b of blocks) {
        b.error.hidden = true
        b.error.textContent = ''
        b.input.removeAttribute('aria-invalid')
        if (b.hintId) b.input.setAttribute('aria-describedby', b.hintId)
        else b.input.removeAttribute('aria-describedby')
      }
    },
    labelOf (name) {
      const b = blocks.find((x) => x.field.name === name)
      return b ? (b.field.prop.title || name) : name
    },
    idOf: (name) => `${prefix}-${name}`,
    clearSecrets () {
      for (const b of blocks) if (b.field.secret) b.input.value = ''
    }
  }
}

// A 422's errors ({path: "/config/x" | "/credentials/x" | "/config", message}) as
// {field name: message}; a required-property error on the object goes to that property.
export function errorsByField (problem) {
  const out = {}
  for (const e of problem.errors || []) {
    const path = e.path ?? (Array.isArray(e.loc) ? '/' + e.loc.filter((p) => p !== 'body').join('/') : '')
    const message = e.message || e.msg || 'Invalid.'
    let name = path.replace(/^\/(config|credentials)\/?/, '').split('/')[0]
    const required = /^'([^']+)' is a required property/.exec(message)
    if (!name && required) name = required[1]
    const key = name || path || 'form'
    out[key] = out[key] || (required ? 'Required: fill it in.' : message[0].toUpperCase() + message.slice(1) + '.')
  }
  return out
}
