/** scripts/kafka.mjs: the commands (start, release, stop, status) over one state directory. */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import {
  AUTO_STOP_FILE,
  BrokerError,
  CONSOLE_LOG,
  DATA_DIR,
  HOST,
  KAFKA_VERSION,
  LEASES_DIR,
  LIBS_DIR,
  LOG4J_PROPS,
  LOGS_DIR,
  PID_FILE,
  SERVER_PROPS,
  START_TIMEOUT_MS,
  STATE_DIR,
  STATE_FILE,
  say,
  sleep,
} from './paths.mjs';
import { isPortFree, metadataAnswers, pickPorts } from './probe.mjs';
import { addLease, isAlive, isOurBroker, killGroup, liveLeases, logTails, readPid, readState } from './process.mjs';
import { checkJava, fetchJars, javaBin, log4jProperties, randomClusterId, serverProperties } from './setup.mjs';
import { ensureSecurityMaterial, scramFormatArgs, secureListenerProperties } from './security.mjs';

/** The broker of this state directory when it runs and answers, else undefined. */
export async function running() {
  const pid = readPid();
  const state = readState();
  if (pid === undefined || !state || !isOurBroker(pid)) return undefined;
  return (await metadataAnswers(state.port)) ? { pid, ...state } : { pid, ...state, starting: true };
}

/** Where the secured broker's CA, certificates and user password files are (`start --secure`). */
export const SECURITY_DIR = path.join(STATE_DIR, 'security');

/**
 * The last line is always KAFKA_BROKERS=… (the plaintext listener); a secured broker first prints its SASL_SSL
 * listener (advertised as localhost, the name its certificate carries) and where its security material is.
 */
export function announce(port, state) {
  if (state?.securePort) {
    process.stdout.write(`KAFKA_SECURE_BROKERS=localhost:${state.securePort}\nKAFKA_SECURITY_DIR=${SECURITY_DIR}\n`);
  }
  process.stdout.write(`KAFKA_BROKERS=${HOST}:${port}\n`);
}

const LISTENER_KEYS = ['listeners=', 'advertised.listeners=', 'listener.security.protocol.map=', 'controller.listener.names=', 'inter.broker.listener.name='];

/** server.properties of this start: the plaintext broker's, with the listener block replaced when secured. */
function propertiesFor(state, material) {
  const base = serverProperties(state);
  if (!state.securePort) return base;
  const kept = base.split('\n').filter((line) => !LISTENER_KEYS.some((k) => line.startsWith(k))).join('\n');
  return `${kept}\n# --secure: SASL_SSL beside PLAINTEXT, StandardAuthorizer, admin the only client super user (scripts/kafka/security.mjs)\n${secureListenerProperties({ host: HOST, port: state.port, securePort: state.securePort, controllerPort: state.controllerPort }, material)}`;
}

export async function waitUntilReady(pid, port) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) throw new BrokerError(`the broker process (pid ${pid}) exited during start-up.\n${logTails()}`);
    if (await metadataAnswers(port)) return;
    await sleep(250);
  }
  throw new BrokerError(`the broker did not answer a metadata request on ${HOST}:${port} within ${START_TIMEOUT_MS} ms (pid ${pid}).\n${logTails()}`);
}

export async function start(lease, { secure = false } = {}) {
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
    if (secure && !current.securePort) throw new BrokerError(`the broker of ${STATE_DIR} runs without --secure; stop it, or use another FEDSTREAM_KAFKA_DIR for the secured one`);
    announce(current.port, current);
    return;
  }
  const dead = readPid();
  if (dead !== undefined && existsSync(path.join(DATA_DIR, 'meta.properties'))) {
    // Its pid file is left only by a broker that did not stop through `stop` (kill -9, a crash, a reboot).
    say(`the last broker (pid ${dead}) did not stop cleanly: its controller session (60 s) must end before this one registers, so start-up may take up to ~100 s`);
  }
  rmSync(PID_FILE, { force: true });
  if (lease !== undefined) writeFileSync(AUTO_STOP_FILE, 'started for leases; the last release stops it\n');
  else rmSync(AUTO_STOP_FILE, { force: true });

  checkJava();
  fetchJars();

  mkdirSync(STATE_DIR, { recursive: true });
  let state = readState();
  const formatted = existsSync(path.join(DATA_DIR, 'meta.properties'));
  if (formatted && state && Boolean(state.securePort) !== secure) {
    throw new BrokerError(`${DATA_DIR} was formatted ${state.securePort ? 'with' : 'without'} --secure; start it the same way, \`clean\` it, or use another FEDSTREAM_KAFKA_DIR`);
  }
  if (state && formatted && (await isPortFree(state.port)) && (await isPortFree(state.controllerPort))) {
    say(`reusing port ${state.port} and the data in ${DATA_DIR}`);
  } else {
    if (state && formatted) say(`port ${state.port} or ${state.controllerPort} is taken by another process: choosing new ports`);
    const [port, controllerPort] = await pickPorts();
    state = { port, controllerPort, clusterId: formatted && state?.clusterId ? state.clusterId : randomClusterId(), kafkaVersion: KAFKA_VERSION };
    if (secure) {
      let [securePort] = await pickPorts();
      while (securePort === port || securePort === controllerPort) [securePort] = await pickPorts();
      state.securePort = securePort;
    }
  }
  if (state.securePort && !(await isPortFree(state.securePort))) throw new BrokerError(`port ${state.securePort} of the secured listener is taken; \`clean\` the state directory to choose new ports`);
  const material = state.securePort ? ensureSecurityMaterial(SECURITY_DIR) : undefined;
  writeFileSync(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`);
  writeFileSync(SERVER_PROPS, propertiesFor(state, material), { mode: 0o600 });
  writeFileSync(LOG4J_PROPS, log4jProperties());
  mkdirSync(LOGS_DIR, { recursive: true });

  const java = javaBin();
  const classpath = `${LIBS_DIR}${path.sep}*`;
  const log4jOpts = [`-Dlog4j.configuration=file:${LOG4J_PROPS}`, `-Dkafka.logs.dir=${LOGS_DIR}`];

  if (!existsSync(path.join(DATA_DIR, 'meta.properties'))) {
    rmSync(DATA_DIR, { recursive: true, force: true });
    say(`formatting storage in ${DATA_DIR} (cluster id ${state.clusterId})`);
    const res = spawnSync(java, ['-Xmx256m', ...log4jOpts, '-cp', classpath, 'kafka.tools.StorageTool', 'format', '-t', state.clusterId, '-c', SERVER_PROPS, ...(material ? scramFormatArgs(material) : [])], { encoding: 'utf8' });
    if (res.error || res.status !== 0) {
      throw new BrokerError(`kafka.tools.StorageTool format failed (${res.error?.message ?? `exit ${res.status}`}):\n${`${res.stdout ?? ''}${res.stderr ?? ''}`.trim()}`);
    }
  }

  const heap = (process.env.KAFKA_HEAP_OPTS ?? '-Xmx512m -Xms128m').split(/\s+/).filter(Boolean);
  const jvm = [...heap, '-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20', '-XX:InitiatingHeapOccupancyPercent=35', '-XX:+ExplicitGCInvokesConcurrent', '-XX:+ExitOnOutOfMemoryError', '-Djava.awt.headless=true',
    `-Xlog:gc*,safepoint:file=${path.join(LOGS_DIR, 'gc.log')}:time,uptime,level,tags:filecount=5,filesize=20M`];
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
  say(`ready after ${((Date.now() - t0) / 1000).toFixed(1)} s${state.securePort ? `; SASL_SSL on localhost:${state.securePort}, users and CA in ${SECURITY_DIR}` : ''}`);
  announce(state.port, state);
}

export async function release(lease) {
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

export async function stop() {
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

export async function status() {
  const current = await running();
  if (current && !current.starting) {
    say(`running (pid ${current.pid}), state in ${STATE_DIR}`);
    announce(current.port, current);
    return 0;
  }
  if (current?.starting) {
    say(`pid ${current.pid} is running but does not answer on ${HOST}:${current.port} yet`);
    return 3;
  }
  say(`not running (state dir ${STATE_DIR})`);
  return 3;
}
