// The integration page's Webhooks section, for an install whose connector declares the
// provider's webhooks (GET .../webhook answers supported: true; otherwise the section stays
// hidden): what to do at the provider, the URL to give it (made, copied, replaced), the signing
// secret (pasted, or made here and shown once), what each event does, and the deliveries taken
// and refused in the last day with the latest refusals and why.
//
// Changing the URL or the secret needs the connection: neither is one of the changes the
// offline queue keeps (a secret never waits on a device), so act() refuses them offline and the
// section says so while the page is offline.

import { act, api } from './api.js'
import { connection, onConnection } from './connection.js'
import { announce, badge, confirmDialog, dataTable, errorNotice, fmtNumber, h, replace, timeEl } from './dom.js'
import { fieldErrors, secretOnce } from './settings_ui.js'

// How each scheme signs a delivery, in words
const SCHEMES = {
  github: 'GitHub’s way: an HMAC-SHA256 of the body in X-Hub-Signature-256.',
  stripe: 'Stripe’s way: Stripe-Signature, with the time it was signed (an old one is refused).',
  shopify: 'Shopify’s way: an HMAC-SHA256 of the body in X-Shopify-Hmac-Sha256.',
  slack: 'Slack’s way: X-Slack-Signature (v0), with the time it was signed (an old one is refused).'
}

// Why a delivery was refused (connector_service/webhooks: Refused's reasons), in words
const REASONS = {
  bad_signature: 'The signature does not match the secret',
  stale: 'Signed too long ago',
  replayed: 'Already taken: a repeat of an earlier delivery',
  no_secret: 'No signing secret was set',
  too_large: 'Too large (over 1 MiB)',
  not_json: 'The body is not JSON',
  no_delivery_id: 'The delivery names no id',
  not_supported: 'The connector declares no webhooks',
  not_configured: 'The connector’s signature scheme is unknown',
  unknown_url: 'Sent to an unknown URL'
}
const reasonWords = (reason) => REASONS[reason] || String(reason).replaceAll('_', ' ')

// Where each provider shows the secret it signs with
const SECRET_HINTS = {
  github: 'GitHub signs with what is typed in the webhook’s Secret field: paste it here, or make one below.',
  stripe: 'Stripe shows it (whsec_…) on the endpoint’s page, under Signing secret.',
  shopify: 'Shopify signs with the app’s client secret, or with the key shown under Settings > Notifications > Webhooks.',
  slack: 'Slack shows it as the app’s Signing Secret, under Basic Information.'
}

const OFFLINE_NOTE = 'You are offline. The webhook URL and the signing secret can only be changed with the connection: these changes do not wait on this device.'

let current = null // the ctx the section was last loaded with (reloadWebhooks)
let onceSlot = null // where a secret made here is shown once; kept across renders
let watching = false

const el = (id) => document.getElementById(id)

export async function loadWebhooks (ctx) {
  current = ctx
  const section = el('webhooks')
  let hook
  try {
    hook = await api(`${ctx.base}/webhook`)
  } catch (error) {
    // offline with no copy of the answer on this device: whether there are webhooks is not
    // known, so nothing is said of them; any other trouble is shown (integration.js puts it
    // in the body)
    if (error.status === 0) return
    section.hidden = false
    throw error
  }
  if (!hook.supported) {
    section.hidden = true
    replace(el('webhooks-body'))
    return
  }
  section.hidden = false
  render(ctx, hook)
  if (!watching) {
    watching = true
    offlineNote()
    onConnection(offlineNote)
  }
}

// After an upgrade: the new version may declare webhooks, or none
export const reloadWebhooks = () => (current ? loadWebhooks(current) : null)

function offlineNote () {
  const note = el('webhook-offline')
  if (!note) return
  note.hidden = connection.online
  note.textContent = connection.online ? '' : OFFLINE_NOTE
}

function notify (text) {
  replace(el('webhook-notice'), h('p', { class: 'notice ok', role: 'status' }, text))
  announce(text)
}

function failed (error, title, trigger) {
  replace(el('webhook-notice'), errorNotice(error, { title }))
  announce(`${title} ${error.message}`)
  if (trigger?.isConnected) trigger.focus()
}

// After a change: said, and the section shown as it is now (or, should that fail, the change
// still said, with why the section could not be shown again)
async function shownAgain (ctx, said) {
  try {
    render(ctx, await api(`${ctx.base}/webhook`))
  } catch (error) {
    replace(el('webhook-notice'), h('p', { class: 'notice ok', role: 'status' }, said),
      errorNotice(error, { title: 'The webhook could not be shown again.' }))
    announce(said)
    return
  }
  notify(said)
}

function render (ctx, hook) {
  replace(el('webhooks-body'),
    h('h3', {}, 'At the provider'),
    hook.setup ? h('p', { class: 'webhook-setup' }, hook.setup) : null,
    h('p', {}, 'Deliveries are signed ', SCHEMES[hook.scheme] || `with the ${hook.scheme} scheme.`),
    urlPart(ctx, hook),
    secretPart(ctx, hook),
    eventsPart(hook),
    deliveriesPart(hook))
}

function copyButton (label, value, shown) {
  const copy = h('button', { type: 'button', id: 'webhook-copy' }, label)
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value)
      announce('Copied to the clipboard.')
      copy.textContent = 'Copied'
    } catch (_) {
      getSelection().selectAllChildren(shown)
      announce('Selected: press Control C (or Command C) to copy it.')
    }
  })
  return copy
}

function urlPart (ctx, hook) {
  if (!hook.url) {
    return [
      h('h3', {}, 'Webhook URL'),
      h('p', {}, 'No URL has been made yet: the provider has nowhere to send its changes.',
        ctx.canWrite ? null : ' An editor can make one.'),
      ctx.canWrite
        ? h('div', { class: 'actions' }, h('button', { type: 'button', class: 'primary', id: 'webhook-make', onclick: (e) => makeUrl(ctx, e.currentTarget, false) }, 'Make the webhook URL'))
        : null
    ]
  }
  const shown = h('code', { id: 'webhook-url', class: 'webhook-url-value' }, hook.url)
  return [
    h('h3', {}, 'Webhook URL'),
    h('p', {}, 'Give this address to the provider. It is this install’s alone; whoever has it still needs the signing secret.'),
    h('div', { class: 'webhook-url' }, shown,
      h('div', { class: 'actions' },
        copyButton('Copy the URL', hook.url, shown),
        ctx.canWrite ? h('button', { type: 'button', id: 'webhook-rotate', onclick: (e) => makeUrl(ctx, e.currentTarget, true) }, 'New URL') : null))
  ]
}

async function makeUrl (ctx, trigger, rotate) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  if (rotate && !await confirmDialog({
    title: 'Make a new webhook URL?',
    text: 'The current URL stops working at once: the provider’s deliveries to it are refused until you give the provider the new one.',
    confirm: 'Make a new URL',
    trigger
  })) return
  trigger.setAttribute('aria-disabled', 'true')
  replace(el('webhook-notice'))
  try {
    await act({ method: 'POST', path: `${ctx.base}/webhook`, query: rotate ? { rotate: 'true' } : undefined })
  } catch (error) {
    failed(error, rotate ? 'No new URL was made.' : 'The webhook URL was not made.', trigger)
    trigger.removeAttribute('aria-disabled')
    return
  }
  try {
    await shownAgain(ctx, rotate
      ? 'A new webhook URL was made. The old one no longer works: give the provider this one.'
      : 'The webhook URL was made. Give it to the provider.')
    el('webhook-copy')?.focus()
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

function secretPart (ctx, hook) {
  onceSlot = onceSlot || h('div', { id: 'webhook-secret-once' })
  const state = h('p', { id: 'webhook-secret-state' },
    hook.secret_set ? badge('Set', 'ok') : badge('Not set', 'warn'), ' ',
    hook.secret_set
      ? 'Deliveries are checked with it. It is kept encrypted and never shown again.'
      : 'Every delivery is refused until a secret is set.')
  if (!ctx.canWrite) return [h('h3', {}, 'Signing secret'), state]
  const input = h('input', {
    type: 'password', id: 'webhook-secret', name: 'secret', autocomplete: 'new-password',
    spellcheck: 'false', 'aria-describedby': 'webhook-secret-hint'
  })
  const save = h('button', { type: 'submit', class: 'primary' }, 'Save the secret')
  const make = h('button', { type: 'button', id: 'webhook-generate', 'aria-describedby': 'webhook-generate-hint' }, 'Make one for me')
  const form = h('form', { id: 'webhook-secret-form', class: 'webhook-secret-form', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'webhook-secret' }, hook.secret_set ? 'Replace it with the provider’s secret' : 'The provider’s signing secret'),
      h('p', { class: 'hint', id: 'webhook-secret-hint' }, SECRET_HINTS[hook.scheme] || 'As the provider shows it.', ' From 16 to 500 characters.'),
      input),
    h('div', { class: 'actions' }, save, make),
    h('p', { class: 'hint', id: 'webhook-generate-hint' }, 'Only where the provider lets you choose the secret (GitHub does): one is made here and shown once, for you to paste at the provider.'))
  const errors = fieldErrors(form)
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    errors.clear()
    if (!input.value) {
      errors.show({ fieldErrors: { secret: 'Paste the provider’s secret first.' } }, 'The secret was not saved')
      return
    }
    setSecret(ctx, save, { secret: input.value }, errors)
  })
  make.addEventListener('click', async () => {
    errors.clear()
    if (hook.secret_set && !await confirmDialog({
      title: 'Replace the signing secret?',
      text: 'Deliveries signed with the current secret are refused from the moment a new one is made, until the provider has the new one.',
      confirm: 'Make a new secret',
      trigger: make
    })) return
    setSecret(ctx, make, { generate: true }, errors)
  })
  return [h('h3', {}, 'Signing secret'), state, onceSlot, form]
}

async function setSecret (ctx, trigger, body, errors) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  replace(el('webhook-notice'))
  let answer
  try {
    answer = await act({ method: 'PUT', path: `${ctx.base}/webhook/secret`, body })
  } catch (error) {
    if (!(error.status === 422 && errors.show(error, 'The secret was not saved'))) {
      failed(error, body.generate ? 'No secret was made.' : 'The secret was not saved.', trigger)
    }
    trigger.removeAttribute('aria-disabled')
    return
  }
  try {
    if (answer.secret) {
      replace(onceSlot)
      await shownAgain(ctx, 'A signing secret was made and saved.')
      secretOnce(onceSlot, {
        heading: 'The signing secret made for you',
        value: answer.secret,
        warning: 'Copy it now and paste it at the provider: it will not be shown again.'
      })
      announce('A signing secret was made. Copy it now: it will not be shown again.')
    } else {
      replace(onceSlot)
      await shownAgain(ctx, 'The signing secret was saved. Deliveries are checked with it from now on.')
      document.querySelector('#webhook-secret-form [type=submit]')?.focus()
    }
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

function stream (name) {
  return h('span', { class: 'mono' }, name)
}

function eventDoes (e) {
  const does = []
  if (e.carries_record && e.stream) does.push(h('li', {}, 'Updates the stream ', stream(e.stream), ' with the record it carries, at once'))
  if (e.pull) does.push(h('li', {}, 'Reads the stream ', stream(e.pull), ' again (what changed since the last read)'))
  if (does.length > 1) return h('ul', { class: 'plain-list' }, does)
  return does.length ? [...does[0].childNodes] : 'Taken; changes nothing'
}

function eventsPart (hook) {
  if (!hook.events.length) return [h('h3', {}, 'Events'), h('p', {}, 'The connector acts on no event: deliveries are checked and counted only.')]
  return [
    h('h3', {}, 'Events'),
    dataTable('The provider’s events and what each does', ['Event types', 'What it does'],
      hook.events.map((e) => h('tr', {},
        h('td', { 'data-label': 'Event types' }, h('span', { class: 'mono' }, e.types.join(', '))),
        h('td', { 'data-label': 'What it does' }, eventDoes(e)))))
  ]
}

function deliveriesPart (hook) {
  const refresh = h('button', { type: 'button', id: 'webhook-refresh', onclick: (e) => refreshDeliveries(e.currentTarget) }, 'Show the latest deliveries')
  const refusals = hook.recent_refusals || []
  return [
    h('h3', {}, 'Deliveries in the last 24 hours'),
    h('dl', { class: 'stats webhook-stats' },
      h('div', {}, h('dt', {}, 'Taken'), h('dd', {}, fmtNumber(hook.taken_24h))),
      h('div', {}, h('dt', {}, 'Refused'), h('dd', {}, fmtNumber(hook.refused_24h)))),
    h('div', { class: 'actions' }, refresh),
    h('h3', {}, 'Recent refusals'),
    refusals.length
      ? dataTable('The latest refused deliveries, newest first', ['When', 'Why', 'Detail'],
        refusals.map((r) => h('tr', {},
          h('td', { 'data-label': 'When' }, timeEl(r.at)),
          h('td', { 'data-label': 'Why' }, reasonWords(r.reason), h('div', { class: 'quiet' }, `answered HTTP ${r.status}`)),
          h('td', { 'data-label': 'Detail' }, h('span', { class: 'mono' }, r.detail || '—')))))
      : h('p', { class: 'webhook-none' }, 'None: no delivery to this install has been refused.')
  ]
}

async function refreshDeliveries (trigger) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  try {
    const hook = await api(`${current.base}/webhook`)
    replace(el('webhook-notice'))
    render(current, hook)
    announce(`In the last 24 hours: ${hook.taken_24h} taken, ${hook.refused_24h} refused.`)
    el('webhook-refresh')?.focus()
  } catch (error) {
    failed(error, 'The deliveries could not be loaded.', trigger)
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}
