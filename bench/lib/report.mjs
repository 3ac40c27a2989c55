/** The text report and the issue's targets (ratios in one run), met or missed. */
import { renderCluster } from './cluster.mjs';
import { SHIPPED_FLAGS } from './footprint.mjs';
import { ms, ratio, table, x } from './stats.mjs';

const find = (results, broker, name) => results.e2e.find((r) => r.broker === broker && r.name === name);

/**
 * Every target as a row: issue 22's (docs/performance.md § Targets), then issue 8's that issue 22 does
 * not replace (p99, sleep, fan-out, send --group). Ratios are agent over naive bridge in this run.
 */
export function targets(results) {
  const out = [];
  const add = (issue, target, value, limit, met, note = '') =>
    out.push({ issue, target, value, limit, met, note });
  // The same latency against a naive bridge that fsyncs one journal line before each spawn: what running
  // a command at most once across a power loss costs at least (docs/performance.md § The durable floor).
  const durableRow = (r, target) => {
    const p50 = ratio(r.agent.p50, r.durable.p50);
    add(
      22,
      `${target}, against the durable naive bridge`,
      x(p50),
      '≤ 1.20×',
      p50 <= 1.2,
      `${ms(r.agent.p50)} vs ${ms(r.durable.p50)} ms (its fsync: +${ms(r.durable.p50 - r.naive.p50)} ms)`,
    );
  };
  const fp = results.footprint;
  if (fp) {
    const i = fp.idle;
    // The agent as it is shipped to run: with the NODE_OPTIONS of packaging/homelab-cmd.service and
    // docker/Dockerfile (footprint.mjs, SHIPPED_FLAGS; docs/performance.md § Node flags). The bin without them is the detail.
    const shipped = i.shipped ?? i.agent;
    const as = i.shipped ? ', as the unit and image run it' : '';
    add(
      22,
      `idle agent RSS, max in ${i.windowSeconds.toFixed(0)} s (heartbeat ${i.heartbeat}${as})`,
      `${shipped.rssMaxMb.toFixed(1)} MB`,
      '≤ 55 MB',
      shipped.rssMaxMb <= 55,
      `floors: bare MQTT.js client ${i.naive.rssMaxMb.toFixed(1)} MB` +
        `${i.naiveBundled ? ` (bundled ${i.naiveBundled.rssMaxMb.toFixed(1)} MB)` : ''}, bare node ${i.bare.rssMaxMb.toFixed(1)} MB; ` +
        `${i.shipped ? `without the unit's flags ${i.agent.rssMaxMb.toFixed(1)} MB; ` : ''}` +
        `${i.dist ? `from dist/ ${i.dist.rssMaxMb.toFixed(1)} MB` : ''}`,
    );
    add(
      22,
      `idle agent CPU (${i.windowSeconds.toFixed(0)} s, heartbeat ${i.heartbeat}${as})`,
      `${shipped.cpuPct.toFixed(3)} %`,
      '≤ 0.10 %',
      shipped.cpuPct <= 0.1,
      `bare MQTT.js client ${i.naive.cpuPct.toFixed(3)} %` +
        `${i.naiveBundled ? ` (bundled ${i.naiveBundled.cpuPct.toFixed(3)} %)` : ''}, bare node ${i.bare.cpuPct.toFixed(3)} %` +
        `${i.shipped ? `; without the unit's flags ${i.agent.cpuPct.toFixed(3)} %` : ''}` +
        (shipped.startTailPct === undefined
          ? ''
          : `; the window opens ${i.settleSeconds.toFixed(0)} s after online (in those seconds: ${shipped.startTailPct.toFixed(3)} %)`),
    );
  }
  for (const broker of ['embedded', 'mosquitto-nodelay']) {
    const r = find(results, broker, 'noop c1');
    if (!r) continue;
    const p50 = ratio(r.agent.p50, r.naive.p50);
    add(
      22,
      `e2e p50 /bin/true c1, ${broker}`,
      x(p50),
      '≤ 1.20×',
      p50 <= 1.2,
      `${ms(r.agent.p50)} vs ${ms(r.naive.p50)} ms`,
    );
    if (r.durable) durableRow(r, `e2e p50 /bin/true c1, ${broker}`);
  }
  const stock = find(results, 'mosquitto-stock', 'noop c1 qos0 presses');
  if (stock) {
    const p50 = ratio(stock.agent.p50, stock.naive.p50);
    add(
      22,
      'e2e p50 /bin/true c1, stock Mosquitto, QoS 0 presses',
      x(p50),
      '≤ 1.20×',
      p50 <= 1.2,
      `${ms(stock.agent.p50)} vs ${ms(stock.naive.p50)} ms`,
    );
    if (stock.durable) durableRow(stock, 'e2e p50 /bin/true c1, stock Mosquitto, QoS 0 presses');
  }
  for (const broker of ['embedded', 'mosquitto-nodelay']) {
    const r = find(results, broker, 'noop c16');
    if (!r) continue;
    const t = ratio(r.agent.perSec, r.naive.perSec);
    add(
      22,
      `throughput c16, ${broker}`,
      x(t),
      '≥ 0.95×',
      t >= 0.95,
      `${r.agent.perSec.toFixed(0)} vs ${r.naive.perSec.toFixed(0)} req/s`,
    );
    if (r.durable) {
      const td = ratio(r.agent.perSec, r.durable.perSec);
      add(
        22,
        `throughput c16, ${broker}, against the durable naive bridge`,
        x(td),
        '≥ 0.95×',
        td >= 0.95,
        `${r.agent.perSec.toFixed(0)} vs ${r.durable.perSec.toFixed(0)} req/s (the naive bridge ${r.naive.perSec.toFixed(0)})`,
      );
    }
  }
  if (fp) {
    const d = fp.start.byBin?.dist;
    add(
      22,
      'start → online, after Node is up',
      `${fp.start.afterNodeUpMs.toFixed(0)} ms`,
      '≤ 150 ms',
      fp.start.afterNodeUpMs <= 150,
      `spawn → online ${fp.start.onlineMs.toFixed(0)} ms, bare node up ${fp.start.nodeUpMs.toFixed(0)} ms` +
        `${d && fp.start.byBin.package ? `; from dist/ ${d.afterNodeUpMs.toFixed(0)} ms` : ''}` +
        // The floor: a bundled MQTT.js client that connects and subscribes, and does nothing else.
        `${fp.start.floor ? `; a bundled MQTT.js client subscribed ${fp.start.floor.afterNodeUpMs.toFixed(0)} ms after` : ''}`,
    );
  }
  const pkg = results.package;
  if (pkg) {
    add(
      22,
      'npm install -g: packages installed',
      String(pkg.packages),
      '≤ 5',
      pkg.packages <= 5,
      'the package and its production dependencies',
    );
    add(
      22,
      'npm install -g: size installed',
      `${pkg.installedMb.toFixed(1)} MB`,
      '≤ 5 MB',
      pkg.installedMb <= 5,
      `tarball ${pkg.tarballMb.toFixed(1)} MB`,
    );
  }
  for (const broker of ['embedded', 'mosquitto-nodelay']) {
    const r = find(results, broker, 'noop c1');
    if (!r) continue;
    const p99 = ratio(r.agent.p99, r.naive.p99);
    add(
      8,
      `e2e p99 /bin/true c1, ${broker}`,
      x(p99),
      '≤ 2.00×',
      p99 <= 2,
      `${ms(r.agent.p99)} vs ${ms(r.naive.p99)} ms`,
    );
  }
  if (stock) {
    const p99 = ratio(stock.agent.p99, stock.naive.p99);
    add(
      8,
      'e2e p99 /bin/true c1, stock Mosquitto, QoS 0 presses',
      x(p99),
      '≤ 2.00×',
      p99 <= 2,
      `${ms(stock.agent.p99)} vs ${ms(stock.naive.p99)} ms`,
    );
  }
  for (const r of results.e2e.filter((e) => e.action === 'sleep' && e.concurrency === 1)) {
    add(
      8,
      `sleep 0.1 p50 c1, ${r.broker}${r.qos === 0 ? ' (QoS 0 presses)' : ''}`,
      `+${ms(r.agent.p50 - 100)} ms`,
      '≤ +8 ms',
      r.agent.p50 - 100 <= 8,
      `naive +${ms(r.naive.p50 - 100)} ms`,
    );
  }
  const biggest = Math.max(0, ...results.fanout.map((f) => f.count));
  for (const f of results.fanout.filter((g) => g.count === biggest)) {
    const t = ratio(f.agent.ms, f.naive.ms);
    add(
      8,
      `fan-out to ${f.count}${f.count < 1000 ? ' (quick: 1,000 in full)' : ''}, ${f.broker}`,
      x(t),
      '≤ 1.50×',
      t <= 1.5,
      `${f.agent.ms.toFixed(0)} vs ${f.naive.ms.toFixed(0)} ms`,
    );
  }
  for (const f of results.fanout.filter((g) => g.count === biggest && g.agent.cli)) {
    const c = f.agent.cli;
    const t = ratio(c.ms, f.agent.ms);
    add(
      8,
      `send --group to ${f.count}, ${f.broker}`,
      x(t),
      '≤ 1.20× raw',
      t <= 1.2 && c.errors === 0,
      `${c.ms.toFixed(0)} vs raw ${f.agent.ms.toFixed(0)} ms; whole command ${c.wallMs.toFixed(0)} ms, ${c.succeeded}/${f.count} ok, CLI max RSS ${c.maxRssMb.toFixed(0)} MB`,
    );
  }
  return out;
}

export function render(results) {
  const m = results.meta;
  const parts = [];
  parts.push(`homelab-cmd bench (${m.mode}) — ${m.date}`);
  parts.push(
    `machine: ${m.nproc} cores (${m.cpu}), ${m.memGb} GB, Linux ${m.kernel}; node ${m.node}; mosquitto ${m.mosquitto}; commit ${m.commit}; ${m.seconds.toFixed(0)} s`,
  );
  parts.push(
    `CPUs busy before the start: ${m.busyBeforePct} %; load average at start ${m.loadavgStart.join(' ')}, at end ${m.loadavgEnd.join(' ')}`,
  );
  if (m.agentUnderTest) parts.push(`agent under test (e2e, footprint): ${m.agentUnderTest}`);
  if (results.package)
    parts.push(
      `package (npm pack, npm install -g): ${results.package.packages} package(s), ${results.package.installedMb.toFixed(1)} MB installed, tarball ${results.package.tarballMb.toFixed(1)} MB`,
    );

  if (results.e2e.length > 0) {
    parts.push(
      '',
      'E2E LATENCY, ms from publishing a request to receiving its final result (agent process vs naive bridge process, same broker, same run)',
    );
    parts.push(
      table(
        [
          'broker',
          'scenario',
          'n',
          'agent p50',
          'p90',
          'p99',
          'naive p50',
          'p90',
          'p99',
          'p50 ratio',
          'p99 ratio',
          'RSS MB a/n',
          'errors',
        ],
        results.e2e.map((r) => [
          r.broker,
          r.name,
          r.agent.n,
          ms(r.agent.p50),
          ms(r.agent.p90),
          ms(r.agent.p99),
          ms(r.naive.p50),
          ms(r.naive.p90),
          ms(r.naive.p99),
          x(ratio(r.agent.p50, r.naive.p50)),
          x(ratio(r.agent.p99, r.naive.p99)),
          `${r.agentRssMb.toFixed(0)}/${r.naiveRssMb.toFixed(0)}`,
          r.agent.errors + r.naive.errors,
        ]),
      ),
    );
    const tp = results.e2e.filter(
      (r) => r.broker !== 'mosquitto-stock' && r.action === 'noop' && r.pauseMs === 0,
    );
    parts.push('', 'THROUGHPUT, /bin/true requests per second, closed loop');
    parts.push(
      table(
        ['broker', 'concurrency', 'agent req/s', 'naive req/s', 'ratio'],
        tp.map((r) => [
          r.broker,
          r.concurrency,
          r.agent.perSec.toFixed(0),
          r.naive.perSec.toFixed(0),
          x(ratio(r.agent.perSec, r.naive.perSec)),
        ]),
      ),
    );
  }

  if (results.fanout.length > 0) {
    parts.push(
      '',
      'FAN-OUT, one /bin/true request to each of N hosts at once; ms until every final result is in (mean of rounds); RSS in MB',
    );
    parts.push(
      table(
        [
          'broker',
          'N',
          'agents ms',
          'naive ms',
          'ratio',
          'connect s (a/n)',
          'broker RSS a/n (empty)',
          'process RSS a/n',
          'errors',
        ],
        results.fanout.map((f) => [
          f.broker,
          f.count,
          f.agent.ms.toFixed(0),
          f.naive.ms.toFixed(0),
          x(ratio(f.agent.ms, f.naive.ms)),
          `${f.agent.readySeconds.toFixed(1)} / ${f.naive.readySeconds.toFixed(1)}`,
          `${f.agent.brokerMb.toFixed(0)} / ${f.naive.brokerMb.toFixed(0)} (${f.agent.emptyBrokerMb.toFixed(0)})`,
          `${f.agent.procMb.toFixed(0)} / ${f.naive.procMb.toFixed(0)}`,
          f.agent.errors + f.naive.errors,
        ]),
      ),
    );
  }

  if (results.cluster) parts.push('', renderCluster(results.cluster));

  const fp = results.footprint;
  if (fp) {
    parts.push(
      '',
      `FOOTPRINT, idle over ${fp.idle.windowSeconds.toFixed(0)} s (agent heartbeat ${fp.idle.heartbeat}, broker ${fp.broker})`,
    );
    parts.push(
      table(
        ['process', 'RSS MB (max in window)', 'RSS MB (end)', 'peak MB', 'CPU %'],
        [
          [`agent (homelab-cmd agent${fp.idle.dist ? ', the installed package' : ''})`, fp.idle.agent],
          [`agent, node ${SHIPPED_FLAGS.join(' ')} (as the unit runs it)`, fp.idle.shipped],
          ['agent, node --max-semi-space-size=1', fp.idle.semi1],
          ['agent, node --lite-mode', fp.idle.lite],
          ["agent from the checkout's dist/", fp.idle.dist],
          ['bare MQTT.js client (naive bridge, 1 host)', fp.idle.naive],
          ['the same, bundled as the agent is (esbuild)', fp.idle.naiveBundled],
          ['bare node (setInterval)', fp.idle.bare],
        ]
          .filter(([, p]) => p)
          .map(([name, p]) => [
            name,
            p.rssMaxMb.toFixed(1),
            p.rssMb.toFixed(1),
            p.peakMb.toFixed(1),
            p.cpuPct.toFixed(3),
          ]),
      ),
    );
    parts.push(
      `start → online retained: ${fp.start.onlineMs.toFixed(0)} ms from spawn (median of ${fp.start.allOnline.length}); bare node runs its first line after ${fp.start.nodeUpMs.toFixed(0)} ms → ${fp.start.afterNodeUpMs.toFixed(0)} ms after Node is up`,
    );
    for (const [name, b] of Object.entries(fp.start.byBin ?? {}).slice(1))
      parts.push(
        `  the same from ${name === 'dist' ? "the checkout's dist/" : name}: ${b.onlineMs.toFixed(0)} ms from spawn → ${b.afterNodeUpMs.toFixed(0)} ms after Node is up`,
      );
  }
  if (results.imports) {
    parts.push('', 'IMPORT COST in a fresh node (median of runs)');
    parts.push(
      table(
        ['module', 'import ms', 'RSS MB after'],
        results.imports.map((r) => [r.module, r.ms.toFixed(0), r.rssMb.toFixed(1)]),
      ),
    );
  }

  const o = results.overhead;
  if (o) {
    parts.push(
      '',
      `OVERHEAD before the spawn, µs per request (n ${o.n}; CPU counts every thread of the process, so it can exceed wall)`,
    );
    parts.push(
      table(
        ['stage', 'CPU µs', 'wall µs'],
        [
          ['parseDelivery (payload → request)', o.parse],
          ['resolveRequest (whitelist, params, argv)', o.resolve],
          ['Journal.record ×2 (accepted, running; write + fsync each)', o.journal2],
          ['total before the spawn', o.total],
          ['(runner) mkdtemp + rm of the private cwd', o.mkdtemp],
        ].map(([name, v]) => [name, v.cpuUs.toFixed(1), v.wallUs.toFixed(1)]),
      ),
    );
  }

  const s = results.spawn;
  if (s) {
    parts.push(
      '',
      'SPAWN /bin/true: the runner (dist/exec/spawn.js) vs execa vs node:child_process, same options (detached, stdin ignored, pipes, clean env)',
    );
    if (!s.execa)
      parts.push(
        '(execa is not installed — it is a devDependency kept for this comparison; npm ci installs it)',
      );
    parts.push(
      table(
        ['variant', 'p50 ms', 'p90 ms', 'p99 ms', 'req/s c1', 'c4', 'c16', 'parent CPU ms/spawn c16'],
        Object.entries(s).map(([name, v]) => [
          name,
          ms(v.p50),
          ms(v.p90),
          ms(v.p99),
          v.throughput[1].perSec.toFixed(0),
          v.throughput[4].perSec.toFixed(0),
          v.throughput[16].perSec.toFixed(0),
          v.throughput[16].cpuMsPerSpawn.toFixed(2),
        ]),
      ),
    );
  }

  if (results.forkCost?.length) {
    parts.push(
      '',
      'SPAWN COST vs PARENT RSS: the synchronous spawn() call (fork + exec, on the main thread) of /bin/true',
    );
    parts.push(
      table(
        ['parent RSS MB', 'spawn() call p50 ms', 'p90 ms'],
        results.forkCost.map((f) => [f.rssMb.toFixed(0), ms(f.spawnCallP50), ms(f.spawnCallP90)]),
      ),
    );
  }

  if (results.targets.length > 0) {
    parts.push(
      '',
      'TARGETS (issue 22; then issue 8 where issue 22 sets none) — reported, not gated (--strict gates)',
    );
    parts.push(
      table(
        ['issue', 'target', 'value', 'limit', 'met', 'detail'],
        results.targets.map((t) => [t.issue, t.target, t.value, t.limit, t.met ? 'met' : 'MISSED', t.note]),
      ),
    );
  }
  if (results.notes?.length > 0) parts.push('', `NOTES: ${results.notes.join('; ')}`);
  if (results.errors.length > 0) parts.push('', `ERRORS: ${results.errors.join('; ')}`);
  return parts.join('\n');
}
