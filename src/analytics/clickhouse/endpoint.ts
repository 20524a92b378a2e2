/**
 * The embedded ClickHouse shared with other processes. chdb binds its data directory to ONE process (a second one
 * fails with "Cannot lock file ... Another server instance in same directory"), so while the sink writes to it,
 * `report`, `health` or Grafana could not read it. The sink therefore serves the ClickHouse HTTP interface
 * (https://clickhouse.com/docs/interfaces/http, the subset @clickhouse/client and the Grafana and BI drivers use) from
 * its embedded engine, on 127.0.0.1 only, and writes where it listens into the data directory
 * (`fedstream-endpoint.json`, mode 0600). Any process that opens the same directory (client.ts) finds the file,
 * and connects to the endpoint as to a server instead of opening the engine.
 *
 * What it serves: `GET|HEAD /` and `/ping` ("Ok."), and statements as `POST /?query=...` with the body appended
 * (inserts) or the statement as the body, `param_<name>` query parameters bound server-side, and
 * `X-ClickHouse-Exception-Code` with ClickHouse's `Code: N. DB::Exception: ...` text on errors. Statements run in the
 * sink's database; settings in the URL are ignored (the engine runs with the sink's settings). No authentication: it
 * listens on the loopback interface only, like ClickHouse's default user.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../common/index.ts';
import type { ClickHouseClient } from '@clickhouse/client';

/** What is served: an embedded client's raw client, its data directory and database (client.ts's AnalyticsClient). */
export interface ServedEngine {
  readonly client: ClickHouseClient;
  readonly location: string;
  readonly database: string;
}

/** The file in the embedded engine's data directory that says where its owner serves queries. */
export const ENDPOINT_FILE = 'fedstream-endpoint.json';

export interface EndpointInfo {
  url: string;
  pid: number;
  database: string;
  startedAt: string;
}

export interface EmbeddedEndpoint {
  readonly url: string;
  close(): Promise<void>;
}

/** URL parameters that are protocol, not settings or query parameters. */
const RESERVED = new Set(['query', 'query_id', 'database', 'default_format', 'session_id', 'session_timeout', 'session_check', 'user', 'password']);

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function failure(res: ServerResponse, err: unknown): void {
  // chdb's errors are @clickhouse/client's ClickHouseError: the numeric code, the type name, the bare message.
  const e = err as { code?: unknown; type?: unknown; message?: string };
  const code = Number(e.code);
  const n = Number.isFinite(code) && code > 0 ? code : 1000;
  const text = (e.message ?? String(err)).trim().replace(/^Code: \d+\. (DB::Exception: )?/, '');
  const type = typeof e.type === 'string' && /^[A-Z0-9_]+$/.test(e.type) ? e.type : 'UNKNOWN_EXCEPTION';
  if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Exception-Code': String(n) });
  // The server's own shape, which clients parse: `Code: N. DB::Exception: message. (TYPE)`.
  res.end(`Code: ${n}. DB::Exception: ${text} (${type})\n`);
}

/**
 * Serves `analytics` (an embedded client) over HTTP on 127.0.0.1 (an ephemeral port unless `port`), and writes
 * ENDPOINT_FILE into its data directory. `close()` stops serving and removes the file.
 */
export async function serveEmbedded(analytics: ServedEngine, o: { logger: Logger; port?: number }): Promise<EmbeddedEndpoint> {
  const log = o.logger.child({ component: 'clickhouse-endpoint' });
  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname === '/ping' || ((req.method === 'GET' || req.method === 'HEAD') && url.pathname === '/' && !url.searchParams.has('query'))) {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8' });
        res.end('Ok.\n');
        return;
      }
      if (url.pathname !== '/') {
        res.writeHead(404, { 'Content-Type': 'text/plain; charset=UTF-8' });
        res.end(`There is no handle ${url.pathname}\n`);
        return;
      }
      const text = req.method === 'POST' ? await body(req) : '';
      const inUrl = url.searchParams.get('query');
      const query = inUrl ? (text ? `${inUrl}\n${text}` : inUrl) : text;
      const params: Record<string, string> = {};
      for (const [k, v] of url.searchParams) if (k.startsWith('param_') && !RESERVED.has(k)) params[k.slice(6)] = v;
      const r = await analytics.client.exec({ query, query_params: params });
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Query-Id': r.query_id });
      for await (const chunk of r.stream) res.write(chunk as Buffer);
      res.end();
    })().catch((err: unknown) => {
      log.debug({ err }, 'query failed');
      failure(res, err);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  const file = join(analytics.location, ENDPOINT_FILE);
  const info: EndpointInfo = { url, pid: process.pid, database: analytics.database, startedAt: new Date().toISOString() };
  writeFileSync(file, `${JSON.stringify(info)}\n`, { mode: 0o600 });
  log.info({ url, file }, 'serving the embedded ClickHouse over HTTP for other processes');
  let closed = false;
  return {
    url,
    async close() {
      if (closed) return;
      closed = true;
      // Only our own file: a later owner of the directory may have written its own.
      try {
        if ((JSON.parse(readFileSync(file, 'utf8')) as EndpointInfo).pid === process.pid) rmSync(file, { force: true });
      } catch { /* already gone */ }
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The endpoint another live process serves for the embedded engine at `dir`, if any (a file left by a process that
 * died is ignored). Never this process's own.
 */
export function discoverEndpoint(dir: string): EndpointInfo | undefined {
  let info: EndpointInfo;
  try {
    info = JSON.parse(readFileSync(join(dir, ENDPOINT_FILE), 'utf8')) as EndpointInfo;
  } catch {
    return undefined;
  }
  if (typeof info.url !== 'string' || !Number.isInteger(info.pid) || info.pid === process.pid || !alive(info.pid)) return undefined;
  return info;
}
