/**
 * One TLS handshake with a ClickHouse server before any HTTP request, so that a misconfigured https connection
 * fails at start, in seconds, with what is wrong, instead of as request timeouts: a ClickHouse HTTP port that
 * receives a TLS ClientHello may wait for the rest of a request line that never comes.
 */
import net from 'node:net';
import tls from 'node:tls';
import { FedStreamError } from '../../common/index.ts';

/** How long a handshake may take before the port is taken for one that does not speak TLS. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;

/**
 * Resolves undefined when `url` (https) completes a handshake that `ca` (or the system's trust store) trusts for the
 * URL's host name; otherwise an ANALYTICS_TLS error naming the certificate's subject and issuer and why, or saying
 * the port does not speak TLS. A server that cannot be reached also resolves undefined: that is not a TLS question,
 * and requests report it as ANALYTICS_UNAVAILABLE (retriable).
 */
export function probeClickhouseTls(url: URL, o: { ca?: Buffer; cert?: Buffer; key?: Buffer; timeoutMs?: number } = {}): Promise<FedStreamError | undefined> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 443);
  const timeoutMs = o.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  const where = `ClickHouse at ${url.origin}`;
  return new Promise((resolve) => {
    const socket = tls.connect({
      host, port, rejectUnauthorized: false,
      ...(net.isIP(host) ? {} : { servername: host }),
      ...(o.ca ? { ca: o.ca } : {}), ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
    });
    const done = (e: FedStreamError | undefined) => { socket.destroy(); resolve(e); };
    socket.setTimeout(timeoutMs, () => done(new FedStreamError('ANALYTICS_TLS',
      `${where}: no TLS handshake within ${timeoutMs} ms: is this the plain HTTP port (8123) behind an https:// URL?`, { details: { url: url.origin } })));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      const subject = peer?.subject ? `CN=${peer.subject.CN}` : 'unknown subject';
      const issuer = peer?.issuer ? `CN=${peer.issuer.CN}` : 'unknown issuer';
      const authError = socket.authorizationError ? String(socket.authorizationError) : undefined;
      if (authError && !/ALTNAME/.test(authError)) {
        return done(new FedStreamError('ANALYTICS_TLS', `${where} presented certificate ${subject} issued by ${issuer}, which is not trusted by the configured CA (analytics.tls.ca, --clickhouse-ca): ${authError}`, { details: { url: url.origin, subject, issuer, reason: authError } }));
      }
      const nameError = tls.checkServerIdentity(host, peer);
      if (nameError) return done(new FedStreamError('ANALYTICS_TLS', `${where} presented a certificate for other names: ${nameError.message}`, { details: { url: url.origin, subject, reason: nameError.message } }));
      done(undefined);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'].includes(err.code ?? '')) return done(undefined);
      const plaintext = err.code === 'ECONNRESET' || err.code === 'EPROTO' || /wrong version number|packet length too long|disconnected before secure TLS/i.test(err.message);
      done(new FedStreamError('ANALYTICS_TLS', plaintext
        ? `${where} does not speak TLS: is this the plain HTTP port (8123) behind an https:// URL? (${err.message.trim()})`
        : `TLS with ${where} failed: ${err.message}`, { cause: err, details: { url: url.origin } }));
    });
  });
}
