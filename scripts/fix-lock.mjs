// chdb lists optional per-platform packages; registries that do not serve some of them make
// `npm install` drop their entries from package-lock.json, and then `npm ci` refuses the lock.
// This puts the entries back (platform-restricted, so npm never fetches them on this platform).
import { readFileSync, writeFileSync } from 'node:fs';

const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));
const chdb = lock.packages['node_modules/chdb'];
if (!chdb) throw new Error('chdb is not in package-lock.json');
const platforms = { 'darwin-arm64': ['darwin', 'arm64'], 'darwin-x64': ['darwin', 'x64'], 'linux-arm64-gnu': ['linux', 'arm64', 'glibc'], 'linux-x64-gnu': ['linux', 'x64', 'glibc'] };
let added = 0;
for (const [name, version] of Object.entries(chdb.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const suffix = name.replace('@chdb/lib-', '');
  const [os, cpu, libc] = platforms[suffix] ?? [];
  if (!os) continue;
  lock.packages[key] = { version, license: 'Apache-2.0', optional: true, os: [os], cpu: [cpu], ...(libc ? { libc: [libc] } : {}) };
  added++;
}
const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
lock.packages = sorted;
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(`fix-lock: ${added} entr${added === 1 ? 'y' : 'ies'} added`);
