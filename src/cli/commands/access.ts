/**
 * `fedstream access grant|list|revoke`: a pipeline's Kafka ACLs by role (docs/security.md). The bindings come from
 * protocol/access.ts; they are applied through the Kafka admin API by a principal allowed to manage ACLs (the
 * broker's super user), whose credentials come from the usual --kafka-* flags, environment or manifest.
 */
import type { Command } from 'commander';
import { ConfigError } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import { accessPlan, formatBinding, normalizePrincipal, ROLES, type Role } from '../../protocol/index.ts';
import { runCommand } from '../../service/index.ts';
import { manifestFrom, withPipelineOptions, type PipelineFlags } from '../options.ts';

type AccessFlags = PipelineFlags & { role?: string; principal?: string; nodeId?: string; dryRun?: boolean };

async function aclAdmin(m: Manifest) {
  if (!m.kafka.brokers) throw new ConfigError('--kafka', 'access is managed on a Kafka cluster: give --kafka host:port (or FEDSTREAM_KAFKA, or kafka.brokers)');
  const { createKafkaAclAdmin, resolveKafkaSecurity } = await import('../../transport/index.ts');
  const { rootLogger } = await import('../../common/index.ts');
  return createKafkaAclAdmin({
    brokers: m.kafka.brokers.split(',').map((b) => b.trim()).filter(Boolean),
    security: resolveKafkaSecurity(m.kafka.security),
    logger: rootLogger(),
  });
}

const prefixOf = (m: Manifest) => `${m.tenant}.${m.name}.`;

export function registerAccessCommands(program: Command): void {
  const access = program.command('access').description("a pipeline's Kafka ACLs by role: who may read and write which topics, groups and transactional ids");

  withPipelineOptions(access.command('grant').description('create the ACLs of one principal in one role (idempotent)'))
    .requiredOption('--role <role>', `the principal's role: ${ROLES.join(', ')}`)
    .requiredOption('--principal <principal>', 'the Kafka principal, User:<name> (or a user name)')
    .option('--node-id <id>', 'for a node: its node id (its consumer groups carry it)')
    .option('--dry-run', 'print the ACLs instead of creating them')
    .action((flags: AccessFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      if (!ROLES.includes(flags.role as Role)) throw new ConfigError('--role', `expected one of ${ROLES.join(', ')}, got "${flags.role}"`);
      const plan = accessPlan(m, { role: flags.role as Role, principal: flags.principal!, ...(flags.nodeId ? { nodeId: flags.nodeId } : {}) });
      if (flags.dryRun) {
        for (const b of plan) process.stdout.write(`${formatBinding(b)}\n`);
        return;
      }
      const admin = await aclAdmin(m);
      try {
        await admin.create(plan);
      } finally {
        await admin.close();
      }
      process.stdout.write(`granted ${flags.role} to ${normalizePrincipal(flags.principal!)} on ${prefixOf(m)}*: ${plan.length} ACLs\n`);
    }));

  withPipelineOptions(access.command('list').description("list the ACLs on the pipeline's resources"))
    .option('--principal <principal>', 'only this principal')
    .action((flags: AccessFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      const admin = await aclAdmin(m);
      try {
        const acls = await admin.describe(prefixOf(m), flags.principal ? normalizePrincipal(flags.principal) : undefined);
        for (const a of acls) process.stdout.write(`${formatBinding(a)}\n`);
        if (acls.length === 0) process.stdout.write(`no ACLs on ${prefixOf(m)}*\n`);
      } finally {
        await admin.close();
      }
    }));

  withPipelineOptions(access.command('revoke').description("remove every ACL a principal holds on the pipeline's resources"))
    .requiredOption('--principal <principal>', 'the Kafka principal, User:<name> (or a user name)')
    .option('--dry-run', 'print the ACLs instead of removing them')
    .action((flags: AccessFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      const principal = normalizePrincipal(flags.principal!);
      const admin = await aclAdmin(m);
      try {
        const held = await admin.describe(prefixOf(m), principal);
        if (flags.dryRun) {
          for (const a of held) process.stdout.write(`${formatBinding(a)}\n`);
          return;
        }
        const removed = await admin.delete(held);
        process.stdout.write(`revoked ${principal} on ${prefixOf(m)}*: ${removed} ACLs removed\n`);
      } finally {
        await admin.close();
      }
    }));
}
