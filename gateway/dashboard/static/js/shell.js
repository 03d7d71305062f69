// What every page does: the theme switch, the tenant switcher, the session's time limit
// (stated in the footer, warned of two minutes before, work kept when it ends), and offline
// (the service worker, the queue of changes made without a connection).

import { api, csrfToken, on } from './api.js'
import { connection, onConnection } from './connection.js'
import { announce } from './dom.js'
import { saveAll } from './drafts.js'
import './worker.js' // the service worker: pages, assets and their last data, offline
import './offline_queue.js' // changes made offline wait on this device

const WARN_BEFORE_MS = 120_000
const body = document.body

// theme: the system's until the person picks one
const toggle = document.getElementById('theme-toggle')
if (toggle) {
  const dark = () => {
    const chosen = document.documentElement.dataset.theme
    return chosen ? chosen === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches
  }
  const show = () => {
    toggle.setAttribute('aria-pressed', String(dark()))
  }
  toggle.addEventListener('click', () => {
    const next = dark() ? 'light' : 'dark'
    document.documentElement.dataset.theme = next
    try { localStorage.setItem('seedos-theme', next) } catch (_) {}
    show()
    announce(`${next === 'dark' ? 'Dark' : 'Light'} theme`)
  })
  show()
}

// the tenant switcher: the session moves to the chosen tenant, and the overview opens
const switcher = document.getElementById('tenant-switch')
if (switcher) {
  switcher.addEventListener('submit', async (event) => {
    event.preventDefault()
    const tenant = switcher.elements.tenant.value
    try {
      await api('/api/v1/me/tenant', { method: 'POST', body: { tenant } })
      location.assign('/')
    } catch (error) {
      announce(`Could not switch tenant: ${error.message}`)
    }
  })
}

// signing out from a page opened from the service worker's copy, which keeps no CSRF token:
// the session's own first (api.js)
const signOut = document.getElementById('sign-out')
signOut?.addEventListener('submit', async (event) => {
  if (signOut.elements.csrf_token?.value) return
  event.preventDefault()
  try {
    await csrfToken()
    signOut.submit()
  } catch (error) {
    announce(`Could not sign out: ${error.message}`)
  }
})

// the session's time limit
if (body.dataset.sessionEnds) {
  const idleMs = Number(body.dataset.idleSeconds) * 1000
  const absolute = new Date(body.dataset.sessionAbsolute).getTime()
  let ends = new Date(body.dataset.sessionEnds).getTime()
  const dialog = document.getElementById('session-dialog')
  const text = document.getElementById('session-dialog-text')
  const stay = document.getElementById('session-stay')
  const again = document.getElementById('session-sign-in')
  let timer = null
  let ended = false

  const show = () => { if (!dialog.open) dialog.showModal() }
  const schedule = () => {
    clearTimeout(timer)
    if (ended) return
    const left = ends - Date.now()
    if (left <= 0) return expired()
    if (!connection.online) { // offline, the server alone knows: asked again when it answers
      if (dialog.open && !ended) dialog.close()
      return
    }
    if (left <= WARN_BEFORE_MS) {
      const at = new Date(ends).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
      text.textContent = ends >= absolute
        ? `Your session reaches its time limit at ${at}. Save your work; you will be asked to sign in again, and what you typed is kept.`
        : `You will be signed out at ${at} because nothing happened for a while. Choose "Stay signed in" to keep working.`
      stay.hidden = ends >= absolute
      show()
      timer = setTimeout(schedule, Math.min(left, 1000 * 15))
    } else {
      timer = setTimeout(schedule, left - WARN_BEFORE_MS)
    }
  }
  const end = () => {
    if (ended) return
    ended = true
    clearTimeout(timer)
    saveAll()
    const back = location.pathname + location.search
    again.href = '/auth/sign-in?return_to=' + encodeURIComponent(back)
    again.hidden = false
    stay.hidden = true
    document.getElementById('session-dialog-title').textContent = 'Your session has ended'
    text.textContent = 'Sign in again to go on. What you typed on this page is kept and comes back after you sign in.'
    show()
    again.focus()
  }
  // The time is up by this page's reckoning. Offline, nothing is said: the server alone knows,
  // and work done offline waits for the same person anyway. A page opened from the service
  // worker's copy (which keeps no CSRF token) reckons from when the copy was made: it says
  // nothing until the server has answered it once (a 401 ends the session here, any other
  // answer starts the reckoning again). Asking the server on purpose would be a use of the
  // session, and keep an idle one going.
  const fromCopy = !document.querySelector('meta[name="csrf-token"]')?.content
  let answered = false
  const expired = () => {
    if (!connection.online || (fromCopy && !answered)) return
    end()
  }
  onConnection((now) => { if (now.online) schedule() })
  on('used', () => { answered = true; ends = Math.min(Date.now() + idleMs, absolute); if (!dialog.open) schedule() })
  on('ended', end)
  stay.addEventListener('click', async () => {
    try {
      const me = await api('/api/v1/me')
      ends = new Date(me.session.expires_at).getTime()
      dialog.close()
      announce('You are still signed in.')
      schedule()
    } catch (_) { end() }
  })
  dialog.addEventListener('cancel', (event) => { if (ended) event.preventDefault() })
  schedule()
}
