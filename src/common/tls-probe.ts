/**
 * One TLS handshake, before any client of a service (a Kafka broker, a ClickHouse server) connects, so that a
 * misconfigured TLS connection fails at start, in seconds, with what is wrong — instead of as a client's retried
 * "connection error" or as request timeouts (a plaintext port that receives a ClientHello may close the connection,
 * answer bytes that are no TLS record, or wait for the rest of a request line that never comes).
 *
 * The probe only classifies; each caller maps the outcome to its own error code (TRANSPORT_TLS, ANALYTICS_TLS...).
 * Trust is decided as the client will: the CA given (or the system's store), then the host name against the
 * certificate's names (RFC 6125 via `tls.checkServerIdentity`); SNI is sent for host names only (RFC 6066).
 */
import net from 'node:net';
import tls from 'node:tls';

/** What one handshake found. `subject`/`issuer` are `CN=…` of the presented certificate. */
export type TlsProbeOutcome =
  | { kind: 'ok' }
  /** Nothing listens or the host is unknown: not a TLS question (`code` is the socket error code). */
  | { kind: 'unreachable'; code: string; message: string }
  /** No handshake within the timeout: often a plaintext port that waits for more bytes. */
  | { kind: 'timeout'; timeoutMs: number }
  /** The certificate chain is not trusted by the CA given (or the trust store). */
  | { kind: 'untrusted'; subject: string; issuer: string; reason: string }
  /** Trusted, but issued for other names than the host. */
  | { kind: 'wrong-name'; subject: string; reason: string }
  /** The peer does not speak TLS (closed the connection or answered with no TLS record). */
  | { kind: 'not-tls'; message: string; cause: Error }
  /** Any other handshake failure. */
  | { kind: 'failed'; message: string; cause: Error };

/** Where to connect and what to trust. `timeoutMs` bounds the whole handshake (default 10 s). */
export interface TlsProbeTarget {
  host: string;
  port: number;
  ca?: Buffer | string | (Buffer | string)[];
  cert?: Buffer | string;
  key?: Buffer | string;
  /** The key's passphrase, when it is encrypted. */
  passphrase?: string;
  timeoutMs?: number;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT']);
const NOT_TLS = /disconnected before secure TLS|wrong version number|packet length too long/i;

/** Performs one handshake with `target` and resolves what it found; never rejects. */
export function probeTlsHandshake(target: TlsProbeTarget): Promise<TlsProbeOutcome> {
  const host = target.host.replace(/^\[|\]$/g, '');
  const timeoutMs = target.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    const socket = tls.connect({
      host, port: target.port, rejectUnauthorized: false,
      ...(net.isIP(host) ? {} : { servername: host }),
      ...(target.ca ? { ca: target.ca } : {}),
      ...(target.cert && target.key ? { cert: target.cert, key: target.key } : {}),
      ...(target.passphrase ? { passphrase: target.passphrase } : {}),
    });
    const done = (o: TlsProbeOutcome) => { socket.destroy(); resolve(o); };
    socket.setTimeout(timeoutMs, () => done({ kind: 'timeout', timeoutMs }));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate();
      const subject = peer?.subject?.CN ? `CN=${peer.subject.CN}` : 'unknown subject';
      const issuer = peer?.issuer?.CN ? `CN=${peer.issuer.CN}` : 'unknown issuer';
      const authError = socket.authorizationError as (Error & { code?: string }) | string | null | undefined;
      const reason = authError ? String(typeof authError === 'object' ? authError.code ?? authError.message : authError) : '';
      const altName = /ALTNAME/.test(reason);
      if (authError && !altName) return done({ kind: 'untrusted', subject, issuer, reason });
      // Trusted: then the name must be one the certificate gives (hostname verification stays on).
      const nameError = tls.checkServerIdentity(host, peer) ?? (altName ? new Error(reason) : undefined);
      if (nameError) return done({ kind: 'wrong-name', subject, reason: nameError.message });
      done({ kind: 'ok' });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      if (UNREACHABLE.has(err.code ?? '')) return done({ kind: 'unreachable', code: err.code!, message: err.message });
      const plaintext = err.code === 'ECONNRESET' || err.code === 'EPROTO' || NOT_TLS.test(err.message);
      done(plaintext ? { kind: 'not-tls', message: err.message.trim(), cause: err } : { kind: 'failed', message: err.message, cause: err });
    });
  });
}
