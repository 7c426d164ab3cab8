// The comparison's output: one Markdown table per phase (sides side by side, then Switchboard's ratio to each KCM
// side), the raw figures as JSON, and a hand-written SVG bar chart of writes and convergence per phase.
import { SIDE_TITLES, type SideName } from './sides.js';

export interface PhaseFigures {
  /** Seconds after the last workload write until slices and Endpoints matched (undefined: timed out). */
  convergenceSeconds?: number;
  slicesConvergenceSeconds?: number;
  endpointsConvergenceSeconds?: number;
  unconverged: number;
  sliceWrites: number;
  endpointsWrites: number;
  controllerCpuSeconds: number;
  apiServerCpuSeconds: number;
  peakRssMiB: number;
  steadyRssMiB: number;
  /** Switchboard only: V8 heap after the latest full GC. */
  liveHeapMiB?: number;
  staleSliceRetries: number;
  staleEndpointsRetries: number;
  droppedKeys: number;
  /** Switchboard only: syncs that waited for the echo of their own writes instead of failing. */
  staleWaits?: number;
  /** Switchboard only: seconds its requests waited for client QPS/burst tokens, summed over requests. */
  throttleSeconds?: number;
  livePerPodKiB?: number;
  podChanges: number;
  /** Flap only: slices that held the flapping pods when it started (each sync that changes them writes these). */
  slicesHoldingChangedPods?: number;
  /** How long the workload took to make the phase's pod changes (its pace differs per side on a shared machine). */
  driveSeconds: number;
}

export type Results = Map<string, Map<SideName, PhaseFigures>>; // phase → side → figures

interface Row {
  label: string;
  pick: (f: PhaseFigures) => number | undefined;
  digits: number;
}

const ROWS: Row[] = [
  { label: 'workload: pod changes per second', pick: (f) => (f.driveSeconds > 0 ? f.podChanges / f.driveSeconds : undefined), digits: 0 },
  { label: 'convergence after last write (s)', pick: (f) => f.convergenceSeconds, digits: 2 },
  { label: '… EndpointSlices (s)', pick: (f) => f.slicesConvergenceSeconds, digits: 2 },
  { label: '… Endpoints (s)', pick: (f) => f.endpointsConvergenceSeconds, digits: 2 },
  { label: 'EndpointSlice writes', pick: (f) => f.sliceWrites, digits: 0 },
  { label: 'Endpoints writes', pick: (f) => f.endpointsWrites, digits: 0 },
  { label: 'slices holding the flapping pods', pick: (f) => f.slicesHoldingChangedPods, digits: 0 },
  { label: 'controller CPU (s)', pick: (f) => f.controllerCpuSeconds, digits: 1 },
  { label: 'controller peak RSS (MiB)', pick: (f) => f.peakRssMiB, digits: 0 },
  { label: 'controller steady RSS (MiB)', pick: (f) => f.steadyRssMiB, digits: 0 },
  { label: 'API server CPU (s)', pick: (f) => f.apiServerCpuSeconds, digits: 1 },
  { label: 'stale-cache retries: slices', pick: (f) => f.staleSliceRetries, digits: 0 },
  { label: 'stale-cache retries: Endpoints', pick: (f) => f.staleEndpointsRetries, digits: 0 },
  { label: 'keys dropped after retries', pick: (f) => f.droppedKeys, digits: 0 },
  { label: 'stale-cache waits for own echo (no retry)', pick: (f) => f.staleWaits, digits: 0 },
  { label: 'client QPS/burst wait, summed over requests (s)', pick: (f) => f.throttleSeconds, digits: 2 },
  { label: 'live V8 heap after full GC (MiB)', pick: (f) => f.liveHeapMiB, digits: 0 },
  { label: '… per pod (KiB)', pick: (f) => f.livePerPodKiB, digits: 2 },
];

const fmt = (v: number | undefined, digits: number) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(digits));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || !(b > 0) || Number.isNaN(a) ? '–' : `${(a / b).toFixed(2)}×`);

export function phaseTable(phase: string, bySide: Map<SideName, PhaseFigures>): string {
  const sides = [...bySide.keys()];
  const ours = bySide.get('switchboard');
  const others = sides.filter((s) => s !== 'switchboard');
  const header = ['phase: ' + phase, ...sides.map((s) => SIDE_TITLES[s]), ...(ours ? others.map((s) => `SB ÷ ${SIDE_TITLES[s]}`) : [])];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of ROWS) {
    const values = sides.map((s) => row.pick(bySide.get(s)!));
    if (values.every((v) => v === undefined)) continue;
    const ratios = ours ? others.map((s) => ratio(row.pick(ours), row.pick(bySide.get(s)!))) : [];
    lines.push(`| ${[row.label, ...values.map((v) => fmt(v, row.digits)), ...ratios].join(' | ')} |`);
  }
  const unconverged = sides.filter((s) => bySide.get(s)!.unconverged > 0);
  if (unconverged.length) lines.push(`\n(not converged within the timeout: ${unconverged.map((s) => `${SIDE_TITLES[s]}: ${bySide.get(s)!.unconverged} Services`).join(', ')})`);
  return lines.join('\n');
}

export function resultsJson(meta: unknown, results: Results): string {
  const phases = Object.fromEntries([...results].map(([phase, bySide]) => [phase, Object.fromEntries(bySide)]));
  return JSON.stringify({ ...(meta as object), phases }, null, 2);
}

const COLORS: Record<SideName, string> = { 'kcm-default': '#8da0cb', 'kcm-unthrottled': '#66c2a5', switchboard: '#fc8d62', 'switchboard-unthrottled': '#e78ac3' };

/** Two grouped bar charts (writes: slices + Endpoints; convergence seconds), one group per phase, a bar per side. */
export function chartSvg(title: string, results: Results): string {
  const phases = [...results.keys()];
  const sides = [...new Set([...results.values()].flatMap((m) => [...m.keys()]))];
  const panels: { label: string; value: (f: PhaseFigures) => number }[] = [
    { label: 'EndpointSlice + Endpoints writes', value: (f) => f.sliceWrites + f.endpointsWrites },
    { label: 'convergence after last write (s)', value: (f) => f.convergenceSeconds ?? 0 },
  ];
  const panelW = 420;
  const panelH = 220;
  const margin = { left: 56, top: 48, bottom: 40 };
  const width = panels.length * (panelW + margin.left) + 20;
  const height = panelH + margin.top + margin.bottom + 30;
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  panels.forEach((panel, p) => {
    const x0 = margin.left + p * (panelW + margin.left);
    const y0 = margin.top;
    const max = Math.max(1e-9, ...phases.flatMap((ph) => sides.map((s) => (results.get(ph)!.get(s) ? panel.value(results.get(ph)!.get(s)!) : 0))));
    parts.push(`<text x="${x0}" y="${y0 - 10}" font-weight="bold">${esc(panel.label)}</text>`);
    parts.push(`<line x1="${x0}" y1="${y0 + panelH}" x2="${x0 + panelW}" y2="${y0 + panelH}" stroke="black"/>`);
    parts.push(`<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y0 + panelH}" stroke="black"/>`);
    parts.push(`<text x="${x0 - 4}" y="${y0 + 4}" text-anchor="end">${max >= 10 ? Math.round(max) : max.toFixed(1)}</text>`);
    parts.push(`<text x="${x0 - 4}" y="${y0 + panelH}" text-anchor="end">0</text>`);
    const groupW = panelW / phases.length;
    const barW = (groupW * 0.8) / sides.length;
    phases.forEach((phase, g) => {
      sides.forEach((side, i) => {
        const f = results.get(phase)!.get(side);
        if (!f) return;
        const v = panel.value(f);
        const h = (v / max) * panelH;
        const x = x0 + g * groupW + groupW * 0.1 + i * barW;
        parts.push(`<rect x="${x.toFixed(1)}" y="${(y0 + panelH - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[side]}"><title>${esc(`${SIDE_TITLES[side]}, ${phase}: ${v >= 10 ? Math.round(v) : v.toFixed(2)}`)}</title></rect>`);
        parts.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y0 + panelH - h - 3).toFixed(1)}" text-anchor="middle" font-size="9">${v >= 10 ? Math.round(v) : v.toFixed(1)}</text>`);
      });
      parts.push(`<text x="${(x0 + g * groupW + groupW / 2).toFixed(1)}" y="${y0 + panelH + 16}" text-anchor="middle">${esc(phase)}</text>`);
    });
  });
  sides.forEach((side, i) => {
    const x = margin.left + i * 150;
    const y = height - 14;
    parts.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${COLORS[side]}"/><text x="${x + 14}" y="${y}">${esc(SIDE_TITLES[side])}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
