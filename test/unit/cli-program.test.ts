import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/program.ts';

const CLI = path.resolve(import.meta.dirname, '../../src/cli');

/** Every command and the long flags it takes (as before the CLI moved into commands/, plus issue 11's security flags, issue 12's keys, issue 15's --metrics-port/--metrics-host and --log-format). */
const FLAGS: Record<string, string> = {
  validate: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --log-level --log-format',
  topics: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --log-level --log-format',
  health: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --log-level --log-format',
  aggregator: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --metrics-port --metrics-host --target-updates --min-updates --round-timeout-ms --target-alive-nodes --no-evaluate --take-over --key-file --log-level --log-format',
  node: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --metrics-port --metrics-host --node-id --data --backend --heartbeat-ms --key-file --log-level --log-format',
  status: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --json --watch --log-level --log-format',
  sink: '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --metrics-port --metrics-host --until-finished --batch-rows --batch-ms --progress-ms --serve-port --no-serve --log-level --log-format',
  report: '',
  'report compliance': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --version --model-version --out --format --log-level --log-format',
  'report training': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --out --format --log-level --log-format',
  model: '',
  'model export': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --version --model-version --out --format --log-level --log-format',
  kafka: '',
  'kafka start': '--secure --log-level --log-format',
  'kafka stop': '--log-level --log-format',
  'kafka restart': '--log-level --log-format',
  'kafka status': '--log-level --log-format',
  access: '',
  'access grant': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --role --principal --node-id --dry-run --log-level --log-format',
  'access list': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --principal --log-level --log-format',
  'access revoke': '--pipeline --kafka --clickhouse --clickhouse-path --tenant --rounds --kafka-ca --kafka-cert --kafka-key --kafka-sasl-mechanism --kafka-user --kafka-password-file --clickhouse-user --clickhouse-password-file --clickhouse-ca --principal --dry-run --log-level --log-format',
  keys: '',
  'keys generate': '--role --id --out --valid-from --valid-until --force --log-level --log-format',
  'keys show': '--id --role --log-level --log-format',
  demo: '--nodes --rounds --iid --epochs --batch-size --learning-rate --seed --out --kafka --clickhouse --pipeline --workers --train-examples --test-examples --progress --log-level --log-format',
  experiment: '',
  'experiment fedavg-vs-fedsgd': '--target --max-rounds --nodes --fraction --seed --workers --only --quick --learning-rates --lr-grid --grid --out --json --markdown --log-level --log-format',
  'experiment robustness': '--rounds --nodes --byzantine --attacks --strategies --train-examples --test-examples --seed --workers --out --doc --from-json --log-level --log-format',
};

function flagsOf(cmd: Command, prefix: string[] = []): Record<string, string> {
  return Object.fromEntries(cmd.commands.flatMap((c) => {
    const here = [...prefix, c.name()];
    return [[here.join(' '), c.options.map((o) => o.long ?? o.short).join(' ')], ...Object.entries(flagsOf(c, here))];
  }));
}

describe('fedstream program', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  it('has the same commands, in the same order, with the same flags', () => {
    const got = flagsOf(buildProgram());
    expect(Object.keys(got)).toEqual(Object.keys(FLAGS));
    expect(got).toEqual(FLAGS);
  });

  it('exits 2 with one line on stderr for a manifest that does not exist', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    await buildProgram().parseAsync(['node', 'fedstream', 'validate', '-p', 'no-such-pipeline.yaml', '--log-level', 'silent']);
    expect(process.exitCode).toBe(2);
    expect(stderr.mock.calls.map((c) => String(c[0])).join('')).toMatch(/^fedstream: error \[CONFIG_NOT_FOUND\]: pipeline manifest not found: .*no-such-pipeline\.yaml\n$/);
  });

  it.each(['aggregator', 'node', 'sink'])('%s refuses the in-memory transport (exit 2) and says to pass --kafka or FEDSTREAM_KAFKA', async (command) => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const saved = process.env.FEDSTREAM_KAFKA;
    delete process.env.FEDSTREAM_KAFKA;
    try {
      const extra = command === 'node' ? ['--node-id', 'node-1'] : [];
      await buildProgram().parseAsync(['node', 'fedstream', command, '-p', path.resolve(import.meta.dirname, '../../pipelines/mnist-fedavg.yaml'), ...extra, '--log-level', 'silent']);
    } finally {
      if (saved !== undefined) process.env.FEDSTREAM_KAFKA = saved;
    }
    expect(process.exitCode).toBe(2);
    const text = stderr.mock.calls.map((c) => String(c[0])).join('');
    expect(text).toMatch(new RegExp(`^fedstream: error \\[TRANSPORT_NOT_CONFIGURED\\]: fedstream ${command} needs a Kafka cluster: pass --kafka <host:port\\[,host:port\\]> or set FEDSTREAM_KAFKA`));
  });

  it('command files import shared options, never each other (no import circle)', () => {
    const dir = path.join(CLI, 'commands');
    for (const file of readdirSync(dir)) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      expect(text, `commands/${file} imports a sibling`).not.toMatch(/from '\.\/[^']+'/);
      expect(text, `commands/${file} imports program.ts`).not.toMatch(/program\.ts'/);
    }
    expect(readFileSync(path.join(CLI, 'options.ts'), 'utf8')).not.toMatch(/from '\.\/commands\//);
  });
});
