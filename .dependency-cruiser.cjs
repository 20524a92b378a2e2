/**
 * The house rules of src/ (docs/architecture.md), checked by dependency-cruiser as part of `npm run lint`.
 * Floors, bottom up: common < config < codec, transport < protocol, ml < node, aggregator, analytics < service
 * < demo < cli. A folder may import only from folders below it, and only through their index.ts.
 */
const below = {
  common: [],
  config: ['common'],
  codec: ['common', 'config'],
  transport: ['common', 'config'],
  protocol: ['common', 'config', 'codec', 'transport'],
  ml: ['common', 'config', 'codec'],
  node: ['common', 'config', 'codec', 'transport', 'protocol', 'ml'],
  aggregator: ['common', 'config', 'codec', 'transport', 'protocol', 'ml'],
  analytics: ['common', 'config', 'codec', 'transport', 'protocol'],
  service: ['common', 'config', 'codec', 'transport', 'protocol', 'ml', 'node', 'aggregator', 'analytics'],
  demo: ['common', 'config', 'codec', 'transport', 'protocol', 'ml', 'node', 'aggregator', 'analytics', 'service'],
  cli: ['common', 'config', 'codec', 'transport', 'protocol', 'ml', 'node', 'aggregator', 'analytics', 'service', 'demo'],
};
const folders = Object.keys(below);

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle makes load order matter and the parts inseparable.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'through-the-face',
      severity: 'error',
      comment: "Another folder's files are reached through its index.ts (its public face), never directly.",
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
    {
      name: 'package-face-through-the-faces',
      severity: 'error',
      comment: 'src/index.ts re-exports the folders through their index.ts.',
      from: { path: '^src/index\\.ts$' },
      to: { path: '^src/[^/]+/', pathNot: '^src/[^/]+/index\\.ts$' },
    },
    ...folders.map((f) => ({
      name: `floors-${f}`,
      severity: 'error',
      comment: `${f}/ may import only from ${below[f].join(', ') || 'nothing else in src'} (nothing imports upward).`,
      from: { path: `^src/${f}/` },
      to: { path: '^src/', pathNot: [`^src/${f}/`, ...below[f].map((b) => `^src/${b}/`)] },
    })),
    {
      name: 'tfjs-only-in-ml',
      severity: 'error',
      comment: 'TensorFlow.js is loaded by src/ml only; nodes and the aggregator reach it through ml/index.ts.',
      from: { path: '^src/', pathNot: '^src/ml/' },
      to: { path: '@tensorflow/' },
    },
    {
      name: 'aggregator-not-on-the-node',
      severity: 'error',
      comment: 'The aggregator does not use the node SDK.',
      from: { path: '^src/aggregator/' },
      to: { path: '^src/node/' },
    },
    {
      name: 'src-not-on-tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'] },
  },
};
