/**
 * One TLS handshake with a ClickHouse server before any HTTP request (src/common/tls-probe.ts), so that a
 * misconfigured https connection fails at start, in seconds, with what is wrong, instead of as request timeouts: a
 * ClickHouse HTTP port that receives a TLS ClientHello may wait for the rest of a request line that never comes.
 */
import { FedStreamError, probeTlsHandshake } from '../../common/index.ts';

/** How long a handshake may take before the port is taken for one that does not speak TLS. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;

const PLAIN_PORT_HINT = 'is this the plain HTTP port (8123) behind an https:// URL?';

/**
 * Resolves undefined when `url` (https) completes a handshake that `ca` (or the system's trust store) trusts for the
 * URL's host name; otherwise an ANALYTICS_TLS error naming the certificate's subject and issuer and why, or saying
 * the port does not speak TLS. A server that cannot be reached also resolves undefined: that is not a TLS question,
 * and requests report it as ANALYTICS_UNAVAILABLE (retriable).
 */
export async function probeClickhouseTls(url: URL, o: { ca?: Buffer; cert?: Buffer; key?: Buffer; timeoutMs?: number } = {}): Promise<FedStreamError | undefined> {
  const where = `ClickHouse at ${url.origin}`;
  const details = { url: url.origin };
  const r = await probeTlsHandshake({
    host: url.hostname, port: Number(url.port || 443), timeoutMs: o.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
    ...(o.ca ? { ca: o.ca } : {}), ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
  });
  switch (r.kind) {
    case 'ok': case 'unreachable': return undefined;
    case 'timeout': return new FedStreamError('ANALYTICS_TLS', `${where}: no TLS handshake within ${r.timeoutMs} ms: ${PLAIN_PORT_HINT}`, { details });
    case 'untrusted': return new FedStreamError('ANALYTICS_TLS', `${where} presented certificate ${r.subject} issued by ${r.issuer}, which is not trusted by the configured CA (analytics.tls.ca, --clickhouse-ca): ${r.reason}`, { details: { ...details, subject: r.subject, issuer: r.issuer, reason: r.reason } });
    case 'wrong-name': return new FedStreamError('ANALYTICS_TLS', `${where} presented a certificate for other names: ${r.reason}`, { details: { ...details, subject: r.subject, reason: r.reason } });
    case 'not-tls': return new FedStreamError('ANALYTICS_TLS', `${where} does not speak TLS: ${PLAIN_PORT_HINT} (${r.message})`, { cause: r.cause, details });
    case 'failed': return new FedStreamError('ANALYTICS_TLS', `TLS with ${where} failed: ${r.message}`, { cause: r.cause, details });
  }
}
