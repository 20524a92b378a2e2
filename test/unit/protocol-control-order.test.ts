import { describe, expect, it } from 'vitest';
import { isControlBehind } from '../../src/protocol/index.ts';
import type { RoundControlRecord } from '../../src/codec/index.ts';

const c = (round: number, kind: RoundControlRecord['kind'], extension?: number): Pick<RoundControlRecord, 'round' | 'kind' | 'config'> =>
  ({ round, kind, config: extension === undefined ? {} : { extension: String(extension) } });

describe('round controls only move forward (replays of genuine records are behind)', () => {
  it.each([
    ['nothing seen yet', undefined, c(1, 'START'), false],
    ['the same record again', c(2, 'START'), c(2, 'START'), false],
    ['START of the next round', c(1, 'CLOSE'), c(2, 'START'), false],
    ['EXTEND after START', c(2, 'START'), c(2, 'EXTEND', 1), false],
    ['a later EXTEND', c(2, 'EXTEND', 1), c(2, 'EXTEND', 2), false],
    ['ABANDON after EXTEND', c(2, 'EXTEND', 2), c(2, 'ABANDON'), false],
    ['FINISH after CLOSE of the last round', c(3, 'CLOSE'), c(3, 'FINISH'), false],
    ['a continued pipeline: START R+1 after FINISH R', c(3, 'FINISH'), c(4, 'START'), false],
    ['START of a closed round', c(2, 'START'), c(1, 'START'), true],
    ['an old FINISH after the pipeline continued', c(4, 'START'), c(3, 'FINISH'), true],
    ['START again after CLOSE of the same round', c(2, 'CLOSE'), c(2, 'START'), true],
    ['an earlier EXTEND again', c(2, 'EXTEND', 2), c(2, 'EXTEND', 1), true],
    ['EXTEND after CLOSE', c(2, 'CLOSE'), c(2, 'EXTEND', 1), true],
  ] as const)('%s', (_name, current, next, behind) => {
    expect(isControlBehind(current, next)).toBe(behind);
  });
});
