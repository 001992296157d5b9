/**
 * Services started by the npm start launcher stop themselves when the launcher is gone without having
 * stopped them (kill -9 of the launcher): it passes its pid as STOCKWIRE_PARENT_PID, and a child whose
 * parent pid no longer matches runs its normal shutdown. Outside the launcher this does nothing.
 */
export function stopWhenParentDies(stop: (reason: string) => void, everyMs = 1000): void {
  const expected = Number(process.env.STOCKWIRE_PARENT_PID);
  if (!expected) return;
  const timer = setInterval(() => {
    if (process.ppid === expected) return;
    clearInterval(timer);
    stop('parent gone');
  }, everyMs);
  timer.unref();
}
