/** Types of compose-secrets.mjs, for the TypeScript test of docker-compose.secure.yml. */
export declare const COMPOSE_USERS: string[];
export declare const COMPOSE_PORTS: { internal: number; external: number; controller: number };
export declare function ensureComposeSecrets(dir: string, options?: { owner?: string }): { dir: string; brokerDir: string; clientDir(user: string): string };
