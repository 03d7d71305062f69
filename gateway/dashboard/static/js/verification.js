// How far a catalog entry is known to work (`verification` and `verification_note` of GET
// /api/v1/marketplace/connectors): the badge on cards and on a connector's page (its words say
// the level, never its colour alone), what each level means, and the notice an install of a
// connector written from documentation only shows before it is confirmed.

import { badge, h } from './dom.js'

export const LEVELS = {
  verified: {
    label: 'Verified',
    tone: 'ok',
    means: 'It passes the conformance suite against a stand-in of the provider’s API that no one here wrote.'
  },
  checked: {
    label: 'Checked',
    tone: 'info',
    means: 'Its requests and the answers it reads were checked against the provider’s own machine-readable description of its API; it has not been run against the provider.'
  },
  described: {
    label: 'Described only',
    tone: 'warn',
    means: 'It was written from the provider’s documentation only: nobody has checked it against the provider’s API.'
  }
}
const NOT_RATED = {
  label: 'Not rated',
  tone: 'plain',
  means: 'Nobody has rated how far it is known to work: a tenant’s own connector, one written by hand, or one that does not run from a definition.'
}

export const levelOf = (entry) => LEVELS[entry.verification] || NOT_RATED

// The level as a badge; nothing for an item that does not say (recommendations).
export function levelBadge (entry) {
  if (!entry || !('verification' in entry)) return null
  const level = levelOf(entry)
  const el = badge('', level.tone)
  el.classList.add('level')
  el.dataset.level = entry.verification || 'none'
  el.append(h('span', { class: 'visually-hidden' }, 'Verification: '), level.label)
  return el
}

// For the connector's facts: the badge, what the level means and what it rests on.
export function levelFacts (entry) {
  const level = levelOf(entry)
  return [
    h('dt', {}, 'Verification'),
    h('dd', { id: 'verification' },
      levelBadge(entry),
      h('p', { class: 'level-means' }, level.means),
      entry.verification_note ? h('p', { class: 'level-note' }, entry.verification_note) : null)
  ]
}

// What installing a `described` connector means, said before the install is confirmed.
export function describedNotice (entry) {
  if (entry.verification !== 'described') return null
  return h('div', { class: 'notice warn', id: 'described-notice' },
    h('p', {}, h('strong', {}, 'Described only. '),
      `${entry.name} was written from the provider’s API documentation only and has not been checked against the provider’s API. ` +
      'Check what its first sync reads and writes before relying on it.'))
}
