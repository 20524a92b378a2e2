/**
 * Real Prometheus tools for the metrics tests: `promtool` (exposition lint, rule checks and rule unit tests) and a
 * Prometheus server that scrapes the processes under test. Both come from Debian's `prometheus` package, installed
 * with apt-get on first use when running as root; otherwise (and under CI=true the test fails, never skips) the
 * error says how to install it. Each server gets its own config and data directory in a temp dir and a free port.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const PROMTOOL = '/usr/bin/promtool';
const PROMETHEUS = '/usr/bin/prometheus';

/** Installs Debian's `prometheus` package when promtool or the server is missing (root only), else throws saying how. */
export function ensurePrometheusTools(): { promtool: string; prometheus: string } {
  if (existsSync(PROMTOOL) && existsSync(PROMETHEUS)) return { promtool: PROMTOOL, prometheus: PROMETHEUS };
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error('no promtool/prometheus here: install Debian\'s package (sudo apt-get install prometheus); the metrics tests need the real tools');
  }
  process.stderr.write('[prometheus] installing Debian\'s prometheus package (first run only)\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', 'prometheus']]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`);
  }
  if (!existsSync(PROMTOOL) || !existsSync(PROMETHEUS)) throw new Error('apt-get installed prometheus but promtool or prometheus is not where Debian puts them');
  // Debian's package starts a system service on :9090 where systemd runs; the tests use their own server.
  return { promtool: PROMTOOL, prometheus: PROMETHEUS };
}

/** Runs promtool with `args` (and `input` on stdin); its exit status and output. */
export function promtool(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const { promtool: bin } = ensurePrometheusTools();
  const r = spawnSync(bin, args, { input, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => ok(port));
    }).on('error', fail);
  });
}

export interface ScrapeTarget {
  job: string;
  targets: string[];
}

export interface PrometheusServer {
  url: string;
  /** An instant PromQL query's result vector (`/api/v1/query`). */
  query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  /** One line per scrape target: job, URL, health and last error (for failure messages). */
  targets(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts Prometheus in `dir` scraping `jobs` every `intervalS` seconds; resolves once /-/ready answers. */
export async function startPrometheus(dir: string, jobs: ScrapeTarget[], o: { intervalS?: number; ruleFiles?: string[] } = {}): Promise<PrometheusServer> {
  const { prometheus } = ensurePrometheusTools();
  const interval = `${o.intervalS ?? 1}s`;
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  evaluation_interval: ${interval}`,
    ...(o.ruleFiles?.length ? ['rule_files:', ...o.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    ...jobs.flatMap((j) => [`  - job_name: ${JSON.stringify(j.job)}`, '    static_configs:', `      - targets: ${JSON.stringify(j.targets)}`]),
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'prometheus.yml'), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(prometheus, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => { stderr = (stderr + b.toString()).slice(-4000); });
  let exited: number | null | undefined;
  child.on('exit', (code) => { exited = code; });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`prometheus exited with ${exited}: ${stderr}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`prometheus not ready within 60 s: ${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    query: async (promql) => {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = await res.json() as { status: string; error?: string; data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error ?? res.status}`);
      return body.data.result;
    },
    targets: async () => {
      const body = await (await fetch(`${url}/api/v1/targets`)).json() as { data: { activeTargets: Array<{ scrapePool: string; scrapeUrl: string; health: string; lastError: string }> } };
      return body.data.activeTargets.map((t) => `${t.scrapePool} ${t.scrapeUrl} ${t.health} ${t.lastError}`).join('; ') || 'none';
    },
    stop: () => new Promise<void>((resolve) => {
      if (exited !== undefined) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}
