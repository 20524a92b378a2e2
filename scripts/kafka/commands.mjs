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

/** The broker of this state directory when it runs and answers, else undefined. */
export async function running() {
  const pid = readPid();
  const state = readState();
  if (pid === undefined || !state || !isOurBroker(pid)) return undefined;
  return (await metadataAnswers(state.port)) ? { pid, ...state } : { pid, ...state, starting: true };
}

export function announce(port) {
  process.stdout.write(`KAFKA_BROKERS=${HOST}:${port}\n`);
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

export async function start(lease) {
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
