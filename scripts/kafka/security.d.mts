/** Types of security.mjs, for the TypeScript tests that make certificates with it. */
export declare const DEFAULT_USERS: string[];
export interface SecurityMaterial {
  dir: string;
  ca: string;
  rogueCa: string;
  keystore: string;
  clientCert: string;
  clientKey: string;
  users: Record<string, string>;
  controllerPassword: string;
}
export declare function ensureSecurityMaterial(dir: string, users?: string[], options?: { brokerNames?: string[] }): SecurityMaterial;
export declare function secureListenerProperties(ports: { host: string; port: number; securePort: number; controllerPort: number }, m: SecurityMaterial): string;
export declare function scramFormatArgs(m: SecurityMaterial): string[];
export declare function securityProperties(m: SecurityMaterial, listeners: string[], options?: { unsecuredOauthbearer?: boolean }): string;
