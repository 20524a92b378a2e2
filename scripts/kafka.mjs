#!/usr/bin/env node
/**
 * A single-node Apache Kafka broker (KRaft, combined broker+controller) for development and tests,
 * run straight from the Apache Kafka jars on Maven Central with the machine's Java 17. No Docker.
 *
 *   node scripts/kafka.mjs start     fetch jars (once), format storage (once), start, wait until it answers;
 *                                    last stdout line: KAFKA_BROKERS=127.0.0.1:<port>
 *   node scripts/kafka.mjs stop      SIGTERM the broker's process group, SIGKILL after a timeout
 *   node scripts/kafka.mjs restart   stop + start on the same port with the same data (simulates an outage)
 *   node scripts/kafka.mjs status    prints KAFKA_BROKERS=… and exits 0 when running, exits 3 when not
 *   node scripts/kafka.mjs clean     stop and delete the broker state (data, logs, ports) in the state directory
 *
 * Sharing one broker between concurrent runs (e.g. several `vitest --project integration` at once):
 *   start --lease=<pid>              as start, and records a lease held by process <pid>
 *   release --lease=<pid>            drops that lease; stops the broker when no live lease is left, but only if
 *                                    a leased start launched it (a plain `start` pins the broker: it stays up)
 *
 * Environment:
 *   FEDSTREAM_KAFKA_DIR              state directory (default .kafka): server.properties, data, logs, pid
 *   FEDSTREAM_KAFKA_CACHE            jar cache (default .cache); jars go to <cache>/kafka-<version>/libs
 *   FEDSTREAM_KAFKA_START_TIMEOUT_MS how long to wait for the broker to answer (default 90000)
 *   KAFKA_HEAP_OPTS                  JVM heap flags (default -Xmx512m -Xms128m)
 *   JAVA_HOME                        java is taken from $JAVA_HOME/bin when set, else from PATH
 *
 * Plain Node ESM with builtins only, so that it runs before `npm install` has been thought about.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const KAFKA_VERSION = '3.9.1';
const SCRIPT_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(SCRIPT_DIR, '..');
const POM = path.join(SCRIPT_DIR, 'kafka', 'pom.xml');

const CACHE_DIR = path.resolve(ROOT, process.env.FEDSTREAM_KAFKA_CACHE ?? '.cache');
const KAFKA_HOME = path.join(CACHE_DIR, `kafka-${KAFKA_VERSION}`);
const LIBS_DIR = path.join(KAFKA_HOME, 'libs');
const LIBS_MARKER = path.join(KAFKA_HOME, 'libs.complete');

const STATE_DIR = path.resolve(process.cwd(), process.env.FEDSTREAM_KAFKA_DIR ?? path.join(ROOT, '.kafka'));
const STATE_FILE = path.join(STATE_DIR, 'state.json');
const PID_FILE = path.join(STATE_DIR, 'broker.pid');
const LOCK_FILE = path.join(STATE_DIR, 'lock');
const SERVER_PROPS = path.join(STATE_DIR, 'server.properties');
const LOG4J_PROPS = path.join(STATE_DIR, 'log4j.properties');
const DATA_DIR = path.join(STATE_DIR, 'data');
const LOGS_DIR = path.join(STATE_DIR, 'logs');
const CONSOLE_LOG = path.join(STATE_DIR, 'broker.log');
const LEASES_DIR = path.join(STATE_DIR, 'leases');
/** Present while the broker runs only for leases: the last release stops it. */
const AUTO_STOP_FILE = path.join(STATE_DIR, 'auto-stop');

const START_TIMEOUT_MS = Number(process.env.FEDSTREAM_KAFKA_START_TIMEOUT_MS ?? 90_000);
const STOP_TIMEOUT_MS = 30_000;
const HOST = '127.0.0.1';

class BrokerError extends Error {}

const say = (msg) => process.stderr.write(`[kafka] ${msg}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// processes

function isAlive(pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return err.code === 'EPERM';
  }
  // A zombie still answers kill(0); on Linux /proc tells it apart.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
  } catch {
    // no /proc: trust kill(0)
  }
  return true;
}

/** True when `pid` is our broker and not a recycled pid (checked on Linux through /proc). */
function isOurBroker(pid) {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(SERVER_PROPS);
  } catch {
    return true;
  }
}

function readPid() {
  try {
    return Number.parseInt(readFileSync(PID_FILE, 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
}

function readState() {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

/** One `start`/`stop` at a time per state directory (e.g. a test run and a developer's shell). */
async function withLock(fn) {
  mkdirSync(STATE_DIR, { recursive: true });
  const deadline = Date.now() + START_TIMEOUT_MS + STOP_TIMEOUT_MS + 60_000;
  for (;;) {
    try {
      const fd = openSync(LOCK_FILE, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number.parseInt(readFileSync(LOCK_FILE, 'utf8').trim() || '0', 10);
      if (!isAlive(holder)) {
        rmSync(LOCK_FILE, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new BrokerError(`another kafka.mjs (pid ${holder}) holds ${LOCK_FILE}`);
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK_FILE, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// ports and the readiness probe

function listenOn(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host: HOST, exclusive: true }, () => resolve(server));
  });
}

async function isPortFree(port) {
  try {
    const server = await listenOn(port);
    await new Promise((resolve) => server.close(resolve));
    return true;
  } catch {
    return false;
  }
}

/** Two distinct free ports, both held while choosing so that the OS does not hand out the same one twice. */
async function pickPorts() {
  const a = await listenOn(0);
  const b = await listenOn(0);
  const ports = [a.address().port, b.address().port];
  await Promise.all([a, b].map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

function kafkaString(s) {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/**
 * Sends a Kafka Metadata v1 request (all topics) and resolves true when the broker lists itself and a controller.
 * A KRaft broker only opens its client listener once it has caught up with the metadata log, so this is a
 * better readiness signal than an open port.
 */
function metadataAnswers(port, timeoutMs = 2_000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      const body = Buffer.concat([
        Buffer.from([0x00, 0x03]), // api key 3: Metadata
        Buffer.from([0x00, 0x01]), // version 1
        Buffer.from([0x00, 0x00, 0x00, 0x2a]), // correlation id 42
        kafkaString('fedstream-kafka-mjs'),
        Buffer.from([0xff, 0xff, 0xff, 0xff]), // topics: null = all
      ]);
      const size = Buffer.alloc(4);
      size.writeInt32BE(body.length);
      socket.write(Buffer.concat([size, body]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4 || received.length < 4 + received.readInt32BE(0)) return;
      try {
        let o = 4;
        const correlationId = received.readInt32BE(o);
        o += 4;
        const brokerCount = received.readInt32BE(o);
        o += 4;
        for (let i = 0; i < brokerCount; i++) {
          o += 4; // node id
          o += 2 + received.readInt16BE(o); // host
          o += 4; // port
          const rackLen = received.readInt16BE(o);
          o += 2 + Math.max(rackLen, 0);
        }
        const controllerId = received.readInt32BE(o);
        done(correlationId === 42 && brokerCount > 0 && controllerId >= 0);
      } catch {
        done(false);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// prerequisites

function javaBin() {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

function checkJava() {
  const java = javaBin();
  const res = spawnSync(java, ['-version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new BrokerError(
      `Java was not found (${java}: ${res.error?.message ?? `exit ${res.status}`}). Kafka ${KAFKA_VERSION} needs Java 11+ (17 recommended): ` +
        'install a JDK/JRE (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME.',
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(res.stderr ?? '');
  const major = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : undefined;
  if (major !== undefined && major < 11) throw new BrokerError(`Java ${major} found at ${java}; Kafka ${KAFKA_VERSION} needs Java 11 or newer (17 recommended).`);
}

function pomHash() {
  return createHash('sha256').update(readFileSync(POM)).digest('hex');
}

function libsComplete() {
  try {
    return readFileSync(LIBS_MARKER, 'utf8').trim() === pomHash() && readdirSync(LIBS_DIR).some((f) => f.startsWith(`kafka_2.13-${KAFKA_VERSION}`));
  } catch {
    return false;
  }
}

function fetchJars() {
  if (libsComplete()) return;
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error || mvn.status !== 0) {
    throw new BrokerError(
      `Maven (mvn) was not found (${mvn.error?.message ?? `exit ${mvn.status}`}); it fetches the Kafka ${KAFKA_VERSION} jars from Maven Central once ` +
        `into ${LIBS_DIR}. Install Maven 3.6+ (e.g. apt-get install maven), or put the jars there and write ${LIBS_MARKER} with the sha256 of ${POM}.`,
    );
  }
  say(`fetching Apache Kafka ${KAFKA_VERSION} jars from Maven Central into ${LIBS_DIR} (first run only)…`);
  rmSync(LIBS_DIR, { recursive: true, force: true });
  rmSync(LIBS_MARKER, { force: true });
  mkdirSync(LIBS_DIR, { recursive: true });
  const res = spawnSync('mvn', ['-q', '-B', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${LIBS_DIR}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.error || res.status !== 0) {
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new BrokerError(`mvn dependency:copy-dependencies failed (${res.error?.message ?? `exit ${res.status}`}); is Maven Central reachable?\n${out}`);
  }
  writeFileSync(LIBS_MARKER, `${pomHash()}\n`);
  say(`fetched ${readdirSync(LIBS_DIR).length} jars`);
}

// ---------------------------------------------------------------------------------------------------------------
// configuration

/** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints). */
function randomClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function serverProperties({ port, controllerPort }) {
  return `# Written by scripts/kafka.mjs; rewritten on every start. Single node, KRaft combined mode, for dev and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${controllerPort}
listeners=PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}
advertised.listeners=PLAINTEXT://${HOST}:${port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${DATA_DIR}

# Topics are created explicitly by the code (admin createTopics), never by a typo.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# One broker: internal topics cannot have more replicas than that; one partition each keeps start-up fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0

# Kafka's defaults, written out because the code relies on them: payloads above ~1 MB are chunked by
# src/codec, and transactions may be open at most 15 minutes.
message.max.bytes=1048588
transaction.max.timeout.ms=900000

# Two cores, 512 MB heap.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
`;
}

function log4jProperties() {
  return `# Written by scripts/kafka.mjs. Everything at INFO to logs/server.log; warnings also to broker.log (stdout).
log4j.rootLogger=INFO, file, stdout
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${path.join(LOGS_DIR, 'server.log')}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
`;
}

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function logTails() {
  return `--- tail of ${CONSOLE_LOG} ---\n${tail(CONSOLE_LOG)}\n--- tail of ${path.join(LOGS_DIR, 'server.log')} ---\n${tail(path.join(LOGS_DIR, 'server.log'))}`;
}

// ---------------------------------------------------------------------------------------------------------------
// commands

/** The broker of this state directory when it runs and answers, else undefined. */
async function running() {
  const pid = readPid();
  const state = readState();
  if (pid === undefined || !state || !isOurBroker(pid)) return undefined;
  return (await metadataAnswers(state.port)) ? { pid, ...state } : { pid, ...state, starting: true };
}

function announce(port) {
  process.stdout.write(`KAFKA_BROKERS=${HOST}:${port}\n`);
}

async function waitUntilReady(pid, port) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) throw new BrokerError(`the broker process (pid ${pid}) exited during start-up.\n${logTails()}`);
    if (await metadataAnswers(port)) return;
    await sleep(250);
  }
  throw new BrokerError(`the broker did not answer a metadata request on ${HOST}:${port} within ${START_TIMEOUT_MS} ms (pid ${pid}).\n${logTails()}`);
}

function addLease(lease) {
  mkdirSync(LEASES_DIR, { recursive: true });
  writeFileSync(path.join(LEASES_DIR, String(lease)), `${lease}\n`);
}

function liveLeases() {
  let names = [];
  try {
    names = readdirSync(LEASES_DIR);
  } catch {
    return [];
  }
  return names.map(Number).filter((pid) => {
    if (isAlive(pid)) return true;
    rmSync(path.join(LEASES_DIR, String(pid)), { force: true });
    return false;
  });
}

async function start(lease) {
  if (lease !== undefined) addLease(lease);
  const current = await running();
  if (current) {
    if (lease === undefined) rmSync(AUTO_STOP_FILE, { force: true });
    if (current.starting) {
      say(`pid ${current.pid} is starting; waiting for it`);
      await waitUntilReady(current.pid, current.port);
    } else {
      say(`already running (pid ${current.pid}) — state in ${STATE_DIR}`);
    }
    announce(current.port);
    return;
  }
  rmSync(PID_FILE, { force: true });
  if (lease !== undefined) writeFileSync(AUTO_STOP_FILE, 'started for leases; the last release stops it\n');
  else rmSync(AUTO_STOP_FILE, { force: true });

  checkJava();
  fetchJars();

  mkdirSync(STATE_DIR, { recursive: true });
  let state = readState();
  const formatted = existsSync(path.join(DATA_DIR, 'meta.properties'));
  if (state && formatted && (await isPortFree(state.port)) && (await isPortFree(state.controllerPort))) {
    say(`reusing port ${state.port} and the data in ${DATA_DIR}`);
  } else {
    if (state && formatted) say(`port ${state.port} or ${state.controllerPort} is taken by another process: choosing new ports`);
    const [port, controllerPort] = await pickPorts();
    state = { port, controllerPort, clusterId: formatted && state?.clusterId ? state.clusterId : randomClusterId(), kafkaVersion: KAFKA_VERSION };
  }
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  writeFileSync(SERVER_PROPS, serverProperties(state));
  writeFileSync(LOG4J_PROPS, log4jProperties());
  mkdirSync(LOGS_DIR, { recursive: true });

  const java = javaBin();
  const classpath = `${LIBS_DIR}${path.sep}*`;
  const log4jOpts = [`-Dlog4j.configuration=file:${LOG4J_PROPS}`, `-Dkafka.logs.dir=${LOGS_DIR}`];

  if (!existsSync(path.join(DATA_DIR, 'meta.properties'))) {
    rmSync(DATA_DIR, { recursive: true, force: true });
    say(`formatting storage in ${DATA_DIR} (cluster id ${state.clusterId})`);
    const res = spawnSync(java, ['-Xmx256m', ...log4jOpts, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', state.clusterId, '-c', SERVER_PROPS], { encoding: 'utf8' });
    if (res.error || res.status !== 0) {
      throw new BrokerError(`kafka.tools.StorageTool format failed (${res.error?.message ?? `exit ${res.status}`}):\n${`${res.stdout ?? ''}${res.stderr ?? ''}`.trim()}`);
    }
  }

  const heap = (process.env.KAFKA_HEAP_OPTS ?? '-Xmx512m -Xms128m').split(/\s+/).filter(Boolean);
  const jvm = [...heap, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true'];
  const out = openSync(CONSOLE_LOG, 'a');
  writeSync(out, `\n===== ${new Date().toISOString()} starting Kafka ${KAFKA_VERSION} on ${HOST}:${state.port} (controller ${state.controllerPort}) =====\n`);
  // detached: own session and process group, so that `stop` can signal the whole group and the broker outlives us.
  const child = spawn(java, [...jvm, ...log4jOpts, '-cp', classpath, 'kafka.Kafka', SERVER_PROPS], { detached: true, stdio: ['ignore', out, out], cwd: STATE_DIR });
  closeSync(out);
  const spawnError = await new Promise((resolve) => {
    child.once('error', resolve);
    child.once('spawn', () => resolve(undefined));
  });
  if (spawnError) throw new BrokerError(`could not start ${java}: ${spawnError.message}`);
  child.unref();
  writeFileSync(PID_FILE, `${child.pid}\n`);
  say(`started pid ${child.pid}; waiting up to ${START_TIMEOUT_MS / 1000} s for ${HOST}:${state.port} (log: ${CONSOLE_LOG}, ${path.join(LOGS_DIR, 'server.log')})`);

  const t0 = Date.now();
  try {
    await waitUntilReady(child.pid, state.port);
  } catch (err) {
    await killGroup(child.pid);
    rmSync(PID_FILE, { force: true });
    throw err;
  }
  say(`ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  announce(state.port);
}

async function killGroup(pid) {
  const signal = (sig) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // already gone
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) {
    say(`pid ${pid} did not stop within ${STOP_TIMEOUT_MS / 1000} s: SIGKILL`);
    signal('SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

async function release(lease) {
  if (lease !== undefined) rmSync(path.join(LEASES_DIR, String(lease)), { force: true });
  const others = liveLeases();
  if (others.length > 0) {
    say(`still leased by pid ${others.join(', ')}: leaving the broker running`);
    return;
  }
  if (!existsSync(AUTO_STOP_FILE)) {
    say('no lease left; the broker was started by hand, leaving it running');
    return;
  }
  await stop();
}

async function stop() {
  rmSync(AUTO_STOP_FILE, { force: true });
  const pid = readPid();
  if (pid !== undefined && isOurBroker(pid)) {
    say(`stopping pid ${pid}`);
    await killGroup(pid);
    say('stopped');
  } else {
    say('not running');
  }
  rmSync(PID_FILE, { force: true });
}

async function status() {
  const current = await running();
  if (current && !current.starting) {
    say(`running (pid ${current.pid}), state in ${STATE_DIR}`);
    announce(current.port);
    return 0;
  }
  if (current?.starting) {
    say(`pid ${current.pid} is running but does not answer on ${HOST}:${current.port} yet`);
    return 3;
  }
  say(`not running (state dir ${STATE_DIR})`);
  return 3;
}

function leaseArg() {
  const arg = process.argv.slice(3).find((a) => a.startsWith('--lease='));
  if (arg === undefined) return undefined;
  const pid = Number(arg.slice('--lease='.length));
  if (!Number.isInteger(pid) || pid <= 0) throw new BrokerError(`--lease needs the pid of the process holding the lease, got ${arg}`);
  return pid;
}

async function main() {
  const command = process.argv[2];
  const lease = leaseArg();
  switch (command) {
    case 'start':
      await withLock(() => start(lease));
      return 0;
    case 'release':
      await withLock(() => release(lease));
      return 0;
    case 'stop':
      await withLock(stop);
      return 0;
    case 'restart':
      await withLock(async () => {
        const leased = existsSync(AUTO_STOP_FILE);
        await stop();
        await start();
        if (leased) writeFileSync(AUTO_STOP_FILE, 'started for leases; the last release stops it\n');
      });
      return 0;
    case 'status':
      return status();
    case 'clean':
      await withLock(async () => {
        await stop();
        // Only what this script put there: the test broker's state dir may live inside (.kafka/test).
        for (const f of [DATA_DIR, LOGS_DIR, LEASES_DIR, CONSOLE_LOG, STATE_FILE, SERVER_PROPS, LOG4J_PROPS, PID_FILE]) rmSync(f, { recursive: true, force: true });
      });
      try {
        rmdirSync(STATE_DIR);
      } catch {
        // not empty (another state dir inside) or already gone
      }
      say(`removed the broker state in ${STATE_DIR}`);
      return 0;
    default:
      process.stderr.write('usage: node scripts/kafka.mjs start|stop|restart|status|clean [--lease=<pid>] | release --lease=<pid>\n');
      return 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`[kafka] ERROR: ${err instanceof BrokerError ? err.message : (err?.stack ?? String(err))}\n`);
    process.exitCode = 1;
  },
);
