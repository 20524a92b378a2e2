export * from './defaults.ts';
export * from './manifest.ts';
export * from './overrides.ts';
export * from './privacy.ts';
