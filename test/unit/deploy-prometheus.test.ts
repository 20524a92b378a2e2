import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { promtool } from '../support/prometheus.ts';

const dir = path.resolve('deploy/prometheus');

describe('deploy/prometheus', () => {
  it('the alerting rules pass `promtool check rules` and their unit tests (`promtool test rules`)', () => {
    const check = promtool(['check', 'rules', path.join(dir, 'alerts.yml')]);
    expect(check.stdout + check.stderr).toMatch(/SUCCESS: \d+ rules found/);
    expect(check.status).toBe(0);
    const test = promtool(['test', 'rules', path.join(dir, 'alerts.test.yml')]);
    expect(test.stdout + test.stderr).toContain('SUCCESS');
    expect(test.status).toBe(0);
  });

  it('every alert has a unit test, and the example configuration is valid', () => {
    const rules = parse(readFileSync(path.join(dir, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string }> }> };
    const tests = parse(readFileSync(path.join(dir, 'alerts.test.yml'), 'utf8')) as { tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts: unknown[] }> }> };
    const firing = new Set(tests.tests.flatMap((t) => t.alert_rule_test.filter((a) => a.exp_alerts.length > 0).map((a) => a.alertname)));
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts.length).toBeGreaterThan(0);
    expect(alerts.filter((a) => !firing.has(a))).toEqual([]);
    const config = promtool(['check', 'config', path.join(dir, 'prometheus.yml')]);
    expect(config.stdout + config.stderr).toContain('is valid prometheus config file syntax');
    expect(config.status).toBe(0);
  });

  it('every metric the rules read is one the processes export (docs/operations.md lists them)', () => {
    const text = readFileSync(path.join(dir, 'alerts.yml'), 'utf8');
    const used = new Set(text.match(/fedstream_[a-z_]+/g));
    const source = readFileSync(path.resolve('src/service/metrics.ts'), 'utf8');
    const docs = readFileSync(path.resolve('docs/operations.md'), 'utf8');
    for (const name of used) {
      expect(source, name).toContain(`'${name}'`);
      expect(docs, name).toContain(name);
    }
  });
});
