// The records browser: a stream's records a page at a time (the records JSON API), and live
// editing through the Yjs rooms of the shards that hold the records on screen (never the whole
// install): `GET sync/shards/for` says which, each room is joined with a single-use ticket, and
// an edit is a change of the record's Y.Map there. It is saved once the server's state vector for
// the shard holds it.
//
// Offline first: each shard's document is kept on this device (y-indexeddb, one database per
// person, tenant, install and shard), so the records on screen can be read and edited without a
// connection, across reloads. An edit not yet confirmed is noted (localStorage, beside the
// document): when the room is joined again, y-websocket sends what the server lacks and the
// CRDT merges both sides (different fields: both kept; the same field: one of the two values
// wins, the same on every device, which the row says where it happened). An edit the stream's
// schema refuses closes the room with the reason: it is shown (until dismissed) and dropped
// from this device's copy, which starts again from the server's; the other edits not yet
// confirmed are made again on it, so a refusal never loops and loses nothing else.
//
// The device keeps at most DOCS_MAX shard documents and DOCS_BYTES of their state; beyond, the
// least recently opened without unconfirmed edits are removed.

import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence, clearDocument } from 'y-indexeddb'
import { api } from './api.js'
import { connection, onConnection } from './connection.js'
import { announce, dataTable, emptyState, errorNotice, h, loading, replace } from './dom.js'
import { keep } from './drafts.js'

const section = document.getElementById('records')
const id = section.dataset.integration
const canEdit = section.dataset.canEdit === 'true'
const base = `/api/v1/integrations/${encodeURIComponent(id)}` // one path segment, whatever the URL held
const form = document.getElementById('records-filter')
const summary = document.getElementById('records-summary')
const pager = document.getElementById('records-pager')
const liveState = document.getElementById('live-state')
const refusalsBox = document.getElementById('records-refusals')
const SAVE_WAIT_MS = 10_000
const CONFIRM_WAIT_MS = 30_000
const MAX_COLUMNS = 6
const RECONNECT_MAX_MS = 10_000
const DOCS_MAX = 64
const DOCS_BYTES = 50 * 1024 * 1024
const FIRST_COLUMNS = ['name', 'title', 'subject', 'first_name', 'last_name', 'email', 'phone', 'status']
const SAVED = 'Saved. It reaches the external system with the next push.'
const KEPT = 'Saved on this device. It is sent when the connection returns.'
const SAME_FIELD = 'When two people change the same field while apart, one of the two values wins, the same on every device.'

const state = {
  streams: [], stream: null, pk: 'id', columns: [], schema: {},
  q: '', cursor: null, previous: [], next: null,
  keys: [], // primary keys on screen
  values: new Map(), // pk -> fields (as shown)
  editing: new Map() // pk -> {fields: {name: value typed}}
}
const rooms = new Map() // shard id -> Room
const shardOfKey = new Map() // pk -> shard id

// --------------------------------------------------------------------------- this device's copies

const owner = `${document.body.dataset.user || 'anyone'}:${document.body.dataset.tenantId || 'none'}`
const docName = (shard) => `seedos-shard:${owner}:${id}:${shard}`
const indexKey = `seedos-shards:${owner}`

// what is noted beside a shard's document: {pending: [{key, fields, client, clock, at}], refusals: [...]}
function notes (name) {
  try {
    const found = JSON.parse(localStorage.getItem('seedos-notes:' + name))
    if (found && Array.isArray(found.pending) && Array.isArray(found.refusals)) return found
  } catch (_) { /* none, or unreadable: start afresh */ }
  return { pending: [], refusals: [] }
}

function note (name, change) {
  const found = notes(name)
  change(found)
  try {
    if (found.pending.length || found.refusals.length) localStorage.setItem('seedos-notes:' + name, JSON.stringify(found))
    else localStorage.removeItem('seedos-notes:' + name)
  } catch (_) { /* storage full: the edits are in the document all the same */ }
  return found
}

function shardIndex () {
  try { return JSON.parse(localStorage.getItem(indexKey)) || {} } catch (_) { return {} }
}

// the room was opened (and holds `bytes`): the least recently opened copies beyond the budget go
async function within (name, bytes) {
  const index = shardIndex()
  index[name] = { opened: Date.now(), bytes: bytes ?? index[name]?.bytes ?? 0 }
  const open = new Set([...rooms.values()].map((room) => room.name))
  const oldest = Object.entries(index).sort((a, b) => a[1].opened - b[1].opened)
  let count = oldest.length
  let total = oldest.reduce((sum, [, one]) => sum + (one.bytes || 0), 0)
  for (const [other, one] of oldest) {
    if (count <= DOCS_MAX && total <= DOCS_BYTES) break
    if (open.has(other) || notes(other).pending.length) continue
    delete index[other]
    count -= 1
    total -= one.bytes || 0
    try { localStorage.removeItem('seedos-notes:' + other) } catch (_) {}
    await clearDocument(other).catch(() => {})
  }
  try { localStorage.setItem(indexKey, JSON.stringify(index)) } catch (_) {}
}

// --------------------------------------------------------------------------- rooms

class Room {
  constructor (shard) {
    this.shard = shard
    this.name = docName(shard)
    this.keys = new Set()
    this.refusal = null // the last edit refused, until the next one is made
    this.attempts = 0
    this.start()
  }

  start () {
    this.left = false
    this.generation = (this.generation || 0) + 1
    this.doc = new Y.Doc()
    this.records = this.doc.getMap('records')
    this.ready = new Promise((resolve) => { this.resolveReady = resolve })
    this.shown = false // its first contents (this device's copy or the server's) are on screen
    this.local = new IndexeddbPersistence(this.name, this.doc)
    this.local.whenSynced.then(() => this.loaded())
    this.records.observeDeep((events, transaction) => {
      if (transaction.local || !this.shown) return // the first contents show all at once
      const changed = new Set()
      for (const event of events) {
        if (event.target === this.records) for (const key of event.keysChanged) changed.add(key)
        else if (event.path.length) changed.add(event.path[0])
      }
      const fromDevice = transaction.origin === this.local
      for (const key of changed) {
        if (!fromDevice) remoteChange(this, key)
        else if (key.startsWith(state.stream + '/')) showRecord(key.slice(state.stream.length + 1))
      }
    })
    within(this.name)
    this.connect()
  }

  loaded () {
    if (this.shown || this.left) return
    this.shown = true
    this.resolveReady()
    for (const key of this.keys) showRecord(key)
    for (const entry of notes(this.name).pending) {
      const pk = entry.key.slice(state.stream.length + 1)
      if (entry.key.startsWith(state.stream + '/') && this.keys.has(pk)) rowStatus(pk, KEPT, 'warn')
    }
    updateLive()
  }

  async connect () {
    if (this.left || this.connecting || this.provider) return // one connection at a time
    clearTimeout(this.again)
    this.again = null
    const generation = this.generation
    this.connecting = true
    let ticket
    try {
      ticket = (await api(`${base}/sync/ticket`, { method: 'POST' })).ticket
    } catch (error) {
      if (error.status === 0) return this.later() // offline: edits wait here
      showLive('Live editing is unavailable', 'bad')
      return
    } finally {
      this.connecting = false
    }
    if (this.left || generation !== this.generation || this.provider) return
    const url = location.origin.replace(/^http/, 'ws') + `${base}/sync`
    const provider = new WebsocketProvider(url, 'ws', this.doc, {
      params: { shard: this.shard, ticket }, disableBc: true, maxBackoffTime: 5000
    })
    this.provider = provider
    provider.on('connection-close', (event) => { if (this.provider === provider) this.closed(event) })
    provider.on('sync', (synced) => {
      if (!synced) return
      this.attempts = 0
      this.loaded()
      for (const key of this.keys) showRecord(key)
      updateLive()
      this.settle()
    })
  }

  later () { // again with a new ticket, after a growing, jittered pause (at once when online again)
    updateLive()
    this.attempts += 1
    const pause = Math.min(RECONNECT_MAX_MS, 250 * 2 ** this.attempts) * (0.5 + Math.random() / 2)
    clearTimeout(this.again)
    this.again = setTimeout(() => { if (rooms.get(this.shard) === this) this.connect() }, pause)
  }

  now () { // the connection is back: do not wait out the pause
    if (this.left || this.provider || this.connecting) return
    this.attempts = 0
    this.connect()
  }

  closed (event) {
    const provider = this.provider
    if (!provider || !provider.shouldConnect) return // left on purpose
    provider.shouldConnect = false // a ticket is single use: never retried
    const code = event?.code
    const reason = event?.reason || ''
    updateLive()
    if (code === 4410) { // split: the records moved to other shards
      this.leave()
      rooms.delete(this.shard)
      joinRooms()
      return
    }
    if ((code === 1008 && /invalid_records?:/.test(reason)) || code === 4422) {
      this.refused(reason || 'the change breaks the stream’s schema')
      return
    }
    if (code === 1008) { // credentials: the session ended, or a role changed
      showLive('Live editing stopped', 'bad')
      return
    }
    // anything else (1013 try later, a restart, the network): again, on a provider of its own
    // (the old one lets go of the document)
    this.provider = null
    provider.destroy()
    this.later()
  }

  // the server refused an edit: it is noted and shown, this device's copy (which holds it) is
  // dropped and taken again from the server, and the other unconfirmed edits are made again
  // there. When the reason names none of them (or several), all of this room's are dropped:
  // made again, the one at fault would be refused again, and again.
  async refused (reason) {
    // "invalid_record: contacts/42: email: None is not of type 'string'" (a key may hold ':',
    // and the reason is cut to 123 bytes): the record is the one of this device's unconfirmed
    // edits whose key the reason names, or begins to name where it was cut
    const head = reason.replace(/^refused edit: /, '').match(/^invalid_records?: (.*)$/s)?.[1] || ''
    const keys = [...new Set(notes(this.name).pending.map((p) => p.key))]
    const named = keys.filter((k) => head.startsWith(k + ': ') || (head.length < k.length + 2 && (k + ': ').startsWith(head)))
    const key = named.length === 1 ? named[0] : null
    // the server's words are Python's: an emptied field is "None"
    const why = (key && head.length > key.length + 2 ? head.slice(key.length + 2) : reason).replace(/\bNone\b/g, 'an empty value')
    let dropped = []
    note(this.name, (n) => {
      dropped = n.pending.filter((p) => key === null || p.key === key)
      n.pending = n.pending.filter((p) => !dropped.includes(p))
      const fields = Object.assign({}, ...dropped.map((p) => p.fields))
      n.refusals.push({ key, why, fields, at: new Date().toISOString() })
    })
    this.refusal = new Error(`The change was refused: ${why}`)
    this.refusal.refused = true
    const pk = key && key.startsWith(state.stream + '/') ? key.slice(state.stream.length + 1) : [...state.editing.keys()].find((k) => roomOf(k) === this)
    if (pk !== undefined && this.keys.has(pk)) {
      rowStatus(pk, `${this.refusal.message}. The record is back to what the server holds.`, 'bad')
    }
    announce(`A change to ${key || 'a record'} was refused: ${why}`)
    showRefusals()
    await this.restart()
  }

  async restart () { // this device's copy dropped: start again from the server's document
    const local = this.local
    this.leave()
    await local.destroy()
    await clearDocument(this.name).catch(() => {})
    this.start()
  }

  leave () {
    this.left = true
    clearTimeout(this.again)
    if (this.provider) { this.provider.shouldConnect = false; this.provider.destroy(); this.provider = null }
    this.doc.destroy() // and its copy on this device lets go (y-indexeddb closes on destroy)
  }

  get live () { return Boolean(this.provider?.wsconnected && this.provider?.synced) }

  record (pk) {
    const found = this.records.get(`${state.stream}/${pk}`)
    return found instanceof Y.Map ? found : null
  }

  // a change of the record's fields, noted until the server confirms it
  edit (key, changes) {
    const record = this.records.get(key)
    if (!(record instanceof Y.Map)) return null
    this.doc.transact(() => { for (const [field, value] of Object.entries(changes)) record.set(field, value) })
    const entry = {
      key, fields: changes, client: this.doc.clientID,
      clock: Y.getState(this.doc.store, this.doc.clientID), at: new Date().toISOString()
    }
    note(this.name, (n) => { n.pending.push(entry) })
    return entry
  }

  async serverVector () {
    const answer = await api(`${base}/sync/state-vector`, { query: { shard: this.shard }, raw: true, headers: { accept: 'application/octet-stream' } })
    return Y.decodeStateVector(new Uint8Array(await answer.arrayBuffer()))
  }

  // the server's state vector for this shard holds this client's edits up to `clock`
  async saved (clock) {
    const deadline = Date.now() + SAVE_WAIT_MS
    while (Date.now() < deadline) {
      if (this.refusal) throw this.refusal
      if ((await this.serverVector()).get(this.doc.clientID) >= clock) return
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    throw new Error('the server has not confirmed the change yet')
  }

  // joined again: the unconfirmed edits are confirmed as the server takes them; those this
  // device's copy lost (it was dropped after a refusal) are made again
  async settle () {
    const generation = this.generation // a restart starts another; this one stops
    if (this.settling === generation || !notes(this.name).pending.length) return
    this.settling = generation
    try {
      await this.local.whenSynced // this device's copy is in the document before it is compared
      await within(this.name, Y.encodeStateAsUpdate(this.doc).length)
      const deadline = Date.now() + CONFIRM_WAIT_MS
      let first = true
      while (this.generation === generation && this.live && Date.now() < deadline) {
        const vector = await this.serverVector()
        if (this.generation !== generation) break
        const mine = Y.decodeStateVector(Y.encodeStateVector(this.doc))
        const confirmed = []
        const redo = []
        note(this.name, (n) => {
          for (const entry of n.pending) {
            if ((vector.get(entry.client) || 0) >= entry.clock) confirmed.push(entry)
            else if (first && (mine.get(entry.client) || 0) < entry.clock) redo.push(entry)
          }
          n.pending = n.pending.filter((e) => !confirmed.includes(e) && !redo.includes(e))
        })
        first = false
        for (const entry of confirmed) this.confirmed(entry)
        for (const entry of redo) {
          this.edit(entry.key, entry.fields)
          if (entry.key.startsWith(state.stream + '/')) showRecord(entry.key.slice(state.stream.length + 1))
        }
        if (!notes(this.name).pending.length) break
        await new Promise((resolve) => setTimeout(resolve, 250))
      }
    } catch (_) {
      // offline again: settled on the next join
    } finally {
      if (this.settling === generation) this.settling = null
      updateLive()
    }
  }

  confirmed (entry) {
    if (!entry.key.startsWith(state.stream + '/')) return
    const pk = entry.key.slice(state.stream.length + 1)
    if (!this.keys.has(pk) || state.editing.has(pk)) return
    const now = this.records.get(entry.key)
    const lost = Object.entries(entry.fields).filter(([field, value]) => now instanceof Y.Map && now.get(field) !== value)
    if (lost.length) {
      const [field, value] = lost[0]
      rowStatus(pk, `Merged. Your ${label(field)} “${display(value)}” was changed elsewhere meanwhile to “${display(now.get(field))}”. ${SAME_FIELD}`, 'warn')
    } else {
      rowStatus(pk, SAVED, 'ok')
    }
    showRecord(pk)
  }
}

function showLive (text, tone = 'plain') {
  liveState.className = `badge ${tone}`
  liveState.textContent = text
}

function waiting () {
  return [...rooms.values()].reduce((sum, room) => sum + notes(room.name).pending.length, 0)
}

function updateLive () {
  const all = [...rooms.values()]
  if (!all.length) return showLive('Nothing on screen to edit live')
  const live = all.filter((room) => room.live).length
  const kept = waiting()
  if (!connection.online || (!live && all.some((room) => room.shown))) {
    return showLive(kept ? `Offline: ${kept} ${kept === 1 ? 'edit waits' : 'edits wait'} on this device` : 'Offline: edits are kept on this device', 'warn')
  }
  if (live === all.length && !kept) showLive('Live: changes appear as they happen', 'ok')
  else if (live === all.length) showLive(`Live: sending ${kept} ${kept === 1 ? 'edit' : 'edits'} made offline`, 'warn')
  else showLive(`Connecting live editing (${live} of ${all.length})`, 'warn')
}

// the refusals not yet dismissed, of the rooms open
function showRefusals () {
  if (!refusalsBox) return
  const items = []
  for (const room of rooms.values()) {
    for (const [at, refusal] of notes(room.name).refusals.entries()) items.push({ room, at, refusal })
  }
  refusalsBox.hidden = !items.length
  if (!items.length) return replace(refusalsBox)
  replace(refusalsBox,
    h('h2', { id: 'records-refusals-title' }, items.length === 1 ? 'A change was refused' : `${items.length} changes were refused`),
    h('ul', {}, items.map(({ room, at, refusal }) => h('li', {},
      h('p', {}, `${refusal.key || 'A record'}: ${Object.entries(refusal.fields).map(([f, v]) => `${label(f)} “${display(v)}”`).join(', ') || 'an edit'} was refused: ${refusal.why}. It was dropped from this device; the record is what the server holds.`),
      h('button', {
        type: 'button',
        onclick: () => {
          note(room.name, (n) => { n.refusals.splice(at, 1) })
          showRefusals()
          document.getElementById('records-title')?.focus?.()
        }
      }, 'Dismiss')))))
}

async function joinRooms () {
  if (!state.keys.length) return updateLive()
  let answer
  try {
    answer = await api(`${base}/sync/shards/for`, { query: { stream: state.stream, keys: state.keys } })
  } catch (error) {
    showLive(error.status === 0 ? 'Offline: this device has no copy of these records to edit' : 'Live editing is unavailable', 'bad')
    return
  }
  const wanted = new Set()
  shardOfKey.clear()
  for (const item of answer.items) {
    if (!item.shard) continue
    wanted.add(item.shard)
    shardOfKey.set(item.key, item.shard)
  }
  for (const [shard, room] of rooms) {
    if (!wanted.has(shard)) { room.leave(); rooms.delete(shard) }
  }
  for (const shard of wanted) if (!rooms.has(shard)) rooms.set(shard, new Room(shard))
  for (const room of rooms.values()) room.keys.clear()
  for (const [pk, shard] of shardOfKey) rooms.get(shard).keys.add(pk)
  for (const room of rooms.values()) if (room.shown) room.loaded()
  updateLive()
  showRefusals()
}

onConnection((now) => {
  if (now.online) for (const room of rooms.values()) room.now()
  updateLive()
})

function roomOf (pk) {
  return rooms.get(shardOfKey.get(pk))
}

// --------------------------------------------------------------------------- the table

const schemaType = (field) => {
  const type = state.schema.properties?.[field]?.type
  const types = Array.isArray(type) ? type : [type]
  return {
    nullable: types.includes('null'),
    kind: types.find((t) => t && t !== 'null') || 'string'
  }
}

function columnsOf (schema, pk) {
  const properties = Object.entries(schema.properties || {})
  const shown = properties.filter(([name, spec]) => {
    const types = [spec.type].flat()
    return name !== pk && !spec.readOnly && types.some((t) => ['string', 'number', 'integer', 'boolean'].includes(t)) &&
      !['created_at', 'updated_at'].includes(name)
  }).map(([name]) => name)
  // a schema's key order is lost in storage (jsonb): names first, then contact points, then A-Z
  const rank = (name) => {
    const at = FIRST_COLUMNS.indexOf(name)
    return at === -1 ? FIRST_COLUMNS.length : at
  }
  shown.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  return shown.slice(0, MAX_COLUMNS)
}

const label = (field) => state.schema.properties?.[field]?.title || field.replace(/_/g, ' ')
const display = (value) => (value === null || value === undefined || value === '' ? '—' : String(value))
const rowId = (pk) => 'record-' + encodeURIComponent(pk).replace(/%/g, '_')

function showRecord (pk) {
  const row = document.getElementById(rowId(pk))
  if (!row) return
  const live = roomOf(pk)?.record(pk)
  const fields = live ? live.toJSON() : state.values.get(pk)
  if (!fields) return
  state.values.set(pk, fields)
  if (state.editing.has(pk)) return
  for (const field of state.columns) {
    const cell = row.querySelector(`td[data-field="${CSS.escape(field)}"]`)
    if (cell) cell.textContent = display(fields[field])
  }
}

function remoteChange (room, key) {
  const pk = key.slice(state.stream.length + 1)
  if (!key.startsWith(state.stream + '/') || !room.keys.has(pk)) return
  const row = document.getElementById(rowId(pk))
  if (!row) return
  const editing = state.editing.get(pk)
  const fields = room.record(pk)?.toJSON() || {}
  if (editing) { // keep what the person typed; say what changed underneath
    for (const field of state.columns) {
      const note = row.querySelector(`[data-changed="${CSS.escape(field)}"]`)
      if (note && display(fields[field]) !== display(state.values.get(pk)?.[field])) {
        note.hidden = false
        note.textContent = `Changed by someone else to “${display(fields[field])}”.`
      }
    }
    state.values.set(pk, fields)
    return
  }
  showRecord(pk)
  row.classList.add('flash')
  setTimeout(() => row.classList.remove('flash'), 1500)
  announce(`${state.stream} ${pk} was changed by someone else.`)
}

function rowStatus (pk, text, tone) {
  const status = document.getElementById(rowId(pk) + '-status')
  if (!status) return
  status.className = `row-status ${tone || ''}`
  status.textContent = text
}

function cellFor (pk, field, fields) {
  return h('td', { 'data-label': label(field), 'data-field': field }, display(fields[field]))
}

function actionsFor (pk) {
  const cell = h('td', { 'data-label': 'Actions' })
  if (canEdit) {
    cell.append(h('button', {
      type: 'button', class: 'edit', 'aria-label': `Edit ${state.stream} ${pk}`,
      onclick: () => startEdit(pk)
    }, 'Edit'))
  }
  cell.append(h('p', { id: rowId(pk) + '-status', class: 'row-status', role: 'status' }))
  return cell
}

function startEdit (pk, typed) {
  const row = document.getElementById(rowId(pk))
  if (!row || state.editing.has(pk)) return
  const fields = roomOf(pk)?.record(pk)?.toJSON() || state.values.get(pk) || {}
  state.editing.set(pk, { fields: typed || {} })
  const formId = rowId(pk) + '-form'
  for (const field of state.columns) {
    const cell = row.querySelector(`td[data-field="${CSS.escape(field)}"]`)
    const { kind } = schemaType(field)
    const inputId = `${formId}-${field}`
    const value = typed && field in typed ? typed[field] : fields[field]
    const input = kind === 'boolean'
      ? h('input', { id: inputId, type: 'checkbox', name: field, form: formId, checked: Boolean(value) })
      : h('input', {
        id: inputId, name: field, form: formId, value: value === null || value === undefined ? '' : String(value),
        type: kind === 'number' || kind === 'integer' ? 'number' : 'text', step: kind === 'integer' ? '1' : kind === 'number' ? 'any' : null,
        'aria-describedby': `${inputId}-changed`
      })
    input.addEventListener('input', () => { state.editing.get(pk).fields[field] = input.type === 'checkbox' ? input.checked : input.value })
    cell.classList.add('editing')
    replace(cell,
      h('label', { for: inputId, class: 'visually-hidden' }, `${label(field)} of ${state.stream} ${pk}`), input,
      h('p', { class: 'changed', id: `${inputId}-changed`, 'data-changed': field, hidden: true }))
  }
  const actions = row.lastElementChild
  const formEl = h('form', { id: formId, onsubmit: (event) => { event.preventDefault(); save(pk) } })
  replace(actions,
    formEl,
    h('div', { class: 'actions' },
      h('button', { type: 'submit', form: formId, class: 'primary' }, 'Save'),
      h('button', { type: 'button', onclick: () => stopEdit(pk, true) }, 'Cancel')),
    h('p', { id: rowId(pk) + '-status', class: 'row-status', role: 'status' }))
  row.querySelector('input')?.focus()
}

function stopEdit (pk, focusEdit) {
  state.editing.delete(pk)
  const row = document.getElementById(rowId(pk))
  if (!row) return
  const fields = state.values.get(pk) || {}
  for (const field of state.columns) {
    const cell = row.querySelector(`td[data-field="${CSS.escape(field)}"]`)
    cell.classList.remove('editing')
    replace(cell, display(fields[field]))
  }
  const status = row.lastElementChild.querySelector('.row-status')
  const actions = actionsFor(pk)
  row.lastElementChild.replaceWith(actions)
  if (status?.textContent) rowStatus(pk, status.textContent, status.classList.contains('bad') ? 'bad' : 'ok')
  showRecord(pk)
  if (focusEdit) actions.querySelector('button.edit')?.focus()
}

function typedValue (field, input) {
  const { kind } = schemaType(field)
  if (input.type === 'checkbox') return input.checked
  const text = input.value
  if (text === '') return null // emptied: cleared (a required field refuses it)
  if (kind === 'integer') return Number.parseInt(text, 10)
  if (kind === 'number') return Number(text)
  return text
}

async function save (pk) {
  const row = document.getElementById(rowId(pk))
  const room = roomOf(pk)
  if (!row || !room) return
  rowStatus(pk, 'Saving…')
  await room.ready
  const record = room.record(pk)
  if (!record) {
    rowStatus(pk, 'This record no longer exists.', 'bad')
    return
  }
  const changes = {} // only the fields the person changed: others may have changed the rest
  for (const field of Object.keys(state.editing.get(pk)?.fields || {})) {
    const input = row.querySelector(`input[name="${CSS.escape(field)}"]`)
    if (!input) continue
    const value = typedValue(field, input)
    const before = record.get(field)
    if (value !== (before === undefined ? null : before)) changes[field] = value
  }
  if (!Object.keys(changes).length) {
    stopEdit(pk, true)
    rowStatus(pk, 'Nothing changed.')
    return
  }
  room.refusal = null
  const entry = room.edit(`${state.stream}/${pk}`, changes)
  state.values.set(pk, { ...state.values.get(pk), ...changes })
  if (!room.live) { // kept on this device, sent when the room is joined again
    stopEdit(pk, true)
    rowStatus(pk, KEPT, 'warn')
    announce(`${state.stream} ${pk} saved on this device.`)
    updateLive()
    return
  }
  try {
    await room.saved(entry.clock)
    note(room.name, (n) => { n.pending = n.pending.filter((e) => !(e.client === entry.client && e.clock === entry.clock)) })
    stopEdit(pk, true)
    rowStatus(pk, SAVED, 'ok')
    announce(`${state.stream} ${pk} saved.`)
  } catch (error) {
    stopEdit(pk, true)
    if (error.refused) rowStatus(pk, `${error.message}. The record is back to what the server holds.`, 'bad')
    else rowStatus(pk, KEPT, 'warn')
  }
  updateLive()
}

// --------------------------------------------------------------------------- pages

async function loadPage () {
  loading(section, 'Loading records…')
  for (const pk of [...state.editing.keys()]) state.editing.delete(pk)
  let page
  try {
    page = await api(`${base}/records`, { query: { stream: state.stream, q: state.q, cursor: state.cursor, limit: 25 } })
  } catch (error) {
    replace(section, errorNotice(error, { title: 'The records could not be loaded.' }))
    return
  }
  state.next = page.next_cursor
  state.keys = page.items.map((item) => String(item[state.pk]))
  state.values = new Map(page.items.map((item) => [String(item[state.pk]), item]))
  const searched = state.q ? ` matching “${state.q}”` : ''
  if (!page.items.length) {
    summary.textContent = state.q && page.next_cursor ? `No match in the ${page.scanned} records searched so far.` : ''
    replace(section, state.q
      ? emptyState('No records match', page.next_cursor ? 'Only part of the stream was searched: continue the search, or try other words.' : 'Try other words, or clear the search.')
      : emptyState('No records yet', 'Records appear here after the first sync. Run one from the integration’s page.',
        h('a', { class: 'button', href: `/integrations/${id}` }, 'Go to the integration')))
  } else {
    summary.textContent = `${page.items.length} ${state.stream}${searched} on this page` +
      (state.q && page.scanned ? ` (${page.scanned} records searched)` : '') + '.'
    replace(section, dataTable(`${state.stream} records`,
      [label(state.pk), ...state.columns.map(label), canEdit ? 'Actions' : 'Status'],
      page.items.map((item) => {
        const pk = String(item[state.pk])
        return h('tr', { id: rowId(pk) },
          h('th', { scope: 'row', 'data-label': label(state.pk) }, h('code', {}, pk)),
          state.columns.map((field) => cellFor(pk, field, item)),
          actionsFor(pk))
      }), { tableClass: 'records-table' }))
  }
  replace(pager,
    state.previous.length ? h('button', { type: 'button', onclick: () => turn(-1) }, 'Previous page') : null,
    page.next_cursor ? h('button', { type: 'button', onclick: () => turn(1) }, state.q && page.items.length < 25 ? 'Continue searching' : 'Next page') : null)
  await joinRooms()
}

function turn (direction) {
  if (direction > 0) { state.previous.push(state.cursor); state.cursor = state.next } else state.cursor = state.previous.pop() ?? null
  keepUrl()
  loadPage().then(() => document.getElementById('records-heading').focus?.())
}

function keepUrl () {
  const url = new URL(location.href)
  url.searchParams.set('stream', state.stream)
  if (state.q) url.searchParams.set('q', state.q); else url.searchParams.delete('q')
  history.replaceState(null, '', url)
}

function chooseStream (name) {
  const stream = state.streams.find((s) => s.name === name) || state.streams[0]
  state.stream = stream.name
  state.pk = Array.isArray(stream.primary_key) ? stream.primary_key[0] : (stream.primary_key || 'id')
  state.schema = stream.schema || {}
  state.columns = columnsOf(state.schema, state.pk)
}

form.addEventListener('submit', (event) => {
  event.preventDefault()
  chooseStream(form.elements.stream.value)
  state.q = form.elements.q.value.trim()
  state.cursor = null
  state.previous = []
  keepUrl()
  loadPage()
})

// work in progress survives an ended session: the rows being edited and what was typed
keep('records-edits', {
  save: () => (state.editing.size ? { stream: state.stream, rows: Object.fromEntries([...state.editing].map(([pk, e]) => [pk, e.fields])) } : null),
  restore: (data) => { state.restoring = data }
})

async function start () {
  let integration, streams
  try {
    [integration, streams] = await Promise.all([api(base), api(`${base}/streams`)])
  } catch (error) {
    replace(section, errorNotice(error, { title: error.status === 404 ? 'No such integration.' : 'The records could not be loaded.' }))
    return
  }
  document.getElementById('integration-link').textContent = integration.connector_name
  document.getElementById('records-title').textContent = `Records of ${integration.connector_name}`
  document.title = `Records of ${integration.connector_name} · SEED-OS`
  state.streams = streams.items
  if (!state.streams.length) {
    replace(section, emptyState('This connector syncs no records', 'It has actions only.'))
    form.hidden = true
    return
  }
  const params = new URL(location.href).searchParams
  const select = form.elements.stream
  replace(select, state.streams.map((s) => h('option', { value: s.name }, s.name)))
  chooseStream(state.restoring?.stream || params.get('stream'))
  select.value = state.stream
  state.q = params.get('q') || ''
  form.elements.q.value = state.q
  await loadPage()
  for (const [pk, typed] of Object.entries(state.restoring?.rows || {})) {
    if (state.keys.includes(pk)) startEdit(pk, typed)
  }
}

start()
