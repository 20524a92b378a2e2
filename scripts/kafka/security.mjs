/**
 * The secured development and test broker (`scripts/kafka.mjs start --secure`): a SASL_SSL listener beside the
 * plaintext one, KRaft's StandardAuthorizer with allow.everyone.if.no.acl.found=false, and a super user for
 * administration only.
 *
 * - TLS: a CA and a broker certificate (SAN localhost and 127.0.0.1) made on the spot by openssl, as PEM files that
 *   Kafka reads directly (ssl.keystore.type=PEM); a second, unrelated CA ("rogue") lets tests try an untrusted one,
 *   and a client certificate signed by the CA lets them try mTLS.
 * - SASL: SCRAM-SHA-256 and SCRAM-SHA-512 users created when storage is formatted (KIP-900's `--add-scram`), the same
 *   users for PLAIN (static JAAS entries: PLAIN only on the TLS listener), and OAUTHBEARER with Kafka's unsecured
 *   JWS validator (development only: it trusts any unsigned token; production uses a real OIDC validator).
 * - The controller listener speaks SASL_PLAINTEXT/PLAIN as its own super user, so that no unauthenticated principal
 *   is ever a super user: clients of the plaintext listener are User:ANONYMOUS and get nothing without an ACL.
 *
 * Passwords are random, one file per user (mode 0600) under <state>/security/users/: secrets come from files, never
 * from a command line or a log.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Users every secured broker has. `admin` is the only super user; the others get what ACLs give them. */
export const DEFAULT_USERS = [
  'admin',
  'aggregator', 'sink', 'node-1', 'node-2', 'node-3', 'node-4', 'node-5',
  'tenant-b-aggregator', 'tenant-b-node',
  'revoked-node', 'outsider',
];

const CONTROLLER_USER = 'controller';

function openssl(args, cwd) {
  const res = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new Error(`openssl ${args[0]} failed (${res.error?.message ?? `exit ${res.status}`}): ${(res.stderr ?? '').trim().split('\n').slice(-5).join(' ')}. ` +
      'The secured broker needs the openssl command (apt-get install openssl).');
  }
}

function writeSecret(file, value) {
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** A self-signed CA (`<name>.pem`, `<name>.key`) in `dir`. */
function makeCa(dir, name, subject) {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '3650', '-subj', subject,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  chmodSync(path.join(dir, `${name}.key`), 0o600);
}

/** A leaf certificate signed by `ca`: `<name>.pem` (certificate) and `<name>.key` (PKCS#8, unencrypted, 0600). */
function makeLeaf(dir, name, ca, subject, extensions) {
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.raw.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  writeFileSync(path.join(dir, `${name}.ext`), extensions);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '3650', '-extfile', `${name}.ext`], dir);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.raw.key`, '-out', `${name}.key`], dir);
  chmodSync(path.join(dir, `${name}.key`), 0o600);
}

/**
 * Makes (once) and returns the TLS material and user passwords of a secured broker under `dir`
 * (<state>/security). Idempotent: an existing directory is reused as it is. `brokerNames` are the DNS names and IP
 * addresses the broker certificate carries (clients verify the host they dial against them).
 * @returns {{ dir: string, ca: string, rogueCa: string, keystore: string, clientCert: string, clientKey: string, users: Record<string, string>, controllerPassword: string }}
 */
export function ensureSecurityMaterial(dir, users = DEFAULT_USERS, { brokerNames = ['localhost', '127.0.0.1'] } = {}) {
  const usersDir = path.join(dir, 'users');
  const done = path.join(dir, 'complete');
  if (!existsSync(done)) {
    mkdirSync(usersDir, { recursive: true });
    makeCa(dir, 'ca', '/CN=FedStream development CA');
    makeCa(dir, 'rogue-ca', '/CN=Some other CA');
    const san = brokerNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    makeLeaf(dir, 'broker', 'ca', `/CN=${brokerNames[0]}`, `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    makeLeaf(dir, 'client', 'ca', '/CN=fedstream-client', 'extendedKeyUsage=clientAuth\n');
    // Kafka's PEM keystore: the private key, then the certificate chain.
    writeSecret(path.join(dir, 'broker-keystore.pem'), `${readFileSync(path.join(dir, 'broker.key'), 'utf8').trim()}\n${readFileSync(path.join(dir, 'broker.pem'), 'utf8').trim()}\n${readFileSync(path.join(dir, 'ca.pem'), 'utf8').trim()}`);
    for (const u of users) writeSecret(path.join(usersDir, `${u}.password`), randomBytes(18).toString('base64url'));
    writeSecret(path.join(dir, `${CONTROLLER_USER}.password`), randomBytes(18).toString('base64url'));
    writeFileSync(done, 'security material complete\n');
  }
  const read = (f) => readFileSync(f, 'utf8').trim();
  const passwords = Object.fromEntries(readdirSync(usersDir).filter((f) => f.endsWith('.password')).map((f) => [f.slice(0, -'.password'.length), read(path.join(usersDir, f))]));
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    rogueCa: path.join(dir, 'rogue-ca.pem'),
    keystore: path.join(dir, 'broker-keystore.pem'),
    clientCert: path.join(dir, 'client.pem'),
    clientKey: path.join(dir, 'client.key'),
    users: passwords,
    controllerPassword: read(path.join(dir, `${CONTROLLER_USER}.password`)),
  };
}

/** A JAAS option value, quoted as Kafka's parser expects. */
const q = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/**
 * The listener and security lines of a secured broker's server.properties: PLAINTEXT on `port` (anonymous, so ACLs
 * refuse it everything), SASL_SSL on `securePort` (advertised as localhost for hostname verification), the
 * controller on SASL_PLAINTEXT/PLAIN, the StandardAuthorizer with admin as the only client super user.
 */
export function secureListenerProperties({ host, port, securePort, controllerPort }, m) {
  return `listeners=PLAINTEXT://${host}:${port},SASL_SSL://${host}:${securePort},CONTROLLER://${host}:${controllerPort}
advertised.listeners=PLAINTEXT://${host}:${port},SASL_SSL://localhost:${securePort}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
${securityProperties(m, ['sasl_ssl'], { unsecuredOauthbearer: true })}`;
}

/**
 * The security lines every secured broker shares (the development broker above, docker-compose.secure.yml): the
 * controller on SASL_PLAINTEXT/PLAIN as its own super user, SCRAM-SHA-256/512 and PLAIN on each of the SASL_SSL
 * `listeners` (lower-case listener names), PEM key and trust stores, the StandardAuthorizer with
 * allow.everyone.if.no.acl.found=false and admin as the only client super user.
 *
 * `unsecuredOauthbearer` adds OAUTHBEARER with Kafka's unsecured JWS validator, which trusts any unsigned token and
 * so lets anyone claim any principal: the development broker only (tests of the token-provider hook), never compose.
 */
export function securityProperties(m, listeners, { unsecuredOauthbearer = false } = {}) {
  const plainUsers = Object.entries(m.users).map(([u, p]) => `user_${u}=${q(p)}`).join(' ');
  const perListener = listeners.map((l) => `listener.name.${l}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password=${q(m.users.admin)};
listener.name.${l}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.${l}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};${unsecuredOauthbearer ? `
# Development only: Kafka's unsecured JWS validator accepts any unsigned token. Production: an OIDC validator.
listener.name.${l}.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";` : ''}`).join('\n');
  return `sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=${q(CONTROLLER_USER)} password=${q(m.controllerPassword)} user_${CONTROLLER_USER}=${q(m.controllerPassword)};
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN${unsecuredOauthbearer ? ',OAUTHBEARER' : ''}
${perListener}
ssl.keystore.type=PEM
ssl.keystore.location=${m.keystore}
ssl.truststore.type=PEM
ssl.truststore.location=${m.ca}
# A client certificate is checked when one is offered (mTLS), not required: SASL is the identity.
ssl.client.auth=requested
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:${CONTROLLER_USER}
`;
}

/** `kafka.tools.StorageTool format` arguments that create every user with SCRAM-SHA-256 and SCRAM-SHA-512 credentials. */
export function scramFormatArgs(m) {
  return Object.entries(m.users).flatMap(([u, p]) => [
    '--add-scram', `SCRAM-SHA-256=[name=${u},password=${p}]`,
    '--add-scram', `SCRAM-SHA-512=[name=${u},password=${p}]`,
  ]);
}
