// Settings: the signed-in person's email notifications (GET/PUT /api/v1/me/notifications): one
// switch, read from the API, saved, and read back so what the page says is what is stored.

import { act, api } from './api.js'
import { h, replace } from './dom.js'
import { sectionError } from './settings_ui.js'

const form = document.getElementById('notifications-form')
const box = document.getElementById('notify-email')
const state = document.getElementById('notifications-state')
const save = form.querySelector('[type=submit]')

function show ({ email }) {
  box.checked = email
  box.disabled = false
  save.disabled = false
  form.removeAttribute('aria-busy')
  state.textContent = email
    ? 'Now: you are emailed about alerts and disabled endpoints (as an admin).'
    : 'Now: you get no email about alerts or disabled endpoints.'
}

async function load () {
  try {
    show(await api('/api/v1/me/notifications'))
  } catch (error) {
    form.removeAttribute('aria-busy')
    sectionError('notifications-status', error, 'Your email notifications could not be read.')
  }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  sectionError('notifications-status', null)
  save.disabled = true
  try {
    const wanted = box.checked
    await act({ method: 'PUT', path: '/api/v1/me/notifications', body: { email: wanted }, label: 'Your email notifications were saved.' })
    const stored = await api('/api/v1/me/notifications')
    show(stored)
    replace(document.getElementById('notifications-status'), h('p', { class: 'notice ok' },
      stored.email ? 'Saved: you will be emailed.' : 'Saved: you will not be emailed.'))
  } catch (error) {
    sectionError('notifications-status', error, 'Your email notifications were not saved.')
  } finally {
    save.disabled = false
  }
})

load()
