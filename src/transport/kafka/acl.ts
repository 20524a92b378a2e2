/**
 * Kafka ACLs through the admin API (kafkajs createAcls, describeAcls, deleteAcls): what `fedstream access` applies.
 * Bindings are planned elsewhere (protocol/access.ts); this file only speaks Kafka's vocabulary, for the transport's
 * admin client (admin.ts). Every call needs a principal with ALTER and DESCRIBE on the cluster (the broker's super
 * user, or an ACL administrator).
 */
import kafkajs, { type Admin } from 'kafkajs';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

/** One ALLOW binding in FedStream's vocabulary (the same shape as protocol/access.ts `AclBinding`). */
export interface KafkaAcl {
  principal: string;
  resource: 'topic' | 'group' | 'transactional-id' | 'cluster';
  name: string;
  pattern: 'literal' | 'prefixed';
  operation: 'read' | 'write' | 'describe' | 'create' | 'describe-configs';
}

const RESOURCE = {
  topic: AclResourceTypes.TOPIC,
  group: AclResourceTypes.GROUP,
  'transactional-id': AclResourceTypes.TRANSACTIONAL_ID,
  cluster: AclResourceTypes.CLUSTER,
} as const;
const OPERATION = {
  read: AclOperationTypes.READ,
  write: AclOperationTypes.WRITE,
  describe: AclOperationTypes.DESCRIBE,
  create: AclOperationTypes.CREATE,
  'describe-configs': AclOperationTypes.DESCRIBE_CONFIGS,
} as const;
const PATTERN = { literal: ResourcePatternTypes.LITERAL, prefixed: ResourcePatternTypes.PREFIXED } as const;

const invert = <K extends string, V extends number>(o: Record<K, V>): Map<number, K> => new Map(Object.entries(o).map(([k, v]) => [v as number, k as K]));
const RESOURCE_NAME = invert(RESOURCE);
const OPERATION_NAME = invert(OPERATION);
const PATTERN_NAME = invert(PATTERN);

function toKafka(a: KafkaAcl) {
  return {
    resourceType: RESOURCE[a.resource],
    resourceName: a.name,
    resourcePatternType: PATTERN[a.pattern],
    principal: a.principal,
    host: '*',
    operation: OPERATION[a.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

/** Creates the bindings. Idempotent: Kafka keeps one copy of a binding however often it is created. */
export async function createAcls(admin: Admin, acls: readonly KafkaAcl[]): Promise<void> {
  if (acls.length === 0) return;
  await admin.createAcls({ acl: acls.map(toKafka) });
}

/**
 * Every ALLOW binding on resources whose names start with `namePrefix` (a pipeline's `<tenant>.<pipeline>.`, or the
 * pipeline's exact resource names), optionally of one principal, sorted for stable output.
 */
export async function describeAcls(admin: Admin, namePrefix: string, principal?: string): Promise<KafkaAcl[]> {
  const res = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
    ...(principal ? { principal } : {}),
  });
  const out: KafkaAcl[] = [];
  for (const r of res.resources) {
    const resource = RESOURCE_NAME.get(r.resourceType);
    const pattern = PATTERN_NAME.get(r.resourcePatternType);
    if (!resource || !pattern || !r.resourceName.startsWith(namePrefix)) continue;
    for (const acl of r.acls) {
      const operation = OPERATION_NAME.get(acl.operation);
      if (!operation || acl.permissionType !== AclPermissionTypes.ALLOW) continue;
      out.push({ principal: acl.principal, resource, name: r.resourceName, pattern, operation });
    }
  }
  return out.sort((a, b) => `${a.principal} ${a.resource} ${a.name} ${a.operation}`.localeCompare(`${b.principal} ${b.resource} ${b.name} ${b.operation}`));
}

/** Deletes exactly these bindings (and nothing else the principal holds). Returns how many the broker removed. */
export async function deleteAcls(admin: Admin, acls: readonly KafkaAcl[]): Promise<number> {
  if (acls.length === 0) return 0;
  const res = await admin.deleteAcls({ filters: acls.map(toKafka) });
  return res.filterResponses.reduce((n, f) => n + f.matchingAcls.length, 0);
}

/** ACL administration on one cluster (createKafkaAclAdmin in transport.ts). */
export interface KafkaAclAdmin {
  create(acls: readonly KafkaAcl[]): Promise<void>;
  describe(namePrefix: string, principal?: string): Promise<KafkaAcl[]>;
  delete(acls: readonly KafkaAcl[]): Promise<number>;
  close(): Promise<void>;
}
