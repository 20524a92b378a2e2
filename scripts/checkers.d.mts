/** Types of checkers.mjs, for the TypeScript tests that run the real checkers. */
export declare const CHECKERS: { composeGo: string; safetensors: string; numpy: string };
export declare function dockerCompose(): string;
export declare function safetensorsPython(): string;
