import { describe, expect, it } from 'vitest';
import { CATCH_UP_POLL_MS, decide, nextStep, roundPolicy, roundTargets, stateOf, type OpenRoundState, type RoundDecision, type RoundEvent, type RoundPolicy } from '../../src/aggregator/rounds.ts';
import { parseManifest } from '../../src/config/manifest.ts';

const policy: RoundPolicy = { count: 3, targetUpdates: 4, minUpdates: 2, timeoutMs: 1_000, maxExtensions: 2, targetAliveNodes: false };
const open = (over: Partial<OpenRoundState> = {}): OpenRoundState => ({
  round: 2, accepted: 0, minUpdates: 2, targetUpdates: 4, extensions: 0, deadline: 10_000, catchingUp: false, ...over,
});
const rejection = { updateId: 'u', nodeId: 'n', round: 7, code: 'future_round', reason: 'round 7 is not open' };

describe('the round policy (aggregator/rounds.ts): decisions on state', () => {
  const table: Array<{ when: string; state: Partial<OpenRoundState>; event: RoundEvent; then: RoundDecision }> = [
    { when: 'an update passes validation', state: {}, event: { type: 'validated' }, then: { type: 'accept' } },
    { when: 'an update fails validation', state: {}, event: { type: 'validated', rejection }, then: { type: 'reject', rejection } },
    { when: 'an accepted update is below the target', state: { accepted: 3 }, event: { type: 'accepted' }, then: { type: 'wait' } },
    { when: 'the target is reached', state: { accepted: 4 }, event: { type: 'accepted' }, then: { type: 'close', why: 'target reached' } },
    { when: 'the timer fires before the deadline', state: { accepted: 3 }, event: { type: 'deadline', now: 9_999 }, then: { type: 'wait', until: 10_000 } },
    { when: 'the deadline passes with at least minUpdates', state: { accepted: 2 }, event: { type: 'deadline', now: 10_000 }, then: { type: 'close', why: 'deadline with 2 of 4 updates' } },
    { when: 'the deadline passes with more than minUpdates', state: { accepted: 3 }, event: { type: 'deadline', now: 10_500 }, then: { type: 'close', why: 'deadline with 3 of 4 updates' } },
    {
      when: 'the deadline passes below quorum, first time', state: { accepted: 1 }, event: { type: 'deadline', now: 10_010 },
      then: { type: 'extend', extensions: 1, deadline: 11_010, why: '1 of 2 required updates at the deadline; extension 1 of 2' },
    },
    {
      when: 'the deadline passes below quorum, after one extension', state: { accepted: 0, extensions: 1 }, event: { type: 'deadline', now: 10_000 },
      then: { type: 'extend', extensions: 2, deadline: 11_000, why: '0 of 2 required updates at the deadline; extension 2 of 2' },
    },
    {
      when: 'the deadline passes below quorum after maxExtensions', state: { accepted: 1, extensions: 2 }, event: { type: 'deadline', now: 10_000 },
      then: { type: 'abandon', why: '1 of 2 required updates after 2 extensions' },
    },
    {
      when: 'the deadline passes while the log is still re-read after a restart', state: { accepted: 0, catchingUp: true }, event: { type: 'deadline', now: 10_000 },
      then: { type: 'wait', until: 10_000 + CATCH_UP_POLL_MS },
    },
    {
      when: 'the deadline passes while catching up, even with a quorum', state: { accepted: 3, catchingUp: true }, event: { type: 'deadline', now: 12_000 },
      then: { type: 'wait', until: 12_000 + CATCH_UP_POLL_MS },
    },
    { when: 'the target is reached while catching up', state: { accepted: 4, catchingUp: true }, event: { type: 'accepted' }, then: { type: 'close', why: 'target reached' } },
    { when: 'the round has its own (recovered) target', state: { accepted: 2, targetUpdates: 2 }, event: { type: 'accepted' }, then: { type: 'close', why: 'target reached' } },
  ];
  it.each(table)('$when → $then.type', ({ state, event, then }) => {
    expect(decide(policy, open(state), event)).toEqual(then);
  });

  it('with maxExtensions 0, a round below quorum is abandoned at its first deadline', () => {
    expect(decide({ ...policy, maxExtensions: 0 }, open({ accepted: 1 }), { type: 'deadline', now: 10_000 })).toEqual({ type: 'abandon', why: '1 of 2 required updates after 0 extensions' });
  });

  it('extends up to maxExtensions, then abandons: the whole sequence', () => {
    let s = open({ accepted: 1 });
    const seen: string[] = [];
    for (let now = s.deadline; ; now = s.deadline) {
      const d = decide(policy, s, { type: 'deadline', now });
      seen.push(d.type);
      if (d.type !== 'extend') break;
      s = { ...s, extensions: d.extensions, deadline: d.deadline };
    }
    expect(seen).toEqual(['extend', 'extend', 'abandon']);
  });

  it('names the state of an open round', () => {
    expect(stateOf(open())).toBe('OPEN');
    expect(stateOf(open({ catchingUp: true }))).toBe('RECOVERING');
  });
});

describe('what follows a decided round', () => {
  it.each([
    { decided: 0, now: 5, then: { type: 'start', round: 1, deadline: 1_005 } },
    { decided: 2, now: 5, then: { type: 'start', round: 3, deadline: 1_005 } },
    { decided: 3, now: 5, then: { type: 'finish' } },
  ])('after round $decided of 3 → $then.type', ({ decided, now, then }) => {
    expect(nextStep(policy, decided, now)).toEqual(then);
  });

  it('reads the round protocol from the manifest, minUpdates capped by targetUpdates', () => {
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
      model: { inputShape: [4], seed: 1, layers: [{ type: 'dense', units: 2, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2 },
      rounds: { count: 5, targetUpdates: 3, minUpdates: 2, timeoutMs: 250, maxExtensions: 1 },
    });
    expect(roundPolicy(m)).toEqual({ count: 5, targetUpdates: 3, minUpdates: 2, timeoutMs: 250, maxExtensions: 1, targetAliveNodes: false });
  });
});

describe('round targets sized to the alive nodes (rounds.targetAliveNodes)', () => {
  const alivePolicy: RoundPolicy = { ...policy, targetUpdates: 10, minUpdates: 3, targetAliveNodes: true };

  it('is min(targetUpdates, alive nodes), never below minUpdates', () => {
    expect(roundTargets(alivePolicy, 5)).toEqual({ targetUpdates: 5, minUpdates: 3 });
    expect(roundTargets(alivePolicy, 12)).toEqual({ targetUpdates: 10, minUpdates: 3 });
    expect(roundTargets(alivePolicy, 1)).toEqual({ targetUpdates: 3, minUpdates: 3 });
    expect(roundTargets(alivePolicy, 0)).toEqual({ targetUpdates: 3, minUpdates: 3 });
  });

  it('keeps the manifest\'s target when off, or when nothing counts the alive nodes', () => {
    expect(roundTargets({ ...alivePolicy, targetAliveNodes: false }, 5)).toEqual({ targetUpdates: 10, minUpdates: 3 });
    expect(roundTargets(alivePolicy, undefined)).toEqual({ targetUpdates: 10, minUpdates: 3 });
  });

  it('a round sized to 5 alive nodes closes at its 5th update instead of waiting for its deadline', () => {
    const t = roundTargets(alivePolicy, 5);
    const s = open({ minUpdates: t.minUpdates, targetUpdates: t.targetUpdates, accepted: 5 });
    expect(decide(alivePolicy, s, { type: 'accepted' })).toEqual({ type: 'close', why: 'target reached' });
    expect(decide(alivePolicy, open({ minUpdates: 3, targetUpdates: 10, accepted: 5 }), { type: 'accepted' })).toEqual({ type: 'wait' });
  });

  it('is read from the manifest (default off, 15 s window)', () => {
    const m = parseManifest({ apiVersion: 'fedstream/v1', tenant: 't', name: 'p', model: { inputShape: [1], layers: [{ type: 'dense', units: 1 }] }, data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 10, minUpdates: 3 } });
    expect(roundPolicy(m).targetAliveNodes).toBe(false);
    expect(m.rounds.aliveWindowMs).toBe(15_000);
    const on = parseManifest({ ...m, rounds: { ...m.rounds, targetAliveNodes: true } });
    expect(roundPolicy(on).targetAliveNodes).toBe(true);
  });
});
