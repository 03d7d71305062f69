// What the outbound webhook pages share (webhooks_out.js, webhook_deliveries.js): the endpoint
// form and its errors (the browser's and the API's, a refused address at the URL), an
// endpoint's state and events in words, and a delivery's state and attempts.

import { badge, errorNotice, fmtMs, h, replace, timeEl } from './dom.js'
import { formErrors } from './form_errors.js'

// What each event type means (connector_service/outbound/events.py)
export const EVENT_WORDS = {
  'sync.finished': 'A sync run finished',
  'sync.failed': 'A sync run failed',
  'records.changed': 'Records changed (per stream: counts and keys)',
  'integration.status_changed': 'An integration’s status changed',
  'alert.opened': 'An alert opened',
  'alert.resolved': 'An alert resolved',
  'dead_letter.added': 'A change was refused for good (a dead letter)',
  'webhook.endpoint_disabled': 'An endpoint was disabled for failing',
  'webhook.test': 'A test event, sent on request'
}

export const STATE_TONES = { pending: 'info', delivered: 'ok', failed: 'bad', cancelled: 'plain' }
export const STATE_WORDS = { pending: 'Pending', delivered: 'Delivered', failed: 'Failed', cancelled: 'Cancelled' }

// Why an attempt failed (worker.py's error classes), in words
const ERROR_WORDS = {
  http_status: 'answered, but not with 2xx',
  timeout: 'no answer in time',
  address_refused: 'the address is not one SEED-OS may send to (refused before connecting)',
  endpoint_gone: 'the endpoint was deleted',
  connect_error: 'could not connect',
  read_error: 'the connection broke while reading the answer',
  write_error: 'the connection broke while sending',
  remote_protocol_error: 'the answer was not valid HTTP'
}
export const errorWords = (e) => (e ? ERROR_WORDS[e] || e.replaceAll('_', ' ') : '')

export function typeList (types) {
  return h('ul', { class: 'type-list' }, types.map((t) =>
    h('li', {}, h('code', {}, t), h('span', { class: 'quiet' }, ` ${EVENT_WORDS[t] || ''}`))))
}

// Enabled, failing, or disabled and why (queue.py: 'failing since … UTC'; a person: 'disabled by
// a user')
export function endpointState (e) {
  if (e.enabled && e.failing_since) {
    return [badge('Failing', 'warn'), ' Every delivery has failed since ', timeEl(e.failing_since),
      '; it is disabled if that goes on for days.']
  }
  if (e.enabled) return badge('Enabled', 'ok')
  const reason = e.disabled_reason || ''
  const why = reason.startsWith('failing since')
    ? `Disabled automatically: every delivery failed ${reason}. Fix the receiver, then enable it.`
    : reason === 'disabled by a user' ? 'Disabled by an admin.' : `Disabled${reason ? `: ${reason}` : '.'}`
  return [badge('Disabled', 'plain'), ' ', h('span', { class: 'disabled-reason' }, why)]
}

export function lastDelivery (d) {
  if (!d) return h('span', { class: 'quiet' }, 'None yet')
  return [badge(STATE_WORDS[d.state] || d.state, STATE_TONES[d.state] || 'plain'), ' ',
    h('code', {}, d.type), ' ', timeEl(d.finished_at || d.created_at)]
}

// One attempt's result: HTTP status or why it failed
export function attemptResult (a) {
  const status = a.status ? `HTTP ${a.status}` : 'No answer'
  return [badge(a.ok ? 'OK' : 'Failed', a.ok ? 'ok' : 'bad'), ' ', status,
    a.error ? h('div', { class: 'quiet' }, errorWords(a.error), ' ', h('code', {}, `(${a.error})`)) : null]
}

export const attemptDuration = (a) => fmtMs(a.duration_ms)

// The endpoint form: URL, description, the event types as checkboxes. Answers {form, errors}:
// errors.read() is the body to send, or null once the problems are shown at their fields.
export function endpointForm ({ prefix, types, value, submit }) {
  const chosen = new Set(value?.event_types || [])
  const boxes = types.map((t, i) => h('label', { class: 'check', for: `${prefix}-type-${i}` },
    h('input', { type: 'checkbox', id: `${prefix}-type-${i}`, name: 'event_types', value: t, checked: chosen.has(t) }),
    h('span', {}, h('code', {}, t), h('span', { class: 'quiet' }, ` ${EVENT_WORDS[t] || ''}`))))
  const form = h('form', { id: `${prefix}-form`, class: 'endpoint-form', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: `${prefix}-url` }, 'URL'),
      h('p', { class: 'hint', id: `${prefix}-url-hint` }, 'Where the events are POSTed, for example https://example.com/seedos/events. In production it must be a public address.'),
      h('input', { id: `${prefix}-url`, name: 'url', type: 'url', inputmode: 'url', autocomplete: 'off', spellcheck: 'false', maxlength: 2000, required: true, 'aria-describedby': `${prefix}-url-hint`, value: value?.url || null })),
    h('div', { class: 'field' },
      h('label', { for: `${prefix}-description` }, 'Description'),
      h('p', { class: 'hint', id: `${prefix}-description-hint` }, 'What listens there, for example “billing service”. Optional.'),
      h('input', { id: `${prefix}-description`, name: 'description', autocomplete: 'off', maxlength: 500, 'aria-describedby': `${prefix}-description-hint`, value: value?.description || null })),
    h('fieldset', { class: 'field event-types', id: `${prefix}-types` },
      h('legend', {}, 'Events to send'),
      h('p', { class: 'hint' }, 'Choose at least one.'),
      h('div', { class: 'event-type-list' }, boxes)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, submit)))
  const shown = formErrors()
  form.prepend(shown.summary)
  const first = () => form.querySelector('input[name=event_types]')
  const inputs = { url: () => form.elements.url, description: () => form.elements.description, event_types: first }
  const labels = { event_types: 'Events to send' }
  const errors = {
    clear: shown.clear,
    // problems: [[field, message]]; a field this form has none of is listed as it is
    show (problems, options) {
      shown.show(problems.map(([field, message]) => {
        const input = inputs[field]?.()
        return input ? { input, label: labels[field], message } : { message: field ? `${field}: ${message}` : message }
      }), options)
    },
    read () {
      shown.clear()
      const url = form.elements.url.value.trim()
      const eventTypes = [...form.querySelectorAll('input[name=event_types]:checked')].map((b) => b.value)
      const problems = []
      if (!url) problems.push(['url', 'Enter the URL to send the events to.'])
      if (!eventTypes.length) problems.push(['event_types', 'Choose at least one event.'])
      if (problems.length) {
        errors.show(problems, { title: value ? 'Not saved' : 'Not added' })
        return null
      }
      return { url, event_types: eventTypes, description: form.elements.description.value.trim() }
    }
  }
  return { form, errors }
}

// A refused address in words: the API's detail names the rule's setting, which is for operators
function refusal (error) {
  const host = /host '([^']+)'/.exec(error.message)?.[1]
  if (/outside the .* networks/.test(error.message)) {
    return `${host || 'This host'} is not a public address, nor in a network your operator allows: SEED-OS does not send events there.`
  }
  if (/does not resolve/.test(error.message)) return `${host || 'The host'} does not resolve to an address: check how it is spelled.`
  return error.message
}

// The API's problem at the fields it concerns (a 422's fields; a refused URL at the URL), or in
// words in `status` when it concerns none of them.
export function problemsAtFields (errors, error, title, status) {
  const known = ['url', 'description', 'event_types']
  if (error.code === 'endpoint_not_allowed') {
    errors.show([['url', refusal(error)]], { title, requestId: error.requestId })
    return
  }
  const fields = Object.entries(error.fieldErrors || {}).map(([path, message]) => [path.split('.')[0], message])
  if (error.status === 422 && fields.some(([f]) => known.includes(f))) {
    errors.show(fields, { title, requestId: error.requestId })
    return
  }
  replace(status, errorNotice(error, { title: `${title}.` }))
}
