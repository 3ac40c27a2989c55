/** Where the time goes in a `node --cpu-prof` profile: self time by area and by function. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** node_modules/<pkg>, dist/<area>, node:<module>, or V8's pseudo-frames ((garbage collector), (idle), (program)). */
function area(url, name) {
  if (!url) return name.startsWith('(') ? name : `(native) ${name}`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts[0] === 'internal' ? `internal/${parts[1]}` : parts[0]}`;
  }
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return `dist/${url.slice(dist + 6).split('/')[0]}`;
  return path.basename(url);
}

export function summarize(file, top = 20) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byArea = new Map();
  const byFn = new Map();
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    const name = functionName || '(anonymous)';
    const a = area(url, name);
    // Native frames (fsync, writev, spawn's fork) keep their own names: they are often the answer.
    const areaKey = a.startsWith('(native)') ? '(native: fs and syscalls)' : a;
    byArea.set(areaKey, (byArea.get(areaKey) ?? 0) + us);
    const key = url ? `${name}  ${a}:${lineNumber + 1}` : a;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  const busy = total - (byArea.get('(idle)') ?? 0);
  const pct = (us) => `${((us / busy) * 100).toFixed(1).padStart(5)} %`;
  const row = ([k, us]) => `  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`;
  const sorted = (m) => [...m].filter(([k]) => k !== '(idle)').sort((p, q) => q[1] - p[1]);
  return [
    `${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(2)} s busy`,
    'self time by area (share of busy time):',
    ...sorted(byArea).slice(0, 14).map(row),
    `top ${top} functions by self time:`,
    ...sorted(byFn).slice(0, top).map(row),
  ].join('\n');
}
