/**
 * The adversarial suite's "honest updates rejected" (test/adversarial/verdicts.ts): keyed on the attacker's own
 * acknowledged coordinates and on the aggregator's acceptances, since a replayed record, or a node's own resend of its
 * update, is byte for byte the original.
 */
import { describe, expect, it } from 'vitest';
import type { AuditEventRecord } from '../../src/codec/index.ts';
import { coord, honestRejections } from '../adversarial/verdicts.ts';

const U = 'p.updates';
const at = (offset: number) => coord(U, 0, offset);
const accepted = (id: string, offset: number) => [id, { action: 'UPDATE_ACCEPTED', updateId: id, details: { partition: '0', offset: String(offset) } } as unknown as AuditEventRecord] as const;

describe('honest updates the aggregator refused', () => {
  it('a record accepted, then read again after an outage and refused as a duplicate, is no harm (seen beside stress-ng)', () => {
    const ev = { acceptedById: new Map([accepted('r', 501)]), auditRejected: new Map([[at(501), 'duplicate']]) };
    expect(honestRejections([{ updateId: 'r', at: at(501) }, { updateId: 'r', at: at(501) }], ev, new Set(), U)).toEqual([]);
  });

  it('a second copy of an update accepted from the node itself is no harm, whether the node or the attacker wrote it', () => {
    const ev = { acceptedById: new Map([accepted('a', 10)]), auditRejected: new Map([[at(11), 'duplicate'], [at(40), 'duplicate']]) };
    // offset 11: the node's own resend after a send that failed late; offset 40: the attacker's replay.
    const honest = [{ updateId: 'a', at: at(10) }, { updateId: 'a', at: at(11) }, { updateId: 'a', at: at(40) }];
    expect(honestRejections(honest, ev, new Set([at(40)]), U)).toEqual([]);
  });

  it('an honest update whose id was accepted only from the attacker\'s record (pre-empted) is reported', () => {
    const ev = { acceptedById: new Map([accepted('b', 5)]), auditRejected: new Map([[at(9), 'duplicate']]) };
    expect(honestRejections([{ updateId: 'b', at: at(9) }], ev, new Set([at(5)]), U)).toEqual([`${at(9)} (duplicate)`]);
  });

  it('an honest update refused and never accepted is reported; the attacker\'s own records never are', () => {
    const ev = { acceptedById: new Map(), auditRejected: new Map([[at(3), 'bad_signature'], [at(4), 'duplicate']]) };
    expect(honestRejections([{ updateId: 'c', at: at(3) }, { updateId: 'c', at: at(4) }], ev, new Set([at(4)]), U)).toEqual([`${at(3)} (bad_signature)`]);
  });
});
