/**
 * `fedstream keys generate|show`: a participant's Ed25519 key pair (docs/security.md, "Signatures"). The private
 * key goes to a file of mode 0600 and nowhere else (never to stdout or a log); the public key, its key id and the
 * manifest snippet that lists it are printed.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { ConfigError, FedStreamError } from '../../common/index.ts';
import { PARTICIPANT_ROLES, generateKeyPair, keyIdOf, publicKeyFromPem, type ParticipantRole } from '../../protocol/index.ts';
import { runCommand } from '../../service/index.ts';

interface GenerateFlags {
  role: string;
  id?: string;
  out: string;
  force?: boolean;
  validFrom?: string;
  validUntil?: string;
}

/** The `keys` manifest entry of a public key (what `participants.keys` lists). */
export function keyEntry(id: string, role: ParticipantRole, publicKeyPem: string, window: { validFrom?: string; validUntil?: string } = {}): Record<string, string> {
  return { id, role, publicKey: publicKeyPem, ...(window.validFrom ? { validFrom: window.validFrom } : {}), ...(window.validUntil ? { validUntil: window.validUntil } : {}) };
}

function isoOrThrow(v: string | undefined, flag: string): string | undefined {
  if (v === undefined) return undefined;
  if (Number.isNaN(Date.parse(v))) throw new ConfigError(flag, `expected an ISO 8601 time such as 2026-07-01T00:00:00Z, got "${v}"`);
  return new Date(v).toISOString();
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description("participants' Ed25519 signing keys: a node's or the aggregator's key pair, as PEM files");

  keys.command('generate')
    .description('generate a key pair: <out>/<id>.key (private, PKCS#8 PEM, mode 0600) and <out>/<id>.pub (public, SPKI PEM); prints the key id and the manifest snippet')
    .requiredOption('--role <role>', `the participant's role: ${PARTICIPANT_ROLES.join(' or ')}`)
    .option('--id <id>', 'the participant id: the node id (required for a node), or the aggregator\'s (default "aggregator")')
    .option('--out <dir>', 'directory for the two files (created if missing); a manifest\'s participants.keysDir can name it', 'keys')
    .option('--valid-from <time>', 'ISO 8601 start of the key\'s validity window (for a rotation)')
    .option('--valid-until <time>', 'ISO 8601 end of the key\'s validity window')
    .option('--force', 'overwrite existing files of the same id')
    .action((flags: GenerateFlags) => runCommand(async () => {
      if (!PARTICIPANT_ROLES.includes(flags.role as ParticipantRole)) throw new ConfigError('--role', `expected ${PARTICIPANT_ROLES.join(' or ')}, got "${flags.role}"`);
      const role = flags.role as ParticipantRole;
      const id = flags.id ?? (role === 'aggregator' ? 'aggregator' : undefined);
      if (!id) throw new ConfigError('--id', 'a node\'s key needs its node id (--id node-1)');
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(id)) throw new ConfigError('--id', `"${id}" is not usable as a file name: letters, digits, ".", "_" and "-"`);
      const validFrom = isoOrThrow(flags.validFrom, '--valid-from');
      const validUntil = isoOrThrow(flags.validUntil, '--valid-until');
      const dir = resolve(flags.out);
      const keyFile = join(dir, `${id}.key`);
      const pubFile = join(dir, `${id}.pub`);
      if (!flags.force && (existsSync(keyFile) || existsSync(pubFile))) {
        throw new FedStreamError('KEY_INVALID', `${existsSync(keyFile) ? keyFile : pubFile} exists; keep it, or pass --force to replace the key pair (a rotation: list the new public key beside the old one, with validity windows)`);
      }
      mkdirSync(dir, { recursive: true });
      const pair = generateKeyPair();
      // Created with mode 0600 (and chmod'ed in case the file existed): only its owner may read a private key.
      writeFileSync(keyFile, pair.privateKeyPem, { mode: 0o600 });
      chmodSync(keyFile, 0o600);
      writeFileSync(pubFile, pair.publicKeyPem, { mode: 0o644 });
      const snippet = stringify({ participants: { keys: [keyEntry(id, role, pair.publicKeyPem, { validFrom, validUntil })] } });
      process.stdout.write([
        `${role} ${id}: key id ${pair.keyId}`,
        `private key: ${keyFile} (mode 0600; give it to this participant only, as --key-file or FEDSTREAM_KEY_FILE)`,
        `public key:  ${pubFile}`,
        '',
        pair.publicKeyPem.trimEnd(),
        '',
        `manifest: list the key inline (below), or name the directory once: participants: { keysDir: ${flags.out} }`,
        '',
        snippet.trimEnd(),
        '',
      ].join('\n'));
    }));

  keys.command('show')
    .description('print the key id and manifest entry of a public key file')
    .argument('<file>', 'a public key PEM file (SPKI)')
    .requiredOption('--id <id>', 'the participant id')
    .requiredOption('--role <role>', `${PARTICIPANT_ROLES.join(' or ')}`)
    .action((file: string, flags: { id: string; role: string }) => runCommand(async () => {
      if (!PARTICIPANT_ROLES.includes(flags.role as ParticipantRole)) throw new ConfigError('--role', `expected ${PARTICIPANT_ROLES.join(' or ')}, got "${flags.role}"`);
      if (!existsSync(file)) throw new FedStreamError('KEY_INVALID', `public key file ${file} does not exist`);
      const pem = readFileSync(file, 'utf8');
      const key = publicKeyFromPem(pem, file);
      process.stdout.write(`key id ${keyIdOf(key)}\n\n${stringify({ participants: { keys: [keyEntry(flags.id, flags.role as ParticipantRole, pem)] } }).trimEnd()}\n`);
    }));
}
