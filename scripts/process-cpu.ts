/**
 * CPU time of processes from /proc (Linux), for benches that explain a throughput figure by where the
 * CPU went: a process' own user+system time, and a server's including its reaped children (Postgres
 * backends that exit are added to the postmaster's children time when it reaps them).
 */
import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on Linux

/** utime, stime, cutime, cstime of `pid` in ms; undefined when it is gone. */
function times(pid: number): { self: number; children: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    const tick = (i: number) => (Number(fields[i - 3]) * 1000) / TICKS_PER_SECOND;
    return { self: tick(14) + tick(15), children: tick(16) + tick(17), ppid: Number(fields[4 - 3]) };
  } catch {
    return undefined;
  }
}

/** CPU ms used by `pid` itself so far. */
export function processCpuMs(pid: number): number {
  return times(pid)?.self ?? 0;
}

/** CPU ms of the children `pid` has reaped (a finished pgbench, for its parent). */
export function reapedChildrenCpuMs(pid: number): number {
  return times(pid)?.children ?? 0;
}

/** CPU ms used by `pid`, its reaped children, and its live children: a Postgres server as a whole. */
export function processTreeCpuMs(pid: number): number {
  const root = times(pid);
  if (!root) return 0;
  let total = root.self + root.children;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const t = times(Number(entry));
    if (t?.ppid === pid) total += t.self;
  }
  return total;
}

/** The postmaster's pid of the cluster in `dataDir` (first line of postmaster.pid). */
export function postmasterPid(dataDir: string): number {
  return Number(readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n')[0]);
}
