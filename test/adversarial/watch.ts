/**
 * What the attacker reads while the pipeline runs (one consumer on control, models and updates, from the start):
 * the rounds and versions the aggregator signed, and the honest nodes' updates. Only records that verify against the
 * pipeline's registry count as the aggregator's, exactly as a node would read them, so the attacker's own forgeries
 * never steer it.
 */
import { randomUUID } from 'node:crypto';
import { isChunk, type ModelVersionRecord, type RoundControlRecord } from '../../src/codec/index.ts';
import { decode, verifyRecord, type ParticipantRegistry, type PipelineTopics } from '../../src/protocol/index.ts';
import type { Consumer, Transport } from '../../src/transport/index.ts';
import { weightsOf, type RoundView, type SeenUpdate } from './kit.ts';

export class Watcher {
  readonly controls: RoundControlRecord[] = [];
  readonly versions = new Map<number, ModelVersionRecord>();
  readonly honest: SeenUpdate[] = [];
  private consumer: Consumer | undefined;

  constructor(private readonly t: Transport, private readonly topics: PipelineTopics, private readonly registry: ParticipantRegistry, private readonly honestIds: readonly string[]) {}

  async start(): Promise<void> {
    const c = this.t.consumer({ groupId: `adversary.${randomUUID()}`, readCommitted: true, fromBeginning: true });
    this.consumer = c;
    await c.connect();
    await c.subscribe([this.topics.control, this.topics.models, this.topics.updates]);
    await c.run({
      eachBatch: async (batch, ctx) => {
        for (const msg of batch.messages) {
          ctx.resolveOffset(msg.offset);
          if (!msg.value || isChunk(msg.headers)) continue;
          try {
            if (msg.topic === this.topics.control) {
              const v = decode('RoundControl', msg.value);
              if (verifyRecord(this.registry, 'RoundControl', v, msg.value, msg.headers).ok) this.controls.push(v);
            } else if (msg.topic === this.topics.models) {
              const v = decode('ModelVersion', msg.value);
              if (verifyRecord(this.registry, 'ModelVersion', v, msg.value, msg.headers).ok) this.versions.set(Number(v.version), v);
            } else {
              const u = decode('ModelUpdate', msg.value);
              if (this.honestIds.includes(u.nodeId) && verifyRecord(this.registry, 'ModelUpdate', u, msg.value, msg.headers).ok) this.honest.push({ update: u, message: msg });
            }
          } catch {
            // The attacker's own junk, read back: not its concern.
          }
        }
      },
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect().catch(() => undefined);
  }

  /** The round `round` once its START and base version are both read. */
  async round(round: number, timeoutMs: number, alive: () => void): Promise<RoundView> {
    return this.until(`round ${round} to start`, timeoutMs, alive, () => {
      const control = this.controls.find((c) => c.kind === 'START' && Number(c.round) === round);
      const base = control && this.versions.get(Number(control.baseVersion));
      return control && base ? { control, round, baseVersion: Number(control.baseVersion), base, weights: weightsOf(base) } : undefined;
    });
  }

  /** Resolves once `n` honest updates of `round` were read. */
  async honestUpdates(round: number, n: number, timeoutMs: number, alive: () => void): Promise<void> {
    await this.until(`${n} honest updates of round ${round}`, timeoutMs, alive, () => (this.honest.filter((h) => Number(h.update.round) === round).length >= n ? true : undefined));
  }

  private async until<T>(what: string, timeoutMs: number, alive: () => void, probe: () => T | undefined): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = probe();
      if (got !== undefined) return got;
      alive();
      if (Date.now() > deadline) throw new Error(`the attacker waited ${timeoutMs} ms for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
