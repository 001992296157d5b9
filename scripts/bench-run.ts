/**
 * The end of a bench script: runs its main, then always prints its table, writes its JSON (with the
 * error, when main failed, so a partial run still leaves its figures), cleans up what it started, and
 * exits 1 if main failed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export async function runAndReport(props: {
  main: () => Promise<void>;
  say: (line: string) => void;
  printTable: () => void;
  /** the JSON file to write */
  out: string;
  result: () => Record<string, unknown>;
  cleanup: () => Promise<void>;
}): Promise<never> {
  let exitCode = 0;
  let error: string | undefined;
  try {
    await props.main();
  } catch (err) {
    exitCode = 1;
    error = (err as Error).stack ?? String(err);
    props.say(`failed: ${error}`);
  } finally {
    props.printTable();
    await mkdir(path.dirname(props.out), { recursive: true });
    await writeFile(props.out, `${JSON.stringify({ at: new Date().toISOString(), ...props.result(), ...(error ? { error } : {}) }, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path.relative(process.cwd(), props.out)}\n`);
    await props.cleanup();
  }
  process.exit(exitCode);
}
