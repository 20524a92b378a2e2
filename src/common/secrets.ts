import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from './errors.ts';

/** Where a secret is: a file holding it, or an environment variable holding it (exactly one). */
export interface SecretRef {
  file?: string;
  env?: string;
}

/**
 * Reads a secret from the file or environment variable it names. The error names the file or variable, never a
 * value. Throws ConfigError.
 */
export function readSecret(ref: SecretRef, where: string, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.env !== undefined) {
    const v = env[ref.env];
    if (v === undefined || v === '') throw new ConfigError(where, `environment variable ${ref.env} is not set (it should hold the secret)`);
    return v;
  }
  const file = ref.file!;
  if (!existsSync(file)) throw new ConfigError(where, `secret file ${file} does not exist`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(where, `secret file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') throw new ConfigError(where, `secret file ${file} is empty`);
  return value;
}

