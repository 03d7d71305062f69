// The tenant's outbound webhooks (GET /api/v1/webhooks): each endpoint with its events, whether
// it is enabled (and, when not, why) and its last delivery; admins add one (its signing secret
// shown once), edit, disable or enable, rotate the secret (the old one keeps signing for the
// grace period), send a test event and delete. Deliveries: webhook_deliveries.js.
//
// None of these changes waits offline: the offline queue keeps none of them (a secret never
// waits on a device), so act() refuses them without the connection and says so.

import { act, api } from './api.js'
import { announce, confirmDialog, emptyState, errorNotice, fmtTime, h, replace } from './dom.js'
import { endpointForm, endpointState, lastDelivery, problemsAtFields, typeList } from './webhooks_ui.js'
import { secretOnce } from './settings_ui.js'

const isAdmin = document.body.dataset.role === 'admin'
const body = document.getElementById('endpoints-body')
const slot = document.getElementById('secret-slot')
let eventTypes = []

const el = (id) => document.getElementById(id)

function said (where, text, tone = 'ok') {
  replace(where, h('p', { class: `notice ${tone}`, role: 'status' }, text))
  announce(text)
}

async function load () {
  const page = await api('/api/v1/webhooks')
  eventTypes = page.event_types
  if (!page.items.length) {
    replace(body, emptyState('No endpoints yet', isAdmin
      ? 'Add one below: SEED-OS then sends it the events you choose, as they happen.'
      : 'An admin can add one: SEED-OS then sends it the events they choose, as they happen.', null, { level: 3 }))
  } else {
    replace(body, h('ul', { class: 'endpoint-list' }, page.items.map((e) => h('li', {}, card(e)))))
    await Promise.all(page.items.map(fillLast))
  }
  return page
}

// The latest delivery of an endpoint, in its card (one small read per endpoint)
async function fillLast (endpoint) {
  const where = document.querySelector(`#endpoint-${endpoint.id} .last-delivery`)
  if (!where) return
  try {
    const { items } = await api(`/api/v1/webhooks/${endpoint.id}/deliveries`, { query: { limit: 1 } })
    replace(where, lastDelivery(items[0]))
  } catch (error) {
    replace(where, 'could not be read: ', error.message)
  }
}

function card (endpoint) {
  const title = endpoint.description || new URL(endpoint.url).host
  const status = h('div', { class: 'endpoint-status', id: `endpoint-status-${endpoint.id}` })
  return h('article', { class: `card endpoint${endpoint.enabled ? '' : ' disabled'}`, id: `endpoint-${endpoint.id}`, 'aria-labelledby': `endpoint-title-${endpoint.id}`, dataset: { id: endpoint.id } },
    h('h3', { id: `endpoint-title-${endpoint.id}`, tabindex: '-1' }, title),
    status,
    h('dl', { class: 'facts' },
      h('dt', {}, 'URL'), h('dd', {}, h('code', { class: 'endpoint-url' }, endpoint.url)),
      h('dt', {}, 'State'), h('dd', { class: 'endpoint-state' }, endpointState(endpoint)),
      h('dt', {}, 'Events'), h('dd', {}, typeList(endpoint.event_types)),
      h('dt', {}, 'Last delivery'), h('dd', { class: 'last-delivery' }, h('span', { class: 'quiet' }, 'Reading…')),
      h('dt', {}, 'Added'), h('dd', {}, h('time', { datetime: endpoint.created_at }, fmtTime(endpoint.created_at)))),
    h('div', { class: 'actions' },
      h('a', { class: 'button', href: `/webhooks/${endpoint.id}` }, 'Deliveries', h('span', { class: 'visually-hidden' }, ` to ${title}`)),
      isAdmin ? controls(endpoint, title) : null))
}

function button (text, title, onclick, cls) {
  return h('button', { type: 'button', class: cls || null, onclick: (e) => onclick(e.currentTarget) },
    text, h('span', { class: 'visually-hidden' }, ` ${title}`))
}

function controls (endpoint, title) {
  return [
    endpoint.enabled ? button('Send a test event', `to ${title}`, (b) => sendTest(endpoint, b)) : null,
    button('Edit', title, () => edit(endpoint)),
    endpoint.enabled
      ? button('Disable', title, (b) => setEnabled(endpoint, false, b))
      : button('Enable', title, (b) => setEnabled(endpoint, true, b)),
    button('Rotate secret', `of ${title}`, (b) => rotate(endpoint, b)),
    button('Delete', title, (b) => remove(endpoint, b), 'danger')
  ]
}

// Runs a change with its trigger held; trouble is said in the endpoint's card.
async function busy (trigger, endpoint, failed, work) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  try {
    return await work()
  } catch (error) {
    const where = el(`endpoint-status-${endpoint.id}`) || el('page-notice')
    replace(where, errorNotice(error, { title: failed }))
    announce(`${failed} ${error.message}`)
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

// The card as the API has it now, focus on its heading, `text` said in it
function shown (endpoint, text) {
  const old = el(`endpoint-${endpoint.id}`)
  const fresh = card(endpoint)
  old.replaceWith(fresh)
  fillLast(endpoint)
  if (text) said(el(`endpoint-status-${endpoint.id}`), text)
  el(`endpoint-title-${endpoint.id}`).focus()
}

async function sendTest (endpoint, trigger) {
  await busy(trigger, endpoint, 'No test event was sent.', async () => {
    await act({ method: 'POST', path: `/api/v1/webhooks/${endpoint.id}/test` })
    const text = 'A test event (webhook.test) was queued for this endpoint. '
    replace(el(`endpoint-status-${endpoint.id}`), h('p', { class: 'notice ok', role: 'status' }, text,
      h('a', { href: `/webhooks/${endpoint.id}` }, 'See it in the deliveries'), '.'))
    announce(text)
  })
}

async function setEnabled (endpoint, enabled, trigger) {
  if (!enabled && !await confirmDialog({
    title: 'Disable this endpoint?',
    text: 'Nothing is sent to it while it is disabled, and the deliveries still waiting to be sent are cancelled. You can enable it again.',
    confirm: 'Disable endpoint',
    trigger
  })) return
  await busy(trigger, endpoint, enabled ? 'The endpoint was not enabled.' : 'The endpoint was not disabled.', async () => {
    const fresh = await act({ method: 'PATCH', path: `/api/v1/webhooks/${endpoint.id}`, body: { enabled } })
    shown(fresh, enabled ? 'Enabled: new events are sent to it again.' : 'Disabled: nothing is sent to it until it is enabled again.')
  })
}

async function rotate (endpoint, trigger) {
  if (!await confirmDialog({
    title: 'Rotate the signing secret?',
    text: 'A new secret is made and shown once. The current one keeps signing beside it for a grace period (24 hours unless your operator set otherwise), so the receiver can switch without missing a delivery.',
    confirm: 'Make a new secret',
    danger: false,
    trigger
  })) return
  await busy(trigger, endpoint, 'The secret was not rotated.', async () => {
    const answer = await act({ method: 'POST', path: `/api/v1/webhooks/${endpoint.id}/rotate` })
    const until = answer.previous_expires_at
      ? ` The previous secret keeps signing too until ${fmtTime(answer.previous_expires_at)}; after that only this one does.`
      : ''
    secretOnce(slot, {
      heading: `The new signing secret of ${endpoint.description || endpoint.url}`,
      value: answer.secret,
      warning: `Copy it now and give it to the receiver: you will not see it again.${until}`
    })
    announce('A new signing secret was made. Copy it now: you will not see it again.')
  })
}

async function remove (endpoint, trigger) {
  if (!await confirmDialog({
    title: 'Delete this endpoint?',
    text: `Nothing more is sent to ${endpoint.url}, and its deliveries are deleted with it. This cannot be undone.`,
    confirm: 'Delete endpoint',
    trigger
  })) return
  await busy(trigger, endpoint, 'The endpoint was not deleted.', async () => {
    await act({ method: 'DELETE', path: `/api/v1/webhooks/${endpoint.id}` })
    await load()
    said(el('page-notice'), `The endpoint ${endpoint.url} was deleted.`)
    el('endpoints').focus()
  })
}

// ---- edit, in the card
function edit (endpoint) {
  const old = el(`endpoint-${endpoint.id}`)
  const prefix = `edit-${endpoint.id}`
  const { form, errors } = endpointForm({ prefix, types: eventTypes, value: endpoint, submit: 'Save changes' })
  const cancel = h('button', { type: 'button' }, 'Cancel')
  form.querySelector('.actions').append(cancel)
  const editing = h('article', { class: 'card endpoint editing', id: `endpoint-${endpoint.id}`, 'aria-labelledby': `endpoint-title-${endpoint.id}` },
    h('h3', { id: `endpoint-title-${endpoint.id}`, tabindex: '-1' }, `Edit ${endpoint.description || endpoint.url}`),
    h('div', { class: 'endpoint-status', id: `endpoint-status-${endpoint.id}` }),
    form)
  old.replaceWith(editing)
  form.elements.url.focus()
  cancel.addEventListener('click', () => shown(endpoint))
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const value = errors.read()
    if (!value) return
    const trigger = form.querySelector('[type=submit]')
    trigger.disabled = true
    try {
      shown(await act({ method: 'PATCH', path: `/api/v1/webhooks/${endpoint.id}`, body: value }), 'The endpoint was saved.')
    } catch (error) {
      problemsAtFields(errors, error, 'Not saved', el(`endpoint-status-${endpoint.id}`))
    } finally {
      trigger.disabled = false
    }
  })
}

// ---- add
function addForm () {
  const section = el('add')
  if (!section) return
  const { form, errors } = endpointForm({ prefix: 'add', types: eventTypes, value: null, submit: 'Add endpoint' })
  replace(el('add-form-slot'), form)
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    replace(el('add-status'))
    const value = errors.read()
    if (!value) return
    const trigger = form.querySelector('[type=submit]')
    trigger.disabled = true
    try {
      const created = await act({ method: 'POST', path: '/api/v1/webhooks', body: value })
      form.reset()
      await load()
      secretOnce(slot, {
        heading: `The signing secret of ${created.description || created.url}`,
        value: created.secret,
        warning: 'Copy it now and give it to the receiver, which checks every delivery with it (Standard Webhooks): you will not see it again. If it is lost, rotate the secret.'
      })
      announce('The endpoint was added. Copy its signing secret now: you will not see it again.')
    } catch (error) {
      problemsAtFields(errors, error, 'Not added', el('add-status'))
    } finally {
      trigger.disabled = false
    }
  })
}

try {
  await load()
  addForm()
} catch (error) {
  replace(body, errorNotice(error, { title: 'The endpoints could not be loaded.' }))
  const adding = el('add-form-slot')
  if (adding) replace(adding, h('p', {}, 'An endpoint can be added once the page loads: reload it to try again.'))
}
