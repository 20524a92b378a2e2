#!/usr/bin/env node
/**
 * CI's secret scan (issue 11): every password the secured test broker handed out (.kafka/<state>/security/**.password)
 * must appear in no log line of the run: the test output (test-results/*.log, *.json), and every broker's logs
 * (.kafka/<state>/logs, broker.log). Config files that must hold secrets (server.properties, the password files) are
 * not logs and are not scanned. Exits 1, naming the file and the user (never the secret), when one is found.
 *
 *   node scripts/ci-secret-scan.mjs            from the repository root, after `npm test`
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const kafkaDir = path.join(root, '.kafka');

function walk(dir, keep, out = []) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const s = statSync(p);
    if (s.isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

const states = existsSync(kafkaDir) ? readdirSync(kafkaDir).map((d) => path.join(kafkaDir, d)).filter((d) => statSync(d).isDirectory()) : [];
const secrets = states.flatMap((s) => walk(path.join(s, 'security'), (p) => p.endsWith('.password')))
  .map((file) => ({ who: path.relative(root, file), value: readFileSync(file, 'utf8').trim() }))
  .filter((s) => s.value.length >= 8);
const logs = [
  ...walk(path.join(root, 'test-results'), (p) => /\.(log|json)$/.test(p)),
  ...states.flatMap((s) => [...walk(path.join(s, 'logs'), () => true), ...(existsSync(path.join(s, 'broker.log')) ? [path.join(s, 'broker.log')] : [])]),
];

if (secrets.length === 0) {
  console.error('ci: secret scan: no secured broker ran (no .kafka/*/security); the security tests did not run');
  process.exit(1);
}
let found = 0;
let bytes = 0;
for (const file of logs) {
  const text = readFileSync(file, 'utf8');
  bytes += text.length;
  for (const s of secrets) {
    if (text.includes(s.value)) {
      found++;
      console.error(`ci: secret scan: the secret in ${s.who} appears in ${path.relative(root, file)}`);
    }
  }
}
console.log(`ci: secret scan: ${secrets.length} secrets, ${logs.length} log files (${(bytes / 1e6).toFixed(1)} MB), ${found} found`);
process.exit(found ? 1 : 0);
