/**
 * Reading a pipeline's model versions back from its models topic, and its last round control from its control topic: chunked payloads reassembled (wire.ts), each
 * version decoded and checked against the participant registry (participants.ts: only records the aggregator
 * signed count, DESIGN.md invariant 6). The aggregator's recovery, `fedstream model export` and `fedstream status`
 * read versions through here, so they agree on what a version is.
 */
import type { Logger } from 'pino';
import type { ModelVersionRecord, RecordTypes, RoundControlRecord } from '../codec/index.ts';
import type { Manifest } from '../config/index.ts';
import type { Transport, TransportMessage } from '../transport/index.ts';
import { isControlBehind } from './control-order.ts';
import { readToEnd } from './log.ts';
import { verifyRecord, type ParticipantRegistry } from './participants.ts';
import { PayloadReader, decode, type Payload } from './wire.ts';

/** A record of the models topic that is not the aggregator's (unsigned, forged, another key's): not acted on. */
export interface RefusedVersion {
  payload: Payload;
  message: TransportMessage;
  version: ModelVersionRecord;
  /** The verdict's code (`unsigned`, `bad-signature`, ...) and a sentence for the audit trail. */
  code: string;
  reason: string;
}

export interface ReadVersionsOptions {
  logger: Logger;
  registry: ParticipantRegistry;
  /** Each verified version of this pipeline, in log order (versions increase along the log). */
  onVersion: (v: ModelVersionRecord, payload: Payload) => void;
  /** Each refused one (default: logged and skipped). */
  onRefused?: (r: RefusedVersion) => void;
}

/**
 * Reads `topic` (a pipeline's models topic) from the beginning to the end it had when called, handing each verified
 * version of the manifest's tenant and pipeline to `onVersion`. Unreadable chunks and records are logged and
 * skipped; versions of another pipeline (a shared topic) are skipped. The caller keeps what it needs (a version's
 * weights may be megabytes: keep only the ones asked for).
 */
export async function readModelVersions(t: Transport, m: Manifest, topic: string, o: ReadVersionsOptions): Promise<void> {
  await readSigned(t, m, topic, 'ModelVersion', o.logger, o.registry, {
    describe: (v) => `model version ${v.version}`,
    onRefused: (v, r) => (o.onRefused ? o.onRefused({ payload: r.payload, message: r.message, version: v, code: r.code, reason: r.reason }) : logRefused(o.logger, topic, r)),
    onVerified: (v, p) => o.onVersion(v, p),
  });
}

/** A control record that is not the aggregator's, or replays an older one: not acted on. */
export interface RefusedControl {
  payload: Payload;
  message: TransportMessage;
  code: string;
  reason: string;
}

/** The last control record of a pipeline, and how many EXTENDs its round had. */
export interface ControlState {
  control?: RoundControlRecord;
  extensions: number;
}

/**
 * Reads `topic` (a pipeline's control topic) to its end and returns its last verified control record, with the
 * number of extensions of that record's round. Records the aggregator did not sign, and records behind the last one
 * (a replay, control-order.ts), go to `onRefused` (default: logged).
 */
export async function readLastControl(t: Transport, m: Manifest, topic: string, o: Omit<ReadVersionsOptions, 'onVersion' | 'onRefused'> & { onRefused?: (r: RefusedControl) => void }): Promise<ControlState> {
  let control: RoundControlRecord | undefined;
  let extensions = 0;
  const refuse = (r: RefusedControl): void => (o.onRefused ? o.onRefused(r) : logRefused(o.logger, topic, r));
  await readSigned(t, m, topic, 'RoundControl', o.logger, o.registry, {
    describe: (c) => `${c.kind} of round ${c.round}`,
    onRefused: (_c, r) => refuse(r),
    onVerified: (c, p, msg) => {
      if (isControlBehind(control, c)) {
        refuse({ payload: p, message: msg, code: 'replayed', reason: `${c.kind} of round ${c.round} replayed after ${control!.kind} of round ${control!.round}` });
        return;
      }
      if (!control || c.round !== control.round) extensions = 0;
      if (c.kind === 'EXTEND') extensions = Math.max(extensions + 1, Number(c.config.extension ?? 0) || 0);
      control = c;
    },
  });
  return { control, extensions };
}

/** A refused record of either kind, as `readSigned` hands it on. */
interface Refusal {
  payload: Payload;
  message: TransportMessage;
  code: string;
  reason: string;
}

/** What `readSigned` does with each record of its pipeline: the caller's part of the loop. */
interface SignedHandlers<K extends 'ModelVersion' | 'RoundControl'> {
  /** Names the record at the head of a refusal's reason ("model version 3", "OPEN of round 2"). */
  describe: (r: RecordTypes[K]) => string;
  onRefused: (r: RecordTypes[K], refusal: Refusal) => void;
  onVerified: (r: RecordTypes[K], payload: Payload, message: TransportMessage) => void;
}

/** The default for a refused record: a warning naming its code and source. */
function logRefused(logger: Logger, topic: string, r: Refusal): void {
  logger.warn({ code: r.code, source: `${r.payload.topic}/${r.payload.partition}/${r.payload.firstOffset}` }, `refused a record of ${topic}: ${r.reason}`);
}

/**
 * The read-verify loop both readers share: reads `topic` to the end it had when called, reassembling chunked
 * payloads, decoding each as `kind`, skipping another pipeline's records, and verifying the rest against `registry`
 * (the aggregator's signature, DESIGN.md invariant 6). Unreadable chunks and records are logged and skipped; a
 * handler that throws is logged as an unreadable record, like a decoding error.
 */
async function readSigned<K extends 'ModelVersion' | 'RoundControl'>(
  t: Transport,
  m: Manifest,
  topic: string,
  kind: K,
  logger: Logger,
  registry: ParticipantRegistry,
  h: SignedHandlers<K>,
): Promise<void> {
  const reader = new PayloadReader(m.limits);
  await readToEnd(t, topic, (msg) => {
    // Chunked like any payload when large: reassembled first.
    const got = reader.accept(msg);
    for (const f of got.failures) logger.warn({ event: 'chunk.unreadable', topic, err: f.error, offset: msg.offset }, `unreadable chunk in ${topic}; ignored`);
    if (!got.payload) return;
    try {
      const p = got.payload;
      const r = decode(kind, p.bytes);
      if (r.tenant !== m.tenant || r.pipeline !== m.name) return;
      const verdict = verifyRecord(registry, kind, r, p.bytes, p.headers);
      if (!verdict.ok) {
        h.onRefused(r, { payload: p, message: msg, code: verdict.code, reason: `${h.describe(r)}: ${verdict.reason}` });
        return;
      }
      h.onVerified(r, p, msg);
    } catch (err) {
      // `event` and `topic` name the line for programs (the adversarial suite's verdicts); the message is for people.
      logger.warn({ event: 'record.unreadable', topic, err, offset: msg.offset }, `unreadable message in ${topic}; ignored`);
    }
  });
}
