import { ConfigError } from '../common/index.ts';
import { topicPrefix, type Manifest } from '../config/index.ts';
import { pipelineTopics, SINK_TOPIC_KINDS } from './topics.ts';

/**
 * Least privilege per role and tenant, as Kafka ACL bindings (docs/security.md). The plan is pure: which principal
 * may do what to which resource of one pipeline. `fedstream access` applies it through the Kafka admin API.
 *
 * Every resource a pipeline uses is named under `<tenant>.<pipeline>.`: its six topics, its consumer groups
 * (`.aggregator`, `.sink`, `.node.<nodeId>.…`, and the throwaway `.<kind>.reader.…` groups of read-to-end), and the
 * aggregator's transactional id (`.aggregator`). So no binding of one tenant ever matches a resource of another,
 * and with `allow.everyone.if.no.acl.found=false` a principal without bindings can do nothing.
 */

export const ROLES = ['node', 'aggregator', 'sink'] as const;
export type Role = (typeof ROLES)[number];

export type AclResource = 'topic' | 'group' | 'transactional-id' | 'cluster';
export type AclOperation = 'read' | 'write' | 'describe' | 'create' | 'describe-configs';
/** `literal`: the resource of exactly this name; `prefixed`: every resource whose name starts with it. */
export type AclPattern = 'literal' | 'prefixed';

/** One ACL binding: ALLOW `principal` to do `operation` on `resource` `name` (from any host). */
export interface AclBinding {
  principal: string;
  resource: AclResource;
  name: string;
  pattern: AclPattern;
  operation: AclOperation;
}

export interface AccessRequest {
  role: Role;
  /** Kafka principal, `User:<name>` (a bare name is taken as a user). */
  principal: string;
  /** For a node: its node id, which names its consumer groups. Required for the node role. */
  nodeId?: string;
}

/** `User:<name>` from a bare name or a principal; refuses wildcards, which would grant to everyone. */
export function normalizePrincipal(p: string): string {
  const principal = p.includes(':') ? p : `User:${p}`;
  if (!/^User:[^*\s][^\s]*$/.test(principal)) throw new ConfigError('--principal', `expected User:<name> or a user name (no wildcard), got "${p}"`);
  return principal;
}

/**
 * The bindings that let `principal` play `role` in pipeline `m` and nothing else:
 * - node: write `updates` and `telemetry`; read `control` and `models`; its own consumer groups.
 * - aggregator: read `updates` (group `.aggregator`); read and write `models` and `control`; write `audit` and
 *   `dead-letter`; its transactional id; create (and describe) the pipeline's topics (it creates them on start).
 * - sink: read the topics it ingests (telemetry, audit, control, updates, models); write `dead-letter`; its groups.
 * Throws ConfigError for a node without a node id.
 */
export function accessPlan(m: Pick<Manifest, 'tenant' | 'name'>, req: AccessRequest): AclBinding[] {
  const principal = normalizePrincipal(req.principal);
  const t = pipelineTopics(m);
  const prefix = topicPrefix(m);
  const out: AclBinding[] = [];
  const topic = (name: string, ...ops: AclOperation[]) => { for (const operation of ops) out.push({ principal, resource: 'topic', name, pattern: 'literal', operation }); };
  const group = (name: string, pattern: AclPattern) => out.push({ principal, resource: 'group', name, pattern, operation: 'read' });
  const readers = (...kinds: Array<keyof typeof t>) => { for (const k of kinds) group(`${t[k]}.reader.`, 'prefixed'); };
  switch (req.role) {
    case 'node': {
      if (!req.nodeId) throw new ConfigError('--node-id', 'a node is granted access under its node id (its consumer groups carry it)');
      topic(t.updates, 'write');
      topic(t.telemetry, 'write');
      topic(t.control, 'read');
      topic(t.models, 'read');
      group(`${prefix}.node.${req.nodeId}.`, 'prefixed');
      readers('control', 'models');
      break;
    }
    case 'aggregator': {
      topic(t.updates, 'read');
      topic(t.models, 'read', 'write');
      topic(t.control, 'read', 'write');
      topic(t.audit, 'write');
      topic(t['dead-letter'], 'write');
      group(`${prefix}.aggregator`, 'literal');
      readers('models', 'control');
      for (const operation of ['write', 'describe'] as const) out.push({ principal, resource: 'transactional-id', name: `${prefix}.aggregator`, pattern: 'literal', operation });
      // Creating the pipeline's topics on start: the prefix ends with a dot, so it matches this pipeline's names only.
      // DESCRIBE with it: creating waits for the new partitions' leaders through a metadata request (names and
      // partitions only, never contents).
      for (const operation of ['create', 'describe'] as const) out.push({ principal, resource: 'topic', name: `${prefix}.`, pattern: 'prefixed', operation });
      break;
    }
    case 'sink': {
      for (const k of SINK_TOPIC_KINDS) topic(t[k], 'read');
      topic(t['dead-letter'], 'write');
      group(`${prefix}.sink`, 'prefixed');
      group(`${prefix}.report`, 'prefixed');
      readers(...SINK_TOPIC_KINDS);
      break;
    }
  }
  return out;
}

/** One line per binding, as `fedstream access grant --dry-run` prints it. */
export function formatBinding(b: AclBinding): string {
  return `ALLOW ${b.principal} ${b.operation.toUpperCase()} ${b.resource} ${b.pattern === 'prefixed' ? `${b.name}*` : b.name}`;
}
