// Charts as inline SVG: a sparkline for a table row and a line chart with axes; each has a
// text alternative saying what it shows.

import { fmtMs } from './dom.js'

const SVG = 'http://www.w3.org/2000/svg'
const el = (tag, attrs = {}) => {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  return node
}

// A series' line through its known points, broken where values are missing, and a dot on a
// point with no known neighbour (a lone hour would otherwise draw nothing). `box`: the plot
// area {left, top, width, height} in the SVG's units, `max` the value at its top.
function marks (values, box, max, { dash, r = 3 } = {}) {
  const step = values.length > 1 ? box.width / (values.length - 1) : 0
  const known = (i) => values[i] !== null && values[i] !== undefined
  const parts = []
  const dots = []
  values.forEach((v, i) => {
    if (!known(i)) return
    const x = (box.left + i * step).toFixed(1)
    const y = (box.top + box.height - (max ? (v / max) * box.height : 0)).toFixed(1)
    parts.push(`${known(i - 1) ? 'L' : 'M'}${x},${y}`)
    if (!known(i - 1) && !known(i + 1)) dots.push(el('circle', { cx: x, cy: y, r, fill: 'currentColor', class: 'dot' }))
  })
  const line = el('path', { d: parts.join(' '), fill: 'none', stroke: 'currentColor', 'stroke-width': 2, 'stroke-linejoin': 'round', 'stroke-dasharray': dash || 'none' })
  return [line, ...dots]
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
  svg.append(...marks(values, { left: pad, top: pad, width: width - 2 * pad, height: height - 2 * pad }, max, { r: 2.5 }))
  return svg
}

// series: [{values, dash}], at: the times; a line chart with a y axis in ms. It is drawn in the
// pixels it is given (again when its size changes), so its labels and dots are never stretched
// however wide the page makes it; 640 x 160 until it is laid out.
export function lineChart (series, at, { label } = {}) {
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined)
  const max = Math.max(1, ...all)
  const svg = el('svg', { class: 'chart', role: 'img', 'aria-label': label })
  const draw = (width, height) => {
    const box = { left: 52, top: 12, width: width - 52 - 8, height: height - 24 }
    svg.setAttribute('viewBox', `0 0 ${width} ${height}`)
    svg.replaceChildren()
    for (const f of [0, 0.5, 1]) {
      const y = box.top + box.height - f * box.height
      svg.append(el('line', { x1: box.left, x2: width - 4, y1: y, y2: y, class: 'grid-line' }))
      const t = el('text', { x: box.left - 6, y: y + 4, 'text-anchor': 'end' }); t.textContent = fmtMs(max * f); svg.append(t)
    }
    for (const s of series) svg.append(...marks(s.values, box, max, { dash: s.dash }))
  }
  draw(640, 160)
  new ResizeObserver(() => {
    if (svg.clientWidth > 0 && svg.clientHeight > 0) draw(svg.clientWidth, svg.clientHeight)
  }).observe(svg)
  return svg
}
