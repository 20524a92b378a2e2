/**
 * Round controls only move forward. A signature says who wrote a record, not when: a genuine, aggregator-signed
 * control record copied back onto the control topic (a replay: a FINISH from before a pipeline continued, the START
 * of a round long closed, an EXTEND again) verifies like the original. Every reader that follows the control topic
 * (nodes, the aggregator's recovery, the sink's finish scan) therefore keeps the furthest record it accepted and
 * refuses one that would take it back.
 *
 * The order: by round; within a round START < EXTEND (by its `extension` number) < CLOSE = ABANDON < FINISH. The same
 * record again is not behind (idempotent); a continued pipeline's START R+1 after FINISH R moves forward.
 */
import type { RoundControlRecord } from '../codec/index.ts';

const PHASE: Record<RoundControlRecord['kind'], number> = { START: 0, EXTEND: 1, CLOSE: 2, ABANDON: 2, FINISH: 3 };

/** [round, phase, extension]: the position of a control record in the pipeline's life. */
export function controlPosition(c: Pick<RoundControlRecord, 'round' | 'kind' | 'config'>): [number, number, number] {
  const extension = c.kind === 'EXTEND' ? Number(c.config.extension ?? 0) || 0 : 0;
  return [Number(c.round), PHASE[c.kind], extension];
}

/** True when `next` lies before `current` in the order above: a replay to refuse, never to act on. */
export function isControlBehind(current: Pick<RoundControlRecord, 'round' | 'kind' | 'config'> | undefined, next: Pick<RoundControlRecord, 'round' | 'kind' | 'config'>): boolean {
  if (!current) return false;
  const a = controlPosition(current);
  const b = controlPosition(next);
  for (let i = 0; i < 3; i++) if (b[i]! !== a[i]!) return b[i]! < a[i]!;
  return false;
}
