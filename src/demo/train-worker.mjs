// Bootstrap of a training worker thread (see worker-trainer.ts). Worker threads do not inherit the
// TypeScript loader of the thread that starts them, so this plain module registers tsx first and
// then loads the implementation from its TypeScript source.
import { register } from 'tsx/esm/api';

register();
await import('./train-worker-impl.ts');
