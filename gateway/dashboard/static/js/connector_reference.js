// A connector's reference on its page (GET /api/v1/marketplace/connectors/{slug}/reference,
// generated from the entry's manifest): the settings an install fills in, every stream with its
// fields in a table (collapsed when it has many), the actions with their input and output, the
// provider's webhooks when the connector uses them, and the whole reference as Markdown.

import { api } from './api.js'
import { announce, badge, dataTable, errorNotice, h, loading, replace } from './dom.js'

const OPEN_UP_TO = 10 // fields: a stream with more starts collapsed
const SEEN_BY = { read: 'by its reads', webhooks: 'through the provider’s webhooks' }

const yes = (flag) => (flag ? 'Yes' : 'No')
const safeId = (kind, name) => `${kind}-${String(name).toLowerCase().replace(/[^a-z0-9_-]+/g, '-')}`

function section (id, title, ...body) {
  return h('section', { class: 'card reference', id, 'aria-labelledby': `${id}-heading` },
    h('h2', { id: `${id}-heading` }, title), ...body)
}

function fieldsTable (caption, fields) {
  if (!fields.length) return h('p', { class: 'hint' }, 'No fields declared.')
  return dataTable(caption, ['Field', 'Type', 'Nullable', 'Required', 'Description'],
    fields.map((f) => h('tr', {},
      h('td', { 'data-label': 'Field' }, h('code', {}, f.name)),
      h('td', { 'data-label': 'Type' }, f.type),
      h('td', { 'data-label': 'Nullable' }, yes(f.nullable)),
      h('td', { 'data-label': 'Required' }, yes(f.required)),
      h('td', { 'data-label': 'Description' }, f.description || '—'))),
    { tableClass: 'fields' })
}

function needsText (needs) {
  return needs.map((n) => h('p', { class: 'hint' },
    n.rule === 'any_of' ? 'At least one of: ' : 'Exactly one of: ',
    n.groups.map((group, i) => [i ? ', or ' : '', group.map((f, j) => [j ? ' and ' : '', h('code', {}, f)])]), '.'))
}

function settings (ref) {
  return section('settings', 'Settings you fill in',
    ref.config.length
      ? [h('p', {}, 'What an install asks for. Secret ones are stored encrypted and never shown again.'),
          dataTable(`Settings of ${ref.name}`, ['Setting', 'Type', 'Required', 'Secret', 'Default', 'Description'],
            ref.config.map((f) => h('tr', {},
              h('td', { 'data-label': 'Setting' }, h('code', {}, f.name), f.title ? h('div', {}, f.title) : null),
              h('td', { 'data-label': 'Type' }, f.type),
              h('td', { 'data-label': 'Required' }, yes(f.required)),
              h('td', { 'data-label': 'Secret' }, yes(f.secret)),
              h('td', { 'data-label': 'Default' }, f.default === null || f.default === undefined ? '—' : h('code', {}, JSON.stringify(f.default))),
              h('td', { 'data-label': 'Description' }, f.description || '—'))),
            { tableClass: 'fields' }),
          needsText(ref.config_needs)]
      : h('p', {}, 'Nothing: it needs no settings.'))
}

export function writesText (s) {
  if (!s.writable) return 'No: read only'
  if (s.writes === null) return 'Yes (which writes is not declared)'
  const words = { create: 'creates', update: 'updates', delete: 'deletes' }
  const said = s.writes.map((w) => words[w])
  return said.length ? said.join(', ').replace(/^./, (c) => c.toUpperCase()) + ' records' : 'Yes'
}

export function deletionsText (s) {
  if (s.deletions === null) return 'Not declared'
  if (!s.deletions) return 'Not seen'
  return 'Seen ' + s.deletions_seen_by.map((w) => SEEN_BY[w]).join(' and ')
}

// One stream: its name a heading whose button shows or hides its facts and fields.
function stream (s, toggles) {
  const id = safeId('stream', s.name)
  const open = s.fields.length <= OPEN_UP_TO
  const body = h('div', { class: 'stream-body', id: `${id}-body`, hidden: !open },
    s.description ? h('p', {}, s.description) : null,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Primary key'), h('dd', {}, s.primary_key ? h('code', {}, s.primary_key) : 'None'),
      h('dt', {}, 'Read'), h('dd', {}, s.incremental ? ['Incremental, from where the last sync ended, by ', h('code', {}, s.cursor_field)] : 'In full each sync'),
      h('dt', {}, 'Writes'), h('dd', {}, writesText(s)),
      h('dt', {}, 'Deletions at the provider'), h('dd', {}, deletionsText(s))),
    fieldsTable(`Fields of ${s.name}`, s.fields))
  const button = h('button', {
    type: 'button', class: 'disclosure', 'aria-expanded': String(open), 'aria-controls': body.id,
    onclick: () => toggle(body.hidden)
  }, h('code', {}, s.name), ' ', h('span', { class: 'count' }, `${s.fields.length} ${s.fields.length === 1 ? 'field' : 'fields'}`))
  function toggle (show) {
    body.hidden = !show
    button.setAttribute('aria-expanded', String(show))
  }
  toggles.push(toggle)
  return h('div', { class: 'stream', id },
    h('h3', {}, button),
    h('p', { class: 'stream-badges' },
      badge(s.incremental ? 'Incremental' : 'Full read', 'plain'), ' ',
      badge(s.writable ? 'Read and write' : 'Read only', s.writable ? 'info' : 'plain')),
    body)
}

function streams (ref) {
  if (!ref.streams.length) return section('streams', 'What it syncs', h('p', {}, 'It declares no stream.'))
  const toggles = []
  const items = ref.streams.map((s) => stream(s, toggles))
  const all = ref.streams.length > 1
    ? h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'streams-expand', onclick: () => { toggles.forEach((t) => t(true)); announce('Every stream’s fields are shown.') } }, 'Show every stream'),
        h('button', { type: 'button', id: 'streams-collapse', onclick: () => { toggles.forEach((t) => t(false)); announce('Every stream’s fields are hidden.') } }, 'Hide every stream'))
    : null
  return section('streams', 'What it syncs',
    h('p', {}, `${ref.streams.length} ${ref.streams.length === 1 ? 'stream' : 'streams'}, each a collection of records kept in sync. Open one to see its fields.`),
    all, items)
}

function actions (ref) {
  if (!ref.actions.length) return section('actions', 'Actions', h('p', {}, 'It declares no action.'))
  return section('actions', 'Actions',
    h('p', {}, 'What you can ask it to do at the provider, one call at a time.'),
    ref.actions.map((a) => h('div', { class: 'action', id: safeId('action', a.name) },
      h('h3', {}, h('code', {}, a.name)),
      a.description ? h('p', {}, a.description) : null,
      h('p', {}, a.idempotent ? 'Safe to repeat.' : 'Not safe to repeat: send an Idempotency-Key, so a retry does not do it twice.'),
      h('h4', {}, 'Input'), fieldsTable(`Input of ${a.name}`, a.input), needsText(a.input_needs),
      h('h4', {}, 'Output'), fieldsTable(`Output of ${a.name}`, a.output))))
}

function webhooks (ref) {
  const w = ref.webhooks
  if (!w) return null
  return section('webhooks', 'Webhooks',
    h('p', {}, 'The provider tells the connector of changes as they happen: each install gets its own webhook URL and secret to give the provider.'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Signature'), h('dd', {}, w.signature),
      w.tolerance_seconds !== null ? [h('dt', {}, 'Freshness'), h('dd', {}, `Deliveries signed more than ${w.tolerance_seconds} seconds ago are refused`)] : null),
    dataTable('Webhook events', ['Event types', 'Updates', 'What happens'],
      w.events.map((e) => h('tr', {},
        h('td', { 'data-label': 'Event types' }, e.types.map((t, i) => [i ? ', ' : '', h('code', {}, t)])),
        h('td', { 'data-label': 'Updates' }, e.updates ? h('code', {}, e.updates) : '—'),
        h('td', { 'data-label': 'What happens' }, [
          e.carries_record ? (e.deletions ? 'Carries the record, or says it was deleted' : 'Carries the record') : null,
          e.carries_record && e.pull ? '; ' : null,
          e.pull ? ['Starts a sync of ', h('code', {}, e.pull)] : null])))),
    w.setup ? [h('h3', {}, 'Setting it up at the provider'), h('p', {}, w.setup)] : null)
}

async function download (slug, button) {
  button.disabled = true
  try {
    const text = await api(`/api/v1/marketplace/connectors/${encodeURIComponent(slug)}/reference`, { headers: { accept: 'text/markdown' } })
    if (typeof text !== 'string') { // offline, this device's copy of the page's JSON answered
      button.after(h('p', { class: 'notice warn', role: 'status' }, 'The Markdown needs the connection: try again when it is back.'))
      return
    }
    const link = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/markdown' })), download: `${slug}-reference.md`, hidden: true })
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(link.href), 1000)
    announce('The reference was downloaded as Markdown.')
  } catch (error) {
    button.after(errorNotice(error, { title: 'The reference could not be downloaded.' }))
  } finally {
    button.disabled = false
  }
}

// The reference's sections, filled in once it has loaded.
export function referenceSections (slug) {
  const box = h('div', { id: 'reference' })
  loading(box, 'Loading what it syncs…')
  api(`/api/v1/marketplace/connectors/${encodeURIComponent(slug)}/reference`).then((ref) => {
    const markdown = h('button', { type: 'button', id: 'reference-markdown', onclick: (e) => download(slug, e.currentTarget) }, 'Download the reference (Markdown)')
    replace(box,
      h('p', { class: 'reference-intro' }, 'Generated from the connector’s manifest, so it is what an install gets. ', markdown),
      settings(ref), streams(ref), actions(ref), webhooks(ref))
  }, (error) => {
    replace(box, section('streams', 'What it syncs', errorNotice(error, { title: 'What it syncs could not be loaded.' })))
  })
  return box
}
