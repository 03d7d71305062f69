// The navigation's count of the tenant's open alerts (GET /api/v1/integrations/alerts/summary),
// on every page: hidden when there are none, red when one of them is critical.

import { api } from './api.js'
import { h, replace } from './dom.js'

const slot = document.getElementById('alerts-count')

export async function refreshAlertCount () {
  if (!slot) return
  let summary
  try {
    // live only: offline, a copy's count could be days old, and would date the page as new
    summary = await api('/api/v1/integrations/alerts/summary', { fresh: true })
  } catch (_) {
    return // a nicety: the page works without it
  }
  slot.hidden = !summary.open
  slot.classList.toggle('critical', summary.critical > 0)
  replace(slot, h('span', { 'aria-hidden': 'true' }, String(summary.open)),
    h('span', { class: 'visually-hidden' }, ` (${summary.open} open${summary.critical ? `, ${summary.critical} critical` : ''})`))
}

refreshAlertCount()
