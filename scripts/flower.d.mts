/** Types of flower.mjs, for the benchmarks and the reference-equality tests. */
export declare const FLOWER_VENV: string;
export declare const FLOWER_PYTHON: string;
export declare const FLWR_VERSION: string;
export declare const DP_ACCOUNTING_VERSION: string;
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}
export declare function runCommand(cmd: string, args: string[], options?: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string }): Promise<CommandResult>;
export type FlowerPython = { python: string; flwr: true; version: string } | { python: string; flwr: false };
export declare function flowerPython(options?: { numpyFallback?: boolean; log?: (msg: string) => void }): Promise<FlowerPython>;
