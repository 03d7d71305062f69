// The marketplace: search as you type (GET /api/v1/marketplace/connectors?q=..., typo-tolerant),
// category facets from the same answer's category_counts, a filter by how far connectors are
// known to work (verification.js), featured connectors and recommendations with their reasons
// (GET /api/v1/marketplace/recommendations). The query, the category and the level live in the
// URL (replaceState), so a reload or going back keeps them.

import { api } from './api.js'
import { badge, categoryLabel, emptyState, errorNotice, fmtNumber, h, loading, replace } from './dom.js'
import { LEVELS, levelBadge } from './verification.js'

const DEBOUNCE_MS = 150
const PAGE = 24

const form = document.getElementById('search')
const input = document.getElementById('q')
const facets = document.getElementById('facets')
const levels = document.getElementById('levels')
const status = document.getElementById('result-status')
const featured = document.getElementById('featured')
const recommended = document.getElementById('recommended')
const results = document.getElementById('results')
const resultsHeading = document.getElementById('results-heading')
const resultsBody = results.querySelector('.results-body')

const asked = new URLSearchParams(location.search)
const state = {
  q: asked.get('q') || '',
  category: asked.get('category') || '',
  verification: Object.hasOwn(LEVELS, asked.get('verification')) ? asked.get('verification') : '',
  counts: {},
  items: [],
  cursor: null
}
let controller = null
let timer = null

// One connector as a card: name (the link to its page), vendor, category, what it does.
function card (item, { reasons } = {}) {
  const facts = [item.vendor || 'Unknown vendor', categoryLabel(item.category)]
  return h('li', { class: 'card connector-card', dataset: { slug: item.slug } },
    h('h3', {}, h('a', { href: `/marketplace/${encodeURIComponent(item.slug)}` }, item.name)),
    h('p', { class: 'card-facts' }, facts.join(' · ')),
    item.description ? h('p', { class: 'card-text' }, item.description) : null,
    reasons?.length
      ? h('div', { class: 'card-reason' }, h('p', {}, h('strong', {}, 'Why we suggest it')),
        h('ul', {}, reasons.map((r) => h('li', {}, r))))
      : null,
    h('p', { class: 'card-badges' },
      levelBadge(item),
      item.installed ? badge('Installed', 'ok') : null,
      item.update_available ? badge('Update available', 'warn') : null,
      item.is_featured ? badge('Featured', 'info') : null,
      item.auth_scheme === 'oauth2' ? badge('Sign-in (OAuth)', 'plain') : null))
}

function cards (items, options) {
  return h('ul', { class: 'grid cards' }, items.map((item) => card(item, options && options(item))))
}

function keepInUrl () {
  const params = new URLSearchParams()
  if (state.q) params.set('q', state.q)
  if (state.category) params.set('category', state.category)
  if (state.verification) params.set('verification', state.verification)
  const next = location.pathname + (params.size ? `?${params}` : '')
  if (next !== location.pathname + location.search) history.replaceState(null, '', next)
}

function total () {
  const counts = state.counts
  return state.category ? (counts[state.category] || 0) : Object.values(counts).reduce((a, b) => a + b, 0)
}

function renderFacets () {
  const fieldset = facets.querySelector('fieldset')
  const all = Object.values(state.counts).reduce((a, b) => a + b, 0)
  const names = Object.keys(state.counts).sort((a, b) => categoryLabel(a).localeCompare(categoryLabel(b)))
  if (state.category && !names.includes(state.category)) names.unshift(state.category)
  const option = (value, label, n) => {
    const id = `category-${value || 'all'}`
    return h('div', { class: 'check' },
      h('input', {
        type: 'radio', name: 'category', id, value, checked: state.category === value,
        onchange: () => { state.category = value; search({ now: true }) }
      }),
      h('label', { for: id }, label, ' ', h('span', { class: 'count' }, `(${fmtNumber(n)})`)))
  }
  replace(fieldset, h('legend', {}, 'Category'),
    option('', 'All categories', all),
    names.map((c) => option(c, categoryLabel(c), state.counts[c] || 0)))
}

// The level filter: any level, or one of verification.js's, each with what it means.
function renderLevels () {
  const option = (value, label) => {
    const id = `level-${value || 'any'}`
    return h('div', { class: 'check' },
      h('input', {
        type: 'radio', name: 'verification', id, value, checked: state.verification === value,
        onchange: () => { state.verification = value; search({ now: true }) }
      }),
      h('label', { for: id }, label))
  }
  replace(levels, h('legend', {}, 'Verification'),
    h('p', { class: 'hint', id: 'levels-hint' }, 'How far each connector is known to work: verified against a stand-in of the provider, checked against its API description, or described from its documentation only.'),
    h('div', { class: 'options' }, option('', 'Any level'),
      Object.entries(LEVELS).map(([value, level]) => option(value, level.label))))
  levels.setAttribute('aria-describedby', 'levels-hint')
}

const filtered = () => Boolean(state.q || state.category || state.verification)

function renderResults () {
  const n = total()
  const words = state.q ? ` for “${state.q}”` : ''
  const level = state.verification ? ` (${LEVELS[state.verification].label.toLowerCase()})` : ''
  const where = (state.category ? ` in ${categoryLabel(state.category)}` : '') + level
  status.textContent = n === 1 ? `1 connector found${words}${where}` : `${fmtNumber(n)} connectors found${words}${where}`
  resultsHeading.textContent = filtered() ? 'Results' : 'All connectors'
  if (!state.items.length) {
    const clear = h('button', { type: 'button', onclick: clearAll },
      state.q ? 'Clear the search' : state.verification ? 'Show all connectors' : 'Show all categories')
    const elsewhere = [state.category && 'all categories', state.verification && 'any level'].filter(Boolean).join(' and ')
    replace(resultsBody, emptyState(state.q ? `No connector matches “${state.q}”${where}` : `No connector${where}`,
      state.q
        ? 'Check the spelling, try a shorter word or the vendor’s name, or what it syncs (for example “invoices” or “tickets”)' +
          (elsewhere ? `, or look in ${elsewhere}.` : '.')
        : state.verification ? 'Choose another category or level.' : 'Choose another category.', clear))
    return
  }
  const list = cards(state.items)
  const more = state.cursor
    ? h('div', { class: 'pager' }, h('button', { type: 'button', id: 'more', onclick: loadMore }, 'Show more connectors'))
    : null
  replace(resultsBody, list, more)
}

function clearAll () {
  state.q = ''
  state.category = ''
  state.verification = ''
  levels.querySelector('#level-any').checked = true
  input.value = ''
  search({ now: true })
  input.focus()
}

async function fetchPage (signal, cursor) {
  return api('/api/v1/marketplace/connectors', {
    query: { q: state.q || null, category: state.category || null, verification: state.verification || null, limit: PAGE, cursor },
    signal
  })
}

async function run () {
  controller?.abort()
  controller = new AbortController()
  const { signal } = controller
  keepInUrl()
  for (const section of [featured, recommended]) {
    section.hidden = filtered() || !section.dataset.loaded
  }
  resultsBody.setAttribute('aria-busy', 'true')
  try {
    const page = await fetchPage(signal)
    state.counts = page.category_counts
    state.items = page.items
    state.cursor = page.next_cursor
    renderFacets()
    renderResults()
  } catch (error) {
    if (error.name === 'AbortError') return
    status.textContent = 'The search failed.'
    replace(resultsBody, errorNotice(error, { title: 'The connectors could not be loaded.' }))
  }
}

async function loadMore (event) {
  const button = event.currentTarget
  button.disabled = true
  try {
    const page = await fetchPage(undefined, state.cursor)
    const first = state.items.length
    state.items.push(...page.items)
    state.cursor = page.next_cursor
    renderResults()
    // focus goes to the first new card's link, so the keyboard continues where it was
    resultsBody.querySelectorAll('.connector-card a')[first]?.focus()
  } catch (error) {
    button.disabled = false
    resultsBody.append(errorNotice(error, { title: 'More connectors could not be loaded.' }))
  }
}

function search ({ now = false } = {}) {
  clearTimeout(timer)
  if (now) return run()
  timer = setTimeout(run, DEBOUNCE_MS)
}

async function loadFeatured () {
  const body = featured.querySelector('.featured-body')
  try {
    const page = await api('/api/v1/marketplace/connectors', { query: { featured: true, limit: 6, sort: 'popularity' } })
    if (!page.items.length) return
    replace(body, cards(page.items))
    featured.dataset.loaded = 'true'
    featured.hidden = filtered()
  } catch (_) { /* the search below still works; featured is a shortcut */ }
}

async function loadRecommended () {
  const body = recommended.querySelector('.recommended-body')
  try {
    const answer = await api('/api/v1/marketplace/recommendations', { query: { k: 6 } })
    if (!answer.items.length) return
    replace(body,
      h('p', { class: 'hint' }, 'Picked from what tenants like yours install, and from your tenant’s profile.'),
      cards(answer.items, (item) => ({ reasons: item.reasons.length ? item.reasons.map((r) => r.text) : [item.reason] })))
    recommended.dataset.loaded = 'true'
    recommended.hidden = filtered()
  } catch (_) { /* recommendations are optional: nothing to say when there are none */ }
}

input.value = state.q
renderLevels()
input.addEventListener('input', () => { state.q = input.value.trim(); search() })
form.addEventListener('submit', (e) => { e.preventDefault(); state.q = input.value.trim(); search({ now: true }) })
loading(resultsBody, 'Loading connectors…')
await Promise.all([run(), loadFeatured(), loadRecommended()])
