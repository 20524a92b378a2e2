/** scripts/kafka.mjs: the prerequisites (Java, the Kafka jars through Maven) and the broker's configuration files. */
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BrokerError, DATA_DIR, HOST, KAFKA_VERSION, LIBS_DIR, LIBS_MARKER, LOGS_DIR, POM, say } from './paths.mjs';

// ---------------------------------------------------------------------------------------------------------------
// prerequisites

export function javaBin() {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

export function checkJava() {
  const java = javaBin();
  const res = spawnSync(java, ['-version'], { encoding: 'utf8' });
  if (res.error || res.status !== 0) {
    throw new BrokerError(
      `Java was not found (${java}: ${res.error?.message ?? `exit ${res.status}`}). Kafka ${KAFKA_VERSION} needs Java 11+ (17 recommended): ` +
        'install a JDK/JRE (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME.',
    );
  }
  const m = /version "(\d+)(?:\.(\d+))?/.exec(res.stderr ?? '');
  const major = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : undefined;
  if (major !== undefined && major < 11) throw new BrokerError(`Java ${major} found at ${java}; Kafka ${KAFKA_VERSION} needs Java 11 or newer (17 recommended).`);
}

function pomHash() {
  return createHash('sha256').update(readFileSync(POM)).digest('hex');
}

function libsComplete() {
  try {
    return readFileSync(LIBS_MARKER, 'utf8').trim() === pomHash() && readdirSync(LIBS_DIR).some((f) => f.startsWith(`kafka_2.13-${KAFKA_VERSION}`));
  } catch {
    return false;
  }
}

export function fetchJars() {
  if (libsComplete()) return;
  const mvn = spawnSync('mvn', ['-v'], { encoding: 'utf8' });
  if (mvn.error || mvn.status !== 0) {
    throw new BrokerError(
      `Maven (mvn) was not found (${mvn.error?.message ?? `exit ${mvn.status}`}); it fetches the Kafka ${KAFKA_VERSION} jars from Maven Central once ` +
        `into ${LIBS_DIR}. Install Maven 3.6+ (e.g. apt-get install maven), or put the jars there and write ${LIBS_MARKER} with the sha256 of ${POM}.`,
    );
  }
  say(`fetching Apache Kafka ${KAFKA_VERSION} jars from Maven Central into ${LIBS_DIR} (first run only)…`);
  rmSync(LIBS_DIR, { recursive: true, force: true });
  rmSync(LIBS_MARKER, { force: true });
  mkdirSync(LIBS_DIR, { recursive: true });
  const res = spawnSync('mvn', ['-q', '-B', '-f', POM, 'dependency:copy-dependencies', `-DoutputDirectory=${LIBS_DIR}`], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.error || res.status !== 0) {
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    throw new BrokerError(`mvn dependency:copy-dependencies failed (${res.error?.message ?? `exit ${res.status}`}); is Maven Central reachable?\n${out}`);
  }
  writeFileSync(LIBS_MARKER, `${pomHash()}\n`);
  say(`fetched ${readdirSync(LIBS_DIR).length} jars`);
}

// ---------------------------------------------------------------------------------------------------------------
// configuration

/** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid` prints). */
export function randomClusterId() {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

export function serverProperties({ port, controllerPort }) {
  return `# Written by scripts/kafka.mjs; rewritten on every start. Single node, KRaft combined mode, for dev and tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${controllerPort}
listeners=PLAINTEXT://${HOST}:${port},CONTROLLER://${HOST}:${controllerPort}
advertised.listeners=PLAINTEXT://${HOST}:${port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${DATA_DIR}

# Topics are created explicitly by the code (admin createTopics), never by a typo.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1

# One broker: internal topics cannot have more replicas than that; one partition each keeps start-up fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0

# Kafka's defaults, written out because the code relies on them: payloads above ~1 MB are chunked by
# src/codec, and transactions may be open at most 15 minutes.
message.max.bytes=1048588
transaction.max.timeout.ms=900000

# One node is both the controller and its only broker. On a loaded two-core machine the broker's threads went
# unscheduled for up to 35 s at a time (CI beside stress-ng), far past the default 9 s session, and the controller
# fenced its only broker: createTopics answered INVALID_REPLICATION_FACTOR and every partition lost its leader until
# the next heartbeat got through. With one broker, fencing it gains nothing, so its session is long. The price is paid
# only after an unclean death (kill -9): the new broker's registration is refused (DUPLICATE_BROKER_REGISTRATION)
# until the dead one's session ends, and Kafka asks again with a backoff of up to half the session, so such a start
# takes up to ~100 s; the initial registration timeout is above that. docs/reliability.md, "A broker fenced by its
# own controller".
broker.session.timeout.ms=60000
broker.heartbeat.interval.ms=2000
initial.broker.registration.timeout.ms=150000

# Two cores, 512 MB heap.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
`;
}

export function log4jProperties() {
  return `# Written by scripts/kafka.mjs. Everything at INFO to logs/server.log; warnings also to broker.log (stdout).
log4j.rootLogger=INFO, file, stdout
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=${path.join(LOGS_DIR, 'server.log')}
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.Threshold=WARN
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.controller=INFO
`;
}
