/** scripts/kafka.mjs: the broker's process (alive, ours, stopped), the state lock, the leases and the log tails. */
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { BrokerError, CONSOLE_LOG, LEASES_DIR, LOCK_FILE, LOGS_DIR, PID_FILE, SERVER_PROPS, START_TIMEOUT_MS, STATE_DIR, STATE_FILE, STOP_TIMEOUT_MS, say, sleep } from './paths.mjs';

export function isAlive(pid) {
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
export function isOurBroker(pid) {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('kafka.Kafka') && cmdline.includes(SERVER_PROPS);
  } catch {
    return true;
  }
}

export function readPid() {
  try {
    return Number.parseInt(readFileSync(PID_FILE, 'utf8').trim(), 10);
  } catch {
    return undefined;
  }
}

export function readState() {
  try {
    return JSON.parse(readFileSync(STATE_FILE, 'utf8'));
  } catch {
    return undefined;
  }
}

/** One `start`/`stop` at a time per state directory (e.g. a test run and a developer's shell). */
export async function withLock(fn) {
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

export async function killGroup(pid) {
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
    say(`pid ${pid} did not stop within ${STOP_TIMEOUT_MS / 1000} s: SIGKILL (the next start waits up to ~100 s for its controller session to end)`);
    signal('SIGKILL');
    while (isAlive(pid)) await sleep(50);
  }
}

export function addLease(lease) {
  mkdirSync(LEASES_DIR, { recursive: true });
  writeFileSync(path.join(LEASES_DIR, String(lease)), `${lease}\n`);
}

export function liveLeases() {
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

function tail(file, lines = 40) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function logTails() {
  return `--- tail of ${CONSOLE_LOG} ---\n${tail(CONSOLE_LOG)}\n--- tail of ${path.join(LOGS_DIR, 'server.log')} ---\n${tail(path.join(LOGS_DIR, 'server.log'))}`;
}
