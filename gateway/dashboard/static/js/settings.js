// Settings: the tenant profile recommendations read (GET/PATCH /api/v1/tenant), the person's
// own sessions (GET/DELETE /api/v1/me/sessions), and who may use the tenant (settings_access.js).

import { act, api } from './api.js'
import { badge, emptyState, h, replace, timeEl } from './dom.js'
import { keepForm } from './drafts.js'
import { loadAccess, removes } from './settings_access.js'
import { fieldErrors, sectionError } from './settings_ui.js'

// ---- tenant profile
const profile = document.getElementById('profile-form')
const canManage = document.body.dataset.role === 'admin'
const profileErrors = fieldErrors(profile)

function fill (tenant) {
  profile.elements.name.value = tenant.name || ''
  profile.elements.industry.value = tenant.industry || ''
  profile.elements.size.value = tenant.size ?? ''
  profile.elements.description.value = tenant.description || ''
}

function changes () {
  const text = (name) => profile.elements[name].value.trim()
  const size = text('size')
  return {
    name: text('name'),
    industry: text('industry') || null,
    // what the person typed goes as typed: the API says what is wrong with it
    size: size === '' ? null : (/^-?\d+$/.test(size) ? Number(size) : size),
    description: text('description')
  }
}

async function loadProfile () {
  try {
    fill(await api('/api/v1/tenant'))
    profile.removeAttribute('aria-busy')
    if (canManage) keepForm(profile) // unsaved input comes back after signing in again
  } catch (error) {
    sectionError('profile-status', error, 'The profile could not be loaded.')
  }
}

profile.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!canManage) return
  profileErrors.clear()
  sectionError('profile-status', null)
  const button = profile.querySelector('[type=submit]')
  button.disabled = true
  try {
    fill(await act({ method: 'PATCH', path: '/api/v1/tenant', body: changes(), label: 'The profile was saved.' }))
    document.getElementById('restored-note').hidden = true
    replace(document.getElementById('profile-status'), h('p', { class: 'notice ok' }, 'The profile was saved.'))
  } catch (error) {
    if (!(error.status === 422 && profileErrors.show(error, 'The profile was not saved'))) {
      sectionError('profile-status', error, 'The profile was not saved.')
    }
  } finally {
    button.disabled = false
  }
})

// ---- sessions
const sessionsList = document.getElementById('sessions-list')

function device (agent) {
  if (!agent) return 'Unknown device'
  const browser = /Edg\//.test(agent) ? 'Edge' : /Firefox\//.test(agent) ? 'Firefox'
    : /Chrom(e|ium)\//.test(agent) ? 'Chrome' : /Safari\//.test(agent) ? 'Safari' : null
  const system = /Android/.test(agent) ? 'Android' : /iPhone|iPad/.test(agent) ? 'iOS'
    : /Windows/.test(agent) ? 'Windows' : /Mac OS X/.test(agent) ? 'macOS' : /Linux/.test(agent) ? 'Linux' : null
  return browser || system ? [browser, system].filter(Boolean).join(' on ') : agent.slice(0, 60)
}

async function loadSessions () {
  try {
    const { items } = await api('/api/v1/me/sessions')
    if (!items.length) {
      replace(sessionsList, emptyState('No sessions', 'You are signed in with an API key or token here.', null, { level: 3 }))
      return
    }
    replace(sessionsList, h('ul', { class: 'session-list' }, items.map(sessionItem)))
  } catch (error) {
    replace(sessionsList)
    sectionError('sessions-status', error, 'Your sessions could not be loaded.')
  }
}

function sessionItem (s) {
  const name = device(s.user_agent)
  const end = s.current
    ? badge('This device', 'ok')
    : removes(h('button', { type: 'button', class: 'danger' }, 'End session', h('span', { class: 'visually-hidden' }, ` on ${name}, started ${new Date(s.created_at).toLocaleString()}`)), {
      title: `End the session on ${name}?`,
      text: 'That browser is signed out at once; anything open there stops working.',
      confirm: 'End session',
      section: 'sessions',
      path: `/api/v1/me/sessions/${s.id}`,
      label: `The session on ${name} was ended.`,
      failed: 'The session was not ended.',
      reload: loadSessions
    })
  return h('li', { class: 'session', dataset: { id: s.id } },
    h('div', {},
      h('h3', {}, name),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Signed in'), h('dd', {}, timeEl(s.created_at), ` with ${s.provider}`),
        h('dt', {}, 'Last active'), h('dd', {}, timeEl(s.last_seen_at)),
        h('dt', {}, 'Address'), h('dd', {}, s.client_address || 'unknown'))),
    h('div', { class: 'session-end' }, end))
}

await Promise.all([loadProfile(), loadSessions(), loadAccess()])
