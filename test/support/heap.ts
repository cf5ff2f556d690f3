/**
 * The heap a test can measure: what is still in use after two full collections (the second
 * collects what the first only finalized), so growth seen between two calls is memory kept, not
 * garbage not yet collected. `--expose-gc` is set here, before the first call needs it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
