/** scripts/kafka.mjs: free ports, and the readiness probe (a raw Kafka Metadata request). */
import net from 'node:net';
import { HOST } from './paths.mjs';

export function listenOn(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host: HOST, exclusive: true }, () => resolve(server));
  });
}

export async function isPortFree(port) {
  try {
    const server = await listenOn(port);
    await new Promise((resolve) => server.close(resolve));
    return true;
  } catch {
    return false;
  }
}

/** Two distinct free ports, both held while choosing so that the OS does not hand out the same one twice. */
export async function pickPorts() {
  const a = await listenOn(0);
  const b = await listenOn(0);
  const ports = [a.address().port, b.address().port];
  await Promise.all([a, b].map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export function kafkaString(s) {
  const bytes = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeInt16BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

/**
 * Sends a Kafka Metadata v1 request (all topics) and resolves true when the broker lists itself and a controller.
 * A KRaft broker only opens its client listener once it has caught up with the metadata log, so this is a
 * better readiness signal than an open port.
 */
export function metadataAnswers(port, timeoutMs = 2_000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let received = Buffer.alloc(0);
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => {
      const body = Buffer.concat([
        Buffer.from([0x00, 0x03]), // api key 3: Metadata
        Buffer.from([0x00, 0x01]), // version 1
        Buffer.from([0x00, 0x00, 0x00, 0x2a]), // correlation id 42
        kafkaString('fedstream-kafka-mjs'),
        Buffer.from([0xff, 0xff, 0xff, 0xff]), // topics: null = all
      ]);
      const size = Buffer.alloc(4);
      size.writeInt32BE(body.length);
      socket.write(Buffer.concat([size, body]));
    });
    socket.on('data', (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 4 || received.length < 4 + received.readInt32BE(0)) return;
      try {
        let o = 4;
        const correlationId = received.readInt32BE(o);
        o += 4;
        const brokerCount = received.readInt32BE(o);
        o += 4;
        for (let i = 0; i < brokerCount; i++) {
          o += 4; // node id
          o += 2 + received.readInt16BE(o); // host
          o += 4; // port
          const rackLen = received.readInt16BE(o);
          o += 2 + Math.max(rackLen, 0);
        }
        const controllerId = received.readInt32BE(o);
        done(correlationId === 42 && brokerCount > 0 && controllerId >= 0);
      } catch {
        done(false);
      }
    });
  });
}
