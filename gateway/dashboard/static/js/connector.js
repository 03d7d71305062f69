// A connector's page: what it is (GET /api/v1/marketplace/connectors/{slug}): vendor, version,
// how far it is known to work (verification.js), auth, the scopes it asks for; its reference
// (connector_reference.js: settings, streams with their fields, actions, webhooks); this
// tenant's installs of it; the setup guide with progress kept per install (PUT
// /api/v1/integrations/{id}/setup-progress); and, for editors and admins, the install wizard:
// configure (a form from the config schema), review (with a notice for a connector written from
// documentation only), install (POST /api/v1/integrations) and watch it become active, or
// connect an OAuth account.

import { act, api } from './api.js'
import { announce, badge, categoryLabel, errorNotice, h, replace, STATUS_TONES } from './dom.js'
import { keepForm } from './drafts.js'
import { isQueued, QUEUED } from './offline_queue.js'
import { schemaForm } from './schema_form.js'
import { describedNotice, levelFacts } from './verification.js'
import { referenceSections } from './connector_reference.js'

const root = document.getElementById('connector')
const slug = root.dataset.slug
const canWrite = root.dataset.canWrite === 'true'
const wanted = new URLSearchParams(location.search).get('install')
const AUTH = { oauth2: 'OAuth 2.0 (you sign in at the vendor and consent)', api_key: 'API key', basic: 'Username and password', none: 'None' }
const POLL_MS = 500
const POLL_FOR_MS = 30000

let entry = null
const progress = new Map() // install id -> done step indices

const focusHeading = (el) => { el.setAttribute('tabindex', '-1'); el.focus() }

function section (id, title, ...body) {
  return h('section', { class: 'card', id, 'aria-labelledby': `${id}-heading` },
    h('h2', { id: `${id}-heading` }, title), ...body)
}

function facts () {
  const m = entry.manifest || {}
  return h('dl', { class: 'facts' },
    h('dt', {}, 'Vendor'), h('dd', {}, entry.vendor || 'Unknown'),
    h('dt', {}, 'Category'), h('dd', {}, categoryLabel(entry.category)),
    h('dt', {}, 'Version'), h('dd', {}, entry.version, entry.update_available ? [' ', badge('Update available', 'warn')] : null),
    levelFacts(entry),
    h('dt', {}, 'Sign-in'), h('dd', {}, AUTH[entry.auth_scheme] || entry.auth_scheme),
    h('dt', {}, 'Installs'), h('dd', {}, `${entry.installs} across all tenants`),
    /^https?:\/\//.test(entry.setup_guide_url || '') ? [h('dt', {}, 'Vendor guide'), h('dd', {}, h('a', { href: entry.setup_guide_url, rel: 'noopener' }, 'The vendor’s setup documentation'))] : null,
    m.description && m.description !== entry.description ? [h('dt', {}, 'About'), h('dd', {}, m.description)] : null)
}

function access () {
  const scopes = entry.available_scopes || []
  if (entry.auth_scheme !== 'oauth2') {
    return section('access', 'What it asks for',
      h('p', {}, entry.auth_scheme === 'none'
        ? 'No credentials: it reads what it is configured with.'
        : `Credentials you give when installing (${AUTH[entry.auth_scheme] || entry.auth_scheme}), stored encrypted and never shown again.`))
  }
  return section('access', 'What it asks for',
    h('p', {}, 'When you connect your account, the vendor asks you to allow these permissions (OAuth scopes):'),
    scopes.length ? h('ul', { class: 'scopes' }, scopes.map((s) => h('li', {}, h('code', {}, s)))) : h('p', {}, 'No particular scope.'))
}

function installsBox () {
  const mine = entry.tenant_installs || []
  if (!mine.length) return null
  return h('div', { class: 'notice info', id: 'installed-note' },
    h('p', {}, h('strong', {}, mine.length === 1 ? 'Installed for your tenant: ' : `Installed ${mine.length} times for your tenant: `)),
    h('ul', {}, mine.map((i) => h('li', {},
      h('a', { href: `/integrations/${i.id}` }, i.connector_name), ' ', badge(i.status, STATUS_TONES[i.status] || 'plain'),
      i.version ? ` version ${i.version}` : ''))))
}

// The setup guide; with an install, each step a checkbox kept on the server.
function setupGuide () {
  const steps = entry.setup_steps || []
  const mine = entry.tenant_installs || []
  const box = section('setup-guide', 'Setup guide')
  if (!mine.length) {
    box.append(h('ol', { class: 'steps-plain' }, steps.map((s) => h('li', {}, s))),
      h('p', { class: 'hint' }, 'Once it is installed you can tick the steps done here; your progress is kept with the install.'))
    return box
  }
  const chosen = mine.find((i) => i.id === wanted) || mine[0]
  const body = h('div', {})
  if (mine.length > 1) {
    const select = h('select', { id: 'progress-install', onchange: () => fillProgress(body, select.value) },
      mine.map((i) => h('option', { value: i.id, selected: i.id === chosen.id }, i.connector_name)))
    box.append(h('div', { class: 'field' }, h('label', { for: 'progress-install' }, 'Progress of'), select))
  }
  box.append(body)
  fillProgress(body, chosen.id)
  return box
}

async function fillProgress (body, installId) {
  const steps = entry.setup_steps || []
  replace(body, h('p', { class: 'loading' }, 'Loading your progress…'))
  try {
    const install = await api(`/api/v1/integrations/${installId}`)
    progress.set(installId, new Set(install.setup_done || []))
  } catch (error) {
    replace(body, errorNotice(error, { title: 'Your progress could not be loaded.' }))
    return
  }
  const done = progress.get(installId)
  const summary = h('p', { class: 'progress-summary', id: 'progress-summary', role: 'status' })
  const say = () => { summary.textContent = `${[...done].filter((i) => i < steps.length).length} of ${steps.length} steps done` }
  const list = h('ol', { class: 'checklist' }, steps.map((text, i) => {
    const id = `step-${i}`
    const box = h('input', {
      type: 'checkbox', id, checked: done.has(i), disabled: !canWrite,
      onchange: async () => {
        const before = new Set(done)
        if (box.checked) done.add(i); else done.delete(i)
        say()
        try {
          const answer = await act({
            method: 'PUT', path: `/api/v1/integrations/${installId}/setup-progress`,
            body: { done: [...done].sort((a, b) => a - b) },
            label: `Step ${i + 1} marked ${box.checked ? 'done' : 'not done'}.`
          })
          if (!isQueued(answer)) progress.set(installId, new Set(answer.setup_done)) // else kept offline, as ticked
        } catch (error) {
          done.clear(); for (const x of before) done.add(x)
          box.checked = done.has(i)
          say()
          body.append(errorNotice(error, { title: 'The step could not be saved.' }))
        }
      }
    })
    return h('li', {}, h('div', { class: 'check' }, box, h('label', { for: id }, text)))
  }))
  say()
  replace(body, summary, list, canWrite ? null : h('p', { class: 'hint' }, 'Only editors and admins can tick steps.'))
}

// ---- the install wizard ------------------------------------------------------------------

function wizard () {
  const oauth = entry.auth_scheme === 'oauth2'
  const names = ['Configure', 'Review', oauth ? 'Install and connect' : 'Install']
  const wrap = h('section', { class: 'card wizard', id: 'wizard', 'aria-labelledby': 'wizard-heading', hidden: true })
  const stepList = h('ol', { class: 'wizard-steps' }, names.map((n, i) => h('li', { dataset: { step: i + 1 } }, n)))
  const where = h('p', { class: 'wizard-where', id: 'wizard-where' })
  const panel = h('div', { class: 'wizard-panel' })
  wrap.append(h('h2', { id: 'wizard-heading' }, `Install ${entry.name}`), h('nav', { 'aria-label': 'Install steps' }, stepList), where, panel)

  // step 1's form lives for the whole wizard, so Back keeps what was typed (secrets too, in
  // this page only: never stored)
  const form = h('form', { id: 'install-form', 'data-draft': `install-${slug}`, novalidate: true })
  const nameField = h('div', { class: 'field' },
    h('label', { for: 'cfg-install-name' }, 'Name for this install'),
    h('p', { class: 'hint', id: 'cfg-install-name-hint' }, 'How your team sees it in the integrations list.'),
    h('input', { id: 'cfg-install-name', name: '__name', type: 'text', value: entry.name, 'aria-describedby': 'cfg-install-name-hint', autocomplete: 'off' }))
  const fieldsBox = h('div', {})
  const built = schemaForm(fieldsBox, entry.config_schema || {}, { prefix: 'cfg' })
  form.append(built.summary, nameField, fieldsBox,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Next: review'),
      h('button', { type: 'button', onclick: close }, 'Cancel')))
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    built.clearErrors()
    const missing = built.missing()
    if (missing.length) return built.showErrors(missing, { title: 'Fill these in to continue' })
    show(2)
  })
  keepForm(form)

  function setStep (n) {
    where.textContent = `Step ${n} of 3`
    stepList.querySelectorAll('li').forEach((li, i) => {
      if (i + 1 === n) li.setAttribute('aria-current', 'step'); else li.removeAttribute('aria-current')
      li.classList.toggle('done', i + 1 < n)
    })
  }

  function heading (text) { return h('h3', { class: 'step-heading', tabindex: '-1' }, text) }

  function show (n, { errors } = {}) {
    setStep(n)
    if (n === 1) {
      const head = heading('Configure')
      replace(panel, head, h('p', {}, 'Settings marked required must be filled in. Secret fields are sent once, stored encrypted and never shown again.'), form)
      if (errors) built.showErrors(errors, { title: 'The install was refused' })
      else { built.clearErrors(); head.focus() }
      return
    }
    if (n === 2) {
      const head = heading('Review')
      const name = form.elements.__name.value.trim() || entry.name
      const rows = built.describe()
      const notice = describedNotice(entry) // before the install is confirmed
      replace(panel, head,
        h('p', {}, `This installs ${entry.name} ${entry.version} by ${entry.vendor || 'an unknown vendor'} for your tenant as “${name}”.`),
        rows.length ? h('dl', { class: 'facts review' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])) : h('p', {}, 'It has no settings.'),
        oauth
          ? [h('p', {}, 'After installing, you connect your account at the vendor, who asks you to allow:'),
              h('ul', { class: 'scopes' }, (entry.available_scopes || []).map((s) => h('li', {}, h('code', {}, s))))]
          : null,
        h('p', {}, 'It starts as pending and is checked at once; it becomes active when the check passes.'),
        notice,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'primary', id: 'wizard-install', onclick: install, 'aria-describedby': notice ? notice.id : null }, oauth ? 'Install, then connect' : 'Install'),
          h('button', { type: 'button', onclick: () => show(1) }, 'Back: change settings')))
      head.focus()
      return
    }
    const head = heading(names[2])
    replace(panel, head, h('p', { class: 'loading' }, 'Installing…'))
    head.focus()
  }

  async function install () {
    show(3)
    const { config, credentials } = built.read()
    const name = form.elements.__name.value.trim()
    let created
    try {
      created = await act({
        method: 'POST', path: '/api/v1/integrations',
        body: { connector: slug, connector_name: name || null, config, credentials },
        label: `${entry.name} was installed; checking it now.`
      })
    } catch (error) {
      if (error.status === 422 && error.problem.errors) {
        announce('The install was refused: fix the settings shown.')
        return show(1, { errors: error.problem.errors })
      }
      const head = panel.querySelector('.step-heading')
      replace(panel, head, errorNotice(error, { title: 'It was not installed.' }),
        h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => show(2) }, 'Back to the review')))
      head.focus()
      return
    }
    built.clearSecrets()
    if (isQueued(created)) { // an install without secrets, kept offline: no install to watch yet
      const head = panel.querySelector('.step-heading')
      replace(panel, head, h('p', { class: 'notice info', role: 'status' }, QUEUED))
      head.focus()
      return
    }
    watch(created)
  }

  async function watch (created) {
    const head = panel.querySelector('.step-heading')
    const state = h('p', { class: 'install-state', id: 'install-state', role: 'status' })
    const links = h('div', { class: 'actions' },
      h('a', { class: 'button', href: `/integrations/${created.id}` }, 'Open the install'),
      h('a', { class: 'button', href: `/marketplace/${encodeURIComponent(slug)}?install=${created.id}#setup-guide` }, 'Follow the setup guide'))
    // the server's own words on how far it is known to work, when it has any
    const notice = created.notice ? h('p', { class: 'notice warn', id: 'install-notice' }, created.notice) : null
    replace(panel, head, state, notice, links)
    const say = (item) => {
      replace(state, badge(item.status, STATUS_TONES[item.status] || 'plain'), ' ',
        item.status === 'active' ? 'It is installed and its first check passed.' : item.status_reason || item.last_error || '')
    }
    say(created)
    const deadline = Date.now() + POLL_FOR_MS
    let item = created
    while (!['active', 'error', 'disabled', 'update_required'].includes(item.status) && Date.now() < deadline) {
      if (oauth && item.status === 'pending') break // waits for the account: connect below
      await new Promise((resolve) => setTimeout(resolve, POLL_MS))
      try { item = await api(`/api/v1/integrations/${created.id}`) } catch (_) { continue }
      say(item)
    }
    if (item.status === 'active') announce(`${entry.name} is active.`)
    else if (item.status === 'error') announce(`${entry.name} was installed but its check failed: ${item.last_error || item.status_reason || ''}`)
    if (oauth && item.status === 'pending') {
      links.prepend(h('button', {
        type: 'button', class: 'primary', id: 'wizard-connect',
        onclick: async (e) => {
          e.currentTarget.disabled = true
          try {
            const answer = await act({ method: 'POST', path: `/api/v1/integrations/${created.id}/oauth/connect`, body: { return_to: `/integrations/${created.id}` } })
            location.assign(answer.authorization_url)
          } catch (error) {
            e.currentTarget.disabled = false
            panel.append(errorNotice(error, { title: 'The connect could not start.' }))
          }
        }
      }, `Connect your ${entry.name} account`))
      announce(`${entry.name} is installed. Connect your account to finish.`)
    }
  }

  let opener = null
  function open (trigger) {
    opener = trigger
    wrap.hidden = false
    trigger.setAttribute('aria-expanded', 'true')
    show(1)
  }
  function close () {
    wrap.hidden = true
    opener?.setAttribute('aria-expanded', 'false')
    opener?.focus()
  }
  return { wrap, open }
}

async function load () {
  try {
    entry = await api(`/api/v1/marketplace/connectors/${encodeURIComponent(slug)}`)
  } catch (error) {
    replace(root, h('h1', {}, error.status === 404 ? 'Connector not found' : 'The connector could not be loaded'),
      errorNotice(error, { title: error.status === 404 ? 'No such connector in the catalog.' : undefined }),
      h('p', {}, h('a', { href: '/marketplace' }, 'Back to the marketplace')))
    return
  }
  document.title = `${entry.name} · Marketplace · SEED-OS`
  document.getElementById('crumb').textContent = entry.name
  const mine = entry.tenant_installs || []
  const installable = entry.allow_multiple || !mine.length
  const w = canWrite && installable ? wizard() : null
  const installButton = w
    ? h('button', { type: 'button', class: 'primary', id: 'open-wizard', 'aria-controls': 'wizard', 'aria-expanded': 'false', onclick: (e) => w.open(e.currentTarget) },
        mine.length ? `Install ${entry.name} again` : `Install ${entry.name}`)
    : null
  const why = !canWrite
    ? h('p', { class: 'hint' }, 'Editors and admins can install connectors: ask one of them.')
    : !installable ? h('p', { class: 'hint' }, 'It allows one install per tenant, and yours has it.') : null
  replace(root,
    h('div', { class: 'page-head' },
      h('div', {}, h('h1', {}, entry.name), h('p', {}, entry.description || 'No description.')),
      h('div', { class: 'actions' }, installButton, why)),
    installsBox(),
    w ? w.wrap : null,
    h('div', { class: 'cols' }, section('about', 'About', facts()), access()),
    referenceSections(slug),
    setupGuide())
  if (location.hash === '#setup-guide') document.getElementById('setup-guide-heading') && focusHeading(document.getElementById('setup-guide-heading'))
}

load()
