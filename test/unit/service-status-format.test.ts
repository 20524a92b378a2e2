/** `fedstream status` for people: the lines a running and a finished pipeline print (src/service/status.ts). */
import { describe, expect, it } from 'vitest';
import { formatStatus, type PipelineStatus } from '../../src/service/status.ts';

const base: PipelineStatus = {
  pipeline: 'demo.mnist', state: 'running', readAt: '2026-11-30T20:00:00.000Z',
  round: { number: 3, kind: 'START', baseVersion: 2, deadline: '2026-11-30T20:01:00.000Z', deadlineInMs: 60_000, extensions: 0, targetUpdates: 3, minUpdates: 2, received: 2, receivedFrom: ['node-1', 'node-2'], selectedNodes: [] },
  nodes: { windowMs: 15_000, alive: [{ nodeId: 'node-1', lastHeartbeat: '2026-11-30T19:59:58.000Z', ageMs: 2_000 }], missing: ['node-2', 'node-10'], expected: ['node-1', 'node-2', 'node-10'] },
  lastVersion: { version: 2, round: 2, strategy: 'fedavg', createdAt: '2026-11-30T19:59:00.000Z', evalAccuracy: 0.61734, contributors: 3 },
};

describe('formatStatus', () => {
  it('a running round: received of target and quorum, the deadline, who is alive and who is missing', () => {
    const text = formatStatus(base);
    expect(text).toContain('round 3 (START, from version 2): 2 of 3 updates received, quorum 2; deadline 2026-11-30T20:01:00.000Z (in 60 s)');
    expect(text).toContain('nodes alive (heartbeat within 15 s): 1 - node-1 2s');
    expect(text).toContain('missing: node-2, node-10');
    expect(text).toContain('last version 2 (round 2, fedavg, 3 updates, 2026-11-30T19:59:00.000Z): eval accuracy 0.6173');
  });

  it('a finished pipeline lists nobody as missing: its nodes stopped with it (the README walkthrough read it as a failure)', () => {
    const text = formatStatus({ ...base, state: 'finished', nodes: { ...base.nodes, alive: [], missing: [] } });
    expect(text).toContain('pipeline demo.mnist: finished');
    expect(text).not.toContain('missing:');
    expect(text).toContain('no round open: the pipeline finished');
  });
});
