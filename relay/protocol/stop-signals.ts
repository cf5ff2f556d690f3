/**
 * Waiting for the signal that stops a long-running command (dmz-relay, dmz-agent run): SIGTERM
 * from systemd, SIGINT from a terminal, or an AbortSignal from a test running the CLI in-process.
 */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** A promise of the first stop signal (or the abort), which also removes its handlers. */
export function stopRequested(abort: AbortSignal | undefined): Promise<string> & { cancel(): void } {
  let cancel: () => void = () => undefined;
  const promise = new Promise<string>((resolve) => {
    const handlers = STOP_SIGNALS.map((name) => [name, () => finish(name)] as const);
    const onAbort = () => finish('abort');
    function finish(name: string) {
      cancel();
      resolve(name);
    }
    cancel = () => {
      for (const [name, handler] of handlers) process.off(name, handler);
      abort?.removeEventListener('abort', onAbort);
    };
    for (const [name, handler] of handlers) process.once(name, handler);
    if (abort?.aborted === true) finish('abort');
    else abort?.addEventListener('abort', onAbort);
  });
  return Object.assign(promise, { cancel: () => cancel() });
}
