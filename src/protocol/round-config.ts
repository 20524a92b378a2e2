import { z } from 'zod';
import { ConfigError } from '../common/index.ts';

/**
 * The training configuration a round asks of its nodes, as a typed object. On the wire it travels as the
 * RoundControl record's `config` map of strings (schemas/avro/RoundControl.avsc); this file is the one place that
 * turns one into the other, so that the aggregator's strategies and the node's trainer agree on every key.
 *
 * Adding a key (as FedProx's `proximalMu` was): add it to `roundConfigSchema` with its unit and default, and teach
 * the node's trainer to honour it (node/trainer.ts, `trainOptionsOf`, does not compile until it is mapped). A node rejects a round whose config carries a key it does not know, with the key's
 * name, rather than silently training without it.
 */
export const roundConfigSchema = z.object({
  /** Local epochs E per round. */
  epochs: z.coerce.number().int().positive(),
  /** Local minibatch size B; 0 means the whole local data set in one batch (FedSGD). */
  batchSize: z.coerce.number().int().nonnegative(),
  /** Learning rate η of the local optimizer. */
  learningRate: z.coerce.number().positive(),
  /** Local optimizer. */
  optimizer: z.enum(['sgd', 'adam']),
  /**
   * FedProx's proximal coefficient μ ≥ 0 (Li et al., MLSys 2020, eq. 2): the node minimises
   * `F_k(w) + μ/2 · ‖w − w_t‖²`, w_t being the round's base weights. Unit: per squared weight (the term is added to
   * the mean cross-entropy of every batch). Absent (the default, and every strategy but `fedprox`): no term, and the
   * key is not on the wire, so nodes that predate it keep working with other strategies.
   */
  proximalMu: z.coerce.number().nonnegative().finite().optional(),
}).strict();

/** The training configuration of one round (see `roundConfigSchema`). */
export type RoundConfig = z.infer<typeof roundConfigSchema>;

/** The keys a round config may carry. */
export const ROUND_CONFIG_KEYS = Object.keys(roundConfigSchema.shape) as Array<keyof RoundConfig>;

/** The map of strings a RoundControl record carries for a round config. */
export function encodeRoundConfig(c: RoundConfig): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(c)) if (v !== undefined) out[k] = String(v);
  return out;
}

/**
 * A round config from a RoundControl record's `config` map; keys it lacks come from `defaults` (the node's
 * manifest). Throws ConfigError naming the key (`round 3 config.optimizer: ...`) when a value is bad or a key is
 * unknown to this node.
 */
export function decodeRoundConfig(map: Readonly<Record<string, string>>, defaults: RoundConfig, where = 'round config'): RoundConfig {
  const result = roundConfigSchema.safeParse({ ...encodeRoundConfig(defaults), ...map });
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    throw new ConfigError(`${where}.${keys[0]}`, `unknown training key${keys.length > 1 ? 's' : ''} ${keys.join(', ')}: this node honours ${ROUND_CONFIG_KEYS.join(', ')}`);
  }
  throw new ConfigError(`${where}.${issue.path.map(String).join('.')}`, `${issue.message} (got ${JSON.stringify(map[String(issue.path[0])])})`);
}
