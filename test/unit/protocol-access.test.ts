import { describe, expect, it } from 'vitest';
import { accessPlan, formatBinding, normalizePrincipal, ROLES, type AclBinding } from '../../src/protocol/access.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';

const a = { tenant: 'acme', name: 'mnist' };
const b = { tenant: 'acme-b', name: 'mnist' };

function matches(binding: AclBinding, resource: AclBinding['resource'], name: string): boolean {
  if (binding.resource !== resource) return false;
  return binding.pattern === 'literal' ? binding.name === name : name.startsWith(binding.name);
}

describe('the access plan', () => {
  it('lets a node write updates and telemetry and read control and models, nothing else on topics', () => {
    const plan = accessPlan(a, { role: 'node', principal: 'site-7', nodeId: 'node-7' });
    expect(plan.filter((x) => x.resource === 'topic').map(formatBinding)).toEqual([
      'ALLOW User:site-7 WRITE topic acme.mnist.updates',
      'ALLOW User:site-7 WRITE topic acme.mnist.telemetry',
      'ALLOW User:site-7 READ topic acme.mnist.control',
      'ALLOW User:site-7 READ topic acme.mnist.models',
    ]);
    const t = pipelineTopics(a);
    for (const kind of ['control', 'models', 'audit', 'dead-letter'] as const) {
      expect(plan.some((x) => matches(x, 'topic', t[kind]) && x.operation === 'write'), `node writes ${kind}`).toBe(false);
    }
    expect(plan.some((x) => x.resource === 'transactional-id' || x.resource === 'cluster' || x.operation === 'create')).toBe(false);
  });

  it('gives the aggregator its transactional id, its group and the writes of a round', () => {
    const plan = accessPlan(a, { role: 'aggregator', principal: 'User:agg' }).map(formatBinding);
    expect(plan).toContain('ALLOW User:agg WRITE transactional-id acme.mnist.aggregator');
    expect(plan).toContain('ALLOW User:agg READ group acme.mnist.aggregator');
    expect(plan).toContain('ALLOW User:agg READ topic acme.mnist.updates');
    for (const kind of ['models', 'control', 'audit', 'dead-letter']) expect(plan).toContain(`ALLOW User:agg WRITE topic acme.mnist.${kind}`);
    expect(plan).not.toContain('ALLOW User:agg WRITE topic acme.mnist.updates');
  });

  it('never matches a resource of another tenant, for any role', () => {
    const other = pipelineTopics(b);
    const otherResources: Array<[AclBinding['resource'], string]> = [
      ...Object.values(other).map((n) => ['topic', n] as [AclBinding['resource'], string]),
      ['group', 'acme-b.mnist.aggregator'], ['group', 'acme-b.mnist.sink'], ['group', 'acme-b.mnist.node.node-1.x'],
      ['group', 'acme-b.mnist.models.reader.x'], ['transactional-id', 'acme-b.mnist.aggregator'],
    ];
    for (const role of ROLES) {
      for (const binding of accessPlan(a, { role, principal: 'u', nodeId: 'node-1' })) {
        for (const [resource, name] of otherResources) expect(matches(binding, resource, name), `${formatBinding(binding)} matches ${name}`).toBe(false);
      }
    }
  });

  it('refuses wildcards and a node without a node id', () => {
    expect(() => normalizePrincipal('User:*')).toThrow(/no wildcard/);
    expect(() => accessPlan(a, { role: 'node', principal: 'x' })).toThrow(/node id/);
  });
});
