// Charts as inline SVG: a sparkline for a table row and a line chart with axes; each has a
// text alternative saying what it shows.

import { fmtMs } from './dom.js'

const SVG = 'http://www.w3.org/2000/svg'
const el = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  return node
}

function path (values, width, height, pad, max) {
  const step = values.length > 1 ? (width - 2 * pad) / (values.length - 1) : 0
  const parts = []
  let pen = false
  values.forEach((v, i) => {
    if (v === null || v === undefined) { pen = false; return }
    const x = pad + i * step
    const y = height - pad - (max ? (v / max) * (height - 2 * pad) : 0)
    parts.push(`${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`)
    pen = true
  })
  return parts.join(' ')
}

export function describeLatency (values, what = 'p95 latency') {
  const known = values.filter((v) => v !== null && v !== undefined)
  if (!known.length) return `No calls, so no ${what}, in this period.`
  return `${what}: lowest ${fmtMs(Math.min(...known))}, highest ${fmtMs(Math.max(...known))}, latest ${fmtMs(known[known.length - 1])}.`
}

export function sparkline (values, { label } = {}) {
  const width = 128; const height = 32; const pad = 3
  const max = Math.max(0, ...values.filter((v) => v !== null && v !== undefined))
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'spark', role: 'img', 'aria-label': label || describeLatency(values) })
  svg.append(el('line', { x1: pad, x2: width - pad, y1: height - pad, y2: height - pad, stroke: 'currentColor', 'stroke-opacity': '.35' }))
  svg.append(el('path', { d: path(values, width, height, pad, max), fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-linejoin': 'round' }))
  return svg
}

// series: [{values, label, dash}], at: the times; a line chart with a y axis in ms
export function lineChart (series, at, { label } = {}) {
  const width = 640; const height = 160; const pad = 28
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined)
  const max = Math.max(1, ...all)
  const svg = el('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': label, preserveAspectRatio: 'none' })
  for (const f of [0, 0.5, 1]) {
    const y = height - pad - f * (height - 2 * pad)
    svg.append(el('line', { x1: pad, x2: width - 4, y1: y, y2: y, class: 'grid-line' }))
    const t = el('text', { x: 2, y: y + 4 }); t.textContent = fmtMs(max * f); svg.append(t)
  }
  series.forEach((s) => {
    svg.append(el('path', { d: path(s.values, width, height, pad, max), fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-dasharray': s.dash || 'none' }))
  })
  return svg
}
