// The server side of the analytics client, against a stand-in for ClickHouse's HTTP interface:
// what goes on the wire (database, credentials) and how every kind of failure is classified.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAnalyticsClient, toAnalyticsError, type AnalyticsClient } from '../../src/analytics/clickhouse/client.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { createLogger } from '../../src/common/logger.ts';

const logger = createLogger('silent');
const VERSION = '25.8.1.1';

interface Seen { path: string; params: URLSearchParams; body: string; auth: string | undefined }
const seen: Seen[] = [];
let mode: 'ok' | 'deny-create' | 'auth' = 'ok';
let server: Server;
let base: string;

function chError(res: ServerResponse, status: number, code: number, type: string, message: string): void {
  res.writeHead(status, { 'X-ClickHouse-Exception-Code': String(code), 'Content-Type': 'text/plain' });
  res.end(`Code: ${code}. DB::Exception: ${message}. (${type}) (version ${VERSION})\n`);
}

function handle(req: IncomingMessage, res: ServerResponse, body: string): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const sql = `${url.searchParams.get('query') ?? ''}\n${body}`;
  seen.push({ path: url.pathname, params: url.searchParams, body, auth: req.headers.authorization });
  if (url.pathname === '/ping') return void res.end('Ok.\n');
  if (mode === 'auth') return chError(res, 516, 516, 'AUTHENTICATION_FAILED', 'default: Authentication failed: password is incorrect, or there is no user with such name');
  if (sql.includes('CREATE DATABASE')) {
    if (mode === 'deny-create') return chError(res, 403, 497, 'ACCESS_DENIED', 'analyst: Not enough privileges. To execute this query, it\'s necessary to have the grant CREATE DATABASE ON analytics.*');
    return void res.end('');
  }
  if (sql.includes('system.databases')) return void res.end('{"n":"1"}\n');
  if (sql.includes('SELECT version()')) return void res.end(`{"version":"${VERSION}","database":"${url.searchParams.get('database') ?? 'default'}"}\n`);
  if (sql.includes('no_such_table')) return chError(res, 404, 60, 'UNKNOWN_TABLE', "Unknown table expression identifier 'no_such_table' in scope SELECT * FROM no_such_table");
  if (sql.includes('too_many_parts')) return chError(res, 500, 252, 'TOO_MANY_PARTS', 'Too many parts (3000) in table fedstream.telemetry_events. Merges are processing significantly slower than inserts');
  if (sql.includes('auth_failed')) return chError(res, 516, 516, 'AUTHENTICATION_FAILED', 'default: Authentication failed: password is incorrect, or there is no user with such name');
  if (sql.includes('bad_gateway')) {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    return void res.end('<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>');
  }
  if (sql.includes('hang')) return; // never answers: the client's timeout fires
  res.end('');
}

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString('utf8'); });
    req.on('end', () => handle(req, res, body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const open: AnalyticsClient[] = [];
afterEach(async () => {
  mode = 'ok';
  seen.length = 0;
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function connect(url: string, extra: Partial<Parameters<typeof createAnalyticsClient>[0]> = {}): Promise<AnalyticsClient> {
  const c = await createAnalyticsClient({ url, logger, ...extra });
  open.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<FedStreamError> {
  try { await p; } catch (e) { return toAnalyticsError(e, 'test'); }
  throw new Error('expected a rejection');
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('createAnalyticsClient with a server URL', () => {
  it('creates the database over a request without one, then sends the database on every request', async () => {
    const c = await connect(base);
    expect(c).toMatchObject({ kind: 'server', database: 'fedstream', location: base });
    const create = seen.find((s) => s.body.includes('CREATE DATABASE'));
    expect(create?.body).toBe('CREATE DATABASE IF NOT EXISTS fedstream');
    expect(create?.params.has('database')).toBe(false);

    const h = await c.health();
    expect(h).toEqual({ success: true, detail: `ClickHouse ${VERSION} at ${base}, database fedstream` });
    const select = seen.find((s) => s.body.includes('SELECT version()'));
    expect(select?.params.get('database')).toBe('fedstream');
    // 64-bit integers as JSON strings, whatever the server's default.
    expect(select?.params.get('output_format_json_quote_64bit_integers')).toBe('1');
  });

  it('takes credentials and database from the URL, and never shows the password', async () => {
    const c = await connect(`http://analyst:p%40ss@127.0.0.1:${new URL(base).port}/analytics`);
    expect(c.database).toBe('analytics');
    expect(c.location).toBe(base);
    await c.health();
    expect(seen.every((s) => s.auth === `Basic ${Buffer.from('analyst:p@ss').toString('base64')}`)).toBe(true);
    expect(JSON.stringify(c.location)).not.toContain('p%40ss');
  });

  it('options win over the URL', async () => {
    const c = await connect(`http://u:p@127.0.0.1:${new URL(base).port}/fromurl`, { database: 'opt', username: 'ou', password: 'op' });
    expect(c.database).toBe('opt');
    await c.health();
    expect(seen.at(-1)?.auth).toBe(`Basic ${Buffer.from('ou:op').toString('base64')}`);
  });

  it('accepts an existing database when the user may not create one', async () => {
    mode = 'deny-create';
    const c = await connect(base, { database: 'analytics' });
    expect(seen.some((s) => s.body.includes('system.databases'))).toBe(true);
    expect((await c.health()).success).toBe(true);
  });

  it('does not throw when the server is down: health() says why, retriably', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const c = await connect(url);
    const h = await c.health();
    expect(h.success).toBe(false);
    expect(h.error?.code).toBe('ANALYTICS_UNAVAILABLE');
    expect(h.error?.retriable).toBe(true);
    expect(h.detail).toContain(`ClickHouse at ${url}`);
    expect(h.detail).toMatch(/ECONNREFUSED/);
    await expect(c.ensureDatabase()).rejects.toMatchObject({ code: 'ANALYTICS_UNAVAILABLE', retriable: true });
  });

  it('does not throw when authentication fails: health() says so, not retriably', async () => {
    mode = 'auth';
    const c = await connect(base, { password: 'wrong' });
    const h = await c.health();
    expect(h).toMatchObject({ success: false, error: { code: 'ANALYTICS_AUTH', retriable: false } });
    expect(h.detail).toContain('Authentication failed');
    await expect(c.ensureDatabase()).rejects.toMatchObject({ code: 'ANALYTICS_AUTH', retriable: false });
  });

  it.each([
    ['ftp://host:21', /must use http or https/],
    ['not a url', /is not a URL/],
  ])('refuses %s with a ConfigError', async (url, message) => {
    const err = await createAnalyticsClient({ url, logger }).then(() => undefined, (e: FedStreamError) => e);
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.message).toMatch(/^analytics\.clickhouse: /);
    expect(err?.message).toMatch(message);
  });

  it('refuses a database name that is not an identifier', async () => {
    const err = await createAnalyticsClient({ url: base, database: 'fed-stream', logger }).then(() => undefined, (e: FedStreamError) => e);
    expect(err?.code).toBe('CONFIG_INVALID');
    expect(err?.message).toContain('analytics.database');
  });
});

describe('error mapping over HTTP', () => {
  it('a statement error is ANALYTICS_QUERY with the server message', async () => {
    const c = await connect(base);
    const err = await rejection(c.client.query({ query: 'SELECT * FROM no_such_table' }));
    expect(err.code).toBe('ANALYTICS_QUERY');
    expect(err.retriable).toBe(false);
    expect(err.message).toBe("test: Unknown table expression identifier 'no_such_table' in scope SELECT * FROM no_such_table. (UNKNOWN_TABLE)");
    expect(err.details).toMatchObject({ clickhouseCode: 60, clickhouseType: 'UNKNOWN_TABLE', context: 'test' });
  });

  it('a transient server exception (TOO_MANY_PARTS) is ANALYTICS_UNAVAILABLE, retriable', async () => {
    const c = await connect(base);
    const err = await rejection(c.client.command({ query: 'INSERT INTO too_many_parts VALUES (1)' }));
    expect(err).toMatchObject({ code: 'ANALYTICS_UNAVAILABLE', retriable: true });
    expect(err.message).toContain('Too many parts');
  });

  it('failed authentication is ANALYTICS_AUTH, not retriable', async () => {
    const c = await connect(base);
    const err = await rejection(c.client.command({ query: 'SELECT auth_failed' }));
    expect(err).toMatchObject({ code: 'ANALYTICS_AUTH', retriable: false });
  });

  it("a proxy's 502 page is ANALYTICS_UNAVAILABLE, retriable", async () => {
    const c = await connect(base);
    const err = await rejection(c.client.command({ query: 'SELECT bad_gateway' }));
    expect(err).toMatchObject({ code: 'ANALYTICS_UNAVAILABLE', retriable: true });
    expect(err.message).toContain('502 Bad Gateway');
  });

  it('a request timeout is ANALYTICS_UNAVAILABLE, retriable', async () => {
    const c = await connect(base, { requestTimeoutMs: 200 });
    const err = await rejection(c.client.command({ query: 'SELECT hang' }));
    expect(err).toMatchObject({ code: 'ANALYTICS_UNAVAILABLE', retriable: true });
    expect(err.message).toMatch(/Timeout/);
  });
});

describe('toAnalyticsError', () => {
  const errno = (code: string, message = `connect ${code} 127.0.0.1:8123`) => Object.assign(new Error(message), { code });
  const chError = (code: string, type: string, message: string) => Object.assign(new Error(message), { code, type });

  it.each([
    ['ECONNREFUSED', errno('ECONNREFUSED'), 'ANALYTICS_UNAVAILABLE', true],
    ['ENOTFOUND', errno('ENOTFOUND', 'getaddrinfo ENOTFOUND clickhouse'), 'ANALYTICS_UNAVAILABLE', true],
    ['a reset, as cause', new Error('request failed', { cause: errno('ECONNRESET') }), 'ANALYTICS_UNAVAILABLE', true],
    ['every address refused', new AggregateError([errno('ECONNREFUSED')], ''), 'ANALYTICS_UNAVAILABLE', true],
    ['Timeout error.', new Error('Timeout error.'), 'ANALYTICS_UNAVAILABLE', true],
    ['a 503 page', new Error('<h1>503 Service Unavailable</h1>'), 'ANALYTICS_UNAVAILABLE', true],
    ['MEMORY_LIMIT_EXCEEDED', chError('241', 'MEMORY_LIMIT_EXCEEDED', 'Memory limit exceeded'), 'ANALYTICS_UNAVAILABLE', true],
    ['UNKNOWN_TABLE', chError('60', 'UNKNOWN_TABLE', 'Unknown table fedstream.nope'), 'ANALYTICS_QUERY', false],
    ['TYPE_MISMATCH', chError('53', 'TYPE_MISMATCH', 'Cannot convert'), 'ANALYTICS_QUERY', false],
    ['REQUIRED_PASSWORD', chError('194', 'REQUIRED_PASSWORD', 'password required'), 'ANALYTICS_AUTH', false],
    ['WRONG_PASSWORD by number only (servers before 20.x)', new Error('Code: 193, e.displayText() = DB::Exception: Wrong password for user fedstream, e.what() = DB::Exception'), 'ANALYTICS_AUTH', false],
    ['an untrusted certificate', errno('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), 'ANALYTICS_TLS', false],
    ['a certificate for other names', errno('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"), 'ANALYTICS_TLS', false],
    ['https to the plain port', errno('EPROTO', 'write EPROTO 40E7:error:0A00010B:SSL routines:ssl3_get_record:wrong version number'), 'ANALYTICS_TLS', false],
    ['a closed client', new Error('ChdbConnection is closed'), 'ANALYTICS_UNAVAILABLE', false],
    ['anything else', new TypeError('values must be an array'), 'ANALYTICS_QUERY', false],
  ])('%s', (_name, err, code, retriable) => {
    const mapped = toAnalyticsError(err, 'inserting into fedstream.updates');
    expect(mapped).toBeInstanceOf(FedStreamError);
    expect(mapped.code).toBe(code);
    expect(mapped.retriable).toBe(retriable);
    expect(mapped.message.startsWith('inserting into fedstream.updates: ')).toBe(true);
    expect(mapped.cause).toBe(err);
  });

  it('passes a FedStreamError through unchanged and accepts non-errors', () => {
    const e = new FedStreamError('ANALYTICS_DDL', 'x');
    expect(toAnalyticsError(e, 'ctx')).toBe(e);
    expect(toAnalyticsError('boom', '').message).toBe('boom');
  });
});
