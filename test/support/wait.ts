import { inspect } from 'node:util';

/** Waiting for an event with a bound, instead of sleeping and hoping. */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 5_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * The other half: something must not happen. Watches `probe` for `durationMs`, which the caller
 * sets above the period of whatever would make it happen, and fails as soon as it does.
 */
export async function expectNever(
  probe: () => unknown,
  what: string,
  durationMs: number,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + durationMs;
  while (Date.now() <= deadline) {
    const value = probe();
    if (value !== undefined && value !== false) {
      throw new Error(`${what} happened (${inspect(value)}), but must not within ${durationMs} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
