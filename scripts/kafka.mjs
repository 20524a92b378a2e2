#!/usr/bin/env node
/**
 * A single-node Apache Kafka broker (KRaft, combined broker+controller) for development and tests,
 * run straight from the Apache Kafka jars on Maven Central with the machine's Java 17. No Docker.
 *
 *   node scripts/kafka.mjs start     fetch jars (once), format storage (once), start, wait until it answers;
 *                                    last stdout line: KAFKA_BROKERS=127.0.0.1:<port>
 *   node scripts/kafka.mjs start --secure
 *                                    the same broker with a SASL_SSL listener beside the plaintext one, the
 *                                    StandardAuthorizer (no ACL: no access) and SCRAM users whose passwords are in
 *                                    <state>/security/users/*.password (admin is the only super user); prints
 *                                    KAFKA_SECURE_BROKERS=localhost:<port> and KAFKA_SECURITY_DIR=<dir> before the
 *                                    last line. A state directory is secured or not for good (`clean` to change).
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
 *   FEDSTREAM_KAFKA_START_TIMEOUT_MS how long to wait for the broker to answer (default 180000)
 *   KAFKA_HEAP_OPTS                  JVM heap flags (default -Xmx512m -Xms128m)
 *   JAVA_HOME                        java is taken from $JAVA_HOME/bin when set, else from PATH
 *
 * Plain Node ESM with builtins only, so that it runs before `npm install` has been thought about. The modules in
 * scripts/kafka/: paths.mjs (where things live), process.mjs (pids, lock, leases), probe.mjs (ports, readiness),
 * setup.mjs (Java, jars, configuration files), commands.mjs (start, release, stop, status).
 */
import { existsSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { SECURITY_DIR, start, release, status, stop } from './kafka/commands.mjs';
import { AUTO_STOP_FILE, BrokerError, CONSOLE_LOG, DATA_DIR, LEASES_DIR, LOG4J_PROPS, LOGS_DIR, PID_FILE, SERVER_PROPS, STATE_DIR, STATE_FILE, say } from './kafka/paths.mjs';
import { readState, withLock } from './kafka/process.mjs';

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
      await withLock(() => start(lease, { secure: process.argv.slice(3).includes('--secure') }));
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
        await start(undefined, { secure: Boolean(readState()?.securePort) });
        if (leased) writeFileSync(AUTO_STOP_FILE, 'started for leases; the last release stops it\n');
      });
      return 0;
    case 'status':
      return status();
    case 'clean':
      await withLock(async () => {
        await stop();
        // Only what this script put there: the test broker's state dir may live inside (.kafka/test).
        for (const f of [DATA_DIR, LOGS_DIR, LEASES_DIR, CONSOLE_LOG, STATE_FILE, SERVER_PROPS, LOG4J_PROPS, PID_FILE, SECURITY_DIR]) rmSync(f, { recursive: true, force: true });
      });
      try {
        rmdirSync(STATE_DIR);
      } catch {
        // not empty (another state dir inside) or already gone
      }
      say(`removed the broker state in ${STATE_DIR}`);
      return 0;
    default:
      process.stderr.write('usage: node scripts/kafka.mjs start [--secure] [--lease=<pid>] | stop|restart|status|clean | release --lease=<pid>\n');
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
