// One integration: its status, circuit and actions (check now, enable / disable, connect for
// OAuth, uninstall), the config form from its connector's JSON Schema, sync status, run
// history, the provider's webhooks, dead letters, calls over 24 hours, the upgrade preview and
// its audit entries.
// Every call is the public REST API's; changes go through act().

import { act, api, eachItem } from './api.js'
import { announce, badge, confirmDialog, errorNotice, h, replace, STATUS_TONES, timeEl } from './dom.js'
import { keepForm } from './drafts.js'
import { fields, schemaForm } from './schema_form.js'
import { loadSync } from './integration_sync.js'
import { loadAudit, loadLatency, loadUpgrade } from './integration_more.js'
import { loadActions } from './integration_actions.js'
import { loadWebhooks, reloadWebhooks } from './integration_webhooks.js'
import { isQueued, knownAs, QUEUED } from './offline_queue.js'

const root = document.getElementById('integration')
const id = root.dataset.id
const base = `/api/v1/integrations/${encodeURIComponent(id)}` // one path segment, whatever the URL held
const role = document.body.dataset.role
const canWrite = role === 'editor' || role === 'admin'
const title = document.getElementById('title')
const summary = document.getElementById('summary')
const headActions = document.getElementById('head-actions')
const notice = document.getElementById('page-notice')
let install = null
let etag = null // the ETag of the settings the person sees: a change is made against it (If-Match)
let connector = { schema: {}, scheme: null, slug: null }

const TONES = { ...STATUS_TONES, update_required: 'warn' }
const words = (s) => String(s).replaceAll('_', ' ')

function circuitFacts (circuit) {
  if (!circuit || circuit.state === 'closed') return [badge('closed', 'ok'), ' calls go through']
  const open = circuit.state === 'open'
  return [
    badge(circuit.state.replace('_', '-'), open ? 'bad' : 'warn'),
    open ? ` after ${circuit.consecutive_failures} failures in a row: calls are refused` : ' one probe call is let through',
    circuit.probe_after ? [' until ', timeEl(circuit.probe_after)] : null,
    circuit.last_error ? h('div', { class: 'mono' }, circuit.last_error) : null
  ]
}

function fact (term, ...value) {
  return [h('dt', {}, term), h('dd', {}, ...value)]
}

function renderSummary () {
  const i = install
  title.textContent = i.connector_name
  document.title = `${i.connector_name} · SEED-OS`
  document.getElementById('crumb').textContent = i.connector_name
  replace(document.getElementById('subtitle'), `${i.service_name}${i.version ? ` version ${i.version}` : ''}`)
  replace(summary,
    h('h2', { id: 'summary-heading' }, 'Status'),
    h('dl', { class: 'facts' },
      fact('Status', badge(words(i.status), TONES[i.status] || 'plain'), i.status_reason ? ` ${i.status_reason}` : ''),
      i.last_error ? fact('Last error', h('span', { class: 'mono' }, i.last_error)) : null,
      fact('Circuit', ...circuitFacts(i.circuit)),
      fact('Connector', connector.slug ? h('a', { href: `/marketplace/${connector.slug}` }, i.service_name) : i.service_name),
      fact('Version', i.version || '—'),
      fact('Last sync', timeEl(i.last_sync_at)),
      fact('Installed', timeEl(i.created_at))))
  renderActions()
}

// A change kept on this device to be sent later: said instead of its result
function queuedNotice () {
  replace(notice, h('p', { class: 'notice info', role: 'status' }, QUEUED))
}

function button (label, onclick, cls) {
  return h('button', { type: 'button', class: cls || null, onclick }, label)
}

function renderActions () {
  const records = h('a', { class: 'button', href: `/integrations/${id}/records` }, 'Browse records')
  if (!canWrite) { replace(headActions, records); return }
  const disabled = install.status === 'disabled'
  replace(headActions,
    records,
    connector.scheme === 'oauth2'
      ? button(install.status_reason && install.status_reason.startsWith('waiting for an account') ? 'Connect account' : 'Reconnect account', connect)
      : null,
    button('Check now', check),
    disabled ? button('Enable', toggle('enable')) : button('Disable', toggle('disable')),
    button('Uninstall', uninstall, 'danger'))
}

async function run (trigger, what, fn) {
  trigger.setAttribute('aria-disabled', 'true')
  replace(notice)
  try {
    await fn()
  } catch (error) {
    replace(notice, errorNotice(error, { title: `Could not ${what}.` }))
    announce(`Could not ${what}: ${error.message}`)
  } finally {
    trigger.removeAttribute('aria-disabled')
  }
}

// Actions re-render the toolbar: focus goes back to the button that is there now
function refocus (label) {
  const again = [...headActions.querySelectorAll('button')].find((b) => b.textContent === label)
  ;(again || title).focus()
}

function check (event) {
  return run(event.currentTarget, 'check the connector', async () => {
    const answer = await act({ method: 'POST', path: `${base}/check` })
    if (isQueued(answer)) { queuedNotice(); return }
    install = answer
    renderSummary()
    const said = `Checked: ${words(install.status)}${install.status_reason ? `, ${install.status_reason}` : ''}.`
    replace(notice, h('p', { class: `notice ${install.status === 'active' ? 'ok' : 'warn'}` }, said))
    announce(said)
    refocus('Check now')
  })
}

function toggle (which) {
  return (event) => run(event.currentTarget, which, async () => {
    const answer = await act({ method: 'POST', path: `${base}/${which}` })
    // kept offline: shown as it will be, so the next change can be made
    install = isQueued(answer)
      ? { ...install, status: which === 'disable' ? 'disabled' : 'pending', status_reason: '(saved on this device; sent when the connection returns)' }
      : answer
    renderSummary()
    if (isQueued(answer)) { queuedNotice(); refocus(which === 'disable' ? 'Enable' : 'Disable'); return }
    const said = which === 'disable' ? 'Disabled: the connector is no longer called.' : 'Enabled: the connector is checked now.'
    replace(notice, h('p', { class: 'notice ok' }, said))
    announce(said)
    refocus(which === 'disable' ? 'Enable' : 'Disable')
  })
}

function connect (event) {
  return run(event.currentTarget, 'start connecting the account', async () => {
    const answer = await act({ method: 'POST', path: `${base}/oauth/connect`, body: { return_to: location.pathname } })
    location.assign(answer.authorization_url)
  })
}

function uninstall (event) {
  const trigger = event.currentTarget
  return run(trigger, 'uninstall', async () => {
    const ok = await confirmDialog({
      title: `Uninstall ${install.connector_name}?`,
      text: `${install.connector_name} stops syncing, and its settings, secrets and synced records are erased. This cannot be undone.`,
      confirm: `Uninstall ${install.connector_name}`,
      trigger
    })
    if (!ok) return
    const answer = await act({ method: 'DELETE', path: base })
    if (isQueued(answer)) { queuedNotice(); return }
    location.assign('/')
  })
}

// the config form: plain fields through PATCH, typed secrets through PUT .../credentials
async function renderSettings () {
  const body = document.getElementById('settings-body')
  const schema = connector.schema
  if (!Object.keys(schema.properties || {}).length) {
    replace(body, h('p', {}, 'This connector has no settings.'))
    return
  }
  const { fields_set: fieldsSet } = await api(`${base}/credentials`)
  if (!canWrite) {
    replace(body, h('dl', { class: 'facts' }, fields(schema).map(({ name, prop, secret }) =>
      fact(prop.title || name, secret
        ? (fieldsSet.includes(name) ? badge('set', 'ok') : badge('not set'))
        : (install.config[name] === undefined ? '—' : h('span', { class: 'mono' }, String(JSON.stringify(install.config[name])).replace(/^"|"$/g, '')))))))
    return
  }
  const fieldsBox = h('div', {})
  const form = h('form', { id: 'settings-form', novalidate: true, 'data-draft': 'settings' }, fieldsBox,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Save settings')))
  replace(body, form)
  const known = new Set(Object.keys(schema.properties))
  const keep = Object.fromEntries(Object.entries(install.config).filter(([k]) => !known.has(k)))
  const built = schemaForm(fieldsBox, schema, { values: install.config, fieldsSet })
  keepForm(form)
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const submit = form.querySelector('button[type=submit]')
    if (submit.getAttribute('aria-disabled') === 'true') return
    submit.setAttribute('aria-disabled', 'true')
    built.clearErrors()
    const { config, credentials } = built.read({ keep })
    const problems = []
    let saved = false
    let kept = false // the config change waits on this device
    // one of the two saves: a 422's errors are kept for the form, anything else stops the save
    const attempt = async (save) => {
      try {
        await save()
        saved = true
      } catch (error) {
        if (error.status !== 422) throw error
        problems.push(...(error.problem.errors || [{ message: error.message }]))
      }
    }
    try {
      if (Object.keys(credentials).length) {
        await attempt(async () => {
          const answer = await act({ method: 'PUT', path: `${base}/credentials`, body: { credentials } })
          built.clearSecrets()
          fieldsSet.splice(0, fieldsSet.length, ...answer.fields_set)
        })
      }
      // only secrets typed and the rest as it was: no config change (and no audit entry) to make
      const same = Object.keys(credentials).length && canonical(config) === canonical(install.config)
      if (!same) {
        await attempt(async () => {
          const answer = await act({ method: 'PATCH', path: base, body: { config }, ifMatch: etag })
          if (isQueued(answer)) kept = true
          else { install = answer; etag = answer.etag || etag }
        })
      }
      if (problems.length) {
        built.showErrors(problems, { title: saved ? 'Some settings were not saved' : 'The settings were not saved' })
        announce('The settings have problems: see the list.')
        if (saved) built.setSecretStates(fieldsSet)
        return
      }
      if (kept) { queuedNotice(); return }
      renderSummary()
      built.setSecretStates(fieldsSet)
      replace(notice, h('p', { class: 'notice ok', role: 'status' }, 'Settings saved. The connector is checked with them now.'))
      announce('Settings saved.')
    } catch (error) {
      replace(notice, errorNotice(error, { title: 'The settings were not saved.' }))
      notice.querySelector('[role=alert]')?.setAttribute('tabindex', '-1')
      notice.querySelector('[role=alert]')?.focus()
    } finally {
      submit.removeAttribute('aria-disabled')
    }
  })
}

const canonical = (value) => JSON.stringify(value, (_, v) =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v)

// The connector's schema and auth scheme: of the version the install runs (the catalog entry's
// versions), found through the tenant's installed catalog entries.
async function loadConnector () {
  let entry = null
  for await (const e of eachItem('/api/v1/marketplace/connectors', { query: { installed: true } })) {
    if (e.id === install.marketplace_connector_id) { entry = e; break }
  }
  if (!entry) return
  let manifest = null
  if (install.version) {
    try {
      manifest = (await api(`/api/v1/marketplace/connectors/${entry.slug}/versions/${encodeURIComponent(install.version)}`)).manifest
    } catch (_) { manifest = null }
  }
  if (!manifest) {
    const detail = await api(`/api/v1/marketplace/connectors/${entry.slug}`)
    manifest = { ...detail.manifest, config_schema: detail.config_schema }
  }
  connector = {
    slug: entry.slug, schema: manifest.config_schema || {}, scheme: manifest.auth?.scheme || entry.auth_scheme,
    actions: Array.isArray(manifest.actions) ? manifest.actions : []
  }
}

// after an upgrade the form is the new version's
async function upgraded (next) {
  install = next
  etag = next.etag || etag
  await section(notice, 'connector', loadConnector)
  renderSummary()
  await section(document.getElementById('settings-body'), 'settings', renderSettings)
  await section(document.getElementById('webhooks-body'), 'webhooks', reloadWebhooks)
}

function notFound () {
  document.getElementById('details').remove()
  title.textContent = 'Integration not found'
  document.title = 'Integration not found · SEED-OS'
  document.getElementById('crumb').textContent = 'Not found'
  replace(summary,
    h('h2', { id: 'summary-heading' }, 'Nothing here'),
    h('div', { class: 'empty' },
      h('p', {}, 'There is no integration with this address in your tenant. It may have been uninstalled, or the link may be wrong.'),
      h('a', { class: 'button primary', href: '/' }, 'See all integrations')))
}

async function section (el, what, fn) {
  try {
    await fn()
  } catch (error) {
    replace(el, errorNotice(error, { title: `The ${what} could not be loaded.` }))
  }
}

// the install and the ETag of its settings (the header; the answer's etag field says the same)
async function loadInstall () {
  const answer = await api(base, { raw: true })
  install = await answer.json()
  etag = answer.headers.get('etag') || install.etag || null
  knownAs(id, install.connector_name)
}

try {
  await loadInstall()
} catch (error) {
  if (error.status === 404 || error.status === 422) notFound()
  else {
    document.getElementById('details').remove()
    replace(summary, errorNotice(error, { title: 'The integration could not be loaded.' }))
  }
}
if (install) {
  await section(notice, 'connector', loadConnector)
  renderSummary()
  document.getElementById('details').hidden = false
  const ctx = { base, id, canWrite, install: () => install }
  // changes made offline were applied: show the install as it is now
  addEventListener('seedos:offline-sent', async () => {
    try { await loadInstall(); renderSummary() } catch (_) { /* the page keeps what it shows */ }
  })
  await Promise.all([
    section(document.getElementById('actions-body'), 'actions', () => loadActions(ctx, connector.actions)),
    section(document.getElementById('settings-body'), 'settings', renderSettings),
    section(document.getElementById('sync-body'), 'sync status', () => loadSync(ctx)),
    section(document.getElementById('webhooks-body'), 'webhooks', () => loadWebhooks(ctx)),
    section(document.getElementById('latency-body'), 'call history', () => loadLatency(ctx)),
    section(document.getElementById('upgrade-body'), 'version details', () => loadUpgrade(ctx, upgraded)),
    document.getElementById('audit') ? section(document.getElementById('audit-body'), 'audit entries', () => loadAudit(ctx)) : null
  ])
}
