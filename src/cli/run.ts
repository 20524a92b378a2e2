import { FedStreamError, isFedStreamError } from '../common/errors.ts';
import { rootLogger } from '../common/logger.ts';

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
export function exitCodeFor(err: unknown): number {
  if (isFedStreamError(err) && (err.code === 'CONFIG_INVALID' || err.code === 'CONFIG_NOT_FOUND')) return 2;
  return 1;
}

/** Runs a command body; a FedStreamError becomes one readable line on stderr plus a structured log entry. */
export async function runCommand(body: () => Promise<number | void>): Promise<void> {
  try {
    const code = await body();
    process.exitCode = code ?? 0;
  } catch (err) {
    const e = isFedStreamError(err) ? err : new FedStreamError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
    // Bad input is the user's to fix: one plain line is enough, the structure goes to debug.
    if (exitCodeFor(e) === 2) rootLogger().debug({ err: e }, e.message);
    else rootLogger().error({ err: e }, e.message);
    process.stderr.write(`fedstream: error [${e.code}]: ${e.message}\n`);
    process.exitCode = exitCodeFor(e);
  }
}
