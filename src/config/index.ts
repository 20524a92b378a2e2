export * from './defaults.ts';
export * from './manifest.ts';
