/**
 * scripts/kafka.mjs: where things live (jar cache, state directory, its files), the timeouts, and small helpers.
 * Paths are the same as when everything was one file: the jars in <root>/.cache, the state in .kafka.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const KAFKA_VERSION = '3.9.1';
const SCRIPT_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(SCRIPT_DIR, '..', '..');
export const POM = path.join(SCRIPT_DIR, 'pom.xml');

const CACHE_DIR = path.resolve(ROOT, process.env.FEDSTREAM_KAFKA_CACHE ?? '.cache');
const KAFKA_HOME = path.join(CACHE_DIR, `kafka-${KAFKA_VERSION}`);
export const LIBS_DIR = path.join(KAFKA_HOME, 'libs');
export const LIBS_MARKER = path.join(KAFKA_HOME, 'libs.complete');

export const STATE_DIR = path.resolve(process.cwd(), process.env.FEDSTREAM_KAFKA_DIR ?? path.join(ROOT, '.kafka'));
export const STATE_FILE = path.join(STATE_DIR, 'state.json');
export const PID_FILE = path.join(STATE_DIR, 'broker.pid');
export const LOCK_FILE = path.join(STATE_DIR, 'lock');
export const SERVER_PROPS = path.join(STATE_DIR, 'server.properties');
export const LOG4J_PROPS = path.join(STATE_DIR, 'log4j.properties');
export const DATA_DIR = path.join(STATE_DIR, 'data');
export const LOGS_DIR = path.join(STATE_DIR, 'logs');
export const CONSOLE_LOG = path.join(STATE_DIR, 'broker.log');
export const LEASES_DIR = path.join(STATE_DIR, 'leases');
/** Present while the broker runs only for leases: the last release stops it. */
export const AUTO_STOP_FILE = path.join(STATE_DIR, 'auto-stop');

// Above the broker's initial registration timeout (150 s, setup.mjs): a start after an unclean death waits out the
// dead broker's 60 s session before the new one is registered.
export const START_TIMEOUT_MS = Number(process.env.FEDSTREAM_KAFKA_START_TIMEOUT_MS ?? 180_000);
export const STOP_TIMEOUT_MS = 30_000;
export const HOST = '127.0.0.1';

export class BrokerError extends Error {}

export const say = (msg) => process.stderr.write(`[kafka] ${msg}\n`);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
