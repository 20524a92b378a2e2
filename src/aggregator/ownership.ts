/**
 * One aggregator per pipeline. Kafka enforces it with two mechanisms of its own, and this file is what the aggregator
 * does with them (docs/protocol.md, "One aggregator per pipeline: fencing and takeover"):
 *
 * - The consumer group of the updates topic says who holds the pipeline now: a running aggregator is a member with a
 *   live session; a crashed one stays a member until its session timeout expires, then the group is empty. At start,
 *   `awaitNoLiveHolder` looks there before fencing anybody, and refuses (PIPELINE_HELD) unless told to take over.
 * - The transactional id says who may publish: a new aggregator's InitProducerId bumps the epoch and fences the old
 *   one. Kafka tells the old one only when it next talks to the transaction coordinator, so the aggregator asks
 *   (`Producer.checkFenced`) whenever the group coordinator announces a rebalance, which the newcomer's join causes.
 *   `fencedError` turns the answer into the error the aggregator stops with.
 */
import type { Logger } from 'pino';
import { FedStreamError, isFedStreamError, sleep } from '../common/index.ts';
import type { Admin, ConsumerGroupMember } from '../transport/index.ts';

/**
 * Session timeout of the aggregator's consumer (ms): how long the group waits for a member that stopped heartbeating
 * (a crashed aggregator) before giving its partitions to another, and so how long a restart may wait for it.
 */
export const AGGREGATOR_SESSION_TIMEOUT_MS = 10_000;
/**
 * How long past the session timeout a member may still be listed after its process died: the coordinator's expiry
 * check runs on the broker's timer, which a loaded broker runs late (its threads got no CPU for 8–35 s at a time
 * beside `stress-ng --cpu 2`, docs/reliability.md), and one describe round trip. A crashed holder usually goes at
 * the session timeout and the wait ends then; only a live one makes the new aggregator wait it all.
 */
const expiryGraceMs = (sessionTimeoutMs: number): number => 2 * sessionTimeoutMs + 3_000;
const POLL_MS = 500;

export interface HolderCheck {
  admin: Admin;
  /** The aggregator's consumer group (`<tenant>.<pipeline>.aggregator`). */
  groupId: string;
  /** `<tenant>.<pipeline>`, for messages. */
  pipeline: string;
  /** Start anyway, fencing the holder (`--take-over`). */
  takeOver: boolean;
  log: Logger;
  /** Session timeout of the group's members (ms); default AGGREGATOR_SESSION_TIMEOUT_MS. */
  sessionTimeoutMs?: number;
}

/** `client id X, host Y, member Z` for each member, `; `-separated. */
export function describeMembers(members: readonly ConsumerGroupMember[]): string {
  return members.map((m) => `client id ${m.clientId}, host ${m.clientHost.replace(/^\//, '')}, member ${m.memberId}`).join('; ');
}

/**
 * Returns when nobody holds the pipeline: its aggregator group has no member, at once or within the session timeout
 * plus a grace of two more and 3 s (a member that crashed expires then; a live one heartbeats and stays). With `takeOver`, returns at
 * once after logging who holds it. Throws PIPELINE_HELD when a member is still there after the wait, naming it;
 * errors of the admin client (TRANSPORT_*) pass through.
 */
export async function awaitNoLiveHolder(o: HolderCheck): Promise<void> {
  const sessionTimeoutMs = o.sessionTimeoutMs ?? AGGREGATOR_SESSION_TIMEOUT_MS;
  let group = await o.admin.describeGroup(o.groupId);
  if (group.members.length === 0) return;
  const who = describeMembers(group.members);
  if (o.takeOver) {
    o.log.warn({ holders: group.members, groupId: o.groupId }, `another aggregator (${who}) holds pipeline ${o.pipeline}; --take-over: taking over fences it`);
    return;
  }
  const waitMs = sessionTimeoutMs + expiryGraceMs(sessionTimeoutMs);
  o.log.warn(
    { holders: group.members, groupId: o.groupId, waitMs },
    `another aggregator (${who}) holds pipeline ${o.pipeline}; waiting up to ${waitMs} ms for its session to expire in case it crashed`,
  );
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    group = await o.admin.describeGroup(o.groupId);
    if (group.members.length === 0) {
      o.log.info({ groupId: o.groupId }, 'the previous aggregator\'s session expired (it had stopped without leaving); starting');
      return;
    }
  }
  throw new FedStreamError(
    'PIPELINE_HELD',
    `another aggregator (${describeMembers(group.members)}) holds pipeline ${o.pipeline}: it is a live member of consumer group ${o.groupId} ` +
      `(still there ${waitMs} ms later, so not a crashed one). Stop it first, or start this one with --take-over to fence it (it then exits with code 3)`,
    { details: { pipeline: o.pipeline, groupId: o.groupId, holders: group.members, state: group.state } },
  );
}

/** True for an error that says a newer producer with our transactional id fenced ours. */
export function isFenced(err: unknown): err is FedStreamError {
  return isFedStreamError(err) && err.code === 'TRANSPORT_FENCED';
}

/**
 * The error a fenced aggregator stops with: names the pipeline, the transactional id and the takeover, with the
 * transport's error as its cause (`err` itself when it already is that error). Undefined when `err` is not fencing.
 */
export function fencedError(err: unknown, o: { pipeline: string; transactionalId: string; groupId: string }): FedStreamError | undefined {
  if (!isFenced(err)) return undefined;
  if (err.details.pipeline === o.pipeline && err.details.transactionalId === o.transactionalId) return err;
  return new FedStreamError(
    'TRANSPORT_FENCED',
    `the aggregator of pipeline ${o.pipeline} was fenced: another aggregator instance took over transactional id ${o.transactionalId}; ` +
      `this one publishes nothing more, leaves consumer group ${o.groupId} and stops`,
    { cause: err, details: { ...err.details, pipeline: o.pipeline, transactionalId: o.transactionalId, groupId: o.groupId } },
  );
}
