#!/usr/bin/env node
/**
 * The security material of docker-compose.secure.yml, made by its one-shot `kafka-secrets` service:
 *
 *   node scripts/kafka/compose-secrets.mjs <dir> [--owner <uid>:<gid>]
 *
 * The same code as the secured development broker (security.mjs): a CA, a broker certificate for the names `kafka`,
 * `localhost` and 127.0.0.1, one random password per user, SCRAM users created when storage is formatted. Laid out
 * so that each container mounts only what it needs (a volume subpath each):
 *
 *   <dir>/broker/                   the Kafka container: server.properties, PEM keystore, CA, cluster id, the
 *                                   format arguments that create the SCRAM users, and admin.properties (health check)
 *   <dir>/clients/<user>/           one per principal: ca.pem and password (admin: the super user, for the
 *                                   one-shot `topics` and `access` services only)
 *
 * Idempotent: an existing <dir>/complete is left as it is, so restarting the stack keeps the passwords. `--owner`
 * hands the files to the Kafka image's user (apache/kafka runs as uid 1000).
 */
import { chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomClusterId } from './setup.mjs';
import { ensureSecurityMaterial, scramFormatArgs, securityProperties } from './security.mjs';

/** The principals of docker-compose.secure.yml: the super user, the aggregator, the sink and the three nodes. */
export const COMPOSE_USERS = ['admin', 'aggregator', 'sink', 'node-1', 'node-2', 'node-3'];

/** Ports inside the compose network: INTERNAL for containers, EXTERNAL published on the host, CONTROLLER. */
export const COMPOSE_PORTS = { internal: 19093, external: 9093, controller: 9094 };

/** Where the Kafka container mounts <dir>/broker, and where its data lives (the apache/kafka image's default). */
const BROKER_MOUNT = '/secrets';
const DATA_DIR = '/var/lib/kafka/data';

/**
 * server.properties of the secured compose broker: SASL_SSL on both client listeners (no plaintext at all), the
 * controller on SASL_PLAINTEXT, and the shared security block (StandardAuthorizer, admin the only super user).
 * `m` holds container paths.
 */
export function composeServerProperties(m, { internal, external, controller } = COMPOSE_PORTS) {
  return `# Written by scripts/kafka/compose-secrets.mjs for docker-compose.secure.yml. Single node, KRaft combined mode.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:${controller}
listeners=INTERNAL://:${internal},EXTERNAL://:${external},CONTROLLER://:${controller}
advertised.listeners=INTERNAL://kafka:${internal},EXTERNAL://localhost:${external}
listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
log.dirs=${DATA_DIR}
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
${securityProperties(m, ['internal', 'external'])}`;
}

/** Client properties of the super user, for Kafka's own command-line tools (the container's health check). */
function adminClientProperties(m) {
  const q = (s) => `"${String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return `security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password=${q(m.users.admin)};
ssl.truststore.type=PEM
ssl.truststore.location=${m.ca}
`;
}

function write(file, text, mode = 0o600) {
  writeFileSync(file, text, { mode });
}

/** Makes the layout above under `dir` (once) and returns its paths. */
export function ensureComposeSecrets(dir, { owner } = {}) {
  const done = path.join(dir, 'complete');
  const brokerDir = path.join(dir, 'broker');
  if (!existsSync(done)) {
    const material = ensureSecurityMaterial(brokerDir, COMPOSE_USERS, { brokerNames: ['kafka', 'localhost', '127.0.0.1'] });
    // The container sees brokerDir at BROKER_MOUNT.
    const inContainer = { ...material, ca: `${BROKER_MOUNT}/ca.pem`, keystore: `${BROKER_MOUNT}/broker-keystore.pem` };
    write(path.join(brokerDir, 'server.properties'), composeServerProperties(inContainer));
    write(path.join(brokerDir, 'admin.properties'), adminClientProperties(inContainer));
    write(path.join(brokerDir, 'cluster-id'), `${randomClusterId()}\n`, 0o644);
    write(path.join(brokerDir, 'scram-format.args'), `${scramFormatArgs(material).join('\n')}\n`);
    for (const user of COMPOSE_USERS) {
      const clientDir = path.join(dir, 'clients', user);
      mkdirSync(clientDir, { recursive: true });
      copyFileSync(material.ca, path.join(clientDir, 'ca.pem'));
      write(path.join(clientDir, 'password'), `${material.users[user]}\n`);
    }
    writeFileSync(done, 'compose secrets complete\n');
  }
  if (owner) {
    const [uid, gid] = owner.split(':').map(Number);
    const chownTree = (p) => {
      chownSync(p, uid, gid);
      if (statSync(p).isDirectory()) for (const f of readdirSync(p)) chownTree(path.join(p, f));
    };
    chownTree(dir);
  }
  return { dir, brokerDir, clientDir: (user) => path.join(dir, 'clients', user) };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, flag, owner] = process.argv.slice(2);
  if (!dir || (flag !== undefined && flag !== '--owner') || (flag && !/^\d+:\d+$/.test(owner ?? ''))) {
    process.stderr.write('usage: node scripts/kafka/compose-secrets.mjs <dir> [--owner <uid>:<gid>]\n');
    process.exit(2);
  }
  const made = ensureComposeSecrets(path.resolve(dir), owner ? { owner } : {});
  process.stdout.write(`compose secrets ready in ${made.dir} (users: ${COMPOSE_USERS.join(', ')})\n`);
}
