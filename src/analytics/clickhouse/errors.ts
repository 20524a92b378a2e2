/**
 * ClickHouse errors mapped into the FedStream family (src/common/errors.ts): unavailable (and whether a retry
 * can help) or a statement ClickHouse rejected, with the server's code and type. Both engines (server over
 * HTTP, embedded chdb) throw through here.
 */
import { FedStreamError, isFedStreamError } from '../../common/index.ts';


/**
 * Server exception types that say "try again later" rather than "this statement is wrong".
 * Names rather than numbers: @clickhouse/client parses both out of `Code: N. DB::Exception: … (TYPE)`.
 */
const TRANSIENT_TYPES = new Set([
  'TIMEOUT_EXCEEDED', 'TOO_MANY_SIMULTANEOUS_QUERIES', 'NO_FREE_CONNECTION', 'SOCKET_TIMEOUT', 'NETWORK_ERROR',
  'NO_ZOOKEEPER', 'ABORTED', 'MEMORY_LIMIT_EXCEEDED', 'TABLE_IS_READ_ONLY', 'TOO_MANY_PARTS',
  'ALL_CONNECTION_TRIES_FAILED', 'TOO_FEW_LIVE_REPLICAS', 'UNKNOWN_STATUS_OF_INSERT', 'SYSTEM_ERROR',
  'CANNOT_SCHEDULE_TASK', 'KEEPER_EXCEPTION', 'POCO_EXCEPTION', 'QUERY_WAS_CANCELLED', 'SERVER_OVERLOADED',
]);

/**
 * The server answered but will not let us in: not transient, not a statement error either. By name, and by number
 * for servers whose messages carry no name (`Code: 193, e.displayText() = …` before ClickHouse 20).
 */
const AUTH_TYPES = new Set(['AUTHENTICATION_FAILED', 'REQUIRED_PASSWORD', 'UNKNOWN_USER', 'WRONG_PASSWORD']);
const AUTH_CODES = new Set([192, 193, 194, 516]);

/** Node's codes for a certificate the client does not accept. */
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT',
]);

/** What the HTTP layer leaves in the message when there is no code: timeouts, hang-ups, proxies' 5xx pages. */
const TRANSPORT_MESSAGE = /Timeout error|socket hang up|ECONNRESET|ECONNREFUSED|\b50[234]\b|Bad Gateway|Service Unavailable|Gateway Time-?out/i;

interface ClickHouseErrorLike {
  message: string;
  code: string;
  type: string;
}

/**
 * The server's exception, whichever copy of the ClickHouseError class made it: chdb throws the one
 * from @clickhouse/client-common, which is not the class @clickhouse/client exports, so no instanceof.
 */
function asClickHouseError(err: unknown): ClickHouseErrorLike | undefined {
  if (!(err instanceof Error)) return undefined;
  const { code, type } = err as Partial<ClickHouseErrorLike>;
  return typeof type === 'string' && /^[A-Z0-9_]+$/.test(type) && code !== undefined && /^\d+$/.test(String(code))
    ? { message: err.message.trim(), code: String(code), type }
    : undefined;
}

/** ANALYTICS_TLS when `err` (or a cause) is a TLS failure: an untrusted or misnamed certificate, or a port without TLS. */
function tlsError(err: unknown, prefix: string, context: string): FedStreamError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (TLS_TRUST_CODES.has(code)) {
      const why = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? 'the certificate names other hosts' : 'the certificate is not trusted by the configured CA (analytics.tls.ca, --clickhouse-ca)';
      return new FedStreamError('ANALYTICS_TLS', `${prefix}TLS with ClickHouse failed: ${why}: ${e.message} (${code})`, { cause: err, details: { context, tlsCode: code } });
    }
    if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(e.message)) {
      return new FedStreamError('ANALYTICS_TLS', `${prefix}the ClickHouse port does not speak TLS: is this the plain HTTP port (8123) behind an https:// URL? (${e.message.trim()})`, { cause: err, details: { context, tlsCode: code } });
    }
  }
  return undefined;
}

function authError(message: string, prefix: string, err: unknown, details: Record<string, unknown>): FedStreamError {
  return new FedStreamError('ANALYTICS_AUTH', `${prefix}ClickHouse refused the user (wrong password, unknown user or no password given; the password is read from analytics.password or --clickhouse-password-file): ${message}`, { cause: err, details });
}

function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    if (e instanceof AggregateError) {
      const inner = e.errors.map(networkCode).find(Boolean);
      if (inner) return inner;
    }
  }
  return undefined;
}

/**
 * Maps anything the client throws into the FedStream family:
 * - ANALYTICS_UNAVAILABLE, retriable: the server cannot be reached (ECONNREFUSED, DNS, resets),
 *   timed out, answered with a gateway 5xx, or raised a transient exception (TOO_MANY_PARTS,
 *   MEMORY_LIMIT_EXCEEDED, TIMEOUT_EXCEEDED, …);
 * - ANALYTICS_UNAVAILABLE, not retriable: the client was closed, or the embedded engine cannot open its directory;
 * - ANALYTICS_AUTH: the server refused the user (AUTHENTICATION_FAILED, WRONG_PASSWORD, UNKNOWN_USER,
 *   REQUIRED_PASSWORD, by name or by number);
 * - ANALYTICS_TLS: the server's certificate is not trusted or names other hosts, or the port does not speak TLS;
 * - ANALYTICS_QUERY: the statement was rejected (syntax, unknown table, type mismatch…), with the
 *   server's message and `details.clickhouseCode` / `details.clickhouseType`.
 * `context` says what was being done ("inserting into fedstream.updates"); it prefixes the message.
 * A FedStreamError passes through unchanged.
 */
export function toAnalyticsError(err: unknown, context: string): FedStreamError {
  if (isFedStreamError(err)) return err;
  const prefix = context ? `${context}: ` : '';
  const ch = asClickHouseError(err);
  if (ch) {
    const details = { clickhouseCode: Number(ch.code), clickhouseType: ch.type, context };
    if (TRANSIENT_TYPES.has(ch.type)) return new FedStreamError('ANALYTICS_UNAVAILABLE', `${prefix}${ch.message} (${ch.type})`, { cause: err, details });
    if (AUTH_TYPES.has(ch.type) || AUTH_CODES.has(Number(ch.code))) return authError(`${ch.message} (${ch.type})`, prefix, err, details);
    return new FedStreamError('ANALYTICS_QUERY', `${prefix}${ch.message} (${ch.type})`, { cause: err, details });
  }
  const message = err instanceof Error ? err.message : String(err);
  const tls = tlsError(err, prefix, context);
  if (tls) return tls;
  const untypedCode = /^Code: (\d+)[,.]/.exec(message.trim())?.[1];
  if (untypedCode && AUTH_CODES.has(Number(untypedCode))) return authError(message.trim(), prefix, err, { clickhouseCode: Number(untypedCode), context });
  const code = networkCode(err);
  if (code || TRANSPORT_MESSAGE.test(message)) {
    return new FedStreamError('ANALYTICS_UNAVAILABLE', `${prefix}ClickHouse unavailable: ${message || code}`, { cause: err, details: { context, ...(code ? { errno: code } : {}) } });
  }
  const name = err instanceof Error ? err.constructor.name : '';
  if (/closed/i.test(message) || name === 'ChdbConnectionError' || name === 'ChdbClosedError') {
    return new FedStreamError('ANALYTICS_UNAVAILABLE', `${prefix}${message}`, { cause: err, retriable: false, details: { context } });
  }
  return new FedStreamError('ANALYTICS_QUERY', `${prefix}${message}`, { cause: err, details: { context } });
}
