export * from './errors.ts';
export * from './retry.ts';
export * from './logger.ts';
export type * from './service.ts';
export * from './bytes.ts';
export * from './secrets.ts';
export * from './tls-probe.ts';
export * from './instrumentation.ts';
