// Settings: who may use the tenant. API keys (GET/POST/DELETE /api/v1/api-keys), members
// (GET/PATCH/DELETE /api/v1/members) and invitations (GET/POST/DELETE /api/v1/invitations).

import { act, allPages, api } from './api.js'
import { announce, badge, confirmDialog, dataTable, emptyState, h, replace, timeEl } from './dom.js'
import { fieldErrors, ROLE_LABELS, secretOnce, sectionError } from './settings_ui.js'

const every = (path, query) => allPages(path, { query, limit: 200, max: 2000 })

// A button (here and for sessions) that removes a thing once confirmed (its dialog):
// DELETE `path`, reload and focus section `section`; any trouble said in its `${section}-status`.
export function removes (button, { section, path, label, failed, reload, ...dialog }) {
  button.addEventListener('click', async () => {
    if (!await confirmDialog({ ...dialog, trigger: button })) return
    try {
      await act({ method: 'DELETE', path, label })
      await reload()
      document.getElementById(section).focus()
    } catch (error) {
      sectionError(`${section}-status`, error, failed)
    }
  })
  return button
}

// A form that creates something shown once (shown(created): secretOnce's box and what is said):
// field errors at their fields, anything else in words for `section`.
function creating (form, { section, path, body, reload, slot, shown, failed }) {
  const errors = fieldErrors(form)
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    errors.clear()
    sectionError(`${section}-status`, null)
    const button = form.querySelector('[type=submit]')
    button.disabled = true
    try {
      const created = await act({ method: 'POST', path, body: body() })
      form.reset()
      await reload()
      const box = shown(created)
      secretOnce(document.getElementById(slot), box)
      announce(box.said)
    } catch (error) {
      if (!(error.status === 422 && errors.show(error, failed.replace(/\.$/, '')))) sectionError(`${section}-status`, error, failed)
    } finally {
      button.disabled = false
    }
  })
}

// ---- API keys
const keysList = document.getElementById('api-keys-list')
const keyForm = document.getElementById('key-form')

async function loadKeys () {
  try {
    const keys = await every('/api/v1/api-keys')
    if (!keys.length) {
      replace(keysList, emptyState('No API keys', 'Create a key below to let a script or another system use the API.', null, { level: 3 }))
      return
    }
    replace(keysList, dataTable('API keys', ['Name', 'Role', 'Prefix', 'Created', 'Last used', 'Actions'], keys.map(keyRow)))
  } catch (error) {
    replace(keysList)
    sectionError('api-keys-status', error, 'The API keys could not be loaded.')
  }
}

function keyRow (key) {
  const revoke = removes(h('button', { type: 'button', class: 'danger' }, 'Revoke', h('span', { class: 'visually-hidden' }, ` key “${key.name}”`)), {
    title: `Revoke the key “${key.name}”?`,
    text: 'Anything using it is refused from now on. This cannot be undone.',
    confirm: 'Revoke key',
    section: 'api-keys',
    path: `/api/v1/api-keys/${key.id}`,
    label: `The key “${key.name}” was revoked.`,
    failed: `The key “${key.name}” was not revoked.`,
    reload: loadKeys
  })
  return h('tr', { dataset: { id: key.id } },
    h('td', { 'data-label': 'Name' }, key.name),
    h('td', { 'data-label': 'Role' }, ROLE_LABELS[key.role] || key.role),
    h('td', { 'data-label': 'Prefix', class: 'mono' }, key.prefix),
    h('td', { 'data-label': 'Created' }, timeEl(key.created_at)),
    h('td', { 'data-label': 'Last used' }, timeEl(key.last_used_at)),
    h('td', { 'data-label': 'Actions' }, revoke))
}

if (keyForm) {
  creating(keyForm, {
    section: 'api-keys', path: '/api/v1/api-keys', reload: loadKeys, slot: 'new-key', failed: 'The key was not created.',
    body: () => ({ name: keyForm.elements.name.value.trim(), role: keyForm.elements.role.value }),
    shown: (created) => ({
      heading: `Your new key “${created.name}”`,
      value: created.key,
      warning: 'Copy it now and keep it somewhere safe: it will not be shown again. Send it as "Authorization: Bearer <key>".',
      said: `The key “${created.name}” was created. Copy it now: it will not be shown again.`
    })
  })
}

// ---- members
const membersList = document.getElementById('members-list')
const canManage = document.body.dataset.role === 'admin'
let myUserId = null

async function loadMembers () {
  try {
    if (myUserId === null) myUserId = (await api('/api/v1/me')).user?.id || ''
    const members = await every('/api/v1/members')
    replace(membersList, dataTable('Members', ['Person', 'Role', 'Joined', 'Last sign-in'].concat(canManage ? ['Actions'] : []),
      members.map(memberRow)))
  } catch (error) {
    replace(membersList)
    sectionError('members-status', error, 'The members could not be loaded.')
  }
}

function memberRow (m) {
  const who = m.name || m.email || m.user_id
  const me = m.user_id === myUserId
  const cells = [
    h('td', { 'data-label': 'Person' }, h('div', {}, who, me ? [' ', badge('you', 'info')] : null),
      m.email && m.email !== who ? h('div', { class: 'quiet' }, m.email) : null),
    h('td', { 'data-label': 'Role' }, ROLE_LABELS[m.role] || m.role),
    h('td', { 'data-label': 'Joined' }, timeEl(m.joined_at)),
    h('td', { 'data-label': 'Last sign-in' }, timeEl(m.last_sign_in_at))
  ]
  if (canManage) cells.push(h('td', { 'data-label': 'Actions' }, me ? h('span', { class: 'quiet' }, 'Your own role') : memberActions(m, who)))
  return h('tr', { dataset: { id: m.user_id } }, cells)
}

function memberActions (m, who) {
  const id = `role-${m.user_id}`
  const select = h('select', { id, name: 'role' },
    ['viewer', 'editor', 'admin'].map((r) => h('option', { value: r, selected: r === m.role }, ROLE_LABELS[r])))
  const change = h('button', { type: 'submit' }, 'Change role', h('span', { class: 'visually-hidden' }, ` of ${who}`))
  const form = h('form', { class: 'row-form' },
    h('label', { for: id, class: 'visually-hidden' }, `Role of ${who}`), select, change)
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    sectionError('members-status', null)
    try {
      const changed = await act({ method: 'PATCH', path: `/api/v1/members/${m.user_id}`, body: { role: select.value } })
      const revoked = changed.revoked_api_keys ? ` ${changed.revoked_api_keys} of their API keys granting more were revoked.` : ''
      announce(`${who} is now ${ROLE_LABELS[changed.role].toLowerCase()}.${revoked}`)
      await loadMembers()
      document.getElementById(id)?.focus()
    } catch (error) {
      sectionError('members-status', error, `The role of ${who} was not changed.`)
    }
  })
  const remove = removes(h('button', { type: 'button', class: 'danger' }, 'Remove', h('span', { class: 'visually-hidden' }, ` ${who}`)), {
    title: `Remove ${who}?`,
    text: `${who} is signed out of this tenant at once, and the API keys they made are revoked.`,
    confirm: 'Remove member',
    section: 'members',
    path: `/api/v1/members/${m.user_id}`,
    label: `${who} was removed.`,
    failed: `${who} was not removed.`,
    reload: loadMembers
  })
  return h('div', { class: 'actions' }, form, remove)
}

// ---- invitations
const invitationsList = document.getElementById('invitations-list')
const inviteForm = document.getElementById('invite-form')

async function loadInvitations () {
  try {
    const pending = await every('/api/v1/invitations', { status: 'pending' })
    if (!pending.length) {
      replace(invitationsList, h('p', { class: 'quiet' }, 'No pending invitations. Invite someone with the form above.'))
      return
    }
    replace(invitationsList, dataTable('Pending invitations', ['Email', 'Role', 'Invited', 'Expires', 'Actions'], pending.map(invitationRow)))
  } catch (error) {
    replace(invitationsList)
    sectionError('invitations-status', error, 'The invitations could not be loaded.')
  }
}

function invitationRow (inv) {
  const revoke = removes(h('button', { type: 'button', class: 'danger' }, 'Revoke', h('span', { class: 'visually-hidden' }, ` the invitation of ${inv.email}`)), {
    title: `Revoke the invitation of ${inv.email}?`,
    text: 'Its link stops working. You can invite the address again later.',
    confirm: 'Revoke invitation',
    section: 'invitations',
    path: `/api/v1/invitations/${inv.id}`,
    label: `The invitation of ${inv.email} was revoked.`,
    failed: 'The invitation was not revoked.',
    reload: loadInvitations
  })
  return h('tr', { dataset: { id: inv.id } },
    h('td', { 'data-label': 'Email' }, inv.email),
    h('td', { 'data-label': 'Role' }, ROLE_LABELS[inv.role] || inv.role),
    h('td', { 'data-label': 'Invited' }, timeEl(inv.created_at)),
    h('td', { 'data-label': 'Expires' }, timeEl(inv.expires_at)),
    h('td', { 'data-label': 'Actions' }, revoke))
}

if (inviteForm) {
  creating(inviteForm, {
    section: 'invitations', path: '/api/v1/invitations', reload: loadInvitations, slot: 'new-invitation', failed: 'The invitation was not sent.',
    body: () => ({ email: inviteForm.elements.email.value.trim(), role: inviteForm.elements.role.value }),
    shown: (created) => ({
      heading: `Invitation link for ${created.email}`,
      value: created.link,
      warning: created.emailed
        ? 'It was emailed too. The link is shown only now and works once.'
        : 'No email was sent: send this link yourself. It is shown only now and works once.',
      said: `${created.email} was invited as ${ROLE_LABELS[created.role].toLowerCase()}.`
    })
  })
}

export function loadAccess () {
  return Promise.all([keyForm ? loadKeys() : null, loadMembers(), inviteForm ? loadInvitations() : null])
}
