/**
 * A real ClickHouse server for the tests of what the embedded engine cannot show: users, passwords and https.
 *
 * The only server installable on the development machine is Debian's `clickhouse-server` package, ClickHouse
 * 18.16 (2018): too old for FedStream's DDL, but a real server's HTTP(S) interface with real user authentication
 * and a real TLS stack (Poco/OpenSSL). Installed with apt-get on first use when running as root; otherwise the
 * error says how. Each test run gets its own config, users, data directory and free ports.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const BINARY_CANDIDATES = ['/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server'];

function installed(): string | undefined {
  return BINARY_CANDIDATES.find((b) => existsSync(b));
}

/** The clickhouse-server binary, installed from Debian's packages when missing (root only). */
export function clickhouseServerBinary(): string {
  const found = installed();
  if (found) return found;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    throw new Error('no clickhouse-server here: install Debian\'s package (sudo apt-get install clickhouse-server); the credential and TLS tests need a real server');
  }
  process.stderr.write('[clickhouse-server] installing Debian\'s clickhouse-server package (first run only)\n');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', 'clickhouse-server']]) {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', timeout: 600_000 });
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' ')}`);
  }
  const now = installed();
  if (!now) throw new Error('apt-get installed clickhouse-server but no binary is where Debian puts it');
  return now;
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => ok(port));
    }).on('error', fail);
  });
}

export interface ClickhouseServer {
  /** http://127.0.0.1:<port> and https://localhost:<port> (the certificate's name). */
  httpUrl: string;
  httpsUrl: string;
  version: string;
  stop(): Promise<void>;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/**
 * Starts a server in `dir` with the given users (name → password, stored as SHA-256 as a production users.xml
 * would) and an https port serving `tls.cert`/`tls.key`. Resolves when /ping answers on both ports.
 */
export async function startClickhouseServer(dir: string, users: Record<string, string>, tls: { cert: string; key: string }): Promise<ClickhouseServer> {
  const binary = clickhouseServerBinary();
  for (const d of ['data', 'tmp', 'log']) mkdirSync(path.join(dir, d), { recursive: true });
  const [http, https] = [await freePort(), await freePort()];
  writeFileSync(path.join(dir, 'users.xml'), `<yandex>
  <profiles><default></default></profiles>
  <users>
${Object.entries(users).map(([u, p]) => `    <${u}><password_sha256_hex>${createHash('sha256').update(p).digest('hex')}</password_sha256_hex><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></${u}>`).join('\n')}
  </users>
  <quotas><default></default></quotas>
</yandex>
`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'config.xml'), `<yandex>
  <logger><level>information</level><log>${xml(path.join(dir, 'log', 'server.log'))}</log><errorlog>${xml(path.join(dir, 'log', 'err.log'))}</errorlog><console>0</console></logger>
  <http_port>${http}</http_port>
  <https_port>${https}</https_port>
  <listen_host>127.0.0.1</listen_host>
  <openSSL><server><certificateFile>${xml(tls.cert)}</certificateFile><privateKeyFile>${xml(tls.key)}</privateKeyFile><verificationMode>none</verificationMode><loadDefaultCAFile>false</loadDefaultCAFile><disableProtocols>sslv2,sslv3</disableProtocols><preferServerCiphers>true</preferServerCiphers></server></openSSL>
  <path>${xml(path.join(dir, 'data'))}/</path>
  <tmp_path>${xml(path.join(dir, 'tmp'))}/</tmp_path>
  <users_config>${xml(path.join(dir, 'users.xml'))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
</yandex>
`);
  const child: ChildProcess = spawn(binary, [`--config-file=${path.join(dir, 'config.xml')}`], { stdio: 'ignore' });
  const httpUrl = `http://127.0.0.1:${http}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`clickhouse-server exited ${child.exitCode}: ${tail(path.join(dir, 'log', 'err.log'))}`);
    try {
      const r = await fetch(`${httpUrl}/ping`);
      if (r.ok) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`clickhouse-server did not answer within 60 s: ${tail(path.join(dir, 'log', 'err.log'))}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const [user, password] = Object.entries(users)[0] ?? ['default', ''];
  const v = await fetch(`${httpUrl}/?query=${encodeURIComponent('SELECT version()')}`, { headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` } });
  return {
    httpUrl,
    httpsUrl: `https://localhost:${https}`,
    version: (await v.text()).trim(),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const exited = new Promise((r) => child.once('exit', r));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ');
  } catch {
    return '(no log)';
  }
}
