// The integration page's actions: each action the connector declares (its name, description and
// a form from its input's JSON Schema), run through POST .../actions/{name} with an
// Idempotency-Key (act()), its output shown. Offline, a run waits on this device.

import { act } from './api.js'
import { announce, errorNotice, h, replace } from './dom.js'
import { isQueued, QUEUED } from './offline_queue.js'
import { schemaForm } from './schema_form.js'

export async function loadActions (ctx, actions) {
  const body = document.getElementById('actions-body')
  if (!actions.length) {
    replace(body, h('p', {}, 'This connector has no actions.'))
    return
  }
  replace(body, actions.map((action) => actionBlock(ctx, action)))
}

// A viewer sees what the connector can do, without a form to run it
function described (action) {
  return h('div', { class: 'action-form' },
    h('h3', {}, action.name),
    action.description ? h('p', { class: 'section-intro' }, action.description) : null)
}

function actionBlock (ctx, action) {
  if (!ctx.canWrite) return described(action)
  const name = action.name
  const slug = String(name).replace(/[^A-Za-z0-9_-]/g, '-')
  const fieldsBox = h('div', {})
  const result = h('div', { class: 'action-result' })
  const run = h('button', { type: 'submit', class: 'primary' }, `Run ${name}`)
  const form = h('form', { class: 'action-form', novalidate: true, dataset: { action: name } },
    h('h3', { id: `action-${slug}` }, name),
    action.description ? h('p', { class: 'section-intro' }, action.description) : null,
    fieldsBox,
    h('div', { class: 'actions' }, run),
    result)
  form.setAttribute('aria-labelledby', `action-${slug}`)
  const schema = action.input_schema && typeof action.input_schema === 'object' ? action.input_schema : {}
  const built = schemaForm(fieldsBox, schema, { prefix: `action-${slug}` })
  built.summary.remove() // the connector checks the input; its refusal is shown below the form
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    if (run.getAttribute('aria-disabled') === 'true') return
    run.setAttribute('aria-disabled', 'true')
    built.clearErrors()
    replace(result)
    const { config: input } = built.read()
    try {
      const answer = await act({ method: 'POST', path: `${ctx.base}/actions/${encodeURIComponent(name)}`, body: { input } })
      if (isQueued(answer)) {
        replace(result, h('p', { class: 'notice info', role: 'status' }, QUEUED))
        return
      }
      replace(result, h('p', { class: 'notice ok', role: 'status' }, `${name} ran. Its output:`),
        h('pre', { class: 'mono action-output', tabindex: '0', 'aria-label': `Output of ${name}` }, JSON.stringify(answer.output, null, 2)))
      announce(`${name} ran.`)
    } catch (error) {
      replace(result, errorNotice(error, { title: `${name} did not run.` }))
      announce(`${name} did not run: ${error.message}`)
    } finally {
      run.removeAttribute('aria-disabled')
    }
  })
  return form
}
