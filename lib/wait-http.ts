/** Polls a URL until it answers 2xx (a starting service's /readyz), up to `timeoutMs`; false on timeout. */
export async function waitForHttpOk(url: string, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return true;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return false;
}
