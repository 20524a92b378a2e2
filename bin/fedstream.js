#!/usr/bin/env node
// The `fedstream` command. The sources are TypeScript; tsx compiles them on load so that
// `npx fedstream` works right after `npm ci`, with no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
