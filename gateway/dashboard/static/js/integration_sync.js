// The integration page's sync part: status (running, outbox depth, dead letters, last run),
// "run sync now", the run history and the dead letters with retry and discard.

import { act, api } from './api.js'
import { isQueued, QUEUED } from './offline_queue.js'
import { announce, badge, confirmDialog, dataTable, emptyState, errorNotice, fmtNumber, h, replace, timeEl } from './dom.js'

const OUTCOME_TONES = { succeeded: 'ok', running: 'info', failed: 'bad', interrupted: 'warn', partial: 'warn' }
const POLL_MS = 1500
const POLL_FOR_MS = 120_000


function statusStats (s) {
  const last = s.last_run
  return h('dl', { class: 'stats' },
    h('div', {}, h('dt', {}, 'Now'), h('dd', {}, s.running ? badge('running', 'info') : badge('idle', 'plain'))),
    h('div', {}, h('dt', {}, 'Last sync'), h('dd', {}, timeEl(s.last_sync_at))),
    h('div', {}, h('dt', {}, 'Waiting to send'), h('dd', {}, fmtNumber(s.outbox_depth), ' changes')),
    h('div', {}, h('dt', {}, 'Dead letters'), h('dd', {}, fmtNumber(s.dead_letters))),
    h('div', {}, h('dt', {}, 'Last run'), h('dd', {}, last ? badge(last.outcome, OUTCOME_TONES[last.outcome] || 'plain') : 'none yet')))
}

function runRow (r) {
  return h('tr', {},
    h('td', { 'data-label': 'Started' }, timeEl(r.started_at)),
    h('td', { 'data-label': 'Kind' }, r.kind),
    h('td', { 'data-label': 'Outcome' }, badge(r.outcome, OUTCOME_TONES[r.outcome] || 'plain'),
      r.error ? h('div', { class: 'mono' }, r.error) : null),
    h('td', { 'data-label': 'Pulled', class: 'num' }, fmtNumber(r.records_pulled)),
    h('td', { 'data-label': 'Deleted', class: 'num' }, fmtNumber(r.records_deleted)),
    h('td', { 'data-label': 'Pushed', class: 'num' }, fmtNumber(r.records_pushed)),
    h('td', { 'data-label': 'Finished' }, r.finished_at ? timeEl(r.finished_at) : '—'))
}

export async function loadSync (ctx) {
  const body = document.getElementById('sync-body')
  const [status, runs] = await Promise.all([api(`${ctx.base}/sync/status`), api(`${ctx.base}/sync/runs`, { query: { limit: 10 } })])
  const runButton = ctx.canWrite
    ? h('button', { type: 'button', class: 'primary', 'aria-disabled': status.running ? 'true' : null, onclick: (e) => runNow(ctx, e.currentTarget) },
      status.running ? 'Sync running…' : 'Run sync now')
    : null
  replace(body,
    statusStats(status),
    h('div', { id: 'sync-notice' }),
    runButton ? h('div', { class: 'actions' }, runButton) : null,
    h('h3', {}, 'Recent runs'),
    runs.items.length
      ? dataTable('Recent sync runs, newest first', [['Started'], ['Kind'], ['Outcome'], ['Pulled', 'num'], ['Deleted', 'num'], ['Pushed', 'num'], ['Finished']],
        runs.items.map(runRow))
      : h('p', {}, ctx.canWrite ? 'No sync has run yet. Run one now to pull the records.' : 'No sync has run yet.'))
  await loadDeadLetters(ctx, status)
  return status
}

async function runNow (ctx, trigger) {
  if (trigger.getAttribute('aria-disabled') === 'true') return
  trigger.setAttribute('aria-disabled', 'true')
  trigger.textContent = 'Sync running…'
  try {
    const answer = await act({ method: 'POST', path: `${ctx.base}/sync/run` })
    if (isQueued(answer)) {
      replace(document.getElementById('sync-notice'), h('p', { class: 'notice info', role: 'status' }, QUEUED))
      trigger.removeAttribute('aria-disabled')
      trigger.textContent = 'Run sync now'
      return
    }
    announce('Sync started.')
  } catch (error) {
    if (error.code !== 'sync_running') {
      replace(document.getElementById('sync-notice'), errorNotice(error, { title: 'The sync did not start.' }))
      trigger.removeAttribute('aria-disabled')
      trigger.textContent = 'Run sync now'
      return
    }
  }
  const until = Date.now() + POLL_FOR_MS
  const poll = async () => {
    let status = null
    try { status = await api(`${ctx.base}/sync/status`) } catch (_) { /* try again */ }
    if ((status && !status.running) || Date.now() > until) {
      const fresh = await loadSync(ctx)
      const last = fresh.last_run
      announce(last ? `Sync ${last.outcome}: ${last.records_pulled} pulled, ${last.records_pushed} pushed.` : 'Sync finished.')
      document.querySelector('#sync-body button.primary')?.focus()
      return
    }
    setTimeout(poll, POLL_MS)
  }
  setTimeout(poll, POLL_MS)
}

function letterRow (ctx, letter) {
  const what = `${letter.stream} ${letter.record_key}`
  return h('tr', { dataset: { letter: letter.id } },
    h('td', { 'data-label': 'Record' }, h('span', { class: 'mono' }, what), letter.deleted ? ' (deletion)' : ''),
    h('td', { 'data-label': 'Reason' }, letter.last_error || '—'),
    h('td', { 'data-label': 'Attempts', class: 'num' }, fmtNumber(letter.attempts)),
    h('td', { 'data-label': 'Failed since' }, timeEl(letter.first_failed_at)),
    ctx.canWrite
      ? h('td', { 'data-label': 'Actions' }, h('div', { class: 'actions' },
        h('button', { type: 'button', 'aria-label': `Retry ${what}`, onclick: (e) => retry(ctx, letter, e.currentTarget) }, 'Retry'),
        h('button', { type: 'button', class: 'danger', 'aria-label': `Discard ${what}`, onclick: (e) => discard(ctx, letter, e.currentTarget) }, 'Discard')))
      : null)
}

async function loadDeadLetters (ctx, status) {
  const body = document.getElementById('dead-body')
  const page = await api(`${ctx.base}/sync/dead-letters`, { query: { limit: 50 } })
  if (!page.items.length) {
    replace(body, emptyState('No dead letters', 'Every change reached the external system, or is still on its way.', null, { level: 3 }))
    return
  }
  const heads = [['Record'], ['Reason'], ['Attempts', 'num'], ['Failed since']]
  if (ctx.canWrite) heads.push(['Actions'])
  replace(body,
    h('div', { id: 'dead-notice' }),
    dataTable('Dead letters', heads, page.items.map((l) => letterRow(ctx, l))),
    page.next_cursor ? h('p', {}, `Showing the first ${page.items.length} of ${fmtNumber(status.dead_letters)}.`) : null)
}

async function afterLetter (ctx, message) {
  announce(message)
  await loadSync(ctx)
  const next = document.querySelector('#dead-body button')
  const heading = document.getElementById('dead-heading')
  if (next) next.focus()
  else { heading.setAttribute('tabindex', '-1'); heading.focus() }
}

async function retry (ctx, letter, trigger) {
  trigger.setAttribute('aria-disabled', 'true')
  try {
    await act({ method: 'POST', path: `${ctx.base}/sync/dead-letters/${letter.id}/retry` })
    await afterLetter(ctx, `${letter.stream} ${letter.record_key} will be sent again.`)
  } catch (error) {
    replace(document.getElementById('dead-notice'), errorNotice(error, { title: 'Could not retry it.' }))
    trigger.removeAttribute('aria-disabled')
  }
}

async function discard (ctx, letter, trigger) {
  const what = `${letter.stream} ${letter.record_key}`
  const ok = await confirmDialog({
    title: `Discard the change to ${what}?`,
    text: 'The external system never gets this change; the record there stays as it is. This cannot be undone.',
    confirm: 'Discard the change',
    trigger
  })
  if (!ok) return
  try {
    await act({ method: 'DELETE', path: `${ctx.base}/sync/dead-letters/${letter.id}` })
    await afterLetter(ctx, `The change to ${what} was discarded.`)
  } catch (error) {
    replace(document.getElementById('dead-notice'), errorNotice(error, { title: 'Could not discard it.' }))
    trigger.focus()
  }
}
